//! Φ_sync, the coherence of a pipeline run (0–1): the mean, over the containers the run
//! touched, of (layer runs that succeeded ÷ layer runs) × (events acknowledged by all
//! their subscribers ÷ events emitted). A container with no layer runs (or no events)
//! contributes 1 for that factor: nothing in it failed (or was left unacknowledged). An
//! event nobody subscribes to counts as acknowledged.

use crate::db::ContainerCounts;

/// One container's factor of Φ_sync.
pub fn container_phi(c: &ContainerCounts) -> f64 {
    ratio(c.layer_runs_succeeded, c.layer_runs) * ratio(c.events_fully_acked, c.events_emitted)
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        1.0
    } else {
        (part.clamp(0, whole) as f64) / (whole as f64)
    }
}

/// Φ_sync over the containers a run touched; `None` when it touched none.
pub fn phi_sync(containers: &[ContainerCounts]) -> Option<f64> {
    if containers.is_empty() {
        return None;
    }
    Some(containers.iter().map(container_phi).sum::<f64>() / containers.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, runs: i64, ok: i64, events: i64, acked: i64) -> ContainerCounts {
        ContainerCounts {
            container: name.into(),
            layer_runs: runs,
            layer_runs_succeeded: ok,
            events_emitted: events,
            events_fully_acked: acked,
        }
    }

    #[test]
    fn a_clean_run_is_one_and_failures_lower_their_container_only() {
        assert_eq!(
            phi_sync(&[c("sales", 3, 3, 4, 4), c("finance", 2, 2, 2, 2)]),
            Some(1.0)
        );
        // One of three sales layer runs failed and one of four events was not acknowledged:
        // sales = 2/3 × 3/4 = 0.5; finance = 1; Φ = 0.75.
        let phi = phi_sync(&[c("sales", 3, 2, 4, 3), c("finance", 2, 2, 2, 2)]).unwrap();
        assert!((phi - 0.75).abs() < 1e-12, "{phi}");
        assert_eq!(phi_sync(&[]), None);
        assert_eq!(container_phi(&c("ops", 0, 0, 0, 0)), 1.0);
    }
}
