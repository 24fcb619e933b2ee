//! Typed commands (host -> robot), both directions: encode for the bridge,
//! decode for the twin.
//!
//! [`COMMANDS`] is the command table: one row per command with its ids, the
//! processor(s) that serve it, and its request and response lengths. Every
//! (DID, CID) lookup, routing decision and length check reads it. The table
//! covers the Python SDK 0.3.4's 55 host commands (its other 10 entries are
//! notifications, see [`crate::notification`]) plus the drive and sensor
//! commands of the newer SDK on GitHub that the bridge uses.

use crate::constants::{
    api_and_shell, connection, device, drive, io, power, sensor, streaming, system_info, text,
};
use crate::error::{DecodeError, EncodeError};
use crate::packet::{AddressStyle, Header, Packet, Processor};
use crate::streaming::StreamingConfig;
use crate::values::{ColorPalette, EchoData, LedValues, LocatorFlags, Motor};
use crate::wire::{Reader, Writer};

/// Raw-motor mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MotorMode {
    Off,
    Forward,
    Reverse,
}

impl MotorMode {
    pub const fn code(self) -> u8 {
        match self {
            MotorMode::Off => drive::MOTOR_MODE_OFF,
            MotorMode::Forward => drive::MOTOR_MODE_FORWARD,
            MotorMode::Reverse => drive::MOTOR_MODE_REVERSE,
        }
    }

    pub const fn from_code(code: u8) -> Option<MotorMode> {
        match code {
            drive::MOTOR_MODE_OFF => Some(MotorMode::Off),
            drive::MOTOR_MODE_FORWARD => Some(MotorMode::Forward),
            drive::MOTOR_MODE_REVERSE => Some(MotorMode::Reverse),
            _ => None,
        }
    }
}

/// Flags of `drive_with_heading` (bits 0-5; undefined bits are rejected).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeadingFlags(u8);

impl HeadingFlags {
    pub const NONE: HeadingFlags = HeadingFlags(0);
    pub const REVERSE: HeadingFlags = HeadingFlags(drive::HEADING_FLAG_REVERSE);
    pub const BOOST: HeadingFlags = HeadingFlags(drive::HEADING_FLAG_BOOST);
    pub const FAST_TURN: HeadingFlags = HeadingFlags(drive::HEADING_FLAG_FAST_TURN);
    pub const LEFT_DIRECTION: HeadingFlags = HeadingFlags(drive::HEADING_FLAG_LEFT_DIRECTION);
    pub const RIGHT_DIRECTION: HeadingFlags = HeadingFlags(drive::HEADING_FLAG_RIGHT_DIRECTION);
    pub const ENABLE_DRIFT: HeadingFlags = HeadingFlags(drive::HEADING_FLAG_ENABLE_DRIFT);

    /// `None` if an undefined bit is set (**assumed** invalid).
    pub const fn from_bits(bits: u8) -> Option<HeadingFlags> {
        if bits & !drive::HEADING_FLAGS_DEFINED == 0 {
            Some(HeadingFlags(bits))
        } else {
            None
        }
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, other: HeadingFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for HeadingFlags {
    type Output = HeadingFlags;
    fn bitor(self, rhs: HeadingFlags) -> HeadingFlags {
        HeadingFlags(self.0 | rhs.0)
    }
}

/// Flags of the RC drive commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RcFlags {
    /// Slew the linear velocity (bit 0).
    pub slew_linear_velocity: bool,
}

impl RcFlags {
    pub const fn bits(self) -> u8 {
        if self.slew_linear_velocity {
            drive::RC_FLAG_SLEW_LINEAR_VELOCITY
        } else {
            0
        }
    }

    /// `None` if an undefined bit is set (**assumed** invalid).
    pub const fn from_bits(bits: u8) -> Option<RcFlags> {
        if bits & !drive::RC_FLAGS_DEFINED != 0 {
            return None;
        }
        Some(RcFlags {
            slew_linear_velocity: bits & drive::RC_FLAG_SLEW_LINEAR_VELOCITY != 0,
        })
    }
}

/// Direction field of the XY-drive flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum XyDirection {
    #[default]
    Forward,
    ForceReverse,
    AutoReverse,
}

/// Flags of `drive_to_position_*`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct XyDriveFlags {
    pub direction: XyDirection,
    /// The target is relative to the current position.
    pub relative: bool,
}

impl XyDriveFlags {
    pub const fn bits(self) -> u8 {
        let direction = match self.direction {
            XyDirection::Forward => drive::XY_DIRECTION_FORWARD,
            XyDirection::ForceReverse => drive::XY_DIRECTION_FORCE_REVERSE,
            XyDirection::AutoReverse => drive::XY_DIRECTION_AUTO_REVERSE,
        };
        direction
            | if self.relative {
                drive::XY_FLAG_RELATIVE
            } else {
                0
            }
    }

    /// `None` for the reserved direction 3 (the firmware answers it with an
    /// error) or an undefined bit (**assumed** invalid).
    pub const fn from_bits(bits: u8) -> Option<XyDriveFlags> {
        if bits & !drive::XY_FLAGS_DEFINED != 0 {
            return None;
        }
        let direction = match bits & drive::XY_DIRECTION_MASK {
            drive::XY_DIRECTION_FORWARD => XyDirection::Forward,
            drive::XY_DIRECTION_FORCE_REVERSE => XyDirection::ForceReverse,
            drive::XY_DIRECTION_AUTO_REVERSE => XyDirection::AutoReverse,
            _ => return None,
        };
        Some(XyDriveFlags {
            direction,
            relative: bits & drive::XY_FLAG_RELATIVE != 0,
        })
    }
}

/// Reading type of `get_battery_voltage_in_volts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoltageReading {
    CalibratedFiltered,
    CalibratedUnfiltered,
    UncalibratedUnfiltered,
}

impl VoltageReading {
    pub const fn code(self) -> u8 {
        match self {
            VoltageReading::CalibratedFiltered => power::READING_CALIBRATED_FILTERED,
            VoltageReading::CalibratedUnfiltered => power::READING_CALIBRATED_UNFILTERED,
            VoltageReading::UncalibratedUnfiltered => power::READING_UNCALIBRATED_UNFILTERED,
        }
    }

    pub const fn from_code(code: u8) -> Option<VoltageReading> {
        match code {
            power::READING_CALIBRATED_FILTERED => Some(VoltageReading::CalibratedFiltered),
            power::READING_CALIBRATED_UNFILTERED => Some(VoltageReading::CalibratedUnfiltered),
            power::READING_UNCALIBRATED_UNFILTERED => Some(VoltageReading::UncalibratedUnfiltered),
            _ => None,
        }
    }
}

/// Which processor(s) serve a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServedBy {
    /// Only the Nordic processor (power, system info, LEDs, colour sensor).
    Nordic,
    /// Only the ST processor (drive, IMU, locator, motors, infrared).
    St,
    /// Either; the caller picks with the target id (echo, versions, streaming).
    Either,
}

impl ServedBy {
    /// `true` if `processor` serves the command.
    pub const fn serves(self, processor: Processor) -> bool {
        matches!(
            (self, processor),
            (ServedBy::Either, _)
                | (ServedBy::Nordic, Processor::Nordic)
                | (ServedBy::St, Processor::St)
        )
    }

