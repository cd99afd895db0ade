//! `forecast` (finance): `proposal.drafted` and `invoice.issued` → `forecast.updated`.
//!
//! Weighted pipeline revenue. Each deal is kept in `state` as `deal:<lead_id>` →
//! `{stage, amount_cents}`; the aggregate (count and amount per stage) is kept under
//! `forecast` and updated incrementally: the deal's old contribution is subtracted and
//! the new one added, so a run costs O(1) whatever the pipeline's size. Amounts are whole
//! cents, so repeated updates never drift. A deal never moves back to an earlier stage (a
//! late or redelivered proposal after the invoice changes nothing: `applied: false`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use strata_sdk::layer::{self, outcome, state_get_json, state_set_json};
use strata_sdk::{export_layer, Layer, LayerOutcome, PluginError, RunContext};

struct Forecast;

/// Stages in pipeline order with their win probability.
pub const STAGES: [(&str, f64); 4] = [
    ("qualified", 0.1),
    ("proposal", 0.4),
    ("approved", 0.8),
    ("invoiced", 1.0),
];

/// Position of a stage in [`STAGES`].
pub fn rank(stage: &str) -> Option<usize> {
    STAGES.iter().position(|(s, _)| *s == stage)
}

/// Win probability of a stage (0 when unknown).
pub fn probability(stage: &str) -> f64 {
    STAGES
        .iter()
        .find(|(s, _)| *s == stage)
        .map_or(0.0, |(_, p)| *p)
}

/// One deal's contribution (`deal:<lead_id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deal {
    pub stage: String,
    pub amount_cents: i64,
}

/// Count and amount of one stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTotals {
    pub count: i64,
    pub amount_cents: i64,
}

/// The pipeline aggregate (`forecast`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub stages: BTreeMap<String, StageTotals>,
}

impl Aggregate {
    /// Replaces a deal's old contribution by the new one. `false` (nothing changed) when
    /// the new stage is earlier than the old one.
    pub fn apply(&mut self, old: Option<&Deal>, new: &Deal) -> bool {
        if let Some(o) = old {
            if rank(&new.stage) < rank(&o.stage) {
                return false;
            }
            let t = self.stages.entry(o.stage.clone()).or_default();
            t.count -= 1;
            t.amount_cents -= o.amount_cents;
            if t.count <= 0 && t.amount_cents == 0 {
                self.stages.remove(&o.stage);
            }
        }
        let t = self.stages.entry(new.stage.clone()).or_default();
        t.count += 1;
        t.amount_cents += new.amount_cents;
        true
    }

    /// Number of deals.
    pub fn deals(&self) -> i64 {
        self.stages.values().map(|t| t.count).sum()
    }

    /// Weighted revenue, in cents.
    pub fn weighted_cents(&self) -> i64 {
        self.stages
            .iter()
            .map(|(s, t)| (t.amount_cents as f64 * probability(s)).round() as i64)
            .sum()
    }

    /// Amount of the deals not yet invoiced, in cents.
    pub fn open_cents(&self) -> i64 {
        self.stages
            .iter()
            .filter(|(s, _)| s.as_str() != "invoiced")
            .map(|(_, t)| t.amount_cents)
            .sum()
    }

    /// `{stage: {count, amount, weighted}}` for every known stage.
    pub fn by_stage(&self) -> Value {
        let mut m = Map::new();
        for (stage, p) in STAGES {
            let t = self.stages.get(stage).copied().unwrap_or_default();
            m.insert(
                stage.into(),
                json!({"count": t.count, "amount": dollars(t.amount_cents),
                       "weighted": dollars((t.amount_cents as f64 * p).round() as i64)}),
            );
        }
        Value::Object(m)
    }
}

/// Cents of a dollar amount.
pub fn cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
}

/// Dollars of a cent amount.
pub fn dollars(c: i64) -> f64 {
    c as f64 / 100.0
}

/// The deal an event describes: `(lead_id, deal)`.
pub fn deal_of(topic: &str, p: &Value) -> Result<(String, Deal), String> {
    let lead_id = layer::str_field(p, "lead_id").ok_or("lead_id is missing")?;
    let (stage, field) = match topic {
        "proposal.drafted" => ("proposal", "subtotal"),
        "invoice.issued" => ("invoiced", "net"),
        other => return Err(format!("forecast does not handle topic {other:?}")),
    };
    let amount = layer::num_field(p, field).ok_or_else(|| format!("{field} is missing"))?;
    Ok((
        lead_id,
        Deal {
            stage: stage.into(),
            amount_cents: cents(amount),
        },
    ))
}

