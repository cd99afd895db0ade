//! Golden test: the BANT scorer's output, byte for byte, must not change.
//!
//! Scores every row of the labelled data set `tests/data/leads-xeducation.csv` (repo root,
//! mapped onto BANT fields, see [`csv_leads`]) and a few hundred synthetic leads covering
//! every rule's branches ([`synthetic_leads`]), and compares FNV-1a digests of the complete
//! outputs (value and confidence as exact bits, priority, action, reasoning, factors) with
//! `tests/golden.txt`: one line per synthetic lead, one per 500 CSV rows, one in total.
//!
//! Run natively: `cargo test -p bant --target x86_64-unknown-linux-gnu --test golden`.
//! After an intended change of the output, regenerate the file with `BANT_BLESS=1`.
//! `cargo test ... --test golden -- --ignored --nocapture timing` prints ns per lead.

use std::fmt::Write as _;
use strata_sdk::{Lead, LeadStatus, Score};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden.txt");
const CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/leads-xeducation.csv"
);
/// CSV rows per digest line.
const CHUNK: usize = 500;

fn lead(id: String) -> Lead {
    Lead {
        id,
        name: None,
        email: None,
        company: None,
        title: None,
        industry: None,
        employees: None,
        annual_revenue: None,
        budget: None,
        timeline: None,
        source: None,
        status: LeadStatus::New,
        notes: None,
        attributes: vec![],
    }
}

/// Everything a score holds, floats as exact bits (plus their shortest form, for reading).
fn dump(s: &Score) -> String {
    let mut out = format!(
        "value={:?}/{:016x} priority={:?} confidence={:?}/{:016x}\naction={:?}\nreasoning={:?}\n",
        s.value,
        s.value.to_bits(),
        s.priority,
        s.confidence,
        s.confidence.to_bits(),
        s.recommended_action,
        s.reasoning,
    );
    for f in &s.factors {
        writeln!(
            out,
            "factor {:?}={:?}/{:016x}",
            f.name,
            f.score,
            f.score.to_bits()
        )
        .unwrap();
    }
    out
}

/// 64-bit FNV-1a.
fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Splits one CSV record (RFC 4180 quoting, no embedded newlines in this file).
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

/// Timelines the CSV rows take in turn (the data set has no timeline column).
const CSV_TIMELINES: &[&str] = &[
    "",
    "this quarter",
    "3 months",
    "Q2",
    "next year",
    "ASAP",
    "whenever",
    "2 weeks",
    "not sure",
    "within 90 days",
    "1.5 years",
];

/// The data set mapped onto BANT fields (it has none of its own): occupation → title,
/// specialization → industry, tags + last activity + motivation → notes, website time ×
/// 37.5 → budget, visits × 1.3M → revenue, page views per visit × 97 → employees, lead
/// quality → status, city → company, lead number → name; the timeline from a fixed list.
fn csv_leads() -> Vec<Lead> {
    let text = std::fs::read_to_string(CSV).expect("read the data set");
    let mut lines = text.lines();
    let header = split_csv(lines.next().unwrap());
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (id, number, occupation, specialization, tags, activity, matters) = (
        col("Prospect ID"),
        col("Lead Number"),
        col("What is your current occupation"),
        col("Specialization"),
        col("Tags"),
        col("Last Activity"),
        col("What matters most to you in choosing a course"),
    );
    let (time, visits, views, quality, city) = (
        col("Total Time Spent on Website"),
        col("TotalVisits"),
        col("Page Views Per Visit"),
        col("Lead Quality"),
        col("City"),
    );
    lines
        .enumerate()
        .map(|(i, line)| {
            let row = split_csv(line);
            let cell = |c: usize| row.get(c).map(String::as_str).unwrap_or("");
            let text = |c: usize| Some(cell(c).to_owned()).filter(|s| !s.is_empty());
            let num = |c: usize| cell(c).parse::<f64>().ok();
            let notes = [cell(tags), cell(activity), cell(matters)]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(". ");
            Lead {
                name: text(number),
                company: text(city),
                title: text(occupation),
                industry: text(specialization),
                notes: Some(notes).filter(|n| !n.is_empty()),
                timeline: Some(CSV_TIMELINES[i % CSV_TIMELINES.len()].to_owned()),
                budget: num(time).map(|t| t * 37.5),
                annual_revenue: num(visits).map(|v| v * 1.3e6),
                employees: num(views).map(|v| (v * 97.0) as u32),
                status: match cell(quality) {
                    "Worst" => LeadStatus::Junk,
                    "Not Sure" => LeadStatus::Unqualified,
                    "High in Relevance" => LeadStatus::Qualified,
                    "Low in Relevance" => LeadStatus::Nurture,
                    "Might be" => LeadStatus::Contacted,
                    _ => LeadStatus::New,
                },
                ..lead(cell(id).to_owned())
            }
        })
        .collect()
}

