//! Action payloads and the bounded in-order queue in front of the single worker.
//!
//! Accepted: a JSON object with a string `sentence` (other fields such as `id` and
//! `ts` are ignored), or plain UTF-8 text (the whole payload, trimmed). Rejected,
//! each with an error state and no motion:
//!
//! | code | when |
//! |---|---|
//! | `oversized` | payload longer than [`MAX_PAYLOAD_BYTES`] (1024 bytes: a spoken sentence plus the `{id, sentence, ts}` envelope fits with room to spare, and 1024 letters already take about 14 minutes to spell) |
//! | `invalid_utf8` | not UTF-8 |
//! | `empty_payload` | empty or whitespace only, or an empty/whitespace `sentence` |
//! | `malformed_json` | starts with `{` but is not valid JSON (nobody speaks a brace; spelling JSON syntax is never what was meant) |
//! | `missing_sentence` | a JSON object without `sentence` |
//! | `sentence_not_string` | `sentence` is present but not a string |
//! | `queue_full` | the queue already holds [`DEFAULT_QUEUE_CAPACITY`] messages: the **new** message is rejected, queued ones keep their order |
//!
//! Any other JSON (a number, an array, a quoted string) is not a JSON object and
//! is taken as plain text, like any payload that is not JSON.

use std::collections::VecDeque;

use crate::state::StateMessage;

/// Largest accepted payload, bytes.
pub const MAX_PAYLOAD_BYTES: usize = 1024;

/// Default queue bound: messages waiting behind the one being spelled. Each
/// sentence takes seconds to minutes, so 8 is already minutes of backlog.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8;

/// Why a payload was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// Too long.
    #[error("payload is {0} bytes, more than the {MAX_PAYLOAD_BYTES} allowed")]
    Oversized(usize),
    /// Not UTF-8.
    #[error("payload is not valid UTF-8")]
    InvalidUtf8,
    /// Nothing to spell.
    #[error("payload is empty")]
    Empty,
    /// Looks like JSON but does not parse.
    #[error("payload starts with '{{' but is not valid JSON: {0}")]
    MalformedJson(String),
    /// JSON object without `sentence`.
    #[error("JSON payload has no \"sentence\" field")]
    MissingSentence,
    /// `sentence` of another type.
    #[error("\"sentence\" is not a string")]
    SentenceNotString,
    /// The queue is at its bound.
    #[error("queue full ({0} messages waiting); message rejected")]
    QueueFull(usize),
}

impl ActionError {
    /// The stable code used in error states.
    pub fn code(&self) -> &'static str {
        match self {
            ActionError::Oversized(_) => "oversized",
            ActionError::InvalidUtf8 => "invalid_utf8",
            ActionError::Empty => "empty_payload",
            ActionError::MalformedJson(_) => "malformed_json",
            ActionError::MissingSentence => "missing_sentence",
            ActionError::SentenceNotString => "sentence_not_string",
            ActionError::QueueFull(_) => "queue_full",
        }
    }

    /// The error state to publish for it.
    pub fn to_state(&self, ts: u64) -> StateMessage {
        StateMessage::error(self.code(), self.to_string(), ts)
    }
}

/// Extracts the text to spell from an action payload.
pub fn parse_action(payload: &[u8]) -> Result<String, ActionError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ActionError::Oversized(payload.len()));
    }
    let text = std::str::from_utf8(payload).map_err(|_| ActionError::InvalidUtf8)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ActionError::Empty);
    }
    if trimmed.starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(trimmed).map_err(|e| ActionError::MalformedJson(e.to_string()))?;
        let obj = value.as_object().ok_or(ActionError::MissingSentence)?;
        let sentence = obj.get("sentence").ok_or(ActionError::MissingSentence)?;
        let sentence = sentence.as_str().ok_or(ActionError::SentenceNotString)?;
        let sentence = sentence.trim();
        if sentence.is_empty() {
            return Err(ActionError::Empty);
        }
        return Ok(sentence.to_string());
    }
    Ok(trimmed.to_string())
}

/// A queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Arrival sequence number (0, 1, ...), counting accepted messages only.
    pub seq: u64,
    /// Text to spell.
    pub text: String,
}

