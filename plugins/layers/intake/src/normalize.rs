//! Normalising and validating a raw lead (pure: no host calls).

use serde::Serialize;
use serde_json::{Map, Value};
use strata_sdk::layer::stable_id;

/// A lead after normalisation, in the CRM's field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NormalLead {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub industry: Option<String>,
    pub employees: Option<u32>,
    pub annual_revenue: Option<f64>,
    pub budget: Option<f64>,
    pub timeline: Option<String>,
    pub source: Option<String>,
    pub notes: Option<String>,
    /// ISO 3166 alpha-2 country code (upper case), when given.
    #[serde(skip)]
    pub country: Option<String>,
}

/// The verdict on a raw lead.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per run
pub enum Verdict {
    Accepted {
        lead: NormalLead,
        /// What normalisation changed, one line each.
        changes: Vec<String>,
    },
    Rejected {
        reasons: Vec<String>,
    },
}

/// Trims and collapses runs of whitespace; `None` when nothing is left.
pub fn clean_text(s: &str) -> Option<String> {
    let out = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!out.is_empty()).then_some(out)
}

/// Title-cases each word (after spaces, hyphens and apostrophes) that is all lower or all
/// upper case; mixed-case words ("McDonald", "DeVries") are kept as written.
pub fn title_case_name(s: &str) -> String {
    s.split(' ')
        .map(|word| {
            let has_lower = word.chars().any(char::is_lowercase);
            let has_upper = word.chars().any(char::is_uppercase);
            if has_lower && has_upper {
                return word.to_string();
            }
            let mut out = String::with_capacity(word.len());
            let mut start = true;
            for c in word.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.extend(c.to_lowercase());
                }
                start = matches!(c, '-' | '\'' | '’' | '.');
            }
            out
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Syntax check of an e-mail address (already trimmed and lower-cased): one `@`, a
/// dot-atom local part of at most 64 characters, a domain of at least two labels of
/// letters, digits and inner hyphens, a top-level label of at least two letters.
pub fn valid_email(s: &str) -> bool {
    if s.len() > 254 {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    const SPECIAL: &str = "!#$%&'*+/=?^_`{|}~-.";
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SPECIAL.contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// Parses an amount or count as people type it: `50,000`, `$1.2M`, `1.5k`, `€ 200K`,
/// `USD 50000`, `2 million`, `1bn`, `200+`. `None` when it is not a number.
pub fn parse_number(raw: &str) -> Option<f64> {
    let mut s = raw.trim().to_ascii_lowercase();
    for prefix in ["usd", "eur", "gbp", "us$", "$", "€", "£"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.trim_start().to_string();
        }
    }
    for suffix in ["usd", "eur", "gbp", "$", "€", "£", "+"] {
        if let Some(rest) = s.strip_suffix(suffix) {
            s = rest.trim_end().to_string();
        }
    }
    let (num, mult) = [
        ("billion", 1e9),
        ("million", 1e6),
        ("thousand", 1e3),
        ("bn", 1e9),
        ("mm", 1e6),
        ("m", 1e6),
        ("k", 1e3),
        ("b", 1e9),
    ]
    .iter()
    .find_map(|(suf, m)| {
        s.strip_suffix(suf)
            .map(|rest| (rest.trim_end().to_string(), *m))
    })
    .unwrap_or((s.clone(), 1.0));
    let digits: String = num
        .chars()
        .filter(|c| *c != ',' && *c != '_' && *c != ' ')
        .collect();
    if digits.is_empty()
        || !digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
    {
        return None;
    }
    let v: f64 = digits.parse().ok()?;
    let v = v * mult;
    v.is_finite().then_some(v)
}

/// Canonical timeline words the BANT scorer reads ("immediate", "this month", "3 months",
/// "next year", ...), lower case; other text is kept (cleaned, lower case).
pub fn canonical_timeline(s: &str) -> String {
    let t = s.trim().to_lowercase();
    let t = t.trim_end_matches(['.', '!']).to_string();
    const SYNONYMS: &[(&[&str], &str)] = &[
        (
            &[
                "asap",
                "a.s.a.p",
                "now",
                "immediately",
                "immediate",
                "urgent",
                "right away",
                "right now",
                "today",
            ],
            "immediate",
        ),
        (
            &["this week", "within a week", "1 week", "one week"],
            "this week",
        ),
        (&["next week"], "next week"),
        (
            &[
                "this month",
                "within a month",
                "1 month",
                "one month",
                "30 days",
            ],
            "this month",
        ),
        (&["next month"], "next month"),
        (
            &["this quarter", "this q", "current quarter", "90 days"],
            "this quarter",
        ),
        (&["next quarter", "next q"], "next quarter"),
        (
            &[
                "this year",
                "within a year",
                "12 months",
                "1 year",
                "one year",
            ],
            "this year",
        ),
        (&["next year"], "next year"),
        (
            &[
                "none",
                "n/a",
                "na",
                "no timeline",
                "unknown",
                "not sure",
                "tbd",
                "-",
            ],
            "no timeline",
        ),
    ];
    for (words, canon) in SYNONYMS {
        if words.contains(&t.as_str()) {
            return (*canon).to_string();
        }
    }
    // "3-6 mo", "6 mos", "2 wks" → "3-6 months", "6 months", "2 weeks".
    let unit_names: &[(&[&str], &str)] = &[
        (
            &["mo", "mos", "mth", "mths", "month", "months", "m"],
            "months",
        ),
        (&["wk", "wks", "week", "weeks", "w"], "weeks"),
        (&["d", "day", "days"], "days"),
        (&["yr", "yrs", "year", "years", "y"], "years"),
    ];
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '-' || c == '.' || c == ' '))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let num = num.replace(' ', "");
    if !num.is_empty() && num.starts_with(|c: char| c.is_ascii_digit()) {
        for (names, canon) in unit_names {
            if names.contains(&unit.trim()) {
                return format!("{num} {canon}");
            }
        }
    }
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn raw_text(raw: &Map<String, Value>, key: &str) -> Option<String> {
    match raw.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The lead id: `external_id` if given, else `lead-` + 12 hex chars of the FNV-1a hash of
/// the normalised e-mail, else of `name|company` (lower case): the same person always
/// maps to the same id.
pub fn derive_id(
    external_id: Option<&str>,
    email: Option<&str>,
    name: Option<&str>,
    company: Option<&str>,
) -> Option<String> {
    if let Some(x) = external_id.and_then(clean_text) {
        return Some(x);
    }
    if let Some(e) = email {
        return Some(stable_id("lead-", &format!("email:{e}")));
    }
    match (name, company) {
        (Some(n), Some(c)) => Some(stable_id(
            "lead-",
            &format!("name:{}|{}", n.to_lowercase(), c.to_lowercase()),
        )),
        _ => None,
    }
}

/// Normalises and validates a raw `lead.received` payload.
pub fn normalize(raw: &Map<String, Value>) -> Verdict {
    let mut changes = Vec::new();
    let mut reasons = Vec::new();

    let text = |key: &str, changes: &mut Vec<String>| -> Option<String> {
        let original = raw_text(raw, key)?;
        let cleaned = clean_text(&original);
        match &cleaned {
            Some(c) if *c != original => changes.push(format!("{key}: trimmed whitespace")),
            None if !original.is_empty() => changes.push(format!("{key}: blank, dropped")),
            _ => {}
        }
        cleaned
    };

    let name = text("name", &mut changes).map(|n| {
        let t = title_case_name(&n);
        if t != n {
            changes.push(format!("name: {n:?} → {t:?}"));
        }
        t
    });
    let company = text("company", &mut changes);
    let title = text("title", &mut changes);
    let industry = text("industry", &mut changes);
    let source = text("source", &mut changes).map(|s| s.to_lowercase());
    let notes = text("notes", &mut changes);
    let timeline = text("timeline", &mut changes).map(|t| {
        let c = canonical_timeline(&t);
        if c != t {
            changes.push(format!("timeline: {t:?} → {c:?}"));
        }
        c
    });
    let country = text("country", &mut changes).and_then(|c| {
        let up = c.to_ascii_uppercase();
        if up.len() == 2 && up.chars().all(|ch| ch.is_ascii_alphabetic()) {
            Some(up)
        } else {
            changes.push(format!("country: {c:?} is not a two-letter code, dropped"));
            None
        }
    });

    let email = text("email", &mut changes).and_then(|e| {
        let stripped = e
            .trim_start_matches("mailto:")
            .trim_matches(|c| c == '<' || c == '>')
            .to_lowercase();
        if stripped != e {
            changes.push("email: lower-cased".to_string());
        }
        if valid_email(&stripped) {
            Some(stripped)
        } else {
            changes.push(format!("email: {e:?} is not a valid address, dropped"));
            None
        }
    });
    let email_given = raw_text(raw, "email").is_some_and(|e| !e.trim().is_empty());

    let number = |key: &str, changes: &mut Vec<String>, reasons: &mut Vec<String>| -> Option<f64> {
        let v = match raw.get(key)? {
            Value::Null => return None,
            Value::Number(n) => n.as_f64()?,
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => match parse_number(s) {
                Some(v) => {
                    if s.trim().parse::<f64>().ok() != Some(v) {
                        changes.push(format!("{key}: parsed {s:?} as {v}"));
                    }
                    v
                }
                None => {
                    changes.push(format!("{key}: {s:?} is not a number, dropped"));
                    return None;
                }
            },
            _ => return None,
        };
        if v < 0.0 {
            reasons.push(format!("{key} must not be negative (got {v})"));
            return None;
        }
        Some(v)
    };
    let employees = number("employees", &mut changes, &mut reasons).map(|v| {
        let r = v.round().min(u32::MAX as f64) as u32;
        if f64::from(r) != v {
            changes.push(format!("employees: rounded {v} to {r}"));
        }
        r
    });
    let annual_revenue = number("annual_revenue", &mut changes, &mut reasons);
    let budget = number("budget", &mut changes, &mut reasons);

    if email.is_none() && (name.is_none() || company.is_none()) {
        reasons.push(if email_given {
            "the e-mail address is not valid and there is no name and company to identify the lead"
                .to_string()
        } else {
            "needs a valid e-mail address, or a name and a company".to_string()
        });
    }
    let external = raw_text(raw, "external_id");
    let id = derive_id(
        external.as_deref(),
        email.as_deref(),
        name.as_deref(),
        company.as_deref(),
    );
    if !reasons.is_empty() {
        return Verdict::Rejected { reasons };
    }
    let Some(id) = id else {
        return Verdict::Rejected {
            reasons: vec!["cannot derive a lead id".into()],
        };
    };
    Verdict::Accepted {
        lead: NormalLead {
            id,
            name,
            email,
            company,
            title,
            industry,
            employees,
            annual_revenue,
            budget,
            timeline,
            source,
            notes,
            country,
        },
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn accepted(v: Value) -> (NormalLead, Vec<String>) {
        match normalize(&raw(v)) {
            Verdict::Accepted { lead, changes } => (lead, changes),
            other => panic!("rejected: {other:?}"),
        }
    }

    fn rejected(v: Value) -> Vec<String> {
        match normalize(&raw(v)) {
            Verdict::Rejected { reasons } => reasons,
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn text_is_trimmed_and_collapsed() {
        assert_eq!(clean_text("  Acme \t  Corp \n"), Some("Acme Corp".into()));
        assert_eq!(clean_text("   "), None);
    }

    #[test]
    fn names_are_title_cased_but_mixed_case_is_kept() {
        assert_eq!(title_case_name("jane o'neil-smith"), "Jane O'Neil-Smith");
        assert_eq!(title_case_name("JOHN DOE"), "John Doe");
        assert_eq!(title_case_name("Ronald McDonald"), "Ronald McDonald");
        assert_eq!(title_case_name("émile zola"), "Émile Zola");
    }

    #[test]
    fn email_syntax() {
        for ok in [
            "a@b.co",
            "jane.doe+crm@mail.example.com",
            "x_y@sub-domain.example.org",
        ] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "a@b",
            "a@@b.com",
            ".a@b.com",
            "a..b@c.com",
            "a@-b.com",
            "a@b.c",
            "a b@c.com",
            "a@b.123",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn numbers_and_money() {
        assert_eq!(parse_number("50,000"), Some(50_000.0));
        assert_eq!(parse_number("$1.2M"), Some(1_200_000.0));
        assert_eq!(parse_number("1.5k"), Some(1_500.0));
        assert_eq!(parse_number("€ 200K"), Some(200_000.0));
        assert_eq!(parse_number("USD 50000"), Some(50_000.0));
        assert_eq!(parse_number("2 million"), Some(2_000_000.0));
        assert_eq!(parse_number("1bn"), Some(1e9));
        assert_eq!(parse_number("200+"), Some(200.0));
        assert_eq!(parse_number("-5"), Some(-5.0));
        assert_eq!(parse_number("lots"), None);
        assert_eq!(parse_number("$"), None);
        assert_eq!(parse_number("1e400"), None);
    }

    #[test]
    fn timelines_become_canonical() {
        assert_eq!(canonical_timeline("ASAP"), "immediate");
        assert_eq!(canonical_timeline(" Right away! "), "immediate");
        assert_eq!(canonical_timeline("Next Quarter"), "next quarter");
        assert_eq!(canonical_timeline("3-6 mo"), "3-6 months");
        assert_eq!(canonical_timeline("2 wks"), "2 weeks");
        assert_eq!(canonical_timeline("N/A"), "no timeline");
        assert_eq!(canonical_timeline("Q3  2026"), "q3 2026");
    }

    #[test]
    fn a_messy_lead_is_normalised() {
        let (lead, changes) = accepted(json!({
            "name": "  jane   DOE ", "email": " Jane.Doe@Example.COM ", "company": "Acme  Corp",
            "employees": "1,200", "budget": "$50k", "annual_revenue": 3_000_000,
            "timeline": "asap", "source": "Web Form", "country": "de"
        }));
        assert_eq!(lead.name.as_deref(), Some("Jane Doe"));
        assert_eq!(lead.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(lead.company.as_deref(), Some("Acme Corp"));
        assert_eq!(lead.employees, Some(1200));
        assert_eq!(lead.budget, Some(50_000.0));
        assert_eq!(lead.annual_revenue, Some(3e6));
        assert_eq!(lead.timeline.as_deref(), Some("immediate"));
        assert_eq!(lead.source.as_deref(), Some("web form"));
        assert_eq!(lead.country.as_deref(), Some("DE"));
        assert!(
            lead.id.starts_with("lead-") && lead.id.len() == 17,
            "{}",
            lead.id
        );
        for needle in [
            "name:",
            "email: lower-cased",
            "employees: parsed",
            "budget: parsed",
            "timeline:",
        ] {
            assert!(
                changes.iter().any(|c| c.contains(needle)),
                "{needle} in {changes:?}"
            );
        }
    }

    #[test]
    fn same_person_same_id() {
        let (a, _) = accepted(json!({"email": "ANN@example.com", "name": "Ann"}));
        let (b, _) = accepted(json!({"email": " ann@EXAMPLE.com", "company": "Other"}));
        assert_eq!(a.id, b.id);
        let (c, _) = accepted(json!({"name": "bob smith", "company": "Acme"}));
        let (d, _) = accepted(json!({"name": "Bob  Smith", "company": "ACME "}));
        assert_eq!(c.id, d.id);
        assert_ne!(a.id, c.id);
        let (e, _) = accepted(json!({"external_id": " crm-77 ", "email": "ann@example.com"}));
        assert_eq!(e.id, "crm-77");
        let (f, _) = accepted(json!({"external_id": 1234, "email": "ann@example.com"}));
        assert_eq!(f.id, "1234");
        // Pinned: ids must never change across builds (stored leads depend on them).
        assert_eq!(
            a.id,
            derive_id(None, Some("ann@example.com"), None, None).unwrap()
        );
        assert_eq!(a.id, stable_id("lead-", "email:ann@example.com"));
    }

    #[test]
    fn validation_rejects() {
        let r = rejected(json!({}));
        assert_eq!(
            r,
            vec!["needs a valid e-mail address, or a name and a company"]
        );
        let r = rejected(json!({"email": "not-an-email", "name": "Ann"}));
        assert!(r[0].contains("not valid"));
        let r = rejected(json!({"email": "a@b.com", "budget": "-5", "employees": -3}));
        assert_eq!(r.len(), 2, "{r:?}");
        // A bad e-mail with a name and a company is kept, without the e-mail.
        let (l, changes) = accepted(json!({"email": "bad@", "name": "Ann", "company": "Acme"}));
        assert_eq!(l.email, None);
        assert!(changes.iter().any(|c| c.contains("not a valid address")));
        // Unparseable numbers are dropped, not fatal.
        let (l, changes) = accepted(json!({"email": "a@b.com", "budget": "lots"}));
        assert_eq!(l.budget, None);
        assert!(changes.iter().any(|c| c.contains("not a number")));
    }
}
