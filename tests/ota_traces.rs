//! Fleet OTA figures read back from the golden traces of the shipped ota
//! scenarios: what a CI job (or Foxglove user) can measure from a trace file
//! alone, with no access to the run that wrote it.

use std::path::PathBuf;

use serde_json::Value;
use twinrig::cloud_twin::{JOBS_CHANNEL, max_in_progress_from_events};
use twinrig_sim::Trace;

fn golden(name: &str) -> Trace {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/replays/ota")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Trace::from_mcap(&bytes).expect("a golden trace reads")
}

fn job_events(trace: &Trace) -> Vec<Value> {
    trace.on_channel(JOBS_CHANNEL).map(|r| r.json()).collect()
}

#[test]
fn the_100_device_rollout_never_has_more_than_10_in_progress() {
    let events = job_events(&golden("fleet-100-healthy.mcap"));
    // Every device started once and succeeded once.
    let count = |status: &str| events.iter().filter(|e| e["status"] == status).count();
    assert_eq!(count("IN_PROGRESS"), 100);
    assert_eq!(count("SUCCEEDED"), 100);
    assert_eq!(max_in_progress_from_events(&events, "feeder-2-0-0"), 10);
}

#[test]
fn the_aborted_rollouts_cancel_what_was_queued() {
    for (file, job) in [
        ("fleet-100-download-failures.mcap", "feeder-2-0-0"),
        ("fleet-400-absolute-abort.mcap", "feeder-2-0-0"),
    ] {
        let trace = golden(file);
        let events = job_events(&trace);
        assert!(max_in_progress_from_events(&events, job) <= 10, "{file}");
        let canceled: Vec<&Value> = events
            .iter()
            .filter(|e| e["status"] == "CANCELED")
            .collect();
        assert!(!canceled.is_empty(), "{file}: nothing canceled");
        // Only QUEUED executions are canceled by an abort (not IN_PROGRESS ones).
        assert!(canceled.iter().all(|e| e["from"] == "QUEUED"), "{file}");
        // The alert is in the trace, before or at the first cancellation.
        let alert = trace.on_channel("/alerts").next().expect("an alert");
        let first_cancel = trace
            .on_channel(JOBS_CHANNEL)
            .find(|r| r.json()["status"] == "CANCELED")
            .expect("a cancellation");
        assert!(alert.time <= first_cancel.time, "{file}");
    }
}

#[test]
fn the_offline_device_times_out_from_queued_and_the_rest_succeed() {
    let trace = golden("offline-device-timed-out.mcap");
    let events: Vec<(u64, Value)> = trace
        .on_channel(JOBS_CHANNEL)
        .map(|r| (r.time, r.json()))
        .collect();
    let of = |thing: &str| -> Vec<&(u64, Value)> {
        events
            .iter()
            .filter(|(_, e)| e["thingName"] == thing)
            .collect()
    };
    // The device never connected, so it never started: its one status
    // change is the queued timeout (twinrig's queuedTimeoutInMinutes: 10),
    // at least 10 minutes after the job was created.
    let created = trace
        .on_channel(twinrig::fleet::FLEET_CHANNEL)
        .find(|r| r.json()["created"] == "rollout-2-0-0")
        .expect("the job's creation is traced")
        .time;
    let offline = of("feeder-offline");
    assert_eq!(offline.len(), 1, "{offline:?}");
    let (at, e) = offline[0];
    assert_eq!(
        (&e["from"], &e["status"]),
        (&"QUEUED".into(), &"TIMED_OUT".into())
    );
    assert!(
        *at >= created + 600 * 1_000_000_000,
        "timed out at {at} ns, created at {created} ns"
    );
    // Every other device started once and succeeded.
    for n in 1..=11 {
        let statuses: Vec<&Value> = of(&format!("feeder-{n:02}"))
            .iter()
            .map(|(_, e)| &e["status"])
            .collect();
        assert_eq!(
            statuses,
            [&"IN_PROGRESS".into(), &"SUCCEEDED".into()] as [&Value; 2],
            "feeder-{n:02}"
        );
    }
}
