//! Checks on values: payload field paths, comparisons with tolerances.

use serde_json::Value;

use crate::scenario::{Comparison, DurationComparison, FieldCheck, PayloadFilter};
use twinrig_sim::{Nanos, format_nanos};

/// Why a value fails a check; its text is the assertion's detail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Mismatch {
    /// Not the value expected.
    #[error("expected {expected}, got {actual}")]
    NotEqual {
        /// The expected value.
        expected: Value,
        /// The value found.
        actual: Value,
    },
    /// A numeric condition on a value that is not a number.
    #[error("expected a number, got {0}")]
    NotANumber(Value),
    /// Further from the target than the tolerance.
    #[error("expected {target} ± {tolerance}, got {actual}")]
    OutsideTolerance {
        /// The target.
        target: f64,
        /// The tolerance.
        tolerance: f64,
        /// The value found.
        actual: f64,
    },
    /// Under the lower bound (number or duration, as written).
    #[error("expected at least {bound}, got {actual}")]
    Below {
        /// The bound.
        bound: String,
        /// The value found.
        actual: String,
    },
    /// Over the upper bound (number or duration, as written).
    #[error("expected at most {bound}, got {actual}")]
    Above {
        /// The bound.
        bound: String,
        /// The value found.
        actual: String,
    },
    /// A text payload that differs.
    #[error("expected text {expected:?}, got {actual:?}")]
    TextDiffers {
        /// The expected text.
        expected: String,
        /// The payload, as text.
        actual: String,
    },
    /// The field is not there.
    #[error("field missing")]
    Missing,
    /// Field checks on a payload that is not JSON.
    #[error("payload is not JSON")]
    NotJson,
    /// A field of a payload fails its check.
    #[error("{path}: {mismatch}")]
    Field {
        /// The field's dotted path.
        path: String,
        /// Why it fails.
        mismatch: Box<Mismatch>,
    },
}

/// The value at a dotted path (`pose.x`, `items.0.id`); an empty path is the value itself.
pub fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Does `actual` satisfy every condition of `cmp`? `Err` says why not.
pub fn compare(actual: &Value, cmp: &Comparison) -> Result<(), Mismatch> {
    if let Some(expected) = &cmp.equals
        && !json_equal(actual, expected)
    {
        return Err(Mismatch::NotEqual {
            expected: expected.clone(),
            actual: actual.clone(),
        });
    }
    let needs_number = cmp.approx.is_some() || cmp.at_least.is_some() || cmp.at_most.is_some();
    if !needs_number {
        return Ok(());
    }
    let Some(x) = actual.as_f64() else {
        return Err(Mismatch::NotANumber(actual.clone()));
    };
    if let Some(target) = cmp.approx {
        let tolerance = cmp.tolerance.unwrap_or(0.0);
        if (x - target).abs() > tolerance || x.is_nan() {
            return Err(Mismatch::OutsideTolerance {
                target,
                tolerance,
                actual: x,
            });
        }
    }
    if let Some(min) = cmp.at_least
        && (x < min || x.is_nan())
    {
        return Err(Mismatch::Below {
            bound: min.to_string(),
            actual: x.to_string(),
        });
    }
    if let Some(max) = cmp.at_most
        && (x > max || x.is_nan())
    {
        return Err(Mismatch::Above {
            bound: max.to_string(),
            actual: x.to_string(),
        });
    }
    Ok(())
}

/// Numbers compare by value (1 == 1.0); everything else structurally.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Checks a duration against at_least / at_most.
pub fn compare_duration(actual: Nanos, cmp: &DurationComparison) -> Result<(), Mismatch> {
    if let Some(min) = &cmp.at_least
        && actual < min.nanos()
    {
        return Err(Mismatch::Below {
            bound: min.to_string(),
            actual: format_nanos(actual),
        });
    }
    if let Some(max) = &cmp.at_most
        && actual > max.nanos()
    {
        return Err(Mismatch::Above {
            bound: max.to_string(),
            actual: format_nanos(actual),
        });
    }
    Ok(())
}

/// Checks one field: a comparison, or plain equality.
pub fn field_check(actual: Option<&Value>, check: &FieldCheck) -> Result<(), Mismatch> {
    let Some(actual) = actual else {
        return Err(Mismatch::Missing);
    };
    match check {
        FieldCheck::Compare(cmp) => compare(actual, cmp),
        FieldCheck::Equals(expected) => {
            if json_equal(actual, expected) {
                Ok(())
            } else {
                Err(Mismatch::NotEqual {
                    expected: expected.clone(),
                    actual: actual.clone(),
                })
            }
        }
    }
}

/// Does a payload satisfy a filter (text equality, JSON field checks)?
pub fn payload_matches(payload: &[u8], filter: &PayloadFilter) -> Result<(), Mismatch> {
    if let Some(text) = &filter.text
        && payload != text.as_bytes()
    {
        return Err(Mismatch::TextDiffers {
            expected: text.clone(),
            actual: String::from_utf8_lossy(payload).into_owned(),
        });
    }
    if filter.fields.is_empty() {
        return Ok(());
    }
    let json: Value = serde_json::from_slice(payload).map_err(|_| Mismatch::NotJson)?;
    for (path, check) in &filter.fields {
        field_check(json_path(&json, path), check).map_err(|e| Mismatch::Field {
            path: path.clone(),
            mismatch: Box::new(e),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_reach_into_objects_and_arrays() {
        let v = json!({"pose": {"x": 1.5}, "items": [{"id": "a"}]});
        assert_eq!(json_path(&v, "pose.x"), Some(&json!(1.5)));
        assert_eq!(json_path(&v, "items.0.id"), Some(&json!("a")));
        assert_eq!(json_path(&v, "items.1.id"), None);
        assert_eq!(json_path(&v, "pose.y"), None);
    }

    #[test]
    fn comparisons_hold_or_say_why_not() {
        let approx = Comparison {
            approx: Some(1.0),
            tolerance: Some(0.1),
            ..Default::default()
        };
        assert!(compare(&json!(1.05), &approx).is_ok());
        assert!(
            compare(&json!(1.2), &approx)
                .unwrap_err()
                .to_string()
                .contains("1 ± 0.1")
        );
        assert!(compare(&json!("x"), &approx).is_err());
        let range = Comparison {
            at_least: Some(2.0),
            at_most: Some(3.0),
            ..Default::default()
        };
        assert!(compare(&json!(2), &range).is_ok());
        assert!(compare(&json!(3.5), &range).is_err());
        let eq = Comparison {
            equals: Some(json!(1)),
            ..Default::default()
        };
        assert!(compare(&json!(1.0), &eq).is_ok());
        assert!(compare(&json!(f64::NAN.to_string()), &eq).is_err());
    }

    #[test]
    fn payload_filters_check_text_and_fields() {
        let f = PayloadFilter {
            text: Some("hi".into()),
            ..Default::default()
        };
        assert!(payload_matches(b"hi", &f).is_ok());
        assert!(payload_matches(b"ho", &f).is_err());
        let mut f = PayloadFilter::default();
        f.fields
            .insert("status".into(), FieldCheck::Equals(json!("ok")));
        assert!(payload_matches(br#"{"status":"ok"}"#, &f).is_ok());
        assert!(payload_matches(br#"{"status":"no"}"#, &f).is_err());
        assert!(
            payload_matches(b"not json", &f)
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }
}
