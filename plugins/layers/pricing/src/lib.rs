//! `pricing` (finance): `proposal.drafted` → `deal.approved` | `deal.review`.
//!
//! Pure rules, no capability: a volume discount by subtotal ([`VOLUME_TIERS`]), an extra
//! discount for immediate-priority leads, a cap; then the approval rules ([`decide`]). A
//! deal that breaks any of them goes to `deal.review` with the reasons.

use serde_json::{json, Value};
use strata_sdk::layer::{self, outcome, round2, stable_id};
use strata_sdk::{export_layer, Layer, LayerOutcome, PluginError, RunContext};

struct Pricing;

/// (minimum subtotal, discount %, rule name), highest first.
pub const VOLUME_TIERS: [(f64, f64, &str); 3] = [
    (100_000.0, 15.0, "volume_15"),
    (50_000.0, 10.0, "volume_10"),
    (20_000.0, 5.0, "volume_5"),
];
/// Extra discount for immediate-priority leads.
pub const IMMEDIATE_EXTRA: f64 = 2.0;
/// No deal gets more than this.
pub const DISCOUNT_CAP: f64 = 20.0;
/// Approval needed above this discount …
pub const APPROVAL_DISCOUNT: f64 = 15.0;
/// … or above this total …
pub const APPROVAL_TOTAL: f64 = 150_000.0;
/// … or above this total when the lead's budget is unknown.
pub const APPROVAL_TOTAL_NO_BUDGET: f64 = 50_000.0;
/// Review when the total exceeds the known budget by more than this share.
pub const BUDGET_TOLERANCE: f64 = 0.25;

/// The priced deal and the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub discount_pct: f64,
    pub discount: f64,
    pub total: f64,
    /// Names of the discount rules applied.
    pub rules: Vec<String>,
    /// Why the deal needs review; empty = approved.
    pub reasons: Vec<String>,
}

/// Discount and approval for a subtotal, a priority and the lead's budget.
pub fn decide(subtotal: f64, priority: Option<&str>, budget: Option<f64>) -> Decision {
    let mut rules = Vec::new();
    let mut pct = 0.0;
    if let Some((_, p, name)) = VOLUME_TIERS.iter().find(|(min, _, _)| subtotal >= *min) {
        pct += p;
        rules.push(name.to_string());
    }
    if priority == Some("immediate") {
        pct += IMMEDIATE_EXTRA;
        rules.push("priority_immediate_2".into());
    }
    let (pct, capped) = cap(pct);
    if capped {
        rules.push("discount_cap_20".into());
    }
    let discount = round2(subtotal * pct / 100.0);
    let total = round2(subtotal - discount);
    let mut reasons = Vec::new();
    if pct > APPROVAL_DISCOUNT {
        reasons.push(format!("discount {pct}% exceeds {APPROVAL_DISCOUNT}%"));
    }
    if total > APPROVAL_TOTAL {
        reasons.push(format!("total {total} exceeds {APPROVAL_TOTAL}"));
    }
    match budget {
        None if total > APPROVAL_TOTAL_NO_BUDGET => reasons.push(format!(
            "the lead's budget is unknown and the total {total} exceeds {APPROVAL_TOTAL_NO_BUDGET}"
        )),
        Some(b) if total > b * (1.0 + BUDGET_TOLERANCE) => reasons.push(format!(
            "total {total} exceeds the lead's budget {b} by more than {}%",
            BUDGET_TOLERANCE * 100.0
        )),
        _ => {}
    }
    Decision {
        discount_pct: pct,
        discount,
        total,
        rules,
        reasons,
    }
}

/// The discount within [`DISCOUNT_CAP`]; true when it was cut.
pub fn cap(pct: f64) -> (f64, bool) {
    if pct > DISCOUNT_CAP {
        (DISCOUNT_CAP, true)
    } else {
        (pct, false)
    }
}

/// The deal id: one deal per proposal.
pub fn deal_id(proposal_id: &str) -> String {
    stable_id("deal-", proposal_id)
}

/// Sum of the items' `amount`s; an error when an item has none.
pub fn items_sum(items: &[Value]) -> Result<f64, String> {
    let mut sum = 0.0;
    for (i, item) in items.iter().enumerate() {
        sum += item
            .get("amount")
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("items[{i}].amount is missing"))?;
    }
    Ok(round2(sum))
}

