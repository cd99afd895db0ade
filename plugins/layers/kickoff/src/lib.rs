//! `kickoff` (operations): `deal.approved` → `project.created`.
//!
//! Turns the approved items into a delivery project: each item brings its tasks (title,
//! role, due offset in days; [`tasks_for`]). The project is stored in `state` under
//! `project:<lead_id>` (a newer deal for the same lead replaces it).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata_sdk::layer::{self, outcome, stable_id, state_get_json, state_set_json};
use strata_sdk::{export_layer, log, Layer, LayerOutcome, PluginError, RunContext};

struct Kickoff;

/// One task of a delivery project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub role: String,
    pub due_in_days: u32,
    pub sku: String,
}

/// A stored project (`project:<lead_id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub project_id: String,
    pub lead_id: String,
    pub deal_id: String,
    pub tasks: Vec<Task>,
}

/// (title, role, due in days) of the tasks an item brings; `{q}` is the quantity.
pub fn tasks_for(sku: &str, description: &str, quantity: u64) -> Vec<(String, &'static str, u32)> {
    let t = |title: &str, role, days| (title.replace("{q}", &quantity.to_string()), role, days);
    match sku {
        "PLAT-SEAT" => vec![
            t(
                "Provision the workspace with {q} seats",
                "solutions_engineer",
                3,
            ),
            t(
                "Configure single sign-on and import the users",
                "solutions_engineer",
                7,
            ),
        ],
        "ONB-S" => vec![
            t("Kick-off meeting", "project_manager", 2),
            t(
                "Import the customer's data",
                "implementation_consultant",
                10,
            ),
            t("Train the users (1 session)", "trainer", 14),
        ],
        "ONB-M" => vec![
            t("Kick-off meeting", "project_manager", 2),
            t(
                "Migrate the customer's data",
                "implementation_consultant",
                21,
            ),
            t("Train the users (3 sessions)", "trainer", 28),
        ],
        "ONB-L" => vec![
            t("Kick-off meeting and project plan", "project_manager", 2),
            t(
                "Migrate the customer's data",
                "implementation_consultant",
                30,
            ),
            t("Build the integrations", "solutions_engineer", 45),
            t("Train the users and the admins", "trainer", 45),
        ],
        "SUP-STD" => vec![t("Register the account with support", "support_lead", 1)],
        "SUP-BUS" => vec![
            t(
                "Register the account with business support",
                "support_lead",
                1,
            ),
            t("Set up the support channel", "support_lead", 5),
        ],
        "SUP-PREM" => vec![
            t("Assign a named success manager", "customer_success", 1),
            t("Set up the premium support channel", "support_lead", 3),
            t(
                "Schedule the first quarterly review",
                "customer_success",
                90,
            ),
        ],
        _ => vec![(format!("Deliver: {description}"), "project_manager", 14)],
    }
}

/// The project id: one project per deal.
pub fn project_id(deal_id: &str) -> String {
    stable_id("prj-", deal_id)
}

/// The project for an approved deal's items (`[{sku, description, quantity}]`), tasks in
/// item order, ids `<project_id>-t01`, ….
pub fn plan(lead_id: &str, deal_id: &str, items: &[Value]) -> Project {
    let pid = project_id(deal_id);
    let mut tasks = Vec::new();
    for item in items {
        let sku = item.get("sku").and_then(Value::as_str).unwrap_or("");
        let desc = item
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or(sku);
        let qty = item.get("quantity").and_then(Value::as_u64).unwrap_or(1);
        for (title, role, due) in tasks_for(sku, desc, qty) {
            tasks.push(Task {
                id: format!("{pid}-t{:02}", tasks.len() + 1),
                title,
                role: role.into(),
                due_in_days: due,
                sku: sku.into(),
            });
        }
    }
    Project {
        project_id: pid,
        lead_id: lead_id.into(),
        deal_id: deal_id.into(),
        tasks,
    }
}

impl Layer for Kickoff {
    fn run_layer(ctx: RunContext) -> Result<LayerOutcome, PluginError> {
        let p = Value::Object(layer::parse_payload(&ctx.topic, &ctx.payload)?);
        let need = |k: &str| {
            layer::str_field(&p, k).ok_or_else(|| layer::invalid(format!("{k} is missing")))
        };
        let lead_id = need("lead_id")?;
        let deal_id = need("deal_id")?;
        let items = p
            .get("items")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| layer::invalid("items must be a non-empty array"))?;
        let project = plan(&lead_id, &deal_id, items);
        let key = format!("project:{lead_id}");
        let replaced = state_get_json::<Project>(&key)?.is_some_and(|old| old.deal_id != deal_id);
        if replaced {
            log::info(&format!("project of {lead_id} replaced by deal {deal_id}"));
        }
        state_set_json(&key, &project)?;
        Ok(outcome(
            json!({"project_id": project.project_id, "lead_id": lead_id, "deal_id": deal_id,
                   "tasks": project.tasks.len(), "replaced": replaced}),
            vec![(
                "project.created".into(),
                json!({"project_id": project.project_id, "lead_id": lead_id,
                       "deal_id": deal_id, "tasks": project.tasks}),
            )],
        ))
    }
}

export_layer!(Kickoff);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_become_tasks() {
        let items = vec![
            json!({"sku": "PLAT-SEAT", "description": "licence", "quantity": 20}),
            json!({"sku": "ONB-M", "description": "onboarding", "quantity": 1}),
            json!({"sku": "SUP-BUS", "description": "support", "quantity": 1}),
            json!({"sku": "X-CUSTOM", "description": "Custom report", "quantity": 1}),
        ];
        let p = plan("l1", "deal-1", &items);
        assert_eq!(p.tasks.len(), 2 + 3 + 2 + 1);
        assert_eq!(p.tasks[0].title, "Provision the workspace with 20 seats");
        assert_eq!(p.tasks[0].id, format!("{}-t01", p.project_id));
        assert_eq!(p.tasks[7].id, format!("{}-t08", p.project_id));
        assert_eq!(p.tasks[7].title, "Deliver: Custom report");
        assert_eq!(p.tasks[7].role, "project_manager");
        assert!(p
            .tasks
            .iter()
            .all(|t| !t.role.is_empty() && !t.title.is_empty()));
        assert_eq!(p, plan("l1", "deal-1", &items), "deterministic");
        assert_ne!(p.project_id, plan("l1", "deal-2", &items).project_id);
    }

    #[test]
    fn every_price_book_sku_has_tasks() {
        for sku in [
            "PLAT-SEAT",
            "ONB-S",
            "ONB-M",
            "ONB-L",
            "SUP-STD",
            "SUP-BUS",
            "SUP-PREM",
        ] {
            let t = tasks_for(sku, "x", 1);
            assert!(!t.is_empty() && !t[0].0.starts_with("Deliver:"), "{sku}");
        }
    }

    #[test]
    fn schemas_match_the_producer() {
        assert_eq!(
            include_str!("../schemas/deal-approved.json"),
            include_str!("../../pricing/schemas/deal-approved.json")
        );
    }
}
