//! `crossomics-fuzz`: runs the fuzz targets of `crossomics_fuzz` for many cases.
//!
//! The long mode is a supervisor: it runs cases in child processes (this binary again,
//! `--child --start K --count M`), a batch each, `--jobs` at a time. A child reports
//! every case on its stdout; when one dies (a signal: abort on a failed allocation
//! under `RLIMIT_AS`, the watchdog's abort on a hang, a segfault in C code), the
//! supervisor knows the exact case from the child's progress file and its last report,
//! reruns that case alone in a fresh process to confirm it, saves its input under the
//! failures folder and prints the command that reproduces it, then goes on with the rest
//! of the batch.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crossomics_fuzz::{Failure, Options, Outcome, Runner, Stats, Target};

const USAGE: &str = "usage:
  crossomics-fuzz --target <T|all> --cases <N> [--seed S] [--start K] [--jobs J] [--batch B]
                  [--timeout-s 10] [--max-as-mib 4096] [--failures DIR] [--findings FILE.md] [--in-process]
  crossomics-fuzz --target <T> --seed S --case K [--save DIR]     (rerun one case, in this process)
  crossomics-fuzz --list
targets: mtx, tenx-dir, h5ad, tenx-h5, archive, sniff";

#[derive(Debug, Clone)]
struct Args {
    targets: Vec<Target>,
    cases: u64,
    seed: u64,
    start: u64,
    jobs: usize,
    batch: u64,
    timeout_s: u64,
    max_as_mib: u64,
    failures: PathBuf,
    findings: Option<PathBuf>,
    in_process: bool,
    case: Option<u64>,
    save: Option<PathBuf>,
    child: bool,
    count: u64,
    progress: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        targets: Vec::new(),
        cases: 10_000,
        seed: 1,
        start: 0,
        jobs: 1,
        batch: 0,
        timeout_s: 10,
        max_as_mib: 4096,
        failures: std::env::var_os("CARGO_TARGET_DIR")
            .map(|d| PathBuf::from(d).join("fuzz-failures"))
            .unwrap_or_else(|| std::env::temp_dir().join("crossomics-fuzz-failures")),
        findings: None,
        in_process: false,
        case: None,
        save: None,
        child: false,
        count: 0,
        progress: None,
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, flag: &str| -> Result<u64, String> {
        v.ok_or_else(|| format!("{flag} needs a value"))?
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{flag}: not a number"))
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--list" => {
                for t in Target::ALL {
                    println!("{}", t.name());
                }
                std::process::exit(0);
            }
            "--target" => {
                let v = it.next().ok_or("--target needs a value")?;
                if v == "all" {
                    a.targets = Target::ALL.to_vec();
                } else {
                    for name in v.split(',') {
                        a.targets.push(
                            Target::parse(name)
                                .ok_or_else(|| format!("unknown target `{name}`"))?,
                        );
                    }
                }
            }
            "--cases" => a.cases = num(it.next(), "--cases")?,
            "--seed" => a.seed = num(it.next(), "--seed")?,
            "--start" => a.start = num(it.next(), "--start")?,
            "--count" => a.count = num(it.next(), "--count")?,
            "--jobs" => a.jobs = num(it.next(), "--jobs")?.max(1) as usize,
            "--batch" => a.batch = num(it.next(), "--batch")?,
            "--timeout-s" => a.timeout_s = num(it.next(), "--timeout-s")?,
            "--max-as-mib" => a.max_as_mib = num(it.next(), "--max-as-mib")?,
            "--case" => a.case = Some(num(it.next(), "--case")?),
            "--failures" => {
                a.failures = PathBuf::from(it.next().ok_or("--failures needs a value")?)
            }
            "--findings" => {
                a.findings = Some(PathBuf::from(it.next().ok_or("--findings needs a value")?))
            }
            "--save" => a.save = Some(PathBuf::from(it.next().ok_or("--save needs a value")?)),
            "--progress" => {
                a.progress = Some(PathBuf::from(it.next().ok_or("--progress needs a value")?))
            }
            "--in-process" => a.in_process = true,
            "--child" => a.child = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if a.targets.is_empty() {
        return Err("--target is required".into());
    }
    Ok(a)
}

