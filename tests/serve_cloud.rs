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
    ready: String,
}

impl Served {
    fn start() -> Served {
        Served::start_with(&["--insecure-tcp", "127.0.0.1:0"], "tcp")
    }

    /// `serve cloud` with `listener` arguments; the port is read from the
    /// ready line's `{scheme}://127.0.0.1:PORT`.
    fn start_with(listener: &[&str], scheme: &str) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_twinrig"))
            .args(["serve", "cloud", "--duration", "600"])
            .args(listener)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .split(&format!("{scheme}://127.0.0.1:"))
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no ready line: {line:?}"));
        if scheme == "tcp" {
            assert!(line.contains("insecure: no TLS"), "{line}");
        }
        Served {
            child,
            stdout,
            port,
            ready: line,
        }
    }

    /// `serve cloud` over TLS with the `certs` folder's identity, and on
    /// plain TCP for local tools; the port is the TLS listener's.
    fn tls_and_tcp(certs: &std::path::Path) -> Served {
        Served::start_with(
            &[
                "--certs",
                certs.to_str().unwrap(),
                "--mqtt",
                "127.0.0.1:0",
                "--insecure-tcp",
                "127.0.0.1:0",
            ],
            "mqtts",
        )
    }

    /// The port of the `scheme` listener in the ready line.
    fn port_of(&self, scheme: &str) -> u16 {
        self.ready
            .split(&format!("{scheme}://127.0.0.1:"))
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no {scheme} listener: {}", self.ready))
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
    subscribe_with(port, client_id, topics, count, &[])
}

/// [`subscribe`] with more arguments (TLS: see [`tls`]).
fn subscribe_with(
    port: u16,
    client_id: &str,
    topics: &[&str],
    count: usize,
    extra: &[String],
) -> (Reaped, BufReader<ChildStdout>) {
    let mut args = vec![
        "-h".to_owned(),
        host(extra).into(),
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
    args.extend_from_slice(extra);
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
    publish_with(port, client_id, topic, payload, qos, &[])
}

/// The host to connect to: over TLS the name in the server's certificate.
fn host(extra: &[String]) -> &'static str {
    if extra.is_empty() {
        "127.0.0.1"
    } else {
        "localhost"
    }
}

/// mosquitto's TLS arguments: trust `certs`' root CA and present `thing`'s
/// certificate (none: present none).
fn tls(certs: &std::path::Path, thing: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--cafile".to_owned(),
        certs.join("root-ca.pem").display().to_string(),
    ];
    if let Some(thing) = thing {
        let dir = certs.join("things").join(thing);
        args.extend([
            "--cert".to_owned(),
            dir.join("certificate.pem.crt").display().to_string(),
            "--key".to_owned(),
            dir.join("private.pem.key").display().to_string(),
        ]);
    }
    args
}