    /// The one processor that serves it, if only one does.
    pub const fn only(self) -> Option<Processor> {
        match self {
            ServedBy::Nordic => Some(Processor::Nordic),
            ServedBy::St => Some(Processor::St),
            ServedBy::Either => None,
        }
    }
}

/// A payload length rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Len {
    /// Exactly this many bytes.
    Fixed(usize),
    /// Between `min` and `max` bytes; the typed decoder checks the details.
    Variable { min: usize, max: usize },
}

impl Len {
    /// `true` if `len` bytes can fit.
    pub const fn admits(self, len: usize) -> bool {
        match self {
            Len::Fixed(n) => len == n,
            Len::Variable { min, max } => len >= min && len <= max,
        }
    }

    /// The length, if it is fixed.
    pub const fn fixed(self) -> Option<usize> {
        match self {
            Len::Fixed(n) => Some(n),
            Len::Variable { .. } => None,
        }
    }
}

/// One row of the command table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    pub kind: CommandKind,
    /// The command's name in Sphero's API (the Python SDK's function name).
    pub name: &'static str,
    pub device_id: u8,
    pub command_id: u8,
    pub served_by: ServedBy,
    /// Payload of the command.
    pub request: Len,
    /// Payload of a successful response (`Fixed(0)`: no outputs).
    pub response: Len,
}

/// Which typed command a packet is: one per (DID, CID) pair this crate types,
/// numbered in the order of [`COMMANDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandKind {
    // api_and_shell
    Echo,
    // system_info
    GetMainApplicationVersion,
    GetBootloaderVersion,
    GetBoardRevision,
    GetMacAddress,
    GetStatsId,
    GetProcessorName,
    GetSku,
    GetCoreUpTimeInMilliseconds,
    // power
    Sleep,
    Wake,
    GetBatteryPercentage,
    GetBatteryVoltageState,
    EnableBatteryVoltageStateChangeNotify,
    GetBatteryVoltageInVolts,
    GetBatteryVoltageStateThresholds,
    GetCurrentSenseAmplifierCurrent,
    // drive
    RawMotors,
    ResetYaw,
    DriveWithHeading,
    SetCustomControlSystemTimeout,
    EnableMotorStallNotify,
    EnableMotorFaultNotify,
    GetMotorFaultState,
    DriveTankSi,
    DriveTankNormalized,
    DriveRcSi,
    DriveRcNormalized,
    DriveWithYawSi,
    DriveToPositionSi,
    DriveStopCustomDecel,
    GetStopControllerState,
    DriveStop,
    RestoreDefaultControlSystemTimeout,
    // sensor
    EnableGyroMaxNotify,
    ResetLocatorXy,
    SetLocatorFlags,
    GetBotToBotInfraredReadings,
    GetRgbcSensorValues,
    StartInfraredBroadcasting,
    StartInfraredFollowing,
    StopInfraredBroadcasting,
    GetAmbientLightSensorValue,
    StopInfraredFollowing,
    StartInfraredEvading,
    StopInfraredEvading,
    EnableColorDetectionNotify,
    GetCurrentDetectedColorReading,
    EnableColorDetection,
    ConfigureStreaming,
    StartStreaming,
    StopStreaming,
    ClearStreaming,
    EnableRobotInfraredMessageNotify,
    SendInfraredMessage,
    GetMotorTemperature,
    GetMotorThermalProtectionStatus,
    EnableMotorThermalProtectionStatusNotify,
    GetMagnetometerReading,
    GetEncoderCounts,
    // connection
    GetBluetoothAdvertisingName,
    // io
    SetAllLeds,
    GetActiveColorPalette,
    SetActiveColorPalette,
    GetColorIdentificationReport,
    LoadColorPalette,
    SaveColorPalette,
    ReleaseLedRequests,
}

/// Number of typed commands.
pub const COMMAND_COUNT: usize = 68;

const fn spec(
    kind: CommandKind,
    name: &'static str,
    (device_id, command_id): (u8, u8),
    served_by: ServedBy,
    request: Len,
    response: Len,
) -> CommandSpec {
    CommandSpec {
        kind,
        name,
        device_id,
        command_id,
        served_by,
        request,
        response,
    }
}

const fn upto(max: usize) -> Len {
    Len::Variable { min: 0, max }
}

const TEXT: Len = upto(text::MAX_TEXT_LEN);
const PALETTE: Len = upto(io::MAX_PALETTE_ENTRIES * io::PALETTE_ENTRY_LEN);
const NONE: Len = Len::Fixed(0);

