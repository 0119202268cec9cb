//! Receiving an upload: its slot and job folder, the multipart fields streamed to disk
//! under the size limit and the disk quota, the checks, and the job queued.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use tokio::io::AsyncWriteExt;

use super::gate::{cookie_nonce, csrf_refused};
use super::stream::{Guarded, Meter, PART_HEADERS_CAP, Trip};
use super::{AppState, Refusal, internal};
use crate::archive::Budget;
use crate::jobs::{self, Jobs, SubmitError};
use crate::{human_bytes, upload};

/// Slack over `max_upload_bytes` for the multipart framing and text fields.
const FRAMING_SLACK: u64 = 64 << 10;

/// One upload's hold on the server: its slot, its folder and the bytes it has on disk.
/// Dropped before [`Slot::keep`] (a refusal, or the client hung up and the handler was
/// dropped), it deletes the folder at once and stops unpacking that is under way.
struct Slot {
    jobs: Arc<Jobs>,
    dir: PathBuf,
    cancel: Arc<AtomicBool>,
    counted: u64,
    kept: bool,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Slot {
    fn add(&mut self, n: u64) {
        self.counted += n;
        self.jobs.add_inflight(n);
    }

    /// Counts `n` bytes in all (what is on disk after unpacking).
    fn set(&mut self, n: u64) {
        self.jobs.sub_inflight(self.counted);
        self.counted = 0;
        self.add(n);
    }

    fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.jobs.sub_inflight(self.counted);
        if !self.kept {
            // an unpacking thread sees this and deletes what it writes after
            self.cancel.store(true, Ordering::SeqCst);
            // (before the refusal is answered; at most a few hundred files)
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn too_big(limit: u64) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload is larger than this server's limit of {}",
            human_bytes(limit)
        ),
    )
}

fn disk_full(s: &AppState) -> Refusal {
    Refusal::new(
        StatusCode::INSUFFICIENT_STORAGE,
        format!(
            "the server's disk quota for jobs ({}) is full with jobs waiting or running and uploads \
             being received ({} in use); try again later",
            human_bytes(s.config.disk_quota_bytes),
            human_bytes(s.jobs.disk_used())
        ),
    )
}

fn busy(what: String) -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("busy: {what}; try again later"),
    )
}

/// Reads a multipart upload (`model`, optional `genome`, one or more `file`; the form
/// first a `csrf` token) into a new job folder, checks it and queues the job. A refusal,
/// or the client hanging up, removes the folder at once.
pub(super) async fn accept_upload(
    s: &AppState,
    req: Request,
    form: bool,
) -> Result<String, Refusal> {
    let c = &s.config;
    let limit = c.max_upload_bytes;
    // refuse before reading when the size is announced
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit.saturating_add(FRAMING_SLACK)) {
        return Err(too_big(limit));
    }
    let nonce = if form {
        Some(cookie_nonce(req.headers()).ok_or_else(csrf_refused)?)
    } else {
        None
    };
    let backend = s.backend.status();
    if !backend.ready {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no model is ready yet: {}; try again shortly",
                backend
                    .message
                    .unwrap_or_else(|| "the server is starting".into())
            ),
        ));
    }
    let Ok(permit) = Arc::clone(&s.uploads).try_acquire_owned() else {
        return Err(busy(format!(
            "{} uploads are already being received",
            c.max_uploads_in_flight
        )));
    };
    let in_flight = c.max_uploads_in_flight - s.uploads.available_permits();
    if s.jobs.pending() + in_flight > c.queue_capacity + c.workers {
        return Err(busy(format!(
            "{} jobs are already waiting",
            c.queue_capacity
        )));
    }
    if !s.jobs.make_room(c.disk_quota_bytes, announced.unwrap_or(0)) {
        return Err(disk_full(s));
    }
    let meter = Arc::new(Meter::default());
    let (parts, body) = req.into_parts();
    let body = Body::from_stream(Guarded::new(
        body.into_data_stream(),
        Arc::clone(&meter),
        c.body_idle_timeout,
        limit.saturating_add(FRAMING_SLACK),
    ));
    let mut multipart = Multipart::from_request(Request::from_parts(parts, body), &())
        .await
        .map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("expected a multipart/form-data upload: {}", e.body_text()),
            )
        })?;
    let (id, dir) = s.jobs.reserve().map_err(|e| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot make the job folder: {e}"),
        )
    })?;
    let mut slot = Slot {
        jobs: Arc::clone(&s.jobs),
        dir,
        cancel: Arc::new(AtomicBool::new(false)),
        counted: 0,
        kept: false,
        _permit: permit,
    };
    let fields = read_fields(s, &mut multipart, &mut slot, &meter, nonce.as_deref()).await?;
    let bytes = fields.bytes;
    let (model, genome, input) = check_and_classify(s, fields, &mut slot).await?;
    if !s.jobs.make_room(c.disk_quota_bytes, 0) {
        return Err(disk_full(s));
    }
    let disk = slot.counted;
    // from here the folder is the job's (a refused submit removes it itself)
    slot.keep();
    match s.jobs.submit(
        id.clone(),
        model,
        input,
        genome,
        bytes,
        backend.device,
        disk,
    ) {
        Ok(()) => Ok(id),
        Err(SubmitError::Busy(n)) => Err(busy(format!("{n} jobs are already waiting"))),
        Err(SubmitError::Stopped) => Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        )),
    }
}

