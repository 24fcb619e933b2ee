//! `twinrig serve cloud`, judged by Eclipse Mosquitto's command-line clients
//! (Debian's `mosquitto-clients`, installed by `.ci/run`): a thing updates its
//! shadow over MQTT and a watcher sees the service's answers, with values.
//!
//! Live mode runs on the wall clock; every wait here is for an event (a
//! line printed, a process ending), with long limits that only guard
//! against a hang, so a busy machine makes the test slower, not flaky.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A hang guard, not a timing check.
const LIMIT: Duration = Duration::from_secs(120);

struct Served {
    child: Child,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl Served {
    fn start() -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_twinrig"))
            .args([
                "serve",
                "cloud",
                "--insecure-tcp",
                "127.0.0.1:0",
                "--duration",
                "600",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .split("tcp://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no ready line: {line:?}"));
        assert!(line.contains("insecure: no TLS"), "{line}");
        Served {
            child,
            stdout,
            port,
        }
    }

    /// SIGINT, then the summary line it prints as it stops.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(status.success());
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        let status = wait(&mut self.child);
        assert!(status.success(), "serve cloud exited with {status}: {rest}");
        rest
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < LIMIT, "a process hung");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `mosquitto_sub` on `topics`, started and subscribed (it printed its
/// SUBACK) when this returns; it exits after `count` messages.
fn subscribe(
    port: u16,
    client_id: &str,
    topics: &[&str],
    count: usize,
) -> (Reaped, BufReader<ChildStdout>) {
    let mut args = vec![
        "-h".to_owned(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-V".into(),
        "mqttv311".into(),
        "-i".into(),
        client_id.into(),
        "-q".into(),
        "1".into(),
        "-C".into(),
        count.to_string(),
        "-W".into(),
        LIMIT.as_secs().to_string(),
        "-v".into(),
        "-d".into(),
    ];
    for t in topics {
        args.push("-t".into());
        args.push((*t).into());
    }
    // Line-buffered (coreutils' stdbuf): its SUBACK line must reach us
    // while it runs, not when it exits.
    let mut child = Reaped(
        Command::new("stdbuf")
            .arg("-oL")
            .arg("mosquitto_sub")
            .args(&args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub is installed (.ci/run installs mosquitto-clients)"),
    );
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "mosquitto_sub ended before its SUBACK"
        );
        if line.starts_with("Subscribed (mid") {
            // Every filter granted at QoS 1.
            assert!(
                line.trim_end()
                    .ends_with(&vec!["1"; topics.len()].join(", ")),
                "{line}"
            );
            return (child, out);
        }
    }
}

/// A child process killed and reaped if the test gives up on it.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The messages a subscriber printed (`topic payload` lines), once it ended.
fn messages(mut child: Reaped, out: BufReader<ChildStdout>) -> Vec<(String, Value)> {
    let lines: Vec<String> = out.lines().map(Result::unwrap).collect();
    let status = wait(&mut child.0);
    assert!(status.success(), "mosquitto_sub: {status}: {lines:?}");
    lines
        .iter()
        .filter(|l| l.starts_with("$aws/"))
        .map(|l| {
            let (topic, payload) = l.split_once(' ').unwrap();
            (topic.to_owned(), serde_json::from_str(payload).unwrap())
        })
        .collect()
}

fn publish(port: u16, client_id: &str, topic: &str, payload: &str, qos: &str) -> Output {
    Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            "mqttv311",
            "-i",
            client_id,
            "-q",
            qos,
            "-t",
            topic,
            "-m",
            payload,
            "-d",
        ])
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn mosquitto_clients_update_and_read_a_shadow() {
    let served = Served::start();
    let port = served.port;
    let shadow = "$aws/things/feeder-001/shadow";

    // A desired state: the service accepts it and sends a delta.
    let (sub, out) = subscribe(
        port,
        "watcher",
        &[
            &format!("{shadow}/update/accepted"),
            &format!("{shadow}/update/delta"),
        ],
        2,
    );
    let o = publish(
        port,
        "operator",
        &format!("{shadow}/update"),
        r#"{"state":{"desired":{"color":"green","speed":3}}}"#,
        "1",
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("received PUBACK"), "{}", text(&o));
    let got = messages(sub, out);
    let accepted = &got
        .iter()
        .find(|(t, _)| t.ends_with("/update/accepted"))
        .unwrap()
        .1;
    assert_eq!(
        accepted["state"]["desired"],
        serde_json::json!({"color": "green", "speed": 3})
    );
    assert_eq!(accepted["version"], 1);
    let delta = &got
        .iter()
        .find(|(t, _)| t.ends_with("/update/delta"))
        .unwrap()
        .1;
    assert_eq!(
        delta["state"],
        serde_json::json!({"color": "green", "speed": 3})
    );
    assert_eq!(delta["version"], 1);
    // Live mode stamps with the wall clock (seconds since the epoch).
    let stamped = delta["timestamp"].as_i64().unwrap();
    assert!((stamped - now_s()).abs() < 3600, "timestamp {stamped}");

    // The thing reports part of it: version 2, and GetThingShadow shows the
    // rest still in the delta.
    let o = publish(
        port,
        "feeder-001",
        &format!("{shadow}/update"),
        r#"{"state":{"reported":{"color":"green"}}}"#,
        "1",
    );
    assert!(o.status.success(), "{}", text(&o));
    let (sub, out) = subscribe(
        port,
        "feeder-001-reader",
        &[&format!("{shadow}/get/accepted")],
        1,
    );
    let o = publish(port, "feeder-001-getter", &format!("{shadow}/get"), "", "0");
    assert!(o.status.success(), "{}", text(&o));
    let got = messages(sub, out);
    let document = &got[0].1;
    assert_eq!(document["version"], 2);
    assert_eq!(
        document["state"]["reported"],
        serde_json::json!({"color": "green"})
    );
    assert_eq!(document["state"]["delta"], serde_json::json!({"speed": 3}));

    let summary = served.stop();
    assert!(summary.contains("3 messages in"), "{summary}");
}

#[test]
fn refusals_are_seen_by_the_client() {
    let served = Served::start();
    let port = served.port;
    // The harness's own client ids are not for clients.
    let o = publish(port, "twinrig-cloud", "a/b", "x", "0");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("identifier rejected"), "{}", text(&o));
    // AWS IoT supports no QoS 2: the connection is closed, nothing is acknowledged.
    let o = publish(port, "qos2", "a/b", "x", "2");
    assert!(!text(&o).contains("received PUBREC"), "{}", text(&o));
    // A good client still works afterwards.
    let o = publish(port, "fine", "a/b", "x", "1");
    assert!(o.status.success(), "{}", text(&o));
    let summary = served.stop();
    assert!(summary.contains("3 connections (2 refused"), "{summary}");
}

