//! The Amazing Hand's half-duplex SCS servo bus: N SCS0009 twins (ids 1..=8
//! for the hand) answering the SCS protocol on one end of a UART line.
//!
//! # Behaviour
//! - One task reads bytes from the host side and parses frames
//!   ([`Parser`]); a packet's arrival time is the virtual time its last byte
//!   arrives. Another task writes replies; a third samples motion for the trace.
//! - Dispatch by id: a unicast PING/READ/WRITE/REG_WRITE/ACTION is answered
//!   by the addressed servo; broadcast (0xFE) acts on every servo and is never
//!   answered; SYNC_WRITE writes each listed servo and is never answered.
//!   With `response_status_level` (8) = 0 only PING and READ are answered
//!   (SCServo's `Level` behaviour, assumed). Nothing is ever sent unsolicited.
//! - No reply (and no effect) for: a bad checksum (counted on the bus and on
//!   the servo the id byte names), params that do not fit the instruction
//!   (`malformed`), an instruction the SCS0009 does not implement — SYNC_READ,
//!   RESET, OFFSET_CALIBRATION, rustypot's Dynamixel-only FACTORY_RESET (0x06)
//!   and REBOOT (0x08), unknown codes (`unsupported`, assumed silent) — and
//!   ids nobody has (`unaddressed`).
//! - SYNC_READ (0x82) in particular stays silent, as the real servo does:
//!   Feetech's FTS-rs README family table says the SCSCL family has no sync
//!   read (amazing-hand.md section 2.2), and rustypot 1.13.1's own SCS0009
//!   definition says `supports_sync_read: false` ("the Feetech SCS series"),
//!   so its generic `sync_read_register` reads one id at a time instead. Its
//!   generated `sync_read_<register>` methods still send SYNC_READ and wait
//!   for one status per id, so they time out against a real SCS0009 as they
//!   do against the twin.
//! - A frame left incomplete for [`BusConfig::idle_give_up`] is abandoned and
//!   the held bytes rescanned (assumed; servo-side timeout not published).
//! - The UART break condition resets the parser.
//!
//! # Timing model (assumed values are parameters in [`BusConfig`])
//! - Reply: starts `reply_latency` (assumed 50 us) plus `return_delay_unit`
//!   (assumed 2 us, Dynamixel's unit) x register 7 (default 0, "Reserved" on
//!   the SCS0009) after the request's last byte, then takes 10 us per byte at
//!   1 Mbaud 8N1 on the wire. No documented SCS0009 turnaround exists.
//! - Reads never miss. A PING or READ is answered after the return delay
//!   whatever the servo is doing, a write in progress included, and starts
//!   no window. The tools people run against real SCS servos poll this way
//!   and work: rustypot's controller sends the next READ as soon as the
//!   previous reply is in, with no pause, and Pollen's demos and LeRobot-style
//!   tools read positions in tight loops, also straight after a write. No
//!   source documents a missed read, so none is modelled (assumed).
//! - Writes can miss. A servo that accepts a write (a WRITE, unicast or
//!   broadcast, its entry of a SYNC_WRITE, or an ACTION that applies its
//!   registered write) spends `processing_window` (assumed 500 us, from the
//!   write's last byte) applying it. Another write for the same servo whose
//!   last byte arrives in that time is MISSED: no effect, no reply (so a
//!   driver waiting for the acknowledgement times out), counted per servo
//!   (`missed`) and traced; a missed write does not extend the window.
//!   REG_WRITE only stores its write until ACTION, so it neither misses nor
//!   starts a window, and an ACTION with nothing registered does nothing
//!   (both assumed). Writes to other servos are never affected.
//! - Evidence for missed writes, and all of it: SYSTEMS.md section 2 says of
//!   Pollen's per-finger sequence "commands sent faster than this are missed
//!   or move erratically", and amazing-hand.md section 4 gives the sequence:
//!   write_goal_speed(m1), 0.2 ms, write_goal_speed(m2), 0.2 ms,
//!   write_goal_position(m1), write_goal_position(m2), 5 ms, every write
//!   acknowledged. The evidence is about commands (writes) only; what a
//!   servo does with them is not published, nor any SCS0009 processing time.
//!   The window is sized from the sequence: at 1 Mbaud a 9-byte WRITE lasts
//!   90 us and its 6-byte acknowledgement ends 110 us after it (50 us
//!   latency), so one acknowledged write takes 200 us, last byte to last
//!   byte. With the pauses, a servo's next write comes 800 us (m1: its speed,
//!   m2's speed, its position) or 600 us (m2: its speed, m1's position, its
//!   position) after the previous one; without them, 400 us for both. Any
//!   window in (400, 600] us lets the demo through and makes the pause-less
//!   sequence miss; 500 us is the middle. The next finger's writes go to
//!   other servos, and a servo's next letter comes tens of ms later.
//! - Motion is computed lazily from virtual time on every access (no per-us
//!   timers); nothing reads the wall clock.
//! - Not modelled: collisions when host and servo talk at once, the echo of
//!   the host's own bytes on a one-wire adapter, baud changes (register 6).
//!
//! # Trace
//! Channel [`SERVOS_CHANNEL`] = `"/servos"`: while any servo moves, every
//! `trace_period` (assumed 20 ms) `{"ids": [..], "deg": [..], "moving": [..]}`
//! (present angles in degrees, in bus order), plus one sample when motion
//! stops; events `{"event": "missed"|"bad_checksum", "id": ..}`.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use embedded_io_async::Read;
use serde_json::json;

use super::protocol::{BROADCAST_ID, Instruction, Packet, ParseEvent, Parser};
use super::servo::{Servo, ServoParams, steps_to_deg};
use twinrig_sim::uart::{TxQueue, Uart, UartConfig, UartControl, UartPort, UartRx, UartTx};
use twinrig_sim::{MICROS, MILLIS, Nanos, SimHandle};

/// Trace channel of the servo bus (a literal; not in `trace::channels`).
pub const SERVOS_CHANNEL: &str = "/servos";
/// The hand's servo ids.
pub const HAND_IDS: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
/// The hand's bus speed.
pub const HAND_BAUD: u32 = 1_000_000;

