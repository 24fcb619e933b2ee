//! Data-driven flatteners: the stand-ins for the Lambdas between an IoT rule
//! and AppSync.
//!
//! A transform is a table read from a JSON file (each robot's `robots/<robot>/twin/rules/*.json`),
//! not code per robot: each output field names its source path in the rule's
//! output, its type, when the default applies and what the default is. The
//! hand's Lambda (`AmazingHandToAppSyncFunction`) is reproduced exactly by
//! `hand-state.json`; see that file and the field table in the module docs of
//! [`crate::rules`].
//!
//! # File format
//!
//! ```json
//! {
//!   "name": "hand-state",            // the action name rules refer to
//!   "kind": "HandState",             // record kind (AppSync model)
//!   "description": "...",            // optional
//!   "key_field": "deviceName",       // output field holding the device
//!   "time_field": "timestamp",       // output field holding the record time
//!   "fields": [
//!     { "name": "deviceName", "source": "device_name", "type": "string",
//!       "when": "falsy", "default": "error", "nullable": false },
//!     { "name": "indexAngle1", "source": "fingers.index.angle_1",
//!       "type": "integer", "when": "missing", "default": { "value": 0 } },
//!     { "name": "timestamp", "source": "ts", "type": "integer",
//!       "when": "falsy", "default": { "now": "seconds" }, "nullable": false }
//!   ]
//! }
//! ```
//!
//! (Comments for illustration only; the files are plain JSON.)
//!
//! - `source`: a dotted path into the input object (`a.b.c`).
//! - `type`: `string`, `integer`, `number`, `boolean` or `any`. An `integer`
//!   accepts a whole JSON number (`45` or `45.0`) and writes it as an integer.
//! - `when` (default `missing`): when the default replaces the source value —
//!   `missing` (the path is absent; JS `=== undefined`), `missing_or_null`, or
//!   `falsy` (JavaScript falsiness: absent, `null`, `false`, `0`, `""`).
//! - `default`: `{"value": <json>}`, `{"now": "seconds"}` / `{"now":
//!   "milliseconds"}` (the clock passed to [`Transform::apply`], never the wall
//!   clock; seconds are floored), or `"error"` (the record is refused, as the
//!   Lambda refuses a state without `device_name`).
//! - `nullable` (default `true`): whether the final value may be `null`.
//!
//! The key field must be a non-nullable `string`, the time field a
//! non-nullable `integer`. Unknown keys are rejected, so a typo in a file is an
//! error at load time rather than a silently missing field.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::records::Record;

/// The JSON file, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// Action name (what a rule's `action` refers to).
    pub name: String,
    /// Record kind written to the store.
    pub kind: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Output field that names the device (the store's key).
    pub key_field: String,
    /// Output field with the record's timestamp.
    pub time_field: String,
    /// The mapping table, in output order.
    pub fields: Vec<FieldSpec>,
}

/// One row of the mapping table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Output field name (camelCase by convention).
    pub name: String,
    /// Dotted source path in the input object.
    pub source: String,
    /// Type of the output value.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// When the default applies.
    #[serde(default)]
    pub when: DefaultWhen,
    /// What the default is.
    pub default: Fallback,
    /// Whether the final value may be JSON `null`.
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

/// Output value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A JSON string.
    String,
    /// A whole number (GraphQL `Int`, `AWSTimestamp`).
    Integer,
    /// Any JSON number (GraphQL `Float`).
    Number,
    /// `true` / `false`.
    Boolean,
    /// Anything, unchecked (GraphQL `AWSJSON`).
    Any,
}

impl FieldType {
    fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Any => "any",
        }
    }
}

/// When a field's default replaces its source value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultWhen {
    /// The source path is absent (`=== undefined` in the Lambda).
    #[default]
    Missing,
    /// Absent or `null`.
    MissingOrNull,
    /// JavaScript-falsy: absent, `null`, `false`, `0`, `""`.
    Falsy,
}

/// A field's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// A fixed value.
    Value(Value),
    /// The clock given to [`Transform::apply`].
    Now(TimeUnit),
    /// No default: the record is refused.
    Error,
}

/// Unit of a clock default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Whole seconds since the epoch (floored), like `AWSTimestamp`.
    Seconds,
    /// Milliseconds since the epoch.
    Milliseconds,
}

