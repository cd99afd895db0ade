//! API keys of the HTTP service: who may call it, with which [`Role`].
//!
//! Only the hex SHA-256 of a key's secret is stored ([`hash_api_key_secret`]), with the
//! first characters of the secret (`prefix`) so an operator can tell keys apart and
//! revoke one (by its id) without the secret.

use sha2::{Digest, Sha256};

use crate::domain::now_ms;

use super::error::q;
use super::{new_id, Db, DbError};

/// What a key may do. Ordered: `Reader < Operator < Admin`; a role allows everything
/// the roles below it allow.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only endpoints.
    Reader,
    /// Reader, plus scoring, jobs and other write operations on data.
    Operator,
    /// Everything, including key management and plugin control.
    Admin,
}

impl Role {
    pub const ALL: &'static [Role] = &[Role::Reader, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// True if a key with this role may call an endpoint that requires `required`.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

super::text_enum!(
    Role,
    "unknown role",
    " (expected reader, operator or admin)"
);

/// Lower-case hex SHA-256 of an API key's secret: what [`NewApiKey::key_hash`] and
/// [`Db::find_active_api_key`] take.
pub fn hash_api_key_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// An API key to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the secret (64 hex digits; stored lower-case).
    pub key_hash: String,
    /// First characters of the secret, for display (not secret enough to authenticate).
    pub prefix: String,
}

/// A stored API key (never its hash or secret).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiKeyRecord {
    /// True unless revoked.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    role: String,
    prefix: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl Row {
    fn into_record(self, op: &'static str) -> Result<ApiKeyRecord, DbError> {
        let role = self.role.parse().map_err(|reason| DbError::Corrupt {
            op,
            reason: format!("api key {}: {reason}", self.id),
        })?;
        Ok(ApiKeyRecord {
            id: self.id,
            name: self.name,
            role,
            prefix: self.prefix,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        })
    }
}

const COLUMNS: &str = "id, name, role, prefix, created_at, last_used_at, revoked_at";

fn normalize_hash(op: &'static str, hash: &str) -> Result<String, DbError> {
    let h = hash.trim().to_ascii_lowercase();
    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DbError::InvalidInput {
            op,
            reason: "key_hash must be the 64-digit hex SHA-256 of the secret".into(),
        });
    }
    Ok(h)
}

impl Db {
    /// Record an API key. [`DbError::InvalidInput`] for an empty name or prefix or a
    /// `key_hash` that is not 64 hex digits; [`DbError::Constraint`] if a key with the
    /// same hash exists.
    pub async fn insert_api_key(&self, k: &NewApiKey) -> Result<ApiKeyRecord, DbError> {
        const OP: &str = "insert_api_key";
        if k.name.trim().is_empty() || k.prefix.is_empty() {
            return Err(DbError::InvalidInput {
                op: OP,
                reason: "empty key name or prefix".into(),
            });
        }
        let hash = normalize_hash(OP, &k.key_hash)?;
        let rec = ApiKeyRecord {
            id: new_id(),
            name: k.name.trim().to_string(),
            role: k.role,
            prefix: k.prefix.clone(),
            created_at: now_ms(),
            last_used_at: None,
            revoked_at: None,
        };
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(rec.id.as_str())
            .bind(rec.name.as_str())
            .bind(rec.role.as_str())
            .bind(hash.as_str())
            .bind(rec.prefix.as_str())
            .bind(rec.created_at)
            .execute(pool)
            .await
            .map_err(q(OP))?;
        });
        Ok(rec)
    }

    /// The unrevoked key whose secret hashes to `key_hash` (hex, any case), if any.
    pub async fn find_active_api_key(
        &self,
        key_hash: &str,
    ) -> Result<Option<ApiKeyRecord>, DbError> {
        const OP: &str = "find_active_api_key";
        let Ok(hash) = normalize_hash(OP, key_hash) else {
            return Ok(None);
        };
        let sql =
            format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL");
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(hash.as_str())
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?
        });
        row.map(|r| r.into_record(OP)).transpose()
    }

    /// Every API key, revoked ones included, oldest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, DbError> {
        const OP: &str = "list_api_keys";
        let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id");
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).fetch_all(pool).await.map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_record(OP)).collect()
    }

    /// Revokes the unrevoked key with this exact id (never by prefix: a prefix can name
    /// someone else's key). `Ok(false)` if no unrevoked key has it (unknown, or revoked
    /// already); [`DbError::InvalidInput`] if the id is empty.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool, DbError> {
        const OP: &str = "revoke_api_key";
        let id = id.trim();
        if id.is_empty() {
            return Err(DbError::InvalidInput {
                op: OP,
                reason: "empty key id".into(),
            });
        }
        let n = on_pool!(self, |pool| {
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(pool)
                .await
                .map_err(q(OP))?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Set a key's `last_used_at` to now; false if the id is unknown. One write per
    /// call: callers on a hot path should throttle (e.g. once a minute per key).
    pub async fn touch_api_key(&self, id: &str) -> Result<bool, DbError> {
        const OP: &str = "touch_api_key";
        let n = on_pool!(self, |pool| {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now_ms())
                .bind(id)
                .execute(pool)
                .await
                .map_err(q(OP))?
                .rows_affected()
        });
        Ok(n > 0)
    }
}
