//! The fleet tools over AWS IoT's control plane (`aws` feature, aws-sdk-iot),
//! so the prompt handling that runs against the local twin can run against
//! a real account.
//!
//! | tool | AWS calls | what it cannot do |
//! |---|---|---|
//! | `list_device_types` | ListThingGroups + ListThingsInThingGroup (a device type is a thing group, the default), or ListThingTypes + ListThings | the OTA gate and recommended version are not AWS IoT settings: reported as unknown |
//! | `list_versions` | none | versions live in S3 (the firmware bucket), not in AWS IoT: served only from the manifest given to [`AwsFleetConfig::firmware`], otherwise unsupported |
//! | `fleet_status` | the device listing, then GetThingShadow (iot-data plane, aws-sdk-iotdataplane) per device: `state.reported.firmware` | a device without a shadow or without `firmware` in it counts as `unknown` |
//! | `create_ota_job`, `rollback` | CreateJob (SNAPSHOT, `jobExecutionsRolloutConfig`, `abortConfig`, `timeoutConfig`, `jobExecutionsRetryConfig`, `presignedUrlConfig`) | needs the version's SHA-256 and size from the manifest; `previous` needs shadows: unsupported; twinrig's extensions `maxInProgress`, `abortAfterFailures` and `timeoutConfig.queuedTimeoutInMinutes` cannot be expressed in CreateJob: refused, not silently dropped |
//! | `job_status` | DescribeJob, ListJobExecutionsForJob (FAILED, REJECTED, TIMED_OUT), DescribeJobExecution (`statusDetails.reason`) | the most executions IN_PROGRESS at once is not reported by AWS |
//! | `cancel_job` | CancelJob (with `force`); ListJobs (IN_PROGRESS) when no job id is given | |
//! | `set_ota` | none | the gate is the fleet's own configuration (a DynamoDB item in the system modelled): unsupported |
//!
//! The job document has the twin's shape (`operation`, `deviceType`,
//! `version`, `sha256`, `size`) with AWS's presigned-URL placeholder as
//! `url`, which AWS IoT replaces with a URL signed with
//! `presignedUrlConfig.roleArn` when a device fetches the document.
//!
//! The request building and response mapping are pure functions, tested
//! without a network; the calls need a tokio runtime (the SDK's HTTP client).

use std::collections::BTreeMap;

use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iot::types as aws;
use serde_json::{Value, json};
use twinrig_cloud::jobs::{AbortAction, ExecutionStatus, FailureType, RolloutSettings};

use crate::fleet_tools::{
    DeviceTypeInfo, ExecutionFailure, FleetBackend, FleetStatus, GateChange, JobCounts, JobCreated,
    JobReport, JobState, OtaJobSpec, Target, ToolError, UNKNOWN_VERSION, VersionInfo, VersionSpec,
    thing_from_arn,
};

const BACKEND: &str = "AWS IoT";

/// What a device type is in the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceTypeSource {
    /// A thing group per device type; jobs target the group (the default).
    #[default]
    ThingGroups,
    /// A thing type per device type; jobs target its things (at most 100).
    ThingTypes,
}

/// Where the backend finds things, firmware and signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsFleetConfig {
    /// Region, e.g. `us-east-1` (ARNs and the S3 URL).
    pub region: String,
    /// Account id (ARNs).
    pub account_id: String,
    /// Thing groups or thing types.
    pub device_types: DeviceTypeSource,
    /// The S3 bucket with `{type}/{version}/firmware.bin`.
    pub firmware_bucket: String,
    /// The role AWS IoT presigns firmware URLs with.
    pub presign_role_arn: String,
    /// How long presigned URLs live, 60 to 3600 s.
    pub url_expiry_s: i64,
    /// Published versions per type (the S3 listing and `firmware.sha256`,
    /// gathered by the caller); empty: `list_versions` is unsupported.
    pub firmware: BTreeMap<String, Vec<VersionInfo>>,
}

/// The fleet tools over aws-sdk-iot.
pub struct AwsFleet {
    client: aws_sdk_iot::Client,
    /// The iot-data plane (device shadows), if the backend has one.
    data: Option<aws_sdk_iotdataplane::Client>,
    config: AwsFleetConfig,
}

/// The largest number of targets one job takes (AWS).
pub const MAX_JOB_TARGETS: usize = 100;

/// `arn:aws:iot:{region}:{account}:thing/{name}`.
pub fn thing_arn(c: &AwsFleetConfig, thing: &str) -> String {
    format!("arn:aws:iot:{}:{}:thing/{thing}", c.region, c.account_id)
}

/// `arn:aws:iot:{region}:{account}:thinggroup/{name}`.
pub fn thing_group_arn(c: &AwsFleetConfig, group: &str) -> String {
    format!(
        "arn:aws:iot:{}:{}:thinggroup/{group}",
        c.region, c.account_id
    )
}

/// The one device type a target covers, from a device-type listing.
pub fn device_type_of(types: &[DeviceTypeInfo], target: &Target) -> Result<String, ToolError> {
    match target {
        Target::DeviceType(t) => types
            .iter()
            .find(|i| &i.name == t)
            .map(|i| i.name.clone())
            .ok_or_else(|| ToolError::NotFound(format!("no device type {t} in the account"))),
        Target::Device(d) => {
            let of: Vec<&str> = types
                .iter()
                .filter(|i| i.devices.contains(d))
                .map(|i| i.name.as_str())
                .collect();
            match of.as_slice() {
                [one] => Ok((*one).to_owned()),
                [] => Err(ToolError::NotFound(format!(
                    "device {d} is in no device type"
                ))),
                many => Err(ToolError::Invalid(format!(
                    "device {d} is in several device types ({}); an OTA job is for one type",
                    many.join(", ")
                ))),
            }
        }
        Target::Fleet => Err(ToolError::Invalid(
            "the target spans several device types; an OTA job is for one type".into(),
        )),
    }
}

