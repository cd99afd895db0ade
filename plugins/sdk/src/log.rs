//! Structured logging into the host's log (always granted; the host caps each line).

use crate::bindings::scorer::strata::plugin::log::{log, Level};

/// Logs `message` at `level`.
pub fn at(level: Level, message: &str) {
    log(level, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}
