//! `twinrig ota "<prompt>"`: an operator prompt against a fleet, end to end
//! in virtual time.
//!
//! The fleet comes from a fleet file (`--fleet`, see
//! [`crate::scenario::fleet_file`]) or the built-in `fleets/default.yaml`. A
//! world is built around it — broker, cloud twin, every fleet device running
//! the real OTA client — and an operator task plays the session: it waits
//! for the devices to report in, runs the prompt through the fleet tools
//! ([`crate::fleet_tools::run_prompt`]), follows the job it created until it
//! ends, then asks for the job's status and the fleet's. The world is built
//! here rather than as a scenario for the runner because the prompt's tool
//! calls and the typed job and fleet reports are wanted as values, not as
//! trace lines.
//!
//! Exit codes: 0 the action completed (a job: every device SUCCEEDED); 1 the
//! job failed, was aborted or did not finish in time, or a tool refused the
//! call; 2 bad input (fleet file, arguments); 3 the prompt was not
//! understood (answered, nothing done).

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use twinrig_cloud::jobs::{
    AbortAction, AbortConfig, AbortCriteria, FailureType, RolloutConfig, RolloutSettings,
    TimeoutConfig,
};
use twinrig_sim::{MILLIS, Nanos, SECONDS, Sim, SimHandle, format_nanos};

use crate::cloud_twin::CloudTwin;
use crate::fleet::{Fleet, LocalFleet};
use crate::fleet_prompt::OfflineIntents;
use crate::fleet_tools::{
    FleetBackend, FleetStatus, JobCounts, JobState, PromptResult, PromptSession, Recording, Target,
    run_prompt,
};
use crate::scenario::{DEFAULT_EPOCH_UNIX_S, FleetFile, LinkModel, ScenarioError};
use crate::world::{FleetSpec, WorldError, WorldSpec};

/// The built-in fleet, used when no `--fleet` is given.
pub const DEFAULT_FLEET_YAML: &str = include_str!("../fleets/default.yaml");
/// How the built-in fleet is named in messages.
pub const DEFAULT_FLEET_NAME: &str = "fleets/default.yaml (built in)";

/// Exit code: the prompt was not understood.
pub const EXIT_UNCLEAR: u8 = 3;

/// Longest wait for the fleet's devices to report their versions at start.
const BOOT_WAIT: Nanos = 60 * SECONDS;
/// How often the operator polls the job (virtual time).
const POLL: Nanos = SECONDS;
/// Time after the job ends for the last shadow updates to land.
const SETTLE: Nanos = 5 * SECONDS;

/// `twinrig ota` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct OtaArgs {
    /// What the operator asks, e.g. "update the pet_feeder device group to the latest firmware".
    pub prompt: String,
    /// Fleet file: a YAML file with a scenario's `fleet:` section (and an optional `seed:`).
    /// Default: the built-in fleets/default.yaml.
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// Seed (default: the fleet file's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Id of the job the prompt creates.
    #[arg(long, default_value = "ota-1")]
    pub job_id: String,
    /// At most this many devices updating at once (twinrig's `maxInProgress`; default 10,
    /// not sent with --endpoint: AWS IoT Jobs has no such setting).
    #[arg(long)]
    pub max_in_progress: Option<u32>,
    /// Abort the job when more than this many devices have failed (twinrig's
    /// `abortAfterFailures`; default 10, not sent with --endpoint).
    #[arg(long)]
    pub abort_after_failures: Option<u32>,
    /// Abort the job when this percentage of completed executions failed (AWS abortConfig; 0: off).
    #[arg(long, default_value_t = 5.0)]
    pub abort_percent: f64,
    /// ... evaluated once this many executions have completed.
    #[arg(long, default_value_t = 10)]
    pub abort_min_executed: u32,
    /// Devices notified per minute (AWS maximumPerMinute; default: AWS's 1000).
    #[arg(long)]
    pub max_per_minute: Option<u32>,
    /// An execution IN_PROGRESS longer than this many minutes is TIMED_OUT (AWS timeoutConfig; 0: off).
    #[arg(long, default_value_t = 10)]
    pub in_progress_timeout_minutes: u64,
    /// An execution offered to its device but still QUEUED after this many minutes is TIMED_OUT
    /// and frees its slot, so a device that never connects cannot hold the job open (twinrig's
    /// `queuedTimeoutInMinutes`; AWS has no such setting; 0: off).
    #[arg(long, default_value_t = 0)]
    pub queued_timeout_minutes: u64,
    /// Give up following the job after this much virtual time (e.g. 30m, 2h).
    #[arg(long, default_value = "1h", value_parser = crate::serve::parse_duration)]
    pub timeout: std::time::Duration,
    /// Print the report as JSON on stdout (no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Write the run's MCAP trace here.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Run the prompt against a live AWS IoT control plane instead of a simulated fleet:
    /// `twinrig serve cloud --http`'s URL (e.g. http://127.0.0.1:8443), or AWS's with real
    /// credentials (`aws` feature; credentials from the environment). --fleet gives the
    /// firmware manifest (versions, SHA-256, sizes).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// With --endpoint: the region in ARNs and the SigV4 scope.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// With --endpoint: the account id in ARNs.
    #[arg(long, default_value = "123456789012")]
    pub account_id: String,
}

