//! WASI for plugins: linked because every wasip2 guest imports `wasi:cli`/`wasi:io`, but
//! with a deny-all context — no preopened directories, no environment or arguments, no
//! sockets, no name lookup; stdin empty; stdout/stderr captured (capped) into the plugin's
//! log. Also the per-call resource limiter (memory and tables).

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime::component::Linker;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use super::CallState;

pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)
}

/// A WASI context that grants nothing.
pub(crate) fn deny_all_ctx(stdout: &CappedPipe, stderr: &CappedPipe) -> WasiCtx {
    let mut b = WasiCtxBuilder::new();
    b.stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    b.build()
}

/// An in-memory sink that keeps the first `cap` bytes and silently drops the rest (a
/// chatty plugin must not fail its call, nor flood the host's log).
#[derive(Clone)]
pub struct CappedPipe {
    inner: Arc<Mutex<PipeBuf>>,
}

struct PipeBuf {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl CappedPipe {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(PipeBuf {
                bytes: Vec::new(),
                cap,
                truncated: false,
            })),
        }
    }

    fn push(&self, data: &[u8]) {
        let mut b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = b.cap.saturating_sub(b.bytes.len());
        if data.len() > room {
            b.truncated = true;
        }
        let n = data.len().min(room);
        b.bytes.extend_from_slice(&data[..n]);
    }

    /// Takes the captured text (lossy UTF-8) and whether anything was dropped.
    pub fn take(&self) -> (String, bool) {
        let mut b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&b.bytes).into_owned();
        b.bytes.clear();
        (text, std::mem::take(&mut b.truncated))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

/// Per-call resource limiter: a memory ceiling (bytes, all linear memories of the
/// component together: a component of several core modules, such as a Python one, has a
/// memory per module) and a table ceiling. Exceeding either traps the call with an error
/// naming the limit.
pub(crate) struct CallLimiter {
    pub(crate) max_memory: usize,
    pub(crate) memory_exceeded: bool,
    /// Bytes of all memories of the store, counting growths granted.
    used: usize,
    /// The last growth granted, taken back if the memory then fails to grow.
    pending: usize,
}

/// Most table elements any plugin may have (function tables are small in practice).
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl CallLimiter {
    pub(crate) fn new(max_memory: usize) -> Self {
        Self {
            max_memory,
            memory_exceeded: false,
            used: 0,
            pending: 0,
        }
    }
}

/// Error a limiter raises; the runtime maps it to `CallError::MemoryLimit`.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit_mb} MiB exceeded (all memories would take {desired} bytes)")]
pub struct MemoryLimitExceeded {
    pub limit_mb: usize,
    pub desired: usize,
}

impl wasmtime::ResourceLimiter for CallLimiter {
    /// Called for a memory's initial size too (`current` 0), so `used` covers every
    /// memory the store has.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.used.saturating_add(growth);
        if total > self.max_memory {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit_mb: self.max_memory >> 20,
                desired: total,
            }));
        }
        self.used = total;
        self.pending = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.used -= std::mem::take(&mut self.pending);
        tracing::debug!(error = %error, "a memory failed to grow after the limiter allowed it");
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::CallLimiter;
    use wasmtime::ResourceLimiter;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_memory_limit_counts_all_memories_together() {
        let mut l = CallLimiter::new(64 * MIB);
        // Two memories created at 24 MiB each: 48 MiB in all.
        assert!(l.memory_growing(0, 24 * MIB, None).unwrap());
        assert!(l.memory_growing(0, 24 * MIB, None).unwrap());
        // One of them growing by 8 MiB fits (56); by 24 MiB more it would not (80).
        assert!(l.memory_growing(24 * MIB, 32 * MIB, None).unwrap());
        let err = l.memory_growing(32 * MIB, 56 * MIB, None).unwrap_err();
        assert!(l.memory_exceeded);
        assert_eq!(
            err.to_string(),
            "memory limit of 64 MiB exceeded (all memories would take 83886080 bytes)"
        );
    }

    #[test]
    fn a_growth_that_fails_is_not_counted() {
        let mut l = CallLimiter::new(64 * MIB);
        assert!(l.memory_growing(0, 40 * MIB, None).unwrap());
        assert!(l.memory_growing(40 * MIB, 60 * MIB, None).unwrap());
        l.memory_grow_failed(wasmtime::Error::msg("mmap failed"))
            .unwrap();
        // Back at 40 MiB: another 20 MiB memory fits.
        assert!(l.memory_growing(0, 20 * MIB, None).unwrap());
        assert!(!l.memory_exceeded);
    }
}
