//! `twinrig serve`: live mode. A simulated robot served on a pseudo-terminal,
//! so programs outside the process that speak its protocol over a serial port
//! (a Raspberry Pi client, a serial terminal, the Sphero Python SDK pointed at
//! the device path) can drive it.
//!
//! # Wall clock
//!
//! This is the one place in twinrig where the wall clock paces virtual time.
//! Scenario runs never read it (the only other wall-clock reading is the
//! broker watchdog, which never changes results); here, each turn of the serve
//! loop runs the world up to `virtual start + wall time elapsed`
//! ([`std::time::Instant`]), so the robot moves in real time. Live runs are
//! therefore not deterministic and record no trace (the trace is discarded as
//! it is made, so memory stays flat however long the robot is served).
//!
//! # Wiring
//!
//! ```text
//! host program <-> pty slave (/dev/pts/N, raw) <-> pty master <-> inbox/outbox
//!     <-> UART end A ("the serial cable", baud-timed in virtual time) <-> end B <-> twin
//! ```
//!
//! Any device kind whose [`DeviceKind::serve`] says how can be served: the
//! kind builds its twin on end B of a [`Uart::pair`] (the RVR: a physics
//! world and the Nordic/ST processors; the hand: the SCS0009 bus). A task reads
//! end A's RX (what the twin sends) into an outbox; bytes read from the pty
//! master go into an inbox that another task writes into end A's TX, so the
//! baud-rate timing of the UART model still applies. Each loop turn: run the
//! world to the wall-clock target, write the outbox to the master
//! (non-blocking), then wait up to 1 ms in poll(2) for host bytes.
//!
//! Host bytes are stamped with the virtual time that matches the wall clock
//! when they were read, and enter the line at that time, not when the next
//! loop turn happens to run the world: the host's own spacing between writes
//! survives (the servo bus decides from it whether a servo misses a packet),
//! and bytes written together stay together. `--log FILE` records every
//! packet both ways ([`packet_log`]).
//!
//! Back-pressure: at most [`INBOX_CAP`] host bytes wait for the simulated
//! line; beyond that the loop stops reading the master, so a host that writes
//! faster than the baud rate blocks in its own `write`, as on a real port. Bytes
//! for the host that the pty cannot take wait in the outbox up to
//! [`OUTBOX_CAP`]; beyond that they are dropped and counted (a receiver
//! overrun, as a real host UART driver would have).

mod aws_api;
pub mod cloud;
pub mod http;
pub mod mqtt;
mod packet_log;
mod pty;
pub mod state;
pub mod transport;

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use embedded_io_async::{Read, Write};
use serde_json::Value;
use twinrig_kind::serve::{LineDirection, ServeModel};
use twinrig_sim::uart::{Uart, UartConfig};
use twinrig_sim::{Nanos, SECONDS, Sim, SimError, format_nanos};

use crate::devices::{self, DeviceKind, KindError};
use packet_log::PacketLog;
use pty::{Cable, Chunk, open_pty, read_from_host, write_to_host};

/// Host bytes that may wait for the simulated line before the loop stops
/// reading the pty (back-pressure to the host's `write`).
pub const INBOX_CAP: usize = 4096;

/// Bytes for the host that may wait for room in the pty before new ones are
/// dropped (and counted in [`ServeSummary::bytes_dropped_to_host`]).
pub const OUTBOX_CAP: usize = 64 * 1024;

/// A robot `twinrig serve` can serve: a device kind with a [`ServeModel`].
#[derive(Clone, Copy)]
pub struct ServeRobot {
    kind: &'static dyn DeviceKind,
    model: &'static dyn ServeModel,
}

impl ServeRobot {
    /// Every kind in this build that can be served, by name.
    pub fn names() -> Vec<&'static str> {
        devices::kinds()
            .iter()
            .filter(|k| k.serve().is_some())
            .map(|k| k.name())
            .collect()
    }

    /// The kind's name.
    pub fn name(self) -> &'static str {
        self.kind.name()
    }

    /// How it is served.
    pub fn model(self) -> &'static dyn ServeModel {
        self.model
    }
}

