//! Native tests: `cargo test -p bant --target x86_64-unknown-linux-gnu`.

use super::*;

fn lead() -> Lead {
    Lead {
        id: "t".into(),
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
        attributes: vec![],
    }
}

fn hot() -> Lead {
    Lead {
        title: Some("VP of Sales".into()),
        industry: Some("Software".into()),
        employees: Some(500),
        annual_revenue: Some(50e6),
        budget: Some(120_000.0),
        timeline: Some("this quarter".into()),
        notes: Some("Evaluating vendors, pain with manual scoring".into()),
        ..lead()
    }
}

#[test]
fn hot_lead_is_immediate_and_explained() {
    let s = score_lead(&hot());
    assert!(s.value >= 85.0, "{}", s.value);
    assert_eq!(s.priority, Priority::Immediate);
    assert_eq!(s.confidence, 1.0);
    let names: Vec<&str> = s.factors.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["budget", "authority", "fit", "timeline", "complexity"]
    );
    for needle in [
        "120000",
        "VP of Sales",
        "this quarter",
        "500 employees",
        "Software",
    ] {
        assert!(
            s.reasoning.contains(needle),
            "{needle} missing in {}",
            s.reasoning
        );
    }
}

#[test]
fn empty_lead_is_low_with_low_confidence() {
    let s = score_lead(&lead());
    assert_eq!(s.priority, Priority::Low);
    assert!((s.confidence - 0.2).abs() < 1e-9);
}

#[test]
fn junk_status_cuts_the_score() {
    let s = score_lead(&Lead {
        status: LeadStatus::Junk,
        ..hot()
    });
    assert!(s.value < 20.0);
    assert!(s.reasoning.contains("junk"));
}

#[test]
fn deterministic() {
    assert_eq!(score_lead(&hot()), score_lead(&hot()));
}

#[test]
fn weights_sum_to_one() {
    assert!((WEIGHTS.iter().map(|w| w.1).sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn fixed_formats_like_the_float_formatter() {
    use crate::factors::fixed;
    for (x, d) in [
        (0.25, 2),
        (91.84, 1),
        (120000.0, 0),
        (0.0, 1),
        (99.95, 1),
        (1.2e9, 0),
        (-3.26, 1),
    ] {
        assert_eq!(fixed(x, d), format!("{x:.*}", d as usize), "{x} {d}");
    }
}
