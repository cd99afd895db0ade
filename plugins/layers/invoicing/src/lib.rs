//! `invoicing` (finance): `deal.approved` → `invoice.issued`.
//!
//! Issues an invoice: number from the sequence `invoice_seq` in `state`
//! (`INV-<year>-<000123>`; in a dry run the sequence is not persisted), lines from the
//! deal's items plus a discount line, VAT by the lead's `country` attribute ([`vat_rate`],
//! default 0 %), issue date from the clock (or the payload's `now_ms`), due net 30. The
//! invoice is stored as `invoice:<number>`; `deal-invoice:<deal_id>` makes a redelivered
//! deal a no-op instead of a second invoice.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata_sdk::layer::utc::{civil_from_days, date_string, day_of};
use strata_sdk::layer::{self, outcome, round2, state_get_json, state_set_json};
use strata_sdk::{export_layer, log, Layer, LayerOutcome, PluginError, RunContext};

struct Invoicing;

/// Days until an invoice is due.
pub const NET_DAYS: i64 = 30;

/// Standard VAT rates by ISO country code; any other country (and none) is 0.
pub const VAT: [(&str, f64); 14] = [
    ("AT", 0.20),
    ("BE", 0.21),
    ("CH", 0.081),
    ("DE", 0.19),
    ("DK", 0.25),
    ("ES", 0.21),
    ("FR", 0.20),
    ("GB", 0.20),
    ("IE", 0.23),
    ("IT", 0.22),
    ("NL", 0.21),
    ("PL", 0.23),
    ("SE", 0.25),
    ("UK", 0.20),
];

/// The VAT rate of a country code (case-insensitive); 0 when unknown.
pub fn vat_rate(country: Option<&str>) -> f64 {
    let Some(c) = country.map(|c| c.trim().to_ascii_uppercase()) else {
        return 0.0;
    };
    VAT.iter().find(|(k, _)| *k == c).map_or(0.0, |(_, r)| *r)
}

/// `INV-2026-000123`.
pub fn invoice_number(year: i64, seq: u64) -> String {
    format!("INV-{year:04}-{seq:06}")
}

/// A stored invoice (`invoice:<number>`), also the event payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    pub invoice_no: String,
    pub lead_id: String,
    pub deal_id: String,
    pub lines: Vec<Value>,
    pub net: f64,
    pub tax: f64,
    pub tax_rate: f64,
    pub total: f64,
    pub currency: String,
    pub issued_on: String,
    pub due_on: String,
}

/// The invoice lines: the deal's items, then a negative discount line when there is one.
pub fn lines(items: &[Value], discount_pct: f64, discount: f64) -> Vec<Value> {
    let mut out: Vec<Value> = items
        .iter()
        .map(|i| {
            json!({
                "sku": i.get("sku").cloned().unwrap_or(json!("ITEM")),
                "description": i.get("description").cloned().unwrap_or(json!("")),
                "quantity": i.get("quantity").cloned().unwrap_or(json!(1)),
                "unit_price": i.get("unit_price").cloned().unwrap_or(json!(0)),
                "amount": i.get("amount").cloned().unwrap_or(json!(0)),
            })
        })
        .collect();
    if discount > 0.0 {
        out.push(
            json!({"sku": "DISCOUNT", "description": format!("Discount {discount_pct}%"),
                        "quantity": 1, "unit_price": -discount, "amount": -discount}),
        );
    }
    out
}

/// Builds the invoice (pure).
#[allow(clippy::too_many_arguments)]
pub fn build(
    seq: u64,
    now_ms: i64,
    lead_id: &str,
    deal_id: &str,
    items: &[Value],
    discount_pct: f64,
    discount: f64,
    net: f64,
    country: Option<&str>,
) -> Invoice {
    let day = day_of(now_ms);
    let (year, _, _) = civil_from_days(day);
    let rate = vat_rate(country);
    let tax = round2(net * rate);
    Invoice {
        invoice_no: invoice_number(year, seq),
        lead_id: lead_id.into(),
        deal_id: deal_id.into(),
        lines: lines(items, discount_pct, discount),
        net: round2(net),
        tax,
        tax_rate: rate,
        total: round2(net + tax),
        currency: "USD".into(),
        issued_on: date_string(day),
        due_on: date_string(day + NET_DAYS),
    }
}

