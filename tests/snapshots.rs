//! The CLI's outputs as a user reads them, whole, as insta snapshots
//! (`tests/snapshots/`): a change to any line shows up in review as a diff.
//! Review changes with `cargo insta review`, or delete the `.snap` file,
//! re-run the test (it writes `.snap.new`), read it, and rename it.
//!
//! Only outputs that are the same on every machine are snapshotted: runs in
//! a temporary folder (relative paths), no wall-clock figures. The run
//! table and summary, which carry wall-clock figures, are snapshotted with a
//! fixed wall time in `src/report.rs`.

mod common;
use common::write_file;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `twinrig` in `dir`, so the paths it prints are relative.
fn twinrig_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("twinrig runs")
}

/// The exit code, stdout and stderr, with wall-clock figures (`0.34 s
/// wall`) replaced by `[wall]`.
fn transcript(o: &Output) -> String {
    let text = raw_transcript(o);
    text.lines()
        .map(|line| match line.strip_suffix(" s wall") {
            Some(head) => {
                let number_at = head.rfind(' ').map_or(0, |i| i + 1);
                format!("{}[wall] s wall", &head[..number_at])
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn raw_transcript(o: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        o.status.code().map_or("signal".into(), |c| c.to_string()),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn list_names_every_kind_and_those_that_can_be_served() {
    let o = twinrig_in(Path::new(env!("CARGO_MANIFEST_DIR")), &["list"]);
    insta::assert_snapshot!(transcript(&o));
}

#[test]
fn validation_errors_point_into_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "broken.yaml",
        "name: broken\nseed: 1\nduration_limit: 1s\nworld: { gravity: 1e39 }\ndevices:\n  - { kind: echo, id: e1, params: { max_line: 0 } }\n  - { kind: rvr, id: r1, params: { stream_period_ms: 10, colour: red } }\n  - { kind: cat_feeder, id: f1, params: { jammed: [left, middle] } }\nsteps:\n  - say: { device: e1, text: hello }\n  - expect: { device: { device: e1, field: uart.dropped, approx: 0, tolerance: .inf } }\n",
    );
    let o = twinrig_in(dir.path(), &["validate", "broken.yaml"]);
    insta::assert_snapshot!(transcript(&o));
}

#[test]
fn a_file_that_is_not_yaml_is_shown_where_it_breaks() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "not-yaml.yaml", "name: [unclosed\nseed: 1\n");
    let o = twinrig_in(dir.path(), &["run", "not-yaml.yaml", "--quiet"]);
    insta::assert_snapshot!(transcript(&o));
}

#[test]
fn serve_refuses_a_kind_it_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let o = twinrig_in(dir.path(), &["serve", "cat_feeder", "--pty"]);
    insta::assert_snapshot!(transcript(&o));
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

#[test]
fn the_ota_transcript_shows_tool_calls_job_and_fleet() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "fleet.yaml", SMALL_FLEET);
    let o = twinrig_in(
        dir.path(),
        &[
            "ota",
            "upgrade all pet_feeder devices to 2.0.0",
            "--fleet",
            "fleet.yaml",
            "--max-in-progress",
            "4",
        ],
    );
    insta::assert_snapshot!(transcript(&o));
}

#[test]
fn the_ota_json_report_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "fleet.yaml", SMALL_FLEET);
    let o = twinrig_in(
        dir.path(),
        &[
            "ota",
            "update the pet_feeder device group to the latest firmware",
            "--fleet",
            "fleet.yaml",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", transcript(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    insta::assert_json_snapshot!(report);
}