/// Bus parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct BusConfig {
    /// Servo ids on the bus (default the hand's 1..=8).
    pub ids: Vec<u8>,
    /// Physical parameters every servo starts with.
    pub servo: ServoParams,
    /// Time a servo spends applying an accepted write, during which it
    /// misses further writes (assumed 500 us; see the module docs).
    pub processing_window: Nanos,
    /// Fixed delay from a request's last byte to the reply (assumed 50 us).
    pub reply_latency: Nanos,
    /// Delay per unit of the return-delay register 7 (assumed 2 us).
    pub return_delay_unit: Nanos,
    /// An incomplete frame is abandoned after this idle time (assumed 1 ms; 0 = never).
    pub idle_give_up: Nanos,
    /// Trace sampling period while anything moves (assumed 20 ms; 0 = no samples).
    pub trace_period: Nanos,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            ids: HAND_IDS.to_vec(),
            servo: ServoParams::default(),
            processing_window: 500 * MICROS,
            reply_latency: 50 * MICROS,
            return_delay_unit: 2 * MICROS,
            idle_give_up: MILLIS,
            trace_period: 20 * MILLIS,
        }
    }
}

/// Per-servo counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServoCounters {
    /// Intact packets for this servo (unicast, broadcast, SYNC_WRITE entries), missed ones included.
    pub packets: u64,
    /// Status packets sent.
    pub replies: u64,
    /// Writes missed because the servo was still applying the previous one.
    pub missed: u64,
    /// Bad-checksum frames whose id byte named this servo.
    pub bad_checksum: u64,
    /// Goal writes outside the angle limits, clamped into them (the
    /// status error byte's angle bit).
    pub clamped: u64,
}

/// One servo as the harness sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServoSnapshot {
    /// Id.
    pub id: u8,
    /// Present position, degrees (0 = raw 511).
    pub position_deg: f64,
    /// Goal position, degrees.
    pub goal_deg: f64,
    /// Present position register, raw steps.
    pub present_raw: u16,
    /// Goal position register, raw steps.
    pub goal_raw: u16,
    /// Torque on.
    pub torque: bool,
    /// Moving toward the goal.
    pub moving: bool,
    /// Counters.
    pub counters: ServoCounters,
}

/// Bus-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BusStats {
    /// Intact frames received.
    pub packets: u64,
    /// Frames with a bad checksum.
    pub bad_checksums: u64,
    /// Bytes dropped by the parser.
    pub skipped_bytes: u64,
    /// Incomplete frames abandoned.
    pub truncated: u64,
    /// Params that did not fit the instruction.
    pub malformed: u64,
    /// Instructions the SCS0009 does not implement.
    pub unsupported: u64,
    /// Unicast packets for an id nobody has.
    pub unaddressed: u64,
    /// Status packets sent.
    pub replies: u64,
    /// Writes missed (all servos).
    pub missed: u64,
}

/// A goal-position write as the bus saw it, accepted or missed: the input of
/// timing reports (which pose was asked for, and when it was reached).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoalEvent {
    /// Virtual time the packet's last byte arrived.
    pub t: Nanos,
    /// Servo id.
    pub id: u8,
    /// The goal asked for, degrees (clamped to the angle limits when accepted).
    pub goal_deg: f64,
    /// False when the servo was still applying a previous write and missed this one.
    pub accepted: bool,
    /// When the servo will be at the goal (accepted writes with torque on).
    pub arrival: Option<Nanos>,
}

struct Slot {
    servo: Servo,
    counters: ServoCounters,
    /// When the last write the servo accepted arrived.
    last_write: Option<Nanos>,
}

impl Slot {
    /// Whether the servo takes a write arriving at `now`; if it does, it
    /// applies it for `window` from now. Counts a miss otherwise.
    fn take_write(&mut self, now: Nanos, window: Nanos) -> bool {
        if self
            .last_write
            .is_some_and(|t| now < t.saturating_add(window))
        {
            self.counters.missed += 1;
            false
        } else {
            self.last_write = Some(now);
            true
        }
    }
}

/// Whether `i` makes `servo` apply a write (and so can be missed).
fn applies_write(i: &Instruction, servo: &Servo) -> bool {
    match i {
        Instruction::Write { .. } | Instruction::SyncWrite { .. } => true,
        Instruction::Action => servo.has_registered_write(),
        Instruction::Ping
        | Instruction::Read { .. }
        | Instruction::RegWrite { .. }
        | Instruction::Other { .. } => false,
    }
}

struct BusState {
    config: BusConfig,
    slots: Vec<Slot>,
    stats: BusStats,
    /// Status replies to the host; set once the writer task is spawned.
    tx: Option<TxQueue>,
    motion_waker: Option<Waker>,
    goal_log: Vec<GoalEvent>,
    write_times: Vec<Nanos>,
    first_motion: Option<Nanos>,
}

impl BusState {
    fn slot(&mut self, id: u8) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.servo.id() == id)
    }

    fn advance(&mut self, now: Nanos) {
        for s in &mut self.slots {
            s.servo.advance(now);
        }
    }
}

/// The harness's handle on a running servo bus. Cheap to clone.
#[derive(Clone)]
pub struct ServoBus {
    state: Rc<RefCell<BusState>>,
    handle: SimHandle,
}

impl ServoBus {
    /// Starts the bus on its end of a UART (`rx`, `tx`).
    pub fn spawn(
        handle: &SimHandle,
        name: &str,
        rx: UartRx,
        tx: UartTx,
        config: BusConfig,
    ) -> ServoBus {
        let now = handle.now();
        let slots = config
            .ids
            .iter()
            .map(|&id| Slot {
                servo: Servo::new(id, config.servo.clone(), now),
                counters: ServoCounters::default(),
                last_write: None,
            })
            .collect();
        let bus = ServoBus {
            state: Rc::new(RefCell::new(BusState {
                config,
                slots,
                stats: BusStats::default(),
                tx: None,
                motion_waker: None,
                goal_log: Vec::new(),
                write_times: Vec::new(),
                first_motion: None,
            })),
            handle: handle.clone(),
        };
        let b = bus.clone();
        handle.spawn(format!("{name} (servo bus RX)"), async move {
            b.serve(rx).await
        });
        let queue = TxQueue::spawn(handle, format!("{name} (servo bus TX)"), tx);
        bus.state.borrow_mut().tx = Some(queue);
        let b = bus.clone();
        handle.spawn(format!("{name} (servo bus trace)"), async move {
            b.trace_motion().await
        });
        bus
    }

    /// The hand's bus on a fresh 1 Mbaud 8N1 line named `name`: returns the
    /// bus, the host's end of the line (the seam a driver or a serial-port
    /// adapter plugs into) and the line's fault hooks.
    pub fn hand(
        handle: &SimHandle,
        name: &str,
        config: BusConfig,
    ) -> (ServoBus, UartPort, UartControl) {
        let line = UartConfig {
            baud: HAND_BAUD,
            ..UartConfig::default()
        };
        let (host, servos, control) = Uart::pair(handle, name, line);
        let (rx, tx) = servos.split();
        (ServoBus::spawn(handle, name, rx, tx, config), host, control)
    }

