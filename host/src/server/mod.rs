//! `strata serve`: the HTTP service. Axum + tower-http; API keys with roles; rate limits
//! per key or IP; problem+json errors; request ids; Prometheus metrics; OpenAPI generated
//! from the handlers; a durable job queue with workers in every process.

pub mod auth;
pub mod console;
pub mod error;
pub mod json;
pub mod mcp_http;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod routes;
pub mod worker;

use crate::audit::AuditSink;
use crate::config::Config;
use crate::db::{Db, Role};
use crate::plugins::PluginManager;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Shared state of every handler: one `Arc`, so the per-request clones the extractors
/// and middleware make cost one atomic increment (a struct of `Arc`s was ~7% of a
/// fast-path request in a profile).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The CRM's lead and score operations over this server's database.
    pub fn crm(&self) -> crate::crm::Crm {
        crate::crm::Crm::new(self.db.clone())
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    /// The MCP servers of `[mcp]` (status and tool lists for the API).
    pub mcp: Arc<crate::mcp::McpManager>,
    /// MCP tool pins (status, and pinning by an admin).
    pub mcp_pins: Arc<crate::mcp::McpPins>,
    /// The LLM broker, when `[llm]` configures a provider.
    pub llm: Option<Arc<crate::llm::LlmBroker>>,
    pub db: Db,
    pub manager: Arc<PluginManager>,
    pub config: Arc<Config>,
    pub audit: AuditSink,
    /// Lead qualification, with the CRM link.
    pub qualify: Arc<crate::qualify::Qualification>,
    /// Strategies' challengers: shadow and canary on the scoring path.
    pub challengers: Arc<crate::challenger::Challengers>,
    /// This replica's follower of the release state (none in embedded test routers).
    pub releases: Option<Arc<crate::plugins::follower::ReleaseFollower>>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub keys: Arc<auth::KeyCache>,
    pub started: Instant,
    /// Wakes an idle job worker when a job is enqueued.
    pub worker_wake: Arc<tokio::sync::Notify>,
    /// Pipelines, their runs and webhooks.
    pub pipelines: Arc<crate::pipelines::Orchestrator>,
    /// Where the configuration is read again on a reload.
    pub config_source: ConfigSource,
}

/// Where `strata serve` reads its configuration again on `SIGHUP` or
/// `POST /api/v1/config/reload`.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// As the command line read it: `--config` (or `config/strata.toml`) and the
    /// environment.
    Cli(Option<std::path::PathBuf>),
    /// Given in memory (tests, embedders): there is nothing to read again.
    Fixed,
}

/// Reads the configuration again and applies what applies live (see
/// [`crate::plugins::reload`]).
pub async fn reload_config(
    st: &AppState,
) -> Result<crate::plugins::reload::ReloadReport, error::ApiError> {
    let ConfigSource::Cli(path) = &st.config_source else {
        return Err(error::ApiError::new(
            StatusCode::CONFLICT,
            "this server was given its configuration in memory; there is no file to read again",
        ));
    };
    let config = Config::load(path.as_deref()).map_err(|e| {
        tracing::warn!(error = %e, "configuration reload refused; the running configuration stays");
        error::ApiError::unprocessable(e.to_string())
    })?;
    Ok(st.manager.reload_config(config).await)
}

/// Reloads the configuration on every `SIGHUP` until the process ends.
fn reload_on_sighup(st: AppState) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reading the configuration again");
            // The outcome is logged by the reload itself.
            let _ = reload_config(&st).await;
        }
    }))
}

/// The request id of a request (from `x-request-id` when it is sane, else generated).
#[derive(Clone)]
pub struct RequestId(pub Arc<str>);

fn sane_request_id(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
    .then_some(s)
}

/// Assigns the request id, runs the request inside a span carrying it, echoes it back.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id: Arc<str> = match req.headers().get("x-request-id").and_then(sane_request_id) {
        Some(s) => Arc::from(s),
        None => Arc::from(uuid::Uuid::new_v4().to_string()),
    };
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut res = tracing::Instrument::instrument(next.run(req), span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

/// Runs blocking plugin work off the async workers; a panic there is a 500, not a crash.
pub async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, error::ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error::ApiError::internal(format!("worker task failed: {e}")))
}

