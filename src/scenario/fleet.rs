//! The OTA fleet of a scenario, and the steps and checks that drive it.
//!
//! ```yaml
//! fleet:
//!   firmware: [ { type: pet_feeder, versions: [1.0.0, 2.0.0], size: 1MiB } ]
//!   types:    [ { type: pet_feeder, ota: enabled, recommended: 2.0.0 } ]
//!   groups:   [ { type: pet_feeder, count: 100, id: "feeder-{n:03}", version: 1.0.0 },
//!               { type: amazing_hand, members: [hand-1], version: 1.0.0 } ]
//!   download: { bandwidth: 2Mbit/s, latency: 50ms }
//! ```
//!
//! Value types written as strings with a unit or a shape ([`Version`],
//! [`ByteSize`], [`Bandwidth`], [`IdPattern`], [`VersionRef`]) are parsed when
//! the file is read, so a malformed one is an error at its own line and
//! column. References and ranges are checked in `validate.rs`.
//!
//! `create_job` takes the jobs engine's own configuration types
//! ([`twinrig_cloud::jobs::RolloutConfig`] and friends, AWS camelCase keys),
//! which reject unknown keys and give the JSON Schema themselves; their rules
//! are checked by [`twinrig_cloud::jobs::RolloutSettings::check`].

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use twinrig_cloud::jobs::{
    AbortConfig, CreateJobRequest, RetryConfig, RolloutConfig, RolloutSettings, Setting,
    TimeoutConfig,
};

use super::duration::Duration;
use super::model::{Comparison, LinkModel};

/// The most devices one group may have.
pub const MAX_GROUP_COUNT: u32 = 10_000;

/// The largest firmware image: 16 MiB (the largest flash an ESP32 takes;
/// an app partition is smaller still).
pub const MAX_IMAGE_BYTES: u64 = 16 * MIB;

/// The fastest download bandwidth: 10 Gbit/s.
pub const MAX_BANDWIDTH_BPS: u64 = 10_000_000_000;

/// Default image size: 1 MiB.
pub const DEFAULT_IMAGE_BYTES: u64 = MIB;

/// Default download bandwidth: 2 Mbit/s.
pub const DEFAULT_BANDWIDTH_BPS: u64 = 2_000_000;

/// Default download latency (per request): 50 ms.
pub const DEFAULT_DOWNLOAD_LATENCY: Duration = Duration::from_millis(50);

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// The most memory a run may be expected to need: 4 GiB. A scenario whose
/// [`MemoryEstimate`] is larger is refused before it runs, so a file cannot
/// ask for more than a laptop or a CI runner has (GitHub's smallest Linux
/// runners have 7 GB) and take the machine down with it.
pub const MEMORY_BUDGET_BYTES: u64 = 4 * GIB;

/// Memory a fleet device needs besides its simulated flash: its tasks, MQTT
/// session, shadow, job executions and trace records. Measured as peak RSS
/// (`/usr/bin/time -v twinrig run`): a rollout to 1,000 devices with 4 KiB
/// images peaked 316 MiB above the same rollout to one device, 324 KiB a
/// device of which 192 KiB is flash; the 1,000-device benchmark with 1 MiB
/// images (docs/BENCHMARKS.md) leaves about 210 KiB a device beside flash
/// and images. Rounded up.
pub const FLEET_DEVICE_OVERHEAD_BYTES: u64 = 256 * KIB;

/// Memory a scenario device (`devices`, any kind) needs: measured the same
/// way, the shipped scenarios peak at most 4.5 MiB above a run without
/// devices (`rvr/square-1m`, its trace included); rounded up.
pub const SCENARIO_DEVICE_BYTES: u64 = 8 * MIB;

/// Memory of a run with no devices (the world, the broker, the cloud twin):
/// measured 22 MiB peak RSS, rounded up.
pub const BASE_RUN_BYTES: u64 = 32 * MIB;

/// What a scenario's run is expected to need at its peak, in bytes, by part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Fleet devices (created and members' OTA clients).
    pub fleet_devices: u64,
    /// Their simulated flash: per device, two app slots sized for the
    /// type's largest image, and the otadata block.
    pub fleet_flash: u64,
    /// Every published image, held by the firmware registry.
    pub registry: u64,
    /// Scenario devices.
    pub scenario_devices: u64,
    /// Everything: the parts above, their constants, and [`BASE_RUN_BYTES`].
    pub total: u64,
}

