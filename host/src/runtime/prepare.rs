//! Turning a manifest and component bytes into a `LoadedPlugin`: hash, compile (cached),
//! classify every import (deny by default), check the world, link only what is granted,
//! pre-instantiate. Blocking: run it on a blocking thread.

use super::plugin::{ImportInfo, WorldPre};
use super::{Limits, LoadError, LoadedPlugin, Runtime};
use crate::capabilities::{self, grants, Capability, Grant, PluginIdentity};
use crate::manifest::{Manifest, PluginKind};
use crate::wit::{self, since_v0_1_0, InterfaceName};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

/// WASI packages a plugin may import; all are linked with a context that grants nothing.
const WASI_ALLOWED: &[&str] = &["cli", "io", "clocks", "random", "filesystem", "sockets"];

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Runtime {
    /// Prepares a plugin version. `grant` is the operator's entry for this plugin name.
    pub fn prepare(
        &self,
        manifest: Manifest,
        wasm: &[u8],
        grant: Option<&Grant>,
        source: Option<PathBuf>,
    ) -> Result<LoadedPlugin, LoadError> {
        let plugin = manifest.id();
        let sha256 = sha256_hex(wasm);
        let (component, cache_outcome, compile_ms) =
            self.cache()
                .load(wasm, &sha256)
                .map_err(|e| LoadError::Compile {
                    plugin: plugin.clone(),
                    message: compile_error(wasm, &e),
                })?;

        let ty = component.component_type();
        let engine = self.engine();
        let mut imports = Vec::new();
        let mut contract_version: Option<String> = None;
        for (name, _) in ty.imports(engine) {
            let class = classify_import(&manifest, grant, name, &mut contract_version)?;
            imports.push(ImportInfo {
                name: name.to_string(),
                class,
            });
        }
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let kind = manifest.plugin.kind;
        if !exports.iter().any(|e| e == kind.required_export()) {
            return Err(LoadError::WrongWorld {
                plugin,
                kind: kind.to_string(),
                export: kind.required_export().into(),
                found: if exports.is_empty() {
                    "none".into()
                } else {
                    exports.join(", ")
                },
            });
        }

        let grants = Arc::new(grants::effective(&manifest, grant));
        let link_err = |e: wasmtime::Error| LoadError::Link {
            plugin: plugin.clone(),
            message: format!("{e:#}"),
        };
        let linker = capabilities::linker_for(engine, &grants).map_err(link_err)?;
        let pre = linker.instantiate_pre(&component).map_err(link_err)?;
        let pre = match kind {
            PluginKind::Scorer => {
                WorldPre::Scorer(since_v0_1_0::scorer::ScorerPre::new(pre).map_err(link_err)?)
            }
            PluginKind::Layer => {
                WorldPre::Layer(since_v0_1_0::layer::LayerPre::new(pre).map_err(link_err)?)
            }
            PluginKind::Agent => {
                WorldPre::Agent(since_v0_1_0::agent::AgentPre::new(pre).map_err(link_err)?)
            }
        };
        let operator_limits = grant.map(|g| g.limits).unwrap_or_default();
        let (limits, clamped) =
            Limits::effective(&manifest.limits, &operator_limits, self.settings());
        for c in &clamped {
            tracing::warn!(plugin = %plugin, limit = c.limit, asked = c.asked, granted = c.granted,
                "{}", c.warning(&plugin, &manifest.plugin.name));
        }
        if manifest.limits.fuel.is_some() && !self.settings().fuel_metering {
            tracing::warn!(plugin = %plugin, "manifest asks for a fuel budget but runtime.fuel_metering is off; \
                only the deadline bounds this plugin");
        }
        let lane = super::CallLane::new(&imports, limits.deadline_ms);
        let asked_reuse = grant.map_or(0, |g| g.reuse_calls);
        let reuse_calls = if kind == PluginKind::Scorer && lane.is_pure() {
            asked_reuse
        } else {
            if asked_reuse > 0 {
                tracing::warn!(plugin = %plugin, "grant asks for reuse_calls but only pure scorers (no capability \
                    but log) may reuse an instance; this version gets a fresh instance per call");
            }
            0
        };
        Ok(LoadedPlugin {
            identity: Arc::new(PluginIdentity::new(
                &manifest.plugin.name,
                &manifest.plugin.version,
            )),
            sha256,
            size: wasm.len(),
            source,
            contract_version: contract_version.unwrap_or_else(|| since_v0_1_0::VERSION.to_string()),
            exports,
            grants,
            limits,
            cache_outcome,
            compile_ms,
            loaded_at: crate::domain::now_ms(),
            lane,
            reuse_calls,
            alive: Arc::new(()),
            imports,
            pre,
            engine: engine.clone(),
            services: self.services().clone(),
            fuel_metering: self.settings().fuel_metering,
            audit_max_records: self.settings().audit_max_records_per_call,
            manifest,
        })
    }
}

