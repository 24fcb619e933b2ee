//! The device loop: AWS IoT Jobs over MQTT, chunked download, shadow and
//! heartbeat, around the transport-free [`Updater`].
//!
//! # Reboots
//!
//! [`run`] returns when the device must restart ([`Exit::Reboot`], carrying
//! the flash back): after a verified image was selected, or when a new image
//! failed its first-boot self-test. The caller restarts the device by calling
//! [`run`] again with the same flash (a board calls `esp_restart()` instead;
//! the simulator re-runs the task, which models a reboot exactly: RAM state is
//! gone, only the flash survives). [`Exit::Halted`] means nothing can run.
//!
//! Before it restarts, the caller lets the MQTT session deliver what it has
//! queued: [`MqttClient::publish`](twinrig_hal::MqttClient::publish) returns
//! once a message is queued, and the job's `step: rebooting` update is
//! queued last. Lost in a restart, it leaves the execution at `downloading`,
//! and the new image reports its own update FAILED (`ota-agent` waits for
//! the PUBACKs: `MqttSession::flush`). The simulator's session outlives a
//! simulated reboot, so scenarios do not show this.
//!
//! # The job in progress across a reboot
//!
//! Nothing about the job is stored in flash. After a reboot the device
//! publishes `start-next`; AWS returns an IN_PROGRESS execution first and
//! unchanged, so the execution it left at `statusDetails.step = "rebooting"`
//! comes back with its job document, and [`Updater::resume_job`] turns it into
//! SUCCEEDED or FAILED (rolled back). An execution found IN_PROGRESS at step
//! `downloading` was cut short by a restart (power loss, crash, watchdog
//! mid-flash): the device runs its previous image and reports the execution
//! FAILED with `reason` `restarted during the download (N of M bytes
//! written); running 1.0.0`, so the job's retry configuration, not the
//! device, decides whether to try again (as for any other failure).
//!
//! # MQTT
//!
//! `{thing}` is [`OtaConfig::thing_name`], or the MQTT client id when that
//! is unset. AWS IoT allows one connection per client id, while a thing's
//! topics are named after the thing: an OTA agent that runs beside the
//! device's own firmware (its own task with its own connection, as on a robot
//! whose main firmware already holds the connection named after the thing)
//! connects as e.g. `{thing}-ota` and sets the thing name. Subscriptions (QoS 1):
//! `$aws/things/{thing}/jobs/notify-next`,
//! `$aws/things/{thing}/jobs/start-next/accepted`,
//! `$aws/things/{thing}/jobs/start-next/rejected`,
//! `$aws/things/{thing}/shadow/update/delta`,
//! `$aws/things/{thing}/shadow/get/accepted`.
//!
//! Publishes:
//!
//! | topic | payload | when |
//! |---|---|---|
//! | `$aws/things/{thing}/shadow/update` (QoS 1) | `{"state":{"reported":{"firmware":"1.0.0","deviceType":"pet_feeder","otaEnabled":true}}}` | after boot, after every finished job |
//! | `$aws/things/{thing}/shadow/get` (QoS 1) | `{}` | after boot (before `start-next`) |
//! | `$aws/things/{thing}/shadow/update` (QoS 1) | `{"state":{"reported":{"otaEnabled":false}}}` | when the OTA gate changed or a delta asked for it |
//! | `$aws/things/{thing}/jobs/start-next` (QoS 1) | `{}` | after boot, on a `notify-next` with an execution, after every finished job |
//! | `$aws/things/{thing}/jobs/{jobId}/update` (QoS 1) | `{"status":"IN_PROGRESS","statusDetails":{"step":"downloading","bytesWritten":"2048","totalBytes":"5120","version":"2.0.0"}}` | start, every [`OtaConfig::progress_step_percent`] %, `step: rebooting` before the reboot; then SUCCEEDED / FAILED / REJECTED with `reason` (see [`crate::job`]) |
//! | `fleet/{thing}/heartbeat` (QoS 0) | `{"firmware":"1.0.0","deviceType":"pet_feeder","uptimeMs":60000}` | every [`OtaConfig::heartbeat_period_ms`] |
//!
//! A progress update after a link outage also carries `"retries":"<n>"`
//! (transient download errors so far). Payloads that are not what the device
//! expects are ignored; nothing on MQTT can make it panic.
//!
//! # The OTA gate
//!
//! Whether the device takes OTA jobs follows `state.desired.otaEnabled` of
//! its classic shadow, as AWS users configure devices: the device asks for
//! its shadow after boot (`get`, answered before its `start-next`, so the
//! gate is known before the first job is looked at) and follows every
//! `update/delta` that carries `otaEnabled`, then reports the value it now
//! applies. The change takes effect at once, without a reboot: the next job
//! execution the device is offered is REJECTED with `reason` `OTA disabled
//! for <type>` while the gate is off. A download already running when the
//! gate closes is finished (the delta waits in the inbox). Until the shadow
//! answers, [`OtaConfig::device`]'s `ota_enabled` applies (a board would also
//! keep the last value in NVS; this client does not store it).
//!
//! # Limits of this slice
//!
//! While a download runs, MQTT messages wait in a small queue (oldest dropped
//! beyond [`INBOX_LEN`]); a job canceled mid-download is noticed only when the
//! device's own update is refused. Non-OTA jobs are left alone.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use core::cell::RefCell;
use core::convert::Infallible;

