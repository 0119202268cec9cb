//! Every route of the portal over real HTTP, with a fake backend (the translators'
//! backend is tested in crossomics-runner's tests/portal.rs): uploads of each kind,
//! each refusal, failures isolated to their job, the bounded queue, expiry.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossomics_portal::{
    Backend, BackendStatus, Coverage, FeatureMean, Input, ModelInfo, PortalConfig, PredictOutput,
    PredictRequest, ResultFile, Running, Stage, Summary,
};
use serde_json::Value;

#[derive(Default)]
struct Fake {
    not_ready: bool,
    /// the `slow` model waits until this is set
    release: AtomicBool,
    seen: Mutex<Vec<String>>,
}

fn model(id: &str) -> ModelInfo {
    ModelInfo {
        id: id.into(),
        name: format!("fake {id}"),
        direction: "rna_to_atac".into(),
        source: "RNA".into(),
        target: "ATAC".into(),
        genome: Some("GRCh38".into()),
        trained_on: "nothing".into(),
        kind: "fake".into(),
        input_features: 2,
        output_features: 3,
        metrics: vec![("auroc".into(), 0.5)],
    }
}

impl Backend for Fake {
    fn models(&self) -> Vec<ModelInfo> {
        ["fake", "panic", "fail", "slow"].map(model).to_vec()
    }

    fn status(&self) -> BackendStatus {
        BackendStatus {
            device: "cpu".into(),
            ready: !self.not_ready,
            message: self
                .not_ready
                .then(|| "training the default model: epoch 3/10".into()),
        }
    }

    fn predict(&self, r: &PredictRequest, stage: &dyn Fn(Stage)) -> Result<PredictOutput, String> {
        stage(Stage::Preprocessing);
        // what reached the backend, as text, so that tests see the upload arrived intact
        let seen = match &r.input {
            Input::Hdf5(p) => format!("hdf5 {} bytes", std::fs::metadata(p).unwrap().len()),
            Input::MatrixMarketDir(d) => {
                let mut names: Vec<String> = std::fs::read_dir(d)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                let barcodes = names.iter().find(|n| n.starts_with("barcodes")).unwrap();
                format!(
                    "mtx {} | {}",
                    names.join(","),
                    std::fs::read_to_string(d.join(barcodes))
                        .unwrap_or_else(|_| "gzipped".into())
                        .trim()
                )
            }
        };
        self.seen.lock().unwrap().push(seen.clone());
        match r.model_id.as_str() {
            "panic" => panic!("boom"),
            "fail" => return Err("input.h5: not an AnnData file".into()),
            "slow" => {
                while !self.release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            _ => {}
        }
        stage(Stage::Predicting);
        std::fs::write(r.out_dir.join("result.txt"), &seen).unwrap();
        Ok(PredictOutput {
            coverage: Coverage {
                modality: "RNA".into(),
                found: 1,
                total: 2,
                fraction: 0.5,
            },
            summary: Summary {
                cells: 2,
                features: 3,
                values: "accessibility probability".into(),
                mean: 0.25,
                min: 0.0,
                max: 1.0,
                top_features: vec![FeatureMean {
                    feature: "chr1:1-2".into(),
                    mean: 0.9,
                }],
            },
            files: vec![ResultFile {
                name: "result.txt".into(),
                label: "what the backend saw".into(),
                media_type: "text/plain".into(),
            }],
        })
    }
}

struct Server {
    running: Running,
    backend: Arc<Fake>,
    dir: tempfile::TempDir,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    fn jobs_dir_entries(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("jobs"))
            .unwrap()
            .count()
    }
}

fn start_with(fake: Fake, tune: impl FnOnce(&mut PortalConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut config = PortalConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        work_dir: dir.path().to_path_buf(),
        ..PortalConfig::default()
    };
    tune(&mut config);
    let backend = Arc::new(fake);
    let running = crossomics_portal::spawn(config, backend.clone()).unwrap();
    Server {
        running,
        backend,
        dir,
    }
}

