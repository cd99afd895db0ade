//! One qualification: the lead read from the CRM (and stored or updated in Strata), judged
//! by an agent (with an execution row: input, output, tokens, cost, duration, tools) or a
//! scorer, the score stored, the verdict written back to the CRM.
//!
//! Invariants:
//! * Run for a job, the effects are keyed by the job: a job that already stored its score
//!   (an attempt whose completion or write-back was lost) is not judged again; only its
//!   write-back is redone, unless its execution says it was written back. The score and
//!   the finished execution are stored in one transaction, so a killed attempt leaves
//!   neither or both.
//! * No execution row stays `running` on any error path: every failure after the row
//!   opens finishes it as `failed`; one orphaned by a crash is closed when its job is
//!   retried (here), released or dead (`db::jobs`).
//! * A write-back that fails is not hidden: the execution is `failed` with the tool's
//!   error, its output says `written_back: false`, and the qualification is an error
//!   (the job retries the write-back; the CLI exits non-zero). The score stays stored.

use super::link::{CrmLink, LinkError, WriteBack};
use super::mapping::Verdict;
use super::settings::QualifySettings;
use crate::capabilities::tape::TapeMode;
use crate::challenger::{side, Challengers, Plan, Source};
use crate::db::{Db, DbError, ExecutionFinish, ExecutionRecord, JobScore, NewExecution, NewScore};
use crate::domain::{now_ms, Lead, Score};
use crate::manifest::PluginKind;
use crate::runtime::{CallError, LoadedPlugin};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// Why a qualification failed; the message is recorded on the job (and the execution).
#[derive(Debug, thiserror::Error)]
pub enum QualifyError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("agent task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Crm(#[from] LinkError),
    #[error("no lead {0:?} in Strata (and no CRM configured to read it from)")]
    NoLead(String),
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
    #[error("lead {lead_id} scored {score:.1} (score {score_id}) but the write-back to the CRM failed: {errors}")]
    WriteBack {
        lead_id: String,
        score: f64,
        score_id: String,
        errors: String,
    },
}

/// What the agent returns (the fields the host relies on).
#[derive(Debug, Deserialize)]
struct AgentOutput {
    score: Score,
    #[serde(default)]
    fallback_used: bool,
    #[serde(default)]
    fallback_reason: Option<String>,
    #[serde(default)]
    strategy: Option<String>,
}

/// Qualification as the host runs it: the database, `[qualify]`, and the CRM link (none
/// when the CRM's MCP server is not configured).
pub struct Qualification {
    db: Db,
    settings: QualifySettings,
    crm: Option<CrmLink>,
    /// Challengers of scorer strategies: shadowed or canaried on qualification jobs too.
    challengers: Option<Arc<Challengers>>,
}

/// A judged lead, before it is stored.
struct Judged {
    score: Score,
    fallback_used: bool,
    decided_by: String,
    /// The agent's execution: id, output, usage, duration.
    execution: Option<(String, Value, crate::capabilities::CallUsage, i64)>,
}

impl Qualification {
    pub fn new(db: Db, settings: QualifySettings, crm: Option<CrmLink>) -> Qualification {
        Qualification {
            db,
            settings,
            crm,
            challengers: None,
        }
    }

    /// Runs the strategies' challengers (shadow, canary) on scorer qualifications too.
    pub fn with_challengers(mut self, c: Arc<Challengers>) -> Qualification {
        self.challengers = Some(c);
        self
    }

    pub fn settings(&self) -> &QualifySettings {
        &self.settings
    }

    pub fn crm(&self) -> Option<&CrmLink> {
        self.crm.as_ref()
    }

    /// Lead `lead_id` from the CRM, stored or updated in Strata (written only when it
    /// changed); without a CRM, the stored lead.
    pub async fn sync_lead(
        &self,
        lead_id: &str,
        request_id: Option<&str>,
    ) -> Result<Lead, QualifyError> {
        let stored = self.db.get_lead(lead_id).await?;
        let Some(crm) = &self.crm else {
            let lead = stored.ok_or_else(|| QualifyError::NoLead(lead_id.to_string()))?;
            return Ok(without_strata_fields(lead));
        };
        let mut row = crm.read_lead(lead_id, request_id).await?;
        if let Some(s) = &stored {
            // Attributes Strata holds and the CRM does not send (imported ones, Strata's
            // own `strata_*`) stay on the stored row.
            for (k, v) in &s.attributes {
                row.attributes.entry(k.clone()).or_insert_with(|| v.clone());
            }
            if &row == s {
                return Ok(without_strata_fields(row));
            }
        }
        crate::crm::validate_lead(&row).map_err(|e| {
            LinkError::Mapping(super::mapping::MappingError::Config(format!(
                "the lead {lead_id:?} read from MCP server {} is not a valid Strata lead: {e}",
                crm.server()
            )))
        })?;
        self.db.upsert_lead(&row).await?;
        Ok(without_strata_fields(row))
    }

