//! Durable events and their per-subscriber deliveries: the event tracking of containers.
//!
//! An event is one row of `events` (container, topic, JSON payload, producer, run id,
//! dry-run flag, causation); `seq` is its place in the global order. Each layer that
//! subscribes to it gets one row of `event_deliveries` (`pending` → `acked`, or `failed`
//! after its last attempt): delivery is at least once, and a consumer that crashed before
//! acknowledging gets the event again. Events are written together with the run or layer
//! run that produced them (see [`super::pipelines`]); this module reads them back.
//!
//! `seq` comes from the engine's auto-increment: on PostgreSQL a transaction that commits
//! later may hold a smaller `seq` than one already visible, so paging by `seq`
//! ([`Db::read_events`], [`Db::container_events`]) is an at-most-once view for readers that
//! race writers; the deliveries are the at-least-once mechanism.

use std::collections::HashMap;
use std::sync::Arc;

use super::direct::sqlite;
use super::error::q;
use super::{Db, DbError};

/// Largest page [`Db::container_events`] and [`Db::read_events`] return.
pub const MAX_EVENTS_PAGE: i64 = 500;

/// An event to store.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewEvent {
    pub container: String,
    pub topic: String,
    pub payload: serde_json::Value,
    /// `plugin@version`, or `api`, `webhook:<name>`.
    pub producer: String,
    pub run_id: Option<String>,
    pub dry_run: bool,
    /// The event whose handling produced this one.
    pub causation_id: Option<String>,
    /// A caller-chosen id (uuid v7 text), or `None` to generate one. Storing an id twice
    /// is a [`DbError::Constraint`] (duplicates are detected by event id).
    pub id: Option<String>,
    /// The JSON text `payload` was parsed from, when the caller has it: stored as is
    /// instead of serialising `payload` again (a layer's events arrive as text).
    #[serde(skip)]
    pub payload_json: Option<Arc<str>>,
}

impl NewEvent {
    /// An event of `producer` on `topic` in `container`, no run, not dry-run, no
    /// causation, generated id.
    pub fn new(
        container: impl Into<String>,
        topic: impl Into<String>,
        payload: serde_json::Value,
        producer: impl Into<String>,
    ) -> Self {
        NewEvent {
            container: container.into(),
            topic: topic.into(),
            payload,
            producer: producer.into(),
            run_id: None,
            dry_run: false,
            causation_id: None,
            id: None,
            payload_json: None,
        }
    }
}

/// A layer that receives an event, and the container it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Subscriber {
    /// The layer plugin's name.
    pub layer: String,
    pub container: String,
}

impl Subscriber {
    pub fn new(layer: impl Into<String>, container: impl Into<String>) -> Self {
        Subscriber {
            layer: layer.into(),
            container: container.into(),
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRecord {
    pub seq: i64,
    pub id: String,
    pub container: String,
    pub topic: String,
    pub payload: serde_json::Value,
    /// Milliseconds since the Unix epoch.
    pub emitted_at: i64,
    pub producer: String,
    pub run_id: Option<String>,
    pub dry_run: bool,
    pub causation_id: Option<String>,
}

/// Where one subscriber's delivery of an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not acknowledged yet (possibly after failed attempts).
    Pending,
    /// Handled by the subscriber.
    Acked,
    /// The subscriber's last attempt failed.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: &'static [DeliveryStatus] = &[
        DeliveryStatus::Pending,
        DeliveryStatus::Acked,
        DeliveryStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Acked => "acked",
            DeliveryStatus::Failed => "failed",
        }
    }
}

super::text_enum!(DeliveryStatus, "unknown delivery status", "");

/// One subscriber's delivery of an event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliveryRecord {
    pub event_id: String,
    /// The subscribing layer's name.
    pub subscriber: String,
    /// The subscriber's container.
    pub container: String,
    pub run_id: Option<String>,
    pub status: DeliveryStatus,
    /// Attempts made so far (failed ones and the acknowledged one).
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub acked_at: Option<i64>,
}

