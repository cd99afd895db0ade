//! The console's pages, one module per section.

pub mod audit;
pub mod leads;
pub mod overview;
pub mod pipelines;
pub mod plugins;
pub mod signin;
pub mod strategies;