/// CreateJob `targets`: a thing, the type's thing group, or (thing types)
/// the type's things.
pub fn job_targets(
    c: &AwsFleetConfig,
    target: &Target,
    device_type: &str,
    things_of_type: &[String],
) -> Result<Vec<String>, ToolError> {
    match (target, c.device_types) {
        (Target::Device(d), _) => Ok(vec![thing_arn(c, d)]),
        (Target::DeviceType(_), DeviceTypeSource::ThingGroups) => {
            Ok(vec![thing_group_arn(c, device_type)])
        }
        (Target::DeviceType(_), DeviceTypeSource::ThingTypes) => {
            if things_of_type.is_empty() {
                return Err(ToolError::NotFound(format!(
                    "no thing of type {device_type}"
                )));
            }
            if things_of_type.len() > MAX_JOB_TARGETS {
                return Err(ToolError::Invalid(format!(
                    "{device_type} has {} things; a job takes at most {MAX_JOB_TARGETS} targets: use thing groups",
                    things_of_type.len()
                )));
            }
            Ok(things_of_type.iter().map(|t| thing_arn(c, t)).collect())
        }
        (Target::Fleet, _) => Err(ToolError::Invalid(
            "the target spans several device types; an OTA job is for one type".into(),
        )),
    }
}

fn semver(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.').map(|p| p.parse::<u64>().ok());
    let parts = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(parts)
}

/// The version a spec names, from the manifest.
pub fn resolve_version(
    c: &AwsFleetConfig,
    device_type: &str,
    spec: &VersionSpec,
) -> Result<VersionInfo, ToolError> {
    let unsupported = |why: &str| ToolError::Unsupported {
        tool: "create_ota_job",
        backend: BACKEND,
        why: why.to_owned(),
    };
    if c.firmware.is_empty() {
        return Err(unsupported(
            "the job document needs the image's SHA-256 and size, which live in S3; give the backend a firmware manifest",
        ));
    }
    let versions = c.firmware.get(device_type).ok_or_else(|| {
        ToolError::NotFound(format!("no firmware for {device_type} in the manifest"))
    })?;
    match spec {
        VersionSpec::Latest => versions
            .iter()
            .filter(|v| semver(&v.version).is_some())
            .max_by_key(|v| semver(&v.version))
            .cloned()
            .ok_or_else(|| ToolError::NotFound(format!("no firmware for {device_type}"))),
        VersionSpec::Exact(want) => {
            let want = want.trim_start_matches('v');
            versions
                .iter()
                .find(|v| v.version == want)
                .cloned()
                .ok_or_else(|| {
                    ToolError::NotFound(format!("no firmware {device_type} {want} in the manifest"))
                })
        }
        VersionSpec::Previous => Err(unsupported(
            "`previous` depends on the versions devices report in their shadows (iot-data); name the version",
        )),
    }
}

/// The job document: the twin's OTA shape, with AWS's presigned-URL placeholder.
pub fn ota_document(c: &AwsFleetConfig, device_type: &str, v: &VersionInfo) -> Value {
    let object = format!(
        "https://s3.{}.amazonaws.com/{}/{device_type}/{}/firmware.bin",
        c.region, c.firmware_bucket, v.version
    );
    json!({
        "operation": "ota",
        "deviceType": device_type,
        "version": v.version,
        "url": format!("${{aws:iot:s3-presigned-url-v2:{object}}}"),
        "sha256": v.sha256,
        "size": v.size,
    })
}

/// CreateJob's configuration members, as the SDK types.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AwsJobConfig {
    /// `jobExecutionsRolloutConfig`.
    pub rollout: Option<aws::JobExecutionsRolloutConfig>,
    /// `abortConfig`.
    pub abort: Option<aws::AbortConfig>,
    /// `timeoutConfig`.
    pub timeout: Option<aws::TimeoutConfig>,
    /// `jobExecutionsRetryConfig`.
    pub retry: Option<aws::JobExecutionsRetryConfig>,
}

fn to_i32(v: u32, what: &str) -> Result<i32, ToolError> {
    i32::try_from(v).map_err(|_| ToolError::Invalid(format!("{what} {v} is too large")))
}

fn built<T>(r: Result<T, aws_sdk_iot::error::BuildError>) -> Result<T, ToolError> {
    r.map_err(|e| ToolError::Invalid(e.to_string()))
}

