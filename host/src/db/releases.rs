//! Releases across a fleet (issue 21): published components stored content-addressed
//! (`plugin_artifacts`), published versions with their review (`plugin_releases_versions`),
//! the version of each plugin live on every replica (`plugin_release_state`, one row per
//! plugin, changed in one transaction that bumps its `generation`) and what each replica
//! reports it serves (`replica_heartbeats`).
//!
//! Invariants: one `name@version` names one sha256 for ever (a second publish with other
//! bytes is [`DbError::Conflict`]); only an `approved` version may be released.

use crate::domain::now_ms;

use super::error::q;
use super::{Db, DbError};

/// Review status of a published version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    /// Its capability surface changed (or review is always required): an admin decides.
    AwaitingApproval,
    /// May be released.
    Approved,
    /// Refused by an admin; never released.
    Rejected,
}

impl ReleaseStatus {
    pub const ALL: &'static [ReleaseStatus] =
        &[Self::AwaitingApproval, Self::Approved, Self::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingApproval => "awaiting-approval",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }
}

super::text_enum!(ReleaseStatus, "unknown release status", "");

/// A version to publish (its artifact stored first with [`Db::store_artifact`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewReleaseVersion {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The plugin.toml text.
    pub manifest: String,
    pub status: ReleaseStatus,
    /// JSON document of the capability surface diff.
    pub diff: Option<String>,
    /// API key id of the publisher.
    pub published_by: Option<String>,
    /// The files it carries besides manifest and component (a layer's `[schemas]`
    /// files): relative path → sha256 of bytes stored with [`Db::store_artifact`].
    pub files: std::collections::BTreeMap<String, String>,
}

/// A stored published version.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReleaseVersionRecord {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub manifest: String,
    /// `awaiting-approval`, `approved` or `rejected` (see [`Self::status`]).
    pub status: String,
    pub diff: Option<String>,
    pub published_by: Option<String>,
    pub published_at: Option<i64>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<i64>,
    pub review_note: Option<String>,
    /// Size of the component (from its artifact).
    pub size: i64,
    /// JSON {relative path: sha256} of the files it carries (see [`Self::files`]).
    pub files: Option<String>,
}

impl ReleaseVersionRecord {
    /// The files it carries besides manifest and component: relative path → sha256 of
    /// the stored bytes (empty for none); [`DbError::Corrupt`] for a column no version of
    /// this code writes.
    pub fn files(&self) -> Result<std::collections::BTreeMap<String, String>, DbError> {
        match self.files.as_deref() {
            None | Some("") => Ok(Default::default()),
            Some(text) => serde_json::from_str(text).map_err(|e| DbError::Corrupt {
                op: "release version files",
                reason: format!("{}@{}: {e}", self.name, self.version),
            }),
        }
    }

    /// The status; [`DbError::Corrupt`] for a text no version of this code writes.
    pub fn status(&self) -> Result<ReleaseStatus, DbError> {
        self.status.parse().map_err(|reason| DbError::Corrupt {
            op: "release version status",
            reason: format!("{}@{}: {reason}", self.name, self.version),
        })
    }
}

/// What happened to [`Db::insert_release_version`].
#[derive(Debug, Clone, PartialEq)]
pub enum InsertedVersion {
    /// A new row.
    Inserted,
    /// The same name@version with the same bytes was published before: that row.
    Existing(Box<ReleaseVersionRecord>),
}

/// The version of a plugin live on every replica.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReleaseState {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub pinned: bool,
    pub updated_at: i64,
    pub updated_by: Option<String>,
    pub generation: i64,
}

/// A replica's report of itself.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReplicaHeartbeat {
    pub replica_id: String,
    pub host: Option<String>,
    pub started_at: Option<i64>,
    pub seen_at: i64,
    /// JSON {name: {version, sha256}}.
    pub serving: String,
}

const VERSION_COLUMNS: &str = "v.name, v.version, v.sha256, v.manifest, v.status, v.diff, \
    v.published_by, v.published_at, v.reviewed_by, v.reviewed_at, v.review_note, a.size, \
    v.files";

