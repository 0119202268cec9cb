//! The portal's defences against hostile clients over real HTTP, with a fake backend:
//! hosts, origins, CSRF, security headers, caps on parts and fields, timeouts, the
//! connection cap, the disk quota, job time limits, the listening address.
//! `crossomics-runner`'s tests/hostile_portal.rs repeats the attacks against the real
//! server process, with its memory watched.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

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

#[test]
fn listens_only_where_told() {
    let s = start();
    assert_eq!(s.running.addr.ip().to_string(), "127.0.0.1");
    // another address of this machine (all of 127/8 is loopback on Linux) gets no answer
    let elsewhere = std::net::SocketAddr::from(([127, 0, 0, 2], s.running.addr.port()));
    assert!(std::net::TcpStream::connect_timeout(&elsewhere, Duration::from_secs(2)).is_err());
    assert!(std::net::TcpStream::connect(s.running.addr).is_ok());
}
