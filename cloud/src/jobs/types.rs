//! The service's public results, events and errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AbortConfig, RetryConfig, RolloutConfig, TimeoutConfig};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

/// ListJobs entry (model:iot `JobSummary`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    /// `arn:aws:iot:{region}:{account}:job/{jobId}`.
    pub job_arn: String,
    /// The id.
    pub job_id: String,
    /// Always SNAPSHOT here.
    pub target_selection: String,
    /// Status.
    pub status: JobStatus,
    /// Epoch seconds.
    pub created_at: u64,
    /// Epoch seconds.
    pub last_updated_at: u64,
    /// Epoch seconds, once COMPLETED or CANCELED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    /// Whether executions are still being released or updated.
    pub is_concurrent: bool,
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
