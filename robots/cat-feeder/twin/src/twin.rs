//! The feeder's mechanics: hopper, two motors, two bowls.
//!
//! A motor runs while its L298N input is high, unless it is jammed. The
//! rising edge of a running motor starts a dispensing task that releases
//! one treat per [`Schedule`] period while the same run goes on and the
//! hopper has treats; the falling edge ends the run (the task notices at
//! its next release time and stops). Both motors draw from one hopper.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{Value, json};
use twinrig_sim::SimHandle;

use crate::bowls::Bowls;
use crate::hopper::{Hopper, Schedule};
use crate::params::{Bowl, FeederParams};

#[derive(Debug, Default, Clone, Copy)]
struct MotorState {
    /// The input pin's level.
    high: bool,
    /// The motor does not turn even when driven.
    jammed: bool,
    /// Rising edges seen (runs commanded), jammed or not.
    runs: u32,
    /// Time the motor has been driven, ns, over finished runs.
    driven_ns: u64,
    /// When the current run started.
    since: u64,
}

struct State {
    hopper: Hopper,
    motors: [MotorState; 2],
    bowls: Bowls,
    /// Treats a motor would have released but the hopper was empty.
    missed: u32,
    /// A physics error while releasing (reported in the state).
    error: Option<String>,
}

/// One feeder's mechanics, shared by its pins, its level sensor and the
/// runtime that reports its state.
#[derive(Clone)]
pub struct FeederTwin {
    handle: SimHandle,
    id: String,
    schedule: Schedule,
    state: Rc<RefCell<State>>,
}

impl FeederTwin {
    /// The twin of feeder `id`, its bowls already in the world.
    pub fn new(handle: &SimHandle, id: &str, params: &FeederParams, bowls: Bowls) -> FeederTwin {
        let mut motors = [MotorState::default(); 2];
        for bowl in Bowl::BOTH {
            motors[bowl.index()].jammed = params.is_jammed(bowl);
        }
        FeederTwin {
            handle: handle.clone(),
            id: id.to_string(),
            schedule: Schedule::new(params.treats_per_second),
            state: Rc::new(RefCell::new(State {
                hopper: Hopper::new(params.hopper_capacity, params.initial_treats()),
                motors,
                bowls,
                missed: 0,
                error: None,
            })),
        }
    }

    /// The hopper level in percent, as the level sensor reads it.
    pub fn level_percent(&self) -> u8 {
        self.state.borrow().hopper.percent()
    }

    /// Treats left in the hopper.
    pub fn hopper_treats(&self) -> u32 {
        self.state.borrow().hopper.treats()
    }

    /// Treats lying in each bowl now (left, right).
    pub fn bowl_treats(&self) -> [u32; 2] {
        self.state.borrow().bowls.count().0
    }

    /// Drives `bowl`'s motor input.
    pub fn set_pin(&self, bowl: Bowl, high: bool) {
        let now = self.handle.now();
        let start_run = {
            let mut s = self.state.borrow_mut();
            let m = &mut s.motors[bowl.index()];
            if m.high == high {
                return;
            }
            m.high = high;
            if high {
                m.runs += 1;
                m.since = now;
                !m.jammed
            } else {
                m.driven_ns = m.driven_ns.saturating_add(now.saturating_sub(m.since));
                false
            }
        };
        if start_run {
            let run = self.state.borrow().motors[bowl.index()].runs;
            let twin = self.clone();
            self.handle.spawn(
                format!("{} (motor {})", self.id, bowl.as_str()),
                async move { twin.dispense(bowl, run, now).await },
            );
        }
    }

    /// Releases treats for run number `run` of `bowl`'s motor, started at `start`.
    async fn dispense(self, bowl: Bowl, run: u32, start: u64) {
        for k in 0.. {
            self.handle
                .sleep_until(self.schedule.release_at(start, k))
                .await;
            let mut guard = self.state.borrow_mut();
            let s = &mut *guard;
            let m = s.motors[bowl.index()];
            if !m.high || m.runs != run {
                return;
            }
            if !s.hopper.take() {
                s.missed += 1;
                continue;
            }
            if let Err(e) = s.bowls.release(bowl) {
                // A treat that cannot be placed is lost; say why instead of panicking.
                s.error = Some(e.to_string());
            }
        }
    }

    /// The state document for `expect: device`.
    pub fn state(&self) -> Value {
        let s = self.state.borrow();
        let (in_bowl, elsewhere) = s.bowls.count();
        let released = s.bowls.released();
        let now = self.handle.now();
        let motor = |b: Bowl| {
            let m = s.motors[b.index()];
            let current = if m.high {
                now.saturating_sub(m.since)
            } else {
                0
            };
            json!({
                "pin": if m.high { "high" } else { "low" },
                "turning": m.high && !m.jammed,
                "jammed": m.jammed,
                "runs": m.runs,
                "driven_ms": m.driven_ns.saturating_add(current) / 1_000_000,
            })
        };
        let bowl = |b: Bowl| {
            json!({
                "treats": in_bowl[b.index()],
                "released": released[b.index()],
            })
        };
        json!({
            "food_capacity": s.hopper.percent(),
            "hopper": {
                "treats": s.hopper.treats(),
                "capacity": s.hopper.capacity(),
                "missed": s.missed,
            },
            "motors": { "left": motor(Bowl::Left), "right": motor(Bowl::Right) },
            "bowls": { "left": bowl(Bowl::Left), "right": bowl(Bowl::Right) },
            "treats": {
                "released": released[0] + released[1],
                "in_bowls": in_bowl[0] + in_bowl[1],
                "elsewhere": elsewhere,
            },
            "error": s.error,
        })
    }
}
