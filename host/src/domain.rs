//! Host-side domain types: leads, scores and their parts.
//!
//! These are the types the database, the CLI and (later) the HTTP API speak. The WIT
//! bindings have their own generated types; `wit::convert` maps between the two.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Lifecycle status of a lead.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Default,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LeadStatus {
    #[default]
    New,
    Contacted,
    Nurture,
    Qualified,
    Unqualified,
    Junk,
}

/// Priority bucket of a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Immediate,
    High,
    Medium,
    Low,
}

macro_rules! str_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(UnknownVariant { kind: stringify!($ty), value: s.to_string() }),
                }
            }
        }
    };
}

str_enum!(LeadStatus {
    New => "new",
    Contacted => "contacted",
    Nurture => "nurture",
    Qualified => "qualified",
    Unqualified => "unqualified",
    Junk => "junk",
});

str_enum!(Priority {
    Immediate => "immediate",
    High => "high",
    Medium => "medium",
    Low => "low",
});

/// A string that names no variant of an enum.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

/// A lead as the CRM holds it. `attributes` carries every field without a typed slot
/// (custom CRM fields, data-set columns), in a stable order.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Lead {
    /// 1–200 characters, not only whitespace, no NUL (`crm::validate_lead`).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r ][^\x00]*$"
    )]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub industry: Option<String>,
    /// 0 to 4294967295 (an unsigned 32-bit count; stored as BIGINT).
    #[serde(default, deserialize_with = "whole_count")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    pub employees: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub annual_revenue: Option<f64>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub budget: Option<f64>,
    #[serde(default)]
    pub timeline: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub status: LeadStatus,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// An optional `u32` count that also accepts a JSON number with a zero fraction (`12.0`),
/// as JSON Schema's `integer` does.
fn whole_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let Some(x) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if x.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&x) {
        Ok(Some(x as u32))
    } else {
        Err(serde::de::Error::custom(format!(
            "must be a whole number from 0 to 4294967295, got {x}"
        )))
    }
}

/// One named factor of a score, 0–100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Factor {
    pub name: String,
    pub score: f64,
}

/// A score as a scorer returns it (validated by the host before anyone sees it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Score {
    pub value: f64,
    pub priority: Priority,
    pub recommended_action: String,
    pub reasoning: String,
    pub confidence: f64,
    pub factors: Vec<Factor>,
}

/// A human correction of a machine score. Stored beside the score, never over it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoreOverride {
    pub value: Option<f64>,
    pub priority: Option<Priority>,
    pub by: String,
    pub reason: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

/// A score stored for a lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredScore {
    pub id: String,
    pub lead_id: String,
    /// `plugin@version` that produced the score.
    pub strategy: String,
    /// SHA-256 of that version's component (absent for scores stored before it was
    /// recorded).
    pub strategy_sha256: Option<String>,
    pub score: Score,
    pub fallback_used: bool,
    pub request_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub human_override: Option<ScoreOverride>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
