//! Agent executions: one row per agent run (started, then finished).
//!
//! A run for a job carries the job's id: at most one execution of a job is `running`
//! (a unique index); starting one closes the job's earlier `running` row as `abandoned`
//! (its attempt died: kill -9, lost lease), and the job queue closes them too when the
//! job is released, fails, goes dead or succeeds ([`CLOSE_RUNNING_OF_JOB`]).

use crate::domain::now_ms;

use super::error::q;
use super::{clamp_limit, new_id, Db, DbError};

/// An agent run to record when it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExecution {
    pub agent: String,
    pub agent_version: String,
    /// e.g. `running`, `succeeded`, `failed`.
    pub status: String,
    pub input: serde_json::Value,
    pub lead_id: Option<String>,
    pub customer_id: Option<String>,
    pub opportunity_id: Option<String>,
    pub request_id: Option<String>,
    /// The job this run is an attempt of, if any.
    pub job_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl NewExecution {
    pub fn new(
        agent: impl Into<String>,
        agent_version: impl Into<String>,
        input: serde_json::Value,
    ) -> Self {
        NewExecution {
            agent: agent.into(),
            agent_version: agent_version.into(),
            status: "running".into(),
            input,
            lead_id: None,
            customer_id: None,
            opportunity_id: None,
            request_id: None,
            job_id: None,
            created_at: now_ms(),
        }
    }
}

/// The outcome of an agent run, recorded by [`Db::finish_execution`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecutionFinish {
    pub status: String,
    pub output: Option<serde_json::Value>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost: f64,
    pub duration_ms: Option<i64>,
    pub mcp_tools_used: Vec<String>,
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub finished_at: i64,
}

/// A stored agent run.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRecord {
    pub id: String,
    pub agent: String,
    pub agent_version: String,
    pub status: String,
    pub input: serde_json::Value,
    pub output: Option<serde_json::Value>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost: f64,
    pub duration_ms: Option<i64>,
    pub lead_id: Option<String>,
    pub customer_id: Option<String>,
    pub opportunity_id: Option<String>,
    pub mcp_tools_used: Vec<String>,
    pub error: Option<String>,
    pub request_id: Option<String>,
    /// The job this run was an attempt of, if any.
    pub job_id: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// Status of an execution closed because its attempt ended without finishing it.
pub const ABANDONED: &str = "abandoned";

/// Closes the `running` executions of a job (binds: error, finished_at, job id).
pub(super) const CLOSE_RUNNING_OF_JOB: &str = "UPDATE agent_executions SET status = 'abandoned', \
    error = $1, finished_at = $2 WHERE job_id = $3 AND status = 'running'";

/// Records how an execution ended (binds: status, output, tokens_in, tokens_out, cost,
/// duration_ms, mcp_tools_used, error, finished_at, id).
pub(super) const FINISH: &str = "UPDATE agent_executions SET status = $1, output = $2, \
    tokens_in = $3, tokens_out = $4, cost = $5, duration_ms = $6, mcp_tools_used = $7, \
    error = $8, finished_at = $9 WHERE id = $10";

/// Runs [`FINISH`] for execution `$id` with `$f` (an [`ExecutionFinish`]) through `$exec`;
/// evaluates to the rows affected.
macro_rules! finish_execution_row {
    ($exec:expr, $id:expr, $f:expr, $op:expr) => {{
        let f: &$crate::db::ExecutionFinish = $f;
        let output = f.output.as_ref().map(|o| o.to_string());
        let tools = serde_json::Value::from(f.mcp_tools_used.clone()).to_string();
        let cost = if f.cost.is_finite() { f.cost } else { 0.0 };
        sqlx::query($crate::db::executions::FINISH)
            .bind(f.status.as_str())
            .bind(output.as_deref())
            .bind(f.tokens_in)
            .bind(f.tokens_out)
            .bind(cost)
            .bind(f.duration_ms)
            .bind(tools.as_str())
            .bind(f.error.as_deref())
            .bind(f.finished_at)
            .bind($id)
            .execute($exec)
            .await
            .map_err($crate::db::error::q($op))?
            .rows_affected()
    }};
}
pub(crate) use finish_execution_row;

/// Runs [`CLOSE_RUNNING_OF_JOB`] for job `$job` with reason `$why` through `$exec`.
macro_rules! close_running_of_job {
    ($exec:expr, $job:expr, $why:expr, $now:expr, $op:expr) => {{
        let why: &str = $why;
        sqlx::query($crate::db::executions::CLOSE_RUNNING_OF_JOB)
            .bind(why)
            .bind($now)
            .bind($job)
            .execute($exec)
            .await
            .map_err($crate::db::error::q($op))?
            .rows_affected()
    }};
}
pub(crate) use close_running_of_job;

/// Filter for [`Db::list_executions`]; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub agent: Option<String>,
    pub status: Option<String>,
    pub lead_id: Option<String>,
    /// 0 = default (100); at most 10 000.
    pub limit: i64,
    pub offset: i64,
}

const COLUMNS: &str =
    "id, agent, agent_version, status, input, output, tokens_in, tokens_out, cost, \
    duration_ms, lead_id, customer_id, opportunity_id, mcp_tools_used, error, request_id, \
    job_id, created_at, finished_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    agent: String,
    agent_version: String,
    status: String,
    input: String,
    output: Option<String>,
    tokens_in: i64,
    tokens_out: i64,
    cost: f64,
    duration_ms: Option<i64>,
    lead_id: Option<String>,
    customer_id: Option<String>,
    opportunity_id: Option<String>,
    mcp_tools_used: String,
    error: Option<String>,
    request_id: Option<String>,
    job_id: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
}

