//! A bounded fuzz pass per target, for CI: a few hundred to a few thousand cases each,
//! in this process. Every case must end without a failure (panic, memory over the
//! bound, escape from the archive's folder, vetting bypassed), and the cases must reach
//! deep into the readers: some inputs accepted, and refusals of several distinct kinds
//! (so that the mutations are not all rejected at the first byte). The long runs are
//! `cargo run --release -p crossomics-fuzz` (see docs/fuzzing.md).

use crossomics_fuzz::{Options, Runner, Stats, Target};

/// Runs `cases` cases of `target` (seed 7) and checks them.
fn pass(target: Target, cases: u64, min_ok: u64, min_kinds: usize) -> Stats {
    let mut runner = Runner::new(Options::new(target, 7)).expect("a scratch folder");
    let t0 = std::time::Instant::now();
    let stats = runner.run(0, cases, |_, _| {});
    let report = stats.report(target, t0.elapsed());
    eprintln!("{report}");
    assert!(stats.failures.is_empty(), "{report}");
    assert_eq!(stats.cases, cases);
    assert!(
        stats.ok >= min_ok,
        "only {} inputs accepted\n{report}",
        stats.ok
    );
    assert!(
        stats.kinds.len() >= min_kinds,
        "only {} kinds of refusal\n{report}",
        stats.kinds.len()
    );
    stats
}

#[test]
fn mtx() {
    let s = pass(Target::Mtx, 3000, 100, 15);
    // refusals past the header: entries, values, counts
    assert!(
        s.kinds.keys().any(|k| k.starts_with("Parse")),
        "{:?}",
        s.kinds
    );
    assert!(
        s.kinds.keys().any(|k| k.starts_with("Limit")),
        "{:?}",
        s.kinds
    );
}

#[test]
fn tenx_dir() {
    pass(Target::TenxDir, 1000, 50, 10);
}

#[test]
fn h5ad() {
    let s = pass(Target::H5ad, 400, 5, 10);
    // past the vetting into the matrix and frame readers
    assert!(s.kinds.keys().any(|k| k.contains("X")), "{:?}", s.kinds);
}

#[test]
fn tenx_h5() {
    pass(Target::TenxH5, 400, 5, 10);
}

#[test]
fn archive() {
    let s = pass(Target::Archive, 600, 20, 10);
    assert!(
        s.kinds.keys().any(|k| k.contains("refused")),
        "{:?}",
        s.kinds
    );
}

#[test]
fn sniff() {
    pass(Target::Sniff, 800, 20, 10);
}

#[test]
fn cases_are_reproducible() {
    let runner = Runner::new(Options::new(Target::TenxDir, 3)).expect("a scratch folder");
    for index in [0, 17, 999] {
        let a = runner.input(index);
        let b = runner.input(index);
        assert_eq!(a.files, b.files);
        assert_eq!(a.note, b.note);
    }
    assert_ne!(runner.input(1).files, runner.input(2).files);
}
