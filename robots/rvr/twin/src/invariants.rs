//! The named checks an `rvr` device offers for `invariants:`, on the
//! bridge's message contract (robots/rvr/bridge, "Messages"):
//!
//! - `one_terminal_status`: every maneuver the bridge accepted ends in
//!   exactly one terminal status (`completed`, `cancelled`, `timeout`,
//!   `blocked`, `failed`): never a second one, never one for a maneuver it
//!   did not accept, and (`must_end`, default true) none still open when the
//!   timeline ends.
//! - `stops_after_cancel`: once a `cancel` reaches the broker, the robot's
//!   speed is at most `speed_at_most` (default 0.01 m/s) from `within`
//!   later (default 500 ms: the link to the bridge plus the bridge's 300 ms
//!   to rest) until the next command.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use twinrig_kind::invariant::{InvariantCheck, InvariantModel, InvariantOf, shown};
use twinrig_kind::{Duration, Params, ParamsError};
use twinrig_sim::Nanos;

/// The checks, for [`twinrig_kind::DeviceKind::invariants`].
pub static INVARIANTS: [&dyn InvariantModel; 2] = [&ONE_TERMINAL_STATUS, &STOPS_AFTER_CANCEL];

const TERMINAL: [&str; 5] = ["completed", "cancelled", "timeout", "blocked", "failed"];

fn topics(device: &str) -> rvr_bridge::Topics {
    rvr_bridge::Topics::new(&rvr_bridge::BridgeConfig::default().topic_prefix, device)
}

/// Parameters of `one_terminal_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OneTerminalParams {
    /// Every accepted maneuver must have ended when the timeline ends
    /// (default true; false when a scenario ends with maneuvers running).
    #[serde(default = "yes")]
    pub must_end: bool,
}

fn yes() -> bool {
    true
}

impl Params for OneTerminalParams {}

static ONE_TERMINAL_STATUS: InvariantOf<OneTerminalParams> = InvariantOf::new(
    "one_terminal_status",
    "every accepted maneuver ends in exactly one terminal status",
    |device, p| {
        Box::new(OneTerminalStatus {
            state_topic: topics(device).state,
            must_end: p.must_end,
            maneuvers: BTreeMap::new(),
        })
    },
);

/// What a maneuver has reported so far.
struct Maneuver {
    accepted_at: Nanos,
    terminal: Option<String>,
}

struct OneTerminalStatus {
    state_topic: String,
    must_end: bool,
    maneuvers: BTreeMap<String, Maneuver>,
}

impl InvariantCheck for OneTerminalStatus {
    fn description(&self) -> String {
        format!(
            "every maneuver on {} ends in exactly one terminal status",
            self.state_topic
        )
    }

    fn on_message(&mut self, at: Nanos, topic: &str, payload: &[u8]) -> Result<(), String> {
        if topic != self.state_topic {
            return Ok(());
        }
        let Ok(event) = serde_json::from_slice::<Value>(payload) else {
            return Ok(());
        };
        if event["type"] != "maneuver" {
            return Ok(());
        }
        let (Some(id), Some(status)) = (event["id"].as_str(), event["status"].as_str()) else {
            return Err(format!("a maneuver event without id or status: {event}"));
        };
        if status == "accepted" {
            if self.maneuvers.contains_key(id) {
                return Err(format!("maneuver {id} accepted twice"));
            }
            self.maneuvers.insert(
                id.to_owned(),
                Maneuver {
                    accepted_at: at,
                    terminal: None,
                },
            );
        } else if TERMINAL.contains(&status) {
            let Some(m) = self.maneuvers.get_mut(id) else {
                return Err(format!(
                    "maneuver {id} ended `{status}` but was never accepted"
                ));
            };
            if let Some(first) = &m.terminal {
                return Err(format!(
                    "maneuver {id} ended twice: `{first}`, then `{status}`"
                ));
            }
            m.terminal = Some(status.to_owned());
        }
        Ok(())
    }

    fn at_end(&mut self, _at: Nanos) -> Result<(), String> {
        if !self.must_end {
            return Ok(());
        }
        let open: Vec<String> = self
            .maneuvers
            .iter()
            .filter(|(_, m)| m.terminal.is_none())
            .map(|(id, m)| format!("{id} (accepted at {})", shown(m.accepted_at)))
            .collect();
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("never ended: {}", open.join(", ")))
        }
    }
}

/// Parameters of `stops_after_cancel`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopsAfterCancelParams {
    /// From the broker receiving the `cancel` to the robot at rest
    /// (default 500ms).
    #[serde(default = "half_second")]
    pub within: Duration,
    /// The speed at rest, m/s (default 0.01).
    #[serde(default = "rest_speed")]
    pub speed_at_most: f64,
}

fn half_second() -> Duration {
    Duration::from_millis(500)
}

fn rest_speed() -> f64 {
    0.01
}

impl Params for StopsAfterCancelParams {
    fn check(&self) -> Result<(), ParamsError> {
        if !(self.speed_at_most.is_finite() && self.speed_at_most >= 0.0) {
            return Err(ParamsError::at(
                "speed_at_most",
                "speed_at_most must be a speed of 0 m/s or more",
            ));
        }
        Ok(())
    }
}

