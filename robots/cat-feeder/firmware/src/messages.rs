//! What the feeder publishes on its states topic: JSON objects with a
//! `"type"` of `state`, `fed` or `error`. The crate docs show each shape.

use alloc::string::String;

use serde::Serialize;

/// `"on"` / `"off"` per motor, as the state shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MotorsField {
    /// Left bowl motor.
    pub left: &'static str,
    /// Right bowl motor.
    pub right: &'static str,
}

/// `"type":"state"`: published once per loop turn.
#[derive(Debug, Clone, Serialize)]
pub struct StateMessage<'a> {
    /// Always `"state"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Hopper fill, percent (0-100); null when the sensor gave no valid reading.
    pub food_capacity: Option<u8>,
    /// Why `food_capacity` is null; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level_error: Option<&'static str>,
    /// The configured location.
    pub device_location: &'a str,
    /// Feeds completed since boot.
    pub feeds: u32,
    /// The motor pins as last driven.
    pub motors: MotorsField,
    /// Action payloads refused since boot.
    pub rejected: u32,
    /// Unix seconds.
    pub ts: u64,
    /// Device clock, ms since boot.
    pub uptime_ms: u64,
}

/// `"type":"fed"`: a feed finished (the reference prints "fed").
#[derive(Debug, Clone, Serialize)]
pub struct FedMessage {
    /// Always `"fed"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `SINGLE`, `DOUBLE` or `LONG`.
    pub event: &'static str,
    /// The bowls filled.
    pub bowls: &'static [&'static str],
    /// Feeds completed since boot, this one included.
    pub feeds: u32,
    /// When the motors started, ms since boot.
    pub started_ms: u64,
    /// Unix seconds (now: after the motors and the pause).
    pub ts: u64,
    /// Device clock, ms since boot.
    pub uptime_ms: u64,
}

/// `"type":"error"`: a refused payload or a motor pin failure.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorMessage<'a> {
    /// Always `"error"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Machine-readable reason ([`crate::ErrorCode::as_str`]).
    pub code: &'static str,
    /// Human-readable reason.
    pub error: &'a str,
    /// The event concerned (motor pin failures), or null.
    pub event: Option<&'static str>,
    /// Unix seconds.
    pub ts: u64,
    /// Device clock, ms since boot.
    pub uptime_ms: u64,
}

/// Serializing these plain structs cannot fail; an empty string would only
/// stand for a serializer bug, and is never a panic.
pub(crate) fn to_json<T: Serialize>(message: &T) -> String {
    serde_json::to_string(message).unwrap_or_default()
}
