//! Sanity and leakage guards of a fit: enough outcomes of each kind, columns that carry
//! nothing (constant, all missing, identifiers), and columns that give the answer away —
//! alone they separate the classes almost perfectly, which on a history usually means
//! they were filled in after the outcome (a sales note, a won/lost reason).

use crate::evaluation::auc;
use serde::Serialize;

/// Fewest positives and fewest negatives a fit needs among the labelled leads.
pub const MIN_PER_CLASS: usize = 50;
/// A column whose slots alone reach this training AUC is treated as leaking.
pub const LEAK_AUC: f64 = 0.95;

/// What happened to a column, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnNote {
    pub column: String,
    pub action: NoteAction,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteAction {
    /// Not used: carries no information (constant, all missing, an identifier).
    Dropped,
    /// Not used: the user excluded it (`--exclude`, e.g. filled after contact).
    Excluded,
    /// Not used: the leakage guard fired (`--force` keeps it).
    Leaking,
    /// Used although the leakage guard fired, because the user forced it.
    Forced,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GuardError {
    #[error(
        "{positives} positive and {negatives} negative outcomes among the labelled leads; \
         a fit needs at least {MIN_PER_CLASS} of each ({} more {} needed)",
        .needed, .which
    )]
    TooFewOutcomes {
        positives: usize,
        negatives: usize,
        needed: usize,
        which: &'static str,
    },
}

/// Refuses a fit with fewer than [`MIN_PER_CLASS`] positives or negatives.
pub fn check_outcomes(y: &[bool]) -> Result<(), GuardError> {
    let positives = y.iter().filter(|v| **v).count();
    let negatives = y.len() - positives;
    let (short, which) = if positives <= negatives {
        (positives, "positives")
    } else {
        (negatives, "negatives")
    };
    if short < MIN_PER_CLASS {
        return Err(GuardError::TooFewOutcomes {
            positives,
            negatives,
            needed: MIN_PER_CLASS - short,
            which,
        });
    }
    Ok(())
}

/// The AUC one feature reaches alone on the training leads: each slot scored by its own
/// positive rate (the best any model of this feature alone can rank them there).
pub fn solo_auc(slots: &[usize], y: &[bool], width: usize) -> Option<f64> {
    let mut n = vec![0usize; width];
    let mut pos = vec![0usize; width];
    for (&s, &yi) in slots.iter().zip(y) {
        n[s] += 1;
        pos[s] += usize::from(yi);
    }
    let scores: Vec<f64> = slots.iter().map(|&s| pos[s] as f64 / n[s] as f64).collect();
    auc(&scores, y)
}

/// The note for a column whose solo AUC is `solo`: leaking (or forced) past
/// [`LEAK_AUC`], nothing otherwise.
pub fn leakage_note(column: &str, solo: f64, forced: bool) -> Option<ColumnNote> {
    (solo >= LEAK_AUC).then(|| ColumnNote {
        column: column.to_string(),
        action: if forced {
            NoteAction::Forced
        } else {
            NoteAction::Leaking
        },
        reason: format!(
            "alone it ranks the training leads with AUC {solo:.3} (≥ {LEAK_AUC}): \
             probably filled in after the outcome{}",
            if forced {
                "; kept because you forced it"
            } else {
                "; excluded (keep it with --force)"
            }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_positives_says_how_many_more_are_needed() {
        let mut y = vec![false; 500];
        y[..20].fill(true);
        let e = check_outcomes(&y).unwrap_err();
        assert_eq!(
            e,
            GuardError::TooFewOutcomes {
                positives: 20,
                negatives: 480,
                needed: 30,
                which: "positives"
            }
        );
        assert!(e.to_string().contains("30 more positives needed"), "{e}");
        y[..60].fill(true);
        assert!(check_outcomes(&y).is_ok());
    }

    #[test]
    fn a_slot_that_is_the_outcome_has_solo_auc_one() {
        let y = [true, false, true, false, false];
        let echo: Vec<usize> = y.iter().map(|&v| usize::from(v)).collect();
        assert_eq!(solo_auc(&echo, &y, 2), Some(1.0));
        let noise = [0, 0, 0, 0, 0];
        assert_eq!(solo_auc(&noise, &y, 1), Some(0.5));
        assert!(leakage_note("Tags", 0.99, false).is_some());
        assert_eq!(
            leakage_note("Tags", 0.99, true).unwrap().action,
            NoteAction::Forced
        );
        assert!(leakage_note("City", 0.6, false).is_none());
    }
}
