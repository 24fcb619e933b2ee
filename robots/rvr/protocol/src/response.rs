//! Typed responses (robot -> host): encode for the twin, decode for the bridge.

use crate::command::CommandKind;
use crate::constants::{power, sensor};
use crate::error::{DecodeError, EncodeError, ErrorCode};
use crate::packet::{Header, Packet};
use crate::values::{ColorMatches, ColorPalette, EchoData, InfraredReadings, Text, Version};
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
    /// Temperature (unit undocumented; degrees Celsius **assumed**: a Sphero
    /// engineer gives the thresholds as 74 °C and 84 °C, community.sphero.com
    /// thread 2962).
    pub temperature: f32,
    pub status: ThermalStatus,
}

impl MotorThermal {
    pub(crate) fn write(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.f32(self.temperature)?.u8(self.status.code())?;
        Ok(())
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<MotorThermal, DecodeError> {
        Ok(MotorThermal {
            temperature: r.f32()?,
            status: ThermalStatus::from_code(r.u8()?).ok_or(DecodeError::BadValue)?,
        })
    }
}

/// A typed successful response. Error responses are packets whose
/// [`Header::error`] is not success; build them with [`Packet::error_response`]
/// and they decode as [`DecodeError::ErrorResponse`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Response {
    /// Success of a command without outputs (empty payload). Only valid for
    /// kinds whose [`CommandKind::has_outputs`] is false.
    Ack(CommandKind),
    /// The bytes `echo` sent.
    Echo(EchoData),
    MainApplicationVersion(Version),
    BootloaderVersion(Version),
    BoardRevision(u8),
    /// MAC address, as text.
    MacAddress(Text),
    StatsId(u16),
    ProcessorName(Text),
    Sku(Text),
    /// Milliseconds since power-on.
    CoreUpTime {
        ms: u64,
    },
    /// Battery percentage, 0-100.
    BatteryPercentage(u8),
    BatteryVoltageState(BatteryVoltageState),
    /// Battery voltage, volts.
    BatteryVoltageInVolts(f32),
    /// Voltage state thresholds and the hysteresis added for rising
    /// voltages, volts.
    BatteryVoltageStateThresholds {
        critical_v: f32,
        low_v: f32,
        hysteresis_v: f32,
    },
    /// A motor's current, amps.
    CurrentSenseAmplifierCurrent {
        amps: f32,
    },
    MotorFaultState {
        is_fault: bool,
    },
    StopControllerState {
        stopped: bool,
    },
    BotToBotInfraredReadings(InfraredReadings),
    /// Raw colour sensor channels.
    RgbcSensorValues {
        red: u16,
        green: u16,
        blue: u16,
        clear: u16,
    },
    /// Ambient light, lux.
    AmbientLight {
        lux: f32,
    },
    /// A motor's temperatures (degrees Celsius **assumed**).
    MotorTemperature {
        winding_c: f32,
        case_c: f32,
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
    BluetoothAdvertisingName(Text),
    ActiveColorPalette(ColorPalette),
    ColorIdentificationReport(ColorMatches),
}

impl Response {
    /// The command this answers.
    pub const fn kind(&self) -> CommandKind {
        use CommandKind as K;
        match self {
            Response::Ack(kind) => *kind,
            Response::Echo(_) => K::Echo,
            Response::MainApplicationVersion(_) => K::GetMainApplicationVersion,
            Response::BootloaderVersion(_) => K::GetBootloaderVersion,
            Response::BoardRevision(_) => K::GetBoardRevision,
            Response::MacAddress(_) => K::GetMacAddress,
            Response::StatsId(_) => K::GetStatsId,
            Response::ProcessorName(_) => K::GetProcessorName,
            Response::Sku(_) => K::GetSku,
            Response::CoreUpTime { .. } => K::GetCoreUpTimeInMilliseconds,
            Response::BatteryPercentage(_) => K::GetBatteryPercentage,
            Response::BatteryVoltageState(_) => K::GetBatteryVoltageState,
            Response::BatteryVoltageInVolts(_) => K::GetBatteryVoltageInVolts,
            Response::BatteryVoltageStateThresholds { .. } => K::GetBatteryVoltageStateThresholds,
            Response::CurrentSenseAmplifierCurrent { .. } => K::GetCurrentSenseAmplifierCurrent,
            Response::MotorFaultState { .. } => K::GetMotorFaultState,
            Response::StopControllerState { .. } => K::GetStopControllerState,
            Response::BotToBotInfraredReadings(_) => K::GetBotToBotInfraredReadings,
            Response::RgbcSensorValues { .. } => K::GetRgbcSensorValues,
            Response::AmbientLight { .. } => K::GetAmbientLightSensorValue,
            Response::MotorTemperature { .. } => K::GetMotorTemperature,
            Response::MotorThermalProtectionStatus { .. } => K::GetMotorThermalProtectionStatus,
            Response::MagnetometerReading { .. } => K::GetMagnetometerReading,
            Response::EncoderCounts { .. } => K::GetEncoderCounts,
            Response::BluetoothAdvertisingName(_) => K::GetBluetoothAdvertisingName,
            Response::ActiveColorPalette(_) => K::GetActiveColorPalette,
            Response::ColorIdentificationReport(_) => K::GetColorIdentificationReport,
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
            Response::Echo(ref data) => {
                w.bytes(data.as_slice())?;
            }
            Response::MainApplicationVersion(v) | Response::BootloaderVersion(v) => {
                v.write(&mut w)?
            }
            Response::BoardRevision(revision) => {
                w.u8(revision)?;
            }
            Response::MacAddress(ref t)
            | Response::ProcessorName(ref t)
            | Response::Sku(ref t)
            | Response::BluetoothAdvertisingName(ref t) => t.write(&mut w)?,
            Response::StatsId(id) => {
                w.u16(id)?;
            }
            Response::CoreUpTime { ms } => {
                w.u64(ms)?;
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
            Response::BatteryVoltageStateThresholds {
                critical_v,
                low_v,
                hysteresis_v,
            } => {
                w.f32(critical_v)?.f32(low_v)?.f32(hysteresis_v)?;
            }
            Response::CurrentSenseAmplifierCurrent { amps } => {
                w.f32(amps)?;
            }
            Response::MotorFaultState { is_fault } => {
                w.bool(is_fault)?;
            }
            Response::StopControllerState { stopped } => {
                w.bool(stopped)?;
            }
            Response::BotToBotInfraredReadings(readings) => {
                w.u32(readings.to_bits())?;
            }
            Response::RgbcSensorValues {
                red,
                green,
                blue,
                clear,
            } => {
                w.u16(red)?.u16(green)?.u16(blue)?.u16(clear)?;
            }
            Response::AmbientLight { lux } => {
                w.f32(lux)?;
            }
            Response::MotorTemperature { winding_c, case_c } => {
                w.f32(winding_c)?.f32(case_c)?;
            }
            Response::MotorThermalProtectionStatus { left, right } => {
                left.write(&mut w)?;
                right.write(&mut w)?;
            }
            Response::MagnetometerReading { x, y, z } => {
                w.f32(x)?.f32(y)?.f32(z)?;
            }
            Response::EncoderCounts { left, right } => {
                w.i32(left)?.i32(right)?;
            }
            Response::ActiveColorPalette(ref palette) => palette.write(&mut w)?,
            Response::ColorIdentificationReport(ref report) => report.write(&mut w)?,
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
        if !kind.spec().response.admits(len) {
            return Err(DecodeError::BadLength { len });
        }
        let mut r = Reader::new(packet.payload());
        let bad = DecodeError::BadValue;
        use CommandKind as K;
        let response = match kind {
            K::Echo => {
                Response::Echo(EchoData::new(r.rest()).map_err(|_| DecodeError::BadLength { len })?)
            }
            K::GetMainApplicationVersion => {
                Response::MainApplicationVersion(Version::read(&mut r)?)
            }
            K::GetBootloaderVersion => Response::BootloaderVersion(Version::read(&mut r)?),
            K::GetBoardRevision => Response::BoardRevision(r.u8()?),
            K::GetMacAddress => Response::MacAddress(Text::read(&mut r)?),
            K::GetStatsId => Response::StatsId(r.u16()?),
            K::GetProcessorName => Response::ProcessorName(Text::read(&mut r)?),
            K::GetSku => Response::Sku(Text::read(&mut r)?),
            K::GetCoreUpTimeInMilliseconds => Response::CoreUpTime { ms: r.u64()? },
            K::GetBatteryPercentage => Response::BatteryPercentage(r.u8()?),
            K::GetBatteryVoltageState => {
                Response::BatteryVoltageState(BatteryVoltageState::from_code(r.u8()?).ok_or(bad)?)
            }
            K::GetBatteryVoltageInVolts => Response::BatteryVoltageInVolts(r.f32()?),
            K::GetBatteryVoltageStateThresholds => Response::BatteryVoltageStateThresholds {
                critical_v: r.f32()?,
                low_v: r.f32()?,
                hysteresis_v: r.f32()?,
            },
            K::GetCurrentSenseAmplifierCurrent => {
                Response::CurrentSenseAmplifierCurrent { amps: r.f32()? }
            }
            K::GetMotorFaultState => Response::MotorFaultState {
                is_fault: r.bool()?,
            },
            K::GetStopControllerState => Response::StopControllerState { stopped: r.bool()? },
            K::GetBotToBotInfraredReadings => {
                Response::BotToBotInfraredReadings(InfraredReadings::from_bits(r.u32()?))
            }
            K::GetRgbcSensorValues => Response::RgbcSensorValues {
                red: r.u16()?,
                green: r.u16()?,
                blue: r.u16()?,
                clear: r.u16()?,
            },
            K::GetAmbientLightSensorValue => Response::AmbientLight { lux: r.f32()? },
            K::GetMotorTemperature => Response::MotorTemperature {
                winding_c: r.f32()?,
                case_c: r.f32()?,
            },
            K::GetMotorThermalProtectionStatus => Response::MotorThermalProtectionStatus {
                left: MotorThermal::read(&mut r)?,
                right: MotorThermal::read(&mut r)?,
            },
            K::GetMagnetometerReading => Response::MagnetometerReading {
                x: r.f32()?,
                y: r.f32()?,
                z: r.f32()?,
            },
            K::GetEncoderCounts => Response::EncoderCounts {
                left: r.i32()?,
                right: r.i32()?,
            },
            K::GetBluetoothAdvertisingName => {
                Response::BluetoothAdvertisingName(Text::read(&mut r)?)
            }
            K::GetActiveColorPalette => Response::ActiveColorPalette(ColorPalette::read(&mut r)?),
            K::GetColorIdentificationReport => {
                Response::ColorIdentificationReport(ColorMatches::read(&mut r)?)
            }
            other => {
                debug_assert!(!other.has_outputs());
                Response::Ack(other)
            }
        };
        r.finish()?;
        Ok(response)
    }
}
