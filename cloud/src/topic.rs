//! Topics as they pass through rumqttd.
//!
//! rumqttd 0.20 refuses every subscription whose filter starts with `$` (other
//! than `$share`) and routes no topic that starts with `$`, but AWS IoT's
//! reserved topics (`$aws/things/...`) must work. The broker therefore carries
//! a leading `$` under the private prefix [`RESERVED_PREFIX`] inside rumqttd and
//! restores it on the way out. The MQTT rule that a filter starting with a
//! wildcard does not match a `$` topic is applied on the original names
//! ([`spec_matches`]); rumqttd's deliveries that break it are dropped.

/// What a leading `$` becomes inside rumqttd. Devices may not publish or
/// subscribe under it (the network rejects such topics).
pub const RESERVED_PREFIX: &str = "twinrig-reserved-dollar/";

/// The name rumqttd sees for a topic or filter.
pub fn encode(topic: &str) -> String {
    match topic.strip_prefix('$') {
        Some(rest) => format!("{RESERVED_PREFIX}{rest}"),
        None => topic.to_string(),
    }
}

/// The original name of a topic that came out of rumqttd.
pub fn decode(topic: &str) -> String {
    match topic.strip_prefix(RESERVED_PREFIX) {
        Some(rest) => format!("${rest}"),
        None => topic.to_string(),
    }
}

/// MQTT matching (3.1.1 section 4.7), including 4.7.2: wildcard-first filters
/// skip `$` topics. On encoded names (no leading `$`) it is the plain matching
/// rumqttd applies.
pub use twinrig_hal::mqtt::topic_matches as spec_matches;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_topics_round_trip() {
        for t in ["$aws/things/x/shadow/get", "plain/topic", "$SYS"] {
            assert_eq!(decode(&encode(t)), t);
        }
        assert!(!encode("$aws/x").starts_with('$'));
    }

    #[test]
    fn wildcard_first_filters_skip_dollar_topics() {
        assert!(!spec_matches("#", "$aws/things/x"));
        assert!(!spec_matches("+/things/x", "$aws/things/x"));
        assert!(spec_matches("$aws/things/+", "$aws/things/x"));
        assert!(spec_matches("#", &encode("$aws/things/x")));
    }
}
