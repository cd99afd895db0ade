//! `log`: plugin log lines into the host's log, tagged with plugin@version and request id.
//! Always granted; capped per call (lines and line length) so a plugin cannot flood it.

use super::call_state::{LOG_LINES_PER_CALL, LOG_LINE_BYTES};
use super::CallState;
use crate::wit::since_v0_1_0::{log as wit, scorer};
use wasmtime::component::{HasSelf, Linker};

pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    scorer::strata::plugin::log::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
}

/// Truncates to `max` bytes on a char boundary and replaces control characters, so a
/// plugin cannot forge log lines.
pub(crate) fn sanitize(message: &str, max: usize) -> String {
    let mut end = message.len().min(max);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = message[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if end < message.len() {
        out.push('…');
    }
    out
}

impl wit::Host for CallState {
    fn log(&mut self, level: wit::Level, message: String) {
        if self.log_lines >= LOG_LINES_PER_CALL {
            self.log_dropped += 1;
            return;
        }
        self.log_lines += 1;
        let msg = sanitize(&message, LOG_LINE_BYTES);
        let plugin = self.plugin.id.as_str();
        let request_id = self.request_id.as_deref();
        match level {
            wit::Level::Trace => tracing::trace!(plugin, request_id, "{msg}"),
            wit::Level::Debug => tracing::debug!(plugin, request_id, "{msg}"),
            wit::Level::Info => tracing::info!(plugin, request_id, "{msg}"),
            wit::Level::Warn => tracing::warn!(plugin, request_id, "{msg}"),
            wit::Level::Error => tracing::error!(plugin, request_id, "{msg}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn sanitize_strips_control_characters_and_truncates_on_char_boundary() {
        assert_eq!(sanitize("a\nb\rc", 100), "a b c");
        assert_eq!(sanitize("ééé", 3), "é…");
    }
}
