//! End-to-end: the bridge firmware against the RVR twin (physics, UART at
//! 115200 baud, the twin's processors) and an MQTT network with a tiny
//! in-memory router, all in virtual time.

use std::cell::RefCell;
use std::rc::Rc;

use rvr_bridge::{BridgeConfig, run};
use rvr_twin::{DriveParams, RvrBody, RvrConfig, RvrTwin};
use serde_json::Value;
use twinrig_hal::mqtt::topic_matches;
use twinrig_hal::{MqttClient, QoS};
use twinrig_sim::net::{LinkParams, Network, RoutedDelivery, RoutedPublish, Router, SimMqttClient};
use twinrig_sim::physics::{BodySpec, PhysicsConfig, PhysicsWorld, Shape};
use twinrig_sim::uart::{Direction, Uart, UartConfig, UartControl};
use twinrig_sim::{MILLIS, Nanos, SECONDS, Sim};

const THING: &str = "XIAO-RVR-1";
const ACTION: &str = "the-project/sphero-rvr/XIAO-RVR-1/action";
const STATE: &str = "the-project/sphero-rvr/XIAO-RVR-1/state";

/// A broker in a few lines: match filters, deliver in batch order.
#[derive(Default)]
struct MemRouter {
    clients: Vec<String>,
    subscriptions: Vec<(usize, String)>,
}

impl Router for MemRouter {
    fn connect(&mut self, client: &str) -> Result<usize, String> {
        self.clients.push(client.to_string());
        Ok(self.clients.len() - 1)
    }

    fn subscribe(&mut self, client: usize, filter: &str) -> Result<(), String> {
        self.subscriptions.push((client, filter.to_string()));
        Ok(())
    }

    fn unsubscribe(&mut self, client: usize, filter: &str) -> Result<(), String> {
        self.subscriptions
            .retain(|(c, f)| (*c, f.as_str()) != (client, filter));
        Ok(())
    }

    fn route(&mut self, batch: &[RoutedPublish]) -> Result<Vec<RoutedDelivery>, String> {
        let mut out = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            for (to, filter) in &self.subscriptions {
                if topic_matches(filter, &p.topic) {
                    out.push(RoutedDelivery {
                        publish: i,
                        to: *to,
                        filter: filter.clone(),
                        topic: p.topic.clone(),
                        payload: p.payload.clone(),
                    });
                }
            }
        }
        Ok(out)
    }
}

struct Rig {
    sim: Sim,
    net: Network,
    twin: RvrTwin,
    uart: UartControl,
    cloud: SimMqttClient,
    /// World pose (x, y, yaw deg) when the bridge came online.
    start: (f32, f32, f32),
}

fn config() -> BridgeConfig {
    BridgeConfig {
        epoch_offset_s: 1_780_000_000,
        ..BridgeConfig::default()
    }
}

fn rig(config: BridgeConfig) -> Rig {
    rig_with(config, |_| {})
}

