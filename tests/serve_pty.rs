//! `twinrig serve rvr|hand --pty`, in process: a host program opens the
//! printed pty slave and speaks the robot's protocol: the RVR protocol to the
//! RVR twin, and rustypot (the real driver, on a real `serialport` TTY) to the
//! hand's servo bus.
//!
//! Live mode runs on the wall clock, so this test reads it too, but only to
//! bound waits (generous deadlines); it asserts nothing about timing.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::PtyServer;
use nix::fcntl::OFlag;
use nix::sys::termios::{self, SetArg};
use rvr_protocol::{AddressStyle, Command, Packet, Parser, Response};
use twinrig::serve::{ServeOptions, ServeRobot};

/// The host side: a raw, non-blocking tty and a packet parser.
struct Host {
    tty: File,
    parser: Parser,
    got: Vec<Packet>,
}

impl Host {
    fn open(path: &Path) -> Host {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let mut t = termios::tcgetattr(&tty).expect("tcgetattr");
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(&tty, SetArg::TCSANOW, &t).expect("tcsetattr");
        Host {
            tty,
            parser: Parser::new(),
            got: Vec::new(),
        }
    }

    fn send(&mut self, command: Command, seq: u8) {
        let frame = command
            .to_packet(seq, AddressStyle::TargetAndSource)
            .expect("encodes")
            .to_frame()
            .expect("frames");
        self.tty.write_all(frame.as_bytes()).expect("write frame");
    }

    /// Reads until a response with sequence `seq` arrives, or panics after `limit`.
    fn response(&mut self, seq: u8, limit: Duration) -> Packet {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 256];
        loop {
            if let Some(p) = self
                .got
                .iter()
                .find(|p| p.header.is_response() && p.header.sequence == seq)
            {
                return *p;
            }
            assert!(
                Instant::now() < deadline,
                "no response to seq {seq} within {limit:?}; got {:?}",
                self.got
            );
            match self.tty.read(&mut buf) {
                Ok(n) => {
                    for &b in &buf[..n] {
                        if let Some(Ok(p)) = self.parser.push(b) {
                            self.got.push(p);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

/// A robot `serve` knows, by its kind's name.
fn robot(name: &str) -> ServeRobot {
    name.parse().expect("a kind that can be served")
}

#[test]
fn a_host_answers_battery_and_drives_the_twin_over_a_pty() {
    let server = PtyServer::start(robot("rvr"));
    let path = server.path.clone();
    assert!(
        path.starts_with("/dev/"),
        "a device path: {}",
        path.display()
    );
    let line = ServeOptions::default().ready_line(robot("rvr"), &path);
    assert!(line.starts_with("RVR twin on /dev/"), "{line}");

    let mut host = Host::open(&path);
    host.send(Command::Wake, 1);
    host.send(Command::GetBatteryPercentage, 2);
    let battery = host.response(2, Duration::from_secs(10));
    assert_eq!(
        Response::from_packet(&battery),
        Ok(Response::BatteryPercentage(100))
    );
    assert!(host.got.iter().any(|p| p.header.sequence == 1));

    host.send(
        Command::DriveTankSi {
            left_mps: 0.3,
            right_mps: 0.3,
        },
        3,
    );
    host.response(3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));

    let summary = server.finish();
    assert_eq!(summary.device, path);
    let rvr = &summary.robot;
    assert!(
        rvr["rvr"]["drive_commands"].as_u64() >= Some(1),
        "{summary}"
    );
    assert!(
        rvr["moved_m"].as_f64().is_some_and(|m| m > 0.05),
        "the robot moved: {summary}"
    );
    assert!(summary.bytes_from_host > 0 && summary.bytes_to_host > 0);
    assert!(summary.virtual_ns > 0);
    assert_eq!(summary.bytes_dropped_to_host, 0);
}

/// Live mode runs on the wall clock of a shared machine, where the serve loop
/// can be held up for a while: a generous timeout (a missed packet is never
/// answered however long one waits).
const SERIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// A servo misses a write that arrives while it still applies its previous
/// one (the twin's 500 us processing window, assumed); like Pollen's demo,
/// pause after a write before the next write to the same servo. 5 ms leaves
/// room for the serve loop's own 1 ms tick.
const WRITE_PAUSE: Duration = Duration::from_millis(5);

#[test]
fn rustypot_drives_the_hand_servo_bus_over_a_pty() {
    use rustypot::servo::feetech::scs0009::Scs0009Controller;

    let server = PtyServer::start(robot("hand"));
    let mut hand = Scs0009Controller::new()
        .with_protocol_v1()
        .with_serial_port(server.open_serial(SERIAL_TIMEOUT));
    for id in 1..=8u8 {
        hand.write_torque_enable(id, 1).expect("torque on");
    }
    hand.write_goal_speed(3, 5.0).expect("speed");
    std::thread::sleep(WRITE_PAUSE);
    hand.write_goal_position(3, 0.5).expect("goal");
    let deadline = Instant::now() + Duration::from_secs(20);
    let reached = loop {
        let present = hand.read_present_position(3).expect("present position")[0];
        if (present - 0.5).abs() < 0.02 {
            break present;
        }
        assert!(
            Instant::now() < deadline,
            "servo 3 never reached 0.5 rad: {present}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let summary = server.finish();
    let hand = &summary.robot;
    assert!(hand["bus"]["replies"].as_u64() >= Some(10), "{summary}");
    assert_eq!(hand["bus"]["missed"], 0, "{summary}");
    assert_eq!(hand["torque_on"], 8, "{summary}");
    let servo_3 = hand["servos"][2]["position_deg"].as_f64().unwrap();
    assert!((servo_3 - reached.to_degrees()).abs() < 2.0, "{summary}");
    assert!(hand.get("moved_m").is_none(), "{summary}");
}

/// What the console agent wrote, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_hand_agent_stopped_by_its_signal_flag_leaves_the_servos_limp() {
    use hand_agent::console::{ConsoleConfig, run_console};

    let server = PtyServer::start(robot("hand"));
    let port = server.open_serial(SERIAL_TIMEOUT);
    // The agent's stdin: a pipe kept open, so only the flag (what its
    // SIGINT/SIGTERM handler sets) can end it.
    let (input, mut feed) = std::io::pipe().expect("pipe");
    let out = Captured::default();
    let agent_stop = Arc::new(AtomicBool::new(false));
    let (agent_flag, agent_out) = (agent_stop.clone(), out.clone());
    let agent = std::thread::spawn(move || {
        run_console(
            port,
            std::io::BufReader::new(input),
            Box::new(agent_out),
            agent_flag,
            ConsoleConfig {
                device: "hand-1".into(),
                timing: hand_agent::Timing::default(),
            },
        )
    });
    writeln!(feed, "{{\"sentence\": \"AB\"}}").unwrap();
    // An empty line: rejected at once with an error state, as the MQTT side does.
    writeln!(feed).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
        if text.contains("\"letter\":\"B\"") {
            break text;
        }
        assert!(Instant::now() < deadline, "no B state: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(text.contains("\"code\":\"empty_payload\""), "{text}");
    agent_stop.store(true, Ordering::SeqCst);
    let summary = agent.join().expect("agent thread");
    assert!(summary.torque_off, "{summary:?}");
    assert_eq!(summary.messages, 1);
    drop(feed);
    let served = server.finish();
    assert_eq!(served.robot["torque_on"], 0, "{served}");
}
