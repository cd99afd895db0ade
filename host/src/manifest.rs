//! The plugin manifest (`plugin.toml`): what a plugin is, what it declares, its limits and
//! its smoke tests.

use crate::capabilities::{
    Capability, CrmScope, EventsScope, LlmScope, McpScope, ScoringScope, StateScope,
};
use crate::domain::{Lead, Priority};
use crate::pipelines::schemas::{LayerSchemas, SchemasSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// File name of a plugin's manifest inside its directory.
pub const MANIFEST_FILE: &str = "plugin.toml";
/// Default file name of the component next to the manifest.
pub const DEFAULT_COMPONENT: &str = "plugin.wasm";
/// Largest manifest (or layer schema file) read.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Scorer,
    Layer,
    Agent,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Scorer => "scorer",
            PluginKind::Layer => "layer",
            PluginKind::Agent => "agent",
        }
    }

    /// The export a component of this kind must provide.
    pub fn required_export(self) -> &'static str {
        match self {
            PluginKind::Scorer => "score",
            PluginKind::Layer => "run-layer",
            PluginKind::Agent => "run",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_component")]
    pub component: String,
    /// Hex SHA-256 of the component this manifest belongs to. When set, the version goes
    /// live only with exactly these bytes: a manifest that arrives before its component
    /// waits for it instead of going live with the previous component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_sha256: Option<String>,
}

fn default_component() -> String {
    DEFAULT_COMPONENT.to_string()
}

/// Capabilities a plugin declares, with the scopes it asks for. `log` is implicit.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredCapabilities {
    #[serde(default)]
    pub log: Option<toml::Table>,
    #[serde(default)]
    pub state: Option<StateScope>,
    #[serde(default)]
    pub crm: Option<CrmScope>,
    #[serde(default)]
    pub llm: Option<LlmScope>,
    #[serde(default)]
    pub mcp: Option<McpScope>,
    #[serde(default)]
    pub scoring: Option<ScoringScope>,
    #[serde(default)]
    pub events: Option<EventsScope>,
}

impl DeclaredCapabilities {
    pub fn declares(&self, cap: Capability) -> bool {
        match cap {
            Capability::Log => true,
            Capability::State => self.state.is_some(),
            Capability::Crm => self.crm.is_some(),
            Capability::Llm => self.llm.is_some(),
            Capability::Mcp => self.mcp.is_some(),
            Capability::Scoring => self.scoring.is_some(),
            Capability::Events => self.events.is_some(),
        }
    }
}

/// Resource limits. In a manifest (`[limits]`): what the plugin asks for; in config
/// (`[grants.<name>.limits]`): the operator's ceiling.
///
/// Deny by default holds for limits: the ceiling of each limit is the grant's value when
/// the grant sets it, else the runtime default (`runtime.default_memory_mb`,
/// `default_deadline_ms`, `default_max_input_bytes`, `default_max_output_bytes`); memory
/// is also capped by `runtime.pool_max_memory_mb`. A manifest may ask for less than the
/// ceiling and gets what it asked for. Asking for more is not an error: the version loads
/// with the ceiling, and a WARN line names `plugin@version`, the limit, what was asked,
/// what is allowed and the line to add (e.g. `[grants.NAME.limits] deadline_ms = 20000`).
/// Without a request a plugin gets the runtime default (or the grant's value when that is
/// lower): a grant raises what a plugin may ask for, not what it gets unasked. `fuel` is a
/// budget, not an allowance: the smaller of the manifest's and the grant's applies (either
/// alone when only one sets it). See `runtime::limits::Limits::effective`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub memory_mb: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub fuel: Option<u64>,
    pub max_input_bytes: Option<u64>,
    pub max_output_bytes: Option<u64>,
}

