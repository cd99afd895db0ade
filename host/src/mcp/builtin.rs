//! `transport = "builtin"`: Strata's own CRM server ([`crate::crm::mcp`]) inside the host
//! process, on the host's own [`Db`] (no child process, no second connection pool on the
//! file). Tool calls run the server's handlers directly, without JSON-RPC
//! ([`crate::crm::mcp::StrataMcpServer::call_in_process`]; the manager's deadline and
//! breaker, and the capability's audit and dry-run rules, apply as to any server). Tool
//! listing and health probes go through an ordinary client session with the rmcp server
//! on a task at one end of an in-memory pipe (`tokio::io::duplex`).

use super::connect::{describe_error, Client};
use super::error::ConnectError;
use crate::crm::mcp::{ServeOptions, StrataMcpServer};
use crate::db::Db;
use rmcp::ServiceExt;

/// Bytes buffered in each direction of the pipe (one JSON-RPC message is far smaller).
const PIPE_BUFFER: usize = 256 * 1024;

/// What the built-in server needs: the host's database and the server's options.
#[derive(Debug, Clone)]
pub struct BuiltinCrm {
    pub db: Db,
    pub opts: ServeOptions,
}

impl BuiltinCrm {
    pub fn new(db: Db, opts: ServeOptions) -> Self {
        Self { db, opts }
    }
}

/// Starts the server on a task and opens a client session with it. The server ends when
/// the client's end of the pipe is dropped (the session closed or cancelled).
pub(crate) async fn connect(server: &str, crm: &BuiltinCrm) -> Result<Client, ConnectError> {
    let (client_end, server_end) = tokio::io::duplex(PIPE_BUFFER);
    let handler = StrataMcpServer::new(crm.db.clone(), crm.opts.clone());
    let name = server.to_string();
    tokio::spawn(async move {
        match handler.serve(server_end).await {
            Ok(running) => match running.waiting().await {
                Ok(reason) => {
                    tracing::debug!(server = %name, ?reason, "built-in MCP server session ended")
                }
                Err(e) => tracing::warn!(server = %name, "built-in MCP server task failed: {e}"),
            },
            Err(e) => tracing::warn!(
                server = %name,
                "built-in MCP server handshake failed: {}",
                describe_error(&e)
            ),
        }
    });
    super::connect::client_config()
        .serve(client_end)
        .await
        .map_err(|e| ConnectError::Handshake(describe_error(&e)))
}
