//! `hand-agent --port PATH`: the ASL agent on a real serial port (the hand's
//! USB adapter, or the pty printed by `twinrig serve hand --pty`). Action
//! payloads are read one per line on stdin (JSON with `sentence`, or plain
//! text); states are written as JSON lines on stdout. SIGINT/SIGTERM (or the
//! end of stdin): the sentence in progress finishes, then torque goes off on
//! all 8 servos.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hand_agent::Timing;
use hand_agent::console::{ConsoleConfig, run_console};

const USAGE: &str = "usage: hand-agent --port PATH [--baud 1000000] [--device NAME] [--no-pauses]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut port, mut baud, mut device, mut pauses) =
        (None, 1_000_000u32, "XIAOAmazingHandRight".to_string(), true);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next(),
            "--baud" => match args.next().and_then(|b| b.parse().ok()) {
                Some(b) => baud = b,
                None => return usage("--baud needs a number"),
            },
            "--device" => match args.next() {
                Some(d) => device = d,
                None => return usage("--device needs a name"),
            },
            "--no-pauses" => pauses = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }
    let Some(port) = port else {
        return usage("--port is required");
    };
    let serial = match serialport::new(&port, baud)
        // rustypot's examples use 10 ms; the real agent's value is not published.
        .timeout(Duration::from_millis(10))
        .open()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot open {port}: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)) {
        eprintln!("error: cannot handle SIGINT/SIGTERM: {e}");
        return ExitCode::from(2);
    }
    let timing = if pauses {
        Timing::default()
    } else {
        Timing::default().without_bus_pauses()
    };
    let summary = run_console(
        serial,
        std::io::BufReader::new(std::io::stdin()),
        Box::new(std::io::stdout()),
        stop,
        ConsoleConfig { device, timing },
    );
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

fn usage(problem: &str) -> ExitCode {
    eprintln!("error: {problem}\n{USAGE}");
    ExitCode::from(2)
}
