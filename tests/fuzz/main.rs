//! Structure-aware fuzzing of everything that reads untrusted input:
//! scenario files (load + validation + error rendering), the IoT SQL
//! parser and evaluator, the devices' MQTT payload handling, and the twins'
//! UART input (the RVR processors and the SCS0009 servo bus).
//!
//! Each target generates inputs with proptest strategies shaped like the
//! real thing (mutated shipped scenarios, SQL token soup, JSON in the shape
//! of actions and job documents, well-formed frames with hostile payloads,
//! raw noise) and runs for a wall-clock budget: `TWINRIG_FUZZ_SECONDS` per
//! target (default 3). A failure is shrunk to a minimal input and reported
//! with the seed that found it. Every file under `tests/fuzz/regressions/`
//! (one folder per target) is replayed first: inputs that once failed.
//!
//! CI runs each target for 30 s (`.ci/run`). For a long hunt:
//!
//! ```sh
//! TWINRIG_FUZZ_SECONDS=3600 cargo test --release --test fuzz -- --nocapture
//! ```
//!
//! The wall clock only bounds how long the fuzzer runs; every input is
//! generated from a seed (the round number), so a run is repeatable.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

mod mqtt;
mod scenario;
mod sql;
mod uart;

/// Cases per proptest round (a round is one seed).
const ROUND: u32 = 64;

fn budget() -> Duration {
    let secs = std::env::var("TWINRIG_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// The regression inputs of `target`, as files.
fn regressions(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Fuzzes `target` with `strategy` for the budget (each test replays its
/// regression files first); panics (failing the test) on the first input
/// that makes `check` fail or panic, shrunk.
fn fuzz<S>(target: &str, strategy: S, check: impl Fn(&S::Value) -> Result<(), String>)
where
    S: Strategy,
    S::Value: Debug,
{
    let deadline = Instant::now() + budget();
    let (mut rounds, mut cases) = (0u64, 0u64);
    loop {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&rounds.to_le_bytes());
        seed[8..8 + target.len().min(24)]
            .copy_from_slice(&target.as_bytes()[..target.len().min(24)]);
        let config = Config {
            cases: ROUND,
            failure_persistence: None,
            // Shrinking a deep failure can take long; keep the report prompt.
            max_shrink_time: 60_000,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        if let Err(e) = runner.run(&strategy, |v| check(&v).map_err(TestCaseError::fail)) {
            panic!("fuzz target {target}, round {rounds} (seed from the round number): {e}");
        }
        rounds += 1;
        cases += u64::from(ROUND);
        if Instant::now() >= deadline {
            break;
        }
    }
    println!("fuzz {target}: {cases} inputs in {rounds} rounds");
}

#[test]
fn fuzz_scenario_files() {
    for f in regressions("scenario") {
        scenario::check_text(&String::from_utf8_lossy(&std::fs::read(&f).unwrap()))
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    fuzz("scenario", scenario::inputs(), |text| {
        scenario::check_text(text)
    });
}

#[test]
fn fuzz_iot_sql() {
    for f in regressions("sql") {
        sql::check(&String::from_utf8_lossy(&std::fs::read(&f).unwrap()), b"{}")
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    fuzz("sql", sql::inputs(), |(text, payload)| {
        sql::check(text, payload)
    });
}

#[test]
fn fuzz_device_mqtt_payloads() {
    for f in regressions("mqtt") {
        mqtt::check(&std::fs::read(&f).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    fuzz("mqtt", mqtt::inputs(), |payload| mqtt::check(payload));
}

#[test]
fn fuzz_rvr_uart() {
    for f in regressions("rvr_uart") {
        uart::check_rvr(&std::fs::read(&f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    fuzz("rvr_uart", uart::rvr_inputs(), |bytes| {
        uart::check_rvr(bytes)
    });
}

#[test]
fn fuzz_servo_bus_uart() {
    for f in regressions("servo_uart") {
        uart::check_servo_bus(&std::fs::read(&f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    fuzz("servo_uart", uart::servo_inputs(), |bytes| {
        uart::check_servo_bus(bytes)
    });
}

/// Bytes: mostly short, sometimes long, any value.
pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}