impl fmt::Debug for ServeRobot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServeRobot({})", self.name())
    }
}

impl PartialEq for ServeRobot {
    fn eq(&self, other: &ServeRobot) -> bool {
        self.name() == other.name()
    }
}

impl FromStr for ServeRobot {
    type Err = ServeError;

    fn from_str(s: &str) -> Result<Self, ServeError> {
        devices::kind(s)
            .and_then(|kind| kind.serve().map(|model| ServeRobot { kind, model }))
            .ok_or_else(|| ServeError::UnknownRobot(s.to_string()))
    }
}

/// How to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Baud rate of the simulated UART between the pty and the robot (default
    /// 115200, the RVR's). Bytes cross it at this rate in virtual time, and the
    /// pty reports it as its speed when it is a standard rate.
    pub baud: u32,
    /// Stop after this much wall time (None: only when the stop flag is set).
    pub duration: Option<Duration>,
    /// The world's seed (live runs are not reproducible; it seeds the twin's
    /// random streams all the same).
    pub seed: u64,
    /// Write every packet both ways to this file (see [`packet_log`]).
    pub log: Option<PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            baud: 115_200,
            duration: None,
            seed: 0,
            log: None,
        }
    }
}

impl ServeOptions {
    /// Options for `robot` at its own line speed.
    pub fn for_robot(robot: ServeRobot) -> Self {
        ServeOptions {
            baud: robot.model.default_baud(),
            ..ServeOptions::default()
        }
    }

    /// The line to print once `robot` is served on `device`.
    pub fn ready_line(&self, robot: ServeRobot, device: &Path) -> String {
        format!(
            "{} on {} ({} 8N1 emulated); Ctrl-C to stop",
            robot.model.title(),
            device.display(),
            self.baud
        )
    }
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A robot name `serve` does not know.
    #[error("unknown robot `{0}`: `twinrig serve` can serve {names}", names = ServeRobot::names().join(", "))]
    UnknownRobot(String),
    /// No transport was chosen.
    #[error("choose a transport: --pty (the only one so far)")]
    NoTransport,
    /// An option cannot describe a real setup.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The pseudo-terminal could not be opened or set up.
    #[error("pseudo-terminal: cannot {action}: {source}")]
    Pty {
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The twin could not be built.
    #[error("cannot build the world: {0}")]
    Setup(#[from] KindError),
    /// The packet log could not be written.
    #[error("packet log {}: {source}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The world stopped with an error.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// A simulated task panicked (a twin bug); the robot cannot be served on.
    #[error(transparent)]
    TaskFailed(#[from] TaskPanicked),
}

/// What happened while serving.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeSummary {
    /// The pty slave the robot was served on.
    pub device: PathBuf,
    /// Wall time served.
    pub wall: Duration,
    /// Virtual time the world ran (follows `wall`).
    pub virtual_ns: Nanos,
    /// Bytes read from the host (pty master).
    pub bytes_from_host: u64,
    /// Bytes written to the host.
    pub bytes_to_host: u64,
    /// Bytes for the host dropped because the pty and the outbox were full.
    pub bytes_dropped_to_host: u64,
    /// The served robot's state at the end (a JSON document, as `expect:
    /// device` reads devices).
    pub robot: Value,
    /// The same in one sentence, for people.
    pub robot_line: String,
}

impl fmt::Display for ServeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "served {} for {:.1} s ({} virtual): {} bytes from the host, {} to it ({} dropped); {}",
            self.device.display(),
            self.wall.as_secs_f64(),
            format_nanos(self.virtual_ns),
            self.bytes_from_host,
            self.bytes_to_host,
            self.bytes_dropped_to_host,
            self.robot_line,
        )
    }
}

