use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const T0: u64 = 1_000_000;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{i:03}")).collect()
}

fn request(id: &str, n: usize) -> CreateJobRequest {
    let targets = names(n);
    let refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    CreateJobRequest::new(id, &refs, json!({"operation": "ota", "version": "2.0.0"}))
}

fn json_of(p: &Publish) -> Value {
    serde_json::from_slice(&p.payload).expect("output is JSON")
}

fn find<'a>(out: &'a Output, topic: &str) -> Option<&'a Publish> {
    out.publishes.iter().find(|p| p.topic == topic)
}

fn reply(out: &Output, suffix: &str) -> Value {
    let p = out
        .publishes
        .iter()
        .find(|p| p.topic.ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} in {out:?}"));
    json_of(p)
}

fn start_next(svc: &mut JobsService, thing: &str, now: u64) -> Output {
    svc.handle(
        &format!("$aws/things/{thing}/jobs/start-next"),
        br#"{"clientToken":"c1"}"#,
        now,
    )
}

fn update(svc: &mut JobsService, thing: &str, job: &str, body: Value, now: u64) -> Output {
    svc.handle(
        &format!("$aws/things/{thing}/jobs/{job}/update"),
        body.to_string().as_bytes(),
        now,
    )
}

fn details(svc: &JobsService, job: &str) -> JobProcessDetails {
    svc.describe_job(job)
        .expect("job exists")
        .job_process_details
}

fn notified_things(out: &Output) -> Vec<String> {
    out.publishes
        .iter()
        .filter(|p| p.topic.ends_with("/jobs/notify-next") && json_of(p).get("execution").is_some())
        .map(|p| p.topic.split('/').nth(2).expect("thing level").to_owned())
        .collect()
}

#[test]
fn create_and_describe_counters() {
    let mut svc = JobsService::default();
    let resp = svc.create_job(request("job1", 3), T0).expect("created");
    assert_eq!(resp.job_arn, "arn:aws:iot:us-east-1:123456789012:job/job1");
    assert_eq!(notified_things(&resp.output), ["t000", "t001", "t002"]);
    let next = json_of(find(&resp.output, "$aws/things/t000/jobs/notify-next").expect("sent"));
    assert_eq!(
        next,
        json!({"timestamp": T0, "execution": {"jobId": "job1", "status": "QUEUED",
            "queuedAt": T0, "lastUpdatedAt": T0, "versionNumber": 1, "executionNumber": 1,
            "jobDocument": {"operation": "ota", "version": "2.0.0"}}})
    );
    let notify = json_of(find(&resp.output, "$aws/things/t000/jobs/notify").expect("sent"));
    assert_eq!(notify["jobs"]["QUEUED"][0]["jobId"], "job1");

    let d = svc.describe_job("job1").expect("exists");
    assert_eq!(d.status, JobStatus::InProgress);
    assert_eq!(d.max_in_progress, 10);
    let j = d.to_json();
    assert_eq!(j["status"], "IN_PROGRESS");
    assert_eq!(
        j["jobProcessDetails"],
        json!({"numberOfCanceledThings": 0, "numberOfSucceededThings": 0,
            "numberOfFailedThings": 0, "numberOfRejectedThings": 0, "numberOfQueuedThings": 3,
            "numberOfInProgressThings": 0, "numberOfRemovedThings": 0, "numberOfTimedOutThings": 0})
    );
    assert_eq!(
        j["targets"][0],
        "arn:aws:iot:us-east-1:123456789012:thing/t000"
    );

    assert!(matches!(
        svc.create_job(request("job1", 1), T0),
        Err(JobsError::ResourceAlreadyExists(_))
    ));
    let err = svc.create_job(request("bad id", 1), T0).unwrap_err();
    assert_eq!(err.name(), "InvalidRequestException");
    assert_eq!(
        svc.describe_job("nope").unwrap_err().name(),
        "ResourceNotFoundException"
    );
}

#[test]
fn start_next_returns_the_next_queued_execution_and_starts_it() {
    let mut svc = JobsService::default();
    svc.create_job(request("job1", 1), T0).expect("created");
    let out = svc.handle(
        "$aws/things/t000/jobs/start-next",
        br#"{"clientToken":"c1","statusDetails":{"step":"download"}}"#,
        T0 + 5,
    );
    // QUEUED -> IN_PROGRESS of the first item: no notification (devguide).
    assert_eq!(out.publishes.len(), 1);
    assert_eq!(
        reply(&out, "/start-next/accepted"),
        json!({"clientToken": "c1", "timestamp": T0 + 5, "execution": {
            "jobId": "job1", "thingName": "t000", "status": "IN_PROGRESS",
            "statusDetails": {"step": "download"},
            "jobDocument": {"operation": "ota", "version": "2.0.0"},
            "queuedAt": T0, "startedAt": T0 + 5, "lastUpdatedAt": T0 + 5,
            "versionNumber": 2, "executionNumber": 1}})
    );
    assert_eq!(details(&svc, "job1").number_of_in_progress_things, 1);

    // Again: the IN_PROGRESS one comes back unchanged.
    let out = start_next(&mut svc, "t000", T0 + 9);
    let e = &reply(&out, "/start-next/accepted")["execution"];
    assert_eq!(e["versionNumber"], 2);
    assert_eq!(e["lastUpdatedAt"], T0 + 5);

    // Nothing pending for another thing: no execution.
    let out = start_next(&mut svc, "other", T0 + 9);
    assert_eq!(
        reply(&out, "/start-next/accepted"),
        json!({"clientToken": "c1", "timestamp": T0 + 9})
    );

    // jobs/get lists it.
    let out = svc.handle("$aws/things/t000/jobs/get", b"", T0 + 9);
    let r = reply(&out, "/jobs/get/accepted");
    assert_eq!(r["inProgressJobs"][0]["jobId"], "job1");
    assert_eq!(r["queuedJobs"], json!([]));
}

