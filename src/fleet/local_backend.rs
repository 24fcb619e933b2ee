//! The fleet tools over a run's own fleet and cloud twin: the local
//! backend of [`crate::fleet_tools::FleetBackend`] (the AWS one is
//! `crate::fleet_tools_aws`).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use twinrig_cloud::jobs::{ABORT_REASON_CODE, CreateJobRequest, ExecutionStatus, JobStatus};

use super::{Fleet, FleetDevice, URL_EXPIRY_S, reported_firmware};
use crate::cloud_twin::CloudTwin;
use crate::fleet_tools::*;

/// The fleet tools over a run's cloud twin and fleet.
pub struct LocalFleet<'a> {
    fleet: &'a Fleet,
    cloud: &'a CloudTwin,
}

impl<'a> LocalFleet<'a> {
    /// Tools over `fleet` in `cloud`.
    pub fn new(fleet: &'a Fleet, cloud: &'a CloudTwin) -> Self {
        LocalFleet { fleet, cloud }
    }

    fn select(&self, target: &Target) -> Vec<&'a FleetDevice> {
        self.fleet
            .devices()
            .iter()
            .filter(|d| match target {
                Target::Device(id) => &d.id == id,
                Target::DeviceType(t) => &d.device_type == t,
                Target::Fleet => true,
            })
            .collect()
    }

    /// Thing names of a target (sorted) and their one device type.
    fn resolve(&self, target: &Target) -> Result<(Vec<String>, String), ToolError> {
        let chosen = self.select(target);
        let Some(first) = chosen.first() else {
            return Err(ToolError::NotFound(format!(
                "no fleet device matches {target:?}"
            )));
        };
        let device_type = first.device_type.clone();
        if chosen.iter().any(|d| d.device_type != device_type) {
            return Err(ToolError::Invalid(
                "the target spans several device types; an OTA job is for one type".to_owned(),
            ));
        }
        let mut things: Vec<String> = chosen.iter().map(|d| d.id.clone()).collect();
        things.sort();
        Ok((things, device_type))
    }

    /// The versions in shadows, now (the synchronous core of `fleet_status`).
    pub fn status_now(&self, target: &Target) -> FleetStatus {
        let mut status = FleetStatus::default();
        for d in self.select(target) {
            let v = reported_firmware(self.cloud, &d.id).unwrap_or_else(|| UNKNOWN_VERSION.into());
            *status
                .by_type
                .entry(d.device_type.clone())
                .or_default()
                .entry(v)
                .or_default() += 1;
        }
        status
    }

    /// The OTA job document for a published version, with a URL presigned now.
    pub fn job_document(&self, device_type: &str, version: &str) -> Result<Value, ToolError> {
        let registry = self.cloud.registry().borrow();
        let fw = registry.get(device_type, version).ok_or_else(|| {
            ToolError::NotFound(format!(
                "no firmware {device_type} {version} in the registry"
            ))
        })?;
        let url = registry
            .presign(device_type, version, self.cloud.now_s(), URL_EXPIRY_S)
            .map_err(|e| ToolError::Backend(e.to_string()))?;
        Ok(json!({
            "operation": "ota",
            "deviceType": device_type,
            "version": version,
            "url": url,
            "sha256": fw.sha256,
            "size": fw.image.len(),
        }))
    }

    fn latest(&self, device_type: &str) -> Result<String, ToolError> {
        self.cloud
            .registry()
            .borrow()
            .latest(device_type)
            .map(|f| f.version.clone())
            .ok_or_else(|| {
                ToolError::NotFound(format!("no firmware for {device_type} in the registry"))
            })
    }

    /// The newest published version below the newest one the target reports.
    fn previous(&self, target: &Target, device_type: &str) -> Result<String, ToolError> {
        let parse = |s: &str| s.parse::<crate::scenario::fleet::Version>().ok();
        let current = self
            .select(target)
            .iter()
            .filter_map(|d| reported_firmware(self.cloud, &d.id))
            .filter_map(|v| parse(&v))
            .max()
            .ok_or_else(|| {
                ToolError::NotFound("no device of the target reports a version yet".into())
            })?;
        self.cloud
            .registry()
            .borrow()
            .versions(device_type)
            .iter()
            .filter_map(|f| parse(&f.version))
            .filter(|v| *v < current)
            .max()
            .map(|v| v.to_string())
            .ok_or_else(|| {
                ToolError::NotFound(format!("no {device_type} version before {current}"))
            })
    }
}

fn types_of(fleet: &Fleet) -> BTreeMap<String, Vec<String>> {
    let mut types: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in fleet.devices() {
        types
            .entry(d.device_type.clone())
            .or_default()
            .push(d.id.clone());
    }
    types
}

