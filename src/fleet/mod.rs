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

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash, check_erase, check_read, check_write,
};
use ota_client::image::{HEADER_LEN, ImageHeader, build_image};
use ota_client::{Exit, Layout, OtaConfig, Partitions};
use rand::{Rng, RngCore};
use serde_json::json;
use twinrig_cloud::jobs::{JobStatus, RolloutSettings};
use twinrig_hal::{DownloadError, DownloadInfo, Downloader};
use twinrig_sim::net::{Network, SimMqttClient};
use twinrig_sim::rng::SimRng;
use twinrig_sim::{MICROS, MILLIS, Nanos, SECONDS, SimHandle};

use crate::check::compare;
use crate::cloud_twin::CloudTwin;
use crate::devices::ReadyWhen;
use crate::fleet_prompt::{OfflineIntents, Target, VersionSpec};
use crate::fleet_tools::{FleetBackend, OtaJobSpec, PromptResult, run_prompt};

mod local_backend;
use crate::scenario::fleet::{
    CreateJobStep, ExpectAlert, ExpectFleet, ExpectJob, FleetConfig, JobTarget, OtaGate,
    VersionRef, member_ota_client_id,
};
use crate::scenario::{Comparison, Device, LinkModel};
pub use local_backend::LocalFleet;

/// Erase sector of the simulated flash (ESP32: 4 KiB).
pub const SECTOR: usize = 4096;
/// Block of the simulated flash: the large erase unit (SPI NOR: 64 KiB).
pub const BLOCK: usize = ota_client::partitions::ERASE_BLOCK as usize;
/// Program page of the simulated flash (SPI NOR: 256 bytes).
pub const PAGE: usize = 256;
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

/// How long flash operations take, in virtual time. The flash calls are
/// synchronous (`embedded-storage`), as on a board where the CPU waits for
/// the SPI flash: the time is owed and paid at the device's next await
/// ([`Busy`]). The defaults are assumed from typical SPI NOR datasheet
/// values (Winbond W25Q64JV typicals: 4 KiB sector erase 45 ms, 64 KiB block
/// erase 150 ms, 256-byte page program 0.4 ms) and an ESP32 reading flash in
/// quad I/O at 80 MHz (40 MB/s); none was measured here. SHA-256 CPU time is
/// not modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashTiming {
    /// Erasing one [`SECTOR`].
    pub sector_erase_ns: Nanos,
    /// Erasing one aligned [`BLOCK`] in one command.
    pub block_erase_ns: Nanos,
    /// Programming (part of) one [`PAGE`].
    pub page_program_ns: Nanos,
    /// Reading, bytes per second (0: reads take no time).
    pub read_bytes_per_s: u64,
}

impl Default for FlashTiming {
    fn default() -> Self {
        FlashTiming {
            sector_erase_ns: 45 * MILLIS,
            block_erase_ns: 150 * MILLIS,
            page_program_ns: 400 * MICROS,
            read_bytes_per_s: 40_000_000,
        }
    }
}

impl FlashTiming {
    /// No time at all (for probes that are not the device).
    pub const INSTANT: FlashTiming = FlashTiming {
        sector_erase_ns: 0,
        block_erase_ns: 0,
        page_program_ns: 0,
        read_bytes_per_s: 0,
    };

    /// Erasing `[from, to)` (sector-aligned): a block command for every
    /// aligned whole [`BLOCK`], a sector command for the rest, as ESP-IDF's
    /// `esp_flash_erase_region` splits a range.
    pub fn erase_ns(&self, from: u64, to: u64) -> Nanos {
        let (block, sector) = (BLOCK as u64, SECTOR as u64);
        let mut at = from;
        let mut ns = 0;
        while at < to {
            if at.is_multiple_of(block) && to - at >= block {
                ns += self.block_erase_ns;
                at += block;
            } else {
                ns += self.sector_erase_ns;
                at += sector;
            }
        }
        ns
    }

    /// Programming `len` bytes at `offset`: one program per page touched.
    pub fn write_ns(&self, offset: u64, len: u64) -> Nanos {
        if len == 0 {
            return 0;
        }
        let pages = (offset + len).div_ceil(PAGE as u64) - offset / PAGE as u64;
        pages * self.page_program_ns
    }

