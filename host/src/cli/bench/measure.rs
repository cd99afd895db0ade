//! Timing helpers of `strata bench`: latency percentiles of repeated calls, throughput
//! on N threads, the lead every per-call figure scores.

use super::report::Latency;
use crate::domain::Lead;
use crate::manifest::Manifest;
use crate::plugins::PluginManager;
use crate::runtime::LoadedPlugin;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The value at quantile `p` of `sorted`; NaN when there is none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Latency figures of `n` calls of `f` (after a warm-up); the first failing call ends the
/// measurement with its error.
pub fn latencies_us(
    n: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Latency> {
    for _ in 0..(n / 10).max(10) {
        f()?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v.sort_by(f64::total_cmp);
    Ok(Latency {
        p50_us: percentile(&v, 0.5),
        p90_us: percentile(&v, 0.9),
        p99_us: percentile(&v, 0.99),
        mean_us: v.iter().sum::<f64>() / v.len().max(1) as f64,
        calls: n,
    })
}

/// A measured call's outcome: a failed call ends the benchmark, naming the scorer.
pub fn scored<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> anyhow::Result<()> {
    r.map(|_| ())
        .map_err(|e| anyhow::anyhow!("{what} failed during the benchmark: {e}"))
}

/// The lead of the per-call figures (the same as `bench/score.lua`'s).
pub fn demo_lead() -> Lead {
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

/// Calls per second of `plugin` on `threads` threads for `secs` seconds (fresh instance
/// per call).
pub fn throughput(plugin: &Arc<LoadedPlugin>, lead: &Lead, threads: usize, secs: f64) -> f64 {
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

/// The directory of the plugin named `name` under `root`.
pub fn find_dir(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    for d in PluginManager::plugin_dirs(root)? {
        if Manifest::load(&d).is_ok_and(|m| m.plugin.name == name) {
            return Ok(d);
        }
    }
    anyhow::bail!("plugin {name} not found under {}", root.display())
}
