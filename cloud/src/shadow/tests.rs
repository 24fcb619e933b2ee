use proptest::prelude::*;
use serde_json::{Value, json};
use twinrig_hal::mqtt::topic_matches;

use super::*;

const CLASSIC: &str = "$aws/things/robot/shadow";
const NAMED: &str = "$aws/things/robot/shadow/name/config";

fn service() -> ShadowService {
    ShadowService::default()
}

fn json_of(publish: &Publish) -> Value {
    serde_json::from_slice(&publish.payload).expect("service output is JSON")
}

fn topics(out: &[Publish]) -> Vec<&str> {
    out.iter().map(|p| p.topic.as_str()).collect()
}

fn text(publish: &Publish) -> &str {
    std::str::from_utf8(&publish.payload).expect("UTF-8")
}

fn update(svc: &mut ShadowService, prefix: &str, body: Value, now: u64) -> Vec<Publish> {
    svc.handle(
        &format!("{prefix}/update"),
        body.to_string().as_bytes(),
        now,
    )
}

fn find<'a>(out: &'a [Publish], suffix: &str) -> Option<&'a Publish> {
    out.iter().find(|p| p.topic.ends_with(suffix))
}

fn get(svc: &mut ShadowService, prefix: &str, now: u64) -> Publish {
    let out = svc.handle(&format!("{prefix}/get"), b"", now);
    assert_eq!(out.len(), 1);
    out.into_iter().next().expect("one answer")
}

#[test]
fn get_of_a_missing_shadow_is_rejected_with_404() {
    let mut svc = service();
    let out = get(&mut svc, CLASSIC, 10);
    assert_eq!(out.topic, "$aws/things/robot/shadow/get/rejected");
    // Real AWS output, byte for byte: no timestamp on a 404.
    assert_eq!(
        text(&out),
        r#"{"code":404,"message":"No shadow exists with name: 'robot'"}"#
    );

    let out = svc.handle(&format!("{NAMED}/get"), br#"{"clientToken":"abc"}"#, 10);
    assert_eq!(topics(&out), [format!("{NAMED}/get/rejected")]);
    assert_eq!(
        json_of(&out[0]),
        json!({"code": 404, "message": "No shadow exists with name: 'robot~config'", "clientToken": "abc"})
    );
}

#[test]
fn first_reported_update_creates_the_shadow_at_version_1() {
    let mut svc = service();
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"color": "green"}}, "clientToken": "c1"}),
        100,
    );
    assert_eq!(
        topics(&out),
        [
            "$aws/things/robot/shadow/update/accepted",
            "$aws/things/robot/shadow/update/documents"
        ]
    );
    assert_eq!(
        text(&out[0]),
        r#"{"clientToken":"c1","metadata":{"reported":{"color":{"timestamp":100}}},"state":{"reported":{"color":"green"}},"timestamp":100,"version":1}"#
    );
    // A new shadow has no `previous`.
    assert_eq!(
        text(&out[1]),
        r#"{"clientToken":"c1","current":{"metadata":{"reported":{"color":{"timestamp":100}}},"state":{"reported":{"color":"green"}},"version":1},"timestamp":100}"#
    );
    assert_eq!(svc.version("robot", None), Some(1));
    let got = get(&mut svc, CLASSIC, 120);
    assert_eq!(got.topic, format!("{CLASSIC}/get/accepted"));
    assert_eq!(
        json_of(&got),
        json!({
            "state": {"reported": {"color": "green"}},
            "metadata": {"reported": {"color": {"timestamp": 100}}},
            "version": 1,
            "timestamp": 120
        })
    );
}

#[test]
fn desired_differing_from_reported_publishes_a_delta_of_only_the_differing_keys() {
    let mut svc = service();
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "only_reported": true}}}),
        100,
    );
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": {"a": 1, "b": {"x": 1, "y": 3}, "c": [1, 2], "d": "new"}}, "clientToken": "app"}),
        200,
    );
    assert_eq!(
        topics(&out),
        [
            format!("{CLASSIC}/update/accepted"),
            format!("{CLASSIC}/update/delta"),
            format!("{CLASSIC}/update/documents")
        ]
    );
    assert_eq!(
        json_of(&out[1]),
        json!({
            "state": {"b": {"y": 3}, "d": "new"},
            "metadata": {"b": {"y": {"timestamp": 200}}, "d": {"timestamp": 200}},
            "timestamp": 200,
            "clientToken": "app",
            "version": 2
        })
    );
    let documents = json_of(&out[2]);
    assert_eq!(documents["previous"]["version"], 1);
    assert_eq!(documents["current"]["version"], 2);
    assert!(documents["previous"]["state"].get("desired").is_none());
    assert_eq!(documents["current"]["state"]["desired"]["d"], "new");
    assert!(documents["current"]["state"].get("delta").is_none());

    let got = json_of(&get(&mut svc, CLASSIC, 250));
    assert_eq!(got["state"]["delta"], json!({"b": {"y": 3}, "d": "new"}));
    assert!(got["metadata"].get("delta").is_none());
}

