//! The device-kind seam: what a robot provides so twinrig can run it.
//!
//! A kind turns a scenario's device entry into running tasks: it builds the
//! virtual peripherals (UART, MQTT session over the device's link), spawns
//! the device firmware on them, and exposes the device's state for `expect`.
//! Each robot folder (`robots/<robot>/`) implements [`DeviceKind`] once; the
//! root crate lists the kinds in one registry.

pub mod duration;
pub mod invariant;
pub mod params;
pub mod serve;

pub use duration::{Duration, MAX_DURATION, ParseDurationError};
pub use invariant::{InvariantCheck, InvariantModel, InvariantOf};
pub use params::{DeviceSpec, NoParams, Params, ParamsError, ParamsModel, ParamsOf, SpecSlot};

use serde_json::{Value, json};
use twinrig_sim::SimHandle;
use twinrig_sim::net::{LinkParams, Network};
use twinrig_sim::physics::PhysicsWorld;
use twinrig_sim::uart::{DirStats, UartControl};

/// What a device kind gets to build a device.
pub struct DeviceContext<'a> {
    /// The world's handle (clock, spawn, trace).
    pub handle: &'a SimHandle,
    /// The network to the broker.
    pub network: &'a Network,
    /// The physics world.
    pub physics: &'a PhysicsWorld,
    /// The device's link model.
    pub link: LinkParams,
    /// Unix seconds that virtual time 0 stands for (the device's SNTP).
    pub epoch_unix_s: u64,
    /// The cloud services a device may use beyond MQTT.
    pub services: &'a CloudServices,
}

impl DeviceContext<'_> {
    /// Connects MQTT client `client_id` to the broker over the device's link.
    pub fn connect(&self, client_id: &str) -> Result<twinrig_sim::net::SimMqttClient, KindError> {
        self.network
            .connect(client_id, self.link.clone())
            .map_err(KindError::Build)
    }
}

/// Cloud services beyond the broker that the world offers its devices.
#[derive(Clone)]
pub struct CloudServices {
    /// The object store (S3 stand-in): uploads through presigned URLs.
    pub objects: std::rc::Rc<std::cell::RefCell<twinrig_cloud::objects::ObjectStore>>,
}

/// Why a kind could not build a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    /// The device's `params` are wrong.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// The device or its twin could not be built in this world (a body that
    /// does not fit, a name already taken).
    #[error("{0}")]
    Build(String),
    /// The kind cannot do this.
    #[error("this device kind cannot {0}")]
    Unsupported(&'static str),
}

/// One thing a device must have done before the timeline may talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyWhen {
    /// The MQTT client id it concerns (a device may hold several connections).
    pub client: String,
    /// What that client must have done.
    pub what: ReadyEvent,
    /// Only events at or after this virtual time count (the device's last boot).
    pub since: twinrig_sim::Nanos,
}

/// An event readiness waits for, as the broker sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReadyEvent {
    /// The broker took this subscription: messages on it now reach the device.
    Subscribed(String),
    /// The client published on this topic (its first status: booted and online).
    Published(String),
}

impl ReadyWhen {
    /// `client` subscribed to `filter` (since boot at 0).
    pub fn subscribed(client: &str, filter: &str) -> ReadyWhen {
        ReadyWhen {
            client: client.to_owned(),
            what: ReadyEvent::Subscribed(filter.to_owned()),
            since: 0,
        }
    }

    /// `client` published on `topic` (since boot at 0).
    pub fn published(client: &str, topic: &str) -> ReadyWhen {
        ReadyWhen {
            client: client.to_owned(),
            what: ReadyEvent::Published(topic.to_owned()),
            since: 0,
        }
    }
}

impl std::fmt::Display for ReadyWhen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.what {
            ReadyEvent::Subscribed(filter) => {
                write!(f, "client {} has not subscribed to {filter}", self.client)
            }
            ReadyEvent::Published(topic) => write!(
                f,
                "client {} has not published on {topic} (its first status)",
                self.client
            ),
        }?;
        if self.since > 0 {
            write!(
                f,
                " since it booted at {}",
                twinrig_sim::format_nanos(self.since)
            )?;
        }
        Ok(())
    }
}

