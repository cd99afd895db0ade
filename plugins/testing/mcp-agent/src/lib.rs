//! Test agent: calls the MCP tool `mut/lookup` (the peer `tests/mcp-peers/mutable.mjs`)
//! with the task's `lead_id` and answers a fixed score of 50 whose reasoning is the tool's
//! text. A refused call (e.g. a pinned tool whose definition changed) fails the run with
//! the host's reason, so a qualification through it shows what the host decided.

use serde_json::{json, Value};
use strata_sdk::{export_agent, mcp, Agent, PluginError};

struct McpAgent;

impl Agent for McpAgent {
    fn run(input: String) -> Result<String, PluginError> {
        let task: Value = serde_json::from_str(&input)
            .map_err(|e| PluginError::InvalidInput(format!("task is not JSON: {e}")))?;
        let id = task["lead_id"].as_str().unwrap_or("unknown");
        let r = mcp::call_tool("mut", "lookup", &json!({ "id": id }).to_string())
            .map_err(|e| PluginError::Failed(format!("MCP mut/lookup refused: {e:?}")))?;
        Ok(json!({
            "score": {
                "value": 50.0,
                "priority": "medium",
                "recommended_action": "follow up",
                "reasoning": r.text,
                "confidence": 0.5,
                "factors": [],
            },
            "fallback_used": false,
        })
        .to_string())
    }
}

export_agent!(McpAgent);
