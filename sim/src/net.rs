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
//! A link whose own loss is 1.0 loses everything: no message, subscription or
//! acknowledgement ever crosses it, and whoever waits for one waits until its
//! own timeout (a `wait_for`, readiness). A `loss` fault of probability 1.0
//! holds QoS 1 messages until the fault ends. Retries are drawn one by one (so
//! runs with ordinary loss keep their exact draws) up to [`RETRY_DRAWS`]; past
//! that the remaining number of losses is drawn at once from the geometric
//! distribution the single draws would follow, so even a loss of 0.999999 costs
//! a bounded amount of work per message.
//!
//! The broker's message log ([`Network::observed`]) keeps every message unless
//! a retention rule is set ([`Network::set_retention`]): then a message is
//! dropped once every registered reader ([`ObservedCursor`]) has passed it,
//! it is older than the current instant and not among the newest `window`,
//! unless the rule keeps it for the whole run. A device that publishes
//! telemetry for hours then costs no memory that grows with time.
//!
//! Routing is the broker's job, behind [`Router`]; [`Network`] is a
//! [`Process`](crate::Process) that hands the broker every publish arriving at
//! one instant as one batch and schedules the deliveries it returns.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::future::poll_fn;
use std::ops::{Index, RangeFrom};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

use rand::Rng;
use rand_distr::{Distribution, Exp, Normal};
use serde_json::json;
use twinrig_hal::mqtt::{validate_publish_topic, validate_topic_filter};
use twinrig_hal::{MqttError, MqttMessage, QoS};

use crate::executor::{WaitOn, note_wait};
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
                    Ok(d) => min.saturating_add(d.sample(rng).round() as Nanos),
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
    /// Removes a client's subscription to a filter (none: nothing to do).
    fn unsubscribe(&mut self, client: usize, filter: &str) -> Result<(), String>;
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

/// The broker's message log: every message it received, in arrival order,
/// by absolute index (`0` is the run's first message).
///
/// Without a retention rule nothing is ever dropped. With one, the log keeps
/// a contiguous tail from [`ObservedLog::first_index`] on (indexable) and,
/// before it, only the messages the rule keeps for the whole run
/// ([`ObservedLog::iter`] gives both, in arrival order).
#[derive(Debug, Default)]
pub struct ObservedLog {
    /// Messages before `base` that the retention rule keeps.
    kept: Vec<Observed>,
    /// Every message from absolute index `base` on.
    recent: Vec<Observed>,
    base: usize,
}

impl ObservedLog {
    /// How many messages the broker has received so far (dropped ones included).
    pub fn len(&self) -> usize {
        self.base + self.recent.len()
    }

    /// True before the first message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The absolute index of the oldest message still held contiguously;
    /// `log[i..]` is valid for every `i` from here to [`ObservedLog::len`].
    pub fn first_index(&self) -> usize {
        self.base
    }

    /// Every message still held, in arrival order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Observed> + '_ {
        self.kept.iter().chain(self.recent.iter())
    }

    /// Messages held (for measurements).
    pub fn held(&self) -> usize {
        self.kept.len() + self.recent.len()
    }
}

impl Index<RangeFrom<usize>> for ObservedLog {
    type Output = [Observed];

    /// The messages from absolute index `range.start` on. Panics when that
    /// message was dropped: a reader that needs it must hold a cursor.
    fn index(&self, range: RangeFrom<usize>) -> &[Observed] {
        let start = range
            .start
            .checked_sub(self.base)
            .expect("a dropped message was read: readers hold an ObservedCursor");
        &self.recent[start..]
    }
}

/// A reader's position in the message log: messages at or after it are kept
/// while the cursor lives. Dropping it lets the log forget what it has read.
#[derive(Debug)]
pub struct ObservedCursor {
    position: Rc<Cell<usize>>,
}

impl ObservedCursor {
    /// The absolute index of the next message the reader needs.
    pub fn position(&self) -> usize {
        self.position.get()
    }

