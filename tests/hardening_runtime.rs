//! Issue 16, "a run always makes progress and its memory stays bounded":
//! a link that loses everything, a run that cannot advance, waits near the
//! end of virtual time, and the bounded message log and streamed traces.
//! Each defect's regression test is named after it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use twinrig::devices::DeviceKind;
use twinrig::runner::{Outcome, RunOptions, run_with_kinds, run_with_options};
use twinrig::scenario::{find_scenario_files, parse_scenario};
use twinrig::suite;
use twinrig_sim::{MILLIS, Trace, TraceOutput};

fn run(yaml: &str) -> Outcome {
    let loaded = suite::parse(yaml.to_owned(), Path::new("test.yaml"))
        .unwrap_or_else(|e| panic!("{}", e.render_plain()));
    suite::run(&loaded, |_| {})
}

/// Runs `yaml`, and checks it ended well within the 10 s of wall
/// time (a bound on a hang, not a timing figure: these runs take
/// milliseconds).
fn run_bounded(yaml: &str) -> Outcome {
    let started = Instant::now();
    let outcome = run(yaml);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    outcome
}

const RVR: &str = "
name: rvr over a dead link
seed: 11
duration_limit: 20s
ready_timeout: 3s
link: { latency: 30ms }
devices:
  - { kind: rvr, id: rvr-1 }
steps:
  - publish: { topic: the-project/sphero-rvr/rvr-1/action, payload: { id: f1, action: forward, distance_m: 1.0 }, qos: 1 }
  - wait_for: { topic: the-project/sphero-rvr/rvr-1/state, match: { id: f1, status: accepted }, timeout: 2s }
";

/// The livelock of issue 16: `link: {loss: 1.0}` spun at 100 % CPU with
/// virtual time stuck at 0. Loss 1.0 is simulated: nothing crosses the link,
/// so the device never becomes ready and the readiness wait times out
/// normally, naming the device and the link.
#[test]
fn livelock_link_loss_1_0_on_the_scenario_link_times_out_naming_the_link() {
    let yaml = RVR.replace(
        "link: { latency: 30ms }",
        "link: { latency: 30ms, loss: 1.0 }",
    );
    let outcome = run_bounded(&yaml);
    assert!(!outcome.passed());
    let failure = outcome.failure.as_deref().unwrap();
    assert!(
        failure.starts_with(
            "before step 1: 1 device not ready within 3s (rvr-1: client rvr-1 has not subscribed"
        ),
        "{failure}"
    );
    assert!(
        failure.ends_with(
            "the link of rvr-1 has loss 1.0: it loses every message, so nothing it sends or \
             is sent ever arrives"
        ),
        "{failure}"
    );
    assert_eq!(outcome.virtual_ns, 3_000 * MILLIS);
}

#[test]
fn livelock_link_loss_1_0_on_a_device_link_times_out_the_wait() {
    // The timeline starts at once; the command never reaches the robot.
    let yaml = RVR.replace(
        "  - { kind: rvr, id: rvr-1 }\n",
        "  - { kind: rvr, id: rvr-1, link: { latency: 30ms, loss: 1.0 } }\nstart: immediately\n",
    );
    let outcome = run_bounded(&yaml);
    let failed = outcome.assertions.iter().find(|a| !a.passed).unwrap();
    assert!(
        failed
            .detail
            .starts_with("no matching message on the-project/sphero-rvr/rvr-1/state within 2s"),
        "{}",
        failed.detail
    );
    assert!(
        failed
            .detail
            .contains("the link of rvr-1 loses 100.000% of messages"),
        "{}",
        failed.detail
    );
    assert_eq!(outcome.virtual_ns, 2_000 * MILLIS);
}

