//! The scenario file model: what a YAML scenario may say.
//!
//! These types are the single source of truth: serde reads them (rejecting
//! unknown fields) and schemars generates `schema/scenario.schema.json` from
//! them (`twinrig schema`). Semantic checks that the types cannot express live
//! in `validate.rs`.
//!
//! Some types are read through a private mirror in `raw` (`#[serde(from)]` /
//! `#[serde(try_from)]`): serde's `deny_unknown_fields` does not work together
//! with `#[serde(flatten)]`, so the YAML shape of e.g. a `wait_for` step (topic,
//! `match`, `text` and `timeout` side by side) is spelled out there field by
//! field, and every mapping a user writes rejects unknown keys with a position.
//! The JSON Schema of such a type is generated from its mirror, so it describes
//! exactly what is read.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::{Duration, DurationVisitor};
use super::fleet::{
    CreateJobStep, ExpectAlert, ExpectFleet, ExpectJob, FleetConfig, PromptStep, WaitForJob,
};

/// A scenario: devices in a world, a link model, and a timeline of steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in reports and JUnit test cases.
    pub name: String,
    /// What the scenario checks, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seed for every random draw in the run (latency, loss, bit errors).
    pub seed: u64,
    /// Virtual-time limit; the run fails if the timeline has not finished by then.
    pub duration_limit: Duration,
    /// The physical world.
    #[serde(default)]
    pub world: World,
    /// Link model between every device and the broker (devices may override it).
    #[serde(default)]
    pub link: LinkModel,
    /// Devices in the run.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// The cloud twin: the wall-clock date of virtual time 0 and the rules fed
    /// by the broker (default: the default epoch and no rules).
    #[serde(default)]
    pub cloud: CloudConfig,
    /// The OTA fleet: firmware in the registry, device types and the devices
    /// that run the OTA client (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetConfig>,
    /// When the timeline starts: once every device is ready (`when_ready`,
    /// the default: subscribed to what it listens on, booted, first status
    /// sent), or at once (`immediately`, to test boot races on purpose).
    #[serde(default, skip_serializing_if = "Start::is_default")]
    pub start: Start,
    /// How long the devices may take to become ready before the run fails,
    /// naming the ones that are not (`start: when_ready` only).
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: Duration,
    /// Random faults: distributions each seed draws a schedule from,
    /// applied beside the timeline (see `twinrig sweep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<super::chaos::Chaos>,
    /// Checks that must hold all through the run, not at one step: after
    /// every message and at every sample period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invariants: Vec<Invariant>,
    /// The timeline, run in order.
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,
}

/// When the timeline starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// Once every device is ready.
    #[default]
    WhenReady,
    /// At virtual time 0, whether or not the devices are ready.
    Immediately,
}

impl Start {
    fn is_default(&self) -> bool {
        *self == Start::WhenReady
    }
}

/// The default `ready_timeout`.
pub fn default_ready_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The physical world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// Physics steps per second of virtual time.
    #[serde(default = "default_physics_rate")]
    #[schemars(range(min = 1, max = 100_000))]
    pub physics_rate_hz: u32,
    /// Gravity along z in m/s^2 (z is up), -100 to 100.
    #[serde(default = "default_gravity")]
    #[schemars(range(min = -100.0, max = 100.0))]
    pub gravity: f64,
    /// The floor (a plane at z = 0). Omitted: a default floor; `null`: no floor.
    #[serde(default = "default_floor")]
    pub floor: Option<Floor>,
    /// Bodies placed in the world.
    #[serde(default)]
    pub obstacles: Vec<Obstacle>,
    /// How often body poses are sampled into the trace while something moves.
    #[serde(default = "default_sample_period")]
    pub sample_period: Duration,
}

impl Default for World {
    fn default() -> Self {
        World {
            physics_rate_hz: default_physics_rate(),
            gravity: default_gravity(),
            floor: default_floor(),
            obstacles: Vec::new(),
            sample_period: default_sample_period(),
        }
    }
}

fn default_physics_rate() -> u32 {
    1000
}
fn default_gravity() -> f64 {
    -9.81
}
fn default_floor() -> Option<Floor> {
    Some(Floor::default())
}
fn default_sample_period() -> Duration {
    Duration::from_millis(10)
}

/// The floor's surface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    /// Coulomb friction coefficient, 0 to 10.
    #[serde(default = "default_friction")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub friction: f64,
    /// Restitution (bounciness), 0..1.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub restitution: f64,
}

impl Default for Floor {
    fn default() -> Self {
        Floor {
            friction: default_friction(),
            restitution: 0.0,
        }
    }
}

fn default_friction() -> f64 {
    0.8
}

/// A body in the world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Obstacle {
    /// Unique name, used by `expect: body` and in the trace.
    pub name: String,
    /// Its shape.
    pub shape: ShapeSpec,
    /// Centre position [x, y, z] in metres, each -1000 to 1000.
    pub position: [f64; 3],
    /// Rotation about z in degrees, -360 to 360.
    #[serde(default)]
    #[schemars(range(min = -360.0, max = 360.0))]
    pub yaw_deg: f64,
    /// Moves under physics (true) or is fixed in place (false).
    #[serde(default)]
    pub dynamic: bool,
    /// Mass in kg, at most 10000 (dynamic bodies; default from density 1000 kg/m^3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10_000.0))]
    pub mass: Option<f64>,
    /// Friction coefficient, 0 to 10.
    #[serde(default = "default_friction")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub friction: f64,
    /// Restitution, 0..1.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub restitution: f64,
}

