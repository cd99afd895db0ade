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

use super::breaker::{Admission, Backoff, Breaker, BreakerState};
use super::builtin::BuiltinCrm;
use super::connect::{self, ConnFlags, Connection};
use super::error::McpError;
use super::server::StrataMcpServer;
use super::settings::{McpServerSettings, McpSettings, McpTransport};
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, ResourceContents};
use rmcp::ServiceError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// A tool a server offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolInfo {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    #[schema(value_type = Object)]
    pub input_schema: serde_json::Value,
}

impl ToolInfo {
    pub(crate) fn from_rmcp(t: &rmcp::model::Tool) -> Self {
        ToolInfo {
            name: t.name.to_string(),
            description: t.description.as_ref().map(|d| d.to_string()),
            input_schema: serde_json::Value::Object((*t.input_schema).clone()),
        }
    }
}

/// What a tool call returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolOutput {
    /// The tool reported failure (`isError`); `text` says why.
    pub is_error: bool,
    /// The text contents joined with newlines; other contents appear as a bracketed
    /// placeholder (`[image image/png]`, `[resource file:///…]`).
    pub text: String,
    /// `structuredContent`, when the tool returned one.
    pub structured: Option<serde_json::Value>,
}

impl ToolOutput {
    pub(crate) fn from_rmcp(r: CallToolResult) -> Self {
        let parts: Vec<String> = r
            .content
            .iter()
            .map(|c| match c {
                ContentBlock::Text(t) => t.text.clone(),
                ContentBlock::Image(i) => format!("[image {}]", i.mime_type),
                ContentBlock::Audio(a) => format!("[audio {}]", a.mime_type),
                ContentBlock::Resource(e) => match &e.resource {
                    ResourceContents::TextResourceContents { text, .. } => text.clone(),
                    ResourceContents::BlobResourceContents { uri, .. } => {
                        format!("[resource {uri}]")
                    }
                    _ => "[resource]".to_string(),
                },
                ContentBlock::ResourceLink(l) => format!("[resource {}]", l.uri),
                _ => "[content]".to_string(),
            })
            .collect();
        ToolOutput {
            is_error: r.is_error.unwrap_or(false),
            text: parts.join("\n"),
            structured: r.structured_content,
        }
    }
}

/// One server as [`McpManager::status`] reports it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ServerStatus {
    pub name: String,
    /// `stdio`, `http` or `builtin`.
    pub transport: String,
    /// A session is open (for stdio: the child is running).
    pub connected: bool,
    /// The most recent failure (kept after recovery, for diagnosis).
    pub last_error: Option<String>,
    /// Duration of the last successful call or health probe.
    pub last_latency_ms: Option<u64>,
    /// Tools listed by the current (or last) connection.
    pub tool_count: Option<usize>,
    /// Connections opened after the first one (reconnects, respawns).
    pub restarts: u64,
    pub breaker: BreakerState,
    pub consecutive_failures: u32,
    /// stdio: the child's process id while it runs.
    pub pid: Option<u32>,
}

struct State {
    breaker: Breaker,
    backoff: Backoff,
    connected: bool,
    last_error: Option<String>,
    last_latency_ms: Option<u64>,
    tool_count: Option<usize>,
    connects: u64,
    pid: Option<u32>,
}

struct Server {
    name: String,
    cfg: McpServerSettings,
    call_timeout: Duration,
    connect_timeout: Duration,
    health_timeout: Duration,
    side_effects: Vec<glob::Pattern>,
    /// The live connection; held while connecting, so one attempt runs at a time.
    slot: tokio::sync::Mutex<Option<Arc<Connection>>>,
    state: Mutex<State>,
    next_generation: AtomicU64,
    /// Generation of the installed connection (0: none).
    live_generation: AtomicU64,
    closed: AtomicBool,
    /// `transport = "builtin"`: the host's database for Strata's own server.
    builtin: Option<BuiltinCrm>,
    /// `transport = "builtin"`: Strata's own server, whose tools calls run in process
    /// without JSON-RPC (the session serves tool listing and health probes).
    in_process: Option<StrataMcpServer>,
}

