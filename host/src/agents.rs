//! Running the lead-qualification agent for a stored lead: the task composed from
//! `[qualify]` config (the CRM's MCP server and tool names are configuration), the agent
//! run on a blocking thread, its score validated and stored (strategy = agent@version,
//! `fallback_used`), and an agent execution row with input, output, tokens, cost,
//! duration, MCP tools used and the lead id.
//!
//! Run for a job ([`qualify_for_job`]), the effects are keyed by the job: a job that
//! already stored its score (an attempt whose completion was lost) returns that score
//! and runs nothing; an execution of an earlier attempt left `running` is closed as
//! `abandoned` before the new one opens; the score and the finished execution are
//! stored in one transaction, so a killed attempt leaves neither or both.

use crate::db::{Db, DbError, ExecutionFinish, JobScore, NewExecution, NewScore};
use crate::domain::{now_ms, Score};
use crate::runtime::{CallError, LoadedPlugin};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// `[qualify]`: how qualification jobs run the agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QualifySettings {
    /// Agent plugin that qualifies leads when a job names no strategy; none = score with
    /// `plugins.default_scorer`.
    pub agent: Option<String>,
    /// MCP server (under `[mcp.servers]`) holding the CRM's leads.
    pub mcp_server: String,
    /// Its tool that reads a lead (`{"id": …}`).
    pub get_lead_tool: String,
    /// Its tool that updates a lead (`{"id": …, "attributes": {…}}`).
    pub update_lead_tool: String,
    /// LLM model alias; none = the first alias granted to the agent.
    pub model: Option<String>,
    /// Scorer the agent falls back to when the LLM fails.
    pub fallback_strategy: String,
}

impl Default for QualifySettings {
    fn default() -> Self {
        QualifySettings {
            agent: None,
            mcp_server: "crm".into(),
            get_lead_tool: "get_lead".into(),
            update_lead_tool: "update_lead".into(),
            model: None,
            fallback_strategy: "bant".into(),
        }
    }
}

impl QualifySettings {
    /// The agent's task for one lead.
    pub fn task(&self, lead_id: &str) -> Value {
        json!({
            "lead_id": lead_id,
            "mcp_server": self.mcp_server,
            "get_lead_tool": self.get_lead_tool,
            "update_lead_tool": self.update_lead_tool,
            "model": self.model,
            "fallback_strategy": self.fallback_strategy,
        })
    }
}

/// Why a qualification by an agent failed; the message is recorded on the job and on the
/// execution row.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("agent task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("agent {agent} returned invalid JSON: {source}")]
    InvalidJson {
        agent: String,
        source: serde_json::Error,
    },
    #[error("agent {agent} returned no usable score: {source}")]
    NoScore {
        agent: String,
        source: serde_json::Error,
    },
}

/// What the agent returns (the fields the host relies on).
#[derive(Debug, Deserialize)]
struct AgentOutput {
    score: Score,
    #[serde(default)]
    fallback_used: bool,
}

/// Runs `agent` on `lead_id`, records the execution, stores the score. `Err` is the
/// error recorded on the job (the execution row records it too).
pub async fn qualify_with_agent(
    db: &Db,
    agent: Arc<LoadedPlugin>,
    settings: &QualifySettings,
    lead_id: &str,
    request_id: Option<String>,
) -> Result<Value, AgentError> {
    qualify_for_job(db, agent, settings, lead_id, request_id, None).await
}