#[test]
fn update_to_succeeded_completes_the_job() {
    let mut svc = JobsService::default();
    svc.create_job(request("job1", 1), T0).expect("created");
    start_next(&mut svc, "t000", T0 + 1);
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "SUCCEEDED", "expectedVersion": 2, "includeJobExecutionState": true,
            "includeJobDocument": true, "clientToken": "u"}),
        T0 + 2,
    );
    assert_eq!(
        out.publishes[0].topic,
        "$aws/things/t000/jobs/job1/update/accepted"
    );
    assert_eq!(
        json_of(&out.publishes[0]),
        json!({"clientToken": "u", "timestamp": T0 + 2,
            "executionState": {"status": "SUCCEEDED", "versionNumber": 3},
            "jobDocument": {"operation": "ota", "version": "2.0.0"}})
    );
    // The pending list emptied: notify with no jobs, notify-next with no execution.
    assert_eq!(
        json_of(find(&out, "$aws/things/t000/jobs/notify").expect("sent")),
        json!({"timestamp": T0 + 2, "jobs": {}})
    );
    assert_eq!(
        json_of(find(&out, "$aws/things/t000/jobs/notify-next").expect("sent")),
        json!({"timestamp": T0 + 2})
    );
    let d = svc.describe_job("job1").expect("exists");
    assert_eq!(d.status, JobStatus::Completed);
    assert_eq!(d.completed_at, Some(T0 + 2));
    assert_eq!(d.job_process_details.number_of_succeeded_things, 1);
    let e = svc
        .describe_job_execution("job1", "t000", None, T0 + 3)
        .expect("exists");
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    assert_eq!(e.version_number, 3);
    // Control plane cannot cancel a COMPLETED job.
    assert_eq!(
        svc.cancel_job("job1", false, None, None, T0 + 4)
            .unwrap_err()
            .name(),
        "InvalidStateTransitionException"
    );
}

/// Tiny deterministic generator for the fleet simulation.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn never_more_than_max_in_progress_while_devices_start_and_finish_in_varied_order() {
    let mut svc = JobsService::default();
    let out = svc
        .create_job(request("fleet", 100), T0)
        .expect("created")
        .output;
    assert_eq!(notified_things(&out).len(), 10);
    let mut rng = Lcg(7);
    // Things that were told about the job and have not started; running ones
    // with the time they finish.
    let mut told: Vec<String> = notified_things(&out);
    let mut running: Vec<(String, u64)> = Vec::new();
    let mut max_seen = 0;
    let mut now = T0;
    while svc.describe_job("fleet").expect("exists").status == JobStatus::InProgress {
        now += 1;
        assert!(now < T0 + 100_000, "rollout stalls");
        let out = svc.tick(now);
        told.extend(notified_things(&out));
        // Some told devices start (in random order); some also try a thing
        // never told, which must not start anything.
        if !told.is_empty() {
            let thing = told.swap_remove(rng.next(told.len() as u64) as usize);
            let out = start_next(&mut svc, &thing, now);
            let r = reply(&out, "/start-next/accepted");
            assert_eq!(r["execution"]["status"], "IN_PROGRESS");
            running.push((thing, now + 1 + rng.next(40)));
        }
        let stranger = format!("t{:03}", rng.next(100));
        let out = start_next(&mut svc, &stranger, now);
        told.extend(notified_things(&out));
        if reply(&out, "/start-next/accepted")
            .get("execution")
            .is_some()
            && !running.iter().any(|(t, _)| *t == stranger)
        {
            told.retain(|t| *t != stranger);
            running.push((stranger, now + 1 + rng.next(20)));
        }
        // Finish the due ones, in random order.
        while let Some(i) = running.iter().position(|(_, due)| *due <= now) {
            let (thing, _) = running.swap_remove(i);
            let status = if rng.next(10) == 0 {
                "FAILED"
            } else {
                "SUCCEEDED"
            };
            let out = update(&mut svc, &thing, "fleet", json!({"status": status}), now);
            assert!(out.publishes[0].topic.ends_with("/update/accepted"));
            told.extend(notified_things(&out));
        }
        let d = details(&svc, "fleet");
        max_seen = max_seen.max(d.number_of_in_progress_things);
        assert!(d.number_of_in_progress_things <= 10, "{d:?}");
    }
    let d = details(&svc, "fleet");
    assert_eq!(max_seen, 10);
    assert_eq!(
        d.number_of_succeeded_things + d.number_of_failed_things,
        100
    );
    assert_eq!(d.processing_targets, None);
}

#[test]
fn unreleased_executions_stay_queued_whatever_the_device_sends() {
    let mut svc = JobsService::default();
    let mut req = request("job1", 3);
    req.settings.max_in_progress = Some(1);
    svc.create_job(req, T0).expect("created");
    // t001 was not released: invisible, stays QUEUED.
    let out = start_next(&mut svc, "t001", T0 + 1);
    assert!(
        reply(&out, "/start-next/accepted")
            .get("execution")
            .is_none()
    );
    let out = update(
        &mut svc,
        "t001",
        "job1",
        json!({"status": "IN_PROGRESS"}),
        T0 + 1,
    );
    assert_eq!(reply(&out, "/update/rejected")["code"], "ResourceNotFound");
    let d = details(&svc, "job1");
    assert_eq!(d.number_of_queued_things, 3);
    assert_eq!(
        d.processing_targets,
        Some(vec!["t001".to_owned(), "t002".to_owned()])
    );
    // t000 finishing frees the slot: t001 is notified in the same output.
    start_next(&mut svc, "t000", T0 + 2);
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "SUCCEEDED"}),
        T0 + 3,
    );
    assert_eq!(notified_things(&out), ["t001"]);
}

#[test]
fn maximum_per_minute_limits_notifications_over_time() {
    let mut svc = JobsService::default();
    let mut req = request("job1", 25);
    req.settings.max_in_progress = Some(1000);
    req.settings.job_executions_rollout_config = Some(RolloutConfig {
        maximum_per_minute: Some(10),
        exponential_rate: None,
    });
    let out = svc.create_job(req, T0).expect("created").output;
    assert_eq!(notified_things(&out).len(), 10);
    assert_eq!(svc.next_deadline(), Some(T0 + 60));
    assert!(notified_things(&svc.tick(T0 + 59)).is_empty());
    let out = svc.tick(T0 + 60);
    assert_eq!(
        notified_things(&out),
        (10..20).map(|i| format!("t{i:03}")).collect::<Vec<_>>()
    );
    assert_eq!(svc.next_deadline(), Some(T0 + 120));
    assert_eq!(notified_things(&svc.tick(T0 + 120)).len(), 5);
    assert_eq!(svc.next_deadline(), None);
}

#[test]
fn exponential_rate_grows_with_notified_things() {
    let mut svc = JobsService::default();
    let mut req = request("job1", 40);
    req.settings.max_in_progress = Some(1000);
    req.settings.job_executions_rollout_config = Some(RolloutConfig {
        maximum_per_minute: Some(6),
        exponential_rate: Some(ExponentialRate {
            base_rate_per_minute: 2,
            increment_factor: 2.0,
            rate_increase_criteria: RateIncreaseCriteria {
                number_of_notified_things: Some(4),
                number_of_succeeded_things: None,
            },
        }),
    });
    let mut per_minute = vec![notified_things(&svc.create_job(req, T0).expect("ok").output).len()];
    for m in 1..5 {
        per_minute.push(notified_things(&svc.tick(T0 + 60 * m)).len());
    }
    // Minute 0: 2. Minute 1: 2 more make 4 notified, so the rate is 4 at
    // once and 2 more go out (6). Minute 2: 4, then 8 notified -> rate 8,
    // capped by maximumPerMinute at 6. Then 6 a minute.
    assert_eq!(per_minute, [2, 4, 6, 6, 6]);
}

