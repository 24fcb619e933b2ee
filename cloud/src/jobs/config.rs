//! CreateJob input, in AWS's JSON shape (model:iot `CreateJobRequest`,
//! camelCase member names), plus twinrig's three documented extensions
//! `maxInProgress`, `abortAfterFailures` and
//! `timeoutConfig.queuedTimeoutInMinutes`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What [`super::JobsService::create_job`] takes. Deserialises from AWS's
/// CreateJob body; `targets` are thing names (the caller resolves groups and
/// types to things).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateJobRequest {
    /// `[a-zA-Z0-9_-]{1,64}`, unique.
    pub job_id: String,
    /// Thing names (at least one; duplicates are merged).
    pub targets: Vec<String>,
    /// The job document: a JSON object of at most 32 768 bytes (compact).
    pub document: Value,
    /// Free text, at most 2028 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `jobExecutionsRolloutConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_executions_rollout_config: Option<RolloutConfig>,
    /// `abortConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_config: Option<AbortConfig>,
    /// `timeoutConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_config: Option<TimeoutConfig>,
    /// `jobExecutionsRetryConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_executions_retry_config: Option<RetryConfig>,
    /// twinrig extension: at most this many executions of the job are
    /// released and not terminal at once (so at most this many IN_PROGRESS).
    /// Default [`super::JobsConfig::default_max_in_progress`] (10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_progress: Option<u32>,
    /// twinrig extension: abort when more than this many things have
    /// failed (latest execution FAILED or TIMED_OUT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_after_failures: Option<u32>,
}

impl CreateJobRequest {
    /// A job with no rollout, abort, timeout or retry configuration.
    pub fn new(job_id: impl Into<String>, targets: &[&str], document: Value) -> Self {
        CreateJobRequest {
            job_id: job_id.into(),
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            document,
            description: None,
            job_executions_rollout_config: None,
            abort_config: None,
            timeout_config: None,
            job_executions_retry_config: None,
            max_in_progress: None,
            abort_after_failures: None,
        }
    }
}

/// `jobExecutionsRolloutConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutConfig {
    /// Things notified per minute, 1–1000 (1000 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_per_minute: Option<u32>,
    /// Rate that grows as notified or succeeded things accumulate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_rate: Option<ExponentialRate>,
}

/// `exponentialRate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExponentialRate {
    /// Starting rate, 1–1000 per minute.
    pub base_rate_per_minute: u32,
    /// 1.1–5, at most one decimal.
    pub increment_factor: f64,
    /// When the rate is multiplied.
    pub rate_increase_criteria: RateIncreaseCriteria,
}

/// `rateIncreaseCriteria`: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateIncreaseCriteria {
    /// Multiply the rate after every this many notified things.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_notified_things: Option<u32>,
    /// Multiply the rate after every this many succeeded things.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_succeeded_things: Option<u32>,
}

/// `abortConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbortConfig {
    /// Checked in order; the first one met aborts the job.
    pub criteria_list: Vec<AbortCriteria>,
}

/// `AbortCriteria`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbortCriteria {
    /// Which terminal statuses count.
    pub failure_type: FailureType,
    /// Always `CANCEL`.
    pub action: AbortAction,
    /// 0 < p <= 100, of completed executions.
    pub threshold_percentage: f64,
    /// Not evaluated before this many executions have completed (>= 1).
    pub min_number_of_executed_things: u32,
}

/// `JobExecutionFailureType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureType {
    /// FAILED.
    Failed,
    /// REJECTED (abort criteria only; never retried).
    Rejected,
    /// TIMED_OUT.
    TimedOut,
    /// FAILED + REJECTED + TIMED_OUT for abort; FAILED + TIMED_OUT for retry.
    All,
}

/// `AbortAction`: AWS's only value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AbortAction {
    /// CANCEL.
    Cancel,
}

/// `timeoutConfig`, plus twinrig's queued timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutConfig {
    /// 1–10080 minutes from the start of IN_PROGRESS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress_timeout_in_minutes: Option<u64>,
    /// twinrig extension, not an AWS setting: 1–10080 minutes from the
    /// moment an execution is released to its device (notified) while it
    /// stays QUEUED; then it becomes TIMED_OUT. AWS times out only
    /// IN_PROGRESS executions, so on AWS a device that never connects keeps
    /// its execution QUEUED for ever: under `maxInProgress` it holds a slot
    /// and the job never completes. With this set, that device ends
    /// TIMED_OUT (a failure, for abort and retry), its slot is freed and the
    /// job can complete. Unreleased executions wait for a slot, not for the
    /// device, so their timer starts only at release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_timeout_in_minutes: Option<u64>,
}

/// `jobExecutionsRetryConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfig {
    /// One or two criteria.
    pub criteria_list: Vec<RetryCriteria>,
}

/// `RetryCriteria`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryCriteria {
    /// FAILED, TIMED_OUT or ALL (REJECTED is refused).
    pub failure_type: FailureType,
    /// 0–10 (at most 10 across the criteria).
    pub number_of_retries: u32,
}
