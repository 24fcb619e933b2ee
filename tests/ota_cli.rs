//! `twinrig ota "<prompt>"`: exit codes, the tool calls it reports, the job
//! and fleet results, and bad fleet files, as a user meets them. The whole
//! text transcript and JSON report are snapshots in `tests/snapshots.rs`.

mod common;
use common::{text, twinrig, write_file};

use std::process::Output;

use serde_json::Value;

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn tools(report: &Value) -> Vec<String> {
    report["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tool"].as_str().unwrap().to_owned())
        .collect()
}

/// A small fleet (small images keep the debug-build test quick).
const SMALL_FLEET: &str = "seed: 5
fleet:
  firmware:
    - { type: pet_feeder, versions: [1.0.0, 2.0.0], size: 64KiB }
    - { type: smart_plug, versions: [1.0.0], size: 16KiB }
  groups:
    - { type: pet_feeder, count: 12, id: \"feeder-{n:02}\", version: 1.0.0 }
    - { type: smart_plug, count: 2, id: \"plug-{n}\", version: 1.0.0 }
  link: { latency: 20ms }
";

const ISSUE_PROMPT: &str = "update the pet_feeder device group to the latest firmware";

#[test]
fn the_issue_prompt_upgrades_the_default_fleet_and_exits_zero() {
    let o = twinrig(&["ota", ISSUE_PROMPT, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = json(&o);
    assert_eq!(r["outcome"], "succeeded");
    assert_eq!(
        tools(&r),
        [
            "list_device_types",
            "create_ota_job",
            "job_status",
            "fleet_status"
        ]
    );
    let create = &r["tool_calls"][1];
    assert_eq!(create["args"]["target"]["type"], "pet_feeder");
    assert_eq!(create["args"]["version"], "latest");
    assert_eq!(create["result"]["version"], "2.0.0", "latest was resolved");
    let job = &r["job"];
    assert_eq!(job["status"], "COMPLETED");
    assert_eq!(job["counts"]["total"], 20);
    assert_eq!(job["counts"]["succeeded"], 20);
    assert!(job["max_in_progress_seen"].as_u64().unwrap() <= 10);
    assert_eq!(r["status_before"]["pet_feeder"]["1.0.0"], 20);
    assert_eq!(r["status_after"]["pet_feeder"]["2.0.0"], 20);
    assert!(r["status_after"]["pet_feeder"].get("1.0.0").is_none());
    // The other types are untouched.
    assert_eq!(
        r["status_after"]["sphero_rvr"],
        r["status_before"]["sphero_rvr"]
    );
    assert!(r["status_after"].as_object().unwrap().len() >= 5);
}

#[test]
fn an_unclear_prompt_is_answered_does_nothing_and_exits_three() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = write_file(dir.path(), "fleet.yaml", SMALL_FLEET);
    for prompt in [
        "make it better",
        "update to the latest",
        "update the pet_feeder devices",
    ] {
        let o = twinrig(&["ota", prompt, "--fleet", fleet.to_str().unwrap(), "--json"]);
        assert_eq!(o.status.code(), Some(3), "{prompt}: {}", text(&o));
        let r = json(&o);
        assert_eq!(r["outcome"], "unclear", "{prompt}");
        assert!(!r["answer"].as_str().unwrap().is_empty(), "{prompt}");
        assert_eq!(
            tools(&r),
            ["list_device_types"],
            "{prompt}: nothing that acts"
        );
        assert!(r["job"].is_null());
        assert_eq!(r["status_after"], r["status_before"], "{prompt}");
    }
    let o = twinrig(&["ota", "make it better", "--fleet", fleet.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let out = text(&o);
    assert!(
        out.contains("not understood, nothing done: I can update"),
        "{out}"
    );
}

#[test]
fn a_job_that_aborts_exits_one_with_the_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let body = SMALL_FLEET.replace(
        "version: 1.0.0 }\n    - { type: smart_plug",
        "version: 1.0.0, faults: { bad_download: 1.0 } }\n    - { type: smart_plug",
    );
    let fleet = write_file(dir.path(), "fleet.yaml", &body);
    let o = twinrig(&[
        "ota",
        ISSUE_PROMPT,
        "--fleet",
        fleet.to_str().unwrap(),
        "--json",
        "--abort-after-failures",
        "3",
        "--abort-percent",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = json(&o);
    assert_eq!(r["outcome"], "aborted");
    assert_eq!(r["job"]["status"], "CANCELED");
    assert_eq!(r["job"]["aborted"], true);
    let failures = r["job"]["failures"].as_array().unwrap();
    assert!(failures.len() >= 4, "{failures:?}");
    assert!(
        failures[0]["reason"].as_str().unwrap().contains("sha256"),
        "{failures:?}"
    );
    // Nobody runs the new image, and every device still reports a valid one.
    assert_eq!(r["status_after"]["pet_feeder"]["1.0.0"], 12);
}

#[test]
fn a_refused_call_exits_one_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = write_file(dir.path(), "fleet.yaml", SMALL_FLEET);
    let o = twinrig(&[
        "ota",
        "update pet_feeder to 9.9.9",
        "--fleet",
        fleet.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("refused: no firmware pet_feeder 9.9.9 in the registry"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_bad_fleet_file_is_an_error_naming_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    // Line 7, column 34: a count that is not a number.
    let bad_type = write_file(
        dir.path(),
        "bad-type.yaml",
        &SMALL_FLEET.replace("count: 12", "count: lots"),
    );
    // Line 7: a start version that is not published.
    let bad_ref = write_file(
        dir.path(),
        "bad-ref.yaml",
        &SMALL_FLEET.replace(
            "version: 1.0.0 }\n    - { type: smart",
            "version: 4.0.0 }\n    - { type: smart",
        ),
    );
    for (file, at, what) in [
        (&bad_type, ":7:34", "whole number"),
        (&bad_ref, ":7:", "4.0.0"),
    ] {
        let o = twinrig(&["ota", ISSUE_PROMPT, "--fleet", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let out = text(&o);
        let named = format!("{}{at}", file.display());
        assert!(out.contains(&named), "wanted {named} in:\n{out}");
        assert!(out.contains(what), "{out}");
        assert!(!out.contains("panicked"), "{out}");
        assert!(o.stdout.is_empty(), "nothing ran");
    }
    let missing = dir.path().join("missing.yaml");
    let o = twinrig(&["ota", ISSUE_PROMPT, "--fleet", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("missing.yaml"), "{}", text(&o));
}

#[test]
fn the_same_prompt_and_seed_give_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = write_file(dir.path(), "fleet.yaml", SMALL_FLEET);
    let run = || {
        twinrig(&[
            "ota",
            ISSUE_PROMPT,
            "--fleet",
            fleet.to_str().unwrap(),
            "--json",
        ])
    };
    let (a, b) = (run(), run());
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    assert_eq!(a.stdout, b.stdout);
}
