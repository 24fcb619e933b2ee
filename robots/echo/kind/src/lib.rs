//! The `echo` device kind: the reference firmware (`robots/echo/firmware`)
//! on a UART with a loopback plug, bridging lines to MQTT. No twin of its
//! own: the plug sends back whatever the firmware writes.

use serde::Deserialize;
use serde_json::{Value, json};
use twinrig_kind::{
    DeviceContext, DeviceKind, DeviceRuntime, DeviceSpec, KindError, Params, ParamsError,
    ParamsModel, ParamsOf, ReadyWhen, dir_stats_json,
};
use twinrig_sim::net::Network;
use twinrig_sim::uart::{Uart, UartConfig, UartControl};

/// The `echo` kind, for the registry.
pub static KIND: EchoKind = EchoKind;

/// Parameters of the echo device.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
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
/// The `echo` device kind.
pub struct EchoKind;

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
    fn params(&self) -> &'static dyn ParamsModel {
        &ParamsOf::<EchoParams>::NEW
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
        let p: &EchoParams = spec.params()?;
        let (port, control) = Uart::loopback(ctx.handle, id, uart_config(p.baud));
        let client = ctx.connect(id)?;
        let topics = echo_firmware::EchoTopics::new(&p.topic_prefix, id);
        let config = echo_firmware::EchoConfig {
            topic_prefix: p.topic_prefix.clone(),
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

impl Params for EchoParams {
    fn check(&self) -> Result<(), ParamsError> {
        uart_config(self.baud)
            .validate()
            .map_err(|e| ParamsError::at("baud", e.to_string()))?;
        if self.max_line == 0 {
            return Err(ParamsError::at("max_line", "max_line must be at least 1"));
        }
        let prefix = &self.topic_prefix;
        if twinrig_hal::mqtt::validate_topic_filter(prefix).is_err() {
            return Err(ParamsError::at(
                "topic_prefix",
                format!("topic_prefix {prefix:?} is not a valid topic"),
            ));
        }
        if prefix.contains(['+', '#']) {
            return Err(ParamsError::at(
                "topic_prefix",
                format!("topic_prefix {prefix:?} must not contain wildcards"),
            ));
        }
        Ok(())
    }
}

fn uart_config(baud: u32) -> UartConfig {
    UartConfig {
        baud,
        ..UartConfig::default()
    }
}
