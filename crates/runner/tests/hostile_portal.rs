//! `crossomics serve` as a separate process against hostile clients (localhost only):
//! foreign `Host` headers and cross-site posts, half-sent requests by the hundred, gzip
//! bombs and endless lines, archives whose headers claim the impossible, too many parts,
//! oversized fields, clients that hang up, a full disk quota. The server's memory is read
//! from `/proc/<pid>/status` while it is attacked. Each case failed against the portal
//! before its hardening (see docs/portal.md, Security).
//!
//! The servers share one small model: a ridge translation run on the bundled sample,
//! trained once for the file (seconds).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The models folder: one ridge translation run (both directions), trained once.
fn models() -> &'static Path {
    static M: OnceLock<tempfile::TempDir> = OnceLock::new();
    M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = root().join("configs/translation_bmmc.toml");
        let o = Command::new(env!("CARGO_BIN_EXE_crossomics"))
            .arg("run")
            .arg(&cfg)
            .args([
                "--set",
                "model={ kind = \"ridge\" }",
                "--set",
                "name=hostile",
                "--set",
                "output.plots=false",
                "--out",
                "models",
            ])
            .current_dir(dir.path())
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        dir
    })
    .path()
}

struct Server {
    child: Child,
    addr: SocketAddr,
    work: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// A server over the shared model with its own work folder and `extra` flags.
    fn start(extra: &[&str]) -> Self {
        let work = tempfile::tempdir().unwrap();
        let flags = [&["--no-default-models"][..], extra].concat();
        let (child, url) = common::spawn_serve(&models().join("models"), work.path(), &flags);
        let addr = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("unexpected address: {url}"))
            .parse()
            .unwrap();
        let s = Self { child, addr, work };
        let st = s.status();
        assert_eq!(st["ready"], true, "{st}");
        s
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn status(&self) -> Value {
        get_json(&self.url("/api/status"))
    }

