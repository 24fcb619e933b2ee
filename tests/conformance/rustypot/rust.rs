//! Conformance: the rustypot crate (1.13.1, unmodified) drives the Amazing
//! Hand's servo-bus twin served on a pty (`serve_robot_pty`, in process, as
//! `twinrig serve hand --pty` serves it), through a real `serialport` TTY
//! opened on the pty's path, as it drives the real SCS0009 bus. The same kinds
//! of checks as `suite.py` (the Python bindings), against the same
//! expectations (`scs0009_registers.json`).
//!
//! Live mode runs on the wall clock, so the waits are generous and timing is
//! only checked loosely. Every write is followed by [`WRITE_PAUSE`], as in
//! Pollen's demo: a servo misses a write that arrives while it still applies
//! its previous one. Reads need no pause.

#[path = "../../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::PtyServer;
use rustypot::servo::feetech::scs0009::{self, Scs0009Controller};
use serde_json::Value;
use twinrig::serve::ServeSummary;

/// How long rustypot waits for a reply. The twin runs on the wall clock of
/// a shared machine, where the serve loop can be held up for a while; a
/// missed packet is never answered however long one waits, so a generous
/// timeout loses nothing.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The timeout for calls that expect no answer at all (SYNC_READ, a write at
/// status level 0, REBOOT), so they fail fast.
const SILENCE_TIMEOUT: Duration = Duration::from_millis(200);
/// After every write (the twin's window is 0.5 ms; the serve loop ticks every 1 ms).
const WRITE_PAUSE: Duration = Duration::from_millis(5);
const IDS: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const ABSENT_ID: u8 = 20;
/// One position step in radians: 300 degrees over 1024 steps.
const STEP_RAD: f64 = 300.0 * std::f64::consts::PI / 180.0 / 1024.0;
/// The twin's top speed (`ServoParams::max_speed_steps`), steps/s.
const TWIN_MAX_SPEED_STEPS: f64 = 2048.0;

/// One entry of `scs0009_registers.json`.
struct Expected {
    name: String,
    addr: u8,
    size: u8,
    /// Raw power-on value (`None`: the servo's id).
    power_on: Option<i64>,
    conversion: String,
    write: String,
    value: Option<i64>,
}

impl Expected {
    fn power_on(&self, id: u8) -> i64 {
        self.power_on.unwrap_or(i64::from(id))
    }

    /// What `read_register` returns for raw `raw`: sign-magnitude registers
    /// carry their sign.
    fn signed(&self, raw: i64) -> i64 {
        match self.conversion.as_str() {
            "velocity" if raw & 0x8000 != 0 => -(raw & 0x7FFF),
            "load" if raw & 0x400 != 0 => -(raw & 0x3FF),
            _ => raw,
        }
    }

    fn wire(&self, raw: i64) -> Vec<u8> {
        let bytes = raw.to_be_bytes();
        bytes[8 - usize::from(self.size)..].to_vec()
    }
}

fn expectations() -> Vec<Expected> {
    let doc: Value =
        serde_json::from_str(include_str!("scs0009_registers.json")).expect("valid JSON");
    doc["registers"]
        .as_array()
        .expect("a register list")
        .iter()
        .map(|r| Expected {
            name: r["name"].as_str().expect("name").to_string(),
            addr: r["addr"].as_u64().expect("addr") as u8,
            size: r["size"].as_u64().expect("size") as u8,
            power_on: r["power_on"].as_i64(),
            conversion: r["conversion"].as_str().expect("conversion").to_string(),
            write: r["write"].as_str().expect("write").to_string(),
            value: r["value"].as_i64(),
        })
        .collect()
}

/// One served bus at a time: each runs a wall-clock loop, and the tests
/// share two cores with the rest of the suite.
static ONE_BUS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The hand's bus served on a pty, and rustypot's controller on it.
fn serve() -> (PtyServer, Scs0009Controller) {
    let server = PtyServer::start("hand".parse().expect("the hand is served"));
    let hand = Scs0009Controller::new()
        .with_protocol_v1()
        .with_serial_port(server.open_serial(TIMEOUT));
    (server, hand)
}

/// Stops the server; the bus's counters and servos.
fn finish(server: PtyServer) -> (ServeSummary, serde_json::Value) {
    let summary = server.finish();
    let stats = summary.robot["bus"].clone();
    (summary, stats)
}

