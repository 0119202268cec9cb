//! What the test files that run a real `crossomics serve` share.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `crossomics serve` on a free loopback port over `models`, with its jobs under
/// `work` and `extra` flags; the child and the URL it listens on. The server ends when
/// the test process does (it stops when its standard input closes).
#[allow(dead_code)] // not every test file that shares this module starts a server
pub fn spawn_serve(models: &Path, work: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossomics"))
        .arg("serve")
        .args(["--addr", "127.0.0.1:0", "--models"])
        .arg(models)
        .arg("--work-dir")
        .arg(work)
        .args(extra)
        .arg("--stop-on-stdin-eof")
        .env("OMP_NUM_THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("crossomics portal listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    (child, url)
}

/// A Cell Ranger ARC `.h5` (both modalities; CSC features x barcodes) of `d`.
#[allow(dead_code)] // not every test file that shares this module writes one
pub fn write_tenx_h5(path: &Path, d: &crossomics_data::PairedDataset) {
    use hdf5::types::FixedAscii;
    let n_genes = d.genes.len();
    // CSC of features x barcodes is CSR of barcodes x features: genes, then peaks
    let (mut data, mut indices, mut indptr) = (Vec::new(), Vec::new(), vec![0i64]);
    for i in 0..d.n_cells() {
        for (m, offset) in [(&d.rna, 0), (&d.atac, n_genes)] {
            let row = m.row(i);
            for (&c, &v) in row.col_indices().iter().zip(row.values()) {
                indices.push((offset + c) as i64);
                data.push(v as i32);
            }
        }
        indptr.push(indices.len() as i64);
    }
    let peaks: Vec<String> = d.peaks.iter().map(ToString::to_string).collect();
    let fixed = |v: &[String]| -> Vec<FixedAscii<64>> {
        v.iter()
            .map(|s| FixedAscii::from_ascii(s).unwrap())
            .collect()
    };
    let file = hdf5::File::create(path).unwrap();
    let m = file.create_group("matrix").unwrap();
    m.new_dataset_builder()
        .with_data(&data)
        .create("data")
        .unwrap();
    m.new_dataset_builder()
        .with_data(&indices)
        .create("indices")
        .unwrap();
    m.new_dataset_builder()
        .with_data(&indptr)
        .create("indptr")
        .unwrap();
    m.new_dataset_builder()
        .with_data(&[(n_genes + peaks.len()) as i64, d.n_cells() as i64])
        .create("shape")
        .unwrap();
    m.new_dataset_builder()
        .with_data(&fixed(d.cells.barcodes()))
        .create("barcodes")
        .unwrap();
    let f = m.create_group("features").unwrap();
    let ids: Vec<String> = d
        .genes
        .iter()
        .map(|g| format!("ENSG-{g}"))
        .chain(peaks.iter().cloned())
        .collect();
    let names: Vec<String> = d.genes.iter().chain(peaks.iter()).cloned().collect();
    let types: Vec<String> = (0..ids.len())
        .map(|i| {
            if i < n_genes {
                "Gene Expression"
            } else {
                "Peaks"
            }
            .to_string()
        })
        .collect();
    for (name, v) in [("id", &ids), ("name", &names), ("feature_type", &types)] {
        f.new_dataset_builder()
            .with_data(&fixed(v))
            .create(name)
            .unwrap();
    }
}

/// Runs the `crossomics` binary with `args` in `cwd` (one OpenMP thread).
#[allow(dead_code)] // not every test file that shares this module runs the CLI
pub fn crossomics(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crossomics"))
        .args(args)
        .current_dir(cwd)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("the binary runs")
}

/// A finished command's standard output and error, for messages and assertions.
#[allow(dead_code)]
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
