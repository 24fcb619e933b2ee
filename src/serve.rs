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
//! Back-pressure: at most [`INBOX_CAP`] host bytes wait for the simulated
//! line; beyond that the loop stops reading the master, so a host that writes
//! faster than the baud rate blocks in its own `write`, as on a real port. Bytes
//! for the host that the pty cannot take wait in the outbox up to
//! [`OUTBOX_CAP`]; beyond that they are dropped and counted (a receiver
//! overrun, as a real host UART driver would have).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use embedded_io_async::{Read, Write};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{self, BaudRate, SetArg};
use twinrig_sim::physics::{PhysicsConfig, PhysicsWorld};
use twinrig_sim::robots::hand::{BusConfig, BusStats, ServoBus, ServoSnapshot};
use twinrig_sim::robots::rvr::drive::PlanarPose;
use twinrig_sim::robots::rvr::{DriveParams, RvrBody, RvrConfig, RvrStats, RvrTwin};
use twinrig_sim::uart::{Uart, UartConfig, UartPort};
use twinrig_sim::{Nanos, SECONDS, Sim, SimError, format_nanos};

/// Host bytes that may wait for the simulated line before the loop stops
/// reading the pty (back-pressure to the host's `write`).
pub const INBOX_CAP: usize = 4096;

/// Bytes for the host that may wait for room in the pty before new ones are
/// dropped (and counted in [`ServeSummary::bytes_dropped_to_host`]).
pub const OUTBOX_CAP: usize = 64 * 1024;

/// The longest the loop waits for host bytes before running the world again.
const TICK: Duration = Duration::from_millis(1);

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
            ServeRobot::Hand => twinrig_sim::robots::hand::HAND_BAUD,
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
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            baud: 115_200,
            duration: None,
            seed: 0,
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

fn pty_error(action: &'static str) -> impl FnOnce(Errno) -> ServeError {
    move |e| ServeError::Pty {
        action,
        source: io::Error::from(e),
    }
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

/// Parses a `--duration`: plain seconds (`30`, `2.5`) or a duration with
/// units (`90s`, `1m30s`, `500ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{s}`: seconds must be a finite number >= 0"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}`: {e} (give seconds, e.g. `30`, or units, e.g. `90s`)"))
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

/// The pty pair; the slave stays open for the whole run so the master never
/// sees a hang-up between host programs and the raw settings persist.
struct Pty {
    master: OwnedFd,
    _slave: OwnedFd,
    path: PathBuf,
}

fn open_pty(baud: u32) -> Result<Pty, ServeError> {
    let pair = nix::pty::openpty(None, None).map_err(pty_error("open a pty pair"))?;
    let mut t = termios::tcgetattr(&pair.slave).map_err(pty_error("read the slave's settings"))?;
    termios::cfmakeraw(&mut t);
    if let Some(speed) = tty_speed(baud) {
        termios::cfsetspeed(&mut t, speed).map_err(pty_error("set the slave's speed"))?;
    }
    termios::tcsetattr(&pair.slave, SetArg::TCSANOW, &t)
        .map_err(pty_error("put the slave in raw mode"))?;
    let flags =
        fcntl(&pair.master, FcntlArg::F_GETFL).map_err(pty_error("read the master's flags"))?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(&pair.master, FcntlArg::F_SETFL(flags))
        .map_err(pty_error("make the master non-blocking"))?;
    let path = nix::unistd::ttyname(&pair.slave).map_err(pty_error("name the slave"))?;
    Ok(Pty {
        master: pair.master,
        _slave: pair.slave,
        path,
    })
}

/// The termios speed for `baud`, when it is a standard rate (a pty ignores
/// it; host programs that read it back see the emulated rate).
fn tty_speed(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        1200 => BaudRate::B1200,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19_200 => BaudRate::B19200,
        38_400 => BaudRate::B38400,
        57_600 => BaudRate::B57600,
        115_200 => BaudRate::B115200,
        230_400 => BaudRate::B230400,
        460_800 => BaudRate::B460800,
        500_000 => BaudRate::B500000,
        921_600 => BaudRate::B921600,
        1_000_000 => BaudRate::B1000000,
        1_500_000 => BaudRate::B1500000,
        2_000_000 => BaudRate::B2000000,
        _ => return None,
    })
}