impl Row {
    fn into_record(self, op: &'static str) -> Result<ExecutionRecord, DbError> {
        let corrupt = |what: &str, e: serde_json::Error| DbError::Corrupt {
            op,
            reason: format!("agent execution {}: {what}: {e}", self.id),
        };
        let input = serde_json::from_str(&self.input).map_err(|e| corrupt("input", e))?;
        let output = match &self.output {
            Some(o) => Some(serde_json::from_str(o).map_err(|e| corrupt("output", e))?),
            None => None,
        };
        let mcp_tools_used =
            serde_json::from_str(&self.mcp_tools_used).map_err(|e| corrupt("mcp_tools_used", e))?;
        Ok(ExecutionRecord {
            id: self.id,
            agent: self.agent,
            agent_version: self.agent_version,
            status: self.status,
            input,
            output,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            cost: self.cost,
            duration_ms: self.duration_ms,
            lead_id: self.lead_id,
            customer_id: self.customer_id,
            opportunity_id: self.opportunity_id,
            mcp_tools_used,
            error: self.error,
            request_id: self.request_id,
            job_id: self.job_id,
            created_at: self.created_at,
            finished_at: self.finished_at,
        })
    }
}

impl Db {
    /// Record the start of an agent run; returns its id (uuid v7). A run for a job first
    /// closes, in the same transaction, the job's executions still `running` (an earlier
    /// attempt that died) as `abandoned`.
    pub async fn insert_execution(&self, e: &NewExecution) -> Result<String, DbError> {
        const OP: &str = "insert_execution";
        let id = new_id();
        let input = e.input.to_string();
        let now = now_ms();
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            if let Some(job) = e.job_id.as_deref() {
                let n = close_running_of_job!(
                    &mut *tx,
                    job,
                    &format!("abandoned: an earlier attempt of job {job} ended without finishing this run (worker stopped or lease lost); execution {id} replaces it"),
                    now,
                    OP
                );
                if n > 0 {
                    tracing::info!(
                        job_id = job,
                        closed = n,
                        "earlier running execution of the job closed as abandoned"
                    );
                }
            }
            sqlx::query(
                "INSERT INTO agent_executions (id, agent, agent_version, status, input, lead_id, \
                 customer_id, opportunity_id, request_id, job_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(id.as_str())
            .bind(e.agent.as_str())
            .bind(e.agent_version.as_str())
            .bind(e.status.as_str())
            .bind(input.as_str())
            .bind(e.lead_id.as_deref())
            .bind(e.customer_id.as_deref())
            .bind(e.opportunity_id.as_deref())
            .bind(e.request_id.as_deref())
            .bind(e.job_id.as_deref())
            .bind(e.created_at)
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?;
            tx.commit().await.map_err(q(OP))?;
        });
        Ok(id)
    }

    /// Record how an agent run ended. [`DbError::NotFound`] if the id is unknown.
    pub async fn finish_execution(&self, id: &str, f: &ExecutionFinish) -> Result<(), DbError> {
        const OP: &str = "finish_execution";
        let n = on_pool!(self, |pool| finish_execution_row!(pool, id, f, OP));
        if n == 0 {
            return Err(DbError::NotFound {
                op: OP,
                what: format!("agent execution {id}"),
            });
        }
        Ok(())
    }

    /// Close the executions of job `job_id` still `running` as `abandoned` with `reason`;
    /// returns how many.
    pub async fn close_running_executions_of_job(
        &self,
        job_id: &str,
        reason: &str,
    ) -> Result<u64, DbError> {
        const OP: &str = "close_running_executions_of_job";
        let now = now_ms();
        Ok(on_pool!(self, |pool| close_running_of_job!(
            pool, job_id, reason, now, OP
        )))
    }

    /// Close as `abandoned` the executions of no job (a `strata qualify` run) still
    /// `running` that started before `started_before` (ms since the epoch): their process
    /// died with them (kill -9), and no job retry will close them. Returns how many.
    pub async fn close_stale_jobless_executions(
        &self,
        started_before: i64,
    ) -> Result<u64, DbError> {
        const OP: &str = "close_stale_jobless_executions";
        let now = now_ms();
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE agent_executions SET status = 'abandoned', finished_at = $1, \
                 error = 'abandoned: its process ended before it finished (no job to retry it)' \
                 WHERE job_id IS NULL AND status = 'running' AND created_at < $2",
            )
            .bind(now)
            .bind(started_before)
            .execute(pool)
            .await
            .map_err(q(OP))?
            .rows_affected()
        });
        Ok(n)
    }

    /// The executions of job `job_id`, oldest first.
    pub async fn executions_of_job(&self, job_id: &str) -> Result<Vec<ExecutionRecord>, DbError> {
        const OP: &str = "executions_of_job";
        let sql = format!(
            "SELECT {COLUMNS} FROM agent_executions WHERE job_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(job_id)
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_record(OP)).collect()
    }

    /// One agent run by id.
    pub async fn get_execution(&self, id: &str) -> Result<Option<ExecutionRecord>, DbError> {
        const OP: &str = "get_execution";
        let sql = format!("SELECT {COLUMNS} FROM agent_executions WHERE id = $1");
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?
        });
        row.map(|r| r.into_record(OP)).transpose()
    }

    /// Agent runs matching `filter`, newest first.
    pub async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, DbError> {
        const OP: &str = "list_executions";
        let sql = format!(
            "SELECT {COLUMNS} FROM agent_executions WHERE ($1 IS NULL OR agent = $1) \
             AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR lead_id = $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(filter.agent.as_deref())
                .bind(filter.status.as_deref())
                .bind(filter.lead_id.as_deref())
                .bind(clamp_limit(filter.limit))
                .bind(filter.offset.max(0))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_record(OP)).collect()
    }
}