/// The MQTT side: parses payloads and queues them, in order, for the worker.
#[derive(Debug, Clone)]
pub struct ActionInbox {
    queue: VecDeque<Job>,
    capacity: usize,
    next_seq: u64,
}

impl Default for ActionInbox {
    fn default() -> Self {
        ActionInbox::new(DEFAULT_QUEUE_CAPACITY)
    }
}

impl ActionInbox {
    /// An inbox holding at most `capacity` waiting messages (at least 1).
    pub fn new(capacity: usize) -> ActionInbox {
        ActionInbox {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 0,
        }
    }

    /// Parses and queues a payload. On `Err` the caller publishes
    /// [`ActionError::to_state`]; nothing is queued.
    pub fn offer(&mut self, payload: &[u8]) -> Result<u64, ActionError> {
        let text = parse_action(payload)?;
        if self.queue.len() >= self.capacity {
            return Err(ActionError::QueueFull(self.queue.len()));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push_back(Job { seq, text });
        Ok(seq)
    }

    /// The oldest waiting message.
    pub fn next_job(&mut self) -> Option<Job> {
        self.queue.pop_front()
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_plain_text_are_accepted() {
        let json = br#"{"id":"5f0c","sentence":"Hello world","ts":1770550850}"#;
        assert_eq!(parse_action(json).unwrap(), "Hello world");
        assert_eq!(parse_action(b"  hi there \n").unwrap(), "hi there");
        assert_eq!(parse_action(b"42").unwrap(), "42");
        assert_eq!(parse_action(br#""quoted""#).unwrap(), "\"quoted\"");
    }

    #[test]
    fn malformed_payloads_are_rejected_with_codes() {
        let big = vec![b'a'; MAX_PAYLOAD_BYTES + 1];
        let cases: Vec<(&[u8], &str)> = vec![
            (&[0xff, 0xfe, b'a'], "invalid_utf8"),
            (b"", "empty_payload"),
            (b" \t\n ", "empty_payload"),
            (&big, "oversized"),
            (br#"{"id":"x","ts":1}"#, "missing_sentence"),
            (br#"{"sentence":42}"#, "sentence_not_string"),
            (br#"{"sentence":null}"#, "sentence_not_string"),
            (br#"{"sentence":"  "}"#, "empty_payload"),
            (br#"{"sentence":"hi""#, "malformed_json"),
        ];
        for (payload, code) in cases {
            let err = parse_action(payload).unwrap_err();
            assert_eq!(err.code(), code, "{payload:?}");
            assert!(err.to_state(1).is_error());
        }
        assert!(parse_action(&vec![b'a'; MAX_PAYLOAD_BYTES]).is_ok());
    }

    #[test]
    fn full_queue_rejects_the_new_message_and_keeps_order() {
        let mut inbox = ActionInbox::new(2);
        assert_eq!(inbox.offer(b"one").unwrap(), 0);
        assert_eq!(inbox.offer(b"two").unwrap(), 1);
        let err = inbox.offer(b"three").unwrap_err();
        assert_eq!(err, ActionError::QueueFull(2));
        assert_eq!(err.code(), "queue_full");
        assert_eq!(inbox.next_job().unwrap().text, "one");
        assert_eq!(inbox.offer(b"four").unwrap(), 2);
        assert_eq!(inbox.next_job().unwrap().text, "two");
        assert_eq!(inbox.next_job().unwrap().text, "four");
        assert!(inbox.next_job().is_none());
    }

    #[test]
    fn a_bad_payload_does_not_take_a_queue_slot() {
        let mut inbox = ActionInbox::new(1);
        assert!(inbox.offer(b"").is_err());
        assert!(inbox.is_empty());
        assert!(inbox.offer(b"ok").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..1200)) {
            let _ = parse_action(&bytes);
            let mut inbox = ActionInbox::new(1);
            let _ = inbox.offer(&bytes);
        }

        #[test]
        fn accepted_text_is_never_empty(s in ".{0,200}") {
            if let Ok(t) = parse_action(s.as_bytes()) {
                proptest::prop_assert!(!t.trim().is_empty());
            }
        }
    }
}
