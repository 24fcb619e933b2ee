//! The AWS IoT Device Shadow service as a pure, deterministic state machine.
//!
//! Input: a publish on a shadow request topic (topic, payload bytes) and the
//! virtual time `now` in epoch seconds. Output: the publishes AWS IoT would
//! make in answer, in order. No I/O, no wall clock: [`ShadowService::handle`]
//! is a function of the stored shadows and its arguments, so the same inputs
//! give byte-identical outputs (JSON objects are written with sorted keys).
//! The broker wiring subscribes the service to [`REQUEST_FILTERS`] and
//! publishes what it returns.
//!
//! # Topics
//!
//! Prefix `$aws/things/{thing}/shadow` (classic) or
//! `$aws/things/{thing}/shadow/name/{shadowName}` (named), then:
//!
//! | request | answers, in this order |
//! |---|---|
//! | `/get` | `/get/accepted` or `/get/rejected` |
//! | `/update` | `/update/accepted`, then `/update/delta` (only if the delta is not empty), then `/update/documents`; or `/update/rejected` |
//! | `/delete` | `/delete/accepted` or `/delete/rejected` |
//!
//! AWS does not document the order of accepted, delta and documents; the
//! order above is assumed (AWS's Greengrass shadow manager publishes delta,
//! documents, accepted). Other topics produce nothing. Thing names must match
//! `[a-zA-Z0-9:_-]{1,128}` and shadow names `[$a-zA-Z0-9:_-]{1,64}`
//! (model:iot-data); a topic with another name is not a shadow topic here.
//!
//! # Payloads (devguide `device-shadow-document`)
//!
//! - `/update/accepted`: `{state, metadata, timestamp, clientToken?, version}`
//!   where `state` is the request's `state` as sent (nulls included) and
//!   `metadata` mirrors it with `{"timestamp": now}` per leaf (a `null` leaf
//!   included, so `{"state": null}` gets `"metadata": {"timestamp": now}`:
//!   assumed).
//! - `/update/delta`: `{state, metadata, timestamp, clientToken?, version}`:
//!   every desired field that differs from reported, whether or not this
//!   update touched it, with the desired metadata. Published after every
//!   accepted update whose resulting delta is not empty (assumed: AWS says
//!   "when desired and reported differ").
//! - `/update/documents`: `{previous?: {state, metadata, version}, current:
//!   {state, metadata, version}, timestamp, clientToken?}` after every
//!   accepted update; `state` holds only `desired`/`reported`. When the
//!   update created the shadow, `previous` is left out (the one capture of
//!   real AWS output found, an aws-iot-device-sdk sample, shows none; that
//!   sample re-serialises the message, so AWS sending `"previous": null` is
//!   not ruled out).
//! - `/get/accepted`: `{state: {desired?, reported?, delta?}, metadata:
//!   {desired?, reported?}, timestamp, clientToken?, version}`; metadata has
//!   no `delta` (LocalStack's AWS-validated tests).
//! - `/delete/accepted`: `{version, timestamp, clientToken?}`, `version`
//!   being the deleted shadow's version.
//! - Rejections: `{code, message, timestamp?, clientToken?}`. AWS documents
//!   that `timestamp` "is not present in all error response documents";
//!   captures of real AWS show none on 404 (`{"code":404,"message":"No shadow
//!   exists with name: 'x'"}`) and 409 (`{"code":409,"message":"Version
//!   conflict","clientToken":...}`), so those two carry none and every other
//!   rejection carries one (assumed).
//! - `clientToken` (at most 64 bytes) is echoed on every answer to the
//!   request that carried it, delta and documents included. Get and delete
//!   ignore their body except for a `clientToken` in a JSON object body (the
//!   AWS device SDKs send one and AWS echoes it).
//!
//! # Document rules
//!
//! - Only `state.desired` and `state.reported` are stored; other top-level
//!   request fields are ignored. An update merges: nested objects key by key,
//!   `null` deletes a key, `"desired": null` deletes the section, arrays and
//!   scalars replace whole values. A section or nested object left empty is
//!   removed (sections: observed on AWS; nested objects: assumed), and an
//!   empty object in a request changes nothing. `{"state": null}` clears
//!   both sections (devguide: "setting the device's shadow state to null does
//!   not delete the shadow").
//! - `version` starts at 1 and goes up by 1 on every accepted update, empty
//!   ones included. A request `version` that differs from the stored one is
//!   refused with 409; a shadow never created counts as version 0 (assumed).
//!   Delete keeps the version, and the next update continues from it (AWS
//!   forgets it after 48 hours; the twin keeps it forever).
//! - Metadata: `{"timestamp": now}` per leaf; an array's metadata is an
//!   array of per-element metadata (as real AWS returns it).
//! - Delta: a desired key is in it when reported lacks it or holds another
//!   value; objects on both sides are compared key by key (the delta keeps
//!   the path to the root), arrays and scalars whole, with JSON equality
//!   (`1` and `1.0` differ); keys only in reported never appear; its
//!   metadata is the desired metadata of those keys.
//!
//! # Errors and limits (devguide `device-shadow-error-messages`)
//!
//! | code | message | when |
//! |---|---|---|
//! | 400 | `Invalid JSON` | payload is not JSON, or not a JSON object (the latter assumed) |
//! | 400 | `Invalid clientToken` | `clientToken` not a string or longer than 64 bytes |
//! | 400 | `Invalid version` | `version` not a non-negative integer (assumed mapping) |
//! | 400 | `Missing required node: state` | no `state` |
//! | 400 | `State node must be an object` | `state` is a string, number, bool or array |
//! | 400 | `Desired node must be an object` / `Reported node must be an object` | section neither object nor `null` |
//! | 400 | `State contains an invalid node` | a key other than `desired`/`reported` in `state`; an array holding `null` (the latter assumed) |
//! | 400 | `JSON contains too many levels of nesting; maximum is 6` | more than [`ShadowConfig::max_depth`] levels, counting `state` as level 1 and every object or array as one more (Greengrass's count; the cloud's is not documented, and a secondary source says 8) |
//! | 404 | `No shadow exists with name: '{thing}'` or `'{thing}~{shadowName}'` | get or delete of a missing shadow (quoted form: LocalStack's AWS-validated snapshot; one AWS tutorial shows just the shadow name) |
//! | 409 | `Version conflict` | request `version` differs from the stored one |
//! | 413 | `The payload exceeds the maximum size allowed` | compact JSON of desired + reported after the merge exceeds [`ShadowConfig::max_state_bytes`] (8192); metadata does not count |
//! | 415 | `Unsupported documented encoding; supported encoding is UTF-8` | payload is not UTF-8 |
//!
//! Not modelled: 401/403 (no authorization), 429 (in-flight limit), 500.
//! A rejected update changes nothing.
//!
//! # Cloud-side API
//!
//! [`ShadowService::document`] is what GetThingShadow returns, and
//! [`ShadowService::update_from_service`] is UpdateThingShadow over HTTP: the
//! same rules and the same MQTT publishes on success, the accepted document
//! as the response body, and on failure an error with no MQTT message (AWS:
//! "no MQTT error messages are emitted" for REST).

