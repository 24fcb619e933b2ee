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
//!
//! # Progress
//!
//! A run always moves on or ends. At one instant each task may run at most
//! [`executor::STEPS_PER_INSTANT`] times (polls plus zero-length sleeps), each
//! process may report work that many times, and the scheduler may come back to
//! the instant that many times; past any bound the run stops with
//! [`SimError::NoProgress`] naming the task or process and what it waits for.
//! When nothing at all is scheduled, [`Sim::run_until`] returns
//! [`RunStop::Idle`] and [`Sim::describe_waiting`] names every task left and
//! what it waits for. The bounds are counts, never wall time.

pub mod clock;
pub mod executor;
pub mod lockstep;
pub mod net;
pub mod physics;
pub mod rng;
pub mod time;
pub mod trace;
pub mod uart;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::Waker;

pub use executor::{STEPS_PER_INSTANT, TaskFailure, TaskId, TaskState, WaitOn};
pub use time::{MICROS, MILLIS, Nanos, SECONDS, Sleep, TimerToken, format_nanos};
pub use trace::{Trace, TraceError, TraceOutput, TraceRecord};

use executor::Executor;
use time::TimerQueue;
use trace::Recorder;

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
    /// Virtual time cannot advance: something runs again and again at one
    /// instant (see the crate docs, "Progress").
    #[error("no progress at {}: {detail}", format_nanos(*at))]
    NoProgress {
        /// The instant the run was stuck at.
        at: Nanos,
        /// What ran, how often, and what it waits for.
        detail: String,
    },
}

type BoxedFuture = std::pin::Pin<Box<dyn Future<Output = ()>>>;

struct Shared {
    now: Cell<Nanos>,
    timers: RefCell<TimerQueue>,
    seed: u64,
    trace: RefCell<Recorder>,
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

    /// How many trace records the run has made so far (whatever its output).
    pub fn trace_len(&self) -> u64 {
        self.shared.trace.borrow().count()
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
    /// The instant the counts below are for.
    instant: Nanos,
    /// Per process: times it did work at `instant`.
    process_steps: Vec<u64>,
    /// Times the scheduler came back to `instant` without time moving.
    returns_to_instant: u64,
}

impl Sim {
    /// A new world at virtual time 0 with the given seed; its trace is kept
    /// in memory ([`Sim::take_trace`]).
    pub fn new(seed: u64) -> Self {
        Self::with_recorder(seed, Recorder::default())
    }

    /// A new world whose trace goes to `output` (a file is created at once,
    /// under a temporary name until [`Sim::finish_trace`]).
    pub fn with_trace(seed: u64, output: &TraceOutput) -> Result<Self, TraceError> {
        Ok(Self::with_recorder(seed, Recorder::new(output)?))
    }