/// The fields of an upload.
#[derive(Debug, Default)]
struct Fields {
    model: Option<String>,
    genome: Option<String>,
    parts: Vec<PathBuf>,
    names: Vec<String>,
    bytes: u64,
}

/// The refusal for a multipart error: what tripped the body stream, else the parser's.
fn stream_refusal(
    s: &AppState,
    meter: &Meter,
    e: axum::extract::multipart::MultipartError,
) -> Refusal {
    let c = &s.config;
    match meter.tripped() {
        Some(Trip::Idle) => Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "no data arrived for {} s; the upload was given up (--body-idle-timeout-seconds)",
                c.body_idle_timeout.as_secs_f64()
            ),
        ),
        Some(Trip::TooLarge) => too_big(c.max_upload_bytes),
        Some(Trip::Headers) => Refusal::new(
            StatusCode::BAD_REQUEST,
            format!(
                "malformed multipart upload: a part's headers run past {}",
                human_bytes(PART_HEADERS_CAP)
            ),
        ),
        None => Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("malformed multipart upload: {}", e.body_text()),
        ),
    }
}

async fn read_fields(
    s: &AppState,
    multipart: &mut Multipart,
    slot: &mut Slot,
    meter: &Meter,
    csrf: Option<&str>,
) -> Result<Fields, Refusal> {
    let c = &s.config;
    let bad = |m: String| Refusal::new(StatusCode::BAD_REQUEST, m);
    let mut f = Fields::default();
    let mut csrf_ok = csrf.is_none();
    let mut seen_text: Vec<String> = Vec::new();
    let mut n_fields = 0usize;
    let upload_dir = slot.dir.join("upload");
    tokio::fs::create_dir_all(&upload_dir)
        .await
        .map_err(internal)?;
    loop {
        meter.start_headers();
        let next = multipart.next_field().await;
        meter.end_headers();
        let mut field = match next {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(stream_refusal(s, meter, e)),
        };
        n_fields += 1;
        if n_fields > c.max_parts + 3 {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the upload has more than {} form fields", c.max_parts + 3),
            ));
        }
        let name = field.name().unwrap_or("").to_string();
        // the form's token comes first: nothing else is read without it
        if !csrf_ok && name != "csrf" {
            return Err(csrf_refused());
        }
        match name.as_str() {
            "csrf" | "model" | "genome" => {
                if seen_text.contains(&name) {
                    return Err(bad(format!("form field `{name}` is given twice")));
                }
                seen_text.push(name.clone());
                let mut text = Vec::new();
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            if text.len() + chunk.len() > c.max_field_bytes {
                                return Err(Refusal::new(
                                    StatusCode::PAYLOAD_TOO_LARGE,
                                    format!(
                                        "form field `{name}` is longer than {} bytes",
                                        c.max_field_bytes
                                    ),
                                ));
                            }
                            text.extend_from_slice(&chunk);
                        }
                        Ok(None) => break,
                        Err(e) => return Err(stream_refusal(s, meter, e)),
                    }
                }
                let text = String::from_utf8(text)
                    .map_err(|_| bad(format!("form field `{name}` is not UTF-8 text")))?;
                let text = text.trim().to_string();
                match name.as_str() {
                    "csrf" => {
                        if let Some(nonce) = csrf {
                            if !s.gate.token_ok(nonce, &text) {
                                return Err(csrf_refused());
                            }
                            csrf_ok = true;
                        }
                    }
                    "model" => f.model = (!text.is_empty()).then_some(text),
                    _ => f.genome = (!text.is_empty()).then_some(text),
                }
            }
            "file" => {
                if f.parts.len() >= c.max_parts {
                    return Err(Refusal::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "the upload has more than {} files (a dataset is one file, or the three of a MatrixMarket folder)",
                            c.max_parts
                        ),
                    ));
                }
                let file_name: String = field.file_name().unwrap_or("").chars().take(200).collect();
                let path = upload_dir.join(format!("part-{}", f.parts.len()));
                let mut out = tokio::fs::File::create(&path).await.map_err(internal)?;
                let mut size = 0u64;
                loop {
                    let chunk = match field.chunk().await {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => break,
                        Err(e) => return Err(stream_refusal(s, meter, e)),
                    };
                    let n = chunk.len() as u64;
                    size += n;
                    f.bytes += n;
                    if f.bytes > c.max_upload_bytes {
                        return Err(too_big(c.max_upload_bytes));
                    }
                    slot.add(n);
                    if s.jobs.disk_used() > c.disk_quota_bytes
                        && !s.jobs.make_room(c.disk_quota_bytes, 0)
                    {
                        return Err(disk_full(s));
                    }
                    out.write_all(&chunk).await.map_err(internal)?;
                }
                out.flush().await.map_err(internal)?;
                // a browser sends an empty part for an empty file input
                if size == 0 && file_name.is_empty() {
                    let _ = tokio::fs::remove_file(&path).await;
                    continue;
                }
                f.parts.push(path);
                f.names.push(file_name);
            }
            other => {
                return Err(bad(format!(
                    "unknown form field `{}` (expected model, genome, file)",
                    crossomics_limits::excerpt_str(other, 64)
                )));
            }
        }
    }
    if !csrf_ok {
        return Err(csrf_refused());
    }
    Ok(f)
}

