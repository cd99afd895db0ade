//! Reading a free-text purchase timeline ("immediate", "this month", "Q1", "3 months",
//! "next year", ...) into a 0–100 urgency score. Deterministic: no clock is read, so a
//! named quarter ("Q3") counts as "within the year".

use crate::factors::{lowercase, Keywords, LowerBuf};

/// Urgency by months until purchase: ≤ ½ → 100, ≤ 1 → 90, ≤ 3 → 75, ≤ 6 → 55,
/// ≤ 12 → 35, later → 15.
fn by_months(months: f64) -> f64 {
    match months {
        m if m <= 0.5 => 100.0,
        m if m <= 1.0 => 90.0,
        m if m <= 3.0 => 75.0,
        m if m <= 6.0 => 55.0,
        m if m <= 12.0 => 35.0,
        _ => 15.0,
    }
}

/// Phrases checked in order; the first match wins.
const PHRASES: [(&str, f64); 19] = [
    ("no timeline", 15.0),
    ("not sure", 15.0),
    ("unknown", 15.0),
    ("someday", 15.0),
    ("just looking", 15.0),
    ("immediate", 100.0),
    ("asap", 100.0),
    ("urgent", 100.0),
    ("right away", 100.0),
    ("today", 100.0),
    ("this week", 100.0),
    ("next week", 95.0),
    ("this month", 90.0),
    ("next month", 80.0),
    ("this quarter", 80.0),
    ("next quarter", 65.0),
    ("this year", 50.0),
    ("end of year", 40.0),
    ("next year", 30.0),
];

/// The phrases of [`PHRASES`] alone, and prepared for matching.
const PHRASE_WORDS: [&str; PHRASES.len()] = {
    let mut words = [""; PHRASES.len()];
    let mut k = 0;
    while k < PHRASES.len() {
        words[k] = PHRASES[k].0;
        k += 1;
    }
    words
};
static PHRASE_KEYWORDS: Keywords = Keywords::new(&PHRASE_WORDS);

/// The first number in `text` and the unit word right after it, e.g. "3-6 months" → (3, "months").
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    let n: f64 = rest[..end].parse().ok()?;
    let unit = rest[end..]
        .split(|c: char| !c.is_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("");
    Some((n, unit))
}

/// Scores a timeline and appends why to `why`; unknown or unreadable text scores 30.
pub fn timeline(text: Option<&str>, why: &mut String) -> f64 {
    let Some(raw) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        why.push_str("no timeline given");
        return 30.0;
    };
    let mut buf: LowerBuf = [0; 256];
    let lower = lowercase(raw, &mut buf);
    // A known phrase, else a named quarter, else "N days/weeks/months/years".
    let score = PHRASE_KEYWORDS
        .find_first(&lower)
        .map(|k| PHRASES[k].1)
        .or_else(|| {
            lower
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| matches!(w, "q1" | "q2" | "q3" | "q4"))
                .then_some(60.0)
        })
        .or_else(|| {
            let (n, unit) = number_and_unit(&lower)?;
            let months = match unit {
                u if u.starts_with("day") => n / 30.0,
                u if u.starts_with("week") || u.starts_with("wk") => n / 4.3,
                u if u.starts_with("month") || u.starts_with("mo") => n,
                u if u.starts_with("year") || u.starts_with("yr") => 12.0 * n,
                _ => return None,
            };
            Some(by_months(months))
        });
    why.push_str("timeline '");
    why.push_str(raw);
    why.push('\'');
    match score {
        Some(score) => score,
        None => {
            why.push_str(" not understood");
            30.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> f64 {
        timeline(Some(s), &mut String::new())
    }

    #[test]
    fn phrases_and_periods() {
        assert_eq!(t("Immediate"), 100.0);
        assert_eq!(t("ASAP please"), 100.0);
        assert_eq!(t("this month"), 90.0);
        assert_eq!(t("this quarter"), 80.0);
        assert_eq!(t("Q1"), 60.0);
        assert_eq!(t("by Q3 2027"), 60.0);
        assert_eq!(t("2 weeks"), 100.0);
        assert_eq!(t("3 months"), 75.0);
        assert_eq!(t("3-6 months"), 75.0);
        assert_eq!(t("6 months"), 55.0);
        assert_eq!(t("within 90 days"), 75.0);
        assert_eq!(t("1 year"), 35.0);
        assert_eq!(t("next year"), 30.0);
        assert_eq!(t("not sure yet"), 15.0);
        assert_eq!(t("whenever"), 30.0);
        assert_eq!(timeline(None, &mut String::new()), 30.0);
    }
}