fn run_to_terminal(
    svc: &mut JobsService,
    job: &str,
    thing: &str,
    status: &str,
    now: u64,
) -> Output {
    start_next(svc, thing, now);
    update(svc, thing, job, json!({"status": status}), now)
}

#[test]
fn percentage_abort_waits_for_min_number_of_executed_things() {
    let mut svc = JobsService::default();
    let mut req = request("job1", 30);
    req.settings.abort_config = Some(AbortConfig {
        criteria_list: vec![AbortCriteria {
            failure_type: FailureType::Failed,
            action: AbortAction::Cancel,
            threshold_percentage: 50.0,
            min_number_of_executed_things: 4,
        }],
    });
    svc.create_job(req, T0).expect("created");
    // 3 failures of 3 completed: 100 % but below the minimum.
    for t in ["t000", "t001", "t002"] {
        let out = run_to_terminal(&mut svc, "job1", t, "FAILED", T0 + 1);
        assert!(out.alerts.is_empty());
    }
    assert_eq!(
        svc.describe_job("job1").expect("ok").status,
        JobStatus::InProgress
    );
    // One running device keeps running through the abort.
    start_next(&mut svc, "t004", T0 + 1);
    // 4th completed (a success): 3/4 = 75 % >= 50 %: abort.
    let out = run_to_terminal(&mut svc, "job1", "t003", "SUCCEEDED", T0 + 2);
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].reason_code, ABORT_REASON_CODE);
    let d = svc.describe_job("job1").expect("ok");
    assert_eq!(d.status, JobStatus::Canceled);
    assert_eq!(d.reason_code.as_deref(), Some(ABORT_REASON_CODE));
    assert!(!d.force_canceled);
    assert!(d.comment.expect("set").contains("3 of 4"));
    let p = d.job_process_details;
    assert_eq!(p.number_of_in_progress_things, 1);
    assert_eq!(p.number_of_canceled_things, 30 - 5);
    assert_eq!(p.number_of_queued_things, 0);
    // The IN_PROGRESS device can still finish.
    let out = update(
        &mut svc,
        "t004",
        "job1",
        json!({"status": "SUCCEEDED"}),
        T0 + 3,
    );
    assert!(out.publishes[0].topic.ends_with("/update/accepted"));
    assert_eq!(
        svc.describe_job("job1").expect("ok").status,
        JobStatus::Canceled
    );
}

#[test]
fn absolute_abort_on_the_eleventh_failure_cancels_queued_and_alerts() {
    let mut svc = JobsService::default();
    let mut req = request("job1", 100);
    req.settings.abort_after_failures = Some(10);
    svc.create_job(req, T0).expect("created");
    for i in 0..10 {
        let out = run_to_terminal(&mut svc, "job1", &format!("t{i:03}"), "FAILED", T0 + 1);
        assert!(out.alerts.is_empty(), "failure {i}");
    }
    let out = run_to_terminal(&mut svc, "job1", "t010", "FAILED", T0 + 2);
    assert_eq!(out.alerts.len(), 1);
    let alert = &out.alerts[0];
    assert_eq!(alert.job_id, "job1");
    assert_eq!(alert.at, T0 + 2);
    assert_eq!(alert.job_process_details.number_of_failed_things, 11);
    assert_eq!(alert.job_process_details.number_of_canceled_things, 89);
    // Released QUEUED executions are canceled and their devices told.
    let n = json_of(find(&out, "$aws/things/t011/jobs/notify-next").expect("told"));
    assert_eq!(n, json!({"timestamp": T0 + 2}));
    let e = svc
        .describe_job_execution("job1", "t050", None, T0 + 2)
        .expect("exists");
    assert_eq!(e.status, ExecutionStatus::Canceled);
    assert!(svc.tick(T0 + 100).publishes.is_empty());
}

#[test]
fn cancel_without_force_lets_in_progress_finish() {
    let mut svc = JobsService::default();
    svc.create_job(request("job1", 3), T0).expect("created");
    start_next(&mut svc, "t000", T0 + 1);
    let out = svc
        .cancel_job("job1", false, Some("USER_CANCEL"), Some("stop"), T0 + 2)
        .expect("ok");
    assert!(out.alerts.is_empty());
    let d = svc.describe_job("job1").expect("ok");
    assert_eq!(d.status, JobStatus::Canceled);
    assert_eq!(d.reason_code.as_deref(), Some("USER_CANCEL"));
    assert_eq!(d.job_process_details.number_of_canceled_things, 2);
    assert_eq!(d.job_process_details.number_of_in_progress_things, 1);
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "SUCCEEDED"}),
        T0 + 3,
    );
    assert!(out.publishes[0].topic.ends_with("/update/accepted"));
    let out = update(
        &mut svc,
        "t001",
        "job1",
        json!({"status": "IN_PROGRESS"}),
        T0 + 3,
    );
    assert_eq!(
        reply(&out, "/update/rejected")["code"],
        "InvalidStateTransition"
    );
}

#[test]
fn cancel_with_force_cancels_in_progress_too() {
    let mut svc = JobsService::default();
    svc.create_job(request("job1", 3), T0).expect("created");
    start_next(&mut svc, "t000", T0 + 1);
    let out = svc
        .cancel_job("job1", true, None, None, T0 + 2)
        .expect("ok");
    assert_eq!(
        json_of(find(&out, "$aws/things/t000/jobs/notify-next").expect("told")),
        json!({"timestamp": T0 + 2})
    );
    let d = svc.describe_job("job1").expect("ok");
    assert!(d.force_canceled);
    assert_eq!(d.job_process_details.number_of_canceled_things, 3);
    let e = svc
        .describe_job_execution("job1", "t000", None, T0 + 2)
        .expect("ok");
    assert!(e.force_canceled);
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "SUCCEEDED"}),
        T0 + 3,
    );
    let r = reply(&out, "/update/rejected");
    assert_eq!(r["code"], "InvalidStateTransition");
    assert_eq!(r["executionState"]["status"], "CANCELED");
}

