//! Routes and the server around them. Pages: `GET /` (models, upload form), `POST /jobs`
//! (the form; redirects to the job page), `GET /jobs/{id}` (live status, downloads,
//! picture), `GET /static/*` (the pages' style sheet and script). API (described by
//! `GET /api/openapi.json`): `GET /api/status`, `GET /api/models`, `POST /api/jobs`,
//! `GET /api/jobs/{id}`, `GET /api/jobs/{id}/files/{name}`.
//!
//! Against hostile clients (see `docs/portal.md`, Security):
//! - the accept loop caps connections; hyper closes a connection that does not finish a
//!   request's headers in time (idle keep-alive ones too), and a client that reads
//!   nothing of an answer for the body idle timeout is dropped;
//! - every request must name this server in `Host` (DNS rebinding), every state-changing
//!   one must come from no other site (`Origin`, `Referer`, `Sec-Fetch-Site`), and the
//!   form carries a CSRF token bound to a cookie; every answer has security headers;
//! - an upload takes one of a few slots, counts with the jobs for "busy", streams to
//!   disk under the size limit and the disk quota, is given up when no bytes come for the
//!   body idle timeout, and its folder is deleted the moment it is refused or its client
//!   hangs up (a drop guard, which also stops unpacking that is under way).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_core::Stream;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Semaphore;

use crate::archive::Budget;
use crate::jobs::{self, JobLimits, Jobs, SubmitError};
use crate::{Backend, PortalConfig, human_bytes, pages, upload};

/// The OpenAPI 3 description of the JSON API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The cookie the form's CSRF token is bound to.
pub const CSRF_COOKIE: &str = "crossomics_csrf";
/// Bytes an upload may send while the server looks for the next part's headers (the
/// multipart parser buffers them whole).
const PART_HEADERS_CAP: u64 = 1 << 20;
/// Slack over `max_upload_bytes` for the multipart framing and text fields.
const FRAMING_SLACK: u64 = 64 << 10;

/// The Content-Security-Policy of every answer: nothing inline, nothing from elsewhere,
/// never in a frame.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// A result file's: a sandbox, should a browser render it at all.
const DOWNLOAD_CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

/// Headers every answer carries (unless the route set its own).
const SECURITY_HEADERS: [(&str, &str); 7] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    // not `no-referrer`: with it browsers send `Origin: null` on the form's own POST
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-store"),
];

#[derive(Clone)]
struct AppState {
    config: Arc<PortalConfig>,
    backend: Arc<dyn Backend>,
    jobs: Arc<Jobs>,
    gate: Arc<Gate>,
    /// one permit per upload being received or checked
    uploads: Arc<Semaphore>,
}