mod document;
mod topic;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::Value;

use document::{Obj, Refusal, UpdateRequest};
pub use topic::{
    MAX_SHADOW_NAME, MAX_THING_NAME, REQUEST_FILTERS, RequestTopic, ShadowOp, parse_request_topic,
    shadow_prefix, valid_shadow_name, valid_thing_name,
};

/// AWS's error messages, word for word (devguide `device-shadow-error-messages`).
pub mod messages {
    /// 400: the payload is not JSON.
    pub const INVALID_JSON: &str = "Invalid JSON";
    /// 400: the request has no `state`.
    pub const MISSING_STATE: &str = "Missing required node: state";
    /// 400: `state` is not an object.
    pub const STATE_NOT_OBJECT: &str = "State node must be an object";
    /// 400: `state.desired` is not an object.
    pub const DESIRED_NOT_OBJECT: &str = "Desired node must be an object";
    /// 400: `state.reported` is not an object.
    pub const REPORTED_NOT_OBJECT: &str = "Reported node must be an object";
    /// 400: `version` is not a non-negative integer.
    pub const INVALID_VERSION: &str = "Invalid version";
    /// 400: `clientToken` is not a string of at most 64 bytes.
    pub const INVALID_CLIENT_TOKEN: &str = "Invalid clientToken";
    /// 400: `state` holds something other than `desired` and `reported`.
    pub const INVALID_STATE_NODE: &str = "State contains an invalid node";
    /// 409: optimistic locking failed.
    pub const VERSION_CONFLICT: &str = "Version conflict";
    /// 413: the stored state would exceed the size limit.
    pub const PAYLOAD_TOO_LARGE: &str = "The payload exceeds the maximum size allowed";
    /// 415: the payload is not UTF-8 (AWS's own wording, typo included).
    pub const UNSUPPORTED_ENCODING: &str =
        "Unsupported documented encoding; supported encoding is UTF-8";

