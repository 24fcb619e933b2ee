//! The UART link to the RVR: sequence numbers, response matching, retries,
//! and decoding of what the robot sends (responses, streaming data).
//!
//! Every command goes out in [`AddressStyle::TargetAndSource`] (Node.js SDK
//! style), which asks the robot to answer every command, so the bridge knows
//! each one arrived. A command that must get through (`reliable`: boot
//! commands, stops) is sent again with a fresh sequence number when no
//! response came within the timeout, up to the retry limit; a drive refresh
//! is not, since the next refresh supersedes it. Both kinds count in
//! [`LinkStats::no_response`] when they are given up.

use alloc::vec::Vec;

use rvr_protocol::{
    AddressStyle, Command, DataSize, DecodeError, Frame, Notification, Packet, Parser, Processor,
    Response, SensorSample, SensorService, StreamStatus, StreamingConfig,
};

use crate::messages::LinkStats;

/// Streaming slot on ST: IMU, accelerometer, gyroscope.
pub const IMU_TOKEN: u8 = 1;
/// Streaming slot on ST: locator, velocity, speed.
pub const MOTION_TOKEN: u8 = 2;
/// Streaming slot on Nordic: ambient light.
pub const LIGHT_TOKEN: u8 = 3;

/// The three streaming slots the bridge configures, with their processors.
/// Tokens are unique across processors, so a notification decodes by token
/// alone whatever its header says.
pub fn streaming_slots() -> [(Processor, StreamingConfig); 3] {
    let s32 = DataSize::Bits32;
    let slot = |token: u8, services: &[SensorService]| {
        let mut c = StreamingConfig::new(token).unwrap_or_else(|_| unreachable_config());
        for &s in services {
            // At most five services per slot; these lists have three or fewer.
            let _ = c.push(s, s32);
        }
        c
    };
    [
        (
            Processor::St,
            slot(
                IMU_TOKEN,
                &[
                    SensorService::Imu,
                    SensorService::Accelerometer,
                    SensorService::Gyroscope,
                ],
            ),
        ),
        (
            Processor::St,
            slot(
                MOTION_TOKEN,
                &[
                    SensorService::Locator,
                    SensorService::Velocity,
                    SensorService::Speed,
                ],
            ),
        ),
        (
            Processor::Nordic,
            slot(LIGHT_TOKEN, &[SensorService::AmbientLight]),
        ),
    ]
}

fn unreachable_config() -> StreamingConfig {
    // Token 0 is always valid; only reached if the constants above were > 15.
    StreamingConfig::new(0).unwrap_or_else(|_| unreachable_config())
}

/// Something the robot said that the bridge acts on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkEvent {
    /// One slot's streaming data, decoded.
    Sample {
        /// The slot token.
        token: u8,
        /// The values.
        sample: SensorSample,
    },
    /// A battery percentage answer.
    Battery(u8),
    /// The robot went (or is going) to sleep.
    Asleep,
    /// Any other response (a pending command may have settled).
    Answered,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    request: u32,
    seq: u8,
    command: Command,
    processor: Processor,
    sent_ns: u64,
    attempt: u8,
    reliable: bool,
}

/// Pending commands kept at most; the oldest is given up beyond this.
const MAX_PENDING: usize = 32;
/// Outcomes of reliable requests kept for waiters.
const MAX_SETTLED: usize = 16;

/// The link state: parser, sequence numbers, pending commands, counters.
#[derive(Debug)]
pub struct Link {
    parser: Parser,
    next_seq: u8,
    next_request: u32,
    pending: Vec<Pending>,
    settled: Vec<(u32, bool)>,
    slots: [(Processor, StreamingConfig); 3],
    stats: LinkStats,
}

impl Default for Link {
    fn default() -> Self {
        Link::new()
    }
}

impl Link {
    /// A fresh link (first sequence number 1, as the Python SDK).
    pub fn new() -> Link {
        Link {
            parser: Parser::new(),
            next_seq: 1,
            next_request: 1,
            pending: Vec::new(),
            settled: Vec::new(),
            slots: streaming_slots(),
            stats: LinkStats::default(),
        }
    }

    /// The counters. `parser_errors` counts each dropped frame and each run
    /// of stray bytes once.
    pub fn stats(&self) -> LinkStats {
        LinkStats {
            frames_received: self.parser.stats().frames,
            ..self.stats
        }
    }

    /// Encodes `command` for `processor` and records it as pending. Returns
    /// the request id (stable across retries) and the frame to write.
    pub fn send(
        &mut self,
        command: &Command,
        processor: Processor,
        reliable: bool,
        now_ns: u64,
    ) -> Option<(u32, Frame)> {
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        let frame = self.transmit(request, *command, processor, reliable, 0, now_ns)?;
        Some((request, frame))
    }

