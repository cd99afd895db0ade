//! Reading runs back: one run with its layer runs and events ([`Db::get_run`]), the runs
//! of a pipeline ([`Db::list_runs`]) and its recent Φ_sync ([`Db::recent_phi`]).

use super::layer_runs::{LayerRunRecord, LayerRunRow, LAYER_RUN_COLUMNS};
use super::qualified;
use super::runs::{RunRecord, RunRow, RUN_COLUMNS};
use crate::db::error::q;
use crate::db::events::{
    with_deliveries, DeliveryRow, EventRow, EventWithDeliveries, DELIVERY_COLUMNS, EVENT_COLUMNS,
};
use crate::db::{clamp_limit, Db, DbError};

/// A run with its layer runs (by `seq`) and its events (by `seq`, with deliveries).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunRecord,
    pub layer_runs: Vec<LayerRunRecord>,
    pub events: Vec<EventWithDeliveries>,
}

impl Db {
    /// A run with its layer runs (by `seq`) and its events (by `seq`, each with its
    /// deliveries by subscriber).
    pub async fn get_run(&self, id: &str) -> Result<Option<RunDetail>, DbError> {
        const OP: &str = "get_run";
        let run_sql = format!("SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE id = $1");
        let lr_sql =
            format!("SELECT {LAYER_RUN_COLUMNS} FROM layer_runs WHERE run_id = $1 ORDER BY seq");
        let ev_sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE run_id = $1 ORDER BY seq");
        let del_sql = format!(
            "SELECT {} FROM event_deliveries d JOIN events e ON e.id = d.event_id \
             WHERE e.run_id = $1 ORDER BY e.seq, d.subscriber",
            qualified("d", DELIVERY_COLUMNS)
        );
        type Rows = (Vec<LayerRunRow>, Vec<EventRow>, Vec<DeliveryRow>);
        let (run, rows): (Option<RunRow>, Option<Rows>) = on_pool!(self, |pool| {
            let run: Option<RunRow> = sqlx::query_as(&run_sql)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?;
            if run.is_none() {
                (None, None)
            } else {
                let lr = sqlx::query_as(&lr_sql)
                    .bind(id)
                    .fetch_all(pool)
                    .await
                    .map_err(q(OP))?;
                let ev = sqlx::query_as(&ev_sql)
                    .bind(id)
                    .fetch_all(pool)
                    .await
                    .map_err(q(OP))?;
                let del = sqlx::query_as(&del_sql)
                    .bind(id)
                    .fetch_all(pool)
                    .await
                    .map_err(q(OP))?;
                (run, Some((lr, ev, del)))
            }
        });
        let (Some(run), Some((lr, ev, del))) = (run, rows) else {
            return Ok(None);
        };
        Ok(Some(RunDetail {
            run: run.into_record(OP)?,
            layer_runs: lr
                .into_iter()
                .map(|r| r.into_record(OP))
                .collect::<Result<_, _>>()?,
            events: with_deliveries(OP, ev, del)?,
        }))
    }

    /// Runs (of `pipeline` if given), newest first; `limit` 0 = 100, at most 10 000.
    pub async fn list_runs(
        &self,
        pipeline: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRecord>, DbError> {
        const OP: &str = "list_runs";
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE ($1 IS NULL OR pipeline = $1) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<RunRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(pipeline)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_record(OP)).collect()
    }

    /// Φ_sync of the newest finished runs of `pipeline` that have one, newest first, at
    /// most `limit` (0 = 100, at most 10 000).
    pub async fn recent_phi(&self, pipeline: &str, limit: i64) -> Result<Vec<f64>, DbError> {
        const OP: &str = "recent_phi";
        let rows: Vec<f64> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT phi_sync FROM pipeline_runs WHERE pipeline = $1 AND phi_sync IS NOT NULL \
                 AND finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT $2",
            )
            .bind(pipeline)
            .bind(clamp_limit(limit))
            .fetch_all(pool)
            .await
            .map_err(q(OP))?
        });
        Ok(rows)
    }
}
