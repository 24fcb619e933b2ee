//! Hardware in the loop, on loopback: `twinrig serve cloud` (MQTT over
//! mutual TLS, a hand scenario's rules, the records store), `twinrig serve
//! hand --pty` (the 8 SCS0009 servo twins on a pseudo-terminal) and the
//! `hand-agent` process between them, as on the Jetson. A sentence
//! published with `mosquitto_pub` moves the servo twins; the per-letter
//! states arrive at QoS 1 in order; each becomes a record; SIGINT switches
//! the torque off.
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

/// The thing: the scenario's hand, whose topics the rules read.
const THING: &str = "XIAOAmazingHandRight";
const SENTENCE: &str = "HELLO";

#[test]
fn a_sentence_over_mqtt_moves_the_served_hand_and_every_letter_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut checks = Checks::default();
    let (cloud, certs, mqtts, tcp) = serve_cloud_for(dir, THING, "scenarios/hand/hello-world.yaml");
    let (hand, pty) = serve_robot_on_pty("hand");
    let mut agent = Watched::spawn(
        "hand-agent",
        Command::new(device_binary("hand-agent"))
            .args(["--serial", &pty])
            .args(thing_args(&certs, THING, mqtts)),
    );
    let subscribed = agent.wait_for("subscribed to");
    checks.check(
        "the agent connects over mutual TLS as its thing and subscribes to its actions",
        subscribed.ends_with(&format!("the-project/robotic-hand/{THING}/action")),
        &subscribed,
    );

    // A watcher on plain TCP (a local tool; the thing's own client id is the
    // agent's), printing each state's QoS and payload.
    let mut watcher = watch_topic(
        tcp,
        &format!("the-project/robotic-hand/{THING}/state"),
        Some(SENTENCE.len()),
    );
    publish_tcp(
        tcp,
        &format!("the-project/robotic-hand/{THING}/action"),
        &format!(r#"{{"sentence":"{SENTENCE}"}}"#),
    );

    let mut states = Vec::new();
    for _ in SENTENCE.chars() {
        let line = watcher.wait_for("fingerspell");
        let (qos, payload) = line.split_once(' ').unwrap();
        let payload: Value = serde_json::from_str(payload).unwrap();
        states.push((qos.to_owned(), payload));
    }
    let letters: String = states
        .iter()
        .map(|(_, p)| p["letter"].as_str().unwrap_or("?"))
        .collect();
    checks.check(
        "one state per letter, in order",
        letters == SENTENCE,
        format!("letters {letters}"),
    );
    checks.check(
        "every state arrives at QoS 1",
        states.iter().all(|(q, _)| q == "1"),
        format!(
            "{:?}",
            states.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>()
        ),
    );
    let last = &states.last().unwrap().1;

    let (out, err, code) = agent.interrupt();
    checks.check(
        "SIGINT: the agent switches the torque off and exits 0, every state acknowledged",
        code == Some(0)
            && err.contains("torque off")
            && err.contains(&format!(
                "{} states, {} published, 0 lost, all acknowledged",
                SENTENCE.len(),
                SENTENCE.len()
            )),
        format!("exit {code:?}; {}", err.trim().replace('\n', "; ")),
    );
    let _ = out;

    let (summary, _, code) = hand.interrupt();
    let summary = summary.join("\n");
    checks.check(
        "the servo twins took every command, none missed, torque off on all 8",
        code == Some(0) && summary.contains(" 0 missed, 0 bad checksums; torque on 0/8"),
        &summary,
    );
    let angles: Vec<f64> = summary
        .split("angles ")
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|a| a.split_once(':').and_then(|(_, v)| v.parse().ok()))
        .collect();
    // Servo 2k+1 and 2k+2 are finger k's angle_1 and angle_2 (index,
    // middle, ring, thumb), each plus the sheet's MiddlePos offset.
    let expected: Vec<f64> = ["index", "middle", "ring", "thumb"]
        .iter()
        .flat_map(|f| {
            ["angle_1", "angle_2"].map(|a| last["fingers"][f][a].as_f64().unwrap_or(f64::NAN))
        })
        .zip(hand_agent::Calibration::SHEET.middle_pos_deg)
        .map(|(angle, offset)| angle + offset)
        .collect();
    checks.check(
        "the servos hold the last letter's pose (its state's angles plus the calibration), within 0.5 deg",
        angles.len() == 8 && angles.iter().zip(&expected).all(|(a, e)| (a - e).abs() <= 0.5),
        format!("present {angles:?}, expected {expected:?}"),
    );

    let (_, _, code) = cloud.interrupt();
    assert_eq!(code, Some(0));
    let rows = common::records(&dir.join("state"), "HandState", THING);
    let rows = rows.as_deref().unwrap_or_default();
    let recorded: String = rows
        .iter()
        .rev()
        .map(|r| {
            r.pointer("/fields/letter")
                .and_then(Value::as_str)
                .unwrap_or("?")
        })
        .collect();
    checks.check(
        "the scenario's rule made one HandState record per letter",
        recorded == SENTENCE,
        format!(
            "{} records, letters {recorded}: {}",
            rows.len(),
            rows.first().map(Value::to_string).unwrap_or_default()
        ),
    );
    checks.finish();
}