    /// 400: the request nests deeper than `max` levels.
    pub fn too_deep(max: usize) -> String {
        format!("JSON contains too many levels of nesting; maximum is {max}")
    }

    /// 404: the shadow does not exist. Named shadows are called
    /// `{thing}~{shadowName}`.
    pub fn no_shadow(thing: &str, shadow_name: Option<&str>) -> String {
        match shadow_name {
            None => format!("No shadow exists with name: '{thing}'"),
            Some(name) => format!("No shadow exists with name: '{thing}~{name}'"),
        }
    }
}

/// Limits of the service. The defaults are AWS's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowConfig {
    /// Largest stored state: compact JSON bytes of desired plus reported
    /// (AWS: 8 KB = 8192 per shadow, classic or named).
    pub max_state_bytes: usize,
    /// Deepest request `state`, counting `state` as level 1 (AWS's error
    /// text says 6).
    pub max_depth: usize,
    /// Longest `clientToken` in bytes (AWS: 64).
    pub max_client_token_bytes: usize,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        ShadowConfig {
            max_state_bytes: 8192,
            max_depth: 6,
            max_client_token_bytes: 64,
        }
    }
}

/// One message the service publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Topic name.
    pub topic: String,
    /// Payload: compact JSON with sorted keys.
    pub payload: Vec<u8>,
}

/// A refused request, as AWS's error response document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shadow request refused: {code} {message}")]
pub struct ShadowError {
    /// HTTP status code (400, 404, 409, 413, 415).
    pub code: u16,
    /// AWS's message (see [`messages`]).
    pub message: String,
    /// When the answer was made; absent on 404 and 409, as on AWS.
    pub timestamp: Option<u64>,
    /// The request's `clientToken`, if it had a valid one.
    pub client_token: Option<String>,
}

impl ShadowError {
    fn new(refusal: Refusal, now: u64) -> ShadowError {
        let timestamp = match refusal.code {
            404 | 409 => None,
            _ => Some(now),
        };
        ShadowError {
            code: refusal.code,
            message: refusal.message,
            timestamp,
            client_token: refusal.client_token,
        }
    }

    /// The error response document `{code, message, timestamp?, clientToken?}`.
    pub fn to_json(&self) -> Value {
        let mut doc = Obj::new();
        doc.insert("code".into(), Value::from(self.code));
        doc.insert("message".into(), Value::from(self.message.clone()));
        if let Some(timestamp) = self.timestamp {
            doc.insert("timestamp".into(), Value::from(timestamp));
        }
        if let Some(token) = &self.client_token {
            doc.insert("clientToken".into(), Value::from(token.clone()));
        }
        Value::Object(doc)
    }
}

/// What UpdateThingShadow over HTTP produces.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceResponse {
    /// The response body: the `/update/accepted` document.
    pub body: Value,
    /// The MQTT publishes, the same as for an update over MQTT.
    pub publishes: Vec<Publish>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct ShadowKey {
    thing: String,
    name: Option<String>,
}

/// One shadow, existing or deleted (a deleted shadow keeps its version).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Shadow {
    exists: bool,
    version: u64,
    desired: Obj,
    reported: Obj,
    desired_meta: Obj,
    reported_meta: Obj,
    /// When it was last updated (for [`ShadowService::document`]).
    updated_at: u64,
}

