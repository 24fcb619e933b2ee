//! Byte-at-a-time frame parser with resynchronisation and error counters.

use core::fmt;

use crate::constants::{flag_bits, framing};
use crate::error::ErrorCode;
use crate::packet::{Flags, Header, Packet, Payload};

/// Why bytes were dropped. Each error is returned once by [`Parser::push`]
/// and counted in [`ParserStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// Bytes outside a frame (before a SOP). Returned once per run of such
    /// bytes, at its first byte; [`ParserStats::skipped_bytes`] counts every byte.
    SkippedData,
    /// A SOP arrived inside a frame: the partial frame was dropped and a new
    /// one started at this SOP.
    EarlyStart,
    /// The frame ended (EOP) before its header was complete: shorter than the
    /// 7-byte minimum, or shorter than its flags announce.
    Truncated,
    /// ESC followed by a byte other than `0x05`, `0x50` or `0x23`. The rest of
    /// the frame is dropped up to its EOP (or the next SOP).
    BadEscape,
    /// The bytes FLAGS..=CHK do not sum to `0xFF`.
    BadChecksum,
    /// Extended flags (bit 7), which no SDK supports, or a response that also
    /// requests a response.
    BadFlags,
    /// The frame is longer than the largest body this crate accepts
    /// ([`framing::MAX_BODY_LEN`]); the rest is dropped up to its EOP.
    TooLong,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::SkippedData => "bytes outside a frame skipped",
            ParseError::EarlyStart => "start of packet inside a frame",
            ParseError::Truncated => "frame ended before its header was complete",
            ParseError::BadEscape => "bad escape sequence",
            ParseError::BadChecksum => "bad checksum",
            ParseError::BadFlags => "bad flags",
            ParseError::TooLong => "frame too long",
        })
    }
}

impl core::error::Error for ParseError {}

/// What the parser has seen. Counters saturate at `u32::MAX`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ParserStats {
    /// Frames returned intact.
    pub frames: u32,
    /// Bytes skipped outside any frame (each one; see [`ParseError::SkippedData`]).
    pub skipped_bytes: u32,
    /// Partial frames dropped because a SOP arrived inside them.
    pub early_start: u32,
    /// Frames too short for their header.
    pub truncated: u32,
    /// Frames dropped for a bad escape.
    pub bad_escape: u32,
    /// Frames dropped for a bad checksum.
    pub bad_checksum: u32,
    /// Frames dropped for bad flags.
    pub bad_flags: u32,
    /// Frames dropped for exceeding the size limit.
    pub too_long: u32,
}

impl ParserStats {
    /// Frames dropped for any reason (skipped bytes are not frames and are not included).
    pub const fn dropped_frames(&self) -> u32 {
        self.early_start
            .saturating_add(self.truncated)
            .saturating_add(self.bad_escape)
            .saturating_add(self.bad_checksum)
            .saturating_add(self.bad_flags)
            .saturating_add(self.too_long)
    }

    fn count(&mut self, error: ParseError) {
        let counter = match error {
            ParseError::SkippedData => &mut self.skipped_bytes,
            ParseError::EarlyStart => &mut self.early_start,
            ParseError::Truncated => &mut self.truncated,
            ParseError::BadEscape => &mut self.bad_escape,
            ParseError::BadChecksum => &mut self.bad_checksum,
            ParseError::BadFlags => &mut self.bad_flags,
            ParseError::TooLong => &mut self.too_long,
        };
        *counter = counter.saturating_add(1);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between frames; `in_run` is true while skipping a run of stray bytes.
    Idle { in_run: bool },
    /// Inside a frame; `escaped` is true right after an ESC.
    InFrame { escaped: bool },
    /// Dropping the rest of a bad frame up to its EOP or the next SOP.
    Discarding,
}

/// Streaming frame parser: feed it bytes as they arrive, get packets out.
///
/// It never allocates, never panics on any input, and only returns frames
/// whose checksum is correct. After garbage, a truncated frame, a second SOP
/// inside a frame, a bad escape or a bad checksum it resynchronises on the
/// next SOP. See [`ParseError`] for what each error means and
/// [`ParserStats`] for the counters.
#[derive(Clone)]
pub struct Parser {
    state: State,
    len: usize,
    body: [u8; framing::MAX_BODY_LEN],
    stats: ParserStats,
}

impl Default for Parser {
    fn default() -> Parser {
        Parser::new()
    }
}

impl fmt::Debug for Parser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parser")
            .field("state", &self.state)
            .field("partial", &&self.body[..self.len])
            .field("stats", &self.stats)
            .finish()
    }
}

