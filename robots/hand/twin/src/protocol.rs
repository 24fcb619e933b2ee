//! Feetech SCS packet codec (the SCS0009's wire protocol), written from the
//! facts in amazing-hand.md section 2; no code is taken from rustypot or
//! SCServo.
//!
//! - Instruction packet: `FF FF | ID | LEN | INSTR | PARAMS… | CHK`,
//!   `LEN` = number of params + 2.
//! - Status packet: `FF FF | ID | LEN | ERR | DATA… | CHK`, `LEN` = data + 2.
//! - `CHK` = bitwise NOT of the 8-bit wrapping sum of every byte from `ID`
//!   through the last param; a receiver checks `sum(ID..=CHK) mod 256 == 0xFF`.
//! - Broadcast id 0xFE; a whole packet is at most 250 bytes (FTS-rs).
//! - Words are big-endian on the SCS series (high byte at the lower address);
//!   STS servos are little-endian, which this module does not model.
//!
//! Both packet kinds share one frame layout, so [`Packet`] carries the byte
//! after `LEN` as `code` (an instruction code or a status error byte).

/// The two header bytes.
pub const HEADER: [u8; 2] = [0xFF, 0xFF];
/// Broadcast id: every servo acts, none answers.
pub const BROADCAST_ID: u8 = 0xFE;
/// Longest whole packet, bytes (FTS-rs `MAX_PACKET`).
pub const MAX_PACKET: usize = 250;
/// Largest `LEN` byte that keeps a packet within [`MAX_PACKET`].
pub const MAX_LEN: u8 = (MAX_PACKET - 4) as u8;

/// Instruction codes (SCServo `INST.h`, FTS-rs `protocol.rs`).
pub mod instr {
    /// Are you there? Answered with an empty status.
    pub const PING: u8 = 0x01;
    /// Read `len` bytes from `addr` (params: addr, len).
    pub const READ: u8 = 0x02;
    /// Write bytes from `addr` (params: addr, data…).
    pub const WRITE: u8 = 0x03;
    /// Buffered write, applied by [`ACTION`] (params: addr, data…).
    pub const REG_WRITE: u8 = 0x04;
    /// Applies the buffered write (usually broadcast).
    pub const ACTION: u8 = 0x05;
    /// State reset (HLS series; FTS-rs). Not supported by the SCS0009 twin.
    pub const RESET: u8 = 0x0A;
    /// Offset calibration (FTS-rs). Not supported by the SCS0009 twin.
    pub const OFFSET_CALIBRATION: u8 = 0x0B;
    /// Sync read (params: addr, len, ids…). The SCSCL family does not support it.
    pub const SYNC_READ: u8 = 0x82;
    /// Sync write (params: addr, per-id data len, then id + data repeated). Never answered.
    pub const SYNC_WRITE: u8 = 0x83;
}

/// Status error bits (FTS-rs `error.rs`).
pub mod err {
    /// Input voltage out of the configured limits.
    pub const VOLTAGE: u8 = 1 << 0;
    /// Angle (goal outside the angle limits).
    pub const ANGLE: u8 = 1 << 1;
    /// Over temperature.
    pub const OVERHEAT: u8 = 1 << 2;
    /// Over current.
    pub const OVERCURRENT: u8 = 1 << 3;
    /// Overload.
    pub const OVERLOAD: u8 = 1 << 5;
}

/// The checksum of `body` (the bytes from `ID` through the last param).
pub fn checksum(body: &[u8]) -> u8 {
    !body.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

/// Splits a big-endian SCS word.
pub fn word_to_bytes(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

/// Joins a big-endian SCS word.
pub fn word_from_bytes(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// One frame, instruction or status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Servo id (or [`BROADCAST_ID`]).
    pub id: u8,
    /// Instruction code (instruction packet) or error byte (status packet).
    pub code: u8,
    /// Params (instruction) or data (status).
    pub params: Vec<u8>,
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The packet would exceed [`MAX_PACKET`] bytes.
    #[error("packet of {0} params exceeds {MAX_PACKET} bytes")]
    TooLong(usize),
}

impl Packet {
    /// An instruction packet.
    pub fn instruction(id: u8, instruction: u8, params: Vec<u8>) -> Packet {
        Packet {
            id,
            code: instruction,
            params,
        }
    }

    /// A status packet.
    pub fn status(id: u8, error: u8, data: Vec<u8>) -> Packet {
        Packet {
            id,
            code: error,
            params: data,
        }
    }

    /// The bytes on the wire.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        if self.params.len() + 6 > MAX_PACKET {
            return Err(EncodeError::TooLong(self.params.len()));
        }
        let mut out = Vec::with_capacity(self.params.len() + 6);
        out.extend_from_slice(&HEADER);
        out.push(self.id);
        out.push((self.params.len() + 2) as u8);
        out.push(self.code);
        out.extend_from_slice(&self.params);
        let chk = checksum(&out[2..]);
        out.push(chk);
        Ok(out)
    }

    /// Decodes exactly one whole frame (header included).
    pub fn decode(frame: &[u8]) -> Option<Packet> {
        let mut p = Parser::new();
        let mut got = None;
        for &b in frame {
            p.push(b);
            if let Some(ParseEvent::Packet(pkt)) = p.next_event() {
                got = Some(pkt);
            }
        }
        let s = p.stats();
        (s.skipped_bytes == 0 && s.bad_checksums == 0 && !p.in_frame())
            .then_some(got)
            .flatten()
    }
}