impl Shadow {
    /// `{desired?, reported?}` (empty sections are absent).
    fn sections(desired: &Obj, reported: &Obj) -> Value {
        let mut out = Obj::new();
        if !desired.is_empty() {
            out.insert("desired".into(), Value::Object(desired.clone()));
        }
        if !reported.is_empty() {
            out.insert("reported".into(), Value::Object(reported.clone()));
        }
        Value::Object(out)
    }

    /// `{state: {desired?, reported?}, metadata: {desired?, reported?}, version}`,
    /// as in `/update/documents`.
    fn snapshot(&self) -> Value {
        let mut out = Obj::new();
        out.insert(
            "state".into(),
            Self::sections(&self.desired, &self.reported),
        );
        out.insert(
            "metadata".into(),
            Self::sections(&self.desired_meta, &self.reported_meta),
        );
        out.insert("version".into(), Value::from(self.version));
        Value::Object(out)
    }

    /// The full document as `/get/accepted` and GetThingShadow return it.
    fn full_document(&self, timestamp: u64, client_token: Option<&str>) -> Value {
        let mut state = Obj::new();
        if let Value::Object(sections) = Self::sections(&self.desired, &self.reported) {
            state = sections;
        }
        let (delta, _) = document::delta(&self.desired, &self.desired_meta, &self.reported);
        if !delta.is_empty() {
            state.insert("delta".into(), Value::Object(delta));
        }
        let mut out = Obj::new();
        out.insert("state".into(), Value::Object(state));
        out.insert(
            "metadata".into(),
            Self::sections(&self.desired_meta, &self.reported_meta),
        );
        out.insert("version".into(), Value::from(self.version));
        out.insert("timestamp".into(), Value::from(timestamp));
        if let Some(token) = client_token {
            out.insert("clientToken".into(), Value::from(token));
        }
        Value::Object(out)
    }
}

/// An accepted update: the three documents AWS publishes.
struct Applied {
    accepted: Value,
    delta: Option<Value>,
    documents: Value,
}

/// The Device Shadow service for every thing, classic and named shadows.
#[derive(Debug, Clone, Default)]
pub struct ShadowService {
    config: ShadowConfig,
    shadows: BTreeMap<ShadowKey, Shadow>,
}

impl ShadowService {
    /// A service with no shadows and the given limits.
    pub fn new(config: ShadowConfig) -> ShadowService {
        ShadowService {
            config,
            shadows: BTreeMap::new(),
        }
    }

    /// Every shadow (existing and deleted, with their versions and
    /// metadata), as JSON: what [`ShadowService::restore`] takes back.
    pub fn snapshot(&self) -> Value {
        let pairs: Vec<(&ShadowKey, &Shadow)> = self.shadows.iter().collect();
        serde_json::to_value(pairs).unwrap_or_default()
    }

    /// Replaces every shadow with a [`ShadowService::snapshot`]'s; the
    /// limits stay.
    pub fn restore(&mut self, snapshot: Value) -> Result<(), serde_json::Error> {
        let pairs: Vec<(ShadowKey, Shadow)> = serde_json::from_value(snapshot)?;
        self.shadows = pairs.into_iter().collect();
        Ok(())
    }

    /// The limits in force.
    pub fn config(&self) -> &ShadowConfig {
        &self.config
    }

    /// Handles one publish. Returns what the service publishes in answer, in
    /// order; nothing when `topic` is not a shadow request topic. Never
    /// panics, whatever the payload.
    pub fn handle(&mut self, topic: &str, payload: &[u8], now: u64) -> Vec<Publish> {
        let Some(request) = parse_request_topic(topic) else {
            return Vec::new();
        };
        let key = ShadowKey {
            thing: request.thing.to_string(),
            name: request.shadow_name.map(str::to_string),
        };
        let prefix = shadow_prefix(request.thing, request.shadow_name);
        let op = request.op.as_str();
        let answer = |outcome: &str, doc: &Value| Publish {
            topic: format!("{prefix}/{op}/{outcome}"),
            payload: doc.to_string().into_bytes(),
        };
        match request.op {
            ShadowOp::Get => {
                let token = document::lenient_client_token(payload, &self.config);
                match self.get(&key, token, now) {
                    Ok(doc) => vec![answer("accepted", &doc)],
                    Err(e) => vec![answer("rejected", &e.to_json())],
                }
            }
            ShadowOp::Delete => {
                let token = document::lenient_client_token(payload, &self.config);
                match self.delete(&key, token, now) {
                    Ok(doc) => vec![answer("accepted", &doc)],
                    Err(e) => vec![answer("rejected", &e.to_json())],
                }
            }
            ShadowOp::Update => match self.update(&key, payload, now) {
                Ok(applied) => applied.publishes(&prefix),
                Err(e) => vec![answer("rejected", &e.to_json())],
            },
        }
    }

