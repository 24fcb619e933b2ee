//! CreateJob input, in AWS's JSON shape (model:iot `CreateJobRequest`,
//! camelCase member names), plus twinrig's three documented extensions
//! `maxInProgress`, `abortAfterFailures` and
//! `timeoutConfig.queuedTimeoutInMinutes`.
//!
//! The rollout, abort, timeout and retry types are declared here only: the
//! scenario format and the fleet tools use them as they are. So they reject
//! unknown keys, and with the `schema` feature they describe themselves as
//! JSON Schema (their doc comments become the descriptions). Their rules
//! (ranges, combinations) are checked in one place, [`RolloutSettings::check`].

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
    /// How the job rolls out; its keys sit at the top level of the body.
    #[serde(flatten)]
    pub settings: RolloutSettings,
}

impl CreateJobRequest {
    /// The request of AWS's CreateJob REST call (`PUT /jobs/{jobId}`):
    /// `targets` are ARNs, which `things_of` turns into thing names (the
    /// thing registry resolves thing and thing group ARNs), `document` is
    /// the job document as a string;
    /// the rollout settings sit at the top level. `targetSelection` other
    /// than `SNAPSHOT` and a missing `document` (`documentSource` is not
    /// served) are refused; other keys the twin does not model (tags,
    /// `presignedUrlConfig`, ...) are ignored.
    pub fn from_aws_body(
        job_id: &str,
        body: &Value,
        things_of: impl FnOnce(&[String]) -> Result<Vec<String>, super::JobsError>,
    ) -> Result<Self, super::JobsError> {
        use super::JobsError::InvalidRequest;
        let mut fields = body
            .as_object()
            .cloned()
            .ok_or_else(|| InvalidRequest("the body must be a JSON object".into()))?;
        if let Some(selection) = fields.remove("targetSelection")
            && selection != "SNAPSHOT"
        {
            return Err(InvalidRequest(format!(
                "targetSelection {selection} is not served (SNAPSHOT only)"
            )));
        }
        let arns = fields
            .remove("targets")
            .and_then(|t| t.as_array().cloned())
            .ok_or_else(|| InvalidRequest("targets: a list of ARNs is required".into()))?
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| InvalidRequest(format!("target {t} is not an ARN")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let document = match fields.remove("document") {
            Some(Value::String(text)) => serde_json::from_str(&text)
                .map_err(|e| InvalidRequest(format!("document is not JSON: {e}")))?,
            Some(_) => return Err(InvalidRequest("document must be a string".into())),
            None => {
                return Err(InvalidRequest(
                    "document is required (documentSource is not served)".into(),
                ));
            }
        };
        let targets = things_of(&arns)?;
        fields.insert("jobId".into(), Value::String(job_id.to_owned()));
        fields.insert("targets".into(), serde_json::json!(targets));
        fields.insert("document".into(), document);
        serde_json::from_value(Value::Object(fields)).map_err(|e| InvalidRequest(e.to_string()))
    }

    /// A job with no rollout, abort, timeout or retry configuration.
    pub fn new(job_id: impl Into<String>, targets: &[&str], document: Value) -> Self {
        CreateJobRequest {
            job_id: job_id.into(),
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            document,
            description: None,
            settings: RolloutSettings::default(),
        }
    }
}

/// How a job rolls out, in CreateJob's terms plus twinrig's two top-level
/// extensions. Every field is optional; unset means the service default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSettings {
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

/// One of the settings in [`RolloutSettings`], for naming it in errors: each
/// format spells them its own way (CreateJob: [`Setting::aws_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    /// `jobExecutionsRolloutConfig`.
    Rollout,
    /// `abortConfig`.
    Abort,
    /// `timeoutConfig`.
    Timeout,
    /// `jobExecutionsRetryConfig`.
    Retry,
    /// `maxInProgress`.
    MaxInProgress,
    /// `abortAfterFailures`.
    AbortAfterFailures,
}

