//! `twinrig sweep`, as a user runs it: a scenario whose yaw tolerance some
//! seeds miss (tests/fixtures/sweep/square-tight.yaml). The sweep finds
//! them, `twinrig run --seed S` reproduces each verdict, the failing seeds'
//! traces replay identically, and the results are the same bytes whatever
//! `--jobs` and however the seeds are sharded.

use std::path::Path;
use std::process::{Command, Output};

const SCENARIO: &str = "tests/fixtures/sweep/square-tight.yaml";

fn twinrig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sweep_json(dir: &Path, name: &str, extra: &[&str]) -> (Output, String) {
    sweep_of(SCENARIO, "8", dir, name, extra)
}

/// `twinrig sweep SCENARIO --seeds SEEDS --quiet` with its JSON written to
/// `dir/name` and failures to `dir/failures`: the run and the JSON.
fn sweep_of(
    scenario: &str,
    seeds: &str,
    dir: &Path,
    name: &str,
    extra: &[&str],
) -> (Output, String) {
    let json = dir.join(name);
    let failures = dir.join("failures");
    let mut args = vec![
        "sweep",
        scenario,
        "--seeds",
        seeds,
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--failures",
        failures.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = twinrig(&args);
    let written = std::fs::read_to_string(&json).unwrap_or_default();
    (o, written)
}

#[test]
fn a_sweep_finds_the_failing_seeds_and_its_results_do_not_depend_on_jobs_or_shards() {
    let dir = tempfile::tempdir().unwrap();
    let (one, whole) = sweep_json(dir.path(), "one.json", &["--jobs", "1"]);
    let (two, parallel) = sweep_json(dir.path(), "two.json", &["--jobs", "2"]);
    // Some seeds fail, not all: exit 1, and the same bytes for 1 and 2 jobs.
    assert_eq!(one.status.code(), Some(1), "{}", text(&one));
    assert_eq!(two.status.code(), Some(1), "{}", text(&two));
    assert!(!whole.is_empty(), "{}", text(&one));
    assert_eq!(whole, parallel);
    let result: serde_json::Value = serde_json::from_str(&whole).unwrap();
    let s = &result["scenarios"][0];
    assert_eq!(s["runs"], 8);
    let failing: Vec<u64> = s["failing_seeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(!failing.is_empty() && failing.len() < 8, "{failing:?}");
    assert_eq!(s["passed"], 8 - failing.len());
    let yaw = &s["metrics"]["step 6: body rvr-1 YawDeg"];
    assert_eq!(yaw["n"], 8);
    assert!(
        yaw["min"].as_f64() <= yaw["p50"].as_f64() && yaw["p50"].as_f64() <= yaw["max"].as_f64()
    );
    let t = text(&one);
    assert!(
        t.contains(&format!("{}/8 passed", 8 - failing.len())),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "reproduce: twinrig run {SCENARIO} --seed {}",
            failing[0]
        )),
        "{t}"
    );

    // `twinrig run --seed S` gives each seed's verdict again.
    let passing = (0..8).find(|s| !failing.contains(s)).unwrap();
    for (seed, code) in [(failing[0], 1), (passing, 0)] {
        let o = twinrig(&["run", SCENARIO, "--quiet", "--seed", &seed.to_string()]);
        assert_eq!(o.status.code(), Some(code), "seed {seed}: {}", text(&o));
    }
    // The failing seeds' traces were written, and replay to the same run.
    let trace = dir
        .path()
        .join("failures")
        .join(format!("rvr-square-tight-yaw-seed-{}.mcap", failing[0]));
    assert!(trace.exists(), "{}", text(&one));
    let o = twinrig(&["replay", trace.to_str().unwrap()]);
    assert!(text(&o).contains("identical"), "{}", text(&o));

    // Two shards, merged, are the whole sweep.
    let (_, first) = sweep_json(dir.path(), "s1.json", &["--shard", "1/2"]);
    let (_, second) = sweep_json(dir.path(), "s2.json", &["--shard", "2/2"]);
    assert!(first != whole && second != whole);
    let merged = dir.path().join("merged.json");
    let o = twinrig(&[
        "sweep",
        "merge",
        dir.path().join("s2.json").to_str().unwrap(),
        dir.path().join("s1.json").to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&merged).unwrap(), whole);
}

