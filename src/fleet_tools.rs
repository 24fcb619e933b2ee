//! Fleet tools: the typed operations an operator (or an agent) performs on an
//! OTA fleet — list device types, list a type's versions, fleet status from
//! shadows, create an OTA job, roll back, job status, cancel a job, switch the
//! OTA gate of a type.
//!
//! They sit behind [`FleetBackend`] so the same prompt handling runs against
//! the local cloud twin of a run (`crate::fleet::LocalFleet`) and, with the `aws` feature,
//! against AWS IoT (`crate::fleet_tools_aws`). [`run_prompt`] turns an
//! operator's sentence into tool calls through an [`IntentModel`] and records
//! every call it made ([`ToolCallRecord`]), so a caller can show what was done.
//! A prompt the model cannot map gets an answer and no call that acts.
//!
//! Backends run on the simulator's single-threaded executor, so the trait's
//! futures carry no `Send` bound.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Value, json};
use twinrig_cloud::jobs::{ExecutionStatus, JobStatus, RolloutSettings};

pub use crate::fleet_prompt::{FleetNames, IntentModel, Target, ToolCall, Unclear, VersionSpec};

/// The version a fleet status shows for a device whose shadow has none yet.
pub const UNKNOWN_VERSION: &str = "unknown";

/// Why a tool call did nothing. The message is meant for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// A device, type, version or job that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The call itself is wrong (e.g. a rollback to "latest").
    #[error("{0}")]
    Invalid(String),
    /// The service refused it (AWS's exception name and message).
    #[error("{0}")]
    Refused(String),
    /// This backend cannot serve the tool at all.
    #[error("{tool} is not available on {backend}: {why}")]
    Unsupported {
        /// The tool.
        tool: &'static str,
        /// The backend.
        backend: &'static str,
        /// Why, and where the data lives instead.
        why: String,
    },
    /// Transport or service failure.
    #[error("{0}")]
    Backend(String),
}

/// One device type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceTypeInfo {
    /// Its name, e.g. `pet_feeder`.
    pub name: String,
    /// Its devices (thing names).
    pub devices: Vec<String>,
    /// Whether OTA updates are enabled for it (None: the backend cannot tell).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ota_enabled: Option<bool>,
    /// Its recommended version, if one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommended: Option<String>,
}

/// One published firmware version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// Lowercase hex SHA-256 of the image.
    pub sha256: String,
    /// Image size in bytes.
    pub size: u64,
    /// When it was published, unix seconds.
    pub published_at: u64,
}

/// Versions reported in the devices' shadows: type -> version -> devices.
/// A device that has not reported counts under [`UNKNOWN_VERSION`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct FleetStatus {
    /// Type -> version -> number of devices.
    pub by_type: BTreeMap<String, BTreeMap<String, u64>>,
}

impl FleetStatus {
    /// Devices of `device_type` reporting `version`.
    pub fn count(&self, device_type: &str, version: &str) -> u64 {
        self.by_type
            .get(device_type)
            .and_then(|v| v.get(version))
            .copied()
            .unwrap_or(0)
    }

    /// Devices counted.
    pub fn devices(&self) -> u64 {
        self.by_type.values().flat_map(|v| v.values()).sum()
    }
}

impl fmt::Display for FleetStatus {
    /// `pet_feeder: 1.0.0 x3, 2.0.0 x17; smart_plug: 1.0.0 x5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self
            .by_type
            .iter()
            .map(|(t, vs)| {
                let list: Vec<String> = vs.iter().map(|(v, n)| format!("{v} x{n}")).collect();
                format!("{t}: {}", list.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ");
        f.write_str(&text)
    }
}

/// What `create_ota_job` and `rollback` take.
#[derive(Debug, Clone, PartialEq)]
pub struct OtaJobSpec {
    /// The job id (`[a-zA-Z0-9_-]{1,64}`).
    pub job_id: String,
    /// What to update.
    pub target: Target,
    /// To which version.
    pub version: VersionSpec,
    /// How it rolls out.
    pub rollout: RolloutSettings,
    /// The job's description (e.g. the prompt).
    pub description: Option<String>,
}

/// A job that was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobCreated {
    /// Its id.
    pub job_id: String,
    /// The device type it updates.
    pub device_type: String,
    /// The version it installs (resolved: never "latest").
    pub version: String,
    /// The things it targets.
    pub targets: Vec<String>,
}

/// A job's status (AWS `JobStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Rolling out.
    InProgress,
    /// Canceled, or aborted by its criteria.
    Canceled,
    /// Every execution terminal.
    Completed,
    /// Waiting for its start time (AWS only).
    Scheduled,
    /// Being deleted (AWS only).
    DeletionInProgress,
}