    /// Reading `len` bytes.
    pub fn read_ns(&self, len: u64) -> Nanos {
        if self.read_bytes_per_s == 0 {
            return 0;
        }
        let ns = u128::from(len) * u128::from(SECONDS);
        u64::try_from(ns.div_ceil(u128::from(self.read_bytes_per_s))).unwrap_or(u64::MAX)
    }
}

/// Virtual time a device owes for synchronous work (flash operations), paid
/// at its next await: the download, an MQTT publish or a delay.
#[derive(Debug, Clone, Default)]
pub struct Busy(Rc<Cell<Nanos>>);

impl Busy {
    /// Owe `ns` more.
    pub fn add(&self, ns: Nanos) {
        self.0.set(self.0.get().saturating_add(ns));
    }

    /// What is owed now.
    pub fn owed(&self) -> Nanos {
        self.0.get()
    }

    /// Let the owed time pass.
    pub async fn pay(&self, handle: &SimHandle) {
        let ns = self.0.replace(0);
        if ns > 0 {
            handle.sleep(ns).await;
        }
    }
}

/// A power cut armed on a device: the flash operation (erase or write,
/// counted from when it was armed, 1-based) during which power fails.
#[derive(Debug, Default)]
pub struct Power {
    cut_at: Cell<Option<u64>>,
    ops: Cell<u64>,
    lost: Cell<bool>,
}

impl Power {
    /// Fail power during the `op`-th erase or write from now.
    pub fn arm(&self, op: u64) {
        self.ops.set(0);
        self.cut_at.set(Some(op.max(1)));
    }

    /// Power has failed (the device is dead until it is restarted).
    pub fn lost(&self) -> bool {
        self.lost.get()
    }

    /// Power is back (after a restart); the cut does not repeat.
    pub fn restore(&self) {
        self.lost.set(false);
        self.cut_at.set(None);
    }

    /// Count an erase/write; `true` if power fails during it.
    fn tick(&self) -> bool {
        let Some(at) = self.cut_at.get() else {
            return false;
        };
        let n = self.ops.get() + 1;
        self.ops.set(n);
        if n == at {
            self.lost.set(true);
            self.cut_at.set(None);
            return true;
        }
        false
    }
}

/// A NOR flash in RAM: erased bytes read 0xFF, programming only clears bits,
/// erase works on whole sectors of [`SECTOR`] bytes, writes on [`WORD`]s.
/// Clones share the bytes (a probe can read what the device wrote; the bytes
/// survive the device task being dropped at a power cut). Every operation
/// adds its [`FlashTiming`] to the device's [`Busy`]. With [`Power`] lost,
/// every operation fails; the one during which power fails is torn: half
/// of its bytes are erased or programmed, the rest untouched.
#[derive(Debug, Clone)]
pub struct RamFlash {
    data: Rc<RefCell<Vec<u8>>>,
    timing: FlashTiming,
    busy: Busy,
    power: Rc<Power>,
}

impl RamFlash {
    /// An erased flash of `size` bytes, rounded up to whole sectors, whose
    /// operations take no time.
    pub fn new(size: usize) -> Self {
        RamFlash {
            data: Rc::new(RefCell::new(vec![0xFF; size.div_ceil(SECTOR) * SECTOR])),
            timing: FlashTiming::INSTANT,
            busy: Busy::default(),
            power: Rc::new(Power::default()),
        }
    }

    /// The same bytes, timed by `timing` into `busy`, cut by `power`.
    pub fn timed(&self, timing: FlashTiming, busy: Busy, power: Rc<Power>) -> Self {
        RamFlash {
            data: self.data.clone(),
            timing,
            busy,
            power,
        }
    }

    /// The same bytes, untimed and never cut (to inspect a device's flash).
    pub fn probe(&self) -> Self {
        self.timed(
            FlashTiming::INSTANT,
            Busy::default(),
            Rc::new(Power::default()),
        )
    }