/// The byte queues between the pty and the simulated cable.
#[derive(Default)]
struct Cable {
    /// Host -> robot, waiting for end A's TX.
    inbox: VecDeque<u8>,
    /// Robot -> host, waiting for room in the pty.
    outbox: VecDeque<u8>,
    /// The TX task, parked while the inbox is empty.
    writer: Option<Waker>,
    from_host: u64,
    to_host: u64,
    dropped_to_host: u64,
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

    let cable = Rc::new(RefCell::new(Cable::default()));
    let (mut rx, mut tx) = host_end.split();
    let c = cable.clone();
    sim.spawn("pty <- UART", async move {
        let mut buf = [0u8; 256];
        loop {
            // A break (fault injection only) has nothing to forward to a pty.
            if let Ok(n) = rx.read(&mut buf).await {
                let mut c = c.borrow_mut();
                let room = OUTBOX_CAP - c.outbox.len();
                let keep = n.min(room);
                c.outbox.extend(&buf[..keep]);
                c.dropped_to_host += (n - keep) as u64;
            }
        }
    });
    let c = cable.clone();
    sim.spawn("pty -> UART", async move {
        let mut chunk = Vec::with_capacity(256);
        loop {
            poll_fn(|cx| {
                let mut c = c.borrow_mut();
                if c.inbox.is_empty() {
                    c.writer = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            chunk.clear();
            {
                let mut c = c.borrow_mut();
                let n = c.inbox.len().min(256);
                chunk.extend(c.inbox.drain(..n));
            }
            // Waits while the simulated TX buffer is full (baud timing); never fails.
            let _ = tx.write_all(&chunk).await;
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
        if done {
            break;
        }
        read_from_host(&pty.master, &cable, &mut read_buf)?;
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

/// Writes as much of the outbox as the pty takes now.
fn write_to_host(master: &OwnedFd, cable: &mut Cable) -> Result<(), ServeError> {
    while !cable.outbox.is_empty() {
        let (front, _) = cable.outbox.as_slices();
        match nix::unistd::write(master, front) {
            Ok(0) | Err(Errno::EAGAIN) => return Ok(()),
            Ok(n) => {
                cable.outbox.drain(..n);
                cable.to_host += n as u64;
            }
            Err(Errno::EINTR) => {}
            // EIO: no slave open (cannot happen while we hold it); try again later.
            Err(Errno::EIO) => return Ok(()),
            Err(e) => return Err(pty_error("write to the master")(e)),
        }
    }
    Ok(())
}

/// Waits up to one tick for host bytes and moves what arrived into the inbox.
fn read_from_host(
    master: &OwnedFd,
    cable: &Rc<RefCell<Cable>>,
    buf: &mut [u8],
) -> Result<(), ServeError> {
    let room = INBOX_CAP.saturating_sub(cable.borrow().inbox.len());
    if room == 0 {
        std::thread::sleep(TICK);
        return Ok(());
    }
    let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::ZERO);
    match poll(&mut fds, timeout) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => return Err(pty_error("wait for the master")(e)),
    }
    let readable = fds[0]
        .revents()
        .is_some_and(|r| r.contains(PollFlags::POLLIN));
    if !readable {
        if fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
        {
            // No slave open: poll would return at once; pace the loop instead.
            std::thread::sleep(TICK);
        }
        return Ok(());
    }
    let mut room = room;
    while room > 0 {
        let want = room.min(buf.len());
        match nix::unistd::read(master, &mut buf[..want]) {
            Ok(0) | Err(Errno::EAGAIN) | Err(Errno::EIO) => break,
            Ok(n) => {
                let mut c = cable.borrow_mut();
                c.inbox.extend(&buf[..n]);
                c.from_host += n as u64;
                room -= n;
                if let Some(w) = c.writer.take() {
                    w.wake();
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(pty_error("read from the master")(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
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
