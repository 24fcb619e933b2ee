//! The bridge's decisions, without I/O: commands and sensor samples in,
//! RVR commands and MQTT messages out. [`crate::run`] feeds it from the UART
//! and MQTT and carries its [`Output`]s; tests drive it directly.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rvr_protocol::{Attitude, Command, Processor, RcFlags, SensorSample, Vector2, Vector3};
use twinrig_hal::QoS;

use crate::command::{Action, CommandError, Direction, ErrorCode, Request, parse_command};
use crate::config::{BridgeConfig, MS, ms};
use crate::link::{IMU_TOKEN, MOTION_TOKEN};
use crate::maneuver::{Control, DistanceTracker, TurnTracker, abs};
use crate::messages::{
    self, Amount, DriveState, ErrorMessage, Imu, LinkStats, ManeuverEvent, ManeuverState, Pose,
    Telemetry, Velocity, Xy, Xyz, deg, to_json,
};

/// How often the bridge may set streaming up again, ns.
const REARM_INTERVAL_NS: u64 = 5_000 * MS;

/// Something the bridge wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `command` to `processor`. `reliable` commands are retried until
    /// answered (see [`crate::link`]).
    Rvr {
        /// The command.
        command: Command,
        /// Its processor.
        processor: Processor,
        /// Retry until answered.
        reliable: bool,
    },
    /// Publish `payload` on the state topic.
    Publish {
        /// JSON text.
        payload: String,
        /// QoS 0 for telemetry, 1 for everything else.
        qos: QoS,
    },
    /// Sensor data stopped while idle: wake the RVR and set streaming up again.
    Rearm,
}

impl Output {
    /// True for a command that makes the robot move (anything that drives
    /// other than a stop).
    pub fn is_motion(&self) -> bool {
        matches!(
            self,
            Output::Rvr {
                command: Command::DriveRcSi { .. }
                    | Command::DriveTankSi { .. }
                    | Command::DriveTankNormalized { .. }
                    | Command::DriveRcNormalized { .. }
                    | Command::DriveWithHeading { .. }
                    | Command::DriveWithYawSi { .. }
                    | Command::DriveToPositionSi { .. }
                    | Command::RawMotors { .. },
                ..
            }
        )
    }
}

/// Latest value of every streamed sensor and when each slot last arrived.
#[derive(Debug, Clone, Copy, Default)]
struct Sensors {
    imu: Option<Attitude>,
    accelerometer: Option<Vector3>,
    gyroscope: Option<Vector3>,
    locator: Option<Vector2>,
    velocity: Option<Vector2>,
    speed: Option<f32>,
    ambient: Option<f32>,
    imu_ns: Option<u64>,
    motion_ns: Option<u64>,
}

impl Sensors {
    fn merge(&mut self, token: u8, s: &SensorSample, now_ns: u64) {
        macro_rules! take {
            ($($field:ident <- $src:ident),*) => {$(
                if let Some(v) = s.$src {
                    self.$field = Some(v);
                }
            )*};
        }
        take!(imu <- imu, accelerometer <- accelerometer, gyroscope <- gyroscope,
              locator <- locator, velocity <- velocity, speed <- speed_mps,
              ambient <- ambient_light_lux);
        if token == IMU_TOKEN && s.imu.is_some() {
            self.imu_ns = Some(now_ns);
        }
        if token == MOTION_TOKEN && s.locator.is_some() {
            self.motion_ns = Some(now_ns);
        }
    }

    fn locator(&self) -> Option<(f32, f32)> {
        self.locator.map(|l| (l.x, l.y))
    }

    fn yaw(&self) -> Option<f32> {
        self.imu.map(|a| a.yaw_deg)
    }

    fn fresh(at: Option<u64>, now_ns: u64, max_age_ns: u64) -> bool {
        at.is_some_and(|t| now_ns.saturating_sub(t) <= max_age_ns)
    }
}