/// A transform file that cannot be used.
#[derive(Debug, Error)]
pub enum TransformSpecError {
    /// Reading the file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid JSON, or not the format (unknown key, wrong type, ...).
    #[error("transform file: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON with inconsistent content.
    #[error("transform `{name}`: {reason}")]
    Invalid {
        /// The transform's name.
        name: String,
        /// What is inconsistent.
        reason: String,
    },
}

/// Why a transform refused an input (the Lambda's error path: nothing is
/// stored).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TransformError {
    /// The rule output is not a JSON object.
    #[error("transform input is not a JSON object")]
    NotAnObject,
    /// A field whose default is `"error"` had no usable value.
    #[error("field `{field}` needs `{source_path}` and it is missing or empty")]
    Missing {
        /// Output field.
        field: String,
        /// Its source path.
        source_path: String,
    },
    /// A value of the wrong type (AppSync would reject the mutation).
    #[error("field `{field}` must be {expected}, found {found}")]
    WrongType {
        /// Output field.
        field: String,
        /// The declared type.
        expected: &'static str,
        /// The JSON that was there.
        found: String,
    },
    /// `null` in a non-nullable field.
    #[error("field `{field}` must not be null")]
    Null {
        /// Output field.
        field: String,
    },
}

/// A validated transform, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    spec: TransformSpec,
    paths: Vec<Vec<String>>,
}

impl Transform {
    /// Parses and validates a transform file's text.
    pub fn from_json(text: &str) -> Result<Self, TransformSpecError> {
        Self::from_spec(serde_json::from_str(text)?)
    }

    /// Reads a transform file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, TransformSpecError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TransformSpecError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Validates a spec.
    pub fn from_spec(spec: TransformSpec) -> Result<Self, TransformSpecError> {
        let invalid = |reason: String| TransformSpecError::Invalid {
            name: spec.name.clone(),
            reason,
        };
        if spec.name.is_empty() || spec.kind.is_empty() {
            return Err(invalid("`name` and `kind` must not be empty".into()));
        }
        let mut seen = BTreeSet::new();
        let mut paths = Vec::with_capacity(spec.fields.len());
        for f in &spec.fields {
            if f.name.is_empty() || !seen.insert(f.name.as_str()) {
                return Err(invalid(format!(
                    "field name `{}` is empty or repeated",
                    f.name
                )));
            }
            let path: Vec<String> = f.source.split('.').map(str::to_string).collect();
            if path.iter().any(String::is_empty) {
                return Err(invalid(format!(
                    "field `{}`: source `{}` is not a dotted path",
                    f.name, f.source
                )));
            }
            if let Fallback::Value(v) = &f.default {
                check_type(&f.name, f.ty, f.nullable, v.clone())
                    .map_err(|e| invalid(format!("default of {e}")))?;
            }
            if let Fallback::Now(_) = f.default
                && !matches!(
                    f.ty,
                    FieldType::Integer | FieldType::Number | FieldType::Any
                )
            {
                return Err(invalid(format!(
                    "field `{}`: a clock default needs a numeric type",
                    f.name
                )));
            }
            paths.push(path);
        }
        let field = |name: &str| spec.fields.iter().find(|f| f.name == name);
        match field(&spec.key_field) {
            Some(f) if f.ty == FieldType::String && !f.nullable => {}
            _ => {
                return Err(invalid(format!(
                    "key_field `{}` must be a field of type string with \"nullable\": false",
                    spec.key_field
                )));
            }
        }
        match field(&spec.time_field) {
            Some(f) if f.ty == FieldType::Integer && !f.nullable => {}
            _ => {
                return Err(invalid(format!(
                    "time_field `{}` must be a field of type integer with \"nullable\": false",
                    spec.time_field
                )));
            }
        }
        Ok(Transform { spec, paths })
    }

