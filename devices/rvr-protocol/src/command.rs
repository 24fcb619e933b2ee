//! Typed commands (host -> robot), both directions: encode for the bridge,
//! decode for the twin.

use crate::constants::{device, drive, power, sensor};
use crate::error::{DecodeError, EncodeError};
use crate::packet::{AddressStyle, Header, Packet, Processor};
use crate::streaming::StreamingConfig;
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

/// Which typed command a packet is: one per (DID, CID) pair this crate types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandKind {
    Sleep,
    Wake,
    GetBatteryPercentage,
    GetBatteryVoltageState,
    GetBatteryVoltageInVolts,
    RawMotors,
    ResetYaw,
    DriveWithHeading,
    SetCustomControlSystemTimeout,
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
    ResetLocatorXy,
    GetAmbientLightSensorValue,
    EnableColorDetection,
    ConfigureStreaming,
    StartStreaming,
    StopStreaming,
    ClearStreaming,
    GetMotorThermalProtectionStatus,
    GetMagnetometerReading,
    GetEncoderCounts,
}

impl CommandKind {
    /// Every typed command.
    pub const ALL: [CommandKind; 29] = [
        CommandKind::Sleep,
        CommandKind::Wake,
        CommandKind::GetBatteryPercentage,
        CommandKind::GetBatteryVoltageState,
        CommandKind::GetBatteryVoltageInVolts,
        CommandKind::RawMotors,
        CommandKind::ResetYaw,
        CommandKind::DriveWithHeading,
        CommandKind::SetCustomControlSystemTimeout,
        CommandKind::DriveTankSi,
        CommandKind::DriveTankNormalized,
        CommandKind::DriveRcSi,
        CommandKind::DriveRcNormalized,
        CommandKind::DriveWithYawSi,
        CommandKind::DriveToPositionSi,
        CommandKind::DriveStopCustomDecel,
        CommandKind::GetStopControllerState,
        CommandKind::DriveStop,
        CommandKind::RestoreDefaultControlSystemTimeout,
        CommandKind::ResetLocatorXy,
        CommandKind::GetAmbientLightSensorValue,
        CommandKind::EnableColorDetection,
        CommandKind::ConfigureStreaming,
        CommandKind::StartStreaming,
        CommandKind::StopStreaming,
        CommandKind::ClearStreaming,
        CommandKind::GetMotorThermalProtectionStatus,
        CommandKind::GetMagnetometerReading,
        CommandKind::GetEncoderCounts,
    ];

    /// (DID, CID) on the wire.
    pub const fn ids(self) -> (u8, u8) {
        use CommandKind as K;
        match self {
            K::Sleep => (device::POWER, power::SLEEP),
            K::Wake => (device::POWER, power::WAKE),
            K::GetBatteryPercentage => (device::POWER, power::GET_BATTERY_PERCENTAGE),
            K::GetBatteryVoltageState => (device::POWER, power::GET_BATTERY_VOLTAGE_STATE),
            K::GetBatteryVoltageInVolts => (device::POWER, power::GET_BATTERY_VOLTAGE_IN_VOLTS),
            K::RawMotors => (device::DRIVE, drive::RAW_MOTORS),
            K::ResetYaw => (device::DRIVE, drive::RESET_YAW),
            K::DriveWithHeading => (device::DRIVE, drive::DRIVE_WITH_HEADING),
            K::SetCustomControlSystemTimeout => {
                (device::DRIVE, drive::SET_CUSTOM_CONTROL_SYSTEM_TIMEOUT)
            }
            K::DriveTankSi => (device::DRIVE, drive::DRIVE_TANK_SI_UNITS),
            K::DriveTankNormalized => (device::DRIVE, drive::DRIVE_TANK_NORMALIZED),
            K::DriveRcSi => (device::DRIVE, drive::DRIVE_RC_SI_UNITS),
            K::DriveRcNormalized => (device::DRIVE, drive::DRIVE_RC_NORMALIZED),
            K::DriveWithYawSi => (device::DRIVE, drive::DRIVE_WITH_YAW_SI),
            K::DriveToPositionSi => (device::DRIVE, drive::DRIVE_TO_POSITION_SI),
            K::DriveStopCustomDecel => (device::DRIVE, drive::DRIVE_STOP_CUSTOM_DECEL),
            K::GetStopControllerState => (device::DRIVE, drive::GET_STOP_CONTROLLER_STATE),
            K::DriveStop => (device::DRIVE, drive::DRIVE_STOP),
            K::RestoreDefaultControlSystemTimeout => {
                (device::DRIVE, drive::RESTORE_DEFAULT_CONTROL_SYSTEM_TIMEOUT)
            }
            K::ResetLocatorXy => (device::SENSOR, sensor::RESET_LOCATOR_X_AND_Y),
            K::GetAmbientLightSensorValue => {
                (device::SENSOR, sensor::GET_AMBIENT_LIGHT_SENSOR_VALUE)
            }
            K::EnableColorDetection => (device::SENSOR, sensor::ENABLE_COLOR_DETECTION),
            K::ConfigureStreaming => (device::SENSOR, sensor::CONFIGURE_STREAMING_SERVICE),
            K::StartStreaming => (device::SENSOR, sensor::START_STREAMING_SERVICE),
            K::StopStreaming => (device::SENSOR, sensor::STOP_STREAMING_SERVICE),
            K::ClearStreaming => (device::SENSOR, sensor::CLEAR_STREAMING_SERVICE),
            K::GetMotorThermalProtectionStatus => {
                (device::SENSOR, sensor::GET_MOTOR_THERMAL_PROTECTION_STATUS)
            }
            K::GetMagnetometerReading => (device::SENSOR, sensor::GET_MAGNETOMETER_READING),
            K::GetEncoderCounts => (device::SENSOR, sensor::GET_ENCODER_COUNTS),
        }
    }

