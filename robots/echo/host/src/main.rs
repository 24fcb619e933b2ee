//! `echo-device`: the reference firmware ([`echo_firmware::run`], what the
//! `echo` scenarios run) as a host process: lines read on a real serial
//! port go to `{prefix}/{thing}/rx`, messages on `{prefix}/{thing}/tx` are
//! written to the port followed by a newline, problems go to
//! `{prefix}/{thing}/status`. The client id must be the thing name (the
//! firmware names its topics after it).

use std::process::ExitCode;

use clap::Parser;
use echo_firmware::EchoConfig;
use twinrig_hal_std::endpoint::EndpointArgs;
use twinrig_hal_std::process::{SerialArgs, serve_on_serial};

#[derive(Debug, Parser)]
#[command(
    name = "echo-device",
    version,
    about = "The echo firmware as a host process: serial-port lines <-> MQTT"
)]
struct Cli {
    #[command(flatten)]
    port: SerialArgs,
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// The topics' prefix.
    #[arg(long, default_value = "twinrig/echo")]
    topic_prefix: String,
    /// Longest line forwarded, in bytes (longer ones are reported on `status`).
    #[arg(long, default_value_t = 256)]
    max_line: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.endpoint.client_id() != cli.endpoint.thing {
        eprintln!(
            "echo-device: the firmware names its topics after its client id: leave out --client-id, or make it the thing name"
        );
        return ExitCode::from(2);
    }
    let config = EchoConfig {
        topic_prefix: cli.topic_prefix.clone(),
        max_line: cli.max_line,
    };
    serve_on_serial(
        "echo-device",
        &cli.endpoint,
        &cli.port,
        async |rx, tx, session| echo_firmware::run(rx, tx, session, &config).await,
    )
}