/// An error answer: JSON for the API, an HTML page for the form.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn json(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }

    fn html(self) -> Response {
        (self.status, Html(pages::error(self.status, &self.message))).into_response()
    }
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// A host name (lowercase, without a trailing dot; IPv6 in brackets) and port.
fn parse_authority(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    if s.is_empty()
        || s.len() > 255
        || s.contains(|c: char| c.is_whitespace() || c.is_control() || "/@?#\\".contains(c))
    {
        return None;
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let port = match &rest[end + 1..] {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        (&s[..end + 2], port)
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return None,
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (s, None),
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some((host, port))
}

/// Who may talk to the server: the host names it answers to, and the secret of its
/// CSRF tokens.
#[derive(Debug)]
struct Gate {
    /// (name, port): `None` is any port
    hosts: Vec<(String, Option<u16>)>,
    secret: [u8; 32],
}

impl Gate {
    /// The bound address and the localhost names at its port, and `extra`
    /// (`NAME[:PORT]`, without a port any port).
    fn new(bound: SocketAddr, extra: &[String]) -> Result<Self, String> {
        let port = bound.port();
        let mut hosts: Vec<(String, Option<u16>)> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|h| (h.to_string(), Some(port)))
            .collect();
        if !bound.ip().is_unspecified() {
            let ip = match bound {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            hosts.push((ip, Some(port)));
        }
        for e in extra {
            let parsed = parse_authority(e)
                .ok_or_else(|| format!("--allowed-host `{e}`: expected NAME or NAME:PORT"))?;
            hosts.push(parsed);
        }
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Ok(Self { hosts, secret })
    }

    fn allows(&self, name: &str, port: u16) -> bool {
        self.hosts
            .iter()
            .any(|(n, p)| n == name && p.is_none_or(|p| p == port))
    }

    fn shown(&self) -> String {
        let names: Vec<String> = self
            .hosts
            .iter()
            .map(|(n, p)| match p {
                Some(p) => format!("{n}:{p}"),
                None => n.clone(),
            })
            .collect();
        names.join(", ")
    }

    /// `Host` (and an absolute request target's authority) must name this server.
    fn check_host(&self, req: &Request) -> Option<Refusal> {
        let header = req.headers().get(header::HOST).map(|v| v.to_str().ok());
        let target = req.uri().authority().map(|a| a.as_str());
        let named: Vec<Option<&str>> = match (header, target) {
            (None, None) => {
                return Some(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "the request has no Host header",
                ));
            }
            (h, t) => h.into_iter().chain(t.map(Some)).collect(),
        };
        for h in named {
            let ok = h
                .and_then(parse_authority)
                .is_some_and(|(n, p)| self.allows(&n, p.unwrap_or(80)));
            if !ok {
                let shown = h.map_or("(not text)".to_string(), |h| {
                    crossomics_limits::excerpt_str(h, 80)
                });
                return Some(Refusal::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "this server does not answer to the host `{shown}`; it answers to {} \
                         (serving under another name needs `--allowed-host NAME`)",
                        self.shown()
                    ),
                ));
            }
        }
        None
    }

    /// Whether `origin` (`scheme://host[:port]`, as `Origin` sends it, or a `Referer`
    /// URL) is this server.
    fn origin_allowed(&self, origin: &str) -> bool {
        let Some((scheme, rest)) = origin.split_once("://") else {
            return false;
        };
        let default = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            _ => return false,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        parse_authority(authority).is_some_and(|(n, p)| self.allows(&n, p.unwrap_or(default)))
    }

    /// A state-changing request must come from no other site: `Sec-Fetch-Site` (sent by
    /// current browsers), else `Origin`, else `Referer`, must say this server. A request
    /// with none of them is a non-browser client (curl, scripts) and passes; but one to
    /// the API carrying cookies is a browser's, and must carry `Origin`.
    fn check_origin(&self, req: &Request) -> Option<Refusal> {
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return None;
        }
        let h = req.headers();
        let text = |n: HeaderName| h.get(n).map(|v| v.to_str().unwrap_or("(not text)"));
        let refuse = |why: String| {
            Some(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("cross-site request refused: {why}"),
            ))
        };
        if let Some(site) = text(HeaderName::from_static("sec-fetch-site"))
            && (site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site"))
        {
            return refuse(format!(
                "it comes from another site (Sec-Fetch-Site: {site})"
            ));
        }
        if let Some(origin) = text(header::ORIGIN) {
            if !self.origin_allowed(origin) {
                return refuse(format!(
                    "Origin `{}` is not this server",
                    crossomics_limits::excerpt_str(origin, 80)
                ));
            }
            return None;
        }
        if let Some(referer) = text(header::REFERER) {
            if !self.origin_allowed(referer) {
                return refuse("its Referer is not this server".into());
            }
            return None;
        }
        if req.uri().path().starts_with("/api/") && h.contains_key(header::COOKIE) {
            return refuse(
                "a request carrying cookies (a browser's) must carry an Origin header".into(),
            );
        }
        None
    }

    fn mac(&self, nonce: &str) -> Hmac<sha2::Sha256> {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.secret)
            .expect("HMAC takes a key of any length");
        mac.update(b"crossomics csrf\0");
        mac.update(nonce.as_bytes());
        mac
    }

    /// The form's token for the cookie's nonce: HMAC-SHA256 under this server's secret.
    fn token(&self, nonce: &str) -> String {
        hex(&self.mac(nonce).finalize().into_bytes())
    }

    fn token_ok(&self, nonce: &str, token: &str) -> bool {
        unhex(token).is_some_and(|t| self.mac(nonce).verify_slice(&t).is_ok())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The CSRF nonce of the request's cookie, when it has a well-formed one.
fn cookie_nonce(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == CSRF_COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| jobs::valid_id(v))
}

