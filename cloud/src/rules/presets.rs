//! The rules and transforms of the twinned systems, ready to load.
//!
//! - Amazing Hand: rule `AmazingHandStateStreamingRule` exactly as deployed
//!   (cdk `lib/iot-streaming-stack.ts`), transform `hand-state`
//!   (`cloud/transforms/hand-state.json`) reproducing the Lambda
//!   `AmazingHandToAppSyncFunction`, records of kind `HandState`.
//! - Sphero RVR: the real stack (`cdk-iot-sphero-rvr-streaming`) is not
//!   public; the talk describes it as the hand's twin, so the rule follows the
//!   hand rule's shape on twinrig's topic contract and the transform
//!   (`cloud/transforms/rvr-telemetry.json`) flattens the telemetry fields the
//!   January 2026 post lists. Rule name, field names and nesting are twinrig's
//!   own (assumed), records of kind `RvrTelemetry`.
//!
//! The RVR telemetry payload the rule and transform expect on
//! `the-project/sphero-rvr/{thing}/state` (every part optional but `type`):
//!
//! ```json
//! { "type": "telemetry", "ts": 1770550850,
//!   "imu": {"pitch": 0.5, "roll": -1.2, "yaw": 90.0},
//!   "accelerometer": {"x": 0.01, "y": -0.02, "z": 1.0},
//!   "gyroscope": {"x": 0.0, "y": 0.0, "z": 12.5},
//!   "locator": {"x": 0.0, "y": 1.0},
//!   "color": {"r": 255, "g": 0, "b": 0, "confidence": 0.92},
//!   "compass_heading": 270.0,
//!   "ambient_light": 181.2,
//!   "motor_thermal": {"left":  {"temperature": 31.5, "status": "ok"},
//!                     "right": {"temperature": 32.0, "status": "ok"}} }
//! ```
//!
//! Units: degrees (IMU, compass), g (accelerometer), degrees/s (gyroscope),
//! metres (locator), lux (ambient light), °C (motors); `status` is `ok`,
//! `warn` or `critical` (the RVR's motor thermal protection states 0, 1, 2);
//! `ts` whole seconds since the epoch.

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

/// Name of the RVR telemetry rule (assumed, in the hand stack's style).
pub const RVR_TELEMETRY_RULE: &str = "SpheroRvrTelemetryStreamingRule";
/// The RVR telemetry rule SQL (assumed shape: top-level fields plus
/// `topic(3) AS device_name`). The bridge firmware also reports maneuver
/// events and command errors on the state topic, each with its own `type`,
/// so the rule keeps only telemetry.
pub const RVR_TELEMETRY_SQL: &str = "SELECT ts, imu, accelerometer, gyroscope, locator, color, \
     compass_heading, ambient_light, motor_thermal, topic(3) AS device_name \
     FROM 'the-project/sphero-rvr/+/state' WHERE type = 'telemetry'";
/// The RVR transform's name (the rule's action).
pub const RVR_TELEMETRY_ACTION: &str = "rvr-telemetry";
/// The RVR transform file's text.
pub const RVR_TELEMETRY_TRANSFORM_JSON: &str = include_str!("../../transforms/rvr-telemetry.json");

/// The two rules, hand first.
pub fn rule_configs() -> Vec<RuleConfig> {
    vec![
        RuleConfig {
            name: HAND_STATE_RULE.into(),
            sql: HAND_STATE_SQL.into(),
            action: HAND_STATE_ACTION.into(),
        },
        RuleConfig {
            name: RVR_TELEMETRY_RULE.into(),
            sql: RVR_TELEMETRY_SQL.into(),
            action: RVR_TELEMETRY_ACTION.into(),
        },
    ]
}

/// The hand transform.
pub fn hand_state_transform() -> Result<Transform, TransformSpecError> {
    Transform::from_json(HAND_STATE_TRANSFORM_JSON)
}

/// The RVR telemetry transform.
pub fn rvr_telemetry_transform() -> Result<Transform, TransformSpecError> {
    Transform::from_json(RVR_TELEMETRY_TRANSFORM_JSON)
}

/// Both rules wired to both transforms.
pub fn pipeline() -> Result<Pipeline, PresetError> {
    let rules = RuleSet::from_configs(rule_configs()).map_err(PipelineError::from)?;
    let transforms = vec![hand_state_transform()?, rvr_telemetry_transform()?];
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
