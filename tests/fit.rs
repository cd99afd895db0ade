//! `strata fit` end to end on the shipped X Education history: the fitted plugin
//! directory loads in a real host (component, smoke tests), scores as the model says,
//! deterministically, with reasoning that names the lead's real values; `strata
//! backtest` reports on the same holdout, and warns about a constant scorer.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Columns X Education fills in after sales contact (the list).
const POST_CONTACT: &str = "Tags,Lead Quality,Lead Profile,Asymmetrique Activity Index,\
Asymmetrique Profile Index,Asymmetrique Activity Score,Asymmetrique Profile Score";

fn fixture() -> PathBuf {
    repo_root().join("tests/data/leads-xeducation.csv")
}

fn strata(config: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.current_dir(repo_root());
    if let Some(cfg) = config {
        c.arg("--config").arg(cfg);
    }
    c.args(args).output().expect("run strata")
}

fn ok_json(out: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

/// Fits X Education into `dir/xed-fit`; returns the fit's JSON.
fn fit_into(dir: &Path) -> serde_json::Value {
    let out = dir.join("xed-fit");
    ok_json(&strata(
        None,
        &[
            "fit",
            "--input",
            fixture().to_str().unwrap(),
            "--label",
            "Converted",
            "--exclude",
            POST_CONTACT,
            "--name",
            "xed-fit",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    ))
}

fn config(tmp: &Path, plugins: &Path) -> PathBuf {
    let path = tmp.join("strata.toml");
    std::fs::write(
        &path,
        host_toml(&sqlite_url(tmp), plugins, &tmp.join("cache")),
    )
    .unwrap();
    path
}

fn xeducation_leads() -> Vec<strata::domain::Lead> {
    strata::input::read(
        &fixture(),
        strata::input::InputFormat::Csv,
        &strata::input::ReadOptions {
            label: Some("Converted".into()),
            ..Default::default()
        },
    )
    .unwrap()
    .leads
}

#[tokio::test]
async fn a_fitted_plugin_loads_passes_its_smoke_tests_and_scores_as_its_model_says() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    let fit = fit_into(&plugins);
    let dir = plugins.join("xed-fit");

    // The manifest pins the component, and the component carries the model.
    let manifest = strata::manifest::Manifest::load(&dir).unwrap();
    let wasm = std::fs::read(dir.join("plugin.wasm")).unwrap();
    let sha = strata::fit::component::sha256_hex(&wasm);
    assert_eq!(
        manifest.plugin.component_sha256.as_deref(),
        Some(sha.as_str())
    );
    assert_eq!(fit["component_sha256"], sha.as_str());
    assert_eq!(manifest.smoke.len(), 3);
    let model = strata::fit::component::model_of(&wasm)
        .unwrap()
        .expect("a model inside");

    // Loading runs the manifest's smoke tests in the sandbox.
    let host = host(&sqlite_url(tmp.path()), "").await;
    let plugin = host.manager.load_dir(&dir).await.unwrap().plugin().clone();
    assert_eq!(plugin.sha256, sha);

    let leads = xeducation_leads();
    let sample: Vec<_> = leads.iter().step_by(97).take(40).cloned().collect();
    let (p, s) = (plugin.clone(), sample.clone());
    let (first, second) = blocking(move || {
        let a: Vec<_> = s.iter().map(|l| p.score(l, None).unwrap()).collect();
        let b: Vec<_> = s.iter().map(|l| p.score(l, None).unwrap()).collect();
        (a, b)
    })
    .await;
    assert_eq!(first, second, "the same lead scores the same twice");
    let mut named = 0;
    for (lead, got) in sample.iter().zip(&first) {
        let sdk = strata_sdk::Lead::from(lead);
        let want = scorecard::model::score(&model, &sdk);
        assert!(
            (got.value - want.value).abs() < 1e-9,
            "{} vs {}",
            got.value,
            want.value
        );
        // The reasoning names the lead's biggest contribution with the lead's own value.
        let parts = model.contributions(&sdk);
        let top = parts
            .iter()
            .filter(|c| c.points >= scorecard::model::NOTABLE)
            .max_by(|a, b| a.points.total_cmp(&b.points));
        if let Some(c) = top {
            let value = c.slot.value.clone().unwrap_or_else(|| "(missing)".into());
            if let Some(v) = &c.slot.value {
                assert_eq!(lead.attributes.get(&c.feature.column), Some(v));
            }
            let line = format!("{:+.2} {} = {value}", c.points, c.feature.column);
            assert!(
                got.reasoning.contains(&line),
                "{line:?} not in {:?}",
                got.reasoning
            );
            named += 1;
        }
    }
    assert!(named > 30, "only {named} leads had a notable contribution");
}

#[tokio::test]
async fn backtest_of_the_holdout_reproduces_the_fit_report_through_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    let fit = fit_into(&plugins);
    let cfg = config(tmp.path(), &plugins);
    let dir = plugins.join("xed-fit");
    let r = ok_json(&strata(
        Some(&cfg),
        &[
            "backtest",
            "--plugin",
            "xed-fit",
            "--input",
            fixture().to_str().unwrap(),
            "--holdout-of",
            dir.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(r["leads"], fit["holdout"]);
    assert_eq!(r["auc"], fit["report"]["auc"]);
    // Same deciles; means may differ in the last bit (summed in another order).
    let (a, b) = (
        r["calibration"].as_array().unwrap(),
        fit["report"]["calibration"].as_array().unwrap(),
    );
    assert_eq!(a.len(), 10);
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            (&x["leads"], &x["positives"]),
            (&y["leads"], &y["positives"])
        );
        assert_eq!(
            (&x["min_score"], &x["max_score"]),
            (&y["min_score"], &y["max_score"])
        );
        let d = x["predicted"].as_f64().unwrap() - y["predicted"].as_f64().unwrap();
        assert!(d.abs() < 1e-12, "{x} vs {y}");
    }
    assert_eq!(r["warnings"], serde_json::json!([]));
}

#[test]
fn score_json_has_a_line_naming_the_cause_for_each_lead_that_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    install(&plugins, "testing/panic", "panic");
    let cfg = config(tmp.path(), &plugins);
    let input = tmp.path().join("two.jsonl");
    std::fs::write(&input, "{\"id\": \"a\"}\n{\"id\": \"b\"}\n").unwrap();
    let out = strata(
        Some(&cfg),
        &[
            "score",
            "--plugin",
            "panic",
            "--input",
            input.to_str().unwrap(),
            "--no-store",
            "--json",
        ],
    );
    // Every lead failed: exit 1, and still one line per lead, in input order.
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, id) in lines.iter().zip(["a", "b"]) {
        assert_eq!(line["lead_id"], id);
        let error = line["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("boom: plugin panicked while scoring lead {id}")),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
        assert!(line.get("score").is_none());
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("every lead failed to score"));
}

