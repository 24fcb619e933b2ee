//! An MQTT 3.1.1 session on rumqttc (AWS IoT Core or any broker).
//!
//! One rumqttc [`EventLoop`] lives for the whole session in a task spawned
//! on tokio, and is polled again after every error: rumqttc keeps the
//! session state in it (unacknowledged QoS 1 publishes, requests not yet
//! sent), so with a persistent session (`clean_session = false`, the
//! default here) and a broker that kept the session, QoS 1 messages are
//! sent again after a reconnect. Reconnects wait a capped exponential
//! backoff with jitter, so a fleet does not reconnect in lockstep.
//!
//! Subscriptions are the session's own: each resolves on its SUBACK, and
//! if the broker lost the session (CONNACK without session present) they
//! are made again. Publishes wait in a bounded queue while offline: when
//! it is full, [`MqttClient::publish`] fails with
//! [`MqttError::Disconnected`] and [`MqttStats::publishes_refused`] counts
//! it; nothing is dropped silently.
//!
//! Needs a tokio runtime with I/O and time enabled (current-thread is
//! fine): [`MqttSession::connect`] spawns the event loop on it.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ClientError, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing,
    Request, SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::{Notify, mpsc, oneshot};
use twinrig_hal::mqtt::{validate_publish_topic, validate_topic_filter};
use twinrig_hal::{MqttClient, MqttError, MqttMessage, QoS};

use crate::tls::TlsSetupError;

/// How the session reaches the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttTransport {
    /// Plain TCP (a local broker, tests).
    Tcp,
    /// TLS with a client certificate: AWS IoT's certificate files.
    Tls {
        /// PEM of the CA to trust (AWS: `AmazonRootCA1.pem`).
        ca_file: PathBuf,
        /// PEM of the device certificate.
        cert_file: PathBuf,
        /// PEM of the device's private key.
        key_file: PathBuf,
        /// ALPN protocol to offer (AWS IoT on port 443: `x-amzn-mqtt-ca`).
        alpn: Option<Vec<u8>>,
    },
}

/// How an [`MqttSession`] connects and behaves.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// The client id (the thing name on AWS IoT).
    pub client_id: String,
    /// The broker's host name (also the TLS server name).
    pub host: String,
    /// The broker's port (AWS IoT: 8883, or 443 with ALPN).
    pub port: u16,
    /// TCP or TLS.
    pub transport: MqttTransport,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Start a new session at every connect (false: persistent session).
    pub clean_session: bool,
    /// Publishes that may wait while offline (or behind a busy link). When
    /// a connection drops, rumqttc moves these and the unacknowledged QoS 1
    /// window into its replay list, so at most `offline_queue` more are
    /// accepted per outage: the bound is `2 * offline_queue + max_inflight`.
    pub offline_queue: usize,
    /// QoS 1 publishes in flight (sent, not yet acknowledged).
    pub max_inflight: u16,
    /// Largest payload accepted by `publish` (AWS IoT: 128 KiB).
    pub max_payload: usize,
    /// Messages received and not yet taken by `receive`; more are dropped
    /// and counted in [`MqttStats::messages_dropped`].
    pub inbox: usize,
    /// First reconnect delay; doubles on each failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Limit on connecting (TCP, TLS and CONNACK).
    pub connect_timeout: Duration,
}

