//! `state`: plugin-private persistent key/value store. Keys are scoped by plugin name in
//! the database, so no plugin can name another's keys. Every call is audited.
//!
//! In a pipeline layer run (not dry-run) writes are buffered in the call
//! ([`StateBuffer`]): reads in the same call see them, and the orchestrator stores them in
//! the layer run's own transaction, so a failed layer run writes no state and a layer
//! run's writes cost no transaction of their own. Scorers and agents write through.

use super::grants::min_opt;
use super::{CallState, Capability};
use crate::db::StateEntry;
use crate::wit::since_v0_1_0::{scorer, state as wit, types::CapabilityError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
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

/// The `state` writes of one layer run, not stored yet: each key's last write (`None`:
/// deleted), with what the call read of the database: to answer `delete` and check
/// `max_keys` without re-reading, and for the commit to check that nothing it read has
/// changed since (see [`crate::db::LayerRunCommit::state_reads`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateBuffer {
    writes: BTreeMap<String, Option<Vec<u8>>>,
    /// The first value of each key read from the database during this call (`None`: not
    /// stored); known for every key of `writes`.
    reads: HashMap<String, Option<Vec<u8>>>,
    /// The plugin's number of stored keys, once read.
    db_count: Option<i64>,
}

impl StateBuffer {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The buffered writes (by key) and the reads they were decided on, as entries of
    /// `plugin`'s state. No write, no read: a run that stores nothing has nothing to check.
    pub fn into_entries(self, plugin: &str) -> (Vec<StateEntry>, Vec<StateEntry>) {
        if self.writes.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let entry = |(key, value)| StateEntry {
            plugin: plugin.to_string(),
            key,
            value,
        };
        let mut reads: Vec<StateEntry> = self.reads.into_iter().map(entry).collect();
        reads.sort_by(|a, b| a.key.cmp(&b.key));
        (self.writes.into_iter().map(entry).collect(), reads)
    }

    /// Records the database's value of `key` as read by this call (the first read counts).
    fn read(&mut self, key: &str, value: Option<&Vec<u8>>) {
        if !self.reads.contains_key(key) {
            self.reads.insert(key.to_string(), value.cloned());
        }
    }

    /// Keys the plugin would hold once the buffer is stored (`db_count` known).
    fn key_count(&self, db_count: i64) -> i64 {
        db_count
            + self
                .writes
                .iter()
                .map(|(k, v)| {
                    let stored = self.reads.get(k).is_some_and(Option::is_some);
                    i64::from(v.is_some()) - i64::from(stored)
                })
                .sum::<i64>()
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
        self.audited(Capability::State, operation, key, started, None, r)
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
        let note = Some("dry-run: held back, not executed".to_string());
        self.audited(Capability::State, operation, key, started, note, r)
    }
}

impl CallState {
    /// Whether `state` writes are buffered into the layer run's commit.
    fn buffers_state(&self) -> bool {
        self.layer.is_some()
    }

    /// Whether `key` exists, as this call's buffered writes would leave it.
    fn state_exists(&mut self, key: &str) -> Result<bool, CapabilityError> {
        if let Some(v) = self.usage.state.writes.get(key) {
            return Ok(v.is_some());
        }
        if let Some(stored) = self.usage.state.reads.get(key) {
            return Ok(stored.is_some());
        }
        let db = self.state_db()?;
        let stored = self
            .services
            .block_on(db.state_get(&self.plugin.name, key))
            .map_err(unavailable)?;
        self.usage.state.read(key, stored.as_ref());
        Ok(stored.is_some())
    }

    /// A layer run's `set` (`Some`) or `delete` (`None`) into its buffer; whether the key
    /// existed before.
    fn state_buffer_write(
        &mut self,
        key: &str,
        value: Option<Vec<u8>>,
    ) -> Result<bool, CapabilityError> {
        let scope = self.state_scope()?;
        check_key(key)?;
        if let Some(v) = &value {
            check_value(scope, v)?;
        }
        let existed = self.state_exists(key)?;
        if value.is_some() && !existed {
            let db_count = match self.usage.state.db_count {
                Some(n) => n,
                None => {
                    let db = self.state_db()?;
                    let n = self
                        .services
                        .block_on(db.state_count(&self.plugin.name))
                        .map_err(unavailable)?;
                    self.usage.state.db_count = Some(n);
                    n
                }
            };
            let count = self.usage.state.key_count(db_count);
            if count as u64 >= scope.key_cap() {
                return Err(max_keys_denied(count, scope));
            }
        }
        self.usage.state.writes.insert(key.to_string(), value);
        Ok(existed)
    }
}

