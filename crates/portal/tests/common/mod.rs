//! What the portal's HTTP tests share: a fake backend, a server on a free port, requests
//! (through ureq, or raw bytes on a socket), the upload fixtures. Each test file uses only
//! some of it.
#![allow(dead_code)]

pub mod archives;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossomics_portal::{
    Backend, BackendStatus, Coverage, FeatureMean, Input, ModelInfo, PortalConfig, PredictOutput,
    PredictRequest, ResultFile, Running, Stage, Summary,
};
use serde_json::Value;

#[derive(Default)]
pub struct Fake {
    pub not_ready: bool,
    /// the `slow` model waits until this is set
    pub release: AtomicBool,
    pub seen: Mutex<Vec<String>>,
}

pub fn model(id: &str) -> ModelInfo {
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
        ["fake", "panic", "fail", "slow", "big"].map(model).to_vec()
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
            Input::PlainDir(d) => format!("plain {}", d.display()),
            Input::Fragments {
                fragments,
                barcodes,
            } => format!(
                "fragments {} bytes | {}",
                std::fs::metadata(fragments).unwrap().len(),
                std::fs::read_to_string(barcodes)
                    .unwrap_or_else(|_| "gzipped".into())
                    .trim()
            ),
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
        assert!(r.deadline.is_some() && r.memory_limit_bytes > 0);
        let mut result = seen.clone().into_bytes();
        if r.model_id == "big" {
            result.resize(BIG_RESULT, b'.');
        }
        std::fs::write(r.out_dir.join("result.txt"), &result).unwrap();
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

/// Bytes of the `big` model's result.
pub const BIG_RESULT: usize = 40_000;

pub struct Server {
    pub running: Running,
    pub backend: Arc<Fake>,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    pub fn jobs_dir_entries(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("jobs"))
            .unwrap()
            .count()
    }
}

pub fn start_with(fake: Fake, tune: impl FnOnce(&mut PortalConfig)) -> Server {
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

pub fn start() -> Server {
    start_with(Fake::default(), |_| {})
}

/// (status, body) of a request; 4xx/5xx are answers, not errors.
pub fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

pub fn get(s: &Server, path: &str) -> (u16, String) {
    answer(ureq::get(&s.url(path)).call())
}

/// A multipart body: text fields, then files (field name `file`).
pub fn multipart(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
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

pub fn post(
    s: &Server,
    path: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &[u8])],
) -> (u16, String) {
    let (ct, body) = multipart(fields, files);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    answer(
        agent
            .post(&s.url(path))
            .set("Content-Type", &ct)
            .send_bytes(&body),
    )
}

pub fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Asserts that a JSON refusal's `error` message says `needle`.
pub fn assert_error_says(body: &str, needle: &str) {
    let v = json(body);
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {body}"));
    assert!(msg.contains(needle), "{needle}: {msg}");
}

pub fn wait_finished(s: &Server, id: &str) -> Value {
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

pub const MTX: &[u8] = b"%%MatrixMarket matrix coordinate integer general\n3 2 2\n1 1 5\n3 2 1\n";
pub const FEATURES: &[u8] =
    b"G1\tG1\tGene Expression\nG2\tG2\tGene Expression\nG3\tG3\tGene Expression\n";
pub const BARCODES: &[u8] = b"AAAC-1\nAAAG-1\n";
pub const HDF5: &[u8] = b"\x89HDF\r\n\x1a\n and the rest of a file";

pub fn submit(s: &Server, model: &str, files: &[(&str, &[u8])]) -> String {
    let (code, body) = post(s, "/api/jobs", &[("model", model)], files);
    assert_eq!(code, 202, "{body}");
    let v = json(&body);
    v["id"].as_str().unwrap().to_string()
}

/// The CSRF cookie (`name=value`) and the form's token, as a browser gets them from the
/// start page.
pub fn form_token(s: &Server) -> (String, String) {
    let resp = ureq::get(&s.url("/")).call().unwrap();
    let cookie = resp
        .header("set-cookie")
        .expect("the start page sets the CSRF cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = resp.into_string().unwrap();
    let token = html
        .split("name=\"csrf\" id=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    (cookie, token)
}

/// A POST with extra headers; (status, body, Location).
pub fn post_with(
    s: &Server,
    path: &str,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
    files: &[(&str, &[u8])],
) -> (u16, String, Option<String>) {
    let (ct, body) = multipart(fields, files);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let mut req = agent.post(&s.url(path)).set("Content-Type", &ct);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_bytes(&body) {
        Ok(r) => {
            let loc = r.header("location").map(str::to_string);
            (r.status(), r.into_string().unwrap(), loc)
        }
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap(), None),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// A request as bytes (HTTP/1.1, closing the connection after the answer).
pub fn request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `bytes` on a new connection and reads the answer to its end: (status, head,
/// body); status 0 when the connection closed without one.
pub fn raw(s: &Server, bytes: &[u8]) -> (u16, String, String) {
    let mut c = TcpStream::connect(s.running.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(bytes).unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

pub fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Opens a connection and sends an upload's headers (announcing `len` body bytes) and
/// the first `sent` of them.
pub fn stalled_upload(s: &Server, len: usize, sent: usize) -> TcpStream {
    let (ct, mut body) = multipart(&[("model", "fake")], &[("x.h5", &vec![b'x'; len])]);
    let head = format!(
        "POST /api/jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        s.running.addr,
        body.len()
    );
    body.truncate(sent);
    let mut c = TcpStream::connect(s.running.addr).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&body).unwrap();
    c
}

pub fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}