/// Synthetic leads covering every branch of every rule, each with a short label.
fn synthetic_leads() -> Vec<(String, Lead)> {
    let titles: &[Option<&str>] = &[
        None,
        Some(""),
        Some("   "),
        Some("CEO"),
        Some("ceo & co-founder"),
        Some("Chief Revenue Officer"),
        Some("Founder"),
        Some("Owner"),
        Some("President"),
        Some("Managing Partner"),
        Some("CISO"),
        Some("VP of Sales"),
        Some("SVP, Engineering"),
        Some("Vice President, Marketing"),
        Some("  Head of Growth  "),
        Some("Director of IT"),
        Some("Director"),
        Some("Sales Manager"),
        Some("Team Lead"),
        Some("Supervisor"),
        Some("Marketing Intern"),
        Some("Student"),
        Some("Trainee"),
        Some("Data Analyst"),
        Some("Unemployed"),
        Some("Directeur Général"),
        Some("VİCE PRESİDENT"),
        Some("Vice-Président"),
        Some("Geschäftsführer"),
        Some("ДИРЕКТОР"),
        Some("CTO/CIO"),
        Some("cto"),
        Some("VP"),
        Some("Leader of the band"),
        Some(
            "A very long title that goes on and on past any small buffer a scorer might keep \
             on its stack, Senior Vice President of Global Strategic Partnerships and Alliances \
             for the Europe, Middle East and Africa Region, Director",
        ),
    ];
    let money: &[Option<f64>] = &[
        None,
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(-5.0),
        Some(-0.0),
        Some(0.0),
        Some(0.4),
        Some(0.5),
        Some(2.5),
        Some(4_999.99),
        Some(5_000.0),
        Some(10_000.0),
        Some(24_999.5),
        Some(25_000.0),
        Some(50_000.0),
        Some(99_999.49),
        Some(100_000.0),
        Some(1e6),
        Some(9_999_999.5),
        Some(10e6),
        Some(1.5e8),
        Some(1e19),
        Some(1e300),
    ];
    let timelines: &[Option<&str>] = &[
        None,
        Some(""),
        Some("  "),
        Some("No timeline"),
        Some("not sure yet"),
        Some("Unknown"),
        Some("someday"),
        Some("just looking"),
        Some("Immediate"),
        Some("ASAP please"),
        Some("urgent"),
        Some("right away"),
        Some("today"),
        Some("this week"),
        Some("next week"),
        Some("this month"),
        Some("next month"),
        Some("this quarter"),
        Some("next quarter"),
        Some("this year"),
        Some("end of year"),
        Some("next year"),
        Some("Q1"),
        Some("by Q3 2027"),
        Some("q4"),
        Some("Q5"),
        Some("10 days"),
        Some("45 days"),
        Some("2 weeks"),
        Some("3 wks"),
        Some("13 weeks"),
        Some("1 month"),
        Some("3 months"),
        Some("3-6 months"),
        Some("6 mo"),
        Some("7 months"),
        Some("12 months"),
        Some("1 year"),
        Some("2 yrs"),
        Some("1.5 years"),
        Some("0.5 months"),
        Some("1.2.3 months"),
        Some("within 90 days"),
        Some("5"),
        Some("5 apples"),
        Some("whenever"),
        Some("IMMÉDIATEMENT"),
        Some("dans 3 mois"),
        Some("3 MONTHS"),
        Some("next quarter, maybe Q1, 2 weeks"),
    ];
    let notes: &[Option<&str>] = &[
        None,
        Some(""),
        Some("   "),
        Some("Called twice"),
        Some("Evaluating vendors, pain with manual scoring"),
        Some("just browsing, no budget"),
        Some("Struggling with slow spreadsheets; need to replace them; urgent"),
        Some("RFP out, asked for a demo, pricing and a quote; budget approved"),
        Some("Inefficient process, losing deals, frustrated team, a real problem"),
        Some("Not interested, happy with current tool, no need, student project"),
        Some("NEED A DEMO"),
        Some("Besoin d'une démo, problème de tableur"),
        Some("ÉVALUATION en cours, need pricing"),
    ];
    let industries: &[Option<&str>] = &[
        None,
        Some(""),
        Some("  "),
        Some("Software"),
        Some(" SaaS "),
        Some("FinTech"),
        Some("Banking, Investment And Insurance"),
        Some("Bank"),
        Some("Government"),
        Some("Public Sector"),
        Some("Defence"),
        Some("Pharmaceuticals"),
        Some("E-Commerce"),
        Some("Agriculture"),
        Some("Télécom"),
        Some("BAN\u{212A}"),
    ];
    let employees: &[Option<u32>] = &[
        None,
        Some(0),
        Some(9),
        Some(10),
        Some(49),
        Some(50),
        Some(199),
        Some(200),
        Some(4_999),
        Some(5_000),
        Some(u32::MAX),
    ];
    let statuses = [
        LeadStatus::New,
        LeadStatus::Contacted,
        LeadStatus::Nurture,
        LeadStatus::Qualified,
        LeadStatus::Unqualified,
        LeadStatus::Junk,
    ];

    let mut out = Vec::new();
    let mut push = |label: String, l: Lead| {
        let n = out.len();
        out.push((
            label,
            Lead {
                id: format!("s{n}"),
                ..l
            },
        ));
    };
    let base = || Lead {
        title: Some("Director of IT".into()),
        industry: Some("Software".into()),
        employees: Some(500),
        annual_revenue: Some(20e6),
        budget: Some(30_000.0),
        timeline: Some("this quarter".into()),
        notes: Some("Evaluating vendors".into()),
        ..lead(String::new())
    };
    // One axis at a time, the rest from `base`.
    for t in titles {
        push(
            format!("title {t:?}"),
            Lead {
                title: t.map(Into::into),
                ..base()
            },
        );
    }
    for b in money {
        for r in money {
            push(
                format!("budget {b:?} revenue {r:?}"),
                Lead {
                    budget: *b,
                    annual_revenue: *r,
                    ..base()
                },
            );
        }
    }
    for t in timelines {
        push(
            format!("timeline {t:?}"),
            Lead {
                timeline: t.map(Into::into),
                ..base()
            },
        );
    }
    for n in notes {
        for i in industries {
            push(
                format!("notes {n:?} industry {i:?}"),
                Lead {
                    notes: n.map(Into::into),
                    industry: i.map(Into::into),
                    ..base()
                },
            );
        }
    }
    for e in employees {
        for i in [None, Some("Bank"), Some("  Government  ")] {
            push(
                format!("employees {e:?} industry {i:?}"),
                Lead {
                    employees: *e,
                    industry: i.map(Into::into),
                    ..base()
                },
            );
        }
    }
    // Every status across the priority bands (value from low to high).
    let bands = [
        lead(String::new()),
        Lead {
            title: Some("Sales Manager".into()),
            budget: Some(6_000.0),
            notes: Some("need".into()),
            timeline: Some("6 months".into()),
            ..lead(String::new())
        },
        base(),
        Lead {
            title: Some("CEO".into()),
            budget: Some(200_000.0),
            notes: Some("urgent: pain, demo, pricing".into()),
            timeline: Some("ASAP".into()),
            ..base()
        },
    ];
    for (k, b) in bands.iter().enumerate() {
        for s in statuses {
            push(
                format!("band {k} status {s:?}"),
                Lead {
                    status: s,
                    ..b.clone()
                },
            );
        }
    }
    // A deterministic mix of all axes (weakest-factor ties, empty strings together, ...).
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for k in 0..300 {
        let mut pick = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let l = Lead {
            title: titles[pick(titles.len())].map(Into::into),
            budget: money[pick(money.len())],
            annual_revenue: money[pick(money.len())],
            timeline: timelines[pick(timelines.len())].map(Into::into),
            notes: notes[pick(notes.len())].map(Into::into),
            industry: industries[pick(industries.len())].map(Into::into),
            employees: employees[pick(employees.len())],
            status: statuses[pick(statuses.len())],
            ..lead(String::new())
        };
        push(format!("mix {k}"), l);
    }
    out
}

