//! Pure factor rules. Each returns a 0–100 score (higher = better for sales) and appends
//! a short explanation quoting the lead's own values to `why`.
//!
//! The rules run once per scored lead, so they avoid per-call allocations: explanations
//! are appended to one caller-owned buffer, numbers are written with a small digit writer
//! instead of `format!`, and keyword matching lowercases ASCII text on the stack.

use std::borrow::Cow;

/// Appends `x` rounded to `decimals` decimal places (half away from zero) to `out`.
///
/// Written through integers: `{:.N}` on floats goes through exact float-to-decimal
/// conversion, and any `format!` through `core::fmt` — the costliest parts of a score.
pub fn push_fixed(out: &mut String, x: f64, decimals: u32) {
    let scale = 10i64.pow(decimals);
    let n = (x * scale as f64).round() as i64;
    if n < 0 {
        out.push('-');
    }
    let mut n = n.unsigned_abs();
    // Digits right to left into a stack buffer, the decimal point after `decimals` of
    // them, and at least one digit before it ("0.05").
    let mut buf = [0u8; 24];
    let mut i = buf.len();
    let mut digits = 0;
    loop {
        if digits == decimals && decimals > 0 {
            i -= 1;
            buf[i] = b'.';
        }
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        digits += 1;
        if n == 0 && digits > decimals {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).expect("ASCII digits"));
}

/// `x` with `decimals` decimal places, as a new string (see [`push_fixed`]).
#[cfg(test)]
pub fn fixed(x: f64, decimals: u32) -> String {
    let mut s = String::new();
    push_fixed(&mut s, x, decimals);
    s
}

/// Appends an unsigned integer to `out`, without `core::fmt`.
fn push_u32(out: &mut String, n: u32) {
    push_fixed(out, f64::from(n), 0);
}

/// Stack space for lowercasing short ASCII text without allocating.
pub type LowerBuf = [u8; 256];

/// `s` lowercased for keyword matching. ASCII text (the usual case) is borrowed as is when
/// it has no capitals, else lowercased into `buf`; longer or non-ASCII text takes the
/// allocating path. Non-ASCII text keeps the full Unicode `to_lowercase` ("İ" becomes
/// "i̇", "K" (Kelvin) becomes "k"), so matching is exactly as with `to_lowercase` always.
pub fn lowercase<'a>(s: &'a str, buf: &'a mut LowerBuf) -> Cow<'a, str> {
    if !s.is_ascii() {
        return Cow::Owned(s.to_lowercase());
    }
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(s);
    }
    match buf.get_mut(..s.len()) {
        Some(lower) => {
            lower.copy_from_slice(s.as_bytes());
            lower.make_ascii_lowercase();
            let lower: &'a [u8] = lower;
            Cow::Borrowed(std::str::from_utf8(lower).expect("ASCII is UTF-8"))
        }
        None => Cow::Owned(s.to_ascii_lowercase()),
    }
}

/// A keyword list (ASCII, at most 32, none empty) prepared for [`Keywords::find_all`]:
/// for each ASCII byte, the keywords starting with it.
pub struct Keywords {
    pub words: &'static [&'static str],
    /// Bit `k` of `starting_with[b]` is set when `words[k]` starts with byte `b`.
    starting_with: [u32; 128],
}

