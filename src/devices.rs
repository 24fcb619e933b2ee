//! The device kinds this build can run, and how each is wired into a world.
//!
//! A kind turns a scenario's device entry into running tasks: it builds the
//! virtual peripherals (UART, MQTT session over the device's link), spawns
//! the device firmware on them, and exposes the device's state for `expect`.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use twinrig_sim::net::Network;
use twinrig_sim::uart::{Direction, Uart, UartConfig, UartControl};

pub use twinrig_kind::{
    DeviceContext, DeviceKind, DeviceRuntime, ReadyEvent, ReadyWhen, RulePreset, dir_stats_json,
    parse_params,
};

/// Every device kind in this build: one line per robot.
static KINDS: &[&dyn DeviceKind] = &[
    &EchoKind,
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

/// Maps a scenario's device-relative direction onto a line's ends.
pub fn line_direction(dir: crate::scenario::UartDirection, device_is_a: bool) -> Direction {
    use crate::scenario::UartDirection as D;
    match (dir, device_is_a) {
        (D::Both, _) => Direction::Both,
        (D::FromDevice, true) | (D::ToDevice, false) => Direction::AToB,
        (D::FromDevice, false) | (D::ToDevice, true) => Direction::BToA,
    }
}

/// Parameters of the echo device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoParams {
    /// UART baud rate.
    #[serde(default = "default_baud")]
    baud: u32,
    /// MQTT topic prefix.
    #[serde(default = "default_prefix")]
    topic_prefix: String,
    /// Longest line forwarded.
    #[serde(default = "default_max_line")]
    max_line: usize,
}

fn default_baud() -> u32 {
    115_200
}
fn default_prefix() -> String {
    echo_firmware::EchoConfig::default().topic_prefix
}
fn default_max_line() -> usize {
    echo_firmware::EchoConfig::default().max_line
}

/// The reference echo firmware, its UART wired to a loopback plug (TX jumpered to RX).
struct EchoKind;

struct EchoRuntime {
    id: String,
    topics: echo_firmware::EchoTopics,
    uart: UartControl,
    network: Network,
}

impl DeviceRuntime for EchoRuntime {
    fn ready_when(&self) -> Vec<ReadyWhen> {
        // The firmware subscribes, then announces itself on its status topic.
        vec![
            ReadyWhen::subscribed(&self.id, &self.topics.tx),
            ReadyWhen::published(&self.id, &self.topics.status),
        ]
    }
    fn state(&self) -> Value {
        let stats = self.uart.stats();
        json!({
            "uart": dir_stats_json(&stats.a_to_b),
            "link": self.network.stats(&self.id),
        })
    }
    fn uart(&self) -> Option<(&UartControl, bool)> {
        Some((&self.uart, true))
    }
}

impl DeviceKind for EchoKind {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn summary(&self) -> &'static str {
        "reference firmware: UART lines -> MQTT {prefix}/{id}/rx, MQTT {prefix}/{id}/tx -> UART (loopback plug)"
    }
    fn firmware(&self) -> (&'static str, &'static str) {
        ("echo-firmware", echo_firmware::VERSION)
    }
    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        let p: EchoParams = parse_params(params)?;
        uart_config(p.baud).validate().map_err(|e| e.to_string())?;
        if p.max_line == 0 {
            return Err("max_line must be at least 1".into());
        }
        twinrig_hal::mqtt::validate_topic_filter(&p.topic_prefix)
            .map_err(|_| format!("topic_prefix {:?} is not a valid topic", p.topic_prefix))?;
        if p.topic_prefix.contains(['+', '#']) {
            return Err(format!(
                "topic_prefix {:?} must not contain wildcards",
                p.topic_prefix
            ));
        }
        Ok(())
    }
    fn spawn(
        &self,
        ctx: &DeviceContext<'_>,
        id: &str,
        params: &Map<String, Value>,
    ) -> Result<Box<dyn DeviceRuntime>, String> {
        let p: EchoParams = parse_params(params)?;
        let (port, control) = Uart::loopback(ctx.handle, id, uart_config(p.baud));
        let client = ctx.network.connect(id, ctx.link.clone())?;
        let topics = echo_firmware::EchoTopics::new(&p.topic_prefix, id);
        let config = echo_firmware::EchoConfig {
            topic_prefix: p.topic_prefix,
            max_line: p.max_line,
        };
        let (rx, tx) = port.split();
        ctx.handle.spawn(format!("{id} (echo)"), async move {
            echo_firmware::run(rx, tx, &client, &config).await;
        });
        Ok(Box::new(EchoRuntime {
            id: id.to_string(),
            topics,
            uart: control,
            network: ctx.network.clone(),
        }))
    }
}

fn uart_config(baud: u32) -> UartConfig {
    UartConfig {
        baud,
        ..UartConfig::default()
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
