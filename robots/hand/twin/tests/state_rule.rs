//! The hand's real pipeline end to end: IoT rule SQL -> transform (the Lambda
//! stand-in) -> records store, on payloads shaped like the real devices'.

use hand_twin::rules::{self as presets, HAND_STATE_SQL};
use serde_json::{Value, json};
use twinrig_cloud::records::RecordStore;
use twinrig_cloud::rules::{ActionError, Transform, TransformError, parse};

const HAND: &str = "XIAOAmazingHandRight";
const HAND_TOPIC: &str = "the-project/robotic-hand/XIAOAmazingHandRight/state";
const RVR_TOPIC: &str = "the-project/sphero-rvr/XIAOSpheroRVR/state";
/// 2026-02-08T11:40:50.123Z, the given clock in every test.
const NOW_MS: u64 = 1_770_550_850_123;

/// The state message of the hand stack's README.
fn hand_state() -> Value {
    json!({
        "gesture": "fingerspell", "letter": "E", "ts": 1_770_550_850,
        "fingers": {
            "index":  {"angle_1": 45, "angle_2": -45},
            "middle": {"angle_1": 45, "angle_2": -45},
            "ring":   {"angle_1": 45, "angle_2": -45},
            "thumb":  {"angle_1": 60, "angle_2": -60}
        },
        "video_url": "https://cc-amazing-video.s3.amazonaws.com/videos/hand_20260208_114050.mp4?X-Amz-Expires=3600"
    })
}

fn eval(sql: &str, topic: &str, payload: &Value) -> Option<Value> {
    parse(sql)
        .unwrap()
        .evaluate(topic, payload.to_string().as_bytes(), NOW_MS, None)
}

fn hand_transform() -> Transform {
    presets::hand_state_transform().unwrap()
}

// ---- the rules ---------------------------------------------------------------

#[test]
fn hand_rule_selects_the_state_and_the_device_name() {
    let out = eval(HAND_STATE_SQL, HAND_TOPIC, &hand_state()).unwrap();
    let mut expected = hand_state();
    expected["device_name"] = json!(HAND);
    assert_eq!(out, expected);
}

#[test]
fn hand_rule_leaves_missing_fields_out() {
    // A letter message before the video exists: no video_url, no gesture.
    let out = eval(
        HAND_STATE_SQL,
        HAND_TOPIC,
        &json!({"letter": "H", "ts": 1, "extra": true}),
    )
    .unwrap();
    assert_eq!(out, json!({"letter": "H", "ts": 1, "device_name": HAND}));
}

#[test]
fn hand_rule_ignores_other_topics() {
    let action = "the-project/robotic-hand/XIAOAmazingHandRight/action";
    assert_eq!(
        eval(HAND_STATE_SQL, action, &json!({"sentence": "hi"})),
        None
    );
    assert_eq!(eval(HAND_STATE_SQL, RVR_TOPIC, &hand_state()), None);
}

// ---- the transforms --------------------------------------------------------------

#[test]
fn hand_transform_flattens_a_full_state() {
    let output = eval(HAND_STATE_SQL, HAND_TOPIC, &hand_state()).unwrap();
    let record = hand_transform().apply(&output, NOW_MS).unwrap();
    assert_eq!(record.kind, "HandState");
    assert_eq!(record.key, HAND);
    assert_eq!(record.ts, 1_770_550_850);
    assert_eq!(
        Value::Object(record.fields),
        json!({
            "deviceName": HAND, "gesture": "fingerspell", "letter": "E",
            "indexAngle1": 45, "indexAngle2": -45, "middleAngle1": 45, "middleAngle2": -45,
            "ringAngle1": 45, "ringAngle2": -45, "thumbAngle1": 60, "thumbAngle2": -60,
            "timestamp": 1_770_550_850,
            "videoUrl": "https://cc-amazing-video.s3.amazonaws.com/videos/hand_20260208_114050.mp4?X-Amz-Expires=3600"
        })
    );
}

