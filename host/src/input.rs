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
    #[error("{path}: label column {label:?} not in the header")]
    MissingLabel { path: String, label: String },
    #[error("{path}, line {line}: {message}")]
    Record {
        path: String,
        line: u64,
        message: String,
    },
}

/// Options of reading: which column (if any) is a label to set aside (for backtests and
/// fits), and which columns fill which lead fields beyond the built-in names.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub label: Option<String>,
    pub map: ColumnMap,
}

/// A label value read as an outcome: `1`/`true`/`yes`/`y`/`won`/`converted` are
/// positive, `0`/`false`/`no`/`n`/`lost` negative (any case); anything else, or empty,
/// is no outcome (`None`).
pub fn parse_label(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "1.0" | "true" | "yes" | "y" | "won" | "converted" => Some(true),
        "0" | "0.0" | "false" | "no" | "n" | "lost" => Some(false),
        _ => None,
    }
}

/// Which input column fills which lead field (`--map timeline=timeline_days`): the
/// target is a lead field name (`employees`, `budget`, …) or, for any other name, the
/// attribute the column is renamed to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnMap {
    /// (target, source column), in the order given.
    pub pairs: Vec<(String, String)>,
}

impl ColumnMap {
    /// Parses `target=column` pairs separated by commas or new lines; `#` starts a
    /// comment line (the format of `--map-file`).
    pub fn parse(text: &str) -> Result<ColumnMap, String> {
        let mut pairs = Vec::new();
        for part in text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split(','))
        {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (target, source) = part.split_once('=').ok_or_else(|| {
                format!("{part:?} is not target=column (e.g. employees=headcount)")
            })?;
            let (target, source) = (target.trim(), source.trim());
            if target.is_empty() || source.is_empty() {
                return Err(format!("{part:?}: both sides of = must be named"));
            }
            if pairs.iter().any(|(t, _): &(String, String)| t == target) {
                return Err(format!("{target:?} is mapped twice"));
            }
            pairs.push((target.to_string(), source.to_string()));
        }
        Ok(ColumnMap { pairs })
    }

    /// The mapping of `--map` pairs and a `--map-file`, the file first.
    pub fn from_args(map: &[String], file: Option<&Path>) -> Result<ColumnMap, String> {
        let mut text = String::new();
        if let Some(f) = file {
            text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            text.push('\n');
        }
        for m in map {
            text.push_str(m);
            text.push('\n');
        }
        ColumnMap::parse(&text)
    }

    /// The target a source column is mapped to, if any.
    pub fn target_of(&self, column: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(_, s)| s == column)
            .map(|(t, _)| t.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
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

/// Checks the quoting of a CSV file the way RFC 4180 writes it, which the `csv` crate
/// (lenient by design) does not: a quoted field must be closed, and its closing quote
/// followed by a comma, a line break or the end. An unclosed quote would otherwise
/// swallow every following line into one field, silently merging records. A quoted field
/// may still span lines (legal CSV); each record must also have as many fields as the
/// header (checked while reading). Returns the line of the offending quote and why.
fn check_quoting(bytes: &[u8]) -> Result<(), (u64, String)> {
    let (mut line, mut i, mut field_start) = (1u64, 0usize, true);
    while i < bytes.len() {
        let b = bytes[i];
        if field_start && b == b'"' {
            let opened = line;
            i += 1;
            loop {
                match bytes.get(i) {
                    None => {
                        return Err((
                            opened,
                            "quoted field is never closed (an unmatched \" swallows the rest of the file)".into(),
                        ))
                    }
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => {
                        i += 1;
                        match bytes.get(i) {
                            None | Some(b',' | b'\n' | b'\r') => break,
                            Some(_) => {
                                return Err((
                                    line,
                                    format!(
                                        "text after the closing quote of a field opened on line {opened} \
                                         (a quote inside a quoted field is written \"\")"
                                    ),
                                ))
                            }
                        }
                    }
                    Some(b'\n') => {
                        line += 1;
                        i += 1;
                    }
                    Some(_) => i += 1,
                }
            }
            field_start = false;
            continue;
        }
        match b {
            b',' => field_start = true,
            b'\n' => {
                line += 1;
                field_start = true;
            }
            b'\r' => field_start = true,
            _ => field_start = false,
        }
        i += 1;
    }
    Ok(())
}

fn parse_csv(bytes: &[u8], origin: &str, opts: &ReadOptions) -> Result<Leads, InputError> {
    let p = origin.to_string();
    check_quoting(bytes).map_err(|(line, message)| InputError::Record {
        path: p.clone(),
        line,
        message,
    })?;
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = rdr
        .headers()
        .map_err(|e| InputError::Record {
            path: p.clone(),
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    for (_, source) in &opts.map.pairs {
        if !headers.iter().any(|h| h.trim() == source) {
            return Err(InputError::Record {
                path: p.clone(),
                line: 1,
                message: format!("mapped column {source:?} not in the header"),
            });
        }
    }
    // A mapped column takes its target's name; a column whose own name is a mapping's
    // target (and is not mapped itself) steps aside as an attribute, so one field has
    // one source.
    let columns: Vec<(String, Option<Field>)> = headers
        .iter()
        .map(|h| {
            let h = h.trim();
            match opts.map.target_of(h) {
                Some(t) => (t.to_string(), typed_field(&normalise(t))),
                None if opts.map.pairs.iter().any(|(t, _)| {
                    typed_field(&normalise(t)).is_some() && normalise(t) == normalise(h)
                }) =>
                {
                    (h.to_string(), None)
                }
                None => (h.to_string(), typed_field(&normalise(h))),
            }
        })
        .collect();
    let originals: Vec<String> = headers.iter().map(|h| h.trim().to_string()).collect();
    let label_col = opts.label.as_ref().map(|l| {
        originals
            .iter()
            .position(|h| h == l)
            .ok_or_else(|| InputError::MissingLabel {
                path: p.clone(),
                label: l.clone(),
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
        if rec.len() != headers.len() {
            return Err(err(format!(
                "record has {} fields, the header has {}",
                rec.len(),
                headers.len()
            )));
        }
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
        if let Some(obj) = value.as_object_mut() {
            apply_map_json(obj, &opts.map);
        }
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

/// Renames a JSON lead's keys by the mapping: a top-level key or an attribute becomes
/// its target; a typed numeric target gets a number from a numeric string.
fn apply_map_json(obj: &mut serde_json::Map<String, serde_json::Value>, map: &ColumnMap) {
    for (target, source) in &map.pairs {
        let value = obj.remove(source).or_else(|| {
            obj.get_mut("attributes")
                .and_then(|a| a.as_object_mut())
                .and_then(|a| a.remove(source))
        });
        let Some(mut value) = value else { continue };
        match typed_field(&normalise(target)) {
            Some(field) => {
                if matches!(
                    field,
                    Field::Employees | Field::AnnualRevenue | Field::Budget
                ) {
                    if let Some(n) = value
                        .as_str()
                        .and_then(|s| s.replace(',', "").trim().parse::<f64>().ok())
                    {
                        value = serde_json::json!(n);
                        if matches!(field, Field::Employees) && n.fract() == 0.0 && n >= 0.0 {
                            value = serde_json::json!(n as u64);
                        }
                    }
                }
                obj.insert(normalise(target), value);
            }
            None => {
                let attrs = obj
                    .entry("attributes")
                    .or_insert_with(|| serde_json::json!({}));
                if let Some(a) = attrs.as_object_mut() {
                    let text = value
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or(value.to_string());
                    a.insert(target.clone(), serde_json::Value::String(text));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Result<Leads, InputError> {
        parse(
            text.as_bytes(),
            "body",
            InputFormat::Csv,
            &ReadOptions::default(),
        )
    }

    fn mapped(text: &str, map: &str, format: InputFormat) -> Result<Leads, InputError> {
        let opts = ReadOptions {
            label: None,
            map: ColumnMap::parse(map).unwrap(),
        };
        parse(text.as_bytes(), "body", format, &opts)
    }

    #[test]
    fn a_mapped_csv_column_fills_its_lead_field() {
        let l = mapped(
            "id,headcount,timeline,wait\nm-1,250,soon,in 2 weeks\n",
            "employees=headcount,timeline=wait",
            InputFormat::Csv,
        )
        .unwrap();
        let lead = &l.leads[0];
        assert_eq!(lead.employees, Some(250));
        assert_eq!(lead.timeline.as_deref(), Some("in 2 weeks"));
        // The column that had the target's name steps aside as an attribute.
        assert_eq!(
            lead.attributes.get("timeline").map(String::as_str),
            Some("soon")
        );
        assert!(!lead.attributes.contains_key("headcount"));
    }

    #[test]
    fn a_mapping_naming_a_missing_column_is_refused() {
        let e = mapped("id,x\nm-1,2\n", "employees=headcount", InputFormat::Csv)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("\"headcount\" not in the header"), "{e}");
    }

    #[test]
    fn a_mapped_json_key_or_attribute_fills_its_lead_field() {
        let l = mapped(
            r#"{"id":"j-1","headcount":"1,200","attributes":{"wait":"Q3"}}"#,
            "employees=headcount,timeline=wait",
            InputFormat::Json,
        )
        .unwrap();
        assert_eq!(l.leads[0].employees, Some(1200));
        assert_eq!(l.leads[0].timeline.as_deref(), Some("Q3"));
    }

    #[test]
    fn map_text_refuses_pairs_without_equals_and_twice_mapped_targets() {
        assert!(ColumnMap::parse("employees").is_err());
        assert!(ColumnMap::parse("a=b,a=c").is_err());
        let m = ColumnMap::parse("# comment\nemployees = headcount\nbudget=b").unwrap();
        assert_eq!(m.target_of("b"), Some("budget"));
    }

    #[test]
    fn labels_read_common_outcome_words() {
        assert_eq!(parse_label(" Yes "), Some(true));
        assert_eq!(parse_label("0"), Some(false));
        assert_eq!(parse_label(""), None);
        assert_eq!(parse_label("maybe"), None);
    }

    #[test]
    fn an_unclosed_quote_is_refused_naming_its_line() {
        let e = csv("id,name\nqq-0,Zed\nqq-1,\"Ann\nqq-2,Bob\nqq-3,Cy\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("line 3") && e.contains("never closed"), "{e}");
    }

    #[test]
    fn text_after_a_closing_quote_is_refused() {
        let e = csv("id,name\nqq-1,\"Ann\nqq-2,Bob\nqq-3,\"Cy\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("line 4") && e.contains("opened on line 2"),
            "{e}"
        );
    }

    #[test]
    fn a_record_with_another_field_count_is_refused() {
        let e = csv("id,name\nqq-1,Ann\nqq-2,Bob,extra\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("line 3") && e.contains("3 fields"), "{e}");
    }

    #[test]
    fn quoted_fields_may_span_lines_and_hold_quotes() {
        let l =
            csv("id,name,notes\nqq-1,\"Ann \"\"A\"\"\",\"two\r\nlines\"\nqq-2,Bob,\"\"\n").unwrap();
        assert_eq!(l.leads.len(), 2);
        assert_eq!(l.leads[0].name.as_deref(), Some("Ann \"A\""));
        assert_eq!(l.leads[0].notes.as_deref(), Some("two\r\nlines"));
        assert_eq!(l.lines, vec![2, 4]);
    }
}
