//! The cloud twin on the broker for one run: the Device Shadow service answers
//! `$aws/things/.../shadow/...` requests, and the rules pipeline turns matching
//! messages into records in the run's SQLite store.
//!
//! It is a task on the world's executor with a client of its own on an ideal
//! link ("in the cloud"). It sees every message the broker receives, in
//! arrival order, at the instant it arrives, so its answers are as
//! deterministic as the rest of the run. Cloud time for shadows and records is
//! `epoch + virtual time`: nothing reads the wall clock.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;
use twinrig_cloud::records::RecordStore;
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

/// The cloud services of one run.
pub struct CloudTwin {
    handle: SimHandle,
    epoch_s: u64,
    shadows: RefCell<ShadowService>,
    pipeline: Option<Pipeline>,
    store: RefCell<RecordStore>,
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

    /// Connects the cloud client and starts serving.
    pub fn start(self: &Rc<Self>, network: &Network) -> Result<(), String> {
        let client = network.connect(CLOUD_CLIENT, LinkParams::ideal())?;
        let me = self.clone();
        let net = network.clone();
        self.handle
            .spawn("cloud twin", async move { me.serve(&net, &client).await });
        Ok(())
    }

    async fn serve(&self, network: &Network, client: &twinrig_sim::net::SimMqttClient) {
        let mut seen = 0usize;
        loop {
            network.observe_after(seen).await;
            let fresh: Vec<_> = network.observed()[seen..].to_vec();
            seen += fresh.len();
            for m in fresh {
                if m.from == CLOUD_CLIENT {
                    continue;
                }
                if m.topic.starts_with("$aws/things/") {
                    let out = self
                        .shadows
                        .borrow_mut()
                        .handle(&m.topic, &m.payload, self.now_s());
                    for p in out {
                        // The client validated nothing it cannot send; a refusal is a harness bug worth seeing.
                        if let Err(e) = client.publish(&p.topic, &p.payload, QoS::AtLeastOnce).await
                        {
                            self.handle.trace(
                                channels::TASKS,
                                json!({"cloud": "shadow publish failed", "error": e.to_string()}),
                            );
                        }
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
