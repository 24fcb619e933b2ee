//! ESP32-S3 bridge firmware logic: MQTT <-> Sphero RVR UART, a D-pad, a
//! maneuver executor closing the loop on the RVR's own sensors, and telemetry.
//!
//! `no_std` + `alloc`; it sees the world only through HAL traits
//! (`embedded_io_async` for the UART, [`twinrig_hal::MqttClient`] for MQTT,
//! [`twinrig_hal::Clock`] and `embedded_hal_async::delay::DelayNs` for time),
//! so the same code runs on the board and against twinrig's RVR twin.
//!
//! ```no_run
//! use embedded_hal_async::delay::DelayNs;
//! use embedded_io_async::{Read, Write};
//! use rvr_bridge::BridgeConfig;
//! use twinrig_hal::{Clock, MqttClient};
//!
//! // On the board: the UART halves, the AWS IoT session, the system timer.
//! async fn firmware<R: Read, W: Write, M: MqttClient, C: Clock, D: DelayNs + Clone>(
//!     uart_rx: R, uart_tx: W, mqtt: &M, clock: &C, delay: D,
//! ) {
//!     let config = BridgeConfig { epoch_offset_s: 1_780_000_000, ..BridgeConfig::default() };
//!     rvr_bridge::run(uart_rx, uart_tx, mqtt, clock, delay, &config).await;
//! }
//! ```
//!
//! Layers: [`run`] (async shell: UART, MQTT, timers) feeds [`Bridge`] (every
//! decision, no I/O, driven directly by unit tests), which uses
//! [`command`] (parsing and validation), [`maneuver`] (control math),
//! [`link`] (RVR sequencing, retries, decoding) and [`messages`] (what is
//! published). Every tunable is in [`BridgeConfig`] with its default.
//!
//! # MQTT contract
//!
//! `{thing}` is the MQTT client id (the AWS IoT thing name); the prefix is
//! [`BridgeConfig::topic_prefix`], `the-project/sphero-rvr` by default.
//!
//! * Commands: subscribe `the-project/sphero-rvr/{thing}/action` (QoS 1). The
//!   bridge subscribes once the RVR is configured, then announces itself
//!   with a `status` message; commands sent before that are not received.
//! * Everything else: publish `the-project/sphero-rvr/{thing}/state`, each a
//!   JSON object with a `"type"`: `telemetry` (QoS 0), `maneuver`, `error`,
//!   `status` (QoS 1). A cloud rule selects with `WHERE type = 'telemetry'`.
//!
//! The command contract is also a JSON Schema, `schema/action.schema.json`
//! in this crate. Every time field is `ts`, unix seconds
//! ([`BridgeConfig::epoch_offset_s`] + device clock), plus `uptime_ms`.
//!
//! ## Commands (`.../action`)
//!
//! Every command is a JSON object of at most 1024 bytes
//! ([`BridgeConfig::max_payload_bytes`]) with an `action` and an optional
//! `id` (a string of 1 to 128 bytes, or an integer, echoed as text in every
//! message about the command; maneuvers without one get `rvr-1`, `rvr-2`,
//! ...). Unknown extra fields (such as `ts`) are ignored. Names are
//! case-sensitive.
//!
//! | action | fields | meaning |
//! |---|---|---|
//! | `drive` | `direction`: `forward` \| `backward` \| `left` \| `right` \| `stop`; `speed`: m/s, 0 < speed <= 2, default 0.3 | D-pad |
//! | `forward` | `distance_m`: 0 < d <= 10; `speed`: m/s, 0.04 <= s <= 1, default 0.4 | drive straight ahead `d` metres, then stop |
//! | `reverse` | as `forward` | drive straight back `d` metres, then stop |
//! | `turn` | `degrees`: non-zero, \|deg\| <= 3600; positive = counter-clockwise (left) | turn in place, then stop |
//! | `cancel` | — | stop now: abort the running maneuver, drop queued ones, stop the D-pad |
//!
//! ```json
//! {"id":"3f2a","action":"forward","distance_m":1.0}
//! {"id":"3f2b","action":"turn","degrees":-90}
//! {"id":"3f2c","action":"drive","direction":"left","speed":0.4}
//! {"id":"3f2d","action":"cancel"}
//! ```
//!
//! ### D-pad semantics (`drive`)
//!
//! A `drive` command drives at once and keeps driving while `drive`
//! commands keep coming: each one restarts a 1 s dead-man timer
//! ([`BridgeConfig::dpad_timeout_ms`]); when it runs out, or on
//! `direction: stop` or `cancel`, the robot stops. A client holding a button
//! should repeat the command every 100-500 ms (the official SDKs re-send
//! drive commands every 100 ms). The bridge re-sends the current drive to
//! the RVR every 200 ms, well inside the RVR's own 2 s command timeout.
//! `forward` / `backward` run both treads at `speed` (`drive_tank_si_units`);
//! `left` / `right` spin in place with the treads at ±`speed` × 0.5
//! ([`BridgeConfig::dpad_turn_ratio`]; 0.3 m/s spins at about 69 deg/s).
//! The treads saturate at about 1.555 m/s on the robot. The D-pad is manual
//! control, so it takes over: a `drive` command ends the running maneuver
//! (reported `cancelled`, reason "overridden by a drive command") and
//! cancels queued ones; a new maneuver stops the D-pad.
//!
//! ### Maneuvers (`forward`, `reverse`, `turn`)
//!
//! One maneuver runs at a time. A maneuver arriving while one runs is
//! **queued** (up to 4 waiting, [`BridgeConfig::queue_len`]) and runs when
//! the previous one has ended and the robot is at rest, so "go forward 1 m
//! then turn left" sent as two quick commands does both. A full queue
//! refuses with `queue_full`; `queue_len = 0` refuses any maneuver while one
//! runs with `busy`. `cancel` empties the queue too (stop means stop).
//!
//! * Distance is closed on the streamed locator: the controller drives the
//!   remaining distance along the line through the start point (in the
//!   start heading's direction) to zero, holding the start yaw with a
//!   heading term plus a cross-track term that steers back onto the line.
//!   Events report the Euclidean locator displacement from the start.
//! * Turns are closed on the streamed IMU yaw, accumulated across the ±180
//!   wrap (so 720 is two turns); the error is wrapped to ±180 per sample.
//! * Both slow down near the goal on a constant-deceleration profile
//!   (0.5 m/s², 180 deg/s²) down to a creep (0.04 m/s, 8 deg/s), stop within
//!   3 mm / 0.5 degrees, and send `drive_stop`.
//! * Drive commands (`drive_rc_si_units`) are refreshed on every streamed
//!   sample (50 ms), well inside the RVR's 2 s timeout.
//! * Timeout: 3 s + 2 × the nominal time (distance / speed, angle / 90 deg/s).
//! * Blocked: less than 2 cm (3 degrees) of progress within 1 s while driving
//!   (a wall): the robot stops, status `blocked`.
//! * Lost data: no locator (distance) or IMU (turn) sample for 300 ms: the
//!   robot stops, status `failed`. A corrupted or lost frame therefore never
//!   leaves the robot driving on a stale command.
//!
//! ## Messages (`.../state`)
//!
//! Maneuver events, in order: `accepted` (`queue_position` 0 = starts now),
//! `started`, `progress` every 0.5 s, then exactly one terminal status:
//! `completed`, `cancelled`, `timeout`, `blocked` or `failed` (with
//! `reason`), sent once the robot is at rest (at most 0.5 s after the stop).
//! A queued maneuver that is cancelled gets `cancelled` without `started`.
//! `measured` is `distance_m` (Euclidean locator displacement, m) or
//! `degrees` (turned, + left); `target` echoes the command.
//!
//! ```json
//! {"type":"maneuver","id":"3f2a","action":"forward","status":"completed",
//!  "target":{"distance_m":1.0},"measured":{"distance_m":0.9982},"elapsed_s":3.25,
//!  "ts":1780000012,"uptime_ms":12034}
//! {"type":"maneuver","id":"3f2b","action":"turn","status":"accepted",
//!  "target":{"degrees":-90.0},"measured":{"degrees":0.0},"elapsed_s":0.0,
//!  "queue_position":1,"ts":1780000012,"uptime_ms":12040}
//! {"type":"maneuver","id":"3f2e","action":"forward","status":"blocked",
//!  "target":{"distance_m":2.0},"measured":{"distance_m":0.4412},"elapsed_s":2.1,
//!  "reason":"no progress for 1000 ms while driving","ts":1780000020,"uptime_ms":20120}
//! ```
//!
//! Errors: a refused command (the robot does not move). `id` and `action`
//! are null when the command had none (or they were invalid); `code` is one
//! of `payload_too_large`, `not_utf8`, `invalid_json`, `not_an_object`,
//! `invalid_id`, `missing_action`, `unknown_action`, `missing_field`,
//! `invalid_value`, `out_of_range`, `busy`, `queue_full`.
//!
//! ```json
//! {"type":"error","id":"3f2f","action":"forward","code":"out_of_range",
//!  "error":"distance_m must be greater than 0 and at most 10","ts":1780000030,"uptime_ms":30001}
//! ```
//!
//! Telemetry: every 1 s while moving (a maneuver running or queued, the
//! D-pad driving, or the robot rolling), every 60 s at rest; the battery is
//! polled with `get_battery_percentage` at each one. Sensor objects are null
//! until the first sample. Units: m, m/s, degrees (+ counter-clockwise),
//! g, deg/s, lux, percent. Locator frame: +y ahead and +x right of the
//! heading at boot. The shape is compatible with the cloud transform that
//! expects `ts, imu, accelerometer, gyroscope, locator, color,
//! compass_heading, ambient_light, motor_thermal` (absent ones default).
//!
//! ```json
//! {"type":"telemetry","ts":1780000013,"uptime_ms":13000,
//!  "pose":{"x":0.0012,"y":0.4521,"yaw":-0.12},
//!  "velocity":{"x":0.0,"y":0.4,"speed":0.4},
//!  "imu":{"pitch":0.0,"roll":0.0,"yaw":-0.12},
//!  "accelerometer":{"x":0.0,"y":0.0,"z":1.0},
//!  "gyroscope":{"x":0.0,"y":0.0,"z":0.3},
//!  "locator":{"x":0.0012,"y":0.4521},
//!  "ambient_light":300.0,"battery":99,
//!  "maneuver":{"id":"3f2a","action":"forward","status":"running","queued":0},
//!  "drive":null,
//!  "link":{"commands_sent":41,"frames_received":260,"parser_errors":0,"retries":0,
//!          "no_response":0,"error_responses":0,"bad_samples":0,"rearms":0}}
//! ```
//!
//! Status, once after boot: `{"type":"status","status":"online",
//! "firmware":"rvr-bridge 0.1.0","boot_failures":[],"ts":..,"uptime_ms":..}`;
//! `boot_failures` names boot commands the RVR never answered.
//!
//! # The RVR side
//!
//! At boot the bridge wakes the RVR (and waits 2 s, as the SDK examples
//! do), clears streaming on both processors, re-zeroes yaw and locator,
//! configures three streaming slots at 32 bits per value — ST token 1: IMU,
//! accelerometer, gyroscope; ST token 2: locator, velocity, speed; Nordic
//! token 3: ambient light — starts streaming at 50 ms on both processors and
//! reads the battery. Every command is sent in the Node.js SDK's addressing
//! (`AddressStyle::TargetAndSource`), which asks for a response to every
//! command: boot commands and stops are retried (3 times, 100 ms timeout)
//! until answered; drive refreshes are not (the next one supersedes them).
//! Failures, retries, parser errors and error responses are counted in
//! telemetry's `link`. If sensor data stops for 2 s while idle (the robot
//! slept, say), the bridge wakes it and sets streaming up again.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod bridge;
pub mod command;
pub mod config;
pub mod link;
pub mod maneuver;
pub mod messages;
mod runtime;