/// The golden file's text for the current code.
fn digests() -> String {
    let mut out = String::from(
        "# FNV-1a 64 digests of the BANT scorer's complete outputs; see tests/golden.rs.\n",
    );
    let mut total = FNV_START;
    for (label, l) in synthetic_leads() {
        let d = dump(&bant::score_lead(&l));
        total = fnv(d.as_bytes(), total);
        writeln!(out, "{:016x} {label}", fnv(d.as_bytes(), FNV_START)).unwrap();
    }
    let leads = csv_leads();
    assert!(leads.len() > 9_000, "{} rows", leads.len());
    for (c, chunk) in leads.chunks(CHUNK).enumerate() {
        let mut h = FNV_START;
        for l in chunk {
            let d = dump(&bant::score_lead(l));
            h = fnv(d.as_bytes(), h);
            total = fnv(d.as_bytes(), total);
        }
        let first = c * CHUNK + 2;
        let last = first + chunk.len() - 1;
        writeln!(out, "{h:016x} csv lines {first}-{last}").unwrap();
    }
    writeln!(out, "{total:016x} total").unwrap();
    out
}

#[test]
fn output_matches_golden() {
    let now = digests();
    if std::env::var_os("BANT_BLESS").is_some() {
        std::fs::write(GOLDEN, &now).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(GOLDEN).expect("tests/golden.txt (BANT_BLESS=1)");
    if now != golden {
        let diff: Vec<_> = now
            .lines()
            .zip(golden.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("  now {a}\n  was {b}"))
            .take(20)
            .collect();
        // The first changed synthetic lead in full, to see what moved.
        let changed = synthetic_leads()
            .into_iter()
            .find(|(label, _)| diff.iter().any(|d| d.ends_with(&format!(" {label}"))));
        let example = changed.map_or(String::new(), |(label, l)| {
            format!("\n{label} now scores:\n{}", dump(&bant::score_lead(&l)))
        });
        panic!(
            "BANT output changed ({} lines now, {} golden):\n{}{example}",
            now.lines().count(),
            golden.lines().count(),
            diff.join("\n")
        );
    }
}

/// Scores the data set and the synthetic leads repeatedly and prints ns per lead. Run by
/// hand, in release: `cargo test --release -p bant --target x86_64-unknown-linux-gnu
/// --test golden -- --ignored --nocapture timing`.
#[test]
#[ignore]
fn timing() {
    let mut leads = csv_leads();
    leads.extend(synthetic_leads().into_iter().map(|(_, l)| l));
    let rounds = std::env::var("BANT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let start = std::time::Instant::now();
        let mut sink = 0usize;
        for l in &leads {
            sink += std::hint::black_box(bant::score_lead(std::hint::black_box(l)))
                .reasoning
                .len();
        }
        let ns = start.elapsed().as_nanos() as f64 / leads.len() as f64;
        std::hint::black_box(sink);
        best = best.min(ns);
    }
    println!(
        "bant::score_lead: best of {rounds} rounds {best:.0} ns/lead over {} leads",
        leads.len()
    );
}
