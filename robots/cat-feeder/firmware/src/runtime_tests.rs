//! End-to-end tests of [`crate::run`] on fakes: an MQTT session fed from a
//! schedule, pins and a level sensor that log with the time, and a small
//! driver that moves virtual time to the next timer or arrival only when no
//! task can go on.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::string::{String, ToString};
use std::task::{Context, Poll, Waker};
use std::vec::Vec;

use embedded_hal::digital::{ErrorKind, ErrorType, OutputPin};
use embedded_hal_async::delay::DelayNs;
use serde_json::Value;
use twinrig_hal::{Clock, LevelError, LevelSensor, MqttClient, MqttError, MqttMessage, QoS};

use crate::config::{ConfigError, FeederConfig, MS};
use crate::runtime::{Hardware, run};

#[derive(Default)]
struct World {
    now: Cell<u64>,
    /// Bumped by every operation that completes, so the driver knows when
    /// nothing can go on at this instant.
    progress: Cell<u64>,
    timers: RefCell<Vec<u64>>,
    /// Messages still in flight: (ns, message), in time order.
    arrivals: RefCell<VecDeque<(u64, MqttMessage)>>,
    /// Delivered to the session, not yet received by the device.
    session: RefCell<VecDeque<MqttMessage>>,
    receive_failures: Cell<u32>,
    subscribe_refusals: Cell<u32>,
    subscribed: RefCell<Vec<(u64, String, QoS)>>,
    /// (ms, topic, payload, QoS).
    published: RefCell<Vec<(u64, String, String, QoS)>>,
    /// (ms, pin, level).
    pins: RefCell<Vec<(u64, &'static str, bool)>>,
    /// (pin, level it fails to reach, how many times).
    pin_failures: RefCell<Vec<(&'static str, bool, u32)>>,
    level: Cell<Option<Result<u8, LevelError>>>,
}

impl World {
    fn ms(&self) -> u64 {
        self.now.get() / MS
    }

    fn bump(&self) {
        self.progress.set(self.progress.get() + 1);
    }

    fn send(&self, at_ms: u64, topic: &str, payload: &[u8]) {
        let mut arrivals = self.arrivals.borrow_mut();
        arrivals.push_back((
            at_ms * MS,
            MqttMessage {
                topic: topic.into(),
                payload: payload.to_vec(),
                qos: QoS::AtMostOnce,
            },
        ));
        arrivals.make_contiguous().sort_by_key(|(t, _)| *t);
    }

    fn deliver_due(&self) {
        let now = self.now.get();
        let mut arrivals = self.arrivals.borrow_mut();
        while arrivals.front().is_some_and(|(t, _)| *t <= now) {
            let (_, m) = arrivals.pop_front().unwrap();
            self.session.borrow_mut().push_back(m);
            self.bump();
        }
    }

    /// Runs `fut` until it ends or virtual time would pass `end_ms`.
    fn drive<F: Future>(&self, fut: F, end_ms: u64) -> Option<F::Output> {
        let mut fut = pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            self.deliver_due();
            loop {
                let before = self.progress.get();
                if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                    return Some(out);
                }
                if self.progress.get() == before {
                    break;
                }
            }
            let now = self.now.get();
            let timer = self
                .timers
                .borrow()
                .iter()
                .copied()
                .filter(|t| *t > now)
                .min();
            let arrival = self.arrivals.borrow().front().map(|(t, _)| *t);
            let next = [timer, arrival].into_iter().flatten().min()?;
            if next > end_ms * MS {
                return None;
            }
            self.now.set(next);
            self.timers.borrow_mut().retain(|t| *t > next);
        }
    }

    fn published(&self, kind: &str) -> Vec<(u64, Value)> {
        self.published
            .borrow()
            .iter()
            .filter_map(|(t, _, p, _)| {
                let v: Value = serde_json::from_str(p).unwrap();
                (v["type"] == kind).then_some((*t, v))
            })
            .collect()
    }

    fn times(&self, kind: &str) -> Vec<u64> {
        self.published(kind).into_iter().map(|(t, _)| t).collect()
    }
}

#[derive(Clone, Copy)]
struct FakeClock<'a>(&'a World);

impl Clock for FakeClock<'_> {
    fn now_ns(&self) -> u64 {
        self.0.now.get()
    }
}

#[derive(Clone, Copy)]
struct FakeDelay<'a>(&'a World);