#[test]
fn arrays_are_compared_and_replaced_whole() {
    let mut svc = service();
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"seq": [1, 2, 3]}}}),
        1,
    );
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": {"seq": [1, 2]}}}),
        2,
    );
    let delta = json_of(find(&out, "/update/delta").expect("delta"));
    assert_eq!(delta["state"], json!({"seq": [1, 2]}));
    // Per-element metadata for arrays, as real AWS reports it.
    assert_eq!(
        delta["metadata"],
        json!({"seq": [{"timestamp": 2}, {"timestamp": 2}]})
    );
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"seq": [1, 2]}}}),
        3,
    );
    let doc = svc.document("robot", None).expect("exists");
    assert_eq!(doc["state"]["reported"]["seq"], json!([1, 2]));
    assert!(doc["state"].get("delta").is_none());
}

#[test]
fn reported_catching_up_publishes_no_delta() {
    let mut svc = service();
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": {"color": "red", "speed": 3}}}),
        1,
    );
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"color": "red"}}}),
        2,
    );
    // speed still differs: the delta carries it even though this update did not touch it.
    let delta = json_of(find(&out, "/update/delta").expect("delta"));
    assert_eq!(delta["state"], json!({"speed": 3}));
    assert_eq!(delta["metadata"], json!({"speed": {"timestamp": 1}}));
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"speed": 3}}}),
        3,
    );
    assert_eq!(
        topics(&out),
        [
            format!("{CLASSIC}/update/accepted"),
            format!("{CLASSIC}/update/documents")
        ]
    );
    let got = json_of(&get(&mut svc, CLASSIC, 4));
    assert!(got["state"].get("delta").is_none());
}

#[test]
fn a_key_deleted_from_reported_but_still_desired_is_in_the_delta_again() {
    let mut svc = service();
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": {"on": true}, "reported": {"on": true}}}),
        1,
    );
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"on": null}}}),
        2,
    );
    let delta = json_of(find(&out, "/update/delta").expect("delta"));
    assert_eq!(delta["state"], json!({"on": true}));
}

#[test]
fn null_deletes_a_key_and_a_section() {
    let mut svc = service();
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"a": 1, "b": 2, "n": {"p": 1}}, "desired": {"x": 1}}}),
        1,
    );
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"a": null}}}),
        2,
    );
    // The accepted document echoes the request, null included.
    let accepted = json_of(&out[0]);
    assert_eq!(accepted["state"], json!({"reported": {"a": null}}));
    assert_eq!(
        accepted["metadata"],
        json!({"reported": {"a": {"timestamp": 2}}})
    );
    let doc = svc.document("robot", None).expect("exists");
    assert_eq!(doc["state"]["reported"], json!({"b": 2, "n": {"p": 1}}));
    assert!(doc["metadata"]["reported"].get("a").is_none());

    // A nested object emptied by deletions goes away with its metadata.
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"n": {"p": null}}}}),
        3,
    );
    let doc = svc.document("robot", None).expect("exists");
    assert_eq!(doc["state"]["reported"], json!({"b": 2}));
    assert_eq!(doc["metadata"]["reported"], json!({"b": {"timestamp": 1}}));

    // "desired": null removes the whole section.
    update(&mut svc, CLASSIC, json!({"state": {"desired": null}}), 4);
    let doc = svc.document("robot", None).expect("exists");
    assert!(doc["state"].get("desired").is_none());
    assert!(doc["metadata"].get("desired").is_none());
    assert!(doc["state"].get("delta").is_none());

    // Deleting the last key of a section removes the section too.
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"b": null}}}),
        5,
    );
    let documents = json_of(find(&out, "/update/documents").expect("documents"));
    assert_eq!(documents["current"]["state"], json!({}));
    assert_eq!(documents["current"]["metadata"], json!({}));
    assert_eq!(svc.version("robot", None), Some(5));
}

#[test]
fn state_null_clears_both_sections_but_keeps_the_shadow() {
    let mut svc = service();
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": {"a": 1}, "reported": {"b": 2}}}),
        1,
    );
    let out = update(&mut svc, CLASSIC, json!({"state": null}), 2);
    assert_eq!(out[0].topic, format!("{CLASSIC}/update/accepted"));
    let doc = svc.document("robot", None).expect("still exists");
    assert_eq!(doc["state"], json!({}));
    assert_eq!(doc["version"], 2);
}