    /// The device id.
    pub const fn device_id(self) -> u8 {
        self.ids().0
    }

    /// The command id.
    pub const fn command_id(self) -> u8 {
        self.ids().1
    }

    /// The typed command with these ids, or why there is none
    /// ([`DecodeError::UnknownDevice`] / [`DecodeError::UnknownCommand`]).
    pub fn from_ids(device_id: u8, command_id: u8) -> Result<CommandKind, DecodeError> {
        if let Some(kind) = CommandKind::ALL
            .into_iter()
            .find(|k| k.ids() == (device_id, command_id))
        {
            return Ok(kind);
        }
        if CommandKind::ALL.iter().any(|k| k.device_id() == device_id) {
            Err(DecodeError::UnknownCommand {
                device_id,
                command_id,
            })
        } else {
            Err(DecodeError::UnknownDevice { device_id })
        }
    }

    /// The processor that serves it. The streaming commands go to either
    /// processor (each has its own slots); this returns ST for them, which
    /// serves most services: use [`Command::to_packet_for`] for Nordic slots.
    pub fn default_processor(self) -> Processor {
        let (did, cid) = self.ids();
        Processor::default_for(did, cid).unwrap_or(Processor::St)
    }

    /// Payload length of the command, or `None` if it varies
    /// (`configure_streaming_service`: token + 3 bytes per service).
    pub const fn payload_len(self) -> Option<usize> {
        use CommandKind as K;
        Some(match self {
            K::GetBatteryVoltageInVolts | K::EnableColorDetection => 1,
            K::SetCustomControlSystemTimeout | K::DriveTankNormalized | K::StartStreaming => 2,
            K::DriveRcNormalized => 3,
            K::RawMotors | K::DriveWithHeading | K::DriveStopCustomDecel => 4,
            K::DriveTankSi | K::DriveWithYawSi => 8,
            K::DriveRcSi => 9,
            K::DriveToPositionSi => 17,
            K::ConfigureStreaming => return None,
            K::Sleep
            | K::Wake
            | K::GetBatteryPercentage
            | K::GetBatteryVoltageState
            | K::ResetYaw
            | K::GetStopControllerState
            | K::DriveStop
            | K::RestoreDefaultControlSystemTimeout
            | K::ResetLocatorXy
            | K::GetAmbientLightSensorValue
            | K::StopStreaming
            | K::ClearStreaming
            | K::GetMotorThermalProtectionStatus
            | K::GetMagnetometerReading
            | K::GetEncoderCounts => 0,
        })
    }

