//! `crossomics`: run experiments from TOML configs (the commands live in
//! `crossomics_runner::cli`).

use std::io::IsTerminal;

use clap::Parser;
use crossomics_runner::cli::{self, Cli};

/// Keeps freed memory in the process heap for reuse (glibc): a training step allocates
/// and frees tensors of tens of MB (a batch x peaks), which glibc otherwise serves from
/// fresh `mmap`s, so that every step pays page faults on new pages; that was a third of
/// the CPU time of a sci-CAR epoch (docs/performance.md). Set `CROSSOMICS_SYSTEM_MALLOC=1`
/// to keep glibc's defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("CROSSOMICS_SYSTEM_MALLOC").is_some() {
        return;
    }
    // SAFETY: mallopt only changes glibc's allocation parameters; it is called once at
    // the start of main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// Turns HDF5's `flock` file locking off for this process (unless the user set
/// `HDF5_USE_FILE_LOCKING`). HDF5 opens files without close-on-exec, so a child process
/// spawned while a file is open (the portal's job workers) inherits its lock and holds
/// it until it exits: a later open of that file here then fails with `unable to lock
/// file`. Every file is written to a temporary name and renamed, so no reader ever sees
/// a file being written and the locks protect nothing.
#[allow(unsafe_code)]
fn no_hdf5_file_locks() {
    if std::env::var_os("HDF5_USE_FILE_LOCKING").is_none() {
        // SAFETY: called once at the start of main, before any other thread exists.
        unsafe { std::env::set_var("HDF5_USE_FILE_LOCKING", "FALSE") };
    }
}

fn main() {
    tune_allocator();
    no_hdf5_file_locks();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    if let Err(e) = cli::dispatch(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
