//! The metrics of a finished run: the runs counter, the last Φ_sync and the rolling mean
//! over the pipeline's newest runs (`pipeline.phi_window`).

use super::Orchestrator;
use crate::db::RunStatus;
use std::collections::VecDeque;

impl Orchestrator {
    pub(super) async fn record_metrics(&self, pipeline: &str, status: RunStatus, phi: Option<f64>) {
        metrics::counter!("pipeline_runs_total", "pipeline" => pipeline.to_string(), "status" => status.as_str())
            .increment(1);
        if let Some(phi) = phi {
            metrics::gauge!("phi_sync_last", "pipeline" => pipeline.to_string()).set(phi);
        }
        if let Some(mean) = self.rolling_phi(pipeline, phi).await {
            metrics::gauge!("phi_sync_rolling_mean", "pipeline" => pipeline.to_string()).set(mean);
        }
    }

    /// Adds a finished run's Φ_sync to its pipeline's window and returns the window's
    /// mean; the first time, the window is read from the database (this run included).
    async fn rolling_phi(&self, pipeline: &str, phi: Option<f64>) -> Option<f64> {
        let window = usize::try_from(self.settings.phi_window.max(1)).unwrap_or(usize::MAX);
        let mean =
            |w: &VecDeque<f64>| (!w.is_empty()).then(|| w.iter().sum::<f64>() / w.len() as f64);
        {
            let mut windows = self.phi_windows.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = windows.get_mut(pipeline) {
                if let Some(phi) = phi {
                    w.push_back(phi);
                    while w.len() > window {
                        w.pop_front();
                    }
                }
                return mean(w);
            }
        }
        match self.db.recent_phi(pipeline, self.settings.phi_window).await {
            Ok(newest_first) => {
                let mut windows = self.phi_windows.lock().unwrap_or_else(|e| e.into_inner());
                // Another run of the pipeline may have seeded it meanwhile: keep that one.
                let w = windows
                    .entry(pipeline.to_string())
                    .or_insert_with(|| newest_first.into_iter().rev().collect());
                mean(w)
            }
            Err(e) => {
                tracing::warn!(pipeline, "cannot compute the rolling Φ_sync: {e}");
                None
            }
        }
    }
}
