//! The device plane: the MQTT Jobs API (get, start-next, describe, update)
//! and the `/notify` and `/notify-next` notifications.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::request::{Rejection, opt_bool, opt_u64, parse_body, parse_details, parse_step, reject};
use super::rollout::on_terminal;
use super::state::{Attempt, Job, PendingKey, after_minutes, details_json, event, to_bytes};
use super::{
    ExecutionStatus, JobsOp, JobsService, MAX_NOTIFY_ENTRIES, Output, Publish, codes, jobs_prefix,
    parse_request_topic,
};

impl JobsService {
    /// The thing's pending list: (key, summary, status), in AWS's order.
    pub(super) fn pending(&self, thing: &str) -> Vec<(PendingKey, &Job, &Attempt)> {
        let mut list: Vec<(bool, u64, u64, PendingKey, &Job, &Attempt)> = Vec::new();
        for job in self.jobs.values() {
            if let Some(t) = job.things.get(thing) {
                let a = t.latest();
                if a.released && !a.status.is_terminal() {
                    list.push((
                        a.status != ExecutionStatus::InProgress,
                        a.queued_at,
                        job.seq,
                        (job.id().to_owned(), a.number),
                        job,
                        a,
                    ));
                }
            }
        }
        list.sort_by_key(|x| (x.0, x.1, x.2));
        list.into_iter()
            .map(|(_, _, _, k, j, a)| (k, j, a))
            .collect()
    }

    pub(super) fn flush(&mut self, now: u64, out: &mut Output) {
        let events: Vec<Publish> = self
            .events
            .iter()
            .filter_map(|e| self.execution_event_publish(e))
            .collect();
        out.publishes.extend(events);
        out.executions.append(&mut self.events);
        let dirty = std::mem::take(&mut self.dirty);
        for thing in dirty {
            let pending = self.pending(&thing);
            let set: BTreeSet<PendingKey> = pending.iter().map(|(k, _, _)| k.clone()).collect();
            let first = pending.first().map(|(k, _, _)| k.clone());
            let (old_set, old_first) = self.notified.get(&thing).cloned().unwrap_or_default();
            let prefix = jobs_prefix(&thing);
            if set != old_set {
                let mut in_progress = Vec::new();
                let mut queued = Vec::new();
                for (_, job, a) in pending.iter().take(MAX_NOTIFY_ENTRIES) {
                    let s = a.summary_json(job.id());
                    if a.status == ExecutionStatus::InProgress {
                        in_progress.push(s);
                    } else {
                        queued.push(s);
                    }
                }
                let mut jobs = Map::new();
                if !in_progress.is_empty() {
                    jobs.insert("IN_PROGRESS".into(), Value::Array(in_progress));
                }
                if !queued.is_empty() {
                    jobs.insert("QUEUED".into(), Value::Array(queued));
                }
                let mut doc = Map::new();
                doc.insert("timestamp".into(), now.into());
                doc.insert("jobs".into(), Value::Object(jobs));
                out.publishes.push(Publish {
                    topic: format!("{prefix}/notify"),
                    payload: to_bytes(&Value::Object(doc)),
                });
            }
            if first != old_first {
                let mut doc = Map::new();
                doc.insert("timestamp".into(), now.into());
                if let Some((_, job, a)) = pending.first() {
                    let mut e = Map::new();
                    e.insert("jobId".into(), job.id().into());
                    e.insert("status".into(), a.status.as_str().into());
                    e.insert("queuedAt".into(), a.queued_at.into());
                    e.insert("lastUpdatedAt".into(), a.last_updated_at.into());
                    e.insert("versionNumber".into(), a.version.into());
                    e.insert("executionNumber".into(), a.number.into());
                    e.insert("jobDocument".into(), job.request.document.clone());
                    doc.insert("execution".into(), Value::Object(e));
                }
                out.publishes.push(Publish {
                    topic: format!("{prefix}/notify-next"),
                    payload: to_bytes(&Value::Object(doc)),
                });
            }
            self.notified.insert(thing, (set, first));
        }
    }

