//! `[challenger]`: how shadow and canary results are run and recorded, and which lead
//! outcomes count as positive in the comparison.

use crate::domain::Priority;
use serde::{Deserialize, Serialize};

/// `[challenger]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChallengerSettings {
    /// Shadow scorings run at once on this replica (blocking threads). A sampled call
    /// that finds them all busy is skipped and counted (`challenger_shadow_skipped_total`):
    /// a shadow never queues behind itself or slows the champion's responses.
    pub max_concurrent_shadows: usize,
    /// Results buffered for the database writer; a full buffer drops results (counted).
    pub queue: usize,
    /// How often buffered results are written (one transaction per flush).
    pub flush_ms: u64,
    /// How often a replica reads the attachments again (changes made through another
    /// replica reach this one within this interval; this replica's own apply at once).
    pub poll_ms: u64,
    /// Lead statuses that count as a positive outcome in the comparison.
    pub positive_statuses: Vec<String>,
    /// Lead statuses that count as a negative outcome. Other statuses (`new`,
    /// `contacted`, `nurture`) are not outcomes yet.
    pub negative_statuses: Vec<String>,
    /// A human override to one of these priorities counts as positive, to another as
    /// negative — for leads whose status is not an outcome yet.
    pub positive_override_priorities: Vec<Priority>,
}

impl Default for ChallengerSettings {
    fn default() -> Self {
        Self {
            max_concurrent_shadows: 2,
            queue: 8192,
            flush_ms: 200,
            poll_ms: 2000,
            positive_statuses: vec!["qualified".into()],
            negative_statuses: vec!["unqualified".into(), "junk".into()],
            positive_override_priorities: vec![Priority::Immediate, Priority::High],
        }
    }
}

const STATUSES: [&str; 6] = [
    "new",
    "contacted",
    "nurture",
    "qualified",
    "unqualified",
    "junk",
];

impl ChallengerSettings {
    /// One line naming the key when a value cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_concurrent_shadows == 0 || self.queue == 0 || self.flush_ms == 0 {
            return Err(
                "challenger.max_concurrent_shadows, challenger.queue and challenger.flush_ms must be at least 1"
                    .into(),
            );
        }
        for s in self.positive_statuses.iter().chain(&self.negative_statuses) {
            if !STATUSES.contains(&s.as_str()) {
                return Err(format!(
                    "challenger: {s:?} is not a lead status (one of {})",
                    STATUSES.join(", ")
                ));
            }
        }
        if let Some(s) = self
            .positive_statuses
            .iter()
            .find(|s| self.negative_statuses.contains(s))
        {
            return Err(format!(
                "challenger: status {s:?} is both in positive_statuses and negative_statuses"
            ));
        }
        Ok(())
    }

    /// The outcome a lead's status says: `Some(true)` positive, `Some(false)` negative,
    /// `None` not decided yet.
    pub fn outcome_of_status(&self, status: &str) -> Option<bool> {
        if self.positive_statuses.iter().any(|s| s == status) {
            Some(true)
        } else if self.negative_statuses.iter().any(|s| s == status) {
            Some(false)
        } else {
            None
        }
    }
}