impl MemoryEstimate {
    /// The estimate for `fleet` (if any) with `scenario_devices` devices in
    /// `devices`. Saturates instead of overflowing: a count that large is
    /// over the budget either way.
    pub fn new(fleet: Option<&FleetConfig>, scenario_devices: usize) -> MemoryEstimate {
        let mut e = MemoryEstimate {
            scenario_devices: scenario_devices as u64,
            ..MemoryEstimate::default()
        };
        let mut total =
            BASE_RUN_BYTES.saturating_add(e.scenario_devices.saturating_mul(SCENARIO_DEVICE_BYTES));
        if let Some(fleet) = fleet {
            for set in &fleet.firmware {
                let image = image_bytes(set.size.bytes());
                e.registry = e
                    .registry
                    .saturating_add(image.saturating_mul(set.versions.len() as u64));
            }
            for g in &fleet.groups {
                let devices = match (&g.members, g.count) {
                    (Some(members), _) => members.len() as u64,
                    (None, Some(count)) => u64::from(count),
                    (None, None) => 0,
                };
                let largest = fleet
                    .firmware_for(&g.device_type)
                    .map_or(0, |f| image_bytes(f.size.bytes()));
                e.fleet_devices = e.fleet_devices.saturating_add(devices);
                e.fleet_flash = e
                    .fleet_flash
                    .saturating_add(devices.saturating_mul(flash_bytes(largest)));
            }
            total = total
                .saturating_add(e.registry)
                .saturating_add(e.fleet_flash)
                .saturating_add(e.fleet_devices.saturating_mul(FLEET_DEVICE_OVERHEAD_BYTES));
        }
        e.total = total;
        e
    }
}

/// An image as published: the body and the OTA header.
fn image_bytes(body: u64) -> u64 {
    body.saturating_add(ota_client::image::HEADER_LEN as u64)
}

/// A fleet device's simulated flash for images of up to `image` bytes: two
/// app slots on 64 KiB boundaries and the otadata block before them (as
/// `src/fleet.rs` lays it out).
fn flash_bytes(image: u64) -> u64 {
    let block = ota_client::partitions::ERASE_BLOCK;
    let slot = image.div_ceil(block).saturating_mul(block);
    block.saturating_add(slot.saturating_mul(2))
}

/// A size in bytes for messages: `2.4 GiB`, `512 MiB`, `300 KiB`, rounded
/// to a tenth of its unit.
pub fn human_bytes(bytes: u64) -> String {
    let (unit, name) = if bytes >= 1024 * GIB {
        (1024 * GIB, "TiB")
    } else if bytes >= GIB {
        (GIB, "GiB")
    } else if bytes >= MIB {
        (MIB, "MiB")
    } else if bytes >= KIB {
        (KIB, "KiB")
    } else {
        return format!("{bytes} B");
    };
    let tenths = (u128::from(bytes) * 10 + u128::from(unit) / 2) / u128::from(unit);
    if tenths % 10 == 0 {
        format!("{} {name}", tenths / 10)
    } else {
        format!("{}.{} {name}", tenths / 10, tenths % 10)
    }
}

/// The fleet: firmware published before the run, per-type settings, and the
/// devices (groups of one type) that run the OTA client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Versions published into the firmware registry before the run, by type.
    #[serde(default)]
    pub firmware: Vec<FirmwareSet>,
    /// Per-type settings: the OTA gate and the recommended version. A type
    /// not listed has OTA enabled and no recommended version.
    #[serde(default)]
    pub types: Vec<DeviceTypeConfig>,
    /// The devices: each group is `count` devices of one type, or scenario
    /// devices (`members`) that run the OTA client beside their firmware.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Link model for fleet devices (default: the scenario's `link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkModel>,
    /// How firmware downloads are modelled.
    #[serde(default)]
    pub download: DownloadModel,
}

impl FleetConfig {
    /// Every fleet device id (thing name) with its group, in order: groups
    /// as listed; within a group `n` from 1 to `count`, or the `members` as
    /// listed.
    pub fn device_ids(&self) -> Vec<(String, &Group)> {
        self.groups
            .iter()
            .flat_map(|g| g.ids().into_iter().map(move |id| (id, g)))
            .collect()
    }

    /// The firmware listed for a type.
    pub fn firmware_for(&self, device_type: &str) -> Option<&FirmwareSet> {
        self.firmware.iter().find(|f| f.device_type == device_type)
    }

