//! The cloud twin on the broker for one run: the Device Shadow service answers
//! `$aws/things/.../shadow/...` requests, the Jobs service answers
//! `$aws/things/.../jobs/...` requests and runs rollouts on its own deadlines,
//! the firmware registry serves images, and the rules pipeline turns matching
//! messages into records in the run's SQLite store. Job aborts raise alerts
//! (the SNS stand-in): kept here and traced on `/alerts`.
//!
//! It is a task on the world's executor with a client of its own on an ideal
//! link ("in the cloud"). It sees every message the broker receives, in
//! arrival order, at the instant it arrives, so its answers are as
//! deterministic as the rest of the run. Cloud time for shadows and records is
//! `epoch + virtual time`: nothing reads the wall clock.
//!
//! Every job execution status change is traced on [`JOBS_CHANNEL`] (the
//! engine's [`twinrig_cloud::jobs::ExecutionEvent`] as JSON); the most
//! executions IN_PROGRESS at once is measured from those events
//! ([`max_in_progress_from_events`]), the same way on a live run and on a
//! trace read back from a file.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;
use twinrig_cloud::jobs::{Alert, CreateJobRequest, JobsError, JobsService, Output};
use twinrig_cloud::records::RecordStore;
use twinrig_cloud::registry::Registry;
use twinrig_cloud::rules::pipeline::Pipeline;
use twinrig_cloud::shadow::ShadowService;
use twinrig_hal::{MqttClient, QoS};
use twinrig_sim::net::{LinkParams, Network};
use twinrig_sim::trace::channels;
use twinrig_sim::{MILLIS, SECONDS, SimHandle};

/// The cloud's own MQTT client id (device ids may not take it).
pub const CLOUD_CLIENT: &str = crate::scenario::CLOUD_CLIENT_ID;

/// Trace channel for records written by the rules pipeline.
pub const RECORDS_CHANNEL: &str = "/records";

/// Trace channel for alerts (job aborts).
pub const ALERTS_CHANNEL: &str = "/alerts";

/// Trace channel for job execution events (every status change).
pub const JOBS_CHANNEL: &str = "/jobs";

/// The most executions of `job` IN_PROGRESS at one moment, replaying job
/// execution events (as traced on [`JOBS_CHANNEL`]) in order. Counted after
/// every event, so changes made at the same instant never hide a peak.
/// Events of other jobs and records that are not events are skipped.
pub fn max_in_progress_from_events<'a>(
    events: impl IntoIterator<Item = &'a serde_json::Value>,
    job: &str,
) -> u64 {
    let mut running = std::collections::BTreeSet::new();
    let mut max = 0u64;
    for e in events {
        if e.get("jobId").and_then(|j| j.as_str()) != Some(job) {
            continue;
        }
        let (Some(thing), Some(n)) = (
            e.get("thingName").and_then(|t| t.as_str()),
            e.get("executionNumber").and_then(|n| n.as_u64()),
        ) else {
            continue;
        };
        if e.get("status").and_then(|s| s.as_str()) == Some("IN_PROGRESS") {
            running.insert((thing.to_owned(), n));
        } else {
            running.remove(&(thing.to_owned(), n));
        }
        max = max.max(running.len() as u64);
    }
    max
}

/// The cloud services of one run.
pub struct CloudTwin {
    handle: SimHandle,
    epoch_s: u64,
    shadows: RefCell<ShadowService>,
    pipeline: Option<Pipeline>,
    store: RefCell<RecordStore>,
    jobs: RefCell<JobsService>,
    registry: RefCell<Registry>,
    alerts: RefCell<Vec<Alert>>,
    /// Job execution events as traced on [`JOBS_CHANNEL`], in order.
    job_events: RefCell<Vec<serde_json::Value>>,
    client: RefCell<Option<twinrig_sim::net::SimMqttClient>>,
}

/// Why the cloud twin could not start or serve a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudTwinError {
    /// The in-memory records store did not open.
    #[error("records store: {0}")]
    Store(String),
    /// The shadow service refused an update.
    #[error("{0}")]
    Shadow(String),
    /// The twin's MQTT client could not connect.
    #[error("{0}")]
    Connect(String),
}

impl From<CloudTwinError> for String {
    fn from(e: CloudTwinError) -> String {
        e.to_string()
    }
}

