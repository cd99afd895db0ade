//! Business pipelines: layers (Wasm plugins of the `layer` world) in containers (sales,
//! operations, finance), connected by durable events.
//!
//! - [`settings`]: `[pipeline]`, `[pipelines.<name>]`, `[webhooks.<name>]`;
//! - [`schemas`]: a layer's payload contract from its manifest;
//! - [`orchestrator`]: starting and executing runs (deliveries → layer runs → events);
//! - [`phi`]: Φ_sync, the coherence of a run;
//! - [`webhook`]: HMAC-SHA256 signatures of inbound webhooks.

pub mod orchestrator;
pub mod phi;
pub mod schemas;
pub mod settings;
pub mod webhook;

pub use orchestrator::{Orchestrator, PipelineError, RunSummary, PIPELINE_JOB};
pub use settings::{LayerBinding, PipelineDef, RunSettings, WebhookDef};
