//! Helpers shared by business layers (world `layer`): payload parsing, typed errors, an
//! MCP wrapper that understands tool errors and the host's dry-run placeholder, the
//! JSON ⇄ [`Lead`] conversion, JSON in `state`, stable ids and UTC calendar arithmetic.
//!
//! Everything here that calls the host (`mcp_call`, `state_get_json`, `state_set_json`)
//! only becomes an import of the components that actually call it.

use crate::bindings::agent::strata::plugin::llm::LlmError;
use crate::bindings::agent::strata::plugin::mcp;
use crate::{Attribute, CapabilityError, EmittedEvent, LayerOutcome, Lead, LeadStatus};
use crate::{PluginError, Priority};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// Name of the MCP server holding the CRM (Strata's own server in the default config).
pub const CRM_SERVER: &str = "crm";

/// `PluginError::InvalidInput` with a message.
pub fn invalid(msg: impl Into<String>) -> PluginError {
    PluginError::InvalidInput(msg.into())
}

/// `PluginError::Failed` with a message.
pub fn failed(msg: impl Into<String>) -> PluginError {
    PluginError::Failed(msg.into())
}

/// The trigger payload as a JSON object, or a clear `InvalidInput`.
pub fn parse_payload(topic: &str, payload: &str) -> Result<Map<String, Value>, PluginError> {
    match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(invalid(format!(
            "payload of {topic:?} must be a JSON object, not {}",
            json_kind(&other)
        ))),
        Err(e) => Err(invalid(format!("payload of {topic:?} is not JSON: {e}"))),
    }
}

/// The trigger payload deserialized into `T`, or a clear `InvalidInput`.
pub fn parse_typed<T: DeserializeOwned>(topic: &str, payload: &str) -> Result<T, PluginError> {
    serde_json::from_str(payload).map_err(|e| {
        invalid(format!(
            "payload of {topic:?} is not what this layer expects: {e}"
        ))
    })
}

/// "object", "array", "string", ... for messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A layer outcome from a JSON output and `(topic, payload)` events.
pub fn outcome(output: Value, events: Vec<(String, Value)>) -> LayerOutcome {
    LayerOutcome {
        output: output.to_string(),
        events: events
            .into_iter()
            .map(|(topic, payload)| EmittedEvent {
                topic,
                payload: payload.to_string(),
            })
            .collect(),
    }
}

/// Text of a capability error, e.g. `denied: tool not granted`.
pub fn capability_error_text(e: &CapabilityError) -> String {
    match e {
        CapabilityError::Denied(m) => format!("denied: {m}"),
        CapabilityError::Invalid(m) => format!("invalid: {m}"),
        CapabilityError::Unavailable(m) => format!("unavailable: {m}"),
    }
}

/// Text of an LLM error, e.g. `unavailable: no provider configured`.
pub fn llm_error_text(e: &LlmError) -> String {
    match e {
        LlmError::Denied(m) => format!("denied: {m}"),
        LlmError::OverBudget(m) => format!("over budget: {m}"),
        LlmError::Unavailable(m) => format!("unavailable: {m}"),
        LlmError::RateLimited(m) => format!("rate-limited: {m}"),
        LlmError::Timeout(m) => format!("timeout: {m}"),
        LlmError::InvalidOutput(m) => format!("invalid output: {m}"),
        LlmError::InvalidRequest(m) => format!("invalid request: {m}"),
    }
}

/// Why an MCP tool call gave no usable result.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolError {
    /// The host refused or could not make the call (grant, server down, ...).
    Capability(CapabilityError),
    /// The tool answered with `is_error` (its text names the cause).
    Tool(String),
    /// The tool answered something that is not JSON.
    BadResult(String),
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolError::Capability(e) => write!(f, "{}", capability_error_text(e)),
            ToolError::Tool(m) => write!(f, "tool error: {m}"),
            ToolError::BadResult(m) => write!(f, "bad tool result: {m}"),
        }
    }
}

impl ToolError {
    /// `PluginError::Failed` naming the tool.
    pub fn into_plugin_error(self, tool: &str) -> PluginError {
        failed(format!("MCP {CRM_SERVER}/{tool}: {self}"))
    }
}

/// A tool's result as JSON: the structured content, else the text parsed as JSON.
pub fn tool_result_json(
    is_error: bool,
    text: &str,
    structured: Option<&str>,
) -> Result<Value, ToolError> {
    if is_error {
        let msg = if text.trim().is_empty() {
            structured.unwrap_or("").to_string()
        } else {
            text.trim().to_string()
        };
        return Err(ToolError::Tool(msg));
    }
    if let Some(s) = structured {
        return serde_json::from_str(s).map_err(|e| ToolError::BadResult(format!("{e}: {s}")));
    }
    serde_json::from_str(text.trim())
        .map_err(|e| ToolError::BadResult(format!("{e}: {}", truncate(text, 200))))
}

