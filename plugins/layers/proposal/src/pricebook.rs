//! The price book and the quote drafted from a lead (pure).

use serde::Serialize;
use serde_json::Value;

/// Platform licence, per seat and year.
pub const SEAT_PRICE: f64 = 480.0;
/// Seats quoted per employee (one seat per ten employees), within these bounds.
pub const MIN_SEATS: u32 = 5;
pub const MAX_SEATS: u32 = 500;
/// Seats quoted when the company size is unknown.
pub const DEFAULT_SEATS: u32 = 10;

/// (sku, description, price) of the onboarding packages by company size.
pub const ONBOARDING: [(&str, &str, f64); 3] = [
    (
        "ONB-S",
        "Onboarding package S (up to 49 employees)",
        2_500.0,
    ),
    ("ONB-M", "Onboarding package M (50–499 employees)", 7_500.0),
    ("ONB-L", "Onboarding package L (500+ employees)", 18_000.0),
];

/// (sku, description, price) of the support tiers by lead priority.
pub const SUPPORT: [(&str, &str, f64); 3] = [
    ("SUP-STD", "Standard support, 1 year", 1_200.0),
    ("SUP-BUS", "Business support, 1 year", 3_600.0),
    (
        "SUP-PREM",
        "Premium support with a named success manager, 1 year",
        6_000.0,
    ),
];

/// One line of a quote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub sku: String,
    pub description: String,
    pub quantity: u32,
    pub unit_price: f64,
    pub amount: f64,
}

impl Item {
    fn new(sku: &str, description: &str, quantity: u32, unit_price: f64) -> Self {
        Self {
            sku: sku.into(),
            description: description.into(),
            quantity,
            unit_price,
            amount: strata_sdk::layer::round2(unit_price * f64::from(quantity)),
        }
    }
}

/// Seats for a company of `employees`: one per ten employees, 5–500; 10 when unknown.
pub fn seats(employees: Option<u32>) -> u32 {
    match employees {
        None => DEFAULT_SEATS,
        Some(e) => e.div_ceil(10).clamp(MIN_SEATS, MAX_SEATS),
    }
}

/// The onboarding package for a company size (S when unknown).
pub fn onboarding(employees: Option<u32>) -> (&'static str, &'static str, f64) {
    match employees {
        Some(e) if e >= 500 => ONBOARDING[2],
        Some(e) if e >= 50 => ONBOARDING[1],
        _ => ONBOARDING[0],
    }
}

/// The support tier for a priority (standard when unknown or medium/low).
pub fn support(priority: Option<&str>) -> (&'static str, &'static str, f64) {
    match priority {
        Some("immediate") => SUPPORT[2],
        Some("high") => SUPPORT[1],
        _ => SUPPORT[0],
    }
}

/// The quote for a lead: licence seats, onboarding, support.
pub fn quote(employees: Option<u32>, priority: Option<&str>) -> Vec<Item> {
    let n = seats(employees);
    let (osku, odesc, oprice) = onboarding(employees);
    let (ssku, sdesc, sprice) = support(priority);
    vec![
        Item::new(
            "PLAT-SEAT",
            "Strata platform licence, per seat and year",
            n,
            SEAT_PRICE,
        ),
        Item::new(osku, odesc, 1, oprice),
        Item::new(ssku, sdesc, 1, sprice),
    ]
}

/// Sum of the items' amounts, in cents precision.
pub fn subtotal(items: &[Item]) -> f64 {
    strata_sdk::layer::round2(items.iter().map(|i| i.amount).sum())
}

/// `20700.5` → `20,700.50`.
pub fn money(x: f64) -> String {
    let cents = (x * 100.0).round() as i64;
    let (whole, frac) = (cents.abs() / 100, cents.abs() % 100);
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}{grouped}.{frac:02}", if cents < 0 { "-" } else { "" })
}

fn field<'a>(lead: &'a Value, key: &str) -> Option<&'a str> {
    lead.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The deterministic cover text used when no LLM answers.
