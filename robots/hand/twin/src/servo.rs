//! One Feetech SCS0009 servo: its register table, READ/WRITE semantics and
//! motion in virtual time.
//!
//! # Register table
//! [`REGISTERS`] is the single source: addresses, sizes, access, EEPROM/RAM
//! area and power-on values. Sources: amazing-hand.md section 3.1 (rustypot
//! `scs0009.rs` cross-checked with SCServo `SCSCL.h` and the FT SCServo Debug
//! screenshot of an SCS0009, "FD" below) and Feetech's SCSCL memory table
//! (ftservo-wiki `docs/en/reference/parameter/memory-scscl.md`, "the Feetech
//! table" below). Where the two disagree on a power-on value, the FD
//! screenshot of a real SCS0009 wins. Words are big-endian. Addresses not in
//! the table read 0 and ignore writes (assumed).
//!
//! Every register rustypot 1.13.1 declares for the SCS0009 is in the table:
//! - 0/1 firmware main/sub version 0/5 and 3/4 servo main/sub version 5/4
//!   (FD). rustypot's `read_register(id, "model_number")` reads 3..4
//!   big-endian as 1284, the number its `ServoKind` table gives the SCS0009
//!   (its typed `read_model` takes the bytes little-endian: 1029, on the real
//!   servo too). 2 is the Feetech table's END byte, 1 = big-endian.
//! - 41 (rustypot `acceleration`) is "undefined, R/W" in the Feetech table
//!   (the SCS series has no acceleration; STS servos have it at 41): stored,
//!   no effect (assumed).
//! - 64 (rustypot `sync_write_flag`) is the Feetech table's "async write
//!   flag": 1 while a REG_WRITE waits for its ACTION, else 0 (REG_WRITE is
//!   Feetech's asynchronous write; the exact meaning is assumed).
//! - 65 `status`: the Feetech table's alarm bits, bit 0 voltage and bit 2
//!   temperature against the limits (the same bits the status error byte
//!   carries); bit 5 (overload) is never set, no load is modelled.
//! - 78..=83, the factory block (PWM maximum step 20, moving-velocity
//!   threshold 1, DTs 20 ms, minimum velocity limit 1, maximum velocity limit,
//!   acceleration 20; velocities in units of 50 steps/s): read only in the
//!   Feetech table, so writes are ignored, although rustypot declares 78..=82
//!   writable. 82 has no published value: the twin reports its own top speed,
//!   [`ServoParams::max_speed_steps`] / 50 (assumed).
//! - 69 present current (SCServo `SCSCL.h`; not in rustypot) reads 0.
//!
//! # Semantics (assumed where the sheets are silent; each is documented here)
//! - Write to a read-only register: those bytes are ignored, the other bytes
//!   of the same WRITE take effect, and the WRITE is acknowledged with the
//!   usual status (error byte 0 unless an alarm condition holds). A Feetech
//!   status error byte only reports alarms, never a refused instruction
//!   (FTS-rs `error.rs`; rustypot 1.13.1 declares the SCS0009
//!   `status_alarms_only`), so no error bit could say "refused". Assumed.
//! - `lock` (48, power-on 1 per the Feetech table): 0 makes EEPROM writes
//!   survive a power cycle, 1 makes them last until power-off only (the
//!   Feetech table; SCServo `SCSCL.cpp` `unLockEprom` writes 0, `LockEprom`
//!   1). Either way an EEPROM write takes effect at once. Power cycles are not
//!   modelled, so `lock` is stored only.
//! - Writing `id` (5) re-addresses the servo at once. `baudrate` (6) is stored
//!   only: the twin keeps talking at the line's baud.
//! - `torque_enable` (40): 1 = torque on; 0 (Feetech: off, free) and 2
//!   (Feetech: damping; Pollen's "off"/"free" 2/3) = limp. Limp model: the
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
//! - Goal speed is in steps per second (rustypot's unit and the Feetech
//!   table's), the sign bit 15 ignored, 0 meaning "as fast as possible"
//!   (UNVERIFIED), capped at [`ServoParams::max_speed_steps`]. Goal time (44)
//!   is stored but ignored.
//! - Present speed: signed by bit 15, steps/s. Present load: bit 10 sign,
//!   magnitude [`ServoParams::load_while_moving`] while moving, 0 otherwise.
//! - Units: one step = 300/1024 degrees; raw 511 = 0 degrees.

use twinrig_sim::Nanos;
use twinrig_sim::SECONDS;

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

