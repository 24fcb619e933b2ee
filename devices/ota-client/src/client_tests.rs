//! End-to-end tests of [`crate::client::run`]: a fake broker with a tiny
//! Jobs/shadow service, a fake downloader, the mock flash, virtual time.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::format;
use std::future::poll_fn;
use std::rc::Rc;
use std::string::{String, ToString};
use std::task::Poll;
use std::vec::Vec;

use embassy_futures::block_on;
use embassy_futures::select::{Either, select};
use embedded_hal_async::delay::DelayNs;
use proptest::prelude::*;
use serde_json::{Value, json};
use twinrig_hal::mqtt::topic_matches;
use twinrig_hal::{
    Clock, DownloadError, DownloadInfo, Downloader, MqttClient, MqttError, MqttMessage, QoS,
};

use crate::client::{Exit, OtaConfig, parse_execution, run};
use crate::image::{self, build_image};
use crate::job::OtaJob;
use crate::mock::MockFlash;
use crate::partitions::{Layout, Partitions};
use crate::{ImageHeader, Version};

type Flash = MockFlash<4, 4096>;

const THING: &str = "feeder-7";
const TYPE: &str = "pet_feeder";
const LAYOUT: Layout = Layout {
    otadata_offset: 0,
    slot_size: 4 * 4096,
};
const FLASH_SIZE: usize = 2 * 4096 + 2 * 4 * 4096;
const MS: u64 = 1_000_000;
const MINUTE: u64 = 60_000 * MS;

// ---------------------------------------------------------------- time

#[derive(Clone, Default)]
struct FakeClock(Rc<Cell<u64>>);

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

impl FakeClock {
    fn advance(&self, ns: u64) {
        self.0.set(self.0.get() + ns);
    }
}

