//! Guest-side SDK for Strata plugins.
//!
//! A scorer is a type implementing [`Scorer`], exported with [`export_scorer!`]:
//!
//! ```ignore
//! use strata_sdk::{export_scorer, Lead, LeadExt, PluginError, Score, Scorer};
//!
//! struct Hot;
//!
//! impl Scorer for Hot {
//!     fn score(lead: Lead) -> Result<Score, PluginError> {
//!         let visits = lead.attr_f64("TotalVisits").unwrap_or(0.0);
//!         let value = (visits * 10.0).min(100.0);
//!         Ok(Score::builder(value)
//!             .factor("engagement", value)
//!             .reasoning(format!("{visits} visits"))
//!             .build())
//!     }
//! }
//!
//! export_scorer!(Hot);
//! ```
//!
//! A component's imports are its capability list. The helpers in [`log`], [`state`] and
//! [`crm`], and the generated [`llm`], [`mcp`] and [`scoring`] interfaces (agent and layer
//! worlds), call host functions; only the ones a plugin actually calls end up as imports.
//!
//! A business layer implements [`Layer`] and exports it with [`export_layer!`]; [`layer`]
//! holds the helpers layers share (payload parsing, MCP wrapper, JSON ⇄ [`Lead`], ids,
//! UTC calendar).

#[doc(hidden)]
pub mod bindings;
pub mod crm;
pub mod layer;
mod lead;
pub mod log;
mod score;
pub mod state;

pub use bindings::agent::strata::plugin::{llm, mcp, scoring};
pub use bindings::agent::{__export_agent_world, Guest as Agent};
pub use bindings::layer::strata::plugin::events;
pub use bindings::layer::{
    __export_layer_world, EmittedEvent, Guest as Layer, LayerOutcome, RunContext,
};
pub use bindings::scorer::strata::plugin::log::Level as LogLevel;
pub use bindings::scorer::strata::plugin::types::{
    Attribute, CapabilityError, Factor, Lead, LeadStatus, PluginError, Priority, Score, StoredScore,
};
pub use bindings::scorer::{__export_scorer_world, Guest as Scorer};
pub use lead::LeadExt;
pub use score::ScoreBuilder;

/// Exports a type implementing [`Scorer`] as the component's `score` function.
#[macro_export]
macro_rules! export_scorer {
    ($ty:ident) => {
        $crate::__export_scorer_world!($ty with_types_in $crate::bindings::scorer);
    };
}

/// Exports a type implementing [`Layer`] as the component's `run-layer` function.
#[macro_export]
macro_rules! export_layer {
    ($ty:ident) => {
        $crate::__export_layer_world!($ty with_types_in $crate::bindings::layer);
    };
}

/// Exports a type implementing [`Agent`] as the component's `run` function.
#[macro_export]
macro_rules! export_agent {
    ($ty:ident) => {
        $crate::__export_agent_world!($ty with_types_in $crate::bindings::agent);
    };
}
