//! twinrig's world: one scheduler that owns virtual time, a deterministic
//! executor for device tasks, virtual peripherals (UART, network link to the
//! broker), the Bevy + rapier3d physics world and the trace recorder.
//!
//! # How time moves
//!
//! [`Sim::run_until`] polls every ready task and every due [`Process`] until
//! nothing is left to do at the current instant, then jumps virtual time to
//! the next pause point: the earliest timer (a delay, a byte arriving on a UART,
//! a message arriving over a link) or process deadline (a physics step). Nothing
//! here reads the wall clock; the same seed gives the same run.

pub mod clock;
pub mod executor;
pub mod lockstep;
pub mod net;
pub mod physics;
pub mod rng;
pub mod robots;
pub mod time;
pub mod trace;
pub mod uart;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::Waker;

pub use executor::{TaskFailure, TaskId, TaskState};
pub use time::{MICROS, MILLIS, Nanos, SECONDS, Sleep, TimerToken, format_nanos};
pub use trace::{Trace, TraceRecord};

use executor::Executor;
use time::TimerQueue;

/// A component that runs at times of its own choosing (physics steps, link
/// deliveries) rather than as an async task.
pub trait Process {
    /// The next virtual time this process must run at, if it has anything scheduled.
    fn next_due(&mut self) -> Option<Nanos>;

    /// Runs everything due at or before `now`. Returns true if it did anything,
    /// so that the scheduler polls tasks again before moving time on.
    fn run_due(&mut self, now: Nanos) -> Result<bool, SimError>;
}

/// Errors that stop a run.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SimError {
    /// A process (broker, physics) failed.
    #[error("{process} failed at {}: {message}", format_nanos(*at))]
    Process {
        /// Which process.
        process: String,
        /// What went wrong.
        message: String,
        /// Virtual time.
        at: Nanos,
    },
}

type BoxedFuture = std::pin::Pin<Box<dyn Future<Output = ()>>>;

struct Shared {
    now: Cell<Nanos>,
    timers: RefCell<TimerQueue>,
    seed: u64,
    trace: RefCell<Trace>,
    spawn_queue: RefCell<Vec<(String, BoxedFuture)>>,
}

/// A cheap, clonable handle on the world's clock, timers, randomness and trace.
/// Peripherals and device adapters keep one.
#[derive(Clone)]
pub struct SimHandle {
    shared: Rc<Shared>,
}

impl SimHandle {
    /// Current virtual time.
    pub fn now(&self) -> Nanos {
        self.shared.now.get()
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// A future that completes at virtual time `deadline`.
    pub fn sleep_until(&self, deadline: Nanos) -> Sleep {
        Sleep::new(self.clone(), deadline)
    }

    /// A future that completes `duration` nanoseconds from now.
    pub fn sleep(&self, duration: Nanos) -> Sleep {
        self.sleep_until(self.now().saturating_add(duration))
    }

    /// Wakes `waker` at virtual time `at`; dropping the token cancels it.
    pub fn wake_at(&self, at: Nanos, waker: &Waker) -> TimerToken {
        self.shared.timers.borrow_mut().schedule(at, waker)
    }

    /// A random stream of its own for the component called `name`, derived
    /// from the run's seed, so adding a component does not change the others.
    pub fn rng(&self, name: &str) -> rng::SimRng {
        rng::stream(self.shared.seed, name)
    }

    /// Records a JSON message on a trace channel at the current virtual time.
    pub fn trace(&self, channel: &str, message: serde_json::Value) {
        let now = self.now();
        self.shared.trace.borrow_mut().record(now, channel, message);
    }

    /// Spawns a task; it first runs at the current virtual time.
    pub fn spawn(&self, name: impl Into<String>, future: impl Future<Output = ()> + 'static) {
        self.shared
            .spawn_queue
            .borrow_mut()
            .push((name.into(), Box::pin(future)));
    }

    /// A clock bound to virtual time, for device code (`twinrig_hal::Clock`).
    pub fn clock(&self) -> clock::SimClock {
        clock::SimClock::new(self.clone())
    }

    /// A delay bound to virtual time (`embedded_hal_async::delay::DelayNs`).
    pub fn delay(&self) -> clock::SimDelay {
        clock::SimDelay::new(self.clone())
    }
}

/// Why [`Sim::run_until`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStop {
    /// The stop condition became true.
    Condition,
    /// Virtual time reached the limit.
    Limit,
    /// Nothing is scheduled any more: no timer, no process deadline, no ready task.
    Idle,
}

