//! Per-call state: the data of one `Store`, created for one call and dropped after it.

use super::wasi::CappedPipe;
use super::EffectiveGrants;
use crate::audit::{AuditRecord, AuditSink, CallAudit};
use crate::db::Db;
use crate::wit::since_v0_1_0::types::CapabilityError;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Services the host lends to capabilities. Shared by every call.
#[derive(Clone)]
pub struct HostServices {
    /// `None` in offline tools (`strata plugin inspect`): `state`/`crm` then answer `unavailable`.
    pub db: Option<Db>,
    pub audit: AuditSink,
    /// Capabilities run synchronously inside a call (which runs on a blocking thread) and
    /// drive async database work on this runtime.
    pub rt: tokio::runtime::Handle,
    /// The LLM broker (`None`: no provider configured; `llm` calls answer `unavailable`).
    pub llm: Option<Arc<crate::llm::LlmBroker>>,
    /// The MCP client manager (`None`: no MCP server configured).
    pub mcp: Option<Arc<crate::mcp::McpManager>>,
    /// MCP tool pins (`None`: nothing is pinned, no call is checked). A plugin's
    /// `call-tool` of a pinned tool whose definition changed is refused.
    pub mcp_pins: Option<Arc<crate::mcp::McpPins>>,
    /// The plugins `scoring` may call. Weak: the registry owns the plugins, whose runtime
    /// owns these services.
    pub scorers: std::sync::Weak<crate::plugins::Registry>,
    /// The configured secret values: redacted from what `llm` and `mcp` hand a plugin and
    /// from every audit detail ([`crate::secrets`]).
    pub secrets: crate::secrets::Secrets,
}

impl HostServices {
    /// Services with a database and an audit sink only (no LLM, MCP or scorers).
    pub fn basic(db: Option<Db>, audit: AuditSink) -> Self {
        HostServices {
            db,
            audit,
            rt: tokio::runtime::Handle::current(),
            llm: None,
            mcp: None,
            mcp_pins: None,
            scorers: std::sync::Weak::new(),
            secrets: Default::default(),
        }
    }
}

impl HostServices {
    /// Runs a database future from inside a (synchronous) plugin call.
    pub(crate) fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        match tokio::runtime::Handle::try_current() {
            // Called from a runtime worker (should not happen: calls run on blocking threads),
            // fall back to block_in_place so the worker is not wedged.
            Ok(_) => tokio::task::block_in_place(|| self.rt.block_on(fut)),
            Err(_) => self.rt.block_on(fut),
        }
    }
}

/// Who is calling: fixed per plugin version.
#[derive(Debug, Clone)]
pub struct PluginIdentity {
    pub name: String,
    pub version: String,
    /// `name@version`.
    pub id: String,
}

impl PluginIdentity {
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            id: format!("{name}@{version}"),
        }
    }
}

/// Caps on what one call may log through `log` and stdout/stderr.
pub const LOG_LINES_PER_CALL: u32 = 64;
pub const LOG_LINE_BYTES: usize = 2048;
pub const STDIO_BYTES_PER_CALL: usize = 16 * 1024;

/// The `T` of `Store<T>` for plugin calls.
pub struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: super::wasi::CallLimiter,
    pub(crate) plugin: Arc<PluginIdentity>,
    pub(crate) grants: Arc<EffectiveGrants>,
    pub(crate) services: Arc<HostServices>,
    pub(crate) request_id: Option<Arc<str>>,
    pub(crate) log_lines: u32,
    pub(crate) log_dropped: u32,
    pub(crate) stdout: CappedPipe,
    pub(crate) stderr: CappedPipe,
    /// What this call consumed through `llm`, `mcp` and `scoring`.
    pub(crate) usage: super::CallUsage,
    /// Set when the call is a layer run of a pipeline: its run, container and dry-run flag.
    pub(crate) layer: Option<LayerCallContext>,
    /// Events published through `events.publish` during this call; the orchestrator
    /// stores them with the layer run, atomically (a failed run publishes nothing).
    pub(crate) published: Vec<PublishedEvent>,
    /// How many audit records this call sent, and the summaries past its cap.
    pub(crate) audit: CallAudit,
    /// The execution tape: recording the brokered calls, or answering them from one.
    pub(crate) tape: super::tape::TapeMode,
}