    fn with_recorder(seed: u64, recorder: Recorder) -> Self {
        Sim {
            handle: SimHandle {
                shared: Rc::new(Shared {
                    now: Cell::new(0),
                    timers: RefCell::new(TimerQueue::default()),
                    seed,
                    trace: RefCell::new(recorder),
                    spawn_queue: RefCell::new(Vec::new()),
                }),
            },
            executor: Executor::new(),
            processes: Vec::new(),
            progress: None,
            instant: 0,
            process_steps: Vec::new(),
            returns_to_instant: 0,
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
        self.process_steps.push(0);
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

    /// Every task still running and what it last waited for (described).
    pub fn waiting_tasks(&self) -> Vec<(String, String)> {
        self.executor
            .waiting()
            .into_iter()
            .map(|(name, waits)| (name, executor::describe_waits(&waits)))
            .collect()
    }

    /// The tasks still running and what they wait for, in one line (the
    /// first `limit`, then how many more).
    pub fn describe_waiting(&self, limit: usize) -> String {
        let waiting = self.waiting_tasks();
        let mut parts: Vec<String> = waiting
            .iter()
            .take(limit)
            .map(|(task, what)| format!("`{task}` waits for {what}"))
            .collect();
        if waiting.len() > limit {
            parts.push(format!("and {} more tasks", waiting.len() - limit));
        }
        if parts.is_empty() {
            return "no task is left".into();
        }
        parts.join("; ")
    }

    /// Takes the trace kept in memory so far out of the world (all records
    /// with [`TraceOutput::Memory`]; metadata only otherwise).
    pub fn take_trace(&mut self) -> Trace {
        self.handle.shared.trace.borrow_mut().take()
    }

    /// Sets a metadata record of the trace (replaces one of the same name).
    pub fn set_trace_metadata(
        &self,
        name: &str,
        values: std::collections::BTreeMap<String, String>,
    ) {
        self.handle
            .shared
            .trace
            .borrow_mut()
            .set_metadata(name, values);
    }

    /// Ends the trace: a streamed trace gets its metadata and is moved into
    /// place. Returns what is kept in memory (see [`Sim::take_trace`]).
    pub fn finish_trace(&mut self) -> Result<Trace, TraceError> {
        self.handle.shared.trace.borrow_mut().finish()
    }

    /// Resets the per-instant counts when time has moved.
    fn enter_instant(&mut self, now: Nanos) {
        if now != self.instant {
            self.instant = now;
            self.process_steps.iter_mut().for_each(|n| *n = 0);
            self.returns_to_instant = 0;
        }
    }

    fn no_progress(&self, detail: String) -> SimError {
        SimError::NoProgress {
            at: self.now(),
            detail: format!(
                "{detail} (at most {STEPS_PER_INSTANT} per instant); tasks: {}",
                self.describe_waiting(8)
            ),
        }
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
            if next == now {
                // Something is due at this very instant again: allowed, but
                // not without end.
                self.enter_instant(now);
                self.returns_to_instant += 1;
                if self.returns_to_instant > STEPS_PER_INSTANT {
                    let due: Vec<&str> = self
                        .processes
                        .iter_mut()
                        .filter_map(|(name, p)| {
                            p.next_due()
                                .is_some_and(|t| t <= now)
                                .then_some(name.as_str())
                        })
                        .collect();
                    let what = if due.is_empty() {
                        "timers keep falling due".to_owned()
                    } else {
                        format!("process {} keeps falling due", due.join(", "))
                    };
                    return Err(self.no_progress(format!(
                        "the scheduler came back to this instant {} times: {what}",
                        self.returns_to_instant
                    )));
                }
            }
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
            loop {
                match self.executor.poll_one(self.now()) {
                    Ok(true) => self.adopt_spawned(),
                    Ok(false) => break,
                    Err(busy) => {
                        let others: Vec<String> = self
                            .executor
                            .busiest(4)
                            .into_iter()
                            .filter(|(name, _)| *name != busy.task)
                            .take(3)
                            .map(|(name, n)| format!("`{name}` {n} times"))
                            .collect();
                        let also = if others.is_empty() {
                            String::new()
                        } else {
                            format!("; also running at this instant: {}", others.join(", "))
                        };
                        return Err(self.no_progress(format!(
                            "task `{}` ran {} times at this instant without virtual time \
                             moving on (a busy or retry loop that never waits for time to \
                             pass; it last waited for {}){also}",
                            busy.task,
                            busy.steps,
                            executor::describe_waits(&busy.waiting)
                        )));
                    }
                }
            }
            let now = self.now();
            self.enter_instant(now);
            let mut did = false;
            let mut hog = None;
            for (i, (name, process)) in self.processes.iter_mut().enumerate() {
                if process.next_due().is_some_and(|t| t <= now) && process.run_due(now)? {
                    did = true;
                    self.process_steps[i] += 1;
                    if self.process_steps[i] > STEPS_PER_INSTANT && hog.is_none() {
                        hog = Some(format!(
                            "process `{name}` did work {} times at this instant without \
                             virtual time moving on",
                            self.process_steps[i]
                        ));
                    }
                }
            }
            if let Some(detail) = hog {
                return Err(self.no_progress(detail));
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

    /// Runs `f` on `state` as task `name` until it finishes (at most `within`
    /// of virtual time from now, or until a task panics) and gives the state
    /// back if it finished. Tests drive a twin from the far end of its line
    /// this way, keeping what the host saw for their assertions.
    pub fn run_with<S: 'static>(
        &mut self,
        name: &str,
        within: Nanos,
        state: S,
        f: impl AsyncFnOnce(&mut S) + 'static,
    ) -> Result<Option<S>, SimError> {
        let limit = self.now().saturating_add(within);
        self.run_to_completion(name, limit, async move {
            let mut state = state;
            f(&mut state).await;
            state
        })
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

    /// A future that wakes itself at once, for ever: a busy task.
    async fn spin_forever() {
        std::future::poll_fn(|cx: &mut std::task::Context<'_>| {
            cx.waker().wake_by_ref();
            std::task::Poll::<()>::Pending
        })
        .await
    }

    #[test]
    fn progress_a_busy_task_fails_the_run_naming_it() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        sim.spawn("steady", async move { h.sleep(10 * SECONDS).await });
        let h = sim.handle();
        sim.spawn("retry loop", async move {
            h.sleep(2 * MILLIS).await;
            spin_forever().await
        });
        let err = sim.run_until(SECONDS, |_| false).unwrap_err();
        let SimError::NoProgress { at, detail } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*at, 2 * MILLIS);
        assert!(
            detail.contains("task `retry loop` ran 1000001 times at this instant"),
            "{detail}"
        );
        assert!(
            detail.contains("`steady` waits for a timer at 10.000000000s"),
            "{detail}"
        );
    }

    #[test]
    fn progress_a_loop_of_zero_length_sleeps_fails_the_run_naming_it() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        sim.spawn("poller", async move {
            h.sleep(MILLIS).await;
            // Waits for a flag only another task could set: never yields.
            loop {
                h.sleep(0).await;
            }
        });
        let err = sim.run_until(SECONDS, |_| false).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("no progress at 0.001000000s: task `poller` ran"),
            "{message}"
        );
        assert!(message.contains("zero-length sleeps"), "{message}");
    }

