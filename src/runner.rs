//! Runs one scenario: builds the world, spawns devices and the timeline, and
//! collects assertion results and the trace.
//!
//! The timeline is itself a task on the world's executor, so `delay` and
//! `wait_for` are pause points like any device's. A failed `expect` is
//! recorded and the timeline goes on; a `wait_for` that times out ends the
//! timeline (later steps depend on it). The run ends when the timeline
//! finishes, a device task panics, or virtual time reaches `duration_limit`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Serialize;
use serde_json::{Value, json};
use twinrig_hal::{MqttClient, QoS};
use twinrig_sim::net::{LinkParams, Network};
use twinrig_sim::physics::{BodySpec, FloorConfig, PhysicsConfig, PhysicsWorld, Shape};
use twinrig_sim::trace::channels;
use twinrig_sim::{Nanos, RunStop, Sim, SimHandle, TaskState, Trace, TraceOutput, format_nanos};

use crate::check::{compare, compare_duration, field_check, json_path, payload_matches};
use crate::cloud_twin::CloudTwin;
use crate::devices::{self, DeviceRuntime};
use crate::scenario::{
    BodyField, Expect, Fault, LinkFaultKind, Scenario, ShapeSpec, Step, UartFaultKind,
};
use crate::world::{FleetSpec, Scene, SceneSpec, World, WorldSpec};

/// How long a `stop` step waits for the device to finish shutting down.
const STOP_TIMEOUT: Nanos = 60 * twinrig_sim::SECONDS;

/// The client id the timeline publishes with.
pub const SCENARIO_CLIENT: &str = crate::scenario::RESERVED_CLIENT_ID;

/// How many of the broker's newest messages a run always holds, whatever
/// its readers need (older ones go unless an assertion needs them; see
/// [`RunOptions::observed_window`]).
pub const OBSERVED_WINDOW: usize = 1024;

/// How a run records what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Where the trace goes: memory (tests, `record`, `replay`), a file
    /// streamed as the run goes (`run --trace`), or nowhere.
    pub trace: TraceOutput,
    /// The broker's newest messages always held. Older ones are dropped once
    /// the readers (cloud twin, readiness, a `wait_for` in progress) have
    /// passed them, unless a step of the scenario needs them (`expect:
    /// message`, `latency`, `presigned`, the timeline's own publishes, the
    /// devices' command topics), so an idle device costs no memory that grows
    /// with time. Results do not depend on it (tests run with 0).
    pub observed_window: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            trace: TraceOutput::Memory,
            observed_window: OBSERVED_WINDOW,
        }
    }
}

impl RunOptions {
    /// No trace kept: for runs made many at a time (sweeps, shrinking,
    /// property tests), each rerun with `twinrig run` for its trace.
    pub fn untraced() -> Self {
        RunOptions {
            trace: TraceOutput::Discard,
            ..RunOptions::default()
        }
    }
}

/// The result of one assertion (an `expect` step or a `wait_for`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssertionResult {
    /// Step number, 1-based.
    pub step: usize,
    /// What was checked.
    pub description: String,
    /// Whether it held.
    pub passed: bool,
    /// Why not, or what was seen.
    pub detail: String,
    /// Virtual time of the check, ns.
    pub at_ns: Nanos,
    /// The number an `expect` compared, when it compared one (a body
    /// coordinate, a numeric device field, a latency in ms, a message
    /// count): a sweep reports its distribution over seeds.
    pub value: Option<f64>,
}

/// The outcome of one scenario run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Scenario name.
    pub name: String,
    /// Its seed.
    pub seed: u64,
    /// Every assertion, in order.
    pub assertions: Vec<AssertionResult>,
    /// Why the run failed apart from assertions (timeout, panic, limit), if it did.
    pub failure: Option<String>,
    /// Virtual time when the run ended.
    pub virtual_ns: Nanos,
    /// Figures derived from the run, by name (e.g. `rvr-1.command_to_first_motion_ms`).
    pub metrics: BTreeMap<String, f64>,
    /// Every record the cloud's rules stored, in insertion order.
    pub records: Vec<twinrig_cloud::records::Record>,
    /// The fault schedule the seed drew from the scenario's `chaos:`, in
    /// start order (empty without `chaos:`).
    pub faults: Vec<crate::scenario::chaos::ScheduledFault>,
    /// The trace: every record with [`TraceOutput::Memory`]; only the
    /// metadata when it was streamed to a file or discarded.
    pub trace: Trace,
    /// Trace records made, wherever they went.
    pub trace_records: u64,
    /// Why the trace file could not be written, if it could not.
    pub trace_error: Option<String>,
}

impl Outcome {
    /// True when the timeline finished and every assertion held.
    pub fn passed(&self) -> bool {
        self.failure.is_none() && self.assertions.iter().all(|a| a.passed)
    }
}

/// The rules pipeline a scenario's `cloud.rules` ask for (None without rules).
fn rules_pipeline(
    s: &Scenario,
) -> Result<Option<twinrig_cloud::rules::pipeline::Pipeline>, String> {
    rules_pipeline_of(&s.cloud.rules)
}

