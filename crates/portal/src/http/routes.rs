//! The routes and their handlers: the pages, the JSON API, result downloads, and the two
//! ways to submit a job (the form and the API).

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::gate::{cookie_nonce, gatekeeper};
use super::submit::accept_upload;
use super::{AppState, CSRF_COOKIE, OPENAPI, Refusal};
use crate::{jobs, pages};

/// A result file's: a sandbox, should a browser render it at all.
const DOWNLOAD_CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

/// Builds the router over a job store and a backend (used by [`spawn`](super::spawn)).
pub(super) fn router(state: AppState) -> Router {
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
