//! Committing one layer run ([`Db::commit_layer_run`]): the guarded acknowledgement of
//! its delivery, the layer run, the events it emitted with their deliveries and its
//! buffered `state` writes, in one transaction.
//!
//! The commit is prepared (checked, ids and rows built) once, then written by the engine's
//! own code: on SQLite synchronously on a [`super::direct`] connection (one hop to a
//! blocking thread from async code, none from the orchestrator's layer thread); on
//! PostgreSQL through the sqlx pool, the run's row locked to number the layer runs.

use std::collections::HashSet;

use rusqlite::types::ValueRef;
use rusqlite::OptionalExtension;

use super::direct::{sqlite, WriteTx};
use super::error::q;
use super::events::{insert_event, non_empty, PreparedEvent};
use super::jobs::truncate_error;
use super::pipelines::{
    CommitOutcome, LayerRunCommit, LayerRunRecord, LayerRunResult, LayerRunStatus, PendingDelivery,
    StateEntry,
};
use super::{new_id, Db, DbError, Pool, Subscriber};
use crate::domain::now_ms;

const OP: &str = "commit_layer_run";

/// Acknowledges a pending delivery (binds: acked_at, event_id, subscriber).
const ACK_DELIVERY: &str = "UPDATE event_deliveries SET status = 'acked', acked_at = $1, \
     attempts = attempts + 1 WHERE event_id = $2 AND subscriber = $3 AND status = 'pending'";
/// Counts a failed attempt on a pending delivery (binds: status, last_error, event_id,
/// subscriber).
const FAIL_DELIVERY: &str = "UPDATE event_deliveries SET status = $1, last_error = $2, \
     attempts = attempts + 1 WHERE event_id = $3 AND subscriber = $4 AND status = 'pending'";
const INSERT_LAYER_RUN: &str = "INSERT INTO layer_runs (id, run_id, seq, layer, plugin, \
     container, event_id, topic, status, attempt, duration_ms, output, error, held_back, \
     started_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
     $14, $15, $16)";
/// SQLite: the run's next layer-run `seq`, no row for an unknown run. The transaction
/// holds the database's single write lock (`BEGIN IMMEDIATE`), so it is race-free.
const NEXT_SEQ_SQLITE: &str = "SELECT CAST((SELECT COALESCE(MAX(seq), 0) + 1 FROM layer_runs \
     WHERE run_id = $1) AS BIGINT) FROM pipeline_runs WHERE id = $1";
/// PostgreSQL: locks the run first, so its commits are serialised and its next `seq`
/// (read by the next statement, after the lock) is race-free.
const LOCK_RUN_POSTGRES: &str = "SELECT id FROM pipeline_runs WHERE id = $1 FOR UPDATE";
const NEXT_SEQ_POSTGRES: &str =
    "SELECT CAST(COALESCE(MAX(seq), 0) + 1 AS BIGINT) FROM layer_runs WHERE run_id = $1";
const UPSERT_STATE: &str = "INSERT INTO plugin_state (plugin, key, value, updated_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, \
     updated_at = excluded.updated_at";
const DELETE_STATE: &str = "DELETE FROM plugin_state WHERE plugin = $1 AND key = $2";
/// SQLite: a key's value now (the commit holds the write lock, so it cannot change before
/// the commit's own writes).
const READ_STATE: &str = "SELECT value FROM plugin_state WHERE plugin = $1 AND key = $2";
/// PostgreSQL: transaction-scoped advisory locks on the keys a commit reads or writes
/// (binds: plugins, keys), taken in one order so two commits cannot deadlock. Commits that
/// share a key are serialised from here to their end, so the check of the reads (next
/// statement) and the writes after it see no concurrent change, and a key absent when
/// checked cannot be created meanwhile.
const LOCK_STATE_POSTGRES: &str = "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT \
     hashtextextended(p || chr(31) || k, 0) AS h FROM unnest($1::text[], $2::text[]) AS t (p, k) \
     ORDER BY h) AS locks";
/// PostgreSQL: the stored values of (plugin, key) pairs (binds: plugins, keys).
const READ_STATES_POSTGRES: &str = "SELECT s.plugin, s.key, s.value FROM plugin_state s \
     JOIN unnest($1::text[], $2::text[]) AS t (p, k) ON s.plugin = t.p AND s.key = t.k";