/// A call let through the breaker; report its outcome (dropping it unreported frees a
/// half-open trial slot).
struct Permit<'a> {
    server: &'a Server,
    trial: bool,
    done: bool,
}

impl Permit<'_> {
    /// The server answered. `latency`: of a call or probe (which also ends a reconnect
    /// streak); `None` for a bare connect.
    fn success(mut self, latency: Option<Duration>) {
        self.done = true;
        let mut st = self.server.state();
        st.breaker.success();
        if let Some(l) = latency {
            st.last_latency_ms = Some(l.as_millis() as u64);
            st.backoff.succeeded();
        }
    }

    /// The server failed; `reason` replaces `last_error` when given.
    fn failure(mut self, reason: Option<&str>) {
        self.done = true;
        let mut st = self.server.state();
        let was = st.breaker.state(Instant::now());
        st.breaker.failure(Instant::now());
        if let Some(r) = reason {
            st.last_error = Some(r.to_string());
        }
        if was != BreakerState::Open && st.breaker.state(Instant::now()) == BreakerState::Open {
            tracing::warn!(
                server = %self.server.name,
                failures = st.breaker.failures(),
                "MCP server circuit breaker opened"
            );
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done && self.trial {
            self.server.state().breaker.release_trial();
        }
    }
}

impl Server {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unavailable(&self, reason: impl Into<String>) -> McpError {
        McpError::Unavailable {
            server: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn admit(&self) -> Result<Permit<'_>, McpError> {
        match self.state().breaker.admit(Instant::now()) {
            Some(a) => Ok(Permit {
                server: self,
                trial: a == Admission::Trial,
                done: false,
            }),
            None => Err(McpError::CircuitOpen {
                server: self.name.clone(),
            }),
        }
    }

    /// The live connection if there is one and nobody is connecting right now.
    fn live_connection(&self) -> Option<Arc<Connection>> {
        let slot = self.slot.try_lock().ok()?;
        slot.as_ref().filter(|c| c.is_alive()).cloned()
    }

    /// Records once that `conn` died (if it is still the installed one).
    fn record_lost(&self, conn: &Connection, reason: &str) {
        self.record_lost_flags(conn.generation, &conn.flags, reason);
    }

    fn record_lost_flags(&self, generation: u64, flags: &ConnFlags, reason: &str) {
        if flags.retired.load(Ordering::SeqCst)
            || self.live_generation.load(Ordering::SeqCst) != generation
            || flags.lost.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let mut st = self.state();
        st.connected = false;
        st.pid = None;
        st.last_error = Some(format!("connection lost: {reason}"));
        st.backoff.failed();
    }

    /// The live connection, connecting (spawning) first if there is none.
    async fn connection(self: &Arc<Self>) -> Result<Arc<Connection>, McpError> {
        self.connection_fresh().await.map(|(c, _)| c)
    }

