//! The AWS IoT Jobs service as a pure, deterministic state machine.
//!
//! Device plane: [`JobsService::handle`] takes a publish on a Jobs request
//! topic (topic, payload bytes, virtual time `now` in epoch seconds) and
//! returns the publishes AWS IoT would make, in order, plus any [`Alert`].
//! Control plane: [`JobsService::create_job`], [`JobsService::describe_job`],
//! [`JobsService::cancel_job`], [`JobsService::list_job_executions_for_job`],
//! [`JobsService::describe_job_execution`]. Time moves only through the `now`
//! arguments; the harness calls [`JobsService::tick`] at
//! [`JobsService::next_deadline`] (rate windows reopening, timers expiring).
//! No I/O, no wall clock; JSON objects are written with sorted keys; jobs are
//! visited in creation order, things in name order. Every call's [`Output`]
//! also lists the execution status changes it made ([`ExecutionEvent`]), for
//! traces and measurements.
//!
//! # Topics (prefix `$aws/things/{thing}/jobs`)
//!
//! | request | payload | reply on `{request}/accepted` |
//! |---|---|---|
//! | `/get` | `{clientToken?}` | `{inProgressJobs:[Summary], queuedJobs:[Summary], timestamp, clientToken?}` |
//! | `/start-next` | `{statusDetails?, stepTimeoutInMinutes?, clientToken?}` | `{execution?, timestamp, clientToken?}` |
//! | `/{jobId}/get` (`$next` allowed) | `{executionNumber?, includeJobDocument? (true), clientToken?}` | `{execution?, timestamp, clientToken?}` |
//! | `/{jobId}/update` | `{status, statusDetails?, expectedVersion?, executionNumber?, includeJobExecutionState?, includeJobDocument?, stepTimeoutInMinutes?, clientToken?}` | `{executionState?, jobDocument?, timestamp, clientToken?}` |
//!
//! Refusals go to `{request}/rejected` as `{code, message, timestamp,
//! clientToken?, executionState?}` with AWS's codes: `InvalidJson` (payload
//! not UTF-8 JSON), `InvalidRequest` (not an object, wrong field types or
//! ranges, a status a device may not set, missing `status`),
//! `ResourceNotFound` (no such job, or no execution of it for this thing, or
//! one not yet released to the device), `VersionMismatch` (`expectedVersion`
//! differs; carries `executionState`), `InvalidStateTransition` (update of a
//! terminal execution or of an old `executionNumber`; carries
//! `executionState`). An empty payload counts as `{}` (assumed). Topics that
//! are not requests (replies, notifications, unknown operations) produce
//! nothing (AWS's `InvalidTopic` is not modelled).
//!
//! - `Summary` = `{jobId, queuedAt, startedAt?, lastUpdatedAt, versionNumber,
//!   executionNumber}`.
//! - `execution` = `{jobId, thingName, jobDocument (object), status,
//!   statusDetails? (left out when empty: assumed), queuedAt, startedAt?,
//!   lastUpdatedAt, versionNumber, executionNumber,
//!   approximateSecondsBeforeTimedOut? (when a timer runs)}`.
//! - `executionState` = `{status, statusDetails?, versionNumber}`.
//!
//! Notifications, published after the replies, per thing in name order:
//! `/notify` `{timestamp, jobs: {IN_PROGRESS?: [Summary], QUEUED?:
//! [Summary]}}` when the set of the thing's pending executions changes (one
//! released, one terminal) but not when one only changes status within the
//! set (the devguide's worked example: QUEUED -> IN_PROGRESS notifies
//! nothing); then `/notify-next` `{timestamp, execution?: {jobId, status,
//! queuedAt, lastUpdatedAt, versionNumber, executionNumber, jobDocument}}`
//! when the first pending execution changes. The pending list is: released,
//! non-terminal executions, IN_PROGRESS first, then by `queuedAt`, then by
//! job creation order; at most 10 entries in `/notify`. When the list
//! empties, `/notify` carries `jobs: {}` and `/notify-next` no `execution`
//! (assumed; not confirmed by AWS's docs).
//!
//! # Execution life
//!
//! Every target gets execution number 1, QUEUED, at creation (`queuedAt` =
//! creation time). It is invisible to the device until the engine
//! *releases* it (that is AWS's "notify", counted by
//! `numberOfNotifiedThings`). `versionNumber` starts at 1 and goes up by 1 on
//! every change: each device update (IN_PROGRESS repeats included) and each
//! service change (timed out, canceled; the latter assumed). Devices may set
//! IN_PROGRESS, SUCCEEDED, FAILED, REJECTED, from QUEUED or IN_PROGRESS
//! (QUEUED straight to a terminal status is allowed, as MiniStack does);
//! `statusDetails`, when given, replaces the stored map. start-next returns
//! an IN_PROGRESS execution unchanged if there is one, otherwise moves the
//! oldest released QUEUED one to IN_PROGRESS.
//!
//! # Rollout and the in-progress cap
//!
//! Releases happen at creation, after every device request and at every
//! tick. Per job, an execution is released only when (1) fewer than
//! `maxInProgress` of the job's executions are released and not terminal
//! (a *slot* is free), and (2) fewer than `rate` releases happened in the
//! last 60 s (sliding window: a release at `t` counts until `t + 60`). The
//! cap is enforced at release: a device can only see, start or update
//! released executions, so IN_PROGRESS can never exceed `maxInProgress`; an
//! unreleased execution stays QUEUED whatever the device sends
//! (`ResourceNotFound`, as for an execution AWS has not rolled out yet).
//! `rate` = `maximumPerMinute` (1000 when unset), or with `exponentialRate`
//! `min(floor(base * factor^k), maximumPerMinute or 1000)` with `k` = the
//! number of whole `rateIncreaseCriteria` thresholds reached by notified
//! (first releases) or succeeded things; a raised rate applies at once,
//! within the current window. Candidates are released in order of
//! their queue time, then thing name. Retries pass the same gate.
//!
//! # Counters, abort, completion
//!
//! `jobProcessDetails` counts each thing once, by its latest execution.
//! After every change, IN_PROGRESS jobs are checked, AWS criteria first in
//! list order: *completed* = things whose latest execution is SUCCEEDED,
//! FAILED, REJECTED or TIMED_OUT; a criterion is evaluated once completed >=
//! `minNumberOfExecutedThings` and met when `100 * count / completed >=
//! thresholdPercentage` (`>=` assumed), count being FAILED, REJECTED,
//! TIMED_OUT or all three for ALL (assumed). Then the extension: more than
//! `abortAfterFailures` things FAILED or TIMED_OUT. An abort makes the job
//! CANCELED with `reasonCode` [`ABORT_REASON_CODE`] and an automatic
//! `comment` (AWS's exact values are not documented), cancels every QUEUED
//! execution (released or not), drops pending retries, leaves IN_PROGRESS
//! ones running, and returns an [`Alert`]. A job whose every thing is
//! terminal with no retry pending becomes COMPLETED.
//!
//! # Timeouts and retries
//!
//! Entering IN_PROGRESS starts the in-progress timer (`startedAt + 60 *
//! inProgressTimeoutInMinutes`). `stepTimeoutInMinutes` (start-next or an
//! IN_PROGRESS update) sets a step timer at `now + 60 * step`, never past the
//! in-progress deadline; `-1` clears it. At the earliest deadline (checked at
//! `tick` and before each request, i.e. exactly on time where AWS may be up
//! to 60 s late) the execution becomes TIMED_OUT. A FAILED or TIMED_OUT
//! execution with retries left (the criterion of its type, else ALL) gets a
//! new attempt (`executionNumber` + 1, QUEUED, new `queuedAt`) created when
//! it is released through the gate; until then the thing counts as failed.
//! REJECTED is never retried.
//!
//! # The queued timeout (twinrig extension)
//!
//! AWS has no timeout for a QUEUED execution: a device that never connects
//! keeps its execution QUEUED for ever. Here that execution is released, so
//! it holds one of the job's `maxInProgress` slots for ever and the job can
//! never complete. An operator wants such a device to end as TIMED_OUT, so
//! `timeoutConfig.queuedTimeoutInMinutes` (1–10080) adds a queued timer: it
//! starts when an execution is released (first release or retry attempt;
//! an unreleased execution is waiting for a slot, not for its device) at
//! `releasedAt + 60 * queuedTimeoutInMinutes`, and stops when the execution
//! leaves QUEUED. At the deadline, with the same timing as the other
//! timers, the execution becomes TIMED_OUT: it counts as TIMED_OUT for the
//! abort criteria, `abortAfterFailures` and retries, exactly like an
//! in-progress timeout; its slot is freed, so the rollout goes on, and the
//! job can complete. While the timer runs, `approximateSecondsBeforeTimedOut`
//! is reported on the QUEUED execution. Without the setting nothing changes.

