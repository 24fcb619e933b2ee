//! Typed asynchronous notifications (robot -> host, unsolicited).
//!
//! Notifications are command packets (is-response clear) carrying a notify
//! DID/CID, with the source id naming the emitting processor. The host does
//! not answer them.

use crate::constants::{device, drive, power, sensor};
use crate::error::{DecodeError, EncodeError};
use crate::packet::{AddressStyle, Packet, Processor};
use crate::streaming::StreamingData;
use crate::wire::{Reader, Writer};

/// A typed notification.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Notification {
    /// Power: the robot is about to sleep (Nordic).
    WillSleep,
    /// Power: the robot went to sleep (Nordic).
    DidSleep,
    /// Drive: the robot has stopped (e.g. after the drive command timeout).
    RobotHasStopped,
    /// Drive: result of a `drive_to_position_*`.
    XyPositionDriveResult { success: bool },
    /// Sensor: one streaming slot's data; decode with
    /// [`StreamingData::decode`] and the slot's configuration.
    StreamingData(StreamingData),
}

impl Notification {
    /// (DID, CID) on the wire.
    pub const fn ids(&self) -> (u8, u8) {
        match self {
            Notification::WillSleep => (device::POWER, power::WILL_SLEEP_NOTIFY),
            Notification::DidSleep => (device::POWER, power::DID_SLEEP_NOTIFY),
            Notification::RobotHasStopped => (device::DRIVE, drive::ROBOT_HAS_STOPPED_NOTIFY),
            Notification::XyPositionDriveResult { .. } => {
                (device::DRIVE, drive::XY_POSITION_DRIVE_RESULT_NOTIFY)
            }
            Notification::StreamingData(_) => {
                (device::SENSOR, sensor::STREAMING_SERVICE_DATA_NOTIFY)
            }
        }
    }

    /// The processor that emits it by default (streaming data comes from
    /// whichever processor holds the slot; ST is returned for it).
    pub fn default_source(&self) -> Processor {
        let (did, cid) = self.ids();
        Processor::default_for(did, cid).unwrap_or(Processor::St)
    }

    /// The packet for this notification from `source`, addressed per
    /// [`AddressStyle::notification_header`] (**assumed** flags and ids).
    /// `sequence` is the robot's choice (undocumented).
    pub fn to_packet(
        &self,
        sequence: u8,
        source: Processor,
        style: AddressStyle,
    ) -> Result<Packet, EncodeError> {
        let (did, cid) = self.ids();
        let header = style.notification_header(source, did, cid, sequence);
        let mut w = Writer::new();
        match self {
            Notification::WillSleep | Notification::DidSleep | Notification::RobotHasStopped => {}
            Notification::XyPositionDriveResult { success } => {
                w.bool(*success)?;
            }
            Notification::StreamingData(data) => data.write(&mut w)?,
        }
        Ok(Packet::from_parts(header, w.finish()))
    }

    /// Decodes a notification packet (any addressing; the source is in
    /// `packet.header.origin()`).
    pub fn from_packet(packet: &Packet) -> Result<Notification, DecodeError> {
        let header = &packet.header;
        if header.is_response() {
            return Err(DecodeError::UnexpectedResponse);
        }
        let payload = packet.payload();
        let mut r = Reader::new(payload);
        let notification = match (header.device_id, header.command_id) {
            (device::POWER, power::WILL_SLEEP_NOTIFY) => Notification::WillSleep,
            (device::POWER, power::DID_SLEEP_NOTIFY) => Notification::DidSleep,
            (device::DRIVE, drive::ROBOT_HAS_STOPPED_NOTIFY) => Notification::RobotHasStopped,
            (device::DRIVE, drive::XY_POSITION_DRIVE_RESULT_NOTIFY) => {
                if payload.len() != 1 {
                    return Err(DecodeError::BadLength { len: payload.len() });
                }
                Notification::XyPositionDriveResult { success: r.bool()? }
            }
            (device::SENSOR, sensor::STREAMING_SERVICE_DATA_NOTIFY) => {
                return StreamingData::read(payload).map(Notification::StreamingData);
            }
            (device::POWER | device::DRIVE | device::SENSOR, command_id) => {
                return Err(DecodeError::UnknownCommand {
                    device_id: header.device_id,
                    command_id,
                });
            }
            (device_id, _) => return Err(DecodeError::UnknownDevice { device_id }),
        };
        r.finish()?;
        Ok(notification)
    }
}
