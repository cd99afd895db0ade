//! Bindings for contract `strata:plugin@0.1.0`, generated from `wit/since_v0.1.0/` (frozen).

pub const VERSION: &str = "0.1.0";

/// The `scorer` world; it owns the shared interfaces (types, log, state, crm).
pub mod scorer {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "strata:plugin/scorer@0.1.0",
    });
}

/// The `agent` world, reusing the scorer world's interface bindings; it owns `llm`,
/// `mcp` and `scoring`.
pub mod agent {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "strata:plugin/agent@0.1.0",
        with: {
            "strata:plugin/types": super::scorer::strata::plugin::types,
            "strata:plugin/log": super::scorer::strata::plugin::log,
            "strata:plugin/state": super::scorer::strata::plugin::state,
            "strata:plugin/crm": super::scorer::strata::plugin::crm,
        },
    });
}

/// The `layer` world, reusing the scorer and agent worlds' interface bindings; it owns
/// `events`.
pub mod layer {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "strata:plugin/layer@0.1.0",
        with: {
            "strata:plugin/types": super::scorer::strata::plugin::types,
            "strata:plugin/log": super::scorer::strata::plugin::log,
            "strata:plugin/state": super::scorer::strata::plugin::state,
            "strata:plugin/crm": super::scorer::strata::plugin::crm,
            "strata:plugin/llm": super::agent::strata::plugin::llm,
            "strata:plugin/mcp": super::agent::strata::plugin::mcp,
            "strata:plugin/scoring": super::agent::strata::plugin::scoring,
        },
    });
}

pub use agent::strata::plugin::{llm, mcp, scoring};
pub use layer::strata::plugin::events;
pub use scorer::strata::plugin::{crm, log, state, types};