/// Builds the world, boots the bridge and waits for its `online` status.
fn rig_with(config: BridgeConfig, world_setup: impl FnOnce(&PhysicsWorld)) -> Rig {
    let mut sim = Sim::new(7);
    let h = sim.handle();
    let world = PhysicsWorld::new(&h, PhysicsConfig::default()).unwrap();
    sim.add_process("physics", world.clone());
    world_setup(&world);
    let body = RvrBody::spawn(&world, "rvr", 0.0, 0.0, 0.0, DriveParams::default()).unwrap();
    // An ESP32-like RX FIFO: wake at 32 bytes or after 3 idle byte times.
    let uart_config = UartConfig {
        rx_wake_threshold: 32,
        rx_idle_symbols: 3,
        ..UartConfig::default()
    };
    assert_eq!(uart_config.baud, 115_200);
    let (a, b, uart) = Uart::pair(&h, "rvr-uart", uart_config);
    let (brx, btx) = b.split();
    let twin = RvrTwin::spawn(&h, "rvr", body, brx, btx, RvrConfig::default());
    let net = Network::new(&h, Box::new(MemRouter::default()));
    sim.add_process("network", net.clone());
    let device = net.connect(THING, LinkParams::ideal()).unwrap();
    let cloud = net.connect("cloud", LinkParams::ideal()).unwrap();
    let (arx, atx) = a.split();
    let (clock, delay) = (h.clock(), h.delay());
    sim.spawn("rvr-bridge", async move {
        run(arx, atx, &device, &clock, delay, &config).await;
    });
    let mut rig = Rig {
        sim,
        net,
        twin,
        uart,
        cloud,
        start: (0.0, 0.0, 0.0),
    };
    let online = rig.wait_for(5 * SECONDS, |m| m["type"] == "status");
    assert_eq!(online["status"], "online");
    assert_eq!(online["boot_failures"], serde_json::json!([]));
    let p = rig.twin.body().planar();
    rig.start = (p.x, p.y, p.yaw.to_degrees());
    rig
}

fn wrap(a: f32) -> f32 {
    let mut a = a % 360.0;
    if a > 180.0 {
        a -= 360.0;
    } else if a <= -180.0 {
        a += 360.0;
    }
    a
}

impl Rig {
    fn now(&self) -> Nanos {
        self.sim.now()
    }

    /// Publishes a command from "the cloud" at the current virtual time.
    fn send(&mut self, payload: impl AsRef<[u8]>) {
        let cloud = self.cloud.clone();
        let payload = payload.as_ref().to_vec();
        self.sim.spawn("cloud", async move {
            cloud
                .publish(ACTION, &payload, QoS::AtLeastOnce)
                .await
                .unwrap();
        });
    }

    /// Every message the bridge published on its state topic, with its time.
    fn messages(&self) -> Vec<(Nanos, Value)> {
        messages_of(&self.net)
    }

    fn run_for(&mut self, d: Nanos) {
        let limit = self.now() + d;
        self.sim.run_until(limit, |_| false).unwrap();
        self.check_no_failures();
    }

    fn check_no_failures(&self) {
        assert!(self.sim.failures().is_empty(), "{:?}", self.sim.failures());
    }

    /// Runs until a new state message satisfies `pred` (panics after `timeout`).
    fn wait_for(&mut self, timeout: Nanos, pred: impl Fn(&Value) -> bool + 'static) -> Value {
        let seen = self.net.observed_len();
        let net = self.net.clone();
        let found: Rc<RefCell<Option<Value>>> = Rc::default();
        let f = found.clone();
        let limit = self.now() + timeout;
        self.sim
            .run_until(limit, move |_| {
                let observed = net.observed();
                for o in &observed[seen..] {
                    if o.topic == STATE
                        && let Ok(v) = serde_json::from_slice::<Value>(&o.payload)
                        && pred(&v)
                    {
                        *f.borrow_mut() = Some(v);
                        return true;
                    }
                }
                false
            })
            .unwrap();
        self.check_no_failures();
        let v = found.borrow_mut().take();
        v.unwrap_or_else(|| {
            panic!(
                "no matching message within {timeout} ns; got {:#?}",
                self.messages().iter().rev().take(8).collect::<Vec<_>>()
            )
        })
    }

    fn wait_event(&mut self, id: &'static str, status: &'static str, timeout: Nanos) -> Value {
        self.wait_for(timeout, move |m| {
            m["type"] == "maneuver" && m["id"] == id && m["status"] == status
        })
    }

    /// Terminal event of maneuver `id`.
    fn wait_end(&mut self, id: &'static str, timeout: Nanos) -> Value {
        self.wait_for(timeout, move |m| {
            m["type"] == "maneuver"
                && m["id"] == id
                && ["completed", "cancelled", "timeout", "blocked", "failed"]
                    .contains(&m["status"].as_str().unwrap_or(""))
        })
    }