/// [`qualify_with_agent`] as an attempt of job `job_id` (if given): the job's stored
/// score, if it has one, is returned without running the agent (`"replayed": true`).
pub async fn qualify_for_job(
    db: &Db,
    agent: Arc<LoadedPlugin>,
    settings: &QualifySettings,
    lead_id: &str,
    request_id: Option<String>,
    job_id: Option<&str>,
) -> Result<Value, AgentError> {
    if let Some(job) = job_id {
        if let Some(v) = stored_result(db, job).await? {
            return Ok(v);
        }
    }
    let task = settings.task(lead_id);
    let (name, version) = (agent.name().to_string(), agent.version().to_string());
    let mut exec = NewExecution::new(name, version, task.clone());
    exec.lead_id = Some(lead_id.to_string());
    exec.request_id = request_id.clone();
    exec.job_id = job_id.map(str::to_string);
    let exec_id = db.insert_execution(&exec).await?;

    let started = Instant::now();
    let a = agent.clone();
    let rid: Option<Arc<str>> = request_id.as_deref().map(Arc::from);
    let input = task.to_string();
    let (result, usage) =
        tokio::task::spawn_blocking(move || a.run_agent_with_usage(&input, rid)).await?;
    let duration_ms = started.elapsed().as_millis() as i64;

    let parsed: Result<(Value, AgentOutput), AgentError> =
        result.map_err(AgentError::from).and_then(|out| {
            let v: Value =
                serde_json::from_str(&out).map_err(|source| AgentError::InvalidJson {
                    agent: agent.id().to_string(),
                    source,
                })?;
            let o: AgentOutput =
                serde_json::from_value(v.clone()).map_err(|source| AgentError::NoScore {
                    agent: agent.id().to_string(),
                    source,
                })?;
            agent.validate_score(&o.score)?;
            Ok((v, o))
        });
    let finish = |status: &str, output: Option<Value>, error: Option<String>| ExecutionFinish {
        status: status.into(),
        output,
        tokens_in: usage.tokens_in as i64,
        tokens_out: usage.tokens_out as i64,
        cost: usage.cost_usd,
        duration_ms: Some(duration_ms),
        mcp_tools_used: usage.mcp_tools.clone(),
        error,
        finished_at: now_ms(),
    };
    match parsed {
        Ok((v, o)) => {
            let mut row =
                NewScore::new(lead_id, agent.id(), o.score.clone()).with_sha256(&agent.sha256);
            row.fallback_used = o.fallback_used;
            row.request_id = request_id;
            row.job_id = job_id.map(str::to_string);
            let done = finish("succeeded", Some(v.clone()), None);
            let score_id = match db
                .record_score_and_finish(&row, Some((&exec_id, &done)))
                .await?
            {
                JobScore::Stored(id) => id,
                JobScore::AlreadyStored(_) => {
                    // Another attempt of the job stored its score first: that one stands.
                    let job = job_id.unwrap_or_default();
                    if let Some(v) = stored_result(db, job).await? {
                        return Ok(v);
                    }
                    return Err(DbError::NotFound {
                        op: "qualify_for_job",
                        what: format!("the score of job {job}"),
                    }
                    .into());
                }
            };
            metrics::counter!("agent_runs_total", "agent" => agent.id().to_string(), "outcome" => if o.fallback_used { "fallback" } else { "llm" }).increment(1);
            Ok(json!({
                "lead_id": lead_id,
                "score_id": score_id,
                "execution_id": exec_id,
                "strategy": agent.id(),
                "fallback_used": o.fallback_used,
                "score": o.score,
                "agent_output": v,
                "usage": usage,
            }))
        }
        Err(error) => {
            if let Err(e) = db
                .finish_execution(&exec_id, &finish("failed", None, Some(error.to_string())))
                .await
            {
                tracing::warn!(execution_id = %exec_id, error = %e, "cannot record the failed execution");
            }
            metrics::counter!("agent_runs_total", "agent" => agent.id().to_string(), "outcome" => "failed").increment(1);
            Err(error)
        }
    }
}

/// The result of job `job_id` rebuilt from its stored score and the execution that
/// stored it; `None` if the job has no score yet. Closes the job's executions still
/// `running` (none should be: score and execution commit together).
pub async fn stored_result(db: &Db, job_id: &str) -> Result<Option<Value>, DbError> {
    let Some(score) = db.score_of_job(job_id).await? else {
        return Ok(None);
    };
    db.close_running_executions_of_job(
        job_id,
        &format!("abandoned: job {job_id} already has score {}", score.id),
    )
    .await?;
    let execs = db.executions_of_job(job_id).await?;
    let exec = execs.iter().rev().find(|e| e.status == "succeeded");
    tracing::info!(job_id, score_id = %score.id, "job already stored its score; not run again");
    Ok(Some(json!({
        "lead_id": score.lead_id,
        "score_id": score.id,
        "execution_id": exec.map(|e| e.id.clone()),
        "strategy": score.strategy,
        "fallback_used": score.fallback_used,
        "score": score.score,
        "agent_output": exec.and_then(|e| e.output.clone()),
        "usage": exec.map(|e| json!({
            "tokens_in": e.tokens_in, "tokens_out": e.tokens_out,
            "cost_usd": e.cost, "mcp_tools": e.mcp_tools_used,
        })),
        "replayed": true,
    })))
}