mod config;
mod topic;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;
use serde_json::{Map, Value};

pub use config::{
    AbortAction, AbortConfig, AbortCriteria, CreateJobRequest, ExponentialRate, FailureType,
    PathStep, RateIncreaseCriteria, RetryConfig, RetryCriteria, RolloutConfig, RolloutSettings,
    Setting, SettingsError, TimeoutConfig,
};
pub use topic::{
    JobsOp, JobsTopic, REQUEST_FILTERS, jobs_prefix, parse_request_topic, valid_job_id,
};

/// `reasonCode` the twin writes on a job it aborted.
pub const ABORT_REASON_CODE: &str = "ABORTED_BY_CRITERIA";
/// Default notification rate when `maximumPerMinute` is unset (devguide).
pub const DEFAULT_MAXIMUM_PER_MINUTE: u32 = 1000;
/// Entries at most in a `/notify` list (devguide `job-limits`).
pub const MAX_NOTIFY_ENTRIES: usize = 10;

/// Service-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsConfig {
    /// Region in ARNs.
    pub region: String,
    /// Account id in ARNs.
    pub account_id: String,
    /// `maxInProgress` when a job does not set it.
    pub default_max_in_progress: u32,
    /// Longest `clientToken` in bytes (AWS: 64).
    pub max_client_token_bytes: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            default_max_in_progress: 10,
            max_client_token_bytes: 64,
        }
    }
}

/// Device-plane error codes (devguide `jobs-api` ErrorResponse).
pub mod codes {
    /// Payload is not JSON.
    pub const INVALID_JSON: &str = "InvalidJson";
    /// Malformed request.
    pub const INVALID_REQUEST: &str = "InvalidRequest";
    /// Update of a terminal execution.
    pub const INVALID_STATE_TRANSITION: &str = "InvalidStateTransition";
    /// No such job or execution.
    pub const RESOURCE_NOT_FOUND: &str = "ResourceNotFound";
    /// `expectedVersion` differs from the stored version.
    pub const VERSION_MISMATCH: &str = "VersionMismatch";
}

/// Control-plane errors, named as AWS's exceptions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobsError {
    /// No such job or execution.
    #[error("ResourceNotFoundException: {0}")]
    ResourceNotFound(String),
    /// Invalid parameters.
    #[error("InvalidRequestException: {0}")]
    InvalidRequest(String),
    /// The job id is taken.
    #[error("ResourceAlreadyExistsException: {0}")]
    ResourceAlreadyExists(String),
    /// The job cannot make this change in its state (for example cancel a
    /// COMPLETED job; AWS's exact exception for that is not documented).
    #[error("InvalidStateTransitionException: {0}")]
    InvalidStateTransition(String),
}

impl JobsError {
    /// AWS's exception name.
    pub fn name(&self) -> &'static str {
        match self {
            JobsError::ResourceNotFound(_) => "ResourceNotFoundException",
            JobsError::InvalidRequest(_) => "InvalidRequestException",
            JobsError::ResourceAlreadyExists(_) => "ResourceAlreadyExistsException",
            JobsError::InvalidStateTransition(_) => "InvalidStateTransitionException",
        }
    }
}

/// One message the service publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Topic name.
    pub topic: String,
    /// Payload: compact JSON with sorted keys.
    pub payload: Vec<u8>,
}

/// Raised when a job aborts itself (the harness routes it to the alerts sink
/// standing in for SNS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// The aborted job.
    pub job_id: String,
    /// When, epoch seconds.
    pub at: u64,
    /// The job's new `reasonCode`.
    pub reason_code: String,
    /// The job's new `comment`: which criterion was met.
    pub comment: String,
    /// Counters right after the abort.
    pub job_process_details: JobProcessDetails,
}

/// What a call produces: publishes in order, then alerts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// MQTT messages to publish, in order.
    pub publishes: Vec<Publish>,
    /// Job aborts.
    pub alerts: Vec<Alert>,
    /// Every execution status change the call made, in the order made.
    pub executions: Vec<ExecutionEvent>,
}

/// One change of an execution's status (a job execution event; AWS
/// publishes terminal ones on `$aws/events/jobExecution/...` when job events
/// are enabled, this twin reports starts too so that in-progress counts can
/// be measured from a trace). Not produced: an execution's creation (QUEUED).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionEvent {
    /// The job.
    pub job_id: String,
    /// The thing.
    pub thing_name: String,
    /// The execution (attempt) number.
    pub execution_number: u64,
    /// Status before the change.
    pub from: ExecutionStatus,
    /// Status after it.
    pub status: ExecutionStatus,
    /// When, epoch seconds.
    pub at: u64,
    /// statusDetails after the change (left out when empty).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub status_details: BTreeMap<String, String>,
}

/// Job status (model:iot `JobStatus`; SCHEDULED and DELETION_IN_PROGRESS are
/// not modelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Rolling out.
    InProgress,
    /// Canceled or aborted.
    Canceled,
    /// Every execution terminal.
    Completed,
}

/// Execution status (model:iot `JobExecutionStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Waiting.
    Queued,
    /// Started by the device.
    InProgress,
    /// Terminal: done.
    Succeeded,
    /// Terminal, retryable.
    Failed,
    /// Terminal, retryable; set by the service.
    TimedOut,
    /// Terminal, never retried.
    Rejected,
    /// Terminal; set by the service (not produced by this twin yet).
    Removed,
    /// Terminal; set by the service.
    Canceled,
}

impl ExecutionStatus {
    /// AWS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Queued => "QUEUED",
            ExecutionStatus::InProgress => "IN_PROGRESS",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Rejected => "REJECTED",
            ExecutionStatus::Removed => "REMOVED",
            ExecutionStatus::Canceled => "CANCELED",
        }
    }

    /// Parses AWS's spelling.
    pub fn parse(s: &str) -> Option<ExecutionStatus> {
        Some(match s {
            "QUEUED" => ExecutionStatus::Queued,
            "IN_PROGRESS" => ExecutionStatus::InProgress,
            "SUCCEEDED" => ExecutionStatus::Succeeded,
            "FAILED" => ExecutionStatus::Failed,
            "TIMED_OUT" => ExecutionStatus::TimedOut,
            "REJECTED" => ExecutionStatus::Rejected,
            "REMOVED" => ExecutionStatus::Removed,
            "CANCELED" => ExecutionStatus::Canceled,
            _ => return None,
        })
    }

    /// No further change possible.
    pub fn is_terminal(self) -> bool {
        !matches!(self, ExecutionStatus::Queued | ExecutionStatus::InProgress)
    }
}