/// An instruction with its params parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// PING.
    Ping,
    /// READ `len` bytes at `addr`.
    Read {
        /// Start address.
        addr: u8,
        /// Byte count.
        len: u8,
    },
    /// WRITE `data` at `addr`.
    Write {
        /// Start address.
        addr: u8,
        /// Bytes.
        data: Vec<u8>,
    },
    /// REG_WRITE (buffered until ACTION).
    RegWrite {
        /// Start address.
        addr: u8,
        /// Bytes.
        data: Vec<u8>,
    },
    /// ACTION.
    Action,
    /// SYNC_WRITE: the same address range on many servos.
    SyncWrite {
        /// Start address.
        addr: u8,
        /// Per-servo `(id, data)`.
        entries: Vec<(u8, Vec<u8>)>,
    },
    /// Any other code (SYNC_READ, RESET, … or unknown), with its raw params.
    Other {
        /// Instruction code.
        code: u8,
        /// Params.
        params: Vec<u8>,
    },
}

/// Params that do not fit the instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InstructionError {
    /// The param count does not fit the instruction.
    #[error("instruction 0x{code:02X} with a malformed parameter block of {len} bytes")]
    Malformed {
        /// Instruction code.
        code: u8,
        /// Param count.
        len: usize,
    },
}

impl Instruction {
    /// Parses an instruction packet's params.
    pub fn parse(p: &Packet) -> Result<Instruction, InstructionError> {
        let bad = || InstructionError::Malformed {
            code: p.code,
            len: p.params.len(),
        };
        let a = &p.params;
        Ok(match p.code {
            instr::PING => Instruction::Ping,
            instr::READ => match a.as_slice() {
                &[addr, len] => Instruction::Read { addr, len },
                _ => return Err(bad()),
            },
            instr::WRITE | instr::REG_WRITE => {
                let (&addr, data) = a.split_first().ok_or_else(bad)?;
                if data.is_empty() {
                    return Err(bad());
                }
                let data = data.to_vec();
                if p.code == instr::WRITE {
                    Instruction::Write { addr, data }
                } else {
                    Instruction::RegWrite { addr, data }
                }
            }
            instr::ACTION => Instruction::Action,
            instr::SYNC_WRITE => {
                let (&addr, rest) = a.split_first().ok_or_else(bad)?;
                let (&len, rest) = rest.split_first().ok_or_else(bad)?;
                let step = usize::from(len) + 1;
                if len == 0 || rest.is_empty() || rest.len() % step != 0 {
                    return Err(bad());
                }
                let entries = rest.chunks(step).map(|c| (c[0], c[1..].to_vec())).collect();
                Instruction::SyncWrite { addr, entries }
            }
            code => Instruction::Other {
                code,
                params: a.clone(),
            },
        })
    }

    /// The instruction packet for `id`.
    pub fn to_packet(&self, id: u8) -> Packet {
        let (code, params) = match self {
            Instruction::Ping => (instr::PING, vec![]),
            Instruction::Read { addr, len } => (instr::READ, vec![*addr, *len]),
            Instruction::Write { addr, data } => (instr::WRITE, [&[*addr], &data[..]].concat()),
            Instruction::RegWrite { addr, data } => {
                (instr::REG_WRITE, [&[*addr], &data[..]].concat())
            }
            Instruction::Action => (instr::ACTION, vec![]),
            Instruction::SyncWrite { addr, entries } => {
                let len = entries.first().map_or(0, |e| e.1.len()) as u8;
                let mut p = vec![*addr, len];
                for (id, d) in entries {
                    p.push(*id);
                    p.extend_from_slice(d);
                }
                (instr::SYNC_WRITE, p)
            }
            Instruction::Other { code, params } => (*code, params.clone()),
        };
        Packet::instruction(id, code, params)
    }
}

