//! `strata bench`: per-call and load figures measured in one run, printed as a table or
//! JSON. Figures, never assertions: the machine is shared and noisy.

use crate::app::App;
use crate::config::Config;
use crate::domain::Lead;
use crate::input::{self, InputFormat, ReadOptions};
use crate::manifest::Manifest;
use crate::plugins::PluginManager;
use crate::runtime::LoadedPlugin;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Scorer to measure.
    #[arg(long, default_value = "bant")]
    pub plugin: String,
    /// Calls for the latency figures.
    #[arg(long, default_value_t = 20_000)]
    pub calls: usize,
    /// Seconds of the throughput run.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Labelled data set for the bulk score-and-store figure.
    #[arg(long, default_value = "tests/data/leads-xeducation.csv")]
    pub bulk_input: PathBuf,
    /// Scorer for the bulk figure.
    #[arg(long, default_value = "xeducation")]
    pub bulk_plugin: String,
    /// A constant scorer: its fresh-instance call is the host's pure per-call overhead.
    #[arg(long, default_value = "plugins/testing/minimal")]
    pub overhead_plugin: PathBuf,
    #[arg(long)]
    pub json: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn latencies_us(n: usize, mut f: impl FnMut()) -> serde_json::Value {
    for _ in 0..(n / 10).max(10) {
        f();
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v.sort_by(f64::total_cmp);
    serde_json::json!({
        "p50_us": percentile(&v, 0.5), "p90_us": percentile(&v, 0.9), "p99_us": percentile(&v, 0.99),
        "mean_us": v.iter().sum::<f64>() / v.len().max(1) as f64, "calls": n,
    })
}

fn demo_lead() -> Lead {
    Lead {
        id: "bench-1".into(),
        name: Some("Dana Fox".into()),
        title: Some("VP of Sales".into()),
        company: Some("Acme Robotics".into()),
        industry: Some("Software".into()),
        employees: Some(450),
        annual_revenue: Some(40_000_000.0),
        budget: Some(80_000.0),
        timeline: Some("this quarter".into()),
        source: Some("referral".into()),
        notes: Some("Evaluating vendors; manual scoring is slow and error-prone".into()),
        ..Default::default()
    }
}

fn throughput(plugin: &Arc<LoadedPlugin>, lead: &Lead, threads: usize, secs: f64) -> f64 {
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = plugin.score(lead, None);
                    n += 1;
                }
                count.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
    });
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Appends a custom section so the bytes (and hash) differ but the component is the same.
fn with_custom_section(wasm: &[u8], tag: &str) -> Vec<u8> {
    let mut payload = vec![tag.len() as u8];
    payload.extend_from_slice(tag.as_bytes());
    payload.extend_from_slice(b"bench");
    let mut out = wasm.to_vec();
    out.push(0);
    let mut n = payload.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        out.push(if n == 0 { b } else { b | 0x80 });
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&payload);
    out
}

fn find_dir(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    for d in PluginManager::plugin_dirs(root)? {
        if Manifest::load(&d)?.plugin.name == name {
            return Ok(d);
        }
    }
    anyhow::bail!("plugin {name} not found under {}", root.display())
}

