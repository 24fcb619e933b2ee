//! Time and the rollout: timers expiring, releases under the in-progress
//! cap and the rate window, retries, aborts and completion.

use super::state::{Attempt, Job, event};
use super::{
    ABORT_REASON_CODE, Alert, ExecutionEvent, ExecutionStatus, FailureType, JobStatus, JobsService,
    Output,
};

impl JobsService {
    /// Advances virtual time to `now`: fires timers, releases executions
    /// the rate window now allows, checks aborts.
    pub fn tick(&mut self, now: u64) -> Output {
        self.advance(now)
    }

    /// The earliest time at which [`JobsService::tick`] would change
    /// something on its own (a timer expiring or a rate window reopening
    /// while executions wait and slots are free). `None`: nothing happens
    /// until a device or the control plane acts.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut best: Option<u64> = None;
        let mut consider = |t: u64| best = Some(best.map_or(t, |b: u64| b.min(t)));
        for job in self.jobs.values() {
            for t in job.things.values() {
                if let Some(d) = t.latest().deadline() {
                    consider(d);
                }
            }
            if job.status == JobStatus::InProgress
                && job.slots_used() < job.max_in_progress as usize
                && job.things.values().any(|t| t.release_key().is_some())
                && let Some(t) = job.window_reopens()
            {
                consider(t);
            }
        }
        best
    }

    pub(super) fn advance(&mut self, now: u64) -> Output {
        let mut out = Output::default();
        for id in self.jobs_in_order() {
            let job = self.jobs.get_mut(&id).expect("listed");
            let mut expired = Vec::new();
            for (name, t) in &mut job.things {
                if t.latest().deadline().is_some_and(|d| d <= now) {
                    let a = t.latest_mut();
                    let from = a.status;
                    a.set_status(ExecutionStatus::TimedOut, now);
                    self.events.push(event(&id, name, a, from, now));
                    expired.push(name.clone());
                }
            }
            for name in &expired {
                on_terminal(job, name, now);
            }
            self.dirty.extend(expired);
        }
        self.settle(now, &mut out);
        out
    }

    /// Aborts, releases, completions, then notifications.
    pub(super) fn settle(&mut self, now: u64, out: &mut Output) {
        for id in self.jobs_in_order() {
            let job = self.jobs.get_mut(&id).expect("listed");
            if job.status == JobStatus::InProgress
                && let Some(comment) = abort_reason(job)
            {
                job.status = JobStatus::Canceled;
                job.reason_code = Some(ABORT_REASON_CODE.into());
                job.comment = Some(comment.clone());
                job.last_updated_at = now;
                job.completed_at = Some(now);
                let touched = cancel_executions(job, false, now, &mut self.events);
                self.dirty.extend(touched);
                out.alerts.push(Alert {
                    job_id: id.clone(),
                    at: now,
                    reason_code: ABORT_REASON_CODE.into(),
                    comment,
                    job_process_details: job.process_details(),
                });
            }
            if job.status == JobStatus::InProgress {
                let released = release(job, now);
                self.dirty.extend(released);
            }
            if job.status == JobStatus::InProgress
                && job
                    .things
                    .values()
                    .all(|t| t.latest().status.is_terminal() && t.retry_pending.is_none())
            {
                job.status = JobStatus::Completed;
                job.completed_at = Some(now);
                job.last_updated_at = now;
            }
        }
        self.flush(now, out);
    }
}

/// A thing's latest execution just became terminal: schedule a retry if
/// one is left.
pub(super) fn on_terminal(job: &mut Job, thing: &str, now: u64) {
    if job.status != JobStatus::InProgress {
        return;
    }
    let status = job.things[thing].latest().status;
    let allowed = job.retries_allowed(status);
    let used = job.retries_used(&job.things[thing], status);
    if used < allowed {
        let t = job.things.get_mut(thing).expect("exists");
        t.retry_pending = Some(now);
        match status {
            ExecutionStatus::Failed => t.failed_retries += 1,
            _ => t.timed_out_retries += 1,
        }
    }
}

/// Cancels QUEUED executions (and IN_PROGRESS ones when `force`), drops
/// pending retries; records the changes in `events`. Returns the things
/// whose released executions changed.
pub(super) fn cancel_executions(
    job: &mut Job,
    force: bool,
    now: u64,
    events: &mut Vec<ExecutionEvent>,
) -> Vec<String> {
    let mut touched = Vec::new();
    let job_id = job.id().to_owned();
    for (name, t) in &mut job.things {
        t.retry_pending = None;
        let a = t.latest_mut();
        let hit = a.status == ExecutionStatus::Queued
            || (force && a.status == ExecutionStatus::InProgress);
        if hit {
            let from = a.status;
            a.set_status(ExecutionStatus::Canceled, now);
            events.push(event(&job_id, name, a, from, now));
            a.force_canceled = force;
            a.step_deadline = None;
            a.in_progress_deadline = None;
            if a.released {
                touched.push(name.clone());
            }
        }
    }
    touched
}

/// Releases what the cap and the rate allow. Returns the things released to.
pub(super) fn release(job: &mut Job, now: u64) -> Vec<String> {
    job.prune_window(now);
    let mut released = Vec::new();
    loop {
        if job.slots_used() >= job.max_in_progress as usize
            || job.release_times.len() >= job.rate() as usize
        {
            break;
        }
        let Some((_, name)) = job
            .things
            .iter()
            .filter_map(|(name, t)| t.release_key().map(|k| (k, name.clone())))
            .min()
        else {
            break;
        };
        let queued_deadline = job.queued_deadline(now);
        let t = job.things.get_mut(&name).expect("candidate");
        if t.retry_pending.take().is_some() {
            let number = t.latest().number + 1;
            t.attempts.push(Attempt::new(number, now, true));
        } else {
            t.latest_mut().released = true;
            job.notified_things += 1;
        }
        // The device can see it from now on, so its queued timer starts now.
        t.latest_mut().queued_deadline = queued_deadline;
        job.release_times.push_back(now);
        released.push(name);
    }
    released
}

/// The abort comment if a criterion is met.
pub(super) fn abort_reason(job: &Job) -> Option<String> {
    let d = job.process_details();
    let failed = d.number_of_failed_things;
    let rejected = d.number_of_rejected_things;
    let timed_out = d.number_of_timed_out_things;
    let completed = d.number_of_succeeded_things + failed + rejected + timed_out;
    if let Some(cfg) = &job.request.settings.abort_config {
        for c in &cfg.criteria_list {
            if completed == 0 || completed < u64::from(c.min_number_of_executed_things) {
                continue;
            }
            let (count, label) = match c.failure_type {
                FailureType::Failed => (failed, "FAILED"),
                FailureType::Rejected => (rejected, "REJECTED"),
                FailureType::TimedOut => (timed_out, "TIMED_OUT"),
                FailureType::All => (failed + rejected + timed_out, "ALL"),
            };
            let pct = 100.0 * count as f64 / completed as f64;
            if pct >= c.threshold_percentage {
                return Some(format!(
                    "Job aborted: {count} of {completed} completed executions {label} \
                     ({pct:.2}% >= {}%)",
                    c.threshold_percentage
                ));
            }
        }
    }
    if let Some(limit) = job.request.settings.abort_after_failures {
        let failures = failed + timed_out;
        if failures > u64::from(limit) {
            return Some(format!(
                "Job aborted: {failures} things failed (more than abortAfterFailures {limit})"
            ));
        }
    }
    None
}
