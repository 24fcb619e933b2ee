//! The RVR's two processors (Nordic: power, system info, lights, colour and
//! ambient light; ST: drive, IMU, locator, encoders, motors, infrared)
//! answering the real packet protocol on a UART.
//!
//! Behaviour follows sphero-rvr.md and the Python SDK 0.3.4: a response only
//! when the command asks for one (or, with error-only set, only on error),
//! target and source swapped, SEQ echoed; each processor serves the commands
//! the command table gives it ([`rvr_protocol::COMMANDS`]); error responses
//! for unknown device/command ids, bad lengths and bad values; notifications
//! (requesting no response) for sleep, the stop controller taking over, and,
//! once enabled by the host, battery voltage state changes, motor stalls,
//! motor faults, thermal protection changes, gyro overruns and colour
//! detection; streaming per processor and slot at the configured period (the
//! SDKs' 33 ms floor is enforced here as a bad parameter, assumed).
//!
//! One module per device answers its commands: [`system`] (api and shell,
//! system info, connection), [`power`], [`motion`] (drive), [`sensors`] and
//! [`streaming`] (sensor), [`color`] (the colour sensor and the io device's
//! LEDs and palettes); [`monitor`] runs the periodic checks behind the
//! notifications. The physical models are in [`super::models`], their
//! parameters, each with its source or "assumed", in [`super::config`].
//!
//! Assumed (not published), beyond the parameters: a processor answers a
//! command it does not serve with bad command id if it serves other commands
//! of that device, else bad device id; the locator and velocity report true
//! displacement (a fused estimate on a floor that does not slip; a robot
//! stalled against a wall shows no progress, while its encoders keep
//! counting); roll and pitch rates read 0 (a flat floor); while asleep, in
//! thermal protection or with a motor fault the robot refuses drive commands
//! (restricted); asleep it also refuses LED and infrared actions, and sleep
//! stops streaming, colour notifications and the LEDs. `drive_to_position`
//! and `get_magnetometer_reading` (newer-SDK commands) answer "not yet
//! implemented". There is no second robot, so the infrared readings are 0,
//! following and evading find nobody (the robot stays put) and no infrared
//! message ever arrives. The robot's inactivity soft sleep (after 5 min idle,
//! per Sphero's SDK site) is not modelled; the activity flag is read but
//! changes nothing.

mod color;
mod monitor;
mod motion;
mod power;
mod sensors;
mod streaming;
mod system;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use embedded_io_async::Read;
use rvr_protocol::{
    BatteryVoltageState, COMMANDS, Command, ErrorCode, GyroMaxFlags, Header, LocatorFlags,
    Notification, Packet, PaletteEntry, Parser, Processor, Response, SensorSample, StreamingConfig,
    ThermalStatus,
};
use serde_json::json;

use super::config::{MONITOR_PERIOD, RvrConfig};
use super::drive::RvrBody;
use super::models::{MotorHeat, StallDetector};
use twinrig_sim::trace::channels;
use twinrig_sim::uart::{TxQueue, UartRx, UartTx};
use twinrig_sim::{Nanos, SimHandle};

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

/// One processor's streaming slots.
#[derive(Debug, Clone, Default)]
struct Streaming {
    slots: Vec<StreamingConfig>,
    period: Nanos,
    /// Incremented on every start/stop so a running streamer knows it is stale.
    generation: u64,
}

/// Which notifications the host enabled.
#[derive(Debug, Clone, Copy, Default)]
struct NotifyEnables {
    battery_voltage_state: bool,
    motor_stall: bool,
    motor_fault: bool,
    gyro_max: bool,
    thermal_protection: bool,
    infrared_message: bool,
}

/// Motor tread integrals at some instant ([`super::drive::TreadDrive`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct TreadMarks {
    abs_travel_m: [f64; 2],
    force_impulse_ns: [f64; 2],
}

/// The electrical and thermal state of the motors and battery.
#[derive(Debug, Clone)]
struct Electrical {
    charge_mah: f64,
    /// Tread integrals when the charge was last updated.
    drained: TreadMarks,
    last_drain: Nanos,
    /// Motor currents over the last monitor period, amps.
    motor_amps: [f32; 2],
    /// Tread integrals at the last monitor tick.
    monitored: TreadMarks,
    last_monitor: Nanos,
    /// The most recent battery reading (volts) and its state.
    battery_volts: f32,
    battery_state: BatteryVoltageState,
    next_battery_read: Nanos,
    heat: [MotorHeat; 2],
    thermal: [ThermalStatus; 2],
    stall: [StallDetector; 2],
    motor_fault: bool,
    gyro_max: GyroMaxFlags,
}

