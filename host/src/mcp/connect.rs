//! One live session with an MCP server: a spawned child speaking stdio, a streamable
//! HTTP session, or Strata's own server in process (`builtin.rs`). The host owns the child process itself (not rmcp) so it knows the pid,
//! sees the exit at once, forwards stderr to the log and kills the child on drop.

use super::error::ConnectError;
use super::settings::{McpServerSettings, McpTransport};
use super::ToolInfo;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::{ClientCacheConfig, RoleClient, ServiceExt};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, watch};

/// Longest stderr line forwarded to the log (longer lines are cut).
const MAX_STDERR_LINE: usize = 4096;
/// How long a failed call waits for the child's exit status to explain the failure.
const EXIT_GRACE: Duration = Duration::from_millis(300);

pub(crate) type Client = RunningService<RoleClient, ClientConfig>;

/// Shared between a connection and its watchers.
#[derive(Debug, Default)]
pub(crate) struct ConnFlags {
    /// The host closed the connection on purpose (shutdown, replacement).
    pub(crate) retired: AtomicBool,
    /// The connection was found dead and this was recorded once.
    pub(crate) lost: AtomicBool,
}

pub(crate) struct Connection {
    pub(crate) client: Client,
    pub(crate) tools: RwLock<Arc<Vec<ToolInfo>>>,
    pub(crate) pid: Option<u32>,
    pub(crate) generation: u64,
    pub(crate) flags: Arc<ConnFlags>,
    /// stdio: how the child exited, once it has.
    exit: Option<watch::Receiver<Option<String>>>,
    /// stdio: sending (or dropping) kills the child.
    kill: std::sync::Mutex<Option<oneshot::Sender<()>>>,
}

impl Connection {
    /// Neither found dead nor closed underneath.
    pub(crate) fn is_alive(&self) -> bool {
        !self.flags.lost.load(Ordering::SeqCst)
            && !self.client.is_transport_closed()
            && self.exit.as_ref().is_none_or(|rx| rx.borrow().is_none())
    }

    pub(crate) fn tools(&self) -> Arc<Vec<ToolInfo>> {
        self.tools.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_tools(&self, tools: Vec<ToolInfo>) {
        *self.tools.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tools);
    }

    /// Why the connection died: the child's exit status if it exited (waiting briefly
    /// for it), else `fallback`.
    pub(crate) async fn lost_reason(&self, fallback: &str) -> String {
        if let Some(rx) = &self.exit {
            let mut rx = rx.clone();
            let exited = tokio::time::timeout(EXIT_GRACE, rx.wait_for(|s| s.is_some()))
                .await
                .ok()
                .and_then(|r| r.ok().and_then(|s| s.clone()));
            if let Some(s) = exited {
                return s;
            }
        }
        fallback.to_string()
    }

    /// Closes the session and, for stdio, ends the child: it gets `grace` to exit after
    /// the session is cancelled, then it is killed.
    pub(crate) async fn close(&self, grace: Duration) {
        self.flags.retired.store(true, Ordering::SeqCst);
        self.client.cancellation_token().cancel();
        if let Some(rx) = &self.exit {
            let mut rx = rx.clone();
            let _ = tokio::time::timeout(grace, rx.wait_for(|s| s.is_some())).await;
            let kill = self.kill.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(k) = kill {
                let _ = k.send(());
            }
            let _ =
                tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.is_some())).await;
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.flags.retired.store(true, Ordering::SeqCst);
        // Dropping the kill sender ends the child (the watcher kills it).
    }
}

pub(crate) fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("strata", env!("CARGO_PKG_VERSION")),
    )
}

/// Connects to `cfg` (spawning its child for stdio), runs the handshake and lists the
/// tools. `on_exit` runs once when a stdio child exits, with a description of how.
/// Errors are one-line reasons without secrets.
pub(crate) async fn connect(
    server: &str,
    cfg: &McpServerSettings,
    generation: u64,
    builtin: Option<&super::BuiltinCrm>,
    on_exit: impl FnOnce(&ConnFlags, String) + Send + 'static,
) -> Result<Arc<Connection>, ConnectError> {
    let flags = Arc::new(ConnFlags::default());
    let (client, pid, exit, kill) = match cfg.transport {
        McpTransport::Stdio => {
            let (client, pid, exit, kill) =
                spawn_stdio(server, cfg, flags.clone(), on_exit).await?;
            (client, pid, Some(exit), Some(kill))
        }
        McpTransport::Http => (connect_http(cfg).await?, None, None, None),
        McpTransport::Builtin => {
            let crm = builtin.ok_or(ConnectError::NoBuiltin)?;
            (
                super::builtin::connect(server, crm).await?,
                None,
                None,
                None,
            )
        }
    };
    // This client keeps its own tool list per connection; rmcp's response cache would
    // also answer a health probe from memory (stale on error) when the server is gone.
    client
        .peer()
        .set_response_cache_config(ClientCacheConfig::disabled())
        .await;
    let conn = Connection {
        client,
        tools: RwLock::new(Arc::new(Vec::new())),
        pid,
        generation,
        flags,
        exit,
        kill: std::sync::Mutex::new(kill),
    };
    match conn.client.peer().list_all_tools().await {
        Ok(tools) => conn.set_tools(tools.iter().map(ToolInfo::from_rmcp).collect()),
        Err(e) => {
            let reason = conn
                .lost_reason(&format!("listing tools failed: {}", describe_error(&e)))
                .await;
            conn.close(Duration::ZERO).await;
            return Err(ConnectError::Lost(reason));
        }
    }
    Ok(Arc::new(conn))
}