fn check_commit(c: &LayerRunCommit) -> Result<(), DbError> {
    non_empty(OP, "run id", &c.run_id)?;
    non_empty(OP, "layer", &c.layer)?;
    non_empty(OP, "container", &c.container)?;
    non_empty(OP, "event id", &c.event_id)?;
    non_empty(OP, "topic", &c.topic)?;
    let bad = |reason: String| Err(DbError::InvalidInput { op: OP, reason });
    if c.attempt < 1 {
        return bad(format!("attempt must be at least 1, got {}", c.attempt));
    }
    if !(c.duration_ms.is_finite() && c.duration_ms >= 0.0) {
        return bad(format!(
            "duration_ms must be a non-negative number, got {}",
            c.duration_ms
        ));
    }
    for w in &c.state_writes {
        non_empty(OP, "state plugin", &w.plugin)?;
        if w.key.is_empty() {
            return bad("empty state key".into());
        }
    }
    Ok(())
}

/// A checked commit, ready to write.
struct Prepared {
    layer_run: LayerRunRecord,
    output_text: Option<String>,
    held_back_text: Option<String>,
    /// `Some(final_attempt)` for a failed layer run.
    failed: Option<bool>,
    emitted: Vec<PreparedEvent>,
    /// The last write of each key (PostgreSQL refuses to touch one row twice in a single
    /// `INSERT … ON CONFLICT`; deduplicating makes both engines keep the last), in order.
    upserts: Vec<StateEntry>,
    deletes: Vec<StateEntry>,
    /// The reads to check before writing (a succeeded commit only).
    reads: Vec<StateEntry>,
    now: i64,
}

impl Prepared {
    fn new(c: &LayerRunCommit) -> Result<Prepared, DbError> {
        check_commit(c)?;
        let now = now_ms();
        let (status, output, error, failed) = match &c.result {
            LayerRunResult::Succeeded { output, .. } => {
                (LayerRunStatus::Succeeded, Some(output.clone()), None, None)
            }
            LayerRunResult::Failed {
                error,
                final_attempt,
            } => (
                LayerRunStatus::Failed,
                None,
                Some(truncate_error(error).to_string()),
                Some(*final_attempt),
            ),
        };
        let mut emitted = Vec::new();
        if let LayerRunResult::Succeeded { emitted: evs, .. } = &c.result {
            for (ev, subs) in evs {
                emitted.push(PreparedEvent::new(
                    OP,
                    ev,
                    subs,
                    Some(&c.run_id),
                    Some(&c.event_id),
                    false,
                    now,
                )?);
            }
        }
        let layer_run = LayerRunRecord {
            id: new_id(),
            run_id: c.run_id.clone(),
            seq: 0,
            layer: c.layer.clone(),
            plugin: c.plugin.clone(),
            container: c.container.clone(),
            event_id: c.event_id.clone(),
            topic: c.topic.clone(),
            status,
            attempt: c.attempt,
            duration_ms: c.duration_ms,
            output,
            error,
            held_back: c.held_back.clone(),
            started_at: c.started_at,
            finished_at: c.finished_at,
        };
        let state_writes: &[StateEntry] = match failed {
            None => &c.state_writes,
            Some(_) => &[],
        };
        let mut seen = HashSet::new();
        let mut last: Vec<&StateEntry> = state_writes
            .iter()
            .rev()
            .filter(|w| seen.insert((w.plugin.as_str(), w.key.as_str())))
            .collect();
        last.reverse();
        let (upserts, deletes) = last.into_iter().cloned().partition(|w| w.value.is_some());
        let reads = match failed {
            None => c.state_reads.clone(),
            Some(_) => Vec::new(),
        };
        Ok(Prepared {
            output_text: match &c.result {
                LayerRunResult::Succeeded {
                    output_json: Some(text),
                    ..
                } => Some(text.clone()),
                _ => layer_run.output.as_ref().map(|v| v.to_string()),
            },
            held_back_text: layer_run.held_back.as_ref().map(|v| v.to_string()),
            layer_run,
            failed,
            emitted,
            upserts,
            deletes,
            reads,
            now,
        })
    }

