#![allow(dead_code)] // included by several test crates, each using a part

//! The host of the pipeline tests (`tests/pipelines.rs`, which includes this file next to
//! `common` and `support`): the nine layers in three containers (pricing replaceable),
//! BANT and the testing layers installed; the golden and probe pipelines, the booking
//! webhook and the layers' grants configured; Strata's MCP server as `crm`. Built into a
//! running [`App`] ([`setup`]) or only prepared ([`prepare`], e.g. for an HTTP server).

use crate::common::{host_toml, install, migrated_db};
use crate::support;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use strata::app::App;
use strata::config::Config;
use strata::db::Backend;
use tempfile::TempDir;

/// A realistic hot B2B lead (BANT: budget, authority, need, timeline all strong).
pub fn golden_lead(email: &str) -> Value {
    json!({
        "name": "  ada   LOVELACE ",
        "email": email,
        "company": "Analytical Engines Ltd",
        "title": "VP of Engineering",
        "industry": "Software",
        "employees": "250",
        "annual_revenue": "$12M",
        "budget": "$80,000",
        "timeline": "immediate",
        "source": "Referral",
        "country": "GB",
        "now_ms": 1_795_000_000_000i64
    })
}

pub const LAYERS: [&str; 9] = [
    "intake",
    "enrichment",
    "qualification",
    "booking",
    "proposal",
    "kickoff",
    "pricing",
    "invoicing",
    "forecast",
];

const GOLDEN: &str = r#"
[pipelines.golden]
start_topic = "lead.received"
layers = [
    { layer = "intake",        container = "sales",      topics = ["lead.received"] },
    { layer = "enrichment",    container = "sales",      topics = ["lead.accepted"] },
    { layer = "qualification", container = "sales",      topics = ["lead.enriched"] },
    { layer = "booking",       container = "operations", topics = ["lead.qualified", "booking.received"] },
    { layer = "proposal",      container = "operations", topics = ["meeting.booked"] },
    { layer = "kickoff",       container = "operations", topics = ["deal.approved"] },
    { layer = "PRICING",       container = "finance",    topics = ["proposal.drafted"] },
    { layer = "invoicing",     container = "finance",    topics = ["deal.approved"] },
    { layer = "forecast",      container = "finance",    topics = ["proposal.drafted", "invoice.issued"] },
]
[pipelines.probe]
start_topic = "probe.start"
layers = [ { layer = "events-probe", container = "sales", topics = ["probe.start"] } ]
[webhooks.booking]
pipeline = "golden"
layer = "booking"
topic = "booking.received"
secret_env = "STRATA_TEST_WEBHOOK_SECRET"
tolerance_secs = 300
max_body_bytes = 4096
"#;

const GRANTS: &str = r#"
[grants.bant]
capabilities = []
[grants.intake]
limits = { deadline_ms = 10000 }
capabilities = ["mcp"]
mcp = { tools = ["crm/upsert_lead", "crm/update_lead"] }
[grants.enrichment]
limits = { deadline_ms = 10000 }
capabilities = ["mcp"]
mcp = { tools = ["crm/get_company"] }
[grants.qualification]
limits = { deadline_ms = 10000 }
capabilities = ["mcp", "scoring"]
mcp = { tools = ["crm/update_lead"] }
scoring = { strategies = ["bant"] }
[grants.booking]
limits = { deadline_ms = 10000 }
capabilities = ["state"]
[grants.proposal]
limits = { deadline_ms = 60000 }
capabilities = ["mcp", "llm"]
mcp = { tools = ["crm/get_lead"] }
llm = { models = [] }
[grants.kickoff]
limits = { deadline_ms = 10000 }
capabilities = ["state"]
[grants.pricing]
limits = { deadline_ms = 10000 }
capabilities = []
[grants.fail-layer]
capabilities = []
[grants.invoicing]
limits = { deadline_ms = 10000 }
capabilities = ["state"]
[grants.forecast]
limits = { deadline_ms = 10000 }
capabilities = ["state"]
[grants.events-probe]
capabilities = ["events"]
events = { publish = ["probe.*"], read = ["probe.*"] }
"#;

/// How the host reaches Strata's own MCP server (`crm`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crm {
    /// The `strata` binary as a stdio child on the same database.
    Stdio,
    /// `transport = "builtin"`: in the host process, on the host's database.
    Builtin,
}