/// `maxInProgress` and `abortAfterFailures` when not given (local runs).
const DEFAULT_LIMIT: u32 = 10;

impl OtaArgs {
    /// The rollout settings the flags ask for.
    pub fn rollout(&self) -> Result<RolloutSettings, InvalidFlag> {
        if self.max_in_progress == Some(0) {
            return Err(InvalidFlag("--max-in-progress must be at least 1"));
        }
        if !(0.0..=100.0).contains(&self.abort_percent) {
            return Err(InvalidFlag("--abort-percent must be from 0 to 100"));
        }
        if self.abort_percent > 0.0 && self.abort_min_executed == 0 {
            return Err(InvalidFlag("--abort-min-executed must be at least 1"));
        }
        if self
            .max_per_minute
            .is_some_and(|m| !(1..=1000).contains(&m))
        {
            return Err(InvalidFlag("--max-per-minute must be from 1 to 1000"));
        }
        if self.in_progress_timeout_minutes > 10_080 {
            return Err(InvalidFlag(
                "--in-progress-timeout-minutes must be at most 10080 (7 days)",
            ));
        }
        if self.queued_timeout_minutes > 10_080 {
            return Err(InvalidFlag(
                "--queued-timeout-minutes must be at most 10080 (7 days)",
            ));
        }
        let timeout_config = TimeoutConfig {
            in_progress_timeout_in_minutes: (self.in_progress_timeout_minutes > 0)
                .then_some(self.in_progress_timeout_minutes),
            queued_timeout_in_minutes: (self.queued_timeout_minutes > 0)
                .then_some(self.queued_timeout_minutes),
        };
        Ok(RolloutSettings {
            job_executions_rollout_config: self.max_per_minute.map(|m| RolloutConfig {
                maximum_per_minute: Some(m),
                exponential_rate: None,
            }),
            abort_config: (self.abort_percent > 0.0).then(|| AbortConfig {
                criteria_list: vec![AbortCriteria {
                    failure_type: FailureType::All,
                    action: AbortAction::Cancel,
                    threshold_percentage: self.abort_percent,
                    min_number_of_executed_things: self.abort_min_executed,
                }],
            }),
            timeout_config: (timeout_config != TimeoutConfig::default()).then_some(timeout_config),
            job_executions_retry_config: None,
            // twinrig's extensions: their defaults apply to the simulated
            // fleet only; given with --endpoint, the AWS backend refuses them.
            max_in_progress: match (&self.endpoint, self.max_in_progress) {
                (None, m) => Some(m.unwrap_or(DEFAULT_LIMIT)),
                (Some(_), m) => m,
            },
            abort_after_failures: match (&self.endpoint, self.abort_after_failures) {
                (None, a) => Some(a.unwrap_or(DEFAULT_LIMIT)),
                (Some(_), a) => a,
            },
        })
    }
}