/// The command table, in [`CommandKind`] order. Processors per the Python
/// SDK's `SpheroRvrAsync` (its hard-coded targets) and the fact sheet §4.
#[rustfmt::skip]
pub const COMMANDS: [CommandSpec; COMMAND_COUNT] = {
    use CommandKind as K;
    use Len::Fixed as F;
    use ServedBy::{Either, Nordic, St};
    let (api, sys, pw, dr, se, co, io_) = (
        device::API_AND_SHELL,
        device::SYSTEM_INFO,
        device::POWER,
        device::DRIVE,
        device::SENSOR,
        device::CONNECTION,
        device::IO,
    );
    [
        spec(K::Echo, "echo", (api, api_and_shell::ECHO), Either, upto(api_and_shell::ECHO_MAX_LEN), upto(api_and_shell::ECHO_MAX_LEN)),
        spec(K::GetMainApplicationVersion, "get_main_application_version", (sys, system_info::GET_MAIN_APPLICATION_VERSION), Either, NONE, F(6)),
        spec(K::GetBootloaderVersion, "get_bootloader_version", (sys, system_info::GET_BOOTLOADER_VERSION), Either, NONE, F(6)),
        spec(K::GetBoardRevision, "get_board_revision", (sys, system_info::GET_BOARD_REVISION), Nordic, NONE, F(1)),
        spec(K::GetMacAddress, "get_mac_address", (sys, system_info::GET_MAC_ADDRESS), Nordic, NONE, TEXT),
        spec(K::GetStatsId, "get_stats_id", (sys, system_info::GET_STATS_ID), Nordic, NONE, F(2)),
        spec(K::GetProcessorName, "get_processor_name", (sys, system_info::GET_PROCESSOR_NAME), Either, NONE, TEXT),
        spec(K::GetSku, "get_sku", (sys, system_info::GET_SKU), Nordic, NONE, TEXT),
        spec(K::GetCoreUpTimeInMilliseconds, "get_core_up_time_in_milliseconds", (sys, system_info::GET_CORE_UP_TIME_IN_MILLISECONDS), Nordic, NONE, F(8)),
        spec(K::Sleep, "sleep", (pw, power::SLEEP), Nordic, NONE, NONE),
        spec(K::Wake, "wake", (pw, power::WAKE), Nordic, NONE, NONE),
        spec(K::GetBatteryPercentage, "get_battery_percentage", (pw, power::GET_BATTERY_PERCENTAGE), Nordic, NONE, F(1)),
        spec(K::GetBatteryVoltageState, "get_battery_voltage_state", (pw, power::GET_BATTERY_VOLTAGE_STATE), Nordic, NONE, F(1)),
        spec(K::EnableBatteryVoltageStateChangeNotify, "enable_battery_voltage_state_change_notify", (pw, power::ENABLE_BATTERY_VOLTAGE_STATE_CHANGE_NOTIFY), Nordic, F(1), NONE),
        spec(K::GetBatteryVoltageInVolts, "get_battery_voltage_in_volts", (pw, power::GET_BATTERY_VOLTAGE_IN_VOLTS), Nordic, F(1), F(4)),
        spec(K::GetBatteryVoltageStateThresholds, "get_battery_voltage_state_thresholds", (pw, power::GET_BATTERY_VOLTAGE_STATE_THRESHOLDS), Nordic, NONE, F(12)),
        spec(K::GetCurrentSenseAmplifierCurrent, "get_current_sense_amplifier_current", (pw, power::GET_CURRENT_SENSE_AMPLIFIER_CURRENT), Nordic, F(1), F(4)),
        spec(K::RawMotors, "raw_motors", (dr, drive::RAW_MOTORS), St, F(4), NONE),
        spec(K::ResetYaw, "reset_yaw", (dr, drive::RESET_YAW), St, NONE, NONE),
        spec(K::DriveWithHeading, "drive_with_heading", (dr, drive::DRIVE_WITH_HEADING), St, F(4), NONE),
        spec(K::SetCustomControlSystemTimeout, "set_custom_control_system_timeout", (dr, drive::SET_CUSTOM_CONTROL_SYSTEM_TIMEOUT), St, F(2), NONE),
        spec(K::EnableMotorStallNotify, "enable_motor_stall_notify", (dr, drive::ENABLE_MOTOR_STALL_NOTIFY), St, F(1), NONE),
        spec(K::EnableMotorFaultNotify, "enable_motor_fault_notify", (dr, drive::ENABLE_MOTOR_FAULT_NOTIFY), St, F(1), NONE),
        spec(K::GetMotorFaultState, "get_motor_fault_state", (dr, drive::GET_MOTOR_FAULT_STATE), St, NONE, F(1)),
        spec(K::DriveTankSi, "drive_tank_si_units", (dr, drive::DRIVE_TANK_SI_UNITS), St, F(8), NONE),
        spec(K::DriveTankNormalized, "drive_tank_normalized", (dr, drive::DRIVE_TANK_NORMALIZED), St, F(2), NONE),
        spec(K::DriveRcSi, "drive_rc_si_units", (dr, drive::DRIVE_RC_SI_UNITS), St, F(9), NONE),
        spec(K::DriveRcNormalized, "drive_rc_normalized", (dr, drive::DRIVE_RC_NORMALIZED), St, F(3), NONE),
        spec(K::DriveWithYawSi, "drive_with_yaw_si", (dr, drive::DRIVE_WITH_YAW_SI), St, F(8), NONE),
        spec(K::DriveToPositionSi, "drive_to_position_si", (dr, drive::DRIVE_TO_POSITION_SI), St, F(17), NONE),
        spec(K::DriveStopCustomDecel, "drive_stop_custom_decel", (dr, drive::DRIVE_STOP_CUSTOM_DECEL), St, F(4), NONE),
        spec(K::GetStopControllerState, "get_stop_controller_state", (dr, drive::GET_STOP_CONTROLLER_STATE), St, NONE, F(1)),
        spec(K::DriveStop, "drive_stop", (dr, drive::DRIVE_STOP), St, NONE, NONE),
        spec(K::RestoreDefaultControlSystemTimeout, "restore_default_control_system_timeout", (dr, drive::RESTORE_DEFAULT_CONTROL_SYSTEM_TIMEOUT), St, NONE, NONE),
        spec(K::EnableGyroMaxNotify, "enable_gyro_max_notify", (se, sensor::ENABLE_GYRO_MAX_NOTIFY), St, F(1), NONE),
        spec(K::ResetLocatorXy, "reset_locator_x_and_y", (se, sensor::RESET_LOCATOR_X_AND_Y), St, NONE, NONE),
        spec(K::SetLocatorFlags, "set_locator_flags", (se, sensor::SET_LOCATOR_FLAGS), St, F(1), NONE),
        spec(K::GetBotToBotInfraredReadings, "get_bot_to_bot_infrared_readings", (se, sensor::GET_BOT_TO_BOT_INFRARED_READINGS), St, NONE, F(4)),
        spec(K::GetRgbcSensorValues, "get_rgbc_sensor_values", (se, sensor::GET_RGBC_SENSOR_VALUES), Nordic, NONE, F(8)),
        spec(K::StartInfraredBroadcasting, "start_robot_to_robot_infrared_broadcasting", (se, sensor::START_ROBOT_TO_ROBOT_INFRARED_BROADCASTING), St, F(2), NONE),
        spec(K::StartInfraredFollowing, "start_robot_to_robot_infrared_following", (se, sensor::START_ROBOT_TO_ROBOT_INFRARED_FOLLOWING), St, F(2), NONE),
        spec(K::StopInfraredBroadcasting, "stop_robot_to_robot_infrared_broadcasting", (se, sensor::STOP_ROBOT_TO_ROBOT_INFRARED_BROADCASTING), St, NONE, NONE),
        spec(K::GetAmbientLightSensorValue, "get_ambient_light_sensor_value", (se, sensor::GET_AMBIENT_LIGHT_SENSOR_VALUE), Nordic, NONE, F(4)),
        spec(K::StopInfraredFollowing, "stop_robot_to_robot_infrared_following", (se, sensor::STOP_ROBOT_TO_ROBOT_INFRARED_FOLLOWING), St, NONE, NONE),
        spec(K::StartInfraredEvading, "start_robot_to_robot_infrared_evading", (se, sensor::START_ROBOT_TO_ROBOT_INFRARED_EVADING), St, F(2), NONE),
        spec(K::StopInfraredEvading, "stop_robot_to_robot_infrared_evading", (se, sensor::STOP_ROBOT_TO_ROBOT_INFRARED_EVADING), St, NONE, NONE),
        spec(K::EnableColorDetectionNotify, "enable_color_detection_notify", (se, sensor::ENABLE_COLOR_DETECTION_NOTIFY), Nordic, F(4), NONE),
        spec(K::GetCurrentDetectedColorReading, "get_current_detected_color_reading", (se, sensor::GET_CURRENT_DETECTED_COLOR_READING), Nordic, NONE, NONE),
        spec(K::EnableColorDetection, "enable_color_detection", (se, sensor::ENABLE_COLOR_DETECTION), Nordic, F(1), NONE),
        spec(K::ConfigureStreaming, "configure_streaming_service", (se, sensor::CONFIGURE_STREAMING_SERVICE), Either, Len::Variable { min: 1, max: 1 + streaming::MAX_CONFIG_BYTES }, NONE),
        spec(K::StartStreaming, "start_streaming_service", (se, sensor::START_STREAMING_SERVICE), Either, F(2), NONE),
        spec(K::StopStreaming, "stop_streaming_service", (se, sensor::STOP_STREAMING_SERVICE), Either, NONE, NONE),
        spec(K::ClearStreaming, "clear_streaming_service", (se, sensor::CLEAR_STREAMING_SERVICE), Either, NONE, NONE),
        spec(K::EnableRobotInfraredMessageNotify, "enable_robot_infrared_message_notify", (se, sensor::ENABLE_ROBOT_INFRARED_MESSAGE_NOTIFY), St, F(1), NONE),
        spec(K::SendInfraredMessage, "send_infrared_message", (se, sensor::SEND_INFRARED_MESSAGE), St, F(5), NONE),
        spec(K::GetMotorTemperature, "get_motor_temperature", (se, sensor::GET_MOTOR_TEMPERATURE), St, F(1), F(8)),
        spec(K::GetMotorThermalProtectionStatus, "get_motor_thermal_protection_status", (se, sensor::GET_MOTOR_THERMAL_PROTECTION_STATUS), St, NONE, F(10)),
        spec(K::EnableMotorThermalProtectionStatusNotify, "enable_motor_thermal_protection_status_notify", (se, sensor::ENABLE_MOTOR_THERMAL_PROTECTION_STATUS_NOTIFY), St, F(1), NONE),
        spec(K::GetMagnetometerReading, "get_magnetometer_reading", (se, sensor::GET_MAGNETOMETER_READING), St, NONE, F(12)),
        spec(K::GetEncoderCounts, "get_encoder_counts", (se, sensor::GET_ENCODER_COUNTS), St, NONE, F(8)),
        spec(K::GetBluetoothAdvertisingName, "get_bluetooth_advertising_name", (co, connection::GET_BLUETOOTH_ADVERTISING_NAME), Nordic, NONE, TEXT),
        spec(K::SetAllLeds, "set_all_leds", (io_, io::SET_ALL_LEDS), Nordic, Len::Variable { min: 4, max: 4 + io::MAX_LED_VALUES }, NONE),
        spec(K::GetActiveColorPalette, "get_active_color_palette", (io_, io::GET_ACTIVE_COLOR_PALETTE), Nordic, NONE, PALETTE),
        spec(K::SetActiveColorPalette, "set_active_color_palette", (io_, io::SET_ACTIVE_COLOR_PALETTE), Nordic, PALETTE, NONE),
        spec(K::GetColorIdentificationReport, "get_color_identification_report", (io_, io::GET_COLOR_IDENTIFICATION_REPORT), Nordic, F(4), upto(io::MAX_PALETTE_ENTRIES * io::REPORT_ENTRY_LEN)),
        spec(K::LoadColorPalette, "load_color_palette", (io_, io::LOAD_COLOR_PALETTE), Nordic, F(1), NONE),
        spec(K::SaveColorPalette, "save_color_palette", (io_, io::SAVE_COLOR_PALETTE), Nordic, F(1), NONE),
        spec(K::ReleaseLedRequests, "release_led_requests", (io_, io::RELEASE_LED_REQUESTS), Nordic, NONE, NONE),
    ]
};

