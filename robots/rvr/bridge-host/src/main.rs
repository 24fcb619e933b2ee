//! `rvr-bridge`: the ESP32-S3 bridge firmware ([`rvr_bridge::run`], the code
//! the `rvr` scenarios run) as a host process. The RVR is on a real serial
//! port (a USB-UART adapter on its expansion port, or the pty of `twinrig
//! serve rvr --pty`); MQTT goes to AWS IoT Core or `twinrig serve cloud`
//! over TLS with the thing's certificate. Commands arrive on
//! `the-project/sphero-rvr/{thing}/action`, statuses and telemetry leave on
//! `.../state`, exactly as from the board.
//!
//! `ts` in its messages is Unix time: the process's start time stands in
//! for the board's SNTP. SIGINT/SIGTERM: exit 0 (the RVR stops driving on
//! its own when its drive commands stop coming). Exit codes: 2 bad
//! arguments, port or endpoint; 1 the MQTT session could not start.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use rvr_bridge::BridgeConfig;
use twinrig_hal_std::StdClock;
use twinrig_hal_std::endpoint::EndpointArgs;
use twinrig_hal_std::process::{SerialArgs, serve_on_serial};

#[derive(Debug, Parser)]
#[command(
    name = "rvr-bridge",
    version,
    about = "The Sphero RVR bridge firmware as a host process: the RVR on a serial port, MQTT to AWS IoT Core"
)]
struct Cli {
    /// The RVR's UART: a USB-UART adapter on its expansion port, or
    /// `twinrig serve rvr --pty`'s pty; 115200 8N1 unless told otherwise.
    #[command(flatten)]
    port: SerialArgs,
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// The topics' prefix: commands on `{prefix}/{thing}/action`.
    #[arg(long, default_value = "the-project/sphero-rvr")]
    topic_prefix: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = BridgeConfig {
        topic_prefix: cli.topic_prefix.clone(),
        epoch_offset_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        ..BridgeConfig::default()
    };
    serve_on_serial(
        "rvr-bridge",
        &cli.endpoint,
        &cli.port,
        async |rx, tx, session| {
            let clock = StdClock::new();
            rvr_bridge::run(rx, tx, session, &clock, clock, &config).await
        },
    )
}
