//! The network between devices and the broker: a link model per client and
//! the MQTT session devices use.
//!
//! A client's messages travel up its link to the broker and deliveries travel
//! down it, each delayed by a latency drawn from the link's distribution. MQTT
//! runs over TCP, so a link never reorders: a message never overtakes the one
//! before it. Loss: a lost QoS 0 message is gone; a lost QoS 1 message is sent
//! again after the retry interval until it gets through (at-least-once, without
//! duplicates: assumed, as a TCP session with retransmission behaves). During an
//! outage QoS 0 messages are lost and QoS 1 messages wait for the link to return.
//!
//! Routing is the broker's job, behind [`Router`]; [`Network`] is a
//! [`Process`](crate::Process) that hands the broker every publish arriving at
//! one instant as one batch and schedules the deliveries it returns.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use rand::Rng;
use rand_distr::{Distribution, Exp, Normal};
use serde_json::json;
use twinrig_hal::mqtt::{validate_publish_topic, validate_topic_filter};
use twinrig_hal::{MqttError, MqttMessage, QoS};

use crate::rng::SimRng;
use crate::time::Nanos;
use crate::trace::channels;
use crate::{Process, SimError, SimHandle};

/// A latency distribution in virtual nanoseconds; draws below zero become zero.
#[derive(Debug, Clone, PartialEq)]
pub enum LatencyModel {
    /// Always the same.
    Fixed(Nanos),
    /// Uniform in [min, max].
    Uniform {
        /// Lower bound.
        min: Nanos,
        /// Upper bound.
        max: Nanos,
    },
    /// Normal(mean, std_dev).
    Normal {
        /// Mean.
        mean: Nanos,
        /// Standard deviation.
        std_dev: Nanos,
    },
    /// `min` plus an exponential tail with mean `mean_extra`.
    Exponential {
        /// Fixed part.
        min: Nanos,
        /// Mean of the tail.
        mean_extra: Nanos,
    },
}

impl LatencyModel {
    fn sample(&self, rng: &mut SimRng) -> Nanos {
        match *self {
            LatencyModel::Fixed(t) => t,
            LatencyModel::Uniform { min, max } => {
                if max <= min {
                    min
                } else {
                    rng.random_range(min..=max)
                }
            }
            LatencyModel::Normal { mean, std_dev } => {
                match Normal::new(mean as f64, std_dev as f64) {
                    Ok(d) => d.sample(rng).max(0.0).round() as Nanos,
                    Err(_) => mean,
                }
            }
            LatencyModel::Exponential { min, mean_extra } => {
                if mean_extra == 0 {
                    return min;
                }
                match Exp::new(1.0 / mean_extra as f64) {
                    Ok(d) => min + d.sample(rng).round() as Nanos,
                    Err(_) => min,
                }
            }
        }
    }
}

/// A link's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkParams {
    /// One-way latency.
    pub latency: LatencyModel,
    /// Probability a message is lost, 0..1.
    pub loss: f64,
    /// Retry interval for lost QoS 1 messages.
    pub qos1_retry: Nanos,
}

impl LinkParams {
    /// A perfect link: no latency, no loss (the scenario's own client, "in the cloud").
    pub fn ideal() -> Self {
        LinkParams {
            latency: LatencyModel::Fixed(0),
            loss: 0.0,
            qos1_retry: 1_000_000_000,
        }
    }
}

/// The broker as the network sees it. `twinrig` implements it on the embedded rumqttd.
pub trait Router {
    /// Registers a client.
    fn connect(&mut self, client: &str) -> Result<usize, String>;
    /// Subscribes a client to a filter (returns once the broker acknowledged it).
    fn subscribe(&mut self, client: usize, filter: &str) -> Result<(), String>;
    /// Routes a batch of publishes; returns deliveries ordered by batch position.
    fn route(&mut self, batch: &[RoutedPublish]) -> Result<Vec<RoutedDelivery>, String>;
}

/// A publish arriving at the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedPublish {
    /// Publisher (index from [`Router::connect`]).
    pub from: usize,
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
}

/// One delivery the broker made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedDelivery {
    /// Position of the publish in the batch.
    pub publish: usize,
    /// Receiver.
    pub to: usize,
    /// The subscription filter that matched.
    pub filter: String,
    /// Topic.
    pub topic: String,
    /// Payload as the broker delivered it.
    pub payload: Vec<u8>,
}

