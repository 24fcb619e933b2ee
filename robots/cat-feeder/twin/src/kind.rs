//! The `cat_feeder` device kind: the real `cat-feeder-firmware` on the
//! twin's virtual hardware (two motor pins, the hopper level sensor, the
//! virtual clock and delay), over an MQTT session on the device's link.

use cat_feeder_firmware::{Hardware, Topics};
use serde_json::{Value, json};
use twinrig_kind::{
    DeviceContext, DeviceKind, DeviceRuntime, DeviceSpec, KindError, ParamsModel, ParamsOf,
    ReadyWhen, RulePreset,
};
use twinrig_sim::net::Network;
use twinrig_sim::uart::UartControl;

use crate::bowls::Bowls;
use crate::hardware::{HopperLevel, MotorPin};
use crate::params::{Bowl, FeederParams};
use crate::twin::FeederTwin;

/// The cat feeder (ESP32-C3, L298N, two bowl motors, a hopper).
pub struct CatFeederKind;

/// The `cat_feeder` device kind.
pub static KIND: CatFeederKind = CatFeederKind;

struct CatFeederRuntime {
    id: String,
    topics: Topics,
    twin: FeederTwin,
    network: Network,
}

impl DeviceRuntime for CatFeederRuntime {
    fn ready_when(&self) -> Vec<ReadyWhen> {
        // The firmware subscribes, then publishes its first state.
        vec![
            ReadyWhen::subscribed(&self.id, &self.topics.action),
            ReadyWhen::published(&self.id, &self.topics.states),
        ]
    }
    fn state(&self) -> Value {
        let mut state = self.twin.state();
        if let Some(doc) = state.as_object_mut() {
            doc.insert(
                "topics".into(),
                json!({"action": self.topics.action, "states": self.topics.states}),
            );
            doc.insert("link".into(), json!(self.network.stats(&self.id)));
        }
        state
    }
    fn uart(&self) -> Option<(&UartControl, bool)> {
        None
    }
    fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let [left, right] = self.twin.bowl_treats();
        [
            (format!("{}.treats_left_bowl", self.id), f64::from(left)),
            (format!("{}.treats_right_bowl", self.id), f64::from(right)),
            (
                format!("{}.hopper_treats", self.id),
                f64::from(self.twin.hopper_treats()),
            ),
        ]
        .into_iter()
        .collect()
    }
}

impl DeviceKind for CatFeederKind {
    fn name(&self) -> &'static str {
        "cat_feeder"
    }
    fn summary(&self) -> &'static str {
        "cat feeder twin + firmware: cat-feeder/action {event: SINGLE|DOUBLE|LONG} -> bowl motors drop treats; cat-feeder/states food_capacity"
    }
    fn firmware(&self) -> (&'static str, &'static str) {
        ("cat-feeder-firmware", cat_feeder_firmware::VERSION)
    }
    fn params(&self) -> &'static dyn ParamsModel {
        &ParamsOf::<FeederParams>::NEW
    }
    fn rule_presets(&self) -> Vec<RulePreset> {
        crate::rules::presets()
    }
    fn starter_scenario(&self) -> Option<&'static str> {
        Some(include_str!("../starter.yaml"))
    }
    fn spawn(
        &self,
        ctx: &DeviceContext<'_>,
        id: &str,
        spec: &DeviceSpec,
    ) -> Result<Box<dyn DeviceRuntime>, KindError> {
        let p: &FeederParams = spec.params()?;
        let config = p.firmware_config(ctx.epoch_unix_s);
        let topics = config
            .topics(id)
            .map_err(|e| KindError::Build(e.to_string()))?;
        let bowls = Bowls::build(ctx.handle, ctx.physics, id, p.x, p.y, p.bowl_spacing_m)
            .map_err(|e| KindError::Build(e.to_string()))?;
        let twin = FeederTwin::new(ctx.handle, id, p, bowls);
        let client = ctx.connect(id)?;
        let hardware = Hardware {
            left_motor: MotorPin::new(twin.clone(), Bowl::Left),
            right_motor: MotorPin::new(twin.clone(), Bowl::Right),
            level_sensor: HopperLevel::new(twin.clone()),
        };
        let (clock, delay) = (ctx.handle.clock(), ctx.handle.delay());
        ctx.handle.spawn(format!("{id} (cat-feeder)"), async move {
            // Topics and settings were checked above, so this runs for ever.
            let _ = cat_feeder_firmware::run(&client, &clock, delay, hardware, &config).await;
        });
        Ok(Box::new(CatFeederRuntime {
            id: id.to_string(),
            topics,
            twin,
            network: ctx.network.clone(),
        }))
    }
}
