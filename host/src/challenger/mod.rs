//! Champion and challenger: try a new scoring strategy on real traffic before it decides
//! anything.
//!
//! An operator attaches a challenger (a scorer `name[@version]`) to a strategy (the
//! champion scorer's name) in one of two modes:
//! * **shadow** — a sampled share of the champion's calls (`POST /api/v1/score`, scoring
//!   jobs) is scored again by the challenger *after* the champion answered, on its own
//!   blocking thread, in its own sandbox with its own limits. The result is recorded in
//!   `challenger_results` beside the champion's; it is never returned, stored as a lead
//!   score or written to a CRM.
//! * **canary** — the challenger serves a sticky share of leads (by a hash of the lead
//!   id: the same lead always lands on the same side on every replica). A challenger
//!   failure falls back to the champion for that call. Guard rails judge the last
//!   results on this replica: an error + timeout rate or a score drift (PSI against the
//!   champion's scores) above the attachment's bounds rolls the challenger back
//!   ([`recorder`]): recorded as a strategy event, audited, counted in metrics.
//!
//! Invariants:
//! * Nothing a challenger does can fail or delay the champion's response beyond the cost
//!   of deciding the plan: shadows run after the response is computed, only when a
//!   shadow slot is free (`challenger.max_concurrent_shadows`; otherwise the sample is
//!   skipped and counted), and results go through a bounded buffer to one writer.
//! * The attachment table is the authority; every replica reads it again every
//!   `challenger.poll_ms` and at once after a change it made itself.
//! * A shadow or canary result names the generation of the attachment it ran under; a
//!   guard rail rolls back only that generation.

pub mod comparison;
pub mod execution_replay;
pub mod recorder;
pub mod replay;
pub mod report;
pub mod settings;
mod shadow_pool;

pub use comparison::Comparison;
pub use settings::ChallengerSettings;

use crate::audit::AuditSink;
use crate::db::challenger_results::{ChallengerResult, SideResult};
use crate::db::challengers::{ChallengerMode, ChallengerRecord};
use crate::db::{Db, DbError, ScoreInput};
use crate::domain::{now_ms, Lead, Score};
use crate::plugins::Registry;
use crate::runtime::{CallError, LoadedPlugin};
use arc_swap::ArcSwap;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to do for one scoring call of a strategy.
#[derive(Debug, Clone)]
pub enum Plan {
    /// No active challenger: the champion alone.
    Champion,
    /// Score with the champion; then, off the response path, with the challenger.
    Shadow(Arc<ChallengerRecord>),
    /// Canary: this lead is served by the challenger (`true`) or the champion.
    Canary(Arc<ChallengerRecord>, bool),
}

/// Where a scoring call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    Job,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Job => "job",
        }
    }
}

/// A challenger's run on one lead.
#[derive(Debug, Clone)]
pub struct ChallengerRun {
    /// `plugin@version` (or the attachment's name when it could not be resolved).
    pub id: String,
    pub sha256: Option<String>,
    pub result: Result<Score, String>,
    /// `error` or `timeout` when `result` is an error.
    pub failure: &'static str,
    pub duration_us: i64,
}

impl ChallengerRun {
    /// The outcome column: `ok`, `error` or `timeout`.
    pub fn outcome(&self) -> &'static str {
        if self.result.is_ok() {
            "ok"
        } else {
            self.failure
        }
    }
}

/// A score as one side of a result.
pub fn side(plugin: &LoadedPlugin, score: &Score, elapsed: Duration) -> SideResult {
    SideResult {
        id: plugin.id().to_string(),
        sha256: plugin.sha256.clone(),
        score: score.value,
        priority: score.priority.as_str().to_string(),
        duration_us: elapsed.as_micros() as i64,
    }
}

/// A stored score as the champion's side of a replayed result.
pub fn side_of_stored(r: &crate::db::challenger_results::StoredForReplay) -> SideResult {
    SideResult {
        id: r.strategy.clone(),
        sha256: r.strategy_sha256.clone().unwrap_or_default(),
        score: r.score,
        priority: r.priority.clone(),
        duration_us: 0,
    }
}

/// `true` when `lead_id` falls in the first `share` of the hash space: the canary's
/// sticky split, the same on every replica and across restarts.
pub fn in_share(lead_id: &str, share: f64) -> bool {
    let h = sha2::Sha256::digest(lead_id.as_bytes());
    let x = u64::from_be_bytes(h[..8].try_into().unwrap_or([0; 8]));
    (x as f64 / u64::MAX as f64) < share
}

