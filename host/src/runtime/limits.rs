//! Effective per-plugin limits: the smaller of what the manifest asks for and what the
//! operator allows, with the runtime's defaults filling the gaps.

use crate::config::RuntimeSettings;
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

fn pick(asked: Option<u64>, ceiling: Option<u64>, default: u64) -> u64 {
    match (asked, ceiling) {
        (Some(a), Some(c)) => a.min(c),
        (Some(a), None) => a,
        (None, Some(c)) => c.min(default),
        (None, None) => default,
    }
}

impl Limits {
    pub fn effective(manifest: &LimitsSpec, operator: &LimitsSpec, s: &RuntimeSettings) -> Limits {
        let memory_mb = pick(manifest.memory_mb, operator.memory_mb, s.default_memory_mb)
            .min(s.pool_max_memory_mb);
        let fuel = match (manifest.fuel, operator.fuel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Limits {
            memory_bytes: (memory_mb as usize) << 20,
            deadline_ms: pick(
                manifest.deadline_ms,
                operator.deadline_ms,
                s.default_deadline_ms,
            )
            .max(1),
            fuel: if s.fuel_metering { fuel } else { None },
            max_input_bytes: pick(
                manifest.max_input_bytes,
                operator.max_input_bytes,
                s.default_max_input_bytes,
            ) as usize,
            max_output_bytes: pick(
                manifest.max_output_bytes,
                operator.max_output_bytes,
                s.default_max_output_bytes,
            ) as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_ceiling_wins_over_manifest_request() {
        let s = RuntimeSettings {
            fuel_metering: true,
            ..RuntimeSettings::default()
        };
        let asked = LimitsSpec {
            memory_mb: Some(100),
            deadline_ms: Some(500),
            ..Default::default()
        };
        let ceiling = LimitsSpec {
            memory_mb: Some(16),
            deadline_ms: None,
            fuel: Some(1000),
            ..Default::default()
        };
        let l = Limits::effective(&asked, &ceiling, &s);
        assert_eq!(l.memory_bytes, 16 << 20);
        assert_eq!(l.deadline_ms, 500);
        assert_eq!(l.fuel, Some(1000));
        let d = Limits::effective(&LimitsSpec::default(), &LimitsSpec::default(), &s);
        assert_eq!(d.deadline_ms, s.default_deadline_ms);
        let unmetered = RuntimeSettings {
            fuel_metering: false,
            ..s
        };
        assert_eq!(Limits::effective(&asked, &ceiling, &unmetered).fuel, None);
    }
}