/// An event and its deliveries (ordered by subscriber).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventWithDeliveries {
    #[serde(flatten)]
    pub event: EventRecord,
    pub deliveries: Vec<DeliveryRecord>,
}

/// Event tracking of one container ([`Db::containers_summary`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerSummary {
    pub container: String,
    /// Events emitted in the container.
    pub events: i64,
    /// Deliveries to the container's layers still pending / failed.
    pub pending_deliveries: i64,
    pub failed_deliveries: i64,
    /// When the newest event of the container was emitted.
    pub last_event_at: Option<i64>,
    /// Layer runs in the container, and how many of them failed.
    pub layer_runs: i64,
    pub layer_runs_failed: i64,
}

pub(super) const EVENT_COLUMNS: &str =
    "seq, id, container, topic, payload, emitted_at, producer, run_id, dry_run, causation_id";

pub(super) const DELIVERY_COLUMNS: &str = "event_id, subscriber, container, run_id, status, \
    attempts, last_error, created_at, acked_at";

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    seq: i64,
    id: String,
    container: String,
    topic: String,
    pub(super) payload: String,
    emitted_at: i64,
    producer: String,
    run_id: Option<String>,
    dry_run: bool,
    causation_id: Option<String>,
}

impl EventRow {
    /// `EVENT_COLUMNS` from column `at` on of a row read through a direct SQLite
    /// connection.
    pub(super) fn from_sqlite(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<EventRow> {
        Ok(EventRow {
            seq: r.get(at)?,
            id: r.get(at + 1)?,
            container: r.get(at + 2)?,
            topic: r.get(at + 3)?,
            payload: r.get(at + 4)?,
            emitted_at: r.get(at + 5)?,
            producer: r.get(at + 6)?,
            run_id: r.get(at + 7)?,
            dry_run: r.get(at + 8)?,
            causation_id: r.get(at + 9)?,
        })
    }

    pub(super) fn into_record(self, op: &'static str) -> Result<EventRecord, DbError> {
        let payload = serde_json::from_str(&self.payload).map_err(|e| DbError::Corrupt {
            op,
            reason: format!("event {}: payload: {e}", self.id),
        })?;
        Ok(EventRecord {
            seq: self.seq,
            id: self.id,
            container: self.container,
            topic: self.topic,
            payload,
            emitted_at: self.emitted_at,
            producer: self.producer,
            run_id: self.run_id,
            dry_run: self.dry_run,
            causation_id: self.causation_id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DeliveryRow {
    event_id: String,
    subscriber: String,
    container: String,
    run_id: Option<String>,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: i64,
    acked_at: Option<i64>,
}

impl DeliveryRow {
    pub(super) fn into_record(self, op: &'static str) -> Result<DeliveryRecord, DbError> {
        let status = self.status.parse().map_err(|reason| DbError::Corrupt {
            op,
            reason: format!(
                "delivery of event {} to {}: {reason}",
                self.event_id, self.subscriber
            ),
        })?;
        Ok(DeliveryRecord {
            event_id: self.event_id,
            subscriber: self.subscriber,
            container: self.container,
            run_id: self.run_id,
            status,
            attempts: self.attempts,
            last_error: self.last_error,
            created_at: self.created_at,
            acked_at: self.acked_at,
        })
    }
}

/// Attach deliveries to their events (events keep their order; deliveries of events not
/// in `events` are ignored).
pub(super) fn with_deliveries(
    op: &'static str,
    events: Vec<EventRow>,
    deliveries: Vec<DeliveryRow>,
) -> Result<Vec<EventWithDeliveries>, DbError> {
    let mut out = Vec::with_capacity(events.len());
    let mut index = HashMap::with_capacity(events.len());
    for row in events {
        let event = row.into_record(op)?;
        index.insert(event.id.clone(), out.len());
        out.push(EventWithDeliveries {
            event,
            deliveries: Vec::new(),
        });
    }
    for row in deliveries {
        if let Some(&i) = index.get(&row.event_id) {
            out[i].deliveries.push(row.into_record(op)?);
        }
    }
    Ok(out)
}

/// [`DbError::InvalidInput`] when `v` is empty or blank.
pub(super) fn non_empty(op: &'static str, what: &str, v: &str) -> Result<(), DbError> {
    if v.trim().is_empty() {
        return Err(DbError::InvalidInput {
            op,
            reason: format!("empty {what}"),
        });
    }
    Ok(())
}

/// A page size: 0 or less = the default (100), at most [`MAX_EVENTS_PAGE`].
fn page_limit(limit: i64) -> i64 {
    if limit <= 0 {
        100
    } else {
        limit.min(MAX_EVENTS_PAGE)
    }
}

/// An event checked and ready to insert with its deliveries (see [`insert_event`]).
pub(super) struct PreparedEvent {
    pub(super) rec: EventRecord,
    /// The payload's JSON text.
    pub(super) payload: Arc<str>,
    /// Distinct by layer.
    pub(super) subscribers: Vec<Subscriber>,
}

impl PreparedEvent {
    /// Inserts the event (its `seq` is set from the database) and a `pending` delivery
    /// per subscriber, inside the transaction on direct SQLite connection `tx`.
    pub(super) fn insert_sqlite(
        &mut self,
        tx: &rusqlite::Connection,
        op: &'static str,
    ) -> Result<(), DbError> {
        let r = &self.rec;
        tx.prepare_cached(INSERT_EVENT_SQLITE)
            .and_then(|mut st| {
                st.execute(rusqlite::params![
                    r.id,
                    r.container,
                    r.topic,
                    &*self.payload,
                    r.emitted_at,
                    r.producer,
                    r.run_id,
                    r.dry_run,
                    r.causation_id,
                ])
            })
            .map_err(sqlite(op))?;
        self.rec.seq = tx.last_insert_rowid();
        let mut st = tx.prepare_cached(INSERT_DELIVERY).map_err(sqlite(op))?;
        for s in &self.subscribers {
            st.execute((
                &self.rec.id,
                &s.layer,
                &s.container,
                &self.rec.run_id,
                self.rec.emitted_at,
            ))
            .map_err(sqlite(op))?;
        }
        Ok(())
    }

    /// Check `ev` and its subscribers and fix its id, run and causation (the event's own
    /// values win over `run_id` and `causation_id`); `seq` stays 0 until inserted. A layer
    /// named twice among the subscribers gets one delivery (the first).
    pub(super) fn new(
        op: &'static str,
        ev: &NewEvent,
        subscribers: &[Subscriber],
        run_id: Option<&str>,
        causation_id: Option<&str>,
        dry_run: bool,
        now: i64,
    ) -> Result<PreparedEvent, DbError> {
        non_empty(op, "event container", &ev.container)?;
        non_empty(op, "event topic", &ev.topic)?;
        non_empty(op, "event producer", &ev.producer)?;
        if let Some(id) = &ev.id {
            non_empty(op, "event id", id)?;
        }
        let mut subs: Vec<Subscriber> = Vec::with_capacity(subscribers.len());
        for s in subscribers {
            non_empty(op, "subscriber layer", &s.layer)?;
            non_empty(op, "subscriber container", &s.container)?;
            if !subs.iter().any(|x| x.layer == s.layer) {
                subs.push(s.clone());
            }
        }
        let rec = EventRecord {
            seq: 0,
            id: ev.id.clone().unwrap_or_else(super::new_id),
            container: ev.container.clone(),
            topic: ev.topic.clone(),
            payload: ev.payload.clone(),
            emitted_at: now,
            producer: ev.producer.clone(),
            run_id: ev.run_id.clone().or_else(|| run_id.map(str::to_string)),
            dry_run: ev.dry_run || dry_run,
            causation_id: ev
                .causation_id
                .clone()
                .or_else(|| causation_id.map(str::to_string)),
        };
        Ok(PreparedEvent {
            payload: ev
                .payload_json
                .clone()
                .unwrap_or_else(|| rec.payload.to_string().into()),
            rec,
            subscribers: subs,
        })
    }
}

/// Inserts an event (binds: id, container, topic, payload, emitted_at, producer, run_id,
/// dry_run, causation_id).
macro_rules! insert_event_sql {
    () => {
        "INSERT INTO events (id, container, topic, payload, emitted_at, producer, run_id, \
         dry_run, causation_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    };
}
/// `insert_event_sql!` returning the event's `seq` (PostgreSQL).
pub(super) const INSERT_EVENT: &str = concat!(insert_event_sql!(), " RETURNING seq");
/// `insert_event_sql!` on SQLite, where `seq` is the rowid, read back with
/// `last_insert_rowid` on the same connection: `RETURNING` would buffer its row in a
/// temporary b-tree, created and dropped per event.
const INSERT_EVENT_SQLITE: &str = insert_event_sql!();
/// Inserts one `pending` delivery (binds: event_id, subscriber, container, run_id,
/// created_at).
const INSERT_DELIVERY: &str =
    "INSERT INTO event_deliveries (event_id, subscriber, container, run_id, status, \
     attempts, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5)";

/// Insert `$ev` (a `&mut PreparedEvent`) and one `pending` delivery per subscriber inside
/// transaction `$tx` of `$pool`, and set its `seq`; `?` on failure, mapped with `q($op)`.
macro_rules! insert_event {
    ($pool:ident, $tx:ident, $ev:expr, $op:expr) => {{
        let ev: &mut $crate::db::events::PreparedEvent = $ev;
        let seq: i64 = sqlx::query_scalar($crate::db::events::INSERT_EVENT)
            .bind(ev.rec.id.as_str())
            .bind(ev.rec.container.as_str())
            .bind(ev.rec.topic.as_str())
            .bind(&*ev.payload)
            .bind(ev.rec.emitted_at)
            .bind(ev.rec.producer.as_str())
            .bind(ev.rec.run_id.as_deref())
            .bind(ev.rec.dry_run)
            .bind(ev.rec.causation_id.as_deref())
            .fetch_one(&mut *$tx)
            .await
            .map_err($crate::db::error::q($op))?;
        ev.rec.seq = seq;
        if !ev.subscribers.is_empty() {
            let rec = &ev.rec;
            let mut b = $crate::db::builder(
                $pool,
                "INSERT INTO event_deliveries (event_id, subscriber, container, run_id, status, \
                 attempts, created_at) ",
            );
            b.push_values(ev.subscribers.iter(), |mut row, s| {
                row.push_bind(rec.id.as_str())
                    .push_bind(s.layer.as_str())
                    .push_bind(s.container.as_str())
                    .push_bind(rec.run_id.as_deref())
                    .push_bind("pending")
                    .push_bind(0_i64)
                    .push_bind(rec.emitted_at);
            });
            b.build()
                .execute(&mut *$tx)
                .await
                .map_err($crate::db::error::q($op))?;
        }
    }};
}
pub(crate) use insert_event;

impl Db {
    /// One event with its deliveries.
    pub async fn get_event(&self, id: &str) -> Result<Option<EventWithDeliveries>, DbError> {
        const OP: &str = "get_event";
        let ev_sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1");
        let del_sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM event_deliveries WHERE event_id = $1 ORDER BY subscriber"
        );
        let (events, deliveries): (Vec<EventRow>, Vec<DeliveryRow>) = on_pool!(self, |pool| {
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
            (ev, del)
        });
        Ok(with_deliveries(OP, events, deliveries)?.into_iter().next())
    }

    /// Events emitted in `container` (of `topic` if given) with `seq > after_seq`, in
    /// ascending `seq`, each with its deliveries. `limit` 0 = 100, at most 500.
    pub async fn container_events(
        &self,
        container: &str,
        topic: Option<&str>,
        after_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<EventWithDeliveries>, DbError> {
        const OP: &str = "container_events";
        non_empty(OP, "container", container)?;
        const FILTER: &str =
            "e.container = $1 AND ($2 IS NULL OR e.topic = $2) AND ($3 IS NULL OR e.seq > $3)";
        let ev_sql =
            format!("SELECT {EVENT_COLUMNS} FROM events e WHERE {FILTER} ORDER BY e.seq LIMIT $4");
        let del_sql = format!(
            "SELECT d.event_id, d.subscriber, d.container, d.run_id, d.status, d.attempts, \
             d.last_error, d.created_at, d.acked_at FROM event_deliveries d \
             JOIN events e ON e.id = d.event_id WHERE {FILTER} AND e.seq <= $4 \
             ORDER BY e.seq, d.subscriber"
        );
        let (events, deliveries): (Vec<EventRow>, Vec<DeliveryRow>) = on_pool!(self, |pool| {
            let events: Vec<EventRow> = sqlx::query_as(&ev_sql)
                .bind(container)
                .bind(topic)
                .bind(after_seq)
                .bind(page_limit(limit))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?;
            let deliveries = match events.last() {
                None => Vec::new(),
                Some(last) => sqlx::query_as(&del_sql)
                    .bind(container)
                    .bind(topic)
                    .bind(after_seq)
                    .bind(last.seq)
                    .fetch_all(pool)
                    .await
                    .map_err(q(OP))?,
            };
            (events, deliveries)
        });
        with_deliveries(OP, events, deliveries)
    }

    /// Events of `topic` after the event `after_event_id` (by `seq`; from the first event
    /// when `None`), in ascending `seq`. `limit` 0 = 100, at most 500.
    /// [`DbError::NotFound`] when `after_event_id` names no stored event.
    pub async fn read_events(
        &self,
        topic: &str,
        after_event_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRecord>, DbError> {
        const OP: &str = "read_events";
        non_empty(OP, "topic", topic)?;
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE topic = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let rows: Vec<EventRow> = on_pool!(self, |pool| {
            let after: i64 = match after_event_id {
                None => 0,
                Some(id) => sqlx::query_scalar("SELECT seq FROM events WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(q(OP))?
                    .ok_or_else(|| DbError::NotFound {
                        op: OP,
                        what: format!("event {id}"),
                    })?,
            };
            sqlx::query_as(&sql)
                .bind(topic)
                .bind(after)
                .bind(page_limit(limit))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_record(OP)).collect()
    }

    /// Event tracking per container, over all events, deliveries and layer runs: events
    /// emitted in the container (`events.container`), deliveries to its layers
    /// (`event_deliveries.container`) still pending or failed, its layer runs
    /// (`layer_runs.container`) and how many failed. Sorted by container.
    pub async fn containers_summary(&self) -> Result<Vec<ContainerSummary>, DbError> {
        const OP: &str = "containers_summary";
        const SQL: &str = "SELECT container, CAST(SUM(ev) AS BIGINT), CAST(SUM(pend) AS BIGINT), \
             CAST(SUM(fail) AS BIGINT), MAX(last_at), CAST(SUM(lr) AS BIGINT), \
             CAST(SUM(lrf) AS BIGINT) FROM ( \
               SELECT container, COUNT(*) AS ev, 0 AS pend, 0 AS fail, MAX(emitted_at) AS last_at, \
                      0 AS lr, 0 AS lrf FROM events GROUP BY container \
               UNION ALL \
               SELECT container, 0, SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), \
                      SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), NULL, 0, 0 \
                 FROM event_deliveries GROUP BY container \
               UNION ALL \
               SELECT container, 0, 0, 0, NULL, COUNT(*), \
                      SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) \
                 FROM layer_runs GROUP BY container \
             ) t GROUP BY container ORDER BY container";
        type Row = (String, i64, i64, i64, Option<i64>, i64, i64);
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(SQL).fetch_all(pool).await.map_err(q(OP))?
        });
        Ok(rows
            .into_iter()
            .map(
                |(container, events, pending, failed, last, layer_runs, lr_failed)| {
                    ContainerSummary {
                        container,
                        events,
                        pending_deliveries: pending,
                        failed_deliveries: failed,
                        last_event_at: last,
                        layer_runs,
                        layer_runs_failed: lr_failed,
                    }
                },
            )
            .collect())
    }
}
