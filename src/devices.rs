//! The device kinds this build can run, and how each is wired into a world.
//!
//! A kind turns a scenario's device entry into running tasks: it builds the
//! virtual peripherals (UART, MQTT session over the device's link), spawns
//! the device firmware on them, and exposes the device's state for `expect`.

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
/// ([`DeviceKind::rule_presets`]), in registry order, then the cloud's own
/// (job execution events into `jobExecutions`).
pub fn rule_presets() -> Vec<RulePreset> {
    use twinrig_cloud::jobs::execution_events_rule as jobs;
    let cloud = RulePreset {
        rule: twinrig_cloud::rules::RuleConfig {
            name: jobs::RULE.into(),
            sql: jobs::SQL.into(),
            action: jobs::ACTION.into(),
        },
        transform_json: jobs::TRANSFORM_JSON,
    };
    kinds()
        .iter()
        .flat_map(|k| k.rule_presets())
        .chain([cloud])
        .collect()
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
        assert_eq!(
            names,
            [
                "rvr-telemetry",
                "hand-state",
                "cat-feeder-states",
                "job-executions"
            ]
        );
    }
}