impl MqttConfig {
    /// A persistent session over plain TCP with AWS IoT's limits; set
    /// `transport` for TLS.
    pub fn new(client_id: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        MqttConfig {
            client_id: client_id.into(),
            host: host.into(),
            port,
            transport: MqttTransport::Tcp,
            keep_alive: Duration::from_secs(30),
            clean_session: false,
            offline_queue: 100,
            max_inflight: 20,
            max_payload: 128 << 10,
            inbox: 256,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why [`MqttSession::connect`] could not set the session up.
#[derive(Debug, thiserror::Error)]
pub enum MqttSetupError {
    /// The TLS files could not be used.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// A persistent session needs a client id.
    #[error("a persistent MQTT session (clean_session = false) needs a client id")]
    EmptyClientId,
    /// Not called inside a tokio runtime.
    #[error("MqttSession::connect must be called inside a tokio runtime")]
    NoRuntime,
}

/// What the session has been through, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MqttStats {
    /// Successful connects (CONNACK accepted).
    pub connects: u64,
    /// Connections lost after a successful connect.
    pub disconnects: u64,
    /// Publishes refused because the offline queue was full.
    pub publishes_refused: u64,
    /// Messages received while the inbox was full, dropped.
    pub messages_dropped: u64,
}

/// A subscription to make, and who waits for its SUBACK.
struct SubJob {
    filter: String,
    qos: rumqttc::QoS,
    reply: Option<oneshot::Sender<Result<(), MqttError>>>,
}

/// State shared by the session and its event-loop task.
#[derive(Default)]
struct State {
    connected: bool,
    stats: MqttStats,
    /// Subscriptions waiting to be sent, one at a time.
    queue: VecDeque<SubJob>,
    /// The subscription sent, and its packet id once rumqttc assigned it.
    in_flight: Option<(SubJob, Option<u16>)>,
    /// Subscriptions the broker acknowledged, to make again if it lost the session.
    granted: BTreeMap<String, rumqttc::QoS>,
    /// QoS 1 publishes queued, and PUBACKs received: [`MqttSession::flush`]
    /// waits for the second to reach the first.
    qos1_queued: u64,
    qos1_acked: u64,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the event-loop task: a subscription was queued.
    wake: Notify,
    /// Wakes publishers waiting on a full queue (the connection changed) and
    /// flushes (a PUBACK arrived).
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not wedge the session: the state stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An MQTT session as a device uses it ([`MqttClient`]).
pub struct MqttSession {
    client: AsyncClient,
    client_id: String,
    max_payload: usize,
    shared: Arc<Shared>,
    inbox: tokio::sync::Mutex<mpsc::Receiver<MqttMessage>>,
    task: tokio::task::JoinHandle<()>,
}

impl MqttSession {
    /// Starts the session: it connects in the background (and reconnects
    /// until dropped); publishes and subscriptions made before it is
    /// connected wait for the connection.
    pub fn connect(config: MqttConfig) -> Result<Self, MqttSetupError> {
        if config.client_id.is_empty() && !config.clean_session {
            return Err(MqttSetupError::EmptyClientId);
        }
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| MqttSetupError::NoRuntime)?;
        let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
        options
            .set_keep_alive(config.keep_alive)
            .set_clean_session(config.clean_session)
            .set_inflight(config.max_inflight.max(1))
            // Room for the topic and header around the largest payload, both ways.
            .set_max_packet_size(
                config.max_payload.max(128 << 10) + 4096,
                config.max_payload + 4096,
            );
        if let MqttTransport::Tls {
            ca_file,
            cert_file,
            key_file,
            alpn,
        } = &config.transport
        {
            let roots = crate::tls::root_store(Some(ca_file), false)?;
            let mut tls = crate::tls::client_config(roots, Some((cert_file, key_file)))?;
            tls.alpn_protocols = alpn.iter().cloned().collect();
            options.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(tls))));
        }
        let (client, mut eventloop) = AsyncClient::new(options, config.offline_queue.max(1));
        let mut network = eventloop.network_options();
        network.set_connection_timeout(config.connect_timeout.as_secs().max(1));
        eventloop.set_network_options(network);

        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            changed: Notify::new(),
        });
        let (inbox_tx, inbox_rx) = mpsc::channel(config.inbox.max(1));
        let driver = Driver {
            eventloop,
            client: client.clone(),
            shared: shared.clone(),
            inbox: inbox_tx,
            backoff: Backoff::new(config.reconnect_min, config.reconnect_max),
        };
        let task = runtime.spawn(driver.run());
        Ok(MqttSession {
            client,
            client_id: config.client_id,
            max_payload: config.max_payload,
            shared,
            inbox: tokio::sync::Mutex::new(inbox_rx),
            task,
        })
    }

    /// Whether the session is connected now.
    pub fn is_connected(&self) -> bool {
        self.shared.lock().connected
    }

    /// Counters of what the session has been through.
    pub fn stats(&self) -> MqttStats {
        self.shared.lock().stats
    }

    /// Waits until the broker acknowledged every QoS 1 publish queued so
    /// far (across reconnects: rumqttc sends them again), or `limit`
    /// passed; `true` when all were acknowledged. A device calls it before
    /// it restarts: `publish` returns once a message is queued, and a
    /// restart loses the queue (the OTA client's "rebooting" update must
    /// reach the job before the new image asks for it).
    pub async fn flush(&self, limit: Duration) -> bool {
        let target = self.shared.lock().qos1_queued;
        tokio::time::timeout(limit, async {
            loop {
                let changed = self.shared.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.shared.lock().qos1_acked >= target {
                    return;
                }
                changed.await;
            }
        })
        .await
        .is_ok()
    }
}

