//! The `rvr` device kind: an RVR twin (rapier body, tank-tread drive, Nordic
//! and ST processors on a 115200-baud UART) driven by the ESP32-S3 bridge
//! firmware over MQTT; `say` steps go through [`crate::voice::OfflineParser`].

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use twinrig_kind::serve::ServeModel;
use twinrig_kind::{
    CommandModel, DeviceContext, DeviceKind, DeviceRuntime, DeviceSpec, KindError, Params,
    ParamsError, ParamsModel, ParamsOf, ReadyWhen, RulePreset, dir_stats_json,
};
use twinrig_sim::net::Network;
use twinrig_sim::uart::{Uart, UartConfig, UartControl};

/// Parameters of an RVR with its ESP32-S3 bridge.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RvrParams {
    /// Start position x (m).
    #[serde(default)]
    x: f32,
    /// Start position y (m).
    #[serde(default)]
    y: f32,
    /// Start heading (degrees, counter-clockwise from world +x).
    #[serde(default)]
    yaw_deg: f32,
    /// Robot mass (kg); the RVR's is not published (assumed 1.5).
    #[serde(default)]
    mass_kg: Option<f32>,
    /// Bridge streaming period (ms, >= 33).
    #[serde(default)]
    stream_period_ms: Option<u16>,
    /// Maneuvers waiting behind the running one (0: reject while busy).
    #[serde(default)]
    queue_len: Option<usize>,
}

impl Params for RvrParams {
    fn check(&self) -> Result<(), ParamsError> {
        for (key, v) in [("x", self.x), ("y", self.y), ("yaw_deg", self.yaw_deg)] {
            if !v.is_finite() {
                return Err(ParamsError::at(key, "x, y and yaw_deg must be finite"));
            }
        }
        if self.mass_kg.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
            return Err(ParamsError::at("mass_kg", "mass_kg must be > 0"));
        }
        if self.stream_period_ms.is_some_and(|ms| ms < 33) {
            return Err(ParamsError::at(
                "stream_period_ms",
                "stream_period_ms must be at least 33 (the RVR refuses faster streaming)",
            ));
        }
        Ok(())
    }
}

/// A Sphero RVR (rapier body, tank-tread drive, Nordic + ST processors on a
/// 115200-baud UART) driven by the ESP32-S3 bridge firmware over MQTT.
pub struct RvrKind;

/// The `rvr` device kind.
pub static KIND: RvrKind = RvrKind;

struct RvrRuntime {
    id: String,
    twin: crate::RvrTwin,
    uart: UartControl,
    network: Network,
}

impl DeviceRuntime for RvrRuntime {
    fn ready_when(&self) -> Vec<ReadyWhen> {
        // The bridge subscribes once it has booted the RVR (wake, streaming);
        // its state topic carries telemetry from before that, so a publish
        // there says nothing about readiness.
        let topics =
            rvr_bridge::Topics::new(&rvr_bridge::BridgeConfig::default().topic_prefix, &self.id);
        vec![ReadyWhen::subscribed(&self.id, &topics.action)]
    }
    fn state(&self) -> Value {
        let p = self.twin.body().planar();
        let drive = self.twin.body().drive();
        let stats = self.uart.stats();
        json!({
            "pose": { "x": p.x, "y": p.y, "yaw_deg": p.yaw.to_degrees() },
            "speed": (p.vx * p.vx + p.vy * p.vy).sqrt(),
            "treads": drive.tread,
            "encoders": drive.encoder_counts(),
            "rvr": self.twin.stats(),
            "uart": { "to_rvr": dir_stats_json(&stats.a_to_b), "from_rvr": dir_stats_json(&stats.b_to_a) },
            "link": self.network.stats(&self.id),
        })
    }
    fn uart(&self) -> Option<(&UartControl, bool)> {
        Some((&self.uart, true))
    }
    fn command_topic(&self) -> Option<String> {
        Some(
            rvr_bridge::Topics::new(&rvr_bridge::BridgeConfig::default().topic_prefix, &self.id)
                .action,
        )
    }
    fn first_motion(&self) -> Option<twinrig_sim::Nanos> {
        self.twin.body().drive().first_motion
    }
}

impl DeviceKind for RvrKind {
    fn name(&self) -> &'static str {
        "rvr"
    }
    fn summary(&self) -> &'static str {
        "Sphero RVR twin + ESP32-S3 bridge firmware: the-project/sphero-rvr/{id}/action -> maneuvers, .../state telemetry"
    }
    fn firmware(&self) -> (&'static str, &'static str) {
        ("rvr-bridge", rvr_bridge::VERSION)
    }
    fn command_model(&self) -> Option<&'static dyn CommandModel> {
        Some(&crate::voice::OfflineParser)
    }
    fn rule_presets(&self) -> Vec<RulePreset> {
        crate::rules::presets()
    }
    fn params(&self) -> &'static dyn ParamsModel {
        &ParamsOf::<RvrParams>::NEW
    }
    fn invariants(&self) -> &'static [&'static dyn twinrig_kind::InvariantModel] {
        &crate::invariants::INVARIANTS
    }
    fn serve(&self) -> Option<&'static dyn ServeModel> {
        Some(&crate::serve::RvrServe)
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
        use crate::{DriveParams, RvrBody, RvrConfig, RvrTwin};
        let p: &RvrParams = spec.params()?;
        let mut drive = DriveParams::default();
        if let Some(m) = p.mass_kg {
            drive.mass_kg = m;
        }
        let body = RvrBody::spawn(ctx.physics, id, p.x, p.y, p.yaw_deg, drive)
            .map_err(|e| KindError::Build(e.to_string()))?;
        // An ESP32-like RX FIFO: wake at 32 bytes or after 3 idle byte times.
        let uart_config = UartConfig {
            rx_wake_threshold: 32,
            rx_idle_symbols: 3,
            ..UartConfig::default()
        };
        let (bridge_end, rvr_end, control) = Uart::pair(ctx.handle, id, uart_config);
        let (rrx, rtx) = rvr_end.split();
        let twin = RvrTwin::spawn(ctx.handle, id, body, rrx, rtx, RvrConfig::default());
        let client = ctx.connect(id)?;
        let mut config = rvr_bridge::BridgeConfig {
            epoch_offset_s: ctx.epoch_unix_s,
            ..rvr_bridge::BridgeConfig::default()
        };
        if let Some(ms) = p.stream_period_ms {
            config.stream_period_ms = ms;
        }
        if let Some(q) = p.queue_len {
            config.queue_len = q;
        }
        let (brx, btx) = bridge_end.split();
        let (clock, delay) = (ctx.handle.clock(), ctx.handle.delay());
        ctx.handle.spawn(format!("{id} (rvr-bridge)"), async move {
            rvr_bridge::run(brx, btx, &client, &clock, delay, &config).await;
        });
        Ok(Box::new(RvrRuntime {
            id: id.to_string(),
            twin,
            uart: control,
            network: ctx.network.clone(),
        }))
    }
}