    /// Every servo, in bus order, at the current virtual time.
    pub fn snapshot(&self) -> Vec<ServoSnapshot> {
        let now = self.handle.now();
        let mut s = self.state.borrow_mut();
        s.advance(now);
        s.slots.iter().map(snapshot_of).collect()
    }

    /// One servo by its current id.
    pub fn servo(&self, id: u8) -> Option<ServoSnapshot> {
        self.snapshot().into_iter().find(|s| s.id == id)
    }

    /// Present angles in degrees, in bus order.
    pub fn angles_deg(&self) -> Vec<f64> {
        self.snapshot().iter().map(|s| s.position_deg).collect()
    }

    /// Bus-wide counters.
    pub fn stats(&self) -> BusStats {
        self.state.borrow().stats
    }

    /// Every goal-position write so far, in arrival order.
    pub fn goal_log(&self) -> Vec<GoalEvent> {
        self.state.borrow().goal_log.clone()
    }

    /// Arrival times of every WRITE and SYNC_WRITE packet (accepted or not):
    /// when a driver's commands reached the bus.
    pub fn write_times(&self) -> Vec<Nanos> {
        self.state.borrow().write_times.clone()
    }

    /// When a servo first started to move, if one has.
    pub fn first_motion(&self) -> Option<Nanos> {
        self.state.borrow().first_motion
    }

    /// Reads registers directly (harness inspection; not a bus transaction).
    pub fn read_register(&self, id: u8, addr: u8, len: u8) -> Option<Vec<u8>> {
        let now = self.handle.now();
        let mut s = self.state.borrow_mut();
        s.slot(id).map(|slot| slot.servo.read(addr, len, now))
    }

    /// Changes a servo's physical conditions (supply, temperature, top speed).
    pub fn set_servo_params(&self, id: u8, params: ServoParams) {
        let now = self.handle.now();
        if let Some(slot) = self.state.borrow_mut().slot(id) {
            slot.servo.set_params(params, now);
        }
    }

    async fn serve(&self, mut rx: UartRx) {
        let mut parser = Parser::new();
        let mut buf = [0u8; 64];
        let idle = self.state.borrow().config.idle_give_up;
        loop {
            let got = if parser.in_frame() && idle > 0 {
                let deadline = self.handle.now().saturating_add(idle);
                let mut read = pin!(rx.read(&mut buf));
                let mut sleep = pin!(self.handle.sleep_until(deadline));
                poll_fn(|cx| {
                    if let Poll::Ready(r) = read.as_mut().poll(cx) {
                        return Poll::Ready(Some(r));
                    }
                    sleep.as_mut().poll(cx).map(|()| None)
                })
                .await
            } else {
                Some(rx.read(&mut buf).await)
            };
            match got {
                None => parser.give_up(),
                // A line break: the frame in progress is lost.
                Some(Err(_)) => parser.reset(),
                Some(Ok(n)) => buf[..n].iter().for_each(|&b| parser.push(b)),
            }
            while let Some(event) = parser.next_event() {
                match event {
                    ParseEvent::Packet(p) => self.on_packet(&p),
                    ParseEvent::BadChecksum { id } => self.on_bad_checksum(id),
                }
            }
            let ps = parser.stats();
            let mut s = self.state.borrow_mut();
            s.stats.skipped_bytes = ps.skipped_bytes;
            s.stats.truncated = ps.truncated;
        }
    }

    fn on_bad_checksum(&self, id: u8) {
        {
            let mut s = self.state.borrow_mut();
            s.stats.bad_checksums += 1;
            if let Some(slot) = s.slot(id) {
                slot.counters.bad_checksum += 1;
            }
        }
        self.handle
            .trace(SERVOS_CHANNEL, json!({"event": "bad_checksum", "id": id}));
    }

    fn on_packet(&self, p: &Packet) {
        let now = self.handle.now();
        let mut missed = Vec::new();
        {
            let mut st = self.state.borrow_mut();
            let s = &mut *st;
            s.stats.packets += 1;
            let instruction = match Instruction::parse(p) {
                Ok(i) => i,
                Err(_) => {
                    s.stats.malformed += 1;
                    return;
                }
            };
            if matches!(
                instruction,
                Instruction::Write { .. } | Instruction::SyncWrite { .. }
            ) {
                s.write_times.push(now);
            }
            let window = s.config.processing_window;
            // Counts the packet for the servo; false if the servo misses it.
            let accept = |slot: &mut Slot, missed: &mut Vec<u8>| {
                slot.counters.packets += 1;
                if applies_write(&instruction, &slot.servo) && !slot.take_write(now, window) {
                    missed.push(slot.servo.id());
                    false
                } else {
                    true
                }
            };
            match &instruction {
                Instruction::SyncWrite { addr, entries } => {
                    let mut log = Vec::new();
                    for (id, data) in entries {
                        if let Some(slot) = s.slot(*id) {
                            let accepted = accept(slot, &mut missed);
                            if accepted {
                                let out = slot.servo.write(*addr, data, now);
                                if out.error & crate::protocol::err::ANGLE != 0 {
                                    slot.counters.clamped += 1;
                                }
                            }
                            log.extend(goal_event(slot, *addr, data, accepted, now));
                        }
                    }
                    s.goal_log.extend(log);
                }
                Instruction::Other { .. } => s.stats.unsupported += 1,
                _ => {
                    let broadcast = p.id == BROADCAST_ID;
                    if !broadcast && s.slot(p.id).is_none() {
                        s.stats.unaddressed += 1;
                    }
                    let (latency, unit) = (s.config.reply_latency, s.config.return_delay_unit);
                    let written = match &instruction {
                        Instruction::Write { addr, data } => Some((*addr, data.as_slice())),
                        _ => None,
                    };
                    for slot in s
                        .slots
                        .iter_mut()
                        .filter(|sl| broadcast || sl.servo.id() == p.id)
                    {
                        let accepted = accept(slot, &mut missed);
                        if !accepted {
                            if let Some((addr, data)) = written {
                                s.goal_log.extend(goal_event(slot, addr, data, false, now));
                            }
                            continue;
                        }
                        // The level in force when the packet arrived decides.
                        let level = slot.servo.status_level();
                        let (error, data, always) = execute(&mut slot.servo, &instruction, now);
                        if matches!(instruction, Instruction::Write { .. } | Instruction::Action)
                            && error & crate::protocol::err::ANGLE != 0
                        {
                            slot.counters.clamped += 1;
                        }
                        if let Some((addr, written)) = written {
                            s.goal_log
                                .extend(goal_event(slot, addr, written, true, now));
                        }
                        if broadcast || !(always || level >= 1) {
                            continue;
                        }
                        let delay = latency + unit * Nanos::from(slot.servo.return_delay());
                        if let Ok(bytes) = Packet::status(p.id, error, data).encode() {
                            slot.counters.replies += 1;
                            s.stats.replies += 1;
                            if let Some(tx) = &s.tx {
                                tx.send_at(now.saturating_add(delay), bytes);
                            }
                        }
                    }
                }
            }
            s.stats.missed += missed.len() as u64;
            if s.first_motion.is_none() && s.slots.iter().any(|sl| sl.servo.moving()) {
                s.first_motion = Some(now);
            }
            if let Some(w) = s.motion_waker.take() {
                w.wake();
            }
        }
        for id in missed {
            self.handle.trace(
                SERVOS_CHANNEL,
                json!({"event": "missed", "id": id, "instruction": p.code}),
            );
        }
    }