impl Keywords {
    pub const fn new(words: &'static [&'static str]) -> Self {
        assert!(words.len() <= 32);
        let mut starting_with = [0u32; 128];
        let mut k = 0;
        while k < words.len() {
            assert!(words[k].is_ascii());
            starting_with[words[k].as_bytes()[0] as usize] |= 1 << k;
            k += 1;
        }
        Keywords {
            words,
            starting_with,
        }
    }

    /// Which keywords occur in `text`, as a bit set: bit `k` for `words[k]`.
    ///
    /// One pass over the text, comparing at each position only the keywords starting
    /// with that byte, instead of one substring search per keyword. Byte-wise matching of
    /// ASCII keywords finds exactly what `str::contains` finds.
    pub fn find_all(&self, text: &str) -> u32 {
        let text = text.as_bytes();
        let mut found = 0u32;
        for i in 0..text.len() {
            let rest = &text[i..];
            // No keyword starts with a non-ASCII byte.
            let starting = self.starting_with.get(usize::from(rest[0])).copied();
            let mut candidates = starting.unwrap_or(0) & !found;
            while candidates != 0 {
                let k = candidates.trailing_zeros();
                candidates &= candidates - 1;
                let word = self.words[k as usize].as_bytes();
                // Byte by byte: keywords are short, a `memcmp` call costs more.
                if word.len() <= rest.len() && word.iter().zip(rest).all(|(w, t)| w == t) {
                    found |= 1 << k;
                }
            }
        }
        found
    }

    /// The first keyword (in list order) that occurs in `text`.
    pub fn find_first(&self, text: &str) -> Option<usize> {
        let found = self.find_all(text);
        (found != 0).then(|| found.trailing_zeros() as usize)
    }

    /// Appends the keywords of `found` (see [`Keywords::find_all`]) in list order,
    /// comma-separated.
    fn push_list(&self, out: &mut String, found: u32) {
        let mut first = true;
        for (k, word) in self.words.iter().enumerate() {
            if found & (1 << k) != 0 {
                if !first {
                    out.push_str(", ");
                }
                out.push_str(word);
                first = false;
            }
        }
    }
}

/// Finds the first tier whose threshold `v` reaches; tiers are sorted high to low.
fn tier(v: f64, tiers: &[(f64, f64)]) -> f64 {
    tiers
        .iter()
        .find(|(min, _)| v >= *min)
        .map_or(tiers[tiers.len() - 1].1, |t| t.1)
}

/// Budget: the stated budget in tiers (≥100k → 100 … >0 → 25), +5 when the company's
/// revenue is ≥ 10M; without a budget, revenue alone (≥100M → 70 … → 30); neither → 30.
pub fn budget(budget: Option<f64>, revenue: Option<f64>, why: &mut String) -> f64 {
    const BUDGET: &[(f64, f64)] = &[
        (100_000.0, 100.0),
        (50_000.0, 85.0),
        (25_000.0, 70.0),
        (10_000.0, 55.0),
        (5_000.0, 40.0),
        (0.0, 25.0),
    ];
    const REVENUE: &[(f64, f64)] = &[(100e6, 70.0), (10e6, 60.0), (1e6, 45.0), (0.0, 30.0)];
    let revenue = revenue.filter(|r| r.is_finite() && *r >= 0.0);
    match (budget.filter(|b| b.is_finite() && *b >= 0.0), revenue) {
        (Some(b), r) => {
            let bonus = if r.is_some_and(|r| r >= 10e6) {
                5.0
            } else {
                0.0
            };
            why.push_str("stated budget ");
            push_fixed(why, b, 0);
            if let Some(r) = r {
                why.push_str(", company revenue ");
                push_fixed(why, r, 0);
            }
            (tier(b, BUDGET) + bonus).min(100.0)
        }
        (None, Some(r)) => {
            why.push_str("no stated budget; company revenue ");
            push_fixed(why, r, 0);
            tier(r, REVENUE)
        }
        (None, None) => {
            why.push_str("no budget or revenue given");
            30.0
        }
    }
}

