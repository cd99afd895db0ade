//! Rate limits per API key (or per client IP for requests without one), with 429 and
//! `Retry-After` (tower_governor).

use super::auth::{hash_key, presented_key};
use axum::http::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

/// `key:<hash prefix>` when a key is presented, else `ip:<peer address>`.
#[derive(Clone, Copy)]
pub struct KeyOrIp;

impl KeyExtractor for KeyOrIp {
    type Key = String;

    fn extract<T>(&self, req: &Request<T>) -> Result<String, GovernorError> {
        if let Some(k) = presented_key(req.headers()) {
            return Ok(format!("key:{}", &hash_key(k)[..16]));
        }
        req.extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| format!("ip:{}", c.0.ip()))
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

pub fn layer(
    per_second: u64,
    burst: u32,
) -> GovernorLayer<KeyOrIp, governor::middleware::NoOpMiddleware> {
    let period = Duration::from_nanos((1_000_000_000 / per_second.max(1)).max(1));
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(burst)
        .key_extractor(KeyOrIp)
        .finish()
        .expect("valid rate limit");
    GovernorLayer {
        config: Arc::new(config),
    }
}