/// The pipeline context of a layer call.
#[derive(Debug, Clone)]
pub struct LayerCallContext {
    pub run_id: String,
    pub container: String,
    pub dry_run: bool,
    /// The layer's compiled payload contract, to check `events.publish` payloads.
    pub schemas: Option<Arc<crate::pipelines::schemas::LayerSchemas>>,
}

/// An event published during a call, not stored yet.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PublishedEvent {
    pub id: String,
    pub topic: String,
    pub payload: serde_json::Value,
    /// The payload's JSON text as the layer published it (stored as is; its length
    /// counts towards the output size limit).
    #[serde(skip)]
    pub json: std::sync::Arc<str>,
}

impl CallState {
    pub fn new(
        plugin: Arc<PluginIdentity>,
        grants: Arc<EffectiveGrants>,
        services: Arc<HostServices>,
        request_id: Option<Arc<str>>,
        memory_bytes: usize,
        audit_max_records: u32,
    ) -> Self {
        let stdout = CappedPipe::new(STDIO_BYTES_PER_CALL);
        let stderr = CappedPipe::new(STDIO_BYTES_PER_CALL);
        Self {
            wasi: super::wasi::deny_all_ctx(&stdout, &stderr),
            table: ResourceTable::new(),
            limiter: super::wasi::CallLimiter::new(memory_bytes),
            plugin,
            grants,
            services,
            request_id,
            log_lines: 0,
            log_dropped: 0,
            stdout,
            stderr,
            usage: Default::default(),
            layer: None,
            published: Vec::new(),
            audit: CallAudit::new(audit_max_records),
            tape: Default::default(),
        }
    }

    /// Whether this call runs in dry-run mode: side-effecting capability calls are
    /// recorded with what they would have done, and not executed.
    /// Readies a reused store for its next call: the call's request id, fresh per-call
    /// counters. Memory accounting (`limiter`) carries over with the instance's memory.
    pub(crate) fn begin_call(&mut self, request_id: Option<Arc<str>>) {
        self.audit.finish(&self.services.audit);
        self.request_id = request_id;
        self.log_lines = 0;
        self.log_dropped = 0;
        self.usage = Default::default();
        self.published.clear();
    }

    pub(crate) fn dry_run(&self) -> bool {
        self.layer.as_ref().is_some_and(|l| l.dry_run)
    }

    /// Records a side effect held back by dry-run mode (returned with the layer run and
    /// audited as allowed, with a `dry-run:` detail).
    pub(crate) fn hold_back(
        &mut self,
        capability: super::Capability,
        operation: &str,
        target: &str,
        would: serde_json::Value,
    ) {
        self.usage.held_back.push(serde_json::json!({
            "capability": capability.interface(),
            "operation": operation,
            "target": target,
            "would": would,
        }));
    }

    /// What this call consumed so far.
    pub fn usage(&self) -> &super::CallUsage {
        &self.usage
    }

    /// Sends one capability call to the audit log (past the call's cap: counted into a
    /// summary, see [`CallAudit`]).
    pub(crate) fn audit(
        &self,
        capability: super::Capability,
        operation: &str,
        target: &str,
        allowed: bool,
        detail: Option<String>,
        started: Instant,
    ) {
        self.audit_call(
            capability, operation, target, allowed, detail, started, None,
        );
    }

