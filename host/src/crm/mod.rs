//! The CRM's lead and score operations: one service that every door calls — the HTTP
//! routes (`server::routes::leads`, `scoring`) and Strata's own MCP server ([`mcp`], also
//! reached in process by the `builtin` MCP transport) — so a lead is validated, merged,
//! listed and queued for qualification one way whichever door it came through.
//!
//! Invariants:
//! * Every lead stored through this module passed [`validate_lead`].
//! * A qualify job is enqueued only for a stored lead, with a non-empty strategy, under
//!   [`crate::db::jobs::kinds::QUALIFY`].

pub mod error;
pub mod mcp;

pub use error::CrmError;

use crate::db::jobs::kinds;
use crate::db::leads::{CompanyFacts, LeadUpdate};
use crate::db::{Db, JobRecord, LeadFilter, NewJob};
use crate::domain::{Lead, StoredScore};

/// Longest lead id, in characters (Unicode scalar values, as JSON Schema counts them).
pub const MAX_LEAD_ID_CHARS: usize = 200;

/// Checks a lead before it is stored: id of 1–200 characters, not only blanks (space,
/// tab, line breaks), money fields finite and not negative, and no NUL character in any
/// text (PostgreSQL cannot store one; refused on SQLite alike). The one rule for every
/// door (single, bulk, MCP, `/api/v1/score`); the OpenAPI schema of `Lead` says the same.
pub fn validate_lead(l: &Lead) -> Result<(), CrmError> {
    let blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c');
    if l.id.chars().all(blank) || l.id.chars().count() > MAX_LEAD_ID_CHARS {
        return Err(CrmError::invalid(format!(
            "lead id must be 1-{MAX_LEAD_ID_CHARS} characters, not only blanks"
        )));
    }
    for (what, v) in [("budget", l.budget), ("annual_revenue", l.annual_revenue)] {
        if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
            return Err(CrmError::invalid(format!(
                "{what} must be a non-negative number"
            )));
        }
    }
    let texts = [
        ("id", Some(&l.id)),
        ("name", l.name.as_ref()),
        ("email", l.email.as_ref()),
        ("company", l.company.as_ref()),
        ("title", l.title.as_ref()),
        ("industry", l.industry.as_ref()),
        ("timeline", l.timeline.as_ref()),
        ("source", l.source.as_ref()),
        ("notes", l.notes.as_ref()),
    ];
    for (what, v) in texts {
        if v.is_some_and(|v| v.contains('\0')) {
            return Err(CrmError::invalid(format!(
                "{what} must not contain a NUL character"
            )));
        }
    }
    for (k, v) in &l.attributes {
        if k.contains('\0') || v.contains('\0') {
            return Err(CrmError::invalid(format!(
                "attribute {:?} must not contain a NUL character",
                k.replace('\0', "\\0")
            )));
        }
    }
    Ok(())
}

/// A request to qualify one stored lead in the background.
#[derive(Debug, Clone)]
pub struct QualifyRequest {
    pub lead_id: String,
    /// The strategy already resolved by [`crate::config::Config::qualify_strategy`].
    pub strategy: String,
    /// Who asked (API key name, `mcp`), stored in the job's payload.
    pub requested_by: String,
    pub request_id: Option<String>,
    pub max_attempts: i64,
}

/// The lead and score operations over one database (cheap to clone).
#[derive(Debug, Clone)]
pub struct Crm {
    db: Db,
}

impl Crm {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The stored lead, or [`CrmError::NotFound`].
    pub async fn lead(&self, id: &str) -> Result<Lead, CrmError> {
        if id.contains('\0') {
            // No stored lead has one (validate_lead); PostgreSQL could not even compare it.
            return Err(CrmError::no_lead(id));
        }
        self.db
            .get_lead(id)
            .await?
            .ok_or_else(|| CrmError::no_lead(id))
    }

    /// One page of leads and the count of all that match.
    pub async fn list_leads(&self, filter: &LeadFilter) -> Result<(Vec<Lead>, i64), CrmError> {
        let items = self.db.list_leads(filter).await?;
        let total = self.db.count_leads(filter).await?;
        Ok((items, total))
    }

    /// Creates or replaces one lead.
    pub async fn put_lead(&self, lead: &Lead) -> Result<(), CrmError> {
        validate_lead(lead)?;
        Ok(self.db.upsert_lead(lead).await?)
    }