#[test]
fn in_progress_timeout_and_step_timer() {
    let mut svc = JobsService::default();
    let mut req = request("job1", 2);
    req.settings.timeout_config = Some(TimeoutConfig {
        in_progress_timeout_in_minutes: Some(20),
        queued_timeout_in_minutes: None,
    });
    svc.create_job(req, T0).expect("created");
    start_next(&mut svc, "t000", T0);
    start_next(&mut svc, "t001", T0 + 60);
    assert_eq!(svc.next_deadline(), Some(T0 + 1200));
    let e = svc
        .describe_job_execution("job1", "t000", None, T0 + 1000)
        .expect("ok");
    assert_eq!(e.approximate_seconds_before_timed_out, Some(200));
    assert!(svc.tick(T0 + 1199).publishes.is_empty());
    let out = svc.tick(T0 + 1200);
    assert_eq!(
        json_of(find(&out, "$aws/things/t000/jobs/notify-next").expect("told")),
        json!({"timestamp": T0 + 1200})
    );
    let e = svc
        .describe_job_execution("job1", "t000", None, T0 + 1200)
        .expect("ok");
    assert_eq!((e.status, e.version_number), (ExecutionStatus::TimedOut, 3));
    assert_eq!(details(&svc, "job1").number_of_timed_out_things, 1);
    assert_eq!(svc.next_deadline(), Some(T0 + 1260));
    // An update at the deadline finds it TIMED_OUT (timers fire first).
    let out = update(
        &mut svc,
        "t001",
        "job1",
        json!({"status": "SUCCEEDED"}),
        T0 + 1260,
    );
    let r = reply(&out, "/update/rejected");
    assert_eq!(r["code"], "InvalidStateTransition");
    assert_eq!(r["executionState"]["status"], "TIMED_OUT");
    assert_eq!(
        svc.describe_job("job1").expect("ok").status,
        JobStatus::Completed
    );
}

#[test]
fn step_timer_follows_the_devguide_example() {
    // 12:00 start with a 20-minute in-progress timeout; 12:05 step 7 ->
    // 12:12; 12:10 step 5 -> 12:15; 12:13 step 9 -> still 12:20.
    let mut svc = JobsService::default();
    let mut req = request("job1", 1);
    req.settings.timeout_config = Some(TimeoutConfig {
        in_progress_timeout_in_minutes: Some(20),
        queued_timeout_in_minutes: None,
    });
    svc.create_job(req, T0).expect("created");
    start_next(&mut svc, "t000", T0);
    let step = |svc: &mut JobsService, minutes: i64, at: u64| {
        let out = update(
            svc,
            "t000",
            "job1",
            json!({"status": "IN_PROGRESS", "stepTimeoutInMinutes": minutes}),
            at,
        );
        assert!(out.publishes[0].topic.ends_with("/update/accepted"));
        svc.next_deadline()
    };
    assert_eq!(step(&mut svc, 7, T0 + 300), Some(T0 + 720));
    assert_eq!(step(&mut svc, 5, T0 + 600), Some(T0 + 900));
    assert_eq!(step(&mut svc, 9, T0 + 780), Some(T0 + 1200));
    assert_eq!(step(&mut svc, -1, T0 + 800), Some(T0 + 1200));
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "IN_PROGRESS", "stepTimeoutInMinutes": 0}),
        T0 + 800,
    );
    assert_eq!(reply(&out, "/update/rejected")["code"], "InvalidRequest");
}

#[test]
fn retry_creates_execution_number_two() {
    let mut svc = JobsService::default();
    let mut req = request("job1", 1);
    req.settings.timeout_config = Some(TimeoutConfig {
        in_progress_timeout_in_minutes: Some(1),
        queued_timeout_in_minutes: None,
    });
    req.settings.job_executions_retry_config = Some(RetryConfig {
        criteria_list: vec![
            RetryCriteria {
                failure_type: FailureType::Failed,
                number_of_retries: 1,
            },
            RetryCriteria {
                failure_type: FailureType::TimedOut,
                number_of_retries: 1,
            },
        ],
    });
    svc.create_job(req, T0).expect("created");
    let out = run_to_terminal(&mut svc, "job1", "t000", "FAILED", T0 + 1);
    // The retry is released at once: a new QUEUED execution, number 2.
    let n = json_of(find(&out, "$aws/things/t000/jobs/notify-next").expect("told"));
    assert_eq!(n["execution"]["executionNumber"], 2);
    assert_eq!(n["execution"]["status"], "QUEUED");
    let e = svc
        .describe_job_execution("job1", "t000", None, T0 + 1)
        .expect("ok");
    assert_eq!((e.execution_number, e.status), (2, ExecutionStatus::Queued));
    let first = svc
        .describe_job_execution("job1", "t000", Some(1), T0 + 1)
        .expect("ok");
    assert_eq!(first.status, ExecutionStatus::Failed);
    // The old number cannot be updated.
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "IN_PROGRESS", "executionNumber": 1}),
        T0 + 2,
    );
    assert_eq!(
        reply(&out, "/update/rejected")["code"],
        "InvalidStateTransition"
    );
    // Attempt 2 times out: retried as number 3; attempt 3 fails: no retry left.
    start_next(&mut svc, "t000", T0 + 2);
    svc.tick(T0 + 62);
    let list = svc.list_job_executions_for_job("job1", None).expect("ok");
    assert_eq!(list[0].job_execution_summary.execution_number, 3);
    assert_eq!(list[0].job_execution_summary.retry_attempt, 2);
    run_to_terminal(&mut svc, "job1", "t000", "FAILED", T0 + 63);
    let d = svc.describe_job("job1").expect("ok");
    assert_eq!(d.status, JobStatus::Completed);
    assert_eq!(d.job_process_details.number_of_failed_things, 1);
}

