//! HTTP routes, one module per resource. Each handler carries its `#[utoipa::path]`, and
//! the router is assembled from those annotations, so the OpenAPI document cannot drift.

pub mod audit;
pub mod config;
pub mod executions;
pub mod health;
pub mod keys;
pub mod leads;
pub mod llm;
pub mod mcp;
pub mod pipelines;
pub mod plugins;
pub mod published;
pub mod release_state;
pub mod releases;
pub mod scores;
pub mod scoring;
pub mod strategies;
