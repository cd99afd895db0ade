//! The secret values the configuration points at, and the one redactor that keeps them
//! out of what the host stores or returns.
//!
//! Secrets are not in the configuration itself: keys ending in `_env` name environment
//! variables that hold them — `llm.providers.*.api_key_env`, `mcp.servers.*.auth_header_env`,
//! `webhooks.*.secret_env`. A provider or MCP server may echo one back (a careless error
//! page, a model repeating its prompt or headers); what comes back through a capability
//! is redacted at the capability boundary — the `llm` completion (text and JSON) and its
//! errors, `mcp` tool results — before a plugin sees it, and every audit detail before it
//! is queued. So a plugin's output, the rows built from it (scores, agent executions,
//! layer runs, events) and the runs API never carry a configured secret.
//!
//! Values shorter than [`Secrets::MIN_LEN`] characters are not redacted: they are not
//! credentials anyone should use, and replacing them everywhere would mangle ordinary
//! text. An `Authorization`-style value (`Bearer <token>`) is redacted whole and by its
//! token.

use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// The configured secret values, longest first. `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct Secrets(Arc<Vec<String>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// Shorter values are not redacted (see the module docs).
    pub const MIN_LEN: usize = 8;

    /// These values (and the token of a `<scheme> <token>` value), minus short ones.
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut all: Vec<String> = Vec::new();
        for v in values {
            let v = v.trim().to_string();
            if let Some((_, token)) = v.split_once(' ') {
                all.push(token.trim().to_string());
            }
            all.push(v);
        }
        all.retain(|v| v.chars().count() >= Self::MIN_LEN);
        // Longest first, so a value containing another is replaced whole.
        all.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        all.dedup();
        Secrets(Arc::new(all))
    }

    /// The values of the environment variables named `vars` (e.g.
    /// [`crate::config::Config::secret_env_vars`]); unset ones are skipped.
    pub fn from_env_vars(
        vars: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        Self::new(vars.into_iter().filter_map(|v| env(&v)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every secret replaced by [`REDACTED`] (borrowed when none occurs).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for s in self.0.iter() {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
        out
    }

    /// [`Self::redact`] into an owned string.
    pub fn redact_string(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(o) => o,
        }
    }

    /// Redacts every string (and object key) inside `v`.
    pub fn redact_json(&self, v: &mut Value) {
        if self.is_empty() {
            return;
        }
        match v {
            Value::String(s) => {
                if let Cow::Owned(o) = self.redact(s) {
                    *s = o;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.redact_json(i)),
            Value::Object(map) => {
                let needs_key = map.keys().any(|k| matches!(self.redact(k), Cow::Owned(_)));
                if needs_key {
                    let old = std::mem::take(map);
                    for (k, mut val) in old {
                        self.redact_json(&mut val);
                        map.insert(self.redact_string(k), val);
                    }
                } else {
                    map.values_mut().for_each(|i| self.redact_json(i));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_values_tokens_json_and_skips_short_ones() {
        let s = Secrets::new([
            "sk-live-0123456789".to_string(),
            "Bearer tok-ABCDEFGH".to_string(),
            "x".to_string(),
        ]);
        assert_eq!(
            s.redact("key sk-live-0123456789 and tok-ABCDEFGH and x"),
            "key [redacted] and [redacted] and x"
        );
        assert!(matches!(s.redact("nothing here"), Cow::Borrowed(_)));
        let mut v = json!({"a": ["sk-live-0123456789!"], "sk-live-0123456789": {"b": "Bearer tok-ABCDEFGH"}});
        s.redact_json(&mut v);
        assert_eq!(
            v,
            json!({"a": ["[redacted]!"], "[redacted]": {"b": "[redacted]"}})
        );
        assert!(!format!("{s:?}").contains("sk-live"));
    }
}