impl Setting {
    /// Its key in AWS's CreateJob body.
    pub fn aws_key(self) -> &'static str {
        match self {
            Setting::Rollout => "jobExecutionsRolloutConfig",
            Setting::Abort => "abortConfig",
            Setting::Timeout => "timeoutConfig",
            Setting::Retry => "jobExecutionsRetryConfig",
            Setting::MaxInProgress => "maxInProgress",
            Setting::AbortAfterFailures => "abortAfterFailures",
        }
    }
}

/// A step on the way from a [`Setting`] to the offending value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStep {
    /// A key, as AWS spells it (camelCase).
    Key(&'static str),
    /// A list index (0-based).
    Index(usize),
}

/// A rule of CreateJob's settings that a [`RolloutSettings`] breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The setting it is in.
    pub setting: Setting,
    /// Where below the setting (empty: the setting itself).
    pub path: Vec<PathStep>,
    /// What is wrong, for people.
    pub message: String,
}

impl RolloutSettings {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == RolloutSettings::default()
    }

    /// Every rule the settings break, in field order. `key` spells a setting
    /// in the caller's format, for the messages (CreateJob:
    /// [`Setting::aws_key`]).
    pub fn check(&self, key: fn(Setting) -> &'static str) -> Vec<SettingsError> {
        use PathStep::{Index, Key};
        let mut errors = Vec::new();
        let mut err = |setting, path: Vec<PathStep>, message: String| {
            errors.push(SettingsError {
                setting,
                path,
                message,
            });
        };

        if let Some(r) = &self.job_executions_rollout_config {
            if let Some(m) = r.maximum_per_minute
                && !(1..=1000).contains(&m)
            {
                err(
                    Setting::Rollout,
                    vec![Key("maximumPerMinute")],
                    format!("`maximumPerMinute` must be from 1 to 1000, got {m}"),
                );
            }
            if let Some(e) = &r.exponential_rate {
                let at = |k| vec![Key("exponentialRate"), Key(k)];
                if !(1..=1000).contains(&e.base_rate_per_minute) {
                    err(
                        Setting::Rollout,
                        at("baseRatePerMinute"),
                        format!(
                            "`baseRatePerMinute` must be from 1 to 1000, got {}",
                            e.base_rate_per_minute
                        ),
                    );
                }
                let f = e.increment_factor;
                if !(1.1..=5.0).contains(&f) || ((f * 10.0).round() - f * 10.0).abs() > 1e-9 {
                    err(
                        Setting::Rollout,
                        at("incrementFactor"),
                        format!(
                            "`incrementFactor` must be from 1.1 to 5 with at most one decimal, got {f}"
                        ),
                    );
                }
                let c = &e.rate_increase_criteria;
                let ok = matches!(
                    (c.number_of_notified_things, c.number_of_succeeded_things),
                    (Some(n), None) | (None, Some(n)) if n >= 1
                );
                if !ok {
                    err(
                        Setting::Rollout,
                        at("rateIncreaseCriteria"),
                        "`rateIncreaseCriteria` needs exactly one of numberOfNotifiedThings and numberOfSucceededThings, at least 1".to_owned(),
                    );
                }
            }
        }

        if let Some(a) = &self.abort_config {
            if a.criteria_list.is_empty() {
                err(
                    Setting::Abort,
                    vec![Key("criteriaList")],
                    format!("`{}.criteriaList` must not be empty", key(Setting::Abort)),
                );
            }
            for (j, c) in a.criteria_list.iter().enumerate() {
                let at = |k| vec![Key("criteriaList"), Index(j), Key(k)];
                let t = c.threshold_percentage;
                if !(t > 0.0 && t <= 100.0) {
                    err(
                        Setting::Abort,
                        at("thresholdPercentage"),
                        format!(
                            "abort criterion {}: `thresholdPercentage` must be more than 0 and at most 100, got {t}",
                            j + 1
                        ),
                    );
                }
                if c.min_number_of_executed_things < 1 {
                    err(
                        Setting::Abort,
                        at("minNumberOfExecutedThings"),
                        format!(
                            "abort criterion {}: `minNumberOfExecutedThings` must be at least 1",
                            j + 1
                        ),
                    );
                }
            }
        }

        let timeout = self
            .timeout_config
            .and_then(|t| t.in_progress_timeout_in_minutes);
        if let Some(m) = timeout
            && !(1..=10_080).contains(&m)
        {
            err(
                Setting::Timeout,
                vec![Key("inProgressTimeoutInMinutes")],
                format!("`inProgressTimeoutInMinutes` must be from 1 to 10080, got {m}"),
            );
        }
        // The extension takes the same range as its AWS sibling.
        let queued_timeout = self
            .timeout_config
            .and_then(|t| t.queued_timeout_in_minutes);
        if let Some(m) = queued_timeout
            && !(1..=10_080).contains(&m)
        {
            err(
                Setting::Timeout,
                vec![Key("queuedTimeoutInMinutes")],
                format!("`queuedTimeoutInMinutes` must be from 1 to 10080, got {m}"),
            );
        }

        if let Some(r) = &self.job_executions_retry_config {
            let n = r.criteria_list.len();
            if !(1..=2).contains(&n) {
                err(
                    Setting::Retry,
                    vec![Key("criteriaList")],
                    format!(
                        "`{}.criteriaList` must hold 1 or 2 criteria, got {n}",
                        key(Setting::Retry)
                    ),
                );
            }
            let mut total: u64 = 0;
            for (j, c) in r.criteria_list.iter().enumerate() {
                let at = vec![Key("criteriaList"), Index(j), Key("failureType")];
                match c.failure_type {
                    FailureType::Rejected => err(
                        Setting::Retry,
                        at,
                        format!(
                            "retry criterion {}: REJECTED executions are never retried; use FAILED, TIMED_OUT or ALL",
                            j + 1
                        ),
                    ),
                    // Either timer can make an execution TIMED_OUT.
                    FailureType::TimedOut if timeout.is_none() && queued_timeout.is_none() => err(
                        Setting::Retry,
                        at,
                        format!(
                            "retry criterion {}: TIMED_OUT retries need `{}: {{inProgressTimeoutInMinutes: ...}}` (or `queuedTimeoutInMinutes`)",
                            j + 1,
                            key(Setting::Timeout)
                        ),
                    ),
                    _ => {}
                }
                total += u64::from(c.number_of_retries);
            }
            if total > 10 {
                err(
                    Setting::Retry,
                    vec![Key("criteriaList")],
                    format!("at most 10 retries in total (`numberOfRetries`), got {total}"),
                );
            }
        }

        if self.max_in_progress == Some(0) {
            err(
                Setting::MaxInProgress,
                Vec::new(),
                format!("`{}` must be at least 1", key(Setting::MaxInProgress)),
            );
        }
        errors
    }

    /// One line for people: `max 10 updating, 100/min, abort if >10 failed or ALL >= 5% of 10+`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.max_in_progress {
            parts.push(format!("max {m} updating"));
        }
        if let Some(r) = &self.job_executions_rollout_config {
            if let Some(m) = r.maximum_per_minute {
                parts.push(format!("{m}/min"));
            }
            if let Some(e) = &r.exponential_rate {
                parts.push(format!(
                    "from {}/min x{}",
                    e.base_rate_per_minute, e.increment_factor
                ));
            }
        }
        let mut aborts = Vec::new();
        if let Some(n) = self.abort_after_failures {
            aborts.push(format!(">{n} failed"));
        }
        for c in self.abort_config.iter().flat_map(|a| &a.criteria_list) {
            let kind = serde_json::to_value(c.failure_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            aborts.push(format!(
                "{kind} >= {}% of {}+",
                c.threshold_percentage, c.min_number_of_executed_things
            ));
        }
        if !aborts.is_empty() {
            parts.push(format!("abort if {}", aborts.join(" or ")));
        }
        if let Some(m) = self
            .timeout_config
            .and_then(|t| t.in_progress_timeout_in_minutes)
        {
            parts.push(format!("timeout {m} min"));
        }
        if let Some(m) = self
            .timeout_config
            .and_then(|t| t.queued_timeout_in_minutes)
        {
            parts.push(format!("queued timeout {m} min"));
        }
        if let Some(r) = &self.job_executions_retry_config {
            let n: u32 = r.criteria_list.iter().map(|c| c.number_of_retries).sum();
            parts.push(format!("{n} retries"));
        }
        parts.join(", ")
    }
}