fn csrf_refused() -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "the form's security token is missing or does not match: reload the start page and submit again",
    )
}

/// Refuses foreign hosts and cross-site state changes, and puts the security headers on
/// every answer (refusals included).
async fn gatekeeper(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let refusal = s
        .gate
        .check_host(&req)
        .or_else(|| s.gate.check_origin(&req));
    let mut resp = match refusal {
        Some(r) if api => r.json(),
        Some(r) => r.html(),
        None => next.run(req).await,
    };
    let h = resp.headers_mut();
    for (k, v) in SECURITY_HEADERS {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    }
    resp
}

/// Builds the router over a job store and a backend (used by [`spawn`]).
fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/jobs", post(submit_form))
        .route("/jobs/{id}", get(job_page))
        .route("/static/portal.css", get(style))
        .route("/static/job.js", get(script))
        .route("/api/status", get(status))
        .route("/api/models", get(models))
        .route("/api/jobs", post(submit_api))
        .route("/api/jobs/{id}", get(job_json))
        .route("/api/jobs/{id}/files/{name}", get(download))
        .route("/api/openapi.json", get(openapi))
        .fallback(|| async { Refusal::new(StatusCode::NOT_FOUND, "no such page").json() })
        // the upload size is checked while the body streams in (accept_upload)
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), gatekeeper))
        .with_state(state)
}

async fn index(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let (nonce, fresh) = match cookie_nonce(&headers) {
        Some(n) => (n, false),
        None => (jobs::new_id(), true),
    };
    let mut resp = Html(pages::index(
        &s.backend.models(),
        &s.backend.status(),
        &s.config,
        &s.gate.token(&nonce),
    ))
    .into_response();
    if fresh
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{CSRF_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Strict"
        ))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        pages::STYLE,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        pages::SCRIPT,
    )
        .into_response()
}

async fn job_page(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    match s.jobs.view(&id) {
        Some(v) => Html(pages::job(&v)).into_response(),
        None => Refusal::new(StatusCode::NOT_FOUND, "no such job (finished jobs expire)").html(),
    }
}

async fn status(State(s): State<AppState>) -> Response {
    let b = s.backend.status();
    let c = &s.config;
    axum::Json(json!({
        "device": b.device,
        "ready": b.ready,
        "message": b.message,
        "jobs_pending": s.jobs.pending(),
        "uploads_in_flight": c.max_uploads_in_flight - s.uploads.available_permits(),
        "queue_capacity": c.queue_capacity,
        "workers": c.workers,
        "max_upload_bytes": c.max_upload_bytes,
        "max_uploads_in_flight": c.max_uploads_in_flight,
        "job_ttl_seconds": c.job_ttl.as_secs(),
        "job_timeout_seconds": c.job_timeout.as_secs(),
        "disk_used_bytes": s.jobs.disk_used(),
        "disk_quota_bytes": c.disk_quota_bytes,
    }))
    .into_response()
}

async fn models(State(s): State<AppState>) -> Response {
    axum::Json(s.backend.models()).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn job_json(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    match s.jobs.view(&id) {
        Some(v) => axum::Json(v).into_response(),
        None => Refusal::new(StatusCode::NOT_FOUND, "no such job (finished jobs expire)").json(),
    }
}

async fn download(
    State(s): State<AppState>,
    UrlPath((id, name)): UrlPath<(String, String)>,
) -> Response {
    let Some((path, file)) = s.jobs.file(&id, &name) else {
        return Refusal::new(
            StatusCode::NOT_FOUND,
            "no such file (the job is unknown, unfinished or expired)",
        )
        .json();
    };
    let f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return Refusal::new(StatusCode::NOT_FOUND, "the file has expired").json(),
    };
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let mut headers = HeaderMap::new();
    let put = |h: &mut HeaderMap, k, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put(&mut headers, header::CONTENT_TYPE, file.media_type.clone());
    put(&mut headers, header::CONTENT_LENGTH, len.to_string());
    // always a download (an <img> shows a picture anyway); the name kept plain
    let plain: String = file
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    put(
        &mut headers,
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{plain}\""),
    );
    put(
        &mut headers,
        header::CONTENT_SECURITY_POLICY,
        DOWNLOAD_CSP.to_string(),
    );
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
    (headers, body).into_response()
}

