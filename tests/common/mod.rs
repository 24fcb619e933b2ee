//! Running the `twinrig` binary from integration tests, as a user would.

#![allow(dead_code)] // Each test file uses its own subset.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};

/// Runs `twinrig` with `args` in the crate's root.
pub fn twinrig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("twinrig runs")
}

/// Stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Fails if the output shows a panic.
pub fn no_panic(o: &Output) {
    let t = text(o);
    assert!(!t.contains("panicked"), "twinrig panicked:\n{t}");
}

/// Writes `body` to `dir/name`.
pub fn write_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// A robot served on a pseudo-terminal by `serve_robot_pty`, in a thread of
/// the test process, as `twinrig serve ROBOT --pty` serves it.
pub struct PtyServer {
    thread:
        std::thread::JoinHandle<Result<twinrig::serve::ServeSummary, twinrig::serve::ServeError>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The pty slave a host program opens.
    pub path: PathBuf,
}

impl PtyServer {
    /// Serves `robot` and returns once its pty is ready.
    pub fn start(robot: twinrig::serve::ServeRobot) -> PtyServer {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, mpsc};
        use std::time::Duration;
        use twinrig::serve::{ServeOptions, serve_robot_pty};

        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let options = ServeOptions {
                // A backstop so a failing test never leaves the thread running.
                duration: Some(Duration::from_secs(300)),
                ..ServeOptions::for_robot(robot)
            };
            serve_robot_pty(robot, options, &flag, |path| {
                ready_tx.send(path.to_path_buf()).expect("test waits");
            })
        });
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(path) => PtyServer { thread, stop, path },
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                panic!("not ready ({e}): {:?}", thread.join());
            }
        }
    }

    /// Opens the pty with the real `serialport` crate at 1 Mbaud, as a
    /// rustypot user opens the hand's serial adapter.
    pub fn open_serial(&self, timeout: std::time::Duration) -> Box<dyn serialport::SerialPort> {
        serialport::new(self.path.to_string_lossy(), 1_000_000)
            .timeout(timeout)
            .open()
            .unwrap_or_else(|e| panic!("open {}: {e}", self.path.display()))
    }

    /// Stops serving; the run's summary.
    pub fn finish(self) -> twinrig::serve::ServeSummary {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread
            .join()
            .expect("serve thread")
            .expect("served without error")
    }
}

/// A device kind of tests' own: each device runs one task, `task`, named
/// after the device (`{id}{task_suffix}`), and has no state or UART.
pub struct OneTaskKind {
    /// The kind's name in scenario files.
    pub name: &'static str,
    /// One line for `twinrig list`.
    pub summary: &'static str,
    /// Added to the device id to name its task.
    pub task_suffix: &'static str,
    /// The device's one task.
    pub task:
        fn(twinrig_sim::SimHandle) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
}

struct NoState;

impl twinrig::devices::DeviceRuntime for NoState {
    fn state(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    fn uart(&self) -> Option<(&twinrig_sim::uart::UartControl, bool)> {
        None
    }
}

impl twinrig::devices::DeviceKind for OneTaskKind {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn firmware(&self) -> (&'static str, &'static str) {
        (self.name, "0")
    }
    fn params(&self) -> &'static dyn twinrig::devices::ParamsModel {
        &twinrig::devices::ParamsOf::<twinrig::devices::NoParams>::NEW
    }
    fn spawn(
        &self,
        ctx: &twinrig::devices::DeviceContext<'_>,
        id: &str,
        _: &twinrig::devices::DeviceSpec,
    ) -> Result<Box<dyn twinrig::devices::DeviceRuntime>, twinrig::devices::KindError> {
        ctx.handle.spawn(
            format!("{id}{}", self.task_suffix),
            (self.task)(ctx.handle.clone()),
        );
        Ok(Box::new(NoState))
    }
}

/// The checks of a hardware-in-the-loop run, printed as they are made, then
/// `N passed, N failed` (as the conformance suites print theirs).
#[derive(Default)]
pub struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    /// Records and prints one check.
    pub fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
            println!("ok   {name}: {detail}");
        } else {
            println!("FAIL {name}: {detail}");
            self.failed.push(format!("{name}: {detail}"));
        }
    }

    /// Prints the tally; fails the test if a check failed.
    pub fn finish(self) {
        println!("{} passed, {} failed", self.passed, self.failed.len());
        assert!(
            self.failed.is_empty(),
            "failed checks:\n{}",
            self.failed.join("\n")
        );
    }
}

/// A device process of the workspace (`ota-agent`, ...), built beside
/// `twinrig` by `cargo test --workspace`. Run alone, a test builds it first.
pub fn device_binary(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_twinrig")).parent().unwrap();
    let path = dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--bin", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    path
}

