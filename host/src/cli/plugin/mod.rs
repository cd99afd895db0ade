//! `strata plugin new|build|inspect|test`; the commands that act on a running server
//! (versions, rollback, pin, publish, review, promote, status) are in [`remote`].

mod python;
mod remote;

use crate::audit::AuditSink;
use crate::capabilities::{grants, Capability};
use crate::config::Config;
use crate::manifest::{Manifest, PluginKind, MANIFEST_FILE};
use crate::runtime::prepare::sha256_hex;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// Scaffold a plugin crate that builds and loads.
    New {
        name: String,
        #[arg(long, value_enum, default_value = "scorer")]
        kind: KindArg,
        /// Language of the new plugin: a Rust crate, or a Python scorer (written with its
        /// SDK and the WIT into the new directory; needs only `strata` and componentize-py).
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// Parent directory of the new crate.
        #[arg(long, default_value = "plugins")]
        dir: PathBuf,
        /// The guest SDK crate (default: plugins/sdk).
        #[arg(long, default_value = "plugins/sdk")]
        sdk: PathBuf,
    },
    /// Build plugin crates (a crate or a workspace) to components next to their plugin.toml;
    /// a directory with app.py is a Python scorer, built with componentize-py.
    Build {
        #[arg(default_value = "plugins")]
        path: PathBuf,
    },
    /// Show a plugin's world, imports, exports, declared vs granted capabilities, limits.
    /// Exits 1 when the plugin would not load.
    Inspect {
        /// The plugin directory (or its plugin.toml).
        path: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a plugin's smoke tests (from its manifest).
    Test {
        /// The plugin directory (or its plugin.toml).
        path: PathBuf,
    },
    /// List a plugin's versions on a running server: those it keeps (live, available),
    /// every recorded load attempt, and the versions published to the fleet with their
    /// review status and which one is released.
    Versions {
        name: String,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Roll a served plugin back (and pin it there) on a running server.
    Rollback {
        name: String,
        /// The kept version to go back to (default: the newest older than the live one).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
    },
    /// Pin a served plugin's live version (or a kept one) on a running server: new
    /// versions from its directory are kept as available until `unpin`.
    Pin {
        name: String,
        /// The kept version to make live and pin (default: the live one).
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
    },
    /// Unpin a served plugin on a running server: the newest version its directory
    /// delivered goes live.
    Unpin {
        name: String,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
    },
    /// Publish a plugin directory (its plugin.toml, component and a layer's schema files)
    /// to a running server (operator key). The server checks it as a local load would and
    /// stores it; it waits for an admin's approval when its capability surface changed.
    /// Exits 1 when refused.
    Publish {
        /// The plugin directory (or its plugin.toml).
        dir: PathBuf,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Show the capability surface diff of a published version: `NAME V1 V2` compares V1
    /// with V2; `NAME V` shows what V changed when it was published.
    Diff {
        name: String,
        v1: String,
        v2: Option<String>,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Approve a published version (admin key): it may be released.
    Approve {
        name: String,
        version: String,
        /// Why, for the record.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
    },
    /// Release an approved published version on every replica (operator key): promote,
    /// or roll back by naming an older version.
    Promote {
        name: String,
        version: String,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
    },
    /// The released version of a plugin and what each replica serves.
    Status {
        name: String,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Reject a published version (admin key): it is never released.
    Reject {
        name: String,
        version: String,
        /// Why, for the record.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
    },
}

/// The language of a new plugin (`plugin new --lang`).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate against the guest SDK.
    Rust,
    /// A Python scorer (`app.py`), built with componentize-py.
    Python,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    Scorer,
    Layer,
    Agent,
}

pub async fn run(
    cmd: PluginCommand,
    config: impl Fn() -> Result<Config, crate::config::ConfigError>,
) -> anyhow::Result<()> {
    match cmd {
        // Python (python.rs): a scorer only.
        PluginCommand::New {
            name,
            kind,
            lang: Lang::Python,
            dir,
            ..
        } => new_python(&name, kind, &dir),
        PluginCommand::New {
            name,
            kind,
            lang: Lang::Rust,
            dir,
            sdk,
        } => new(&name, kind, &dir, &sdk),
        PluginCommand::Build { path } if python::is_python_plugin(&path) => {
            let (id, out) = python::build(&path)?;
            println!("built {id} → {}", out.display());
            Ok(())
        }
        PluginCommand::Build { path } => build(&path).map(|built| {
            for (name, path) in built {
                println!("built {name} → {}", path.display());
            }
        }),
        PluginCommand::Inspect { path, json } => inspect(&path, json, &config()?).await,
        PluginCommand::Test { path } => test(&path, config()?).await,
        cmd @ (PluginCommand::Versions { .. }
        | PluginCommand::Rollback { .. }
        | PluginCommand::Pin { .. }
        | PluginCommand::Unpin { .. }
        | PluginCommand::Publish { .. }
        | PluginCommand::Diff { .. }
        | PluginCommand::Approve { .. }
        | PluginCommand::Reject { .. }
        | PluginCommand::Promote { .. }
        | PluginCommand::Status { .. }) => remote::run(cmd).await,
    }
}

/// `plugin new --lang python`: see [`python::scaffold`].
fn new_python(name: &str, kind: KindArg, parent: &Path) -> anyhow::Result<()> {
    if !matches!(kind, KindArg::Scorer) {
        bail!("--lang python scaffolds scorers only (--kind scorer)");
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!("plugin name {name:?} must be [a-z0-9-]");
    }
    let dir = python::scaffold(name, parent)?;
    println!(
        "created {} — build it with `strata plugin build {}` (needs componentize-py {})",
        dir.display(),
        dir.display(),
        python::COMPONENTIZE_PY_VERSION
    );
    Ok(())
}

fn new(name: &str, kind: KindArg, parent: &Path, sdk: &Path) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!("plugin name {name:?} must be [a-z0-9-]");
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let sdk = std::fs::canonicalize(sdk)
        .with_context(|| format!("guest SDK not found at {} (pass --sdk)", sdk.display()))?;
    std::fs::create_dir_all(dir.join("src"))?;
    let cargo = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n\
         [dependencies]\nstrata-sdk = {{ path = {sdk:?} }}\n\n# Standalone crate: built by `strata plugin build`.\n[workspace]\n\n\
         [profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\nstrip = true\n",
        sdk = sdk.display().to_string()
    );
    let ty = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<String>();
    let (lib, kind_str) = match kind {
        KindArg::Scorer => (SCORER_TEMPLATE.replace("{Type}", &ty), "scorer"),
        KindArg::Layer => (LAYER_TEMPLATE.replace("{Type}", &ty), "layer"),
        KindArg::Agent => (AGENT_TEMPLATE.replace("{Type}", &ty), "agent"),
    };
    let smoke = if matches!(kind, KindArg::Scorer) {
        "\n[[smoke]]\nname = \"any lead scores in range\"\n[smoke.input]\nid = \"smoke-1\"\nbudget = 50000.0\n\
         [smoke.expect]\nmin_score = 0.0\nmax_score = 100.0\n"
    } else {
        ""
    };
    let manifest = format!(
        "[plugin]\nname = \"{name}\"\nversion = \"0.1.0\"\nkind = \"{kind_str}\"\ndescription = \"TODO: what {name} does\"\n\n\
         [capabilities]\n# state = {{}}\n# crm = {{}}\n\n[limits]\ndeadline_ms = 100\nmemory_mb = 16\n{smoke}"
    );
    std::fs::write(dir.join("Cargo.toml"), cargo)?;
    std::fs::write(dir.join("src/lib.rs"), lib)?;
    std::fs::write(dir.join(MANIFEST_FILE), manifest)?;
    println!(
        "created {} — build it with `strata plugin build {}`",
        dir.display(),
        dir.display()
    );
    Ok(())
}

const SCORER_TEMPLATE: &str = r#"//! A Strata scorer.
use strata_sdk::{export_scorer, Factor, Lead, PluginError, Priority, Score, Scorer};

struct {Type};

impl Scorer for {Type} {
    fn score(lead: Lead) -> Result<Score, PluginError> {
        let budget = lead.budget.unwrap_or(0.0);
        let value = (budget / 1000.0).clamp(0.0, 100.0);
        Ok(Score {
            value,
            priority: Priority::from_score(value),
            recommended_action: "review".into(),
            reasoning: format!("budget {budget}"),
            confidence: if lead.budget.is_some() { 0.8 } else { 0.2 },
            factors: vec![Factor::new("budget", value)],
        })
    }
}

export_scorer!({Type});
"#;

const LAYER_TEMPLATE: &str = r#"//! A Strata layer.
use strata_sdk::{export_layer, Layer, LayerOutcome, PluginError, RunContext};

struct {Type};

impl Layer for {Type} {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        Ok(LayerOutcome { output: ctx.payload, events: vec![] })
    }
}

export_layer!({Type});
"#;

const AGENT_TEMPLATE: &str = r#"//! A Strata agent.
use strata_sdk::{export_agent, Agent, PluginError};

struct {Type};

impl Agent for {Type} {
    fn run(input: String) -> Result<String, PluginError> {
        Ok(input)
    }
}

export_agent!({Type});
"#;

/// Same shadow-stack size as plugins/.cargo/config.toml: a small stack keeps per-call
/// instance teardown cheap.
const WASM_RUSTFLAGS: &str = "-C link-arg=-zstack-size=32768";

/// Builds the crate or workspace at `path`; copies each component next to its manifest.
pub fn build(path: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let path =
        std::fs::canonicalize(path).with_context(|| format!("{} not found", path.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&path)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS", WASM_RUSTFLAGS)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("cargo build failed in {}", path.display());
    }
    let meta = Command::new(&cargo)
        .current_dir(&path)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    if !meta.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&meta.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout)?;
    let target_dir = PathBuf::from(meta["target_directory"].as_str().unwrap_or("target"));
    let mut built = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let manifest_path = PathBuf::from(pkg["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        if !dir.join(MANIFEST_FILE).is_file() {
            continue;
        }
        let Some(lib) = pkg["targets"].as_array().into_iter().flatten().find(|t| {
            t["crate_types"]
                .as_array()
                .is_some_and(|c| c.iter().any(|x| x == "cdylib"))
        }) else {
            continue;
        };
        let lib_name = lib["name"].as_str().unwrap_or_default().replace('-', "_");
        let wasm = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{lib_name}.wasm"));
        let manifest = Manifest::load(&dir)?;
        let dest = dir.join(&manifest.plugin.component);
        // Write then rename, so a watching host never sees a half-written component.
        let tmp = dest.with_extension("wasm.tmp");
        std::fs::copy(&wasm, &tmp).with_context(|| format!("copy {}", wasm.display()))?;
        std::fs::rename(&tmp, &dest)?;
        built.push((manifest.id(), dest));
    }
    if built.is_empty() {
        bail!(
            "no plugin crates (a cdylib with a plugin.toml) under {}",
            path.display()
        );
    }
    Ok(built)
}

