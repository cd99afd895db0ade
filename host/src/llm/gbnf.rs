//! JSON Schema → llama.cpp GBNF grammar, for `structured_output = "gbnf"`: the server
//! then samples only tokens the grammar allows, so the answer is well-formed JSON of the
//! schema's shape at generation time, with bounded numbers, enums as alternatives and
//! escaped strings (no raw control characters). The broker still validates every answer.
//!
//! The subset compiled (what the host's plugins use):
//!
//! - `object` with `properties`, `required` (emitted in the `required` order, then the
//!   optional properties each optional, in name order), `additionalProperties` (`false`,
//!   `true` or a schema: the grammar never emits extra properties, which every schema
//!   allows); an object with optional properties needs at least one required one.
//! - `string` with `enum`/`const`, `minLength`, `maxLength`.
//! - `integer` and `number` with `minimum`/`maximum`: integral bounds, `minimum >= 0`
//!   (both, only a `minimum` of `0`, or none). Decimals carry at most
//!   [`MAX_FRACTION_DIGITS`] fraction digits and no exponent.
//! - `boolean`, `null`, `array` with `items`, `minItems`, `maxItems`; `enum`/`const` of any
//!   JSON values; `type` as a list of these types.
//! - Annotations (`title`, `description`, `default`, `examples`, `$schema`, `$id`,
//!   `$comment`) are ignored.
//!
//! Anything else (`$ref`, `anyOf`, `pattern`, `format`, `exclusiveMinimum`, `multipleOf`,
//! a fractional or negative bound, …) is refused with the JSON pointer of what could not
//! be compiled: the caller then uses another dialect. The grammar only ever admits values
//! that are valid against the schema (a subset of them, never more).

use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Fraction digits a grammar admits after the decimal point.
pub const MAX_FRACTION_DIGITS: usize = 4;
/// Integer digits an unbounded number admits.
const MAX_INTEGER_DIGITS: usize = 15;
/// Longest bound (in digits) a range is compiled for.
const MAX_BOUND: f64 = 1e15;
/// Most items an array's `minItems` may ask for.
const MAX_MIN_ITEMS: u64 = 64;

/// Keywords that do not constrain a value.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
];

/// A grammar expression (what [`Grammar::rules`] are made of).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// Literal text.
    Lit(String),
    /// A character class: `negated`, inclusive ranges.
    Class(bool, Vec<(char, char)>),
    /// Another rule.
    Ref(String),
    Seq(Vec<Expr>),
    Alt(Vec<Expr>),
    Opt(Box<Expr>),
    Star(Box<Expr>),
}

/// A compiled grammar: rules in definition order, the first is `root`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Grammar {
    pub rules: Vec<(String, Expr)>,
}

/// Compiles `schema` into a GBNF grammar (its text), or says which part is outside the
/// supported subset.
pub(crate) fn compile(schema: &Value) -> Result<String, String> {
    Ok(compile_grammar(schema)?.to_string())
}

pub(crate) fn compile_grammar(schema: &Value) -> Result<Grammar, String> {
    let mut c = Compiler {
        rules: Vec::new(),
        names: BTreeSet::new(),
    };
    c.names.insert("root".into());
    c.rules.push(("root".into(), Expr::Seq(vec![])));
    let value = c.value(schema, "", "root-value")?;
    c.rules[0].1 = Expr::Seq(vec![ws(), value, ws()]);
    // Shared pieces, defined once at the end.
    c.rules.push((
        "ws".into(),
        Expr::Opt(Box::new(Expr::Alt(vec![
            Expr::Lit(" ".into()),
            Expr::Lit("\n".into()),
        ]))),
    ));
    c.rules.push(("char".into(), char_expr()));
    Ok(Grammar { rules: c.rules })
}

fn ws() -> Expr {
    Expr::Ref("ws".into())
}

fn lit(s: &str) -> Expr {
    Expr::Lit(s.into())
}

fn digit() -> Expr {
    Expr::Class(false, vec![('0', '9')])
}

