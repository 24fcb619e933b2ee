//! Virtual UART: byte pipes with baud-accurate timing and fault hooks.
//!
//! Why: device code (the RVR bridge, the servo bus) talks
//! `embedded_io_async::{Read, Write}` and its behaviour depends on *when*
//! bytes arrive. This model keeps wire timing exact in virtual time and lets
//! a scenario do to the cable what real cables do (hooks modelled on Zephyr's
//! UART emulator): inject bytes, flip bits, drop bytes, send a break, unplug.
//!
//! How, and why it is cheap: each direction keeps the bytes on the wire as
//! `(arrival time, byte)`. Arrival times are fixed when a byte is written, from
//! an exact integer formula relative to the start of its back-to-back burst
//! (`start + ceil(n * bits_per_byte * 1e9 / baud)`), so there is no rounding
//! drift. Nothing runs per byte: bytes move into the receiver's RX buffer
//! lazily, whenever anyone looks (a read, a write, `stats`, a fault change),
//! in arrival order and judged by their arrival times, which gives the same
//! result as one interrupt per byte. A waiting reader has one timer, at the
//! time its wake condition (RX threshold or idle timeout) will hold. A waiting
//! writer has one timer, at the time its TX buffer has drained to half
//! (`tx_buffer / 2` bytes still pending): it then refills half a buffer while
//! the line is still busy, so a streaming writer keeps the line saturated.
//!
//! Assumptions (parameters where they matter):
//! - assumed: default buffers of 256 bytes TX and 1024 bytes RX, RX wake
//!   threshold 1, idle timeout off;
//! - assumed: a byte occupies the TX buffer until its last stop bit ends;
//! - assumed: noise flips data bits only; parity and framing errors are not
//!   modelled (a flipped byte is delivered flipped);
//! - assumed: the receiver notices a break when it starts; the break takes its
//!   place in the byte stream (bytes received before it are read first);
//! - a fault set at time `t` affects bytes whose last stop bit ends after `t`
//!   and before its end (`until`, exclusive).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use rand::Rng;
use serde_json::json;

use crate::SimHandle;
use crate::rng::SimRng;
use crate::time::{Nanos, TimerToken};
use crate::trace::channels;

/// Line settings and buffer model of one UART line (both ends share them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UartConfig {
    /// Bits per second (default 115200).
    pub baud: u32,
    /// Data bits per frame, 5..=8 (default 8).
    pub data_bits: u8,
    /// One parity bit per frame when true (default false).
    pub parity: bool,
    /// Stop bits, 1 or 2 (default 1). 8N1 is 10 bit times per byte.
    pub stop_bits: u8,
    /// Bytes the sender may have queued but not yet delivered (default 256,
    /// assumed); `write()` waits when full.
    pub tx_buffer: usize,
    /// Unread bytes the receiver holds (default 1024, assumed); bytes arriving
    /// when it is full are lost and counted as overruns.
    pub rx_buffer: usize,
    /// A waiting reader is woken when this many unread bytes have arrived
    /// (default 1; capped at `rx_buffer`) ...
    pub rx_wake_threshold: usize,
    /// ... or when the line has been idle this many byte times after the last
    /// byte (default 0 = threshold only). Models an ESP32/STM32 RX FIFO
    /// threshold plus idle timeout.
    pub rx_idle_symbols: u32,
}

impl Default for UartConfig {
    fn default() -> Self {
        UartConfig {
            baud: 115_200,
            data_bits: 8,
            parity: false,
            stop_bits: 1,
            tx_buffer: 256,
            rx_buffer: 1024,
            rx_wake_threshold: 1,
            rx_idle_symbols: 0,
        }
    }
}

/// A [`UartConfig`] that cannot describe a real line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UartConfigError {
    /// Baud rate of zero.
    #[error("baud must be at least 1")]
    ZeroBaud,
    /// Data bits outside 5..=8.
    #[error("data_bits must be 5..=8, got {0}")]
    DataBits(u8),
    /// Stop bits outside 1..=2.
    #[error("stop_bits must be 1 or 2, got {0}")]
    StopBits(u8),
    /// A buffer of zero bytes.
    #[error("{0} must be at least 1 byte")]
    EmptyBuffer(&'static str),
}

impl UartConfig {
    /// Bit times per byte: start bit, data bits, parity bit if any, stop bits.
    pub fn bits_per_byte(&self) -> u32 {
        1 + u32::from(self.data_bits) + u32::from(self.parity) + u32::from(self.stop_bits)
    }

    /// Duration of one byte in nanoseconds (not rounded; for display).
    pub fn byte_time_ns(&self) -> f64 {
        f64::from(self.bits_per_byte()) * 1e9 / f64::from(self.baud.max(1))
    }

    /// Exact time from the start of a back-to-back burst to the end of its
    /// `n`-th byte: `ceil(n * bits_per_byte * 1e9 / baud)`.
    pub fn burst_time_ns(&self, n: u64) -> Nanos {
        let v = (u128::from(n) * u128::from(self.bits_per_byte()) * 1_000_000_000)
            .div_ceil(u128::from(self.baud.max(1)));
        u64::try_from(v).unwrap_or(Nanos::MAX)
    }

    /// Checks the settings; [`Uart::pair`] clamps bad values instead of failing,
    /// so callers that take settings from users should validate first.
    pub fn validate(&self) -> Result<(), UartConfigError> {
        if self.baud == 0 {
            return Err(UartConfigError::ZeroBaud);
        }
        if !(5..=8).contains(&self.data_bits) {
            return Err(UartConfigError::DataBits(self.data_bits));
        }
        if !(1..=2).contains(&self.stop_bits) {
            return Err(UartConfigError::StopBits(self.stop_bits));
        }
        if self.tx_buffer == 0 {
            return Err(UartConfigError::EmptyBuffer("tx_buffer"));
        }
        if self.rx_buffer == 0 {
            return Err(UartConfigError::EmptyBuffer("rx_buffer"));
        }
        Ok(())
    }

    fn clamped(&self) -> UartConfig {
        let rx_buffer = self.rx_buffer.max(1);
        UartConfig {
            baud: self.baud.max(1),
            data_bits: self.data_bits.clamp(5, 8),
            parity: self.parity,
            stop_bits: self.stop_bits.clamp(1, 2),
            tx_buffer: self.tx_buffer.max(1),
            rx_buffer,
            rx_wake_threshold: self.rx_wake_threshold.clamp(1, rx_buffer),
            rx_idle_symbols: self.rx_idle_symbols,
        }
    }
}

/// Errors a read can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UartError {
    /// A break condition was received (reported once per break).
    #[error("break condition on the line")]
    Break,
}

impl embedded_io_async::Error for UartError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        embedded_io_async::ErrorKind::Other
    }
}

/// Which direction of a line a fault or injection applies to. A loopback has
/// one direction, which every value names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From end A to end B.
    AToB,
    /// From end B to end A.
    BToA,
    /// Both directions.
    Both,
}

