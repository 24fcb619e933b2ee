//! `echo-device` between a pty pair and Debian's `mosquitto` broker: a line
//! written on the far side of the pty is published on `rx`, a message
//! published on `tx` comes out of the pty, with values; bad input exits 2.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::pty::openpty;
use nix::sys::termios::{self, SetArg};

/// A hang guard, not a timing check.
const LIMIT: Duration = Duration::from_secs(60);

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mosquitto() -> &'static str {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Debian's mosquitto broker (.ci/run installs it)")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn lines_and_messages_cross_between_the_port_and_the_broker() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let _broker = Reaped(
        Command::new(mosquitto())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < LIMIT, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pty = openpty(None, None).unwrap();
    let slave = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
    let master = std::fs::File::from(pty.master);
    let mut t = termios::tcgetattr(&master).unwrap();
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(&master, SetArg::TCSANOW, &t).unwrap();

    let mut watcher = Reaped(
        Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-p",
                &port.to_string(),
                "-i",
                "watcher",
                "-q",
                "1",
            ])
            .args(["-t", "twinrig/echo/echo-1/#", "-v", "-d"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub (.ci/run installs mosquitto-clients)"),
    );
    let mut lines = BufReader::new(watcher.0.stdout.take().unwrap()).lines();
    let mut next_line = |needle: &str| -> String {
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.starts_with(needle) {
                return line;
            }
        }
        panic!("mosquitto_sub ended before {needle:?}");
    };
    next_line("Subscribed (mid");

    let _device = Reaped(
        Command::new(env!("CARGO_BIN_EXE_echo-device"))
            .arg("--serial")
            .arg(&slave)
            .args([
                "--endpoint",
                &format!("127.0.0.1:{port}"),
                "--thing",
                "echo-1",
                "--insecure-tcp",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert_eq!(
        next_line("twinrig/echo/echo-1/status"),
        r#"twinrig/echo/echo-1/status {"status":"online"}"#
    );
    (&master).write_all(b"hello from the port\r\n").unwrap();
    assert_eq!(
        next_line("twinrig/echo/echo-1/rx"),
        "twinrig/echo/echo-1/rx hello from the port"
    );
    let sent = Command::new("mosquitto_pub")
        .args(["-p", &port.to_string(), "-i", "operator", "-q", "1"])
        .args(["-t", "twinrig/echo/echo-1/tx", "-m", "to the port"])
        .output()
        .unwrap();
    assert!(sent.status.success());
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    let mut reader = &master;
    while !got.ends_with(b"\n") {
        assert_eq!(reader.read(&mut byte).unwrap(), 1);
        got.push(byte[0]);
    }
    assert_eq!(got, b"to the port\n");
}

#[test]
fn bad_arguments_are_reported() {
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_echo-device"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!err.contains("panicked"), "{err}");
        (o.status.code(), err)
    };
    let closed = format!("127.0.0.1:{}", free_port());
    for (args, needle) in [
        (vec!["--serial", "/dev/null"], "--endpoint"),
        (
            vec![
                "--serial",
                "/dev/null",
                "--endpoint",
                &closed,
                "--thing",
                "e",
                "--insecure-tcp",
            ],
            "cannot reach the endpoint",
        ),
        (
            vec![
                "--serial",
                "/dev/null",
                "--endpoint",
                &closed,
                "--thing",
                "e",
                "--client-id",
                "x",
                "--insecure-tcp",
            ],
            "names its topics after its client id",
        ),
    ] {
        let (code, err) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