/// One JSON string character: anything but `"`, `\` and control characters, or an escape.
fn char_expr() -> Expr {
    let hex = Expr::Class(false, vec![('0', '9'), ('a', 'f'), ('A', 'F')]);
    Expr::Alt(vec![
        Expr::Class(
            true,
            vec![
                ('"', '"'),
                ('\\', '\\'),
                ('\u{7f}', '\u{7f}'),
                ('\0', '\u{1f}'),
            ],
        ),
        Expr::Seq(vec![
            lit("\\"),
            Expr::Alt(vec![
                Expr::Class(
                    false,
                    vec![
                        ('"', '"'),
                        ('\\', '\\'),
                        ('/', '/'),
                        ('b', 'b'),
                        ('f', 'f'),
                        ('n', 'n'),
                        ('r', 'r'),
                        ('t', 't'),
                    ],
                ),
                Expr::Seq(vec![lit("u"), hex.clone(), hex.clone(), hex.clone(), hex]),
            ]),
        ]),
    ])
}

/// `item` between `min` and `max` times (`max` None: unbounded), without `{m,n}` (older
/// grammar parsers lack it): `item item (item (item)?)?` or `item item*`.
fn repeat(item: Expr, min: usize, max: Option<usize>) -> Expr {
    let mut seq: Vec<Expr> = std::iter::repeat_n(item.clone(), min).collect();
    match max {
        None => seq.push(Expr::Star(Box::new(item))),
        Some(max) if max > min => {
            let mut tail = Expr::Opt(Box::new(item.clone()));
            for _ in 1..(max - min) {
                tail = Expr::Opt(Box::new(Expr::Seq(vec![item.clone(), tail])));
            }
            seq.push(tail);
        }
        Some(_) => {}
    }
    Expr::Seq(seq)
}

struct Compiler {
    rules: Vec<(String, Expr)>,
    names: BTreeSet<String>,
}

impl Compiler {
    /// A fresh rule name from `hint` (GBNF names: letters, digits, `-`).
    fn name(&mut self, hint: &str) -> String {
        let mut base: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        base = base.trim_matches('-').to_string();
        if base.is_empty() {
            base = "value".into();
        }
        let mut name = base.clone();
        let mut n = 2;
        while self.names.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.names.insert(name.clone());
        name
    }

    /// Defines a rule named after `hint` and refers to it.
    fn rule(&mut self, hint: &str, body: Expr) -> Expr {
        let name = self.name(hint);
        self.rules.push((name.clone(), body));
        Expr::Ref(name)
    }

    fn value(&mut self, schema: &Value, at: &str, hint: &str) -> Result<Expr, String> {
        let here = if at.is_empty() { "/" } else { at };
        let obj = match schema {
            Value::Bool(true) => return Err(format!("{here}: any value (`true`) is not compiled")),
            Value::Bool(false) => return Err(format!("{here}: `false` admits no value")),
            Value::Object(o) => o,
            _ => return Err(format!("{here}: a schema must be an object")),
        };
        for key in obj.keys() {
            let known = ANNOTATIONS.contains(&key.as_str())
                || matches!(
                    key.as_str(),
                    "type"
                        | "enum"
                        | "const"
                        | "properties"
                        | "required"
                        | "additionalProperties"
                        | "minLength"
                        | "maxLength"
                        | "minimum"
                        | "maximum"
                        | "items"
                        | "minItems"
                        | "maxItems"
                );
            if !known {
                return Err(format!("{here}: keyword `{key}` is not compiled"));
            }
        }
        if let Some(c) = obj.get("const") {
            return self.literal_value(c, &obj_type(obj)?, here);
        }
        if let Some(e) = obj.get("enum") {
            let Value::Array(values) = e else {
                return Err(format!("{here}: `enum` must be an array"));
            };
            let types = obj_type(obj)?;
            let alts = values
                .iter()
                .map(|v| self.literal_value(v, &types, here))
                .collect::<Result<Vec<_>, _>>()?;
            if alts.is_empty() {
                return Err(format!("{here}: an empty `enum` admits no value"));
            }
            return Ok(self.rule(hint, Expr::Alt(alts)));
        }
        let types = obj_type(obj)?;
        if types.is_empty() {
            return Err(format!("{here}: a schema without `type` is not compiled"));
        }
        let mut alts = Vec::new();
        for t in &types {
            alts.push(match t.as_str() {
                "object" => self.object(obj, at, hint)?,
                "array" => self.array(obj, at, hint)?,
                "string" => string(obj, here)?,
                "integer" => number(obj, here, true)?,
                "number" => number(obj, here, false)?,
                "boolean" => Expr::Alt(vec![lit("true"), lit("false")]),
                "null" => lit("null"),
                other => return Err(format!("{here}: type `{other}` is not compiled")),
            });
        }
        let body = if alts.len() == 1 {
            alts.pop().expect("one")
        } else {
            Expr::Alt(alts)
        };
        Ok(match body {
            Expr::Ref(_) => body,
            body => self.rule(hint, body),
        })
    }