impl CommandKind {
    /// Every typed command, in table order.
    pub const ALL: [CommandKind; COMMAND_COUNT] = {
        let mut all = [CommandKind::Echo; COMMAND_COUNT];
        let mut i = 0;
        while i < COMMAND_COUNT {
            all[i] = COMMANDS[i].kind;
            i += 1;
        }
        all
    };

    /// Its row of [`COMMANDS`].
    pub const fn spec(self) -> &'static CommandSpec {
        // Invariant checked by a unit test: row i describes kind i.
        &COMMANDS[self as usize]
    }

    /// (DID, CID) on the wire.
    pub const fn ids(self) -> (u8, u8) {
        let s = self.spec();
        (s.device_id, s.command_id)
    }

    /// The device id.
    pub const fn device_id(self) -> u8 {
        self.spec().device_id
    }

    /// The command id.
    pub const fn command_id(self) -> u8 {
        self.spec().command_id
    }

    /// The command's name in Sphero's API.
    pub const fn name(self) -> &'static str {
        self.spec().name
    }

    /// The typed command with these ids, or why there is none
    /// ([`DecodeError::UnknownDevice`] / [`DecodeError::UnknownCommand`]).
    pub fn from_ids(device_id: u8, command_id: u8) -> Result<CommandKind, DecodeError> {
        if let Some(spec) = COMMANDS
            .iter()
            .find(|s| (s.device_id, s.command_id) == (device_id, command_id))
        {
            return Ok(spec.kind);
        }
        if COMMANDS.iter().any(|s| s.device_id == device_id) {
            Err(DecodeError::UnknownCommand {
                device_id,
                command_id,
            })
        } else {
            Err(DecodeError::UnknownDevice { device_id })
        }
    }

    /// The processor that serves it: the only one for single-processor
    /// commands, else the device's default ([`Processor::default_for`]:
    /// Nordic for system info, ST for the streaming commands and for echo,
    /// whose device has no default). Use [`Command::to_packet_for`] to pick
    /// the other.
    pub fn default_processor(self) -> Processor {
        let (did, cid) = self.ids();
        Processor::default_for(did, cid).unwrap_or(Processor::St)
    }

    /// Payload length of the command, or `None` if it varies.
    pub const fn payload_len(self) -> Option<usize> {
        self.spec().request.fixed()
    }

    /// Payload length of a successful response, or `None` if it varies.
    pub const fn response_payload_len(self) -> Option<usize> {
        self.spec().response.fixed()
    }

    /// `true` if a successful response carries data (so the Python SDK asks
    /// for a response).
    pub const fn has_outputs(self) -> bool {
        !matches!(self.spec().response, Len::Fixed(0))
    }
}

