use crate::buffer::{fill, CAPACITY, FILLER, HEADER, MAGIC};
use crate::model::*;
use strata_sdk::{Attribute, Lead, LeadStatus};

fn lead(attrs: &[(&str, &str)]) -> Lead {
    Lead {
        id: "t".into(),
        name: None,
        email: None,
        company: None,
        title: Some("VP Sales".into()),
        industry: None,
        employees: Some(250),
        annual_revenue: None,
        budget: None,
        timeline: None,
        source: None,
        status: LeadStatus::New,
        notes: None,
        attributes: attrs
            .iter()
            .map(|(n, v)| Attribute {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
    }
}

fn model() -> Model {
    Model {
        format: FORMAT,
        intercept: -0.5,
        platt: Platt { a: 1.0, b: 0.0 },
        features: vec![
            Feature {
                column: "employees".into(),
                factor: Some("complexity".into()),
                kind: Kind::Numeric {
                    edges: vec![10.0, 100.0],
                },
                weights: vec![-1.0, 0.0, 0.8, 0.1],
            },
            Feature {
                column: "Lead Origin".into(),
                factor: None,
                kind: Kind::Categorical {
                    levels: vec!["API".into(), "Lead Add Form".into()],
                },
                weights: vec![-0.4, 1.5, 0.0, -0.2],
            },
        ],
    }
}

#[test]
fn numeric_values_fall_in_their_bins_and_missing_has_its_own_slot() {
    let f = &model().features[0];
    assert_eq!(f.slot_of(Some("10")), 0);
    assert_eq!(f.slot_of(Some("10.5")), 1);
    assert_eq!(f.slot_of(Some("5000")), 2);
    assert_eq!(f.slot_of(None), 3);
    assert_eq!(f.slot_of(Some("n/a")), 3);
    assert_eq!(f.slot_label(1), "10 – 100");
}

#[test]
fn unseen_categories_are_other_and_select_is_missing() {
    let f = &model().features[1];
    assert_eq!(f.slot(&lead(&[("Lead Origin", "Quick Add")])).index, 2);
    assert_eq!(f.slot(&lead(&[("Lead Origin", "Select")])).index, 3);
    assert_eq!(f.slot(&lead(&[])).index, 3);
}

#[test]
fn score_is_the_calibrated_probability_and_reasoning_names_both_sides() {
    let m = model();
    let s = score(&m, &lead(&[("Lead Origin", "Lead Add Form")]));
    let p = sigmoid(-0.5 + 0.8 + 1.5);
    assert!((s.value - 100.0 * p).abs() < 1e-9, "{}", s.value);
    assert!(
        s.reasoning.contains("+1.50 Lead Origin = Lead Add Form"),
        "{}",
        s.reasoning
    );
    assert!(
        s.reasoning.contains("+0.80 employees = 250"),
        "{}",
        s.reasoning
    );
    let s = score(&m, &lead(&[("Lead Origin", "API")]));
    assert!(
        s.reasoning.contains("against: -0.40 Lead Origin = API"),
        "{}",
        s.reasoning
    );
    assert_eq!(s.factors[0].name, "complexity");
}

#[test]
fn fill_writes_length_and_payload_and_refuses_what_does_not_fit() {
    let mut region = vec![FILLER; CAPACITY];
    region[..16].copy_from_slice(&MAGIC);
    fill(&mut region, b"{\"a\":1}").unwrap();
    assert_eq!(&region[16..HEADER], &7u32.to_le_bytes());
    assert_eq!(&region[HEADER..HEADER + 7], b"{\"a\":1}");
    assert_eq!(region[HEADER + 7], FILLER);
    assert!(fill(&mut region, &vec![b' '; CAPACITY]).is_err());
    assert!(fill(&mut region[1..], b"x").is_err());
}
