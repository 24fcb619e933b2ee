//! The `twinrig` binary: exit codes, outputs and bad input, as a user meets them.

mod common;
use common::{no_panic, text, twinrig, write_file};

use std::path::Path;

use twinrig_sim::Trace;

#[test]
fn run_writes_json_junit_and_traces_and_exits_zero_when_all_pass() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("summary.json");
    let junit = dir.path().join("junit.xml");
    let traces = dir.path().join("traces");
    let o = twinrig(&[
        "run",
        "scenarios/",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--trace",
        traces.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("real-time x"), "{out}");
    assert!(out.contains("0 failed"), "{out}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(summary["failed"], 0);
    assert!(
        summary["scenarios"][0]["real_time_factor"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testcase name=\"echo round trip\""), "{xml}");
    let trace_file = traces.join("echo-round-trip.mcap");
    let trace = Trace::from_mcap(&std::fs::read(&trace_file).unwrap()).unwrap();
    assert!(trace.on_channel("/mqtt").count() > 0);

    // The trace replays identically.
    let o = twinrig(&["replay", trace_file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("identical"));
}

#[test]
fn replay_reports_the_first_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("t");
    let o = twinrig(&[
        "run",
        "scenarios/core/echo-round-trip.yaml",
        "--quiet",
        "--trace",
        traces.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let file = traces.join("echo-round-trip.mcap");
    let mut trace = Trace::from_mcap(&std::fs::read(&file).unwrap()).unwrap();
    let i = trace
        .records
        .iter()
        .position(|r| r.channel == "/uart")
        .unwrap();
    let time = trace.records[i].time;
    trace.records[i].data = r#"{"tampered":true}"#.into();
    std::fs::write(&file, trace.to_mcap().unwrap()).unwrap();
    let o = twinrig(&["replay", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("first divergence"), "{out}");
    assert!(out.contains("/uart"), "{out}");
    assert!(out.contains(&twinrig_sim::format_nanos(time)), "{out}");
}

#[test]
fn a_failed_assertion_exits_one_and_names_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(
        dir.path(),
        "fails.yaml",
        "name: fails\nseed: 1\nduration_limit: 5s\nsteps:\n  - delay: 1s\n  - expect: { message: { topic: nothing/here } }\n",
    );
    let junit = dir.path().join("j.xml");
    let o = twinrig(&[
        "run",
        p.to_str().unwrap(),
        "--quiet",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("step 2"), "{}", text(&o));
    assert!(std::fs::read_to_string(junit).unwrap().contains("<failure"));
}

#[test]
fn a_wait_that_times_out_fails_with_the_virtual_time() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(
        dir.path(),
        "wait.yaml",
        "name: waits\nseed: 1\nduration_limit: 5s\nsteps:\n  - wait_for: { topic: never/+, timeout: 1500ms }\n",
    );
    let o = twinrig(&["run", p.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(
        out.contains("no matching message on never/+ within 1.5s"),
        "{out}"
    );
}

#[test]
fn the_duration_limit_ends_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(
        dir.path(),
        "limit.yaml",
        "name: too long\nseed: 1\nduration_limit: 2s\nsteps:\n  - delay: 10s\n",
    );
    let o = twinrig(&["run", p.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("duration limit 2s reached during step 1"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_a_nonzero_exit_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "unknown-kind.yaml",
            "name: x\nseed: 1\nduration_limit: 1s\ndevices:\n  - { kind: toaster, id: t1 }\nsteps:\n  - delay: 1s\n",
            "toaster",
        ),
        (
            "unitless.yaml",
            "name: x\nseed: 1\nduration_limit: 10\nsteps:\n  - delay: 1s\n",
            "unit",
        ),
        (
            "wildcard.yaml",
            "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - publish: { topic: a/+/b, payload: x }\n",
            "wildcard",
        ),
        (
            "no-timeout.yaml",
            "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - wait_for: { topic: a/b }\n",
            "timeout",
        ),
        (
            "unknown-field.yaml",
            "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - delay: 1s\nbogus: 3\n",
            "bogus",
        ),
        (
            "bad-params.yaml",
            "name: x\nseed: 1\nduration_limit: 1s\ndevices:\n  - { kind: echo, id: e1, params: { baudrate: 9600 } }\nsteps:\n  - delay: 1s\n",
            "baudrate",
        ),
        (
            "negative.yaml",
            "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - delay: -5ms\n",
            "negative",
        ),
        ("not-yaml.yaml", "name: [unclosed\n", "not-yaml.yaml"),
    ];
    for (file, body, needle) in cases {
        let p = write_file(dir.path(), file, body);
        for cmd in ["validate", "run"] {
            let o =
                twinrig(&[cmd, p.to_str().unwrap(), "--quiet"][..if cmd == "run" { 3 } else { 2 }]);
            no_panic(&o);
            assert!(!o.status.success(), "{cmd} {file} succeeded:\n{}", text(&o));
            let out = text(&o).to_lowercase();
            assert!(
                out.contains(&needle.to_lowercase()),
                "{cmd} {file}: expected {needle:?} in\n{out}"
            );
            assert!(
                out.contains(file),
                "{cmd} {file}: the file is not named in\n{out}"
            );
        }
    }
    let o = twinrig(&["run", "no/such/file.yaml"]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no/such/file.yaml"));
    let o = twinrig(&["replay", "Cargo.toml"]);
    no_panic(&o);
    assert!(!o.status.success());
}

#[test]
fn validate_list_and_schema_work() {
    let o = twinrig(&["validate", "scenarios/"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = twinrig(&["list"]);
    assert!(text(&o).contains("echo"));
    let o = twinrig(&["schema"]);
    assert!(o.status.success());
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/scenario.schema.json"),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        committed,
        "run `cargo run -- schema > schema/scenario.schema.json`"
    );
}

#[test]
fn records_are_written_and_listed_and_the_summary_has_the_motion_latency() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records");
    let json = dir.path().join("summary.json");
    let o = twinrig(&[
        "run",
        "scenarios/rvr/telemetry-records.yaml",
        "--quiet",
        "--records",
        records.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("rvr-1.command_to_first_motion_ms"),
        "{}",
        text(&o)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let latency = summary["scenarios"][0]["metrics"]["rvr-1.command_to_first_motion_ms"]
        .as_f64()
        .unwrap();
    assert!(latency > 0.0 && latency < 500.0, "latency {latency}");
    let store = records.join("rvr-telemetry-lands-in-the-records-store.sqlite");
    let o = twinrig(&[
        "records",
        store.to_str().unwrap(),
        "--device",
        "rvr-1",
        "--kind",
        "RvrTelemetry",
        "--last",
        "3",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["fields"]["deviceName"], "rvr-1");
    assert!(
        lines[0]["ts"].as_i64() >= lines[2]["ts"].as_i64(),
        "newest first"
    );
    let o = twinrig(&["records", "no/such.sqlite"]);
    no_panic(&o);
    assert_eq!(o.status.code(), Some(2));
    let o = twinrig(&["records", "Cargo.toml"]);
    no_panic(&o);
    assert!(!o.status.success());
}

#[test]
fn init_writes_a_folder_that_runs_green_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("mine");
    let o = twinrig(&["init", target.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for f in [
        "README.md",
        "echo.yaml",
        "rvr.yaml",
        "hand.yaml",
        "cat_feeder.yaml",
        "scenario.schema.json",
    ] {
        assert!(target.join(f).is_file(), "{f}: {}", text(&o));
    }
    let o = twinrig(&["run", target.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("4 passed, 0 failed"), "{}", text(&o));

    let o = twinrig(&["init", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    no_panic(&o);
}

#[test]
fn version_lists_the_device_crates_and_completions_cover_the_commands() {
    let o = twinrig(&["--version"]);
    assert!(o.status.success());
    let v = text(&o);
    for name in [
        "twinrig ",
        "echo-firmware ",
        "rvr-bridge ",
        "hand-agent ",
        "ota-client ",
    ] {
        assert!(v.contains(name), "{name}: {v}");
    }
    let o = twinrig(&["completions", "bash"]);
    assert!(o.status.success(), "{}", text(&o));
    let script = String::from_utf8_lossy(&o.stdout);
    for sub in ["run", "validate", "serve", "init", "completions"] {
        assert!(script.contains(sub), "{sub} in the bash completions");
    }
    let o = twinrig(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    no_panic(&o);
}

// ---- hardening: bad input is refused up front, precisely, never a crash ----

/// Runs `twinrig run FILE --quiet` and `twinrig validate FILE`; both must end
/// without a panic, with exit 2 (bad input), and print every `needle`.
fn refused(file: &Path, needles: &[&str]) {
    let path = file.to_str().unwrap();
    for args in [&["run", path, "--quiet"][..], &["validate", path][..]] {
        let o = twinrig(args);
        no_panic(&o);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}:\n{out}");
        // miette wraps long messages, continuing them on `  │ ` lines.
        let joined = out.replace("\n  │ ", " ");
        for needle in needles {
            assert!(joined.contains(needle), "{args:?}: no {needle:?} in\n{out}");
        }
    }
}

#[test]
fn error_with_a_column_past_65535_renders() {
    // miette's renderer used to panic ("Formatting argument out of range",
    // exit 101) on an error past column 65,535 of a long flow sequence.
    let dir = tempfile::tempdir().unwrap();
    let steps = vec!["{ delay: 1ms }"; 7_000].join(", ");
    let body =
        format!("name: x\nseed: 1\nduration_limit: 1s\nsteps: [ {steps}, {{ dlay: 1ms }} ]\n");
    let column = body.lines().nth(3).unwrap().find("dlay").unwrap() + 1;
    assert!(column > 65_535);
    let p = write_file(dir.path(), "long-line.yaml", &body);
    refused(&p, &["long-line.yaml:4:", "unknown variant `dlay`"]);
    let o = twinrig(&["validate", p.to_str().unwrap()]);
    assert!(text(&o).len() < 2_000, "{}", text(&o));
}

#[test]
fn validate_dev_zero_is_refused_without_reading_it() {
    let o = twinrig(&["validate", "/dev/zero"]);
    no_panic(&o);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("/dev/zero: not a regular file (a character device)"),
        "{}",
        text(&o)
    );
    let o = twinrig(&["run", "/dev/zero", "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn a_cloud_rule_with_200000_or_terms_is_refused_not_a_stack_overflow() {
    // Used to abort with a stack overflow (SIGABRT, no message) in
    // `validate`; 50,000 terms passed it and overflowed when the rule ran.
    let dir = tempfile::tempdir().unwrap();
    for n in [50_000, 200_000] {
        let terms: Vec<String> = (0..n).map(|i| format!("x = {i}")).collect();
        let body = format!(
            "name: x\nseed: 1\nduration_limit: 1s\ncloud:\n  rules:\n    - name: wide\n      action: rvr-telemetry\n      sql: \"SELECT a FROM 'a' WHERE {}\"\nsteps:\n  - delay: 1ms\n",
            terms.join(" OR ")
        );
        let p = write_file(dir.path(), "wide-rule.yaml", &body);
        refused(
            &p,
            &[
                "wide-rule.yaml:8:12: cloud rule 1 (`wide`)",
                "more than 1000 terms",
            ],
        );
    }
}

#[test]
fn a_fleet_that_would_need_terabytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(
        dir.path(),
        "huge-fleet.yaml",
        "name: x\nseed: 1\nduration_limit: 1s\nfleet:\n  firmware: [ { type: big, versions: [1.0.0], size: 16MiB } ]\n  groups:\n    - { type: big, count: 10000, id: \"a-{n}\", version: 1.0.0 }\nsteps:\n  - delay: 1ms\n",
    );
    refused(
        &p,
        &[
            "huge-fleet.yaml:7:5: the run would need about",
            "more than the budget of 4 GiB",
        ],
    );
}

#[test]
fn params_say_and_physics_errors_have_their_positions() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(
        dir.path(),
        "positions.yaml",
        "name: x\nseed: 1\nduration_limit: 1s\nworld: { gravity: 1e39 }\ndevices:\n  - { kind: echo, id: e1, params: { max_line: 0 } }\nsteps:\n  - say: { device: e1, text: hello }\n  - expect: { device: { device: e1, field: uart.dropped, approx: 0, tolerance: .inf } }\n  - wait_for: { topic: a, timeout: 18446744073709551615ns }\n",
    );
    refused(
        &p,
        &["positions.yaml:10:36: `18446744073709551615ns` is too long"],
    );
    let p = write_file(
        dir.path(),
        "positions.yaml",
        "name: x\nseed: 1\nduration_limit: 1s\nworld: { gravity: 1e39 }\ndevices:\n  - { kind: echo, id: e1, params: { max_line: 0 } }\nsteps:\n  - say: { device: e1, text: hello }\n  - expect: { device: { device: e1, field: uart.dropped, approx: 0, tolerance: .inf } }\n",
    );
    refused(
        &p,
        &[
            "positions.yaml:4:19: `world.gravity` must be from -100 to 100",
            "positions.yaml:6:47: device 1 (`e1`): `params` of kind `echo`: max_line must be at least 1",
            "positions.yaml:8:20: step 1 (say): device `e1` (kind `echo`) takes no spoken commands",
            "positions.yaml:9:80: step 2 (expect): `tolerance` must be a finite number, got inf",
        ],
    );
}

#[cfg(unix)]
#[test]
fn directory_scans_report_broken_and_looping_links() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("scenarios");
    std::fs::create_dir(&root).unwrap();
    write_file(
        &root,
        "ok.yaml",
        "name: ok\nseed: 1\nduration_limit: 1s\nsteps:\n  - delay: 1ms\n",
    );
    std::os::unix::fs::symlink("missing.yaml", root.join("broken.yaml")).unwrap();
    for cmd in ["run", "validate"] {
        let o = twinrig(&[cmd, root.to_str().unwrap()]);
        no_panic(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
        assert!(
            text(&o)
                .contains("broken.yaml: a symbolic link to `missing.yaml` that cannot be followed"),
            "{cmd}: {}",
            text(&o)
        );
    }
    std::fs::remove_file(root.join("broken.yaml")).unwrap();
    std::os::unix::fs::symlink(".", root.join("again")).unwrap();
    let o = twinrig(&["validate", root.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("a symbolic link loop"), "{}", text(&o));
}

#[test]
fn validate_exits_two_for_a_bad_file_as_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_file(dir.path(), "bad.yaml", "name: bad\nseed: 1\n");
    let path = bad.to_str().unwrap();
    for args in [vec!["validate", path], vec!["run", path, "--quiet"]] {
        let o = twinrig(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("bad.yaml"), "{args:?}: {}", text(&o));
        no_panic(&o);
    }
}

#[test]
fn records_refuses_an_empty_file_or_a_foreign_database_and_never_writes_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_file(dir.path(), "empty.sqlite", "");
    let o = twinrig(&["records", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("not a twinrig records store"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "left empty");
    let text_file = write_file(dir.path(), "notes.sqlite", "hello, not a database at all\n");
    let o = twinrig(&["records", text_file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&text_file).unwrap(),
        "hello, not a database at all\n"
    );
    no_panic(&o);
}

#[test]
fn replay_and_trace_refuse_a_file_that_is_not_a_trace() {
    let dir = tempfile::tempdir().unwrap();
    let junk = write_file(dir.path(), "junk.mcap", "not an mcap file");
    for cmd in ["replay", "trace"] {
        let o = twinrig(&[cmd, junk.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
        assert!(text(&o).contains("junk.mcap"), "{cmd}: {}", text(&o));
        no_panic(&o);
    }
}

#[test]
fn two_scenarios_with_one_name_get_distinct_output_files() {
    let dir = tempfile::tempdir().unwrap();
    let body = "name: twin\nseed: 1\nduration_limit: 1s\nsteps:\n  - delay: 10ms\n";
    let a = write_file(dir.path(), "a.yaml", body);
    let b = write_file(dir.path(), "b.yaml", &body.replace("seed: 1", "seed: 2"));
    let traces = dir.path().join("traces");
    let records = dir.path().join("records");
    let o = twinrig(&[
        "run",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--quiet",
        "--trace",
        traces.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("another scenario is also named \"twin\""),
        "{}",
        text(&o)
    );
    for (dir, ext) in [(&traces, "mcap"), (&records, "sqlite")] {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [format!("twin-2.{ext}"), format!("twin.{ext}")],
            "no temporary files left"
        );
    }
    let first = Trace::from_mcap(&std::fs::read(traces.join("twin.mcap")).unwrap()).unwrap();
    let second = Trace::from_mcap(&std::fs::read(traces.join("twin-2.mcap")).unwrap()).unwrap();
    assert_eq!(first.metadata["scenario"]["seed"], "1");
    assert_eq!(second.metadata["scenario"]["seed"], "2");
}

/// `twinrig firmware`: the fleet's images as files, the bytes `serve cloud`
/// publishes (their SHA-256 is the one printed, and the header names type
/// and version); an existing file is refused by name, a bad fleet file too.
#[test]
fn firmware_writes_the_fleets_images_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = write_file(
        dir.path(),
        "fleet.yaml",
        "fleet:\n  firmware:\n    - { type: pet_feeder, versions: [1.0.0, 2.0.0], size: 4KiB }\n  \
         groups:\n    - { type: pet_feeder, count: 1, id: \"feeder-{n:03}\", version: 1.0.0 }\n",
    );
    let out = dir.path().join("fw");
    let args = [
        "firmware",
        "--fleet",
        fleet.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = twinrig(&args);
    assert!(o.status.success(), "{}", text(&o));
    let printed = String::from_utf8_lossy(&o.stdout).into_owned();
    for version in ["1.0.0", "2.0.0"] {
        let path = out.join(format!("pet_feeder-{version}.bin"));
        let image = std::fs::read(&path).unwrap();
        assert_eq!(image.len(), 4096 + ota_client::image::HEADER_LEN);
        let sha = ota_client::image::to_hex(&ota_client::image::sha256(&image));
        assert!(
            printed.contains(&format!("{} (4160 bytes, sha256 {sha})", path.display())),
            "{printed}"
        );
        let head: [u8; ota_client::image::HEADER_LEN] =
            image[..ota_client::image::HEADER_LEN].try_into().unwrap();
        let header = ota_client::ImageHeader::decode(&head).unwrap();
        assert_eq!(
            (header.device_type.as_str(), header.version.to_string()),
            ("pet_feeder", version.to_owned())
        );
    }
    let again = twinrig(&args);
    no_panic(&again);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("pet_feeder-1.0.0.bin: File exists"),
        "{}",
        text(&again)
    );
    let missing = twinrig(&[
        "firmware",
        "--fleet",
        "no-such-fleet.yaml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("no-such-fleet.yaml"),
        "{}",
        text(&missing)
    );
}