    /// The settings of a type (the defaults when it is not listed in `types`).
    pub fn type_config(&self, device_type: &str) -> DeviceTypeConfig {
        self.types
            .iter()
            .find(|t| t.device_type == device_type)
            .cloned()
            .unwrap_or_else(|| DeviceTypeConfig {
                device_type: device_type.to_owned(),
                ota: OtaGate::Enabled,
                recommended: None,
            })
    }

    /// The newest version published for a type.
    pub fn latest(&self, device_type: &str) -> Option<Version> {
        self.firmware_for(device_type)
            .and_then(|f| f.versions.iter().max().copied())
    }
}

/// The firmware versions of one device type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirmwareSet {
    /// Device type (`pet_feeder`).
    #[serde(rename = "type")]
    pub device_type: String,
    /// Versions to publish, each `MAJOR.MINOR.PATCH`.
    pub versions: Vec<Version>,
    /// Size of each generated image, with a unit (B, KiB, MiB); default 1MiB.
    #[serde(default = "default_image_size")]
    pub size: ByteSize,
}

fn default_image_size() -> ByteSize {
    ByteSize(DEFAULT_IMAGE_BYTES)
}

/// Settings of one device type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceTypeConfig {
    /// Device type.
    #[serde(rename = "type")]
    pub device_type: String,
    /// The OTA gate: `enabled` (default) or `disabled`.
    #[serde(default)]
    pub ota: OtaGate,
    /// The recommended version (must be in this type's `firmware`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended: Option<Version>,
}

/// Whether a device type takes OTA updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OtaGate {
    /// Updates are allowed.
    #[default]
    Enabled,
    /// Updates are refused (jobs are rejected or not targeted).
    Disabled,
}

/// Fleet devices of one type starting on a version: either `count` devices
/// the fleet creates, named by the `id` pattern, or `members`, devices of the
/// scenario's `devices` that join the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Device type (needs `firmware` listing `version`).
    #[serde(rename = "type")]
    pub device_type: String,
    /// How many devices, 1 to 10000 (with `id`; not with `members`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub count: Option<u32>,
    /// Device id pattern: `{n}` or `{n:0W}` is the device's number from 1
    /// (`feeder-{n:03}` gives feeder-001, feeder-002, ...). With `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<IdPattern>,
    /// Ids of scenario devices (`devices[].id`) that join the fleet instead
    /// of generated ones: the fleet runs the OTA client for each beside the
    /// device's own firmware, on its own MQTT connection (client id
    /// `{id}-ota`, thing name `{id}`). Not with `count` and `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
    /// The version every device of the group runs at the start.
    pub version: Version,
    /// What goes wrong, per device, with which probability (for members,
    /// what goes wrong for their OTA client).
    #[serde(default)]
    pub faults: FaultProfile,
}

/// The MQTT client id of the OTA client a fleet member runs beside its own
/// firmware: AWS IoT allows one connection per client id, and the device's
/// firmware already holds `{id}`.
pub fn member_ota_client_id(id: &str) -> String {
    format!("{id}-ota")
}

impl Group {
    /// The thing names of the group's devices, in order (empty when the
    /// group is malformed: validation reports it).
    pub fn ids(&self) -> Vec<String> {
        if let Some(members) = &self.members {
            return members.clone();
        }
        match (self.count, &self.id) {
            (Some(count), Some(id)) => (1..=count).map(|n| id.expand(n)).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the group's devices are scenario devices (`members`).
    pub fn has_members(&self) -> bool {
        self.members.is_some()
    }
}

/// Per-device fault probabilities, each 0 to 1 (default 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultProfile {
    /// Probability that a download is corrupted (the hash does not match).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub bad_download: f64,
    /// Probability that a new image fails its first boot (and is rolled back).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub boot_failure: f64,
    /// Probability that the device is offline for the whole run.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub offline: f64,
    /// Probability that power fails once while the device writes its first
    /// download to flash (at a flash operation drawn per device).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub power_loss: f64,
}

/// The downloader model fleet devices fetch firmware through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadModel {
    /// Throughput, with a unit (bit/s, kbit/s, Mbit/s); default 2Mbit/s.
    #[serde(default = "default_bandwidth")]
    pub bandwidth: Bandwidth,
    /// Latency before each request's first byte; default 50ms.
    #[serde(default = "default_download_latency")]
    pub latency: Duration,
}

impl Default for DownloadModel {
    fn default() -> Self {
        DownloadModel {
            bandwidth: default_bandwidth(),
            latency: DEFAULT_DOWNLOAD_LATENCY,
        }
    }
}