    /// [`Server::connection`], and whether it was opened just now.
    async fn connection_fresh(self: &Arc<Self>) -> Result<(Arc<Connection>, bool), McpError> {
        let mut slot = self.slot.lock().await;
        if self.closed.load(Ordering::SeqCst) {
            return Err(self.unavailable("the MCP client manager has shut down"));
        }
        if let Some(c) = slot.as_ref() {
            if c.is_alive() {
                return Ok((c.clone(), false));
            }
            let c = slot.take().expect("checked above");
            let reason = c.lost_reason("the session was closed").await;
            self.record_lost(&c, &reason);
            self.live_generation.store(0, Ordering::SeqCst);
            tokio::spawn(async move { c.close(Duration::ZERO).await });
        }
        let now = Instant::now();
        {
            let mut st = self.state();
            if let Err(wait) = st.backoff.ready(now) {
                return Err(self.unavailable(format!(
                    "reconnecting is backing off for {} ms more; last error: {}",
                    wait.as_millis().max(1),
                    st.last_error.as_deref().unwrap_or("none")
                )));
            }
            st.backoff.attempt(now);
        }
        let generation = self.next_generation.fetch_add(1, Ordering::SeqCst) + 1;
        let weak: Weak<Server> = Arc::downgrade(self);
        let on_exit = move |flags: &ConnFlags, desc: String| {
            if let Some(s) = weak.upgrade() {
                s.record_lost_flags(generation, flags, &desc);
            }
        };
        let attempt = connect::connect(
            &self.name,
            &self.cfg,
            generation,
            self.builtin.as_ref(),
            on_exit,
        );
        let result = match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "connecting took longer than {} ms",
                self.connect_timeout.as_millis()
            )),
        };
        match result {
            Ok(conn) => {
                if self.closed.load(Ordering::SeqCst) {
                    conn.close(Duration::ZERO).await;
                    return Err(self.unavailable("the MCP client manager has shut down"));
                }
                self.live_generation.store(generation, Ordering::SeqCst);
                let mut st = self.state();
                st.connected = true;
                st.connects += 1;
                st.tool_count = Some(conn.tools().len());
                st.pid = conn.pid;
                tracing::info!(
                    server = %self.name,
                    transport = %self.cfg.transport,
                    tools = conn.tools().len(),
                    restarts = st.connects - 1,
                    "MCP server connected"
                );
                drop(st);
                *slot = Some(conn.clone());
                Ok((conn, true))
            }
            Err(reason) => {
                let mut st = self.state();
                st.connected = false;
                st.pid = None;
                st.last_error = Some(format!("connect failed: {reason}"));
                st.backoff.failed();
                tracing::warn!(server = %self.name, "cannot connect to MCP server: {reason}");
                Err(self.unavailable(reason))
            }
        }
    }

    /// Maps a failed request on `conn`; `what` names it (`tools/call "echo"`).
    async fn request_failed(
        &self,
        permit: Permit<'_>,
        conn: &Connection,
        tool: &str,
        what: &str,
        started: Instant,
        e: ServiceError,
    ) -> McpError {
        match e {
            ServiceError::McpError(data) => {
                // The server answered, with a refusal.
                permit.success(Some(started.elapsed()));
                McpError::ToolError {
                    server: self.name.clone(),
                    tool: tool.to_string(),
                    message: format!("{} (JSON-RPC error {})", data.message, data.code.0),
                }
            }
            ServiceError::TransportClosed
            | ServiceError::TransportSend(_)
            | ServiceError::Cancelled { .. } => {
                let reason = conn.lost_reason(&connect::describe_error(&e)).await;
                self.record_lost(conn, &reason);
                permit.failure(None);
                self.unavailable(format!(
                    "connection lost during {what}: {reason} (the next call reconnects)"
                ))
            }
            other => {
                let message = format!("{what}: {}", connect::describe_error(&other));
                permit.failure(Some(&message));
                McpError::Protocol {
                    server: self.name.clone(),
                    message,
                }
            }
        }
    }

    async fn call(
        self: &Arc<Self>,
        tool: &str,
        args: serde_json::Value,
        timeout: Duration,
    ) -> Result<ToolOutput, McpError> {
        let args = match args {
            serde_json::Value::Object(m) => Some(m),
            serde_json::Value::Null => None,
            other => {
                return Err(McpError::ToolError {
                    server: self.name.clone(),
                    tool: tool.to_string(),
                    message: format!("arguments must be a JSON object, not {}", json_kind(&other)),
                })
            }
        };
        let permit = self.admit()?;
        let what = format!("tools/call {tool:?}");
        let started = Instant::now();
        if let Some(server) = &self.in_process {
            let call = server.call_in_process(tool, args.unwrap_or_default());
            return match tokio::time::timeout(timeout, call).await {
                Ok(Some(result)) => {
                    permit.success(Some(started.elapsed()));
                    Ok(ToolOutput::from_rmcp(result))
                }
                Ok(None) => {
                    permit.success(Some(started.elapsed()));
                    Err(McpError::ToolError {
                        server: self.name.clone(),
                        tool: tool.to_string(),
                        message: format!("no tool {tool:?} on this server"),
                    })
                }
                Err(_) => Err(self.timed_out(permit, tool, &what, timeout)),
            };
        }
        let conn = match self.connection().await {
            Ok(c) => c,
            Err(e) => {
                permit.failure(None);
                return Err(e);
            }
        };
        let mut params = CallToolRequestParams::new(tool.to_string());
        if let Some(a) = args {
            params = params.with_arguments(a);
        }
        match tokio::time::timeout(timeout, conn.client.call_tool(params)).await {
            Ok(Ok(result)) => {
                permit.success(Some(started.elapsed()));
                Ok(ToolOutput::from_rmcp(result))
            }
            Ok(Err(e)) => Err(self
                .request_failed(permit, &conn, tool, &what, started, e)
                .await),
            Err(_) => Err(self.timed_out(permit, tool, &what, timeout)),
        }
    }

    /// A request that outlived its deadline: a failure for the breaker.
    fn timed_out(&self, permit: Permit<'_>, tool: &str, what: &str, timeout: Duration) -> McpError {
        let ms = timeout.as_millis() as u64;
        permit.failure(Some(&format!("{what} timed out after {ms} ms")));
        McpError::Timeout {
            server: self.name.clone(),
            tool: tool.to_string(),
            ms,
        }
    }

    async fn probe(self: &Arc<Self>) -> Result<Duration, McpError> {
        let permit = self.admit()?;
        let conn = match self.connection().await {
            Ok(c) => c,
            Err(e) => {
                permit.failure(None);
                return Err(e);
            }
        };
        let started = Instant::now();
        let what = "health probe (tools/list)";
        match tokio::time::timeout(self.health_timeout, conn.client.peer().list_all_tools()).await {
            Ok(Ok(tools)) => {
                let took = started.elapsed();
                conn.set_tools(tools.iter().map(ToolInfo::from_rmcp).collect());
                self.state().tool_count = Some(tools.len());
                permit.success(Some(took));
                Ok(took)
            }
            Ok(Err(e)) => Err(self
                .request_failed(permit, &conn, "tools/list", what, started, e)
                .await),
            Err(_) => Err(self.timed_out(permit, "tools/list", what, self.health_timeout)),
        }
    }

    fn status(&self) -> ServerStatus {
        let st = self.state();
        ServerStatus {
            name: self.name.clone(),
            transport: self.cfg.transport.as_str().to_string(),
            connected: st.connected,
            last_error: st.last_error.clone(),
            last_latency_ms: st.last_latency_ms,
            tool_count: st.tool_count,
            restarts: st.connects.saturating_sub(1),
            breaker: st.breaker.state(Instant::now()),
            consecutive_failures: st.breaker.failures(),
            pid: st.pid,
        }
    }

    async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let conn = self.slot.lock().await.take();
        self.live_generation.store(0, Ordering::SeqCst);
        if let Some(c) = conn {
            c.close(Duration::from_millis(500)).await;
        }
        let mut st = self.state();
        st.connected = false;
        st.pid = None;
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

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
                let side_effects = cfg
                    .side_effect_tools
                    .iter()
                    .filter_map(|p| match glob::Pattern::new(p) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            tracing::warn!(server = %name, pattern = %p, "ignoring bad side_effect_tools pattern: {e}");
                            None
                        }
                    })
                    .collect();
                let server = Server {
                    name: name.clone(),
                    cfg: cfg.clone(),
                    call_timeout: settings.call_timeout(cfg),
                    connect_timeout: Duration::from_millis(settings.connect_timeout_ms.max(1)),
                    health_timeout: Duration::from_millis(settings.health_timeout_ms.max(1)),
                    side_effects,
                    slot: tokio::sync::Mutex::new(None),
                    state: Mutex::new(State {
                        breaker: Breaker::new(
                            settings.breaker_failures,
                            Duration::from_millis(settings.breaker_cooldown_ms),
                        ),
                        backoff: Backoff::new(
                            Duration::from_millis(settings.backoff_initial_ms),
                            Duration::from_millis(settings.backoff_max_ms),
                        ),
                        connected: false,
                        last_error: None,
                        last_latency_ms: None,
                        tool_count: None,
                        connects: 0,
                        pid: None,
                    }),
                    next_generation: AtomicU64::new(0),
                    live_generation: AtomicU64::new(0),
                    closed: AtomicBool::new(false),
                    in_process: match (&cfg.transport, &builtin) {
                        (McpTransport::Builtin, Some(crm)) => {
                            Some(StrataMcpServer::new(crm.db.clone(), crm.opts.clone()))
                        }
                        _ => None,
                    },
                    builtin: builtin.clone(),
                };
                (name.clone(), Arc::new(server))
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