impl From<JobStatus> for JobState {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::InProgress => JobState::InProgress,
            JobStatus::Canceled => JobState::Canceled,
            JobStatus::Completed => JobState::Completed,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobState::InProgress => "IN_PROGRESS",
            JobState::Canceled => "CANCELED",
            JobState::Completed => "COMPLETED",
            JobState::Scheduled => "SCHEDULED",
            JobState::DeletionInProgress => "DELETION_IN_PROGRESS",
        })
    }
}

/// Things per execution status (AWS `jobProcessDetails`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct JobCounts {
    /// Every target.
    pub total: u64,
    /// SUCCEEDED.
    pub succeeded: u64,
    /// FAILED.
    pub failed: u64,
    /// REJECTED.
    pub rejected: u64,
    /// TIMED_OUT.
    pub timed_out: u64,
    /// CANCELED.
    pub canceled: u64,
    /// REMOVED.
    pub removed: u64,
    /// QUEUED.
    pub queued: u64,
    /// IN_PROGRESS.
    pub in_progress: u64,
}

impl JobCounts {
    /// Executions in a final state.
    pub fn done(&self) -> u64 {
        self.succeeded + self.failed + self.rejected + self.timed_out + self.canceled + self.removed
    }

    /// FAILED, REJECTED or TIMED_OUT.
    pub fn unsuccessful(&self) -> u64 {
        self.failed + self.rejected + self.timed_out
    }
}

/// One execution that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionFailure {
    /// Thing name.
    pub thing: String,
    /// FAILED, REJECTED or TIMED_OUT.
    pub status: ExecutionStatus,
    /// `statusDetails.reason` as the device reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `job_status`: where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobReport {
    /// The job id.
    pub job_id: String,
    /// Its status.
    pub status: JobState,
    /// Canceled by its abort criteria (not by an operator).
    pub aborted: bool,
    /// `reasonCode`, when canceled or aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// `comment`, when canceled or aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Things per status.
    pub counts: JobCounts,
    /// Executions that FAILED, were REJECTED or TIMED_OUT, in thing order.
    pub failures: Vec<ExecutionFailure>,
    /// The most executions IN_PROGRESS at once (the twin measures it; AWS does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_progress_seen: Option<u64>,
}

/// `set_ota`: the gate of a type changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateChange {
    /// The type.
    pub device_type: String,
    /// On or off.
    pub enabled: bool,
    /// When it takes effect.
    pub note: String,
}

impl fmt::Display for GateChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.enabled { "enabled" } else { "disabled" };
        write!(f, "OTA {state} for {} ({})", self.device_type, self.note)
    }
}

/// The fleet tools. Every backend serves the same calls with the same
/// meaning; one that cannot serve a call returns [`ToolError::Unsupported`].
#[allow(async_fn_in_trait)] // single-threaded executor: no Send bound wanted (see module docs)
pub trait FleetBackend {
    /// A short name for messages (`local twin`, `AWS IoT`).
    fn backend_name(&self) -> &'static str;

    /// Device types with their devices, sorted by name.
    async fn list_device_types(&self) -> Result<Vec<DeviceTypeInfo>, ToolError>;

    /// Published versions of a type, oldest to newest.
    async fn list_versions(&self, device_type: &str) -> Result<Vec<VersionInfo>, ToolError>;

    /// Versions the target's devices report in their shadows.
    async fn fleet_status(&self, target: &Target) -> Result<FleetStatus, ToolError>;

    /// Creates an OTA job: one device type, a version (or `latest` /
    /// `previous`, resolved by the backend), rollout settings.
    async fn create_ota_job(&self, spec: &OtaJobSpec) -> Result<JobCreated, ToolError>;