/// The live service: attachments, shadow slots, the results recorder.
pub struct Challengers {
    db: Db,
    registry: Arc<Registry>,
    settings: ChallengerSettings,
    attached: ArcSwap<HashMap<String, Arc<ChallengerRecord>>>,
    shadows: shadow_pool::ShadowPool,
    recorder: recorder::Handle,
}

impl Challengers {
    /// A service over `db` (no attachment read yet: see [`Challengers::start`]).
    pub fn new(
        db: Db,
        registry: Arc<Registry>,
        settings: ChallengerSettings,
        audit: AuditSink,
    ) -> Arc<Challengers> {
        let recorder = recorder::Handle::new(db.clone(), &settings, audit);
        Arc::new(Challengers {
            shadows: shadow_pool::ShadowPool::new(settings.max_concurrent_shadows),
            db,
            registry,
            settings,
            attached: ArcSwap::from_pointee(HashMap::new()),
            recorder,
        })
    }

    pub fn settings(&self) -> &ChallengerSettings {
        &self.settings
    }

    /// Reads the attachments, then starts the recorder and the poller (tasks that end
    /// when the service is dropped).
    pub async fn start(self: &Arc<Self>) -> Result<(), DbError> {
        self.refresh().await?;
        self.recorder.start(Arc::downgrade(self));
        let weak = Arc::downgrade(self);
        let every = Duration::from_millis(self.settings.poll_ms.max(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { break };
                if let Err(e) = this.refresh().await {
                    tracing::warn!(error = %e, "cannot read the strategy challengers; keeping the last ones read");
                }
            }
        });
        Ok(())
    }

    /// Reads the attachments from the database.
    pub async fn refresh(&self) -> Result<(), DbError> {
        let list = self.db.list_challengers().await?;
        let map = list
            .into_iter()
            .map(|r| (r.strategy.clone(), Arc::new(r)))
            .collect();
        self.attached.store(Arc::new(map));
        Ok(())
    }

    /// The attachment of `strategy` as this replica last read it.
    pub fn attachment(&self, strategy: &str) -> Option<Arc<ChallengerRecord>> {
        self.attached.load().get(strategy).cloned()
    }

    /// The plan for one call of `strategy` on `lead_id`.
    pub fn plan(&self, strategy: &str, lead_id: &str) -> Plan {
        let map = self.attached.load();
        let Some(att) = map.get(strategy) else {
            return Plan::Champion;
        };
        if !att.is_active() {
            return Plan::Champion;
        }
        match att.mode {
            ChallengerMode::Shadow => {
                if att.share >= 1.0 || rand::random::<f64>() < att.share {
                    Plan::Shadow(att.clone())
                } else {
                    Plan::Champion
                }
            }
            ChallengerMode::Canary => Plan::Canary(att.clone(), in_share(lead_id, att.share)),
        }
    }

    /// The challenger version `att` names, as this replica has it.
    pub fn resolve(&self, att: &ChallengerRecord) -> Result<Arc<LoadedPlugin>, String> {
        resolve_in(
            &self.registry,
            &att.challenger,
            att.challenger_version.as_deref(),
        )
    }

    /// Runs the challenger of `att` on `lead` on this thread (a blocking one).
    pub fn run_challenger(
        &self,
        att: &ChallengerRecord,
        lead: &Lead,
        request_id: Option<Arc<str>>,
    ) -> ChallengerRun {
        run_on(self.resolve(att), &att.challenger, lead, request_id)
    }

    /// Records one result (never blocks; a full buffer drops it and counts it).
    pub fn record(&self, r: ChallengerResult) {
        self.recorder.send(r);
    }

    /// Writes every buffered result now (tests, the comparison route, shutdown).
    pub async fn flush(&self) {
        self.recorder.flush().await;
    }

    /// A result row of `att` for `lead`.
    pub fn result(
        att: &ChallengerRecord,
        lead: &Lead,
        source: Source,
        served_by_challenger: bool,
        champion: Option<SideResult>,
        run: Option<&ChallengerRun>,
        request_id: Option<&str>,
    ) -> ChallengerResult {
        let input = ScoreInput::of(lead);
        let (score, priority) = match run.map(|r| &r.result) {
            Some(Ok(s)) => (Some(s.value), Some(s.priority.as_str().to_string())),
            _ => (None, None),
        };
        ChallengerResult {
            strategy: att.strategy.clone(),
            generation: att.generation,
            mode: att.mode,
            source: source.as_str().into(),
            served_by: if served_by_challenger {
                "challenger"
            } else {
                "champion"
            }
            .into(),
            lead_id: lead.id.clone(),
            input_sha256: input.sha256,
            lead_snapshot: input.lead_json,
            champion,
            challenger: run
                .map(|r| r.id.clone())
                .unwrap_or_else(|| att.challenger.clone()),
            challenger_sha256: run.and_then(|r| r.sha256.clone()),
            challenger_outcome: run.map(|r| r.outcome()).unwrap_or("not-run").into(),
            challenger_score: score,
            challenger_priority: priority,
            challenger_us: run.map(|r| r.duration_us),
            challenger_error: run.and_then(|r| r.result.as_ref().err().cloned()),
            request_id: request_id.map(str::to_string),
            created_at: now_ms(),
        }
    }

    /// Shadow-scores `lead` with `att`'s challenger off the response path, on a shadow
    /// thread (idle-priority) if one is free or about to be (else the sample is skipped
    /// and counted). Never fails, never waits.
    pub fn shadow(
        self: &Arc<Self>,
        att: Arc<ChallengerRecord>,
        lead: Lead,
        champion: SideResult,
        source: Source,
        request_id: Option<Arc<str>>,
    ) {
        let this = self.clone();
        let strategy = att.strategy.clone();
        let queued = self.shadows.try_run(Box::new(move || {
            let run = this.run_challenger(&att, &lead, request_id.clone());
            let row = Self::result(
                &att,
                &lead,
                source,
                false,
                Some(champion),
                Some(&run),
                request_id.as_deref(),
            );
            this.record(row);
        }));
        if !queued {
            metrics::counter!("challenger_shadow_skipped_total", "strategy" => strategy)
                .increment(1);
        }
    }

    /// Attachments as this replica last read them.
    pub fn attachments(&self) -> Vec<Arc<ChallengerRecord>> {
        let mut v: Vec<_> = self.attached.load().values().cloned().collect();
        v.sort_by(|a, b| a.strategy.cmp(&b.strategy));
        v
    }
}

