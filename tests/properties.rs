//! Property tests over whole scenarios (`twinrig::strategy`): each case is a
//! scenario written as YAML text here, loaded and checked as a file would
//! be, and run in virtual time with a fault schedule proptest draws from
//! its `chaos:` section. A failing case is shrunk (fewer and gentler
//! faults, fewer maneuvers, shorter sentences, a smaller fleet) and
//! reported with the scenario that fails, fault schedule fixed: the
//! regression test to commit.
//!
//! - The RVR bridge: random maneuver sequences (and a cancel) under UART
//!   noise: every maneuver is accepted once and ends in exactly one
//!   terminal status, the robot never runs away and ends at rest.
//! - The hand agent: random sentences (letters, spaces, punctuation and
//!   digits; JSON or plain text; padded payloads; sent at random points of
//!   the spelling), with the bus pauses on: the letters are spelled in
//!   order, every letter is reached and held, no servo write is missed.
//! - The OTA client: a small fleet with random power cuts, corrupted
//!   downloads and failed first boots: it never bricks: after the job every
//!   device boots 1.0.0 or 2.0.0, its shadow says which, and the counts
//!   add up to the fleet.
//!
//! CI-sized: 32 cases each, the same ones every run (`strategy::config`),
//! about 10 s in all in a debug build. For a long hunt:
//!
//! ```sh
//! TWINRIG_PROPTEST_CASES=500 cargo test --release --test properties
//! ```

use std::fmt::Write as _;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use twinrig::runner::Outcome;
use twinrig::scenario::Scenario;
use twinrig::scenario::chaos::ScheduledFault;
use twinrig::strategy;

/// Cases per property in CI (`TWINRIG_PROPTEST_CASES` overrides).
const CASES: u32 = 32;

/// Reads a scenario the property wrote, as a file is read: a property that
/// writes an invalid one is a bug in the property, shown with its text.
fn load(yaml: &str) -> Scenario {
    twinrig::suite::parse(yaml.to_owned(), Path::new("properties.yaml"))
        .unwrap_or_else(|e| panic!("{}\n{yaml}", e.render_plain()))
        .scenario
}

/// `text` as a YAML scalar that stays a string (JSON quoting is YAML's).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Runs `scenario` with exactly `faults`; fails the case, showing why and
/// the scenario to reproduce it, unless every check held.
fn run(scenario: &Scenario, faults: Vec<ScheduledFault>) -> Result<Outcome, TestCaseError> {
    let scenario = strategy::with_faults(scenario, faults);
    let outcome = strategy::run(&scenario);
    if outcome.passed() {
        Ok(outcome)
    } else {
        Err(failed(&scenario, &strategy::failures(&outcome)))
    }
}

/// A failed case: `why`, and the scenario file that reproduces it.
fn failed(scenario: &Scenario, why: &str) -> TestCaseError {
    let yaml = serde_saphyr::to_string(scenario).unwrap_or_default();
    TestCaseError::fail(format!(
        "{why}\n--- the scenario (twinrig run FILE):\n{yaml}"
    ))
}

// ---------------------------------------------------------------------------
// The RVR bridge.

const RVR_STATE: &str = "the-project/sphero-rvr/rvr-1/state";

/// The bridge's telemetry period at rest, with a margin, s.
const IDLE_TELEMETRY_S: f64 = 65.0;

/// UART noise on the bridge <-> RVR line, from boot on.
const RVR_NOISE: &str = "chaos:
  window: 0s..12s
  faults:
    - { uart: rvr-1, kind: bit_errors, count: 0..4, duration: 50ms..2s, rate: 0.00001..0.002 }
    - { uart: rvr-1, kind: drop_bytes, count: 0..2, duration: 50ms..1s, probability: 0.001..0.2 }
    - { uart: rvr-1, kind: line_break, count: 0..1, duration: 100ms..1s }
";

#[derive(Debug, Clone)]
enum Maneuver {
    Forward { cm: u32 },
    Reverse { cm: u32 },
    Turn { degrees: i32 },
}