    /// Payload length of a successful response.
    pub const fn response_payload_len(self) -> usize {
        use CommandKind as K;
        match self {
            K::GetBatteryPercentage | K::GetBatteryVoltageState | K::GetStopControllerState => 1,
            K::GetBatteryVoltageInVolts | K::GetAmbientLightSensorValue => 4,
            K::GetEncoderCounts => 8,
            K::GetMotorThermalProtectionStatus => 10,
            K::GetMagnetometerReading => 12,
            K::Sleep
            | K::Wake
            | K::RawMotors
            | K::ResetYaw
            | K::DriveWithHeading
            | K::SetCustomControlSystemTimeout
            | K::DriveTankSi
            | K::DriveTankNormalized
            | K::DriveRcSi
            | K::DriveRcNormalized
            | K::DriveWithYawSi
            | K::DriveToPositionSi
            | K::DriveStopCustomDecel
            | K::DriveStop
            | K::RestoreDefaultControlSystemTimeout
            | K::ResetLocatorXy
            | K::EnableColorDetection
            | K::ConfigureStreaming
            | K::StartStreaming
            | K::StopStreaming
            | K::ClearStreaming => 0,
        }
    }

    /// `true` if a successful response carries data.
    pub const fn has_outputs(self) -> bool {
        self.response_payload_len() != 0
    }
}

/// A typed command. Field units are in the names: `_mps` m/s, `_dps` deg/s,
/// `_deg` degrees, `_m` metres, `_mps2` m/s², `_ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    /// Power: sleep (Nordic).
    Sleep,
    /// Power: wake (Nordic). The SDKs wait 2 s after it before driving.
    Wake,
    /// Power: battery percentage, 0-100 (Nordic).
    GetBatteryPercentage,
    /// Power: battery voltage state (Nordic).
    GetBatteryVoltageState,
    /// Power: battery voltage in volts (Nordic).
    GetBatteryVoltageInVolts { reading: VoltageReading },
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
    /// Sensor: locator X and Y back to 0.
    ResetLocatorXy,
    /// Sensor: ambient light in lux (Nordic).
    GetAmbientLightSensorValue,
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
    /// Sensor: motor temperatures and thermal protection status.
    GetMotorThermalProtectionStatus,
    /// Sensor: magnetometer x, y, z.
    GetMagnetometerReading,
    /// Sensor: left and right encoder counts.
    GetEncoderCounts,
}