    fn transmit(
        &mut self,
        request: u32,
        command: Command,
        processor: Processor,
        reliable: bool,
        attempt: u8,
        now_ns: u64,
    ) -> Option<Frame> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let frame = command
            .to_packet_for(seq, AddressStyle::TargetAndSource, processor)
            .and_then(|p| p.to_frame())
            .ok()?;
        if self.pending.len() >= MAX_PENDING {
            let old = self.pending.remove(0);
            self.give_up(old);
        }
        self.pending.push(Pending {
            request,
            seq,
            command,
            processor,
            sent_ns: now_ns,
            attempt,
            reliable,
        });
        self.stats.commands_sent = self.stats.commands_sent.saturating_add(1);
        Some(frame)
    }

    fn give_up(&mut self, p: Pending) {
        self.stats.no_response = self.stats.no_response.saturating_add(1);
        if p.reliable {
            self.settle(p.request, false);
        }
    }

    fn settle(&mut self, request: u32, ok: bool) {
        if self.settled.len() >= MAX_SETTLED {
            self.settled.remove(0);
        }
        self.settled.push((request, ok));
    }

    /// Takes the outcome of reliable request `request`: `Some(true)` when the
    /// robot answered success, `Some(false)` when it answered an error or
    /// never answered, `None` while it is still pending.
    pub fn outcome(&mut self, request: u32) -> Option<bool> {
        let i = self.settled.iter().position(|(r, _)| *r == request)?;
        Some(self.settled.remove(i).1)
    }

    /// Handles commands whose response is overdue: reliable ones are sent
    /// again (frames returned) until `retries` retries were made, the others
    /// are given up.
    pub fn sweep(&mut self, now_ns: u64, timeout_ns: u64, retries: u8) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            let p = self.pending[i];
            if now_ns.saturating_sub(p.sent_ns) < timeout_ns {
                i += 1;
                continue;
            }
            self.pending.remove(i);
            if p.reliable && p.attempt < retries {
                self.stats.retries = self.stats.retries.saturating_add(1);
                if let Some(f) = self.transmit(
                    p.request,
                    p.command,
                    p.processor,
                    true,
                    p.attempt + 1,
                    now_ns,
                ) {
                    out.push(f);
                }
            } else {
                self.give_up(p);
            }
        }
        out
    }

    /// Counts a rearm (streaming set up again).
    pub fn count_rearm(&mut self) {
        self.stats.rearms = self.stats.rearms.saturating_add(1);
    }

    /// Feeds one received byte.
    pub fn push_byte(&mut self, byte: u8) -> Option<LinkEvent> {
        match self.parser.push(byte)? {
            Ok(packet) if packet.header.is_response() => self.on_response(&packet),
            Ok(packet) => self.on_notification(&packet),
            Err(_) => {
                self.stats.parser_errors = self.stats.parser_errors.saturating_add(1);
                None
            }
        }
    }

    /// Drops any partial frame (after a line break).
    pub fn reset_parser(&mut self) {
        self.parser.reset();
    }

    fn on_response(&mut self, packet: &Packet) -> Option<LinkEvent> {
        let h = packet.header;
        let matched = self.pending.iter().position(|p| {
            let (did, cid) = p.command.kind().ids();
            p.seq == h.sequence && did == h.device_id && cid == h.command_id
        });
        let pending = matched.map(|i| self.pending.remove(i));
        let result = Response::from_packet(packet);
        let ok = match result {
            Err(DecodeError::ErrorResponse(_)) => {
                self.stats.error_responses = self.stats.error_responses.saturating_add(1);
                false
            }
            Err(_) => false,
            Ok(_) => true,
        };
        if let Some(p) = pending
            && p.reliable
        {
            self.settle(p.request, ok);
        }
        match result {
            Ok(Response::BatteryPercentage(pct)) => Some(LinkEvent::Battery(pct.min(100))),
            _ => Some(LinkEvent::Answered),
        }
    }

    fn on_notification(&mut self, packet: &Packet) -> Option<LinkEvent> {
        match Notification::from_packet(packet) {
            Ok(Notification::StreamingData(data)) => {
                let token = data.token();
                let Some((_, slot)) = self.slots.iter().find(|(_, c)| c.token() == token) else {
                    self.stats.bad_samples = self.stats.bad_samples.saturating_add(1);
                    return None;
                };
                match data.decode(slot) {
                    Ok(sample) if data.status() == StreamStatus::Ok => {
                        Some(LinkEvent::Sample { token, sample })
                    }
                    _ => {
                        self.stats.bad_samples = self.stats.bad_samples.saturating_add(1);
                        None
                    }
                }
            }
            Ok(Notification::WillSleep | Notification::DidSleep) => Some(LinkEvent::Asleep),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvr_protocol::{Attitude, Header, Vector2, Vector3};

    fn feed(link: &mut Link, bytes: &[u8]) -> Vec<LinkEvent> {
        bytes.iter().filter_map(|&b| link.push_byte(b)).collect()
    }

    fn header_of(frame: &Frame) -> Header {
        let mut parser = Parser::new();
        frame
            .iter()
            .find_map(|&b| parser.push(b))
            .unwrap()
            .unwrap()
            .header
    }

    #[test]
    fn every_command_asks_for_a_response_and_answers_settle_it() {
        let mut link = Link::new();
        let (req, frame) = link
            .send(&Command::ResetYaw, Processor::St, true, 0)
            .unwrap();
        let h = header_of(&frame);
        assert_eq!(h.target, Some(0x12));
        assert_eq!(h.source, Some(0x01));
        assert!(h.wants_reply(true));
        assert_eq!(link.outcome(req), None);
        let answer = Response::Ack(Command::ResetYaw.kind())
            .to_packet(&h)
            .unwrap();
        feed(&mut link, &answer.to_frame().unwrap());
        assert_eq!(link.outcome(req), Some(true));
        assert_eq!(link.stats().no_response, 0);
    }

    #[test]
    fn reliable_commands_are_retried_then_given_up() {
        let mut link = Link::new();
        let (req, first) = link
            .send(&Command::DriveStop, Processor::St, true, 0)
            .unwrap();
        assert!(link.sweep(50, 100, 2).is_empty());
        let again = link.sweep(100, 100, 2);
        assert_eq!(again.len(), 1);
        assert_ne!(header_of(&again[0]).sequence, header_of(&first).sequence);
        assert_eq!(link.sweep(200, 100, 2).len(), 1);
        assert!(link.sweep(300, 100, 2).is_empty());
        assert_eq!(link.outcome(req), Some(false));
        let s = link.stats();
        assert_eq!((s.retries, s.no_response, s.commands_sent), (2, 1, 3));
        // A drive refresh is never retried.
        link.send(
            &Command::DriveRcSi {
                yaw_rate_dps: 0.0,
                linear_mps: 0.1,
                flags: Default::default(),
            },
            Processor::St,
            false,
            1000,
        )
        .unwrap();
        assert!(link.sweep(2000, 100, 2).is_empty());
        assert_eq!(link.stats().no_response, 2);
    }

    #[test]
    fn error_answers_settle_as_failures() {
        let mut link = Link::new();
        let (req, frame) = link
            .send(
                &Command::StartStreaming { period_ms: 50 },
                Processor::St,
                true,
                0,
            )
            .unwrap();
        let answer = Packet::error_response(
            &header_of(&frame),
            rvr_protocol::ErrorCode::BadParameterValue,
        );
        feed(&mut link, &answer.to_frame().unwrap());
        assert_eq!(link.outcome(req), Some(false));
        assert_eq!(link.stats().error_responses, 1);
    }

    #[test]
    fn streaming_data_decodes_by_token_and_noise_is_counted() {
        let mut link = Link::new();
        let (_, slot) = streaming_slots()[1];
        let sample = SensorSample {
            locator: Some(Vector2 { x: 0.25, y: 1.5 }),
            velocity: Some(Vector2 { x: 0.0, y: 0.4 }),
            speed_mps: Some(0.4),
            imu: Some(Attitude::default()),
            accelerometer: Some(Vector3::default()),
            gyroscope: Some(Vector3::default()),
            ..Default::default()
        };
        let data =
            rvr_protocol::StreamingData::from_sample(&slot, StreamStatus::Ok, &sample).unwrap();
        let packet = Notification::StreamingData(data)
            .to_packet(9, Processor::St, AddressStyle::TargetAndSource)
            .unwrap();
        let mut bytes = alloc::vec![0x00, 0x42];
        bytes.extend_from_slice(&packet.to_frame().unwrap());
        let events = feed(&mut link, &bytes);
        let [LinkEvent::Sample { token, sample: got }] = events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(token, MOTION_TOKEN);
        let loc = got.locator.unwrap();
        assert!((loc.x - 0.25).abs() < 1e-4 && (loc.y - 1.5).abs() < 1e-4);
        assert_eq!(link.stats().parser_errors, 1);
        assert_eq!(link.stats().frames_received, 1);
    }
}