/// A body's shape; sizes in metres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ShapeSpec {
    /// A box of full size [x, y, z].
    Box {
        /// Full edge lengths.
        size: [f64; 3],
    },
    /// A sphere.
    Ball {
        /// Radius.
        radius: f64,
    },
    /// An upright cylinder.
    Cylinder {
        /// Radius.
        radius: f64,
        /// Full height.
        height: f64,
    },
}

/// The link between a device and the broker: latency, loss and outages.
///
/// MQTT runs over TCP, so a link keeps message order. A lost QoS 0 message is
/// gone; a lost QoS 1 message is sent again after `qos1_retry` until it arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkModel {
    /// One-way latency of each message.
    #[serde(default)]
    pub latency: Latency,
    /// Probability that a message is lost, 0..1.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub loss: f64,
    /// Retry interval for lost QoS 1 messages.
    #[serde(default = "default_qos1_retry")]
    pub qos1_retry: Duration,
}

impl LinkModel {
    /// The network model of this link.
    pub fn link_params(&self) -> twinrig_sim::net::LinkParams {
        use twinrig_sim::net::{LatencyModel, LinkParams};
        let latency = match &self.latency {
            Latency::Fixed(d) => LatencyModel::Fixed(d.nanos()),
            Latency::Distribution(LatencyDistribution::Uniform { min, max }) => {
                LatencyModel::Uniform {
                    min: min.nanos(),
                    max: max.nanos(),
                }
            }
            Latency::Distribution(LatencyDistribution::Normal { mean, std_dev }) => {
                LatencyModel::Normal {
                    mean: mean.nanos(),
                    std_dev: std_dev.nanos(),
                }
            }
            Latency::Distribution(LatencyDistribution::Exponential { min, mean_extra }) => {
                LatencyModel::Exponential {
                    min: min.nanos(),
                    mean_extra: mean_extra.nanos(),
                }
            }
        };
        LinkParams {
            latency,
            loss: self.loss,
            qos1_retry: self.qos1_retry.nanos(),
        }
    }
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel {
            latency: Latency::default(),
            loss: 0.0,
            qos1_retry: default_qos1_retry(),
        }
    }
}

fn default_qos1_retry() -> Duration {
    Duration::from_millis(1000)
}

/// A latency distribution. A bare duration means a fixed latency.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// A distribution.
    Distribution(LatencyDistribution),
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Fixed(Duration::from_millis(5))
    }
}

// Hand-written instead of `#[serde(untagged)]`, which would replace every
// error inside a distribution (a misspelt key, a duration without a unit) with
// "data did not match any variant".
impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LatencyVisitor;

        impl<'de> Visitor<'de> for LatencyVisitor {
            type Value = Latency;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration (e.g. 20ms) or one distribution: uniform, normal or exponential",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Latency, E> {
                DurationVisitor.visit_str(v).map(Latency::Fixed)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Latency, E> {
                DurationVisitor.visit_u64(v).map(Latency::Fixed)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Latency, E> {
                DurationVisitor.visit_i64(v).map(Latency::Fixed)
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Latency, E> {
                DurationVisitor.visit_f64(v).map(Latency::Fixed)
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Latency, A::Error> {
                LatencyDistribution::deserialize(MapAccessDeserializer::new(map))
                    .map(Latency::Distribution)
            }
        }

        deserializer.deserialize_any(LatencyVisitor)
    }
}

/// Latency distributions; draws below zero are clamped to zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LatencyDistribution {
    /// Uniform between min and max.
    Uniform {
        /// Lower bound.
        min: Duration,
        /// Upper bound.
        max: Duration,
    },
    /// Normal with a mean and standard deviation.
    Normal {
        /// Mean.
        mean: Duration,
        /// Standard deviation.
        std_dev: Duration,
    },
    /// A fixed minimum plus an exponential tail with the given mean.
    Exponential {
        /// The fixed part.
        min: Duration,
        /// Mean of the exponential part.
        mean_extra: Duration,
    },
}

/// The MQTT client id the scenario timeline uses (`runner::SCENARIO_CLIENT`);
/// no device may take it.
pub const RESERVED_CLIENT_ID: &str = "twinrig-scenario";

/// The MQTT client id the cloud twin uses (`cloud_twin::CLOUD_CLIENT`); no
/// device may take it.
pub const CLOUD_CLIENT_ID: &str = "twinrig-cloud";

/// A device in the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Which firmware/twin: see `twinrig list` for the kinds this build knows.
    pub kind: String,
    /// Device id; also its MQTT client id / thing name.
    pub id: String,
    /// Link model for this device, replacing the scenario's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkModel>,
    /// Kind-specific parameters, checked against the kind's own schema.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// What the device's kind made of `params` when the scenario was checked.
    #[serde(skip)]
    #[schemars(skip)]
    pub spec: twinrig_kind::SpecSlot,
}

/// The cloud twin's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// The wall-clock time that virtual time 0 stands for: RFC 3339 in UTC,
    /// whole seconds, ending in `Z` (`2026-01-01T00:00:00Z`). Held as unix
    /// seconds.
    #[serde(rename = "epoch", default = "default_epoch", with = "epoch_serde")]
    #[schemars(schema_with = "epoch_serde::schema")]
    pub epoch_unix_s: u64,
    /// Rules run on every message through the broker, in order; each is the
    /// name of a preset or a rule written out.
    #[serde(default)]
    pub rules: Vec<RuleRef>,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            epoch_unix_s: DEFAULT_EPOCH_UNIX_S,
            rules: Vec::new(),
        }
    }
}

