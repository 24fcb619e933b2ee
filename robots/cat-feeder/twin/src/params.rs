//! A `cat_feeder` device's parameters (the scenario's `params`).
//!
//! Every parameter has a default; the firmware's timing defaults are the
//! reference's (10 s motor run, 2 s pause, 3 s loop sleep). Facts the
//! reference does not give are marked "assumed" and are parameters.

use cat_feeder_firmware::{FeederConfig, Servicing};
use schemars::JsonSchema;
use serde::Deserialize;
use twinrig_hal::QoS;
use twinrig_kind::{Params, ParamsError};

/// Most treats a hopper may hold: each dispensed treat is a rapier body
/// that stays in the world, so this bounds a feeder's bodies.
pub const MAX_HOPPER_CAPACITY: u32 = 500;

/// Which bowl (and its motor): left = SINGLE, right = DOUBLE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bowl {
    /// The left bowl, seen from the front (at `x - bowl_spacing_m / 2`).
    Left,
    /// The right bowl (at `x + bowl_spacing_m / 2`).
    Right,
}

impl Bowl {
    /// Both, left first.
    pub const BOTH: [Bowl; 2] = [Bowl::Left, Bowl::Right];

    /// Its name in state documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Bowl::Left => "left",
            Bowl::Right => "right",
        }
    }

    /// 0 for left, 1 for right.
    pub fn index(self) -> usize {
        match self {
            Bowl::Left => 0,
            Bowl::Right => 1,
        }
    }
}

/// The MQTT topics the firmware uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TopicShape {
    /// `cat-feeder/action` and `cat-feeder/states`, shared by every feeder
    /// (the reference's): every feeder on the broker gets every event.
    #[default]
    Reference,
    /// `cat-feeder/{id}/action` and `cat-feeder/{id}/states`: one pair per
    /// feeder, for scenarios with several feeders that must feed apart.
    PerDevice,
}

/// How many waiting events one MQTT service handles (the firmware's
/// [`Servicing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServicingParam {
    /// Every waiting event (256dpi/arduino-mqtt; assumed, the default).
    #[default]
    AllWaiting,
    /// One event per loop turn (PubSubClient).
    OnePerTurn,
}

/// Parameters of a cat feeder.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeederParams {
    /// Position of the feeder's centre on the floor, x (m).
    #[serde(default)]
    pub x: f32,
    /// Position, y (m).
    #[serde(default)]
    pub y: f32,
    /// Distance between the bowls' centres (m). Default 0.3 (assumed).
    #[serde(default = "default_bowl_spacing")]
    pub bowl_spacing_m: f32,
    /// `device_location` in every state (the reference's field; its value
    /// is configured per device). Default `home` (assumed).
    #[serde(default = "default_location")]
    pub device_location: String,
    /// The topics (default: the reference's).
    #[serde(default)]
    pub topics: TopicShape,
    /// QoS of the action subscription, 0 or 1. Default 0, as the Arduino
    /// MQTT libraries subscribe (assumed); with 0 an event sent during a
    /// link outage is lost, with 1 it waits for the link.
    #[serde(default)]
    pub action_qos: u8,
    /// How many waiting events one MQTT service takes.
    #[serde(default)]
    pub servicing: ServicingParam,
    /// How long a feed runs its motors, ms. Default 10000 (the reference's
    /// `delay(10000)`).
    #[serde(default = "default_motor_run")]
    pub motor_run_ms: u32,
    /// The pause after the motors stop, before `fed`, ms. Default 2000
    /// (the reference's `delay(2000)`).
    #[serde(default = "default_after_feed")]
    pub after_feed_pause_ms: u32,
    /// The sleep at the end of each loop turn, ms: the state period when
    /// idle. Default 3000 (the reference's `delay(3000)`).
    #[serde(default = "default_state_period")]
    pub state_period_ms: u32,
    /// Treats a running motor releases per second. Default 0.5 (assumed:
    /// the reference gives no auger rate; 5 treats per 10 s feed keeps a
    /// scenario's bodies few).
    #[serde(default = "default_rate")]
    pub treats_per_second: f64,
    /// Treats the full hopper holds, at most [`MAX_HOPPER_CAPACITY`].
    /// Default 40 (assumed). `food_capacity` is the treats left as a
    /// percent of this, rounded down.
    #[serde(default = "default_capacity")]
    pub hopper_capacity: u32,
    /// Treats in the hopper at boot (default: full).
    #[serde(default)]
    pub hopper_treats: Option<u32>,
    /// Motors that are jammed from boot: their pin goes high but the motor
    /// does not turn, so nothing is dispensed. The firmware cannot tell
    /// (no current sensing); only the bowls and the hopper level show it.
    #[serde(default)]
    pub jammed: Vec<Bowl>,
}

