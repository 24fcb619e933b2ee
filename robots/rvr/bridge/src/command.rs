//! Commands from the cloud: JSON on `{prefix}/{thing}/action`, parsed and
//! validated into a [`Request`] or refused with a [`CommandError`].
//!
//! Parsing never panics and bounds its work: the payload size is checked
//! before anything else, then UTF-8, then JSON. Unknown extra fields (a `ts`
//! from the browser, say) are ignored.

use alloc::format;
use alloc::string::{String, ToString};

use serde_json::{Map, Value};

use crate::config::BridgeConfig;

/// Every `action` the bridge understands, in the order the docs list them.
pub const ACTIONS: [&str; 5] = ["drive", "forward", "reverse", "turn", "cancel"];

/// Every D-pad `direction`.
pub const DIRECTIONS: [&str; 5] = ["forward", "backward", "left", "right", "stop"];

/// Longest command `id` accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// A D-pad direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both treads forward at `speed`.
    Forward,
    /// Both treads backward at `speed`.
    Backward,
    /// Spin left (counter-clockwise) in place.
    Left,
    /// Spin right (clockwise) in place.
    Right,
    /// Stop now.
    Stop,
}

impl Direction {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
            Direction::Left => "left",
            Direction::Right => "right",
            Direction::Stop => "stop",
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        Some(match s {
            "forward" => Direction::Forward,
            "backward" => Direction::Backward,
            "left" => Direction::Left,
            "right" => Direction::Right,
            "stop" => Direction::Stop,
            _ => return None,
        })
    }
}

/// What a valid command asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// D-pad: drive in `direction` at `speed_mps` while commands keep coming.
    Drive {
        /// Direction.
        direction: Direction,
        /// Speed, m/s (the default filled in when absent).
        speed_mps: f32,
    },
    /// Drive `distance_m` straight forward (or backward when `reverse`), then stop.
    Move {
        /// `reverse` rather than `forward`.
        reverse: bool,
        /// Distance, m (> 0).
        distance_m: f32,
        /// Cruise speed, m/s (the default filled in when absent).
        speed_mps: f32,
    },
    /// Turn in place by `degrees` (positive = counter-clockwise, to the left).
    Turn {
        /// Angle, deg (non-zero).
        degrees: f32,
    },
    /// Stop: abort the running maneuver, drop the queue, stop the D-pad.
    Cancel,
}

impl Action {
    /// The action's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Drive { .. } => "drive",
            Action::Move { reverse: false, .. } => "forward",
            Action::Move { reverse: true, .. } => "reverse",
            Action::Turn { .. } => "turn",
            Action::Cancel => "cancel",
        }
    }
}

/// A valid command.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The command's `id` (an integer id is kept as its decimal text).
    pub id: Option<String>,
    /// What to do.
    pub action: Action,
}

/// Machine-readable reason a command was refused (the `code` of an error message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Longer than [`BridgeConfig::max_payload_bytes`]; not parsed.
    PayloadTooLarge,
    /// The payload is not UTF-8.
    NotUtf8,
    /// The payload is not JSON.
    InvalidJson,
    /// The JSON is not an object.
    NotAnObject,
    /// `id` is not a string (1..=128 bytes) or an integer.
    InvalidId,
    /// No `action`, or it is not a string.
    MissingAction,
    /// `action` is not one of [`ACTIONS`].
    UnknownAction,
    /// A required field is missing.
    MissingField,
    /// A field has the wrong type or an unknown value.
    InvalidValue,
    /// A number is outside its allowed range.
    OutOfRange,
    /// A maneuver is running and the bridge is configured not to queue.
    Busy,
    /// The maneuver queue is full.
    QueueFull,
}

impl ErrorCode {
    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::NotUtf8 => "not_utf8",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::NotAnObject => "not_an_object",
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::MissingAction => "missing_action",
            ErrorCode::UnknownAction => "unknown_action",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::OutOfRange => "out_of_range",
            ErrorCode::Busy => "busy",
            ErrorCode::QueueFull => "queue_full",
        }
    }
}