impl Maneuver {
    fn payload(&self, id: &str) -> String {
        match self {
            Maneuver::Forward { cm } => {
                format!(
                    "{{ id: {id}, action: forward, distance_m: {} }}",
                    f64::from(*cm) / 100.0
                )
            }
            Maneuver::Reverse { cm } => {
                format!(
                    "{{ id: {id}, action: reverse, distance_m: {} }}",
                    f64::from(*cm) / 100.0
                )
            }
            Maneuver::Turn { degrees } => {
                format!("{{ id: {id}, action: turn, degrees: {degrees} }}")
            }
        }
    }

    /// The bridge's timeout for it, s: 3 s + 2 x nominal (0.4 m/s, 90 deg/s).
    fn timeout_s(&self) -> f64 {
        let nominal = match self {
            Maneuver::Forward { cm } | Maneuver::Reverse { cm } => f64::from(*cm) / 100.0 / 0.4,
            Maneuver::Turn { degrees } => f64::from(degrees.unsigned_abs()) / 90.0,
        };
        3.0 + 2.0 * nominal
    }
}

fn maneuver() -> impl Strategy<Value = Maneuver> {
    prop_oneof![
        (5u32..=80).prop_map(|cm| Maneuver::Forward { cm }),
        (5u32..=60).prop_map(|cm| Maneuver::Reverse { cm }),
        (10i32..=180, any::<bool>()).prop_map(|(d, left)| Maneuver::Turn {
            degrees: if left { d } else { -d }
        }),
    ]
}

/// A case's scenario, and where its checks are.
/// The maneuvers sent at once (the bridge queues up to 4 behind the
/// running one), then a cancel that many ms after the last is accepted,
/// or none; then, once none is left, the checks.
fn rvr_case(seed: u64, maneuvers: &[Maneuver], cancel_after_ms: Option<u32>) -> String {
    let ids: Vec<String> = (1..=maneuvers.len()).map(|i| format!("m{i}")).collect();
    let busy_s: f64 = maneuvers.iter().map(Maneuver::timeout_s).sum();
    let limit_s = (30.0 + busy_s + IDLE_TELEMETRY_S).ceil();
    let mut y = format!(
        "name: rvr maneuvers under uart noise\nseed: {seed}\nduration_limit: {limit_s}s\ndevices:\n  - {{ kind: rvr, id: rvr-1 }}\n{RVR_NOISE}invariants:\n  # Never runs away on a stale or corrupted command.\n  - body: {{ body: rvr-1, field: speed, at_most: 0.8 }}\n  # Exactly one terminal status for every maneuver accepted.\n  - check: {{ device: rvr-1, name: one_terminal_status }}\n  # At rest after a cancel; a stop lost to the noise is the RVR's own\n  # 2 s command timeout's to end.\n  - check: {{ device: rvr-1, name: stops_after_cancel, within: 3s }}\n"
    );
    for id in &ids {
        for status in ["accepted", "started"] {
            writeln!(
                y,
                "  - message: {{ topic: {RVR_STATE}, match: {{ type: maneuver, id: {id}, status: {status} }}, count: {{ at_most: 1 }} }}"
            )
            .unwrap();
        }
    }
    y.push_str("steps:\n");
    let mut step = 0;
    let mut push = |y: &mut String, text: String| {
        step += 1;
        writeln!(y, "  - {text}").unwrap();
        step
    };
    for (m, id) in maneuvers.iter().zip(&ids) {
        push(
            &mut y,
            format!(
                "publish: {{ topic: the-project/sphero-rvr/rvr-1/action, payload: {}, qos: 1 }}",
                m.payload(id)
            ),
        );
    }
    let last = ids.last().unwrap();
    push(
        &mut y,
        format!(
            "wait_for: {{ topic: {RVR_STATE}, match: {{ type: maneuver, id: {last}, status: accepted }}, timeout: 2s }}"
        ),
    );
    if let Some(ms) = cancel_after_ms {
        push(&mut y, format!("delay: {ms}ms"));
        push(
            &mut y,
            "publish: { topic: the-project/sphero-rvr/rvr-1/action, payload: { id: stop, action: cancel }, qos: 1 }".to_owned(),
        );
    }
    // Telemetry with no maneuver: all have ended. It comes every 1 s while
    // the robot is busy, so within 1 s of the last end; but every 60 s at
    // rest, so when no maneuver could start (no sensor data through the
    // noise) the next one may be a minute away.
    push(
        &mut y,
        format!(
            "wait_for: {{ topic: {RVR_STATE}, match: {{ type: telemetry, maneuver: null }}, timeout: {}s }}",
            (busy_s + IDLE_TELEMETRY_S).ceil()
        ),
    );
    // A lost stop is the RVR's own 2 s command timeout's to end.
    push(&mut y, "delay: 2500ms".to_owned());
    push(
        &mut y,
        "expect: { body: { body: rvr-1, field: speed, at_most: 0.01 } }".to_owned(),
    );
    for id in &ids {
        push(
            &mut y,
            format!(
                "expect: {{ message: {{ topic: {RVR_STATE}, match: {{ type: maneuver, id: {id}, status: accepted }}, count: {{ equals: 1 }} }} }}"
            ),
        );
    }
    y
}