    /// The action name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The record kind.
    pub fn kind(&self) -> &str {
        &self.spec.kind
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &TransformSpec {
        &self.spec
    }

    /// Flattens one rule output into a record. `now_ms` (epoch milliseconds)
    /// is the clock for `{"now": ...}` defaults.
    pub fn apply(&self, input: &Value, now_ms: u64) -> Result<Record, TransformError> {
        let object = input.as_object().ok_or(TransformError::NotAnObject)?;
        let mut fields = Map::new();
        for (f, path) in self.spec.fields.iter().zip(&self.paths) {
            let found = lookup(object, path);
            let use_default = match f.when {
                DefaultWhen::Missing => found.is_none(),
                DefaultWhen::MissingOrNull => found.is_none_or(Value::is_null),
                DefaultWhen::Falsy => found.is_none_or(is_falsy),
            };
            let value = match (use_default, found) {
                (false, Some(v)) => v.clone(),
                _ => match &f.default {
                    Fallback::Value(v) => v.clone(),
                    Fallback::Now(TimeUnit::Seconds) => Value::from(now_ms / 1000),
                    Fallback::Now(TimeUnit::Milliseconds) => Value::from(now_ms),
                    Fallback::Error => {
                        return Err(TransformError::Missing {
                            field: f.name.clone(),
                            source_path: f.source.clone(),
                        });
                    }
                },
            };
            fields.insert(
                f.name.clone(),
                check_type(&f.name, f.ty, f.nullable, value)?,
            );
        }
        // Validation guarantees both fields exist with these types; the checks
        // below only keep this path panic-free.
        let key = match fields.get(&self.spec.key_field) {
            Some(Value::String(s)) => s.clone(),
            other => return Err(wrong(&self.spec.key_field, FieldType::String, other)),
        };
        let ts = match fields.get(&self.spec.time_field).and_then(Value::as_i64) {
            Some(ts) => ts,
            None => {
                let other = fields.get(&self.spec.time_field);
                return Err(wrong(&self.spec.time_field, FieldType::Integer, other));
            }
        };
        Ok(Record {
            kind: self.spec.kind.clone(),
            key,
            ts,
            fields,
        })
    }
}

fn lookup<'a>(object: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut current = object.get(first)?;
    for seg in rest {
        current = current.as_object()?.get(seg)?;
    }
    Some(current)
}

/// JavaScript falsiness of a JSON value.
fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

fn wrong(field: &str, ty: FieldType, found: Option<&Value>) -> TransformError {
    TransformError::WrongType {
        field: field.to_string(),
        expected: ty.as_str(),
        found: found.map_or_else(|| "nothing".to_string(), short_json),
    }
}