/// What rustypot's calls return.
type Rp<T> = Result<T, Box<dyn std::error::Error>>;

/// A write, then the pause before the next one.
fn paced<T>(result: Rp<T>) -> T {
    let value = result.unwrap_or_else(|e| panic!("write: {e}"));
    std::thread::sleep(WRITE_PAUSE);
    value
}

fn one<T: Copy + std::fmt::Debug>(values: Rp<Vec<T>>) -> T {
    let values = values.unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(values.len(), 1, "one value: {values:?}");
    values[0]
}

fn angle(raw: i64) -> f64 {
    STEP_RAD * ((raw & 0x3FF) - 511) as f64
}

/// The rad argument rustypot truncates to `raw` (aims at the middle of the step).
fn angle_arg(raw: i64) -> f64 {
    (raw - 511) as f64 * STEP_RAD + 0.5 * STEP_RAD
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn every_register_of_rustypots_scs0009_list_reads_and_writes_as_on_the_servo() {
    let table = expectations();
    let declared = scs0009::REGISTERS;
    let names: Vec<&str> = declared.iter().map(|r| r.name).collect();
    let expected: Vec<&str> = table.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, expected, "rustypot's list and the expectations");
    for (r, e) in declared.iter().zip(&table) {
        assert_eq!((r.addr, r.size), (e.addr, e.size), "{}", e.name);
    }

    let _one = ONE_BUS.lock().unwrap_or_else(|e| e.into_inner());
    let (server, mut hand) = serve();
    let id = 8;
    // Power-on values, through the generic and the raw reads.
    for e in &table {
        let raw = e.power_on(id);
        let got = hand
            .read_register(id, &e.name)
            .unwrap_or_else(|err| panic!("read {}: {err}", e.name));
        assert_eq!(got, e.signed(raw), "read_register {}", e.name);
        let wire = hand.read_raw_data(id, e.addr, e.size).unwrap();
        assert_eq!(wire, e.wire(raw), "bytes of {}", e.name);
    }
    // Typed reads, in rustypot's units.
    assert_eq!(one(hand.read_firmware_major_version(id)), 0);
    assert_eq!(one(hand.read_firmware_minor_version(id)), 5);
    // An unconverted word is read little-endian by rustypot: bytes 5, 4 -> 1029;
    // read_register above gave 1284, the SCS0009's model number.
    assert_eq!(one(hand.read_model(id)), 0x0405);
    assert_eq!(one(hand.read_id(id)), id);
    assert!(close(one(hand.read_min_angle_limit(id)), angle(20)));
    assert!(close(one(hand.read_max_angle_limit(id)), angle(1003)));
    assert!(close(one(hand.read_max_torque_limit(id)), 100.0));
    assert!(close(one(hand.read_present_position(id)), 0.0));
    assert!(close(one(hand.read_goal_position(id)), 0.0));
    assert!(close(one(hand.read_present_speed(id)), 0.0));
    assert_eq!(one(hand.read_present_load(id)), 0);
    assert_eq!(one(hand.read_present_voltage(id)), 50);
    assert!(one(hand.read_lock(id)));
    assert!(!one(hand.read_moving(id)));
    assert_eq!(one(hand.read_status(id)), 0);
    assert_eq!(one(hand.read_sync_write_flag(id)), 0);
    assert_eq!(one(hand.read_maximum_velocity_limit(id)), 41);

    // Writes: stored registers read back; read-only ones acknowledge and ignore it.
    for e in &table {
        let home = e.power_on(id);
        match e.write.as_str() {
            "stored" => {
                let value = e.value.expect("a test value");
                paced(hand.write_register(id, &e.name, e.signed(value)));
                assert_eq!(
                    hand.read_register(id, &e.name).unwrap(),
                    e.signed(value),
                    "{} reads back",
                    e.name
                );
                assert_eq!(
                    hand.read_raw_data(id, e.addr, e.size).unwrap(),
                    e.wire(value)
                );
                paced(hand.write_register(id, &e.name, e.signed(home)));
                assert_eq!(hand.read_register(id, &e.name).unwrap(), e.signed(home));
            }
            "read_only" => {
                let value = e.value.expect("a test value");
                let status = paced(hand.write_raw_data_with_error(id, e.addr, e.wire(value)));
                assert_eq!(status.byte(), 0, "{}: acknowledged without error", e.name);
                assert_eq!(
                    hand.read_register(id, &e.name).unwrap(),
                    e.signed(home),
                    "{} is read only",
                    e.name
                );
            }
            _ => {}
        }
    }
    // Typed writes, in rustypot's units (the factory block is declared writable
    // by rustypot but read only on the servo).
    paced(hand.write_goal_position(id, angle_arg(600)));
    assert!(close(one(hand.read_goal_position(id)), angle(600)));
    paced(hand.write_goal_speed(id, 3.0));
    assert_eq!(hand.read_register(id, "goal_speed").unwrap(), 586);
    paced(hand.write_max_torque_limit(id, 50.0));
    assert!(close(one(hand.read_max_torque_limit(id)), 50.0));
    paced(hand.write_lock(id, false));
    assert!(!one(hand.read_lock(id)));
    paced(hand.write_dts(id, 7));
    assert_eq!(one(hand.read_dts(id)), 20);
    paced(hand.write_minimum_startup_force(id, 60));
    assert_eq!(one(hand.read_minimum_startup_force(id)), 60);

    // The id: the servo answers at its new id at once.
    paced(hand.write_id(id, ABSENT_ID));
    assert!(hand.ping(ABSENT_ID).unwrap());
    assert!(!hand.ping(id).unwrap());
    paced(hand.write_id(ABSENT_ID, id));
    assert!(hand.ping(id).unwrap());

    // Status level 0: the write setting it is answered (level 1 when it
    // arrived); later writes are applied but not answered.
    paced(hand.write_response_status_level(7, 0));
    assert_eq!(one(hand.read_response_status_level(7)), 0);
    hand.set_timeout(SILENCE_TIMEOUT).unwrap();
    assert!(hand.write_response_status_level(7, 1).is_err(), "no answer");
    // rustypot's reboot is Dynamixel's 0x08, no SCS instruction: no answer.
    assert!(!hand.reboot(1).unwrap());
    hand.set_timeout(TIMEOUT).unwrap();
    std::thread::sleep(WRITE_PAUSE);
    assert_eq!(one(hand.read_response_status_level(7)), 1);

    let (summary, stats) = finish(server);
    assert_eq!(stats["missed"], 0, "{summary}");
}

