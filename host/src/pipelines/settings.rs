//! `[pipeline]` (global run settings), `[pipelines.<name>]` (which layers, in which
//! container, subscribed to which topics) and `[webhooks.<name>]` (signed inbound
//! deliveries routed to a layer). Validated at start with errors that name the key.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[pipeline]`: how runs execute.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    /// Every run is a dry run (side effects recorded, not executed), whatever the request says.
    pub dry_run: bool,
    /// Attempts per delivery of an event to a layer before it is marked failed.
    pub max_attempts: i64,
    /// Most layer runs in one pipeline run (a guard against event loops).
    pub max_layer_runs: i64,
    /// Pipeline runs kept for the rolling Φ_sync mean per pipeline.
    pub phi_window: i64,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            dry_run: false,
            max_attempts: 3,
            max_layer_runs: 200,
            phi_window: 20,
        }
    }
}

/// One layer of a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LayerBinding {
    /// The layer plugin's name.
    pub layer: String,
    /// `sales`, `operations`, `finance`, or any container name.
    pub container: String,
    /// Topics the layer is subscribed to in this pipeline.
    pub topics: Vec<String>,
}

/// `[pipelines.<name>]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineDef {
    #[serde(default)]
    pub description: String,
    /// Topic of the event that starts a run (`POST /api/v1/pipelines/{name}/runs`).
    pub start_topic: String,
    pub layers: Vec<LayerBinding>,
}

impl LayerBinding {
    /// This binding as the subscriber of an event.
    pub fn subscriber(&self) -> crate::db::Subscriber {
        crate::db::Subscriber {
            layer: self.layer.clone(),
            container: self.container.clone(),
        }
    }
}

impl PipelineDef {
    /// The subscribers of `topic`, in declaration order.
    pub fn subscribers(&self, topic: &str) -> Vec<&LayerBinding> {
        self.layers
            .iter()
            .filter(|l| l.topics.iter().any(|t| t == topic))
            .collect()
    }

    pub fn binding(&self, layer: &str) -> Option<&LayerBinding> {
        self.layers.iter().find(|l| l.layer == layer)
    }

    /// Containers of this pipeline, in first-seen order.
    pub fn containers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for l in &self.layers {
            if !out.contains(&l.container.as_str()) {
                out.push(&l.container);
            }
        }
        out
    }
}

/// `[webhooks.<name>]`: `POST /api/v1/webhooks/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookDef {
    /// The pipeline whose run the delivery starts.
    pub pipeline: String,
    /// The layer that handles it (must be subscribed to `topic` in that pipeline).
    pub layer: String,
    /// Topic of the event the delivery becomes.
    pub topic: String,
    /// Environment variable holding the HMAC-SHA256 secret (never in config, never logged).
    pub secret_env: String,
    /// Accepted clock skew of `x-strata-timestamp`, in seconds (replay window).
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
    /// Largest accepted body.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

