//! Amazing Hand ASL edge agent: an action message becomes ASL letters on 8
//! SCS0009 servos, with a state message after each letter.
//!
//! The agent's logic runs without hardware: the servo bus is behind
//! [`HandDriver`], pauses behind [`Pause`], time behind [`twinrig_hal::Clock`],
//! the model behind [`Model`] and state publishing behind [`StateSink`]; the
//! harness binds them to the servo-bus twin, virtual time and the broker.
//!
//! Pipeline (one message):
//! 1. [`ActionInbox::offer`] parses the payload ([`parse_action`]: JSON with
//!    `sentence`, or plain text; limits and error codes in [`payload`]) and
//!    queues it (bound [`DEFAULT_QUEUE_CAPACITY`]; when full the new message is
//!    rejected with a `queue_full` error state).
//! 2. [`Worker::handle`] runs a fresh agent ([`run_agent`]): the model sees only
//!    this message; at most 3 tool calls run, extra ones are cancelled and listed.
//! 3. The `fingerspell` tool plans the text ([`plan()`]) and executes it
//!    ([`Hand::fingerspell`]): per letter, per finger, speed / 0.2 ms / speed /
//!    0.2 ms / both goals / 5 ms, then a 0.8 s hold; a space is 0.4 s; every
//!    duration is a [`Timing`] field.
//! 4. After each letter a [`StateMessage`] in the sheet's shape is published and
//!    cached ([`Worker::last_state`]).
//! 5. [`serve`] is the worker thread's loop: torque on, one job at a time from a
//!    [`JobSource`] with its video ([`Camera`], [`VideoStore`]; the presigned URL
//!    is appended to the last state, published again), torque off at shutdown.
//!
//! Hosts: the harness runs [`serve`] on a lockstep thread against the servo-bus
//! twin (`robots/hand/twin/src/kind.rs`); on a real serial port the
//! `hand-agent` binary runs it with actions over MQTT ([`live`], the
//! deployable agent) or as stdin lines ([`console`]), and SIGINT/SIGTERM as
//! the shutdown.
//!
//! The ASL table is data (`data/asl_letters.json`); **all of its values are
//! assumed** (the real agent's table was not found), derived from the frontend's
//! 4-value table and the one published 8-value example (letter E); see [`table`].
//!
//! Cargo feature `bedrock` (off by default): `bedrock::BedrockModel`, the
//! [`Model`] over Amazon Bedrock's Converse API (`us.amazon.nova-2-lite-v1:0`,
//! us-east-1, the `fingerspell` tool). Without it the build has no AWS crates.

#![warn(missing_docs)]

pub mod agent;
#[cfg(feature = "bedrock")]
pub mod bedrock;
pub mod console;
pub mod driver;
mod host;
pub mod live;
pub mod mqtt;
pub mod payload;
pub mod plan;
pub mod rustypot_driver;
pub mod service;
pub mod spell;
pub mod state;
pub mod table;
pub mod worker;

pub use agent::{
    AgentLimits, AgentRun, Conversation, FINGERSPELL_TOOL, Message, Model, ModelError, ModelTurn,
    OfflineModel, StopReason, TokenUsage, ToolCall, ToolResult, Tools, run_agent,
};
pub use driver::{ALL_SERVOS, DriverError, HandDriver, Pause, ThreadSleep};
pub use payload::{
    ActionError, ActionInbox, DEFAULT_QUEUE_CAPACITY, Job, MAX_PAYLOAD_BYTES, parse_action,
};
pub use plan::{Action, Calibration, Step, StepKind, Timing, plan};
pub use service::{
    Camera, JobSource, ServiceSummary, Video, VideoRig, VideoStore, serve, video_key,
};
pub use spell::{Hand, SpellOutcome};
pub use state::{HandState, StateMessage, StateSink, action_topic, state_topic};
pub use table::{AslTable, Finger, Pose};
pub use worker::{HandAgent, MessageReport, Worker};

/// This crate's version (what `twinrig --version` lists).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