    /// World displacement since boot, in the robot's start frame:
    /// (forward m, left m, yaw change deg).
    fn moved(&self) -> (f32, f32, f32) {
        let p = self.twin.body().planar();
        let (dx, dy) = (p.x - self.start.0, p.y - self.start.1);
        let h = self.start.2.to_radians();
        let forward = dx * h.cos() + dy * h.sin();
        let left = -dx * h.sin() + dy * h.cos();
        (forward, left, wrap(p.yaw.to_degrees() - self.start.2))
    }

    fn speed(&self) -> f32 {
        let p = self.twin.body().planar();
        (p.vx * p.vx + p.vy * p.vy).sqrt()
    }

    fn at_rest(&self) -> bool {
        let p = self.twin.body().planar();
        self.speed() < 0.005
            && p.yaw_rate.abs() < 0.01
            && self.twin.body().drive().tread == [0.0, 0.0]
    }
}

fn messages_of(net: &Network) -> Vec<(Nanos, Value)> {
    net.observed()
        .iter()
        .filter(|o| o.topic == STATE)
        .filter_map(|o| serde_json::from_slice(&o.payload).ok().map(|v| (o.time, v)))
        .collect()
}

fn f(v: &Value) -> f32 {
    v.as_f64().unwrap_or(f64::NAN) as f32
}

