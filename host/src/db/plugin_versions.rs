//! Plugin versions: every build of a plugin the host has seen, and where it is in its
//! lifecycle (loading → live → retired / rolled back, or rejected).

use crate::domain::now_ms;

use super::error::q;
use super::{clamp_limit, new_id, Db, DbError};

/// Lifecycle status of a plugin version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginVersionStatus {
    /// Compiling, validating, smoke-testing.
    Loading,
    /// Serving requests.
    Live,
    /// Running beside the live version; results recorded, not returned.
    Shadow,
    /// Failed to compile, validate or pass its smoke test (see `error`).
    Rejected,
    /// Replaced by a newer version.
    Retired,
    /// Replaced by an older version on an operator's roll-back.
    RolledBack,
    /// Passed every check while its plugin was pinned to another version; kept for
    /// `pin` / `rollback --to` / `unpin`.
    Available,
    /// Switched off by an operator.
    Disabled,
}

impl PluginVersionStatus {
    pub const ALL: &'static [PluginVersionStatus] = &[
        Self::Loading,
        Self::Live,
        Self::Shadow,
        Self::Rejected,
        Self::Retired,
        Self::RolledBack,
        Self::Available,
        Self::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loading => "loading",
            Self::Live => "live",
            Self::Shadow => "shadow",
            Self::Rejected => "rejected",
            Self::Retired => "retired",
            Self::RolledBack => "rolled_back",
            Self::Available => "available",
            Self::Disabled => "disabled",
        }
    }
}

super::text_enum!(PluginVersionStatus, "unknown plugin version status", "");

/// A plugin version to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPluginVersion {
    pub name: String,
    pub version: String,
    /// Hex SHA-256 of the component bytes.
    pub sha256: String,
    /// `scorer`, `layer`, `agent`, …
    pub kind: String,
    pub status: PluginVersionStatus,
    pub error: Option<String>,
    pub source_path: Option<String>,
}

/// A stored plugin version.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginVersionRecord {
    pub id: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub kind: String,
    pub status: PluginVersionStatus,
    pub error: Option<String>,
    pub source_path: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    version: String,
    sha256: String,
    kind: String,
    status: String,
    error: Option<String>,
    source_path: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl Row {
    fn into_record(self, op: &'static str) -> Result<PluginVersionRecord, DbError> {
        let status = self.status.parse().map_err(|reason| DbError::Corrupt {
            op,
            reason: format!("plugin version {}: {reason}", self.id),
        })?;
        Ok(PluginVersionRecord {
            id: self.id,
            name: self.name,
            version: self.version,
            sha256: self.sha256,
            kind: self.kind,
            status,
            error: self.error,
            source_path: self.source_path,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str =
    "id, name, version, sha256, kind, status, error, source_path, created_at, updated_at";

impl Db {
    /// Record a plugin version; returns its id (uuid v7).
    pub async fn insert_plugin_version(&self, v: &NewPluginVersion) -> Result<String, DbError> {
        const OP: &str = "insert_plugin_version";
        if v.name.trim().is_empty() {
            return Err(DbError::InvalidInput {
                op: OP,
                reason: "empty plugin name".into(),
            });
        }
        let id = new_id();
        let now = now_ms();
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO plugin_versions (id, name, version, sha256, kind, status, error, \
                 source_path, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(id.as_str())
            .bind(v.name.as_str())
            .bind(v.version.as_str())
            .bind(v.sha256.as_str())
            .bind(v.kind.as_str())
            .bind(v.status.as_str())
            .bind(v.error.as_deref())
            .bind(v.source_path.as_deref())
            .bind(now)
            .execute(pool)
            .await
            .map_err(q(OP))?;
        });
        Ok(id)
    }

    /// Move a plugin version to `status`, replacing its `error` (None clears it).
    /// [`DbError::NotFound`] if the id is unknown.
    pub async fn update_plugin_version_status(
        &self,
        id: &str,
        status: PluginVersionStatus,
        error: Option<&str>,
    ) -> Result<(), DbError> {
        const OP: &str = "update_plugin_version_status";
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE plugin_versions SET status = $1, error = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(status.as_str())
            .bind(error)
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map_err(q(OP))?
            .rows_affected()
        });
        if n == 0 {
            return Err(DbError::NotFound {
                op: OP,
                what: format!("plugin version {id}"),
            });
        }
        Ok(())
    }

    /// One plugin version by id.
    pub async fn get_plugin_version(
        &self,
        id: &str,
    ) -> Result<Option<PluginVersionRecord>, DbError> {
        const OP: &str = "get_plugin_version";
        let sql = format!("SELECT {COLUMNS} FROM plugin_versions WHERE id = $1");
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?
        });
        row.map(|r| r.into_record(OP)).transpose()
    }

    /// The component hashes `name@version` passed its checks with (rows that went live or
    /// available), newest first: a version number names one set of bytes.
    pub async fn loaded_plugin_version_shas(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Vec<String>, DbError> {
        const OP: &str = "loaded_plugin_version_shas";
        let rows: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT sha256 FROM plugin_versions WHERE name = $1 AND version = $2 \
                 AND status IN ('live', 'retired', 'rolled_back', 'available') \
                 ORDER BY created_at DESC",
            )
            .bind(name)
            .bind(version)
            .fetch_all(pool)
            .await
            .map_err(q(OP))?
        });
        let mut shas: Vec<String> = Vec::with_capacity(rows.len());
        for (s,) in rows {
            if !shas.contains(&s) {
                shas.push(s);
            }
        }
        Ok(shas)
    }

    /// Plugin versions, newest first; of one plugin if `name` is given (0 = 100).
    pub async fn list_plugin_versions(
        &self,
        name: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PluginVersionRecord>, DbError> {
        const OP: &str = "list_plugin_versions";
        let sql = format!(
            "SELECT {COLUMNS} FROM plugin_versions WHERE ($1 IS NULL OR name = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(name)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_record(OP)).collect()
    }
}
