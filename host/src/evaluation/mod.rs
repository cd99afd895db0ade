//! Measures of a scorer's quality, shared by `strata backtest`, `strata fit`, the
//! champion/challenger comparison and `strata replay`: one implementation of each
//! measure, tested against independent computations.

pub mod agreement;
pub mod calibration;
pub mod ranking;

pub use agreement::{psi, spearman, Confusion, Summary, PRIORITIES};
pub use calibration::{calibration_error, calibration_table, CalibrationBin};
pub use ranking::{auc, auc_interval, bootstrap, brier, ks, lift, Interval};
