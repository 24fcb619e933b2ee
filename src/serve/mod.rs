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
//! # Wiring (RVR; the hand's servo bus is wired the same way, the bus twin on end B)
//!
//! ```text
//! host program <-> pty slave (/dev/pts/N, raw) <-> pty master <-> inbox/outbox
//!     <-> UART end A ("the serial cable", baud-timed in virtual time) <-> end B <-> RvrTwin
//! ```
//!
//! The world holds a physics world (default [`PhysicsConfig`]), an RVR body at
//! the origin facing world +y (so the locator's frame and the world's agree),
//! and the Nordic/ST processors twin on end B of a [`Uart::pair`]. A task reads
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

mod packet_log;
mod pty;

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
use hand_twin::{BusConfig, BusStats, ServoBus, ServoSnapshot};
use rvr_twin::drive::PlanarPose;
use rvr_twin::{DriveParams, RvrBody, RvrConfig, RvrStats, RvrTwin};
use twinrig_sim::physics::{PhysicsConfig, PhysicsWorld};
use twinrig_sim::uart::{Uart, UartConfig, UartPort};
use twinrig_sim::{Nanos, SECONDS, Sim, SimError, format_nanos};

use packet_log::{Direction, PacketLog};
use pty::{Cable, Chunk, open_pty, read_from_host, write_to_host};

/// Host bytes that may wait for the simulated line before the loop stops
/// reading the pty (back-pressure to the host's `write`).
pub const INBOX_CAP: usize = 4096;

/// Bytes for the host that may wait for room in the pty before new ones are
/// dropped (and counted in [`ServeSummary::bytes_dropped_to_host`]).
pub const OUTBOX_CAP: usize = 64 * 1024;

/// Robots `twinrig serve` can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeRobot {
    /// The Sphero RVR: physics body + Nordic/ST processors answering the packet
    /// protocol on a UART.
    Rvr,
    /// The Amazing Hand's servo bus: 8 SCS0009 twins (ids 1..=8) answering the
    /// SCS protocol, for a host driver such as rustypot.
    Hand,
}

impl ServeRobot {
    /// Every robot name `serve` accepts.
    pub const NAMES: &[&str] = &["rvr", "hand"];

    /// The robot's own line speed: 115200 for the RVR, 1 Mbaud for the servo bus.
    pub fn default_baud(self) -> u32 {
        match self {
            ServeRobot::Rvr => 115_200,
            ServeRobot::Hand => hand_twin::HAND_BAUD,
        }
    }
}

impl FromStr for ServeRobot {
    type Err = ServeError;

    fn from_str(s: &str) -> Result<Self, ServeError> {
        match s {
            "rvr" => Ok(ServeRobot::Rvr),
            "hand" => Ok(ServeRobot::Hand),
            other => Err(ServeError::UnknownRobot(other.to_string())),
        }
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
            baud: robot.default_baud(),
            ..ServeOptions::default()
        }
    }

    /// The line to print once `robot` is served on `device`.
    pub fn ready_line(&self, robot: ServeRobot, device: &Path) -> String {
        let what = match robot {
            ServeRobot::Rvr => "RVR twin",
            ServeRobot::Hand => "Amazing Hand servo bus (SCS0009 ids 1-8)",
        };
        format!(
            "{what} on {} ({} 8N1 emulated); Ctrl-C to stop",
            device.display(),
            self.baud
        )
    }
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A robot name `serve` does not know.
    #[error("unknown robot `{0}`: `twinrig serve` can serve {names}", names = ServeRobot::NAMES.join(", "))]
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
    /// The world could not be built.
    #[error("cannot build the world: {0}")]
    Setup(String),
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
    #[error("task `{task}` panicked at {}: {message}", format_nanos(*at))]
    TaskFailed {
        /// The task's name.
        task: String,
        /// The panic message.
        message: String,
        /// Virtual time of the panic.
        at: Nanos,
    },
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
    /// What the served robot did.
    pub robot: RobotReport,
}

/// The served robot's state at the end.
#[derive(Debug, Clone, PartialEq)]
pub enum RobotReport {
    /// The RVR.
    Rvr {
        /// Pose when serving began.
        start_pose: PlanarPose,
        /// Pose when serving ended.
        final_pose: PlanarPose,
        /// The twin's counters.
        stats: RvrStats,
    },
    /// The hand's servo bus.
    Hand {
        /// Bus counters.
        stats: BusStats,
        /// Each servo at the end.
        servos: Vec<ServoSnapshot>,
    },
}

impl ServeSummary {
    /// The RVR's straight-line distance between the start and final
    /// positions, m (None for other robots).
    pub fn moved_m(&self) -> Option<f32> {
        match &self.robot {
            RobotReport::Rvr {
                start_pose,
                final_pose,
                ..
            } => Some((final_pose.x - start_pose.x).hypot(final_pose.y - start_pose.y)),
            RobotReport::Hand { .. } => None,
        }
    }
}

impl fmt::Display for ServeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "served {} for {:.1} s ({} virtual): {} bytes from the host, {} to it ({} dropped); ",
            self.device.display(),
            self.wall.as_secs_f64(),
            format_nanos(self.virtual_ns),
            self.bytes_from_host,
            self.bytes_to_host,
            self.bytes_dropped_to_host,
        )?;
        match &self.robot {
            RobotReport::Rvr {
                final_pose: p,
                stats,
                ..
            } => write!(
                f,
                "{} commands, {} responses; the RVR moved {:.3} m, now at x {:.3} m, y {:.3} m, yaw {:.1} deg",
                stats.commands,
                stats.responses,
                self.moved_m().unwrap_or_default(),
                p.x,
                p.y,
                p.yaw.to_degrees(),
            ),
            RobotReport::Hand { stats, servos } => write!(
                f,
                "{} packets, {} replies, {} missed, {} bad checksums; torque on {}/8; angles {}",
                stats.packets,
                stats.replies,
                stats.missed,
                stats.bad_checksums,
                servos.iter().filter(|s| s.torque).count(),
                servos
                    .iter()
                    .map(|s| format!("{}:{:.1}", s.id, s.position_deg))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
    }
}