#[test]
fn merge_replaces_values_and_types_and_keeps_metadata_in_step() {
    let mut svc = service();
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"m": 5, "o": {"k": 1}}}}),
        1,
    );
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"m": {"deep": true}, "o": "flat"}}}),
        2,
    );
    let doc = svc.document("robot", None).expect("exists");
    assert_eq!(
        doc["state"]["reported"],
        json!({"m": {"deep": true}, "o": "flat"})
    );
    assert_eq!(
        doc["metadata"]["reported"],
        json!({"m": {"deep": {"timestamp": 2}}, "o": {"timestamp": 2}})
    );
    // An empty object changes nothing.
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"m": {}, "o": {}}}}),
        3,
    );
    let doc = svc.document("robot", None).expect("exists");
    assert_eq!(
        doc["state"]["reported"],
        json!({"m": {"deep": true}, "o": "flat"})
    );
}

#[test]
fn an_update_with_an_empty_state_is_accepted_and_bumps_the_version() {
    let mut svc = service();
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {}, "hello": "ignored"}),
        7,
    );
    assert_eq!(
        text(&out[0]),
        r#"{"metadata":{},"state":{},"timestamp":7,"version":1}"#
    );
    let out = update(&mut svc, CLASSIC, json!({"state": {}}), 8);
    assert_eq!(json_of(&out[0])["version"], 2);
}

#[test]
fn a_version_that_does_not_match_is_a_409_conflict() {
    let mut svc = service();
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": {"colors": ["RED"]}}}),
        1,
    );
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": {"colors": ["BLUE"]}}, "version": 5, "clientToken": "t"}),
        2,
    );
    assert_eq!(topics(&out), [format!("{CLASSIC}/update/rejected")]);
    // As captured from AWS: no timestamp on a 409.
    assert_eq!(
        text(&out[0]),
        r#"{"clientToken":"t","code":409,"message":"Version conflict"}"#
    );
    let doc = svc.document("robot", None).expect("exists");
    assert_eq!(doc["state"]["desired"]["colors"], json!(["RED"]));
    assert_eq!(doc["version"], 1);

    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": {"colors": ["BLUE"]}}, "version": 1}),
        3,
    );
    assert_eq!(json_of(&out[0])["version"], 2);
    assert_eq!(svc.version("robot", None), Some(2));

    // A shadow never created is at version 0.
    let out = update(&mut svc, NAMED, json!({"state": {}, "version": 1}), 4);
    assert_eq!(json_of(&out[0])["code"], 409);
    let out = update(&mut svc, NAMED, json!({"state": {}, "version": 0}), 4);
    assert_eq!(json_of(&out[0])["version"], 1);
}

#[test]
fn delete_is_accepted_then_get_is_404_and_the_version_carries_on() {
    let mut svc = service();
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"a": 1}}}),
        1,
    );
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"a": 2}}}),
        2,
    );
    let out = svc.handle(&format!("{CLASSIC}/delete"), br#"{"clientToken":"del"}"#, 3);
    assert_eq!(topics(&out), [format!("{CLASSIC}/delete/accepted")]);
    assert_eq!(
        text(&out[0]),
        r#"{"clientToken":"del","timestamp":3,"version":2}"#
    );
    let got = get(&mut svc, CLASSIC, 4);
    assert_eq!(got.topic, format!("{CLASSIC}/get/rejected"));
    assert_eq!(json_of(&got)["code"], 404);
    assert_eq!(svc.document("robot", None), None);
    assert_eq!(svc.version("robot", None), None);

    // Deleting again: 404.
    let out = svc.handle(&format!("{CLASSIC}/delete"), b"", 5);
    assert_eq!(topics(&out), [format!("{CLASSIC}/delete/rejected")]);
    assert_eq!(
        text(&out[0]),
        r#"{"code":404,"message":"No shadow exists with name: 'robot'"}"#
    );

    // Recreated: the version continues and there is no `previous`.
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"b": 1}}}),
        6,
    );
    assert_eq!(json_of(&out[0])["version"], 3);
    let documents = json_of(find(&out, "/update/documents").expect("documents"));
    assert!(documents.get("previous").is_none());
    assert_eq!(documents["current"]["state"], json!({"reported": {"b": 1}}));
}

#[test]
fn delete_of_a_shadow_never_created_is_404() {
    let mut svc = service();
    let out = svc.handle(&format!("{NAMED}/delete"), b"whatever", 1);
    assert_eq!(topics(&out), [format!("{NAMED}/delete/rejected")]);
    assert_eq!(
        json_of(&out[0]),
        json!({"code": 404, "message": "No shadow exists with name: 'robot~config'"})
    );
}