async fn submit_api(State(s): State<AppState>, req: Request) -> Response {
    match accept_upload(&s, req, false).await {
        Ok(id) => (
            StatusCode::ACCEPTED,
            [(header::LOCATION, format!("/api/jobs/{id}"))],
            axum::Json(json!({
                "id": id,
                "status": "queued",
                "url": format!("/api/jobs/{id}"),
                "page": format!("/jobs/{id}"),
            })),
        )
            .into_response(),
        Err(r) => r.json(),
    }
}

async fn submit_form(State(s): State<AppState>, req: Request) -> Response {
    match accept_upload(&s, req, true).await {
        Ok(id) => Redirect::to(&format!("/jobs/{id}")).into_response(),
        Err(r) => r.html(),
    }
}

/// Why an upload's body stream stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trip {
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
struct Meter {
    in_headers: AtomicBool,
    header_bytes: AtomicU64,
    trip: Mutex<Option<Trip>>,
}

impl Meter {
    /// The handler waits for the next part's headers: what arrives now is buffered.
    fn start_headers(&self) {
        self.header_bytes.store(0, Ordering::Relaxed);
        self.in_headers.store(true, Ordering::Relaxed);
    }

    fn end_headers(&self) {
        self.in_headers.store(false, Ordering::Relaxed);
    }

