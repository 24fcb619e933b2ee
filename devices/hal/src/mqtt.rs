//! An MQTT session as a device uses it.
//!
//! Methods take `&self` so that one task can wait in [`MqttClient::receive`] while
//! another publishes (join or select them with `embassy_futures`).

use alloc::string::String;
use alloc::vec::Vec;

/// MQTT quality of service levels the devices use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// At most once.
    #[default]
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
}

impl QoS {
    /// The level as its wire number.
    pub fn level(self) -> u8 {
        self as u8
    }
}

/// One application message received on a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttMessage {
    /// The topic it was published on.
    pub topic: String,
    /// The payload bytes, unchanged.
    pub payload: Vec<u8>,
    /// The QoS it was delivered with.
    pub qos: QoS,
}

/// Why an MQTT operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttError {
    /// The topic or filter is not valid MQTT (empty, wildcard in a publish topic, bad `#`).
    InvalidTopic,
    /// The payload is larger than the session allows.
    PayloadTooLarge,
    /// The session is down and the operation cannot be queued.
    Disconnected,
    /// The broker refused a subscription.
    SubscribeRefused,
}

impl core::fmt::Display for MqttError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            MqttError::InvalidTopic => "invalid MQTT topic or filter",
            MqttError::PayloadTooLarge => "payload too large",
            MqttError::Disconnected => "MQTT session disconnected",
            MqttError::SubscribeRefused => "subscription refused by the broker",
        })
    }
}

impl core::error::Error for MqttError {}

/// A connected MQTT session.
///
/// `publish` returns once the message is queued in the session (as rumqttc's and
/// esp-idf's clients do); delivery, retries for QoS 1 and link latency are the
/// session's business. `subscribe` returns once the broker acknowledged it.
#[allow(async_fn_in_trait)] // devices run on single-threaded executors; Send is not wanted
pub trait MqttClient {
    /// The client id the session connected with (the thing name on AWS IoT).
    fn client_id(&self) -> &str;

    /// Subscribe to a topic filter (`+` and `#` allowed); resolves on SUBACK.
    async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), MqttError>;

    /// Publish an application message; resolves once it is queued.
    async fn publish(&self, topic: &str, payload: &[u8], qos: QoS) -> Result<(), MqttError>;

    /// Wait for the next message on any subscription, in delivery order.
    async fn receive(&self) -> Result<MqttMessage, MqttError>;
}

/// Checks a topic name for a publish: non-empty, no wildcards, no NUL.
pub fn validate_publish_topic(topic: &str) -> Result<(), MqttError> {
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return Err(MqttError::InvalidTopic);
    }
    Ok(())
}

/// Checks a topic filter: non-empty, `#` only as the whole last level, `+` only as a whole level.
pub fn validate_topic_filter(filter: &str) -> Result<(), MqttError> {
    if filter.is_empty() || filter.contains('\0') {
        return Err(MqttError::InvalidTopic);
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let last = i + 1 == levels.len();
        if level.contains('#') && (*level != "#" || !last) {
            return Err(MqttError::InvalidTopic);
        }
        if level.contains('+') && *level != "+" {
            return Err(MqttError::InvalidTopic);
        }
    }
    Ok(())
}

/// MQTT topic matching (MQTT 3.1.1 section 4.7): does `topic` match `filter`?
///
/// Topics starting with `$` are not matched by filters starting with a wildcard.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_the_spec() {
        assert!(topic_matches("a/b", "a/b"));
        assert!(topic_matches("a/+", "a/b"));
        assert!(!topic_matches("a/+", "a/b/c"));
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(topic_matches("#", "a/b"));
        assert!(!topic_matches("#", "$aws/things/x"));
        assert!(topic_matches(
            "$aws/things/+/shadow/#",
            "$aws/things/x/shadow/get"
        ));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(!topic_matches("a/b/c", "a/b"));
        assert!(topic_matches("+/+", "/x"));
    }

    #[test]
    fn bad_topics_are_rejected() {
        assert_eq!(validate_publish_topic("a/+"), Err(MqttError::InvalidTopic));
        assert_eq!(validate_publish_topic(""), Err(MqttError::InvalidTopic));
        assert!(validate_publish_topic("a/b").is_ok());
        assert_eq!(validate_topic_filter("a/#/b"), Err(MqttError::InvalidTopic));
        assert_eq!(validate_topic_filter("a/b#"), Err(MqttError::InvalidTopic));
        assert_eq!(
            validate_topic_filter("a/b+/c"),
            Err(MqttError::InvalidTopic)
        );
        assert!(validate_topic_filter("a/+/c/#").is_ok());
    }
}