/// Calls `tool` of `server` with JSON arguments; the result's JSON.
pub fn mcp_call(server: &str, tool: &str, args: &Value) -> Result<Value, ToolError> {
    let r = mcp::call_tool(server, tool, &args.to_string()).map_err(ToolError::Capability)?;
    tool_result_json(r.is_error, &r.text, r.structured.as_deref())
}

/// Calls `tool` of the CRM server ([`CRM_SERVER`]).
pub fn crm_call(tool: &str, args: &Value) -> Result<Value, ToolError> {
    mcp_call(CRM_SERVER, tool, args)
}

/// True when a write tool's result is the host's dry-run placeholder
/// (`{"dry_run": true, "executed": false}`): the call was held back.
pub fn is_held_back(result: &Value) -> bool {
    result.get("dry_run").and_then(Value::as_bool) == Some(true)
        && result.get("executed").and_then(Value::as_bool) == Some(false)
}

/// The lead object of a tool result, unwrapping a `{"lead": {...}}` envelope.
pub fn unwrap_lead(v: &Value) -> Option<&Value> {
    let inner = match v.get("lead") {
        Some(l) if l.is_object() => l,
        _ => v,
    };
    inner.is_object().then_some(inner)
}

/// A non-empty string field (numbers are rendered as text).
pub fn str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A finite number field (numeric strings accepted).
pub fn num_field(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// Wire name of a lead status.
pub fn status_name(s: LeadStatus) -> &'static str {
    match s {
        LeadStatus::New => "new",
        LeadStatus::Contacted => "contacted",
        LeadStatus::Nurture => "nurture",
        LeadStatus::Qualified => "qualified",
        LeadStatus::Unqualified => "unqualified",
        LeadStatus::Junk => "junk",
    }
}

/// Lead status from its wire name (unknown → `new`).
pub fn status_of(s: &str) -> LeadStatus {
    match s.trim().to_ascii_lowercase().as_str() {
        "contacted" => LeadStatus::Contacted,
        "nurture" => LeadStatus::Nurture,
        "qualified" => LeadStatus::Qualified,
        "unqualified" => LeadStatus::Unqualified,
        "junk" => LeadStatus::Junk,
        _ => LeadStatus::New,
    }
}

/// Wire name of a priority.
pub fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Immediate => "immediate",
        Priority::High => "high",
        Priority::Medium => "medium",
        Priority::Low => "low",
    }
}

/// Priority from its wire name.
pub fn priority_of(s: &str) -> Option<Priority> {
    match s.trim().to_ascii_lowercase().as_str() {
        "immediate" => Some(Priority::Immediate),
        "high" => Some(Priority::High),
        "medium" => Some(Priority::Medium),
        "low" => Some(Priority::Low),
        _ => None,
    }
}