pub async fn run(args: BenchArgs, mut config: Config) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    config.database.url = format!("sqlite://{}/bench.db", tmp.path().display());
    config.runtime.cache_dir = Some(tmp.path().join("cache"));
    let plugins_root = config.plugins.dir.clone();
    let app = App::start(config).await?;
    let plugin = super::load_named(&app.manager, &args.plugin).await?;
    let lead = demo_lead();
    let threads = super::score::threads(None);
    let mut report = serde_json::Map::new();
    report.insert("plugin".into(), plugin.id().into());
    report.insert("threads".into(), threads.into());

    let (p, l, calls, secs) = (plugin.clone(), lead.clone(), args.calls, args.seconds);
    let native_lead = lead.clone();
    let figures = tokio::task::spawn_blocking(move || {
        let native = latencies_us(calls * 5, || {
            std::hint::black_box(crate::native::bant_score(std::hint::black_box(
                &native_lead,
            )));
        });
        let fresh = latencies_us(calls, || {
            p.score(&l, None).expect("bench scorer must score");
        });
        let one = throughput(&p, &l, 1, secs);
        let all = throughput(&p, &l, threads, secs);
        (native, fresh, one, all)
    })
    .await?;
    if args.overhead_plugin.join("plugin.toml").is_file() {
        let minimal = app
            .manager
            .load_dir(&args.overhead_plugin)
            .await?
            .plugin()
            .clone();
        let l = lead.clone();
        let overhead = tokio::task::spawn_blocking(move || {
            latencies_us(calls, || {
                minimal.score(&l, None).expect("minimal scorer must score");
            })
        })
        .await?;
        report.insert("overhead_call_minimal_plugin".into(), overhead);
    }
    report.insert("native_call".into(), figures.0);
    report.insert("fresh_instance_call".into(), figures.1);
    report.insert("throughput_1_thread_per_s".into(), figures.2.into());
    report.insert(
        format!("throughput_{threads}_threads_per_s"),
        figures.3.into(),
    );

    // Compile vs cached-artifact load vs hot swap.
    let dir = find_dir(&plugins_root, &args.plugin)?;
    let manifest = Manifest::load(&dir)?;
    let wasm = std::fs::read(dir.join(&manifest.plugin.component))?;
    let rt = app.manager.runtime().clone();
    let swap_root = tmp.path().join("swap");
    let swap_dir = swap_root.join(&args.plugin);
    std::fs::create_dir_all(&swap_dir)?;
    std::fs::copy(dir.join("plugin.toml"), swap_dir.join("plugin.toml"))?;
    let (compile_ms, cached_ms) = {
        let variant = with_custom_section(&wasm, "compile");
        let sha = crate::runtime::prepare::sha256_hex(&variant);
        let rt2 = rt.clone();
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            rt2.cache().load(&variant, &sha).expect("compile");
            let compile = t.elapsed().as_secs_f64() * 1e3;
            rt2.cache().forget(&sha);
            let t = Instant::now();
            rt2.cache().load(&variant, &sha).expect("load cached");
            (compile, t.elapsed().as_secs_f64() * 1e3)
        })
        .await?
    };
    report.insert("compile_ms".into(), compile_ms.into());
    report.insert("cached_artifact_load_ms".into(), cached_ms.into());

    // Hot swap: a new version (new bytes → compile) and a re-deploy of cached bytes.
    let swap_manager = PluginManager::new(
        rt.clone(),
        Arc::new(crate::plugins::Registry::new()),
        app.config.clone(),
        None,
    );
    let comp = swap_dir.join(&manifest.plugin.component);
    std::fs::write(&comp, with_custom_section(&wasm, "v1"))?;
    swap_manager.load_dir(&swap_dir).await?;
    std::fs::write(&comp, with_custom_section(&wasm, "v2-new"))?;
    let t = Instant::now();
    swap_manager.load_dir(&swap_dir).await?;
    let swap_cold = t.elapsed().as_secs_f64() * 1e3;
    rt.cache()
        .forget(&crate::runtime::prepare::sha256_hex(&with_custom_section(
            &wasm, "v1",
        )));
    std::fs::write(&comp, with_custom_section(&wasm, "v1"))?;
    let t = Instant::now();
    swap_manager.load_dir(&swap_dir).await?;
    let swap_cached = t.elapsed().as_secs_f64() * 1e3;
    report.insert("hot_swap_compile_ms".into(), swap_cold.into());
    report.insert("hot_swap_cached_artifact_ms".into(), swap_cached.into());

    // Bulk: the labelled data set scored through the Wasm plugin and stored in SQLite.
    if args.bulk_input.exists() {
        let bulk = super::load_named(&app.manager, &args.bulk_plugin).await?;
        let read = input::read(
            &args.bulk_input,
            InputFormat::detect(&args.bulk_input),
            &ReadOptions {
                label: Some("Converted".into()),
            },
        )?;
        let leads = Arc::new(read.leads);
        let t = Instant::now();
        let (b, l) = (bulk.clone(), leads.clone());
        let results =
            tokio::task::spawn_blocking(move || super::score::score_all(&b, &l, threads, None))
                .await?;
        let scored = t.elapsed().as_secs_f64() * 1e3;
        let rows: Vec<_> = leads
            .iter()
            .zip(results)
            .filter_map(|(l, r)| {
                r.ok()
                    .map(|s| crate::db::NewScore::new(l.id.clone(), bulk.id(), s))
            })
            .collect();
        let t2 = Instant::now();
        app.db.record_scores(&leads, &rows).await?;
        let stored = t2.elapsed().as_secs_f64() * 1e3;
        report.insert(
            "bulk".into(),
            serde_json::json!({
                "plugin": bulk.id(), "leads": leads.len(), "scored": rows.len(),
                "score_ms": scored, "store_ms": stored, "total_ms": scored + stored,
            }),
        );
    }

    let report = serde_json::Value::Object(report);
    if args.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    app.shutdown().await;
    Ok(())
}

fn print_table(r: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.3}"));
    println!(
        "strata bench — {} on {} threads",
        r["plugin"].as_str().unwrap_or(""),
        r["threads"]
    );
    for key in [
        "native_call",
        "fresh_instance_call",
        "overhead_call_minimal_plugin",
    ] {
        let c = &r[key];
        if c.is_null() {
            continue;
        }
        println!(
            "  {:<28} p50 {:>9} µs   p90 {:>9} µs   p99 {:>9} µs",
            key,
            f(&c["p50_us"]),
            f(&c["p90_us"]),
            f(&c["p99_us"])
        );
    }
    if let Some(obj) = r.as_object() {
        for (k, v) in obj {
            if k.starts_with("throughput") || k.ends_with("_ms") {
                println!("  {:<28} {:>12}", k, f(v));
            }
        }
    }
    if let Some(b) = r.get("bulk") {
        println!(
            "  bulk {} leads with {}: score {} ms + store {} ms = {} ms",
            b["leads"],
            b["plugin"].as_str().unwrap_or(""),
            f(&b["score_ms"]),
            f(&b["store_ms"]),
            f(&b["total_ms"])
        );
    }
}