fn options(a: &Args, target: Target) -> Options {
    let mut o = Options::new(target, a.seed);
    o.timeout = Duration::from_secs(a.timeout_s);
    o.progress = a.progress.clone();
    o.repro = format!(
        "cargo run --release -p crossomics-fuzz -- --target {} --seed {} --case {{case}} --save {}",
        target.name(),
        a.seed,
        a.failures
            .join(format!("{}-{}-{{case}}", target.name(), a.seed))
            .display()
    );
    o
}

fn sandbox(a: &Args) {
    crossomics_fuzz::few_malloc_arenas();
    if a.max_as_mib > 0
        && let Err(e) = crossomics_fuzz::limit_address_space(a.max_as_mib << 20)
    {
        eprintln!("crossomics-fuzz: cannot set RLIMIT_AS: {e}");
    }
}

/// The sandbox set up, a runner of the first target; else the exit code (the error
/// printed).
fn sandboxed_runner(a: &Args) -> Result<Runner, i32> {
    sandbox(a);
    Runner::new(options(a, a.targets[0])).map_err(|e| {
        eprintln!("crossomics-fuzz: {e}");
        2
    })
}

/// `--child`: runs a range, one line per case on stdout.
fn child(a: &Args) -> i32 {
    let mut runner = match sandboxed_runner(a) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    runner.run(a.start, a.count, |index, outcome| {
        let _ = match outcome {
            Outcome::Ok => writeln!(out, "O"),
            Outcome::Refused(k) => writeln!(out, "R\t{}", k.replace(['\n', '\t'], " ")),
            Outcome::Failed(r) => writeln!(out, "F\t{index}\t{}", r.replace(['\n', '\t'], " ")),
        };
        // every case reported before the next starts: a crash loses none
        let _ = out.flush();
    });
    let _ = writeln!(out, "END");
    let _ = out.flush();
    0
}

/// `--case K`: one case in this process, its input saved first.
fn one_case(a: &Args, index: u64) -> i32 {
    let mut runner = match sandboxed_runner(a) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let input = runner.input(index);
    eprintln!("{}", input.describe());
    if let Some(dir) = &a.save {
        match runner.save(index, dir) {
            Ok(()) => eprintln!("input saved under {}", dir.display()),
            Err(e) => eprintln!("cannot save the input: {e}"),
        }
    }
    let t0 = Instant::now();
    let outcome = runner.run_case(index);
    println!(
        "case {index}: {outcome:?} ({:.3} s)",
        t0.elapsed().as_secs_f64()
    );
    i32::from(matches!(outcome, Outcome::Failed(_)))
}

/// What one child run came to.
struct BatchResult {
    stats: Stats,
    /// cases reported (start.. start+reported)
    reported: u64,
    ended: bool,
    status: String,
    note: Option<String>,
    /// the case the progress file names
    crashed_at: Option<u64>,
}

fn run_child(
    exe: &Path,
    a: &Args,
    target: Target,
    start: u64,
    count: u64,
    progress: &Path,
) -> BatchResult {
    let _ = std::fs::remove_file(progress.with_extension("note"));
    let mut cmd = Command::new(exe);
    cmd.args(["--child", "--target", target.name()])
        .args(["--seed", &a.seed.to_string()])
        .args(["--start", &start.to_string(), "--count", &count.to_string()])
        .args(["--timeout-s", &a.timeout_s.to_string()])
        .args(["--max-as-mib", &a.max_as_mib.to_string()])
        .arg("--failures")
        .arg(&a.failures)
        .arg("--progress")
        .arg(progress)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut stats = Stats::default();
    let mut reported = 0;
    let mut ended = false;
    let t0 = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return BatchResult {
                stats,
                reported,
                ended,
                status: format!("cannot start a child: {e}"),
                note: None,
                crashed_at: None,
            };
        }
    };
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.splitn(3, '\t');
            match parts.next() {
                Some("O") => {
                    stats.ok += 1;
                    stats.cases += 1;
                    reported += 1;
                }
                Some("R") => {
                    stats.add_kind(parts.next().unwrap_or(""), 1);
                    stats.cases += 1;
                    reported += 1;
                }
                Some("F") => {
                    let case = parts
                        .next()
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(start + reported);
                    stats.failures.push(Failure {
                        case,
                        reason: parts.next().unwrap_or("").to_string(),
                    });
                    stats.cases += 1;
                    reported += 1;
                }
                Some("END") => ended = true,
                _ => {}
            }
        }
    }
    let child_pid = child.id();
    let status = match child.wait() {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            match (s.code(), s.signal()) {
                (_, Some(sig)) => format!("killed by signal {sig}{}", signal_name(sig)),
                (Some(0), _) => "ok".into(),
                (Some(c), _) => format!("exited with status {c}"),
                _ => "ended".into(),
            }
        }
        Err(e) => format!("wait failed: {e}"),
    };
    stats.elapsed = t0.elapsed();
    if !ended {
        // a child killed by a signal leaves its scratch folders behind
        crossomics_fuzz::remove_scratch_of(child_pid);
    }
    let note = std::fs::read_to_string(progress.with_extension("note")).ok();
    let crashed_at = std::fs::read(progress).ok().and_then(|b| {
        b.get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    });
    BatchResult {
        stats,
        reported,
        ended,
        status,
        note,
        crashed_at,
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        6 => {
            " (SIGABRT: an abort: failed allocation under RLIMIT_AS, the hang watchdog, or a C assertion)"
        }
        9 => " (SIGKILL: out of memory?)",
        11 => " (SIGSEGV)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        4 => " (SIGILL)",
        _ => "",
    }
}

