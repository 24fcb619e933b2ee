//! The life of a device process on a serial port (feature `cli`): check the
//! endpoint, open the port, start the MQTT session, run the device until
//! SIGINT/SIGTERM, deliver what it queued, exit with a code a supervisor
//! understands. One definition for the firmware host processes
//! (`rvr-bridge`, `echo-device`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::endpoint::EndpointArgs;
use crate::{MqttSession, SerialRx, SerialTx, open_serial};

/// The serial port a firmware host process drives.
#[derive(Debug, Clone, clap::Args)]
pub struct SerialArgs {
    /// The serial port (a USB-UART adapter, a pty such as `twinrig serve
    /// rvr --pty` prints).
    #[arg(long, value_name = "PATH")]
    pub serial: PathBuf,
    /// The port's rate (8N1).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
}

/// How long the start-up check waits for the endpoint's TCP port.
pub const PROBE_LIMIT: Duration = Duration::from_secs(10);
/// How long the exit waits for the broker to acknowledge what is queued.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Runs `device` with the two halves of the serial port and the MQTT
/// session, on one thread, until it returns or SIGINT/SIGTERM arrives.
/// Prints one line when it starts (`{name}: {thing} on {port}, MQTT
/// {endpoint} as {client id}`). Exit codes: 0 stopped by a signal (or the
/// device ended), 1 the runtime or session could not start, 2 bad
/// arguments, files, port or an endpoint nothing answers at; each with a
/// message on stderr.
pub fn serve_on_serial<D>(
    name: &str,
    endpoint: &EndpointArgs,
    port: &SerialArgs,
    device: D,
) -> ExitCode
where
    D: for<'a> AsyncFnOnce(SerialRx, SerialTx, &'a MqttSession),
{
    let fail = |code: u8, problem: String| {
        eprintln!("{name}: {problem}");
        ExitCode::from(code)
    };
    let mqtt = match endpoint
        .mqtt_config()
        .and_then(|c| endpoint.probe(PROBE_LIMIT).map(|()| c))
    {
        Ok(c) => c,
        Err(e) => return fail(2, e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(1, format!("cannot start the I/O runtime: {e}")),
    };
    let stop = Arc::new(Notify::new());
    let on_signal = stop.clone();
    if let Err(e) = ctrlc::set_handler(move || on_signal.notify_one()) {
        return fail(2, format!("cannot handle SIGINT/SIGTERM: {e}"));
    }
    runtime.block_on(async {
        let serial = &port.serial;
        let (rx, tx) = match open_serial(serial, port.baud) {
            Ok(halves) => halves,
            Err(e) => return fail(2, format!("cannot open {e}")),
        };
        let session = match MqttSession::connect(mqtt) {
            Ok(s) => s,
            Err(e) => return fail(1, e.to_string()),
        };
        println!(
            "{name}: {} on {}, MQTT {} as {}",
            endpoint.thing,
            serial.display(),
            endpoint.endpoint,
            endpoint.client_id()
        );
        tokio::select! {
            () = device(rx, tx, &session) => {}
            () = stop.notified() => {}
        }
        // What the device queued last goes out before the process does.
        session.flush(FLUSH_LIMIT).await;
        ExitCode::SUCCESS
    })
}