/// The SCS0009 register table (amazing-hand.md 3.1, the Feetech SCSCL
/// table). Defaults without a source are marked assumed in the comment.
pub const REGISTERS: &[Register] = &[
    reg(0, 1, "firmware_major_version", R, 0),
    reg(1, 1, "firmware_minor_version", R, 5),
    // Feetech table: 1 = words stored big-endian.
    reg(2, 1, "end", R, 1),
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
    // "Undefined, R/W" in the Feetech table; rustypot's name. Assumed power-on 0.
    reg(41, 1, "acceleration", RW, 0),
    // Goal block: assumed power-on goal = centre (511), time 0, speed 0.
    reg(42, 2, "goal_position", RW, 511),
    reg(44, 2, "goal_time", RW, 0),
    reg(46, 2, "goal_speed", RW, 0),
    // Power-on 1 (Feetech table): EEPROM writes last until power-off.
    reg(48, 1, "lock", RW, 1),
    // Present values are computed; defaults are what a fresh servo at the
    // centre reads (voltage/temperature come from ServoParams).
    reg(56, 2, "present_position", R, 511),
    reg(58, 2, "present_speed", R, 0),
    reg(60, 2, "present_load", R, 0),
    reg(62, 1, "present_voltage", R, 50),
    reg(63, 1, "present_temperature", R, 25),
    // 1 while a REG_WRITE waits for ACTION (computed).
    reg(64, 1, "sync_write_flag", R, 0),
    // Alarm bits (computed).
    reg(65, 1, "status", R, 0),
    reg(66, 1, "moving", R, 0),
    reg(69, 2, "present_current", R, 0),
    // Factory block (Feetech table, read only). 82 is computed from the top speed.
    reg(78, 1, "pwm_maximum_step", R, 20),
    reg(79, 1, "moving_velocity_threshold", R, 1),
    reg(80, 1, "dts", R, 20),
    reg(81, 1, "minimum_velocity_limit", R, 1),
    reg(82, 1, "maximum_velocity_limit", R, 41),
    reg(83, 1, "factory_acceleration", R, 20),
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
    /// Async (registered) write flag.
    pub const REGISTERED_WRITE: u8 = 64;
    /// Alarm status.
    pub const STATUS: u8 = 65;
    /// Moving.
    pub const MOVING: u8 = 66;
    /// Maximum velocity limit, 50 steps/s units (factory, read only).
    pub const MAX_VELOCITY_LIMIT: u8 = 82;
}

/// Size of the modelled memory (last register ends at 83).
pub const MEMORY_SIZE: usize = 84;

