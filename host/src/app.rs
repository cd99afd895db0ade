//! Wiring shared by the CLI commands (and later the server): config → database (migrated)
//! → audit writer → runtime → registry → plugin manager.

use crate::audit::AuditSink;
use crate::capabilities::HostServices;
use crate::config::Config;
use crate::db::{Db, DbOptions};
use crate::plugins::{PluginManager, Registry};
use crate::runtime::{LoadError, Runtime};
use std::sync::Arc;

pub struct App {
    pub config: Arc<Config>,
    pub db: Db,
    pub audit: AuditSink,
    pub manager: Arc<PluginManager>,
}

impl App {
    /// Connects and migrates the database and builds the runtime. Plugins are not loaded.
    pub async fn start(config: Config) -> anyhow::Result<App> {
        let opts = DbOptions {
            max_connections: config.database.max_connections,
            ..DbOptions::default()
        };
        let db = Db::connect(&config.database.url, &opts).await?;
        db.migrate().await?;
        let audit = AuditSink::spawn(db.clone());
        let runtime = Self::runtime(&config, Some(db.clone()), audit.clone())?;
        let config = Arc::new(config);
        let manager = Arc::new(PluginManager::new(
            Arc::new(runtime),
            Arc::new(Registry::new()),
            config.clone(),
            Some(db.clone()),
        ));
        Ok(App {
            config,
            db,
            audit,
            manager,
        })
    }

    /// A runtime with the given services (no database: offline tools).
    pub fn runtime(
        config: &Config,
        db: Option<Db>,
        audit: AuditSink,
    ) -> Result<Runtime, LoadError> {
        let services = HostServices {
            db,
            audit,
            rt: tokio::runtime::Handle::current(),
        };
        Runtime::new(config.runtime.clone(), services)
    }

    /// Flushes pending audit records and closes the pool.
    pub async fn shutdown(self) {
        self.audit.flush().await;
        self.db.close().await;
    }
}
