//! What the test files that run a real `crossomics serve` share.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `crossomics serve` on a free loopback port over `models`, with its jobs under
/// `work` and `extra` flags; the child and the URL it listens on. The server ends when
/// the test process does (it stops when its standard input closes).
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
