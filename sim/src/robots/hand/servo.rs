//! One Feetech SCS0009 servo: its register table, READ/WRITE semantics and
//! motion in virtual time.
//!
//! # Register table
//! [`REGISTERS`] is the single source: addresses, sizes, access, EEPROM/RAM
//! area and power-on values from amazing-hand.md section 3.1 (rustypot
//! `scs0009.rs` cross-checked with SCServo `SCSCL.h`, the Feetech wiki memory
//! table and the FT SCServo Debug screenshot of an SCS0009). Words are
//! big-endian. Addresses not in the table read 0 and ignore writes.
//!
//! # Semantics (assumed where the sheet is silent; each is documented here)
//! - Write to a read-only register: those bytes are ignored, the other bytes
//!   of the same WRITE take effect, and the status error byte stays 0 (the
//!   SCS error bits describe hardware conditions only; none fits). Assumed.
//! - EEPROM writes take effect at once whatever `lock` says; power cycles are
//!   not modelled, so `lock` (48, assumed power-on 0) is stored only.
//! - Writing `id` (5) re-addresses the servo at once. `baudrate` (6) is stored
//!   only: the twin keeps talking at the line's baud.
//! - `torque_enable` (40): 1 = torque on; 0 (off) and 2/3 (Pollen's
//!   "off"/"free", servo-side meaning UNVERIFIED) = limp. Limp model: the
//!   joint stays where it is (no gravity or external load is modelled) but it
//!   does not move toward its goal; present speed, load and moving read 0.
//!   Going from limp to on sets the goal to the present position, so the
//!   servo holds where it was left (a goal written while limp is overwritten).
//! - Goal position is read as a signed 16-bit word (rustypot sends negative
//!   values below -149.7 degrees) and clamped into the angle limits
//!   [`min_angle_limit`, `max_angle_limit`]; the clamped value is stored in
//!   the goal register, and the WRITE's status reply carries the ANGLE error
//!   bit. Clamping is UNVERIFIED for the SCS0009 (assumed). If the limits are
//!   both 0 or min >= max (wheel/PWM mode, not modelled) goals clamp to 0..=1023.
//! - Goal speed is in steps per second (rustypot's unit, assumed), the sign
//!   bit 15 ignored, 0 meaning "as fast as possible" (UNVERIFIED), capped at
//!   [`ServoParams::max_speed_steps`]. Goal time (44) is stored but ignored.
//! - Present speed: signed by bit 15, steps/s. Present load: bit 10 sign,
//!   magnitude [`ServoParams::load_while_moving`] while moving, 0 otherwise.
//! - Units: one step = 300/1024 degrees; raw 511 = 0 degrees.

use crate::Nanos;
use crate::time::SECONDS;

use super::protocol::{err, word_from_bytes, word_to_bytes};

/// Who may write a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read only.
    Read,
    /// Read and write.
    ReadWrite,
}

/// Where a register lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Non-volatile (addresses below 40).
    Eeprom,
    /// Volatile (40 and up).
    Ram,
}

/// One register of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    /// Address.
    pub addr: u8,
    /// Bytes (1 or 2; 2 = big-endian word).
    pub size: u8,
    /// Name (rustypot's where it has one).
    pub name: &'static str,
    /// Access.
    pub access: Access,
    /// Area.
    pub area: Area,
    /// Power-on value (FD screenshot; "assumed" in the notes below where not given).
    pub default: u16,
}

const fn reg(addr: u8, size: u8, name: &'static str, access: Access, default: u16) -> Register {
    let area = if addr < 40 { Area::Eeprom } else { Area::Ram };
    Register {
        addr,
        size,
        name,
        access,
        area,
        default,
    }
}

use Access::{Read as R, ReadWrite as RW};

