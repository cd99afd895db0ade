//! Bindings for contract `strata:plugin@0.1.0`.

pub const VERSION: &str = "0.1.0";

/// The `scorer` world; it owns the shared interfaces (types, log, state, crm).
pub mod scorer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "strata:plugin/scorer@0.1.0",
    });
}

/// The `layer` world, reusing the scorer world's interface bindings.
pub mod layer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "strata:plugin/layer@0.1.0",
        with: {
            "strata:plugin/types": super::scorer::strata::plugin::types,
            "strata:plugin/log": super::scorer::strata::plugin::log,
            "strata:plugin/state": super::scorer::strata::plugin::state,
            "strata:plugin/crm": super::scorer::strata::plugin::crm,
        },
    });
}

/// The `agent` world, reusing the scorer world's interface bindings.
pub mod agent {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "strata:plugin/agent@0.1.0",
        with: {
            "strata:plugin/types": super::scorer::strata::plugin::types,
            "strata:plugin/log": super::scorer::strata::plugin::log,
            "strata:plugin/state": super::scorer::strata::plugin::state,
            "strata:plugin/crm": super::scorer::strata::plugin::crm,
        },
    });
}

pub use scorer::strata::plugin::{crm, log, state, types};
