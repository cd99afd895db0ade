//! One HTTP exchange with a provider, protocol-neutral: POST a JSON body under the
//! provider's deadline, read a bounded answer, and turn every way it can go wrong into an
//! [`LlmError`] that names provider and alias (and never the key).

use super::error::{excerpt, redact, LlmError};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;
use std::time::Duration;

/// Largest successful answer read (a bigger one is `Malformed`).
const MAX_ANSWER_BYTES: usize = 8 << 20;
/// Largest error body read (only an excerpt is kept).
const MAX_ERROR_BYTES: usize = 64 << 10;

/// Who is being called, for error messages.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub provider: &'a str,
    pub alias: &'a str,
    /// The provider's key, scrubbed from anything echoed back.
    pub secret: Option<&'a str>,
}

impl Target<'_> {
    pub fn malformed(&self, detail: impl std::fmt::Display) -> LlmError {
        LlmError::Malformed(format!(
            "provider {:?} (alias {:?}): {}",
            self.provider,
            self.alias,
            redact(&detail.to_string(), self.secret)
        ))
    }

    fn unreachable(&self, url: &str, detail: String) -> LlmError {
        LlmError::Unreachable {
            provider: self.provider.to_string(),
            alias: self.alias.to_string(),
            detail: redact(&format!("POST {url}: {detail}"), self.secret),
        }
    }
}

/// POSTs `body` to `url` and returns the parsed 2xx JSON answer. The whole exchange
/// (connect, send, read) is bounded by `timeout`; dropping the future aborts it.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: HeaderMap,
    body: &Value,
    timeout: Duration,
    target: Target<'_>,
) -> Result<Value, LlmError> {
    let exchange = async {
        let mut resp = http
            .post(url)
            .headers(headers)
            .json(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_builder() {
                    LlmError::Config(format!(
                        "provider {:?}: cannot build a request to {url}: {}",
                        target.provider,
                        error_chain(e)
                    ))
                } else {
                    target.unreachable(url, error_chain(e))
                }
            })?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let limit = if status.is_success() {
            MAX_ANSWER_BYTES
        } else {
            MAX_ERROR_BYTES
        };
        let (bytes, truncated) = read_capped(&mut resp, limit).await.map_err(|e| {
            target.unreachable(
                url,
                format!(
                    "connection lost while reading the answer: {}",
                    error_chain(e)
                ),
            )
        })?;
        if status.is_success() {
            if truncated {
                return Err(
                    target.malformed(format!("answer larger than {MAX_ANSWER_BYTES} bytes"))
                );
            }
            return serde_json::from_slice::<Value>(&bytes).map_err(|e| {
                target.malformed(format!(
                    "HTTP {} body is not JSON ({e}): {}",
                    status.as_u16(),
                    excerpt(&bytes, target.secret)
                ))
            });
        }
        let body = excerpt(&bytes, target.secret);
        Err(if status.as_u16() == 429 {
            LlmError::RateLimited {
                provider: target.provider.to_string(),
                alias: target.alias.to_string(),
                retry_after,
                body,
            }
        } else {
            LlmError::Upstream {
                provider: target.provider.to_string(),
                alias: target.alias.to_string(),
                status: status.as_u16(),
                body,
                retry_after,
            }
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(LlmError::Timeout {
            provider: target.provider.to_string(),
            alias: target.alias.to_string(),
            timeout,
        }),
    }
}

/// The body, at most `limit` bytes; `true` when there was more.
async fn read_capped(
    resp: &mut reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf, false))
}

/// `reqwest::Error` and its causes on one line, without the URL (the caller adds it).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// How long the provider asks us to wait: `retry-after-ms` (OpenAI), else `Retry-After`
/// in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if let Ok(d) = Duration::try_from_secs_f64(ms / 1000.0) {
            return Some(d);
        }
    }
    let value = text(RETRY_AFTER.as_str())?;
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2"), ("retry-after-ms", "150")])),
            Some(Duration::from_millis(150))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        let future = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let d = retry_after(&headers(&[("retry-after", &future)])).unwrap();
        assert!(d > Duration::from_secs(60) && d <= Duration::from_secs(120));
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