#[test]
fn named_shadows_are_independent_of_the_classic_one_and_of_other_things() {
    let mut svc = service();
    let other = "$aws/things/robot2/shadow";
    let other_named = "$aws/things/robot2/shadow/name/config";
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"who": "classic"}}}),
        1,
    );
    let out = update(
        &mut svc,
        NAMED,
        json!({"state": {"reported": {"who": "named"}}}),
        2,
    );
    assert_eq!(
        topics(&out),
        [
            "$aws/things/robot/shadow/name/config/update/accepted",
            "$aws/things/robot/shadow/name/config/update/documents"
        ]
    );
    assert_eq!(json_of(&out[0])["version"], 1);
    update(
        &mut svc,
        other_named,
        json!({"state": {"desired": {"who": "other"}}}),
        3,
    );
    update(&mut svc, NAMED, json!({"state": {"reported": {"n": 2}}}), 4);

    assert_eq!(svc.version("robot", None), Some(1));
    assert_eq!(svc.version("robot", Some("config")), Some(2));
    assert_eq!(svc.version("robot2", Some("config")), Some(1));
    assert_eq!(svc.version("robot2", None), None);
    assert_eq!(
        svc.document("robot", None).expect("classic")["state"],
        json!({"reported": {"who": "classic"}})
    );
    assert_eq!(
        svc.document("robot", Some("config")).expect("named")["state"],
        json!({"reported": {"n": 2, "who": "named"}})
    );

    svc.handle(&format!("{NAMED}/delete"), b"", 5);
    assert!(svc.document("robot", Some("config")).is_none());
    assert!(svc.document("robot", None).is_some());
    assert!(svc.document("robot2", Some("config")).is_some());
    assert_eq!(
        get(&mut svc, other, 6).topic,
        format!("{other}/get/rejected")
    );
}

#[test]
fn state_over_the_size_limit_is_a_413_and_changes_nothing() {
    let mut svc = service();
    // {"s":"..."} is 8 bytes plus the string: 8184 characters make exactly 8192.
    let fits = "x".repeat(8184);
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"s": fits}}}),
        1,
    );
    assert_eq!(out[0].topic, format!("{CLASSIC}/update/accepted"));

    let too_big = "x".repeat(8185);
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"s": too_big}}, "clientToken": "big"}),
        2,
    );
    assert_eq!(topics(&out), [format!("{CLASSIC}/update/rejected")]);
    assert_eq!(
        json_of(&out[0]),
        json!({"code": 413, "message": "The payload exceeds the maximum size allowed", "timestamp": 2, "clientToken": "big"})
    );
    assert_eq!(svc.version("robot", None), Some(1));

    // The limit applies to the merged document: desired + reported together.
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": {"t": 1}}}),
        3,
    );
    assert_eq!(json_of(&out[0])["code"], 413);
    // Shrinking is fine, and so is a named shadow with its own budget.
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"s": "short"}, "desired": {"t": 1}}}),
        4,
    );
    assert_eq!(json_of(&out[0])["version"], 2);

    // A smaller limit through the config; a rejected first update creates nothing.
    let mut small = ShadowService::new(ShadowConfig {
        max_state_bytes: 10,
        ..ShadowConfig::default()
    });
    let out = update(
        &mut small,
        NAMED,
        json!({"state": {"reported": {"abc": 12345}}}),
        1,
    );
    assert_eq!(json_of(&out[0])["code"], 413);
    assert_eq!(
        get(&mut small, NAMED, 2).topic,
        format!("{NAMED}/get/rejected")
    );
}

