//! Reading a lead's free-form attributes.

use crate::Lead;

/// Convenience accessors for [`Lead`].
pub trait LeadExt {
    /// The trimmed value of the attribute `name` (exact, case-sensitive match).
    ///
    /// `None` when the attribute is absent, empty, or the literal `Select`, which data
    /// sets such as X Education use for "nothing chosen".
    fn attr(&self, name: &str) -> Option<&str>;

    /// The attribute `name` parsed as a finite number; `None` when absent or not a number.
    fn attr_f64(&self, name: &str) -> Option<f64>;
}

impl LeadExt for Lead {
    fn attr(&self, name: &str) -> Option<&str> {
        let value = self
            .attributes
            .iter()
            .find(|a| a.name == name)?
            .value
            .trim();
        (!value.is_empty() && value != "Select").then_some(value)
    }

    fn attr_f64(&self, name: &str) -> Option<f64> {
        self.attr(name)?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attribute, LeadStatus};

    fn lead(attrs: &[(&str, &str)]) -> Lead {
        Lead {
            id: "l".into(),
            name: None,
            email: None,
            company: None,
            title: None,
            industry: None,
            employees: None,
            annual_revenue: None,
            budget: None,
            timeline: None,
            source: None,
            status: LeadStatus::New,
            notes: None,
            attributes: attrs
                .iter()
                .map(|(n, v)| Attribute {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn attr_treats_empty_and_select_as_missing() {
        let l = lead(&[
            ("A", " x "),
            ("B", ""),
            ("C", "Select"),
            ("N", "2.5"),
            ("M", "nan"),
        ]);
        assert_eq!(l.attr("A"), Some("x"));
        assert_eq!(l.attr("B"), None);
        assert_eq!(l.attr("C"), None);
        assert_eq!(l.attr("Z"), None);
        assert_eq!(l.attr_f64("N"), Some(2.5));
        assert_eq!(l.attr_f64("M"), None);
        assert_eq!(l.attr_f64("A"), None);
    }
}
