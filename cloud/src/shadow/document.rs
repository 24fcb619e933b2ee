//! Shadow document rules: request validation, merge with metadata, delta.
//!
//! Everything here is a pure function of its arguments; time comes in as
//! `now` (epoch seconds).

use serde_json::{Map, Value};

use super::{ShadowConfig, messages};

/// A JSON object (serde_json's `Map`, sorted by key).
pub(crate) type Obj = Map<String, Value>;

/// A refused request before the service adds its timestamp policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: u16,
    pub message: String,
    pub client_token: Option<String>,
}

impl Refusal {
    fn bad_request(message: impl Into<String>, client_token: Option<String>) -> Refusal {
        Refusal {
            code: 400,
            message: message.into(),
            client_token,
        }
    }
}

/// A validated update request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UpdateRequest {
    /// `clientToken`, echoed in every response to this request.
    pub client_token: Option<String>,
    /// `version`: apply only if it equals the stored version.
    pub version: Option<u64>,
    /// `state` as sent: `null` or an object whose only keys are `desired`
    /// and `reported`, each an object or `null`.
    pub state: Value,
}

/// Validates an update request document (the `/update` payload or the
/// UpdateThingShadow body). Checks in order: UTF-8 (415), JSON (400), a
/// `clientToken` that is a string of at most the configured bytes, a
/// `version` that is a non-negative integer, `state` present and an object
/// (or `null`), only `desired`/`reported` inside it, each an object or
/// `null`, the nesting depth, and no `null` inside arrays.
pub(crate) fn parse_update(
    payload: &[u8],
    config: &ShadowConfig,
) -> Result<UpdateRequest, Refusal> {
    let text = std::str::from_utf8(payload).map_err(|_| Refusal {
        code: 415,
        message: messages::UNSUPPORTED_ENCODING.to_string(),
        client_token: None,
    })?;
    let Ok(Value::Object(mut request)) = serde_json::from_str::<Value>(text) else {
        return Err(Refusal::bad_request(messages::INVALID_JSON, None));
    };

    let client_token = match request.remove("clientToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) if token.len() <= config.max_client_token_bytes => Some(token),
        Some(_) => return Err(Refusal::bad_request(messages::INVALID_CLIENT_TOKEN, None)),
    };
    let refuse = |message: &str| Refusal::bad_request(message, client_token.clone());

    let version = match request.remove("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| refuse(messages::INVALID_VERSION))?,
        ),
    };

    let state = match request.remove("state") {
        None => return Err(refuse(messages::MISSING_STATE)),
        Some(Value::Null) => Value::Null,
        Some(Value::Object(state)) => {
            for (key, value) in &state {
                let message = match key.as_str() {
                    "desired" => messages::DESIRED_NOT_OBJECT,
                    "reported" => messages::REPORTED_NOT_OBJECT,
                    _ => return Err(refuse(messages::INVALID_STATE_NODE)),
                };
                if !(value.is_object() || value.is_null()) {
                    return Err(refuse(message));
                }
            }
            Value::Object(state)
        }
        Some(_) => return Err(refuse(messages::STATE_NOT_OBJECT)),
    };

    if depth(&state) > config.max_depth {
        return Err(refuse(&messages::too_deep(config.max_depth)));
    }
    if array_holds_null(&state) {
        return Err(refuse(messages::INVALID_STATE_NODE));
    }

    Ok(UpdateRequest {
        client_token,
        version,
        state,
    })
}

/// The `clientToken` of a get or delete request, whose body AWS otherwise
/// ignores: present only when the body is a JSON object with a string token
/// of acceptable length. Anything else (empty, not JSON, bad token) reads as
/// "no token" and never refuses the request.
pub(crate) fn lenient_client_token(payload: &[u8], config: &ShadowConfig) -> Option<String> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(mut body)) => match body.remove("clientToken") {
            Some(Value::String(token)) if token.len() <= config.max_client_token_bytes => {
                Some(token)
            }
            _ => None,
        },
        _ => None,
    }
}

