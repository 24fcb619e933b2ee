//! The RVR's response error codes and this crate's encode / decode errors.

use core::fmt;

use crate::constants::error_code as code;

/// The ERR byte of a response: what the robot says about a command.
///
/// [`ErrorCode::from_byte`] is total: a byte outside the documented table
/// becomes [`ErrorCode::Other`], so decoding a response never loses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0x00: the command succeeded.
    Success,
    /// 0x01: unknown device id.
    BadDeviceId,
    /// 0x02: unknown command id.
    BadCommandId,
    /// 0x03: the command exists but is not implemented.
    NotYetImplemented,
    /// 0x04: the command is restricted.
    CommandRestricted,
    /// 0x05: the payload has the wrong length.
    BadDataLength,
    /// 0x06: the command failed.
    CommandFailed,
    /// 0x07: a parameter has a bad value.
    BadParameterValue,
    /// 0x08: the robot is busy.
    Busy,
    /// 0x09: unknown target id.
    BadTargetId,
    /// 0x0A: the target processor is unavailable.
    TargetUnavailable,
    /// A code not in the documented table (never one of the codes above).
    Other(u8),
}

impl ErrorCode {
    /// Every documented code, in byte order.
    pub const DOCUMENTED: [ErrorCode; 11] = [
        ErrorCode::Success,
        ErrorCode::BadDeviceId,
        ErrorCode::BadCommandId,
        ErrorCode::NotYetImplemented,
        ErrorCode::CommandRestricted,
        ErrorCode::BadDataLength,
        ErrorCode::CommandFailed,
        ErrorCode::BadParameterValue,
        ErrorCode::Busy,
        ErrorCode::BadTargetId,
        ErrorCode::TargetUnavailable,
    ];

    /// The code for an ERR byte.
    pub const fn from_byte(byte: u8) -> ErrorCode {
        match byte {
            code::SUCCESS => ErrorCode::Success,
            code::BAD_DEVICE_ID => ErrorCode::BadDeviceId,
            code::BAD_COMMAND_ID => ErrorCode::BadCommandId,
            code::NOT_YET_IMPLEMENTED => ErrorCode::NotYetImplemented,
            code::COMMAND_RESTRICTED => ErrorCode::CommandRestricted,
            code::BAD_DATA_LENGTH => ErrorCode::BadDataLength,
            code::COMMAND_FAILED => ErrorCode::CommandFailed,
            code::BAD_PARAMETER_VALUE => ErrorCode::BadParameterValue,
            code::BUSY => ErrorCode::Busy,
            code::BAD_TARGET_ID => ErrorCode::BadTargetId,
            code::TARGET_UNAVAILABLE => ErrorCode::TargetUnavailable,
            other => ErrorCode::Other(other),
        }
    }

    /// The ERR byte for this code.
    pub const fn to_byte(self) -> u8 {
        match self {
            ErrorCode::Success => code::SUCCESS,
            ErrorCode::BadDeviceId => code::BAD_DEVICE_ID,
            ErrorCode::BadCommandId => code::BAD_COMMAND_ID,
            ErrorCode::NotYetImplemented => code::NOT_YET_IMPLEMENTED,
            ErrorCode::CommandRestricted => code::COMMAND_RESTRICTED,
            ErrorCode::BadDataLength => code::BAD_DATA_LENGTH,
            ErrorCode::CommandFailed => code::COMMAND_FAILED,
            ErrorCode::BadParameterValue => code::BAD_PARAMETER_VALUE,
            ErrorCode::Busy => code::BUSY,
            ErrorCode::BadTargetId => code::BAD_TARGET_ID,
            ErrorCode::TargetUnavailable => code::TARGET_UNAVAILABLE,
            ErrorCode::Other(byte) => byte,
        }
    }

    /// `true` for [`ErrorCode::Success`] (and for `Other(0)`, should one be built by hand).
    pub const fn is_success(self) -> bool {
        self.to_byte() == code::SUCCESS
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorCode::Success => "success",
            ErrorCode::BadDeviceId => "bad device id",
            ErrorCode::BadCommandId => "bad command id",
            ErrorCode::NotYetImplemented => "not yet implemented",
            ErrorCode::CommandRestricted => "command restricted",
            ErrorCode::BadDataLength => "bad data length",
            ErrorCode::CommandFailed => "command failed",
            ErrorCode::BadParameterValue => "bad parameter value",
            ErrorCode::Busy => "busy",
            ErrorCode::BadTargetId => "bad target id",
            ErrorCode::TargetUnavailable => "target unavailable",
            ErrorCode::Other(byte) => return write!(f, "unknown error code {byte:#04x}"),
        };
        f.write_str(text)
    }
}

