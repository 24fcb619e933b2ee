//! The Amazing Hand device kind: the real hand agent (`robots/hand/agent`)
//! driving the SCS0009 servo-bus twin through the real rustypot driver.
//!
//! How it is wired (docs/DESIGN.md, "Amazing Hand"):
//! - The servo bus twin sits on one end of a 1 Mbaud UART line; rustypot's
//!   `Scs0009Controller` gets the other end as a `serialport::SerialPort`
//!   ([`twinrig_sim::lockstep::SimSerialPort`]), unmodified.
//! - rustypot and the agent's worker are synchronous, so the worker runs on a
//!   lockstep thread ([`twinrig_sim::lockstep`]): its serial calls, pauses,
//!   clock readings, state publishes and job requests are answered inside the
//!   world in virtual time.
//! - The agent's MQTT side ([`hand_agent::mqtt`]) runs as two tasks, as on the
//!   Jetson where the MQTT client's thread parses and queues actions
//!   ([`hand_agent::ActionInbox`]) and the worker takes them one at a time;
//!   state messages go out through the non-blocking publisher at QoS 1, in
//!   order.
//! - The camera samples the twin's joint angles while a message is handled and
//!   renders a GIF; the clip goes to the cloud twin's object store and the
//!   presigned URL (valid 1 hour) is appended to the last state.
//! - `stop` (the scenario's step) is the SIGTERM: taken between messages, it
//!   ends the worker, which switches torque off on all 8 servos.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

use crate::video::{HandFrame, VideoOptions, render_gif};
use crate::{BusConfig, HAND_BAUD, ServoBus};
use hand_agent::{
    ActionInbox, Camera, Conversation, FINGERSPELL_TOOL, Job, JobSource, MessageReport, Model,
    ModelError, ModelTurn, OfflineModel, Pause, StateMessage, StateSink, TokenUsage, ToolCall,
    Video, VideoRig, VideoStore, Worker,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use twinrig_cloud::objects::ObjectStore;
use twinrig_sim::lockstep::{self, Link, LinkClock, SimSerialPort};
use twinrig_sim::uart::UartControl;
use twinrig_sim::{MICROS, MILLIS, Nanos, SimHandle};

use crate::timing::{BusLog, SentenceLog, SentenceTiming, TimingLimits, sentence_timing};
use twinrig_kind::Duration;
use twinrig_kind::serve::ServeModel;
use twinrig_kind::{
    DeviceContext, DeviceKind, DeviceRuntime, DeviceSpec, KindError, Params, ParamsError,
    ParamsModel, ParamsOf, dir_stats_json,
};

/// Trace channel of the timing reports (one message per finished sentence).
pub const HAND_TIMING_CHANNEL: &str = "/hand_timing";

/// Which model the agent talks to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ModelChoice {
    /// The deterministic offline model: the text goes verbatim to `fingerspell`.
    #[default]
    Offline,
    /// A misbehaving model that calls `fingerspell` again on every turn, to
    /// show the 3-call cap.
    KeepsCallingTools,
}

/// Parameters of a hand device.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HandParams {
    /// Keep the agent's 0.2 ms and 5 ms bus pauses (false: back to back).
    #[serde(default = "yes")]
    pauses: bool,
    /// The model.
    #[serde(default)]
    model: ModelChoice,
    /// Record, upload and link a video of each sentence.
    #[serde(default = "yes")]
    video: bool,
    /// Camera frames per second.
    #[serde(default = "default_fps")]
    video_fps: u32,
    /// Messages that may wait behind the running one.
    #[serde(default)]
    queue: Option<usize>,
    /// The serial port's read timeout (rustypot waits this long for a reply).
    #[serde(default = "default_serial_timeout")]
    serial_timeout: Duration,
    /// How long a servo applies a write, missing further writes (the twin's assumed 500 us).
    #[serde(default)]
    processing_window: Option<Duration>,
    /// Timing report: a servo is at its goal within this many degrees.
    #[serde(default = "default_tolerance")]
    reach_tolerance_deg: f64,
    /// Timing report: a pose held less than this is flagged.
    #[serde(default = "default_min_held")]
    min_held: Duration,
}