#[test]
fn livelock_link_loss_1_0_on_the_fleet_link_times_out_the_wait() {
    let yaml = "
name: fleet over a dead link
seed: 31
duration_limit: 30min
ready_timeout: 5s
fleet:
  firmware:
    - { type: pet_feeder, versions: [1.0.0, 2.0.0], size: 16KiB }
  groups:
    - { type: pet_feeder, count: 3, id: \"feeder-{n:02}\", version: 1.0.0 }
  link: { latency: 20ms, loss: 1.0 }
steps:
  - create_job: { id: j1, target: { type: pet_feeder }, version: latest }
  - wait_for_job: { job: j1, status: [COMPLETED], timeout: 1min }
";
    let outcome = run_bounded(yaml);
    let failure = outcome.failure.as_deref().unwrap();
    assert!(
        failure.starts_with("before step 1: 3 devices not ready within 5s (feeder-01: "),
        "{failure}"
    );
    assert!(
        failure.contains("the link of feeder-01 has loss 1.0: it loses every message"),
        "{failure}"
    );
}

const QUIET: &str = "
name: quiet
seed: 1
duration_limit: 10s
steps:
  - delay: 1s
STEP
";

/// Overflow-checked time: a `wait_for` or `wait_for_job` whose timeout
/// reached past the end of virtual time used to wrap round to a deadline
/// already passed and report at once that nothing came "within 584y" (a
/// wait that never happened). Such a timeout is now refused at validation,
/// with its position; the arithmetic behind it saturates as well (the
/// Jobs service's timers, `twinrig ota --timeout` below).
#[test]
fn wait_timeouts_near_the_end_of_time_are_refused_with_their_position() {
    let wait_for = "  - wait_for: { topic: never/sent, timeout: 18446744073709551615ns }";
    let wait_for_job =
        "  - wait_for_job: { job: j1, status: [COMPLETED], timeout: 18446744072709551616ns }";
    for (step, column) in [(wait_for, 45), (wait_for_job, 60)] {
        let yaml = QUIET.replace("STEP", step);
        let err = suite::parse(yaml, Path::new("test.yaml"))
            .err()
            .unwrap_or_else(|| panic!("accepted: {step}"));
        let message = err.render_plain();
        assert!(
            message.starts_with(&format!("test.yaml:7:{column}: `")),
            "{message}"
        );
        assert!(
            message.contains("is too long: a scenario's durations are at most 8760h"),
            "{message}"
        );
    }
}

/// A device kind whose task never lets virtual time advance: 2 s after
/// boot it polls a flag nothing will ever set, without waiting.
static STUCK: common::OneTaskKind = common::OneTaskKind {
    name: "stuck",
    summary: "polls a flag in a loop of zero-length delays 2 s after boot",
    task_suffix: " main loop",
    task: |h| {
        Box::pin(async move {
            h.sleep(2000 * MILLIS).await;
            loop {
                h.sleep(0).await;
            }
        })
    },
};

static KINDS: [&'static dyn DeviceKind; 1] = [&STUCK];

/// Progress is guaranteed: a device task that spins at one instant fails
/// the run within a bounded number of scheduler steps, naming the task and
/// what the others wait for, instead of hanging.
#[test]
fn progress_a_task_that_stops_time_fails_the_run_naming_it() {
    let yaml = "
name: stuck device
seed: 1
duration_limit: 1h
start: immediately
devices:
  - { kind: stuck, id: dev-1 }
steps:
  - delay: 10s
";
    let s = parse_scenario(yaml, Path::new("stuck.yaml"), &["stuck"]).unwrap();
    let started = Instant::now();
    let outcome = run_with_kinds(&s, yaml, &KINDS, |_| {});
    assert!(started.elapsed() < Duration::from_secs(10));
    let failure = outcome.failure.as_deref().unwrap();
    assert!(
        failure.starts_with(
            "during step 1: no progress at 2.000000000s: task `dev-1 main loop` ran 1000002 \
             times at this instant without virtual time moving on"
        ),
        "{failure}"
    );
    assert!(
        failure.contains("`timeline` waits for a timer at 10.000000000s"),
        "{failure}"
    );
    assert_eq!(outcome.virtual_ns, 2000 * MILLIS);
}

fn shipped_scenarios() -> Vec<suite::Loaded> {
    let files = find_scenario_files(&["scenarios".into()]).expect("scenarios");
    assert!(files.len() >= 30, "{files:?}");
    files
        .iter()
        .map(|f| suite::load(f).unwrap_or_else(|e| panic!("{}", e.render_plain())))
        .collect()
}

/// Bounded memory: the broker's message log drops what no reader and no
/// step needs. With it forgetting as early as it can (window 0), every
/// shipped scenario still gives its golden trace byte for byte.
#[test]
fn bounded_message_log_changes_no_shipped_result() {
    let options = RunOptions {
        observed_window: 0,
        ..RunOptions::default()
    };
    for l in shipped_scenarios() {
        let golden =
            suite::golden_path(Path::new("scenarios"), Path::new("tests/replays"), &l.path);
        let expected = Trace::from_mcap(&std::fs::read(&golden).unwrap()).unwrap();
        let outcome = suite::run_with(&l, &options, |_| {});
        if let Some(d) = expected.first_divergence(&outcome.trace) {
            panic!("{}: {d}", l.path.display());
        }
        assert_eq!(expected.metadata, outcome.trace.metadata);
    }
}

/// Bounded memory: `run --trace` streams the trace to its file as the run
/// goes; the file is the golden byte for byte, and no temporary file stays.
#[test]
fn streamed_trace_file_is_the_golden_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let o = common::twinrig(&[
        "run",
        "scenarios/rvr/forward-1m.yaml",
        "--quiet",
        "--trace",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", common::text(&o));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["rvr-forward-1-m.mcap"]);
    assert_eq!(
        std::fs::read(dir.path().join("rvr-forward-1-m.mcap")).unwrap(),
        std::fs::read("tests/replays/rvr/forward-1m.mcap").unwrap()
    );
}

/// Without `--trace` no trace is kept: the run's records are counted, not held.
#[test]
fn a_run_without_a_trace_file_keeps_no_records() {
    let l = suite::load(Path::new("scenarios/core/echo-round-trip.yaml")).unwrap();
    let kept = suite::run(&l, |_| {});
    let options = RunOptions {
        trace: TraceOutput::Discard,
        ..RunOptions::default()
    };
    let discarded = run_with_options(
        &l.scenario,
        &l.source,
        twinrig::devices::kinds(),
        &options,
        |_| {},
    );
    assert!(discarded.passed() && kept.passed());
    assert!(discarded.trace.records.is_empty());
    assert_eq!(discarded.trace_records, kept.trace.records.len() as u64);
    assert_eq!(discarded.trace.metadata, kept.trace.metadata);
}

/// A trace that cannot be written is an error naming the file (exit 2), not
/// a run that silently loses its trace.
#[test]
fn an_unwritable_trace_directory_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let o = common::twinrig(&[
        "run",
        "scenarios/core/echo-round-trip.yaml",
        "--quiet",
        "--trace",
        blocker.join("traces").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", common::text(&o));
    assert!(
        common::text(&o).contains("not-a-dir"),
        "{}",
        common::text(&o)
    );
}

/// `twinrig ota --timeout` near the end of virtual time used to wrap the
/// session's limit round to a time already passed. It now follows the job
/// to its end.
#[test]
fn ota_timeout_near_the_end_of_time_follows_the_job_to_its_end() {
    let (file, name) = twinrig::ota_cli::load_fleet(None).unwrap();
    let rollout = twinrig_cloud::jobs::RolloutSettings::default();
    // The wrapped limit ended the session at once, unfinished: the outcome
    // is the check (how long a debug build takes is not).
    let (report, _) = twinrig::ota_cli::run(
        &file,
        &name,
        "update the pet_feeder device group to the latest firmware",
        "near-end",
        &rollout,
        u64::MAX,
        |_| {},
    )
    .unwrap();
    assert_eq!(
        report.outcome,
        twinrig::ota_cli::OtaOutcome::Succeeded,
        "{report:?}"
    );
}

/// The long idle runs docs/BENCHMARKS.md measures still load (they are too
/// long to run here).
#[test]
fn the_idle_memory_benchmark_scenarios_load() {
    for hours in [10, 100, 1000] {
        let path = format!("benches/scenarios/rvr-idle-{hours}h.yaml");
        let l = suite::load(Path::new(&path)).unwrap_or_else(|e| panic!("{}", e.render_plain()));
        assert_eq!(l.scenario.steps.len(), 1, "{path}");
    }
}