impl Drop for MqttSession {
    fn drop(&mut self) {
        // No DISCONNECT: the broker keeps a persistent session as after a link loss.
        self.task.abort();
    }
}

fn to_rumqttc(qos: QoS) -> rumqttc::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
    }
}

impl MqttClient for MqttSession {
    fn client_id(&self) -> &str {
        &self.client_id
    }

    async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), MqttError> {
        validate_topic_filter(filter)?;
        let (reply, answer) = oneshot::channel();
        self.shared.lock().queue.push_back(SubJob {
            filter: filter.to_owned(),
            qos: to_rumqttc(qos),
            reply: Some(reply),
        });
        self.shared.wake.notify_one();
        answer.await.map_err(|_| MqttError::Disconnected)?
    }

    async fn publish(&self, topic: &str, payload: &[u8], qos: QoS) -> Result<(), MqttError> {
        validate_publish_topic(topic)?;
        if payload.len() > self.max_payload {
            return Err(MqttError::PayloadTooLarge);
        }
        let qos = to_rumqttc(qos);
        let counted = |r: Result<(), MqttError>| {
            if r.is_ok() && qos != rumqttc::QoS::AtMostOnce {
                self.shared.lock().qos1_queued += 1;
            }
            r
        };
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.client.try_publish(topic, qos, false, payload.to_vec()) {
                Ok(()) => return counted(Ok(())),
                Err(ClientError::TryRequest(_)) | Err(ClientError::Request(_)) => {}
            }
            // The queue is full.
            {
                let mut state = self.shared.lock();
                if !state.connected {
                    state.stats.publishes_refused += 1;
                    return Err(MqttError::Disconnected);
                }
            }
            // Connected: the event loop is draining the queue, wait for room
            // unless the connection drops meanwhile.
            tokio::select! {
                sent = self.client.publish(topic, qos, false, payload.to_vec()) => {
                    return counted(sent.map_err(|_| MqttError::Disconnected));
                }
                _ = changed => {}
            }
        }
    }

    async fn receive(&self) -> Result<MqttMessage, MqttError> {
        self.inbox
            .lock()
            .await
            .recv()
            .await
            .ok_or(MqttError::Disconnected)
    }
}

/// Capped exponential backoff with "equal jitter": half the delay fixed,
/// half random.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    seed: RandomState,
    count: u64,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            next: min,
            seed: RandomState::new(),
            count: 0,
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    fn delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        // std's randomly keyed hasher is random enough for jitter, without an RNG crate.
        self.count += 1;
        let random = self.seed.hash_one(self.count);
        let half = base / 2;
        let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_nanos(random % span)
    }
}

/// The event-loop task: polls rumqttc, reconnects, tracks subscriptions.
struct Driver {
    eventloop: EventLoop,
    client: AsyncClient,
    shared: Arc<Shared>,
    inbox: mpsc::Sender<MqttMessage>,
    backoff: Backoff,
}

