//! A pipeline run's record: its status, the stored row and how it is read (through sqlx
//! or a direct SQLite connection).

use crate::db::DbError;

/// Where a pipeline run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Created, waiting for its worker.
    Queued,
    /// Being executed.
    Running,
    /// Every layer run succeeded and every delivery was acknowledged.
    Succeeded,
    /// The run could not be carried out.
    Failed,
    /// The run ended with failed layer runs or unacknowledged deliveries.
    Incomplete,
}

impl RunStatus {
    pub const ALL: &'static [RunStatus] = &[
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Incomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Incomplete => "incomplete",
        }
    }

    /// True for `succeeded`, `failed` and `incomplete`.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Incomplete
        )
    }
}

crate::db::text_enum!(RunStatus, "unknown run status", "");

/// A stored pipeline run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunRecord {
    pub id: String,
    pub pipeline: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub trigger_event_id: String,
    /// Coherence of the finished run, 0–1.
    pub phi_sync: Option<f64>,
    pub error: Option<String>,
    pub request_id: Option<String>,
    /// The job executing the run, if it was created with one.
    pub job_id: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

pub(super) const RUN_COLUMNS: &str =
    "id, pipeline, status, dry_run, trigger_event_id, phi_sync, error, \
    request_id, job_id, created_at, started_at, finished_at";

#[derive(sqlx::FromRow)]
pub(super) struct RunRow {
    id: String,
    pipeline: String,
    status: String,
    dry_run: bool,
    trigger_event_id: String,
    phi_sync: Option<f64>,
    error: Option<String>,
    request_id: Option<String>,
    job_id: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

impl RunRow {
    /// `RUN_COLUMNS` (from column 0) of a row read through a direct SQLite connection.
    pub(super) fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            id: r.get(0)?,
            pipeline: r.get(1)?,
            status: r.get(2)?,
            dry_run: r.get(3)?,
            trigger_event_id: r.get(4)?,
            phi_sync: r.get(5)?,
            error: r.get(6)?,
            request_id: r.get(7)?,
            job_id: r.get(8)?,
            created_at: r.get(9)?,
            started_at: r.get(10)?,
            finished_at: r.get(11)?,
        })
    }

    pub(super) fn into_record(self, op: &'static str) -> Result<RunRecord, DbError> {
        let status = self.status.parse().map_err(|reason| DbError::Corrupt {
            op,
            reason: format!("run {}: {reason}", self.id),
        })?;
        Ok(RunRecord {
            id: self.id,
            pipeline: self.pipeline,
            status,
            dry_run: self.dry_run,
            trigger_event_id: self.trigger_event_id,
            phi_sync: self.phi_sync,
            error: self.error,
            request_id: self.request_id,
            job_id: self.job_id,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}
