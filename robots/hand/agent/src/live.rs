//! The deployable agent (the Jetson's): actions from
//! `the-project/robotic-hand/{thing}/action` over MQTT (AWS IoT Core or
//! `twinrig serve cloud`, TLS with the thing's certificate), the hand on a
//! real serial port through rustypot, per-letter states published in order
//! at QoS 1 on `.../state`. SIGINT/SIGTERM: the sentence in progress
//! finishes, torque goes off on all 8 servos, the states still queued are
//! published and acknowledged, then the process exits.
//!
//! Threads, as on the Jetson: the worker spells on its own thread (blocking
//! serial I/O and pauses); the MQTT session and both MQTT tasks
//! ([`receive_actions`], [`publish_states`]: the same code the harness
//! runs) on a current-thread tokio runtime, so the event loop never waits
//! on the hand. Video is not recorded in this mode yet.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serialport::SerialPort;
use tokio::sync::Notify;
use twinrig_hal::mqtt::{MqttClient, MqttError, MqttMessage, QoS};
use twinrig_hal_std::{MqttConfig, MqttSession};

use crate::agent::OfflineModel;
use crate::host::{QueuedJobs, SharedInbox, hand_on, unix_now};
use crate::mqtt::{ActionQueue, Outbox, publish_states, receive_actions};
use crate::payload::ActionError;
use crate::plan::Timing;
use crate::service::{ServiceSummary, serve};
use crate::state::{StateMessage, StateSink};
use crate::worker::Worker;

/// How long the shutdown waits for the broker to acknowledge the last states.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// Settings of a live run.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The thing: its topics' `{thing}` level.
    pub thing: String,
    /// Timing of the hand.
    pub timing: Timing,
}

/// What a live run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSummary {
    /// The worker's summary (messages, torque off).
    pub service: ServiceSummary,
    /// States the worker produced.
    pub states: u64,
    /// States handed to the session.
    pub published: u64,
    /// States the session refused (its offline queue was full).
    pub lost: u64,
    /// Every QoS 1 state was acknowledged by the broker before exit.
    pub acknowledged: bool,
}

/// States from the worker thread to the MQTT side, in order.
#[derive(Default)]
struct StateQueue {
    queue: Mutex<VecDeque<Vec<u8>>>,
    arrived: Notify,
    pushed: AtomicU64,
}

impl Outbox for StateQueue {
    fn push(&self, payload: Vec<u8>) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(payload);
        self.pushed.fetch_add(1, Ordering::SeqCst);
        // Stored if nobody waits yet: the next `next` returns at once.
        self.arrived.notify_one();
    }

    async fn next(&self) -> Vec<u8> {
        loop {
            let waiting = self.arrived.notified();
            if let Some(p) = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
            {
                return p;
            }
            waiting.await;
        }
    }
}

/// The worker's state sink: each state also printed as a JSON line, for
/// the operator watching the process.
struct QueueSink(Arc<StateQueue>);

impl StateSink for QueueSink {
    fn publish(&mut self, state: &StateMessage) {
        let json = state.to_json();
        println!("{json}");
        self.0.push(json.into_bytes());
    }
}

/// The MQTT side's view of the inbox.
struct Actions(Arc<SharedInbox>);

impl ActionQueue for Actions {
    fn offer(&self, payload: &[u8]) -> Result<u64, ActionError> {
        self.0.offer(payload)
    }

    fn now_s(&self) -> u64 {
        unix_now()
    }
}

/// The session, saying on stdout when the action subscription is in place:
/// from that line on, actions are taken (a watcher or a test waits for it).
struct Announced<'a>(&'a MqttSession);

impl MqttClient for Announced<'_> {
    fn client_id(&self) -> &str {
        self.0.client_id()
    }

    async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), MqttError> {
        self.0.subscribe(filter, qos).await?;
        println!("subscribed to {filter}");
        Ok(())
    }

    async fn publish(&self, topic: &str, payload: &[u8], qos: QoS) -> Result<(), MqttError> {
        self.0.publish(topic, payload, qos).await
    }

    async fn receive(&self) -> Result<MqttMessage, MqttError> {
        self.0.receive().await
    }
}

/// Publishes the worker's states in order for as long as the session lives.
async fn publish_forever(
    session: &MqttSession,
    thing: &str,
    states: &StateQueue,
    published: &AtomicU64,
    lost: &AtomicU64,
) -> Infallible {
    loop {
        let e = publish_states(session, thing, states, || {
            published.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        // The session refused a state (its offline queue is full): that one
        // is lost, said here; the next ones go on.
        eprintln!("hand-agent: a state was not published: {e}");
        lost.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs the agent until `stop` is set; `Err` when the MQTT session cannot be
/// set up or the action subscription is refused (a message naming why).
pub fn run_live(
    port: Box<dyn SerialPort>,
    mqtt: MqttConfig,
    stop: Arc<AtomicBool>,
    config: LiveConfig,
) -> Result<LiveSummary, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    let inbox = Arc::new(SharedInbox::default());
    let states = Arc::new(StateQueue::default());
    let worker_done = Arc::new(Notify::new());
    let worker = {
        let (inbox, states, done, stop) = (
            inbox.clone(),
            states.clone(),
            worker_done.clone(),
            stop.clone(),
        );
        let timing = config.timing;
        std::thread::Builder::new()
            .name("hand-worker".into())
            .spawn(move || {
                let hand = hand_on(port, timing);
                let mut worker = Worker::new(hand, OfflineModel::default(), QueueSink(states));
                let mut jobs = QueuedJobs {
                    shared: inbox,
                    stop,
                };
                let summary = serve(&mut worker, &mut jobs, None);
                done.notify_one();
                summary
            })
            .map_err(|e| format!("cannot start the worker thread: {e}"))?
    };
    let (published, lost) = (AtomicU64::new(0), AtomicU64::new(0));
    let outcome = runtime.block_on(async {
        let session = MqttSession::connect(mqtt).map_err(|e| e.to_string())?;
        let actions = Actions(inbox.clone());
        let thing = config.thing.as_str();
        let announced = Announced(&session);
        let receiving = receive_actions(&announced, thing, &actions, &*states);
        let publishing = publish_forever(&session, thing, &states, &published, &lost);
        tokio::pin!(publishing);
        let refused = tokio::select! {
            e = receiving => Some(e),
            never = &mut publishing => match never {},
            () = worker_done.notified() => None,
        };
        if let Some(e) = refused {
            // Nothing can arrive: stop the worker (torque off) and report.
            stop.store(true, Ordering::SeqCst);
            return Err(format!(
                "the action subscription failed ({e}); does the policy allow the thing's action topic?"
            ));
        }
        // The worker is done (torque off): publish what it left, then wait
        // for the broker's acknowledgements.
        let caught_up = async {
            let handled = || published.load(Ordering::SeqCst) + lost.load(Ordering::SeqCst);
            while handled() < states.pushed.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            never = &mut publishing => match never {},
            _ = tokio::time::timeout(FLUSH_LIMIT, caught_up) => {}
        }
        Ok(session.flush(FLUSH_LIMIT).await)
    });
    let service = worker
        .join()
        .map_err(|_| "the worker thread panicked".to_owned())?;
    let acknowledged = outcome?;
    Ok(LiveSummary {
        service,
        states: states.pushed.load(Ordering::SeqCst),
        published: published.load(Ordering::SeqCst),
        lost: lost.load(Ordering::SeqCst),
        acknowledged,
    })
}
