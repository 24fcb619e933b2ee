//! Tests of the [`Feeder`] state machine on a clock of their own: a bench
//! carries out its steps (delays move time, messages arrive at given
//! times, pins can fail) and logs what the device did.

use std::collections::VecDeque;
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use serde_json::Value;
use twinrig_hal::{LevelError, QoS};

use crate::action::{ErrorCode, parse_action};
use crate::config::{FeederConfig, MS, Servicing};
use crate::feeder::{Feeder, InboxFull, Motor, Motors, Step};

const SINGLE: &[u8] = br#"{"event":"SINGLE"}"#;
const DOUBLE: &[u8] = br#"{"event":"DOUBLE"}"#;
const LONG: &[u8] = br#"{"event":"LONG"}"#;

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    /// A publish: (ms, type, whole message, QoS).
    Publish(u64, String, Value, QoS),
    /// The pins as they physically are after a drive: (ms, pins).
    Pins(u64, Motors),
}

struct Bench {
    feeder: Feeder,
    now: u64,
    /// Messages still to arrive: (ms, payload), in time order.
    arrivals: VecDeque<(u64, Vec<u8>)>,
    level: Result<u8, LevelError>,
    /// Pin failures to inject: (motor, level it fails to reach, how many times).
    failures: Vec<(Motor, bool, u32)>,
    pins: Motors,
    log: Vec<Entry>,
    raw: Vec<String>,
}

impl Bench {
    fn new(config: FeederConfig) -> Bench {
        Bench {
            feeder: Feeder::new(config),
            now: 0,
            arrivals: VecDeque::new(),
            level: Ok(73),
            failures: Vec::new(),
            pins: Motors::OFF,
            log: Vec::new(),
            raw: Vec::new(),
        }
    }

    fn default() -> Bench {
        Bench::new(FeederConfig::default())
    }

    fn arrive(mut self, at_ms: u64, payload: &[u8]) -> Bench {
        self.arrivals.push_back((at_ms, payload.to_vec()));
        self.arrivals.make_contiguous().sort_by_key(|(t, _)| *t);
        self
    }

    fn ms(&self) -> u64 {
        self.now / MS
    }

    fn deliver(&mut self) {
        while let Some((at, _)) = self.arrivals.front() {
            if *at * MS > self.now || !self.feeder.has_room() {
                break;
            }
            let (_, payload) = self.arrivals.pop_front().unwrap();
            self.feeder.offer(&payload).unwrap();
        }
    }

    fn pin(&mut self, motor: Motor, level: bool) {
        if let Some(f) = self
            .failures
            .iter_mut()
            .find(|(m, l, n)| *m == motor && *l == level && *n > 0)
        {
            f.2 -= 1;
            self.feeder.motor_fault(motor, self.now);
            return;
        }
        match motor {
            Motor::Left => self.pins.left = level,
            Motor::Right => self.pins.right = level,
        }
    }

    /// Carries out one step.
    fn step(&mut self) -> Step {
        self.deliver();
        let step = self.feeder.next_step(self.now);
        match &step {
            Step::ReadLevel => self.feeder.level_read(self.level),
            Step::Publish { payload, qos } => {
                let v: Value = serde_json::from_str(payload).expect("every message is JSON");
                let kind = v["type"].as_str().expect("every message has a type").into();
                self.raw.push(payload.clone());
                self.log.push(Entry::Publish(self.ms(), kind, v, *qos));
            }
            Step::DriveMotors(m) => {
                self.pin(Motor::Left, m.left);
                self.pin(Motor::Right, m.right);
                self.log.push(Entry::Pins(self.ms(), self.pins));
            }
            Step::Delay { ms } => self.now += u64::from(*ms) * MS,
        }
        step
    }

    /// Runs until device time reaches `end_ms` (at a delay's end).
    fn run_until(mut self, end_ms: u64) -> Bench {
        let mut steps = 0;
        while self.now < end_ms * MS {
            self.step();
            steps += 1;
            assert!(steps < 100_000, "no delay in 100000 steps");
        }
        self
    }

    fn published(&self, kind: &str) -> Vec<(u64, Value)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Entry::Publish(t, k, v, _) if k == kind => Some((*t, v.clone())),
                _ => None,
            })
            .collect()
    }

    fn times(&self, kind: &str) -> Vec<u64> {
        self.published(kind).into_iter().map(|(t, _)| t).collect()
    }

    fn pin_log(&self) -> Vec<(u64, Motors)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Entry::Pins(t, m) => Some((*t, *m)),
                _ => None,
            })
            .collect()
    }
}