fn yes() -> bool {
    true
}
fn default_fps() -> u32 {
    10
}
fn default_serial_timeout() -> Duration {
    // rustypot's own examples use 10 ms; the agent's value is not published.
    Duration::from_millis(10)
}
fn default_tolerance() -> f64 {
    2.0
}
fn default_min_held() -> Duration {
    // A quarter of the 0.8 s hold: a pose seen for less is hard to read on
    // camera (assumed; set it per scenario).
    Duration::from_millis(200)
}

/// Calls from the agent's worker thread to the world.
enum HandCall {
    /// Block until the next job (or shutdown).
    NextJob,
    /// Publish a state message (returns at once).
    Publish(String),
    /// A message has been handled.
    Done(Value),
    /// Camera on.
    CameraStart,
    /// Camera off; the clip.
    CameraStop,
    /// Store a clip and presign it.
    Upload {
        key: String,
        bytes: Vec<u8>,
        content_type: String,
    },
    /// The worker has ended.
    Finished { torque_off: bool, videos: u64 },
}

enum HandAnswer {
    Job(Option<Job>),
    Ok,
    Video(Result<Video, String>),
    Url(Result<String, String>),
}

type HandLink = Link<HandCall, HandAnswer>;

/// The world side of a hand: what the MQTT task, the publisher, the camera
/// and the worker's calls share.
struct HandHost {
    inbox: ActionInbox,
    stop: bool,
    job_waker: Option<Waker>,
    outbox: VecDeque<Vec<u8>>,
    outbox_waker: Option<Waker>,
    published: u64,
    sentences: Vec<SentenceLog>,
    reports: Vec<Value>,
    recording: Option<Vec<HandFrame>>,
    camera_waker: Option<Waker>,
    videos: Vec<String>,
    finished: Option<Value>,
    /// Bus bytes (both directions) when the current sentence started.
    bus_bytes_at_start: u64,
    bus_busy_ns: Nanos,
    sentence_ns: Nanos,
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

/// A hand device: the agent on rustypot on the servo-bus twin.
pub struct HandKind;

/// The `hand` kind, for the registry.
pub static KIND: HandKind = HandKind;

struct HandRuntime {
    id: String,
    bus: ServoBus,
    uart: UartControl,
    network: twinrig_sim::net::Network,
    host: Rc<RefCell<HandHost>>,
    limits: TimingLimits,
}

impl HandRuntime {
    fn timing(&self) -> Vec<SentenceTiming> {
        let (goals, writes) = (self.bus.goal_log(), self.bus.write_times());
        let log = BusLog {
            goals: &goals,
            writes: &writes,
        };
        self.host
            .borrow()
            .sentences
            .iter()
            .map(|s| sentence_timing(s, log, self.limits))
            .collect()
    }
}

/// `say` to the hand: the sentence as the voice front end publishes it
/// (`{id, sentence}`; the runner adds the id), for the agent to fingerspell.
struct SpokenSentence;

impl twinrig_kind::CommandModel for SpokenSentence {
    fn interpret(&self, text: &str) -> Result<Vec<Value>, twinrig_kind::VoiceError> {
        if text.trim().is_empty() {
            return Err(twinrig_kind::VoiceError {
                clause: text.to_owned(),
                reason: "nothing was said".into(),
            });
        }
        Ok(vec![json!({ "sentence": text })])
    }
}

impl DeviceRuntime for HandRuntime {
    fn ready_when(&self) -> Vec<twinrig_kind::ReadyWhen> {
        // The agent's MQTT side subscribes to its action topic at start; it
        // announces nothing until the first message.
        vec![twinrig_kind::ReadyWhen::subscribed(
            &self.id,
            &hand_agent::action_topic(&self.id),
        )]
    }
    fn state(&self) -> Value {
        let host = self.host.borrow();
        let servos = self.bus.snapshot();
        let stats = self.uart.stats();
        let timing = self.timing();
        json!({
            "servos": servos.iter().map(|s| json!({
                "id": s.id,
                "deg": s.position_deg,
                "goal_deg": s.goal_deg,
                "torque": s.torque,
                "moving": s.moving,
                "missed": s.counters.missed,
                "clamped": s.counters.clamped,
            })).collect::<Vec<_>>(),
            "torque_on": servos.iter().filter(|s| s.torque).count(),
            "bus": {
                "packets": self.bus.stats().packets,
                "replies": self.bus.stats().replies,
                "missed": self.bus.stats().missed,
                "bad_checksums": self.bus.stats().bad_checksums,
                "utilisation_pct": utilisation_pct(&host),
            },
            "uart": { "to_servos": dir_stats_json(&stats.a_to_b), "from_servos": dir_stats_json(&stats.b_to_a) },
            "link": self.network.stats(&self.id),
            "queue": host.inbox.len(),
            "published": host.published,
            "messages": host.reports,
            "videos": host.videos,
            "timing": timing,
            "flagged": timing.iter().map(|t| t.flagged).sum::<usize>(),
            "service": host.finished.clone().unwrap_or(Value::Null),
            "stopped": host.stop,
        })
    }
    fn uart(&self) -> Option<(&UartControl, bool)> {
        Some((&self.uart, true))
    }
    fn command_topic(&self) -> Option<String> {
        Some(hand_agent::action_topic(&self.id))
    }
    fn first_motion(&self) -> Option<Nanos> {
        self.bus.first_motion()
    }
    fn metrics(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let timing = self.timing();
        let reach = timing
            .iter()
            .filter_map(|t| t.max_reach_ms)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        if let Some(r) = reach {
            out.insert(format!("{}.letter_reach_ms_max", self.id), r);
        }
        let letters: usize = timing.iter().map(|t| t.per_letter.len()).sum();
        out.insert(format!("{}.letters", self.id), letters as f64);
        out.insert(
            format!("{}.letters_flagged", self.id),
            timing.iter().map(|t| t.flagged).sum::<usize>() as f64,
        );
        if let Some(u) = utilisation_pct(&self.host.borrow()) {
            out.insert(format!("{}.bus_utilisation_pct", self.id), u);
        }
        out.insert(
            format!("{}.missed_packets", self.id),
            self.bus.stats().missed as f64,
        );
        out
    }
    fn stop(&self) -> Result<(), KindError> {
        let mut host = self.host.borrow_mut();
        host.stop = true;
        wake(&mut host.job_waker);
        Ok(())
    }
    fn stopped(&self) -> bool {
        self.host.borrow().finished.is_some()
    }
}

/// Share of sentence time the bus wire was busy (both directions), percent.
fn utilisation_pct(host: &HandHost) -> Option<f64> {
    (host.sentence_ns > 0).then(|| host.bus_busy_ns as f64 / host.sentence_ns as f64 * 100.0)
}

impl Params for HandParams {
    fn check(&self) -> Result<(), ParamsError> {
        if !(1..=crate::video::MAX_FPS).contains(&self.video_fps) {
            return Err(ParamsError::at(
                "video_fps",
                format!("video_fps must be 1..={}", crate::video::MAX_FPS),
            ));
        }
        if self.queue == Some(0) {
            return Err(ParamsError::at("queue", "queue must be at least 1"));
        }
        if self.serial_timeout.nanos() == 0 {
            return Err(ParamsError::at(
                "serial_timeout",
                "serial_timeout must be more than 0",
            ));
        }
        if !(self.reach_tolerance_deg.is_finite() && self.reach_tolerance_deg > 0.0) {
            return Err(ParamsError::at(
                "reach_tolerance_deg",
                "reach_tolerance_deg must be > 0",
            ));
        }
        Ok(())
    }
}

impl DeviceKind for HandKind {
    fn name(&self) -> &'static str {
        "hand"
    }
    fn summary(&self) -> &'static str {
        "Amazing Hand: ASL agent on rustypot -> 8 SCS0009 servo twins at 1 Mbaud; the-project/robotic-hand/{id}/action -> .../state"
    }
    fn firmware(&self) -> (&'static str, &'static str) {
        ("hand-agent", hand_agent::VERSION)
    }
    fn command_model(&self) -> Option<&'static dyn twinrig_kind::CommandModel> {
        Some(&SpokenSentence)
    }
    fn rule_presets(&self) -> Vec<twinrig_kind::RulePreset> {
        crate::rules::presets()
    }
    fn params(&self) -> &'static dyn ParamsModel {
        &ParamsOf::<HandParams>::NEW
    }
    fn invariants(&self) -> &'static [&'static dyn twinrig_kind::InvariantModel] {
        &crate::invariants::INVARIANTS
    }
    fn serve(&self) -> Option<&'static dyn ServeModel> {
        Some(&crate::serve::HandServe)
    }
    fn starter_scenario(&self) -> Option<&'static str> {
        Some(include_str!("../starter.yaml"))
    }
    fn spawn(
        &self,
        ctx: &DeviceContext<'_>,
        id: &str,
        spec: &DeviceSpec,
    ) -> Result<Box<dyn DeviceRuntime>, KindError> {
        let p: &HandParams = spec.params()?;
        let mut bus_config = BusConfig::default();
        if let Some(w) = p.processing_window {
            bus_config.processing_window = w.nanos();
        }
        let (bus, host_port, control) = ServoBus::hand(ctx.handle, id, bus_config);
        let client = Rc::new(ctx.connect(id)?);
        let host = Rc::new(RefCell::new(HandHost {
            inbox: ActionInbox::new(p.queue.unwrap_or(hand_agent::DEFAULT_QUEUE_CAPACITY)),
            stop: false,
            job_waker: None,
            outbox: VecDeque::new(),
            outbox_waker: None,
            published: 0,
            sentences: Vec::new(),
            reports: Vec::new(),
            recording: None,
            camera_waker: None,
            videos: Vec::new(),
            finished: None,
            bus_bytes_at_start: 0,
            bus_busy_ns: 0,
            sentence_ns: 0,
        }));
        let epoch = ctx.epoch_unix_s;
        spawn_mqtt_side(ctx.handle, id, client, host.clone(), epoch);
        spawn_camera(ctx.handle, id, bus.clone(), host.clone(), p.video_fps);

        let handler = {
            let (h, host, objects, control, bus) = (
                ctx.handle.clone(),
                host.clone(),
                ctx.services.objects.clone(),
                control.clone(),
                bus.clone(),
            );
            let limits = limits(p);
            let fps = p.video_fps;
            move |call: HandCall| {
                let (h, host, objects, control, bus) = (
                    h.clone(),
                    host.clone(),
                    objects.clone(),
                    control.clone(),
                    bus.clone(),
                );
                async move {
                    serve_call(
                        call, &h, &host, &objects, &control, &bus, limits, epoch, fps,
                    )
                    .await
                }
            }
        };
        let worker_config = WorkerConfig {
            pauses: p.pauses,
            model: p.model,
            video: p.video,
            serial_timeout: std::time::Duration::from_nanos(p.serial_timeout.nanos()),
            epoch,
            port_name: format!("{id}-servo-bus"),
        };
        lockstep::spawn(
            ctx.handle,
            &format!("{id} (hand-agent worker)"),
            Some(host_port),
            move |link| run_worker(link, worker_config),
            handler,
        )
        .map_err(|e| KindError::Build(format!("cannot start the agent's worker thread: {e}")))?;
        Ok(Box::new(HandRuntime {
            id: id.to_string(),
            bus,
            uart: control,
            network: ctx.network.clone(),
            host,
            limits: limits(p),
        }))
    }
}