#[derive(Debug, Clone, Copy)]
struct Dpad {
    direction: Direction,
    speed_mps: f32,
    deadline_ns: u64,
    next_refresh_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Distance {
        reverse: bool,
        distance_m: f32,
        speed_mps: f32,
    },
    Turn {
        degrees: f32,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Spec {
    id: String,
    kind: Kind,
}

impl Spec {
    fn action(&self) -> &'static str {
        match self.kind {
            Kind::Distance { reverse: false, .. } => "forward",
            Kind::Distance { reverse: true, .. } => "reverse",
            Kind::Turn { .. } => "turn",
        }
    }

    fn target(&self) -> Amount {
        match self.kind {
            Kind::Distance { distance_m, .. } => Amount {
                distance_m: Some(messages::m(distance_m)),
                degrees: None,
            },
            Kind::Turn { degrees } => Amount {
                distance_m: None,
                degrees: Some(deg(degrees)),
            },
        }
    }

    fn nothing_yet(&self) -> Amount {
        match self.kind {
            Kind::Distance { .. } => Amount {
                distance_m: Some(0.0),
                degrees: None,
            },
            Kind::Turn { .. } => Amount {
                distance_m: None,
                degrees: Some(0.0),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Tracker {
    Distance(DistanceTracker),
    Turn(TurnTracker),
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Completed,
    Cancelled(String),
    Timeout(String),
    Blocked(String),
    Failed(String),
}

impl Outcome {
    fn status(&self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Cancelled(_) => "cancelled",
            Outcome::Timeout(_) => "timeout",
            Outcome::Blocked(_) => "blocked",
            Outcome::Failed(_) => "failed",
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Completed => None,
            Outcome::Cancelled(r)
            | Outcome::Timeout(r)
            | Outcome::Blocked(r)
            | Outcome::Failed(r) => Some(r),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Driving,
    /// The stop was sent; waiting for rest before the final report.
    Stopping {
        since_ns: u64,
        outcome: Outcome,
    },
}

#[derive(Debug, Clone)]
struct Running {
    spec: Spec,
    started_ns: u64,
    deadline_ns: u64,
    next_progress_ns: u64,
    tracker: Tracker,
    phase: Phase,
    /// Blocked detection: (time, progress) at the start of the window.
    checkpoint: (u64, f32),
}

impl Running {
    /// Progress in the commanded direction: metres along the line, or degrees
    /// turned toward the target.
    fn progress(&self, sensors: &Sensors) -> f32 {
        match &self.tracker {
            Tracker::Distance(t) => sensors.locator().map_or(0.0, |p| t.along(p)),
            Tracker::Turn(t) => {
                if t.target_deg() >= 0.0 {
                    t.turned_deg()
                } else {
                    -t.turned_deg()
                }
            }
        }
    }

    fn measured(&self, sensors: &Sensors) -> Amount {
        match &self.tracker {
            Tracker::Distance(t) => Amount {
                distance_m: Some(messages::m(
                    sensors.locator().map_or(0.0, |p| t.distance(p)),
                )),
                degrees: None,
            },
            Tracker::Turn(t) => Amount {
                distance_m: None,
                degrees: Some(deg(t.turned_deg())),
            },
        }
    }

    /// The slot the controller closes the loop on.
    fn primary_ns(&self, sensors: &Sensors) -> Option<u64> {
        match self.tracker {
            Tracker::Distance(_) => sensors.motion_ns,
            Tracker::Turn(_) => sensors.imu_ns,
        }
    }
}

/// The bridge state machine. See the crate docs for the behaviour.
#[derive(Debug)]
pub struct Bridge {
    config: BridgeConfig,
    sensors: Sensors,
    battery: Option<u8>,
    dpad: Option<Dpad>,
    running: Option<Running>,
    queue: VecDeque<Spec>,
    outputs: Vec<Output>,
    next_telemetry_ns: u64,
    last_rearm_ns: Option<u64>,
    link: LinkStats,
    auto_id: u32,
}

impl Bridge {
    /// A bridge at rest with no sensor data yet. The first telemetry is due
    /// at the first [`Bridge::tick`].
    pub fn new(config: BridgeConfig) -> Bridge {
        Bridge {
            config,
            sensors: Sensors::default(),
            battery: None,
            dpad: None,
            running: None,
            queue: VecDeque::new(),
            outputs: Vec::new(),
            next_telemetry_ns: 0,
            last_rearm_ns: None,
            link: LinkStats::default(),
            auto_id: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BridgeConfig {
        &self.config
    }

    /// Takes everything the bridge wants done since the last call, in order.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        core::mem::take(&mut self.outputs)
    }

    /// True once both ST streaming slots (IMU and locator) have delivered.
    pub fn sensors_ready(&self) -> bool {
        self.sensors.imu_ns.is_some() && self.sensors.motion_ns.is_some()
    }

    /// True when a stop or a drive command is waiting in the outputs.
    pub fn has_urgent_outputs(&self) -> bool {
        self.outputs.iter().any(|o| {
            o.is_motion()
                || matches!(
                    o,
                    Output::Rvr {
                        command: Command::DriveStop,
                        ..
                    }
                )
        })
    }

    /// True when outputs are waiting for [`Bridge::take_outputs`].
    pub fn has_outputs(&self) -> bool {
        !self.outputs.is_empty()
    }

    /// Updates the link counters reported in telemetry.
    pub fn set_link_stats(&mut self, stats: LinkStats) {
        self.link = stats;
    }

    /// True while a maneuver runs or waits, the D-pad drives, or the wheels turn.
    pub fn is_moving(&self) -> bool {
        self.running.is_some()
            || !self.queue.is_empty()
            || self.dpad.is_some()
            || self
                .sensors
                .speed
                .is_some_and(|s| s > self.config.rest_speed_mps)
    }

    /// Unix seconds at device time `now_ns`.
    pub fn unix_s(&self, now_ns: u64) -> u64 {
        self.config.epoch_offset_s + now_ns / 1_000_000_000
    }

    fn publish(&mut self, payload: String, qos: QoS) {
        self.outputs.push(Output::Publish { payload, qos });
    }

    fn rvr(&mut self, command: Command, reliable: bool) {
        let processor = command.kind().default_processor();
        self.outputs.push(Output::Rvr {
            command,
            processor,
            reliable,
        });
    }

    fn stop_robot(&mut self) {
        self.rvr(Command::DriveStop, true);
    }

    fn soon_telemetry(&mut self, now_ns: u64) {
        let due = now_ns + ms(self.config.telemetry_moving_ms);
        self.next_telemetry_ns = self.next_telemetry_ns.min(due);
    }

    /// A command payload from the action topic.
    pub fn on_action_payload(&mut self, payload: &[u8], now_ns: u64) {
        match parse_command(payload, &self.config) {
            Ok(request) => self.on_request(request, now_ns),
            Err(e) => self.refuse(&e, now_ns),
        }
    }

    fn refuse(&mut self, e: &CommandError, now_ns: u64) {
        let msg = ErrorMessage {
            kind: "error",
            id: e.id.as_deref(),
            action: e.action,
            code: e.code.as_str(),
            error: &e.message,
            ts: self.unix_s(now_ns),
            uptime_ms: now_ns / MS,
        };
        let payload = to_json(&msg);
        self.publish(payload, QoS::AtLeastOnce);
    }

    /// A command already validated by [`parse_command`] (against this
    /// bridge's configuration).
    pub fn on_request(&mut self, request: Request, now_ns: u64) {
        match request.action {
            Action::Cancel => self.stop_all("cancel requested", now_ns),
            Action::Drive {
                direction: Direction::Stop,
                ..
            } => self.stop_all("stopped by a drive stop", now_ns),
            Action::Drive {
                direction,
                speed_mps,
            } => {
                // Manual control takes over at once: maneuvers end without a settle.
                self.drop_maneuvers("overridden by a drive command", now_ns);
                let refresh = ms(self.config.dpad_refresh_ms);
                let d = Dpad {
                    direction,
                    speed_mps,
                    deadline_ns: now_ns + ms(self.config.dpad_timeout_ms),
                    next_refresh_ns: now_ns + refresh,
                };
                self.dpad = Some(d);
                self.send_dpad(d);
                self.soon_telemetry(now_ns);
            }
            Action::Move {
                reverse,
                distance_m,
                speed_mps,
            } => self.enqueue(
                request.id,
                Kind::Distance {
                    reverse,
                    distance_m,
                    speed_mps,
                },
                now_ns,
            ),
            Action::Turn { degrees } => self.enqueue(request.id, Kind::Turn { degrees }, now_ns),
        }
    }

    fn send_dpad(&mut self, d: Dpad) {
        let s = d.speed_mps;
        let t = s * self.config.dpad_turn_ratio;
        let (left_mps, right_mps) = match d.direction {
            Direction::Forward => (s, s),
            Direction::Backward => (-s, -s),
            Direction::Left => (-t, t),
            Direction::Right => (t, -t),
            Direction::Stop => (0.0, 0.0),
        };
        self.rvr(
            Command::DriveTankSi {
                left_mps,
                right_mps,
            },
            false,
        );
    }

    fn enqueue(&mut self, id: Option<String>, kind: Kind, now_ns: u64) {
        let id = id.unwrap_or_else(|| {
            self.auto_id = self.auto_id.wrapping_add(1);
            format!("rvr-{}", self.auto_id)
        });
        let spec = Spec { id, kind };
        if self.running.is_some() {
            let (code, message) = if self.config.queue_len == 0 {
                (
                    ErrorCode::Busy,
                    String::from("a maneuver is running; send cancel first"),
                )
            } else if self.queue.len() >= self.config.queue_len {
                (
                    ErrorCode::QueueFull,
                    format!(
                        "{} maneuvers are already waiting; send cancel first",
                        self.queue.len()
                    ),
                )
            } else {
                self.queue.push_back(spec.clone());
                let position = self.queue.len();
                self.event(&spec, "accepted", now_ns, None, Some(position), None, 0);
                return;
            };
            let e = CommandError {
                action: Some(spec.action()),
                id: Some(spec.id),
                code,
                message,
            };
            self.refuse(&e, now_ns);
            return;
        }
        self.event(&spec, "accepted", now_ns, None, Some(0), None, 0);
        self.queue.push_back(spec);
        self.start_next(now_ns);
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        spec: &Spec,
        status: &'static str,
        now_ns: u64,
        measured: Option<Amount>,
        queue_position: Option<usize>,
        reason: Option<&str>,
        started_ns: u64,
    ) {
        let elapsed = if started_ns == 0 {
            0.0
        } else {
            now_ns.saturating_sub(started_ns) as f32 / 1e9
        };
        let e = ManeuverEvent {
            kind: "maneuver",
            id: &spec.id,
            action: spec.action(),
            status,
            target: spec.target(),
            measured: measured.unwrap_or_else(|| spec.nothing_yet()),
            elapsed_s: messages::round(elapsed, 3),
            reason,
            queue_position,
            ts: self.unix_s(now_ns),
            uptime_ms: now_ns / MS,
        };
        let payload = to_json(&e);
        self.publish(payload, QoS::AtLeastOnce);
    }

    /// Ends every maneuver at once (the D-pad takes over): the running one is
    /// reported with its outcome so far, or cancelled; queued ones cancelled.
    fn drop_maneuvers(&mut self, reason: &str, now_ns: u64) {
        if let Some(r) = self.running.take() {
            let outcome = match &r.phase {
                Phase::Driving => Outcome::Cancelled(String::from(reason)),
                Phase::Stopping { outcome, .. } => outcome.clone(),
            };
            self.report(&r, &outcome, now_ns);
        }
        self.cancel_queue(reason, now_ns);
    }

    fn cancel_queue(&mut self, reason: &str, now_ns: u64) {
        while let Some(spec) = self.queue.pop_front() {
            self.event(&spec, "cancelled", now_ns, None, None, Some(reason), 0);
        }
    }

    fn stop_all(&mut self, reason: &str, now_ns: u64) {
        self.dpad = None;
        self.cancel_queue(reason, now_ns);
        if let Some(r) = &mut self.running
            && r.phase == Phase::Driving
        {
            r.phase = Phase::Stopping {
                since_ns: now_ns,
                outcome: Outcome::Cancelled(String::from(reason)),
            };
        }
        self.stop_robot();
    }

    fn report(&mut self, r: &Running, outcome: &Outcome, now_ns: u64) {
        let measured = r.measured(&self.sensors);
        self.event(
            &r.spec,
            outcome.status(),
            now_ns,
            Some(measured),
            None,
            outcome.reason(),
            r.started_ns,
        );
    }

    fn start_next(&mut self, now_ns: u64) {
        while self.running.is_none() {
            let Some(spec) = self.queue.pop_front() else {
                return;
            };
            self.dpad = None;
            let max_age = ms(self.config.stream_timeout_ms);
            let fresh = Sensors::fresh(self.sensors.imu_ns, now_ns, max_age)
                && Sensors::fresh(self.sensors.motion_ns, now_ns, max_age);
            let (Some(p), Some(yaw), true) = (self.sensors.locator(), self.sensors.yaw(), fresh)
            else {
                self.event(
                    &spec,
                    "failed",
                    now_ns,
                    None,
                    None,
                    Some("no sensor data from the RVR"),
                    0,
                );
                continue;
            };
            let c = &self.config;
            let (tracker, nominal_s) = match spec.kind {
                Kind::Distance {
                    reverse,
                    distance_m,
                    speed_mps,
                } => (
                    Tracker::Distance(DistanceTracker::new(p, yaw, reverse, distance_m, speed_mps)),
                    distance_m / speed_mps,
                ),
                Kind::Turn { degrees } => (
                    Tracker::Turn(TurnTracker::new(yaw, degrees)),
                    abs(degrees) / c.turn_rate_dps,
                ),
            };
            // Float-to-int casts saturate (NaN gives 0); the sums must too.
            let extra_ms = (c.maneuver_timeout_factor * nominal_s * 1000.0) as u64;
            let timeout_ns =
                ms(c.maneuver_timeout_base_ms).saturating_add(extra_ms.saturating_mul(MS));
            let started = now_ns.max(1);
            self.running = Some(Running {
                spec: spec.clone(),
                started_ns: started,
                deadline_ns: started.saturating_add(timeout_ns),
                next_progress_ns: started + ms(c.progress_period_ms),
                tracker,
                phase: Phase::Driving,
                checkpoint: (started, 0.0),
            });
            self.event(&spec, "started", now_ns, None, None, None, started);
            self.soon_telemetry(now_ns);
            self.control(now_ns);
        }
    }

    /// One control step of the running maneuver on the latest samples.
    fn control(&mut self, now_ns: u64) {
        let Some(r) = &self.running else { return };
        if r.phase != Phase::Driving {
            return;
        }
        let (Some(p), Some(yaw)) = (self.sensors.locator(), self.sensors.yaw()) else {
            return;
        };
        let step = match &r.tracker {
            Tracker::Distance(t) => t.control(p, yaw, &self.config),
            Tracker::Turn(t) => t.control(&self.config),
        };
        match step {
            Control::Drive {
                linear_mps,
                yaw_rate_dps,
            } if !(linear_mps.is_finite() && yaw_rate_dps.is_finite()) => self.begin_stop(
                Outcome::Failed(String::from("the controller produced an invalid command")),
                now_ns,
            ),
            Control::Drive {
                linear_mps,
                yaw_rate_dps,
            } => self.rvr(
                Command::DriveRcSi {
                    yaw_rate_dps,
                    linear_mps,
                    flags: RcFlags::default(),
                },
                false,
            ),
            Control::Arrived => self.begin_stop(Outcome::Completed, now_ns),
        }
    }

    fn begin_stop(&mut self, outcome: Outcome, now_ns: u64) {
        if let Some(r) = &mut self.running {
            r.phase = Phase::Stopping {
                since_ns: now_ns,
                outcome,
            };
            self.stop_robot();
        }
    }

    fn finish(&mut self, now_ns: u64) {
        let Some(r) = self.running.take() else { return };
        if let Phase::Stopping { outcome, .. } = &r.phase {
            let outcome = outcome.clone();
            self.report(&r, &outcome, now_ns);
        }
        self.start_next(now_ns);
    }

    /// Timeouts, lost data, blocked detection and progress reports.
    fn supervise(&mut self, now_ns: u64) {
        let c = &self.config;
        let (stream_timeout, window, settle, progress_period) = (
            ms(c.stream_timeout_ms),
            ms(c.blocked_window_ms),
            ms(c.settle_timeout_ms),
            ms(c.progress_period_ms),
        );
        let Some(r) = &self.running else { return };
        match &r.phase {
            Phase::Stopping { since_ns, .. } => {
                let at_rest = self.at_rest_since(*since_ns);
                if at_rest || now_ns.saturating_sub(*since_ns) >= settle {
                    self.finish(now_ns);
                }
                return;
            }
            Phase::Driving => {}
        }
        if now_ns >= r.deadline_ns {
            let s = (r.deadline_ns - r.started_ns) as f32 / 1e9;
            self.begin_stop(
                Outcome::Timeout(format!("did not finish within {s:.1} s")),
                now_ns,
            );
            return;
        }
        let primary = r.primary_ns(&self.sensors).unwrap_or(r.started_ns);
        if now_ns.saturating_sub(primary.max(r.started_ns)) > stream_timeout {
            let reason = format!(
                "no sensor data from the RVR for {} ms",
                self.config.stream_timeout_ms
            );
            self.begin_stop(Outcome::Failed(reason), now_ns);
            return;
        }
        let progress = r.progress(&self.sensors);
        let (cp_t, cp_p) = r.checkpoint;
        let min_progress = match r.tracker {
            Tracker::Distance(_) => self.config.blocked_min_progress_m,
            Tracker::Turn(_) => self.config.blocked_min_progress_deg,
        };
        let due_progress = now_ns >= r.next_progress_ns;
        if now_ns.saturating_sub(cp_t) >= window {
            if progress - cp_p < min_progress {
                let reason = format!(
                    "no progress for {} ms while driving",
                    self.config.blocked_window_ms
                );
                self.begin_stop(Outcome::Blocked(reason), now_ns);
                return;
            }
            if let Some(r) = &mut self.running {
                r.checkpoint = (now_ns, progress);
            }
        }
        if due_progress && let Some(r) = self.running.take() {
            let measured = r.measured(&self.sensors);
            self.event(
                &r.spec,
                "progress",
                now_ns,
                Some(measured),
                None,
                None,
                r.started_ns,
            );
            let mut r = r;
            while r.next_progress_ns <= now_ns {
                r.next_progress_ns += progress_period;
            }
            self.running = Some(r);
        }
    }

    /// At rest on samples newer than `since_ns`.
    fn at_rest_since(&self, since_ns: u64) -> bool {
        let s = &self.sensors;
        let newer = |t: Option<u64>| t.is_some_and(|t| t > since_ns);
        newer(s.motion_ns)
            && newer(s.imu_ns)
            && s.speed.is_some_and(|v| v < self.config.rest_speed_mps)
            && s.gyroscope
                .is_some_and(|g| abs(g.z) < self.config.rest_rate_dps)
    }

    /// One streaming slot's data arrived.
    pub fn on_sample(&mut self, token: u8, sample: &SensorSample, now_ns: u64) {
        self.sensors.merge(token, sample, now_ns);
        let Some(r) = &mut self.running else { return };
        if let (Tracker::Turn(t), Some(imu)) = (&mut r.tracker, sample.imu) {
            t.update(imu.yaw_deg);
        }
        let primary = match r.tracker {
            Tracker::Distance(_) => MOTION_TOKEN,
            Tracker::Turn(_) => IMU_TOKEN,
        };
        let stopping = matches!(r.phase, Phase::Stopping { .. });
        if token == primary || stopping {
            self.supervise(now_ns);
            // A maneuver that started inside `supervise` already drove once.
            if !stopping {
                self.control(now_ns);
            }
        }
    }

    /// A battery percentage answer.
    pub fn on_battery(&mut self, percent: u8) {
        self.battery = Some(percent);
    }

    /// Timers: D-pad refresh and timeout, maneuver supervision, telemetry,
    /// re-arming a silent stream. Call at least every `tick_ms`.
    pub fn tick(&mut self, now_ns: u64) {
        if let Some(mut d) = self.dpad {
            if now_ns >= d.deadline_ns {
                self.dpad = None;
                self.stop_robot();
            } else if now_ns >= d.next_refresh_ns {
                d.next_refresh_ns = now_ns + ms(self.config.dpad_refresh_ms);
                self.dpad = Some(d);
                self.send_dpad(d);
            }
        }
        self.supervise(now_ns);
        self.start_next(now_ns);
        let idle = self.running.is_none() && self.dpad.is_none();
        let silent = !Sensors::fresh(
            self.sensors.motion_ns,
            now_ns,
            ms(self.config.rearm_after_ms),
        ) && now_ns >= ms(self.config.rearm_after_ms);
        let may_rearm = self
            .last_rearm_ns
            .is_none_or(|t| now_ns.saturating_sub(t) >= REARM_INTERVAL_NS);
        if idle && silent && may_rearm {
            self.last_rearm_ns = Some(now_ns);
            self.outputs.push(Output::Rearm);
        }
        if now_ns >= self.next_telemetry_ns {
            self.rvr(Command::GetBatteryPercentage, false);
            let payload = self.telemetry_json(now_ns);
            self.publish(payload, QoS::AtMostOnce);
            let period = if self.is_moving() {
                self.config.telemetry_moving_ms
            } else {
                self.config.telemetry_idle_ms
            };
            self.next_telemetry_ns = now_ns + ms(period);
        }
    }

    /// The telemetry message for now.
    pub fn telemetry_json(&self, now_ns: u64) -> String {
        let s = &self.sensors;
        let m = messages::m;
        let pose = match (s.locator, s.imu) {
            (Some(l), Some(a)) => Some(Pose {
                x: m(l.x),
                y: m(l.y),
                yaw: deg(a.yaw_deg),
            }),
            _ => None,
        };
        let xyz = |v: Vector3, f: fn(f32) -> f32| Xyz {
            x: f(v.x),
            y: f(v.y),
            z: f(v.z),
        };
        let maneuver = self.running.as_ref().map(|r| ManeuverState {
            id: &r.spec.id,
            action: r.spec.action(),
            status: match r.phase {
                Phase::Driving => "running",
                Phase::Stopping { .. } => "stopping",
            },
            queued: self.queue.len(),
        });
        let t = Telemetry {
            kind: "telemetry",
            ts: self.unix_s(now_ns),
            uptime_ms: now_ns / MS,
            pose,
            velocity: s.velocity.map(|v| Velocity {
                x: m(v.x),
                y: m(v.y),
                speed: m(s.speed.unwrap_or(0.0)),
            }),
            imu: s.imu.map(|a| Imu {
                pitch: deg(a.pitch_deg),
                roll: deg(a.roll_deg),
                yaw: deg(a.yaw_deg),
            }),
            accelerometer: s.accelerometer.map(|v| xyz(v, m)),
            gyroscope: s.gyroscope.map(|v| xyz(v, deg)),
            locator: s.locator.map(|l| Xy {
                x: m(l.x),
                y: m(l.y),
            }),
            ambient_light: s.ambient.map(|l| messages::round(l, 1)),
            battery: self.battery,
            maneuver,
            drive: self.dpad.map(|d| DriveState {
                direction: d.direction.as_str(),
                speed: m(d.speed_mps),
            }),
            link: self.link,
        };
        to_json(&t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use serde_json::Value;

    const S: u64 = 1_000_000_000;

    fn sample(x: f32, y: f32, yaw: f32, speed: f32) -> [(u8, SensorSample); 2] {
        [
            (
                IMU_TOKEN,
                SensorSample {
                    imu: Some(Attitude {
                        pitch_deg: 0.0,
                        roll_deg: 0.0,
                        yaw_deg: yaw,
                    }),
                    accelerometer: Some(Vector3 {
                        x: 0.0,
                        y: 0.0,
                        z: 1.0,
                    }),
                    gyroscope: Some(Vector3::default()),
                    ..Default::default()
                },
            ),
            (
                MOTION_TOKEN,
                SensorSample {
                    locator: Some(Vector2 { x, y }),
                    velocity: Some(Vector2 { x: 0.0, y: speed }),
                    speed_mps: Some(speed),
                    ..Default::default()
                },
            ),
        ]
    }

    fn feed(b: &mut Bridge, x: f32, y: f32, yaw: f32, speed: f32, now: u64) {
        for (token, s) in sample(x, y, yaw, speed) {
            b.on_sample(token, &s, now);
        }
    }

    fn published(outputs: &[Output]) -> Vec<Value> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Publish { payload, .. } => serde_json::from_str(payload).ok(),
                _ => None,
            })
            .collect()
    }

    fn statuses(outputs: &[Output]) -> Vec<String> {
        published(outputs)
            .iter()
            .filter(|v| v["type"] == "maneuver")
            .map(|v| {
                format!(
                    "{}:{}",
                    v["id"].as_str().unwrap(),
                    v["status"].as_str().unwrap()
                )
            })
            .collect()
    }

    fn ready() -> Bridge {
        let mut b = Bridge::new(BridgeConfig::default());
        feed(&mut b, 0.0, 0.0, 0.0, 0.0, S);
        b.tick(S);
        b.take_outputs();
        b
    }

    #[test]
    fn a_forward_maneuver_drives_slows_and_completes() {
        let mut b = ready();
        b.on_action_payload(br#"{"id":"f1","action":"forward","distance_m":1.0}"#, S);
        let out = b.take_outputs();
        assert_eq!(statuses(&out), ["f1:accepted", "f1:started"]);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Rvr { command: Command::DriveRcSi { linear_mps, .. }, reliable: false, .. } if *linear_mps == 0.4
        )));
        // Drive along +y (forward at yaw 0) in 50 ms steps, 2 cm each.
        let mut t = S;
        let mut y = 0.0f32;
        let mut completed = false;
        for _ in 0..200 {
            t += 50_000_000;
            y += 0.02f32.min((1.0 - y).max(0.0) * 0.5 + 0.0005);
            feed(&mut b, 0.0, y, 0.0, 0.2, t);
            b.tick(t);
            let out = b.take_outputs();
            if out.iter().any(|o| {
                matches!(
                    o,
                    Output::Rvr {
                        command: Command::DriveStop,
                        reliable: true,
                        ..
                    }
                )
            }) {
                // The robot stops: the next samples show rest.
                for k in 1..3 {
                    feed(&mut b, 0.0, y, 0.0, 0.0, t + k * 50_000_000);
                }
                let out = b.take_outputs();
                let done = published(&out);
                let last = done.iter().rev().find(|v| v["type"] == "maneuver").unwrap();
                assert_eq!(last["status"], "completed");
                let d = last["measured"]["distance_m"].as_f64().unwrap();
                assert!((d - 1.0).abs() < 0.004, "measured {d}");
                completed = true;
                break;
            }
        }
        assert!(completed);
        assert!(!b.is_moving());
    }

    #[test]
    fn a_second_maneuver_queues_and_runs_after_the_first() {
        let mut b = ready();
        b.on_action_payload(br#"{"id":"a","action":"turn","degrees":10}"#, S);
        b.on_action_payload(br#"{"id":"b","action":"reverse","distance_m":0.1}"#, S);
        let out = b.take_outputs();
        assert_eq!(statuses(&out), ["a:accepted", "a:started", "b:accepted"]);
        let v = published(&out);
        assert_eq!(v[2]["queue_position"], 1);
        // Turn done: yaw reaches 10 and the robot rests.
        feed(&mut b, 0.0, 0.0, 9.8, 0.0, S + 50_000_000);
        feed(&mut b, 0.0, 0.0, 9.8, 0.0, S + 100_000_000);
        let out = b.take_outputs();
        assert_eq!(statuses(&out), ["a:completed", "b:started"]);
    }

    #[test]
    fn with_queue_len_0_a_second_maneuver_is_refused_busy() {
        let mut b = Bridge::new(BridgeConfig {
            queue_len: 0,
            ..BridgeConfig::default()
        });
        feed(&mut b, 0.0, 0.0, 0.0, 0.0, S);
        b.on_action_payload(br#"{"id":"a","action":"turn","degrees":10}"#, S);
        b.on_action_payload(br#"{"id":"b","action":"turn","degrees":10}"#, S);
        let v = published(&b.take_outputs());
        let err = v.iter().find(|v| v["type"] == "error").unwrap();
        assert_eq!(err["code"], "busy");
        assert_eq!(err["id"], "b");
    }

    #[test]
    fn a_full_queue_refuses_with_queue_full() {
        let mut b = ready();
        for i in 0..6 {
            let p = format!(r#"{{"id":"m{i}","action":"turn","degrees":5}}"#);
            b.on_action_payload(p.as_bytes(), S);
        }
        let v = published(&b.take_outputs());
        let errs: Vec<_> = v.iter().filter(|v| v["type"] == "error").collect();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0]["code"], "queue_full");
        assert_eq!(errs[0]["id"], "m5");
    }

    #[test]
    fn cancel_stops_reliably_and_cancels_the_queue() {
        let mut b = ready();
        b.on_action_payload(br#"{"id":"a","action":"forward","distance_m":2}"#, S);
        b.on_action_payload(br#"{"id":"b","action":"turn","degrees":90}"#, S);
        b.take_outputs();
        b.on_action_payload(br#"{"id":"c","action":"cancel"}"#, S + 100_000_000);
        let out = b.take_outputs();
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Rvr {
                command: Command::DriveStop,
                reliable: true,
                ..
            }
        )));
        assert!(!out.iter().any(Output::is_motion));
        assert_eq!(statuses(&out), ["b:cancelled"]);
        // No more drive commands while it stops, then the report.
        feed(&mut b, 0.0, 0.05, 0.0, 0.2, S + 150_000_000);
        assert!(!b.take_outputs().iter().any(Output::is_motion));
        feed(&mut b, 0.0, 0.06, 0.0, 0.0, S + 200_000_000);
        let out = b.take_outputs();
        let v = published(&out);
        assert_eq!(v[0]["status"], "cancelled");
        assert_eq!(v[0]["reason"], "cancel requested");
        let d = v[0]["measured"]["distance_m"].as_f64().unwrap();
        assert!((d - 0.06).abs() < 1e-6, "{d}");
    }

    #[test]
    fn lost_sensor_data_stops_the_robot_and_fails_the_maneuver() {
        let mut b = ready();
        b.on_action_payload(br#"{"id":"a","action":"forward","distance_m":1}"#, S);
        b.take_outputs();
        b.tick(S + 200_000_000);
        assert!(!b.take_outputs().iter().any(|o| matches!(
            o,
            Output::Rvr {
                command: Command::DriveStop,
                ..
            }
        )));
        b.tick(S + 310_000_000);
        let out = b.take_outputs();
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Rvr {
                command: Command::DriveStop,
                reliable: true,
                ..
            }
        )));
        b.tick(S + 900_000_000);
        let v = published(&b.take_outputs());
        let ev = v.iter().find(|v| v["type"] == "maneuver").unwrap();
        assert_eq!(ev["status"], "failed");
        assert!(ev["reason"].as_str().unwrap().contains("no sensor data"));
    }

    #[test]
    fn no_progress_while_driving_is_blocked() {
        let mut b = ready();
        b.on_action_payload(br#"{"id":"w","action":"forward","distance_m":2}"#, S);
        let mut t = S;
        let mut statuses_seen = Vec::new();
        for _ in 0..60 {
            t += 50_000_000;
            feed(&mut b, 0.0, 0.3, 0.0, 0.0, t);
            b.tick(t);
            statuses_seen.extend(statuses(&b.take_outputs()));
        }
        assert!(
            statuses_seen.contains(&"w:blocked".to_string()),
            "{statuses_seen:?}"
        );
    }

    #[test]
    fn a_maneuver_times_out() {
        let mut b = Bridge::new(BridgeConfig {
            maneuver_timeout_base_ms: 100,
            maneuver_timeout_factor: 0.0,
            ..BridgeConfig::default()
        });
        feed(&mut b, 0.0, 0.0, 0.0, 0.0, S);
        b.on_action_payload(br#"{"id":"t","action":"turn","degrees":90}"#, S);
        feed(&mut b, 0.0, 0.0, 5.0, 0.0, S + 150_000_000);
        feed(&mut b, 0.0, 0.0, 5.0, 0.0, S + 200_000_000);
        let all = statuses(&b.take_outputs());
        assert_eq!(all.last().unwrap(), "t:timeout");
    }

    #[test]
    fn the_dpad_drives_while_commands_come_and_stops_after_the_timeout() {
        let mut b = ready();
        b.on_action_payload(br#"{"action":"drive","direction":"left","speed":0.4}"#, S);
        let out = b.take_outputs();
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Rvr { command: Command::DriveTankSi { left_mps, right_mps }, .. } if *left_mps == -0.2 && *right_mps == 0.2
        )));
        b.tick(S + 250_000_000);
        assert!(b.take_outputs().iter().any(Output::is_motion), "refreshed");
        b.on_action_payload(
            br#"{"action":"drive","direction":"forward"}"#,
            S + 500_000_000,
        );
        b.tick(S + 1_400_000_000);
        let out = b.take_outputs();
        assert!(!out.iter().any(|o| matches!(
            o,
            Output::Rvr {
                command: Command::DriveStop,
                ..
            }
        )));
        b.tick(S + 1_500_000_000);
        let out = b.take_outputs();
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Rvr {
                command: Command::DriveStop,
                reliable: true,
                ..
            }
        )));
        b.tick(S + 2_000_000_000);
        assert!(!b.take_outputs().iter().any(Output::is_motion));
    }

    #[test]
    fn telemetry_has_the_nested_shape_and_slows_down_at_rest() {
        let mut b = Bridge::new(BridgeConfig {
            epoch_offset_s: 1_780_000_000,
            ..BridgeConfig::default()
        });
        feed(&mut b, 0.25, 1.5, 12.5, 0.0, S);
        b.on_battery(87);
        b.tick(2 * S);
        let out = b.take_outputs();
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Rvr {
                command: Command::GetBatteryPercentage,
                ..
            }
        )));
        let v = published(&out);
        let t = &v[0];
        assert_eq!(t["type"], "telemetry");
        assert_eq!(t["ts"], 1_780_000_002u64);
        assert_eq!(t["pose"]["x"], 0.25);
        assert_eq!(t["pose"]["yaw"], 12.5);
        assert_eq!(t["locator"]["y"], 1.5);
        assert_eq!(t["accelerometer"]["z"], 1.0);
        assert_eq!(t["battery"], 87);
        assert!(t["maneuver"].is_null());
        assert!(t["ambient_light"].is_null());
        for key in ["velocity", "imu", "gyroscope", "link"] {
            assert!(t[key].is_object(), "{key}");
        }
        // Idle: the next one comes 60 s later.
        b.tick(3 * S);
        assert!(published(&b.take_outputs()).is_empty());
        b.tick(62 * S);
        assert_eq!(published(&b.take_outputs()).len(), 1);
    }

    #[test]
    fn refused_commands_name_the_problem_and_do_not_move_the_robot() {
        let mut b = ready();
        b.on_action_payload(br#"{"id":"x9","action":"forward","distance_m":0}"#, S);
        let out = b.take_outputs();
        assert!(!out.iter().any(|o| matches!(o, Output::Rvr { .. })));
        let v = published(&out);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["type"], "error");
        assert_eq!(v[0]["id"], "x9");
        assert_eq!(v[0]["action"], "forward");
        assert_eq!(v[0]["code"], "out_of_range");
    }

    #[test]
    fn a_silent_stream_while_idle_is_rearmed_at_most_every_5_s() {
        let mut b = ready();
        let rearms = |b: &mut Bridge| {
            b.take_outputs()
                .iter()
                .filter(|o| matches!(o, Output::Rearm))
                .count()
        };
        b.tick(2 * S + 900_000_000);
        assert_eq!(rearms(&mut b), 0);
        b.tick(3 * S + 100_000_000);
        assert_eq!(rearms(&mut b), 1);
        b.tick(6 * S);
        assert_eq!(rearms(&mut b), 0);
        b.tick(8 * S + 200_000_000);
        assert_eq!(rearms(&mut b), 1);
        // Data again: no more rearms.
        feed(&mut b, 0.0, 0.0, 0.0, 0.0, 9 * S);
        b.tick(10 * S);
        assert_eq!(rearms(&mut b), 0);
    }

    #[test]
    fn a_drive_command_overrides_a_running_maneuver() {
        let mut b = ready();
        b.on_action_payload(br#"{"id":"a","action":"forward","distance_m":1}"#, S);
        b.on_action_payload(br#"{"id":"b","action":"turn","degrees":30}"#, S);
        b.take_outputs();
        b.on_action_payload(br#"{"action":"drive","direction":"right"}"#, S + 1);
        let out = b.take_outputs();
        assert_eq!(statuses(&out), ["a:cancelled", "b:cancelled"]);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Rvr { command: Command::DriveTankSi { left_mps, right_mps }, .. } if *left_mps > 0.0 && *right_mps < 0.0
        )));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn arbitrary_bytes_never_panic_and_never_drive(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let mut b = ready();
                b.on_action_payload(&bytes, S);
                b.tick(S + 1);
                let out = b.take_outputs();
                prop_assert!(!out.iter().any(Output::is_motion));
                if parse_command(&bytes, b.config()).is_err() {
                    let v = published(&out);
                    prop_assert_eq!(v.len(), 1);
                    prop_assert_eq!(&v[0]["type"], "error");
                }
            }

            #[test]
            fn json_shaped_commands_drive_only_when_valid(
                action in prop_oneof![
                    Just("drive"), Just("forward"), Just("reverse"), Just("turn"), Just("cancel"), Just("fly"), Just("")
                ],
                direction in prop_oneof![Just("forward"), Just("left"), Just("stop"), Just("up")],
                number in prop_oneof![
                    any::<f64>().prop_filter("finite", |x| x.is_finite()),
                    -20.0f64..20.0,
                    Just(0.0),
                    Just(1e300),
                ],
                as_string in any::<bool>(),
            ) {
                let n = if as_string { format!("\"{number}\"") } else { format!("{number}") };
                let payload = format!(
                    r#"{{"id":"p","action":"{action}","direction":"{direction}","speed":{n},"distance_m":{n},"degrees":{n}}}"#
                );
                let mut b = ready();
                b.on_action_payload(payload.as_bytes(), S);
                let out = b.take_outputs();
                let parsed = parse_command(payload.as_bytes(), b.config());
                if out.iter().any(Output::is_motion) {
                    let req = parsed.unwrap();
                    let c = BridgeConfig::default();
                    match req.action {
                        Action::Drive { speed_mps, .. } => prop_assert!(speed_mps > 0.0 && speed_mps <= c.max_dpad_speed_mps),
                        Action::Move { distance_m, speed_mps, .. } => prop_assert!(
                            distance_m > 0.0 && distance_m <= c.max_distance_m && speed_mps > 0.0 && speed_mps <= c.max_maneuver_speed_mps
                        ),
                        Action::Turn { degrees } => prop_assert!(degrees != 0.0 && degrees.abs() <= c.max_turn_deg),
                        Action::Cancel => prop_assert!(false, "cancel moved the robot"),
                    }
                } else if parsed.is_err() {
                    let v = published(&out);
                    prop_assert_eq!(&v[0]["type"], "error");
                }
            }
        }
    }
}