use embassy_futures::select::{Either, select};
use embedded_hal_async::delay::DelayNs;
use embedded_storage::nor_flash::NorFlash;
use serde_json::{Value, json};
use twinrig_hal::{Clock, DownloadError, Downloader, MqttClient, MqttMessage, QoS};

use crate::job::{JobUpdate, OtaJob};
use crate::partitions::{Layout, Partitions};
use crate::updater::{Action, BootOutcome, DeviceConfig, SelfTest, Updater};

/// Messages kept while the device is busy; the oldest go first.
pub const INBOX_LEN: usize = 16;
/// Finished executions remembered, so stale replies do not restart them.
const DONE_LEN: usize = 16;
/// Attempts for a publish or subscribe before giving up on it.
const MQTT_ATTEMPTS: u32 = 3;
/// Pause between MQTT attempts, and after a receive error.
const MQTT_RETRY_MS: u32 = 1_000;

/// Settings of the OTA client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtaConfig {
    /// Device type and OTA gate.
    pub device: DeviceConfig,
    /// The partition table on the flash.
    pub layout: Layout,
    /// Bytes asked for per [`Downloader::read_chunk`] (default 4096).
    pub chunk_size: usize,
    /// Progress is reported each time this many more percent arrived (default 10).
    pub progress_step_percent: u8,
    /// Consecutive transient download errors (outage, timeout) tolerated per
    /// job before it FAILS (default 5); a successful read resets the count.
    pub max_retries: u32,
    /// Pause before the first retry (default 1000 ms), doubled each retry...
    pub retry_backoff_ms: u32,
    /// ...up to this (default 30 000 ms).
    pub max_backoff_ms: u32,
    /// Heartbeat period (default 60 000 ms); 0 = no heartbeat.
    pub heartbeat_period_ms: u64,
    /// The AWS IoT thing whose jobs, shadow and heartbeat topics the client
    /// uses (default `None`: the MQTT client id). Set it when the client's
    /// connection is not the thing's only one (see the module docs).
    pub thing_name: Option<String>,
}

impl OtaConfig {
    /// Defaults for a device type on a layout, OTA enabled.
    pub fn new(device_type: &str, layout: Layout) -> Self {
        OtaConfig {
            device: DeviceConfig {
                device_type: device_type.into(),
                ota_enabled: true,
            },
            layout,
            chunk_size: 4096,
            progress_step_percent: 10,
            max_retries: 5,
            retry_backoff_ms: 1_000,
            max_backoff_ms: 30_000,
            heartbeat_period_ms: 60_000,
            thing_name: None,
        }
    }

