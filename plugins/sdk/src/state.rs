//! The plugin-private key/value store. Calling any of these makes the component import
//! `strata:plugin/state`, so the plugin must declare the `state` capability.

use crate::bindings::scorer::strata::plugin::state as host;
use crate::CapabilityError;

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, CapabilityError> {
    host::get(key)
}

/// Stores `value` under `key`, replacing any previous value.
pub fn set(key: &str, value: &[u8]) -> Result<(), CapabilityError> {
    host::set(key, value)
}

/// Deletes `key`; `true` when it existed.
pub fn delete(key: &str) -> Result<bool, CapabilityError> {
    host::delete(key)
}
