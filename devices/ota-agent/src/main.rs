//! `ota-agent`: the OTA client the scenarios run ([`ota_client::run`]), as a
//! Linux device process (a Raspberry Pi pet feeder, say).
//!
//! - MQTT to AWS IoT Core (or `twinrig serve cloud`) over TLS with the
//!   thing's certificate ([`twinrig_hal_std::MqttSession`]);
//! - image downloads from the job's presigned URL over HTTP(S) range
//!   requests ([`twinrig_hal_std::HttpDownloader`]);
//! - the A/B slots and otadata in a flash file
//!   ([`twinrig_hal_std::FileFlash`], every write synced), so a kill or a
//!   power cut at any point leaves a flash that boots a verified image;
//! - a reboot is the process re-executing itself: RAM state is gone, the
//!   flash file decides what runs, exactly as the simulator models it.
//!
//! The self-test of a new image's first boot passes when the MQTT session
//! connects within `--self-test-timeout` (an image that cannot reach the
//! cloud is rolled back), unless `--fail-self-test` rehearses a rollback.
//!
//! Output: one line per event on stdout (boot, connection, download
//! progress by tenths, self-test, reboot); errors on stderr. Exit codes:
//! 2 bad arguments or files, 1 the device cannot run (no bootable image,
//! flash failure, an endpoint that cannot be reached at start: run it under
//! a supervisor that restarts it, as systemd's `Restart=always`).

use std::cell::Cell;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ota_client::image::HEADER_LEN;
use ota_client::{Exit, ImageHeader, Layout, OtaConfig, Partitions};
use twinrig_hal::{DownloadError, DownloadInfo, Downloader};
use twinrig_hal_std::endpoint::EndpointArgs;
use twinrig_hal_std::{FileFlash, HttpDownloader, MqttSession, StdClock};

/// How long a reboot waits for the broker to acknowledge what is queued.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "ota-agent",
    version,
    about = "The twinrig OTA client as a Linux device process: AWS IoT Jobs over MQTT, A/B slots in a flash file"
)]
struct Cli {
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// The flash file holding otadata and the two app slots (created erased
    /// when missing; an existing file must have this layout's size).
    #[arg(long, value_name = "FILE")]
    flash: PathBuf,
    /// Size of each app slot in KiB: the largest image the device takes
    /// (rounded up to 64 KiB). The flash file holds 64 KiB and two slots.
    #[arg(long, value_name = "KIB", default_value_t = 2048)]
    slot_kib: u64,
    /// Factory provisioning: when the flash boots no image, write this
    /// image into ota_0 as the valid one (ignored otherwise).
    #[arg(long, value_name = "FILE")]
    factory_image: Option<PathBuf>,
    /// The device type whose images it accepts (default: the type of the
    /// image the flash boots).
    #[arg(long, value_name = "TYPE")]
    device_type: Option<String>,
    /// Heartbeat period in seconds on `fleet/{thing}/heartbeat` (0: none).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    heartbeat: u64,
    /// Bytes per download request.
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    chunk_size: usize,
    /// How long a new image's self-test waits for the MQTT connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    self_test_timeout: u64,
    /// Fail every new image's self-test (rehearse a rollback).
    #[arg(long)]
    fail_self_test: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match agent(&cli) {
        Ok(Rebooting) => {
            // RAM state goes with the process; the flash file says what runs next.
            let exe = match std::env::current_exe() {
                Ok(exe) => exe,
                Err(e) => {
                    eprintln!("ota-agent: cannot find its own executable to reboot: {e}");
                    return ExitCode::from(1);
                }
            };
            let err = std::process::Command::new(&exe)
                .args(std::env::args_os().skip(1))
                .exec();
            eprintln!("ota-agent: reboot (exec {}) failed: {err}", exe.display());
            ExitCode::from(1)
        }
        Err(Failure::Usage(e)) => {
            eprintln!("ota-agent: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Halted(e)) => {
            eprintln!("ota-agent: halted: {e}");
            ExitCode::from(1)
        }
    }
}

/// The device must restart.
struct Rebooting;

enum Failure {
    /// Bad arguments or files: nothing ran.
    Usage(String),
    /// The device cannot run.
    Halted(String),
}

fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::Usage(e.to_string())
}

