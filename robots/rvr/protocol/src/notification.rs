//! Typed asynchronous notifications (robot -> host, unsolicited).
//!
//! Notifications are command packets (is-response clear) carrying a notify
//! DID/CID, with the source id naming the emitting processor; they request
//! no response and the host does not answer them. [`NOTIFICATIONS`] is their
//! table: ids, emitting processor and payload length.

use crate::command::{Len, ServedBy};
use crate::constants::{device, drive, power, sensor};
use crate::error::{DecodeError, EncodeError};
use crate::packet::{AddressStyle, Packet, Processor};
use crate::response::{BatteryVoltageState, MotorThermal};
use crate::streaming::StreamingData;
use crate::values::{ColorDetection, GyroMaxFlags, Motor};
use crate::wire::{Reader, Writer};

/// Which notification a packet is, numbered in the order of [`NOTIFICATIONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    WillSleep,
    DidSleep,
    BatteryVoltageStateChange,
    MotorStall,
    MotorFault,
    XyPositionDriveResult,
    RobotHasStopped,
    GyroMax,
    InfraredMessageReceived,
    ColorDetection,
    StreamingData,
    MotorThermalProtectionStatus,
}

/// One row of the notification table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotificationSpec {
    pub kind: NotificationKind,
    /// The notification's name in Sphero's API (the Python SDK's handler
    /// name without `on_`).
    pub name: &'static str,
    pub device_id: u8,
    pub command_id: u8,
    /// The processor(s) that emit it.
    pub source: ServedBy,
    pub payload: Len,
}

/// Number of typed notifications.
pub const NOTIFICATION_COUNT: usize = 12;

const fn spec(
    kind: NotificationKind,
    name: &'static str,
    (device_id, command_id): (u8, u8),
    source: ServedBy,
    payload: Len,
) -> NotificationSpec {
    NotificationSpec {
        kind,
        name,
        device_id,
        command_id,
        source,
        payload,
    }
}

/// The notification table, in [`NotificationKind`] order.
#[rustfmt::skip]
pub const NOTIFICATIONS: [NotificationSpec; NOTIFICATION_COUNT] = {
    use NotificationKind as K;
    use Len::Fixed as F;
    use ServedBy::{Either, Nordic, St};
    let (pw, dr, se) = (device::POWER, device::DRIVE, device::SENSOR);
    [
        spec(K::WillSleep, "will_sleep_notify", (pw, power::WILL_SLEEP_NOTIFY), Nordic, F(0)),
        spec(K::DidSleep, "did_sleep_notify", (pw, power::DID_SLEEP_NOTIFY), Nordic, F(0)),
        spec(K::BatteryVoltageStateChange, "battery_voltage_state_change_notify", (pw, power::BATTERY_VOLTAGE_STATE_CHANGE_NOTIFY), Nordic, F(1)),
        spec(K::MotorStall, "motor_stall_notify", (dr, drive::MOTOR_STALL_NOTIFY), St, F(2)),
        spec(K::MotorFault, "motor_fault_notify", (dr, drive::MOTOR_FAULT_NOTIFY), St, F(1)),
        spec(K::XyPositionDriveResult, "xy_position_drive_result_notify", (dr, drive::XY_POSITION_DRIVE_RESULT_NOTIFY), St, F(1)),
        spec(K::RobotHasStopped, "robot_has_stopped_notify", (dr, drive::ROBOT_HAS_STOPPED_NOTIFY), St, F(0)),
        spec(K::GyroMax, "gyro_max_notify", (se, sensor::GYRO_MAX_NOTIFY), St, F(1)),
        spec(K::InfraredMessageReceived, "robot_to_robot_infrared_message_received_notify", (se, sensor::ROBOT_TO_ROBOT_INFRARED_MESSAGE_RECEIVED_NOTIFY), St, F(1)),
        spec(K::ColorDetection, "color_detection_notify", (se, sensor::COLOR_DETECTION_NOTIFY), Nordic, F(5)),
        spec(K::StreamingData, "streaming_service_data_notify", (se, sensor::STREAMING_SERVICE_DATA_NOTIFY), Either, Len::Variable { min: 1, max: crate::constants::framing::MAX_PAYLOAD_LEN }),
        spec(K::MotorThermalProtectionStatus, "motor_thermal_protection_status_notify", (se, sensor::MOTOR_THERMAL_PROTECTION_STATUS_NOTIFY), St, F(10)),
    ]
};