/// A typed command. Field units are in the names: `_mps` m/s, `_dps` deg/s,
/// `_deg` degrees, `_m` metres, `_mps2` m/s², `_ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    /// API and shell: echo the data back (up to 16 bytes; either processor).
    Echo(EchoData),
    /// System info: main application version (either processor).
    GetMainApplicationVersion,
    /// System info: bootloader version (either processor).
    GetBootloaderVersion,
    /// System info: board revision (Nordic).
    GetBoardRevision,
    /// System info: MAC address as text (Nordic).
    GetMacAddress,
    /// System info: id for activation tracking (Nordic).
    GetStatsId,
    /// System info: processor name (either processor).
    GetProcessorName,
    /// System info: the robot's SKU (Nordic).
    GetSku,
    /// System info: milliseconds since power-on (Nordic).
    GetCoreUpTimeInMilliseconds,
    /// Power: sleep (Nordic).
    Sleep,
    /// Power: wake (Nordic). The SDKs wait 2 s after it before driving.
    Wake,
    /// Power: battery percentage, 0-100 (Nordic).
    GetBatteryPercentage,
    /// Power: battery voltage state (Nordic).
    GetBatteryVoltageState,
    /// Power: notify battery voltage state changes (Nordic).
    EnableBatteryVoltageStateChangeNotify { enabled: bool },
    /// Power: battery voltage in volts (Nordic).
    GetBatteryVoltageInVolts { reading: VoltageReading },
    /// Power: voltage state thresholds and hysteresis (Nordic).
    GetBatteryVoltageStateThresholds,
    /// Power: a motor's current in amps (Nordic).
    GetCurrentSenseAmplifierCurrent { motor: Motor },
    /// Drive: raw motor duty, 0-255 per side.
    RawMotors {
        left_mode: MotorMode,
        left_duty: u8,
        right_mode: MotorMode,
        right_duty: u8,
    },
    /// Drive: the current heading becomes yaw 0.
    ResetYaw,
    /// Drive: speed 0-255 along a compass-like heading (0 forward, 90 right;
    /// documented 0-359, not enforced here).
    DriveWithHeading {
        speed: u8,
        heading_deg: u16,
        flags: HeadingFlags,
    },
    /// Drive: command timeout of the drive controllers (default 2000 ms).
    SetCustomControlSystemTimeout { timeout_ms: u16 },
    /// Drive: notify motor stall protection changes.
    EnableMotorStallNotify { enabled: bool },
    /// Drive: notify motor faults.
    EnableMotorFaultNotify { enabled: bool },
    /// Drive: is there a motor fault?
    GetMotorFaultState,
    /// Drive: tank drive, tread velocities in m/s (about ±1.555 achievable).
    DriveTankSi { left_mps: f32, right_mps: f32 },
    /// Drive: tank drive, -127..127 per tread.
    DriveTankNormalized { left: i8, right: i8 },
    /// Drive: RC drive; yaw rate (deg/s, positive left) comes first on the wire.
    DriveRcSi {
        yaw_rate_dps: f32,
        linear_mps: f32,
        flags: RcFlags,
    },
    /// Drive: RC drive, normalised -127..127.
    DriveRcNormalized {
        yaw_rate: i8,
        linear: i8,
        flags: RcFlags,
    },
    /// Drive: hold a yaw angle (deg, positive left) at a linear velocity.
    DriveWithYawSi { yaw_deg: f32, linear_mps: f32 },
    /// Drive: go to (x, y) in the locator frame and end at `yaw_deg`.
    DriveToPositionSi {
        yaw_deg: f32,
        x_m: f32,
        y_m: f32,
        speed_mps: f32,
        flags: XyDriveFlags,
    },
    /// Drive: stop with a custom deceleration.
    DriveStopCustomDecel { decel_mps2: f32 },
    /// Drive: is the stop controller active?
    GetStopControllerState,
    /// Drive: decelerating stop at the default 2 m/s².
    DriveStop,
    /// Drive: command timeout back to 2000 ms.
    RestoreDefaultControlSystemTimeout,
    /// Sensor: notify when a rotation rate goes beyond the gyro's range.
    EnableGyroMaxNotify { enabled: bool },
    /// Sensor: locator X and Y back to 0.
    ResetLocatorXy,
    /// Sensor: locator flags.
    SetLocatorFlags(LocatorFlags),
    /// Sensor: what the four infrared receivers see.
    GetBotToBotInfraredReadings,
    /// Sensor: raw colour sensor channels (Nordic).
    GetRgbcSensorValues,
    /// Sensor: broadcast infrared codes (0-7) for other robots to follow.
    StartInfraredBroadcasting { far_code: u8, near_code: u8 },
    /// Sensor: follow a robot broadcasting these codes.
    StartInfraredFollowing { far_code: u8, near_code: u8 },
    /// Sensor: stop broadcasting.
    StopInfraredBroadcasting,
    /// Sensor: ambient light in lux (Nordic).
    GetAmbientLightSensorValue,
    /// Sensor: stop following.
    StopInfraredFollowing,
    /// Sensor: evade a robot broadcasting these codes.
    StartInfraredEvading { far_code: u8, near_code: u8 },
    /// Sensor: stop evading.
    StopInfraredEvading,
    /// Sensor: colour detection notifications every `interval_ms` when the
    /// confidence reaches `min_confidence` (0-255) (Nordic).
    EnableColorDetectionNotify {
        enabled: bool,
        interval_ms: u16,
        min_confidence: u8,
    },
    /// Sensor: measure the colour now; the answer is a colour detection
    /// notification (Nordic).
    GetCurrentDetectedColorReading,
    /// Sensor: colour detection on or off (Nordic).
    EnableColorDetection { enabled: bool },
    /// Sensor: configure a streaming slot on the addressed processor.
    ConfigureStreaming(StreamingConfig),
    /// Sensor: start streaming every configured slot of the addressed
    /// processor (the SDKs refuse periods below 33 ms; not enforced here).
    StartStreaming { period_ms: u16 },
    /// Sensor: stop streaming.
    StopStreaming,
    /// Sensor: stop streaming and clear the slots.
    ClearStreaming,
    /// Sensor: notify infrared messages from other robots.
    EnableRobotInfraredMessageNotify { enabled: bool },
    /// Sensor: send an infrared code (0-7) at a strength (0-64) per emitter.
    SendInfraredMessage {
        code: u8,
        front_strength: u8,
        left_strength: u8,
        right_strength: u8,
        rear_strength: u8,
    },
    /// Sensor: a motor's winding and case temperatures.
    GetMotorTemperature { motor: Motor },
    /// Sensor: motor temperatures and thermal protection status.
    GetMotorThermalProtectionStatus,
    /// Sensor: notify thermal protection status changes.
    EnableMotorThermalProtectionStatusNotify { enabled: bool },
    /// Sensor: magnetometer x, y, z.
    GetMagnetometerReading,
    /// Sensor: left and right encoder counts.
    GetEncoderCounts,
    /// Connection: the Bluetooth advertising name (Nordic).
    GetBluetoothAdvertisingName,
    /// IO: set the LEDs of a mask (Nordic).
    SetAllLeds(LedValues),
    /// IO: the active colour palette (Nordic).
    GetActiveColorPalette,
    /// IO: replace the active colour palette (Nordic).
    SetActiveColorPalette(ColorPalette),
    /// IO: which palette entries a colour matches above a threshold (Nordic).
    GetColorIdentificationReport {
        red: u8,
        green: u8,
        blue: u8,
        confidence_threshold: u8,
    },
    /// IO: make a stored palette the active one (Nordic).
    LoadColorPalette { index: u8 },
    /// IO: store the active palette (Nordic).
    SaveColorPalette { index: u8 },
    /// IO: give the LEDs back to the robot's idle indication (Nordic).
    ReleaseLedRequests,
}