/// A message the broker received, as the scenario's observer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Arrival time at the broker.
    pub time: Nanos,
    /// Publisher's client id.
    pub from: String,
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS it was published with.
    pub qos: QoS,
    /// Client ids the broker delivered it to (empty: nobody subscribed).
    pub to: Vec<String>,
}

/// A subscription the broker took, as the scenario's observer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// When the broker took it: publishes arriving from then on reach the client.
    pub time: Nanos,
    /// Subscriber's client id.
    pub client: String,
    /// Topic filter.
    pub filter: String,
}

/// A fault started on a client's link (`outage`, `loss`, `extra_latency`).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkFault {
    /// The client.
    pub client: String,
    /// Which fault.
    pub kind: &'static str,
    /// When it started.
    pub from: Nanos,
    /// When it ends.
    pub until: Nanos,
    /// Loss probability (`loss` only).
    pub probability: Option<f64>,
}

/// Per-client link statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// Messages the client published.
    pub published: u64,
    /// Messages delivered to the client.
    pub received: u64,
    /// Messages lost for good (QoS 0).
    pub lost: u64,
    /// QoS 1 retransmissions.
    pub retries: u64,
}

enum UpEvent {
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
    },
    Subscribe {
        filter: String,
        qos: QoS,
        ack: Rc<RefCell<AckSlot>>,
    },
}

#[derive(Default)]
struct AckSlot {
    result: Option<Result<(), MqttError>>,
    waker: Option<Waker>,
}

enum DownEvent {
    Message(MqttMessage),
    SubAck(Rc<RefCell<AckSlot>>, Result<(), MqttError>),
}

struct Scheduled<E> {
    at: Nanos,
    seq: u64,
    client: usize,
    event: E,
}
impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<E> Eq for Scheduled<E> {}
impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<E> Ord for Scheduled<E> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Default, Clone)]
struct Windows {
    outage_until: Nanos,
    loss: Option<(f64, Nanos)>,
    extra_latency: Option<(Nanos, Nanos)>,
}

struct ClientState {
    name: String,
    router_id: usize,
    params: LinkParams,
    rng: SimRng,
    faults: Windows,
    last_up: Nanos,
    last_down: Nanos,
    subscriptions: BTreeMap<String, QoS>,
    inbox: VecDeque<MqttMessage>,
    rx_waker: Option<Waker>,
    stats: LinkStats,
}

impl ClientState {
    /// When a message sent now with `qos` arrives over this link, or None if lost.
    /// `last` is the arrival time of the previous message the same way (FIFO).
    fn transit(&mut self, now: Nanos, qos: QoS, up: bool) -> Option<Nanos> {
        let mut send_at = now;
        loop {
            if send_at < self.faults.outage_until {
                if qos == QoS::AtMostOnce {
                    self.stats.lost += 1;
                    return None;
                }
                send_at = self.faults.outage_until;
            }
            let loss = match self.faults.loss {
                Some((p, until)) if send_at < until => p.max(self.params.loss),
                _ => self.params.loss,
            };
            if loss > 0.0 && self.rng.random::<f64>() < loss {
                if qos == QoS::AtMostOnce {
                    self.stats.lost += 1;
                    return None;
                }
                self.stats.retries += 1;
                send_at += self.params.qos1_retry.max(1);
                continue;
            }
            let mut latency = self.params.latency.sample(&mut self.rng);
            if let Some((extra, until)) = self.faults.extra_latency
                && send_at < until
            {
                latency += extra;
            }
            let last = if up {
                &mut self.last_up
            } else {
                &mut self.last_down
            };
            let at = (send_at + latency).max(*last);
            *last = at;
            return Some(at);
        }
    }
}

struct NetInner {
    handle: SimHandle,
    router: Box<dyn Router>,
    clients: Vec<ClientState>,
    up: BinaryHeap<Reverse<Scheduled<UpEvent>>>,
    down: BinaryHeap<Reverse<Scheduled<DownEvent>>>,
    seq: u64,
    observed: Vec<Observed>,
    subscribed: Vec<Subscribed>,
    faults: Vec<LinkFault>,
    observer_wakers: Vec<Waker>,
}