    fn backoff_ms(&self, retry: u32) -> u32 {
        let shift = retry.saturating_sub(1).min(31);
        self.retry_backoff_ms
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff_ms)
    }
}

/// Why [`run`] returned.
#[derive(Debug)]
pub enum Exit<F> {
    /// Restart the device: call [`run`] again with this flash.
    Reboot(F),
    /// Nothing can run (no bootable image, flash failure, bad layout). The
    /// flash is given back when the partition table could be built.
    Halted {
        /// What went wrong.
        reason: String,
        /// The flash.
        flash: Option<F>,
    },
}

/// The topics of one thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    thing: String,
    /// `$aws/things/{thing}/jobs/notify-next`
    pub notify_next: String,
    /// `$aws/things/{thing}/jobs/start-next`
    pub start_next: String,
    /// `$aws/things/{thing}/jobs/start-next/accepted`
    pub start_next_accepted: String,
    /// `$aws/things/{thing}/jobs/start-next/rejected`
    pub start_next_rejected: String,
    /// `$aws/things/{thing}/shadow/update`
    pub shadow_update: String,
    /// `$aws/things/{thing}/shadow/update/delta`
    pub shadow_delta: String,
    /// `$aws/things/{thing}/shadow/get`
    pub shadow_get: String,
    /// `$aws/things/{thing}/shadow/get/accepted`
    pub shadow_get_accepted: String,
    /// `fleet/{thing}/heartbeat`
    pub heartbeat: String,
}

impl Topics {
    /// The topics of `thing`.
    pub fn new(thing: &str) -> Self {
        let jobs = format!("$aws/things/{thing}/jobs");
        Topics {
            thing: thing.into(),
            notify_next: format!("{jobs}/notify-next"),
            start_next: format!("{jobs}/start-next"),
            start_next_accepted: format!("{jobs}/start-next/accepted"),
            start_next_rejected: format!("{jobs}/start-next/rejected"),
            shadow_update: format!("$aws/things/{thing}/shadow/update"),
            shadow_delta: format!("$aws/things/{thing}/shadow/update/delta"),
            shadow_get: format!("$aws/things/{thing}/shadow/get"),
            shadow_get_accepted: format!("$aws/things/{thing}/shadow/get/accepted"),
            heartbeat: format!("fleet/{thing}/heartbeat"),
        }
    }

    /// `$aws/things/{thing}/jobs/{job_id}/update`
    pub fn job_update(&self, job_id: &str) -> String {
        format!("$aws/things/{}/jobs/{job_id}/update", self.thing)
    }
}

/// A job execution as the device sees it (from start-next or notify-next).
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// Job id (checked: 1..=64 of `[a-zA-Z0-9_-]`, safe in a topic).
    pub job_id: String,
    /// Execution number (0 when absent).
    pub execution_number: u64,
    /// Status as sent (`QUEUED`, `IN_PROGRESS`, ...).
    pub status: String,
    /// `statusDetails.step`, if any.
    pub step: Option<String>,
    /// `statusDetails.bytesWritten`, if any and a number.
    pub bytes_written: Option<u64>,
    /// The job document, re-serialized.
    pub document: String,
}

fn valid_job_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `execution` of a start-next/accepted or notify-next payload; `None`
/// when absent or malformed.
pub fn parse_execution(payload: &[u8]) -> Option<Execution> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let e = v.get("execution")?.as_object()?;
    let job_id = e.get("jobId")?.as_str()?;
    if !valid_job_id(job_id) {
        return None;
    }
    let doc = e.get("jobDocument")?;
    if !doc.is_object() {
        return None;
    }
    Some(Execution {
        job_id: job_id.into(),
        execution_number: e
            .get("executionNumber")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        status: e.get("status").and_then(Value::as_str).unwrap_or("").into(),
        step: e
            .get("statusDetails")
            .and_then(|d| d.get("step"))
            .and_then(Value::as_str)
            .map(String::from),
        bytes_written: e
            .get("statusDetails")
            .and_then(|d| d.get("bytesWritten"))
            .and_then(Value::as_str)
            .and_then(|b| b.parse().ok()),
        document: doc.to_string(),
    })
}