#[test]
fn bad_sweep_input_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "not json").unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["sweep", SCENARIO, "--seeds", "0"], "holds no seeds"),
        (
            &["sweep", SCENARIO, "--seeds", "ten"],
            "not a seed count or range",
        ),
        (&["sweep", SCENARIO, "--seeds", "9..3"], "holds no seeds"),
        (
            &["sweep", SCENARIO, "--seeds", "2", "--shard", "3/2"],
            "is not a shard",
        ),
        (
            &["sweep", SCENARIO, "--seeds", "2", "--jobs", "0"],
            "--jobs must be at least 1",
        ),
        (&["sweep", "no/such/dir", "--seeds", "2"], "no/such/dir"),
        (
            &["sweep", "merge", garbage.to_str().unwrap()],
            "not a sweep's JSON",
        ),
    ];
    for (args, why) in cases {
        let o = twinrig(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(why), "{args:?}: {}", text(&o));
        assert!(!text(&o).contains("panicked"), "{args:?}: {}", text(&o));
    }
}

#[test]
fn each_seed_draws_its_own_fault_schedule_and_the_run_reports_the_same_one() {
    let dir = tempfile::tempdir().unwrap();
    let (o, written) = sweep_of(
        "tests/fixtures/sweep/forward-chaos.yaml",
        "6",
        dir.path(),
        "chaos.json",
        &[],
    );
    assert!(o.status.code().is_some_and(|c| c < 2), "{}", text(&o));
    let result: serde_json::Value = serde_json::from_str(&written).unwrap();
    let runs = result["scenarios"][0]["results"]
        .as_array()
        .unwrap()
        .clone();
    let schedules: Vec<Vec<serde_json::Value>> = runs
        .iter()
        .map(|r| r["faults"].as_array().cloned().unwrap_or_default())
        .collect();
    // At most 2 disconnects + 1 bit-error burst + 1 outage, within the window.
    for s in &schedules {
        assert!(s.len() <= 4, "{s:?}");
    }
    assert!(schedules.iter().any(|s| !s.is_empty()));
    assert!(schedules.windows(2).any(|w| w[0] != w[1]), "{schedules:?}");
    // The run of one seed reports the schedule the sweep saw for it.
    let (seed, schedule) = runs
        .iter()
        .zip(&schedules)
        .find(|(_, s)| !s.is_empty())
        .map(|(r, s)| (r["seed"].as_u64().unwrap(), s.clone()))
        .unwrap();
    let summary = dir.path().join("run.json");
    let o = twinrig(&[
        "run",
        "tests/fixtures/sweep/forward-chaos.yaml",
        "--quiet",
        "--seed",
        &seed.to_string(),
        "--json",
        summary.to_str().unwrap(),
    ]);
    assert!(o.status.code().is_some_and(|c| c < 2), "{}", text(&o));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(run["scenarios"][0]["faults"].as_array().unwrap(), &schedule);
    assert!(schedule[0]["at"].as_str().unwrap().ends_with('s'));
}