impl Command {
    /// Which command this is.
    pub const fn kind(&self) -> CommandKind {
        use CommandKind as K;
        match self {
            Command::Echo(_) => K::Echo,
            Command::GetMainApplicationVersion => K::GetMainApplicationVersion,
            Command::GetBootloaderVersion => K::GetBootloaderVersion,
            Command::GetBoardRevision => K::GetBoardRevision,
            Command::GetMacAddress => K::GetMacAddress,
            Command::GetStatsId => K::GetStatsId,
            Command::GetProcessorName => K::GetProcessorName,
            Command::GetSku => K::GetSku,
            Command::GetCoreUpTimeInMilliseconds => K::GetCoreUpTimeInMilliseconds,
            Command::Sleep => K::Sleep,
            Command::Wake => K::Wake,
            Command::GetBatteryPercentage => K::GetBatteryPercentage,
            Command::GetBatteryVoltageState => K::GetBatteryVoltageState,
            Command::EnableBatteryVoltageStateChangeNotify { .. } => {
                K::EnableBatteryVoltageStateChangeNotify
            }
            Command::GetBatteryVoltageInVolts { .. } => K::GetBatteryVoltageInVolts,
            Command::GetBatteryVoltageStateThresholds => K::GetBatteryVoltageStateThresholds,
            Command::GetCurrentSenseAmplifierCurrent { .. } => K::GetCurrentSenseAmplifierCurrent,
            Command::RawMotors { .. } => K::RawMotors,
            Command::ResetYaw => K::ResetYaw,
            Command::DriveWithHeading { .. } => K::DriveWithHeading,
            Command::SetCustomControlSystemTimeout { .. } => K::SetCustomControlSystemTimeout,
            Command::EnableMotorStallNotify { .. } => K::EnableMotorStallNotify,
            Command::EnableMotorFaultNotify { .. } => K::EnableMotorFaultNotify,
            Command::GetMotorFaultState => K::GetMotorFaultState,
            Command::DriveTankSi { .. } => K::DriveTankSi,
            Command::DriveTankNormalized { .. } => K::DriveTankNormalized,
            Command::DriveRcSi { .. } => K::DriveRcSi,
            Command::DriveRcNormalized { .. } => K::DriveRcNormalized,
            Command::DriveWithYawSi { .. } => K::DriveWithYawSi,
            Command::DriveToPositionSi { .. } => K::DriveToPositionSi,
            Command::DriveStopCustomDecel { .. } => K::DriveStopCustomDecel,
            Command::GetStopControllerState => K::GetStopControllerState,
            Command::DriveStop => K::DriveStop,
            Command::RestoreDefaultControlSystemTimeout => K::RestoreDefaultControlSystemTimeout,
            Command::EnableGyroMaxNotify { .. } => K::EnableGyroMaxNotify,
            Command::ResetLocatorXy => K::ResetLocatorXy,
            Command::SetLocatorFlags(_) => K::SetLocatorFlags,
            Command::GetBotToBotInfraredReadings => K::GetBotToBotInfraredReadings,
            Command::GetRgbcSensorValues => K::GetRgbcSensorValues,
            Command::StartInfraredBroadcasting { .. } => K::StartInfraredBroadcasting,
            Command::StartInfraredFollowing { .. } => K::StartInfraredFollowing,
            Command::StopInfraredBroadcasting => K::StopInfraredBroadcasting,
            Command::GetAmbientLightSensorValue => K::GetAmbientLightSensorValue,
            Command::StopInfraredFollowing => K::StopInfraredFollowing,
            Command::StartInfraredEvading { .. } => K::StartInfraredEvading,
            Command::StopInfraredEvading => K::StopInfraredEvading,
            Command::EnableColorDetectionNotify { .. } => K::EnableColorDetectionNotify,
            Command::GetCurrentDetectedColorReading => K::GetCurrentDetectedColorReading,
            Command::EnableColorDetection { .. } => K::EnableColorDetection,
            Command::ConfigureStreaming(_) => K::ConfigureStreaming,
            Command::StartStreaming { .. } => K::StartStreaming,
            Command::StopStreaming => K::StopStreaming,
            Command::ClearStreaming => K::ClearStreaming,
            Command::EnableRobotInfraredMessageNotify { .. } => K::EnableRobotInfraredMessageNotify,
            Command::SendInfraredMessage { .. } => K::SendInfraredMessage,
            Command::GetMotorTemperature { .. } => K::GetMotorTemperature,
            Command::GetMotorThermalProtectionStatus => K::GetMotorThermalProtectionStatus,
            Command::EnableMotorThermalProtectionStatusNotify { .. } => {
                K::EnableMotorThermalProtectionStatusNotify
            }
            Command::GetMagnetometerReading => K::GetMagnetometerReading,
            Command::GetEncoderCounts => K::GetEncoderCounts,
            Command::GetBluetoothAdvertisingName => K::GetBluetoothAdvertisingName,
            Command::SetAllLeds(_) => K::SetAllLeds,
            Command::GetActiveColorPalette => K::GetActiveColorPalette,
            Command::SetActiveColorPalette(_) => K::SetActiveColorPalette,
            Command::GetColorIdentificationReport { .. } => K::GetColorIdentificationReport,
            Command::LoadColorPalette { .. } => K::LoadColorPalette,
            Command::SaveColorPalette { .. } => K::SaveColorPalette,
            Command::ReleaseLedRequests => K::ReleaseLedRequests,
        }
    }

    /// The packet for this command to its default processor
    /// ([`CommandKind::default_processor`]) in `style`, with that style's
    /// usual flags (see [`AddressStyle`]). Adjust `packet.header` afterwards
    /// to change flags.
    pub fn to_packet(&self, sequence: u8, style: AddressStyle) -> Result<Packet, EncodeError> {
        self.to_packet_for(sequence, style, self.kind().default_processor())
    }

    /// The packet for this command to `processor` in `style`.
    pub fn to_packet_for(
        &self,
        sequence: u8,
        style: AddressStyle,
        processor: Processor,
    ) -> Result<Packet, EncodeError> {
        let kind = self.kind();
        let (did, cid) = kind.ids();
        let header = style.command_header(processor, did, cid, sequence, kind.has_outputs());
        Ok(Packet::from_parts(header, self.payload()?))
    }

