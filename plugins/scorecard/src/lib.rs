//! Generic fitted scorecard. The component carries its model in a data buffer
//! ([`buffer`]) that `strata fit` fills in after fitting; the code is the same for every
//! fitted plugin, so no build toolchain is needed where models are fitted. Pure: imports
//! no Strata capability.

pub mod buffer;
pub mod model;

use strata_sdk::{Lead, PluginError, Score};

/// Scores with the model in the buffer: an error when the component carries none.
pub fn score_with_buffer(lead: Lead) -> Result<Score, PluginError> {
    {
        let payload = buffer::payload();
        if payload.is_empty() {
            return Err(PluginError::InvalidInput(
                "this scorecard component carries no model: make one with `strata fit`".into(),
            ));
        }
        let model: model::Model = serde_json::from_slice(payload)
            .map_err(|e| PluginError::Failed(format!("model in the component: {e}")))?;
        if model.format != model::FORMAT {
            return Err(PluginError::Failed(format!(
                "model format {} (this component reads {})",
                model.format,
                model::FORMAT
            )));
        }
        Ok(model::score(&model, &lead))
    }
}

// Exported only in the component: the host links this crate natively too (for the
// model), next to the BANT crate, and two native `score` exports would clash.
#[cfg(target_arch = "wasm32")]
mod component {
    struct Scorecard;

    impl strata_sdk::Scorer for Scorecard {
        fn score(lead: strata_sdk::Lead) -> Result<strata_sdk::Score, strata_sdk::PluginError> {
            super::score_with_buffer(lead)
        }
    }

    strata_sdk::export_scorer!(Scorecard);
}

#[cfg(test)]
mod tests;