    /// An `enum`/`const` value as a literal; it must be of the schema's `type`, if any.
    fn literal_value(&mut self, v: &Value, types: &[String], here: &str) -> Result<Expr, String> {
        let t = match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types.is_empty()
            || types.iter().any(|x| x == t)
            || (t == "integer" && types.iter().any(|x| x == "number"));
        if !fits {
            return Err(format!(
                "{here}: enum value {v} is not of the schema's type"
            ));
        }
        Ok(lit(&v.to_string()))
    }

    fn object(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        at: &str,
        hint: &str,
    ) -> Result<Expr, String> {
        let empty = serde_json::Map::new();
        let props = match obj.get("properties") {
            None => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => return Err(format!("{at}/properties: must be an object")),
        };
        let required: Vec<&str> = match obj.get("required") {
            None => vec![],
            Some(Value::Array(r)) => r
                .iter()
                .map(|n| {
                    n.as_str()
                        .ok_or_else(|| format!("{at}/required: names must be strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("{at}/required: must be an array")),
        };
        let mut seen = BTreeSet::new();
        for r in &required {
            if !props.contains_key(*r) {
                return Err(format!(
                    "{at}/required: {r:?} has no schema under `properties`"
                ));
            }
            if !seen.insert(*r) {
                return Err(format!("{at}/required: {r:?} is listed twice"));
            }
        }
        let optional: Vec<&str> = props
            .keys()
            .map(String::as_str)
            .filter(|k| !seen.contains(k))
            .collect();
        if required.is_empty() && !optional.is_empty() {
            return Err(format!(
                "{}: an object whose properties are all optional is not compiled",
                if at.is_empty() { "/" } else { at }
            ));
        }
        let prefix = if hint == "root-value" {
            String::new()
        } else {
            format!("{hint}-")
        };
        let member = |c: &mut Compiler, name: &str| -> Result<Expr, String> {
            let v = c.value(
                &props[name],
                &format!("{at}/properties/{}", pointer_escape(name)),
                &format!("{prefix}{name}"),
            )?;
            Ok(Expr::Seq(vec![
                lit(&Value::String(name.into()).to_string()),
                ws(),
                lit(":"),
                ws(),
                v,
            ]))
        };
        let mut seq = vec![lit("{"), ws()];
        for (i, name) in required.iter().enumerate() {
            if i > 0 {
                seq.extend([lit(","), ws()]);
            }
            seq.push(member(self, name)?);
            seq.push(ws());
        }
        for name in optional {
            let m = member(self, name)?;
            seq.push(Expr::Opt(Box::new(Expr::Seq(vec![
                lit(","),
                ws(),
                m,
                ws(),
            ]))));
        }
        seq.push(lit("}"));
        Ok(self.rule(hint, Expr::Seq(seq)))
    }

    fn array(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        at: &str,
        hint: &str,
    ) -> Result<Expr, String> {
        let items = obj
            .get("items")
            .ok_or_else(|| format!("{at}: an array without `items` is not compiled"))?;
        let item = self.value(items, &format!("{at}/items"), &format!("{hint}-item"))?;
        let min = count(obj, "minItems", at)?.unwrap_or(0);
        let max = count(obj, "maxItems", at)?;
        if min > MAX_MIN_ITEMS || max.is_some_and(|m| m > MAX_MIN_ITEMS) {
            return Err(format!(
                "{at}: minItems/maxItems above {MAX_MIN_ITEMS} are not compiled"
            ));
        }
        if max.is_some_and(|m| m < min) {
            return Err(format!("{at}: maxItems is below minItems"));
        }
        let next = Expr::Seq(vec![lit(","), ws(), item.clone(), ws()]);
        let first = Expr::Seq(vec![item, ws()]);
        let body = match (min, max) {
            (_, Some(0)) => Expr::Seq(vec![]),
            (0, max) => Expr::Opt(Box::new(Expr::Seq(vec![
                first,
                repeat(next, 0, max.map(|m| m as usize - 1)),
            ]))),
            (min, max) => Expr::Seq(vec![
                first,
                repeat(next, min as usize - 1, max.map(|m| m as usize - 1)),
            ]),
        };
        Ok(self.rule(hint, Expr::Seq(vec![lit("["), ws(), body, lit("]")])))
    }
}

fn obj_type(obj: &serde_json::Map<String, Value>) -> Result<Vec<String>, String> {
    match obj.get("type") {
        None => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or("`type` entries must be strings".to_string())
            })
            .collect(),
        Some(_) => Err("`type` must be a string or an array".into()),
    }
}

fn count(obj: &serde_json::Map<String, Value>, key: &str, at: &str) -> Result<Option<u64>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| format!("{at}/{key}: must be a non-negative integer")),
    }
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn string(obj: &serde_json::Map<String, Value>, here: &str) -> Result<Expr, String> {
    let min = count(obj, "minLength", here)?.unwrap_or(0) as usize;
    let max = count(obj, "maxLength", here)?.map(|m| m as usize);
    if min > 256 || max.is_some_and(|m| m > 4096) {
        return Err(format!(
            "{here}: minLength/maxLength this large are not compiled"
        ));
    }
    if max.is_some_and(|m| m < min) {
        return Err(format!("{here}: maxLength is below minLength"));
    }
    Ok(Expr::Seq(vec![
        lit("\""),
        repeat(Expr::Ref("char".into()), min, max),
        lit("\""),
    ]))
}

