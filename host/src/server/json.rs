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
    fn depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(br#"{"a":[1,{"b":"[[[["}]}"#, 100), 3);
        assert_eq!(json_depth(br#""{{{""#, 100), 0);
        assert_eq!(json_depth(&[b'['; 10_000], 5), 6);
    }
}
