//! The control plane: CreateJob, DescribeJob, ListJobs, CancelJob,
//! ListJobExecutionsForJob, DescribeJobExecution.

use std::collections::VecDeque;

use super::rollout::cancel_executions;
use super::state::{Attempt, Job, ThingExec};
use super::{
    CreateJobRequest, CreateJobResponse, ExecutionStatus, JobDescription, JobExecutionDescription,
    JobExecutionSummary, JobExecutionSummaryForJob, JobStatus, JobSummary, JobsError, JobsService,
    Output, Setting, StatusDetails, valid_job_id,
};

impl JobsService {
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

    /// ListJobs: every job in creation order, or those with `status`.
    pub fn list_jobs(&self, status: Option<JobStatus>) -> Vec<JobSummary> {
        self.jobs_in_order()
            .iter()
            .filter_map(|id| self.describe_job(id).ok())
            .filter(|j| status.is_none_or(|s| j.status == s))
            .map(|j| JobSummary {
                job_arn: j.job_arn,
                job_id: j.job_id,
                target_selection: j.target_selection,
                status: j.status,
                created_at: j.created_at,
                last_updated_at: j.last_updated_at,
                completed_at: j.completed_at,
                is_concurrent: j.is_concurrent,
            })
            .collect()
    }

    /// The service's settings (region and account for ARNs, defaults).
    pub fn config(&self) -> &super::JobsConfig {
        &self.config
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

    pub(super) fn job(&self, job_id: &str) -> Result<&Job, JobsError> {
        self.jobs
            .get(job_id)
            .ok_or_else(|| JobsError::ResourceNotFound(format!("Job {job_id} does not exist")))
    }
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