/// `jobProcessDetails` (model:iot), one count per thing by its latest
/// execution.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProcessDetails {
    /// Things not yet released to; absent once the rollout is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_targets: Option<Vec<String>>,
    /// CANCELED.
    pub number_of_canceled_things: u64,
    /// SUCCEEDED.
    pub number_of_succeeded_things: u64,
    /// FAILED.
    pub number_of_failed_things: u64,
    /// REJECTED.
    pub number_of_rejected_things: u64,
    /// QUEUED (released or not).
    pub number_of_queued_things: u64,
    /// IN_PROGRESS.
    pub number_of_in_progress_things: u64,
    /// REMOVED.
    pub number_of_removed_things: u64,
    /// TIMED_OUT.
    pub number_of_timed_out_things: u64,
}

/// DescribeJob's `job` object (model:iot `Job`), plus the extensions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDescription {
    /// `arn:aws:iot:{region}:{account}:job/{jobId}`.
    pub job_arn: String,
    /// The id.
    pub job_id: String,
    /// Always SNAPSHOT here.
    pub target_selection: String,
    /// Status.
    pub status: JobStatus,
    /// Canceled with `force`.
    pub force_canceled: bool,
    /// Set by cancel or abort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// Set by cancel or abort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Thing ARNs, in name order.
    pub targets: Vec<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Epoch seconds.
    pub created_at: u64,
    /// Epoch seconds.
    pub last_updated_at: u64,
    /// Epoch seconds, once COMPLETED or CANCELED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    /// Counters.
    pub job_process_details: JobProcessDetails,
    /// As created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_executions_rollout_config: Option<RolloutConfig>,
    /// As created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_config: Option<AbortConfig>,
    /// As created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_config: Option<TimeoutConfig>,
    /// As created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_executions_retry_config: Option<RetryConfig>,
    /// Extension: the in-progress cap in force.
    pub max_in_progress: u32,
    /// Extension: absolute failure limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_after_failures: Option<u32>,
    /// Still rolling out or canceling executions.
    pub is_concurrent: bool,
}

impl JobDescription {
    /// Sorted-key JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// DescribeJobExecution's `execution` (model:iot `JobExecution`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobExecutionDescription {
    /// Job id.
    pub job_id: String,
    /// Status.
    pub status: ExecutionStatus,
    /// Canceled by a forced cancel.
    pub force_canceled: bool,
    /// `{detailsMap}`.
    pub status_details: StatusDetails,
    /// Thing ARN.
    pub thing_arn: String,
    /// Epoch seconds.
    pub queued_at: u64,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// Epoch seconds.
    pub last_updated_at: u64,
    /// 1, then +1 per retry.
    pub execution_number: u64,
    /// +1 per change.
    pub version_number: u64,
    /// Seconds to the nearest timer, when one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approximate_seconds_before_timed_out: Option<u64>,
}

/// `statusDetails` of the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The device's map.
    pub details_map: BTreeMap<String, String>,
}

/// ListJobExecutionsForJob entry (model:iot `JobExecutionSummaryForJob`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobExecutionSummaryForJob {
    /// Thing ARN.
    pub thing_arn: String,
    /// The latest execution.
    pub job_execution_summary: JobExecutionSummary,
}

/// model:iot `JobExecutionSummary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobExecutionSummary {
    /// Status.
    pub status: ExecutionStatus,
    /// Epoch seconds.
    pub queued_at: u64,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// Epoch seconds.
    pub last_updated_at: u64,
    /// Execution number.
    pub execution_number: u64,
    /// executionNumber - 1.
    pub retry_attempt: u64,
}

/// CreateJob's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateJobResponse {
    /// `arn:aws:iot:{region}:{account}:job/{jobId}`.
    pub job_arn: String,
    /// The id.
    pub job_id: String,
    /// The description, if any.
    pub description: Option<String>,
    /// Notifications of the first releases.
    pub output: Output,
}

// ---------------------------------------------------------------------------
// Internal state.

#[derive(Debug, Clone)]
struct Attempt {
    number: u64,
    status: ExecutionStatus,
    details: BTreeMap<String, String>,
    queued_at: u64,
    started_at: Option<u64>,
    last_updated_at: u64,
    version: u64,
    released: bool,
    force_canceled: bool,
    in_progress_deadline: Option<u64>,
    step_deadline: Option<u64>,
    /// The queued timer (extension), set at release.
    queued_deadline: Option<u64>,
}

impl Attempt {
    fn new(number: u64, now: u64, released: bool) -> Attempt {
        Attempt {
            number,
            status: ExecutionStatus::Queued,
            details: BTreeMap::new(),
            queued_at: now,
            started_at: None,
            last_updated_at: now,
            version: 1,
            released,
            force_canceled: false,
            in_progress_deadline: None,
            step_deadline: None,
            queued_deadline: None,
        }
    }

    /// When the running timer turns this execution TIMED_OUT: the queued
    /// timer while QUEUED, the nearer of the in-progress and step timers
    /// while IN_PROGRESS, none once terminal.
    fn deadline(&self) -> Option<u64> {
        match self.status {
            ExecutionStatus::Queued => self.queued_deadline,
            ExecutionStatus::InProgress => match (self.in_progress_deadline, self.step_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            _ => None,
        }
    }

    fn set_status(&mut self, status: ExecutionStatus, now: u64) {
        self.status = status;
        self.last_updated_at = now;
        self.version += 1;
    }

    fn state_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("status".into(), self.status.as_str().into());
        if !self.details.is_empty() {
            o.insert("statusDetails".into(), details_json(&self.details));
        }
        o.insert("versionNumber".into(), self.version.into());
        Value::Object(o)
    }

    fn summary_json(&self, job_id: &str) -> Value {
        let mut o = Map::new();
        o.insert("jobId".into(), job_id.into());
        o.insert("queuedAt".into(), self.queued_at.into());
        if let Some(s) = self.started_at {
            o.insert("startedAt".into(), s.into());
        }
        o.insert("lastUpdatedAt".into(), self.last_updated_at.into());
        o.insert("versionNumber".into(), self.version.into());
        o.insert("executionNumber".into(), self.number.into());
        Value::Object(o)
    }
}

#[derive(Debug, Clone, Default)]
struct ThingExec {
    attempts: Vec<Attempt>,
    /// A failure waiting for its retry attempt: when it failed.
    retry_pending: Option<u64>,
    failed_retries: u32,
    timed_out_retries: u32,
}

impl ThingExec {
    fn latest(&self) -> &Attempt {
        self.attempts
            .last()
            .expect("a thing has at least one attempt")
    }
    fn latest_mut(&mut self) -> &mut Attempt {
        self.attempts
            .last_mut()
            .expect("a thing has at least one attempt")
    }
    /// Waiting for release: its release order key.
    fn release_key(&self) -> Option<u64> {
        let a = self.latest();
        if self.retry_pending.is_some() {
            self.retry_pending
        } else if a.status == ExecutionStatus::Queued && !a.released {
            Some(a.queued_at)
        } else {
            None
        }
    }
    fn holds_slot(&self) -> bool {
        let a = self.latest();
        a.released && !a.status.is_terminal()
    }
}

