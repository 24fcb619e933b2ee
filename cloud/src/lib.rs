//! twinrig's local twin of the AWS IoT side. For now: the embedded MQTT broker
//! (rumqttd, in-process links, no sockets) with deterministic batch routing.
//! Device shadows, jobs, rules and the firmware registry build on it.

pub mod broker;
pub mod records;
pub mod rules;
pub mod shadow;
pub mod topic;

pub use broker::{Broker, BrokerError, ClientId, Delivery, Outgoing};
