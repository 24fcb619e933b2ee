//! The reference device: an "echo" firmware that proves the seam end to end.
//!
//! - Lines it reads on its UART (ended by `\n`, a trailing `\r` stripped) are
//!   published to `{prefix}/{id}/rx`.
//! - Messages on `{prefix}/{id}/tx` are written to its UART followed by `\n`.
//! - Problems (an over-long line, a UART break or error) are published to
//!   `{prefix}/{id}/status` as JSON; the device keeps going.
//!
//! It depends on HAL traits only (`embedded_io_async` for the UART,
//! `twinrig_hal::MqttClient` for MQTT), so the same code builds for a board.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use embassy_futures::join::join;
use embedded_io_async::{Error as _, Read, Write};
use twinrig_hal::{MqttClient, QoS};

/// Settings of the echo firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoConfig {
    /// Topic prefix; the device uses `{prefix}/{client id}/{rx,tx,status}`.
    pub topic_prefix: String,
    /// Longest line it forwards, in bytes; longer ones are dropped and reported.
    pub max_line: usize,
}

impl Default for EchoConfig {
    fn default() -> Self {
        EchoConfig {
            topic_prefix: String::from("twinrig/echo"),
            max_line: 256,
        }
    }
}

/// Topics of one echo device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoTopics {
    /// Where UART lines go.
    pub rx: String,
    /// Where commands for the UART come from.
    pub tx: String,
    /// Status and error reports.
    pub status: String,
}

impl EchoTopics {
    /// The topics for device `id` under `prefix`.
    pub fn new(prefix: &str, id: &str) -> Self {
        EchoTopics {
            rx: format!("{prefix}/{id}/rx"),
            tx: format!("{prefix}/{id}/tx"),
            status: format!("{prefix}/{id}/status"),
        }
    }
}

/// Runs the firmware forever: subscribes, announces itself, then forwards both ways.
pub async fn run<R, W, M>(mut uart_rx: R, mut uart_tx: W, mqtt: &M, config: &EchoConfig)
where
    R: Read,
    W: Write,
    M: MqttClient,
{
    let topics = EchoTopics::new(&config.topic_prefix, mqtt.client_id());
    // Retry until the broker takes the subscription; without it the device is deaf.
    while mqtt.subscribe(&topics.tx, QoS::AtLeastOnce).await.is_err() {}
    let _ = mqtt
        .publish(&topics.status, br#"{"status":"online"}"#, QoS::AtLeastOnce)
        .await;

    let uart_to_mqtt = async {
        let mut line: Vec<u8> = Vec::with_capacity(config.max_line);
        let mut overflowed = 0usize;
        let mut buf = [0u8; 64];
        loop {
            let n = match uart_rx.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let msg = format!(r#"{{"error":"uart read failed","kind":"{:?}"}}"#, e.kind());
                    let _ = mqtt
                        .publish(&topics.status, msg.as_bytes(), QoS::AtLeastOnce)
                        .await;
                    line.clear();
                    continue;
                }
            };
            for &b in &buf[..n] {
                if b == b'\n' {
                    if overflowed > 0 {
                        let msg = format!(r#"{{"error":"line too long","bytes":{overflowed}}}"#);
                        let _ = mqtt
                            .publish(&topics.status, msg.as_bytes(), QoS::AtLeastOnce)
                            .await;
                        overflowed = 0;
                    } else {
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        let _ = mqtt.publish(&topics.rx, &line, QoS::AtLeastOnce).await;
                    }
                    line.clear();
                } else if overflowed > 0 || line.len() >= config.max_line {
                    overflowed = overflowed.max(line.len()) + 1;
                    line.clear();
                } else {
                    line.push(b);
                }
            }
        }
    };

    let mqtt_to_uart = async {
        loop {
            let Ok(msg) = mqtt.receive().await else {
                continue;
            };
            if msg.topic != topics.tx {
                continue;
            }
            if uart_tx.write_all(&msg.payload).await.is_err()
                || uart_tx.write_all(b"\n").await.is_err()
            {
                let _ = mqtt
                    .publish(
                        &topics.status,
                        br#"{"error":"uart write failed"}"#,
                        QoS::AtLeastOnce,
                    )
                    .await;
            }
        }
    };

    join(uart_to_mqtt, mqtt_to_uart).await;
}

/// This firmware's version, recorded in traces so a replay can tell what ran.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