/// Why a packet or typed message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The caller's buffer is too small for the escaped frame.
    BufferTooSmall { needed: usize, available: usize },
    /// The payload is longer than [`crate::constants::framing::MAX_PAYLOAD_LEN`].
    PayloadTooLong { len: usize },
    /// A response that also requests a response: receivers drop such packets.
    ConflictingFlags,
    /// A typed value outside what the wire format can carry (e.g. a streaming
    /// token above 15, a sixth streaming service, an `Ack` for a command that
    /// has outputs).
    InvalidValue,
    /// A streaming sample lacks the value of a configured service.
    MissingSample { service_id: u16 },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed, available } => {
                write!(f, "buffer too small: need {needed} bytes, have {available}")
            }
            EncodeError::PayloadTooLong { len } => write!(
                f,
                "payload of {len} bytes exceeds the maximum of {}",
                crate::constants::framing::MAX_PAYLOAD_LEN
            ),
            EncodeError::ConflictingFlags => {
                f.write_str("a response cannot also request a response")
            }
            EncodeError::InvalidValue => f.write_str("value cannot be encoded"),
            EncodeError::MissingSample { service_id } => {
                write!(
                    f,
                    "sample has no value for streaming service {service_id:#06x}"
                )
            }
        }
    }
}

impl core::error::Error for EncodeError {}

/// Why a well-formed [`crate::Packet`] is not the typed message asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A command or notification was expected but the packet is a response.
    UnexpectedResponse,
    /// A response was expected but the packet is a command / notification.
    NotAResponse,
    /// The device id is not one this crate types.
    UnknownDevice { device_id: u8 },
    /// The command id is not one this crate types for that device.
    UnknownCommand { device_id: u8, command_id: u8 },
    /// The payload length does not fit the message.
    BadLength { len: usize },
    /// A field holds a value outside its documented set.
    BadValue,
    /// A streaming configure names a service id not in the table.
    UnknownService { service_id: u16 },
    /// A streaming data notify carries another token than the configuration.
    TokenMismatch { expected: u8, actual: u8 },
    /// The packet is a response carrying this (non-success) error code.
    ErrorResponse(ErrorCode),
}

impl DecodeError {
    /// The error code a robot (the twin) answers a command with when typed
    /// decoding fails this way. The mapping follows fact sheet §7.
    pub const fn error_code(self) -> ErrorCode {
        match self {
            DecodeError::UnknownDevice { .. } => ErrorCode::BadDeviceId,
            DecodeError::UnknownCommand { .. } => ErrorCode::BadCommandId,
            DecodeError::BadLength { .. } => ErrorCode::BadDataLength,
            DecodeError::BadValue
            | DecodeError::UnknownService { .. }
            | DecodeError::TokenMismatch { .. } => ErrorCode::BadParameterValue,
            DecodeError::ErrorResponse(code) => code,
            DecodeError::UnexpectedResponse | DecodeError::NotAResponse => ErrorCode::CommandFailed,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedResponse => f.write_str("packet is a response"),
            DecodeError::NotAResponse => f.write_str("packet is not a response"),
            DecodeError::UnknownDevice { device_id } => {
                write!(f, "unknown device id {device_id:#04x}")
            }
            DecodeError::UnknownCommand {
                device_id,
                command_id,
            } => write!(
                f,
                "unknown command id {command_id:#04x} for device {device_id:#04x}"
            ),
            DecodeError::BadLength { len } => write!(f, "bad payload length {len}"),
            DecodeError::BadValue => f.write_str("bad parameter value"),
            DecodeError::UnknownService { service_id } => {
                write!(f, "unknown streaming service {service_id:#06x}")
            }
            DecodeError::TokenMismatch { expected, actual } => write!(
                f,
                "streaming token {actual} does not match configured token {expected}"
            ),
            DecodeError::ErrorResponse(code) => write!(f, "robot answered: {code}"),
        }
    }
}

impl core::error::Error for DecodeError {}