/// Unit of the factory velocity registers (79, 81, 82), steps/s.
pub const FACTORY_VELOCITY_UNIT: f64 = 50.0;

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
        // Limits past the 10-bit range are cut to it first, so a written
        // minimum above 1023 is an empty range like any other.
        let (lo, hi) = (
            self.word(addr::MIN_ANGLE),
            self.word(addr::MAX_ANGLE).min(1023),
        );
        if lo >= hi { (0, 1023) } else { (lo, hi) }
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
        self.mem[usize::from(addr::REGISTERED_WRITE)] = u8::from(self.pending.is_some());
        self.mem[usize::from(addr::STATUS)] = self.condition_error();
        self.mem[usize::from(addr::MAX_VELOCITY_LIMIT)] = (self.params.max_speed_steps
            / FACTORY_VELOCITY_UNIT)
            .round()
            .clamp(0.0, 255.0) as u8;
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
        self.refresh();
    }

    /// A REG_WRITE waits for ACTION.
    pub fn has_registered_write(&self) -> bool {
        self.pending.is_some()
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
    use twinrig_sim::MILLIS;

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
    fn angle_limits_above_the_10_bit_range_never_panic_a_goal_write() {
        // Found by tests/fuzz (servo_uart): a minimum of 1024 made the goal
        // clamp with min > max.
        let mut s = Servo::new(1, ServoParams::default(), 0);
        s.write(addr::MIN_ANGLE, &[0x04, 0x00, 0x5E, 0xED], 0);
        assert_eq!(s.limits(), (0, 1023), "an empty range means no limit");
        s.write(addr::GOAL_POSITION, &[0x02, 0x76], 0);
        assert_eq!(s.goal_raw(), 630);
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
        // 48 lock (rw, power-on 1) .. 49 unmapped.
        assert_eq!(s.read(48, 1, 0), [1]);
        s.write(48, &[0, 9], 0);
        assert_eq!(s.read(48, 2, 0), [0, 0]);
        // The factory block is read only, although rustypot declares 78..=82 writable.
        let out = s.write(78, &[1, 2, 3, 4, 5, 6], 0);
        assert_eq!(out.error, 0);
        assert_eq!(s.read(78, 6, 0), [20, 1, 20, 1, 41, 20]);
        // 41 is undefined but writable on the SCS series: stored, no effect.
        s.write(41, &[7], 0);
        assert_eq!(s.read(41, 1, 0), [7]);
    }

    /// Every register rustypot 1.13.1 declares for the SCS0009 (name,
    /// address, size) with the value a fresh twin at the centre reads.
    const RUSTYPOT_SCS0009: &[(&str, u8, u8, u16)] = &[
        ("firmware_major_version", 0, 1, 0),
        ("firmware_minor_version", 1, 1, 5),
        ("model", 3, 2, 1284),
        ("id", 5, 1, 1),
        ("baudrate", 6, 1, 0),
        ("return_delay_time", 7, 1, 0),
        ("response_status_level", 8, 1, 1),
        ("min_angle_limit", 9, 2, 20),
        ("max_angle_limit", 11, 2, 1003),
        ("max_temperature_limit", 13, 1, 70),
        ("max_voltage_limit", 14, 1, 90),
        ("min_voltage_limit", 15, 1, 45),
        ("max_torque_limit", 16, 2, 1000),
        ("phase", 18, 1, 0),
        ("unloading_condition", 19, 1, 32),
        ("led_alarm_condition", 20, 1, 37),
        ("p_coefficient", 21, 1, 15),
        ("d_coefficient", 22, 1, 15),
        ("i_coefficient", 23, 1, 0),
        ("minimum_startup_force", 24, 2, 45),
        ("cw_dead_zone", 26, 1, 1),
        ("ccw_dead_zone", 27, 1, 1),
        ("protective_torque", 37, 1, 20),
        ("protection_time", 38, 1, 100),
        ("overload_torque", 39, 1, 80),
        ("torque_enable", 40, 1, 0),
        ("acceleration", 41, 1, 0),
        ("goal_position", 42, 2, 511),
        ("goal_time", 44, 2, 0),
        ("goal_speed", 46, 2, 0),
        ("lock", 48, 1, 1),
        ("present_position", 56, 2, 511),
        ("present_speed", 58, 2, 0),
        ("present_load", 60, 2, 0),
        ("present_voltage", 62, 1, 50),
        ("present_temperature", 63, 1, 25),
        ("sync_write_flag", 64, 1, 0),
        ("status", 65, 1, 0),
        ("moving", 66, 1, 0),
        ("pwm_maximum_step", 78, 1, 20),
        ("moving_velocity_threshold", 79, 1, 1),
        ("dts", 80, 1, 20),
        ("minimum_velocity_limit", 81, 1, 1),
        ("maximum_velocity_limit", 82, 1, 41),
    ];

    #[test]
    fn every_rustypot_register_is_in_the_table_with_its_power_on_value() {
        let mut s = Servo::new(1, ServoParams::default(), 0);
        for &(name, a, size, value) in RUSTYPOT_SCS0009 {
            let r = REGISTERS
                .iter()
                .find(|r| r.addr == a)
                .unwrap_or_else(|| panic!("{name} ({a}) not in the table"));
            assert_eq!(r.size, size, "{name}");
            assert_eq!(r.name, name);
            let bytes = s.read(a, size, 0);
            let got = if size == 2 {
                word_from_bytes(bytes[0], bytes[1])
            } else {
                u16::from(bytes[0])
            };
            assert_eq!(got, value, "{name} at {a}");
        }
    }

    #[test]
    fn registered_write_flag_and_status_alarm_bits_follow_the_servo() {
        let mut s = Servo::new(1, ServoParams::default(), 0);
        s.reg_write(addr::GOAL_SPEED, &word_to_bytes(100));
        assert_eq!(s.read(addr::REGISTERED_WRITE, 1, 0), [1]);
        s.action(0);
        assert_eq!(s.read(addr::REGISTERED_WRITE, 1, 0), [0]);
        assert_eq!(s.read(addr::GOAL_SPEED, 2, 0), word_to_bytes(100));
        // Supply under the minimum (45 = 4.5 V) and too hot: bits 0 and 2.
        s.set_params(
            ServoParams {
                supply_decivolts: 40,
                temperature_c: 80,
                max_speed_steps: 1000.0,
                ..ServoParams::default()
            },
            0,
        );
        assert_eq!(s.read(addr::STATUS, 1, 0), [err::VOLTAGE | err::OVERHEAT]);
        // The maximum velocity limit follows the top speed: 1000 / 50.
        assert_eq!(s.read(addr::MAX_VELOCITY_LIMIT, 1, 0), [20]);
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
