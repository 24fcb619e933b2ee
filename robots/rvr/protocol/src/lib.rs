//! Sphero RVR UART protocol: packet codec, streaming parser and typed
//! messages, for both ends of the link.
//!
//! `no_std`, no allocation, no dependencies. The ESP32 bridge encodes
//! [`Command`]s and decodes [`Response`]s and [`Notification`]s; the
//! simulated RVR (the twin) decodes [`Command`]s and encodes the other two.
//! Every id, flag bit, error code and the sensor-streaming table live in
//! [`constants`].
//!
//! # Wire format
//!
//! ```text
//! SOP  FLAGS [TID] [SID] DID CID SEQ [ERR] DATA... CHK  EOP
//! 8D                                                    D8
//! ```
//!
//! * FLAGS bits: 0 is-response, 1 requests-response, 2 requests-error-response-only,
//!   3 is-activity, 4 has-target (TID present), 5 has-source (SID present),
//!   6 unused, 7 more-flags (unsupported, rejected). ERR is present only in responses.
//! * Multi-byte fields are big-endian; bools are one byte 0/1.
//! * CHK = `!(sum of FLAGS..last DATA byte)`, so FLAGS..CHK sums to `0xFF` (mod 256).
//!   It is computed on un-escaped bytes.
//! * Between SOP and EOP, the bytes `8D`, `D8`, `AB` are sent as `AB 05`,
//!   `AB 50`, `AB 23` (escape = `AB`, then the byte with `0x88` cleared).
//!   The checksum byte is escaped too.
//! * A response echoes DID, CID and SEQ, sets is-response, carries ERR
//!   ([`ErrorCode`]) and swaps the ids: response TID = command SID, response
//!   SID = command TID ([`Header::response_header`]).
//! * Notifications are command packets from the robot, SID = the emitting
//!   processor, requesting no response.
//!
//! # Addressing styles
//!
//! The RVR has two processors, Nordic (node 1: power, LEDs, colour and
//! ambient light) and ST (node 2: drive, IMU, locator, encoders). An id byte
//! is `port << 4 | node`. The official SDKs address them in two ways, and
//! the robot accepts both (plus no addressing at all), so decoding accepts
//! any combination and routes by the low nibble of TID, or by device id
//! when there is no TID ([`Header::destination`]). Encoding picks one
//! [`AddressStyle`]:
//!
//! * [`AddressStyle::TargetOnly`] (Python SDK): TID `0x01`/`0x02`, no SID,
//!   FLAGS `0x18`, or `0x1A` when the command has outputs.
//! * [`AddressStyle::TargetAndSource`] (Node.js SDK): TID `0x11`/`0x12`,
//!   SID `0x01`, FLAGS `0x3A`.
//! * [`AddressStyle::Untargeted`]: neither id; the robot routes by device id.
//!
//! What the real robot puts in the header of its *notifications* is not
//! documented; the Python SDK only routes notifications whose SID is the bare
//! node (`0x01` / `0x02`), see [`AddressStyle::notification_header`].
//!
//! # Tables
//!
//! [`command::COMMANDS`] and [`notification::NOTIFICATIONS`] list every typed
//! message once: ids, serving / emitting processor, payload lengths, and the
//! name in Sphero's API. They cover the Python SDK 0.3.4's 65 commands and
//! notifications and the newer SDK's drive commands the bridge uses.
//!
//! # Parser
//!
//! [`Parser::push`] takes one byte at a time and returns a [`Packet`] when a
//! valid frame ends, or a [`ParseError`] when bytes were dropped. It never
//! allocates or panics, returns only frames with a correct checksum, and
//! resynchronises on the next SOP. [`ParserStats`] counts intact frames and
//! each kind of loss: bytes skipped outside frames, frames interrupted by a
//! second SOP (`early_start`), frames too short for their header
//! (`truncated`), bad escapes, bad checksums, bad flags, and frames too long
//! for [`constants::framing::MAX_PAYLOAD_LEN`] (assumed limit).
//!
//! # Sensor streaming
//!
//! [`StreamingConfig`] is a slot (token + up to five services and sizes);
//! [`StreamingData::decode`] turns a data notification into a
//! [`SensorSample`] in SI units using each service's documented range, and
//! [`StreamingData::from_sample`] is the inverse for the twin.
//!
//! # Assumed facts
//!
//! Where the reference marks a fact unverified, this crate assumes and names
//! it (search the docs for "assumed"): the payload size limit, notification
//! addressing in the Node.js style, the error-only reply rule, strictness on
//! bool bytes and undefined flag bits, tokens up to 15, the signedness of
//! encoder streams, and the longest text.
//!
//! # Example
//!
//! ```
//! use rvr_protocol::{AddressStyle, Command, HeadingFlags, Parser, Response};
//!
//! // Bridge: encode a command (Python SDK addressing, sequence 1).
//! let drive = Command::DriveWithHeading { speed: 128, heading_deg: 90, flags: HeadingFlags::NONE };
//! let frame = drive.to_packet(1, AddressStyle::TargetOnly)?.to_frame()?;
//! assert_eq!(&frame[..], &[0x8D, 0x18, 0x02, 0x16, 0x07, 0x01, 0x80, 0x00, 0x5A, 0x00, 0xED, 0xD8]);
//!
//! // Twin: parse it out of a byte stream with some line noise in front.
//! let mut parser = Parser::new();
//! let mut received = None;
//! for &byte in [0x00, 0x42].iter().chain(frame.iter()) {
//!     if let Some(Ok(packet)) = parser.push(byte) {
//!         received = Some(packet);
//!     }
//! }
//! let packet = received.unwrap();
//! assert_eq!(Command::from_packet(&packet)?, drive);
//! assert_eq!(parser.stats().skipped_bytes, 2);
//!
//! // Twin: answer a battery query; bridge: decode the answer.
//! let query = Command::GetBatteryPercentage.to_packet(2, AddressStyle::TargetAndSource)?;
//! let answer = Response::BatteryPercentage(85).to_packet(&query.header)?;
//! assert_eq!(Response::from_packet(&answer)?, Response::BatteryPercentage(85));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod command;
pub mod constants;
pub mod error;
pub mod notification;
pub mod packet;
pub mod parser;
pub mod response;
pub mod streaming;
pub mod values;
mod wire;

pub use command::{
    COMMANDS, Command, CommandKind, CommandSpec, HeadingFlags, Len, MotorMode, RcFlags, ServedBy,
    VoltageReading, XyDirection, XyDriveFlags,
};
pub use error::{DecodeError, EncodeError, ErrorCode};
pub use notification::{NOTIFICATIONS, Notification, NotificationKind, NotificationSpec};
pub use packet::{AddressStyle, Flags, Frame, Header, Packet, Processor};
pub use parser::{Feed, ParseError, Parser, ParserStats, decode_frame};
pub use response::{BatteryVoltageState, MotorThermal, Response, ThermalStatus};
pub use streaming::{
    Attitude, ColorReading, DataSize, EncoderTicks, Quaternion, SensorSample, SensorService,
    StreamEntry, StreamStatus, StreamingConfig, StreamingData, Vector2, Vector3, denormalize,
    normalize,
};
pub use values::{
    Bytes, ColorDetection, ColorMatch, ColorMatches, ColorPalette, EchoData, GyroMaxFlags,
    InfraredReadings, LedValues, LocatorFlags, Motor, PaletteEntry, Text, Version,
};
