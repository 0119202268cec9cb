//! Every route of the portal over real HTTP, with a fake backend (the translators'
//! backend is tested in crossomics-runner's tests/portal.rs): uploads of each kind,
//! each refusal, failures isolated to their job, the bounded queue, expiry; and the
//! defences against hostile clients (hosts, origins, CSRF, security headers, caps on
//! parts and fields, timeouts, the connection cap, the disk quota, job time limits).
//! `crossomics-runner`'s tests/hostile_portal.rs repeats the attacks against the real
//! server process, with its memory watched.

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
const BIG_RESULT: usize = 40_000;

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
    assert_eq!(json(&body).as_array().unwrap().len(), 5);
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
    assert!(html.contains(&id) && html.contains("/static/job.js"));
}

fn jobs_like_id() -> String {
    "0123456789abcdef0123456789abcdef".into()
}

/// The CSRF cookie (`name=value`) and the form's token, as a browser gets them from the
/// start page.
fn form_token(s: &Server) -> (String, String) {
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
fn post_with(
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

#[test]
fn the_form_redirects_to_the_job_page() {
    let s = start();
    let (cookie, token) = form_token(&s);
    let origin = s.url("");
    let headers = [("Cookie", cookie.as_str()), ("Origin", origin.as_str())];
    let (code, _, location) = post_with(
        &s,
        "/jobs",
        &headers,
        &[("csrf", &token), ("model", "fake"), ("genome", "")],
        &[("x.h5", HDF5)],
    );
    assert_eq!(code, 303);
    let location = location.unwrap();
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
    let (code, html, _) = post_with(
        &s,
        "/jobs",
        &headers,
        &[("csrf", &token), ("model", "nope")],
        &[("x.h5", HDF5)],
    );
    assert_eq!(code, 400);
    assert!(
        html.contains("unknown model `nope`") && html.contains("<html"),
        "{html}"
    );
}

/// A request as bytes (HTTP/1.1, closing the connection after the answer).
fn request(method: &str, path: &str, host: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
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
fn raw(s: &Server, bytes: &[u8]) -> (u16, String, String) {
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

#[test]
fn foreign_hosts_and_cross_site_requests_are_refused() {
    let s = start_with(Fake::default(), |c| {
        c.allowed_hosts = vec!["portal.example.org".into()];
    });
    let port = s.running.addr.port();
    // DNS rebinding: a page of evil.example whose name now points here
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("localhost:{}", port + 1),
        "127.0.0.1".to_string(),
    ] {
        for path in ["/api/status", "/"] {
            let (code, _, body) = raw(&s, &request("GET", path, &host, &[], b""));
            assert_eq!(code, 421, "{host}{path}: {body}");
            assert!(body.contains("does not answer to the host"), "{body}");
        }
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("LOCALHOST.:{port}"),
        "portal.example.org".to_string(),
        "portal.example.org:443".to_string(),
    ] {
        let (code, _, body) = raw(&s, &request("GET", "/api/status", &host, &[], b""));
        assert_eq!(code, 200, "{host}: {body}");
    }
    let (code, _, _) = raw(&s, b"GET /api/status HTTP/1.0\r\n\r\n");
    assert_eq!(code, 400);
    // state changes from another site create nothing
    let (cookie, token) = form_token(&s);
    let own = s.url("");
    let evil = "http://evil.example";
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/api/jobs", vec![("Origin", evil)]),
        ("/api/jobs", vec![("Origin", "null")]),
        (
            "/api/jobs",
            vec![("Referer", "http://evil.example/page.html")],
        ),
        (
            "/api/jobs",
            vec![("Origin", &own), ("Sec-Fetch-Site", "cross-site")],
        ),
        // a browser's request (it carries cookies) without an Origin
        ("/api/jobs", vec![("Cookie", &cookie)]),
        ("/jobs", vec![("Origin", evil), ("Cookie", &cookie)]),
        (
            "/jobs",
            vec![
                ("Origin", "https://portal.example.org.evil.example"),
                ("Cookie", &cookie),
            ],
        ),
    ];
    for (path, headers) in &cases {
        let (code, body, _) = post_with(
            &s,
            path,
            headers,
            &[("csrf", &token), ("model", "fake")],
            &[("x.h5", HDF5)],
        );
        assert_eq!(code, 403, "{path} {headers:?}: {body}");
        assert!(body.contains("cross-site request refused"), "{body}");
    }
    // the form without its token, with a wrong one, or without the cookie
    let other = form_token(&s);
    for (headers, fields) in [
        (vec![("Cookie", cookie.as_str())], vec![("model", "fake")]),
        (
            vec![("Cookie", cookie.as_str())],
            vec![("csrf", other.1.as_str()), ("model", "fake")],
        ),
        (vec![], vec![("csrf", token.as_str()), ("model", "fake")]),
        (vec![("Cookie", cookie.as_str())], vec![("csrf", "00ff")]),
    ] {
        let (code, body, _) = post_with(&s, "/jobs", &headers, &fields, &[("x.h5", HDF5)]);
        assert_eq!(code, 403, "{headers:?} {fields:?}: {body}");
        assert!(body.contains("security token"), "{body}");
    }
    assert_eq!(s.jobs_dir_entries(), 0);
    assert!(s.backend.seen.lock().unwrap().is_empty());
    // this server's own origin (or the proxy's name) is fine
    for origin in [own.as_str(), "https://portal.example.org"] {
        let (code, body, _) = post_with(
            &s,
            "/api/jobs",
            &[("Origin", origin), ("Cookie", &cookie)],
            &[("model", "fake")],
            &[("x.h5", HDF5)],
        );
        assert_eq!(code, 202, "{origin}: {body}");
    }
}

fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

#[test]
fn every_answer_carries_the_security_headers() {
    let s = start();
    let id = submit(&s, "fake", &[("x.h5", HDF5)]);
    let v = wait_finished(&s, &id);
    let file = v["files"][0]["url"].as_str().unwrap().to_string();
    let host = s.running.addr.to_string();
    for (path, host, want) in [
        ("/", host.as_str(), 200),
        ("/api/status", &host, 200),
        ("/api/models", &host, 200),
        (&format!("/jobs/{id}"), &host, 200),
        (&format!("/api/jobs/{id}"), &host, 200),
        (&file, &host, 200),
        ("/static/portal.css", &host, 200),
        ("/static/job.js", &host, 200),
        ("/nowhere", &host, 404),
        ("/api/status", "evil.example", 421),
    ] {
        let (code, head, _) = raw(&s, &request("GET", path, host, &[], b""));
        assert_eq!(code, want, "{path}: {head}");
        let csp = header_of(&head, "content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {head}"
        );
        for (k, v) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "same-origin"),
        ] {
            assert_eq!(header_of(&head, k), Some(v), "{path}: {head}");
        }
    }
    // downloads are attachments in a sandbox; pages allow their own script and style only
    let (_, head, _) = raw(&s, &request("GET", &file, &host, &[], b""));
    assert_eq!(
        header_of(&head, "content-disposition"),
        Some("attachment; filename=\"result.txt\"")
    );
    assert!(
        header_of(&head, "content-security-policy")
            .unwrap()
            .contains("sandbox")
    );
    let (_, head, html) = raw(&s, &request("GET", &format!("/jobs/{id}"), &host, &[], b""));
    assert!(
        header_of(&head, "content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(html.contains("<script src=\"/static/job.js\">") && !html.contains("<style"));
    let (_, head, js) = raw(&s, &request("GET", "/static/job.js", &host, &[], b""));
    assert!(
        header_of(&head, "content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.contains("$(\"job-id\").textContent"));
    let (_, head, _) = raw(&s, &request("GET", "/", &host, &[], b""));
    let cookie = header_of(&head, "set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

#[test]
fn parts_and_fields_are_capped_without_reading_them_whole() {
    let s = start_with(Fake::default(), |c| {
        c.max_parts = 3;
        c.max_field_bytes = 16;
    });
    let files: Vec<(&str, &[u8])> = (0..4).map(|_| ("x.h5", HDF5)).collect();
    let (code, body) = post(&s, "/api/jobs", &[("model", "fake")], &files);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("more than 3 files"), "{body}");
    let long = "m".repeat(17);
    let (code, body) = post(&s, "/api/jobs", &[("model", &long)], &[("x.h5", HDF5)]);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("`model` is longer than 16 bytes"), "{body}");
    let (code, body) = post(
        &s,
        "/api/jobs",
        &[("model", "fake"), ("model", "slow")],
        &[("x.h5", HDF5)],
    );
    assert_eq!(code, 400);
    assert!(body.contains("given twice"), "{body}");
    // a field of 100 MB announced, 256 KiB of it sent, then nothing: refused at once
    let boundary = "b0undary";
    let mut start =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"genome\"\r\n\r\n")
            .into_bytes();
    start.extend(vec![b'g'; 256 << 10]);
    let head = format!(
        "POST /api/jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000000\r\n\r\n",
        s.running.addr
    );
    let mut c = TcpStream::connect(s.running.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&start).unwrap();
    let t = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = c.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(3));
    drop(c);
    let t = Instant::now();
    while s.jobs_dir_entries() > 0 {
        assert!(t.elapsed() < Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a connection and sends an upload's headers (announcing `len` body bytes) and
/// the first `sent` of them.
fn stalled_upload(s: &Server, len: usize, sent: usize) -> TcpStream {
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

fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}

#[test]
fn stalled_uploads_time_out_and_hung_up_ones_leave_nothing() {
    let s = start_with(Fake::default(), |c| {
        c.body_idle_timeout = Duration::from_millis(500);
        c.max_uploads_in_flight = 1;
    });
    // a stalled upload holds the one upload slot: the next is told "busy"
    let mut c = stalled_upload(&s, 100_000, 20_000);
    until("the upload's folder", Duration::from_secs(2), || {
        s.jobs_dir_entries() == 1
    });
    let (code, body) = post(&s, "/api/jobs", &[("model", "fake")], &[("x.h5", HDF5)]);
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("uploads are already being received"),
        "{body}"
    );
    // then it is given up: 408, and its folder is gone
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("no data arrived for 0.5 s"), "{answer}");
    assert_eq!(s.jobs_dir_entries(), 0);
    // a client that hangs up mid-body: its folder goes at once
    let c = stalled_upload(&s, 100_000, 20_000);
    until("the upload's folder", Duration::from_secs(2), || {
        s.jobs_dir_entries() == 1
    });
    drop(c);
    let took = until("the folder deleted", Duration::from_secs(2), || {
        s.jobs_dir_entries() == 0
    });
    assert!(took < Duration::from_secs(1), "{took:?}");
    // and the slot is free again
    until("the upload slot", Duration::from_secs(2), || {
        json(&get(&s, "/api/status").1)["uploads_in_flight"] == 0
    });
    let id = submit(&s, "fake", &[("x.h5", HDF5)]);
    assert_eq!(wait_finished(&s, &id)["status"], "done");
}

