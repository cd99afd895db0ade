//! From columns to scorecard features: which columns a file offers, whether each is
//! numeric or categorical, numeric bins at quantiles of the training leads, categorical
//! levels with rare ones pooled into "other", missing as a slot of its own. The bins
//! come from the training leads only, never from the holdout.

use scorecard::model::{read, strata_factor, Feature, Kind};
use std::collections::{BTreeMap, BTreeSet};
use strata_sdk::Lead;

/// Typed lead fields a scorecard may use (id, name, email and notes never: they identify
/// a lead or are free text).
pub const TYPED_COLUMNS: [&str; 9] = [
    "budget",
    "annual_revenue",
    "employees",
    "timeline",
    "title",
    "industry",
    "source",
    "status",
    "company",
];

/// At most this many numeric bins.
pub const MAX_BINS: usize = 10;
/// At most this many categorical levels (the rest are "other").
pub const MAX_LEVELS: usize = 40;

/// A column's values over all leads (as [`read`] gives them to the component).
pub struct Column {
    pub name: String,
    pub values: Vec<Option<String>>,
}

/// Every typed field some lead has and every attribute name, in that order.
pub fn columns(leads: &[Lead]) -> Vec<Column> {
    let mut names: Vec<String> = Vec::new();
    for c in TYPED_COLUMNS {
        if c == "status" || leads.iter().any(|l| read(l, c).is_some()) {
            names.push(c.to_string());
        }
    }
    let attrs: BTreeSet<&str> = leads
        .iter()
        .flat_map(|l| l.attributes.iter().map(|a| a.name.as_str()))
        .collect();
    names.extend(
        attrs
            .into_iter()
            .filter(|a| !TYPED_COLUMNS.contains(a))
            .map(str::to_string),
    );
    names
        .into_iter()
        .map(|name| Column {
            values: leads.iter().map(|l| read(l, &name)).collect(),
            name,
        })
        .collect()
}

/// What a column looks like on the training leads.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    AllMissing,
    Constant(String),
    /// Every present value distinct (an id, a lead number, free text).
    Identifier,
    Numeric(Vec<f64>),
    Categorical(Vec<(String, usize)>),
}

/// The shape of `col` over the rows `train`.
pub fn shape(col: &Column, train: &[usize]) -> Shape {
    let present: Vec<&str> = train
        .iter()
        .filter_map(|&i| col.values[i].as_deref())
        .collect();
    if present.is_empty() {
        return Shape::AllMissing;
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &present {
        *counts.entry(v).or_default() += 1;
    }
    if counts.len() == 1 && present.len() == train.len() {
        return Shape::Constant(present[0].to_string());
    }
    if counts.len() == present.len() && present.len() > 50 {
        return Shape::Identifier;
    }
    let numbers: Vec<f64> = present
        .iter()
        .filter_map(|v| v.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect();
    // Numeric when (nearly) every present value is a number; a few typos are missing.
    if numbers.len() * 100 >= present.len() * 98 && counts.len() > 2 {
        return Shape::Numeric(numbers);
    }
    let mut levels: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    levels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Shape::Categorical(levels)
}

/// Bin edges at the deciles of `values` (each distinct value its own bin when there
/// are few), deduplicated; bins are `(-inf, e0], (e0, e1], …, (e_last, inf)`.
pub fn edges(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let distinct: Vec<f64> = {
        let mut d = v.clone();
        d.dedup();
        d
    };
    let mut e: Vec<f64> = if distinct.len() <= MAX_BINS {
        distinct[..distinct.len() - 1].to_vec()
    } else {
        (1..MAX_BINS)
            .map(|k| v[(v.len() - 1) * k / MAX_BINS])
            .collect()
    };
    e.dedup();
    // The last edge at the maximum would leave its upper bin empty.
    if e.last() == v.last() {
        e.pop();
    }
    e
}

/// Levels worth a weight of their own: seen at least `min_count` times, most frequent
/// first, at most [`MAX_LEVELS`].
pub fn levels(counts: &[(String, usize)], min_count: usize) -> Vec<String> {
    counts
        .iter()
        .filter(|(_, n)| *n >= min_count)
        .take(MAX_LEVELS)
        .map(|(l, _)| l.clone())
        .collect()
}

/// A feature (weights zero) for a numeric or categorical shape; `None` otherwise.
pub fn feature(name: &str, shape: &Shape, train_len: usize) -> Option<Feature> {
    let kind = match shape {
        Shape::Numeric(values) => Kind::Numeric {
            edges: edges(values),
        },
        Shape::Categorical(counts) => Kind::Categorical {
            levels: levels(counts, (train_len / 200).max(10)),
        },
        _ => return None,
    };
    let mut f = Feature {
        column: name.to_string(),
        factor: strata_factor(name).map(str::to_string),
        kind,
        weights: Vec::new(),
    };
    f.weights = vec![0.0; f.slots()];
    Some(f)
}

/// Each lead's slot in each feature: `slots[row][feature]`.
pub fn encode(features: &[(Feature, &Column)], rows: usize) -> Vec<Vec<usize>> {
    (0..rows)
        .map(|i| {
            features
                .iter()
                .map(|(f, c)| f.slot_of(c.values[i].as_deref()))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(values: &[Option<&str>]) -> Column {
        Column {
            name: "c".into(),
            values: values.iter().map(|v| v.map(str::to_string)).collect(),
        }
    }

    #[test]
    fn shapes_tell_constant_missing_numeric_and_categorical_apart() {
        let all: Vec<usize> = (0..4).collect();
        assert_eq!(shape(&col(&[None; 4]), &all), Shape::AllMissing);
        assert!(matches!(
            shape(&col(&[Some("x"); 4]), &all),
            Shape::Constant(_)
        ));
        let num = col(&[Some("1"), Some("2.5"), Some("7"), None]);
        assert!(matches!(shape(&num, &all), Shape::Numeric(v) if v.len() == 3));
        let cat = col(&[Some("a"), Some("b"), Some("a"), None]);
        assert!(matches!(shape(&cat, &all), Shape::Categorical(l) if l[0] == ("a".into(), 2)));
        // A value present on some leads and missing on others is not constant.
        let half = col(&[Some("x"), None, Some("x"), None]);
        assert!(matches!(shape(&half, &all), Shape::Categorical(_)));
    }

    #[test]
    fn unique_values_are_an_identifier() {
        let ids: Vec<String> = (0..100).map(|i| format!("{i}")).collect();
        let c = Column {
            name: "n".into(),
            values: ids.into_iter().map(Some).collect(),
        };
        assert_eq!(shape(&c, &(0..100).collect::<Vec<_>>()), Shape::Identifier);
    }

    #[test]
    fn edges_are_deciles_or_each_distinct_value() {
        assert_eq!(edges(&[0.0, 0.0, 1.0, 2.0, 2.0]), vec![0.0, 1.0]);
        let many: Vec<f64> = (0..1000).map(f64::from).collect();
        let e = edges(&many);
        assert_eq!(e.len(), MAX_BINS - 1);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn rare_levels_are_left_to_other() {
        let counts = vec![("a".to_string(), 50), ("b".to_string(), 9)];
        assert_eq!(levels(&counts, 10), vec!["a".to_string()]);
    }
}
