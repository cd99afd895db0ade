//! `ApiJson<T>`: a JSON body extractor that checks the content type and nesting depth
//! before parsing, and answers problem+json with the exact cause (line, column, field).

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

/// Deepest nesting accepted when no state configures it.
pub const DEFAULT_DEPTH: usize = 32;

pub struct ApiJson<T>(pub T);

/// Deepest array/object nesting in `bytes` (strings are skipped); stops early past `limit`.
pub fn json_depth(bytes: &[u8], limit: usize) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
                if max > limit {
                    return max;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses a JSON body with the checks above.
pub fn parse<T: DeserializeOwned>(bytes: &[u8], depth_limit: usize) -> Result<T, ApiError> {
    let depth = json_depth(bytes, depth_limit);
    if depth > depth_limit {
        return Err(ApiError::bad_request(format!(
            "JSON nested deeper than {depth_limit} levels"
        )));
    }
    if has_escaped_nul(bytes) {
        let at = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| nul_path(&v, String::new()))
            .unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "invalid request body at `{}`: text must not contain a NUL character (\\u0000)",
            if at.is_empty() { "." } else { &at }
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        use serde_json::error::Category;
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Data if path != "." => {
                ApiError::unprocessable(format!("invalid request body at `{path}`: {inner}"))
            }
            Category::Data => ApiError::unprocessable(format!("invalid request body: {inner}")),
            _ => ApiError::bad_request(format!("malformed JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// True when a JSON string in `bytes` holds `\u0000` (a NUL, which PostgreSQL cannot
/// store in text or JSONB: refused on every engine alike). Raw NULs are invalid JSON.
fn has_escaped_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Where the first NUL is (`lead.name`, `items[2]`, a key: `attributes.<key>`).
fn nul_path(v: &serde_json::Value, at: String) -> Option<String> {
    let join = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match v {
        serde_json::Value::String(s) => s.contains('\0').then_some(at),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_path(x, format!("{at}[{i}]"))),
        serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
            let here = join(&k.replace('\0', "\\u0000"));
            if k.contains('\0') {
                Some(here)
            } else {
                nul_path(x, here)
            }
        }),
        _ => None,
    }
}

/// Middleware: a path or query with a NUL character (`%00`) is refused with 400 naming
/// the query parameter (or the path) before any handler or database sees it.
pub async fn no_nul_in_uri(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let is_nul = |s: &str| s.to_ascii_lowercase().contains("%00");
    let uri = req.uri();
    if is_nul(uri.path()) {
        return ApiError::bad_request("the path must not contain a NUL character (%00)")
            .into_response();
    }
    if let Some(q) = uri.query().filter(|q| is_nul(q)) {
        let name = q
            .split('&')
            .find(|p| is_nul(p))
            .map(|p| p.split('=').next().unwrap_or(""))
            .unwrap_or("");
        return ApiError::bad_request(format!(
            "query parameter {name:?} must not contain a NUL character (%00)"
        ))
        .into_response();
    }
    next.run(req).await
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/json") {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("expected Content-Type: application/json, got {ct:?}"),
            ));
        }
        let limit = req
            .extensions()
            .get::<DepthLimit>()
            .map_or(DEFAULT_DEPTH, |d| d.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(
                e.status(),
                format!("cannot read request body: {}", e.body_text()),
            )
        })?;
        parse(&bytes, limit).map(ApiJson)
    }
}

/// Request extension carrying the configured depth limit.
#[derive(Clone, Copy)]
pub struct DepthLimit(pub usize);

#[cfg(test)]
mod tests {
    use super::json_depth;

    #[test]
    fn escaped_nul_is_found_and_named() {
        assert!(super::has_escaped_nul(br#"{"a":"x\u0000"}"#));
        assert!(!super::has_escaped_nul(br#"{"a":"x\\u0000"}"#));
        let e = super::parse::<serde_json::Value>(
            br#"{"lead":{"id":"a","attributes":{"k":"\u0000"}}}"#,
            32,
        )
        .err()
        .unwrap();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.detail.contains("`lead.attributes.k`"), "{}", e.detail);
    }

    #[test]
    fn depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(br#"{"a":[1,{"b":"[[[["}]}"#, 100), 3);
        assert_eq!(json_depth(br#""{{{""#, 100), 0);
        assert_eq!(json_depth(&[b'['; 10_000], 5), 6);
    }
}
