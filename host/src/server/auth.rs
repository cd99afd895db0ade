//! API keys and roles. A key is `strata_` + 40 random hex characters; only its SHA-256 is
//! stored. Requests carry it as `Authorization: Bearer <key>` or `X-Api-Key: <key>`.
//! Roles nest: reader (GET) < operator (scoring, jobs, plugin controls) < admin (keys).
//!
//! Revocation, and the lookup cache that would delay it:
//! * on the replica that revoked a key, the key stops working at once (the revoke route
//!   drops it from this cache);
//! * admin routes never use the cache: a revoked admin key is refused by every replica
//!   on its next request (so it cannot mint a new key in the meantime);
//! * other routes on other replicas refuse it within `server.key_cache_ms` (5 s by
//!   default), the age a cached lookup may reach.
//! * When the database cannot be reached, a key this replica verified before keeps
//!   working on non-admin routes (pure scoring goes on during an outage); a key never
//!   seen gets 503.

use super::error::ApiError;
use super::AppState;
use crate::db::{ApiKeyRecord, NewApiKey, Role};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PREFIX_LEN: usize = 14;

/// Who is calling (a request extension after authentication).
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub name: String,
    pub role: Role,
}

/// Generates a new key secret.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    format!("strata_{}", hex::encode(bytes))
}

pub fn hash_key(key: &str) -> String {
    crate::db::hash_api_key_secret(key)
}

/// Creates and stores a key; the secret is returned once and never stored.
pub async fn create_key(
    db: &crate::db::Db,
    name: &str,
    role: Role,
) -> Result<(ApiKeyRecord, String), crate::db::DbError> {
    let secret = generate_key();
    let rec = db
        .insert_api_key(&NewApiKey {
            name: name.to_string(),
            role,
            key_hash: hash_key(&secret),
            prefix: secret[..PREFIX_LEN].to_string(),
        })
        .await?;
    Ok((rec, secret))
}

/// The key presented with a request, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let (scheme, key) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| key.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Hash → (record or none, when fetched).
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Option<ApiKeyRecord>, Instant)>>,
    ttl: Duration,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::new(Duration::from_millis(
            crate::config::ServerSettings::default().key_cache_ms,
        ))
    }
}

impl KeyCache {
    /// A cache whose lookups are trusted for `ttl` (`server.key_cache_ms`).
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn entries(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (Option<ApiKeyRecord>, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops every cached lookup of the key with this id (it was just revoked here).
    pub fn forget(&self, key_id: &str) {
        self.entries()
            .retain(|_, (rec, _)| rec.as_ref().is_none_or(|r| r.id != key_id));
    }

    /// The active key whose secret hashes to `hash`. A cached lookup younger than the
    /// TTL answers unless `fresh` (admin routes); when the database fails, a key verified
    /// before still answers unless `fresh`.
    async fn lookup(
        &self,
        db: &crate::db::Db,
        hash: &str,
        fresh: bool,
    ) -> Result<Option<ApiKeyRecord>, ApiError> {
        let cached = self.entries().get(hash).cloned();
        if let Some((rec, at)) = &cached {
            if !fresh && at.elapsed() < self.ttl {
                return Ok(rec.clone());
            }
        }
        let rec = match db.find_active_api_key(hash).await {
            Ok(rec) => rec,
            Err(e) => {
                if let (false, Some((Some(known), _))) = (fresh, &cached) {
                    tracing::warn!(key = %known.name, error = %e, "database unavailable; accepting a key verified before");
                    return Ok(Some(known.clone()));
                }
                return Err(e.into());
            }
        };
        if let Some(r) = &rec {
            let _ = db.touch_api_key(&r.id).await;
        }
        let mut m = self.entries();
        if m.len() > 10_000 {
            m.clear();
        }
        m.insert(hash.to_string(), (rec.clone(), Instant::now()));
        Ok(rec)
    }
}

/// Middleware: authenticate and require `role` (or a higher one).
pub async fn require(
    State((state, role)): State<(AppState, Role)>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(key) = presented_key(req.headers()) else {
        return Err(ApiError::unauthorized(
            "missing API key: send `Authorization: Bearer <key>`",
        ));
    };
    let fresh = role == Role::Admin;
    let rec = state.keys.lookup(&state.db, &hash_key(key), fresh).await?;
    let Some(rec) = rec else {
        return Err(ApiError::unauthorized("invalid or revoked API key"));
    };
    if !rec.role.allows(role) {
        return Err(ApiError::forbidden(format!(
            "this route needs the {} role; key {:?} has {}",
            role.as_str(),
            rec.name,
            rec.role.as_str()
        )));
    }
    req.extensions_mut().insert(Caller {
        key_id: rec.id,
        name: rec.name,
        role: rec.role,
    });
    Ok(next.run(req).await)
}
