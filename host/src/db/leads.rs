//! Leads: upsert by id, read, filter, count.

use std::collections::{BTreeMap, HashMap};

use crate::domain::{now_ms, Lead, LeadStatus};

use rusqlite::OptionalExtension;

use super::direct::{sqlite, WriteTx};
use super::error::q;
use super::{clamp_limit, Db, DbError, Pool};

/// Filter for [`Db::list_leads`] and [`Db::count_leads`]. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub status: Option<LeadStatus>,
    /// Exact match on `source`.
    pub source: Option<String>,
    /// Case-insensitive substring of name, email or company (ASCII case folding on
    /// SQLite; `%` and `_` are literal).
    pub search: Option<String>,
    /// 0 = default (100); at most 10 000.
    pub limit: i64,
    pub offset: i64,
}

/// A stored lead with its bookkeeping timestamps (ms since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRecord {
    pub lead: Lead,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What the stored leads say about one company ([`Db::company_facts`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CompanyFacts {
    /// Leads of the company.
    pub lead_count: i64,
    /// Ids of its most recently updated leads (at most the `max_ids` asked for).
    pub lead_ids: Vec<String>,
    /// Distinct industries (ASCII case-insensitively; the first spelling seen, most
    /// recently updated leads first; from at most `scan_limit` leads).
    pub industries: Vec<String>,
    /// The largest known employee count and annual revenue.
    pub employees: Option<i64>,
    pub annual_revenue: Option<f64>,
    /// Its leads with status `qualified`.
    pub qualified_count: i64,
}

/// A partial change of a stored lead ([`Db::update_lead`]): only the fields set change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadUpdate {
    pub status: Option<LeadStatus>,
    pub notes: Option<String>,
    /// Custom attributes merged into the stored ones: `Some(v)` sets a key, `None`
    /// removes it; keys not named are kept.
    pub attributes: BTreeMap<String, Option<String>>,
}

impl LeadUpdate {
    /// True when the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.notes.is_none() && self.attributes.is_empty()
    }
}

/// The columns of `leads`, in [`LeadRow`]'s order (a macro, for `concat!`).
macro_rules! lead_columns {
    () => {
        "id, name, email, company, title, industry, employees, annual_revenue, \
        budget, timeline, source, status, notes, attributes, created_at, updated_at"
    };
}
pub(crate) const COLUMNS: &str = lead_columns!();
const GET_LEAD: &str = concat!("SELECT ", lead_columns!(), " FROM leads WHERE id = $1");
/// Counts and maxima of a company's leads (bind: `lower(trim(company))`).
const COMPANY_AGGREGATE: &str = "SELECT CAST(COUNT(*) AS BIGINT), CAST(MAX(employees) AS BIGINT), \
     MAX(annual_revenue), \
     CAST(COALESCE(SUM(CASE WHEN status = 'qualified' THEN 1 ELSE 0 END), 0) AS BIGINT) \
     FROM leads WHERE lower(trim(company)) = $1";
/// Ids and industries of a company's most recently updated leads (binds: key, limit).
const COMPANY_LEADS: &str = "SELECT id, industry FROM leads WHERE lower(trim(company)) = $1 \
     ORDER BY updated_at DESC, id ASC LIMIT $2";
const READ_ATTRIBUTES: &str = "SELECT attributes FROM leads WHERE id = $1";
/// Changes status, notes and attributes (each when not NULL); with `$6`, only if the
/// stored attributes are still `$6` (an optimistic merge).
const UPDATE_LEAD: &str = "UPDATE leads SET status = COALESCE($2, status), \
    notes = COALESCE($3, notes), attributes = COALESCE($4, attributes), updated_at = $5 \
    WHERE id = $1 AND ($6 IS NULL OR attributes = $6)";
/// Inserts or replaces one lead on a direct SQLite connection (binds in `COLUMNS` order).
static UPSERT_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO leads ({COLUMNS}) VALUES ({}){ON_CONFLICT}",
        super::direct::placeholders(N_COLUMNS)
    )
});