/// How the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OtaOutcome {
    /// The job completed and every device succeeded.
    Succeeded,
    /// A tool call that creates no job (status, gate, cancel) was made.
    Done,
    /// The job completed, but some devices failed, rejected it or timed out.
    JobFailed,
    /// The job was canceled (by its abort criteria or otherwise).
    Aborted,
    /// The job was still running at `--timeout`.
    Unfinished,
    /// A tool refused the call (no such version, no such device, ...).
    Refused,
    /// The prompt was not understood; nothing was done.
    Unclear,
}

impl OtaOutcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            OtaOutcome::Succeeded | OtaOutcome::Done => 0,
            OtaOutcome::Unclear => EXIT_UNCLEAR,
            _ => 1,
        }
    }
}

/// Everything the session did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OtaReport {
    /// The prompt.
    pub prompt: String,
    /// Which fleet file.
    pub fleet: String,
    /// The seed.
    pub seed: u64,
    /// How it ended.
    pub outcome: OtaOutcome,
    /// The prompt's tool calls and job (where the job ended).
    #[serde(flatten)]
    pub session: PromptSession,
    /// Versions reported before the prompt.
    pub status_before: FleetStatus,
    /// Versions reported at the end.
    pub status_after: FleetStatus,
    /// Virtual time at the end, seconds.
    pub virtual_s: f64,
    /// Device tasks that panicked (a harness bug if not empty).
    pub device_panics: Vec<String>,
}

/// Progress of the session, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Virtual time.
    pub at: Nanos,
    /// The job's counts, once a job exists.
    pub job: Option<JobCounts>,
}

/// Reads the fleet: the file at `path`, or the built-in one.
pub fn load_fleet(path: Option<&std::path::Path>) -> Result<(FleetFile, String), ScenarioError> {
    match path {
        Some(p) => crate::scenario::load_fleet_file(p).map(|f| (f, p.display().to_string())),
        None => crate::scenario::parse_fleet_file(
            DEFAULT_FLEET_YAML,
            std::path::Path::new(DEFAULT_FLEET_NAME),
        )
        .map(|f| (f, DEFAULT_FLEET_NAME.to_owned())),
    }
}

/// `twinrig firmware`: writes every image of the fleet's firmware sets into
/// `out` as `{type}-{version}.bin`; returns each file with its length and
/// SHA-256. An existing file is never overwritten (the error names it).
pub fn write_firmware(
    fleet: Option<&std::path::Path>,
    out: &std::path::Path,
) -> Result<Vec<(std::path::PathBuf, usize, String)>, String> {
    let (file, name) = load_fleet(fleet).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut written = Vec::new();
    for set in &file.fleet.firmware {
        for version in &set.versions {
            let image = crate::fleet::firmware_image(&set.device_type, *version, set.size.0)
                .map_err(|e| format!("{name}: {}: {e}", set.device_type))?;
            let path = out.join(format!("{}-{version}.bin", set.device_type));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            std::io::Write::write_all(&mut f, &image)
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let sha = ota_client::image::to_hex(&ota_client::image::sha256(&image));
            written.push((path, image.len(), sha));
        }
    }
    Ok(written)
}

/// Why an `ota` session could not be played to its end.
#[derive(Debug, thiserror::Error)]
pub enum OtaRunError {
    /// The world could not be built.
    #[error(transparent)]
    World(#[from] WorldError),
    /// The world came without the fleet it was asked for.
    #[error("the world was built without its fleet")]
    NoFleet,
    /// The simulator stopped with an error.
    #[error("{0}")]
    Sim(String),
    /// A device task panicked (which, where and why).
    #[error("a device task panicked: {0}")]
    Panicked(String),
    /// Nothing was scheduled any more before the session ended.
    #[error(
        "the session stopped at {at}: nothing is scheduled any more, so virtual time \
         cannot advance; {waiting}"
    )]
    Stalled {
        /// Virtual time it stopped at.
        at: String,
        /// The tasks still waiting, and on what.
        waiting: String,
    },
    /// Virtual time reached the session's limit.
    #[error("the session did not finish within its time limit")]
    TimeLimit,
}