/// Counters for one direction of a line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Bytes the sender wrote.
    pub bytes_written: u64,
    /// Bytes the harness injected ([`UartControl::inject`]).
    pub bytes_injected: u64,
    /// Bytes that reached the receiver's RX buffer.
    pub bytes_delivered: u64,
    /// Bytes the receiving program has read.
    pub bytes_read: u64,
    /// Bytes lost to the drop rate.
    pub dropped: u64,
    /// Bytes delivered with at least one flipped bit.
    pub corrupted: u64,
    /// Bytes lost because the RX buffer was full.
    pub overruns: u64,
    /// Break conditions started.
    pub breaks: u64,
    /// Bytes lost because they arrived during a break.
    pub lost_in_break: u64,
    /// Bytes lost because they arrived while the cable was unplugged.
    pub lost_in_disconnect: u64,
}

/// Counters for a whole line. For a loopback, everything is in `a_to_b`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UartStats {
    /// End A to end B (or the loopback).
    pub a_to_b: DirStats,
    /// End B to end A.
    pub b_to_a: DirStats,
}

/// Constructors for UART lines.
pub struct Uart;

impl Uart {
    /// Two ends of one cable: A's TX goes to B's RX and vice versa.
    pub fn pair(
        handle: &SimHandle,
        name: &str,
        config: UartConfig,
    ) -> (UartPort, UartPort, UartControl) {
        let line = Line::new(handle, name, config, &["a->b", "b->a"]);
        let a = UartPort {
            line: line.clone(),
            tx: 0,
            rx: 1,
        };
        let b = UartPort {
            line: line.clone(),
            tx: 1,
            rx: 0,
        };
        (a, b, UartControl { line })
    }

    /// One end whose TX is wired to its own RX (a loopback jumper).
    pub fn loopback(handle: &SimHandle, name: &str, config: UartConfig) -> (UartPort, UartControl) {
        let line = Line::new(handle, name, config, &["loop"]);
        let port = UartPort {
            line: line.clone(),
            tx: 0,
            rx: 0,
        };
        (port, UartControl { line })
    }
}

/// One end of a line: reads what the far end sent, writes toward it.
pub struct UartPort {
    line: Rc<RefCell<Line>>,
    tx: usize,
    rx: usize,
}

impl UartPort {
    /// Splits into independent receive and transmit halves.
    pub fn split(self) -> (UartRx, UartTx) {
        (
            UartRx {
                line: self.line.clone(),
                lane: self.rx,
            },
            UartTx {
                line: self.line,
                lane: self.tx,
            },
        )
    }

    /// The line's settings (after clamping).
    pub fn config(&self) -> UartConfig {
        self.line.borrow().config.clone()
    }
}

/// Receive half of a [`UartPort`].
pub struct UartRx {
    line: Rc<RefCell<Line>>,
    lane: usize,
}

impl UartRx {
    /// Bytes that have arrived and wait to be read (a host's `bytes_to_read`).
    pub fn available(&self) -> usize {
        available_on(&self.line, self.lane)
    }
}

/// Transmit half of a [`UartPort`].
pub struct UartTx {
    line: Rc<RefCell<Line>>,
    lane: usize,
}

/// The harness side of a line: fault hooks and statistics.
#[derive(Clone)]
pub struct UartControl {
    line: Rc<RefCell<Line>>,
}

impl UartControl {
    /// The line's name.
    pub fn name(&self) -> String {
        self.line.borrow().name.clone()
    }

    /// The line's settings (after clamping).
    pub fn config(&self) -> UartConfig {
        self.line.borrow().config.clone()
    }

    /// The far end transmits `bytes` toward `to`: they follow the line timing
    /// after whatever is already on the wire.
    pub fn inject(&self, to: Direction, bytes: &[u8]) {
        let mut line = self.line.borrow_mut();
        for lane in line.lanes_of(to) {
            line.settle(lane);
            line.send(lane, bytes, true);
        }
    }

    /// Each data bit flips with probability `ber` (0 clears), for bytes
    /// arriving before `until` (`None` = forever).
    pub fn set_bit_error_rate(&self, dir: Direction, ber: f64, until: Option<Nanos>) {
        let ber = probability(ber);
        let mut line = self.line.borrow_mut();
        for lane in line.lanes_of(dir) {
            line.settle(lane);
            let f = &mut line.lanes[lane].faults;
            f.ber = ber;
            f.ber_until = until;
        }
        let dir = line.dir_label(dir);
        line.trace_fault(json!({"fault": "bit_errors", "dir": dir, "ber": ber, "until": until}));
    }

    /// Each byte is lost with probability `p` (0 clears), for bytes arriving
    /// before `until` (`None` = forever).
    pub fn set_drop_rate(&self, dir: Direction, p: f64, until: Option<Nanos>) {
        let p = probability(p);
        let mut line = self.line.borrow_mut();
        for lane in line.lanes_of(dir) {
            line.settle(lane);
            let f = &mut line.lanes[lane].faults;
            f.drop = p;
            f.drop_until = until;
        }
        let dir = line.dir_label(dir);
        line.trace_fault(json!({"fault": "drops", "dir": dir, "p": p, "until": until}));
    }

    /// A break condition from now for `duration`: bytes that would arrive
    /// during it are lost, and the receiver's next read (after the bytes it
    /// received before the break) returns `Err(UartError::Break)` once.
    pub fn line_break(&self, dir: Direction, duration: Nanos) {
        let mut line = self.line.borrow_mut();
        let end = line.handle.now().saturating_add(duration);
        for lane in line.lanes_of(dir) {
            line.settle(lane);
            let l = &mut line.lanes[lane];
            l.faults.break_until = l.faults.break_until.max(end);
            l.stats.breaks += 1;
            if l.break_pos.is_none() {
                l.break_pos = Some(l.rx.len());
            }
            l.reader.wake_now();
        }
        let dir = line.dir_label(dir);
        line.trace_fault(json!({"fault": "line_break", "dir": dir, "duration_ns": duration}));
    }

    /// The cable is unplugged both ways from now for `duration`: bytes that
    /// would arrive meanwhile are lost. Senders do not notice (no flow control).
    pub fn disconnect(&self, duration: Nanos) {
        let mut line = self.line.borrow_mut();
        let end = line.handle.now().saturating_add(duration);
        for lane in 0..line.lanes.len() {
            line.settle(lane);
            let f = &mut line.lanes[lane].faults;
            f.disconnect_until = f.disconnect_until.max(end);
        }
        line.trace_fault(json!({"fault": "disconnect", "duration_ns": duration}));
    }

    /// Counters per direction, up to the current virtual time.
    pub fn stats(&self) -> UartStats {
        let mut line = self.line.borrow_mut();
        for lane in 0..line.lanes.len() {
            line.settle(lane);
        }
        UartStats {
            a_to_b: line.lanes[0].stats,
            b_to_a: line.lanes.get(1).map(|l| l.stats).unwrap_or_default(),
        }
    }
}

fn probability(p: f64) -> f64 {
    if p > 0.0 { p.min(1.0) } else { 0.0 }
}

/// Timing and buffer numbers the lanes need, copied out of the config.
#[derive(Clone, Copy)]
struct Params {
    /// bits per byte * 1e9; byte n of a burst ends at ceil(n * frame_num / baud).
    frame_num: u128,
    baud: u128,
    data_bits: u8,
    tx_cap: usize,
    rx_cap: usize,
    threshold: usize,
    idle_ns: Nanos,
}

impl Params {
    fn burst_end(&self, n: u64) -> Nanos {
        let v = (u128::from(n) * self.frame_num).div_ceil(self.baud);
        u64::try_from(v).unwrap_or(Nanos::MAX)
    }