/// The world: clock, executor and processes.
pub struct Sim {
    handle: SimHandle,
    executor: Executor,
    processes: Vec<(String, Box<dyn Process>)>,
    progress: Option<Box<dyn FnMut(Nanos)>>,
}

impl Sim {
    /// A new world at virtual time 0 with the given seed.
    pub fn new(seed: u64) -> Self {
        Sim {
            handle: SimHandle {
                shared: Rc::new(Shared {
                    now: Cell::new(0),
                    timers: RefCell::new(TimerQueue::default()),
                    seed,
                    trace: RefCell::new(Trace::default()),
                    spawn_queue: RefCell::new(Vec::new()),
                }),
            },
            executor: Executor::new(),
            processes: Vec::new(),
            progress: None,
        }
    }

    /// The handle peripherals and adapters use.
    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }

    /// Current virtual time.
    pub fn now(&self) -> Nanos {
        self.handle.now()
    }

    /// Spawns a task and returns its id.
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        future: impl Future<Output = ()> + 'static,
    ) -> TaskId {
        self.executor.spawn(name.into(), Box::pin(future))
    }

    /// Adds a process; processes run in the order they were added.
    pub fn add_process(&mut self, name: impl Into<String>, process: impl Process + 'static) {
        self.processes.push((name.into(), Box::new(process)));
    }

    /// Called with the current virtual time after each jump (for progress bars).
    pub fn on_progress(&mut self, f: impl FnMut(Nanos) + 'static) {
        self.progress = Some(Box::new(f));
    }

    /// The state of a task.
    pub fn task_state(&self, id: TaskId) -> TaskState {
        self.executor.state(id)
    }

    /// Tasks that panicked so far.
    pub fn failures(&self) -> &[TaskFailure] {
        &self.executor.failures
    }

    /// Takes the recorded trace out of the world.
    pub fn take_trace(&mut self) -> Trace {
        std::mem::take(&mut *self.handle.shared.trace.borrow_mut())
    }

    /// Runs tasks and processes until `stop` holds, virtual time reaches `limit`,
    /// or nothing is left scheduled. `stop` is checked whenever the world is idle
    /// at an instant, and after any task panics.
    pub fn run_until(
        &mut self,
        limit: Nanos,
        mut stop: impl FnMut(&Sim) -> bool,
    ) -> Result<RunStop, SimError> {
        loop {
            self.settle()?;
            if stop(self) {
                return Ok(RunStop::Condition);
            }
            let next_timer = self.handle.shared.timers.borrow_mut().next_deadline();
            let next_process = self
                .processes
                .iter_mut()
                .filter_map(|(_, p)| p.next_due())
                .min();
            let next = match (next_timer, next_process) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => return Ok(RunStop::Idle),
                },
            };
            let now = self.now();
            if next > limit {
                if limit > now {
                    self.handle.shared.now.set(limit);
                }
                return Ok(RunStop::Limit);
            }
            let next = next.max(now);
            self.handle.shared.now.set(next);
            self.handle.shared.timers.borrow_mut().fire_due(next);
            if let Some(progress) = &mut self.progress {
                progress(next);
            }
        }
    }

    /// Polls ready tasks and due processes until nothing more happens at this instant.
    fn settle(&mut self) -> Result<(), SimError> {
        loop {
            self.adopt_spawned();
            while self.executor.poll_one(self.now()) {
                self.adopt_spawned();
            }
            let now = self.now();
            let mut did = false;
            for (_, process) in &mut self.processes {
                if process.next_due().is_some_and(|t| t <= now) {
                    did |= process.run_due(now)?;
                }
            }
            if !did
                && !self.executor.has_ready()
                && self.handle.shared.spawn_queue.borrow().is_empty()
            {
                return Ok(());
            }
        }
    }

    fn adopt_spawned(&mut self) {
        let spawned = std::mem::take(&mut *self.handle.shared.spawn_queue.borrow_mut());
        for (name, future) in spawned {
            self.executor.spawn(name, future);
        }
    }

    /// Spawns `future` and runs the world until it finishes (or `limit`
    /// passes, or a task panics); returns its output if it finished.
    pub fn run_to_completion<T: 'static>(
        &mut self,
        name: &str,
        limit: Nanos,
        future: impl Future<Output = T> + 'static,
    ) -> Result<Option<T>, SimError> {
        let out = Rc::new(RefCell::new(None));
        let slot = out.clone();
        self.spawn(name, async move {
            let value = future.await;
            *slot.borrow_mut() = Some(value);
        });
        let done = out.clone();
        self.run_until(limit, move |s| {
            done.borrow().is_some() || !s.failures().is_empty()
        })?;
        Ok(out.borrow_mut().take())
    }

    /// Drops all tasks and processes' futures (ends the run).
    pub fn shutdown(&mut self) {
        self.executor.clear();
        self.handle.shared.spawn_queue.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn sleeps_jump_time_and_wake_in_order() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let log = Rc::new(RefCell::new(Vec::new()));
        for (name, d) in [("a", 30 * MILLIS), ("b", 10 * MILLIS), ("c", 10 * MILLIS)] {
            let h = h.clone();
            let log = log.clone();
            sim.spawn(name, async move {
                h.sleep(d).await;
                log.borrow_mut().push((name, h.now()));
            });
        }
        let stop = sim.run_until(SECONDS, |_| false).unwrap();
        assert_eq!(stop, RunStop::Idle);
        assert_eq!(
            *log.borrow(),
            vec![("b", 10 * MILLIS), ("c", 10 * MILLIS), ("a", 30 * MILLIS)]
        );
    }

    #[test]
    fn limit_stops_time_exactly() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        sim.spawn("long", async move { h.sleep(10 * SECONDS).await });
        assert_eq!(
            sim.run_until(2 * SECONDS, |_| false).unwrap(),
            RunStop::Limit
        );
        assert_eq!(sim.now(), 2 * SECONDS);
    }

    #[test]
    fn a_panicking_task_is_reported_and_others_go_on() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let h2 = h.clone();
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        sim.spawn("boom", async move {
            h.sleep(5 * MILLIS).await;
            panic!("motor driver fault");
        });
        sim.spawn("steady", async move {
            h2.sleep(8 * MILLIS).await;
            d.set(true);
        });
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        sim.run_until(SECONDS, |_| false).unwrap();
        std::panic::set_hook(prev);
        assert!(done.get());
        assert_eq!(sim.failures().len(), 1);
        assert_eq!(sim.failures()[0].message, "motor driver fault");
        assert_eq!(sim.failures()[0].at, 5 * MILLIS);
    }

    #[test]
    fn dropped_timeouts_do_not_create_pause_points() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        sim.spawn("select", async move {
            let long = h.sleep(100 * SECONDS);
            drop(long);
            // A Sleep registers only when polled; poll one then drop it.
            let mut s = Box::pin(h.sleep(50 * SECONDS));
            std::future::poll_fn(|cx| {
                let _ = s.as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await;
            drop(s);
        });
        assert_eq!(
            sim.run_until(1000 * SECONDS, |_| false).unwrap(),
            RunStop::Idle
        );
        assert_eq!(sim.now(), 0);
    }
}
