//! The statements of an executor carrying a run out: [`Db::start_run`], the run's
//! [`Db::pending_deliveries`], its [`Db::run_progress`] (to start or resume it), its
//! [`Db::run_container_counts`] (the terms of Φ_sync) and [`Db::finish_run`]. On SQLite
//! they run on the direct connections (reads on the calling thread).

use std::sync::LazyLock;

use rusqlite::OptionalExtension;

use super::layer_runs::PendingDelivery;
use super::qualified;
use super::runs::{RunRecord, RunRow, RunStatus, RUN_COLUMNS};
use crate::db::direct::sqlite;
use crate::db::error::q;
use crate::db::events::{EventRow, EVENT_COLUMNS};
use crate::db::jobs::truncate_error;
use crate::db::{clamp_limit, Db, DbError, Pool};
use crate::domain::now_ms;

/// A run and how many layer runs it has so far ([`Db::run_progress`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunProgress {
    pub run: RunRecord,
    pub layer_runs: i64,
    pub failed_layer_runs: i64,
}

/// What one run did in one container ([`Db::run_container_counts`]), the terms of Φ_sync.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerCounts {
    pub container: String,
    /// Layer runs of the run in this container, and how many succeeded.
    pub layer_runs: i64,
    pub layer_runs_succeeded: i64,
    /// Events of the run emitted in this container, and how many have every delivery
    /// acknowledged (an event without subscribers counts as acknowledged).
    pub events_emitted: i64,
    pub events_fully_acked: i64,
}

impl Db {
    /// Mark a `queued` (or already `running`) run `running`; `started_at` is set the first
    /// time. False if the run is unknown or finished.
    pub async fn start_run(&self, run_id: &str) -> Result<bool, DbError> {
        const OP: &str = "start_run";
        const SQL: &str = "UPDATE pipeline_runs SET status = 'running', \
             started_at = COALESCE(started_at, $1) WHERE id = $2 AND status IN ('queued', 'running')";
        let now = now_ms();
        let n = match &self.pool {
            Pool::Sqlite(_, direct) => {
                let run_id = run_id.to_string();
                direct
                    .write(OP, move |c| {
                        c.prepare_cached(SQL)
                            .and_then(|mut st| st.execute((now, run_id)))
                            .map_err(sqlite(OP))
                    })
                    .await? as u64
            }
            Pool::Postgres(pool) => sqlx::query(SQL)
                .bind(now)
                .bind(run_id)
                .execute(pool)
                .await
                .map_err(q(OP))?
                .rows_affected(),
        };
        Ok(n > 0)
    }