/// A refused command: what to put in the `"type":"error"` message.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandError {
    /// The command's id, if it had a valid one.
    pub id: Option<String>,
    /// The command's action, if it named a known one.
    pub action: Option<&'static str>,
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable reason, naming the field.
    pub message: String,
}

struct Ctx {
    id: Option<String>,
    action: Option<&'static str>,
}

impl Ctx {
    fn err(&self, code: ErrorCode, message: impl Into<String>) -> CommandError {
        CommandError {
            id: self.id.clone(),
            action: self.action,
            code,
            message: message.into(),
        }
    }
}

/// Parses and validates one command payload against the limits in `config`.
pub fn parse_command(payload: &[u8], config: &BridgeConfig) -> Result<Request, CommandError> {
    let mut ctx = Ctx {
        id: None,
        action: None,
    };
    if payload.len() > config.max_payload_bytes {
        return Err(ctx.err(
            ErrorCode::PayloadTooLarge,
            format!(
                "payload of {} bytes is larger than the {} byte limit",
                payload.len(),
                config.max_payload_bytes
            ),
        ));
    }
    let text = core::str::from_utf8(payload)
        .map_err(|_| ctx.err(ErrorCode::NotUtf8, "payload is not UTF-8"))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ctx.err(ErrorCode::InvalidJson, format!("payload is not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(ctx.err(ErrorCode::NotAnObject, "command must be a JSON object"));
    };
    ctx.id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => Some(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Some(_) => {
            return Err(ctx.err(
                ErrorCode::InvalidId,
                format!("id must be a string of 1 to {MAX_ID_LEN} bytes or an integer"),
            ));
        }
    };
    let action = match obj.get("action") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ctx.err(ErrorCode::MissingAction, "action must be a string")),
        None => return Err(ctx.err(ErrorCode::MissingAction, "missing field action")),
    };
    let Some(&known) = ACTIONS.iter().find(|a| **a == action) else {
        let shown: String = action.chars().take(32).collect();
        return Err(ctx.err(
            ErrorCode::UnknownAction,
            format!(
                "unknown action \"{shown}\" (expected drive, forward, reverse, turn or cancel)"
            ),
        ));
    };
    ctx.action = Some(known);
    let action = match known {
        "drive" => {
            let direction = match obj.get("direction") {
                None => return Err(ctx.err(ErrorCode::MissingField, "missing field direction")),
                Some(Value::String(s)) => Direction::parse(s).ok_or_else(|| {
                    let shown: String = s.chars().take(32).collect();
                    ctx.err(
                        ErrorCode::InvalidValue,
                        format!(
                            "unknown direction \"{shown}\" (expected forward, backward, left, right or stop)"
                        ),
                    )
                })?,
                Some(_) => {
                    return Err(ctx.err(ErrorCode::InvalidValue, "direction must be a string"));
                }
            };
            let speed_mps = optional_positive(
                &ctx,
                &obj,
                "speed",
                config.max_dpad_speed_mps,
                config.dpad_default_speed_mps,
            )?;
            Action::Drive {
                direction,
                speed_mps,
            }
        }
        "forward" | "reverse" => {
            let distance_m = match obj.get("distance_m") {
                None => return Err(ctx.err(ErrorCode::MissingField, "missing field distance_m")),
                Some(v) => positive(&ctx, "distance_m", v, config.max_distance_m)?,
            };
            let speed_mps = optional_positive(
                &ctx,
                &obj,
                "speed",
                config.max_maneuver_speed_mps,
                config.cruise_speed_mps,
            )?;
            // Slower than the creep speed would look like a blocked robot.
            if speed_mps < config.min_speed_mps {
                return Err(ctx.err(
                    ErrorCode::OutOfRange,
                    format!(
                        "speed must be at least {} and at most {}",
                        config.min_speed_mps, config.max_maneuver_speed_mps
                    ),
                ));
            }
            Action::Move {
                reverse: known == "reverse",
                distance_m,
                speed_mps,
            }
        }
        "turn" => {
            let degrees = match obj.get("degrees") {
                None => return Err(ctx.err(ErrorCode::MissingField, "missing field degrees")),
                Some(v) => number(&ctx, "degrees", v)?,
            };
            if degrees == 0.0 {
                return Err(ctx.err(ErrorCode::OutOfRange, "degrees must not be 0"));
            }
            if crate::maneuver::abs(degrees) > config.max_turn_deg {
                return Err(ctx.err(
                    ErrorCode::OutOfRange,
                    format!("degrees must be between -{0} and {0}", config.max_turn_deg),
                ));
            }
            Action::Turn { degrees }
        }
        _ => Action::Cancel,
    };
    Ok(Request { id: ctx.id, action })
}