#[derive(Debug, Clone)]
struct Job {
    seq: u64,
    request: CreateJobRequest,
    max_in_progress: u32,
    status: JobStatus,
    force_canceled: bool,
    reason_code: Option<String>,
    comment: Option<String>,
    created_at: u64,
    last_updated_at: u64,
    completed_at: Option<u64>,
    things: BTreeMap<String, ThingExec>,
    notified_things: u64,
    release_times: VecDeque<u64>,
}

impl Job {
    fn id(&self) -> &str {
        &self.request.job_id
    }

    fn count(&self, status: ExecutionStatus) -> u64 {
        self.things
            .values()
            .filter(|t| t.latest().status == status)
            .count() as u64
    }

    fn process_details(&self) -> JobProcessDetails {
        let processing: Vec<String> = self
            .things
            .iter()
            .filter(|(_, t)| t.release_key().is_some())
            .map(|(name, _)| name.clone())
            .collect();
        JobProcessDetails {
            processing_targets: (!processing.is_empty()).then_some(processing),
            number_of_canceled_things: self.count(ExecutionStatus::Canceled),
            number_of_succeeded_things: self.count(ExecutionStatus::Succeeded),
            number_of_failed_things: self.count(ExecutionStatus::Failed),
            number_of_rejected_things: self.count(ExecutionStatus::Rejected),
            number_of_queued_things: self.count(ExecutionStatus::Queued),
            number_of_in_progress_things: self.count(ExecutionStatus::InProgress),
            number_of_removed_things: self.count(ExecutionStatus::Removed),
            number_of_timed_out_things: self.count(ExecutionStatus::TimedOut),
        }
    }

    fn rate(&self) -> u32 {
        let rollout = self.request.settings.job_executions_rollout_config.as_ref();
        let max = rollout
            .and_then(|r| r.maximum_per_minute)
            .unwrap_or(DEFAULT_MAXIMUM_PER_MINUTE);
        let Some(exp) = rollout.and_then(|r| r.exponential_rate.as_ref()) else {
            return max;
        };
        let crit = &exp.rate_increase_criteria;
        let (count, step) = match (
            crit.number_of_notified_things,
            crit.number_of_succeeded_things,
        ) {
            (Some(n), _) => (self.notified_things, u64::from(n.max(1))),
            (None, Some(n)) => (self.count(ExecutionStatus::Succeeded), u64::from(n.max(1))),
            (None, None) => (0, 1),
        };
        let k = (count / step).min(64) as i32;
        let rate = f64::from(exp.base_rate_per_minute) * exp.increment_factor.powi(k);
        // Saturating float-to-int conversion; capped by maximumPerMinute.
        (rate.floor() as u32).min(max)
    }

    fn slots_used(&self) -> usize {
        self.things.values().filter(|t| t.holds_slot()).count()
    }

    /// The queued timer of an execution released at `now` (extension).
    fn queued_deadline(&self, now: u64) -> Option<u64> {
        self.request
            .settings
            .timeout_config
            .and_then(|t| t.queued_timeout_in_minutes)
            .map(|m| after_minutes(now, m))
    }

    fn prune_window(&mut self, now: u64) {
        while self
            .release_times
            .front()
            .is_some_and(|t| t.saturating_add(60) <= now)
        {
            self.release_times.pop_front();
        }
    }

    /// When the rate window next lets a release through, if it is the
    /// limit right now.
    fn window_reopens(&self) -> Option<u64> {
        let rate = self.rate() as usize;
        let k = self.release_times.len();
        (k >= rate).then(|| self.release_times[k - rate].saturating_add(60))
    }

    fn retries_allowed(&self, status: ExecutionStatus) -> u32 {
        let Some(cfg) = &self.request.settings.job_executions_retry_config else {
            return 0;
        };
        let wanted = match status {
            ExecutionStatus::Failed => FailureType::Failed,
            ExecutionStatus::TimedOut => FailureType::TimedOut,
            _ => return 0,
        };
        let find = |t: FailureType| {
            cfg.criteria_list
                .iter()
                .find(|c| c.failure_type == t)
                .map(|c| c.number_of_retries)
        };
        find(wanted).or_else(|| find(FailureType::All)).unwrap_or(0)
    }

    /// Retries under ALL share one budget; otherwise per type.
    fn retries_used(&self, thing: &ThingExec, status: ExecutionStatus) -> u32 {
        let specific = self
            .request
            .settings
            .job_executions_retry_config
            .as_ref()
            .is_some_and(|cfg| {
                cfg.criteria_list.iter().any(|c| {
                    c.failure_type
                        == if status == ExecutionStatus::Failed {
                            FailureType::Failed
                        } else {
                            FailureType::TimedOut
                        }
                })
            });
        match (specific, status) {
            (true, ExecutionStatus::Failed) => thing.failed_retries,
            (true, _) => thing.timed_out_retries,
            (false, _) => thing.failed_retries + thing.timed_out_retries,
        }
    }
}

/// A device-plane refusal.
#[derive(Debug)]
struct Rejection {
    code: &'static str,
    message: String,
    execution_state: Option<Value>,
}

fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
        execution_state: None,
    }
}