static STOPS_AFTER_CANCEL: InvariantOf<StopsAfterCancelParams> = InvariantOf::new(
    "stops_after_cancel",
    "no motion from `within` after a cancel until the next command",
    |device, p| {
        Box::new(StopsAfterCancel {
            action_topic: topics(device).action,
            within: p.within.nanos(),
            speed_at_most: p.speed_at_most,
            cancelled_at: None,
        })
    },
);

struct StopsAfterCancel {
    action_topic: String,
    within: Nanos,
    speed_at_most: f64,
    /// When the latest `cancel` reached the broker, while no command
    /// followed it.
    cancelled_at: Option<Nanos>,
}

impl InvariantCheck for StopsAfterCancel {
    fn description(&self) -> String {
        format!(
            "at rest (at most {} m/s) {} after a cancel on {}",
            self.speed_at_most,
            shown(self.within),
            self.action_topic
        )
    }

    fn on_message(&mut self, at: Nanos, topic: &str, payload: &[u8]) -> Result<(), String> {
        if topic != self.action_topic {
            return Ok(());
        }
        // A command the bridge refuses does not move the robot either, so
        // only a well-formed command other than `cancel` ends the watch.
        let action = serde_json::from_slice::<Value>(payload)
            .ok()
            .and_then(|v| v["action"].as_str().map(str::to_owned));
        match action.as_deref() {
            Some("cancel") => self.cancelled_at = Some(at),
            Some(_) => self.cancelled_at = None,
            None => {}
        }
        Ok(())
    }

    fn samples(&self) -> bool {
        true
    }

    fn on_sample(&mut self, at: Nanos, state: &Value) -> Result<(), String> {
        let Some(cancelled) = self.cancelled_at else {
            return Ok(());
        };
        if at < cancelled.saturating_add(self.within) {
            return Ok(());
        }
        let speed = state["speed"].as_f64().unwrap_or(0.0);
        if speed > self.speed_at_most {
            return Err(format!(
                "speed {speed:.3} m/s, {} after the cancel at {}",
                shown(at - cancelled),
                shown(cancelled)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(model: &dyn InvariantModel, params: Value) -> Box<dyn InvariantCheck> {
        model.build("rvr-1", params.as_object().unwrap()).unwrap()
    }

    fn event(id: &str, status: &str) -> Vec<u8> {
        json!({ "type": "maneuver", "id": id, "status": status })
            .to_string()
            .into_bytes()
    }

    const STATE: &str = "the-project/sphero-rvr/rvr-1/state";
    const ACTION: &str = "the-project/sphero-rvr/rvr-1/action";

    #[test]
    fn one_terminal_status_catches_a_second_end_and_an_open_maneuver() {
        let mut c = build(&ONE_TERMINAL_STATUS, json!({}));
        c.on_message(0, STATE, &event("a", "accepted")).unwrap();
        c.on_message(1, STATE, &event("a", "started")).unwrap();
        c.on_message(2, STATE, &event("a", "completed")).unwrap();
        c.on_message(3, "other/state", &event("a", "completed"))
            .unwrap();
        let e = c.on_message(4, STATE, &event("a", "failed")).unwrap_err();
        assert_eq!(e, "maneuver a ended twice: `completed`, then `failed`");

        let mut c = build(&ONE_TERMINAL_STATUS, json!({}));
        c.on_message(0, STATE, &event("b", "accepted")).unwrap();
        assert!(c.at_end(5).unwrap_err().starts_with("never ended: b"));
        let mut c = build(&ONE_TERMINAL_STATUS, json!({ "must_end": false }));
        c.on_message(0, STATE, &event("b", "accepted")).unwrap();
        assert!(c.at_end(5).is_ok());

        let mut c = build(&ONE_TERMINAL_STATUS, json!({}));
        let e = c
            .on_message(0, STATE, &event("z", "cancelled"))
            .unwrap_err();
        assert!(e.contains("never accepted"), "{e}");
    }

    #[test]
    fn stops_after_cancel_until_the_next_command() {
        let mut c = build(&STOPS_AFTER_CANCEL, json!({ "within": "300ms" }));
        let ms = 1_000_000;
        let moving = json!({ "speed": 0.4 });
        c.on_sample(0, &moving).unwrap();
        c.on_message(10 * ms, ACTION, br#"{"id":"c","action":"cancel"}"#)
            .unwrap();
        c.on_sample(300 * ms, &moving).unwrap();
        let e = c.on_sample(310 * ms, &moving).unwrap_err();
        assert!(e.starts_with("speed 0.400 m/s, 300ms after"), "{e}");
        c.on_message(
            400 * ms,
            ACTION,
            br#"{"id":"d","action":"forward","distance_m":1}"#,
        )
        .unwrap();
        c.on_sample(900 * ms, &moving).unwrap();
    }

    #[test]
    fn bad_params_are_refused() {
        let e = STOPS_AFTER_CANCEL
            .build("rvr-1", json!({ "speed_at_most": -1 }).as_object().unwrap())
            .err()
            .unwrap();
        assert_eq!(e.key.as_deref(), Some("speed_at_most"));
        let e = STOPS_AFTER_CANCEL
            .build("rvr-1", json!({ "within": "soon" }).as_object().unwrap())
            .err()
            .unwrap();
        assert_eq!(e.key.as_deref(), Some("within"));
    }
}