#[test]
fn rejected_updates_carry_aws_error_codes() {
    let mut svc = JobsService::default();
    svc.create_job(request("job1", 1), T0).expect("created");
    start_next(&mut svc, "t000", T0 + 1);
    // expectedVersion mismatch.
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "IN_PROGRESS", "expectedVersion": 7, "clientToken": "x"}),
        T0 + 2,
    );
    assert_eq!(out.publishes.len(), 1);
    assert_eq!(
        out.publishes[0].topic,
        "$aws/things/t000/jobs/job1/update/rejected"
    );
    let r = json_of(&out.publishes[0]);
    assert_eq!(r["code"], "VersionMismatch");
    assert_eq!(r["clientToken"], "x");
    assert_eq!(r["timestamp"], T0 + 2);
    assert_eq!(
        r["executionState"],
        json!({"status": "IN_PROGRESS", "versionNumber": 2})
    );
    // Unknown job.
    let out = update(
        &mut svc,
        "t000",
        "nojob",
        json!({"status": "SUCCEEDED"}),
        T0 + 2,
    );
    let r = reply(&out, "/update/rejected");
    assert_eq!(r["code"], "ResourceNotFound");
    assert!(r.get("executionState").is_none());
    let out = svc.handle("$aws/things/t000/jobs/nojob/get", b"{}", T0 + 2);
    assert_eq!(reply(&out, "/get/rejected")["code"], "ResourceNotFound");
    // Malformed.
    let out = svc.handle("$aws/things/t000/jobs/job1/update", b"{nope", T0 + 2);
    assert_eq!(reply(&out, "/update/rejected")["code"], "InvalidJson");
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"statusDetails": {"a": "b"}}),
        T0 + 2,
    );
    assert_eq!(reply(&out, "/update/rejected")["code"], "InvalidRequest");
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "QUEUED"}),
        T0 + 2,
    );
    assert_eq!(reply(&out, "/update/rejected")["code"], "InvalidRequest");
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "IN_PROGRESS", "statusDetails": {"bad key": "v"}}),
        T0 + 2,
    );
    assert_eq!(reply(&out, "/update/rejected")["code"], "InvalidRequest");
    let out = svc.handle("$aws/things/t000/jobs/get", b"[1]", T0 + 2);
    assert_eq!(reply(&out, "/jobs/get/rejected")["code"], "InvalidRequest");
    // Terminal state, then any change.
    update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "SUCCEEDED"}),
        T0 + 3,
    );
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "IN_PROGRESS"}),
        T0 + 4,
    );
    let r = reply(&out, "/update/rejected");
    assert_eq!(r["code"], "InvalidStateTransition");
    assert_eq!(
        r["executionState"],
        json!({"status": "SUCCEEDED", "versionNumber": 3})
    );
    // Describe over MQTT still works on the terminal execution.
    let out = svc.handle(
        "$aws/things/t000/jobs/job1/get",
        br#"{"includeJobDocument":false}"#,
        T0 + 4,
    );
    let e = &reply(&out, "/get/accepted")["execution"];
    assert_eq!(e["status"], "SUCCEEDED");
    assert!(e.get("jobDocument").is_none());
    // Replies and notifications are not requests.
    assert!(
        svc.handle("$aws/things/t000/jobs/job1/update/accepted", b"{}", T0 + 5)
            .publishes
            .is_empty()
    );
    assert!(
        svc.handle("$aws/things/t000/jobs/notify-next", b"{}", T0 + 5)
            .publishes
            .is_empty()
    );
}

#[test]
fn describe_next_over_mqtt() {
    let mut svc = JobsService::default();
    svc.create_job(request("job1", 1), T0).expect("created");
    svc.create_job(request("job2", 1), T0 + 1).expect("created");
    let out = svc.handle(
        "$aws/things/t000/jobs/$next/get",
        br#"{"clientToken":"n"}"#,
        T0 + 2,
    );
    assert_eq!(reply(&out, "/get/accepted")["execution"]["jobId"], "job1");
    // job2 starting before job1 puts it first: notify-next, not notify.
    let out = update(
        &mut svc,
        "t000",
        "job2",
        json!({"status": "IN_PROGRESS"}),
        T0 + 3,
    );
    assert!(find(&out, "$aws/things/t000/jobs/notify").is_none());
    let n = json_of(find(&out, "$aws/things/t000/jobs/notify-next").expect("told"));
    assert_eq!(n["execution"]["jobId"], "job2");
    let listed = svc
        .list_job_executions_for_job("job2", Some(ExecutionStatus::InProgress))
        .expect("ok");
    assert_eq!(listed.len(), 1);
}

#[test]
fn identical_inputs_give_identical_outputs() {
    let run = || {
        let mut svc = JobsService::default();
        let mut all = svc
            .create_job(request("job1", 20), T0)
            .expect("ok")
            .output
            .publishes;
        for i in 0..20 {
            let t = format!("t{i:03}");
            all.extend(
                run_to_terminal(
                    &mut svc,
                    "job1",
                    &t,
                    if i % 3 == 0 { "FAILED" } else { "SUCCEEDED" },
                    T0 + i,
                )
                .publishes,
            );
        }
        all
    };
    assert_eq!(run(), run());
}

