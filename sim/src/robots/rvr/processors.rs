//! The RVR's two processors (Nordic: power, lights, ambient light; ST: drive,
//! IMU, locator, encoders) answering the real packet protocol on a UART.
//!
//! Behaviour follows sphero-rvr.md: a response only when the command asks for
//! one (or, with error-only set, only on error), target and source swapped,
//! SEQ echoed; error responses for unknown device/command ids, bad lengths and
//! bad values; notifications for sleep and for the stop controller taking
//! over; streaming per processor and slot at the configured period (the
//! SDKs' 33 ms floor is enforced here as a bad parameter, assumed).
//!
//! Assumed (not published), each a parameter in [`RvrConfig`]: the battery
//! model (4000 mAh; idle and motor currents), the ambient light level, the
//! accelerometer reading +1 g on z at rest, and that the locator and velocity
//! report true displacement (a fused estimate on a floor that does not slip;
//! a robot stalled against a wall shows no progress, while its encoders keep
//! counting). `drive_to_position` answers "not yet implemented". The robot's
//! inactivity auto-sleep is not modelled (its timeout is not published); the
//! activity flag is read but changes nothing.

use std::cell::RefCell;
use std::rc::Rc;

use embedded_io_async::Read;
use rvr_protocol::{
    AddressStyle, Command, DecodeError, ErrorCode, Header, MotorMode, Notification, Packet, Parser,
    Processor, Response, SensorSample, StreamStatus, StreamingConfig, StreamingData,
};
use serde_json::json;

use super::drive::{DriveTarget, RvrBody, wrap_deg};
use crate::trace::channels;
use crate::uart::{TxQueue, UartRx, UartTx};
use crate::{MILLIS, Nanos, SimHandle};

/// Twin parameters beyond the drivetrain.
#[derive(Debug, Clone, PartialEq)]
pub struct RvrConfig {
    /// Battery capacity, mAh (4000: pre-launch press material).
    pub battery_mah: f32,
    /// Charge at power-on, percent (assumed 100).
    pub battery_start_pct: f32,
    /// Current drawn awake and idle, mA (assumed 150).
    pub idle_ma: f32,
    /// Extra current at full tread speed on both treads, mA (assumed 1800: about
    /// 2 h of driving, as Sphero's battery FAQ says).
    pub drive_ma: f32,
    /// Ambient light reported, lux (assumed 300, an office).
    pub ambient_lux: f32,
    /// Shortest streaming period accepted, ms (33: the SDKs refuse less).
    pub min_stream_period_ms: u16,
    /// How the twin addresses its notifications (assumed: like the Node.js SDK).
    pub notification_style: AddressStyle,
}

impl Default for RvrConfig {
    fn default() -> Self {
        RvrConfig {
            battery_mah: 4000.0,
            battery_start_pct: 100.0,
            idle_ma: 150.0,
            drive_ma: 1800.0,
            ambient_lux: 300.0,
            min_stream_period_ms: 33,
            notification_style: AddressStyle::TargetAndSource,
        }
    }
}

/// Counters and state the harness can inspect.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RvrStats {
    /// Command packets received intact.
    pub commands: u64,
    /// Responses sent.
    pub responses: u64,
    /// Error responses sent.
    pub error_responses: u64,
    /// Notifications sent (streaming included).
    pub notifications: u64,
    /// Bytes the parser dropped (noise, bad checksums, truncated frames).
    pub rx_bytes_dropped: u64,
    /// Frames the parser rejected.
    pub rx_frames_rejected: u64,
    /// Drive commands accepted.
    pub drive_commands: u64,
    /// Whether the robot is awake.
    pub awake: bool,
    /// Battery charge, percent.
    pub battery_pct: f32,
}

#[derive(Debug, Clone, Default)]
struct Streaming {
    slots: Vec<StreamingConfig>,
    period: Nanos,
    /// Incremented on every start/stop so a running streamer knows it is stale.
    generation: u64,
}