fn default_bandwidth() -> Bandwidth {
    Bandwidth(DEFAULT_BANDWIDTH_BPS)
}

fn default_download_latency() -> Duration {
    DEFAULT_DOWNLOAD_LATENCY
}

/// Send an operator prompt to the fleet agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptStep {
    /// What the operator types (`update all pet_feeder devices to the latest firmware`).
    pub text: String,
    /// A name for the job the prompt creates, for `wait_for_job` and `expect: job`.
    #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
    pub as_name: Option<String>,
}

/// Create an OTA job with exact settings (no prompt). AWS's configuration
/// keys (inside `rollout`, `abort`, `timeout`, `retry`) are camelCase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJobStep {
    /// The job id (`[a-zA-Z0-9_-]{1,64}`, unique); later steps refer to it.
    pub id: String,
    /// What the job updates: `{type: pet_feeder}`, `{device: feeder-001}` or `fleet`.
    pub target: JobTarget,
    /// `latest` or an exact version.
    pub version: VersionRef,
    /// `jobExecutionsRolloutConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutConfig>,
    /// `abortConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortConfig>,
    /// `timeoutConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutConfig>,
    /// `jobExecutionsRetryConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// twinrig extension: at most this many executions IN_PROGRESS at once (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_in_progress: Option<u32>,
    /// twinrig extension: abort when more than this many things have failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_after_failures: Option<u32>,
}

impl CreateJobStep {
    /// The step's settings, as the jobs engine takes them.
    pub fn settings(&self) -> RolloutSettings {
        RolloutSettings {
            job_executions_rollout_config: self.rollout.clone(),
            abort_config: self.abort.clone(),
            timeout_config: self.timeout,
            job_executions_retry_config: self.retry.clone(),
            max_in_progress: self.max_in_progress,
            abort_after_failures: self.abort_after_failures,
        }
    }

    /// The step's key for a setting, for error messages and paths.
    pub fn key(setting: Setting) -> &'static str {
        match setting {
            Setting::Rollout => "rollout",
            Setting::Abort => "abort",
            Setting::Timeout => "timeout",
            Setting::Retry => "retry",
            Setting::MaxInProgress => "max_in_progress",
            Setting::AbortAfterFailures => "abort_after_failures",
        }
    }

    /// The CreateJob request for this step, once the caller has resolved the
    /// target to thing names and written the job document.
    pub fn request(&self, targets: Vec<String>, document: serde_json::Value) -> CreateJobRequest {
        CreateJobRequest {
            job_id: self.id.clone(),
            targets,
            document,
            description: None,
            settings: self.settings(),
        }
    }
}

/// What a job updates: `{type: pet_feeder}`, `{device: feeder-001}` or `fleet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JobTarget {
    /// Every device of a type.
    #[serde(rename = "type")]
    DeviceType(String),
    /// One fleet device, by id.
    Device(String),
    /// Every fleet device.
    Fleet,
}

/// A version as a job names it: `latest` or an exact version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    /// The newest in the registry for each targeted type.
    Latest,
    /// This version.
    Exact(Version),
}

impl Serialize for VersionRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            VersionRef::Latest => serializer.serialize_str("latest"),
            VersionRef::Exact(v) => v.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for VersionRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = VersionRef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`latest` or a version MAJOR.MINOR.PATCH, e.g. 2.0.0")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<VersionRef, E> {
                if v == "latest" {
                    return Ok(VersionRef::Latest);
                }
                v.parse().map(VersionRef::Exact).map_err(|e| {
                    E::custom(format!(
                        "expected `latest` or a version like 2.0.0: `{v}` is not a version MAJOR.MINOR.PATCH: {e}"
                    ))
                })
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<VersionRef, E> {
                Err(E::custom(format!(
                    "`{v}` is not a version: expected `latest` or MAJOR.MINOR.PATCH, e.g. 2.0.0"
                )))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<VersionRef, E> {
                Err(E::custom(format!(
                    "`{v}` is not a version: expected `latest` or MAJOR.MINOR.PATCH, e.g. 2.0.0"
                )))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<VersionRef, E> {
                Err(E::custom(
                    "this number is not a version: expected `latest` or MAJOR.MINOR.PATCH, e.g. 2.0.0",
                ))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for VersionRef {
    fn schema_name() -> Cow<'static, str> {
        "VersionRef".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::VersionRef").into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let version = generator.subschema_for::<Version>();
        json_schema!({
            "description": "`latest` (the newest version of each targeted type) or an exact version.",
            "anyOf": [ { "const": "latest" }, version ]
        })
    }
}

/// Wait until a job reaches one of the given statuses; fail at `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForJob {
    /// The job: a `create_job` id or a `prompt`'s `as` name.
    pub job: String,
    /// Any of these (default: a final one, COMPLETED or CANCELED).
    #[serde(default = "final_statuses")]
    pub status: Vec<JobStatus>,
    /// Give up (and fail the scenario) after this long.
    pub timeout: Duration,
}

fn final_statuses() -> Vec<JobStatus> {
    vec![JobStatus::Completed, JobStatus::Canceled]
}

/// A job's status (AWS `JobStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Rolling out.
    InProgress,
    /// Cancelled, or aborted by its criteria.
    Canceled,
    /// Every execution terminal.
    Completed,
}