impl CloudTwin {
    /// Cloud services with `pipeline` (None: no rules) and an in-memory store;
    /// virtual time 0 is `epoch_s` (unix seconds).
    pub fn new(
        handle: &SimHandle,
        pipeline: Option<Pipeline>,
        epoch_s: u64,
    ) -> Result<Rc<CloudTwin>, CloudTwinError> {
        let store =
            RecordStore::open_in_memory().map_err(|e| CloudTwinError::Store(e.to_string()))?;
        Ok(Rc::new(CloudTwin {
            handle: handle.clone(),
            epoch_s,
            shadows: RefCell::new(ShadowService::default()),
            pipeline,
            store: RefCell::new(store),
            jobs: RefCell::new(JobsService::default()),
            // The signing key only has to be stable per run: derive it from the seed.
            registry: RefCell::new(Registry::new(&handle.seed().to_le_bytes())),
            alerts: RefCell::new(Vec::new()),
            job_events: RefCell::new(Vec::new()),
            client: RefCell::new(None),
        }))
    }

    /// Unix seconds now.
    pub fn now_s(&self) -> u64 {
        self.epoch_s.saturating_add(self.handle.now() / SECONDS)
    }

    fn now_ms(&self) -> u64 {
        self.epoch_s
            .saturating_mul(1000)
            .saturating_add(self.handle.now() / MILLIS)
    }

