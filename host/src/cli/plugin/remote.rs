//! `strata plugin` commands that act on a running `strata serve` through its HTTP API:
//! the versions a host keeps and the fleet's published ones, rollback/pin/unpin, publish,
//! diff, approve/reject, promote and the release status.

use super::PluginCommand;
use crate::manifest::{Manifest, MANIFEST_FILE};
use anyhow::Context;
use std::path::Path;

/// Runs one of the remote commands (the others are run by [`super::run`]).
pub(super) async fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Versions { name, server, json } => {
            let v = server
                .get(&format!("/api/v1/plugins/{name}/versions"))
                .await?;
            print_versions(&v, json)
        }
        PluginCommand::Rollback { name, to, server } => {
            let body = serde_json::json!({ "to": to });
            let v = server
                .post(&format!("/api/v1/plugins/{name}/rollback"), &body)
                .await?;
            print_moved("rolled back", &v);
            Ok(())
        }
        PluginCommand::Pin {
            name,
            version,
            server,
        } => {
            let body = serde_json::json!({ "version": version });
            let v = server
                .post(&format!("/api/v1/plugins/{name}/pin"), &body)
                .await?;
            print_moved("pinned", &v);
            Ok(())
        }
        PluginCommand::Unpin { name, server } => {
            let v = server
                .post(
                    &format!("/api/v1/plugins/{name}/unpin"),
                    &serde_json::json!({}),
                )
                .await?;
            print_moved("unpinned", &v);
            Ok(())
        }
        PluginCommand::Publish { dir, server, json } => {
            let (name, form) = publish_form(&dir)?;
            let v = server
                .post_multipart(&format!("/api/v1/plugins/{name}/versions"), form)
                .await
                .with_context(|| format!("publishing {} refused", dir.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "published {}@{} (sha256 {}, {} bytes): {}",
                    v["name"].as_str().unwrap_or("?"),
                    v["version"].as_str().unwrap_or("?"),
                    v["sha256"].as_str().unwrap_or("?"),
                    v["size"],
                    v["status"].as_str().unwrap_or("?"),
                );
                print_diff(&v["diff"]);
            }
            Ok(())
        }
        PluginCommand::Diff {
            name,
            v1,
            v2,
            server,
            json,
        } => {
            let path = match &v2 {
                Some(v2) => format!("/api/v1/plugins/{name}/versions/{v2}/diff?against={v1}"),
                None => format!("/api/v1/plugins/{name}/versions/{v1}/diff"),
            };
            let v = server.get(&path).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{}@{} ({})",
                    v["name"].as_str().unwrap_or("?"),
                    v["version"].as_str().unwrap_or("?"),
                    v["status"].as_str().unwrap_or("?")
                );
                print_diff(&v);
            }
            Ok(())
        }
        PluginCommand::Approve {
            name,
            version,
            note,
            server,
        } => review(&server, &name, &version, "approve", note).await,
        PluginCommand::Reject {
            name,
            version,
            note,
            server,
        } => review(&server, &name, &version, "reject", note).await,
        PluginCommand::Promote {
            name,
            version,
            server,
        } => {
            let v = server
                .put(
                    &format!("/api/v1/plugins/{name}/release"),
                    &serde_json::json!({ "version": version }),
                )
                .await?;
            print_release(&v);
            if let Some(p) = v["problem"].as_str() {
                anyhow::bail!(
                    "released, but the replica that took the request does not serve it: {p}"
                );
            }
            Ok(())
        }
        PluginCommand::Status { name, server, json } => {
            let v = server
                .get(&format!("/api/v1/plugins/{name}/release"))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_release(&v);
            }
            Ok(())
        }
        PluginCommand::New(_)
        | PluginCommand::Dev(_)
        | PluginCommand::Build { .. }
        | PluginCommand::Inspect { .. }
        | PluginCommand::Test { .. } => unreachable!("local commands are run by cli::plugin::run"),
    }
}

/// The release state and one line per replica.
fn print_release(v: &serde_json::Value) {
    match v["version"].as_str() {
        Some(ver) => println!(
            "{} released: {ver} (sha256 {}, generation {})",
            v["name"].as_str().unwrap_or("?"),
            v["sha256"].as_str().unwrap_or("?"),
            v["generation"]
        ),
        None => println!("{} is not released", v["name"].as_str().unwrap_or("?")),
    }
    for r in v["replicas"].as_array().into_iter().flatten() {
        println!(
            "  {} ({}): {} {}{}",
            r["replica_id"].as_str().unwrap_or("?"),
            r["host"].as_str().unwrap_or("?"),
            r["version"].as_str().unwrap_or("-"),
            r["sha256"]
                .as_str()
                .map(|s| &s[..s.len().min(12)])
                .unwrap_or(""),
            if r["converged"] == true {
                ""
            } else {
                "  (not converged)"
            }
        );
    }
}

