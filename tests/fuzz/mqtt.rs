//! The devices' MQTT payload handling: the RVR bridge's action handler, the
//! hand agent's action parser, the OTA client's job-execution and shadow
//! parsers, on JSON shaped like their messages and on raw bytes.

use proptest::prelude::*;
use serde_json::{Value, json};

/// Keys and values the devices look for, so generated JSON reaches deep
/// into their handlers instead of stopping at "unknown field".
const KEYS: &[&str] = &[
    "id",
    "action",
    "distance_m",
    "degrees",
    "direction",
    "speed",
    "duration_s",
    "sentence",
    "ts",
    "execution",
    "jobId",
    "status",
    "executionNumber",
    "jobDocument",
    "state",
    "desired",
    "reported",
    "delta",
    "otaEnabled",
    "version",
    "url",
    "sha256",
    "size",
    "steps",
    "type",
];
const WORDS: &[&str] = &[
    "forward",
    "reverse",
    "turn",
    "cancel",
    "drive",
    "left",
    "right",
    "stop",
    "QUEUED",
    "IN_PROGRESS",
    "SUCCEEDED",
    "FAILED",
    "HELLO WORLD",
    "",
    "ÿ",
    "\u{0}",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(WORDS).prop_map(|w| json!(w)),
        "[ -~]{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(KEYS).prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

pub fn inputs() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => value().prop_map(|v| v.to_string().into_bytes()),
        1 => super::bytes(256),
        1 => "[ -~]{0,64}".prop_map(String::into_bytes),
    ]
}

/// Feeds one payload to every device's handler.
pub fn check(payload: &[u8]) -> Result<(), String> {
    // The RVR bridge: the action, then a few ticks of whatever it started.
    let mut bridge = rvr_bridge::Bridge::new(rvr_bridge::BridgeConfig::default());
    bridge.on_action_payload(payload, 1_000_000);
    for t in 1..=3u64 {
        bridge.tick(t * 100_000_000);
    }
    let _ = bridge.take_outputs();
    // The hand agent's MQTT side.
    let _ = hand_agent::payload::parse_action(payload);
    // The OTA client: job execution documents and shadow deltas.
    let _ = ota_client::client::parse_execution(payload);
    let _ = ota_client::client::desired_gate(payload, true);
    let _ = ota_client::client::desired_gate(payload, false);
    Ok(())
}