fn default_bowl_spacing() -> f32 {
    0.3
}
fn default_location() -> String {
    FeederConfig::default().device_location
}
fn default_motor_run() -> u32 {
    FeederConfig::default().motor_run_ms
}
fn default_after_feed() -> u32 {
    FeederConfig::default().after_feed_pause_ms
}
fn default_state_period() -> u32 {
    FeederConfig::default().loop_sleep_ms
}
fn default_rate() -> f64 {
    0.5
}
fn default_capacity() -> u32 {
    40
}

impl Default for FeederParams {
    fn default() -> Self {
        FeederParams {
            x: 0.0,
            y: 0.0,
            bowl_spacing_m: default_bowl_spacing(),
            device_location: default_location(),
            topics: TopicShape::default(),
            action_qos: 0,
            servicing: ServicingParam::default(),
            motor_run_ms: default_motor_run(),
            after_feed_pause_ms: default_after_feed(),
            state_period_ms: default_state_period(),
            treats_per_second: default_rate(),
            hopper_capacity: default_capacity(),
            hopper_treats: None,
            jammed: Vec::new(),
        }
    }
}

impl Params for FeederParams {
    /// Checks values the types allow but the twin cannot use.
    fn check(&self) -> Result<(), ParamsError> {
        for (name, v) in [("x", self.x), ("y", self.y)] {
            if !v.is_finite() {
                return Err(ParamsError::at(
                    name,
                    format!("{name} must be finite, got {v}"),
                ));
            }
        }
        if !(self.bowl_spacing_m.is_finite() && (0.15..=10.0).contains(&self.bowl_spacing_m)) {
            // Closer than 0.15 m the bowls (0.13 m wide) would overlap.
            return Err(ParamsError::at(
                "bowl_spacing_m",
                format!(
                    "bowl_spacing_m must be between 0.15 and 10 m, got {}",
                    self.bowl_spacing_m
                ),
            ));
        }
        if self.action_qos > 1 {
            return Err(ParamsError::at(
                "action_qos",
                format!("action_qos must be 0 or 1, got {}", self.action_qos),
            ));
        }
        if !(self.treats_per_second.is_finite()
            && self.treats_per_second > 0.0
            && self.treats_per_second <= 100.0)
        {
            return Err(ParamsError::at(
                "treats_per_second",
                format!(
                    "treats_per_second must be > 0 and at most 100, got {}",
                    self.treats_per_second
                ),
            ));
        }
        if self.hopper_capacity == 0 || self.hopper_capacity > MAX_HOPPER_CAPACITY {
            return Err(ParamsError::at(
                "hopper_capacity",
                format!(
                    "hopper_capacity must be 1 to {MAX_HOPPER_CAPACITY} (each treat is a physics body), got {}",
                    self.hopper_capacity
                ),
            ));
        }
        if let Some(t) = self.hopper_treats
            && t > self.hopper_capacity
        {
            return Err(ParamsError::at(
                "hopper_treats",
                format!(
                    "hopper_treats ({t}) is more than hopper_capacity ({})",
                    self.hopper_capacity
                ),
            ));
        }
        if self.state_period_ms == 0 {
            return Err(ParamsError::at(
                "state_period_ms",
                "state_period_ms must be at least 1",
            ));
        }
        if self.device_location.len() > 128 {
            return Err(ParamsError::at(
                "device_location",
                "device_location is longer than 128 bytes",
            ));
        }
        self.firmware_config(0)
            .check()
            .map_err(|e| ParamsError::whole(e.to_string()))
    }
}

