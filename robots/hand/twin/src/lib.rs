//! The Pollen Robotics Amazing Hand twin: 8 Feetech SCS0009 servos on one
//! 1 Mbaud half-duplex SCS bus.
//!
//! - [`protocol`]: the SCS packet codec and byte-at-a-time parser.
//! - [`servo`]: one SCS0009 (register table, READ/WRITE semantics, motion).
//! - [`bus`]: the bus twin on a UART end ([`ServoBus`]), bus timing, trace.
//! - [`video`]: the hand's video, sampled angles rendered as an animated GIF.
//! - [`kind`]: the `hand` device kind (the twin + the real hand agent and rustypot).
//! - [`rules`]: its IoT rule and transform (records of kind `HandState`).
//! - [`timing`]: the per-sentence timing report (bus load, letter hold times).
//!
//! Facts come from the reference sheets (SYSTEMS.md section 2,
//! amazing-hand.md sections 2-4); values they do not give are marked
//! "assumed" and are parameters ([`BusConfig`], [`ServoParams`]).

pub mod bus;
pub mod invariants;
pub mod kind;
pub mod protocol;
pub mod rules;
pub mod serve;
pub mod servo;
pub mod timing;
pub mod video;

pub use bus::{
    BusConfig, BusStats, GoalEvent, HAND_BAUD, HAND_IDS, SERVOS_CHANNEL, ServoBus, ServoCounters,
    ServoSnapshot,
};
pub use kind::{HAND_TIMING_CHANNEL, HandKind, KIND};
pub use servo::{Servo, ServoParams};
