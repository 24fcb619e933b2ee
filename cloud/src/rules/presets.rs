//! The rules and transforms of the twinned systems, ready to load.
//!
//! - Amazing Hand: rule `AmazingHandStateStreamingRule` exactly as deployed
//!   (cdk `lib/iot-streaming-stack.ts`), transform `hand-state`
//!   (`cloud/transforms/hand-state.json`) reproducing the Lambda
//!   `AmazingHandToAppSyncFunction`, records of kind `HandState`.
//!
//! A robot's own rules live with its device kind
//! (`twinrig_kind::DeviceKind::rule_presets`; the RVR's telemetry rule is
//! in `robots/rvr/twin`), so adding a robot does not touch this list. The
//! hand's rule is still here: its kind now has a crate of its own
//! (`robots/hand/twin`), and moving the rule there with its tests is the
//! next step.

use super::pipeline::{Pipeline, PipelineError};
use super::transform::{Transform, TransformSpecError};
use super::{RuleConfig, RuleSet};

/// Name of the hand's rule in the real stack.
pub const HAND_STATE_RULE: &str = "AmazingHandStateStreamingRule";
/// The hand's rule SQL, verbatim.
pub const HAND_STATE_SQL: &str = "SELECT gesture, letter, ts, fingers, video_url, \
     topic(3) AS device_name FROM 'the-project/robotic-hand/+/state'";
/// The hand transform's name (the rule's action).
pub const HAND_STATE_ACTION: &str = "hand-state";
/// The hand transform file's text.
pub const HAND_STATE_TRANSFORM_JSON: &str = include_str!("../../transforms/hand-state.json");

/// The rules kept here (the hand's).
pub fn rule_configs() -> Vec<RuleConfig> {
    vec![RuleConfig {
        name: HAND_STATE_RULE.into(),
        sql: HAND_STATE_SQL.into(),
        action: HAND_STATE_ACTION.into(),
    }]
}

/// The transform files' texts, in the order of [`rule_configs`] (each rule's action).
pub fn transform_jsons() -> Vec<&'static str> {
    vec![HAND_STATE_TRANSFORM_JSON]
}

/// The hand transform.
pub fn hand_state_transform() -> Result<Transform, TransformSpecError> {
    Transform::from_json(HAND_STATE_TRANSFORM_JSON)
}

/// The rules kept here wired to their transforms.
pub fn pipeline() -> Result<Pipeline, PresetError> {
    let rules = RuleSet::from_configs(rule_configs()).map_err(PipelineError::from)?;
    let transforms = vec![hand_state_transform()?];
    Ok(Pipeline::new(rules, transforms)?)
}

/// A shipped preset failed to load (a broken edit of a transform file).
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    /// A transform file is invalid.
    #[error(transparent)]
    Transform(#[from] TransformSpecError),
    /// The rules or their wiring are invalid.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}