impl FeederParams {
    /// Treats in the hopper at boot.
    pub fn initial_treats(&self) -> u32 {
        self.hopper_treats.unwrap_or(self.hopper_capacity)
    }

    /// Whether `bowl`'s motor is jammed.
    pub fn is_jammed(&self, bowl: Bowl) -> bool {
        self.jammed.contains(&bowl)
    }

    /// The firmware's settings for these parameters.
    pub fn firmware_config(&self, epoch_unix_s: u64) -> FeederConfig {
        let base = match self.topics {
            TopicShape::Reference => FeederConfig::default(),
            TopicShape::PerDevice => FeederConfig::per_device("cat-feeder"),
        };
        FeederConfig {
            action_qos: if self.action_qos == 1 {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            },
            servicing: match self.servicing {
                ServicingParam::AllWaiting => Servicing::AllWaiting,
                ServicingParam::OnePerTurn => Servicing::OnePerTurn,
            },
            loop_sleep_ms: self.state_period_ms,
            motor_run_ms: self.motor_run_ms,
            after_feed_pause_ms: self.after_feed_pause_ms,
            device_location: self.device_location.clone(),
            epoch_offset_s: epoch_unix_s,
            ..base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use twinrig_kind::DeviceSpec;

    fn parse(v: Value) -> Result<FeederParams, ParamsError> {
        let spec = DeviceSpec::parse::<FeederParams>(v.as_object().unwrap())?;
        Ok(spec.params::<FeederParams>().unwrap().clone())
    }

    #[test]
    fn defaults_are_the_references_timing() {
        let p = parse(json!({})).unwrap();
        assert_eq!(p, FeederParams::default());
        let c = p.firmware_config(1_767_225_600);
        assert_eq!(
            (c.motor_run_ms, c.after_feed_pause_ms, c.loop_sleep_ms),
            (10_000, 2_000, 3_000)
        );
        assert_eq!(c.action_topic, "cat-feeder/action");
        assert_eq!(c.states_topic, "cat-feeder/states");
        assert_eq!(c.epoch_offset_s, 1_767_225_600);
        assert_eq!(p.initial_treats(), 40);
        let per = parse(json!({"topics": "per_device", "action_qos": 1, "jammed": ["left"]}))
            .unwrap()
            .firmware_config(0);
        assert_eq!(per.topics("f1").unwrap().action, "cat-feeder/f1/action");
        assert_eq!(per.action_qos, QoS::AtLeastOnce);
    }

    #[test]
    fn bad_params_are_refused_naming_the_param() {
        for (params, name) in [
            (json!({"hopper_capacity": 0}), "hopper_capacity"),
            (json!({"hopper_capacity": 501}), "hopper_capacity"),
            (json!({"hopper_capacity": "lots"}), "hopper_capacity"),
            (json!({"hopper_capacity": -3}), "hopper_capacity"),
            (json!({"hopper_treats": 41}), "hopper_treats"),
            (json!({"treats_per_second": 0}), "treats_per_second"),
            (json!({"treats_per_second": -1.0}), "treats_per_second"),
            (json!({"treats_per_second": "fast"}), "treats_per_second"),
            (json!({"jammed": ["middle"]}), "jammed[0]"),
            (json!({"jammed": "left"}), "jammed"),
            (json!({"action_qos": 2}), "action_qos"),
            (json!({"topics": "mine"}), "topics"),
            (json!({"servicing": 3}), "servicing"),
            (json!({"state_period_ms": 0}), "state_period_ms"),
            (json!({"state_period_ms": 1.5}), "state_period_ms"),
            (json!({"bowl_spacing_m": 0.05}), "bowl_spacing_m"),
            (json!({"device_location": 7}), "device_location"),
            (json!({"x": 1.0, "motor_run_ms": "10s"}), "motor_run_ms"),
            (json!({"hoper_capacity": 10}), "hoper_capacity"),
        ] {
            let err = parse(params.clone()).unwrap_err();
            assert_eq!(
                err.key.as_deref(),
                Some(name),
                "{params}: error {err:?} is not at {name}"
            );
            assert!(
                !err.message.is_empty(),
                "{params}: error {err:?} says nothing"
            );
        }
    }
}
