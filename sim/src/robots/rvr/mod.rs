//! The Sphero RVR twin.
//!
//! - [`drive`]: the tank-tread body on the floor and its motor controller.
//!
//! Facts come from the reference sheets (SYSTEMS.md section 1, sphero-rvr.md);
//! values the sheets do not give are marked "assumed" and are parameters.

pub mod drive;

pub use drive::{DriveParams, DriveTarget, RvrBody, TreadDrive};
