//! Test layer: every run fails with `PluginError::Failed`, for the host's failure paths.

use strata_sdk::{export_layer, Layer, LayerOutcome, PluginError, RunContext};

struct FailLayer;

impl Layer for FailLayer {
    fn run_layer(_ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        Err(PluginError::Failed("fail-layer always fails".into()))
    }
}

export_layer!(FailLayer);
