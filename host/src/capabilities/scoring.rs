//! `scoring`: an agent or layer scores a lead with a granted scorer plugin (e.g. the
//! rule-based fallback of an LLM agent). The scorer runs in its own store with its own
//! grants and limits; the call is audited on the caller's side.

use super::grants::narrow_names;
use super::{CallState, Capability};
use crate::wit::since_v0_1_0::{agent, scoring as wit, types};
use serde::Deserialize;
use std::time::Instant;
use types::CapabilityError;
use wasmtime::component::{HasSelf, Linker};

/// Scope of `scoring`: the scorer strategies (plugin names) a plugin may call.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringScope {
    #[serde(default)]
    pub strategies: Vec<String>,
}

impl ScoringScope {
    /// Declared ∩ granted strategies (a declaration naming none asks for the grant's).
    pub fn narrow(&self, granted: &ScoringScope) -> ScoringScope {
        ScoringScope {
            strategies: narrow_names(&self.strategies, &granted.strategies),
        }
    }
}

pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    agent::strata::plugin::scoring::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
}

impl wit::Host for CallState {
    fn score_lead(
        &mut self,
        strategy: String,
        lead: types::Lead,
    ) -> Result<wit::Scored, CapabilityError> {
        let started = Instant::now();
        let r = (|| {
            let scope = self
                .grants
                .scoring
                .as_ref()
                .ok_or_else(|| CapabilityError::Denied("scoring is not granted".into()))?;
            if !scope.strategies.contains(&strategy) {
                return Err(CapabilityError::Denied(format!(
                    "scorer {strategy:?} is not granted (granted: {:?})",
                    scope.strategies
                )));
            }
            let registry = self.services.scorers.upgrade().ok_or_else(|| {
                CapabilityError::Unavailable("no plugin registry in this host".into())
            })?;
            let plugin = registry
                .get(&strategy)
                .map_err(|e| CapabilityError::Unavailable(e.to_string()))?;
            let lead = crate::domain::Lead::from(lead);
            let score = plugin
                .score(&lead, self.request_id.clone())
                .map_err(|e| CapabilityError::Unavailable(e.to_string()))?;
            self.usage.scorers.push(plugin.id().to_string());
            Ok(wit::Scored {
                strategy: plugin.id().to_string(),
                score: (&score).into(),
            })
        })();
        let (allowed, detail) = match &r {
            Ok(s) => (true, Some(format!("answered by {}", s.strategy))),
            Err(CapabilityError::Denied(m)) | Err(CapabilityError::Invalid(m)) => {
                (false, Some(m.clone()))
            }
            Err(CapabilityError::Unavailable(m)) => (true, Some(format!("failed: {m}"))),
        };
        self.audit(
            Capability::Scoring,
            "score-lead",
            &format!("scorer:{strategy}"),
            allowed,
            detail,
            started,
        );
        r
    }
}
