use super::*;
use crate::data::{FitCells, dense_rows};
use crate::train::TrainOptions;
use crate::translate::Translator;
use nalgebra::DMatrix;
use nalgebra_sparse::CooMatrix;

fn csr_from(a: &Array2<f32>) -> Csr {
    let mut coo = CooMatrix::new(a.nrows(), a.ncols());
    for ((i, j), v) in a.indexed_iter() {
        if *v != 0.0 {
            coo.push(i, j, *v);
        }
    }
    Csr::from(&coo)
}

/// Ridge against the closed form computed densely: `W = (Xc^T Xc + lambda I)^-1 Xc^T Yc`.
#[test]
fn ridge_matches_the_dense_closed_form() {
    let n = 30;
    let x = Array2::from_shape_fn((n, 3), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
    let y = Array2::from_shape_fn((n, 4), |(i, j)| {
        if (i + j) % 3 == 0 {
            0.0
        } else {
            x[[i, 0]] * j as f32 - x[[i, 2]] + 1.5
        }
    });
    let cells: Vec<usize> = (0..n).collect();
    let map = &LinearMap::fit_all(x.view(), Rows::Csr(&csr_from(&y)), &cells, &[0.5]).unwrap()[0];
    let dense = &LinearMap::fit_all(x.view(), Rows::Dense(y.view()), &cells, &[0.5]).unwrap()[0];
    assert_eq!(map, dense, "sparse and dense targets give the same map");
    // brute force in f64
    let xm: Vec<f64> = (0..3)
        .map(|j| (0..n).map(|i| f64::from(x[[i, j]])).sum::<f64>() / n as f64)
        .collect();
    let ym: Vec<f64> = (0..4)
        .map(|j| (0..n).map(|i| f64::from(y[[i, j]])).sum::<f64>() / n as f64)
        .collect();
    let xc = DMatrix::from_fn(n, 3, |i, j| f64::from(x[[i, j]]) - xm[j]);
    let yc = DMatrix::from_fn(n, 4, |i, j| f64::from(y[[i, j]]) - ym[j]);
    let g = xc.transpose() * &xc;
    let lambda = 0.5 * g.trace() / 3.0;
    let w = (g + DMatrix::identity(3, 3) * lambda)
        .try_inverse()
        .unwrap()
        * xc.transpose()
        * yc;
    for a in 0..3 {
        for j in 0..4 {
            assert!(
                (f64::from(map.weights[a * 4 + j]) - w[(a, j)]).abs() < 1e-5,
                "{a},{j}"
            );
        }
    }
    let pred = map.apply(x.view(), &[2, 5]).unwrap();
    for (r, &c) in [2usize, 5].iter().enumerate() {
        for j in 0..4 {
            let want: f64 = ym[j]
                + (0..3)
                    .map(|a| (f64::from(x[[c, a]]) - xm[a]) * w[(a, j)])
                    .sum::<f64>();
            assert!((f64::from(pred[[r, j]]) - want).abs() < 1e-4);
        }
    }
    assert!(LinearMap::fit_all(x.view(), Rows::Dense(y.view()), &cells, &[]).is_err());
    assert!(LinearMap::fit_all(x.view(), Rows::Dense(y.view()), &[0], &[1.0]).is_err());
    assert!(map.apply(y.view(), &[0]).is_err(), "wrong input width");
}

/// Two groups of cells with their own peaks: both baselines must recover them, and the
/// kNN prediction is the mean of the neighbours' rows.
#[test]
fn baselines_predict_both_directions_and_choose_on_validation() {
    let n = 60;
    let group = |i: usize| i % 2;
    let pca = Array2::from_shape_fn((n, 2), |(i, j)| {
        if j == group(i) {
            3.0 + (i % 5) as f32 * 0.1
        } else {
            (i % 3) as f32 * 0.1
        }
    });
    let lsi = pca.mapv(|v| v * 0.5);
    let atac = csr_from(&Array2::from_shape_fn((n, 6), |(i, j)| {
        f32::from(u8::from(j / 3 == group(i)))
    }));
    let rna = csr_from(&Array2::from_shape_fn((n, 4), |(i, j)| {
        if j / 2 == group(i) { 2.0 } else { 0.0 }
    }));
    let data = CellData {
        rna_values: Some(&rna),
        rna_pca: Some(pca.view()),
        atac: Some(&atac),
        atac_lsi: Some(lsi.view()),
        ..Default::default()
    };
    let cells: Vec<usize> = (0..n).collect();
    let fit = FitCells {
        train: &cells[..40],
        val: &cells[40..50],
        extra: None,
    };
    let test = &cells[50..];
    let mut models: Vec<(&str, Box<dyn Translator>)> = vec![
        ("ridge", Box::new(Ridge::new(RidgeConfig::default()))),
        (
            "knn_regression",
            Box::new(KnnRegression::new(KnnRegressionConfig {
                ks: vec![1, 5, 39],
            })),
        ),
    ];
    for (kind, m) in &mut models {
        m.fit(&data, fit, &TrainOptions::default(), 0, &mut |_| {})
            .unwrap();
        let source_only = CellData {
            rna_values: None,
            atac: None,
            ..data
        };
        let Prediction::Atac { probabilities } = m
            .translate(&source_only, test, Direction::RnaToAtac)
            .unwrap()
        else {
            panic!("ATAC expected");
        };
        assert_eq!(probabilities.dim(), (10, 6));
        assert!(probabilities.iter().all(|p| (0.0..=1.0).contains(p)));
        for (r, &c) in test.iter().enumerate() {
            for j in 0..6 {
                let want = f32::from(u8::from(j / 3 == group(c)));
                assert!(
                    (probabilities[[r, j]] - want).abs() < 0.25,
                    "{kind}: {r},{j}"
                );
            }
        }
        let Prediction::Rna { log1p, .. } = m
            .translate(&source_only, test, Direction::AtacToRna)
            .unwrap()
        else {
            panic!("RNA expected");
        };
        assert_eq!(log1p.dim(), (10, 4));
        assert!(log1p.iter().all(|v| *v >= 0.0));
        // save and load give the same predictions
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let mut back: Box<dyn Translator> = match *kind {
            "ridge" => Box::new(Ridge::new(RidgeConfig::default())),
            _ => Box::new(KnnRegression::new(KnnRegressionConfig::default())),
        };
        back.load(dir.path()).unwrap();
        assert_eq!(
            back.translate(&source_only, test, Direction::AtacToRna)
                .unwrap(),
            m.translate(&source_only, test, Direction::AtacToRna)
                .unwrap()
        );
        // no source: a clear error
        let none = CellData::default();
        let e = m
            .translate(&none, test, Direction::RnaToAtac)
            .unwrap_err()
            .to_string();
        assert!(e.contains("RNA PCA"), "{e}");
    }
    // k = 39 averages nearly everything and is a poor fit: validation must not pick it
    let mut knn = KnnRegression::new(KnnRegressionConfig { ks: vec![39, 5] });
    knn.fit(&data, fit, &TrainOptions::default(), 0, &mut |_| {})
        .unwrap();
    assert_eq!(knn.k(Direction::RnaToAtac), Some(5));
    // the kNN prediction is the mean of the k nearest training rows (brute force)
    let mut one = KnnRegression::new(KnnRegressionConfig { ks: vec![3] });
    one.fit(
        &data,
        FitCells {
            extra: None,
            train: &cells[..40],
            val: &[],
        },
        &TrainOptions::default(),
        0,
        &mut |_| {},
    )
    .unwrap();
    let got = one.translate(&data, &[45], Direction::RnaToAtac).unwrap();
    let mut d: Vec<(f64, usize)> = (0..40)
        .map(|t| {
            let e: f64 = (0..2)
                .map(|j| (f64::from(pca[[t, j]]) - f64::from(pca[[45, j]])).powi(2))
                .sum();
            (e, t)
        })
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let dense_atac = dense_rows(&atac, &cells);
    for j in 0..6 {
        let want: f32 = d[..3].iter().map(|(_, t)| dense_atac[[*t, j]]).sum::<f32>() / 3.0;
        assert!((got.values()[[0, j]] - want).abs() < 1e-6);
    }
}

#[test]
fn the_mean_baseline_predicts_the_training_means_whatever_the_source() {
    // peaks: cell i opens peak j when (i + j) % 3 == 0; genes: value i + j
    let n = 9;
    let mut atac = CooMatrix::new(n, 3);
    let mut rna = CooMatrix::new(n, 2);
    for i in 0..n {
        for j in 0..3 {
            if (i + j) % 3 == 0 {
                atac.push(i, j, 1.0);
            }
        }
        for j in 0..2 {
            rna.push(i, j, (i + j) as f32);
        }
    }
    let (atac, rna) = (Csr::from(&atac), Csr::from(&rna));
    let data = CellData {
        atac: Some(&atac),
        rna_values: Some(&rna),
        ..Default::default()
    };
    let train = [0, 1, 2, 3, 4, 5];
    let mut m = Mean::default();
    m.fit(
        &data,
        FitCells {
            train: &train,
            val: &[6],
            extra: None,
        },
        &TrainOptions::default(),
        0,
        &mut |_| {},
    )
    .unwrap();
    // brute force: the mean over the training cells, feature by feature
    let want = |m: &Csr| -> Vec<f32> {
        let d = dense_rows(m, &train);
        (0..m.ncols())
            .map(|j| d.column(j).sum() / train.len() as f32)
            .collect()
    };
    let none = CellData::default();
    for (d, truth) in [(Direction::RnaToAtac, &atac), (Direction::AtacToRna, &rna)] {
        let p = m.translate(&none, &[6, 7, 8], d).unwrap();
        let want = want(truth);
        for row in p.values().rows() {
            for (got, w) in row.iter().zip(&want) {
                assert!((got - w).abs() < 1e-6, "{d}: {got} vs {w}");
            }
        }
    }
    assert_eq!(want(&atac), vec![2.0 / 6.0; 3]);
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path()).unwrap();
    let mut back = Mean::default();
    back.load(dir.path()).unwrap();
    assert_eq!(
        back.translate(&none, &[7], Direction::AtacToRna).unwrap(),
        m.translate(&none, &[7], Direction::AtacToRna).unwrap()
    );
}
