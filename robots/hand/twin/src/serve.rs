//! The hand's servo bus served on a serial line (`twinrig serve hand --pty`):
//! 8 SCS0009 twins (ids 1..=8) answering the SCS protocol, for a host driver
//! such as rustypot. The bus runs at the served baud rate; a host that opens
//! it at another rate would also have to set the servos' baud register (not
//! modelled).

use serde_json::{Value, json};
use twinrig_kind::KindError;
use twinrig_kind::serve::{Frame, Framer, LineDirection, ServeModel, ServedRobot, spaced_hex};
use twinrig_sim::Sim;
use twinrig_sim::uart::UartPort;

use crate::protocol::{Instruction, Packet, ParseEvent, Parser};
use crate::{BusConfig, HAND_BAUD, ServoBus};

/// How the hand's bus is served.
pub struct HandServe;

impl ServeModel for HandServe {
    fn default_baud(&self) -> u32 {
        HAND_BAUD
    }
    fn title(&self) -> &'static str {
        "Amazing Hand servo bus (SCS0009 ids 1-8)"
    }
    fn line_name(&self) -> &'static str {
        "bus"
    }
    fn build(&self, sim: &mut Sim, robot_end: UartPort) -> Result<Box<dyn ServedRobot>, KindError> {
        let (rx, tx) = robot_end.split();
        let bus = ServoBus::spawn(&sim.handle(), "hand", rx, tx, BusConfig::default());
        Ok(Box::new(ServedBus(bus)))
    }
    fn framer(&self, direction: LineDirection) -> Box<dyn Framer> {
        Box::new(ScsFramer {
            parser: Parser::new(),
            direction,
        })
    }
}

struct ServedBus(ServoBus);

impl ServedRobot for ServedBus {
    fn report(&self) -> Value {
        let servos = self.0.snapshot();
        json!({
            "bus": self.0.stats(),
            "torque_on": servos.iter().filter(|s| s.torque).count(),
            "servos": servos,
        })
    }
    fn describe(&self) -> String {
        let (stats, servos) = (self.0.stats(), self.0.snapshot());
        format!(
            "{} packets, {} replies, {} missed, {} bad checksums; torque on {}/{}; angles {}",
            stats.packets,
            stats.replies,
            stats.missed,
            stats.bad_checksums,
            servos.iter().filter(|s| s.torque).count(),
            servos.len(),
            servos
                .iter()
                .map(|s| format!("{}:{:.1}", s.id, s.position_deg))
                .collect::<Vec<_>>()
                .join(" "),
        )
    }
}

/// One direction of the bus, framed by the twin's own SCS parser.
struct ScsFramer {
    parser: Parser,
    direction: LineDirection,
}

impl Framer for ScsFramer {
    fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        for &b in bytes {
            self.parser.push(b);
        }
        let mut out = Vec::new();
        while let Some(event) = self.parser.next_event() {
            out.push(match event {
                ParseEvent::Packet(p) => Frame {
                    bytes: p.encode().unwrap_or_default(),
                    description: describe(&p, self.direction),
                },
                ParseEvent::BadChecksum { id } => Frame {
                    bytes: Vec::new(),
                    description: format!("frame for id {id} with a bad checksum"),
                },
            });
        }
        out
    }
}

fn describe(p: &Packet, direction: LineDirection) -> String {
    match direction {
        LineDirection::ToRobot => match Instruction::parse(p) {
            Ok(i) => format!("id {}: {i:?}", p.id),
            Err(e) => format!("id {}: {e}", p.id),
        },
        LineDirection::ToHost => format!(
            "status id {} error 0x{:02X} data [{}]",
            p.id,
            p.code,
            spaced_hex(&p.params)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_and_status_packets_are_decoded() {
        // READ present position of servo 1, and the reply 630 (fact sheet §2.1).
        let mut to_bus = HandServe.framer(LineDirection::ToRobot);
        let read = to_bus.push(&[0xFF, 0xFF, 0x01, 0x04, 0x02, 0x38, 0x02, 0xBE]);
        assert_eq!(read.len(), 1, "{read:?}");
        assert_eq!(spaced_hex(&read[0].bytes), "FF FF 01 04 02 38 02 BE");
        assert!(read[0].description.starts_with("id 1: Read"), "{read:?}");
        let mut to_host = HandServe.framer(LineDirection::ToHost);
        let reply = to_host.push(&[0xFF, 0xFF, 0x01, 0x04, 0x00, 0x02, 0x76, 0x82]);
        assert_eq!(reply[0].description, "status id 1 error 0x00 data [02 76]");
    }
}