    /// Rolls a target back: an OTA job to an older version. AWS has no
    /// rollback primitive; a rollback is a job like any other.
    async fn rollback(&self, spec: &OtaJobSpec) -> Result<JobCreated, ToolError> {
        if spec.version == VersionSpec::Latest {
            return Err(ToolError::Invalid(
                "a rollback goes to an older version: name it, or say previous".into(),
            ));
        }
        self.create_ota_job(spec).await
    }

    /// Where a job stands.
    async fn job_status(&self, job_id: &str) -> Result<JobReport, ToolError>;

    /// Cancels a job (None: the newest job still in progress); `force` also
    /// cancels executions already IN_PROGRESS. Returns the job id.
    async fn cancel_job(
        &self,
        job_id: Option<&str>,
        force: bool,
        comment: Option<&str>,
    ) -> Result<String, ToolError>;

    /// Turns OTA updates on or off for a device type.
    async fn set_ota(&self, device_type: &str, enabled: bool) -> Result<GateChange, ToolError>;
}

// ---------------------------------------------------------------------------
// The local cloud twin

/// `arn:aws:iot:region:account:thing/NAME` -> `NAME` (anything else as is).
pub fn thing_from_arn(arn: &str) -> &str {
    arn.rsplit_once(":thing/").map_or(arn, |(_, name)| name)
}

// ---------------------------------------------------------------------------
// Recording

/// One tool call a prompt made, and what it returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallRecord {
    /// The tool (`create_ota_job`).
    pub tool: &'static str,
    /// Its arguments.
    pub args: Value,
    /// It succeeded.
    pub ok: bool,
    /// What it returned, or `{"error": message}`.
    pub result: Value,
    /// One line for people: `create_ota_job(type pet_feeder, latest) -> job ota-1: ...`.
    pub summary: String,
}

/// A one-line account of a tool's result.
trait Summary {
    fn summary(&self) -> String;
}

impl Summary for Vec<DeviceTypeInfo> {
    fn summary(&self) -> String {
        let list: Vec<String> = self
            .iter()
            .map(|t| format!("{} ({})", t.name, t.devices.len()))
            .collect();
        format!("{} types: {}", self.len(), list.join(", "))
    }
}

impl Summary for Vec<VersionInfo> {
    fn summary(&self) -> String {
        let list: Vec<&str> = self.iter().map(|v| v.version.as_str()).collect();
        list.join(", ")
    }
}

impl Summary for FleetStatus {
    fn summary(&self) -> String {
        self.to_string()
    }
}

impl Summary for JobCreated {
    fn summary(&self) -> String {
        format!(
            "job {}: {} {} to {} device{}",
            self.job_id,
            self.device_type,
            self.version,
            self.targets.len(),
            if self.targets.len() == 1 { "" } else { "s" }
        )
    }
}

impl Summary for JobReport {
    fn summary(&self) -> String {
        format!(
            "{} {}: {} of {} done",
            self.job_id,
            self.status,
            self.counts.done(),
            self.counts.total
        )
    }
}

impl Summary for String {
    fn summary(&self) -> String {
        format!("canceled {self}")
    }
}

impl Summary for GateChange {
    fn summary(&self) -> String {
        self.to_string()
    }
}

/// A backend that records every call made through it.
pub struct Recording<'b, B> {
    inner: &'b B,
    calls: RefCell<Vec<ToolCallRecord>>,
}

impl<'b, B: FleetBackend> Recording<'b, B> {
    /// Records calls to `inner`.
    pub fn new(inner: &'b B) -> Self {
        Recording {
            inner,
            calls: RefCell::new(Vec::new()),
        }
    }

    /// The calls so far, in order.
    pub fn into_calls(self) -> Vec<ToolCallRecord> {
        self.calls.into_inner()
    }

    fn record<T: Serialize + Summary>(
        &self,
        tool: &'static str,
        args: Value,
        args_text: String,
        result: &Result<T, ToolError>,
    ) {
        let (ok, value, outcome) = match result {
            Ok(v) => (
                true,
                serde_json::to_value(v).unwrap_or(Value::Null),
                v.summary(),
            ),
            Err(e) => (
                false,
                json!({"error": e.to_string()}),
                format!("error: {e}"),
            ),
        };
        self.calls.borrow_mut().push(ToolCallRecord {
            tool,
            args,
            ok,
            result: value,
            summary: format!("{tool}({args_text}) -> {outcome}"),
        });
    }
}