/// Expected bounds of a smoke test's output.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeExpect {
    pub min_score: Option<f64>,
    pub max_score: Option<f64>,
    #[serde(default)]
    pub priority: Vec<Priority>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeCase {
    pub name: String,
    pub input: Lead,
    #[serde(default)]
    pub expect: SmokeExpect,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub plugin: PluginSection,
    #[serde(default)]
    pub capabilities: DeclaredCapabilities,
    #[serde(default)]
    pub limits: LimitsSpec,
    #[serde(default)]
    pub smoke: Vec<SmokeCase>,
    /// Layers: the payload contract (JSON Schema files next to the manifest).
    #[serde(default, skip_serializing_if = "SchemasSpec::is_empty")]
    pub schemas: SchemasSpec,
    /// The compiled `[schemas]`, when the manifest was loaded from its directory
    /// ([`Manifest::load`]); a layer loaded that way always has them (maybe empty).
    #[serde(skip)]
    pub layer_schemas: Option<std::sync::Arc<LayerSchemas>>,
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {0}")]
    Read(#[from] crate::plugins::files::FileError),
    #[error("invalid manifest {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid manifest {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Manifest {
    /// Reads and validates `dir/plugin.toml` (or the file itself if `path` is a file).
    /// Only a regular file inside its directory, of at most [`MAX_MANIFEST_BYTES`], is read
    /// (see [`crate::plugins::files`]).
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let (dir, name) = if path.is_dir() {
            (path.to_path_buf(), std::ffi::OsString::from(MANIFEST_FILE))
        } else {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            (parent, path.file_name().unwrap_or_default().to_os_string())
        };
        let bytes = crate::plugins::files::read_plugin_file(
            &dir,
            &name.to_string_lossy(),
            MAX_MANIFEST_BYTES,
        )?;
        Self::from_bytes(&bytes, &dir.join(&name))
    }

    /// Parses and validates manifest bytes read from `file`; a layer's schemas are read
    /// from `file`'s directory.
    pub fn from_bytes(bytes: &[u8], file: &Path) -> Result<Self, ManifestError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ManifestError::Parse {
            path: file.to_path_buf(),
            message: format!("not UTF-8 text (byte {})", e.valid_up_to()),
        })?;
        let mut manifest = Self::parse(text, file)?;
        if manifest.plugin.kind == PluginKind::Layer {
            let dir = file.parent().unwrap_or(Path::new("."));
            let schemas = LayerSchemas::load(&manifest.schemas, dir).map_err(|message| {
                ManifestError::Invalid {
                    path: file.to_path_buf(),
                    message: format!("[schemas]: {message}"),
                }
            })?;
            manifest.layer_schemas = Some(std::sync::Arc::new(schemas));
        }
        Ok(manifest)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<Self, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: origin.to_path_buf(),
            message: one_line_toml_error(&e, text),
        })?;
        manifest
            .validate()
            .map_err(|message| ManifestError::Invalid {
                path: origin.to_path_buf(),
                message,
            })?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), String> {
        let name = &self.plugin.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "plugin.name {name:?} must be 1-64 characters of [a-z0-9-]"
            ));
        }
        if !is_semver(&self.plugin.version) {
            return Err(format!(
                "plugin.version {:?} is not a semantic version (e.g. 1.2.0)",
                self.plugin.version
            ));
        }
        if let Some(sha) = &self.plugin.component_sha256 {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(
                    "plugin.component_sha256 must be 64 hex digits (sha256sum of the component)"
                        .into(),
                );
            }
        }
        let comp = &self.plugin.component;
        if comp.is_empty() || comp.contains('/') || comp.contains('\\') || comp.starts_with('.') {
            return Err(format!(
                "plugin.component {comp:?} must be a plain file name next to plugin.toml"
            ));
        }
        if !self.schemas.is_empty() && self.plugin.kind != PluginKind::Layer {
            return Err("[schemas] is only defined for layers".into());
        }
        if !self.smoke.is_empty() && self.plugin.kind != PluginKind::Scorer {
            return Err("smoke cases are only defined for scorers".into());
        }
        for case in &self.smoke {
            if let (Some(lo), Some(hi)) = (case.expect.min_score, case.expect.max_score) {
                if lo > hi {
                    return Err(format!("smoke case {:?}: min_score > max_score", case.name));
                }
            }
        }
        Ok(())
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.plugin.name, self.plugin.version)
    }
}

/// A TOML error as one line: the parser's message and where (line, column), never the
/// snippet of the file the default rendering quotes.
fn one_line_toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[plugin]
name = "bant"
version = "1.0.0"
kind = "scorer"
[capabilities]
state = { max_value_bytes = 128 }
[limits]
deadline_ms = 20
[[smoke]]
name = "hot"
[smoke.input]
id = "s1"
budget = 1000.0
[smoke.input.attributes]
"Lead Origin" = "API"
[smoke.expect]
min_score = 10.0
priority = ["high", "immediate"]
"#;

    #[test]
    fn parses_a_complete_manifest() {
        let m = Manifest::parse(GOOD, Path::new("plugin.toml")).unwrap();
        assert_eq!(m.id(), "bant@1.0.0");
        assert_eq!(m.plugin.component, DEFAULT_COMPONENT);
        assert!(m.capabilities.declares(Capability::State));
        assert!(!m.capabilities.declares(Capability::Crm));
        assert_eq!(m.smoke[0].input.attributes["Lead Origin"], "API");
        assert_eq!(
            m.smoke[0].expect.priority,
            vec![Priority::High, Priority::Immediate]
        );
    }

    #[test]
    fn rejects_bad_names_versions_and_unknown_keys() {
        let bad_name = GOOD.replace("name = \"bant\"", "name = \"Bad Name\"");
        assert!(Manifest::parse(&bad_name, Path::new("p"))
            .unwrap_err()
            .to_string()
            .contains("plugin.name"));
        let bad_ver = GOOD.replace("1.0.0", "one");
        assert!(Manifest::parse(&bad_ver, Path::new("p"))
            .unwrap_err()
            .to_string()
            .contains("semantic version"));
        let unknown = GOOD.replace("[limits]", "[limits]\nmemroy_mb = 3");
        let e = Manifest::parse(&unknown, Path::new("p"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("memroy_mb") && e.contains("line 9"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        let broken = Manifest::parse("[plugin]\nname = \"x\"\nversion = \n", Path::new("p"))
            .unwrap_err()
            .to_string();
        assert!(
            !broken.contains('\n') && broken.contains("line 3"),
            "{broken}"
        );
        let escape = GOOD.replace(
            "kind = \"scorer\"",
            "kind = \"scorer\"\ncomponent = \"../x.wasm\"",
        );
        assert!(Manifest::parse(&escape, Path::new("p"))
            .unwrap_err()
            .to_string()
            .contains("plain file name"));
    }
}
