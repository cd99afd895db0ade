//! A single SQLite host for the release tests (`tests/releases.rs`,
//! `tests/release_layers.rs`, `tests/release_pins.rs`): `strata serve` in process with an
//! operator, an admin and a reader key, and the calls those tests make.

use super::publish;
use super::server::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use strata::db::Role;

pub struct ReleaseHost {
    pub server: TestServer,
    pub db: strata::db::Db,
    pub operator: String,
    pub admin: String,
    pub admin_id: String,
    pub reader: String,
    pub tmp: tempfile::TempDir,
}

impl ReleaseHost {
    /// A host with no grant.
    pub async fn start() -> ReleaseHost {
        Self::start_with(|_| String::new()).await
    }

    /// A host whose configuration ends with `extra(tmp)` (TOML: grants, MCP servers,
    /// pipelines; `tmp` is the host's temporary directory).
    pub async fn start_with(extra: impl FnOnce(&std::path::Path) -> String) -> ReleaseHost {
        let tmp = tempfile::tempdir().unwrap();
        let url = super::sqlite_url(tmp.path());
        let plugins = tmp.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let text = format!(
            "{}pool_instances = 16\n[server]\nbind = \"127.0.0.1:0\"\n{}\n",
            super::host_toml(&url, &plugins, &tmp.path().join("cache")),
            extra(tmp.path())
        );
        let config: strata::config::Config = toml::from_str(&text).unwrap();
        let server = TestServer::start(config).await;
        let db = super::migrated_db(&url).await;
        let key = |role| {
            let db = db.clone();
            async move {
                strata::server::auth::create_key(&db, &format!("{role:?}"), role)
                    .await
                    .unwrap()
            }
        };
        let (admin_rec, admin) = key(Role::Admin).await;
        ReleaseHost {
            server,
            operator: key(Role::Operator).await.1,
            admin,
            admin_id: admin_rec.id,
            reader: key(Role::Reader).await.1,
            db,
            tmp,
        }
    }

    /// Publishes `manifest` and `wasm` (no other file) as `name` with `key`.
    pub async fn publish(
        &self,
        key: &str,
        name: &str,
        manifest: &str,
        wasm: Vec<u8>,
    ) -> (StatusCode, String, Value) {
        self.publish_form(key, name, publish::form(manifest, wasm, &[]))
            .await
    }

    /// Publishes a prepared body as `name` with `key`.
    pub async fn publish_form(
        &self,
        key: &str,
        name: &str,
        form: reqwest::multipart::Form,
    ) -> (StatusCode, String, Value) {
        publish::publish(&self.server.url(""), key, name, form).await
    }

    /// A call with `key`; a POST carries a review note.
    pub async fn call(&self, method: Method, path: &str, key: &str) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new()
            .request(method.clone(), self.server.url(path))
            .bearer_auth(key);
        if method == Method::POST {
            req = req.json(&serde_json::json!({ "note": "reviewed the state scope" }));
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` with the reader key: status, content type, JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, String, Value) {
        let res = reqwest::Client::new()
            .get(self.server.url(path))
            .bearer_auth(&self.reader)
            .send()
            .await
            .unwrap();
        publish::answer(res).await
    }

    /// Approves `name@version` with the admin key; the answer must be 200.
    pub async fn approve(&self, name: &str, version: &str) -> Value {
        let (status, v) = self
            .call(
                Method::POST,
                &format!("/api/v1/plugins/{name}/versions/{version}/approve"),
                &self.admin,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "approve {name}@{version}: {v}");
        v
    }

    /// `PUT /api/v1/plugins/{name}/release` with the operator key.
    pub async fn release(&self, name: &str, version: &str) -> (StatusCode, Value) {
        let res = reqwest::Client::new()
            .put(self.server.url(&format!("/api/v1/plugins/{name}/release")))
            .bearer_auth(&self.operator)
            .json(&serde_json::json!({ "version": version }))
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}
