//! The OTA fleet of a scenario, wired end to end: firmware published into the
//! cloud twin's registry, simulated devices running the real `ota-client`
//! against a RAM flash and a virtual-time downloader, and the control-plane
//! side of the `create_job` / `prompt` / `wait_for_job` steps and the
//! `job` / `fleet` / `alert` checks.
//!
//! # Robots in the fleet
//!
//! A group either creates its devices (`count` and `id`) or names scenario
//! devices (`members`). A created device is the OTA client alone, connected
//! as its thing name. A member keeps running its own firmware or agent (the
//! RVR bridge, the hand agent: see `crate::devices`); the fleet adds the
//! OTA client beside it as a second task, the way the OTA agent is its own
//! process on a real robot. AWS IoT allows one MQTT connection per client
//! id, and the robot's firmware holds `{id}`, so the OTA client connects as
//! `{id}-ota` ([`member_ota_client_id`]) over the member's own link and
//! serves the thing `{id}` (`OtaConfig::thing_name`): jobs, shadow and
//! heartbeat are the thing's. Its flash is a [`RamFlash`] of its own; the
//! robot twins have no firmware flash to share.
//!
//! Determinism: devices are created in `FleetConfig::device_ids` order, each
//! device draws its faults from its own stream `fleet:{id}` (offline, bad
//! download, where the corruption lands, power loss, where power fails, then
//! one draw per new-image boot), firmware bodies come from a ChaCha stream
//! named after type and version, and every map is a BTreeMap.
//!
//! # The OTA gate
//!
//! The per-type gate (`types[].ota`, the `set_ota` tool, a "disable OTA"
//! prompt) is kept in [`Fleet`] and written to `desired.otaEnabled` in the
//! shadow of every device of the type ([`Fleet::set_gate`]). The device
//! follows its shadow (see `ota_client::client`): it asks for it at boot and
//! applies every delta at once, without a reboot. Jobs still target a gated
//! type: each of its devices REJECTs the execution it is offered, with
//! `reason` `OTA disabled for <type>` (the gate is enforced where the update
//! would happen, so a job made outside the agent is refused too).
//!
//! # Time on a device
//!
//! - Downloads ([`SimDownloader`]) stream: the HEAD and the GET each wait
//!   the model's `latency`, then bytes come at its `bandwidth`.
//! - Flash ([`RamFlash`]) costs [`FlashTiming`] (assumed datasheet
//!   typicals, parameters); flash calls are synchronous, so the time is owed
//!   ([`Busy`]) and paid at the device's next await (download, publish,
//!   delay): the CPU waits for the flash, nothing overlaps.
//! - A reboot takes [`REBOOT_NS`].
//!
//! With the defaults (2 Mbit/s, 50 ms) a 1 MiB image takes about 8.5 s from
//! the job's start to the new slot selected (transfer 4.19 s, 17 block erases
//! 2.55 s, 4097 page programs 1.64 s, read-back and otadata 0.07 s, two
//! request latencies 0.1 s), and about 9.2 s to SUCCEEDED (reboot, first
//! boot check, confirmation); docs/BENCHMARKS.md has the breakdown.
//!
//! # Faults
//!
//! `bad_download` flips one byte of every download (the SHA-256 check fails);
//! `boot_failure` is the chance that a new image fails its first-boot
//! self-test (rolled back); `power_loss` fails power once, during an erase or
//! write of the first download (that operation is torn; the device restarts
//! on what the flash holds and reports the execution FAILED); `offline` keeps
//! the device's link down for the whole run (it never connects, so its
//! execution stays QUEUED: AWS times out only IN_PROGRESS executions).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use ota_client::image::{ImageHeader, Version, build_image};
use ota_client::{Exit, Layout, OtaConfig, Partitions};
use rand::{Rng, RngCore};
use serde_json::json;
use twinrig_cloud::jobs::{JobStatus, RolloutSettings};
use twinrig_sim::net::Network;
use twinrig_sim::rng::SimRng;
use twinrig_sim::{MILLIS, Nanos, SimHandle};

