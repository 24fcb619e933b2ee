//! `hand-agent`: the ASL agent on a real serial port (the hand's USB
//! adapter, or the pty printed by `twinrig serve hand --pty`).
//!
//! - With `--endpoint`: the deployable agent. Actions arrive on
//!   `the-project/robotic-hand/{thing}/action` over MQTT (TLS with the
//!   thing's certificate, as AWS IoT Core wants), states leave on
//!   `.../state` at QoS 1 (and are printed as JSON lines).
//! - Without: a desk console. Action payloads are read one per line on
//!   stdin (JSON with `sentence`, or plain text); states are written as
//!   JSON lines on stdout.
//!
//! SIGINT/SIGTERM (or the end of stdin): the sentence in progress
//! finishes, then torque goes off on all 8 servos. Exit codes: 0 torque is
//! off, 1 it could not be switched off or the MQTT side failed, 2 bad
//! arguments, files, port or endpoint.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use hand_agent::Timing;
use hand_agent::console::{ConsoleConfig, run_console};
use hand_agent::live::{LiveConfig, run_live};
use twinrig_hal_std::MqttConfig;
use twinrig_hal_std::endpoint::EndpointArgs;

/// The serial side, the same in both modes.
#[derive(Debug, clap::Args)]
struct SerialArgs {
    /// The hand's serial port (its USB adapter, or `twinrig serve hand --pty`'s).
    #[arg(long, visible_alias = "port", value_name = "PATH")]
    serial: String,
    /// Baud rate of the servo bus.
    #[arg(long, default_value_t = 1_000_000)]
    baud: u32,
    /// Send commands without the bus pauses the servos need (to see them missed).
    #[arg(long)]
    no_pauses: bool,
}

/// With `--endpoint`: the deployable agent.
#[derive(Debug, Parser)]
#[command(
    name = "hand-agent",
    version,
    about = "The Amazing Hand's ASL agent: actions over MQTT from the-project/robotic-hand/{thing}/action, states at QoS 1 on .../state"
)]
struct LiveCli {
    #[command(flatten)]
    serial: SerialArgs,
    #[command(flatten)]
    endpoint: EndpointArgs,
}

/// Without: the desk console.
#[derive(Debug, Parser)]
#[command(
    name = "hand-agent",
    version,
    about = "The Amazing Hand's ASL agent on a serial port: action payloads as stdin lines, states as JSON lines on stdout",
    after_help = "With --endpoint HOST[:PORT] --thing NAME and --cert/--key/--ca (or --insecure-tcp), actions arrive over MQTT instead: `hand-agent --endpoint x --help` lists those flags."
)]
struct ConsoleCli {
    #[command(flatten)]
    serial: SerialArgs,
    /// The device name in the printed state topics.
    #[arg(long, value_name = "NAME", default_value = "XIAOAmazingHandRight")]
    device: String,
}

/// Which mode the arguments ask for.
enum Mode {
    Live(EndpointArgs),
    Console(String),
}

/// What runs, once the endpoint checked out.
enum Run {
    Console(String),
    Live(Box<MqttConfig>, String),
}

fn parse() -> (SerialArgs, Mode) {
    let live = std::env::args_os()
        .skip(1)
        .any(|a| a == "--endpoint" || a.to_string_lossy().starts_with("--endpoint="));
    if live {
        let cli = LiveCli::parse();
        (cli.serial, Mode::Live(cli.endpoint))
    } else {
        let cli = ConsoleCli::parse();
        (cli.serial, Mode::Console(cli.device))
    }
}

fn main() -> ExitCode {
    let (serial_args, mode) = parse();
    // The endpoint is checked before the port is opened: nothing moves on
    // a configuration that cannot work.
    let run = match mode {
        Mode::Console(device) => Run::Console(device),
        Mode::Live(endpoint) => {
            let config = endpoint.mqtt_config().and_then(|c| {
                endpoint.probe(twinrig_hal_std::process::PROBE_LIMIT)?;
                Ok(c)
            });
            match config {
                Ok(c) => Run::Live(Box::new(c), endpoint.thing),
                Err(e) => return fail(&e.to_string()),
            }
        }
    };
    let serial = match serialport::new(&serial_args.serial, serial_args.baud)
        // rustypot's examples use 10 ms; the real agent's value is not published.
        .timeout(Duration::from_millis(10))
        .open()
    {
        Ok(p) => p,
        Err(e) => return fail(&format!("cannot open {}: {e}", serial_args.serial)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)) {
        return fail(&format!("cannot handle SIGINT/SIGTERM: {e}"));
    }
    let timing = if serial_args.no_pauses {
        Timing::default().without_bus_pauses()
    } else {
        Timing::default()
    };
    let summary = match run {
        Run::Console(device) => run_console(
            serial,
            std::io::BufReader::new(std::io::stdin()),
            Box::new(std::io::stdout()),
            stop,
            ConsoleConfig { device, timing },
        ),
        Run::Live(config, thing) => {
            match run_live(serial, *config, stop, LiveConfig { thing, timing }) {
                Ok(live) => {
                    eprintln!(
                        "hand-agent: {} states, {} published, {} lost, {}",
                        live.states,
                        live.published,
                        live.lost,
                        if live.acknowledged {
                            "all acknowledged"
                        } else {
                            "NOT all acknowledged"
                        }
                    );
                    live.service
                }
                Err(e) => {
                    eprintln!("hand-agent: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    eprintln!(
        "hand-agent: {} messages; torque {}",
        summary.messages,
        if summary.torque_off {
            "off"
        } else {
            "NOT switched off"
        }
    );
    if summary.torque_off {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(problem: &str) -> ExitCode {
    eprintln!("hand-agent: {problem}");
    ExitCode::from(2)
}
