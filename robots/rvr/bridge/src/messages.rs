//! What the bridge publishes on `{prefix}/{thing}/state`: every message is a
//! JSON object with a `"type"` field (`telemetry`, `maneuver`, `error`,
//! `status`). The crate docs show each shape.

use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;

/// Rounds to `decimals` places (keeps payloads short and readable).
pub(crate) fn round(x: f32, decimals: i32) -> f32 {
    let scale = libm::powf(10.0, decimals as f32);
    libm::roundf(x * scale) / scale
}

/// Distances and speeds: 0.1 mm.
pub(crate) fn m(x: f32) -> f32 {
    round(x, 4)
}

/// Angles and rates: 0.01 degree.
pub(crate) fn deg(x: f32) -> f32 {
    round(x, 2)
}

/// `"type":"error"`: a refused command.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorMessage<'a> {
    /// Always `"error"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The command's id, or null.
    pub id: Option<&'a str>,
    /// The command's action if it named a known one, or null.
    pub action: Option<&'a str>,
    /// Machine-readable reason ([`crate::command::ErrorCode::as_str`]).
    pub code: &'a str,
    /// Human-readable reason.
    pub error: &'a str,
    /// Unix seconds.
    pub ts: u64,
    /// Device clock, ms since boot.
    pub uptime_ms: u64,
}

/// A maneuver's target or measurement: `distance_m` for forward/reverse,
/// `degrees` for turns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Amount {
    /// Metres (forward / reverse).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f32>,
    /// Degrees, + counter-clockwise (turn).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degrees: Option<f32>,
}

/// `"type":"maneuver"`: one status event of one maneuver.
#[derive(Debug, Clone, Serialize)]
pub struct ManeuverEvent<'a> {
    /// Always `"maneuver"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The maneuver's id.
    pub id: &'a str,
    /// `forward`, `reverse` or `turn`.
    pub action: &'static str,
    /// `accepted`, `started`, `progress`, `completed`, `cancelled`,
    /// `timeout`, `blocked` or `failed`.
    pub status: &'static str,
    /// What was asked.
    pub target: Amount,
    /// What the sensors measured so far (Euclidean locator displacement
    /// from the start; yaw turned, counted across the ±180 wrap).
    pub measured: Amount,
    /// Seconds since it started (0 before it starts).
    pub elapsed_s: f32,
    /// Why it ended this way (cancelled, timeout, blocked, failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// `accepted` only: 0 = starts now, n = waits behind n others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// Unix seconds.
    pub ts: u64,
    /// Device clock, ms since boot.
    pub uptime_ms: u64,
}

/// `pose` of the telemetry: locator position and IMU yaw.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Pose {
    /// m, + right of the heading at boot.
    pub x: f32,
    /// m, + ahead of the heading at boot.
    pub y: f32,
    /// deg, + counter-clockwise from the heading at boot.
    pub yaw: f32,
}

/// `velocity` of the telemetry.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Velocity {
    /// m/s, locator frame.
    pub x: f32,
    /// m/s, locator frame.
    pub y: f32,
    /// m/s, magnitude.
    pub speed: f32,
}

/// `imu` of the telemetry, degrees.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Imu {
    /// Pitch, deg.
    pub pitch: f32,
    /// Roll, deg.
    pub roll: f32,
    /// Yaw, deg.
    pub yaw: f32,
}

/// A three-axis reading (accelerometer g, gyroscope deg/s).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Xyz {
    /// x.
    pub x: f32,
    /// y.
    pub y: f32,
    /// z.
    pub z: f32,
}

/// A planar reading (locator, m).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Xy {
    /// x.
    pub x: f32,
    /// y.
    pub y: f32,
}

/// `maneuver` of the telemetry: the running maneuver.
#[derive(Debug, Clone, Serialize)]
pub struct ManeuverState<'a> {
    /// Its id.
    pub id: &'a str,
    /// `forward`, `reverse` or `turn`.
    pub action: &'static str,
    /// `running` or `stopping`.
    pub status: &'static str,
    /// Maneuvers waiting behind it.
    pub queued: usize,
}

/// `drive` of the telemetry: the D-pad while it drives.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DriveState {
    /// `forward`, `backward`, `left` or `right`.
    pub direction: &'static str,
    /// m/s.
    pub speed: f32,
}

/// `link` of the telemetry: health of the UART link to the RVR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// Commands written to the RVR (retries included).
    pub commands_sent: u32,
    /// Intact frames received.
    pub frames_received: u32,
    /// Frames (or runs of stray bytes) the parser dropped.
    pub parser_errors: u32,
    /// Retries of commands that got no response in time.
    pub retries: u32,
    /// Commands that never got a response (after their retries, if any).
    pub no_response: u32,
    /// Error responses from the RVR.
    pub error_responses: u32,
    /// Streaming notifications that did not decode against their slot.
    pub bad_samples: u32,
    /// Times the bridge set streaming up again after the data stopped.
    pub rearms: u32,
}

/// `"type":"telemetry"`. Sensor fields are null until the first sample.
#[derive(Debug, Clone, Serialize)]
pub struct Telemetry<'a> {
    /// Always `"telemetry"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Unix seconds.
    pub ts: u64,
    /// Device clock, ms since boot.
    pub uptime_ms: u64,
    /// Locator x, y (m) and IMU yaw (deg).
    pub pose: Option<Pose>,
    /// Velocity (m/s).
    pub velocity: Option<Velocity>,
    /// Attitude (deg).
    pub imu: Option<Imu>,
    /// Accelerometer (g).
    pub accelerometer: Option<Xyz>,
    /// Gyroscope (deg/s).
    pub gyroscope: Option<Xyz>,
    /// Locator (m).
    pub locator: Option<Xy>,
    /// Ambient light (lux).
    pub ambient_light: Option<f32>,
    /// Battery, percent.
    pub battery: Option<u8>,
    /// The running maneuver, or null.
    pub maneuver: Option<ManeuverState<'a>>,
    /// The D-pad drive, or null.
    pub drive: Option<DriveState>,
    /// Link health counters.
    pub link: LinkStats,
}

/// `"type":"status"`: published once the bridge is online.
#[derive(Debug, Clone, Serialize)]
pub struct Status<'a> {
    /// Always `"status"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `online`.
    pub status: &'static str,
    /// `rvr-bridge <version>`.
    pub firmware: &'a str,
    /// Boot commands the RVR never answered (empty when all went well).
    pub boot_failures: Vec<&'static str>,
    /// Unix seconds.
    pub ts: u64,
    /// Device clock, ms since boot.
    pub uptime_ms: u64,
}

/// Serialises a message (these types cannot fail to serialise).
pub(crate) fn to_json<T: Serialize>(message: &T) -> String {
    serde_json::to_string(message).unwrap_or_default()
}
