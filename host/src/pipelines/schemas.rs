//! The payload contract of a layer, from its manifest's `[schemas]`: which topics it
//! accepts (each with a JSON Schema), the schema of its output, and every topic it may
//! emit (each with a schema). Files are read and compiled when the manifest is loaded, so
//! a broken schema fails the load, never a run.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// `[schemas]` of a manifest: paths relative to the plugin's directory.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemasSpec {
    /// Schema of the outcome's `output`.
    pub output: Option<String>,
    /// Accepted topics → schema of the trigger payload; `"*"` accepts any topic.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Topics the layer may emit → schema of the payload.
    #[serde(default)]
    pub events: BTreeMap<String, String>,
}

impl SchemasSpec {
    pub fn is_empty(&self) -> bool {
        self.output.is_none() && self.inputs.is_empty() && self.events.is_empty()
    }
}

/// One compiled schema and where it came from.
pub struct Schema {
    pub file: String,
    pub document: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").field("file", &self.file).finish()
    }
}

/// Most violations named in one error.
const MAX_VIOLATIONS: usize = 3;

impl Schema {
    fn load(dir: &Path, file: &str) -> Result<Schema, String> {
        if file.is_empty() || file.starts_with('/') || file.split(['/', '\\']).any(|p| p == "..") {
            return Err(format!(
                "schema path {file:?} must be relative to the plugin directory, without `..`"
            ));
        }
        let path = dir.join(file);
        let bytes =
            crate::plugins::files::read_plugin_file(dir, file, crate::manifest::MAX_MANIFEST_BYTES)
                .map_err(|e| format!("cannot read schema: {e}"))?;
        let document: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("schema {} is not JSON: {e}", path.display()))?;
        let validator = jsonschema::validator_for(&document)
            .map_err(|e| format!("schema {} is not a valid JSON Schema: {e}", path.display()))?;
        Ok(Schema {
            file: file.to_string(),
            document,
            validator,
        })
    }

    /// `Ok` when `value` is valid; else the first few violations, with their JSON paths.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(value)
            .take(MAX_VIOLATIONS)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() { "/".to_string() } else { at };
                format!("at {at}: {e}")
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("violates {}: {}", self.file, errors.join("; ")))
        }
    }
}

/// A layer's compiled contract.
#[derive(Debug, Default)]
pub struct LayerSchemas {
    pub output: Option<Schema>,
    pub inputs: BTreeMap<String, Schema>,
    pub events: BTreeMap<String, Schema>,
}

impl LayerSchemas {
    /// Reads and compiles every file `spec` names, relative to `dir`.
    pub fn load(spec: &SchemasSpec, dir: &Path) -> Result<LayerSchemas, String> {
        let table = |m: &BTreeMap<String, String>, what: &str| {
            m.iter()
                .map(|(topic, file)| {
                    if topic.trim().is_empty() {
                        return Err(format!("[schemas.{what}] has an empty topic"));
                    }
                    Ok((topic.clone(), Schema::load(dir, file)?))
                })
                .collect::<Result<BTreeMap<_, _>, String>>()
        };
        Ok(LayerSchemas {
            output: spec
                .output
                .as_deref()
                .map(|f| Schema::load(dir, f))
                .transpose()?,
            inputs: table(&spec.inputs, "inputs")?,
            events: table(&spec.events, "events")?,
        })
    }

    /// Does the layer accept `topic`?
    pub fn accepts(&self, topic: &str) -> bool {
        self.inputs.contains_key(topic) || self.inputs.contains_key("*")
    }

    /// Checks a trigger payload: the topic must be accepted and the payload valid.
    pub fn check_input(&self, topic: &str, payload: &Value) -> Result<(), String> {
        let schema = self
            .inputs
            .get(topic)
            .or_else(|| self.inputs.get("*"))
            .ok_or_else(|| {
                format!(
                    "the layer does not accept topic {topic:?} (its manifest's [schemas.inputs] lists {:?})",
                    self.inputs.keys().collect::<Vec<_>>()
                )
            })?;
        schema
            .check(payload)
            .map_err(|e| format!("payload of {topic:?} {e}"))
    }

    /// Checks the outcome's output.
    pub fn check_output(&self, output: &Value) -> Result<(), String> {
        match &self.output {
            Some(s) => s.check(output).map_err(|e| format!("output {e}")),
            None => Ok(()),
        }
    }

    /// Checks an emitted event: the topic must be declared and the payload valid.
    pub fn check_event(&self, topic: &str, payload: &Value) -> Result<(), String> {
        let schema = self.events.get(topic).ok_or_else(|| {
            format!(
                "topic {topic:?} is not declared in the manifest's [schemas.events] (declared: {:?})",
                self.events.keys().collect::<Vec<_>>()
            )
        })?;
        schema
            .check(payload)
            .map_err(|e| format!("event {topic:?} {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec_in(dir: &Path) -> SchemasSpec {
        std::fs::create_dir_all(dir.join("schemas")).unwrap();
        std::fs::write(
            dir.join("schemas/in.json"),
            r#"{"type":"object","required":["email"],"properties":{"email":{"type":"string"}}}"#,
        )
        .unwrap();
        std::fs::write(dir.join("schemas/any.json"), "{}").unwrap();
        SchemasSpec {
            output: Some("schemas/any.json".into()),
            inputs: [("lead.received".to_string(), "schemas/in.json".to_string())].into(),
            events: [("lead.accepted".to_string(), "schemas/in.json".to_string())].into(),
        }
    }

    #[test]
    fn payloads_are_checked_against_the_declared_topics() {
        let dir = tempfile::tempdir().unwrap();
        let s = LayerSchemas::load(&spec_in(dir.path()), dir.path()).unwrap();
        assert!(s
            .check_input("lead.received", &json!({"email": "a@b.c"}))
            .is_ok());
        let e = s
            .check_input("lead.received", &json!({"mail": 1}))
            .unwrap_err();
        assert!(e.contains("email") && e.contains("schemas/in.json"), "{e}");
        let e = s.check_input("other", &json!({})).unwrap_err();
        assert!(e.contains("does not accept topic \"other\""), "{e}");
        let e = s.check_event("lead.rejected", &json!({})).unwrap_err();
        assert!(e.contains("not declared"), "{e}");
        assert!(s
            .check_event("lead.accepted", &json!({"email": "x"}))
            .is_ok());
        assert!(s.check_output(&json!([1, 2])).is_ok());
    }

    #[test]
    fn broken_or_escaping_schema_files_fail_the_load_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec_in(dir.path());
        std::fs::write(dir.path().join("schemas/bad.json"), "{not json").unwrap();
        spec.output = Some("schemas/bad.json".into());
        let e = LayerSchemas::load(&spec, dir.path()).unwrap_err();
        assert!(
            e.contains("schemas/bad.json") && e.contains("not JSON"),
            "{e}"
        );
        spec.output = Some("../secret.json".into());
        let e = LayerSchemas::load(&spec, dir.path()).unwrap_err();
        assert!(e.contains("without `..`"), "{e}");
        spec.output = Some("schemas/missing.json".into());
        let e = LayerSchemas::load(&spec, dir.path()).unwrap_err();
        assert!(e.contains("cannot read schema"), "{e}");
    }
}
