//! The operator and reviewer console (issue 24): server-rendered HTML pages under
//! `/console` (and `/` redirecting there), every asset embedded in the binary, no script.
//!
//! Sign-in exchanges an API key (a form POST) for a session cookie ([`session`]); every
//! form carries a synchronizer token bound to the session ([`csrf`]). Pages read through
//! the same handlers and database functions the JSON API uses (`server::routes`), and an
//! action is offered — and accepted — only for a key whose role allows it. The routes are
//! not in the OpenAPI document: they answer HTML, not JSON.

pub mod csrf;
pub mod layout;
pub mod pages;
pub mod session;

use super::AppState;
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

/// The console's stylesheet (`assets/console.css`), embedded.
const CSS: &str = include_str!("assets/console.css");

/// What the console's pages may load: only this server's own stylesheet; no script at all.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (none when `[console] enabled = false`).
pub fn router(state: &AppState) -> Router<AppState> {
    if !state.config.console.enabled {
        return Router::new();
    }
    let signed_in = Router::new()
        .route("/console", get(pages::overview::page))
        .route("/console/plugins", get(pages::plugins::list))
        .route("/console/plugins/{name}", get(pages::plugins::detail))
        .route(
            "/console/plugins/{name}/action",
            post(pages::plugins::action),
        )
        .route("/console/audit", get(pages::audit::page))
        .route(
            "/console/pipelines",
            get(pages::pipelines::list).post(pages::pipelines::start),
        )
        .route("/console/pipelines/runs/{id}", get(pages::pipelines::run))
        .route("/console/leads", get(pages::leads::list))
        .route("/console/leads/{id}", get(pages::leads::detail))
        .route(
            "/console/leads/{id}/override",
            post(pages::leads::set_override),
        )
        .route("/console/strategies", get(pages::strategies::list))
        .route("/console/strategies/{name}", get(pages::strategies::detail))
        .route("/console/signout", post(pages::signin::sign_out))
        // Outermost first: the session, then the CSRF check of a POST.
        .layer(middleware::from_fn(csrf::check))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            session::require,
        ));
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route(
            "/console/signin",
            get(pages::signin::form).post(pages::signin::sign_in),
        )
        .route("/console/assets/console.css", get(stylesheet))
        .merge(signed_in)
        .layer(middleware::map_response(security_headers))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// Every console answer: no framing, no sniffing, no referrer leaving the site, nothing
/// but the stylesheet loaded; pages are never cached (they show a signed-in view).
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    res
}

/// A console request that cannot be answered with its page: rendered as an HTML page
/// with the status (a JSON client never calls these routes).
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub detail: String,
}

impl PageError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
}

impl From<super::error::ApiError> for PageError {
    fn from(e: super::error::ApiError) -> Self {
        Self::new(e.status, e.detail)
    }
}

impl From<crate::db::DbError> for PageError {
    fn from(e: crate::db::DbError) -> Self {
        super::error::ApiError::from(e).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        layout::error_page(self.status, &self.detail)
    }
}

/// Result of a console handler.
pub type PageResult<T = Response> = Result<T, PageError>;

/// A query or form field as sent by an HTML form: empty means absent.
pub fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}