// The schema ranges below repeat, for editors, the rules that
// `RolloutSettings::check` enforces.

/// `jobExecutionsRolloutConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutConfig {
    /// Things notified per minute, 1 to 1000 (1000 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1000)))]
    pub maximum_per_minute: Option<u32>,
    /// A rate that grows as notified or succeeded things accumulate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_rate: Option<ExponentialRate>,
}

/// `exponentialRate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExponentialRate {
    /// Starting rate, 1 to 1000 per minute.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1000)))]
    pub base_rate_per_minute: u32,
    /// 1.1 to 5, at most one decimal.
    #[cfg_attr(feature = "schema", schemars(range(min = 1.1, max = 5.0)))]
    pub increment_factor: f64,
    /// When the rate is multiplied: exactly one of the two counts.
    pub rate_increase_criteria: RateIncreaseCriteria,
}

/// `rateIncreaseCriteria`: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateIncreaseCriteria {
    /// Multiply the rate after every this many notified things.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub number_of_notified_things: Option<u32>,
    /// Multiply the rate after every this many succeeded things.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub number_of_succeeded_things: Option<u32>,
}

/// `abortConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbortConfig {
    /// Checked in order; the first one met aborts the job.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub criteria_list: Vec<AbortCriteria>,
}

