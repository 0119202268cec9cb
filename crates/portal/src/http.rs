//! Routes. Pages: `GET /` (models, upload form), `POST /jobs` (the form; redirects to
//! the job page), `GET /jobs/{id}` (live status, downloads, picture). API (described by
//! `GET /api/openapi.json`): `GET /api/status`, `GET /api/models`, `POST /api/jobs`,
//! `GET /api/jobs/{id}`, `GET /api/jobs/{id}/files/{name}`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::archive::Limits;
use crate::jobs::{self, Jobs, SubmitError};
use crate::{Backend, PortalConfig, human_bytes, pages, upload};

/// The OpenAPI 3 description of the JSON API.
pub const OPENAPI: &str = include_str!("openapi.json");

#[derive(Clone)]
struct AppState {
    config: Arc<PortalConfig>,
    backend: Arc<dyn Backend>,
    jobs: Arc<Jobs>,
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

/// Builds the router over a job store and a backend (used by [`spawn`]; tests may serve
/// it themselves).
fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/jobs", post(submit_form))
        .route("/jobs/{id}", get(job_page))
        .route("/api/status", get(status))
        .route("/api/models", get(models))
        .route("/api/jobs", post(submit_api))
        .route("/api/jobs/{id}", get(job_json))
        .route("/api/jobs/{id}/files/{name}", get(download))
        .route("/api/openapi.json", get(openapi))
        .fallback(|| async { Refusal::new(StatusCode::NOT_FOUND, "no such page").json() })
        // the upload size is checked while the body streams in (accept_upload)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn index(State(s): State<AppState>) -> Html<String> {
    Html(pages::index(
        &s.backend.models(),
        &s.backend.status(),
        &s.config,
    ))
}

async fn job_page(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    match s.jobs.view(&id) {
        Some(v) => Html(pages::job(&v)).into_response(),
        None => Refusal::new(StatusCode::NOT_FOUND, "no such job (finished jobs expire)").html(),
    }
}

async fn status(State(s): State<AppState>) -> Response {
    let b = s.backend.status();
    axum::Json(json!({
        "device": b.device,
        "ready": b.ready,
        "message": b.message,
        "jobs_pending": s.jobs.pending(),
        "queue_capacity": s.config.queue_capacity,
        "workers": s.config.workers,
        "max_upload_bytes": s.config.max_upload_bytes,
        "job_ttl_seconds": s.config.job_ttl.as_secs(),
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
    let disposition = if file.media_type.starts_with("image/") {
        "inline"
    } else {
        "attachment"
    };
    put(
        &mut headers,
        header::CONTENT_DISPOSITION,
        format!("{disposition}; filename=\"{}\"", file.name),
    );
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
    (headers, body).into_response()
}

async fn submit_api(
    State(s): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    match accept_upload(&s, &headers, multipart).await {
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

async fn submit_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    match accept_upload(&s, &headers, multipart).await {
        Ok(id) => Redirect::to(&format!("/jobs/{id}")).into_response(),
        Err(r) => r.html(),
    }
}

/// Reads a multipart upload (`model`, optional `genome`, one or more `file`) into a new
/// job folder, checks it and queues the job. Every refusal removes the folder.
async fn accept_upload(
    s: &AppState,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<String, Refusal> {
    let limit = s.config.max_upload_bytes;
    let too_big = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is larger than this server's limit of {}",
                human_bytes(limit)
            ),
        )
    };
    // refuse before reading when the size is announced
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit.saturating_add(64 * 1024)) {
        return Err(too_big());
    }
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
    if s.jobs.pending() >= s.config.queue_capacity + s.config.workers {
        return Err(busy(s.config.queue_capacity));
    }
    let mut multipart = multipart.map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("expected a multipart/form-data upload: {e}"),
        )
    })?;
    let (id, dir) = s.jobs.reserve().map_err(|e| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot make the job folder: {e}"),
        )
    })?;
    let result = read_fields(&mut multipart, &dir, limit).await;
    let (model, genome, parts, names, bytes) = match result {
        Ok(r) => r,
        Err(e) => {
            s.jobs.discard(&dir);
            return Err(if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                too_big()
            } else {
                e
            });
        }
    };
    let checked = check_and_classify(s, model, genome, parts, names, dir.clone()).await;
    let (model, genome, input) = match checked {
        Ok(c) => c,
        Err(e) => {
            s.jobs.discard(&dir);
            return Err(e);
        }
    };
    match s
        .jobs
        .submit(id.clone(), model, input, genome, bytes, backend.device)
    {
        Ok(()) => Ok(id),
        Err(SubmitError::Busy(n)) => Err(busy(n)),
        Err(SubmitError::Stopped) => Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        )),
    }
}

