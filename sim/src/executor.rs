//! A small deterministic single-threaded executor for device tasks.
//!
//! Why our own: tasks must be polled in a reproducible order and the scheduler
//! must know when every task is idle before it moves virtual time on. Ready
//! tasks run in FIFO order of their wake-ups; ties cannot happen because there
//! is one thread. A task that panics is caught, marked failed with its panic
//! message and the virtual time, and the others keep running.
//!
//! Progress: a task that is polled again and again at one instant (it wakes
//! itself, or two tasks wake each other, or it completes zero-length sleeps in
//! a loop) never lets virtual time advance. The executor counts each task's
//! polls and zero-length sleeps per instant and reports the task once the
//! count passes [`STEPS_PER_INSTANT`] (a count, never wall time, so the
//! verdict is the same on every machine). Every task also keeps what it last
//! waited for ([`WaitOn`], noted by the simulation's own futures), so a run
//! that can no longer move names its tasks and what they wait for.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use crate::time::{Nanos, format_nanos};

type BoxedTask = Pin<Box<dyn Future<Output = ()>>>;

/// How many times one task may run at one virtual instant (polls plus
/// zero-length sleeps) before the run is stopped as making no progress.
///
/// Sized far above what any real workload does: across every shipped
/// scenario (fleets of 400 devices included) and `twinrig ota`, no task runs
/// more than 9 times at one instant (measured), since a task drains its
/// inbox in one poll. A task stuck in a loop reaches the bound in about a
/// second of wall time even in a debug build.
pub const STEPS_PER_INSTANT: u64 = 1_000_000;

thread_local! {
    static POLLING_TASK: Cell<bool> = const { Cell::new(false) };
    /// Zero-length sleeps completed during the current poll.
    static INSTANT_SLEEPS: Cell<u64> = const { Cell::new(0) };
    /// What the task being polled waits for, noted by the futures it polled.
    static WAIT_NOTES: RefCell<Vec<WaitOn>> = const { RefCell::new(Vec::new()) };
}

/// What a task waits for, as the simulation's own futures note it when they
/// return `Pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOn {
    /// A timer at this virtual time.
    Time(Nanos),
    /// An event described by a fixed text ("news from the broker").
    Event(&'static str),
    /// An event about something named ("an MQTT message for", "rvr-1").
    Named(&'static str, Rc<str>),
}

impl std::fmt::Display for WaitOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitOn::Time(t) => write!(f, "a timer at {}", format_nanos(*t)),
            WaitOn::Event(what) => f.write_str(what),
            WaitOn::Named(what, name) => write!(f, "{what} {name}"),
        }
    }
}

/// Notes what the task being polled waits for (call when returning `Pending`).
/// Outside a task's poll it does nothing.
pub fn note_wait(on: WaitOn) {
    if polling_task() {
        WAIT_NOTES.with(|n| n.borrow_mut().push(on));
    }
}

/// Counts a sleep that completed without waiting. Returns false once the
/// task being polled has done this [`STEPS_PER_INSTANT`] times in this poll:
/// the sleep must then stay pending, so that a task spinning on zero-length
/// sleeps inside one poll returns to the executor, which reports it.
pub(crate) fn count_instant_sleep() -> bool {
    if !polling_task() {
        return true;
    }
    INSTANT_SLEEPS.with(|c| {
        let n = c.get() + 1;
        c.set(n);
        n <= STEPS_PER_INSTANT
    })
}

/// Describes a task's waits for a report.
pub fn describe_waits(waits: &[WaitOn]) -> String {
    if waits.is_empty() {
        return "something the simulation does not schedule (no timer, message or byte)".into();
    }
    let parts: Vec<String> = waits.iter().map(ToString::to_string).collect();
    parts.join(" or ")
}

/// True while this thread is polling a simulated task. A panic hook uses it to
/// stay quiet about device panics (the runner reports them with the scenario)
/// while still printing the harness's own.
pub fn polling_task() -> bool {
    POLLING_TASK.with(|p| p.get())
}

/// Identifies a spawned task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub usize);

/// A task that ended by panicking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// The name the task was spawned with.
    pub task: String,
    /// The panic message.
    pub message: String,
    /// Virtual time of the panic.
    pub at: Nanos,
}

#[derive(Default)]
struct ReadyQueue {
    queue: Mutex<VecDeque<usize>>,
}

struct TaskWaker {
    id: usize,
    queued: AtomicBool,
    ready: Arc<ReadyQueue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready
                .queue
                .lock()
                .expect("ready queue poisoned")
                .push_back(self.id);
        }
    }
}

struct TaskSlot {
    name: String,
    future: Option<BoxedTask>,
    waker: Arc<TaskWaker>,
    /// What the task waited for when it last returned `Pending`.
    waiting: Vec<WaitOn>,
}

/// A task that ran [`STEPS_PER_INSTANT`] times at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// The task's name.
    pub task: String,
    /// Polls plus zero-length sleeps at this instant.
    pub steps: u64,
    /// What it waited for when it last returned `Pending`.
    pub waiting: Vec<WaitOn>,
}

