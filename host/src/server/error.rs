//! API errors as RFC 9457 `application/problem+json`, with a detail that names the cause.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// Extra headers, e.g. `WWW-Authenticate`.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// The body of an error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, detail);
        e.headers
            .push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        e
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: "about:blank",
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
        };
        let mut res = (
            self.status,
            serde_json::to_string(&body).unwrap_or_default(),
        )
            .into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (k, v) in self.headers {
            res.headers_mut().insert(k, v);
        }
        res
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        if e.is_not_found() {
            return ApiError::not_found(e.to_string());
        }
        if e.is_constraint() || e.is_conflict() {
            return ApiError::new(StatusCode::CONFLICT, e.to_string());
        }
        if let crate::db::DbError::InvalidInput { .. } = e {
            return ApiError::bad_request(e.to_string());
        }
        tracing::error!(error = %e, "database error");
        ApiError::unavailable(format!("database unavailable: {e}"))
    }
}

impl From<crate::crm::CrmError> for ApiError {
    fn from(e: crate::crm::CrmError) -> Self {
        use crate::crm::CrmError as C;
        match e {
            C::Invalid(m) => ApiError::unprocessable(m),
            C::NotFound(m) => ApiError::not_found(m),
            C::Db(e) => e.into(),
        }
    }
}

impl From<crate::plugins::SlotError> for ApiError {
    fn from(e: crate::plugins::SlotError) -> Self {
        match e {
            crate::plugins::SlotError::NotLoaded(_) => ApiError::not_found(e.to_string()),
            _ => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        }
    }
}

impl From<crate::runtime::CallError> for ApiError {
    fn from(e: crate::runtime::CallError) -> Self {
        use crate::runtime::CallError as C;
        let status = match &e {
            C::NotLoaded(_) => StatusCode::NOT_FOUND,
            C::Disabled(_) => StatusCode::SERVICE_UNAVAILABLE,
            C::WrongKind { .. } | C::InvalidInput { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            C::InputTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            // The plugin failed: an upstream failure of this request, not the host's.
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, e.to_string())
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// Middleware: every error answer is problem+json. Errors produced below the handlers
/// (the body limit's 413, the rate limiter's 429, axum's path/query rejections, 405, the
/// timeout's 408) come as text/plain or empty; they are rewritten here with their status
/// and headers kept and their text as the detail. A 429's `Retry-After` is at least 1 s
/// (the limiter rounds the wait down, to 0). JSON answers (MCP's JSON-RPC errors), event
/// streams and the console's HTML pages are left as they are.
pub async fn problem_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    if !(res.status().is_client_error() || res.status().is_server_error()) {
        return res;
    }
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("application/problem+json")
        || ct.starts_with("application/json")
        || ct.starts_with("text/event-stream")
        // The console's error pages (`server::console`): a browser reads them.
        || ct.starts_with("text/html")
    {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let status = parts.status;
    let mut err = ApiError::new(status, text);
    if status == StatusCode::TOO_MANY_REQUESTS {
        let wait = parts
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1)
            .max(1);
        err.detail = format!("rate limit exceeded: retry after {wait} s");
        err.headers
            .push((header::RETRY_AFTER, HeaderValue::from(wait)));
    } else if err.detail.is_empty() {
        err.detail = match status {
            StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route".into(),
            StatusCode::REQUEST_TIMEOUT => "request timed out".into(),
            StatusCode::PAYLOAD_TOO_LARGE => "request body too large".into(),
            s => s.canonical_reason().unwrap_or("error").to_ascii_lowercase(),
        };
    }
    let mut out = err.into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE
            && k != header::CONTENT_LENGTH
            && !out.headers().contains_key(k)
        {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}
