//! `state`: plugin-private persistent key/value store. Keys are scoped by plugin name in
//! the database, so no plugin can name another's keys. Every call is audited.

use super::grants::min_opt;
use super::{CallState, Capability};
use crate::wit::since_v0_1_0::{scorer, state as wit, types::CapabilityError};
use serde::Deserialize;
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};

/// Scope of `state`, as declared in a manifest and as granted in config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateScope {
    /// Largest value one `set` may store (default 64 KiB).
    pub max_value_bytes: Option<u64>,
    /// Most keys the plugin may hold (default 10,000).
    pub max_keys: Option<u64>,
}

pub const DEFAULT_MAX_VALUE_BYTES: u64 = 64 * 1024;
pub const DEFAULT_MAX_KEYS: u64 = 10_000;
pub const MAX_KEY_BYTES: usize = 256;

impl StateScope {
    /// The tighter of the declared (`self`) and granted scopes.
    pub fn narrow(&self, granted: &StateScope) -> StateScope {
        StateScope {
            max_value_bytes: min_opt(self.max_value_bytes, granted.max_value_bytes),
            max_keys: min_opt(self.max_keys, granted.max_keys),
        }
    }
    fn value_cap(&self) -> u64 {
        self.max_value_bytes.unwrap_or(DEFAULT_MAX_VALUE_BYTES)
    }
    fn key_cap(&self) -> u64 {
        self.max_keys.unwrap_or(DEFAULT_MAX_KEYS)
    }
}

pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    scorer::strata::plugin::state::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
}

fn check_key(key: &str) -> Result<(), CapabilityError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(CapabilityError::Invalid(format!(
            "state key must be 1-{MAX_KEY_BYTES} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

impl CallState {
    fn state_scope(&self) -> Result<StateScope, CapabilityError> {
        // Linked only when granted; checked again so a linker mistake cannot widen access.
        self.grants
            .state
            .ok_or_else(|| CapabilityError::Denied("state is not granted".into()))
    }

    fn state_db(&self) -> Result<crate::db::Db, CapabilityError> {
        self.services
            .db
            .clone()
            .ok_or_else(|| CapabilityError::Unavailable("no database configured".into()))
    }

    fn finish<T>(
        &self,
        op: &str,
        key: &str,
        started: Instant,
        r: Result<T, CapabilityError>,
    ) -> Result<T, CapabilityError> {
        let (allowed, detail) = match &r {
            Ok(_) => (true, None),
            Err(CapabilityError::Denied(m)) => (false, Some(m.clone())),
            Err(CapabilityError::Invalid(m)) => (false, Some(m.clone())),
            Err(CapabilityError::Unavailable(m)) => (true, Some(format!("unavailable: {m}"))),
        };
        self.audit(Capability::State, op, key, allowed, detail, started);
        r
    }
}

fn unavailable(e: impl std::fmt::Display) -> CapabilityError {
    CapabilityError::Unavailable(e.to_string())
}

impl CallState {
    /// Grant, key and database checks shared by every `state` operation, then `op`, then
    /// the audit record.
    fn state_call<T>(
        &self,
        operation: &str,
        key: &str,
        op: impl FnOnce(&Self, StateScope, crate::db::Db, &str) -> Result<T, CapabilityError>,
    ) -> Result<T, CapabilityError> {
        let started = Instant::now();
        let r = self.state_scope().and_then(|scope| {
            check_key(key)?;
            op(self, scope, self.state_db()?, &self.plugin.name)
        });
        self.finish(operation, key, started, r)
    }
}

impl CallState {
    /// Dry-run: a write that is checked (grant, key) and recorded, not executed.
    fn state_held_back(
        &mut self,
        operation: &str,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), CapabilityError> {
        let started = Instant::now();
        let r = self.state_scope().and_then(|_| check_key(key));
        if r.is_ok() {
            let would = match value {
                Some(v) => match std::str::from_utf8(v) {
                    Ok(text) => {
                        serde_json::json!({ "key": key, "value": crate::capabilities::log::sanitize(text, 512) })
                    }
                    Err(_) => serde_json::json!({ "key": key, "value_bytes": v.len() }),
                },
                None => serde_json::json!({ "key": key }),
            };
            self.hold_back(Capability::State, operation, key, would);
        }
        let (allowed, detail) = match &r {
            Ok(()) => (true, Some("dry-run: held back, not executed".to_string())),
            Err(CapabilityError::Denied(m)) | Err(CapabilityError::Invalid(m)) => {
                (false, Some(m.clone()))
            }
            Err(CapabilityError::Unavailable(m)) => (true, Some(m.clone())),
        };
        self.audit(Capability::State, operation, key, allowed, detail, started);
        r
    }
}

impl wit::Host for CallState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, CapabilityError> {
        self.state_call("get", &key, |s, _, db, plugin| {
            s.services
                .block_on(db.state_get(plugin, &key))
                .map_err(unavailable)
        })
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), CapabilityError> {
        if self.dry_run() {
            return self.state_held_back("set", &key, Some(&value));
        }
        self.state_call("set", &key, |s, scope, db, plugin| {
            if value.len() as u64 > scope.value_cap() {
                return Err(CapabilityError::Denied(format!(
                    "value of {} bytes exceeds the granted max_value_bytes = {}",
                    value.len(),
                    scope.value_cap()
                )));
            }
            s.services.block_on(async {
                if db
                    .state_get(plugin, &key)
                    .await
                    .map_err(unavailable)?
                    .is_none()
                {
                    let count = db.state_count(plugin).await.map_err(unavailable)?;
                    if count as u64 >= scope.key_cap() {
                        return Err(CapabilityError::Denied(format!(
                            "plugin already holds {count} keys, the granted max_keys = {}",
                            scope.key_cap()
                        )));
                    }
                }
                db.state_set(plugin, &key, &value)
                    .await
                    .map_err(unavailable)
            })
        })
    }

    fn delete(&mut self, key: String) -> Result<bool, CapabilityError> {
        if self.dry_run() {
            return self.state_held_back("delete", &key, None).map(|()| false);
        }
        self.state_call("delete", &key, |s, _, db, plugin| {
            s.services
                .block_on(db.state_delete(plugin, &key))
                .map_err(unavailable)
        })
    }
}