/// Status of a task, for the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Still has work to do (ready or waiting).
    Running,
    /// Returned.
    Finished,
    /// Panicked.
    Failed,
}

pub(crate) struct Executor {
    tasks: Vec<TaskSlot>,
    states: Vec<TaskState>,
    ready: Arc<ReadyQueue>,
    pub(crate) failures: Vec<TaskFailure>,
    /// The instant the step counts are for.
    instant: Nanos,
    /// Per task: polls and zero-length sleeps at `instant`.
    steps: Vec<u64>,
    /// Tasks with a non-zero count (to reset them when time moves).
    counted: Vec<usize>,
}

impl Executor {
    pub(crate) fn new() -> Self {
        Executor {
            tasks: Vec::new(),
            states: Vec::new(),
            ready: Arc::new(ReadyQueue::default()),
            failures: Vec::new(),
            instant: 0,
            steps: Vec::new(),
            counted: Vec::new(),
        }
    }

    pub(crate) fn spawn(&mut self, name: String, future: BoxedTask) -> TaskId {
        let id = self.tasks.len();
        let waker = Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(false),
            ready: self.ready.clone(),
        });
        self.tasks.push(TaskSlot {
            name,
            future: Some(future),
            waker: waker.clone(),
            waiting: Vec::new(),
        });
        self.states.push(TaskState::Running);
        self.steps.push(0);
        waker.wake_by_ref();
        TaskId(id)
    }

    pub(crate) fn state(&self, id: TaskId) -> TaskState {
        self.states[id.0]
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self
            .ready
            .queue
            .lock()
            .expect("ready queue poisoned")
            .is_empty()
    }

    /// Polls one ready task, if any. Returns false when none was ready, and
    /// the task when it has now run [`STEPS_PER_INSTANT`] times at `now`.
    pub(crate) fn poll_one(&mut self, now: Nanos) -> Result<bool, Busy> {
        if now != self.instant {
            for id in self.counted.drain(..) {
                self.steps[id] = 0;
            }
            self.instant = now;
        }
        let next = self
            .ready
            .queue
            .lock()
            .expect("ready queue poisoned")
            .pop_front();
        let Some(id) = next else { return Ok(false) };
        let slot = &mut self.tasks[id];
        slot.waker.queued.store(false, Ordering::Release);
        let Some(future) = slot.future.as_mut() else {
            return Ok(true);
        };
        let waker = Waker::from(slot.waker.clone());
        let mut cx = Context::from_waker(&waker);
        INSTANT_SLEEPS.with(|c| c.set(0));
        WAIT_NOTES.with(|n| n.borrow_mut().clear());
        POLLING_TASK.with(|p| p.set(true));
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
        POLLING_TASK.with(|p| p.set(false));
        if self.steps[id] == 0 {
            self.counted.push(id);
        }
        let steps = self.steps[id] + 1 + INSTANT_SLEEPS.with(Cell::get);
        self.steps[id] = steps;
        match polled {
            Ok(Poll::Pending) => {
                // Swap rather than take: both buffers are reused poll after poll.
                WAIT_NOTES.with(|n| std::mem::swap(&mut *n.borrow_mut(), &mut slot.waiting));
            }
            Ok(Poll::Ready(())) => {
                slot.future = None;
                self.states[id] = TaskState::Finished;
            }
            Err(payload) => {
                slot.future = None;
                self.states[id] = TaskState::Failed;
                self.failures.push(TaskFailure {
                    task: slot.name.clone(),
                    message: panic_message(payload.as_ref()),
                    at: now,
                });
            }
        }
        if steps > STEPS_PER_INSTANT && self.states[id] == TaskState::Running {
            return Err(Busy {
                task: self.tasks[id].name.clone(),
                steps,
                waiting: self.tasks[id].waiting.clone(),
            });
        }
        Ok(true)
    }

    /// Every task still running, with what it last waited for.
    pub(crate) fn waiting(&self) -> Vec<(String, Vec<WaitOn>)> {
        self.tasks
            .iter()
            .zip(&self.states)
            .filter(|(_, s)| **s == TaskState::Running)
            .map(|(t, _)| (t.name.clone(), t.waiting.clone()))
            .collect()
    }

    /// The tasks that ran most at the current instant, busiest first (at most `n`).
    pub(crate) fn busiest(&self, n: usize) -> Vec<(String, u64)> {
        let mut ids: Vec<usize> = self.counted.clone();
        ids.sort_by_key(|&id| (std::cmp::Reverse(self.steps[id]), id));
        ids.into_iter()
            .take(n)
            .map(|id| (self.tasks[id].name.clone(), self.steps[id]))
            .collect()
    }

    /// Drops every task's future (its resources go with it).
    pub(crate) fn clear(&mut self) {
        for slot in &mut self.tasks {
            slot.future = None;
        }
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
