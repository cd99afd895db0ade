//! Conversions between host domain types and the generated WIT types.

use super::since_v0_1_0::types as wit;
use crate::domain::{Factor, Lead, LeadStatus, Priority, Score, StoredScore};

impl From<wit::Priority> for Priority {
    fn from(p: wit::Priority) -> Self {
        match p {
            wit::Priority::Immediate => Priority::Immediate,
            wit::Priority::High => Priority::High,
            wit::Priority::Medium => Priority::Medium,
            wit::Priority::Low => Priority::Low,
        }
    }
}

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

impl From<LeadStatus> for wit::LeadStatus {
    fn from(s: LeadStatus) -> Self {
        match s {
            LeadStatus::New => wit::LeadStatus::New,
            LeadStatus::Contacted => wit::LeadStatus::Contacted,
            LeadStatus::Nurture => wit::LeadStatus::Nurture,
            LeadStatus::Qualified => wit::LeadStatus::Qualified,
            LeadStatus::Unqualified => wit::LeadStatus::Unqualified,
            LeadStatus::Junk => wit::LeadStatus::Junk,
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

impl From<&Lead> for wit::Lead {
    fn from(l: &Lead) -> Self {
        wit::Lead {
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
                .map(|(name, value)| wit::Attribute {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

/// Unvalidated: the runtime checks ranges before a score leaves it.
impl From<wit::Score> for Score {
    fn from(s: wit::Score) -> Self {
        Score {
            value: s.value,
            priority: s.priority.into(),
            recommended_action: s.recommended_action,
            reasoning: s.reasoning,
            confidence: s.confidence,
            factors: s
                .factors
                .into_iter()
                .map(|f| Factor {
                    name: f.name,
                    score: f.score,
                })
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