/// Appends a custom section so the bytes (and hash) differ but the component is the same.
pub fn with_custom_section(wasm: &[u8], tag: &str) -> Vec<u8> {
    append_custom_section(wasm, tag, b"bench")
}

/// `wasm` with a custom section `name` holding `payload` appended: the same component,
/// other bytes (and a larger file, for `payload` of any size).
pub fn append_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let leb = |mut n: usize, out: &mut Vec<u8>| loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        out.push(if n == 0 { b } else { b | 0x80 });
        if n == 0 {
            break;
        }
    };
    let mut section = Vec::with_capacity(name.len() + payload.len() + 5);
    leb(name.len(), &mut section);
    section.extend_from_slice(name.as_bytes());
    section.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0);
    leb(section.len(), &mut out);
    out.extend_from_slice(&section);
    out
}

/// Why bytes did not compile, as one line that never quotes them: a file that is not
/// WebAssembly or is a core module is named as such; otherwise the compiler's message.
pub(crate) fn compile_error(wasm: &[u8], e: &dyn std::fmt::Display) -> String {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE: &[u8] = &[1, 0, 0, 0];
    if !wasm.starts_with(MAGIC) {
        return format!(
            "not a WebAssembly file ({} bytes without the \\0asm header)",
            wasm.len()
        );
    }
    if wasm.get(4..8) == Some(CORE_MODULE) {
        return "a core WebAssembly module, not a component (build for wasm32-wasip2, or wrap it with `wasm-tools component new`)".into();
    }
    let text = format!("{e:#}");
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((i, _)) = line.char_indices().nth(300) {
        line.truncate(i);
        line.push('…');
    }
    line
}

