//! What `strata bench` measured, typed: serialized as is for `--json` and printed as a
//! table from the same values. A figure that could not be computed (no samples) is NaN,
//! which serializes as `null` and prints as `-`.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// The whole report.
#[derive(Serialize)]
pub struct Report {
    /// `name@version` of the scorer measured.
    pub plugin: String,
    pub threads: usize,
    /// Fresh store + instance + call + drop of a constant scorer: the host's own cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead_call_minimal_plugin: Option<Latency>,
    /// The scorer's logic compiled into the host (`native::bant_score`).
    pub native_call: Latency,
    pub fresh_instance_call: Latency,
    /// With `reuse_calls` (a warm instance, as the inline lane uses it).
    pub warm_instance_call: Latency,
    #[serde(flatten)]
    pub throughput: Throughput,
    pub compile_ms: f64,
    pub cached_artifact_load_ms: f64,
    /// A new version with new bytes: compile + validate + smoke + swap.
    pub hot_swap_compile_ms: f64,
    /// A version whose compiled artifact is cached on disk.
    pub hot_swap_cached_artifact_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk: Option<Bulk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_dry_run: Option<PipelineFigures>,
}

/// Latency of repeated calls, in µs.
#[derive(Serialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub calls: usize,
}

/// Calls per second of the measured scorer on one thread and on `threads`; serialized as
/// `throughput_1_thread_per_s` and `throughput_<threads>_threads_per_s`.
pub struct Throughput {
    pub threads: usize,
    pub one_thread_per_s: f64,
    pub all_threads_per_s: f64,
}

impl Throughput {
    fn entries(&self) -> [(String, f64); 2] {
        [
            ("throughput_1_thread_per_s".into(), self.one_thread_per_s),
            (
                format!("throughput_{}_threads_per_s", self.threads),
                self.all_threads_per_s,
            ),
        ]
    }
}

impl Serialize for Throughput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        for (k, v) in self.entries() {
            m.serialize_entry(&k, &v)?;
        }
        m.end()
    }
}

/// A labelled data set scored through the Wasm plugin and stored in SQLite.
#[derive(Serialize)]
pub struct Bulk {
    /// `name@version`.
    pub plugin: String,
    pub leads: usize,
    pub scored: usize,
    pub score_ms: f64,
    pub store_ms: f64,
    pub total_ms: f64,
}

/// Runs of a pipeline end to end (`--pipeline-runs`), live or dry.
#[derive(Serialize)]
pub struct PipelineFigures {
    pub pipeline: String,
    pub dry_run: bool,
    pub database: String,
    /// `name (command, URL or "builtin, in process")`.
    pub mcp_servers: Vec<String>,
    pub runs: usize,
    pub warmup_runs: usize,
    /// Runs by final status.
    pub statuses: BTreeMap<String, usize>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub runs_per_s: f64,
    pub create_run_mean_ms: f64,
    pub execute_mean_ms: f64,
    pub layer_runs_per_run: f64,
    pub failed_layer_runs: i64,
    /// `None` (null) when no run reported Φ_sync.
    pub phi_sync_min: Option<f64>,
    pub phi_sync_mean: Option<f64>,
    pub phi_sync_missing: usize,
    pub in_layers_mean_ms: f64,
    pub capability_calls_mean_ms: f64,
    pub orchestration_mean_ms: f64,
    /// The slowest tenth of the runs split like the means; null when the runs' layer
    /// times could not all be read.
    pub slowest_tenth: Option<SlowestTenth>,
    pub layers: BTreeMap<String, LayerFigures>,
    /// Most expensive first.
    pub capability_calls: Vec<CapabilityCall>,
    /// The audit listing hit its limit: the capability figures are a lower bound.
    pub capability_calls_truncated: bool,
    pub first_error: Option<String>,
}

#[derive(Serialize)]
pub struct SlowestTenth {
    pub runs: usize,
    pub mean_ms: f64,
    pub create_run_mean_ms: f64,
    pub in_layers_mean_ms: f64,
    pub orchestration_mean_ms: f64,
}

/// One layer's runs within a pipeline run.
#[derive(Serialize)]
pub struct LayerFigures {
    pub runs_per_run: f64,
    pub mean_ms: f64,
    pub ms_per_run: f64,
}

/// Capability calls of one kind (`capability operation target`), from the audit.
#[derive(Serialize)]
pub struct CapabilityCall {
    pub call: String,
    pub per_run: f64,
    pub mean_us: f64,
    pub ms_per_run: f64,
}

/// Three decimals, `-` for a figure that could not be computed.
fn f3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "-".into()
    }
}

fn f2(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "-".into()
    }
}