impl NetInner {
    fn push_up(&mut self, at: Nanos, client: usize, event: UpEvent) {
        self.seq += 1;
        self.up.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            client,
            event,
        }));
    }
    fn push_down(&mut self, at: Nanos, client: usize, event: DownEvent) {
        self.seq += 1;
        self.down.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            client,
            event,
        }));
    }

    fn flush(
        &mut self,
        now: Nanos,
        batch: &mut Vec<(usize, RoutedPublish, QoS)>,
    ) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let publishes: Vec<RoutedPublish> = batch.iter().map(|(_, p, _)| p.clone()).collect();
        let deliveries = self.router.route(&publishes)?;
        let by_router: BTreeMap<usize, usize> = self
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c.router_id, i))
            .collect();
        let mut recipients: Vec<Vec<String>> = vec![Vec::new(); batch.len()];
        for d in deliveries {
            let Some(&to) = by_router.get(&d.to) else {
                return Err(format!("broker delivered to unknown client {}", d.to));
            };
            let pub_qos = batch[d.publish].2;
            let sub_qos = self.clients[to]
                .subscriptions
                .get(&d.filter)
                .copied()
                .unwrap_or_default();
            let qos = pub_qos.min(sub_qos);
            recipients[d.publish].push(self.clients[to].name.clone());
            if let Some(at) = self.clients[to].transit(now, qos, false) {
                self.push_down(
                    at,
                    to,
                    DownEvent::Message(MqttMessage {
                        topic: d.topic,
                        payload: d.payload,
                        qos,
                    }),
                );
            }
        }
        for ((from, p, qos), to) in batch.drain(..).zip(recipients) {
            let from_name = self.clients[from].name.clone();
            self.handle.trace(
                channels::MQTT,
                json!({
                    "from": from_name,
                    "topic": p.topic,
                    "payload": payload_for_trace(&p.payload),
                    "qos": qos.level(),
                    "to": &to,
                }),
            );
            self.observed.push(Observed {
                time: now,
                from: from_name,
                topic: p.topic,
                payload: p.payload,
                qos,
                to,
            });
        }
        for w in self.observer_wakers.drain(..) {
            w.wake();
        }
        Ok(())
    }
}