impl From<JobStatus> for twinrig_cloud::jobs::JobStatus {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::InProgress => twinrig_cloud::jobs::JobStatus::InProgress,
            JobStatus::Canceled => twinrig_cloud::jobs::JobStatus::Canceled,
            JobStatus::Completed => twinrig_cloud::jobs::JobStatus::Completed,
        }
    }
}

/// Check a job now. Only `job` is required; all conditions given must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectJob {
    /// The job: a `create_job` id or a `prompt`'s `as` name.
    pub job: String,
    /// Its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// Whether it was aborted by its abort criteria.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<bool>,
    /// How many things' executions SUCCEEDED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<Comparison>,
    /// How many things failed (latest execution FAILED, TIMED_OUT or REJECTED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Comparison>,
    /// The most executions IN_PROGRESS at one moment, from the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_progress_seen: Option<Comparison>,
    /// How many things' latest execution TIMED_OUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<Box<Comparison>>,
    /// How many things' latest execution was REJECTED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Box<Comparison>>,
    /// How many things' latest execution was CANCELED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canceled: Option<Box<Comparison>>,
    /// Executions that ended with a `statusDetails.reason` containing a text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Box<ExpectReason>>,
}

/// How many things' latest execution ended (FAILED or REJECTED, or only the
/// given `status`) with a `statusDetails.reason` that contains `contains`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectReason {
    /// Text the reason must contain (not empty).
    pub contains: String,
    /// Only executions with this status (default: FAILED or REJECTED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<EndStatus>,
    /// How many (default: at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Comparison>,
}

/// A final execution status a device sets with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EndStatus {
    /// The device tried and failed.
    Failed,
    /// The device refused the job.
    Rejected,
}

/// How many devices of a type report a version in their shadows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectFleet {
    /// Device type.
    #[serde(rename = "type")]
    pub device_type: String,
    /// The version (must be in the type's `firmware`).
    pub version: Version,
    /// How many (default: every device of the type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Comparison>,
    /// Also check every device of the type: its flash boots a valid image
    /// (the header reads and the SHA-256 matches otadata) and its shadow
    /// reports that image's version (`true`), or that some device does not
    /// (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadows_agree: Option<bool>,
}

/// Alerts raised (a job aborted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectAlert {
    /// Only this job's alerts (default: any job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// How many (default: at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Comparison>,
}

// ---------------------------------------------------------------------------
// Value types written as strings.

/// A firmware version, `MAJOR.MINOR.PATCH`: the OTA client's own type (the
/// one in image headers and job documents), read from files in its strict
/// form.
pub use ota_client::image::{VERSION_PATTERN, Version};

/// A size in bytes, written with a unit: `B`, `KiB` or `MiB` (`1MiB`, `512KiB`, `1.5MiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Bytes.
    pub const fn bytes(&self) -> u64 {
        self.0
    }
}

/// The regular expression of a size (used in the JSON Schema).
pub const BYTE_SIZE_PATTERN: &str = r"^[0-9]+(\.[0-9]+)? ?(B|KiB|MiB)$";

const SIZE_UNITS: &[(&str, u64)] = &[("MiB", MIB), ("KiB", KIB), ("B", 1)];

/// Why a size or bandwidth does not read: the text, what is wrong, and
/// the units to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuantityError(String);

impl FromStr for ByteSize {
    type Err = QuantityError;

