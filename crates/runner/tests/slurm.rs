//! `crossomics sweep --slurm` through a real Slurm: a two-run sweep submitted with
//! `sbatch` to the one-node cluster that `scripts/setup-slurm.sh` starts on this machine.
//! Skipped, with the reason printed, where there is no such cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long the sweep may take from submission to the table.
const TIMEOUT: Duration = Duration::from_secs(300);

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn hostname() -> String {
    Command::new("hostname")
        .arg("-s")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Why the test cannot submit here, or `None` when a cluster answers with a usable node.
/// Only the local test cluster is used unless `CROSSOMICS_TEST_SLURM=1` (a real cluster's
/// submit host would get jobs it did not ask for).
fn unavailable() -> Option<String> {
    let o = match Command::new("sinfo")
        .args(["--noheader", "--Node", "--format=%N %T"])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            return Some(format!(
                "sinfo cannot run ({e}): no Slurm here (scripts/setup-slurm.sh starts one)"
            ));
        }
    };
    if !o.status.success() {
        return Some(format!(
            "the Slurm controller does not answer: {}",
            text(&o).trim()
        ));
    }
    let nodes = String::from_utf8_lossy(&o.stdout).to_string();
    let usable = nodes.lines().any(|l| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|s| ["idle", "mixed", "allocated", "completing"].contains(&s))
    });
    if !usable {
        return Some(format!("no Slurm node takes jobs: {}", nodes.trim()));
    }
    let host = hostname();
    let local = nodes
        .lines()
        .all(|l| l.split_whitespace().next() == Some(host.as_str()));
    if !local && std::env::var("CROSSOMICS_TEST_SLURM").as_deref() != Ok("1") {
        return Some(format!(
            "the Slurm cluster is not the one-node cluster of this host ({host}): nodes {}; \
             set CROSSOMICS_TEST_SLURM=1 to submit to it anyway",
            nodes.trim().replace('\n', ", ")
        ));
    }
    None
}

/// Runs the binary, killed (and its jobs cancelled) after [`TIMEOUT`].
fn crossomics(args: &[&str], cwd: &Path, job_name: &str) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_crossomics"))
        .args(args)
        .current_dir(cwd)
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(o) => o.expect("the binary runs"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let _ = Command::new("scancel").args(["--name", job_name]).status();
            let queue = Command::new("squeue").output().map(|o| text(&o));
            panic!(
                "`crossomics {}` did not finish within {TIMEOUT:?}; queue: {queue:?}",
                args.join(" ")
            );
        }
    }
}

#[test]
fn sweep_runs_a_job_array_through_sbatch_and_the_table_collects_it() {
    if let Some(why) = unavailable() {
        // `.ci/run` starts a one-node cluster and sets this: there the test must run
        assert!(
            std::env::var_os("CROSSOMICS_REQUIRE_SLURM").is_none(),
            "CROSSOMICS_REQUIRE_SLURM is set, but Slurm is unavailable: {why}"
        );
        println!("skipped: {why}");
        return;
    }
    // under the target folder, not /tmp: on a real cluster the nodes must see it
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quickstart.toml");
    let name = format!("slurm_sweep_{}", std::process::id());
    let exp = tmp.path().join("exp.toml");
    std::fs::write(
        &exp,
        format!(
            "extends = [\"{}\"]\nname = \"{name}\"\n[training]\nepochs = 2\nwarmup_epochs = 1\n[output]\nplots = false\n[sweep]\nseeds = [0, 1]\n",
            quickstart.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let o = crossomics(
        &[
            "sweep",
            "--slurm",
            exp.to_str().unwrap(),
            "--out",
            "out",
            "--cpus",
            "1",
            "--mem",
            "1G",
            "--time",
            "00:10:00",
            "--wait",
        ],
        tmp.path(),
        &name,
    );
    let out = text(&o);
    println!("{out}");
    println!("sweep took {:.1} s", started.elapsed().as_secs_f64());
    let dir = tmp.path().join("out").join(&name);
    let logs: Vec<PathBuf> = std::fs::read_dir(dir.join("logs"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    for log in &logs {
        println!(
            "--- {}\n{}",
            log.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    assert!(o.status.success(), "{out}");
    assert!(out.contains("submitted job "), "{out}");
    assert!(dir.join("sweep.sbatch").is_file());
    assert_eq!(logs.len(), 2, "one Slurm log per array task: {logs:?}");

    let mut runs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("metrics.json").is_file())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2, "both runs finished: {runs:?}");
    assert!(runs[0].to_string_lossy().contains("-seed0-"), "{runs:?}");
    assert!(runs[1].to_string_lossy().contains("-seed1-"), "{runs:?}");
    for run in &runs {
        let meta = std::fs::read_to_string(run.join("meta.json")).unwrap();
        assert!(meta.contains("--run-index"), "{meta}");
    }

    // `crossomics table` collects the landed results: one row over both seeds
    std::fs::remove_file(dir.join("table.md")).unwrap();
    let o = crossomics(&["table", dir.to_str().unwrap()], tmp.path(), &name);
    assert!(o.status.success(), "{}", text(&o));
    let table = std::fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(
        table.contains("| sailerx |") && table.contains("| bmmc_multiome_starter | 2 |"),
        "{table}"
    );
    assert!(table.contains(" ± "), "{table}");
    assert!(text(&o).contains("(2 runs)"), "{}", text(&o));
}