/// The typed lead from a JSON lead (the CRM's shape). `id` is used when the JSON has
/// none; unknown fields are ignored; `attributes` (an object) is kept as text values.
pub fn lead_from_json(id: &str, v: &Value) -> Lead {
    let attributes = v
        .get("attributes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, val)| !val.is_null())
                .map(|(k, val)| Attribute {
                    name: k.clone(),
                    value: match val {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    Lead {
        id: str_field(v, "id").unwrap_or_else(|| id.to_string()),
        name: str_field(v, "name"),
        email: str_field(v, "email"),
        company: str_field(v, "company"),
        title: str_field(v, "title"),
        industry: str_field(v, "industry"),
        employees: num_field(v, "employees").map(|n| n.round().clamp(0.0, u32::MAX as f64) as u32),
        annual_revenue: num_field(v, "annual_revenue"),
        budget: num_field(v, "budget"),
        timeline: str_field(v, "timeline"),
        source: str_field(v, "source"),
        status: str_field(v, "status")
            .map(|s| status_of(&s))
            .unwrap_or(LeadStatus::New),
        notes: str_field(v, "notes"),
        attributes,
    }
}

/// The JSON lead (the CRM's shape) of a typed lead.
pub fn lead_to_json(l: &Lead) -> Value {
    let attrs: Map<String, Value> = l
        .attributes
        .iter()
        .map(|a| (a.name.clone(), Value::String(a.value.clone())))
        .collect();
    serde_json::json!({
        "id": l.id,
        "name": l.name,
        "email": l.email,
        "company": l.company,
        "title": l.title,
        "industry": l.industry,
        "employees": l.employees,
        "annual_revenue": l.annual_revenue,
        "budget": l.budget,
        "timeline": l.timeline,
        "source": l.source,
        "status": status_name(l.status),
        "notes": l.notes,
        "attributes": attrs,
    })
}

/// A JSON value stored in `state` under `key` (`None` when absent).
pub fn state_get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, PluginError> {
    match crate::state::get(key) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| failed(format!("state {key:?} holds unreadable JSON: {e}"))),
        Err(e) => Err(failed(format!(
            "state get {key:?}: {}",
            capability_error_text(&e)
        ))),
    }
}

/// Stores `value` as JSON in `state` under `key`.
pub fn state_set_json<T: Serialize>(key: &str, value: &T) -> Result<(), PluginError> {
    let bytes = serde_json::to_vec(value).map_err(|e| failed(format!("encode {key:?}: {e}")))?;
    crate::state::set(key, &bytes)
        .map_err(|e| failed(format!("state set {key:?}: {}", capability_error_text(&e))))
}

/// FNV-1a, 64 bit: a stable hash for ids (same input → same id on every build).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `prefix` + 12 hex characters of the FNV-1a hash of `key`, e.g. `lead-3f2a9c0d11be`.
pub fn stable_id(prefix: &str, key: &str) -> String {
    format!("{prefix}{:012x}", fnv1a64(key.as_bytes()) >> 16)
}

/// Rounds to cents.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Milliseconds since the Unix epoch from the wall clock (WASI clocks).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An explicit time of the payload (`now_ms`, milliseconds since the epoch), else the
/// wall clock. The bool says whether the payload gave it.
pub fn payload_now_ms(payload: &Map<String, Value>) -> (i64, bool) {
    match payload.get("now_ms").and_then(Value::as_i64) {
        Some(t) => (t, true),
        None => (now_ms(), false),
    }
}

/// UTC calendar arithmetic (proleptic Gregorian), no time zones.
pub mod utc {
    /// Milliseconds in a day.
    pub const DAY_MS: i64 = 86_400_000;

    /// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let m = i64::from(m);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The civil date (year, month, day) of days since 1970-01-01.
    pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
        let z = z + 719_468;
        let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (if m <= 2 { y + 1 } else { y }, m, d)
    }

    /// Day number (days since the epoch) of a time in ms.
    pub fn day_of(ms: i64) -> i64 {
        ms.div_euclid(DAY_MS)
    }

    /// 0 = Monday … 6 = Sunday.
    pub fn weekday(day: i64) -> u32 {
        // 1970-01-01 was a Thursday.
        (day + 3).rem_euclid(7) as u32
    }

    /// `YYYY-MM-DD` of a day number.
    pub fn date_string(day: i64) -> String {
        let (y, m, d) = civil_from_days(day);
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` of a time in ms (seconds precision).
    pub fn rfc3339(ms: i64) -> String {
        let day = day_of(ms);
        let secs = ms.rem_euclid(DAY_MS) / 1000;
        format!(
            "{}T{:02}:{:02}:{:02}Z",
            date_string(day),
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }

    fn num(s: &str) -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    }

    /// Parses an RFC 3339 UTC time (`Z` or `+00:00`, optional fraction) into ms since the
    /// epoch. Other offsets are converted.
    pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
        let bad = || format!("{s:?} is not an RFC 3339 time like 2026-11-23T10:00:00Z");
        let s = s.trim();
        if s.len() < 20 || !s.is_char_boundary(10) || !s.is_char_boundary(19) {
            return Err(bad());
        }
        let (date, rest) = s.split_at(10);
        let dp: Vec<&str> = date.split('-').collect();
        if dp.len() != 3 || dp[0].len() != 4 || dp[1].len() != 2 || dp[2].len() != 2 {
            return Err(bad());
        }
        let (y, m, d) = (
            num(dp[0]).ok_or_else(bad)?,
            num(dp[1]).ok_or_else(bad)?,
            num(dp[2]).ok_or_else(bad)?,
        );
        let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(bad)?;
        let (time, mut zone) = rest.split_at(8);
        let tp: Vec<&str> = time.split(':').collect();
        if tp.len() != 3 || tp.iter().any(|p| p.len() != 2) {
            return Err(bad());
        }
        let (hh, mm, ss) = (
            num(tp[0]).ok_or_else(bad)?,
            num(tp[1]).ok_or_else(bad)?,
            num(tp[2]).ok_or_else(bad)?,
        );
        let mut frac_ms = 0i64;
        if let Some(f) = zone.strip_prefix('.') {
            let end = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
            if end == 0 {
                return Err(bad());
            }
            let digits = &f[..end.min(3)];
            frac_ms =
                digits.parse::<i64>().map_err(|_| bad())? * 10i64.pow(3 - digits.len() as u32);
            zone = &f[end..];
        }
        let offset_min: i64 = match zone {
            "Z" | "z" => 0,
            z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) && &z[3..4] == ":" => {
                let h = i64::from(num(&z[1..3]).ok_or_else(bad)?);
                let mi = i64::from(num(&z[4..6]).ok_or_else(bad)?);
                let sign = if z.starts_with('-') { -1 } else { 1 };
                sign * (h * 60 + mi)
            }
            _ => return Err(bad()),
        };
        let dim = days_in_month(i64::from(y), m);
        if !(1..=12).contains(&m) || d == 0 || d > dim || hh > 23 || mm > 59 || ss > 60 {
            return Err(bad());
        }
        let day = days_from_civil(i64::from(y), m, d);
        let ms = day * DAY_MS
            + i64::from(hh) * 3_600_000
            + i64::from(mm) * 60_000
            + i64::from(ss.min(59)) * 1000
            + frac_ms
            - offset_min * 60_000;
        Ok(ms)
    }

    /// Days in a month (0 for a month outside 1–12).
    pub fn days_in_month(y: i64, m: u32) -> u32 {
        match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            _ => 0,
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::utc::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_must_be_an_object() {
        assert!(parse_payload("t", r#"{"a":1}"#).is_ok());
        assert!(
            matches!(parse_payload("t", "[1]"), Err(PluginError::InvalidInput(m)) if m.contains("an array"))
        );
        assert!(
            matches!(parse_payload("t", "{"), Err(PluginError::InvalidInput(m)) if m.contains("not JSON"))
        );
    }

    #[test]
    fn tool_results() {
        assert_eq!(
            tool_result_json(false, "", Some(r#"{"a":1}"#)).unwrap(),
            json!({"a":1})
        );
        assert_eq!(
            tool_result_json(false, r#" {"b":2} "#, None).unwrap(),
            json!({"b":2})
        );
        assert_eq!(
            tool_result_json(true, "no lead \"x\"", None),
            Err(ToolError::Tool("no lead \"x\"".into()))
        );
        assert!(matches!(
            tool_result_json(false, "hello", None),
            Err(ToolError::BadResult(_))
        ));
        assert!(is_held_back(&json!({"dry_run": true, "executed": false})));
        assert!(!is_held_back(&json!({"lead": {}, "created": true})));
    }

    #[test]
    fn lead_round_trip() {
        let v = json!({"lead": {"id": "L1", "name": "Ann", "employees": "120", "budget": 5000,
                       "status": "qualified", "attributes": {"country": "DE", "n": 3, "x": null}}});
        let l = lead_from_json("fallback", unwrap_lead(&v).unwrap());
        assert_eq!(l.id, "L1");
        assert_eq!(l.employees, Some(120));
        assert_eq!(l.budget, Some(5000.0));
        assert_eq!(l.status, LeadStatus::Qualified);
        assert_eq!(l.attributes.len(), 2);
        let back = lead_to_json(&l);
        assert_eq!(back["attributes"]["n"], "3");
        assert_eq!(back["status"], "qualified");
        assert_eq!(back["email"], Value::Null);
        assert_eq!(lead_from_json("fallback", &json!({})).id, "fallback");
    }

    #[test]
    fn stable_ids() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        let a = stable_id("lead-", "ann@example.com");
        assert_eq!(a, stable_id("lead-", "ann@example.com"));
        assert_ne!(a, stable_id("lead-", "bob@example.com"));
        assert_eq!(a.len(), "lead-".len() + 12);
    }

    #[test]
    fn calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        let d = days_from_civil(2026, 11, 23);
        assert_eq!(civil_from_days(d), (2026, 11, 23));
        assert_eq!(weekday(d), 0, "2026-11-23 is a Monday");
        assert_eq!(weekday(days_from_civil(2024, 2, 29)), 3, "a Thursday");
        for z in [-800_000, -1, 0, 59, 60, 365, 10_957, 20_000, 2_000_000] {
            let (y, m, dd) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, dd), z);
        }
        let t = parse_rfc3339("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(rfc3339(t), "2026-11-23T10:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-23T11:30:00+01:30").unwrap(), t);
        assert_eq!(parse_rfc3339("2026-11-23T10:00:00.250Z").unwrap(), t + 250);
        for bad in [
            "",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-23T10:00:00",
            "2026-11-23T25:00:00Z",
            "x026-11-23T10:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_ok());
        assert_eq!(date_string(day_of(t)), "2026-11-23");
    }
}