/// The rollout settings in CreateJob's terms. twinrig's extensions have no
/// AWS equivalent and are refused rather than dropped.
pub fn aws_job_config(r: &RolloutSettings) -> Result<AwsJobConfig, ToolError> {
    if let Some(n) = r.max_in_progress {
        return Err(ToolError::Unsupported {
            tool: "create_ota_job",
            backend: BACKEND,
            why: format!(
                "maxInProgress ({n}) is a twinrig extension AWS IoT Jobs cannot enforce; leave it unset and limit the rate with maximumPerMinute"
            ),
        });
    }
    if let Some(n) = r.abort_after_failures {
        return Err(ToolError::Unsupported {
            tool: "create_ota_job",
            backend: BACKEND,
            why: format!(
                "abortAfterFailures ({n}) is a twinrig extension; AWS abortConfig takes percentages only"
            ),
        });
    }
    if let Some(m) = r.timeout_config.and_then(|t| t.queued_timeout_in_minutes) {
        return Err(ToolError::Unsupported {
            tool: "create_ota_job",
            backend: BACKEND,
            why: format!(
                "queuedTimeoutInMinutes ({m}) is a twinrig extension; AWS IoT Jobs times out only IN_PROGRESS executions"
            ),
        });
    }
    let rollout = match &r.job_executions_rollout_config {
        None => None,
        Some(ro) => {
            let exponential = match &ro.exponential_rate {
                None => None,
                Some(e) => {
                    let criteria = aws::RateIncreaseCriteria::builder()
                        .set_number_of_notified_things(
                            e.rate_increase_criteria
                                .number_of_notified_things
                                .map(|n| to_i32(n, "numberOfNotifiedThings"))
                                .transpose()?,
                        )
                        .set_number_of_succeeded_things(
                            e.rate_increase_criteria
                                .number_of_succeeded_things
                                .map(|n| to_i32(n, "numberOfSucceededThings"))
                                .transpose()?,
                        )
                        .build();
                    Some(built(
                        aws::ExponentialRolloutRate::builder()
                            .base_rate_per_minute(to_i32(
                                e.base_rate_per_minute,
                                "baseRatePerMinute",
                            )?)
                            .increment_factor(e.increment_factor)
                            .rate_increase_criteria(criteria)
                            .build(),
                    )?)
                }
            };
            Some(
                aws::JobExecutionsRolloutConfig::builder()
                    .set_maximum_per_minute(
                        ro.maximum_per_minute
                            .map(|m| to_i32(m, "maximumPerMinute"))
                            .transpose()?,
                    )
                    .set_exponential_rate(exponential)
                    .build(),
            )
        }
    };
    let abort = match &r.abort_config {
        None => None,
        Some(a) => {
            let mut b = aws::AbortConfig::builder();
            for c in &a.criteria_list {
                let AbortAction::Cancel = c.action;
                b = b.criteria_list(built(
                    aws::AbortCriteria::builder()
                        .failure_type(match c.failure_type {
                            FailureType::Failed => aws::JobExecutionFailureType::Failed,
                            FailureType::Rejected => aws::JobExecutionFailureType::Rejected,
                            FailureType::TimedOut => aws::JobExecutionFailureType::TimedOut,
                            FailureType::All => aws::JobExecutionFailureType::All,
                        })
                        .action(aws::AbortAction::Cancel)
                        .threshold_percentage(c.threshold_percentage)
                        .min_number_of_executed_things(to_i32(
                            c.min_number_of_executed_things,
                            "minNumberOfExecutedThings",
                        )?)
                        .build(),
                )?);
            }
            Some(built(b.build())?)
        }
    };
    let timeout = match r
        .timeout_config
        .and_then(|t| t.in_progress_timeout_in_minutes)
    {
        None => None,
        Some(m) => Some(
            aws::TimeoutConfig::builder()
                .in_progress_timeout_in_minutes(i64::try_from(m).map_err(|_| {
                    ToolError::Invalid(format!("inProgressTimeoutInMinutes {m} is too large"))
                })?)
                .build(),
        ),
    };
    let retry = match &r.job_executions_retry_config {
        None => None,
        Some(rc) => {
            let mut b = aws::JobExecutionsRetryConfig::builder();
            for c in &rc.criteria_list {
                let failure_type = match c.failure_type {
                    FailureType::Failed => aws::RetryableFailureType::Failed,
                    FailureType::TimedOut => aws::RetryableFailureType::TimedOut,
                    FailureType::All => aws::RetryableFailureType::All,
                    FailureType::Rejected => {
                        return Err(ToolError::Invalid(
                            "REJECTED executions are never retried".into(),
                        ));
                    }
                };
                b = b.criteria_list(built(
                    aws::RetryCriteria::builder()
                        .failure_type(failure_type)
                        .number_of_retries(to_i32(c.number_of_retries, "numberOfRetries")?)
                        .build(),
                )?);
            }
            Some(built(b.build())?)
        }
    };
    Ok(AwsJobConfig {
        rollout,
        abort,
        timeout,
        retry,
    })
}

/// The whole CreateJob input.
pub fn create_job_input(
    c: &AwsFleetConfig,
    spec: &OtaJobSpec,
    targets: Vec<String>,
    document: &Value,
) -> Result<aws_sdk_iot::operation::create_job::CreateJobInput, ToolError> {
    if !(60..=3600).contains(&c.url_expiry_s) {
        return Err(ToolError::Invalid(format!(
            "presigned URL expiry {} s: AWS takes 60 to 3600",
            c.url_expiry_s
        )));
    }
    let config = aws_job_config(&spec.rollout)?;
    built(
        aws_sdk_iot::operation::create_job::CreateJobInput::builder()
            .job_id(&spec.job_id)
            .set_targets(Some(targets))
            .document(document.to_string())
            .set_description(spec.description.clone())
            .target_selection(aws::TargetSelection::Snapshot)
            .presigned_url_config(
                aws::PresignedUrlConfig::builder()
                    .role_arn(&c.presign_role_arn)
                    .expires_in_sec(c.url_expiry_s)
                    .build(),
            )
            .set_job_executions_rollout_config(config.rollout)
            .set_abort_config(config.abort)
            .set_timeout_config(config.timeout)
            .set_job_executions_retry_config(config.retry)
            .build(),
    )
}

