//! How two scorers agree on the same leads: priority confusion matrix, score-difference
//! distribution, Spearman rank correlation, and the population stability index (PSI) of
//! one score distribution against another.

use crate::domain::Priority;
use serde::Serialize;

/// Priorities in their natural order, highest first: the rows and columns of
/// [`Confusion`].
pub const PRIORITIES: [Priority; 4] = [
    Priority::Immediate,
    Priority::High,
    Priority::Medium,
    Priority::Low,
];

fn priority_index(p: Priority) -> usize {
    PRIORITIES.iter().position(|q| *q == p).unwrap_or(3)
}

/// Priority agreement: `counts[champion][challenger]`, rows and columns in
/// [`PRIORITIES`] order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Confusion {
    /// Row and column labels, highest priority first.
    pub labels: Vec<String>,
    /// `counts[i][j]`: pairs where the champion said `labels[i]` and the challenger
    /// `labels[j]`.
    pub counts: Vec<Vec<u64>>,
    /// Share of pairs on the diagonal (same priority); `null` with no pairs.
    pub agreement: Option<f64>,
}

impl Confusion {
    pub fn of(pairs: impl IntoIterator<Item = (Priority, Priority)>) -> Confusion {
        let mut counts = vec![vec![0u64; 4]; 4];
        for (a, b) in pairs {
            counts[priority_index(a)][priority_index(b)] += 1;
        }
        let total: u64 = counts.iter().flatten().sum();
        let same: u64 = (0..4).map(|i| counts[i][i]).sum();
        Confusion {
            labels: PRIORITIES.iter().map(|p| p.as_str().to_string()).collect(),
            counts,
            agreement: (total > 0).then(|| same as f64 / total as f64),
        }
    }
}

/// A distribution in a few numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub min: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for an empty sample.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
        Some(Summary {
            count: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            min: v[0],
            p10: q(0.1),
            p50: q(0.5),
            p90: q(0.9),
            max: v[v.len() - 1],
        })
    }

    /// Nearest-rank quantile `q` (0–1) of `values`; `None` when empty.
    pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Some(v[((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize])
    }
}

/// Average ranks (1-based, ties share their mean rank).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for k in i..=j {
            r[idx[k]] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation (Pearson correlation of average ranks). `None` with fewer
/// than two pairs or when either side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() < 2 || a.len() != b.len() {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// Population stability index of `actual` against `expected`, over ten equal-width bins
/// of the 0–100 score range. Empty bins are floored at 0.1% so the index stays finite.
/// Rule of thumb: < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 major shift. `None`
/// when either side is empty.
pub fn psi(expected: &[f64], actual: &[f64]) -> Option<f64> {
    if expected.is_empty() || actual.is_empty() {
        return None;
    }
    let hist = |v: &[f64]| {
        let mut h = [0.0f64; 10];
        for x in v {
            h[((x / 10.0).floor().clamp(0.0, 9.0)) as usize] += 1.0;
        }
        h.map(|c| (c / v.len() as f64).max(0.001))
    };
    let (e, a) = (hist(expected), hist(actual));
    Some(e.iter().zip(&a).map(|(e, a)| (a - e) * (a / e).ln()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_counts_pairs_and_agreement() {
        use Priority::*;
        let c = Confusion::of([(High, High), (High, Low), (Low, Low), (Immediate, High)]);
        assert_eq!(c.counts[1][1], 1);
        assert_eq!(c.counts[1][3], 1);
        assert_eq!(c.counts[0][1], 1);
        assert_eq!(c.agreement, Some(0.5));
        assert_eq!(Confusion::of([]).agreement, None);
    }

    #[test]
    fn spearman_is_one_for_monotone_and_minus_one_for_reversed() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 30.0, 400.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&a, &[1.0, 1.0, 1.0, 1.0]), None);
    }

    #[test]
    fn psi_is_zero_for_same_distribution_and_large_for_a_shift() {
        let a: Vec<f64> = (0..100).map(f64::from).collect();
        assert!(psi(&a, &a).unwrap().abs() < 1e-12);
        let shifted: Vec<f64> = a.iter().map(|x| (x + 50.0).min(100.0)).collect();
        assert!(psi(&a, &shifted).unwrap() > 0.25);
    }

    #[test]
    fn summary_reports_quantiles() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.min, s.p50, s.max, s.count), (1.0, 3.0, 5.0, 3));
        assert_eq!(Summary::of(&[]), None);
    }
}