fn short_json(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 60 {
        let mut cut = 57;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Checks (and for whole floats in an `integer` field, normalises) a value.
fn check_type(
    field: &str,
    ty: FieldType,
    nullable: bool,
    value: Value,
) -> Result<Value, TransformError> {
    if value.is_null() {
        return if nullable {
            Ok(Value::Null)
        } else {
            Err(TransformError::Null {
                field: field.to_string(),
            })
        };
    }
    let ok = match (ty, &value) {
        (FieldType::Any, _)
        | (FieldType::String, Value::String(_))
        | (FieldType::Number, Value::Number(_))
        | (FieldType::Boolean, Value::Bool(_)) => true,
        (FieldType::Integer, Value::Number(n)) => {
            if n.is_i64() || n.is_u64() {
                true
            } else {
                // 45.0 is the integer 45; within i64 it is exact enough.
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                        return Ok(Value::from(f as i64));
                    }
                    _ => false,
                }
            }
        }
        _ => false,
    };
    if ok {
        Ok(value)
    } else {
        Err(wrong(field, ty, Some(&value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal(fields: Value) -> Value {
        json!({
            "name": "t", "kind": "K", "key_field": "id", "time_field": "ts",
            "fields": fields,
        })
    }

    fn base_fields() -> Vec<Value> {
        vec![
            json!({"name": "id", "source": "id", "type": "string", "when": "falsy",
                   "default": "error", "nullable": false}),
            json!({"name": "ts", "source": "ts", "type": "integer", "when": "falsy",
                   "default": {"now": "milliseconds"}, "nullable": false}),
        ]
    }

    fn load(extra: Vec<Value>) -> Result<Transform, TransformSpecError> {
        let mut fields = base_fields();
        fields.extend(extra);
        Transform::from_json(&minimal(Value::Array(fields)).to_string())
    }

    #[test]
    fn falsiness_is_javascripts() {
        for v in [json!(null), json!(false), json!(0), json!(0.0), json!("")] {
            assert!(is_falsy(&v), "{v}");
        }
        for v in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("0"),
            json!([]),
            json!({}),
        ] {
            assert!(!is_falsy(&v), "{v}");
        }
    }

    #[test]
    fn when_modes_differ_on_null_and_zero() {
        let t = load(vec![
            json!({"name": "m", "source": "v", "type": "integer", "when": "missing",
                   "default": {"value": 7}}),
            json!({"name": "mn", "source": "v", "type": "integer", "when": "missing_or_null",
                   "default": {"value": 7}}),
            json!({"name": "f", "source": "v", "type": "integer", "when": "falsy",
                   "default": {"value": 7}}),
        ])
        .unwrap();
        let out = |v: Value| {
            let mut input = json!({"id": "d", "ts": 1});
            input["v"] = v;
            let r = t.apply(&input, 0).unwrap();
            (
                r.fields["m"].clone(),
                r.fields["mn"].clone(),
                r.fields["f"].clone(),
            )
        };
        assert_eq!(out(json!(null)), (json!(null), json!(7), json!(7)));
        assert_eq!(out(json!(0)), (json!(0), json!(0), json!(7)));
        assert_eq!(out(json!(3)), (json!(3), json!(3), json!(3)));
        let absent = t.apply(&json!({"id": "d", "ts": 1}), 0).unwrap();
        assert_eq!(absent.fields["m"], json!(7));
        assert_eq!(absent.fields["f"], json!(7));
    }

    #[test]
    fn types_are_checked_and_whole_floats_become_integers() {
        let t = load(vec![
            json!({"name": "n", "source": "n", "type": "integer", "default": {"value": 0}}),
        ])
        .unwrap();
        let r = t
            .apply(&json!({"id": "d", "ts": 5.0, "n": 45.0}), 0)
            .unwrap();
        assert_eq!(r.fields["n"], json!(45));
        assert!(r.fields["n"].is_i64());
        assert_eq!(r.ts, 5);
        assert!(matches!(
            t.apply(&json!({"id": "d", "n": 4.5}), 0),
            Err(TransformError::WrongType {
                expected: "integer",
                ..
            })
        ));
        assert!(matches!(
            t.apply(&json!({"id": "d", "n": "45"}), 0),
            Err(TransformError::WrongType { .. })
        ));
        assert!(matches!(
            t.apply(&json!({"id": 12}), 0),
            Err(TransformError::WrongType {
                expected: "string",
                ..
            })
        ));
        assert_eq!(t.apply(&json!([1]), 0), Err(TransformError::NotAnObject));
    }

    #[test]
    fn clock_default_uses_the_given_time() {
        let t = load(vec![]).unwrap();
        let r = t.apply(&json!({"id": "d"}), 1_770_550_850_123).unwrap();
        assert_eq!(r.ts, 1_770_550_850_123);
    }

    #[test]
    fn bad_specs_are_rejected_at_load() {
        let dup = json!({"name": "id", "source": "x", "type": "string", "default": {"value": "a"}});
        assert!(matches!(
            load(vec![dup]),
            Err(TransformSpecError::Invalid { .. })
        ));
        let bad_default =
            json!({"name": "x", "source": "x", "type": "integer", "default": {"value": "zero"}});
        assert!(matches!(
            load(vec![bad_default]),
            Err(TransformSpecError::Invalid { .. })
        ));
        let bad_path = json!({"name": "x", "source": "a..b", "type": "any", "default": "error"});
        assert!(matches!(
            load(vec![bad_path]),
            Err(TransformSpecError::Invalid { .. })
        ));
        let typo = json!({"name": "x", "source": "x", "type": "any", "default": "error",
                          "nulable": true});
        assert!(matches!(load(vec![typo]), Err(TransformSpecError::Json(_))));
        let clock_string =
            json!({"name": "x", "source": "x", "type": "string", "default": {"now": "seconds"}});
        assert!(matches!(
            load(vec![clock_string]),
            Err(TransformSpecError::Invalid { .. })
        ));
        // Key field that may be null.
        let text = minimal(json!([
            {"name": "id", "source": "id", "type": "string", "default": {"value": null}},
            {"name": "ts", "source": "ts", "type": "integer", "default": {"value": 0},
             "nullable": false}
        ]));
        assert!(matches!(
            Transform::from_json(&text.to_string()),
            Err(TransformSpecError::Invalid { .. })
        ));
        assert!(matches!(
            Transform::from_path("/nonexistent/transform.json"),
            Err(TransformSpecError::Io { .. })
        ));
        assert!(matches!(
            Transform::from_json("{"),
            Err(TransformSpecError::Json(_))
        ));
    }
}
