//! twinrig: the scenario runner that wires the world (`twinrig-sim`), the cloud
//! twin (`twinrig-cloud`) and device firmware (`devices/*`) together, and the
//! reports it writes. The `twinrig` binary is the CLI on top.

pub mod certs;
pub mod check;
pub mod cloud_twin;
pub mod devices;
pub mod explain;
pub mod fleet;
pub mod fleet_prompt;
pub mod fleet_tools;
#[cfg(feature = "aws")]
pub mod fleet_tools_aws;
pub mod init;
pub mod ota_cli;
#[cfg(feature = "aws")]
pub mod ota_remote;
pub mod output;
pub mod readiness;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod serve;
pub mod shrink;
#[cfg(feature = "proptest")]
pub mod strategy;
pub mod suite;
pub mod sweep;
pub mod sweep_cli;
pub mod world;
