//! The cloud rule and transform the `rvr` kind contributes
//! ([`twinrig_kind::DeviceKind::rule_presets`]).
//!
//! The real stack (`cdk-iot-sphero-rvr-streaming`) is not public; the talk
//! describes it as the hand's twin, so the rule follows the hand rule's
//! shape on twinrig's topic contract and the transform
//! (`rules/rvr-telemetry.json`) flattens the telemetry fields the January
//! 2026 post lists. Rule name, field names and nesting are twinrig's own
//! (assumed), records of kind `RvrTelemetry`.
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

use twinrig_cloud::rules::{RuleConfig, Transform, TransformSpecError};
use twinrig_kind::RulePreset;

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
pub const RVR_TELEMETRY_TRANSFORM_JSON: &str = include_str!("../rules/rvr-telemetry.json");

/// The RVR telemetry transform.
pub fn rvr_telemetry_transform() -> Result<Transform, TransformSpecError> {
    Transform::from_json(RVR_TELEMETRY_TRANSFORM_JSON)
}

/// The kind's presets: the telemetry rule.
pub fn presets() -> Vec<RulePreset> {
    vec![RulePreset {
        rule: RuleConfig {
            name: RVR_TELEMETRY_RULE.into(),
            sql: RVR_TELEMETRY_SQL.into(),
            action: RVR_TELEMETRY_ACTION.into(),
        },
        transform_json: RVR_TELEMETRY_TRANSFORM_JSON,
    }]
}
