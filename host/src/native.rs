//! Native reference implementations: the same scoring logic as the shipped BANT plugin,
//! compiled into the host. Used by `strata bench` to measure what the sandbox costs.

use crate::domain::{Factor, Lead, Score};
use strata_sdk as sdk;

fn status(s: crate::domain::LeadStatus) -> sdk::LeadStatus {
    use crate::domain::LeadStatus as L;
    match s {
        L::New => sdk::LeadStatus::New,
        L::Contacted => sdk::LeadStatus::Contacted,
        L::Nurture => sdk::LeadStatus::Nurture,
        L::Qualified => sdk::LeadStatus::Qualified,
        L::Unqualified => sdk::LeadStatus::Unqualified,
        L::Junk => sdk::LeadStatus::Junk,
    }
}

fn priority(p: sdk::Priority) -> crate::domain::Priority {
    use crate::domain::Priority as P;
    match p {
        sdk::Priority::Immediate => P::Immediate,
        sdk::Priority::High => P::High,
        sdk::Priority::Medium => P::Medium,
        sdk::Priority::Low => P::Low,
    }
}

/// Scores a lead with the BANT logic natively (input and output converted like the
/// component boundary converts them, so the comparison is fair).
pub fn bant_score(l: &Lead) -> Score {
    let lead = sdk::Lead {
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
        status: status(l.status),
        notes: l.notes.clone(),
        attributes: l
            .attributes
            .iter()
            .map(|(k, v)| sdk::Attribute {
                name: k.clone(),
                value: v.clone(),
            })
            .collect(),
    };
    let s = bant::score_lead(&lead);
    Score {
        value: s.value,
        priority: priority(s.priority),
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