/// Authority from the title: C-level/founder/owner 100, VP/head of 85, director 70,
/// manager/lead 50, intern/student 10, any other title 25, no title 20.
pub fn authority(title: Option<&str>, why: &mut String) -> f64 {
    let Some(title) = title.map(str::trim).filter(|t| !t.is_empty()) else {
        why.push_str("no title given");
        return 20.0;
    };
    let mut buf: LowerBuf = [0; 256];
    let lower = lowercase(title, &mut buf);

    // The levels whose title words occur, as flags (a title may name several).
    const VP: u8 = 1;
    const C_LEVEL: u8 = 2;
    const DIRECTOR: u8 = 4;
    const MANAGER: u8 = 8;
    const INTERN: u8 = 16;
    let mut words = 0u8;
    for word in lower.split(|c: char| !c.is_alphanumeric()) {
        words |= match word {
            "vp" | "svp" | "evp" | "avp" => VP,
            "ceo" | "cto" | "cfo" | "coo" | "cmo" | "cro" | "cio" | "ciso" | "founder"
            | "cofounder" | "owner" | "president" | "partner" => C_LEVEL,
            "director" => DIRECTOR,
            "manager" | "lead" | "supervisor" => MANAGER,
            "intern" | "student" | "trainee" => INTERN,
            _ => 0,
        };
    }
    // The highest level wins, VP phrases checked first ("Vice President" is not C-level).
    let (score, level) =
        if lower.contains("vice president") || lower.contains("head of") || words & VP != 0 {
            (85.0, "VP-level")
        } else if lower.contains("chief") || words & C_LEVEL != 0 {
            (100.0, "C-level")
        } else if words & DIRECTOR != 0 {
            (70.0, "director-level")
        } else if words & MANAGER != 0 {
            (50.0, "manager-level")
        } else if words & INTERN != 0 {
            (10.0, "intern/student-level")
        } else {
            (25.0, "individual contributor")
        };
    why.push_str("title '");
    why.push_str(title);
    why.push_str("' is ");
    why.push_str(level);
    score
}

/// Pain and buying signals in the notes (+15 each, from 35).
static PAIN: Keywords = Keywords::new(&[
    "pain",
    "manual",
    "struggl",
    "problem",
    "slow",
    "replace",
    "evaluat",
    "urgent",
    "spreadsheet",
    "inefficien",
    "losing",
    "frustrat",
    "rfp",
    "demo",
    "pricing",
    "quote",
    "budget approved",
    "need",
]);
/// Signals that there is no need (−25 each).
static NO_NEED: Keywords = Keywords::new(&[
    "just browsing",
    "no budget",
    "not interested",
    "no need",
    "happy with",
    "student project",
]);
/// Industries the product sells best into (+15); anything else named is neutral.
static TARGET_INDUSTRIES: Keywords = Keywords::new(&[
    "software",
    "saas",
    "tech",
    "financial",
    "fintech",
    "insurance",
    "healthcare",
    "e-commerce",
    "ecommerce",
    "retail",
    "telecom",
    "manufacturing",
    "logistics",
]);

/// Fit = Need: pain keywords in the notes and a target industry. Base 35 with notes,
/// 30 without; +15 per pain signal, −25 per no-need signal, +15 target industry.
pub fn fit(notes: Option<&str>, industry: Option<&str>, why: &mut String) -> f64 {
    let mut buf: LowerBuf = [0; 256];
    let lower = lowercase(notes.unwrap_or(""), &mut buf);
    let pains = PAIN.find_all(&lower);
    let nos = NO_NEED.find_all(&lower);
    let no_notes = lower.trim().is_empty();
    let mut score = if no_notes { 30.0 } else { 35.0 };
    score += 15.0 * pains.count_ones() as f64 - 25.0 * nos.count_ones() as f64;
    if no_notes {
        why.push_str("no notes");
    } else if pains == 0 && nos == 0 {
        why.push_str("notes show no pain signal");
    } else {
        why.push_str("notes signal need [");
        PAIN.push_list(why, pains);
        why.push_str("] against [");
        NO_NEED.push_list(why, nos);
        why.push(']');
    }
    match industry.map(str::trim).filter(|i| !i.is_empty()) {
        Some(i) => {
            let mut buf: LowerBuf = [0; 256];
            let target = TARGET_INDUSTRIES.find_all(&lowercase(i, &mut buf)) != 0;
            why.push_str("; industry '");
            why.push_str(i);
            if target {
                score += 15.0;
                why.push_str("' is a target industry");
            } else {
                why.push_str("' is outside the target list");
            }
        }
        None => why.push_str("; no industry given"),
    }
    score.clamp(0.0, 100.0)
}

/// Industries with long, multi-stakeholder buying processes (−10).
static REGULATED: Keywords = Keywords::new(&[
    "bank",
    "government",
    "public sector",
    "defense",
    "defence",
    "pharma",
]);