fn details_json(details: &BTreeMap<String, String>) -> Value {
    Value::Object(
        details
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect(),
    )
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The Jobs service twin.
#[derive(Debug, Clone, Default)]
pub struct JobsService {
    config: JobsConfig,
    jobs: BTreeMap<String, Job>,
    next_seq: u64,
    /// Per thing: last notified pending set and first entry.
    notified: BTreeMap<String, Notified>,
    dirty: BTreeSet<String>,
    /// Status changes not yet handed out in an [`Output`].
    events: Vec<ExecutionEvent>,
}

/// One pending execution of a thing: (job id, execution number).
type PendingKey = (String, u64);
/// What a thing was last notified of: its pending set and first entry.
type Notified = (BTreeSet<PendingKey>, Option<PendingKey>);

impl JobsService {
    /// A service with the given settings.
    pub fn new(config: JobsConfig) -> JobsService {
        JobsService {
            config,
            ..JobsService::default()
        }
    }

    fn job_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:iot:{}:{}:job/{id}",
            self.config.region, self.config.account_id
        )
    }

    fn thing_arn(&self, thing: &str) -> String {
        format!(
            "arn:aws:iot:{}:{}:thing/{thing}",
            self.config.region, self.config.account_id
        )
    }

    fn jobs_in_order(&self) -> Vec<String> {
        let mut ids: Vec<(u64, String)> = self
            .jobs
            .values()
            .map(|j| (j.seq, j.id().to_owned()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    // -- control plane ------------------------------------------------------

    /// CreateJob. Creates execution 1, QUEUED, for every target and releases
    /// the first ones at once (their notifications are in the output).
    pub fn create_job(
        &mut self,
        request: CreateJobRequest,
        now: u64,
    ) -> Result<CreateJobResponse, JobsError> {
        validate(&request)?;
        if self.jobs.contains_key(&request.job_id) {
            return Err(JobsError::ResourceAlreadyExists(format!(
                "Job {} already exists",
                request.job_id
            )));
        }
        let mut out = self.advance(now);
        let max_in_progress = request
            .settings
            .max_in_progress
            .unwrap_or(self.config.default_max_in_progress);
        let things = request
            .targets
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    ThingExec {
                        attempts: vec![Attempt::new(1, now, false)],
                        ..ThingExec::default()
                    },
                )
            })
            .collect();
        let job = Job {
            seq: self.next_seq,
            max_in_progress,
            status: JobStatus::InProgress,
            force_canceled: false,
            reason_code: None,
            comment: None,
            created_at: now,
            last_updated_at: now,
            completed_at: None,
            things,
            notified_things: 0,
            release_times: VecDeque::new(),
            request,
        };
        self.next_seq += 1;
        let id = job.id().to_owned();
        let description = job.request.description.clone();
        self.jobs.insert(id.clone(), job);
        self.settle(now, &mut out);
        Ok(CreateJobResponse {
            job_arn: self.job_arn(&id),
            job_id: id,
            description,
            output: out,
        })
    }

    /// DescribeJob's `job` object.
    pub fn describe_job(&self, job_id: &str) -> Result<JobDescription, JobsError> {
        let job = self.job(job_id)?;
        let r = &job.request;
        Ok(JobDescription {
            job_arn: self.job_arn(job_id),
            job_id: job_id.to_owned(),
            target_selection: "SNAPSHOT".into(),
            status: job.status,
            force_canceled: job.force_canceled,
            reason_code: job.reason_code.clone(),
            comment: job.comment.clone(),
            targets: job.things.keys().map(|t| self.thing_arn(t)).collect(),
            description: r.description.clone(),
            created_at: job.created_at,
            last_updated_at: job.last_updated_at,
            completed_at: job.completed_at,
            job_process_details: job.process_details(),
            job_executions_rollout_config: r.settings.job_executions_rollout_config.clone(),
            abort_config: r.settings.abort_config.clone(),
            timeout_config: r.settings.timeout_config,
            job_executions_retry_config: r.settings.job_executions_retry_config.clone(),
            max_in_progress: job.max_in_progress,
            abort_after_failures: r.settings.abort_after_failures,
            is_concurrent: job.status == JobStatus::InProgress
                && job.things.values().any(|t| t.release_key().is_some()),
        })
    }

    /// CancelJob. QUEUED executions (released or not) become CANCELED and
    /// pending retries are dropped; with `force` IN_PROGRESS ones too (the
    /// devices can then no longer update them). Canceling a CANCELED job
    /// again is allowed (with `force` it cancels what is still running);
    /// canceling a COMPLETED job is refused.
    pub fn cancel_job(
        &mut self,
        job_id: &str,
        force: bool,
        reason_code: Option<&str>,
        comment: Option<&str>,
        now: u64,
    ) -> Result<Output, JobsError> {
        let status = self.job(job_id)?.status;
        if status == JobStatus::Completed {
            return Err(JobsError::InvalidStateTransition(format!(
                "Job {job_id} is COMPLETED and cannot be canceled"
            )));
        }
        if let Some(code) = reason_code
            && (code.is_empty()
                || code.len() > 128
                || !code
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
        {
            return Err(JobsError::InvalidRequest(
                "reasonCode must match [A-Z0-9_]{1,128}".into(),
            ));
        }
        if comment.is_some_and(|c| c.chars().count() > 2028) {
            return Err(JobsError::InvalidRequest("comment too long".into()));
        }
        let mut out = self.advance(now);
        let touched = {
            let job = self.jobs.get_mut(job_id).expect("checked above");
            job.status = JobStatus::Canceled;
            job.force_canceled |= force;
            if let Some(code) = reason_code {
                job.reason_code = Some(code.to_owned());
            }
            if let Some(c) = comment {
                job.comment = Some(c.to_owned());
            }
            job.last_updated_at = now;
            job.completed_at.get_or_insert(now);
            cancel_executions(job, force, now, &mut self.events)
        };
        self.dirty.extend(touched);
        self.settle(now, &mut out);
        Ok(out)
    }

    /// ListJobExecutionsForJob: the latest execution of every thing, in
    /// thing-name order, optionally filtered by status (no pagination).
    pub fn list_job_executions_for_job(
        &self,
        job_id: &str,
        status: Option<ExecutionStatus>,
    ) -> Result<Vec<JobExecutionSummaryForJob>, JobsError> {
        let job = self.job(job_id)?;
        Ok(job
            .things
            .iter()
            .map(|(name, t)| (name, t.latest()))
            .filter(|(_, a)| status.is_none_or(|s| a.status == s))
            .map(|(name, a)| JobExecutionSummaryForJob {
                thing_arn: self.thing_arn(name),
                job_execution_summary: JobExecutionSummary {
                    status: a.status,
                    queued_at: a.queued_at,
                    started_at: a.started_at,
                    last_updated_at: a.last_updated_at,
                    execution_number: a.number,
                    retry_attempt: a.number - 1,
                },
            })
            .collect())
    }

    /// DescribeJobExecution (control plane): the given execution number, or
    /// the latest.
    pub fn describe_job_execution(
        &self,
        job_id: &str,
        thing: &str,
        execution_number: Option<u64>,
        now: u64,
    ) -> Result<JobExecutionDescription, JobsError> {
        let job = self.job(job_id)?;
        let not_found =
            || JobsError::ResourceNotFound(format!("No job execution of {job_id} for {thing}"));
        let t = job.things.get(thing).ok_or_else(not_found)?;
        let a = match execution_number {
            None => t.latest(),
            Some(n) => t
                .attempts
                .iter()
                .find(|a| a.number == n)
                .ok_or_else(not_found)?,
        };
        Ok(JobExecutionDescription {
            job_id: job_id.to_owned(),
            status: a.status,
            force_canceled: a.force_canceled,
            status_details: StatusDetails {
                details_map: a.details.clone(),
            },
            thing_arn: self.thing_arn(thing),
            queued_at: a.queued_at,
            started_at: a.started_at,
            last_updated_at: a.last_updated_at,
            execution_number: a.number,
            version_number: a.version,
            approximate_seconds_before_timed_out: a.deadline().map(|d| d.saturating_sub(now)),
        })
    }

    fn job(&self, job_id: &str) -> Result<&Job, JobsError> {
        self.jobs
            .get(job_id)
            .ok_or_else(|| JobsError::ResourceNotFound(format!("Job {job_id} does not exist")))
    }

    // -- time -----------------------------------------------------------------

    /// Advances virtual time to `now`: fires timers, releases executions
    /// the rate window now allows, checks aborts.
    pub fn tick(&mut self, now: u64) -> Output {
        self.advance(now)
    }

    /// The earliest time at which [`JobsService::tick`] would change
    /// something on its own (a timer expiring or a rate window reopening
    /// while executions wait and slots are free). `None`: nothing happens
    /// until a device or the control plane acts.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut best: Option<u64> = None;
        let mut consider = |t: u64| best = Some(best.map_or(t, |b: u64| b.min(t)));
        for job in self.jobs.values() {
            for t in job.things.values() {
                if let Some(d) = t.latest().deadline() {
                    consider(d);
                }
            }
            if job.status == JobStatus::InProgress
                && job.slots_used() < job.max_in_progress as usize
                && job.things.values().any(|t| t.release_key().is_some())
                && let Some(t) = job.window_reopens()
            {
                consider(t);
            }
        }
        best
    }

    fn advance(&mut self, now: u64) -> Output {
        let mut out = Output::default();
        for id in self.jobs_in_order() {
            let job = self.jobs.get_mut(&id).expect("listed");
            let mut expired = Vec::new();
            for (name, t) in &mut job.things {
                if t.latest().deadline().is_some_and(|d| d <= now) {
                    let a = t.latest_mut();
                    let from = a.status;
                    a.set_status(ExecutionStatus::TimedOut, now);
                    self.events.push(event(&id, name, a, from, now));
                    expired.push(name.clone());
                }
            }
            for name in &expired {
                on_terminal(job, name, now);
            }
            self.dirty.extend(expired);
        }
        self.settle(now, &mut out);
        out
    }

    /// Aborts, releases, completions, then notifications.
    fn settle(&mut self, now: u64, out: &mut Output) {
        for id in self.jobs_in_order() {
            let job = self.jobs.get_mut(&id).expect("listed");
            if job.status == JobStatus::InProgress
                && let Some(comment) = abort_reason(job)
            {
                job.status = JobStatus::Canceled;
                job.reason_code = Some(ABORT_REASON_CODE.into());
                job.comment = Some(comment.clone());
                job.last_updated_at = now;
                job.completed_at = Some(now);
                let touched = cancel_executions(job, false, now, &mut self.events);
                self.dirty.extend(touched);
                out.alerts.push(Alert {
                    job_id: id.clone(),
                    at: now,
                    reason_code: ABORT_REASON_CODE.into(),
                    comment,
                    job_process_details: job.process_details(),
                });
            }
            if job.status == JobStatus::InProgress {
                let released = release(job, now);
                self.dirty.extend(released);
            }
            if job.status == JobStatus::InProgress
                && job
                    .things
                    .values()
                    .all(|t| t.latest().status.is_terminal() && t.retry_pending.is_none())
            {
                job.status = JobStatus::Completed;
                job.completed_at = Some(now);
                job.last_updated_at = now;
            }
        }
        self.flush(now, out);
    }

    // -- notifications ------------------------------------------------------

    /// The thing's pending list: (key, summary, status), in AWS's order.
    fn pending(&self, thing: &str) -> Vec<(PendingKey, &Job, &Attempt)> {
        let mut list: Vec<(bool, u64, u64, PendingKey, &Job, &Attempt)> = Vec::new();
        for job in self.jobs.values() {
            if let Some(t) = job.things.get(thing) {
                let a = t.latest();
                if a.released && !a.status.is_terminal() {
                    list.push((
                        a.status != ExecutionStatus::InProgress,
                        a.queued_at,
                        job.seq,
                        (job.id().to_owned(), a.number),
                        job,
                        a,
                    ));
                }
            }
        }
        list.sort_by_key(|x| (x.0, x.1, x.2));
        list.into_iter()
            .map(|(_, _, _, k, j, a)| (k, j, a))
            .collect()
    }

    fn flush(&mut self, now: u64, out: &mut Output) {
        out.executions.append(&mut self.events);
        let dirty = std::mem::take(&mut self.dirty);
        for thing in dirty {
            let pending = self.pending(&thing);
            let set: BTreeSet<PendingKey> = pending.iter().map(|(k, _, _)| k.clone()).collect();
            let first = pending.first().map(|(k, _, _)| k.clone());
            let (old_set, old_first) = self.notified.get(&thing).cloned().unwrap_or_default();
            let prefix = jobs_prefix(&thing);
            if set != old_set {
                let mut in_progress = Vec::new();
                let mut queued = Vec::new();
                for (_, job, a) in pending.iter().take(MAX_NOTIFY_ENTRIES) {
                    let s = a.summary_json(job.id());
                    if a.status == ExecutionStatus::InProgress {
                        in_progress.push(s);
                    } else {
                        queued.push(s);
                    }
                }
                let mut jobs = Map::new();
                if !in_progress.is_empty() {
                    jobs.insert("IN_PROGRESS".into(), Value::Array(in_progress));
                }
                if !queued.is_empty() {
                    jobs.insert("QUEUED".into(), Value::Array(queued));
                }
                let mut doc = Map::new();
                doc.insert("timestamp".into(), now.into());
                doc.insert("jobs".into(), Value::Object(jobs));
                out.publishes.push(Publish {
                    topic: format!("{prefix}/notify"),
                    payload: to_bytes(&Value::Object(doc)),
                });
            }
            if first != old_first {
                let mut doc = Map::new();
                doc.insert("timestamp".into(), now.into());
                if let Some((_, job, a)) = pending.first() {
                    let mut e = Map::new();
                    e.insert("jobId".into(), job.id().into());
                    e.insert("status".into(), a.status.as_str().into());
                    e.insert("queuedAt".into(), a.queued_at.into());
                    e.insert("lastUpdatedAt".into(), a.last_updated_at.into());
                    e.insert("versionNumber".into(), a.version.into());
                    e.insert("executionNumber".into(), a.number.into());
                    e.insert("jobDocument".into(), job.request.document.clone());
                    doc.insert("execution".into(), Value::Object(e));
                }
                out.publishes.push(Publish {
                    topic: format!("{prefix}/notify-next"),
                    payload: to_bytes(&Value::Object(doc)),
                });
            }
            self.notified.insert(thing, (set, first));
        }
    }

    // -- device plane -------------------------------------------------------

    /// Handles a publish on a Jobs request topic at `now`. Timers due at
    /// `now` fire first; then the reply; then the notifications and alerts
    /// the request caused. Non-request topics produce nothing.
    pub fn handle(&mut self, topic: &str, payload: &[u8], now: u64) -> Output {
        let Some(req) = parse_request_topic(topic) else {
            return Output::default();
        };
        let mut out = self.advance(now);
        let (token, result) = match parse_body(payload, self.config.max_client_token_bytes) {
            Err(r) => (None, Err(r)),
            Ok((body, token)) => {
                let result = match req.op {
                    JobsOp::GetPending => Ok(self.get_pending(req.thing)),
                    JobsOp::StartNext => self.start_next(req.thing, &body, now),
                    JobsOp::Describe(job_id) => self.describe_device(req.thing, job_id, &body, now),
                    JobsOp::Update(job_id) => self.update(req.thing, job_id, &body, now),
                };
                (token, result)
            }
        };
        let (suffix, mut doc) = match result {
            Ok(doc) => ("accepted", doc),
            Err(r) => {
                let mut doc = Map::new();
                doc.insert("code".into(), r.code.into());
                doc.insert("message".into(), r.message.into());
                if let Some(state) = r.execution_state {
                    doc.insert("executionState".into(), state);
                }
                ("rejected", doc)
            }
        };
        doc.insert("timestamp".into(), now.into());
        if let Some(token) = token {
            doc.insert("clientToken".into(), token.into());
        }
        out.publishes.push(Publish {
            topic: format!("{topic}/{suffix}"),
            payload: to_bytes(&Value::Object(doc)),
        });
        self.settle(now, &mut out);
        out
    }

    fn get_pending(&self, thing: &str) -> Map<String, Value> {
        let mut in_progress = Vec::new();
        let mut queued = Vec::new();
        for (_, job, a) in self.pending(thing) {
            let s = a.summary_json(job.id());
            if a.status == ExecutionStatus::InProgress {
                in_progress.push(s);
            } else {
                queued.push(s);
            }
        }
        let mut doc = Map::new();
        doc.insert("inProgressJobs".into(), Value::Array(in_progress));
        doc.insert("queuedJobs".into(), Value::Array(queued));
        doc
    }

    fn execution_json(&self, job: &Job, thing: &str, a: &Attempt, doc: bool, now: u64) -> Value {
        let mut e = Map::new();
        e.insert("jobId".into(), job.id().into());
        e.insert("thingName".into(), thing.into());
        if doc {
            e.insert("jobDocument".into(), job.request.document.clone());
        }
        e.insert("status".into(), a.status.as_str().into());
        if !a.details.is_empty() {
            e.insert("statusDetails".into(), details_json(&a.details));
        }
        e.insert("queuedAt".into(), a.queued_at.into());
        if let Some(s) = a.started_at {
            e.insert("startedAt".into(), s.into());
        }
        e.insert("lastUpdatedAt".into(), a.last_updated_at.into());
        e.insert("versionNumber".into(), a.version.into());
        e.insert("executionNumber".into(), a.number.into());
        if let Some(d) = a.deadline() {
            e.insert(
                "approximateSecondsBeforeTimedOut".into(),
                d.saturating_sub(now).into(),
            );
        }
        Value::Object(e)
    }

    fn start_next(
        &mut self,
        thing: &str,
        body: &Map<String, Value>,
        now: u64,
    ) -> Result<Map<String, Value>, Rejection> {
        let details = parse_details(body)?;
        let step = parse_step(body)?;
        let Some((key, _, a)) = self.pending(thing).into_iter().next() else {
            return Ok(Map::new());
        };
        if a.status == ExecutionStatus::Queued {
            let job = self.jobs.get_mut(&key.0).expect("pending job exists");
            let timeout = job
                .request
                .settings
                .timeout_config
                .and_then(|t| t.in_progress_timeout_in_minutes);
            let a = job
                .things
                .get_mut(thing)
                .expect("pending thing")
                .latest_mut();
            start(a, timeout, details, step, now);
            let e = event(&key.0, thing, a, ExecutionStatus::Queued, now);
            self.events.push(e);
            self.dirty.insert(thing.to_owned());
        }
        let job = &self.jobs[&key.0];
        let a = job.things[thing].latest();
        let mut doc = Map::new();
        doc.insert(
            "execution".into(),
            self.execution_json(job, thing, a, true, now),
        );
        Ok(doc)
    }

    fn describe_device(
        &self,
        thing: &str,
        job_id: &str,
        body: &Map<String, Value>,
        now: u64,
    ) -> Result<Map<String, Value>, Rejection> {
        let include_doc = opt_bool(body, "includeJobDocument")?.unwrap_or(true);
        let number = opt_u64(body, "executionNumber")?;
        let mut doc = Map::new();
        let (job, a) = if job_id == "$next" {
            match self.pending(thing).into_iter().next() {
                None => return Ok(doc),
                Some((_, job, a)) => (job, a),
            }
        } else {
            self.visible(thing, job_id, number)?
        };
        doc.insert(
            "execution".into(),
            self.execution_json(job, thing, a, include_doc, now),
        );
        Ok(doc)
    }

    /// A released execution of `job_id` for `thing`: the given number or the
    /// latest.
    fn visible(
        &self,
        thing: &str,
        job_id: &str,
        number: Option<u64>,
    ) -> Result<(&Job, &Attempt), Rejection> {
        let not_found = || {
            reject(
                codes::RESOURCE_NOT_FOUND,
                format!("Job execution of {job_id} for {thing} not found"),
            )
        };
        let job = self.jobs.get(job_id).ok_or_else(not_found)?;
        let t = job.things.get(thing).ok_or_else(not_found)?;
        let a = match number {
            None => t.latest(),
            Some(n) => t
                .attempts
                .iter()
                .find(|a| a.number == n)
                .ok_or_else(not_found)?,
        };
        if !a.released {
            return Err(not_found());
        }
        Ok((job, a))
    }

    fn update(
        &mut self,
        thing: &str,
        job_id: &str,
        body: &Map<String, Value>,
        now: u64,
    ) -> Result<Map<String, Value>, Rejection> {
        let status = match body.get("status") {
            None => return Err(reject(codes::INVALID_REQUEST, "status is required")),
            Some(Value::String(s)) => ExecutionStatus::parse(s)
                .ok_or_else(|| reject(codes::INVALID_REQUEST, format!("Unknown status {s}")))?,
            Some(_) => return Err(reject(codes::INVALID_REQUEST, "status must be a string")),
        };
        if !matches!(
            status,
            ExecutionStatus::InProgress
                | ExecutionStatus::Succeeded
                | ExecutionStatus::Failed
                | ExecutionStatus::Rejected
        ) {
            return Err(reject(
                codes::INVALID_REQUEST,
                format!("A device cannot set status {}", status.as_str()),
            ));
        }
        let details = parse_details(body)?;
        let step = parse_step(body)?;
        let expected = opt_u64(body, "expectedVersion")?;
        let number = opt_u64(body, "executionNumber")?;
        let include_state = opt_bool(body, "includeJobExecutionState")?.unwrap_or(false);
        let include_doc = opt_bool(body, "includeJobDocument")?.unwrap_or(false);

        let (job, a) = self.visible(thing, job_id, number)?;
        let latest_number = job.things[thing].latest().number;
        if let Some(v) = expected
            && v != a.version
        {
            return Err(Rejection {
                code: codes::VERSION_MISMATCH,
                message: format!(
                    "expectedVersion {v} does not match the current version {}",
                    a.version
                ),
                execution_state: Some(a.state_json()),
            });
        }
        if a.status.is_terminal() || a.number != latest_number {
            return Err(Rejection {
                code: codes::INVALID_STATE_TRANSITION,
                message: format!(
                    "Cannot update execution from {} to {}",
                    a.status.as_str(),
                    status.as_str()
                ),
                execution_state: Some(a.state_json()),
            });
        }
        let job = self.jobs.get_mut(job_id).expect("visible");
        let timeout = job
            .request
            .settings
            .timeout_config
            .and_then(|t| t.in_progress_timeout_in_minutes);
        let t = job.things.get_mut(thing).expect("visible");
        let a = t.latest_mut();
        if status == ExecutionStatus::InProgress {
            if a.status == ExecutionStatus::Queued {
                start(a, timeout, details, step, now);
                self.events
                    .push(event(job_id, thing, a, ExecutionStatus::Queued, now));
            } else {
                if let Some(d) = details {
                    a.details = d;
                }
                apply_step(a, step, now);
                a.last_updated_at = now;
                a.version += 1;
            }
        } else {
            if let Some(d) = details {
                a.details = d;
            }
            let from = a.status;
            a.set_status(status, now);
            a.step_deadline = None;
            a.in_progress_deadline = None;
            self.events.push(event(job_id, thing, a, from, now));
        }
        let mut doc = Map::new();
        if include_state {
            doc.insert("executionState".into(), a.state_json());
        }
        if include_doc {
            doc.insert("jobDocument".into(), job.request.document.clone());
        }
        if status.is_terminal() {
            on_terminal(job, thing, now);
        }
        self.dirty.insert(thing.to_owned());
        Ok(doc)
    }
}