impl NotificationKind {
    /// Every notification, in table order.
    pub const ALL: [NotificationKind; NOTIFICATION_COUNT] = {
        let mut all = [NotificationKind::WillSleep; NOTIFICATION_COUNT];
        let mut i = 0;
        while i < NOTIFICATION_COUNT {
            all[i] = NOTIFICATIONS[i].kind;
            i += 1;
        }
        all
    };

    /// Its row of [`NOTIFICATIONS`].
    pub const fn spec(self) -> &'static NotificationSpec {
        // Invariant checked by a unit test: row i describes kind i.
        &NOTIFICATIONS[self as usize]
    }

    /// (DID, CID) on the wire.
    pub const fn ids(self) -> (u8, u8) {
        (self.spec().device_id, self.spec().command_id)
    }

    /// The notification with these ids, or why there is none.
    pub fn from_ids(device_id: u8, command_id: u8) -> Result<NotificationKind, DecodeError> {
        if let Some(spec) = NOTIFICATIONS
            .iter()
            .find(|s| (s.device_id, s.command_id) == (device_id, command_id))
        {
            return Ok(spec.kind);
        }
        if NOTIFICATIONS.iter().any(|s| s.device_id == device_id) {
            Err(DecodeError::UnknownCommand {
                device_id,
                command_id,
            })
        } else {
            Err(DecodeError::UnknownDevice { device_id })
        }
    }
}

/// A typed notification.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Notification {
    /// Power: the robot is about to sleep (Nordic).
    WillSleep,
    /// Power: the robot went to sleep (Nordic).
    DidSleep,
    /// Power: the battery voltage state changed (Nordic).
    BatteryVoltageStateChange(BatteryVoltageState),
    /// Drive: a motor's stall protection triggered or cleared.
    MotorStall { motor: Motor, triggered: bool },
    /// Drive: a motor fault began or ended.
    MotorFault { is_fault: bool },
    /// Drive: result of a `drive_to_position_*`.
    XyPositionDriveResult { success: bool },
    /// Drive: the robot has stopped (e.g. after the drive command timeout).
    RobotHasStopped,
    /// Sensor: a rotation rate went beyond the gyro's range.
    GyroMax(GyroMaxFlags),
    /// Sensor: another robot's infrared code was received.
    InfraredMessageReceived { code: u8 },
    /// Sensor: the colour under the robot (Nordic).
    ColorDetection(ColorDetection),
    /// Sensor: one streaming slot's data; decode with
    /// [`StreamingData::decode`] and the slot's configuration.
    StreamingData(StreamingData),
    /// Sensor: a motor's thermal protection status changed.
    MotorThermalProtectionStatus {
        left: MotorThermal,
        right: MotorThermal,
    },
}

impl Notification {
    /// Which notification this is.
    pub const fn kind(&self) -> NotificationKind {
        use NotificationKind as K;
        match self {
            Notification::WillSleep => K::WillSleep,
            Notification::DidSleep => K::DidSleep,
            Notification::BatteryVoltageStateChange(_) => K::BatteryVoltageStateChange,
            Notification::MotorStall { .. } => K::MotorStall,
            Notification::MotorFault { .. } => K::MotorFault,
            Notification::XyPositionDriveResult { .. } => K::XyPositionDriveResult,
            Notification::RobotHasStopped => K::RobotHasStopped,
            Notification::GyroMax(_) => K::GyroMax,
            Notification::InfraredMessageReceived { .. } => K::InfraredMessageReceived,
            Notification::ColorDetection(_) => K::ColorDetection,
            Notification::StreamingData(_) => K::StreamingData,
            Notification::MotorThermalProtectionStatus { .. } => K::MotorThermalProtectionStatus,
        }
    }

    /// (DID, CID) on the wire.
    pub const fn ids(&self) -> (u8, u8) {
        self.kind().ids()
    }

