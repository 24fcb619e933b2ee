//! Virtual time: u64 nanoseconds since the start of a run, and the timer queue.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Virtual nanoseconds since the run started.
pub type Nanos = u64;

/// One microsecond in [`Nanos`].
pub const MICROS: Nanos = 1_000;
/// One millisecond in [`Nanos`].
pub const MILLIS: Nanos = 1_000_000;
/// One second in [`Nanos`].
pub const SECONDS: Nanos = 1_000_000_000;

/// Formats virtual time as seconds with nanosecond precision, e.g. `1.250000000s`.
pub fn format_nanos(t: Nanos) -> String {
    format!("{}.{:09}s", t / SECONDS, t % SECONDS)
}

/// A registered wake-up. Dropping the token cancels it, so abandoned timeouts
/// do not create pause points.
pub struct TimerToken {
    slot: Rc<TimerSlot>,
}

impl TimerToken {
    /// Replaces the waker to call when the timer fires.
    pub fn set_waker(&self, waker: &Waker) {
        let mut w = self.slot.waker.borrow_mut();
        match w.as_ref() {
            Some(old) if old.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        }
    }
}

impl Drop for TimerToken {
    fn drop(&mut self) {
        self.slot.cancelled.set(true);
        self.slot.waker.borrow_mut().take();
    }
}

struct TimerSlot {
    waker: RefCell<Option<Waker>>,
    cancelled: Cell<bool>,
}

struct TimerEntry {
    at: Nanos,
    seq: u64,
    slot: Rc<TimerSlot>,
}

impl PartialEq for TimerEntry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for TimerEntry {}
impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TimerEntry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Timers ordered by (deadline, registration order): ties fire in the order they
/// were set, which keeps wake order deterministic.
#[derive(Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<TimerEntry>>,
    next_seq: u64,
}

impl TimerQueue {
    pub(crate) fn schedule(&mut self, at: Nanos, waker: &Waker) -> TimerToken {
        let slot = Rc::new(TimerSlot {
            waker: RefCell::new(Some(waker.clone())),
            cancelled: Cell::new(false),
        });
        self.heap.push(Reverse(TimerEntry {
            at,
            seq: self.next_seq,
            slot: slot.clone(),
        }));
        self.next_seq += 1;
        TimerToken { slot }
    }

    /// The earliest live deadline, dropping cancelled entries on the way.
    pub(crate) fn next_deadline(&mut self) -> Option<Nanos> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.slot.cancelled.get() {
                self.heap.pop();
            } else {
                return Some(top.at);
            }
        }
        None
    }

    /// Wakes every timer due at or before `now`, in deadline then registration order.
    pub(crate) fn fire_due(&mut self, now: Nanos) -> usize {
        let mut fired = 0;
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.at > now {
                break;
            }
            let Reverse(entry) = self.heap.pop().expect("peeked");
            if entry.slot.cancelled.get() {
                continue;
            }
            if let Some(w) = entry.slot.waker.borrow_mut().take() {
                w.wake();
                fired += 1;
            }
        }
        fired
    }
}

/// A future that completes when virtual time reaches its deadline.
pub struct Sleep {
    handle: crate::SimHandle,
    deadline: Nanos,
    token: Option<TimerToken>,
}

impl Sleep {
    pub(crate) fn new(handle: crate::SimHandle, deadline: Nanos) -> Self {
        Sleep {
            handle,
            deadline,
            token: None,
        }
    }

    /// The virtual time this sleep ends at.
    pub fn deadline(&self) -> Nanos {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.handle.now() >= self.deadline {
            // A sleep that never waited: counted, so a task spinning on
            // zero-length sleeps at one instant is caught (see executor).
            if self.token.is_none() && !crate::executor::count_instant_sleep() {
                crate::executor::note_wait(crate::executor::WaitOn::Event(
                    "nothing: it loops on zero-length sleeps",
                ));
                return Poll::Pending;
            }
            self.token = None;
            return Poll::Ready(());
        }
        crate::executor::note_wait(crate::executor::WaitOn::Time(self.deadline));
        match &self.token {
            Some(token) => token.set_waker(cx.waker()),
            None => {
                let token = self.handle.wake_at(self.deadline, cx.waker());
                self.token = Some(token);
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_nanos_as_seconds() {
        assert_eq!(format_nanos(1_250_000_000), "1.250000000s");
        assert_eq!(format_nanos(7), "0.000000007s");
    }
}