fn plugin_files(
    path: &Path,
    max_component_bytes: u64,
) -> anyhow::Result<(PathBuf, Manifest, Vec<u8>)> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let manifest = Manifest::load(&dir)?;
    let wasm = crate::plugins::files::read_plugin_file(
        &dir,
        &manifest.plugin.component,
        max_component_bytes,
    )
    .with_context(|| format!("{} (build it with `strata plugin build`)", manifest.id()))?;
    Ok((dir, manifest, wasm))
}

async fn inspect(path: &Path, json: bool, config: &Config) -> anyhow::Result<()> {
    let (dir, manifest, wasm) = plugin_files(path, config.plugins.max_component_bytes)?;
    let mut cfg = config.clone();
    cfg.runtime.cache_dir = None;
    let runtime = crate::app::App::runtime(&cfg, None, AuditSink::disabled())?;
    let component = wasmtime::component::Component::new(runtime.engine(), &wasm).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a valid component: {}",
            manifest.id(),
            crate::runtime::prepare::compile_error(&wasm, &e)
        )
    })?;
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(runtime.engine())
        .map(|(n, _)| n.to_string())
        .collect();
    let exports: Vec<String> = ty
        .exports(runtime.engine())
        .map(|(n, _)| n.to_string())
        .collect();
    let grant = config.grant(&manifest.plugin.name);
    let effective = grants::effective(&manifest, grant);
    let caps: Vec<serde_json::Value> = Capability::ALL
        .iter()
        .map(|&c| {
            let imported = imports.iter().any(|i| {
                crate::wit::InterfaceName::parse(i).is_some_and(|n| n.is_strata() && n.interface == c.interface())
            });
            serde_json::json!({
                "capability": c.interface(),
                "imported": imported,
                "declared": manifest.capabilities.declares(c),
                "granted": c == Capability::Log || grant.is_some_and(|g| g.capabilities.contains(&c)),
                "effective": effective.has(c),
            })
        })
        .collect();
    let (loadable, limits) =
        match runtime.prepare(manifest.clone(), &wasm, grant, Some(dir.clone())) {
            Ok(p) => (Ok(()), Some(p.limits)),
            Err(e) => (Err(e.to_string()), None),
        };
    let world = match manifest.plugin.kind {
        PluginKind::Scorer => "strata:plugin/scorer",
        PluginKind::Layer => "strata:plugin/layer",
        PluginKind::Agent => "strata:plugin/agent",
    };
    let report = serde_json::json!({
        "plugin": manifest.id(),
        "kind": manifest.plugin.kind,
        "world": world,
        "description": manifest.plugin.description,
        "component": dir.join(&manifest.plugin.component),
        "sha256": sha256_hex(&wasm),
        "size_bytes": wasm.len(),
        "imports": imports,
        "exports": exports,
        "capabilities": caps,
        "scopes": effective,
        "limits": limits,
        "smoke_cases": manifest.smoke.len(),
        "loadable": loadable.is_ok(),
        "load_error": loadable.err(),
    });
    let not_loadable = || {
        anyhow::anyhow!(
            "{} would not load: {}",
            manifest.id(),
            report["load_error"].as_str().unwrap_or("?")
        )
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return match report["loadable"].as_bool() {
            Some(true) => Ok(()),
            _ => Err(not_loadable()),
        };
    }
    println!(
        "{}  ({} · {})",
        report["plugin"].as_str().unwrap_or(""),
        manifest.plugin.kind,
        world
    );
    println!("  {}", manifest.plugin.description);
    println!(
        "  sha256 {}  {} bytes",
        report["sha256"].as_str().unwrap_or(""),
        wasm.len()
    );
    println!("  exports: {}", exports.join(", "));
    println!("  imports:");
    for i in &imports {
        println!("    {i}");
    }
    println!("  capabilities   imported declared granted effective");
    for c in &caps {
        let yn = |k: &str| {
            if c[k].as_bool() == Some(true) {
                "yes"
            } else {
                "-"
            }
        };
        println!(
            "    {:<12} {:<8} {:<8} {:<7} {}",
            c["capability"].as_str().unwrap_or(""),
            yn("imported"),
            yn("declared"),
            yn("granted"),
            yn("effective")
        );
    }
    match (&report["limits"], report["load_error"].as_str()) {
        (l, None) => {
            println!("  limits: {l}\n  loadable: yes");
            Ok(())
        }
        (_, Some(e)) => {
            println!("  loadable: NO — {e}");
            Err(not_loadable())
        }
    }
}