    #[test]
    fn progress_two_tasks_waking_each_other_fail_the_run() {
        let mut sim = Sim::new(1);
        let flag = Rc::new(Cell::new(false));
        for name in ["ping", "pong"] {
            let flag = flag.clone();
            let mine = name == "ping";
            sim.spawn(name, async move {
                std::future::poll_fn(move |cx| {
                    // Each hands the turn to the other and asks to run again.
                    flag.set(!mine);
                    cx.waker().wake_by_ref();
                    std::task::Poll::<()>::Pending
                })
                .await
            });
        }
        let err = sim.run_until(SECONDS, |_| false).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("ran 1000001 times"), "{message}");
        assert!(
            message.contains("also running at this instant: `p"),
            "{message}"
        );
    }

    struct Stuck {
        works: bool,
    }

    impl Process for Stuck {
        fn next_due(&mut self) -> Option<Nanos> {
            Some(0)
        }
        fn run_due(&mut self, _now: Nanos) -> Result<bool, SimError> {
            Ok(self.works)
        }
    }

    #[test]
    fn progress_a_process_that_never_moves_on_fails_the_run() {
        for (works, expected) in [
            (true, "process `stuck` did work 1000001 times"),
            (false, "process stuck keeps falling due"),
        ] {
            let mut sim = Sim::new(1);
            sim.add_process("stuck", Stuck { works });
            let err = sim.run_until(SECONDS, |_| false).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn progress_an_idle_world_names_its_tasks_and_what_they_wait_for() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let gate: Rc<RefCell<Option<std::task::Waker>>> = Rc::default();
        let g = gate.clone();
        sim.spawn("waiter", async move {
            h.sleep(3 * MILLIS).await;
            std::future::poll_fn(|cx| {
                *g.borrow_mut() = Some(cx.waker().clone());
                std::task::Poll::<()>::Pending
            })
            .await
        });
        assert_eq!(sim.run_until(SECONDS, |_| false).unwrap(), RunStop::Idle);
        assert_eq!(sim.now(), 3 * MILLIS);
        assert_eq!(
            sim.describe_waiting(8),
            "`waiter` waits for something the simulation does not schedule \
             (no timer, message or byte)"
        );
    }

    #[test]
    fn busy_counts_start_again_when_time_moves() {
        // A task that runs many times per instant, but each instant fewer
        // than the bound, is fine however long the run.
        let mut sim = Sim::new(1);
        let h = sim.handle();
        sim.spawn("chatty", async move {
            for _ in 0..3 {
                for _ in 0..(STEPS_PER_INSTANT / 2) {
                    h.sleep(0).await;
                }
                h.sleep(MILLIS).await;
            }
        });
        assert_eq!(sim.run_until(SECONDS, |_| false).unwrap(), RunStop::Idle);
        assert_eq!(sim.now(), 3 * MILLIS);
    }

    #[test]
    fn sleeps_past_the_end_of_time_saturate() {
        let mut sim = Sim::new(1);
        let h = sim.handle();
        let woke = Rc::new(Cell::new(false));
        let w = woke.clone();
        sim.spawn("long", async move {
            h.sleep(5).await;
            h.sleep(u64::MAX - 2).await;
            w.set(true);
        });
        assert_eq!(
            sim.run_until(u64::MAX - 1, |_| false).unwrap(),
            RunStop::Limit
        );
        assert_eq!(sim.now(), u64::MAX - 1);
        assert!(!woke.get(), "the sleep ends at the end of time, not before");
    }
}