    fn tripped(&self) -> Option<Trip> {
        *self.trip.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The request body as the multipart parser reads it: counted against the upload limit,
/// bounded while part headers are looked for, and ended with an error when no bytes
/// come for the idle timeout (the stream is polled only while the handler wants data,
/// so the clock runs only then).
struct Guarded {
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
    fn new(inner: BodyDataStream, meter: Arc<Meter>, idle: Duration, limit: u64) -> Self {
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
async fn accept_upload(s: &AppState, req: Request, form: bool) -> Result<String, Refusal> {
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

/// A connection's I/O, dropped when the client reads nothing of an answer for `limit`
/// (hyper has no write timeout). Reads are not timed here: a request's headers are
/// (hyper's header timeout), an upload's body is ([`Guarded`]).
struct WriteTimeout<T> {
    inner: T,
    limit: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteTimeout<T> {
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<R>> {
        let limit = self.limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing of the answer",
            )));
        }
        Poll::Pending
    }

    fn ready<R>(&mut self, r: std::io::Result<R>) -> Poll<std::io::Result<R>> {
        self.sleep = None;
        Poll::Ready(r)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => self.ready(r),
            Poll::Pending => self.pending(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => self.ready(r),
            Poll::Pending => self.pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(r) => self.ready(r),
            Poll::Pending => self.pending(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(r) => self.ready(r),
            Poll::Pending => self.pending(cx),
        }
    }
}

/// The answer to a connection over the cap (written without waiting, then closed).
const TOO_MANY_CONNECTIONS: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 45\r\nconnection: close\r\n\r\nbusy: too many connections; try again later\r\n";

/// How connections are served.
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    max_connections: usize,
    header_timeout: Duration,
    write_timeout: Duration,
}

/// Accepts connections until `stop`: at most `max_connections` at once (one more is
/// answered 503 and closed), each served by hyper's HTTP/1 with a header read timeout
/// and a bounded read buffer.
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnLimits,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // out of file descriptors, most likely: let connections finish
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            let _ = stream.try_write(TOO_MANY_CONNECTIONS);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = hyper_util::rt::TokioIo::new(WriteTimeout {
            inner: stream,
            limit: limits.write_timeout,
            sleep: None,
        });
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(64 << 10)
                .keep_alive(true);
            if let Err(e) = builder.serve_connection(io, service).await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
}

/// A server running in the background; dropping it stops it.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    jobs: Arc<Jobs>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// Serves until the process ends (or the server fails).
    pub fn wait(mut self) -> std::io::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the server thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.jobs.close();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `config.addr` (and nothing else) and serves in background threads: the HTTP
/// side on a small tokio runtime, `config.workers` job threads calling `backend`.
pub fn spawn(config: PortalConfig, backend: Arc<dyn Backend>) -> std::io::Result<Running> {
    let (jobs, rx) = Jobs::with_limits(
        &config.work_dir.join("jobs"),
        config.job_ttl,
        config.queue_capacity,
        JobLimits {
            timeout: config.job_timeout,
            memory_bytes: config.job_memory_bytes,
            data: config.limits,
        },
    )?;
    let listener = std::net::TcpListener::bind(config.addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let gate = Gate::new(addr, &config.allowed_hosts)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    jobs::start_workers(&jobs, rx, Arc::clone(&backend), config.workers);
    let (ttl, quota) = (config.job_ttl, config.disk_quota_bytes);
    let conn = ConnLimits {
        max_connections: config.max_connections.max(1),
        header_timeout: config.header_timeout,
        write_timeout: config.body_idle_timeout,
    };
    let state = AppState {
        uploads: Arc::new(Semaphore::new(config.max_uploads_in_flight.max(1))),
        config: Arc::new(PortalConfig {
            max_uploads_in_flight: config.max_uploads_in_flight.max(1),
            ..config
        }),
        backend,
        jobs: Arc::clone(&jobs),
        gate: Arc::new(gate),
    };
    let (tx, rx_stop) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("portal-http")
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name("portal".into())
        .spawn(move || {
            let result = runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let sweeper_jobs = Arc::clone(&state.jobs);
                let every = (ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(1));
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    loop {
                        tick.tick().await;
                        sweeper_jobs.stop_overdue();
                        let n = sweeper_jobs.expire();
                        if n > 0 {
                            tracing::info!("expired {n} job(s)");
                        }
                        sweeper_jobs.make_room(quota, 0);
                    }
                });
                serve(listener, router(state), conn, rx_stop).await
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
            result
        })?;
    Ok(Running {
        addr,
        jobs,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_parse_as_browsers_send_them() {
        let p = |s: &str| parse_authority(s);
        assert_eq!(p("LocalHost:8080"), Some(("localhost".into(), Some(8080))));
        assert_eq!(p("example.org."), Some(("example.org".into(), None)));
        assert_eq!(p("[::1]:9"), Some(("[::1]".into(), Some(9))));
        assert_eq!(p("[::1]"), Some(("[::1]".into(), None)));
        for bad in ["", "a b", "x:y", "a@b:1", "::1", "[::1]x", "h:99999", "a/b"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_gate_knows_its_names_and_origins() {
        let g = Gate::new(
            "127.0.0.1:8080".parse().unwrap(),
            &["portal.example.org".into(), "other:81".into()],
        )
        .unwrap();
        assert!(g.allows("localhost", 8080) && g.allows("[::1]", 8080));
        assert!(!g.allows("localhost", 8081) && !g.allows("evil.example", 8080));
        assert!(g.allows("portal.example.org", 443) && g.allows("other", 81));
        assert!(!g.allows("other", 80));
        assert!(g.origin_allowed("http://127.0.0.1:8080"));
        assert!(g.origin_allowed("https://portal.example.org"));
        assert!(g.origin_allowed("http://localhost:8080/jobs/x?y"));
        for bad in [
            "null",
            "http://evil.example",
            "http://localhost:8081",
            "file:///etc",
            "http://localhost:8080@evil.example",
        ] {
            assert!(!g.origin_allowed(bad), "{bad}");
        }
        assert!(Gate::new("127.0.0.1:1".parse().unwrap(), &["a b".into()]).is_err());
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_nonce_and_server() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (a, b) = (Gate::new(addr, &[]).unwrap(), Gate::new(addr, &[]).unwrap());
        let nonce = jobs::new_id();
        let t = a.token(&nonce);
        assert_eq!(t.len(), 64);
        assert!(a.token_ok(&nonce, &t));
        assert!(!a.token_ok(&jobs::new_id(), &t));
        assert!(!b.token_ok(&nonce, &t));
        assert!(!a.token_ok(&nonce, "") && !a.token_ok(&nonce, "zz"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {CSRF_COOKIE}={nonce}")).unwrap(),
        );
        assert_eq!(cookie_nonce(&h), Some(nonce));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("crossomics_csrf=../x"),
        );
        assert_eq!(cookie_nonce(&h), None);
    }
}