use crate::check::compare;
use crate::cloud_twin::CloudTwin;
use crate::devices::ReadyWhen;
use crate::fleet_prompt::{OfflineIntents, Target, VersionSpec};
use crate::fleet_tools::{FleetBackend, OtaJobSpec, PromptResult, run_prompt};

pub mod invariants;
mod local_backend;
mod peripherals;
use crate::scenario::fleet::{
    CreateJobStep, ExpectAlert, ExpectFleet, ExpectJob, FleetConfig, JobTarget, OtaGate,
    VersionRef, member_ota_client_id,
};
use crate::scenario::{Comparison, Device, LinkModel};
pub use local_backend::LocalFleet;
pub use peripherals::*;

/// How long presigned firmware URLs in job documents stay valid.
pub const URL_EXPIRY_S: u64 = 3600;
/// How long a simulated device takes to reboot.
pub const REBOOT_NS: Nanos = 500 * MILLIS;
/// Trace channel for fleet steps (jobs created, prompts and their outcomes).
pub const FLEET_CHANNEL: &str = "/fleet";
/// Topic of the answers to prompts that were not acted on.
pub const ANSWER_TOPIC: &str = "twinrig/fleet/answer";

/// Why a fleet could not be set up or an operator's step on it failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// An image size this machine cannot hold in memory.
    #[error("image too large")]
    ImageTooLarge,
    /// The OTA client cannot build an image for the type (its name does not
    /// fit the image header).
    #[error("cannot build an image for device type {0:?}")]
    Image(String),
    /// The firmware registry refused an image.
    #[error("publishing firmware: {0}")]
    Publish(String),
    /// A device's shadow could not be written.
    #[error("{device}: shadow: {message}")]
    Shadow {
        /// The device.
        device: String,
        /// What the shadow service said.
        message: String,
    },
    /// A device's factory version is not in the registry.
    #[error("{device}: no firmware {device_type} {version}")]
    NoFirmware {
        /// The device.
        device: String,
        /// Its type.
        device_type: String,
        /// Its factory version.
        version: Version,
    },
    /// A device's flash could not be provisioned with its factory image.
    #[error("{device}: provisioning: {message}")]
    Provisioning {
        /// The device.
        device: String,
        /// What the partition table said.
        message: String,
    },
    /// A group lists a member that is not among the scenario's devices.
    #[error("fleet member {0} is not a scenario device")]
    NotAScenarioDevice(String),
    /// The simulated network refused a device's connection.
    #[error("{0}")]
    Connect(String),
    /// A fleet tool failed (create a job, ...).
    #[error(transparent)]
    Tool(#[from] crate::fleet_tools::ToolError),
    /// A prompt could not be carried out.
    #[error("{0}")]
    Prompt(String),
}

// ---------------------------------------------------------------------------
// Firmware

/// The image published for `device_type` `version`: the ota-client header and
/// a body of `size` bytes from a ChaCha stream named after type and version.
pub fn firmware_image(
    device_type: &str,
    version: Version,
    size: u64,
) -> Result<Vec<u8>, FleetError> {
    let mut body = vec![0u8; usize::try_from(size).map_err(|_| FleetError::ImageTooLarge)?];
    twinrig_sim::rng::stream(0, &format!("firmware:{device_type}:{version}")).fill_bytes(&mut body);
    build_image(device_type, version, &body)
        .ok_or_else(|| FleetError::Image(device_type.to_owned()))
}

// ---------------------------------------------------------------------------
// The fleet

/// One simulated fleet device.
#[derive(Debug, Clone)]
pub struct FleetDevice {
    /// Thing name (also the MQTT client id of a generated device; a
    /// member's OTA client connects as `{id}-ota`).
    pub id: String,
    /// Device type.
    pub device_type: String,
    /// Offline for the whole run (fault).
    pub offline: bool,
    /// Its downloads are corrupted (fault).
    pub bad_download: bool,
    /// Power fails once during its first download (fault).
    pub power_loss: bool,
    /// MQTT client id of its OTA client.
    pub client_id: String,
    /// Virtual time its OTA client last (re)booted.
    last_boot: Rc<Cell<Nanos>>,
    /// Its flash (shared with the device) and partition table.
    flash: RamFlash,
    layout: Layout,
}

