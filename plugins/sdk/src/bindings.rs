//! Bindings generated from `wit/since_v0.1.0/` for the three worlds of `strata:plugin@0.1.0`.
//!
//! The `scorer` world owns the generated `types`, `log`, `state` and `crm` modules; the
//! `layer` and `agent` worlds reuse them (`with:`), so a `Lead` is one Rust type everywhere.
//! The `agent` world owns `llm`, `mcp` and `scoring`, which the `layer` world reuses; the
//! `layer` world owns `events`.
//! Imports are only linked when called: a plugin that never calls `state` does not import it.

/// The `scorer` world: one lead in, one score out.
pub mod scorer {
    wit_bindgen::generate!({
        world: "scorer",
        path: "../../wit/since_v0.1.0",
        pub_export_macro: true,
        additional_derives: [PartialEq],
        export_macro_name: "__export_scorer_world",
        default_bindings_module: "strata_sdk::bindings::scorer",
    });
}

/// The `layer` world: a business layer of a pipeline, JSON in and out.
#[allow(clippy::too_many_arguments)] // the generated ABI shim flattens `run-context`
pub mod layer {
    wit_bindgen::generate!({
        world: "layer",
        path: "../../wit/since_v0.1.0",
        pub_export_macro: true,
        additional_derives: [PartialEq],
        export_macro_name: "__export_layer_world",
        default_bindings_module: "strata_sdk::bindings::layer",
        with: {
            "strata:plugin/types@0.1.0": crate::bindings::scorer::strata::plugin::types,
            "strata:plugin/log@0.1.0": crate::bindings::scorer::strata::plugin::log,
            "strata:plugin/state@0.1.0": crate::bindings::scorer::strata::plugin::state,
            "strata:plugin/crm@0.1.0": crate::bindings::scorer::strata::plugin::crm,
            "strata:plugin/llm@0.1.0": crate::bindings::agent::strata::plugin::llm,
            "strata:plugin/mcp@0.1.0": crate::bindings::agent::strata::plugin::mcp,
            "strata:plugin/scoring@0.1.0": crate::bindings::agent::strata::plugin::scoring,
        },
    });
}

/// The `agent` world: a JSON task in, a JSON result out.
pub mod agent {
    wit_bindgen::generate!({
        world: "agent",
        path: "../../wit/since_v0.1.0",
        pub_export_macro: true,
        additional_derives: [PartialEq],
        export_macro_name: "__export_agent_world",
        default_bindings_module: "strata_sdk::bindings::agent",
        with: {
            "strata:plugin/types@0.1.0": crate::bindings::scorer::strata::plugin::types,
            "strata:plugin/log@0.1.0": crate::bindings::scorer::strata::plugin::log,
            "strata:plugin/state@0.1.0": crate::bindings::scorer::strata::plugin::state,
            "strata:plugin/crm@0.1.0": crate::bindings::scorer::strata::plugin::crm,
        },
    });
}