/// A target as JSON: `{"device": id}`, `{"type": t}` or `"fleet"`.
pub fn target_json(t: &Target) -> Value {
    match t {
        Target::Device(d) => json!({"device": d}),
        Target::DeviceType(t) => json!({"type": t}),
        Target::Fleet => json!("fleet"),
    }
}

fn target_text(t: &Target) -> String {
    match t {
        Target::Device(d) => format!("device {d}"),
        Target::DeviceType(t) => format!("type {t}"),
        Target::Fleet => "fleet".into(),
    }
}

fn version_text(v: &VersionSpec) -> String {
    match v {
        VersionSpec::Latest => "latest".into(),
        VersionSpec::Previous => "previous".into(),
        VersionSpec::Exact(v) => v.clone(),
    }
}

fn spec_args(spec: &OtaJobSpec) -> (Value, String) {
    let mut args = json!({
        "job_id": spec.job_id,
        "target": target_json(&spec.target),
        "version": version_text(&spec.version),
    });
    let mut text = format!(
        "{}, {}, job_id {}",
        target_text(&spec.target),
        version_text(&spec.version),
        spec.job_id
    );
    if !spec.rollout.is_empty() {
        text.push_str(&format!(", rollout: {}", spec.rollout.summary()));
        args["rollout"] = serde_json::to_value(&spec.rollout).unwrap_or(Value::Null);
    }
    (args, text)
}

impl<B: FleetBackend> FleetBackend for Recording<'_, B> {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn list_device_types(&self) -> Result<Vec<DeviceTypeInfo>, ToolError> {
        let r = self.inner.list_device_types().await;
        self.record("list_device_types", json!({}), String::new(), &r);
        r
    }

    async fn list_versions(&self, device_type: &str) -> Result<Vec<VersionInfo>, ToolError> {
        let r = self.inner.list_versions(device_type).await;
        let args = json!({"device_type": device_type});
        self.record("list_versions", args, device_type.to_owned(), &r);
        r
    }

    async fn fleet_status(&self, target: &Target) -> Result<FleetStatus, ToolError> {
        let r = self.inner.fleet_status(target).await;
        let args = json!({"target": target_json(target)});
        self.record("fleet_status", args, target_text(target), &r);
        r
    }

    async fn create_ota_job(&self, spec: &OtaJobSpec) -> Result<JobCreated, ToolError> {
        let r = self.inner.create_ota_job(spec).await;
        let (args, text) = spec_args(spec);
        self.record("create_ota_job", args, text, &r);
        r
    }

    async fn rollback(&self, spec: &OtaJobSpec) -> Result<JobCreated, ToolError> {
        // The inner backend's own rollback (it may check more than the default).
        let r = self.inner.rollback(spec).await;
        let (args, text) = spec_args(spec);
        self.record("rollback", args, text, &r);
        r
    }

    async fn job_status(&self, job_id: &str) -> Result<JobReport, ToolError> {
        let r = self.inner.job_status(job_id).await;
        self.record(
            "job_status",
            json!({"job_id": job_id}),
            job_id.to_owned(),
            &r,
        );
        r
    }

    async fn cancel_job(
        &self,
        job_id: Option<&str>,
        force: bool,
        comment: Option<&str>,
    ) -> Result<String, ToolError> {
        let r = self.inner.cancel_job(job_id, force, comment).await;
        let args = json!({"job_id": job_id, "force": force});
        let text = format!("{}, force {force}", job_id.unwrap_or("the job in progress"));
        self.record("cancel_job", args, text, &r);
        r
    }

    async fn set_ota(&self, device_type: &str, enabled: bool) -> Result<GateChange, ToolError> {
        let r = self.inner.set_ota(device_type, enabled).await;
        let args = json!({"device_type": device_type, "enabled": enabled});
        self.record("set_ota", args, format!("{device_type}, {enabled}"), &r);
        r
    }
}

// ---------------------------------------------------------------------------
// Prompts

