//! `--html FILE`: the report as one self-contained page — no script, no CDN — with ROC,
//! cumulative gains (lift) and calibration charts drawn as inline SVG.

use super::report::Report;
use std::fmt::Write;

const W: f64 = 320.0;
const H: f64 = 260.0;
const PAD: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Maps (x, y) in 0–1 to the plot area.
fn at(x: f64, y: f64) -> (f64, f64) {
    (PAD + x * (W - 1.5 * PAD), H - PAD - y * (H - 1.5 * PAD))
}

fn polyline(points: &[(f64, f64)], style: &str) -> String {
    let pts: Vec<String> = points
        .iter()
        .map(|&(x, y)| {
            let (a, b) = at(x, y);
            format!("{a:.1},{b:.1}")
        })
        .collect();
    format!(
        r#"<polyline fill="none" {style} points="{}"/>"#,
        pts.join(" ")
    )
}

/// Axes, grid at quarters, labels, a diagonal reference and the given content.
fn chart(title: &str, x_label: &str, y_label: &str, body: &str) -> String {
    let mut s = format!(
        r#"<figure><svg width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{t}">"#,
        t = esc(title)
    );
    for k in 0..=4 {
        let f = f64::from(k) / 4.0;
        let (x0, y) = at(0.0, f);
        let (x1, _) = at(1.0, f);
        let (x, y0) = at(f, 0.0);
        let (_, y1) = at(f, 1.0);
        let _ = write!(
            s,
            r##"<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#ddd"/><line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}" stroke="#ddd"/><text x="{tx}" y="{ty}" font-size="10" text-anchor="end">{f}</text><text x="{x}" y="{by}" font-size="10" text-anchor="middle">{f}</text>"##,
            tx = x0 - 4.0,
            ty = y + 3.0,
            by = y0 + 14.0
        );
    }
    s.push_str(&polyline(
        &[(0.0, 0.0), (1.0, 1.0)],
        r##"stroke="#999" stroke-dasharray="4 3""##,
    ));
    s.push_str(body);
    let (cx, _) = at(0.5, 0.0);
    let _ = write!(
        s,
        r#"<text x="{cx}" y="{}" font-size="11" text-anchor="middle">{}</text><text x="12" y="{}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {})">{}</text></svg><figcaption>{}</figcaption></figure>"#,
        H - 6.0,
        esc(x_label),
        H / 2.0,
        H / 2.0,
        esc(y_label),
        esc(title)
    );
    s
}

/// (false positive rate, true positive rate) at each distinct score, highest first.
pub fn roc_points(points: &[(f64, bool)]) -> Vec<(f64, f64)> {
    let mut v = points.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let pos = v.iter().filter(|p| p.1).count().max(1) as f64;
    let neg = v.iter().filter(|p| !p.1).count().max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut out = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < v.len() {
        let s = v[i].0;
        while i < v.len() && v[i].0 == s {
            if v[i].1 {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        out.push((fp / neg, tp / pos));
    }
    thin(out)
}

/// (share of leads contacted, share of positives found), leads by descending score.
pub fn gains_points(points: &[(f64, bool)]) -> Vec<(f64, f64)> {
    let mut v = points.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let n = v.len().max(1) as f64;
    let pos = v.iter().filter(|p| p.1).count().max(1) as f64;
    let mut found = 0.0;
    let mut out = vec![(0.0, 0.0)];
    for (k, (_, y)) in v.iter().enumerate() {
        found += f64::from(u8::from(*y));
        out.push(((k + 1) as f64 / n, found / pos));
    }
    thin(out)
}

/// At most ~400 points, first and last kept.
fn thin(v: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let step = (v.len() / 400).max(1);
    let last = *v.last().expect("at least the origin");
    let mut out: Vec<(f64, f64)> = v.into_iter().step_by(step).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

pub fn render(r: &Report, table: &str) -> String {
    let roc = polyline(
        &roc_points(&r.points),
        r##"stroke="#1f5fbf" stroke-width="2""##,
    );
    let gains = polyline(
        &gains_points(&r.points),
        r##"stroke="#1f8f4f" stroke-width="2""##,
    );
    let mut calib = String::new();
    for b in &r.calibration {
        let (x, y) = at(b.predicted.clamp(0.0, 1.0), b.observed);
        let _ = write!(
            calib,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="#bf5f1f"><title>decile {}: predicted {:.1}%, observed {:.1}% ({} leads)</title></circle>"##,
            b.bin,
            100.0 * b.predicted,
            100.0 * b.observed,
            b.leads
        );
    }
    let auc = r.auc.map_or("n/a".into(), |a| {
        format!("{:.3} (95% CI {:.3}–{:.3})", a.value, a.low, a.high)
    });
    let warnings: String = r
        .warnings
        .iter()
        .map(|w| format!("<li>{}</li>", esc(w)))
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest of {id}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}}
figure{{display:inline-block;margin:0 1em 1em 0}}figcaption{{text-align:center;font-size:.9em}}
.warn{{background:#fff3cd;border:1px solid #e0c060;padding:.5em 1em}}pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}</style>
</head><body>
<h1>Backtest of {id}</h1>
<p>{path} — AUC {auc}, {scored} leads scored, {positives} positive.</p>
{warn_block}
{roc_chart}{gains_chart}{calib_chart}
<h2>Report</h2><pre>{table}</pre>
</body></html>
"#,
        id = esc(&r.scorer.id),
        path = esc(&r.input.path),
        scored = r.scored,
        positives = r.positives,
        warn_block = if warnings.is_empty() {
            String::new()
        } else {
            format!(r#"<div class="warn"><strong>Warnings</strong><ul>{warnings}</ul></div>"#)
        },
        roc_chart = chart(
            "ROC curve",
            "false positive rate",
            "true positive rate",
            &roc
        ),
        gains_chart = chart(
            "Cumulative gains (lift)",
            "share of leads, best scores first",
            "share of positives found",
            &gains
        ),
        calib_chart = chart(
            "Calibration by decile",
            "predicted (score ÷ 100)",
            "observed rate",
            &calib
        ),
        table = esc(table),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_runs_from_origin_to_one_one_and_is_a_step_for_perfect_ranking() {
        let p = [(0.9, true), (0.8, true), (0.2, false), (0.1, false)];
        let roc = roc_points(&p);
        assert_eq!(roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
        assert!(roc.contains(&(0.0, 1.0)));
        let gains = gains_points(&p);
        assert_eq!(gains[2], (0.5, 1.0));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