/// A bound as a non-negative integer, if it is one.
fn bound(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    here: &str,
) -> Result<Option<u64>, String> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    let f = v
        .as_f64()
        .ok_or_else(|| format!("{here}: `{key}` must be a number"))?;
    if f < 0.0 || f.fract() != 0.0 || f > MAX_BOUND {
        return Err(format!(
            "{here}: `{key}` = {v} is not compiled (integral bounds from 0 up only)"
        ));
    }
    Ok(Some(f as u64))
}

fn number(obj: &serde_json::Map<String, Value>, here: &str, integer: bool) -> Result<Expr, String> {
    let lo = bound(obj, "minimum", here)?;
    let hi = bound(obj, "maximum", here)?;
    let fraction = || {
        Expr::Opt(Box::new(Expr::Seq(vec![
            lit("."),
            repeat(digit(), 1, Some(MAX_FRACTION_DIGITS)),
        ])))
    };
    let unbounded_int = || {
        Expr::Alt(vec![
            lit("0"),
            Expr::Seq(vec![
                Expr::Class(false, vec![('1', '9')]),
                repeat(digit(), 0, Some(MAX_INTEGER_DIGITS - 1)),
            ]),
        ])
    };
    let (lo, hi) = match (lo, hi) {
        (None, None) => {
            let sign = Expr::Opt(Box::new(lit("-")));
            let mut seq = vec![sign, unbounded_int()];
            if !integer {
                seq.push(fraction());
            }
            return Ok(Expr::Seq(seq));
        }
        (Some(0), None) => {
            return Ok(if integer {
                unbounded_int()
            } else {
                Expr::Seq(vec![unbounded_int(), fraction()])
            })
        }
        (Some(_), None) => {
            return Err(format!(
                "{here}: a `minimum` above 0 without a `maximum` is not compiled"
            ))
        }
        (None, Some(_)) => {
            return Err(format!(
                "{here}: a `maximum` without `minimum` is not compiled (negative values)"
            ))
        }
        (Some(lo), Some(hi)) if lo > hi => {
            return Err(format!("{here}: `minimum` is above `maximum`"))
        }
        (Some(lo), Some(hi)) => (lo, hi),
    };
    if integer {
        return Ok(int_range(lo, hi));
    }
    // Decimals: lo..=hi-1 with any fraction, or hi with a zero fraction.
    let top = Expr::Seq(vec![
        lit(&hi.to_string()),
        Expr::Opt(Box::new(Expr::Seq(vec![
            lit("."),
            repeat(lit("0"), 1, Some(MAX_FRACTION_DIGITS)),
        ]))),
    ]);
    if lo == hi {
        return Ok(top);
    }
    Ok(Expr::Alt(vec![
        Expr::Seq(vec![int_range(lo, hi - 1), fraction()]),
        top,
    ]))
}

