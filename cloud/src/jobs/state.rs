//! The service's state: jobs, their things' execution attempts, and what
//! each thing was last notified of.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{Map, Value};

use super::{
    CreateJobRequest, DEFAULT_MAXIMUM_PER_MINUTE, ExecutionEvent, ExecutionStatus, FailureType,
    JobProcessDetails, JobStatus, JobsConfig,
};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Attempt {
    pub(super) number: u64,
    pub(super) status: ExecutionStatus,
    pub(super) details: BTreeMap<String, String>,
    pub(super) queued_at: u64,
    pub(super) started_at: Option<u64>,
    pub(super) last_updated_at: u64,
    pub(super) version: u64,
    pub(super) released: bool,
    pub(super) force_canceled: bool,
    pub(super) in_progress_deadline: Option<u64>,
    pub(super) step_deadline: Option<u64>,
    /// The queued timer (extension), set at release.
    pub(super) queued_deadline: Option<u64>,
}

impl Attempt {
    pub(super) fn new(number: u64, now: u64, released: bool) -> Attempt {
        Attempt {
            number,
            status: ExecutionStatus::Queued,
            details: BTreeMap::new(),
            queued_at: now,
            started_at: None,
            last_updated_at: now,
            version: 1,
            released,
            force_canceled: false,
            in_progress_deadline: None,
            step_deadline: None,
            queued_deadline: None,
        }
    }

    /// When the running timer turns this execution TIMED_OUT: the queued
    /// timer while QUEUED, the nearer of the in-progress and step timers
    /// while IN_PROGRESS, none once terminal.
    pub(super) fn deadline(&self) -> Option<u64> {
        match self.status {
            ExecutionStatus::Queued => self.queued_deadline,
            ExecutionStatus::InProgress => match (self.in_progress_deadline, self.step_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            _ => None,
        }
    }

    pub(super) fn set_status(&mut self, status: ExecutionStatus, now: u64) {
        self.status = status;
        self.last_updated_at = now;
        self.version += 1;
    }

    pub(super) fn state_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("status".into(), self.status.as_str().into());
        if !self.details.is_empty() {
            o.insert("statusDetails".into(), details_json(&self.details));
        }
        o.insert("versionNumber".into(), self.version.into());
        Value::Object(o)
    }