#[test]
fn slow_headers_are_cut_off_and_connections_are_capped() {
    let s = start_with(Fake::default(), |c| {
        c.header_timeout = Duration::from_millis(700);
        c.max_connections = 6;
    });
    let half = format!(
        "GET /api/status HTTP/1.1\r\nHost: {}\r\nX-Slow: ",
        s.running.addr
    );
    let t = Instant::now();
    let mut held: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut c = TcpStream::connect(s.running.addr).unwrap();
            c.write_all(half.as_bytes()).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // one more is answered busy and closed at once
    let mut extra = TcpStream::connect(s.running.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("too many connections"),
        "{answer}"
    );
    // the held ones are closed when their header time is up
    for c in &mut held {
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    let closed = t.elapsed();
    assert!(
        closed >= Duration::from_millis(600) && closed < Duration::from_secs(3),
        "{closed:?}"
    );
    drop(held);
    // and the server answers again
    until(
        "the server answering",
        Duration::from_secs(2),
        || matches!(ureq::get(&s.url("/api/status")).call(), Ok(r) if r.status() == 200),
    );
}

#[test]
fn a_job_over_its_time_limit_fails_and_frees_the_queue() {
    let s = start_with(Fake::default(), |c| {
        c.job_timeout = Duration::from_millis(300);
    });
    let id = submit(&s, "slow", &[("x.h5", HDF5)]);
    let v = wait_finished(&s, &id);
    assert_eq!(v["status"], "failed", "{v}");
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains("stopped after") && err.contains("--job-timeout-seconds"),
        "{err}"
    );
    // the backend returns once it honours the deadline (here: once released)
    s.backend.release.store(true, Ordering::SeqCst);
    let id2 = submit(&s, "fake", &[("x.h5", HDF5)]);
    assert_eq!(wait_finished(&s, &id2)["status"], "done");
    // the late result of the stopped job was not kept
    let v = json(&get(&s, &format!("/api/jobs/{id}")).1);
    assert_eq!(v["status"], "failed");
    assert!(v["files"].as_array().unwrap().is_empty());
    assert!(
        !s.dir
            .path()
            .join("jobs")
            .join(&id)
            .join("result.txt")
            .exists()
    );
}

