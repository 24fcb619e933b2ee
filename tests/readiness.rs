//! Readiness: the timeline starts once devices are ready; `start:
//! immediately` shows the boot race and the report explains the lost
//! message; a device that never becomes ready is named.

use std::path::Path;

use twinrig::suite;

fn run(yaml: &str) -> twinrig::runner::Outcome {
    let loaded = suite::parse(yaml.to_owned(), Path::new("test.yaml"))
        .unwrap_or_else(|e| panic!("{}", e.render_plain()));
    suite::run(&loaded, |_| {})
}

/// The detail of the first assertion that failed.
fn first_failure(outcome: &twinrig::runner::Outcome) -> &str {
    &outcome
        .assertions
        .iter()
        .find(|a| !a.passed)
        .expect("an assertion failed")
        .detail
}

const ECHO: &str = r#"
name: echo at once
seed: 42
duration_limit: 10s
link:
  latency: { normal: { mean: 20ms, std_dev: 5ms } }
devices:
  - { kind: echo, id: echo-1 }
steps:
  - publish: { topic: twinrig/echo/echo-1/tx, payload: "hello rig", qos: 1 }
  - wait_for: { topic: twinrig/echo/echo-1/rx, text: "hello rig", timeout: 1s }
"#;

#[test]
fn a_publish_in_the_first_step_reaches_a_ready_device() {
    let outcome = run(ECHO);
    assert!(
        outcome.passed(),
        "{:?} {:?}",
        outcome.failure,
        outcome.assertions
    );
    // The timeline started once echo-1 had subscribed and announced itself.
    let ready = outcome
        .trace
        .records
        .iter()
        .find(|r| r.channel == "/steps" && r.data.contains("\"ready\""))
        .expect("the start is traced");
    assert!(ready.time > 0, "{ready:?}");
}

#[test]
fn a_publish_before_the_device_subscribed_is_explained() {
    let yaml = ECHO.replace("steps:\n", "start: immediately\nsteps:\n");
    let outcome = run(&yaml);
    assert!(!outcome.passed());
    let d = first_failure(&outcome);
    assert!(
        d.starts_with("no matching message on twinrig/echo/echo-1/rx within 1s: ")
            && d.contains("the publish on twinrig/echo/echo-1/tx at 0.000000000s reached no subscriber (echo-1 subscribed to twinrig/echo/echo-1/tx only at 0.0"),
        "{d}"
    );
}

#[test]
fn a_device_that_never_becomes_ready_is_named_with_what_it_has_not_done() {
    // Nearly every message is lost: the subscription takes many retries.
    let yaml = ECHO.replace(
        "link:\n  latency: { normal: { mean: 20ms, std_dev: 5ms } }\n",
        "link: { latency: 20ms, loss: 0.999, qos1_retry: 1s }\nready_timeout: 2s\n",
    );
    let outcome = run(&yaml);
    assert!(
        outcome.assertions.is_empty(),
        "no step ran: {:?}",
        outcome.assertions
    );
    let failure = outcome.failure.expect("the run failed");
    assert!(
        failure.starts_with("before step 1: 1 device not ready within 2s (echo-1: client echo-1 has not subscribed to twinrig/echo/echo-1/tx; client echo-1 has not published on twinrig/echo/echo-1/status (its first status))"),
        "{failure}"
    );
}

#[test]
fn wait_for_ready_waits_for_a_fleet_device_after_its_ota_reboot() {
    let yaml = r#"
name: ready after reboot
seed: 3
duration_limit: 10min
fleet:
  firmware:
    - { type: pet_feeder, versions: [1.0.0, 2.0.0], size: 64KiB }
  groups:
    - { type: pet_feeder, count: 2, id: "feeder-{n}", version: 1.0.0 }
steps:
  - create_job: { id: up, target: { type: pet_feeder }, version: 2.0.0 }
  - wait_for_job: { job: up, timeout: 5min }
  - wait_for: { ready: feeder-1, timeout: 30s }
  - expect: { fleet: { type: pet_feeder, version: 2.0.0, count: { equals: 2 } } }
"#;
    let outcome = run(yaml);
    assert!(
        outcome.passed(),
        "{:?} {:?}",
        outcome.failure,
        outcome.assertions
    );
    let ready = outcome
        .assertions
        .iter()
        .find(|a| a.description == "wait_for ready feeder-1 within 30s")
        .expect("the ready step is reported");
    assert!(ready.detail.starts_with("ready at "), "{ready:?}");
    // It rebooted into 2.0.0, so it was ready again only after that boot.
    let reboot = outcome
        .trace
        .records
        .iter()
        .rev()
        .find(|r| r.data.contains("\"fleet\":\"feeder-1\"") && r.data.contains("reboot"))
        .map(|r| r.time)
        .expect("feeder-1 rebooted");
    assert!(
        ready.at_ns > reboot,
        "ready at {} after the reboot at {reboot}",
        ready.at_ns
    );
}

#[test]
fn a_wait_for_names_the_closest_message_that_did_not_match_and_a_link_that_was_down() {
    let yaml = r#"
name: near miss
seed: 42
duration_limit: 10s
devices:
  - { kind: echo, id: echo-1 }
steps:
  - publish: { topic: twinrig/echo/echo-1/tx, payload: "hello rig", qos: 1 }
  - fault: { link: { device: echo-1, outage: 500ms } }
  - wait_for: { topic: twinrig/echo/echo-1/rx, text: "hello rug", timeout: 1s }
"#;
    let outcome = run(yaml);
    let d = first_failure(&outcome);
    assert!(
        d.contains(
            "1 message on twinrig/echo/echo-1/rx did not match; the closest, from echo-1 at "
        ) && d.contains(": expected text \"hello rug\", got \"hello rig\""),
        "{d}"
    );
    assert!(
        d.contains("the link of echo-1 was down (outage) from "),
        "{d}"
    );
    assert!(!d.contains("reached no subscriber"), "{d}");
}

#[test]
fn an_expect_that_counted_no_message_explains_itself_too() {
    let yaml = ECHO.replace(
        "  - wait_for: { topic: twinrig/echo/echo-1/rx, text: \"hello rig\", timeout: 1s }\n",
        "  - publish: { topic: twinrig/echo/echo-9/tx, payload: \"anyone?\" }\n  - delay: 1s\n  - expect: { message: { topic: twinrig/echo/echo-9/rx } }\n",
    );
    let outcome = run(&yaml);
    let d = first_failure(&outcome);
    assert!(
        d.contains("the publish on twinrig/echo/echo-9/tx at ")
            && d.contains("reached no subscriber (nobody subscribed to it)"),
        "{d}"
    );
}
