//! Aggregates over agent executions for the HTTP service's stats endpoint.

use super::error::q;
use super::{Backend, Db, DbError};

/// Latency percentiles use at most this many most recent finished runs (with a
/// `duration_ms`) per (agent, version); counts and sums use every run.
pub const LATENCY_SAMPLE_CAP: i64 = 10_000;

/// Statistics of one agent version over [`Db::execution_stats`]'s window.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ExecutionStats {
    pub agent: String,
    pub agent_version: String,
    /// Every run, finished or not.
    pub count: i64,
    /// Runs still `running`.
    pub running: i64,
    /// Runs with status `succeeded`.
    pub succeeded: i64,
    /// Finished runs with any other status (`failed`, `timeout`, …).
    pub failed: i64,
    /// `succeeded / (succeeded + failed)`; `None` before any run finished.
    pub success_rate: Option<f64>,
    /// Succeeded runs whose output says `"fallback_used": true`: the agent answered with
    /// its rule-based fallback, not the LLM.
    pub fallbacks: i64,
    /// `fallbacks / succeeded`; `None` before any run succeeded.
    pub fallback_rate: Option<f64>,
    /// Nearest-rank percentiles of `duration_ms` over finished runs (succeeded or not),
    /// at most the [`LATENCY_SAMPLE_CAP`] most recent; `None` without any duration.
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    /// How many durations the percentiles were computed from.
    pub latency_samples: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost: f64,
}

#[derive(sqlx::FromRow)]
struct AggRow {
    agent: String,
    agent_version: String,
    count: i64,
    running: i64,
    succeeded: i64,
    fallbacks: i64,
    tokens_in: i64,
    tokens_out: i64,
    cost: f64,
}

/// Nearest-rank percentile `p` (0–100) of ascending `sorted`.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Db {
    /// Per (agent, agent_version), ordered by both: run counts, success rate, latency
    /// percentiles, fallbacks, token and cost sums of the runs created at or after `since_ms`
    /// (all runs if `None`). Percentiles are computed here from the durations of at most
    /// [`LATENCY_SAMPLE_CAP`] most recent finished runs per group.
    pub async fn execution_stats(
        &self,
        since_ms: Option<i64>,
    ) -> Result<Vec<ExecutionStats>, DbError> {
        const OP: &str = "execution_stats";
        // The output is JSON text the host wrote; `fallback_used` is at its top level.
        let fell_back = match self.backend() {
            Backend::Sqlite => "json_valid(output) AND json_extract(output, '$.fallback_used') = 1",
            Backend::Postgres => "CAST(output AS jsonb) ->> 'fallback_used' = 'true'",
        };
        let sql = format!(
            "SELECT agent, agent_version, COUNT(*) AS count, \
             CAST(SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS BIGINT) AS running, \
             CAST(SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END) AS BIGINT) AS succeeded, \
             CAST(SUM(CASE WHEN status <> 'succeeded' OR output IS NULL THEN 0 \
                           WHEN {fell_back} THEN 1 ELSE 0 END) AS BIGINT) AS fallbacks, \
             CAST(COALESCE(SUM(tokens_in), 0) AS BIGINT) AS tokens_in, \
             CAST(COALESCE(SUM(tokens_out), 0) AS BIGINT) AS tokens_out, \
             CAST(COALESCE(SUM(cost), 0) AS DOUBLE PRECISION) AS cost \
             FROM agent_executions WHERE ($1 IS NULL OR created_at >= $1) \
             GROUP BY agent, agent_version ORDER BY agent, agent_version"
        );
        let aggs: Vec<AggRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(since_ms)
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        let durations: Vec<(String, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT agent, agent_version, duration_ms FROM (\
                 SELECT agent, agent_version, duration_ms, ROW_NUMBER() OVER (\
                 PARTITION BY agent, agent_version ORDER BY created_at DESC, id DESC) AS rn \
                 FROM agent_executions WHERE status <> 'running' AND duration_ms IS NOT NULL \
                 AND ($1 IS NULL OR created_at >= $1)) recent WHERE rn <= $2",
            )
            .bind(since_ms)
            .bind(LATENCY_SAMPLE_CAP)
            .fetch_all(pool)
            .await
            .map_err(q(OP))?
        });
        let mut by_group: std::collections::HashMap<(String, String), Vec<i64>> =
            std::collections::HashMap::new();
        for (agent, version, d) in durations {
            by_group.entry((agent, version)).or_default().push(d);
        }
        Ok(aggs
            .into_iter()
            .map(|a| {
                let mut d = by_group
                    .remove(&(a.agent.clone(), a.agent_version.clone()))
                    .unwrap_or_default();
                d.sort_unstable();
                let failed = a.count - a.running - a.succeeded;
                let finished = a.succeeded + failed;
                ExecutionStats {
                    success_rate: (finished > 0).then(|| a.succeeded as f64 / finished as f64),
                    fallbacks: a.fallbacks,
                    fallback_rate: (a.succeeded > 0)
                        .then(|| a.fallbacks as f64 / a.succeeded as f64),
                    p50_ms: percentile(&d, 50.0),
                    p95_ms: percentile(&d, 95.0),
                    p99_ms: percentile(&d, 99.0),
                    latency_samples: d.len() as i64,
                    agent: a.agent,
                    agent_version: a.agent_version,
                    count: a.count,
                    running: a.running,
                    succeeded: a.succeeded,
                    failed,
                    tokens_in: a.tokens_in,
                    tokens_out: a.tokens_out,
                    cost: a.cost,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[10, 20, 30, 40], 50.0), Some(20));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
