//! Every route of the portal over real HTTP, with a fake backend (the translators'
//! backend is tested in crossomics-runner's tests/portal.rs): uploads of each kind, each
//! refusal, failures isolated to their job, the bounded queue, expiry. The defences
//! against hostile clients are in tests/hostile.rs.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::archives::{tar_with, zip_with};
use common::*;

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

#[test]
fn archives_of_a_matrix_folder_are_unpacked() {
    let s = start();
    let folder = [
        ("outs/filtered_feature_bc_matrix/matrix.mtx", MTX),
        ("outs/filtered_feature_bc_matrix/features.tsv", FEATURES),
        ("outs/filtered_feature_bc_matrix/barcodes.tsv", BARCODES),
    ];
    for bytes in [tar_with(&folder, true), zip_with(&folder)] {
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
            vec![("evil.tar.gz", tar_with(&[("../evil", b"x")], true))],
            400,
            "points outside",
        ),
        (
            vec![("model", "fake")],
            vec![("bomb.zip", zip_with(&[("a", &vec![0u8; 1 << 20])]))],
            413,
            "over the limit of 64.0 KiB bytes one archive unpacks to",
        ),
        (
            vec![("model", "fake")],
            vec![(
                "many.zip",
                zip_with(&[
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
                tar_with(&[("m/matrix.mtx", &[b'%'; 3000])], true)[..100].to_vec(),
            )],
            400,
            "damaged or truncated",
        ),
        (
            vec![("model", "fake")],
            vec![("x.zip", zip_with(&[("readme.txt", b"hi")]))],
            400,
            "no matrix.mtx",
        ),
    ];
    for (fields, files, want, needle) in cases {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        let (code, body) = post(&s, "/api/jobs", &fields, &files);
        assert_eq!(code, want, "{needle}: {body}");
        assert_error_says(&body, needle);
    }
    // not multipart at all
    let (code, body) = answer(
        ureq::post(&s.url("/api/jobs"))
            .set("Content-Type", "application/json")
            .send_string("{}"),
    );
    assert_eq!(code, 400);
    assert_error_says(&body, "multipart/form-data");
    // a body cut short
    let (ct, body) = multipart(&[("model", "fake")], &[("x.h5", HDF5)]);
    let (code, body) = answer(
        ureq::post(&s.url("/api/jobs"))
            .set("Content-Type", &ct)
            .send_bytes(&body[..body.len() - 20]),
    );
    assert_eq!(code, 400, "{body}");
    assert_error_says(&body, "malformed multipart");
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
    assert_error_says(&body, "busy");
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
    assert_error_says(&body, "epoch 3/10");
    assert_eq!(s.jobs_dir_entries(), 0);
}