impl FakeDelay<'_> {
    async fn sleep(&mut self, ns: u64) {
        let world = self.0;
        let deadline = world.now.get() + ns;
        world.timers.borrow_mut().push(deadline);
        poll_fn(|_| {
            if world.now.get() >= deadline {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        world.bump();
    }
}

impl DelayNs for FakeDelay<'_> {
    async fn delay_ns(&mut self, ns: u32) {
        self.sleep(u64::from(ns)).await
    }
    async fn delay_ms(&mut self, ms: u32) {
        self.sleep(u64::from(ms) * MS).await
    }
}

struct FakeMqtt<'a>(&'a World, &'static str);

impl MqttClient for FakeMqtt<'_> {
    fn client_id(&self) -> &str {
        self.1
    }

    async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), MqttError> {
        let w = self.0;
        w.bump();
        if w.subscribe_refusals.get() > 0 {
            w.subscribe_refusals.set(w.subscribe_refusals.get() - 1);
            return Err(MqttError::SubscribeRefused);
        }
        w.subscribed.borrow_mut().push((w.ms(), filter.into(), qos));
        Ok(())
    }

    async fn publish(&self, topic: &str, payload: &[u8], qos: QoS) -> Result<(), MqttError> {
        let w = self.0;
        w.bump();
        let text = String::from_utf8(payload.to_vec()).unwrap();
        w.published
            .borrow_mut()
            .push((w.ms(), topic.into(), text, qos));
        Ok(())
    }

    async fn receive(&self) -> Result<MqttMessage, MqttError> {
        let w = self.0;
        poll_fn(|_| {
            if w.receive_failures.get() > 0 {
                w.receive_failures.set(w.receive_failures.get() - 1);
                w.bump();
                return Poll::Ready(Err(MqttError::Disconnected));
            }
            match w.session.borrow_mut().pop_front() {
                Some(m) => {
                    w.bump();
                    Poll::Ready(Ok(m))
                }
                None => Poll::Pending,
            }
        })
        .await
    }
}

#[derive(Debug)]
struct PinFailed;

impl embedded_hal::digital::Error for PinFailed {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

struct FakePin<'a>(&'a World, &'static str);

impl ErrorType for FakePin<'_> {
    type Error = PinFailed;
}

impl FakePin<'_> {
    fn set(&mut self, level: bool) -> Result<(), PinFailed> {
        let w = self.0;
        let mut failures = w.pin_failures.borrow_mut();
        if let Some(f) = failures
            .iter_mut()
            .find(|(p, l, n)| *p == self.1 && *l == level && *n > 0)
        {
            f.2 -= 1;
            return Err(PinFailed);
        }
        w.pins.borrow_mut().push((w.ms(), self.1, level));
        Ok(())
    }
}

impl OutputPin for FakePin<'_> {
    fn set_low(&mut self) -> Result<(), PinFailed> {
        self.set(false)
    }
    fn set_high(&mut self) -> Result<(), PinFailed> {
        self.set(true)
    }
}

struct FakeSensor<'a>(&'a World);

impl LevelSensor for FakeSensor<'_> {
    async fn read_percent(&mut self) -> Result<u8, LevelError> {
        self.0.bump();
        self.0.level.get().unwrap_or(Ok(64))
    }
}

/// Runs the firmware as thing `thing` until `end_ms`.
fn run_feeder(world: &World, thing: &'static str, config: &FeederConfig, end_ms: u64) {
    let mqtt = FakeMqtt(world, thing);
    let hardware = Hardware {
        left_motor: FakePin(world, "left"),
        right_motor: FakePin(world, "right"),
        level_sensor: FakeSensor(world),
    };
    let ended = world.drive(
        run(&mqtt, &FakeClock(world), FakeDelay(world), hardware, config),
        end_ms,
    );
    assert!(ended.is_none(), "the firmware stopped: {ended:?}");
}

const SINGLE: &[u8] = br#"{"event":"SINGLE"}"#;
const DOUBLE: &[u8] = br#"{"event":"DOUBLE"}"#;
const LONG: &[u8] = br#"{"event":"LONG"}"#;

#[test]
fn it_subscribes_then_publishes_a_state_every_3_s() {
    let world = World::default();
    run_feeder(&world, "feeder-1", &FeederConfig::default(), 9_500);
    assert_eq!(
        *world.subscribed.borrow(),
        [(0, "cat-feeder/action".to_string(), QoS::AtMostOnce)]
    );
    let published = world.published.borrow();
    assert_eq!(published.len(), 4);
    for (i, (t, topic, payload, qos)) in published.iter().enumerate() {
        assert_eq!(*t, 3000 * i as u64);
        assert_eq!(topic, "cat-feeder/states");
        assert_eq!(*qos, QoS::AtMostOnce);
        assert_eq!(
            *payload,
            std::format!(
                r#"{{"type":"state","food_capacity":64,"device_location":"home","feeds":0,"motors":{{"left":"off","right":"off"}},"rejected":0,"ts":{},"uptime_ms":{}}}"#,
                3 * i,
                3000 * i
            )
        );
    }
    assert!(world.pins.borrow().is_empty());
}

