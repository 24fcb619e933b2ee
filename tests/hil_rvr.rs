//! Hardware in the loop, on loopback: `twinrig serve cloud` (MQTT over
//! mutual TLS, the RVR telemetry rule, the records store), `twinrig serve
//! rvr --pty` (the RVR twin on its UART) and the `rvr-bridge` process (the
//! bridge firmware as a host process) between them. A `forward 0.5 m`
//! action published with `mosquitto_pub` drives the twin 0.5 m; the
//! maneuver's statuses and the telemetry arrive; telemetry becomes records.
//!
//! Live mode runs on the wall clock: every wait is for an event, with
//! limits that only guard against a hang.

mod common;

use std::process::Command;

use common::{
    Checks, Watched, device_binary, publish_tcp, serve_cloud_for, serve_robot_on_pty, thing_args,
    watch_topic,
};
use serde_json::Value;

const THING: &str = "rvr-1";

#[test]
fn a_forward_action_over_mqtt_drives_the_served_rvr_half_a_metre() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut checks = Checks::default();
    let (cloud, certs, mqtts, tcp) =
        serve_cloud_for(dir, THING, "scenarios/rvr/telemetry-records.yaml");
    let (rvr, pty) = serve_robot_on_pty("rvr");
    // The watcher (plain TCP: a local tool) first, so the bridge's
    // announcement is seen.
    let mut watcher = watch_topic(tcp, &format!("the-project/sphero-rvr/{THING}/state"), None);
    let mut bridge = Watched::spawn(
        "rvr-bridge",
        Command::new(device_binary("rvr-bridge"))
            .args(["--serial", &pty])
            .args(thing_args(&certs, THING, mqtts)),
    );
    bridge.wait_for("rvr-bridge");
    let status: Value = json_of(&watcher.wait_for("\"type\":\"status\""));
    checks.check(
        "the bridge boots the RVR, connects over mutual TLS and announces itself",
        status["type"] == "status",
        &status,
    );

    publish_tcp(
        tcp,
        &format!("the-project/sphero-rvr/{THING}/action"),
        r#"{"id":"f1","action":"forward","distance_m":0.5}"#,
    );

    let mut statuses = Vec::new();
    let mut telemetry = Vec::new();
    loop {
        let line = watcher.wait_for("{");
        let (qos, payload) = line.split_once(' ').unwrap();
        let payload = json_of(payload);
        if payload["type"] == "telemetry" {
            telemetry.push(payload);
            continue;
        }
        if payload["id"] == "f1" {
            let done = matches!(
                payload["status"].as_str(),
                Some("completed" | "failed" | "canceled" | "rejected")
            );
            statuses.push((qos.to_owned(), payload));
            if done {
                break;
            }
        }
    }
    let names: Vec<&str> = statuses
        .iter()
        .filter_map(|(_, p)| p["status"].as_str())
        .collect();
    checks.check(
        "the maneuver is accepted and completed, its statuses at QoS 1",
        names.first() == Some(&"accepted")
            && names.last() == Some(&"completed")
            && statuses.iter().all(|(q, _)| q == "1"),
        format!("{names:?}"),
    );
    // Telemetry comes while the RVR moves, and after (idle rate): the first
    // one after the completion says where it stopped.
    let after: Value = json_of(
        watcher
            .wait_for("\"type\":\"telemetry\"")
            .split_once(' ')
            .unwrap()
            .1,
    );
    let stopped_y = after.pointer("/locator/y").and_then(Value::as_f64);
    checks.check(
        "telemetry arrives while moving and after: the locator stops 0.5 m ahead (within 2 cm)",
        !telemetry.is_empty() && stopped_y.is_some_and(|y| (y - 0.5).abs() <= 0.02),
        format!(
            "{} while moving; after: locator {}",
            telemetry.len(),
            after["locator"]
        ),
    );
    let (_, err, code) = bridge.interrupt();
    checks.check(
        "SIGINT: the bridge exits 0",
        code == Some(0),
        format!("exit {code:?} {}", err.trim()),
    );
    let (summary, _, code) = rvr.interrupt();
    let summary = summary.join("\n");
    let moved: Option<f64> = summary
        .split("the RVR moved ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|m| m.parse().ok());
    checks.check(
        "the RVR twin moved 0.5 m (within 2 cm)",
        code == Some(0) && moved.is_some_and(|m| (m - 0.5).abs() <= 0.02),
        &summary,
    );

    let (_, _, code) = cloud.interrupt();
    assert_eq!(code, Some(0));
    let rows = common::records(&dir.join("state"), "RvrTelemetry", THING);
    let rows = rows.as_deref().unwrap_or_default();
    // The locator frame is the one at boot: +y ahead.
    let latest_y = rows
        .first()
        .and_then(|r| r.pointer("/fields/locatorY"))
        .and_then(Value::as_f64);
    checks.check(
        "the scenario's rule records the telemetry; the latest is 0.5 m ahead (within 5 cm)",
        latest_y.is_some_and(|y| (y - 0.5).abs() <= 0.05),
        format!("{} records, latest locatorY {latest_y:?}", rows.len()),
    );
    checks.finish();
}

fn json_of(text: &str) -> Value {
    let start = text.find('{').unwrap_or(0);
    serde_json::from_str(&text[start..]).unwrap_or_else(|e| panic!("{e}: {text}"))
}
