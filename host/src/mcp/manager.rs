//! [`McpManager`]: the host's client side of MCP. One entry per `[mcp.servers.<name>]`,
//! each with at most one live connection (connected at start and on demand), a tool
//! list cached per connection, a per-call deadline, reconnect with backoff and a
//! circuit breaker.
//!
//! Failure handling, per server:
//! * a call that outlives its deadline is dropped (rmcp then sends
//!   `notifications/cancelled`) and fails with [`McpError::Timeout`];
//! * a connection that dies (the child exits, the HTTP session is gone) fails the calls
//!   in flight with [`McpError::Unavailable`] naming the cause (e.g. the exit signal);
//!   the next call reconnects (respawns) at once, and if that fails too, further
//!   attempts wait a doubling window (`mcp.backoff_*`): at most one attempt per window,
//!   calls inside it fail fast;
//! * `mcp.breaker_failures` consecutive failures (timeouts, lost connections, failed
//!   connects) open the breaker: calls fail with [`McpError::CircuitOpen`] until
//!   `mcp.breaker_cooldown_ms` has passed, then one trial call decides.
//!
//! A tool that reports failure (`isError`) or a JSON-RPC error answer is the server
//! working as intended: neither counts against it.

use super::builtin::BuiltinCrm;
use super::error::McpError;
use super::settings::McpSettings;
pub use super::tools::{ToolInfo, ToolOutput};
use super::upstream::Server;
pub use super::upstream::ServerStatus;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The MCP servers of `[mcp.servers]` and the host's sessions with them. Share it as
/// `Arc<McpManager>`.
pub struct McpManager {
    servers: BTreeMap<String, Arc<Server>>,
}

impl std::fmt::Debug for McpManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpManager")
            .field("servers", &self.servers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl McpManager {
    /// A manager for the servers in `settings` (validated); connects nothing yet. A
    /// `builtin` server cannot connect without [`McpManager::with_builtin`].
    pub fn new(settings: &McpSettings) -> Arc<McpManager> {
        Self::with_builtin(settings, None)
    }

    /// [`McpManager::new`]; servers with `transport = "builtin"` run Strata's own CRM
    /// server in process on `builtin`'s database.
    pub fn with_builtin(settings: &McpSettings, builtin: Option<BuiltinCrm>) -> Arc<McpManager> {
        let servers = settings
            .servers
            .iter()
            .map(|(name, cfg)| {
                (
                    name.clone(),
                    Arc::new(Server::new(name, cfg, settings, builtin.as_ref())),
                )
            })
            .collect();
        Arc::new(McpManager { servers })
    }

    fn server(&self, name: &str) -> Result<&Arc<Server>, McpError> {
        self.servers
            .get(name)
            .ok_or_else(|| McpError::UnknownServer(name.to_string()))
    }

    /// Connects every server, in parallel. Failures are logged and kept in
    /// [`McpManager::status`]; none is fatal (calls connect on demand later).
    pub async fn connect_all(self: &Arc<Self>) {
        let mut set = tokio::task::JoinSet::new();
        for server in self.servers.values() {
            let s = server.clone();
            set.spawn(async move {
                let Ok(permit) = s.admit() else { return };
                match s.connection_fresh().await {
                    Ok((_, true)) => permit.success(None),
                    Ok((_, false)) => drop(permit),
                    Err(_) => permit.failure(None),
                }
            });
        }
        while set.join_next().await.is_some() {}
    }

    /// The tools of `server`: the list cached for the live connection, connecting first
    /// if there is none.
    pub async fn list_tools(&self, server: &str) -> Result<Vec<ToolInfo>, McpError> {
        let s = self.server(server)?;
        if let Some(c) = s.live_connection() {
            return Ok(c.tools().to_vec());
        }
        let permit = s.admit()?;
        match s.connection_fresh().await {
            Ok((c, fresh)) => {
                if fresh {
                    permit.success(None);
                }
                Ok(c.tools().to_vec())
            }
            Err(e) => {
                permit.failure(None);
                Err(e)
            }
        }
    }

    /// The tool list cached for `server`'s live connection, if it has one (no I/O). A
    /// new connection (a reconnect, a respawn) lists the tools again, and so does every
    /// health probe ([`McpManager::check`]).
    pub fn cached_tools(&self, server: &str) -> Option<Arc<Vec<ToolInfo>>> {
        self.servers
            .get(server)?
            .live_connection()
            .map(|c| c.tools())
    }

    /// Calls `tool` on `server` with `args` (a JSON object, or null for none) within the
    /// server's deadline (`timeout_ms`, else `mcp.call_timeout_ms`). Connecting first,
    /// when needed, has its own deadline (`mcp.connect_timeout_ms`).
    pub async fn call_tool(
        &self,
        server: &str,
        tool: &str,
        args: serde_json::Value,
    ) -> Result<ToolOutput, McpError> {
        let s = self.server(server)?;
        s.call(tool, args, s.call_timeout).await
    }

    /// [`McpManager::call_tool`] with a deadline no longer than `limit` (e.g. what is
    /// left of a plugin call's own deadline).
    pub async fn call_tool_within(
        &self,
        server: &str,
        tool: &str,
        args: serde_json::Value,
        limit: Duration,
    ) -> Result<ToolOutput, McpError> {
        let s = self.server(server)?;
        s.call(tool, args, s.call_timeout.min(limit)).await
    }

    /// Health probe of one server: a `tools/list` within `mcp.health_timeout_ms`
    /// (connecting first if needed); refreshes the cached tool list. Returns its latency.
    pub async fn check(&self, server: &str) -> Result<Duration, McpError> {
        self.server(server)?.probe().await
    }

    /// [`McpManager::check`] on every server, in parallel.
    pub async fn check_all(self: &Arc<Self>) -> Vec<(String, Result<Duration, McpError>)> {
        let mut set = tokio::task::JoinSet::new();
        for (name, server) in &self.servers {
            let (name, s) = (name.clone(), server.clone());
            set.spawn(async move { (name, s.probe().await) });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Probes every server every `every` until the manager is dropped or shut down.
    pub fn spawn_health_checks(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(m) = weak.upgrade() else { return };
                if m.servers.values().all(|s| s.closed.load(Ordering::SeqCst)) {
                    return;
                }
                for (name, r) in m.check_all().await {
                    if let Err(e) = r {
                        tracing::debug!(server = %name, "MCP health probe failed: {e}");
                    }
                }
            }
        })
    }

    /// True if `tool` of `server` matches one of its `side_effect_tools` globs (false
    /// for an unknown server: calling it fails anyway).
    pub fn is_side_effecting(&self, server: &str, tool: &str) -> bool {
        self.servers
            .get(server)
            .is_some_and(|s| s.side_effects.iter().any(|p| p.matches(tool)))
    }

    /// The configured server names, sorted.
    pub fn servers(&self) -> Vec<String> {
        self.servers.keys().cloned().collect()
    }

    /// Every server's state, sorted by name.
    pub fn status(&self) -> Vec<ServerStatus> {
        self.servers.values().map(|s| s.status()).collect()
    }

    /// Closes every session and ends every child (a short grace, then a kill). Later
    /// calls fail with [`McpError::Unavailable`].
    pub async fn shutdown(&self) {
        let mut set = tokio::task::JoinSet::new();
        for s in self.servers.values() {
            let s = s.clone();
            set.spawn(async move { s.shutdown().await });
        }
        while set.join_next().await.is_some() {}
    }
}
