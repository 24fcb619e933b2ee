//! The agent on a desk: a real serial port (the hand's USB adapter, or the
//! pty of `twinrig serve hand --pty`), actions read as lines, states written
//! as JSON lines, stopped by a flag (SIGINT/SIGTERM in the `hand-agent`
//! binary). The MQTT transport is replaced by the lines; everything behind
//! it (inbox, worker, fingerspell, rustypot, shutdown) is the same code the
//! harness runs.
//!
//! This is the one part of the crate that reads the wall clock: it drives
//! real hardware in real time.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustypot::servo::feetech::scs0009::Scs0009Controller;
use serde_json::json;
use serialport::SerialPort;

use crate::agent::OfflineModel;
use crate::driver::ThreadSleep;
use crate::payload::{ActionInbox, Job};
use crate::plan::Timing;
use crate::rustypot_driver::RustypotDriver;
use crate::service::{JobSource, ServiceSummary, serve};
use crate::spell::Hand;
use crate::state::{StateMessage, StateSink, state_topic};
use crate::worker::Worker;

/// How often the worker looks at the stop flag while it waits for a line.
const POLL: Duration = Duration::from_millis(20);

/// `twinrig_hal::Clock` on the wall clock, from process start.
struct WallClock(Instant);

impl twinrig_hal::Clock for WallClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

type SharedOut = Arc<Mutex<Box<dyn Write + Send>>>;

/// Writes a state as a JSON line: `{"topic": ".../state", "payload": {...}}`.
fn write_state(out: &SharedOut, topic: &str, state: &StateMessage) {
    let line = json!({ "topic": topic, "payload": state });
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    // A closed output loses the line, never the hand's shutdown.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

struct LineSink {
    topic: String,
    out: SharedOut,
}

impl StateSink for LineSink {
    fn publish(&mut self, state: &StateMessage) {
        write_state(&self.out, &self.topic, state);
    }
}

/// The inbox the input thread fills (the MQTT side: it parses, queues and
/// rejects at once, while the worker spells) and the worker drains.
#[derive(Default)]
struct Shared {
    inbox: Mutex<(ActionInbox, bool)>,
    arrived: Condvar,
}

/// Jobs for the worker; `None` once stopped, or once the input has ended and
/// the queue is drained.
struct LineJobs {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl JobSource for LineJobs {
    fn next_job(&mut self) -> Option<Job> {
        let mut guard = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Settings of a console run.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Device name for the state topic.
    pub device: String,
    /// Timing (use [`Timing::without_bus_pauses`] to see the twin miss commands).
    pub timing: Timing,
}

/// Runs the agent on `port` until `stop` is set or `input` ends: each input
/// line is an action payload (JSON with `sentence`, or plain text). Torque is
/// switched on at start and off at the end.
pub fn run_console(
    port: Box<dyn SerialPort>,
    input: impl BufRead + Send + 'static,
    output: Box<dyn Write + Send>,
    stop: Arc<AtomicBool>,
    config: ConsoleConfig,
) -> ServiceSummary {
    let topic = state_topic(&config.device);
    let out: SharedOut = Arc::new(Mutex::new(output));
    let shared = Arc::new(Shared::default());
    let (reader_shared, reader_out, reader_topic) = (shared.clone(), out.clone(), topic.clone());
    // The input thread ends with the input; one blocked in a read at exit is harmless.
    std::thread::spawn(move || {
        for line in input.lines() {
            let Ok(line) = line else { break };
            let mut guard = reader_shared
                .inbox
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Err(e) = guard.0.offer(line.as_bytes()) {
                write_state(&reader_out, &reader_topic, &e.to_state(unix_now()));
            }
            reader_shared.arrived.notify_all();
        }
        reader_shared
            .inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1 = true;
        reader_shared.arrived.notify_all();
    });
    let controller = Scs0009Controller::new()
        .with_protocol_v1()
        .with_serial_port(port);
    let mut hand = Hand::new(
        RustypotDriver::new(controller),
        ThreadSleep,
        WallClock(Instant::now()),
    );
    hand.epoch_s = unix_now();
    hand.timing = config.timing;
    let sink = LineSink {
        topic: topic.clone(),
        out: out.clone(),
    };
    let mut worker = Worker::new(hand, OfflineModel::default(), sink);
    let mut jobs = LineJobs { shared, stop };
    serve(&mut worker, &mut jobs, None)
}
