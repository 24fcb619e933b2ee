//! The OTA fleet of a scenario, wired end to end: firmware published into the
//! cloud twin's registry, simulated devices running the real `ota-client`
//! against a RAM flash and a virtual-time downloader, and the control-plane
//! side of the `create_job` / `prompt` / `wait_for_job` steps and the
//! `job` / `fleet` / `alert` checks.
//!
//! Determinism: devices are created in `FleetConfig::device_ids` order, each
//! device draws its faults from its own stream `fleet:{id}` (offline, then
//! bad download, then one draw per new-image boot), firmware bodies come from
//! a ChaCha stream named after type and version, and every map is a BTreeMap.
//!
//! Limits of this slice: the OTA gate (`types[].ota`, or a "disable OTA"
//! prompt) is read by a device when it boots, so a gate changed by a prompt
//! takes effect at each device's next boot (the OTA client copies its
//! configuration at start); a device that is offline never connects for the
//! whole run (its link is down from time 0).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash, check_erase, check_read, check_write,
};
use ota_client::image::{HEADER_LEN, ImageHeader, build_image};
use ota_client::{Exit, Layout, OtaConfig, Partitions};
use rand::{Rng, RngCore};
use serde_json::{Value, json};
use twinrig_cloud::jobs::{CreateJobRequest, JobStatus};
use twinrig_hal::{DownloadError, DownloadInfo, Downloader};
use twinrig_sim::net::{Network, SimMqttClient};
use twinrig_sim::rng::SimRng;
use twinrig_sim::{MILLIS, Nanos, SECONDS, SimHandle};

use crate::check::compare;
use crate::cloud_twin::CloudTwin;
use crate::fleet_prompt::{FleetNames, IntentModel, OfflineIntents, Target, ToolCall, VersionSpec};
use crate::scenario::fleet::{
    CreateJobStep, ExpectAlert, ExpectFleet, ExpectJob, FleetConfig, JobTarget, OtaGate, VersionRef,
};
use crate::scenario::{Comparison, LinkModel};

/// Erase sector of the simulated flash (ESP32: 4 KiB).
pub const SECTOR: usize = 4096;
/// Write granularity of the simulated flash (ESP32: 4 bytes).
pub const WORD: usize = 4;
/// How long presigned firmware URLs in job documents stay valid.
pub const URL_EXPIRY_S: u64 = 3600;
/// How long a simulated device takes to reboot.
pub const REBOOT_NS: Nanos = 500 * MILLIS;
/// Trace channel for fleet steps (jobs created, prompts and their outcomes).
pub const FLEET_CHANNEL: &str = "/fleet";
/// Topic of the answers to prompts that were not acted on.
pub const ANSWER_TOPIC: &str = "twinrig/fleet/answer";

// ---------------------------------------------------------------------------
// Flash

/// A NOR flash in RAM: erased bytes read 0xFF, programming only clears bits,
/// erase works on whole sectors of [`SECTOR`] bytes, writes on [`WORD`]s.
#[derive(Debug, Clone)]
pub struct RamFlash {
    data: Vec<u8>,
}

impl RamFlash {
    /// An erased flash of `size` bytes, rounded up to whole sectors.
    pub fn new(size: usize) -> Self {
        RamFlash {
            data: vec![0xFF; size.div_ceil(SECTOR) * SECTOR],
        }
    }

