//! `strata plugin new`: scaffold a plugin project that builds and loads, in any directory.
//!
//! A Rust project vendors the guest SDK and the WIT contract embedded in this binary
//! ([`super::sdk_bundle`]), so it needs nothing from this repository. Another language
//! adds a [`Lang`] variant and a module with a `scaffold(&Scaffold)` function.

use super::sdk_bundle::{self, SDK_CONTRACT, VENDORED_SDK_DIR};
use crate::cli::absolute;
use crate::manifest::MANIFEST_FILE;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct NewArgs {
    /// Name of the plugin and of its crate: lowercase letters, digits and `-` (e.g. lead-heat).
    pub name: String,
    /// What the plugin is: a scorer (lead in, score out), a pipeline layer, or an agent.
    #[arg(long, value_enum, default_value_t = KindArg::Scorer)]
    pub kind: KindArg,
    /// Language the plugin is written in.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
    /// Parent directory of the new project (created as DIR/NAME).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Depend on this guest SDK crate (a checkout's plugins/sdk) instead of vendoring the
    /// SDK built into strata; for SDK developers.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

/// The kind of plugin, as in `plugin.toml`'s `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    /// One lead in, one score out (world `scorer`).
    Scorer,
    /// A business layer of a pipeline: a JSON event in, output and events out (world `layer`).
    Layer,
    /// A JSON task in, a JSON result out, with LLM/MCP/scoring capabilities (world `agent`).
    Agent,
}

impl KindArg {
    pub fn as_str(self) -> &'static str {
        match self {
            KindArg::Scorer => "scorer",
            KindArg::Layer => "layer",
            KindArg::Agent => "agent",
        }
    }
}

/// The language of a new plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate built for wasm32-wasip2 against the vendored strata-sdk.
    Rust,
    /// A Python scorer componentized with componentize-py.
    Python,
}

/// A checked request for a new project, shared by the languages.
pub struct Scaffold {
    /// The plugin's (and the crate's or package's) name.
    pub name: String,
    pub kind: KindArg,
    /// The project directory to create (`--dir` joined with the name); it does not exist.
    pub dir: PathBuf,
    /// `--sdk`: the SDK to depend on instead of the vendored one.
    pub sdk: Option<PathBuf>,
}

impl Scaffold {
    /// Checks the name and that the project directory does not exist yet.
    pub fn check(args: &NewArgs) -> anyhow::Result<Scaffold> {
        let name = &args.name;
        if name.is_empty()
            || name.starts_with('-')
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            bail!(
                "plugin name {name:?} must be lowercase letters, digits and '-' (e.g. lead-heat)"
            );
        }
        let dir = args.dir.join(name);
        if dir.exists() {
            bail!(
                "{} already exists (choose another name or --dir)",
                absolute(&dir).display()
            );
        }
        Ok(Scaffold {
            name: name.clone(),
            kind: args.kind,
            dir,
            sdk: args.sdk.clone(),
        })
    }

    /// `lead-heat` → `LeadHeat`.
    pub fn type_name(&self) -> String {
        self.name
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The project's `plugin.toml`: a scorer gets one smoke case.
    pub fn manifest(&self) -> String {
        let name = &self.name;
        let kind = self.kind.as_str();
        let smoke = if self.kind == KindArg::Scorer {
            "\n[[smoke]]\nname = \"any lead scores in range\"\n[smoke.input]\nid = \"smoke-1\"\nbudget = 50000.0\n\
             [smoke.expect]\nmin_score = 0.0\nmax_score = 100.0\n"
        } else {
            ""
        };
        format!(
            "[plugin]\nname = \"{name}\"\nversion = \"0.1.0\"\nkind = \"{kind}\"\ndescription = \"TODO: what {name} does\"\n\n\
             [capabilities]\n# state = {{}}\n# crm = {{}}\n\n[limits]\ndeadline_ms = 100\nmemory_mb = 16\n{smoke}"
        )
    }
}

/// Runs `strata plugin new`.
pub fn run(args: NewArgs) -> anyhow::Result<()> {
    let scaffold = Scaffold::check(&args)?;
    match args.lang {
        Lang::Rust => rust(&scaffold)?,
        Lang::Python => {
            if !matches!(scaffold.kind, KindArg::Scorer) {
                bail!("--lang python scaffolds scorers only (--kind scorer)");
            }
            let parent = scaffold.dir.parent().unwrap_or(Path::new("."));
            super::python::scaffold(&scaffold.name, parent)?;
            let dir = absolute(&scaffold.dir);
            println!(
                "created {d} (Python scorer, contract strata:plugin@{SDK_CONTRACT})\n  \
                 build:  strata plugin build {d}   (needs componentize-py {v})\n  \
                 test:   strata plugin test {d}",
                d = dir.display(),
                v = super::python::COMPONENTIZE_PY_VERSION,
            );
            return Ok(());
        }
    }
    let dir = absolute(&scaffold.dir);
    println!(
        "created {} ({} {}, contract strata:plugin@{SDK_CONTRACT})\n  \
         build:  strata plugin build {d}\n  test:   strata plugin test {d}\n  \
         watch:  strata plugin dev {d}",
        dir.display(),
        match args.lang {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
        },
        scaffold.kind.as_str(),
        d = dir.display()
    );
    Ok(())
}

