//! The durable job queue of the HTTP service: work accepted now and done by a worker
//! later (possibly on another replica), surviving restarts.
//!
//! Life of a job: `queued` → (claimed) `running` → `succeeded`, or back to `queued` for
//! a retry ([`Db::fail_job`] with attempts left, [`Db::release_job`] on shutdown), or
//! `dead` once its last attempt failed.
//!
//! * **Claiming** ([`Db::claim_job`]) is one atomic statement: it takes the oldest due
//!   job (`queued` with `run_at <= now`), or a `running` job whose lease expired (its
//!   worker died) and which has attempts left, and leases it to the caller until
//!   `now + lease_ms`. PostgreSQL picks the row with `FOR UPDATE SKIP LOCKED`, so
//!   concurrent claimers never wait on each other nor take the same row; SQLite runs the
//!   same `UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING …` under its single writer
//!   lock (concurrent claimers queue on `busy_timeout`).
//! * **Fencing**: completing, failing, releasing and extending act only while the row is
//!   `running` and leased to the caller (`lease_owner = owner`), so a worker whose lease
//!   expired and whose job was reclaimed by another cannot overwrite the new attempt;
//!   those calls return `false` / `None` instead.
//! * A job whose lease expired on its **last** attempt is not handed out again (a job that
//!   kills its worker would otherwise loop forever): [`Db::reap_expired_jobs`] marks it
//!   `dead`. [`Db::claim_job`] runs the reaper whenever it finds nothing to claim.
//! * **No execution left `running`**: releasing, failing, completing and reaping a job
//!   close, in the same transaction, its agent executions still `running` as
//!   `abandoned` with the reason (see [`super::executions`]).
//! * Times are the host's clock ([`now_ms`]); with several replicas, keep leases far
//!   longer than the clock skew between hosts.

use crate::domain::now_ms;

use super::error::q;
use super::executions::close_running_of_job;
use super::{clamp_limit, new_id, Backend, Db, DbError};

/// The kinds of job this host enqueues and its workers claim.
pub mod kinds {
    /// Scores (or qualifies with an agent) one stored lead and stores the score;
    /// payload `{lead_id, strategy, requested_by}`.
    pub const QUALIFY: &str = "qualify";
    /// Runs one pipeline over the events waiting for it; payload `{pipeline}`.
    pub const PIPELINE_RUN: &str = "pipeline_run";
    /// Every kind a `strata serve` worker claims.
    pub const ALL: &[&str] = &[QUALIFY, PIPELINE_RUN];
}

/// Longest `last_error` kept, in bytes (longer messages are cut at a char boundary).
const MAX_ERROR_BYTES: usize = 8 * 1024;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for `run_at`, then for a worker.
    Queued,
    /// Leased to a worker (`lease_owner`) until `lease_expires_at`.
    Running,
    /// Done; `result` holds the outcome.
    Succeeded,
    /// Failed on its last attempt (or its worker died on it); see `last_error`.
    Dead,
}

impl JobStatus {
    pub const ALL: &'static [JobStatus] = &[
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Dead => "dead",
        }
    }

    /// True for `succeeded` and `dead`: nothing more will happen to the job.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Dead)
    }
}

super::text_enum!(JobStatus, "unknown job status", "");

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What the job does (workers claim by kind), e.g. `score_batch`.
    pub kind: String,
    pub payload: serde_json::Value,
    /// Attempts before the job goes `dead` (at least 1).
    pub max_attempts: i64,
    pub request_id: Option<String>,
    /// Not before this time (ms since the Unix epoch); `None` = now.
    pub run_at: Option<i64>,
}

