//! How well scores rank a binary outcome: ROC AUC, lift, KS, Brier score, and bootstrap
//! intervals of any of them. Inputs are parallel slices (`scores[i]` is the score of the
//! lead whose outcome is `positive[i]`); every function answers `None` when the measure
//! is undefined (no positives, no negatives, no leads) instead of a misleading number.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// ROC AUC by the rank-sum (Mann–Whitney) method, ties counted half.
pub fn auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| positive[idx[k]]).count() as f64 * avg_rank;
        i = j + 1;
    }
    let pos = positive.iter().filter(|p| **p).count() as f64;
    let neg = positive.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Positive rate in the top `fraction` by score ÷ overall positive rate.
pub fn lift(scores: &[f64], positive: &[bool], fraction: f64) -> Option<f64> {
    if scores.is_empty() {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let n = ((scores.len() as f64 * fraction).ceil() as usize).clamp(1, idx.len());
    let top = idx[..n].iter().filter(|&&i| positive[i]).count() as f64 / n as f64;
    let base = positive.iter().filter(|p| **p).count() as f64 / positive.len() as f64;
    (base > 0.0).then(|| top / base)
}

/// Kolmogorov–Smirnov statistic: the largest gap between the score distributions of
/// positives and negatives (0 = no separation, 1 = perfect).
pub fn ks(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let pos = positive.iter().filter(|p| **p).count() as f64;
    let neg = positive.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut cp, mut cn, mut best, mut i) = (0.0, 0.0, 0.0f64, 0);
    while i < idx.len() {
        // Move past every lead with this score before comparing: ties move together.
        let v = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == v {
            if positive[idx[i]] {
                cp += 1.0;
            } else {
                cn += 1.0;
            }
            i += 1;
        }
        best = best.max((cp / pos - cn / neg).abs());
    }
    Some(best)
}

/// Brier score of probabilities `p` (0–1) against the outcomes: mean squared error.
pub fn brier(p: &[f64], positive: &[bool]) -> Option<f64> {
    if p.is_empty() {
        return None;
    }
    let sum: f64 = p
        .iter()
        .zip(positive)
        .map(|(p, y)| (p - f64::from(u8::from(*y))).powi(2))
        .sum();
    Some(sum / p.len() as f64)
}

/// A measure with its bootstrap percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Interval {
    pub value: f64,
    /// 2.5th percentile of the bootstrap distribution.
    pub low: f64,
    /// 97.5th percentile of the bootstrap distribution.
    pub high: f64,
    /// Resamples in which the measure was defined.
    pub resamples: usize,
}

/// `measure` on the data, with a 95% percentile interval from `resamples` bootstrap
/// resamples (leads drawn with replacement). Deterministic for a given `seed`, so a
/// report is reproducible. `None` when the measure is undefined on the data itself.
pub fn bootstrap(
    n: usize,
    resamples: usize,
    seed: u64,
    measure: impl Fn(&[usize]) -> Option<f64>,
) -> Option<Interval> {
    let all: Vec<usize> = (0..n).collect();
    let value = measure(&all)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draws = Vec::with_capacity(resamples);
    let mut sample = vec![0usize; n];
    for _ in 0..resamples {
        for s in sample.iter_mut() {
            *s = rng.random_range(0..n);
        }
        if let Some(v) = measure(&sample) {
            draws.push(v);
        }
    }
    if draws.is_empty() {
        return Some(Interval {
            value,
            low: value,
            high: value,
            resamples: 0,
        });
    }
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((draws.len() - 1) as f64 * q).round() as usize];
    Some(Interval {
        value,
        low: at(0.025),
        high: at(0.975),
        resamples: draws.len(),
    })
}

/// AUC with its bootstrap interval.
pub fn auc_interval(
    scores: &[f64],
    positive: &[bool],
    resamples: usize,
    seed: u64,
) -> Option<Interval> {
    bootstrap(scores.len(), resamples, seed, |idx| {
        let (s, p): (Vec<f64>, Vec<bool>) = idx.iter().map(|&i| (scores[i], positive[i])).unzip();
        auc(&s, &p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_one_for_perfect_ranking_and_half_for_ties() {
        assert_eq!(
            auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]),
            Some(0.5)
        );
        assert_eq!(auc(&[0.9, 0.1], &[false, true]), Some(0.0));
        assert_eq!(auc(&[1.0], &[true]), None);
    }

    #[test]
    fn auc_equals_the_share_of_correctly_ordered_pairs() {
        // Independent computation: count (positive, negative) pairs directly.
        let s = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0];
        let p = [
            true, false, false, true, true, true, false, false, true, false,
        ];
        let mut num = 0.0;
        let mut den = 0.0;
        for i in 0..s.len() {
            for j in 0..s.len() {
                if p[i] && !p[j] {
                    den += 1.0;
                    num += if s[i] > s[j] {
                        1.0
                    } else if s[i] == s[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((auc(&s, &p).unwrap() - num / den).abs() < 1e-12);
    }

    #[test]
    fn lift_compares_top_fraction_to_base_rate() {
        let s = [0.9, 0.8, 0.1, 0.2];
        let p = [true, false, false, false];
        assert_eq!(lift(&s, &p, 0.25), Some(4.0));
        assert_eq!(lift(&[], &[], 0.1), None);
    }

    #[test]
    fn ks_is_one_for_separated_classes_and_zero_for_one_score() {
        assert_eq!(
            ks(&[1.0, 2.0, 8.0, 9.0], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(ks(&[5.0, 5.0, 5.0], &[false, true, true]), Some(0.0));
        assert_eq!(ks(&[5.0], &[true]), None);
    }

    #[test]
    fn brier_is_mean_squared_error() {
        assert_eq!(brier(&[1.0, 0.0], &[true, false]), Some(0.0));
        assert_eq!(brier(&[0.5, 0.5], &[true, false]), Some(0.25));
    }

    #[test]
    fn bootstrap_interval_brackets_the_value_and_is_reproducible() {
        let s: Vec<f64> = (0..200).map(|i| f64::from(i % 37)).collect();
        let p: Vec<bool> = (0..200)
            .map(|i| (i * 7919) % 11 < 4 + (i % 37) / 9)
            .collect();
        let a = auc_interval(&s, &p, 300, 7).unwrap();
        let b = auc_interval(&s, &p, 300, 7).unwrap();
        assert_eq!(a, b);
        assert!(a.low <= a.value && a.value <= a.high, "{a:?}");
        assert!(a.high - a.low > 0.0 && a.high - a.low < 0.5, "{a:?}");
        assert_eq!(auc_interval(&[1.0, 2.0], &[true, true], 100, 1), None);
    }
}
