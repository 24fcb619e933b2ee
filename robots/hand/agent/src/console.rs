//! The agent on a desk: a real serial port (the hand's USB adapter, or the
//! pty of `twinrig serve hand --pty`), actions read as lines, states written
//! as JSON lines, stopped by a flag (SIGINT/SIGTERM in the `hand-agent`
//! binary). The MQTT transport is replaced by the lines; everything behind
//! it (inbox, worker, fingerspell, rustypot, shutdown) is the same code the
//! harness runs.
//!
//! It reads the wall clock ([`crate::host`]): it drives real hardware in
//! real time.

use serde_json::json;
use serialport::SerialPort;
use std::io::{BufRead, Write};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::agent::OfflineModel;
use crate::host::{QueuedJobs, SharedInbox, hand_on, unix_now};
use crate::plan::Timing;
use crate::service::{ServiceSummary, serve};
use crate::state::{StateMessage, StateSink, state_topic};
use crate::worker::Worker;

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
    let shared = Arc::new(SharedInbox::default());
    let (reader_shared, reader_out, reader_topic) = (shared.clone(), out.clone(), topic.clone());
    // The input thread ends with the input; one blocked in a read at exit is harmless.
    std::thread::spawn(move || {
        for line in input.lines() {
            let Ok(line) = line else { break };
            if let Err(e) = reader_shared.offer(line.as_bytes()) {
                write_state(&reader_out, &reader_topic, &e.to_state(unix_now()));
            }
        }
        reader_shared.end();
    });
    let hand = hand_on(port, config.timing);
    let sink = LineSink {
        topic: topic.clone(),
        out: out.clone(),
    };
    let mut worker = Worker::new(hand, OfflineModel::default(), sink);
    let mut jobs = QueuedJobs { shared, stop };
    serve(&mut worker, &mut jobs, None)
}
