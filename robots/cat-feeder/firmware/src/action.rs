//! Click events from the cloud: `{"event": "SINGLE" | "DOUBLE" | "LONG"}` on
//! the action topic, parsed into an [`Event`] or refused with an
//! [`ActionError`].
//!
//! Parsing never panics and bounds its work: the size is checked before
//! anything else, then UTF-8, then the nesting depth (so a small MCU stack
//! never recurses deeply), then JSON. Extra fields are ignored; the event
//! name is case-sensitive (assumed: the reference compares the strings as
//! sent by the button's Lambda, which sends them upper-case).

use alloc::format;
use alloc::string::String;

use serde_json::Value;

use crate::feeder::Motors;

/// Every event name, in the order the docs list them.
pub const EVENTS: [&str; 3] = ["SINGLE", "DOUBLE", "LONG"];

/// Deepest `{`/`[` nesting parsed; deeper payloads are refused unparsed.
pub const MAX_NESTING: usize = 8;

/// A click of the feeder's button, as the cloud forwards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// Single click: the left bowl.
    Single,
    /// Double click: the right bowl.
    Double,
    /// Long press: both bowls at once.
    Long,
}

impl Event {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Single => "SINGLE",
            Event::Double => "DOUBLE",
            Event::Long => "LONG",
        }
    }

    /// The motors this event runs.
    pub fn motors(self) -> Motors {
        match self {
            Event::Single => Motors {
                left: true,
                right: false,
            },
            Event::Double => Motors {
                left: false,
                right: true,
            },
            Event::Long => Motors {
                left: true,
                right: true,
            },
        }
    }

    /// The bowls this event fills, as named in `fed` messages.
    pub fn bowls(self) -> &'static [&'static str] {
        match self {
            Event::Single => &["left"],
            Event::Double => &["right"],
            Event::Long => &["left", "right"],
        }
    }

    fn parse(name: &str) -> Option<Event> {
        Some(match name {
            "SINGLE" => Event::Single,
            "DOUBLE" => Event::Double,
            "LONG" => Event::Long,
            _ => return None,
        })
    }
}

/// Machine-readable reason in an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Longer than [`crate::FeederConfig::max_payload_bytes`]; not parsed.
    PayloadTooLarge,
    /// The payload is not UTF-8.
    NotUtf8,
    /// Empty, not JSON, or nested deeper than [`MAX_NESTING`].
    InvalidJson,
    /// JSON, but not an object.
    NotAnObject,
    /// No `event` field.
    MissingEvent,
    /// `event` is not a string.
    InvalidEvent,
    /// `event` is a string but not one of [`EVENTS`].
    UnknownEvent,
    /// A motor driver pin could not be set (not a payload problem).
    MotorPin,
}

impl ErrorCode {
    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::NotUtf8 => "not_utf8",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::NotAnObject => "not_an_object",
            ErrorCode::MissingEvent => "missing_event",
            ErrorCode::InvalidEvent => "invalid_event",
            ErrorCode::UnknownEvent => "unknown_event",
            ErrorCode::MotorPin => "motor_pin",
        }
    }
}

/// A refused action payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionError {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> ActionError {
    ActionError {
        code,
        message: message.into(),
    }
}

/// How the event name shows up in an error: at most 32 characters.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(32).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

