//! What the portal tests share: the server started once, HTTP helpers, test data in
//! every container, and checks of the predictions.

use crossomics_data::PairedDataset;
use crossomics_data::h5ad;
use crossomics_models::Direction;
use crossomics_runner::apply::{SavedTranslator, Single};
use nalgebra_sparse::CsrMatrix;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common;

pub struct Server {
    pub child: Child,
    pub url: String,
    pub models: PathBuf,
    /// every status message seen while the default model trained
    pub messages: Vec<String>,
    pub _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(models: &Path, work: &Path, extra: &[&str]) -> (Child, String) {
    common::spawn_serve(models, work, extra)
}

/// The server with the default model, started with an empty models folder.
pub fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        let (child, url) = start(&models, &dir.path().join("work"), &[]);
        let mut messages = Vec::new();
        let t = Instant::now();
        loop {
            let st = get_json(&url, "/api/status");
            if let Some(m) = st["message"].as_str()
                && messages.last().is_none_or(|l: &String| l != m)
            {
                messages.push(m.to_string());
            }
            if st["ready"] == true {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(900),
                "the default model did not train: {messages:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Server {
            child,
            url,
            models,
            messages,
            _dir: dir,
        }
    })
}

pub fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, Vec<u8>) {
    let read = |resp: ureq::Response| {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut v).unwrap();
        v
    };
    match r {
        Ok(resp) => (resp.status(), read(resp)),
        Err(ureq::Error::Status(code, resp)) => (code, read(resp)),
        Err(e) => panic!("transport error: {e}"),
    }
}