/// Writes a Rust plugin crate with the SDK vendored (or `--sdk` as a path dependency).
fn rust(s: &Scaffold) -> anyhow::Result<()> {
    let sdk_dep = match &s.sdk {
        None => format!("{{ path = \"{VENDORED_SDK_DIR}\" }}"),
        Some(sdk) => {
            let sdk = std::fs::canonicalize(sdk).with_context(|| {
                format!(
                    "guest SDK not found at {} (--sdk names a strata-sdk crate; leave it out to \
                     use the SDK built into strata)",
                    absolute(sdk).display()
                )
            })?;
            format!("{{ path = {:?} }}", sdk.display().to_string())
        }
    };
    let dir = &s.dir;
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", absolute(dir).display()))?;
    if s.sdk.is_none() {
        sdk_bundle::write_vendored(dir)?;
    }
    let name = &s.name;
    let cargo = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nstrata-sdk = {sdk_dep}\n\n\
         # The WIT contract this plugin is built against: `strata plugin build` checks that the\n\
         # host supports it (strata:plugin@{SDK_CONTRACT}).\n\
         [package.metadata.strata]\ncontract = \"{SDK_CONTRACT}\"\n\n\
         # A standalone workspace: the vendored SDK is its only other member.\n[workspace]\n\n\
         # Small, fast components: the host instantiates one per call.\n\
         [profile.release]\nopt-level = 3\nlto = true\ncodegen-units = 1\nstrip = true\n"
    );
    let ty = s.type_name();
    let lib = match s.kind {
        KindArg::Scorer => SCORER_TEMPLATE,
        KindArg::Layer => LAYER_TEMPLATE,
        KindArg::Agent => AGENT_TEMPLATE,
    }
    .replace("{Type}", &ty);
    let files: [(&str, String); 8] = [
        ("Cargo.toml", cargo),
        ("Cargo.lock", sdk_bundle::lock_file(name)?),
        ("src/lib.rs", lib),
        (MANIFEST_FILE, s.manifest()),
        (".cargo/config.toml", CARGO_CONFIG.into()),
        ("rust-toolchain.toml", sdk_bundle::RUST_TOOLCHAIN.into()),
        (".gitignore", "/target\n/plugin.wasm\n".into()),
        ("README.md", readme(s)),
    ];
    std::fs::create_dir_all(dir.join(".cargo"))?;
    for (rel, text) in files {
        std::fs::write(dir.join(rel), text)
            .with_context(|| format!("cannot write {}", absolute(&dir.join(rel)).display()))?;
    }
    Ok(())
}

fn readme(s: &Scaffold) -> String {
    format!(
        "# {name}\n\nA Strata {kind} plugin (WebAssembly component, contract \
         `strata:plugin@{SDK_CONTRACT}`), written by `strata plugin new` (strata {ver}).\n\n\
         ```sh\nstrata plugin build .     # cargo build --release --target wasm32-wasip2, then plugin.wasm here\n\
         strata plugin test .      # the smoke cases of plugin.toml\nstrata plugin inspect .   # world, imports, capabilities, limits\n\
         strata plugin dev .       # rebuild, test and hot-load into a local server on every change\n```\n\n\
         `{VENDORED_SDK_DIR}/` is the guest SDK and `wit/since_v{SDK_CONTRACT}/` the contract it is \
         generated from, both copied from strata: the crate builds from crates.io alone. \
         `[package.metadata.strata] contract` in Cargo.toml names the contract; \
         `strata plugin build` refuses a contract the host does not load.\n",
        name = s.name,
        kind = s.kind.as_str(),
        ver = env!("CARGO_PKG_VERSION"),
    )
}

/// The plugins workspace's `.cargo/config.toml`: wasm32-wasip2 by default, 32 KiB stack.
const CARGO_CONFIG: &str = r#"[build]
target = "wasm32-wasip2"

[target.wasm32-wasip2]
# 32 KiB shadow stack: the host resets the memory an instance touched after each call.
rustflags = ["-C", "link-arg=-zstack-size=32768"]
"#;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn args(name: &str, dir: &Path) -> NewArgs {
        NewArgs {
            name: name.into(),
            kind: KindArg::Scorer,
            lang: Lang::Rust,
            dir: dir.to_path_buf(),
            sdk: None,
        }
    }

    #[test]
    fn a_new_project_vendors_the_sdk_and_names_no_path_outside_itself() {
        let tmp = tempfile::tempdir().unwrap();
        rust(&Scaffold::check(&args("lead-heat", tmp.path())).unwrap()).unwrap();
        let dir = tmp.path().join("lead-heat");
        for f in [
            "Cargo.toml",
            "Cargo.lock",
            "plugin.toml",
            "src/lib.rs",
            "vendor/strata-sdk/Cargo.toml",
            "vendor/strata-sdk/src/bindings.rs",
            "wit/since_v0.1.0/worlds.wit",
        ] {
            assert!(dir.join(f).is_file(), "{f}");
        }
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("strata-sdk = { path = \"vendor/strata-sdk\" }"));
        assert!(cargo.contains("contract = \"0.1.0\""));
        let repo = std::fs::canonicalize(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .unwrap()
            .display()
            .to_string();
        assert!(!cargo.contains(&repo) && !cargo.contains(".."), "{cargo}");
    }

    #[test]
    fn a_bad_name_or_an_existing_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(Scaffold::check(&args("Lead_Heat", tmp.path())).is_err());
        std::fs::create_dir(tmp.path().join("taken")).unwrap();
        let e = Scaffold::check(&args("taken", tmp.path())).err().unwrap();
        assert!(e.to_string().contains("already exists"), "{e}");
    }

    #[test]
    fn type_names_are_camel_case() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Scaffold::check(&args("lead-heat-2", tmp.path())).unwrap();
        assert_eq!(s.type_name(), "LeadHeat2");
    }
}