fn check_value(scope: StateScope, value: &[u8]) -> Result<(), CapabilityError> {
    if value.len() as u64 > scope.value_cap() {
        return Err(CapabilityError::Denied(format!(
            "value of {} bytes exceeds the granted max_value_bytes = {}",
            value.len(),
            scope.value_cap()
        )));
    }
    Ok(())
}

fn max_keys_denied(count: i64, scope: StateScope) -> CapabilityError {
    CapabilityError::Denied(format!(
        "plugin already holds {count} keys, the granted max_keys = {}",
        scope.key_cap()
    ))
}

impl wit::Host for CallState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, CapabilityError> {
        self.taped(Capability::State, "get", &key.clone(), Value::Null, |s| {
            s.state_get_live(key)
        })
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), CapabilityError> {
        let request = serde_json::json!({ "value": super::tape::bytes(&value) });
        self.taped(Capability::State, "set", &key.clone(), request, |s| {
            s.state_set_live(key, value)
        })
    }

    fn delete(&mut self, key: String) -> Result<bool, CapabilityError> {
        self.taped(
            Capability::State,
            "delete",
            &key.clone(),
            Value::Null,
            |s| s.state_delete_live(key),
        )
    }
}

impl CallState {
    fn state_get_live(&mut self, key: String) -> Result<Option<Vec<u8>>, CapabilityError> {
        if self.buffers_state() {
            if let Some(v) = self.usage.state.writes.get(&key) {
                let v = v.clone();
                let started = Instant::now();
                let r = self.state_scope().and_then(|_| check_key(&key)).map(|()| v);
                return self.audited(Capability::State, "get", &key, started, None, r);
            }
        }
        let got = self.state_call("get", &key, |s, _, db, plugin| {
            s.services
                .block_on(db.state_get(plugin, &key))
                .map_err(unavailable)
        });
        if self.buffers_state() {
            if let Ok(v) = &got {
                self.usage.state.read(&key, v.as_ref());
            }
        }
        got
    }

    fn state_set_live(&mut self, key: String, value: Vec<u8>) -> Result<(), CapabilityError> {
        if self.dry_run() {
            return self.state_held_back("set", &key, Some(&value));
        }
        if self.buffers_state() {
            let started = Instant::now();
            let r = self.state_buffer_write(&key, Some(value)).map(|_| ());
            return self.audited(Capability::State, "set", &key, started, None, r);
        }
        self.state_call("set", &key, |s, scope, db, plugin| {
            check_value(scope, &value)?;
            s.services.block_on(async {
                if db
                    .state_get(plugin, &key)
                    .await
                    .map_err(unavailable)?
                    .is_none()
                {
                    let count = db.state_count(plugin).await.map_err(unavailable)?;
                    if count as u64 >= scope.key_cap() {
                        return Err(max_keys_denied(count, scope));
                    }
                }
                db.state_set(plugin, &key, &value)
                    .await
                    .map_err(unavailable)
            })
        })
    }

    fn state_delete_live(&mut self, key: String) -> Result<bool, CapabilityError> {
        if self.dry_run() {
            return self.state_held_back("delete", &key, None).map(|()| false);
        }
        if self.buffers_state() {
            let started = Instant::now();
            let r = self.state_buffer_write(&key, None);
            return self.audited(Capability::State, "delete", &key, started, None, r);
        }
        self.state_call("delete", &key, |s, _, db, plugin| {
            s.services
                .block_on(db.state_delete(plugin, &key))
                .map_err(unavailable)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_writes_count_against_max_keys_by_what_they_change() {
        let mut b = StateBuffer::default();
        // New key: +1; deleting a stored key: -1; replacing a stored key: 0; a key set
        // then deleted within the call that was never stored: 0.
        for (key, value, stored) in [
            ("new", Some(vec![1]), false),
            ("gone", None, true),
            ("kept", Some(vec![2]), true),
            ("fleeting", None, false),
        ] {
            b.writes.insert(key.into(), value);
            b.reads.insert(key.into(), stored.then(|| vec![0]));
        }
        assert_eq!(b.key_count(5), 5);
        b.writes.insert("another".into(), Some(vec![3]));
        b.reads.insert("another".into(), None);
        assert_eq!(b.key_count(5), 6);
        let (writes, reads) = b.into_entries("booking");
        assert_eq!(writes.len(), 5);
        assert_eq!(reads.len(), 5);
        assert!(writes.iter().all(|w| w.plugin == "booking"));
        assert_eq!(writes[0].key, "another", "in key order");
    }
}