    /// The pipeline, if rules are configured.
    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.as_ref()
    }

    /// The records store.
    pub fn store(&self) -> std::cell::Ref<'_, RecordStore> {
        self.store.borrow()
    }

    /// Keeps records in `store` from now on (`serve cloud --state`: a file).
    pub fn use_store(&self, store: RecordStore) {
        *self.store.borrow_mut() = store;
    }

    /// The shadow service (for expectations on documents).
    pub fn shadows(&self) -> std::cell::Ref<'_, ShadowService> {
        self.shadows.borrow()
    }

    /// The shadow service, for service-side updates made before the run
    /// starts (nothing is published: no device is subscribed yet).
    pub fn shadows_mut(&self) -> std::cell::RefMut<'_, ShadowService> {
        self.shadows.borrow_mut()
    }

    /// UpdateThingShadow (the HTTP API an agent calls) on a classic shadow at
    /// the current time; publishes what an MQTT update would (accepted,
    /// delta, documents).
    pub async fn update_shadow(&self, thing: &str, payload: &[u8]) -> Result<(), CloudTwinError> {
        self.update_shadow_http(thing, None, payload)
            .await
            .map(|_| ())
            .map_err(|e| CloudTwinError::Shadow(format!("{e:?}")))
    }

    /// UpdateThingShadow on a classic or named shadow, as the HTTP API
    /// answers it: the accepted document, or the service's refusal (nothing
    /// changes then). Publishes what an MQTT update would.
    pub async fn update_shadow_http(
        &self,
        thing: &str,
        shadow_name: Option<&str>,
        payload: &[u8],
    ) -> Result<serde_json::Value, twinrig_cloud::shadow::ShadowError> {
        let response = self.shadows.borrow_mut().update_from_service(
            thing,
            shadow_name,
            payload,
            self.now_s(),
        )?;
        let client = self.client.borrow().clone();
        if let Some(client) = client {
            for p in response.publishes {
                self.publish(&client, &p.topic, &p.payload).await;
            }
        }
        Ok(response.body)
    }

    /// The Jobs service (control plane for steps and expectations).
    pub fn jobs(&self) -> &RefCell<JobsService> {
        &self.jobs
    }

    /// The firmware registry.
    pub fn registry(&self) -> &RefCell<Registry> {
        &self.registry
    }

    /// Alerts raised so far.
    pub fn alerts(&self) -> std::cell::Ref<'_, Vec<Alert>> {
        self.alerts.borrow()
    }

    /// CreateJob at the current time; publishes what it produced.
    pub async fn create_job(&self, request: CreateJobRequest) -> Result<(), JobsError> {
        let response = self.jobs.borrow_mut().create_job(request, self.now_s())?;
        self.emit(response.output).await;
        Ok(())
    }

    /// The most executions of `job` IN_PROGRESS at one moment, measured from
    /// the job execution events traced so far; `None` for an unknown job.
    pub fn max_in_progress_seen(&self, job: &str) -> Option<u64> {
        self.jobs.borrow().describe_job(job).ok()?;
        Some(max_in_progress_from_events(
            self.job_events.borrow().iter(),
            job,
        ))
    }

    /// Job execution events traced so far, in order.
    pub fn job_events(&self) -> std::cell::Ref<'_, Vec<serde_json::Value>> {
        self.job_events.borrow()
    }

    /// Publishes what a Jobs call produced, traces its execution events and
    /// keeps its alerts.
    pub async fn emit(&self, out: Output) {
        for e in out.executions {
            let value = serde_json::to_value(&e).unwrap_or_default();
            self.handle.trace(JOBS_CHANNEL, value.clone());
            self.job_events.borrow_mut().push(value);
        }
        for a in out.alerts {
            let value = serde_json::to_value(&a).unwrap_or_default();
            self.handle.trace(ALERTS_CHANNEL, value);
            self.alerts.borrow_mut().push(a);
        }
        let client = self.client.borrow().clone();
        let Some(client) = client else { return };
        for p in out.publishes {
            self.publish(&client, &p.topic, &p.payload).await;
        }
    }

    async fn publish(&self, client: &twinrig_sim::net::SimMqttClient, topic: &str, payload: &[u8]) {
        // The services only publish valid topics; a refusal is a harness bug worth seeing.
        if let Err(e) = client.publish(topic, payload, QoS::AtLeastOnce).await {
            self.handle.trace(
                channels::TASKS,
                json!({"cloud": "publish failed", "topic": topic, "error": e.to_string()}),
            );
        }
    }

    /// Virtual time of the Jobs service's next deadline, if any.
    fn jobs_deadline(&self) -> Option<twinrig_sim::Nanos> {
        let at_s = self.jobs.borrow().next_deadline()?;
        Some(at_s.saturating_sub(self.epoch_s).saturating_mul(SECONDS))
    }

    /// Connects the cloud client and starts serving.
    pub fn start(self: &Rc<Self>, network: &Network) -> Result<(), CloudTwinError> {
        let client = network
            .connect(CLOUD_CLIENT, LinkParams::ideal())
            .map_err(CloudTwinError::Connect)?;
        *self.client.borrow_mut() = Some(client.clone());
        let me = self.clone();
        let net = network.clone();
        // The twin reads every message the broker receives, from the first.
        let cursor = network.cursor(0);
        self.handle.spawn("cloud twin", async move {
            me.serve(&net, &client, &cursor).await
        });
        Ok(())
    }

    async fn serve(
        &self,
        network: &Network,
        client: &twinrig_sim::net::SimMqttClient,
        cursor: &twinrig_sim::net::ObservedCursor,
    ) {
        use embassy_futures::select::{Either, select};
        let mut seen = cursor.position();
        loop {
            let woke = match self.jobs_deadline() {
                Some(at) => select(network.observe_after(seen), self.handle.sleep_until(at)).await,
                None => {
                    network.observe_after(seen).await;
                    Either::First(())
                }
            };
            if let Either::Second(()) = woke {
                let out = self.jobs.borrow_mut().tick(self.now_s());
                self.emit(out).await;
                continue;
            }
            let fresh: Vec<_> = network.observed()[seen..].to_vec();
            seen += fresh.len();
            cursor.advance_to(seen);
            for m in fresh {
                // The services answer others; the rules see everything,
                // the services' own messages too (job execution events,
                // shadow documents), as AWS's rules engine does.
                let for_services = m.from != CLOUD_CLIENT && m.topic.starts_with("$aws/things/");
                if for_services && m.topic.contains("/jobs/") {
                    let out = self
                        .jobs
                        .borrow_mut()
                        .handle(&m.topic, &m.payload, self.now_s());
                    self.emit(out).await;
                } else if for_services {
                    let out = self
                        .shadows
                        .borrow_mut()
                        .handle(&m.topic, &m.payload, self.now_s());
                    for p in out {
                        self.publish(client, &p.topic, &p.payload).await;
                    }
                }
                if let Some(pipeline) = &self.pipeline {
                    let outcomes = pipeline.process(
                        Some(&m.from),
                        &m.topic,
                        &m.payload,
                        self.now_ms(),
                        &mut self.store.borrow_mut(),
                    );
                    for o in outcomes {
                        let result = match &o.result {
                            Ok(id) => json!({"stored": id}),
                            Err(e) => json!({"error": e.to_string()}),
                        };
                        self.handle.trace(
                            RECORDS_CHANNEL,
                            json!({"rule": o.rule, "action": o.action, "topic": m.topic, "result": result}),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::max_in_progress_from_events;

    fn ev(thing: &str, n: u64, status: &str) -> serde_json::Value {
        json!({"jobId": "j", "thingName": thing, "executionNumber": n, "status": status})
    }

    #[test]
    fn in_progress_peak_replays_starts_and_ends_in_order() {
        let events = [
            ev("a", 1, "IN_PROGRESS"),
            ev("b", 1, "IN_PROGRESS"),
            json!({"jobId": "other", "thingName": "c", "executionNumber": 1, "status": "IN_PROGRESS"}),
            ev("a", 1, "FAILED"),
            // A retry is another execution of the same thing.
            ev("a", 2, "IN_PROGRESS"),
            ev("c", 1, "IN_PROGRESS"),
            ev("b", 1, "SUCCEEDED"),
            ev("c", 1, "TIMED_OUT"),
            json!({"not": "an event"}),
        ];
        assert_eq!(max_in_progress_from_events(&events, "j"), 3);
        assert_eq!(max_in_progress_from_events(&events, "other"), 1);
        assert_eq!(max_in_progress_from_events(&events[..2], "j"), 2);
        assert_eq!(max_in_progress_from_events(&[], "j"), 0);
    }
}