/// Parses a duration argument (`--duration`, `--timeout`): the scenario
/// files' grammar (`90s`, `500ms`, `1.5min`, `1h`), and, on the command line
/// only, plain seconds (`30`, `2.5`), as `sleep` and `timeout` take them.
pub fn parse_duration(s: &str) -> Result<Duration, DurationArgError> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| DurationArgError::Seconds(s.to_owned()));
    }
    s.parse::<twinrig_kind::Duration>()
        .map(|d| Duration::from_nanos(d.nanos()))
        .map_err(DurationArgError::Units)
}

/// A duration argument that is neither seconds nor a scenario duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationArgError {
    /// A number of seconds that is negative or not finite.
    #[error("`{0}`: seconds must be a finite number >= 0")]
    Seconds(String),
    /// Not a duration with units either.
    #[error("{0} (give seconds, e.g. `30`, or units, e.g. `90s`)")]
    Units(twinrig_kind::ParseDurationError),
}

/// A simulated task panicked (a twin bug): serving cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task `{task}` panicked at {}: {message}", format_nanos(*at))]
pub struct TaskPanicked {
    /// The task's name.
    pub task: String,
    /// The panic message.
    pub message: String,
    /// Virtual time of the panic.
    pub at: Nanos,
}

/// The world's first task panic, as an error.
fn first_panic(sim: &Sim) -> Result<(), TaskPanicked> {
    match sim.failures().first() {
        Some(f) => Err(TaskPanicked {
            task: f.task.clone(),
            message: f.message.clone(),
            at: f.at,
        }),
        None => Ok(()),
    }
}

/// Keeps a timer pending so every turn of a serve loop reaches its
/// wall-clock target (the world's clock stops where nothing is scheduled).
fn keep_time_moving(sim: &mut Sim) {
    let anchor = sim.handle();
    sim.spawn("wall-clock anchor", async move {
        loop {
            anchor.sleep(3600 * SECONDS).await;
        }
    });
}