    /// Creates or replaces many leads, all or nothing: one invalid lead rejects the
    /// batch, naming its line (`lines[i]` is where lead `i` starts in its file).
    pub async fn put_leads(&self, leads: &[Lead], lines: &[u64]) -> Result<u64, CrmError> {
        for (i, l) in leads.iter().enumerate() {
            validate_lead(l).map_err(|e| match lines.get(i) {
                Some(line) => CrmError::invalid(format!("line {line}: {e}")),
                None => e,
            })?;
        }
        Ok(self.db.upsert_leads(leads).await?)
    }

    /// Merges the fields given in `patch` (a JSON object of [`Lead`] fields other than
    /// `status` and `attributes`) into the stored lead `id`, or creates it. Returns the
    /// lead as stored and whether it was created.
    pub async fn merge_lead(
        &self,
        id: &str,
        patch: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(Lead, bool), CrmError> {
        if let Some(k) = patch
            .keys()
            .find(|k| matches!(k.as_str(), "id" | "status" | "attributes"))
        {
            return Err(CrmError::invalid(format!(
                "{k} cannot be merged: use update_lead for status and attributes; id names the lead"
            )));
        }
        let existing = self.db.get_lead(id).await?;
        let created = existing.is_none();
        let base = existing.unwrap_or_else(|| Lead {
            id: id.to_string(),
            ..Lead::default()
        });
        let mut merged = match serde_json::to_value(&base) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Err(CrmError::invalid("cannot encode the stored lead")),
        };
        for (k, v) in patch {
            if !v.is_null() {
                merged.insert(k.clone(), v.clone());
            }
        }
        let lead: Lead = serde_json::from_value(serde_json::Value::Object(merged))
            .map_err(|e| CrmError::invalid(format!("invalid lead field: {e}")))?;
        self.put_lead(&lead).await?;
        Ok((lead, created))
    }

    /// Changes a lead's status, notes and/or attributes (nothing else).
    pub async fn update_lead(&self, id: &str, update: &LeadUpdate) -> Result<Lead, CrmError> {
        if update.is_empty() {
            return Err(CrmError::invalid(
                "nothing to update: give status, notes or attributes",
            ));
        }
        if let Some(k) = update.attributes.keys().find(|k| k.trim().is_empty()) {
            return Err(CrmError::invalid(format!(
                "attribute name {k:?} must not be empty"
            )));
        }
        self.db
            .update_lead(id, update)
            .await?
            .map(|rec| rec.lead)
            .ok_or_else(|| CrmError::no_lead(id))
    }

    /// Facts about a company from the stored leads (at most `max_ids` lead ids listed,
    /// industries read from at most `max_leads` leads).
    pub async fn company(
        &self,
        name: &str,
        max_ids: usize,
        max_leads: i64,
    ) -> Result<CompanyFacts, CrmError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(CrmError::invalid("company must be 1-200 characters"));
        }
        Ok(self.db.company_facts(name, max_ids, max_leads).await?)
    }

    /// The latest stored score of a stored lead (`None`: never scored).
    pub async fn latest_score(&self, lead_id: &str) -> Result<Option<StoredScore>, CrmError> {
        self.require_lead(lead_id).await?;
        Ok(self.db.latest_scores(lead_id, 1).await?.into_iter().next())
    }

    /// Enqueues a durable qualify job for a stored lead.
    pub async fn enqueue_qualify(&self, req: &QualifyRequest) -> Result<JobRecord, CrmError> {
        self.require_lead(&req.lead_id).await?;
        if req.strategy.trim().is_empty() {
            return Err(CrmError::invalid("strategy must not be empty"));
        }
        let mut job = NewJob::new(
            kinds::QUALIFY,
            serde_json::json!({
                "lead_id": req.lead_id,
                "strategy": req.strategy,
                "requested_by": req.requested_by,
            }),
        );
        job.max_attempts = req.max_attempts.max(1);
        job.request_id = req.request_id.clone();
        Ok(self.db.enqueue_job(&job).await?)
    }

    /// [`CrmError::NotFound`] unless `lead_id` names a stored lead.
    pub async fn require_lead(&self, lead_id: &str) -> Result<(), CrmError> {
        if lead_id.trim().is_empty() {
            return Err(CrmError::invalid("lead_id must not be empty"));
        }
        self.lead(lead_id).await.map(|_| ())
    }
}
