//! The fit on the shipped X Education history (tests/data/leads-xeducation.csv).

use super::guards::NoteAction;
use super::*;
use crate::evaluation::{auc, calibration_error, calibration_table};
use crate::input::{self, parse_label, InputFormat, ReadOptions};

/// Columns filled in after sales contact in X Education (the list).
pub const POST_CONTACT: [&str; 9] = [
    "Tags",
    "Lead Quality",
    "Lead Profile",
    "Asymmetrique Activity Index",
    "Asymmetrique Profile Index",
    "Asymmetrique Activity Score",
    "Asymmetrique Profile Score",
    "Last Notable Activity",
    "Last Activity",
];

/// The X Education leads (as plugins see them) and their outcomes.
pub(crate) fn xeducation() -> (Vec<Lead>, Vec<bool>) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/leads-xeducation.csv");
    let read = input::read(
        &path,
        InputFormat::Csv,
        &ReadOptions {
            label: Some("Converted".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let y = read
        .labels
        .iter()
        .map(|l| parse_label(l.as_deref().unwrap()).unwrap())
        .collect();
    (read.leads.iter().map(Lead::from).collect(), y)
}

fn options(exclude: &[&str]) -> FitOptions {
    FitOptions {
        split: Split {
            seed: 1,
            holdout: 0.3,
        },
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
        force: Vec::new(),
    }
}

fn holdout_scores(f: &Fitted, leads: &[Lead], y: &[bool]) -> (Vec<f64>, Vec<bool>) {
    f.holdout
        .iter()
        .map(|&i| (scorecard::model::score(&f.model, &leads[i]).value, y[i]))
        .unzip()
}

#[test]
fn the_split_is_stable_disjoint_and_near_the_asked_share() {
    let (leads, y) = xeducation();
    let a = fit(&leads, &y, &options(&POST_CONTACT)).unwrap();
    let b = fit(&leads, &y, &options(&POST_CONTACT)).unwrap();
    assert_eq!(a.holdout, b.holdout);
    assert_eq!(a.model, b.model, "a fit is deterministic");
    assert_eq!(a.holdout.len() + a.train.len(), leads.len());
    assert!(a.holdout.iter().all(|i| !a.train.contains(i)));
    let share = a.holdout.len() as f64 / leads.len() as f64;
    assert!((share - 0.3).abs() < 0.02, "{share}");
}

#[test]
fn without_post_contact_columns_the_holdout_is_ranked_well_and_calibrated() {
    let (leads, y) = xeducation();
    let f = fit(&leads, &y, &options(&POST_CONTACT)).unwrap();
    for c in POST_CONTACT {
        assert!(f.model.features.iter().all(|x| x.column != c), "{c} used");
    }
    let (s, p) = holdout_scores(&f, &leads, &y);
    let a = auc(&s, &p).unwrap();
    assert!(a > 0.85, "holdout AUC {a}");
    let ece = calibration_error(&calibration_table(&s, &p, 10)).unwrap();
    assert!(ece < 0.05, "calibration error {ece}");
}

#[test]
fn a_planted_leaking_column_is_reported_and_excluded_unless_forced() {
    let (mut leads, y) = xeducation();
    // "Outcome Note", written after the fact: the label with 2% of it flipped.
    for (i, (lead, &yi)) in leads.iter_mut().zip(&y).enumerate() {
        let won = yi != (i % 50 == 0);
        lead.attributes.push(strata_sdk::Attribute {
            name: "Outcome Note".into(),
            value: if won { "enrolled" } else { "not interested" }.into(),
        });
    }
    let f = fit(&leads, &y, &options(&POST_CONTACT)).unwrap();
    let note = f
        .notes
        .iter()
        .find(|n| n.column == "Outcome Note")
        .expect("a note on the leaking column");
    assert_eq!(note.action, NoteAction::Leaking, "{note:?}");
    assert!(f.model.features.iter().all(|x| x.column != "Outcome Note"));

    let mut forced = options(&POST_CONTACT);
    forced.force = vec!["Outcome Note".into()];
    let f = fit(&leads, &y, &forced).unwrap();
    assert!(f
        .notes
        .iter()
        .any(|n| n.column == "Outcome Note" && n.action == NoteAction::Forced));
    assert!(f.model.features.iter().any(|x| x.column == "Outcome Note"));
}

#[test]
fn constant_and_identifier_columns_are_dropped_with_a_note() {
    let (leads, y) = xeducation();
    let f = fit(&leads, &y, &options(&POST_CONTACT)).unwrap();
    let action = |c: &str| f.notes.iter().find(|n| n.column == c).map(|n| n.action);
    // Every lead's status is "new"; every "Lead Number" differs; "Magazine" is all "No".
    assert_eq!(action("status"), Some(NoteAction::Dropped));
    assert_eq!(action("Lead Number"), Some(NoteAction::Dropped));
    assert_eq!(action("Magazine"), Some(NoteAction::Dropped));
    assert_eq!(action("Tags"), Some(NoteAction::Excluded));
}

#[test]
fn too_few_positives_is_an_error_that_says_how_many_are_needed() {
    let (leads, y) = xeducation();
    let mut seen = 0;
    let keep: Vec<usize> = (0..leads.len())
        .filter(|&i| {
            seen += usize::from(y[i]);
            !y[i] || seen <= 10
        })
        .collect();
    let few: Vec<Lead> = keep.iter().map(|&i| leads[i].clone()).collect();
    let fy: Vec<bool> = keep.iter().map(|&i| y[i]).collect();
    let e = fit(&few, &fy, &options(&[])).unwrap_err().to_string();
    assert!(
        e.contains("10 positive") && e.contains("40 more positives needed"),
        "{e}"
    );
}

#[test]
fn an_excluded_column_that_does_not_exist_is_refused() {
    let (leads, y) = xeducation();
    let e = fit(&leads, &y, &options(&["Tagz"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--exclude \"Tagz\": no such column"), "{e}");
}
