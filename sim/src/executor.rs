//! A small deterministic single-threaded executor for device tasks.
//!
//! Why our own: tasks must be polled in a reproducible order and the scheduler
//! must know when every task is idle before it moves virtual time on. Ready
//! tasks run in FIFO order of their wake-ups; ties cannot happen because there
//! is one thread. A task that panics is caught, marked failed with its panic
//! message and the virtual time, and the others keep running.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use crate::time::Nanos;

type BoxedTask = Pin<Box<dyn Future<Output = ()>>>;

thread_local! {
    static POLLING_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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
}

impl Executor {
    pub(crate) fn new() -> Self {
        Executor {
            tasks: Vec::new(),
            states: Vec::new(),
            ready: Arc::new(ReadyQueue::default()),
            failures: Vec::new(),
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
        });
        self.states.push(TaskState::Running);
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

    /// Polls one ready task, if any. Returns false when none was ready.
    pub(crate) fn poll_one(&mut self, now: Nanos) -> bool {
        let next = self
            .ready
            .queue
            .lock()
            .expect("ready queue poisoned")
            .pop_front();
        let Some(id) = next else { return false };
        let slot = &mut self.tasks[id];
        slot.waker.queued.store(false, Ordering::Release);
        let Some(future) = slot.future.as_mut() else {
            return true;
        };
        let waker = Waker::from(slot.waker.clone());
        let mut cx = Context::from_waker(&waker);
        POLLING_TASK.with(|p| p.set(true));
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
        POLLING_TASK.with(|p| p.set(false));
        match polled {
            Ok(Poll::Pending) => {}
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
        true
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