proptest! {
    #[test]
    fn random_messages_never_panic(
        msgs in prop::collection::vec(
            (0usize..6, prop::collection::vec(any::<u8>(), 0..64), 0u64..200),
            1..40,
        )
    ) {
        let mut svc = JobsService::default();
        let mut req = request("job1", 3);
        req.settings.timeout_config = Some(TimeoutConfig {
            in_progress_timeout_in_minutes: Some(1),
            queued_timeout_in_minutes: None,
        });
        req.settings.job_executions_retry_config = Some(RetryConfig { criteria_list: vec![RetryCriteria { failure_type: FailureType::All, number_of_retries: 2 }] });
        req.settings.abort_after_failures = Some(1);
        req.settings.max_in_progress = Some(2);
        svc.create_job(req, T0).expect("created");
        let topics = [
            "$aws/things/t000/jobs/get",
            "$aws/things/t001/jobs/start-next",
            "$aws/things/t000/jobs/job1/update",
            "$aws/things/t002/jobs/$next/get",
            "$aws/things/t001/jobs/job1/get",
            "$aws/things/t000/jobs/job1/update",
        ];
        let mut now = T0;
        for (i, bytes, dt) in msgs {
            now += dt;
            // Half the time, wrap the bytes into a plausible request.
            let payload = if bytes.first().is_some_and(|b| b % 2 == 0) {
                let status = ["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "QUEUED"][bytes.len() % 5];
                json!({"status": status, "expectedVersion": bytes.len() % 4,
                    "stepTimeoutInMinutes": (bytes.len() as i64 % 3) - 1}).to_string().into_bytes()
            } else {
                bytes
            };
            let out = svc.handle(topics[i], &payload, now);
            for p in &out.publishes {
                let _: Value = serde_json::from_slice(&p.payload).expect("JSON");
            }
            svc.tick(now);
            let d = svc.describe_job("job1").expect("exists").job_process_details;
            prop_assert!(d.number_of_in_progress_things <= 2);
            let total = d.number_of_queued_things + d.number_of_in_progress_things
                + d.number_of_succeeded_things + d.number_of_failed_things
                + d.number_of_rejected_things + d.number_of_timed_out_things
                + d.number_of_canceled_things;
            prop_assert_eq!(total, 3);
        }
    }
}

fn changes(out: &Output) -> Vec<(String, ExecutionStatus, ExecutionStatus)> {
    out.executions
        .iter()
        .map(|e| (e.thing_name.clone(), e.from, e.status))
        .collect()
}

#[test]
fn every_status_change_is_reported_once_as_an_execution_event() {
    use ExecutionStatus::{Canceled, Failed, InProgress, Queued, Succeeded, TimedOut};
    let mut svc = JobsService::default();
    let mut req = request("job1", 4);
    req.settings.timeout_config = Some(TimeoutConfig {
        in_progress_timeout_in_minutes: Some(1),
        queued_timeout_in_minutes: None,
    });
    req.settings.max_in_progress = Some(3);
    // Creation releases but changes no status.
    assert!(
        svc.create_job(req, T0)
            .expect("created")
            .output
            .executions
            .is_empty()
    );
    let out = start_next(&mut svc, "t000", T0);
    assert_eq!(changes(&out), [("t000".into(), Queued, InProgress)]);
    assert_eq!(out.executions[0].job_id, "job1");
    assert_eq!(out.executions[0].execution_number, 1);
    assert_eq!(out.executions[0].at, T0);
    // A progress update is no change of status.
    let body = json!({"status": "IN_PROGRESS", "statusDetails": {"step": "downloading"}});
    assert!(
        update(&mut svc, "t000", "job1", body, T0 + 1)
            .executions
            .is_empty()
    );
    let body = json!({"status": "FAILED", "statusDetails": {"reason": "hash mismatch"}});
    let out = update(&mut svc, "t000", "job1", body, T0 + 2);
    assert_eq!(changes(&out), [("t000".into(), InProgress, Failed)]);
    assert_eq!(out.executions[0].status_details["reason"], "hash mismatch");
    // Straight from QUEUED to SUCCEEDED.
    let out = update(
        &mut svc,
        "t001",
        "job1",
        json!({"status": "SUCCEEDED"}),
        T0 + 3,
    );
    assert_eq!(changes(&out), [("t001".into(), Queued, Succeeded)]);
    start_next(&mut svc, "t002", T0 + 4);
    let out = svc.tick(T0 + 64);
    assert_eq!(changes(&out), [("t002".into(), InProgress, TimedOut)]);
    // Canceling reports every QUEUED execution, released or not.
    let out = svc
        .cancel_job("job1", false, None, None, T0 + 70)
        .expect("ok");
    assert_eq!(changes(&out), [("t003".into(), Queued, Canceled)]);
    assert!(svc.tick(T0 + 100).executions.is_empty());
}

fn with_queued_timeout(mut req: CreateJobRequest, minutes: u64) -> CreateJobRequest {
    req.settings.timeout_config = Some(TimeoutConfig {
        in_progress_timeout_in_minutes: None,
        queued_timeout_in_minutes: Some(minutes),
    });
    req
}

#[test]
fn queued_timeout_fires_at_exactly_its_time_and_frees_the_slot() {
    use ExecutionStatus::{InProgress, Queued, TimedOut};
    let mut svc = JobsService::default();
    let mut req = with_queued_timeout(request("job1", 2), 5);
    req.settings.max_in_progress = Some(1);
    svc.create_job(req, T0).expect("created");
    // t000 is released at once and its timer runs from then; t001 waits
    // for the slot, so it has no timer yet.
    assert_eq!(svc.next_deadline(), Some(T0 + 300));
    let e = svc
        .describe_job_execution("job1", "t000", None, T0 + 100)
        .expect("ok");
    assert_eq!(e.status, Queued);
    assert_eq!(e.approximate_seconds_before_timed_out, Some(200));
    let e = svc
        .describe_job_execution("job1", "t001", None, T0 + 100)
        .expect("ok");
    assert_eq!(e.approximate_seconds_before_timed_out, None);

    // One second early: nothing.
    let out = svc.tick(T0 + 299);
    assert!(out.publishes.is_empty() && out.executions.is_empty());
    // On the second: TIMED_OUT, its device told the list is empty, and the
    // freed slot goes to t001 at once.
    let out = svc.tick(T0 + 300);
    assert_eq!(changes(&out), [("t000".into(), Queued, TimedOut)]);
    assert_eq!(
        json_of(find(&out, "$aws/things/t000/jobs/notify-next").expect("told")),
        json!({"timestamp": T0 + 300})
    );
    assert_eq!(notified_things(&out), ["t001"]);
    let e = svc
        .describe_job_execution("job1", "t000", None, T0 + 300)
        .expect("ok");
    assert_eq!((e.status, e.version_number), (TimedOut, 2));
    assert_eq!(e.started_at, None);
    let d = details(&svc, "job1");
    assert_eq!(
        (d.number_of_timed_out_things, d.number_of_queued_things),
        (1, 1)
    );
    // t001's timer starts at its own release.
    assert_eq!(svc.next_deadline(), Some(T0 + 600));

    // t001 starts one second before its deadline: the queued timer stops
    // and, with no in-progress timeout, nothing times it out later.
    let out = start_next(&mut svc, "t001", T0 + 599);
    assert_eq!(changes(&out), [("t001".into(), Queued, InProgress)]);
    assert_eq!(svc.next_deadline(), None);
    assert!(svc.tick(T0 + 600).executions.is_empty());
    assert!(svc.tick(T0 + 100_000).executions.is_empty());
    update(
        &mut svc,
        "t001",
        "job1",
        json!({"status": "SUCCEEDED"}),
        T0 + 100_001,
    );
    let d = svc.describe_job("job1").expect("ok");
    assert_eq!(d.status, JobStatus::Completed);
    assert_eq!(d.completed_at, Some(T0 + 100_001));
    assert_eq!(
        (
            d.job_process_details.number_of_succeeded_things,
            d.job_process_details.number_of_timed_out_things
        ),
        (1, 1)
    );
}

#[test]
fn a_start_at_the_queued_deadline_is_too_late() {
    let mut svc = JobsService::default();
    svc.create_job(with_queued_timeout(request("job1", 1), 1), T0)
        .expect("created");
    // Timers fire before the request, so there is nothing left to start.
    let out = start_next(&mut svc, "t000", T0 + 60);
    assert_eq!(
        changes(&out),
        [(
            "t000".into(),
            ExecutionStatus::Queued,
            ExecutionStatus::TimedOut
        )]
    );
    assert!(
        reply(&out, "/start-next/accepted")
            .get("execution")
            .is_none()
    );
    let out = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "IN_PROGRESS"}),
        T0 + 61,
    );
    assert_eq!(
        reply(&out, "/update/rejected")["executionState"]["status"],
        "TIMED_OUT"
    );
    assert_eq!(
        svc.describe_job("job1").expect("ok").status,
        JobStatus::Completed
    );
}

