//! `twinrig serve` as a user starts it: the pty path on the first line,
//! SIGTERM ending it with the summary, `--log` recording both directions,
//! and clear errors for bad options.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::termios::{self, SetArg};
use nix::unistd::Pid;
use rvr_protocol::{AddressStyle, Command as RvrCommand, Parser, Response};

fn serve(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("twinrig starts")
}

/// The pty path from the first line of stdout.
fn first_line_path(child: &mut Child) -> (String, BufReader<std::process::ChildStdout>) {
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("first line");
    let path = line
        .split_whitespace()
        .find(|w| w.starts_with("/dev/"))
        .unwrap_or_else(|| panic!("no device path on the first line: {line:?}"))
        .to_owned();
    (path, out)
}

#[test]
fn serve_prints_the_path_first_logs_packets_and_ends_on_sigterm_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rvr.log");
    let mut child = serve(&[
        "rvr",
        "--pty",
        "--duration",
        "120",
        "--log",
        log.to_str().unwrap(),
    ]);
    let (path, mut out) = first_line_path(&mut child);

    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
        .open(&path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    let mut t = termios::tcgetattr(&tty).expect("tcgetattr");
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(&tty, SetArg::TCSANOW, &t).expect("tcsetattr");
    // Python SDK addressing: TID only, response requested.
    let frame = RvrCommand::GetBatteryPercentage
        .to_packet(9, AddressStyle::TargetOnly)
        .unwrap()
        .to_frame()
        .unwrap();
    tty.write_all(frame.as_bytes()).unwrap();
    let mut parser = Parser::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = 'read: loop {
        assert!(Instant::now() < deadline, "no response from the twin");
        let mut buf = [0u8; 64];
        match tty.read(&mut buf) {
            Ok(n) => {
                for &b in &buf[..n] {
                    if let Some(Ok(p)) = parser.push(b)
                        && p.header.is_response()
                    {
                        break 'read p;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("read: {e}"),
        }
    };
    assert_eq!(
        Response::from_packet(&response),
        Ok(Response::BatteryPercentage(100))
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status}: {rest}");
    assert!(rest.contains(&format!("served {path}")), "{rest}");
    assert!(rest.contains("1 commands, 1 responses"), "{rest}");

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("host -> rvr")
            && lines[0].contains("command GetBatteryPercentage seq 9 to Nordic"),
        "{text}"
    );
    assert!(
        lines[1].contains("rvr -> host")
            && lines[1].contains("response GetBatteryPercentage seq 9 from Nordic: Success [64]"),
        "{text}"
    );
}

#[test]
fn bad_options_are_clear_errors() {
    for (args, expected) in [
        (
            &["toaster", "--pty"][..],
            "unknown robot `toaster`: `twinrig serve` can serve rvr, hand",
        ),
        (
            &["rvr", "--pty", "--baud", "0"][..],
            "invalid option: --baud",
        ),
        (&["hand"][..], "choose a transport: --pty"),
        (
            &[
                "rvr",
                "--pty",
                "--duration",
                "1",
                "--log",
                "/nonexistent-dir/x.log",
            ][..],
            "packet log /nonexistent-dir/x.log",
        ),
    ] {
        let out = common::twinrig(&[&["serve"][..], args].concat());
        let text = common::text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: {text}");
        common::no_panic(&out);
    }
}
