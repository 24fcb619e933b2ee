//! `twinrig serve --log FILE`: every packet on the served line, both ways,
//! one line each: virtual time since serving began (it follows the wall
//! clock), direction, the frame's bytes in hex, and what they decode to.
//!
//! ```text
//!     0.412031 host -> rvr   8D 1A 01 13 10 01 C0 D8  command GetBatteryPercentage seq 1 to Nordic
//!     0.413520 rvr -> host   8D 01 01 13 10 01 00 64 F6 D8  response GetBatteryPercentage seq 1 from Nordic: success [64]
//! ```
//!
//! Each direction has its own framer (the robot's protocol parser), fed the
//! bytes as they cross the simulated line, so a user sees exactly what their
//! client sent and what the twin answered, including frames the twin
//! rejected and bytes it skipped.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use hand_twin::protocol::{Instruction, Packet as ScsPacket, ParseEvent, Parser as ScsParser};
use rvr_protocol::{Command, CommandKind, Notification, Packet as RvrPacket, Parser as RvrParser};
use twinrig_sim::Nanos;

use super::ServeRobot;

/// Which way bytes cross the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the host program (the pty) to the robot.
    ToRobot,
    /// From the robot to the host program.
    ToHost,
}

/// One direction's framer.
enum Framer {
    Rvr {
        parser: Box<RvrParser>,
        /// Bytes pushed since the last frame ended: the frame's wire bytes.
        raw: Vec<u8>,
    },
    Scs(ScsParser),
}

impl Framer {
    fn new(robot: ServeRobot) -> Framer {
        match robot {
            ServeRobot::Rvr => Framer::Rvr {
                parser: Box::new(RvrParser::new()),
                raw: Vec::new(),
            },
            ServeRobot::Hand => Framer::Scs(ScsParser::new()),
        }
    }

    /// Feeds bytes; returns (hex, description) for every frame they complete.
    fn push(&mut self, bytes: &[u8], direction: Direction) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self {
            Framer::Rvr { parser, raw } => {
                for &b in bytes {
                    raw.push(b);
                    if let Some(result) = parser.push(b) {
                        let description = match result {
                            Ok(packet) => describe_rvr(&packet, direction),
                            Err(e) => format!("rejected frame: {e:?}"),
                        };
                        out.push((hex(raw), description));
                        raw.clear();
                    }
                }
            }
            Framer::Scs(parser) => {
                for &b in bytes {
                    parser.push(b);
                }
                while let Some(event) = parser.next_event() {
                    out.push(match event {
                        ParseEvent::Packet(p) => (
                            p.encode().map(|b| hex(&b)).unwrap_or_default(),
                            describe_scs(&p, direction),
                        ),
                        ParseEvent::BadChecksum { id } => (
                            String::new(),
                            format!("frame for id {id} with a bad checksum"),
                        ),
                    });
                }
            }
        }
        out
    }
}

/// The log file and a framer per direction.
pub struct PacketLog {
    out: BufWriter<File>,
    robot: ServeRobot,
    to_robot: Framer,
    to_host: Framer,
    start: Nanos,
    /// The first write error; logging stops there and serving reports it.
    error: Option<io::Error>,
}

impl PacketLog {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path, robot: ServeRobot, start: Nanos) -> io::Result<PacketLog> {
        let file = File::create(path)?;
        Ok(PacketLog {
            out: BufWriter::new(file),
            robot,
            to_robot: Framer::new(robot),
            to_host: Framer::new(robot),
            start,
            error: None,
        })
    }

    /// Bytes that crossed the line at virtual time `at`.
    pub fn bytes(&mut self, at: Nanos, direction: Direction, bytes: &[u8]) {
        let framer = match direction {
            Direction::ToRobot => &mut self.to_robot,
            Direction::ToHost => &mut self.to_host,
        };
        let lines = framer.push(bytes, direction);
        let name = match self.robot {
            ServeRobot::Rvr => "rvr",
            ServeRobot::Hand => "bus",
        };
        let arrow = match direction {
            Direction::ToRobot => format!("host -> {name}"),
            Direction::ToHost => format!("{name} -> host"),
        };
        let t = at.saturating_sub(self.start) as f64 / 1e9;
        for (hex, description) in lines {
            if self.error.is_none()
                && let Err(e) = writeln!(self.out, "{t:12.6} {arrow:<12}  {hex}  {description}")
            {
                self.error = Some(e);
            }
        }
    }

    /// Flushes what was logged so far, so a user tailing the file sees it.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}

