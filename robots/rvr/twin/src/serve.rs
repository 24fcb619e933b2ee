//! The RVR served on a serial line (`twinrig serve rvr --pty`): a physics
//! world with the RVR body at the origin facing world +y (so the locator's
//! frame and the world's agree) and the Nordic/ST processors on the line,
//! for the Sphero SDK or any host that speaks the packet protocol.

use rvr_protocol::{Command, CommandKind, Notification, Packet, Parser, Processor};
use serde_json::{Value, json};
use twinrig_kind::KindError;
use twinrig_kind::serve::{Frame, Framer, LineDirection, ServeModel, ServedRobot, spaced_hex};
use twinrig_sim::Sim;
use twinrig_sim::physics::{PhysicsConfig, PhysicsWorld};
use twinrig_sim::uart::UartPort;

use crate::drive::PlanarPose;
use crate::{DriveParams, RvrBody, RvrConfig, RvrTwin};

/// The RVR's UART speed (Sphero's SDKs open the port at 115200).
pub const RVR_BAUD: u32 = 115_200;

/// How the RVR is served.
pub struct RvrServe;

impl ServeModel for RvrServe {
    fn default_baud(&self) -> u32 {
        RVR_BAUD
    }
    fn title(&self) -> &'static str {
        "RVR twin"
    }
    fn line_name(&self) -> &'static str {
        "rvr"
    }
    fn build(&self, sim: &mut Sim, robot_end: UartPort) -> Result<Box<dyn ServedRobot>, KindError> {
        let h = sim.handle();
        let physics = PhysicsWorld::new(&h, PhysicsConfig::default())
            .map_err(|e| KindError::Build(e.to_string()))?;
        sim.add_process("physics", physics.clone());
        let body = RvrBody::spawn(&physics, "rvr", 0.0, 0.0, 90.0, DriveParams::default())
            .map_err(|e| KindError::Build(e.to_string()))?;
        let (rx, tx) = robot_end.split();
        let twin = RvrTwin::spawn(&h, "rvr", body, rx, tx, RvrConfig::default());
        let start_pose = twin.body().planar();
        Ok(Box::new(ServedRvr { twin, start_pose }))
    }
    fn framer(&self, direction: LineDirection) -> Box<dyn Framer> {
        Box::new(RvrFramer {
            parser: Box::new(Parser::new()),
            raw: Vec::new(),
            direction,
        })
    }
}

struct ServedRvr {
    twin: RvrTwin,
    start_pose: PlanarPose,
}

impl ServedRvr {
    fn moved_m(&self) -> f32 {
        let (a, b) = (self.start_pose, self.twin.body().planar());
        (b.x - a.x).hypot(b.y - a.y)
    }
}

fn pose_json(p: PlanarPose) -> Value {
    json!({ "x": p.x, "y": p.y, "yaw_deg": p.yaw.to_degrees() })
}

impl ServedRobot for ServedRvr {
    fn report(&self) -> Value {
        json!({
            "start_pose": pose_json(self.start_pose),
            "pose": pose_json(self.twin.body().planar()),
            "moved_m": self.moved_m(),
            "rvr": self.twin.stats(),
        })
    }
    fn describe(&self) -> String {
        let (p, stats) = (self.twin.body().planar(), self.twin.stats());
        format!(
            "{} commands, {} responses; the RVR moved {:.3} m, now at x {:.3} m, y {:.3} m, yaw {:.1} deg",
            stats.commands,
            stats.responses,
            self.moved_m(),
            p.x,
            p.y,
            p.yaw.to_degrees(),
        )
    }
}

/// One direction of the RVR's line, framed by the protocol's own parser.
struct RvrFramer {
    parser: Box<Parser>,
    /// Bytes pushed since the last frame ended: the frame's wire bytes.
    raw: Vec<u8>,
    direction: LineDirection,
}

impl Framer for RvrFramer {
    fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        for &b in bytes {
            self.raw.push(b);
            if let Some(result) = self.parser.push(b) {
                let description = match result {
                    Ok(packet) => describe(&packet, self.direction),
                    Err(e) => format!("rejected frame: {e:?}"),
                };
                out.push(Frame {
                    bytes: std::mem::take(&mut self.raw),
                    description,
                });
            }
        }
        out
    }
}

fn processor_name(id: Option<u8>) -> String {
    match id.and_then(Processor::from_address) {
        Some(p) => format!("{p:?}"),
        None => "-".into(),
    }
}

fn kind_name(device_id: u8, command_id: u8) -> String {
    CommandKind::from_ids(device_id, command_id)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("DID 0x{device_id:02X} CID 0x{command_id:02X}"))
}

fn describe(p: &Packet, direction: LineDirection) -> String {
    let h = &p.header;
    if let Some(error) = h.error {
        let payload = if p.payload().is_empty() {
            String::new()
        } else {
            format!(" [{}]", spaced_hex(p.payload()))
        };
        return format!(
            "response {} seq {} from {}: {error:?}{payload}",
            kind_name(h.device_id, h.command_id),
            h.sequence,
            processor_name(h.source),
        );
    }
    match direction {
        LineDirection::ToRobot => match Command::from_packet(p) {
            Ok(c) => format!(
                "command {c:?} seq {} to {}",
                h.sequence,
                h.destination()
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "-".into())
            ),
            Err(e) => format!(
                "command {} seq {} (not decoded: {e:?})",
                kind_name(h.device_id, h.command_id),
                h.sequence
            ),
        },
        LineDirection::ToHost => match Notification::from_packet(p) {
            Ok(n) => format!("notification {n:?} from {}", processor_name(h.source)),
            Err(e) => format!(
                "notification DID 0x{:02X} CID 0x{:02X} from {} (not decoded: {e:?})",
                h.device_id,
                h.command_id,
                processor_name(h.source)
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(direction: LineDirection, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut framer = RvrServe.framer(direction);
        chunks.iter().flat_map(|c| framer.push(c)).collect()
    }

    #[test]
    fn frames_are_split_and_decoded_both_ways() {
        // get_battery_percentage, Node.js style, then its response (85 %):
        // the fact sheet's worked example, the command fed in two pieces.
        let command = frames(
            LineDirection::ToRobot,
            &[&[0x8D, 0x3A, 0x11, 0x01], &[0x13, 0x10, 0x05, 0x8B, 0xD8]],
        );
        assert_eq!(command.len(), 1, "{command:?}");
        assert_eq!(spaced_hex(&command[0].bytes), "8D 3A 11 01 13 10 05 8B D8");
        assert_eq!(
            command[0].description,
            "command GetBatteryPercentage seq 5 to Nordic"
        );
        let response = frames(
            LineDirection::ToHost,
            &[&[
                0x8D, 0x31, 0x01, 0x11, 0x13, 0x10, 0x05, 0x00, 0x55, 0x3F, 0xD8,
            ]],
        );
        assert_eq!(
            response[0].description,
            "response GetBatteryPercentage seq 5 from Nordic: Success [55]"
        );
    }

    #[test]
    fn a_corrupt_frame_is_rejected_with_its_bytes() {
        let f = frames(
            LineDirection::ToRobot,
            &[&[0x8D, 0x3A, 0x11, 0x01, 0x13, 0x10, 0x05, 0x8C, 0xD8]],
        );
        assert!(f[0].description.starts_with("rejected frame"), "{f:?}");
        assert_eq!(spaced_hex(&f[0].bytes), "8D 3A 11 01 13 10 05 8C D8");
    }
}
