//! Native reference implementations: the same scoring logic as the shipped BANT plugin,
//! compiled into the host. Used by `strata bench` to measure what the sandbox costs.

use crate::domain::{Lead, Score};
use strata_sdk as sdk;

// The lead in and the score out convert exactly as at the component boundary (one
// definition for both bindings), so the comparison is fair.
crate::wit::convert::scorer_call_conversions!(sdk);

/// Scores a lead with the BANT logic natively.
pub fn bant_score(l: &Lead) -> Score {
    bant::score_lead(&sdk::Lead::from(l)).into()
}