/// The schedules of UART noise a case runs with: drawn from `RVR_NOISE`,
/// the `chaos:` section every case's scenario has.
fn rvr_noise() -> impl Strategy<Value = Vec<ScheduledFault>> {
    strategy::faults(&load(&rvr_case(0, &[Maneuver::Turn { degrees: 90 }], None)))
}

proptest! {
    #![proptest_config(strategy::config(CASES))]

    /// Every maneuver accepted ends in exactly one terminal status (UART
    /// noise may make it `failed` or `timeout`, never two of them, never
    /// none), and the robot never runs away and ends at rest.
    #[test]
    fn rvr_maneuvers_under_uart_noise_end_exactly_once(
        seed in 0u64..1000,
        maneuvers in proptest::collection::vec(maneuver(), 1..=5),
        cancel_after_ms in proptest::option::weighted(0.3, 100u32..=4000),
        faults in rvr_noise(),
    ) {
        let scenario = load(&rvr_case(seed, &maneuvers, cancel_after_ms));
        run(&scenario, faults)?;
    }
}

// ---------------------------------------------------------------------------
// The hand agent.

const HAND_ACTION: &str = "the-project/robotic-hand/hand-1/action";
const HAND_STATE: &str = "the-project/robotic-hand/hand-1/state";

/// A sentence sent to the hand.
#[derive(Debug, Clone)]
struct Sentence {
    /// Words of letters, with punctuation and digits around them.
    text: String,
    /// As JSON (`{id, sentence, ts, note}`) or plain text.
    json: bool,
    /// Payload padding, bytes: an ignored `note` in JSON, trailing dots
    /// (skipped) in plain text.
    pad: usize,
    /// When it is sent: once this share (percent) of the letters of the
    /// sentences before it have been spelled...
    after_pct: u32,
    /// ... and this much later (when it waited for a letter: states come
    /// at least a 0.8 s hold apart, so a delay of at most 0.4 s after one
    /// misses none).
    delay_ms: u32,
}

impl Sentence {
    fn letters(&self) -> String {
        self.text
            .chars()
            .filter(char::is_ascii_alphabetic)
            .map(|c| c.to_ascii_uppercase())
            .collect()
    }

    /// Spaces before each letter since the previous one (the agent pauses
    /// 0.4 s for each).
    fn spaces_before(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut spaces = 0;
        for c in self.text.chars() {
            if c == ' ' {
                spaces += 1;
            } else if c.is_ascii_alphabetic() {
                out.push(spaces);
                spaces = 0;
            }
        }
        out
    }

    fn payload(&self, n: usize) -> String {
        if self.json {
            let body = serde_json::json!({
                "id": format!("s{n}"),
                "sentence": self.text,
                "ts": 1_770_550_850,
                "note": "x".repeat(self.pad),
            });
            body.to_string()
        } else {
            quoted(&format!("{}{}", self.text, ".".repeat(self.pad)))
        }
    }
}

fn sentence() -> impl Strategy<Value = Sentence> {
    (
        "[,.'0-9]?[a-zA-Z]{1,3}[,.!?;:0-9-]{0,2}( {1,2}[,.'0-9]?[a-zA-Z]{1,3}[,.!?;:0-9-]{0,2}){0,2}",
        any::<bool>(),
        0usize..=600,
        0u32..=100,
        0u32..=400,
    )
        .prop_map(|(text, json, pad, after_pct, delay_ms)| Sentence {
            text,
            json,
            pad,
            after_pct,
            delay_ms,
        })
}