/// The SCS0009 register table (amazing-hand.md 3.1). Defaults without a
/// source are marked assumed in the comment.
pub const REGISTERS: &[Register] = &[
    reg(0, 1, "firmware_main_version", R, 0),
    reg(1, 1, "firmware_sub_version", R, 5),
    // Servo main/sub version 5/4 as two bytes (big-endian word 0x0504).
    reg(3, 2, "model", R, 0x0504),
    reg(5, 1, "id", RW, 1),
    reg(6, 1, "baudrate", RW, 0),
    // "Reserved" on the FD screenshot; rustypot calls it return_delay_time.
    reg(7, 1, "return_delay_time", RW, 0),
    reg(8, 1, "response_status_level", RW, 1),
    reg(9, 2, "min_angle_limit", RW, 20),
    reg(11, 2, "max_angle_limit", RW, 1003),
    reg(13, 1, "max_temperature_limit", RW, 70),
    reg(14, 1, "max_voltage_limit", RW, 90),
    reg(15, 1, "min_voltage_limit", RW, 45),
    reg(16, 2, "max_torque_limit", RW, 1000),
    // No default on the sheet: assumed 0.
    reg(18, 1, "phase", RW, 0),
    reg(19, 1, "unloading_condition", RW, 32),
    reg(20, 1, "led_alarm_condition", RW, 37),
    reg(21, 1, "p_coefficient", RW, 15),
    reg(22, 1, "d_coefficient", RW, 15),
    reg(23, 1, "i_coefficient", RW, 0),
    reg(24, 2, "minimum_startup_force", RW, 45),
    reg(26, 1, "cw_dead_zone", RW, 1),
    reg(27, 1, "ccw_dead_zone", RW, 1),
    reg(37, 1, "protective_torque", RW, 20),
    reg(38, 1, "protection_time", RW, 100),
    reg(39, 1, "overload_torque", RW, 80),
    reg(40, 1, "torque_enable", RW, 0),
    // Goal block: assumed power-on goal = centre (511), time 0, speed 0.
    reg(42, 2, "goal_position", RW, 511),
    reg(44, 2, "goal_time", RW, 0),
    reg(46, 2, "goal_speed", RW, 0),
    // Assumed power-on 0 (unlocked).
    reg(48, 1, "lock", RW, 0),
    // Present values are computed; defaults are what a fresh servo at the
    // centre reads (voltage/temperature come from ServoParams).
    reg(56, 2, "present_position", R, 511),
    reg(58, 2, "present_speed", R, 0),
    reg(60, 2, "present_load", R, 0),
    reg(62, 1, "present_voltage", R, 50),
    reg(63, 1, "present_temperature", R, 25),
    reg(65, 1, "status", R, 0),
    reg(66, 1, "moving", R, 0),
    reg(69, 2, "present_current", R, 0),
];

/// Register addresses used by the model.
pub mod addr {
    /// ID.
    pub const ID: u8 = 5;
    /// Return delay (2 us units, assumed).
    pub const RETURN_DELAY: u8 = 7;
    /// Status return level.
    pub const STATUS_LEVEL: u8 = 8;
    /// Min angle limit (word).
    pub const MIN_ANGLE: u8 = 9;
    /// Max angle limit (word).
    pub const MAX_ANGLE: u8 = 11;
    /// Max temperature.
    pub const MAX_TEMPERATURE: u8 = 13;
    /// Max voltage.
    pub const MAX_VOLTAGE: u8 = 14;
    /// Min voltage.
    pub const MIN_VOLTAGE: u8 = 15;
    /// Torque enable.
    pub const TORQUE_ENABLE: u8 = 40;
    /// Goal position (word).
    pub const GOAL_POSITION: u8 = 42;
    /// Goal time (word).
    pub const GOAL_TIME: u8 = 44;
    /// Goal speed (word).
    pub const GOAL_SPEED: u8 = 46;
    /// Present position (word).
    pub const PRESENT_POSITION: u8 = 56;
    /// Present speed (word).
    pub const PRESENT_SPEED: u8 = 58;
    /// Present load (word).
    pub const PRESENT_LOAD: u8 = 60;
    /// Present voltage.
    pub const PRESENT_VOLTAGE: u8 = 62;
    /// Present temperature.
    pub const PRESENT_TEMPERATURE: u8 = 63;
    /// Moving.
    pub const MOVING: u8 = 66;
}

/// Size of the modelled memory (last register ends at 70).
pub const MEMORY_SIZE: usize = 71;

/// Degrees per position step (300 / 1024).
pub const DEG_PER_STEP: f64 = 300.0 / 1024.0;
/// Raw position of 0 degrees.
pub const CENTRE_STEP: f64 = 511.0;

/// Position raw steps to degrees (raw 511 = 0).
pub fn steps_to_deg(raw: f64) -> f64 {
    (raw - CENTRE_STEP) * DEG_PER_STEP
}

/// Degrees to position raw steps, rounded to nearest.
pub fn deg_to_steps(deg: f64) -> u16 {
    (deg / DEG_PER_STEP + CENTRE_STEP)
        .round()
        .clamp(0.0, 1023.0) as u16
}

