//! `strata fit`'s library: an interpretable scorecard fitted on a labelled history.
//!
//! Leads are split by a hash of their id (so the same leads are held out on every run
//! and `strata backtest --holdout-of` can pick them again); the training part is split
//! once more into a part the weights are fitted on and a part that picks the penalty and
//! calibrates the probabilities (Platt). Columns go through the guards
//! ([`guards`]), become features ([`features`]), and get weights from regularised
//! logistic regression ([`logistic`]). The model is the generic scorecard plugin's
//! ([`scorecard::model`]); [`component`] puts it inside a copy of that component.

pub mod component;
pub mod features;
pub mod guards;
pub mod logistic;

use features::{Column, Shape};
use guards::{ColumnNote, GuardError, NoteAction};
use logistic::LogisticError;
use scorecard::model::{Feature, Model, Platt, FORMAT};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strata_sdk::Lead;

/// Penalties tried; the one with the lowest log-loss on the calibration part wins.
pub const LAMBDAS: [f64; 5] = [0.3, 1.0, 3.0, 10.0, 30.0];
/// Share of the training leads that picks the penalty and calibrates.
pub const CALIBRATION_SHARE: f64 = 0.2;

/// How the leads were split; stored with the model so a backtest can hold out the same
/// leads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub seed: u64,
    /// Share of the leads held out (0–1).
    pub holdout: f64,
}

impl Split {
    /// Whether the lead `id` is held out: the first 8 bytes of sha256(seed ‖ id) as a
    /// fraction of 2⁶⁴, below `holdout`. Stable across runs, files and orderings.
    pub fn holds_out(&self, id: &str) -> bool {
        hash_fraction(self.seed, id) < self.holdout
    }
}

fn hash_fraction(seed: u64, id: &str) -> f64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(id.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b) as f64 / 2f64.powi(64)
}

#[derive(Debug, Clone)]
pub struct FitOptions {
    pub split: Split,
    /// Columns never used (e.g. filled in after contact).
    pub exclude: Vec<String>,
    /// Columns kept although the leakage guard fires.
    pub force: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error("fitting the weights: {0}")]
    Logistic(#[from] LogisticError),
    #[error("{flag} {column:?}: no such column in the input (columns: {known})")]
    UnknownColumn {
        flag: &'static str,
        column: String,
        known: String,
    },
    #[error("no usable column is left to fit on (see the notes above: {0})")]
    NoFeatures(String),
    #[error("the holdout share must be between 0 and 0.9, not {0}")]
    BadHoldout(f64),
    #[error("{0} labelled leads are too few to hold out, calibrate and fit on")]
    TooFewLeads(usize),
}

/// A fitted model and what the fit decided on the way.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub model: Model,
    pub notes: Vec<ColumnNote>,
    /// Rows (indices into the leads) the model was fitted and calibrated on.
    pub train: Vec<usize>,
    /// Rows held out for the report.
    pub holdout: Vec<usize>,
    pub lambda: f64,
    /// Each used feature's AUC alone on the training leads.
    pub solo_auc: Vec<(String, f64)>,
}