    /// The shadow document as GetThingShadow returns it (`state` with
    /// `delta`, `metadata`, `version`, `timestamp`), or `None` when the
    /// shadow does not exist. `timestamp` is the time of the last update,
    /// as this read takes no clock.
    pub fn document(&self, thing: &str, shadow_name: Option<&str>) -> Option<Value> {
        let key = ShadowKey {
            thing: thing.to_string(),
            name: shadow_name.map(str::to_string),
        };
        let shadow = self.shadows.get(&key).filter(|s| s.exists)?;
        Some(shadow.full_document(shadow.updated_at, None))
    }

    /// The version of an existing shadow.
    pub fn version(&self, thing: &str, shadow_name: Option<&str>) -> Option<u64> {
        let key = ShadowKey {
            thing: thing.to_string(),
            name: shadow_name.map(str::to_string),
        };
        self.shadows
            .get(&key)
            .filter(|s| s.exists)
            .map(|s| s.version)
    }

    /// UpdateThingShadow over HTTP: `payload` is the request state document
    /// (`{"state": ..., "clientToken"?, "version"?}`). On success the body is
    /// the accepted document and the publishes are those of an MQTT update
    /// (accepted, delta if any, documents). On failure nothing changes and
    /// nothing is published. Invalid thing or shadow names are refused with
    /// 400 `Invalid thing name` / `Invalid shadow name` (assumed wording).
    pub fn update_from_service(
        &mut self,
        thing: &str,
        shadow_name: Option<&str>,
        payload: &[u8],
        now: u64,
    ) -> Result<ServiceResponse, ShadowError> {
        let invalid = |message: &str| {
            ShadowError::new(
                Refusal {
                    code: 400,
                    message: message.to_string(),
                    client_token: None,
                },
                now,
            )
        };
        if !valid_thing_name(thing) {
            return Err(invalid("Invalid thing name"));
        }
        if !shadow_name.is_none_or(valid_shadow_name) {
            return Err(invalid("Invalid shadow name"));
        }
        let key = ShadowKey {
            thing: thing.to_string(),
            name: shadow_name.map(str::to_string),
        };
        let applied = self.update(&key, payload, now)?;
        let body = applied.accepted.clone();
        Ok(ServiceResponse {
            body,
            publishes: applied.publishes(&shadow_prefix(thing, shadow_name)),
        })
    }

    fn get(&self, key: &ShadowKey, token: Option<String>, now: u64) -> Result<Value, ShadowError> {
        match self.shadows.get(key).filter(|s| s.exists) {
            Some(shadow) => Ok(shadow.full_document(now, token.as_deref())),
            None => Err(not_found(key, token, now)),
        }
    }

    fn delete(
        &mut self,
        key: &ShadowKey,
        token: Option<String>,
        now: u64,
    ) -> Result<Value, ShadowError> {
        let Some(shadow) = self.shadows.get_mut(key).filter(|s| s.exists) else {
            return Err(not_found(key, token, now));
        };
        let version = shadow.version;
        *shadow = Shadow {
            version,
            ..Shadow::default()
        };
        let mut doc = Obj::new();
        doc.insert("version".into(), Value::from(version));
        doc.insert("timestamp".into(), Value::from(now));
        if let Some(token) = token {
            doc.insert("clientToken".into(), Value::from(token));
        }
        Ok(Value::Object(doc))
    }