/// [`publish`] with more arguments (TLS: see [`tls`]).
fn publish_with(
    port: u16,
    client_id: &str,
    topic: &str,
    payload: &str,
    qos: &str,
    extra: &[String],
) -> Output {
    Command::new("mosquitto_pub")
        .args([
            "-h",
            host(extra),
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
        .args(extra)
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
    let cases: [(&[u8], &[u8]); 3] = [
        // Not MQTT at all.
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &[]),
        // A PINGREQ before CONNECT.
        (&[0xC0, 0x00], &[]),
        // A CONNECT of MQTT 3.1 ("MQIsdp", protocol level 3): CONNACK 1,
        // unacceptable protocol version.
        (
            &[
                0x10, 0x12, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3C,
                0x00, 0x04, b'a', b'b', b'c', b'd',
            ],
            &[0x20, 0x02, 0x00, 0x01],
        ),
    ];
    for (bytes, answer) in cases {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(bytes).unwrap();
        let mut rest = Vec::new();
        // The server closes the connection (EOF), having sent only its answer.
        let _ = s.read_to_end(&mut rest);
        assert_eq!(rest, answer, "{bytes:?}");
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
    assert!(text(&o).contains("needs a listener"), "{}", text(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(["serve", "cloud", "--insecure-tcp", "127.0.0.1:0", "--pty"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("takes --certs DIR and --insecure-tcp ADDR"),
        "{}",
        text(&o)
    );
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
    // HTTPS needs the endpoint's certificate.
    let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args([
            "serve",
            "cloud",
            "--https",
            "127.0.0.1:0",
            "--duration",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("give --certs DIR too"), "{}", text(&o));
    // A fleet file that is missing or not a fleet is named, with the problem.
    let dir = tempfile::tempdir().unwrap();
    let not_a_fleet = dir.path().join("fleet.yaml");
    std::fs::write(&not_a_fleet, "fleet:\n  groups: 7\n").unwrap();
    for (file, why) in [
        (dir.path().join("missing.yaml"), "missing.yaml"),
        (not_a_fleet, "fleet.yaml:2"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
            .args(["serve", "cloud", "--insecure-tcp", "127.0.0.1:0", "--fleet"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(why), "{why}: {}", text(&o));
    }
}

fn certs(dir: &std::path::Path, name: &str, things: &[&str]) -> std::path::PathBuf {
    let out = dir.join(name);
    let mut args = vec!["certs", "--out", out.to_str().unwrap()];
    for t in things {
        args.extend(["--thing", t]);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    out
}

#[test]
fn over_mutual_tls_a_thing_connects_as_itself_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let ours = certs(dir.path(), "ours", &["feeder-001", "hub"]);
    let theirs = certs(dir.path(), "theirs", &["feeder-001"]);
    let served = Served::tls_and_tcp(&ours);
    let port = served.port;
    let local_tools = served.port_of("tcp");
    let shadow = "$aws/things/feeder-001/shadow";

    // A thing with its own certificate and its own name as client id, on its
    // own topics (the default policy): a desired state from a local tool
    // reaches it as a delta, with its values.
    let (sub, out) = subscribe_with(
        port,
        "feeder-001",
        &[&format!("{shadow}/update/delta")],
        1,
        &tls(&ours, Some("feeder-001")),
    );
    let o = publish(
        local_tools,
        "operator",
        &format!("{shadow}/update"),
        r#"{"state":{"desired":{"food_capacity":100}}}"#,
        "1",
    );
    assert!(o.status.success(), "{}", text(&o));
    let got = messages(sub, out);
    assert_eq!(got[0].1["state"]["food_capacity"], 100);
    assert_eq!(got[0].1["version"], 1);
    // It reports on its own shadow.
    let o = publish_with(
        port,
        "feeder-001",
        &format!("{shadow}/update"),
        r#"{"state":{"reported":{"food_capacity":87}}}"#,
        "1",
        &tls(&ours, Some("feeder-001")),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("received PUBACK"), "{}", text(&o));
    // With AWS IoT's ALPN protocol, as the SDKs connect on port 443; with
    // another, the handshake fails.
    for (alpn, ok) in [("x-amzn-mqtt-ca", true), ("x-amzn-http-ca", false)] {
        let mut args = tls(&ours, Some("feeder-001"));
        args.extend(["--tls-alpn".to_owned(), alpn.to_owned()]);
        let o = publish_with(
            port,
            "feeder-001",
            &format!("{shadow}/update"),
            r#"{"state":{"reported":{"food_capacity":86}}}"#,
            "1",
            &args,
        );
        assert_eq!(o.status.success(), ok, "{alpn}: {}", text(&o));
        assert_eq!(
            text(&o).contains("received PUBACK"),
            ok,
            "{alpn}: {}",
            text(&o)
        );
    }

    // Another thing's topics: the subscription is refused (SUBACK failure
    // code), the publish closes the connection.
    let o = Command::new("mosquitto_sub")
        .args([
            "-h",
            "localhost",
            "-p",
            &port.to_string(),
            "-V",
            "mqttv311",
            "-i",
            "hub",
        ])
        .args([
            "-t",
            &format!("{shadow}/update/accepted"),
            "-C",
            "1",
            "-W",
            "60",
        ])
        .args(tls(&ours, Some("hub")))
        .output()
        .unwrap();
    assert!(
        text(&o).contains("All subscription requests were denied"),
        "{}",
        text(&o)
    );
    let o = publish_with(
        port,
        "hub",
        &format!("{shadow}/update"),
        r#"{"state":{"desired":{"food_capacity":0}}}"#,
        "1",
        &tls(&ours, Some("hub")),
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("received PUBACK"), "{}", text(&o));

    // Refused, each as the client sees it.
    let refused = |client_id: &str, args: Vec<String>, why: &str| {
        let o = publish_with(port, client_id, "a/b", "x", "1", &args);
        assert!(!o.status.success(), "{why}: {}", text(&o));
        assert!(
            !text(&o).contains("received CONNACK"),
            "{why}: {}",
            text(&o)
        );
        text(&o)
    };
    // Another thing's name as client id (the default policy).
    refused("hub", tls(&ours, Some("feeder-001")), "someone else's name");
    // No client certificate: TLS refuses it.
    let t = refused("feeder-001", tls(&ours, None), "no certificate");
    assert!(t.contains("certificate required"), "{t}");
    // A certificate from another CA: TLS refuses it.
    let mut other = tls(&ours, None);
    other.extend(tls(&theirs, Some("feeder-001")).into_iter().skip(2));
    let t = refused("feeder-001", other, "another CA");
    // Refused inside the handshake with a TLS alert: both local CAs have the
    // same name, so the chain is built to ours and its signature fails
    // ("decrypt error"); a CA of another name gives "unknown ca".
    assert!(
        t.contains("alert decrypt error") || t.contains("alert unknown ca"),
        "{t}"
    );

    let summary = served.stop();
    // Seven connections above (the other ALPN's and the hub's publish
    // refused), three refused here.
    assert!(summary.contains("10 connections (5 refused"), "{summary}");
}

#[test]
fn a_revoked_certificate_cannot_connect() {
    let dir = tempfile::tempdir().unwrap();
    let ours = certs(dir.path(), "ours", &["feeder-001"]);
    let registry = ours.join("registry.json");
    let text_before = std::fs::read_to_string(&registry).unwrap();
    std::fs::write(&registry, text_before.replace("\"ACTIVE\"", "\"REVOKED\"")).unwrap();
    let served = Served::start_with(
        &["--certs", ours.to_str().unwrap(), "--mqtt", "127.0.0.1:0"],
        "mqtts",
    );
    let o = publish_with(
        served.port,
        "feeder-001",
        "a/b",
        "x",
        "1",
        &tls(&ours, Some("feeder-001")),
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("received CONNACK"), "{}", text(&o));
    drop(served);

    // A folder that is not one: a clear error naming the file.
    let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args([
            "serve",
            "cloud",
            "--certs",
            dir.path().to_str().unwrap(),
            "--mqtt",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("root-ca.pem"), "{}", text(&o));
    assert!(text(&o).contains("twinrig certs"), "{}", text(&o));
}

#[test]
fn a_policy_file_replaces_the_default_and_a_deny_beats_an_allow() {
    let dir = tempfile::tempdir().unwrap();
    let ours = certs(dir.path(), "ours", &["feeder-001", "hub"]);
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{
          "Version": "2012-10-17",
          "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect",
             "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
             "Resource": "arn:aws:iot:*:*:topic/$aws/things/*"},
            {"Effect": "Allow", "Action": "iot:Subscribe",
             "Resource": "arn:aws:iot:*:*:topicfilter/$aws/things/+/shadow/*"},
            {"Effect": "Deny", "Action": "iot:Receive",
             "Resource": "arn:aws:iot:*:*:topic/$aws/things/*/shadow/update/documents"}
          ]
        }"#,
    )
    .unwrap();
    let served = Served::start_with(
        &[
            "--certs",
            ours.to_str().unwrap(),
            "--mqtt",
            "127.0.0.1:0",
            "--policy",
            policy.to_str().unwrap(),
        ],
        "mqtts",
    );
    let port = served.port;
    // The hub may watch every thing's shadow now; the documents topic is
    // denied to Receive, so only the accepted document arrives.
    let (sub, out) = subscribe_with(
        port,
        "hub",
        &[
            "$aws/things/+/shadow/update/documents",
            "$aws/things/+/shadow/update/accepted",
        ],
        1,
        &tls(&ours, Some("hub")),
    );
    let o = publish_with(
        port,
        "feeder-001",
        "$aws/things/feeder-001/shadow/update",
        r#"{"state":{"reported":{"food_capacity":87}}}"#,
        "1",
        &tls(&ours, Some("feeder-001")),
    );
    assert!(o.status.success(), "{}", text(&o));
    let got = messages(sub, out);
    assert_eq!(got[0].0, "$aws/things/feeder-001/shadow/update/accepted");
    assert_eq!(got[0].1["state"]["reported"]["food_capacity"], 87);
    // Publish is allowed there, retaining is not (no iot:RetainPublish):
    // MQTT 5 gets PUBACK 0x87.
    let o = mqtt5(
        "mosquitto_pub",
        port,
        &[
            "-i",
            "feeder-001",
            "-q",
            "1",
            "-r",
            "-t",
            "$aws/things/feeder-001/kept",
            "-m",
            "x",
        ],
        &tls(&ours, Some("feeder-001")),
        "",
    );
    assert!(
        text(&o).contains("received PUBACK (Mid: 1, RC:135)"),
        "{}",
        text(&o)
    );
    let summary = served.stop();
    assert!(
        summary.contains("1 not allowed to be received"),
        "{summary}"
    );

    // A policy file that is not one: a clear error naming it.
    std::fs::write(&policy, r#"{"Version": "2012-10-17"}"#).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args([
            "serve",
            "cloud",
            "--certs",
            ours.to_str().unwrap(),
            "--mqtt",
            "127.0.0.1:0",
        ])
        .args(["--policy", policy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("policy.json"), "{}", text(&o));
    assert!(
        text(&o).contains("not an AWS IoT policy document"),
        "{}",
        text(&o)
    );
}

#[test]
fn lifecycle_events_tell_who_connected_and_why_they_left() {
    use std::io::{Read as _, Write as _};
    let served = Served::start();
    let port = served.port;
    let (sub, out) = subscribe(
        port,
        "watcher",
        &[
            "$aws/events/presence/+/feeder-001",
            "$aws/events/presence/+/raw-1",
        ],
        4,
    );
    // A client that says goodbye.
    let o = publish(port, "feeder-001", "feeder-001/state", "{}", "1");
    assert!(o.status.success(), "{}", text(&o));
    // A client that drops its connection after the CONNACK.
    {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(&[
            0x10, 0x11, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x05,
            b'r', b'a', b'w', b'-', b'1',
        ])
        .unwrap();
        let mut connack = [0u8; 4];
        s.read_exact(&mut connack).unwrap();
        assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    }
    let got = messages(sub, out);
    // Per client, connected comes before disconnected; between clients AWS
    // promises no order.
    let at = |topic: &str| {
        got.iter()
            .position(|(t, _)| t == topic)
            .unwrap_or_else(|| panic!("no {topic}: {got:?}"))
    };
    for client in ["feeder-001", "raw-1"] {
        assert!(
            at(&format!("$aws/events/presence/connected/{client}"))
                < at(&format!("$aws/events/presence/disconnected/{client}")),
            "{got:?}"
        );
    }
    let event = |topic: &str| &got[at(topic)].1;
    let connected = event("$aws/events/presence/connected/feeder-001");
    let left = event("$aws/events/presence/disconnected/feeder-001");
    let raw_left = event("$aws/events/presence/disconnected/raw-1");
    assert_eq!(connected["clientId"], "feeder-001");
    assert_eq!(connected["eventType"], "connected");
    assert_eq!(connected["ipAddress"], "127.0.0.1");
    assert_eq!(connected["versionNumber"], 1);
    let ms = connected["timestamp"].as_i64().unwrap();
    assert!((ms / 1000 - now_s()).abs() < 3600, "timestamp {ms}");
    assert_eq!(left["eventType"], "disconnected");
    assert_eq!(left["disconnectReason"], "CLIENT_INITIATED_DISCONNECT");
    assert_eq!(left["clientInitiatedDisconnect"], true);
    assert_eq!(left["sessionIdentifier"], connected["sessionIdentifier"]);
    assert_eq!(left["versionNumber"], 1);
    assert!(left.get("ipAddress").is_none(), "{left}");
    assert_eq!(raw_left["disconnectReason"], "CONNECTION_LOST");
    assert_eq!(raw_left["clientInitiatedDisconnect"], false);
    assert_ne!(
        raw_left["sessionIdentifier"],
        connected["sessionIdentifier"]
    );
    drop(served);
}

#[test]
fn the_http_api_refuses_unsigned_and_malformed_requests() {
    use std::io::{Read as _, Write as _};
    let served = Served::start_with(&["--http", "127.0.0.1:0"], "http");
    let ask = |bytes: &[u8]| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", served.port)).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(bytes).unwrap();
        let mut head = vec![0u8; 4096];
        let n = s.read(&mut head).unwrap();
        String::from_utf8_lossy(&head[..n]).into_owned()
    };
    let unsigned = ask(b"GET /things/t1/shadow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(unsigned.starts_with("HTTP/1.1 403"), "{unsigned}");
    assert!(
        unsigned.contains("x-amzn-ErrorType: MissingAuthenticationTokenException"),
        "{unsigned}"
    );
    let forged = ask(
        b"GET /things/t1/shadow HTTP/1.1\r\nHost: x\r\nX-Amz-Date: 20261207T000000Z\r\n\
          Authorization: AWS4-HMAC-SHA256 Credential=twinrig/20261207/us-east-1/iotdata/aws4_request, \
          SignedHeaders=host;x-amz-date, Signature=00\r\n\r\n",
    );
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
    assert!(forged.contains("InvalidSignatureException"), "{forged}");
    let garbage = ask(b"\x01\x02\x03 nonsense\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let chunked = ask(b"POST /topics/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(chunked.starts_with("HTTP/1.1 411"), "{chunked}");
    let summary = served.stop();
    assert!(summary.contains("served the cloud"), "{summary}");
}

/// `twinrig ota --endpoint`: the fleet tools over the AWS SDK for Rust
/// (aws-sdk-iot, aws-sdk-iotdataplane) against `serve cloud --fleet`; a
/// device's report goes in over MQTT (mosquitto_pub).
#[test]
fn the_aws_fleet_backend_runs_prompts_against_the_live_twin() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    std::fs::write(
        &fleet,
        "fleet:\n  firmware:\n    - { type: pet_feeder, versions: [1.0.0, 2.0.0], size: 4KiB }\n    \
         - { type: sphero_rvr, versions: [3.0.0], size: 4KiB }\n  groups:\n    \
         - { type: pet_feeder, count: 3, id: \"feeder-{n:03}\", version: 1.0.0 }\n    \
         - { type: sphero_rvr, count: 1, id: \"rvr-{n:02}\", version: 3.0.0 }\n",
    )
    .unwrap();
    let fleet_arg = fleet.to_str().unwrap();
    let served = Served::start_with(
        &[
            "--http",
            "127.0.0.1:0",
            "--insecure-tcp",
            "127.0.0.1:0",
            "--fleet",
            fleet_arg,
        ],
        "http",
    );
    let endpoint = format!("http://127.0.0.1:{}", served.port);
    let ota = |prompt: &str, extra: &[&str]| ota_against(&endpoint, &fleet, prompt, extra);
    // One device reports its version in its shadow, over MQTT.
    let reported = publish(
        served.port_of("tcp"),
        "feeder-002",
        "$aws/things/feeder-002/shadow/update",
        r#"{"state":{"reported":{"firmware":"1.0.0"}}}"#,
        "1",
    );
    assert!(reported.status.success(), "{}", text(&reported));

    let (code, status) = ota("what versions are the pet feeders running?", &[]);
    assert_eq!(code, Some(0), "{status:#}");
    let call = tool_call(&status, "fleet_status");
    assert_eq!(
        call["result"]["pet_feeder"],
        serde_json::json!({"1.0.0": 1, "unknown": 2}),
        "{status:#}"
    );

    let (code, update) = ota(
        "update the pet_feeder device group to the latest firmware",
        &[],
    );
    assert_eq!(code, Some(0), "{update:#}");
    assert_eq!(update["outcome"], "created", "{update:#}");
    let created = &update["job_created"];
    assert_eq!(created["job_id"], "ota-1");
    assert_eq!(created["device_type"], "pet_feeder");
    assert_eq!(created["version"], "2.0.0");
    assert_eq!(
        created["targets"],
        serde_json::json!(["feeder-001", "feeder-002", "feeder-003"])
    );
    let job = &update["job"];
    assert_eq!(job["status"], "IN_PROGRESS", "{job:#}");
    assert_eq!(job["counts"]["total"], 3, "{job:#}");
    assert_eq!(job["counts"]["queued"], 3, "{job:#}");

    // twinrig's own rollout limit has no AWS equivalent: refused, not dropped.
    let (code, refused) = ota(
        "update the sphero_rvr device group to the latest firmware",
        &["--job-id", "ota-2", "--max-in-progress", "5"],
    );
    assert_eq!(code, Some(1), "{refused:#}");
    assert!(
        refused["answer"]
            .as_str()
            .is_some_and(|a| a.contains("maxInProgress")),
        "{refused:#}"
    );

    let (code, canceled) = ota("cancel the rollout", &[]);
    assert_eq!(code, Some(0), "{canceled:#}");
    let cancel = tool_call(&canceled, "cancel_job");
    assert_eq!(cancel["ok"], true, "{canceled:#}");
    assert!(
        cancel["summary"].as_str().unwrap().contains("ota-1"),
        "{canceled:#}"
    );
    // Nothing is in progress any more: ListJobs (IN_PROGRESS) finds no job.
    let (code, again) = ota("cancel the rollout", &[]);
    assert_eq!(code, Some(1), "{again:#}");
    assert!(
        again["answer"]
            .as_str()
            .is_some_and(|a| a.contains("no job is in progress")),
        "{again:#}"
    );
    let summary = served.stop();
    assert!(summary.contains("served the cloud"), "{summary}");
}

/// The first call of `tool` in an `ota --json` report.
fn tool_call<'r>(report: &'r Value, tool: &str) -> &'r Value {
    report["tool_calls"]
        .as_array()
        .and_then(|calls| calls.iter().find(|c| c["tool"] == tool))
        .unwrap_or_else(|| panic!("no {tool} call: {report:#}"))
}

/// `--state DIR`: shadows and jobs outlive a restart; a damaged state file
/// stops the server with its name, untouched.
#[test]
fn the_cloud_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    std::fs::write(
        &fleet,
        "fleet:\n  firmware:\n    - { type: pet_feeder, versions: [1.0.0, 2.0.0], size: 4KiB }\n  \
         groups:\n    - { type: pet_feeder, count: 2, id: \"feeder-{n:03}\", version: 1.0.0 }\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let args = [
        "--http",
        "127.0.0.1:0",
        "--insecure-tcp",
        "127.0.0.1:0",
        "--fleet",
        fleet.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ];
    let ota = |served: &Served, prompt: &str| -> Value {
        let endpoint = format!("http://127.0.0.1:{}", served.port);
        ota_against(&endpoint, &fleet, prompt, &[]).1
    };

    let served = Served::start_with(&args, "http");
    let reported = publish(
        served.port_of("tcp"),
        "feeder-001",
        "$aws/things/feeder-001/shadow/update",
        r#"{"state":{"reported":{"firmware":"1.0.0"}}}"#,
        "1",
    );
    assert!(reported.status.success(), "{}", text(&reported));
    let created = ota(
        &served,
        "update the pet_feeder device group to the latest firmware",
    );
    assert_eq!(created["job_created"]["job_id"], "ota-1", "{created:#}");
    let summary = served.stop();
    assert!(summary.contains("served the cloud"), "{summary}");
    assert!(state.join("state.json").is_file());

    // A new server on the same state: the shadow and the job are there.
    let served = Served::start_with(&args, "http");
    let status = ota(&served, "what versions are the pet feeders running?");
    assert_eq!(
        tool_call(&status, "fleet_status")["result"]["pet_feeder"],
        serde_json::json!({"1.0.0": 1, "unknown": 1}),
        "{status:#}"
    );
    let canceled = ota(&served, "cancel the rollout");
    let cancel = tool_call(&canceled, "cancel_job");
    assert_eq!(cancel["ok"], true, "{canceled:#}");
    assert!(
        cancel["summary"].as_str().unwrap().contains("ota-1"),
        "{canceled:#}"
    );
    served.stop();

    // A damaged state is refused, named, and left for the user.
    std::fs::write(state.join("state.json"), "{ not json").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(["serve", "cloud", "--duration", "5"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("state.json"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(state.join("state.json")).unwrap(),
        "{ not json"
    );
}

/// `twinrig ota PROMPT --endpoint ENDPOINT --fleet FLEET --json`, with the
/// local twin's credentials and no AWS config files: its exit code and report.
fn ota_against(
    endpoint: &str,
    fleet: &std::path::Path,
    prompt: &str,
    extra: &[&str],
) -> (Option<i32>, Value) {
    let nowhere = fleet.with_extension("no-aws-files");
    let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(["ota", prompt, "--endpoint", endpoint, "--json"])
        .arg("--fleet")
        .arg(fleet)
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", "twinrig")
        .env("AWS_SECRET_ACCESS_KEY", "twinrig-local-secret")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", &nowhere)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (o.status.code(), report)
}

/// `--scenario FILE`: the scenario's rules run on what clients publish, and
/// with `--state` their records are in `records.sqlite`, read here by the
/// store's own reader.
#[test]
fn a_scenarios_rules_record_what_clients_publish() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/cat-feeder/empty-hopper.yaml"
    );
    let served = Served::start_with(
        &[
            "--insecure-tcp",
            "127.0.0.1:0",
            "--scenario",
            scenario,
            "--state",
            state.to_str().unwrap(),
        ],
        "tcp",
    );
    // A cat feeder's state, as the firmware publishes it; then an action,
    // which the rule's WHERE leaves out.
    for payload in [
        r#"{"type":"state","food_capacity":7,"device_location":"hall","feeds":2,"ts":1767225600}"#,
        r#"{"event":"LONG"}"#,
    ] {
        let o = publish(
            served.port,
            "feeder-9",
            "cat-feeder/feeder-9/states",
            payload,
            "1",
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    served.stop();
    let store =
        twinrig_cloud::records::RecordStore::open_read_only(state.join("records.sqlite")).unwrap();
    let rows = store.list_all("catFeedersStates").unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0].record;
    assert_eq!(row.key, "feeder-9");
    assert_eq!(row.ts, 1_767_225_600);
    assert_eq!(row.fields["deviceLocation"], "hall");
    assert_eq!(row.fields["foodCapacity"], 7);
    assert_eq!(row.fields["feeds"], 2);
    // A scenario and a fleet file at once is refused.
    let o = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(["serve", "cloud", "--insecure-tcp", "127.0.0.1:0"])
        .args(["--scenario", scenario, "--fleet", scenario])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// mosquitto_pub or mosquitto_sub with `args`, speaking MQTT 5, to the end.
fn mqtt5(tool: &str, port: u16, args: &[&str], extra: &[String], stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(tool)
        .args([
            "-h",
            host(extra),
            "-p",
            &port.to_string(),
            "-V",
            "mqttv5",
            "-d",
        ])
        .args(args)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto-clients is installed (.ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn mqtt5_clients_get_reason_codes_and_keep_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ours = certs(dir.path(), "ours", &["feeder-001", "hub"]);
    let served = Served::tls_and_tcp(&ours);
    assert!(
        served.ready.contains("MQTT 3.1.1 and 5 on mqtts://"),
        "{}",
        served.ready
    );
    let port = served.port;
    let shadow = "$aws/things/feeder-001/shadow";
    let feeder = tls(&ours, Some("feeder-001"));
    let hub = tls(&ours, Some("hub"));

    // An MQTT 5 thing on its own topics; an MQTT 3.1.1 tool's desired state
    // reaches it as a delta, with its values.
    let mut args = feeder.clone();
    args.extend(["-V".to_owned(), "mqttv5".to_owned()]);
    let (sub, out) = subscribe_with(
        port,
        "feeder-001",
        &[&format!("{shadow}/update/delta")],
        1,
        &args,
    );
    let o = publish(
        served.port_of("tcp"),
        "operator",
        &format!("{shadow}/update"),
        r#"{"state":{"desired":{"food_capacity":100}}}"#,
        "1",
    );
    assert!(o.status.success(), "{}", text(&o));
    let got = messages(sub, out);
    assert_eq!(got[0].1["state"]["food_capacity"], 100);

    // Publishing on another thing's shadow: PUBACK 0x87 (135) for each of
    // two messages on one connection, which stays open between them.
    let o = mqtt5(
        "mosquitto_pub",
        port,
        &[
            "-i",
            "hub",
            "-q",
            "1",
            "-t",
            &format!("{shadow}/update"),
            "-l",
        ],
        &hub,
        "{\"state\":{\"desired\":{\"food_capacity\":0}}}\n{\"state\":{}}\n",
    );
    let t = text(&o);
    assert!(t.contains("received PUBACK (Mid: 1, RC:135)"), "{t}");
    assert!(t.contains("received PUBACK (Mid: 2, RC:135)"), "{t}");
    assert!(t.contains("Publish 1 failed: Not authorized"), "{t}");
    assert_eq!(t.matches("sending CONNECT").count(), 1, "{t}");
    // On its own shadow the same client gets PUBACK 0.
    let o = mqtt5(
        "mosquitto_pub",
        port,
        &[
            "-i",
            "hub",
            "-q",
            "1",
            "-t",
            "$aws/things/hub/shadow/update",
            "-m",
            "{\"state\":{}}",
        ],
        &hub,
        "",
    );
    assert!(
        text(&o).contains("received PUBACK (Mid: 1, RC:0)"),
        "{}",
        text(&o)
    );
    // Subscribing to another thing's topics: SUBACK 0x87.
    let o = mqtt5(
        "mosquitto_sub",
        port,
        &[
            "-i",
            "hub",
            "-t",
            &format!("{shadow}/update/accepted"),
            "-C",
            "1",
            "-W",
            "60",
        ],
        &hub,
        "",
    );
    let t = text(&o);
    assert!(t.contains("Subscribed (mid: 1): 135"), "{t}");
    assert!(t.contains("All subscription requests were denied"), "{t}");
    // Another thing's name as client id: CONNACK 0x87 (MQTT 3.1.1 gets none).
    let o = mqtt5(
        "mosquitto_pub",
        port,
        &["-i", "feeder-001", "-t", "a/b", "-m", "x"],
        &hub,
        "",
    );
    let t = text(&o);
    assert!(t.contains("received CONNACK (135)"), "{t}");
    assert!(t.contains("Connection error: Not authorized"), "{t}");

    // A second connection with the same client id takes the session over;
    // the first is told so with DISCONNECT 0x8E (142).
    let (mut first, first_out) = subscribe_with(
        port,
        "feeder-001",
        &[&format!("{shadow}/update/delta")],
        1,
        &args,
    );
    let o = mqtt5(
        "mosquitto_pub",
        port,
        &[
            "-i",
            "feeder-001",
            "-q",
            "1",
            "-t",
            &format!("{shadow}/update"),
            "-m",
            "{\"state\":{}}",
        ],
        &feeder,
        "",
    );
    assert!(
        text(&o).contains("received PUBACK (Mid: 1, RC:0)"),
        "{}",
        text(&o)
    );
    let lines: Vec<String> = first_out.lines().map(Result::unwrap).collect();
    let _ = wait(&mut first.0);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Received DISCONNECT (142)")),
        "{lines:?}"
    );

    let summary = served.stop();
    // Two publishes and one subscription denied, the connection kept.
    assert!(
        summary.contains("3 publishes or subscriptions denied (MQTT 5)"),
        "{summary}"
    );
}

#[test]
fn mqtt5_sessions_resume_end_and_unsubscribe_as_their_expiry_says() {
    let served = Served::start();
    let port = served.port;
    // `-c`: Clean Start 0 (resume if there is a session); `-x`: its expiry.
    let sub = |id: &str, expiry: &str, extra: &[&str], wait_s: &str| {
        let mut args = vec!["-i", id, "-q", "1", "-v", "-W", wait_s, "-c", "-x", expiry];
        args.extend_from_slice(extra);
        text(&mqtt5("mosquitto_sub", port, &args, &[], ""))
    };
    let away = |topic: &str, payload: &str| {
        let o = publish(port, "publisher", topic, payload, "1");
        assert!(o.status.success(), "{}", text(&o));
    };
    // Session Expiry 600 s: what arrives while the client is away waits
    // for it, and its subscription is still there when it comes back.
    let t = sub("keeper", "600", &["-t", "kept/#", "-E"], "60");
    assert!(t.contains("Subscribed (mid: 1): 1"), "{t}");
    away("kept/1", "while-away");
    let t = sub("keeper", "600", &["-t", "other", "-C", "1"], "60");
    assert!(t.contains("kept/1 while-away"), "{t}");
    // UNSUBSCRIBE removes it: nothing more arrives on it.
    let t = sub(
        "keeper",
        "600",
        &["-t", "other", "-U", "kept/#", "-E"],
        "60",
    );
    assert!(t.contains("sending UNSUBSCRIBE"), "{t}");
    away("kept/2", "after-unsubscribe");
    let t = sub("keeper", "600", &["-t", "other", "-C", "1"], "2");
    assert!(!t.contains("after-unsubscribe"), "{t}");
    assert!(t.contains("Timed out"), "{t}");
    // No Session Expiry (0): the session ends with the connection, its
    // subscription with it, even when the client asks to resume.
    let t = sub("brief", "0", &["-t", "brief/#", "-E"], "60");
    assert!(t.contains("Subscribed (mid: 1): 1"), "{t}");
    away("brief/1", "while-away");
    let t = sub("brief", "0", &["-t", "other", "-C", "1"], "2");
    assert!(!t.contains("while-away"), "{t}");
    assert!(t.contains("Timed out"), "{t}");
    let summary = served.stop();
    assert!(summary.contains("0 refused"), "{summary}");
}

/// `mosquitto_sub` on plain TCP printing `RETAIN TOPIC PAYLOAD` per message,
/// returned once subscribed (it printed its SUBACK).
fn watch(
    port: u16,
    client_id: &str,
    topics: &[&str],
    extra: &[&str],
) -> (Reaped, BufReader<ChildStdout>) {
    let mut command = Command::new("stdbuf");
    command
        .args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-i", client_id, "-q", "1", "-F", "%r %t %p", "-d"])
        .args(["-W", &LIMIT.as_secs().to_string()])
        .args(extra);
    for t in topics {
        command.args(["-t", t]);
    }
    let mut child = Reaped(command.stdout(Stdio::piped()).spawn().unwrap());
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "mosquitto_sub ended before its SUBACK"
        );
        if line.starts_with("Subscribed (mid") {
            return (child, out);
        }
    }
}

/// The next message a [`watch`]er printed (its debug lines skipped).
fn next_message(out: &mut BufReader<ChildStdout>) -> String {
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "mosquitto_sub ended");
        if !line.starts_with("Client ") && !line.starts_with("Subscribed") {
            return line.trim_end().to_owned();
        }
    }
}

/// Retained messages and Last Wills as AWS IoT keeps them
/// (aws-iot-core-endpoint.md): a retained message goes to a new exact-topic
/// subscriber with RETAIN set, never to a wildcard one, and an empty one
/// deletes it; a will is published when a client's connection ends without
/// DISCONNECT, never after one, and retained when it says so.
#[test]
fn retained_messages_and_last_wills_as_aws_iot_keeps_them() {
    let served = Served::start();
    let port = served.port;
    let retained = |topic: &str, payload: Option<&str>, version: &str| {
        let mut c = Command::new("mosquitto_pub");
        c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", version])
            .args(["-i", "keeper", "-q", "1", "-r", "-t", topic]);
        match payload {
            Some(p) => c.args(["-m", p]),
            None => c.arg("-n"),
        };
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    let marker = |topic: &str, payload: &str| {
        let o = publish(port, "marker", topic, payload, "1");
        assert!(o.status.success(), "{}", text(&o));
    };

    retained("home/a/status", Some("on"), "mqttv311");
    let (_exact, mut exact) = watch(port, "exact", &["home/a/status"], &[]);
    assert_eq!(next_message(&mut exact), "1 home/a/status on");
    // A wildcard subscriber gets no retained message: its first is the marker.
    let (_wild, mut wild) = watch(port, "wild", &["home/+/status"], &[]);
    marker("home/b/status", "marker");
    assert_eq!(next_message(&mut wild), "0 home/b/status marker");
    // The live copy of a retained publish has no RETAIN flag.
    retained("home/a/status", Some("off"), "mqttv5");
    assert_eq!(next_message(&mut exact), "0 home/a/status off");
    // An empty retained publish deletes it (and is forwarded).
    retained("home/a/status", None, "mqttv311");
    assert_eq!(next_message(&mut exact), "0 home/a/status");
    let (_late, mut late) = watch(port, "late", &["home/a/status"], &[]);
    marker("home/a/status", "after");
    assert_eq!(next_message(&mut late), "0 home/a/status after");

    // Wills: one client says goodbye, two are killed (one will retained).
    let (_wills, mut wills) = watch(port, "will-watcher", &["wills/#"], &[]);
    let o = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-i", "polite"])
        .args(["--will-topic", "wills/polite", "--will-payload", "bye"])
        .args(["-t", "polite/x", "-m", "hi"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let (mut dying, _) = watch(
        port,
        "dying",
        &["dying/x"],
        &[
            "--will-topic",
            "wills/dying",
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
        ],
    );
    dying.0.kill().unwrap();
    dying.0.wait().unwrap();
    assert_eq!(next_message(&mut wills), "0 wills/dying gone");
    let (mut keeper, _) = watch(
        port,
        "keeper-2",
        &["keeper-2/x"],
        &[
            "--will-topic",
            "wills/kept",
            "--will-payload",
            "last",
            "--will-retain",
        ],
    );
    keeper.0.kill().unwrap();
    keeper.0.wait().unwrap();
    assert_eq!(next_message(&mut wills), "0 wills/kept last");
    let (_after, mut after) = watch(port, "after-will", &["wills/kept"], &[]);
    assert_eq!(next_message(&mut after), "1 wills/kept last");
    // Nothing else reached the watcher: no will for the polite client.
    marker("wills/marker", "m");
    assert_eq!(next_message(&mut wills), "0 wills/marker m");
    drop(served);
}