impl FleetDevice {
    /// What its OTA client must have done since its last boot to be ready:
    /// subscribed to its jobs notifications, and asked for its shadow (the
    /// gate), which it does once every subscription is in place.
    pub fn ready_when(&self) -> Vec<ReadyWhen> {
        let topics = ota_client::Topics::new(&self.id);
        let since = self.last_boot.get();
        [
            ReadyWhen::subscribed(&self.client_id, &topics.notify_next),
            ReadyWhen::published(&self.client_id, &topics.shadow_get),
        ]
        .into_iter()
        .map(|r| ReadyWhen { since, ..r })
        .collect()
    }

    /// The version of the image the device's flash boots, if the boot
    /// decision finds a valid one (header readable, SHA-256 as otadata
    /// records it). Reads the flash without disturbing the device.
    pub fn flash_version(&self) -> Option<String> {
        let mut parts = Partitions::new(self.flash.probe(), self.layout).ok()?;
        let slot = parts.boot_partition().ok()??;
        let header = parts.read_header(slot).ok()??;
        Some(header.version.to_string())
    }
}

/// The fleet of a run: its devices and the state the fleet steps keep.
pub struct Fleet {
    config: FleetConfig,
    devices: Vec<FleetDevice>,
    /// OTA gate per device type (the per-type configuration); devices
    /// follow it through `desired.otaEnabled` in their shadows.
    gates: RefCell<BTreeMap<String, bool>>,
    /// Jobs created by fleet steps, in order.
    jobs: RefCell<Vec<String>>,
    prompts: Cell<u64>,
}

/// What a prompt did (the runner traces it; [`crate::fleet_tools::PromptReport`] has the tool calls).
#[derive(Debug, Clone, PartialEq)]
pub enum PromptOutcome {
    /// A job was created (its id).
    Created(String),
    /// The fleet status, as text.
    Status(String),
    /// A job was canceled (its id).
    Canceled(String),
    /// The OTA gate of a type was set.
    Gate(String),
    /// Nothing was done; the answer says why.
    Unclear(String),
}

/// What [`Fleet::provision_cloud`] tells the devices' set-up: the largest
/// image per type and each type's OTA gate.
pub type CloudProvisioned = (BTreeMap<String, u64>, BTreeMap<String, bool>);

impl Fleet {
    /// The fleet's side in the cloud, before any device runs: its firmware
    /// published into the registry, and the closed OTA gates written into
    /// the devices' shadows. Both a run and `serve cloud --fleet` start
    /// with this. Returns the largest image per type (for the slot size)
    /// and each type's gate.
    pub fn provision_cloud(
        cloud: &CloudTwin,
        config: &FleetConfig,
    ) -> Result<CloudProvisioned, FleetError> {
        let now_s = cloud.now_s();
        let mut largest: BTreeMap<String, u64> = BTreeMap::new();
        for set in &config.firmware {
            for v in &set.versions {
                let image = firmware_image(&set.device_type, *v, set.size.0)?;
                let len = image.len() as u64;
                cloud
                    .registry()
                    .borrow_mut()
                    .publish(&set.device_type, &v.to_string(), image, now_s)
                    .map_err(|e| FleetError::Publish(e.to_string()))?;
                let l = largest.entry(set.device_type.clone()).or_default();
                *l = (*l).max(len);
            }
        }
        let gates: BTreeMap<String, bool> = config
            .groups
            .iter()
            .map(|g| {
                let gate = config.type_config(&g.device_type).ota == OtaGate::Enabled;
                (g.device_type.clone(), gate)
            })
            .collect();
        // Devices learn the gate from their shadows (they ask at boot), so a
        // closed gate is written there before they start; an open one is
        // their default and needs no shadow entry.
        for (id, group) in config.device_ids() {
            if gates.get(&group.device_type) == Some(&false) {
                cloud
                    .shadows_mut()
                    .update_from_service(&id, None, &gate_document(false), now_s)
                    .map_err(|e| FleetError::Shadow {
                        device: id.clone(),
                        message: format!("{e:?}"),
                    })?;
            }
        }
        Ok((largest, gates))
    }