/// The decimal representations (no leading zeros) of the integers in `lo..=hi`.
pub(crate) fn int_range(lo: u64, hi: u64) -> Expr {
    let mut alts = Vec::new();
    let (lo_len, hi_len) = (lo.to_string().len(), hi.to_string().len());
    for len in lo_len..=hi_len {
        let floor = if len == 1 {
            0
        } else {
            10u64.pow(len as u32 - 1)
        };
        let ceil = 10u64.pow(len as u32) - 1;
        let (a, b) = (lo.max(floor), hi.min(ceil));
        if a <= b {
            same_length(&a.to_string(), &b.to_string(), &mut alts, Vec::new());
        }
    }
    if alts.len() == 1 {
        alts.pop().expect("one")
    } else {
        Expr::Alt(alts)
    }
}

/// Pushes onto `out` sequences (each after `prefix`) matching the digit strings of equal
/// length between `a` and `b` inclusive.
fn same_length(a: &str, b: &str, out: &mut Vec<Expr>, prefix: Vec<Expr>) {
    let done = |mut prefix: Vec<Expr>, tail: Vec<Expr>, out: &mut Vec<Expr>| {
        prefix.extend(tail);
        out.push(if prefix.len() == 1 {
            prefix.pop().expect("one")
        } else {
            Expr::Seq(prefix)
        });
    };
    if a.is_empty() {
        done(prefix, vec![], out);
        return;
    }
    let (a0, b0) = (a.as_bytes()[0] as char, b.as_bytes()[0] as char);
    let (ar, br) = (&a[1..], &b[1..]);
    let class = |x: char, y: char| {
        if x == y {
            lit(&x.to_string())
        } else {
            Expr::Class(false, vec![(x, y)])
        }
    };
    let any = |n: usize| -> Vec<Expr> { std::iter::repeat_n(digit(), n).collect() };
    if a0 == b0 {
        let mut p = prefix;
        p.push(lit(&a0.to_string()));
        same_length(ar, br, out, p);
        return;
    }
    let a_low = ar.bytes().all(|c| c == b'0');
    let b_high = br.bytes().all(|c| c == b'9');
    // First digit a0 (unless its whole tail range is covered by the middle).
    let mid_lo = if a_low { a0 } else { (a0 as u8 + 1) as char };
    let mid_hi = if b_high { b0 } else { (b0 as u8 - 1) as char };
    if !a_low {
        let mut p = prefix.clone();
        p.push(lit(&a0.to_string()));
        same_length(ar, &"9".repeat(ar.len()), out, p);
    }
    if mid_lo <= mid_hi {
        let mut tail = vec![class(mid_lo, mid_hi)];
        tail.extend(any(ar.len()));
        done(prefix.clone(), tail, out);
    }
    if !b_high {
        let mut p = prefix;
        p.push(lit(&b0.to_string()));
        same_length(&"0".repeat(br.len()), br, out, p);
    }
}

// --- text -------------------------------------------------------------------------------

impl std::fmt::Display for Grammar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, body) in &self.rules {
            let mut s = String::new();
            render(body, &mut s, false);
            writeln!(f, "{name} ::= {}", if s.is_empty() { "\"\"" } else { &s })?;
        }
        Ok(())
    }
}

fn render(e: &Expr, out: &mut String, nested: bool) {
    match e {
        Expr::Lit(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        let _ = write!(out, "\\x{:02X}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Expr::Class(neg, ranges) => {
            out.push('[');
            if *neg {
                out.push('^');
            }
            for (a, b) in ranges {
                class_char(*a, out);
                if a != b {
                    out.push('-');
                    class_char(*b, out);
                }
            }
            out.push(']');
        }
        Expr::Ref(n) => out.push_str(n),
        Expr::Seq(items) => {
            let paren = nested && items.len() > 1;
            if paren {
                out.push('(');
            }
            if items.is_empty() {
                out.push_str("\"\"");
            }
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                render(it, out, true);
            }
            if paren {
                out.push(')');
            }
        }
        Expr::Alt(alts) => {
            if nested {
                out.push('(');
            }
            for (i, a) in alts.iter().enumerate() {
                if i > 0 {
                    out.push_str(" | ");
                }
                render(a, out, false);
            }
            if nested {
                out.push(')');
            }
        }
        Expr::Opt(inner) | Expr::Star(inner) => {
            let simple = matches!(**inner, Expr::Lit(_) | Expr::Class(..) | Expr::Ref(_));
            if !simple {
                out.push('(');
            }
            render(inner, out, false);
            if !simple {
                out.push(')');
            }
            out.push(if matches!(e, Expr::Opt(_)) { '?' } else { '*' });
        }
    }
}

