//! Hostile uploads and jobs over their limits: each fails its job and the server goes on.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::support::*;

/// Hostile files (the untrusted-input issue, cases 1, 2, 7 and 8): each fails its own
/// job with a clear reason that quotes nothing of the server's files; the server lives on
/// (same process, answering) and computes the next good job.
#[test]
fn hostile_uploads_fail_their_job_and_the_server_survives() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let d = test_cells();
    let rna_model = model_id("rna_to_atac");
    let good_path = dir.path().join("rna.h5ad");
    write_rna_h5ad(&good_path, &d);
    let good = std::fs::read(&good_path).unwrap();
    let n = d.n_cells();
    let hostile = |name: &str, change: &dyn Fn(&Path)| -> Vec<u8> {
        let p = dir.path().join(name);
        std::fs::copy(&good_path, &p).unwrap();
        change(&p);
        std::fs::read(&p).unwrap()
    };
    // 1. external storage on /etc/passwd, an external link, external storage on a FIFO
    let passwd = hostile("passwd.h5ad", &|p| {
        index_stored_in(p, n, Path::new("/etc/passwd"))
    });
    let other = dir.path().join("other.h5ad");
    std::fs::copy(&good_path, &other).unwrap();
    let linked = hostile("linked.h5ad", &|p| {
        let f = hdf5::File::open_rw(p).unwrap();
        f.unlink("var").unwrap();
        f.link_external(other.to_str().unwrap(), "/var", "var")
            .unwrap();
    });
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|st| st.success())
    );
    let piped = hostile("piped.h5ad", &|p| index_stored_in(p, n, &fifo));
    // 2. a 10x folder whose matrix.mtx claims 10^12 rows: a few hundred bytes zipped
    let claims: Files = vec![
        (
            "matrix.mtx".into(),
            b"%%MatrixMarket matrix coordinate integer general\n1000000000000 1000000000000 1\n1 1 1\n"
                .to_vec(),
        ),
        ("features.tsv".into(), b"ENSG1\tG1\tGene Expression\n".to_vec()),
        ("barcodes.tsv".into(), b"AAAC-1\n".to_vec()),
    ];
    let bomb = zip_folder(&claims);
    assert!(bomb.len() < 1000, "{}", bomb.len());
    // 7. an obs name with a newline (a TSV download would get an extra line)
    let mut newline = d.clone();
    let mut names = d.cells.barcodes().to_vec();
    names[2] = "AAAC\nGGGT-1".into();
    newline.cells = crossomics_data::CellTable::new(names);
    let newline_path = dir.path().join("newline.h5ad");
    write_rna_h5ad(&newline_path, &newline);
    // 8. an `integer` MatrixMarket holding 2.5
    let mut fraction = tenx_folder(&d, true, false);
    let text = String::from_utf8(fraction[0].1.clone()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[0] = "%%MatrixMarket matrix coordinate integer general".into();
    let entry: Vec<&str> = lines[2].split(' ').collect();
    lines[2] = format!("{} {} 2.5", entry[0], entry[1]);
    fraction[0].1 = (lines.join("\n") + "\n").into_bytes();

    let cases: Vec<(&str, Files, &[&str])> = vec![
        (
            "external storage",
            vec![("passwd.h5ad".into(), passwd)],
            &["passwd.h5ad", "/obs/", "external storage"],
        ),
        (
            "external link",
            vec![("linked.h5ad".into(), linked)],
            &["linked.h5ad", "/var", "external link"],
        ),
        (
            "named pipe",
            vec![("piped.h5ad".into(), piped)],
            &["external storage"],
        ),
        (
            "claimed shape",
            vec![("claims.zip".into(), bomb)],
            &["matrix.mtx", "1000000000000", "over the limit", "--max-"],
        ),
        (
            "newline in a barcode",
            vec![("newline.h5ad".into(), std::fs::read(&newline_path).unwrap())],
            &["barcode 3", "control character"],
        ),
        (
            "fraction in an integer matrix",
            vec![("fraction.zip".into(), zip_folder(&fraction))],
            &["matrix.mtx", "2.5", "integer"],
        ),
    ];
    let pid = s.child.id();
    for (what, files, needles) in cases {
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let t = Instant::now();
        let id = submit(&s.url, &[("model", &rna_model)], &files);
        let job = wait_finished(&s.url, &id);
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{what}: took {:?}",
            t.elapsed()
        );
        assert_eq!(job["status"], "failed", "{what}: {job}");
        let err = job["error"].as_str().unwrap();
        for needle in needles {
            assert!(err.contains(needle), "{what}: `{needle}` not in: {err}");
        }
        assert!(!err.contains("root:"), "{what}: leaks /etc/passwd: {err}");
        assert!(err.len() < 2000, "{what}: {err}");
        assert!(job["files"].as_array().unwrap().is_empty(), "{what}: {job}");
        // the same server process answers
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "{what}: the server died"
        );
        assert_eq!(get_json(&s.url, "/api/status")["ready"], true);
    }
    let id = submit(&s.url, &[("model", &rna_model)], &[("rna.h5ad", &good)]);
    assert_eq!(wait_finished(&s.url, &id)["status"], "done");
}

/// Each job computes in a process of its own that the server watches: one over the job
/// memory limit or the job time limit is stopped, fails with the reason, and the server
/// process (whose own memory stays small) goes on.
#[test]
fn a_job_over_its_memory_or_time_limit_is_stopped_and_the_server_goes_on() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let good_path = dir.path().join("rna.h5ad");
    write_rna_h5ad(&good_path, &test_cells());
    let good = std::fs::read(&good_path).unwrap();
    let model = model_id("rna_to_atac");
    for (flags, needle) in [
        // libtorch alone is more than 16 MiB resident
        (["--job-memory", "16MiB"], "memory"),
        (["--job-timeout-seconds", "0"], "stopped after"),
    ] {
        let mut args = vec!["--no-default-models"];
        args.extend(flags);
        let (mut child, url) = start(&s.models, &dir.path().join(flags[0]), &args);
        let id = submit(&url, &[("model", &model)], &[("rna.h5ad", &good)]);
        let job = wait_finished(&url, &id);
        assert_eq!(job["status"], "failed", "{flags:?}: {job}");
        let err = job["error"].as_str().unwrap();
        assert!(err.contains(needle), "{flags:?}: {err}");
        // the server answers, and its own resident memory is far below a job's
        assert_eq!(get_json(&url, "/api/status")["ready"], true);
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let rss_kib: u64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(rss_kib < 1024 * 1024, "server peak RSS {rss_kib} KiB");
        let _ = child.kill();
        let _ = child.wait();
    }
}
