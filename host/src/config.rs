//! Operator configuration: `config/strata.toml` plus `STRATA_…` environment overrides
//! (nested keys joined by `__`, e.g. `STRATA_DATABASE__URL`; a `STRATA_` name without
//! `__` is never an override, so secrets may be named `STRATA_…_SECRET`). `DATABASE_URL` also sets the
//! database. Unknown keys are errors that name the key.

use crate::capabilities::Grant;
pub use crate::runtime::settings::{RuntimeSettings, EPOCH_TICK_MS};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseSettings,
    pub plugins: PluginSettings,
    pub runtime: RuntimeSettings,
    pub server: ServerSettings,
    /// `[llm]`: providers, model aliases, fallbacks, prices.
    pub llm: crate::llm::LlmSettings,
    /// `[mcp]`: the MCP servers plugins may be granted.
    pub mcp: crate::mcp::McpSettings,
    /// `[qualify]`: how qualification jobs run the agent.
    pub qualify: crate::qualify::QualifySettings,
    /// `[pipeline]`: how pipeline runs execute (dry-run, attempts, loop guard).
    pub pipeline: crate::pipelines::RunSettings,
    /// `[pipelines.<name>]`: layers, their containers and topic subscriptions.
    pub pipelines: BTreeMap<String, crate::pipelines::PipelineDef>,
    /// `[webhooks.<name>]`: signed inbound deliveries routed to a layer.
    pub webhooks: BTreeMap<String, crate::pipelines::WebhookDef>,
    /// `[grants.<plugin name>]`: what the operator allows each plugin. Deny by default.
    pub grants: BTreeMap<String, Grant>,
    /// `[release]`: plugins published through the API (`POST /api/v1/plugins/{name}/versions`).
    pub release: ReleaseSettings,
    /// `[challenger]`: shadow and canary challengers of a strategy, and which lead
    /// outcomes count as positive in their comparison.
    pub challenger: crate::challenger::ChallengerSettings,
    /// `[console]`: the browser console at `/console` (sessions).
    pub console: ConsoleSettings,
}

/// When a published version needs an admin's approval before it may be released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequireApproval {
    /// When its capability surface differs from the version it is compared with.
    #[default]
    Changes,
    /// Every version.
    Always,
    /// None (a single-operator host, development).
    Never,
}

/// `[release]`: publishing plugins through the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleaseSettings {
    /// Largest component a publish accepts (bytes); the request body may be this plus
    /// 1 MiB (the manifest and the multipart framing).
    pub max_artifact_bytes: u64,
    /// `changes` (default), `always` or `never`.
    pub require_approval: RequireApproval,
    /// How often a replica reads the release state besides being woken by PostgreSQL
    /// NOTIFY (the correctness fallback: a missed notification delays by at most this).
    pub poll_ms: u64,
    /// This replica's directory for released plugins (default: `released` beside
    /// `runtime.cache_dir`, else `var/released`). Each replica needs its own.
    pub dir: Option<std::path::PathBuf>,
}

impl Default for ReleaseSettings {
    fn default() -> Self {
        Self {
            max_artifact_bytes: 32 << 20,
            require_approval: RequireApproval::Changes,
            poll_ms: 1000,
            dir: None,
        }
    }
}

impl ReleaseSettings {
    /// The body limit of a publish request.
    pub fn max_publish_body_bytes(&self) -> usize {
        usize::try_from(self.max_artifact_bytes.saturating_add(1 << 20)).unwrap_or(usize::MAX)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://var/strata.db` (default) or `postgres://user@host/db`.
    pub url: String,
    pub max_connections: u32,
    /// How long a request waits for a database connection before it fails (503): short,
    /// so an outage fails requests fast instead of holding them.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://var/strata.db".into(),
            max_connections: 8,
            acquire_timeout_ms: 2_000,
        }
    }
}