impl NewJob {
    /// A job of `kind` due now, with 3 attempts and no request id.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        NewJob {
            kind: kind.into(),
            payload,
            max_attempts: 3,
            request_id: None,
            run_at: None,
        }
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub status: JobStatus,
    /// Attempts started so far (a claim counts one; a release takes it back).
    pub attempts: i64,
    pub max_attempts: i64,
    /// Not before this time (ms since the Unix epoch).
    pub run_at: i64,
    /// The worker holding the lease (kept after completion: who finished the job).
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
    pub request_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// Filter for [`Db::list_jobs`]; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    /// 0 = default (100); at most 10 000.
    pub limit: i64,
    pub offset: i64,
}

/// Number of jobs per status ([`Db::queue_depth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct QueueDepth {
    pub queued: i64,
    pub running: i64,
    pub succeeded: i64,
    pub dead: i64,
}

impl QueueDepth {
    /// Count of one status.
    pub fn get(&self, status: JobStatus) -> i64 {
        match status {
            JobStatus::Queued => self.queued,
            JobStatus::Running => self.running,
            JobStatus::Succeeded => self.succeeded,
            JobStatus::Dead => self.dead,
        }
    }

    /// All jobs.
    pub fn total(&self) -> i64 {
        self.queued + self.running + self.succeeded + self.dead
    }
}

const COLUMNS: &str = "id, kind, payload, status, attempts, max_attempts, run_at, lease_owner, \
    lease_expires_at, last_error, result, request_id, created_at, updated_at, finished_at";

/// Rows a claim may take, with `$1` = now: due queued jobs, and running jobs whose lease
/// expired and that have attempts left.
const CLAIMABLE: &str = "((status = 'queued' AND run_at <= $1) OR (status = 'running' \
    AND lease_expires_at < $1 AND attempts < max_attempts))";

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    kind: String,
    payload: String,
    status: String,
    attempts: i64,
    max_attempts: i64,
    run_at: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    last_error: Option<String>,
    result: Option<String>,
    request_id: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl Row {
    fn into_record(self, op: &'static str) -> Result<JobRecord, DbError> {
        let corrupt = |reason: String| DbError::Corrupt {
            op,
            reason: format!("job {}: {reason}", self.id),
        };
        let status = self.status.parse().map_err(corrupt)?;
        let payload =
            serde_json::from_str(&self.payload).map_err(|e| corrupt(format!("payload: {e}")))?;
        let result = match &self.result {
            Some(r) => Some(serde_json::from_str(r).map_err(|e| corrupt(format!("result: {e}")))?),
            None => None,
        };
        Ok(JobRecord {
            id: self.id,
            kind: self.kind,
            payload,
            status,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            run_at: self.run_at,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            last_error: self.last_error,
            result,
            request_id: self.request_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
        })
    }
}

/// The row [`Db::enqueue_job`] writes for `job` at `now` (fresh id, `queued`), after
/// checking it. Shared with the callers that enqueue a job inside their own transaction.
pub(crate) fn new_job_record(
    op: &'static str,
    job: &NewJob,
    now: i64,
) -> Result<JobRecord, DbError> {
    non_empty(op, "job kind", &job.kind)?;
    positive(op, "max_attempts", job.max_attempts)?;
    Ok(JobRecord {
        id: new_id(),
        kind: job.kind.clone(),
        payload: job.payload.clone(),
        status: JobStatus::Queued,
        attempts: 0,
        max_attempts: job.max_attempts,
        run_at: job.run_at.unwrap_or(now),
        lease_owner: None,
        lease_expires_at: None,
        last_error: None,
        result: None,
        request_id: job.request_id.clone(),
        created_at: now,
        updated_at: now,
        finished_at: None,
    })
}