/// Physical parameters of one servo (assumed values; see each field).
#[derive(Debug, Clone, PartialEq)]
pub struct ServoParams {
    /// Fastest motion, steps/s. Assumed 2048: the datasheet's no-load speed
    /// 0.1 s/60 degrees at 6 V = 600 deg/s = 2048 steps/s (the hand's 5 V
    /// supply would be somewhat slower; not modelled).
    pub max_speed_steps: f64,
    /// Supply voltage, 0.1 V (assumed 50: the hand's 5 V supply).
    pub supply_decivolts: u8,
    /// Temperature, degrees C (assumed 25).
    pub temperature_c: u8,
    /// Present-load magnitude while moving, 0..1000 (assumed 100 = 10 %).
    pub load_while_moving: u16,
}

impl Default for ServoParams {
    fn default() -> Self {
        ServoParams {
            max_speed_steps: 2048.0,
            supply_decivolts: 50,
            temperature_c: 25,
            load_while_moving: 100,
        }
    }
}

/// What a WRITE did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Error bits for the status reply (ANGLE if a goal was clamped).
    pub error: u8,
}

/// One SCS0009.
#[derive(Debug, Clone)]
pub struct Servo {
    mem: [u8; MEMORY_SIZE],
    writable: [bool; MEMORY_SIZE],
    /// Position, fractional steps.
    pos: f64,
    /// Direction of the last motion step (+1/-1/0), for present speed/load.
    dir: f64,
    /// Speed of the current motion, steps/s.
    speed: f64,
    last: Nanos,
    /// Start of the current motion segment: position and time.
    origin: f64,
    origin_t: Nanos,
    params: ServoParams,
    /// The REG_WRITE waiting for ACTION.
    pending: Option<(u8, Vec<u8>)>,
}

impl Servo {
    /// A servo at power-on with id `id`, at the centre, torque off, at time `now`.
    pub fn new(id: u8, params: ServoParams, now: Nanos) -> Servo {
        let mut mem = [0u8; MEMORY_SIZE];
        let mut writable = [false; MEMORY_SIZE];
        for r in REGISTERS {
            let a = usize::from(r.addr);
            if r.size == 2 {
                mem[a..a + 2].copy_from_slice(&word_to_bytes(r.default));
            } else {
                mem[a] = r.default as u8;
            }
            for w in &mut writable[a..a + usize::from(r.size)] {
                *w = r.access == Access::ReadWrite;
            }
        }
        mem[usize::from(addr::ID)] = id;
        let mut s = Servo {
            mem,
            writable,
            pos: f64::from(word_from_bytes(mem[56], mem[57])),
            dir: 0.0,
            speed: 0.0,
            last: now,
            origin: 0.0,
            origin_t: now,
            params,
            pending: None,
        };
        s.rebase();
        s.refresh();
        s
    }

    fn word(&self, a: u8) -> u16 {
        let a = usize::from(a);
        word_from_bytes(self.mem[a], self.mem[a + 1])
    }

    fn set_word(&mut self, a: u8, v: u16) {
        let a = usize::from(a);
        self.mem[a..a + 2].copy_from_slice(&word_to_bytes(v));
    }

    /// The servo's id (register 5).
    pub fn id(&self) -> u8 {
        self.mem[usize::from(addr::ID)]
    }

    /// Status return level (register 8).
    pub fn status_level(&self) -> u8 {
        self.mem[usize::from(addr::STATUS_LEVEL)]
    }

    /// Return delay register (7).
    pub fn return_delay(&self) -> u8 {
        self.mem[usize::from(addr::RETURN_DELAY)]
    }

    /// Torque on (`torque_enable` == 1).
    pub fn torque_on(&self) -> bool {
        self.mem[usize::from(addr::TORQUE_ENABLE)] == 1
    }

    /// Present position, degrees (fractional, not rounded to a step).
    pub fn position_deg(&self) -> f64 {
        steps_to_deg(self.pos)
    }

    /// Present position, fractional steps.
    pub fn position_steps(&self) -> f64 {
        self.pos
    }

    /// Goal position, raw.
    pub fn goal_raw(&self) -> u16 {
        self.word(addr::GOAL_POSITION)
    }

    /// Moving toward the goal.
    pub fn moving(&self) -> bool {
        self.torque_on() && self.pos != f64::from(self.goal_raw())
    }

    /// The limits goals are clamped to.
    pub fn limits(&self) -> (u16, u16) {
        let (lo, hi) = (self.word(addr::MIN_ANGLE), self.word(addr::MAX_ANGLE));
        if lo >= hi {
            (0, 1023)
        } else {
            (lo, hi.min(1023))
        }
    }