impl DatabaseSettings {
    /// The pool options these settings give.
    pub fn db_options(&self) -> crate::db::DbOptions {
        crate::db::DbOptions {
            max_connections: self.max_connections,
            acquire_timeout: std::time::Duration::from_millis(self.acquire_timeout_ms.max(1)),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// Directory whose subdirectories (each with a `plugin.toml`) are the plugins.
    pub dir: PathBuf,
    /// More directories of the same shape (e.g. `plugins/layers`), loaded and watched too.
    pub extra_dirs: Vec<PathBuf>,
    /// Watch the plugin directories and hot-reload on change.
    pub watch: bool,
    /// Quiet time before a burst of file events is acted on.
    pub debounce_ms: u64,
    /// After a burst, the plugin directory must stay unchanged (by `stat`: names, sizes,
    /// times) this long before its files are read, so a manifest and its component
    /// written one after the other are read together.
    pub settle_ms: u64,
    /// Largest component read (bytes); a larger `plugin.wasm` is rejected unread.
    pub max_component_bytes: u64,
    /// Versions kept per plugin for rollback (the live one included).
    pub keep_versions: usize,
    /// Strategy used when a request names none.
    pub default_scorer: String,
}

impl PluginSettings {
    /// `dir` and then `extra_dirs`.
    pub fn roots(&self) -> Vec<PathBuf> {
        std::iter::once(self.dir.clone())
            .chain(self.extra_dirs.iter().cloned())
            .collect()
    }
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("plugins"),
            extra_dirs: Vec::new(),
            watch: true,
            debounce_ms: 150,
            settle_ms: 250,
            max_component_bytes: 32 << 20,
            keep_versions: 5,
            default_scorer: "bant".into(),
        }
    }
}

/// `[server]`: the HTTP service (`strata serve`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub bind: String,
    /// `/health` and `/ready` without an API key.
    pub public_health: bool,
    /// `/metrics` without an API key.
    pub public_metrics: bool,
    /// Origins allowed by CORS; none by default.
    pub cors_origins: Vec<String>,
    pub body_limit_bytes: usize,
    /// Deepest nesting of arrays/objects accepted in a JSON body.
    pub json_depth_limit: usize,
    pub request_timeout_ms: u64,
    /// Sustained requests per second per API key (or per client IP without a key).
    pub rate_limit_per_second: u64,
    /// Burst allowance on top of the sustained rate.
    pub rate_limit_burst: u32,
    /// Job workers per process.
    pub workers: usize,
    /// Lease of a claimed job; a job whose claimer died is reclaimed after it.
    pub job_lease_ms: i64,
    pub job_max_attempts: i32,
    /// How long a verified API key lookup is trusted before the database is asked again:
    /// the longest a key revoked on another replica keeps working on non-admin routes.
    /// Admin routes always ask the database.
    pub key_cache_ms: u64,
    /// CPU-time budget of a scorer call run inline on the async worker (pure plugins; see
    /// `runtime::lane`); a version whose calls overrun it three times moves to the blocking
    /// pool.
    /// 0 sends every call to the blocking pool.
    pub inline_budget_us: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8003".into(),
            public_health: true,
            public_metrics: true,
            cors_origins: Vec::new(),
            body_limit_bytes: 2 << 20,
            json_depth_limit: 32,
            request_timeout_ms: 30_000,
            rate_limit_per_second: 2000,
            rate_limit_burst: 4000,
            workers: 2,
            job_lease_ms: 30_000,
            job_max_attempts: 3,
            key_cache_ms: 5_000,
            inline_budget_us: 1000,
        }
    }
}

/// When the console's session cookie carries `Secure` (sent over HTTPS only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookie {
    /// When the sign-in request came over HTTPS: `X-Forwarded-Proto: https` from the
    /// TLS-terminating proxy in front of `strata serve` (which speaks plain HTTP).
    #[default]
    Auto,
    /// Always (the console is only ever reached over HTTPS).
    Always,
    /// Never (plain HTTP on a trusted network, development).
    Never,
}

/// `[console]`: the operator and reviewer console in the browser (`/console`). It lives
/// here, not with the console's code in `server::console`, for the reason
/// [`ServerSettings`] does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// Serve the console (`/console`, and `/` redirecting there).
    pub enabled: bool,
    /// How long a session lasts after sign-in, in seconds.
    pub session_ttl_secs: u64,
    /// `auto`, `always` or `never`: when the session cookie is `Secure`.
    pub secure_cookie: SecureCookie,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl_secs: 8 * 3600,
            secure_cookie: SecureCookie::Auto,
        }
    }
}