/// `2026-01-01T00:00:00Z`, the default `cloud.epoch`, in unix seconds.
pub const DEFAULT_EPOCH_UNIX_S: u64 = 1_767_225_600;

/// The latest epoch that can be written: `9999-12-31T23:59:59Z`.
pub const MAX_EPOCH_UNIX_S: u64 = 253_402_300_799;

fn default_epoch() -> u64 {
    DEFAULT_EPOCH_UNIX_S
}

/// Why a scenario's `epoch` is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// Not written as `2026-01-01T00:00:00Z`.
    #[error(
        "`{0}` is not a UTC time like 2026-01-01T00:00:00Z (RFC 3339, whole seconds, ending in `Z`; no offsets)"
    )]
    Shape(String),
    /// Written so, but not a time.
    #[error("`{text}` is not a valid time: {why}")]
    Invalid {
        /// The text.
        text: String,
        /// Why not.
        why: String,
    },
    /// Before the unix epoch.
    #[error("`{0}` is before 1970")]
    Before1970(String),
}

/// Reads an epoch as written in a scenario: RFC 3339 in UTC with whole
/// seconds and a `Z` (`2026-01-01T00:00:00Z`), from 1970 to 9999. Unix seconds.
pub fn parse_epoch(text: &str) -> Result<u64, EpochError> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 20
        && text.is_ascii()
        && b[10] == b'T'
        && b[19] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19) || c.is_ascii_digit());
    if !shape_ok {
        return Err(EpochError::Shape(text.to_owned()));
    }
    let time = humantime::parse_rfc3339(text).map_err(|e| {
        let why = match e {
            humantime::TimestampError::OutOfRange => {
                "a month, day, hour, minute or second is out of range, or the year is before 1970"
                    .to_owned()
            }
            other => other.to_string(),
        };
        EpochError::Invalid {
            text: text.to_owned(),
            why,
        }
    })?;
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| EpochError::Before1970(text.to_owned()))
}

/// Writes unix seconds as in a scenario (`2026-01-01T00:00:00Z`); `None`
/// after [`MAX_EPOCH_UNIX_S`].
pub fn format_epoch(unix_s: u64) -> Option<String> {
    if unix_s > MAX_EPOCH_UNIX_S {
        return None;
    }
    let time = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(unix_s))?;
    Some(humantime::format_rfc3339_seconds(time).to_string())
}

/// `cloud.epoch`: an RFC 3339 text in the file, unix seconds in the model.
mod epoch_serde {
    use super::*;

    pub fn serialize<S: Serializer>(unix_s: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        match format_epoch(*unix_s) {
            Some(text) => serializer.serialize_str(&text),
            None => Err(serde::ser::Error::custom(format!(
                "epoch {unix_s} is after 9999-12-31T23:59:59Z"
            ))),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        struct EpochVisitor;

        impl Visitor<'_> for EpochVisitor {
            type Value = u64;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a UTC time like 2026-01-01T00:00:00Z")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                parse_epoch(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(EpochVisitor)
    }

    pub fn schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
        })
    }
}

/// A rule for the cloud twin: a preset's name, or a rule written out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum RuleRef {
    /// A shipped rule with its transform, by short name (`hand-state`,
    /// `rvr-telemetry`) or rule name (`AmazingHandStateStreamingRule`, ...).
    Preset(String),
    /// A rule written out.
    Inline {
        /// Rule name, unique in the scenario: A-Z, a-z, 0-9 and `_` (as in AWS IoT).
        name: String,
        /// The rule's SQL (the AWS IoT SQL subset of the cloud twin).
        sql: String,
        /// The transform the rule's output goes to (`hand-state`, `rvr-telemetry`).
        action: String,
    },
}

impl RuleRef {
    /// The rule to load: a preset's configuration (`None` for an unknown
    /// preset name), or the inline rule as is.
    pub fn to_config(&self) -> Option<twinrig_cloud::rules::RuleConfig> {
        match self {
            RuleRef::Preset(name) => preset_rule(name),
            RuleRef::Inline { name, sql, action } => Some(twinrig_cloud::rules::RuleConfig {
                name: name.clone(),
                sql: sql.clone(),
                action: action.clone(),
            }),
        }
    }
}

/// The preset rule a scenario may name: by its short name (the name of its
/// transform, `rvr-telemetry`) or by its rule name
/// (`SpheroRvrTelemetryStreamingRule`).
pub fn preset_rule(name: &str) -> Option<twinrig_cloud::rules::RuleConfig> {
    crate::devices::rule_presets()
        .into_iter()
        .map(|p| p.rule)
        .find(|c| c.action == name || c.name == name)
}

/// The transforms a rule's `action` and `expect: records` may name (the
/// presets', the cloud's own and each device kind's), in the order of
/// [`crate::devices::rule_presets`]. The runner loads the same ones.
pub fn transforms() -> Vec<twinrig_cloud::rules::Transform> {
    // A shipped transform file that does not load is a bug of the build; the
    // crates' own tests catch it. Here it is simply not available.
    crate::devices::rule_presets()
        .into_iter()
        .filter_map(|p| twinrig_cloud::rules::Transform::from_json(p.transform_json).ok())
        .collect()
}

/// The names a scenario may use for preset rules: each preset's short name
/// (its transform) and its rule name.
pub fn preset_names() -> Vec<(String, String)> {
    crate::devices::rule_presets()
        .into_iter()
        .map(|p| (p.rule.action, p.rule.name))
        .collect()
}

