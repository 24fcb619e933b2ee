//! Every tunable of the bridge, with its default and why.

use alloc::string::String;

/// Settings of the bridge firmware. Start from [`BridgeConfig::default`] and
/// override fields (`BridgeConfig { queue_len: 0, ..Default::default() }`).
///
/// Units are in the field names: `_ms` milliseconds, `_mps` m/s, `_mps2`
/// m/s², `_dps` deg/s, `_dps2` deg/s², `_m` metres, `_deg` degrees.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConfig {
    // ---- MQTT ----
    /// Topic prefix: commands arrive on `{prefix}/{thing}/action`, everything
    /// is published on `{prefix}/{thing}/state`. Default `the-project/sphero-rvr`.
    pub topic_prefix: String,
    /// Largest command payload parsed, bytes (default 1024); longer ones are
    /// answered with a `payload_too_large` error without being parsed.
    pub max_payload_bytes: usize,
    /// Maneuvers that may wait behind the running one (default 4). A maneuver
    /// arriving when the queue is full is refused with `queue_full`; with 0,
    /// any maneuver arriving while one runs is refused with `busy`.
    pub queue_len: usize,
    /// Unix time = `epoch_offset_s` + clock seconds; stands in for SNTP
    /// (default 0: `ts` is then seconds since boot).
    pub epoch_offset_s: u64,

    // ---- RVR link ----
    /// Sensor streaming period, ms (default 50; the SDKs refuse < 33). Maneuver
    /// drive commands are refreshed at this rate too.
    pub stream_period_ms: u16,
    /// How long to wait for a command's response before retrying, ms (default 100).
    pub response_timeout_ms: u32,
    /// Retries of a command that must get through (boot commands, stops) when
    /// no response came (default 3). Drive refreshes are never retried: the
    /// next refresh supersedes them.
    pub command_retries: u8,
    /// Pause after `wake` before anything else, ms (default 2000, as the
    /// official SDK examples do).
    pub wake_settle_ms: u32,
    /// With no sensor data for this long while idle, the bridge wakes the RVR
    /// and sets streaming up again (default 2000; at most once per 5 s).
    pub rearm_after_ms: u32,

    // ---- Telemetry ----
    /// Telemetry period while driving (maneuver, D-pad or wheels turning), ms
    /// (default 1000).
    pub telemetry_moving_ms: u32,
    /// Telemetry period at rest, ms (default 60000).
    pub telemetry_idle_ms: u32,

    // ---- D-pad ----
    /// The D-pad stops the robot when no `drive` command came for this long,
    /// ms (default 1000: a client holding a button repeats it every 100-500 ms).
    pub dpad_timeout_ms: u32,
    /// How often the current D-pad drive is re-sent to the RVR, ms (default 200).
    pub dpad_refresh_ms: u32,
    /// `speed` when a `drive` command gives none, m/s (default 0.3).
    pub dpad_default_speed_mps: f32,
    /// Largest D-pad `speed`, m/s (default 2.0, the RVR's linear limit; each
    /// tread saturates at about 1.555 m/s on the robot).
    pub max_dpad_speed_mps: f32,
    /// Tread speed of a D-pad left/right spin as a fraction of `speed`
    /// (default 0.5: 0.3 m/s spins at about 69 deg/s).
    pub dpad_turn_ratio: f32,

    // ---- Distance maneuvers (forward / reverse) ----
    /// Cruise speed when a maneuver gives no `speed`, m/s (default 0.4).
    pub cruise_speed_mps: f32,
    /// Largest maneuver `speed`, m/s (default 1.0).
    pub max_maneuver_speed_mps: f32,
    /// Creep speed the slow-down never goes below, m/s (default 0.04).
    pub min_speed_mps: f32,
    /// Slow-down profile: speed = sqrt(2 * decel * remaining), m/s² (default 0.5).
    pub decel_mps2: f32,
    /// Arrival: remaining distance at or below this stops the robot, m (default 0.003).
    pub distance_tolerance_m: f32,
    /// Heading hold: yaw-rate command per degree of heading error, 1/s (default 4).
    pub heading_gain: f32,
    /// Largest heading-hold yaw rate, deg/s (default 30).
    pub max_steer_dps: f32,
    /// Cross-track correction: degrees of heading offset per metre off the
    /// line (default 300, so 1 cm steers 3 degrees back).
    pub cross_track_gain_deg_per_m: f32,
    /// Largest cross-track heading offset, deg (default 10).
    pub max_cross_track_deg: f32,
    /// Longest `distance_m` accepted, m (default 10).
    pub max_distance_m: f32,

    // ---- Turns ----
    /// Turn rate, deg/s (default 90).
    pub turn_rate_dps: f32,
    /// Creep rate near the goal, deg/s (default 8).
    pub min_turn_rate_dps: f32,
    /// Slow-down profile: rate = sqrt(2 * decel * remaining), deg/s² (default 180).
    pub turn_decel_dps2: f32,
    /// Arrival: remaining angle at or below this stops the robot, deg (default 0.5).
    pub angle_tolerance_deg: f32,
    /// Largest `|degrees|` accepted (default 3600: ten full turns).
    pub max_turn_deg: f32,

    // ---- Supervision ----
    /// Maneuver timeout = base + factor * nominal time (distance / speed or
    /// angle / rate); base in ms (default 3000).
    pub maneuver_timeout_base_ms: u32,
    /// See [`BridgeConfig::maneuver_timeout_base_ms`] (default 2.0).
    pub maneuver_timeout_factor: f32,
    /// Period of `progress` events, ms (default 500).
    pub progress_period_ms: u32,
    /// A maneuver stops and fails when the sensor stream it closes the loop
    /// on is silent this long, ms (default 300: six 50 ms periods).
    pub stream_timeout_ms: u32,
    /// Blocked: less progress than the minimum within this window while
    /// driving, ms (default 1000).
    pub blocked_window_ms: u32,
    /// Least locator progress per window, m (default 0.02).
    pub blocked_min_progress_m: f32,
    /// Least yaw progress per window during a turn, deg (default 3).
    pub blocked_min_progress_deg: f32,
    /// After the stop, the final measurement waits for rest at most this long,
    /// ms (default 500).
    pub settle_timeout_ms: u32,
    /// At rest: streamed speed below this, m/s (default 0.01) ...
    pub rest_speed_mps: f32,
    /// ... and yaw rate below this, deg/s (default 2).
    pub rest_rate_dps: f32,
    /// Housekeeping period of the main loop, ms (default 10): timeouts are
    /// checked at least this often.
    pub tick_ms: u32,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            topic_prefix: String::from("the-project/sphero-rvr"),
            max_payload_bytes: 1024,
            queue_len: 4,
            epoch_offset_s: 0,
            stream_period_ms: 50,
            response_timeout_ms: 100,
            command_retries: 3,
            wake_settle_ms: 2000,
            rearm_after_ms: 2000,
            telemetry_moving_ms: 1000,
            telemetry_idle_ms: 60_000,
            dpad_timeout_ms: 1000,
            dpad_refresh_ms: 200,
            dpad_default_speed_mps: 0.3,
            max_dpad_speed_mps: 2.0,
            dpad_turn_ratio: 0.5,
            cruise_speed_mps: 0.4,
            max_maneuver_speed_mps: 1.0,
            min_speed_mps: 0.04,
            decel_mps2: 0.5,
            distance_tolerance_m: 0.003,
            heading_gain: 4.0,
            max_steer_dps: 30.0,
            cross_track_gain_deg_per_m: 300.0,
            max_cross_track_deg: 10.0,
            max_distance_m: 10.0,
            turn_rate_dps: 90.0,
            min_turn_rate_dps: 8.0,
            turn_decel_dps2: 180.0,
            angle_tolerance_deg: 0.5,
            max_turn_deg: 3600.0,
            maneuver_timeout_base_ms: 3000,
            maneuver_timeout_factor: 2.0,
            progress_period_ms: 500,
            stream_timeout_ms: 300,
            blocked_window_ms: 1000,
            blocked_min_progress_m: 0.02,
            blocked_min_progress_deg: 3.0,
            settle_timeout_ms: 500,
            rest_speed_mps: 0.01,
            rest_rate_dps: 2.0,
            tick_ms: 10,
        }
    }
}

/// The two topics of one bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Where commands arrive: `{prefix}/{thing}/action`.
    pub action: String,
    /// Where everything is published: `{prefix}/{thing}/state`.
    pub state: String,
}

impl Topics {
    /// The topics of thing `thing` under `prefix`.
    pub fn new(prefix: &str, thing: &str) -> Topics {
        Topics {
            action: alloc::format!("{prefix}/{thing}/action"),
            state: alloc::format!("{prefix}/{thing}/state"),
        }
    }
}

pub(crate) const MS: u64 = 1_000_000;

pub(crate) fn ms(v: u32) -> u64 {
    u64::from(v) * MS
}