#[test]
fn the_disk_quota_deletes_the_oldest_results_first_then_refuses() {
    let quota = (BIG_RESULT as u64) * 5 / 2;
    let s = start_with(Fake::default(), |c| c.disk_quota_bytes = quota);
    let oldest = submit(&s, "big", &[("x.h5", HDF5)]);
    assert_eq!(wait_finished(&s, &oldest)["status"], "done");
    let older = submit(&s, "big", &[("x.h5", HDF5)]);
    assert_eq!(wait_finished(&s, &older)["status"], "done");
    let st = json(&get(&s, "/api/status").1);
    assert_eq!(st["disk_quota_bytes"], quota);
    assert!(st["disk_used_bytes"].as_u64().unwrap() >= 2 * BIG_RESULT as u64);
    // a third result goes over the quota: the oldest is deleted, the others stay
    let newest = submit(&s, "big", &[("x.h5", HDF5)]);
    assert_eq!(wait_finished(&s, &newest)["status"], "done");
    until("the oldest result deleted", Duration::from_secs(5), || {
        get(&s, &format!("/api/jobs/{oldest}")).0 == 404
    });
    assert!(!s.dir.path().join("jobs").join(&oldest).exists());
    for id in [&older, &newest] {
        assert_eq!(get(&s, &format!("/api/jobs/{id}")).0, 200);
    }
    // an upload that cannot fit even with every result deleted: 507, and nothing deleted
    // (answered on its Content-Length, before a byte of its body is read)
    let head = format!(
        "POST /api/jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        s.running.addr,
        quota + 1000
    );
    let (code, _, body) = raw(&s, head.as_bytes());
    assert_eq!(code, 507, "{body}");
    assert!(body.contains("disk quota"), "{body}");
    for id in [&older, &newest] {
        assert_eq!(get(&s, &format!("/api/jobs/{id}")).0, 200);
    }
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
        c.limits.max_unpacked_bytes = 64 * 1024;
        c.limits.max_archive_entries = 5;
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
            413,
            "over the limit of 64.0 KiB bytes one archive unpacks to",
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
            413,
            "(6) is over the limit of 5 entries",
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
