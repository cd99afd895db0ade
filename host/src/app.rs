//! Wiring shared by the CLI commands (and later the server): config → database (migrated)
//! → audit writer → runtime → registry → plugin manager.

use crate::audit::AuditSink;
use crate::capabilities::HostServices;
use crate::config::Config;
use crate::db::Db;
use crate::llm::{LlmBroker, LlmSettings};
use crate::mcp::McpManager;
use crate::plugins::{PluginManager, Registry};
use crate::runtime::{LoadError, Runtime};
use std::sync::Arc;

pub struct App {
    pub config: Arc<Config>,
    pub db: Db,
    pub audit: AuditSink,
    pub manager: Arc<PluginManager>,
    /// `None` when `[llm]` configures no provider.
    pub llm: Option<Arc<LlmBroker>>,
    /// The MCP servers of `[mcp]` (possibly none). Not connected yet: see [`App::connect_mcp`].
    pub mcp: Arc<McpManager>,
    /// MCP tool pins, checked before every plugin `call-tool` ([`crate::mcp::pins`]).
    pub mcp_pins: Arc<crate::mcp::McpPins>,
    /// Runs the pipelines of `[pipelines]` over the loaded layers.
    pub pipelines: Arc<crate::pipelines::Orchestrator>,
    /// Lead qualification (`[qualify]`), with the CRM link when its MCP server exists.
    pub qualify: Arc<crate::qualify::Qualification>,
    /// Strategies' challengers (shadow, canary) and their results recorder; idle until
    /// [`crate::challenger::Challengers::start`] (the server starts it).
    pub challengers: Arc<crate::challenger::Challengers>,
}

impl App {
    /// Connects and migrates the database and builds the runtime. Plugins are not loaded.
    pub async fn start(config: Config) -> anyhow::Result<App> {
        let db = Db::connect(&config.database.url, &config.database.db_options()).await?;
        db.migrate().await?;
        Self::with_db(config, db)
    }

    /// Builds the host around a connected, migrated database: audit writer, LLM broker,
    /// MCP manager, registry, runtime (with those services), plugin manager.
    pub fn with_db(config: Config, db: Db) -> anyhow::Result<App> {
        let audit = AuditSink::spawn(db.clone());
        let llm = if config.llm == LlmSettings::default() {
            None
        } else {
            Some(Arc::new(LlmBroker::new(&config.llm)?))
        };
        let crm = crate::mcp::BuiltinCrm::new(
            db.clone(),
            crate::crm::mcp::ServeOptions::from_config(&config),
        );
        let mcp = McpManager::with_builtin(&config.mcp, Some(crm));
        let mcp_pins = crate::mcp::McpPins::new(db.clone());
        let registry = Arc::new(Registry::new());
        let services = HostServices {
            llm: llm.clone(),
            mcp: (!mcp.servers().is_empty()).then(|| mcp.clone()),
            mcp_pins: Some(mcp_pins.clone()),
            scorers: Arc::downgrade(&registry),
            secrets: crate::secrets::Secrets::from_env_vars(config.secret_env_vars(), |v| {
                std::env::var(v).ok()
            }),
            ..HostServices::basic(Some(db.clone()), audit.clone())
        };
        let runtime = Runtime::new(config.runtime.clone(), services)?;
        let config = Arc::new(config);
        let pipelines = Arc::new(crate::pipelines::Orchestrator::new(
            db.clone(),
            registry.clone(),
            config.pipeline.clone(),
            config.pipelines.clone(),
            config.webhooks.clone(),
        ));
        let challengers = crate::challenger::Challengers::new(
            db.clone(),
            registry.clone(),
            config.challenger.clone(),
            audit.clone(),
        );
        let manager = Arc::new(PluginManager::new(
            Arc::new(runtime),
            registry,
            config.clone(),
            Some(db.clone()),
        ));
        let link =
            crate::qualify::CrmLink::new(mcp.clone(), config.qualify.crm.clone(), audit.clone());
        let qualify = Arc::new(
            crate::qualify::Qualification::new(db.clone(), config.qualify.clone(), link)
                .with_challengers(challengers.clone()),
        );
        Ok(App {
            config,
            db,
            audit,
            manager,
            llm,
            mcp,
            mcp_pins,
            pipelines,
            qualify,
            challengers,
        })
    }

    /// Connects every configured MCP server in the background (failures are logged and
    /// shown in the MCP status; calls connect on demand), then probes them every
    /// `mcp.health_interval_ms` (each probe lists the tools again, which is how a changed
    /// definition of a pinned tool is noticed).
    pub fn connect_mcp(&self) {
        if !self.mcp.servers().is_empty() {
            let mcp = self.mcp.clone();
            tokio::spawn(async move { mcp.connect_all().await });
            let every = self.config.mcp.health_interval_ms;
            if every > 0 {
                drop(
                    self.mcp
                        .spawn_health_checks(std::time::Duration::from_millis(every)),
                );
            }
        }
    }

    /// Closes agent executions left `running` by a `strata qualify` process that died
    /// ([`Config::stale_execution_after_ms`]); execution rows of jobs are closed by their
    /// job's retry, release or death instead.
    pub async fn close_orphaned_executions(&self) {
        let cutoff = crate::domain::now_ms() - self.config.stale_execution_after_ms() as i64;
        match self.db.close_stale_jobless_executions(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                executions = n,
                "closed agent executions orphaned by a process that died"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot close orphaned agent executions"),
        }
    }

    /// Checks `[qualify.crm]` against the CRM's MCP server: a tool or argument the server
    /// does not have is an error naming it. A server that cannot be reached now is only
    /// a warning (every qualification checks again before it calls the CRM).
    pub async fn check_crm(&self) -> anyhow::Result<()> {
        let Some(link) = self.qualify.crm() else {
            return Ok(());
        };
        match link.check().await {
            Ok(tools) => {
                tracing::debug!(
                    server = link.server(),
                    tools = tools.len(),
                    "[qualify.crm] matches the CRM's tools"
                );
                Ok(())
            }
            Err(crate::qualify::LinkError::Tools { server, source }) => {
                tracing::warn!(%server, error = %source, "cannot check [qualify.crm] now; qualification checks it before each call");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A runtime with the given services (no database: offline tools).
    pub fn runtime(
        config: &Config,
        db: Option<Db>,
        audit: AuditSink,
    ) -> Result<Runtime, LoadError> {
        Runtime::new(config.runtime.clone(), HostServices::basic(db, audit))
    }

    /// Closes MCP sessions (children killed), flushes pending audit records, closes the pool.
    pub async fn shutdown(self) {
        self.mcp.shutdown().await;
        self.challengers.flush().await;
        self.audit.flush().await;
        self.db.close().await;
    }
}
