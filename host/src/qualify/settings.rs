//! `[qualify]`: which plugin qualifies leads, its model and fallback, and the CRM
//! ([`CrmMapping`], `[qualify.crm]`).

use super::mapping::CrmMapping;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `[qualify]`: how qualification jobs run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QualifySettings {
    /// Agent plugin that qualifies leads when a job names no strategy; none = score with
    /// `plugins.default_scorer`.
    pub agent: Option<String>,
    /// LLM model alias; none = the first alias granted to the agent.
    pub model: Option<String>,
    /// Scorer the agent falls back to when the LLM fails.
    pub fallback_strategy: String,
    /// `[qualify.crm]`: where leads are read from and written back to.
    pub crm: CrmMapping,
}

impl Default for QualifySettings {
    fn default() -> Self {
        QualifySettings {
            agent: None,
            model: None,
            fallback_strategy: "bant".into(),
            crm: CrmMapping::default(),
        }
    }
}

impl QualifySettings {
    /// The agent's task for one lead (the lead as read, without Strata's own fields).
    pub fn task(&self, lead: &crate::domain::Lead) -> Value {
        json!({
            "lead_id": lead.id,
            "lead": lead,
            "model": self.model,
            "fallback_strategy": self.fallback_strategy,
        })
    }
}
