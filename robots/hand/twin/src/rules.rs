//! The cloud rule and transform the `hand` kind contributes
//! ([`twinrig_kind::DeviceKind::rule_presets`]): rule
//! `AmazingHandStateStreamingRule` exactly as deployed (cdk
//! `lib/iot-streaming-stack.ts`), transform `hand-state`
//! (`rules/hand-state.json`) reproducing the Lambda
//! `AmazingHandToAppSyncFunction`, records of kind `HandState`.

use twinrig_cloud::rules::{
    Pipeline, PipelineError, RuleConfig, RuleSet, Transform, TransformSpecError,
};
use twinrig_kind::RulePreset;

/// Name of the hand's rule in the real stack.
pub const HAND_STATE_RULE: &str = "AmazingHandStateStreamingRule";
/// The hand's rule SQL, verbatim.
pub const HAND_STATE_SQL: &str = "SELECT gesture, letter, ts, fingers, video_url, \
     topic(3) AS device_name FROM 'the-project/robotic-hand/+/state'";
/// The hand transform's name (the rule's action).
pub const HAND_STATE_ACTION: &str = "hand-state";
/// The hand transform file's text.
pub const HAND_STATE_TRANSFORM_JSON: &str = include_str!("../rules/hand-state.json");

/// The hand rule as configured.
pub fn hand_state_rule() -> RuleConfig {
    RuleConfig {
        name: HAND_STATE_RULE.into(),
        sql: HAND_STATE_SQL.into(),
        action: HAND_STATE_ACTION.into(),
    }
}

/// The kind's presets.
pub fn presets() -> Vec<RulePreset> {
    vec![RulePreset {
        rule: hand_state_rule(),
        transform_json: HAND_STATE_TRANSFORM_JSON,
    }]
}

/// The hand transform.
pub fn hand_state_transform() -> Result<Transform, TransformSpecError> {
    Transform::from_json(HAND_STATE_TRANSFORM_JSON)
}

/// The hand rule wired to its transform.
pub fn pipeline() -> Result<Pipeline, PresetError> {
    let rules = RuleSet::from_configs([hand_state_rule()]).map_err(PipelineError::from)?;
    Ok(Pipeline::new(rules, vec![hand_state_transform()?])?)
}

/// The shipped preset failed to load (a broken edit of its transform file).
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    /// The transform file is invalid.
    #[error(transparent)]
    Transform(#[from] TransformSpecError),
    /// The rule or its wiring is invalid.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}
