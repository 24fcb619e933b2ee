//! The OTA state machine: job document -> download -> verify -> select ->
//! reboot -> self-test -> confirm or roll back.
//!
//! It is transport-free: the caller feeds downloaded bytes and sends the
//! returned [`JobUpdate`]s on the Jobs MQTT API. Typical use:
//!
//! 1. at boot, [`Updater::boot`] (runs the rollback decision and the self-test);
//! 2. for a job: [`Updater::start_job`] -> publish its update; if IN_PROGRESS,
//!    download and [`Updater::feed`] each chunk (publish progress as wanted),
//!    then [`Updater::finish`] -> publish, and reboot on [`Action::Reboot`];
//! 3. after the reboot, for the job still IN_PROGRESS with `step = rebooting`,
//!    [`Updater::resume_job`] gives SUCCEEDED (the new version runs, confirmed)
//!    or FAILED (the device rolled back).

use alloc::format;
use alloc::string::{String, ToString};

use embedded_storage::nor_flash::NorFlash;

use crate::image::{Expectation, ImageHeader, ImageVerifier, Version};
use crate::job::{ExecutionStatus, JobDocError, JobUpdate, OtaJob};
use crate::partitions::{BootDecision, ImageState, PartitionError, Partitions, Slot};

/// The device's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Its device type (must match job documents and image headers).
    pub device_type: String,
    /// The OTA gate: when off, OTA jobs are REJECTED.
    pub ota_enabled: bool,
}

/// The self-test an image runs on its first boot.
pub trait SelfTest {
    /// `true` if the image works and should be confirmed.
    fn run(&mut self, image: &ImageHeader) -> bool;
}

impl<T: FnMut(&ImageHeader) -> bool> SelfTest for T {
    fn run(&mut self, image: &ImageHeader) -> bool {
        self(image)
    }
}

/// What the caller must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// Restart the device (run [`Updater::boot`] again on the same flash).
    Reboot,
}

/// The result of [`Updater::boot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOutcome {
    /// An image runs.
    Running {
        /// Its slot.
        slot: Slot,
        /// Its header (device type, version).
        header: ImageHeader,
        /// This boot confirmed a new image (its self-test passed).
        confirmed_now: bool,
        /// A newer image was abandoned and this is the previous one.
        rolled_back_from: Option<Slot>,
    },
    /// The new image failed its self-test and is marked INVALID: reboot to
    /// return to the previous image.
    Reboot {
        /// The image that failed.
        failed: ImageHeader,
    },
    /// Nothing bootable.
    NoBootableImage,
}

/// Errors of the updater that are not job outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdaterError<E> {
    /// A partition/flash operation failed.
    Partition(PartitionError<E>),
    /// The chosen slot has no readable header (cannot happen after a checked boot).
    NoHeader,
}

impl<E> From<PartitionError<E>> for UpdaterError<E> {
    fn from(e: PartitionError<E>) -> Self {
        UpdaterError::Partition(e)
    }
}

#[derive(Debug)]
struct Download {
    job: OtaJob,
    verifier: ImageVerifier,
}

/// The OTA state machine over a partition table.
#[derive(Debug)]
pub struct Updater<F: NorFlash> {
    parts: Partitions<F>,
    config: DeviceConfig,
    running: Option<ImageHeader>,
    rolled_back_from: Option<Slot>,
    download: Option<Download>,
}

impl<F: NorFlash> Updater<F> {
    /// A state machine over `parts`; call [`Self::boot`] first.
    pub fn new(parts: Partitions<F>, config: DeviceConfig) -> Self {
        Updater {
            parts,
            config,
            running: None,
            rolled_back_from: None,
            download: None,
        }
    }

    /// The partition table.
    pub fn partitions(&mut self) -> &mut Partitions<F> {
        &mut self.parts
    }

    /// The flash under the partition table, for reading.
    pub fn partitions_flash(&self) -> &F {
        self.parts.flash()
    }

    /// Give the partition table back.
    pub fn into_partitions(self) -> Partitions<F> {
        self.parts
    }

    /// The device settings (e.g. to flip the OTA gate).
    pub fn config_mut(&mut self) -> &mut DeviceConfig {
        &mut self.config
    }

