//! Strata's MCP server ([`crate::crm::mcp`]) over streamable HTTP at `/mcp`, behind the
//! HTTP API's keys: every request needs an active key with the operator role or above
//! (the tools read and change leads and enqueue jobs).

use crate::crm::mcp::{ServeOptions, StrataMcpServer};
use crate::db::Db;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Serves Strata's MCP server over streamable HTTP at `http://<bind>/mcp` until
/// `shutdown` resolves. Binding happens before this returns: the bound address (useful
/// with port 0) is returned and the server runs on a spawned task.
///
/// Every request needs an API key of the HTTP API with the operator role or above
/// (`Authorization: Bearer <key>`; the tools read and change leads and enqueue jobs):
/// 401 without a valid key, 403 for a reader key.
pub async fn serve_http(
    db: Db,
    bind: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<SocketAddr> {
    serve_http_with(db, ServeOptions::default(), bind, shutdown)
        .await
        .map(|(addr, _)| addr)
}

/// [`serve_http`] with explicit options; also returns the server task (it ends after
/// `shutdown` once open sessions are closed).
pub async fn serve_http_with(
    db: Db,
    opts: ServeOptions,
    bind: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    // DNS-rebinding protection: loopback names are allowed by default; a server bound
    // to a specific other address also accepts that address as Host.
    let mut config = StreamableHttpServerConfig::default();
    let ct = config.cancellation_token.clone();
    if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
        let mut hosts = config.allowed_hosts.clone();
        hosts.push(addr.ip().to_string());
        config = config.with_allowed_hosts(hosts);
    }
    let server = StrataMcpServer::new(db.clone(), opts);
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(db, require_key));
    let task = tokio::spawn(async move {
        let stop = ct.clone();
        let graceful = async move {
            shutdown.await;
            stop.cancel();
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::error!("MCP HTTP server failed: {e}");
        }
    });
    tracing::info!(%addr, "MCP server serving streamable HTTP at http://{addr}/mcp");
    Ok((addr, task))
}

/// Middleware of the HTTP transport: an active API key with the operator role or above.
async fn require_key(
    axum::extract::State(db): axum::extract::State<Db>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use super::error::ApiError;
    use crate::db::Role;
    use axum::response::IntoResponse;
    let Some(key) = super::auth::presented_key(req.headers()) else {
        return ApiError::unauthorized("missing API key: send `Authorization: Bearer <key>`")
            .into_response();
    };
    match db.find_active_api_key(&super::auth::hash_key(key)).await {
        Ok(Some(rec)) if rec.role.allows(Role::Operator) => next.run(req).await,
        Ok(Some(rec)) => ApiError::forbidden(format!(
            "the MCP server needs the operator role; key {:?} has {}",
            rec.name,
            rec.role.as_str()
        ))
        .into_response(),
        Ok(None) => ApiError::unauthorized("invalid or revoked API key").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