#[test]
fn garbage_and_protocol_errors_close_the_connection_not_the_server() {
    use std::io::{Read as _, Write as _};
    let served = Served::start();
    let port = served.port;
    let cases: [&[u8]; 3] = [
        // Not MQTT at all.
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // A PINGREQ before CONNECT.
        &[0xC0, 0x00],
        // A CONNECT of MQTT 5 (protocol level 5): not served yet.
        &[
            0x10, 0x11, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00,
            0x04, b'a', b'b', b'c', b'd',
        ],
    ];
    for bytes in cases {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(bytes).unwrap();
        let mut rest = Vec::new();
        // The server closes the connection (EOF), having sent nothing useful.
        let _ = s.read_to_end(&mut rest);
        assert!(rest.len() <= 4, "{bytes:?}: got {rest:?}");
    }
    let o = publish(port, "fine", "a/b", "x", "1");
    assert!(o.status.success(), "{}", text(&o));
    let summary = served.stop();
    assert!(summary.contains("4 connections (3 refused"), "{summary}");
}

#[test]
fn serve_cloud_asks_for_what_it_can_serve() {
    let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(["serve", "cloud"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--insecure-tcp ADDR"), "{}", text(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(["serve", "cloud", "--insecure-tcp", "127.0.0.1:0", "--pty"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("takes --insecure-tcp"), "{}", text(&o));
    // A port in use is a clear error naming the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(["serve", "cloud", "--insecure-tcp", &addr, "--duration", "5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("cannot listen on {addr}")),
        "{}",
        text(&o)
    );
}
