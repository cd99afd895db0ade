//! Host capabilities: every interface a plugin can import, each one module of the same
//! shape — scope types (what a manifest declares and a grant allows), `link` (linker
//! registration, only when granted), the `Host` trait impl on the per-call state, and an
//! audit record for every call.
//!
//! | capability | module     | granted by            | audited |
//! |------------|------------|-----------------------|---------|
//! | `log`      | [`log`]    | always                | no (rate-capped, tagged) |
//! | `state`    | [`state`]  | manifest + config     | yes |
//! | `crm`      | [`crm`]    | manifest + config     | yes |
//! | `llm`      | [`llm`]    | manifest + config (aliases, budgets) | yes, with tokens and cost |
//! | `mcp`      | [`mcp`]    | manifest + config (server/tool globs) | yes |
//! | `scoring`  | [`scoring`]| manifest + config (strategies) | yes |
//! | `events`   | [`events`] | manifest + config (topic globs) | yes |
//! | WASI       | [`wasi`]   | always, deny-all ctx  | n/a (nothing reachable) |

pub mod call_state;
pub mod crm;
pub mod events;
pub mod grants;
pub mod llm;
pub mod log;
pub mod mcp;
pub mod scoring;
pub mod state;
pub mod tape;
pub mod usage;
pub mod wasi;

pub use call_state::{CallState, HostServices, PluginIdentity};
pub use crm::CrmScope;
pub use events::EventsScope;
pub use grants::{EffectiveGrants, Grant, GrantError};
pub use llm::LlmScope;
pub use mcp::McpScope;
pub use scoring::ScoringScope;
pub use state::StateScope;
pub use usage::CallUsage;

use crate::wit::since_v0_1_0::scorer;
use wasmtime::component::Linker;

/// A host capability = one WIT interface of `strata:plugin`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Log,
    State,
    Crm,
    Llm,
    Mcp,
    Scoring,
    Events,
}

impl Capability {
    pub const ALL: &'static [Capability] = &[
        Capability::Log,
        Capability::State,
        Capability::Crm,
        Capability::Llm,
        Capability::Mcp,
        Capability::Scoring,
        Capability::Events,
    ];

    /// The WIT interface name (without package and version).
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::State => "state",
            Capability::Crm => "crm",
            Capability::Llm => "llm",
            Capability::Mcp => "mcp",
            Capability::Scoring => "scoring",
            Capability::Events => "events",
        }
    }

    /// The capability an interface name stands for; `types` carries no capability.
    pub fn from_interface(name: &str) -> Option<Capability> {
        Capability::ALL
            .iter()
            .copied()
            .find(|c| c.interface() == name)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.interface())
    }
}

/// Builds the linker of one plugin version: WASI (deny-all), `log`, and exactly the
/// granted capabilities. Anything not linked here cannot be imported: instantiation fails.
pub fn linker_for(
    engine: &wasmtime::Engine,
    grants: &EffectiveGrants,
) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasi::link(&mut linker)?;
    log::link(&mut linker)?;
    if grants.state.is_some() {
        state::link(&mut linker)?;
    }
    if grants.crm.is_some() {
        crm::link(&mut linker)?;
    }
    if grants.llm.is_some() {
        llm::link(&mut linker)?;
    }
    if grants.mcp.is_some() {
        mcp::link(&mut linker)?;
    }
    if grants.scoring.is_some() {
        scoring::link(&mut linker)?;
    }
    if grants.events.is_some() {
        events::link(&mut linker)?;
    }
    // `types` holds only types; it still has a (no-op) host trait in the bindings.
    scorer::strata::plugin::types::add_to_linker::<
        CallState,
        wasmtime::component::HasSelf<CallState>,
    >(&mut linker, |s| s)?;
    Ok(linker)
}

impl scorer::strata::plugin::types::Host for CallState {}