/// The stored attributes (JSON) of lead `id` with `changes` merged in, as JSON.
fn merge_attributes(
    op: &'static str,
    id: &str,
    stored: &str,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<String, DbError> {
    let mut attrs: BTreeMap<String, String> =
        serde_json::from_str(stored).map_err(|e| DbError::Corrupt {
            op,
            reason: format!("lead {id}: attributes are not a JSON object of strings: {e}"),
        })?;
    for (k, v) in changes {
        match v {
            Some(v) => attrs.insert(k.clone(), v.clone()),
            None => attrs.remove(k),
        };
    }
    serde_json::to_string(&attrs).map_err(|e| DbError::InvalidInput {
        op,
        reason: format!("lead {id}: attributes: {e}"),
    })
}
pub(crate) const N_COLUMNS: usize = 16;
pub(crate) const ON_CONFLICT: &str = " ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
    email = excluded.email, company = excluded.company, title = excluded.title, \
    industry = excluded.industry, employees = excluded.employees, \
    annual_revenue = excluded.annual_revenue, budget = excluded.budget, \
    timeline = excluded.timeline, source = excluded.source, status = excluded.status, \
    notes = excluded.notes, attributes = excluded.attributes, updated_at = excluded.updated_at";

const FILTER: &str = " WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR source = $2) \
    AND ($3 IS NULL OR lower(COALESCE(name, '')) LIKE $3 ESCAPE '\\' \
    OR lower(COALESCE(email, '')) LIKE $3 ESCAPE '\\' \
    OR lower(COALESCE(company, '')) LIKE $3 ESCAPE '\\')";

/// Upsert prepared [`LeadValues`] inside transaction `$tx` of `$pool`, in chunks.
macro_rules! upsert_lead_rows {
    ($pool:ident, $tx:ident, $rows:expr, $chunk:expr, $now:expr, $op:expr) => {
        for part in $rows.chunks($chunk) {
            let mut qb = $crate::db::builder(
                $pool,
                format!("INSERT INTO leads ({}) ", $crate::db::leads::COLUMNS),
            );
            qb.push_values(part, |mut b, v| {
                let l = v.lead;
                b.push_bind(l.id.as_str())
                    .push_bind(l.name.as_deref())
                    .push_bind(l.email.as_deref())
                    .push_bind(l.company.as_deref())
                    .push_bind(l.title.as_deref())
                    .push_bind(l.industry.as_deref())
                    .push_bind(v.employees)
                    .push_bind($crate::db::leads::finite(l.annual_revenue))
                    .push_bind($crate::db::leads::finite(l.budget))
                    .push_bind(l.timeline.as_deref())
                    .push_bind(l.source.as_deref())
                    .push_bind(l.status.as_str())
                    .push_bind(l.notes.as_deref())
                    .push_bind(v.attributes.as_str())
                    .push_bind($now)
                    .push_bind($now);
            });
            qb.push($crate::db::leads::ON_CONFLICT);
            qb.build()
                .persistent(false)
                .execute(&mut *$tx)
                .await
                .map_err($crate::db::error::q($op))?;
        }
    };
}
pub(crate) use upsert_lead_rows;

#[derive(sqlx::FromRow)]
struct LeadRow {
    id: String,
    name: Option<String>,
    email: Option<String>,
    company: Option<String>,
    title: Option<String>,
    industry: Option<String>,
    employees: Option<i64>,
    annual_revenue: Option<f64>,
    budget: Option<f64>,
    timeline: Option<String>,
    source: Option<String>,
    status: String,
    notes: Option<String>,
    attributes: String,
    created_at: i64,
    updated_at: i64,
}

impl LeadRow {
    /// A row of `SELECT {COLUMNS}` read through a direct SQLite connection.
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<LeadRow> {
        Ok(LeadRow {
            id: r.get(0)?,
            name: r.get(1)?,
            email: r.get(2)?,
            company: r.get(3)?,
            title: r.get(4)?,
            industry: r.get(5)?,
            employees: r.get(6)?,
            annual_revenue: r.get(7)?,
            budget: r.get(8)?,
            timeline: r.get(9)?,
            source: r.get(10)?,
            status: r.get(11)?,
            notes: r.get(12)?,
            attributes: r.get(13)?,
            created_at: r.get(14)?,
            updated_at: r.get(15)?,
        })
    }

    fn into_record(self, op: &'static str) -> Result<LeadRecord, DbError> {
        let corrupt = |reason: String| DbError::Corrupt {
            op,
            reason: format!("lead {}: {reason}", self.id),
        };
        let status: LeadStatus = self.status.parse().map_err(|e| corrupt(format!("{e}")))?;
        let attributes: BTreeMap<String, String> = serde_json::from_str(&self.attributes)
            .map_err(|e| corrupt(format!("attributes are not a JSON object of strings: {e}")))?;
        let employees = match self.employees {
            Some(n) => {
                Some(u32::try_from(n).map_err(|_| corrupt(format!("employees {n} out of range")))?)
            }
            None => None,
        };
        Ok(LeadRecord {
            lead: Lead {
                id: self.id,
                name: self.name,
                email: self.email,
                company: self.company,
                title: self.title,
                industry: self.industry,
                employees,
                annual_revenue: self.annual_revenue,
                budget: self.budget,
                timeline: self.timeline,
                source: self.source,
                status,
                notes: self.notes,
                attributes,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Non-finite numbers are stored as NULL on both engines (SQLite cannot store NaN).
pub(crate) fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

fn search_pattern(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Prepared row values of one lead (owned, so binds can borrow them).
pub(crate) struct LeadValues<'a> {
    pub(crate) lead: &'a Lead,
    pub(crate) employees: Option<i64>,
    pub(crate) attributes: String,
}

pub(crate) fn prepare<'a>(
    op: &'static str,
    leads: &'a [Lead],
) -> Result<Vec<LeadValues<'a>>, DbError> {
    // Keep the last occurrence of each id: PostgreSQL refuses to touch one row twice in a
    // single INSERT … ON CONFLICT, SQLite would keep the last; deduplicating makes both
    // keep the last.
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(leads.len());
    for (i, lead) in leads.iter().enumerate() {
        if lead.id.trim().is_empty() {
            return Err(DbError::InvalidInput {
                op,
                reason: format!("lead #{i} has an empty id"),
            });
        }
        last.insert(lead.id.as_str(), i);
    }
    let mut out = Vec::with_capacity(last.len());
    for (i, lead) in leads.iter().enumerate() {
        if last[lead.id.as_str()] != i {
            continue;
        }
        let attributes =
            serde_json::to_string(&lead.attributes).map_err(|e| DbError::InvalidInput {
                op,
                reason: format!("lead {}: attributes: {e}", lead.id),
            })?;
        out.push(LeadValues {
            lead,
            employees: lead.employees.map(i64::from),
            attributes,
        });
    }
    Ok(out)
}

impl Db {
    /// Facts about the company named `company` (compared as `lower(trim(company))`, the
    /// expression of index `leads_company_idx`: ASCII case and surrounding spaces do not
    /// matter) from its stored leads: counts and maxima aggregated in SQL, ids and
    /// industries from its `scan_limit` most recently updated leads.
    pub async fn company_facts(
        &self,
        company: &str,
        max_ids: usize,
        scan_limit: i64,
    ) -> Result<CompanyFacts, DbError> {
        const OP: &str = "company_facts";
        let key = company.trim().to_lowercase();
        type Agg = (i64, Option<i64>, Option<f64>, i64);
        let (agg, rows): (Agg, Vec<(String, Option<String>)>) = match &self.pool {
            // Reads: on this thread (they never wait for a writer in WAL mode).
            Pool::Sqlite(_, direct) => direct.run(OP, |c| {
                let agg: Agg = c
                    .prepare_cached(COMPANY_AGGREGATE)
                    .and_then(|mut st| {
                        st.query_row([key.as_str()], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                        })
                    })
                    .map_err(sqlite(OP))?;
                let mut rows = Vec::new();
                if agg.0 > 0 {
                    let mut st = c.prepare_cached(COMPANY_LEADS).map_err(sqlite(OP))?;
                    let it = st
                        .query_map((key.as_str(), clamp_limit(scan_limit)), |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                        .map_err(sqlite(OP))?;
                    for row in it {
                        rows.push(row.map_err(sqlite(OP))?);
                    }
                }
                Ok((agg, rows))
            })?,
            Pool::Postgres(pool) => {
                let agg: Agg = sqlx::query_as(COMPANY_AGGREGATE)
                    .bind(key.as_str())
                    .fetch_one(pool)
                    .await
                    .map_err(q(OP))?;
                let rows = if agg.0 == 0 {
                    Vec::new()
                } else {
                    sqlx::query_as(COMPANY_LEADS)
                        .bind(key.as_str())
                        .bind(clamp_limit(scan_limit))
                        .fetch_all(pool)
                        .await
                        .map_err(q(OP))?
                };
                (agg, rows)
            }
        };
        let mut industries: Vec<String> = Vec::new();
        for i in rows
            .iter()
            .filter_map(|(_, i)| i.as_deref().map(str::trim).filter(|i| !i.is_empty()))
        {
            if !industries.iter().any(|x| x.eq_ignore_ascii_case(i)) {
                industries.push(i.to_string());
            }
        }
        Ok(CompanyFacts {
            lead_count: agg.0,
            lead_ids: rows.into_iter().take(max_ids).map(|(id, _)| id).collect(),
            industries,
            employees: agg.1,
            annual_revenue: agg.2,
            qualified_count: agg.3,
        })
    }

    /// Insert a lead, or update every field of the stored lead with the same id
    /// (`created_at` is kept, `updated_at` set to now).
    pub async fn upsert_lead(&self, lead: &Lead) -> Result<(), DbError> {
        self.upsert_leads_op("upsert_lead", std::slice::from_ref(lead))
            .await
            .map(|_| ())
    }

    /// [`Db::upsert_lead`] for many leads in one transaction (multi-row statements).
    /// When an id occurs more than once, the last occurrence wins. Returns the number of
    /// distinct leads written.
    pub async fn upsert_leads(&self, leads: &[Lead]) -> Result<u64, DbError> {
        self.upsert_leads_op("upsert_leads", leads).await
    }

    async fn upsert_leads_op(&self, op: &'static str, leads: &[Lead]) -> Result<u64, DbError> {
        let now = now_ms();
        match &self.pool {
            // One transaction of single-row statements (prepared once) on a direct
            // connection.
            Pool::Sqlite(_, direct) => {
                let leads = leads.to_vec();
                direct
                    .write(op, move |c| {
                        let rows = prepare(op, &leads)?;
                        let tx = WriteTx::begin(c).map_err(sqlite(op))?;
                        {
                            let mut st = tx.prepare_cached(&UPSERT_ONE).map_err(sqlite(op))?;
                            for v in &rows {
                                let l = v.lead;
                                st.execute(rusqlite::params![
                                    l.id,
                                    l.name,
                                    l.email,
                                    l.company,
                                    l.title,
                                    l.industry,
                                    v.employees,
                                    finite(l.annual_revenue),
                                    finite(l.budget),
                                    l.timeline,
                                    l.source,
                                    l.status.as_str(),
                                    l.notes,
                                    v.attributes,
                                    now,
                                    now
                                ])
                                .map_err(sqlite(op))?;
                            }
                        }
                        tx.commit().map_err(sqlite(op))?;
                        Ok(rows.len() as u64)
                    })
                    .await
            }
            Pool::Postgres(pool) => {
                let rows = prepare(op, leads)?;
                if rows.is_empty() {
                    return Ok(0);
                }
                let chunk = self.rows_per_statement(N_COLUMNS);
                let mut tx = crate::db::begin_write(pool).await.map_err(q(op))?;
                upsert_lead_rows!(pool, tx, rows, chunk, now, op);
                tx.commit().await.map_err(q(op))?;
                Ok(rows.len() as u64)
            }
        }
    }

    /// The lead with this id.
    pub async fn get_lead(&self, id: &str) -> Result<Option<Lead>, DbError> {
        Ok(self.get_lead_record(id).await?.map(|r| r.lead))
    }

    /// The lead with this id and its timestamps.
    pub async fn get_lead_record(&self, id: &str) -> Result<Option<LeadRecord>, DbError> {
        const OP: &str = "get_lead";
        let row: Option<LeadRow> = match &self.pool {
            // A read: on this thread (it never waits for a writer in WAL mode).
            Pool::Sqlite(_, direct) => direct.run(OP, |c| {
                c.prepare_cached(GET_LEAD)
                    .and_then(|mut st| st.query_row([id], LeadRow::from_sqlite).optional())
                    .map_err(sqlite(OP))
            })?,
            Pool::Postgres(pool) => sqlx::query_as(GET_LEAD)
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(q(OP))?,
        };
        row.map(|r| r.into_record(OP)).transpose()
    }

    /// Leads matching `filter`, most recently updated first (then by id).
    pub async fn list_leads(&self, filter: &LeadFilter) -> Result<Vec<Lead>, DbError> {
        Ok(self
            .list_lead_records(filter)
            .await?
            .into_iter()
            .map(|r| r.lead)
            .collect())
    }

    /// [`Db::list_leads`] with timestamps.
    pub async fn list_lead_records(&self, filter: &LeadFilter) -> Result<Vec<LeadRecord>, DbError> {
        const OP: &str = "list_leads";
        let sql = format!(
            "SELECT {COLUMNS} FROM leads{FILTER} ORDER BY updated_at DESC, id ASC LIMIT $4 OFFSET $5"
        );
        let status = filter.status.map(|s| s.as_str());
        let search = filter
            .search
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(search_pattern);
        let rows: Vec<LeadRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(status)
                .bind(filter.source.as_deref())
                .bind(search.as_deref())
                .bind(clamp_limit(filter.limit))
                .bind(filter.offset.max(0))
                .fetch_all(pool)
                .await
                .map_err(q(OP))?
        });
        rows.into_iter().map(|r| r.into_record(OP)).collect()
    }

    /// Number of leads matching `filter` (its `limit`/`offset` are ignored).
    pub async fn count_leads(&self, filter: &LeadFilter) -> Result<i64, DbError> {
        const OP: &str = "count_leads";
        let sql = format!("SELECT COUNT(*) FROM leads{FILTER}");
        let status = filter.status.map(|s| s.as_str());
        let search = filter
            .search
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(search_pattern);
        let n: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(&sql)
                .bind(status)
                .bind(filter.source.as_deref())
                .bind(search.as_deref())
                .fetch_one(pool)
                .await
                .map_err(q(OP))?
        });
        Ok(n)
    }

    /// Change some fields of a stored lead ([`LeadUpdate`]; `updated_at` set to now) and
    /// return it as stored afterwards; `None` if there is no lead with this id.
    ///
    /// The attribute merge is a compare-and-set on the stored attributes (same SQL on
    /// both engines, no lock held between the read and the write): a concurrent change
    /// of the attributes makes it re-read and merge again, so no update is lost.
    pub async fn update_lead(
        &self,
        id: &str,
        update: &LeadUpdate,
    ) -> Result<Option<LeadRecord>, DbError> {
        const OP: &str = "update_lead";
        const ATTEMPTS: usize = 32;
        if let Pool::Sqlite(_, direct) = &self.pool {
            // One write transaction: read, merge and write without a race.
            let (id, update) = (id.to_string(), update.clone());
            return direct
                .write(OP, move |c| {
                    let tx = WriteTx::begin(c).map_err(sqlite(OP))?;
                    let stored: Option<String> = tx
                        .prepare_cached(READ_ATTRIBUTES)
                        .and_then(|mut st| st.query_row([&id], |r| r.get(0)).optional())
                        .map_err(sqlite(OP))?;
                    let Some(stored) = stored else {
                        return Ok(None);
                    };
                    let merged = (!update.attributes.is_empty())
                        .then(|| merge_attributes(OP, &id, &stored, &update.attributes))
                        .transpose()?;
                    let row = tx
                        .prepare_cached(UPDATE_LEAD)
                        .and_then(|mut st| {
                            // By name: the placeholders do not appear in number order.
                            st.execute(rusqlite::named_params! {
                                "$1": id,
                                "$2": update.status.map(|s| s.as_str()),
                                "$3": update.notes,
                                "$4": merged,
                                "$5": now_ms(),
                                "$6": None::<String>,
                            })?;
                            tx.prepare_cached(GET_LEAD)?
                                .query_row([&id], LeadRow::from_sqlite)
                        })
                        .map_err(sqlite(OP))?;
                    tx.commit().map_err(sqlite(OP))?;
                    row.into_record(OP).map(Some)
                })
                .await;
        }
        for _ in 0..ATTEMPTS {
            // Read the stored attributes only when they are to be merged.
            let (new_attrs, old_attrs) = if update.attributes.is_empty() {
                (None, None)
            } else {
                let stored: Option<String> = on_pool!(self, |pool| {
                    sqlx::query_scalar(READ_ATTRIBUTES)
                        .bind(id)
                        .fetch_optional(pool)
                        .await
                        .map_err(q(OP))?
                });
                let Some(stored) = stored else {
                    return Ok(None);
                };
                let merged = merge_attributes(OP, id, &stored, &update.attributes)?;
                (Some(merged), Some(stored))
            };
            let n = on_pool!(self, |pool| {
                sqlx::query(UPDATE_LEAD)
                    .bind(id)
                    .bind(update.status.map(|s| s.as_str()))
                    .bind(update.notes.as_deref())
                    .bind(new_attrs.as_deref())
                    .bind(now_ms())
                    .bind(old_attrs.as_deref())
                    .execute(pool)
                    .await
                    .map_err(q(OP))?
                    .rows_affected()
            });
            if n > 0 || old_attrs.is_none() {
                // Done, or (without a merge) no such lead.
                return self.get_lead_record(id).await;
            }
            // The attributes changed since they were read (or the lead is gone): again.
        }
        Err(DbError::InvalidInput {
            op: OP,
            reason: format!("lead {id}: attributes kept changing concurrently; gave up after {ATTEMPTS} attempts"),
        })
    }

    /// Delete a lead (and, by cascade, its scores). True if it existed.
    pub async fn delete_lead(&self, id: &str) -> Result<bool, DbError> {
        const OP: &str = "delete_lead";
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM leads WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map_err(q(OP))?
                .rows_affected()
        });
        Ok(n > 0)
    }
}
