//! The session against a real broker: Debian's mosquitto, started here on
//! a free loopback port with a generated configuration.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use tempfile::TempDir;

use super::*;

/// Generous limit on any wait: a hang guard on a busy machine, not a timing check.
const GUARD: Duration = Duration::from_secs(60);

fn mosquitto() -> PathBuf {
    for path in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(path).exists() {
            return path.into();
        }
    }
    panic!(
        "the mosquitto broker is not installed: these tests need Debian's `mosquitto` \
         (.ci/run installs it: apt-get install mosquitto=2.0.11*)"
    );
}

/// A mosquitto process with persistence in its own directory.
struct Broker {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Broker {
    fn start() -> Broker {
        Self::start_with("", &[])
    }

    /// A broker with `extra` configuration lines and `files` in its
    /// directory (named `{dir}` in the lines).
    fn start_with(extra: &str, files: &[(&str, &str)]) -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let conf = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence true\n\
             persistence_location {}/\n\
             user root\n\
             log_dest stderr\n\
             {}",
            dir.path().display(),
            extra.replace("{dir}", &dir.path().display().to_string()),
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let mut broker = Broker {
            child: None,
            port,
            dir,
        };
        broker.run();
        broker
    }

    /// Starts the process and waits until it accepts connections.
    fn run(&mut self) {
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto did not start");
        self.child = Some(child);
        let since = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mosquitto exited: {status}");
            }
            assert!(since.elapsed() < GUARD, "mosquitto did not listen in 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it as a service manager does (SIGTERM): it saves its sessions.
    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap();
    }

    fn config(&self, client_id: &str) -> MqttConfig {
        MqttConfig {
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(500),
            ..MqttConfig::new(client_id, "127.0.0.1", self.port)
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Awaits `f` with the hang guard.
async fn guarded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing in 60 s"))
}

/// Waits until `cond` holds (polling every 10 ms), with the hang guard.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    guarded(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test]
async fn publish_subscribe_round_trip() {
    let broker = Broker::start();
    let device = MqttSession::connect(broker.config("device-1")).unwrap();
    let cloud = MqttSession::connect(broker.config("cloud")).unwrap();
    assert_eq!(device.client_id(), "device-1");

    guarded(
        "suback",
        device.subscribe("cmd/device-1/#", QoS::AtLeastOnce),
    )
    .await
    .unwrap();
    guarded("suback", cloud.subscribe("tele/+/state", QoS::AtLeastOnce))
        .await
        .unwrap();
    assert_eq!(
        device.subscribe("cmd/#/x", QoS::AtMostOnce).await,
        Err(MqttError::InvalidTopic)
    );
    assert_eq!(
        device.publish("tele/+/state", b"x", QoS::AtMostOnce).await,
        Err(MqttError::InvalidTopic)
    );
    assert_eq!(
        device
            .publish("tele/a", &vec![0; 128 * 1024 + 1], QoS::AtMostOnce)
            .await,
        Err(MqttError::PayloadTooLarge)
    );

    // Device to cloud, in order, payloads unchanged (binary too).
    let payloads: Vec<Vec<u8>> = vec![
        br#"{"state":"idle"}"#.to_vec(),
        vec![0, 255, 1, 254],
        b"third".to_vec(),
    ];
    for p in &payloads {
        device
            .publish("tele/device-1/state", p, QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    for p in &payloads {
        let m = guarded("receive", cloud.receive()).await.unwrap();
        assert_eq!(m.topic, "tele/device-1/state");
        assert_eq!(&m.payload, p);
        assert_eq!(m.qos, QoS::AtLeastOnce);
    }

    // Cloud to device; QoS 0 is delivered as QoS 0.
    cloud
        .publish("cmd/device-1/feed", b"{\"grams\":20}", QoS::AtMostOnce)
        .await
        .unwrap();
    let m = guarded("receive", device.receive()).await.unwrap();
    assert_eq!(
        m,
        MqttMessage {
            topic: "cmd/device-1/feed".into(),
            payload: b"{\"grams\":20}".to_vec(),
            qos: QoS::AtMostOnce,
        }
    );
    let stats = device.stats();
    assert_eq!((stats.connects, stats.disconnects), (1, 0));
    assert_eq!((stats.publishes_refused, stats.messages_dropped), (0, 0));
}

#[tokio::test]
async fn a_broker_restart_keeps_the_session_and_queued_qos1() {
    let mut broker = Broker::start();
    let device = MqttSession::connect(broker.config("device-2")).unwrap();
    let cloud = MqttSession::connect(broker.config("cloud-2")).unwrap();
    guarded(
        "suback",
        device.subscribe("cmd/device-2/#", QoS::AtLeastOnce),
    )
    .await
    .unwrap();
    guarded("suback", cloud.subscribe("tele/#", QoS::AtLeastOnce))
        .await
        .unwrap();
    device
        .publish("tele/device-2", b"before", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(
        guarded("receive", cloud.receive()).await.unwrap().payload,
        b"before"
    );

    broker.stop();
    until("the device notices the broker is gone", || {
        !device.is_connected() && device.stats().disconnects == 1
    })
    .await;
    // Published while the broker is down: queued in the session.
    device
        .publish("tele/device-2", b"while-down", QoS::AtLeastOnce)
        .await
        .unwrap();

    broker.run();
    let m = guarded("the queued message", cloud.receive())
        .await
        .unwrap();
    assert_eq!(m.topic, "tele/device-2");
    assert_eq!(m.payload, b"while-down");
    assert_eq!(m.qos, QoS::AtLeastOnce);

    // The device's subscription survived the restart.
    until("the device reconnects", || device.is_connected()).await;
    cloud
        .publish("cmd/device-2/reboot", b"now", QoS::AtLeastOnce)
        .await
        .unwrap();
    let m = guarded("the command", device.receive()).await.unwrap();
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice()),
        ("cmd/device-2/reboot", &b"now"[..])
    );
    let stats = device.stats();
    assert_eq!((stats.connects, stats.disconnects), (2, 1));
    assert_eq!(stats.publishes_refused, 0);
}

/// mosquitto 2.0 grants an ACL-denied subscription (0x00) and just
/// delivers nothing, so the refusal is fed to the event-loop task here as
/// AWS IoT sends it (return code 0x80).
#[tokio::test]
async fn a_failure_return_code_refuses_the_subscription() {
    let (client, eventloop) = AsyncClient::new(MqttOptions::new("x", "127.0.0.1", 1), 4);
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake: Notify::new(),
        changed: Notify::new(),
    });
    let (inbox, _rx) = mpsc::channel(1);
    let mut driver = Driver {
        eventloop,
        client,
        shared: shared.clone(),
        inbox,
        backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(1)),
    };
    let suback =
        |pkid, code| Event::Incoming(Incoming::SubAck(rumqttc::SubAck::new(pkid, vec![code])));
    for (filter, code, want) in [
        (
            "secret/#",
            SubscribeReasonCode::Failure,
            Err(MqttError::SubscribeRefused),
        ),
        (
            "cmd/x",
            SubscribeReasonCode::Success(rumqttc::QoS::AtLeastOnce),
            Ok(()),
        ),
    ] {
        let (reply, answer) = oneshot::channel();
        shared.lock().connected = true;
        shared.lock().queue.push_back(SubJob {
            filter: filter.into(),
            qos: rumqttc::QoS::AtLeastOnce,
            reply: Some(reply),
        });
        driver.send_next_subscription();
        driver.handle(Event::Outgoing(Outgoing::Subscribe(7)));
        // Another packet id's SUBACK is not this subscription's.
        driver.handle(suback(
            6,
            SubscribeReasonCode::Success(rumqttc::QoS::AtMostOnce),
        ));
        assert!(shared.lock().in_flight.is_some());
        driver.handle(suback(7, code));
        assert_eq!(answer.await.unwrap(), want);
    }
    let granted: Vec<String> = shared.lock().granted.keys().cloned().collect();
    assert_eq!(granted, ["cmd/x"]);
}

