//! `crm`: read access to leads and their past scores. Every call is audited.

use super::{CallState, Capability};
use crate::domain::{Lead, StoredScore};
use crate::wit::since_v0_1_0::{crm as wit, scorer, types};
use serde::Deserialize;
use std::time::Instant;
use types::CapabilityError;
use wasmtime::component::{HasSelf, Linker};

/// Scope of `crm`, as declared in a manifest and as granted in config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CrmScope {
    /// May read leads (default true).
    pub leads: Option<bool>,
    /// May read past scores (default true).
    pub scores: Option<bool>,
    /// Most scores one `list-scores` returns (default 50).
    pub max_results: Option<u32>,
}

pub const DEFAULT_MAX_RESULTS: u32 = 50;

impl CrmScope {
    /// The tighter of the declared (`self`) and granted scopes: a permission needs both.
    pub fn narrow(&self, granted: &CrmScope) -> CrmScope {
        let both = |a: Option<bool>, b: Option<bool>| Some(a.unwrap_or(true) && b.unwrap_or(true));
        CrmScope {
            leads: both(self.leads, granted.leads),
            scores: both(self.scores, granted.scores),
            max_results: super::grants::min_opt(self.max_results, granted.max_results),
        }
    }
}

pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    scorer::strata::plugin::crm::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
}

fn unavailable(e: impl std::fmt::Display) -> CapabilityError {
    CapabilityError::Unavailable(e.to_string())
}

impl CallState {
    fn crm_scope(&self) -> Result<CrmScope, CapabilityError> {
        self.grants
            .crm
            .ok_or_else(|| CapabilityError::Denied("crm is not granted".into()))
    }
}

impl wit::Host for CallState {
    fn get_lead(&mut self, id: String) -> Result<Option<types::Lead>, CapabilityError> {
        let target = format!("lead:{id}");
        let lead = self.taped(
            Capability::Crm,
            "get-lead",
            &target,
            serde_json::Value::Null,
            |s| s.get_lead_live(&id),
        )?;
        Ok(lead.as_ref().map(types::Lead::from))
    }

    fn list_scores(
        &mut self,
        lead_id: String,
        limit: u32,
    ) -> Result<Vec<types::StoredScore>, CapabilityError> {
        let target = format!("lead:{lead_id}");
        let request = serde_json::json!({ "limit": limit });
        let scores = self.taped(Capability::Crm, "list-scores", &target, request, |s| {
            s.list_scores_live(&lead_id, limit)
        })?;
        Ok(scores.iter().map(types::StoredScore::from).collect())
    }
}

impl CallState {
    fn get_lead_live(&mut self, id: &str) -> Result<Option<Lead>, CapabilityError> {
        let started = Instant::now();
        let r = (|| {
            if self.crm_scope()?.leads == Some(false) {
                return Err(CapabilityError::Denied(
                    "crm grant does not include leads".into(),
                ));
            }
            let db = self
                .services
                .db
                .clone()
                .ok_or_else(|| unavailable("no database configured"))?;
            self.services.block_on(db.get_lead(id)).map_err(unavailable)
        })();
        self.audited(
            Capability::Crm,
            "get-lead",
            &format!("lead:{id}"),
            started,
            None,
            r,
        )
    }

    fn list_scores_live(
        &mut self,
        lead_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredScore>, CapabilityError> {
        let started = Instant::now();
        let r = (|| {
            let scope = self.crm_scope()?;
            if scope.scores == Some(false) {
                return Err(CapabilityError::Denied(
                    "crm grant does not include scores".into(),
                ));
            }
            let limit = limit.min(scope.max_results.unwrap_or(DEFAULT_MAX_RESULTS));
            let db = self
                .services
                .db
                .clone()
                .ok_or_else(|| unavailable("no database configured"))?;
            self.services
                .block_on(db.latest_scores(lead_id, limit as i64))
                .map_err(unavailable)
        })();
        self.audited(
            Capability::Crm,
            "list-scores",
            &format!("lead:{lead_id}"),
            started,
            None,
            r,
        )
    }
}
