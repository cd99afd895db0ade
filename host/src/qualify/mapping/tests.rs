use super::*;
use crate::mcp::ToolInfo;
use serde_json::json;

fn frappe() -> CrmMapping {
    let toml = crate::qualify::presets::FRAPPE;
    let s: crate::qualify::QualifySettings = toml::from_str::<toml::Table>(toml)
        .unwrap()
        .get("qualify")
        .cloned()
        .unwrap()
        .try_into()
        .unwrap();
    s.crm
}

fn tool(name: &str, props: &[&str], required: &[&str]) -> ToolInfo {
    let p: Map<String, Value> = props
        .iter()
        .map(|k| (k.to_string(), json!({"type": "string"})))
        .collect();
    ToolInfo {
        name: name.into(),
        description: None,
        input_schema: json!({"type": "object", "properties": p, "required": required}),
    }
}

fn frappe_tools() -> Vec<ToolInfo> {
    vec![
        tool("leads_get", &["name"], &["name"]),
        tool(
            "leads_update",
            &[
                "name",
                "status",
                "first_name",
                "last_name",
                "email",
                "mobile_no",
                "organization",
            ],
            &["name"],
        ),
        tool(
            "notes_add",
            &["reference_doctype", "reference_name", "title", "content"],
            &["reference_doctype", "reference_name", "title", "content"],
        ),
    ]
}

fn frappe_record() -> Value {
    json!({
        "name": "CRM-LEAD-2026-00003", "first_name": "Ada", "last_name": "Lovelace",
        "lead_name": "Ada Lovelace", "job_title": "CEO", "organization": "Acme Manufacturing",
        "no_of_employees": "1000+", "industry": "Manufacturing", "annual_revenue": 2400000000.0,
        "source": "Referral", "status": "Qualified", "website": "https://acme.example",
        "email": "ada@acme.example", "docstatus": 0
    })
}

#[test]
fn the_frappe_preset_maps_a_frappe_lead_onto_strata_fields() {
    let m = frappe();
    m.validate().unwrap();
    let lead = m.lead_from_record("CRM-LEAD-2026-00003", &frappe_record());
    assert_eq!(lead.id, "CRM-LEAD-2026-00003");
    assert_eq!(lead.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(lead.title.as_deref(), Some("CEO"));
    assert_eq!(lead.company.as_deref(), Some("Acme Manufacturing"));
    assert_eq!(lead.employees, Some(1000));
    assert_eq!(lead.annual_revenue, Some(2.4e9));
    assert_eq!(lead.status, LeadStatus::Qualified);
    assert_eq!(lead.source.as_deref(), Some("Referral"));
    assert_eq!(
        lead.attributes.get("website").map(String::as_str),
        Some("https://acme.example")
    );
    assert!(!lead.attributes.contains_key("docstatus"));
}

#[test]
fn employee_ranges_and_revenue_text_become_numbers() {
    assert_eq!(parse_number("201-500", RangePick::Mid), Some(351.0));
    assert_eq!(parse_number("201-500", RangePick::Low), Some(201.0));
    assert_eq!(parse_number("201-500", RangePick::High), Some(500.0));
    assert_eq!(parse_number("1000+", RangePick::Mid), Some(1000.0));
    assert_eq!(parse_number("$2,400,000", RangePick::Mid), Some(2.4e6));
    assert_eq!(parse_number("1-10", RangePick::Mid), Some(6.0));
    assert_eq!(parse_number("many", RangePick::Mid), None);
}

#[test]
fn names_join_their_parts_or_fall_back_to_the_full_name() {
    let m = frappe();
    let only_full = json!({"lead_name": "Grace Hopper"});
    assert_eq!(
        m.lead_from_record("x", &only_full).name.as_deref(),
        Some("Grace Hopper")
    );
    let first_only = json!({"first_name": "Grace", "last_name": ""});
    assert_eq!(
        m.lead_from_record("x", &first_only).name.as_deref(),
        Some("Grace")
    );
}

#[test]
fn strata_shaped_records_keep_attributes_but_never_strata_write_back_fields() {
    let m = CrmMapping::default();
    let rec = json!({"id": "other", "name": "N", "employees": 12, "status": "nurture",
        "attributes": {"strata_score": "39.0", "strata_action": "Bant@1.0.0", "region": "EU"}});
    let lead = m.lead_from_record("L-1", &rec);
    assert_eq!(lead.id, "L-1");
    assert_eq!(lead.employees, Some(12));
    assert_eq!(lead.status, LeadStatus::Nurture);
    assert_eq!(lead.attributes.len(), 1, "{:?}", lead.attributes);
    assert_eq!(lead.attributes["region"], "EU");
}

#[test]
fn calls_are_checked_against_the_servers_input_schemas() {
    let m = frappe();
    m.check_against(&frappe_tools()).unwrap();

    let mut wrong = m.clone();
    wrong.read.arguments = json!({"id": "{lead_id}"}).as_object().cloned().unwrap();
    let e = wrong
        .check_against(&frappe_tools())
        .unwrap_err()
        .to_string();
    assert!(e.contains("leads_get has no argument \"id\""), "{e}");

    let mut missing = m.clone();
    missing.write_back[1].arguments.remove("reference_name");
    let e = missing
        .check_against(&frappe_tools())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("notes_add requires argument \"reference_name\""),
        "{e}"
    );

    let mut absent = m.clone();
    absent.write_back[0].tool = "leads_patch".into();
    let e = absent
        .check_against(&frappe_tools())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no tool \"leads_patch\""), "{e}");
    assert!(e.contains("leads_get, leads_update, notes_add"), "{e}");
}