fn agent(cli: &Cli) -> Result<Rebooting, Failure> {
    let thing = &cli.endpoint.thing;
    let mqtt_config = cli.endpoint.mqtt_config().map_err(usage)?;
    let downloader_config = cli.endpoint.downloader_config().map_err(usage)?;
    if cli.chunk_size == 0 {
        return Err(usage("--chunk-size must be at least 1"));
    }
    let layout = Layout::for_image(cli.slot_kib.saturating_mul(1024)).ok_or_else(|| {
        usage(format!(
            "--slot-kib {}: too large for a flash",
            cli.slot_kib
        ))
    })?;
    let size = usize::try_from(layout.end::<FileFlash>())
        .map_err(|_| usage("the flash is too large for this machine"))?;
    let flash = FileFlash::open(&cli.flash, size).map_err(usage)?;
    let flash_name = cli.flash.display();
    let mut parts = Partitions::new(flash, layout)
        .map_err(|e| Failure::Halted(format!("{flash_name}: {e}")))?;
    let booted = booted_image(&mut parts);
    let booted = match (booted, &cli.factory_image) {
        (Some(header), _) => header,
        (None, Some(file)) => {
            let image = std::fs::read(file)
                .map_err(|e| usage(format!("--factory-image {}: {e}", file.display())))?;
            check_image(&image).map_err(|e| {
                usage(format!(
                    "--factory-image {}: not a firmware image: {e}",
                    file.display()
                ))
            })?;
            parts.provision(&image).map_err(|e| {
                usage(format!(
                    "--factory-image {}: cannot provision: {e}",
                    file.display()
                ))
            })?;
            let header = booted_image(&mut parts).ok_or_else(|| {
                usage(format!(
                    "--factory-image {}: not a firmware image (no valid header and digest after writing it)",
                    file.display()
                ))
            })?;
            println!(
                "{thing}: provisioned {} {} from {}",
                header.device_type,
                header.version,
                file.display()
            );
            header
        }
        (None, None) => {
            return Err(Failure::Halted(format!(
                "{flash_name} holds no bootable image: give --factory-image FILE to provision it"
            )));
        }
    };
    println!(
        "{thing}: flash selects {} {}",
        booted.device_type, booted.version
    );
    let flash = parts.into_flash();

    let device_type = cli.device_type.clone().unwrap_or(booted.device_type);
    let mut config = OtaConfig::new(&device_type, layout);
    config.chunk_size = cli.chunk_size;
    config.heartbeat_period_ms = cli.heartbeat.saturating_mul(1000);
    if cli.endpoint.client_id() != thing.as_str() {
        config.thing_name = Some(thing.clone());
    }

    // Nothing listening: exit for the supervisor to restart the process.
    cli.endpoint
        .probe(twinrig_hal_std::process::PROBE_LIMIT)
        .map_err(|e| Failure::Halted(e.to_string()))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Halted(format!("cannot start the I/O runtime: {e}")))?;
    let exit = runtime.block_on(async {
        let session = MqttSession::connect(mqtt_config).map_err(usage)?;
        let downloader = Progress::new(
            thing,
            HttpDownloader::new(downloader_config).map_err(usage)?,
        );
        let connected = wait_connected(&session, Duration::from_secs(cli.self_test_timeout)).await;
        let endpoint = &cli.endpoint.endpoint;
        if connected {
            println!(
                "{thing}: connected to {endpoint} as {}",
                cli.endpoint.client_id()
            );
        } else {
            println!(
                "{thing}: not connected to {endpoint} after {} s; still trying",
                cli.self_test_timeout
            );
        }
        let self_test = |image: &ImageHeader| {
            let pass = connected && !cli.fail_self_test;
            let verdict = if pass { "passed" } else { "failed" };
            println!("{thing}: self-test of {} {verdict}", image.version);
            pass
        };
        let clock = StdClock::new();
        let exit = ota_client::run(
            &session,
            &downloader,
            &clock,
            clock,
            flash,
            &config,
            self_test,
        )
        .await;
        // A restart loses what the session has queued: the job's "rebooting"
        // update must reach AWS first, or the new image finds the execution
        // still "downloading" and reports it FAILED.
        if matches!(exit, Exit::Reboot(_)) && !session.flush(FLUSH_LIMIT).await {
            println!(
                "{thing}: rebooting with publishes not acknowledged after {} s",
                FLUSH_LIMIT.as_secs()
            );
        }
        Ok(exit)
    })?;
    match exit {
        Exit::Reboot(flash) => {
            drop(flash);
            // Drop the session's connection with the runtime before the new
            // image connects under the same client id.
            drop(runtime);
            println!("{thing}: rebooting");
            Ok(Rebooting)
        }
        Exit::Halted { reason, .. } => Err(Failure::Halted(reason)),
    }
}

/// A whole image: a header that decodes, and exactly the length it announces.
fn check_image(image: &[u8]) -> Result<ImageHeader, String> {
    let head: &[u8; HEADER_LEN] = image
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| format!("{} bytes, shorter than a header", image.len()))?;
    let header = ImageHeader::decode(head).map_err(|e| e.to_string())?;
    if header.image_len() != image.len() as u64 {
        return Err(format!(
            "the header announces {} bytes, the file has {}",
            header.image_len(),
            image.len()
        ));
    }
    Ok(header)
}

/// The header of the image the flash boots, if it boots one.
fn booted_image(parts: &mut Partitions<FileFlash>) -> Option<ImageHeader> {
    let slot = parts.boot_partition().ok()??;
    parts.read_header(slot).ok()?
}

/// Waits until the session is connected, or `limit` passed.
async fn wait_connected(session: &MqttSession, limit: Duration) -> bool {
    let start = Instant::now();
    while !session.is_connected() {
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// A downloader that prints the progress in tenths, for whoever watches
/// the device (and the kill test, which waits for these lines).
struct Progress<'a, D> {
    thing: &'a str,
    inner: D,
    total: Cell<u64>,
    tenths: Cell<u64>,
}

impl<'a, D> Progress<'a, D> {
    fn new(thing: &'a str, inner: D) -> Self {
        Progress {
            thing,
            inner,
            total: Cell::new(0),
            tenths: Cell::new(0),
        }
    }
}

impl<D: Downloader> Downloader for Progress<'_, D> {
    async fn open(&self, url: &str) -> Result<DownloadInfo, DownloadError> {
        let info = self.inner.open(url).await?;
        self.total.set(info.total_len);
        self.tenths.set(0);
        println!("{}: download of {} bytes", self.thing, info.total_len);
        Ok(info)
    }

    async fn read_chunk(
        &self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, DownloadError> {
        let n = self.inner.read_chunk(url, offset, buf).await?;
        let total = self.total.get();
        let done = offset + n as u64;
        if let Some(tenths) = done.saturating_mul(10).checked_div(total)
            && tenths > self.tenths.get()
        {
            self.tenths.set(tenths);
            println!(
                "{}: downloaded {}% ({done} of {total} bytes)",
                self.thing,
                tenths * 10
            );
        }
        Ok(n)
    }
}
