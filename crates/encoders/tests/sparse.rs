//! The sparse first layer against the dense layer and an explicit loop over groups.

mod common;

use common::{Rng, random_csr};
use crossomics_encoders::{ChromGroups, CsrBatch, PeakGroup, SparseKernel, SparseLinear};
use tch::{Device, Kind, Tensor, nn};

const KERNELS: [SparseKernel; 3] = [
    SparseKernel::EmbeddingBag,
    SparseKernel::CooMm,
    SparseKernel::CsrMm,
];

fn close(a: &Tensor, b: &Tensor, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}: shapes");
    let diff = (a - b).abs().max().double_value(&[]);
    assert!(diff <= 1e-5, "{what}: max abs difference {diff}");
}

/// Three uneven groups with interleaved, unsorted columns.
fn uneven_groups(n: usize) -> ChromGroups {
    let mut cols: [Vec<usize>; 3] = Default::default();
    for c in 0..n {
        cols[if c % 7 == 0 { 2 } else { c % 2 }].push(c);
    }
    cols[1].reverse();
    let [a, b, c] = cols;
    ChromGroups::new(
        vec![
            PeakGroup {
                name: "chr1".into(),
                columns: a,
            },
            PeakGroup {
                name: "chr2".into(),
                columns: b,
            },
            PeakGroup {
                name: "chrX".into(),
                columns: c,
            },
        ],
        n,
        0,
    )
    .unwrap()
}

/// Forward and weight/bias gradients of `f` under a fixed random upstream gradient.
fn run(
    layer: &SparseLinear,
    f: impl Fn() -> Tensor,
    upstream: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    layer.weight().shallow_clone().zero_grad();
    layer.bias().shallow_clone().zero_grad();
    let y = f();
    (&y * upstream).sum(Kind::Float).backward();
    (
        y.detach(),
        layer.weight().grad().copy(),
        layer.bias().grad().copy(),
    )
}

fn check_layer(groups: &ChromGroups, width: i64, x: &CsrBatch<'_>, binary: bool) {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut layer = SparseLinear::new(&vs.root(), groups, width, SparseKernel::EmbeddingBag);
    let dense_x = x.to_dense(Device::Cpu);
    let out = layer.output_dim();
    let upstream = Tensor::randn([x.nrows as i64, out], (Kind::Float, Device::Cpu));
    let (y_dense, gw_dense, gb_dense) = run(&layer, || layer.forward_dense(&dense_x), &upstream);

    // the explicit loop: an independent Linear per group, sharing the weights
    let g = groups.len() as i64;
    let mut parts = Vec::new();
    for (i, group) in groups.groups().iter().enumerate() {
        let cols = Tensor::from_slice(&group.columns.iter().map(|&c| c as i64).collect::<Vec<_>>());
        let w = layer.peak_weight().index_select(0, &cols);
        let b = layer.bias().narrow(0, i as i64 * width, width);
        parts.push(dense_x.index_select(1, &cols).matmul(&w) + b);
    }
    let y_loop = Tensor::cat(&parts, 1);
    close(&y_dense, &y_loop, "dense vs per-group loop");
    assert_eq!(y_dense.size(), vec![x.nrows as i64, g * width]);

    for kernel in KERNELS {
        layer.set_kernel(kernel);
        let (y, gw, gb) = run(&layer, || layer.forward_csr(x), &upstream);
        let what = format!("{kernel:?} groups={g} binary={binary}");
        close(&y, &y_dense, &format!("{what} forward"));
        close(&gw, &gw_dense, &format!("{what} weight grad"));
        close(&gb, &gb_dense, &format!("{what} bias grad"));
    }
}

#[test]
fn sparse_layer_matches_dense_layer_forward_and_backward() {
    let mut rng = Rng::new(11);
    for (binary, messy) in [(true, false), (false, true)] {
        let csr = random_csr(&mut rng, 37, 301, 0.05, binary, messy);
        assert!(
            csr.indptr.windows(2).any(|w| w[0] == w[1]),
            "has empty rows"
        );
        let x = csr.batch();
        check_layer(&ChromGroups::single(301), 16, &x, binary);
        check_layer(&uneven_groups(301), 8, &x, binary);
        // three near-equal groups: one chunk per group
        let labels: Vec<usize> = (0..301).map(|c| c % 3).collect();
        let even = ChromGroups::from_chromosomes(
            &labels.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            0,
        )
        .unwrap();
        check_layer(&even, 8, &x, binary);
    }
}

#[test]
fn block_weights_only_feed_their_group() {
    let mut rng = Rng::new(5);
    let groups = uneven_groups(50);
    let csr = random_csr(&mut rng, 9, 50, 0.2, true, false);
    let vs = nn::VarStore::new(Device::Cpu);
    let layer = SparseLinear::new(&vs.root(), &groups, 4, SparseKernel::EmbeddingBag);
    let y = layer.forward_csr(&csr.batch());
    y.sum(Kind::Float).backward();
    // d sum / d W[p, k] = total value of peak p over the batch, the same for every unit
    let dense = csr.batch().to_dense(Device::Cpu);
    let want = dense
        .sum_dim_intlist(0, false, Kind::Float)
        .unsqueeze(1)
        .expand([50, 4], false);
    close(
        &layer.peak_rows(&layer.weight().grad()),
        &want,
        "weight gradient",
    );
    // padding slots are zero and get no gradient
    let total = |t: &Tensor| t.abs().sum(Kind::Float).double_value(&[]);
    // (the same entries summed in another order: equal to rounding)
    let same = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(b.abs());
    let (stored, per_peak) = (total(layer.weight()), total(&layer.peak_weight()));
    assert!(same(stored, per_peak), "{stored} vs {per_peak}");
    let (grad, expected) = (total(&layer.weight().grad()), total(&want));
    assert!(same(grad, expected), "{grad} vs {expected}");
    // Xavier per block: each group's rows within its own bound
    for group in groups.groups() {
        let bound = (6.0 / (group.columns.len() as f64 + 4.0)).sqrt();
        let cols = Tensor::from_slice(&group.columns.iter().map(|&c| c as i64).collect::<Vec<_>>());
        let max = layer
            .peak_weight()
            .index_select(0, &cols)
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            max <= bound && max > 0.5 * bound,
            "{} {max} {bound}",
            group.name
        );
    }
}

#[test]
fn empty_batches_and_rows_give_the_bias() {
    let vs = nn::VarStore::new(Device::Cpu);
    let groups = uneven_groups(20);
    for kernel in KERNELS {
        let l2 = SparseLinear::new(&(vs.root() / format!("{kernel:?}")), &groups, 3, kernel);
        assert_eq!((l2.input_dim(), l2.kernel()), (20, kernel));
        let x = CsrBatch::new(2, 20, &[0, 0, 0], &[], &[]).unwrap();
        let y = l2.forward_csr(&x);
        assert_eq!(y.size(), vec![2, 9]);
        assert_eq!(y.abs().sum(Kind::Float).double_value(&[]), 0.0);
        let none = CsrBatch::new(0, 20, &[0], &[], &[]).unwrap();
        assert_eq!(l2.forward_csr(&none).size(), vec![0, 9]);
    }
}

#[test]
#[should_panic(expected = "columns")]
fn wrong_width_is_a_clear_panic() {
    let vs = nn::VarStore::new(Device::Cpu);
    let layer = SparseLinear::dense(&vs.root(), 10, 3, SparseKernel::EmbeddingBag);
    let x = CsrBatch::new(1, 11, &[0, 1], &[10], &[1.0]).unwrap();
    let _ = layer.forward_csr(&x);
}
