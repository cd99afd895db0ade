//! `[mcp]` in config: the MCP servers the host connects to, and how it treats them.
//!
//! ```toml
//! [mcp]
//! call_timeout_ms = 10000
//! [mcp.servers.crm]                 # Strata's own server over stdio
//! transport = "stdio"
//! command = "target/release/strata" # the real program (a kill must reach it), never npx
//! args = ["mcp", "serve", "--transport", "stdio"]
//! env = { STRATA_DATABASE__URL = "sqlite://var/strata.db" }
//! side_effect_tools = ["update_*", "qualify_*"]
//! [mcp.servers.crm_inproc]        # the same server inside the host process
//! transport = "builtin"
//! side_effect_tools = ["update_*", "upsert_*", "qualify_*"]
//! [mcp.servers.everything]
//! transport = "http"
//! url = "http://127.0.0.1:3001/mcp"
//! auth_header_env = "EVERYTHING_TOKEN"
//! timeout_ms = 5000
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `[mcp]` in config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct McpSettings {
    /// Default deadline of one `tools/call` (a server's `timeout_ms` overrides it).
    pub call_timeout_ms: u64,
    /// Deadline of connecting: spawning a child or opening an HTTP session, plus the
    /// `initialize` handshake and the first tool listing.
    pub connect_timeout_ms: u64,
    /// Deadline of a health probe (a `tools/list`).
    pub health_timeout_ms: u64,
    /// How often `strata serve` probes every server (0: never). A probe lists the tools
    /// again, so a pinned tool whose definition changed is refused (and shown in the MCP
    /// status) within this interval, not only after a reconnect.
    pub health_interval_ms: u64,
    /// First wait before reconnecting after a second consecutive failure (the first
    /// reconnect after a lost connection is immediate); doubles per failure.
    pub backoff_initial_ms: u64,
    /// Longest wait between reconnect attempts.
    pub backoff_max_ms: u64,
    /// Consecutive failures (connect, timeout, lost connection) that open a server's
    /// circuit breaker; calls then fail at once until the cool-down has passed.
    pub breaker_failures: u32,
    /// Time an open breaker waits before letting one trial call through (half-open).
    pub breaker_cooldown_ms: u64,
    /// `[mcp.servers.<name>]`.
    pub servers: BTreeMap<String, McpServerSettings>,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            call_timeout_ms: 10_000,
            connect_timeout_ms: 10_000,
            health_timeout_ms: 5_000,
            health_interval_ms: 30_000,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
            servers: BTreeMap::new(),
        }
    }
}

/// How the host reaches an MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum McpTransport {
    /// A child process speaking JSON-RPC on its stdin/stdout.
    Stdio,
    /// Streamable HTTP.
    Http,
    /// Strata's own CRM server ([`crate::crm::mcp`]) inside the host process, over an
    /// in-memory pipe, on the host's database (no child, no second connection pool).
    Builtin,
}

impl McpTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            McpTransport::Stdio => "stdio",
            McpTransport::Http => "http",
            McpTransport::Builtin => "builtin",
        }
    }
}

impl std::fmt::Display for McpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[mcp.servers.<name>]`: one MCP server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpServerSettings {
    pub transport: McpTransport,
    /// stdio: the program to run (a path or a name looked up in the host's `PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// stdio: its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// stdio: its environment. The child gets exactly this plus the host's `PATH` and
    /// `HOME`; nothing else of the host's environment (no secrets leak to it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// stdio: the child's variables taken from the host's environment, child name → host
    /// name (e.g. `{ FRAPPE_API_SECRET = "STRATA_SECRET_FRAPPE" }`): secrets stay out of the
    /// config file. Their values are redacted from logs and never reach a plugin; a host
    /// variable that is unset is a connect error naming it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_from: BTreeMap<String, String>,
    /// stdio: its working directory (default: the host's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// http: the endpoint, e.g. `http://127.0.0.1:3001/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// http: name of the environment variable whose value is sent as the
    /// `Authorization` header (e.g. `Bearer …`). The value is never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_header_env: Option<String>,
    /// Deadline of one `tools/call` on this server (default: `mcp.call_timeout_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Glob patterns of tool names that change something outside (dry runs hold them back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub side_effect_tools: Vec<String>,
}