/// What a prompt led to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptResult {
    /// A job was created (by an upgrade or a rollback).
    Created(JobCreated),
    /// The fleet status.
    Status(FleetStatus),
    /// A job was canceled (its id).
    Canceled(String),
    /// The OTA gate of a type was set.
    Gate(GateChange),
    /// The prompt maps to no single tool call: the answer says why. Nothing acted.
    Unclear(String),
    /// A tool refused (no such version, no device of the type, ...).
    Failed(String),
}

/// What an operator session did with its prompt: the part every session
/// report shares (simulated fleet or live endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct PromptSession {
    /// The tool call the intent model chose (None: unclear).
    pub intent: Option<String>,
    /// The answer to an unclear prompt, or why a tool refused.
    pub answer: Option<String>,
    /// Every tool call made, in order: the prompt's, then the job's and
    /// fleet's status.
    pub tool_calls: Vec<ToolCallRecord>,
    /// The job the prompt created.
    pub job_created: Option<JobCreated>,
    /// The job's last status.
    pub job: Option<JobReport>,
}

/// A prompt, the tool calls it made, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptReport {
    /// The prompt.
    pub prompt: String,
    /// The tool call the intent model chose, as text (None: unclear).
    pub intent: Option<String>,
    /// Every tool call made, in order.
    pub calls: Vec<ToolCallRecord>,
    /// The outcome.
    pub result: PromptResult,
}

/// Runs an operator prompt: lists the device types (so the model can resolve
/// names), asks `model` for one tool call, and makes it. A job the prompt
/// creates is called `job_id()` (called only when a job is to be created)
/// and rolls out with `rollout`.
pub async fn run_prompt<B: FleetBackend>(
    backend: &B,
    model: &dyn IntentModel,
    text: &str,
    job_id: &mut dyn FnMut() -> String,
    rollout: &RolloutSettings,
) -> PromptReport {
    let tools = Recording::new(backend);
    let (intent, result) = prompt_calls(&tools, model, text, job_id, rollout).await;
    PromptReport {
        prompt: text.to_owned(),
        intent,
        calls: tools.into_calls(),
        result,
    }
}

async fn prompt_calls<B: FleetBackend>(
    tools: &Recording<'_, B>,
    model: &dyn IntentModel,
    text: &str,
    job_id: &mut dyn FnMut() -> String,
    rollout: &RolloutSettings,
) -> (Option<String>, PromptResult) {
    let types = match tools.list_device_types().await {
        Ok(t) => t,
        Err(e) => return (None, PromptResult::Failed(e.to_string())),
    };
    let names = FleetNames {
        device_types: types.iter().map(|t| t.name.clone()).collect(),
        devices: types.iter().flat_map(|t| t.devices.clone()).collect(),
    };
    let call = match model.intent(text, &names) {
        Ok(call) => call,
        Err(Unclear(answer)) => return (None, PromptResult::Unclear(answer)),
    };
    let intent = Some(format!("{call:?}"));
    let failed = |e: ToolError| PromptResult::Failed(e.to_string());
    let result = match call {
        ToolCall::Upgrade { target, version } => {
            let spec = job_spec(job_id(), target, version, rollout, text);
            tools
                .create_ota_job(&spec)
                .await
                .map_or_else(failed, PromptResult::Created)
        }
        ToolCall::Rollback { target, version } => {
            let spec = job_spec(job_id(), target, version, rollout, text);
            tools
                .rollback(&spec)
                .await
                .map_or_else(failed, PromptResult::Created)
        }
        ToolCall::Status { target } => tools
            .fleet_status(&target)
            .await
            .map_or_else(failed, PromptResult::Status),
        ToolCall::Cancel { job } => tools
            .cancel_job(job.as_deref(), false, Some(text))
            .await
            .map_or_else(failed, PromptResult::Canceled),
        ToolCall::SetOta {
            device_type,
            enabled,
        } => tools
            .set_ota(&device_type, enabled)
            .await
            .map_or_else(failed, PromptResult::Gate),
    };
    (intent, result)
}