/// Nesting depth counted the way AWS's Greengrass shadow manager counts it:
/// every object or array is one level, starting with `state` itself.
pub(crate) fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Does any array under `value` have a `null` element?
fn array_holds_null(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().any(array_holds_null),
        Value::Array(items) => items.iter().any(|v| v.is_null() || array_holds_null(v)),
        _ => false,
    }
}

/// `{"timestamp": now}`.
pub(crate) fn stamp(now: u64) -> Value {
    let mut leaf = Obj::new();
    leaf.insert("timestamp".to_string(), Value::from(now));
    Value::Object(leaf)
}

/// Metadata mirroring `value`: objects map key by key, arrays element by
/// element, and every other value (including `null`) becomes
/// `{"timestamp": now}`.
pub(crate) fn metadata_of(value: &Value, now: u64) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), metadata_of(v, now)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| metadata_of(v, now)).collect()),
        _ => stamp(now),
    }
}

/// Merges `patch` into one section (`desired` or `reported`) and its
/// metadata. Objects merge key by key; `null` deletes a key; any other
/// value, arrays included, replaces the stored one and gets a fresh
/// timestamp. An empty object in the patch changes nothing, and objects
/// left empty by deletions are removed (no leaves, no metadata).
pub(crate) fn merge(state: &mut Obj, meta: &mut Obj, patch: &Obj, now: u64) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                state.remove(key);
                meta.remove(key);
            }
            Value::Object(sub) if sub.is_empty() => {}
            Value::Object(sub) => {
                if !matches!(state.get(key), Some(Value::Object(_))) {
                    state.insert(key.clone(), Value::Object(Obj::new()));
                    meta.insert(key.clone(), Value::Object(Obj::new()));
                }
                if !matches!(meta.get(key), Some(Value::Object(_))) {
                    meta.insert(key.clone(), Value::Object(Obj::new()));
                }
                let mut emptied = false;
                if let (Some(Value::Object(s)), Some(Value::Object(m))) =
                    (state.get_mut(key), meta.get_mut(key))
                {
                    merge(s, m, sub, now);
                    emptied = s.is_empty();
                }
                if emptied {
                    state.remove(key);
                    meta.remove(key);
                }
            }
            other => {
                state.insert(key.clone(), other.clone());
                meta.insert(key.clone(), metadata_of(other, now));
            }
        }
    }
}

/// The delta of `desired` against `reported` and its metadata (taken from
/// the desired metadata). A desired key is in the delta when reported lacks
/// it or holds a different value; objects on both sides are compared key by
/// key (the delta keeps the path to the root); arrays and other values are
/// compared whole. Keys only in reported never appear.
pub(crate) fn delta(desired: &Obj, desired_meta: &Obj, reported: &Obj) -> (Obj, Obj) {
    let mut state = Obj::new();
    let mut meta = Obj::new();
    for (key, want) in desired {
        let key_meta = desired_meta.get(key);
        match (want, reported.get(key)) {
            (Value::Object(want), Some(Value::Object(have))) => {
                let empty = Obj::new();
                let sub_meta = match key_meta {
                    Some(Value::Object(m)) => m,
                    _ => &empty,
                };
                let (sub, sub_meta) = delta(want, sub_meta, have);
                if !sub.is_empty() {
                    state.insert(key.clone(), Value::Object(sub));
                    meta.insert(key.clone(), Value::Object(sub_meta));
                }
            }
            (want, have) if have != Some(want) => {
                state.insert(key.clone(), want.clone());
                meta.insert(
                    key.clone(),
                    key_meta
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Obj::new())),
                );
            }
            _ => {}
        }
    }
    (state, meta)
}

/// Size of a section as counted against the limit: its compact JSON, 0 when
/// absent (empty).
pub(crate) fn section_bytes(section: &Obj) -> usize {
    if section.is_empty() {
        0
    } else {
        serde_json::to_vec(section).map_or(0, |bytes| bytes.len())
    }
}
