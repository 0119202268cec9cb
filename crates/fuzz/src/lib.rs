//! A fuzz harness for every reader of untrusted input in crossomics, on stable Rust.
//!
//! Each [`Target`] turns `(target, seed, case index)` into one input — a seeded
//! structure-aware generator or mutator over a seed corpus generated in code — runs the
//! readers on it under `catch_unwind`, and judges the outcome with these oracles:
//!
//! - a panic is a failure, also one that a reader's own panic guard turned into an
//!   error (the panic hook sees it before the guard does);
//! - a case running longer than [`Options::timeout`] is a hang: the watchdog prints the
//!   reproducer and aborts the process (the supervisor in `main.rs` then names the case);
//! - memory: the Rust heap allocated on the case's thread, and the process's peak RSS
//!   (`VmHWM`, reset before each case), must stay under bounds; the binary also sets
//!   `RLIMIT_AS` so that an allocation by a claimed size aborts;
//! - an HDF5 file with something planted that vetting must refuse (soft or external
//!   link, external storage, unknown filter) must not read `Ok`;
//! - unpacking an archive must not write outside its destination, nor leave links,
//!   devices or fifos in it.
//!
//! See `docs/fuzzing.md` for how to run it.

pub mod archives;
pub mod h5;
pub mod mutate;
pub mod portal;
pub mod targets;
pub mod text;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossomics_limits::Limits;

pub use targets::{Corpus, Input, Target};

// ---------------------------------------------------------------------------------------
// memory accounting