    /// The header of the running image (after [`Self::boot`]).
    pub fn running_image(&self) -> Option<&ImageHeader> {
        self.running.as_ref()
    }

    /// The running firmware version (for the shadow's `reported`).
    pub fn running_version(&self) -> Option<Version> {
        self.running.as_ref().map(|h| h.version)
    }

    /// Whether a download is open.
    pub fn is_updating(&self) -> bool {
        self.download.is_some()
    }

    /// Boot: run the rollback decision; on a trial boot run the self-test and
    /// confirm the image or mark it invalid (then the caller reboots).
    pub fn boot<T: SelfTest>(
        &mut self,
        mut self_test: T,
    ) -> Result<BootOutcome, UpdaterError<F::Error>> {
        self.download = None;
        self.running = None;
        let decision = self.parts.on_boot()?;
        let Some(slot) = decision.slot() else {
            return Ok(BootOutcome::NoBootableImage);
        };
        let header = self
            .parts
            .read_header(slot)?
            .ok_or(UpdaterError::NoHeader)?;
        match decision {
            BootDecision::TrialBoot { .. } => {
                if self_test.run(&header) {
                    self.parts.mark_valid()?;
                    self.running = Some(header.clone());
                    self.rolled_back_from = None;
                    Ok(BootOutcome::Running {
                        slot,
                        header,
                        confirmed_now: true,
                        rolled_back_from: None,
                    })
                } else {
                    match self.parts.mark_invalid_and_rollback() {
                        Ok(_) => Ok(BootOutcome::Reboot { failed: header }),
                        // Nothing to go back to: keep running the image, unconfirmed.
                        Err(PartitionError::RollbackFailed) => {
                            self.running = Some(header.clone());
                            Ok(BootOutcome::Running {
                                slot,
                                header,
                                confirmed_now: false,
                                rolled_back_from: None,
                            })
                        }
                        Err(e) => Err(e.into()),
                    }
                }
            }
            BootDecision::Boot {
                rolled_back_from, ..
            } => {
                self.running = Some(header.clone());
                self.rolled_back_from = rolled_back_from;
                Ok(BootOutcome::Running {
                    slot,
                    header,
                    confirmed_now: false,
                    rolled_back_from,
                })
            }
            BootDecision::NoBootableImage => Ok(BootOutcome::NoBootableImage),
        }
    }

    fn reject(&self, reason: String) -> JobUpdate {
        JobUpdate::new(
            ExecutionStatus::Rejected,
            &[("step", "rejected".into()), ("reason", reason)],
        )
    }

    fn fail(&mut self, reason: String) -> JobUpdate {
        self.download = None;
        self.parts.abort_update();
        JobUpdate::new(
            ExecutionStatus::Failed,
            &[("step", "failed".into()), ("reason", reason)],
        )
    }

    fn progress(&self, step: &str) -> JobUpdate {
        let (written, total, version) = match &self.download {
            Some(d) => (d.verifier.received(), d.job.size, d.job.version.to_string()),
            None => (0, 0, String::new()),
        };
        JobUpdate::new(
            ExecutionStatus::InProgress,
            &[
                ("step", step.into()),
                ("bytesWritten", written.to_string()),
                ("totalBytes", total.to_string()),
                ("version", version),
            ],
        )
    }

    /// Decide on a job document. `None`: not an OTA job (leave it alone).
    /// Otherwise REJECTED (bad document, wrong device type, gate off, same
    /// version, too large; nothing is written to flash) or IN_PROGRESS with
    /// the download open.
    pub fn start_job(&mut self, doc: &[u8]) -> Option<JobUpdate> {
        let job = match OtaJob::parse(doc) {
            Ok(j) => j,
            Err(JobDocError::NotOta) => return None,
            Err(JobDocError::Invalid(why)) => return Some(self.reject(why)),
        };
        if self.download.is_some() {
            return Some(self.reject("another update is in progress".into()));
        }
        if job.device_type != self.config.device_type {
            return Some(self.reject(format!(
                "wrong device type: job is for {}, device is {}",
                job.device_type, self.config.device_type
            )));
        }
        if !self.config.ota_enabled {
            return Some(self.reject(format!("OTA disabled for {}", self.config.device_type)));
        }
        let Some(running) = self.running_version() else {
            return Some(self.reject("no running image".into()));
        };
        if job.version == running {
            return Some(self.reject(format!("already running {running}")));
        }
        let verifier = match ImageVerifier::new(Expectation {
            device_type: self.config.device_type.clone(),
            running_version: Some(running),
            size: job.size,
            sha256: job.sha256,
            max_size: u64::from(self.parts.slot_size()),
        }) {
            Ok(v) => v,
            Err(e) => return Some(self.reject(e.to_string())),
        };
        if let Err(e) = self.parts.begin_update() {
            return Some(self.fail(e.to_string()));
        }
        self.download = Some(Download { job, verifier });
        Some(self.progress("downloading"))
    }

