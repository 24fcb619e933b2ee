//! Typed responses (robot -> host): encode for the twin, decode for the bridge.

use crate::command::CommandKind;
use crate::constants::{power, sensor};
use crate::error::{DecodeError, EncodeError, ErrorCode};
use crate::packet::{Header, Packet};
use crate::wire::{Reader, Writer};

/// Battery voltage state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BatteryVoltageState {
    Unknown,
    Ok,
    Low,
    Critical,
}

impl BatteryVoltageState {
    pub const fn code(self) -> u8 {
        match self {
            BatteryVoltageState::Unknown => power::VOLTAGE_STATE_UNKNOWN,
            BatteryVoltageState::Ok => power::VOLTAGE_STATE_OK,
            BatteryVoltageState::Low => power::VOLTAGE_STATE_LOW,
            BatteryVoltageState::Critical => power::VOLTAGE_STATE_CRITICAL,
        }
    }

    pub const fn from_code(code: u8) -> Option<BatteryVoltageState> {
        match code {
            power::VOLTAGE_STATE_UNKNOWN => Some(BatteryVoltageState::Unknown),
            power::VOLTAGE_STATE_OK => Some(BatteryVoltageState::Ok),
            power::VOLTAGE_STATE_LOW => Some(BatteryVoltageState::Low),
            power::VOLTAGE_STATE_CRITICAL => Some(BatteryVoltageState::Critical),
            _ => None,
        }
    }
}

/// Motor thermal protection status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThermalStatus {
    Ok,
    Warning,
    Critical,
}

impl ThermalStatus {
    pub const fn code(self) -> u8 {
        match self {
            ThermalStatus::Ok => sensor::THERMAL_STATUS_OK,
            ThermalStatus::Warning => sensor::THERMAL_STATUS_WARNING,
            ThermalStatus::Critical => sensor::THERMAL_STATUS_CRITICAL,
        }
    }

    pub const fn from_code(code: u8) -> Option<ThermalStatus> {
        match code {
            sensor::THERMAL_STATUS_OK => Some(ThermalStatus::Ok),
            sensor::THERMAL_STATUS_WARNING => Some(ThermalStatus::Warning),
            sensor::THERMAL_STATUS_CRITICAL => Some(ThermalStatus::Critical),
            _ => None,
        }
    }
}

/// One motor's temperature and protection status.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotorThermal {
    /// Temperature (unit undocumented; degrees Celsius **assumed**).
    pub temperature: f32,
    pub status: ThermalStatus,
}

/// A typed successful response. Error responses are packets whose
/// [`Header::error`] is not success; build them with [`Packet::error_response`]
/// and they decode as [`DecodeError::ErrorResponse`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Response {
    /// Success of a command without outputs (empty payload). Only valid for
    /// kinds whose [`CommandKind::has_outputs`] is false.
    Ack(CommandKind),
    /// Battery percentage, 0-100.
    BatteryPercentage(u8),
    BatteryVoltageState(BatteryVoltageState),
    /// Battery voltage, volts.
    BatteryVoltageInVolts(f32),
    StopControllerState {
        stopped: bool,
    },
    /// Ambient light, lux.
    AmbientLight {
        lux: f32,
    },
    MotorThermalProtectionStatus {
        left: MotorThermal,
        right: MotorThermal,
    },
    /// Magnetometer reading (unit undocumented).
    MagnetometerReading {
        x: f32,
        y: f32,
        z: f32,
    },
    /// Encoder counts (about 4338 counts per metre, empirical).
    EncoderCounts {
        left: i32,
        right: i32,
    },
}

impl Response {
    /// The command this answers.
    pub const fn kind(&self) -> CommandKind {
        match self {
            Response::Ack(kind) => *kind,
            Response::BatteryPercentage(_) => CommandKind::GetBatteryPercentage,
            Response::BatteryVoltageState(_) => CommandKind::GetBatteryVoltageState,
            Response::BatteryVoltageInVolts(_) => CommandKind::GetBatteryVoltageInVolts,
            Response::StopControllerState { .. } => CommandKind::GetStopControllerState,
            Response::AmbientLight { .. } => CommandKind::GetAmbientLightSensorValue,
            Response::MotorThermalProtectionStatus { .. } => {
                CommandKind::GetMotorThermalProtectionStatus
            }
            Response::MagnetometerReading { .. } => CommandKind::GetMagnetometerReading,
            Response::EncoderCounts { .. } => CommandKind::GetEncoderCounts,
        }
    }