// ---------------------------------------------------------------------------
// Free helpers.

/// `minutes` after `now` (seconds), saturating: a timer past the end of
/// time never fires rather than wrapping round to one in the past.
fn after_minutes(now: u64, minutes: u64) -> u64 {
    now.saturating_add(minutes.saturating_mul(60))
}

fn start(
    a: &mut Attempt,
    timeout_minutes: Option<u64>,
    details: Option<BTreeMap<String, String>>,
    step: Option<i64>,
    now: u64,
) {
    a.set_status(ExecutionStatus::InProgress, now);
    a.started_at = Some(now);
    // Started in time: the queued timer no longer applies.
    a.queued_deadline = None;
    if let Some(d) = details {
        a.details = d;
    }
    a.in_progress_deadline = timeout_minutes.map(|m| after_minutes(now, m));
    apply_step(a, step, now);
}

fn apply_step(a: &mut Attempt, step: Option<i64>, now: u64) {
    match step {
        None => {}
        Some(-1) => a.step_deadline = None,
        Some(m) => {
            let d = after_minutes(now, m.unsigned_abs());
            a.step_deadline = Some(a.in_progress_deadline.map_or(d, |ip| d.min(ip)));
        }
    }
}

/// A thing's latest execution just became terminal: schedule a retry if
/// one is left.
fn on_terminal(job: &mut Job, thing: &str, now: u64) {
    if job.status != JobStatus::InProgress {
        return;
    }
    let status = job.things[thing].latest().status;
    let allowed = job.retries_allowed(status);
    let used = job.retries_used(&job.things[thing], status);
    if used < allowed {
        let t = job.things.get_mut(thing).expect("exists");
        t.retry_pending = Some(now);
        match status {
            ExecutionStatus::Failed => t.failed_retries += 1,
            _ => t.timed_out_retries += 1,
        }
    }
}