/// A hang guard for [`Watched`], not a timing check.
const WATCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// A process whose stdout lines arrive on a channel.
pub struct Watched {
    name: String,
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watched {
    pub fn spawn(name: impl Into<String>, command: &mut Command) -> Watched {
        let name = name.into();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        let stdout: BufReader<ChildStdout> = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watched {
            name,
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.next_where(needle, |line| line.contains(needle))
    }

    /// The next line `wanted` takes (`what` names it if none comes).
    pub fn next_where(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let start = std::time::Instant::now();
        loop {
            match self
                .lines
                .recv_timeout(WATCH_LIMIT.saturating_sub(start.elapsed()))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut e) = self.child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!(
                        "{}: no line with {what:?}; its output:\n{}\nstderr:\n{err}",
                        self.name,
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// SIGKILL, as a power cut or the OOM killer would; waits for the end.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGINT, as Ctrl-C; then the rest of stdout, stderr and the exit code.
    pub fn interrupt(mut self) -> (Vec<String>, String, Option<i32>) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(start.elapsed() < WATCH_LIMIT, "{} did not stop", self.name);
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut rest: Vec<String> = self.lines.try_iter().collect();
        // The reader thread may still hold the last lines.
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(5)) {
            rest.push(line);
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (rest, err, status.code())
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port after `{scheme}://127.0.0.1:` in a ready line.
pub fn ready_port(line: &str, scheme: &str) -> u16 {
    line.split(&format!("{scheme}://127.0.0.1:"))
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no {scheme} listener in {line:?}"))
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A live rig's cloud: `twinrig certs` for `thing` in `dir/certs`, then
/// `serve cloud` over mutual TLS with those certificates, a plain TCP
/// listener for local tools, `scenario`'s rules and `--state dir/state`.
/// Returns the server, the certificates folder and the TLS and TCP ports.
pub fn serve_cloud_for(dir: &Path, thing: &str, scenario: &str) -> (Watched, PathBuf, u16, u16) {
    let certs = dir.join("certs");
    let issued = twinrig(&["certs", "--out", path_str(&certs), "--thing", thing]);
    assert!(issued.status.success(), "{}", text(&issued));
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join(scenario);
    let mut cloud = Watched::spawn(
        "serve cloud",
        Command::new(env!("CARGO_BIN_EXE_twinrig"))
            .args(["serve", "cloud", "--duration", "600"])
            .args(["--mqtt", "127.0.0.1:0", "--insecure-tcp", "127.0.0.1:0"])
            .args([
                "--certs",
                path_str(&certs),
                "--scenario",
                path_str(&scenario),
            ])
            .args(["--state", path_str(&dir.join("state"))]),
    );
    let ready = cloud.wait_for("mqtts://");
    let (mqtts, tcp) = (ready_port(&ready, "mqtts"), ready_port(&ready, "tcp"));
    (cloud, certs, mqtts, tcp)
}

/// `twinrig serve ROBOT --pty`, and the pty it printed.
pub fn serve_robot_on_pty(robot: &'static str) -> (Watched, String) {
    let mut served = Watched::spawn(
        robot,
        Command::new(env!("CARGO_BIN_EXE_twinrig")).args([
            "serve",
            robot,
            "--pty",
            "--duration",
            "600",
        ]),
    );
    let pty = served
        .wait_for("/dev/")
        .split_whitespace()
        .find(|w| w.starts_with("/dev/"))
        .unwrap()
        .to_owned();
    (served, pty)
}

/// A device process's endpoint flags: `thing`'s certificate from `certs`,
/// the TLS listener on loopback.
pub fn thing_args(certs: &Path, thing: &str, mqtts: u16) -> Vec<String> {
    let files = certs.join("things").join(thing);
    vec![
        "--endpoint".into(),
        format!("127.0.0.1:{mqtts}"),
        "--thing".into(),
        thing.into(),
        "--cert".into(),
        path_str(&files.join("certificate.pem.crt")).into(),
        "--key".into(),
        path_str(&files.join("private.pem.key")).into(),
        "--ca".into(),
        path_str(&certs.join("root-ca.pem")).into(),
    ]
}

/// `mosquitto_sub` on plain TCP as `client_id` on `topics`, printing each
/// message in `format` (`-F`), line-buffered (coreutils' stdbuf), with
/// `extra` arguments; returned once subscribed (it printed its SUBACK).
pub fn watch_topics(
    tcp: u16,
    client_id: &str,
    topics: &[&str],
    format: &str,
    extra: &[&str],
) -> Watched {
    let mut command = Command::new("stdbuf");
    command
        .args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &tcp.to_string(),
        ])
        .args(["-i", client_id, "-q", "1", "-F", format, "-d"])
        .args(["-W", &WATCH_LIMIT.as_secs().to_string()])
        .args(extra);
    for t in topics {
        command.args(["-t", t]);
    }
    let mut watcher = Watched::spawn(format!("mosquitto_sub {client_id}"), &mut command);
    watcher.wait_for("Subscribed (mid");
    watcher
}

/// [`watch_topics`] on one topic, printing `QOS PAYLOAD`; it ends after
/// `count` messages when given.
pub fn watch_topic(tcp: u16, topic: &str, count: Option<usize>) -> Watched {
    let count = count.map(|n| n.to_string());
    let extra: Vec<&str> = match &count {
        Some(n) => vec!["-C", n],
        None => vec![],
    };
    watch_topics(tcp, "watcher", &[topic], "%q %p", &extra)
}

/// The records of `kind` for `device` in a `--state` folder's store, newest
/// first, as `twinrig records` prints them; `None` if it failed.
pub fn records(state: &Path, kind: &str, device: &str) -> Option<Vec<serde_json::Value>> {
    let db = state.join("records.sqlite");
    let o = twinrig(&["records", path_str(&db), "--kind", kind, "--device", device]);
    o.status.success().then(|| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    })
}

/// `mosquitto_pub` at QoS 1 on plain TCP.
pub fn publish_tcp(tcp: u16, topic: &str, payload: &str) {
    let sent = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &tcp.to_string(),
            "-i",
            "operator",
            "-q",
            "1",
        ])
        .args(["-t", topic, "-m", payload])
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", text(&sent));
}