    /// The whole content.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

impl ErrorType for RamFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        check_read(self, offset, bytes.len())?;
        let start = offset as usize;
        bytes.copy_from_slice(&self.data[start..start + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        check_erase(self, from, to)?;
        self.data[from as usize..to as usize].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        check_write(self, offset, bytes.len())?;
        let start = offset as usize;
        for (cell, b) in self.data[start..start + bytes.len()].iter_mut().zip(bytes) {
            *cell &= *b;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Downloader

/// Downloads from the cloud twin's firmware registry on virtual time: every
/// request checks the presigned URL at the cloud's current time, and takes the
/// request latency plus the transfer time at the model's bandwidth.
pub struct SimDownloader {
    handle: SimHandle,
    cloud: Rc<CloudTwin>,
    latency: Nanos,
    bandwidth_bps: u64,
    /// Bad download fault: flip the image byte at this fraction of the body.
    corrupt: Option<f64>,
}

impl SimDownloader {
    /// A downloader with `latency` per request and `bandwidth_bps`
    /// (0: no transfer time); `corrupt` flips one body byte of every image.
    pub fn new(
        handle: &SimHandle,
        cloud: Rc<CloudTwin>,
        latency: Nanos,
        bandwidth_bps: u64,
        corrupt: Option<f64>,
    ) -> Self {
        SimDownloader {
            handle: handle.clone(),
            cloud,
            latency,
            bandwidth_bps,
            corrupt,
        }
    }

    fn with_image<T>(&self, url: &str, f: impl FnOnce(&[u8]) -> T) -> Result<T, DownloadError> {
        use twinrig_cloud::registry::RegistryError as E;
        let registry = self.cloud.registry().borrow();
        match registry.fetch(url, self.cloud.now_s()) {
            Ok(fw) => Ok(f(&fw.image)),
            Err(E::Expired { .. }) => Err(DownloadError::Expired),
            Err(E::BadSignature) => Err(DownloadError::Forbidden),
            Err(E::NotFound { .. }) => Err(DownloadError::NotFound),
            Err(_) => Err(DownloadError::Other),
        }
    }

    fn transfer_ns(&self, bytes: usize) -> Nanos {
        if self.bandwidth_bps == 0 {
            return 0;
        }
        let bits = bytes as u128 * 8 * u128::from(SECONDS);
        u64::try_from(bits.div_ceil(u128::from(self.bandwidth_bps))).unwrap_or(u64::MAX)
    }
}

impl Downloader for SimDownloader {
    async fn open(&self, url: &str) -> Result<DownloadInfo, DownloadError> {
        self.handle.sleep(self.latency).await;
        let total_len = self.with_image(url, |img| img.len() as u64)?;
        Ok(DownloadInfo { total_len })
    }

    async fn read_chunk(
        &self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, DownloadError> {
        let total = self.with_image(url, |img| img.len() as u64)?;
        let n = total.saturating_sub(offset).min(buf.len() as u64) as usize;
        self.handle.sleep(self.latency + self.transfer_ns(n)).await;
        // Checked again at the response: a URL may expire mid-transfer.
        self.with_image(url, |img| {
            let start = offset as usize;
            buf[..n].copy_from_slice(&img[start..start + n]);
        })?;
        if let Some(fraction) = self.corrupt {
            let body = total.saturating_sub(HEADER_LEN as u64);
            let at = HEADER_LEN as u64 + ((body as f64 * fraction) as u64).min(body.max(1) - 1);
            if (offset..offset + n as u64).contains(&at) {
                buf[(at - offset) as usize] ^= 0xFF;
            }
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// Firmware

/// The image published for `device_type` `version`: the ota-client header and
/// a body of `size` bytes from a ChaCha stream named after type and version.
pub fn firmware_image(
    device_type: &str,
    version: crate::scenario::fleet::Version,
    size: u64,
) -> Result<Vec<u8>, String> {
    let v = |n: u64| u16::try_from(n).map_err(|_| format!("version {version}: part above 65535"));
    let ota_version =
        ota_client::Version::new(v(version.major)?, v(version.minor)?, v(version.patch)?);
    let mut body = vec![0u8; usize::try_from(size).map_err(|_| "image too large".to_owned())?];
    twinrig_sim::rng::stream(0, &format!("firmware:{device_type}:{version}")).fill_bytes(&mut body);
    build_image(device_type, ota_version, &body)
        .ok_or_else(|| format!("cannot build an image for device type {device_type:?}"))
}

// ---------------------------------------------------------------------------
// The fleet

/// One simulated fleet device.
#[derive(Debug, Clone)]
pub struct FleetDevice {
    /// Thing name (MQTT client id).
    pub id: String,
    /// Device type.
    pub device_type: String,
    /// Offline for the whole run (fault).
    pub offline: bool,
    /// Its downloads are corrupted (fault).
    pub bad_download: bool,
}

/// The fleet of a run: its devices and the state the fleet steps keep.
pub struct Fleet {
    config: FleetConfig,
    devices: Vec<FleetDevice>,
    /// OTA gate per device type, read by devices at boot.
    gates: Rc<RefCell<BTreeMap<String, bool>>>,
    /// Jobs created by fleet steps, in order.
    jobs: RefCell<Vec<String>>,
    prompts: Cell<u64>,
}

/// What a prompt did.
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

impl Fleet {
    /// Publishes the firmware, then creates, connects, provisions and starts
    /// every device. `default_link` is the scenario's link; `run_ns` the
    /// longest the run may last (offline devices are out that long).
    pub fn start(
        handle: &SimHandle,
        network: &Network,
        cloud: &Rc<CloudTwin>,
        config: &FleetConfig,
        default_link: &LinkModel,
        run_ns: Nanos,
    ) -> Result<Rc<Fleet>, String> {
        let now_s = cloud.now_s();
        // Largest image per type, for the slot size.
        let mut largest: BTreeMap<String, u64> = BTreeMap::new();
        for set in &config.firmware {
            for v in &set.versions {
                let image = firmware_image(&set.device_type, *v, set.size.0)?;
                let len = image.len() as u64;
                cloud
                    .registry()
                    .borrow_mut()
                    .publish(&set.device_type, &v.to_string(), image, now_s)
                    .map_err(|e| format!("publishing firmware: {e}"))?;
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
        let gates = Rc::new(RefCell::new(gates));
        let link = crate::runner::link_params(config.link.as_ref().unwrap_or(default_link));
        let mut devices = Vec::new();
        for (id, group) in config.device_ids() {
            let mut rng = handle.rng(&format!("fleet:{id}"));
            let offline = rng.random::<f64>() < group.faults.offline;
            let bad_download = rng.random::<f64>() < group.faults.bad_download;
            let corrupt_at: f64 = rng.random();
            let device_type = group.device_type.clone();
            let slot = largest
                .get(&device_type)
                .copied()
                .unwrap_or(SECTOR as u64)
                .div_ceil(SECTOR as u64)
                * SECTOR as u64;
            let layout = Layout {
                otadata_offset: 0,
                slot_size: u32::try_from(slot).map_err(|_| "image too large".to_owned())?,
            };
            let mut flash = RamFlash::new(layout.end::<RamFlash>() as usize);
            let factory = cloud
                .registry()
                .borrow()
                .get(&device_type, &group.version.to_string())
                .map(|f| f.image.clone())
                .ok_or_else(|| format!("{id}: no firmware {device_type} {}", group.version))?;
            Partitions::new(&mut flash, layout)
                .and_then(|mut p| p.provision(&factory))
                .map_err(|e| format!("{id}: provisioning: {e:?}"))?;
            let mqtt = network.connect(&id, link.clone())?;
            if offline {
                network.outage(&id, run_ns);
            }
            let downloader = SimDownloader::new(
                handle,
                cloud.clone(),
                config.download.latency.nanos(),
                config.download.bandwidth.0,
                bad_download.then_some(corrupt_at),
            );
            let mut ota = OtaConfig::new(&device_type, layout);
            ota.heartbeat_period_ms = 60_000;
            let task = DeviceTask {
                handle: handle.clone(),
                mqtt,
                downloader,
                ota,
                gates: gates.clone(),
                boot_failure: group.faults.boot_failure,
                rng,
            };
            handle.spawn(format!("fleet {id}"), task.run(flash));
            devices.push(FleetDevice {
                id,
                device_type,
                offline,
                bad_download,
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

    /// Names a prompt may use.
    pub fn names(&self) -> FleetNames {
        let mut device_types: Vec<String> =
            self.devices.iter().map(|d| d.device_type.clone()).collect();
        device_types.sort();
        device_types.dedup();
        FleetNames {
            device_types,
            devices: self.devices.iter().map(|d| d.id.clone()).collect(),
        }
    }

    fn select(&self, target: &Target) -> Vec<&FleetDevice> {
        self.devices
            .iter()
            .filter(|d| match target {
                Target::Device(id) => &d.id == id,
                Target::DeviceType(t) => &d.device_type == t,
                Target::Fleet => true,
            })
            .collect()
    }

    /// Thing names of a target (sorted) and their one device type.
    fn resolve(&self, target: &Target) -> Result<(Vec<String>, String), String> {
        let chosen = self.select(target);
        let Some(first) = chosen.first() else {
            return Err(format!("no fleet device matches {target:?}"));
        };
        let device_type = first.device_type.clone();
        if chosen.iter().any(|d| d.device_type != device_type) {
            return Err(
                "the target spans several device types; an OTA job is for one type".to_owned(),
            );
        }
        let mut things: Vec<String> = chosen.iter().map(|d| d.id.clone()).collect();
        things.sort();
        Ok((things, device_type))
    }

    /// The OTA job document for a published version, with a URL presigned now.
    pub fn job_document(
        cloud: &CloudTwin,
        device_type: &str,
        version: &str,
    ) -> Result<Value, String> {
        let registry = cloud.registry().borrow();
        let fw = registry
            .get(device_type, version)
            .ok_or_else(|| format!("no firmware {device_type} {version} in the registry"))?;
        let url = registry
            .presign(device_type, version, cloud.now_s(), URL_EXPIRY_S)
            .map_err(|e| e.to_string())?;
        Ok(json!({
            "operation": "ota",
            "deviceType": device_type,
            "version": version,
            "url": url,
            "sha256": fw.sha256,
            "size": fw.image.len(),
        }))
    }

    fn latest(cloud: &CloudTwin, device_type: &str) -> Result<String, String> {
        cloud
            .registry()
            .borrow()
            .latest(device_type)
            .map(|f| f.version.clone())
            .ok_or_else(|| format!("no firmware for {device_type} in the registry"))
    }

    async fn create(
        &self,
        cloud: &CloudTwin,
        request: impl FnOnce(Vec<String>, Value) -> CreateJobRequest,
        target: &Target,
        version: &VersionSpec,
    ) -> Result<String, String> {
        let (things, device_type) = self.resolve(target)?;
        let version = match version {
            VersionSpec::Latest => Self::latest(cloud, &device_type)?,
            VersionSpec::Exact(v) => v.trim_start_matches('v').to_owned(),
            VersionSpec::Previous => self.previous(cloud, target, &device_type)?,
        };
        let document = Self::job_document(cloud, &device_type, &version)?;
        let request = request(things, document);
        let id = request.job_id.clone();
        cloud.create_job(request).await.map_err(|e| e.to_string())?;
        self.jobs.borrow_mut().push(id.clone());
        Ok(id)
    }

    /// The newest published version below the newest one the target reports.
    fn previous(
        &self,
        cloud: &CloudTwin,
        target: &Target,
        device_type: &str,
    ) -> Result<String, String> {
        let parse = |s: &str| s.parse::<crate::scenario::fleet::Version>().ok();
        let current = self
            .select(target)
            .iter()
            .filter_map(|d| reported_firmware(cloud, &d.id))
            .filter_map(|v| parse(&v))
            .max()
            .ok_or("no device of the target reports a version yet")?;
        cloud
            .registry()
            .borrow()
            .versions(device_type)
            .iter()
            .filter_map(|f| parse(&f.version))
            .filter(|v| *v < current)
            .max()
            .map(|v| v.to_string())
            .ok_or_else(|| format!("no {device_type} version before {current}"))
    }

    /// A `create_job` step; returns the job id.
    pub async fn create_job(
        &self,
        cloud: &CloudTwin,
        step: &CreateJobStep,
    ) -> Result<String, String> {
        let target = match &step.target {
            JobTarget::DeviceType(t) => Target::DeviceType(t.clone()),
            JobTarget::Device(d) => Target::Device(d.clone()),
            JobTarget::Fleet => Target::Fleet,
        };
        let version = match step.version {
            VersionRef::Latest => VersionSpec::Latest,
            VersionRef::Exact(v) => VersionSpec::Exact(v.to_string()),
        };
        self.create(cloud, |t, d| step.request(t, d), &target, &version)
            .await
    }

    /// A `prompt` step: the offline intent model, then the tool call.
    pub async fn prompt(
        &self,
        cloud: &CloudTwin,
        text: &str,
        as_name: Option<&str>,
    ) -> Result<PromptOutcome, String> {
        let call = match OfflineIntents.intent(text, &self.names()) {
            Ok(call) => call,
            Err(unclear) => return Ok(PromptOutcome::Unclear(unclear.0)),
        };
        match call {
            ToolCall::Upgrade { target, version } | ToolCall::Rollback { target, version } => {
                let n = self.prompts.get() + 1;
                self.prompts.set(n);
                let job_id = as_name.map_or_else(|| format!("prompt-{n}"), str::to_owned);
                let request = |targets, document| CreateJobRequest {
                    job_id,
                    targets,
                    document,
                    description: Some(text.to_owned()),
                    job_executions_rollout_config: None,
                    abort_config: None,
                    timeout_config: None,
                    job_executions_retry_config: None,
                    max_in_progress: None,
                    abort_after_failures: None,
                };
                self.create(cloud, request, &target, &version)
                    .await
                    .map(PromptOutcome::Created)
            }
            ToolCall::Status { target } => Ok(PromptOutcome::Status(self.status(cloud, &target))),
            ToolCall::Cancel { job } => {
                let job = match job {
                    Some(j) => j,
                    None => self
                        .jobs
                        .borrow()
                        .iter()
                        .rev()
                        .find(|j| {
                            cloud
                                .jobs()
                                .borrow()
                                .describe_job(j)
                                .is_ok_and(|d| d.status == JobStatus::InProgress)
                        })
                        .cloned()
                        .ok_or("no job is in progress")?,
                };
                let out = cloud
                    .jobs()
                    .borrow_mut()
                    .cancel_job(&job, false, None, Some(text), cloud.now_s())
                    .map_err(|e| e.to_string())?;
                cloud.emit(out).await;
                Ok(PromptOutcome::Canceled(job))
            }
            ToolCall::SetOta {
                device_type,
                enabled,
            } => {
                self.gates.borrow_mut().insert(device_type.clone(), enabled);
                let state = if enabled { "enabled" } else { "disabled" };
                Ok(PromptOutcome::Gate(format!(
                    "OTA {state} for {device_type} (from each device's next boot)"
                )))
            }
        }
    }

    /// Versions reported in the shadows, as text: `pet_feeder: 1.0.0 x3, 2.0.0 x17`.
    pub fn status(&self, cloud: &CloudTwin, target: &Target) -> String {
        let mut by_type: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
        for d in self.select(target) {
            let v = reported_firmware(cloud, &d.id).unwrap_or_else(|| "unknown".into());
            *by_type
                .entry(&d.device_type)
                .or_default()
                .entry(v)
                .or_default() += 1;
        }
        by_type
            .iter()
            .map(|(t, vs)| {
                let list: Vec<String> = vs.iter().map(|(v, n)| format!("{v} x{n}")).collect();
                format!("{t}: {}", list.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `expect: fleet`.
    pub fn check_fleet(&self, cloud: &CloudTwin, e: &ExpectFleet) -> Result<String, String> {
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
        compare(&json!(count), &cmp)
            .map(|()| format!("{count} of {} on {want}", of_type.len()))
            .map_err(|err| {
                format!(
                    "{} devices on {want}: {err} ({})",
                    e.device_type,
                    self.status(cloud, &Target::DeviceType(e.device_type.clone()))
                )
            })
    }

    /// The fleet configuration.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }
}

/// `state.reported.firmware` of a thing's classic shadow.
pub fn reported_firmware(cloud: &CloudTwin, thing: &str) -> Option<String> {
    let doc = cloud.shadows().document(thing, None)?;
    doc.pointer("/state/reported/firmware")?
        .as_str()
        .map(str::to_owned)
}

/// `expect: job`.
pub fn check_job(cloud: &CloudTwin, e: &ExpectJob) -> Result<String, String> {
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
    ];
    for (name, cmp, value) in checks {
        if let Some(cmp) = cmp {
            compare(&json!(value), cmp).map_err(|err| format!("{name}: {err}"))?;
        }
    }
    Ok(format!(
        "{:?}{}: succeeded {}, failed {failed}, max in progress {seen}",
        d.status,
        d.reason_code
            .as_deref()
            .map_or_else(String::new, |r| format!(" ({r})")),
        p.number_of_succeeded_things,
    ))
}

/// `expect: alert`.
pub fn check_alert(cloud: &CloudTwin, e: &ExpectAlert) -> Result<String, String> {
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
/// with the same flash.
struct DeviceTask {
    handle: SimHandle,
    mqtt: SimMqttClient,
    downloader: SimDownloader,
    ota: OtaConfig,
    gates: Rc<RefCell<BTreeMap<String, bool>>>,
    boot_failure: f64,
    rng: SimRng,
}

impl DeviceTask {
    async fn run(self, mut flash: RamFlash) {
        let clock = self.handle.clock();
        let id = self.mqtt_id();
        let rng = RefCell::new(self.rng);
        let boot_failure = self.boot_failure;
        loop {
            let mut config = self.ota.clone();
            config.device.ota_enabled = self
                .gates
                .borrow()
                .get(&config.device.device_type)
                .copied()
                .unwrap_or(true);
            // Only new images run the self-test (the factory image is VALID).
            let self_test = |_: &ImageHeader| rng.borrow_mut().random::<f64>() >= boot_failure;
            let exit = ota_client::run(
                &self.mqtt,
                &self.downloader,
                &clock,
                self.handle.delay(),
                flash,
                &config,
                self_test,
            )
            .await;
            match exit {
                Exit::Reboot(f) => {
                    flash = f;
                    self.handle.trace(
                        twinrig_sim::trace::channels::TASKS,
                        json!({"fleet": id, "event": "reboot"}),
                    );
                    self.handle.sleep(REBOOT_NS).await;
                }
                Exit::Halted { reason, .. } => {
                    self.handle.trace(
                        twinrig_sim::trace::channels::TASKS,
                        json!({"fleet": id, "event": "halted", "reason": reason}),
                    );
                    return;
                }
            }
        }
    }

    fn mqtt_id(&self) -> String {
        use twinrig_hal::MqttClient;
        self.mqtt.client_id().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_flash_erases_to_ff_and_programs_only_clear_bits() {
        let mut f = RamFlash::new(2 * SECTOR);
        assert_eq!(f.capacity(), 2 * SECTOR);
        let mut b = [0u8; 4];
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0xFF; 4]);
        f.write(0, &[0xF0, 0x0F, 0xAA, 0x55]).unwrap();
        f.write(0, &[0x3C, 0xFF, 0xFF, 0x00]).unwrap();
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0x30, 0x0F, 0xAA, 0x00]);
        assert!(f.write(1, &[0; 4]).is_err(), "unaligned write");
        assert!(f.erase(0, 100).is_err(), "partial sector");
        f.erase(0, SECTOR as u32).unwrap();
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0xFF; 4]);
        assert!(
            f.read(2 * SECTOR as u32 - 2, &mut b).is_err(),
            "past the end"
        );
    }

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