/// Colour sensor, palettes and LEDs (Nordic).
#[derive(Debug, Clone)]
struct ColorState {
    /// The sensor's LED and detection are on.
    detection: bool,
    /// Colour detection notifications: incremented on every change.
    notify_generation: u64,
    active_palette: Vec<PaletteEntry>,
    saved_palettes: BTreeMap<u8, Vec<PaletteEntry>>,
    /// Brightness of each LED channel (bit order of `set_all_leds`).
    leds: [u8; rvr_protocol::constants::io::LED_CHANNELS],
}

/// The robot-to-robot infrared modes (no second robot ever answers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Infrared {
    broadcasting: Option<(u8, u8)>,
    following: Option<(u8, u8)>,
    evading: Option<(u8, u8)>,
}

struct TwinState {
    config: RvrConfig,
    body: RvrBody,
    awake: bool,
    boot: Nanos,
    /// Body yaw at power-on, deg (locator axes with auto-calibrate).
    boot_yaw_deg: f32,
    /// Body yaw at the last yaw reset, deg (yaw 0).
    yaw_zero_deg: f32,
    locator_flags: LocatorFlags,
    origin: (f32, f32),
    electrical: Electrical,
    notify: NotifyEnables,
    streaming: [Streaming; 2],
    color: ColorState,
    infrared: Infrared,
    /// Notifications to send after the current command's response.
    deferred: Vec<(Notification, Processor)>,
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
        let pose = body.planar();
        let yaw = pose.yaw.to_degrees();
        let marks = TreadMarks::of(&body);
        let heat = MotorHeat::ambient(&config.motors);
        let palette = config.color.default_palette.clone();
        let electrical = Electrical {
            charge_mah: charge,
            drained: marks,
            last_drain: now,
            motor_amps: [0.0; 2],
            monitored: marks,
            last_monitor: now,
            battery_volts: 0.0,
            battery_state: BatteryVoltageState::Unknown,
            next_battery_read: now.saturating_add(config.battery.read_period.max(MONITOR_PERIOD)),
            heat: [heat; 2],
            thermal: [ThermalStatus::Ok; 2],
            stall: [StallDetector::default(); 2],
            motor_fault: false,
            gyro_max: GyroMaxFlags::NONE,
        };
        let state = Rc::new(RefCell::new(TwinState {
            config,
            body,
            awake: true,
            boot: now,
            boot_yaw_deg: yaw,
            yaw_zero_deg: yaw,
            locator_flags: LocatorFlags::default(),
            origin: (pose.x, pose.y),
            electrical,
            notify: NotifyEnables::default(),
            streaming: Default::default(),
            color: ColorState {
                detection: false,
                notify_generation: 0,
                saved_palettes: BTreeMap::from([(0, palette.clone())]),
                active_palette: palette,
                leds: [0; rvr_protocol::constants::io::LED_CHANNELS],
            },
            infrared: Infrared::default(),
            deferred: Vec::new(),
            tx: None,
            sequence: 0,
            stats: RvrStats::default(),
        }));
        let twin = RvrTwin {
            state,
            handle: handle.clone(),
        };
        // The first battery reading, so the state is known from power-on.
        twin.read_battery();
        let t = twin.clone();
        handle.spawn(format!("{name} (RVR processors)"), async move {
            t.serve(rx).await
        });
        let queue = TxQueue::spawn(handle, format!("{name} (RVR UART TX)"), tx);
        twin.state.borrow_mut().tx = Some(queue);
        let t = twin.clone();
        handle.spawn(format!("{name} (RVR notifications)"), async move {
            t.monitor().await
        });
        twin
    }

    /// A copy of the counters.
    pub fn stats(&self) -> RvrStats {
        self.drain_battery();
        let s = self.state.borrow();
        let mut stats = s.stats.clone();
        stats.awake = s.awake;
        stats.battery_pct = s.charge_pct();
        stats
    }

    /// The body this twin drives.
    pub fn body(&self) -> RvrBody {
        self.state.borrow().body.clone()
    }

    /// What the sensors read now (every service filled).
    pub fn sample(&self) -> SensorSample {
        let s = self.state.borrow();
        sensors::sample_of(&s, self.handle.now())
    }

    /// Brightness of each LED channel, in `set_all_leds` bit order.
    pub fn leds(&self) -> [u8; rvr_protocol::constants::io::LED_CHANNELS] {
        self.state.borrow().color.leds
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

    /// Sends `n` from its processor after the response to the command being
    /// handled.
    fn defer(&self, n: Notification) {
        self.state
            .borrow_mut()
            .deferred
            .push((n, n.default_source()));
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
        if let Err(code) = served(&header, processor) {
            self.reply_error(&header, code);
            return;
        }
        let command = match Command::from_packet(packet) {
            Ok(c) => c,
            Err(e) => {
                self.reply_error(&header, e.error_code());
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
        let deferred = std::mem::take(&mut self.state.borrow_mut().deferred);
        for (n, from) in deferred {
            self.notify(n, from);
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

    /// Runs a command on `processor` (which serves it); `Ok(None)` means a
    /// plain acknowledgement.
    fn execute(
        &self,
        command: &Command,
        processor: Processor,
    ) -> Result<Option<Response>, ErrorCode> {
        self.drain_battery();
        match *command {
            // api_and_shell, system_info, connection
            Command::Echo(data) => Ok(Some(Response::Echo(data))),
            Command::GetMainApplicationVersion => self.main_application_version(processor),
            Command::GetBootloaderVersion => self.bootloader_version(processor),
            Command::GetBoardRevision => self.board_revision(),
            Command::GetMacAddress => self.mac_address(),
            Command::GetStatsId => self.stats_id(),
            Command::GetProcessorName => self.processor_name(processor),
            Command::GetSku => self.sku(),
            Command::GetCoreUpTimeInMilliseconds => self.core_up_time(),
            Command::GetBluetoothAdvertisingName => self.bluetooth_name(),
            // power
            Command::Sleep => self.sleep(),
            Command::Wake => self.wake(),
            Command::GetBatteryPercentage => self.battery_percentage(),
            Command::GetBatteryVoltageState => self.battery_voltage_state(),
            Command::EnableBatteryVoltageStateChangeNotify { enabled } => {
                self.enable(|n| n.battery_voltage_state = enabled)
            }
            Command::GetBatteryVoltageInVolts { reading } => self.battery_voltage(reading),
            Command::GetBatteryVoltageStateThresholds => self.battery_thresholds(),
            Command::GetCurrentSenseAmplifierCurrent { motor } => self.motor_current(motor),
            // drive
            Command::RawMotors {
                left_mode,
                left_duty,
                right_mode,
                right_duty,
            } => self.raw_motors(left_mode, left_duty, right_mode, right_duty),
            Command::ResetYaw => self.reset_yaw(),
            Command::DriveWithHeading {
                speed,
                heading_deg,
                flags,
            } => self.drive_with_heading(speed, heading_deg, flags),
            Command::SetCustomControlSystemTimeout { timeout_ms } => {
                self.set_control_timeout(timeout_ms)
            }
            Command::EnableMotorStallNotify { enabled } => self.enable(|n| n.motor_stall = enabled),
            Command::EnableMotorFaultNotify { enabled } => self.enable(|n| n.motor_fault = enabled),
            Command::GetMotorFaultState => self.motor_fault_state(),
            Command::DriveTankSi {
                left_mps,
                right_mps,
            } => self.drive_tank_si(left_mps, right_mps),
            Command::DriveTankNormalized { left, right } => self.drive_tank_normalized(left, right),
            Command::DriveRcSi {
                yaw_rate_dps,
                linear_mps,
                ..
            } => self.drive_rc_si(yaw_rate_dps, linear_mps),
            Command::DriveRcNormalized {
                yaw_rate, linear, ..
            } => self.drive_rc_normalized(yaw_rate, linear),
            Command::DriveWithYawSi {
                yaw_deg,
                linear_mps,
            } => self.drive_with_yaw_si(yaw_deg, linear_mps),
            Command::DriveToPositionSi { .. } => Err(ErrorCode::NotYetImplemented),
            Command::DriveStop | Command::DriveStopCustomDecel { .. } => self.drive_stop(),
            Command::GetStopControllerState => self.stop_controller_state(),
            Command::RestoreDefaultControlSystemTimeout => self.restore_control_timeout(),
            // sensor
            Command::EnableGyroMaxNotify { enabled } => self.enable(|n| n.gyro_max = enabled),
            Command::ResetLocatorXy => self.reset_locator(),
            Command::SetLocatorFlags(flags) => self.set_locator_flags(flags),
            Command::GetBotToBotInfraredReadings => self.infrared_readings(),
            Command::StartInfraredBroadcasting {
                far_code,
                near_code,
            } => self.infrared_mode(far_code, near_code, |ir, codes| ir.broadcasting = codes),
            Command::StartInfraredFollowing {
                far_code,
                near_code,
            } => self.infrared_mode(far_code, near_code, |ir, codes| ir.following = codes),
            Command::StartInfraredEvading {
                far_code,
                near_code,
            } => self.infrared_mode(far_code, near_code, |ir, codes| ir.evading = codes),
            Command::StopInfraredBroadcasting => self.infrared_stop(|ir| ir.broadcasting = None),
            Command::StopInfraredFollowing => self.infrared_stop(|ir| ir.following = None),
            Command::StopInfraredEvading => self.infrared_stop(|ir| ir.evading = None),
            Command::EnableRobotInfraredMessageNotify { enabled } => {
                self.enable(|n| n.infrared_message = enabled)
            }
            Command::SendInfraredMessage {
                code,
                front_strength,
                left_strength,
                right_strength,
                rear_strength,
            } => self.send_infrared(
                code,
                [front_strength, left_strength, right_strength, rear_strength],
            ),
            Command::GetAmbientLightSensorValue => self.ambient_light(),
            Command::GetRgbcSensorValues => self.rgbc(),
            Command::EnableColorDetection { enabled } => self.enable_color_detection(enabled),
            Command::EnableColorDetectionNotify {
                enabled,
                interval_ms,
                min_confidence,
            } => self.enable_color_notify(enabled, interval_ms, min_confidence),
            Command::GetCurrentDetectedColorReading => self.current_color_reading(),
            Command::ConfigureStreaming(config) => self.configure_streaming(config, processor),
            Command::StartStreaming { period_ms } => self.start_streaming(period_ms, processor),
            Command::StopStreaming => self.stop_streaming(processor),
            Command::ClearStreaming => self.clear_streaming(processor),
            Command::GetMotorTemperature { motor } => self.motor_temperature(motor),
            Command::GetMotorThermalProtectionStatus => self.thermal_status(),
            Command::EnableMotorThermalProtectionStatusNotify { enabled } => {
                self.enable(|n| n.thermal_protection = enabled)
            }
            Command::GetMagnetometerReading => Err(ErrorCode::NotYetImplemented),
            Command::GetEncoderCounts => self.encoder_counts(),
            // io
            Command::SetAllLeds(leds) => self.set_leds(&leds),
            Command::ReleaseLedRequests => self.release_leds(),
            Command::GetActiveColorPalette => self.active_palette(),
            Command::SetActiveColorPalette(palette) => self.set_active_palette(&palette),
            Command::GetColorIdentificationReport {
                red,
                green,
                blue,
                confidence_threshold,
            } => self.identification_report([red, green, blue], confidence_threshold),
            Command::LoadColorPalette { index } => self.load_palette(index),
            Command::SaveColorPalette { index } => self.save_palette(index),
        }
    }

    /// Turns a notification on or off.
    fn enable(&self, f: impl FnOnce(&mut NotifyEnables)) -> Result<Option<Response>, ErrorCode> {
        f(&mut self.state.borrow_mut().notify);
        Ok(None)
    }
}

/// Whether `processor` serves the command in `header`: bad command id if it
/// serves other commands of that device, else bad device id (assumed). Ids
/// no processor knows are left to the decoder.
fn served(header: &Header, processor: Processor) -> Result<(), ErrorCode> {
    let ids = (header.device_id, header.command_id);
    let Some(spec) = COMMANDS.iter().find(|s| (s.device_id, s.command_id) == ids) else {
        return Ok(());
    };
    if spec.served_by.serves(processor) {
        return Ok(());
    }
    let serves_device = COMMANDS
        .iter()
        .any(|s| s.device_id == header.device_id && s.served_by.serves(processor));
    if serves_device {
        Err(ErrorCode::BadCommandId)
    } else {
        Err(ErrorCode::BadDeviceId)
    }
}

impl TreadMarks {
    fn of(body: &RvrBody) -> TreadMarks {
        let d = body.drive();
        TreadMarks {
            abs_travel_m: d.abs_travel_m,
            force_impulse_ns: d.force_impulse_ns,
        }
    }
}

impl TwinState {
    /// Battery charge, percent.
    fn charge_pct(&self) -> f32 {
        (self.electrical.charge_mah / f64::from(self.config.battery_mah) * 100.0) as f32
    }
}
