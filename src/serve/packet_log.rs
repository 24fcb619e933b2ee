//! `twinrig serve --log FILE`: every packet on the served line, both ways,
//! one line each: virtual time since serving began (it follows the wall
//! clock), direction, the frame's bytes in hex, and what they decode to.
//!
//! ```text
//!     0.412031 host -> rvr   8D 1A 01 13 10 01 C0 D8  command GetBatteryPercentage seq 1 to Nordic
//!     0.413520 rvr -> host   8D 01 01 13 10 01 00 64 F6 D8  response GetBatteryPercentage seq 1 from Nordic: success [64]
//! ```
//!
//! Each direction has its own framer (the served kind's protocol parser), fed the
//! bytes as they cross the simulated line, so a user sees exactly what their
//! client sent and what the twin answered, including frames the twin
//! rejected and bytes it skipped.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use twinrig_kind::serve::{Framer, LineDirection, ServeModel, spaced_hex};
use twinrig_sim::Nanos;

/// The log file and the robot's framer for each direction.
pub struct PacketLog {
    out: BufWriter<File>,
    line_name: &'static str,
    to_robot: Box<dyn Framer>,
    to_host: Box<dyn Framer>,
    start: Nanos,
    /// The first write error; logging stops there and serving reports it.
    error: Option<io::Error>,
}

impl PacketLog {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path, model: &dyn ServeModel, start: Nanos) -> io::Result<PacketLog> {
        let file = File::create(path)?;
        Ok(PacketLog {
            out: BufWriter::new(file),
            line_name: model.line_name(),
            to_robot: model.framer(LineDirection::ToRobot),
            to_host: model.framer(LineDirection::ToHost),
            start,
            error: None,
        })
    }

    /// Bytes that crossed the line at virtual time `at`.
    pub fn bytes(&mut self, at: Nanos, direction: LineDirection, bytes: &[u8]) {
        let (framer, arrow) = match direction {
            LineDirection::ToRobot => (&mut self.to_robot, format!("host -> {}", self.line_name)),
            LineDirection::ToHost => (&mut self.to_host, format!("{} -> host", self.line_name)),
        };
        let frames = framer.push(bytes);
        let t = at.saturating_sub(self.start) as f64 / 1e9;
        for frame in frames {
            let (hex, description) = (spaced_hex(&frame.bytes), frame.description);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(robot: &str, lines: &[(LineDirection, &[u8])]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.txt");
        let model = crate::devices::kind(robot).unwrap().serve().unwrap();
        let mut log = PacketLog::create(&path, model, 1_000).unwrap();
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
            "rvr",
            &[
                (LineDirection::ToRobot, &[0x8D, 0x3A, 0x11, 0x01]),
                (LineDirection::ToRobot, &[0x13, 0x10, 0x05, 0x8B, 0xD8]),
                (
                    LineDirection::ToHost,
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
            "rvr",
            &[(
                LineDirection::ToRobot,
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
            "hand",
            &[
                (
                    LineDirection::ToRobot,
                    &[0xFF, 0xFF, 0x01, 0x04, 0x02, 0x38, 0x02, 0xBE],
                ),
                (
                    LineDirection::ToHost,
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