impl Parser {
    /// A parser waiting for a SOP.
    pub const fn new() -> Parser {
        Parser {
            state: State::Idle { in_run: false },
            len: 0,
            body: [0; framing::MAX_BODY_LEN],
            stats: ParserStats {
                frames: 0,
                skipped_bytes: 0,
                early_start: 0,
                truncated: 0,
                bad_escape: 0,
                bad_checksum: 0,
                bad_flags: 0,
                too_long: 0,
            },
        }
    }

    /// The counters so far.
    pub const fn stats(&self) -> &ParserStats {
        &self.stats
    }

    /// Zeroes the counters.
    pub fn reset_stats(&mut self) {
        self.stats = ParserStats::default();
    }

    /// Drops any partial frame (not counted) and waits for the next SOP.
    /// Use after a line break or reconnect.
    pub fn reset(&mut self) {
        self.state = State::Idle { in_run: false };
        self.len = 0;
    }

    /// `true` while inside a frame (a SOP was seen and its EOP not yet).
    pub const fn in_frame(&self) -> bool {
        matches!(self.state, State::InFrame { .. } | State::Discarding)
    }

    /// Feeds one byte. Returns `Some` when a frame ended (intact or not) or
    /// stray bytes began; `None` otherwise.
    pub fn push(&mut self, byte: u8) -> Option<Result<Packet, ParseError>> {
        if byte == framing::SOP {
            // A SOP is never escaped, so it always starts a frame.
            let interrupted = matches!(self.state, State::InFrame { .. });
            self.state = State::InFrame { escaped: false };
            self.len = 0;
            return interrupted.then(|| self.fail(ParseError::EarlyStart));
        }
        match self.state {
            State::Idle { in_run } => {
                self.stats.skipped_bytes = self.stats.skipped_bytes.saturating_add(1);
                self.state = State::Idle { in_run: true };
                (!in_run).then_some(Err(ParseError::SkippedData))
            }
            State::Discarding => {
                if byte == framing::EOP {
                    self.state = State::Idle { in_run: false };
                }
                None
            }
            State::InFrame { escaped } => {
                if byte == framing::EOP {
                    self.state = State::Idle { in_run: false };
                    if escaped {
                        return Some(self.fail(ParseError::BadEscape));
                    }
                    return Some(self.finish());
                }
                let raw = if escaped {
                    match byte {
                        framing::ESCAPED_SOP | framing::ESCAPED_EOP | framing::ESCAPED_ESC => {
                            byte | framing::ESCAPE_MASK
                        }
                        _ => {
                            self.state = State::Discarding;
                            return Some(self.fail(ParseError::BadEscape));
                        }
                    }
                } else if byte == framing::ESC {
                    self.state = State::InFrame { escaped: true };
                    return None;
                } else {
                    byte
                };
                self.state = State::InFrame { escaped: false };
                if self.len == self.body.len() {
                    self.state = State::Discarding;
                    return Some(self.fail(ParseError::TooLong));
                }
                self.body[self.len] = raw;
                self.len += 1;
                None
            }
        }
    }

    /// Feeds a slice; iterate the result to get each packet or error.
    ///
    /// Bytes are fed lazily: if the iterator is dropped early, only the bytes
    /// up to the last item yielded were fed, and [`Feed::remaining`] has the rest.
    pub fn feed<'a>(&'a mut self, bytes: &'a [u8]) -> Feed<'a> {
        Feed {
            parser: self,
            bytes,
        }
    }

    fn fail(&mut self, error: ParseError) -> Result<Packet, ParseError> {
        self.stats.count(error);
        self.len = 0;
        Err(error)
    }