/// The configuration file read when no `--config` is given (relative to the current
/// directory; a missing one means defaults).
pub const DEFAULT_FILE: &str = "config/strata.toml";

/// A configuration that cannot be used; the message names the file and key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads `path` (if it exists; a missing default file is fine) and the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::new();
        match path {
            Some(p) if !p.exists() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    p.display()
                )));
            }
            Some(p) => fig = fig.merge(Toml::file(p)),
            None => {
                let default = Path::new(DEFAULT_FILE);
                if default.exists() {
                    fig = fig.merge(Toml::file(default));
                }
            }
        }
        // Only nested names are overrides (`STRATA_SECTION__KEY`): a secret variable such
        // as `STRATA_WEBHOOK_BOOKING_SECRET` (named by a `*_env` key) is not config.
        fig = fig.merge(
            Env::prefixed("STRATA_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        if let Ok(url) = std::env::var("DATABASE_URL") {
            fig = fig.merge(("database.url", url));
        }
        let cfg: Config = fig.extract().map_err(|e| ConfigError(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.challenger.validate().map_err(ConfigError)?;
        if self.console.session_ttl_secs == 0 || self.console.session_ttl_secs > 30 * 86_400 {
            return Err(ConfigError(format!(
                "console.session_ttl_secs = {} must be 1..=2592000 (30 days)",
                self.console.session_ttl_secs
            )));
        }
        if self.plugins.max_component_bytes == 0 {
            return Err(ConfigError(
                "plugins.max_component_bytes must be at least 1".into(),
            ));
        }
        let r = &self.runtime;
        if r.pool_instances == 0 {
            return Err(ConfigError(
                "runtime.pool_instances must be at least 1".into(),
            ));
        }
        if r.default_memory_mb == 0 || r.default_memory_mb > r.pool_max_memory_mb {
            return Err(ConfigError(format!(
                "runtime.default_memory_mb = {} must be 1..=runtime.pool_max_memory_mb ({})",
                r.default_memory_mb, r.pool_max_memory_mb
            )));
        }
        let sv = &self.server;
        if sv.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError(format!(
                "server.bind {:?} is not an address such as 127.0.0.1:8003",
                sv.bind
            )));
        }
        if sv.rate_limit_per_second == 0 || sv.rate_limit_burst == 0 {
            return Err(ConfigError(
                "server.rate_limit_per_second and server.rate_limit_burst must be at least 1"
                    .into(),
            ));
        }
        if sv.workers == 0 || sv.job_lease_ms < 1000 || sv.job_max_attempts < 1 {
            return Err(ConfigError(
                "server.workers >= 1, server.job_lease_ms >= 1000 and server.job_max_attempts >= 1 are required".into(),
            ));
        }
        if self.release.poll_ms == 0 {
            return Err(ConfigError("release.poll_ms must be at least 1".into()));
        }
        if self.release.max_artifact_bytes == 0 {
            return Err(ConfigError(
                "release.max_artifact_bytes must be at least 1".into(),
            ));
        }
        if self.plugins.keep_versions == 0 {
            return Err(ConfigError(
                "plugins.keep_versions must be at least 1".into(),
            ));
        }
        if !r.fuel_metering {
            if let Some((name, _)) = self.grants.iter().find(|(_, g)| g.limits.fuel.is_some()) {
                return Err(ConfigError(format!(
                    "grants.{name}.limits.fuel needs runtime.fuel_metering = true (fuel is not counted otherwise)"
                )));
            }
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres"))
        {
            return Err(ConfigError(format!(
                "database.url must start with sqlite:// or postgres://, got {:?}",
                crate::db::redact_url(&self.database.url)
            )));
        }
        self.llm.validate().map_err(ConfigError)?;
        self.mcp.validate().map_err(ConfigError)?;
        crate::pipelines::settings::validate(&self.pipeline, &self.pipelines, &self.webhooks)
            .map_err(ConfigError)?;
        for (name, g) in &self.grants {
            for glob in g.events.publish.iter().chain(&g.events.read) {
                glob::Pattern::new(glob).map_err(|e| {
                    ConfigError(format!(
                        "grants.{name}.events: bad topic pattern {glob:?}: {e}"
                    ))
                })?;
            }
        }
        for (name, g) in &self.grants {
            if let Some(alias) = g
                .llm
                .models
                .iter()
                .find(|m| !self.llm.models.contains_key(*m))
            {
                return Err(ConfigError(format!(
                    "grants.{name}.llm.models names {alias:?}, which is not an alias under [llm.models]"
                )));
            }
        }
        Ok(())
    }

    /// The operator's grant for a plugin name, if any.
    /// The environment variables holding secrets, as the `*_env` keys name them (LLM API
    /// keys, MCP auth headers, webhook secrets): what [`crate::secrets::Secrets`] redacts.
    pub fn secret_env_vars(&self) -> Vec<String> {
        self.llm
            .providers
            .values()
            .filter_map(|p| p.api_key_env.clone())
            .chain(
                self.mcp
                    .servers
                    .values()
                    .flat_map(|s| s.auth_header_env.iter().chain(s.env_from.values()).cloned()),
            )
            .chain(self.webhooks.values().map(|w| w.secret_env.clone()))
            .collect()
    }

    /// How long a `running` agent execution of no job may be before it is surely
    /// orphaned: twice the longest deadline configured (runtime default, grants), and at
    /// least ten minutes.
    pub fn stale_execution_after_ms(&self) -> u64 {
        let longest = self
            .grants
            .values()
            .filter_map(|g| g.limits.deadline_ms)
            .chain([self.runtime.default_deadline_ms])
            .max()
            .unwrap_or_default();
        longest.saturating_mul(2).max(600_000)
    }

    /// Where this replica keeps the plugins it serves from the release state.
    pub fn release_dir(&self) -> std::path::PathBuf {
        self.release
            .dir
            .clone()
            .unwrap_or_else(|| match &self.runtime.cache_dir {
                // Beside the cache, not in it: the cache owns every file it holds.
                Some(c) => c.with_file_name("released"),
                None => std::path::PathBuf::from("var/released"),
            })
    }

    pub fn grant(&self, plugin: &str) -> Option<&Grant> {
        self.grants.get(plugin)
    }

    /// The scorer a scoring request uses: the one it names, else `plugins.default_scorer`.
    pub fn scoring_strategy(&self, asked: Option<&str>) -> String {
        asked.unwrap_or(&self.plugins.default_scorer).to_string()
    }

    /// The plugin a qualification uses: the one it names, else `qualify.agent`, else
    /// `plugins.default_scorer`.
    pub fn qualify_strategy(&self, asked: Option<&str>) -> String {
        asked
            .or(self.qualify.agent.as_deref())
            .unwrap_or(&self.plugins.default_scorer)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_picks_the_strategy_a_request_names_none_of() {
        let mut c = Config::default();
        assert_eq!(c.scoring_strategy(None), "bant");
        assert_eq!(c.scoring_strategy(Some("x")), "x");
        assert_eq!(c.qualify_strategy(None), "bant");
        c.qualify.agent = Some("qualify-agent".into());
        assert_eq!(c.qualify_strategy(None), "qualify-agent");
        assert_eq!(c.qualify_strategy(Some("x")), "x");
        assert_eq!(c.scoring_strategy(None), "bant");
    }

    #[test]
    fn secrets_are_read_from_the_variables_every_env_key_names() {
        let config: Config = toml::from_str(
            r#"
[llm.providers.p]
kind = "openai"
base_url = "http://127.0.0.1:1"
api_key_env = "K_LLM"
[mcp.servers.m]
transport = "http"
url = "http://127.0.0.1:2/mcp"
auth_header_env = "K_MCP"
[webhooks.w]
pipeline = "x"
layer = "l"
topic = "t"
secret_env = "K_HOOK"
"#,
        )
        .unwrap();
        let s = crate::secrets::Secrets::from_env_vars(config.secret_env_vars(), |v| {
            Some(format!("value-of-{v}"))
        });
        let text = "value-of-K_LLM value-of-K_MCP value-of-K_HOOK";
        assert_eq!(s.redact(text), "[redacted] [redacted] [redacted]");
    }
}