/// Insert `$rec` (a `&JobRecord` from [`new_job_record`]) through executor `$exec` (a
/// pool or `&mut *tx`); `?` on failure, mapped with `q($op)`.
macro_rules! insert_job_row {
    ($exec:expr, $rec:expr, $op:expr) => {{
        let rec: &$crate::db::JobRecord = $rec;
        let payload = rec.payload.to_string();
        sqlx::query($crate::db::jobs::INSERT_JOB)
            .bind(rec.id.as_str())
            .bind(rec.kind.as_str())
            .bind(payload.as_str())
            .bind(rec.status.as_str())
            .bind(rec.max_attempts)
            .bind(rec.run_at)
            .bind(rec.request_id.as_deref())
            .bind(rec.created_at)
            .execute($exec)
            .await
            .map_err($crate::db::error::q($op))?;
    }};
}
pub(crate) use insert_job_row;

/// Inserts a new job (binds: id, kind, payload, status, max_attempts, run_at, request_id,
/// created_at).
pub(super) const INSERT_JOB: &str = "INSERT INTO jobs (id, kind, payload, status, attempts, \
     max_attempts, run_at, request_id, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $8)";

/// [`insert_job_row`] inside the transaction on direct SQLite connection `tx`.
pub(super) fn insert_job_sqlite(
    tx: &rusqlite::Connection,
    rec: &JobRecord,
    op: &'static str,
) -> Result<(), DbError> {
    tx.prepare_cached(INSERT_JOB)
        .and_then(|mut st| {
            st.execute(rusqlite::params![
                rec.id,
                rec.kind,
                rec.payload.to_string(),
                rec.status.as_str(),
                rec.max_attempts,
                rec.run_at,
                rec.request_id,
                rec.created_at,
            ])
        })
        .map_err(super::direct::sqlite(op))?;
    Ok(())
}

fn positive(op: &'static str, what: &str, v: i64) -> Result<(), DbError> {
    if v <= 0 {
        return Err(DbError::InvalidInput {
            op,
            reason: format!("{what} must be positive, got {v}"),
        });
    }
    Ok(())
}

fn non_empty(op: &'static str, what: &str, v: &str) -> Result<(), DbError> {
    if v.trim().is_empty() {
        return Err(DbError::InvalidInput {
            op,
            reason: format!("empty {what}"),
        });
    }
    Ok(())
}

pub(super) fn truncate_error(e: &str) -> &str {
    if e.len() <= MAX_ERROR_BYTES {
        return e;
    }
    let mut end = MAX_ERROR_BYTES;
    while !e.is_char_boundary(end) {
        end -= 1;
    }
    &e[..end]
}

impl Db {
    /// Add a job (status `queued`, 0 attempts). [`DbError::InvalidInput`] for an empty
    /// kind or `max_attempts < 1`.
    pub async fn enqueue_job(&self, job: &NewJob) -> Result<JobRecord, DbError> {
        const OP: &str = "enqueue_job";
        let rec = new_job_record(OP, job, now_ms())?;
        on_pool!(self, |pool| insert_job_row!(pool, &rec, OP));
        Ok(rec)
    }