/// Polls present positions until every servo is within `tolerance` rad of
/// its goal; the time it took.
fn wait_at(hand: &mut Scs0009Controller, ids: &[u8], goals: &[f64], tolerance: f64) -> Duration {
    let start = Instant::now();
    loop {
        let present: Vec<f64> = ids
            .iter()
            .map(|&i| one(hand.read_present_position(i)))
            .collect();
        if present
            .iter()
            .zip(goals)
            .all(|(p, g)| (p - g).abs() <= tolerance)
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never reached {goals:?}: {present:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ping_sync_write_and_sync_read_behave_as_on_the_servo() {
    let _one = ONE_BUS.lock().unwrap_or_else(|e| e.into_inner());
    let (server, mut hand) = serve();
    for id in IDS {
        assert!(hand.ping(id).unwrap(), "servo {id} answers");
    }
    assert!(!hand.ping(ABSENT_ID).unwrap());

    paced(hand.sync_write_torque_enable(&IDS, &[1; 8]));
    for id in IDS {
        assert_eq!(one(hand.read_torque_enable(id)), 1);
    }
    // Nobody acknowledges a SYNC_WRITE, so read each one back before the next:
    // two sent a pause apart could otherwise reach the twin together if the
    // serve loop is held up, and the second would be missed.
    let goals: Vec<f64> = (0..8).map(|k| -0.4 + 0.1 * f64::from(k)).collect();
    paced(hand.sync_write_goal_speed(&IDS, &[5.0; 8]));
    for id in IDS {
        assert_eq!(hand.read_register(id, "goal_speed").unwrap(), 977);
    }
    std::thread::sleep(WRITE_PAUSE);
    paced(hand.sync_write_goal_position(&IDS, &goals));
    for (&id, &goal) in IDS.iter().zip(&goals) {
        assert!((one(hand.read_goal_position(id)) - goal).abs() <= STEP_RAD);
    }
    wait_at(&mut hand, &IDS, &goals, 2.0 * STEP_RAD);

    // SYNC_READ gets no answer from an SCS servo: the generated method times out...
    hand.set_timeout(SILENCE_TIMEOUT).unwrap();
    assert!(hand.sync_read_present_position(&[1, 2, 3]).is_err());
    hand.set_timeout(TIMEOUT).unwrap();
    // ...and rustypot's definition-aware sync read reads one id at a time.
    let all = hand
        .sync_read_register(&[1, 2, 3], "present_position")
        .expect("one READ per id");
    let each: Vec<i64> = [1, 2, 3]
        .iter()
        .map(|&i| hand.read_register(i, "present_position").unwrap())
        .collect();
    assert_eq!(all, each);
    for (&raw, goal) in all.iter().zip(&goals) {
        assert!((angle(raw) - goal).abs() <= 2.0 * STEP_RAD);
    }

    paced(hand.sync_write_torque_enable(&IDS, &[0; 8]));
    let (summary, stats) = finish(server);
    assert_eq!(stats["missed"], 0, "{summary}");
    assert_eq!(stats["unsupported"], 1, "the SYNC_READ: {summary}");
    assert_eq!(summary.robot["torque_on"], 0, "{summary}");
}

#[test]
fn torque_off_goes_limp_and_a_goal_is_reached_at_the_twins_speed() {
    let _one = ONE_BUS.lock().unwrap_or_else(|e| e.into_inner());
    let (server, mut hand) = serve();
    // A goal at 3 rad/s (586 steps/s, under the twin's top speed).
    let (servo, speed, target) = (3, 3.0, 0.5);
    paced(hand.write_torque_enable(servo, 1));
    let from = one(hand.read_present_position(servo));
    paced(hand.write_goal_speed(servo, speed));
    let start = Instant::now();
    paced(hand.write_goal_position(servo, target));
    let took = start.elapsed() + wait_at(&mut hand, &[servo], &[target], 0.02);
    let steps_s = (speed / STEP_RAD).trunc().min(TWIN_MAX_SPEED_STEPS);
    let expected = Duration::from_secs_f64((target - from).abs() / (steps_s * STEP_RAD));
    // Wall-clock live mode: plausible, not precise.
    assert!(
        took >= expected / 2 && took <= expected * 5 + Duration::from_secs(2),
        "{took:?} for what the twin's speed makes {expected:?}"
    );

    // Torque off mid-motion: limp where it is.
    let servo = 2;
    paced(hand.write_torque_enable(servo, 1));
    paced(hand.write_goal_speed(servo, 1.0));
    paced(hand.write_goal_position(servo, 1.2));
    std::thread::sleep(Duration::from_millis(200));
    paced(hand.write_torque_enable(servo, 0));
    assert_eq!(one(hand.read_torque_enable(servo)), 0);
    assert!(!one(hand.read_moving(servo)));
    assert!(close(one(hand.read_present_speed(servo)), 0.0));
    assert_eq!(one(hand.read_present_load(servo)), 0);
    let limp = one(hand.read_present_position(servo));
    assert!(
        limp > 0.0 && limp < 1.2 - 10.0 * STEP_RAD,
        "stopped short: {limp}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        close(one(hand.read_present_position(servo)), limp),
        "no motion while limp"
    );
    // Torque on again: holds where it was left.
    paced(hand.write_torque_enable(servo, 1));
    assert!((one(hand.read_goal_position(servo)) - limp).abs() <= STEP_RAD);

    let (summary, stats) = finish(server);
    assert_eq!(stats["missed"], 0, "{summary}");
}

#[test]
fn a_thousand_back_to_back_reads_never_time_out() {
    let _one = ONE_BUS.lock().unwrap_or_else(|e| e.into_inner());
    let (server, mut hand) = serve();
    let mut failures = Vec::new();
    for n in 0..1000 {
        if let Err(e) = hand.read_present_position(1) {
            failures.push(format!("read {n}: {e}"));
        }
    }
    // And straight after a write, as a polling driver does.
    paced(hand.write_torque_enable(1, 1));
    hand.write_goal_position(1, 0.3).expect("goal");
    for n in 0..100 {
        if let Err(e) = hand.read_present_position(1) {
            failures.push(format!("read {n} after the goal: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    let (summary, stats) = finish(server);
    assert_eq!(stats["missed"], 0, "{summary}");
    assert!(stats["replies"].as_u64() >= Some(1102), "{summary}");
}