pub use bridge::{Bridge, Output};
pub use command::{
    ACTIONS, Action, CommandError, DIRECTIONS, Direction, ErrorCode, Request, parse_command,
};
pub use config::{BridgeConfig, Topics};
pub use runtime::{VERSION, run};

/// The command contract as a JSON Schema (draft 2020-12).
pub const ACTION_SCHEMA: &str = include_str!("../schema/action.schema.json");

#[cfg(test)]
mod schema_tests {
    use super::*;
    use alloc::vec::Vec;
    use serde_json::Value;

    fn schema() -> Value {
        serde_json::from_str(ACTION_SCHEMA).expect("the schema is JSON")
    }

    fn branch<'a>(s: &'a Value, action: &str) -> &'a Value {
        s["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["properties"]["action"]["const"] == action)
            .unwrap_or_else(|| panic!("no branch for {action}"))
    }

    #[test]
    fn the_schema_lists_every_action_and_direction() {
        let s = schema();
        let consts: Vec<&str> = s["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["properties"]["action"]["const"].as_str().unwrap())
            .collect();
        assert_eq!(consts, ACTIONS);
        let listed: Vec<&str> = s["properties"]["action"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(listed, ACTIONS);
        let directions: Vec<&str> = branch(&s, "drive")["properties"]["direction"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(directions, DIRECTIONS);
    }

    #[test]
    fn the_schema_limits_match_the_defaults_and_its_examples_parse() {
        let s = schema();
        let c = BridgeConfig::default();
        let max = |action: &str, field: &str| {
            branch(&s, action)["properties"][field]["maximum"]
                .as_f64()
                .unwrap() as f32
        };
        assert_eq!(max("forward", "distance_m"), c.max_distance_m);
        assert_eq!(max("reverse", "distance_m"), c.max_distance_m);
        assert_eq!(max("forward", "speed"), c.max_maneuver_speed_mps);
        assert_eq!(max("drive", "speed"), c.max_dpad_speed_mps);
        assert_eq!(max("turn", "degrees"), c.max_turn_deg);
        let min_speed = branch(&s, "forward")["properties"]["speed"]["minimum"]
            .as_f64()
            .unwrap() as f32;
        assert_eq!(min_speed, c.min_speed_mps);
        for example in s["examples"].as_array().unwrap() {
            let bytes = serde_json::to_vec(example).unwrap();
            assert!(parse_command(&bytes, &c).is_ok(), "{example}");
        }
    }
}