    pub(super) fn summary_json(&self, job_id: &str) -> Value {
        let mut o = Map::new();
        o.insert("jobId".into(), job_id.into());
        o.insert("queuedAt".into(), self.queued_at.into());
        if let Some(s) = self.started_at {
            o.insert("startedAt".into(), s.into());
        }
        o.insert("lastUpdatedAt".into(), self.last_updated_at.into());
        o.insert("versionNumber".into(), self.version.into());
        o.insert("executionNumber".into(), self.number.into());
        Value::Object(o)
    }
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct ThingExec {
    pub(super) attempts: Vec<Attempt>,
    /// A failure waiting for its retry attempt: when it failed.
    pub(super) retry_pending: Option<u64>,
    pub(super) failed_retries: u32,
    pub(super) timed_out_retries: u32,
}

impl ThingExec {
    pub(super) fn latest(&self) -> &Attempt {
        self.attempts
            .last()
            .expect("a thing has at least one attempt")
    }
    pub(super) fn latest_mut(&mut self) -> &mut Attempt {
        self.attempts
            .last_mut()
            .expect("a thing has at least one attempt")
    }
    /// Waiting for release: its release order key.
    pub(super) fn release_key(&self) -> Option<u64> {
        let a = self.latest();
        if self.retry_pending.is_some() {
            self.retry_pending
        } else if a.status == ExecutionStatus::Queued && !a.released {
            Some(a.queued_at)
        } else {
            None
        }
    }
    pub(super) fn holds_slot(&self) -> bool {
        let a = self.latest();
        a.released && !a.status.is_terminal()
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Job {
    pub(super) seq: u64,
    pub(super) request: CreateJobRequest,
    pub(super) max_in_progress: u32,
    pub(super) status: JobStatus,
    pub(super) force_canceled: bool,
    pub(super) reason_code: Option<String>,
    pub(super) comment: Option<String>,
    pub(super) created_at: u64,
    pub(super) last_updated_at: u64,
    pub(super) completed_at: Option<u64>,
    pub(super) things: BTreeMap<String, ThingExec>,
    pub(super) notified_things: u64,
    pub(super) release_times: VecDeque<u64>,
}

impl Job {
    pub(super) fn id(&self) -> &str {
        &self.request.job_id
    }

    pub(super) fn count(&self, status: ExecutionStatus) -> u64 {
        self.things
            .values()
            .filter(|t| t.latest().status == status)
            .count() as u64
    }

    pub(super) fn process_details(&self) -> JobProcessDetails {
        let processing: Vec<String> = self
            .things
            .iter()
            .filter(|(_, t)| t.release_key().is_some())
            .map(|(name, _)| name.clone())
            .collect();
        JobProcessDetails {
            processing_targets: (!processing.is_empty()).then_some(processing),
            number_of_canceled_things: self.count(ExecutionStatus::Canceled),
            number_of_succeeded_things: self.count(ExecutionStatus::Succeeded),
            number_of_failed_things: self.count(ExecutionStatus::Failed),
            number_of_rejected_things: self.count(ExecutionStatus::Rejected),
            number_of_queued_things: self.count(ExecutionStatus::Queued),
            number_of_in_progress_things: self.count(ExecutionStatus::InProgress),
            number_of_removed_things: self.count(ExecutionStatus::Removed),
            number_of_timed_out_things: self.count(ExecutionStatus::TimedOut),
        }
    }

    pub(super) fn rate(&self) -> u32 {
        let rollout = self.request.settings.job_executions_rollout_config.as_ref();
        let max = rollout
            .and_then(|r| r.maximum_per_minute)
            .unwrap_or(DEFAULT_MAXIMUM_PER_MINUTE);
        let Some(exp) = rollout.and_then(|r| r.exponential_rate.as_ref()) else {
            return max;
        };
        let crit = &exp.rate_increase_criteria;
        let (count, step) = match (
            crit.number_of_notified_things,
            crit.number_of_succeeded_things,
        ) {
            (Some(n), _) => (self.notified_things, u64::from(n.max(1))),
            (None, Some(n)) => (self.count(ExecutionStatus::Succeeded), u64::from(n.max(1))),
            (None, None) => (0, 1),
        };
        let k = (count / step).min(64) as i32;
        let rate = f64::from(exp.base_rate_per_minute) * exp.increment_factor.powi(k);
        // Saturating float-to-int conversion; capped by maximumPerMinute.
        (rate.floor() as u32).min(max)
    }

    pub(super) fn slots_used(&self) -> usize {
        self.things.values().filter(|t| t.holds_slot()).count()
    }

    /// The queued timer of an execution released at `now` (extension).
    pub(super) fn queued_deadline(&self, now: u64) -> Option<u64> {
        self.request
            .settings
            .timeout_config
            .and_then(|t| t.queued_timeout_in_minutes)
            .map(|m| after_minutes(now, m))
    }

    pub(super) fn prune_window(&mut self, now: u64) {
        while self
            .release_times
            .front()
            .is_some_and(|t| t.saturating_add(60) <= now)
        {
            self.release_times.pop_front();
        }
    }

    /// When the rate window next lets a release through, if it is the
    /// limit right now.
    pub(super) fn window_reopens(&self) -> Option<u64> {
        let rate = self.rate() as usize;
        let k = self.release_times.len();
        (k >= rate).then(|| self.release_times[k - rate].saturating_add(60))
    }

    pub(super) fn retries_allowed(&self, status: ExecutionStatus) -> u32 {
        let Some(cfg) = &self.request.settings.job_executions_retry_config else {
            return 0;
        };
        let wanted = match status {
            ExecutionStatus::Failed => FailureType::Failed,
            ExecutionStatus::TimedOut => FailureType::TimedOut,
            _ => return 0,
        };
        let find = |t: FailureType| {
            cfg.criteria_list
                .iter()
                .find(|c| c.failure_type == t)
                .map(|c| c.number_of_retries)
        };
        find(wanted).or_else(|| find(FailureType::All)).unwrap_or(0)
    }

    /// Retries under ALL share one budget; otherwise per type.
    pub(super) fn retries_used(&self, thing: &ThingExec, status: ExecutionStatus) -> u32 {
        let specific = self
            .request
            .settings
            .job_executions_retry_config
            .as_ref()
            .is_some_and(|cfg| {
                cfg.criteria_list.iter().any(|c| {
                    c.failure_type
                        == if status == ExecutionStatus::Failed {
                            FailureType::Failed
                        } else {
                            FailureType::TimedOut
                        }
                })
            });
        match (specific, status) {
            (true, ExecutionStatus::Failed) => thing.failed_retries,
            (true, _) => thing.timed_out_retries,
            (false, _) => thing.failed_retries + thing.timed_out_retries,
        }
    }
}

pub(super) fn details_json(details: &BTreeMap<String, String>) -> Value {
    Value::Object(
        details
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect(),
    )
}

pub(super) fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The Jobs service twin.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct JobsService {
    /// Settings: the running service's, not part of a snapshot.
    #[serde(skip)]
    pub(super) config: JobsConfig,
    pub(super) jobs: BTreeMap<String, Job>,
    pub(super) next_seq: u64,
    /// Per thing: last notified pending set and first entry.
    pub(super) notified: BTreeMap<String, Notified>,
    pub(super) dirty: BTreeSet<String>,
    /// Whether job execution events are published (an account setting,
    /// kept in snapshots; off unless enabled, as on AWS).
    #[serde(default)]
    pub(super) job_execution_events: bool,
    /// Status changes not yet handed out in an [`Output`] (none between
    /// calls: every call hands them out).
    #[serde(skip)]
    pub(super) events: Vec<ExecutionEvent>,
}

/// One pending execution of a thing: (job id, execution number).
pub(super) type PendingKey = (String, u64);
/// What a thing was last notified of: its pending set and first entry.
pub(super) type Notified = (BTreeSet<PendingKey>, Option<PendingKey>);

impl JobsService {
    /// A service with the given settings.
    pub fn new(config: JobsConfig) -> JobsService {
        JobsService {
            config,
            ..JobsService::default()
        }
    }

    /// Every job, execution, timer and notification state, as JSON: what
    /// [`JobsService::restore`] takes back.
    pub fn snapshot(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Replaces the state with a [`JobsService::snapshot`]'s; the settings
    /// stay.
    pub fn restore(&mut self, snapshot: Value) -> Result<(), serde_json::Error> {
        let restored: JobsService = serde_json::from_value(snapshot)?;
        *self = JobsService {
            config: std::mem::take(&mut self.config),
            ..restored
        };
        Ok(())
    }

    pub(super) fn job_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:iot:{}:{}:job/{id}",
            self.config.region, self.config.account_id
        )
    }

    pub(super) fn thing_arn(&self, thing: &str) -> String {
        format!(
            "arn:aws:iot:{}:{}:thing/{thing}",
            self.config.region, self.config.account_id
        )
    }

    pub(super) fn jobs_in_order(&self) -> Vec<String> {
        let mut ids: Vec<(u64, String)> = self
            .jobs
            .values()
            .map(|j| (j.seq, j.id().to_owned()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }
}

/// `minutes` after `now` (seconds), saturating: a timer past the end of
/// time never fires rather than wrapping round to one in the past.
pub(super) fn after_minutes(now: u64, minutes: u64) -> u64 {
    now.saturating_add(minutes.saturating_mul(60))
}

/// An [`ExecutionEvent`] for `a`'s change from `from` to its status.
pub(super) fn event(
    job_id: &str,
    thing: &str,
    a: &Attempt,
    from: ExecutionStatus,
    now: u64,
) -> ExecutionEvent {
    ExecutionEvent {
        job_id: job_id.to_owned(),
        thing_name: thing.to_owned(),
        execution_number: a.number,
        from,
        status: a.status,
        at: now,
        status_details: a.details.clone(),
    }
}