type Spawned = (
    Client,
    Option<u32>,
    watch::Receiver<Option<String>>,
    oneshot::Sender<()>,
);

async fn spawn_stdio(
    server: &str,
    cfg: &McpServerSettings,
    flags: Arc<ConnFlags>,
    on_exit: impl FnOnce(&ConnFlags, String) + Send + 'static,
) -> Result<Spawned, ConnectError> {
    let program = cfg.command.as_deref().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&cfg.args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for key in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(&cfg.env);
    for (child_var, host_var) in &cfg.env_from {
        match std::env::var_os(host_var) {
            Some(v) if !v.is_empty() => {
                cmd.env(child_var, v);
            }
            _ => {
                return Err(ConnectError::EnvFrom {
                    var: host_var.clone(),
                    child: child_var.clone(),
                })
            }
        }
    }
    if let Some(dir) = &cfg.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| ConnectError::Spawn {
        program: program.to_string(),
        message: e.to_string(),
    })?;
    let pid = child.id();
    let stdin = child.stdin.take().ok_or(ConnectError::Pipe("stdin"))?;
    let stdout = child.stdout.take().ok_or(ConnectError::Pipe("stdout"))?;
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_stderr(server.to_string(), stderr));
    }
    let (exit_tx, exit_rx) = watch::channel(None);
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    let name = server.to_string();
    tokio::spawn(async move {
        let status = tokio::select! {
            s = child.wait() => s,
            _ = kill_rx => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        let desc = match status {
            Ok(s) => describe_exit(s),
            Err(e) => format!("waiting for the process failed: {e}"),
        };
        if flags.retired.load(Ordering::SeqCst) {
            tracing::debug!(server = %name, pid, "MCP server process ended: {desc}");
        } else {
            tracing::warn!(server = %name, pid, "MCP server process exited unexpectedly: {desc}");
        }
        on_exit(&flags, desc.clone());
        let _ = exit_tx.send(Some(desc));
    });
    tracing::debug!(server, pid, program, "MCP server process started");
    match client_config().serve((stdout, stdin)).await {
        Ok(client) => Ok((client, pid, exit_rx, kill_tx)),
        Err(e) => {
            // Explain with the exit status when the child died during the handshake.
            let mut rx = exit_rx.clone();
            let exited = tokio::time::timeout(EXIT_GRACE, rx.wait_for(|s| s.is_some()))
                .await
                .ok()
                .and_then(|r| r.ok().and_then(|s| s.clone()));
            drop(kill_tx);
            Err(ConnectError::Handshake(match exited {
                Some(s) => s,
                None => describe_error(&e),
            }))
        }
    }
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = s.signal() {
            return format!("process killed by signal {sig}");
        }
    }
    match s.code() {
        Some(c) => format!("process exited with status {c}"),
        None => "process exited".to_string(),
    }
}

/// Forwards the child's stderr to the log, one event per line, tagged with the server.
async fn forward_stderr(server: String, mut stderr: tokio::process::ChildStderr) {
    let mut buf = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let mut cut = false;
    let emit = |line: &[u8], cut: bool| {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        if !text.is_empty() {
            let more = if cut { " …" } else { "" };
            tracing::debug!(target: "strata::mcp::stderr", server = %server, "{text}{more}");
        }
    };
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                emit(&line, cut);
                line.clear();
                cut = false;
            } else if line.len() < MAX_STDERR_LINE {
                line.push(b);
            } else {
                cut = true;
            }
        }
    }
    emit(&line, cut);
}

async fn connect_http(cfg: &McpServerSettings) -> Result<Client, ConnectError> {
    use axum::http::{header, HeaderValue};
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::StreamableHttpClientTransport;
    let url = cfg.url.as_deref().unwrap_or_default();
    let mut headers = HashMap::new();
    if let Some(var) = &cfg.auth_header_env {
        let env_error = |problem| ConnectError::AuthEnv {
            var: var.clone(),
            problem,
        };
        let value = std::env::var(var).map_err(|_| env_error("is not set"))?;
        let mut v = HeaderValue::from_str(value.trim())
            .map_err(|_| env_error("is not a valid header value"))?;
        v.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, v);
    }
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers),
    );
    client_config()
        .serve(transport)
        .await
        .map_err(|e| ConnectError::Session {
            url: crate::db::redact_url(url),
            message: e.to_string(),
        })
}

/// One line for an rmcp error: its message and the causes it does not already show,
/// without rmcp's transport type names (`Transport [very::long<Type>] error: `).
pub(crate) fn describe_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = tidy(&e.to_string());
    let mut source = e.source();
    while let Some(cause) = source {
        let c = tidy(&cause.to_string());
        if !c.is_empty() && !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

fn tidy(s: &str) -> String {
    let mut out = s.to_string();
    while let Some(start) = out.find("Transport [") {
        match out[start..].find("] error: ") {
            Some(end) => out.replace_range(start..start + end + "] error: ".len(), ""),
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn tidy_drops_transport_type_names() {
        assert_eq!(
            super::tidy("Transport send error: Transport [a::B<c::D>] error: refused"),
            "Transport send error: refused"
        );
        assert_eq!(super::tidy("Transport [x"), "Transport [x");
    }
}