/// Parses a duration argument (`--duration`, `--timeout`): the scenario
/// files' grammar (`90s`, `500ms`, `1.5min`, `1h`), and, on the command line
/// only, plain seconds (`30`, `2.5`), as `sleep` and `timeout` take them.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{s}`: seconds must be a finite number >= 0"));
    }
    s.parse::<twinrig_kind::Duration>()
        .map(|d| Duration::from_nanos(d.nanos()))
        .map_err(|e| format!("{e} (give seconds, e.g. `30`, or units, e.g. `90s`)"))
}

/// The served robot, kept to report on at the end.
enum Served {
    Rvr {
        twin: RvrTwin,
        start_pose: PlanarPose,
    },
    Hand {
        bus: ServoBus,
    },
}

impl Served {
    fn report(&self) -> RobotReport {
        match self {
            Served::Rvr { twin, start_pose } => RobotReport::Rvr {
                start_pose: *start_pose,
                final_pose: twin.body().planar(),
                stats: twin.stats(),
            },
            Served::Hand { bus } => RobotReport::Hand {
                stats: bus.stats(),
                servos: bus.snapshot(),
            },
        }
    }
}

/// Builds `robot` in `sim`; returns the host's end of its line.
fn build_robot(
    robot: ServeRobot,
    sim: &mut Sim,
    uart_config: UartConfig,
) -> Result<(UartPort, Served), ServeError> {
    let h = sim.handle();
    match robot {
        ServeRobot::Rvr => {
            let physics = PhysicsWorld::new(&h, PhysicsConfig::default())
                .map_err(|e| ServeError::Setup(e.to_string()))?;
            sim.add_process("physics", physics.clone());
            let body = RvrBody::spawn(&physics, "rvr", 0.0, 0.0, 90.0, DriveParams::default())
                .map_err(|e| ServeError::Setup(e.to_string()))?;
            let (host_end, rvr_end, _control) = Uart::pair(&h, "rvr-uart", uart_config);
            let (rrx, rtx) = rvr_end.split();
            let twin = RvrTwin::spawn(&h, "rvr", body, rrx, rtx, RvrConfig::default());
            let start_pose = twin.body().planar();
            Ok((host_end, Served::Rvr { twin, start_pose }))
        }
        ServeRobot::Hand => {
            // The bus at the served baud rate (a host may open it at another
            // rate only if it also sets the servos' baud register: not modelled).
            let (host_end, bus_end, _control) = Uart::pair(&h, "hand-bus", uart_config);
            let (brx, btx) = bus_end.split();
            let bus = ServoBus::spawn(&h, "hand", brx, btx, BusConfig::default());
            Ok((host_end, Served::Hand { bus }))
        }
    }
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
    let (host_end, served) = build_robot(robot, &mut sim, uart_config)?;

    let log =
        match &options.log {
            Some(path) => Some(PacketLog::create(path, robot, sim.now()).map_err(|source| {
                ServeError::Log {
                    path: path.clone(),
                    source,
                }
            })?),
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
                    log.bytes(h.now(), Direction::ToHost, &buf[..n]);
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
                log.bytes(h.now(), Direction::ToRobot, &chunk.bytes);
            }
            // Waits while the simulated TX buffer is full (baud timing); never fails.
            let _ = tx.write_all(&chunk.bytes).await;
        }
    });
    // Keeps a timer pending so every run reaches its wall-clock target even if
    // the twin ever had nothing scheduled.
    let anchor = sim.handle();
    sim.spawn("wall-clock anchor", async move {
        loop {
            anchor.sleep(3600 * SECONDS).await;
        }
    });

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
        if let Some(f) = sim.failures().first() {
            return Err(ServeError::TaskFailed {
                task: f.task.clone(),
                message: f.message.clone(),
                at: f.at,
            });
        }
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
    };
    drop(c);
    sim.shutdown();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::pty::tty_speed;
    use super::*;
    use nix::sys::termios::BaudRate;

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5min"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("-1").is_err());
        let soon = parse_duration("soon").unwrap_err();
        assert!(
            soon.contains("`soon`") && soon.contains("e.g. `90s`"),
            "{soon}"
        );
        // Units of the scenario grammar only: `m` is not minutes there.
        assert!(parse_duration("1m30s").unwrap_err().contains("unit"));
    }

    #[test]
    fn only_known_robots_are_served() {
        assert_eq!("rvr".parse::<ServeRobot>().ok(), Some(ServeRobot::Rvr));
        assert_eq!("hand".parse::<ServeRobot>().ok(), Some(ServeRobot::Hand));
        let e = "toaster".parse::<ServeRobot>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown robot `toaster`: `twinrig serve` can serve rvr, hand"
        );
        assert_eq!(ServeOptions::for_robot(ServeRobot::Hand).baud, 1_000_000);
        assert_eq!(ServeOptions::for_robot(ServeRobot::Rvr).baud, 115_200);
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
        let e =
            serve_robot_pty(ServeRobot::Rvr, options, &stop, |_| panic!("not ready")).unwrap_err();
        assert!(matches!(e, ServeError::InvalidOption(_)), "{e}");
    }
}