/// The version `version` (or the live one) of plugin `name` in `registry`.
pub fn resolve_in(
    registry: &Registry,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<LoadedPlugin>, String> {
    let slot = registry
        .slot(name)
        .ok_or_else(|| format!("challenger {name} is not loaded on this replica"))?;
    if slot.is_disabled() {
        return Err(format!("challenger {name} is disabled by an operator"));
    }
    let live = slot.live();
    match version {
        None => live.ok_or_else(|| format!("challenger {name} has no live version")),
        Some(v) => {
            if let Some(p) = live.filter(|p| p.version() == v) {
                return Ok(p);
            }
            let kept = slot.history();
            kept.iter()
                .find(|(p, _)| p.version() == v)
                .map(|(p, _)| p.clone())
                .ok_or_else(|| {
                    format!(
                        "challenger {name}@{v} is not kept on this replica (kept: {})",
                        kept.iter()
                            .map(|(p, _)| p.version().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
        }
    }
}

/// Scores `lead` with a resolved challenger (or reports why it could not run).
pub fn run_on(
    plugin: Result<Arc<LoadedPlugin>, String>,
    name: &str,
    lead: &Lead,
    request_id: Option<Arc<str>>,
) -> ChallengerRun {
    let plugin = match plugin {
        Ok(p) => p,
        Err(e) => {
            return ChallengerRun {
                id: name.to_string(),
                sha256: None,
                result: Err(e),
                failure: "error",
                duration_us: 0,
            }
        }
    };
    let started = Instant::now();
    let r = plugin.score(lead, request_id);
    let elapsed = started.elapsed();
    crate::runtime::call_metrics(plugin.name(), &r, elapsed);
    let failure = match &r {
        Err(CallError::Deadline { .. }) | Err(CallError::Fuel { .. }) => "timeout",
        _ => "error",
    };
    ChallengerRun {
        id: plugin.id().to_string(),
        sha256: Some(plugin.sha256.clone()),
        result: r.map_err(|e| e.to_string()),
        failure,
        duration_us: elapsed.as_micros() as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_split_is_sticky_and_close_to_the_share() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("lead-{i}")).collect();
        let n = ids.iter().filter(|id| in_share(id, 0.2)).count();
        assert!((1800..2200).contains(&n), "{n} of 10000 in a 20% share");
        assert!(ids.iter().all(|id| in_share(id, 0.2) == in_share(id, 0.2)));
        // A larger share keeps every lead of a smaller one: growing a canary never moves
        // a lead back to the champion.
        assert!(ids
            .iter()
            .filter(|id| in_share(id, 0.2))
            .all(|id| in_share(id, 0.5)));
        assert!(ids.iter().all(|id| in_share(id, 1.0)));
    }
}
