//! One configured MCP server as the client sees it ([`Server`]): its live connection (one
//! connect attempt at a time), breaker and backoff state, per-call deadlines, health
//! probe and status. [`super::McpManager`] holds one per `[mcp.servers.<name>]`; the
//! failure rules are in its module doc.

use super::breaker::{Admission, Backoff, Breaker, BreakerState};
use super::builtin::BuiltinCrm;
use super::connect::{self, ConnFlags, Connection};
use super::error::{ConnectError, McpError};
use super::settings::{McpServerSettings, McpSettings, McpTransport};
use super::tools::{json_kind, ToolInfo, ToolOutput};
use crate::crm::mcp::StrataMcpServer;
use rmcp::model::CallToolRequestParams;
use rmcp::ServiceError;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

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
    /// Pinned tools of this server whose current definition (the cached tool list of
    /// the live connection) differs from the pin: their calls are refused until an admin
    /// pins again ([`crate::mcp::pins`]). Filled by `GET /api/v1/mcp/status`.
    pub pin_violations: Vec<super::pins::PinViolation>,
}

pub(super) struct State {
    breaker: Breaker,
    backoff: Backoff,
    connected: bool,
    last_error: Option<String>,
    last_latency_ms: Option<u64>,
    tool_count: Option<usize>,
    connects: u64,
    pid: Option<u32>,
}

pub(super) struct Server {
    pub(super) name: String,
    cfg: McpServerSettings,
    pub(super) call_timeout: Duration,
    connect_timeout: Duration,
    health_timeout: Duration,
    pub(super) side_effects: Vec<glob::Pattern>,
    /// The live connection; held while connecting, so one attempt runs at a time.
    slot: tokio::sync::Mutex<Option<Arc<Connection>>>,
    state: Mutex<State>,
    next_generation: AtomicU64,
    /// Generation of the installed connection (0: none).
    live_generation: AtomicU64,
    pub(super) closed: AtomicBool,
    /// `transport = "builtin"`: the host's database for Strata's own server.
    builtin: Option<BuiltinCrm>,
    /// `transport = "builtin"`: Strata's own server, whose tools calls run in process
    /// without JSON-RPC (the session serves tool listing and health probes).
    in_process: Option<StrataMcpServer>,
}

/// A call let through the breaker; report its outcome (dropping it unreported frees a
/// half-open trial slot).
pub(super) struct Permit<'a> {
    server: &'a Server,
    trial: bool,
    done: bool,
}

impl Permit<'_> {
    /// The server answered. `latency`: of a call or probe (which also ends a reconnect
    /// streak); `None` for a bare connect.
    pub(super) fn success(mut self, latency: Option<Duration>) {
        self.done = true;
        let mut st = self.server.state();
        st.breaker.success();
        if let Some(l) = latency {
            st.last_latency_ms = Some(l.as_millis() as u64);
            st.backoff.succeeded();
        }
    }

    /// The server failed; `reason` replaces `last_error` when given.
    pub(super) fn failure(mut self, reason: Option<&str>) {
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

    pub(super) fn unavailable(&self, reason: impl Into<String>) -> McpError {
        McpError::Unavailable {
            server: self.name.clone(),
            reason: reason.into(),
        }
    }

    pub(super) fn admit(&self) -> Result<Permit<'_>, McpError> {
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
    pub(super) fn live_connection(&self) -> Option<Arc<Connection>> {
        let slot = self.slot.try_lock().ok()?;
        slot.as_ref().filter(|c| c.is_alive()).cloned()
    }

    /// Records once that `conn` died (if it is still the installed one).
    pub(super) fn record_lost(&self, conn: &Connection, reason: &str) {
        self.record_lost_flags(conn.generation, &conn.flags, reason);
    }

    pub(super) fn record_lost_flags(&self, generation: u64, flags: &ConnFlags, reason: &str) {
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
    pub(super) async fn connection(self: &Arc<Self>) -> Result<Arc<Connection>, McpError> {
        self.connection_fresh().await.map(|(c, _)| c)
    }

    /// [`Server::connection`], and whether it was opened just now.
    pub(super) async fn connection_fresh(
        self: &Arc<Self>,
    ) -> Result<(Arc<Connection>, bool), McpError> {
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
            Err(_) => Err(ConnectError::Timeout(self.connect_timeout.as_millis())),
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
                Err(self.unavailable(reason.to_string()))
            }
        }
    }

    /// Maps a failed request on `conn`; `what` names it (`tools/call "echo"`).
    pub(super) async fn request_failed(
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

    pub(super) async fn call(
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
    pub(super) fn timed_out(
        &self,
        permit: Permit<'_>,
        tool: &str,
        what: &str,
        timeout: Duration,
    ) -> McpError {
        let ms = timeout.as_millis() as u64;
        permit.failure(Some(&format!("{what} timed out after {ms} ms")));
        McpError::Timeout {
            server: self.name.clone(),
            tool: tool.to_string(),
            ms,
        }
    }

    pub(super) async fn probe(self: &Arc<Self>) -> Result<Duration, McpError> {
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

    pub(super) fn status(&self) -> ServerStatus {
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
            pin_violations: Vec::new(),
        }
    }

    pub(super) async fn shutdown(&self) {
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

impl Server {
    /// The server `name` of `settings`, not connected yet.
    pub(super) fn new(
        name: &str,
        cfg: &McpServerSettings,
        settings: &McpSettings,
        builtin: Option<&BuiltinCrm>,
    ) -> Server {
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
        Server {
            name: name.to_string(),
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
            in_process: match (&cfg.transport, builtin) {
                (McpTransport::Builtin, Some(crm)) => {
                    Some(StrataMcpServer::new(crm.db.clone(), crm.opts.clone()))
                }
                _ => None,
            },
            builtin: builtin.cloned(),
        }
    }
}
