//! A Strata HTTP server for one test with an admin, an operator and a reader key: the
//! test host's plugins directory (BANT and `stateful` installed) and database, served over
//! real HTTP until [`Server::stop`].

use super::*;
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};
use strata::db::Role;

pub struct Server {
    pub base: String,
    pub admin: String,
    pub operator: String,
    pub reader: String,
    pub http: Client,
    pub host: TestHost,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    pub async fn start(
        url: &str,
        grants: &str,
        tweak: impl FnOnce(&mut strata::config::Config),
    ) -> Server {
        Self::start_from(url, grants, tweak, None).await
    }

    /// Like [`Server::start`]; with `config_file`, the configuration is written there and
    /// the server reads it again on a reload.
    pub async fn start_from(
        url: &str,
        grants: &str,
        tweak: impl FnOnce(&mut strata::config::Config),
        config_file: Option<std::path::PathBuf>,
    ) -> Server {
        Self::start_full(url, grants, &[], tweak, config_file).await
    }

    /// Like [`Server::start`], with more plugins installed: (source under `plugins/`,
    /// directory name).
    pub async fn start_with_plugins(
        url: &str,
        grants: &str,
        plugins: &[(&str, &str)],
        tweak: impl FnOnce(&mut strata::config::Config),
    ) -> Server {
        Self::start_full(url, grants, plugins, tweak, None).await
    }

    async fn start_full(
        url: &str,
        grants: &str,
        plugins: &[(&str, &str)],
        tweak: impl FnOnce(&mut strata::config::Config),
        config_file: Option<std::path::PathBuf>,
    ) -> Server {
        // Reuse the test host's plugins dir and database; the server builds its own runtime.
        let host = host(url, grants).await;
        install(&host.plugins_dir, "bant", "bant");
        install(&host.plugins_dir, "testing/stateful", "stateful");
        for (src, dest) in plugins {
            install(&host.plugins_dir, src, dest);
        }
        let mut config = strata::config::Config::default();
        config.database.url = url.to_string();
        config.plugins.dir = host.plugins_dir.clone();
        config.runtime.cache_dir = Some(host.tmp.path().join("cache"));
        config.runtime.pool_instances = 32;
        config.server.bind = "127.0.0.1:0".into();
        config.server.rate_limit_per_second = 100_000;
        config.server.rate_limit_burst = 100_000;
        let g: strata::config::Config = toml::from_str(grants).unwrap();
        config.grants = g.grants;
        tweak(&mut config);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let source = match config_file {
            Some(path) => {
                std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
                strata::server::ConfigSource::Cli(Some(path))
            }
            None => strata::server::ConfigSource::Fixed,
        };
        let task = tokio::spawn(strata::server::serve_with(
            config,
            source,
            Some(ready_tx),
            async move {
                let _ = stop_rx.await;
            },
        ));
        let addr = tokio::time::timeout(Duration::from_secs(60), ready_rx)
            .await
            .expect("server ready")
            .unwrap();
        let key = |role| {
            let db = host.db.clone();
            async move {
                strata::server::auth::create_key(&db, &format!("{role:?}"), role)
                    .await
                    .unwrap()
                    .1
            }
        };
        Server {
            base: format!("http://{addr}"),
            admin: key(Role::Admin).await,
            operator: key(Role::Operator).await,
            reader: key(Role::Reader).await,
            http: Client::new(),
            host,
            stop: Some(stop_tx),
            task,
        }
    }

    pub fn req(&self, method: Method, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.req(method, path, Some(key));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}

pub async fn wait_until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