#[test]
fn an_in_progress_timeout_still_applies_after_a_timely_start() {
    let mut svc = JobsService::default();
    let mut req = request("job1", 1);
    req.settings.timeout_config = Some(TimeoutConfig {
        in_progress_timeout_in_minutes: Some(10),
        queued_timeout_in_minutes: Some(2),
    });
    svc.create_job(req, T0).expect("created");
    start_next(&mut svc, "t000", T0 + 119);
    // The in-progress timer, from the start, not the queued one.
    assert_eq!(svc.next_deadline(), Some(T0 + 119 + 600));
    assert!(svc.tick(T0 + 120).executions.is_empty());
    let out = svc.tick(T0 + 719);
    assert_eq!(
        changes(&out),
        [(
            "t000".into(),
            ExecutionStatus::InProgress,
            ExecutionStatus::TimedOut
        )]
    );
}

#[test]
fn queued_timeouts_count_for_abort_and_are_retried_as_timed_out() {
    // Abort: TIMED_OUT is a failure for the criteria, as AWS counts it.
    let mut svc = JobsService::default();
    let mut req = with_queued_timeout(request("job1", 4), 1);
    req.settings.max_in_progress = Some(2);
    req.settings.abort_config = Some(AbortConfig {
        criteria_list: vec![AbortCriteria {
            failure_type: FailureType::TimedOut,
            action: AbortAction::Cancel,
            threshold_percentage: 60.0,
            min_number_of_executed_things: 2,
        }],
    });
    svc.create_job(req, T0).expect("created");
    run_to_terminal(&mut svc, "job1", "t000", "SUCCEEDED", T0 + 1);
    // t001 (released at T0) and t002 (released at T0 + 1) stay silent.
    let out = svc.tick(T0 + 60);
    assert!(
        out.alerts.is_empty(),
        "1 of 2 completed is 50 % < 60 %: {out:?}"
    );
    let out = svc.tick(T0 + 61);
    // t002 timed out: 2 of 3 completed TIMED_OUT, 67 % >= 60 %.
    assert_eq!(out.alerts.len(), 1);
    assert!(out.alerts[0].comment.contains("TIMED_OUT"));
    let d = svc.describe_job("job1").expect("ok");
    assert_eq!(d.status, JobStatus::Canceled);
    let p = d.job_process_details;
    assert_eq!(
        (
            p.number_of_timed_out_things,
            p.number_of_canceled_things,
            p.number_of_succeeded_things
        ),
        (2, 1, 1)
    );

    // Retry: the queued timeout alone is a timeout config for TIMED_OUT
    // retries; each attempt gets its own timer from its release.
    let mut svc = JobsService::default();
    let mut req = with_queued_timeout(request("job2", 1), 1);
    req.settings.job_executions_retry_config = Some(RetryConfig {
        criteria_list: vec![RetryCriteria {
            failure_type: FailureType::TimedOut,
            number_of_retries: 1,
        }],
    });
    svc.create_job(req, T0).expect("created");
    let out = svc.tick(T0 + 60);
    let n = json_of(find(&out, "$aws/things/t000/jobs/notify-next").expect("told"));
    assert_eq!(n["execution"]["executionNumber"], 2);
    assert_eq!(svc.next_deadline(), Some(T0 + 120));
    svc.tick(T0 + 120);
    let d = svc.describe_job("job2").expect("ok");
    assert_eq!(d.status, JobStatus::Completed);
    let e = svc
        .describe_job_execution("job2", "t000", None, T0 + 120)
        .expect("ok");
    assert_eq!(
        (e.execution_number, e.status),
        (2, ExecutionStatus::TimedOut)
    );
}

#[test]
fn without_a_queued_timeout_a_silent_device_holds_its_slot_for_ever() {
    // AWS's behaviour, unchanged: nothing times a QUEUED execution out.
    let mut svc = JobsService::default();
    let mut req = request("job1", 2);
    req.settings.max_in_progress = Some(1);
    req.settings.timeout_config = Some(TimeoutConfig {
        in_progress_timeout_in_minutes: Some(1),
        queued_timeout_in_minutes: None,
    });
    svc.create_job(req, T0).expect("created");
    assert_eq!(svc.next_deadline(), None);
    let out = svc.tick(T0 + 7 * 24 * 3600);
    assert!(out.publishes.is_empty() && out.executions.is_empty());
    let d = svc.describe_job("job1").expect("ok");
    assert_eq!(d.status, JobStatus::InProgress);
    assert_eq!(
        d.job_process_details.processing_targets,
        Some(vec!["t001".to_owned()])
    );
    let e = svc
        .describe_job_execution("job1", "t000", None, T0 + 100)
        .expect("ok");
    assert_eq!(
        (e.status, e.approximate_seconds_before_timed_out),
        (ExecutionStatus::Queued, None)
    );
}

#[test]
fn queued_timeout_is_read_from_create_job_json_and_range_checked() {
    let body = json!({"jobId": "job1", "targets": ["t000"], "document": {},
        "timeoutConfig": {"queuedTimeoutInMinutes": 30}});
    let req: CreateJobRequest = serde_json::from_value(body).expect("AWS shape");
    assert_eq!(
        req.settings.timeout_config,
        Some(TimeoutConfig {
            in_progress_timeout_in_minutes: None,
            queued_timeout_in_minutes: Some(30),
        })
    );
    let mut svc = JobsService::default();
    svc.create_job(req, T0).expect("created");
    assert_eq!(
        svc.describe_job("job1").expect("ok").to_json()["timeoutConfig"],
        json!({"queuedTimeoutInMinutes": 30})
    );
    for bad in [0, 10_081] {
        let err = svc
            .create_job(with_queued_timeout(request("job2", 1), bad), T0)
            .unwrap_err();
        assert_eq!(
            err,
            JobsError::InvalidRequest(format!(
                "`queuedTimeoutInMinutes` must be from 1 to 10080, got {bad}"
            ))
        );
    }
}

