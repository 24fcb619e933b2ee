//! The Sphero RVR twin.
//!
//! - [`drive`]: the tank-tread body on the floor and its motor controller.
//! - [`processors`]: the Nordic and ST processors answering the packet protocol on a UART.
//! - [`config`]: the twin's parameters, each with its source or "assumed".
//! - [`models`]: battery, motor heat, stall and colour models.
//! - [`kind`]: the `rvr` device kind (the twin + the bridge firmware over MQTT).
//! - [`voice`]: the offline command model for `say` steps.
//! - [`rules`]: the telemetry rule and transform the kind contributes to the cloud twin.
//!
//! Facts come from the reference sheets (SYSTEMS.md section 1, sphero-rvr.md);
//! values the sheets do not give are marked "assumed" and are parameters.

pub mod config;
pub mod drive;
pub mod invariants;
pub mod kind;
pub mod models;
pub mod processors;
pub mod rules;
pub mod serve;
pub mod voice;

pub use config::{BatteryParams, ColorParams, Identity, MotorParams, RvrConfig};
pub use drive::{DriveParams, DriveTarget, RvrBody, TreadDrive};
pub use kind::{KIND, RvrKind};
pub use processors::{RvrStats, RvrTwin};