    /// Qualifies `lead_id` with `plugin` (an agent or a scorer), outside any job.
    pub async fn run(
        &self,
        plugin: Arc<LoadedPlugin>,
        lead_id: &str,
        request_id: Option<String>,
    ) -> Result<Value, QualifyError> {
        self.run_for_job(plugin, lead_id, request_id, None).await
    }

    /// [`Qualification::run`] as an attempt of job `job_id` (if given).
    pub async fn run_for_job(
        &self,
        plugin: Arc<LoadedPlugin>,
        lead_id: &str,
        request_id: Option<String>,
        job_id: Option<&str>,
    ) -> Result<Value, QualifyError> {
        if let Some(job) = job_id {
            if let Some(v) = self.resume(job, request_id.as_deref()).await? {
                return Ok(v);
            }
        }
        let lead = self.sync_lead(lead_id, request_id.as_deref()).await?;
        let (plugin, judged) = self
            .judge_planned(plugin, &lead, &request_id, job_id)
            .await?;

        let mut row = NewScore::new(lead_id, plugin.id(), judged.score.clone())
            .with_sha256(&plugin.sha256)
            .with_input(&lead);
        row.fallback_used = judged.fallback_used;
        row.request_id = request_id.clone();
        row.job_id = job_id.map(str::to_string);
        let done = judged.execution.as_ref().map(|(id, out, usage, ms)| {
            (
                id.clone(),
                finish("succeeded", Some(out.clone()), usage, *ms, None),
            )
        });
        let stored = self
            .db
            .record_score_and_finish(&row, done.as_ref().map(|(id, f)| (id.as_str(), f)))
            .await;
        let score_id = match stored {
            Ok(JobScore::Stored(id)) => id,
            Ok(JobScore::AlreadyStored(_)) => {
                // Another attempt of the job stored its score first: that one stands.
                let job = job_id.unwrap_or_default();
                return match self.resume(job, request_id.as_deref()).await? {
                    Some(v) => Ok(v),
                    None => Err(DbError::NotFound {
                        op: "qualify",
                        what: format!("the score of job {job}"),
                    }
                    .into()),
                };
            }
            Err(e) => {
                if let Some((id, f)) = &done {
                    self.fail_execution(id, f, &e.to_string()).await;
                }
                return Err(e.into());
            }
        };
        let outcome = if judged.fallback_used {
            "fallback"
        } else {
            "llm"
        };
        if plugin.kind() == PluginKind::Agent {
            metrics::counter!("agent_runs_total", "agent" => plugin.id().to_string(), "outcome" => outcome).increment(1);
        }
        let verdict = verdict(lead_id, &judged.score, &plugin, &judged.decided_by);
        let wb = self.write_back(&verdict, request_id.as_deref()).await;
        let mut result = json!({
            "lead_id": lead_id,
            "score_id": score_id,
            "strategy": plugin.id(),
            "fallback_used": judged.fallback_used,
            "score": judged.score,
        });
        if let Some((exec_id, out, usage, ms)) = &judged.execution {
            let mut usage = usage.clone();
            usage.mcp_tools.extend(
                self.read_tool()
                    .into_iter()
                    .chain(wb.iter().flat_map(|w| w.tools_called().map(str::to_string))),
            );
            let mut out = out.clone();
            out["written_back"] = json!(wb.as_ref().map(|w| w.written_back));
            out["write_back"] = json!(wb.as_ref().map(|w| &w.steps));
            let failed = wb.as_ref().filter(|w| !w.written_back).map(|w| w.errors());
            let status = if failed.is_some() {
                "failed"
            } else {
                "succeeded"
            };
            let error = failed
                .as_ref()
                .map(|e| format!("write-back to the CRM failed: {e}"));
            if let Err(e) = self
                .db
                .finish_execution(
                    exec_id,
                    &finish(status, Some(out.clone()), &usage, *ms, error),
                )
                .await
            {
                tracing::warn!(execution_id = %exec_id, error = %e, "cannot record the write-back on the execution");
            }
            result["execution_id"] = json!(exec_id);
            result["agent_output"] = out;
            result["usage"] = json!(usage);
        }
        if let Some(w) = &wb {
            result["written_back"] = json!(w.written_back);
            result["write_back"] = json!(w.steps);
            if !w.written_back {
                return Err(QualifyError::WriteBack {
                    lead_id: lead_id.to_string(),
                    score: judged.score.value,
                    score_id,
                    errors: w.errors(),
                });
            }
        }
        Ok(result)
    }

