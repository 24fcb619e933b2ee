//! Parsing device-plane request bodies, and the refusals they lead to.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::codes;

/// A device-plane refusal.
#[derive(Debug)]
pub(super) struct Rejection {
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) execution_state: Option<Value>,
}

pub(super) fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
        execution_state: None,
    }
}

type Body = (Map<String, Value>, Option<String>);

/// Parses a request body: the object and its valid clientToken.
pub(super) fn parse_body(payload: &[u8], max_token: usize) -> Result<Body, Rejection> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok((Map::new(), None));
    }
    let value: Value = serde_json::from_slice(payload)
        .map_err(|_| reject(codes::INVALID_JSON, "Payload is not valid JSON"))?;
    let Value::Object(body) = value else {
        return Err(reject(
            codes::INVALID_REQUEST,
            "Payload must be a JSON object",
        ));
    };
    let token = match body.get("clientToken") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= max_token => Some(s.clone()),
        Some(_) => return Err(reject(codes::INVALID_REQUEST, "Invalid clientToken")),
    };
    Ok((body, token))
}

pub(super) fn opt_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, Rejection> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(reject(
            codes::INVALID_REQUEST,
            format!("{key} must be a boolean"),
        )),
    }
}

pub(super) fn opt_u64(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, Rejection> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            reject(
                codes::INVALID_REQUEST,
                format!("{key} must be a non-negative integer"),
            )
        }),
    }
}

pub(super) fn parse_step(body: &Map<String, Value>) -> Result<Option<i64>, Rejection> {
    match body.get("stepTimeoutInMinutes") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(m) if m == -1 || (1..=10_080).contains(&m) => Ok(Some(m)),
            _ => Err(reject(
                codes::INVALID_REQUEST,
                "stepTimeoutInMinutes must be -1 or 1-10080",
            )),
        },
    }
}

pub(super) fn parse_details(
    body: &Map<String, Value>,
) -> Result<Option<BTreeMap<String, String>>, Rejection> {
    let bad = || {
        reject(
            codes::INVALID_REQUEST,
            "statusDetails must map [a-zA-Z0-9:_-]{1,128} keys to strings of 1-1024 characters",
        )
    };
    match body.get("statusDetails") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let key_ok = (1..=128).contains(&k.len())
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'));
                let Value::String(s) = v else {
                    return Err(bad());
                };
                let n = s.chars().count();
                if !key_ok || !(1..=1024).contains(&n) || s.chars().any(char::is_control) {
                    return Err(bad());
                }
                out.insert(k.clone(), s.clone());
            }
            Ok(Some(out))
        }
        Some(_) => Err(bad()),
    }
}