struct TwinState {
    config: RvrConfig,
    body: RvrBody,
    awake: bool,
    boot: Nanos,
    charge_mah: f64,
    last_drain: Nanos,
    yaw_zero_deg: f32,
    origin: (f32, f32),
    streaming: [Streaming; 2],
    /// Frames to the bridge; set once the writer task is spawned.
    tx: Option<TxQueue>,
    sequence: u8,
    stats: RvrStats,
}

/// The harness's handle on a running RVR twin.
#[derive(Clone)]
pub struct RvrTwin {
    state: Rc<RefCell<TwinState>>,
    handle: SimHandle,
}

fn index(p: Processor) -> usize {
    match p {
        Processor::Nordic => 0,
        Processor::St => 1,
    }
}

impl RvrTwin {
    /// Starts the twin's tasks on its end of the UART (`rx`, `tx`).
    pub fn spawn(
        handle: &SimHandle,
        name: &str,
        body: RvrBody,
        rx: UartRx,
        tx: UartTx,
        config: RvrConfig,
    ) -> RvrTwin {
        let now = handle.now();
        let charge = f64::from(config.battery_mah * config.battery_start_pct / 100.0);
        let yaw_zero = body.planar().yaw.to_degrees();
        let origin = {
            let p = body.planar();
            (p.x, p.y)
        };
        let state = Rc::new(RefCell::new(TwinState {
            config,
            body,
            awake: true,
            boot: now,
            charge_mah: charge,
            last_drain: now,
            yaw_zero_deg: yaw_zero,
            origin,
            streaming: Default::default(),
            tx: None,
            sequence: 0,
            stats: RvrStats::default(),
        }));
        let twin = RvrTwin {
            state,
            handle: handle.clone(),
        };
        let t = twin.clone();
        handle.spawn(format!("{name} (RVR processors)"), async move {
            t.serve(rx).await
        });
        let queue = TxQueue::spawn(handle, format!("{name} (RVR UART TX)"), tx);
        twin.state.borrow_mut().tx = Some(queue);
        let t = twin.clone();
        handle.spawn(format!("{name} (RVR notifications)"), async move {
            t.watch_drive().await
        });
        twin
    }

    /// A copy of the counters.
    pub fn stats(&self) -> RvrStats {
        self.drain_battery();
        let s = self.state.borrow();
        let mut stats = s.stats.clone();
        stats.awake = s.awake;
        stats.battery_pct = (s.charge_mah / f64::from(s.config.battery_mah) * 100.0) as f32;
        stats
    }

    /// The body this twin drives.
    pub fn body(&self) -> RvrBody {
        self.state.borrow().body.clone()
    }

    /// What the sensors read now (every service filled).
    pub fn sample(&self) -> SensorSample {
        let s = self.state.borrow();
        sample_of(&s, self.handle.now())
    }

    fn queue(&self, packet: &Packet) {
        let Ok(frame) = packet.to_frame() else { return };
        if let Some(tx) = &self.state.borrow().tx {
            tx.send(frame.as_bytes().to_vec());
        }
    }

    fn next_sequence(&self) -> u8 {
        let mut s = self.state.borrow_mut();
        s.sequence = s.sequence.wrapping_add(1);
        s.sequence
    }

    fn notify(&self, n: Notification, from: Processor) {
        let seq = self.next_sequence();
        let style = self.state.borrow().config.notification_style;
        if let Ok(packet) = n.to_packet(seq, from, style) {
            self.state.borrow_mut().stats.notifications += 1;
            self.queue(&packet);
        }
    }

    async fn serve(&self, mut rx: UartRx) {
        let mut parser = Parser::new();
        let mut buf = [0u8; 64];
        loop {
            let n = match rx.read(&mut buf).await {
                Ok(n) => n,
                Err(_) => {
                    // A line break: whatever frame was in progress is lost.
                    parser.reset();
                    continue;
                }
            };
            for &b in &buf[..n] {
                match parser.push(b) {
                    Some(Ok(packet)) => self.on_packet(&packet),
                    Some(Err(_)) => {
                        let mut s = self.state.borrow_mut();
                        s.stats.rx_frames_rejected += 1;
                    }
                    None => {}
                }
            }
            self.state.borrow_mut().stats.rx_bytes_dropped =
                u64::from(parser.stats().skipped_bytes);
        }
    }