    /// The CRM's read tool as `server/tool`, when there is a CRM.
    fn read_tool(&self) -> Option<String> {
        self.crm
            .as_ref()
            .map(|c| format!("{}/{}", c.server(), self.settings.crm.read.tool))
    }

    async fn write_back(&self, v: &Verdict, request_id: Option<&str>) -> Option<WriteBack> {
        match &self.crm {
            Some(crm) => Some(crm.write_back(v, request_id).await),
            None => None,
        }
    }

    /// [`Self::judge`] under the strategy's challenger plan: a canary lead is judged by
    /// the challenger (the champion when the challenger fails), a shadow sample is scored
    /// again by the challenger off this path. Returns the plugin whose judgement stands.
    async fn judge_planned(
        &self,
        plugin: Arc<LoadedPlugin>,
        lead: &Lead,
        request_id: &Option<String>,
        job_id: Option<&str>,
    ) -> Result<(Arc<LoadedPlugin>, Judged), QualifyError> {
        let plan = match &self.challengers {
            Some(c) if plugin.kind() == PluginKind::Scorer => c.plan(plugin.name(), &lead.id),
            _ => Plan::Champion,
        };
        let Some(challengers) = self.challengers.clone() else {
            return Ok((
                plugin.clone(),
                self.judge(&plugin, lead, request_id, job_id).await?,
            ));
        };
        let rid: Option<Arc<str>> = request_id.as_deref().map(Arc::from);
        let mut canary_run = None;
        if let Plan::Canary(att, true) = &plan {
            let (c, a, l, r) = (challengers.clone(), att.clone(), lead.clone(), rid.clone());
            let run = tokio::task::spawn_blocking(move || {
                let p = c.resolve(&a);
                (
                    p.clone().ok(),
                    crate::challenger::run_on(p, &a.challenger, &l, r),
                )
            })
            .await?;
            if let (Some(p), Ok(score)) = (run.0, &run.1.result) {
                challengers.record(Challengers::result(
                    att,
                    lead,
                    Source::Job,
                    true,
                    None,
                    Some(&run.1),
                    request_id.as_deref(),
                ));
                let judged = Judged {
                    score: score.clone(),
                    fallback_used: false,
                    decided_by: p.id().to_string(),
                    execution: None,
                };
                return Ok((p, judged));
            }
            canary_run = Some(run.1);
        }
        let started = Instant::now();
        let judged = self.judge(&plugin, lead, request_id, job_id).await?;
        let champion = side(&plugin, &judged.score, started.elapsed());
        match plan {
            Plan::Champion => {}
            Plan::Shadow(att) => challengers.shadow(att, lead.clone(), champion, Source::Job, rid),
            Plan::Canary(att, _) => challengers.record(Challengers::result(
                &att,
                lead,
                Source::Job,
                false,
                Some(champion),
                canary_run.as_ref(),
                request_id.as_deref(),
            )),
        }
        Ok((plugin, judged))
    }