impl McpServerSettings {
    /// A stdio server running `command args…`.
    pub fn stdio(command: impl Into<String>, args: &[&str]) -> Self {
        Self {
            transport: McpTransport::Stdio,
            command: Some(command.into()),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            env_from: BTreeMap::new(),
            cwd: None,
            url: None,
            auth_header_env: None,
            timeout_ms: None,
            side_effect_tools: Vec::new(),
        }
    }

    /// Strata's own CRM server in the host process.
    pub fn builtin() -> Self {
        Self {
            transport: McpTransport::Builtin,
            command: None,
            ..Self::stdio("", &[])
        }
    }

    /// A streamable HTTP server at `url`.
    pub fn http(url: impl Into<String>) -> Self {
        Self {
            transport: McpTransport::Http,
            command: None,
            url: Some(url.into()),
            ..Self::stdio("", &[])
        }
    }
}

impl McpSettings {
    /// Checks every key; the error names the bad one (`mcp.servers.crm.command: …`).
    pub fn validate(&self) -> Result<(), String> {
        if self.call_timeout_ms == 0 {
            return Err("mcp.call_timeout_ms must be at least 1".into());
        }
        if self.connect_timeout_ms == 0 {
            return Err("mcp.connect_timeout_ms must be at least 1".into());
        }
        if self.health_timeout_ms == 0 {
            return Err("mcp.health_timeout_ms must be at least 1".into());
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(format!(
                "mcp.backoff_max_ms ({}) must not be below mcp.backoff_initial_ms ({})",
                self.backoff_max_ms, self.backoff_initial_ms
            ));
        }
        if self.breaker_failures == 0 {
            return Err("mcp.breaker_failures must be at least 1".into());
        }
        for (name, s) in &self.servers {
            let key = |k: &str| format!("mcp.servers.{name}.{k}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "mcp.servers.{name:?}: a server name may only hold ASCII letters, digits, '-' and '_'"
                ));
            }
            match s.transport {
                McpTransport::Stdio => {
                    if s.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                        return Err(format!(
                            "{}: required for transport \"stdio\"",
                            key("command")
                        ));
                    }
                    for k in [
                        ("url", s.url.is_some()),
                        ("auth_header_env", s.auth_header_env.is_some()),
                    ] {
                        if k.1 {
                            return Err(format!("{}: only for transport \"http\"", key(k.0)));
                        }
                    }
                    for (k, host) in &s.env_from {
                        if k.is_empty() || k.contains('=') || k.contains('\0') {
                            return Err(format!(
                                "{}: invalid variable name {k:?}",
                                key("env_from")
                            ));
                        }
                        if host.is_empty() || host.contains('=') || host.contains('\0') {
                            return Err(format!(
                                "{}: invalid host variable name {host:?}",
                                key(&format!("env_from.{k}"))
                            ));
                        }
                        if s.env.contains_key(k) {
                            return Err(format!(
                                "{}: {k} is set in both `env` and `env_from`",
                                key("env_from")
                            ));
                        }
                    }
                    for k in s.env.keys() {
                        if k.is_empty() || k.contains('=') || k.contains('\0') {
                            return Err(format!("{}: invalid variable name {k:?}", key("env")));
                        }
                    }
                }
                McpTransport::Http => {
                    let url = s.url.as_deref().unwrap_or("");
                    if url.is_empty() {
                        return Err(format!("{}: required for transport \"http\"", key("url")));
                    }
                    let lower = url.to_ascii_lowercase();
                    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                        return Err(format!(
                            "{}: {url:?} is not an http:// or https:// URL",
                            key("url")
                        ));
                    }
                    for k in [
                        ("command", s.command.is_some()),
                        ("args", !s.args.is_empty()),
                        ("env", !s.env.is_empty()),
                        ("cwd", s.cwd.is_some()),
                    ] {
                        if k.1 {
                            return Err(format!("{}: only for transport \"stdio\"", key(k.0)));
                        }
                    }
                    if s.auth_header_env
                        .as_deref()
                        .is_some_and(|v| v.trim().is_empty())
                    {
                        return Err(format!(
                            "{}: must name an environment variable",
                            key("auth_header_env")
                        ));
                    }
                }
                McpTransport::Builtin => {
                    for k in [
                        ("command", s.command.is_some()),
                        ("args", !s.args.is_empty()),
                        ("env", !s.env.is_empty()),
                        ("cwd", s.cwd.is_some()),
                        ("url", s.url.is_some()),
                        ("auth_header_env", s.auth_header_env.is_some()),
                    ] {
                        if k.1 {
                            return Err(format!(
                                "{}: not used by transport \"builtin\" (Strata's own CRM server \
                                 in the host process)",
                                key(k.0)
                            ));
                        }
                    }
                }
            }
            if s.timeout_ms == Some(0) {
                return Err(format!("{}: must be at least 1", key("timeout_ms")));
            }
            for p in &s.side_effect_tools {
                glob::Pattern::new(p)
                    .map_err(|e| format!("{}: bad pattern {p:?}: {e}", key("side_effect_tools")))?;
            }
        }
        Ok(())
    }

    pub(crate) fn call_timeout(&self, server: &McpServerSettings) -> Duration {
        Duration::from_millis(server.timeout_ms.unwrap_or(self.call_timeout_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<McpSettings, String> {
        #[derive(Deserialize)]
        struct Wrap {
            mcp: McpSettings,
        }
        let w: Wrap = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        w.mcp.validate()?;
        Ok(w.mcp)
    }

    #[test]
    fn the_documented_example_parses() {
        let s = parse(
            r#"
            [mcp]
            call_timeout_ms = 10000
            [mcp.servers.crm]
            transport = "stdio"
            command = "target/release/strata"
            args = ["mcp", "serve", "--transport", "stdio"]
            env = { STRATA_DATABASE__URL = "sqlite://var/strata.db" }
            side_effect_tools = ["update_*", "qualify_*"]
            [mcp.servers.crm_inproc]
            transport = "builtin"
            side_effect_tools = ["update_*", "upsert_*", "qualify_*"]
            [mcp.servers.everything]
            transport = "http"
            url = "http://127.0.0.1:3001/mcp"
            auth_header_env = "EVERYTHING_TOKEN"
            timeout_ms = 5000
            "#,
        )
        .unwrap();
        assert_eq!(s.servers.len(), 3);
        assert_eq!(s.servers["crm_inproc"].transport, McpTransport::Builtin);
        assert_eq!(s.servers["crm"].transport, McpTransport::Stdio);
        assert_eq!(
            s.call_timeout(&s.servers["everything"]),
            Duration::from_millis(5000)
        );
        assert_eq!(
            s.call_timeout(&s.servers["crm"]),
            Duration::from_millis(10000)
        );
        assert_eq!(McpSettings::default().validate(), Ok(()));
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[mcp.servers.a]\ntransport = \"stdio\"\n").unwrap_err();
        assert!(e.contains("mcp.servers.a.command"), "{e}");
        let e = parse("[mcp.servers.b]\ntransport = \"http\"\n").unwrap_err();
        assert!(e.contains("mcp.servers.b.url"), "{e}");
        let e = parse("[mcp.servers.c]\ntransport = \"http\"\nurl = \"ftp://x\"\n").unwrap_err();
        assert!(e.contains("mcp.servers.c.url"), "{e}");
        let e =
            parse("[mcp.servers.d]\ntransport = \"http\"\nurl = \"http://x\"\ncommand = \"x\"\n")
                .unwrap_err();
        assert!(e.contains("mcp.servers.d.command"), "{e}");
        let e = parse(
            "[mcp.servers.e]\ntransport = \"stdio\"\ncommand = \"x\"\nside_effect_tools = [\"[\"]\n",
        )
        .unwrap_err();
        assert!(e.contains("mcp.servers.e.side_effect_tools"), "{e}");
        let e = parse("[mcp.servers.f]\ntransport = \"stdio\"\ncommand = \"x\"\nbogus = 1\n")
            .unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = parse("[mcp]\ncall_timeout_ms = 0\n").unwrap_err();
        assert!(e.contains("mcp.call_timeout_ms"), "{e}");
        let e = parse("[mcp.servers.h]\ntransport = \"builtin\"\ncommand = \"x\"\n").unwrap_err();
        assert!(e.contains("mcp.servers.h.command"), "{e}");
        let e = parse("[mcp.servers.g]\ntransport = \"pigeon\"\n").unwrap_err();
        assert!(e.contains("pigeon"), "{e}");
    }
}