#[test]
fn hand_transform_missing_angles_are_zero_explicit_null_passes() {
    let input = json!({
        "device_name": HAND, "letter": "A", "ts": 5,
        "fingers": {
            "index": {"angle_1": 10},              // angle_2 missing
            "middle": {"angle_1": null, "angle_2": 7},
            "ring": "not an object"                 // both missing
            // thumb missing
        }
    });
    let f = hand_transform().apply(&input, NOW_MS).unwrap().fields;
    assert_eq!(f["indexAngle1"], json!(10));
    assert_eq!(f["indexAngle2"], json!(0));
    assert_eq!(f["middleAngle1"], json!(null));
    assert_eq!(f["middleAngle2"], json!(7));
    for k in ["ringAngle1", "ringAngle2", "thumbAngle1", "thumbAngle2"] {
        assert_eq!(f[k], json!(0), "{k}");
    }
    // No fingers at all: every angle 0.
    let f = hand_transform()
        .apply(&json!({"device_name": HAND}), NOW_MS)
        .unwrap()
        .fields;
    let angles: Vec<&Value> = f
        .iter()
        .filter(|(k, _)| k.contains("Angle"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(angles.len(), 8);
    assert!(angles.iter().all(|v| **v == json!(0)));
}

#[test]
fn hand_transform_missing_ts_is_the_given_now_in_seconds() {
    for input in [
        json!({"device_name": HAND, "letter": "B"}),
        json!({"device_name": HAND, "letter": "B", "ts": 0}),
        json!({"device_name": HAND, "letter": "B", "ts": null}),
    ] {
        let r = hand_transform().apply(&input, NOW_MS).unwrap();
        assert_eq!(r.ts, 1_770_550_850, "{input}");
        assert_eq!(r.fields["timestamp"], json!(1_770_550_850));
    }
    let later = hand_transform()
        .apply(&json!({"device_name": HAND}), NOW_MS + 2_000)
        .unwrap();
    assert_eq!(later.ts, 1_770_550_852);
}

#[test]
fn hand_transform_missing_optionals_are_null() {
    let r = hand_transform()
        .apply(
            &json!({"device_name": HAND, "gesture": "", "ts": 9}),
            NOW_MS,
        )
        .unwrap();
    assert_eq!(r.fields["gesture"], Value::Null);
    assert_eq!(r.fields["letter"], Value::Null);
    assert_eq!(r.fields["videoUrl"], Value::Null);
    assert_eq!(r.fields.len(), 13);
}

#[test]
fn hand_transform_refuses_what_the_lambda_or_appsync_refuses() {
    let t = hand_transform();
    for input in [
        json!({"letter": "A"}),
        json!({"device_name": "", "letter": "A"}),
        json!({"device_name": null}),
    ] {
        assert!(
            matches!(t.apply(&input, NOW_MS), Err(TransformError::Missing { ref field, .. }) if field == "deviceName"),
            "{input}"
        );
    }
    let bad_angle = json!({"device_name": HAND, "fingers": {"thumb": {"angle_1": "sixty"}}});
    assert!(matches!(
        t.apply(&bad_angle, NOW_MS),
        Err(TransformError::WrongType { ref field, .. }) if field == "thumbAngle1"
    ));
}

#[test]
fn shipped_transform_files_load_from_disk() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let hand = Transform::from_path(dir.join("hand-state.json")).unwrap();
    assert_eq!(hand, hand_transform());
}

// ---- end to end ----------------------------------------------------------------------

#[test]
fn fingerspelling_lands_in_the_store_newest_first_per_device() {
    let pipeline = presets::pipeline().unwrap();
    let mut store = RecordStore::open_in_memory().unwrap();
    let sentence = "THE QUICK BROWN FOX JUMPS";
    let mut now = NOW_MS;
    let mut stored = Vec::new();
    for letter in sentence.chars().filter(char::is_ascii_alphabetic) {
        now += 800; // each letter held 0.8 s
        let mut state = hand_state();
        state["letter"] = json!(letter.to_string());
        state["ts"] = json!(now / 1000);
        state.as_object_mut().unwrap().remove("video_url");
        let outcomes = pipeline.process(
            None,
            HAND_TOPIC,
            state.to_string().as_bytes(),
            now,
            &mut store,
        );
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].rule, presets::HAND_STATE_RULE);
        assert_eq!(outcomes[0].action, presets::HAND_STATE_ACTION);
        assert!(outcomes[0].result.is_ok());
        stored.push(letter);

        // Interleaved: the left hand, RVR telemetry, and an action message.
        let left = json!({"letter": "L", "ts": now / 1000});
        pipeline.process(
            None,
            "the-project/robotic-hand/XIAOAmazingHandLeft/state",
            left.to_string().as_bytes(),
            now,
            &mut store,
        );
        pipeline.process(
            None,
            RVR_TOPIC,
            // Another robot's telemetry (robots/rvr/twin has the full shape).
            json!({"type": "telemetry", "ts": now / 1000, "locator": {"x": 0.0, "y": 1.0}})
                .to_string()
                .as_bytes(),
            now,
            &mut store,
        );
        let none = pipeline.process(
            None,
            "the-project/robotic-hand/XIAOAmazingHandRight/action",
            br#"{"sentence": "ignored"}"#,
            now,
            &mut store,
        );
        assert!(none.is_empty());
    }
    assert_eq!(stored.len(), 21);

    // The UI's first load: the last 20 states of this hand, newest first.
    let recent = store.list_recent("HandState", HAND, 20).unwrap();
    assert_eq!(recent.len(), 20);
    let letters: String = recent
        .iter()
        .map(|r| r.record.fields["letter"].as_str().unwrap())
        .collect();
    let expected: String = stored.iter().rev().take(20).collect();
    assert_eq!(letters, expected);
    assert!(recent.iter().all(|r| r.record.key == HAND));
    assert!(recent.windows(2).all(|w| w[0].record.ts >= w[1].record.ts));

    assert_eq!(
        store
            .list_recent("HandState", "XIAOAmazingHandLeft", 100)
            .unwrap()
            .len(),
        21
    );
    // The RVR's rule is its kind's (robots/rvr/twin), not among these presets.
    assert_eq!(store.count("RvrTelemetry").unwrap(), 0);
    let all = store.list_all("HandState").unwrap();
    assert_eq!(all.len(), 42);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
}

#[test]
fn a_refused_message_stores_nothing_and_says_why() {
    let pipeline = presets::pipeline().unwrap();
    let mut store = RecordStore::open_in_memory().unwrap();
    let bad = json!({"letter": "A", "fingers": {"index": {"angle_1": 1.5}}});
    let outcomes = pipeline.process(
        None,
        HAND_TOPIC,
        bad.to_string().as_bytes(),
        NOW_MS,
        &mut store,
    );
    assert_eq!(outcomes.len(), 1);
    assert!(matches!(
        outcomes[0].result,
        Err(ActionError::Transform(TransformError::WrongType { .. }))
    ));
    assert_eq!(store.count("HandState").unwrap(), 0);

    // A plain-text state: fields are Undefined, the record has its defaults.
    let outcomes = pipeline.process(None, HAND_TOPIC, b"not json", NOW_MS, &mut store);
    let id = *outcomes[0].result.as_ref().unwrap();
    let rec = store.get(id).unwrap().unwrap().record;
    assert_eq!(rec.fields["letter"], Value::Null);
    assert_eq!(rec.ts, 1_770_550_850);
}