fn limits(p: &HandParams) -> TimingLimits {
    TimingLimits {
        tolerance_deg: p.reach_tolerance_deg,
        min_held_ns: p.min_held.nanos(),
    }
}

/// The agent's MQTT side as the world sees it: the inbox and the outbox live
/// in the host state, shared with the worker's calls.
struct HostSide {
    host: Rc<RefCell<HandHost>>,
    handle: SimHandle,
    epoch: u64,
}

impl hand_agent::mqtt::ActionQueue for HostSide {
    fn offer(&self, payload: &[u8]) -> Result<u64, hand_agent::ActionError> {
        let mut host = self.host.borrow_mut();
        let seq = host.inbox.offer(payload)?;
        wake(&mut host.job_waker);
        Ok(seq)
    }
    fn now_s(&self) -> u64 {
        self.epoch + self.handle.now() / twinrig_sim::SECONDS
    }
}

impl hand_agent::mqtt::Outbox for HostSide {
    fn push(&self, payload: Vec<u8>) {
        let mut host = self.host.borrow_mut();
        host.outbox.push_back(payload);
        wake(&mut host.outbox_waker);
    }
    fn next(&self) -> impl std::future::Future<Output = Vec<u8>> {
        poll_fn(|cx| {
            let mut host = self.host.borrow_mut();
            match host.outbox.pop_front() {
                Some(p) => Poll::Ready(p),
                None => {
                    host.outbox_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

/// The agent's MQTT side (`hand_agent::mqtt`) as two tasks: the action
/// subscriber and the ordered QoS 1 state publisher.
fn spawn_mqtt_side(
    handle: &SimHandle,
    id: &str,
    client: Rc<twinrig_sim::net::SimMqttClient>,
    host: Rc<RefCell<HandHost>>,
    epoch: u64,
) {
    let side = Rc::new(HostSide {
        host,
        handle: handle.clone(),
        epoch,
    });
    let (c, s, device) = (client.clone(), side.clone(), id.to_string());
    handle.spawn(format!("{id} (hand-agent mqtt)"), async move {
        hand_agent::mqtt::receive_actions(&*c, &device, &*s, &*s).await;
    });
    let device = id.to_string();
    handle.spawn(format!("{id} (hand-agent publisher)"), async move {
        let counter = side.host.clone();
        hand_agent::mqtt::publish_states(&*client, &device, &*side, || {
            counter.borrow_mut().published += 1;
        })
        .await;
    });
}

/// Samples the joint angles at `fps` while recording.
fn spawn_camera(
    handle: &SimHandle,
    id: &str,
    bus: ServoBus,
    host: Rc<RefCell<HandHost>>,
    fps: u32,
) {
    let h = handle.clone();
    let period = twinrig_sim::SECONDS / u64::from(fps.max(1));
    handle.spawn(format!("{id} (camera)"), async move {
        loop {
            poll_fn(|cx| {
                let mut host = host.borrow_mut();
                if host.recording.is_some() {
                    Poll::Ready(())
                } else {
                    host.camera_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            loop {
                let deg = bus.angles_deg();
                {
                    let mut host = host.borrow_mut();
                    let Some(frames) = host.recording.as_mut() else {
                        break;
                    };
                    let mut frame = HandFrame {
                        t_ns: h.now(),
                        deg: [0.0; 8],
                    };
                    for (slot, d) in frame.deg.iter_mut().zip(deg) {
                        *slot = d as f32;
                    }
                    frames.push(frame);
                }
                h.sleep(period).await;
            }
        }
    });
}

fn bus_bytes(control: &UartControl) -> u64 {
    let s = control.stats();
    s.a_to_b.bytes_delivered + s.b_to_a.bytes_delivered
}

#[allow(clippy::too_many_arguments)]
async fn serve_call(
    call: HandCall,
    h: &SimHandle,
    host: &Rc<RefCell<HandHost>>,
    objects: &Rc<RefCell<ObjectStore>>,
    control: &UartControl,
    bus: &ServoBus,
    limits: TimingLimits,
    epoch: u64,
    fps: u32,
) -> HandAnswer {
    match call {
        HandCall::NextJob => {
            let job = poll_fn(|cx| {
                let mut host = host.borrow_mut();
                if let Some(job) = host.inbox.next_job() {
                    return Poll::Ready(Some(job));
                }
                if host.stop {
                    return Poll::Ready(None);
                }
                host.job_waker = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            if let Some(job) = &job {
                let mut host = host.borrow_mut();
                host.bus_bytes_at_start = bus_bytes(control);
                host.sentences.push(SentenceLog {
                    seq: job.seq,
                    text: job.text.clone(),
                    started: h.now(),
                    states: Vec::new(),
                    ended: None,
                });
            }
            HandAnswer::Job(job)
        }
        HandCall::Publish(payload) => {
            let mut host = host.borrow_mut();
            if let Ok(state) = serde_json::from_str::<Value>(&payload)
                && state.get("video_url").is_none()
                && let Some(letter) = state.get("letter").and_then(Value::as_str)
                && let Some(sentence) = host.sentences.last_mut()
                && sentence.ended.is_none()
            {
                sentence.states.push((h.now(), letter.to_string()));
            }
            host.outbox.push_back(payload.into_bytes());
            wake(&mut host.outbox_waker);
            HandAnswer::Ok
        }
        HandCall::Done(report) => {
            let now = h.now();
            let (goals, writes) = (bus.goal_log(), bus.write_times());
            let mut host = host.borrow_mut();
            let bytes = bus_bytes(control).saturating_sub(host.bus_bytes_at_start);
            let mut timing = None;
            if let Some(sentence) = host.sentences.last_mut() {
                sentence.ended = Some(now);
                let started = sentence.started;
                let log = BusLog {
                    goals: &goals,
                    writes: &writes,
                };
                timing = Some(sentence_timing(sentence, log, limits));
                host.sentence_ns += now - started;
                // 10 bits per byte at 1 Mbaud: 10 us of wire per byte.
                host.bus_busy_ns += bytes * 10 * MICROS * 1_000_000 / u64::from(HAND_BAUD);
            }
            host.reports.push(report);
            drop(host);
            if let Some(t) = timing {
                h.trace(
                    HAND_TIMING_CHANNEL,
                    serde_json::to_value(&t).unwrap_or(Value::Null),
                );
            }
            HandAnswer::Ok
        }
        HandCall::CameraStart => {
            let mut host = host.borrow_mut();
            host.recording = Some(Vec::new());
            wake(&mut host.camera_waker);
            HandAnswer::Ok
        }
        HandCall::CameraStop => {
            let frames = host.borrow_mut().recording.take().unwrap_or_default();
            let options = VideoOptions {
                fps,
                offsets_deg: hand_agent::Calibration::SHEET
                    .middle_pos_deg
                    .map(|d| d as f32),
                ..VideoOptions::default()
            };
            HandAnswer::Video(
                render_gif(&frames, &options)
                    .map(|bytes| Video {
                        bytes,
                        extension: crate::video::VIDEO_EXTENSION.into(),
                        content_type: crate::video::VIDEO_CONTENT_TYPE.into(),
                    })
                    .map_err(|e| e.to_string()),
            )
        }
        HandCall::Upload {
            key,
            bytes,
            content_type,
        } => {
            let now_s = epoch + h.now() / twinrig_sim::SECONDS;
            let mut store = objects.borrow_mut();
            let url = store
                .put(&key, bytes, &content_type)
                .and_then(|_| store.presign_get(&key, now_s))
                .map_err(|e| e.to_string());
            if let Ok(u) = &url {
                host.borrow_mut().videos.push(u.clone());
            }
            HandAnswer::Url(url)
        }
        HandCall::Finished { torque_off, videos } => {
            host.borrow_mut().finished = Some(json!({
                "torque_off": torque_off,
                "videos": videos,
                "at_ms": h.now() as f64 / MILLIS as f64,
            }));
            HandAnswer::Ok
        }
    }
}

/// What the worker thread needs (all `Send`).
struct WorkerConfig {
    pauses: bool,
    model: ModelChoice,
    video: bool,
    serial_timeout: std::time::Duration,
    epoch: u64,
    port_name: String,
}

/// The worker thread's body: the agent's `serve` loop on rustypot.
fn run_worker(link: Arc<HandLink>, config: WorkerConfig) {
    use serialport::SerialPort;
    let mut port = SimSerialPort::new(link.clone(), &config.port_name, HAND_BAUD);
    // The port's timeout is the agent's choice; a missed packet costs this much.
    let _ = port.set_timeout(config.serial_timeout);
    let controller = rustypot::servo::feetech::scs0009::Scs0009Controller::new()
        .with_protocol_v1()
        .with_serial_port(Box::new(port));
    let driver = hand_agent::rustypot_driver::RustypotDriver::new(controller);
    let mut hand = hand_agent::Hand::new(driver, LinkPause(link.clone()), LinkClock(link.clone()));
    hand.epoch_s = config.epoch;
    if !config.pauses {
        hand.timing = hand.timing.without_bus_pauses();
    }
    let model = match config.model {
        ModelChoice::Offline => HarnessModel::Offline(OfflineModel::default()),
        ModelChoice::KeepsCallingTools => HarnessModel::KeepsCallingTools(0),
    };
    let mut worker = Worker::new(hand, model, LinkSink(link.clone()));
    let mut jobs = LinkJobs(link.clone());
    let summary = if config.video {
        let (mut camera, mut store) = (LinkCamera(link.clone()), LinkStore(link.clone()));
        hand_agent::serve(
            &mut worker,
            &mut jobs,
            Some(VideoRig {
                camera: &mut camera,
                store: &mut store,
            }),
        )
    } else {
        hand_agent::serve(&mut worker, &mut jobs, None)
    };
    link.app(HandCall::Finished {
        torque_off: summary.torque_off,
        videos: summary.videos,
    });
}

fn expect_ok(answer: HandAnswer) {
    debug_assert!(matches!(answer, HandAnswer::Ok));
}

struct LinkPause(Arc<HandLink>);
impl Pause for LinkPause {
    fn pause(&mut self, ns: u64) {
        self.0.sleep(ns);
    }
}

struct LinkSink(Arc<HandLink>);
impl StateSink for LinkSink {
    fn publish(&mut self, state: &StateMessage) {
        expect_ok(self.0.app(HandCall::Publish(state.to_json())));
    }
}

struct LinkJobs(Arc<HandLink>);
impl JobSource for LinkJobs {
    fn next_job(&mut self) -> Option<Job> {
        match self.0.app(HandCall::NextJob) {
            HandAnswer::Job(job) => job,
            _ => None,
        }
    }
    fn done(&mut self, report: &MessageReport) {
        let r = &report.run;
        let value = json!({
            "seq": report.job.seq,
            "text": report.job.text,
            "model_calls": r.model_calls,
            "tool_calls": r.executed.len(),
            "cancelled_tool_calls": r.cancelled.len(),
            "tokens": { "input": r.usage.input, "output": r.usage.output, "total": r.usage.total },
            "stop": format!("{:?}", r.stop),
            "letters": report.spelled.iter().map(|s| s.letters.as_str()).collect::<Vec<_>>().join(""),
        });
        expect_ok(self.0.app(HandCall::Done(value)));
    }
}

struct LinkCamera(Arc<HandLink>);
impl Camera for LinkCamera {
    fn start(&mut self) {
        expect_ok(self.0.app(HandCall::CameraStart));
    }
    fn stop(&mut self) -> Result<Video, String> {
        match self.0.app(HandCall::CameraStop) {
            HandAnswer::Video(v) => v,
            _ => Err("camera: unexpected answer".into()),
        }
    }
}

struct LinkStore(Arc<HandLink>);
impl VideoStore for LinkStore {
    fn upload(&mut self, key: &str, video: &Video) -> Result<String, String> {
        match self.0.app(HandCall::Upload {
            key: key.to_string(),
            bytes: video.bytes.clone(),
            content_type: video.content_type.clone(),
        }) {
            HandAnswer::Url(u) => u,
            _ => Err("store: unexpected answer".into()),
        }
    }
}

/// The models a scenario can choose.
enum HarnessModel {
    Offline(OfflineModel),
    /// Calls `fingerspell` with the user's text on every turn, never ending
    /// its turn: a stand-in for a model stuck in a tool loop.
    KeepsCallingTools(u64),
}

impl Model for HarnessModel {
    fn respond(&mut self, conversation: &Conversation) -> Result<ModelTurn, ModelError> {
        match self {
            HarnessModel::Offline(m) => m.respond(conversation),
            HarnessModel::KeepsCallingTools(n) => {
                let text = conversation
                    .messages
                    .iter()
                    .find_map(|m| match m {
                        hand_agent::Message::User(t) => Some(t.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                *n += 1;
                Ok(ModelTurn {
                    text: None,
                    tool_calls: vec![ToolCall {
                        id: format!("loop-{n}"),
                        name: FINGERSPELL_TOOL.into(),
                        input: json!({ "text": text }),
                    }],
                    usage: TokenUsage {
                        input: 10,
                        output: 5,
                        total: 15,
                    },
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(params: Value) -> Result<(), String> {
        let Value::Object(map) = params else {
            unreachable!()
        };
        HandKind
            .params()
            .parse(&map)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn good_params_pass_and_bad_ones_name_the_problem() {
        assert_eq!(check(json!({})), Ok(()));
        assert_eq!(
            check(
                json!({ "pauses": false, "model": "keeps_calling_tools", "video": false,
                "video_fps": 25, "queue": 2, "serial_timeout": "5ms",
                "processing_window": "300us", "reach_tolerance_deg": 1.5, "min_held": "400ms" })
            ),
            Ok(())
        );
        for (params, needle) in [
            (json!({ "pause": false }), "unknown field `pause`"),
            (json!({ "model": "gpt" }), "unknown variant `gpt`"),
            (json!({ "video_fps": 0 }), "video_fps must be 1..=100"),
            (json!({ "video_fps": 101 }), "video_fps must be 1..=100"),
            (json!({ "queue": 0 }), "queue must be at least 1"),
            (
                json!({ "serial_timeout": "0ms" }),
                "serial_timeout must be more than 0",
            ),
            (json!({ "serial_timeout": 10 }), "unit"),
            (
                json!({ "reach_tolerance_deg": -1.0 }),
                "reach_tolerance_deg must be > 0",
            ),
        ] {
            let err = check(params.clone()).expect_err(&params.to_string());
            assert!(err.contains(needle), "{params}: {err}");
        }
    }
}
