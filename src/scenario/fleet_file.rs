//! Fleet files: a fleet described on its own, for `twinrig ota`.
//!
//! ```yaml
//! seed: 7          # optional (default 1): faults and latencies draw from it
//! fleet:           # exactly a scenario's `fleet:` section
//!   firmware: [ { type: pet_feeder, versions: [1.0.0, 2.0.0] } ]
//!   groups:   [ { type: pet_feeder, count: 20, id: "feeder-{n:03}", version: 1.0.0 } ]
//! ```
//!
//! The `fleet:` section is checked exactly as in a scenario (the same types
//! and the same checks), and because it sits under the same key, every
//! problem is reported at its line and column in the fleet file.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::fleet::FleetConfig;
use super::load::{self, ScenarioError};
use super::model::{CloudConfig, LinkModel, Scenario, Start, Step, World, default_ready_timeout};
use super::validate::{PathSeg, SemanticError, validate};

/// A fleet file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// Seed for every random draw (faults, latencies).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The fleet, as a scenario's `fleet:` section.
    pub fleet: FleetConfig,
}

fn default_seed() -> u64 {
    1
}

impl FleetFile {
    /// A scenario around this fleet: no devices of other kinds, default
    /// world, link and cloud.
    pub fn scenario(&self, name: &str, duration_limit: Duration, steps: Vec<Step>) -> Scenario {
        Scenario {
            name: name.to_owned(),
            description: None,
            seed: self.seed,
            duration_limit,
            world: World::default(),
            link: LinkModel::default(),
            devices: Vec::new(),
            cloud: CloudConfig::default(),
            fleet: Some(self.fleet.clone()),
            start: Start::default(),
            ready_timeout: default_ready_timeout(),
            chaos: None,
            invariants: Vec::new(),
            steps,
        }
    }
}

/// Reads a fleet file from `text` (`path` names it in messages) and checks
/// it as a scenario's `fleet:` section is checked; a fleet without devices
/// is refused too.
pub fn parse_fleet_file(text: &str, path: &Path) -> Result<FleetFile, ScenarioError> {
    let file: FleetFile = load::parse_yaml(text, path)?;
    let probe = file.scenario(
        "fleet file",
        Duration::from_secs(1),
        vec![Step::Delay(Duration::from_secs(1))],
    );
    let mut errors = validate(&probe, &[]).err().unwrap_or_default();
    if file.fleet.groups.is_empty() {
        errors.push(SemanticError {
            path: vec![PathSeg::Key("fleet".into())],
            message: "the fleet has no devices: add at least one entry to `fleet.groups`".into(),
        });
    }
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(load::invalid(text, path, errors))
    }
}

/// Reads and checks the fleet file at `path`.
pub fn load_fleet_file(path: &Path) -> Result<FleetFile, ScenarioError> {
    let text = load::read_scenario_text(path)?;
    parse_fleet_file(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FleetFile, ScenarioError> {
        parse_fleet_file(text, Path::new("f.yaml"))
    }

    const GOOD: &str = "seed: 3
fleet:
  firmware:
    - { type: pet_feeder, versions: [1.0.0, 2.0.0], size: 4KiB }
  groups:
    - { type: pet_feeder, count: 2, id: \"feeder-{n}\", version: 1.0.0 }
";

    #[test]
    fn a_good_file_reads_with_its_seed_and_devices() {
        let f = parse(GOOD).unwrap();
        assert_eq!(f.seed, 3);
        let ids: Vec<String> = f.fleet.device_ids().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["feeder-1", "feeder-2"]);
        let f = parse(&GOOD.replace("seed: 3\n", "")).unwrap();
        assert_eq!(f.seed, 1);
    }

    #[test]
    fn syntax_and_type_errors_have_their_position() {
        let e = parse(&GOOD.replace("count: 2", "count: two")).unwrap_err();
        let plain = e.render_plain();
        assert!(plain.starts_with("f.yaml:6:"), "{plain}");
        let e = parse(&GOOD.replace("seed: 3", "sed: 3")).unwrap_err();
        assert!(
            e.render_plain().starts_with("f.yaml:1:"),
            "{}",
            e.render_plain()
        );
    }

    #[test]
    fn semantic_errors_point_into_the_fleet_section() {
        // Version 3.0.0 is not published for the type.
        let e = parse(&GOOD.replace("version: 1.0.0", "version: 3.0.0")).unwrap_err();
        let plain = e.render_plain();
        assert!(plain.starts_with("f.yaml:6:"), "{plain}");
        assert!(plain.contains("3.0.0"), "{plain}");
    }

    #[test]
    fn a_fleet_without_devices_is_refused() {
        let e = parse("fleet:\n  firmware: []\n").unwrap_err();
        let plain = e.render_plain();
        // At the `fleet:` section's content.
        assert!(plain.starts_with("f.yaml:2:3:"), "{plain}");
        assert!(plain.contains("no devices"), "{plain}");
    }

    #[test]
    fn a_fleet_file_has_no_members_to_name() {
        // `twinrig ota` runs no scenario devices, so no member can exist.
        let text = GOOD.replace("count: 2, id: \"feeder-{n}\"", "members: [feeder-1]");
        let plain = parse(&text).unwrap_err().render_plain();
        assert!(plain.starts_with("f.yaml:6:"), "{plain}");
        assert!(
            plain.contains("`feeder-1` is not a scenario device")
                && plain.contains("there are none"),
            "{plain}"
        );
    }
}