/// AWS's execution status as the twin's.
pub fn execution_status(s: &aws::JobExecutionStatus) -> Option<ExecutionStatus> {
    ExecutionStatus::parse(s.as_str())
}

/// DescribeJob's `job` (and the failed executions) as a [`JobReport`].
pub fn job_report(job: &aws::Job, failures: Vec<ExecutionFailure>) -> Result<JobReport, ToolError> {
    let status = match job.status() {
        Some(aws::JobStatus::InProgress) => JobState::InProgress,
        Some(aws::JobStatus::Canceled) => JobState::Canceled,
        Some(aws::JobStatus::Completed) => JobState::Completed,
        Some(aws::JobStatus::Scheduled) => JobState::Scheduled,
        Some(aws::JobStatus::DeletionInProgress) => JobState::DeletionInProgress,
        other => {
            return Err(ToolError::Backend(format!(
                "DescribeJob returned an unknown job status {other:?}"
            )));
        }
    };
    let n = |v: Option<i32>| u64::try_from(v.unwrap_or(0)).unwrap_or(0);
    let counts = job
        .job_process_details()
        .map(|p| JobCounts {
            total: 0,
            succeeded: n(p.number_of_succeeded_things()),
            failed: n(p.number_of_failed_things()),
            rejected: n(p.number_of_rejected_things()),
            timed_out: n(p.number_of_timed_out_things()),
            canceled: n(p.number_of_canceled_things()),
            removed: n(p.number_of_removed_things()),
            queued: n(p.number_of_queued_things()),
            in_progress: n(p.number_of_in_progress_things()),
        })
        .unwrap_or_default();
    // `targets` may be groups: the things are the ones counted.
    let counts = JobCounts {
        total: counts.done() + counts.queued + counts.in_progress,
        ..counts
    };
    let reason_code = job.reason_code().map(str::to_owned);
    Ok(JobReport {
        job_id: job.job_id().unwrap_or_default().to_owned(),
        status,
        // AWS does not say which cancels were automatic; its abort sets a
        // reason code and leaves `force_canceled` false (assumed).
        aborted: status == JobState::Canceled
            && reason_code.is_some()
            && job.force_canceled() != Some(true),
        reason_code,
        comment: job.comment().map(str::to_owned),
        counts,
        failures,
        max_in_progress_seen: None,
    })
}

fn sdk_error<E, R>(operation: &str, e: SdkError<E, R>) -> ToolError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or_default().to_owned();
    let message = e.message().unwrap_or_default().to_owned();
    match code.as_str() {
        "ResourceNotFoundException" => ToolError::NotFound(format!("{operation}: {message}")),
        "InvalidRequestException"
        | "ResourceAlreadyExistsException"
        | "LimitExceededException"
        | "InvalidStateTransitionException"
        | "ConflictException" => ToolError::Refused(format!("{operation}: {code}: {message}")),
        _ => ToolError::Backend(format!("{operation}: {}", DisplayErrorContext(&e))),
    }
}

impl AwsFleet {
    /// Tools over `client`.
    pub fn new(client: aws_sdk_iot::Client, config: AwsFleetConfig) -> Self {
        AwsFleet {
            client,
            data: None,
            config,
        }
    }