/// The shadow `reported` document.
pub fn shadow_report(firmware: &str, device_type: &str, ota_enabled: bool) -> String {
    json!({"state": {"reported": {
        "firmware": firmware, "deviceType": device_type, "otaEnabled": ota_enabled
    }}})
    .to_string()
}

/// The OTA gate a shadow message asks for: `state.otaEnabled` of an
/// `update/delta`, or `state.desired.otaEnabled` of a `get/accepted`
/// (`desired` = true). `None` when absent, not a boolean, or not JSON.
pub fn desired_gate(payload: &[u8], desired: bool) -> Option<bool> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let state = v.get("state")?;
    let state = if desired {
        state.get("desired")?
    } else {
        state
    };
    state.get("otaEnabled")?.as_bool()
}

/// `state.reported.otaEnabled` of a `get/accepted`.
fn reported_gate(payload: &[u8]) -> Option<bool> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    v.pointer("/state/reported/otaEnabled")?.as_bool()
}

/// The heartbeat payload.
pub fn heartbeat(firmware: &str, device_type: &str, uptime_ms: u64) -> String {
    json!({"firmware": firmware, "deviceType": device_type, "uptimeMs": uptime_ms}).to_string()
}

/// A one-waiter wake-up flag (single-threaded: no locking needed).
type Signal = embassy_sync::signal::Signal<embassy_sync::blocking_mutex::raw::NoopRawMutex, ()>;

struct Inbox {
    queue: RefCell<VecDeque<MqttMessage>>,
    signal: Signal,
}

impl Inbox {
    fn push(&self, m: MqttMessage) {
        let mut q = self.queue.borrow_mut();
        if q.len() >= INBOX_LEN {
            q.pop_front();
        }
        q.push_back(m);
        drop(q);
        self.signal.signal(());
    }

    fn pop(&self) -> Option<MqttMessage> {
        self.queue.borrow_mut().pop_front()
    }
}

async fn receive_task<M: MqttClient, Dl: DelayNs>(
    inbox: &Inbox,
    mqtt: &M,
    mut delay: Dl,
) -> Infallible {
    loop {
        match mqtt.receive().await {
            Ok(m) => inbox.push(m),
            Err(_) => delay.delay_ms(MQTT_RETRY_MS).await,
        }
    }
}

/// Runs the OTA client until the device must reboot (see the module docs).
///
/// `mqtt` is a connected session; its client id is the thing name unless
/// `config.thing_name` names the thing;
/// `downloader` fetches job URLs; `clock` and `delay` give time (the delay is
/// cloned for the MQTT receive task); `flash` holds the partition table
/// described by `config.layout`; `self_test` decides on a new image's first boot.
pub async fn run<M, D, C, Dl, F, T>(
    mqtt: &M,
    downloader: &D,
    clock: &C,
    delay: Dl,
    flash: F,
    config: &OtaConfig,
    self_test: T,
) -> Exit<F>
where
    M: MqttClient,
    D: Downloader,
    C: Clock,
    Dl: DelayNs + Clone,
    F: NorFlash,
    T: SelfTest,
{
    let parts = match Partitions::new(flash, config.layout) {
        Ok(p) => p,
        Err(e) => {
            return Exit::Halted {
                reason: e.to_string(),
                flash: None,
            };
        }
    };
    let mut updater = Updater::new(parts, config.device.clone());
    match updater.boot(self_test) {
        Ok(BootOutcome::Running { .. }) => {}
        Ok(BootOutcome::Reboot { .. }) => {
            return Exit::Reboot(updater.into_partitions().into_flash());
        }
        Ok(BootOutcome::NoBootableImage) => {
            return Exit::Halted {
                reason: "no bootable image".into(),
                flash: Some(updater.into_partitions().into_flash()),
            };
        }
        Err(e) => {
            return Exit::Halted {
                reason: format!("boot: {e:?}"),
                flash: Some(updater.into_partitions().into_flash()),
            };
        }
    }
    let inbox = Inbox {
        queue: RefCell::new(VecDeque::new()),
        signal: Signal::new(),
    };
    let device = Device {
        mqtt,
        downloader,
        clock,
        delay: delay.clone(),
        config,
        topics: Topics::new(config.thing_name.as_deref().unwrap_or(mqtt.client_id())),
        updater,
        done: VecDeque::new(),
        next_heartbeat_ms: 0,
    };
    match select(receive_task(&inbox, mqtt, delay), device.main(&inbox)).await {
        Either::First(never) => match never {},
        Either::Second(exit) => exit,
    }
}