/// Confirms a crash by running the case alone (saving its input first).
fn confirm(exe: &Path, a: &Args, target: Target, case: u64) -> (String, PathBuf) {
    let dir = a
        .failures
        .join(format!("{}-{}-{case}", target.name(), a.seed));
    let out = Command::new(exe)
        .args(["--target", target.name(), "--seed", &a.seed.to_string()])
        .args(["--case", &case.to_string()])
        .args(["--timeout-s", &a.timeout_s.to_string()])
        .args(["--max-as-mib", &a.max_as_mib.to_string()])
        .arg("--save")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let verdict = match out {
        Ok(o) => {
            use std::os::unix::process::ExitStatusExt;
            let stderr = String::from_utf8_lossy(&o.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            match o.status.signal() {
                Some(sig) => format!(
                    "reproduced alone: killed by signal {sig}{}; last stderr: {}",
                    signal_name(sig),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ),
                None => format!(
                    "NOT reproduced alone (status {:?}: {}); the crash depends on earlier cases of the batch",
                    o.status.code(),
                    String::from_utf8_lossy(&o.stdout).trim()
                ),
            }
        }
        Err(e) => format!("cannot rerun: {e}"),
    };
    (verdict, dir)
}

fn append_finding(a: &Args, text: &str) {
    if let Some(path) = &a.findings
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{text}");
    }
}