    fn finish(&mut self) -> Result<Packet, ParseError> {
        let body = &self.body[..self.len];
        if body.len() < framing::MIN_BODY_LEN {
            return self.fail(ParseError::Truncated);
        }
        let sum = body.iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
        if sum != framing::CHECKSUM_SUM {
            return self.fail(ParseError::BadChecksum);
        }
        let flags = body[0];
        let is_response = flags & flag_bits::IS_RESPONSE != 0;
        if flags & flag_bits::HAS_MORE_FLAGS != 0
            || (is_response && flags & flag_bits::REQUESTS_RESPONSE != 0)
        {
            return self.fail(ParseError::BadFlags);
        }
        let has_target = flags & flag_bits::HAS_TARGET != 0;
        let has_source = flags & flag_bits::HAS_SOURCE != 0;
        let header_len = 4 + has_target as usize + has_source as usize + is_response as usize;
        // Header plus the checksum byte.
        if body.len() < header_len + 1 {
            return self.fail(ParseError::Truncated);
        }
        let mut pos = 1;
        let mut next = || {
            let b = body[pos];
            pos += 1;
            b
        };
        let target = has_target.then(&mut next);
        let source = has_source.then(&mut next);
        let device_id = next();
        let command_id = next();
        let sequence = next();
        let error = is_response.then(|| ErrorCode::from_byte(next()));
        let header = Header {
            flags: Flags::from_bits_truncate(flags),
            target,
            source,
            device_id,
            command_id,
            sequence,
            error,
        };
        // The body buffer holds at most MAX_HEADER_LEN + MAX_PAYLOAD_LEN + 1
        // bytes, so the payload always fits.
        let payload = match Payload::from_slice(&body[header_len..body.len() - 1]) {
            Ok(payload) => payload,
            Err(_) => return self.fail(ParseError::TooLong),
        };
        self.len = 0;
        self.stats.frames = self.stats.frames.saturating_add(1);
        Ok(Packet::from_parts(header, payload))
    }
}

/// Iterator over the packets and errors of a slice fed to a [`Parser`].
#[derive(Debug)]
pub struct Feed<'a> {
    parser: &'a mut Parser,
    bytes: &'a [u8],
}

impl Feed<'_> {
    /// Bytes not yet fed to the parser.
    pub fn remaining(&self) -> &[u8] {
        self.bytes
    }
}

impl Iterator for Feed<'_> {
    type Item = Result<Packet, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some((&byte, rest)) = self.bytes.split_first() {
            self.bytes = rest;
            if let Some(item) = self.parser.push(byte) {
                return Some(item);
            }
        }
        None
    }
}