/// `strata backtest --json` of the constant test scorer `minimal` on X Education.
fn backtest_minimal(tmp: &Path, extra: &[&str]) -> serde_json::Value {
    let plugins = tmp.join("plugins");
    install(&plugins, "testing/minimal", "minimal");
    let cfg = config(tmp, &plugins);
    let input = fixture();
    let mut args = vec![
        "backtest",
        "--plugin",
        "minimal",
        "--input",
        input.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    ok_json(&strata(Some(&cfg), &args))
}

#[tokio::test]
async fn backtest_warns_about_a_constant_scorer_and_writes_a_self_contained_page() {
    let tmp = tempfile::tempdir().unwrap();
    let html = tmp.path().join("report.html");
    let r = backtest_minimal(tmp.path(), &["--html", html.to_str().unwrap()]);
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("every lead got the same score (50)"),
        "{warnings}"
    );
    assert_eq!(r["auc"]["value"], 0.5);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("every lead got the same score"));
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"));
}

#[tokio::test]
async fn backtest_warns_when_the_label_column_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let r = backtest_minimal(tmp.path(), &["--label", "Won"]);
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no lead has an outcome in label column \"Won\""),
        "{r}"
    );
    assert!(r["auc"].is_null());
}

#[test]
fn the_embedded_scorecard_component_is_the_one_plugins_scorecard_builds() {
    // plugins/build.sh refreshes host/assets/scorecard.wasm when the plugin's bytes change.
    ensure_plugins_built();
    let on_disk = std::fs::read(repo_root().join("host/assets/scorecard.wasm")).unwrap();
    assert!(
        on_disk == strata::fit::component::GENERIC,
        "plugins/scorecard changed since strata was built: rebuild strata to embed it"
    );
}