#[test]
fn malformed_payloads_are_rejected_with_aws_messages() {
    let deep_ok = json!({"state": {"desired": {"a": {"b": {"c": {"d": {"e": 1}}}}}}});
    let deep_bad = json!({"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}});
    let cases: Vec<(Vec<u8>, u16, &str, Option<&str>)> = vec![
        (b"not json".to_vec(), 400, "Invalid JSON", None),
        (b"".to_vec(), 400, "Invalid JSON", None),
        (b"[1,2]".to_vec(), 400, "Invalid JSON", None),
        (b"null".to_vec(), 400, "Invalid JSON", None),
        (b"{}".to_vec(), 400, "Missing required node: state", None),
        (
            br#"{"clientToken":"t"}"#.to_vec(),
            400,
            "Missing required node: state",
            Some("t"),
        ),
        (
            br#"{"state":"x"}"#.to_vec(),
            400,
            "State node must be an object",
            None,
        ),
        (
            br#"{"state":[1]}"#.to_vec(),
            400,
            "State node must be an object",
            None,
        ),
        (
            br#"{"state":true}"#.to_vec(),
            400,
            "State node must be an object",
            None,
        ),
        (
            br#"{"state":{"desired":1},"clientToken":"t"}"#.to_vec(),
            400,
            "Desired node must be an object",
            Some("t"),
        ),
        (
            br#"{"state":{"reported":[1]}}"#.to_vec(),
            400,
            "Reported node must be an object",
            None,
        ),
        (
            br#"{"state":{"delta":{"a":1}}}"#.to_vec(),
            400,
            "State contains an invalid node",
            None,
        ),
        (
            br#"{"state":{"reported":{"a":[null,1]}}}"#.to_vec(),
            400,
            "State contains an invalid node",
            None,
        ),
        (
            br#"{"state":{},"version":"1"}"#.to_vec(),
            400,
            "Invalid version",
            None,
        ),
        (
            br#"{"state":{},"version":-1}"#.to_vec(),
            400,
            "Invalid version",
            None,
        ),
        (
            br#"{"state":{},"version":1.5}"#.to_vec(),
            400,
            "Invalid version",
            None,
        ),
        (
            br#"{"state":{},"clientToken":5}"#.to_vec(),
            400,
            "Invalid clientToken",
            None,
        ),
        (
            format!(r#"{{"state":{{}},"clientToken":"{}"}}"#, "k".repeat(65)).into_bytes(),
            400,
            "Invalid clientToken",
            None,
        ),
        (
            deep_bad.to_string().into_bytes(),
            400,
            "JSON contains too many levels of nesting; maximum is 6",
            None,
        ),
        (
            b"\xff\xfe{}".to_vec(),
            415,
            "Unsupported documented encoding; supported encoding is UTF-8",
            None,
        ),
    ];
    let mut svc = service();
    for (payload, code, message, token) in cases {
        let out = svc.handle(&format!("{CLASSIC}/update"), &payload, 42);
        assert_eq!(
            topics(&out),
            [format!("{CLASSIC}/update/rejected")],
            "payload {:?}",
            String::from_utf8_lossy(&payload)
        );
        let mut expected = json!({"code": code, "message": message, "timestamp": 42});
        if let Some(token) = token {
            expected["clientToken"] = json!(token);
        }
        assert_eq!(
            json_of(&out[0]),
            expected,
            "payload {:?}",
            String::from_utf8_lossy(&payload)
        );
    }
    assert_eq!(
        svc.version("robot", None),
        None,
        "no rejected update created the shadow"
    );

    // Six levels (state, desired, a, b, c, d) are fine; a 64-byte token too.
    let out = update(&mut svc, CLASSIC, deep_ok, 43);
    assert_eq!(out[0].topic, format!("{CLASSIC}/update/accepted"));
    let token = "k".repeat(64);
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {}, "clientToken": token}),
        44,
    );
    assert_eq!(json_of(&out[0])["clientToken"], json!(token));

    // The depth limit is a parameter, and its message says so.
    let mut shallow = ShadowService::new(ShadowConfig {
        max_depth: 3,
        ..ShadowConfig::default()
    });
    let out = update(
        &mut shallow,
        CLASSIC,
        json!({"state": {"reported": {"a": {"b": {"c": 1}}}}}),
        1,
    );
    assert_eq!(
        json_of(&out[0])["message"],
        "JSON contains too many levels of nesting; maximum is 3"
    );
    let out = update(
        &mut shallow,
        CLASSIC,
        json!({"state": {"reported": {"a": {"b": 1}}}}),
        2,
    );
    assert_eq!(out[0].topic, format!("{CLASSIC}/update/accepted"));
}

#[test]
fn client_token_is_echoed_on_every_answer() {
    let mut svc = service();
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": {"a": 1}}, "clientToken": "tok-1"}),
        1,
    );
    assert_eq!(out.len(), 3);
    for publish in &out {
        assert_eq!(
            json_of(publish)["clientToken"],
            "tok-1",
            "{}",
            publish.topic
        );
    }
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": {"a": 2}}}),
        2,
    );
    for publish in &out {
        assert!(
            json_of(publish).get("clientToken").is_none(),
            "{}",
            publish.topic
        );
    }
    let out = svc.handle(&format!("{CLASSIC}/get"), br#"{"clientToken":"tok-2"}"#, 3);
    assert_eq!(json_of(&out[0])["clientToken"], "tok-2");
    // A get body that is not JSON is ignored.
    let out = svc.handle(&format!("{CLASSIC}/get"), b"payload is ignored", 3);
    assert_eq!(out[0].topic, format!("{CLASSIC}/get/accepted"));
    assert!(json_of(&out[0]).get("clientToken").is_none());
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"desired": 1}, "clientToken": "tok-3"}),
        4,
    );
    assert_eq!(json_of(&out[0])["clientToken"], "tok-3");
    let out = svc.handle(
        &format!("{CLASSIC}/delete"),
        br#"{"clientToken":"tok-4"}"#,
        5,
    );
    assert_eq!(json_of(&out[0])["clientToken"], "tok-4");
    let out = svc.handle(
        &format!("{CLASSIC}/delete"),
        br#"{"clientToken":"tok-5"}"#,
        6,
    );
    assert_eq!(out[0].topic, format!("{CLASSIC}/delete/rejected"));
    assert_eq!(json_of(&out[0])["clientToken"], "tok-5");
}

