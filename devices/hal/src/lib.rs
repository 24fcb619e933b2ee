//! The few HAL traits that are twinrig's own.
//!
//! Device crates use the standard embedded traits wherever one exists
//! (`embedded_io_async::{Read, Write}` for a UART, `embedded_hal_async::delay::DelayNs`
//! for delays, `embedded_storage` for flash) and these traits for what has no
//! standard: a monotonic clock, an MQTT session, a chunked downloader and a
//! fill-level sensor. The simulator implements them on virtual time; a real
//! board implements them on its own timer, network stack and sensors.
//! Nothing here depends on the simulator.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod clock;
pub mod download;
pub mod flash;
pub mod level;
pub mod mqtt;

pub use clock::Clock;
pub use download::{DownloadError, DownloadInfo, Downloader};
pub use level::{LevelError, LevelSensor};
pub use mqtt::{MqttClient, MqttError, MqttMessage, QoS};