/// A CSV whose columns carry other names than Strata's lead fields: 40 leads, the won ones
/// with big budgets, large companies and senior titles.
fn renamed_columns_csv(path: &Path) {
    let mut text = String::from("id,headcount,money,role,when,won\n");
    for i in 0..40 {
        let won = i % 2 == 0;
        let (staff, money, role, when) = if won {
            (800 + i, 90_000 + i * 1000, "VP of Sales", "immediate")
        } else {
            (5 + i, 500 + i, "Intern", "next year")
        };
        text += &format!("L-{i},{staff},{money},{role},{when},{}\n", u8::from(won));
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn column_mapping_fills_lead_fields_for_backtest_and_score_from_flags_and_from_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    install(&plugins, "bant", "bant");
    let cfg = config(tmp.path(), &plugins);
    let csv = tmp.path().join("renamed.csv");
    renamed_columns_csv(&csv);
    let map_file = tmp.path().join("columns.map");
    std::fs::write(
        &map_file,
        "# our export's names\nemployees=headcount\nbudget=money\ntitle=role\ntimeline=when\n",
    )
    .unwrap();
    let backtest = |extra: &[&str]| {
        let mut args = vec![
            "backtest",
            "--plugin",
            "bant",
            "--input",
            csv.to_str().unwrap(),
        ];
        args.extend_from_slice(&["--label", "won", "--json"]);
        args.extend_from_slice(extra);
        ok_json(&strata(Some(&cfg), &args))
    };
    // Unmapped, the columns are attributes BANT does not read: every lead scores alike.
    let unmapped = backtest(&[]);
    assert!(
        unmapped["warnings"].to_string().contains("same score"),
        "{unmapped}"
    );
    // Mapped (flags, comma-separated and repeated; or a file), BANT reads them.
    let flags = backtest(&[
        "--map",
        "employees=headcount,budget=money",
        "--map",
        "title=role,timeline=when",
    ]);
    let file = backtest(&["--map-file", map_file.to_str().unwrap()]);
    for r in [&flags, &file] {
        assert_eq!(r["warnings"], serde_json::json!([]), "{r}");
        assert_eq!(r["auc"]["value"], 1.0, "{r}");
    }
    assert_eq!(flags["auc"], file["auc"]);
    // `strata score` reads the same mapping: the won leads outscore the lost ones.
    let scores = |extra: &[&str]| -> Vec<f64> {
        let mut args = vec![
            "score",
            "--plugin",
            "bant",
            "--input",
            csv.to_str().unwrap(),
        ];
        args.extend_from_slice(&["--no-store", "--json"]);
        args.extend_from_slice(extra);
        let out = strata(Some(&cfg), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["score"]["value"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let unmapped = scores(&[]);
    assert_eq!(unmapped.len(), 40);
    assert!(unmapped.iter().all(|v| *v == unmapped[0]), "{unmapped:?}");
    let mapped = scores(&["--map-file", map_file.to_str().unwrap()]);
    assert_eq!(mapped.len(), 40);
    let won_min = mapped
        .iter()
        .step_by(2)
        .copied()
        .fold(f64::INFINITY, f64::min);
    let lost_max = mapped
        .iter()
        .skip(1)
        .step_by(2)
        .copied()
        .fold(0.0, f64::max);
    assert!(won_min > lost_max, "{mapped:?}");
    // A mapping that names no lead field's column is refused with the cause.
    let out = strata(
        Some(&cfg),
        &[
            "backtest",
            "--plugin",
            "bant",
            "--input",
            csv.to_str().unwrap(),
            "--map",
            "employees",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("column mapping"), "{err}");
}