    fn on_packet(&self, packet: &Packet) {
        let header = packet.header;
        if header.is_response() || header.has_conflicting_flags() {
            return;
        }
        self.state.borrow_mut().stats.commands += 1;
        let Some(processor) = header.destination() else {
            self.reply_error(&header, ErrorCode::BadTargetId);
            return;
        };
        let command = match Command::from_packet(packet) {
            Ok(c) => c,
            Err(e) => {
                self.reply_error(&header, decode_error_code(e));
                return;
            }
        };
        self.handle.trace(
            channels::UART,
            json!({"rvr": "command", "processor": format!("{processor:?}"), "command": format!("{command:?}"), "seq": header.sequence}),
        );
        match self.execute(&command, processor) {
            Ok(response) => {
                if header.wants_reply(true) {
                    let r = response.unwrap_or(Response::Ack(command.kind()));
                    if let Ok(p) = r.to_packet(&header) {
                        self.state.borrow_mut().stats.responses += 1;
                        self.queue(&p);
                    }
                }
            }
            Err(code) => self.reply_error(&header, code),
        }
    }

    fn reply_error(&self, header: &Header, code: ErrorCode) {
        if header.wants_reply(false) {
            let mut s = self.state.borrow_mut();
            s.stats.responses += 1;
            s.stats.error_responses += 1;
            drop(s);
            self.queue(&Packet::error_response(header, code));
        }
    }

    fn drain_battery(&self) {
        let now = self.handle.now();
        let mut s = self.state.borrow_mut();
        let dt_h = (now.saturating_sub(s.last_drain)) as f64 / 3.6e12;
        if dt_h <= 0.0 {
            return;
        }
        let current = if s.awake {
            let d = s.body.drive();
            let load = (d.tread[0].abs() + d.tread[1].abs()) / (2.0 * d.params.max_tread_speed);
            s.config.idle_ma + s.config.drive_ma * load
        } else {
            0.0
        };
        s.charge_mah = (s.charge_mah - f64::from(current) * dt_h).max(0.0);
        s.last_drain = now;
    }

    fn drive(&self, target: DriveTarget) -> Result<Option<Response>, ErrorCode> {
        let mut s = self.state.borrow_mut();
        if !s.awake {
            return Err(ErrorCode::CommandRestricted);
        }
        s.stats.drive_commands += 1;
        s.body.command(target, self.handle.now());
        Ok(None)
    }

