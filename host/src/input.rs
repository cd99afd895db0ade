//! Reading leads from CSV and JSON Lines files. CSV columns whose normalised header names
//! a typed lead field fill that field; every other column becomes an attribute under its
//! original header (so any CRM export and the X Education data set fit).

use crate::domain::{Lead, LeadStatus};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Csv,
    Json,
}

impl InputFormat {
    /// From the file extension: `.csv` is CSV, anything else JSON Lines.
    pub fn detect(path: &Path) -> InputFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => InputFormat::Csv,
            _ => InputFormat::Json,
        }
    }
}

/// A record that could not be read, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    Record {
        path: String,
        line: u64,
        message: String,
    },
}

/// Options of reading: which column (if any) is a label to set aside (for backtests).
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub label: Option<String>,
}

/// Leads and, when `label` is set, their labels (in the same order).
pub struct Leads {
    pub leads: Vec<Lead>,
    pub labels: Vec<Option<String>>,
    /// The line each lead starts on (1-based, as an editor numbers the file).
    pub lines: Vec<u64>,
}

pub fn read(path: &Path, format: InputFormat, opts: &ReadOptions) -> Result<Leads, InputError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| InputError::Io {
        path: p.clone(),
        source,
    })?;
    parse(&bytes, &p, format, opts)
}

/// Parses leads from bytes; `origin` names them in errors (a path, "request body").
pub fn parse(
    bytes: &[u8],
    origin: &str,
    format: InputFormat,
    opts: &ReadOptions,
) -> Result<Leads, InputError> {
    match format {
        InputFormat::Csv => parse_csv(bytes, origin, opts),
        InputFormat::Json => parse_jsonl(bytes, origin, opts),
    }
}

fn normalise(h: &str) -> String {
    h.trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

#[derive(Clone, Copy)]
enum Field {
    Id,
    Name,
    Email,
    Company,
    Title,
    Industry,
    Employees,
    AnnualRevenue,
    Budget,
    Timeline,
    Source,
    Status,
    Notes,
}

fn typed_field(normalised: &str) -> Option<Field> {
    Some(match normalised {
        "id" | "lead_id" | "prospect_id" => Field::Id,
        "name" => Field::Name,
        "email" => Field::Email,
        "company" => Field::Company,
        "title" | "job_title" => Field::Title,
        "industry" => Field::Industry,
        "employees" => Field::Employees,
        "annual_revenue" => Field::AnnualRevenue,
        "budget" => Field::Budget,
        "timeline" => Field::Timeline,
        "source" => Field::Source,
        "status" => Field::Status,
        "notes" => Field::Notes,
        _ => return None,
    })
}

fn parse_csv(bytes: &[u8], origin: &str, opts: &ReadOptions) -> Result<Leads, InputError> {
    let p = origin.to_string();
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = rdr
        .headers()
        .map_err(|e| InputError::Record {
            path: p.clone(),
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    let columns: Vec<(String, Option<Field>)> = headers
        .iter()
        .map(|h| (h.trim().to_string(), typed_field(&normalise(h))))
        .collect();
    let label_col = opts.label.as_ref().map(|l| {
        columns
            .iter()
            .position(|(h, _)| h == l)
            .ok_or_else(|| InputError::Record {
                path: p.clone(),
                line: 1,
                message: format!("label column {l:?} not in the header"),
            })
    });
    let label_col = label_col.transpose()?;
    if !columns.iter().any(|(_, f)| matches!(f, Some(Field::Id))) {
        return Err(InputError::Record {
            path: p,
            line: 1,
            message: "no id column (one of: id, lead_id, Prospect ID)".into(),
        });
    }
    let mut out = Leads {
        leads: Vec::new(),
        labels: Vec::new(),
        lines: Vec::new(),
    };
    for (i, rec) in rdr.records().enumerate() {
        let line = match &rec {
            Ok(r) => r.position().map_or(i as u64 + 2, |p| p.line()),
            Err(e) => e.position().map_or(i as u64 + 2, |p| p.line()),
        };
        let rec = rec.map_err(|e| InputError::Record {
            path: p.clone(),
            line,
            message: e.to_string(),
        })?;
        let err = |message: String| InputError::Record {
            path: p.clone(),
            line,
            message,
        };
        let mut lead = Lead::default();
        let mut attributes = BTreeMap::new();
        for (idx, value) in rec.iter().enumerate() {
            let Some((header, field)) = columns.get(idx) else {
                continue;
            };
            if Some(idx) == label_col {
                continue;
            }
            let value = value.trim();
            if value.is_empty() || header.is_empty() {
                continue;
            }
            let text = || Some(value.to_string());
            let num = |what: &str| {
                value
                    .replace(',', "")
                    .parse::<f64>()
                    .map_err(|_| err(format!("{what} {value:?} is not a number")))
            };
            match field {
                Some(Field::Id) => lead.id = value.to_string(),
                Some(Field::Name) => lead.name = text(),
                Some(Field::Email) => lead.email = text(),
                Some(Field::Company) => lead.company = text(),
                Some(Field::Title) => lead.title = text(),
                Some(Field::Industry) => lead.industry = text(),
                Some(Field::Employees) => {
                    let n = num("employees")?;
                    if !(0.0..=u32::MAX as f64).contains(&n) {
                        return Err(err(format!("employees {value:?} out of range")));
                    }
                    lead.employees = Some(n as u32);
                }
                Some(Field::AnnualRevenue) => lead.annual_revenue = Some(num("annual_revenue")?),
                Some(Field::Budget) => lead.budget = Some(num("budget")?),
                Some(Field::Timeline) => lead.timeline = text(),
                Some(Field::Source) => lead.source = text(),
                Some(Field::Status) => {
                    lead.status = value
                        .parse::<LeadStatus>()
                        .map_err(|e| err(e.to_string()))?
                }
                Some(Field::Notes) => lead.notes = text(),
                None => {
                    attributes.insert(header.clone(), value.to_string());
                }
            }
        }
        if lead.id.is_empty() {
            return Err(err("empty id".into()));
        }
        lead.attributes = attributes;
        out.labels.push(
            label_col
                .and_then(|c| rec.get(c))
                .map(|v| v.trim().to_string()),
        );
        out.lines.push(line);
        out.leads.push(lead);
    }
    Ok(out)
}

fn parse_jsonl(bytes: &[u8], origin: &str, opts: &ReadOptions) -> Result<Leads, InputError> {
    let p = origin.to_string();
    let text = std::str::from_utf8(bytes).map_err(|e| InputError::Record {
        path: p.clone(),
        line: 0,
        message: format!("not UTF-8: {e}"),
    })?;
    let mut out = Leads {
        leads: Vec::new(),
        labels: Vec::new(),
        lines: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| InputError::Record {
            path: p.clone(),
            line: i as u64 + 1,
            message,
        };
        let mut value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        let label = match (&opts.label, value.as_object_mut()) {
            (Some(l), Some(obj)) => obj
                .remove(l)
                .map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string())),
            _ => None,
        };
        let lead: Lead = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
        if lead.id.is_empty() {
            return Err(err("empty id".into()));
        }
        out.labels.push(label);
        out.lines.push(i as u64 + 1);
        out.leads.push(lead);
    }
    Ok(out)
}