    fn payload(&self) -> Result<crate::packet::Payload, EncodeError> {
        let mut w = Writer::new();
        match *self {
            Command::GetMainApplicationVersion
            | Command::GetBootloaderVersion
            | Command::GetBoardRevision
            | Command::GetMacAddress
            | Command::GetStatsId
            | Command::GetProcessorName
            | Command::GetSku
            | Command::GetCoreUpTimeInMilliseconds
            | Command::Sleep
            | Command::Wake
            | Command::GetBatteryPercentage
            | Command::GetBatteryVoltageState
            | Command::GetBatteryVoltageStateThresholds
            | Command::ResetYaw
            | Command::GetMotorFaultState
            | Command::GetStopControllerState
            | Command::DriveStop
            | Command::RestoreDefaultControlSystemTimeout
            | Command::ResetLocatorXy
            | Command::GetBotToBotInfraredReadings
            | Command::GetRgbcSensorValues
            | Command::StopInfraredBroadcasting
            | Command::GetAmbientLightSensorValue
            | Command::StopInfraredFollowing
            | Command::StopInfraredEvading
            | Command::GetCurrentDetectedColorReading
            | Command::StopStreaming
            | Command::ClearStreaming
            | Command::GetMotorThermalProtectionStatus
            | Command::GetMagnetometerReading
            | Command::GetEncoderCounts
            | Command::GetBluetoothAdvertisingName
            | Command::GetActiveColorPalette
            | Command::ReleaseLedRequests => {}
            Command::Echo(ref data) => {
                w.bytes(data.as_slice())?;
            }
            Command::EnableBatteryVoltageStateChangeNotify { enabled }
            | Command::EnableMotorStallNotify { enabled }
            | Command::EnableMotorFaultNotify { enabled }
            | Command::EnableGyroMaxNotify { enabled }
            | Command::EnableColorDetection { enabled }
            | Command::EnableRobotInfraredMessageNotify { enabled }
            | Command::EnableMotorThermalProtectionStatusNotify { enabled } => {
                w.bool(enabled)?;
            }
            Command::GetBatteryVoltageInVolts { reading } => {
                w.u8(reading.code())?;
            }
            Command::GetCurrentSenseAmplifierCurrent { motor }
            | Command::GetMotorTemperature { motor } => {
                w.u8(motor.code())?;
            }
            Command::RawMotors {
                left_mode,
                left_duty,
                right_mode,
                right_duty,
            } => {
                w.u8(left_mode.code())?
                    .u8(left_duty)?
                    .u8(right_mode.code())?
                    .u8(right_duty)?;
            }
            Command::DriveWithHeading {
                speed,
                heading_deg,
                flags,
            } => {
                w.u8(speed)?.u16(heading_deg)?.u8(flags.bits())?;
            }
            Command::SetCustomControlSystemTimeout { timeout_ms } => {
                w.u16(timeout_ms)?;
            }
            Command::DriveTankSi {
                left_mps,
                right_mps,
            } => {
                w.f32(left_mps)?.f32(right_mps)?;
            }
            Command::DriveTankNormalized { left, right } => {
                w.i8(left)?.i8(right)?;
            }
            Command::DriveRcSi {
                yaw_rate_dps,
                linear_mps,
                flags,
            } => {
                w.f32(yaw_rate_dps)?.f32(linear_mps)?.u8(flags.bits())?;
            }
            Command::DriveRcNormalized {
                yaw_rate,
                linear,
                flags,
            } => {
                w.i8(yaw_rate)?.i8(linear)?.u8(flags.bits())?;
            }
            Command::DriveWithYawSi {
                yaw_deg,
                linear_mps,
            } => {
                w.f32(yaw_deg)?.f32(linear_mps)?;
            }
            Command::DriveToPositionSi {
                yaw_deg,
                x_m,
                y_m,
                speed_mps,
                flags,
            } => {
                w.f32(yaw_deg)?
                    .f32(x_m)?
                    .f32(y_m)?
                    .f32(speed_mps)?
                    .u8(flags.bits())?;
            }
            Command::DriveStopCustomDecel { decel_mps2 } => {
                w.f32(decel_mps2)?;
            }
            Command::SetLocatorFlags(flags) => {
                w.u8(flags.bits())?;
            }
            Command::StartInfraredBroadcasting {
                far_code,
                near_code,
            }
            | Command::StartInfraredFollowing {
                far_code,
                near_code,
            }
            | Command::StartInfraredEvading {
                far_code,
                near_code,
            } => {
                w.u8(far_code)?.u8(near_code)?;
            }
            Command::EnableColorDetectionNotify {
                enabled,
                interval_ms,
                min_confidence,
            } => {
                w.bool(enabled)?.u16(interval_ms)?.u8(min_confidence)?;
            }
            Command::ConfigureStreaming(ref config) => config.write(&mut w)?,
            Command::StartStreaming { period_ms } => {
                w.u16(period_ms)?;
            }
            Command::SendInfraredMessage {
                code,
                front_strength,
                left_strength,
                right_strength,
                rear_strength,
            } => {
                w.u8(code)?
                    .u8(front_strength)?
                    .u8(left_strength)?
                    .u8(right_strength)?
                    .u8(rear_strength)?;
            }
            Command::SetAllLeds(ref leds) => leds.write(&mut w)?,
            Command::SetActiveColorPalette(ref palette) => palette.write(&mut w)?,
            Command::GetColorIdentificationReport {
                red,
                green,
                blue,
                confidence_threshold,
            } => {
                w.u8(red)?.u8(green)?.u8(blue)?.u8(confidence_threshold)?;
            }
            Command::LoadColorPalette { index } | Command::SaveColorPalette { index } => {
                w.u8(index)?;
            }
        }
        Ok(w.finish())
    }

