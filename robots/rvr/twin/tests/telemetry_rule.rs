//! The RVR's telemetry rule and transform (contributed by its kind) on
//! payloads shaped like the bridge's, through the cloud twin's rules engine.

use rvr_twin::rules::{self as presets, RVR_TELEMETRY_SQL};
use serde_json::{Value, json};
use twinrig_cloud::records::RecordStore;
use twinrig_cloud::rules::pipeline::Pipeline;
use twinrig_cloud::rules::{RuleSet, Transform, parse};
use twinrig_kind::DeviceKind;

const HAND_TOPIC: &str = "the-project/robotic-hand/XIAOAmazingHandRight/state";
const RVR_TOPIC: &str = "the-project/sphero-rvr/XIAOSpheroRVR/state";
/// 2026-02-08T11:40:50.123Z, the given clock in every test.
const NOW_MS: u64 = 1_770_550_850_123;

fn rvr_telemetry() -> Value {
    json!({
        "type": "telemetry",
        "ts": 1_770_550_849,
        "imu": {"pitch": 0.5, "roll": -1.25, "yaw": 90.0},
        "accelerometer": {"x": 0.01, "y": -0.02, "z": 1.0},
        "gyroscope": {"x": 0.0, "y": 0.0, "z": 12.5},
        "locator": {"x": 0.0, "y": 1.0},
        "color": {"r": 255, "g": 0, "b": 0, "confidence": 0.92},
        "compass_heading": 270.0,
        "ambient_light": 181.2,
        "motor_thermal": {"left":  {"temperature": 31.5, "status": "ok"},
                          "right": {"temperature": 32.0, "status": "warn"}},
        "battery_percentage": 87
    })
}

fn eval(sql: &str, topic: &str, payload: &Value) -> Option<Value> {
    parse(sql)
        .unwrap()
        .evaluate(topic, payload.to_string().as_bytes(), NOW_MS, None)
}

#[test]
fn rvr_rule_selects_the_telemetry_and_the_device_name() {
    let out = eval(RVR_TELEMETRY_SQL, RVR_TOPIC, &rvr_telemetry()).unwrap();
    let mut expected = rvr_telemetry();
    expected
        .as_object_mut()
        .unwrap()
        .remove("battery_percentage"); // not selected
    expected.as_object_mut().unwrap().remove("type"); // only filtered on
    expected["device_name"] = json!("XIAOSpheroRVR");
    assert_eq!(out, expected);
    assert_eq!(eval(RVR_TELEMETRY_SQL, HAND_TOPIC, &rvr_telemetry()), None);
    // Maneuver events and errors share the topic; the rule skips them.
    let event = json!({"type": "maneuver", "id": "m1", "status": "completed"});
    assert_eq!(eval(RVR_TELEMETRY_SQL, RVR_TOPIC, &event), None);
}

#[test]
fn rvr_transform_flattens_telemetry_with_defaults() {
    let t = presets::rvr_telemetry_transform().unwrap();
    let output = eval(RVR_TELEMETRY_SQL, RVR_TOPIC, &rvr_telemetry()).unwrap();
    let r = t.apply(&output, NOW_MS).unwrap();
    assert_eq!(
        (r.kind.as_str(), r.key.as_str(), r.ts),
        ("RvrTelemetry", "XIAOSpheroRVR", 1_770_550_849)
    );
    assert_eq!(
        Value::Object(r.fields),
        json!({
            "deviceName": "XIAOSpheroRVR",
            "imuPitch": 0.5, "imuRoll": -1.25, "imuYaw": 90.0,
            "accelerometerX": 0.01, "accelerometerY": -0.02, "accelerometerZ": 1.0,
            "gyroscopeX": 0.0, "gyroscopeY": 0.0, "gyroscopeZ": 12.5,
            "locatorX": 0.0, "locatorY": 1.0,
            "colorR": 255, "colorG": 0, "colorB": 0, "colorConfidence": 0.92,
            "compassHeading": 270.0, "ambientLight": 181.2,
            "leftMotorTemperature": 31.5, "leftMotorThermalStatus": "ok",
            "rightMotorTemperature": 32.0, "rightMotorThermalStatus": "warn",
            "timestamp": 1_770_550_849
        })
    );
    // A sparse message: numbers 0, statuses null, time from the clock.
    let sparse = eval(
        RVR_TELEMETRY_SQL,
        RVR_TOPIC,
        &json!({"type": "telemetry", "imu": {"yaw": -30}}),
    )
    .unwrap();
    let r = t.apply(&sparse, NOW_MS).unwrap();
    assert_eq!(r.fields["imuYaw"], json!(-30));
    assert_eq!(r.fields["imuPitch"], json!(0));
    assert_eq!(r.fields["locatorX"], json!(0));
    assert_eq!(r.fields["leftMotorThermalStatus"], Value::Null);
    assert_eq!(r.ts, 1_770_550_850);
}

#[test]
fn the_kind_contributes_the_rule_and_its_transform_file() {
    let presets = rvr_twin::KIND.rule_presets();
    assert_eq!(presets.len(), 1);
    let p = &presets[0];
    assert_eq!(p.rule.name, presets::RVR_TELEMETRY_RULE);
    let t = Transform::from_json(p.transform_json).unwrap();
    assert_eq!(t.name(), p.rule.action);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    assert_eq!(
        Transform::from_path(dir.join("rvr-telemetry.json")).unwrap(),
        t
    );
    // End to end: telemetry is stored, a maneuver event is not.
    let rules = RuleSet::from_configs([p.rule.clone()]).unwrap();
    let pipeline = Pipeline::new(rules, vec![t]).unwrap();
    let mut store = RecordStore::open_in_memory().unwrap();
    pipeline.process(
        None,
        RVR_TOPIC,
        rvr_telemetry().to_string().as_bytes(),
        NOW_MS,
        &mut store,
    );
    let event = json!({"type": "maneuver", "id": "m1"});
    pipeline.process(
        None,
        RVR_TOPIC,
        event.to_string().as_bytes(),
        NOW_MS,
        &mut store,
    );
    assert_eq!(store.count("RvrTelemetry").unwrap(), 1);
}
