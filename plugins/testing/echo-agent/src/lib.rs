//! Test agent: answers `{"echo": <task>}`.

use strata_sdk::{export_agent, Agent, PluginError};

struct EchoAgent;

impl Agent for EchoAgent {
    fn run(input: String) -> Result<String, PluginError> {
        Ok(format!("{{\"echo\":{input}}}"))
    }
}

export_agent!(EchoAgent);