// Hand-written instead of `#[serde(untagged)]`, which would replace every
// error inside a rule (a misspelt key) with "data did not match any variant".
impl<'de> Deserialize<'de> for RuleRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RuleRefVisitor;

        impl<'de> Visitor<'de> for RuleRefVisitor {
            type Value = RuleRef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a preset rule name or a rule `{name, sql, action}`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RuleRef, E> {
                Ok(RuleRef::Preset(v.to_owned()))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RuleRef, A::Error> {
                let r = raw::InlineRule::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RuleRef::Inline {
                    name: r.name,
                    sql: r.sql,
                    action: r.action,
                })
            }
        }

        deserializer.deserialize_any(RuleRefVisitor)
    }
}

/// One timeline step. Each step has exactly one action key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Publish a message through the broker (from the scenario's own client).
    Publish(Publish),
    /// Run until a matching message is seen, or fail at the timeout.
    WaitFor(WaitFor),
    /// Check something now.
    Expect(Expect),
    /// Let virtual time pass.
    Delay(Duration),
    /// Start a fault.
    Fault(Fault),
    /// Speak a command to a device: the words are turned into the device's
    /// MQTT commands.
    Say(Say),
    /// Send an operator prompt to the fleet agent (it may create a job).
    Prompt(PromptStep),
    /// Create an OTA job with exact rollout, abort, timeout and retry settings.
    CreateJob(CreateJobStep),
    /// Run until a job reaches one of the given statuses, or fail at the timeout.
    WaitForJob(WaitForJob),
    /// Stop a device as SIGTERM would (the hand agent finishes its message,
    /// then switches torque off).
    Stop(StopStep),
}

/// Stop a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopStep {
    /// Device id.
    pub device: String,
}

/// Publish a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// Topic name (no wildcards).
    pub topic: String,
    /// A string is sent as text; any other YAML value is sent as JSON.
    pub payload: serde_json::Value,
    /// QoS 0 or 1.
    #[serde(default)]
    #[schemars(range(max = 1))]
    pub qos: u8,
}

/// A spoken command to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Say {
    /// Device id the command is for.
    pub device: String,
    /// What is said (`drive forward one metre then turn left ninety degrees`).
    pub text: String,
}

/// Wait for a message, or for a device to be ready. Exactly one of `topic`
/// and `ready` is given (validation says so otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "raw::WaitFor")]
pub struct WaitFor {
    /// Topic filter (`+` and `#` allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// A device id: wait until it is ready (after a reboot, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// What the message must hold (YAML: `match` and `text` beside `topic`).
    #[serde(flatten)]
    pub filter: PayloadFilter,
    /// Give up (and fail the scenario) after this long.
    pub timeout: Duration,
}

/// Conditions on a message payload. Both are optional; all given must hold.
///
/// Never a YAML mapping of its own: its keys sit beside `topic` in the step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct PayloadFilter {
    /// Fields of a JSON payload by dotted path (`pose.x`, `items.0.id`), each a
    /// value to equal or a comparison (`{approx: 1.0, tolerance: 0.01}`).
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldCheck>,
    /// The payload as text must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A check on one value: a plain value (not a mapping) means "equals"; a
/// mapping is a [`Comparison`]. To compare with a JSON object, write
/// `{equals: {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldCheck {
    /// A comparison.
    Compare(Comparison),
    /// Equal to this JSON value.
    Equals(serde_json::Value),
}