fn hand_case(seed: u64, sentences: &[Sentence]) -> String {
    let expected: Vec<(char, usize)> = sentences
        .iter()
        .flat_map(|s| {
            s.letters()
                .chars()
                .zip(s.spaces_before())
                .collect::<Vec<_>>()
        })
        .collect();
    let letters: usize = expected.len();
    let limit_s = 20 + 3 * letters;
    let mut y = format!(
        "name: hand spells random sentences\nseed: {seed}\nduration_limit: {limit_s}s\ndevices:\n  - {{ kind: hand, id: hand-1, params: {{ video: false }} }}\ninvariants:\n  - device: {{ device: hand-1, field: bus.missed, at_most: 0 }}\n  - check: {{ device: hand-1, name: goals_within_limits }}\nsteps:\n"
    );
    let publish = |y: &mut String, n: usize, s: &Sentence| {
        writeln!(
            y,
            "  - publish: {{ topic: {HAND_ACTION}, payload: {}, qos: 1 }}",
            s.payload(n)
        )
        .unwrap();
    };
    // Each letter's state, in order: a wait per letter (states come at
    // least a 0.8 s hold apart, so a publish or a short delay between two
    // waits misses none).
    let mut seen = 0;
    let wait_until = |y: &mut String, seen: &mut usize, upto: usize| {
        while *seen < upto {
            let (letter, spaces) = expected[*seen];
            writeln!(
                y,
                "  - wait_for: {{ topic: {HAND_STATE}, match: {{ gesture: fingerspell, letter: {} }}, timeout: {}ms }}",
                quoted(&letter.to_string()),
                4000 + 400 * spaces
            )
            .unwrap();
            *seen += 1;
        }
    };
    let mut before = 0;
    for (n, s) in sentences.iter().enumerate() {
        if n > 0 {
            let seen_at_publish = seen;
            wait_until(&mut y, &mut seen, before * s.after_pct as usize / 100);
            // Only right after a letter's state: right after a publish, the
            // first state of that sentence may come within the delay.
            if s.delay_ms > 0 && seen > seen_at_publish {
                writeln!(y, "  - delay: {}ms", s.delay_ms).unwrap();
            }
        }
        publish(&mut y, n + 1, s);
        before += s.letters().len();
    }
    wait_until(&mut y, &mut seen, letters);
    // The last letter's 0.8 s hold, then the message ends.
    y.push_str("  - delay: 1s\n");
    writeln!(
        y,
        "  - expect: {{ message: {{ topic: {HAND_STATE}, count: {{ equals: {letters} }} }} }}"
    )
    .unwrap();
    for (k, s) in sentences.iter().enumerate() {
        let t = format!("timing.{k}");
        for check in [
            format!("{t}.letters, equals: {}", quoted(&s.letters())),
            format!("{t}.letters_match, equals: true"),
            format!("{t}.finished, equals: true"),
            format!("{t}.flagged, equals: 0"),
            format!("{t}.missed_writes, equals: 0"),
        ] {
            writeln!(
                y,
                "  - expect: {{ device: {{ device: hand-1, field: {check} }} }}"
            )
            .unwrap();
        }
    }
    y.push_str("  - expect: { device: { device: hand-1, field: bus.missed, equals: 0 } }\n");
    y
}

proptest! {
    #![proptest_config(strategy::config(CASES))]

    /// With the bus pauses on, any sentences, in either payload format,
    /// whatever their size and whenever they arrive, are spelled letter by
    /// letter in order (punctuation and digits skipped), every letter
    /// reached and held, no servo write missed.
    #[test]
    fn hand_spells_random_sentences_in_order_without_missed_writes(
        seed in 0u64..1000,
        sentences in proptest::collection::vec(sentence(), 1..=3),
    ) {
        let scenario = load(&hand_case(seed, &sentences));
        run(&scenario, Vec::new())?;
    }
}

// ---------------------------------------------------------------------------
// The OTA client.

