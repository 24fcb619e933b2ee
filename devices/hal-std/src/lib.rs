//! The HAL on a real machine (std): what a device process needs to run the
//! same device crates the scenarios run, outside the simulator.
//!
//! One module per backend:
//! - [`clock`]: [`StdClock`], the OS monotonic clock and tokio's timer as
//!   `twinrig_hal::Clock` and `DelayNs`;
//! - [`flash`]: [`FileFlash`], a NOR flash in a file (`embedded_storage`);
//! - [`download`]: [`HttpDownloader`], HTTP(S) range requests as
//!   `twinrig_hal::Downloader`;
//! - [`mqtt`]: [`MqttSession`], an MQTT 3.1.1 session on rumqttc as
//!   `twinrig_hal::MqttClient`;
//! - [`serial`]: a serial port (or a pty) as the UART, `embedded_io_async`
//!   read and write halves;
//! - [`endpoint`] (feature `cli`): the `--endpoint`/`--cert`/`--key`/`--ca`
//!   arguments every device process takes, checked; [`process`] (feature
//!   `cli`): the life of a firmware host process on a serial port.
//!
//! Executor: the network backends and the delay run on tokio. Device code
//! runs inside a tokio runtime with I/O and time enabled; a current-thread
//! runtime is enough (the device crates are single-threaded). The flash is
//! synchronous, as `embedded_storage` is.
#![warn(missing_docs)]

pub mod clock;
pub mod download;
#[cfg(feature = "cli")]
pub mod endpoint;
#[cfg(feature = "cli")]
pub mod process;

pub mod flash;
pub mod mqtt;
pub mod serial;
mod tls;

pub use clock::StdClock;

pub use download::{HttpDownloader, HttpDownloaderConfig};
pub use flash::{FileFlash, FileFlashError};
pub use mqtt::{MqttConfig, MqttSession, MqttSetupError, MqttStats, MqttTransport};
pub use serial::{SerialOpenError, SerialRx, SerialTx, open_serial};
pub use tls::TlsSetupError;
