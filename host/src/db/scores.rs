//! Lead scores: bulk insert, read back, filter, human overrides.
//!
//! `lead_scores.lead_id` references `leads(id)` (ON DELETE CASCADE): a score is always of a
//! stored lead. Callers that score leads not yet stored (inline leads, external files)
//! use [`Db::record_scores`], which upserts the leads and inserts their scores in one
//! transaction; inserting a score for an unknown lead fails with
//! [`DbError::Constraint`].

use crate::domain::{now_ms, Factor, Lead, Priority, Score, ScoreOverride, StoredScore};

use super::error::q;
use super::leads::upsert_lead_rows;
use super::{clamp_limit, new_id, Db, DbError};

/// A score to store. `created_at` defaults to now in [`NewScore::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewScore {
    pub lead_id: String,
    /// `plugin@version` that produced the score.
    pub strategy: String,
    /// SHA-256 of that version's component (with `strategy`, the version's identity).
    pub strategy_sha256: Option<String>,
    pub score: Score,
    pub fallback_used: bool,
    pub request_id: Option<String>,
    /// The job that produced the score, if any: at most one score per job.
    pub job_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The exact input the plugin saw, for replay: the lead as JSON and its sha256.
    pub input: Option<ScoreInput>,
}

/// The input a stored score was computed from (see [`NewScore::with_input`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreInput {
    /// The lead as the plugin saw it, as JSON.
    pub lead_json: String,
    /// SHA-256 of `lead_json`.
    pub sha256: String,
}

impl ScoreInput {
    pub fn of(lead: &Lead) -> ScoreInput {
        use sha2::Digest;
        let lead_json = serde_json::to_string(lead).unwrap_or_default();
        let sha256 = hex::encode(sha2::Sha256::digest(lead_json.as_bytes()));
        ScoreInput { lead_json, sha256 }
    }
}

impl NewScore {
    pub fn new(lead_id: impl Into<String>, strategy: impl Into<String>, score: Score) -> NewScore {
        NewScore {
            lead_id: lead_id.into(),
            strategy: strategy.into(),
            strategy_sha256: None,
            score,
            fallback_used: false,
            request_id: None,
            job_id: None,
            created_at: now_ms(),
            input: None,
        }
    }

    /// Keeps the lead the plugin scored, so the score can be replayed with another
    /// version (`strata replay`).
    pub fn with_input(mut self, lead: &Lead) -> NewScore {
        self.input = Some(ScoreInput::of(lead));
        self
    }

    /// Names the component that produced the score.
    pub fn with_sha256(mut self, sha256: impl Into<String>) -> NewScore {
        self.strategy_sha256 = Some(sha256.into());
        self
    }
}

/// What [`Db::record_score_and_finish`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobScore {
    /// The score was stored with this id (and the execution finished as given).
    Stored(String),
    /// The job already had this score (another attempt stored it): nothing was stored,
    /// and the execution was closed as `abandoned`.
    AlreadyStored(String),
}

impl JobScore {
    /// The id of the job's score, whoever stored it.
    pub fn id(&self) -> &str {
        match self {
            JobScore::Stored(id) | JobScore::AlreadyStored(id) => id,
        }
    }
}

/// Which score an override applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideTarget {
    /// This score.
    Score(String),
    /// The newest score of this lead.
    LatestOfLead(String),
}

/// Order of [`Db::list_scores`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScoreSort {
    #[default]
    NewestFirst,
    OldestFirst,
    HighestScore,
    LowestScore,
}

impl ScoreSort {
    fn order_by(self) -> &'static str {
        match self {
            ScoreSort::NewestFirst => "created_at DESC, id DESC",
            ScoreSort::OldestFirst => "created_at ASC, id ASC",
            ScoreSort::HighestScore => "score DESC, created_at DESC, id DESC",
            ScoreSort::LowestScore => "score ASC, created_at DESC, id DESC",
        }
    }
}

/// Filter for [`Db::list_scores`]. Filters apply to the machine score and priority (an
/// override does not move a score between buckets). Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct ScoreFilter {
    pub lead_id: Option<String>,
    pub priority: Option<Priority>,
    pub min_score: Option<f64>,
    /// Exact `plugin@version`.
    pub strategy: Option<String>,
    /// Only scores created at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    pub sort: ScoreSort,
    /// 0 = default (100); at most 10 000.
    pub limit: i64,
    pub offset: i64,
}