#[test]
fn metadata_timestamps_come_from_the_given_clock() {
    let mut svc = service();
    let out = update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"a": 1}}}),
        1_000,
    );
    assert_eq!(json_of(&out[0])["timestamp"], 1_000);
    update(
        &mut svc,
        CLASSIC,
        json!({"state": {"reported": {"b": [1, {"c": 2}, [3]]}, "desired": {"a": 2}}}),
        2_500,
    );
    let got = json_of(&get(&mut svc, CLASSIC, 3_000));
    assert_eq!(got["timestamp"], 3_000);
    assert_eq!(
        got["metadata"],
        json!({
            "desired": {"a": {"timestamp": 2_500}},
            "reported": {
                "a": {"timestamp": 1_000},
                "b": [{"timestamp": 2_500}, {"c": {"timestamp": 2_500}}, [{"timestamp": 2_500}]]
            }
        })
    );
    // document() has no clock: it reports the time of the last update.
    let doc = svc.document("robot", None).expect("exists");
    assert_eq!(doc["timestamp"], 2_500);
    assert_eq!(doc["state"], got["state"]);
    assert_eq!(doc["metadata"], got["metadata"]);
    assert_eq!(doc["version"], got["version"]);
}

#[test]
fn update_from_service_produces_the_same_publishes_as_mqtt() {
    let bodies = [
        json!({"state": {"reported": {"fw": "1.0.0"}}}),
        json!({"state": {"desired": {"fw": "2.0.0"}}, "clientToken": "agent"}),
        json!({"state": {"reported": {"fw": "2.0.0"}}, "version": 2}),
    ];
    let mut mqtt = service();
    let mut http = service();
    for (i, body) in bodies.iter().enumerate() {
        let now = 10 + i as u64;
        let over_mqtt = update(&mut mqtt, NAMED, body.clone(), now);
        let over_http = http
            .update_from_service("robot", Some("config"), body.to_string().as_bytes(), now)
            .expect("accepted");
        assert_eq!(over_http.publishes, over_mqtt);
        assert_eq!(over_http.body, json_of(&over_mqtt[0]));
    }
    assert_eq!(
        mqtt.document("robot", Some("config")),
        http.document("robot", Some("config"))
    );

    // Errors come back as errors, with no MQTT message and no change.
    let err = http
        .update_from_service(
            "robot",
            Some("config"),
            br#"{"state":{"desired":{"fw":"9"}},"version":1,"clientToken":"x"}"#,
            20,
        )
        .expect_err("conflict");
    assert_eq!(err.code, 409);
    assert_eq!(err.message, "Version conflict");
    assert_eq!(
        err.to_json(),
        json!({"code": 409, "message": "Version conflict", "clientToken": "x"})
    );
    let err = http
        .update_from_service("robot", None, b"{}", 21)
        .expect_err("bad request");
    assert_eq!(
        err.to_json(),
        json!({"code": 400, "message": "Missing required node: state", "timestamp": 21})
    );
    let err = http
        .update_from_service("bad/thing", None, br#"{"state":{}}"#, 22)
        .expect_err("bad name");
    assert_eq!(err.code, 400);
    assert_eq!(http.version("robot", Some("config")), Some(3));
}

#[test]
fn topics_that_are_not_shadow_requests_produce_nothing() {
    let mut svc = service();
    let body = br#"{"state":{"reported":{"a":1}}}"#;
    for topic in [
        "$aws/things/robot/shadow/update/accepted",
        "$aws/things/robot/shadow/update/delta",
        "$aws/things/robot/shadow/name/config/get/accepted",
        "$aws/things/robot/shadow/name/update",
        "$aws/things/robot/shadow/patch",
        "$aws/things/robot/jobs/get",
        "$aws/things/robot/shadow",
        "aws/things/robot/shadow/update",
        "$aws/things//shadow/update",
        "$aws/things/ro bot/shadow/update",
        "$aws/things/robot/shadow/name/bad.name/update",
        "$aws/things/robot/shadow/name//update",
    ] {
        assert!(svc.handle(topic, body, 1).is_empty(), "{topic}");
    }
    assert_eq!(svc.version("robot", None), None);
    let long = "t".repeat(129);
    assert!(
        svc.handle(&format!("$aws/things/{long}/shadow/update"), body, 1)
            .is_empty()
    );
    let ok = "t".repeat(128);
    assert_eq!(
        svc.handle(&format!("$aws/things/{ok}/shadow/update"), body, 1)
            .len(),
        2
    );
    let named = "$aws/things/robot/shadow/name/$cfg:1_x-y/update";
    assert_eq!(svc.handle(named, body, 1).len(), 2);
}

#[test]
fn request_filters_match_every_request_topic_and_no_response_topic() {
    let matched = |topic: &str| REQUEST_FILTERS.iter().any(|f| topic_matches(f, topic));
    for prefix in [CLASSIC, NAMED] {
        for op in ["get", "update", "delete"] {
            let request = format!("{prefix}/{op}");
            assert!(matched(&request), "{request}");
            assert!(parse_request_topic(&request).is_some());
            for outcome in ["accepted", "rejected", "delta", "documents"] {
                let response = format!("{request}/{outcome}");
                assert!(!matched(&response), "{response}");
            }
        }
    }
    // Everything the service answers with is outside its own filters.
    let mut svc = service();
    let mut out = update(&mut svc, NAMED, json!({"state": {"desired": {"a": 1}}}), 1);
    out.extend(svc.handle(&format!("{CLASSIC}/get"), b"", 2));
    out.extend(svc.handle(&format!("{NAMED}/delete"), b"", 3));
    for publish in out {
        assert!(!matched(&publish.topic), "{}", publish.topic);
    }
}

#[test]
fn the_same_inputs_give_byte_identical_outputs() {
    let script: Vec<(String, Vec<u8>)> = vec![
        (
            format!("{CLASSIC}/update"),
            br#"{"state":{"desired":{"z":1,"a":{"y":2,"b":3}}},"clientToken":"q"}"#.to_vec(),
        ),
        (
            format!("{CLASSIC}/update"),
            br#"{"state":{"reported":{"a":{"b":3}}}}"#.to_vec(),
        ),
        (format!("{CLASSIC}/get"), b"".to_vec()),
        (
            format!("{NAMED}/update"),
            br#"{"state":{"reported":{"k":[1,2]}}}"#.to_vec(),
        ),
        (format!("{CLASSIC}/delete"), b"".to_vec()),
    ];
    let run = || {
        let mut svc = service();
        script
            .iter()
            .enumerate()
            .flat_map(|(i, (topic, payload))| svc.handle(topic, payload, i as u64))
            .collect::<Vec<_>>()
    };
    let first = run();
    assert_eq!(first, run());
    // Keys come out sorted. The second update's delta:
    assert_eq!(first[4].topic, format!("{CLASSIC}/update/delta"));
    assert_eq!(
        text(&first[4]),
        r#"{"metadata":{"a":{"y":{"timestamp":0}},"z":{"timestamp":0}},"state":{"a":{"y":2},"z":1},"timestamp":1,"version":2}"#
    );
}

// ---------------------------------------------------------------- properties

/// Small JSON values, nulls and arrays with nulls included, nesting up to 4.
fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..4).prop_map(Value::from),
        prop::sample::select(vec!["red", "green", ""]).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_string),
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Op {
    Update {
        desired: Option<Value>,
        reported: Option<Value>,
        /// 0: no version, 1: the current version, 2..: that number minus 2.
        version: u8,
        token: bool,
    },
    RawUpdate(Value),
    Get,
    Delete,
}