#[test]
fn feeds_drive_the_pins_and_block_the_loop_and_later_events_wait() {
    let world = World::default();
    world.send(1000, "cat-feeder/action", SINGLE);
    world.send(5000, "cat-feeder/action", DOUBLE);
    // Not subscribed by the feeder: ignored.
    world.send(6000, "cat-feeder/other", LONG);
    world.level.set(Some(Ok(12)));
    run_feeder(&world, "feeder-1", &FeederConfig::default(), 34_000);
    assert_eq!(
        *world.pins.borrow(),
        [
            (3000, "left", true),
            (3000, "right", false),
            (13_000, "left", false),
            (13_000, "right", false),
            (18_000, "left", false),
            (18_000, "right", true),
            (28_000, "left", false),
            (28_000, "right", false),
        ]
    );
    assert_eq!(world.times("state"), [0, 3000, 18_000, 33_000]);
    assert_eq!(world.times("fed"), [15_000, 30_000]);
    let fed = world.published("fed");
    assert_eq!(fed[0].1["event"], "SINGLE");
    assert_eq!(fed[1].1["event"], "DOUBLE");
    assert_eq!(world.published("state")[3].1["food_capacity"], 12);
    assert!(world.published("error").is_empty());
    let qos: Vec<QoS> = world.published.borrow().iter().map(|p| p.3).collect();
    assert_eq!(
        qos,
        [
            QoS::AtMostOnce,
            QoS::AtMostOnce,
            QoS::AtLeastOnce,
            QoS::AtMostOnce,
            QoS::AtLeastOnce,
            QoS::AtMostOnce
        ]
    );
}

#[test]
fn per_device_topics_and_a_refused_subscription_is_retried() {
    let world = World::default();
    world.subscribe_refusals.set(2);
    world.send(500, "cat-feeder/porch/action", br#"{"event":"nope"}"#);
    run_feeder(
        &world,
        "porch",
        &FeederConfig::per_device("cat-feeder"),
        2_500,
    );
    assert_eq!(
        *world.subscribed.borrow(),
        [(2000, "cat-feeder/porch/action".to_string(), QoS::AtMostOnce)]
    );
    let published = world.published.borrow();
    assert!(published.iter().all(|p| p.1 == "cat-feeder/porch/states"));
    // The first state only once subscribed; the waiting message right after it.
    assert_eq!(published.len(), 2);
    assert_eq!(published[0].0, 2000);
    assert!(
        published[1].2.contains(r#""code":"unknown_event""#),
        "{}",
        published[1].2
    );
}

#[test]
fn a_full_inbox_leaves_messages_in_the_session_and_loses_none() {
    let world = World::default();
    let events = [SINGLE, DOUBLE, LONG, SINGLE, b"junk", DOUBLE];
    for (i, e) in events.iter().enumerate() {
        world.send(1000 + i as u64, "cat-feeder/action", e);
    }
    let config = FeederConfig {
        inbox_len: 2,
        ..FeederConfig::default()
    };
    run_feeder(&world, "feeder-1", &config, 120_000);
    let answers: Vec<String> = world
        .published
        .borrow()
        .iter()
        .filter_map(|(_, _, p, _)| {
            let v: Value = serde_json::from_str(p).unwrap();
            match v["type"].as_str().unwrap() {
                "fed" => Some(v["event"].as_str().unwrap().to_string()),
                "error" => Some("error".to_string()),
                _ => None,
            }
        })
        .collect();
    assert_eq!(
        answers,
        ["SINGLE", "DOUBLE", "LONG", "SINGLE", "error", "DOUBLE"]
    );
    // Each service takes what the firmware held when it started: two.
    assert_eq!(world.times("fed"), [15_000, 27_000, 42_000, 54_000, 69_000]);
    assert_eq!(world.times("error"), [57_000]);
}

#[test]
fn a_failing_session_is_retried_and_the_loop_goes_on() {
    let world = World::default();
    world.receive_failures.set(5);
    world.send(1000, "cat-feeder/action", LONG);
    run_feeder(&world, "feeder-1", &FeederConfig::default(), 19_000);
    assert_eq!(world.times("state"), [0, 3000, 18_000]);
    assert_eq!(world.times("fed"), [15_000]);
}

#[test]
fn pin_failures_on_the_hal_become_reports() {
    let world = World::default();
    world.pin_failures.borrow_mut().push(("right", true, 1));
    world.send(1000, "cat-feeder/action", DOUBLE);
    run_feeder(&world, "feeder-1", &FeederConfig::default(), 4_000);
    // The right pin never went high; both were driven low at once.
    assert_eq!(
        *world.pins.borrow(),
        [
            (3000, "left", false),
            (3000, "left", false),
            (3000, "right", false)
        ]
    );
    let errors = world.published("error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].1["code"], "motor_pin");
    assert_eq!(errors[0].1["event"], "DOUBLE");
    assert!(world.published("fed").is_empty());
}

#[test]
fn a_bad_config_returns_before_touching_anything() {
    let world = World::default();
    let mqtt = FakeMqtt(&world, "a/b");
    let hardware = Hardware {
        left_motor: FakePin(&world, "left"),
        right_motor: FakePin(&world, "right"),
        level_sensor: FakeSensor(&world),
    };
    let config = FeederConfig::per_device("cat-feeder");
    let ended = world.drive(
        run(
            &mqtt,
            &FakeClock(&world),
            FakeDelay(&world),
            hardware,
            &config,
        ),
        10_000,
    );
    let Some(Err(e)) = ended else {
        panic!("the firmware should refuse the config")
    };
    assert_eq!(e, ConfigError::InvalidThingName("a/b".into()));
    assert!(world.subscribed.borrow().is_empty());
    assert!(world.published.borrow().is_empty());
    assert!(world.pins.borrow().is_empty());
}