pub fn get_json(url: &str, path: &str) -> Value {
    let (code, body) = answer(ureq::get(&format!("{url}{path}")).call());
    assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

pub fn multipart(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----crossomics-portal-test";
    let mut body = Vec::new();
    for (k, v) in fields {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        )
        .unwrap();
    }
    for (name, bytes) in files {
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n").unwrap();
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Submits a job; its id.
pub fn submit(url: &str, fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> String {
    let (ct, body) = multipart(fields, files);
    let (code, resp) = answer(
        ureq::post(&format!("{url}/api/jobs"))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    );
    assert_eq!(code, 202, "{}", String::from_utf8_lossy(&resp));
    let v: Value = serde_json::from_slice(&resp).unwrap();
    v["id"].as_str().unwrap().to_string()
}

pub fn wait_finished(url: &str, id: &str) -> Value {
    let t = Instant::now();
    loop {
        let v = get_json(url, &format!("/api/jobs/{id}"));
        if v["status"] == "done" || v["status"] == "failed" {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(600), "job {id}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn model_id(direction: &str) -> String {
    let models = get_json(&server().url, "/api/models");
    models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["direction"] == direction)
        .unwrap_or_else(|| panic!("no {direction} model in {models}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn saved_run() -> PathBuf {
    let mut found = Vec::new();
    let mut stack = vec![server().models.clone()];
    while let Some(d) = stack.pop() {
        if d.join("model.json").is_file() {
            found.push(d);
            continue;
        }
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

/// The held-out donor's cells of the bundled sample (the model never saw them).
pub fn test_cells() -> PairedDataset {
    let d = crossomics_data::sample::bmmc_multiome_starter().unwrap();
    let batch = d.cells.column("batch").unwrap();
    let keep: Vec<usize> = (0..d.n_cells()).filter(|&i| batch[i] == "s1d2").collect();
    d.subset_cells(&keep)
}

pub fn write_rna_h5ad(path: &Path, d: &PairedDataset) {
    h5ad::write(path, Some((&d.rna).into()), &d.cells, &d.genes, &[]).unwrap();
}

/// Files to upload: (name, bytes).
pub type Files = Vec<(String, Vec<u8>)>;

/// A 10x folder (features x barcodes) of one or both modalities, as files.
pub fn tenx_folder(d: &PairedDataset, rna: bool, atac: bool) -> Files {
    let mut features = String::new();
    let mut blocks: Vec<&CsrMatrix<f32>> = Vec::new();
    if rna {
        for g in &d.genes {
            features.push_str(&format!("ENSG-{g}\t{g}\tGene Expression\n"));
        }
        blocks.push(&d.rna);
    }
    let peaks: Vec<String> = d.peaks.iter().map(ToString::to_string).collect();
    if atac {
        for p in &peaks {
            features.push_str(&format!("{p}\t{p}\tPeaks\n"));
        }
        blocks.push(&d.atac);
    }
    // features x cells
    let n_features: usize = blocks.iter().map(|b| b.ncols()).sum();
    let mut coo = nalgebra_sparse::CooMatrix::new(n_features, d.n_cells());
    let mut offset = 0;
    for b in blocks {
        for (r, c, v) in b.triplet_iter() {
            coo.push(offset + c, r, *v);
        }
        offset += b.ncols();
    }
    let mut mtx = Vec::new();
    crossomics_data::mtx::write(&CsrMatrix::from(&coo), &mut mtx).unwrap();
    let barcodes: String = d
        .cells
        .barcodes()
        .iter()
        .map(|b| format!("{b}\n"))
        .collect();
    vec![
        ("matrix.mtx".into(), mtx),
        ("features.tsv".into(), features.into_bytes()),
        ("barcodes.tsv".into(), barcodes.into_bytes()),
    ]
}

pub fn write_tenx_h5(path: &Path, d: &PairedDataset) {
    common::write_tenx_h5(path, d);
}

pub fn zip_folder(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        z.start_file(
            format!("filtered_feature_bc_matrix/{name}"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

pub fn tar_gz_folder(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, bytes) in files {
        let gz = gzip(bytes);
        let mut h = tar::Header::new_gnu();
        h.set_size(gz.len() as u64);
        h.set_mode(0o644);
        b.append_data(
            &mut h,
            format!("outs/filtered_feature_bc_matrix/{name}.gz"),
            &gz[..],
        )
        .unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Downloads a job's file to `dir`; its path.
pub fn download(url: &str, job: &Value, name: &str, dir: &Path) -> PathBuf {
    let f = job["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {job}"));
    let (code, bytes) = answer(ureq::get(&format!("{url}{}", f["url"].as_str().unwrap())).call());
    assert_eq!(code, 200);
    assert_eq!(bytes.len() as u64, f["bytes"].as_u64().unwrap());
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// What the saved model predicts for `source` in-process.
pub fn expected(
    source: &Single,
    direction: Direction,
) -> (Vec<String>, Vec<String>, ndarray::Array2<f32>) {
    let saved = SavedTranslator::load(&saved_run()).unwrap();
    let t = saved
        .translate(
            source,
            direction,
            None,
            None,
            &crossomics_limits::Limits::default(),
        )
        .unwrap();
    (
        t.cells.barcodes().to_vec(),
        t.features.clone(),
        t.prediction.values().clone(),
    )
}

pub fn assert_prediction(
    h5ad_path: &Path,
    want: &(Vec<String>, Vec<String>, ndarray::Array2<f32>),
) {
    let got = h5ad::read_with(h5ad_path, &h5ad::ReadOptions::layer(None)).unwrap();
    assert_eq!(got.cells.barcodes(), &want.0[..]);
    assert_eq!(got.features, want.1);
    let dense = {
        let m = &got.matrix;
        let mut a = ndarray::Array2::<f32>::zeros((m.nrows(), m.ncols()));
        for (r, c, v) in m.triplet_iter() {
            a[[r, c]] = *v;
        }
        a
    };
    assert_eq!(dense.dim(), want.2.dim());
    let max = dense
        .iter()
        .zip(want.2.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max < 1e-5,
        "largest difference from the in-process prediction: {max}"
    );
}

pub fn chromedriver() -> Option<(Child, u16)> {
    let driver = Path::new("/usr/bin/chromedriver");
    if !driver.is_file() || !Path::new("/usr/bin/chromium").is_file() {
        assert!(
            std::env::var_os("CROSSOMICS_REQUIRE_BROWSER").is_none(),
            "CROSSOMICS_REQUIRE_BROWSER is set but chromium / chromium-driver are not installed (scripts/setup-chromium.sh)"
        );
        eprintln!(
            "SKIP browser test: Debian's chromium and chromium-driver are not installed (scripts/setup-chromium.sh)"
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((child, port))
}

pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Rewrites `obs/_index` of an h5ad of `n` cells as fixed-length strings stored in
/// `target` (HDF5 external storage).
pub fn index_stored_in(path: &Path, n: usize, target: &Path) {
    let f = hdf5::File::open_rw(path).unwrap();
    let obs = f.group("obs").unwrap();
    let index: hdf5::types::VarLenUnicode = obs.attr("_index").unwrap().read_scalar().unwrap();
    obs.unlink(index.as_str()).unwrap();
    obs.new_dataset::<hdf5::types::FixedAscii<16>>()
        .shape(n)
        .external(target.to_str().unwrap(), 0, 16 * n)
        .create(index.as_str())
        .unwrap();
}

/// `obs[column]` of a downloaded h5ad exists and has one entry per cell.
pub fn assert_obs_column(path: &Path, column: &str, cells: usize) {
    let f = hdf5::File::open(path).unwrap();
    let obs = f.group("obs").unwrap();
    let n = match obs.group(column) {
        Ok(g) => g.dataset("codes").unwrap().size(),
        Err(_) => obs
            .dataset(column)
            .unwrap_or_else(|_| panic!("{}: no obs[{column:?}]", path.display()))
            .size(),
    };
    assert_eq!(n, cells, "{}: obs[{column:?}]", path.display());
}