    /// Runs the plugin on the lead.
    async fn judge(
        &self,
        plugin: &Arc<LoadedPlugin>,
        lead: &Lead,
        request_id: &Option<String>,
        job_id: Option<&str>,
    ) -> Result<Judged, QualifyError> {
        let rid: Option<Arc<str>> = request_id.as_deref().map(Arc::from);
        if plugin.kind() != PluginKind::Agent {
            let p = plugin.clone();
            let l = lead.clone();
            let started = Instant::now();
            let result = tokio::task::spawn_blocking(move || p.score(&l, rid)).await?;
            crate::runtime::call_metrics(plugin.name(), &result, started.elapsed());
            return Ok(Judged {
                score: result?,
                fallback_used: false,
                decided_by: plugin.id().to_string(),
                execution: None,
            });
        }
        let task = self.settings.task(lead);
        let mut exec = NewExecution::new(plugin.name(), plugin.version().to_string(), task.clone());
        exec.lead_id = Some(lead.id.clone());
        exec.request_id = request_id.clone();
        exec.job_id = job_id.map(str::to_string);
        let exec_id = self.db.insert_execution(&exec).await?;

        let started = Instant::now();
        let a = plugin.clone();
        let input = task.to_string();
        let joined = tokio::task::spawn_blocking(move || a.run_agent_with_usage(&input, rid)).await;
        let ms = started.elapsed().as_millis() as i64;
        let (result, mut usage) = match joined {
            Ok(r) => r,
            Err(e) => {
                let e = QualifyError::from(e);
                let f = finish("failed", None, &Default::default(), ms, None);
                self.fail_execution(&exec_id, &f, &e.to_string()).await;
                return Err(e);
            }
        };
        if let TapeMode::Record(tape) = std::mem::take(&mut usage.tape) {
            self.store_tape(&exec_id, plugin, &task, result.as_deref().ok(), tape)
                .await;
        }
        let parsed = result.map_err(QualifyError::from).and_then(|out| {
            let v: Value =
                serde_json::from_str(&out).map_err(|source| QualifyError::InvalidJson {
                    agent: plugin.id().to_string(),
                    source,
                })?;
            let o: AgentOutput =
                serde_json::from_value(v.clone()).map_err(|source| QualifyError::NoScore {
                    agent: plugin.id().to_string(),
                    source,
                })?;
            plugin.validate_score(&o.score)?;
            Ok((v, o))
        });
        match parsed {
            Ok((v, o)) => Ok(Judged {
                decided_by: if o.fallback_used {
                    format!(
                        "rule-based fallback {} ({})",
                        o.strategy
                            .as_deref()
                            .unwrap_or(&self.settings.fallback_strategy),
                        o.fallback_reason.as_deref().unwrap_or("LLM unavailable")
                    )
                } else {
                    "llm".into()
                },
                score: o.score,
                fallback_used: o.fallback_used,
                execution: Some((exec_id, v, usage, ms)),
            }),
            Err(e) => {
                let f = finish("failed", None, &usage, ms, None);
                self.fail_execution(&exec_id, &f, &e.to_string()).await;
                metrics::counter!("agent_runs_total", "agent" => plugin.id().to_string(), "outcome" => "failed").increment(1);
                Err(e)
            }
        }
    }

    /// Stores an execution's tape (best effort: a replay is not worth failing the
    /// qualification over; logged if it cannot).
    async fn store_tape(
        &self,
        exec_id: &str,
        plugin: &LoadedPlugin,
        task: &Value,
        output: Option<&str>,
        tape: Vec<crate::capabilities::tape::TapeEntry>,
    ) {
        // The task is a lead as the CRM holds it: it may quote a secret too (a replay
        // then runs on the redacted task; its calls are compared redacted as well).
        let mut task = task.clone();
        plugin.services.secrets.redact_json(&mut task);
        let t = crate::db::ExecutionTape::new(
            exec_id,
            crate::db::TapeKind::Agent,
            plugin.name(),
            plugin.version(),
            &task.to_string(),
            output,
            tape,
        );
        if let Err(e) = self.db.insert_execution_tape(&t).await {
            tracing::warn!(execution_id = %exec_id, error = %e, "cannot store the execution's tape");
        }
    }

    /// Finishes an execution as `failed` with `error` (best effort: logged if it cannot).
    async fn fail_execution(&self, id: &str, f: &ExecutionFinish, error: &str) {
        let f = ExecutionFinish {
            status: "failed".into(),
            error: Some(error.to_string()),
            ..f.clone()
        };
        if let Err(e) = self.db.finish_execution(id, &f).await {
            tracing::warn!(execution_id = %id, error = %e, "cannot record the failed execution");
        }
    }