/// Decodes exactly one frame: `bytes` must be SOP ... EOP with nothing around it.
///
/// Errors: the first [`ParseError`] met; [`ParseError::Truncated`] if the
/// bytes end before an EOP; [`ParseError::SkippedData`] if bytes follow the EOP.
pub fn decode_frame(bytes: &[u8]) -> Result<Packet, ParseError> {
    let mut parser = Parser::new();
    let mut feed = parser.feed(bytes);
    match feed.next() {
        Some(Ok(packet)) if feed.remaining().is_empty() => Ok(packet),
        Some(Ok(_)) => Err(ParseError::SkippedData),
        Some(Err(error)) => Err(error),
        None => Err(ParseError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes`, returning every item (up to 16).
    fn run(parser: &mut Parser, bytes: &[u8]) -> ([Option<Result<Packet, ParseError>>; 16], usize) {
        let mut out = [None; 16];
        let mut n = 0;
        for item in parser.feed(bytes) {
            out[n] = Some(item);
            n += 1;
        }
        (out, n)
    }

    // wake, Python style, seq 2 (worked out in tests/vectors.rs).
    const WAKE: [u8; 8] = [0x8D, 0x18, 0x01, 0x13, 0x0D, 0x02, 0xC4, 0xD8];

    fn wake_packet() -> Packet {
        let mut h = Header::new(0x13, 0x0D, 0x02);
        h.flags = Flags::IS_ACTIVITY;
        h.target = Some(0x01);
        Packet::new(h, &[]).unwrap()
    }

    fn stats_only(parser: &Parser, expected: ParserStats) {
        assert_eq!(*parser.stats(), expected);
    }

    #[test]
    fn clean_frame() {
        let mut p = Parser::new();
        let (out, n) = run(&mut p, &WAKE);
        assert_eq!(n, 1);
        assert_eq!(out[0], Some(Ok(wake_packet())));
        stats_only(
            &p,
            ParserStats {
                frames: 1,
                ..Default::default()
            },
        );
    }

    #[test]
    fn garbage_before_frame_is_skipped_and_reported_once_per_run() {
        let mut p = Parser::new();
        let mut bytes = [0u8; 4 + 8 + 2 + 8];
        bytes[..4].copy_from_slice(&[0x00, 0xD8, 0x42, 0xAB]);
        bytes[4..12].copy_from_slice(&WAKE);
        bytes[12..14].copy_from_slice(&[0x11, 0x22]);
        bytes[14..].copy_from_slice(&WAKE);
        let (out, n) = run(&mut p, &bytes);
        assert_eq!(n, 4);
        assert_eq!(out[0], Some(Err(ParseError::SkippedData)));
        assert_eq!(out[1], Some(Ok(wake_packet())));
        assert_eq!(out[2], Some(Err(ParseError::SkippedData)));
        assert_eq!(out[3], Some(Ok(wake_packet())));
        stats_only(
            &p,
            ParserStats {
                frames: 2,
                skipped_bytes: 6,
                ..Default::default()
            },
        );
    }

    #[test]
    fn second_sop_inside_frame_drops_partial_and_restarts() {
        let mut p = Parser::new();
        // A frame cut off after three bytes, then a complete one.
        let mut bytes = [0u8; 3 + 8];
        bytes[..3].copy_from_slice(&[0x8D, 0x18, 0x01]);
        bytes[3..].copy_from_slice(&WAKE);
        let (out, n) = run(&mut p, &bytes);
        assert_eq!(n, 2);
        assert_eq!(out[0], Some(Err(ParseError::EarlyStart)));
        assert_eq!(out[1], Some(Ok(wake_packet())));
        stats_only(
            &p,
            ParserStats {
                frames: 1,
                early_start: 1,
                ..Default::default()
            },
        );
    }

    #[test]
    fn sop_after_esc_still_starts_a_frame() {
        let mut p = Parser::new();
        let mut bytes = [0u8; 3 + 8];
        bytes[..3].copy_from_slice(&[0x8D, 0x18, 0xAB]);
        bytes[3..].copy_from_slice(&WAKE);
        let (out, n) = run(&mut p, &bytes);
        assert_eq!(n, 2);
        assert_eq!(out[0], Some(Err(ParseError::EarlyStart)));
        assert_eq!(out[1], Some(Ok(wake_packet())));
        assert_eq!(p.stats().early_start, 1);
        assert_eq!(p.stats().bad_escape, 0);
    }

    #[test]
    fn short_frame_is_truncated() {
        let mut p = Parser::new();
        // Four body bytes: one short of FLAGS, DID, CID, SEQ, CHK. Sum is 0xFF
        // so only the length check can reject it.
        let (out, n) = run(&mut p, &[0x8D, 0x00, 0x13, 0x0D, 0xDF, 0xD8]);
        assert_eq!(n, 1);
        assert_eq!(out[0], Some(Err(ParseError::Truncated)));
        // An empty frame too.
        let (out, n) = run(&mut p, &[0x8D, 0xD8]);
        assert_eq!(n, 1);
        assert_eq!(out[0], Some(Err(ParseError::Truncated)));
        stats_only(
            &p,
            ParserStats {
                truncated: 2,
                ..Default::default()
            },
        );
        // The parser is back in sync.
        let (out, _) = run(&mut p, &WAKE);
        assert_eq!(out[0], Some(Ok(wake_packet())));
    }

    #[test]
    fn header_shorter_than_flags_announce_is_truncated() {
        let mut p = Parser::new();
        // FLAGS 0x31 (response, target, source) needs 7 header bytes + CHK,
        // but only 5 body bytes arrive. 0x31+0x01+0x11+0x13 = 0x56; CHK = 0xA9.
        let (out, n) = run(&mut p, &[0x8D, 0x31, 0x01, 0x11, 0x13, 0xA9, 0xD8]);
        assert_eq!(n, 1);
        assert_eq!(out[0], Some(Err(ParseError::Truncated)));
        assert_eq!(p.stats().truncated, 1);
        assert_eq!(p.stats().bad_checksum, 0);
    }

    #[test]
    fn bad_escape_drops_rest_of_frame() {
        let mut p = Parser::new();
        // ESC 0x06 is not a valid escape; the rest up to EOP is dropped
        // silently, then the next frame parses.
        let mut bytes = [0u8; 7 + 8];
        bytes[..7].copy_from_slice(&[0x8D, 0x18, 0xAB, 0x06, 0x13, 0x0D, 0xD8]);
        bytes[7..].copy_from_slice(&WAKE);
        let (out, n) = run(&mut p, &bytes);
        assert_eq!(n, 2);
        assert_eq!(out[0], Some(Err(ParseError::BadEscape)));
        assert_eq!(out[1], Some(Ok(wake_packet())));
        stats_only(
            &p,
            ParserStats {
                frames: 1,
                bad_escape: 1,
                ..Default::default()
            },
        );
    }

    #[test]
    fn esc_then_eop_is_a_bad_escape() {
        let mut p = Parser::new();
        let (out, n) = run(&mut p, &[0x8D, 0x18, 0x01, 0xAB, 0xD8]);
        assert_eq!(n, 1);
        assert_eq!(out[0], Some(Err(ParseError::BadEscape)));
        assert_eq!(p.stats().bad_escape, 1);
        assert!(!p.in_frame());
    }

    #[test]
    fn bad_checksum_is_dropped() {
        let mut p = Parser::new();
        let mut bad = WAKE;
        bad[6] ^= 0x01;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&bad);
        bytes[8..].copy_from_slice(&WAKE);
        let (out, n) = run(&mut p, &bytes);
        assert_eq!(n, 2);
        assert_eq!(out[0], Some(Err(ParseError::BadChecksum)));
        assert_eq!(out[1], Some(Ok(wake_packet())));
        stats_only(
            &p,
            ParserStats {
                frames: 1,
                bad_checksum: 1,
                ..Default::default()
            },
        );
    }

    #[test]
    fn bad_flags_are_dropped() {
        let mut p = Parser::new();
        // Response + requests response: 0x03+0x13+0x10+0x05+0x00 = 0x2B; CHK 0xD4.
        let (out, _) = run(&mut p, &[0x8D, 0x03, 0x13, 0x10, 0x05, 0x00, 0xD4, 0xD8]);
        assert_eq!(out[0], Some(Err(ParseError::BadFlags)));
        // Extended flags: 0x80+0x13+0x0D+0x02 = 0xA2; CHK 0x5D.
        let (out, _) = run(&mut p, &[0x8D, 0x80, 0x13, 0x0D, 0x02, 0x5D, 0xD8]);
        assert_eq!(out[0], Some(Err(ParseError::BadFlags)));
        stats_only(
            &p,
            ParserStats {
                bad_flags: 2,
                ..Default::default()
            },
        );
    }

    #[test]
    fn too_long_frame_is_dropped() {
        let mut p = Parser::new();
        assert_eq!(p.push(0x8D), None);
        for _ in 0..framing::MAX_BODY_LEN {
            assert_eq!(p.push(0x00), None);
        }
        assert_eq!(p.push(0x00), Some(Err(ParseError::TooLong)));
        // Discarding until EOP: nothing reported, nothing counted as skipped.
        for _ in 0..10 {
            assert_eq!(p.push(0x00), None);
        }
        assert_eq!(p.push(0xD8), None);
        let (out, _) = run(&mut p, &WAKE);
        assert_eq!(out[0], Some(Ok(wake_packet())));
        stats_only(
            &p,
            ParserStats {
                frames: 1,
                too_long: 1,
                ..Default::default()
            },
        );
    }

    #[test]
    fn largest_frame_fits() {
        let mut h = Header::new(0x18, 0x3D, 0x00);
        h.target = Some(0x01);
        h.source = Some(0x12);
        let packet = Packet::new(h, &[0xAB; framing::MAX_PAYLOAD_LEN]).unwrap();
        let frame = packet.to_frame().unwrap();
        let mut p = Parser::new();
        let (out, n) = run(&mut p, &frame);
        assert_eq!(n, 1);
        assert_eq!(out[0], Some(Ok(packet)));
    }

    #[test]
    fn decode_frame_requires_exactly_one_frame() {
        assert_eq!(decode_frame(&WAKE), Ok(wake_packet()));
        assert_eq!(decode_frame(&WAKE[..7]), Err(ParseError::Truncated));
        let mut trailing = [0u8; 9];
        trailing[..8].copy_from_slice(&WAKE);
        assert_eq!(decode_frame(&trailing), Err(ParseError::SkippedData));
        assert_eq!(decode_frame(&[]), Err(ParseError::Truncated));
    }
}