/// An [`ExecutionEvent`] for `a`'s change from `from` to its status.
fn event(
    job_id: &str,
    thing: &str,
    a: &Attempt,
    from: ExecutionStatus,
    now: u64,
) -> ExecutionEvent {
    ExecutionEvent {
        job_id: job_id.to_owned(),
        thing_name: thing.to_owned(),
        execution_number: a.number,
        from,
        status: a.status,
        at: now,
        status_details: a.details.clone(),
    }
}

/// Cancels QUEUED executions (and IN_PROGRESS ones when `force`), drops
/// pending retries; records the changes in `events`. Returns the things
/// whose released executions changed.
fn cancel_executions(
    job: &mut Job,
    force: bool,
    now: u64,
    events: &mut Vec<ExecutionEvent>,
) -> Vec<String> {
    let mut touched = Vec::new();
    let job_id = job.id().to_owned();
    for (name, t) in &mut job.things {
        t.retry_pending = None;
        let a = t.latest_mut();
        let hit = a.status == ExecutionStatus::Queued
            || (force && a.status == ExecutionStatus::InProgress);
        if hit {
            let from = a.status;
            a.set_status(ExecutionStatus::Canceled, now);
            events.push(event(&job_id, name, a, from, now));
            a.force_canceled = force;
            a.step_deadline = None;
            a.in_progress_deadline = None;
            if a.released {
                touched.push(name.clone());
            }
        }
    }
    touched
}