impl Db {
    /// Stores a component by its sha256 (computed here); storing the same bytes again does
    /// nothing. Returns the sha256.
    pub async fn store_artifact(&self, bytes: &[u8]) -> Result<String, DbError> {
        const OP: &str = "store_artifact";
        let sha = crate::runtime::prepare::sha256_hex(bytes);
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO plugin_artifacts (sha256, bytes, size, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(sha.as_str())
            .bind(bytes)
            .bind(bytes.len() as i64)
            .bind(now_ms())
            .execute(pool)
            .await
            .map_err(q(OP))?;
        });
        Ok(sha)
    }

    /// The bytes stored under `sha256`.
    pub async fn get_artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>, DbError> {
        const OP: &str = "get_artifact";
        let row: Option<(Vec<u8>,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT bytes FROM plugin_artifacts WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?
        });
        Ok(row.map(|(b,)| b))
    }

    /// Records a published version. The same name@version again with the same sha256 and
    /// files is [`InsertedVersion::Existing`] (nothing changes); with another sha256 or
    /// other files it is [`DbError::Conflict`]: a version number names one set of bytes.
    pub async fn insert_release_version(
        &self,
        v: &NewReleaseVersion,
    ) -> Result<InsertedVersion, DbError> {
        const OP: &str = "insert_release_version";
        if v.name.trim().is_empty() || v.version.trim().is_empty() {
            return Err(DbError::InvalidInput {
                op: OP,
                reason: "empty plugin name or version".into(),
            });
        }
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM plugin_releases_versions v \
             JOIN plugin_artifacts a ON a.sha256 = v.sha256 WHERE v.name = $1 AND v.version = $2"
        );
        let files = (!v.files.is_empty())
            .then(|| serde_json::to_string(&v.files))
            .transpose()
            .map_err(|e| DbError::InvalidInput {
                op: OP,
                reason: e.to_string(),
            })?;
        let existing: Option<ReleaseVersionRecord> = on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let existing: Option<ReleaseVersionRecord> = sqlx::query_as(&sql)
                .bind(v.name.as_str())
                .bind(v.version.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(q(OP))?;
            if existing.is_none() {
                sqlx::query(
                    "INSERT INTO plugin_releases_versions (name, version, sha256, manifest, \
                     status, diff, published_by, published_at, files) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(v.name.as_str())
                .bind(v.version.as_str())
                .bind(v.sha256.as_str())
                .bind(v.manifest.as_str())
                .bind(v.status.as_str())
                .bind(v.diff.as_deref())
                .bind(v.published_by.as_deref())
                .bind(now_ms())
                .bind(files.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
                tx.commit().await.map_err(q(OP))?;
            }
            existing
        });
        match existing {
            None => Ok(InsertedVersion::Inserted),
            Some(e) if e.sha256 == v.sha256 && e.files()? == v.files => {
                Ok(InsertedVersion::Existing(Box::new(e)))
            }
            Some(e) if e.sha256 == v.sha256 => Err(DbError::Conflict {
                op: OP,
                reason: format!(
                    "{}@{} was published with other files ({}); publish these under a new \
                     version",
                    v.name,
                    v.version,
                    e.files.as_deref().unwrap_or("none")
                ),
            }),
            Some(e) => Err(DbError::Conflict {
                op: OP,
                reason: format!(
                    "{}@{} was published with sha256 {}; these bytes have sha256 {}: \
                     publish them under a new version",
                    v.name, v.version, e.sha256, v.sha256
                ),
            }),
        }
    }

    /// One published version.
    pub async fn get_release_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<ReleaseVersionRecord>, DbError> {
        const OP: &str = "get_release_version";
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM plugin_releases_versions v \
             JOIN plugin_artifacts a ON a.sha256 = v.sha256 WHERE v.name = $1 AND v.version = $2"
        );
        on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(name)
                .bind(version)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))
        })
    }

    /// A plugin's published versions, newest publish first.
    pub async fn list_release_versions(
        &self,
        name: &str,
    ) -> Result<Vec<ReleaseVersionRecord>, DbError> {
        const OP: &str = "list_release_versions";
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM plugin_releases_versions v \
             JOIN plugin_artifacts a ON a.sha256 = v.sha256 WHERE v.name = $1 \
             ORDER BY v.published_at DESC, v.version DESC"
        );
        on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(name)
                .fetch_all(pool)
                .await
                .map_err(q(OP))
        })
    }

    /// An admin's decision on a version: `approved` or `rejected`, by key id, with a note.
    /// [`DbError::NotFound`] for an unknown version; [`DbError::Conflict`] to reject a
    /// version that is released now, or to approve a rejected one (publish it again under
    /// a new version instead).
    pub async fn set_release_review(
        &self,
        name: &str,
        version: &str,
        status: ReleaseStatus,
        reviewed_by: Option<&str>,
        note: Option<&str>,
    ) -> Result<ReleaseVersionRecord, DbError> {
        const OP: &str = "set_release_review";
        if status == ReleaseStatus::AwaitingApproval {
            return Err(DbError::InvalidInput {
                op: OP,
                reason: "a review approves or rejects".into(),
            });
        }
        let outcome: Result<(), DbError> = on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let cur: Option<(String,)> = sqlx::query_as(
                "SELECT status FROM plugin_releases_versions WHERE name = $1 AND version = $2",
            )
            .bind(name)
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(q(OP))?;
            let released: Option<(String,)> =
                sqlx::query_as("SELECT version FROM plugin_release_state WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(q(OP))?;
            match cur {
                None => Err(DbError::NotFound {
                    op: OP,
                    what: format!("published version {name}@{version}"),
                }),
                Some((s,)) if s == "rejected" && status == ReleaseStatus::Approved => {
                    Err(DbError::Conflict {
                        op: OP,
                        reason: format!(
                            "{name}@{version} was rejected; publish the plugin again under a new version"
                        ),
                    })
                }
                Some(_)
                    if status == ReleaseStatus::Rejected
                        && released.as_ref().is_some_and(|(v,)| v == version) =>
                {
                    Err(DbError::Conflict {
                        op: OP,
                        reason: format!(
                            "{name}@{version} is the released version; release another version first"
                        ),
                    })
                }
                Some(_) => {
                    sqlx::query(
                        "UPDATE plugin_releases_versions SET status = $1, reviewed_by = $2, \
                         reviewed_at = $3, review_note = $4 WHERE name = $5 AND version = $6",
                    )
                    .bind(status.as_str())
                    .bind(reviewed_by)
                    .bind(now_ms())
                    .bind(note)
                    .bind(name)
                    .bind(version)
                    .execute(&mut *tx)
                    .await
                    .map_err(q(OP))?;
                    tx.commit().await.map_err(q(OP))?;
                    Ok(())
                }
            }
        });
        outcome?;
        self.get_release_version(name, version)
            .await?
            .ok_or_else(|| DbError::NotFound {
                op: OP,
                what: format!("published version {name}@{version}"),
            })
    }

    /// The released version of one plugin.
    pub async fn get_release_state(&self, name: &str) -> Result<Option<ReleaseState>, DbError> {
        const OP: &str = "get_release_state";
        on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT name, version, sha256, pinned, updated_at, updated_by, generation \
                 FROM plugin_release_state WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await
            .map_err(q(OP))
        })
    }

    /// The released version of every plugin, by name.
    pub async fn list_release_state(&self) -> Result<Vec<ReleaseState>, DbError> {
        const OP: &str = "list_release_state";
        on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT name, version, sha256, pinned, updated_at, updated_by, generation \
                 FROM plugin_release_state ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .map_err(q(OP))
        })
    }

    /// Releases `name@version` everywhere (promote or roll back), in one transaction that
    /// bumps the plugin's generation. Only an approved version may be released:
    /// [`DbError::NotFound`] for an unknown version, [`DbError::Conflict`] for one that
    /// is not approved. Returns the new state.
    pub async fn set_release_state(
        &self,
        name: &str,
        version: &str,
        pinned: bool,
        updated_by: Option<&str>,
    ) -> Result<ReleaseState, DbError> {
        const OP: &str = "set_release_state";
        let now = now_ms();
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let v: Option<(String, String)> = sqlx::query_as(
                "SELECT sha256, status FROM plugin_releases_versions WHERE name = $1 AND version = $2",
            )
            .bind(name)
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(q(OP))?;
            let Some((sha256, status)) = v else {
                return Err(DbError::NotFound {
                    op: OP,
                    what: format!("published version {name}@{version}"),
                });
            };
            if status != ReleaseStatus::Approved.as_str() {
                return Err(DbError::Conflict {
                    op: OP,
                    reason: format!(
                        "{name}@{version} is {status}; only an approved version may be released"
                    ),
                });
            }
            let state: ReleaseState = sqlx::query_as(
                "INSERT INTO plugin_release_state (name, version, sha256, pinned, updated_at, \
                 updated_by, generation) VALUES ($1, $2, $3, $4, $5, $6, 1) \
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
                 sha256 = excluded.sha256, pinned = excluded.pinned, \
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by, \
                 generation = plugin_release_state.generation + 1 \
                 RETURNING name, version, sha256, pinned, updated_at, updated_by, generation",
            )
            .bind(name)
            .bind(version)
            .bind(sha256.as_str())
            .bind(pinned)
            .bind(now)
            .bind(updated_by)
            .fetch_one(&mut *tx)
            .await
            .map_err(q(OP))?;
            tx.commit().await.map_err(q(OP))?;
            Ok(state)
        })
    }

    /// Records (or refreshes) a replica's heartbeat.
    pub async fn upsert_heartbeat(&self, hb: &ReplicaHeartbeat) -> Result<(), DbError> {
        const OP: &str = "upsert_heartbeat";
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO replica_heartbeats (replica_id, host, started_at, seen_at, serving) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (replica_id) DO UPDATE SET \
                 host = excluded.host, started_at = excluded.started_at, \
                 seen_at = excluded.seen_at, serving = excluded.serving",
            )
            .bind(hb.replica_id.as_str())
            .bind(hb.host.as_deref())
            .bind(hb.started_at)
            .bind(hb.seen_at)
            .bind(hb.serving.as_str())
            .execute(pool)
            .await
            .map_err(q(OP))?;
        });
        Ok(())
    }

    /// Every replica's last heartbeat, by replica id.
    pub async fn list_heartbeats(&self) -> Result<Vec<ReplicaHeartbeat>, DbError> {
        const OP: &str = "list_heartbeats";
        on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT replica_id, host, started_at, seen_at, serving FROM replica_heartbeats \
                 ORDER BY replica_id",
            )
            .fetch_all(pool)
            .await
            .map_err(q(OP))
        })
    }
}