/// The long mode: batches in child processes.
fn supervise(a: &Args, target: Target) -> Stats {
    let exe = std::env::current_exe().expect("the path of this binary");
    let batch = if a.batch > 0 {
        a.batch
    } else {
        match target {
            Target::Mtx => 50_000,
            Target::TenxDir | Target::Archive | Target::Sniff => 20_000,
            Target::H5ad | Target::TenxH5 => 5_000,
        }
    };
    let _ = std::fs::create_dir_all(&a.failures);
    let end = a.start.saturating_add(a.cases);
    let mut queue: std::collections::VecDeque<(u64, u64)> = (a.start..end)
        .step_by(batch as usize)
        .map(|s| (s, batch.min(end - s)))
        .collect();
    let mut total = Stats::default();
    let mut seen_reasons = BTreeSet::new();
    let mut printed = std::collections::BTreeMap::new();
    let t0 = Instant::now();
    let mut last_print = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel::<(u64, u64, BatchResult)>();
    let mut running = 0usize;
    let mut slot = 0usize;
    let mut crashes = 0u32;
    loop {
        while running < a.jobs {
            let Some((s, n)) = queue.pop_front() else {
                break;
            };
            let progress = std::env::temp_dir().join(format!(
                "crossomics-fuzz-{}-{}-{slot}.progress",
                std::process::id(),
                target.name()
            ));
            slot += 1;
            let (tx, exe, a2) = (tx.clone(), exe.clone(), a.clone());
            std::thread::spawn(move || {
                let r = run_child(&exe, &a2, target, s, n, &progress);
                let _ = std::fs::remove_file(&progress);
                let _ = std::fs::remove_file(progress.with_extension("note"));
                let _ = tx.send((s, n, r));
            });
            running += 1;
        }
        if running == 0 {
            break;
        }
        let Ok((s, n, r)) = rx.recv_timeout(Duration::from_secs(10)) else {
            if last_print.elapsed() > Duration::from_secs(30) {
                eprintln!(
                    "  [{}] {:.0} s: {} cases done, {} running batches",
                    target.name(),
                    t0.elapsed().as_secs_f64(),
                    total.cases,
                    running
                );
                last_print = Instant::now();
            }
            continue;
        };
        running -= 1;
        for f in &r.stats.failures {
            let key = crossomics_fuzz::normalize(&f.reason);
            let repro = format!(
                "cargo run --release -p crossomics-fuzz -- --target {} --seed {} --case {}",
                target.name(),
                a.seed,
                f.case
            );
            let n = printed.entry(key.clone()).or_insert(0u32);
            *n += 1;
            if *n <= 3 {
                eprintln!(
                    "FAILURE {} case {}: {}\n  reproduce: {repro}",
                    target.name(),
                    f.case,
                    f.reason
                );
            }
            if seen_reasons.insert(key) {
                let dir = a
                    .failures
                    .join(format!("{}-{}-{}", target.name(), a.seed, f.case));
                let _ = Command::new(&exe)
                    .args([
                        "--target",
                        target.name(),
                        "--seed",
                        &a.seed.to_string(),
                        "--case",
                        &f.case.to_string(),
                        "--save",
                    ])
                    .arg(&dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                append_finding(
                    a,
                    &format!(
                        "- **{}** case {}: {}\n  - input: `{}`\n  - reproduce: `{repro}`",
                        target.name(),
                        f.case,
                        f.reason,
                        dir.display()
                    ),
                );
            }
        }
        let mut stats = r.stats;
        if !r.ended {
            // the child died at case s + reported (its progress file says the same)
            let case = r.crashed_at.unwrap_or(s + r.reported).max(s + r.reported);
            crashes += 1;
            // the first crashes are rerun alone and saved; later ones only counted
            let (verdict, dir) = if crashes <= 5 {
                confirm(&exe, a, target, case)
            } else {
                (
                    "not rerun (more than 5 crashes in this run)".to_string(),
                    a.failures.clone(),
                )
            };
            let reason = format!(
                "child {} at this case{}; {verdict}",
                r.status,
                r.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
            let repro = format!(
                "cargo run --release -p crossomics-fuzz -- --target {} --seed {} --case {case}",
                target.name(),
                a.seed
            );
            eprintln!(
                "FAILURE {} case {case}: {reason}\n  input saved under {}\n  reproduce: {repro}",
                target.name(),
                dir.display()
            );
            append_finding(
                a,
                &format!(
                    "- **{}** case {case}: {reason}\n  - input: `{}`\n  - reproduce: `{repro}`",
                    target.name(),
                    dir.display()
                ),
            );
            stats.failures.push(Failure { case, reason });
            stats.cases += 1;
            let done = case - s + 1;
            if done < n {
                queue.push_front((s + done, n - done));
            }
        }
        total.merge(&stats);
        if last_print.elapsed() > Duration::from_secs(30) || queue.is_empty() {
            let secs = t0.elapsed().as_secs_f64();
            eprintln!(
                "  [{}] {:.0} s: {} cases ({:.0}/s), {} ok, {} refused, {} failures",
                target.name(),
                secs,
                total.cases,
                total.cases as f64 / secs.max(1e-9),
                total.ok,
                total.refused(),
                total.failures.len()
            );
            last_print = Instant::now();
        }
    }
    total
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("crossomics-fuzz: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if a.child {
        std::process::exit(child(&a));
    }
    if let Some(case) = a.case {
        std::process::exit(one_case(&a, case));
    }
    let mut failed = false;
    for &target in &a.targets {
        let t0 = Instant::now();
        let stats = if a.in_process {
            sandbox(&a);
            let mut runner = Runner::new(options(&a, target)).expect("a scratch folder");
            runner.run(a.start, a.cases, |_, _| {})
        } else {
            supervise(&a, target)
        };
        print!("{}", stats.report(target, t0.elapsed()));
        failed |= !stats.failures.is_empty();
    }
    std::process::exit(i32::from(failed));
}