impl Layer for Forecast {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        let p = Value::Object(layer::parse_payload(&ctx.topic, &ctx.payload)?);
        let (lead_id, deal) = deal_of(&ctx.topic, &p).map_err(layer::invalid)?;
        let key = format!("deal:{lead_id}");
        let old: Option<Deal> = state_get_json(&key)?;
        let mut agg: Aggregate = state_get_json("forecast")?.unwrap_or_default();
        let applied = agg.apply(old.as_ref(), &deal);
        if applied {
            state_set_json(&key, &deal)?;
            state_set_json("forecast", &agg)?;
        }
        let weighted = dollars(agg.weighted_cents());
        Ok(outcome(
            json!({"changed_lead_id": lead_id, "stage": deal.stage,
                   "amount": dollars(deal.amount_cents),
                   "previous_stage": old.map(|o| o.stage), "applied": applied,
                   "weighted_revenue": weighted}),
            vec![(
                "forecast.updated".into(),
                json!({"weighted_revenue": weighted, "open_pipeline": dollars(agg.open_cents()),
                       "deals": agg.deals(), "by_stage": agg.by_stage(),
                       "changed_lead_id": lead_id}),
            )],
        ))
    }
}

export_layer!(Forecast);

#[cfg(test)]
mod tests {
    use super::*;

    fn deal(stage: &str, amount: f64) -> Deal {
        Deal {
            stage: stage.into(),
            amount_cents: cents(amount),
        }
    }

    /// Recomputes the aggregate from scratch, for comparison.
    fn full(deals: &BTreeMap<&str, Deal>) -> Aggregate {
        let mut a = Aggregate::default();
        for d in deals.values() {
            a.apply(None, d);
        }
        a
    }

    #[test]
    fn incremental_equals_full_recomputation() {
        let mut agg = Aggregate::default();
        let mut deals: BTreeMap<&str, Deal> = BTreeMap::new();
        let steps = [
            ("a", deal("proposal", 20_700.0)),
            ("b", deal("proposal", 72_000.10)),
            ("a", deal("invoiced", 19_665.0)),
            ("c", deal("proposal", 0.3)),
            ("b", deal("proposal", 70_000.0)), // a revised proposal replaces the old amount
            ("c", deal("invoiced", 0.3)),
        ];
        for (lead, d) in steps {
            assert!(agg.apply(deals.get(lead), &d));
            deals.insert(lead, d);
            assert_eq!(agg, full(&deals));
        }
        assert_eq!(agg.deals(), 3);
        assert_eq!(agg.open_cents(), cents(70_000.0));
        assert_eq!(
            agg.weighted_cents(),
            cents(70_000.0 * 0.4) + cents(19_665.0) + cents(0.3)
        );
        let by = agg.by_stage();
        assert_eq!(
            by["proposal"],
            json!({"count": 1, "amount": 70_000.0, "weighted": 28_000.0})
        );
        assert_eq!(by["invoiced"]["count"], 2);
        assert_eq!(by["qualified"]["count"], 0);
    }

    #[test]
    fn stages_never_go_back() {
        let mut agg = Aggregate::default();
        let inv = deal("invoiced", 100.0);
        agg.apply(None, &inv);
        let before = agg.clone();
        assert!(!agg.apply(Some(&inv), &deal("proposal", 500.0)));
        assert_eq!(agg, before);
        // The same stage again (a redelivery) replaces, not adds.
        assert!(agg.apply(Some(&inv), &deal("invoiced", 100.0)));
        assert_eq!(agg, before);
    }

    #[test]
    fn probabilities_and_events() {
        assert_eq!(probability("proposal"), 0.4);
        assert_eq!(probability("invoiced"), 1.0);
        assert_eq!(probability("qualified"), 0.1);
        assert_eq!(probability("approved"), 0.8);
        let (l, d) = deal_of(
            "invoice.issued",
            &json!({"lead_id": "l1", "net": 10.5, "total": 12}),
        )
        .unwrap();
        assert_eq!((l.as_str(), d), ("l1", deal("invoiced", 10.5)));
        let (_, d) = deal_of("proposal.drafted", &json!({"lead_id": "l1", "subtotal": 3})).unwrap();
        assert_eq!(d, deal("proposal", 3.0));
        assert!(deal_of("x", &json!({"lead_id": "l"})).is_err());
    }

    #[test]
    fn schemas_match_the_producers() {
        assert_eq!(
            include_str!("../schemas/proposal-drafted.json"),
            include_str!("../../proposal/schemas/proposal-drafted.json")
        );
        assert_eq!(
            include_str!("../schemas/invoice-issued.json"),
            include_str!("../../invoicing/schemas/invoice-issued.json")
        );
    }
}
