//! Every setting of the feeder, with its default and where the default
//! comes from.

use alloc::string::String;
use core::fmt;

use twinrig_hal::QoS;
use twinrig_hal::mqtt::validate_publish_topic;

/// The placeholder replaced by the thing name in topic templates.
pub const THING_PLACEHOLDER: &str = "{thing}";

/// Which waiting action messages one MQTT service handles.
///
/// The firmware services MQTT once per loop turn, between publishing the
/// state and the 3 s sleep; every message it handles there blocks the loop
/// for the whole feed. The two Arduino MQTT libraries differ in how many
/// messages one `client.loop()` hands to the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Servicing {
    /// Every message already waiting when the service starts, in order;
    /// messages arriving meanwhile wait for the next turn. This is
    /// 256dpi/arduino-mqtt: `loop()` takes `available()` bytes once and
    /// `lwmqtt_yield` dispatches every packet in them (`src/MQTTClient.h`).
    /// The default (assumed): the reference firmware's shape (publish,
    /// `client.loop()`, `delay`, a `time: millis` state) is AWS's ESP32
    /// Arduino example, which uses that library.
    #[default]
    AllWaiting,
    /// At most one message per turn: knolleary/PubSubClient's `loop()`
    /// reads one packet when `available()`.
    OnePerTurn,
}

/// Settings of the cat feeder firmware. Start from
/// [`FeederConfig::default`] (the reference's topics) and override fields.
///
/// Durations are milliseconds (`_ms`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeederConfig {
    // ---- MQTT ----
    /// Topic the click events arrive on. `{thing}` is replaced by the thing
    /// name, so `cat-feeder/{thing}/action` gives each feeder its own
    /// topic. Default `cat-feeder/action` (the reference's, shared by every
    /// feeder of an account).
    pub action_topic: String,
    /// Topic every message of the feeder goes to (`{thing}` as above).
    /// Default `cat-feeder/states` (the reference's).
    pub states_topic: String,
    /// The thing name for `{thing}`; `None` (default) takes the MQTT client
    /// id, which is the thing name on AWS IoT (the reference connects with
    /// client id = thing name).
    pub thing_name: Option<String>,
    /// QoS of the action subscription. Default 0: the Arduino libraries
    /// subscribe at QoS 0 unless told otherwise (assumed; the reference
    /// does not say).
    pub action_qos: QoS,
    /// QoS of the periodic states. Default 0, as the Arduino libraries
    /// publish (assumed); a lost state is replaced 3 s later.
    pub state_qos: QoS,
    /// QoS of `fed` and `error` messages: each says something the next
    /// state does not repeat. Default 1.
    pub report_qos: QoS,
    /// Largest action payload parsed, bytes. Default 256 (assumed: the
    /// MQTT buffer size of AWS's ESP32 Arduino example). Longer ones are
    /// refused with `payload_too_large` without being parsed or stored.
    /// (The Arduino library would instead fail the read and drop the
    /// connection; a careful firmware answers and stays connected.)
    pub max_payload_bytes: usize,
    /// Action messages the firmware holds while its loop is blocked,
    /// besides what the MQTT session itself buffers. Default 16 (assumed;
    /// a real board holds far more in its TCP window). Beyond this the
    /// firmware stops taking messages from the session until it has
    /// handled some, so nothing is lost, only delayed.
    pub inbox_len: usize,
    /// How many waiting messages one MQTT service handles. Default
    /// [`Servicing::AllWaiting`].
    pub servicing: Servicing,
    /// Pause between attempts to subscribe when the broker refuses, ms
    /// (default 1000).
    pub subscribe_retry_ms: u32,

    // ---- The loop ----
    /// The sleep at the end of each loop turn, ms (default 3000, the
    /// reference's `delay(3000)`). The state period is this plus the time
    /// the turn's feeds take.
    pub loop_sleep_ms: u32,
    /// How long the bowl motors run per feed, ms (default 10000, the
    /// reference's `delay(10000)` with the pins high).
    pub motor_run_ms: u32,
    /// The pause after the motors stop, before "fed", ms (default 2000,
    /// the reference's `delay(2000)`).
    pub after_feed_pause_ms: u32,

    // ---- The state ----
    /// `device_location` in every state. Default `home` (assumed: the
    /// reference publishes a configured string and gives no value).
    pub device_location: String,
    /// Unix time = `epoch_offset_s` + clock seconds; stands in for SNTP
    /// (default 0: `ts` is then seconds since boot).
    pub epoch_offset_s: u64,
}

impl Default for FeederConfig {
    fn default() -> Self {
        FeederConfig {
            action_topic: String::from("cat-feeder/action"),
            states_topic: String::from("cat-feeder/states"),
            thing_name: None,
            action_qos: QoS::AtMostOnce,
            state_qos: QoS::AtMostOnce,
            report_qos: QoS::AtLeastOnce,
            max_payload_bytes: 256,
            inbox_len: 16,
            servicing: Servicing::AllWaiting,
            subscribe_retry_ms: 1000,
            loop_sleep_ms: 3000,
            motor_run_ms: 10_000,
            after_feed_pause_ms: 2000,
            device_location: String::from("home"),
            epoch_offset_s: 0,
        }
    }
}

impl FeederConfig {
    /// The reference's topic shape under another prefix:
    /// `{prefix}/action` and `{prefix}/states`.
    pub fn with_prefix(prefix: &str) -> FeederConfig {
        FeederConfig {
            action_topic: alloc::format!("{prefix}/action"),
            states_topic: alloc::format!("{prefix}/states"),
            ..FeederConfig::default()
        }
    }