    /// Finish a `queued` or `running` run with a final `status`, its Φ_sync and error
    /// (cut to 8 KiB); `finished_at` = now. False if the run is unknown or already
    /// finished. [`DbError::InvalidInput`] for a status that is not final or a Φ_sync
    /// outside 0–1.
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        phi_sync: Option<f64>,
        error: Option<&str>,
    ) -> Result<bool, DbError> {
        const OP: &str = "finish_run";
        if !status.is_final() {
            return Err(DbError::InvalidInput {
                op: OP,
                reason: format!("a run cannot finish as {status}"),
            });
        }
        if let Some(phi) = phi_sync {
            if !(phi.is_finite() && (0.0..=1.0).contains(&phi)) {
                return Err(DbError::InvalidInput {
                    op: OP,
                    reason: format!("phi_sync {phi} is not within 0–1"),
                });
            }
        }
        const SQL: &str = "UPDATE pipeline_runs SET status = $1, phi_sync = $2, error = $3, \
             finished_at = $4 WHERE id = $5 AND status IN ('queued', 'running')";
        let error = error.map(truncate_error);
        let now = now_ms();
        let n = match &self.pool {
            Pool::Sqlite(_, direct) => {
                let (run_id, error) = (run_id.to_string(), error.map(str::to_string));
                direct
                    .write(OP, move |c| {
                        c.prepare_cached(SQL)
                            .and_then(|mut st| {
                                st.execute((status.as_str(), phi_sync, error, now, run_id))
                            })
                            .map_err(sqlite(OP))
                    })
                    .await? as u64
            }
            Pool::Postgres(pool) => sqlx::query(SQL)
                .bind(status.as_str())
                .bind(phi_sync)
                .bind(error)
                .bind(now)
                .bind(run_id)
                .execute(pool)
                .await
                .map_err(q(OP))?
                .rows_affected(),
        };
        Ok(n > 0)
    }

    /// Deliveries of the run still `pending`, by event `seq` then subscriber, at most
    /// `limit` (0 = 100, at most 10 000).
    pub async fn pending_deliveries(
        &self,
        run_id: &str,
        limit: i64,
    ) -> Result<Vec<PendingDelivery>, DbError> {
        const OP: &str = "pending_deliveries";
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            event: EventRow,
            d_subscriber: String,
            d_container: String,
            d_attempts: i64,
        }
        // Built once: it runs twice per pipeline run.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {}, d.subscriber AS d_subscriber, d.container AS d_container, \
                 d.attempts AS d_attempts FROM events e \
                 JOIN event_deliveries d ON d.event_id = e.id WHERE e.run_id = $1 \
                 AND d.status = 'pending' ORDER BY e.seq, d.subscriber LIMIT $2",
                qualified("e", EVENT_COLUMNS)
            )
        });
        let sql = SQL.as_str();
        let rows: Vec<Row> = match &self.pool {
            // A read: on this thread (it never waits for a writer in WAL mode).
            Pool::Sqlite(_, direct) => direct.run(OP, |c| {
                let mut st = c.prepare_cached(sql).map_err(sqlite(OP))?;
                let rows = st
                    .query_map((run_id, clamp_limit(limit)), |r| {
                        Ok(Row {
                            event: EventRow::from_sqlite(r, 0)?,
                            d_subscriber: r.get(10)?,
                            d_container: r.get(11)?,
                            d_attempts: r.get(12)?,
                        })
                    })
                    .map_err(sqlite(OP))?;
                rows.collect::<Result<Vec<Row>, _>>().map_err(sqlite(OP))
            })?,
            Pool::Postgres(pool) => sqlx::query_as(sql)
                .bind(run_id)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?,
        };
        rows.into_iter()
            .map(|r| {
                Ok(PendingDelivery {
                    payload_json: Some(r.event.payload.as_str().into()),
                    event: r.event.into_record(OP)?,
                    subscriber: r.d_subscriber,
                    container: r.d_container,
                    attempts: r.d_attempts,
                })
            })
            .collect()
    }

    /// A run and the number of its layer runs, and of the failed ones, in one query
    /// (what an executor needs to start or resume it); `None` for an unknown run.
    pub async fn run_progress(&self, id: &str) -> Result<Option<RunProgress>, DbError> {
        const OP: &str = "run_progress";
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            run: RunRow,
            lr: i64,
            lr_failed: i64,
        }
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {RUN_COLUMNS}, \
                 CAST((SELECT COUNT(*) FROM layer_runs WHERE run_id = $1) AS BIGINT) AS lr, \
                 CAST((SELECT COUNT(*) FROM layer_runs WHERE run_id = $1 AND status = 'failed') \
                 AS BIGINT) AS lr_failed FROM pipeline_runs WHERE id = $1"
            )
        });
        let sql = SQL.as_str();
        let row: Option<Row> = match &self.pool {
            // A read: on this thread (it never waits for a writer in WAL mode).
            Pool::Sqlite(_, direct) => direct.run(OP, |c| {
                c.prepare_cached(sql)
                    .and_then(|mut st| {
                        st.query_row([id], |r| {
                            Ok(Row {
                                run: RunRow::from_sqlite(r)?,
                                lr: r.get(12)?,
                                lr_failed: r.get(13)?,
                            })
                        })
                        .optional()
                    })
                    .map_err(sqlite(OP))
            })?,
            Pool::Postgres(pool) => sqlx::query_as(sql)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?,
        };
        row.map(|r| {
            Ok(RunProgress {
                run: r.run.into_record(OP)?,
                layer_runs: r.lr,
                failed_layer_runs: r.lr_failed,
            })
        })
        .transpose()
    }

    /// Per container the run touched (in its layer runs or its events), sorted by name:
    /// its layer runs there (`layer_runs.container`) and how many succeeded, and the
    /// run's events emitted there (`events.container`) and how many have no delivery
    /// that is not `acked` (an event without subscribers counts as acknowledged). The
    /// terms of Φ_sync; empty for an unknown run.
    pub async fn run_container_counts(
        &self,
        run_id: &str,
    ) -> Result<Vec<ContainerCounts>, DbError> {
        const OP: &str = "run_container_counts";
        const SQL: &str = "SELECT container, CAST(SUM(lr) AS BIGINT), CAST(SUM(lrs) AS BIGINT), \
             CAST(SUM(ev) AS BIGINT), CAST(SUM(eva) AS BIGINT) FROM ( \
               SELECT container, 1 AS lr, \
                      CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END AS lrs, 0 AS ev, 0 AS eva \
                 FROM layer_runs WHERE run_id = $1 \
               UNION ALL \
               SELECT e.container, 0, 0, 1, \
                      CASE WHEN EXISTS (SELECT 1 FROM event_deliveries d \
                                        WHERE d.event_id = e.id AND d.status <> 'acked') \
                           THEN 0 ELSE 1 END \
                 FROM events e WHERE e.run_id = $1 \
             ) t GROUP BY container ORDER BY container";
        let rows: Vec<(String, i64, i64, i64, i64)> = match &self.pool {
            // A read: on this thread (it never waits for a writer in WAL mode).
            Pool::Sqlite(_, direct) => direct.run(OP, |c| {
                let mut st = c.prepare_cached(SQL).map_err(sqlite(OP))?;
                let rows = st
                    .query_map([run_id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(sqlite(OP))?;
                rows.collect::<Result<Vec<_>, _>>().map_err(sqlite(OP))
            })?,
            Pool::Postgres(pool) => sqlx::query_as(SQL)
                .bind(run_id)
                .fetch_all(pool)
                .await
                .map_err(q(OP))?,
        };
        Ok(rows
            .into_iter()
            .map(
                |(
                    container,
                    layer_runs,
                    layer_runs_succeeded,
                    events_emitted,
                    events_fully_acked,
                )| {
                    ContainerCounts {
                        container,
                        layer_runs,
                        layer_runs_succeeded,
                        events_emitted,
                        events_fully_acked,
                    }
                },
            )
            .collect())
    }
}