    /// Publishes the firmware, then creates, connects, provisions and starts
    /// every device. `default_link` is the scenario's link and `devices` its
    /// devices (group `members` are among them); `run_ns` the longest the run
    /// may last (offline devices are out that long).
    pub fn start(
        handle: &SimHandle,
        network: &Network,
        cloud: &Rc<CloudTwin>,
        config: &FleetConfig,
        devices: &[Device],
        default_link: &LinkModel,
        run_ns: Nanos,
    ) -> Result<Rc<Fleet>, FleetError> {
        let (largest, gates) = Fleet::provision_cloud(cloud, config)?;
        let gates = RefCell::new(gates);
        let timing = FlashTiming::default();
        let link = config.link.as_ref().unwrap_or(default_link).link_params();
        let members = devices;
        let mut devices = Vec::new();
        for (id, group) in config.device_ids() {
            let mut rng = handle.rng(&format!("fleet:{id}"));
            let offline = rng.random::<f64>() < group.faults.offline;
            let bad_download = rng.random::<f64>() < group.faults.bad_download;
            let corrupt_at: f64 = rng.random();
            let power_loss = rng.random::<f64>() < group.faults.power_loss;
            let cut_fraction: f64 = rng.random();
            let device_type = group.device_type.clone();
            let image_len = largest.get(&device_type).copied().unwrap_or(SECTOR as u64);
            let layout = Layout::for_image(image_len).ok_or(FleetError::ImageTooLarge)?;
            let mut flash = RamFlash::new(layout.end::<RamFlash>() as usize);
            let factory = cloud
                .registry()
                .borrow()
                .get(&device_type, &group.version.to_string())
                .map(|f| f.image.clone())
                .ok_or_else(|| FleetError::NoFirmware {
                    device: id.clone(),
                    device_type: device_type.clone(),
                    version: group.version,
                })?;
            Partitions::new(&mut flash, layout)
                .and_then(|mut p| p.provision(&factory))
                .map_err(|e| FleetError::Provisioning {
                    device: id.clone(),
                    message: format!("{e:?}"),
                })?;
            // A member's OTA client is a second program on the robot: its own
            // MQTT connection (AWS IoT allows one per client id, and the
            // robot's firmware holds `{id}`) over the robot's own link, on the
            // thing's topics. A generated device is the OTA client alone.
            let (client_id, link, thing_name) = if group.has_members() {
                let member = members
                    .iter()
                    .find(|d| d.id == id)
                    .ok_or_else(|| FleetError::NotAScenarioDevice(id.clone()))?;
                let link = member.link.as_ref().unwrap_or(default_link).link_params();
                (member_ota_client_id(&id), link, Some(id.clone()))
            } else {
                (id.clone(), link.clone(), None)
            };
            let mqtt = network
                .connect(&client_id, link)
                .map_err(FleetError::Connect)?;
            let last_boot = Rc::new(Cell::new(handle.now()));
            if offline {
                network.outage(&client_id, run_ns);
            }
            let busy = Busy::default();
            let power = Rc::new(Power::default());
            let downloader = SimDownloader::new(
                handle,
                cloud.clone(),
                config.download.latency.nanos(),
                config.download.bandwidth.0,
                bad_download.then_some(corrupt_at),
            )
            .on_device(busy.clone(), power.clone());
            let mut ota = OtaConfig::new(&device_type, layout);
            ota.heartbeat_period_ms = 60_000;
            ota.thing_name = thing_name;
            // A download's erase/write count: one program per 256-byte
            // page, one erase per 64 KiB block; cut between 5 % and 95 %.
            let ops = image_len.div_ceil(PAGE as u64) + image_len.div_ceil(BLOCK as u64);
            let power_cut_at =
                power_loss.then(|| 1 + ((0.05 + 0.9 * cut_fraction) * ops as f64) as u64);
            let task = DeviceTask {
                handle: handle.clone(),
                mqtt: DeviceMqtt::new(mqtt, handle.clone(), busy.clone(), power.clone()),
                downloader,
                ota,
                boot_failure: group.faults.boot_failure,
                rng,
                flash: flash.timed(timing, busy.clone(), power.clone()),
                busy,
                power,
                power_cut_at,
                last_boot: last_boot.clone(),
            };
            handle.spawn(format!("fleet {id}"), task.run());
            devices.push(FleetDevice {
                id,
                device_type,
                offline,
                bad_download,
                power_loss,
                client_id,
                last_boot,
                flash,
                layout,
            });
        }
        Ok(Rc::new(Fleet {
            config: config.clone(),
            devices,
            gates,
            jobs: RefCell::new(Vec::new()),
            prompts: Cell::new(0),
        }))
    }