async fn test(path: &Path, mut config: Config) -> anyhow::Result<()> {
    let (dir, manifest, wasm) = plugin_files(path, config.plugins.max_component_bytes)?;
    // A throwaway database so plugins using `state`/`crm` can run their smoke cases.
    let tmp = tempfile::tempdir()?;
    let db = crate::db::Db::connect(
        &format!("sqlite://{}/smoke.db", tmp.path().display()),
        &Default::default(),
    )
    .await?;
    db.migrate().await?;
    config.runtime.cache_dir = None;
    let runtime =
        crate::app::App::runtime(&config, Some(db.clone()), AuditSink::spawn(db.clone()))?;
    let grant = config.grant(&manifest.plugin.name).cloned();
    let cases = manifest.smoke.clone();
    let plugin = tokio::task::spawn_blocking(move || {
        runtime.prepare(manifest, &wasm, grant.as_ref(), Some(dir))
    })
    .await??;
    if cases.is_empty() {
        println!("{}: no smoke cases in plugin.toml", plugin.id());
        return Ok(());
    }
    let plugin = std::sync::Arc::new(plugin);
    let mut failed = 0;
    for case in cases {
        let p = plugin.clone();
        let c = case.clone();
        let r = tokio::task::spawn_blocking(move || {
            crate::plugins::smoke::run(&p, std::slice::from_ref(&c))
        })
        .await?;
        let score = plugin.score(&case.input, None).ok();
        match r {
            Ok(_) => println!(
                "ok    {} (score {:.1}, {})",
                case.name,
                score.as_ref().map_or(f64::NAN, |s| s.value),
                score.as_ref().map_or("?", |s| s.priority.as_str())
            ),
            Err((_, why)) => {
                failed += 1;
                println!("FAIL  {}: {why}", case.name);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} smoke case(s) failed for {}", plugin.id());
    }
    Ok(())
}
