//! The seams to the hardware: the servo bus ([`HandDriver`]) and pauses ([`Pause`]).
//!
//! The harness binds [`Pause`] to virtual time and [`HandDriver`] to rustypot on
//! the servo-bus twin; on the Jetson they are `thread::sleep` and rustypot on
//! `/dev/ttyUSB0`.

/// Number of servos on the hand (ids 1..=8).
pub const SERVO_COUNT: usize = 8;

/// All servo ids, in order.
pub const ALL_SERVOS: [u8; SERVO_COUNT] = [1, 2, 3, 4, 5, 6, 7, 8];

/// A servo-bus failure (timeout, bad reply, closed port...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("servo bus: {0}")]
pub struct DriverError(pub String);

/// The servo bus as the agent uses it. Speeds are rad/s, positions radians
/// (rustypot's units, calibration already applied).
pub trait HandDriver {
    /// Write the goal speed of each servo in `ids`.
    fn set_speed(&mut self, ids: &[u8], rad_per_s: f64) -> Result<(), DriverError>;
    /// Write goal positions, `radians[i]` to `ids[i]`.
    fn write_goal_positions(&mut self, ids: &[u8], radians: &[f64]) -> Result<(), DriverError>;
    /// Torque on or off on all 8 servos.
    fn enable_torque(&mut self, on: bool) -> Result<(), DriverError>;
    /// Present positions of servos 1..=8, radians (calibration not removed).
    fn read_present_positions(&mut self) -> Result<[f64; SERVO_COUNT], DriverError>;
}

impl<D: HandDriver + ?Sized> HandDriver for &mut D {
    fn set_speed(&mut self, ids: &[u8], rad_per_s: f64) -> Result<(), DriverError> {
        (**self).set_speed(ids, rad_per_s)
    }
    fn write_goal_positions(&mut self, ids: &[u8], radians: &[f64]) -> Result<(), DriverError> {
        (**self).write_goal_positions(ids, radians)
    }
    fn enable_torque(&mut self, on: bool) -> Result<(), DriverError> {
        (**self).enable_torque(on)
    }
    fn read_present_positions(&mut self) -> Result<[f64; SERVO_COUNT], DriverError> {
        (**self).read_present_positions()
    }
}

/// A blocking pause. The harness binds it to virtual time.
pub trait Pause {
    /// Wait `ns` nanoseconds.
    fn pause(&mut self, ns: u64);
}

impl<P: Pause + ?Sized> Pause for &mut P {
    fn pause(&mut self, ns: u64) {
        (**self).pause(ns)
    }
}

/// [`Pause`] on the wall clock (`std::thread::sleep`), for a real board.
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadSleep;

impl Pause for ThreadSleep {
    fn pause(&mut self, ns: u64) {
        std::thread::sleep(std::time::Duration::from_nanos(ns));
    }
}

/// Test doubles: a recording driver, a pause that advances a fake clock, both
/// writing to one ordered log. Public so the harness's own tests can use them.
pub mod testing {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use twinrig_hal::Clock;

    use super::*;

    /// One recorded call.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Call {
        /// `set_speed`.
        SetSpeed(Vec<u8>, f64),
        /// `write_goal_positions`.
        WriteGoals(Vec<u8>, Vec<f64>),
        /// `enable_torque`.
        Torque(bool),
        /// `read_present_positions`.
        ReadPositions,
        /// A pause of this many ns.
        Pause(u64),
    }

    /// A shared log plus a fake clock advanced by pauses.
    #[derive(Debug, Clone, Default)]
    pub struct Bench {
        log: Rc<RefCell<Vec<Call>>>,
        now_ns: Rc<Cell<u64>>,
        fail_after: Rc<Cell<Option<usize>>>,
    }

    impl Bench {
        /// A bench at time 0.
        pub fn new() -> Bench {
            Bench::default()
        }
        /// A recording driver writing to this bench's log.
        pub fn driver(&self) -> RecordingDriver {
            RecordingDriver {
                bench: self.clone(),
                goals: [0.0; SERVO_COUNT],
            }
        }
        /// A pause that logs and advances the clock.
        pub fn pause(&self) -> FakePause {
            FakePause {
                bench: self.clone(),
            }
        }
        /// A clock reading the bench time.
        pub fn clock(&self) -> FakeClock {
            FakeClock {
                bench: self.clone(),
            }
        }
        /// Everything recorded so far.
        pub fn calls(&self) -> Vec<Call> {
            self.log.borrow().clone()
        }
        /// Recorded driver calls only (pauses left out).
        pub fn driver_calls(&self) -> Vec<Call> {
            self.calls()
                .into_iter()
                .filter(|c| !matches!(c, Call::Pause(_)))
                .collect()
        }
        /// Current fake time.
        pub fn now_ns(&self) -> u64 {
            self.now_ns.get()
        }
        /// Make every driver call after the first `n` more fail.
        pub fn fail_after(&self, n: usize) {
            self.fail_after.set(Some(n));
        }
        fn record(&self, call: Call) -> Result<(), DriverError> {
            if let (false, Some(left)) = (matches!(call, Call::Pause(_)), self.fail_after.get()) {
                if left == 0 {
                    return Err(DriverError("injected failure".into()));
                }
                self.fail_after.set(Some(left - 1));
            }
            self.log.borrow_mut().push(call);
            Ok(())
        }
    }

    /// A [`HandDriver`] that records calls; present positions = last goals.
    #[derive(Debug, Clone)]
    pub struct RecordingDriver {
        bench: Bench,
        goals: [f64; SERVO_COUNT],
    }

    impl HandDriver for RecordingDriver {
        fn set_speed(&mut self, ids: &[u8], rad_per_s: f64) -> Result<(), DriverError> {
            self.bench.record(Call::SetSpeed(ids.to_vec(), rad_per_s))
        }
        fn write_goal_positions(&mut self, ids: &[u8], radians: &[f64]) -> Result<(), DriverError> {
            self.bench
                .record(Call::WriteGoals(ids.to_vec(), radians.to_vec()))?;
            for (id, r) in ids.iter().zip(radians) {
                if (1..=8).contains(id) {
                    self.goals[usize::from(id - 1)] = *r;
                }
            }
            Ok(())
        }
        fn enable_torque(&mut self, on: bool) -> Result<(), DriverError> {
            self.bench.record(Call::Torque(on))
        }
        fn read_present_positions(&mut self) -> Result<[f64; SERVO_COUNT], DriverError> {
            self.bench.record(Call::ReadPositions)?;
            Ok(self.goals)
        }
    }

    /// A [`Pause`] that logs and advances the bench clock.
    #[derive(Debug, Clone)]
    pub struct FakePause {
        bench: Bench,
    }

    impl Pause for FakePause {
        fn pause(&mut self, ns: u64) {
            let _ = self.bench.record(Call::Pause(ns));
            self.bench.now_ns.set(self.bench.now_ns.get() + ns);
        }
    }

    /// A [`Clock`] reading the bench time.
    #[derive(Debug, Clone)]
    pub struct FakeClock {
        bench: Bench,
    }

    impl Clock for FakeClock {
        fn now_ns(&self) -> u64 {
            self.bench.now_ns.get()
        }
    }
}