    /// Audits one call of a brokered capability from its outcome, and returns the outcome:
    /// the one rule every capability's operations follow (`crm`, `events`, `mcp`,
    /// `state`). Success is allowed (detail: `note`); a denial or an invalid argument is
    /// denied with its reason; a failure of the service behind the capability was
    /// allowed and is recorded as `unavailable: …`.
    pub(crate) fn audited<T>(
        &self,
        capability: super::Capability,
        operation: &str,
        target: &str,
        started: Instant,
        note: Option<String>,
        r: Result<T, CapabilityError>,
    ) -> Result<T, CapabilityError> {
        // A backing service's message may quote a configured secret.
        let secrets = &self.services.secrets;
        let r = r.map_err(|e| match e {
            CapabilityError::Denied(m) => CapabilityError::Denied(secrets.redact_string(m)),
            CapabilityError::Invalid(m) => CapabilityError::Invalid(secrets.redact_string(m)),
            CapabilityError::Unavailable(m) => {
                CapabilityError::Unavailable(secrets.redact_string(m))
            }
        });
        let (allowed, detail) = match &r {
            Ok(_) => (true, note),
            Err(CapabilityError::Denied(m)) | Err(CapabilityError::Invalid(m)) => {
                (false, Some(m.clone()))
            }
            Err(CapabilityError::Unavailable(m)) => (true, Some(format!("unavailable: {m}"))),
        };
        self.audit(capability, operation, target, allowed, detail, started);
        r
    }

    /// [`Self::audit`] with the tokens and cost of an `llm` call.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn audit_with_usage(
        &self,
        capability: super::Capability,
        operation: &str,
        target: &str,
        allowed: bool,
        detail: Option<String>,
        started: Instant,
        usage: (u64, u64, f64),
    ) {
        self.audit_call(
            capability,
            operation,
            target,
            allowed,
            detail,
            started,
            Some(usage),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn audit_call(
        &self,
        capability: super::Capability,
        operation: &str,
        target: &str,
        allowed: bool,
        detail: Option<String>,
        started: Instant,
        usage: Option<(u64, u64, f64)>,
    ) {
        // A replay happens offline: its calls (answered from the tape, or kept in the
        // sandbox like a replayed layer's `events.publish`) are not the plugin's activity.
        if matches!(self.tape, super::tape::TapeMode::Replay { .. }) {
            return;
        }
        let duration_us = started.elapsed().as_micros() as i64;
        let capability = capability.interface();
        let detail = detail.map(|d| self.services.secrets.redact_string(d));
        let record = || AuditRecord {
            at: crate::domain::now_ms(),
            plugin: self.plugin.name.clone(),
            plugin_version: self.plugin.version.clone(),
            capability: capability.to_string(),
            operation: operation.to_string(),
            target: Some(crate::audit::audit_target(target)),
            allowed,
            detail,
            duration_us,
            tokens_in: usage.map(|u| u.0 as i64),
            tokens_out: usage.map(|u| u.1 as i64),
            cost_usd: usage.map(|u| u.2),
            request_id: self.request_id.as_deref().map(str::to_string),
            count: 1,
        };
        let sink = &self.services.audit;
        self.audit.record(
            sink,
            capability,
            operation,
            target,
            allowed,
            duration_us,
            usage,
            record,
        );
    }

    /// The end of a call, whatever ended it (also a trap or the deadline): forwards
    /// stdout/stderr to the log and sends the audit summaries of records past the cap.
    pub(crate) fn finish_call(&self) {
        self.flush_stdio();
        self.audit.finish(&self.services.audit);
    }

    /// Forwards what the guest wrote to stdout/stderr to the host log, tagged with the plugin.
    fn flush_stdio(&self) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let (text, truncated) = pipe.take();
            if text.is_empty() {
                continue;
            }
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!(plugin = %self.plugin.id, stream, request_id = self.request_id.as_deref(), "{}", line);
            }
            if truncated {
                tracing::warn!(plugin = %self.plugin.id, stream, "plugin output beyond {STDIO_BYTES_PER_CALL} bytes dropped");
            }
        }
    }
}

/// A store dropped without [`CallState::finish_call`] (an early return, a panic) still
/// sends its audit summaries.
impl Drop for CallState {
    fn drop(&mut self) {
        self.audit.finish(&self.services.audit);
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