/// Serves `robot` on a fresh pseudo-terminal, paced by the wall clock, until
/// `stop` is set or `options.duration` elapses. `on_ready` gets the slave's
/// path (e.g. `/dev/pts/7`) once the robot is ready for a host to open it.
///
/// Runs the world on the calling thread (the world is not `Send`); check
/// `stop` from a signal handler or another thread.
pub fn serve_robot_pty(
    robot: ServeRobot,
    options: ServeOptions,
    stop: &AtomicBool,
    on_ready: impl FnOnce(&Path),
) -> Result<ServeSummary, ServeError> {
    let uart_config = UartConfig {
        baud: options.baud,
        ..UartConfig::default()
    };
    uart_config
        .validate()
        .map_err(|e| ServeError::InvalidOption(format!("--baud: {e}")))?;
    let pty = open_pty(options.baud)?;

    let mut sim = Sim::new(options.seed);
    let (host_end, robot_end, _control) = Uart::pair(&sim.handle(), "served-line", uart_config);
    let served = robot.model.build(&mut sim, robot_end)?;

    let log = match &options.log {
        Some(path) => Some(
            PacketLog::create(path, robot.model, sim.now()).map_err(|source| ServeError::Log {
                path: path.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let log = Rc::new(RefCell::new(log));

    let cable = Rc::new(RefCell::new(Cable::default()));
    let (mut rx, mut tx) = host_end.split();
    let (c, l, h) = (cable.clone(), log.clone(), sim.handle());
    sim.spawn("pty <- UART", async move {
        let mut buf = [0u8; 256];
        loop {
            // A break (fault injection only) has nothing to forward to a pty.
            if let Ok(n) = rx.read(&mut buf).await {
                c.borrow_mut().queue_for_host(&buf[..n]);
                if let Some(log) = l.borrow_mut().as_mut() {
                    log.bytes(h.now(), LineDirection::ToHost, &buf[..n]);
                }
            }
        }
    });
    let (c, l, h) = (cable.clone(), log.clone(), sim.handle());
    sim.spawn("pty -> UART", async move {
        loop {
            let chunk: Chunk = poll_fn(|cx| {
                let mut c = c.borrow_mut();
                match c.inbox.pop_front() {
                    Some(chunk) => {
                        c.inbox_len -= chunk.bytes.len();
                        Poll::Ready(chunk)
                    }
                    None => {
                        c.writer = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            })
            .await;
            // The bytes enter the line when they reached the pty on the wall
            // clock, so the host's own pauses between writes survive (a pause
            // decides whether a servo misses a packet); a chunk that waited
            // for the line goes at once.
            h.sleep_until(chunk.at).await;
            if let Some(log) = l.borrow_mut().as_mut() {
                log.bytes(h.now(), LineDirection::ToRobot, &chunk.bytes);
            }
            // Waits while the simulated TX buffer is full (baud timing); never fails.
            let _ = tx.write_all(&chunk.bytes).await;
        }
    });
    keep_time_moving(&mut sim);

    on_ready(&pty.path);

    let wall_start = Instant::now();
    let virtual_start = sim.now();
    let virtual_now = || {
        virtual_start
            .saturating_add(u64::try_from(wall_start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    };
    let mut read_buf = [0u8; 1024];
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut elapsed = wall_start.elapsed();
        let done = match options.duration {
            Some(d) if elapsed >= d => {
                elapsed = d;
                true
            }
            _ => stopping,
        };
        let target =
            virtual_start.saturating_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        sim.run_until(target, |_| false)?;
        first_panic(&sim)?;
        drop(sim.take_trace());
        write_to_host(&pty.master, &mut cable.borrow_mut())?;
        if let (Some(l), Some(path)) = (log.borrow_mut().as_mut(), &options.log) {
            l.flush().map_err(|source| ServeError::Log {
                path: path.clone(),
                source,
            })?;
        }
        if done {
            break;
        }
        read_from_host(&pty.master, &cable, &mut read_buf, virtual_now)?;
    }

    let wall = wall_start.elapsed();
    let c = cable.borrow();
    let summary = ServeSummary {
        device: pty.path.clone(),
        wall,
        virtual_ns: sim.now() - virtual_start,
        bytes_from_host: c.from_host,
        bytes_to_host: c.to_host,
        bytes_dropped_to_host: c.dropped_to_host,
        robot: served.report(),
        robot_line: served.describe(),
    };
    drop(c);
    sim.shutdown();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::termios::BaudRate;
    use twinrig_hal_std::serial::baud_rate as tty_speed;

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5min"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("-1").is_err());
        let soon = parse_duration("soon").unwrap_err().to_string();
        assert!(
            soon.contains("`soon`") && soon.contains("e.g. `90s`"),
            "{soon}"
        );
        // Units of the scenario grammar only: `m` is not minutes there.
        assert!(
            parse_duration("1m30s")
                .unwrap_err()
                .to_string()
                .contains("unit")
        );
    }

    fn robot(name: &str) -> ServeRobot {
        name.parse().unwrap()
    }

    #[test]
    fn only_kinds_that_can_be_served_are() {
        assert_eq!(robot("rvr").name(), "rvr");
        assert_eq!(robot("hand").name(), "hand");
        // A kind without a serve model is refused like a name nobody knows.
        for name in ["toaster", "echo", "cat_feeder"] {
            let e = name.parse::<ServeRobot>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("unknown robot `{name}`: `twinrig serve` can serve rvr, hand")
            );
        }
        assert_eq!(ServeOptions::for_robot(robot("hand")).baud, 1_000_000);
        assert_eq!(ServeOptions::for_robot(robot("rvr")).baud, 115_200);
    }

    #[test]
    fn standard_rates_set_the_pty_speed() {
        assert_eq!(tty_speed(115_200), Some(BaudRate::B115200));
        assert_eq!(tty_speed(1_000), None);
    }

    #[test]
    fn a_bad_baud_is_rejected_before_a_pty_is_opened() {
        let stop = AtomicBool::new(false);
        let options = ServeOptions {
            baud: 0,
            ..ServeOptions::default()
        };
        let e = serve_robot_pty(robot("rvr"), options, &stop, |_| panic!("not ready")).unwrap_err();
        assert!(matches!(e, ServeError::InvalidOption(_)), "{e}");
    }
}