impl Command {
    /// Which command this is.
    pub const fn kind(&self) -> CommandKind {
        use CommandKind as K;
        match self {
            Command::Sleep => K::Sleep,
            Command::Wake => K::Wake,
            Command::GetBatteryPercentage => K::GetBatteryPercentage,
            Command::GetBatteryVoltageState => K::GetBatteryVoltageState,
            Command::GetBatteryVoltageInVolts { .. } => K::GetBatteryVoltageInVolts,
            Command::RawMotors { .. } => K::RawMotors,
            Command::ResetYaw => K::ResetYaw,
            Command::DriveWithHeading { .. } => K::DriveWithHeading,
            Command::SetCustomControlSystemTimeout { .. } => K::SetCustomControlSystemTimeout,
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
            Command::ResetLocatorXy => K::ResetLocatorXy,
            Command::GetAmbientLightSensorValue => K::GetAmbientLightSensorValue,
            Command::EnableColorDetection { .. } => K::EnableColorDetection,
            Command::ConfigureStreaming(_) => K::ConfigureStreaming,
            Command::StartStreaming { .. } => K::StartStreaming,
            Command::StopStreaming => K::StopStreaming,
            Command::ClearStreaming => K::ClearStreaming,
            Command::GetMotorThermalProtectionStatus => K::GetMotorThermalProtectionStatus,
            Command::GetMagnetometerReading => K::GetMagnetometerReading,
            Command::GetEncoderCounts => K::GetEncoderCounts,
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
            Command::Sleep
            | Command::Wake
            | Command::GetBatteryPercentage
            | Command::GetBatteryVoltageState
            | Command::ResetYaw
            | Command::GetStopControllerState
            | Command::DriveStop
            | Command::RestoreDefaultControlSystemTimeout
            | Command::ResetLocatorXy
            | Command::GetAmbientLightSensorValue
            | Command::StopStreaming
            | Command::ClearStreaming
            | Command::GetMotorThermalProtectionStatus
            | Command::GetMagnetometerReading
            | Command::GetEncoderCounts => {}
            Command::GetBatteryVoltageInVolts { reading } => {
                w.u8(reading.code())?;
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
            Command::EnableColorDetection { enabled } => {
                w.bool(enabled)?;
            }
            Command::ConfigureStreaming(ref config) => config.write(&mut w)?,
            Command::StartStreaming { period_ms } => {
                w.u16(period_ms)?;
            }
        }
        Ok(w.finish())
    }

    /// Decodes a command packet (any addressing style; the target is not
    /// checked here: see [`Header::destination`]).
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
        if kind.payload_len().is_some_and(|len| len != payload.len()) {
            return Err(DecodeError::BadLength { len: payload.len() });
        }
        let mut r = Reader::new(payload);
        let bad = DecodeError::BadValue;
        let command = match kind {
            CommandKind::Sleep => Command::Sleep,
            CommandKind::Wake => Command::Wake,
            CommandKind::GetBatteryPercentage => Command::GetBatteryPercentage,
            CommandKind::GetBatteryVoltageState => Command::GetBatteryVoltageState,
            CommandKind::GetBatteryVoltageInVolts => Command::GetBatteryVoltageInVolts {
                reading: VoltageReading::from_code(r.u8()?).ok_or(bad)?,
            },
            CommandKind::RawMotors => Command::RawMotors {
                left_mode: MotorMode::from_code(r.u8()?).ok_or(bad)?,
                left_duty: r.u8()?,
                right_mode: MotorMode::from_code(r.u8()?).ok_or(bad)?,
                right_duty: r.u8()?,
            },
            CommandKind::ResetYaw => Command::ResetYaw,
            CommandKind::DriveWithHeading => Command::DriveWithHeading {
                speed: r.u8()?,
                heading_deg: r.u16()?,
                flags: HeadingFlags::from_bits(r.u8()?).ok_or(bad)?,
            },
            CommandKind::SetCustomControlSystemTimeout => Command::SetCustomControlSystemTimeout {
                timeout_ms: r.u16()?,
            },
            CommandKind::DriveTankSi => Command::DriveTankSi {
                left_mps: r.f32()?,
                right_mps: r.f32()?,
            },
            CommandKind::DriveTankNormalized => Command::DriveTankNormalized {
                left: r.i8()?,
                right: r.i8()?,
            },
            CommandKind::DriveRcSi => Command::DriveRcSi {
                yaw_rate_dps: r.f32()?,
                linear_mps: r.f32()?,
                flags: RcFlags::from_bits(r.u8()?).ok_or(bad)?,
            },
            CommandKind::DriveRcNormalized => Command::DriveRcNormalized {
                yaw_rate: r.i8()?,
                linear: r.i8()?,
                flags: RcFlags::from_bits(r.u8()?).ok_or(bad)?,
            },
            CommandKind::DriveWithYawSi => Command::DriveWithYawSi {
                yaw_deg: r.f32()?,
                linear_mps: r.f32()?,
            },
            CommandKind::DriveToPositionSi => Command::DriveToPositionSi {
                yaw_deg: r.f32()?,
                x_m: r.f32()?,
                y_m: r.f32()?,
                speed_mps: r.f32()?,
                flags: XyDriveFlags::from_bits(r.u8()?).ok_or(bad)?,
            },
            CommandKind::DriveStopCustomDecel => Command::DriveStopCustomDecel {
                decel_mps2: r.f32()?,
            },
            CommandKind::GetStopControllerState => Command::GetStopControllerState,
            CommandKind::DriveStop => Command::DriveStop,
            CommandKind::RestoreDefaultControlSystemTimeout => {
                Command::RestoreDefaultControlSystemTimeout
            }
            CommandKind::ResetLocatorXy => Command::ResetLocatorXy,
            CommandKind::GetAmbientLightSensorValue => Command::GetAmbientLightSensorValue,
            CommandKind::EnableColorDetection => {
                Command::EnableColorDetection { enabled: r.bool()? }
            }
            CommandKind::ConfigureStreaming => {
                Command::ConfigureStreaming(StreamingConfig::read(&mut r, payload.len())?)
            }
            CommandKind::StartStreaming => Command::StartStreaming {
                period_ms: r.u16()?,
            },
            CommandKind::StopStreaming => Command::StopStreaming,
            CommandKind::ClearStreaming => Command::ClearStreaming,
            CommandKind::GetMotorThermalProtectionStatus => {
                Command::GetMotorThermalProtectionStatus
            }
            CommandKind::GetMagnetometerReading => Command::GetMagnetometerReading,
            CommandKind::GetEncoderCounts => Command::GetEncoderCounts,
        };
        r.finish()?;
        Ok(command)
    }
}