    /// Samples and traces the angles; returns whether anything still moves.
    fn sample(&self) -> bool {
        let snap = self.snapshot();
        let moving = snap.iter().any(|s| s.moving);
        self.handle.trace(
            SERVOS_CHANNEL,
            json!({
                "ids": snap.iter().map(|s| s.id).collect::<Vec<_>>(),
                "deg": snap.iter().map(|s| s.position_deg).collect::<Vec<_>>(),
                "moving": snap.iter().map(|s| s.moving).collect::<Vec<_>>(),
            }),
        );
        moving
    }

    async fn trace_motion(&self) {
        let period = self.state.borrow().config.trace_period;
        if period == 0 {
            return;
        }
        loop {
            poll_fn(|cx| {
                let now = self.handle.now();
                let mut s = self.state.borrow_mut();
                s.advance(now);
                if s.slots.iter().any(|sl| sl.servo.moving()) {
                    Poll::Ready(())
                } else {
                    s.motion_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            while self.sample() {
                self.handle.sleep(period).await;
            }
        }
    }
}

/// Runs a unicast/broadcast instruction on one servo: (error byte, data,
/// answered even at status level 0).
fn execute(servo: &mut Servo, i: &Instruction, now: Nanos) -> (u8, Vec<u8>, bool) {
    match i {
        Instruction::Ping => (servo.condition_error(), vec![], true),
        Instruction::Read { addr, len } => {
            let data = servo.read(*addr, *len, now);
            (servo.condition_error(), data, true)
        }
        Instruction::Write { addr, data } => (servo.write(*addr, data, now).error, vec![], false),
        Instruction::RegWrite { addr, data } => {
            servo.reg_write(*addr, data);
            (servo.condition_error(), vec![], false)
        }
        Instruction::Action => (servo.action(now).error, vec![], false),
        // Handled by the caller.
        Instruction::SyncWrite { .. } | Instruction::Other { .. } => (0, vec![], false),
    }
}

/// The goal event for a write of `data` at `addr`, if it covers the goal
/// position register. Call after an accepted write has been applied.
fn goal_event(slot: &Slot, addr: u8, data: &[u8], accepted: bool, now: Nanos) -> Option<GoalEvent> {
    use super::servo::addr::GOAL_POSITION;
    let offset = usize::from(GOAL_POSITION.checked_sub(addr)?);
    let word = data.get(offset..offset + 2)?;
    let goal_deg = if accepted {
        steps_to_deg(f64::from(slot.servo.goal_raw()))
    } else {
        // As the servo would read it: a signed big-endian word.
        steps_to_deg(f64::from(i16::from_be_bytes([word[0], word[1]])))
    };
    let arrival =
        (accepted && slot.servo.torque_on()).then(|| slot.servo.arrival_time().unwrap_or(now));
    Some(GoalEvent {
        t: now,
        id: slot.servo.id(),
        goal_deg,
        accepted,
        arrival,
    })
}

fn snapshot_of(slot: &Slot) -> ServoSnapshot {
    let s = &slot.servo;
    ServoSnapshot {
        id: s.id(),
        position_deg: s.position_deg(),
        goal_deg: steps_to_deg(f64::from(s.goal_raw())),
        present_raw: s.position_steps().round() as u16,
        goal_raw: s.goal_raw(),
        torque: s.torque_on(),
        moving: s.moving(),
        counters: slot.counters,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{word_from_bytes, word_to_bytes};
    use crate::servo::addr;
    use embassy_futures::select::{Either, select};
    use embedded_io_async::Write;
    use twinrig_sim::{SECONDS, Sim};

    /// 10 us per byte at 1 Mbaud 8N1.
    const BYTE: Nanos = 10 * MICROS;

    struct Host {
        h: SimHandle,
        rx: UartRx,
        tx: UartTx,
        parser: Parser,
        /// Replies with the time their last byte arrived.
        got: Vec<(Nanos, Packet)>,
    }

    impl Host {
        /// Sends raw bytes; returns when their last byte has arrived at the bus.
        async fn send_raw(&mut self, bytes: &[u8]) -> Nanos {
            self.tx.write_all(bytes).await.unwrap();
            self.tx.flush().await.unwrap();
            self.h.now()
        }

        async fn send(&mut self, id: u8, i: Instruction) -> Nanos {
            let bytes = i.to_packet(id).encode().unwrap();
            self.send_raw(&bytes).await
        }

        /// Collects replies for `d` of virtual time.
        async fn listen(&mut self, d: Nanos) {
            self.collect(usize::MAX, d).await;
        }

        /// Collects replies until `count` more have arrived or `d` has passed.
        async fn collect(&mut self, count: usize, d: Nanos) {
            let deadline = self.h.now() + d;
            let target = self.got.len().saturating_add(count);
            let mut buf = [0u8; 64];
            while self.got.len() < target {
                match select(self.rx.read(&mut buf), self.h.sleep_until(deadline)).await {
                    Either::First(Ok(n)) => {
                        for &b in &buf[..n] {
                            self.parser.push(b);
                            while let Some(e) = self.parser.next_event() {
                                if let ParseEvent::Packet(p) = e {
                                    self.got.push((self.h.now(), p));
                                }
                            }
                        }
                    }
                    Either::First(Err(_)) => {}
                    Either::Second(()) => return,
                }
            }
        }

        /// A request and its reply window, spaced well past the processing window.
        async fn transact(&mut self, id: u8, i: Instruction) -> Option<Packet> {
            let before = self.got.len();
            self.send(id, i).await;
            self.listen(2 * MILLIS).await;
            self.got.get(before).map(|(_, p)| p.clone())
        }

        /// A request as a driver makes it (rustypot): send, then wait for the
        /// reply and return the moment its last byte arrives, or `None` after
        /// `timeout`.
        async fn request(&mut self, id: u8, i: Instruction, timeout: Nanos) -> Option<Packet> {
            let before = self.got.len();
            self.send(id, i).await;
            self.collect(1, timeout).await;
            self.got.get(before).map(|(_, p)| p.clone())
        }

        async fn write(&mut self, id: u8, addr: u8, data: &[u8]) -> Option<Packet> {
            let data = data.to_vec();
            self.transact(id, Instruction::Write { addr, data }).await
        }
    }

    fn rig(config: BusConfig) -> (Sim, ServoBus, Host) {
        let sim = Sim::new(9);
        let h = sim.handle();
        let (bus, host_end, _control) = ServoBus::hand(&h, "hand-bus", config);
        let (rx, tx) = host_end.split();
        let host = Host {
            h,
            rx,
            tx,
            parser: Parser::new(),
            got: Vec::new(),
        };
        (sim, bus, host)
    }

    fn run_host(sim: &mut Sim, host: Host, f: impl AsyncFnOnce(&mut Host) + 'static) -> Host {
        let host = sim.run_with("host", 60 * SECONDS, host, f).unwrap();
        assert!(sim.failures().is_empty(), "{:?}", sim.failures());
        host.expect("host finished")
    }

    #[test]
    fn ping_is_answered_after_the_return_delay_with_the_right_id() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let host = run_host(&mut sim, host, async |host| {
            let end = host.send(3, Instruction::Ping).await;
            assert_eq!(end, 6 * BYTE);
            host.listen(2 * MILLIS).await;
            // Return delay register 7 = 25 -> 50 us more.
            host.write(5, addr::RETURN_DELAY, &[25]).await.unwrap();
            let start = host.h.now();
            host.send(5, Instruction::Ping).await;
            host.listen(2 * MILLIS).await;
            let (t, p) = host.got.last().unwrap().clone();
            assert_eq!(p, Packet::status(5, 0, vec![]));
            // 60 us request + 50 us latency + 50 us delay + 60 us reply.
            assert_eq!(t - start, 6 * BYTE + 50 * MICROS + 50 * MICROS + 6 * BYTE);
        });
        let (t, p) = &host.got[0];
        assert_eq!(*p, Packet::status(3, 0, vec![]));
        // Last request byte at 60 us, reply starts 50 us later, 6 bytes.
        assert_eq!(*t, 6 * BYTE + 50 * MICROS + 6 * BYTE);
        assert_eq!(host.got.len(), 3, "ping, write ack, ping; nothing else");
        let c = bus.servo(3).unwrap().counters;
        assert_eq!((c.packets, c.replies, c.missed), (1, 1, 0));
    }

    #[test]
    fn read_returns_the_register_bytes() {
        let (mut sim, _bus, host) = rig(BusConfig::default());
        let host = run_host(&mut sim, host, async |host| {
            let r = host
                .transact(
                    2,
                    Instruction::Read {
                        addr: addr::PRESENT_POSITION,
                        len: 2,
                    },
                )
                .await;
            assert_eq!(r, Some(Packet::status(2, 0, vec![0x01, 0xFF])));
            let r = host
                .transact(2, Instruction::Read { addr: 9, len: 4 })
                .await;
            // Angle limits 20 and 1003, big-endian.
            assert_eq!(r, Some(Packet::status(2, 0, vec![0, 20, 0x03, 0xEB])));
        });
        // Byte vector of the reply with 511 = 0x01FF: sum 02+04+00+01+FF = 0x106 -> 0x06, !0x06 = F9.
        assert_eq!(
            Packet::status(2, 0, vec![0x01, 0xFF]).encode().unwrap(),
            [0xFF, 0xFF, 0x02, 0x04, 0x00, 0x01, 0xFF, 0xF9]
        );
        assert_eq!(host.got.len(), 2);
    }

    #[test]
    fn write_goal_moves_at_the_commanded_speed() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let b = bus.clone();
        run_host(&mut sim, host, async move |host| {
            assert_eq!(
                host.write(1, addr::TORQUE_ENABLE, &[1]).await,
                Some(Packet::status(1, 0, vec![]))
            );
            host.write(1, addr::GOAL_SPEED, &word_to_bytes(500)).await;
            let goal = Instruction::Write {
                addr: addr::GOAL_POSITION,
                data: word_to_bytes(711).to_vec(),
            };
            let t0 = host.send(1, goal).await;
            host.listen(100 * MILLIS).await;
            assert_eq!(host.h.now(), t0 + 100 * MILLIS);
            // 500 steps/s for 100 ms = 50 steps.
            let s = b.servo(1).unwrap();
            assert_eq!(s.present_raw, 561);
            assert!(s.moving);
            let r = host
                .transact(
                    1,
                    Instruction::Read {
                        addr: addr::PRESENT_POSITION,
                        len: 2,
                    },
                )
                .await
                .unwrap();
            assert_eq!(r.params, word_to_bytes(561).to_vec());
            // Present speed 500 (positive), moving 1.
            let r = host
                .transact(1, Instruction::Read { addr: 58, len: 2 })
                .await
                .unwrap();
            assert_eq!(r.params, word_to_bytes(500).to_vec());
            // 200 steps take 400 ms.
            host.h.sleep_until(t0 + 399 * MILLIS).await;
            assert!(b.servo(1).unwrap().moving);
            host.h.sleep_until(t0 + 400 * MILLIS).await;
            let s = b.servo(1).unwrap();
            assert!(!s.moving);
            assert_eq!(s.present_raw, 711);
            assert!((s.position_deg - 200.0 * 300.0 / 1024.0).abs() < 1e-9);
        });
        let trace = sim.take_trace();
        let samples: Vec<_> = trace
            .on_channel(SERVOS_CHANNEL)
            .map(|r| r.json())
            .filter(|j| j.get("deg").is_some())
            .collect();
        // Sampled every 20 ms while moving (400 ms), then once at rest.
        assert!(
            samples.len() >= 20 && samples.len() <= 22,
            "{}",
            samples.len()
        );
        assert_eq!(samples[0]["deg"].as_array().unwrap().len(), 8);
        assert_eq!(samples.last().unwrap()["moving"][0], false);
    }

    #[test]
    fn sync_write_moves_several_servos_and_nobody_replies() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let host = run_host(&mut sim, host, async |host| {
            let on = Instruction::SyncWrite {
                addr: addr::TORQUE_ENABLE,
                entries: HAND_IDS.iter().map(|&id| (id, vec![1])).collect(),
            };
            host.send(BROADCAST_ID, on).await;
            host.listen(2 * MILLIS).await;
            let goals = Instruction::SyncWrite {
                addr: addr::GOAL_POSITION,
                entries: HAND_IDS
                    .iter()
                    .map(|&id| (id, word_to_bytes(511 + 20 * u16::from(id)).to_vec()))
                    .collect(),
            };
            host.send(BROADCAST_ID, goals).await;
            host.listen(SECONDS).await;
        });
        assert!(host.got.is_empty(), "nobody replies: {:?}", host.got);
        for s in bus.snapshot() {
            assert!(s.torque);
            assert_eq!(s.present_raw, 511 + 20 * u16::from(s.id));
            assert_eq!(s.counters.packets, 2);
            assert_eq!(s.counters.replies, 0);
        }
    }

    #[test]
    fn broadcast_ping_gets_no_reply() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let host = run_host(&mut sim, host, async |host| {
            host.send(BROADCAST_ID, Instruction::Ping).await;
            host.listen(10 * MILLIS).await;
        });
        assert!(host.got.is_empty());
        assert!(bus.snapshot().iter().all(|s| s.counters.packets == 1));
        assert_eq!(bus.stats().replies, 0);
    }