    /// The devices, in `device_ids` order.
    pub fn devices(&self) -> &[FleetDevice] {
        &self.devices
    }

    /// OTA gate per device type (read it here; change it with [`Self::set_gate`]).
    pub(crate) fn gates(&self) -> &RefCell<BTreeMap<String, bool>> {
        &self.gates
    }

    /// Open or close the OTA gate of a type: the per-type configuration,
    /// and `desired.otaEnabled` in the shadow of every device of the type
    /// (UpdateThingShadow, as the agent would call it on AWS). Devices follow
    /// the shadow's delta at once, without a reboot; from then on a device
    /// with the gate closed REJECTs the OTA executions it is offered. Returns
    /// how many shadows were updated.
    pub async fn set_gate(
        &self,
        cloud: &CloudTwin,
        device_type: &str,
        enabled: bool,
    ) -> Result<usize, FleetError> {
        self.gates
            .borrow_mut()
            .insert(device_type.to_owned(), enabled);
        let mut n = 0;
        for d in self.devices.iter().filter(|d| d.device_type == device_type) {
            cloud
                .update_shadow(&d.id, &gate_document(enabled))
                .await
                .map_err(|e| FleetError::Shadow {
                    device: d.id.clone(),
                    message: e.to_string(),
                })?;
            n += 1;
        }
        Ok(n)
    }

    /// Jobs created through the fleet tools, in order (`cancel` without a job
    /// id cancels the newest one still in progress).
    pub(crate) fn jobs_created(&self) -> &RefCell<Vec<String>> {
        &self.jobs
    }

    /// A `create_job` step, through the `create_ota_job` tool; returns the job id.
    pub async fn create_job(
        &self,
        cloud: &CloudTwin,
        step: &CreateJobStep,
    ) -> Result<String, FleetError> {
        let spec = OtaJobSpec {
            job_id: step.id.clone(),
            target: match &step.target {
                JobTarget::DeviceType(t) => Target::DeviceType(t.clone()),
                JobTarget::Device(d) => Target::Device(d.clone()),
                JobTarget::Fleet => Target::Fleet,
            },
            version: match step.version {
                VersionRef::Latest => VersionSpec::Latest,
                VersionRef::Exact(v) => VersionSpec::Exact(v.to_string()),
            },
            rollout: step.settings(),
            description: None,
        };
        LocalFleet::new(self, cloud)
            .create_ota_job(&spec)
            .await
            .map(|created| created.job_id)
            .map_err(FleetError::from)
    }

    /// A `prompt` step: the offline intent model maps it onto the fleet tools
    /// ([`crate::fleet_tools::run_prompt`]). A job it creates is named
    /// `as_name`, or `prompt-N` (N counts the prompts that created jobs).
    pub async fn prompt(
        &self,
        cloud: &CloudTwin,
        text: &str,
        as_name: Option<&str>,
    ) -> Result<PromptOutcome, FleetError> {
        let mut job_id = || {
            let n = self.prompts.get() + 1;
            self.prompts.set(n);
            as_name.map_or_else(|| format!("prompt-{n}"), str::to_owned)
        };
        let report = run_prompt(
            &LocalFleet::new(self, cloud),
            &OfflineIntents,
            text,
            &mut job_id,
            &RolloutSettings::default(),
        )
        .await;
        match report.result {
            PromptResult::Created(job) => Ok(PromptOutcome::Created(job.job_id)),
            PromptResult::Status(s) => Ok(PromptOutcome::Status(s.to_string())),
            PromptResult::Canceled(job) => Ok(PromptOutcome::Canceled(job)),
            PromptResult::Gate(g) => Ok(PromptOutcome::Gate(g.to_string())),
            PromptResult::Unclear(answer) => Ok(PromptOutcome::Unclear(answer)),
            PromptResult::Failed(e) => Err(FleetError::Prompt(e)),
        }
    }

