//! Conversions between host domain types and the generated WIT types.

use super::since_v0_1_0::types as wit;
use crate::domain::{Lead, LeadStatus, Priority, Score, StoredScore};

/// The conversions of a scorer call — the lead in, the score out — between the domain
/// types and a set of types generated from `types.wit`, given as the name of a module in scope. One
/// definition for every binding of the contract: the host's (below) and the guest SDK's,
/// which `strata bench`'s native reference calls (`cli/bench/native.rs`), so that both
/// sides of the comparison convert the same way.
macro_rules! scorer_call_conversions {
    ($types:ident) => {
        impl From<$crate::domain::LeadStatus> for $types::LeadStatus {
            fn from(s: $crate::domain::LeadStatus) -> Self {
                use $crate::domain::LeadStatus as L;
                match s {
                    L::New => Self::New,
                    L::Contacted => Self::Contacted,
                    L::Nurture => Self::Nurture,
                    L::Qualified => Self::Qualified,
                    L::Unqualified => Self::Unqualified,
                    L::Junk => Self::Junk,
                }
            }
        }

        impl From<$types::Priority> for $crate::domain::Priority {
            fn from(p: $types::Priority) -> Self {
                use $types::Priority as P;
                match p {
                    P::Immediate => Self::Immediate,
                    P::High => Self::High,
                    P::Medium => Self::Medium,
                    P::Low => Self::Low,
                }
            }
        }

        impl From<&$crate::domain::Lead> for $types::Lead {
            fn from(l: &$crate::domain::Lead) -> Self {
                Self {
                    id: l.id.clone(),
                    name: l.name.clone(),
                    email: l.email.clone(),
                    company: l.company.clone(),
                    title: l.title.clone(),
                    industry: l.industry.clone(),
                    employees: l.employees,
                    annual_revenue: l.annual_revenue,
                    budget: l.budget,
                    timeline: l.timeline.clone(),
                    source: l.source.clone(),
                    status: l.status.into(),
                    notes: l.notes.clone(),
                    attributes: l
                        .attributes
                        .iter()
                        .map(|(name, value)| $types::Attribute {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                }
            }
        }

        /// Unvalidated: the runtime checks ranges before a score leaves it.
        impl From<$types::Score> for $crate::domain::Score {
            fn from(s: $types::Score) -> Self {
                Self {
                    value: s.value,
                    priority: s.priority.into(),
                    recommended_action: s.recommended_action,
                    reasoning: s.reasoning,
                    confidence: s.confidence,
                    factors: s
                        .factors
                        .into_iter()
                        .map(|f| $crate::domain::Factor {
                            name: f.name,
                            score: f.score,
                        })
                        .collect(),
                }
            }
        }
    };
}
pub(crate) use scorer_call_conversions;

scorer_call_conversions!(wit);

impl From<Priority> for wit::Priority {
    fn from(p: Priority) -> Self {
        match p {
            Priority::Immediate => wit::Priority::Immediate,
            Priority::High => wit::Priority::High,
            Priority::Medium => wit::Priority::Medium,
            Priority::Low => wit::Priority::Low,
        }
    }
}

impl From<wit::LeadStatus> for LeadStatus {
    fn from(s: wit::LeadStatus) -> Self {
        match s {
            wit::LeadStatus::New => LeadStatus::New,
            wit::LeadStatus::Contacted => LeadStatus::Contacted,
            wit::LeadStatus::Nurture => LeadStatus::Nurture,
            wit::LeadStatus::Qualified => LeadStatus::Qualified,
            wit::LeadStatus::Unqualified => LeadStatus::Unqualified,
            wit::LeadStatus::Junk => LeadStatus::Junk,
        }
    }
}

/// A lead a plugin passes back to the host (e.g. to `scoring`).
impl From<wit::Lead> for Lead {
    fn from(l: wit::Lead) -> Self {
        Lead {
            id: l.id,
            name: l.name,
            email: l.email,
            company: l.company,
            title: l.title,
            industry: l.industry,
            employees: l.employees,
            annual_revenue: l.annual_revenue,
            budget: l.budget,
            timeline: l.timeline,
            source: l.source,
            status: l.status.into(),
            notes: l.notes,
            attributes: l
                .attributes
                .into_iter()
                .map(|a| (a.name, a.value))
                .collect(),
        }
    }
}

impl From<&Score> for wit::Score {
    fn from(s: &Score) -> Self {
        wit::Score {
            value: s.value,
            priority: s.priority.into(),
            recommended_action: s.recommended_action.clone(),
            reasoning: s.reasoning.clone(),
            confidence: s.confidence,
            factors: s
                .factors
                .iter()
                .map(|f| wit::Factor {
                    name: f.name.clone(),
                    score: f.score,
                })
                .collect(),
        }
    }
}

impl From<&StoredScore> for wit::StoredScore {
    fn from(s: &StoredScore) -> Self {
        wit::StoredScore {
            strategy: s.strategy.clone(),
            score: (&s.score).into(),
            created_at: s.created_at,
            override_value: s.human_override.as_ref().and_then(|o| o.value),
            override_priority: s
                .human_override
                .as_ref()
                .and_then(|o| o.priority)
                .map(Into::into),
        }
    }
}