    /// Runs a command; `Ok(None)` means a plain acknowledgement.
    fn execute(
        &self,
        command: &Command,
        processor: Processor,
    ) -> Result<Option<Response>, ErrorCode> {
        self.drain_battery();
        let (max_tread, max_linear, max_yaw) = {
            let p = self.state.borrow().body.drive().params;
            (p.max_tread_speed, p.max_linear, p.max_yaw_rate_deg)
        };
        let now = self.handle.now();
        match *command {
            Command::Wake => {
                self.state.borrow_mut().awake = true;
                Ok(None)
            }
            Command::Sleep => {
                self.notify(Notification::WillSleep, Processor::Nordic);
                {
                    let mut s = self.state.borrow_mut();
                    s.body.command(DriveTarget::Stop, now);
                    s.awake = false;
                    for st in &mut s.streaming {
                        st.generation += 1;
                    }
                }
                self.notify(Notification::DidSleep, Processor::Nordic);
                Ok(None)
            }
            Command::GetBatteryPercentage => {
                let pct = self.stats().battery_pct.round().clamp(0.0, 100.0) as u8;
                Ok(Some(Response::BatteryPercentage(pct)))
            }
            Command::RawMotors {
                left_mode,
                left_duty,
                right_mode,
                right_duty,
            } => {
                let speed = |mode: MotorMode, duty: u8| match mode {
                    MotorMode::Off => 0.0,
                    MotorMode::Forward => f32::from(duty) / 255.0 * max_tread,
                    MotorMode::Reverse => -f32::from(duty) / 255.0 * max_tread,
                };
                self.drive(DriveTarget::Treads {
                    left: speed(left_mode, left_duty),
                    right: speed(right_mode, right_duty),
                })
            }
            Command::DriveTankSi {
                left_mps,
                right_mps,
            } => {
                if !left_mps.is_finite() || !right_mps.is_finite() {
                    return Err(ErrorCode::BadParameterValue);
                }
                self.drive(DriveTarget::Treads {
                    left: left_mps,
                    right: right_mps,
                })
            }
            Command::DriveTankNormalized { left, right } => {
                let n = |v: i8| f32::from(v.max(-127)) / 127.0 * max_tread;
                self.drive(DriveTarget::Treads {
                    left: n(left),
                    right: n(right),
                })
            }
            Command::DriveRcSi {
                yaw_rate_dps,
                linear_mps,
                ..
            } => {
                if !yaw_rate_dps.is_finite() || !linear_mps.is_finite() {
                    return Err(ErrorCode::BadParameterValue);
                }
                self.drive(DriveTarget::Rc {
                    linear: linear_mps,
                    yaw_rate_deg: yaw_rate_dps,
                })
            }
            Command::DriveRcNormalized {
                yaw_rate, linear, ..
            } => {
                let n = |v: i8, max: f32| f32::from(v.max(-127)) / 127.0 * max;
                self.drive(DriveTarget::Rc {
                    linear: n(linear, max_linear),
                    yaw_rate_deg: n(yaw_rate, max_yaw),
                })
            }
            Command::DriveWithHeading {
                speed,
                heading_deg,
                flags,
            } => {
                if heading_deg > 359 {
                    return Err(ErrorCode::BadParameterValue);
                }
                let sign = if flags.contains(rvr_protocol::HeadingFlags::REVERSE) {
                    -1.0
                } else {
                    1.0
                };
                let zero = self.state.borrow().yaw_zero_deg;
                // Heading is compass-like (90 = right); yaw is + left.
                let yaw = wrap_deg(zero - f32::from(heading_deg));
                self.drive(DriveTarget::Heading {
                    speed: sign * f32::from(speed) / 255.0 * max_linear,
                    yaw_deg: yaw,
                })
            }
            Command::DriveWithYawSi {
                yaw_deg,
                linear_mps,
            } => {
                if !yaw_deg.is_finite() || !linear_mps.is_finite() {
                    return Err(ErrorCode::BadParameterValue);
                }
                let zero = self.state.borrow().yaw_zero_deg;
                self.drive(DriveTarget::Heading {
                    speed: linear_mps,
                    yaw_deg: wrap_deg(zero + yaw_deg),
                })
            }
            Command::DriveStop | Command::DriveStopCustomDecel { .. } => {
                self.drive(DriveTarget::Stop)
            }
            Command::DriveToPositionSi { .. } => Err(ErrorCode::NotYetImplemented),
            Command::GetStopControllerState => {
                let stopped = self.state.borrow().body.drive().at_rest();
                Ok(Some(Response::StopControllerState { stopped }))
            }
            Command::SetCustomControlSystemTimeout { timeout_ms } => {
                self.state
                    .borrow()
                    .body
                    .set_command_timeout(u64::from(timeout_ms) * MILLIS);
                Ok(None)
            }
            Command::RestoreDefaultControlSystemTimeout => {
                self.state.borrow().body.set_command_timeout(2000 * MILLIS);
                Ok(None)
            }
            Command::ResetYaw => {
                let mut s = self.state.borrow_mut();
                s.yaw_zero_deg = s.body.planar().yaw.to_degrees();
                Ok(None)
            }
            Command::ResetLocatorXy => {
                let mut s = self.state.borrow_mut();
                let p = s.body.planar();
                s.origin = (p.x, p.y);
                Ok(None)
            }
            Command::GetAmbientLightSensorValue => Ok(Some(Response::AmbientLight {
                lux: self.state.borrow().config.ambient_lux,
            })),
            Command::GetEncoderCounts => {
                let [left, right] = self.state.borrow().body.drive().encoder_counts();
                Ok(Some(Response::EncoderCounts {
                    left: left as i32,
                    right: right as i32,
                }))
            }
            Command::ConfigureStreaming(config) => {
                if config
                    .entries()
                    .iter()
                    .any(|e| !e.service.served_by(processor))
                {
                    return Err(ErrorCode::BadParameterValue);
                }
                let mut s = self.state.borrow_mut();
                let st = &mut s.streaming[index(processor)];
                st.slots.retain(|c| c.token() != config.token());
                st.slots.push(config);
                Ok(None)
            }
            Command::StartStreaming { period_ms } => {
                if period_ms < self.state.borrow().config.min_stream_period_ms {
                    return Err(ErrorCode::BadParameterValue);
                }
                let generation = {
                    let mut s = self.state.borrow_mut();
                    let st = &mut s.streaming[index(processor)];
                    st.period = u64::from(period_ms) * MILLIS;
                    st.generation += 1;
                    st.generation
                };
                let t = self.clone();
                self.handle
                    .spawn(format!("RVR {processor:?} streaming"), async move {
                        t.stream(processor, generation).await
                    });
                Ok(None)
            }
            Command::StopStreaming => {
                self.state.borrow_mut().streaming[index(processor)].generation += 1;
                Ok(None)
            }
            Command::ClearStreaming => {
                let mut s = self.state.borrow_mut();
                let st = &mut s.streaming[index(processor)];
                st.generation += 1;
                st.slots.clear();
                Ok(None)
            }
            Command::EnableColorDetection { .. } => Ok(None),
            _ => Err(ErrorCode::NotYetImplemented),
        }
    }