    /// The success response to the command whose header is `request`: SEQ
    /// echoed, target and source swapped ([`Header::response_header`]); DID
    /// and CID are this response's own.
    ///
    /// Errors: [`EncodeError::InvalidValue`] for an `Ack` of a command that
    /// has outputs.
    pub fn to_packet(&self, request: &Header) -> Result<Packet, EncodeError> {
        let mut header = request.response_header(ErrorCode::Success);
        (header.device_id, header.command_id) = self.kind().ids();
        let mut w = Writer::new();
        match *self {
            Response::Ack(kind) => {
                if kind.has_outputs() {
                    return Err(EncodeError::InvalidValue);
                }
            }
            Response::BatteryPercentage(percent) => {
                w.u8(percent)?;
            }
            Response::BatteryVoltageState(state) => {
                w.u8(state.code())?;
            }
            Response::BatteryVoltageInVolts(volts) => {
                w.f32(volts)?;
            }
            Response::StopControllerState { stopped } => {
                w.bool(stopped)?;
            }
            Response::AmbientLight { lux } => {
                w.f32(lux)?;
            }
            Response::MotorThermalProtectionStatus { left, right } => {
                w.f32(left.temperature)?
                    .u8(left.status.code())?
                    .f32(right.temperature)?
                    .u8(right.status.code())?;
            }
            Response::MagnetometerReading { x, y, z } => {
                w.f32(x)?.f32(y)?.f32(z)?;
            }
            Response::EncoderCounts { left, right } => {
                w.i32(left)?.i32(right)?;
            }
        }
        Ok(Packet::from_parts(header, w.finish()))
    }

    /// Decodes a response packet. A non-success ERR byte is
    /// [`DecodeError::ErrorResponse`]; match the response to its command by
    /// SEQ (and DID, CID, and SID = the TID you sent) from `packet.header`.
    pub fn from_packet(packet: &Packet) -> Result<Response, DecodeError> {
        let header = &packet.header;
        let error = header.error.ok_or(DecodeError::NotAResponse)?;
        if !error.is_success() {
            return Err(DecodeError::ErrorResponse(error));
        }
        let kind = CommandKind::from_ids(header.device_id, header.command_id)?;
        let len = packet.payload().len();
        if len != kind.response_payload_len() {
            return Err(DecodeError::BadLength { len });
        }
        let mut r = Reader::new(packet.payload());
        let bad = DecodeError::BadValue;
        let response = match kind {
            CommandKind::GetBatteryPercentage => Response::BatteryPercentage(r.u8()?),
            CommandKind::GetBatteryVoltageState => {
                Response::BatteryVoltageState(BatteryVoltageState::from_code(r.u8()?).ok_or(bad)?)
            }
            CommandKind::GetBatteryVoltageInVolts => Response::BatteryVoltageInVolts(r.f32()?),
            CommandKind::GetStopControllerState => {
                Response::StopControllerState { stopped: r.bool()? }
            }
            CommandKind::GetAmbientLightSensorValue => Response::AmbientLight { lux: r.f32()? },
            CommandKind::GetMotorThermalProtectionStatus => {
                let left = MotorThermal {
                    temperature: r.f32()?,
                    status: ThermalStatus::from_code(r.u8()?).ok_or(bad)?,
                };
                let right = MotorThermal {
                    temperature: r.f32()?,
                    status: ThermalStatus::from_code(r.u8()?).ok_or(bad)?,
                };
                Response::MotorThermalProtectionStatus { left, right }
            }
            CommandKind::GetMagnetometerReading => Response::MagnetometerReading {
                x: r.f32()?,
                y: r.f32()?,
                z: r.f32()?,
            },
            CommandKind::GetEncoderCounts => Response::EncoderCounts {
                left: r.i32()?,
                right: r.i32()?,
            },
            other => {
                debug_assert!(!other.has_outputs());
                Response::Ack(other)
            }
        };
        r.finish()?;
        Ok(response)
    }
}