    /// The reader has used everything before `position`.
    pub fn advance_to(&self, position: usize) {
        self.position.set(self.position.get().max(position));
    }
}

/// Which messages a run keeps in the log beyond its readers.
struct Retention {
    /// True for a message to keep for the whole run.
    keep: Box<dyn Fn(&Observed) -> bool>,
    /// The newest messages always held, whatever the readers.
    window: usize,
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
    /// Messages lost for good (QoS 0, or any message on a link whose loss is 1.0).
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
    Unsubscribe {
        filter: String,
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
    /// The name shared with wait notes.
    label: Rc<str>,
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

/// Per-message retries drawn one by one before the rest are drawn at once.
pub const RETRY_DRAWS: u64 = 1000;

impl ClientState {
    /// When a message sent now with `qos` arrives over this link, or None if
    /// it never does (QoS 0 lost, or a link that loses everything).
    fn transit(&mut self, now: Nanos, qos: QoS, up: bool) -> Option<Nanos> {
        let mut send_at = now;
        let mut drawn = 0u64;
        // Set when a geometric draw already decided this attempt gets through.
        let mut gets_through = false;
        let retry = self.params.qos1_retry.max(1);
        loop {
            if send_at < self.faults.outage_until {
                if qos == QoS::AtMostOnce {
                    self.stats.lost += 1;
                    return None;
                }
                send_at = self.faults.outage_until;
                gets_through = false;
            }
            // The loss in force at `send_at`, and until when it holds.
            let (loss, regime_until) = match self.faults.loss {
                Some((p, until)) if send_at < until => (p.max(self.params.loss), Some(until)),
                _ => (self.params.loss, None),
            };
            let lost = if gets_through || loss.is_nan() || loss <= 0.0 {
                false
            } else if loss >= 1.0 {
                true
            } else {
                drawn += 1;
                self.rng.random::<f64>() < loss
            };
            if lost {
                if qos == QoS::AtMostOnce {
                    self.stats.lost += 1;
                    return None;
                }
                // Attempts left before the loss changes (a fault ends).
                let regime_left = regime_until.map(|until| (until - send_at).div_ceil(retry));
                let skip = if loss >= 1.0 {
                    match regime_left {
                        // Certain until the fault ends: the first retry after it.
                        Some(left) => left,
                        // The link loses everything, for ever.
                        None => {
                            self.stats.lost += 1;
                            return None;
                        }
                    }
                } else if drawn >= RETRY_DRAWS {
                    // The failures still to come before one gets through:
                    // geometric, as the single draws would give.
                    let u = 1.0 - self.rng.random::<f64>();
                    let failing = (u.ln() / loss.ln()).floor() as u64;
                    let through_at = failing.saturating_add(1);
                    match regime_left {
                        Some(left) if through_at >= left => left,
                        _ => {
                            gets_through = true;
                            through_at
                        }
                    }
                } else {
                    1
                };
                self.stats.retries = self.stats.retries.saturating_add(skip);
                send_at = send_at.saturating_add(skip.saturating_mul(retry));
                if send_at == Nanos::MAX {
                    // Past the end of virtual time: it never arrives.
                    self.stats.lost += 1;
                    return None;
                }
                continue;
            }
            let mut latency = self.params.latency.sample(&mut self.rng);
            if let Some((extra, until)) = self.faults.extra_latency
                && send_at < until
            {
                latency = latency.saturating_add(extra);
            }
            let last = if up {
                &mut self.last_up
            } else {
                &mut self.last_down
            };
            let at = send_at.saturating_add(latency).max(*last);
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
    observed: ObservedLog,
    retention: Option<Retention>,
    cursors: Vec<Weak<Cell<usize>>>,
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
            self.observed.recent.push(Observed {
                time: now,
                from: from_name,
                topic: p.topic,
                payload: p.payload,
                qos,
                to,
            });
        }
        self.compact(now);
        for w in self.observer_wakers.drain(..) {
            w.wake();
        }
        Ok(())
    }

    /// Drops the messages every reader has passed, that are older than
    /// `now`, not among the newest `window` and not kept by the rule.
    fn compact(&mut self, now: Nanos) {
        let Some(retention) = &self.retention else {
            return;
        };
        let log = &mut self.observed;
        // Amortised: compact when the tail is twice the window.
        if log.recent.len() <= retention.window.saturating_mul(2) {
            return;
        }
        self.cursors.retain(|c| c.strong_count() > 0);
        let readers = self
            .cursors
            .iter()
            .filter_map(Weak::upgrade)
            .map(|c| c.get())
            .min()
            .unwrap_or(usize::MAX);
        let mut cut = readers
            .saturating_sub(log.base)
            .min(log.recent.len().saturating_sub(retention.window));
        // A reader starting now looks back to the start of this instant.
        while cut > 0 && log.recent[cut - 1].time >= now {
            cut -= 1;
        }
        if cut == 0 {
            return;
        }
        for m in log.recent.drain(..cut) {
            if (retention.keep)(&m) {
                log.kept.push(m);
            }
        }
        log.base += cut;
    }
}

/// Payloads go into the trace as text when they are UTF-8, else as `{"hex": ..}`.
pub fn payload_for_trace(payload: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(payload) {
        Ok(s) => serde_json::Value::String(s.to_string()),
        Err(_) => json!({ "hex": hex::encode(payload) }),
    }
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
                observed: ObservedLog::default(),
                retention: None,
                cursors: Vec::new(),
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
            label: Rc::from(client_id),
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

    /// The broker's message log: every message it has received so far, in
    /// arrival order (less what a retention rule let it drop).
    pub fn observed(&self) -> std::cell::Ref<'_, ObservedLog> {
        std::cell::Ref::map(self.inner.borrow(), |i| &i.observed)
    }

    /// Lets the message log drop what no reader needs any more: a message
    /// goes once every [`ObservedCursor`] has passed it, it is older than the
    /// current instant and not among the newest `window`, unless `keep` says
    /// it is needed for the whole run.
    pub fn set_retention(&self, keep: impl Fn(&Observed) -> bool + 'static, window: usize) {
        self.inner.borrow_mut().retention = Some(Retention {
            keep: Box::new(keep),
            window,
        });
    }

    /// A reader's cursor at absolute index `position` (clamped to the
    /// messages still held): the log keeps everything from it on.
    pub fn cursor(&self, position: usize) -> ObservedCursor {
        let mut inner = self.inner.borrow_mut();
        let position = position.clamp(inner.observed.base, inner.observed.len());
        let cell = Rc::new(Cell::new(position));
        inner.cursors.push(Rc::downgrade(&cell));
        ObservedCursor { position: cell }
    }

    /// A cursor at the first message that arrived at or after `time` (for a
    /// reader that looks back to the start of the current instant).
    pub fn cursor_since(&self, time: Nanos) -> ObservedCursor {
        let position = {
            let inner = self.inner.borrow();
            let log = &inner.observed;
            log.base + log.recent.partition_point(|m| m.time < time)
        };
        self.cursor(position)
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
                note_wait(WaitOn::Event("news from the broker"));
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
                    // SUBACK rides the link back like a QoS 1 message (TCP
                    // retransmits); over a link that loses everything it never arrives.
                    if let Some(at) = inner.clients[e.client].transit(now, QoS::AtLeastOnce, false)
                    {
                        inner.push_down(at, e.client, DownEvent::SubAck(ack, result));
                    }
                }
                UpEvent::Unsubscribe { filter, ack } => {
                    inner.flush(now, &mut batch).map_err(fail)?;
                    let router_id = inner.clients[e.client].router_id;
                    let result = inner
                        .router
                        .unsubscribe(router_id, &filter)
                        .map_err(|_| MqttError::SubscribeRefused);
                    if result.is_ok() {
                        inner.clients[e.client].subscriptions.remove(&filter);
                    }
                    // The UNSUBACK rides back as a SUBACK does.
                    if let Some(at) = inner.clients[e.client].transit(now, QoS::AtLeastOnce, false)
                    {
                        inner.push_down(at, e.client, DownEvent::SubAck(ack, result));
                    }
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
    /// Removes the session's subscription to `filter`; resolves on the
    /// broker's UNSUBACK. (Not part of the HAL's client: no device
    /// unsubscribes; `twinrig serve cloud` serves its clients' UNSUBSCRIBE.)
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), MqttError> {
        validate_topic_filter(filter)?;
        let filter = filter.to_string();
        self.acknowledged("an UNSUBACK for", |ack| UpEvent::Unsubscribe {
            filter,
            ack,
        })
        .await
    }

    /// Sends a request up the link and waits for its acknowledgement.
    async fn acknowledged(
        &self,
        what: &'static str,
        request: impl FnOnce(Rc<RefCell<AckSlot>>) -> UpEvent,
    ) -> Result<(), MqttError> {
        let ack = Rc::new(RefCell::new(AckSlot::default()));
        {
            let mut inner = self.net.inner.borrow_mut();
            let now = inner.handle.now();
            // Over a link that loses everything the request never arrives
            // and the acknowledgement never comes (the caller's timeout decides).
            if let Some(at) = inner.clients[self.index].transit(now, QoS::AtLeastOnce, true) {
                inner.push_up(at, self.index, request(ack.clone()));
            }
        }
        let label = self.net.inner.borrow().clients[self.index].label.clone();
        poll_fn(|cx| {
            let mut slot = ack.borrow_mut();
            match slot.result.take() {
                Some(r) => Poll::Ready(r),
                None => {
                    slot.waker = Some(cx.waker().clone());
                    note_wait(WaitOn::Named(what, label.clone()));
                    Poll::Pending
                }
            }
        })
        .await
    }

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
        let filter = filter.to_string();
        self.acknowledged("a SUBACK for", |ack| UpEvent::Subscribe {
            filter,
            qos,
            ack,
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
                    note_wait(WaitOn::Named("an MQTT message for", c.label.clone()));
                    Poll::Pending
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MILLIS, RunStop, SECONDS, Sim};
    use twinrig_hal::MqttClient;

    /// A broker of a few lines: exact subscriptions, matched with MQTT rules.
    #[derive(Default)]
    struct MemRouter {
        clients: usize,
        subscriptions: Vec<(usize, String)>,
    }

    impl Router for MemRouter {
        fn connect(&mut self, _client: &str) -> Result<usize, String> {
            self.clients += 1;
            Ok(self.clients - 1)
        }
        fn subscribe(&mut self, client: usize, filter: &str) -> Result<(), String> {
            self.subscriptions.push((client, filter.to_owned()));
            Ok(())
        }
        fn unsubscribe(&mut self, client: usize, filter: &str) -> Result<(), String> {
            self.subscriptions
                .retain(|(c, f)| (*c, f.as_str()) != (client, filter));
            Ok(())
        }
        fn route(&mut self, batch: &[RoutedPublish]) -> Result<Vec<RoutedDelivery>, String> {
            let mut out = Vec::new();
            for (i, p) in batch.iter().enumerate() {
                for (to, filter) in &self.subscriptions {
                    if twinrig_hal::mqtt::topic_matches(filter, &p.topic) {
                        out.push(RoutedDelivery {
                            publish: i,
                            to: *to,
                            filter: filter.clone(),
                            topic: p.topic.clone(),
                            payload: p.payload.clone(),
                        });
                    }
                }
            }
            Ok(out)
        }
    }

    fn world() -> (Sim, Network) {
        let sim = Sim::new(7);
        let net = Network::new(&sim.handle(), Box::<MemRouter>::default());
        (sim, net)
    }

    fn link(loss: f64, retry: Nanos) -> LinkParams {
        LinkParams {
            latency: LatencyModel::Fixed(10 * MILLIS),
            loss,
            qos1_retry: retry,
        }
    }

    /// The livelock of issue 16: a QoS 1 publish over a link with loss 1.0
    /// retried for ever at one virtual instant. It now never arrives, the
    /// run goes on to its limit, and the link counts it lost.
    #[test]
    fn livelock_link_loss_1_0_never_delivers_and_virtual_time_advances() {
        let (mut sim, net) = world();
        sim.add_process("broker", net.clone());
        let dead = net.connect("dead", link(1.0, SECONDS)).unwrap();
        let ok = net.connect("ok", link(0.0, SECONDS)).unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let subscribed = Rc::new(Cell::new(false));
        let s = subscribed.clone();
        sim.spawn("ok", async move {
            ok.subscribe("to/ok", QoS::AtLeastOnce).await.unwrap();
            let m = ok.receive().await.unwrap();
            g.borrow_mut().push(m.topic);
        });
        let d = dead.clone();
        sim.spawn("dead", async move {
            d.publish("to/ok", b"x", QoS::AtLeastOnce).await.unwrap();
            d.publish("to/ok", b"y", QoS::AtMostOnce).await.unwrap();
            // Its own subscription never reaches the broker.
            d.subscribe("to/dead", QoS::AtLeastOnce).await.unwrap();
            s.set(true);
        });
        let stop = sim.run_until(60 * SECONDS, |_| false).unwrap();
        assert_eq!(stop, RunStop::Idle);
        assert!(got.borrow().is_empty(), "{:?}", got.borrow());
        assert!(!subscribed.get());
        assert_eq!(net.observed_len(), 0);
        let stats = net.stats("dead").unwrap();
        assert_eq!((stats.published, stats.lost), (2, 3), "{stats:?}");
        assert!(
            sim.describe_waiting(8)
                .contains("`dead` waits for a SUBACK for dead"),
            "{}",
            sim.describe_waiting(8)
        );
    }

    /// A loss fault of probability 1.0 holds QoS 1 messages until it ends,
    /// in one step however small the retry interval.
    #[test]
    fn livelock_loss_fault_1_0_holds_qos1_until_it_ends() {
        let (mut sim, net) = world();
        sim.add_process("broker", net.clone());
        let a = net.connect("a", link(0.0, 1)).unwrap();
        let b = net.connect("b", link(0.0, 1)).unwrap();
        // 100 s of certain loss with a 1 ns retry: 1e11 retries one by one.
        assert!(net.loss("a", 1.0, 100 * SECONDS));
        let arrived = Rc::new(Cell::new(None));
        let at = arrived.clone();
        let h = sim.handle();
        sim.spawn("b", async move {
            b.subscribe("t", QoS::AtLeastOnce).await.unwrap();
            b.receive().await.unwrap();
            at.set(Some(h.now()));
        });
        let h = sim.handle();
        sim.spawn("a", async move {
            h.sleep(SECONDS).await;
            a.publish("t", b"x", QoS::AtLeastOnce).await.unwrap();
        });
        sim.run_until(1000 * SECONDS, |_| false).unwrap();
        // Sent again at the fault's end (100 s), then 10 ms up and 10 ms down.
        assert_eq!(arrived.get(), Some(100 * SECONDS + 20 * MILLIS));
        assert_eq!(net.stats("a").unwrap().retries, 99 * SECONDS);
    }

    /// A loss just below 1.0 costs a bounded number of draws per message
    /// (the rest is one geometric draw); the message still gets through.
    #[test]
    fn near_certain_loss_gets_through_with_bounded_work() {
        let (mut sim, net) = world();
        sim.add_process("broker", net.clone());
        let a = net.connect("a", link(1.0 - 1e-9, 1)).unwrap();
        let b = net.connect("b", link(0.0, 1)).unwrap();
        let arrived = Rc::new(Cell::new(false));
        let ok = arrived.clone();
        sim.spawn("b", async move {
            b.subscribe("t", QoS::AtLeastOnce).await.unwrap();
            b.receive().await.unwrap();
            ok.set(true);
        });
        let h = sim.handle();
        sim.spawn("a", async move {
            // After b has subscribed, however few retries the draw gives.
            h.sleep(SECONDS).await;
            a.publish("t", b"x", QoS::AtLeastOnce).await.unwrap();
        });
        sim.run_until(Nanos::MAX, |_| false).unwrap();
        assert!(arrived.get());
        assert!(net.stats("a").unwrap().retries > RETRY_DRAWS);
    }

    /// Memory for long runs: with a retention rule the log drops what its
    /// readers have passed, keeps what the rule keeps, and indexes stay
    /// absolute.
    #[test]
    fn message_log_forgets_what_every_reader_has_passed() {
        let (mut sim, net) = world();
        sim.add_process("broker", net.clone());
        net.set_retention(|m| m.topic == "keep", 0);
        let reader = net.cursor(0);
        let a = net.connect("a", link(0.0, SECONDS)).unwrap();
        let h = sim.handle();
        sim.spawn("a", async move {
            for i in 0..100u32 {
                let topic = if i % 10 == 0 { "keep" } else { "telemetry" };
                a.publish(topic, &i.to_be_bytes(), QoS::AtMostOnce)
                    .await
                    .unwrap();
                h.sleep(SECONDS).await;
            }
        });
        sim.run_until(50 * SECONDS + 500 * MILLIS, |_| false)
            .unwrap();
        // The reader has read nothing: everything is still there.
        assert_eq!(net.observed().held(), 51);
        assert_eq!(net.observed()[0..].len(), 51);
        reader.advance_to(40);
        sim.run_until(100 * SECONDS + 500 * MILLIS, |_| false)
            .unwrap();
        let log = net.observed();
        assert_eq!(log.len(), 100);
        assert_eq!(log.first_index(), 40);
        assert_eq!(log[40..].len(), 60);
        assert_eq!(log[40..][0].payload, 40u32.to_be_bytes());
        // Before the reader: only the kept ones (0, 10, 20, 30).
        let kept: Vec<Nanos> = log.iter().take(4).map(|m| m.time / SECONDS).collect();
        assert_eq!(kept, [0, 10, 20, 30]);
        assert_eq!(log.held(), 64);
        drop(log);
        // Without readers only this instant and the kept ones stay.
        drop(reader);
        let h = sim.handle();
        let c = net.connect("c", link(0.0, SECONDS)).unwrap();
        sim.spawn("c", async move {
            h.sleep(SECONDS).await;
            c.publish("telemetry", b"last", QoS::AtMostOnce)
                .await
                .unwrap();
        });
        sim.run_until(200 * SECONDS, |_| false).unwrap();
        let log = net.observed();
        assert_eq!(log.len(), 101);
        assert_eq!(log.held(), 10 + 1);
    }

    /// Without a retention rule nothing is ever dropped (devices' own tests
    /// read the whole log).
    #[test]
    fn message_log_keeps_everything_without_a_rule() {
        let (mut sim, net) = world();
        sim.add_process("broker", net.clone());
        let a = net.connect("a", link(0.0, SECONDS)).unwrap();
        let h = sim.handle();
        sim.spawn("a", async move {
            for _ in 0..10_000 {
                a.publish("t", b"x", QoS::AtMostOnce).await.unwrap();
                h.sleep(MILLIS).await;
            }
        });
        sim.run_until(Nanos::MAX, |_| false).unwrap();
        assert_eq!(net.observed().held(), 10_000);
        assert_eq!(net.observed()[0..].len(), 10_000);
    }
}