pub fn template_text(lead: &Value, items: &[Item], subtotal: f64) -> String {
    let greeting = match (field(lead, "name"), field(lead, "company")) {
        (Some(n), _) => format!("Dear {n},"),
        (None, Some(c)) => format!("Dear {c} team,"),
        (None, None) => "Hello,".to_string(),
    };
    let company = field(lead, "company").unwrap_or("your team");
    let lines: Vec<String> = items
        .iter()
        .map(|i| {
            format!(
                "- {} × {}: USD {}",
                i.quantity,
                i.description,
                money(i.amount)
            )
        })
        .collect();
    format!(
        "{greeting}\n\nthank you for your time on our discovery call. As discussed, here is our \
         proposal for {company}:\n\n{}\n\nTotal: USD {} per year, before any discount. We look \
         forward to getting you started.\n\nKind regards,\nThe Strata team",
        lines.join("\n"),
        money(subtotal)
    )
}

/// System prompt of the cover-text request.
pub const SYSTEM_PROMPT: &str = "You write short, friendly cover notes for B2B software \
    proposals. Plain text, at most 120 words, no placeholders, do not invent prices, \
    discounts or terms that are not given.";

/// User prompt of the cover-text request.
pub fn user_prompt(lead: &Value, items: &[Item], subtotal: f64) -> String {
    let who = [
        field(lead, "name").map(|n| format!("contact: {n}")),
        field(lead, "title").map(|t| format!("title: {t}")),
        field(lead, "company").map(|c| format!("company: {c}")),
        field(lead, "industry").map(|i| format!("industry: {i}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let lines: Vec<String> = items
        .iter()
        .map(|i| {
            format!(
                "{} × {} (USD {})",
                i.quantity,
                i.description,
                money(i.amount)
            )
        })
        .collect();
    format!(
        "Write the cover note of a proposal after a discovery call. Lead: {}. Items: {}. \
         Total USD {} per year.",
        if who.is_empty() {
            "unknown".into()
        } else {
            who
        },
        lines.join("; "),
        money(subtotal)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seats_follow_company_size() {
        assert_eq!(seats(None), 10);
        assert_eq!(seats(Some(0)), 5);
        assert_eq!(seats(Some(12)), 5);
        assert_eq!(seats(Some(200)), 20);
        assert_eq!(seats(Some(201)), 21);
        assert_eq!(seats(Some(100_000)), 500);
    }

    #[test]
    fn quotes() {
        let q = quote(Some(200), Some("high"));
        let skus: Vec<&str> = q.iter().map(|i| i.sku.as_str()).collect();
        assert_eq!(skus, ["PLAT-SEAT", "ONB-M", "SUP-BUS"]);
        assert_eq!(q[0].amount, 9_600.0);
        assert_eq!(subtotal(&q), 20_700.0);
        let q = quote(Some(1000), Some("immediate"));
        assert_eq!(subtotal(&q), 100.0 * 480.0 + 18_000.0 + 6_000.0);
        let q = quote(None, None);
        assert_eq!(subtotal(&q), 4_800.0 + 2_500.0 + 1_200.0);
        assert_eq!(onboarding(Some(49)).0, "ONB-S");
        assert_eq!(onboarding(Some(50)).0, "ONB-M");
        assert_eq!(onboarding(Some(500)).0, "ONB-L");
        assert_eq!(support(Some("medium")).0, "SUP-STD");
    }

    #[test]
    fn money_and_texts() {
        assert_eq!(money(20_700.0), "20,700.00");
        assert_eq!(money(1_234_567.891), "1,234,567.89");
        assert_eq!(money(999.5), "999.50");
        assert_eq!(money(0.0), "0.00");
        let q = quote(Some(200), Some("high"));
        let lead = json!({"name": "Jane Doe", "company": "Acme"});
        let t = template_text(&lead, &q, subtotal(&q));
        assert!(t.starts_with("Dear Jane Doe,"));
        assert!(t.contains("proposal for Acme") && t.contains("USD 20,700.00"));
        assert_eq!(t, template_text(&lead, &q, subtotal(&q)), "deterministic");
        assert!(template_text(&json!({}), &q, 1.0).starts_with("Hello,"));
        let p = user_prompt(&lead, &q, subtotal(&q));
        assert!(p.contains("company: Acme") && p.contains("20 × Strata platform licence"));
    }
}
