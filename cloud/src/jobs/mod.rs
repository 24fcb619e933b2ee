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
mod control;
mod device;
mod events;
mod request;
mod rollout;
mod state;
mod topic;
mod types;

#[cfg(test)]
mod tests;

pub use config::{
    AbortAction, AbortConfig, AbortCriteria, CreateJobRequest, ExponentialRate, FailureType,
    PathStep, RateIncreaseCriteria, RetryConfig, RetryCriteria, RolloutConfig, RolloutSettings,
    Setting, SettingsError, TimeoutConfig,
};
pub use events::JOB_EXECUTION_EVENTS;
/// The job execution events' rule preset (`job-executions`).
pub mod execution_events_rule {
    pub use super::events::{ACTION, RULE, SQL, TRANSFORM_JSON};
}
pub use state::JobsService;
pub use topic::{
    JobsOp, JobsTopic, REQUEST_FILTERS, jobs_prefix, parse_request_topic, valid_job_id,
};

pub use types::{
    Alert, CreateJobResponse, ExecutionEvent, ExecutionStatus, JobDescription,
    JobExecutionDescription, JobExecutionSummary, JobExecutionSummaryForJob, JobProcessDetails,
    JobStatus, JobSummary, JobsError, Output, Publish, StatusDetails, codes,
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