    fn data_mask(&self) -> u8 {
        (0xffu16 >> (8 - self.data_bits.min(8))) as u8
    }
}

/// A task waiting on a lane: its waker and the timer that will wake it.
#[derive(Default)]
struct Waiter {
    waker: Option<Waker>,
    token: Option<TimerToken>,
    at: Option<Nanos>,
}

impl Waiter {
    fn waiting(&self) -> bool {
        self.waker.is_some()
    }

    /// Records `waker` and makes sure a timer fires at `at` (none if `None`).
    fn arm(&mut self, handle: &SimHandle, at: Option<Nanos>, waker: &Waker) {
        match &self.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => {
                self.waker = Some(waker.clone());
                // The timer must wake the new waker.
                if let Some(token) = &self.token {
                    token.set_waker(waker);
                }
            }
        }
        self.retime(handle, at);
    }

    /// Moves the timer to `at` if it is not already there.
    fn retime(&mut self, handle: &SimHandle, at: Option<Nanos>) {
        if at == self.at && (at.is_none() || self.token.is_some()) {
            return;
        }
        self.at = at;
        self.token = match (at, &self.waker) {
            (Some(t), Some(w)) => Some(handle.wake_at(t, w)),
            _ => None,
        };
    }

    fn clear(&mut self) {
        self.waker = None;
        self.token = None;
        self.at = None;
    }

    fn wake_now(&mut self) {
        self.token = None;
        self.at = None;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

#[derive(Default)]
struct Faults {
    ber: f64,
    ber_until: Option<Nanos>,
    drop: f64,
    drop_until: Option<Nanos>,
    break_until: Nanos,
    disconnect_until: Nanos,
}

/// One direction of a line.
struct Lane {
    label: &'static str,
    /// `line/label`, for wait notes.
    note: std::rc::Rc<str>,
    /// Bytes written but not yet arrived, with their arrival times (increasing).
    wire: VecDeque<(Nanos, u8)>,
    burst_start: Nanos,
    burst_len: u64,
    line_free_at: Nanos,
    /// Arrived, unread bytes.
    rx: VecDeque<u8>,
    /// Arrival time of the last byte put in `rx`.
    last_rx: Nanos,
    /// A pending break: how many bytes in `rx` precede it.
    break_pos: Option<usize>,
    faults: Faults,
    rng: SimRng,
    reader: Waiter,
    writer: Waiter,
    stats: DirStats,
}

impl Lane {
    fn queue(&mut self, p: &Params, now: Nanos, bytes: &[u8]) {
        if self.burst_len == 0 || self.line_free_at < now {
            self.burst_start = now;
            self.burst_len = 0;
        }
        let mask = p.data_mask();
        for &b in bytes {
            self.burst_len += 1;
            let t = self.burst_start.saturating_add(p.burst_end(self.burst_len));
            self.wire.push_back((t, b & mask));
            self.line_free_at = t;
        }
    }

    /// Moves every byte that has arrived by `now` to the RX buffer, applying faults.
    fn settle(&mut self, p: &Params, now: Nanos) {
        while let Some(&(t, b)) = self.wire.front() {
            if t > now {
                break;
            }
            self.wire.pop_front();
            self.arrive(p, t, b);
        }
    }

    fn arrive(&mut self, p: &Params, t: Nanos, mut b: u8) {
        let f = &self.faults;
        if t < f.disconnect_until {
            self.stats.lost_in_disconnect += 1;
            return;
        }
        if t < f.break_until {
            self.stats.lost_in_break += 1;
            return;
        }
        if f.drop > 0.0 && f.drop_until.is_none_or(|u| t < u) && self.rng.random::<f64>() < f.drop {
            self.stats.dropped += 1;
            return;
        }
        if f.ber > 0.0 && f.ber_until.is_none_or(|u| t < u) {
            let ber = f.ber;
            let mut flip = 0u8;
            for bit in 0..p.data_bits.min(8) {
                if self.rng.random::<f64>() < ber {
                    flip |= 1 << bit;
                }
            }
            if flip != 0 {
                b ^= flip;
                self.stats.corrupted += 1;
            }
        }
        if self.rx.len() >= p.rx_cap {
            self.stats.overruns += 1;
            return;
        }
        self.rx.push_back(b);
        self.last_rx = t;
        self.stats.bytes_delivered += 1;
    }

    /// Whether a reader that has been waiting may return the bytes it has.
    fn reader_ready(&self, p: &Params, now: Nanos) -> bool {
        !self.rx.is_empty()
            && (self.rx.len() >= p.threshold
                || self.break_pos.is_some()
                || (p.idle_ns > 0 && now >= self.last_rx.saturating_add(p.idle_ns)))
    }

    /// When a waiting reader's condition will hold, judged from the bytes on
    /// the wire (losses can make it early; the reader then waits again).
    fn reader_wake_at(&self, p: &Params) -> Option<Nanos> {
        let need = p.threshold.saturating_sub(self.rx.len()).max(1);
        let at_threshold = self.wire.get(need - 1).map(|e| e.0);
        if p.idle_ns == 0 {
            return at_threshold;
        }
        // The idle timeout fires at the first gap longer than idle_ns before the threshold.
        let mut prev = (!self.rx.is_empty()).then_some(self.last_rx);
        for &(t, _) in self.wire.iter().take(need) {
            if let Some(prev) = prev
                && t > prev.saturating_add(p.idle_ns)
            {
                return Some(prev.saturating_add(p.idle_ns));
            }
            prev = Some(t);
        }
        at_threshold.or_else(|| prev.map(|t| t.saturating_add(p.idle_ns)))
    }

    /// When the TX buffer will have drained to half.
    fn writer_wake_at(&self, p: &Params) -> Option<Nanos> {
        let low = p.tx_cap / 2;
        let len = self.wire.len();
        (len > low).then(|| self.wire[len - low - 1].0)
    }

    fn take(&mut self, buf: &mut [u8]) -> usize {
        let n = buf
            .len()
            .min(self.rx.len())
            .min(self.break_pos.unwrap_or(usize::MAX));
        for (dst, b) in buf.iter_mut().zip(self.rx.drain(..n)) {
            *dst = b;
        }
        if let Some(pos) = &mut self.break_pos {
            *pos -= n;
        }
        self.stats.bytes_read += n as u64;
        n
    }
}

struct Line {
    handle: SimHandle,
    name: String,
    config: UartConfig,
    params: Params,
    lanes: Vec<Lane>,
}

impl Line {
    fn new(
        handle: &SimHandle,
        name: &str,
        config: UartConfig,
        labels: &[&'static str],
    ) -> Rc<RefCell<Line>> {
        let config = config.clamped();
        let params = Params {
            frame_num: u128::from(config.bits_per_byte()) * 1_000_000_000,
            baud: u128::from(config.baud),
            data_bits: config.data_bits,
            tx_cap: config.tx_buffer,
            rx_cap: config.rx_buffer,
            threshold: config.rx_wake_threshold,
            idle_ns: config.burst_time_ns(u64::from(config.rx_idle_symbols)),
        };
        let lanes = labels
            .iter()
            .map(|&label| Lane {
                label,
                note: std::rc::Rc::from(format!("{name}/{label}")),
                wire: VecDeque::new(),
                burst_start: 0,
                burst_len: 0,
                line_free_at: 0,
                rx: VecDeque::new(),
                last_rx: 0,
                break_pos: None,
                faults: Faults::default(),
                rng: handle.rng(&format!("uart/{name}/{label}")),
                reader: Waiter::default(),
                writer: Waiter::default(),
                stats: DirStats::default(),
            })
            .collect();
        Rc::new(RefCell::new(Line {
            handle: handle.clone(),
            name: name.to_string(),
            config,
            params,
            lanes,
        }))
    }

    fn lanes_of(&self, dir: Direction) -> std::ops::Range<usize> {
        match (self.lanes.len(), dir) {
            (1, _) => 0..1,
            (_, Direction::AToB) => 0..1,
            (_, Direction::BToA) => 1..2,
            (_, Direction::Both) => 0..2,
        }
    }

    fn dir_label(&self, dir: Direction) -> &'static str {
        match (self.lanes.len(), dir) {
            (1, _) => self.lanes[0].label,
            (_, Direction::Both) => "both",
            (_, d) => self.lanes[self.lanes_of(d).start].label,
        }
    }

    fn trace_fault(&self, mut message: serde_json::Value) {
        if let Some(m) = message.as_object_mut() {
            m.insert("target".into(), "uart".into());
            m.insert("line".into(), self.name.clone().into());
        }
        self.handle.trace(channels::FAULTS, message);
    }

    fn settle(&mut self, lane: usize) {
        let now = self.handle.now();
        let p = self.params;
        self.lanes[lane].settle(&p, now);
    }

    /// Puts bytes on the wire (the lane must be settled) and re-times a waiting reader.
    fn send(&mut self, lane: usize, bytes: &[u8], injected: bool) {
        let now = self.handle.now();
        let p = self.params;
        let l = &mut self.lanes[lane];
        l.queue(&p, now, bytes);
        let n = bytes.len() as u64;
        if injected {
            l.stats.bytes_injected += n;
        } else {
            l.stats.bytes_written += n;
        }
        if l.reader.waiting() {
            let at = l.reader_wake_at(&p);
            l.reader.retime(&self.handle, at);
        }
        let mut message = json!({
            "line": self.name,
            "dir": l.label,
            "hex": hex::encode(bytes),
            "len": bytes.len(),
        });
        if injected {
            message["injected"] = true.into();
        }
        self.handle.trace(channels::UART, message);
    }

    fn poll_read(
        &mut self,
        lane: usize,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        waited: &mut bool,
    ) -> Poll<Result<usize, UartError>> {
        let now = self.handle.now();
        let p = self.params;
        let l = &mut self.lanes[lane];
        if buf.is_empty() {
            l.reader.clear();
            return Poll::Ready(Ok(0));
        }
        l.settle(&p, now);
        if l.break_pos == Some(0) {
            l.break_pos = None;
            l.reader.clear();
            return Poll::Ready(Err(UartError::Break));
        }
        if !l.rx.is_empty() && (!*waited || l.reader_ready(&p, now)) {
            l.reader.clear();
            return Poll::Ready(Ok(l.take(buf)));
        }
        *waited = true;
        let at = l.reader_wake_at(&p);
        l.reader.arm(&self.handle, at, cx.waker());
        crate::executor::note_wait(crate::executor::WaitOn::Named(
            "bytes on UART",
            l.note.clone(),
        ));
        Poll::Pending
    }

    fn poll_write(&mut self, lane: usize, cx: &mut Context<'_>, buf: &[u8]) -> Poll<usize> {
        if buf.is_empty() {
            return Poll::Ready(0);
        }
        self.settle(lane);
        let p = self.params;
        let l = &mut self.lanes[lane];
        let room = p.tx_cap.saturating_sub(l.wire.len());
        if room > 0 {
            l.writer.clear();
            let n = room.min(buf.len());
            self.send(lane, &buf[..n], false);
            return Poll::Ready(n);
        }
        let at = l.writer_wake_at(&p);
        l.writer.arm(&self.handle, at, cx.waker());
        crate::executor::note_wait(crate::executor::WaitOn::Named(
            "room in the TX buffer of UART",
            l.note.clone(),
        ));
        Poll::Pending
    }

    fn poll_flush(&mut self, lane: usize, cx: &mut Context<'_>) -> Poll<()> {
        self.settle(lane);
        let l = &mut self.lanes[lane];
        match l.wire.back() {
            None => {
                l.writer.clear();
                Poll::Ready(())
            }
            Some(&(last, _)) => {
                l.writer.arm(&self.handle, Some(last), cx.waker());
                crate::executor::note_wait(crate::executor::WaitOn::Named(
                    "a flush of UART",
                    l.note.clone(),
                ));
                Poll::Pending
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Role {
    Reader,
    Writer,
}

/// Forgets a waiting task's waker and timer when its future is dropped
/// (e.g. it lost a `select` against a timeout), so no stale pause point stays.
struct ClearOnDrop<'a> {
    line: &'a RefCell<Line>,
    lane: usize,
    role: Role,
}

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        if let Ok(mut line) = self.line.try_borrow_mut() {
            let lane = &mut line.lanes[self.lane];
            match self.role {
                Role::Reader => lane.reader.clear(),
                Role::Writer => lane.writer.clear(),
            }
        }
    }
}

async fn read_on(line: &RefCell<Line>, lane: usize, buf: &mut [u8]) -> Result<usize, UartError> {
    let _guard = ClearOnDrop {
        line,
        lane,
        role: Role::Reader,
    };
    let mut waited = false;
    poll_fn(|cx| line.borrow_mut().poll_read(lane, cx, buf, &mut waited)).await
}

async fn write_on(line: &RefCell<Line>, lane: usize, buf: &[u8]) -> usize {
    let _guard = ClearOnDrop {
        line,
        lane,
        role: Role::Writer,
    };
    poll_fn(|cx| line.borrow_mut().poll_write(lane, cx, buf)).await
}

async fn flush_on(line: &RefCell<Line>, lane: usize) {
    let _guard = ClearOnDrop {
        line,
        lane,
        role: Role::Writer,
    };
    poll_fn(|cx| line.borrow_mut().poll_flush(lane, cx)).await
}

fn read_ready_on(line: &RefCell<Line>, lane: usize) -> bool {
    let mut line = line.borrow_mut();
    line.settle(lane);
    let l = &line.lanes[lane];
    !l.rx.is_empty() || l.break_pos.is_some()
}

fn available_on(line: &RefCell<Line>, lane: usize) -> usize {
    let mut line = line.borrow_mut();
    line.settle(lane);
    line.lanes[lane].rx.len()
}

fn write_ready_on(line: &RefCell<Line>, lane: usize) -> bool {
    let mut line = line.borrow_mut();
    line.settle(lane);
    line.lanes[lane].wire.len() < line.params.tx_cap
}

macro_rules! impl_io {
    ($ty:ty, read: $rx:ident) => {
        impl embedded_io_async::ErrorType for $ty {
            type Error = UartError;
        }
        impl embedded_io_async::Read for $ty {
            async fn read(&mut self, buf: &mut [u8]) -> Result<usize, UartError> {
                read_on(&self.line, self.$rx, buf).await
            }
        }
        impl embedded_io_async::ReadReady for $ty {
            fn read_ready(&mut self) -> Result<bool, UartError> {
                Ok(read_ready_on(&self.line, self.$rx))
            }
        }
    };
    ($ty:ty, write: $tx:ident) => {
        impl embedded_io_async::Write for $ty {
            async fn write(&mut self, buf: &[u8]) -> Result<usize, UartError> {
                Ok(write_on(&self.line, self.$tx, buf).await)
            }
            async fn flush(&mut self) -> Result<(), UartError> {
                flush_on(&self.line, self.$tx).await;
                Ok(())
            }
        }
        impl embedded_io_async::WriteReady for $ty {
            fn write_ready(&mut self) -> Result<bool, UartError> {
                Ok(write_ready_on(&self.line, self.$tx))
            }
        }
    };
}

impl_io!(UartPort, read: rx);
impl_io!(UartPort, write: tx);
impl_io!(UartRx, read: lane);
impl embedded_io_async::ErrorType for UartTx {
    type Error = UartError;
}
impl_io!(UartTx, write: lane);

/// A queue of frames for one UART end, written out in order by a task of its
/// own: a twin's request handler queues replies (not before a given virtual
/// time, e.g. after a servo's return delay) without awaiting the line.
#[derive(Clone)]
pub struct TxQueue {
    inner: Rc<RefCell<TxQueueInner>>,
    handle: SimHandle,
}

#[derive(Default)]
struct TxQueueInner {
    frames: VecDeque<(Nanos, Vec<u8>)>,
    waker: Option<Waker>,
}

impl TxQueue {
    /// Starts the writer task (`name`) on `tx`.
    pub fn spawn(handle: &SimHandle, name: String, mut tx: UartTx) -> TxQueue {
        let queue = TxQueue {
            inner: Rc::new(RefCell::new(TxQueueInner::default())),
            handle: handle.clone(),
        };
        let q = queue.clone();
        handle.spawn(name, async move {
            loop {
                let (at, bytes) = poll_fn(|cx| {
                    let mut inner = q.inner.borrow_mut();
                    match inner.frames.pop_front() {
                        Some(frame) => Poll::Ready(frame),
                        None => {
                            inner.waker = Some(cx.waker().clone());
                            crate::executor::note_wait(crate::executor::WaitOn::Event(
                                "frames to send",
                            ));
                            Poll::Pending
                        }
                    }
                })
                .await;
                q.handle.sleep_until(at).await;
                // A failed write only means the line is gone.
                let _ = embedded_io_async::Write::write_all(&mut tx, &bytes).await;
            }
        });
        queue
    }

    /// Queues `bytes` to go out as soon as the line is free.
    pub fn send(&self, bytes: Vec<u8>) {
        self.send_at(self.handle.now(), bytes);
    }

    /// Queues `bytes` to start no earlier than virtual time `at`.
    pub fn send_at(&self, at: Nanos, bytes: Vec<u8>) {
        let mut inner = self.inner.borrow_mut();
        inner.frames.push_back((at, bytes));
        if let Some(w) = inner.waker.take() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MICROS, MILLIS, RunStop, SECONDS, Sim};
    use embassy_futures::select::{Either, select};
    use embedded_io_async::{Read, ReadReady, Write};
    use std::cell::{Cell, RefCell};

    /// What a reader saw: (virtual time, bytes or error) per read.
    type Log = Rc<RefCell<Vec<(Nanos, Result<Vec<u8>, UartError>)>>>;

    /// Spawns a task that reads until it has `total` bytes (forever if lost
    /// bytes keep it short), logging each read.
    fn spawn_reader(
        sim: &mut Sim,
        name: &str,
        mut rx: impl Read<Error = UartError> + 'static,
        total: usize,
    ) -> Log {
        let log: Log = Rc::default();
        let out = log.clone();
        let h = sim.handle();
        sim.spawn(name, async move {
            let mut got = 0;
            let mut buf = [0u8; 256];
            while got < total {
                let r = rx.read(&mut buf).await;
                if let Ok(n) = r {
                    got += n;
                }
                out.borrow_mut()
                    .push((h.now(), r.map(|n| buf[..n].to_vec())));
            }
        });
        log
    }

    fn bytes_of(log: &Log) -> Vec<u8> {
        log.borrow()
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .flatten()
            .copied()
            .collect()
    }

    fn done_at(log: &Log) -> Nanos {
        log.borrow().last().expect("reader read something").0
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    fn write_at(sim: &mut Sim, mut tx: impl Write + 'static, at: Nanos, data: Vec<u8>) {
        let h = sim.handle();
        sim.spawn("writer", async move {
            h.sleep_until(at).await;
            tx.write_all(&data).await.ok();
        });
    }

    #[test]
    fn exact_burst_times_at_115200() {
        let c = UartConfig::default();
        assert_eq!(c.bits_per_byte(), 10);
        assert_eq!(c.burst_time_ns(1), 86_806);
        assert_eq!(c.burst_time_ns(64), 5_555_556);
        assert!((c.byte_time_ns() - 86_805.555).abs() < 0.01);
        let c8e2 = UartConfig {
            parity: true,
            stop_bits: 2,
            ..UartConfig::default()
        };
        assert_eq!(c8e2.bits_per_byte(), 12);
    }

    #[test]
    fn sixty_four_bytes_at_115200_arrive_on_time() {
        let mut sim = Sim::new(1);
        let (a, b, _ctl) = Uart::pair(&sim.handle(), "u", UartConfig::default());
        write_at(&mut sim, a, 0, pattern(64));
        let log = spawn_reader(&mut sim, "reader", b, 64);
        sim.run_until(86_805, |_| false).unwrap();
        assert!(log.borrow().is_empty(), "nothing readable before 86_806 ns");
        sim.run_until(5_555_555, |_| false).unwrap();
        assert_eq!(log.borrow()[0].0, 86_806);
        assert_eq!(
            bytes_of(&log).len(),
            63,
            "63 bytes readable at 5_555_555 ns"
        );
        assert_eq!(sim.run_until(SECONDS, |_| false).unwrap(), RunStop::Idle);
        assert_eq!(bytes_of(&log), pattern(64));
        assert_eq!(done_at(&log), 5_555_556);
    }

    #[test]
    fn late_reader_finds_exactly_63_of_64_bytes() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let (mut a, mut b, _ctl) = Uart::pair(&h, "u", UartConfig::default());
        let seen = Rc::new(RefCell::new(Vec::new()));
        let out = seen.clone();
        sim.spawn("dev", async move {
            a.write_all(&pattern(64)).await.unwrap();
            assert_eq!(h.now(), 0, "64 bytes fit the TX buffer");
            h.sleep_until(5_555_555).await;
            let mut buf = [0u8; 128];
            let n = b.read(&mut buf).await.unwrap();
            out.borrow_mut().push((h.now(), n));
            let n = b.read(&mut buf).await.unwrap();
            out.borrow_mut().push((h.now(), n));
        });
        sim.run_until(SECONDS, |_| false).unwrap();
        assert_eq!(*seen.borrow(), vec![(5_555_555, 63), (5_555_556, 1)]);
    }

    #[test]
    fn a_megabyte_at_1_mbaud_takes_exactly_ten_seconds() {
        const N: usize = 1_000_000;
        let mut sim = Sim::new(1);
        let h = sim.handle();
        // An RX FIFO threshold as on ESP32/STM32 keeps wakes per chunk, not per byte.
        let config = UartConfig {
            baud: 1_000_000,
            tx_buffer: 1024,
            rx_buffer: 4096,
            rx_wake_threshold: 1000,
            ..UartConfig::default()
        };
        let (a, b, ctl) = Uart::pair(&h, "fast", config);
        let (_a_rx, mut tx) = a.split();
        let (mut rx, _b_tx) = b.split();
        let flushed = Rc::new(Cell::new(None));
        let received = Rc::new(Cell::new(None));
        let (f, h1) = (flushed.clone(), h.clone());
        sim.spawn("sender", async move {
            tx.write_all(&pattern(N)).await.unwrap();
            tx.flush().await.unwrap();
            f.set(Some(h1.now()));
        });
        let (r, h2) = (received.clone(), h.clone());
        sim.spawn("receiver", async move {
            let mut buf = vec![0u8; 4096];
            let mut got = 0;
            while got < N {
                let n = rx.read(&mut buf).await.unwrap();
                for (i, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, ((got + i) % 251) as u8, "byte {}", got + i);
                }
                got += n;
            }
            r.set(Some(h2.now()));
        });
        sim.run_until(100 * SECONDS, |_| false).unwrap();
        assert_eq!(received.get(), Some(10 * SECONDS));
        assert_eq!(flushed.get(), Some(10 * SECONDS));
        let s = ctl.stats().a_to_b;
        assert_eq!(
            (s.bytes_written, s.bytes_delivered, s.bytes_read),
            (N as u64, N as u64, N as u64)
        );
        assert_eq!(s.overruns, 0);
    }

    #[test]
    fn pair_round_trip_both_ways() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let (mut a, mut b, ctl) = Uart::pair(&h, "cable", UartConfig::default());
        let bt = UartConfig::default().burst_time_ns(4);
        let h1 = h.clone();
        sim.spawn("echo-b", async move {
            let mut buf = [0u8; 4];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            assert_eq!(h1.now(), bt);
            b.write_all(b"pong").await.unwrap();
        });
        let done = Rc::new(Cell::new(0));
        let d = done.clone();
        sim.spawn("a", async move {
            a.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            a.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"pong");
            d.set(h.now());
        });
        sim.run_until(SECONDS, |_| false).unwrap();
        assert!(sim.failures().is_empty(), "{:?}", sim.failures());
        assert_eq!(done.get(), 2 * bt);
        let s = ctl.stats();
        assert_eq!(s.a_to_b.bytes_delivered, 4);
        assert_eq!(s.b_to_a.bytes_delivered, 4);
    }

    #[test]
    fn loopback_reads_back_its_own_bytes() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let (port, ctl) = Uart::loopback(&h, "jumper", UartConfig::default());
        let (rx, mut tx) = port.split();
        sim.spawn("tx", async move { tx.write_all(b"hello").await.unwrap() });
        let log = spawn_reader(&mut sim, "rx", rx, 5);
        sim.run_until(SECONDS, |_| false).unwrap();
        assert_eq!(bytes_of(&log), b"hello");
        assert_eq!(done_at(&log), UartConfig::default().burst_time_ns(5));
        let s = ctl.stats();
        assert_eq!(s.a_to_b.bytes_read, 5);
        assert_eq!(s.b_to_a, DirStats::default());
    }

    #[test]
    fn full_tx_buffer_makes_the_writer_wait_until_half_drained() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let config = UartConfig {
            tx_buffer: 16,
            ..UartConfig::default()
        };
        let c = config.clone();
        let (mut a, b, _ctl) = Uart::pair(&h, "u", config);
        let events = Rc::new(RefCell::new(Vec::new()));
        let ev = events.clone();
        sim.spawn("writer", async move {
            let data = pattern(32);
            let mut sent = 0;
            while sent < data.len() {
                let n = a.write(&data[sent..]).await.unwrap();
                ev.borrow_mut().push((h.now(), n));
                sent += n;
            }
            a.flush().await.unwrap();
            ev.borrow_mut().push((h.now(), 0));
        });
        let log = spawn_reader(&mut sim, "reader", b, 32);
        sim.run_until(SECONDS, |_| false).unwrap();
        let bt = |n| c.burst_time_ns(n);
        // 16 at once; then wait until 8 remain pending (byte 8 arrived) and
        // refill 8; again at byte 16; flush ends when byte 32 arrives.
        assert_eq!(
            *events.borrow(),
            vec![(0, 16), (bt(8), 8), (bt(16), 8), (bt(32), 0)]
        );
        // The refills kept the line busy: one unbroken burst.
        assert_eq!(bytes_of(&log), pattern(32));
        assert_eq!(done_at(&log), bt(32));
    }

    #[test]
    fn rx_threshold_wakes_the_reader_only_when_reached() {
        let mut sim = Sim::new(1);
        let config = UartConfig {
            rx_wake_threshold: 8,
            ..UartConfig::default()
        };
        let c = config.clone();
        let (a, b, _ctl) = Uart::pair(&sim.handle(), "u", config);
        write_at(&mut sim, a, 0, pattern(20));
        let log = spawn_reader(&mut sim, "reader", b, 20);
        assert_eq!(sim.run_until(SECONDS, |_| false).unwrap(), RunStop::Idle);
        let reads: Vec<_> = log
            .borrow()
            .iter()
            .map(|(t, r)| (*t, r.clone().unwrap().len()))
            .collect();
        // Without an idle timeout the last 4 bytes never wake the reader.
        assert_eq!(
            reads,
            vec![(c.burst_time_ns(8), 8), (c.burst_time_ns(16), 8)]
        );
    }

    #[test]
    fn rx_idle_timeout_wakes_the_reader_after_a_quiet_line() {
        let mut sim = Sim::new(1);
        let config = UartConfig {
            rx_wake_threshold: 8,
            rx_idle_symbols: 3,
            ..UartConfig::default()
        };
        let c = config.clone();
        let (a, b, _ctl) = Uart::pair(&sim.handle(), "u", config);
        write_at(&mut sim, a, 0, pattern(20));
        // The reader goes to sleep before anything is written.
        let log = spawn_reader(&mut sim, "reader", b, 20);
        sim.run_until(SECONDS, |_| false).unwrap();
        let reads: Vec<_> = log
            .borrow()
            .iter()
            .map(|(t, r)| (*t, r.clone().unwrap().len()))
            .collect();
        assert_eq!(
            reads,
            vec![
                (c.burst_time_ns(8), 8),
                (c.burst_time_ns(16), 8),
                (c.burst_time_ns(20) + c.burst_time_ns(3), 4)
            ]
        );
    }

    #[test]
    fn a_write_after_the_reader_sleeps_moves_its_wake_earlier() {
        let mut sim = Sim::new(1);
        let config = UartConfig {
            rx_wake_threshold: 4,
            rx_idle_symbols: 2,
            ..UartConfig::default()
        };
        let c = config.clone();
        let (port, ctl) = Uart::loopback(&sim.handle(), "u", config);
        let (rx, tx) = port.split();
        let log = spawn_reader(&mut sim, "reader", rx, 4);
        // One byte at 0 sets an idle wake; three more at 1 µs reach the threshold sooner.
        ctl.inject(Direction::Both, &[1]);
        write_at(&mut sim, tx, MICROS, vec![2, 3, 4]);
        sim.run_until(SECONDS, |_| false).unwrap();
        assert_eq!(
            *log.borrow(),
            vec![(c.burst_time_ns(4), Ok(vec![1, 2, 3, 4]))]
        );
    }

    #[test]
    fn overrun_loses_bytes_and_counts_them() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let config = UartConfig {
            rx_buffer: 16,
            ..UartConfig::default()
        };
        let c = config.clone();
        let (a, mut b, ctl) = Uart::pair(&h, "u", config);
        write_at(&mut sim, a, 0, pattern(40));
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        sim.spawn("slow reader", async move {
            h.sleep_until(c.burst_time_ns(40)).await;
            let mut buf = [0u8; 64];
            let n = b.read(&mut buf).await.unwrap();
            g.borrow_mut().extend_from_slice(&buf[..n]);
        });
        sim.run_until(SECONDS, |_| false).unwrap();
        assert_eq!(*got.borrow(), pattern(16));
        let s = ctl.stats().a_to_b;
        assert_eq!((s.bytes_delivered, s.overruns), (16, 24));
    }

    #[test]
    fn a_fast_reader_with_a_small_rx_buffer_loses_nothing() {
        let mut sim = Sim::new(1);
        let config = UartConfig {
            rx_buffer: 4,
            rx_wake_threshold: 3,
            rx_idle_symbols: 1,
            ..UartConfig::default()
        };
        let (a, b, ctl) = Uart::pair(&sim.handle(), "u", config);
        write_at(&mut sim, a, 0, pattern(1000));
        let log = spawn_reader(&mut sim, "reader", b, 1000);
        sim.run_until(10 * SECONDS, |_| false).unwrap();
        assert_eq!(bytes_of(&log), pattern(1000));
        assert_eq!(ctl.stats().a_to_b.overruns, 0);
    }

    fn noisy_run(seed: u64, ber: f64) -> (Vec<u8>, DirStats) {
        let mut sim = Sim::new(seed);
        let (a, b, ctl) = Uart::pair(&sim.handle(), "noisy", UartConfig::default());
        ctl.set_bit_error_rate(Direction::AToB, ber, None);
        write_at(&mut sim, a, 0, pattern(2000));
        let log = spawn_reader(&mut sim, "reader", b, 2000);
        sim.run_until(10 * SECONDS, |_| false).unwrap();
        (bytes_of(&log), ctl.stats().a_to_b)
    }

    #[test]
    fn bit_error_rate_one_flips_every_bit_and_zero_none() {
        let (out, s) = noisy_run(1, 1.0);
        let flipped: Vec<u8> = pattern(2000).iter().map(|b| !b).collect();
        assert_eq!(out, flipped);
        assert_eq!(s.corrupted, 2000);
        let (out, s) = noisy_run(1, 0.0);
        assert_eq!(out, pattern(2000));
        assert_eq!(s.corrupted, 0);
    }

    #[test]
    fn bit_errors_are_reproducible_from_the_seed() {
        let (out1, s1) = noisy_run(42, 0.01);
        let (out2, s2) = noisy_run(42, 0.01);
        let (out3, _) = noisy_run(43, 0.01);
        assert_eq!(out1, out2);
        assert_eq!(s1, s2);
        assert_ne!(out1, out3);
        // 2000 bytes * 8 bits * 1% ~ 160 flips; about 150 bytes touched.
        assert!((80..250).contains(&s1.corrupted), "{}", s1.corrupted);
        let differing = out1
            .iter()
            .zip(pattern(2000))
            .filter(|(a, b)| **a != *b)
            .count();
        assert_eq!(differing as u64, s1.corrupted);
    }

    #[test]
    fn drop_rate_loses_about_that_fraction_of_bytes() {
        let mut sim = Sim::new(7);
        let (a, b, ctl) = Uart::pair(&sim.handle(), "lossy", UartConfig::default());
        ctl.set_drop_rate(Direction::AToB, 0.25, None);
        let data: Vec<u8> = (0..4000u32).map(|i| (i % 256) as u8).collect();
        write_at(&mut sim, a, 0, data);
        let log = spawn_reader(&mut sim, "reader", b, 4000);
        sim.run_until(10 * SECONDS, |_| false).unwrap();
        let s = ctl.stats().a_to_b;
        assert_eq!(s.dropped + s.bytes_delivered, 4000);
        assert!((850..1150).contains(&s.dropped), "{}", s.dropped);
        assert_eq!(bytes_of(&log).len() as u64, s.bytes_delivered);
        // What survives keeps its order (each 256-byte block counts up).
        let out = bytes_of(&log);
        assert!(out.windows(2).filter(|w| w[1] <= w[0]).count() <= 16);
    }

    #[test]
    fn a_line_break_loses_bytes_in_its_window_and_reports_once() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let c = UartConfig::default();
        let (a, b, ctl) = Uart::pair(&h, "u", c.clone());
        write_at(&mut sim, a, 0, pattern(100));
        let log = spawn_reader(&mut sim, "reader", b, usize::MAX);
        let (start, len) = (c.burst_time_ns(10) + 1000, 2 * MILLIS);
        let ctl2 = ctl.clone();
        sim.spawn("fault", async move {
            h.sleep_until(start).await;
            ctl2.line_break(Direction::AToB, len);
        });
        sim.run_until(SECONDS, |_| false).unwrap();
        let breaks: Vec<_> = log
            .borrow()
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(breaks, vec![start]);
        let kept: Vec<u8> = (0..100u64)
            .filter(|k| {
                let t = c.burst_time_ns(k + 1);
                t <= start || t >= start + len
            })
            .map(|k| k as u8)
            .collect();
        assert_eq!(bytes_of(&log), kept);
        // The break sits between the bytes before it and those after.
        let pos = log.borrow().iter().position(|(_, r)| r.is_err()).unwrap();
        let before: usize = log.borrow()[..pos]
            .iter()
            .map(|(_, r)| r.as_ref().unwrap().len())
            .sum();
        assert_eq!(before, 10);
        let s = ctl.stats().a_to_b;
        assert_eq!(s.breaks, 1);
        assert_eq!(s.lost_in_break, 100 - kept.len() as u64);
        assert!(s.lost_in_break > 20);
    }

    #[test]
    fn a_break_waits_behind_unread_bytes() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let (mut a, mut b, ctl) = Uart::pair(&h, "u", UartConfig::default());
        let seen = Rc::new(RefCell::new(Vec::new()));
        let out = seen.clone();
        sim.spawn("dev", async move {
            a.write_all(b"abc").await.unwrap();
            a.flush().await.unwrap();
            ctl.line_break(Direction::AToB, MILLIS);
            h.sleep(2 * MILLIS).await;
            a.write_all(b"d").await.unwrap();
            let mut buf = [0u8; 8];
            for _ in 0..3 {
                let r = b.read(&mut buf).await.map(|n| buf[..n].to_vec());
                out.borrow_mut().push(r);
            }
        });
        sim.run_until(SECONDS, |_| false).unwrap();
        assert_eq!(
            *seen.borrow(),
            vec![
                Ok(b"abc".to_vec()),
                Err(UartError::Break),
                Ok(b"d".to_vec())
            ]
        );
    }

    #[test]
    fn disconnect_for_10ms_loses_only_bytes_arriving_then() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let c = UartConfig::default();
        let (a, b, ctl) = Uart::pair(&h, "u", c.clone());
        write_at(&mut sim, a, 0, pattern(1000));
        let log = spawn_reader(&mut sim, "reader", b, usize::MAX);
        let ctl2 = ctl.clone();
        sim.spawn("unplug", async move {
            h.sleep_until(20 * MILLIS).await;
            ctl2.disconnect(10 * MILLIS);
        });
        sim.run_until(10 * SECONDS, |_| false).unwrap();
        // The writer refills at half buffer, so all 1000 bytes are one burst.
        let kept: Vec<u8> = (0..1000u64)
            .filter(|k| {
                let t = c.burst_time_ns(k + 1);
                !(20 * MILLIS < t && t < 30 * MILLIS)
            })
            .map(|k| (k % 251) as u8)
            .collect();
        assert_eq!(kept.len(), 1000 - 115);
        assert_eq!(bytes_of(&log), kept);
        let s = ctl.stats();
        assert_eq!(s.a_to_b.lost_in_disconnect, 115);
        assert_eq!(s.a_to_b.bytes_written, 1000);
        assert!(
            log.borrow().iter().all(|(_, r)| r.is_ok()),
            "no error for a disconnect"
        );
    }

    #[test]
    fn injected_bytes_follow_the_line_timing() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let c = UartConfig::default();
        let (mut a, b, ctl) = Uart::pair(&h, "u", c.clone());
        let (b_rx, _b_tx) = b.split();
        let log_b = spawn_reader(&mut sim, "b", b_rx, 16);
        let ctl2 = ctl.clone();
        sim.spawn("a", async move {
            a.write_all(b"0123456789").await.unwrap();
            ctl2.inject(Direction::AToB, b"XYZ");
            h.sleep_until(10 * MILLIS).await;
            ctl2.inject(Direction::AToB, b"!!!");
            // Injected toward A: A reads it.
            ctl2.inject(Direction::BToA, b"hi");
            let mut buf = [0u8; 2];
            a.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hi");
            assert_eq!(
                h.now(),
                10 * MILLIS + UartConfig::default().burst_time_ns(2)
            );
        });
        sim.run_until(SECONDS, |_| false).unwrap();
        assert!(sim.failures().is_empty(), "{:?}", sim.failures());
        let log = log_b.borrow();
        let times: Vec<Nanos> = log.iter().map(|(t, _)| *t).collect();
        let expect: Vec<Nanos> = (1..=13)
            .map(|k| c.burst_time_ns(k))
            .chain((1..=3).map(|k| 10 * MILLIS + c.burst_time_ns(k)))
            .collect();
        assert_eq!(times, expect);
        drop(log);
        assert_eq!(bytes_of(&log_b), b"0123456789XYZ!!!");
        let s = ctl.stats();
        assert_eq!((s.a_to_b.bytes_written, s.a_to_b.bytes_injected), (10, 6));
    }

    #[test]
    fn a_fault_with_until_stops_applying_at_that_time() {
        let mut sim = Sim::new(3);
        let c = UartConfig::default();
        let (a, b, ctl) = Uart::pair(&sim.handle(), "u", c.clone());
        let until = c.burst_time_ns(50);
        ctl.set_bit_error_rate(Direction::Both, 1.0, Some(until));
        ctl.set_drop_rate(Direction::BToA, 1.0, Some(until));
        write_at(&mut sim, a, 0, pattern(100));
        let log = spawn_reader(&mut sim, "reader", b, 100);
        sim.run_until(SECONDS, |_| false).unwrap();
        let out = bytes_of(&log);
        // Bytes 0..49 end before `until` and are flipped; byte 49 ends at it.
        let expect: Vec<u8> = pattern(100)
            .iter()
            .enumerate()
            .map(|(k, b)| if k < 49 { !b } else { *b })
            .collect();
        assert_eq!(out, expect);
        let s = ctl.stats();
        assert_eq!(s.a_to_b.corrupted, 49);
        assert_eq!(
            s.a_to_b.dropped, 0,
            "the drop was set on the other direction"
        );
    }

    #[test]
    fn a_dropped_read_leaves_no_pause_point() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let c = UartConfig {
            rx_wake_threshold: 16,
            ..UartConfig::default()
        };
        let (mut a, mut b, _ctl) = Uart::pair(&h, "u", c.clone());
        let timeout = c.burst_time_ns(5);
        sim.spawn("dev", async move {
            a.write_all(&pattern(20)).await.unwrap();
            let mut buf = [0u8; 32];
            let r = select(b.read(&mut buf), h.sleep(timeout)).await;
            assert!(matches!(r, Either::Second(())));
            assert!(b.read_ready().unwrap(), "5 bytes are waiting");
        });
        assert_eq!(sim.run_until(SECONDS, |_| false).unwrap(), RunStop::Idle);
        assert!(sim.failures().is_empty(), "{:?}", sim.failures());
        // The abandoned read's timer (at byte 16) was cancelled.
        assert_eq!(sim.now(), timeout);
    }

    #[test]
    fn trace_records_writes_and_faults() {
        let mut sim = Sim::new(1);
        let (mut a, _b, ctl) = Uart::pair(&sim.handle(), "rvr", UartConfig::default());
        ctl.set_bit_error_rate(Direction::BToA, 0.5, Some(MILLIS));
        sim.spawn("a", async move { a.write_all(b"Hello").await.unwrap() });
        sim.run_until(SECONDS, |_| false).unwrap();
        let trace = sim.take_trace();
        let uart: Vec<_> = trace.on_channel(channels::UART).map(|r| r.json()).collect();
        assert_eq!(
            uart,
            vec![json!({"line": "rvr", "dir": "a->b", "hex": "48656c6c6f", "len": 5})]
        );
        let faults: Vec<_> = trace
            .on_channel(channels::FAULTS)
            .map(|r| r.json())
            .collect();
        assert_eq!(
            faults,
            vec![
                json!({"target": "uart", "line": "rvr", "fault": "bit_errors",
                        "dir": "b->a", "ber": 0.5, "until": MILLIS})
            ]
        );
    }

    #[test]
    fn bad_configs_are_rejected_by_validate_and_clamped_by_pair() {
        assert!(UartConfig::default().validate().is_ok());
        let bad = UartConfig {
            baud: 0,
            ..UartConfig::default()
        };
        assert_eq!(bad.validate(), Err(UartConfigError::ZeroBaud));
        let sim = Sim::new(1);
        let (port, _ctl) = Uart::loopback(&sim.handle(), "u", bad);
        assert_eq!(port.config().baud, 1);
        let seven = UartConfig {
            data_bits: 7,
            ..UartConfig::default()
        };
        assert!(seven.validate().is_ok());
        assert_eq!(
            UartConfig {
                data_bits: 9,
                ..UartConfig::default()
            }
            .validate(),
            Err(UartConfigError::DataBits(9))
        );
    }

    #[test]
    fn seven_data_bits_carry_seven_bits() {
        let mut sim = Sim::new(1);
        let config = UartConfig {
            data_bits: 7,
            ..UartConfig::default()
        };
        let (port, _ctl) = Uart::loopback(&sim.handle(), "u", config);
        let (rx, tx) = port.split();
        write_at(&mut sim, tx, 0, vec![0xff, 0x41]);
        let log = spawn_reader(&mut sim, "rx", rx, 2);
        sim.run_until(SECONDS, |_| false).unwrap();
        assert_eq!(bytes_of(&log), vec![0x7f, 0x41]);
        // 1 + 7 + 1 = 9 bit times per byte.
        assert_eq!(done_at(&log), 156_250); // 18e9 / 115200, exact
    }
}