/// Complexity: how well the account's size suits the sales motion. 200–4,999 employees
/// 100, 50–199 80, 5,000+ 75 (long enterprise cycles), 10–49 50, under 10 25,
/// unknown 40; −10 in a regulated industry.
pub fn complexity(employees: Option<u32>, industry: Option<&str>, why: &mut String) -> f64 {
    let mut score = match employees {
        None => {
            why.push_str("company size unknown");
            40.0
        }
        Some(n) => {
            let (s, band) = match n {
                5000.. => (75.0, "enterprise, long buying cycle"),
                200..=4999 => (100.0, "mid-market sweet spot"),
                50..=199 => (80.0, "growing company"),
                10..=49 => (50.0, "small business"),
                _ => (25.0, "micro business"),
            };
            push_u32(why, n);
            why.push_str(" employees: ");
            why.push_str(band);
            s
        }
    };
    if let Some(i) = industry.map(str::trim) {
        let mut buf: LowerBuf = [0; 256];
        if REGULATED.find_all(&lowercase(i, &mut buf)) != 0 {
            score -= 10.0;
            why.push_str("; '");
            why.push_str(i);
            why.push_str("' adds regulatory complexity");
        }
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule's score.
    fn score(rule: impl FnOnce(&mut String) -> f64) -> f64 {
        rule(&mut String::new())
    }

    /// A rule's explanation.
    fn why(rule: impl FnOnce(&mut String) -> f64) -> String {
        let mut why = String::new();
        rule(&mut why);
        why
    }

    #[test]
    fn budget_tiers() {
        assert_eq!(score(|w| budget(Some(120_000.0), Some(50e6), w)), 100.0);
        assert_eq!(score(|w| budget(Some(30_000.0), None, w)), 70.0);
        assert_eq!(score(|w| budget(Some(30_000.0), Some(20e6), w)), 75.0);
        assert_eq!(score(|w| budget(None, Some(2e6), w)), 45.0);
        assert_eq!(score(|w| budget(None, None, w)), 30.0);
        assert_eq!(score(|w| budget(Some(f64::NAN), None, w)), 30.0);
        assert!(why(|w| budget(Some(120_000.0), None, w)).contains("120000"));
    }

    #[test]
    fn authority_levels() {
        assert_eq!(score(|w| authority(Some("VP of Sales"), w)), 85.0);
        assert_eq!(
            score(|w| authority(Some("Vice President, Marketing"), w)),
            85.0
        );
        assert_eq!(
            score(|w| authority(Some("Chief Revenue Officer"), w)),
            100.0
        );
        assert_eq!(score(|w| authority(Some("CEO & Co-Founder"), w)), 100.0);
        assert_eq!(score(|w| authority(Some("Director of IT"), w)), 70.0);
        assert_eq!(score(|w| authority(Some("Sales Manager"), w)), 50.0);
        assert_eq!(score(|w| authority(Some("Marketing Intern"), w)), 10.0);
        assert_eq!(score(|w| authority(Some("Data Analyst"), w)), 25.0);
        assert_eq!(score(|w| authority(None, w)), 20.0);
        // "cto" must match as a word, not inside "director".
        assert_eq!(score(|w| authority(Some("Director"), w)), 70.0);
    }

    #[test]
    fn fit_reads_notes_and_industry() {
        let mut hot = String::new();
        let s = fit(
            Some("Evaluating vendors, pain with manual scoring"),
            Some("Software"),
            &mut hot,
        );
        assert_eq!(s, 95.0);
        assert!(hot.contains("evaluat") && hot.contains("Software"));
        assert_eq!(
            score(|w| fit(Some("just browsing, no budget"), Some("Agriculture"), w)),
            0.0
        );
        assert_eq!(score(|w| fit(None, None, w)), 30.0);
    }

    #[test]
    fn complexity_bands() {
        assert_eq!(score(|w| complexity(Some(500), Some("Software"), w)), 100.0);
        assert_eq!(score(|w| complexity(Some(500), Some("Banking"), w)), 90.0);
        assert_eq!(score(|w| complexity(Some(20_000), None, w)), 75.0);
        assert_eq!(score(|w| complexity(Some(3), None, w)), 25.0);
        assert_eq!(score(|w| complexity(None, None, w)), 40.0);
    }
}