fn class_char(c: char, out: &mut String) {
    match c {
        // llama.cpp knows only these escapes in a class; `^` and `-` go as hex.
        '\\' | ']' | '[' | '"' => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f || c == '^' || c == '-' => {
            let _ = write!(out, "\\x{:02X}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Reference matcher over the grammar's expressions: every end position of `e` from `at`.
    fn ends(g: &Grammar, e: &Expr, s: &[char], at: usize, depth: usize) -> BTreeSet<usize> {
        assert!(depth < 200, "grammar recursion too deep");
        let mut out = BTreeSet::new();
        match e {
            Expr::Lit(l) => {
                let l: Vec<char> = l.chars().collect();
                if s[at..].starts_with(&l) {
                    out.insert(at + l.len());
                }
            }
            Expr::Class(neg, ranges) => {
                if let Some(&c) = s.get(at) {
                    if ranges.iter().any(|(a, b)| (*a..=*b).contains(&c)) != *neg {
                        out.insert(at + 1);
                    }
                }
            }
            Expr::Ref(n) => {
                let body = &g
                    .rules
                    .iter()
                    .find(|(m, _)| m == n)
                    .unwrap_or_else(|| panic!("undefined rule {n}"))
                    .1;
                out = ends(g, body, s, at, depth + 1);
            }
            Expr::Seq(items) => {
                let mut cur = BTreeSet::from([at]);
                for it in items {
                    cur = cur
                        .iter()
                        .flat_map(|&p| ends(g, it, s, p, depth + 1))
                        .collect();
                }
                out = cur;
            }
            Expr::Alt(alts) => {
                for a in alts {
                    out.extend(ends(g, a, s, at, depth + 1));
                }
            }
            Expr::Opt(inner) => {
                out.insert(at);
                out.extend(ends(g, inner, s, at, depth + 1));
            }
            Expr::Star(inner) => {
                let mut frontier = BTreeSet::from([at]);
                while !frontier.is_empty() {
                    out.extend(frontier.iter().copied());
                    frontier = frontier
                        .iter()
                        .flat_map(|&p| ends(g, inner, s, p, depth + 1))
                        .filter(|p| !out.contains(p))
                        .collect();
                }
            }
        }
        out
    }

    fn accepts(g: &Grammar, text: &str) -> bool {
        let s: Vec<char> = text.chars().collect();
        ends(g, &Expr::Ref("root".into()), &s, 0, 0).contains(&s.len())
    }

    fn range_accepts(lo: u64, hi: u64) -> Vec<u64> {
        let g = Grammar {
            rules: vec![("root".into(), int_range(lo, hi))],
        };
        (0..=hi + 150)
            .filter(|n| accepts(&g, &n.to_string()))
            .collect()
    }

    #[test]
    fn integer_ranges_are_exact() {
        for (lo, hi) in [
            (0, 100),
            (0, 1),
            (1, 5),
            (7, 7),
            (0, 9),
            (10, 99),
            (3, 250),
            (95, 1003),
            (0, 1000),
            (19, 21),
        ] {
            assert_eq!(
                range_accepts(lo, hi),
                (lo..=hi).collect::<Vec<_>>(),
                "{lo}..={hi}"
            );
        }
        let g = Grammar {
            rules: vec![("root".into(), int_range(0, 100))],
        };
        for bad in ["007", "01", "-1", "1000", "996315", ""] {
            assert!(!accepts(&g, bad), "{bad}");
        }
    }

    #[test]
    fn bounded_decimals() {
        let g = compile_grammar(&json!({"type": "number", "minimum": 0, "maximum": 100})).unwrap();
        for ok in ["0", "100", "100.0", "99.9999", "2.7", "55", "0.5"] {
            assert!(accepts(&g, ok), "{ok}");
        }
        for bad in [
            "100.5", "101", "996315", "-1000", "-1", "1e3", "05", "1.", "1.23456", "",
        ] {
            assert!(!accepts(&g, bad), "{bad}");
        }
        let g = compile_grammar(&json!({"type": "number", "minimum": 0, "maximum": 1})).unwrap();
        for ok in ["0", "1", "0.75", "1.0", "0.0001"] {
            assert!(accepts(&g, ok), "{ok}");
        }
        for bad in ["1.1", "2", "-0.5", "10"] {
            assert!(!accepts(&g, bad), "{bad}");
        }
        let g = compile_grammar(&json!({"type": "number"})).unwrap();
        assert!(accepts(&g, "-12.5") && accepts(&g, "0") && !accepts(&g, "1e5"));
        let g = compile_grammar(&json!({"type": "integer", "minimum": 0})).unwrap();
        assert!(accepts(&g, "123456") && !accepts(&g, "-1") && !accepts(&g, "1.5"));
    }

    #[test]
    fn strings_are_escaped_without_control_characters() {
        let g = compile_grammar(&json!({"type": "string", "minLength": 1})).unwrap();
        assert!(accepts(&g, r#""Call the CFO""#));
        assert!(accepts(&g, r#""line\nbreak \"quoted\" \u00e9""#));
        assert!(accepts(&g, "\"Grüße\""));
        assert!(!accepts(&g, "\"\""), "minLength 1");
        assert!(!accepts(&g, "\"raw\nnewline\""));
        assert!(!accepts(&g, "\"tab\there\""));
        assert!(!accepts(&g, "\"bad \\x escape\""));
        assert!(!accepts(&g, "\"unterminated"));
        let g = compile_grammar(&json!({"type": "string", "maxLength": 3})).unwrap();
        assert!(accepts(&g, "\"abc\"") && !accepts(&g, "\"abcd\""));
    }

    fn qualification_schema() -> Value {
        // plugins/qualify-agent/src/schema.rs (the host does not depend on the plugin).
        let factor = json!({ "type": "number", "minimum": 0, "maximum": 100 });
        json!({
            "type": "object",
            "properties": {
                "score": { "type": "number", "minimum": 0, "maximum": 100 },
                "priority": { "type": "string", "enum": ["immediate", "high", "medium", "low"] },
                "recommended_action": { "type": "string", "minLength": 1 },
                "reasoning": { "type": "string", "minLength": 1 },
                "confidence": { "type": "number", "minimum": 0, "maximum": 1 },
                "factors": {
                    "type": "object",
                    "properties": {
                        "budget": factor, "authority": factor, "fit": factor,
                        "timeline": factor, "complexity": factor
                    },
                    "required": ["budget", "authority", "fit", "timeline", "complexity"],
                    "additionalProperties": false
                }
            },
            "required": ["score", "priority", "recommended_action", "reasoning", "confidence", "factors"],
            "additionalProperties": false
        })
    }

    fn answer(score: &str, priority: &str, budget: &str) -> String {
        format!(
            r#"{{"score": {score}, "priority": "{priority}", "recommended_action": "Call the CFO", "reasoning": "Budget approved", "confidence": 0.8, "factors": {{"budget": {budget}, "authority": 80, "fit": 70, "timeline": 60, "complexity": 50}}}}"#
        )
    }

    #[test]
    fn the_qualify_agents_schema_compiles_to_a_grammar_that_holds_its_answers() {
        let schema = qualification_schema();
        let g = compile_grammar(&schema).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        // Every rule referenced is defined, and defined once; root comes first.
        assert_eq!(g.rules[0].0, "root");
        let names: Vec<&str> = g.rules.iter().map(|(n, _)| n.as_str()).collect();
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for n in &names {
            assert!(
                n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "{n}"
            );
        }
        let ok = [
            answer("82.5", "high", "90"),
            answer("0", "low", "0"),
            answer("100", "immediate", "100.0"),
            r#"{"score":40,"priority":"medium","recommended_action":"Send a case study","reasoning":"Mid-size fit, no budget yet","confidence":1,"factors":{"budget":20,"authority":50,"fit":75.25,"timeline":40,"complexity":30}}"#.to_string(),
        ];
        for a in &ok {
            assert!(accepts(&g, a), "{a}");
            let v: Value = serde_json::from_str(a).unwrap();
            assert!(validator.is_valid(&v), "{a}");
        }
        // What SmolLM2 produced under a grammar that ignored the bounds, and other breaks.
        let bad = [
            answer("996315", "high", "90"),
            answer("82", "high", "-1000"),
            answer("82", "urgent", "90"),
            answer("101", "high", "90"),
            answer("82", "high", "90").replace("Call the CFO", "Call\nnow"),
            answer("82", "high", "90").replace("\"confidence\": 0.8", "\"confidence\": 1.5"),
            answer("82", "high", "90").replace("\"reasoning\": \"Budget approved\", ", ""),
            answer("82", "high", "90").replace("}}", ", \"extra\": 1}}"),
            answer("82", "high", "90").replace("\"Call the CFO\"", "\"\""),
        ];
        for a in &bad {
            assert!(!accepts(&g, a), "accepted: {a}");
        }
        // Properties in the `required` order.
        let reordered = r#"{"priority": "high", "score": 82, "recommended_action": "x", "reasoning": "y", "confidence": 0.5, "factors": {"budget": 1, "authority": 1, "fit": 1, "timeline": 1, "complexity": 1}}"#;
        assert!(!accepts(&g, reordered));

        let text = g.to_string();
        assert!(text.starts_with("root ::= ws root-value ws\n"), "{text}");
        assert!(
            text.contains(
                r#"priority ::= "\"immediate\"" | "\"high\"" | "\"medium\"" | "\"low\"""#
            ),
            "{text}"
        );
        assert!(text.contains(r#"char ::= [^\"\\\x7F\x00-\x1F] | "\\" ([\"\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])"#), "{text}");
        assert!(text.contains(r#"
score ::= ([0-9] | [1-9] [0-9]) ("." ([0-9] ([0-9] ([0-9] [0-9]?)?)?))? | "100" ("." ("0" ("0" ("0" "0"?)?)?))?
"#), "{text}");
        assert!(
            text.contains("\nconfidence ::= \"0\" (\".\" ([0-9]"),
            "{text}"
        );
        for (name, _) in &g.rules {
            assert!(text.contains(&format!("\n{name} ::= ")) || name == "root");
        }
    }

    #[test]
    fn arrays_booleans_and_type_lists() {
        let g = compile_grammar(&json!({
            "type": "object",
            "properties": {
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 1, "maxItems": 3},
                "ok": {"type": "boolean"},
                "note": {"type": ["string", "null"]},
                "n": {"type": "integer", "minimum": 1, "maximum": 5}
            },
            "required": ["tags", "ok"]
        }))
        .unwrap();
        assert!(accepts(&g, r#"{"tags": ["a"], "ok": true}"#));
        assert!(accepts(
            &g,
            r#"{"tags": ["a", "b", "a"], "ok": false, "n": 3, "note": null}"#
        ));
        assert!(accepts(&g, r#"{"tags":["b"],"ok":true,"note":"x"}"#));
        assert!(!accepts(&g, r#"{"tags": [], "ok": true}"#));
        assert!(!accepts(&g, r#"{"tags": ["a","a","a","a"], "ok": true}"#));
        assert!(!accepts(&g, r#"{"tags": ["c"], "ok": true}"#));
        assert!(!accepts(&g, r#"{"tags": ["a"], "ok": true, "n": 6}"#));
    }

    #[test]
    fn what_is_outside_the_subset_is_refused_with_its_location() {
        for (schema, needle) in [
            (json!({"type": "string", "pattern": "^a"}), "pattern"),
            (
                json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}, "required": ["a"]}),
                "/properties/a",
            ),
            (
                json!({"type": "number", "minimum": -5, "maximum": 5}),
                "minimum",
            ),
            (
                json!({"type": "number", "minimum": 0, "maximum": 0.5}),
                "maximum",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string"}}}),
                "optional",
            ),
            (json!({"anyOf": [{"type": "string"}]}), "anyOf"),
            (json!({"type": "string", "format": "date-time"}), "format"),
            (json!({"type": "array"}), "items"),
            (json!(true), "any value"),
        ] {
            let err = compile(&schema).unwrap_err();
            assert!(err.contains(needle), "{schema}: {err}");
        }
    }
}
