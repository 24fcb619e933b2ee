//! The Sphero RVR twin.
//!
//! - [`drive`]: the tank-tread body on the floor and its motor controller.
//! - [`processors`]: the Nordic and ST processors answering the packet protocol on a UART.
//!
//! Facts come from the reference sheets (SYSTEMS.md section 1, sphero-rvr.md);
//! values the sheets do not give are marked "assumed" and are parameters.

pub mod drive;
pub mod processors;

pub use drive::{DriveParams, DriveTarget, RvrBody, TreadDrive};
pub use processors::{RvrConfig, RvrStats, RvrTwin};