    /// Tools over both planes from the environment's credentials (the
    /// default chain: `AWS_ACCESS_KEY_ID`, profiles, ...) in
    /// `config.region`, with an HTTPS client on rustls and ring. With
    /// `endpoint`, both planes are called there (`twinrig serve cloud
    /// --http`: one port for both); without it, AWS's (or the environment's
    /// `AWS_ENDPOINT_URL_IOT` / `AWS_ENDPOINT_URL_IOT_DATA_PLANE`).
    pub async fn connect(config: AwsFleetConfig, endpoint: Option<&str>) -> Self {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let https = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()))
            .http_client(https);
        if let Some(url) = endpoint {
            loader = loader.endpoint_url(url);
        }
        let shared = loader.load().await;
        AwsFleet {
            client: aws_sdk_iot::Client::new(&shared),
            data: Some(aws_sdk_iotdataplane::Client::new(&shared)),
            config,
        }
    }

    /// The version a device reports in its classic shadow
    /// (`state.reported.firmware`), if any.
    async fn reported_firmware(
        data: &aws_sdk_iotdataplane::Client,
        thing: &str,
    ) -> Result<Option<String>, ToolError> {
        let shadow = match data.get_thing_shadow().thing_name(thing).send().await {
            Ok(s) => s,
            Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(sdk_error("GetThingShadow", e)),
        };
        let document: Value = shadow
            .payload()
            .map(|p| serde_json::from_slice(p.as_ref()))
            .transpose()
            .map_err(|e| {
                ToolError::Backend(format!("GetThingShadow: the shadow is not JSON: {e}"))
            })?
            .unwrap_or(Value::Null);
        Ok(document
            .pointer("/state/reported/firmware")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// A client from the environment (credential chain, `AWS_ENDPOINT_URL_IOT`)
    /// in `config.region`: [`AwsFleet::connect`] without an endpoint.
    pub async fn from_env(config: AwsFleetConfig) -> Self {
        AwsFleet::connect(config, None).await
    }

    async fn things_in_group(&self, group: &str) -> Result<Vec<String>, ToolError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_things_in_thing_group()
                .thing_group_name(group)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| sdk_error("ListThingsInThingGroup", e))?;
            out.extend(page.things().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn things_of_type(&self, thing_type: &str) -> Result<Vec<String>, ToolError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_things()
                .thing_type_name(thing_type)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| sdk_error("ListThings", e))?;
            out.extend(
                page.things()
                    .iter()
                    .filter_map(|t| t.thing_name().map(str::to_owned)),
            );
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn type_names(&self) -> Result<Vec<String>, ToolError> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            token = match self.config.device_types {
                DeviceTypeSource::ThingGroups => {
                    let page = self
                        .client
                        .list_thing_groups()
                        .set_next_token(token)
                        .send()
                        .await
                        .map_err(|e| sdk_error("ListThingGroups", e))?;
                    names.extend(
                        page.thing_groups()
                            .iter()
                            .filter_map(|g| g.group_name().map(str::to_owned)),
                    );
                    page.next_token().map(str::to_owned)
                }
                DeviceTypeSource::ThingTypes => {
                    let page = self
                        .client
                        .list_thing_types()
                        .set_next_token(token)
                        .send()
                        .await
                        .map_err(|e| sdk_error("ListThingTypes", e))?;
                    names.extend(
                        page.thing_types()
                            .iter()
                            .filter_map(|t| t.thing_type_name().map(str::to_owned)),
                    );
                    page.next_token().map(str::to_owned)
                }
            };
            if token.is_none() {
                names.sort();
                return Ok(names);
            }
        }
    }

    async fn devices_of(&self, device_type: &str) -> Result<Vec<String>, ToolError> {
        match self.config.device_types {
            DeviceTypeSource::ThingGroups => self.things_in_group(device_type).await,
            DeviceTypeSource::ThingTypes => self.things_of_type(device_type).await,
        }
    }

    async fn failures(&self, job_id: &str) -> Result<Vec<ExecutionFailure>, ToolError> {
        let mut out = Vec::new();
        for status in [
            aws::JobExecutionStatus::Failed,
            aws::JobExecutionStatus::Rejected,
            aws::JobExecutionStatus::TimedOut,
        ] {
            let mut token = None;
            loop {
                let page = self
                    .client
                    .list_job_executions_for_job()
                    .job_id(job_id)
                    .status(status.clone())
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| sdk_error("ListJobExecutionsForJob", e))?;
                for e in page.execution_summaries() {
                    let thing = thing_from_arn(e.thing_arn().unwrap_or_default()).to_owned();
                    let execution = self
                        .client
                        .describe_job_execution()
                        .job_id(job_id)
                        .thing_name(&thing)
                        .send()
                        .await
                        .map_err(|e| sdk_error("DescribeJobExecution", e))?;
                    let reason = execution
                        .execution()
                        .and_then(|x| x.status_details())
                        .and_then(|d| d.details_map())
                        .and_then(|m| m.get("reason").cloned());
                    if let Some(status) = execution_status(&status) {
                        out.push(ExecutionFailure {
                            thing,
                            status,
                            reason,
                        });
                    }
                }
                token = page.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        out.sort_by(|a, b| a.thing.cmp(&b.thing));
        Ok(out)
    }
}

impl FleetBackend for AwsFleet {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    async fn list_device_types(&self) -> Result<Vec<DeviceTypeInfo>, ToolError> {
        let mut out = Vec::new();
        for name in self.type_names().await? {
            let mut devices = self.devices_of(&name).await?;
            devices.sort();
            out.push(DeviceTypeInfo {
                name,
                devices,
                ota_enabled: None,
                recommended: None,
            });
        }
        Ok(out)
    }

    async fn list_versions(&self, device_type: &str) -> Result<Vec<VersionInfo>, ToolError> {
        if self.config.firmware.is_empty() {
            return Err(ToolError::Unsupported {
                tool: "list_versions",
                backend: BACKEND,
                why: "firmware versions live in S3, not in AWS IoT; give the backend a firmware manifest".into(),
            });
        }
        let mut versions = self
            .config
            .firmware
            .get(device_type)
            .cloned()
            .ok_or_else(|| {
                ToolError::NotFound(format!("no firmware for {device_type} in the manifest"))
            })?;
        versions.sort_by_key(|v| semver(&v.version));
        Ok(versions)
    }

    async fn fleet_status(&self, target: &Target) -> Result<FleetStatus, ToolError> {
        let Some(data) = &self.data else {
            return Err(ToolError::Unsupported {
                tool: "fleet_status",
                backend: BACKEND,
                why: "versions are reported in device shadows: give the backend an iot-data client (AwsFleet::connect)".into(),
            });
        };
        let mut status = FleetStatus::default();
        for t in self.list_device_types().await? {
            for d in &t.devices {
                let wanted = match target {
                    Target::Fleet => true,
                    Target::DeviceType(name) => *name == t.name,
                    Target::Device(id) => id == d,
                };
                if !wanted {
                    continue;
                }
                let version = Self::reported_firmware(data, d)
                    .await?
                    .unwrap_or_else(|| UNKNOWN_VERSION.to_owned());
                *status
                    .by_type
                    .entry(t.name.clone())
                    .or_default()
                    .entry(version)
                    .or_default() += 1;
            }
        }
        if let Target::Device(id) = target
            && status.by_type.is_empty()
        {
            return Err(ToolError::NotFound(format!(
                "device {id} is in no device type"
            )));
        }
        Ok(status)
    }