/// A request section: mostly an object (so most updates are accepted),
/// sometimes `null`, sometimes any value.
fn section_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => prop::collection::btree_map(
            prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(str::to_string),
            value_strategy(),
            0..4
        )
        .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => Just(Value::Null),
        1 => value_strategy(),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop::option::of(section_strategy()),
            prop::option::of(section_strategy()),
            0u8..6,
            any::<bool>()
        )
            .prop_map(|(desired, reported, version, token)| Op::Update {
                desired,
                reported,
                version,
                token
            }),
        1 => value_strategy().prop_map(Op::RawUpdate),
        2 => Just(Op::Get),
        1 => Just(Op::Delete),
    ]
}

const TARGETS: [(&str, Option<&str>); 3] =
    [("robot", None), ("robot", Some("config")), ("robot2", None)];

/// Does `meta` mirror `state` (same shape, `{"timestamp": n}` per leaf)?
fn mirrors(state: &Value, meta: &Value) -> bool {
    match (state, meta) {
        (Value::Object(s), Value::Object(m)) => {
            s.len() == m.len()
                && s.iter()
                    .all(|(k, v)| m.get(k).is_some_and(|mv| mirrors(v, mv)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| mirrors(x, y))
        }
        (Value::Object(_) | Value::Array(_), _) => false,
        (_, Value::Object(m)) => m.len() == 1 && m.get("timestamp").is_some_and(Value::is_u64),
        _ => false,
    }
}

/// No nulls and no empty objects outside arrays.
fn clean(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty() && map.values().all(clean),
        Value::Null => false,
        _ => true,
    }
}

