//! Test layer for the `events` capability: publishes `probe.published` (declared and, in
//! the tests' config, granted), reads the topic back, and tries `forbidden.topic` (not
//! granted), reporting what happened as its output.

use serde_json::{json, Value};
use strata_sdk::{
    events, export_layer, CapabilityError, Layer, LayerOutcome, PluginError, RunContext,
};

struct EventsProbe;

fn text(e: &CapabilityError) -> String {
    match e {
        CapabilityError::Denied(m) => format!("denied: {m}"),
        CapabilityError::Invalid(m) => format!("invalid: {m}"),
        CapabilityError::Unavailable(m) => format!("unavailable: {m}"),
    }
}

impl Layer for EventsProbe {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        let payload = json!({"trigger": ctx.topic, "n": 1}).to_string();
        let (published_id, publish_error) = match events::publish("probe.published", &payload) {
            Ok(id) => (Value::String(id), Value::Null),
            Err(e) => (Value::Null, Value::String(text(&e))),
        };
        let (read, read_error) = match events::read("probe.published", None, 10) {
            Ok(list) => (
                Value::Array(list.into_iter().map(|e| Value::String(e.id)).collect()),
                Value::Null,
            ),
            Err(e) => (Value::Array(vec![]), Value::String(text(&e))),
        };
        let forbidden_error = match events::publish("forbidden.topic", "{}") {
            Ok(id) => json!({"unexpectedly_published": id}),
            Err(e) => Value::String(text(&e)),
        };
        Ok(LayerOutcome {
            output: json!({
                "published_id": published_id,
                "publish_error": publish_error,
                "read": read,
                "read_error": read_error,
                "forbidden_error": forbidden_error,
            })
            .to_string(),
            events: vec![],
        })
    }
}

export_layer!(EventsProbe);
