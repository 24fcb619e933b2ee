//! The cloud rule and transform the `cat_feeder` kind contributes: states
//! into the table `catFeedersStates` (the reference's Timestream table),
//! as records of the cloud twin's store (`expect: records`).
//!
//! The reference's rule is not published; this one keeps the firmware's
//! periodic states (`type = 'state'`; `fed` and `error` messages are not
//! states) from both topic shapes (`cat-feeder/states` and
//! `cat-feeder/{thing}/states`). The rule name is assumed.

use twinrig_cloud::rules::RuleConfig;
use twinrig_kind::RulePreset;

/// The rule's name (assumed).
pub const RULE: &str = "CatFeedersStatesRule";
/// The rule's SQL: one row per state. Actions on `cat-feeder/.../action`
/// have no `type`, so WHERE is not true for them.
pub const SQL: &str = "SELECT clientid() AS thing_name, food_capacity, device_location, feeds, ts \
     FROM 'cat-feeder/#' WHERE type = 'state'";
/// The transform's name (the rule's action, and what `expect: records` names).
pub const ACTION: &str = "cat-feeder-states";
/// The transform file's text (`rules/cat-feeder-states.json`).
pub const TRANSFORM_JSON: &str = include_str!("../rules/cat-feeder-states.json");

/// The kind's presets.
pub fn presets() -> Vec<RulePreset> {
    vec![RulePreset {
        rule: RuleConfig {
            name: RULE.into(),
            sql: SQL.into(),
            action: ACTION.into(),
        },
        transform_json: TRANSFORM_JSON,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use twinrig_cloud::records::RecordStore;
    use twinrig_cloud::rules::pipeline::Pipeline;
    use twinrig_cloud::rules::{RuleSet, Transform};

    #[test]
    fn states_become_rows_keyed_by_the_publishing_thing_and_nothing_else_does() {
        let transform = Transform::from_json(TRANSFORM_JSON).unwrap();
        assert_eq!(
            (transform.name(), transform.kind()),
            (ACTION, "catFeedersStates")
        );
        let rules = RuleSet::from_configs(presets().into_iter().map(|p| p.rule)).unwrap();
        let pipeline = Pipeline::new(rules, vec![transform]).unwrap();
        let mut store = RecordStore::open_in_memory().unwrap();
        let state = json!({"type": "state", "food_capacity": 87, "device_location": "kitchen",
            "feeds": 1, "motors": {"left": "off", "right": "off"}, "rejected": 0,
            "ts": 1_767_225_615u64, "uptime_ms": 15_000});
        for topic in ["cat-feeder/states", "cat-feeder/feeder-2/states"] {
            let out = pipeline.process(
                Some("feeder-2"),
                topic,
                state.to_string().as_bytes(),
                0,
                &mut store,
            );
            assert_eq!(out.len(), 1, "{topic}");
            assert!(out[0].result.is_ok(), "{topic}: {:?}", out[0].result);
        }
        let fed = json!({"type": "fed", "event": "SINGLE", "feeds": 1, "ts": 1});
        assert!(
            pipeline
                .process(
                    None,
                    "cat-feeder/states",
                    fed.to_string().as_bytes(),
                    0,
                    &mut store
                )
                .is_empty()
        );
        let action = json!({"event": "SINGLE"});
        assert!(
            pipeline
                .process(
                    None,
                    "cat-feeder/action",
                    action.to_string().as_bytes(),
                    0,
                    &mut store
                )
                .is_empty()
        );
        let rows = store.list_all("catFeedersStates").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            Value::Object(rows[0].record.fields.clone()),
            json!({"thingName": "feeder-2", "deviceLocation": "kitchen", "foodCapacity": 87, "feeds": 1, "timestamp": 1_767_225_615u64})
        );
        assert_eq!(rows[0].record.key, "feeder-2");
        // A sensor without a reading: the row keeps a null level. A message
        // that did not come over MQTT is keyed `n/a`, as AWS's clientid() says.
        let unread =
            json!({"type": "state", "food_capacity": null, "device_location": "hall", "ts": 5});
        pipeline.process(
            None,
            "cat-feeder/states",
            unread.to_string().as_bytes(),
            0,
            &mut store,
        );
        let hall = store.list_all("catFeedersStates").unwrap().pop().unwrap();
        assert_eq!(hall.record.fields["foodCapacity"], Value::Null);
        assert_eq!(hall.record.key, "n/a");
    }
}
