//! Plugin life cycle: the registry of live versions (atomic swap, rollback history), the
//! manager that loads/validates/smoke-tests versions and records every attempt, and the
//! directory watcher that drives hot reload.

pub mod dirs;
pub mod files;
pub mod follower;
pub mod manager;
pub mod registry;
pub mod release;
pub mod reload;
pub mod smoke;
pub mod watcher;

pub use dirs::{DirState, DirStatus};
pub use manager::{LoadReport, PluginManager};
pub use registry::{LoadFailure, Registry, Slot, SlotError};