/// Payloads go into the trace as text when they are UTF-8, else as `{"hex": ..}`.
pub fn payload_for_trace(payload: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(payload) {
        Ok(s) => serde_json::Value::String(s.to_string()),
        Err(_) => json!({ "hex": hex(payload) }),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The network: every client's link and the broker behind them.
#[derive(Clone)]
pub struct Network {
    inner: Rc<RefCell<NetInner>>,
}

impl Network {
    /// A network in front of `router`.
    pub fn new(handle: &SimHandle, router: Box<dyn Router>) -> Self {
        Network {
            inner: Rc::new(RefCell::new(NetInner {
                handle: handle.clone(),
                router,
                clients: Vec::new(),
                up: BinaryHeap::new(),
                down: BinaryHeap::new(),
                seq: 0,
                observed: Vec::new(),
                subscribed: Vec::new(),
                faults: Vec::new(),
                observer_wakers: Vec::new(),
            })),
        }
    }

    /// Connects a client over a link with `params`; returns its MQTT session.
    pub fn connect(&self, client_id: &str, params: LinkParams) -> Result<SimMqttClient, String> {
        let mut inner = self.inner.borrow_mut();
        if inner.clients.iter().any(|c| c.name == client_id) {
            return Err(format!("client id {client_id} is already connected"));
        }
        let router_id = inner.router.connect(client_id)?;
        let rng = inner.handle.rng(&format!("link:{client_id}"));
        inner.clients.push(ClientState {
            name: client_id.to_string(),
            router_id,
            params,
            rng,
            faults: Windows::default(),
            last_up: 0,
            last_down: 0,
            subscriptions: BTreeMap::new(),
            inbox: VecDeque::new(),
            rx_waker: None,
            stats: LinkStats::default(),
        });
        let index = inner.clients.len() - 1;
        Ok(SimMqttClient {
            net: self.clone(),
            index,
            name: client_id.to_string(),
        })
    }

    fn client_index(&self, client_id: &str) -> Option<usize> {
        self.inner
            .borrow()
            .clients
            .iter()
            .position(|c| c.name == client_id)
    }

    /// Link statistics of a client.
    pub fn stats(&self, client_id: &str) -> Option<LinkStats> {
        let i = self.client_index(client_id)?;
        Some(self.inner.borrow().clients[i].stats.clone())
    }

    /// Starts an outage on a client's link, both ways, for `duration`.
    pub fn outage(&self, client_id: &str, duration: Nanos) -> bool {
        self.with_faults(
            client_id,
            ("outage", duration, None),
            json!({ "duration_ns": duration }),
            |w, now| w.outage_until = w.outage_until.max(now.saturating_add(duration)),
        )
    }

    /// Loses messages with probability `p` (on top of the link's own loss) for `duration`.
    pub fn loss(&self, client_id: &str, p: f64, duration: Nanos) -> bool {
        self.with_faults(
            client_id,
            ("loss", duration, Some(p)),
            json!({ "probability": p, "duration_ns": duration }),
            |w, now| w.loss = Some((p, now.saturating_add(duration))),
        )
    }

    /// Adds `extra` latency each way for `duration`.
    pub fn extra_latency(&self, client_id: &str, extra: Nanos, duration: Nanos) -> bool {
        self.with_faults(
            client_id,
            ("extra_latency", duration, None),
            json!({ "latency_ns": extra, "duration_ns": duration }),
            |w, now| w.extra_latency = Some((extra, now.saturating_add(duration))),
        )
    }

    fn with_faults(
        &self,
        client_id: &str,
        (kind, duration, probability): (&'static str, Nanos, Option<f64>),
        params: serde_json::Value,
        f: impl FnOnce(&mut Windows, Nanos),
    ) -> bool {
        let Some(i) = self.client_index(client_id) else {
            return false;
        };
        let mut inner = self.inner.borrow_mut();
        let now = inner.handle.now();
        f(&mut inner.clients[i].faults, now);
        inner.faults.push(LinkFault {
            client: client_id.to_owned(),
            kind,
            from: now,
            until: now.saturating_add(duration),
            probability,
        });
        inner.handle.trace(
            channels::FAULTS,
            json!({ "target": "link", "device": client_id, "fault": kind, "params": params }),
        );
        true
    }

    /// Every message the broker has received so far, in arrival order.
    pub fn observed(&self) -> std::cell::Ref<'_, [Observed]> {
        std::cell::Ref::map(self.inner.borrow(), |i| i.observed.as_slice())
    }

    /// Number of messages the broker has received so far.
    pub fn observed_len(&self) -> usize {
        self.inner.borrow().observed.len()
    }

    /// Waits until the broker has received more than `seen` messages.
    pub async fn observe_after(&self, seen: usize) {
        self.changed_after(seen, usize::MAX).await
    }

    /// Every link fault started so far, in order.
    pub fn faults(&self) -> Vec<LinkFault> {
        self.inner.borrow().faults.clone()
    }

    /// Clients whose link loses messages on its own (`loss` > 0), with the probability.
    pub fn lossy_links(&self) -> Vec<(String, f64)> {
        self.inner
            .borrow()
            .clients
            .iter()
            .filter(|c| c.params.loss > 0.0)
            .map(|c| (c.name.clone(), c.params.loss))
            .collect()
    }

    /// Every subscription the broker has taken so far, in order.
    pub fn subscribed(&self) -> std::cell::Ref<'_, [Subscribed]> {
        std::cell::Ref::map(self.inner.borrow(), |i| i.subscribed.as_slice())
    }

    /// Waits until the broker has received more than `messages` messages or
    /// taken more than `subscriptions` subscriptions.
    pub async fn changed_after(&self, messages: usize, subscriptions: usize) {
        poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            if inner.observed.len() > messages || inner.subscribed.len() > subscriptions {
                Poll::Ready(())
            } else {
                inner.observer_wakers.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl Process for Network {
    fn next_due(&mut self) -> Option<Nanos> {
        let inner = self.inner.borrow();
        let up = inner.up.peek().map(|Reverse(e)| e.at);
        let down = inner.down.peek().map(|Reverse(e)| e.at);
        match (up, down) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn run_due(&mut self, now: Nanos) -> Result<bool, SimError> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let mut did = false;
        let mut batch: Vec<(usize, RoutedPublish, QoS)> = Vec::new();
        let fail = |message: String| SimError::Process {
            process: "broker".into(),
            message,
            at: now,
        };
        while inner.up.peek().is_some_and(|Reverse(e)| e.at <= now) {
            let Reverse(e) = inner.up.pop().expect("peeked");
            did = true;
            match e.event {
                UpEvent::Publish {
                    topic,
                    payload,
                    qos,
                } => {
                    let from = inner.clients[e.client].router_id;
                    batch.push((
                        e.client,
                        RoutedPublish {
                            from,
                            topic,
                            payload,
                        },
                        qos,
                    ));
                }
                UpEvent::Subscribe { filter, qos, ack } => {
                    inner.flush(now, &mut batch).map_err(fail)?;
                    let router_id = inner.clients[e.client].router_id;
                    let result = inner
                        .router
                        .subscribe(router_id, &filter)
                        .map_err(|_| MqttError::SubscribeRefused);
                    if result.is_ok() {
                        let client = inner.clients[e.client].name.clone();
                        inner.subscribed.push(Subscribed {
                            time: now,
                            client,
                            filter: filter.clone(),
                        });
                        inner.clients[e.client].subscriptions.insert(filter, qos);
                        for w in inner.observer_wakers.drain(..) {
                            w.wake();
                        }
                    }
                    // SUBACK rides the link back; assume it is not lost (TCP retransmits).
                    let at = inner.clients[e.client]
                        .transit(now, QoS::AtLeastOnce, false)
                        .unwrap_or(now);
                    inner.push_down(at, e.client, DownEvent::SubAck(ack, result));
                }
            }
        }
        inner.flush(now, &mut batch).map_err(fail)?;
        while inner.down.peek().is_some_and(|Reverse(e)| e.at <= now) {
            let Reverse(e) = inner.down.pop().expect("peeked");
            did = true;
            match e.event {
                DownEvent::Message(m) => {
                    let c = &mut inner.clients[e.client];
                    c.stats.received += 1;
                    c.inbox.push_back(m);
                    if let Some(w) = c.rx_waker.take() {
                        w.wake();
                    }
                }
                DownEvent::SubAck(slot, result) => {
                    let mut slot = slot.borrow_mut();
                    slot.result = Some(result);
                    if let Some(w) = slot.waker.take() {
                        w.wake();
                    }
                }
            }
        }
        Ok(did)
    }
}

/// The MQTT session a simulated device holds (`twinrig_hal::MqttClient`).
#[derive(Clone)]
pub struct SimMqttClient {
    net: Network,
    index: usize,
    name: String,
}

impl SimMqttClient {
    /// Messages waiting in the session's inbox.
    pub fn pending(&self) -> usize {
        self.net.inner.borrow().clients[self.index].inbox.len()
    }
}

impl twinrig_hal::MqttClient for SimMqttClient {
    fn client_id(&self) -> &str {
        &self.name
    }

    async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), MqttError> {
        validate_topic_filter(filter)?;
        let ack = Rc::new(RefCell::new(AckSlot::default()));
        {
            let mut inner = self.net.inner.borrow_mut();
            let now = inner.handle.now();
            let at = inner.clients[self.index]
                .transit(now, QoS::AtLeastOnce, true)
                .unwrap_or(now);
            inner.push_up(
                at,
                self.index,
                UpEvent::Subscribe {
                    filter: filter.to_string(),
                    qos,
                    ack: ack.clone(),
                },
            );
        }
        poll_fn(|cx| {
            let mut slot = ack.borrow_mut();
            match slot.result.take() {
                Some(r) => Poll::Ready(r),
                None => {
                    slot.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    async fn publish(&self, topic: &str, payload: &[u8], qos: QoS) -> Result<(), MqttError> {
        validate_publish_topic(topic)?;
        let mut inner = self.net.inner.borrow_mut();
        let now = inner.handle.now();
        let c = &mut inner.clients[self.index];
        c.stats.published += 1;
        if let Some(at) = c.transit(now, qos, true) {
            inner.push_up(
                at,
                self.index,
                UpEvent::Publish {
                    topic: topic.to_string(),
                    payload: payload.to_vec(),
                    qos,
                },
            );
        }
        Ok(())
    }

    async fn receive(&self) -> Result<MqttMessage, MqttError> {
        poll_fn(|cx| {
            let mut inner = self.net.inner.borrow_mut();
            let c = &mut inner.clients[self.index];
            match c.inbox.pop_front() {
                Some(m) => Poll::Ready(Ok(m)),
                None => {
                    c.rx_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}