/// Names of the factors that also get their own column.
const FACTOR_COLUMNS: [&str; 5] = ["budget", "timeline", "complexity", "authority", "fit"];

pub(crate) const INSERT_COLUMNS: &str =
    "id, lead_id, strategy, score, priority, recommended_action, \
    reasoning, confidence, factors, budget_score, timeline_score, complexity_score, \
    authority_score, fit_score, fallback_used, request_id, created_at, strategy_sha256, job_id, \
    input_sha256, lead_snapshot";
pub(crate) const N_INSERT_COLUMNS: usize = 21;

const SELECT_COLUMNS: &str =
    "id, lead_id, strategy, strategy_sha256, score, priority, recommended_action, \
    reasoning, confidence, factors, fallback_used, request_id, override_score, \
    override_priority, override_by, override_reason, override_at, created_at";

/// Validated row values of one score.
pub(crate) struct ScoreValues<'a> {
    pub(crate) id: String,
    pub(crate) new: &'a NewScore,
    pub(crate) factors: String,
    pub(crate) factor_cols: [Option<f64>; 5],
}

fn factor_column(factors: &[Factor], name: &str) -> Option<f64> {
    factors
        .iter()
        .find(|f| f.name.trim().eq_ignore_ascii_case(name))
        .map(|f| f.score)
}

pub(crate) fn prepare<'a>(
    op: &'static str,
    scores: &'a [NewScore],
) -> Result<Vec<ScoreValues<'a>>, DbError> {
    scores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let bad = |reason: String| DbError::InvalidInput {
                op,
                reason: format!("score #{i} (lead {}): {reason}", s.lead_id),
            };
            if s.lead_id.trim().is_empty() {
                return Err(bad("empty lead id".into()));
            }
            let v = s.score.value;
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                return Err(bad(format!("score {v} is not within 0–100")));
            }
            let c = s.score.confidence;
            if !(c.is_finite() && (0.0..=1.0).contains(&c)) {
                return Err(bad(format!("confidence {c} is not within 0–1")));
            }
            if let Some(f) = s.score.factors.iter().find(|f| !f.score.is_finite()) {
                return Err(bad(format!("factor {:?} is not a finite number", f.name)));
            }
            let factors =
                serde_json::to_string(&s.score.factors).map_err(|e| bad(e.to_string()))?;
            let factor_cols = FACTOR_COLUMNS.map(|n| factor_column(&s.score.factors, n));
            Ok(ScoreValues {
                id: new_id(),
                new: s,
                factors,
                factor_cols,
            })
        })
        .collect()
}

/// Insert prepared [`ScoreValues`] inside transaction `$tx` of `$pool`, in chunks.
macro_rules! insert_score_rows {
    ($pool:ident, $tx:ident, $rows:expr, $chunk:expr, $op:expr) => {
        for part in $rows.chunks($chunk) {
            let mut qb = $crate::db::builder(
                $pool,
                format!(
                    "INSERT INTO lead_scores ({}) ",
                    $crate::db::scores::INSERT_COLUMNS
                ),
            );
            qb.push_values(part, |mut b, v| {
                let s = v.new;
                b.push_bind(v.id.as_str())
                    .push_bind(s.lead_id.as_str())
                    .push_bind(s.strategy.as_str())
                    .push_bind(s.score.value)
                    .push_bind(s.score.priority.as_str())
                    .push_bind(s.score.recommended_action.as_str())
                    .push_bind(s.score.reasoning.as_str())
                    .push_bind(s.score.confidence)
                    .push_bind(v.factors.as_str())
                    .push_bind(v.factor_cols[0])
                    .push_bind(v.factor_cols[1])
                    .push_bind(v.factor_cols[2])
                    .push_bind(v.factor_cols[3])
                    .push_bind(v.factor_cols[4])
                    .push_bind(s.fallback_used)
                    .push_bind(s.request_id.as_deref())
                    .push_bind(s.created_at)
                    .push_bind(s.strategy_sha256.as_deref())
                    .push_bind(s.job_id.as_deref())
                    .push_bind(s.input.as_ref().map(|i| i.sha256.as_str()))
                    .push_bind(s.input.as_ref().map(|i| i.lead_json.as_str()));
            });
            qb.build()
                .persistent(false)
                .execute(&mut *$tx)
                .await
                .map_err($crate::db::error::q($op))?;
        }
    };
}