    /// The processor that emits it (streaming data comes from whichever
    /// processor holds the slot; ST is returned for it).
    pub const fn default_source(&self) -> Processor {
        match self.kind().spec().source.only() {
            Some(p) => p,
            None => Processor::St,
        }
    }

    /// The packet for this notification from `source`, addressed per
    /// [`AddressStyle::notification_header`]. `sequence` is the robot's
    /// choice (undocumented).
    pub fn to_packet(
        &self,
        sequence: u8,
        source: Processor,
        style: AddressStyle,
    ) -> Result<Packet, EncodeError> {
        let (did, cid) = self.ids();
        let header = style.notification_header(source, did, cid, sequence);
        let mut w = Writer::new();
        match *self {
            Notification::WillSleep | Notification::DidSleep | Notification::RobotHasStopped => {}
            Notification::BatteryVoltageStateChange(state) => {
                w.u8(state.code())?;
            }
            Notification::MotorStall { motor, triggered } => {
                w.u8(motor.code())?.bool(triggered)?;
            }
            Notification::MotorFault { is_fault } => {
                w.bool(is_fault)?;
            }
            Notification::XyPositionDriveResult { success } => {
                w.bool(success)?;
            }
            Notification::GyroMax(flags) => {
                w.u8(flags.bits())?;
            }
            Notification::InfraredMessageReceived { code } => {
                w.u8(code)?;
            }
            Notification::ColorDetection(c) => {
                w.u8(c.red)?
                    .u8(c.green)?
                    .u8(c.blue)?
                    .u8(c.confidence)?
                    .u8(c.classification)?;
            }
            Notification::StreamingData(ref data) => data.write(&mut w)?,
            Notification::MotorThermalProtectionStatus { left, right } => {
                left.write(&mut w)?;
                right.write(&mut w)?;
            }
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
        let kind = NotificationKind::from_ids(header.device_id, header.command_id)?;
        let payload = packet.payload();
        if !kind.spec().payload.admits(payload.len()) {
            return Err(DecodeError::BadLength { len: payload.len() });
        }
        let mut r = Reader::new(payload);
        let bad = DecodeError::BadValue;
        use NotificationKind as K;
        let notification = match kind {
            K::WillSleep => Notification::WillSleep,
            K::DidSleep => Notification::DidSleep,
            K::BatteryVoltageStateChange => Notification::BatteryVoltageStateChange(
                BatteryVoltageState::from_code(r.u8()?).ok_or(bad)?,
            ),
            K::MotorStall => Notification::MotorStall {
                motor: Motor::from_code(r.u8()?).ok_or(bad)?,
                triggered: r.bool()?,
            },
            K::MotorFault => Notification::MotorFault {
                is_fault: r.bool()?,
            },
            K::XyPositionDriveResult => Notification::XyPositionDriveResult { success: r.bool()? },
            K::RobotHasStopped => Notification::RobotHasStopped,
            K::GyroMax => Notification::GyroMax(GyroMaxFlags::from_bits(r.u8()?).ok_or(bad)?),
            K::InfraredMessageReceived => Notification::InfraredMessageReceived { code: r.u8()? },
            K::ColorDetection => Notification::ColorDetection(ColorDetection {
                red: r.u8()?,
                green: r.u8()?,
                blue: r.u8()?,
                confidence: r.u8()?,
                classification: r.u8()?,
            }),
            K::StreamingData => {
                return StreamingData::read(payload).map(Notification::StreamingData);
            }
            K::MotorThermalProtectionStatus => Notification::MotorThermalProtectionStatus {
                left: MotorThermal::read(&mut r)?,
                right: MotorThermal::read(&mut r)?,
            },
        };
        r.finish()?;
        Ok(notification)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_kind_order_with_distinct_ids() {
        for (i, spec) in NOTIFICATIONS.iter().enumerate() {
            assert_eq!(spec.kind as usize, i, "{}", spec.name);
            assert_eq!(NotificationKind::ALL[i], spec.kind);
            for other in &NOTIFICATIONS[i + 1..] {
                assert_ne!(
                    (spec.device_id, spec.command_id),
                    (other.device_id, other.command_id)
                );
            }
            // A notification id is never a command id.
            assert!(crate::CommandKind::from_ids(spec.device_id, spec.command_id).is_err());
        }
    }
}