impl Driver {
    async fn run(mut self) {
        loop {
            let was_connected = self.eventloop.network.is_some();
            let event = if was_connected {
                // A queued subscription interrupts the wait; polling again
                // resumes where it was (rumqttc keeps its buffers).
                tokio::select! {
                    event = self.eventloop.poll() => Some(event),
                    _ = self.shared.wake.notified() => None,
                }
            } else {
                // Connecting is not interrupted: subscriptions wait for CONNACK.
                Some(self.eventloop.poll().await)
            };
            match event {
                None => {}
                Some(Ok(event)) => self.handle(event),
                Some(Err(ConnectionError::RequestsDone)) => return,
                Some(Err(_)) => {
                    self.lost(was_connected);
                    tokio::time::sleep(self.backoff.delay()).await;
                }
            }
            self.send_next_subscription();
        }
    }

    fn handle(&mut self, event: Event) {
        let mut state = self.shared.lock();
        match event {
            Event::Incoming(Incoming::ConnAck(ack)) => {
                self.backoff.reset();
                state.connected = true;
                state.stats.connects += 1;
                if !ack.session_present {
                    // The broker has no subscriptions for us: make them again.
                    let granted: Vec<_> =
                        state.granted.iter().map(|(f, q)| (f.clone(), *q)).collect();
                    for (filter, qos) in granted.into_iter().rev() {
                        let queued = state.queue.iter().any(|j| j.filter == filter);
                        if !queued {
                            state.queue.push_front(SubJob {
                                filter,
                                qos,
                                reply: None,
                            });
                        }
                    }
                }
                drop(state);
                self.shared.changed.notify_waiters();
            }
            Event::Incoming(Incoming::Publish(publish)) => {
                let message = MqttMessage {
                    topic: publish.topic,
                    payload: publish.payload.to_vec(),
                    qos: match publish.qos {
                        rumqttc::QoS::AtMostOnce => QoS::AtMostOnce,
                        _ => QoS::AtLeastOnce,
                    },
                };
                if self.inbox.try_send(message).is_err() {
                    state.stats.messages_dropped += 1;
                }
            }
            Event::Incoming(Incoming::PubAck(_)) => {
                state.qos1_acked += 1;
                drop(state);
                self.shared.changed.notify_waiters();
            }
            Event::Outgoing(Outgoing::Subscribe(pkid)) => {
                if let Some((_, id @ None)) = &mut state.in_flight {
                    *id = Some(pkid);
                }
            }
            // Only the SUBACK of the subscription in flight counts (one of a
            // duplicate sent before a reconnect is ignored).
            Event::Incoming(Incoming::SubAck(ack))
                if state.in_flight.as_ref().and_then(|(_, id)| *id) == Some(ack.pkid) =>
            {
                let (job, _) = state.in_flight.take().expect("checked by the guard");
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure));
                let result = if refused {
                    state.granted.remove(&job.filter);
                    Err(MqttError::SubscribeRefused)
                } else {
                    state.granted.insert(job.filter.clone(), job.qos);
                    Ok(())
                };
                if let Some(reply) = job.reply {
                    let _ = reply.send(result);
                }
            }
            _ => {}
        }
    }

    /// After a failed poll: a lost connection, or a failed connect.
    fn lost(&mut self, was_connected: bool) {
        if !was_connected {
            return;
        }
        let mut state = self.shared.lock();
        state.connected = false;
        state.stats.disconnects += 1;
        // rumqttc moved what it had not sent into `pending` (publishes are
        // sent again on reconnect); the subscription in flight is sent
        // again by us, once, so its SUBACK is the one we wait for.
        self.eventloop
            .pending
            .retain(|r| !matches!(r, Request::Subscribe(_)));
        if let Some((job, _)) = state.in_flight.take() {
            state.queue.push_front(job);
        }
        drop(state);
        self.shared.changed.notify_waiters();
    }

    /// Sends the next queued subscription if connected and none is in flight.
    fn send_next_subscription(&mut self) {
        let mut state = self.shared.lock();
        if !state.connected || state.in_flight.is_some() {
            return;
        }
        let Some(job) = state.queue.pop_front() else {
            return;
        };
        match self.client.try_subscribe(job.filter.clone(), job.qos) {
            Ok(()) => state.in_flight = Some((job, None)),
            // The request queue is full of publishes: try again after the next event.
            Err(_) => state.queue.push_front(job),
        }
    }
}

#[cfg(test)]
mod tests;