    /// Turns a succeeded commit whose read of `key` is stale into a failed layer run that
    /// writes nothing of the layer's and leaves its delivery pending.
    fn stale_read(&mut self, plugin: &str, key: &str) {
        let lr = &mut self.layer_run;
        lr.status = LayerRunStatus::Failed;
        lr.output = None;
        lr.error = Some(format!(
            "state conflict: {plugin}'s key {key:?} changed after this layer run read it (a \
             concurrent run stored it); nothing of the run is kept and its delivery stays \
             pending, to run again on fresh reads"
        ));
        self.output_text = None;
        self.failed = Some(false);
        self.emitted.clear();
        self.upserts.clear();
        self.deletes.clear();
        self.reads.clear();
    }

    /// SQLite: the first read that no longer matches the stored value, if any.
    fn find_stale_sqlite(&self, tx: &rusqlite::Connection) -> Result<Option<usize>, DbError> {
        if self.reads.is_empty() {
            return Ok(None);
        }
        let mut st = tx.prepare_cached(READ_STATE).map_err(sqlite(OP))?;
        for (i, r) in self.reads.iter().enumerate() {
            let same = st
                .query_row((&r.plugin, &r.key), |row| {
                    Ok(match row.get_ref(0)? {
                        ValueRef::Blob(b) | ValueRef::Text(b) => Some(b) == r.value.as_deref(),
                        _ => false,
                    })
                })
                .optional()
                .map_err(sqlite(OP))?
                .unwrap_or(r.value.is_none());
            if !same {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// PostgreSQL: locks the keys the commit reads or writes, then returns the first read
    /// that no longer matches the stored value, if any.
    async fn find_stale_postgres(
        &self,
        tx: &mut sqlx::PgConnection,
    ) -> Result<Option<usize>, DbError> {
        let touched = || self.reads.iter().chain(&self.upserts).chain(&self.deletes);
        if touched().next().is_none() {
            return Ok(None);
        }
        let plugins: Vec<&str> = touched().map(|e| e.plugin.as_str()).collect();
        let keys: Vec<&str> = touched().map(|e| e.key.as_str()).collect();
        sqlx::query(LOCK_STATE_POSTGRES)
            .bind(&plugins)
            .bind(&keys)
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?;
        if self.reads.is_empty() {
            return Ok(None);
        }
        let n = self.reads.len();
        let stored: Vec<(String, String, Vec<u8>)> = sqlx::query_as(READ_STATES_POSTGRES)
            .bind(&plugins[..n])
            .bind(&keys[..n])
            .fetch_all(&mut *tx)
            .await
            .map_err(q(OP))?;
        // A few keys per layer run: scanned, no key copied to look it up.
        Ok(self.reads.iter().position(|r| {
            let now = stored
                .iter()
                .find(|(p, k, _)| *p == r.plugin && *k == r.key)
                .map(|(_, _, v)| v.as_slice());
            now != r.value.as_deref()
        }))
    }

    /// Checks the reads (see [`LayerRunCommit::state_reads`]); a stale one makes this a
    /// failed layer run.
    fn apply_stale(&mut self, stale: Option<usize>) {
        if let Some(i) = stale {
            let (plugin, key) = (self.reads[i].plugin.clone(), self.reads[i].key.clone());
            self.stale_read(&plugin, &key);
        }
    }

    fn unknown_run(&self) -> DbError {
        DbError::NotFound {
            op: OP,
            what: format!("run {}", self.layer_run.run_id),
        }
    }

    fn outcome(self, committed: bool) -> CommitOutcome {
        if !committed {
            return CommitOutcome::Duplicate;
        }
        let mut deliveries = Vec::new();
        for ev in &self.emitted {
            let mut subs: Vec<&Subscriber> = ev.subscribers.iter().collect();
            subs.sort_by(|a, b| a.layer.cmp(&b.layer));
            for s in subs {
                deliveries.push(PendingDelivery {
                    event: ev.rec.clone(),
                    payload_json: Some(ev.payload.clone()),
                    subscriber: s.layer.clone(),
                    container: s.container.clone(),
                    attempts: 0,
                });
            }
        }
        CommitOutcome::Committed {
            layer_run: self.layer_run,
            emitted: self.emitted.into_iter().map(|e| e.rec).collect(),
            deliveries,
        }
    }

    /// SQLite: writes the commit on `conn`; false (nothing written) if the delivery is no
    /// longer pending.
    fn write_sqlite(&mut self, conn: &mut rusqlite::Connection) -> Result<bool, DbError> {
        let tx = WriteTx::begin(conn).map_err(sqlite(OP))?;
        let stale = self.find_stale_sqlite(&tx)?;
        self.apply_stale(stale);
        let lr = &self.layer_run;
        // The guarded UPDATE first: a delivery acknowledged meanwhile writes nothing.
        let n = match self.failed {
            None => tx
                .prepare_cached(ACK_DELIVERY)
                .and_then(|mut st| st.execute((self.now, &lr.event_id, &lr.layer))),
            Some(final_attempt) => tx.prepare_cached(FAIL_DELIVERY).and_then(|mut st| {
                let status = if final_attempt { "failed" } else { "pending" };
                st.execute((status, &lr.error, &lr.event_id, &lr.layer))
            }),
        }
        .map_err(sqlite(OP))?;
        if n == 0 {
            return Ok(false); // the transaction rolls back when dropped
        }
        let seq: Option<i64> = tx
            .prepare_cached(NEXT_SEQ_SQLITE)
            .and_then(|mut st| st.query_row([&lr.run_id], |r| r.get(0)).optional())
            .map_err(sqlite(OP))?;
        let Some(seq) = seq else {
            return Err(self.unknown_run());
        };
        self.layer_run.seq = seq;
        let lr = &self.layer_run;
        tx.prepare_cached(INSERT_LAYER_RUN)
            .and_then(|mut st| {
                st.execute(rusqlite::params![
                    lr.id,
                    lr.run_id,
                    lr.seq,
                    lr.layer,
                    lr.plugin,
                    lr.container,
                    lr.event_id,
                    lr.topic,
                    lr.status.as_str(),
                    lr.attempt,
                    lr.duration_ms,
                    self.output_text,
                    lr.error,
                    self.held_back_text,
                    lr.started_at,
                    lr.finished_at,
                ])
            })
            .map_err(sqlite(OP))?;
        for ev in &mut self.emitted {
            ev.insert_sqlite(&tx, OP)?;
        }
        if !self.upserts.is_empty() {
            let mut st = tx.prepare_cached(UPSERT_STATE).map_err(sqlite(OP))?;
            for w in &self.upserts {
                st.execute((&w.plugin, &w.key, w.value.as_deref(), self.now))
                    .map_err(sqlite(OP))?;
            }
        }
        if !self.deletes.is_empty() {
            let mut st = tx.prepare_cached(DELETE_STATE).map_err(sqlite(OP))?;
            for w in &self.deletes {
                st.execute((&w.plugin, &w.key)).map_err(sqlite(OP))?;
            }
        }
        tx.commit().map_err(sqlite(OP))?;
        Ok(true)
    }

    /// PostgreSQL: writes the commit through the pool; false (nothing written) if the
    /// delivery is no longer pending.
    async fn write_postgres(&mut self, pool: &sqlx::PgPool) -> Result<bool, DbError> {
        let mut tx = pool.begin().await.map_err(q(OP))?;
        let stale = self.find_stale_postgres(&mut tx).await?;
        self.apply_stale(stale);
        // The guarded UPDATE first: it locks the delivery row, so a concurrent commit of
        // the same delivery waits, then finds it no longer pending.
        let guarded = match self.failed {
            None => sqlx::query(ACK_DELIVERY)
                .bind(self.now)
                .bind(self.layer_run.event_id.as_str())
                .bind(self.layer_run.layer.as_str()),
            Some(final_attempt) => sqlx::query(FAIL_DELIVERY)
                .bind(if final_attempt { "failed" } else { "pending" })
                .bind(self.layer_run.error.as_deref())
                .bind(self.layer_run.event_id.as_str())
                .bind(self.layer_run.layer.as_str()),
        };
        let n = guarded
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?
            .rows_affected();
        if n == 0 {
            tx.rollback().await.map_err(q(OP))?;
            return Ok(false);
        }
        let run_id = self.layer_run.run_id.as_str();
        let found: Option<String> = sqlx::query_scalar(LOCK_RUN_POSTGRES)
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(q(OP))?;
        if found.is_none() {
            return Err(self.unknown_run());
        }
        self.layer_run.seq = sqlx::query_scalar(NEXT_SEQ_POSTGRES)
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(q(OP))?;
        let lr = &self.layer_run;
        sqlx::query(INSERT_LAYER_RUN)
            .bind(lr.id.as_str())
            .bind(lr.run_id.as_str())
            .bind(lr.seq)
            .bind(lr.layer.as_str())
            .bind(lr.plugin.as_deref())
            .bind(lr.container.as_str())
            .bind(lr.event_id.as_str())
            .bind(lr.topic.as_str())
            .bind(lr.status.as_str())
            .bind(lr.attempt)
            .bind(lr.duration_ms)
            .bind(self.output_text.as_deref())
            .bind(lr.error.as_deref())
            .bind(self.held_back_text.as_deref())
            .bind(lr.started_at)
            .bind(lr.finished_at)
            .execute(&mut *tx)
            .await
            .map_err(q(OP))?;
        for ev in self.emitted.iter_mut() {
            insert_event!(pool, tx, ev, OP);
        }
        if !self.upserts.is_empty() {
            let mut b = super::builder(
                pool,
                "INSERT INTO plugin_state (plugin, key, value, updated_at) ",
            );
            let now = self.now;
            b.push_values(self.upserts.iter(), |mut row, w| {
                row.push_bind(w.plugin.as_str())
                    .push_bind(w.key.as_str())
                    .push_bind(w.value.as_deref().unwrap_or_default())
                    .push_bind(now);
            });
            b.push(
                " ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
            );
            b.build().execute(&mut *tx).await.map_err(q(OP))?;
        }
        for w in &self.deletes {
            sqlx::query(DELETE_STATE)
                .bind(w.plugin.as_str())
                .bind(w.key.as_str())
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
        }
        tx.commit().await.map_err(q(OP))?;
        Ok(true)
    }
}

impl Db {
    /// Record one layer run on the delivery of `c.event_id` to `c.layer`, in one
    /// transaction, only while that delivery is `pending`:
    ///
    /// * `Succeeded`: the delivery is `acked` (`attempts + 1`, `acked_at`), the layer run
    ///   stored (`seq` = the run's next), each emitted event stored (run id and causation
    ///   default to the commit's) with a `pending` delivery per subscriber, and the
    ///   layer's `state_writes` applied (the last write of a key wins); the new deliveries
    ///   are returned, so the executor need not read them back;
    /// * `Failed`: the layer run stored, the delivery's `attempts + 1` and `last_error`
    ///   set, and it goes `failed` if `final_attempt`, else stays `pending`; its
    ///   `state_writes` are dropped.
    ///
    /// A delivery that is no longer pending (or does not exist) writes nothing:
    /// [`CommitOutcome::Duplicate`]. [`DbError::NotFound`] (nothing written) for an
    /// unknown run;
    /// [`DbError::InvalidInput`] for empty names, `attempt < 1`, a bad duration or a bad
    /// emitted event; [`DbError::Constraint`] (nothing written) if an emitted event's
    /// caller-chosen id is already stored.
    ///
    /// On SQLite the transaction is a [`direct::Direct::write`](super::direct::Direct::write):
    /// right here inside `blocking_scope`, else on a blocking thread (it may wait for the
    /// write lock); from a blocking thread outside the scope call
    /// [`Db::commit_layer_run_blocking`] instead.
    pub async fn commit_layer_run(&self, c: &LayerRunCommit) -> Result<CommitOutcome, DbError> {
        let mut p = Prepared::new(c)?;
        let committed = match &self.pool {
            Pool::Sqlite(_, direct) => {
                let (committed, back) = direct
                    .write(OP, move |conn| {
                        let r = p.write_sqlite(conn);
                        Ok((r, p))
                    })
                    .await?;
                p = back;
                committed?
            }
            Pool::Postgres(pool) => p.write_postgres(pool).await?,
        };
        Ok(p.outcome(committed))
    }

    /// [`Db::commit_layer_run`] from a blocking thread inside the Tokio runtime (a
    /// layer's thread): on SQLite the transaction runs right here.
    pub fn commit_layer_run_blocking(&self, c: &LayerRunCommit) -> Result<CommitOutcome, DbError> {
        match self.direct() {
            Some(direct) => {
                let mut p = Prepared::new(c)?;
                let committed = direct.run(OP, |conn| p.write_sqlite(conn))?;
                Ok(p.outcome(committed))
            }
            None => tokio::runtime::Handle::current().block_on(self.commit_layer_run(c)),
        }
    }
}
