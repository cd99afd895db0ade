//! MCP tool pinning: the definitions (name, description, input schema) of the MCP tools a
//! plugin's grant covers, pinned by hash when the plugin is approved (or an admin pins it).
//! A server that later changes a pinned tool's definition — the MCP "rug pull": a tool
//! whose description silently starts telling the model to do something else — gets its
//! calls from that plugin refused until an admin pins again.
//!
//! * [`tool_sha256`] — the hash of one definition: SHA-256 of the canonical JSON (keys
//!   sorted, no whitespace) of `{description, input_schema, name}`.
//! * [`McpPins`] — pin a plugin's covered tools ([`McpPins::pin_plugin`]), check one call
//!   against its pin ([`McpPins::check`], what the `mcp` capability does before every
//!   `call-tool`), list the pinned tools whose server now offers another definition
//!   ([`McpPins::violations`]). Pins are cached per plugin in memory; a change made
//!   through this service reloads at once, one made by another replica within the cache's
//!   time to live.
//!
//! A plugin without pins is unaffected: nothing is checked.

use super::{McpError, McpManager, ToolInfo};
use crate::capabilities::McpScope;
use crate::db::{Db, DbError, McpToolPin};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long the pins of a plugin are used from memory before they are read again (a
/// change through [`McpPins`] itself takes effect at once; one by another replica, on
/// the same database, within this).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(2);

/// Canonical JSON of `v`: object keys sorted (by their UTF-8 bytes), no whitespace,
/// strings and numbers as `serde_json` writes them.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// What is pinned of a tool: `{name, description, input_schema}` (description null when
/// the server gives none).
pub fn tool_definition(t: &ToolInfo) -> Value {
    serde_json::json!({
        "name": t.name,
        "description": t.description,
        "input_schema": t.input_schema,
    })
}

/// Hex SHA-256 of the canonical JSON of [`tool_definition`].
pub fn tool_sha256(t: &ToolInfo) -> String {
    hex::encode(Sha256::digest(
        canonical_json(&tool_definition(t)).as_bytes(),
    ))
}

/// A pinned tool whose server now offers another definition (or no longer offers it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PinViolation {
    pub plugin: String,
    pub server: String,
    pub tool: String,
    pub pinned_sha256: String,
    /// The hash of the definition the server offers now; null: it no longer lists the tool.
    pub current_sha256: Option<String>,
}

impl PinViolation {
    /// What the refused call is told (and the audit records): starts with "tool
    /// definition changed since it was pinned".
    pub fn message(&self) -> String {
        let current = match &self.current_sha256 {
            Some(c) => format!("it now offers sha256 {c}"),
            None => "it no longer offers the tool".to_string(),
        };
        format!(
            "tool definition changed since it was pinned: MCP tool {server}/{tool} was pinned \
             for plugin {plugin} at sha256 {pinned}, {current}; calls are refused until an \
             admin reviews the new definition (GET /api/v1/mcp/servers/{server}/tools) and \
             pins it again (POST /api/v1/plugins/{plugin}/mcp-pins, or re-approves the version)",
            server = self.server,
            tool = self.tool,
            plugin = self.plugin,
            pinned = self.pinned_sha256,
        )
    }
}

/// Why pinning failed.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// A server the grant covers could not list its tools now: nothing was pinned.
    #[error("cannot pin the MCP tools of plugin {plugin}: server {server} cannot list its tools: {source}")]
    Server {
        plugin: String,
        server: String,
        #[source]
        source: McpError,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a call could not be checked against its pin.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read the MCP tool pins of plugin {plugin}: {source}")]
    Db {
        plugin: String,
        #[source]
        source: DbError,
    },
    #[error(transparent)]
    Mcp(#[from] McpError),
}

/// `(server, tool)` → pinned sha256, of one plugin.
pub type PinMap = HashMap<(String, String), String>;

struct Cached {
    loaded: Instant,
    pins: Arc<PinMap>,
}

/// The pins of every plugin, on the host's database, cached per plugin. Share it as
/// `Arc<McpPins>`.
pub struct McpPins {
    db: Db,
    ttl: Duration,
    cache: RwLock<HashMap<String, Cached>>,
}

impl std::fmt::Debug for McpPins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpPins").field("ttl", &self.ttl).finish()
    }
}

impl McpPins {
    /// Pins on `db`, cached for [`DEFAULT_CACHE_TTL`].
    pub fn new(db: Db) -> Arc<McpPins> {
        Self::with_ttl(db, DEFAULT_CACHE_TTL)
    }

