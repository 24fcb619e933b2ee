//! Device side of OTA for twinrig devices (no_std + alloc, HAL traits only).
//!
//! The transport-free core:
//! - [`partitions`]: an ESP-IDF-like A/B partition table (otadata, ota_0, ota_1)
//!   over any `embedded_storage` [`NorFlash`](embedded_storage::nor_flash::NorFlash),
//!   with the ESP-IDF rollback state machine;
//! - [`image`]: the firmware image format and a streaming SHA-256 verifier;
//! - [`job`]: the OTA job document and job-execution status updates;
//! - [`updater`]: the state machine tying them together.
//!
//! And the device loop around it, [`client::run`]: AWS IoT Jobs over any
//! [`twinrig_hal::MqttClient`], chunked resumable downloads through a
//! [`twinrig_hal::Downloader`], the shadow's `reported.firmware` and a
//! heartbeat. It returns when the device must reboot; see [`client`] for the
//! reboot model and the exact MQTT messages.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod client;
mod crc;
pub mod image;
pub mod job;
pub mod partitions;
pub mod updater;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

pub use client::{Exit, OtaConfig, Topics, run};
pub use image::{ImageError, ImageHeader, ImageVerifier, Version, build_image};
pub use job::{ExecutionStatus, JobUpdate, OtaJob};
pub use partitions::{
    BootDecision, ImageState, Layout, OtaSelectEntry, PartitionError, Partitions, Slot,
};
pub use updater::{Action, BootOutcome, DeviceConfig, SelfTest, Updater};

/// This crate's version (what `twinrig --version` lists).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