    #[test]
    fn bad_checksum_gets_no_reply_and_is_counted() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let host = run_host(&mut sim, host, async |host| {
            let mut bytes = Instruction::Ping.to_packet(4).encode().unwrap();
            *bytes.last_mut().unwrap() ^= 0x01;
            host.send_raw(&bytes).await;
            host.listen(10 * MILLIS).await;
            // The bus recovers for the next good packet.
            assert!(host.transact(4, Instruction::Ping).await.is_some());
        });
        assert_eq!(host.got.len(), 1);
        assert_eq!(bus.stats().bad_checksums, 1);
        let c = bus.servo(4).unwrap().counters;
        assert_eq!((c.bad_checksum, c.packets, c.replies), (1, 1, 1));
    }

    #[test]
    fn a_write_inside_the_processing_window_is_missed_but_spaced_ones_both_apply() {
        let speed = Instruction::Write {
            addr: addr::GOAL_SPEED,
            data: word_to_bytes(300).to_vec(),
        };
        let goal = Instruction::Write {
            addr: addr::GOAL_POSITION,
            data: word_to_bytes(611).to_vec(),
        };
        // Back to back: the goal write lands 90 us after the speed write.
        let (mut sim, bus, host) = rig(BusConfig::default());
        let (s2, g2) = (speed.clone(), goal.clone());
        let host = run_host(&mut sim, host, async move |host| {
            host.write(2, addr::TORQUE_ENABLE, &[1]).await;
            host.send(2, s2).await;
            host.send(2, g2).await;
            host.listen(SECONDS).await;
        });
        let s = bus.servo(2).unwrap();
        assert_eq!(s.counters.missed, 1);
        assert_eq!(bus.stats().missed, 1);
        assert_eq!(s.goal_raw, 511, "the goal write was missed");
        assert_eq!(s.present_raw, 511);
        assert_eq!(host.got.len(), 2, "torque ack and speed ack only");
        assert!(
            sim.take_trace()
                .on_channel(SERVOS_CHANNEL)
                .any(|r| r.json()["event"] == "missed")
        );

        // Spaced by more than the window (measured last byte to last byte).
        let (mut sim, bus, host) = rig(BusConfig::default());
        let host = run_host(&mut sim, host, async move |host| {
            host.write(2, addr::TORQUE_ENABLE, &[1]).await;
            let t = host.send(2, speed).await;
            host.h.sleep_until(t + 500 * MICROS - 9 * BYTE).await;
            let t2 = host.send(2, goal).await;
            assert_eq!(t2 - t, 500 * MICROS);
            host.listen(200 * MILLIS).await;
        });
        let s = bus.servo(2).unwrap();
        assert_eq!(s.counters.missed, 0);
        assert_eq!(s.goal_raw, 611);
        // 300 steps/s: 100 steps take 333.3 ms, so not there yet after ~200 ms.
        assert!(s.moving && s.present_raw > 560 && s.present_raw < 580);
        assert_eq!(host.got.len(), 3);
    }

    #[test]
    fn torque_off_goes_limp_and_torque_on_holds_where_it_was_left() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let b = bus.clone();
        run_host(&mut sim, host, async move |host| {
            host.write(6, addr::TORQUE_ENABLE, &[1]).await;
            host.write(6, addr::GOAL_SPEED, &word_to_bytes(100)).await;
            host.write(6, addr::GOAL_POSITION, &word_to_bytes(811))
                .await;
            host.h.sleep(100 * MILLIS).await;
            host.write(6, addr::TORQUE_ENABLE, &[0]).await;
            let limp = b.servo(6).unwrap();
            assert!(!limp.torque && !limp.moving);
            let r = host
                .transact(6, Instruction::Read { addr: 58, len: 9 })
                .await
                .unwrap();
            // Speed 0, load 0, voltage 50, temperature 25, (64), status 0, moving 0.
            assert_eq!(r.params, [0, 0, 0, 0, 50, 25, 0, 0, 0]);
            host.h.sleep(SECONDS).await;
            let later = b.servo(6).unwrap();
            assert_eq!(
                later.position_deg, limp.position_deg,
                "no motion while limp"
            );
            assert_eq!(later.goal_raw, 811, "goal kept, not pursued");
            host.write(6, addr::TORQUE_ENABLE, &[1]).await;
            let held = b.servo(6).unwrap();
            assert_eq!(
                held.goal_raw, held.present_raw,
                "holds the present position"
            );
            host.h.sleep(SECONDS).await;
            assert_eq!(b.servo(6).unwrap().present_raw, held.present_raw);
            assert!(held.present_raw > 511 && held.present_raw < 811);
        });
    }

    #[test]
    fn goals_are_clamped_to_the_angle_limits() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let b = bus.clone();
        run_host(&mut sim, host, async move |host| {
            host.write(7, addr::TORQUE_ENABLE, &[1]).await;
            let ack = host
                .write(7, addr::GOAL_POSITION, &word_to_bytes(1023))
                .await
                .unwrap();
            assert_eq!(ack.code, crate::protocol::err::ANGLE);
            host.h.sleep(SECONDS).await;
            let s = b.servo(7).unwrap();
            assert_eq!((s.goal_raw, s.present_raw), (1003, 1003));
            // Narrow the limits, then ask below the minimum (rustypot's negative raw).
            host.write(7, addr::MIN_ANGLE, &word_to_bytes(400)).await;
            host.write(7, addr::GOAL_POSITION, &(-5i16).to_be_bytes())
                .await;
            host.h.sleep(SECONDS).await;
            let s = b.servo(7).unwrap();
            assert_eq!((s.goal_raw, s.present_raw), (400, 400));
        });
    }

    #[test]
    fn level_zero_answers_only_ping_and_read() {
        let (mut sim, _bus, host) = rig(BusConfig::default());
        let host = run_host(&mut sim, host, async |host| {
            // Answered: the level was still 1 when it arrived.
            host.write(8, addr::STATUS_LEVEL, &[0]).await.unwrap();
            assert!(host.write(8, addr::GOAL_SPEED, &[0, 9]).await.is_none());
            assert!(host.transact(8, Instruction::Ping).await.is_some());
            let r = host
                .transact(8, Instruction::Read { addr: 46, len: 2 })
                .await;
            assert_eq!(r.unwrap().params, [0, 9]);
        });
        assert_eq!(host.got.len(), 3);
    }

    #[test]
    fn reg_write_waits_for_action() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let b = bus.clone();
        run_host(&mut sim, host, async move |host| {
            for id in [1, 2] {
                host.write(id, addr::TORQUE_ENABLE, &[1]).await;
                let rw = Instruction::RegWrite {
                    addr: addr::GOAL_POSITION,
                    data: word_to_bytes(600).to_vec(),
                };
                assert!(host.transact(id, rw).await.is_some());
            }
            host.h.sleep(100 * MILLIS).await;
            assert_eq!(b.servo(1).unwrap().goal_raw, 511);
            host.send(BROADCAST_ID, Instruction::Action).await;
            host.listen(SECONDS).await;
            assert_eq!(b.servo(1).unwrap().present_raw, 600);
            assert_eq!(b.servo(2).unwrap().present_raw, 600);
            assert_eq!(b.servo(3).unwrap().present_raw, 511);
        });
    }

    /// A WRITE of one register word.
    fn write_word(addr: u8, v: u16) -> Instruction {
        Instruction::Write {
            addr,
            data: word_to_bytes(v).to_vec(),
        }
    }

    fn read_word(addr: u8) -> Instruction {
        Instruction::Read { addr, len: 2 }
    }

    /// The agent's serial timeout (10 ms): how long a driver waits for a reply.
    const DRIVER_TIMEOUT: Nanos = 10 * MILLIS;

    #[test]
    fn a_thousand_back_to_back_reads_of_one_servo_are_all_answered() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let b = bus.clone();
        run_host(&mut sim, host, async move |host| {
            host.write(1, addr::TORQUE_ENABLE, &[1]).await;
            host.write(1, addr::GOAL_SPEED, &word_to_bytes(100)).await;
            // Read straight after the goal write's acknowledgement, then
            // each read straight after the previous reply, while it moves.
            let ack = host
                .request(1, write_word(addr::GOAL_POSITION, 811), DRIVER_TIMEOUT)
                .await;
            assert_eq!(ack, Some(Packet::status(1, 0, vec![])));
            let start = host.h.now();
            let mut last = 0;
            for n in 0..1000 {
                let before = host.h.now();
                let r = host
                    .request(1, read_word(addr::PRESENT_POSITION), DRIVER_TIMEOUT)
                    .await
                    .unwrap_or_else(|| panic!("read {n} not answered"));
                // 8-byte request, 50 us latency, 8-byte reply.
                assert_eq!(host.h.now() - before, 8 * BYTE + 50 * MICROS + 8 * BYTE);
                let present = word_from_bytes(r.params[0], r.params[1]);
                assert!(present >= last, "read {n}: {present} < {last}");
                last = present;
            }
            assert_eq!(host.h.now() - start, 1000 * 210 * MICROS);
            // 100 steps/s for 210 ms (+ the 110 us after the goal write).
            assert_eq!(last, 511 + 21);
            assert!(b.servo(1).unwrap().moving);
        });
        let c = bus.servo(1).unwrap().counters;
        assert_eq!((c.packets, c.replies, c.missed), (1003, 1003, 0));
        assert_eq!(bus.stats().missed, 0);
    }

    #[test]
    fn a_read_straight_after_a_write_is_answered_and_does_not_make_the_servo_busy() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let host = run_host(&mut sim, host, async move |host| {
            // A ping, then a write straight after: reads start no window.
            assert!(
                host.request(4, Instruction::Ping, DRIVER_TIMEOUT)
                    .await
                    .is_some()
            );
            let ack = host
                .request(4, write_word(addr::GOAL_SPEED, 300), DRIVER_TIMEOUT)
                .await;
            assert_eq!(ack, Some(Packet::status(4, 0, vec![])));
            // A read straight after the write is answered...
            let r = host
                .request(4, read_word(addr::GOAL_SPEED), DRIVER_TIMEOUT)
                .await;
            assert_eq!(r, Some(Packet::status(4, 0, word_to_bytes(300).to_vec())));
            // ...while the servo still applies the write: a write straight
            // after the read is missed.
            assert!(
                host.request(4, write_word(addr::GOAL_SPEED, 400), DRIVER_TIMEOUT)
                    .await
                    .is_none()
            );
            let r = host
                .request(4, read_word(addr::GOAL_SPEED), DRIVER_TIMEOUT)
                .await;
            assert_eq!(
                r.unwrap().params,
                word_to_bytes(300),
                "the missed write has no effect"
            );
            // After the driver's timeout the window is over: the write applies,
            // and a ping straight after it is answered.
            let ack = host
                .request(4, write_word(addr::GOAL_SPEED, 400), DRIVER_TIMEOUT)
                .await;
            assert!(ack.is_some());
            assert!(
                host.request(4, Instruction::Ping, DRIVER_TIMEOUT)
                    .await
                    .is_some()
            );
        });
        let c = bus.servo(4).unwrap().counters;
        assert_eq!((c.packets, c.replies, c.missed), (7, 6, 1));
        assert_eq!(host.got.len(), 6);
        // The missed write: 110 us ack, 80 us read, 130 us reply, 90 us write.
        let times = bus.write_times();
        assert_eq!(times[1] - times[0], 410 * MICROS);
    }

    /// Pollen's per-finger sequence for one pose (amazing-hand.md section 4):
    /// for each finger (ids 1-2, 3-4, 5-6, 7-8) write_goal_speed(m1), 0.2 ms,
    /// write_goal_speed(m2), 0.2 ms, write_goal_position(m1),
    /// write_goal_position(m2), 5 ms; each write waits for its
    /// acknowledgement, as rustypot does. Without `pauses` the same writes go
    /// back to back. Returns the writes that got no reply, as (id, address).
    async fn demo_pose(host: &mut Host, pose: [u16; 8], speed: u16, pauses: bool) -> Vec<(u8, u8)> {
        let mut unanswered = Vec::new();
        for finger in HAND_IDS.chunks(2) {
            for &id in finger {
                let i = write_word(addr::GOAL_SPEED, speed);
                if host.request(id, i, DRIVER_TIMEOUT).await.is_none() {
                    unanswered.push((id, addr::GOAL_SPEED));
                }
                if pauses {
                    host.h.sleep(200 * MICROS).await;
                }
            }
            for &id in finger {
                let i = write_word(addr::GOAL_POSITION, pose[usize::from(id) - 1]);
                if host.request(id, i, DRIVER_TIMEOUT).await.is_none() {
                    unanswered.push((id, addr::GOAL_POSITION));
                }
            }
            if pauses {
                host.h.sleep(5 * MILLIS).await;
            }
        }
        unanswered
    }

    /// Named poses of amazing-hand.md section 4 in raw steps: closed
    /// (90/-90), open straight (-35/35) and victory.
    const POSES: [[u16; 8]; 3] = [
        [818, 204, 818, 204, 818, 204, 818, 204],
        [391, 630, 391, 630, 391, 630, 391, 630],
        [460, 733, 289, 562, 818, 204, 818, 204],
    ];

    /// Gaps between one servo's consecutive writes, per servo, from the bus's log.
    fn write_gaps(times: &[Nanos]) -> Vec<Nanos> {
        // Per finger: speed m1, speed m2, position m1, position m2.
        times
            .chunks(4)
            .flat_map(|w| [w[2] - w[0], w[3] - w[1]])
            .collect()
    }

    #[test]
    fn the_demo_sequence_with_its_pauses_never_misses() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let b = bus.clone();
        run_host(&mut sim, host, async move |host| {
            let on = Instruction::SyncWrite {
                addr: addr::TORQUE_ENABLE,
                entries: HAND_IDS.iter().map(|&id| (id, vec![1])).collect(),
            };
            host.send(BROADCAST_ID, on).await;
            host.h.sleep(MILLIS).await;
            for pose in POSES {
                // 7 rad/s in rustypot's unit, the demo's MaxSpeed.
                assert_eq!(demo_pose(host, pose, 1368, true).await, []);
                host.h.sleep(800 * MILLIS).await;
                let at: Vec<u16> = b.snapshot().iter().map(|s| s.present_raw).collect();
                assert_eq!(at, pose);
            }
        });
        assert_eq!(bus.stats().missed, 0);
        assert!(bus.goal_log().iter().all(|e| e.accepted));
        // 3 poses x 16 acknowledged writes (the SYNC_WRITE is the first write time).
        assert_eq!(bus.stats().replies, 48);
        let times = bus.write_times();
        let gaps = write_gaps(&times[1..]);
        // m1: its speed, m2's speed, its position; m2: its speed, m1's position, its
        // position; 200 us per acknowledged write plus the 0.2 ms pauses.
        assert!(gaps.iter().all(|&g| g == 800 * MICROS || g == 600 * MICROS));
        assert!(
            gaps.iter()
                .all(|&g| g > BusConfig::default().processing_window)
        );
    }

    #[test]
    fn the_same_writes_without_the_pauses_miss() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        run_host(&mut sim, host, async move |host| {
            let on = Instruction::SyncWrite {
                addr: addr::TORQUE_ENABLE,
                entries: HAND_IDS.iter().map(|&id| (id, vec![1])).collect(),
            };
            host.send(BROADCAST_ID, on).await;
            host.h.sleep(MILLIS).await;
            // Each finger's m1 position write comes 400 us after its speed
            // write and is missed; m2's comes after the driver's 10 ms
            // timeout and is taken.
            let unanswered = demo_pose(host, POSES[0], 1368, false).await;
            let m1 = [1, 3, 5, 7].map(|id| (id, addr::GOAL_POSITION));
            assert_eq!(unanswered, m1);
        });
        assert_eq!(bus.stats().missed, 4);
        let missed: Vec<u8> = bus
            .goal_log()
            .iter()
            .filter(|e| !e.accepted)
            .map(|e| e.id)
            .collect();
        assert_eq!(missed, [1, 3, 5, 7]);
        let times = bus.write_times();
        let gaps = write_gaps(&times[1..]);
        // m1's position write follows its speed write by 400 us.
        assert!(gaps.iter().step_by(2).all(|&g| g == 400 * MICROS));
    }

    #[test]
    fn sync_read_gets_no_reply_and_one_read_per_id_does() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let host = run_host(&mut sim, host, async move |host| {
            // rustypot's generated sync_read_present_position([1, 2, 3]).
            let sync_read = Instruction::Other {
                code: crate::protocol::instr::SYNC_READ,
                params: vec![addr::PRESENT_POSITION, 2, 1, 2, 3],
            };
            host.send(BROADCAST_ID, sync_read).await;
            host.listen(100 * MILLIS).await;
            assert!(host.got.is_empty(), "SYNC_READ is not answered");
            // rustypot's sync_read_register fallback: one READ per id, back to back.
            for id in [1, 2, 3] {
                let r = host
                    .request(id, read_word(addr::PRESENT_POSITION), DRIVER_TIMEOUT)
                    .await;
                assert_eq!(r, Some(Packet::status(id, 0, word_to_bytes(511).to_vec())));
            }
        });
        assert_eq!(host.got.len(), 3);
        assert_eq!(bus.stats().unsupported, 1);
        assert_eq!(bus.stats().missed, 0);
    }

    #[test]
    fn reg_write_is_never_missed_but_an_action_applying_it_can_be() {
        let (mut sim, bus, host) = rig(BusConfig::default());
        let b = bus.clone();
        run_host(&mut sim, host, async move |host| {
            host.write(2, addr::TORQUE_ENABLE, &[1]).await;
            // A goal speed write, then straight away a REG_WRITE (acknowledged,
            // stored) and an ACTION, inside the speed write's window: missed.
            host.request(2, write_word(addr::GOAL_SPEED, 200), DRIVER_TIMEOUT)
                .await
                .unwrap();
            let rw = Instruction::RegWrite {
                addr: addr::GOAL_POSITION,
                data: word_to_bytes(611).to_vec(),
            };
            assert!(host.request(2, rw, DRIVER_TIMEOUT).await.is_some());
            assert!(
                host.request(2, Instruction::Action, DRIVER_TIMEOUT)
                    .await
                    .is_none()
            );
            let flag = host
                .request(
                    2,
                    Instruction::Read {
                        addr: addr::REGISTERED_WRITE,
                        len: 1,
                    },
                    DRIVER_TIMEOUT,
                )
                .await;
            assert_eq!(flag.unwrap().params, [1], "still registered");
            assert_eq!(b.servo(2).unwrap().goal_raw, 511);
            // Later, the ACTION applies it.
            host.h.sleep(MILLIS).await;
            assert!(
                host.request(2, Instruction::Action, DRIVER_TIMEOUT)
                    .await
                    .is_some()
            );
            assert_eq!(b.servo(2).unwrap().goal_raw, 611);
            // An ACTION with nothing registered straight after does nothing and misses nothing.
            assert!(
                host.request(2, Instruction::Action, DRIVER_TIMEOUT)
                    .await
                    .is_some()
            );
        });
        assert_eq!(bus.servo(2).unwrap().counters.missed, 1);
    }
}
