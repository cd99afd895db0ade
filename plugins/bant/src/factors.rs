//! Pure factor rules. Each returns a 0–100 score (higher = better for sales) and a short
//! explanation quoting the lead's own values.

/// A factor's score and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rated {
    pub score: f64,
    pub why: String,
}

fn rated(score: f64, why: impl Into<String>) -> Rated {
    Rated {
        score,
        why: why.into(),
    }
}

/// `x` with `decimals` decimal places, formatted through integers: `{:.N}` on floats
/// goes through exact float-to-decimal conversion, the costliest part of a score.
pub fn fixed(x: f64, decimals: u32) -> String {
    let scale = 10i64.pow(decimals);
    let n = (x * scale as f64).round() as i64;
    let (sign, n) = if n < 0 { ("-", -n) } else { ("", n) };
    if decimals == 0 {
        format!("{sign}{n}")
    } else {
        format!(
            "{sign}{}.{:0width$}",
            n / scale,
            n % scale,
            width = decimals as usize
        )
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
pub fn budget(budget: Option<f64>, revenue: Option<f64>) -> Rated {
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
            let rev = r.map_or(String::new(), |r| {
                format!(", company revenue {}", fixed(r, 0))
            });
            rated(
                (tier(b, BUDGET) + bonus).min(100.0),
                format!("stated budget {}{rev}", fixed(b, 0)),
            )
        }
        (None, Some(r)) => rated(
            tier(r, REVENUE),
            format!("no stated budget; company revenue {}", fixed(r, 0)),
        ),
        (None, None) => rated(30.0, "no budget or revenue given"),
    }
}

/// Authority from the title: C-level/founder/owner 100, VP/head of 85, director 70,
/// manager/lead 50, intern/student 10, any other title 25, no title 20.
pub fn authority(title: Option<&str>) -> Rated {
    let Some(title) = title.map(str::trim).filter(|t| !t.is_empty()) else {
        return rated(20.0, "no title given");
    };
    let lower = title.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &[&str]| words.iter().any(|x| w.contains(x));
    let (score, level) = if lower.contains("vice president")
        || lower.contains("head of")
        || has(&["vp", "svp", "evp", "avp"])
    {
        (85.0, "VP-level")
    } else if lower.contains("chief")
        || has(&[
            "ceo",
            "cto",
            "cfo",
            "coo",
            "cmo",
            "cro",
            "cio",
            "ciso",
            "founder",
            "cofounder",
            "owner",
            "president",
            "partner",
        ])
    {
        (100.0, "C-level")
    } else if has(&["director"]) {
        (70.0, "director-level")
    } else if has(&["manager", "lead", "supervisor"]) {
        (50.0, "manager-level")
    } else if has(&["intern", "student", "trainee"]) {
        (10.0, "intern/student-level")
    } else {
        (25.0, "individual contributor")
    };
    rated(score, format!("title '{title}' is {level}"))
}

/// Pain and buying signals in the notes (+15 each, from 35).
const PAIN: &[&str] = &[
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
];
/// Signals that there is no need (−25 each).
const NO_NEED: &[&str] = &[
    "just browsing",
    "no budget",
    "not interested",
    "no need",
    "happy with",
    "student project",
];
/// Industries the product sells best into (+15); anything else named is neutral.
const TARGET_INDUSTRIES: &[&str] = &[
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
];

/// Fit = Need: pain keywords in the notes and a target industry. Base 35 with notes,
/// 30 without; +15 per pain signal, −25 per no-need signal, +15 target industry.
pub fn fit(notes: Option<&str>, industry: Option<&str>) -> Rated {
    let lower = notes.unwrap_or("").to_lowercase();
    let pains: Vec<&str> = PAIN.iter().copied().filter(|k| lower.contains(k)).collect();
    let nos: Vec<&str> = NO_NEED
        .iter()
        .copied()
        .filter(|k| lower.contains(k))
        .collect();
    let mut score = if lower.trim().is_empty() { 30.0 } else { 35.0 };
    score += 15.0 * pains.len() as f64 - 25.0 * nos.len() as f64;
    let mut why = match (pains.is_empty(), nos.is_empty()) {
        _ if lower.trim().is_empty() => "no notes".to_owned(),
        (true, true) => "notes show no pain signal".to_owned(),
        _ => format!(
            "notes signal need [{}] against [{}]",
            pains.join(", "),
            nos.join(", ")
        ),
    };
    match industry.map(str::trim).filter(|i| !i.is_empty()) {
        Some(i)
            if TARGET_INDUSTRIES
                .iter()
                .any(|t| i.to_lowercase().contains(t)) =>
        {
            score += 15.0;
            why.push_str(&format!("; industry '{i}' is a target industry"));
        }
        Some(i) => why.push_str(&format!("; industry '{i}' is outside the target list")),
        None => why.push_str("; no industry given"),
    }
    rated(score.clamp(0.0, 100.0), why)
}