/// Yield to the (busy-polling) executor once.
async fn yield_now() {
    let mut done = false;
    poll_fn(|cx| {
        if done {
            Poll::Ready(())
        } else {
            done = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// A delay in virtual time: lets the other tasks run twice, then jumps the
/// clock to the deadline (time passes only while every task waits).
#[derive(Clone)]
struct FakeDelay(FakeClock);

impl FakeDelay {
    async fn sleep(&mut self, ns: u64) {
        let deadline = self.0.now_ns() + ns;
        yield_now().await;
        yield_now().await;
        if self.0.now_ns() < deadline {
            self.0.0.set(deadline);
        }
    }
}

impl DelayNs for FakeDelay {
    async fn delay_ns(&mut self, ns: u32) {
        self.sleep(u64::from(ns)).await
    }
    async fn delay_us(&mut self, us: u32) {
        self.sleep(u64::from(us) * 1_000).await
    }
    async fn delay_ms(&mut self, ms: u32) {
        self.sleep(u64::from(ms) * MS).await
    }
}

// ---------------------------------------------------------------- broker + Jobs

#[derive(Debug, Clone)]
struct Exec {
    job_id: String,
    doc: Value,
    status: String,
    details: Value,
    history: Vec<(String, Value)>,
}

#[derive(Default)]
struct BrokerState {
    subscriptions: Vec<String>,
    inbox: VecDeque<MqttMessage>,
    /// Every publish of the device: (topic, payload).
    published: Vec<(String, String)>,
    execs: Vec<Exec>,
    /// Update requests refused (terminal execution, unknown job).
    refused: usize,
    /// `desired.otaEnabled` of the device's shadow, if set.
    desired_gate: Option<bool>,
}

#[derive(Clone, Default)]
struct Broker(Rc<RefCell<BrokerState>>, ClientId);

/// The MQTT client id the device's session has. The broker stands for one
/// thing, [`THING`]: it answers on that thing's topics only, whatever the
/// client id, so a client that names the wrong thing gets no jobs.
#[derive(Clone, Copy)]
struct ClientId(&'static str);

impl Default for ClientId {
    fn default() -> Self {
        ClientId(THING)
    }
}

impl BrokerState {
    fn deliver(&mut self, topic: &str, payload: Value) {
        if self.subscriptions.iter().any(|f| topic_matches(f, topic)) {
            self.inbox.push_back(MqttMessage {
                topic: topic.into(),
                payload: payload.to_string().into_bytes(),
                qos: QoS::AtLeastOnce,
            });
        }
    }

    fn pending(&self) -> Option<usize> {
        self.execs
            .iter()
            .position(|e| e.status == "IN_PROGRESS")
            .or_else(|| self.execs.iter().position(|e| e.status == "QUEUED"))
    }

    fn execution_json(&self, i: usize) -> Value {
        let e = &self.execs[i];
        let mut v = json!({"jobId": e.job_id, "thingName": THING, "jobDocument": e.doc,
            "status": e.status, "executionNumber": 1, "versionNumber": e.history.len() + 1});
        if e.details.as_object().is_some_and(|m| !m.is_empty()) {
            v["statusDetails"] = e.details.clone();
        }
        v
    }

    fn notify_next(&mut self) {
        let p = match self.pending() {
            Some(i) => json!({"timestamp": 1, "execution": self.execution_json(i)}),
            None => json!({"timestamp": 1}),
        };
        self.deliver(&format!("$aws/things/{THING}/jobs/notify-next"), p);
    }

    fn on_publish(&mut self, topic: &str, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload).to_string();
        self.published.push((topic.into(), text));
        if topic == format!("$aws/things/{THING}/shadow/get") {
            let state = match self.desired_gate {
                Some(g) => json!({"desired": {"otaEnabled": g}}),
                None => json!({}),
            };
            let reply = json!({"state": state, "version": 1, "timestamp": 1});
            self.deliver(&format!("$aws/things/{THING}/shadow/get/accepted"), reply);
            return;
        }
        let jobs = format!("$aws/things/{THING}/jobs/");
        let Some(rest) = topic.strip_prefix(&jobs) else {
            return;
        };
        if rest == "start-next" {
            let reply = match self.pending() {
                Some(i) => {
                    self.execs[i].status = "IN_PROGRESS".into();
                    json!({"timestamp": 1, "execution": self.execution_json(i)})
                }
                None => json!({"timestamp": 1}),
            };
            self.deliver(&format!("{jobs}start-next/accepted"), reply);
        } else if let Some(id) = rest.strip_suffix("/update") {
            let req: Value = serde_json::from_slice(payload).expect("update is JSON");
            let status = req["status"].as_str().expect("status").to_string();
            let Some(e) = self.execs.iter_mut().find(|e| e.job_id == id) else {
                self.refused += 1;
                return;
            };
            if !matches!(e.status.as_str(), "QUEUED" | "IN_PROGRESS") {
                self.refused += 1;
                return;
            }
            e.status = status.clone();
            e.details = req.get("statusDetails").cloned().unwrap_or(json!({}));
            e.history.push((status.clone(), e.details.clone()));
            if status != "IN_PROGRESS" {
                self.notify_next();
            }
        }
    }
}

impl Broker {
    fn add_job(&self, id: &str, doc: &[u8]) {
        let mut s = self.0.borrow_mut();
        let first = s.pending().is_none();
        s.execs.push(Exec {
            job_id: id.into(),
            doc: serde_json::from_slice(doc).unwrap(),
            status: "QUEUED".into(),
            details: json!({}),
            history: Vec::new(),
        });
        if first {
            s.notify_next();
        }
    }

    fn exec(&self, id: &str) -> Exec {
        self.0
            .borrow()
            .execs
            .iter()
            .find(|e| e.job_id == id)
            .unwrap()
            .clone()
    }

    fn published_on(&self, topic: &str) -> Vec<Value> {
        self.0
            .borrow()
            .published
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| serde_json::from_str(p).unwrap())
            .collect()
    }

    fn last_shadow_firmware(&self) -> String {
        let shadows = self.published_on(&format!("$aws/things/{THING}/shadow/update"));
        shadows.last().expect("a shadow report")["state"]["reported"]["firmware"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The operator sets `desired.otaEnabled`: AWS publishes the delta.
    fn set_desired_gate(&self, gate: bool) {
        let mut s = self.0.borrow_mut();
        s.desired_gate = Some(gate);
        s.deliver(
            &format!("$aws/things/{THING}/shadow/update/delta"),
            json!({"state": {"otaEnabled": gate}, "version": 2, "timestamp": 1}),
        );
    }

    /// `reported.otaEnabled` of every shadow report, in order.
    fn reported_gates(&self) -> Vec<bool> {
        self.published_on(&format!("$aws/things/{THING}/shadow/update"))
            .iter()
            .filter_map(|v| v["state"]["reported"]["otaEnabled"].as_bool())
            .collect()
    }

    fn push_raw(&self, topic: &str, payload: Vec<u8>) {
        self.0.borrow_mut().inbox.push_back(MqttMessage {
            topic: topic.into(),
            payload,
            qos: QoS::AtMostOnce,
        });
    }
}

impl MqttClient for Broker {
    fn client_id(&self) -> &str {
        self.1.0
    }

    async fn subscribe(&self, filter: &str, _qos: QoS) -> Result<(), MqttError> {
        twinrig_hal::mqtt::validate_topic_filter(filter)?;
        self.0.borrow_mut().subscriptions.push(filter.into());
        Ok(())
    }

    async fn publish(&self, topic: &str, payload: &[u8], _qos: QoS) -> Result<(), MqttError> {
        twinrig_hal::mqtt::validate_publish_topic(topic)?;
        self.0.borrow_mut().on_publish(topic, payload);
        Ok(())
    }

    async fn receive(&self) -> Result<MqttMessage, MqttError> {
        poll_fn(|cx| match self.0.borrow_mut().inbox.pop_front() {
            Some(m) => Poll::Ready(Ok(m)),
            None => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }
}

// ---------------------------------------------------------------- downloader

#[derive(Default)]
struct FakeDownloader {
    clock: FakeClock,
    /// url -> bytes served.
    files: RefCell<Vec<(String, Vec<u8>)>>,
    expired: Cell<bool>,
    /// Reads at or past this offset fail with `Interrupted` while `outage` > 0.
    outage_at: Cell<u64>,
    outage: Cell<u32>,
    reads: Cell<u32>,
    failed_reads: Cell<u32>,
}

impl FakeDownloader {
    fn serve(&self, url: &str, bytes: Vec<u8>) {
        self.files.borrow_mut().push((url.into(), bytes));
    }

    fn file(&self, url: &str) -> Result<Vec<u8>, DownloadError> {
        if self.expired.get() {
            return Err(DownloadError::Expired);
        }
        self.files
            .borrow()
            .iter()
            .find(|(u, _)| u == url)
            .map(|(_, b)| b.clone())
            .ok_or(DownloadError::NotFound)
    }
}

impl Downloader for FakeDownloader {
    async fn open(&self, url: &str) -> Result<DownloadInfo, DownloadError> {
        self.clock.advance(50 * MS);
        Ok(DownloadInfo {
            total_len: self.file(url)?.len() as u64,
        })
    }

    async fn read_chunk(
        &self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, DownloadError> {
        self.reads.set(self.reads.get() + 1);
        let file = self.file(url)?;
        if offset >= self.outage_at.get() && self.outage.get() > 0 {
            self.outage.set(self.outage.get() - 1);
            self.failed_reads.set(self.failed_reads.get() + 1);
            self.clock.advance(5_000 * MS);
            return Err(DownloadError::Interrupted);
        }
        // 1 Mbit/s + 20 ms per request.
        let start = (offset as usize).min(file.len());
        let n = buf.len().min(file.len() - start);
        buf[..n].copy_from_slice(&file[start..start + n]);
        self.clock.advance(20 * MS + n as u64 * 8_000);
        Ok(n)
    }
}

// ---------------------------------------------------------------- rig

fn v(major: u16) -> Version {
    Version::new(major, 0, 0)
}

fn image_of(version: Version) -> Vec<u8> {
    let body: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(29) ^ (u32::from(version.major) * 13 + i / 97)) as u8)
        .collect();
    build_image(TYPE, version, &body).unwrap()
}

fn url_of(version: Version) -> String {
    format!("https://firmware.local/{TYPE}/{version}.bin?X-Amz-Expires=3600")
}

fn doc_for(ty: &str, version: Version, img: &[u8]) -> Vec<u8> {
    OtaJob {
        device_type: ty.into(),
        version,
        url: url_of(version),
        sha256: image::sha256(img),
        size: img.len() as u64,
    }
    .to_json()
    .into_bytes()
}

fn provisioned() -> Flash {
    let mut p = Partitions::new(Flash::new(FLASH_SIZE), LAYOUT).unwrap();
    p.provision(&image_of(v(1))).unwrap();
    p.into_flash()
}

fn config() -> OtaConfig {
    OtaConfig {
        chunk_size: 512,
        progress_step_percent: 25,
        ..OtaConfig::new(TYPE, LAYOUT)
    }
}

struct Rig {
    clock: FakeClock,
    broker: Broker,
    dl: FakeDownloader,
    config: OtaConfig,
}

impl Rig {
    fn new() -> Rig {
        let clock = FakeClock::default();
        Rig {
            dl: FakeDownloader {
                clock: clock.clone(),
                outage_at: Cell::new(u64::MAX),
                ..FakeDownloader::default()
            },
            clock,
            broker: Broker::default(),
            config: config(),
        }
    }

    /// Boot the device on `flash` and run it for `for_ns` of virtual time:
    /// `Some(exit)` if it returned (a reboot), `None` if it was still running.
    fn boot(
        &self,
        flash: Flash,
        self_test: impl FnMut(&ImageHeader) -> bool,
        for_ns: u64,
    ) -> Option<Exit<Flash>> {
        // A reboot drops the session's subscriptions and undelivered messages.
        {
            let mut s = self.broker.0.borrow_mut();
            s.subscriptions.clear();
            s.inbox.clear();
        }
        self.run_for(flash, self_test, for_ns)
    }

    /// As [`Self::boot`], keeping whatever is already in the inbox.
    fn run_for(
        &self,
        flash: Flash,
        self_test: impl FnMut(&ImageHeader) -> bool,
        for_ns: u64,
    ) -> Option<Exit<Flash>> {
        let horizon = self.clock.now_ns() + for_ns;
        let clock = self.clock.clone();
        let device = run(
            &self.broker,
            &self.dl,
            &self.clock,
            FakeDelay(self.clock.clone()),
            flash,
            &self.config,
            self_test,
        );
        let watch = async move {
            while clock.now_ns() < horizon {
                yield_now().await;
            }
        };
        match block_on(select(device, watch)) {
            Either::First(exit) => Some(exit),
            Either::Second(()) => None,
        }
    }

    fn expect_reboot(&self, flash: Flash, self_test: impl FnMut(&ImageHeader) -> bool) -> Flash {
        match self.boot(flash, self_test, 30 * MINUTE) {
            Some(Exit::Reboot(f)) => f.reboot(),
            Some(Exit::Halted { reason, .. }) => panic!("halted: {reason}"),
            None => panic!("no reboot"),
        }
    }

    fn expect_running(&self, flash: Flash, self_test: impl FnMut(&ImageHeader) -> bool) {
        if let Some(exit) = self.boot(flash, self_test, 5 * MINUTE) {
            panic!("unexpected exit: {:?}", matches!(exit, Exit::Reboot(_)));
        }
    }

    fn statuses(&self, job: &str) -> Vec<String> {
        self.broker
            .exec(job)
            .history
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }

    fn final_reason(&self, job: &str) -> String {
        let e = self.broker.exec(job);
        e.details["reason"].as_str().unwrap_or("").to_string()
    }
}

fn pass(_: &ImageHeader) -> bool {
    true
}

fn broken_v2(h: &ImageHeader) -> bool {
    h.version != v(2)
}

// ---------------------------------------------------------------- tests

#[test]
fn idle_device_reports_its_version_and_heartbeats() {
    let rig = Rig::new();
    rig.expect_running(provisioned(), pass);
    assert_eq!(rig.broker.last_shadow_firmware(), "1.0.0");
    let shadow = rig
        .broker
        .published_on(&format!("$aws/things/{THING}/shadow/update"));
    assert_eq!(
        shadow[0],
        json!({"state":{"reported":{"firmware":"1.0.0","deviceType":TYPE,"otaEnabled":true}}})
    );
    let beats = rig.broker.published_on(&format!("fleet/{THING}/heartbeat"));
    // 5 virtual minutes at one per minute, the first at boot.
    assert!((5..=6).contains(&beats.len()), "{}", beats.len());
    assert_eq!(beats[0]["firmware"], "1.0.0");
    assert_eq!(beats[0]["deviceType"], TYPE);
    let s = rig.broker.0.borrow();
    assert!(
        s.subscriptions
            .contains(&format!("$aws/things/{THING}/jobs/notify-next"))
    );
    assert!(
        s.published
            .iter()
            .any(|(t, p)| t == &format!("$aws/things/{THING}/jobs/start-next") && p == "{}")
    );
}

#[test]
fn happy_path_updates_reboots_and_succeeds() {
    let rig = Rig::new();
    let img = image_of(v(2));
    rig.dl.serve(&url_of(v(2)), img.clone());
    rig.broker.add_job("ota-2", &doc_for(TYPE, v(2), &img));

    let flash = rig.expect_reboot(provisioned(), pass);
    let e = rig.broker.exec("ota-2");
    assert_eq!(e.status, "IN_PROGRESS");
    assert_eq!(e.details["step"], "rebooting");
    assert_eq!(e.details["version"], "2.0.0");
    let progress: Vec<&Value> = e
        .history
        .iter()
        .filter(|(s, d)| s == "IN_PROGRESS" && d["step"] == "downloading")
        .map(|(_, d)| d)
        .collect();
    // Start (0 bytes) + 25 %, 50 %, 75 %.
    assert_eq!(progress.len(), 4, "{progress:?}");
    assert_eq!(progress[0]["bytesWritten"], "0");
    assert_eq!(progress[0]["totalBytes"], img.len().to_string());
    assert!(progress.windows(2).all(|w| {
        w[0]["bytesWritten"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            < w[1]["bytesWritten"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
    }));

    rig.expect_running(flash, pass);
    assert_eq!(
        rig.statuses("ota-2").last().map(String::as_str),
        Some("SUCCEEDED")
    );
    assert_eq!(rig.broker.exec("ota-2").details["step"], "done");
    assert_eq!(rig.broker.last_shadow_firmware(), "2.0.0");
    let beats = rig.broker.published_on(&format!("fleet/{THING}/heartbeat"));
    assert_eq!(beats.last().unwrap()["firmware"], "2.0.0");
    assert_eq!(rig.broker.0.borrow().refused, 0);
}

#[test]
fn a_separate_ota_connection_serves_the_configured_thing() {
    // An agent beside the robot's firmware: its own client id, the robot's thing.
    let mut rig = Rig::new();
    rig.broker.1 = ClientId("feeder-7-ota");
    rig.config.thing_name = Some(THING.into());
    let img = image_of(v(2));
    rig.dl.serve(&url_of(v(2)), img.clone());
    rig.broker.add_job("ota-2", &doc_for(TYPE, v(2), &img));
    let flash = rig.expect_reboot(provisioned(), pass);
    rig.expect_running(flash, pass);
    assert_eq!(
        rig.statuses("ota-2").last().map(String::as_str),
        Some("SUCCEEDED")
    );
    assert_eq!(rig.broker.last_shadow_firmware(), "2.0.0");
    let s = rig.broker.0.borrow();
    assert!(
        s.published.iter().all(|(t, _)| !t.contains("feeder-7-ota")),
        "{:?}",
        s.published
    );

    // Without the thing name the client id names the thing: it listens on
    // the wrong thing's topics and never sees the job.
    let mut rig = Rig::new();
    rig.broker.1 = ClientId("feeder-7-ota");
    rig.broker.add_job("ota-2", &doc_for(TYPE, v(2), &img));
    rig.expect_running(provisioned(), pass);
    assert_eq!(rig.broker.exec("ota-2").status, "QUEUED");
    assert!(
        rig.broker
            .0
            .borrow()
            .subscriptions
            .contains(&"$aws/things/feeder-7-ota/jobs/notify-next".to_owned())
    );
}

#[test]
fn hash_mismatch_fails_and_keeps_the_old_version() {
    let rig = Rig::new();
    let img = image_of(v(2));
    let mut bad = img.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    rig.dl.serve(&url_of(v(2)), bad);
    rig.broker.add_job("ota-2", &doc_for(TYPE, v(2), &img));

    rig.expect_running(provisioned(), pass);
    assert_eq!(
        rig.statuses("ota-2").last().map(String::as_str),
        Some("FAILED")
    );
    let reason = rig.final_reason("ota-2");
    assert!(reason.contains("sha256 mismatch"), "{reason}");
    assert_eq!(rig.broker.last_shadow_firmware(), "1.0.0");
    assert_eq!(rig.broker.0.borrow().refused, 0);
}

#[test]
fn truncated_download_fails() {
    let rig = Rig::new();
    let img = image_of(v(2));
    rig.dl.serve(&url_of(v(2)), img[..img.len() - 100].to_vec());
    rig.broker.add_job("ota-2", &doc_for(TYPE, v(2), &img));
    rig.expect_running(provisioned(), pass);
    assert_eq!(rig.broker.exec("ota-2").status, "FAILED");
    assert!(rig.final_reason("ota-2").contains("bytes"));
    assert_eq!(rig.broker.last_shadow_firmware(), "1.0.0");
}

#[test]
fn expired_url_fails_with_the_reason() {
    let rig = Rig::new();
    let img = image_of(v(2));
    rig.dl.serve(&url_of(v(2)), img.clone());
    rig.dl.expired.set(true);
    rig.broker.add_job("ota-2", &doc_for(TYPE, v(2), &img));
    rig.expect_running(provisioned(), pass);
    assert_eq!(rig.statuses("ota-2"), ["IN_PROGRESS", "FAILED"]);
    assert!(
        rig.final_reason("ota-2").contains("expired"),
        "{}",
        rig.final_reason("ota-2")
    );
    assert_eq!(rig.broker.last_shadow_firmware(), "1.0.0");
}

#[test]
fn an_interrupted_download_resumes_and_succeeds() {
    let rig = Rig::new();
    let img = image_of(v(2));
    rig.dl.serve(&url_of(v(2)), img.clone());
    rig.dl.outage_at.set(2048);
    rig.dl.outage.set(3); // three failed reads, then the link is back
    rig.broker.add_job("ota-2", &doc_for(TYPE, v(2), &img));

    let flash = rig.expect_reboot(provisioned(), pass);
    assert_eq!(rig.dl.failed_reads.get(), 3);
    // Resumed at the offset: every byte read once, plus the three failures.
    assert_eq!(rig.dl.reads.get(), img.len().div_ceil(512) as u32 + 3);
    let e = rig.broker.exec("ota-2");
    assert!(
        e.history.iter().any(|(_, d)| d["retries"] == "3"),
        "{:?}",
        e.history
    );
    rig.expect_running(flash, pass);
    assert_eq!(rig.broker.exec("ota-2").status, "SUCCEEDED");
    assert_eq!(rig.broker.last_shadow_firmware(), "2.0.0");
}

#[test]
fn a_long_outage_gives_up_after_the_retries() {
    let rig = Rig::new();
    let img = image_of(v(2));
    rig.dl.serve(&url_of(v(2)), img.clone());
    rig.dl.outage_at.set(1024);
    rig.dl.outage.set(1_000);
    rig.broker.add_job("ota-2", &doc_for(TYPE, v(2), &img));
    rig.expect_running(provisioned(), pass);
    assert_eq!(rig.dl.failed_reads.get(), rig.config.max_retries + 1);
    assert_eq!(rig.broker.exec("ota-2").status, "FAILED");
    let reason = rig.final_reason("ota-2");
    assert!(
        reason.contains("interrupted") && reason.contains("retries"),
        "{reason}"
    );
    assert_eq!(rig.broker.last_shadow_firmware(), "1.0.0");
}

#[test]
fn rejections_wrong_type_gate_off_same_version() {
    // Wrong type.
    let rig = Rig::new();
    let img = image_of(v(2));
    rig.dl.serve(&url_of(v(2)), img.clone());
    rig.broker
        .add_job("hand", &doc_for("amazing_hand", v(2), &img));
    rig.broker
        .add_job("same", &doc_for(TYPE, v(1), &image_of(v(1))));
    rig.expect_running(provisioned(), pass);
    assert_eq!(rig.statuses("hand"), ["REJECTED"]);
    assert!(rig.final_reason("hand").contains("wrong device type"));
    // The next job is taken once the first is rejected.
    assert_eq!(rig.statuses("same"), ["REJECTED"]);
    assert!(rig.final_reason("same").contains("already running"));
    assert_eq!(rig.dl.reads.get(), 0);

    // Gate off.
    let mut rig = Rig::new();
    rig.config.device.ota_enabled = false;
    rig.broker.add_job("gated", &doc_for(TYPE, v(2), &img));
    rig.expect_running(provisioned(), pass);
    assert_eq!(rig.statuses("gated"), ["REJECTED"]);
    assert!(rig.final_reason("gated").contains("OTA disabled"));
    assert_eq!(rig.broker.last_shadow_firmware(), "1.0.0");
}

#[test]
fn the_shadow_gate_applies_at_boot_before_the_first_job() {
    let rig = Rig::new();
    let img = image_of(v(2));
    rig.dl.serve(&url_of(v(2)), img.clone());
    rig.broker.0.borrow_mut().desired_gate = Some(false);
    rig.broker.add_job("gated", &doc_for(TYPE, v(2), &img));
    rig.expect_running(provisioned(), pass);
    assert_eq!(rig.statuses("gated"), ["REJECTED"]);
    assert_eq!(rig.final_reason("gated"), "OTA disabled for pet_feeder");
    assert_eq!(rig.dl.reads.get(), 0);
    // Booted reporting the built-in default, then what the shadow asks for,
    // then the report after the rejected job.
    assert_eq!(rig.broker.reported_gates(), [true, false, false]);
}

#[test]
fn a_gate_change_takes_effect_without_a_reboot() {
    let rig = Rig::new();
    let img = image_of(v(2));
    rig.dl.serve(&url_of(v(2)), img.clone());
    let clock = rig.clock.clone();
    let until = |t: u64| {
        let clock = clock.clone();
        async move {
            while clock.now_ns() < t {
                yield_now().await;
            }
        }
    };
    // One boot; the operator acts while the device runs.
    let script = async {
        until(MINUTE).await;
        rig.broker.set_desired_gate(false);
        rig.broker.add_job("while-off", &doc_for(TYPE, v(2), &img));
        until(3 * MINUTE).await;
        assert_eq!(rig.statuses("while-off"), ["REJECTED"]);
        assert_eq!(rig.final_reason("while-off"), "OTA disabled for pet_feeder");
        assert_eq!(rig.broker.reported_gates().last(), Some(&false));
        rig.broker.set_desired_gate(true);
        rig.broker.add_job("while-on", &doc_for(TYPE, v(2), &img));
        until(60 * MINUTE).await;
    };
    let device = run(
        &rig.broker,
        &rig.dl,
        &rig.clock,
        FakeDelay(rig.clock.clone()),
        provisioned(),
        &rig.config,
        pass,
    );
    match block_on(select(device, script)) {
        // The gate opened again: the second job ran to the reboot.
        Either::First(Exit::Reboot(_)) => {}
        Either::First(Exit::Halted { reason, .. }) => panic!("halted: {reason}"),
        Either::Second(()) => panic!("the job after the gate opened did not reach the reboot"),
    }
    assert_eq!(rig.statuses("while-on")[0], "IN_PROGRESS");
    assert_eq!(rig.broker.exec("while-on").details["step"], "rebooting");
    assert_eq!(rig.broker.reported_gates().last(), Some(&true));
}

#[test]
fn shadow_gate_payloads_are_read_strictly() {
    use crate::client::desired_gate;
    assert_eq!(
        desired_gate(br#"{"state":{"otaEnabled":false}}"#, false),
        Some(false)
    );
    assert_eq!(
        desired_gate(br#"{"state":{"desired":{"otaEnabled":true}}}"#, true),
        Some(true)
    );
    assert_eq!(
        desired_gate(br#"{"state":{"otaEnabled":"no"}}"#, false),
        None
    );
    assert_eq!(desired_gate(br#"{"state":{"other":1}}"#, false), None);
    assert_eq!(desired_gate(br#"{"state":{"desired":{}}}"#, true), None);
    assert_eq!(desired_gate(b"not json", true), None);
}

#[test]
fn a_restart_mid_download_fails_the_execution_with_the_reason() {
    let rig = Rig::new();
    let img = image_of(v(2));
    rig.dl.serve(&url_of(v(2)), img.clone());
    rig.broker.add_job("ota-2", &doc_for(TYPE, v(2), &img));
    let flash = provisioned();
    // The link stalls half way; power is cut during the stall.
    rig.dl.outage_at.set(img.len() as u64 / 2);
    rig.dl.outage.set(3);
    assert!(rig.boot(flash.clone(), pass, 6_000 * MS).is_none());
    let e = rig.broker.exec("ota-2");
    assert_eq!(
        (e.status.as_str(), &e.details["step"]),
        ("IN_PROGRESS", &json!("downloading"))
    );
    let written = e.details["bytesWritten"].as_str().unwrap().to_string();
    assert_ne!(written, "0");
    rig.expect_running(flash, pass);
    assert_eq!(rig.statuses("ota-2").last().unwrap(), "FAILED");
    assert_eq!(
        rig.final_reason("ota-2"),
        format!(
            "restarted during the download ({written} of {} bytes written); running 1.0.0",
            img.len()
        )
    );
    assert_eq!(rig.broker.last_shadow_firmware(), "1.0.0");
}

#[test]
fn crash_on_first_boot_rolls_back_and_fails() {
    let rig = Rig::new();
    let img = image_of(v(2));
    rig.dl.serve(&url_of(v(2)), img.clone());
    rig.broker.add_job("ota-2", &doc_for(TYPE, v(2), &img));

    let flash = rig.expect_reboot(provisioned(), broken_v2);
    // The new image fails its self-test: marked invalid, reboot.
    let flash = rig.expect_reboot(flash, broken_v2);
    rig.expect_running(flash, broken_v2);
    assert_eq!(rig.broker.exec("ota-2").status, "FAILED");
    let reason = rig.final_reason("ota-2");
    assert!(reason.contains("rolled back to 1.0.0"), "{reason}");
    assert_eq!(rig.broker.last_shadow_firmware(), "1.0.0");
    // Every shadow report ever sent names a confirmed image.
    let shadows = rig
        .broker
        .published_on(&format!("$aws/things/{THING}/shadow/update"));
    assert!(
        shadows
            .iter()
            .all(|s| s["state"]["reported"]["firmware"] == "1.0.0")
    );
}

#[test]
fn a_second_job_after_a_successful_one() {
    let rig = Rig::new();
    let (i2, i3) = (image_of(v(2)), image_of(v(3)));
    rig.dl.serve(&url_of(v(2)), i2.clone());
    rig.dl.serve(&url_of(v(3)), i3.clone());
    rig.broker.add_job("ota-2", &doc_for(TYPE, v(2), &i2));
    rig.broker.add_job("ota-3", &doc_for(TYPE, v(3), &i3));
    let flash = rig.expect_reboot(provisioned(), pass);
    let flash = rig.expect_reboot(flash, pass);
    rig.expect_running(flash, pass);
    assert_eq!(rig.broker.exec("ota-2").status, "SUCCEEDED");
    assert_eq!(rig.broker.exec("ota-3").status, "SUCCEEDED");
    assert_eq!(rig.broker.last_shadow_firmware(), "3.0.0");
    assert_eq!(rig.broker.0.borrow().refused, 0);
}

#[test]
fn parse_execution_takes_only_well_formed_executions() {
    let ok = br#"{"execution":{"jobId":"j-1","jobDocument":{"operation":"ota"},"status":"QUEUED","executionNumber":2}}"#;
    let e = parse_execution(ok).unwrap();
    assert_eq!((e.job_id.as_str(), e.execution_number), ("j-1", 2));
    for bad in [
        &br#"{}"#[..],
        br#"{"execution":{"jobId":"a/b","jobDocument":{}}}"#,
        br#"{"execution":{"jobId":"a+","jobDocument":{}}}"#,
        br#"{"execution":{"jobId":"","jobDocument":{}}}"#,
        br#"{"execution":{"jobId":"x","jobDocument":"{}"}}"#,
        br#"{"execution":[]}"#,
        b"\xff\xfe",
    ] {
        assert!(
            parse_execution(bad).is_none(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

fn payloads() -> impl Strategy<Value = Vec<u8>> {
    let json_value = prop_oneof![
        Just(json!(null)),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(|s| json!(s)),
        Just(json!({})),
        Just(json!([])),
        Just(json!({"operation":"ota"})),
        Just(
            json!({"operation":"ota","deviceType":TYPE,"version":"9.9.9","url":"u","sha256":"00","size":1})
        ),
        Just(
            json!({"operation":"ota","deviceType":TYPE,"version":"2.0.0",
            "url":url_of(v(2)),"sha256":"0".repeat(64),"size":u64::MAX})
        ),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (
            "[a-zA-Z0-9_/+#-]{0,70}",
            json_value.clone(),
            prop_oneof![Just("QUEUED"), Just("IN_PROGRESS"), Just("x")],
            prop_oneof![
                Just(json!(null)),
                Just(json!({"step":"rebooting"})),
                json_value.clone()
            ],
            prop_oneof![Just(json!(1)), Just(json!(-1)), Just(json!("1"))],
        )
            .prop_map(|(id, doc, status, details, n)| {
                json!({"timestamp": 1, "execution": {"jobId": id, "jobDocument": doc,
                    "status": status, "statusDetails": details, "executionNumber": n}})
                .to_string()
                .into_bytes()
            }),
        json_value.prop_map(|v| json!({"execution": v}).to_string().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_mqtt_payload_makes_it_panic_or_leave_its_image(
        msgs in proptest::collection::vec((0usize..6, payloads()), 1..6)
    ) {
        let rig = Rig::new();
        let topics = [
            format!("$aws/things/{THING}/jobs/notify-next"),
            format!("$aws/things/{THING}/jobs/start-next/accepted"),
            format!("$aws/things/{THING}/jobs/start-next/rejected"),
            format!("$aws/things/{THING}/jobs/notify"),
            format!("$aws/things/{THING}/shadow/update/delta"),
            format!("$aws/things/{THING}/shadow/get/accepted"),
        ];
        // Queued before the device's first receive, i.e. as if they arrived
        // right after it subscribed.
        for (t, p) in &msgs {
            rig.broker.push_raw(&topics[*t], p.clone());
        }
        let exit = rig.run_for(provisioned(), pass, 2 * MINUTE);
        let left = rig.broker.0.borrow().inbox.len();
        prop_assert_eq!(left, 0);
        // The device never updated (no valid job), so it kept running.
        prop_assert!(exit.is_none());
        prop_assert_eq!(rig.broker.last_shadow_firmware(), "1.0.0");
    }
}
