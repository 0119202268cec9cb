//! End-to-end downloads against a tiny HTTP/1.1 server on 127.0.0.1 (never the internet):
//! full download, interrupted download + Range resume, a server that ignores Range,
//! 416, 404, connection refused, corrupted bytes, idempotent re-fetch, unknown names.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossomics_fetch::{
    Checksum, DatasetEntry, FetchError, FetchOptions, FileStatus, Progress, RemoteFile,
    Verification, fetch, fetch_entry, names,
};

const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Honour `Range` with 206 (416 past the end).
    Normal,
    /// Announce the full length, send this many body bytes, then close the connection.
    DropAfter(usize),
    /// Answer every request with the whole file and 200.
    IgnoreRange,
    /// Flip one byte of the body.
    Corrupt,
    /// Send this many body bytes, then go silent for `STALL` before closing.
    StallAfter(usize),
}

const STALL: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone)]
struct Logged {
    path: String,
    range: Option<String>,
}

#[derive(Debug)]
struct State {
    files: HashMap<String, Vec<u8>>,
    mode: Mode,
    log: Vec<Logged>,
}

struct Server {
    base: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    fn start(files: &[(&str, Vec<u8>)]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            files: files
                .iter()
                .map(|(name, bytes)| (format!("/{name}"), bytes.clone()))
                .collect(),
            mode: Mode::Normal,
            log: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        // Detached: it lives until the test binary exits; a thread per connection, so a
        // stalled answer does not hold up the next request.
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        Server { base, state }
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_string());
        }
    }
    let (body, mode) = {
        let mut st = state.lock().unwrap();
        st.log.push(Logged {
            path: path.clone(),
            range: range.clone(),
        });
        (st.files.get(&path).cloned(), st.mode)
    };
    let Some(mut body) = body else {
        let msg = b"not here";
        write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            msg.len()
        )?;
        stream.write_all(msg)?;
        return Ok(());
    };
    if mode == Mode::Corrupt {
        let mid = body.len() / 2;
        body[mid] ^= 0xff;
    }
    let len = body.len();
    let start = match (&range, mode) {
        (Some(r), Mode::Normal | Mode::DropAfter(_) | Mode::Corrupt | Mode::StallAfter(_)) => r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok()),
        _ => None,
    };
    let (status, from) = match start {
        Some(s) if s >= len => {
            write!(
                stream,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        Some(s) => ("206 Partial Content", s),
        None => ("200 OK", 0),
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
        len - from
    );
    if from > 0 || start.is_some() {
        head.push_str(&format!(
            "Content-Range: bytes {from}-{}/{len}\r\n",
            len - 1
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let payload = &body[from..];
    match mode {
        Mode::DropAfter(n) => {
            stream.write_all(&payload[..n.min(payload.len())])?;
            stream.flush()?;
            stream.shutdown(Shutdown::Both)?;
        }
        Mode::StallAfter(n) => {
            stream.write_all(&payload[..n.min(payload.len())])?;
            stream.flush()?;
            thread::sleep(STALL);
        }
        _ => stream.write_all(payload)?,
    }
    Ok(())
}

/// Deterministic pseudo-random bytes (not compressible, not periodic at small scales).
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    // Straight from the digest crate, independent of the code under test.
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn opts() -> FetchOptions {
    FetchOptions {
        connect_timeout: SOCKET_TIMEOUT,
        read_timeout: SOCKET_TIMEOUT,
        proxy_from_env: false,
        ..FetchOptions::default()
    }
}

fn entry_for(server: &Server, name: &str, checksum: Option<Checksum>) -> DatasetEntry {
    let mut file = RemoteFile::new(server.url(name), name.to_string());
    file.checksum = checksum;
    DatasetEntry::custom("test_dataset", vec![file])
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn full_download_matches_and_reports_progress() {
    let data = payload(300_000, 1);
    let server = Server::start(&[("a.bin", data.clone())]);
    let tmp = tempfile::tempdir().unwrap();
    let entry = entry_for(
        &server,
        "a.bin",
        Some(Checksum::parse(&sha256_hex(&data)).unwrap()),
    );
    let mut seen = Vec::new();
    let mut cb = |p: &Progress<'_>| seen.push((p.done, p.total, p.file_index, p.file_count));
    let report = fetch_entry(&entry, tmp.path(), &opts(), Some(&mut cb)).unwrap();
    assert_eq!(fs::read(tmp.path().join("a.bin")).unwrap(), data);
    assert_eq!(dir_names(tmp.path()), ["a.bin"]);
    let file = &report.files[0];
    assert_eq!(file.status, FileStatus::Downloaded);
    assert!(report.all_verified());
    assert_eq!(file.bytes, data.len() as u64);
    assert_eq!(file.sha256, sha256_hex(&data));
    assert_eq!(seen.last(), Some(&(300_000, Some(300_000), 0, 1)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(server.log().len(), 1);
    assert_eq!(server.log()[0].range, None);
}

#[test]
fn md5_pins_work_too_and_files_come_in_order() {
    let one = payload(10_000, 2);
    let two = payload(20_000, 3);
    let server = Server::start(&[("one.txt", one.clone()), ("two.txt", two.clone())]);
    let tmp = tempfile::tempdir().unwrap();
    let entry = DatasetEntry::custom(
        "two_files",
        vec![
            RemoteFile::new(server.url("one.txt"), "one.txt")
                .with_checksum(Checksum::parse(&format!("md5:{}", md5_hex(&one))).unwrap())
                .with_size(10_000),
            RemoteFile::new(server.url("two.txt"), "two.txt")
                .with_checksum(Checksum::parse(&sha256_hex(&two)).unwrap()),
        ],
    );
    let report = fetch_entry(&entry, &tmp.path().join("nested/dir"), &opts(), None).unwrap();
    assert_eq!(
        fs::read(tmp.path().join("nested/dir/one.txt")).unwrap(),
        one
    );
    assert_eq!(
        fs::read(tmp.path().join("nested/dir/two.txt")).unwrap(),
        two
    );
    match &report.files[0].verification {
        Verification::Verified(c) => assert_eq!(c.hex, md5_hex(&one)),
        other => panic!("{other:?}"),
    }
    let paths: Vec<_> = server.log().into_iter().map(|l| l.path).collect();
    assert_eq!(paths, ["/one.txt", "/two.txt"]);
}

#[test]
fn interrupted_download_keeps_a_part_and_the_next_call_resumes_with_range() {
    let data = payload(200_000, 4);
    let server = Server::start(&[("big.h5", data.clone())]);
    let tmp = tempfile::tempdir().unwrap();
    let entry = entry_for(
        &server,
        "big.h5",
        Some(Checksum::parse(&sha256_hex(&data)).unwrap()),
    );

    server.set_mode(Mode::DropAfter(70_000));
    let err = fetch_entry(&entry, tmp.path(), &opts(), None).unwrap_err();
    match &err {
        FetchError::Interrupted {
            received, expected, ..
        } => {
            assert_eq!(*received, 70_000);
            assert_eq!(*expected, Some(200_000));
        }
        other => panic!("expected Interrupted, got {other:?}"),
    }
    assert!(err.to_string().contains(&server.url("big.h5")), "{err}");
    assert_eq!(dir_names(tmp.path()), ["big.h5.part"]);
    assert_eq!(
        fs::read(tmp.path().join("big.h5.part")).unwrap(),
        &data[..70_000]
    );

    server.set_mode(Mode::Normal);
    let report = fetch_entry(&entry, tmp.path(), &opts(), None).unwrap();
    assert_eq!(report.files[0].status, FileStatus::Resumed { from: 70_000 });
    assert!(report.all_verified());
    assert_eq!(fs::read(tmp.path().join("big.h5")).unwrap(), data);
    assert_eq!(dir_names(tmp.path()), ["big.h5"]);
    let log = server.log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].range, None);
    assert_eq!(log[1].range.as_deref(), Some("bytes=70000-"));
}

#[test]
fn a_stalled_transfer_times_out_per_read_and_resumes() {
    let data = payload(80_000, 11);
    let server = Server::start(&[("s.bin", data.clone())]);
    let tmp = tempfile::tempdir().unwrap();
    let entry = entry_for(
        &server,
        "s.bin",
        Some(Checksum::parse(&sha256_hex(&data)).unwrap()),
    );
    let quick = FetchOptions {
        read_timeout: Duration::from_millis(300),
        ..opts()
    };
    server.set_mode(Mode::StallAfter(30_000));
    let started = std::time::Instant::now();
    let err = fetch_entry(&entry, tmp.path(), &quick, None).unwrap_err();
    assert!(started.elapsed() < STALL, "{:?}", started.elapsed());
    assert!(
        matches!(
            err,
            FetchError::Interrupted {
                received: 30_000,
                ..
            }
        ),
        "{err:?}"
    );
    server.set_mode(Mode::Normal);
    let report = fetch_entry(&entry, tmp.path(), &quick, None).unwrap();
    assert_eq!(report.files[0].status, FileStatus::Resumed { from: 30_000 });
    assert_eq!(fs::read(tmp.path().join("s.bin")).unwrap(), data);
}

#[test]
fn a_server_that_ignores_range_gets_a_restart_from_zero() {
    let data = payload(50_000, 5);
    let server = Server::start(&[("c.gz", data.clone())]);
    let tmp = tempfile::tempdir().unwrap();
    // A stale part whose bytes are wrong: a 200 answer must replace, not extend it.
    fs::write(tmp.path().join("c.gz.part"), vec![0u8; 20_000]).unwrap();
    let entry = entry_for(
        &server,
        "c.gz",
        Some(Checksum::parse(&sha256_hex(&data)).unwrap()),
    );
    server.set_mode(Mode::IgnoreRange);
    let report = fetch_entry(&entry, tmp.path(), &opts(), None).unwrap();
    assert_eq!(report.files[0].status, FileStatus::Downloaded);
    assert_eq!(fs::read(tmp.path().join("c.gz")).unwrap(), data);
    assert_eq!(dir_names(tmp.path()), ["c.gz"]);
    let log = server.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].range.as_deref(), Some("bytes=20000-"));
}

#[test]
fn range_not_satisfiable_completes_a_full_part_or_restarts_an_overlong_one() {
    let data = payload(40_000, 6);
    let server = Server::start(&[("d.mtx", data.clone())]);
    let entry = entry_for(
        &server,
        "d.mtx",
        Some(Checksum::parse(&sha256_hex(&data)).unwrap()),
    );

    // A complete part (an earlier run stopped before the rename): 416 */len -> verify it.
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("d.mtx.part"), &data).unwrap();
    let report = fetch_entry(&entry, tmp.path(), &opts(), None).unwrap();
    assert_eq!(report.files[0].status, FileStatus::Resumed { from: 40_000 });
    assert_eq!(fs::read(tmp.path().join("d.mtx")).unwrap(), data);
    assert_eq!(dir_names(tmp.path()), ["d.mtx"]);

    // A part longer than the file: 416 -> discard it and download from zero.
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("d.mtx.part"), vec![7u8; 45_000]).unwrap();
    let report = fetch_entry(&entry, tmp.path(), &opts(), None).unwrap();
    assert_eq!(report.files[0].status, FileStatus::Downloaded);
    assert_eq!(fs::read(tmp.path().join("d.mtx")).unwrap(), data);
    let ranges: Vec<_> = server.log().into_iter().map(|l| l.range).collect();
    assert_eq!(
        ranges,
        [
            Some("bytes=40000-".to_string()),
            Some("bytes=45000-".to_string()),
            None
        ]
    );
}

#[test]
fn corrupted_bytes_fail_the_checksum_and_leave_nothing_behind() {
    let data = payload(60_000, 7);
    let server = Server::start(&[("e.tsv.gz", data.clone())]);
    let tmp = tempfile::tempdir().unwrap();
    let expected = sha256_hex(&data);
    let entry = entry_for(
        &server,
        "e.tsv.gz",
        Some(Checksum::parse(&expected).unwrap()),
    );
    server.set_mode(Mode::Corrupt);
    let err = fetch_entry(&entry, tmp.path(), &opts(), None).unwrap_err();
    let mut corrupted = data.clone();
    corrupted[30_000] ^= 0xff;
    match &err {
        FetchError::ChecksumMismatch {
            file,
            expected: e,
            actual,
            ..
        } => {
            assert_eq!(file, "e.tsv.gz");
            assert_eq!(e, &expected);
            assert_eq!(actual, &sha256_hex(&corrupted));
        }
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("e.tsv.gz") && msg.contains(&expected), "{msg}");
    assert!(
        dir_names(tmp.path()).is_empty(),
        "{:?}",
        dir_names(tmp.path())
    );
}

#[test]
fn refetching_a_complete_file_makes_no_request() {
    let data = payload(25_000, 8);
    let server = Server::start(&[("f.bin", data.clone())]);
    let tmp = tempfile::tempdir().unwrap();
    let entry = entry_for(
        &server,
        "f.bin",
        Some(Checksum::parse(&sha256_hex(&data)).unwrap()),
    );
    fetch_entry(&entry, tmp.path(), &opts(), None).unwrap();
    assert_eq!(server.log().len(), 1);
    let report = fetch_entry(&entry, tmp.path(), &opts(), None).unwrap();
    assert_eq!(report.files[0].status, FileStatus::AlreadyPresent);
    assert!(report.all_verified());
    assert_eq!(server.log().len(), 1);

    // A present file that does not match is left alone and reported...
    fs::write(tmp.path().join("f.bin"), b"something else").unwrap();
    let err = fetch_entry(&entry, tmp.path(), &opts(), None).unwrap_err();
    assert!(matches!(err, FetchError::ExistingMismatch { .. }), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(server.log().len(), 1);
    // ...unless forced.
    let forced = FetchOptions {
        force: true,
        ..opts()
    };
    let report = fetch_entry(&entry, tmp.path(), &forced, None).unwrap();
    assert_eq!(report.files[0].status, FileStatus::Downloaded);
    assert_eq!(fs::read(tmp.path().join("f.bin")).unwrap(), data);
}

#[test]
fn without_a_pin_the_sha256_is_reported_unverified_and_a_user_pin_is_enforced() {
    let data = payload(12_345, 9);
    let server = Server::start(&[("g.h5ad.gz", data.clone())]);
    let tmp = tempfile::tempdir().unwrap();
    let entry = entry_for(&server, "g.h5ad.gz", None);
    let report = fetch_entry(&entry, tmp.path(), &opts(), None).unwrap();
    let file = &report.files[0];
    assert_eq!(file.verification, Verification::Unverified);
    assert_eq!(file.sha256, sha256_hex(&data));
    assert!(file.to_string().contains("NOT VERIFIED"), "{file}");
    assert!(file.to_string().contains(&sha256_hex(&data)), "{file}");

    let wrong = FetchOptions {
        force: true,
        ..opts()
    }
    .expect("g.h5ad.gz", Checksum::parse(&"0".repeat(64)).unwrap());
    let err = fetch_entry(&entry, tmp.path(), &wrong, None).unwrap_err();
    assert!(matches!(err, FetchError::ChecksumMismatch { .. }), "{err}");
    assert!(dir_names(tmp.path()).is_empty());

    let right = opts().expect("g.h5ad.gz", Checksum::parse(&sha256_hex(&data)).unwrap());
    let report = fetch_entry(&entry, tmp.path(), &right, None).unwrap();
    assert!(report.all_verified());

    let unknown = opts().expect("nope", Checksum::parse(&sha256_hex(&data)).unwrap());
    let err = fetch_entry(&entry, tmp.path(), &unknown, None).unwrap_err();
    assert!(matches!(err, FetchError::UnknownFile { .. }), "{err}");
}

#[test]
fn not_found_names_the_url_and_status() {
    let server = Server::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let entry = entry_for(&server, "missing.h5", None);
    let err = fetch_entry(&entry, tmp.path(), &opts(), None).unwrap_err();
    match &err {
        FetchError::Http { status, url, .. } => {
            assert_eq!(*status, 404);
            assert_eq!(url, &server.url("missing.h5"));
        }
        other => panic!("expected Http, got {other:?}"),
    }
    assert!(err.to_string().contains("404"), "{err}");
    assert!(dir_names(tmp.path()).is_empty());
}

#[test]
fn connection_refused_names_the_url() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/x.bin");
    let entry = DatasetEntry::custom("refused", vec![RemoteFile::new(url.clone(), "x.bin")]);
    let err = fetch_entry(&entry, tmp.path(), &opts(), None).unwrap_err();
    assert!(matches!(err, FetchError::Connection { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert_eq!(msg.matches(&url).count(), 1, "{msg}");
}

#[test]
fn a_registry_entry_can_be_pointed_at_a_mirror() {
    // The BMMC entry has no published checksum, so tiny stand-in bytes are accepted and
    // reported unverified; its registry URL is never contacted.
    let bmmc = crossomics_fetch::lookup("bmmc_multiome_neurips2021").unwrap();
    let name = bmmc.files[0].file_name.to_string();
    let data = payload(1_000, 10);
    let server = Server::start(&[(name.as_str(), data.clone())]);
    let tmp = tempfile::tempdir().unwrap();
    let report = fetch(
        "bmmc-multiome-neurips2021",
        tmp.path(),
        &opts().with_base_url(format!("{}/", server.base)),
        None,
    )
    .unwrap();
    assert_eq!(report.files[0].url, server.url(&name));
    assert_eq!(fs::read(tmp.path().join(&name)).unwrap(), data);
    assert!(!report.all_verified());
}

#[test]
fn unknown_dataset_lists_the_known_names() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fetch("pbmc_3k", tmp.path(), &opts(), None).unwrap_err();
    assert!(matches!(err, FetchError::UnknownDataset { .. }));
    let msg = err.to_string();
    assert!(msg.contains("pbmc_3k"), "{msg}");
    for name in names() {
        assert!(msg.contains(name), "{msg}");
    }
    assert!(dir_names(tmp.path()).is_empty());
}
