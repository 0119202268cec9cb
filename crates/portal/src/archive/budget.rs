//! What one job's files may still unpack to: the [`Budget`] over all of them, and the
//! [`Metered`] reader that stops at it or at the job's cancellation.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossomics_limits::{Limit, LimitError, Limits};

use super::ArchiveError;

/// The marker inside an `io::Error` that a [`Metered`] reader returns once the job is
/// cancelled.
#[derive(Debug)]
struct CancelledMarker;

impl std::fmt::Display for CancelledMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for CancelledMarker {}

/// An error of reading untrusted (maybe compressed) data, sorted: a limit, a
/// cancellation, else damage described by `what`.
pub fn read_error(e: io::Error, what: &str) -> ArchiveError {
    if let Some(limit) = LimitError::from_io(&e) {
        return ArchiveError::Limit(limit.clone());
    }
    if e.get_ref().is_some_and(|i| i.is::<CancelledMarker>()) {
        return ArchiveError::Cancelled;
    }
    ArchiveError::Malformed(format!("{what}: {e}"))
}

/// What one job's files may still unpack to, the limits, and the job's cancel flag.
#[derive(Debug, Clone)]
pub struct Budget {
    pub(super) limits: Limits,
    /// of `limits.max_unpacked_bytes`
    pub(super) used: u64,
    cancel: Arc<AtomicBool>,
}

impl Budget {
    pub fn new(limits: &Limits) -> Self {
        Self::with_cancel(limits, Arc::new(AtomicBool::new(false)))
    }

    /// A budget that stops (with [`ArchiveError::Cancelled`]) once `cancel` is set.
    pub fn with_cancel(limits: &Limits, cancel: Arc<AtomicBool>) -> Self {
        Self {
            limits: *limits,
            used: 0,
            cancel,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes unpacked (or inflated) so far.
    pub fn used(&self) -> u64 {
        self.used
    }

    fn room(&self) -> u64 {
        self.limits.max_unpacked_bytes.saturating_sub(self.used)
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    pub(super) fn check_cancel(&self) -> Result<(), ArchiveError> {
        if self.cancelled() {
            Err(ArchiveError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn over(&self, claimed: u64, source: &str) -> LimitError {
        LimitError {
            file: source.to_string(),
            what: "what the upload unpacks to, counted as written and inflated".into(),
            claimed: u128::from(claimed),
            limit: Limit::UnpackedBytes,
            max: self.limits.max_unpacked_bytes,
        }
    }

    /// Counts `n` more bytes against `max_unpacked_bytes`.
    pub fn charge(&mut self, n: u64, source: &str) -> Result<(), ArchiveError> {
        let total = self.used.saturating_add(n);
        if total > self.limits.max_unpacked_bytes {
            return Err(self.over(total, source).into());
        }
        self.used = total;
        Ok(())
    }

    /// A reader over `inner` that fails once what it read would not fit in what is
    /// left of the budget, or once the job is cancelled. Charge what it read
    /// ([`Metered::read_so_far`]) afterwards.
    pub fn metered<R: Read>(&self, inner: R, source: &str) -> Metered<R> {
        Metered {
            inner,
            read: 0,
            room: self.room(),
            before: self.used,
            max: self.limits.max_unpacked_bytes,
            cancel: Arc::clone(&self.cancel),
            source: source.to_string(),
        }
    }
}

/// See [`Budget::metered`].
#[derive(Debug)]
pub struct Metered<R> {
    inner: R,
    read: u64,
    room: u64,
    before: u64,
    max: u64,
    cancel: Arc<AtomicBool>,
    source: String,
}

impl<R> Metered<R> {
    pub fn read_so_far(&self) -> u64 {
        self.read
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other(CancelledMarker));
        }
        let room = self.room.saturating_sub(self.read).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.room {
            return Err(LimitError {
                file: self.source.clone(),
                what: "what the upload unpacks to, counted as written and inflated".into(),
                claimed: u128::from(self.before.saturating_add(self.read)),
                limit: Limit::UnpackedBytes,
                max: self.max,
            }
            .into_io());
        }
        Ok(n)
    }
}