    /// Versions reported in the shadows, as text: `pet_feeder: 1.0.0 x3, 2.0.0 x17`.
    pub fn status(&self, cloud: &CloudTwin, target: &Target) -> String {
        LocalFleet::new(self, cloud).status_now(target).to_string()
    }

    /// `expect: fleet`.
    pub(crate) fn check_fleet(&self, cloud: &CloudTwin, e: &ExpectFleet) -> Result<String, String> {
        let of_type: Vec<&FleetDevice> = self
            .devices
            .iter()
            .filter(|d| d.device_type == e.device_type)
            .collect();
        let want = e.version.to_string();
        let count = of_type
            .iter()
            .filter(|d| reported_firmware(cloud, &d.id).as_deref() == Some(want.as_str()))
            .count();
        let cmp = e.count.clone().unwrap_or(Comparison {
            equals: Some(json!(of_type.len())),
            ..Comparison::default()
        });
        compare(&json!(count), &cmp).map_err(|err| {
            format!(
                "{} devices on {want}: {err} ({})",
                e.device_type,
                self.status(cloud, &Target::DeviceType(e.device_type.clone()))
            )
        })?;
        let mut detail = format!("{count} of {} on {want}", of_type.len());
        if let Some(want_agree) = e.shadows_agree {
            let disagree: Vec<String> = of_type
                .iter()
                .filter_map(|d| {
                    let flash = d.flash_version();
                    let shadow = reported_firmware(cloud, &d.id);
                    (flash.is_none() || flash != shadow).then(|| {
                        format!(
                            "{}: flash boots {}, shadow reports {}",
                            d.id,
                            flash.as_deref().unwrap_or("no valid image"),
                            shadow.as_deref().unwrap_or("nothing")
                        )
                    })
                })
                .collect();
            if disagree.is_empty() != want_agree {
                return Err(if want_agree {
                    format!("shadows disagree with devices: {}", disagree.join("; "))
                } else {
                    "every shadow agrees with its device".to_owned()
                });
            }
            detail.push_str(&format!(
                "; {} of {} shadows agree with the flash",
                of_type.len() - disagree.len(),
                of_type.len()
            ));
        }
        Ok(detail)
    }

    /// The fleet configuration.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }
}

/// The shadow update that sets the OTA gate.
fn gate_document(enabled: bool) -> Vec<u8> {
    json!({"state": {"desired": {"otaEnabled": enabled}}})
        .to_string()
        .into_bytes()
}

/// `state.reported.firmware` of a thing's classic shadow.
pub fn reported_firmware(cloud: &CloudTwin, thing: &str) -> Option<String> {
    let doc = cloud.shadows().document(thing, None)?;
    doc.pointer("/state/reported/firmware")?
        .as_str()
        .map(str::to_owned)
}

