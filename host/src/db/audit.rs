//! Capability audit log: one row per call a plugin makes through a host capability,
//! allowed or denied.

use super::error::q;
use super::{builder, clamp_limit, Db, DbError};

/// One capability call to record — or, with `count` > 1, a summary of identical calls
/// of one plugin call past its audit cap (see `audit::CallAudit`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub plugin: String,
    pub plugin_version: String,
    /// Capability interface, e.g. `llm`, `mcp`, `state`, `crm-read`.
    pub capability: String,
    /// Function called, e.g. `complete`, `call-tool`, `get`.
    pub operation: String,
    /// What it touched: tool, model, table, key.
    pub target: Option<String>,
    pub allowed: bool,
    /// Why it was denied, or a short note.
    pub detail: Option<String>,
    pub duration_us: i64,
    pub tokens_in: Option<i64>,
    pub tokens_out: Option<i64>,
    pub cost_usd: Option<f64>,
    pub request_id: Option<String>,
    /// Calls this record stands for: 1, or more for a summary (then `duration_us`,
    /// tokens and cost are sums, and `at` is the first summarised call's time).
    pub count: i64,
}

impl Default for AuditRecord {
    fn default() -> Self {
        AuditRecord {
            at: 0,
            plugin: String::new(),
            plugin_version: String::new(),
            capability: String::new(),
            operation: String::new(),
            target: None,
            allowed: false,
            detail: None,
            duration_us: 0,
            tokens_in: None,
            tokens_out: None,
            cost_usd: None,
            request_id: None,
            count: 1,
        }
    }
}

/// A stored audit row: its sequence number and the record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAudit {
    pub id: i64,
    pub record: AuditRecord,
}

/// Filter for [`Db::list_audit`]; empty fields match everything. `since_ms` inclusive,
/// `until_ms` exclusive.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub plugin: Option<String>,
    pub capability: Option<String>,
    pub allowed: Option<bool>,
    pub request_id: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// 0 = default (100); at most 10 000.
    pub limit: i64,
    /// Keyset paging: only rows older than this `(at, id)` (the last row of the page
    /// before), in the listing's order.
    pub before: Option<(i64, i64)>,
}

/// Calls of one plugin by capability, target and outcome ([`Db::audit_usage`]).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditUsage {
    pub capability: String,
    pub target: Option<String>,
    pub allowed: bool,
    /// Calls (summary rows count as many as they stand for).
    pub calls: i64,
}

const INSERT_COLUMNS: &str = "at, plugin, plugin_version, capability, operation, target, allowed, \
    detail, duration_us, tokens_in, tokens_out, cost_usd, request_id, count";
const N_INSERT_COLUMNS: usize = 14;

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    at: i64,
    plugin: String,
    plugin_version: String,
    capability: String,
    operation: String,
    target: Option<String>,
    allowed: bool,
    detail: Option<String>,
    duration_us: i64,
    tokens_in: Option<i64>,
    tokens_out: Option<i64>,
    cost_usd: Option<f64>,
    request_id: Option<String>,
    count: i64,
}

impl From<Row> for StoredAudit {
    fn from(r: Row) -> StoredAudit {
        StoredAudit {
            id: r.id,
            record: AuditRecord {
                at: r.at,
                plugin: r.plugin,
                plugin_version: r.plugin_version,
                capability: r.capability,
                operation: r.operation,
                target: r.target,
                allowed: r.allowed,
                detail: r.detail,
                duration_us: r.duration_us,
                tokens_in: r.tokens_in,
                tokens_out: r.tokens_out,
                cost_usd: r.cost_usd,
                request_id: r.request_id,
                count: r.count,
            },
        }
    }
}

impl Db {
    /// Append audit records in one transaction (multi-row `INSERT`s). Returns how many.
    /// Non-finite costs are stored as NULL.
    pub async fn insert_audit(&self, records: &[AuditRecord]) -> Result<u64, DbError> {
        const OP: &str = "insert_audit";
        if records.is_empty() {
            return Ok(0);
        }
        let chunk = self.rows_per_statement(N_INSERT_COLUMNS);
        on_pool!(self, |pool| {
            let mut tx = crate::db::begin_write(pool).await.map_err(q(OP))?;
            for part in records.chunks(chunk) {
                let mut qb = builder(
                    pool,
                    format!("INSERT INTO capability_audit ({INSERT_COLUMNS}) "),
                );
                qb.push_values(part, |mut b, r| {
                    b.push_bind(r.at)
                        .push_bind(r.plugin.as_str())
                        .push_bind(r.plugin_version.as_str())
                        .push_bind(r.capability.as_str())
                        .push_bind(r.operation.as_str())
                        .push_bind(r.target.as_deref())
                        .push_bind(r.allowed)
                        .push_bind(r.detail.as_deref())
                        .push_bind(r.duration_us)
                        .push_bind(r.tokens_in)
                        .push_bind(r.tokens_out)
                        .push_bind(r.cost_usd.filter(|c| c.is_finite()))
                        .push_bind(r.request_id.as_deref())
                        .push_bind(r.count);
                });
                qb.build()
                    .persistent(false)
                    .execute(&mut *tx)
                    .await
                    .map_err(q(OP))?;
            }
            tx.commit().await.map_err(q(OP))?;
        });
        Ok(records.len() as u64)
    }

    /// Audit rows matching `filter`, newest first.
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<StoredAudit>, DbError> {
        const OP: &str = "list_audit";
        let sql = format!(
            "SELECT id, {INSERT_COLUMNS} FROM capability_audit \
             WHERE ($1 IS NULL OR plugin = $1) AND ($2 IS NULL OR capability = $2) \
             AND ($3 IS NULL OR allowed = $3) AND ($4 IS NULL OR request_id = $4) \
             AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) \
             AND ($8 IS NULL OR at < $8 OR (at = $8 AND id < $9)) \
             ORDER BY at DESC, id DESC LIMIT $7"
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(filter.plugin.as_deref())
                .bind(filter.capability.as_deref())
                .bind(filter.allowed)
                .bind(filter.request_id.as_deref())
                .bind(filter.since_ms)
                .bind(filter.until_ms)
                .bind(clamp_limit(filter.limit))
                .bind(filter.before.map(|b| b.0))
                .bind(filter.before.map(|b| b.1))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        Ok(rows.into_iter().map(StoredAudit::from).collect())
    }

    /// What `plugin` actually did since `since_ms`: its calls by capability, target and
    /// outcome (allowed or denied), most frequent first, at most `limit` groups.
    pub async fn audit_usage(
        &self,
        plugin: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<AuditUsage>, DbError> {
        const OP: &str = "audit_usage";
        let rows: Vec<AuditUsage> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT capability, target, allowed, CAST(SUM(count) AS BIGINT) AS calls \
                 FROM capability_audit WHERE plugin = $1 AND at >= $2 \
                 GROUP BY capability, target, allowed \
                 ORDER BY calls DESC, capability, target LIMIT $3",
            )
            .bind(plugin)
            .bind(since_ms)
            .bind(clamp_limit(limit))
            .fetch_all(pool)
            .await
            .map_err(q(OP))?
        });
        Ok(rows)
    }

    /// Delete audit rows older than `before_ms` (retention). Returns how many.
    pub async fn prune_audit(&self, before_ms: i64) -> Result<u64, DbError> {
        const OP: &str = "prune_audit";
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM capability_audit WHERE at < $1")
                .bind(before_ms)
                .execute(pool)
                .await
                .map_err(q(OP))?
                .rows_affected()
        });
        Ok(n)
    }
}