fn job_spec(
    job_id: String,
    target: Target,
    version: VersionSpec,
    rollout: &RolloutSettings,
    prompt: &str,
) -> OtaJobSpec {
    OtaJobSpec {
        job_id,
        target,
        version,
        rollout: rollout.clone(),
        description: Some(prompt.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend with fixed answers that records what was asked of it, to
    /// test prompt handling apart from the twin.
    #[derive(Default)]
    struct Fake {
        asked: RefCell<Vec<String>>,
    }

    impl FleetBackend for Fake {
        fn backend_name(&self) -> &'static str {
            "fake"
        }
        async fn list_device_types(&self) -> Result<Vec<DeviceTypeInfo>, ToolError> {
            Ok(vec![
                DeviceTypeInfo {
                    name: "pet_feeder".into(),
                    devices: vec!["feeder-001".into(), "feeder-002".into()],
                    ota_enabled: Some(true),
                    recommended: None,
                },
                DeviceTypeInfo {
                    name: "sphero_rvr".into(),
                    devices: vec!["XIAO-RVR-07".into()],
                    ota_enabled: Some(true),
                    recommended: None,
                },
            ])
        }
        async fn list_versions(&self, _: &str) -> Result<Vec<VersionInfo>, ToolError> {
            Err(ToolError::Unsupported {
                tool: "list_versions",
                backend: "fake",
                why: "none".into(),
            })
        }
        async fn fleet_status(&self, target: &Target) -> Result<FleetStatus, ToolError> {
            self.asked.borrow_mut().push(format!("status {target:?}"));
            let mut s = FleetStatus::default();
            s.by_type
                .entry("pet_feeder".into())
                .or_default()
                .insert("1.0.0".into(), 2);
            Ok(s)
        }
        async fn create_ota_job(&self, spec: &OtaJobSpec) -> Result<JobCreated, ToolError> {
            self.asked.borrow_mut().push(format!(
                "create {} {:?} {:?}",
                spec.job_id, spec.target, spec.version
            ));
            if spec.version == VersionSpec::Exact("9.9.9".into()) {
                return Err(ToolError::NotFound("no firmware pet_feeder 9.9.9".into()));
            }
            Ok(JobCreated {
                job_id: spec.job_id.clone(),
                device_type: "pet_feeder".into(),
                version: "2.0.0".into(),
                targets: vec!["feeder-001".into(), "feeder-002".into()],
            })
        }
        async fn job_status(&self, _: &str) -> Result<JobReport, ToolError> {
            Err(ToolError::NotFound("no job".into()))
        }
        async fn cancel_job(
            &self,
            job_id: Option<&str>,
            force: bool,
            _: Option<&str>,
        ) -> Result<String, ToolError> {
            self.asked
                .borrow_mut()
                .push(format!("cancel {job_id:?} {force}"));
            job_id
                .map(str::to_owned)
                .ok_or_else(|| ToolError::NotFound("no job is in progress".into()))
        }
        async fn set_ota(&self, device_type: &str, enabled: bool) -> Result<GateChange, ToolError> {
            self.asked
                .borrow_mut()
                .push(format!("gate {device_type} {enabled}"));
            Ok(GateChange {
                device_type: device_type.into(),
                enabled,
                note: "now".into(),
            })
        }
    }

    fn ask(fake: &Fake, text: &str) -> PromptReport {
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("job-{n}")
        };
        embassy_futures::block_on(run_prompt(
            fake,
            &crate::fleet_prompt::OfflineIntents,
            text,
            &mut next,
            &RolloutSettings::default(),
        ))
    }

    #[test]
    fn an_upgrade_prompt_lists_types_then_creates_one_job() {
        let fake = Fake::default();
        let r = ask(
            &fake,
            "update the pet_feeder device group to the latest firmware",
        );
        let tools: Vec<&str> = r.calls.iter().map(|c| c.tool).collect();
        assert_eq!(tools, ["list_device_types", "create_ota_job"]);
        assert_eq!(
            *fake.asked.borrow(),
            ["create job-1 DeviceType(\"pet_feeder\") Latest"]
        );
        let PromptResult::Created(job) = &r.result else {
            panic!("{:?}", r.result)
        };
        assert_eq!(job.version, "2.0.0");
        assert_eq!(
            r.calls[1].summary,
            "create_ota_job(type pet_feeder, latest, job_id job-1) -> job job-1: pet_feeder 2.0.0 to 2 devices"
        );
        assert_eq!(r.calls[1].args["target"], json!({"type": "pet_feeder"}));
    }

    #[test]
    fn a_rollback_prompt_goes_through_the_rollback_tool() {
        let fake = Fake::default();
        let r = ask(&fake, "roll XIAO-RVR-07 back to 1.0.0");
        assert_eq!(r.calls[1].tool, "rollback");
        assert_eq!(
            *fake.asked.borrow(),
            ["create job-1 Device(\"XIAO-RVR-07\") Exact(\"1.0.0\")"]
        );
    }

    #[test]
    fn an_unclear_prompt_makes_no_call_that_acts() {
        let fake = Fake::default();
        for text in ["make it better", "update to the latest", "disable OTA", ""] {
            let r = ask(&fake, text);
            assert!(
                matches!(r.result, PromptResult::Unclear(_)),
                "{text}: {:?}",
                r.result
            );
            let tools: Vec<&str> = r.calls.iter().map(|c| c.tool).collect();
            assert_eq!(tools, ["list_device_types"], "{text}");
            assert!(r.intent.is_none());
        }
        assert!(fake.asked.borrow().is_empty());
    }

    #[test]
    fn a_refused_call_is_reported_with_its_reason() {
        let fake = Fake::default();
        let r = ask(&fake, "update pet_feeder to 9.9.9");
        assert_eq!(
            r.result,
            PromptResult::Failed("no firmware pet_feeder 9.9.9".into())
        );
        assert!(!r.calls[1].ok);
        assert_eq!(
            r.calls[1].result,
            json!({"error": "no firmware pet_feeder 9.9.9"})
        );
    }

    #[test]
    fn status_cancel_and_gate_prompts_map_to_their_tools() {
        let fake = Fake::default();
        let r = ask(&fake, "what versions are the pet_feeder devices running?");
        assert_eq!(r.result.clone(), {
            let mut s = FleetStatus::default();
            s.by_type
                .entry("pet_feeder".into())
                .or_default()
                .insert("1.0.0".into(), 2);
            PromptResult::Status(s)
        });
        let r = ask(&fake, "cancel job-17");
        assert_eq!(r.result, PromptResult::Canceled("job-17".into()));
        let r = ask(&fake, "cancel the rollout");
        assert_eq!(
            r.result,
            PromptResult::Failed("no job is in progress".into())
        );
        let r = ask(&fake, "disable OTA for sphero rvr");
        assert!(matches!(r.result, PromptResult::Gate(ref g) if !g.enabled));
        assert_eq!(
            *fake.asked.borrow(),
            [
                "status DeviceType(\"pet_feeder\")",
                "cancel Some(\"job-17\") false",
                "cancel None false",
                "gate sphero_rvr false"
            ]
        );
    }

    #[test]
    fn the_default_rollback_refuses_latest() {
        let fake = Fake::default();
        let spec = OtaJobSpec {
            job_id: "j".into(),
            target: Target::Fleet,
            version: VersionSpec::Latest,
            rollout: RolloutSettings::default(),
            description: None,
        };
        let r = embassy_futures::block_on(fake.rollback(&spec));
        assert!(matches!(r, Err(ToolError::Invalid(_))));
        assert!(fake.asked.borrow().is_empty());
    }

    #[test]
    fn fleet_status_prints_as_the_prompt_step_always_did() {
        let mut s = FleetStatus::default();
        s.by_type
            .entry("pet_feeder".into())
            .or_default()
            .insert("1.0.0".into(), 29);
        s.by_type
            .entry("pet_feeder".into())
            .or_default()
            .insert("2.0.0".into(), 11);
        s.by_type
            .entry("smart_plug".into())
            .or_default()
            .insert(UNKNOWN_VERSION.into(), 1);
        assert_eq!(
            s.to_string(),
            "pet_feeder: 1.0.0 x29, 2.0.0 x11; smart_plug: unknown x1"
        );
        assert_eq!(s.devices(), 41);
        assert_eq!(s.count("pet_feeder", "2.0.0"), 11);
        assert_eq!(
            thing_from_arn("arn:aws:iot:us-east-1:1:thing/feeder-001"),
            "feeder-001"
        );
    }
}
