//! What the operator grants a plugin, and the effective grant: declared ∩ granted.

use super::{Capability, CrmScope, EventsScope, LlmScope, McpScope, ScoringScope, StateScope};
use crate::manifest::{LimitsSpec, Manifest};
use serde::Deserialize;

/// One plugin's entry under `[grants.<name>]` in `strata.toml`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Capabilities granted beyond `log` (always granted), e.g. `["state", "crm"]`.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    #[serde(default)]
    pub state: StateScope,
    #[serde(default)]
    pub crm: CrmScope,
    #[serde(default)]
    pub llm: LlmScope,
    #[serde(default)]
    pub mcp: McpScope,
    #[serde(default)]
    pub scoring: ScoringScope,
    #[serde(default)]
    pub events: EventsScope,
    /// The operator's ceilings for this plugin: a manifest's request up to a ceiling is
    /// honoured, above it lowered to it. A limit the grant does not set has the runtime
    /// default as its ceiling (see [`LimitsSpec`]).
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Opt-in: calls one instance of a *pure* scorer may serve, one after another on the
    /// same worker thread, before it is replaced (see `runtime::warm`). 0, the default: a
    /// fresh instance per call. Reuse lets a guest carry memory from one call into the next.
    #[serde(default)]
    pub reuse_calls: u32,
    /// Opt-in: an agent execution or pipeline layer run of this plugin stores its tape —
    /// the `llm`, `mcp` and `state` calls and `crm` / `events` reads it made, with what it received, redacted of
    /// configured secrets — so `strata replay execution ID` can re-run it offline (see
    /// `capabilities::tape`).
    #[serde(default)]
    pub record_executions: bool,
}

/// The capabilities one plugin version actually gets, with narrowed scopes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct EffectiveGrants {
    pub state: Option<StateScope>,
    pub crm: Option<CrmScope>,
    pub llm: Option<LlmScope>,
    pub mcp: Option<McpScope>,
    pub scoring: Option<ScoringScope>,
    pub events: Option<EventsScope>,
    /// `[grants.<plugin>] record_executions`: agent executions store their tape.
    pub record_executions: bool,
}

impl EffectiveGrants {
    pub fn has(&self, cap: Capability) -> bool {
        match cap {
            Capability::Log => true,
            Capability::State => self.state.is_some(),
            Capability::Crm => self.crm.is_some(),
            Capability::Llm => self.llm.is_some(),
            Capability::Mcp => self.mcp.is_some(),
            Capability::Scoring => self.scoring.is_some(),
            Capability::Events => self.events.is_some(),
        }
    }

    /// Capabilities in effect, `log` included.
    pub fn capabilities(&self) -> Vec<Capability> {
        Capability::ALL
            .iter()
            .copied()
            .filter(|c| self.has(*c))
            .collect()
    }
}

/// Why a plugin may not import what it imports.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum GrantError {
    #[error(
        "plugin {plugin} imports `{interface}` but its plugin.toml does not declare it; \
         add `[capabilities] {capability} = {{}}` to the plugin's manifest"
    )]
    NotDeclared {
        plugin: String,
        interface: String,
        capability: Capability,
    },
    #[error(
        "plugin {plugin} imports `{interface}` but the operator has not granted it; \
         add `capabilities = [\"{capability}\"]` under `[grants.{name}]` in strata.toml"
    )]
    NotGranted {
        plugin: String,
        name: String,
        interface: String,
        capability: Capability,
    },
}

/// Declared ∩ granted for every capability (scopes narrowed to the tighter of both).
pub fn effective(manifest: &Manifest, grant: Option<&Grant>) -> EffectiveGrants {
    let granted = |c: Capability| grant.is_some_and(|g| g.capabilities.contains(&c));
    let declared = &manifest.capabilities;
    EffectiveGrants {
        state: match (&declared.state, granted(Capability::State)) {
            (Some(asked), true) => Some(asked.narrow(&grant.expect("granted").state)),
            _ => None,
        },
        crm: match (&declared.crm, granted(Capability::Crm)) {
            (Some(asked), true) => Some(asked.narrow(&grant.expect("granted").crm)),
            _ => None,
        },
        llm: match (&declared.llm, granted(Capability::Llm)) {
            (Some(asked), true) => Some(asked.narrow(&grant.expect("granted").llm)),
            _ => None,
        },
        mcp: match (&declared.mcp, granted(Capability::Mcp)) {
            (Some(asked), true) => Some(asked.narrow(&grant.expect("granted").mcp)),
            _ => None,
        },
        scoring: match (&declared.scoring, granted(Capability::Scoring)) {
            (Some(asked), true) => Some(asked.narrow(&grant.expect("granted").scoring)),
            _ => None,
        },
        events: match (&declared.events, granted(Capability::Events)) {
            (Some(asked), true) => Some(asked.narrow(&grant.expect("granted").events)),
            _ => None,
        },
        record_executions: grant.is_some_and(|g| g.record_executions),
    }
}

/// Checks that `cap`, imported as `interface`, is both declared and granted.
pub fn check_import(
    manifest: &Manifest,
    grant: Option<&Grant>,
    cap: Capability,
    interface: &str,
) -> Result<(), GrantError> {
    if cap == Capability::Log {
        return Ok(());
    }
    if !manifest.capabilities.declares(cap) {
        return Err(GrantError::NotDeclared {
            plugin: manifest.id(),
            interface: interface.to_string(),
            capability: cap,
        });
    }
    if !grant.is_some_and(|g| g.capabilities.contains(&cap)) {
        return Err(GrantError::NotGranted {
            plugin: manifest.id(),
            name: manifest.plugin.name.clone(),
            interface: interface.to_string(),
            capability: cap,
        });
    }
    Ok(())
}

/// Does `key` match one of `globs` (`*` stops at `/`)? Bad patterns match nothing (config
/// validation rejects them earlier).
pub(crate) fn matches_any(globs: &[String], key: &str) -> bool {
    globs.iter().any(|g| {
        glob::Pattern::new(g).is_ok_and(|p| {
            p.matches_with(
                key,
                glob::MatchOptions {
                    case_sensitive: true,
                    require_literal_separator: true,
                    require_literal_leading_dot: false,
                },
            )
        })
    })
}

/// The smaller of two optional float ceilings.
pub(crate) fn min_opt_f64(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Declared ∩ granted names; a declaration without names asks for all the grant allows.
pub(crate) fn narrow_names(declared: &[String], granted: &[String]) -> Vec<String> {
    if declared.is_empty() {
        return granted.to_vec();
    }
    declared
        .iter()
        .filter(|d| granted.contains(d))
        .cloned()
        .collect()
}

/// The smaller of two optional ceilings.
pub(crate) fn min_opt<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