fn start() -> Server {
    start_with(Fake::default(), |_| {})
}

/// (status, body) of a request; 4xx/5xx are answers, not errors.
fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn get(s: &Server, path: &str) -> (u16, String) {
    answer(ureq::get(&s.url(path)).call())
}

/// A multipart body: text fields, then files (field name `file`).
fn multipart(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----crossomics-test-7d1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        )
        .unwrap();
    }
    for (name, bytes) in files {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .unwrap();
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn post(s: &Server, path: &str, fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> (u16, String) {
    let (ct, body) = multipart(fields, files);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    answer(
        agent
            .post(&s.url(path))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    )
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn wait_finished(s: &Server, id: &str) -> Value {
    let t = Instant::now();
    loop {
        let (code, body) = get(s, &format!("/api/jobs/{id}"));
        assert_eq!(code, 200, "{body}");
        let v = json(&body);
        if v["status"] == "done" || v["status"] == "failed" {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "job {id} did not finish: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const MTX: &[u8] = b"%%MatrixMarket matrix coordinate integer general\n3 2 2\n1 1 5\n3 2 1\n";
const FEATURES: &[u8] =
    b"G1\tG1\tGene Expression\nG2\tG2\tGene Expression\nG3\tG3\tGene Expression\n";
const BARCODES: &[u8] = b"AAAC-1\nAAAG-1\n";
const HDF5: &[u8] = b"\x89HDF\r\n\x1a\n and the rest of a file";

fn submit(s: &Server, model: &str, files: &[(&str, &[u8])]) -> String {
    let (code, body) = post(s, "/api/jobs", &[("model", model)], files);
    assert_eq!(code, 202, "{body}");
    let v = json(&body);
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn pages_and_descriptions() {
    let s = start();
    let (code, html) = get(&s, "/");
    assert_eq!(code, 200);
    for needle in [
        "fake fake",
        "<b id=\"device\">cpu</b>",
        "id=\"upload\"",
        "name=\"file\"",
        "auroc 0.500",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    let (code, body) = get(&s, "/api/models");
    assert_eq!(code, 200);
    assert_eq!(json(&body).as_array().unwrap().len(), 4);
    let (code, body) = get(&s, "/api/status");
    assert_eq!(code, 200);
    let st = json(&body);
    assert_eq!(st["device"], "cpu");
    assert_eq!(st["ready"], true);
    assert_eq!(st["max_upload_bytes"], 2u64 << 30);
    // the OpenAPI document names every API route the server answers
    let (code, body) = get(&s, "/api/openapi.json");
    assert_eq!(code, 200);
    let spec = json(&body);
    assert_eq!(spec["openapi"], "3.0.3");
    let paths: Vec<&String> = spec["paths"].as_object().unwrap().keys().collect();
    for route in [
        "/api/status",
        "/api/models",
        "/api/jobs",
        "/api/jobs/{id}",
        "/api/jobs/{id}/files/{name}",
        "/api/openapi.json",
    ] {
        assert!(
            paths.iter().any(|p| p.as_str() == route),
            "{route} not in {paths:?}"
        );
    }
    let (code, body) = get(&s, "/nowhere");
    assert_eq!(code, 404);
    assert!(json(&body)["error"].is_string());
}

#[test]
fn loose_matrix_market_files_make_a_job_that_finishes() {
    let s = start();
    // order and names do not matter: the content says which file is which
    let id = submit(
        &s,
        "fake",
        &[("b", BARCODES), ("a.h5ad", MTX), ("c", FEATURES)],
    );
    assert_eq!(id.len(), 32);
    let v = wait_finished(&s, &id);
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(v["coverage"]["found"], 1);
    assert_eq!(v["summary"]["top_features"][0]["feature"], "chr1:1-2");
    assert_eq!(v["device"], "cpu");
    assert!(v["expires_unix"].as_f64().unwrap() > v["finished_unix"].as_f64().unwrap());
    let url = v["files"][0]["url"].as_str().unwrap();
    let (code, text) = get(&s, url);
    assert_eq!(code, 200);
    assert_eq!(
        text,
        "mtx barcodes.tsv,features.tsv,matrix.mtx | AAAC-1\nAAAG-1"
    );
    // the upload is not kept once the job has run
    assert!(!s.dir.path().join("jobs").join(&id).join("input").exists());
    // other names, other ids
    assert_eq!(
        get(&s, &format!("/api/jobs/{id}/files/../../etc/passwd")).0,
        404
    );
    assert_eq!(get(&s, &format!("/api/jobs/{id}/files/input.h5")).0, 404);
    assert_eq!(get(&s, &format!("/api/jobs/{}", jobs_like_id())).0, 404);
    assert_eq!(get(&s, "/api/jobs/..%2f..%2fetc").0, 404);
    // the page of the job
    let (code, html) = get(&s, &format!("/jobs/{id}"));
    assert_eq!(code, 200);
    assert!(html.contains(&id) && html.contains("/api/jobs/"));
}

fn jobs_like_id() -> String {
    "0123456789abcdef0123456789abcdef".into()
}

#[test]
fn the_form_redirects_to_the_job_page() {
    let s = start();
    let (code, _) = post(
        &s,
        "/jobs",
        &[("model", "fake"), ("genome", "")],
        &[("x.h5", HDF5)],
    );
    assert_eq!(code, 303);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let (ct, body) = multipart(&[("model", "fake")], &[("x.h5", HDF5)]);
    let resp = agent
        .post(&s.url("/jobs"))
        .set("Content-Type", &ct)
        .send_bytes(&body)
        .unwrap();
    let location = resp.header("location").unwrap().to_string();
    assert!(location.starts_with("/jobs/"), "{location}");
    let id = location.trim_start_matches("/jobs/");
    assert_eq!(wait_finished(&s, id)["status"], "done");
    assert!(
        s.backend
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|x| x == &format!("hdf5 {} bytes", HDF5.len()))
    );
    // a refused form upload is an HTML page with the reason
    let (code, html) = post(&s, "/jobs", &[("model", "nope")], &[("x.h5", HDF5)]);
    assert_eq!(code, 400);
    assert!(
        html.contains("unknown model `nope`") && html.contains("<html"),
        "{html}"
    );
}

fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&b.into_inner().unwrap()).unwrap();
    e.finish().unwrap()
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (n, d) in entries {
        z.start_file(*n, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(d).unwrap();
    }
    z.finish().unwrap().into_inner()
}

#[test]
fn archives_of_a_matrix_folder_are_unpacked() {
    let s = start();
    let folder = [
        ("outs/filtered_feature_bc_matrix/matrix.mtx", MTX),
        ("outs/filtered_feature_bc_matrix/features.tsv", FEATURES),
        ("outs/filtered_feature_bc_matrix/barcodes.tsv", BARCODES),
    ];
    for bytes in [tar_gz(&folder), zip_of(&folder)] {
        let id = submit(&s, "fake", &[("sample.bin", &bytes)]);
        let v = wait_finished(&s, &id);
        assert_eq!(v["status"], "done", "{v}");
        let (_, text) = get(&s, v["files"][0]["url"].as_str().unwrap());
        assert!(
            text.starts_with("mtx barcodes.tsv,features.tsv,matrix.mtx"),
            "{text}"
        );
    }
}

/// Form fields, files, the expected status and a phrase of the expected message.
type Case<'a> = (
    Vec<(&'a str, &'a str)>,
    Vec<(&'a str, Vec<u8>)>,
    u16,
    &'a str,
);

#[test]
fn bad_uploads_are_refused_with_the_reason_and_leave_nothing() {
    let s = start_with(Fake::default(), |c| {
        c.max_upload_bytes = 4096;
        c.max_unpacked_bytes = 64 * 1024;
        c.max_archive_entries = 5;
    });
    let cases: Vec<Case> = vec![
        (
            vec![("model", "fake")],
            vec![("big.h5ad", vec![b'x'; 5000])],
            413,
            "limit of 4.0 KiB",
        ),
        (
            vec![("model", "fake")],
            vec![("data.h5ad", b"cell,gene,count\n".to_vec())],
            415,
            "unsupported file type",
        ),
        (
            vec![("model", "fake")],
            vec![("data.h5ad", vec![0, 159, 146, 150])],
            415,
            "unsupported file type",
        ),
        (
            vec![("model", "nope")],
            vec![("x.h5", HDF5.to_vec())],
            400,
            "unknown model `nope`",
        ),
        (
            vec![],
            vec![("x.h5", HDF5.to_vec())],
            400,
            "`model` is missing",
        ),
        (vec![("model", "fake")], vec![], 400, "no file was uploaded"),
        (
            vec![("model", "fake"), ("colour", "red")],
            vec![],
            400,
            "unknown form field `colour`",
        ),
        (
            vec![("model", "fake")],
            vec![("m.mtx", MTX.to_vec())],
            400,
            "MatrixMarket matrix alone",
        ),
        (
            vec![("model", "fake")],
            vec![("evil.tar.gz", tar_gz(&[("../evil", b"x")]))],
            400,
            "points outside",
        ),
        (
            vec![("model", "fake")],
            vec![("bomb.zip", zip_of(&[("a", &vec![0u8; 1 << 20])]))],
            400,
            "more than the limit of 64.0 KiB",
        ),
        (
            vec![("model", "fake")],
            vec![(
                "many.zip",
                zip_of(&[
                    ("a", b"1"),
                    ("b", b"1"),
                    ("c", b"1"),
                    ("d", b"1"),
                    ("e", b"1"),
                    ("f", b"1"),
                ]),
            )],
            400,
            "more than 5 entries",
        ),
        (
            vec![("model", "fake")],
            vec![(
                "cut.tar.gz",
                tar_gz(&[("m/matrix.mtx", &[b'%'; 3000])])[..100].to_vec(),
            )],
            400,
            "damaged or truncated",
        ),
        (
            vec![("model", "fake")],
            vec![("x.zip", zip_of(&[("readme.txt", b"hi")]))],
            400,
            "no matrix.mtx",
        ),
    ];
    for (fields, files, want, needle) in cases {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        let (code, body) = post(&s, "/api/jobs", &fields, &files);
        assert_eq!(code, want, "{needle}: {body}");
        let msg = json(&body)["error"].as_str().unwrap().to_string();
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    // not multipart at all
    let (code, body) = answer(
        ureq::post(&s.url("/api/jobs"))
            .set("Content-Type", "application/json")
            .send_string("{}"),
    );
    assert_eq!(code, 400);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data"),
        "{body}"
    );
    // a body cut short
    let (ct, body) = multipart(&[("model", "fake")], &[("x.h5", HDF5)]);
    let (code, body) = answer(
        ureq::post(&s.url("/api/jobs"))
            .set("Content-Type", &ct)
            .send_bytes(&body[..body.len() - 20]),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("malformed multipart"),
        "{body}"
    );
    // nothing is left behind, and nothing was computed
    assert_eq!(s.jobs_dir_entries(), 0);
    assert!(s.backend.seen.lock().unwrap().is_empty());
    // the server still works
    let id = submit(&s, "fake", &[("x.h5", HDF5)]);
    assert_eq!(wait_finished(&s, &id)["status"], "done");
}

#[test]
fn a_failing_or_panicking_job_fails_alone() {
    let s = start();
    let panicking = submit(&s, "panic", &[("x.h5", HDF5)]);
    let failing = submit(&s, "fail", &[("x.h5", HDF5)]);
    let fine = submit(&s, "fake", &[("x.h5", HDF5)]);
    let v = wait_finished(&s, &panicking);
    assert_eq!(v["status"], "failed");
    assert!(
        v["error"].as_str().unwrap().contains("internal error")
            && v["error"].as_str().unwrap().contains("boom"),
        "{v}"
    );
    assert!(v["files"].as_array().unwrap().is_empty());
    let v = wait_finished(&s, &failing);
    assert_eq!(v["status"], "failed");
    assert_eq!(v["error"], "input.h5: not an AnnData file");
    assert_eq!(wait_finished(&s, &fine)["status"], "done");
    assert_eq!(get(&s, "/").0, 200);
}

#[test]
fn a_full_queue_answers_busy() {
    let s = start_with(Fake::default(), |c| {
        c.queue_capacity = 1;
        c.workers = 1;
    });
    let running = submit(&s, "slow", &[("x.h5", HDF5)]);
    // wait until the worker has taken it
    let t = Instant::now();
    while json(&get(&s, &format!("/api/jobs/{running}")).1)["status"] == "queued" {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let queued = submit(&s, "fake", &[("x.h5", HDF5)]);
    let (code, body) = post(&s, "/api/jobs", &[("model", "fake")], &[("x.h5", HDF5)]);
    assert_eq!(code, 503, "{body}");
    assert!(
        json(&body)["error"].as_str().unwrap().contains("busy"),
        "{body}"
    );
    // the page still answers while the worker is busy
    assert_eq!(get(&s, "/api/status").0, 200);
    assert_eq!(json(&get(&s, "/api/status").1)["jobs_pending"], 2);
    s.backend.release.store(true, Ordering::SeqCst);
    assert_eq!(wait_finished(&s, &running)["status"], "done");
    assert_eq!(wait_finished(&s, &queued)["status"], "done");
    // and takes jobs again
    let again = submit(&s, "fake", &[("x.h5", HDF5)]);
    assert_eq!(wait_finished(&s, &again)["status"], "done");
}

#[test]
fn results_expire() {
    let s = start_with(Fake::default(), |c| c.job_ttl = Duration::from_millis(300));
    let id = submit(&s, "fake", &[("x.h5", HDF5)]);
    let v = wait_finished(&s, &id);
    let url = v["files"][0]["url"].as_str().unwrap().to_string();
    let t = Instant::now();
    while get(&s, &format!("/api/jobs/{id}")).0 == 200 {
        assert!(t.elapsed() < Duration::from_secs(10), "job never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(&s, &url).0, 404);
    assert!(!s.dir.path().join("jobs").join(&id).exists());
}

#[test]
fn no_jobs_until_the_backend_is_ready() {
    let s = start_with(
        Fake {
            not_ready: true,
            ..Fake::default()
        },
        |_| {},
    );
    let (code, html) = get(&s, "/");
    assert_eq!(code, 200);
    assert!(html.contains("training the default model: epoch 3/10"));
    assert!(html.contains("http-equiv=\"refresh\"") && html.contains("id=\"submit\" disabled"));
    let (code, body) = post(&s, "/api/jobs", &[("model", "fake")], &[("x.h5", HDF5)]);
    assert_eq!(code, 503);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("epoch 3/10"),
        "{body}"
    );
    assert_eq!(s.jobs_dir_entries(), 0);
}

#[test]
fn listens_only_where_told() {
    let s = start();
    assert_eq!(s.running.addr.ip().to_string(), "127.0.0.1");
    // another address of this machine (all of 127/8 is loopback on Linux) gets no answer
    let elsewhere = std::net::SocketAddr::from(([127, 0, 0, 2], s.running.addr.port()));
    assert!(std::net::TcpStream::connect_timeout(&elsewhere, Duration::from_secs(2)).is_err());
    assert!(std::net::TcpStream::connect(s.running.addr).is_ok());
}