#[tokio::test]
async fn a_full_offline_queue_refuses_and_counts() {
    // Nothing listens on this port: the session never connects.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let session = MqttSession::connect(MqttConfig {
        offline_queue: 3,
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(100),
        ..MqttConfig::new("lonely", "127.0.0.1", port)
    })
    .unwrap();
    for i in 0..3u8 {
        session.publish("t", &[i], QoS::AtLeastOnce).await.unwrap();
    }
    assert_eq!(
        session.publish("t", b"4th", QoS::AtLeastOnce).await,
        Err(MqttError::Disconnected)
    );
    assert_eq!(
        session.publish("t", b"5th", QoS::AtMostOnce).await,
        Err(MqttError::Disconnected)
    );
    assert!(!session.is_connected());
    assert_eq!(session.stats().publishes_refused, 2);
}

#[test]
fn setup_errors() {
    assert!(matches!(
        MqttSession::connect(MqttConfig::new("x", "127.0.0.1", 1883)),
        Err(MqttSetupError::NoRuntime)
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    assert!(matches!(
        MqttSession::connect(MqttConfig::new("", "127.0.0.1", 1883)),
        Err(MqttSetupError::EmptyClientId)
    ));
    let err = MqttSession::connect(MqttConfig {
        transport: MqttTransport::Tls {
            ca_file: "/nonexistent/AmazonRootCA1.pem".into(),
            cert_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
            alpn: None,
        },
        ..MqttConfig::new("x", "127.0.0.1", 8883)
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("AmazonRootCA1.pem"), "{err}");
}

#[test]
fn backoff_doubles_up_to_the_cap_with_jitter() {
    let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
    let bases = [100, 200, 400, 800, 800, 800];
    for base in bases {
        let d = b.delay();
        let base = Duration::from_millis(base);
        assert!(d >= base / 2 && d <= base, "{d:?} for {base:?}");
    }
    b.reset();
    assert!(b.delay() <= Duration::from_millis(100));
}

/// `flush` returns once every QoS 1 publish is acknowledged, including one
/// queued while the broker was down; without a broker it gives up at its limit.
#[tokio::test]
async fn flush_waits_for_the_pubacks() {
    let mut broker = Broker::start();
    let device = MqttSession::connect(broker.config("device-flush")).unwrap();
    until("connected", || device.is_connected()).await;
    for n in 0..5u8 {
        device
            .publish("tele/device-flush", &[n], QoS::AtLeastOnce)
            .await
            .unwrap();
    }
    assert!(guarded("flush", device.flush(GUARD)).await);

    broker.stop();
    until("the device notices the broker is gone", || {
        !device.is_connected()
    })
    .await;
    device
        .publish("tele/device-flush", b"while-down", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert!(
        !device.flush(Duration::from_millis(200)).await,
        "nothing can ack it"
    );
    broker.run();
    assert!(guarded("flush after the restart", device.flush(GUARD)).await);
}
