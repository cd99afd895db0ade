//! The lead the host hands over (JSON shaped like Strata's lead), and the typed lead the
//! `scoring` capability takes.

use serde_json::Value;
use strata_sdk::{Attribute, Lead, LeadStatus};

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

fn status(s: Option<String>) -> LeadStatus {
    match s.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("contacted") => LeadStatus::Contacted,
        Some("nurture") => LeadStatus::Nurture,
        Some("qualified") => LeadStatus::Qualified,
        Some("unqualified") => LeadStatus::Unqualified,
        Some("junk") => LeadStatus::Junk,
        _ => LeadStatus::New,
    }
}

/// The typed lead for a scorer. Unknown fields are ignored; `attributes` (an object of
/// strings) is kept.
pub fn to_wit_lead(id: &str, v: &Value) -> Lead {
    let attributes = v
        .get("attributes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
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
        id: text(v, "id").unwrap_or_else(|| id.to_string()),
        name: text(v, "name"),
        email: text(v, "email"),
        company: text(v, "company"),
        title: text(v, "title"),
        industry: text(v, "industry"),
        employees: number(v, "employees").map(|n| n.clamp(0.0, u32::MAX as f64) as u32),
        annual_revenue: number(v, "annual_revenue"),
        budget: number(v, "budget"),
        timeline: text(v, "timeline"),
        source: text(v, "source"),
        status: status(text(v, "status")),
        notes: text(v, "notes"),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_strata_shaped_lead() {
        let v = json!({"id": "L1", "budget": "5000", "status": "qualified"});
        let l = to_wit_lead("x", &v);
        assert_eq!(l.id, "L1");
        assert_eq!(l.budget, Some(5000.0));
        assert_eq!(l.status, LeadStatus::Qualified);
        let s = json!({"id": "L2", "attributes": {"a": 1}});
        assert_eq!(to_wit_lead("x", &s).attributes[0].value, "1");
    }
}
