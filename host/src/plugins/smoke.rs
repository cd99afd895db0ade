//! Smoke tests from a manifest: each case is scored and checked against its bounds before
//! a version may go live.

use crate::manifest::SmokeCase;
use crate::runtime::LoadedPlugin;

/// Runs every smoke case; the first failure is returned as `(case name, why)`.
pub fn run(plugin: &LoadedPlugin, cases: &[SmokeCase]) -> Result<usize, (String, String)> {
    for case in cases {
        let score = plugin
            .score(&case.input, None)
            .map_err(|e| (case.name.clone(), e.to_string()))?;
        let e = &case.expect;
        if let Some(min) = e.min_score {
            if score.value < min {
                return Err((
                    case.name.clone(),
                    format!("score {} < min_score {min}", score.value),
                ));
            }
        }
        if let Some(max) = e.max_score {
            if score.value > max {
                return Err((
                    case.name.clone(),
                    format!("score {} > max_score {max}", score.value),
                ));
            }
        }
        if !e.priority.is_empty() && !e.priority.contains(&score.priority) {
            let allowed: Vec<&str> = e.priority.iter().map(|p| p.as_str()).collect();
            return Err((
                case.name.clone(),
                format!(
                    "priority {} not in [{}]",
                    score.priority,
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(cases.len())
}