// A mapping is always read as a `Comparison` (so `{aprox: 1}` is an unknown
// field, not an object to compare with); anything else is a value to equal.
impl<'de> Deserialize<'de> for FieldCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldCheckVisitor;

        impl<'de> Visitor<'de> for FieldCheckVisitor {
            type Value = FieldCheck;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value to equal, or a comparison such as {at_least: 1}")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FieldCheck, E> {
                Ok(FieldCheck::Equals(v.into()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FieldCheck, E> {
                Ok(FieldCheck::Equals(v.into()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FieldCheck, E> {
                Ok(FieldCheck::Equals(v.into()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FieldCheck, E> {
                serde_json::Number::from_f64(v)
                    .map(|n| FieldCheck::Equals(n.into()))
                    .ok_or_else(|| E::custom("cannot compare with a non-finite number"))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldCheck, E> {
                Ok(FieldCheck::Equals(v.into()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<FieldCheck, E> {
                Ok(FieldCheck::Equals(serde_json::Value::Null))
            }

            fn visit_none<E: de::Error>(self) -> Result<FieldCheck, E> {
                Ok(FieldCheck::Equals(serde_json::Value::Null))
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<FieldCheck, D::Error> {
                FieldCheck::deserialize(d)
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<FieldCheck, A::Error> {
                serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))
                    .map(FieldCheck::Equals)
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<FieldCheck, A::Error> {
                Comparison::deserialize(MapAccessDeserializer::new(map)).map(FieldCheck::Compare)
            }
        }

        deserializer.deserialize_any(FieldCheckVisitor)
    }
}

impl Serialize for FieldCheck {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldCheck::Compare(c) => c.serialize(serializer),
            // A mapping would read back as a comparison: wrap objects.
            FieldCheck::Equals(v @ serde_json::Value::Object(_)) => Comparison {
                equals: Some(v.clone()),
                ..Comparison::default()
            }
            .serialize(serializer),
            FieldCheck::Equals(v) => v.serialize(serializer),
        }
    }
}

impl JsonSchema for FieldCheck {
    fn schema_name() -> Cow<'static, str> {
        "FieldCheck".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::FieldCheck").into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let comparison = generator.subschema_for::<Comparison>();
        json_schema!({
            "description": "A plain value (not a mapping) must be equal; a mapping is a comparison. \
                To compare with an object, write `{equals: {...}}`.",
            "anyOf": [
                comparison,
                { "type": ["string", "number", "boolean", "null", "array"] }
            ]
        })
    }
}

/// Numeric and equality comparisons. All given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// Equal to this JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
    /// Within `tolerance` of this number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approx: Option<f64>,
    /// Allowed absolute difference for `approx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// At least this number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    /// At most this number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<f64>,
}

impl Comparison {
    /// Whether no condition is given at all.
    pub fn is_empty(&self) -> bool {
        self.equals.is_none()
            && self.approx.is_none()
            && self.tolerance.is_none()
            && self.at_least.is_none()
            && self.at_most.is_none()
    }
}

/// Comparisons on a duration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DurationComparison {
    /// At least this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<Duration>,
    /// At most this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<Duration>,
}

/// An assertion, checked when the step runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expect {
    /// Messages seen so far on a topic filter: how many match.
    Message(ExpectMessage),
    /// A device's state, by dotted path into its state document.
    Device(ExpectDevice),
    /// A body's pose in the world.
    Body(ExpectBody),
    /// Time from the first message matching `from` to the first later message matching `to`.
    Latency(ExpectLatency),
    /// Records the cloud's rules wrote to the records store.
    Records(ExpectRecords),
    /// An OTA job: its status, whether it aborted, its execution counts.
    Job(ExpectJob),
    /// How many fleet devices of a type run a version (from their shadows).
    Fleet(ExpectFleet),
    /// Alerts raised by aborted jobs.
    Alert(ExpectAlert),
    /// A presigned URL in the newest message on a topic: whether the cloud's
    /// object store serves it now (before expiry) or refuses it (after).
    Presigned(ExpectPresigned),
}

/// Fetch a presigned URL taken from a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectPresigned {
    /// Topic filter; the newest message with the field is used.
    pub topic: String,
    /// Dotted path of the URL in the JSON payload (`video_url`).
    pub field: String,
    /// True: the store must serve it now; false: it must refuse it.
    pub fetchable: bool,
    /// The object key the URL must name (`videos/hand_20260208_114001.gif`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Count the messages seen since the run started on a topic filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "raw::ExpectMessage")]
pub struct ExpectMessage {
    /// Topic filter.
    pub topic: String,
    /// What the messages must hold (YAML: `match` and `text` beside `topic`).
    #[serde(flatten)]
    pub filter: PayloadFilter,
    /// How many must match (default: at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Comparison>,
}

/// A check that must hold all through the run (`invariants:`): the first
/// moment it does not fails the run, with the step that was running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Invariant {
    /// Messages matching so far, after every message: `count` with
    /// `at_most` (never more than that many, e.g. never a second
    /// `completed` for one maneuver).
    Message(ExpectMessage),
    /// A field of a device's state, at every sample period.
    Device(ExpectDevice),
    /// A figure of a body's pose, at every sample period.
    Body(ExpectBody),
    /// A named check a device's kind offers (`device:`), or the fleet's
    /// (no `device`), with its parameters beside `name`.
    Check(NamedCheck),
}

impl Invariant {
    /// The `expect` that checks the same thing at one moment (none for a
    /// named check).
    pub fn as_expect(&self) -> Option<Expect> {
        match self {
            Invariant::Message(m) => Some(Expect::Message(m.clone())),
            Invariant::Device(d) => Some(Expect::Device(d.clone())),
            Invariant::Body(b) => Some(Expect::Body(b.clone())),
            Invariant::Check(_) => None,
        }
    }
}

/// `check: { device: rvr-1, name: stops_after_cancel, within: 300ms }`: a
/// named, parameterised check (docs/SCENARIOS.md lists them per kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NamedCheck {
    /// The device whose kind offers the check; without it, a fleet check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The check's name.
    pub name: String,
    /// Its parameters (every other key).
    #[serde(flatten)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// Check a field of a device's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "raw::ExpectDevice")]
pub struct ExpectDevice {
    /// Device id.
    pub device: String,
    /// Dotted path into the device's state (`uart.to_device.dropped`).
    pub field: String,
    /// The check (YAML: `equals`, `approx`, ... beside `field`).
    #[serde(flatten)]
    pub check: Comparison,
}

/// Check a body's pose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "raw::ExpectBody")]
pub struct ExpectBody {
    /// Body name (an obstacle, or a device's body).
    pub body: String,
    /// Which figure.
    pub field: BodyField,
    /// The check (YAML: `equals`, `approx`, ... beside `field`).
    #[serde(flatten)]
    pub check: Comparison,
}

/// Figures of a body's pose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BodyField {
    /// Position x (m).
    X,
    /// Position y (m).
    Y,
    /// Position z (m).
    Z,
    /// Heading about z (degrees, -180..180).
    YawDeg,
    /// Linear speed (m/s).
    Speed,
}

/// Latency between two messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "raw::ExpectLatency")]
pub struct ExpectLatency {
    /// The starting message.
    pub from: MessageRef,
    /// The ending message.
    pub to: MessageRef,
    /// The check on the time between them (YAML: `at_least`/`at_most` beside `to`).
    #[serde(flatten)]
    pub check: DurationComparison,
}

/// Check the records store: how many records a transform wrote, and what the
/// newest one holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectRecords {
    /// The transform (rule action) that wrote them: `hand-state`, `rvr-telemetry`.
    pub kind: String,
    /// Only this device's records (the record key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// How many there must be (default: at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Comparison>,
    /// Fields of the newest record by dotted path, each a value to equal or a
    /// comparison (as in `match`). Needs at least one record.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latest: BTreeMap<String, FieldCheck>,
}

/// A message by topic filter and payload conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(from = "raw::MessageRef")]
pub struct MessageRef {
    /// Topic filter.
    pub topic: String,
    /// What the message must hold (YAML: `match` and `text` beside `topic`).
    #[serde(flatten)]
    pub filter: PayloadFilter,
}

/// A fault, starting when its step runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// A fault on a device's UART line.
    Uart(UartFault),
    /// A fault on a device's link to the broker.
    Link(LinkFault),
}

/// A fault on a device's UART line: `device`, optional `direction`, and
/// exactly one kind key (`inject`, `bit_errors`, `drop_bytes`, `line_break`,
/// `disconnect`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "raw::UartFault")]
pub struct UartFault {
    /// Device id whose UART line is hit.
    pub device: String,
    /// Which way: `to_device`, `from_device` or `both` (default).
    #[serde(default)]
    pub direction: UartDirection,
    /// What happens (YAML: one kind key beside `device`).
    #[serde(flatten)]
    pub kind: UartFaultKind,
}

/// UART direction seen from the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UartDirection {
    /// Bytes the device receives.
    ToDevice,
    /// Bytes the device sends.
    FromDevice,
    /// Both.
    #[default]
    Both,
}