/// What the parser found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseEvent {
    /// A frame with a good checksum.
    Packet(Packet),
    /// A whole frame whose checksum failed; `id` is the id byte as received.
    BadChecksum {
        /// The id byte (itself possibly corrupt).
        id: u8,
    },
}

/// Parser counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Good frames.
    pub packets: u64,
    /// Frames whose checksum failed.
    pub bad_checksums: u64,
    /// Bytes dropped while looking for a header (noise, bad frames, bad `LEN`).
    pub skipped_bytes: u64,
    /// Incomplete frames given up on ([`Parser::give_up`]).
    pub truncated: u64,
}

/// Byte-at-a-time frame parser.
///
/// It keeps the bytes of the frame in progress. When a frame turns out bad
/// (checksum, `LEN` out of range, given up after an idle gap) it drops only
/// the first byte and scans the rest again, so a good frame that started
/// inside a bad one is still found. `FF FF FF …` is taken as a longer header
/// (an id of 0xFF is reserved).
#[derive(Debug, Default, Clone)]
pub struct Parser {
    buf: Vec<u8>,
    stats: ParserStats,
}

impl Parser {
    /// An empty parser.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Adds one received byte; then call [`Parser::next_event`] until `None`.
    pub fn push(&mut self, byte: u8) {
        self.buf.push(byte);
    }

    /// The counters.
    pub fn stats(&self) -> ParserStats {
        self.stats
    }