proptest! {
    #[test]
    fn random_update_sequences_never_panic_and_versions_strictly_increase(
        ops in prop::collection::vec((0usize..3, op_strategy()), 1..40)
    ) {
        let mut svc = service();
        // Last accepted version per shadow; deletes do not reset it.
        let mut last = [0u64; 3];
        for (step, (target, op)) in ops.into_iter().enumerate() {
            let now = 1_000 + step as u64;
            let (thing, name) = TARGETS[target];
            let prefix = shadow_prefix(thing, name);
            let (topic, payload) = match op {
                Op::Update { desired, reported, version, token } => {
                    let mut state = serde_json::Map::new();
                    if let Some(d) = desired { state.insert("desired".into(), d); }
                    if let Some(r) = reported { state.insert("reported".into(), r); }
                    let mut body = json!({"state": state});
                    match version {
                        0 => {}
                        1 => body["version"] = json!(svc.version(thing, name).unwrap_or(last[target])),
                        v => body["version"] = json!(u64::from(v) - 2),
                    }
                    if token { body["clientToken"] = json!(format!("tok{step}")); }
                    (format!("{prefix}/update"), body.to_string().into_bytes())
                }
                Op::RawUpdate(body) => (format!("{prefix}/update"), body.to_string().into_bytes()),
                Op::Get => (format!("{prefix}/get"), Vec::new()),
                Op::Delete => (format!("{prefix}/delete"), Vec::new()),
            };
            let out = svc.handle(&topic, &payload, now);
            prop_assert!(!out.is_empty());
            for publish in &out {
                prop_assert!(publish.topic.starts_with(&topic));
                let _: Value = serde_json::from_slice(&publish.payload).expect("JSON output");
            }
            if topic.ends_with("/update") {
                if out[0].topic.ends_with("/update/accepted") {
                    let version = json_of(&out[0])["version"].as_u64().expect("version");
                    prop_assert_eq!(version, last[target] + 1);
                    last[target] = version;
                    prop_assert!(out.len() == 2 || out.len() == 3);
                    prop_assert!(out.last().expect("documents").topic.ends_with("/update/documents"));
                    // A delta is published exactly when the stored document has one.
                    let doc = svc.document(thing, name).expect("updated shadow exists");
                    let published = find(&out, "/update/delta").map(|p| json_of(p)["state"].clone());
                    prop_assert_eq!(published.as_ref(), doc["state"].get("delta"));
                    let documents = json_of(out.last().expect("documents"));
                    prop_assert_eq!(documents["current"]["version"].as_u64(), Some(version));
                    if let Some(previous) = documents.get("previous") {
                        prop_assert_eq!(previous["version"].as_u64(), Some(version - 1));
                    }
                } else {
                    prop_assert_eq!(out.len(), 1);
                    prop_assert!(out[0].topic.ends_with("/update/rejected"));
                }
            }
            // The stored document stays well formed.
            if let Some(doc) = svc.document(thing, name) {
                prop_assert_eq!(doc["version"].as_u64(), Some(last[target]));
                for section in ["desired", "reported"] {
                    match (doc["state"].get(section), doc["metadata"].get(section)) {
                        (Some(s), Some(m)) => {
                            prop_assert!(clean(s), "{}", doc);
                            prop_assert!(mirrors(s, m), "{}", doc);
                        }
                        (None, None) => {}
                        _ => prop_assert!(false, "state and metadata disagree: {}", doc),
                    }
                }
                let size = doc["state"].get("desired").map_or(0, |d| d.to_string().len())
                    + doc["state"].get("reported").map_or(0, |r| r.to_string().len());
                prop_assert!(size <= svc.config().max_state_bytes);
            }
        }
    }

    #[test]
    fn random_bytes_as_payload_never_panic(
        target in 0usize..3,
        op in prop::sample::select(vec!["get", "update", "delete"]),
        payload in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut svc = service();
        let (thing, name) = TARGETS[target];
        let prefix = shadow_prefix(thing, name);
        // Once on a missing shadow, once on an existing one.
        for round in 0..2u64 {
            let out = svc.handle(&format!("{prefix}/{op}"), &payload, round);
            prop_assert!(!out.is_empty());
            for publish in &out {
                let _: Value = serde_json::from_slice(&publish.payload).expect("JSON output");
            }
            update(&mut svc, &prefix, json!({"state": {"reported": {"a": 1}}}), round);
        }
    }

    #[test]
    fn random_json_bodies_never_panic(body in value_strategy(), wrap in any::<bool>()) {
        let mut svc = service();
        let body = if wrap { json!({"state": body}) } else { body };
        let out = svc.handle(&format!("{CLASSIC}/update"), body.to_string().as_bytes(), 1);
        prop_assert!(!out.is_empty());
        for publish in &out {
            let _: Value = serde_json::from_slice(&publish.payload).expect("JSON output");
        }
    }
}

#[test]
fn a_snapshot_restores_every_shadow_with_its_version() {
    let mut svc = service();
    update(
        &mut svc,
        "$aws/things/t1/shadow",
        json!({"state": {"desired": {"color": "green"}}}),
        100,
    );
    update(
        &mut svc,
        "$aws/things/t1/shadow/name/cfg",
        json!({"state": {"reported": {"mode": 2}}}),
        101,
    );
    let mut back = service();
    back.restore(svc.snapshot()).expect("restores");
    assert_eq!(back.document("t1", None), svc.document("t1", None));
    assert_eq!(
        back.document("t1", Some("cfg")),
        svc.document("t1", Some("cfg"))
    );
    // The next update gets the next version, as on the original.
    let body = json!({"state": {"reported": {"color": "green"}}});
    let a = update(&mut svc, "$aws/things/t1/shadow", body.clone(), 102);
    let b = update(&mut back, "$aws/things/t1/shadow", body, 102);
    assert_eq!(a, b);
    assert!(back.restore(json!({"not": "a snapshot"})).is_err());
}
