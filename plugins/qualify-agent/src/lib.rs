//! The lead-qualification agent: it judges the lead it is given.
//!
//! Task (JSON, composed by the host from `[qualify]`; the host reads the lead from the CRM
//! and writes the verdict back as `[qualify.crm]` says, so the agent holds no CRM power):
//!
//! ```json
//! {"lead_id": "L-1", "lead": {"id": "L-1", "title": "CEO", ...},
//!  "model": "qualifier", "fallback_strategy": "bant"}
//! ```
//!
//! Steps: ask the `llm` for a structured qualification (the JSON schema in [`schema`]);
//! check it; on any LLM failure (unavailable, timeout, budget, invalid output) or an
//! implausible answer, score with the granted rule-based scorer through `scoring` and say
//! so; return a result the host stores as the lead's score and the execution's output.

mod lead_json;
pub mod qualification;
pub mod schema;

use qualification::{Outcome, Task};
use serde_json::Value;
use strata_sdk::{export_agent, llm, log, scoring, Agent, PluginError};

struct QualifyAgent;

impl Agent for QualifyAgent {
    fn run(input: String) -> Result<String, PluginError> {
        let task = Task::parse(&input).map_err(PluginError::InvalidInput)?;
        let outcome = qualify(&task)?;
        Ok(outcome.to_json().to_string())
    }
}

export_agent!(QualifyAgent);

fn qualify(task: &Task) -> Result<Outcome, PluginError> {
    let lead = &task.lead;
    match ask_llm(task, lead) {
        Ok(o) => Ok(o),
        Err(reason) => {
            log::warn(&format!(
                "LLM qualification unavailable: {reason}; falling back to {}",
                task.fallback_strategy
            ));
            fallback(task, lead, reason)
        }
    }
}

/// Asks the model; an answer that fails [`Outcome::from_llm`]'s checks gets one corrective
/// retry (the answer and what was wrong with it go back as a follow-up), then the error
/// (the caller falls back with it as the reason).
fn ask_llm(task: &Task, lead: &Value) -> Result<Outcome, String> {
    let mut messages = vec![llm::Message {
        role: llm::Role::User,
        content: schema::user_prompt(lead),
    }];
    // What the model saw: its answer must not merely repeat it.
    let seen = schema::clean_lead_for_prompt(lead);
    let (mut tokens_in, mut tokens_out, mut cost_usd) = (0u32, 0u32, 0.0f64);
    let mut first_problem: Option<String> = None;
    loop {
        let request = llm::CompletionRequest {
            model: task.model.clone(),
            system: Some(schema::SYSTEM_PROMPT.to_string()),
            messages: messages.clone(),
            max_tokens: 512,
            json_schema: Some(schema::qualification_schema().to_string()),
        };
        let completion = llm::complete(&request).map_err(|e| qualification::llm_error(&e))?;
        tokens_in = tokens_in.saturating_add(completion.usage.input_tokens);
        tokens_out = tokens_out.saturating_add(completion.usage.output_tokens);
        cost_usd += completion.usage.cost_usd;
        let checked = match &completion.json {
            Some(j) => serde_json::from_str::<Value>(j)
                .map_err(|e| format!("host returned bad JSON: {e}"))
                .and_then(|answer| Outcome::from_llm(&task.lead_id, &answer, &seen)),
            None => Err("the model returned no structured answer".into()),
        };
        match checked {
            Ok(mut outcome) => {
                outcome.model = Some(completion.model);
                outcome.tokens_in = tokens_in;
                outcome.tokens_out = tokens_out;
                outcome.cost_usd = cost_usd;
                return Ok(outcome);
            }
            Err(problem) => match first_problem {
                None => {
                    log::warn(&format!(
                        "LLM answer for lead {:?} rejected ({problem}); asking once more",
                        task.lead_id
                    ));
                    let previous = completion.json.unwrap_or(completion.text);
                    messages.push(llm::Message {
                        role: llm::Role::Assistant,
                        content: if previous.trim().is_empty() {
                            "(an empty answer)".into()
                        } else {
                            previous
                        },
                    });
                    messages.push(llm::Message {
                        role: llm::Role::User,
                        content: schema::correction_prompt(&problem),
                    });
                    first_problem = Some(problem);
                }
                Some(first) => {
                    return Err(format!(
                        "LLM answer inconsistent after a corrective retry: {problem} (first answer: {first})"
                    ))
                }
            },
        }
    }
}

fn fallback(task: &Task, lead: &Value, reason: String) -> Result<Outcome, PluginError> {
    let lead = lead_json::to_wit_lead(&task.lead_id, lead);
    let scored = scoring::score_lead(&task.fallback_strategy, &lead).map_err(|e| {
        PluginError::Failed(format!(
            "LLM failed ({reason}) and the fallback scorer {:?} failed too: {}",
            task.fallback_strategy,
            qualification::capability_error(&e)
        ))
    })?;
    Ok(Outcome::from_fallback(&task.lead_id, scored, reason))
}