async fn check_and_classify(
    s: &AppState,
    fields: Fields,
    slot: &mut Slot,
) -> Result<(String, Option<String>, crate::Input), Refusal> {
    let bad = |m: String| Refusal::new(StatusCode::BAD_REQUEST, m);
    let models = s.backend.models();
    let model = match fields.model {
        Some(m) => m,
        None if models.len() == 1 => models[0].id.clone(),
        None => {
            return Err(bad(
                "form field `model` is missing: name one of GET /api/models".into(),
            ));
        }
    };
    if !models.iter().any(|m| m.id == model) {
        let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
        return Err(bad(format!(
            "unknown model `{}`; available: {}",
            crossomics_limits::excerpt_str(&model, 64),
            ids.join(", ")
        )));
    }
    let limits = s.config.limits;
    let (dir, cancel) = (slot.dir.clone(), Arc::clone(&slot.cancel));
    let (parts, names) = (fields.parts, fields.names);
    let (classified, size) = tokio::task::spawn_blocking(move || {
        let mut budget = Budget::with_cancel(&limits, Arc::clone(&cancel));
        let r = upload::classify(&parts, &names, &dir, &mut budget);
        let _ = std::fs::remove_dir_all(dir.join("upload"));
        let size = jobs::dir_size(&dir);
        // the client hung up meanwhile: the slot has deleted the folder; delete what was
        // written after
        if cancel.load(Ordering::SeqCst) {
            let _ = std::fs::remove_dir_all(&dir);
        }
        (r, size)
    })
    .await
    .map_err(internal)?;
    slot.set(size);
    let input = classified.map_err(|e| {
        Refusal::new(
            if e.unsupported {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            } else if e.too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            },
            e.message,
        )
    })?;
    Ok((model, fields.genome, input))
}
