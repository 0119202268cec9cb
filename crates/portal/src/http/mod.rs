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
//!
//! Each submodule has one job: who may talk to the server (`gate`), the routes and their
//! handlers (`routes`), receiving an upload (`submit`) through a metered body stream
//! (`stream`), the connections (`conn`), and starting the server (`server`).

mod conn;
mod gate;
mod routes;
mod server;
mod stream;
mod submit;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::jobs::Jobs;
use crate::{Backend, PortalConfig, pages};
use gate::Gate;

pub use server::{Running, spawn};

/// The OpenAPI 3 description of the JSON API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The cookie the form's CSRF token is bound to.
pub const CSRF_COOKIE: &str = "crossomics_csrf";

/// The Content-Security-Policy of every answer: nothing inline, nothing from elsewhere,
/// never in a frame.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

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