/// A running device as the scenario runner sees it.
pub trait DeviceRuntime {
    /// What the device must have done before it is ready (connected and
    /// subscribed to what it listens to, booted, its first status sent); the
    /// timeline starts once every device is ready. Empty: ready at once.
    fn ready_when(&self) -> Vec<ReadyWhen> {
        Vec::new()
    }
    /// The device's state document for `expect: device` (dotted paths into it).
    fn state(&self) -> Value;
    /// The device's main UART line, and which end is the device's (true = end A).
    fn uart(&self) -> Option<(&UartControl, bool)>;
    /// The topic its commands arrive on, for `say` steps (None: it takes no spoken commands).
    fn command_topic(&self) -> Option<String> {
        None
    }
    /// Virtual time the device first moved, for the command-to-motion latency
    /// in the run summary (None: it has not moved, or cannot).
    fn first_motion(&self) -> Option<twinrig_sim::Nanos> {
        None
    }
    /// Figures of its own for the run summary, by full name (`{id}.figure`).
    fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        std::collections::BTreeMap::new()
    }
    /// Stops the device as SIGTERM would (the scenario's `stop` step).
    fn stop(&self) -> Result<(), KindError> {
        Err(KindError::Unsupported("be stopped"))
    }
    /// Whether a stopped device has finished shutting down.
    fn stopped(&self) -> bool {
        true
    }
}

/// A kind of device.
pub trait DeviceKind: Sync {
    /// The name used in scenario files.
    fn name(&self) -> &'static str;
    /// One line for `twinrig list`.
    fn summary(&self) -> &'static str;
    /// Name and version of the firmware crate, recorded in traces for replay.
    fn firmware(&self) -> (&'static str, &'static str);
    /// Its devices' `params`: `&ParamsOf::<TheKindsParams>::NEW` (parsed
    /// once when the scenario is checked, and described in `twinrig schema`).
    fn params(&self) -> &'static dyn ParamsModel;
    /// How its devices understand `say` steps: speech in, the commands to
    /// publish on [`DeviceRuntime::command_topic`] out. `None` (the default):
    /// they take no spoken commands, and validation refuses a `say` to them.
    fn command_model(&self) -> Option<&'static dyn CommandModel> {
        None
    }
    /// The cloud rules this kind ships for its devices' messages, each with
    /// the transform its action names: what a scenario's `cloud.rules` may
    /// name. Default: none.
    fn rule_presets(&self) -> Vec<RulePreset> {
        Vec::new()
    }
    /// A short scenario of one such device that runs green (a data file in
    /// the robot's folder); `twinrig init` writes it as `{name}.yaml`.
    /// Default: none.
    fn starter_scenario(&self) -> Option<&'static str> {
        None
    }
    /// The named checks its devices offer for `invariants:` (`check: {
    /// device, name, ... }`). Default: none.
    fn invariants(&self) -> &'static [&'static dyn InvariantModel] {
        &[]
    }
    /// How its twin is served live on a serial line (`twinrig serve`);
    /// `None` (the default): it cannot be.
    fn serve(&self) -> Option<&'static dyn serve::ServeModel> {
        None
    }
    /// Builds the device from what [`ParamsModel::parse`] made of its
    /// `params`, and spawns its tasks.
    fn spawn(
        &self,
        ctx: &DeviceContext<'_>,
        id: &str,
        spec: &DeviceSpec,
    ) -> Result<Box<dyn DeviceRuntime>, KindError>;
}

/// A cloud rule a kind ships, with the transform its action feeds.
///
/// The data stays in the robot's folder (the transform is a JSON file there,
/// included as text), so adding a robot's rule touches no central list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePreset {
    /// The rule; `rule.action` is the transform's `name`.
    pub rule: twinrig_cloud::rules::RuleConfig,
    /// The transform file's text (format: `twinrig_cloud::rules::transform`).
    pub transform_json: &'static str,
}

/// Why a sentence produced no commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceError {
    /// The clause that failed.
    pub clause: String,
    /// What was missing or wrong.
    pub reason: String,
}

impl std::fmt::Display for VoiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot understand {:?}: {}", self.clause, self.reason)
    }
}

impl std::error::Error for VoiceError {}

/// Turns speech into a device's commands (JSON objects; the runner adds an
/// `id`): the seam for a hosted speech/intent model.
pub trait CommandModel: Sync {
    /// The commands for `text`, in order.
    fn interpret(&self, text: &str) -> Result<Vec<Value>, VoiceError>;
}

/// UART counters as a JSON document.
pub fn dir_stats_json(s: &DirStats) -> Value {
    json!({
        "bytes_written": s.bytes_written,
        "bytes_injected": s.bytes_injected,
        "bytes_delivered": s.bytes_delivered,
        "bytes_read": s.bytes_read,
        "dropped": s.dropped,
        "corrupted": s.corrupted,
        "overruns": s.overruns,
        "breaks": s.breaks,
        "lost_in_break": s.lost_in_break,
        "lost_in_disconnect": s.lost_in_disconnect,
    })
}