#[test]
fn unknown_placeholders_and_fields_are_configuration_errors() {
    let mut m = frappe();
    m.write_back[0]
        .arguments
        .insert("status".into(), json!("{crm_state}"));
    let e = m.validate().unwrap_err().to_string();
    assert!(e.contains("unknown placeholder {crm_state}"), "{e}");

    let mut m = frappe();
    m.read.arguments.insert("name".into(), json!("{score}"));
    assert!(m
        .validate()
        .unwrap_err()
        .to_string()
        .contains("read: unknown placeholder {score}"));

    let mut m = frappe();
    m.fields
        .insert("job_title".into(), FieldRule::Field("job_title".into()));
    let e = m.validate().unwrap_err().to_string();
    assert!(
        e.contains("fields.job_title") && e.contains("attributes"),
        "{e}"
    );
}

#[test]
fn write_back_renders_the_verdict_and_skips_an_unmapped_status() {
    let m = frappe();
    let v = Verdict {
        lead_id: "CRM-LEAD-2026-00003".into(),
        score: 88.04,
        priority: "immediate".into(),
        action: "Call today".into(),
        reasoning: "CEO, 1000+ employees".into(),
        confidence: 0.8,
        strategy: "qualify-agent@1.0.0".into(),
        sha256: "abc".into(),
        decided_by: "llm".into(),
    };
    let calls = m.write_back_calls(&v);
    assert_eq!(calls[0].0, "leads_update");
    let update = calls[0].1.as_ref().unwrap();
    assert_eq!(update["name"], "CRM-LEAD-2026-00003");
    assert_eq!(update["status"], "Qualified");
    let note = calls[1].1.as_ref().unwrap();
    assert_eq!(note["reference_doctype"], "CRM Lead");
    let content = note["content"].as_str().unwrap();
    assert!(
        content.contains("88.0") && content.contains("Call today"),
        "{content}"
    );
    assert!(
        content.contains("qualify-agent@1.0.0") && content.contains("abc"),
        "{content}"
    );

    let low = Verdict {
        priority: "low".into(),
        ..v
    };
    let calls = m.write_back_calls(&low);
    assert!(calls[0]
        .1
        .as_ref()
        .unwrap_err()
        .contains("maps to no CRM status"));
    assert!(calls[1].1.is_ok());
}

#[test]
fn records_are_found_in_envelopes_or_by_pointer() {
    let m = CrmMapping::default();
    let r = m.record_of(None, r#"{"data": {"name": "x"}}"#).unwrap();
    assert_eq!(r["name"], "x");
    let r = m
        .record_of(Some(&json!({"lead": {"id": "L"}})), "")
        .unwrap();
    assert_eq!(r["id"], "L");
    assert!(m.record_of(None, "[1]").is_none());
    let p = CrmMapping {
        record: "/result/0".into(),
        ..CrmMapping::default()
    };
    assert_eq!(
        p.record_of(Some(&json!({"result": [{"a": 1}]})), "")
            .unwrap()["a"],
        1
    );
}

#[test]
fn numeric_arguments_follow_the_schema() {
    let schema = json!({"properties": {"n": {"type": "integer"}, "s": {"type": "string"}}});
    let v = coerce_to_schema(json!({"n": "12", "s": "12"}), &schema);
    assert_eq!(v, json!({"n": 12.0, "s": "12"}));
}

#[test]
fn the_shipped_config_comments_carry_the_frappe_preset() {
    // The commented `[qualify.crm]` block of config/strata.toml, uncommented, is the preset.
    let shipped = include_str!("../../../../config/strata.toml");
    let start = shipped
        .find("# [qualify.crm]\n")
        .expect("Frappe block in config/strata.toml");
    let block: String = shipped[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
        .collect();
    let parse = |t: &str| -> CrmMapping {
        toml::from_str::<toml::Table>(t).unwrap()["qualify"]["crm"]
            .clone()
            .try_into()
            .unwrap()
    };
    assert_eq!(parse(&block), frappe());
    assert_eq!(parse(crate::qualify::presets::FRAPPE), frappe());
}