#[derive(sqlx::FromRow)]
struct ScoreRow {
    id: String,
    lead_id: String,
    strategy: String,
    strategy_sha256: Option<String>,
    score: f64,
    priority: String,
    recommended_action: String,
    reasoning: String,
    confidence: f64,
    factors: String,
    fallback_used: bool,
    request_id: Option<String>,
    override_score: Option<f64>,
    override_priority: Option<String>,
    override_by: Option<String>,
    override_reason: Option<String>,
    override_at: Option<i64>,
    created_at: i64,
}

impl ScoreRow {
    fn into_stored(self, op: &'static str) -> Result<StoredScore, DbError> {
        let corrupt = |reason: String| DbError::Corrupt {
            op,
            reason: format!("score {}: {reason}", self.id),
        };
        let priority: Priority = self.priority.parse().map_err(|e| corrupt(format!("{e}")))?;
        let factors: Vec<Factor> = serde_json::from_str(&self.factors)
            .map_err(|e| corrupt(format!("factors are not a JSON list of factors: {e}")))?;
        let human_override = match self.override_at {
            Some(at) => Some(ScoreOverride {
                value: self.override_score,
                priority: match &self.override_priority {
                    Some(p) => Some(p.parse().map_err(|e| corrupt(format!("override {e}")))?),
                    None => None,
                },
                by: self.override_by.clone().unwrap_or_default(),
                reason: self.override_reason.clone().unwrap_or_default(),
                at,
            }),
            None => None,
        };
        Ok(StoredScore {
            id: self.id,
            lead_id: self.lead_id,
            strategy: self.strategy,
            strategy_sha256: self.strategy_sha256,
            score: Score {
                value: self.score,
                priority,
                recommended_action: self.recommended_action,
                reasoning: self.reasoning,
                confidence: self.confidence,
                factors,
            },
            fallback_used: self.fallback_used,
            request_id: self.request_id,
            created_at: self.created_at,
            human_override,
        })
    }
}

impl Db {
    /// Store one score; returns its id (uuid v7). The lead must be stored.
    pub async fn insert_score(&self, score: &NewScore) -> Result<String, DbError> {
        let mut ids = self
            .insert_scores_op("insert_score", std::slice::from_ref(score))
            .await?;
        Ok(ids.pop().unwrap_or_default())
    }

    /// Store many scores in one transaction with multi-row `INSERT`s; returns their ids
    /// in input order. All or nothing. The leads must be stored (see [`Db::record_scores`]).
    pub async fn insert_scores(&self, scores: &[NewScore]) -> Result<Vec<String>, DbError> {
        self.insert_scores_op("insert_scores", scores).await
    }