impl FleetBackend for LocalFleet<'_> {
    fn backend_name(&self) -> &'static str {
        "local twin"
    }

    async fn list_device_types(&self) -> Result<Vec<DeviceTypeInfo>, ToolError> {
        let gates = self.fleet.gates().borrow();
        let config = self.fleet.config();
        Ok(types_of(self.fleet)
            .into_iter()
            .map(|(name, devices)| DeviceTypeInfo {
                ota_enabled: Some(gates.get(&name).copied().unwrap_or(true)),
                recommended: config.type_config(&name).recommended.map(|v| v.to_string()),
                name,
                devices,
            })
            .collect())
    }

    async fn list_versions(&self, device_type: &str) -> Result<Vec<VersionInfo>, ToolError> {
        let registry = self.cloud.registry().borrow();
        let versions: Vec<VersionInfo> = registry
            .versions(device_type)
            .into_iter()
            .map(|f| VersionInfo {
                version: f.version.clone(),
                sha256: f.sha256.clone(),
                size: f.image.len() as u64,
                published_at: f.published_at,
            })
            .collect();
        if versions.is_empty() {
            return Err(ToolError::NotFound(format!(
                "no firmware for {device_type} in the registry"
            )));
        }
        Ok(versions)
    }

    async fn fleet_status(&self, target: &Target) -> Result<FleetStatus, ToolError> {
        Ok(self.status_now(target))
    }

    async fn create_ota_job(&self, spec: &OtaJobSpec) -> Result<JobCreated, ToolError> {
        let (things, device_type) = self.resolve(&spec.target)?;
        let version = match &spec.version {
            VersionSpec::Latest => self.latest(&device_type)?,
            VersionSpec::Exact(v) => v.trim_start_matches('v').to_owned(),
            VersionSpec::Previous => self.previous(&spec.target, &device_type)?,
        };
        let document = self.job_document(&device_type, &version)?;
        let request = CreateJobRequest {
            job_id: spec.job_id.clone(),
            targets: things.clone(),
            document,
            description: spec.description.clone(),
            settings: spec.rollout.clone(),
        };
        self.cloud
            .create_job(request)
            .await
            .map_err(|e| ToolError::Refused(e.to_string()))?;
        self.fleet
            .jobs_created()
            .borrow_mut()
            .push(spec.job_id.clone());
        Ok(JobCreated {
            job_id: spec.job_id.clone(),
            device_type,
            version,
            targets: things,
        })
    }

    async fn job_status(&self, job_id: &str) -> Result<JobReport, ToolError> {
        let jobs = self.cloud.jobs().borrow();
        let d = jobs.describe_job(job_id).map_err(|e| match e {
            twinrig_cloud::jobs::JobsError::ResourceNotFound(m) => ToolError::NotFound(m),
            other => ToolError::Refused(other.to_string()),
        })?;
        let p = &d.job_process_details;
        let counts = JobCounts {
            total: d.targets.len() as u64,
            succeeded: p.number_of_succeeded_things,
            failed: p.number_of_failed_things,
            rejected: p.number_of_rejected_things,
            timed_out: p.number_of_timed_out_things,
            canceled: p.number_of_canceled_things,
            removed: p.number_of_removed_things,
            queued: p.number_of_queued_things,
            in_progress: p.number_of_in_progress_things,
        };
        let mut failures = Vec::new();
        let executions = jobs
            .list_job_executions_for_job(job_id, None)
            .map_err(|e| ToolError::Refused(e.to_string()))?;
        for e in executions {
            let status = e.job_execution_summary.status;
            if !matches!(
                status,
                ExecutionStatus::Failed | ExecutionStatus::Rejected | ExecutionStatus::TimedOut
            ) {
                continue;
            }
            let thing = thing_from_arn(&e.thing_arn).to_owned();
            let reason = jobs
                .describe_job_execution(job_id, &thing, None, self.cloud.now_s())
                .ok()
                .and_then(|x| x.status_details.details_map.get("reason").cloned());
            failures.push(ExecutionFailure {
                thing,
                status,
                reason,
            });
        }
        Ok(JobReport {
            job_id: job_id.to_owned(),
            status: d.status.into(),
            aborted: d.reason_code.as_deref() == Some(ABORT_REASON_CODE),
            reason_code: d.reason_code.clone(),
            comment: d.comment.clone(),
            counts,
            failures,
            max_in_progress_seen: self.cloud.max_in_progress_seen(job_id),
        })
    }

    async fn cancel_job(
        &self,
        job_id: Option<&str>,
        force: bool,
        comment: Option<&str>,
    ) -> Result<String, ToolError> {
        let job = match job_id {
            Some(j) => j.to_owned(),
            None => self
                .fleet
                .jobs_created()
                .borrow()
                .iter()
                .rev()
                .find(|j| {
                    self.cloud
                        .jobs()
                        .borrow()
                        .describe_job(j)
                        .is_ok_and(|d| d.status == JobStatus::InProgress)
                })
                .cloned()
                .ok_or_else(|| ToolError::NotFound("no job is in progress".into()))?,
        };
        let out = self
            .cloud
            .jobs()
            .borrow_mut()
            .cancel_job(&job, force, None, comment, self.cloud.now_s())
            .map_err(|e| ToolError::Refused(e.to_string()))?;
        self.cloud.emit(out).await;
        Ok(job)
    }

    async fn set_ota(&self, device_type: &str, enabled: bool) -> Result<GateChange, ToolError> {
        if !self
            .fleet
            .devices()
            .iter()
            .any(|d| d.device_type == device_type)
        {
            return Err(ToolError::NotFound(format!(
                "no fleet device of type {device_type}"
            )));
        }
        let shadows = self
            .fleet
            .set_gate(self.cloud, device_type, enabled)
            .await
            .map_err(|e| ToolError::Refused(e.to_string()))?;
        Ok(GateChange {
            device_type: device_type.to_owned(),
            enabled,
            // Devices follow `desired.otaEnabled` in their shadows at once.
            note: format!("now: desired.otaEnabled set in {shadows} device shadows"),
        })
    }
}
