//! Commands that act on a running `strata serve` through its HTTP API.

use anyhow::{bail, Context};

/// Where the server is and the key to use.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Base URL of a running `strata serve`.
    #[arg(long, env = "STRATA_SERVER", default_value = "http://127.0.0.1:8003")]
    pub server: String,
    /// API key (operator role for changes, reader to list); read from STRATA_API_KEY
    /// when not given.
    #[arg(long, env = "STRATA_API_KEY", hide_env_values = true)]
    pub key: String,
}

impl ServerArgs {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.trim_end_matches('/'))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let req = reqwest::Client::new().get(self.url(path));
        self.send(req).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let req = reqwest::Client::new().post(self.url(path)).json(body);
        self.send(req).await
    }

    pub async fn put(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let req = reqwest::Client::new().put(self.url(path)).json(body);
        self.send(req).await
    }

    /// POSTs a `multipart/form-data` body.
    pub async fn post_multipart(
        &self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> anyhow::Result<serde_json::Value> {
        let req = reqwest::Client::new().post(self.url(path)).multipart(form);
        self.send(req).await
    }

    /// Sends with the key; a problem+json answer becomes its `detail` as the error.
    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
        let res = req
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.server))?;
        let status = res.status();
        let body: serde_json::Value = res.json().await.with_context(|| {
            format!(
                "the server at {} answered {status} without JSON",
                self.server
            )
        })?;
        if !status.is_success() {
            bail!(
                "{status}: {}",
                body["detail"]
                    .as_str()
                    .or(body["title"].as_str())
                    .unwrap_or("no detail")
            );
        }
        Ok(body)
    }
}