fn number(ctx: &Ctx, field: &str, v: &Value) -> Result<f32, CommandError> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x.abs() < 1e30 => Ok(x as f32),
        Some(_) => Err(ctx.err(ErrorCode::OutOfRange, format!("{field} is out of range"))),
        None => Err(ctx.err(ErrorCode::InvalidValue, format!("{field} must be a number"))),
    }
}

fn positive(ctx: &Ctx, field: &str, v: &Value, max: f32) -> Result<f32, CommandError> {
    let x = number(ctx, field, v)?;
    if x > 0.0 && x <= max {
        Ok(x)
    } else {
        Err(ctx.err(
            ErrorCode::OutOfRange,
            format!("{field} must be greater than 0 and at most {max}"),
        ))
    }
}

fn optional_positive(
    ctx: &Ctx,
    obj: &Map<String, Value>,
    field: &str,
    max: f32,
    default: f32,
) -> Result<f32, CommandError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => positive(ctx, field, v, max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, CommandError> {
        parse_command(s.as_bytes(), &BridgeConfig::default())
    }

    fn code(s: &str) -> ErrorCode {
        parse(s).unwrap_err().code
    }

    #[test]
    fn valid_commands_parse_with_defaults_filled_in() {
        assert_eq!(
            parse(r#"{"id":"a1","action":"forward","distance_m":1.0}"#).unwrap(),
            Request {
                id: Some("a1".into()),
                action: Action::Move {
                    reverse: false,
                    distance_m: 1.0,
                    speed_mps: 0.4
                }
            }
        );
        assert_eq!(
            parse(r#"{"id":7,"action":"reverse","distance_m":0.5,"speed":0.2,"ts":1780000000}"#)
                .unwrap(),
            Request {
                id: Some("7".into()),
                action: Action::Move {
                    reverse: true,
                    distance_m: 0.5,
                    speed_mps: 0.2
                }
            }
        );
        assert_eq!(
            parse(r#"{"action":"turn","degrees":-90}"#).unwrap().action,
            Action::Turn { degrees: -90.0 }
        );
        assert_eq!(
            parse(r#"{"action":"drive","direction":"left"}"#)
                .unwrap()
                .action,
            Action::Drive {
                direction: Direction::Left,
                speed_mps: 0.3
            }
        );
        assert_eq!(
            parse(r#"{"action":"drive","direction":"forward","speed":2}"#)
                .unwrap()
                .action,
            Action::Drive {
                direction: Direction::Forward,
                speed_mps: 2.0
            }
        );
        assert_eq!(
            parse(r#"{"id":"c","action":"cancel"}"#).unwrap().action,
            Action::Cancel
        );
    }

    #[test]
    fn malformed_commands_are_refused_with_a_code_and_the_id() {
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::NotAnObject);
        assert_eq!(code(r#"{"id":"x"}"#), ErrorCode::MissingAction);
        assert_eq!(code(r#"{"action":5}"#), ErrorCode::MissingAction);
        assert_eq!(code(r#"{"action":"fly"}"#), ErrorCode::UnknownAction);
        assert_eq!(
            code(r#"{"action":"FORWARD","distance_m":1}"#),
            ErrorCode::UnknownAction
        );
        assert_eq!(code(r#"{"action":"forward"}"#), ErrorCode::MissingField);
        assert_eq!(
            code(r#"{"action":"forward","distance_m":"NaN"}"#),
            ErrorCode::InvalidValue
        );
        assert_eq!(
            code(r#"{"action":"forward","distance_m":NaN}"#),
            ErrorCode::InvalidJson
        );
        assert_eq!(
            code(r#"{"action":"forward","distance_m":0}"#),
            ErrorCode::OutOfRange
        );
        assert_eq!(
            code(r#"{"action":"forward","distance_m":-1}"#),
            ErrorCode::OutOfRange
        );
        assert_eq!(
            code(r#"{"action":"forward","distance_m":10.01}"#),
            ErrorCode::OutOfRange
        );
        assert_eq!(
            code(r#"{"action":"forward","distance_m":1e300}"#),
            ErrorCode::OutOfRange
        );
        assert_eq!(
            code(r#"{"action":"forward","distance_m":1,"speed":1.5}"#),
            ErrorCode::OutOfRange
        );
        assert_eq!(code(r#"{"action":"turn"}"#), ErrorCode::MissingField);
        assert_eq!(
            code(r#"{"action":"turn","degrees":0}"#),
            ErrorCode::OutOfRange
        );
        assert_eq!(
            code(r#"{"action":"turn","degrees":3600.5}"#),
            ErrorCode::OutOfRange
        );
        assert_eq!(
            code(r#"{"action":"turn","degrees":true}"#),
            ErrorCode::InvalidValue
        );
        assert_eq!(code(r#"{"action":"drive"}"#), ErrorCode::MissingField);
        assert_eq!(
            code(r#"{"action":"drive","direction":"up"}"#),
            ErrorCode::InvalidValue
        );
        assert_eq!(
            code(r#"{"action":"drive","direction":"forward","speed":0}"#),
            ErrorCode::OutOfRange
        );
        assert_eq!(
            code(r#"{"action":"drive","direction":"forward","speed":2.5}"#),
            ErrorCode::OutOfRange
        );
        assert_eq!(code(r#"{"id":{},"action":"cancel"}"#), ErrorCode::InvalidId);
        assert_eq!(code(r#"{"id":"","action":"cancel"}"#), ErrorCode::InvalidId);
        assert_eq!(
            code(r#"{"id":1.5,"action":"cancel"}"#),
            ErrorCode::InvalidId
        );
        assert_eq!(
            parse_command(&[0x7B, 0xFF, 0x7D], &BridgeConfig::default())
                .unwrap_err()
                .code,
            ErrorCode::NotUtf8
        );
        let err = parse(r#"{"id":"m9","action":"forward","distance_m":-2}"#).unwrap_err();
        assert_eq!(err.id.as_deref(), Some("m9"));
        assert_eq!(err.action, Some("forward"));
        assert!(err.message.contains("distance_m"), "{}", err.message);
    }

    #[test]
    fn oversized_payloads_are_refused_unparsed() {
        let config = BridgeConfig {
            max_payload_bytes: 16,
            ..BridgeConfig::default()
        };
        let err = parse_command(br#"{"id":"x","action":"cancel"}"#, &config).unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
        assert_eq!(err.id, None);
    }

    #[test]
    fn long_unknown_actions_are_shortened_in_the_message() {
        let long = "x".repeat(500);
        let err = parse(&format!(r#"{{"action":"{long}"}}"#)).unwrap_err();
        assert!(err.message.len() < 120, "{}", err.message);
    }
}