/// The multipart body of a publish: the directory's plugin.toml as it is, its component
/// and the files its `[schemas]` names. Returns the plugin's name with it.
pub(super) fn publish_form(path: &Path) -> anyhow::Result<(String, reqwest::multipart::Form)> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let text = crate::plugins::files::read_plugin_file(
        &dir,
        MANIFEST_FILE,
        crate::manifest::MAX_MANIFEST_BYTES,
    )?;
    let manifest = Manifest::from_bytes(&text, &dir.join(MANIFEST_FILE))?;
    let wasm =
        crate::plugins::files::read_plugin_file(&dir, &manifest.plugin.component, 1 << 30)
            .with_context(|| format!("{} (build it with `strata plugin build`)", manifest.id()))?;
    // Part names are sent as they are (a schema file's is its path, with `/`), not in
    // RFC 5987 `name*=` form, which multipart parsers do not read as the name.
    let mut form = reqwest::multipart::Form::new()
        .percent_encode_noop()
        .part(
            "manifest",
            reqwest::multipart::Part::bytes(text)
                .file_name(MANIFEST_FILE)
                .mime_str("text/plain")?,
        )
        .part(
            "component",
            reqwest::multipart::Part::bytes(wasm)
                .file_name("plugin.wasm")
                .mime_str("application/wasm")?,
        );
    // A layer's schema files, each as a part named by its relative path.
    for file in crate::plugins::release::schema_files(&manifest.schemas) {
        let bytes = crate::plugins::files::read_plugin_file(
            &dir,
            file,
            crate::manifest::MAX_MANIFEST_BYTES,
        )?;
        form = form.part(
            file.to_string(),
            reqwest::multipart::Part::bytes(bytes).mime_str("application/json")?,
        );
    }
    Ok((manifest.plugin.name, form))
}

/// Prints a diff document (`against`, `text`).
fn print_diff(d: &serde_json::Value) {
    let against = &d["against"];
    match against["version"].as_str() {
        Some(v) => println!(
            "compared with {} {v} (sha256 {})",
            against["source"].as_str().unwrap_or("?"),
            against["sha256"].as_str().unwrap_or("?")
        ),
        None => println!("compared with nothing (first publish)"),
    }
    print!("{}", d["text"].as_str().unwrap_or(""));
}

async fn review(
    server: &crate::cli::remote::ServerArgs,
    name: &str,
    version: &str,
    action: &str,
    note: Option<String>,
) -> anyhow::Result<()> {
    let v = server
        .post(
            &format!("/api/v1/plugins/{name}/versions/{version}/{action}"),
            &serde_json::json!({ "note": note }),
        )
        .await?;
    println!(
        "{}@{}: {} (sha256 {})",
        v["name"].as_str().unwrap_or("?"),
        v["version"].as_str().unwrap_or("?"),
        v["status"].as_str().unwrap_or("?"),
        v["sha256"].as_str().unwrap_or("?")
    );
    Ok(())
}

fn print_moved(what: &str, v: &serde_json::Value) {
    println!(
        "{} {what}: live {} (sha256 {}){}",
        v["name"].as_str().unwrap_or("?"),
        v["live"]["id"].as_str().unwrap_or("?"),
        v["live"]["sha256"].as_str().unwrap_or("?"),
        if v["pinned"].as_bool() == Some(true) {
            ", pinned"
        } else {
            ""
        }
    );
}

fn print_versions(v: &serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(());
    }
    println!(
        "{}: live {}{}",
        v["name"].as_str().unwrap_or("?"),
        v["live"]["id"].as_str().unwrap_or("none"),
        if v["pinned"].as_bool() == Some(true) {
            " (pinned)"
        } else {
            ""
        }
    );
    println!("  kept:");
    for k in v["kept"].as_array().into_iter().flatten() {
        println!(
            "    {:<10} {:<10} sha256 {}",
            k["version"].as_str().unwrap_or("?"),
            k["state"].as_str().unwrap_or("?"),
            k["sha256"].as_str().unwrap_or("?")
        );
    }
    match v["released"]["version"].as_str() {
        Some(r) => println!(
            "  released on the fleet: {r} (sha256 {}, generation {})",
            v["released"]["sha256"].as_str().unwrap_or("?"),
            v["released"]["generation"]
        ),
        None => println!("  released on the fleet: none"),
    }
    println!("  published (newest first):");
    for p in v["published"].as_array().into_iter().flatten() {
        println!(
            "    {:<10} {:<17} {:.12}  {:>9} bytes  by {}{}",
            p["version"].as_str().unwrap_or("?"),
            p["status"].as_str().unwrap_or("?"),
            p["sha256"].as_str().unwrap_or(""),
            p["size"],
            p["published_by"].as_str().unwrap_or("?"),
            if p["released"] == true {
                "  (released)"
            } else {
                ""
            }
        );
    }
    println!("  attempts (newest first):");
    for a in v["attempts"].as_array().into_iter().flatten() {
        println!(
            "    {:<10} {:<11} {:.12}  {}",
            a["version"].as_str().unwrap_or("?"),
            a["status"].as_str().unwrap_or("?"),
            a["sha256"].as_str().unwrap_or(""),
            a["error"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
