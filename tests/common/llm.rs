//! LLM broker configurations for tests: `[llm…]` TOML built section by section
//! ([`LlmToml`]), with the usual pairings ready-made (Anthropic `claude` behind alias
//! `qualifier`, OpenAI-compatible `oa` behind `small`, `local` behind `local-small`, and
//! `qualifier` falling back to `local-small`), and the test API keys in the environment.

use std::sync::Once;
use strata::llm::{LlmBroker, LlmSettings};

pub const ANTHROPIC_KEY_VAR: &str = "STRATA_TEST_LLM_ANTHROPIC_KEY";
pub const ANTHROPIC_KEY: &str = "sk-ant-test-Zq8Lx-SECRET-0123456789";
pub const OPENAI_KEY_VAR: &str = "STRATA_TEST_LLM_OPENAI_KEY";
pub const OPENAI_KEY: &str = "sk-proj-test-Wv5-SECRET-abcdef";
pub const UNSET_KEY_VAR: &str = "STRATA_TEST_LLM_KEY_THAT_IS_NEVER_SET";

/// Tests run on parallel threads: the variables are set once, before any broker reads them.
pub fn set_keys() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var(ANTHROPIC_KEY_VAR, ANTHROPIC_KEY);
        std::env::set_var(OPENAI_KEY_VAR, OPENAI_KEY);
        std::env::remove_var(UNSET_KEY_VAR);
    });
}

/// `[llm…]` TOML → settings, as the config loader would read them.
pub fn settings(toml_text: &str) -> LlmSettings {
    #[derive(serde::Deserialize)]
    struct Root {
        llm: LlmSettings,
    }
    toml::from_str::<Root>(toml_text)
        .unwrap_or_else(|e| panic!("{e}\n{toml_text}"))
        .llm
}

/// A broker on `toml_text` (the test keys set), which must be valid.
pub fn broker(toml_text: &str) -> LlmBroker {
    set_keys();
    let s = settings(toml_text);
    s.validate().unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    LlmBroker::new(&s).unwrap_or_else(|e| panic!("{e}\n{toml_text}"))
}

/// `[llm…]` TOML, section by section, in the order the methods are called.
#[derive(Debug, Clone, Default)]
pub struct LlmToml(String);

impl LlmToml {
    pub fn new() -> Self {
        LlmToml::default()
    }

    /// Provider `claude` (Anthropic) at `url` (`extra`: more lines of its section) behind
    /// alias `qualifier`, without fallback.
    pub fn claude_qualifier(url: &str, extra: &str) -> Self {
        LlmToml::new()
            .anthropic("claude", url, extra)
            .qualifier_model(&[])
    }

    /// Provider `oa` (OpenAI-compatible) at `url` (`extra`: more lines of its section)
    /// behind alias `small`.
    pub fn oa_small(url: &str, extra: &str) -> Self {
        LlmToml::new().openai("oa", url, extra).small_model()
    }

    /// Provider `local` (OpenAI-compatible) at `url` (`extra`: more lines of its section)
    /// behind alias `local-small`.
    pub fn local_small(url: &str, extra: &str) -> Self {
        LlmToml::new()
            .openai("local", url, extra)
            .local_small_model()
    }

    /// `qualifier` on `claude` (Anthropic, at `primary`) falling back to `local-small` on
    /// `local` (OpenAI-compatible, at `backup`); `*_extra`: more lines of each provider's
    /// section.
    pub fn qualifier_with_local_fallback(
        primary: &str,
        primary_extra: &str,
        backup: &str,
        backup_extra: &str,
    ) -> Self {
        LlmToml::new()
            .anthropic("claude", primary, primary_extra)
            .openai("local", backup, backup_extra)
            .qualifier_model(&["local-small"])
            .local_small_model()
    }

    /// `[llm.providers.<name>]` of kind `anthropic` at `url`, its key in
    /// [`ANTHROPIC_KEY_VAR`], then the lines `extra` (if any).
    pub fn anthropic(mut self, name: &str, url: &str, extra: &str) -> Self {
        self.0.push_str(&format!(
            "[llm.providers.{name}]\nkind = \"anthropic\"\nbase_url = \"{url}\"\napi_key_env = \"{ANTHROPIC_KEY_VAR}\"\n"
        ));
        if !extra.is_empty() {
            self.0.push_str(extra);
            self.0.push('\n');
        }
        self
    }

    /// `[llm.providers.<name>]` of kind `openai` at `url`, then the lines `extra`.
    pub fn openai(mut self, name: &str, url: &str, extra: &str) -> Self {
        self.0.push_str(&format!(
            "[llm.providers.{name}]\nkind = \"openai\"\nbase_url = \"{url}\"\n{extra}\n"
        ));
        self
    }

    /// `[llm.models.<alias>]`: `model` of `provider`, priced (input, output) in USD per
    /// million tokens, with its fallback aliases.
    pub fn model(
        mut self,
        alias: &str,
        provider: &str,
        model: &str,
        prices: (f64, f64),
        fallback: &[&str],
    ) -> Self {
        let fallback: Vec<String> = fallback.iter().map(|f| format!("{f:?}")).collect();
        self.0.push_str(&format!(
            "[llm.models.{alias}]\nprovider = \"{provider}\"\nmodel = \"{model}\"\ninput_usd_per_mtok = {:?}\noutput_usd_per_mtok = {:?}\nfallback = [{}]\n",
            prices.0,
            prices.1,
            fallback.join(", ")
        ));
        self
    }

    /// Alias `qualifier`: `claude-sonnet-4-5` on `claude` at $3 / $15.
    pub fn qualifier_model(self, fallback: &[&str]) -> Self {
        self.model(
            "qualifier",
            "claude",
            "claude-sonnet-4-5",
            (3.0, 15.0),
            fallback,
        )
    }

    /// Alias `small`: `gpt-4.1-mini` on `oa` at $0.4 / $1.6.
    pub fn small_model(self) -> Self {
        self.model("small", "oa", "gpt-4.1-mini", (0.4, 1.6), &[])
    }

    /// Alias `local-small`: `smollm2` on `local`, free.
    pub fn local_small_model(self) -> Self {
        self.model("local-small", "local", "smollm2", (0.0, 0.0), &[])
    }

    /// `[llm.retry]`: retries without noticeable waits.
    pub fn retry(mut self, max_attempts: u32, max_delay_ms: u64) -> Self {
        self.0.push_str(&format!(
            "[llm.retry]\nmax_attempts = {max_attempts}\nbase_delay_ms = 1\nmax_delay_ms = {max_delay_ms}\n"
        ));
        self
    }

    /// `[llm.breaker]`.
    pub fn breaker(mut self, failure_threshold: u32, open_ms: u64) -> Self {
        self.0.push_str(&format!(
            "[llm.breaker]\nfailure_threshold = {failure_threshold}\nopen_ms = {open_ms}\n"
        ));
        self
    }

    pub fn text(&self) -> &str {
        &self.0
    }

    /// The broker of this configuration ([`broker`]).
    pub fn broker(&self) -> LlmBroker {
        broker(&self.0)
    }
}