/// How a job handled by the main loop ended.
enum Outcome {
    /// Keep going.
    Continue,
    /// Reboot now.
    Reboot,
}

struct Device<'a, M, D, C, Dl, F: NorFlash> {
    mqtt: &'a M,
    downloader: &'a D,
    clock: &'a C,
    delay: Dl,
    config: &'a OtaConfig,
    topics: Topics,
    updater: Updater<F>,
    done: VecDeque<(String, u64)>,
    next_heartbeat_ms: u64,
}

impl<M, D, C, Dl, F> Device<'_, M, D, C, Dl, F>
where
    M: MqttClient,
    D: Downloader,
    C: Clock,
    Dl: DelayNs,
    F: NorFlash,
{
    async fn main(mut self, inbox: &Inbox) -> Exit<F> {
        for filter in [
            &self.topics.notify_next,
            &self.topics.start_next_accepted,
            &self.topics.start_next_rejected,
            &self.topics.shadow_delta,
            &self.topics.shadow_get_accepted,
        ] {
            for attempt in 1..=MQTT_ATTEMPTS {
                if self.mqtt.subscribe(filter, QoS::AtLeastOnce).await.is_ok() {
                    break;
                }
                if attempt < MQTT_ATTEMPTS {
                    self.delay.delay_ms(MQTT_RETRY_MS).await;
                }
            }
        }
        self.report_shadow().await;
        // The gate is in the shadow: ask before the first start-next, whose
        // answer then comes after the shadow's (one FIFO session).
        let t = self.topics.shadow_get.clone();
        self.publish(&t, "{}", QoS::AtLeastOnce).await;
        self.heartbeat_if_due().await;
        self.start_next().await;
        loop {
            while let Some(m) = inbox.pop() {
                if let Outcome::Reboot = self.handle(&m).await {
                    return Exit::Reboot(self.updater.into_partitions().into_flash());
                }
            }
            self.heartbeat_if_due().await;
            let wait = if self.config.heartbeat_period_ms == 0 {
                3_600_000
            } else {
                self.next_heartbeat_ms.saturating_sub(self.clock.now_ms())
            };
            let wait = u32::try_from(wait).unwrap_or(u32::MAX).max(1);
            select(inbox.signal.wait(), self.delay.delay_ms(wait)).await;
        }
    }

    fn running(&self) -> String {
        self.updater
            .running_version()
            .map_or_else(|| "unknown".into(), |v| v.to_string())
    }

    async fn publish(&mut self, topic: &str, payload: &str, qos: QoS) {
        for attempt in 1..=MQTT_ATTEMPTS {
            if self
                .mqtt
                .publish(topic, payload.as_bytes(), qos)
                .await
                .is_ok()
            {
                return;
            }
            if attempt < MQTT_ATTEMPTS {
                self.delay.delay_ms(MQTT_RETRY_MS).await;
            }
        }
    }

    async fn report_shadow(&mut self) {
        let p = shadow_report(
            &self.running(),
            &self.config.device.device_type,
            self.gate(),
        );
        let t = self.topics.shadow_update.clone();
        self.publish(&t, &p, QoS::AtLeastOnce).await;
    }

    fn gate(&mut self) -> bool {
        self.updater.config_mut().ota_enabled
    }

    /// Apply the gate the shadow asks for; report it when the shadow's
    /// `reported` does not say so yet (`reported` unknown: report).
    async fn apply_gate(&mut self, wanted: bool, reported: Option<bool>) {
        self.updater.config_mut().ota_enabled = wanted;
        if reported != Some(wanted) {
            let p = json!({"state": {"reported": {"otaEnabled": wanted}}}).to_string();
            let t = self.topics.shadow_update.clone();
            self.publish(&t, &p, QoS::AtLeastOnce).await;
        }
    }

    async fn start_next(&mut self) {
        let t = self.topics.start_next.clone();
        self.publish(&t, "{}", QoS::AtLeastOnce).await;
    }

    async fn heartbeat_if_due(&mut self) {
        let period = self.config.heartbeat_period_ms;
        let now = self.clock.now_ms();
        if period == 0 || now < self.next_heartbeat_ms {
            return;
        }
        self.next_heartbeat_ms = now + period;
        let p = heartbeat(&self.running(), &self.config.device.device_type, now);
        let t = self.topics.heartbeat.clone();
        self.publish(&t, &p, QoS::AtMostOnce).await;
    }

    async fn send_update(&mut self, job_id: &str, update: &JobUpdate) {
        let t = self.topics.job_update(job_id);
        self.publish(&t, &update.to_json(), QoS::AtLeastOnce).await;
    }

    /// A terminal update: send it, remember the execution, report the shadow
    /// and ask for the next job.
    async fn conclude(&mut self, exec: &Execution, update: &JobUpdate) {
        self.send_update(&exec.job_id, update).await;
        if self.done.len() >= DONE_LEN {
            self.done.pop_front();
        }
        self.done
            .push_back((exec.job_id.clone(), exec.execution_number));
        self.report_shadow().await;
        self.start_next().await;
    }

    async fn handle(&mut self, m: &MqttMessage) -> Outcome {
        if m.topic == self.topics.notify_next {
            if parse_execution(&m.payload).is_some() {
                self.start_next().await;
            }
            Outcome::Continue
        } else if m.topic == self.topics.start_next_accepted {
            match parse_execution(&m.payload) {
                Some(exec) => self.execution(exec).await,
                None => Outcome::Continue,
            }
        } else if m.topic == self.topics.shadow_delta {
            // A delta means reported differs from desired: always report.
            if let Some(wanted) = desired_gate(&m.payload, false) {
                self.apply_gate(wanted, None).await;
            }
            Outcome::Continue
        } else if m.topic == self.topics.shadow_get_accepted {
            if let Some(wanted) = desired_gate(&m.payload, true) {
                self.apply_gate(wanted, reported_gate(&m.payload)).await;
            }
            Outcome::Continue
        } else {
            Outcome::Continue
        }
    }

    async fn execution(&mut self, exec: Execution) -> Outcome {
        let key = (exec.job_id.clone(), exec.execution_number);
        if self.done.contains(&key) {
            return Outcome::Continue;
        }
        let doc = exec.document.as_bytes();
        if exec.status == "IN_PROGRESS" && exec.step.as_deref() == Some("rebooting") {
            if let Some(u) = self.updater.resume_job(doc) {
                self.conclude(&exec, &u).await;
            }
            return Outcome::Continue;
        }
        if exec.status == "IN_PROGRESS"
            && exec.step.as_deref() == Some("downloading")
            && !self.updater.is_updating()
        {
            // Nothing of a download survives a restart: this boot cut it short.
            if let Ok(job) = OtaJob::parse(doc) {
                let why = format!(
                    "restarted during the download ({} of {} bytes written); running {}",
                    exec.bytes_written.unwrap_or(0),
                    job.size,
                    self.running()
                );
                let u = self.updater.abort(&why);
                self.conclude(&exec, &u).await;
            }
            return Outcome::Continue;
        }
        let Some(u) = self.updater.start_job(doc) else {
            return Outcome::Continue; // not an OTA job: not ours
        };
        if u.status.is_terminal() {
            self.conclude(&exec, &u).await;
            return Outcome::Continue;
        }
        self.send_update(&exec.job_id, &u).await;
        match OtaJob::parse(doc) {
            Ok(job) => self.download(&exec, &job).await,
            Err(_) => {
                let u = self.updater.abort("job document changed");
                self.conclude(&exec, &u).await;
                Outcome::Continue
            }
        }
    }

    /// Give up the open download with `reason`.
    async fn fail(&mut self, exec: &Execution, reason: &str) -> Outcome {
        let u = self.updater.abort(reason);
        self.conclude(exec, &u).await;
        Outcome::Continue
    }

    async fn download(&mut self, exec: &Execution, job: &OtaJob) -> Outcome {
        let size = job.size;
        let mut retries = 0u32; // consecutive
        let mut total_retries = 0u32;
        // Open, retrying link problems.
        let info = loop {
            match self.downloader.open(&job.url).await {
                Ok(info) => break info,
                Err(e) if e.is_transient() && retries < self.config.max_retries => {
                    retries += 1;
                    total_retries += 1;
                    self.delay.delay_ms(self.config.backoff_ms(retries)).await;
                }
                Err(e) => return self.fail(exec, &download_reason(e, 0, size, retries)).await,
            }
        };
        if info.total_len != size {
            let why = format!("download is {} bytes, the job says {size}", info.total_len);
            return self.fail(exec, &why).await;
        }
        let step = u64::from(self.config.progress_step_percent.clamp(1, 100));
        let mut next_report = step;
        let mut buf = vec![0u8; self.config.chunk_size.max(1)];
        let mut offset = 0u64;
        retries = 0;
        while offset < size {
            self.heartbeat_if_due().await;
            let want = usize::try_from(size - offset)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            match self
                .downloader
                .read_chunk(&job.url, offset, &mut buf[..want])
                .await
            {
                Ok(0) => break, // ended early: finish reports the truncation
                Ok(n) => {
                    let n = n.min(want);
                    retries = 0;
                    let mut u = self.updater.feed(&buf[..n]);
                    if u.status.is_terminal() {
                        self.conclude(exec, &u).await;
                        return Outcome::Continue;
                    }
                    offset += n as u64;
                    let pct = offset * 100 / size.max(1);
                    if pct >= next_report && offset < size {
                        next_report = (pct / step + 1) * step;
                        if total_retries > 0 {
                            u.status_details
                                .push(("retries".into(), total_retries.to_string()));
                        }
                        self.send_update(&exec.job_id, &u).await;
                    }
                }
                Err(e) if e.is_transient() && retries < self.config.max_retries => {
                    retries += 1;
                    total_retries += 1;
                    self.delay.delay_ms(self.config.backoff_ms(retries)).await;
                }
                Err(e) => {
                    return self
                        .fail(exec, &download_reason(e, offset, size, retries))
                        .await;
                }
            }
        }
        let (u, action) = self.updater.finish();
        if u.status.is_terminal() {
            self.conclude(exec, &u).await;
            return Outcome::Continue;
        }
        self.send_update(&exec.job_id, &u).await;
        match action {
            Action::Reboot => Outcome::Reboot,
            Action::None => Outcome::Continue,
        }
    }
}

fn download_reason(e: DownloadError, offset: u64, size: u64, retries: u32) -> String {
    let mut s = format!("{e} at byte {offset} of {size}");
    if retries > 0 {
        s.push_str(&format!(" after {retries} retries"));
    }
    s
}