    fn model(&self) -> String {
        let models = get_json(&self.url("/api/models"));
        models
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["direction"] == "rna_to_atac")
            .unwrap_or_else(|| panic!("no rna_to_atac model in {models}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Job folders on disk (finished, waiting, or uploads being received).
    fn folders(&self) -> usize {
        std::fs::read_dir(self.work.path().join("jobs"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// (VmRSS, VmHWM) of the server process, in MiB.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap()
                / 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// What a server may add to its memory under attack, over what it held before.
const MEMORY_HEADROOM_MIB: u64 = 64;

/// The server's peak memory (VmHWM) stayed within the headroom over `before` (VmRSS).
fn check_memory(s: &Server, before: u64) {
    let (now, peak) = s.memory();
    eprintln!("server memory: {before} MiB before, {peak} MiB at the peak, {now} MiB now");
    assert!(
        peak < before + MEMORY_HEADROOM_MIB,
        "memory: {before} MiB before, {peak} MiB at the peak"
    );
}

fn get_json(url: &str) -> Value {
    let resp = ureq::get(url)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    serde_json::from_str(&resp.into_string().unwrap()).unwrap()
}

fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

const BOUNDARY: &str = "----hostile-portal-test";

fn part_head(name: &str, file: Option<&str>) -> Vec<u8> {
    match file {
        Some(f) => format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\r\n"
        ),
        None => format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
    }
    .into_bytes()
}

/// A multipart body: text fields, then files (field `file`).
fn multipart(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(part_head(k, None));
        body.extend_from_slice(v.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    for (name, bytes) in files {
        body.extend(part_head("file", Some(name)));
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend(format!("--{BOUNDARY}--\r\n").into_bytes());
    body
}

/// The head of a POST of `len` body bytes.
fn post_head(s: &Server, path: &str, headers: &[(&str, &str)], len: u64) -> Vec<u8> {
    let mut h = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len}\r\n",
        s.addr
    );
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// The answer on `c` read to its end: (status, head, body); status 0 when the
/// connection closed (or was reset) without one.
fn read_answer(c: &mut TcpStream) -> (u16, String, String) {
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

fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Sends `bytes` on a new connection and reads the answer.
fn raw(s: &Server, bytes: &[u8]) -> (u16, String, String) {
    let mut c = connect(s);
    // the server may answer (and close) before all is sent: that is its right
    let _ = c.write_all(bytes);
    read_answer(&mut c)
}

fn get_raw(s: &Server, path: &str, host: &str) -> (u16, String, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    raw(s, req.as_bytes())
}

/// POSTs a multipart body; (status, head, body).
fn post(s: &Server, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    let mut bytes = post_head(s, path, headers, body.len() as u64);
    bytes.extend_from_slice(body);
    raw(s, &bytes)
}

fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `n` gzip members of `block` one after the other: a file that inflates to `n` times
/// `block`, made without compressing all of it.
fn gzip_repeat(block: &[u8], n: usize) -> Vec<u8> {
    gzip(block).repeat(n)
}

/// A gzipped MatrixMarket matrix whose header is followed by `mib` MiB of comment lines.
fn mtx_bomb(mib: usize) -> Vec<u8> {
    let mut b = gzip(b"%%MatrixMarket matrix coordinate integer general\n");
    // lines of 1 KiB, under the line limit
    let mut line = vec![b'%'; 1023];
    line.push(b'\n');
    b.extend(gzip_repeat(&line.repeat(1 << 10), mib));
    b
}

/// A matching 10x folder of the bundled sample's first `n` cells (RNA only, features x
/// barcodes), as (name, bytes).
fn tenx_rna(n: usize) -> Vec<(String, Vec<u8>)> {
    let d = crossomics_data::sample::bmmc_multiome_starter().unwrap();
    let n = n.min(d.n_cells());
    let mut entries = Vec::new();
    for (r, c, v) in d.rna.triplet_iter() {
        if r < n && *v != 0.0 {
            entries.push(format!("{} {} {}\n", c + 1, r + 1, v));
        }
    }
    let mut mtx = format!(
        "%%MatrixMarket matrix coordinate real general\n{} {n} {}\n",
        d.genes.len(),
        entries.len()
    );
    mtx.extend(entries);
    let features: String = d
        .genes
        .iter()
        .map(|g| format!("{g}\t{g}\tGene Expression\n"))
        .collect();
    let barcodes: String = d.cells.barcodes()[..n]
        .iter()
        .map(|b| format!("{b}\n"))
        .collect();
    vec![
        ("matrix.mtx".into(), mtx.into_bytes()),
        ("features.tsv".into(), features.into_bytes()),
        ("barcodes.tsv".into(), barcodes.into_bytes()),
    ]
}

fn tar_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn submit(s: &Server, files: &[(String, Vec<u8>)]) -> String {
    let model = s.model();
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    let (code, _, body) = post(
        s,
        "/api/jobs",
        &[],
        &multipart(&[("model", &model)], &files),
    );
    assert_eq!(code, 202, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

fn wait_finished(s: &Server, id: &str) -> Value {
    let t = Instant::now();
    loop {
        let v = get_json(&s.url(&format!("/api/jobs/{id}")));
        if v["status"] == "done" || v["status"] == "failed" {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "job {id}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn foreign_hosts_and_cross_site_posts_are_refused_and_answers_carry_security_headers() {
    let s = Server::start(&["--allowed-host", "portal.example.org"]);
    let port = s.addr.port();
    let model = s.model();
    // DNS rebinding: evil.example resolves to 127.0.0.1, the page reads the API
    for host in ["evil.example".to_string(), format!("evil.example:{port}")] {
        for path in ["/", "/api/status", "/api/models"] {
            let (code, _, body) = get_raw(&s, path, &host);
            assert_eq!(code, 421, "{host}{path}: {body}");
            assert!(body.contains("does not answer to the host"), "{body}");
        }
    }
    for host in [format!("localhost:{port}"), "portal.example.org".into()] {
        assert_eq!(get_raw(&s, "/api/status", &host).0, 200, "{host}");
    }
    // a form on evil.example posting here, with and without the user's cookie
    let (_, head, html) = get_raw(&s, "/", &s.addr.to_string());
    let cookie = header_of(&head, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let token = html
        .split("name=\"csrf\" id=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let files = tenx_rna(50);
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    let with_token = multipart(&[("csrf", &token), ("model", &model)], &files);
    let without = multipart(&[("model", &model)], &files);
    let evil = ("Origin", "http://evil.example");
    for (path, headers, body, want) in [
        (
            "/api/jobs",
            vec![evil],
            &without,
            "cross-site request refused",
        ),
        ("/jobs", vec![evil], &without, "cross-site request refused"),
        (
            "/jobs",
            vec![evil, ("Cookie", cookie.as_str())],
            &with_token,
            "cross-site request refused",
        ),
        (
            "/jobs",
            vec![("Referer", "http://evil.example/x.html")],
            &with_token,
            "cross-site request refused",
        ),
        (
            "/api/jobs",
            vec![("Sec-Fetch-Site", "cross-site")],
            &without,
            "cross-site request refused",
        ),
        // the form of this server, but without its token
        (
            "/jobs",
            vec![("Cookie", cookie.as_str())],
            &without,
            "security token",
        ),
    ] {
        let (code, _, answer) = post(&s, path, &headers, body);
        assert_eq!(code, 403, "{path} {headers:?}: {answer}");
        assert!(answer.contains(want), "{answer}");
    }
    assert_eq!(s.folders(), 0, "a refused post left a job folder");
    assert_eq!(s.status()["jobs_pending"], 0);
    // the same form from this server's own page goes through
    let own = s.url("");
    let (code, head, _) = post(
        &s,
        "/jobs",
        &[("Cookie", &cookie), ("Origin", &own)],
        &with_token,
    );
    assert_eq!(code, 303, "{head}");
    let id = header_of(&head, "location")
        .unwrap()
        .trim_start_matches("/jobs/")
        .to_string();
    let job = wait_finished(&s, &id);
    assert_eq!(job["status"], "done", "{job}");
    // every answer carries the security headers; downloads are attachments
    let file = job["files"][0]["url"].as_str().unwrap().to_string();
    for path in [
        "/",
        "/api/status",
        &format!("/jobs/{id}"),
        &format!("/api/jobs/{id}"),
        "/static/job.js",
        &file,
    ] {
        let (code, head, _) = get_raw(&s, path, &s.addr.to_string());
        assert_eq!(code, 200, "{path}");
        let csp = header_of(&head, "content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
            "{path}: {head}"
        );
        assert_eq!(header_of(&head, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header_of(&head, "x-frame-options"), Some("DENY"));
        assert_eq!(header_of(&head, "referrer-policy"), Some("same-origin"));
        if path == file {
            assert!(
                header_of(&head, "content-disposition")
                    .unwrap()
                    .starts_with("attachment;"),
                "{head}"
            );
        }
    }
}

#[test]
fn half_sent_requests_are_closed_within_the_timeouts_and_connections_are_capped() {
    let s = Server::start(&[
        "--header-timeout-seconds",
        "2",
        "--body-idle-timeout-seconds",
        "2",
        "--max-connections",
        "220",
    ]);
    let model = s.model();
    let (before, _) = s.memory();
    let body = multipart(&[("model", &model)], &[("rna.h5ad", &[b'x'; 100_000])]);
    let t = Instant::now();
    let mut held = Vec::new();
    for i in 0..200 {
        let mut c = connect(&s);
        match i % 4 {
            // headers never finished
            0 => c
                .write_all(
                    format!("GET /api/status HTTP/1.1\r\nHost: {}\r\nX-Slow: ", s.addr).as_bytes(),
                )
                .unwrap(),
            // nothing at all
            1 => {}
            // an upload whose body stalls (4 take the upload slots, the rest are busy)
            2 => {
                // (a busy server may answer, and close, at once)
                let _ = c.write_all(&post_head(&s, "/api/jobs", &[], body.len() as u64));
                let _ = c.write_all(&body[..50_000]);
            }
            // a request line that never ends
            _ => c.write_all(b"GET /api/status?").unwrap(),
        }
        held.push(c);
    }
    // the server answers meanwhile, promptly
    for _ in 0..5 {
        let q = Instant::now();
        assert_eq!(s.status()["ready"], true);
        assert!(q.elapsed() < Duration::from_secs(1), "{:?}", q.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    // and closes every one of them within the timeouts (2 s, plus slack for 2 cores)
    let mut answers = std::collections::BTreeMap::<u16, usize>::new();
    for c in &mut held {
        let (code, _, _) = read_answer(c);
        *answers.entry(code).or_default() += 1;
    }
    let closed = t.elapsed();
    assert!(closed < Duration::from_secs(8), "closed after {closed:?}");
    // stalled uploads: 408 (those holding a slot) or 503 (busy); others closed or 408
    assert!(
        answers.keys().all(|c| [0, 408, 503].contains(c)),
        "{answers:?}"
    );
    assert!(answers.get(&408).copied().unwrap_or(0) >= 4, "{answers:?}");
    drop(held);
    until("the upload folders deleted", Duration::from_secs(2), || {
        s.folders() == 0
    });
    assert_eq!(s.status()["uploads_in_flight"], 0);
    // the connection cap: 220 idle connections held, one more is told 503 at once
    let idle: Vec<TcpStream> = (0..220).map(|_| connect(&s)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let q = Instant::now();
    let mut extra = connect(&s);
    let _ = extra.write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n");
    let (code, _, body) = read_answer(&mut extra);
    assert!(code == 503 || code == 0, "{code} {body}");
    assert!(q.elapsed() < Duration::from_secs(1));
    // when the idle ones time out the server takes connections again
    until("the server answering again", Duration::from_secs(6), || {
        get_raw(&s, "/api/status", &s.addr.to_string()).0 == 200
    });
    drop(idle);
    check_memory(&s, before);
}

#[test]
fn bombs_and_endless_lines_are_refused_naming_the_limit_with_memory_bounded() {
    let s = Server::start(&["--max-inflated-bytes", "256MiB"]);
    let model = s.model();
    let (before, _) = s.memory();
    let features = b"G1\tG1\tGene Expression\nG2\tG2\tGene Expression\n".to_vec();
    let barcodes = b"AAAC-1\n".to_vec();
    let send = |files: &[(&str, &[u8])]| {
        let t = Instant::now();
        let (code, _, body) = post(
            &s,
            "/api/jobs",
            &[],
            &multipart(&[("model", &model)], files),
        );
        (code, body, t.elapsed())
    };
    // a loose matrix.mtx.gz of 1 KiB of header and 1 GiB of comments (1 MB gzipped)
    let bomb = mtx_bomb(1024);
    let (code, body, took) = send(&[
        ("matrix.mtx.gz", &bomb),
        ("features.tsv", &features),
        ("barcodes.tsv", &barcodes),
    ]);
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("matrix.mtx.gz") && body.contains("--max-inflated-bytes"),
        "{body}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    // the same bomb inside a tar: counted by what it inflates to, not by its 1 MB
    let tar = tar_of(&[
        ("m/matrix.mtx.gz".into(), bomb.clone()),
        ("m/features.tsv".into(), features.clone()),
        ("m/barcodes.tsv".into(), barcodes.clone()),
    ]);
    let (code, body, _) = send(&[("sample.tar", &tar)]);
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("m/matrix.mtx.gz") && body.contains("--max-inflated-bytes"),
        "{body}"
    );
    // a 2 GiB line, gzipped (2 MB): cut off at the line limit (64 KiB)
    let line = gzip_repeat(&vec![b'A'; 1 << 20], 2048);
    let (code, body, took) = send(&[
        (
            "matrix.mtx",
            b"%%MatrixMarket matrix coordinate integer general\n2 1 1\n1 1 1\n",
        ),
        ("features.tsv.gz", &line),
        ("barcodes.tsv", &barcodes),
    ]);
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("features.tsv.gz") && body.contains("--max-line-bytes"),
        "{body}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    // a 256 MiB line sent as it is, generated on the fly
    let mut c = connect(&s);
    let mtx: &[u8] = b"%%MatrixMarket matrix coordinate integer general\n2 1 1\n1 1 1\n";
    let mut head_parts = part_head("model", None);
    head_parts.extend(format!("{model}\r\n").into_bytes());
    head_parts.extend(part_head("file", Some("matrix.mtx")));
    head_parts.extend_from_slice(mtx);
    head_parts.extend_from_slice(b"\r\n");
    head_parts.extend(part_head("file", Some("barcodes.tsv")));
    head_parts.extend_from_slice(b"AAAC-1\n\r\n");
    head_parts.extend(part_head("file", Some("features.tsv")));
    let tail = format!("\r\n--{BOUNDARY}--\r\n").into_bytes();
    let line_len: u64 = 256 << 20;
    let total = head_parts.len() as u64 + line_len + tail.len() as u64;
    c.write_all(&post_head(&s, "/api/jobs", &[], total))
        .unwrap();
    c.write_all(&head_parts).unwrap();
    let chunk = vec![b'A'; 1 << 20];
    for _ in 0..(line_len >> 20) {
        c.write_all(&chunk).unwrap();
    }
    c.write_all(&tail).unwrap();
    let (code, _, body) = read_answer(&mut c);
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("features.tsv") && body.contains("--max-line-bytes"),
        "{body}"
    );
    assert_eq!(s.folders(), 0);
    check_memory(&s, before);
}

#[test]
fn archive_headers_claiming_huge_names_or_a_million_entries_are_refused() {
    let s = Server::start(&[]);
    let model = s.model();
    let (before, _) = s.memory();
    let send = |name: &str, bytes: &[u8]| {
        let (code, _, body) = post(
            &s,
            "/api/jobs",
            &[],
            &multipart(&[("model", &model)], &[(name, bytes)]),
        );
        (code, body)
    };
    // tar extension headers claiming 1 GiB (of which nothing follows)
    for (kind, what) in [
        (
            tar::EntryType::GNULongName,
            "GNU long name header of 1.0 GiB",
        ),
        (tar::EntryType::XHeader, "pax extension header of 1.0 GiB"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_mode(0o644);
        h.set_size(1 << 30);
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend(vec![b'n'; 64 << 10]);
        let (code, body) = send("x.tar", &bytes);
        assert_eq!(code, 400, "{body}");
        assert!(body.contains(what), "{body}");
    }
    // a zip whose end record claims a million entries (zip64)
    let mut z = Vec::new();
    let count: u64 = 1_000_000;
    z.extend_from_slice(b"PK\x06\x06");
    z.extend_from_slice(&44u64.to_le_bytes());
    z.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend_from_slice(&count.to_le_bytes());
    z.extend_from_slice(&count.to_le_bytes());
    z.extend_from_slice(&(count * 46).to_le_bytes());
    z.extend_from_slice(&0u64.to_le_bytes());
    z.extend_from_slice(b"PK\x06\x07");
    z.extend_from_slice(&0u32.to_le_bytes());
    z.extend_from_slice(&0u64.to_le_bytes());
    z.extend_from_slice(&1u32.to_le_bytes());
    z.extend_from_slice(b"PK\x05\x06");
    z.extend_from_slice(&[0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    z.extend_from_slice(&[0xFF; 8]);
    z.extend_from_slice(&[0, 0]);
    // in front of it, 1 MB that zip readers would take as the directory's room
    let mut bytes = b"PK\x03\x04".to_vec();
    bytes.extend(vec![0u8; 1 << 20]);
    bytes.extend(z);
    let (code, body) = send("x.zip", &bytes);
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("(1000000) is over the limit of 100 entries")
            && body.contains("--max-archive-entries"),
        "{body}"
    );
    assert_eq!(s.folders(), 0);
    check_memory(&s, before);
}

#[test]
fn too_many_parts_and_oversized_fields_are_refused_without_reading_them() {
    let s = Server::start(&[]);
    let model = s.model();
    let files: Vec<(&str, &[u8])> = (0..9).map(|_| ("x.tsv", &b"AAAC\n"[..])).collect();
    let (code, _, body) = post(
        &s,
        "/api/jobs",
        &[],
        &multipart(&[("model", &model)], &files),
    );
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("more than 8 files"), "{body}");
    // a `model` field of 1 GB announced; 1 MiB sent, then the client waits
    let mut c = connect(&s);
    c.write_all(&post_head(&s, "/api/jobs", &[], 1 << 30))
        .unwrap();
    c.write_all(&part_head("model", None)).unwrap();
    // (the server may refuse, and close, before all of it is written)
    let _ = c.write_all(&vec![b'm'; 1 << 20]);
    let t = Instant::now();
    let (code, _, body) = read_answer(&mut c);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("`model` is longer than 256 bytes"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    until("the folder deleted", Duration::from_secs(2), || {
        s.folders() == 0
    });
}

#[test]
fn a_client_hanging_up_mid_upload_or_while_it_unpacks_leaves_no_folder() {
    let s = Server::start(&[]);
    let model = s.model();
    // mid-body
    let body = multipart(&[("model", &model)], &[("rna.h5ad", &vec![b'x'; 4 << 20])]);
    let mut c = connect(&s);
    c.write_all(&post_head(&s, "/api/jobs", &[], body.len() as u64))
        .unwrap();
    c.write_all(&body[..2 << 20]).unwrap();
    until("the upload's folder", Duration::from_secs(5), || {
        s.folders() == 1
    });
    drop(c);
    let took = until("the folder deleted", Duration::from_secs(5), || {
        s.folders() == 0
    });
    assert!(took < Duration::from_secs(1), "{took:?}");
    // while it unpacks: a tar.gz whose matrix.mtx.gz inflates to 3 GiB (checked whole
    // under the default limit of 4 GiB: seconds of work)
    let tar = tar_of(&[
        ("m/matrix.mtx.gz".into(), mtx_bomb(3 << 10)),
        (
            "m/features.tsv".into(),
            b"G1\tG1\tGene Expression\n".to_vec(),
        ),
        ("m/barcodes.tsv".into(), b"AAAC-1\n".to_vec()),
    ]);
    let body = multipart(&[("model", &model)], &[("sample.tar.gz", &gzip(&tar))]);
    let mut c = connect(&s);
    c.write_all(&post_head(&s, "/api/jobs", &[], body.len() as u64))
        .unwrap();
    c.write_all(&body).unwrap();
    let job_dir = || {
        std::fs::read_dir(s.work.path().join("jobs"))
            .unwrap()
            .flatten()
            .next()
            .map(|e| e.path())
    };
    until("unpacking under way", Duration::from_secs(10), || {
        job_dir().is_some_and(|d| d.join("input/m/matrix.mtx.gz").is_file())
    });
    drop(c);
    let took = until("the folder deleted", Duration::from_secs(5), || {
        s.folders() == 0
    });
    assert!(took < Duration::from_secs(2), "{took:?}");
    // it stays deleted (the unpacking thread stopped, wrote nothing after) and no job
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.folders(), 0);
    let st = s.status();
    assert_eq!(st["jobs_pending"], 0, "{st}");
    assert_eq!(st["uploads_in_flight"], 0, "{st}");
}

#[test]
fn the_disk_quota_deletes_the_oldest_results_first_then_refuses_uploads() {
    let quota: u64 = 32 << 20;
    let s = Server::start(&["--disk-quota", "32MiB"]);
    let data = tenx_rna(200);
    let oldest = submit(&s, &data);
    assert_eq!(wait_finished(&s, &oldest)["status"], "done");
    let one = s.status()["disk_used_bytes"].as_u64().unwrap();
    assert!(one > 0);
    let older = submit(&s, &data);
    assert_eq!(wait_finished(&s, &older)["status"], "done");
    let two = s.status()["disk_used_bytes"].as_u64().unwrap();
    assert!(two > one && two < quota);
    // an upload that needs the room of one result but not of two
    let size = quota - two + one / 2;
    let filler = vec![0u8; size as usize];
    let model = s.model();
    let (code, _, body) = post(
        &s,
        "/api/jobs",
        &[],
        &multipart(&[("model", &model)], &[("filler.bin", &filler)]),
    );
    // (refused for what it is, after it made its room)
    assert_eq!(code, 415, "{body}");
    assert_eq!(
        ureq::get(&s.url(&format!("/api/jobs/{oldest}")))
            .call()
            .err()
            .and_then(|e| match e {
                ureq::Error::Status(c, _) => Some(c),
                _ => None,
            }),
        Some(404),
        "the oldest result was not deleted"
    );
    assert_eq!(wait_finished(&s, &older)["status"], "done");
    // more than the quota can ever hold: 507 before a byte of it is read
    let (code, _, body) = raw(&s, &post_head(&s, "/api/jobs", &[], quota + 1));
    assert_eq!(code, 507, "{body}");
    assert!(body.contains("disk quota"), "{body}");
    assert_eq!(wait_finished(&s, &older)["status"], "done");
}