    fn from_str(text: &str) -> Result<Self, QuantityError> {
        parse_with_unit(text, SIZE_UNITS, "size", "B, KiB, MiB").map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_with_unit(self.0, SIZE_UNITS))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrVisitor::<ByteSize>::new(
            "a size with a unit, e.g. 1MiB or 512KiB",
            "is not a size: a size needs a unit, e.g. 1MiB or 512KiB (B, KiB, MiB)",
        ))
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::ByteSize").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": BYTE_SIZE_PATTERN,
            "description": "A size: a decimal number and a unit (B, KiB = 1024 B, MiB = 1024 KiB), \
                a whole number of bytes, e.g. `1MiB`, `512KiB`, `1.5MiB`. A bare number is not accepted.",
            "examples": ["1MiB", "512KiB"]
        })
    }
}

/// A data rate in bits per second, written with a unit: `bit/s`, `kbit/s`
/// (1000) or `Mbit/s` (1 000 000): `2Mbit/s`, `500kbit/s`, `1.5Mbit/s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bandwidth(pub u64);

impl Bandwidth {
    /// Bits per second.
    pub const fn bits_per_second(&self) -> u64 {
        self.0
    }
}

/// The regular expression of a bandwidth (used in the JSON Schema).
pub const BANDWIDTH_PATTERN: &str = r"^[0-9]+(\.[0-9]+)? ?(bit/s|kbit/s|Mbit/s)$";

const RATE_UNITS: &[(&str, u64)] = &[("Mbit/s", 1_000_000), ("kbit/s", 1_000), ("bit/s", 1)];

impl FromStr for Bandwidth {
    type Err = QuantityError;

    fn from_str(text: &str) -> Result<Self, QuantityError> {
        parse_with_unit(text, RATE_UNITS, "bandwidth", "bit/s, kbit/s, Mbit/s").map(Bandwidth)
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_with_unit(self.0, RATE_UNITS))
    }
}

impl Serialize for Bandwidth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bandwidth {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrVisitor::<Bandwidth>::new(
            "a bandwidth with a unit, e.g. 2Mbit/s",
            "is not a bandwidth: it needs a unit, e.g. 2Mbit/s or 500kbit/s (bit/s, kbit/s, Mbit/s)",
        ))
    }
}

impl JsonSchema for Bandwidth {
    fn schema_name() -> Cow<'static, str> {
        "Bandwidth".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::Bandwidth").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": BANDWIDTH_PATTERN,
            "description": "A data rate: a decimal number and a unit (bit/s, kbit/s = 1000 bit/s, \
                Mbit/s = 1000000 bit/s), a whole number of bit/s, e.g. `2Mbit/s`, `500kbit/s`.",
            "examples": ["2Mbit/s", "500kbit/s"]
        })
    }
}

/// `<decimal>[ ]<unit>` as a whole number of base units, exactly.
fn parse_with_unit(
    text: &str,
    units: &[(&str, u64)],
    what: &str,
    list: &str,
) -> Result<u64, QuantityError> {
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let unit = unit.strip_prefix(' ').unwrap_or(unit);
    if number.is_empty() {
        return Err(QuantityError(format!(
            "`{text}` is not a {what}: expected a number and a unit ({list})"
        )));
    }
    if unit.is_empty() {
        return Err(QuantityError(format!(
            "a {what} needs a unit ({list}): `{text}`"
        )));
    }
    let Some(&(_, scale)) = units.iter().find(|(u, _)| *u == unit) else {
        return Err(QuantityError(format!(
            "unknown {what} unit `{unit}` in `{text}`; use one of {list}"
        )));
    };
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() || number.ends_with('.') || frac.contains('.') {
        return Err(QuantityError(format!(
            "`{text}` is not a {what}: malformed number `{number}`"
        )));
    }
    let too_big = || QuantityError(format!("`{text}` is too large"));
    let whole: u128 = whole.parse().map_err(|_| too_big())?;
    let mut value = whole.checked_mul(u128::from(scale)).ok_or_else(too_big)?;
    if !frac.is_empty() {
        if frac.len() > 18 {
            return Err(QuantityError(format!("`{text}` has too many decimals")));
        }
        let digits: u128 = frac.parse().map_err(|_| too_big())?;
        let denom = 10u128.pow(u32::try_from(frac.len()).map_err(|_| too_big())?);
        let scaled = digits * u128::from(scale);
        if !scaled.is_multiple_of(denom) {
            return Err(QuantityError(format!(
                "`{text}` is not a whole number of {}",
                units.last().map_or("units", |(u, _)| u)
            )));
        }
        value = value.checked_add(scaled / denom).ok_or_else(too_big)?;
    }
    u64::try_from(value).map_err(|_| too_big())
}