    async fn create_ota_job(&self, spec: &OtaJobSpec) -> Result<JobCreated, ToolError> {
        // Refuse what AWS cannot express before any call is made.
        aws_job_config(&spec.rollout)?;
        let types = self.list_device_types().await?;
        let device_type = device_type_of(&types, &spec.target)?;
        let version = resolve_version(&self.config, &device_type, &spec.version)?;
        let things: Vec<String> = types
            .iter()
            .find(|t| t.name == device_type)
            .map(|t| t.devices.clone())
            .unwrap_or_default();
        let targets = job_targets(&self.config, &spec.target, &device_type, &things)?;
        let document = ota_document(&self.config, &device_type, &version);
        let input = create_job_input(&self.config, spec, targets, &document)?;
        self.client
            .create_job()
            .set_job_id(input.job_id)
            .set_targets(input.targets)
            .set_document(input.document)
            .set_description(input.description)
            .set_target_selection(input.target_selection)
            .set_presigned_url_config(input.presigned_url_config)
            .set_job_executions_rollout_config(input.job_executions_rollout_config)
            .set_abort_config(input.abort_config)
            .set_timeout_config(input.timeout_config)
            .set_job_executions_retry_config(input.job_executions_retry_config)
            .send()
            .await
            .map_err(|e| sdk_error("CreateJob", e))?;
        let targets = match &spec.target {
            Target::Device(d) => vec![d.clone()],
            _ => things,
        };
        Ok(JobCreated {
            job_id: spec.job_id.clone(),
            device_type,
            version: version.version,
            targets,
        })
    }

