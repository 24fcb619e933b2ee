//! The cat feeder twin and its device kind, `cat_feeder`.
//!
//! The real device (SYSTEMS.md §4 of the project's reference): an ESP32-C3
//! running an Arduino sketch, an L298N driver with two DC motors (left bowl,
//! right bowl), a hopper of food. A click event over MQTT runs a motor for
//! 10 s; states carry `food_capacity` (0-100) and `device_location` and are
//! stored in the Timestream table `catFeedersStates` by an IoT rule.
//!
//! - [`hopper`]: how many treats the hopper holds and when a running motor
//!   lets the next one go (pure, no simulation).
//! - [`bowls`]: the two bowls as fixed rapier bodies and the treats as small
//!   dynamic bodies falling into them; treats are counted where they lie.
//! - [`twin`]: the mechanics: which motor turns, when a treat is released.
//! - [`hardware`]: the virtual hardware the firmware drives: the two L298N
//!   inputs ([`embedded_hal::digital::OutputPin`]) and the hopper level
//!   sensor ([`twinrig_hal::LevelSensor`]).
//! - [`params`]: the device's parameters, each with its default and source
//!   or "assumed".
//! - [`kind`]: the `cat_feeder` device kind: the real `cat-feeder-firmware`
//!   on the virtual hardware, over an MQTT session on the device's link.
//! - [`rules`]: the cloud rule and transform the kind contributes
//!   (`cat-feeder-states`, records of kind `catFeedersStates`).
//!
//! The firmware is not modified for the twin: its 12 s blocking feed, its
//! inbox and its state period are the firmware's own (see the
//! `cat-feeder-firmware` crate docs, "Timing: the loop blocks"). The twin
//! only decides what the hardware does with the pins it is given: a running,
//! unjammed motor with food in the hopper releases treats at
//! [`params::FeederParams::treats_per_second`].

pub mod bowls;
pub mod hardware;
pub mod hopper;
pub mod kind;
pub mod params;
pub mod rules;
pub mod twin;

pub use kind::{CatFeederKind, KIND};
pub use params::{Bowl, FeederParams};
pub use twin::FeederTwin;
