//! API keys and roles. A key is `strata_` + 40 random hex characters; only its SHA-256 is
//! stored. Requests carry it as `Authorization: Bearer <key>` or `X-Api-Key: <key>`.
//! Roles nest: reader (GET) < operator (scoring, jobs, plugin controls) < admin (keys).
//! Lookups are cached for a few seconds, so a revoked key stops working within
//! `CACHE_TTL`.

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

const CACHE_TTL: Duration = Duration::from_secs(5);
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
        return v.strip_prefix("Bearer ").map(str::trim);
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Hash → (record or none, when fetched).
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Option<ApiKeyRecord>, Instant)>>,
}

impl KeyCache {
    async fn lookup(
        &self,
        db: &crate::db::Db,
        hash: &str,
    ) -> Result<Option<ApiKeyRecord>, ApiError> {
        if let Some((rec, at)) = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
        {
            if at.elapsed() < CACHE_TTL {
                return Ok(rec.clone());
            }
        }
        let rec = db.find_active_api_key(hash).await?;
        if let Some(r) = &rec {
            let _ = db.touch_api_key(&r.id).await;
        }
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
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
    let rec = state.keys.lookup(&state.db, &hash_key(key)).await?;
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