    async fn job_status(&self, job_id: &str) -> Result<JobReport, ToolError> {
        let described = self
            .client
            .describe_job()
            .job_id(job_id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeJob", e))?;
        let job = described
            .job()
            .ok_or_else(|| ToolError::Backend("DescribeJob returned no job".into()))?;
        let failures = self.failures(job_id).await?;
        job_report(job, failures)
    }

    async fn cancel_job(
        &self,
        job_id: Option<&str>,
        force: bool,
        comment: Option<&str>,
    ) -> Result<String, ToolError> {
        let job = match job_id {
            Some(j) => j.to_owned(),
            None => {
                let listed = self
                    .client
                    .list_jobs()
                    .status(aws::JobStatus::InProgress)
                    .send()
                    .await
                    .map_err(|e| sdk_error("ListJobs", e))?;
                listed
                    .jobs()
                    .iter()
                    .filter(|j| j.job_id().is_some())
                    .max_by_key(|j| j.created_at().map(|t| (t.secs(), t.subsec_nanos())))
                    .and_then(|j| j.job_id().map(str::to_owned))
                    .ok_or_else(|| ToolError::NotFound("no job is in progress".into()))?
            }
        };
        self.client
            .cancel_job()
            .job_id(&job)
            .force(force)
            .set_comment(comment.map(str::to_owned))
            .send()
            .await
            .map_err(|e| sdk_error("CancelJob", e))?;
        Ok(job)
    }

    async fn set_ota(&self, _: &str, _: bool) -> Result<GateChange, ToolError> {
        Err(ToolError::Unsupported {
            tool: "set_ota",
            backend: BACKEND,
            why: "the OTA gate is the fleet's own configuration, not an AWS IoT setting".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinrig_cloud::jobs::{
        AbortConfig, AbortCriteria, ExponentialRate, RateIncreaseCriteria, RetryConfig,
        RetryCriteria, RolloutConfig, TimeoutConfig,
    };

    fn config() -> AwsFleetConfig {
        let v = |version: &str, sha: &str| VersionInfo {
            version: version.into(),
            sha256: sha.into(),
            size: 1_048_576,
            published_at: 0,
        };
        AwsFleetConfig {
            region: "eu-west-1".into(),
            account_id: "111122223333".into(),
            device_types: DeviceTypeSource::ThingGroups,
            firmware_bucket: "fw-bucket".into(),
            presign_role_arn: "arn:aws:iam::111122223333:role/ota-presign".into(),
            url_expiry_s: 3600,
            firmware: BTreeMap::from([(
                "pet_feeder".to_owned(),
                vec![v("1.0.0", "aa"), v("10.0.0", "cc"), v("2.0.0", "bb")],
            )]),
        }
    }

    fn types() -> Vec<DeviceTypeInfo> {
        let t = |name: &str, devices: &[&str]| DeviceTypeInfo {
            name: name.into(),
            devices: devices.iter().map(|d| (*d).to_owned()).collect(),
            ota_enabled: None,
            recommended: None,
        };
        vec![
            t("pet_feeder", &["feeder-1", "feeder-2"]),
            t("sphero_rvr", &["XIAO-RVR-07"]),
        ]
    }

    fn spec(target: Target, version: VersionSpec, rollout: RolloutSettings) -> OtaJobSpec {
        OtaJobSpec {
            job_id: "ota-1".into(),
            target,
            version,
            rollout,
            description: Some("update the pet feeders".into()),
        }
    }

    #[test]
    fn targets_are_thing_and_group_arns() {
        let c = config();
        assert_eq!(
            job_targets(
                &c,
                &Target::DeviceType("pet_feeder".into()),
                "pet_feeder",
                &[]
            )
            .unwrap(),
            ["arn:aws:iot:eu-west-1:111122223333:thinggroup/pet_feeder"]
        );
        assert_eq!(
            job_targets(&c, &Target::Device("feeder-1".into()), "pet_feeder", &[]).unwrap(),
            ["arn:aws:iot:eu-west-1:111122223333:thing/feeder-1"]
        );
        assert!(matches!(
            job_targets(&c, &Target::Fleet, "pet_feeder", &[]),
            Err(ToolError::Invalid(_))
        ));
        let typed = AwsFleetConfig {
            device_types: DeviceTypeSource::ThingTypes,
            ..config()
        };
        let things = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            job_targets(&typed, &Target::DeviceType("t".into()), "t", &things).unwrap(),
            [
                "arn:aws:iot:eu-west-1:111122223333:thing/a",
                "arn:aws:iot:eu-west-1:111122223333:thing/b"
            ]
        );
        let many: Vec<String> = (0..101).map(|i| format!("d{i}")).collect();
        let e = job_targets(&typed, &Target::DeviceType("t".into()), "t", &many).unwrap_err();
        assert!(e.to_string().contains("at most 100"), "{e}");
    }

    #[test]
    fn a_target_resolves_to_one_device_type() {
        let t = types();
        assert_eq!(
            device_type_of(&t, &Target::Device("XIAO-RVR-07".into())).unwrap(),
            "sphero_rvr"
        );
        assert_eq!(
            device_type_of(&t, &Target::DeviceType("pet_feeder".into())).unwrap(),
            "pet_feeder"
        );
        assert!(matches!(
            device_type_of(&t, &Target::Device("nobody".into())),
            Err(ToolError::NotFound(_))
        ));
        assert!(matches!(
            device_type_of(&t, &Target::DeviceType("toaster".into())),
            Err(ToolError::NotFound(_))
        ));
    }

    #[test]
    fn versions_resolve_from_the_manifest_by_semver() {
        let c = config();
        let latest = resolve_version(&c, "pet_feeder", &VersionSpec::Latest).unwrap();
        assert_eq!(latest.version, "10.0.0", "semver order, not text order");
        let exact =
            resolve_version(&c, "pet_feeder", &VersionSpec::Exact("v2.0.0".into())).unwrap();
        assert_eq!(exact.sha256, "bb");
        assert!(matches!(
            resolve_version(&c, "pet_feeder", &VersionSpec::Exact("3.0.0".into())),
            Err(ToolError::NotFound(_))
        ));
        assert!(matches!(
            resolve_version(&c, "pet_feeder", &VersionSpec::Previous),
            Err(ToolError::Unsupported { .. })
        ));
        let bare = AwsFleetConfig {
            firmware: BTreeMap::new(),
            ..config()
        };
        let e = resolve_version(&bare, "pet_feeder", &VersionSpec::Latest).unwrap_err();
        assert!(e.to_string().contains("S3"), "{e}");
    }

    #[test]
    fn the_document_carries_the_presigned_url_placeholder() {
        let c = config();
        let v = resolve_version(&c, "pet_feeder", &VersionSpec::Exact("2.0.0".into())).unwrap();
        let doc = ota_document(&c, "pet_feeder", &v);
        assert_eq!(
            doc,
            json!({
                "operation": "ota",
                "deviceType": "pet_feeder",
                "version": "2.0.0",
                "url": "${aws:iot:s3-presigned-url-v2:https://s3.eu-west-1.amazonaws.com/fw-bucket/pet_feeder/2.0.0/firmware.bin}",
                "sha256": "bb",
                "size": 1_048_576,
            })
        );
    }

    #[test]
    fn rollout_abort_timeout_and_retry_map_onto_create_job() {
        let rollout = RolloutSettings {
            job_executions_rollout_config: Some(RolloutConfig {
                maximum_per_minute: Some(10),
                exponential_rate: Some(ExponentialRate {
                    base_rate_per_minute: 5,
                    increment_factor: 2.0,
                    rate_increase_criteria: RateIncreaseCriteria {
                        number_of_notified_things: None,
                        number_of_succeeded_things: Some(20),
                    },
                }),
            }),
            abort_config: Some(AbortConfig {
                criteria_list: vec![AbortCriteria {
                    failure_type: FailureType::All,
                    action: AbortAction::Cancel,
                    threshold_percentage: 5.0,
                    min_number_of_executed_things: 10,
                }],
            }),
            timeout_config: Some(TimeoutConfig {
                in_progress_timeout_in_minutes: Some(15),
                queued_timeout_in_minutes: None,
            }),
            job_executions_retry_config: Some(RetryConfig {
                criteria_list: vec![RetryCriteria {
                    failure_type: FailureType::TimedOut,
                    number_of_retries: 2,
                }],
            }),
            max_in_progress: None,
            abort_after_failures: None,
        };
        let c = config();
        let s = spec(
            Target::DeviceType("pet_feeder".into()),
            VersionSpec::Latest,
            rollout,
        );
        let doc = json!({"operation": "ota"});
        let input = create_job_input(&c, &s, vec!["arn:g".into()], &doc).unwrap();
        assert_eq!(input.job_id(), Some("ota-1"));
        assert_eq!(input.targets(), ["arn:g"]);
        assert_eq!(input.document(), Some(r#"{"operation":"ota"}"#));
        assert_eq!(input.description(), Some("update the pet feeders"));
        assert_eq!(
            input.target_selection(),
            Some(&aws::TargetSelection::Snapshot)
        );
        let p = input.presigned_url_config().unwrap();
        assert_eq!(
            p.role_arn(),
            Some("arn:aws:iam::111122223333:role/ota-presign")
        );
        assert_eq!(p.expires_in_sec(), Some(3600));
        let r = input.job_executions_rollout_config().unwrap();
        assert_eq!(r.maximum_per_minute(), Some(10));
        let e = r.exponential_rate().unwrap();
        assert_eq!(e.base_rate_per_minute(), 5);
        assert_eq!(e.increment_factor(), 2.0);
        assert_eq!(
            e.rate_increase_criteria()
                .unwrap()
                .number_of_succeeded_things(),
            Some(20)
        );
        let a = &input.abort_config().unwrap().criteria_list()[0];
        assert_eq!(a.failure_type(), &aws::JobExecutionFailureType::All);
        assert_eq!(a.action(), &aws::AbortAction::Cancel);
        assert_eq!(a.threshold_percentage(), 5.0);
        assert_eq!(a.min_number_of_executed_things(), 10);
        assert_eq!(
            input
                .timeout_config()
                .unwrap()
                .in_progress_timeout_in_minutes(),
            Some(15)
        );
        let rc = &input.job_executions_retry_config().unwrap().criteria_list()[0];
        assert_eq!(rc.failure_type(), &aws::RetryableFailureType::TimedOut);
        assert_eq!(rc.number_of_retries(), 2);
    }

    #[test]
    fn twinrig_extensions_and_bad_expiry_are_refused_not_dropped() {
        let c = config();
        let doc = json!({});
        for rollout in [
            RolloutSettings {
                max_in_progress: Some(10),
                ..RolloutSettings::default()
            },
            RolloutSettings {
                abort_after_failures: Some(10),
                ..RolloutSettings::default()
            },
            RolloutSettings {
                timeout_config: Some(TimeoutConfig {
                    in_progress_timeout_in_minutes: Some(15),
                    queued_timeout_in_minutes: Some(30),
                }),
                ..RolloutSettings::default()
            },
        ] {
            let s = spec(Target::Fleet, VersionSpec::Latest, rollout);
            let e = create_job_input(&c, &s, vec!["t".into()], &doc).unwrap_err();
            assert!(matches!(e, ToolError::Unsupported { .. }), "{e}");
        }
        let short = AwsFleetConfig {
            url_expiry_s: 30,
            ..config()
        };
        let s = spec(
            Target::Fleet,
            VersionSpec::Latest,
            RolloutSettings::default(),
        );
        assert!(create_job_input(&short, &s, vec!["t".into()], &doc).is_err());
        let plain = create_job_input(&c, &s, vec!["t".into()], &doc).unwrap();
        assert!(plain.abort_config().is_none());
        assert!(plain.job_executions_rollout_config().is_none());
    }

    #[test]
    fn describe_job_maps_onto_the_job_report() {
        let job = aws::Job::builder()
            .job_id("ota-1")
            .status(aws::JobStatus::Canceled)
            .reason_code("ABORTED_BY_CRITERIA")
            .comment("5% failed")
            .force_canceled(false)
            .job_process_details(
                aws::JobProcessDetails::builder()
                    .number_of_succeeded_things(7)
                    .number_of_failed_things(2)
                    .number_of_canceled_things(11)
                    .number_of_in_progress_things(1)
                    .build(),
            )
            .build();
        let failures = vec![ExecutionFailure {
            thing: "feeder-1".into(),
            status: ExecutionStatus::Failed,
            reason: Some("sha256 mismatch".into()),
        }];
        let r = job_report(&job, failures.clone()).unwrap();
        assert_eq!(r.job_id, "ota-1");
        assert_eq!(r.status, JobState::Canceled);
        assert!(r.aborted);
        assert_eq!(r.counts.succeeded, 7);
        assert_eq!(r.counts.failed, 2);
        assert_eq!(r.counts.total, 21);
        assert_eq!(r.failures, failures);
        assert_eq!(r.max_in_progress_seen, None);
        let running = aws::Job::builder()
            .job_id("j")
            .status(aws::JobStatus::InProgress)
            .build();
        let r = job_report(&running, Vec::new()).unwrap();
        assert_eq!(r.status, JobState::InProgress);
        assert!(!r.aborted);
        assert_eq!(r.counts, JobCounts::default());
        assert_eq!(
            execution_status(&aws::JobExecutionStatus::TimedOut),
            Some(ExecutionStatus::TimedOut)
        );
    }

    #[test]
    fn the_tools_it_cannot_serve_say_so() {
        // A client with no network use: these tools fail before any call.
        let conf = aws_sdk_iot::Config::builder()
            .behavior_version(aws_sdk_iot::config::BehaviorVersion::latest())
            .region(aws_sdk_iot::config::Region::new("eu-west-1"))
            .build();
        let fleet = AwsFleet::new(
            aws_sdk_iot::Client::from_conf(conf),
            AwsFleetConfig {
                firmware: BTreeMap::new(),
                ..config()
            },
        );
        use embassy_futures::block_on as block;
        for e in [
            block(fleet.fleet_status(&Target::Fleet)).unwrap_err(),
            block(fleet.list_versions("pet_feeder")).unwrap_err(),
            block(fleet.set_ota("pet_feeder", false)).unwrap_err(),
            block(fleet.create_ota_job(&spec(
                Target::Fleet,
                VersionSpec::Latest,
                RolloutSettings {
                    max_in_progress: Some(10),
                    ..RolloutSettings::default()
                },
            )))
            .unwrap_err(),
        ] {
            assert!(matches!(e, ToolError::Unsupported { .. }), "{e}");
            assert!(e.to_string().contains("not available on AWS IoT"), "{e}");
        }
    }
}