/// Overflow-checked timers: executions started near the end of u64 seconds
/// (a huge `epoch_unix_s`, a long run) get deadlines that saturate instead of
/// wrapping round to a time already passed (which timed them out at once).
#[test]
fn timer_deadlines_near_the_end_of_time_saturate() {
    let end = u64::MAX - 30;
    let mut svc = JobsService::default();
    let mut req = request("job1", 2);
    req.settings.timeout_config = Some(TimeoutConfig {
        in_progress_timeout_in_minutes: Some(20),
        queued_timeout_in_minutes: Some(10),
    });
    svc.create_job(req, end).expect("created");
    // Released at `end`: the queued timer would lie past the end of time.
    assert_eq!(svc.next_deadline(), Some(u64::MAX));
    let out = svc.handle(
        "$aws/things/t000/jobs/start-next",
        br#"{"clientToken":"c1","stepTimeoutInMinutes":5}"#,
        end + 10,
    );
    assert!(find(&out, "$aws/things/t000/jobs/start-next/accepted").is_some());
    // Nothing is due a second later: no timer wrapped round.
    let out = svc.tick(end + 11);
    assert!(out.executions.is_empty(), "{:?}", out.executions);
    let e = svc
        .describe_job_execution("job1", "t000", None, end + 11)
        .expect("ok");
    assert_eq!(e.status, ExecutionStatus::InProgress);
    assert_eq!(
        e.approximate_seconds_before_timed_out,
        Some(u64::MAX - (end + 11))
    );
}

/// Thing ARNs to names; anything else refused (the registry's part).
fn thing_arns(arns: &[String]) -> Result<Vec<String>, JobsError> {
    arns.iter()
        .map(|arn| {
            arn.split_once(":thing/")
                .map(|(_, name)| name.to_owned())
                .ok_or_else(|| JobsError::InvalidRequest(format!("{arn} is not a thing ARN")))
        })
        .collect()
}

#[test]
fn create_job_bodies_read_as_aws_sends_them() {
    let body = json!({
        "targets": ["arn:aws:iot:us-east-1:123456789012:thing/t1", "arn:aws:iot:us-east-1:123456789012:thing/t2"],
        "document": "{\"operation\":\"ota\"}",
        "targetSelection": "SNAPSHOT",
        "description": "d",
        "abortAfterFailures": 2
    });
    let r = CreateJobRequest::from_aws_body("job1", &body, thing_arns).unwrap();
    assert_eq!(r.job_id, "job1");
    assert_eq!(r.targets, ["t1", "t2"]);
    assert_eq!(r.document, json!({"operation": "ota"}));
    assert_eq!(r.settings.abort_after_failures, Some(2));
    for (bad, why) in [
        (json!([]), "object"),
        (json!({"document": "{}"}), "targets"),
        (
            json!({"targets": ["arn:aws:iot:us-east-1:1:thinggroup/g"], "document": "{}"}),
            "not a thing ARN",
        ),
        (json!({"targets": [7], "document": "{}"}), "not an ARN"),
        (
            json!({"targets": ["arn:aws:iot:us-east-1:1:thing/t"]}),
            "document is required",
        ),
        (
            json!({"targets": ["arn:aws:iot:us-east-1:1:thing/t"], "document": "{"}),
            "not JSON",
        ),
        (
            json!({"targets": ["arn:aws:iot:us-east-1:1:thing/t"], "document": {}}),
            "must be a string",
        ),
        (
            json!({"targets": ["arn:aws:iot:us-east-1:1:thing/t"], "document": "{}", "targetSelection": "CONTINUOUS"}),
            "SNAPSHOT",
        ),
    ] {
        let e = CreateJobRequest::from_aws_body("job1", &bad, thing_arns).unwrap_err();
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
}

#[test]
fn a_snapshot_restores_jobs_executions_and_timers() {
    let mut svc = JobsService::default();
    svc.create_job(request("job1", 3), T0).expect("created");
    start_next(&mut svc, "t000", T0 + 1);
    let mut back = JobsService::new(svc.config().clone());
    back.restore(svc.snapshot()).expect("restores");
    assert_eq!(back.describe_job("job1"), svc.describe_job("job1"));
    assert_eq!(back.next_deadline(), svc.next_deadline());
    for t in ["t000", "t001", "t002"] {
        assert_eq!(
            back.describe_job_execution("job1", t, None, T0 + 2),
            svc.describe_job_execution("job1", t, None, T0 + 2)
        );
    }
    // The restored service goes on as the original would.
    let a = update(
        &mut svc,
        "t000",
        "job1",
        json!({"status": "SUCCEEDED"}),
        T0 + 3,
    );
    let b = update(
        &mut back,
        "t000",
        "job1",
        json!({"status": "SUCCEEDED"}),
        T0 + 3,
    );
    assert_eq!(a.publishes, b.publishes);
    assert!(back.restore(json!({"jobs": 7})).is_err());
}

#[test]
fn job_execution_events_are_published_only_when_enabled_and_only_for_ends() {
    let mut svc = JobsService::default();
    svc.create_job(request("job1", 2), T0).expect("created");
    let events = |out: &Output| -> Vec<(String, Value)> {
        out.publishes
            .iter()
            .filter(|p| p.topic.starts_with(JOB_EXECUTION_EVENTS))
            .map(|p| (p.topic.clone(), json_of(p)))
            .collect()
    };
    // Off by default (as on AWS): nothing on the event topics.
    start_next(&mut svc, "t000", T0);
    let body = json!({"status": "SUCCEEDED", "statusDetails": {"firmware": "2.0.0"}});
    assert!(events(&update(&mut svc, "t000", "job1", body, T0 + 1)).is_empty());
    svc.set_job_execution_events(true);
    assert!(svc.job_execution_events());
    // A start is no end: no event.
    assert!(events(&start_next(&mut svc, "t001", T0 + 2)).is_empty());
    let body = json!({"status": "FAILED", "statusDetails": {"reason": "hash mismatch"}});
    let got = events(&update(&mut svc, "t001", "job1", body, T0 + 3));
    assert_eq!(got.len(), 1);
    let (topic, event) = &got[0];
    assert_eq!(topic, "$aws/events/jobExecution/job1/failed");
    assert_eq!(event["eventType"], "JOB_EXECUTION");
    assert_eq!(event["operation"], "failed");
    assert_eq!(event["status"], "FAILED");
    assert_eq!(event["jobId"], "job1");
    assert_eq!(event["timestamp"], T0 + 3);
    assert_eq!(event["statusDetails"]["reason"], "hash mismatch");
    let arn = event["thingArn"].as_str().unwrap();
    assert!(
        arn.starts_with("arn:aws:iot:") && arn.ends_with(":thing/t001"),
        "{arn}"
    );
    assert_eq!(event["eventId"].as_str().unwrap().len(), 36);
    // The setting is state: it survives a snapshot.
    let mut restored = JobsService::default();
    restored.restore(svc.snapshot()).unwrap();
    assert!(restored.job_execution_events());
}