/// Releases what the cap and the rate allow. Returns the things released to.
fn release(job: &mut Job, now: u64) -> Vec<String> {
    job.prune_window(now);
    let mut released = Vec::new();
    loop {
        if job.slots_used() >= job.max_in_progress as usize
            || job.release_times.len() >= job.rate() as usize
        {
            break;
        }
        let Some((_, name)) = job
            .things
            .iter()
            .filter_map(|(name, t)| t.release_key().map(|k| (k, name.clone())))
            .min()
        else {
            break;
        };
        let queued_deadline = job.queued_deadline(now);
        let t = job.things.get_mut(&name).expect("candidate");
        if t.retry_pending.take().is_some() {
            let number = t.latest().number + 1;
            t.attempts.push(Attempt::new(number, now, true));
        } else {
            t.latest_mut().released = true;
            job.notified_things += 1;
        }
        // The device can see it from now on, so its queued timer starts now.
        t.latest_mut().queued_deadline = queued_deadline;
        job.release_times.push_back(now);
        released.push(name);
    }
    released
}

/// The abort comment if a criterion is met.
fn abort_reason(job: &Job) -> Option<String> {
    let d = job.process_details();
    let failed = d.number_of_failed_things;
    let rejected = d.number_of_rejected_things;
    let timed_out = d.number_of_timed_out_things;
    let completed = d.number_of_succeeded_things + failed + rejected + timed_out;
    if let Some(cfg) = &job.request.settings.abort_config {
        for c in &cfg.criteria_list {
            if completed == 0 || completed < u64::from(c.min_number_of_executed_things) {
                continue;
            }
            let (count, label) = match c.failure_type {
                FailureType::Failed => (failed, "FAILED"),
                FailureType::Rejected => (rejected, "REJECTED"),
                FailureType::TimedOut => (timed_out, "TIMED_OUT"),
                FailureType::All => (failed + rejected + timed_out, "ALL"),
            };
            let pct = 100.0 * count as f64 / completed as f64;
            if pct >= c.threshold_percentage {
                return Some(format!(
                    "Job aborted: {count} of {completed} completed executions {label} \
                     ({pct:.2}% >= {}%)",
                    c.threshold_percentage
                ));
            }
        }
    }
    if let Some(limit) = job.request.settings.abort_after_failures {
        let failures = failed + timed_out;
        if failures > u64::from(limit) {
            return Some(format!(
                "Job aborted: {failures} things failed (more than abortAfterFailures {limit})"
            ));
        }
    }
    None
}

fn validate(r: &CreateJobRequest) -> Result<(), JobsError> {
    let bad = |m: &str| Err(JobsError::InvalidRequest(m.to_owned()));
    if !valid_job_id(&r.job_id) {
        return bad("jobId must match [a-zA-Z0-9_-]{1,64}");
    }
    if r.targets.is_empty() {
        return bad("targets must not be empty");
    }
    if let Some(t) = r
        .targets
        .iter()
        .find(|t| !crate::shadow::valid_thing_name(t))
    {
        return Err(JobsError::InvalidRequest(format!(
            "Invalid thing name {t:?}"
        )));
    }
    if !r.document.is_object() {
        return bad("document must be a JSON object");
    }
    if serde_json::to_vec(&r.document).map_or(true, |v| v.len() > 32_768) {
        return bad("document exceeds 32768 bytes");
    }
    if r.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 2028)
    {
        return bad("description exceeds 2028 characters");
    }
    if let Some(e) = r.settings.check(Setting::aws_key).into_iter().next() {
        return Err(JobsError::InvalidRequest(e.message));
    }
    Ok(())
}

type Body = (Map<String, Value>, Option<String>);

/// Parses a request body: the object and its valid clientToken.
fn parse_body(payload: &[u8], max_token: usize) -> Result<Body, Rejection> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok((Map::new(), None));
    }
    let value: Value = serde_json::from_slice(payload)
        .map_err(|_| reject(codes::INVALID_JSON, "Payload is not valid JSON"))?;
    let Value::Object(body) = value else {
        return Err(reject(
            codes::INVALID_REQUEST,
            "Payload must be a JSON object",
        ));
    };
    let token = match body.get("clientToken") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= max_token => Some(s.clone()),
        Some(_) => return Err(reject(codes::INVALID_REQUEST, "Invalid clientToken")),
    };
    Ok((body, token))
}

fn opt_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, Rejection> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(reject(
            codes::INVALID_REQUEST,
            format!("{key} must be a boolean"),
        )),
    }
}

fn opt_u64(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, Rejection> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            reject(
                codes::INVALID_REQUEST,
                format!("{key} must be a non-negative integer"),
            )
        }),
    }
}

fn parse_step(body: &Map<String, Value>) -> Result<Option<i64>, Rejection> {
    match body.get("stepTimeoutInMinutes") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(m) if m == -1 || (1..=10_080).contains(&m) => Ok(Some(m)),
            _ => Err(reject(
                codes::INVALID_REQUEST,
                "stepTimeoutInMinutes must be -1 or 1-10080",
            )),
        },
    }
}

fn parse_details(body: &Map<String, Value>) -> Result<Option<BTreeMap<String, String>>, Rejection> {
    let bad = || {
        reject(
            codes::INVALID_REQUEST,
            "statusDetails must map [a-zA-Z0-9:_-]{1,128} keys to strings of 1-1024 characters",
        )
    };
    match body.get("statusDetails") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let key_ok = (1..=128).contains(&k.len())
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'));
                let Value::String(s) = v else {
                    return Err(bad());
                };
                let n = s.chars().count();
                if !key_ok || !(1..=1024).contains(&n) || s.chars().any(char::is_control) {
                    return Err(bad());
                }
                out.insert(k.clone(), s.clone());
            }
            Ok(Some(out))
        }
        Some(_) => Err(bad()),
    }
}