/// A command-line flag out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidFlag(&'static str);

/// Runs one prompt against `file`'s fleet in virtual time. `follow` is how
/// long to follow a job; `progress` is called as the session goes on.
/// Returns the report and the trace.
pub fn run(
    file: &FleetFile,
    fleet_name: &str,
    prompt: &str,
    job_id: &str,
    rollout: &RolloutSettings,
    follow: Nanos,
    progress: impl FnMut(Progress) + 'static,
) -> Result<(OtaReport, twinrig_sim::Trace), OtaRunError> {
    let mut sim = Sim::new(file.seed);
    let handle = sim.handle();
    // Saturating: a `--timeout` near the end of virtual time follows the job
    // to its end instead of wrapping round to a limit already passed.
    let limit = BOOT_WAIT
        .saturating_add(follow)
        .saturating_add(SETTLE)
        .saturating_add(10 * SECONDS);
    let world = crate::world::build(
        &mut sim,
        WorldSpec {
            scene: None,
            rules: None,
            epoch_unix_s: DEFAULT_EPOCH_UNIX_S,
            fleet: Some(FleetSpec {
                config: &file.fleet,
                // A fleet file has no scenario devices, so no group
                // `members` (its check refuses them).
                members: &[],
                default_link: &LinkModel::default(),
                run_limit: limit,
            }),
        },
    )?;
    // The cloud twin is the only reader of the broker's log (it holds a
    // cursor): what it has read can go, so a long session stays flat.
    world
        .network
        .set_retention(|_| false, crate::runner::OBSERVED_WINDOW);
    let (cloud, fleet) = match world.fleet {
        Some(fleet) => (world.cloud, fleet),
        None => return Err(OtaRunError::NoFleet),
    };
    let session = Session {
        handle: handle.clone(),
        cloud,
        fleet,
        prompt: prompt.to_owned(),
        job_id: job_id.to_owned(),
        rollout: rollout.clone(),
        follow,
        progress: RefCell::new(Box::new(progress)),
    };
    let ran = sim
        .run_to_completion("operator", limit, async move { session.play().await })
        .map_err(|e| OtaRunError::Sim(e.to_string()));
    let panics: Vec<String> = sim
        .failures()
        .iter()
        .map(|f| format!("{} at {}: {}", f.task, format_nanos(f.at), f.message))
        .collect();
    let virtual_s = sim.now() as f64 / SECONDS as f64;
    let stopped_at = sim.now();
    let waiting = sim.describe_waiting(8);
    sim.shutdown();
    let trace = sim.take_trace();
    let played = ran?;
    let Some(mut played) = played else {
        return Err(match panics.first() {
            Some(p) => OtaRunError::Panicked(p.clone()),
            None if stopped_at < limit => OtaRunError::Stalled {
                at: format_nanos(stopped_at),
                waiting,
            },
            None => OtaRunError::TimeLimit,
        });
    };
    played.fleet = fleet_name.to_owned();
    played.seed = file.seed;
    played.virtual_s = virtual_s;
    played.device_panics = panics;
    Ok((played, trace))
}

/// The operator's side of the session, as a task in the world.
struct Session {
    handle: SimHandle,
    cloud: Rc<CloudTwin>,
    fleet: Rc<Fleet>,
    prompt: String,
    job_id: String,
    rollout: RolloutSettings,
    follow: Nanos,
    progress: RefCell<Box<dyn FnMut(Progress)>>,
}

impl Session {
    fn report(&self, job: Option<JobCounts>) {
        (self.progress.borrow_mut())(Progress {
            at: self.handle.now(),
            job,
        });
    }

