//! Cat feeder firmware logic: click events over MQTT run the bowl motors;
//! the hopper level is published every loop turn.
//!
//! The real device (`SYSTEMS.md` §4 of the project's reference): an Arduino
//! sketch on an ESP32-C3, an L298N driver with two DC motors (left bowl,
//! right bowl) on a 12 V 2 A supply. It connects to AWS IoT with client id =
//! thing name, subscribes to `cat-feeder/action` and publishes to
//! `cat-feeder/states`. Click events come from a Seeed AWS IoT button via a
//! Lambda or an EventBridge rule.
//!
//! `no_std` + `alloc`; it sees the world only through HAL traits
//! ([`twinrig_hal::MqttClient`], [`twinrig_hal::Clock`],
//! `embedded_hal_async::delay::DelayNs`, `embedded_hal::digital::OutputPin`
//! for the motors, [`twinrig_hal::LevelSensor`] for the hopper), so the same
//! code runs on the board and against a twin.
//!
//! ```no_run
//! use cat_feeder_firmware::{FeederConfig, Hardware};
//! use embedded_hal::digital::OutputPin;
//! use embedded_hal_async::delay::DelayNs;
//! use twinrig_hal::{Clock, LevelSensor, MqttClient};
//!
//! async fn firmware<M, C, D, L, R, S>(mqtt: &M, clock: &C, delay: D, left: L, right: R, level: S)
//! where
//!     M: MqttClient, C: Clock, D: DelayNs + Clone, L: OutputPin, R: OutputPin, S: LevelSensor,
//! {
//!     let config = FeederConfig { device_location: "kitchen".into(), ..FeederConfig::default() };
//!     let hardware = Hardware { left_motor: left, right_motor: right, level_sensor: level };
//!     if let Err(e) = cat_feeder_firmware::run(mqtt, clock, delay, hardware, &config).await {
//!         // A bad topic or thing name: nothing was touched.
//!         let _ = e;
//!     }
//! }
//! ```
//!
//! Layers: [`run`] (async shell: MQTT, pins, sensor, delays) carries out the
//! [`Step`]s of [`Feeder`] (every decision, no I/O, driven directly by unit
//! tests), which uses [`action`] (parsing) and [`messages`] (what is
//! published). Every setting is in [`FeederConfig`] with its default.
//!
//! # MQTT contract
//!
//! Topics default to the reference's, `cat-feeder/action` and
//! `cat-feeder/states`, shared by every feeder of an account. A twin that
//! runs several feeders on one broker gives each its own with
//! [`FeederConfig::per_device`] (`cat-feeder/{thing}/action`, ...) or any
//! template with `{thing}`; `{thing}` is [`FeederConfig::thing_name`] or,
//! unset, the MQTT client id.
//!
//! ## Actions (`.../action`)
//!
//! `{"event": "SINGLE" | "DOUBLE" | "LONG"}`, at most 256 bytes
//! ([`FeederConfig::max_payload_bytes`]); extra fields are ignored, the name
//! is case-sensitive. SINGLE runs the left motor, DOUBLE the right, LONG
//! both at once.
//!
//! ## Messages (`.../states`)
//!
//! Every message is a JSON object with a `type`. The reference publishes
//! only the state; `type`, `fed` and `error` are this firmware's additions
//! so a twin (and a cloud rule, with `WHERE type = 'state'`) can tell them
//! apart. `food_capacity` and `device_location` keep the reference's names
//! and meaning.
//!
//! State, once per loop turn (QoS 0):
//!
//! ```json
//! {"type":"state","food_capacity":73,"device_location":"kitchen","feeds":2,
//!  "motors":{"left":"off","right":"off"},"rejected":1,"ts":1780000018,"uptime_ms":18000}
//! ```
//!
//! `food_capacity` is the hopper level, an integer percent 0-100; when the
//! sensor gives no valid reading it is `null` and `level_error` (present
//! only then) says why: `timeout`, `fault`, `out_of_range` (above 100).
//! `feeds` counts completed feeds, `rejected` refused payloads, both since
//! boot. `motors` is the pins as last driven ("on" after a pin failure: it
//! may still run). Because nothing is published while a feed runs, a state
//! shows "on" only when a pin failed.
//!
//! Fed, when a feed ends (QoS 1; the reference prints "fed" on its serial
//! port at this point):
//!
//! ```json
//! {"type":"fed","event":"LONG","bowls":["left","right"],"feeds":3,
//!  "started_ms":3000,"ts":1780000015,"uptime_ms":15000}
//! ```
//!
//! Error, for a refused payload (at the moment it is handled, in order with
//! the feeds) or a motor pin failure (QoS 1); `event` is null for payloads:
//!
//! ```json
//! {"type":"error","code":"unknown_event",
//!  "error":"unknown event \"TRIPLE\" (expected SINGLE, DOUBLE or LONG)",
//!  "event":null,"ts":1780000003,"uptime_ms":3000}
//! ```
//!
//! Codes: `payload_too_large`, `not_utf8`, `invalid_json` (also empty, or
//! nested deeper than 8 levels), `not_an_object`, `missing_event`,
//! `invalid_event` (not a string), `unknown_event`, `motor_pin`. The
//! reference ignores bad payloads silently; a careful firmware says why it
//! did nothing, as every twinrig device does, and keeps going.
//!
//! `ts` is unix seconds ([`FeederConfig::epoch_offset_s`] + device clock),
//! `uptime_ms` the device clock.
//!
//! # Timing: the loop blocks, exactly as the reference does
//!
//! The reference's loop publishes a state, services MQTT (`client.loop()`)
//! and sleeps 3 s. The feed runs inside the MQTT message callback: pins
//! high, `delay(10000)`, all low, `delay(2000)`, "fed". So while a feed runs
//! the whole loop is blocked for 12 s: no state, no MQTT service (and with
//! it no keep-alive), no other message. This firmware does the same:
//!
//! * A turn: state at `t`, the feeds of the waiting messages, then the
//!   3 s sleep. Idle states come every 3 s; a turn with one feed takes
//!   15 s (state at `t`, motors on at `t`, off at `t + 10 s`, `fed` at
//!   `t + 12 s`, next state at `t + 15 s`).
//! * A message arriving while the loop sleeps or feeds waits (in the MQTT
//!   session and the firmware's inbox) until the next service, so an event
//!   is handled up to 3 s after it arrives, and up to 15 s when a feed is
//!   running. Messages are handled in arrival order, never concurrently.
//! * Which waiting messages one service handles is
//!   [`FeederConfig::servicing`]: by default every message waiting when the
//!   service starts (256dpi/arduino-mqtt's `loop()`), back to back with no
//!   state between them; messages arriving during those feeds wait for the
//!   next turn. [`Servicing::OnePerTurn`] handles one per turn
//!   (PubSubClient's `loop()`). A service never takes more than the
//!   firmware holds ([`FeederConfig::inbox_len`], default 16); the rest
//!   wait in the session and none is lost.
//! * Example, default settings: SINGLE at 1 s and DOUBLE at 5 s give states
//!   at 0 and 3 s, the left motor 3-13 s, `fed` at 15 s, a state at 18 s,
//!   the right motor 18-28 s, `fed` at 30 s, a state at 33 s.
//! * A message delivered at the very instant a service starts may be
//!   handled in that service or the next one (the two tasks' order at one
//!   instant).
//!
//! The twin (`cat-feeder-twin`, device kind `cat_feeder`) runs this crate
//! unmodified, so scenarios see exactly this blocking; the twin does not
//! model it again.
//!
//! Keep-alive is the MQTT session's business in the HAL, so this crate
//! cannot reproduce what a blocked `client.loop()` does to the connection.
//! On the board the Arduino client sends its PINGREQ only from `loop()`.
//! Assuming arduino-mqtt (default keep-alive 10 s), the reference sends
//! nothing from the state before a feed to the state after it, 15 s later
//! (this firmware's `fed` at 12 s is its own addition), and AWS IoT drops a
//! client silent for 1.5 x its keep-alive: one feed is at the limit, two
//! waiting events go past it. A twin that models that disconnect has to
//! judge the device's silence from what it publishes.
//!
//! # Hardware and what the firmware cannot see
//!
//! Each motor is one L298N input pin ([`Hardware`]): the reference only
//! drives pins high or low, so one pin per motor carries everything (the
//! channel's other input low and its enable high are assumed wiring). The
//! hopper level is a [`twinrig_hal::LevelSensor`] percent: the reference
//! firmware has no sensor (its test script published random values), so
//! the sensor and its placement are assumed. Drive is open loop: without a
//! current sensor the firmware cannot tell a jammed motor from a running
//! one, so a jam is a twin fault that only the bowls and the hopper level
//! show (this firmware does not compare the level before and after a feed;
//! the reference does not either). What it can see is a pin that fails to
//! set: a failure to drive high aborts the feed (all low, a `motor_pin`
//! error, no `fed`); a failure to drive low is reported at once, the state
//! shows the motor "on", and "all low" is tried again each turn.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod action;
pub mod config;
pub mod feeder;
pub mod messages;
mod runtime;

#[cfg(test)]
mod feeder_tests;
#[cfg(test)]
mod runtime_tests;

pub use action::{ActionError, ErrorCode, Event, parse_action};
pub use config::{ConfigError, FeederConfig, Servicing, Topics};
pub use feeder::{Feeder, InboxFull, Motor, Motors, Step};
pub use runtime::{Hardware, VERSION, run};