    /// A copy of the whole content.
    pub fn bytes(&self) -> Vec<u8> {
        self.data.borrow().clone()
    }
}

impl ErrorType for RamFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        check_read(self, offset, bytes.len())?;
        if self.power.lost() {
            return Err(NorFlashErrorKind::Other);
        }
        let start = offset as usize;
        bytes.copy_from_slice(&self.data.borrow()[start..start + bytes.len()]);
        self.busy.add(self.timing.read_ns(bytes.len() as u64));
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.borrow().len()
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = SECTOR;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        check_erase(self, from, to)?;
        if self.power.lost() {
            return Err(NorFlashErrorKind::Other);
        }
        let torn = self.power.tick();
        let (from, to) = (from as usize, to as usize);
        let end = if torn { from + (to - from) / 2 } else { to };
        self.data.borrow_mut()[from..end].fill(0xFF);
        self.busy.add(
            self.timing
                .erase_ns(from as u64, end.max(from + SECTOR).min(to) as u64),
        );
        if torn {
            return Err(NorFlashErrorKind::Other);
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        check_write(self, offset, bytes.len())?;
        if self.power.lost() {
            return Err(NorFlashErrorKind::Other);
        }
        let torn = self.power.tick();
        let n = if torn { bytes.len() / 2 } else { bytes.len() };
        let start = offset as usize;
        let mut data = self.data.borrow_mut();
        for (cell, b) in data[start..start + n].iter_mut().zip(&bytes[..n]) {
            *cell &= *b;
        }
        self.busy
            .add(self.timing.write_ns(u64::from(offset), bytes.len() as u64));
        if torn {
            return Err(NorFlashErrorKind::Other);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Downloader

/// Downloads from the cloud twin's firmware registry on virtual time, as a
/// streaming HTTPS GET: `open` (a HEAD) and the first read of a stream each
/// wait `latency` (request to first byte); reads that continue where the
/// last one ended then arrive at `bandwidth` only, and a read anywhere else
/// (a resume after an error) is a new ranged request with its own latency.
/// Every call checks the presigned URL at the cloud's current time, and
/// first pays the device's [`Busy`] time (the CPU was writing flash).
pub struct SimDownloader {
    handle: SimHandle,
    cloud: Rc<CloudTwin>,
    latency: Nanos,
    bandwidth_bps: u64,
    /// Bad download fault: flip the image byte at this fraction of the body.
    corrupt: Option<f64>,
    busy: Busy,
    power: Rc<Power>,
    /// Where the open stream continues: (url, next offset).
    stream: RefCell<Option<(String, u64)>>,
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
            busy: Busy::default(),
            power: Rc::new(Power::default()),
            stream: RefCell::new(None),
        }
    }

    /// Pay `busy` before each call; stall for good once `power` is lost.
    pub fn on_device(mut self, busy: Busy, power: Rc<Power>) -> Self {
        self.busy = busy;
        self.power = power;
        self
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

    /// Transfer time of `bytes` at the model's bandwidth.
    pub fn transfer_ns(&self, bytes: usize) -> Nanos {
        if self.bandwidth_bps == 0 {
            return 0;
        }
        let bits = bytes as u128 * 8 * u128::from(SECONDS);
        u64::try_from(bits.div_ceil(u128::from(self.bandwidth_bps))).unwrap_or(u64::MAX)
    }

    async fn device_turn(&self) {
        self.busy.pay(&self.handle).await;
        if self.power.lost() {
            std::future::pending::<()>().await;
        }
    }
}

impl Downloader for SimDownloader {
    async fn open(&self, url: &str) -> Result<DownloadInfo, DownloadError> {
        self.device_turn().await;
        self.stream.replace(None);
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
        self.device_turn().await;
        let total = self.with_image(url, |img| img.len() as u64)?;
        let n = total.saturating_sub(offset).min(buf.len() as u64) as usize;
        let continues = self
            .stream
            .borrow()
            .as_ref()
            .is_some_and(|(u, at)| u == url && *at == offset);
        let wait = if continues { 0 } else { self.latency };
        self.stream.replace(None);
        self.handle
            .sleep(wait.saturating_add(self.transfer_ns(n)))
            .await;
        // Checked again at the response: a URL may expire mid-transfer.
        self.with_image(url, |img| {
            let start = offset as usize;
            buf[..n].copy_from_slice(&img[start..start + n]);
        })?;
        self.stream
            .replace(Some((url.to_owned(), offset + n as u64)));
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

/// The device's MQTT session: publishes and subscribes first pay the
/// device's [`Busy`] time; once power is lost nothing more leaves the device
/// and nothing arrives (the calls never complete).
#[derive(Clone)]
pub struct DeviceMqtt {
    inner: SimMqttClient,
    handle: SimHandle,
    busy: Busy,
    power: Rc<Power>,
}

impl DeviceMqtt {
    async fn device_turn(&self) {
        self.busy.pay(&self.handle).await;
        if self.power.lost() {
            std::future::pending::<()>().await;
        }
    }
}

impl twinrig_hal::MqttClient for DeviceMqtt {
    fn client_id(&self) -> &str {
        self.inner.client_id()
    }

    async fn subscribe(
        &self,
        filter: &str,
        qos: twinrig_hal::QoS,
    ) -> Result<(), twinrig_hal::MqttError> {
        self.device_turn().await;
        self.inner.subscribe(filter, qos).await
    }

    async fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: twinrig_hal::QoS,
    ) -> Result<(), twinrig_hal::MqttError> {
        self.device_turn().await;
        self.inner.publish(topic, payload, qos).await
    }

    async fn receive(&self) -> Result<twinrig_hal::MqttMessage, twinrig_hal::MqttError> {
        if self.power.lost() {
            std::future::pending::<()>().await;
        }
        self.inner.receive().await
    }
}

/// The device's delay: pays the device's [`Busy`] time first.
#[derive(Clone)]
pub struct DeviceDelay {
    handle: SimHandle,
    busy: Busy,
    power: Rc<Power>,
}

impl DeviceDelay {
    async fn sleep(&mut self, ns: Nanos) {
        self.busy.pay(&self.handle).await;
        if self.power.lost() {
            std::future::pending::<()>().await;
        }
        self.handle.sleep(ns).await;
    }
}

impl embedded_hal_async::delay::DelayNs for DeviceDelay {
    async fn delay_ns(&mut self, ns: u32) {
        self.sleep(Nanos::from(ns)).await;
    }

    async fn delay_us(&mut self, us: u32) {
        self.sleep(Nanos::from(us) * MICROS).await;
    }

    async fn delay_ms(&mut self, ms: u32) {
        self.sleep(Nanos::from(ms) * MILLIS).await;
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
    let mut body = vec![0u8; usize::try_from(size).map_err(|_| "image too large".to_owned())?];
    twinrig_sim::rng::stream(0, &format!("firmware:{device_type}:{version}")).fill_bytes(&mut body);
    build_image(device_type, version, &body)
        .ok_or_else(|| format!("cannot build an image for device type {device_type:?}"))
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

impl Fleet {
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
        // Devices learn the gate from their shadows (they ask at boot), so a
        // closed gate is written there before they start; an open one is
        // their default and needs no shadow entry.
        for (id, group) in config.device_ids() {
            if gates.get(&group.device_type) == Some(&false) {
                cloud
                    .shadows_mut()
                    .update_from_service(&id, None, &gate_document(false), now_s)
                    .map_err(|e| format!("{id}: shadow: {e:?}"))?;
            }
        }
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
            // App slots on 64 KiB boundaries, as ESP-IDF places them (so
            // updates can erase whole blocks); otadata just below ota_0.
            let slot = image_len.div_ceil(BLOCK as u64) * BLOCK as u64;
            let layout = Layout {
                otadata_offset: (BLOCK - 2 * SECTOR) as u32,
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
            // A member's OTA client is a second program on the robot: its own
            // MQTT connection (AWS IoT allows one per client id, and the
            // robot's firmware holds `{id}`) over the robot's own link, on the
            // thing's topics. A generated device is the OTA client alone.
            let (client_id, link, thing_name) = if group.has_members() {
                let member = members
                    .iter()
                    .find(|d| d.id == id)
                    .ok_or_else(|| format!("fleet member {id} is not a scenario device"))?;
                let link = member.link.as_ref().unwrap_or(default_link).link_params();
                (member_ota_client_id(&id), link, Some(id.clone()))
            } else {
                (id.clone(), link.clone(), None)
            };
            let mqtt = network.connect(&client_id, link)?;
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
                mqtt: DeviceMqtt {
                    inner: mqtt,
                    handle: handle.clone(),
                    busy: busy.clone(),
                    power: power.clone(),
                },
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
    ) -> Result<usize, String> {
        self.gates
            .borrow_mut()
            .insert(device_type.to_owned(), enabled);
        let mut n = 0;
        for d in self.devices.iter().filter(|d| d.device_type == device_type) {
            cloud
                .update_shadow(&d.id, &gate_document(enabled))
                .await
                .map_err(|e| format!("{}: shadow: {e}", d.id))?;
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
    ) -> Result<String, String> {
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
            .map_err(|e| e.to_string())
    }

    /// A `prompt` step: the offline intent model maps it onto the fleet tools
    /// ([`crate::fleet_tools::run_prompt`]). A job it creates is named
    /// `as_name`, or `prompt-N` (N counts the prompts that created jobs).
    pub async fn prompt(
        &self,
        cloud: &CloudTwin,
        text: &str,
        as_name: Option<&str>,
    ) -> Result<PromptOutcome, String> {
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
            PromptResult::Failed(e) => Err(e),
        }
    }

    /// Versions reported in the shadows, as text: `pet_feeder: 1.0.0 x3, 2.0.0 x17`.
    pub fn status(&self, cloud: &CloudTwin, target: &Target) -> String {
        LocalFleet::new(self, cloud).status_now(target).to_string()
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
        let delay = DeviceDelay {
            handle: self.handle.clone(),
            busy: self.busy.clone(),
            power: self.power.clone(),
        };
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
                    self.busy.0.set(0);
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
    fn flash_timing_uses_block_erases_where_aligned_and_counts_pages() {
        let t = FlashTiming::default();
        // One aligned block, then two sectors of the next block.
        let b = BLOCK as u64;
        assert_eq!(t.erase_ns(b, 2 * b), 150 * MILLIS);
        assert_eq!(t.erase_ns(b, 2 * b + 8192), 150 * MILLIS + 2 * 45 * MILLIS);
        // Not aligned: sectors only.
        assert_eq!(t.erase_ns(4096, 4096 + b), 16 * 45 * MILLIS);
        assert_eq!(t.write_ns(0, 256), 400 * MICROS);
        assert_eq!(t.write_ns(128, 256), 2 * 400 * MICROS, "two pages touched");
        assert_eq!(t.write_ns(0, 0), 0);
        assert_eq!(t.read_ns(40_000_000), SECONDS);
        assert_eq!(FlashTiming::INSTANT.read_ns(1 << 20), 0);
    }

    #[test]
    fn timed_flash_owes_its_time_and_a_power_cut_tears_one_operation() {
        let busy = Busy::default();
        let power = Rc::new(Power::default());
        let base = RamFlash::new(4 * SECTOR);
        let mut f = base.timed(FlashTiming::default(), busy.clone(), power.clone());
        f.write(0, &[0u8; 256]).unwrap();
        assert_eq!(busy.owed(), 400 * MICROS);
        power.arm(2);
        f.erase(0, SECTOR as u32).unwrap();
        // The 2nd operation from arming: half of the page is programmed.
        assert!(f.write(SECTOR as u32, &[0u8; 8]).is_err());
        assert!(power.lost());
        assert_eq!(
            base.bytes()[SECTOR..SECTOR + 8],
            [0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        let mut b = [0u8; 4];
        assert!(f.read(0, &mut b).is_err(), "nothing works without power");
        // A probe shares the bytes but never loses power.
        base.probe().read(SECTOR as u32, &mut b).unwrap();
        assert_eq!(b, [0; 4]);
        power.restore();
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0xFF; 4], "the erase before the cut completed");
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