/// Deny by default: an import is allowed only if it is WASI from the allowed packages
/// (linked deny-all) or a `strata:plugin` capability that is declared and granted.
fn classify_import(
    manifest: &Manifest,
    grant: Option<&Grant>,
    name: &str,
    contract: &mut Option<String>,
) -> Result<String, LoadError> {
    let plugin = manifest.id();
    let forbidden = |why: &str| LoadError::ForbiddenImport {
        plugin: plugin.clone(),
        import: name.into(),
        why: why.into(),
    };
    let Some(iface) = InterfaceName::parse(name) else {
        return Err(forbidden(
            "plugins may only import interfaces of strata:plugin and WASI",
        ));
    };
    if iface.namespace == "wasi" {
        return if WASI_ALLOWED.contains(&iface.package) {
            Ok("wasi".into())
        } else {
            Err(forbidden("this WASI package is not available to plugins"))
        };
    }
    if !iface.is_strata() {
        return Err(forbidden(
            "unknown package; plugins reach the outside only through strata:plugin capabilities",
        ));
    }
    let version = iface.version.unwrap_or("");
    if !wit::SUPPORTED_VERSIONS.contains(&version) {
        return Err(LoadError::UnsupportedContract {
            plugin,
            version: version.into(),
            supported: wit::SUPPORTED_VERSIONS.join(", "),
        });
    }
    match contract {
        Some(v) if v != version => {
            return Err(forbidden("mixes two contract versions in one component"));
        }
        _ => *contract = Some(version.to_string()),
    }
    if iface.interface == "types" {
        return Ok("types".into());
    }
    let Some(cap) = Capability::from_interface(iface.interface) else {
        return Err(forbidden("no such capability in this contract version"));
    };
    grants::check_import(manifest, grant, cap, name)?;
    Ok(format!("capability:{cap}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::Grant;

    fn manifest(caps: &str) -> Manifest {
        let text = format!("[plugin]\nname = \"p\"\nversion = \"1.0.0\"\nkind = \"scorer\"\n[capabilities]\n{caps}\n");
        Manifest::parse(&text, std::path::Path::new("plugin.toml")).unwrap()
    }

    fn classify(m: &Manifest, g: Option<&Grant>, name: &str) -> Result<String, LoadError> {
        classify_import(m, g, name, &mut None)
    }

    #[test]
    fn compile_errors_name_the_kind_of_file_without_quoting_it() {
        let e = anyhow::anyhow!(
            "magic header not detected: bad magic number - expected=[\n0x0] actual=[0x72]"
        );
        let m = compile_error(b"root:x:0:0:root:/root:/bin/bash\n", &e);
        assert!(m.starts_with("not a WebAssembly file"), "{m}");
        assert!(!m.contains("root"), "{m}");
        let m = compile_error(b"\0asm\x01\0\0\0rest", &e);
        assert!(m.contains("core WebAssembly module"), "{m}");
        let m = compile_error(b"\0asm\x0d\0\x01\0", &e);
        assert!(!m.contains('\n'), "{m}");
    }

    #[test]
    fn wasi_is_allowed_but_not_http_or_unknown_packages() {
        let m = manifest("");
        assert_eq!(classify(&m, None, "wasi:cli/stdout@0.2.6").unwrap(), "wasi");
        let e = classify(&m, None, "wasi:http/outgoing-handler@0.2.6").unwrap_err();
        assert!(matches!(e, LoadError::ForbiddenImport { .. }), "{e}");
        let e = classify(&m, None, "evil:net/socket")
            .unwrap_err()
            .to_string();
        assert!(e.contains("evil:net/socket"), "{e}");
        assert!(classify(&m, None, "bare-function").is_err());
    }

    #[test]
    fn capabilities_need_declaration_and_grant_and_a_supported_contract() {
        let m = manifest("state = {}");
        let grant = Grant {
            capabilities: vec![Capability::State],
            ..Default::default()
        };
        assert_eq!(
            classify(&m, None, "strata:plugin/log@0.1.0").unwrap(),
            "capability:log"
        );
        assert_eq!(
            classify(&m, None, "strata:plugin/types@0.1.0").unwrap(),
            "types"
        );
        assert!(matches!(
            classify(&m, None, "strata:plugin/state@0.1.0").unwrap_err(),
            LoadError::Grant(crate::capabilities::GrantError::NotGranted { .. })
        ));
        assert_eq!(
            classify(&m, Some(&grant), "strata:plugin/state@0.1.0").unwrap(),
            "capability:state"
        );
        assert!(matches!(
            classify(&m, Some(&grant), "strata:plugin/crm@0.1.0").unwrap_err(),
            LoadError::Grant(crate::capabilities::GrantError::NotDeclared { .. })
        ));
        let e = classify(&m, None, "strata:plugin/log@9.0.0").unwrap_err();
        assert!(matches!(e, LoadError::UnsupportedContract { .. }), "{e}");
        assert!(e.to_string().contains("supports 0.1.0"), "{e}");
        assert!(classify(&m, None, "strata:plugin/teleport@0.1.0").is_err());
        // One component cannot mix contract versions.
        let mut seen = Some("0.1.0".to_string());
        assert!(classify_import(&m, None, "strata:plugin/log@0.1.0", &mut seen).is_ok());
    }
}