    /// True if bytes of an unfinished frame are held.
    pub fn in_frame(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Forgets any frame in progress (a line break).
    pub fn reset(&mut self) {
        self.stats.skipped_bytes += self.buf.len() as u64;
        self.buf.clear();
    }

    /// Gives up on the unfinished frame (the line went idle mid-frame): drops
    /// its first byte and rescans the rest. Call `next_event` afterwards.
    pub fn give_up(&mut self) {
        if !self.buf.is_empty() {
            self.stats.truncated += 1;
            self.skip(1);
        }
    }

    fn skip(&mut self, n: usize) {
        self.stats.skipped_bytes += n as u64;
        self.buf.drain(..n);
    }

    /// The next complete frame or bad checksum, if the held bytes make one.
    pub fn next_event(&mut self) -> Option<ParseEvent> {
        loop {
            let b = &self.buf;
            if b.is_empty() {
                return None;
            }
            if b[0] != 0xFF {
                let n = b.iter().position(|&x| x == 0xFF).unwrap_or(b.len());
                self.skip(n);
                continue;
            }
            if b.len() < 2 {
                return None;
            }
            if b[1] != 0xFF {
                self.skip(1);
                continue;
            }
            if b.len() < 4 {
                if b.len() == 3 && b[2] == 0xFF {
                    self.skip(1);
                    continue;
                }
                return None;
            }
            let (id, len) = (b[2], b[3]);
            if id == 0xFF || !(2..=MAX_LEN).contains(&len) {
                self.skip(1);
                continue;
            }
            let total = usize::from(len) + 4;
            if b.len() < total {
                return None;
            }
            let sum = b[2..total].iter().fold(0u8, |s, &x| s.wrapping_add(x));
            if sum != 0xFF {
                self.stats.bad_checksums += 1;
                self.skip(1);
                return Some(ParseEvent::BadChecksum { id });
            }
            let packet = Packet {
                id,
                code: b[4],
                params: b[5..total - 1].to_vec(),
            };
            self.buf.drain(..total);
            self.stats.packets += 1;
            return Some(ParseEvent::Packet(packet));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(bytes: &[u8]) -> (Vec<ParseEvent>, Parser) {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for &b in bytes {
            p.push(b);
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        (out, p)
    }

    #[test]
    fn hand_worked_ping_vector() {
        // ID 1, LEN 2, PING 0x01: sum = 0x01 + 0x02 + 0x01 = 0x04, !0x04 = 0xFB.
        let bytes = Instruction::Ping.to_packet(1).encode().unwrap();
        assert_eq!(bytes, [0xFF, 0xFF, 0x01, 0x02, 0x01, 0xFB]);
        // The ack: ID 1, LEN 2, ERR 0: sum = 0x03, !0x03 = 0xFC.
        let ack = Packet::status(1, 0, vec![]).encode().unwrap();
        assert_eq!(ack, [0xFF, 0xFF, 0x01, 0x02, 0x00, 0xFC]);
    }

    #[test]
    fn hand_worked_write_goal_position_vector() {
        // WRITE goal position (addr 42 = 0x2A) raw 630 = 0x0276, big-endian 02 76.
        // sum = 0x01 + 0x05 + 0x03 + 0x2A + 0x02 + 0x76 = 0xAB, !0xAB = 0x54.
        let w = Instruction::Write {
            addr: 0x2A,
            data: word_to_bytes(630).to_vec(),
        };
        let bytes = w.to_packet(1).encode().unwrap();
        assert_eq!(
            bytes,
            [0xFF, 0xFF, 0x01, 0x05, 0x03, 0x2A, 0x02, 0x76, 0x54]
        );
        let back = Packet::decode(&bytes).unwrap();
        assert_eq!(Instruction::parse(&back).unwrap(), w);
        // READ present position and its reply (sheet 2.1).
        let r = Instruction::Read { addr: 0x38, len: 2 }.to_packet(1);
        assert_eq!(
            r.encode().unwrap(),
            [0xFF, 0xFF, 0x01, 0x04, 0x02, 0x38, 0x02, 0xBE]
        );
        let reply = Packet::status(1, 0, vec![0x02, 0x76]).encode().unwrap();
        assert_eq!(reply, [0xFF, 0xFF, 0x01, 0x04, 0x00, 0x02, 0x76, 0x82]);
    }

    #[test]
    fn sync_write_vector_from_the_sheet() {
        let entries = (1..=8).map(|id| (id, vec![1])).collect();
        let p = Instruction::SyncWrite {
            addr: 0x28,
            entries,
        }
        .to_packet(BROADCAST_ID);
        let bytes = p.encode().unwrap();
        assert_eq!(
            &bytes[..8],
            &[0xFF, 0xFF, 0xFE, 0x14, 0x83, 0x28, 0x01, 0x01]
        );
        assert_eq!(*bytes.last().unwrap(), 0x15);
        assert_eq!(bytes.len(), 0x14 + 4);
    }

    #[test]
    fn resyncs_after_noise_and_a_bad_checksum() {
        let good = Instruction::Ping.to_packet(3).encode().unwrap();
        let mut bad = Instruction::Ping.to_packet(2).encode().unwrap();
        *bad.last_mut().unwrap() ^= 0x10;
        let mut stream = vec![0x00, 0xFF, 0x13];
        stream.extend(&bad);
        stream.extend([0xFF]); // a stray header byte
        stream.extend(&good);
        let (events, p) = parse_all(&stream);
        assert_eq!(
            events,
            vec![
                ParseEvent::BadChecksum { id: 2 },
                ParseEvent::Packet(Packet::instruction(3, instr::PING, vec![]))
            ]
        );
        assert_eq!(p.stats().bad_checksums, 1);
        assert_eq!(p.stats().packets, 1);
    }

    #[test]
    fn a_good_frame_inside_a_truncated_one_is_found_after_give_up() {
        let good = Instruction::Ping.to_packet(4).encode().unwrap();
        // A header claiming 40 bytes, then the good frame.
        let mut stream = vec![0xFF, 0xFF, 0x01, 40];
        stream.extend(&good);
        let (events, mut p) = parse_all(&stream);
        assert!(events.is_empty());
        p.give_up();
        let mut found = vec![];
        while let Some(e) = p.next_event() {
            found.push(e);
        }
        assert_eq!(
            found,
            vec![ParseEvent::Packet(Packet::instruction(
                4,
                instr::PING,
                vec![]
            ))]
        );
        assert_eq!(p.stats().truncated, 1);
    }

    #[test]
    fn malformed_params_are_rejected() {
        let p = Packet::instruction(1, instr::READ, vec![0x38]);
        assert!(Instruction::parse(&p).is_err());
        let p = Packet::instruction(0xFE, instr::SYNC_WRITE, vec![0x2A, 2, 1, 0]);
        assert!(Instruction::parse(&p).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let (events, mut p) = parse_all(&bytes);
            p.give_up();
            while p.next_event().is_some() {}
            for e in events {
                if let ParseEvent::Packet(pkt) = e {
                    let _ = Instruction::parse(&pkt);
                }
            }
        }

        #[test]
        fn encode_decode_round_trip(id in 0u8..0xFE, code: u8,
                                    params in proptest::collection::vec(any::<u8>(), 0..244)) {
            let p = Packet { id, code, params };
            let bytes = p.encode().unwrap();
            prop_assert_eq!(checksum(&bytes[2..bytes.len() - 1]), *bytes.last().unwrap());
            prop_assert_eq!(Packet::decode(&bytes), Some(p));
        }
    }
}