impl Layer for Pricing {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        let p = Value::Object(layer::parse_payload(&ctx.topic, &ctx.payload)?);
        let need = |k: &str| {
            layer::str_field(&p, k).ok_or_else(|| layer::invalid(format!("{k} is missing")))
        };
        let lead_id = need("lead_id")?;
        let proposal_id = need("proposal_id")?;
        let items = p
            .get("items")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| layer::invalid("items must be a non-empty array"))?;
        let subtotal = items_sum(items).map_err(layer::invalid)?;
        if let Some(given) = p.get("subtotal").and_then(Value::as_f64) {
            if (given - subtotal).abs() > 0.01 {
                return Err(layer::invalid(format!(
                    "subtotal {given} is not the sum of the items ({subtotal})"
                )));
            }
        }
        let lead = p
            .get("lead")
            .cloned()
            .unwrap_or_else(|| json!({ "id": lead_id }));
        let priority = p.get("priority").and_then(Value::as_str);
        let budget = layer::num_field(&lead, "budget");
        let d = decide(subtotal, priority, budget);
        let id = deal_id(&proposal_id);
        let mut event = json!({
            "deal_id": id, "lead_id": lead_id, "proposal_id": proposal_id,
            "items": items, "subtotal": subtotal, "discount_pct": d.discount_pct,
            "discount": d.discount, "total": d.total, "currency": "USD",
            "rules": d.rules, "lead": lead, "priority": priority,
        });
        if let Some(now) = p.get("now_ms").filter(|v| v.is_i64()) {
            event["now_ms"] = now.clone();
        }
        let (decision, topic) = if d.reasons.is_empty() {
            ("approved", "deal.approved")
        } else {
            event["reasons"] = json!(d.reasons);
            ("review", "deal.review")
        };
        Ok(outcome(
            json!({"decision": decision, "deal_id": id, "total": d.total,
                   "discount_pct": d.discount_pct, "rules": d.rules, "reasons": d.reasons}),
            vec![(topic.into(), event)],
        ))
    }
}

export_layer!(Pricing);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_tiers() {
        let d = decide(19_999.0, None, Some(50_000.0));
        assert_eq!((d.discount_pct, d.total), (0.0, 19_999.0));
        assert!(d.rules.is_empty() && d.reasons.is_empty());
        let d = decide(20_700.0, Some("high"), Some(30_000.0));
        assert_eq!(
            (d.discount_pct, d.discount, d.total),
            (5.0, 1_035.0, 19_665.0)
        );
        assert_eq!(d.rules, ["volume_5"]);
        assert_eq!(decide(50_000.0, None, Some(1e6)).discount_pct, 10.0);
        assert_eq!(decide(100_000.0, None, Some(1e6)).discount_pct, 15.0);
    }

    #[test]
    fn immediate_extra_and_cap() {
        let d = decide(72_000.0, Some("immediate"), Some(100_000.0));
        assert_eq!(d.discount_pct, 12.0);
        assert_eq!(d.rules, ["volume_10", "priority_immediate_2"]);
        assert_eq!(d.total, 63_360.0);
        assert!(d.reasons.is_empty(), "{:?}", d.reasons);
        // 15 + 2 = 17: over the approval threshold, under the cap.
        let d = decide(120_000.0, Some("immediate"), Some(200_000.0));
        assert_eq!(d.discount_pct, 17.0);
        assert_eq!(d.reasons.len(), 1);
        assert!(d.reasons[0].contains("discount 17%"));
        assert_eq!(cap(22.0), (20.0, true));
        assert_eq!(cap(20.0), (20.0, false));
    }

    #[test]
    fn approval_rules() {
        let d = decide(264_000.0, Some("immediate"), Some(300_000.0));
        assert_eq!(d.reasons.len(), 2, "{:?}", d.reasons);
        let d = decide(60_000.0, None, None);
        assert_eq!(d.total, 54_000.0);
        assert!(d.reasons[0].contains("budget is unknown"));
        let d = decide(40_000.0, None, None);
        assert!(d.reasons.is_empty(), "unknown budget is fine below 50,000");
        // Budget 25,000: 31,250 is the most a total may reach.
        assert!(decide(30_000.0, None, Some(25_000.0)).reasons.is_empty()); // 28,500
        let d = decide(40_000.0, None, Some(25_000.0)); // 38,000
        assert!(d.reasons[0].contains("by more than 25%"), "{:?}", d.reasons);
    }

    #[test]
    fn items_and_ids() {
        let items = vec![json!({"amount": 1.005}), json!({"amount": 2})];
        assert_eq!(items_sum(&items).unwrap(), 3.01);
        assert!(items_sum(&[json!({})]).is_err());
        assert_eq!(deal_id("p1"), deal_id("p1"));
        assert!(deal_id("p1").starts_with("deal-"));
    }

    #[test]
    fn schemas_match_producers_and_consumers() {
        assert_eq!(
            include_str!("../schemas/proposal-drafted.json"),
            include_str!("../../proposal/schemas/proposal-drafted.json")
        );
        let approved = include_str!("../schemas/deal-approved.json");
        assert_eq!(
            approved,
            include_str!("../../kickoff/schemas/deal-approved.json")
        );
        assert_eq!(
            approved,
            include_str!("../../invoicing/schemas/deal-approved.json")
        );
    }
}