    async fn play(self) -> OtaReport {
        let tools = LocalFleet::new(&self.fleet, &self.cloud);
        self.wait_for_devices(&tools).await;
        let status_before = tools.status_now(&Target::Fleet);
        let mut job_id = Some(self.job_id.clone());
        let mut next_id = || job_id.take().unwrap_or_default();
        let prompt = run_prompt(
            &tools,
            &OfflineIntents,
            &self.prompt,
            &mut next_id,
            &self.rollout,
        )
        .await;
        let mut report = OtaReport {
            prompt: self.prompt.clone(),
            fleet: String::new(),
            seed: 0,
            outcome: OtaOutcome::Done,
            session: PromptSession {
                intent: prompt.intent.clone(),
                tool_calls: prompt.calls,
                ..PromptSession::default()
            },
            status_before,
            status_after: FleetStatus::default(),
            virtual_s: 0.0,
            device_panics: Vec::new(),
        };
        match prompt.result {
            PromptResult::Unclear(answer) => {
                report.outcome = OtaOutcome::Unclear;
                report.session.answer = Some(answer);
            }
            PromptResult::Failed(why) => {
                report.outcome = OtaOutcome::Refused;
                report.session.answer = Some(why);
            }
            PromptResult::Created(created) => {
                let job = created.job_id.clone();
                report.session.job_created = Some(created);
                let finished = self.follow_job(&tools, &job).await;
                self.handle.sleep(SETTLE).await;
                let recorded = Recording::new(&tools);
                let final_report = recorded.job_status(&job).await.ok();
                report.outcome = match &final_report {
                    None => OtaOutcome::Refused,
                    Some(_) if !finished => OtaOutcome::Unfinished,
                    Some(r) if r.status == JobState::Canceled => OtaOutcome::Aborted,
                    Some(r) if r.counts.succeeded == r.counts.total => OtaOutcome::Succeeded,
                    Some(_) => OtaOutcome::JobFailed,
                };
                report.session.job = final_report;
                let _ = recorded.fleet_status(&Target::Fleet).await;
                report.session.tool_calls.extend(recorded.into_calls());
            }
            PromptResult::Status(_) | PromptResult::Canceled(_) | PromptResult::Gate(_) => {}
        }
        report.status_after = tools.status_now(&Target::Fleet);
        report
    }

    /// Waits until every device that is online has reported a version (or
    /// [`BOOT_WAIT`] passes): an operator looks at a fleet that has booted.
    async fn wait_for_devices(&self, tools: &LocalFleet<'_>) {
        let online = self.fleet.devices().iter().filter(|d| !d.offline).count() as u64;
        let deadline = self.handle.now().saturating_add(BOOT_WAIT);
        loop {
            let status = tools.status_now(&Target::Fleet);
            let reported: u64 = status
                .by_type
                .values()
                .flat_map(|vs| vs.iter())
                .filter(|(v, _)| v.as_str() != crate::fleet_tools::UNKNOWN_VERSION)
                .map(|(_, n)| n)
                .sum();
            self.report(None);
            if reported >= online || self.handle.now() >= deadline {
                return;
            }
            self.handle.sleep(100 * MILLIS).await;
        }
    }

    /// Polls the job until it is no longer IN_PROGRESS; false if `follow` ran out first.
    async fn follow_job(&self, tools: &LocalFleet<'_>, job: &str) -> bool {
        let deadline = self.handle.now().saturating_add(self.follow);
        loop {
            let Ok(r) = tools.job_status(job).await else {
                return true;
            };
            self.report(Some(r.counts));
            if r.status != JobState::InProgress {
                return true;
            }
            let now = self.handle.now();
            if now >= deadline {
                return false;
            }
            self.handle.sleep(POLL.min(deadline - now)).await;
        }
    }
}