fn processor_name(id: Option<u8>) -> String {
    match id.and_then(rvr_protocol::Processor::from_address) {
        Some(p) => format!("{p:?}"),
        None => "-".into(),
    }
}

fn kind_name(device_id: u8, command_id: u8) -> String {
    CommandKind::from_ids(device_id, command_id)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("DID 0x{device_id:02X} CID 0x{command_id:02X}"))
}

fn describe_rvr(p: &RvrPacket, direction: Direction) -> String {
    let h = &p.header;
    if let Some(error) = h.error {
        let payload = if p.payload().is_empty() {
            String::new()
        } else {
            format!(" [{}]", hex(p.payload()))
        };
        return format!(
            "response {} seq {} from {}: {error:?}{payload}",
            kind_name(h.device_id, h.command_id),
            h.sequence,
            processor_name(h.source),
        );
    }
    match direction {
        Direction::ToRobot => match Command::from_packet(p) {
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
        Direction::ToHost => match Notification::from_packet(p) {
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

fn describe_scs(p: &ScsPacket, direction: Direction) -> String {
    match direction {
        Direction::ToRobot => match Instruction::parse(p) {
            Ok(i) => format!("id {}: {i:?}", p.id),
            Err(e) => format!("id {}: {e}", p.id),
        },
        Direction::ToHost => format!(
            "status id {} error 0x{:02X} data [{}]",
            p.id,
            p.code,
            hex(&p.params)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(robot: ServeRobot, lines: &[(Direction, &[u8])]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.txt");
        let mut log = PacketLog::create(&path, robot, 1_000).unwrap();
        for (i, (d, bytes)) in lines.iter().enumerate() {
            log.bytes(1_000 + i as u64 * 500_000, *d, bytes);
        }
        log.flush().unwrap();
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn rvr_frames_are_split_and_decoded_both_ways() {
        // get_battery_percentage, Node.js style, then its response (85 %):
        // the fact sheet's worked example, fed in two pieces.
        let text = logged(
            ServeRobot::Rvr,
            &[
                (Direction::ToRobot, &[0x8D, 0x3A, 0x11, 0x01]),
                (Direction::ToRobot, &[0x13, 0x10, 0x05, 0x8B, 0xD8]),
                (
                    Direction::ToHost,
                    &[
                        0x8D, 0x31, 0x01, 0x11, 0x13, 0x10, 0x05, 0x00, 0x55, 0x3F, 0xD8,
                    ],
                ),
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("host -> rvr"), "{text}");
        assert!(lines[0].contains("8D 3A 11 01 13 10 05 8B D8"), "{text}");
        assert!(
            lines[0].contains("command GetBatteryPercentage seq 5 to Nordic"),
            "{text}"
        );
        assert!(lines[0].trim_start().starts_with("0.000500"), "{text}");
        assert!(lines[1].contains("rvr -> host"), "{text}");
        assert!(
            lines[1].contains("response GetBatteryPercentage seq 5 from Nordic: Success [55]"),
            "{text}"
        );
    }

    #[test]
    fn a_corrupt_rvr_frame_is_logged_as_rejected() {
        let text = logged(
            ServeRobot::Rvr,
            &[(
                Direction::ToRobot,
                &[0x8D, 0x3A, 0x11, 0x01, 0x13, 0x10, 0x05, 0x8C, 0xD8],
            )],
        );
        assert!(text.contains("rejected frame"), "{text}");
        assert!(text.contains("8D 3A 11 01 13 10 05 8C D8"), "{text}");
    }

    #[test]
    fn scs_instructions_and_status_packets_are_decoded() {
        // READ present position of servo 1, and the reply 630 (fact sheet §2.1).
        let text = logged(
            ServeRobot::Hand,
            &[
                (
                    Direction::ToRobot,
                    &[0xFF, 0xFF, 0x01, 0x04, 0x02, 0x38, 0x02, 0xBE],
                ),
                (
                    Direction::ToHost,
                    &[0xFF, 0xFF, 0x01, 0x04, 0x00, 0x02, 0x76, 0x82],
                ),
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("host -> bus"), "{text}");
        assert!(lines[0].contains("FF FF 01 04 02 38 02 BE"), "{text}");
        assert!(lines[0].contains("id 1: Read"), "{text}");
        assert!(lines[1].contains("bus -> host"), "{text}");
        assert!(
            lines[1].contains("status id 1 error 0x00 data [02 76]"),
            "{text}"
        );
    }
}
