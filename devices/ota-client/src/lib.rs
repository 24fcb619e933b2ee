//! Device side of OTA for twinrig devices (no_std + alloc, HAL traits only).
//!
//! This slice is the transport-free core:
//! - [`partitions`]: an ESP-IDF-like A/B partition table (otadata, ota_0, ota_1)
//!   over any `embedded_storage` [`NorFlash`](embedded_storage::nor_flash::NorFlash),
//!   with the ESP-IDF rollback state machine;
//! - [`image`]: the firmware image format and a streaming SHA-256 verifier;
//! - [`job`]: the OTA job document and job-execution status updates;
//! - [`updater`]: the state machine tying them together.
//!
//! The MQTT Jobs loop and the downloader come in the next slice.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc;

mod crc;
pub mod image;
pub mod job;
pub mod partitions;
pub mod updater;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

pub use image::{ImageError, ImageHeader, ImageVerifier, Version, build_image};
pub use job::{ExecutionStatus, JobUpdate, OtaJob};
pub use partitions::{
    BootDecision, ImageState, Layout, OtaSelectEntry, PartitionError, Partitions, Slot,
};
pub use updater::{Action, BootOutcome, DeviceConfig, SelfTest, Updater};
