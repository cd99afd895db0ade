//! Console sessions: an API key, posted once to `/console/signin`, is exchanged for a
//! random token in a cookie (`HttpOnly`, `SameSite=Strict`, `Path=/console`, expiring
//! after `[console] session_ttl_secs`, `Secure` per `[console] secure_cookie`). The key
//! itself is never stored, logged or put in a page; the database keeps only the token's
//! SHA-256 (`console_sessions`), so every replica on it knows the session, and revoking
//! the key ends it.

use super::{csrf, PageError};
use crate::config::{ConsoleSettings, SecureCookie};
use crate::db::Role;
use crate::server::auth::Caller;
use crate::server::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The session cookie.
pub const COOKIE: &str = "strata_console";
/// The pre-session cookie the sign-in form's CSRF token is bound to.
pub const SIGNIN_COOKIE: &str = "strata_console_signin";

/// The signed-in key of a console request (a request extension).
#[derive(Debug, Clone)]
pub struct Session {
    pub key_id: String,
    pub name: String,
    pub role: Role,
    /// The form token of this session (see [`csrf`]).
    pub csrf: String,
    token_hash: String,
}

impl Session {
    /// True when the key's role allows `role`'s actions.
    pub fn can(&self, role: Role) -> bool {
        self.role.allows(role)
    }

    /// Refuses an action the key's role does not allow (checked server-side, whatever the
    /// page offered).
    pub fn require(&self, role: Role) -> Result<(), PageError> {
        if self.can(role) {
            Ok(())
        } else {
            Err(PageError::forbidden(format!(
                "This needs the {} role; you are signed in as {:?} with the {} role.",
                role.as_str(),
                self.name,
                self.role.as_str()
            )))
        }
    }

    /// The caller as the JSON routes see it (e.g. who overrode a score).
    pub fn caller(&self) -> Caller {
        Caller {
            key_id: self.key_id.clone(),
            name: self.name.clone(),
            role: self.role,
        }
    }
}

/// A new random secret token (256 bits, hex).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the database keeps of a session token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The value of cookie `name` sent with a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// True when the request reached the proxy in front of Strata over HTTPS.
pub fn came_over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// Whether a cookie set in answer to this request is `Secure`.
pub fn secure(settings: &ConsoleSettings, headers: &HeaderMap) -> bool {
    match settings.secure_cookie {
        SecureCookie::Always => true,
        SecureCookie::Never => false,
        SecureCookie::Auto => came_over_https(headers),
    }
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, expiring after `max_age_secs`
/// (0 deletes it).
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: u64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie names and hex tokens are valid header text")
}

/// Opens a session for key `key_id`; returns the `Set-Cookie` value carrying its token.
pub async fn open(
    st: &AppState,
    key_id: &str,
    headers: &HeaderMap,
) -> Result<HeaderValue, PageError> {
    let token = new_token();
    let ttl = st.config.console.session_ttl_secs;
    let now = crate::domain::now_ms();
    st.db
        .insert_console_session(&hash_token(&token), key_id, now, now + ttl as i64 * 1000)
        .await?;
    Ok(set_cookie(
        COOKIE,
        &token,
        "/console",
        ttl,
        secure(&st.config.console, headers),
    ))
}

/// Ends the session of this request, if any; returns the `Set-Cookie` value deleting it.
pub async fn close(
    st: &AppState,
    session: &Session,
    headers: &HeaderMap,
) -> Result<HeaderValue, PageError> {
    st.db
        .delete_console_session(&session.token_hash, crate::domain::now_ms())
        .await?;
    Ok(set_cookie(
        COOKIE,
        "",
        "/console",
        0,
        secure(&st.config.console, headers),
    ))
}

/// The live session the request's cookie names, if any.
pub async fn current(st: &AppState, headers: &HeaderMap) -> Result<Option<Session>, PageError> {
    let Some(token) = cookie(headers, COOKIE) else {
        return Ok(None);
    };
    let token_hash = hash_token(token);
    let found = st
        .db
        .find_console_session(&token_hash, crate::domain::now_ms())
        .await?;
    Ok(found.map(|s| Session {
        key_id: s.key_id,
        name: s.key_name,
        role: s.role,
        csrf: csrf::token_for(token),
        token_hash,
    }))
}

/// Middleware: the signed-in routes need a live session; without one a GET is sent to
/// the sign-in page (and back afterwards), anything else is refused.
pub async fn require(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    match current(&st, req.headers()).await {
        Ok(Some(session)) => {
            req.extensions_mut().insert(session);
            next.run(req).await
        }
        Ok(None) if req.method() == axum::http::Method::GET => {
            let back = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/console");
            let to = format!(
                "/console/signin?next={}",
                serde_urlencoded::to_string([("", back)])
                    .unwrap_or_default()
                    .trim_start_matches('=')
            );
            Redirect::to(&to).into_response()
        }
        Ok(None) => PageError::new(
            StatusCode::UNAUTHORIZED,
            "Your session has ended (signed out or expired). Sign in again; nothing was done.",
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Where to go after sign-in: a console path only (never another site).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if (n == "/console" || n.starts_with("/console/") || n.starts_with("/console?"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.starts_with("/console/signin") =>
        {
            n
        }
        _ => "/console",
    }
}