/// A group of pet feeders on 1.0.0 and its per-device fault
/// probabilities, percent.
#[derive(Debug, Clone)]
struct Group {
    count: u32,
    power_loss: u32,
    bad_download: u32,
    boot_failure: u32,
}

fn group() -> impl Strategy<Value = Group> {
    (1u32..=3, 0u32..=50, 0u32..=50, 0u32..=50).prop_map(
        |(count, power_loss, bad_download, boot_failure)| Group {
            count,
            power_loss,
            bad_download,
            boot_failure,
        },
    )
}

/// The steps of the two `expect: fleet` (1.0.0, then 2.0.0).
const FLEET_STEPS: [usize; 2] = [5, 6];

fn ota_case(seed: u64, groups: &[Group], max_in_progress: u32) -> String {
    let mut y = format!(
        "name: ota never bricks\nseed: {seed}\nduration_limit: 30min\nfleet:\n  firmware:\n    - {{ type: pet_feeder, versions: [1.0.0, 2.0.0], size: 64KiB }}\n  groups:\n"
    );
    for (i, g) in groups.iter().enumerate() {
        let p = |pct: u32| f64::from(pct) / 100.0;
        writeln!(
            y,
            "    - {{ type: pet_feeder, count: {}, id: \"g{}-{{n}}\", version: 1.0.0, faults: {{ power_loss: {}, bad_download: {}, boot_failure: {} }} }}",
            g.count,
            i + 1,
            p(g.power_loss),
            p(g.bad_download),
            p(g.boot_failure)
        )
        .unwrap();
    }
    y.push_str("  link: { latency: 20ms }\n");
    // Every (re)boot finds a valid image, and the cap holds all along.
    y.push_str("invariants:\n  - check: { name: boots_valid_image }\n  - check: { name: in_progress_within_cap }\n");
    writeln!(
        y,
        "steps:
  - create_job: {{ id: upgrade, target: {{ type: pet_feeder }}, version: 2.0.0, max_in_progress: {max_in_progress} }}
  - wait_for_job: {{ job: upgrade, timeout: 20min }}
  - expect: {{ job: {{ job: upgrade, status: COMPLETED, timed_out: {{ equals: 0 }}, rejected: {{ equals: 0 }}, canceled: {{ equals: 0 }} }} }}
  # A device rolled back or restarted reports its version after its reboot.
  - delay: 5s
  - expect: {{ fleet: {{ type: pet_feeder, version: 1.0.0, count: {{ at_least: 0 }}, shadows_agree: true }} }}
  - expect: {{ fleet: {{ type: pet_feeder, version: 2.0.0, count: {{ at_least: 0 }}, shadows_agree: true }} }}"
    )
    .unwrap();
    y
}

/// How many devices an `expect: fleet` that held counted on its version
/// (its detail: `K of N on V; ...`).
fn fleet_count(outcome: &Outcome, step: usize) -> Option<u32> {
    let a = outcome.assertions.iter().find(|a| a.step == step)?;
    a.detail.split_once(" of ")?.0.parse().ok()
}

proptest! {
    #![proptest_config(strategy::config(CASES))]

    /// Power cuts while flashing, corrupted downloads and new images that
    /// fail their first boot never brick a device: after the rollout each
    /// boots a valid image, 1.0.0 or 2.0.0, its shadow reports that
    /// version, and the two counts add up to the fleet.
    #[test]
    fn ota_rollout_with_device_faults_never_bricks(
        seed in 0u64..1000,
        groups in proptest::collection::vec(group(), 1..=3),
        max_in_progress in 1u32..=3,
    ) {
        let scenario = load(&ota_case(seed, &groups, max_in_progress));
        let outcome = run(&scenario, Vec::new())?;
        let fleet: u32 = groups.iter().map(|g| g.count).sum();
        let [old, new] = FLEET_STEPS.map(|s| fleet_count(&outcome, s));
        let (Some(old), Some(new)) = (old, new) else {
            return Err(failed(&scenario, &format!("no fleet counts in {:?}", outcome.assertions)));
        };
        if old + new != fleet {
            return Err(failed(
                &scenario,
                &format!("{old} devices on 1.0.0 and {new} on 2.0.0 of a fleet of {fleet}"),
            ));
        }
    }
}