impl Layer for Invoicing {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        let pm = layer::parse_payload(&ctx.topic, &ctx.payload)?;
        let (now, _) = layer::payload_now_ms(&pm);
        let p = Value::Object(pm);
        let need = |k: &str| {
            layer::str_field(&p, k).ok_or_else(|| layer::invalid(format!("{k} is missing")))
        };
        let lead_id = need("lead_id")?;
        let deal_id = need("deal_id")?;
        let items = p
            .get("items")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| layer::invalid("items must be a non-empty array"))?;
        let num = |k: &str| {
            layer::num_field(&p, k).ok_or_else(|| layer::invalid(format!("{k} is missing")))
        };
        let (total, discount, pct) = (num("total")?, num("discount")?, num("discount_pct")?);

        let marker = format!("deal-invoice:{deal_id}");
        if let Some(no) = state_get_json::<String>(&marker)? {
            if let Some(inv) = state_get_json::<Invoice>(&format!("invoice:{no}"))? {
                log::info(&format!(
                    "deal {deal_id} was invoiced before ({no}); ignored"
                ));
                return Ok(outcome(
                    json!({"invoice_no": no, "deal_id": deal_id, "total": inv.total,
                           "tax": inv.tax, "issued_on": inv.issued_on, "due_on": inv.due_on,
                           "duplicate": true}),
                    vec![],
                ));
            }
        }

        let seq = state_get_json::<u64>("invoice_seq")?.unwrap_or(0) + 1;
        let country = p
            .get("lead")
            .and_then(|l| l.get("attributes"))
            .and_then(|a| a.get("country"))
            .and_then(Value::as_str);
        let inv = build(
            seq, now, &lead_id, &deal_id, items, pct, discount, total, country,
        );
        state_set_json("invoice_seq", &seq)?;
        state_set_json(&format!("invoice:{}", inv.invoice_no), &inv)?;
        state_set_json(&marker, &inv.invoice_no)?;

        let mut event = serde_json::to_value(&inv).map_err(|e| layer::failed(e.to_string()))?;
        if let Some(now) = p.get("now_ms").filter(|v| v.is_i64()) {
            event["now_ms"] = now.clone();
        }
        Ok(outcome(
            json!({"invoice_no": inv.invoice_no, "deal_id": deal_id, "total": inv.total,
                   "tax": inv.tax, "issued_on": inv.issued_on, "due_on": inv.due_on,
                   "sequence": seq}),
            vec![("invoice.issued".into(), event)],
        ))
    }
}

export_layer!(Invoicing);

#[cfg(test)]
mod tests {
    use super::*;
    use strata_sdk::layer::utc::parse_rfc3339;

    #[test]
    fn numbering() {
        assert_eq!(invoice_number(2026, 123), "INV-2026-000123");
        assert_eq!(invoice_number(2026, 1), "INV-2026-000001");
        assert_eq!(invoice_number(2027, 1_234_567), "INV-2027-1234567");
    }

    #[test]
    fn vat_table() {
        assert_eq!(vat_rate(Some("de")), 0.19);
        assert_eq!(vat_rate(Some(" FR ")), 0.20);
        assert_eq!(vat_rate(Some("US")), 0.0);
        assert_eq!(vat_rate(None), 0.0);
    }

    #[test]
    fn an_invoice() {
        let items = vec![
            json!({"sku": "PLAT-SEAT", "description": "licence", "quantity": 20, "unit_price": 480.0, "amount": 9600.0}),
            json!({"sku": "ONB-M", "description": "onboarding", "quantity": 1, "unit_price": 7500.0, "amount": 7500.0}),
        ];
        let now = parse_rfc3339("2026-12-15T10:00:00Z").unwrap();
        let inv = build(
            7,
            now,
            "l1",
            "deal-1",
            &items,
            5.0,
            855.0,
            16_245.0,
            Some("DE"),
        );
        assert_eq!(inv.invoice_no, "INV-2026-000007");
        assert_eq!(inv.issued_on, "2026-12-15");
        assert_eq!(inv.due_on, "2027-01-14");
        assert_eq!(inv.lines.len(), 3);
        assert_eq!(inv.lines[2]["amount"], -855.0);
        assert_eq!(inv.lines[2]["description"], "Discount 5%");
        let sum: f64 = inv
            .lines
            .iter()
            .map(|l| l["amount"].as_f64().unwrap())
            .sum();
        assert_eq!(sum, inv.net);
        assert_eq!(inv.tax, 3_086.55);
        assert_eq!(inv.total, 19_331.55);
        let no_vat = build(8, now, "l1", "deal-1", &items[..1], 0.0, 0.0, 9_600.0, None);
        assert_eq!(
            (no_vat.tax, no_vat.total, no_vat.lines.len()),
            (0.0, 9_600.0, 1)
        );
    }

    #[test]
    fn schemas_match_producer_and_consumer() {
        assert_eq!(
            include_str!("../schemas/deal-approved.json"),
            include_str!("../../pricing/schemas/deal-approved.json")
        );
        assert_eq!(
            include_str!("../schemas/invoice-issued.json"),
            include_str!("../../forecast/schemas/invoice-issued.json")
        );
    }
}