/// Fits a scorecard on `leads` with outcomes `y` (same order).
pub fn fit(leads: &[Lead], y: &[bool], opts: &FitOptions) -> Result<Fitted, FitError> {
    if !(0.0..=0.9).contains(&opts.split.holdout) {
        return Err(FitError::BadHoldout(opts.split.holdout));
    }
    guards::check_outcomes(y)?;
    let (holdout, train): (Vec<usize>, Vec<usize>) =
        (0..leads.len()).partition(|&i| opts.split.holds_out(&leads[i].id));
    let (calib, fit_rows): (Vec<usize>, Vec<usize>) = train
        .iter()
        .partition(|&&i| hash_fraction(opts.split.seed ^ 0x5eed, &leads[i].id) < CALIBRATION_SHARE);
    if calib.len() < 20 || fit_rows.len() < 20 {
        return Err(FitError::TooFewLeads(leads.len()));
    }

    let columns = features::columns(leads);
    for (flag, names) in [("--exclude", &opts.exclude), ("--force", &opts.force)] {
        for c in names {
            if !columns.iter().any(|col| &col.name == c) {
                return Err(FitError::UnknownColumn {
                    flag,
                    column: c.clone(),
                    known: columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }

    let (used, notes, solo_auc) = choose_features(&columns, y, &train, opts);
    if used.is_empty() {
        let why = notes
            .iter()
            .map(|n| format!("{}: {}", n.column, n.reason))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(FitError::NoFeatures(why));
    }
    let slots = features::encode(&used, leads.len());
    let offsets: Vec<usize> = used
        .iter()
        .scan(0, |acc, (f, _)| {
            let at = *acc;
            *acc += f.slots();
            Some(at)
        })
        .collect();
    let width = offsets.last().copied().unwrap_or(0) + used.last().map_or(0, |(f, _)| f.slots());
    let active =
        |i: usize| -> Vec<usize> { slots[i].iter().zip(&offsets).map(|(s, o)| s + o).collect() };
    let fit_x: Vec<Vec<usize>> = fit_rows.iter().map(|&i| active(i)).collect();
    let fit_y: Vec<bool> = fit_rows.iter().map(|&i| y[i]).collect();
    let cal_x: Vec<Vec<usize>> = calib.iter().map(|&i| active(i)).collect();
    let cal_y: Vec<bool> = calib.iter().map(|&i| y[i]).collect();

    // The penalty path from the strongest penalty down, each fit warm-started from the
    // last; the penalty with the lowest log-loss on the calibration leads wins.
    let design = logistic::Design::new(&fit_x, &fit_y, width)?;
    let mut best: Option<(f64, f64, logistic::Weights)> = None;
    let mut last: Option<logistic::Weights> = None;
    for lambda in LAMBDAS.into_iter().rev() {
        let started = std::time::Instant::now();
        let w = design.fit(lambda, last.as_ref())?;
        tracing::debug!(
            lambda,
            ms = started.elapsed().as_millis() as u64,
            "fitted a penalty"
        );
        let p: Vec<f64> = cal_x
            .iter()
            .map(|r| 1.0 / (1.0 + (-w.logit(r)).exp()))
            .collect();
        let l = logistic::log_loss(&p, &cal_y);
        if best.as_ref().is_none_or(|(bl, _, _)| l < *bl) {
            best = Some((l, lambda, w.clone()));
        }
        last = Some(w);
    }
    let (_, lambda, w) = best.expect("LAMBDAS is not empty");
    let z: Vec<f64> = cal_x.iter().map(|r| w.logit(r)).collect();
    let started = std::time::Instant::now();
    let (a, b) = logistic::platt(&z, &cal_y)?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "calibrated (Platt)"
    );

    // Centre each feature's weights on the fitted leads' mean; the intercept absorbs it.
    let mut intercept = w.intercept;
    let mut model_features: Vec<Feature> = Vec::with_capacity(used.len());
    for (k, (f, _)) in used.iter().enumerate() {
        let mut f = f.clone();
        f.weights = w.columns[offsets[k]..offsets[k] + f.slots()].to_vec();
        let mean = fit_rows
            .iter()
            .map(|&i| f.weights[slots[i][k]])
            .sum::<f64>()
            / fit_rows.len() as f64;
        for x in &mut f.weights {
            *x -= mean;
        }
        intercept += mean;
        model_features.push(f);
    }
    Ok(Fitted {
        model: Model {
            format: FORMAT,
            intercept,
            platt: Platt { a, b },
            features: model_features,
        },
        notes,
        train,
        holdout,
        lambda,
        solo_auc,
    })
}

type Chosen<'c> = (
    Vec<(Feature, &'c Column)>,
    Vec<ColumnNote>,
    Vec<(String, f64)>,
);

/// The columns that become features, the notes on the others, and the used ones' solo
/// AUC on the training leads.
fn choose_features<'c>(
    columns: &'c [Column],
    y: &[bool],
    train: &[usize],
    opts: &FitOptions,
) -> Chosen<'c> {
    let mut used = Vec::new();
    let mut notes = Vec::new();
    let mut solo = Vec::new();
    let train_y: Vec<bool> = train.iter().map(|&i| y[i]).collect();
    for col in columns {
        let note = |action, reason: String| ColumnNote {
            column: col.name.clone(),
            action,
            reason,
        };
        if opts.exclude.contains(&col.name) {
            notes.push(note(
                NoteAction::Excluded,
                "excluded by you (--exclude)".into(),
            ));
            continue;
        }
        let shape = features::shape(col, train);
        let reason = match &shape {
            Shape::AllMissing => Some("missing on every training lead".to_string()),
            Shape::Constant(v) => Some(format!("the same value ({v:?}) on every training lead")),
            Shape::Identifier => {
                Some("a different value on every lead: an identifier or free text".to_string())
            }
            _ => None,
        };
        if let Some(reason) = reason {
            notes.push(note(NoteAction::Dropped, reason));
            continue;
        }
        let Some(feature) = features::feature(&col.name, &shape, train.len()) else {
            continue;
        };
        let slots: Vec<usize> = train
            .iter()
            .map(|&i| feature.slot_of(col.values[i].as_deref()))
            .collect();
        let auc = guards::solo_auc(&slots, &train_y, feature.slots()).unwrap_or(0.5);
        let forced = opts.force.contains(&col.name);
        if let Some(n) = guards::leakage_note(&col.name, auc, forced) {
            let keep = n.action == NoteAction::Forced;
            notes.push(n);
            if !keep {
                continue;
            }
        }
        solo.push((col.name.clone(), auc));
        used.push((feature, col));
    }
    (used, notes, solo)
}

#[cfg(test)]
pub(crate) mod tests;