/// The report for people.
pub fn render_text(r: &OtaReport, wall: Option<std::time::Duration>) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("prompt: {}", r.prompt));
    line(format!(
        "fleet:  {}: {} devices, {} types; seed {}",
        r.fleet,
        r.status_before.devices(),
        r.status_before.by_type.len(),
        r.seed
    ));
    line("tool calls:".into());
    for (i, c) in r.session.tool_calls.iter().enumerate() {
        line(format!("  {}. {}", i + 1, c.summary));
    }
    if let Some(answer) = &r.session.answer {
        let label = if r.outcome == OtaOutcome::Unclear {
            "not understood, nothing done"
        } else {
            "refused"
        };
        line(format!("{label}: {answer}"));
    }
    if let Some(j) = &r.session.job {
        let c = &j.counts;
        let mut head = format!("job {}: {}", j.job_id, j.status);
        if j.aborted {
            head.push_str(" (aborted by its criteria)");
        }
        line(head);
        line(format!(
            "  succeeded {} · failed {} · rejected {} · timed out {} · canceled {} · queued {} · in progress {} (of {})",
            c.succeeded,
            c.failed,
            c.rejected,
            c.timed_out,
            c.canceled,
            c.queued,
            c.in_progress,
            c.total
        ));
        if let Some(m) = j.max_in_progress_seen {
            let plural = if m == 1 { "" } else { "s" };
            line(format!("  at most {m} device{plural} updating at once"));
        }
        if let Some(comment) = &j.comment {
            line(format!("  {comment}"));
        }
        for f in j.failures.iter().take(10) {
            line(format!(
                "  {} {}: {}",
                f.thing,
                f.status.as_str(),
                f.reason.as_deref().unwrap_or("no reason given")
            ));
        }
        if j.failures.len() > 10 {
            line(format!("  ... and {} more", j.failures.len() - 10));
        }
    }
    line("fleet status (versions reported in shadows):".into());
    for (t, vs) in &r.status_after.by_type {
        let list: Vec<String> = vs.iter().map(|(v, n)| format!("{v} x{n}")).collect();
        line(format!("  {t:<24} {}", list.join(", ")));
    }
    for p in &r.device_panics {
        line(format!("device task panicked: {p}"));
    }
    let outcome = match r.outcome {
        OtaOutcome::Succeeded => "succeeded",
        OtaOutcome::Done => "done",
        OtaOutcome::JobFailed => "job FAILED on some devices",
        OtaOutcome::Aborted => "job ABORTED",
        OtaOutcome::Unfinished => "job UNFINISHED (still running at --timeout)",
        OtaOutcome::Refused => "refused",
        OtaOutcome::Unclear => "not understood",
    };
    let mut timing = format!("{outcome}; {:.1} s virtual", r.virtual_s);
    if let Some(w) = wall {
        timing.push_str(&format!(", {:.2} s wall", w.as_secs_f64()));
    }
    line(timing);
    out
}

/// `twinrig ota`: prints the report (text or JSON) and returns the exit code.
pub fn command(args: &OtaArgs) -> u8 {
    let rollout = match args.rollout() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let (mut file, name) = match load_fleet(args.fleet.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            return 2;
        }
    };
    if let Some(seed) = args.seed {
        file.seed = seed;
    }
    let follow = u64::try_from(args.timeout.as_nanos()).unwrap_or(u64::MAX);
    let bar = ProgressBar::new(0);
    if args.json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{prefix:<14} [{bar:30}] {pos:>5}/{len:5} devices {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("booting fleet");
    let b = bar.clone();
    let job_name = args.job_id.clone();
    let on_progress = move |p: Progress| {
        if let Some(c) = p.job {
            b.set_prefix(format!("rollout {job_name}"));
            b.set_length(c.total);
            b.set_position(c.done());
            b.set_message(format!(
                "{} updating, {} failed · {} virtual",
                c.in_progress,
                c.unsuccessful(),
                format_nanos(p.at)
            ));
        } else {
            b.set_message(format!("{} virtual", format_nanos(p.at)));
        }
    };
    // A device task's panic is reported with the run; keep it from printing
    // over the progress bar (any other panic prints as usual).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !twinrig_sim::executor::polling_task() {
            default_hook(info);
        }
    }));
    let started = Instant::now();
    let result = run(
        &file,
        &name,
        &args.prompt,
        &args.job_id,
        &rollout,
        follow,
        on_progress,
    );
    let wall = started.elapsed();
    let _ = std::panic::take_hook();
    bar.finish_and_clear();
    let (report, trace) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if let Some(path) = &args.trace
        && let Err(e) = trace.write_mcap_file(path)
    {
        eprintln!("error: {e}");
        return 2;
    }
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    } else {
        print!("{}", render_text(&report, Some(wall)));
    }
    report.outcome.exit_code()
}