/// The shortest exact form with the largest unit that divides the value.
fn format_with_unit(value: u64, units: &[(&str, u64)]) -> String {
    let (unit, scale) = units
        .iter()
        .find(|(_, s)| value != 0 && value.is_multiple_of(*s))
        .or(units.last())
        .copied()
        .unwrap_or(("", 1));
    format!("{}{unit}", value / scale)
}

/// Reads a `FromStr` value from a YAML string; numbers get `not_string`.
struct StrVisitor<T> {
    expecting: &'static str,
    not_string: &'static str,
    _t: std::marker::PhantomData<T>,
}

impl<T> StrVisitor<T> {
    fn new(expecting: &'static str, not_string: &'static str) -> Self {
        StrVisitor {
            expecting,
            not_string,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: FromStr<Err: fmt::Display>> Visitor<'_> for StrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Err(E::custom(format!("`{v}` {}", self.not_string)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Err(E::custom(format!("`{v}` {}", self.not_string)))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        // Not the value: YAML already turned `2.10` into 2.1.
        Err(E::custom(format!("this number {}", self.not_string)))
    }
}

/// A device id pattern: text with `{n}` or `{n:0W}` (the device's number
/// from 1, zero-padded to at least W digits). `{n}` is the only placeholder;
/// other braces are errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPattern {
    text: String,
    parts: Vec<PatternPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternPart {
    Text(String),
    Number { width: usize },
}

/// The widest zero padding `{n:0W}` may ask for.
pub const MAX_PATTERN_WIDTH: usize = 10;

impl IdPattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it has a `{n}` placeholder.
    pub fn has_placeholder(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, PatternPart::Number { .. }))
    }

    /// The id of device number `n` (from 1).
    pub fn expand(&self, n: u32) -> String {
        let mut out = String::with_capacity(self.text.len() + 4);
        for part in &self.parts {
            match part {
                PatternPart::Text(t) => out.push_str(t),
                PatternPart::Number { width } => out.push_str(&format!("{n:0width$}")),
            }
        }
        out
    }
}

/// Why an id pattern does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdPatternError(String);

impl FromStr for IdPattern {
    type Err = IdPatternError;

    fn from_str(text: &str) -> Result<Self, IdPatternError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            if rest[i..].starts_with('}') {
                return Err(IdPatternError(format!(
                    "id pattern `{text}`: a `}}` without `{{`; the only placeholder is `{{n}}` or `{{n:0W}}`"
                )));
            }
            let Some(close) = rest[i..].find('}') else {
                return Err(IdPatternError(format!(
                    "id pattern `{text}`: a `{{` without `}}`; the only placeholder is `{{n}}` or `{{n:0W}}`"
                )));
            };
            let inner = &rest[i + 1..i + close];
            let width = match inner {
                "n" => 0,
                _ => match inner.strip_prefix("n:0") {
                    Some(w) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => {
                        match w.parse::<usize>() {
                            Ok(w) if (1..=MAX_PATTERN_WIDTH).contains(&w) => w,
                            _ => {
                                return Err(IdPatternError(format!(
                                    "id pattern `{text}`: the width in `{{{inner}}}` must be from 1 to {MAX_PATTERN_WIDTH}"
                                )));
                            }
                        }
                    }
                    _ => {
                        return Err(IdPatternError(format!(
                            "id pattern `{text}`: `{{{inner}}}` is not a placeholder; use `{{n}}` or `{{n:0W}}` (e.g. `{{n:03}}`)"
                        )));
                    }
                },
            };
            if !literal.is_empty() {
                parts.push(PatternPart::Text(std::mem::take(&mut literal)));
            }
            parts.push(PatternPart::Number { width });
            rest = &rest[i + close + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(PatternPart::Text(literal));
        }
        Ok(IdPattern {
            text: text.to_owned(),
            parts,
        })
    }
}

impl fmt::Display for IdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for IdPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for IdPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrVisitor::<IdPattern>::new(
            "a device id pattern such as \"feeder-{n:03}\"",
            "is not an id pattern: write text with `{n}` or `{n:0W}`, e.g. \"feeder-{n:03}\"",
        ))
    }
}