    /// A job that already stored its score: its executions still `running` are closed, and
    /// its write-back is redone unless its execution records one that succeeded. `None`:
    /// the job has no score yet.
    async fn resume(
        &self,
        job_id: &str,
        request_id: Option<&str>,
    ) -> Result<Option<Value>, QualifyError> {
        let Some(mut v) = stored_result(&self.db, job_id).await? else {
            return Ok(None);
        };
        let Some(crm) = &self.crm else {
            return Ok(Some(v));
        };
        let execs = self.db.executions_of_job(job_id).await?;
        let exec: Option<&ExecutionRecord> = execs.iter().rev().find(|e| e.output.is_some());
        if exec
            .and_then(|e| e.output.as_ref())
            .map(|o| o["written_back"] == json!(true))
            == Some(true)
        {
            return Ok(Some(v));
        }
        let score: Score =
            serde_json::from_value(v["score"].clone()).map_err(|source| QualifyError::NoScore {
                agent: v["strategy"].as_str().unwrap_or("?").to_string(),
                source,
            })?;
        let lead_id = v["lead_id"].as_str().unwrap_or_default().to_string();
        let strategy = v["strategy"].as_str().unwrap_or_default().to_string();
        let sha = self
            .db
            .score_of_job(job_id)
            .await?
            .and_then(|s| s.strategy_sha256)
            .unwrap_or_default();
        let decided_by = if v["fallback_used"] == json!(true) {
            "rule-based fallback"
        } else {
            "llm"
        };
        let verdict = Verdict {
            sha256: sha,
            ..verdict_parts(&lead_id, &score, &strategy, decided_by)
        };
        let wb = crm.write_back(&verdict, request_id).await;
        if let Some(e) = exec {
            let mut out = e.output.clone().unwrap_or_default();
            out["written_back"] = json!(wb.written_back);
            out["write_back"] = json!(wb.steps);
            let error = (!wb.written_back)
                .then(|| format!("write-back to the CRM failed: {}", wb.errors()));
            let f = ExecutionFinish {
                status: if wb.written_back {
                    "succeeded"
                } else {
                    "failed"
                }
                .into(),
                output: Some(out),
                tokens_in: e.tokens_in,
                tokens_out: e.tokens_out,
                cost: e.cost,
                duration_ms: e.duration_ms,
                mcp_tools_used: e.mcp_tools_used.clone(),
                error,
                finished_at: now_ms(),
            };
            if let Err(err) = self.db.finish_execution(&e.id, &f).await {
                tracing::warn!(execution_id = %e.id, error = %err, "cannot record the redone write-back");
            }
        }
        v["written_back"] = json!(wb.written_back);
        v["write_back"] = json!(wb.steps);
        if !wb.written_back {
            return Err(QualifyError::WriteBack {
                lead_id,
                score: score.value,
                score_id: v["score_id"].as_str().unwrap_or_default().to_string(),
                errors: wb.errors(),
            });
        }
        Ok(Some(v))
    }
}

/// `lead` without Strata's own write-back attributes (`strata_*`): what a plugin judges.
fn without_strata_fields(mut lead: Lead) -> Lead {
    lead.attributes.retain(|k, _| !k.starts_with("strata_"));
    lead
}

fn finish(
    status: &str,
    output: Option<Value>,
    usage: &crate::capabilities::CallUsage,
    duration_ms: i64,
    error: Option<String>,
) -> ExecutionFinish {
    ExecutionFinish {
        status: status.into(),
        output,
        tokens_in: usage.tokens_in as i64,
        tokens_out: usage.tokens_out as i64,
        cost: usage.cost_usd,
        duration_ms: Some(duration_ms),
        mcp_tools_used: usage.mcp_tools.clone(),
        error,
        finished_at: now_ms(),
    }
}

fn verdict(lead_id: &str, score: &Score, plugin: &LoadedPlugin, decided_by: &str) -> Verdict {
    Verdict {
        sha256: plugin.sha256.clone(),
        ..verdict_parts(lead_id, score, plugin.id(), decided_by)
    }
}

fn verdict_parts(lead_id: &str, score: &Score, strategy: &str, decided_by: &str) -> Verdict {
    Verdict {
        lead_id: lead_id.to_string(),
        score: score.value,
        priority: score.priority.as_str().to_string(),
        action: score.recommended_action.clone(),
        reasoning: score.reasoning.clone(),
        confidence: score.confidence,
        strategy: strategy.to_string(),
        sha256: String::new(),
        decided_by: decided_by.to_string(),
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
    let exec = execs.iter().rev().find(|e| e.output.is_some());
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
