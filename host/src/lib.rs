//! Strata: a plugin host for AI-assisted CRM work. See `ARCHITECTURE.md` for the map.

pub mod app;
pub mod audit;
pub mod capabilities;
pub mod challenger;
pub mod cli;
pub mod config;
pub mod crm;
pub mod db;
pub mod domain;
pub mod evaluation;
pub mod fit;
pub mod input;
pub mod llm;
pub mod manifest;
pub mod mcp;
pub mod pipelines;
pub mod plugins;
pub mod qualify;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod wit;
