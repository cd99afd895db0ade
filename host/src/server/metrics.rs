//! Prometheus metrics: requests (route, status, latency), plugin calls (plugin@version,
//! outcome, latency), job outcomes and queue depth, plugin registry.

use super::AppState;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide recorder (installed once; later servers in the same process share it).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("valid buckets")
                .install_recorder()
                .expect("install the Prometheus recorder")
        })
        .clone()
}

/// Middleware: one counter and one histogram sample per request, by matched route.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

pub use crate::runtime::call_metrics as plugin_call;

/// Gauges read at scrape time: queue depth by status, live plugins, database pool, LLM
/// providers' circuit breakers (`llm_breaker_state`: 0 closed, 1 half-open, 2 open).
pub async fn refresh_gauges(st: &AppState) {
    if let Ok(d) = st.db.queue_depth().await {
        for (status, n) in [
            ("queued", d.queued),
            ("running", d.running),
            ("succeeded", d.succeeded),
            ("dead", d.dead),
        ] {
            metrics::gauge!("jobs_queue_depth", "status" => status).set(n as f64);
        }
    }
    for slot in st.manager.registry().slots() {
        let (version, sha256) = slot
            .live()
            .map(|p| (p.version().to_string(), p.sha256.clone()))
            .unwrap_or_default();
        // The version's identity: name, version and the component's sha256.
        metrics::gauge!("plugin_live", "plugin" => slot.name.clone(), "version" => version,
            "sha256" => sha256)
        .set(if slot.is_disabled() { 0.0 } else { 1.0 });
    }
    if let Some(llm) = &st.llm {
        for p in llm.status() {
            metrics::gauge!("llm_breaker_state", "provider" => p.name.clone())
                .set(p.breaker.gauge());
            metrics::gauge!("llm_consecutive_failures", "provider" => p.name)
                .set(f64::from(p.consecutive_failures));
        }
    }
    let (size, idle) = st.db.pool_stats();
    metrics::gauge!("db_pool_connections", "backend" => st.db.backend().as_str()).set(size as f64);
    metrics::gauge!("db_pool_idle_connections", "backend" => st.db.backend().as_str())
        .set(idle as f64);
}