#[test]
fn forward_one_metre_ends_within_2_cm_along_and_1_cm_sideways() {
    let mut rig = rig(config());
    rig.send(r#"{"id":"f1","action":"forward","distance_m":1.0}"#);
    let accepted = rig.wait_event("f1", "accepted", SECONDS);
    assert_eq!(accepted["queue_position"], 0);
    let started_at = rig.now();
    let done = rig.wait_end("f1", 10 * SECONDS);
    assert_eq!(done["status"], "completed", "{done}");
    let (forward, left, yaw) = rig.moved();
    let reported = f(&done["measured"]["distance_m"]);
    eprintln!(
        "forward 1 m: moved {forward:.4} m ahead, {left:.4} m left, yaw {yaw:.3} deg; reported {reported}; took {:.2} s",
        (rig.now() - started_at) as f64 / 1e9
    );
    assert!((forward - 1.0).abs() <= 0.02, "along the path: {forward}");
    assert!(left.abs() <= 0.01, "sideways: {left}");
    assert!(
        (reported - forward).abs() < 0.002,
        "reported {reported} vs {forward}"
    );
    assert!(rig.at_rest());
    // Progress came in between, at about 0.5 s intervals.
    let progress: Vec<Nanos> = rig
        .messages()
        .iter()
        .filter(|(_, m)| m["id"] == "f1" && m["status"] == "progress")
        .map(|(t, _)| *t)
        .collect();
    assert!(progress.len() >= 3, "{progress:?}");
    for w in progress.windows(2) {
        assert!(
            (w[1] - w[0]).abs_diff(500 * MILLIS) <= 60 * MILLIS,
            "{progress:?}"
        );
    }
}

#[test]
fn reverse_half_a_metre() {
    let mut rig = rig(config());
    rig.send(r#"{"id":"r1","action":"reverse","distance_m":0.5}"#);
    let done = rig.wait_end("r1", 10 * SECONDS);
    assert_eq!(done["status"], "completed", "{done}");
    let (forward, left, yaw) = rig.moved();
    eprintln!("reverse 0.5 m: moved {forward:.4} m ahead, {left:.4} m left, yaw {yaw:.3} deg");
    assert!((forward + 0.5).abs() <= 0.02, "along the path: {forward}");
    assert!(left.abs() <= 0.01, "sideways: {left}");
    assert!(rig.at_rest());
}

fn turn_by(degrees: f32) {
    let mut rig = rig(config());
    rig.send(format!(
        r#"{{"id":"t","action":"turn","degrees":{degrees}}}"#
    ));
    let done = rig.wait_end("t", 10 * SECONDS);
    assert_eq!(done["status"], "completed", "{done}");
    let (forward, left, yaw) = rig.moved();
    let reported = f(&done["measured"]["degrees"]);
    eprintln!(
        "turn {degrees}: yaw changed {yaw:.3} deg (reported {reported}), drifted {forward:.4}/{left:.4} m"
    );
    assert!((yaw - degrees).abs() <= 2.0, "turned {yaw}");
    assert!((reported - yaw).abs() < 0.2, "reported {reported} vs {yaw}");
    assert!(forward.abs() < 0.01 && left.abs() < 0.01);
    assert!(rig.at_rest());
}

#[test]
fn turn_left_90_degrees() {
    turn_by(90.0);
}

#[test]
fn turn_right_90_degrees() {
    turn_by(-90.0);
}

#[test]
fn cancel_mid_way_brings_the_robot_to_rest_within_300_ms() {
    let mut rig = rig(config());
    rig.send(r#"{"id":"long","action":"forward","distance_m":3.0}"#);
    rig.wait_for(5 * SECONDS, |m| {
        m["id"] == "long" && m["status"] == "progress" && f(&m["measured"]["distance_m"]) > 0.5
    });
    let speed_before = rig.speed();
    assert!(speed_before > 0.35, "cruising at {speed_before}");
    rig.send(r#"{"id":"stop","action":"cancel"}"#);
    let cancel_at = rig.now();
    // Find when the robot came to rest.
    let mut rest_after = None;
    for step in 1..=60 {
        rig.run_for(5 * MILLIS);
        if rig.at_rest() {
            rest_after = Some(step * 5);
            break;
        }
    }
    let rest_ms = rest_after.expect("robot never came to rest");
    eprintln!("cancel at {speed_before:.3} m/s: at rest {rest_ms} ms after the cancel arrived");
    assert!(rest_ms <= 300, "at rest after {rest_ms} ms");
    let ev = rig.wait_end("long", SECONDS);
    assert_eq!(ev["status"], "cancelled");
    assert_eq!(ev["reason"], "cancel requested");
    let (forward, _, _) = rig.moved();
    assert!((f(&ev["measured"]["distance_m"]) - forward).abs() < 0.005);
    // The robot stays put.
    let drives = rig.twin.stats().drive_commands;
    rig.run_for(2 * SECONDS);
    assert!(rig.at_rest());
    assert_eq!(
        rig.twin.stats().drive_commands,
        drives,
        "drove after the cancel"
    );
    assert!(rig.now() > cancel_at);
}

#[test]
fn malformed_commands_get_errors_and_the_robot_does_not_move() {
    let mut rig = rig(config());
    let bad: Vec<(Vec<u8>, &str, Value)> = vec![
        (b"hello".to_vec(), "invalid_json", Value::Null),
        (vec![0x7B, 0xC3, 0x28, 0x7D], "not_utf8", Value::Null),
        (b"[1,2,3]".to_vec(), "not_an_object", Value::Null),
        (
            br#"{"id":"e1","action":"fly"}"#.to_vec(),
            "unknown_action",
            "e1".into(),
        ),
        (
            br#"{"id":"e2","action":"forward"}"#.to_vec(),
            "missing_field",
            "e2".into(),
        ),
        (
            br#"{"id":"e3","action":"forward","distance_m":-1}"#.to_vec(),
            "out_of_range",
            "e3".into(),
        ),
        (
            br#"{"id":"e4","action":"forward","distance_m":0}"#.to_vec(),
            "out_of_range",
            "e4".into(),
        ),
        (
            br#"{"id":"e5","action":"forward","distance_m":"NaN"}"#.to_vec(),
            "invalid_value",
            "e5".into(),
        ),
        (
            br#"{"id":"e6","action":"forward","distance_m":1e6}"#.to_vec(),
            "out_of_range",
            "e6".into(),
        ),
        (
            br#"{"id":"e7","action":"turn","degrees":99999}"#.to_vec(),
            "out_of_range",
            "e7".into(),
        ),
        (
            br#"{"id":"e8","action":"drive","direction":"up"}"#.to_vec(),
            "invalid_value",
            "e8".into(),
        ),
        (
            br#"{"id":"e9","action":"drive","direction":"forward","speed":9}"#.to_vec(),
            "out_of_range",
            "e9".into(),
        ),
        (
            format!(
                r#"{{"id":"big","action":"cancel","pad":"{}"}}"#,
                "x".repeat(2000)
            )
            .into_bytes(),
            "payload_too_large",
            Value::Null,
        ),
    ];
    let before = rig.twin.stats().drive_commands;
    for (payload, _, _) in &bad {
        rig.send(payload);
    }
    rig.run_for(500 * MILLIS);
    let errors: Vec<Value> = rig
        .messages()
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| m["type"] == "error")
        .collect();
    assert_eq!(errors.len(), bad.len(), "{errors:#?}");
    for ((_, code, id), e) in bad.iter().zip(&errors) {
        assert_eq!(e["code"], *code, "{e}");
        assert_eq!(e["id"], *id, "{e}");
        assert!(!e["error"].as_str().unwrap().is_empty());
        assert!(e["ts"].as_u64().unwrap() >= 1_780_000_000);
    }
    eprintln!("error example: {}", errors[5]);
    assert_eq!(
        rig.twin.stats().drive_commands,
        before,
        "a drive command reached the RVR"
    );
    let (forward, left, yaw) = rig.moved();
    assert!(forward.abs() < 1e-3 && left.abs() < 1e-3 && yaw.abs() < 0.1);
    assert!(
        !rig.messages().iter().any(|(_, m)| m["type"] == "maneuver"),
        "no maneuver was accepted"
    );
}

#[test]
fn the_dpad_drives_while_commands_come_and_stops_when_they_stop() {
    let mut rig = rig(config());
    for _ in 0..8 {
        rig.send(r#"{"action":"drive","direction":"forward","speed":0.3}"#);
        rig.run_for(250 * MILLIS);
    }
    let speed = rig.speed();
    let telemetry = rig.wait_for(2 * SECONDS, |m| {
        m["type"] == "telemetry" && !m["drive"].is_null()
    });
    assert_eq!(telemetry["drive"]["direction"], "forward");
    assert!((speed - 0.3).abs() < 0.01, "driving at {speed}");
    // Commands stopped at the last send (8 * 250 ms ago minus one interval,
    // plus the telemetry wait). Find the last drive command's time.
    let last = rig
        .net
        .observed()
        .iter()
        .filter(|o| o.topic == ACTION)
        .map(|o| o.time)
        .max()
        .unwrap();
    let (ahead_at_stop_cmds, _, _) = rig.moved();
    let still_moving_until = last + 900 * MILLIS;
    if rig.now() < still_moving_until {
        let d = still_moving_until - rig.now();
        rig.run_for(d);
    }
    assert!(rig.speed() > 0.25, "stopped before the D-pad timeout");
    while !rig.at_rest() && rig.now() < last + 2 * SECONDS {
        rig.run_for(10 * MILLIS);
    }
    let rest_ms = (rig.now() - last) / MILLIS;
    // D-pad timeout 1 s + a decelerating stop from 0.3 m/s (0.15 s).
    assert!(
        rest_ms <= 1300,
        "at rest {rest_ms} ms after the last command"
    );
    let (ahead, left, _) = rig.moved();
    eprintln!(
        "D-pad: 8 commands over 2 s at 0.3 m/s; at rest {rest_ms} ms after the last; moved {ahead:.3} m ({ahead_at_stop_cmds:.3} m at the last command), {left:.4} m sideways"
    );
    // About 2 s + 1 s timeout at 0.3 m/s.
    assert!(ahead > 0.8 && ahead < 1.0, "moved {ahead}");
    rig.run_for(3 * SECONDS);
    assert!(rig.at_rest());
}

#[test]
fn a_second_maneuver_is_queued_and_runs_after_the_first() {
    let mut rig = rig(config());
    rig.send(r#"{"id":"a","action":"forward","distance_m":0.5}"#);
    rig.send(r#"{"id":"b","action":"turn","degrees":90}"#);
    rig.wait_end("b", 15 * SECONDS);
    let events: Vec<String> = rig
        .messages()
        .iter()
        .filter(|(_, m)| m["type"] == "maneuver" && m["status"] != "progress")
        .map(|(_, m)| {
            format!(
                "{}:{}",
                m["id"].as_str().unwrap(),
                m["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            "a:accepted",
            "a:started",
            "b:accepted",
            "a:completed",
            "b:started",
            "b:completed"
        ]
    );
    let b_accepted = rig
        .messages()
        .into_iter()
        .find(|(_, m)| m["id"] == "b" && m["status"] == "accepted")
        .unwrap()
        .1;
    assert_eq!(b_accepted["queue_position"], 1);
    let (forward, left, yaw) = rig.moved();
    eprintln!(
        "queued forward 0.5 then turn 90: {forward:.4} m ahead, {left:.4} left, yaw {yaw:.3}"
    );
    assert!((forward - 0.5).abs() <= 0.02 && left.abs() <= 0.01);
    assert!((yaw - 90.0).abs() <= 2.0);
}

#[test]
fn with_no_queue_a_second_maneuver_is_refused_busy() {
    let mut rig = rig(BridgeConfig {
        queue_len: 0,
        ..config()
    });
    rig.send(r#"{"id":"a","action":"turn","degrees":-45}"#);
    rig.send(r#"{"id":"b","action":"forward","distance_m":1}"#);
    let err = rig.wait_for(SECONDS, |m| m["type"] == "error");
    assert_eq!(err["code"], "busy");
    assert_eq!(err["id"], "b");
    assert_eq!(err["action"], "forward");
    let done = rig.wait_end("a", 10 * SECONDS);
    assert_eq!(done["status"], "completed");
    let (forward, _, yaw) = rig.moved();
    assert!(
        forward.abs() < 0.01,
        "the refused forward moved the robot {forward}"
    );
    assert!((yaw + 45.0).abs() <= 2.0);
    assert!(
        !rig.messages()
            .iter()
            .any(|(_, m)| m["id"] == "b" && m["type"] == "maneuver")
    );
}

#[test]
fn driving_into_a_wall_is_reported_blocked() {
    let mut rig = rig_with(config(), |world| {
        world
            .add_body(
                &BodySpec::new(
                    "wall",
                    Shape::Cuboid {
                        half_extents: [0.05, 1.0, 0.25],
                    },
                )
                .at([0.6, 0.0, 0.25])
                .fixed(),
            )
            .unwrap();
    });
    rig.send(r#"{"id":"w","action":"forward","distance_m":2.0}"#);
    let ev = rig.wait_end("w", 10 * SECONDS);
    assert_eq!(ev["status"], "blocked", "{ev}");
    let (forward, _, _) = rig.moved();
    eprintln!(
        "wall: blocked at {forward:.3} m after {} s: {ev}",
        ev["elapsed_s"]
    );
    // The front face (0.11 m ahead of the centre) stops at the wall (0.55).
    assert!(forward > 0.40 && forward < 0.46, "stopped at {forward}");
    assert!((f(&ev["measured"]["distance_m"]) - forward).abs() < 0.005);
    // Against the wall the locator shows rest at once; the slipping treads
    // need the stop controller's 0.2 s to spin down.
    rig.run_for(300 * MILLIS);
    assert!(rig.at_rest());
    rig.run_for(2 * SECONDS);
    assert!(rig.at_rest());
}

#[test]
fn a_lost_sensor_stream_stops_the_robot() {
    let mut rig = rig(config());
    rig.send(r#"{"id":"s","action":"forward","distance_m":3.0}"#);
    rig.wait_event("s", "progress", 2 * SECONDS);
    rig.run_for(500 * MILLIS);
    // The RVR -> bridge wire goes silent (every byte lost) for 3 s.
    let cut = rig.now();
    rig.uart
        .set_drop_rate(Direction::BToA, 1.0, Some(cut + 3 * SECONDS));
    let mut rest_ms = None;
    for step in 1..=200u64 {
        rig.run_for(10 * MILLIS);
        if rig.at_rest() {
            rest_ms = Some(step * 10);
            break;
        }
    }
    let rest_ms = rest_ms.expect("never at rest");
    let ev = rig.wait_end("s", 2 * SECONDS);
    assert_eq!(ev["status"], "failed", "{ev}");
    assert!(ev["reason"].as_str().unwrap().contains("no sensor data"));
    eprintln!(
        "stream cut: robot at rest {rest_ms} ms after the cut, failed reported after {} ms",
        (rig.now() - cut) / MILLIS
    );
    // Stream timeout 300 ms + a decelerating stop from 0.4 m/s at 2 m/s² (200 ms).
    assert!(rest_ms <= 600, "at rest only {rest_ms} ms after the cut");
    // When the line comes back, sensor data flows again and maneuvers work.
    rig.run_for(3 * SECONDS);
    let (before, _, _) = rig.moved();
    rig.send(r#"{"id":"s2","action":"forward","distance_m":0.2}"#);
    let ev = rig.wait_end("s2", 5 * SECONDS);
    assert_eq!(ev["status"], "completed", "{ev}");
    let (after, _, _) = rig.moved();
    assert!(
        (after - before - 0.2).abs() <= 0.02,
        "moved {}",
        after - before
    );
    assert!(rig.at_rest());
}

#[test]
fn a_noisy_line_never_makes_the_robot_run_away() {
    let mut rig = rig(config());
    // About 1 in 600 bytes corrupted each way.
    rig.uart.set_bit_error_rate(Direction::Both, 2e-4, None);
    rig.send(r#"{"id":"n","action":"forward","distance_m":1.0}"#);
    let ev = rig.wait_end("n", 15 * SECONDS);
    rig.run_for(SECONDS);
    let (forward, left, _) = rig.moved();
    let t = rig
        .messages()
        .into_iter()
        .rev()
        .find(|(_, m)| m["type"] == "telemetry")
        .unwrap()
        .1;
    eprintln!(
        "noisy line: {} at {forward:.4} m ({left:.4} sideways); link {}",
        ev["status"], t["link"]
    );
    assert!(rig.at_rest());
    assert!(forward < 1.02, "overshot to {forward}");
    if ev["status"] == "completed" {
        assert!((forward - 1.0).abs() <= 0.02 && left.abs() <= 0.01);
    }
    assert!(
        t["link"]["parser_errors"].as_u64().unwrap() > 0,
        "no noise seen: {}",
        t["link"]
    );
}

#[test]
fn telemetry_is_nested_and_faster_while_moving() {
    let mut rig = rig(config());
    let first = rig
        .messages()
        .into_iter()
        .find(|(_, m)| m["type"] == "telemetry")
        .expect("telemetry at boot")
        .1;
    for key in [
        "pose",
        "velocity",
        "imu",
        "accelerometer",
        "gyroscope",
        "locator",
        "link",
    ] {
        assert!(first[key].is_object(), "{key} in {first}");
    }
    assert!((f(&first["accelerometer"]["z"]) - 1.0).abs() < 0.01);
    assert_eq!(f(&first["ambient_light"]), 300.0);
    assert_eq!(first["battery"], 100);
    assert!(first["maneuver"].is_null());
    assert!(first["ts"].as_u64().unwrap() >= 1_780_000_000);
    rig.send(r#"{"id":"m","action":"forward","distance_m":1.5}"#);
    rig.wait_end("m", 10 * SECONDS);
    let moving: Vec<(Nanos, Value)> = rig
        .messages()
        .into_iter()
        .filter(|(_, m)| m["type"] == "telemetry" && !m["maneuver"].is_null())
        .collect();
    assert!(
        moving.len() >= 3,
        "{} telemetry messages while moving",
        moving.len()
    );
    for w in moving.windows(2) {
        assert!(w[1].0 - w[0].0 <= 1010 * MILLIS, "gap {}", w[1].0 - w[0].0);
    }
    let sample = &moving[1].1;
    assert_eq!(sample["maneuver"]["id"], "m");
    assert_eq!(sample["maneuver"]["action"], "forward");
    assert_eq!(sample["maneuver"]["status"], "running");
    assert!(f(&sample["velocity"]["speed"]) > 0.3);
    eprintln!("telemetry while moving: {sample}");
    // At rest again: one more at the 1 s rhythm, then quiet for 60 s.
    let count = |rig: &Rig| {
        rig.messages()
            .iter()
            .filter(|(_, m)| m["type"] == "telemetry")
            .count()
    };
    rig.run_for(3 * SECONDS);
    let settled = count(&rig);
    rig.run_for(50 * SECONDS);
    assert_eq!(count(&rig), settled, "telemetry while idle before 60 s");
    rig.run_for(12 * SECONDS);
    assert_eq!(count(&rig), settled + 1);
}

#[test]
fn a_robot_that_fell_asleep_is_woken_and_streams_again() {
    let mut rig = rig(config());
    // Someone else on the line puts the robot to sleep (Python SDK framing:
    // no response requested, so the bridge sees only the sleep notifications).
    let sleep = rvr_protocol::Command::Sleep
        .to_packet(0x77, rvr_protocol::AddressStyle::TargetOnly)
        .unwrap()
        .to_frame()
        .unwrap();
    rig.uart.inject(Direction::AToB, &sleep);
    rig.run_for(500 * MILLIS);
    assert!(!rig.twin.stats().awake, "the injected sleep did not arrive");
    // Silent for 2 s while idle: the bridge wakes it and sets streaming up.
    rig.run_for(3 * SECONDS);
    assert!(rig.twin.stats().awake, "not woken");
    rig.send(r#"{"id":"w","action":"turn","degrees":45}"#);
    let ev = rig.wait_end("w", 5 * SECONDS);
    assert_eq!(ev["status"], "completed", "{ev}");
    let t = rig.wait_for(2 * SECONDS, |m| m["type"] == "telemetry");
    assert_eq!(t["link"]["rearms"], 1, "{}", t["link"]);
    let (_, _, yaw) = rig.moved();
    assert!((yaw - 45.0).abs() <= 2.0);
}

#[test]
fn the_same_run_gives_the_same_messages_and_pose() {
    let run_once = || {
        let mut rig = rig(config());
        rig.send(r#"{"id":"a","action":"forward","distance_m":0.7}"#);
        rig.send(r#"{"id":"b","action":"turn","degrees":-30}"#);
        rig.wait_end("b", 15 * SECONDS);
        let p = rig.twin.body().planar();
        let traffic: Vec<(Nanos, Vec<u8>)> = rig
            .net
            .observed()
            .iter()
            .map(|o| (o.time, o.payload.clone()))
            .collect();
        (traffic, [p.x, p.y, p.yaw].map(f32::to_bits))
    };
    let (first, pose) = run_once();
    let (second, pose2) = run_once();
    assert_eq!(first.len(), second.len());
    assert!(
        first == second,
        "MQTT traffic differs between identical runs"
    );
    assert_eq!(pose, pose2);
}
