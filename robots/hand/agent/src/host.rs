//! What the agent's two host processes share (the stdin console and the
//! live MQTT agent): the wall clock, the inbox the input side fills while
//! the worker spells, and the worker's job source over it.
//!
//! This module reads the wall clock: it drives real hardware in real time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustypot::servo::feetech::scs0009::Scs0009Controller;
use serialport::SerialPort;

use crate::driver::ThreadSleep;
use crate::payload::{ActionError, ActionInbox, Job};
use crate::plan::Timing;
use crate::rustypot_driver::RustypotDriver;
use crate::service::JobSource;
use crate::spell::Hand;

/// The hand on a real serial port: rustypot's SCS0009 controller (protocol
/// v1), thread sleeps, the wall clock, state timestamps in Unix seconds.
pub(crate) fn hand_on(
    port: Box<dyn SerialPort>,
    timing: Timing,
) -> Hand<RustypotDriver, ThreadSleep, WallClock> {
    let controller = Scs0009Controller::new()
        .with_protocol_v1()
        .with_serial_port(port);
    let mut hand = Hand::new(
        RustypotDriver::new(controller),
        ThreadSleep,
        WallClock(Instant::now()),
    );
    hand.epoch_s = unix_now();
    hand.timing = timing;
    hand
}

/// How often the worker looks at the stop flag while it waits for a job.
const POLL: Duration = Duration::from_millis(20);

/// `twinrig_hal::Clock` on the wall clock, from its creation.
pub(crate) struct WallClock(pub Instant);

impl twinrig_hal::Clock for WallClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Unix seconds now (0 before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The inbox the input side fills (it parses, queues and rejects at once,
/// while the worker spells) and the worker drains; `ended` once the input
/// has no more.
#[derive(Default)]
pub(crate) struct SharedInbox {
    inbox: Mutex<(ActionInbox, bool)>,
    arrived: Condvar,
}

impl SharedInbox {
    /// Offers a payload to the inbox (see [`ActionInbox::offer`]).
    pub(crate) fn offer(&self, payload: &[u8]) -> Result<u64, ActionError> {
        let result = self.lock().0.offer(payload);
        self.arrived.notify_all();
        result
    }

    /// No more input: the worker stops once the queue is drained.
    pub(crate) fn end(&self) {
        self.lock().1 = true;
        self.arrived.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (ActionInbox, bool)> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Jobs for the worker; `None` once stopped, or once the input has ended and
/// the queue is drained.
pub(crate) struct QueuedJobs {
    pub shared: Arc<SharedInbox>,
    pub stop: Arc<AtomicBool>,
}

impl JobSource for QueuedJobs {
    fn next_job(&mut self) -> Option<Job> {
        let mut guard = self.shared.lock();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return None;
            }
            let (inbox, ended) = &mut *guard;
            if let Some(job) = inbox.next_job() {
                return Some(job);
            }
            if *ended {
                return None;
            }
            guard = self
                .shared
                .arrived
                .wait_timeout(guard, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