    fn update(
        &mut self,
        key: &ShadowKey,
        payload: &[u8],
        now: u64,
    ) -> Result<Applied, ShadowError> {
        let request = document::parse_update(payload, &self.config)
            .map_err(|refusal| ShadowError::new(refusal, now))?;
        let UpdateRequest {
            client_token,
            version,
            state: request_state,
        } = request;
        let refuse = |code: u16, message: &str| {
            ShadowError::new(
                Refusal {
                    code,
                    message: message.to_string(),
                    client_token: client_token.clone(),
                },
                now,
            )
        };

        let previous = self.shadows.get(key).cloned().unwrap_or_default();
        if version.is_some_and(|v| v != previous.version) {
            return Err(refuse(409, messages::VERSION_CONFLICT));
        }

        let mut next = previous.clone();
        match &request_state {
            Value::Object(sections) => {
                for (name, patch) in sections {
                    let (state, meta) = match name.as_str() {
                        "desired" => (&mut next.desired, &mut next.desired_meta),
                        _ => (&mut next.reported, &mut next.reported_meta),
                    };
                    match patch {
                        Value::Object(patch) => document::merge(state, meta, patch, now),
                        _ => {
                            state.clear();
                            meta.clear();
                        }
                    }
                }
            }
            _ => {
                next.desired.clear();
                next.desired_meta.clear();
                next.reported.clear();
                next.reported_meta.clear();
            }
        }
        let size = document::section_bytes(&next.desired) + document::section_bytes(&next.reported);
        if size > self.config.max_state_bytes {
            return Err(refuse(413, messages::PAYLOAD_TOO_LARGE));
        }
        next.exists = true;
        next.version = previous.version.saturating_add(1);
        next.updated_at = now;

        let token_value = client_token.map(Value::from);
        let mut accepted = Obj::new();
        accepted.insert("state".into(), request_state.clone());
        accepted.insert(
            "metadata".into(),
            document::metadata_of(&request_state, now),
        );
        accepted.insert("timestamp".into(), Value::from(now));
        accepted.insert("version".into(), Value::from(next.version));
        if let Some(token) = &token_value {
            accepted.insert("clientToken".into(), token.clone());
        }

        let (delta_state, delta_meta) =
            document::delta(&next.desired, &next.desired_meta, &next.reported);
        let delta = (!delta_state.is_empty()).then(|| {
            let mut doc = Obj::new();
            doc.insert("state".into(), Value::Object(delta_state));
            doc.insert("metadata".into(), Value::Object(delta_meta));
            doc.insert("timestamp".into(), Value::from(now));
            doc.insert("version".into(), Value::from(next.version));
            if let Some(token) = &token_value {
                doc.insert("clientToken".into(), token.clone());
            }
            Value::Object(doc)
        });

        let mut documents = Obj::new();
        if previous.exists {
            documents.insert("previous".into(), previous.snapshot());
        }
        documents.insert("current".into(), next.snapshot());
        documents.insert("timestamp".into(), Value::from(now));
        if let Some(token) = token_value {
            documents.insert("clientToken".into(), token);
        }

        self.shadows.insert(key.clone(), next);
        Ok(Applied {
            accepted: Value::Object(accepted),
            delta,
            documents: Value::Object(documents),
        })
    }
}

impl Applied {
    /// accepted, delta (if any), documents.
    fn publishes(self, prefix: &str) -> Vec<Publish> {
        let mut out = vec![Publish {
            topic: format!("{prefix}/update/accepted"),
            payload: self.accepted.to_string().into_bytes(),
        }];
        if let Some(delta) = self.delta {
            out.push(Publish {
                topic: format!("{prefix}/update/delta"),
                payload: delta.to_string().into_bytes(),
            });
        }
        out.push(Publish {
            topic: format!("{prefix}/update/documents"),
            payload: self.documents.to_string().into_bytes(),
        });
        out
    }
}

fn not_found(key: &ShadowKey, token: Option<String>, now: u64) -> ShadowError {
    ShadowError::new(
        Refusal {
            code: 404,
            message: messages::no_shadow(&key.thing, key.name.as_deref()),
            client_token: token,
        },
        now,
    )
}
