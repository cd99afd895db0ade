//! Effective per-plugin limits. Deny by default holds for limits too: each limit's
//! ceiling is the operator's grant (`[grants.<name>.limits]`) when it sets one, else the
//! runtime default (`runtime.default_*`); memory is further capped by
//! `runtime.pool_max_memory_mb`. A manifest may ask for less than the ceiling and gets
//! what it asked; asking for more gets the ceiling, and [`Limits::effective`] reports the
//! request as [`Clamped`] so the loader can warn. Without a request a plugin gets the
//! runtime default (or the grant's value when that is lower). Fuel is a budget, not an
//! allowance: the smaller of the manifest's and the grant's, either alone if only one
//! sets it.

use super::settings::RuntimeSettings;
use crate::manifest::LimitsSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    pub memory_bytes: usize,
    pub deadline_ms: u64,
    /// `None`: no instruction budget.
    pub fuel: Option<u64>,
    pub max_input_bytes: usize,
    pub max_output_bytes: usize,
}

/// What set the ceiling a manifest's request was lowered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ceiling {
    /// No grant sets this limit: the runtime default is the ceiling.
    RuntimeDefault,
    /// The operator's `[grants.<name>.limits]` value.
    Grant,
    /// `runtime.pool_max_memory_mb`, the largest memory any plugin may have.
    Pool,
}

/// A manifest's request that was more than it is allowed: it loads with `granted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Clamped {
    /// The `[limits]` key, e.g. `deadline_ms`.
    pub limit: &'static str,
    pub asked: u64,
    pub granted: u64,
    pub ceiling: Ceiling,
}

impl Clamped {
    /// The operator-facing warning: who asked for what, what it got, and the config line
    /// that would allow the request (phrased like the grant errors of `capabilities::grants`).
    pub fn warning(&self, plugin: &str, name: &str) -> String {
        let Clamped {
            limit,
            asked,
            granted,
            ceiling,
        } = *self;
        let head = format!("plugin {plugin} asks for `{limit} = {asked}` but is allowed {granted}");
        match ceiling {
            Ceiling::RuntimeDefault => format!(
                "{head} (the runtime default; no grant raises it); it loads with {limit} = {granted}. \
                 To allow the request, add `[grants.{name}.limits] {limit} = {asked}` to strata.toml"
            ),
            Ceiling::Grant => format!(
                "{head} (its grant); it loads with {limit} = {granted}. \
                 To allow the request, set `[grants.{name}.limits] {limit} = {asked}` in strata.toml"
            ),
            Ceiling::Pool => format!(
                "{head} (runtime.pool_max_memory_mb, the largest memory any plugin may have); \
                 it loads with {limit} = {granted}. To allow the request, raise \
                 `[runtime] pool_max_memory_mb` in strata.toml (needs a restart)"
            ),
        }
    }
}

/// One limit: the ceiling is the grant's value if set, else the default; a request up to
/// the ceiling is honoured, above it clamped (and reported); no request: the default, or
/// the grant's value when lower.
fn pick(
    limit: &'static str,
    asked: Option<u64>,
    granted: Option<u64>,
    default: u64,
    clamped: &mut Vec<Clamped>,
) -> u64 {
    let (ceiling, by) = match granted {
        Some(g) => (g, Ceiling::Grant),
        None => (default, Ceiling::RuntimeDefault),
    };
    match asked {
        Some(a) if a > ceiling => {
            clamped.push(Clamped {
                limit,
                asked: a,
                granted: ceiling,
                ceiling: by,
            });
            ceiling
        }
        Some(a) => a,
        None => ceiling.min(default),
    }
}