    /// Pins on `db`, each plugin's read again after `ttl`.
    pub fn with_ttl(db: Db, ttl: Duration) -> Arc<McpPins> {
        Arc::new(McpPins {
            db,
            ttl,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// Drops the cached pins of `plugin` (every plugin: `None`): the next check reads
    /// them again. For callers that change `mcp_tool_pins` other than through this
    /// service (e.g. a release state followed from another replica).
    pub fn forget(&self, plugin: Option<&str>) {
        let mut c = self.cache.write().unwrap_or_else(|e| e.into_inner());
        match plugin {
            Some(p) => {
                c.remove(p);
            }
            None => c.clear(),
        }
    }

    /// The pins of `plugin`: from memory while fresh, else read (a failed read keeps
    /// using what was cached, if anything).
    pub async fn pins_of(&self, plugin: &str) -> Result<Arc<PinMap>, DbError> {
        let stale = {
            let c = self.cache.read().unwrap_or_else(|e| e.into_inner());
            match c.get(plugin) {
                Some(x) if x.loaded.elapsed() < self.ttl => return Ok(x.pins.clone()),
                Some(x) => Some(x.pins.clone()),
                None => None,
            }
        };
        match self.db.list_mcp_tool_pins(Some(plugin)).await {
            Ok(rows) => {
                let pins: Arc<PinMap> = Arc::new(
                    rows.into_iter()
                        .map(|p| ((p.server, p.tool), p.sha256))
                        .collect(),
                );
                self.cache
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        plugin.to_string(),
                        Cached {
                            loaded: Instant::now(),
                            pins: pins.clone(),
                        },
                    );
                Ok(pins)
            }
            Err(e) => match stale {
                Some(p) => {
                    tracing::warn!(plugin, error = %e, "cannot read the MCP tool pins again; using the cached ones");
                    Ok(p)
                }
                None => Err(e),
            },
        }
    }

    /// Pins the tools of `plugin` that `scope` covers, as their servers define them now:
    /// every configured server `scope` reaches is probed (its tool list refreshed) and
    /// each tool `scope` allows is hashed; the plugin's pins are replaced by these in one
    /// transaction. `by_key_id`: the API key that asked (recorded with each pin). A
    /// covered server that cannot list its tools fails the whole pinning (the old pins
    /// stay). Returns the new pins.
    pub async fn pin_plugin(
        &self,
        plugin: &str,
        scope: &McpScope,
        mgr: &McpManager,
        by_key_id: Option<&str>,
    ) -> Result<Vec<McpToolPin>, PinError> {
        let now = crate::domain::now_ms();
        let mut pins = Vec::new();
        for server in mgr.servers() {
            if !scope.allows_server(&server) {
                continue;
            }
            let failed = |source| PinError::Server {
                plugin: plugin.to_string(),
                server: server.clone(),
                source,
            };
            // The definitions as they are now, not as a connection listed them earlier.
            mgr.check(&server).await.map_err(failed)?;
            let tools = mgr.list_tools(&server).await.map_err(failed)?;
            for t in tools.iter().filter(|t| scope.allows(&server, &t.name)) {
                pins.push(McpToolPin {
                    plugin: plugin.to_string(),
                    server: server.clone(),
                    tool: t.name.clone(),
                    sha256: tool_sha256(t),
                    definition: tool_definition(t),
                    pinned_by: by_key_id.map(str::to_string),
                    pinned_at: now,
                });
            }
        }
        pins.sort_by(|a, b| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)));
        self.db.replace_mcp_tool_pins(plugin, &pins).await?;
        self.forget(Some(plugin));
        tracing::info!(
            plugin,
            tools = pins.len(),
            by = by_key_id,
            "MCP tools pinned"
        );
        Ok(pins)
    }

    /// Removes every pin of `plugin`; returns how many there were.
    pub async fn unpin_plugin(&self, plugin: &str) -> Result<u64, DbError> {
        let n = self.db.delete_mcp_tool_pins(plugin, None).await?;
        self.forget(Some(plugin));
        Ok(n)
    }

    /// The stored pins of `plugin`, or of every plugin.
    pub async fn list(&self, plugin: Option<&str>) -> Result<Vec<McpToolPin>, DbError> {
        self.db.list_mcp_tool_pins(plugin).await
    }

    /// Checks a call of `server`/`tool` by `plugin` against its pin: `Ok(None)` when the
    /// tool is not pinned for the plugin or its current definition (the tool list cached
    /// for the server's live connection; connecting first if there is none) hashes to the
    /// pin, `Ok(Some(violation))` when it does not.
    pub async fn check(
        &self,
        plugin: &str,
        server: &str,
        tool: &str,
        mgr: &McpManager,
    ) -> Result<Option<PinViolation>, CheckError> {
        let pins = self
            .pins_of(plugin)
            .await
            .map_err(|source| CheckError::Db {
                plugin: plugin.to_string(),
                source,
            })?;
        let Some(pinned) = pins.get(&(server.to_string(), tool.to_string())) else {
            return Ok(None);
        };
        let tools = match mgr.cached_tools(server) {
            Some(t) => t,
            None => Arc::new(mgr.list_tools(server).await?),
        };
        let current = tools.iter().find(|t| t.name == tool).map(tool_sha256);
        if current.as_ref() == Some(pinned) {
            return Ok(None);
        }
        Ok(Some(PinViolation {
            plugin: plugin.to_string(),
            server: server.to_string(),
            tool: tool.to_string(),
            pinned_sha256: pinned.clone(),
            current_sha256: current,
        }))
    }

    /// Every pinned tool whose server's current tool list (as cached for its live
    /// connection: no I/O to the servers; a server without one is skipped) differs from
    /// the pin, sorted by server, plugin, tool.
    pub async fn violations(&self, mgr: &McpManager) -> Result<Vec<PinViolation>, DbError> {
        let pins = self.db.list_mcp_tool_pins(None).await?;
        let mut lists: HashMap<String, Option<Arc<Vec<ToolInfo>>>> = HashMap::new();
        let mut out = Vec::new();
        for p in pins {
            let tools = lists
                .entry(p.server.clone())
                .or_insert_with(|| mgr.cached_tools(&p.server));
            let Some(tools) = tools else { continue };
            let current = tools.iter().find(|t| t.name == p.tool).map(tool_sha256);
            if current.as_ref() != Some(&p.sha256) {
                out.push(PinViolation {
                    plugin: p.plugin,
                    server: p.server,
                    tool: p.tool,
                    pinned_sha256: p.sha256,
                    current_sha256: current,
                });
            }
        }
        out.sort_by(|a, b| (&a.server, &a.plugin, &a.tool).cmp(&(&b.server, &b.plugin, &b.tool)));
        Ok(out)
    }
}