    /// Consume the next downloaded chunk: verify it, then write it to the
    /// inactive slot. IN_PROGRESS with progress, or FAILED (update abandoned;
    /// the boot selection is untouched).
    pub fn feed(&mut self, chunk: &[u8]) -> JobUpdate {
        let Some(d) = self.download.as_mut() else {
            return self.fail("no update in progress".into());
        };
        if let Err(e) = d.verifier.feed(chunk) {
            return self.fail(e.to_string());
        }
        if let Err(e) = self.parts.write_update(chunk) {
            return self.fail(e.to_string());
        }
        self.progress("downloading")
    }

    /// Give up the download (link outage, expired URL, ...): FAILED with `reason`.
    pub fn abort(&mut self, reason: &str) -> JobUpdate {
        self.fail(reason.into())
    }

    /// The download is complete: check length and digest, flush, read back and
    /// select the new slot. On success the job stays IN_PROGRESS
    /// (`step = rebooting`) and the caller must reboot; otherwise FAILED.
    pub fn finish(&mut self) -> (JobUpdate, Action) {
        let Some(d) = self.download.take() else {
            return (self.fail("no update in progress".into()), Action::None);
        };
        let written = d.verifier.received();
        let total = d.job.size;
        let version = d.job.version;
        let verified = match d.verifier.finish() {
            Ok(v) => v,
            Err(e) => return (self.fail(e.to_string()), Action::None),
        };
        let slot = match self.parts.finish_update() {
            Ok((slot, _)) => slot,
            Err(e) => return (self.fail(e.to_string()), Action::None),
        };
        if let Err(e) = self.parts.set_boot_checked(slot, &verified.sha256) {
            return (self.fail(format!("select {slot}: {e}")), Action::None);
        }
        (
            JobUpdate::new(
                ExecutionStatus::InProgress,
                &[
                    ("step", "rebooting".into()),
                    ("bytesWritten", written.to_string()),
                    ("totalBytes", total.to_string()),
                    ("version", version.to_string()),
                ],
            ),
            Action::Reboot,
        )
    }

    /// After a reboot, the outcome of an OTA job that was IN_PROGRESS at
    /// `step = rebooting`: SUCCEEDED if the job's version runs and is confirmed,
    /// FAILED (rolled back) otherwise. `None` if `doc` is not an OTA job.
    pub fn resume_job(&mut self, doc: &[u8]) -> Option<JobUpdate> {
        let job = match OtaJob::parse(doc) {
            Ok(j) => j,
            Err(JobDocError::NotOta) => return None,
            Err(JobDocError::Invalid(why)) => return Some(self.fail(why)),
        };
        let running = self.running_version();
        let confirmed = matches!(
            self.parts.running_state(),
            Some(ImageState::Valid | ImageState::Undefined)
        );
        if running == Some(job.version) && confirmed {
            return Some(JobUpdate::new(
                ExecutionStatus::Succeeded,
                &[
                    ("step", "done".into()),
                    ("version", job.version.to_string()),
                ],
            ));
        }
        let now = running.map_or_else(|| String::from("nothing"), |v| v.to_string());
        let why = match self.rolled_back_from {
            Some(slot) => format!(
                "new image {} failed its first boot in {slot}; rolled back to {now}",
                job.version
            ),
            None => format!("device runs {now}, not {}", job.version),
        };
        Some(self.fail(why))
    }
}