    /// One topic pair per feeder, for several feeders on one broker:
    /// `{prefix}/{thing}/action` and `{prefix}/{thing}/states`.
    pub fn per_device(prefix: &str) -> FeederConfig {
        FeederConfig {
            action_topic: alloc::format!("{prefix}/{THING_PLACEHOLDER}/action"),
            states_topic: alloc::format!("{prefix}/{THING_PLACEHOLDER}/states"),
            ..FeederConfig::default()
        }
    }

    /// The topics of the feeder whose MQTT client id is `client_id`, after
    /// checking every setting.
    pub fn topics(&self, client_id: &str) -> Result<Topics, ConfigError> {
        self.check()?;
        let thing = self.thing_name.as_deref().unwrap_or(client_id);
        let uses_thing = self.action_topic.contains(THING_PLACEHOLDER)
            || self.states_topic.contains(THING_PLACEHOLDER);
        // A thing name that is not one topic level would change the topic's shape.
        if uses_thing && (thing.is_empty() || thing.contains(['/', '+', '#', '\0'])) {
            return Err(ConfigError::InvalidThingName(String::from(thing)));
        }
        let action = self.action_topic.replace(THING_PLACEHOLDER, thing);
        let states = self.states_topic.replace(THING_PLACEHOLDER, thing);
        for (which, topic) in [("action_topic", &action), ("states_topic", &states)] {
            if validate_publish_topic(topic).is_err() {
                return Err(ConfigError::InvalidTopic {
                    which,
                    topic: topic.clone(),
                });
            }
        }
        Ok(Topics { action, states })
    }

    /// Checks the settings that do not depend on the thing name.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.loop_sleep_ms == 0 {
            // The sleep is the loop's only guaranteed pause point.
            return Err(ConfigError::Zero("loop_sleep_ms"));
        }
        if self.inbox_len == 0 {
            return Err(ConfigError::Zero("inbox_len"));
        }
        if self.max_payload_bytes == 0 {
            return Err(ConfigError::Zero("max_payload_bytes"));
        }
        Ok(())
    }
}

/// The two topics of one feeder, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Where click events arrive (subscribed).
    pub action: String,
    /// Where states, `fed` and `error` messages go.
    pub states: String,
}

/// A setting the firmware cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A topic is empty or has a wildcard or NUL once `{thing}` is replaced.
    InvalidTopic {
        /// `action_topic` or `states_topic`.
        which: &'static str,
        /// The resolved topic.
        topic: String,
    },
    /// The thing name is empty or not a single topic level (`/`, `+`, `#`).
    InvalidThingName(String),
    /// A setting that must be at least 1 is 0.
    Zero(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::InvalidTopic { which, topic } => {
                write!(f, "{which} {topic:?} is not a valid MQTT topic name")
            }
            ConfigError::InvalidThingName(name) => write!(
                f,
                "thing name {name:?} cannot be used in a topic (empty, or has / + # or NUL)"
            ),
            ConfigError::Zero(field) => write!(f, "{field} must be at least 1"),
        }
    }
}

impl core::error::Error for ConfigError {}

pub(crate) const MS: u64 = 1_000_000;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn the_default_topics_are_the_references() {
        let t = FeederConfig::default().topics("feeder-1").unwrap();
        assert_eq!(t.action, "cat-feeder/action");
        assert_eq!(t.states, "cat-feeder/states");
    }

    #[test]
    fn per_device_topics_take_the_client_id_or_the_configured_thing() {
        let c = FeederConfig::per_device("cat-feeder");
        let t = c.topics("kitchen-feeder").unwrap();
        assert_eq!(t.action, "cat-feeder/kitchen-feeder/action");
        assert_eq!(t.states, "cat-feeder/kitchen-feeder/states");
        let named = FeederConfig {
            thing_name: Some("porch".into()),
            ..c
        };
        assert_eq!(
            named.topics("ignored").unwrap().states,
            "cat-feeder/porch/states"
        );
        let p = FeederConfig::with_prefix("lab/feeders")
            .topics("x")
            .unwrap();
        assert_eq!(p.action, "lab/feeders/action");
        assert_eq!(p.states, "lab/feeders/states");
    }

    #[test]
    fn bad_settings_are_refused_with_the_field_named() {
        let c = FeederConfig::per_device("cat-feeder");
        for thing in ["", "a/b", "a+", "#"] {
            assert_eq!(
                c.topics(thing),
                Err(ConfigError::InvalidThingName(thing.into())),
                "{thing:?}"
            );
        }
        // A thing name that is not used in the topics does not matter.
        assert!(FeederConfig::default().topics("a/b").is_ok());
        let wild = FeederConfig {
            action_topic: "cat-feeder/+".into(),
            ..FeederConfig::default()
        };
        let err = wild.topics("x").unwrap_err();
        assert_eq!(
            err,
            ConfigError::InvalidTopic {
                which: "action_topic",
                topic: "cat-feeder/+".into()
            }
        );
        assert!(err.to_string().contains("action_topic"));
        let empty = FeederConfig {
            states_topic: String::new(),
            ..FeederConfig::default()
        };
        assert!(matches!(
            empty.topics("x"),
            Err(ConfigError::InvalidTopic {
                which: "states_topic",
                ..
            })
        ));
        for (field, c) in [
            (
                "loop_sleep_ms",
                FeederConfig {
                    loop_sleep_ms: 0,
                    ..FeederConfig::default()
                },
            ),
            (
                "inbox_len",
                FeederConfig {
                    inbox_len: 0,
                    ..FeederConfig::default()
                },
            ),
            (
                "max_payload_bytes",
                FeederConfig {
                    max_payload_bytes: 0,
                    ..FeederConfig::default()
                },
            ),
        ] {
            assert_eq!(c.check(), Err(ConfigError::Zero(field)));
            assert_eq!(c.topics("x"), Err(ConfigError::Zero(field)));
        }
    }
}