/// `expect: job`.
pub(crate) fn check_job(cloud: &CloudTwin, e: &ExpectJob) -> Result<String, String> {
    let d = cloud
        .jobs()
        .borrow()
        .describe_job(&e.job)
        .map_err(|err| err.to_string())?;
    let p = &d.job_process_details;
    let failed =
        p.number_of_failed_things + p.number_of_timed_out_things + p.number_of_rejected_things;
    let seen = cloud.max_in_progress_seen(&e.job).unwrap_or(0);
    let aborted = d.reason_code.is_some();
    if let Some(status) = e.status {
        let want: JobStatus = status.into();
        if d.status != want {
            return Err(format!("status {:?}, expected {want:?}", d.status));
        }
    }
    if let Some(want) = e.aborted
        && want != aborted
    {
        return Err(format!(
            "aborted is {aborted} (reasonCode {:?})",
            d.reason_code
        ));
    }
    let checks = [
        ("succeeded", &e.succeeded, p.number_of_succeeded_things),
        ("failed", &e.failed, failed),
        ("max_in_progress_seen", &e.max_in_progress_seen, seen),
        (
            "timed_out",
            &e.timed_out.as_deref().cloned(),
            p.number_of_timed_out_things,
        ),
        (
            "rejected",
            &e.rejected.as_deref().cloned(),
            p.number_of_rejected_things,
        ),
        (
            "canceled",
            &e.canceled.as_deref().cloned(),
            p.number_of_canceled_things,
        ),
    ];
    for (name, cmp, value) in checks {
        if let Some(cmp) = cmp {
            compare(&json!(value), cmp).map_err(|err| format!("{name}: {err}"))?;
        }
    }
    let mut detail = format!(
        "{:?}{}: succeeded {}, failed {}, timed out {}, rejected {}, canceled {}, max in progress {seen}",
        d.status,
        d.reason_code
            .as_deref()
            .map_or_else(String::new, |r| format!(" ({r})")),
        p.number_of_succeeded_things,
        p.number_of_failed_things,
        p.number_of_timed_out_things,
        p.number_of_rejected_things,
        p.number_of_canceled_things,
    );
    if let Some(r) = &e.reason {
        let (count, example) = reasons_matching(cloud, &e.job, r)?;
        let cmp = r.count.clone().unwrap_or(Comparison {
            at_least: Some(1.0),
            ..Comparison::default()
        });
        compare(&json!(count), &cmp).map_err(|err| {
            format!(
                "executions with a reason containing {:?}: {err} (e.g. {example:?})",
                r.contains
            )
        })?;
        detail.push_str(&format!("; {count} with reason {:?}", r.contains));
    }
    Ok(detail)
}

/// How many things' latest execution of `job` ended with the status `r`
/// asks for and a `statusDetails.reason` containing `r.contains`; and one
/// reason of such an execution that did not match (or the first that did),
/// to show in a failure.
fn reasons_matching(
    cloud: &CloudTwin,
    job: &str,
    r: &crate::scenario::fleet::ExpectReason,
) -> Result<(usize, String), String> {
    use crate::scenario::fleet::EndStatus;
    use twinrig_cloud::jobs::ExecutionStatus as S;
    let jobs = cloud.jobs().borrow();
    let list = jobs
        .list_job_executions_for_job(job, None)
        .map_err(|err| err.to_string())?;
    let mut count = 0;
    let mut example = String::new();
    for e in list {
        let status = e.job_execution_summary.status;
        let wanted = match r.status {
            Some(EndStatus::Failed) => status == S::Failed,
            Some(EndStatus::Rejected) => status == S::Rejected,
            None => matches!(status, S::Failed | S::Rejected),
        };
        if !wanted {
            continue;
        }
        let thing = e
            .thing_arn
            .rsplit_once(":thing/")
            .map_or(e.thing_arn.as_str(), |(_, t)| t);
        let reason = jobs
            .describe_job_execution(job, thing, None, cloud.now_s())
            .ok()
            .and_then(|x| x.status_details.details_map.get("reason").cloned())
            .unwrap_or_default();
        if reason.contains(&r.contains) {
            count += 1;
            if example.is_empty() {
                example = reason;
            }
        } else {
            example = reason;
        }
    }
    Ok((count, example))
}

/// `expect: alert`.
pub(crate) fn check_alert(cloud: &CloudTwin, e: &ExpectAlert) -> Result<String, String> {
    let count = cloud
        .alerts()
        .iter()
        .filter(|a| e.job.as_ref().is_none_or(|j| &a.job_id == j))
        .count();
    let cmp = e.count.clone().unwrap_or(Comparison {
        at_least: Some(1.0),
        ..Comparison::default()
    });
    compare(&json!(count), &cmp)
        .map(|()| format!("{count} alerts"))
        .map_err(|err| format!("alerts: {err}"))
}