    /// Decodes a command packet (any addressing style; the target is not
    /// checked here: see [`Header::destination`] and [`CommandSpec::served_by`]).
    ///
    /// On error, [`DecodeError::error_code`] is the code to answer with.
    pub fn from_packet(packet: &Packet) -> Result<Command, DecodeError> {
        let header: &Header = &packet.header;
        if header.is_response() {
            return Err(DecodeError::UnexpectedResponse);
        }
        let kind = CommandKind::from_ids(header.device_id, header.command_id)?;
        let payload = packet.payload();
        // Length first, so a short payload is a bad length, not a bad value.
        if !kind.spec().request.admits(payload.len()) {
            return Err(DecodeError::BadLength { len: payload.len() });
        }
        let mut r = Reader::new(payload);
        let bad = DecodeError::BadValue;
        use CommandKind as K;
        let command = match kind {
            K::Echo => Command::Echo(
                EchoData::new(r.rest())
                    .map_err(|_| DecodeError::BadLength { len: payload.len() })?,
            ),
            K::GetMainApplicationVersion => Command::GetMainApplicationVersion,
            K::GetBootloaderVersion => Command::GetBootloaderVersion,
            K::GetBoardRevision => Command::GetBoardRevision,
            K::GetMacAddress => Command::GetMacAddress,
            K::GetStatsId => Command::GetStatsId,
            K::GetProcessorName => Command::GetProcessorName,
            K::GetSku => Command::GetSku,
            K::GetCoreUpTimeInMilliseconds => Command::GetCoreUpTimeInMilliseconds,
            K::Sleep => Command::Sleep,
            K::Wake => Command::Wake,
            K::GetBatteryPercentage => Command::GetBatteryPercentage,
            K::GetBatteryVoltageState => Command::GetBatteryVoltageState,
            K::EnableBatteryVoltageStateChangeNotify => {
                Command::EnableBatteryVoltageStateChangeNotify { enabled: r.bool()? }
            }
            K::GetBatteryVoltageInVolts => Command::GetBatteryVoltageInVolts {
                reading: VoltageReading::from_code(r.u8()?).ok_or(bad)?,
            },
            K::GetBatteryVoltageStateThresholds => Command::GetBatteryVoltageStateThresholds,
            K::GetCurrentSenseAmplifierCurrent => Command::GetCurrentSenseAmplifierCurrent {
                motor: Motor::from_code(r.u8()?).ok_or(bad)?,
            },
            K::RawMotors => Command::RawMotors {
                left_mode: MotorMode::from_code(r.u8()?).ok_or(bad)?,
                left_duty: r.u8()?,
                right_mode: MotorMode::from_code(r.u8()?).ok_or(bad)?,
                right_duty: r.u8()?,
            },
            K::ResetYaw => Command::ResetYaw,
            K::DriveWithHeading => Command::DriveWithHeading {
                speed: r.u8()?,
                heading_deg: r.u16()?,
                flags: HeadingFlags::from_bits(r.u8()?).ok_or(bad)?,
            },
            K::SetCustomControlSystemTimeout => Command::SetCustomControlSystemTimeout {
                timeout_ms: r.u16()?,
            },
            K::EnableMotorStallNotify => Command::EnableMotorStallNotify { enabled: r.bool()? },
            K::EnableMotorFaultNotify => Command::EnableMotorFaultNotify { enabled: r.bool()? },
            K::GetMotorFaultState => Command::GetMotorFaultState,
            K::DriveTankSi => Command::DriveTankSi {
                left_mps: r.f32()?,
                right_mps: r.f32()?,
            },
            K::DriveTankNormalized => Command::DriveTankNormalized {
                left: r.i8()?,
                right: r.i8()?,
            },
            K::DriveRcSi => Command::DriveRcSi {
                yaw_rate_dps: r.f32()?,
                linear_mps: r.f32()?,
                flags: RcFlags::from_bits(r.u8()?).ok_or(bad)?,
            },
            K::DriveRcNormalized => Command::DriveRcNormalized {
                yaw_rate: r.i8()?,
                linear: r.i8()?,
                flags: RcFlags::from_bits(r.u8()?).ok_or(bad)?,
            },
            K::DriveWithYawSi => Command::DriveWithYawSi {
                yaw_deg: r.f32()?,
                linear_mps: r.f32()?,
            },
            K::DriveToPositionSi => Command::DriveToPositionSi {
                yaw_deg: r.f32()?,
                x_m: r.f32()?,
                y_m: r.f32()?,
                speed_mps: r.f32()?,
                flags: XyDriveFlags::from_bits(r.u8()?).ok_or(bad)?,
            },
            K::DriveStopCustomDecel => Command::DriveStopCustomDecel {
                decel_mps2: r.f32()?,
            },
            K::GetStopControllerState => Command::GetStopControllerState,
            K::DriveStop => Command::DriveStop,
            K::RestoreDefaultControlSystemTimeout => Command::RestoreDefaultControlSystemTimeout,
            K::EnableGyroMaxNotify => Command::EnableGyroMaxNotify { enabled: r.bool()? },
            K::ResetLocatorXy => Command::ResetLocatorXy,
            K::SetLocatorFlags => {
                Command::SetLocatorFlags(LocatorFlags::from_bits(r.u8()?).ok_or(bad)?)
            }
            K::GetBotToBotInfraredReadings => Command::GetBotToBotInfraredReadings,
            K::GetRgbcSensorValues => Command::GetRgbcSensorValues,
            K::StartInfraredBroadcasting => Command::StartInfraredBroadcasting {
                far_code: r.u8()?,
                near_code: r.u8()?,
            },
            K::StartInfraredFollowing => Command::StartInfraredFollowing {
                far_code: r.u8()?,
                near_code: r.u8()?,
            },
            K::StopInfraredBroadcasting => Command::StopInfraredBroadcasting,
            K::GetAmbientLightSensorValue => Command::GetAmbientLightSensorValue,
            K::StopInfraredFollowing => Command::StopInfraredFollowing,
            K::StartInfraredEvading => Command::StartInfraredEvading {
                far_code: r.u8()?,
                near_code: r.u8()?,
            },
            K::StopInfraredEvading => Command::StopInfraredEvading,
            K::EnableColorDetectionNotify => Command::EnableColorDetectionNotify {
                enabled: r.bool()?,
                interval_ms: r.u16()?,
                min_confidence: r.u8()?,
            },
            K::GetCurrentDetectedColorReading => Command::GetCurrentDetectedColorReading,
            K::EnableColorDetection => Command::EnableColorDetection { enabled: r.bool()? },
            K::ConfigureStreaming => {
                Command::ConfigureStreaming(StreamingConfig::read(&mut r, payload.len())?)
            }
            K::StartStreaming => Command::StartStreaming {
                period_ms: r.u16()?,
            },
            K::StopStreaming => Command::StopStreaming,
            K::ClearStreaming => Command::ClearStreaming,
            K::EnableRobotInfraredMessageNotify => {
                Command::EnableRobotInfraredMessageNotify { enabled: r.bool()? }
            }
            K::SendInfraredMessage => Command::SendInfraredMessage {
                code: r.u8()?,
                front_strength: r.u8()?,
                left_strength: r.u8()?,
                right_strength: r.u8()?,
                rear_strength: r.u8()?,
            },
            K::GetMotorTemperature => Command::GetMotorTemperature {
                motor: Motor::from_code(r.u8()?).ok_or(bad)?,
            },
            K::GetMotorThermalProtectionStatus => Command::GetMotorThermalProtectionStatus,
            K::EnableMotorThermalProtectionStatusNotify => {
                Command::EnableMotorThermalProtectionStatusNotify { enabled: r.bool()? }
            }
            K::GetMagnetometerReading => Command::GetMagnetometerReading,
            K::GetEncoderCounts => Command::GetEncoderCounts,
            K::GetBluetoothAdvertisingName => Command::GetBluetoothAdvertisingName,
            K::SetAllLeds => Command::SetAllLeds(LedValues::read(&mut r)?),
            K::GetActiveColorPalette => Command::GetActiveColorPalette,
            K::SetActiveColorPalette => Command::SetActiveColorPalette(ColorPalette::read(&mut r)?),
            K::GetColorIdentificationReport => Command::GetColorIdentificationReport {
                red: r.u8()?,
                green: r.u8()?,
                blue: r.u8()?,
                confidence_threshold: r.u8()?,
            },
            K::LoadColorPalette => Command::LoadColorPalette { index: r.u8()? },
            K::SaveColorPalette => Command::SaveColorPalette { index: r.u8()? },
            K::ReleaseLedRequests => Command::ReleaseLedRequests,
        };
        r.finish()?;
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_kind_order_with_distinct_ids() {
        for (i, spec) in COMMANDS.iter().enumerate() {
            assert_eq!(spec.kind as usize, i, "{}", spec.name);
            assert_eq!(CommandKind::ALL[i], spec.kind);
            for other in &COMMANDS[i + 1..] {
                assert_ne!(
                    (spec.device_id, spec.command_id),
                    (other.device_id, other.command_id),
                    "{} and {}",
                    spec.name,
                    other.name
                );
            }
        }
    }

    #[test]
    fn the_python_sdk_commands_are_all_typed() {
        // The 55 host commands of the Python SDK 0.3.4 (sdk_commands table).
        let sdk = [
            "echo",
            "get_board_revision",
            "get_bootloader_version",
            "get_core_up_time_in_milliseconds",
            "get_mac_address",
            "get_main_application_version",
            "get_processor_name",
            "get_sku",
            "get_stats_id",
            "enable_battery_voltage_state_change_notify",
            "get_battery_percentage",
            "get_battery_voltage_in_volts",
            "get_battery_voltage_state",
            "get_battery_voltage_state_thresholds",
            "get_current_sense_amplifier_current",
            "sleep",
            "wake",
            "drive_with_heading",
            "enable_motor_fault_notify",
            "enable_motor_stall_notify",
            "get_motor_fault_state",
            "raw_motors",
            "reset_yaw",
            "clear_streaming_service",
            "configure_streaming_service",
            "enable_color_detection",
            "enable_color_detection_notify",
            "enable_gyro_max_notify",
            "enable_motor_thermal_protection_status_notify",
            "enable_robot_infrared_message_notify",
            "get_ambient_light_sensor_value",
            "get_bot_to_bot_infrared_readings",
            "get_current_detected_color_reading",
            "get_motor_temperature",
            "get_motor_thermal_protection_status",
            "get_rgbc_sensor_values",
            "reset_locator_x_and_y",
            "send_infrared_message",
            "set_locator_flags",
            "start_robot_to_robot_infrared_broadcasting",
            "start_robot_to_robot_infrared_evading",
            "start_robot_to_robot_infrared_following",
            "start_streaming_service",
            "stop_robot_to_robot_infrared_broadcasting",
            "stop_robot_to_robot_infrared_evading",
            "stop_robot_to_robot_infrared_following",
            "stop_streaming_service",
            "get_bluetooth_advertising_name",
            "get_active_color_palette",
            "get_color_identification_report",
            "load_color_palette",
            "release_led_requests",
            "save_color_palette",
            "set_active_color_palette",
            "set_all_leds",
        ];
        assert_eq!(sdk.len(), 55);
        for name in sdk {
            assert!(
                COMMANDS.iter().any(|s| s.name == name),
                "{name} is not typed"
            );
        }
    }
}