fn default_tolerance() -> u64 {
    300
}
fn default_max_body() -> usize {
    64 * 1024
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(crate) fn valid_topic(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Checks pipelines and webhooks; the error names the offending key.
pub fn validate(
    run: &RunSettings,
    pipelines: &BTreeMap<String, PipelineDef>,
    webhooks: &BTreeMap<String, WebhookDef>,
) -> Result<(), String> {
    if run.max_attempts < 1 || run.max_layer_runs < 1 || run.phi_window < 1 {
        return Err(
            "pipeline.max_attempts, pipeline.max_layer_runs and pipeline.phi_window must be at least 1"
                .into(),
        );
    }
    for (name, p) in pipelines {
        let key = |k: &str| format!("pipelines.{name}.{k}");
        if !valid_name(name) {
            return Err(format!(
                "pipelines.{name}: a pipeline name must be 1-64 characters of [a-z0-9_-]"
            ));
        }
        if !valid_topic(&p.start_topic) {
            return Err(format!(
                "{} {:?} is not a topic",
                key("start_topic"),
                p.start_topic
            ));
        }
        if p.layers.is_empty() {
            return Err(format!("{} must list at least one layer", key("layers")));
        }
        for (i, l) in p.layers.iter().enumerate() {
            let at = key(&format!("layers[{i}]"));
            if !valid_name(&l.layer) {
                return Err(format!("{at}.layer {:?} is not a plugin name", l.layer));
            }
            if !valid_name(&l.container) {
                return Err(format!(
                    "{at}.container {:?} must be 1-64 characters of [a-z0-9_-]",
                    l.container
                ));
            }
            if p.layers[..i].iter().any(|o| o.layer == l.layer) {
                return Err(format!("{at}: layer {:?} is listed twice", l.layer));
            }
            if l.topics.is_empty() {
                return Err(format!("{at}.topics must name at least one topic"));
            }
            if let Some(t) = l.topics.iter().find(|t| !valid_topic(t)) {
                return Err(format!("{at}.topics: {t:?} is not a topic"));
            }
        }
        if p.subscribers(&p.start_topic).is_empty() {
            return Err(format!(
                "{}: no layer of the pipeline subscribes to {:?}",
                key("start_topic"),
                p.start_topic
            ));
        }
    }
    for (name, w) in webhooks {
        let key = |k: &str| format!("webhooks.{name}.{k}");
        if !valid_name(name) {
            return Err(format!(
                "webhooks.{name}: a webhook name must be 1-64 characters of [a-z0-9_-]"
            ));
        }
        let Some(p) = pipelines.get(&w.pipeline) else {
            return Err(format!(
                "{} names {:?}, which is not under [pipelines]",
                key("pipeline"),
                w.pipeline
            ));
        };
        match p.binding(&w.layer) {
            None => {
                return Err(format!(
                    "{} names {:?}, which is not a layer of pipeline {:?}",
                    key("layer"),
                    w.layer,
                    w.pipeline
                ))
            }
            Some(b) if !b.topics.contains(&w.topic) => {
                return Err(format!(
                    "{}: layer {:?} is not subscribed to {:?} in pipeline {:?}",
                    key("topic"),
                    w.layer,
                    w.topic,
                    w.pipeline
                ))
            }
            Some(_) => {}
        }
        if w.secret_env.trim().is_empty() {
            return Err(format!(
                "{} must name an environment variable",
                key("secret_env")
            ));
        }
        if w.max_body_bytes == 0 || w.tolerance_secs == 0 {
            return Err(format!(
                "{} and {} must be at least 1",
                key("max_body_bytes"),
                key("tolerance_secs")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden() -> BTreeMap<String, PipelineDef> {
        let text = r#"
start_topic = "lead.received"
[[layers]]
layer = "intake"
container = "sales"
topics = ["lead.received"]
[[layers]]
layer = "booking"
container = "operations"
topics = ["lead.accepted", "booking.received"]
"#;
        [("golden".to_string(), toml::from_str(text).unwrap())].into()
    }

    fn hook(layer: &str, topic: &str) -> BTreeMap<String, WebhookDef> {
        [(
            "booking".to_string(),
            WebhookDef {
                pipeline: "golden".into(),
                layer: layer.into(),
                topic: topic.into(),
                secret_env: "S".into(),
                tolerance_secs: 300,
                max_body_bytes: 1024,
            },
        )]
        .into()
    }

    #[test]
    fn a_consistent_pipeline_and_webhook_pass() {
        validate(
            &RunSettings::default(),
            &golden(),
            &hook("booking", "booking.received"),
        )
        .unwrap();
        let p = &golden()["golden"];
        assert_eq!(p.containers(), vec!["sales", "operations"]);
        assert_eq!(p.subscribers("lead.accepted")[0].layer, "booking");
    }

    #[test]
    fn errors_name_the_bad_key() {
        let e = validate(
            &RunSettings::default(),
            &golden(),
            &hook("booking", "lead.received"),
        )
        .unwrap_err();
        assert!(e.contains("webhooks.booking.topic"), "{e}");
        let e = validate(&RunSettings::default(), &golden(), &hook("nope", "x")).unwrap_err();
        assert!(e.contains("webhooks.booking.layer"), "{e}");
        let mut p = golden();
        p.get_mut("golden").unwrap().start_topic = "nobody.listens".into();
        let e = validate(&RunSettings::default(), &p, &BTreeMap::new()).unwrap_err();
        assert!(e.contains("pipelines.golden.start_topic"), "{e}");
        let mut p = golden();
        p.get_mut("golden").unwrap().layers[1].layer = "intake".into();
        let e = validate(&RunSettings::default(), &p, &BTreeMap::new()).unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
    }
}
