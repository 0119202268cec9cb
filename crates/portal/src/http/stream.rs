//! An upload's body stream as the multipart parser reads it: counted against the upload
//! limit, bounded while part headers are looked for, given up when no bytes come.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{BodyDataStream, Bytes};
use futures_core::Stream;

/// Bytes an upload may send while the server looks for the next part's headers (the
/// multipart parser buffers them whole).
pub(super) const PART_HEADERS_CAP: u64 = 1 << 20;

/// Why an upload's body stream stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trip {
    /// no bytes for the body idle timeout
    Idle,
    /// more than the upload limit
    TooLarge,
    /// part headers that never end
    Headers,
}

/// What an upload's body stream has seen: shared between the stream (inside the
/// multipart parser) and the handler.
#[derive(Debug, Default)]
pub(super) struct Meter {
    in_headers: AtomicBool,
    header_bytes: AtomicU64,
    trip: Mutex<Option<Trip>>,
}

impl Meter {
    /// The handler waits for the next part's headers: what arrives now is buffered.
    pub(super) fn start_headers(&self) {
        self.header_bytes.store(0, Ordering::Relaxed);
        self.in_headers.store(true, Ordering::Relaxed);
    }

    pub(super) fn end_headers(&self) {
        self.in_headers.store(false, Ordering::Relaxed);
    }

    pub(super) fn tripped(&self) -> Option<Trip> {
        *self.trip.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The request body as the multipart parser reads it: counted against the upload limit,
/// bounded while part headers are looked for, and ended with an error when no bytes
/// come for the idle timeout (the stream is polled only while the handler wants data,
/// so the clock runs only then).
pub(super) struct Guarded {
    inner: BodyDataStream,
    meter: Arc<Meter>,
    idle: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
    total: u64,
    limit: u64,
    done: bool,
}

impl Guarded {
    pub(super) fn new(
        inner: BodyDataStream,
        meter: Arc<Meter>,
        idle: Duration,
        limit: u64,
    ) -> Self {
        Self {
            inner,
            meter,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            total: 0,
            limit,
            done: false,
        }
    }

    fn trip(&mut self, t: Trip) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        let mut slot = self.meter.trip.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(t);
        self.done = true;
        Poll::Ready(Some(Err(std::io::Error::other(format!(
            "upload stopped: {t:?}"
        )))))
    }
}

impl Stream for Guarded {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                this.waiting = false;
                let n = b.len() as u64;
                this.total += n;
                if this.total > this.limit {
                    return this.trip(Trip::TooLarge);
                }
                if this.meter.in_headers.load(Ordering::Relaxed)
                    && this.meter.header_bytes.fetch_add(n, Ordering::Relaxed) + n
                        > PART_HEADERS_CAP
                {
                    return this.trip(Trip::Headers);
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let at = tokio::time::Instant::now() + this.idle;
                    this.sleep.as_mut().reset(at);
                }
                if this.sleep.as_mut().poll(cx).is_ready() {
                    return this.trip(Trip::Idle);
                }
                Poll::Pending
            }
        }
    }
}
