//! `strata plugin new|build|inspect|test`; the commands that act on a running server
//! (versions, rollback, pin, publish, review, promote, status) are in [`remote`].

mod build;
mod dev;
mod new;
mod python;
mod remote;
pub(crate) mod sdk_bundle;

use build::build;

use crate::audit::AuditSink;
use crate::capabilities::{grants, Capability};
use crate::config::Config;
use crate::manifest::{Manifest, PluginKind};
use crate::runtime::prepare::sha256_hex;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum PluginCommand {
    /// Scaffold a plugin project that builds and loads, in any directory: the guest SDK
    /// and the WIT contract are written into it from this binary.
    New(new::NewArgs),
    /// Watch a plugin crate: on every change build it, run its smoke tests and hot-load it
    /// into a local server's plugins directory (or publish it with --server); a failure is
    /// printed and watching goes on. Ctrl-C stops.
    Dev(dev::DevArgs),
    /// Build plugin crates (a crate or a workspace) to components next to their plugin.toml.
    Build {
        /// A plugin crate's directory, or a cargo workspace of plugin crates.
        #[arg(default_value = ".")]
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
        /// The plugin's name (`name` in its plugin.toml).
        name: String,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Roll a served plugin back (and pin it there) on a running server.
    Rollback {
        /// The plugin's name (`name` in its plugin.toml).
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
        /// The plugin's name (`name` in its plugin.toml).
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
        /// The plugin's name (`name` in its plugin.toml).
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
        /// The plugin's name (`name` in its plugin.toml).
        name: String,
        /// The published version to compare from (or, alone, the version to show).
        v1: String,
        /// The published version to compare with V1.
        v2: Option<String>,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Approve a published version (admin key): it may be released.
    Approve {
        /// The plugin's name (`name` in its plugin.toml).
        name: String,
        /// The published version (e.g. 1.2.0).
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
        /// The plugin's name (`name` in its plugin.toml).
        name: String,
        /// The published version (e.g. 1.2.0).
        version: String,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
    },
    /// The released version of a plugin and what each replica serves.
    Status {
        /// The plugin's name (`name` in its plugin.toml).
        name: String,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Reject a published version (admin key): it is never released.
    Reject {
        /// The plugin's name (`name` in its plugin.toml).
        name: String,
        /// The published version (e.g. 1.2.0).
        version: String,
        /// Why, for the record.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        server: crate::cli::remote::ServerArgs,
    },
}

pub async fn run(
    cmd: PluginCommand,
    config: impl Fn() -> Result<Config, crate::config::ConfigError>,
) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::New(args) => new::run(args),
        PluginCommand::Dev(args) => dev::run(args, config()?).await,
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

fn plugin_files(
    path: &Path,
    max_component_bytes: u64,
) -> anyhow::Result<(PathBuf, Manifest, Vec<u8>)> {
    let path = crate::cli::absolute(path);
    if !path.exists() {
        bail!(
            "{} not found (pass a plugin directory holding plugin.toml, or its plugin.toml)",
            path.display()
        );
    }
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

/// The `"schema"` of `plugin inspect --json` (docs/cli-json.md).
pub const INSPECT_SCHEMA: &str = "strata.plugin-inspect.v1";

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
        "schema": INSPECT_SCHEMA,
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