fn on(left: bool, right: bool) -> Motors {
    Motors { left, right }
}

// ---------------------------------------------------------------- cadence

#[test]
fn the_first_turn_reads_publishes_then_sleeps_3_s() {
    let mut f = Feeder::new(FeederConfig::default());
    assert_eq!(f.next_step(0), Step::ReadLevel);
    f.level_read(Ok(40));
    assert_eq!(
        f.next_step(0),
        Step::Publish {
            payload: String::from(
                r#"{"type":"state","food_capacity":40,"device_location":"home","feeds":0,"motors":{"left":"off","right":"off"},"rejected":0,"ts":0,"uptime_ms":0}"#
            ),
            qos: QoS::AtMostOnce,
        }
    );
    assert_eq!(f.next_step(0), Step::Delay { ms: 3000 });
    assert_eq!(f.next_step(3000 * MS), Step::ReadLevel);
}

#[test]
fn idle_states_come_every_3_s() {
    let b = Bench::default().run_until(12_000);
    assert_eq!(b.times("state"), [0, 3000, 6000, 9000]);
    assert!(
        b.pin_log().is_empty(),
        "an idle feeder never touches its pins"
    );
    let b = Bench::new(FeederConfig {
        loop_sleep_ms: 500,
        ..FeederConfig::default()
    })
    .run_until(2000);
    assert_eq!(b.times("state"), [0, 500, 1000, 1500]);
}

