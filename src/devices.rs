//! The device kinds this build can run, and how each is wired into a world.
//!
//! A kind turns a scenario's device entry into running tasks: it builds the
//! virtual peripherals (UART, MQTT session over the device's link), spawns
//! the device firmware on them, and exposes the device's state for `expect`.

use twinrig_sim::uart::Direction;

pub use twinrig_kind::{
    CloudServices, DeviceContext, DeviceKind, DeviceRuntime, DeviceSpec, KindError, NoParams,
    Params, ParamsError, ParamsModel, ParamsOf, ReadyEvent, ReadyWhen, RulePreset, dir_stats_json,
};

/// Every device kind in this build: one line per robot.
static KINDS: &[&dyn DeviceKind] = &[
    &echo_kind::KIND,
    &rvr_twin::KIND,
    &hand_twin::KIND,
    &cat_feeder_twin::KIND,
];

/// Every device kind in this build.
pub fn kinds() -> &'static [&'static dyn DeviceKind] {
    KINDS
}

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static dyn DeviceKind> {
    kinds().iter().copied().find(|k| k.name() == name)
}

/// Names of every kind, for validation messages.
pub fn kind_names() -> Vec<&'static str> {
    kinds().iter().map(|k| k.name()).collect()
}

/// Every rule preset a scenario may name: each kind's
/// ([`DeviceKind::rule_presets`]), in registry order.
pub fn rule_presets() -> Vec<RulePreset> {
    kinds().iter().flat_map(|k| k.rule_presets()).collect()
}

/// The scenario files' JSON Schema, with every kind's `params` schema.
pub fn scenario_schema_json() -> String {
    crate::scenario::scenario_schema_json(&|generator| {
        kinds()
            .iter()
            .map(|k| (k.name(), k.params().schema(generator)))
            .collect()
    })
}

/// Maps a scenario's device-relative direction onto a line's ends.
pub fn line_direction(dir: crate::scenario::UartDirection, device_is_a: bool) -> Direction {
    use crate::scenario::UartDirection as D;
    match (dir, device_is_a) {
        (D::Both, _) => Direction::Both,
        (D::FromDevice, true) | (D::ToDevice, false) => Direction::AToB,
        (D::FromDevice, false) | (D::ToDevice, true) => Direction::BToA,
    }
}

#[cfg(test)]
mod schema_tests {
    const COMMITTED: &str = include_str!("../schema/scenario.schema.json");

    #[test]
    fn committed_schema_is_up_to_date() {
        assert!(
            COMMITTED == super::scenario_schema_json(),
            "schema/scenario.schema.json is out of date; regenerate it with \
             `cargo run -- schema > schema/scenario.schema.json`"
        );
    }

    #[test]
    fn every_kind_s_params_are_in_the_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(&super::scenario_schema_json()).unwrap();
        let per_kind = schema["$defs"]["Device"]["allOf"].as_array().unwrap();
        let kinds: Vec<&str> = per_kind
            .iter()
            .map(|k| k["if"]["properties"]["kind"]["const"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, super::kind_names());
        // The RVR's params, spelled out with their docs, unknown keys refused.
        let rvr = &per_kind[1]["then"]["properties"]["params"];
        let name = rvr["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        let def = &schema["$defs"][name];
        assert_eq!(def["additionalProperties"], false, "{def:#}");
        assert!(
            def["properties"]["stream_period_ms"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("33")),
            "{def:#}"
        );
    }
}

#[cfg(test)]
mod preset_tests {
    /// A shipped transform that does not load would silently leave its
    /// records kind unknown to validation: every preset's must load.
    #[test]
    fn every_rule_preset_of_the_cloud_and_the_kinds_loads() {
        let presets = super::rule_presets();
        for p in &presets {
            let t = twinrig_cloud::rules::Transform::from_json(p.transform_json)
                .unwrap_or_else(|e| panic!("preset {}: {e}", p.rule.name));
            assert_eq!(t.name(), p.rule.action, "preset {}", p.rule.name);
        }
        let names: Vec<&str> = presets.iter().map(|p| p.rule.action.as_str()).collect();
        assert_eq!(names, ["rvr-telemetry", "hand-state", "cat-feeder-states"]);
    }
}
