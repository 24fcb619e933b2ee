//! twinrig's local twin of the AWS IoT side: the embedded MQTT broker (rumqttd,
//! in-process links, no sockets) with deterministic batch routing, and the
//! services on it — device shadows, IoT SQL rules with transforms and the
//! records store, the firmware registry, the object store for hand videos
//! (and jobs), the thing registry.

pub mod broker;
pub mod certificates;
pub mod identity;
pub mod jobs;
pub mod objects;
pub mod policy;
pub mod presign;
pub mod records;
pub mod registry;
pub mod rules;
pub mod shadow;
pub mod sigv4;
pub mod things;
pub mod topic;

pub use broker::{Broker, BrokerError, ClientId, Delivery, Outgoing};