#[test]
fn invariants_are_checked_all_through_the_run_and_the_first_break_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("run.json");
    let o = twinrig(&[
        "run",
        "tests/fixtures/sweep/invariants.yaml",
        "--quiet",
        "--json",
        summary.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let assertions = run["scenarios"][0]["assertions"].as_array().unwrap();
    let find = |prefix: &str| {
        assertions
            .iter()
            .find(|a| a["description"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {assertions:?}"))
    };
    // The speed ceiling breaks while the RVR drives (step 2 is waiting for
    // the maneuver), with the speed that broke it.
    let speed = find("invariant 2: body rvr-1");
    assert_eq!(speed["passed"], false);
    assert_eq!(speed["step"], 2);
    assert!(
        speed["detail"].as_str().unwrap().starts_with("broken at "),
        "{speed}"
    );
    assert!(speed["value"].as_f64().unwrap() > 0.1, "{speed}");
    // One `completed` for the maneuver: the ceiling of 1 held.
    let once = find("invariant 1: message count");
    assert_eq!(once["passed"], true);
    assert_eq!(once["detail"], "held (1 checks)");
}

#[test]
fn a_failing_seed_shrinks_to_a_scenario_that_still_fails_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let failures = dir.path().join("failures");
    let (o, written) = sweep_of(
        "tests/fixtures/sweep/forward-chaos.yaml",
        "6",
        dir.path(),
        "sweep.json",
        &["--shrink"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let result: serde_json::Value = serde_json::from_str(&written).unwrap();
    let s = &result["scenarios"][0];
    let seed = s["failing_seeds"][0].as_u64().unwrap();
    let drawn = s["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["seed"] == seed)
        .unwrap()["faults"]
        .as_array()
        .unwrap()
        .len();
    let shrunk = failures.join(format!("rvr-forward-under-chaos-seed-{seed}-shrunk.yaml"));
    assert!(
        text(&o).contains(&format!("shrunk seed {seed} in ")),
        "{}",
        text(&o)
    );
    // A plain scenario with a fixed schedule: no fewer than one fault, no
    // more than the seed drew, no distributions left, at most the steps
    // it had.
    let yaml = std::fs::read_to_string(&shrunk).unwrap();
    assert!(
        yaml.contains("schedule:") && !yaml.contains("kind: disconnect"),
        "{yaml}"
    );
    let faults = yaml.matches("  - at: ").count();
    assert!(
        faults >= 1 && faults <= drawn,
        "{faults} of {drawn}: {yaml}"
    );
    assert!(yaml.matches("\n- ").count() <= 3, "{yaml}");
    // It fails when run, as the seed did: the maneuver reported failed.
    let o = twinrig(&["run", shrunk.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("got \"failed\""), "{}", text(&o));
}

/// Runs a fixture with `--json` and returns its assertions (the run must
/// fail: each fixture has checks that break).
fn failing_run_assertions(fixture: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("run.json");
    let o = twinrig(&[
        "run",
        fixture,
        "--quiet",
        "--json",
        summary.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    run["scenarios"][0]["assertions"]
        .as_array()
        .unwrap()
        .clone()
}

fn verdict<'a>(assertions: &'a [serde_json::Value], prefix: &str) -> &'a serde_json::Value {
    assertions
        .iter()
        .find(|a| a["description"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}: {assertions:#?}"))
}

#[test]
fn named_rvr_checks_hold_and_break_when_they_should() {
    let a = failing_run_assertions("tests/fixtures/sweep/named-checks.yaml");
    let once = verdict(&a, "invariant 1: every maneuver");
    assert_eq!(once["passed"], true, "{once}");
    let at_rest = verdict(&a, "invariant 2: at rest");
    assert_eq!(at_rest["passed"], true, "{at_rest}");
    assert!(
        at_rest["detail"].as_str().unwrap().starts_with("held ("),
        "{at_rest}"
    );
    // Broken while the timeline waits for f1's `cancelled` (step 5).
    let quick = verdict(&a, "invariant 3: at rest");
    assert_eq!(quick["passed"], false, "{quick}");
    assert_eq!(quick["step"], 5, "{quick}");
    let detail = quick["detail"].as_str().unwrap();
    assert!(
        detail.contains("m/s, 10") && detail.contains("after the cancel at"),
        "{quick}"
    );
    let open = verdict(&a, "invariant 4: every maneuver");
    assert_eq!(open["passed"], false, "{open}");
    let detail = open["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("broken at the end (")
            && detail.contains("never ended: f2 (accepted at "),
        "{open}"
    );
}

#[test]
fn named_fleet_checks_hold_and_break_when_they_should() {
    let a = failing_run_assertions("tests/fixtures/sweep/fleet-checks.yaml");
    let boots = verdict(&a, "invariant 1: every fleet device boots");
    assert_eq!(boots["passed"], true, "{boots}");
    let cap = verdict(&a, "invariant 2: every job");
    assert_eq!(cap["passed"], true, "{cap}");
    let one = verdict(&a, "invariant 3: feeder-2-0-0: at most 1");
    assert_eq!(one["passed"], false, "{one}");
    let detail = one["detail"].as_str().unwrap();
    assert!(detail.contains("executions IN_PROGRESS, cap 1"), "{one}");
    // Everything else held: the power cut rolled back, the rest updated.
    let others: Vec<_> = a.iter().filter(|x| x["passed"] == false).collect();
    assert_eq!(others.len(), 1, "{others:#?}");
}

#[test]
fn named_hand_check_holds_and_breaks_when_it_should() {
    let a = failing_run_assertions("tests/fixtures/sweep/hand-checks.yaml");
    let limits = verdict(&a, "invariant 1: hand-1: every servo goal");
    assert_eq!(limits["passed"], true, "{limits}");
    let narrow = verdict(&a, "invariant 2: hand-1: every servo goal");
    assert_eq!(narrow["passed"], false, "{narrow}");
    assert!(
        narrow["detail"]
            .as_str()
            .unwrap()
            .contains("degrees outside -10..10"),
        "{narrow}"
    );
}