/// One device's life: boot the OTA client, and boot it again on every reboot
/// with the same flash; after a power cut, restart it on what the flash holds.
struct DeviceTask {
    handle: SimHandle,
    mqtt: DeviceMqtt,
    downloader: SimDownloader,
    ota: OtaConfig,
    boot_failure: f64,
    rng: SimRng,
    flash: RamFlash,
    busy: Busy,
    power: Rc<Power>,
    /// Power fails during this erase/write of the first download.
    power_cut_at: Option<u64>,
    /// Set at every (re)boot, for readiness.
    last_boot: Rc<Cell<Nanos>>,
}

impl DeviceTask {
    async fn run(self) {
        use embassy_futures::select::{Either, select};
        let clock = self.handle.clock();
        let id = self
            .ota
            .thing_name
            .clone()
            .unwrap_or_else(|| twinrig_hal::MqttClient::client_id(&self.mqtt).to_owned());
        let rng = RefCell::new(self.rng);
        let boot_failure = self.boot_failure;
        let delay = DeviceDelay::new(self.handle.clone(), self.busy.clone(), self.power.clone());
        if let Some(op) = self.power_cut_at {
            self.power.arm(op);
        }
        let event = |what: serde_json::Value| {
            self.handle.trace(
                twinrig_sim::trace::channels::TASKS,
                json!({"fleet": id, "event": what}),
            );
        };
        loop {
            self.last_boot.set(self.handle.now());
            // Only new images run the self-test (the factory image is VALID).
            let self_test = |_: &ImageHeader| rng.borrow_mut().random::<f64>() >= boot_failure;
            let device = ota_client::run(
                &self.mqtt,
                &self.downloader,
                &clock,
                delay.clone(),
                self.flash.clone(),
                &self.ota,
                self_test,
            );
            // Power fails inside a flash call; the device's next await then
            // never completes, and the watch ends the run right away.
            let power_cut = std::future::poll_fn(|_| {
                if self.power.lost() {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            });
            match select(device, power_cut).await {
                Either::First(Exit::Reboot(_)) => {
                    event(json!("reboot"));
                    self.busy.pay(&self.handle).await;
                    self.handle.sleep(REBOOT_NS).await;
                }
                Either::First(Exit::Halted { reason, .. }) => {
                    event(json!({"halted": reason}));
                    return;
                }
                Either::Second(()) => {
                    event(json!("power lost"));
                    // What the torn operation owed is never paid: the CPU stopped.
                    self.busy.forgive();
                    self.handle.sleep(REBOOT_NS).await;
                    self.power.restore();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_client::image::HEADER_LEN;

    #[test]
    fn firmware_images_are_deterministic_and_distinct() {
        let v1 = crate::scenario::fleet::Version::new(1, 0, 0);
        let v2 = crate::scenario::fleet::Version::new(2, 0, 0);
        let a = firmware_image("pet_feeder", v1, 1000).unwrap();
        assert_eq!(a.len(), HEADER_LEN + 1000);
        assert_eq!(a, firmware_image("pet_feeder", v1, 1000).unwrap());
        assert_ne!(
            a[HEADER_LEN..],
            firmware_image("pet_feeder", v2, 1000).unwrap()[HEADER_LEN..]
        );
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&a[..HEADER_LEN]);
        let header = ImageHeader::decode(&h).unwrap();
        assert_eq!(header.device_type, "pet_feeder");
        assert_eq!(header.version, ota_client::Version::new(1, 0, 0));
    }

    #[test]
    fn provisioned_flash_boots_the_factory_image() {
        let image = firmware_image(
            "pet_feeder",
            crate::scenario::fleet::Version::new(1, 0, 0),
            5000,
        )
        .unwrap();
        let layout = Layout {
            otadata_offset: 0,
            slot_size: 8192,
        };
        let mut flash = RamFlash::new(layout.end::<RamFlash>() as usize);
        let mut p = Partitions::new(&mut flash, layout).unwrap();
        p.provision(&image).unwrap();
        let header = p.read_header(ota_client::Slot::Ota0).unwrap().unwrap();
        assert_eq!(header.version, ota_client::Version::new(1, 0, 0));
    }
}
