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
    DeviceContext, DeviceKind, DeviceRuntime, ReadyEvent, ReadyWhen, dir_stats_json, parse_params,
};

/// Every device kind in this build.
pub fn kinds() -> &'static [&'static dyn DeviceKind] {
    &[&EchoKind, &RvrKind, &crate::hand::HandKind]
}

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static dyn DeviceKind> {
    kinds().iter().copied().find(|k| k.name() == name)
}

/// Names of every kind, for validation messages.
pub fn kind_names() -> Vec<&'static str> {
    kinds().iter().map(|k| k.name()).collect()
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

/// Parameters of an RVR with its ESP32-S3 bridge.
#[derive(Debug, Deserialize)]
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

/// A Sphero RVR (rapier body, tank-tread drive, Nordic + ST processors on a
/// 115200-baud UART) driven by the ESP32-S3 bridge firmware over MQTT.
struct RvrKind;

struct RvrRuntime {
    id: String,
    twin: twinrig_sim::robots::rvr::RvrTwin,
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
    fn takes_spoken_commands(&self) -> bool {
        true
    }
    fn check_params(&self, params: &Map<String, Value>) -> Result<(), String> {
        let p: RvrParams = parse_params(params)?;
        if ![p.x, p.y, p.yaw_deg].iter().all(|v| v.is_finite()) {
            return Err("x, y and yaw_deg must be finite".into());
        }
        if p.mass_kg.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
            return Err("mass_kg must be > 0".into());
        }
        if p.stream_period_ms.is_some_and(|ms| ms < 33) {
            return Err(
                "stream_period_ms must be at least 33 (the RVR refuses faster streaming)".into(),
            );
        }
        Ok(())
    }
    fn spawn(
        &self,
        ctx: &DeviceContext<'_>,
        id: &str,
        params: &Map<String, Value>,
    ) -> Result<Box<dyn DeviceRuntime>, String> {
        use twinrig_sim::robots::rvr::{DriveParams, RvrBody, RvrConfig, RvrTwin};
        let p: RvrParams = parse_params(params)?;
        let mut drive = DriveParams::default();
        if let Some(m) = p.mass_kg {
            drive.mass_kg = m;
        }
        let body = RvrBody::spawn(ctx.physics, id, p.x, p.y, p.yaw_deg, drive)
            .map_err(|e| e.to_string())?;
        // An ESP32-like RX FIFO: wake at 32 bytes or after 3 idle byte times.
        let uart_config = UartConfig {
            rx_wake_threshold: 32,
            rx_idle_symbols: 3,
            ..UartConfig::default()
        };
        let (bridge_end, rvr_end, control) = Uart::pair(ctx.handle, id, uart_config);
        let (rrx, rtx) = rvr_end.split();
        let twin = RvrTwin::spawn(ctx.handle, id, body, rrx, rtx, RvrConfig::default());
        let client = ctx.network.connect(id, ctx.link.clone())?;
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
