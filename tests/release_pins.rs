//! MCP tool pinning through the release flow (issue 21), on a single SQLite host with a
//! real stdio MCP peer (`tests/mcp-peers/mutable.mjs`, whose tool description comes from
//! a file the test rewrites): approving a version pins the tools its grant covers.

mod common;

use common::release_host::ReleaseHost;
use common::*;
use reqwest::StatusCode;

/// A host with the MCP peer `mut` (its tool described by `<tmp>/lookup.txt`, "Looks a
/// company up." at first), probed every 200 ms so that a changed definition is noticed
/// at once, and a grant of `tools` of it to `plugin`.
async fn host_with_peer(plugin: &str, tools: &str) -> ReleaseHost {
    let script = repo_root().join("tests/mcp-peers/mutable.mjs");
    ReleaseHost::start_with(|tmp| {
        let desc = tmp.join("lookup.txt");
        std::fs::write(&desc, "Looks a company up.").unwrap();
        format!(
            "[mcp]\nhealth_interval_ms = 200\n[mcp.servers.mut]\ntransport = \"stdio\"\n\
             command = \"node\"\nargs = [{:?}, {:?}]\n[grants.{plugin}]\n\
             capabilities = [\"mcp\"]\nmcp = {{ tools = [\"{tools}\"] }}\n",
            script.display().to_string(),
            desc.display().to_string(),
        )
    })
    .await
}

/// bant's manifest as `version`, with `extra` TOML appended.
fn bant_as(version: &str, extra: &str) -> String {
    let m = std::fs::read_to_string(plugin_source("bant").join("plugin.toml"))
        .unwrap()
        .replacen(
            "version = \"1.0.0\"",
            &format!("version = \"{version}\""),
            1,
        );
    format!("{m}\n{extra}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_version_pins_the_mcp_tools_its_grant_covers() {
    let f = host_with_peer("bant", "mut/*").await;
    let (status, _, v) = f
        .publish(
            &f.operator,
            "bant",
            &bant_as("1.2.0", "[capabilities.mcp]"),
            wasm_of("bant"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "awaiting-approval", "{v}");
    let approved = f.approve("bant", "1.2.0").await;
    assert_eq!(approved["status"], "approved", "{approved}");
    assert_eq!(
        approved["mcp_pins"],
        serde_json::json!(["mut/lookup"]),
        "{approved}"
    );
    let pins = f.db.list_mcp_tool_pins(Some("bant")).await.unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0].definition["description"], "Looks a company up.");
    f.server.stop().await;
}
