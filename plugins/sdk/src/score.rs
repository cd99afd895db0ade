//! Building scores: [`Factor::new`], [`Priority::from_score`] and [`ScoreBuilder`].

use crate::{Factor, Priority, Score};

/// Clamps `v` into `lo..=hi`; NaN becomes `lo`.
fn clamp(v: f64, lo: f64, hi: f64) -> f64 {
    if v.is_nan() {
        lo
    } else {
        v.clamp(lo, hi)
    }
}

impl Factor {
    /// A named factor; `score` is clamped to 0–100 (NaN becomes 0).
    pub fn new(name: impl Into<String>, score: f64) -> Self {
        Factor {
            name: name.into(),
            score: clamp(score, 0.0, 100.0),
        }
    }
}

impl Priority {
    /// Score at or above which a lead is [`Priority::Immediate`].
    pub const IMMEDIATE_FROM: f64 = 85.0;
    /// Score at or above which a lead is [`Priority::High`].
    pub const HIGH_FROM: f64 = 65.0;
    /// Score at or above which a lead is [`Priority::Medium`]; below it, [`Priority::Low`].
    pub const MEDIUM_FROM: f64 = 40.0;

    /// The priority band of a 0–100 score: immediate ≥ 85, high ≥ 65, medium ≥ 40, else low.
    pub fn from_score(value: f64) -> Self {
        match value {
            v if v >= Self::IMMEDIATE_FROM => Priority::Immediate,
            v if v >= Self::HIGH_FROM => Priority::High,
            v if v >= Self::MEDIUM_FROM => Priority::Medium,
            _ => Priority::Low,
        }
    }

    /// A generic next step for the band, for plugins without their own wording.
    pub fn default_action(self) -> &'static str {
        match self {
            Priority::Immediate => "Call today: route to a senior rep",
            Priority::High => "Contact within 48 hours",
            Priority::Medium => "Add to a nurture sequence",
            Priority::Low => "Keep in marketing automation; no sales action",
        }
    }
}

impl Score {
    /// Starts a score of `value` (clamped to 0–100 on [`ScoreBuilder::build`]).
    pub fn builder(value: f64) -> ScoreBuilder {
        ScoreBuilder {
            value,
            priority: None,
            action: None,
            reasoning: String::new(),
            confidence: 1.0,
            factors: Vec::new(),
        }
    }
}

/// Builds a valid [`Score`]: value within 0–100, confidence within 0–1, no NaN.
/// Priority defaults to [`Priority::from_score`], the action to [`Priority::default_action`].
#[derive(Debug, Clone)]
pub struct ScoreBuilder {
    value: f64,
    priority: Option<Priority>,
    action: Option<String>,
    reasoning: String,
    confidence: f64,
    factors: Vec<Factor>,
}

impl ScoreBuilder {
    /// Adds a factor (see [`Factor::new`]).
    pub fn factor(mut self, name: impl Into<String>, score: f64) -> Self {
        self.factors.push(Factor::new(name, score));
        self
    }

    /// Overrides the priority derived from the value.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Sets the recommended action.
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Sets the reasoning text.
    pub fn reasoning(mut self, reasoning: impl Into<String>) -> Self {
        self.reasoning = reasoning.into();
        self
    }

    /// Sets the confidence, clamped to 0–1 (default 1).
    pub fn confidence(mut self, confidence: f64) -> Self {
        self.confidence = confidence;
        self
    }

    /// The finished score.
    pub fn build(self) -> Score {
        let value = clamp(self.value, 0.0, 100.0);
        let priority = self.priority.unwrap_or_else(|| Priority::from_score(value));
        Score {
            value,
            priority,
            recommended_action: self
                .action
                .unwrap_or_else(|| priority.default_action().to_owned()),
            reasoning: self.reasoning,
            confidence: clamp(self.confidence, 0.0, 1.0),
            factors: self.factors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_bands() {
        assert_eq!(Priority::from_score(85.0), Priority::Immediate);
        assert_eq!(Priority::from_score(84.9), Priority::High);
        assert_eq!(Priority::from_score(65.0), Priority::High);
        assert_eq!(Priority::from_score(40.0), Priority::Medium);
        assert_eq!(Priority::from_score(39.9), Priority::Low);
        assert_eq!(Priority::from_score(f64::NAN), Priority::Low);
    }

    #[test]
    fn builder_clamps() {
        let s = Score::builder(150.0)
            .confidence(f64::NAN)
            .factor("x", -3.0)
            .build();
        assert_eq!(s.value, 100.0);
        assert_eq!(s.priority, Priority::Immediate);
        assert_eq!(s.confidence, 0.0);
        assert_eq!(s.factors[0].score, 0.0);
        assert!(!s.recommended_action.is_empty());
    }
}
