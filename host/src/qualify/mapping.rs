//! `[qualify.crm]`: how qualification talks to the CRM, as configuration.
//!
//! ```toml
//! [qualify.crm]
//! mcp_server = "frappe"
//! read = { tool = "leads_get", arguments = { name = "{lead_id}" } }
//! record = "/data"                    # where the lead sits in the tool's JSON result
//! attributes = ["website", "territory"]
//! [qualify.crm.fields]                # Strata field = CRM field, or a rule
//! name = { join = ["first_name", "last_name"], or = "lead_name" }
//! employees = { from = "no_of_employees", range = "mid" }   # "201-500" → 350
//! status = { from = "status", map = { Qualified = "qualified" } }
//! [[qualify.crm.write_back]]
//! tool = "leads_update"
//! arguments = { name = "{lead_id}", fieldname = "status", value = "{crm_status}" }
//! [qualify.crm.status_by_priority]
//! immediate = "Qualified"
//! ```
//!
//! Invariants:
//! * Every tool call (`read`, each `write_back`) is checked against the MCP server's own
//!   input schema before it is used ([`CrmMapping::check_against`]): the tool exists,
//!   every argument given is one it declares, every argument it requires is given. A
//!   mismatch is an error naming the tool and the argument, at start-up.
//! * Placeholders (`{lead_id}`, `{score}` …, [`PLACEHOLDERS`]) are checked when the
//!   configuration loads; an unknown one is a configuration error.
//! * The lead read from the CRM never carries Strata's own write-back fields back in:
//!   attributes named `strata_*` are dropped ([`CrmMapping::lead_from_record`]).
//! * The Strata lead's id is always the id it was asked for (the CRM document id), never a
//!   field of the record.

use crate::domain::{Lead, LeadStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The placeholders a tool-call argument may use.
pub const PLACEHOLDERS: [&str; 11] = [
    "lead_id",
    "score",
    "priority",
    "action",
    "reasoning",
    "confidence",
    "strategy",
    "sha256",
    "crm_status",
    "decided_by",
    "summary",
];

/// The Strata lead fields a `[qualify.crm.fields]` rule may fill.
pub const LEAD_FIELDS: [&str; 12] = [
    "name",
    "email",
    "company",
    "title",
    "industry",
    "employees",
    "annual_revenue",
    "budget",
    "timeline",
    "source",
    "status",
    "notes",
];

/// `[qualify.crm]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CrmMapping {
    /// The MCP server (under `[mcp.servers]`) that is the CRM. When no such server is
    /// configured, qualification works on the leads stored in Strata and writes nothing back.
    pub mcp_server: String,
    /// How to read one lead.
    pub read: ToolCall,
    /// JSON pointer to the lead object in the read tool's result (e.g. `/data`); empty =
    /// the result itself, unwrapping a `{"lead": …}` or `{"data": …}` envelope.
    pub record: String,
    /// Strata lead field → CRM field or rule. Empty: the record is shaped like a Strata
    /// lead (Strata's own server).
    pub fields: BTreeMap<String, FieldRule>,
    /// CRM fields kept as the Strata lead's attributes (with a Strata-shaped record, its
    /// `attributes` object is kept as well).
    pub attributes: Vec<String>,
    /// The calls that write a qualification back, in order.
    pub write_back: Vec<ToolCall>,
    /// Priority (`immediate`, `high`, `medium`, `low`) → the CRM status `{crm_status}`
    /// stands for. A write-back call that uses `{crm_status}` is skipped for a priority
    /// not listed here.
    pub status_by_priority: BTreeMap<String, String>,
}

impl Default for CrmMapping {
    /// Strata's own MCP server (`crm`): `get_lead` / `update_lead` with `strata_*`
    /// attributes.
    fn default() -> Self {
        let args = |v: Value| v.as_object().cloned().unwrap_or_default();
        CrmMapping {
            mcp_server: "crm".into(),
            read: ToolCall {
                tool: "get_lead".into(),
                arguments: args(serde_json::json!({ "id": "{lead_id}" })),
            },
            record: String::new(),
            fields: BTreeMap::new(),
            attributes: Vec::new(),
            write_back: vec![ToolCall {
                tool: "update_lead".into(),
                arguments: args(serde_json::json!({
                    "id": "{lead_id}",
                    "attributes": {
                        "strata_score": "{score}",
                        "strata_priority": "{priority}",
                        "strata_action": "{action}",
                        "strata_strategy": "{decided_by}",
                    }
                })),
            }],
            status_by_priority: BTreeMap::new(),
        }
    }
}

/// One MCP tool call: the tool and its arguments, whose strings may hold placeholders.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    pub tool: String,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// How one Strata lead field is filled from the CRM record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum FieldRule {
    /// Copy this CRM field.
    Field(String),
    Rule(Rule),
}