    /// Handles a publish on a Jobs request topic at `now`. Timers due at
    /// `now` fire first; then the reply; then the notifications and alerts
    /// the request caused. Non-request topics produce nothing.
    pub fn handle(&mut self, topic: &str, payload: &[u8], now: u64) -> Output {
        let Some(req) = parse_request_topic(topic) else {
            return Output::default();
        };
        let mut out = self.advance(now);
        let (token, result) = match parse_body(payload, self.config.max_client_token_bytes) {
            Err(r) => (None, Err(r)),
            Ok((body, token)) => {
                let result = match req.op {
                    JobsOp::GetPending => Ok(self.get_pending(req.thing)),
                    JobsOp::StartNext => self.start_next(req.thing, &body, now),
                    JobsOp::Describe(job_id) => self.describe_device(req.thing, job_id, &body, now),
                    JobsOp::Update(job_id) => self.update(req.thing, job_id, &body, now),
                };
                (token, result)
            }
        };
        let (suffix, mut doc) = match result {
            Ok(doc) => ("accepted", doc),
            Err(r) => {
                let mut doc = Map::new();
                doc.insert("code".into(), r.code.into());
                doc.insert("message".into(), r.message.into());
                if let Some(state) = r.execution_state {
                    doc.insert("executionState".into(), state);
                }
                ("rejected", doc)
            }
        };
        doc.insert("timestamp".into(), now.into());
        if let Some(token) = token {
            doc.insert("clientToken".into(), token.into());
        }
        out.publishes.push(Publish {
            topic: format!("{topic}/{suffix}"),
            payload: to_bytes(&Value::Object(doc)),
        });
        self.settle(now, &mut out);
        out
    }

    pub(super) fn get_pending(&self, thing: &str) -> Map<String, Value> {
        let mut in_progress = Vec::new();
        let mut queued = Vec::new();
        for (_, job, a) in self.pending(thing) {
            let s = a.summary_json(job.id());
            if a.status == ExecutionStatus::InProgress {
                in_progress.push(s);
            } else {
                queued.push(s);
            }
        }
        let mut doc = Map::new();
        doc.insert("inProgressJobs".into(), Value::Array(in_progress));
        doc.insert("queuedJobs".into(), Value::Array(queued));
        doc
    }

    pub(super) fn execution_json(
        &self,
        job: &Job,
        thing: &str,
        a: &Attempt,
        doc: bool,
        now: u64,
    ) -> Value {
        let mut e = Map::new();
        e.insert("jobId".into(), job.id().into());
        e.insert("thingName".into(), thing.into());
        if doc {
            e.insert("jobDocument".into(), job.request.document.clone());
        }
        e.insert("status".into(), a.status.as_str().into());
        if !a.details.is_empty() {
            e.insert("statusDetails".into(), details_json(&a.details));
        }
        e.insert("queuedAt".into(), a.queued_at.into());
        if let Some(s) = a.started_at {
            e.insert("startedAt".into(), s.into());
        }
        e.insert("lastUpdatedAt".into(), a.last_updated_at.into());
        e.insert("versionNumber".into(), a.version.into());
        e.insert("executionNumber".into(), a.number.into());
        if let Some(d) = a.deadline() {
            e.insert(
                "approximateSecondsBeforeTimedOut".into(),
                d.saturating_sub(now).into(),
            );
        }
        Value::Object(e)
    }

    pub(super) fn start_next(
        &mut self,
        thing: &str,
        body: &Map<String, Value>,
        now: u64,
    ) -> Result<Map<String, Value>, Rejection> {
        let details = parse_details(body)?;
        let step = parse_step(body)?;
        let Some((key, _, a)) = self.pending(thing).into_iter().next() else {
            return Ok(Map::new());
        };
        if a.status == ExecutionStatus::Queued {
            let job = self.jobs.get_mut(&key.0).expect("pending job exists");
            let timeout = job
                .request
                .settings
                .timeout_config
                .and_then(|t| t.in_progress_timeout_in_minutes);
            let a = job
                .things
                .get_mut(thing)
                .expect("pending thing")
                .latest_mut();
            start(a, timeout, details, step, now);
            let e = event(&key.0, thing, a, ExecutionStatus::Queued, now);
            self.events.push(e);
            self.dirty.insert(thing.to_owned());
        }
        let job = &self.jobs[&key.0];
        let a = job.things[thing].latest();
        let mut doc = Map::new();
        doc.insert(
            "execution".into(),
            self.execution_json(job, thing, a, true, now),
        );
        Ok(doc)
    }

    pub(super) fn describe_device(
        &self,
        thing: &str,
        job_id: &str,
        body: &Map<String, Value>,
        now: u64,
    ) -> Result<Map<String, Value>, Rejection> {
        let include_doc = opt_bool(body, "includeJobDocument")?.unwrap_or(true);
        let number = opt_u64(body, "executionNumber")?;
        let mut doc = Map::new();
        let (job, a) = if job_id == "$next" {
            match self.pending(thing).into_iter().next() {
                None => return Ok(doc),
                Some((_, job, a)) => (job, a),
            }
        } else {
            self.visible(thing, job_id, number)?
        };
        doc.insert(
            "execution".into(),
            self.execution_json(job, thing, a, include_doc, now),
        );
        Ok(doc)
    }

