//! `booking` (operations): `lead.qualified` and `booking.received` → `meeting.booked` |
//! `lead.nurture` | `booking.conflict`.
//!
//! A qualified lead of priority immediate or high gets a 30-minute discovery call at the
//! next free business slot ([`calendar`]); lower priorities go to nurturing. A booking from
//! the signed webhook is validated and stored unless it overlaps a booked slot. Bookings
//! live in `state`: `booking:<id>` (the booking) and `day:<YYYY-MM-DD>` (the day's index).
//! Ids are derived from their inputs, so a redelivered webhook is recognised (`duplicate`).

pub mod calendar;

use calendar::{Calendar, Entry, MAX_MINUTES, MINUTE_MS, MIN_MINUTES};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use strata_sdk::layer::utc::{date_string, parse_rfc3339, rfc3339};
use strata_sdk::layer::{self, outcome, stable_id, state_get_json, state_set_json};
use strata_sdk::{export_layer, log, Layer, LayerOutcome, PluginError, RunContext};

struct Booking;

/// A stored booking (`booking:<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub id: String,
    pub lead_id: String,
    pub start: String,
    pub start_ms: i64,
    pub duration_minutes: i64,
    pub source: String,
    #[serde(default)]
    pub delivery_id: Option<String>,
}

/// A validated `booking.received`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookBooking {
    pub id: String,
    pub lead_id: String,
    pub start_ms: i64,
    pub duration_minutes: i64,
    pub delivery_id: Option<String>,
}

/// Validates a `booking.received` payload and derives its booking id.
pub fn parse_webhook(p: &Map<String, Value>) -> Result<WebhookBooking, String> {
    let v = Value::Object(p.clone());
    let lead_id = layer::str_field(&v, "lead_id").ok_or("lead_id is missing")?;
    let start = p
        .get("start")
        .and_then(Value::as_str)
        .ok_or("start is missing")?;
    let start_ms = parse_rfc3339(start)?;
    let duration = p
        .get("duration_minutes")
        .and_then(|d| {
            d.as_i64()
                .or_else(|| d.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        })
        .ok_or("duration_minutes must be an integer")?;
    if !(MIN_MINUTES..=MAX_MINUTES).contains(&duration) {
        return Err(format!(
            "duration_minutes must be within {MIN_MINUTES}–{MAX_MINUTES}, not {duration}"
        ));
    }
    let delivery_id = layer::str_field(&v, "delivery_id");
    let key = match &delivery_id {
        Some(d) => format!("webhook|{d}"),
        None => format!("webhook|{lead_id}|{start_ms}|{duration}"),
    };
    Ok(WebhookBooking {
        id: stable_id("bk-", &key),
        lead_id,
        start_ms,
        duration_minutes: duration,
        delivery_id,
    })
}

/// Id of an automatic booking.
pub fn auto_id(lead_id: &str, start_ms: i64) -> String {
    stable_id("bk-", &format!("auto|{lead_id}|{start_ms}"))
}

fn day_key(day: i64) -> String {
    format!("day:{}", date_string(day))
}

fn load_day(day: i64) -> Result<Vec<Entry>, PluginError> {
    Ok(state_get_json(&day_key(day))?.unwrap_or_default())
}

/// Stores the booking and its day index entry.
fn store<F>(cal: &mut Calendar<F>, b: &Stored) -> Result<(), PluginError>
where
    F: FnMut(i64) -> Result<Vec<Entry>, PluginError>,
{
    let (day, list) = cal.add(Entry {
        id: b.id.clone(),
        start_ms: b.start_ms,
        end_ms: b.start_ms + b.duration_minutes * MINUTE_MS,
    })?;
    state_set_json(&format!("booking:{}", b.id), b)?;
    state_set_json(&day_key(day), &list)
}

fn copy_now(p: &Map<String, Value>, event: &mut Value) {
    if let Some(now) = p.get("now_ms").filter(|v| v.is_i64()) {
        event["now_ms"] = now.clone();
    }
}

fn on_qualified(p: &Map<String, Value>) -> Result<LayerOutcome, PluginError> {
    let v = Value::Object(p.clone());
    let lead_id =
        layer::str_field(&v, "lead_id").ok_or_else(|| layer::invalid("lead_id is missing"))?;
    let priority = p
        .get("score")
        .and_then(|s| s.get("priority"))
        .and_then(Value::as_str)
        .and_then(layer::priority_of)
        .ok_or_else(|| layer::invalid("score.priority is missing or unknown"))?;
    let pname = layer::priority_name(priority);
    if !matches!(pname, "immediate" | "high") {
        let reason = format!("priority {pname}: nurture instead of a discovery call");
        return Ok(outcome(
            json!({"action": "nurture", "lead_id": lead_id, "booking_id": null, "start": null,
                   "source": null, "conflicting_booking_id": null}),
            vec![(
                "lead.nurture".into(),
                json!({"lead_id": lead_id, "priority": pname, "reason": reason}),
            )],
        ));
    }
    let (now, _) = layer::payload_now_ms(p);
    let mut cal = Calendar::new(load_day);
    let start_ms = cal
        .next_free_slot(now)?
        .ok_or_else(|| layer::failed("no free discovery-call slot in the next 60 days"))?;
    let b = Stored {
        id: auto_id(&lead_id, start_ms),
        lead_id: lead_id.clone(),
        start: rfc3339(start_ms),
        start_ms,
        duration_minutes: calendar::CALL_MINUTES,
        source: "auto".into(),
        delivery_id: None,
    };
    store(&mut cal, &b)?;
    log::info(&format!(
        "discovery call {} for {lead_id} at {}",
        b.id, b.start
    ));
    let mut event = json!({
        "booking_id": b.id, "lead_id": lead_id, "start": b.start,
        "duration_minutes": b.duration_minutes, "source": "auto", "priority": pname,
    });
    if let Some(lead) = p.get("lead").filter(|l| l.is_object()) {
        event["lead"] = lead.clone();
    }
    copy_now(p, &mut event);
    Ok(outcome(
        json!({"action": "booked", "lead_id": lead_id, "booking_id": b.id, "start": b.start,
               "source": "auto", "conflicting_booking_id": null}),
        vec![("meeting.booked".into(), event)],
    ))
}

fn on_webhook(p: &Map<String, Value>) -> Result<LayerOutcome, PluginError> {
    let w = parse_webhook(p).map_err(layer::invalid)?;
    let start = rfc3339(w.start_ms);
    let summary = |action: &str, conflict: Option<&str>| {
        json!({"action": action, "lead_id": w.lead_id, "booking_id": w.id, "start": start,
               "source": "webhook", "conflicting_booking_id": conflict})
    };
    if state_get_json::<Stored>(&format!("booking:{}", w.id))?.is_some() {
        log::info(&format!("booking {} was delivered before; ignored", w.id));
        return Ok(outcome(summary("duplicate", None), vec![]));
    }
    let mut cal = Calendar::new(load_day);
    let end = w.start_ms + w.duration_minutes * MINUTE_MS;
    if let Some(c) = cal.conflict(w.start_ms, end)? {
        return Ok(outcome(
            summary("conflict", Some(&c.id)),
            vec![(
                "booking.conflict".into(),
                json!({"lead_id": w.lead_id, "start": start, "duration_minutes": w.duration_minutes,
                       "conflicting_booking_id": c.id, "delivery_id": w.delivery_id}),
            )],
        ));
    }
    let b = Stored {
        id: w.id.clone(),
        lead_id: w.lead_id.clone(),
        start: start.clone(),
        start_ms: w.start_ms,
        duration_minutes: w.duration_minutes,
        source: "webhook".into(),
        delivery_id: w.delivery_id.clone(),
    };
    store(&mut cal, &b)?;
    let mut event = json!({
        "booking_id": b.id, "lead_id": b.lead_id, "start": start,
        "duration_minutes": b.duration_minutes, "source": "webhook",
        "delivery_id": w.delivery_id,
    });
    for key in ["title", "attendee_email"] {
        if let Some(s) = p.get(key).filter(|v| v.is_string()) {
            event[key] = s.clone();
        }
    }
    Ok(outcome(
        summary("booked", None),
        vec![("meeting.booked".into(), event)],
    ))
}

impl Layer for Booking {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        let p = layer::parse_payload(&ctx.topic, &ctx.payload)?;
        match ctx.topic.as_str() {
            "lead.qualified" => on_qualified(&p),
            "booking.received" => on_webhook(&p),
            other => Err(layer::invalid(format!(
                "booking does not handle topic {other:?}"
            ))),
        }
    }
}

