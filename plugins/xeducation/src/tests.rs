//! Native tests: `cargo test -p xeducation --target x86_64-unknown-linux-gnu`.

use super::*;
use strata_sdk::{Attribute, LeadStatus};

const CSV: &str = include_str!("../../../tests/data/leads-xeducation.csv");

/// Splits one CSV record (double-quoted fields may hold commas; no embedded newlines).
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out
}

fn lead(id: &str, attrs: Vec<Attribute>) -> Lead {
    Lead {
        id: id.into(),
        name: None,
        email: None,
        company: None,
        title: None,
        industry: None,
        employees: None,
        annual_revenue: None,
        budget: None,
        timeline: None,
        source: None,
        status: LeadStatus::New,
        notes: None,
        attributes: attrs,
    }
}

/// Every row as a lead (all columns, `Converted` included, as the host may pass it) and its label.
fn rows() -> Vec<(Lead, bool)> {
    let mut lines = CSV.lines();
    let header = fields(lines.next().unwrap());
    lines
        .map(|line| {
            let cells = fields(line);
            let attrs = header
                .iter()
                .zip(&cells)
                .filter(|(h, _)| !h.is_empty())
                .map(|(h, v)| Attribute {
                    name: h.clone(),
                    value: v.clone(),
                })
                .collect();
            (lead(&cells[0], attrs), cells[6] == "1")
        })
        .collect()
}

/// ROC AUC by the rank-sum formula (ties get average ranks).
fn auc(mut scored: Vec<(f64, bool)>) -> f64 {
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < scored.len() {
        let j = (i..scored.len())
            .find(|&j| scored[j].0 != scored[i].0)
            .unwrap_or(scored.len());
        let avg = (i + j + 1) as f64 / 2.0;
        rank_sum += avg * scored[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    let pos = scored.iter().filter(|s| s.1).count() as f64;
    let neg = scored.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[test]
fn ranks_the_data_set_well() {
    let scored: Vec<(f64, bool)> = rows()
        .iter()
        .map(|(l, y)| (score_lead(l).value, *y))
        .collect();
    assert_eq!(scored.len(), 9240);
    let auc = auc(scored);
    println!("ROC AUC on the full file: {auc:.4}");
    assert!(auc >= 0.90, "AUC {auc}");
}

#[test]
fn ignores_the_label() {
    for (mut l, _) in rows().into_iter().take(200) {
        let before = score_lead(&l);
        for a in &mut l.attributes {
            if a.name == "Converted" {
                a.value = if a.value == "1" {
                    "0".into()
                } else {
                    "1".into()
                };
            }
        }
        assert_eq!(before, score_lead(&l));
    }
}

#[test]
fn scores_are_valid_and_explained() {
    for (l, _) in rows() {
        let s = score_lead(&l);
        assert!((0.0..=100.0).contains(&s.value));
        assert!((0.0..=1.0).contains(&s.confidence));
        assert_eq!(s.factors.len(), 4);
        assert!(s.reasoning.starts_with("conversion probability"));
    }
}

#[test]
fn empty_lead_is_low_confidence() {
    let s = score_lead(&lead("x", vec![]));
    assert!(s.confidence < 0.2, "{}", s.confidence);
    assert!(s.value < 50.0);
}
