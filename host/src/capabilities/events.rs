//! `events`: a layer publishes to and reads from the topics its grant allows (globs, e.g.
//! `deal.*`). Publishing needs a pipeline run: the event is checked against the layer's
//! `[schemas.events]` now, given its id now, and stored by the orchestrator together with
//! the layer run (so a run that fails publishes nothing). Reading is a page of stored
//! events of one topic. Every call is audited.

use super::call_state::PublishedEvent;
use super::grants::matches_any;
use super::{CallState, Capability};
use crate::wit::since_v0_1_0::{events as wit, layer, types::CapabilityError};
use serde::Deserialize;
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};

/// Most events one call may publish.
pub const MAX_PUBLISHED_PER_CALL: usize = 64;
/// Largest payload of one published event.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Most events one `read` returns.
pub const MAX_READ: u32 = 500;

/// Scope of `events`: topic globs a plugin may publish to and read from. Declared in a
/// manifest (empty = whatever the grant allows) and granted in config (empty = nothing).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventsScope {
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub read: Vec<String>,
    /// In an effective grant: the manifest's globs, which a topic must match as well.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub declared: Option<Box<EventsScope>>,
}

impl EventsScope {
    /// The effective scope: the grant's globs, kept with the manifest's.
    pub fn narrow(&self, granted: &EventsScope) -> EventsScope {
        EventsScope {
            publish: granted.publish.clone(),
            read: granted.read.clone(),
            declared: Some(Box::new(EventsScope {
                publish: self.publish.clone(),
                read: self.read.clone(),
                declared: None,
            })),
        }
    }

    fn allows(globs: &[String], declared: Option<&[String]>, topic: &str) -> bool {
        matches_any(globs, topic) && declared.is_none_or(|d| d.is_empty() || matches_any(d, topic))
    }

    pub fn may_publish(&self, topic: &str) -> bool {
        Self::allows(
            &self.publish,
            self.declared.as_deref().map(|d| d.publish.as_slice()),
            topic,
        )
    }

    pub fn may_read(&self, topic: &str) -> bool {
        Self::allows(
            &self.read,
            self.declared.as_deref().map(|d| d.read.as_slice()),
            topic,
        )
    }
}

pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    layer::strata::plugin::events::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
}

/// The audit target of a topic.
fn topic_target(topic: &str) -> String {
    format!("topic:{}", super::log::sanitize(topic, 128))
}

fn check_topic(topic: &str) -> Result<(), CapabilityError> {
    let ok = !topic.is_empty()
        && topic.len() <= 128
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CapabilityError::Invalid(format!(
            "topic {:?} must be 1-128 characters of [A-Za-z0-9._-]",
            super::log::sanitize(topic, 64)
        )))
    }
}

impl CallState {
    fn events_scope(&self) -> Result<&EventsScope, CapabilityError> {
        self.grants
            .events
            .as_ref()
            .ok_or_else(|| CapabilityError::Denied("events is not granted".into()))
    }

