//! twinrig: the scenario runner that wires the world (`twinrig-sim`), the cloud
//! twin (`twinrig-cloud`) and device firmware (`devices/*`) together, and the
//! reports it writes. The `twinrig` binary is the CLI on top.

pub mod check;
pub mod cloud_twin;
pub mod devices;
pub mod fleet;
pub mod fleet_prompt;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod serve;
pub mod suite;
pub mod voice;
