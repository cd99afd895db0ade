//! Ready `[qualify.crm]` mappings, as the TOML an operator pastes into the config file.

/// Frappe CRM through its MCP server (PyPI `frappe-crm-mcp` 0.0.6): reads a `CRM Lead`
/// with `leads_get`, maps its fields onto Strata's lead, and writes back the status
/// (`leads_update`, by priority) and a note with the qualification (`notes_add`).
pub const FRAPPE: &str = r#"
[qualify.crm]
mcp_server = "frappe"
read = { tool = "leads_get", arguments = { name = "{lead_id}" } }
attributes = ["website", "territory", "mobile_no", "converted", "lead_owner"]
status_by_priority = { immediate = "Qualified", high = "Qualified", medium = "Nurture" }

[qualify.crm.fields]
name = { join = ["first_name", "last_name"], or = "lead_name" }
email = "email"
company = "organization"
title = "job_title"
industry = "industry"
employees = { from = "no_of_employees", range = "mid" }
annual_revenue = "annual_revenue"
source = "source"
status = { from = "status", map = { Open = "new", Replied = "contacted" }, default = "new" }

[[qualify.crm.write_back]]
tool = "leads_update"
arguments = { name = "{lead_id}", status = "{crm_status}" }

[[qualify.crm.write_back]]
tool = "notes_add"
arguments = { reference_doctype = "CRM Lead", reference_name = "{lead_id}", title = "Strata: {score}/100, {priority}", content = "{summary}" }
"#;