    fn events_publish(&mut self, topic: &str, payload: &str) -> Result<String, CapabilityError> {
        check_topic(topic)?;
        if !self.events_scope()?.may_publish(topic) {
            return Err(CapabilityError::Denied(format!(
                "publishing to topic {topic:?} is not granted"
            )));
        }
        let Some(ctx) = self.layer.clone() else {
            return Err(CapabilityError::Unavailable(
                "events.publish needs a pipeline run (this call has none)".into(),
            ));
        };
        if self.published.len() >= MAX_PUBLISHED_PER_CALL {
            return Err(CapabilityError::Denied(format!(
                "a call may publish at most {MAX_PUBLISHED_PER_CALL} events"
            )));
        }
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(CapabilityError::Invalid(format!(
                "payload of {} bytes exceeds {MAX_PAYLOAD_BYTES}",
                payload.len()
            )));
        }
        let value: serde_json::Value = serde_json::from_str(payload)
            .map_err(|e| CapabilityError::Invalid(format!("payload is not JSON: {e}")))?;
        match &ctx.schemas {
            Some(s) => s
                .check_event(topic, &value)
                .map_err(CapabilityError::Invalid)?,
            None => {
                return Err(CapabilityError::Invalid(
                    "the layer's manifest declares no [schemas.events]".into(),
                ))
            }
        }
        let id = uuid::Uuid::now_v7().to_string();
        self.published.push(PublishedEvent {
            id: id.clone(),
            topic: topic.to_string(),
            payload: value,
            json: payload.into(),
        });
        Ok(id)
    }

    fn events_read(
        &self,
        topic: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<wit::Event>, CapabilityError> {
        check_topic(topic)?;
        if !self.events_scope()?.may_read(topic) {
            return Err(CapabilityError::Denied(format!(
                "reading topic {topic:?} is not granted"
            )));
        }
        let db = self
            .services
            .db
            .clone()
            .ok_or_else(|| CapabilityError::Unavailable("no database configured".into()))?;
        let limit = limit.clamp(1, MAX_READ) as i64;
        let rows = self
            .services
            .block_on(db.read_events(topic, after, limit))
            .map_err(|e| match e {
                crate::db::DbError::InvalidInput { .. } | crate::db::DbError::NotFound { .. } => {
                    CapabilityError::Invalid(e.to_string())
                }
                e => CapabilityError::Unavailable(e.to_string()),
            })?;
        Ok(rows
            .into_iter()
            .map(|e| wit::Event {
                id: e.id,
                container: e.container,
                topic: e.topic,
                payload: e.payload.to_string(),
                emitted_at: e.emitted_at,
                producer: e.producer,
                run_id: e.run_id,
            })
            .collect())
    }
}

impl wit::Host for CallState {
    fn publish(&mut self, topic: String, payload: String) -> Result<String, CapabilityError> {
        let target = topic_target(&topic);
        let request = serde_json::json!({ "payload": payload });
        let replaying = matches!(self.tape, super::tape::TapeMode::Replay { .. });
        let r = self.taped(Capability::Events, "publish", &target, request, |s| {
            let started = Instant::now();
            let r = s.events_publish(&topic, &payload);
            let note = match (&r, s.dry_run()) {
                (Ok(id), true) => Some(format!("dry-run run: event {id} stays inside Strata")),
                (Ok(id), false) => Some(format!("event {id}")),
                _ => None,
            };
            s.audited(Capability::Events, "publish", &target, started, note, r)
        });
        // Replayed from the tape (same topic, same payload): the event is the recorded one,
        // kept in the sandbox's output like a live run's, never stored.
        if let (true, Ok(id)) = (replaying, &r) {
            if let Ok(value) = serde_json::from_str(&payload) {
                self.published.push(PublishedEvent {
                    id: id.clone(),
                    topic,
                    payload: value,
                    json: payload.into(),
                });
            }
        }
        r
    }

    fn read(
        &mut self,
        topic: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<wit::Event>, CapabilityError> {
        let target = topic_target(&topic);
        let request = serde_json::json!({ "after": after, "limit": limit });
        self.taped(Capability::Events, "read", &target, request, |s| {
            let started = Instant::now();
            let r = s.events_read(&topic, after.as_deref(), limit);
            let note = r.as_ref().ok().map(|v| format!("{} event(s)", v.len()));
            s.audited(Capability::Events, "read", &target, started, note, r)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(publish: &[&str], read: &[&str]) -> EventsScope {
        EventsScope {
            publish: publish.iter().map(|s| s.to_string()).collect(),
            read: read.iter().map(|s| s.to_string()).collect(),
            declared: None,
        }
    }

    #[test]
    fn topics_must_match_both_the_grant_and_the_declaration() {
        let declared = scope(&["deal.*"], &[]);
        let granted = scope(&["deal.approved", "invoice.*"], &["invoice.*"]);
        let eff = declared.narrow(&granted);
        assert!(eff.may_publish("deal.approved"));
        assert!(
            !eff.may_publish("invoice.issued"),
            "granted but not declared"
        );
        assert!(!eff.may_publish("deal.review"), "declared but not granted");
        assert!(
            eff.may_read("invoice.issued"),
            "declaration without read globs asks for the grant's"
        );
        assert!(!eff.may_read("deal.approved"));
        assert!(check_topic("lead.accepted").is_ok());
        assert!(check_topic("bad topic!").is_err());
        assert!(check_topic("").is_err());
    }
}