impl Report {
    pub fn print(&self) {
        println!("strata bench — {} on {} threads", self.plugin, self.threads);
        let calls = [
            ("native_call", Some(&self.native_call)),
            ("fresh_instance_call", Some(&self.fresh_instance_call)),
            ("warm_instance_call", Some(&self.warm_instance_call)),
            (
                "overhead_call_minimal_plugin",
                self.overhead_call_minimal_plugin.as_ref(),
            ),
        ];
        for (name, c) in calls {
            let Some(c) = c else { continue };
            println!(
                "  {:<28} p50 {:>9} µs   p90 {:>9} µs   p99 {:>9} µs",
                name,
                f3(c.p50_us),
                f3(c.p90_us),
                f3(c.p99_us)
            );
        }
        let [one, all] = self.throughput.entries();
        for (name, v) in [
            one,
            all,
            ("compile_ms".into(), self.compile_ms),
            (
                "cached_artifact_load_ms".into(),
                self.cached_artifact_load_ms,
            ),
            ("hot_swap_compile_ms".into(), self.hot_swap_compile_ms),
            (
                "hot_swap_cached_artifact_ms".into(),
                self.hot_swap_cached_artifact_ms,
            ),
        ] {
            println!("  {:<28} {:>12}", name, f3(v));
        }
        if let Some(b) = &self.bulk {
            println!(
                "  bulk {} leads with {}: score {} ms + store {} ms = {} ms",
                b.leads,
                b.plugin,
                f3(b.score_ms),
                f3(b.store_ms),
                f3(b.total_ms)
            );
        }
        for p in [&self.pipeline, &self.pipeline_dry_run]
            .into_iter()
            .flatten()
        {
            p.print();
        }
    }
}

impl PipelineFigures {
    pub fn print(&self) {
        let opt = |x: Option<f64>| f3(x.unwrap_or(f64::NAN));
        println!(
            "  pipeline {}{} on {}, MCP {}: {} runs (+{} warm-up), {}",
            self.pipeline,
            if self.dry_run { " dry_run" } else { "" },
            self.database,
            self.mcp_servers.join(", "),
            self.runs,
            self.warmup_runs,
            serde_json::to_string(&self.statuses).unwrap_or_default()
        );
        println!(
            "    end to end per run         p50 {:>9} ms   p90 {:>9} ms   p99 {:>9} ms   mean {} ms",
            f3(self.p50_ms),
            f3(self.p90_ms),
            f3(self.p99_ms),
            f3(self.mean_ms)
        );
        println!(
            "    layer runs/run {}   failed layer runs {}   Φ_sync min {} mean {}   {} runs/s",
            f2(self.layer_runs_per_run),
            self.failed_layer_runs,
            opt(self.phi_sync_min),
            opt(self.phi_sync_mean),
            f2(self.runs_per_s)
        );
        println!(
            "    mean ms/run: create_run {}  execute {}  = in layers {} (capability calls {}) + orchestrator/db {}",
            f3(self.create_run_mean_ms),
            f3(self.execute_mean_ms),
            f3(self.in_layers_mean_ms),
            f3(self.capability_calls_mean_ms),
            f3(self.orchestration_mean_ms)
        );
        if let Some(t) = &self.slowest_tenth {
            println!(
                "    slowest tenth ({} runs): mean {} ms = create_run {} + in layers {} + orchestrator/db {}",
                t.runs,
                f3(t.mean_ms),
                f3(t.create_run_mean_ms),
                f3(t.in_layers_mean_ms),
                f3(t.orchestration_mean_ms)
            );
        }
        let parts: Vec<String> = self
            .layers
            .iter()
            .map(|(k, v)| format!("{k} {}×{}", f2(v.runs_per_run), f3(v.mean_ms)))
            .collect();
        println!("    per layer (runs/run × mean ms): {}", parts.join(", "));
        for c in self.capability_calls.iter().take(12) {
            println!(
                "    {:<42} {:>5}/run × {:>9} µs = {:>7} ms/run",
                c.call,
                f2(c.per_run),
                f2(c.mean_us),
                f3(c.ms_per_run)
            );
        }
        if let Some(e) = &self.first_error {
            println!("    first error: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(x: f64) -> Latency {
        Latency {
            p50_us: x,
            p90_us: x,
            p99_us: x,
            mean_us: x,
            calls: 10,
        }
    }

    /// The `--json` keys scripts and docs read: the dynamic throughput key, optional
    /// figures left out, NaN as null.
    #[test]
    fn json_keys_are_the_documented_ones() {
        let r = Report {
            plugin: "bant@1.0.0".into(),
            threads: 2,
            overhead_call_minimal_plugin: None,
            native_call: latency(1.0),
            fresh_instance_call: latency(f64::NAN),
            warm_instance_call: latency(5.0),
            throughput: Throughput {
                threads: 2,
                one_thread_per_s: 10.0,
                all_threads_per_s: 20.0,
            },
            compile_ms: 1.0,
            cached_artifact_load_ms: 2.0,
            hot_swap_compile_ms: 3.0,
            hot_swap_cached_artifact_ms: 4.0,
            bulk: None,
            pipeline: None,
            pipeline_dry_run: None,
        };
        let v = serde_json::to_value(&r).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "cached_artifact_load_ms",
                "compile_ms",
                "fresh_instance_call",
                "hot_swap_cached_artifact_ms",
                "hot_swap_compile_ms",
                "native_call",
                "plugin",
                "threads",
                "throughput_1_thread_per_s",
                "throughput_2_threads_per_s",
                "warm_instance_call",
            ]
        );
        assert_eq!(v["throughput_2_threads_per_s"], 20.0);
        assert_eq!(v["warm_instance_call"]["p50_us"], 5.0);
        assert_eq!(v["warm_instance_call"]["calls"], 10);
        assert!(v["fresh_instance_call"]["p99_us"].is_null());
    }
}