    /// Speed the servo moves at now, steps/s.
    fn commanded_speed(&self) -> f64 {
        let raw = f64::from(self.word(addr::GOAL_SPEED) & 0x7FFF);
        if raw == 0.0 {
            self.params.max_speed_steps
        } else {
            raw.min(self.params.max_speed_steps)
        }
    }

    /// Time at which the current motion ends, if moving.
    pub fn arrival_time(&self) -> Option<Nanos> {
        if !self.moving() {
            return None;
        }
        let dist = (f64::from(self.goal_raw()) - self.origin).abs();
        let dt = (dist / self.speed * SECONDS as f64).ceil() as Nanos;
        Some(self.origin_t + dt)
    }

    /// Moves the joint on to virtual time `now` and refreshes the present
    /// registers. Positions are computed from the start of the current
    /// motion segment, so repeated looks do not accumulate rounding.
    pub fn advance(&mut self, now: Nanos) {
        if now > self.last && self.moving() {
            let t = now.saturating_sub(self.origin_t) as f64 / SECONDS as f64;
            let goal = f64::from(self.goal_raw());
            let d = goal - self.origin;
            let travelled = self.speed * t;
            self.dir = d.signum();
            // A nanostep of tolerance for the float product.
            if d.abs() <= travelled + 1e-9 {
                self.pos = goal;
            } else {
                self.pos = self.origin + self.dir * travelled;
            }
        }
        self.last = self.last.max(now);
        self.refresh();
    }

    /// Starts a new motion segment from where the joint is now.
    fn rebase(&mut self) {
        self.origin = self.pos;
        self.origin_t = self.last;
    }

    fn refresh(&mut self) {
        let moving = self.moving();
        let present = self.pos.round().clamp(0.0, 1023.0) as u16;
        self.set_word(addr::PRESENT_POSITION, present);
        let (speed, load) = if moving {
            let sign: u16 = if self.dir < 0.0 { 1 } else { 0 };
            let s = (self.speed.round() as u16).min(0x7FFF) | (sign << 15);
            let l = self.params.load_while_moving.min(1023) | (sign << 10);
            (s, l)
        } else {
            (0, 0)
        };
        self.set_word(addr::PRESENT_SPEED, speed);
        self.set_word(addr::PRESENT_LOAD, load);
        self.mem[usize::from(addr::PRESENT_VOLTAGE)] = self.params.supply_decivolts;
        self.mem[usize::from(addr::PRESENT_TEMPERATURE)] = self.params.temperature_c;
        self.mem[usize::from(addr::MOVING)] = u8::from(moving);
    }

    /// Error bits every status carries (voltage and temperature against the limits).
    pub fn condition_error(&self) -> u8 {
        let v = self.params.supply_decivolts;
        let lo = self.mem[usize::from(addr::MIN_VOLTAGE)];
        let hi = self.mem[usize::from(addr::MAX_VOLTAGE)];
        let mut e = 0;
        if v < lo || v > hi {
            e |= err::VOLTAGE;
        }
        if self.params.temperature_c > self.mem[usize::from(addr::MAX_TEMPERATURE)] {
            e |= err::OVERHEAT;
        }
        e
    }

    /// READ: `len` bytes from `start` at time `now` (unmapped bytes read 0).
    pub fn read(&mut self, start: u8, len: u8, now: Nanos) -> Vec<u8> {
        self.advance(now);
        (0..usize::from(len))
            .map(|i| self.mem.get(usize::from(start) + i).copied().unwrap_or(0))
            .collect()
    }

    /// WRITE: `data` from `start` at time `now`.
    pub fn write(&mut self, start: u8, data: &[u8], now: Nanos) -> WriteOutcome {
        self.advance(now);
        let was_on = self.torque_on();
        let old_goal = self.goal_raw();
        let mut touched_goal = false;
        let mut touched_speed = false;
        for (i, &b) in data.iter().enumerate() {
            let a = usize::from(start) + i;
            if a < MEMORY_SIZE && self.writable[a] {
                self.mem[a] = b;
                let a = a as u8;
                touched_goal |= (addr::GOAL_POSITION..addr::GOAL_POSITION + 2).contains(&a);
                touched_speed |= (addr::GOAL_SPEED..addr::GOAL_SPEED + 2).contains(&a);
            }
        }
        let mut out = WriteOutcome::default();
        if touched_goal {
            let want = i32::from(self.goal_raw() as i16);
            let (lo, hi) = self.limits();
            let clamped = want.clamp(i32::from(lo), i32::from(hi));
            if clamped != want {
                out.error |= err::ANGLE;
            }
            self.set_word(addr::GOAL_POSITION, clamped as u16);
        }
        let on = self.torque_on();
        if on && !was_on {
            // Limp -> on: hold where the joint is.
            let here = self.pos.round().clamp(0.0, 1023.0);
            self.pos = here;
            self.set_word(addr::GOAL_POSITION, here as u16);
        }
        if touched_speed || touched_goal || (on && !was_on) || self.goal_raw() != old_goal {
            self.speed = self.commanded_speed();
        }
        self.rebase();
        if !on {
            self.dir = 0.0;
        }
        self.refresh();
        out.error |= self.condition_error();
        out
    }