impl JsonSchema for IdPattern {
    fn schema_name() -> Cow<'static, str> {
        "IdPattern".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::IdPattern").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "description": "A device id pattern: `{n}` is the device's number from 1, `{n:0W}` the \
                same zero-padded to W digits (`feeder-{n:03}` gives feeder-001, feeder-002, ...). \
                No other braces. Each id follows the rules of `devices[].id`.",
            "examples": ["feeder-{n:03}", "hand-{n}"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_plain_semver() {
        assert_eq!("1.2.3".parse(), Ok(Version::new(1, 2, 3)));
        assert_eq!("0.0.0".parse(), Ok(Version::new(0, 0, 0)));
        assert_eq!(Version::new(10, 0, 1).to_string(), "10.0.1");
        assert!(Version::new(1, 10, 0) > Version::new(1, 9, 9));
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.2.x",
            "1.2.3-rc.1",
            "1.2.3+b",
            "v1.2.3",
            "1..3",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_bandwidths_need_units_and_are_exact() {
        assert_eq!("1MiB".parse(), Ok(ByteSize(MIB)));
        assert_eq!("512 KiB".parse(), Ok(ByteSize(512 * KIB)));
        assert_eq!("1.5MiB".parse(), Ok(ByteSize(MIB * 3 / 2)));
        assert_eq!("10B".parse(), Ok(ByteSize(10)));
        for bad in ["1", "1MB", "1 mib", "MiB", "1.MiB", "0.1B", "1.2.3KiB", ""] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
        assert_eq!(ByteSize(MIB).to_string(), "1MiB");
        assert_eq!(ByteSize(1536).to_string(), "1536B");
        assert_eq!(ByteSize(2048).to_string(), "2KiB");
        assert_eq!("2Mbit/s".parse(), Ok(Bandwidth(2_000_000)));
        assert_eq!("1.5 kbit/s".parse(), Ok(Bandwidth(1500)));
        assert_eq!("9600bit/s".parse(), Ok(Bandwidth(9600)));
        for bad in ["2", "2Mbps", "2MB/s", "0.5bit/s"] {
            assert!(bad.parse::<Bandwidth>().is_err(), "{bad}");
        }
        assert_eq!(Bandwidth(2_500_000).to_string(), "2500kbit/s");
        assert_eq!(Bandwidth(0).to_string(), "0bit/s");
        for text in ["1MiB", "3KiB", "7B"] {
            let v: ByteSize = text.parse().unwrap();
            assert_eq!(v.to_string(), text);
        }
    }

    #[test]
    fn id_patterns_expand_one_based_and_padded() {
        let p: IdPattern = "feeder-{n:03}".parse().unwrap();
        assert_eq!(p.expand(1), "feeder-001");
        assert_eq!(p.expand(42), "feeder-042");
        assert_eq!(p.expand(1000), "feeder-1000");
        let p: IdPattern = "{n}-of-{n:02}".parse().unwrap();
        assert_eq!(p.expand(7), "7-of-07");
        let p: IdPattern = "gateway".parse().unwrap();
        assert!(!p.has_placeholder());
        assert_eq!(p.expand(1), "gateway");
        for bad in [
            "a-{i}",
            "a-{n",
            "a-}",
            "a-{n:3}",
            "a-{n:00}",
            "a-{n:011}",
            "{}",
            "{{n}}",
        ] {
            assert!(bad.parse::<IdPattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn device_ids_follow_group_order_with_members_as_listed() {
        let group = |t: &str, count, id: &str| Group {
            device_type: t.into(),
            count: Some(count),
            id: Some(id.parse().unwrap()),
            members: None,
            version: Version::new(1, 0, 0),
            faults: FaultProfile::default(),
        };
        let fleet = FleetConfig {
            firmware: Vec::new(),
            types: Vec::new(),
            groups: vec![
                group("a", 2, "a-{n:02}"),
                Group {
                    count: None,
                    id: None,
                    members: Some(vec!["hand-1".into(), "arm".into()]),
                    ..group("h", 1, "x")
                },
                group("b", 3, "b{n}"),
            ],
            link: None,
            download: DownloadModel::default(),
        };
        let ids: Vec<(String, &str)> = fleet
            .device_ids()
            .into_iter()
            .map(|(id, g)| (id, g.device_type.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("a-01".to_owned(), "a"),
                ("a-02".to_owned(), "a"),
                ("hand-1".to_owned(), "h"),
                ("arm".to_owned(), "h"),
                ("b1".to_owned(), "b"),
                ("b2".to_owned(), "b"),
                ("b3".to_owned(), "b"),
            ]
        );
    }
}