/// `[mcp.servers.crm]` for `crm` on the database at `url`.
fn crm_section(crm: Crm, url: &str) -> String {
    let side_effects = r#"side_effect_tools = ["update_*", "upsert_*", "qualify_*"]"#;
    match crm {
        Crm::Stdio => format!(
            r#"[mcp.servers.crm]
transport = "stdio"
command = "{strata}"
args = ["mcp", "serve", "--transport", "stdio"]
env = {{ STRATA_DATABASE__URL = "{url}", STRATA_LOG = "warn" }}
{side_effects}"#,
            strata = env!("CARGO_BIN_EXE_strata"),
        ),
        Crm::Builtin => format!("[mcp.servers.crm]\ntransport = \"builtin\"\n{side_effects}"),
    }
}

/// The host configuration of these tests: the plugins in `plugins`, Strata's MCP server
/// as `crm` over the same database, the golden and probe pipelines, the booking webhook.
fn config_text(url: &str, plugins: &Path, cache: &Path, pricing_as: &str, crm: Crm) -> String {
    format!(
        "{host}pool_instances = 64\n{crm}\n{golden}\n{GRANTS}\n",
        host = host_toml(url, plugins, cache),
        golden = GOLDEN.replace("PRICING", pricing_as),
        crm = crm_section(crm, url),
    )
}

/// Installs BANT, the nine layers and the testing layers into `plugins`.
pub fn install_all(plugins: &Path) {
    std::fs::create_dir_all(plugins).unwrap();
    install(plugins, "bant", "bant");
    for l in LAYERS {
        install(plugins, &format!("layers/{l}"), l);
    }
    install(plugins, "testing/fail-layer", "fail-layer");
    install(plugins, "testing/events-probe", "events-probe");
}

/// A host's plugins directory, database (not migrated yet) and configuration, before it
/// starts.
pub struct Prepared {
    pub config: Config,
    pub url: String,
    pub plugins: PathBuf,
    /// What keeps the plugins directory, and a SQLite database, alive.
    pub tmp: TempDir,
    pub guard: Option<TempDir>,
}

/// The plugins (pricing replaced by `pricing_as`, `tweak` applied to the installed
/// plugins), a fresh database on `backend` and the configuration with `crm` as the MCP
/// transport.
pub async fn prepare(
    backend: Backend,
    pricing_as: &str,
    crm: Crm,
    tweak: impl FnOnce(&Path),
) -> Prepared {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    install_all(&plugins);
    tweak(&plugins);
    let (url, guard) = support::fresh_url(backend).await;
    let text = config_text(&url, &plugins, &tmp.path().join("cache"), pricing_as, crm);
    let config: Config = toml::from_str(&text).expect("test config");
    config.validate().expect("valid config");
    Prepared {
        config,
        url,
        plugins,
        tmp,
        guard,
    }
}

pub struct Setup {
    pub app: App,
    pub url: String,
    pub plugins: PathBuf,
    _tmp: TempDir,
    _guard: Option<TempDir>,
}

/// A host on `backend` with the nine layers (pricing replaced by `pricing_as`), BANT,
/// the testing layers, and Strata's MCP server as `crm` in process (as shipped).
pub async fn setup(backend: Backend, pricing_as: &str) -> Setup {
    setup_with(backend, pricing_as, Crm::Builtin, |_| {}).await
}

/// [`setup`] with `crm` as the MCP transport and `tweak` applied to the installed
/// plugins before they are loaded.
pub async fn setup_with(
    backend: Backend,
    pricing_as: &str,
    crm: Crm,
    tweak: impl FnOnce(&Path),
) -> Setup {
    start(prepare(backend, pricing_as, crm, tweak).await).await
}

/// The host of a prepared setup, migrated, started and its plugins loaded.
pub async fn start(p: Prepared) -> Setup {
    let db = migrated_db(&p.url).await;
    let app = App::with_db(p.config, db).unwrap();
    let report = app.manager.load_all().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    Setup {
        app,
        url: p.url,
        plugins: p.plugins,
        _tmp: p.tmp,
        _guard: p.guard,
    }
}

impl Setup {
    pub async fn run(
        &self,
        pipeline: &str,
        payload: Value,
        dry_run: bool,
    ) -> strata::pipelines::RunSummary {
        let created = self
            .app
            .pipelines
            .create_run(pipeline, payload, dry_run, Some("rid-pipe".into()), false)
            .await
            .unwrap();
        self.app
            .pipelines
            .execute(&created.run.id, Some("rid-pipe".into()))
            .await
            .unwrap()
    }

    pub async fn close(self) {
        self.app.mcp.shutdown().await;
        self.app.db.close().await;
        if self.url.starts_with("postgres") {
            support::pg::drop_database(&self.url).await;
        }
    }
}
