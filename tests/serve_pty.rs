//! `twinrig serve rvr --pty`, in process: a host program opens the printed pty
//! slave, speaks the RVR protocol to the twin and drives it.
//!
//! Live mode runs on the wall clock, so this test reads it too, but only to
//! bound waits (generous deadlines); it asserts nothing about timing.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::termios::{self, SetArg};
use rvr_protocol::{AddressStyle, Command, Packet, Parser, Response};
use twinrig::serve::{ServeOptions, serve_rvr_pty};

/// The host side: a raw, non-blocking tty and a packet parser.
struct Host {
    tty: File,
    parser: Parser,
    got: Vec<Packet>,
}

impl Host {
    fn open(path: &PathBuf) -> Host {
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

#[test]
fn a_host_answers_battery_and_drives_the_twin_over_a_pty() {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let flag = stop.clone();
    let server = std::thread::spawn(move || {
        let options = ServeOptions {
            // A backstop so a failing test never leaves the thread running.
            duration: Some(Duration::from_secs(120)),
            ..ServeOptions::default()
        };
        serve_rvr_pty(options, &flag, |path| {
            ready_tx.send(path.to_path_buf()).expect("test waits");
        })
    });
    let path = match ready_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(p) => p,
        Err(e) => {
            stop.store(true, Ordering::SeqCst);
            panic!("not ready ({e}): {:?}", server.join());
        }
    };
    assert!(
        path.starts_with("/dev/"),
        "a device path: {}",
        path.display()
    );
    let line = ServeOptions::default().ready_line(&path);
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
    stop.store(true, Ordering::SeqCst);

    let summary = server
        .join()
        .expect("serve thread")
        .expect("served without error");
    assert_eq!(summary.device, path);
    assert!(summary.rvr.drive_commands >= 1, "{summary}");
    assert!(summary.moved_m() > 0.05, "the robot moved: {summary}");
    assert!(summary.bytes_from_host > 0 && summary.bytes_to_host > 0);
    assert!(summary.virtual_ns > 0);
    assert_eq!(summary.bytes_dropped_to_host, 0);
}
