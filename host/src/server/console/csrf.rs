//! CSRF protection: a synchronizer token bound to the session. The token of a form is
//! derived from the session's secret token (`SHA-256("strata-console-csrf:" ‖ token)`),
//! so nothing more is stored, it changes with every session, and it does not reveal the
//! session token. Every POST under the signed-in routes is checked here ([`check`])
//! before its handler runs; a missing or wrong token is a 403 page. Sign-in, which has no
//! session yet, binds its form the same way to a short-lived pre-session cookie.

use super::session::Session;
use super::PageError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Largest console form accepted (a pipeline payload is the largest field).
pub const MAX_FORM_BYTES: usize = 256 * 1024;

/// The form token bound to the secret `token`.
pub fn token_for(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"strata-console-csrf:");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

/// Constant-time comparison of the expected token with the one a form sent.
pub fn matches(expected: &str, given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of `field` in an `application/x-www-form-urlencoded` body.
pub fn form_field(body: &[u8], field: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v)
}

/// The refusal of a form without the right token.
pub fn refused() -> PageError {
    PageError::forbidden(
        "This form's security token is missing or does not belong to your session, so \
         nothing was done. Reload the page and submit it again.",
    )
}

/// Middleware: a POST must carry `csrf` = the session's form token.
pub async fn check(req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let expected = req.extensions().get::<Session>().map(|s| s.csrf.clone());
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large")
            .into_response();
    };
    let given = form_field(&bytes, "csrf");
    if !expected.is_some_and(|e| matches(&e, given.as_deref())) {
        tracing::warn!(path = %parts.uri.path(), "console form refused: bad or missing CSRF token");
        return refused().into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
