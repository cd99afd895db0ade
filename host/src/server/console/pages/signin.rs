//! Sign-in (an API key posted in a form, exchanged for a session cookie) and sign-out.
//! The key is read from the form body only, hashed, looked up, and dropped: it never
//! appears in a URL, a page or a log line.

use super::super::layout;
use super::super::session::{self, Session, SIGNIN_COOKIE};
use super::super::{csrf, given, PageError, PageResult};
use crate::server::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

/// How long the sign-in form stays valid.
const SIGNIN_FORM_SECS: u64 = 3600;

/// `GET /console/signin`: the form (or the console, when already signed in).
pub async fn form(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> PageResult {
    let next = session::safe_next(given(&q.next)).to_string();
    if session::current(&st, &headers).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    Ok(signin_page(&st, &headers, StatusCode::OK, None, &next))
}

fn signin_page(
    st: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    problem: Option<&str>,
    next: &str,
) -> Response {
    let pre = session::new_token();
    let content = html! {
        @if let Some(p) = problem {
            p.error role="alert" { (p) }
        }
        p { "Sign in with a Strata API key (" code { "strata keys create" } "). What the console offers follows the key's role: a reader sees, an operator also acts, an admin also approves releases." }
        form.stack method="post" action="/console/signin" {
            input type="hidden" name="csrf" value=(csrf::token_for(&pre));
            input type="hidden" name="next" value=(next);
            div {
                label for="key" { "API key" }
                input id="key" name="key" type="password" autocomplete="off" required size="50";
            }
            div { button type="submit" { "Sign in" } }
        }
    };
    let mut res = layout::public_page(status, "Sign in", content);
    res.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            SIGNIN_COOKIE,
            &pre,
            "/console/signin",
            SIGNIN_FORM_SECS,
            session::secure(&st.config.console, headers),
        ),
    );
    res
}

#[derive(Deserialize)]
pub struct SignIn {
    pub key: String,
    pub csrf: Option<String>,
    pub next: Option<String>,
}

/// `POST /console/signin`: checks the form token and the key; opens a session.
pub async fn sign_in(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> PageResult {
    let next = session::safe_next(given(&f.next)).to_string();
    let bound = session::cookie(&headers, SIGNIN_COOKIE).map(csrf::token_for);
    if !bound.is_some_and(|t| csrf::matches(&t, f.csrf.as_deref())) {
        tracing::warn!("console sign-in refused: bad or missing CSRF token");
        return Err(csrf::refused());
    }
    let key = f.key.trim();
    let rec = if key.is_empty() {
        None
    } else {
        st.db
            .find_active_api_key(&crate::server::auth::hash_key(key))
            .await?
    };
    let Some(rec) = rec else {
        tracing::info!("console sign-in refused: unknown or revoked key");
        return Ok(signin_page(
            &st,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("That key is not valid, or it was revoked."),
            &next,
        ));
    };
    let cookie = session::open(&st, &rec.id, &headers).await?;
    tracing::info!(key = %rec.name, role = rec.role.as_str(), "console sign-in");
    let mut res = Redirect::to(&next).into_response();
    res.headers_mut().append(header::SET_COOKIE, cookie);
    res.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            SIGNIN_COOKIE,
            "",
            "/console/signin",
            0,
            session::secure(&st.config.console, &headers),
        ),
    );
    Ok(res)
}

/// `POST /console/signout`: ends the session here and in the database.
pub async fn sign_out(
    State(st): State<AppState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let cookie = session::close(&st, &s, &headers).await?;
    tracing::info!(key = %s.name, "console sign-out");
    let mut res = Redirect::to("/console/signin").into_response();
    res.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(res)
}