    /// Lease one claimable job of one of `kinds` (empty = any kind) to `owner` for
    /// `lease_ms`: the oldest by `run_at` among due `queued` jobs and `running` jobs whose
    /// lease expired with attempts left. Sets it `running`, `attempts += 1`. `None` if
    /// nothing is claimable (then expired last-attempt jobs are reaped, see
    /// [`Db::reap_expired_jobs`]). While a lease is valid no other claimer gets the job.
    pub async fn claim_job(
        &self,
        owner: &str,
        lease_ms: i64,
        kinds: &[&str],
    ) -> Result<Option<JobRecord>, DbError> {
        const OP: &str = "claim_job";
        non_empty(OP, "lease owner", owner)?;
        positive(OP, "lease_ms", lease_ms)?;
        let kind_filter = if kinds.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 4)).collect();
            format!(" AND kind IN ({})", list.join(", "))
        };
        let lock = match self.backend() {
            // Skip rows other claimers are taking instead of waiting for them.
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            // One writer at a time: the UPDATE holds the write lock from SELECT to RETURNING.
            Backend::Sqlite => "",
        };
        // The outer WHERE repeats the claimable condition so that a row changed by a
        // concurrent claimer after the sub-select saw it is re-checked, not taken twice.
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $2, \
             lease_expires_at = $3, updated_at = $1 \
             WHERE id = (SELECT id FROM jobs WHERE {CLAIMABLE}{kind_filter} \
             ORDER BY run_at, id LIMIT 1{lock}) AND {CLAIMABLE} RETURNING {COLUMNS}"
        );
        let now = now_ms();
        let row: Option<Row> = on_pool!(self, |pool| {
            let mut query = sqlx::query_as(&sql)
                .bind(now)
                .bind(owner)
                .bind(now.saturating_add(lease_ms));
            for kind in kinds {
                query = query.bind(*kind);
            }
            query.fetch_optional(pool).await.map_err(q(OP))?
        });
        match row {
            Some(r) => r.into_record(OP).map(Some),
            None => {
                self.reap_expired_jobs().await?;
                Ok(None)
            }
        }
    }

    /// Mark `dead` every `running` job whose lease expired on its last attempt (its
    /// worker died on it; it is never handed out again). Returns how many.
    pub async fn reap_expired_jobs(&self) -> Result<u64, DbError> {
        const OP: &str = "reap_expired_jobs";
        let now = now_ms();
        let reaped: Vec<String> = on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let ids: Vec<String> = sqlx::query_scalar(
                "UPDATE jobs SET status = 'dead', lease_expires_at = NULL, updated_at = $1, \
                 finished_at = $1, last_error = 'lease of worker ' || COALESCE(lease_owner, '?') \
                 || ' expired on the last attempt' || COALESCE(' (previous error: ' || last_error || ')', '') \
                 WHERE status = 'running' AND lease_expires_at < $1 AND attempts >= max_attempts \
                 RETURNING id",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(q(OP))?;
            for id in &ids {
                close_running_of_job!(
                    &mut *tx,
                    id.as_str(),
                    &format!("abandoned: job {id} is dead (its worker's lease expired on the last attempt)"),
                    now,
                    OP
                );
            }
            tx.commit().await.map_err(q(OP))?;
            ids
        });
        let n = reaped.len() as u64;
        if n > 0 {
            tracing::warn!(jobs = n, "jobs dead: lease expired on the last attempt");
        }
        Ok(n)
    }

    /// Mark a job `succeeded` with `result`. False unless it is `running` and leased to
    /// `owner` (e.g. the lease expired and another worker reclaimed it).
    pub async fn complete_job(
        &self,
        id: &str,
        owner: &str,
        result: &serde_json::Value,
    ) -> Result<bool, DbError> {
        const OP: &str = "complete_job";
        let result = result.to_string();
        let now = now_ms();
        let n = on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let n = sqlx::query(
                "UPDATE jobs SET status = 'succeeded', result = $1, lease_expires_at = NULL, \
                 updated_at = $2, finished_at = $2 \
                 WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
            )
            .bind(result.as_str())
            .bind(now)
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?
            .rows_affected();
            if n > 0 {
                close_running_of_job!(
                    &mut *tx,
                    id,
                    &format!("abandoned: job {id} succeeded without this run finishing"),
                    now,
                    OP
                );
            }
            tx.commit().await.map_err(q(OP))?;
            n
        });
        Ok(n > 0)
    }

    /// Record a failed attempt: with attempts left the job goes back to `queued`, due
    /// `retry_delay_ms` from now, lease cleared; otherwise it goes `dead`. Either way
    /// `last_error` is `error` (cut to 8 KiB). Returns the updated job, or `None` unless
    /// the job is `running` and leased to `owner`.
    pub async fn fail_job(
        &self,
        id: &str,
        owner: &str,
        error: &str,
        retry_delay_ms: i64,
    ) -> Result<Option<JobRecord>, DbError> {
        const OP: &str = "fail_job";
        let now = now_ms();
        let retry_at = now.saturating_add(retry_delay_ms.max(0));
        let sql = format!(
            "UPDATE jobs SET \
             status = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'dead' END, \
             run_at = CASE WHEN attempts < max_attempts THEN $1 ELSE run_at END, \
             lease_owner = CASE WHEN attempts < max_attempts THEN NULL ELSE lease_owner END, \
             lease_expires_at = NULL, last_error = $2, updated_at = $3, \
             finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE $3 END \
             WHERE id = $4 AND lease_owner = $5 AND status = 'running' RETURNING {COLUMNS}"
        );
        let row: Option<Row> = on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let row: Option<Row> = sqlx::query_as(&sql)
                .bind(retry_at)
                .bind(truncate_error(error))
                .bind(now)
                .bind(id)
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await
                .map_err(q(OP))?;
            if let Some(r) = &row {
                let why = format!(
                    "abandoned: this attempt of job {id} failed ({}): {}",
                    if r.status == "dead" {
                        "job dead"
                    } else {
                        "will retry"
                    },
                    truncate_error(error)
                );
                close_running_of_job!(&mut *tx, id, &why, now, OP);
            }
            tx.commit().await.map_err(q(OP))?;
            row
        });
        row.map(|r| r.into_record(OP)).transpose()
    }

    /// Hand a job back unfinished (graceful shutdown): `queued` again, same `run_at`,
    /// lease cleared, and the attempt not counted (`attempts - 1`). False unless it is
    /// `running` and leased to `owner`.
    pub async fn release_job(&self, id: &str, owner: &str) -> Result<bool, DbError> {
        const OP: &str = "release_job";
        let now = now_ms();
        let n = on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let n = sqlx::query(
                "UPDATE jobs SET status = 'queued', \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
                 WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
            )
            .bind(now)
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?
            .rows_affected();
            if n > 0 {
                close_running_of_job!(
                    &mut *tx,
                    id,
                    &format!("abandoned: job {id} was handed back to the queue on shutdown; it runs again"),
                    now,
                    OP
                );
            }
            tx.commit().await.map_err(q(OP))?;
            n
        });
        Ok(n > 0)
    }

    /// Extend `owner`'s lease to `lease_ms` from now (a heartbeat for long jobs). False
    /// unless the job is `running` and leased to `owner`.
    pub async fn extend_lease(
        &self,
        id: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, DbError> {
        const OP: &str = "extend_lease";
        positive(OP, "lease_ms", lease_ms)?;
        let now = now_ms();
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE jobs SET lease_expires_at = $1, updated_at = $2 \
                 WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
            )
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await
            .map_err(q(OP))?
            .rows_affected()
        });
        Ok(n > 0)
    }

    /// One job by id.
    pub async fn get_job(&self, id: &str) -> Result<Option<JobRecord>, DbError> {
        const OP: &str = "get_job";
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?
        });
        row.map(|r| r.into_record(OP)).transpose()
    }

    /// Jobs matching `filter`, newest first.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, DbError> {
        const OP: &str = "list_jobs";
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR kind = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(filter.status.map(JobStatus::as_str))
                .bind(filter.kind.as_deref())
                .bind(clamp_limit(filter.limit))
                .bind(filter.offset.max(0))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_record(OP)).collect()
    }

    /// How many jobs are in each status.
    pub async fn queue_depth(&self) -> Result<QueueDepth, DbError> {
        const OP: &str = "queue_depth";
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status")
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        let mut depth = QueueDepth::default();
        for (status, n) in rows {
            let status: JobStatus = status
                .parse()
                .map_err(|reason| DbError::Corrupt { op: OP, reason })?;
            match status {
                JobStatus::Queued => depth.queued = n,
                JobStatus::Running => depth.running = n,
                JobStatus::Succeeded => depth.succeeded = n,
                JobStatus::Dead => depth.dead = n,
            }
        }
        Ok(depth)
    }
}