fn with_role(r: OpenApiRouter<AppState>, state: &AppState, role: Role) -> OpenApiRouter<AppState> {
    r.layer(middleware::from_fn_with_state(
        (state.clone(), role),
        auth::require,
    ))
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The whole API plus `extra` routes for the operator role, behind the same middleware
/// and absent from the OpenAPI document: how `strata bench serve` adds its native
/// reference route. The production service passes none.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let sv = &state.config.server;
    let ops = OpenApiRouter::new()
        .routes(routes!(routes::health::health))
        .routes(routes!(routes::health::ready));
    // Authenticated by its HMAC signature, not by an API key.
    let webhooks = OpenApiRouter::new().routes(routes!(routes::pipelines::webhook));
    let ops = if sv.public_health {
        ops
    } else {
        with_role(ops, &state, Role::Reader)
    };
    let metrics = OpenApiRouter::new().routes(routes!(routes::health::metrics));
    let metrics = if sv.public_metrics {
        metrics
    } else {
        with_role(metrics, &state, Role::Reader)
    };

    let reader = OpenApiRouter::new()
        .routes(routes!(routes::leads::list))
        .routes(routes!(routes::leads::get))
        .routes(routes!(routes::scores::list))
        .routes(routes!(routes::scores::of_lead))
        .routes(routes!(routes::scoring::job))
        .routes(routes!(routes::executions::list))
        .routes(routes!(routes::executions::stats))
        .routes(routes!(routes::plugins::list))
        .routes(routes!(routes::plugins::get))
        .routes(routes!(routes::plugins::versions))
        .routes(routes!(routes::published::get_version))
        .routes(routes!(routes::published::diff))
        .routes(routes!(routes::release_state::get_release))
        .routes(routes!(routes::audit::list))
        .routes(routes!(routes::mcp::mcp_status))
        .routes(routes!(routes::mcp::mcp_server_tools))
        .routes(routes!(routes::mcp::plugin_pins))
        .routes(routes!(routes::llm::llm_status))
        .routes(routes!(routes::pipelines::list))
        .routes(routes!(routes::pipelines::runs))
        .routes(routes!(routes::pipelines::run))
        .routes(routes!(routes::pipelines::containers))
        .routes(routes!(routes::pipelines::container_events))
        .routes(routes!(routes::strategies::get_challenger))
        .routes(routes!(routes::strategies::comparison));
    let operator = OpenApiRouter::new()
        .routes(routes!(routes::leads::upsert))
        .routes(routes!(routes::leads::bulk))
        .routes(routes!(routes::scoring::score))
        .routes(routes!(routes::scoring::qualify))
        .routes(routes!(routes::scores::set_override))
        .routes(routes!(routes::plugins::rollback))
        .routes(routes!(routes::plugins::pin))
        .routes(routes!(routes::plugins::unpin))
        .routes(routes!(routes::plugins::disable))
        .routes(routes!(routes::plugins::enable))
        .routes(routes!(routes::pipelines::start))
        .merge(
            // Its body limit is `release.max_artifact_bytes` (+ 1 MiB), see `body_limit`.
            OpenApiRouter::new()
                .routes(routes!(routes::releases::publish))
                .layer(axum::extract::DefaultBodyLimit::max(
                    state.config.release.max_publish_body_bytes(),
                )),
        )
        .routes(routes!(routes::release_state::set_release))
        .routes(routes!(routes::strategies::attach))
        .routes(routes!(routes::strategies::detach))
        .routes(routes!(routes::strategies::promote))
        .merge(OpenApiRouter::from(extra));
    let admin = OpenApiRouter::new()
        .routes(routes!(routes::config::reload))
        .routes(routes!(routes::keys::list, routes::keys::create))
        .routes(routes!(routes::keys::revoke))
        .routes(routes!(routes::mcp::pin_plugin))
        .routes(routes!(routes::releases::approve))
        .routes(routes!(routes::releases::reject));

    let (api, doc) = OpenApiRouter::with_openapi(openapi::base())
        .merge(ops)
        .merge(webhooks)
        .merge(metrics)
        .merge(with_role(reader, &state, Role::Reader))
        .merge(with_role(operator, &state, Role::Operator))
        .merge(with_role(admin, &state, Role::Admin))
        .split_for_parts();
    let mut doc = doc;
    openapi::problem_responses(&mut doc);
    let doc = Arc::new(doc);

    let cors = if sv.cors_origins.is_empty() {
        CorsLayer::new()
    } else {
        let origins: Vec<HeaderValue> = sv
            .cors_origins
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect();
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods(tower_http::cors::Any)
            .allow_headers(tower_http::cors::Any)
    };
    let depth = json::DepthLimit(sv.json_depth_limit);
    api.merge(openapi::docs_router(doc))
        .merge(console::router(&state))
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .layer(middleware::from_fn(
            move |mut req: Request, next: Next| async move {
                req.extensions_mut().insert(depth);
                next.run(req).await
            },
        ))
        .layer(middleware::from_fn(json::no_nul_in_uri))
        .layer(rate_limit::layer(
            sv.rate_limit_per_second,
            sv.rate_limit_burst,
        ))
        .layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn_with_state(
            (
                sv.body_limit_bytes,
                state.config.release.max_publish_body_bytes(),
            ),
            body_limit,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(sv.request_timeout_ms),
        ))
        .layer(middleware::from_fn(error::problem_errors))
        .layer(cors)
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Is this request a publish (`POST /api/v1/plugins/{name}/versions`)?
fn is_publish(req: &Request) -> bool {
    req.method() == axum::http::Method::POST
        && req
            .uri()
            .path()
            .strip_prefix("/api/v1/plugins/")
            .and_then(|rest| rest.strip_suffix("/versions"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// Middleware: the request body limit — `server.body_limit_bytes`, or for a publish
/// `release.max_artifact_bytes` + 1 MiB (a component is larger than any JSON body).
async fn body_limit(
    axum::extract::State((default, publish)): axum::extract::State<(usize, usize)>,
    req: Request,
    next: Next,
) -> Response {
    use tower::ServiceExt;
    let limit = if is_publish(&req) { publish } else { default };
    let inner = next.map_request(|r: axum::http::Request<_>| r.map(axum::body::Body::new));
    match tower_http::limit::RequestBodyLimit::new(inner, limit)
        .oneshot(req)
        .await
    {
        Ok(res) => res.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

/// Connects the database, retrying with backoff while it is unreachable.
pub async fn connect_with_retry(
    config: &Config,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Db> {
    let opts = config.database.db_options();
    let mut delay = Duration::from_millis(250);
    loop {
        match Db::connect(&config.database.url, &opts).await {
            Ok(db) => return Ok(db),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database unreachable; retrying");
                if *shutdown.borrow() {
                    anyhow::bail!("shutting down before the database became reachable: {e}");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutdown signal received: draining");
}

/// Runs the service until SIGTERM/SIGINT: stop accepting, finish in-flight requests,
/// return claimed jobs to the queue, flush the audit, exit. `SIGHUP` reloads the
/// configuration from `source`.
pub async fn serve(
    config: Config,
    source: ConfigSource,
    ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> anyhow::Result<()> {
    serve_with(config, source, ready, shutdown_signal()).await
}

/// [`serve`] until `shutdown` resolves (tests and embedders), with a fixed configuration.
pub async fn serve_until(
    config: Config,
    ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(config, ConfigSource::Fixed, ready, shutdown).await
}

/// [`serve`] until `shutdown` resolves, reloading the configuration from `source`.
pub async fn serve_with(
    config: Config,
    source: ConfigSource,
    ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_routes(config, source, ready, shutdown, Router::new()).await
}

/// How long a stopping server keeps answering on the connections it has (each response
/// with `Connection: close`) before it closes the idle ones. New connections are refused
/// from the start of the drain. A request already in a connection's socket when shutdown
/// begins is read and answered, not dropped with the connection (hyper closes a
/// connection it thinks idle at once on a graceful shutdown, unread bytes included).
pub const DRAIN_GRACE: Duration = Duration::from_millis(300);

/// [`serve_with`] with `extra` operator routes (see [`router_with`]): the bench harness's
/// server. `strata serve` adds none.
///
/// Order: bind the port first (a taken port fails here, before the database is touched or
/// a job claimed), then database, plugins, state; job workers start only once the server
/// is serving. On shutdown: stop accepting, drain (see [`DRAIN_GRACE`]), close idle
/// connections and finish in-flight requests, workers hand their jobs back; the audit is
/// flushed on every exit once the host was built, also when serving failed.
pub async fn serve_with_routes(
    config: Config,
    source: ConfigSource,
    ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    extra: Router<AppState>,
) -> anyhow::Result<()> {
    let listener = bind(&config.server.bind).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let signal = {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
    };
    let result = async {
        let db = connect_with_retry(&config, &stop_rx).await?;
        db.migrate().await?;
        let app = crate::app::App::with_db(config, db)?;
        let served = serve_app(&app, source, ready, listener, stop_rx.clone(), extra).await;
        // Whatever happened, stop the workers (if any started) and flush the audit.
        let _ = stop_tx.send(true);
        app.shutdown().await;
        served
    }
    .await;
    signal.abort();
    if result.is_ok() {
        tracing::info!("stopped");
    }
    result
}

/// Binds `addr`; a taken port is one line naming it.
async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("cannot bind {addr}: address in use (is another server running there?)")
        } else {
            anyhow::anyhow!("cannot bind {addr}: {e}")
        }
    })
}

/// The part of [`serve_with_routes`] between building the host and shutting it down.
async fn serve_app(
    app: &crate::app::App,
    source: ConfigSource,
    ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
    listener: tokio::net::TcpListener,
    stop_rx: tokio::sync::watch::Receiver<bool>,
    extra: Router<AppState>,
) -> anyhow::Result<()> {
    app.connect_mcp();
    app.check_crm().await?;
    app.close_orphaned_executions().await;
    app.challengers.start().await?;
    let (config, db, audit, manager) = (
        app.config.clone(),
        app.db.clone(),
        app.audit.clone(),
        app.manager.clone(),
    );
    let report = manager.load_all().await;
    for (dir, e) in &report.failed {
        tracing::warn!(dir = %dir.display(), error = %e, "plugin not loaded");
    }
    tracing::info!(loaded = ?report.loaded, "plugins loaded");
    // Released plugins: converge to the release state before serving (a replica that
    // starts, or was down, serves what the fleet serves before it reports ready).
    let releases = Arc::new(crate::plugins::follower::ReleaseFollower::new(
        manager.clone(),
        db.clone(),
        config.release_dir(),
    ));
    if let Err(e) = releases.converge().await {
        tracing::warn!(error = %e, "cannot read the release state at start-up; following it from now on");
    }
    let _follower = releases.clone().spawn(
        Duration::from_millis(config.release.poll_ms),
        stop_rx.clone(),
    );
    let mut _watch = Vec::new();
    if config.plugins.watch {
        for root in config.plugins.roots() {
            _watch.push(crate::plugins::watcher::watch(
                manager.clone(),
                &root,
                Duration::from_millis(config.plugins.debounce_ms),
            )?);
        }
    }
    let state = AppState(Arc::new(Shared {
        mcp: app.mcp.clone(),
        mcp_pins: app.mcp_pins.clone(),
        qualify: app.qualify.clone(),
        challengers: app.challengers.clone(),
        llm: app.llm.clone(),
        db,
        manager,
        config: config.clone(),
        audit,
        metrics: metrics::handle(),
        keys: Arc::new(auth::KeyCache::new(Duration::from_millis(
            config.server.key_cache_ms,
        ))),
        started: Instant::now(),
        worker_wake: Arc::new(tokio::sync::Notify::new()),
        pipelines: app.pipelines.clone(),
        config_source: source.clone(),
        releases: Some(releases),
    }));
    let reloader = match source {
        ConfigSource::Cli(_) => Some(reload_on_sighup(state.clone())?),
        ConfigSource::Fixed => None,
    };

    let addr = listener.local_addr()?;
    // Shutdown in two steps: `draining` stops accepting and marks responses
    // `Connection: close`; `DRAIN_GRACE` later the idle connections are closed.
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut stop = stop_rx.clone();
    let drain_started = {
        let draining = draining.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
            draining.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let drain_timer = tokio::spawn(async move {
        drain_started.await;
        let _ = drain_tx.send(true);
        tokio::time::sleep(DRAIN_GRACE).await;
    });
    let listener = axum::serve::ListenerExt::tap_io(
        DrainingListener {
            inner: Some(listener),
            addr,
            draining: drain_rx,
        },
        |_| {},
    );
    let closing = draining.clone();
    let app_router = router_with(state.clone(), extra).layer(middleware::from_fn(
        move |req: Request, next: Next| {
            let closing = closing.clone();
            async move {
                let mut res = next.run(req).await;
                if closing.load(std::sync::atomic::Ordering::SeqCst) {
                    res.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        HeaderValue::from_static("close"),
                    );
                }
                res
            }
        },
    ));
    let server = axum::serve(
        listener,
        app_router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = drain_timer.await;
    });
    let server = server.into_future();
    // Serving from here on (connections are accepted once `server` is polled); the
    // workers start now, so a process that cannot serve never claims a job.
    tracing::info!(%addr, "strata serving");
    let workers = worker::spawn(state, stop_rx);
    if let Some(tx) = ready {
        let _ = tx.send(addr);
    }
    let served = server.await;
    for w in workers {
        let _ = w.await;
    }
    if let Some(r) = reloader {
        r.abort();
    }
    Ok(served?)
}

/// The bound listener of [`serve_app`]: accepts until the drain starts, then closes the
/// socket (new connections are refused, not left in a backlog) and accepts nothing more.
struct DrainingListener {
    inner: Option<tokio::net::TcpListener>,
    addr: std::net::SocketAddr,
    draining: tokio::sync::watch::Receiver<bool>,
}

impl axum::serve::Listener for DrainingListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some(listener) = &self.inner else {
                return std::future::pending().await;
            };
            let draining = &mut self.draining;
            let drain = async move {
                // The guard `wait_for` returns is not `Send`: drop it here.
                let _ = draining.wait_for(|d| *d).await.map(|_| ());
            };
            tokio::select! {
                biased;
                _ = drain => {}
                r = listener.accept() => match r {
                    Ok(conn) => return conn,
                    Err(e) if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                    ) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "accept error");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            }
            self.inner = None;
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
