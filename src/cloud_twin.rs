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

use std::cell::RefCell;
use std::collections::BTreeMap;
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
pub const CLOUD_CLIENT: &str = crate::scenario::validate::CLOUD_CLIENT_ID;

/// Trace channel for records written by the rules pipeline.
pub const RECORDS_CHANNEL: &str = "/records";

/// Trace channel for alerts (job aborts).
pub const ALERTS_CHANNEL: &str = "/alerts";

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
    /// Per job created through [`CloudTwin::create_job`]: the most executions
    /// IN_PROGRESS seen after any Jobs call.
    max_in_progress: RefCell<BTreeMap<String, u64>>,
    client: RefCell<Option<twinrig_sim::net::SimMqttClient>>,
}

impl CloudTwin {
    /// Cloud services with `pipeline` (None: no rules) and an in-memory store;
    /// virtual time 0 is `epoch_s` (unix seconds).
    pub fn new(
        handle: &SimHandle,
        pipeline: Option<Pipeline>,
        epoch_s: u64,
    ) -> Result<Rc<CloudTwin>, String> {
        let store = RecordStore::open_in_memory().map_err(|e| format!("records store: {e}"))?;
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
            max_in_progress: RefCell::new(BTreeMap::new()),
            client: RefCell::new(None),
        }))
    }

    /// Unix seconds now.
    pub fn now_s(&self) -> u64 {
        self.epoch_s + self.handle.now() / SECONDS
    }

    fn now_ms(&self) -> u64 {
        self.epoch_s * 1000 + self.handle.now() / MILLIS
    }

    /// The pipeline, if rules are configured.
    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.as_ref()
    }

    /// The records store.
    pub fn store(&self) -> std::cell::Ref<'_, RecordStore> {
        self.store.borrow()
    }

    /// The shadow service (for expectations on documents).
    pub fn shadows(&self) -> std::cell::Ref<'_, ShadowService> {
        self.shadows.borrow()
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

    /// CreateJob at the current time; publishes what it produced and tracks
    /// the job's in-progress count from then on.
    pub async fn create_job(&self, request: CreateJobRequest) -> Result<(), JobsError> {
        let id = request.job_id.clone();
        let response = self.jobs.borrow_mut().create_job(request, self.now_s())?;
        self.max_in_progress.borrow_mut().insert(id, 0);
        self.emit(response.output).await;
        Ok(())
    }

    /// The most executions of `job` IN_PROGRESS at one moment (after any
    /// Jobs call), for jobs created through [`CloudTwin::create_job`].
    pub fn max_in_progress_seen(&self, job: &str) -> Option<u64> {
        self.max_in_progress.borrow().get(job).copied()
    }

    fn track_in_progress(&self) {
        let jobs = self.jobs.borrow();
        for (id, max) in self.max_in_progress.borrow_mut().iter_mut() {
            if let Ok(d) = jobs.describe_job(id) {
                *max = (*max).max(d.job_process_details.number_of_in_progress_things);
            }
        }
    }

    /// Publishes what a Jobs call produced and keeps its alerts.
    pub async fn emit(&self, out: Output) {
        self.track_in_progress();
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
    pub fn start(self: &Rc<Self>, network: &Network) -> Result<(), String> {
        let client = network.connect(CLOUD_CLIENT, LinkParams::ideal())?;
        *self.client.borrow_mut() = Some(client.clone());
        let me = self.clone();
        let net = network.clone();
        self.handle
            .spawn("cloud twin", async move { me.serve(&net, &client).await });
        Ok(())
    }

    async fn serve(&self, network: &Network, client: &twinrig_sim::net::SimMqttClient) {
        use embassy_futures::select::{Either, select};
        let mut seen = 0usize;
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
            for m in fresh {
                if m.from == CLOUD_CLIENT {
                    continue;
                }
                if m.topic.starts_with("$aws/things/") && m.topic.contains("/jobs/") {
                    let out = self
                        .jobs
                        .borrow_mut()
                        .handle(&m.topic, &m.payload, self.now_s());
                    self.emit(out).await;
                } else if m.topic.starts_with("$aws/things/") {
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