    async fn stream(&self, processor: Processor, generation: u64) {
        let period = self.state.borrow().streaming[index(processor)].period;
        let mut next = self.handle.now() + period;
        loop {
            self.handle.sleep_until(next).await;
            let slots = {
                let s = self.state.borrow();
                let st = &s.streaming[index(processor)];
                if st.generation != generation || !s.awake {
                    return;
                }
                st.slots.clone()
            };
            let sample = self.sample();
            for slot in &slots {
                if let Ok(data) = StreamingData::from_sample(slot, StreamStatus::Ok, &sample) {
                    self.notify(Notification::StreamingData(data), processor);
                }
            }
            next += period;
        }
    }

    /// Sends "robot has stopped" when the stop controller brings the robot to rest.
    async fn watch_drive(&self) {
        loop {
            self.handle.sleep(10 * MILLIS).await;
            let (stopped, timed_out) = self.state.borrow().body.take_events();
            if stopped || timed_out {
                self.notify(Notification::RobotHasStopped, Processor::St);
            }
        }
    }
}

fn decode_error_code(e: DecodeError) -> ErrorCode {
    e.error_code()
}

/// Every sensor as the twin reads it now.
fn sample_of(s: &TwinState, now: Nanos) -> SensorSample {
    use rvr_protocol::{Attitude, ColorReading, EncoderTicks, Quaternion, Vector2, Vector3};
    let p = s.body.planar();
    let zero = s.yaw_zero_deg.to_radians();
    // Locator frame: +y forward at the last yaw reset, +x to its right.
    let (fx, fy) = (zero.cos(), zero.sin());
    let (rx, ry) = (fy, -fx);
    let (dx, dy) = (p.x - s.origin.0, p.y - s.origin.1);
    let yaw_deg = wrap_deg(p.yaw.to_degrees() - s.yaw_zero_deg);
    let half = yaw_deg.to_radians() / 2.0;
    let [l, r] = s.body.drive().encoder_counts();
    SensorSample {
        quaternion: Some(Quaternion {
            w: half.cos(),
            x: 0.0,
            y: 0.0,
            z: half.sin(),
        }),
        imu: Some(Attitude {
            pitch_deg: p.pitch.to_degrees(),
            roll_deg: p.roll.to_degrees(),
            yaw_deg,
        }),
        accelerometer: Some(Vector3 {
            x: 0.0,
            y: 0.0,
            z: 1.0,
        }),
        color: Some(ColorReading::default()),
        gyroscope: Some(Vector3 {
            x: 0.0,
            y: 0.0,
            z: p.yaw_rate.to_degrees(),
        }),
        core_time_lower_ms: Some(((now - s.boot) / MILLIS) as u32),
        locator: Some(Vector2 {
            x: dx * rx + dy * ry,
            y: dx * fx + dy * fy,
        }),
        velocity: Some(Vector2 {
            x: p.vx * rx + p.vy * ry,
            y: p.vx * fx + p.vy * fy,
        }),
        speed_mps: Some((p.vx * p.vx + p.vy * p.vy).sqrt()),
        core_time_ms: Some((now - s.boot) / MILLIS),
        ambient_light_lux: Some(s.config.ambient_lux),
        encoders: Some(EncoderTicks {
            left: l as i32,
            right: r as i32,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physics::{PhysicsConfig, PhysicsWorld};
    use crate::robots::rvr::DriveParams;
    use crate::uart::{Uart, UartConfig};
    use crate::{SECONDS, Sim};
    use embedded_io_async::Write;
    use rvr_protocol::{DataSize, SensorService, StreamingData as Data};

    struct Host {
        h: SimHandle,
        rx: UartRx,
        tx: UartTx,
        parser: Parser,
        seq: u8,
        got: Vec<Packet>,
    }

    impl Host {
        async fn send(&mut self, c: Command) -> u8 {
            self.seq = self.seq.wrapping_add(1);
            // The Node.js SDK's style: every command asks for a response.
            let p = c
                .to_packet(self.seq, AddressStyle::TargetAndSource)
                .unwrap();
            self.tx
                .write_all(p.to_frame().unwrap().as_bytes())
                .await
                .unwrap();
            self.seq
        }

        /// Reads packets for `d` of virtual time.
        async fn listen(&mut self, d: Nanos) {
            let deadline = self.h.now() + d;
            let mut buf = [0u8; 128];
            loop {
                let read = self.rx.read(&mut buf);
                let timeout = self.h.sleep_until(deadline);
                match embassy_futures::select::select(read, timeout).await {
                    embassy_futures::select::Either::First(Ok(n)) => {
                        for &b in &buf[..n] {
                            if let Some(Ok(p)) = self.parser.push(b) {
                                self.got.push(p);
                            }
                        }
                    }
                    embassy_futures::select::Either::First(Err(_)) => {}
                    embassy_futures::select::Either::Second(()) => return,
                }
            }
        }

        fn response_to(&self, seq: u8) -> Option<&Packet> {
            self.got
                .iter()
                .find(|p| p.header.is_response() && p.header.sequence == seq)
        }
    }

    fn rig() -> (Sim, RvrTwin, Host) {
        let mut sim = Sim::new(5);
        let h = sim.handle();
        let world = PhysicsWorld::new(&h, PhysicsConfig::default()).unwrap();
        sim.add_process("physics", world.clone());
        let body = RvrBody::spawn(&world, "rvr", 0.0, 0.0, 90.0, DriveParams::default()).unwrap();
        let (a, b, _c) = Uart::pair(&h, "rvr-uart", UartConfig::default());
        let (brx, btx) = b.split();
        let twin = RvrTwin::spawn(&h, "rvr", body, brx, btx, RvrConfig::default());
        let (rx, tx) = a.split();
        let host = Host {
            h: h.clone(),
            rx,
            tx,
            parser: Parser::new(),
            seq: 0,
            got: Vec::new(),
        };
        (sim, twin, host)
    }

    fn run_host(sim: &mut Sim, host: Host, f: impl AsyncFnOnce(&mut Host) + 'static) -> Host {
        let limit = sim.now() + 60 * SECONDS;
        let host = sim
            .run_to_completion("host", limit, async move {
                let mut host = host;
                f(&mut host).await;
                host
            })
            .unwrap();
        host.expect("host finished")
    }

    #[test]
    fn answers_with_the_sequence_and_swapped_ids_and_errors_for_unknown_commands() {
        let (mut sim, twin, host) = rig();
        let host = run_host(&mut sim, host, async |host| {
            host.send(Command::Wake).await;
            host.send(Command::GetBatteryPercentage).await;
            // An unknown command id on the drive device.
            host.seq += 1;
            let mut bad = Command::DriveStop
                .to_packet(host.seq, AddressStyle::TargetAndSource)
                .unwrap();
            bad.header.command_id = 0x7E;
            host.tx
                .write_all(bad.to_frame().unwrap().as_bytes())
                .await
                .unwrap();
            host.listen(200 * MILLIS).await;
        });
        let battery = host.response_to(2).expect("battery answered");
        assert_eq!(
            Response::from_packet(battery),
            Ok(Response::BatteryPercentage(100))
        );
        assert_eq!(
            battery.header.origin(),
            Some(Processor::Nordic),
            "answered from the Nordic processor"
        );
        let err = host.response_to(3).expect("error answered");
        assert_eq!(err.header.error, Some(ErrorCode::BadCommandId));
        assert_eq!(twin.stats().error_responses, 1);
    }

    #[test]
    fn streams_the_locator_while_driving_forward() {
        let (mut sim, _twin, host) = rig();
        let host = run_host(&mut sim, host, async |host| {
            host.send(Command::ResetYaw).await;
            host.send(Command::ResetLocatorXy).await;
            let config = StreamingConfig::new(2)
                .unwrap()
                .with(SensorService::Locator, DataSize::Bits32)
                .unwrap();
            let packet = Command::ConfigureStreaming(config)
                .to_packet_for(50, AddressStyle::TargetAndSource, Processor::St)
                .unwrap();
            host.tx
                .write_all(packet.to_frame().unwrap().as_bytes())
                .await
                .unwrap();
            host.send(Command::StartStreaming { period_ms: 50 }).await;
            for _ in 0..10 {
                host.send(Command::DriveTankSi {
                    left_mps: 0.5,
                    right_mps: 0.5,
                })
                .await;
                host.listen(100 * MILLIS).await;
            }
        });
        let config = StreamingConfig::new(2)
            .unwrap()
            .with(SensorService::Locator, DataSize::Bits32)
            .unwrap();
        let samples: Vec<SensorSample> = host
            .got
            .iter()
            .filter_map(|p| match Notification::from_packet(p) {
                Ok(Notification::StreamingData(d)) => Data::decode(&d, &config).ok(),
                _ => None,
            })
            .collect();
        assert!(samples.len() >= 18, "got {} samples", samples.len());
        let last = samples.last().unwrap().locator.unwrap();
        // Facing world +y (yaw 90); the locator's +y is forward at the reset.
        assert!(last.y > 0.4 && last.y < 0.52, "locator y {}", last.y);
        assert!(last.x.abs() < 0.01, "locator x {}", last.x);
    }

    #[test]
    fn a_period_under_33_ms_is_refused() {
        let (mut sim, _twin, host) = rig();
        let host = run_host(&mut sim, host, async |host| {
            host.send(Command::StartStreaming { period_ms: 20 }).await;
            host.listen(50 * MILLIS).await;
        });
        assert_eq!(
            host.response_to(1).unwrap().header.error,
            Some(ErrorCode::BadParameterValue)
        );
    }

    #[test]
    fn asleep_it_refuses_to_drive_and_the_battery_drains_with_use() {
        let (mut sim, twin, host) = rig();
        let host = run_host(&mut sim, host, async |host| {
            for _ in 0..100 {
                host.send(Command::DriveTankSi {
                    left_mps: 1.5,
                    right_mps: 1.5,
                })
                .await;
                host.listen(100 * MILLIS).await;
            }
            host.send(Command::Sleep).await;
            host.send(Command::DriveTankSi {
                left_mps: 1.0,
                right_mps: 1.0,
            })
            .await;
            host.listen(100 * MILLIS).await;
        });
        let last = host.seq;
        assert_eq!(
            host.response_to(last).unwrap().header.error,
            Some(ErrorCode::CommandRestricted)
        );
        let stats = twin.stats();
        assert!(!stats.awake);
        // 10 s at nearly full load: about 1950 mA * 10 s = 5.4 mAh of 4000.
        assert!(
            stats.battery_pct < 99.9 && stats.battery_pct > 99.7,
            "battery {}",
            stats.battery_pct
        );
    }
}