/// Kinds of UART fault; exactly one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum UartFaultKind {
    /// The far end sends these bytes (text, or `hex:` prefixed hex).
    Inject(String),
    /// Each bit flips with this probability for a while.
    BitErrors {
        /// Bit error rate, 0..1.
        rate: f64,
        /// How long.
        duration: Duration,
    },
    /// Each byte is lost with this probability for a while.
    DropBytes {
        /// Probability, 0..1.
        probability: f64,
        /// How long.
        duration: Duration,
    },
    /// A line break (no bytes get through) for this long.
    LineBreak(Duration),
    /// The cable is unplugged for this long.
    Disconnect(Duration),
}

impl UartFaultKind {
    /// The YAML key of this kind.
    pub fn key(&self) -> &'static str {
        match self {
            UartFaultKind::Inject(_) => "inject",
            UartFaultKind::BitErrors { .. } => "bit_errors",
            UartFaultKind::DropBytes { .. } => "drop_bytes",
            UartFaultKind::LineBreak(_) => "line_break",
            UartFaultKind::Disconnect(_) => "disconnect",
        }
    }
}

/// Why the hex of an `inject` fault gives no bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexBytesError {
    /// A group of digits that does not make whole bytes.
    #[error("`{0}` has an odd number of hex digits")]
    OddLength(String),
    /// A character that is not a hex digit.
    #[error("`{0}` is not a hex digit")]
    NotHex(char),
    /// Nothing but blanks.
    #[error("no bytes given")]
    Empty,
}

/// Decodes the hex after `hex:` (an `inject` fault's bytes): pairs of hex digits, blanks between bytes allowed.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, HexBytesError> {
    let mut out = Vec::new();
    for group in text.split_whitespace() {
        if let Some(c) = group.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(HexBytesError::NotHex(c));
        }
        let bytes = hex::decode(group).map_err(|_| HexBytesError::OddLength(group.to_owned()))?;
        out.extend(bytes);
    }
    if out.is_empty() {
        return Err(HexBytesError::Empty);
    }
    Ok(out)
}

/// A fault on a device's link to the broker: `device` and exactly one kind
/// key (`outage`, `loss`, `extra_latency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "raw::LinkFault")]
pub struct LinkFault {
    /// Device id whose link is hit.
    pub device: String,
    /// What happens (YAML: one kind key beside `device`).
    #[serde(flatten)]
    pub kind: LinkFaultKind,
}

/// Kinds of link fault; exactly one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LinkFaultKind {
    /// No messages get through either way for this long (QoS 1 ones wait and go after).
    Outage(Duration),
    /// Messages are lost with this probability for a while.
    Loss {
        /// Probability, 0..1.
        probability: f64,
        /// How long.
        duration: Duration,
    },
    /// Extra one-way latency for a while.
    ExtraLatency {
        /// Added latency.
        latency: Duration,
        /// How long.
        duration: Duration,
    },
}

impl LinkFaultKind {
    /// The YAML key of this kind.
    pub fn key(&self) -> &'static str {
        match self {
            LinkFaultKind::Outage(_) => "outage",
            LinkFaultKind::Loss { .. } => "loss",
            LinkFaultKind::ExtraLatency { .. } => "extra_latency",
        }
    }
}

/// The YAML shapes of the types above that have fields side by side which the
/// Rust types group (`#[serde(flatten)]` cannot be combined with
/// `deny_unknown_fields`). Doc comments here become the schema descriptions.
mod raw {
    use std::collections::BTreeMap;

    use schemars::JsonSchema;
    use serde::Deserialize;

    use super::{
        BodyField, Comparison, Duration, DurationComparison, FieldCheck, PayloadFilter,
        UartDirection, UartFaultKind,
    };

    /// A rule written out (the YAML shape of `RuleRef::Inline`).
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct InlineRule {
        pub name: String,
        pub sql: String,
        pub action: String,
    }