    /// REG_WRITE: keeps the write for ACTION (a new one replaces it).
    pub fn reg_write(&mut self, start: u8, data: &[u8]) {
        self.pending = Some((start, data.to_vec()));
    }

    /// ACTION: applies the buffered write, if any.
    pub fn action(&mut self, now: Nanos) -> WriteOutcome {
        match self.pending.take() {
            Some((a, d)) => self.write(a, &d, now),
            None => WriteOutcome {
                error: self.condition_error(),
            },
        }
    }

    /// Sets the physical conditions (supply voltage, temperature) at `now`.
    pub fn set_params(&mut self, params: ServoParams, now: Nanos) {
        self.advance(now);
        self.params = params;
        self.speed = self.speed.min(self.params.max_speed_steps);
        self.rebase();
        self.refresh();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MILLIS;

    #[test]
    fn table_is_sorted_and_does_not_overlap() {
        let mut end = 0usize;
        for r in REGISTERS {
            assert!(usize::from(r.addr) >= end, "{} overlaps", r.name);
            end = usize::from(r.addr) + usize::from(r.size);
        }
        assert_eq!(end, MEMORY_SIZE);
    }

    #[test]
    fn power_on_values_read_big_endian() {
        let mut s = Servo::new(3, ServoParams::default(), 0);
        assert_eq!(s.read(addr::ID, 1, 0), [3]);
        assert_eq!(s.read(addr::MAX_ANGLE, 2, 0), [0x03, 0xEB]); // 1003
        assert_eq!(s.read(addr::PRESENT_POSITION, 2, 0), [0x01, 0xFF]); // 511
        assert_eq!(s.read(0, 2, 0), [0, 5]);
        assert_eq!(s.read(69, 4, 0), [0, 0, 0, 0]); // past the table reads 0
        assert!(!s.torque_on());
    }

    #[test]
    fn units() {
        assert_eq!(deg_to_steps(35.0), 630);
        assert_eq!(deg_to_steps(-90.0), 204);
        assert!((steps_to_deg(630.0) - 34.86).abs() < 0.01);
        assert_eq!(steps_to_deg(511.0), 0.0);
    }

    #[test]
    fn read_only_bytes_are_ignored_and_the_rest_applies() {
        let mut s = Servo::new(1, ServoParams::default(), 0);
        // 56..=57 present position (read only).
        let out = s.write(addr::PRESENT_POSITION, &[0, 0], 0);
        assert_eq!(out.error, 0);
        assert_eq!(s.read(addr::PRESENT_POSITION, 2, 0), [0x01, 0xFF]);
        // 48 lock (rw) .. 49 unmapped.
        s.write(48, &[1, 9], 0);
        assert_eq!(s.read(48, 2, 0), [1, 0]);
    }

    #[test]
    fn moves_at_commanded_speed_then_stops() {
        let mut s = Servo::new(1, ServoParams::default(), 0);
        s.write(addr::TORQUE_ENABLE, &[1], 0);
        s.write(addr::GOAL_SPEED, &word_to_bytes(500), 0);
        s.write(addr::GOAL_POSITION, &word_to_bytes(611), 0);
        s.advance(100 * MILLIS);
        assert!((s.position_steps() - 561.0).abs() < 1e-9);
        assert!(s.moving());
        assert_eq!(s.arrival_time(), Some(200 * MILLIS));
        s.advance(250 * MILLIS);
        assert_eq!(s.position_steps(), 611.0);
        assert!(!s.moving());
    }

    #[test]
    fn speed_zero_and_oversized_speed_mean_the_maximum() {
        let p = ServoParams::default();
        let mut s = Servo::new(1, p.clone(), 0);
        s.write(addr::TORQUE_ENABLE, &[1], 0);
        s.write(addr::GOAL_SPEED, &word_to_bytes(30_000), 0);
        s.write(addr::GOAL_POSITION, &word_to_bytes(1003), 0);
        s.advance(100 * MILLIS);
        assert!((s.position_steps() - (511.0 + p.max_speed_steps * 0.1)).abs() < 1e-6);
    }
}