/// A field rule with a transform.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Rule {
    /// The CRM field.
    pub from: Option<String>,
    /// CRM fields joined with spaces (the non-empty ones), e.g. first and last name.
    pub join: Vec<String>,
    /// CRM field used when the others give nothing.
    pub or: Option<String>,
    /// A range such as `"201-500"` or `"1000+"` becomes its low end, midpoint or high end.
    pub range: Option<RangePick>,
    /// Value map (exact, then case-insensitive), e.g. CRM status names → Strata's.
    pub map: BTreeMap<String, String>,
    /// Value when the CRM gives none (after the map).
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RangePick {
    Low,
    Mid,
    High,
}

/// Why a mapping cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    #[error("[qualify.crm] {0}")]
    Config(String),
    #[error(
        "[qualify.crm] {call}: MCP server {server} has no tool {tool:?} (it offers: {offered})"
    )]
    NoTool {
        call: String,
        server: String,
        tool: String,
        offered: String,
    },
    #[error("[qualify.crm] {call}: tool {server}/{tool} has no argument {argument:?} (its arguments: {known})")]
    UnknownArgument {
        call: String,
        server: String,
        tool: String,
        argument: String,
        known: String,
    },
    #[error("[qualify.crm] {call}: tool {server}/{tool} requires argument {argument:?}; add it to the call's `arguments`")]
    MissingArgument {
        call: String,
        server: String,
        tool: String,
        argument: String,
    },
}

/// What a qualification decided, as the write-back placeholders see it.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub lead_id: String,
    pub score: f64,
    pub priority: String,
    pub action: String,
    pub reasoning: String,
    pub confidence: f64,
    /// `plugin@version` that decided (the agent, or the scorer).
    pub strategy: String,
    pub sha256: String,
    /// `llm`, or the fallback scorer with the reason.
    pub decided_by: String,
}

impl CrmMapping {
    /// Checks what needs no MCP server: placeholders, field names, rules.
    pub fn validate(&self) -> Result<(), MappingError> {
        let bad = |m: String| Err(MappingError::Config(m));
        if self.mcp_server.trim().is_empty() {
            return bad("mcp_server must not be empty".into());
        }
        if self.read.tool.trim().is_empty() {
            return bad("read.tool must not be empty".into());
        }
        if !self.record.is_empty() && !self.record.starts_with('/') {
            return bad(format!(
                "record {:?} must be a JSON pointer such as \"/data\"",
                self.record
            ));
        }
        for (i, call) in self.calls() {
            if call.tool.trim().is_empty() {
                return bad(format!("{i}: tool must not be empty"));
            }
            let mut unknown = Vec::new();
            visit_strings(&Value::Object(call.arguments.clone()), &mut |s| {
                for p in placeholders_in(s) {
                    let allowed = if i == "read" {
                        p == "lead_id"
                    } else {
                        PLACEHOLDERS.contains(&p)
                    };
                    if !allowed {
                        unknown.push(p.to_string());
                    }
                }
            });
            if let Some(p) = unknown.first() {
                let known = if i == "read" {
                    "{lead_id}".to_string()
                } else {
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                };
                return bad(format!("{i}: unknown placeholder {{{p}}} (known: {known})"));
            }
        }
        for (field, rule) in &self.fields {
            if !LEAD_FIELDS.contains(&field.as_str()) {
                return bad(format!(
                    "fields.{field}: Strata leads have no field {field:?} (fields: {}; list other CRM fields under `attributes`)",
                    LEAD_FIELDS.join(", ")
                ));
            }
            if let FieldRule::Rule(r) = rule {
                if r.from.is_none() && r.join.is_empty() && r.or.is_none() && r.default.is_none() {
                    return bad(format!(
                        "fields.{field}: give `from`, `join`, `or` or `default`"
                    ));
                }
                if r.range.is_some()
                    && field != "employees"
                    && field != "annual_revenue"
                    && field != "budget"
                {
                    return bad(format!(
                        "fields.{field}: `range` applies to numeric fields only"
                    ));
                }
            }
        }
        if let Some((k, _)) = self
            .status_by_priority
            .iter()
            .find(|(k, _)| !["immediate", "high", "medium", "low"].contains(&k.as_str()))
        {
            return bad(format!(
                "status_by_priority.{k}: priorities are immediate, high, medium, low"
            ));
        }
        Ok(())
    }