thread_local! {
    static HEAP_NOW: Cell<isize> = const { Cell::new(0) };
    static HEAP_PEAK: Cell<isize> = const { Cell::new(0) };
    static HEAP_LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(delta: isize, size: usize) {
    let _ = HEAP_NOW.try_with(|now| {
        let v = now.get().wrapping_add(delta);
        now.set(v);
        let _ = HEAP_PEAK.try_with(|p| {
            if v > p.get() {
                p.set(v)
            }
        });
    });
    if delta > 0 {
        let _ = HEAP_LARGEST.try_with(|l| {
            if size > l.get() {
                l.set(size)
            }
        });
    }
}

/// The system allocator, counting the bytes each thread holds, its peak and its
/// largest single allocation (per case, see [`heap_reset`]).
#[derive(Debug)]
pub struct Counting;

#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` unchanged and only updates thread-local
// counters (const-initialized, no destructors, so no allocation happens in them).
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees
        let p = unsafe { std::alloc::System.alloc(layout) };
        if !p.is_null() {
            note_alloc(layout.size() as isize, layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees
        let p = unsafe { std::alloc::System.alloc_zeroed(layout) };
        if !p.is_null() {
            note_alloc(layout.size() as isize, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: forwarded with the caller's guarantees
        unsafe { std::alloc::System.dealloc(ptr, layout) };
        note_alloc(-(layout.size() as isize), 0);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees
        let p = unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note_alloc(new_size as isize - layout.size() as isize, new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts a new per-case measurement on this thread.
fn heap_reset() {
    let now = HEAP_NOW.with(Cell::get);
    HEAP_PEAK.with(|p| p.set(now));
    HEAP_LARGEST.with(|l| l.set(0));
}

/// (peak bytes above the level at [`heap_reset`], largest single allocation).
fn heap_measure(base: isize) -> (u64, u64) {
    let peak = HEAP_PEAK.with(Cell::get).saturating_sub(base).max(0) as u64;
    (peak, HEAP_LARGEST.with(Cell::get) as u64)
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS (Linux >= 4.0).
fn rss_reset() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak RSS in bytes since the last [`rss_reset`] (`VmHWM`).
pub fn rss_peak() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

// ---------------------------------------------------------------------------------------
// panics

thread_local! {
    /// whether this thread is inside a case (its panics are recorded, not printed)
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    /// the last panic of this thread inside a case: message at location
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: std::sync::Once = std::sync::Once::new();

/// Installs a panic hook that records panics inside cases (so that a panic a reader's
/// guard turns into an error is still seen) and prints all others as usual.
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CASE.with(Cell::get) {
                let msg = info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(non-string panic payload)".into());
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg} (at {at})")));
                if std::env::var_os("CROSSOMICS_FUZZ_VERBOSE").is_some() {
                    previous(info);
                }
            } else {
                previous(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------
// running cases

/// How cases are run and judged.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub seed: u64,
    /// the limits every reader gets: tight, so that every accepted input stays small
    pub limits: Limits,
    /// a case taking longer is a hang
    pub timeout: Duration,
    /// a case's Rust heap on its thread must stay under this (bytes)
    pub max_heap_bytes: u64,
    /// the process's peak RSS during a case must stay under this (bytes)
    pub max_rss_bytes: u64,
    /// where the index of the running case is written before it runs (for the
    /// supervisor, to name the case that killed a child)
    pub progress: Option<PathBuf>,
    /// the command that reruns one case, printed with failures (`{case}` replaced)
    pub repro: String,
}

impl Options {
    pub fn new(target: Target, seed: u64) -> Self {
        Self {
            target,
            seed,
            limits: fuzz_limits(),
            timeout: Duration::from_secs(10),
            max_heap_bytes: 768 << 20,
            max_rss_bytes: 1536 << 20,
            progress: None,
            repro: format!(
                "cargo run --release -p crossomics-fuzz -- --target {} --seed {seed} --case {{case}}",
                target.name()
            ),
        }
    }
}

/// The limits of every case: what an accepted input may hold is small (1e5 cells and
/// features, 1e6 entries, 64 MiB inflated, 16 MiB HDF5 blocks).
pub fn fuzz_limits() -> Limits {
    Limits {
        max_cells: 100_000,
        max_features: 100_000,
        max_nonzeros: 1_000_000,
        max_dense_values: 4_000_000,
        max_inflated_bytes: 64 << 20,
        max_line_bytes: 64 << 10,
        max_archive_entries: 100,
        max_unpacked_bytes: 128 << 20,
        max_obs_columns: 100,
        max_hdf5_objects: 500,
        max_hdf5_block_bytes: 16 << 20,
    }
}

/// What one case came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// the readers accepted the input
    Ok,
    /// they refused it; the kind of error (variant and normalized reason)
    Refused(String),
    /// a bug: panic, memory over the bound, escape, vetting bypassed
    Failed(String),
}

/// One failing case.
#[derive(Debug, Clone)]
pub struct Failure {
    pub case: u64,
    pub reason: String,
}

/// What a run of cases came to.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub cases: u64,
    pub ok: u64,
    /// refusals by kind
    pub kinds: BTreeMap<String, u64>,
    pub failures: Vec<Failure>,
    pub elapsed: Duration,
}

/// Distinct kinds kept; the rest are counted as `(other kinds)`.
const MAX_KINDS: usize = 400;

impl Stats {
    pub fn add_kind(&mut self, kind: &str, n: u64) {
        if self.kinds.len() >= MAX_KINDS && !self.kinds.contains_key(kind) {
            *self.kinds.entry("(other kinds)".into()).or_default() += n;
        } else {
            *self.kinds.entry(kind.to_string()).or_default() += n;
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.cases += other.cases;
        self.ok += other.ok;
        for (k, n) in &other.kinds {
            self.add_kind(k, *n);
        }
        self.failures.extend(other.failures.iter().cloned());
        self.elapsed += other.elapsed;
    }

    /// Refused cases in all.
    pub fn refused(&self) -> u64 {
        self.kinds.values().sum()
    }

    /// A readable summary: counts, throughput, the kinds by frequency.
    pub fn report(&self, target: Target, wall: Duration) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let secs = wall.as_secs_f64().max(1e-9);
        let _ = writeln!(
            s,
            "target {}: {} cases in {:.1} s ({:.0} cases/s), {} ok, {} refused ({} kinds), {} failures",
            target.name(),
            self.cases,
            secs,
            self.cases as f64 / secs,
            self.ok,
            self.refused(),
            self.kinds.len(),
            self.failures.len()
        );
        let mut kinds: Vec<_> = self.kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (k, n) in kinds.iter().take(40) {
            let _ = writeln!(s, "  {n:>9}  {k}");
        }
        if kinds.len() > 40 {
            let rest: u64 = kinds[40..].iter().map(|(_, n)| **n).sum();
            let _ = writeln!(s, "  {rest:>9}  ({} rarer kinds)", kinds.len() - 40);
        }
        for f in self.failures.iter().take(50) {
            let _ = writeln!(s, "  FAILURE case {}: {}", f.case, f.reason);
        }
        s
    }
}

/// A per-runner scratch folder (tmpfs when there is one), removed on drop.
#[derive(Debug)]
pub struct Scratch {
    pub root: PathBuf,
    /// `root/l1/l2/l3/case`: archive entries escaping up to three levels land in
    /// `root`'s chain, where [`Scratch::check_escapes`] finds them
    pub case: PathBuf,
}

static SCRATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where escaping absolute archive entries would land.
pub const ESCAPE_DIR: &str = "/tmp/crossomics-fuzz-escape";

impl Scratch {
    pub fn new() -> std::io::Result<Self> {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let n = SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed);
        let root = base.join(format!("crossomics-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let case = root.join("l1").join("l2").join("l3").join("case");
        std::fs::create_dir_all(&case)?;
        Ok(Self { root, case })
    }

    /// Empties the case folder.
    pub fn clear(&self) -> std::io::Result<()> {
        if self.case.exists() {
            std::fs::remove_dir_all(&self.case)?;
        }
        std::fs::create_dir_all(&self.case)
    }

    /// Anything in the chain above the case folder, or in the escape folder, is an
    /// archive entry that got out.
    pub fn check_escapes(&self) -> Option<String> {
        let mut dir = self.root.clone();
        for expected in ["l1", "l2", "l3", "case"] {
            let entries: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            if let Some(other) = entries.iter().find(|e| *e != expected) {
                let path = dir.join(other);
                // removed, so that the next cases start clean
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
                return Some(format!(
                    "`{}` appeared beside the case folder",
                    path.display()
                ));
            }
            dir = dir.join(expected);
        }
        if Path::new(ESCAPE_DIR).exists() {
            let _ = std::fs::remove_dir_all(ESCAPE_DIR);
            return Some(format!(
                "{ESCAPE_DIR} was created (an absolute archive entry)"
            ));
        }
        None
    }
}

/// Removes the scratch folders a process `pid` left (it died before dropping them).
pub fn remove_scratch_of(pid: u32) {
    let prefix = format!("crossomics-fuzz-{pid}-");
    for base in [PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        if let Ok(rd) = std::fs::read_dir(&base) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The state the watchdog thread watches.
#[derive(Debug, Default)]
struct Watch {
    /// milliseconds since `epoch` when the running case started; 0 when idle
    started_ms: AtomicU64,
    case: AtomicU64,
    stop: AtomicBool,
}

/// A runner: one target's corpus and scratch folder on this thread, a watchdog.
#[derive(Debug)]
pub struct Runner {
    pub opts: Options,
    pub corpus: Corpus,
    pub scratch: Scratch,
    watch: Arc<Watch>,
    epoch: Instant,
    progress: Option<std::fs::File>,
}

impl Runner {
    pub fn new(opts: Options) -> std::io::Result<Self> {
        install_panic_hook();
        let scratch = Scratch::new()?;
        let corpus = Corpus::build(opts.target, &scratch);
        let watch = Arc::new(Watch::default());
        let epoch = Instant::now();
        {
            let watch = watch.clone();
            let timeout = opts.timeout;
            let repro = opts.repro.clone();
            let target = opts.target;
            let progress = opts.progress.clone();
            std::thread::Builder::new()
                .name("fuzz-watchdog".into())
                .spawn(move || {
                    while !watch.stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(200));
                        let started = watch.started_ms.load(Ordering::Relaxed);
                        if started == 0 {
                            continue;
                        }
                        let now = epoch.elapsed().as_millis() as u64;
                        if now.saturating_sub(started) > timeout.as_millis() as u64 {
                            let case = watch.case.load(Ordering::Relaxed);
                            let msg = format!(
                                "HANG: target {} case {case} ran over {:?}; reproduce with: {}",
                                target.name(),
                                timeout,
                                repro.replace("{case}", &case.to_string())
                            );
                            eprintln!("crossomics-fuzz: {msg}");
                            if let Some(p) = &progress {
                                let _ = std::fs::write(p.with_extension("note"), &msg);
                            }
                            std::process::abort();
                        }
                    }
                })?;
        }
        let progress = match &opts.progress {
            Some(p) => Some(std::fs::File::create(p)?),
            None => None,
        };
        Ok(Self {
            opts,
            corpus,
            scratch,
            watch,
            epoch,
            progress,
        })
    }

    /// The input of case `index`.
    pub fn input(&self, index: u64) -> Input {
        targets::generate(
            self.opts.target,
            self.opts.seed,
            index,
            &self.corpus,
            &self.scratch,
        )
    }

    /// Runs one case and judges it.
    pub fn run_case(&mut self, index: u64) -> Outcome {
        if let Some(f) = &self.progress {
            use std::os::unix::fs::FileExt;
            let _ = f.write_at(&index.to_le_bytes(), 0);
        }
        self.watch.case.store(index, Ordering::Relaxed);
        self.watch.started_ms.store(
            self.epoch.elapsed().as_millis().max(1) as u64,
            Ordering::Relaxed,
        );
        IN_CASE.with(|c| c.set(true));
        LAST_PANIC.with(|p| p.borrow_mut().take());
        rss_reset();
        let base = HEAP_NOW.with(Cell::get);
        heap_reset();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let input = self.input(index);
            targets::execute(self.opts.target, &input, &self.scratch, &self.opts.limits)
        }));
        let (heap_peak, largest) = heap_measure(base);
        let rss = rss_peak().unwrap_or(0);
        let panic = LAST_PANIC.with(|p| p.borrow_mut().take());
        IN_CASE.with(|c| c.set(false));
        self.watch.started_ms.store(0, Ordering::Relaxed);
        let outcome = match result {
            Err(_) => Outcome::Failed(format!(
                "panic: {}",
                panic.unwrap_or_else(|| "(no message)".into())
            )),
            Ok(outcome) => match (outcome, panic) {
                (Outcome::Failed(f), _) => Outcome::Failed(f),
                (_, Some(p)) => Outcome::Failed(format!(
                    "panic caught inside the reader (its guard turned it into an error): {p}"
                )),
                (o, None) => o,
            },
        };
        if matches!(outcome, Outcome::Failed(_)) {
            return outcome;
        }
        if heap_peak > self.opts.max_heap_bytes || largest > self.opts.max_heap_bytes {
            return Outcome::Failed(format!(
                "memory: the case's Rust heap peaked at {} MiB (largest allocation {} MiB), over the bound of {} MiB",
                heap_peak >> 20,
                largest >> 20,
                self.opts.max_heap_bytes >> 20
            ));
        }
        if rss > self.opts.max_rss_bytes {
            return Outcome::Failed(format!(
                "memory: peak RSS {} MiB during the case, over the bound of {} MiB",
                rss >> 20,
                self.opts.max_rss_bytes >> 20
            ));
        }
        outcome
    }

    /// Runs cases `start..start+count`, calling `each` after every case.
    pub fn run(&mut self, start: u64, count: u64, mut each: impl FnMut(u64, &Outcome)) -> Stats {
        let t0 = Instant::now();
        let mut stats = Stats::default();
        for index in start..start.saturating_add(count) {
            let outcome = self.run_case(index);
            stats.cases += 1;
            match &outcome {
                Outcome::Ok => stats.ok += 1,
                Outcome::Refused(kind) => stats.add_kind(kind, 1),
                Outcome::Failed(reason) => stats.failures.push(Failure {
                    case: index,
                    reason: reason.clone(),
                }),
            }
            each(index, &outcome);
        }
        stats.elapsed = t0.elapsed();
        stats
    }

    /// Writes the input of case `index` under `dir` (created), for a bug report.
    pub fn save(&self, index: u64, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let input = self.input(index);
        for (name, bytes) in &input.files {
            let p = dir.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, bytes)?;
        }
        std::fs::write(dir.join("CASE.txt"), input.describe())?;
        Ok(())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.watch.stop.store(true, Ordering::Relaxed);
    }
}

/// A message reduced to its shape: paths of the scratch folder dropped, quoted parts
/// and numbers replaced, cut short — so that errors of one kind count together.
pub fn normalize(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut last_digit = false;
    for c in message.chars() {
        if c == '`' {
            quoted = !quoted;
            if quoted {
                out.push_str("`…`");
            }
            continue;
        }
        if quoted {
            continue;
        }
        if c.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
            continue;
        }
        last_digit = false;
        out.push(c);
        if out.len() > 110 {
            out.push('…');
            break;
        }
    }
    out
}

/// Limits an RLIMIT_AS on this process (bytes): an allocation past it fails, which Rust
/// turns into an abort the supervisor sees.
#[allow(unsafe_code)]
pub fn limit_address_space(bytes: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid, initialized struct
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Keeps glibc from reserving an arena per thread (64 MiB of address space each), so
/// that `RLIMIT_AS` measures what the readers allocate.
#[allow(unsafe_code)]
pub fn few_malloc_arenas() {
    // SAFETY: mallopt only sets a tunable
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
