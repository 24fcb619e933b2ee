//! Serving a kind live on a serial line (`twinrig serve <kind> --pty`).
//!
//! The root crate owns the pty, the wall-clock pacing and the packet log; a
//! kind that can be served says how fast its line runs, builds its twin on
//! the robot's end of a simulated UART, reports on it at the end, and frames
//! and decodes the bytes that cross the line for the log.

use serde_json::Value;
use twinrig_sim::Sim;
use twinrig_sim::uart::UartPort;

use crate::KindError;

/// Which way bytes cross a served line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineDirection {
    /// From the host program (the pty) to the robot.
    ToRobot,
    /// From the robot to the host program.
    ToHost,
}

/// How a kind is served on a serial line.
pub trait ServeModel: Sync {
    /// The robot's own line speed, baud.
    fn default_baud(&self) -> u32;
    /// What is served, for the ready line (`RVR twin on /dev/pts/3 ...`).
    fn title(&self) -> &'static str;
    /// The robot's end of the line in the packet log (`host -> rvr`).
    fn line_name(&self) -> &'static str;
    /// Builds the twin in `sim` on `robot_end` of the line.
    fn build(&self, sim: &mut Sim, robot_end: UartPort) -> Result<Box<dyn ServedRobot>, KindError>;
    /// A framer for the bytes crossing the line one way.
    fn framer(&self, direction: LineDirection) -> Box<dyn Framer>;
}

/// A served twin, kept to report on when serving ends.
pub trait ServedRobot {
    /// Its state (a JSON document, as `expect: device` reads devices).
    fn report(&self) -> Value;
    /// Its state in one sentence, for people.
    fn describe(&self) -> String;
}

/// Splits one direction of a line into the robot's frames.
pub trait Framer {
    /// Feeds bytes; returns every frame they complete.
    fn push(&mut self, bytes: &[u8]) -> Vec<Frame>;
}

/// One frame seen on a served line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its bytes on the wire (empty when the framer could not keep them).
    pub bytes: Vec<u8>,
    /// What they decode to.
    pub description: String,
}

/// Bytes as people read them on a serial line: `8D 1A 01`.
pub fn spaced_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_are_spaced_uppercase_pairs() {
        assert_eq!(super::spaced_hex(&[0x8D, 0x01, 0xD8]), "8D 01 D8");
        assert_eq!(super::spaced_hex(&[]), "");
    }
}