impl Limits {
    /// The limits a version runs with, and the manifest's requests that were lowered to
    /// their ceiling (empty when the manifest asked for nothing beyond it).
    pub fn effective(
        manifest: &LimitsSpec,
        operator: &LimitsSpec,
        s: &RuntimeSettings,
    ) -> (Limits, Vec<Clamped>) {
        let mut clamped = Vec::new();
        let mut memory_mb = pick(
            "memory_mb",
            manifest.memory_mb,
            operator.memory_mb,
            s.default_memory_mb,
            &mut clamped,
        );
        if memory_mb > s.pool_max_memory_mb {
            if let Some(asked) = manifest.memory_mb.filter(|a| *a > s.pool_max_memory_mb) {
                clamped.retain(|c| c.limit != "memory_mb");
                clamped.push(Clamped {
                    limit: "memory_mb",
                    asked,
                    granted: s.pool_max_memory_mb,
                    ceiling: Ceiling::Pool,
                });
            }
            memory_mb = s.pool_max_memory_mb;
        }
        let fuel = match (manifest.fuel, operator.fuel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let limits = Limits {
            memory_bytes: (memory_mb as usize) << 20,
            deadline_ms: pick(
                "deadline_ms",
                manifest.deadline_ms,
                operator.deadline_ms,
                s.default_deadline_ms,
                &mut clamped,
            )
            .max(1),
            fuel: if s.fuel_metering { fuel } else { None },
            max_input_bytes: pick(
                "max_input_bytes",
                manifest.max_input_bytes,
                operator.max_input_bytes,
                s.default_max_input_bytes,
                &mut clamped,
            ) as usize,
            max_output_bytes: pick(
                "max_output_bytes",
                manifest.max_output_bytes,
                operator.max_output_bytes,
                s.default_max_output_bytes,
                &mut clamped,
            ) as usize,
        };
        (limits, clamped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metered() -> RuntimeSettings {
        RuntimeSettings {
            fuel_metering: true,
            ..RuntimeSettings::default()
        }
    }

    #[test]
    fn operator_ceiling_wins_over_manifest_request() {
        let s = metered();
        let asked = LimitsSpec {
            memory_mb: Some(100),
            deadline_ms: Some(500),
            ..Default::default()
        };
        let ceiling = LimitsSpec {
            memory_mb: Some(16),
            deadline_ms: Some(1000),
            fuel: Some(1000),
            ..Default::default()
        };
        let (l, clamped) = Limits::effective(&asked, &ceiling, &s);
        assert_eq!(l.memory_bytes, 16 << 20);
        assert_eq!(l.deadline_ms, 500, "the grant raises the ceiling");
        assert_eq!(l.fuel, Some(1000));
        assert_eq!(
            clamped,
            vec![Clamped {
                limit: "memory_mb",
                asked: 100,
                granted: 16,
                ceiling: Ceiling::Grant
            }]
        );
        let (d, none) = Limits::effective(&LimitsSpec::default(), &LimitsSpec::default(), &s);
        assert_eq!(d.deadline_ms, s.default_deadline_ms);
        assert!(none.is_empty());
        let unmetered = RuntimeSettings {
            fuel_metering: false,
            ..s
        };
        assert_eq!(Limits::effective(&asked, &ceiling, &unmetered).0.fuel, None);
    }

    #[test]
    fn without_a_grant_the_runtime_defaults_are_the_ceiling() {
        let s = metered();
        let asked = LimitsSpec {
            memory_mb: Some(256),
            deadline_ms: Some(20_000),
            max_input_bytes: Some(s.default_max_input_bytes * 4),
            max_output_bytes: Some(s.default_max_output_bytes * 4),
            fuel: Some(5_000),
        };
        let (l, clamped) = Limits::effective(&asked, &LimitsSpec::default(), &s);
        assert_eq!(l.memory_bytes, (s.default_memory_mb as usize) << 20);
        assert_eq!(l.deadline_ms, s.default_deadline_ms);
        assert_eq!(l.max_input_bytes as u64, s.default_max_input_bytes);
        assert_eq!(l.max_output_bytes as u64, s.default_max_output_bytes);
        assert_eq!(l.fuel, Some(5_000), "a manifest's fuel is a budget: kept");
        let names: Vec<_> = clamped.iter().map(|c| c.limit).collect();
        assert_eq!(
            names,
            [
                "memory_mb",
                "deadline_ms",
                "max_input_bytes",
                "max_output_bytes"
            ]
        );
        assert!(clamped.iter().all(|c| c.ceiling == Ceiling::RuntimeDefault));
        let deadline = clamped[1];
        assert_eq!((deadline.asked, deadline.granted), (20_000, 200));
        let w = deadline.warning("greedy@1.0.0", "greedy");
        assert!(w.contains("greedy@1.0.0"), "{w}");
        assert!(w.contains("`deadline_ms = 20000`"), "{w}");
        assert!(w.contains("allowed 200"), "{w}");
        assert!(
            w.contains("`[grants.greedy.limits] deadline_ms = 20000`"),
            "{w}"
        );
    }

    #[test]
    fn a_manifest_asking_less_than_the_ceiling_gets_what_it_asked() {
        let s = metered();
        let asked = LimitsSpec {
            memory_mb: Some(8),
            deadline_ms: Some(20),
            max_input_bytes: Some(1024),
            max_output_bytes: Some(512),
            fuel: None,
        };
        let (l, clamped) = Limits::effective(&asked, &LimitsSpec::default(), &s);
        assert_eq!(l.memory_bytes, 8 << 20);
        assert_eq!(l.deadline_ms, 20);
        assert_eq!(l.max_input_bytes, 1024);
        assert_eq!(l.max_output_bytes, 512);
        assert_eq!(l.fuel, None);
        assert!(clamped.is_empty());
    }

    #[test]
    fn a_grant_raises_the_ceiling_and_the_pool_caps_memory() {
        let s = metered();
        let asked = LimitsSpec {
            memory_mb: Some(512),
            deadline_ms: Some(20_000),
            ..Default::default()
        };
        let grant = LimitsSpec {
            memory_mb: Some(1024),
            deadline_ms: Some(30_000),
            fuel: Some(10),
            ..Default::default()
        };
        let (l, clamped) = Limits::effective(&asked, &grant, &s);
        assert_eq!(l.deadline_ms, 20_000, "asked less than the grant allows");
        assert_eq!(l.memory_bytes, (s.pool_max_memory_mb as usize) << 20);
        assert_eq!(l.fuel, Some(10), "the grant's fuel budget alone applies");
        assert_eq!(
            clamped,
            vec![Clamped {
                limit: "memory_mb",
                asked: 512,
                granted: s.pool_max_memory_mb,
                ceiling: Ceiling::Pool
            }]
        );
        assert!(clamped[0]
            .warning("big@1.0.0", "big")
            .contains("pool_max_memory_mb"));
        // A grant without a request: the default, or the grant when it is lower.
        let (quiet, _) = Limits::effective(&LimitsSpec::default(), &grant, &s);
        assert_eq!(quiet.deadline_ms, s.default_deadline_ms);
        let low = LimitsSpec {
            deadline_ms: Some(20),
            ..Default::default()
        };
        assert_eq!(
            Limits::effective(&LimitsSpec::default(), &low, &s)
                .0
                .deadline_ms,
            20
        );
    }
}
