//! AWS IoT's job execution events: when the account's event configuration
//! enables `JOB_EXECUTION` (UpdateEventConfigurations; off by default, as
//! on AWS), every execution that ends is published on
//! `$aws/events/jobExecution/{jobId}/{operation}` (AWS IoT Developer Guide,
//! "Jobs events"), where a rule can take it to a store.

use serde_json::json;

use super::state::to_bytes;
use super::{ExecutionEvent, ExecutionStatus, JobsService, Publish};

/// The topic prefix of job execution events.
pub const JOB_EXECUTION_EVENTS: &str = "$aws/events/jobExecution";

/// The rule that keeps job execution events in the records store (its
/// name is twinrig's; a scenario or `serve cloud --scenario` names it
/// `job-executions`).
pub const RULE: &str = "JobExecutionEventsRule";
/// The rule's SQL: every execution that ended.
pub const SQL: &str = "SELECT * FROM '$aws/events/jobExecution/+/+'";
/// The transform's name (the rule's action, and what `expect: records` names).
pub const ACTION: &str = "job-executions";
/// The transform file's text (`cloud/rules/job-executions.json`).
pub const TRANSFORM_JSON: &str = include_str!("../../rules/job-executions.json");

impl JobsService {
    /// Whether job execution events are published (UpdateEventConfigurations'
    /// `JOB_EXECUTION`).
    pub fn job_execution_events(&self) -> bool {
        self.job_execution_events
    }

    /// Turns job execution events on or off.
    pub fn set_job_execution_events(&mut self, enabled: bool) {
        self.job_execution_events = enabled;
    }

    /// The event AWS publishes for `e`, if it ends an execution and events
    /// are on.
    pub(super) fn execution_event_publish(&self, e: &ExecutionEvent) -> Option<Publish> {
        if !self.job_execution_events || !e.status.is_terminal() {
            return None;
        }
        let operation = operation(e.status);
        let thing_arn = format!(
            "arn:aws:iot:{}:{}:thing/{}",
            self.config.region, self.config.account_id, e.thing_name
        );
        // Derived, not random: the same run gives the same ids.
        let event_id = crate::things::uuid_of(
            "jobExecutionEvent",
            &format!(
                "{}/{}/{}/{operation}",
                e.job_id, e.thing_name, e.execution_number
            ),
        );
        let mut payload = json!({
            "eventType": "JOB_EXECUTION",
            "eventId": event_id,
            "timestamp": e.at,
            "operation": operation,
            "jobId": e.job_id,
            "thingArn": thing_arn,
            "status": e.status.as_str(),
        });
        if !e.status_details.is_empty() {
            payload["statusDetails"] = json!(e.status_details);
        }
        Some(Publish {
            topic: format!("{JOB_EXECUTION_EVENTS}/{}/{operation}", e.job_id),
            payload: to_bytes(&payload),
        })
    }
}

/// The `operation` of an execution that ended: its status in lower case.
fn operation(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Succeeded => "succeeded",
        ExecutionStatus::Failed => "failed",
        ExecutionStatus::TimedOut => "timed_out",
        ExecutionStatus::Rejected => "rejected",
        ExecutionStatus::Removed => "removed",
        ExecutionStatus::Canceled => "canceled",
        ExecutionStatus::Queued => "queued",
        ExecutionStatus::InProgress => "in_progress",
    }
}