/// `AbortCriteria`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbortCriteria {
    /// Which terminal statuses count.
    pub failure_type: FailureType,
    /// Always `CANCEL`.
    pub action: AbortAction,
    /// More than 0, at most 100: percent of completed executions.
    #[cfg_attr(feature = "schema", schemars(range(max = 100.0)))]
    pub threshold_percentage: f64,
    /// Not evaluated before this many executions have completed (at least 1).
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub min_number_of_executed_things: u32,
}

/// `JobExecutionFailureType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureType {
    /// FAILED.
    Failed,
    /// REJECTED (abort criteria only; never retried).
    Rejected,
    /// TIMED_OUT.
    TimedOut,
    /// All failure kinds: FAILED, REJECTED and TIMED_OUT for abort; FAILED
    /// and TIMED_OUT for retry.
    All,
}

/// `AbortAction`: AWS's only value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AbortAction {
    /// CANCEL.
    Cancel,
}

/// `timeoutConfig`, plus twinrig's `queuedTimeoutInMinutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutConfig {
    /// 1 to 10080 minutes from the start of IN_PROGRESS; then TIMED_OUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 10_080)))]
    pub in_progress_timeout_in_minutes: Option<u64>,
    /// twinrig extension (AWS has no such setting): 1 to 10080 minutes
    /// from the moment an execution is released to its device while it
    /// stays QUEUED; then TIMED_OUT (a failure, for abort and retry), and
    /// its in-progress slot is freed. A device that never connects then ends
    /// TIMED_OUT and the job can complete, where on AWS it would stay QUEUED
    /// for ever, holding a `maxInProgress` slot. Unreleased executions wait
    /// for a slot, not for the device, so their timer starts only at release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 10_080)))]
    pub queued_timeout_in_minutes: Option<u64>,
}

/// `jobExecutionsRetryConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryConfig {
    /// One or two criteria.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 2)))]
    pub criteria_list: Vec<RetryCriteria>,
}

/// `RetryCriteria`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryCriteria {
    /// FAILED, TIMED_OUT or ALL (REJECTED is never retried).
    pub failure_type: FailureType,
    /// 0 to 10 (at most 10 across the criteria).
    #[cfg_attr(feature = "schema", schemars(range(max = 10)))]
    pub number_of_retries: u32,
}