fn busy(capacity: usize) -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("busy: {capacity} jobs are already waiting; try again later"),
    )
}

type Fields = (
    Option<String>,
    Option<String>,
    Vec<PathBuf>,
    Vec<String>,
    u64,
);

async fn read_fields(
    multipart: &mut Multipart,
    dir: &std::path::Path,
    limit: u64,
) -> Result<Fields, Refusal> {
    let bad = |m: String| Refusal::new(StatusCode::BAD_REQUEST, m);
    let malformed = |e: axum::extract::multipart::MultipartError| {
        bad(format!("malformed multipart upload: {}", e.body_text()))
    };
    let (mut model, mut genome) = (None, None);
    let (mut parts, mut names) = (Vec::new(), Vec::new());
    let mut total = 0u64;
    let upload_dir = dir.join("upload");
    tokio::fs::create_dir_all(&upload_dir)
        .await
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "model" | "genome" => {
                let text = field.text().await.map_err(malformed)?;
                if text.len() > 200 {
                    return Err(bad(format!("form field `{name}` is too long")));
                }
                let text = text.trim().to_string();
                let value = (!text.is_empty()).then_some(text);
                if name == "model" {
                    model = value
                } else {
                    genome = value
                }
            }
            "file" => {
                let file_name = field.file_name().unwrap_or("").to_string();
                let path = upload_dir.join(format!("part-{}", parts.len()));
                let mut out = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                let mut size = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    size += chunk.len() as u64;
                    total += chunk.len() as u64;
                    if total > limit {
                        return Err(Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, ""));
                    }
                    out.write_all(&chunk).await.map_err(|e| {
                        Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                    })?;
                }
                out.flush()
                    .await
                    .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                // a browser sends an empty part for an empty file input
                if size == 0 && file_name.is_empty() {
                    let _ = tokio::fs::remove_file(&path).await;
                    continue;
                }
                parts.push(path);
                names.push(file_name);
            }
            other => {
                return Err(bad(format!(
                    "unknown form field `{other}` (expected model, genome, file)"
                )));
            }
        }
    }
    Ok((model, genome, parts, names, total))
}

async fn check_and_classify(
    s: &AppState,
    model: Option<String>,
    genome: Option<String>,
    parts: Vec<PathBuf>,
    names: Vec<String>,
    dir: PathBuf,
) -> Result<(String, Option<String>, crate::Input), Refusal> {
    let bad = |m: String| Refusal::new(StatusCode::BAD_REQUEST, m);
    let models = s.backend.models();
    let model = match model {
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
            "unknown model `{model}`; available: {}",
            ids.join(", ")
        )));
    }
    let limits = Limits {
        max_bytes: s.config.max_unpacked_bytes,
        max_entries: s.config.max_archive_entries,
    };
    let classified = tokio::task::spawn_blocking(move || {
        let r = upload::classify(&parts, &names, &dir, &limits);
        let _ = std::fs::remove_dir_all(dir.join("upload"));
        r
    })
    .await
    .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let input = classified.map_err(|e| {
        Refusal::new(
            if e.unsupported {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            } else {
                StatusCode::BAD_REQUEST
            },
            e.message,
        )
    })?;
    Ok((model, genome, input))
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
    let (jobs, rx) = Jobs::new(
        &config.work_dir.join("jobs"),
        config.job_ttl,
        config.queue_capacity,
    )?;
    let listener = std::net::TcpListener::bind(config.addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    jobs::start_workers(&jobs, rx, Arc::clone(&backend), config.workers);
    let ttl = config.job_ttl;
    let state = AppState {
        config: Arc::new(config),
        backend,
        jobs: Arc::clone(&jobs),
    };
    let (tx, rx_stop) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("portal-http")
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name("portal".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let sweeper_jobs = Arc::clone(&state.jobs);
                let every = (ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(60));
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    loop {
                        tick.tick().await;
                        let n = sweeper_jobs.expire();
                        if n > 0 {
                            tracing::info!("expired {n} job(s)");
                        }
                    }
                });
                axum::serve(listener, router(state))
                    .with_graceful_shutdown(async {
                        let _ = rx_stop.await;
                    })
                    .await
            })
        })?;
    Ok(Running {
        addr,
        jobs,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}