/// The rules pipeline of a `cloud.rules` list (None when it is empty):
/// presets with their transforms, or rules written out.
pub fn rules_pipeline_of(
    rules: &[crate::scenario::RuleRef],
) -> Result<Option<twinrig_cloud::rules::pipeline::Pipeline>, String> {
    if rules.is_empty() {
        return Ok(None);
    }
    let configs = rules
        .iter()
        .map(|r| r.to_config().ok_or_else(|| format!("unknown rule {r:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let rules = twinrig_cloud::rules::RuleSet::from_configs(configs).map_err(|e| e.to_string())?;
    twinrig_cloud::rules::pipeline::Pipeline::new(rules, crate::scenario::transforms())
        .map(Some)
        .map_err(|e| e.to_string())
}

fn physics_config(s: &Scenario) -> PhysicsConfig {
    PhysicsConfig {
        rate_hz: s.world.physics_rate_hz,
        gravity: [0.0, 0.0, s.world.gravity as f32],
        floor: s.world.floor.as_ref().map(|f| FloorConfig {
            friction: f.friction as f32,
            restitution: f.restitution as f32,
        }),
        sample_period: s.world.sample_period.nanos(),
    }
}

fn body_spec(o: &crate::scenario::Obstacle) -> BodySpec {
    let shape = match &o.shape {
        ShapeSpec::Box { size } => Shape::Cuboid {
            half_extents: [
                size[0] as f32 / 2.0,
                size[1] as f32 / 2.0,
                size[2] as f32 / 2.0,
            ],
        },
        ShapeSpec::Ball { radius } => Shape::Ball {
            radius: *radius as f32,
        },
        ShapeSpec::Cylinder { radius, height } => Shape::Cylinder {
            half_height: *height as f32 / 2.0,
            radius: *radius as f32,
        },
    };
    BodySpec {
        name: o.name.clone(),
        shape,
        position: [
            o.position[0] as f32,
            o.position[1] as f32,
            o.position[2] as f32,
        ],
        yaw_deg: o.yaw_deg as f32,
        dynamic: o.dynamic,
        mass: o.mass.map(|m| m as f32),
        friction: o.friction as f32,
        restitution: o.restitution as f32,
    }
}

/// Device crate versions this build would run for `scenario`, for the trace.
pub fn firmware_versions(
    scenario: &Scenario,
    kinds: &[&'static dyn devices::DeviceKind],
) -> BTreeMap<String, String> {
    let mut v = BTreeMap::from([("twinrig".to_string(), env!("CARGO_PKG_VERSION").to_string())]);
    for d in &scenario.devices {
        if let Some(kind) = kinds.iter().find(|k| k.name() == d.kind) {
            let (name, version) = kind.firmware();
            v.insert(name.to_string(), version.to_string());
        }
    }
    v
}

struct Timeline {
    handle: SimHandle,
    network: Network,
    physics: PhysicsWorld,
    client: twinrig_sim::net::SimMqttClient,
    devices: BTreeMap<String, Box<dyn DeviceRuntime>>,
    cloud: Rc<CloudTwin>,
    services: devices::CloudServices,
    fleet: Option<Rc<crate::fleet::Fleet>>,
    say_count: std::cell::Cell<u64>,
    /// Clients whose broker events the readiness tracker indexed since a
    /// readiness wait last looked.
    touched: RefCell<std::collections::BTreeSet<String>>,
    /// The readiness tracker's place in the broker's message log.
    readiness_cursor: twinrig_sim::net::ObservedCursor,
    results: RefCell<Vec<AssertionResult>>,
    failure: RefCell<Option<String>>,
    current_step: std::cell::Cell<usize>,
    start: crate::scenario::Start,
    ready_timeout: crate::scenario::Duration,
    /// How each device that takes `say` steps understands speech.
    command_models: BTreeMap<String, &'static dyn twinrig_kind::CommandModel>,
    /// The broker's events indexed for readiness.
    readiness: RefCell<crate::readiness::Tracker>,
    /// The scenario's invariants and how each has fared so far.
    invariants: RefCell<Vec<InvariantWatch>>,
    /// The invariants' place in the broker's message log (None without
    /// invariants, so the log can forget what everyone else has read).
    invariants_cursor: Option<twinrig_sim::net::ObservedCursor>,
    /// Each fleet device's boot time when the fleet checks last looked.
    fleet_boots_seen: RefCell<Vec<Nanos>>,
}

/// An invariant as the run checks it.
struct InvariantWatch {
    invariant: crate::scenario::Invariant,
    /// The check a named invariant (`check:`) runs.
    named: Option<Box<dyn twinrig_kind::InvariantCheck>>,
    /// Times it was checked.
    checks: u64,
    /// Matching messages so far (message invariants).
    count: usize,
    /// Whether it has failed (only its first failure is recorded).
    violated: bool,
}

/// How the run follows the scenario's invariants; a named check this
/// build cannot make is an error (validation refuses it first).
fn invariant_watches(
    scenario: &Scenario,
    kinds: &[&'static dyn devices::DeviceKind],
) -> Result<Vec<InvariantWatch>, String> {
    use crate::scenario::Invariant;
    scenario
        .invariants
        .iter()
        .enumerate()
        .map(|(i, invariant)| {
            let named = match invariant {
                Invariant::Check(c) => {
                    let (models, whose): (&[&dyn twinrig_kind::InvariantModel], String) = match &c
                        .device
                    {
                        Some(id) => {
                            let kind = scenario
                                .devices
                                .iter()
                                .find(|d| &d.id == id)
                                .and_then(|d| kinds.iter().find(|k| k.name() == d.kind))
                                .ok_or_else(|| {
                                    format!("invariant {}: no device {id} of a known kind", i + 1)
                                })?;
                            (kind.invariants(), format!("kind `{}`", kind.name()))
                        }
                        None => (
                            &crate::fleet::invariants::INVARIANTS,
                            "the fleet".to_owned(),
                        ),
                    };
                    let model = twinrig_kind::invariant::find(models, &c.name, &whose)
                        .map_err(|e| format!("invariant {}: {e}", i + 1))?;
                    let check = model
                        .build(c.device.as_deref().unwrap_or(""), &c.params)
                        .map_err(|e| format!("invariant {}: check `{}`: {e}", i + 1, c.name))?;
                    Some(check)
                }
                _ => None,
            };
            Ok(InvariantWatch {
                invariant: invariant.clone(),
                named,
                checks: 0,
                count: 0,
                violated: false,
            })
        })
        .collect()
}

/// Runs `scenario` (its YAML `source` goes into the trace for replay) with
/// this build's device kinds, the trace in memory. `progress` is called with
/// virtual time as it advances.
pub fn run(scenario: &Scenario, source: &str, progress: impl FnMut(Nanos) + 'static) -> Outcome {
    run_with_kinds(scenario, source, devices::kinds(), progress)
}

/// Like [`run`], with the device kinds given (tests add kinds of their own).
pub fn run_with_kinds(
    scenario: &Scenario,
    source: &str,
    kinds: &[&'static dyn devices::DeviceKind],
    progress: impl FnMut(Nanos) + 'static,
) -> Outcome {
    run_with_options(scenario, source, kinds, &RunOptions::default(), progress)
}

/// Like [`run_with_kinds`], with the trace output and log retention given.
pub fn run_with_options(
    scenario: &Scenario,
    source: &str,
    kinds: &[&'static dyn devices::DeviceKind],
    options: &RunOptions,
    progress: impl FnMut(Nanos) + 'static,
) -> Outcome {
    let mut outcome = Outcome {
        name: scenario.name.clone(),
        seed: scenario.seed,
        assertions: Vec::new(),
        failure: None,
        virtual_ns: 0,
        metrics: BTreeMap::new(),
        records: Vec::new(),
        faults: scenario
            .chaos
            .as_ref()
            .map(|c| c.draw(scenario.seed, scenario.duration_limit))
            .unwrap_or_default(),
        trace: Trace::default(),
        trace_records: 0,
        trace_error: None,
    };
    let mut sim = match Sim::with_trace(scenario.seed, &options.trace) {
        Ok(sim) => sim,
        Err(e) => {
            outcome.failure = Some(e.to_string());
            outcome.trace_error = Some(e.to_string());
            return outcome;
        }
    };
    let handle = sim.handle();
    match build_and_run(
        &mut sim,
        &handle,
        scenario,
        kinds,
        options,
        &outcome.faults,
        progress,
    ) {
        Ok(timeline) => {
            let held = timeline.finish_invariants();
            for a in &held {
                handle.trace(
                    channels::ASSERTIONS,
                    json!({"step": a.step, "description": a.description, "passed": true, "detail": a.detail}),
                );
            }
            timeline.results.borrow_mut().extend(held);
            outcome.assertions = timeline.results.borrow().clone();
            outcome.failure = timeline.failure.borrow().clone();
            outcome.metrics = timeline.metrics();
            outcome.records = timeline.all_records();
        }
        Err(message) => outcome.failure = Some(message),
    }
    outcome.virtual_ns = sim.now();
    sim.shutdown();
    outcome.trace_records = handle.trace_len();
    sim.set_trace_metadata(
        "scenario",
        BTreeMap::from([
            ("name".to_string(), scenario.name.clone()),
            ("seed".to_string(), scenario.seed.to_string()),
            ("source".to_string(), source.to_string()),
        ]),
    );
    sim.set_trace_metadata("versions", firmware_versions(scenario, kinds));
    match sim.finish_trace() {
        Ok(trace) => outcome.trace = trace,
        Err(e) => outcome.trace_error = Some(e.to_string()),
    }
    outcome
}

/// The broker messages a scenario's steps may still need after every reader
/// has passed them: those on the topics of its `expect: message`, `latency`
/// and `presigned` checks, the devices' command topics (for the command ->
/// motion metric), and the timeline's own publishes (a failed wait explains
/// itself with them).
fn retention_rule(
    scenario: &Scenario,
    devices: &BTreeMap<String, Box<dyn DeviceRuntime>>,
) -> impl Fn(&twinrig_sim::net::Observed) -> bool + 'static {
    let mut filters: Vec<String> = Vec::new();
    for step in &scenario.steps {
        match step {
            Step::Expect(Expect::Message(m)) => filters.push(m.topic.clone()),
            Step::Expect(Expect::Latency(l)) => {
                filters.push(l.from.topic.clone());
                filters.push(l.to.topic.clone());
            }
            Step::Expect(Expect::Presigned(p)) => filters.push(p.topic.clone()),
            _ => {}
        }
    }
    let commands: Vec<String> = devices.values().filter_map(|d| d.command_topic()).collect();
    move |m| {
        m.from == SCENARIO_CLIENT
            || commands.contains(&m.topic)
            || filters
                .iter()
                .any(|f| twinrig_hal::mqtt::topic_matches(f, &m.topic))
    }
}

fn build_and_run(
    sim: &mut Sim,
    handle: &SimHandle,
    scenario: &Scenario,
    kinds: &[&'static dyn devices::DeviceKind],
    options: &RunOptions,
    faults: &[crate::scenario::chaos::ScheduledFault],
    progress: impl FnMut(Nanos) + 'static,
) -> Result<Rc<Timeline>, String> {
    let world = crate::world::build(
        sim,
        WorldSpec {
            scene: Some(SceneSpec {
                physics: physics_config(scenario),
                obstacles: scenario
                    .world
                    .obstacles
                    .iter()
                    .map(|o| (o.name.clone(), body_spec(o)))
                    .collect(),
                devices: &scenario.devices,
                kinds,
                default_link: &scenario.link,
            }),
            rules: rules_pipeline(scenario)?,
            epoch_unix_s: scenario.cloud.epoch_unix_s,
            fleet: scenario.fleet.as_ref().map(|config| FleetSpec {
                config,
                members: &scenario.devices,
                default_link: &scenario.link,
                run_limit: scenario.duration_limit.nanos(),
            }),
        },
    )
    .map_err(|e| e.to_string())?;
    let World {
        network,
        scene,
        services,
        cloud,
        fleet,
    } = world;
    let Scene {
        physics,
        devices: runtimes,
        command_models,
    } = scene.ok_or("the world was built without its scene")?;
    let client = network.connect(SCENARIO_CLIENT, LinkParams::ideal())?;
    network.set_retention(retention_rule(scenario, &runtimes), options.observed_window);
    let readiness_cursor = network.cursor(0);
    let invariants_cursor = (!scenario.invariants.is_empty()).then(|| network.cursor(0));
    let timeline = Rc::new(Timeline {
        handle: handle.clone(),
        network,
        physics,
        client,
        devices: runtimes,
        cloud,
        services,
        fleet,
        say_count: std::cell::Cell::new(0),
        touched: RefCell::new(Default::default()),
        readiness_cursor,
        results: RefCell::new(Vec::new()),
        failure: RefCell::new(None),
        current_step: std::cell::Cell::new(0),
        start: scenario.start,
        ready_timeout: scenario.ready_timeout,
        command_models,
        readiness: RefCell::new(crate::readiness::Tracker::default()),
        invariants: RefCell::new(invariant_watches(scenario, kinds)?),
        invariants_cursor,
        fleet_boots_seen: RefCell::new(Vec::new()),
    });
    let steps = scenario.steps.clone();
    let t = timeline.clone();
    let task = sim.spawn("timeline", async move { t.run(&steps).await });
    // Keeps the readiness index current as the broker's events happen, so
    // the message log can forget what it has indexed.
    let t = timeline.clone();
    sim.spawn("readiness index", async move { t.index_readiness().await });
    if !scenario.invariants.is_empty() {
        let t = timeline.clone();
        let period = scenario.world.sample_period.nanos().max(1);
        sim.spawn(
            "invariants",
            async move { t.watch_invariants(period).await },
        );
    }
    if !faults.is_empty() {
        // The drawn schedule goes into the trace first, so a failure
        // shows what was going to happen as well as what did.
        handle.trace(channels::FAULTS, json!({ "chaos": faults }));
        let (t, faults) = (timeline.clone(), faults.to_vec());
        sim.spawn("chaos", async move { t.apply_chaos(&faults).await });
    }
    sim.on_progress(progress);
    let limit = scenario.duration_limit.nanos();
    let stop = match sim.run_until(limit, |s| {
        s.task_state(task) != TaskState::Running || !s.failures().is_empty()
    }) {
        Ok(stop) => stop,
        Err(e) => {
            // The run cannot go on; report it with what ran so far.
            let step = timeline.current_step.get();
            timeline
                .failure
                .borrow_mut()
                .get_or_insert(format!("during step {step}: {e}"));
            return Ok(timeline);
        }
    };
    if let Some(f) = sim.failures().first() {
        let message = format!(
            "device task {} panicked at {}: {}",
            f.task,
            format_nanos(f.at),
            f.message
        );
        handle.trace(channels::TASKS, json!({"task": f.task, "panic": f.message}));
        timeline.failure.borrow_mut().get_or_insert(message);
    } else if sim.task_state(task) == TaskState::Running {
        let step = timeline.current_step.get();
        let message = match stop {
            RunStop::Limit => format!(
                "duration limit {} reached during step {step}",
                scenario.duration_limit
            ),
            _ => format!(
                "nothing left to run during step {step}: no timer, message or physics step \
                 is scheduled, so virtual time cannot advance past {}; {}",
                format_nanos(sim.now()),
                sim.describe_waiting(8)
            ),
        };
        timeline.failure.borrow_mut().get_or_insert(message);
    }
    Ok(timeline)
}

fn step_kind(step: &Step) -> &'static str {
    match step {
        Step::Publish(_) => "publish",
        Step::WaitFor(_) => "wait_for",
        Step::Expect(_) => "expect",
        Step::Delay(_) => "delay",
        Step::Fault(_) => "fault",
        Step::Say(_) => "say",
        Step::Prompt(_) => "prompt",
        Step::CreateJob(_) => "create_job",
        Step::WaitForJob(_) => "wait_for_job",
        Step::Stop(_) => "stop",
    }
}

impl Timeline {
    async fn run(&self, steps: &[Step]) {
        if self.start == crate::scenario::Start::WhenReady {
            let ids = self.initial_devices();
            let timeout = self.ready_timeout;
            if let Err(message) = self
                .wait_ready(&ids, timeout.nanos(), &timeout.to_string())
                .await
            {
                *self.failure.borrow_mut() = Some(format!("before step 1: {message}"));
                return;
            }
            self.handle.trace(
                channels::STEPS,
                json!({"ready": ids.len(), "at_ns": self.handle.now()}),
            );
        }
        for (i, step) in steps.iter().enumerate() {
            let n = i + 1;
            self.current_step.set(n);
            self.handle
                .trace(channels::STEPS, json!({"step": n, "kind": step_kind(step)}));
            if let Err(message) = self.run_step(n, step).await {
                *self.failure.borrow_mut() =
                    Some(format!("step {n} ({}): {message}", step_kind(step)));
                return;
            }
        }
    }

    /// Devices the timeline waits for at the start: every scenario device and
    /// every fleet device meant to be online (not offline by a fault).
    fn initial_devices(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.devices.keys().cloned().collect();
        if let Some(fleet) = &self.fleet {
            ids.extend(
                fleet
                    .devices()
                    .iter()
                    .filter(|d| !d.offline && !self.devices.contains_key(&d.id))
                    .map(|d| d.id.clone()),
            );
        }
        ids
    }

    /// A device's readiness conditions: its own kind's, plus its OTA
    /// client's when it is in the fleet.
    fn ready_conditions(&self, id: &str) -> Vec<devices::ReadyWhen> {
        let mut conditions = self
            .devices
            .get(id)
            .map(|d| d.ready_when())
            .unwrap_or_default();
        if let Some(d) = self
            .fleet
            .as_ref()
            .and_then(|f| f.devices().iter().find(|d| d.id == id))
        {
            conditions.extend(d.ready_when());
        }
        conditions
    }

    /// Indexes the broker's events for readiness as they happen (a task of
    /// its own), so the message log never holds them for readiness's sake.
    async fn index_readiness(&self) {
        loop {
            let (messages, subscriptions) = self.readiness.borrow().seen();
            self.network.changed_after(messages, subscriptions).await;
            self.absorb_readiness();
        }
    }

    /// Indexes the broker's new events; remembers the clients they concern
    /// for the next readiness check.
    fn absorb_readiness(&self) {
        let mut tracker = self.readiness.borrow_mut();
        let clients = tracker.absorb(&self.network);
        self.readiness_cursor.advance_to(tracker.seen().0);
        self.touched.borrow_mut().extend(clients);
    }

    /// Runs until every device of `ids` is ready, or fails after `timeout`
    /// naming the devices that are not and what they have not done.
    async fn wait_ready(&self, ids: &[String], timeout: Nanos, shown: &str) -> Result<(), String> {
        use crate::readiness::{Pending, not_ready_message};
        let deadline = self.handle.now().saturating_add(timeout);
        let conditions = |id: &str| self.ready_conditions(id);
        let mut pending = Pending::new(ids.iter().map(String::as_str), conditions);
        let mut first = true;
        loop {
            self.absorb_readiness();
            {
                // Clients that acted since the last check (all devices on the first).
                let touched = std::mem::take(&mut *self.touched.borrow_mut());
                let tracker = self.readiness.borrow();
                pending.update(&tracker, (!first).then_some(&touched), conditions);
            }
            first = false;
            if pending.is_empty() {
                return Ok(());
            }
            let (messages, subscriptions) = self.readiness.borrow().seen();
            let news = self.network.changed_after(messages, subscriptions);
            let timeout = self.handle.sleep_until(deadline);
            if let embassy_futures::select::Either::Second(()) =
                embassy_futures::select::select(news, timeout).await
            {
                self.absorb_readiness();
                let tracker = self.readiness.borrow();
                let left: Vec<String> = pending.ids().cloned().collect();
                let mut message = not_ready_message(&tracker, &left, conditions, shown);
                for (client, loss) in self.network.lossy_links() {
                    if loss >= 1.0 {
                        message.push_str(&format!(
                            "; the link of {client} has loss {loss:?}: it loses every message, \
                             so nothing it sends or is sent ever arrives"
                        ));
                    }
                }
                return Err(message);
            }
        }
    }

    fn record(
        &self,
        step: usize,
        description: String,
        result: Result<String, String>,
        value: Option<f64>,
    ) {
        let (passed, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        let at_ns = self.handle.now();
        self.handle.trace(
            channels::ASSERTIONS,
            json!({"step": step, "description": description, "passed": passed, "detail": detail}),
        );
        self.results.borrow_mut().push(AssertionResult {
            step,
            description,
            passed,
            detail,
            at_ns,
            value,
        });
    }

    async fn run_step(&self, n: usize, step: &Step) -> Result<(), String> {
        match step {
            Step::Publish(p) => {
                let payload = match &p.payload {
                    Value::String(s) => s.clone().into_bytes(),
                    other => other.to_string().into_bytes(),
                };
                let qos = if p.qos >= 1 {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                };
                self.client
                    .publish(&p.topic, &payload, qos)
                    .await
                    .map_err(|e| e.to_string())
            }
            Step::Delay(d) => {
                self.handle.sleep(d.nanos()).await;
                Ok(())
            }
            Step::WaitFor(w) => {
                let topic = match (&w.topic, &w.ready) {
                    (_, Some(device)) => {
                        let description = format!("wait_for ready {device} within {}", w.timeout);
                        let result = self
                            .wait_ready(
                                std::slice::from_ref(device),
                                w.timeout.nanos(),
                                &w.timeout.to_string(),
                            )
                            .await
                            .map(|()| format!("ready at {}", format_nanos(self.handle.now())));
                        self.record(n, description, result.clone(), None);
                        return result.map(|_| ());
                    }
                    (Some(topic), None) => topic,
                    (None, None) => return Err("`topic` or `ready` is required".into()),
                };
                let start = self.network.observed_len();
                let started_at = self.handle.now();
                // Everything from this instant on stays in the broker's log
                // while the wait lasts (a failed wait explains itself with it).
                let _window = self.network.cursor_since(started_at);
                let deadline = started_at.saturating_add(w.timeout.nanos());
                let description = format!("wait_for {topic} within {}", w.timeout);
                let mut checked = start;
                loop {
                    let found = {
                        let seen = self.network.observed();
                        let found = seen[checked..].iter().find(|m| {
                            twinrig_hal::mqtt::topic_matches(topic, &m.topic)
                                && payload_matches(&m.payload, &w.filter).is_ok()
                        });
                        checked = seen.len();
                        found.map(|m| (m.time, String::from_utf8_lossy(&m.payload).into_owned()))
                    };
                    if let Some((time, payload)) = found {
                        // How long the wait took, ms: a latency a sweep reports.
                        let waited_ms = time.saturating_sub(started_at) as f64 / 1e6;
                        self.record(
                            n,
                            description,
                            Ok(format!("seen at {}: {payload}", format_nanos(time))),
                            Some(waited_ms),
                        );
                        return Ok(());
                    }
                    let more = self.network.observe_after(checked);
                    let timeout = self.handle.sleep_until(deadline);
                    if let embassy_futures::select::Either::Second(()) =
                        embassy_futures::select::select(more, timeout).await
                    {
                        let hints = crate::explain::missed_message(
                            &self.network,
                            SCENARIO_CLIENT,
                            topic,
                            &w.filter,
                            started_at,
                            self.handle.now(),
                        );
                        let mut detail =
                            format!("no matching message on {topic} within {}", w.timeout);
                        if !hints.is_empty() {
                            detail = format!("{detail}: {}", hints.join("; "));
                        }
                        self.record(n, description, Err(detail.clone()), None);
                        return Err(detail);
                    }
                }
            }
            Step::Expect(e) => {
                let (description, result, value) = self.check(e);
                self.record(n, description, result, value);
                Ok(())
            }
            Step::Fault(f) => self.fault(f),
            Step::Say(say) => self.say(&say.device, &say.text).await,
            Step::CreateJob(c) => {
                let id = self
                    .fleet()?
                    .create_job(&self.cloud, c)
                    .await
                    .map_err(|e| e.to_string())?;
                self.handle.trace(
                    crate::fleet::FLEET_CHANNEL,
                    json!({"step": n, "created": id}),
                );
                Ok(())
            }
            Step::Prompt(p) => self.prompt(n, p).await,
            Step::WaitForJob(w) => self.wait_for_job(n, w).await,
            Step::Stop(stop) => self.stop_device(n, &stop.device).await,
        }
    }

    /// Signals the device, then runs until it has shut down.
    async fn stop_device(&self, n: usize, id: &str) -> Result<(), String> {
        let device = self
            .devices
            .get(id)
            .ok_or_else(|| format!("no device {id}"))?;
        device.stop().map_err(|e| e.to_string())?;
        let deadline = self.handle.now().saturating_add(STOP_TIMEOUT);
        while !device.stopped() {
            if self.handle.now() >= deadline {
                let detail = format!(
                    "{id} did not shut down within {}",
                    format_nanos(STOP_TIMEOUT)
                );
                self.record(n, format!("stop {id}"), Err(detail.clone()), None);
                return Err(detail);
            }
            self.handle.sleep(twinrig_sim::MILLIS).await;
        }
        self.handle
            .trace(channels::STEPS, json!({"step": n, "stopped": id}));
        Ok(())
    }

    /// Fetches the URL at `field` of the newest message on `topic` that has one.
    fn check_presigned(&self, e: &crate::scenario::ExpectPresigned) -> Result<String, String> {
        let seen = self.network.observed();
        let url = seen
            .iter()
            .rev()
            .filter(|m| twinrig_hal::mqtt::topic_matches(&e.topic, &m.topic))
            .find_map(|m| {
                let v: Value = serde_json::from_slice(&m.payload).ok()?;
                json_path(&v, &e.field)?.as_str().map(str::to_string)
            })
            .ok_or_else(|| format!("no message on {} has a string {}", e.topic, e.field))?;
        let now_s = self.cloud.now_s();
        let store = self.services.objects.borrow();
        match (store.fetch(&url, now_s), e.fetchable) {
            (Ok(object), true) if e.key.as_ref().is_some_and(|k| k != &object.key) => Err(format!(
                "served {}, expected the key {}",
                object.key,
                e.key.as_deref().unwrap_or_default()
            )),
            (Ok(object), true) => Ok(format!(
                "served {} ({} bytes, {})",
                object.key,
                object.bytes.len(),
                object.content_type
            )),
            (Ok(object), false) => Err(format!(
                "still served {} at unix {now_s}; expected a refusal",
                object.key
            )),
            (Err(why), false) => Ok(format!("refused: {why}")),
            (Err(why), true) => Err(format!("refused: {why}")),
        }
    }

    /// What an `expect` checked, whether it held, and the number it
    /// compared (if it compared one).
    fn check(&self, e: &Expect) -> (String, Result<String, String>, Option<f64>) {
        match e {
            Expect::Records(r) => {
                let description = format!("records {}", r.kind);
                (description, self.check_records(r), None)
            }
            Expect::Presigned(u) => (
                format!("presigned {} on {}", u.field, u.topic),
                self.check_presigned(u),
                None,
            ),
            Expect::Message(m) => {
                let seen = self.network.observed();
                let count = seen
                    .iter()
                    .filter(|o| {
                        twinrig_hal::mqtt::topic_matches(&m.topic, &o.topic)
                            && payload_matches(&o.payload, &m.filter).is_ok()
                    })
                    .count();
                let cmp = m.count.clone().unwrap_or(crate::scenario::Comparison {
                    at_least: Some(1.0),
                    ..Default::default()
                });
                drop(seen);
                let result = compare(&json!(count), &cmp)
                    .map(|()| format!("{count} matching"))
                    .map_err(|e| {
                        let mut why = format!("messages on {}: {e}", m.topic);
                        if count == 0 {
                            let hints = crate::explain::missed_message(
                                &self.network,
                                SCENARIO_CLIENT,
                                &m.topic,
                                &m.filter,
                                0,
                                self.handle.now(),
                            );
                            if !hints.is_empty() {
                                why = format!("{why}: {}", hints.join("; "));
                            }
                        }
                        why
                    });
                (
                    format!("message count on {}", m.topic),
                    result,
                    Some(count as f64),
                )
            }
            Expect::Device(d) => {
                let description = format!("device {} {}", d.device, d.field);
                let Some(device) = self.devices.get(&d.device) else {
                    return (description, Err(format!("no device {}", d.device)), None);
                };
                let state = device.state();
                let found = json_path(&state, &d.field);
                let result = match found {
                    Some(v) => compare(v, &d.check)
                        .map(|()| format!("{v}"))
                        .map_err(|e| e.to_string()),
                    None => Err(format!("device state has no field {}", d.field)),
                };
                (description, result, found.and_then(Value::as_f64))
            }
            Expect::Body(b) => {
                let description = format!("body {} {:?}", b.body, b.field);
                let Some(pose) = self.physics.pose(&b.body) else {
                    return (description, Err(format!("no body {}", b.body)), None);
                };
                let value = match b.field {
                    BodyField::X => pose.position[0] as f64,
                    BodyField::Y => pose.position[1] as f64,
                    BodyField::Z => pose.position[2] as f64,
                    BodyField::YawDeg => {
                        let [x, y, z, w] = pose.rotation.map(f64::from);
                        (2.0 * (w * z + x * y))
                            .atan2(1.0 - 2.0 * (y * y + z * z))
                            .to_degrees()
                    }
                    BodyField::Speed => {
                        let [x, y, z] = pose.linvel.map(f64::from);
                        (x * x + y * y + z * z).sqrt()
                    }
                };
                let result = compare(&json!(value), &b.check)
                    .map(|()| format!("{value}"))
                    .map_err(|e| e.to_string());
                (description, result, Some(value))
            }
            Expect::Latency(l) => {
                let description = format!("latency {} -> {}", l.from.topic, l.to.topic);
                let seen = self.network.observed();
                // The log holds these topics for the whole run (retention rule).
                let mut held = seen.iter();
                let from = held.find(|o| {
                    twinrig_hal::mqtt::topic_matches(&l.from.topic, &o.topic)
                        && payload_matches(&o.payload, &l.from.filter).is_ok()
                });
                let Some(from) = from else {
                    return (
                        description,
                        Err(format!("no message on {}", l.from.topic)),
                        None,
                    );
                };
                let to = held.find(|o| {
                    twinrig_hal::mqtt::topic_matches(&l.to.topic, &o.topic)
                        && payload_matches(&o.payload, &l.to.filter).is_ok()
                });
                let Some(to) = to else {
                    return (
                        description,
                        Err(format!(
                            "no message on {} after the one on {}",
                            l.to.topic, l.from.topic
                        )),
                        None,
                    );
                };
                let latency = to.time.saturating_sub(from.time);
                let result = compare_duration(latency, &l.check)
                    .map(|()| format_nanos(latency))
                    .map_err(|e| e.to_string());
                (description, result, Some(latency as f64 / 1e6))
            }
            Expect::Job(j) => (
                format!("job {}", j.job),
                crate::fleet::check_job(&self.cloud, j),
                None,
            ),
            Expect::Fleet(f) => (
                format!("fleet {} on {}", f.device_type, f.version),
                self.fleet()
                    .and_then(|fleet| fleet.check_fleet(&self.cloud, f)),
                None,
            ),
            Expect::Alert(a) => (
                format!("alerts for {}", a.job.as_deref().unwrap_or("any job")),
                crate::fleet::check_alert(&self.cloud, a),
                None,
            ),
        }
    }

    fn fleet(&self) -> Result<&crate::fleet::Fleet, String> {
        self.fleet
            .as_deref()
            .ok_or_else(|| "the scenario has no `fleet`".to_owned())
    }

    /// An operator prompt: one tool call, or an answer on
    /// [`crate::fleet::ANSWER_TOPIC`] when the prompt is unclear (nothing acts).
    async fn prompt(&self, n: usize, p: &crate::scenario::PromptStep) -> Result<(), String> {
        use crate::fleet::PromptOutcome;
        let outcome = self
            .fleet()?
            .prompt(&self.cloud, &p.text, p.as_name.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        let event = match &outcome {
            PromptOutcome::Created(id) => json!({"created": id}),
            PromptOutcome::Status(s) => json!({"status": s}),
            PromptOutcome::Canceled(id) => json!({"canceled": id}),
            PromptOutcome::Gate(g) => json!({"gate": g}),
            PromptOutcome::Unclear(a) => json!({"answer": a}),
        };
        self.handle.trace(
            crate::fleet::FLEET_CHANNEL,
            json!({"step": n, "prompt": p.text, "outcome": event}),
        );
        match outcome {
            PromptOutcome::Status(s) => self.record(n, format!("prompt {:?}", p.text), Ok(s), None),
            PromptOutcome::Unclear(answer) => {
                let payload = json!({"prompt": p.text, "answer": answer});
                self.client
                    .publish(
                        crate::fleet::ANSWER_TOPIC,
                        payload.to_string().as_bytes(),
                        QoS::AtLeastOnce,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Polls DescribeJob every 100 ms (virtual) until the job's status is one
    /// of those listed; fails at the timeout.
    async fn wait_for_job(&self, n: usize, w: &crate::scenario::WaitForJob) -> Result<(), String> {
        let deadline = self.handle.now().saturating_add(w.timeout.nanos());
        let wanted: Vec<twinrig_cloud::jobs::JobStatus> =
            w.status.iter().map(|s| (*s).into()).collect();
        let description = format!("wait_for_job {} within {}", w.job, w.timeout);
        loop {
            let status = self
                .cloud
                .jobs()
                .borrow()
                .describe_job(&w.job)
                .map(|d| d.status)
                .map_err(|e| e.to_string())?;
            if wanted.contains(&status) {
                self.record(n, description, Ok(format!("{status:?}")), None);
                return Ok(());
            }
            let now = self.handle.now();
            if now >= deadline {
                let detail = format!("job {} still {status:?} after {}", w.job, w.timeout);
                self.record(n, description, Err(detail.clone()), None);
                return Err(detail);
            }
            self.handle
                .sleep((100 * twinrig_sim::MILLIS).min(deadline - now))
                .await;
        }
    }

    /// Derived figures: for each device that moves on command, the time from
    /// the first message on its command topic reaching the broker to its first
    /// motion (the link model's latency plus the firmware's and the robot's).
    fn metrics(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let seen = self.network.observed();
        for (id, device) in &self.devices {
            let (Some(topic), Some(moved)) = (device.command_topic(), device.first_motion()) else {
                continue;
            };
            if let Some(first) = seen
                .iter()
                .find(|m| m.topic == topic)
                .filter(|m| m.time <= moved)
            {
                let ms = (moved - first.time) as f64 / 1e6;
                out.insert(format!("{id}.command_to_first_motion_ms"), ms);
            }
        }
        for device in self.devices.values() {
            out.extend(device.metrics());
        }
        out.insert(
            "physics.rapier_steps".into(),
            self.physics.rapier_steps() as f64,
        );
        out
    }

    /// Every stored record, in insertion order.
    fn all_records(&self) -> Vec<twinrig_cloud::records::Record> {
        let Some(pipeline) = self.cloud.pipeline() else {
            return Vec::new();
        };
        let store = self.cloud.store();
        let mut kinds: Vec<String> = pipeline
            .rules()
            .rules()
            .iter()
            .filter_map(|r| pipeline.transform(r.action()).map(|t| t.kind().to_string()))
            .collect();
        kinds.sort();
        kinds.dedup();
        let mut all: Vec<twinrig_cloud::records::StoredRecord> = kinds
            .iter()
            .flat_map(|k| store.list_all(k).unwrap_or_default())
            .collect();
        all.sort_by_key(|r| r.id);
        all.into_iter().map(|r| r.record).collect()
    }

    /// A spoken command: the command model turns it into the device's MQTT
    /// commands, published in order with ids `say-N`. Speech it cannot read
    /// becomes an error event on `twinrig/voice/{device}/error`, not a command.
    async fn say(&self, device: &str, text: &str) -> Result<(), String> {
        let runtime = self
            .devices
            .get(device)
            .ok_or_else(|| format!("no device {device}"))?;
        let topic = runtime
            .command_topic()
            .ok_or_else(|| format!("device {device} takes no spoken commands"))?;
        let model = self
            .command_models
            .get(device)
            .ok_or_else(|| format!("device {device} takes no spoken commands"))?;
        match model.interpret(text) {
            Ok(commands) => {
                for mut c in commands {
                    let n = self.say_count.get() + 1;
                    self.say_count.set(n);
                    if let Some(obj) = c.as_object_mut() {
                        obj.insert("id".into(), json!(format!("say-{n}")));
                    }
                    self.client
                        .publish(&topic, c.to_string().as_bytes(), QoS::AtLeastOnce)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Err(e) => {
                let event = json!({"text": text, "error": e.to_string()});
                self.client
                    .publish(
                        &format!("twinrig/voice/{device}/error"),
                        event.to_string().as_bytes(),
                        QoS::AtLeastOnce,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    fn check_records(&self, r: &crate::scenario::ExpectRecords) -> Result<String, String> {
        let pipeline = self
            .cloud
            .pipeline()
            .ok_or("no cloud rules are configured (cloud.rules)")?;
        let transform = pipeline
            .transform(&r.kind)
            .ok_or_else(|| format!("no rule sends to `{}`", r.kind))?;
        let store = self.cloud.store();
        let records = match &r.device {
            Some(d) => store.list_recent(transform.kind(), d, usize::MAX),
            None => store.list_all(transform.kind()).map(|mut v| {
                v.reverse();
                v
            }),
        }
        .map_err(|e| e.to_string())?;
        let cmp = r.count.clone().unwrap_or(crate::scenario::Comparison {
            at_least: Some(1.0),
            ..Default::default()
        });
        compare(&json!(records.len()), &cmp).map_err(|e| format!("record count: {e}"))?;
        if r.latest.is_empty() {
            return Ok(format!("{} records", records.len()));
        }
        let newest = records.first().ok_or("no records to check `latest` on")?;
        let fields = serde_json::Value::Object(newest.record.fields.clone());
        for (path, check) in &r.latest {
            field_check(json_path(&fields, path), check)
                .map_err(|e| format!("latest.{path}: {e}"))?;
        }
        Ok(format!("{} records; newest {fields}", records.len()))
    }

    /// Checks the invariants after every message the broker receives and
    /// every `period`, until the run ends. The first failure of each is
    /// recorded as a failed assertion of the step that was running.
    async fn watch_invariants(&self, period: Nanos) {
        use embassy_futures::select::{Either, select};
        let Some(cursor) = &self.invariants_cursor else {
            return;
        };
        let mut next_tick = self.handle.now();
        loop {
            let woke = select(
                self.network.observe_after(cursor.position()),
                self.handle.sleep_until(next_tick),
            )
            .await;
            let tick = matches!(woke, Either::Second(()));
            if tick {
                next_tick = self.handle.now().saturating_add(period);
            }
            self.check_invariants(tick);
        }
    }

    /// Checks the invariants on the messages the broker received since the
    /// last look and, on a `tick`, on the state of what they watch.
    fn check_invariants(&self, tick: bool) {
        use crate::scenario::Invariant;
        let Some(cursor) = &self.invariants_cursor else {
            return;
        };
        let seen = cursor.position();
        let fresh: Vec<(Nanos, String, Vec<u8>)> = self.network.observed()[seen..]
            .iter()
            .map(|m| (m.time, m.topic.clone(), m.payload.clone()))
            .collect();
        cursor.advance_to(seen + fresh.len());
        // The fleet sample is built once per tick, whoever reads it.
        let mut fleet_sample = None;
        let mut failures = Vec::new();
        for (i, w) in self.invariants.borrow_mut().iter_mut().enumerate() {
            if w.violated {
                continue;
            }
            let (description, result, value) = match &w.invariant {
                Invariant::Check(c) => {
                    let Some(check) = w.named.as_mut() else {
                        continue;
                    };
                    let mut result = fresh
                        .iter()
                        .try_for_each(|(at, topic, payload)| check.on_message(*at, topic, payload));
                    if result.is_ok() && tick && check.samples() {
                        let now = self.handle.now();
                        result = match &c.device {
                            Some(id) => match self.devices.get(id) {
                                Some(device) => check.on_sample(now, &device.state()),
                                None => Err(format!("no device {id}")),
                            },
                            None => match (&self.fleet, &fleet_sample) {
                                (Some(_), Some(sample)) => check.on_sample(now, sample),
                                (Some(fleet), None) => {
                                    let sample = crate::fleet::invariants::sample(
                                        fleet,
                                        &self.cloud,
                                        &mut self.fleet_boots_seen.borrow_mut(),
                                    );
                                    check.on_sample(now, fleet_sample.insert(sample))
                                }
                                (None, _) => Err("the scenario has no `fleet`".to_owned()),
                            },
                        };
                    }
                    if fresh.is_empty() && !tick {
                        continue;
                    }
                    (check.description(), result.map(|()| String::new()), None)
                }
                Invariant::Message(m) => {
                    let new = fresh
                        .iter()
                        .filter(|(_, topic, payload)| {
                            twinrig_hal::mqtt::topic_matches(&m.topic, topic)
                                && payload_matches(payload, &m.filter).is_ok()
                        })
                        .count();
                    if new == 0 {
                        continue;
                    }
                    w.count += new;
                    let cmp = m.count.clone().unwrap_or_default();
                    let result = compare(&json!(w.count), &cmp)
                        .map(|()| format!("{} matching", w.count))
                        .map_err(|e| format!("messages on {}: {e}", m.topic));
                    (
                        format!("message count on {}", m.topic),
                        result,
                        Some(w.count as f64),
                    )
                }
                Invariant::Device(_) | Invariant::Body(_) => {
                    let (true, Some(expect)) = (tick, w.invariant.as_expect()) else {
                        continue;
                    };
                    self.check(&expect)
                }
            };
            w.checks += 1;
            if let Err(why) = result {
                w.violated = true;
                failures.push((format!("invariant {}: {description}", i + 1), why, value));
            }
        }
        for (description, why, value) in failures {
            let at = format_nanos(self.handle.now());
            self.record(
                self.current_step.get(),
                description,
                Err(format!("broken at {at}: {why}")),
                value,
            );
        }
    }

    /// The timeline has ended: the invariants see the last messages and
    /// the end (named checks: what must have happened by now). Returns the
    /// ones that held all through the run, as passed assertions (the broken
    /// ones are recorded when they break).
    fn finish_invariants(&self) -> Vec<AssertionResult> {
        self.check_invariants(false);
        let now = self.handle.now();
        let mut failures = Vec::new();
        for (i, w) in self.invariants.borrow_mut().iter_mut().enumerate() {
            if let (false, Some(check)) = (w.violated, w.named.as_mut())
                && let Err(why) = check.at_end(now)
            {
                w.violated = true;
                failures.push((format!("invariant {}: {}", i + 1, check.description()), why));
            }
        }
        for (description, why) in failures {
            self.record(
                self.current_step.get(),
                description,
                Err(format!("broken at the end ({}): {why}", format_nanos(now))),
                None,
            );
        }
        self.invariants
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, w)| !w.violated)
            .map(|(i, w)| {
                let description = match (&w.named, w.invariant.as_expect()) {
                    (Some(check), _) => check.description(),
                    (None, Some(Expect::Message(m))) => format!("message count on {}", m.topic),
                    (None, Some(Expect::Device(d))) => format!("device {} {}", d.device, d.field),
                    (None, Some(Expect::Body(b))) => format!("body {} {:?}", b.body, b.field),
                    _ => String::new(),
                };
                AssertionResult {
                    step: self.current_step.get(),
                    description: format!("invariant {}: {description}", i + 1),
                    passed: true,
                    detail: format!("held ({} checks)", w.checks),
                    at_ns: now,
                    value: None,
                }
            })
            .collect()
    }

    /// Applies a drawn fault schedule, each fault at its time, as a
    /// `fault` step would; a fault that cannot be applied ends the run.
    async fn apply_chaos(&self, faults: &[crate::scenario::chaos::ScheduledFault]) {
        for f in faults {
            self.handle.sleep_until(f.at.nanos()).await;
            if let Err(e) = self.fault(&f.fault) {
                self.failure
                    .borrow_mut()
                    .get_or_insert(format!("chaos fault at {}: {e}", f.at));
            }
        }
    }

    fn fault(&self, f: &Fault) -> Result<(), String> {
        let now = self.handle.now();
        match f {
            Fault::Uart(u) => {
                let device = self
                    .devices
                    .get(&u.device)
                    .ok_or_else(|| format!("no device {}", u.device))?;
                let (uart, device_is_a) = device
                    .uart()
                    .ok_or_else(|| format!("device {} has no UART", u.device))?;
                let dir = line_direction(u.direction, device_is_a);
                match &u.kind {
                    UartFaultKind::Inject(text) => {
                        let bytes = inject_bytes(text).map_err(|e| e.to_string())?;
                        uart.inject(dir, &bytes);
                    }
                    UartFaultKind::BitErrors { rate, duration } => {
                        uart.set_bit_error_rate(
                            dir,
                            *rate,
                            Some(now.saturating_add(duration.nanos())),
                        );
                    }
                    UartFaultKind::DropBytes {
                        probability,
                        duration,
                    } => {
                        uart.set_drop_rate(
                            dir,
                            *probability,
                            Some(now.saturating_add(duration.nanos())),
                        );
                    }
                    UartFaultKind::LineBreak(d) => uart.line_break(dir, d.nanos()),
                    UartFaultKind::Disconnect(d) => uart.disconnect(d.nanos()),
                }
                Ok(())
            }
            Fault::Link(l) => {
                let ok = match &l.kind {
                    LinkFaultKind::Outage(d) => self.network.outage(&l.device, d.nanos()),
                    LinkFaultKind::Loss {
                        probability,
                        duration,
                    } => self.network.loss(&l.device, *probability, duration.nanos()),
                    LinkFaultKind::ExtraLatency { latency, duration } => self
                        .network
                        .extra_latency(&l.device, latency.nanos(), duration.nanos()),
                };
                if ok {
                    Ok(())
                } else {
                    Err(format!("device {} has no link", l.device))
                }
            }
        }
    }
}

/// Bytes of an `inject` fault: text, or `hex:` followed by hex digits.
pub fn inject_bytes(text: &str) -> Result<Vec<u8>, crate::scenario::HexBytesError> {
    match text.strip_prefix("hex:") {
        None => Ok(text.as_bytes().to_vec()),
        Some(hex) => crate::scenario::decode_hex(hex),
    }
}

/// Maps a scenario's device-relative direction onto a line's ends.
fn line_direction(
    dir: crate::scenario::UartDirection,
    device_is_a: bool,
) -> twinrig_sim::uart::Direction {
    use crate::scenario::UartDirection as D;
    use twinrig_sim::uart::Direction;
    match (dir, device_is_a) {
        (D::Both, _) => Direction::Both,
        (D::FromDevice, true) | (D::ToDevice, false) => Direction::AToB,
        (D::FromDevice, false) | (D::ToDevice, true) => Direction::BToA,
    }
}
