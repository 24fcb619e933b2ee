//! Evaluation of a parsed statement on one message, with AWS IoT SQL's
//! `Undefined` semantics (see the module docs of [`crate::rules`]).

use std::cmp::Ordering;

use serde_json::{Map, Value};
use twinrig_hal::mqtt::topic_matches;

use super::ast::{CmpOp, Expr, FieldPath, Operand, Query, SelectItem};

/// What an expression sees of the message.
struct Message<'a> {
    topic: &'a str,
    /// The payload when it is a JSON object; `None` otherwise (every field
    /// reference is then `Undefined`).
    object: Option<&'a Map<String, Value>>,
    now_ms: u64,
    /// The publisher's MQTT client id (None: not published over MQTT).
    client_id: Option<&'a str>,
}

impl Query {
    /// Runs the statement on one message. `None` when the topic does not match
    /// the FROM filter or the WHERE condition is not `true`; otherwise the
    /// output object, with `Undefined` items left out. `client_id` is the
    /// publisher's MQTT client id (None: the message did not come over MQTT).
    pub fn evaluate(
        &self,
        topic: &str,
        payload: &[u8],
        now_ms: u64,
        client_id: Option<&str>,
    ) -> Option<Value> {
        if !topic_matches(&self.from, topic) {
            return None;
        }
        let parsed: Option<Value> = serde_json::from_slice(payload).ok();
        let msg = Message {
            topic,
            object: parsed.as_ref().and_then(Value::as_object),
            now_ms,
            client_id,
        };
        if let Some(cond) = &self.condition
            && truth(eval_expr(cond, &msg).as_ref()) != Some(true)
        {
            return None;
        }
        let mut out = Map::new();
        for item in &self.select {
            match item {
                SelectItem::Star => {
                    if let Some(obj) = msg.object {
                        out.extend(obj.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                SelectItem::Item { operand, .. } => {
                    if let (Some(name), Some(value)) =
                        (item.output_name(), eval_operand(operand, &msg))
                    {
                        out.insert(name.to_string(), value);
                    }
                }
            }
        }
        Some(Value::Object(out))
    }
}

/// `None` is SQL `Undefined`.
fn eval_operand(op: &Operand, msg: &Message<'_>) -> Option<Value> {
    match op {
        Operand::Field(path) => lookup(msg.object?, path).cloned(),
        Operand::Topic(None) => Some(Value::String(msg.topic.to_string())),
        Operand::Topic(Some(n)) => {
            let index = usize::try_from(*n).ok()?.checked_sub(1)?;
            msg.topic
                .split('/')
                .nth(index)
                .map(|level| Value::String(level.to_string()))
        }
        Operand::Timestamp => Some(Value::from(msg.now_ms)),
        Operand::ClientId => Some(Value::String(msg.client_id.unwrap_or("n/a").to_string())),
        Operand::Literal(l) => Some(l.to_value()),
    }
}

fn lookup<'a>(object: &'a Map<String, Value>, path: &FieldPath) -> Option<&'a Value> {
    let (first, rest) = path.0.split_first()?;
    let mut current = object.get(first)?;
    for seg in rest {
        current = current.as_object()?.get(seg)?;
    }
    Some(current)
}

fn eval_expr(e: &Expr, msg: &Message<'_>) -> Option<Value> {
    match e {
        Expr::Operand(op) => eval_operand(op, msg),
        Expr::Compare { op, left, right } => {
            let l = eval_expr(left, msg)?;
            let r = eval_expr(right, msg)?;
            compare(*op, &l, &r).map(Value::Bool)
        }
        Expr::Not(inner) => truth(eval_expr(inner, msg).as_ref()).map(|b| Value::Bool(!b)),
        // Every term is evaluated and every one must be Boolean: AWS gives
        // Undefined for `false AND <not a Boolean>`, no short circuit.
        Expr::And(terms) => all_boolean(terms, msg).map(|bs| Value::Bool(bs.iter().all(|b| *b))),
        Expr::Or(terms) => all_boolean(terms, msg).map(|bs| Value::Bool(bs.iter().any(|b| *b))),
    }
}

/// The terms of a chain as Booleans; `None` (Undefined) if any is not one.
fn all_boolean(terms: &[Expr], msg: &Message<'_>) -> Option<Vec<bool>> {
    let values: Vec<Option<bool>> = terms
        .iter()
        .map(|t| truth(eval_expr(t, msg).as_ref()))
        .collect();
    values.into_iter().collect()
}

/// AWS's conversion to Boolean: a Boolean, or the string "true"/"false"
/// (any case); anything else is Undefined.
fn truth(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A number for comparison: exact for integers, `f64` otherwise.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn of_json(n: &serde_json::Number) -> Option<Num> {
        if let Some(i) = n.as_i64() {
            Some(Num::Int(i128::from(i)))
        } else if let Some(u) = n.as_u64() {
            Some(Num::Int(i128::from(u)))
        } else {
            n.as_f64().map(Num::Float)
        }
    }

    /// AWS converts strings matching `^-?\d+(\.\d+)?([eE]-?\d+)?$` to Decimal.
    fn of_str(s: &str) -> Option<Num> {
        let b = s.as_bytes();
        let mut i = 0;
        let digits = |i: &mut usize| {
            let start = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i > start
        };
        if b.first() == Some(&b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
        let mut integral = true;
        if b.get(i) == Some(&b'.') {
            i += 1;
            integral = false;
            if !digits(&mut i) {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            integral = false;
            if b.get(i) == Some(&b'-') {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
        }
        if i != b.len() {
            return None;
        }
        if integral && let Ok(v) = s.parse::<i128>() {
            return Some(Num::Int(v));
        }
        s.parse::<f64>().ok().map(Num::Float)
    }

    fn of_value(v: &Value) -> Option<Num> {
        match v {
            Value::Number(n) => Num::of_json(n),
            Value::String(s) => Num::of_str(s),
            _ => None,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            // Beyond 2^53 this rounds; only for mixed int/float comparisons.
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }
}

/// AWS `=`: same-type equality (numbers numerically, objects ignoring key
/// order); mismatched types are not equal.
fn sql_eq(l: &Value, r: &Value) -> bool {
    match (l, r) {
        (Value::Number(a), Value::Number(b)) => match (Num::of_json(a), Num::of_json(b)) {
            (Some(a), Some(b)) => a.cmp(b) == Some(Ordering::Equal),
            _ => false,
        },
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Null, Value::Null) => true,
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| sql_eq(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| sql_eq(v, w)))
        }
        _ => false,
    }
}

fn same_type(l: &Value, r: &Value) -> bool {
    std::mem::discriminant(l) == std::mem::discriminant(r)
}

/// `None` is Undefined.
fn compare(op: CmpOp, l: &Value, r: &Value) -> Option<bool> {
    match op {
        CmpOp::Eq => Some(sql_eq(l, r)),
        // AWS: Null <> Null is false, mismatched types are unequal.
        CmpOp::Ne => Some(!same_type(l, r) || !sql_eq(l, r)),
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
            let ord = Num::of_value(l)?.cmp(Num::of_value(r)?)?;
            Some(match op {
                CmpOp::Lt => ord == Ordering::Less,
                CmpOp::Le => ord != Ordering::Greater,
                CmpOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_strings_convert_like_aws() {
        assert!(matches!(Num::of_str("0"), Some(Num::Int(0))));
        assert!(matches!(Num::of_str("-1.2"), Some(Num::Float(_))));
        assert!(matches!(Num::of_str("5E-12"), Some(Num::Float(_))));
        for bad in ["", "-", "1.", ".5", "1e", "1e+5", "abc", "1 ", "+1"] {
            assert!(Num::of_str(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn comparison_table() {
        use serde_json::json;
        assert_eq!(compare(CmpOp::Eq, &json!(1), &json!(1.0)), Some(true));
        assert_eq!(compare(CmpOp::Eq, &json!(1), &json!("1")), Some(false));
        assert_eq!(compare(CmpOp::Ne, &json!(1), &json!("1")), Some(true));
        assert_eq!(compare(CmpOp::Eq, &json!(null), &json!(null)), Some(true));
        assert_eq!(compare(CmpOp::Ne, &json!(null), &json!(null)), Some(false));
        assert_eq!(
            compare(
                CmpOp::Eq,
                &json!({"a": 1, "b": [1, 2]}),
                &json!({"b": [1, 2], "a": 1.0})
            ),
            Some(true)
        );
        assert_eq!(compare(CmpOp::Gt, &json!("10"), &json!(9)), Some(true));
        assert_eq!(compare(CmpOp::Lt, &json!("abc"), &json!("abd")), None);
        assert_eq!(compare(CmpOp::Ge, &json!(true), &json!(1)), None);
        assert_eq!(
            compare(CmpOp::Gt, &json!(u64::MAX), &json!(i64::MAX)),
            Some(true)
        );
    }
}