/// The deepest `{`/`[` nesting outside strings (structural bytes are ASCII,
/// so scanning bytes of valid UTF-8 is exact).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses one action payload; payloads longer than `max_payload_bytes` are
/// refused without being read.
pub fn parse_action(payload: &[u8], max_payload_bytes: usize) -> Result<Event, ActionError> {
    if payload.len() > max_payload_bytes {
        return Err(too_large(payload.len(), max_payload_bytes));
    }
    let text = core::str::from_utf8(payload).map_err(|e| {
        refuse(
            ErrorCode::NotUtf8,
            format!("payload is not UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    if text.trim().is_empty() {
        return Err(refuse(ErrorCode::InvalidJson, "payload is empty"));
    }
    if nesting_depth(text) > MAX_NESTING {
        return Err(refuse(
            ErrorCode::InvalidJson,
            format!("payload is nested deeper than {MAX_NESTING} levels"),
        ));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| refuse(ErrorCode::InvalidJson, format!("payload is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(refuse(
            ErrorCode::NotAnObject,
            r#"payload must be a JSON object like {"event":"SINGLE"}"#,
        ));
    };
    match fields.get("event") {
        None => Err(refuse(ErrorCode::MissingEvent, "missing field event")),
        Some(Value::String(name)) => Event::parse(name).ok_or_else(|| {
            refuse(
                ErrorCode::UnknownEvent,
                format!(
                    "unknown event {:?} (expected SINGLE, DOUBLE or LONG)",
                    shown(name)
                ),
            )
        }),
        Some(other) => Err(refuse(
            ErrorCode::InvalidEvent,
            format!("event must be a string, not {}", kind(other)),
        )),
    }
}

/// The refusal of a payload of `len` bytes over the `limit`.
pub(crate) fn too_large(len: usize, limit: usize) -> ActionError {
    refuse(
        ErrorCode::PayloadTooLarge,
        format!("payload of {len} bytes is larger than the {limit} byte limit"),
    )
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn code(payload: &[u8]) -> ErrorCode {
        parse_action(payload, 256).unwrap_err().code
    }

    #[test]
    fn the_three_events_parse_and_extra_fields_are_ignored() {
        for (payload, event) in [
            (&br#"{"event":"SINGLE"}"#[..], Event::Single),
            (br#"{"event": "DOUBLE"}"#, Event::Double),
            (br#" { "event" : "LONG" } "#, Event::Long),
            (
                br#"{"event":"SINGLE","ts":1780000000,"source":{"button":"G030"}}"#,
                Event::Single,
            ),
            // An escaped letter is the same string.
            (br#"{"event":"SINGL\u0045"}"#, Event::Single),
            // Duplicate keys: the last one counts (serde_json's rule).
            (br#"{"event":"LONG","event":"DOUBLE"}"#, Event::Double),
        ] {
            assert_eq!(parse_action(payload, 256), Ok(event), "{payload:?}");
        }
    }

    #[test]
    fn events_map_to_motors_and_bowls() {
        assert_eq!(
            Event::Single.motors(),
            Motors {
                left: true,
                right: false
            }
        );
        assert_eq!(
            Event::Double.motors(),
            Motors {
                left: false,
                right: true
            }
        );
        assert_eq!(
            Event::Long.motors(),
            Motors {
                left: true,
                right: true
            }
        );
        assert_eq!(Event::Long.bowls(), ["left", "right"]);
        let names: Vec<&str> = [Event::Single, Event::Double, Event::Long]
            .iter()
            .map(|e| e.as_str())
            .collect();
        assert_eq!(names, EVENTS);
    }

    #[test]
    fn every_bad_payload_gets_its_code() {
        use ErrorCode::*;
        let cases: [(&[u8], ErrorCode); 27] = [
            (b"", InvalidJson),
            (b"   \n", InvalidJson),
            (b"SINGLE", InvalidJson),
            (b"{", InvalidJson),
            (br#"{"event":"SINGLE""#, InvalidJson),
            (br#"{"event":"SINGLE",}"#, InvalidJson),
            (br#"{event:"SINGLE"}"#, InvalidJson),
            (br#"{'event':'SINGLE'}"#, InvalidJson),
            (br#"{"event":"SINGLE"} {"event":"LONG"}"#, InvalidJson),
            (b"\xff\xfe{}", NotUtf8),
            (b"{\"event\":\"SINGLE\xc3\"}", NotUtf8),
            (b"null", NotAnObject),
            (b"42", NotAnObject),
            (br#""SINGLE""#, NotAnObject),
            (br#"["SINGLE"]"#, NotAnObject),
            (b"{}", MissingEvent),
            (br#"{"Event":"SINGLE"}"#, MissingEvent),
            (
                br#"{"deviceEvent":{"buttonClicked":{"clickType":"SINGLE"}}}"#,
                MissingEvent,
            ),
            (br#"{"event":null}"#, InvalidEvent),
            (br#"{"event":1}"#, InvalidEvent),
            (br#"{"event":true}"#, InvalidEvent),
            (br#"{"event":["SINGLE"]}"#, InvalidEvent),
            (br#"{"event":{"type":"SINGLE"}}"#, InvalidEvent),
            (br#"{"event":"single"}"#, UnknownEvent),
            (br#"{"event":" SINGLE"}"#, UnknownEvent),
            (br#"{"event":""}"#, UnknownEvent),
            (br#"{"event":"TRIPLE"}"#, UnknownEvent),
        ];
        for (payload, expected) in cases {
            assert_eq!(
                code(payload),
                expected,
                "{:?}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn size_is_checked_before_anything_else() {
        let mut big = Vec::from(&br#"{"event":"SINGLE","pad":""#[..]);
        big.resize(300, b'x');
        big.extend_from_slice(b"\"}");
        let err = parse_action(&big, 256).unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
        assert_eq!(
            err.message,
            "payload of 302 bytes is larger than the 256 byte limit"
        );
        // Exactly at the limit is parsed.
        let exact = br#"{"event":"LONG"}"#;
        assert_eq!(parse_action(exact, exact.len()), Ok(Event::Long));
        assert_eq!(code(&[0xff; 200][..]), ErrorCode::NotUtf8);
        assert_eq!(
            parse_action(&[0xff; 300], 256).unwrap_err().code,
            ErrorCode::PayloadTooLarge
        );
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = |n: usize| {
            let mut s = String::from(r#"{"event":"SINGLE","x":"#);
            for _ in 0..n {
                s.push('[');
            }
            for _ in 0..n {
                s.push(']');
            }
            s.push('}');
            s
        };
        // The object itself is one level.
        assert_eq!(
            parse_action(deep(MAX_NESTING - 1).as_bytes(), 256),
            Ok(Event::Single)
        );
        let err = parse_action(deep(MAX_NESTING).as_bytes(), 256).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidJson);
        assert!(
            err.message.contains("nested deeper than 8"),
            "{}",
            err.message
        );
        // Brackets inside strings do not count, escaped quotes do not end them.
        let in_string = r#"{"event":"DOUBLE","note":"[[[[[[[[[[ \" {{{{{{{{{{"}"#;
        assert_eq!(parse_action(in_string.as_bytes(), 256), Ok(Event::Double));
        // Unbalanced closers never underflow.
        assert_eq!(code(b"]]]]}}}}"), ErrorCode::InvalidJson);
    }

    #[test]
    fn messages_name_the_problem_and_truncate_what_they_echo() {
        let err = parse_action(br#"{"event":"TRIPLE"}"#, 256).unwrap_err();
        assert_eq!(
            err.message,
            r#"unknown event "TRIPLE" (expected SINGLE, DOUBLE or LONG)"#
        );
        let long = format!(r#"{{"event":"{}"}}"#, "é".repeat(60));
        let err = parse_action(long.as_bytes(), 256).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnknownEvent);
        assert!(
            err.message.contains(&format!("\"{}...\"", "é".repeat(32))),
            "{}",
            err.message
        );
        let err = parse_action(br#"{"event":7}"#, 256).unwrap_err();
        assert_eq!(err.message, "event must be a string, not a number");
        let err = parse_action(b"\x80", 256).unwrap_err();
        assert_eq!(err.message, "payload is not UTF-8 (byte 0)");
        let err = parse_action(b"nope", 256).unwrap_err();
        assert!(
            err.message.starts_with("payload is not JSON: "),
            "{}",
            err.message
        );
    }
}
