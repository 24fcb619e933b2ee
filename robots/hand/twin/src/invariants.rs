//! The named checks a `hand` device offers for `invariants:`:
//!
//! - `goals_within_limits`: no goal-position write lands outside a servo's
//!   angle limits (the servo clamps it and sets its status angle bit, so
//!   the finger would not reach the pose the agent meant); with `min_deg`
//!   and `max_deg`, every servo's goal also stays in that range (a finger's
//!   safe travel, narrower than the servo's).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use twinrig_kind::invariant::{InvariantCheck, InvariantModel, InvariantOf};
use twinrig_kind::{Params, ParamsError};
use twinrig_sim::Nanos;

/// The checks, for [`twinrig_kind::DeviceKind::invariants`].
pub static INVARIANTS: [&dyn InvariantModel; 1] = [&GOALS_WITHIN_LIMITS];

/// Parameters of `goals_within_limits`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalsWithinLimitsParams {
    /// Lowest goal allowed, degrees (default: the servo's own limit).
    #[serde(default)]
    pub min_deg: Option<f64>,
    /// Highest goal allowed, degrees (default: the servo's own limit).
    #[serde(default)]
    pub max_deg: Option<f64>,
}

impl Params for GoalsWithinLimitsParams {
    fn check(&self) -> Result<(), ParamsError> {
        for (key, v) in [("min_deg", self.min_deg), ("max_deg", self.max_deg)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(ParamsError::at(
                    key,
                    format!("{key} must be a number of degrees"),
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (self.min_deg, self.max_deg)
            && lo > hi
        {
            return Err(ParamsError::at(
                "max_deg",
                "max_deg must not be below min_deg",
            ));
        }
        Ok(())
    }
}

static GOALS_WITHIN_LIMITS: InvariantOf<GoalsWithinLimitsParams> = InvariantOf::new(
    "goals_within_limits",
    "no goal write outside a servo's angle limits (or min_deg..max_deg)",
    |device, p| {
        Box::new(GoalsWithinLimits {
            device: device.to_owned(),
            min_deg: p.min_deg.unwrap_or(f64::NEG_INFINITY),
            max_deg: p.max_deg.unwrap_or(f64::INFINITY),
        })
    },
);

struct GoalsWithinLimits {
    device: String,
    min_deg: f64,
    max_deg: f64,
}

impl InvariantCheck for GoalsWithinLimits {
    fn description(&self) -> String {
        let mut d = format!("{}: every servo goal within its angle limits", self.device);
        if self.min_deg.is_finite() || self.max_deg.is_finite() {
            d += &format!(" and {}..{} degrees", self.min_deg, self.max_deg);
        }
        d
    }

    fn samples(&self) -> bool {
        true
    }

    fn on_sample(&mut self, _at: Nanos, state: &Value) -> Result<(), String> {
        for servo in state["servos"].as_array().into_iter().flatten() {
            let id = &servo["id"];
            let clamped = servo["clamped"].as_u64().unwrap_or(0);
            if clamped > 0 {
                return Err(format!(
                    "servo {id}: {clamped} goal write(s) outside its angle limits, clamped"
                ));
            }
            let goal = servo["goal_deg"].as_f64().unwrap_or(0.0);
            if goal < self.min_deg || goal > self.max_deg {
                return Err(format!(
                    "servo {id}: goal {goal:.1} degrees outside {}..{}",
                    self.min_deg, self.max_deg
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(params: Value) -> Result<Box<dyn InvariantCheck>, ParamsError> {
        GOALS_WITHIN_LIMITS.build("hand-1", params.as_object().unwrap())
    }

    #[test]
    fn clamped_writes_and_goals_out_of_range_break_it() {
        let mut c = build(json!({})).unwrap();
        let ok = json!({ "servos": [{ "id": 1, "goal_deg": 40.0, "clamped": 0 }] });
        c.on_sample(0, &ok).unwrap();
        let clamped = json!({ "servos": [{ "id": 1, "goal_deg": 40.0, "clamped": 2 }] });
        assert_eq!(
            c.on_sample(1, &clamped).unwrap_err(),
            "servo 1: 2 goal write(s) outside its angle limits, clamped"
        );
        let mut c = build(json!({ "min_deg": -30, "max_deg": 30 })).unwrap();
        let e = c.on_sample(0, &ok).unwrap_err();
        assert!(e.contains("goal 40.0 degrees outside -30..30"), "{e}");
    }

    #[test]
    fn bad_ranges_are_refused() {
        let e = build(json!({ "min_deg": 10, "max_deg": 0 })).err().unwrap();
        assert_eq!(e.key.as_deref(), Some("max_deg"));
        let e = build(json!({ "max": 10 })).err().unwrap();
        assert!(e.message.contains("unknown field"), "{e}");
    }
}