/// Industries with long, multi-stakeholder buying processes (−10).
const REGULATED: &[&str] = &[
    "bank",
    "government",
    "public sector",
    "defense",
    "defence",
    "pharma",
];

/// Complexity: how well the account's size suits the sales motion. 200–4,999 employees
/// 100, 50–199 80, 5,000+ 75 (long enterprise cycles), 10–49 50, under 10 25,
/// unknown 40; −10 in a regulated industry.
pub fn complexity(employees: Option<u32>, industry: Option<&str>) -> Rated {
    let (mut score, mut why) = match employees {
        None => (40.0, "company size unknown".to_owned()),
        Some(n) => {
            let (s, band) = match n {
                5000.. => (75.0, "enterprise, long buying cycle"),
                200..=4999 => (100.0, "mid-market sweet spot"),
                50..=199 => (80.0, "growing company"),
                10..=49 => (50.0, "small business"),
                _ => (25.0, "micro business"),
            };
            (s, format!("{n} employees: {band}"))
        }
    };
    if let Some(i) = industry.filter(|i| REGULATED.iter().any(|r| i.to_lowercase().contains(r))) {
        score -= 10.0;
        why.push_str(&format!("; '{}' adds regulatory complexity", i.trim()));
    }
    rated(score, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_tiers() {
        assert_eq!(budget(Some(120_000.0), Some(50e6)).score, 100.0);
        assert_eq!(budget(Some(30_000.0), None).score, 70.0);
        assert_eq!(budget(Some(30_000.0), Some(20e6)).score, 75.0);
        assert_eq!(budget(None, Some(2e6)).score, 45.0);
        assert_eq!(budget(None, None).score, 30.0);
        assert_eq!(budget(Some(f64::NAN), None).score, 30.0);
        assert!(budget(Some(120_000.0), None).why.contains("120000"));
    }

    #[test]
    fn authority_levels() {
        assert_eq!(authority(Some("VP of Sales")).score, 85.0);
        assert_eq!(authority(Some("Vice President, Marketing")).score, 85.0);
        assert_eq!(authority(Some("Chief Revenue Officer")).score, 100.0);
        assert_eq!(authority(Some("CEO & Co-Founder")).score, 100.0);
        assert_eq!(authority(Some("Director of IT")).score, 70.0);
        assert_eq!(authority(Some("Sales Manager")).score, 50.0);
        assert_eq!(authority(Some("Marketing Intern")).score, 10.0);
        assert_eq!(authority(Some("Data Analyst")).score, 25.0);
        assert_eq!(authority(None).score, 20.0);
        // "cto" must match as a word, not inside "director".
        assert_eq!(authority(Some("Director")).score, 70.0);
    }

    #[test]
    fn fit_reads_notes_and_industry() {
        let hot = fit(
            Some("Evaluating vendors, pain with manual scoring"),
            Some("Software"),
        );
        assert_eq!(hot.score, 95.0);
        assert!(hot.why.contains("evaluat") && hot.why.contains("Software"));
        assert_eq!(
            fit(Some("just browsing, no budget"), Some("Agriculture")).score,
            0.0
        );
        assert_eq!(fit(None, None).score, 30.0);
    }

    #[test]
    fn complexity_bands() {
        assert_eq!(complexity(Some(500), Some("Software")).score, 100.0);
        assert_eq!(complexity(Some(500), Some("Banking")).score, 90.0);
        assert_eq!(complexity(Some(20_000), None).score, 75.0);
        assert_eq!(complexity(Some(3), None).score, 25.0);
        assert_eq!(complexity(None, None).score, 40.0);
    }
}