    /// Run until a message matching `topic` (and `match`/`text`, if given) is
    /// seen, or until the device named by `ready` is ready (subscribed to what
    /// it listens on and announced itself since its last boot); fail the
    /// scenario at `timeout`. Give `topic` or `ready`, not both.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct WaitFor {
        /// Topic filter (`+` and `#` allowed).
        #[serde(default)]
        topic: Option<String>,
        /// A device id: wait until it is ready.
        #[serde(default)]
        ready: Option<String>,
        /// Fields of a JSON payload by dotted path (`pose.x`, `items.0.id`), each a value to equal or a comparison.
        #[serde(default, rename = "match")]
        fields: BTreeMap<String, FieldCheck>,
        /// The payload as text must equal this.
        #[serde(default)]
        text: Option<String>,
        /// Give up (and fail the scenario) after this long.
        timeout: Duration,
    }

    impl From<WaitFor> for super::WaitFor {
        fn from(r: WaitFor) -> Self {
            super::WaitFor {
                topic: r.topic,
                ready: r.ready,
                filter: PayloadFilter {
                    fields: r.fields,
                    text: r.text,
                },
                timeout: r.timeout,
            }
        }
    }

    /// Count the messages seen since the run started on a topic filter.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ExpectMessage {
        /// Topic filter (`+` and `#` allowed).
        topic: String,
        /// Fields of a JSON payload by dotted path, each a value to equal or a comparison.
        #[serde(default, rename = "match")]
        fields: BTreeMap<String, FieldCheck>,
        /// The payload as text must equal this.
        #[serde(default)]
        text: Option<String>,
        /// How many must match (default: at least one).
        #[serde(default)]
        count: Option<Comparison>,
    }

    impl From<ExpectMessage> for super::ExpectMessage {
        fn from(r: ExpectMessage) -> Self {
            super::ExpectMessage {
                topic: r.topic,
                filter: PayloadFilter {
                    fields: r.fields,
                    text: r.text,
                },
                count: r.count,
            }
        }
    }

    /// A message by topic filter and payload conditions.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct MessageRef {
        /// Topic filter (`+` and `#` allowed).
        topic: String,
        /// Fields of a JSON payload by dotted path, each a value to equal or a comparison.
        #[serde(default, rename = "match")]
        fields: BTreeMap<String, FieldCheck>,
        /// The payload as text must equal this.
        #[serde(default)]
        text: Option<String>,
    }

    impl From<MessageRef> for super::MessageRef {
        fn from(r: MessageRef) -> Self {
            super::MessageRef {
                topic: r.topic,
                filter: PayloadFilter {
                    fields: r.fields,
                    text: r.text,
                },
            }
        }
    }

    /// Check a field of a device's state; all conditions given must hold.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ExpectDevice {
        /// Device id.
        device: String,
        /// Dotted path into the device's state (`uart.to_device.dropped`).
        field: String,
        /// Equal to this JSON value.
        #[serde(default)]
        equals: Option<serde_json::Value>,
        /// Within `tolerance` of this number.
        #[serde(default)]
        approx: Option<f64>,
        /// Allowed absolute difference for `approx`.
        #[serde(default)]
        tolerance: Option<f64>,
        /// At least this number.
        #[serde(default)]
        at_least: Option<f64>,
        /// At most this number.
        #[serde(default)]
        at_most: Option<f64>,
    }

    impl From<ExpectDevice> for super::ExpectDevice {
        fn from(r: ExpectDevice) -> Self {
            super::ExpectDevice {
                device: r.device,
                field: r.field,
                check: Comparison {
                    equals: r.equals,
                    approx: r.approx,
                    tolerance: r.tolerance,
                    at_least: r.at_least,
                    at_most: r.at_most,
                },
            }
        }
    }

    /// Check a figure of a body's pose; all conditions given must hold.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ExpectBody {
        /// Body name (an obstacle, or a device's body).
        body: String,
        /// Which figure.
        field: BodyField,
        /// Equal to this JSON value.
        #[serde(default)]
        equals: Option<serde_json::Value>,
        /// Within `tolerance` of this number.
        #[serde(default)]
        approx: Option<f64>,
        /// Allowed absolute difference for `approx`.
        #[serde(default)]
        tolerance: Option<f64>,
        /// At least this number.
        #[serde(default)]
        at_least: Option<f64>,
        /// At most this number.
        #[serde(default)]
        at_most: Option<f64>,
    }

    impl From<ExpectBody> for super::ExpectBody {
        fn from(r: ExpectBody) -> Self {
            super::ExpectBody {
                body: r.body,
                field: r.field,
                check: Comparison {
                    equals: r.equals,
                    approx: r.approx,
                    tolerance: r.tolerance,
                    at_least: r.at_least,
                    at_most: r.at_most,
                },
            }
        }
    }

    /// Time from the first message matching `from` to the first later message
    /// matching `to`; `at_least` and/or `at_most` bound it.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ExpectLatency {
        /// The starting message.
        from: super::MessageRef,
        /// The ending message.
        to: super::MessageRef,
        /// At least this long.
        #[serde(default)]
        at_least: Option<Duration>,
        /// At most this long.
        #[serde(default)]
        at_most: Option<Duration>,
    }

    impl From<ExpectLatency> for super::ExpectLatency {
        fn from(r: ExpectLatency) -> Self {
            super::ExpectLatency {
                from: r.from,
                to: r.to,
                check: DurationComparison {
                    at_least: r.at_least,
                    at_most: r.at_most,
                },
            }
        }
    }

    /// Each bit flips with this probability for a while.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct BitErrors {
        /// Bit error rate, 0..1.
        #[schemars(range(min = 0.0, max = 1.0))]
        rate: f64,
        /// How long.
        duration: Duration,
    }

    /// Each byte is lost with this probability for a while.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct DropBytes {
        /// Probability, 0..1.
        #[schemars(range(min = 0.0, max = 1.0))]
        probability: f64,
        /// How long.
        duration: Duration,
    }

    /// A fault on a device's UART line: `device`, optional `direction`, and
    /// exactly one of `inject`, `bit_errors`, `drop_bytes`, `line_break`,
    /// `disconnect`.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(extend("oneOf" = [
        {"required": ["inject"], "properties": {"inject": {"not": {"type": "null"}}}},
        {"required": ["bit_errors"], "properties": {"bit_errors": {"not": {"type": "null"}}}},
        {"required": ["drop_bytes"], "properties": {"drop_bytes": {"not": {"type": "null"}}}},
        {"required": ["line_break"], "properties": {"line_break": {"not": {"type": "null"}}}},
        {"required": ["disconnect"], "properties": {"disconnect": {"not": {"type": "null"}}}}
    ]))]
    pub struct UartFault {
        /// Device id whose UART line is hit.
        device: String,
        /// Which way: `to_device`, `from_device` or `both` (default).
        #[serde(default)]
        direction: UartDirection,
        /// The far end sends these bytes: text, or `hex:` and hex digits (`hex:7e 00 ff`).
        #[serde(default)]
        inject: Option<String>,
        /// Each bit flips with this probability for a while.
        #[serde(default)]
        bit_errors: Option<BitErrors>,
        /// Each byte is lost with this probability for a while.
        #[serde(default)]
        drop_bytes: Option<DropBytes>,
        /// A line break (no bytes get through) for this long.
        #[serde(default)]
        line_break: Option<Duration>,
        /// The cable is unplugged for this long.
        #[serde(default)]
        disconnect: Option<Duration>,
    }

    impl TryFrom<UartFault> for super::UartFault {
        type Error = String;

        fn try_from(r: UartFault) -> Result<Self, String> {
            let mut kinds = Vec::new();
            if let Some(bytes) = r.inject {
                kinds.push(UartFaultKind::Inject(bytes));
            }
            if let Some(b) = r.bit_errors {
                kinds.push(UartFaultKind::BitErrors {
                    rate: b.rate,
                    duration: b.duration,
                });
            }
            if let Some(d) = r.drop_bytes {
                kinds.push(UartFaultKind::DropBytes {
                    probability: d.probability,
                    duration: d.duration,
                });
            }
            if let Some(d) = r.line_break {
                kinds.push(UartFaultKind::LineBreak(d));
            }
            if let Some(d) = r.disconnect {
                kinds.push(UartFaultKind::Disconnect(d));
            }
            let keys: Vec<&str> = kinds.iter().map(UartFaultKind::key).collect();
            let kind = exactly_one(
                kinds,
                &keys,
                "a uart fault",
                "inject, bit_errors, drop_bytes, line_break, disconnect",
            )?;
            Ok(super::UartFault {
                device: r.device,
                direction: r.direction,
                kind,
            })
        }
    }

    /// Messages are lost with this probability for a while.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Loss {
        /// Probability, 0..1.
        #[schemars(range(min = 0.0, max = 1.0))]
        probability: f64,
        /// How long.
        duration: Duration,
    }

    /// Extra one-way latency for a while.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ExtraLatency {
        /// Added latency.
        latency: Duration,
        /// How long.
        duration: Duration,
    }

    /// A fault on a device's link to the broker: `device` and exactly one of
    /// `outage`, `loss`, `extra_latency`.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(extend("oneOf" = [
        {"required": ["outage"], "properties": {"outage": {"not": {"type": "null"}}}},
        {"required": ["loss"], "properties": {"loss": {"not": {"type": "null"}}}},
        {"required": ["extra_latency"], "properties": {"extra_latency": {"not": {"type": "null"}}}}
    ]))]
    pub struct LinkFault {
        /// Device id whose link is hit.
        device: String,
        /// No messages get through either way for this long (QoS 1 ones wait and go after).
        #[serde(default)]
        outage: Option<Duration>,
        /// Messages are lost with this probability for a while.
        #[serde(default)]
        loss: Option<Loss>,
        /// Extra one-way latency for a while.
        #[serde(default)]
        extra_latency: Option<ExtraLatency>,
    }

    impl TryFrom<LinkFault> for super::LinkFault {
        type Error = String;

        fn try_from(r: LinkFault) -> Result<Self, String> {
            use super::LinkFaultKind;
            let mut kinds = Vec::new();
            if let Some(d) = r.outage {
                kinds.push(LinkFaultKind::Outage(d));
            }
            if let Some(l) = r.loss {
                kinds.push(LinkFaultKind::Loss {
                    probability: l.probability,
                    duration: l.duration,
                });
            }
            if let Some(e) = r.extra_latency {
                kinds.push(LinkFaultKind::ExtraLatency {
                    latency: e.latency,
                    duration: e.duration,
                });
            }
            let keys: Vec<&str> = kinds.iter().map(LinkFaultKind::key).collect();
            let kind = exactly_one(kinds, &keys, "a link fault", "outage, loss, extra_latency")?;
            Ok(super::LinkFault {
                device: r.device,
                kind,
            })
        }
    }

    fn exactly_one<T>(
        mut kinds: Vec<T>,
        keys: &[&str],
        what: &str,
        allowed: &str,
    ) -> Result<T, String> {
        match kinds.len() {
            1 => Ok(kinds.remove(0)),
            0 => Err(format!("{what} needs one of: {allowed}")),
            _ => Err(format!(
                "{what} takes exactly one of {allowed}; found {}",
                keys.join(" and ")
            )),
        }
    }
}
