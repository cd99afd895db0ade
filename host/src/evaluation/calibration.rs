//! Calibration: do scores read as probabilities match what happened? Leads sorted by
//! score are cut into equal-count groups (deciles by default); each group's mean
//! predicted probability is set beside its observed positive rate.

use serde::Serialize;

/// One group of leads with neighbouring scores.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CalibrationBin {
    /// 1 = the lowest scores.
    pub bin: usize,
    pub leads: usize,
    pub positives: usize,
    pub min_score: f64,
    pub max_score: f64,
    /// Mean of score ÷ 100 over the group.
    pub predicted: f64,
    /// positives ÷ leads.
    pub observed: f64,
}

/// `scores` (0–100) cut into `bins` equal-count groups by ascending score (the first
/// groups take one lead more when the count does not divide). Fewer groups when there
/// are fewer leads than bins; empty for no leads.
pub fn calibration_table(scores: &[f64], positive: &[bool], bins: usize) -> Vec<CalibrationBin> {
    let n = scores.len().min(positive.len());
    if n == 0 || bins == 0 {
        return Vec::new();
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let groups = bins.min(n);
    let (base, extra) = (n / groups, n % groups);
    let mut out = Vec::with_capacity(groups);
    let mut start = 0;
    for g in 0..groups {
        let len = base + usize::from(g < extra);
        let members = &idx[start..start + len];
        start += len;
        let positives = members.iter().filter(|&&i| positive[i]).count();
        out.push(CalibrationBin {
            bin: g + 1,
            leads: len,
            positives,
            min_score: scores[members[0]],
            max_score: scores[members[len - 1]],
            predicted: members.iter().map(|&i| scores[i] / 100.0).sum::<f64>() / len as f64,
            observed: positives as f64 / len as f64,
        });
    }
    out
}

/// Expected calibration error: the lead-weighted mean gap |predicted − observed| of a
/// table. `None` for an empty table.
pub fn calibration_error(table: &[CalibrationBin]) -> Option<f64> {
    let n: usize = table.iter().map(|b| b.leads).sum();
    (n > 0).then(|| {
        table
            .iter()
            .map(|b| b.leads as f64 * (b.predicted - b.observed).abs())
            .sum::<f64>()
            / n as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn deciles_split_leads_evenly_in_score_order() {
        let s: Vec<f64> = (0..105).map(|i| f64::from(104 - i)).collect();
        let p: Vec<bool> = (0..105).map(|i| i % 3 == 0).collect();
        let t = calibration_table(&s, &p, 10);
        assert_eq!(t.len(), 10);
        assert_eq!(t.iter().map(|b| b.leads).sum::<usize>(), 105);
        assert_eq!((t[0].leads, t[9].leads), (11, 10));
        assert_eq!((t[0].min_score, t[9].max_score), (0.0, 104.0));
        assert!(t.windows(2).all(|w| w[0].max_score <= w[1].min_score));
        assert_eq!(t.iter().map(|b| b.positives).sum::<usize>(), 35);
    }

    #[test]
    fn outcomes_drawn_at_the_score_are_calibrated_and_inverted_ones_are_not() {
        let mut rng = StdRng::seed_from_u64(3);
        let s: Vec<f64> = (0..20_000).map(|_| rng.random_range(0.0..100.0)).collect();
        let p: Vec<bool> = s.iter().map(|x| rng.random_bool(x / 100.0)).collect();
        let good = calibration_error(&calibration_table(&s, &p, 10)).unwrap();
        assert!(good < 0.02, "{good}");
        let flipped: Vec<f64> = s.iter().map(|x| 100.0 - x).collect();
        let bad = calibration_error(&calibration_table(&flipped, &p, 10)).unwrap();
        assert!(bad > 0.3, "{bad}");
    }

    #[test]
    fn fewer_leads_than_bins_gives_one_bin_per_lead() {
        let t = calibration_table(&[10.0, 90.0], &[false, true], 10);
        assert_eq!(t.len(), 2);
        assert_eq!((t[1].predicted, t[1].observed), (0.9, 1.0));
        assert!(calibration_table(&[], &[], 10).is_empty());
        assert_eq!(calibration_error(&[]), None);
    }
}
