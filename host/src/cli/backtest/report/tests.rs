use super::*;
use crate::domain::Score;

fn score(value: f64) -> Score {
    Score {
        value,
        priority: strata_sdk::Priority::from_score(value).into(),
        recommended_action: String::new(),
        reasoning: String::new(),
        confidence: 0.5,
        factors: Vec::new(),
    }
}

fn report(scores: &[Score], labels: &[Option<bool>]) -> Report {
    let ids: Vec<String> = (0..scores.len()).map(|i| format!("l{i}")).collect();
    let outcomes: Vec<Outcome> = scores
        .iter()
        .zip(labels)
        .zip(&ids)
        .map(|((s, l), id)| Outcome {
            lead_id: id,
            positive: *l,
            score: Ok(s),
        })
        .collect();
    Report::build(
        ScorerInfo {
            id: "t@1".into(),
            sha256: None,
        },
        InputInfo {
            path: "f.csv".into(),
            label: "Converted".into(),
            holdout_of: None,
        },
        &outcomes,
    )
}

#[test]
fn a_constant_scorer_is_warned_about() {
    let s: Vec<Score> = (0..100).map(|_| score(50.0)).collect();
    let l: Vec<Option<bool>> = (0..100).map(|i| Some(i % 3 == 0)).collect();
    let r = report(&s, &l);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("every lead got the same score (50)")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.auc.map(|a| a.value), Some(0.5));
    assert!(render_table(&r).contains("WARNING: every lead got the same score"));
}

#[test]
fn one_score_for_most_leads_is_warned_about() {
    let s: Vec<Score> = (0..100)
        .map(|i| score(if i < 60 { 0.0 } else { f64::from(i) }))
        .collect();
    let l: Vec<Option<bool>> = (0..100).map(|i| Some(i % 2 == 0)).collect();
    let r = report(&s, &l);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("one score (0) was given to 60 of 100")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_missing_or_constant_label_is_warned_about() {
    let s: Vec<Score> = (0..10).map(|i| score(f64::from(i) * 10.0)).collect();
    let r = report(&s, &[None; 10]);
    assert!(
        r.warnings[0].contains("no lead has an outcome"),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.auc, None);
    let r = report(&s, &[Some(true); 10]);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("is constant (every scored lead is positive)")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn the_report_auc_matches_pairwise_counting_on_the_x_education_fit() {
    use crate::fit::{fit, FitOptions, Split};
    let (leads, y) = crate::fit::tests::xeducation();
    let opts = FitOptions {
        split: Split {
            seed: 1,
            holdout: 0.3,
        },
        exclude: vec!["Tags".into()],
        force: Vec::new(),
    };
    let f = fit(&leads, &y, &opts).unwrap();
    let scores: Vec<Score> = leads
        .iter()
        .map(|l| {
            let s = scorecard::model::score(&f.model, l);
            score(s.value)
        })
        .collect();
    let labels: Vec<Option<bool>> = y.iter().map(|v| Some(*v)).collect();
    let r = report(&scores, &labels);
    // Independent: the share of (positive, negative) pairs ranked right, ties half.
    let pos: Vec<f64> = (0..y.len())
        .filter(|&i| y[i])
        .map(|i| scores[i].value)
        .collect();
    let neg: Vec<f64> = (0..y.len())
        .filter(|&i| !y[i])
        .map(|i| scores[i].value)
        .collect();
    let mut right = 0.0;
    for p in &pos {
        for n in &neg {
            right += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    let want = right / (pos.len() * neg.len()) as f64;
    let got = r.auc.unwrap();
    assert!((got.value - want).abs() < 1e-9, "{} vs {want}", got.value);
    assert!(got.low < got.value && got.value < got.high, "{got:?}");
    assert_eq!(r.positives, pos.len());
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}