export_layer!(Booking);

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn webhook_validation() {
        let ok = parse_webhook(&obj(
            json!({"lead_id": "l1", "start": "2026-11-23T10:00:00Z",
                                           "duration_minutes": 45, "delivery_id": "d-1"}),
        ))
        .unwrap();
        assert_eq!(ok.duration_minutes, 45);
        assert_eq!(rfc3339(ok.start_ms), "2026-11-23T10:00:00Z");
        let again = parse_webhook(&obj(
            json!({"lead_id": "l1", "start": "2026-11-23T10:00:00Z",
                                              "duration_minutes": 45, "delivery_id": "d-1"}),
        ))
        .unwrap();
        assert_eq!(ok.id, again.id, "a redelivery maps to the same booking");
        let other = parse_webhook(&obj(
            json!({"lead_id": "l1", "start": "2026-11-23T10:00:00Z",
                                              "duration_minutes": 45, "delivery_id": "d-2"}),
        ))
        .unwrap();
        assert_ne!(ok.id, other.id);
        for (bad, why) in [
            (
                json!({"start": "2026-11-23T10:00:00Z", "duration_minutes": 30}),
                "lead_id",
            ),
            (
                json!({"lead_id": "l", "start": "tomorrow", "duration_minutes": 30}),
                "RFC 3339",
            ),
            (
                json!({"lead_id": "l", "start": "2026-11-23T10:00:00Z", "duration_minutes": 10}),
                "within",
            ),
            (
                json!({"lead_id": "l", "start": "2026-11-23T10:00:00Z", "duration_minutes": 241}),
                "within",
            ),
            (
                json!({"lead_id": "l", "start": "2026-11-23T10:00:00Z", "duration_minutes": "30"}),
                "integer",
            ),
        ] {
            let e = parse_webhook(&obj(bad)).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn auto_ids_are_stable() {
        assert_eq!(auto_id("l1", 5), auto_id("l1", 5));
        assert_ne!(auto_id("l1", 5), auto_id("l1", 6));
    }

    #[test]
    fn schemas_match_producers_and_consumers() {
        assert_eq!(
            include_str!("../schemas/lead-qualified.json"),
            include_str!("../../qualification/schemas/lead-qualified.json")
        );
        assert_eq!(
            include_str!("../schemas/meeting-booked.json"),
            include_str!("../../proposal/schemas/meeting-booked.json")
        );
    }
}