#[test]
fn the_state_json_is_exact() {
    let config = FeederConfig {
        device_location: String::from("kitchen \"north\""),
        epoch_offset_s: 1_780_000_000,
        ..FeederConfig::default()
    };
    let mut b = Bench::new(config).arrive(1000, LONG).run_until(16_000);
    b.level = Err(LevelError::Timeout);
    let b = b.run_until(19_000);
    let states: Vec<&String> = b
        .raw
        .iter()
        .filter(|r| r.starts_with(r#"{"type":"state""#))
        .collect();
    assert_eq!(
        states,
        [
            r#"{"type":"state","food_capacity":73,"device_location":"kitchen \"north\"","feeds":0,"motors":{"left":"off","right":"off"},"rejected":0,"ts":1780000000,"uptime_ms":0}"#,
            r#"{"type":"state","food_capacity":73,"device_location":"kitchen \"north\"","feeds":0,"motors":{"left":"off","right":"off"},"rejected":0,"ts":1780000003,"uptime_ms":3000}"#,
            r#"{"type":"state","food_capacity":null,"level_error":"timeout","device_location":"kitchen \"north\"","feeds":1,"motors":{"left":"off","right":"off"},"rejected":0,"ts":1780000018,"uptime_ms":18000}"#,
        ]
    );
}

#[test]
fn invalid_level_readings_publish_null_and_say_why() {
    for (reading, why) in [
        (Ok(101), "out_of_range"),
        (Ok(255), "out_of_range"),
        (Err(LevelError::Timeout), "timeout"),
        (Err(LevelError::Fault), "fault"),
    ] {
        let mut b = Bench::default();
        b.level = reading;
        let b = b.run_until(1);
        let (_, state) = &b.published("state")[0];
        assert_eq!(state["food_capacity"], Value::Null, "{reading:?}");
        assert_eq!(state["level_error"], why, "{reading:?}");
    }
    for percent in [0, 100] {
        let mut b = Bench::default();
        b.level = Ok(percent);
        let b = b.run_until(1);
        let (_, state) = &b.published("state")[0];
        assert_eq!(state["food_capacity"], percent);
        assert!(state.get("level_error").is_none());
    }
    // A runtime that never reports the reading publishes not_read; a reading
    // reported at another time is ignored.
    let mut f = Feeder::new(FeederConfig::default());
    f.level_read(Ok(10));
    assert_eq!(f.next_step(0), Step::ReadLevel);
    let Step::Publish { payload, .. } = f.next_step(0) else {
        panic!("the state comes after the reading")
    };
    assert!(
        payload.contains(r#""food_capacity":null,"level_error":"not_read""#),
        "{payload}"
    );
}

// ---------------------------------------------------------------- feeds

#[test]
fn each_event_runs_its_motors_10_s_then_pauses_2_s_then_reports_fed() {
    for (payload, event, motors, bowls) in [
        (SINGLE, "SINGLE", on(true, false), r#"["left"]"#),
        (DOUBLE, "DOUBLE", on(false, true), r#"["right"]"#),
        (LONG, "LONG", on(true, true), r#"["left","right"]"#),
    ] {
        let b = Bench::default().arrive(1000, payload).run_until(21_000);
        assert_eq!(b.times("state"), [0, 3000, 18_000], "{event}");
        assert_eq!(
            b.pin_log(),
            [(3000, motors), (13_000, Motors::OFF)],
            "{event}"
        );
        let fed: Vec<&String> = b.raw.iter().filter(|r| r.contains(r#""fed""#)).collect();
        assert_eq!(
            fed,
            [&format!(
                r#"{{"type":"fed","event":"{event}","bowls":{bowls},"feeds":1,"started_ms":3000,"ts":15,"uptime_ms":15000}}"#
            )]
        );
        let (_, state) = &b.published("state")[2];
        assert_eq!(state["feeds"], 1);
        assert_eq!(state["rejected"], 0);
        assert!(b.published("error").is_empty());
        // fed is QoS 1, states QoS 0.
        assert!(b.log.iter().all(|e| match e {
            Entry::Publish(_, k, _, q) =>
                *q == if k == "state" {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                },
            _ => true,
        }));
    }
}

#[test]
fn a_second_event_during_the_12_s_block_waits_for_the_next_turn() {
    let b = Bench::default()
        .arrive(1000, SINGLE)
        .arrive(5000, DOUBLE)
        .run_until(34_000);
    // No state while the feed blocks the loop (3 s to 15 s), then the
    // sleep; the DOUBLE is handled at the next service, after a state.
    assert_eq!(b.times("state"), [0, 3000, 18_000, 33_000]);
    assert_eq!(
        b.pin_log(),
        [
            (3000, on(true, false)),
            (13_000, Motors::OFF),
            (18_000, on(false, true)),
            (28_000, Motors::OFF),
        ]
    );
    let fed = b.published("fed");
    assert_eq!(
        fed.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        [15_000, 30_000]
    );
    assert_eq!(fed[0].1["event"], "SINGLE");
    assert_eq!(fed[1].1["event"], "DOUBLE");
    assert_eq!(fed[1].1["started_ms"], 18_000);
    assert_eq!(b.published("state")[2].1["feeds"], 1);
    assert_eq!(b.published("state")[3].1["feeds"], 2);
}

#[test]
fn events_waiting_together_run_back_to_back_or_one_per_turn() {
    let all = Bench::default()
        .arrive(1000, SINGLE)
        .arrive(2000, DOUBLE)
        .run_until(31_000);
    assert_eq!(all.times("state"), [0, 3000, 30_000]);
    assert_eq!(
        all.pin_log(),
        [
            (3000, on(true, false)),
            (13_000, Motors::OFF),
            (15_000, on(false, true)),
            (25_000, Motors::OFF),
        ]
    );
    assert_eq!(all.times("fed"), [15_000, 27_000]);

    let one = Bench::new(FeederConfig {
        servicing: Servicing::OnePerTurn,
        ..FeederConfig::default()
    })
    .arrive(1000, SINGLE)
    .arrive(2000, DOUBLE)
    .run_until(34_000);
    assert_eq!(one.times("state"), [0, 3000, 18_000, 33_000]);
    assert_eq!(one.times("fed"), [15_000, 30_000]);
    assert_eq!(
        one.pin_log(),
        [
            (3000, on(true, false)),
            (13_000, Motors::OFF),
            (18_000, on(false, true)),
            (28_000, Motors::OFF),
        ]
    );
}

#[test]
fn a_message_arriving_exactly_at_a_turn_is_handled_in_it() {
    let b = Bench::default().arrive(3000, LONG).run_until(4000);
    assert_eq!(b.pin_log(), [(3000, on(true, true))]);
}

#[test]
fn durations_come_from_the_config() {
    let b = Bench::new(FeederConfig {
        loop_sleep_ms: 1000,
        motor_run_ms: 4000,
        after_feed_pause_ms: 500,
        ..FeederConfig::default()
    })
    .arrive(10, DOUBLE)
    .run_until(7000);
    assert_eq!(b.pin_log(), [(1000, on(false, true)), (5000, Motors::OFF)]);
    assert_eq!(b.times("fed"), [5500]);
    assert_eq!(b.times("state"), [0, 1000, 6500]);
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_payloads_are_answered_in_order_and_never_move_a_motor() {
    let b = Bench::default()
        .arrive(100, b"garbage")
        .arrive(200, SINGLE)
        .arrive(300, br#"{"event":"TRIPLE"}"#)
        .run_until(19_000);
    let answers: Vec<(u64, String)> = b
        .log
        .iter()
        .filter_map(|e| match e {
            Entry::Publish(t, k, _, _) if k != "state" => Some((*t, k.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [
            (3000, "error".into()),
            (15_000, "fed".into()),
            (15_000, "error".into())
        ]
    );
    assert_eq!(
        b.pin_log(),
        [(3000, on(true, false)), (13_000, Motors::OFF)]
    );
    let errors: Vec<&String> = b.raw.iter().filter(|r| r.contains(r#""error""#)).collect();
    assert_eq!(
        errors[1],
        r#"{"type":"error","code":"unknown_event","error":"unknown event \"TRIPLE\" (expected SINGLE, DOUBLE or LONG)","event":null,"ts":15,"uptime_ms":15000}"#
    );
    let (_, state) = &b.published("state")[2];
    assert_eq!(state["rejected"], 2);
    assert_eq!(state["feeds"], 1);
}

#[test]
fn every_bad_input_gets_an_error_with_its_code_and_nothing_else() {
    let huge = vec![b'{'; 1 << 20];
    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (b"".to_vec(), ErrorCode::InvalidJson),
        (b"not json".to_vec(), ErrorCode::InvalidJson),
        (br#"{"event":"SINGLE""#.to_vec(), ErrorCode::InvalidJson),
        (b"[[[[[[[[[[]]]]]]]]]]".to_vec(), ErrorCode::InvalidJson),
        (b"\xc0\xaf".to_vec(), ErrorCode::NotUtf8),
        (b"[]".to_vec(), ErrorCode::NotAnObject),
        (b"\"LONG\"".to_vec(), ErrorCode::NotAnObject),
        (b"{}".to_vec(), ErrorCode::MissingEvent),
        (
            br#"{"clickType":"SINGLE"}"#.to_vec(),
            ErrorCode::MissingEvent,
        ),
        (br#"{"event":2}"#.to_vec(), ErrorCode::InvalidEvent),
        (br#"{"event":null}"#.to_vec(), ErrorCode::InvalidEvent),
        (br#"{"event":"long"}"#.to_vec(), ErrorCode::UnknownEvent),
        (
            br#"{"event":"SINGLE\u0000"}"#.to_vec(),
            ErrorCode::UnknownEvent,
        ),
        (huge, ErrorCode::PayloadTooLarge),
    ];
    for (payload, code) in cases {
        let shown = String::from_utf8_lossy(&payload[..payload.len().min(40)]).into_owned();
        let b = Bench::default().arrive(0, &payload).run_until(3000);
        let errors = b.published("error");
        assert_eq!(errors.len(), 1, "{shown}");
        assert_eq!(errors[0].1["code"], code.as_str(), "{shown}");
        assert!(b.pin_log().is_empty(), "{shown}");
        assert!(b.published("fed").is_empty(), "{shown}");
        if code == ErrorCode::PayloadTooLarge {
            assert_eq!(
                errors[0].1["error"],
                "payload of 1048576 bytes is larger than the 256 byte limit"
            );
        }
    }
}

#[test]
fn the_inbox_holds_inbox_len_messages_and_refuses_more() {
    let mut f = Feeder::new(FeederConfig {
        inbox_len: 2,
        ..FeederConfig::default()
    });
    assert!(f.has_room());
    f.offer(SINGLE).unwrap();
    f.offer(b"x").unwrap();
    assert!(!f.has_room());
    assert_eq!(f.offer(LONG), Err(InboxFull));
    assert_eq!(f.waiting(), 2);
    // The turn takes both: the inbox empties as they are handled.
    assert_eq!(f.next_step(0), Step::ReadLevel);
    f.level_read(Ok(1));
    assert!(matches!(f.next_step(0), Step::Publish { .. }));
    assert_eq!(f.next_step(0), Step::DriveMotors(on(true, false)));
    assert_eq!(f.waiting(), 1);
    assert!(f.has_room());
}

// ---------------------------------------------------------------- pins

#[test]
fn a_pin_that_will_not_go_high_aborts_the_feed_at_once() {
    let mut b = Bench::default().arrive(1000, LONG).arrive(1500, DOUBLE);
    b.failures.push((Motor::Right, true, 1));
    let b = b.run_until(19_000);
    // LONG: left went high, right failed; all low at once, reported, no
    // fed and no 12 s block: the DOUBLE runs straight after.
    assert_eq!(
        b.pin_log(),
        [
            (3000, on(true, false)),
            (3000, Motors::OFF),
            (3000, on(false, true)),
            (13_000, Motors::OFF),
        ]
    );
    let errors = b.published("error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 3000);
    assert_eq!(errors[0].1["code"], "motor_pin");
    assert_eq!(errors[0].1["event"], "LONG");
    assert_eq!(
        errors[0].1["error"],
        "right motor pin could not be driven high; feed LONG aborted"
    );
    let fed = b.published("fed");
    assert_eq!(fed.len(), 1);
    assert_eq!(fed[0].1["event"], "DOUBLE");
    assert_eq!(fed[0].1["feeds"], 1);
    assert_eq!(b.times("state"), [0, 3000, 18_000]);
}

#[test]
fn a_pin_that_will_not_go_low_is_reported_and_retried_every_turn() {
    let mut b = Bench::default().arrive(1000, SINGLE);
    // Fails at the feed's end and at the next turn's retry; the third try works.
    b.failures.push((Motor::Left, false, 2));
    let b = b.run_until(22_000);
    let errors = b.published("error");
    assert_eq!(
        errors.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        [13_000, 18_000]
    );
    assert_eq!(errors[0].1["code"], "motor_pin");
    assert_eq!(errors[0].1["event"], "SINGLE");
    assert_eq!(errors[1].1["event"], Value::Null);
    assert!(
        errors[0].1["error"]
            .as_str()
            .unwrap()
            .starts_with("left motor pin could not be driven low")
    );
    // The feed still ends as the reference's does.
    assert_eq!(b.times("fed"), [15_000]);
    assert_eq!(
        b.pin_log(),
        [
            (3000, on(true, false)),
            (13_000, on(true, false)),
            (18_000, on(true, false)),
            (21_000, Motors::OFF),
        ]
    );
    let states = b.published("state");
    assert_eq!(states[2].0, 18_000);
    assert_eq!(states[2].1["motors"]["left"], "on");
    assert_eq!(states[3].0, 21_000);
    assert_eq!(states[3].1["motors"]["left"], "off");
    // Only the turn with a motor believed on drives the pins.
    assert_eq!(b.feeder.motors(), Motors::OFF);
}

// ---------------------------------------------------------------- properties

fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
    let event = prop_oneof![
        Just("\"SINGLE\"".to_string()),
        Just("\"DOUBLE\"".to_string()),
        Just("\"LONG\"".to_string()),
        Just("\"single\"".to_string()),
        Just("null".to_string()),
        Just("3".to_string()),
        Just("[\"LONG\"]".to_string()),
        "\"[A-Z]{0,8}\"",
        "[^\u{0}]{0,12}",
    ];
    let shaped = (event, any::<bool>(), any::<bool>(), 0usize..12).prop_map(
        |(event, extra, named, depth)| {
            let key = if named { "event" } else { "evnt" };
            let mut s = format!("{{\"{key}\":{event}");
            if extra {
                s.push_str(",\"x\":");
                s.push_str(&"[".repeat(depth));
                s.push_str(&"]".repeat(depth));
                if depth == 0 {
                    s.push('1');
                }
            }
            s.push('}');
            s.into_bytes()
        },
    );
    prop_oneof![
        shaped,
        proptest::collection::vec(any::<u8>(), 0..400),
        Just(SINGLE.to_vec()),
        Just(DOUBLE.to_vec()),
        Just(LONG.to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_payload_gets_exactly_one_answer_and_moves_motors_only_when_valid(
        payload in payload_strategy()
    ) {
        let b = Bench::default().arrive(0, &payload).run_until(20_000);
        let parsed = parse_action(&payload, 256);
        let fed = b.published("fed");
        let errors = b.published("error");
        prop_assert_eq!(fed.len() + errors.len(), 1);
        match parsed {
            Ok(event) => {
                prop_assert_eq!(&fed[0].1["event"], event.as_str());
                prop_assert_eq!(b.pin_log(), vec![(0, event.motors()), (10_000, Motors::OFF)]);
            }
            Err(e) => {
                prop_assert_eq!(&errors[0].1["code"], e.code.as_str());
                prop_assert!(b.pin_log().is_empty());
            }
        }
    }

    #[test]
    fn any_schedule_keeps_the_references_blocking_and_order(
        schedule in proptest::collection::vec((0u64..60_000, 0usize..5), 0..10),
        one_per_turn in any::<bool>(),
    ) {
        let payloads: [&[u8]; 5] = [SINGLE, DOUBLE, LONG, b"junk", br#"{"event":"LATER"}"#];
        let servicing = if one_per_turn { Servicing::OnePerTurn } else { Servicing::AllWaiting };
        let mut b = Bench::new(FeederConfig { servicing, ..FeederConfig::default() });
        let mut sorted = schedule.clone();
        sorted.sort_by_key(|(t, _)| *t); // stable: equal times keep their order
        for (t, k) in &sorted {
            b = b.arrive(*t, payloads[*k]);
        }
        let b = b.run_until(60_000 + 10 * 15_000 + 20_000);

        // Every message is answered once, in arrival order.
        let answers: Vec<(u64, String)> = b.log.iter().filter_map(|e| match e {
            Entry::Publish(t, k, v, _) if k == "fed" => Some((*t, v["event"].as_str().unwrap().into())),
            Entry::Publish(t, k, _, _) if k == "error" => Some((*t, "error".into())),
            _ => None,
        }).collect();
        let expected: Vec<String> = sorted.iter().map(|(_, k)| match k {
            0 => "SINGLE".into(), 1 => "DOUBLE".into(), 2 => "LONG".into(), _ => "error".into(),
        }).collect();
        prop_assert_eq!(answers.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>(), expected);

        // Motors run exactly 10 s each, fed follows 2 s after the stop, and
        // nothing is published while a motor runs.
        let mut running_since = None;
        let mut stopped_at = None;
        for e in &b.log {
            match e {
                Entry::Pins(t, m) if m.any() => {
                    prop_assert!(running_since.is_none());
                    running_since = Some(*t);
                }
                Entry::Pins(t, _) => {
                    let start = running_since.take();
                    prop_assert_eq!(start.map(|s| t - s), Some(10_000));
                    stopped_at = Some(*t);
                }
                Entry::Publish(t, k, _, _) => {
                    prop_assert!(running_since.is_none(), "{} published while a motor runs", k);
                    if k == "fed" {
                        prop_assert_eq!(stopped_at.take().map(|s| t - s), Some(2_000));
                    }
                }
            }
        }

        // Each message is handled in the first service at or after its
        // arrival (default) or in arrival order one per turn; a turn lasts
        // 3 s plus 12 s per feed.
        let states = b.times("state");
        let turn_of = |t: u64| states.iter().rposition(|s| *s <= t).unwrap();
        let mut previous_turn: Option<usize> = None;
        for ((arrived, _), (answered, kind)) in sorted.iter().zip(&answers) {
            // A fed is published 12 s after its handling started.
            let handled = if kind == "error" { *answered } else { answered - 12_000 };
            let turn = turn_of(handled);
            let first_possible = states.iter().position(|s| *s >= *arrived).unwrap();
            let expected_turn = match (one_per_turn, previous_turn) {
                (true, Some(p)) => first_possible.max(p + 1),
                _ => first_possible,
            };
            prop_assert_eq!(turn, expected_turn);
            previous_turn = Some(turn);
        }
        for pair in states.windows(2) {
            let feeds = answers.iter().filter(|(t, k)| k != "error" && *t > pair[0] && *t < pair[1]).count() as u64;
            prop_assert_eq!(pair[1] - pair[0], 3_000 + 12_000 * feeds);
        }
        let last = b.published("state").last().cloned().unwrap();
        prop_assert_eq!(&last.1["feeds"], answers.iter().filter(|(_, k)| k != "error").count());
        prop_assert_eq!(&last.1["rejected"], answers.iter().filter(|(_, k)| k == "error").count());
    }
}
