//! Jobs device-plane topic names (devguide `jobs-mqtt-api`): parsing the
//! request topics devices publish to, and building the reply and
//! notification topics the service publishes on.

use crate::shadow::valid_thing_name;

/// Filters covering every Jobs request topic and none of the reply or
/// notification topics, for subscribing the service to the broker. Replies
/// have one level more (`.../get/accepted`), so the service never receives
/// its own output.
pub const REQUEST_FILTERS: [&str; 4] = [
    "$aws/things/+/jobs/get",
    "$aws/things/+/jobs/start-next",
    "$aws/things/+/jobs/+/get",
    "$aws/things/+/jobs/+/update",
];

/// A device-plane operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobsOp<'a> {
    /// `jobs/get`: GetPendingJobExecutions.
    GetPending,
    /// `jobs/start-next`: StartNextPendingJobExecution.
    StartNext,
    /// `jobs/{jobId}/get`: DescribeJobExecution (`jobId` may be `$next`).
    Describe(&'a str),
    /// `jobs/{jobId}/update`: UpdateJobExecution.
    Update(&'a str),
}

/// A request topic, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobsTopic<'a> {
    /// Thing name.
    pub thing: &'a str,
    /// Requested operation.
    pub op: JobsOp<'a>,
}

/// Splits a Jobs request topic. `None` for anything else (replies,
/// notifications, other `$aws` topics, thing names AWS would not accept,
/// empty job ids).
pub fn parse_request_topic(topic: &str) -> Option<JobsTopic<'_>> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let levels: Vec<&str> = rest.split('/').collect();
    let (thing, op) = match levels.as_slice() {
        [thing, "jobs", "get"] => (*thing, JobsOp::GetPending),
        [thing, "jobs", "start-next"] => (*thing, JobsOp::StartNext),
        [thing, "jobs", job, "get"] if !job.is_empty() => (*thing, JobsOp::Describe(job)),
        [thing, "jobs", job, "update"] if !job.is_empty() => (*thing, JobsOp::Update(job)),
        _ => return None,
    };
    if !valid_thing_name(thing) {
        return None;
    }
    Some(JobsTopic { thing, op })
}

/// `$aws/things/{thing}/jobs`.
pub fn jobs_prefix(thing: &str) -> String {
    format!("$aws/things/{thing}/jobs")
}

/// Job ids AWS accepts: `[a-zA-Z0-9_-]{1,64}`.
pub fn valid_job_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}