    async fn insert_scores_op(
        &self,
        op: &'static str,
        scores: &[NewScore],
    ) -> Result<Vec<String>, DbError> {
        let rows = prepare(op, scores)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let chunk = self.rows_per_statement(N_INSERT_COLUMNS);
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(op))?;
            insert_score_rows!(pool, tx, rows, chunk, op);
            tx.commit().await.map_err(q(op))?;
        });
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// Store one score and, in the same transaction, finish execution `execution` (id,
    /// outcome) if given: both or neither. A score of a job (`job_id` set) is stored
    /// only if the job has none yet; otherwise nothing is stored, the execution is closed
    /// as `abandoned` naming the stored score, and [`JobScore::AlreadyStored`] says which.
    pub async fn record_score_and_finish(
        &self,
        score: &NewScore,
        execution: Option<(&str, &super::ExecutionFinish)>,
    ) -> Result<JobScore, DbError> {
        const OP: &str = "record_score_and_finish";
        let rows = prepare(OP, std::slice::from_ref(score))?;
        let v = &rows[0];
        let placeholders: Vec<String> = (1..=N_INSERT_COLUMNS).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO lead_scores ({INSERT_COLUMNS}) VALUES ({}) \
             ON CONFLICT (job_id) DO NOTHING",
            placeholders.join(", ")
        );
        let outcome = on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let s = v.new;
            let n = sqlx::query(&insert)
                .bind(v.id.as_str())
                .bind(s.lead_id.as_str())
                .bind(s.strategy.as_str())
                .bind(s.score.value)
                .bind(s.score.priority.as_str())
                .bind(s.score.recommended_action.as_str())
                .bind(s.score.reasoning.as_str())
                .bind(s.score.confidence)
                .bind(v.factors.as_str())
                .bind(v.factor_cols[0])
                .bind(v.factor_cols[1])
                .bind(v.factor_cols[2])
                .bind(v.factor_cols[3])
                .bind(v.factor_cols[4])
                .bind(s.fallback_used)
                .bind(s.request_id.as_deref())
                .bind(s.created_at)
                .bind(s.strategy_sha256.as_deref())
                .bind(s.job_id.as_deref())
                .bind(s.input.as_ref().map(|i| i.sha256.as_str()))
                .bind(s.input.as_ref().map(|i| i.lead_json.as_str()))
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?
                .rows_affected();
            let outcome = if n > 0 {
                JobScore::Stored(v.id.clone())
            } else {
                let existing: String =
                    sqlx::query_scalar("SELECT id FROM lead_scores WHERE job_id = $1")
                        .bind(s.job_id.as_deref())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(q(OP))?;
                JobScore::AlreadyStored(existing)
            };
            if let Some((exec_id, finish)) = execution {
                let closed;
                let finish = match &outcome {
                    JobScore::Stored(_) => finish,
                    JobScore::AlreadyStored(existing) => {
                        closed = super::ExecutionFinish {
                            status: super::executions::ABANDONED.into(),
                            output: finish.output.clone(),
                            error: Some(format!(
                                "abandoned: job {} already has score {existing} (stored by another attempt); this run's score was not stored",
                                s.job_id.as_deref().unwrap_or("?")
                            )),
                            ..finish.clone()
                        };
                        &closed
                    }
                };
                let n = super::executions::finish_execution_row!(&mut *tx, exec_id, finish, OP);
                if n == 0 {
                    return Err(DbError::NotFound {
                        op: OP,
                        what: format!("agent execution {exec_id}"),
                    });
                }
            }
            tx.commit().await.map_err(q(OP))?;
            outcome
        });
        Ok(outcome)
    }

    /// The score stored by job `job_id`, if any.
    pub async fn score_of_job(&self, job_id: &str) -> Result<Option<StoredScore>, DbError> {
        const OP: &str = "score_of_job";
        let sql = format!("SELECT {SELECT_COLUMNS} FROM lead_scores WHERE job_id = $1");
        let row: Option<ScoreRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(job_id)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?
        });
        row.map(|r| r.into_stored(OP)).transpose()
    }

    /// Upsert `leads` and insert `scores` in one transaction (the path for scoring
    /// leads that arrive inline or from a file). Returns the score ids in input order.
    pub async fn record_scores(
        &self,
        leads: &[Lead],
        scores: &[NewScore],
    ) -> Result<Vec<String>, DbError> {
        const OP: &str = "record_scores";
        let lead_rows = super::leads::prepare(OP, leads)?;
        let rows = prepare(OP, scores)?;
        let lead_chunk = self.rows_per_statement(super::leads::N_COLUMNS);
        let chunk = self.rows_per_statement(N_INSERT_COLUMNS);
        let now = now_ms();
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            upsert_lead_rows!(pool, tx, lead_rows, lead_chunk, now, OP);
            insert_score_rows!(pool, tx, rows, chunk, OP);
            tx.commit().await.map_err(q(OP))?;
        });
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// The score with this id.
    pub async fn get_score(&self, id: &str) -> Result<Option<StoredScore>, DbError> {
        const OP: &str = "get_score";
        let sql = format!("SELECT {SELECT_COLUMNS} FROM lead_scores WHERE id = $1");
        let row: Option<ScoreRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?
        });
        row.map(|r| r.into_stored(OP)).transpose()
    }

    /// The newest `limit` scores of a lead, newest first (0 = 100).
    pub async fn latest_scores(
        &self,
        lead_id: &str,
        limit: i64,
    ) -> Result<Vec<StoredScore>, DbError> {
        const OP: &str = "latest_scores";
        let sql = format!(
            "SELECT {SELECT_COLUMNS} FROM lead_scores WHERE lead_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<ScoreRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(lead_id)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_stored(OP)).collect()
    }

    /// Scores matching `filter`, in `filter.sort` order.
    pub async fn list_scores(&self, filter: &ScoreFilter) -> Result<Vec<StoredScore>, DbError> {
        const OP: &str = "list_scores";
        let sql = format!(
            "SELECT {SELECT_COLUMNS} FROM lead_scores \
             WHERE ($1 IS NULL OR lead_id = $1) AND ($2 IS NULL OR priority = $2) \
             AND ($3 IS NULL OR score >= $3) AND ($4 IS NULL OR strategy = $4) \
             AND ($5 IS NULL OR created_at >= $5) \
             ORDER BY {} LIMIT $6 OFFSET $7",
            filter.sort.order_by()
        );
        let rows: Vec<ScoreRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(filter.lead_id.as_deref())
                .bind(filter.priority.map(|p| p.as_str()))
                .bind(filter.min_score)
                .bind(filter.strategy.as_deref())
                .bind(filter.since_ms)
                .bind(clamp_limit(filter.limit))
                .bind(filter.offset.max(0))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_stored(OP)).collect()
    }

    /// Number of stored scores (all leads, all strategies).
    pub async fn count_scores(&self) -> Result<i64, DbError> {
        let n: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM lead_scores")
                .fetch_one(pool)
                .await
                .map_err(q("count_scores"))?
        });
        Ok(n)
    }

    /// Record a human override beside the machine score (the machine columns are never
    /// touched; a later override replaces an earlier one). At least one of
    /// `value`/`priority` must be set; `value` within 0–100; `by` non-empty.
    /// Returns the id of the score overridden; [`DbError::NotFound`] if there is none.
    pub async fn set_override(
        &self,
        target: &OverrideTarget,
        ov: &ScoreOverride,
    ) -> Result<String, DbError> {
        const OP: &str = "set_override";
        let bad = |reason: &str| DbError::InvalidInput {
            op: OP,
            reason: reason.to_string(),
        };
        if ov.value.is_none() && ov.priority.is_none() {
            return Err(bad("an override needs a score or a priority"));
        }
        if let Some(v) = ov.value {
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                return Err(bad(&format!("override score {v} is not within 0–100")));
            }
        }
        if ov.by.trim().is_empty() {
            return Err(bad("an override must name who made it"));
        }
        let (find_sql, key, what) = match target {
            OverrideTarget::Score(id) => ("SELECT id FROM lead_scores WHERE id = $1", id, format!("score {id}")),
            OverrideTarget::LatestOfLead(lead) => (
                "SELECT id FROM lead_scores WHERE lead_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
                lead,
                format!("a score of lead {lead}"),
            ),
        };
        const UPDATE: &str = "UPDATE lead_scores SET override_score = $1, override_priority = $2, \
            override_by = $3, override_reason = $4, override_at = $5 WHERE id = $6";
        let id: String = on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            let id: Option<String> = sqlx::query_scalar(find_sql)
                .bind(key.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(q(OP))?;
            let Some(id) = id else {
                return Err(DbError::NotFound { op: OP, what });
            };
            sqlx::query(UPDATE)
                .bind(ov.value)
                .bind(ov.priority.map(|p| p.as_str()))
                .bind(ov.by.as_str())
                .bind(ov.reason.as_str())
                .bind(ov.at)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
            tx.commit().await.map_err(q(OP))?;
            id
        });
        Ok(id)
    }

    /// Remove the human override of a score. True if the score had one.
    pub async fn clear_override(&self, score_id: &str) -> Result<bool, DbError> {
        const OP: &str = "clear_override";
        let n = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE lead_scores SET override_score = NULL, override_priority = NULL, \
                 override_by = NULL, override_reason = NULL, override_at = NULL \
                 WHERE id = $1 AND override_at IS NOT NULL",
            )
            .bind(score_id)
            .execute(pool)
            .await
            .map_err(q(OP))?
            .rows_affected()
        });
        Ok(n > 0)
    }
}