    /// The read call and the write-back calls, named as errors name them.
    fn calls(&self) -> impl Iterator<Item = (String, &ToolCall)> {
        std::iter::once(("read".to_string(), &self.read)).chain(
            self.write_back
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("write_back[{i}] ({})", c.tool), c)),
        )
    }

    /// Checks every call against the tools the CRM's MCP server lists.
    pub fn check_against(&self, tools: &[crate::mcp::ToolInfo]) -> Result<(), MappingError> {
        for (call, c) in self.calls() {
            let Some(tool) = tools.iter().find(|t| t.name == c.tool) else {
                let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
                names.sort_unstable();
                return Err(MappingError::NoTool {
                    call,
                    server: self.mcp_server.clone(),
                    tool: c.tool.clone(),
                    offered: names.join(", "),
                });
            };
            let schema = &tool.input_schema;
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let open = schema.get("additionalProperties") == Some(&Value::Bool(true));
                if let Some(arg) = c
                    .arguments
                    .keys()
                    .find(|k| !props.contains_key(*k) && !open)
                {
                    return Err(MappingError::UnknownArgument {
                        call,
                        server: self.mcp_server.clone(),
                        tool: c.tool.clone(),
                        argument: arg.clone(),
                        known: props.keys().cloned().collect::<Vec<_>>().join(", "),
                    });
                }
            }
            let required = schema.get("required").and_then(Value::as_array);
            for r in required.into_iter().flatten().filter_map(Value::as_str) {
                if !c.arguments.contains_key(r) {
                    return Err(MappingError::MissingArgument {
                        call,
                        server: self.mcp_server.clone(),
                        tool: c.tool.clone(),
                        argument: r.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The read call's arguments for `lead_id`.
    pub fn read_arguments(&self, lead_id: &str) -> Value {
        let vars = BTreeMap::from([("lead_id", lead_id.to_string())]);
        render(&Value::Object(self.read.arguments.clone()), &vars)
    }

    /// The write-back calls for `v`, rendered; a call is `Err(reason)` when it is skipped
    /// (it uses `{crm_status}` and the priority maps to no CRM status).
    pub fn write_back_calls(&self, v: &Verdict) -> Vec<(String, Result<Value, String>)> {
        let crm_status = self.status_by_priority.get(&v.priority);
        let vars = v.vars(crm_status.cloned());
        self.write_back
            .iter()
            .map(|c| {
                let args = Value::Object(c.arguments.clone());
                let mut uses_status = false;
                visit_strings(&args, &mut |s| {
                    uses_status |= placeholders_in(s).any(|p| p == "crm_status")
                });
                let call = if uses_status && crm_status.is_none() {
                    Err(format!(
                        "skipped: priority {:?} maps to no CRM status ([qualify.crm.status_by_priority])",
                        v.priority
                    ))
                } else {
                    Ok(render(&args, &vars))
                };
                (c.tool.clone(), call)
            })
            .collect()
    }

    /// The lead object inside a read tool's result (structured content, or JSON text).
    pub fn record_of(&self, structured: Option<&Value>, text: &str) -> Option<Value> {
        let parsed = structured
            .cloned()
            .or_else(|| serde_json::from_str(text.trim()).ok())?;
        let v = if self.record.is_empty() {
            match ["lead", "data"]
                .iter()
                .find_map(|k| parsed.get(k).filter(|v| v.is_object()))
            {
                Some(inner) => inner.clone(),
                None => parsed,
            }
        } else {
            parsed.pointer(&self.record)?.clone()
        };
        v.is_object().then_some(v)
    }

    /// The Strata lead `lead_id` from the CRM's record.
    pub fn lead_from_record(&self, lead_id: &str, record: &Value) -> Lead {
        let get = |field: &str| -> Option<String> {
            match self.fields.get(field) {
                Some(rule) => rule.apply(record),
                None if self.fields.is_empty() => scalar(record.get(field)?),
                None => None,
            }
        };
        let number = |field: &str| -> Option<f64> {
            let s = get(field)?;
            let range = match self.fields.get(field) {
                Some(FieldRule::Rule(r)) => r.range,
                _ => None,
            };
            parse_number(&s, range.unwrap_or(RangePick::Mid))
        };
        let mut attributes = BTreeMap::new();
        if self.fields.is_empty() {
            if let Some(m) = record.get("attributes").and_then(Value::as_object) {
                for (k, v) in m {
                    if let Some(s) = scalar(v) {
                        attributes.insert(k.clone(), s);
                    }
                }
            }
        }
        for k in &self.attributes {
            if let Some(s) = record.get(k).and_then(scalar) {
                attributes.insert(k.clone(), s);
            }
        }
        attributes.retain(|k, _| !k.starts_with("strata_"));
        Lead {
            id: lead_id.to_string(),
            name: get("name"),
            email: get("email"),
            company: get("company"),
            title: get("title"),
            industry: get("industry"),
            employees: number("employees").map(|n| n.clamp(0.0, u32::MAX as f64) as u32),
            annual_revenue: number("annual_revenue").filter(|n| *n >= 0.0),
            budget: number("budget").filter(|n| *n >= 0.0),
            timeline: get("timeline"),
            source: get("source"),
            status: get("status")
                .and_then(|s| s.to_ascii_lowercase().parse::<LeadStatus>().ok())
                .unwrap_or_default(),
            notes: get("notes"),
            attributes,
        }
    }
}

impl FieldRule {
    fn apply(&self, record: &Value) -> Option<String> {
        let field = |k: &str| record.get(k).and_then(scalar);
        match self {
            FieldRule::Field(k) => field(k),
            FieldRule::Rule(r) => {
                let joined = if r.join.is_empty() {
                    None
                } else {
                    let parts: Vec<String> = r.join.iter().filter_map(|k| field(k)).collect();
                    (!parts.is_empty()).then(|| parts.join(" "))
                };
                let raw = r
                    .from
                    .as_deref()
                    .and_then(field)
                    .or(joined)
                    .or_else(|| r.or.as_deref().and_then(field));
                let mapped = raw.map(|v| {
                    r.map
                        .get(&v)
                        .or_else(|| {
                            r.map
                                .iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(&v))
                                .map(|(_, m)| m)
                        })
                        .cloned()
                        .unwrap_or(v)
                });
                mapped.or_else(|| r.default.clone())
            }
        }
    }
}

impl Verdict {
    fn vars(&self, crm_status: Option<String>) -> BTreeMap<&'static str, String> {
        let summary = format!(
            "Strata qualification: score {:.1}/100, priority {}.\nRecommended action: {}\nReasoning: {}\nDecided by {} ({}), sha256 {}.",
            self.score, self.priority, self.action, self.reasoning, self.strategy, self.decided_by, self.sha256
        );
        BTreeMap::from([
            ("lead_id", self.lead_id.clone()),
            ("score", format!("{:.1}", self.score)),
            ("priority", self.priority.clone()),
            ("action", self.action.clone()),
            ("reasoning", self.reasoning.clone()),
            ("confidence", format!("{:.2}", self.confidence)),
            ("strategy", self.strategy.clone()),
            ("sha256", self.sha256.clone()),
            ("crm_status", crm_status.unwrap_or_default()),
            ("decided_by", self.decided_by.clone()),
            ("summary", summary),
        ])
    }
}

/// A JSON scalar as text; empty strings and non-scalars are `None`.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A number from CRM text: `"2,400,000"`, `"201-500"` (by `pick`), `"1000+"`, `"10"`.
pub fn parse_number(s: &str, pick: RangePick) -> Option<f64> {
    let clean: String = s
        .chars()
        .filter(|c| !matches!(c, ',' | ' ' | '_' | '$'))
        .collect();
    let num = |t: &str| t.parse::<f64>().ok().filter(|f| f.is_finite());
    if let Some(n) = num(&clean) {
        return Some(n);
    }
    if let Some(low) = clean.strip_suffix('+') {
        return num(low);
    }
    let (lo, hi) = clean.split_once(['-', '–'])?;
    let (lo, hi) = (num(lo)?, num(hi)?);
    Some(match pick {
        RangePick::Low => lo,
        RangePick::High => hi,
        RangePick::Mid => ((lo + hi) / 2.0).round(),
    })
}

/// The `{name}` placeholders in `s`.
fn placeholders_in(s: &str) -> impl Iterator<Item = &str> {
    s.split('{').skip(1).filter_map(|part| {
        let name = part.split_once('}')?.0;
        (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .then_some(name)
    })
}

fn visit_strings(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| visit_strings(x, f)),
        Value::Object(m) => m.values().for_each(|x| visit_strings(x, f)),
        _ => {}
    }
}

/// `v` with every `{name}` in its strings replaced by `vars[name]`.
fn render(v: &Value, vars: &BTreeMap<&str, String>) -> Value {
    match v {
        Value::String(s) => {
            let mut out = s.clone();
            for (k, val) in vars {
                out = out.replace(&format!("{{{k}}}"), val);
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| render(x, vars)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), render(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Top-level string arguments whose schema type is a number become numbers.
pub fn coerce_to_schema(args: Value, schema: &Value) -> Value {
    let Value::Object(mut m) = args else {
        return args;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, v) in m.iter_mut() {
        let ty = props
            .and_then(|p| p.get(k))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str);
        if let (Some("number" | "integer"), Value::String(s)) = (ty, &*v) {
            if let Ok(n) = s.trim().parse::<f64>() {
                *v = serde_json::json!(n);
            }
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests;
