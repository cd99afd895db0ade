//! Test layer: reports its run context as output and re-emits the trigger on `<topic>.done`.

use strata_sdk::{export_layer, EmittedEvent, Layer, LayerOutcome, PluginError, RunContext};

struct EchoLayer;

impl Layer for EchoLayer {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        if ctx.payload.is_empty() {
            return Err(PluginError::InvalidInput("empty payload".into()));
        }
        Ok(LayerOutcome {
            output: format!(
                "{{\"run_id\":\"{}\",\"container\":\"{}\",\"dry_run\":{}}}",
                ctx.run_id, ctx.container, ctx.dry_run
            ),
            events: vec![EmittedEvent {
                topic: format!("{}.done", ctx.topic),
                payload: ctx.payload,
            }],
        })
    }
}

export_layer!(EchoLayer);
