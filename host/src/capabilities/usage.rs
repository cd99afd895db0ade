//! What one call consumed through its capabilities: LLM tokens and cost, MCP tools, other
//! scorers. Accumulated on the per-call state and read by the caller after the call
//! (an agent execution row records it).

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallUsage {
    pub llm_calls: u32,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    /// `server/tool` of every MCP tool call, in order.
    pub mcp_tools: Vec<String>,
    /// `plugin@version` of every scorer called through `scoring`, in order.
    pub scorers: Vec<String>,
    /// Dry-run: the side effects this call asked for and the host did not execute
    /// (`{capability, operation, target, would}` each).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_back: Vec<serde_json::Value>,
    /// A pipeline layer run: its `state` writes, held until the orchestrator commits them
    /// with the layer run (see [`super::state::StateBuffer`]).
    #[serde(skip)]
    pub state: super::state::StateBuffer,
    /// An agent execution's tape: what it recorded, or what its replay observed.
    #[serde(skip)]
    pub tape: super::tape::TapeMode,
}

impl CallUsage {
    pub(crate) fn add_llm(&mut self, tokens_in: u64, tokens_out: u64, cost_usd: f64) {
        self.llm_calls += 1;
        self.tokens_in += tokens_in;
        self.tokens_out += tokens_out;
        self.cost_usd += cost_usd;
    }
}