    /// A released execution of `job_id` for `thing`: the given number or the
    /// latest.
    pub(super) fn visible(
        &self,
        thing: &str,
        job_id: &str,
        number: Option<u64>,
    ) -> Result<(&Job, &Attempt), Rejection> {
        let not_found = || {
            reject(
                codes::RESOURCE_NOT_FOUND,
                format!("Job execution of {job_id} for {thing} not found"),
            )
        };
        let job = self.jobs.get(job_id).ok_or_else(not_found)?;
        let t = job.things.get(thing).ok_or_else(not_found)?;
        let a = match number {
            None => t.latest(),
            Some(n) => t
                .attempts
                .iter()
                .find(|a| a.number == n)
                .ok_or_else(not_found)?,
        };
        if !a.released {
            return Err(not_found());
        }
        Ok((job, a))
    }

    pub(super) fn update(
        &mut self,
        thing: &str,
        job_id: &str,
        body: &Map<String, Value>,
        now: u64,
    ) -> Result<Map<String, Value>, Rejection> {
        let status = match body.get("status") {
            None => return Err(reject(codes::INVALID_REQUEST, "status is required")),
            Some(Value::String(s)) => ExecutionStatus::parse(s)
                .ok_or_else(|| reject(codes::INVALID_REQUEST, format!("Unknown status {s}")))?,
            Some(_) => return Err(reject(codes::INVALID_REQUEST, "status must be a string")),
        };
        if !matches!(
            status,
            ExecutionStatus::InProgress
                | ExecutionStatus::Succeeded
                | ExecutionStatus::Failed
                | ExecutionStatus::Rejected
        ) {
            return Err(reject(
                codes::INVALID_REQUEST,
                format!("A device cannot set status {}", status.as_str()),
            ));
        }
        let details = parse_details(body)?;
        let step = parse_step(body)?;
        let expected = opt_u64(body, "expectedVersion")?;
        let number = opt_u64(body, "executionNumber")?;
        let include_state = opt_bool(body, "includeJobExecutionState")?.unwrap_or(false);
        let include_doc = opt_bool(body, "includeJobDocument")?.unwrap_or(false);

        let (job, a) = self.visible(thing, job_id, number)?;
        let latest_number = job.things[thing].latest().number;
        if let Some(v) = expected
            && v != a.version
        {
            return Err(Rejection {
                code: codes::VERSION_MISMATCH,
                message: format!(
                    "expectedVersion {v} does not match the current version {}",
                    a.version
                ),
                execution_state: Some(a.state_json()),
            });
        }
        if a.status.is_terminal() || a.number != latest_number {
            return Err(Rejection {
                code: codes::INVALID_STATE_TRANSITION,
                message: format!(
                    "Cannot update execution from {} to {}",
                    a.status.as_str(),
                    status.as_str()
                ),
                execution_state: Some(a.state_json()),
            });
        }
        let job = self.jobs.get_mut(job_id).expect("visible");
        let timeout = job
            .request
            .settings
            .timeout_config
            .and_then(|t| t.in_progress_timeout_in_minutes);
        let t = job.things.get_mut(thing).expect("visible");
        let a = t.latest_mut();
        if status == ExecutionStatus::InProgress {
            if a.status == ExecutionStatus::Queued {
                start(a, timeout, details, step, now);
                self.events
                    .push(event(job_id, thing, a, ExecutionStatus::Queued, now));
            } else {
                if let Some(d) = details {
                    a.details = d;
                }
                apply_step(a, step, now);
                a.last_updated_at = now;
                a.version += 1;
            }
        } else {
            if let Some(d) = details {
                a.details = d;
            }
            let from = a.status;
            a.set_status(status, now);
            a.step_deadline = None;
            a.in_progress_deadline = None;
            self.events.push(event(job_id, thing, a, from, now));
        }
        let mut doc = Map::new();
        if include_state {
            doc.insert("executionState".into(), a.state_json());
        }
        if include_doc {
            doc.insert("jobDocument".into(), job.request.document.clone());
        }
        if status.is_terminal() {
            on_terminal(job, thing, now);
        }
        self.dirty.insert(thing.to_owned());
        Ok(doc)
    }
}

pub(super) fn start(
    a: &mut Attempt,
    timeout_minutes: Option<u64>,
    details: Option<BTreeMap<String, String>>,
    step: Option<i64>,
    now: u64,
) {
    a.set_status(ExecutionStatus::InProgress, now);
    a.started_at = Some(now);
    // Started in time: the queued timer no longer applies.
    a.queued_deadline = None;
    if let Some(d) = details {
        a.details = d;
    }
    a.in_progress_deadline = timeout_minutes.map(|m| after_minutes(now, m));
    apply_step(a, step, now);
}

pub(super) fn apply_step(a: &mut Attempt, step: Option<i64>, now: u64) {
    match step {
        None => {}
        Some(-1) => a.step_deadline = None,
        Some(m) => {
            let d = after_minutes(now, m.unsigned_abs());
            a.step_deadline = Some(a.in_progress_deadline.map_or(d, |ip| d.min(ip)));
        }
    }
}
