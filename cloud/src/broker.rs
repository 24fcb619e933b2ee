//! The embedded broker: rumqttd with in-process links, routed in batches.
//!
//! rumqttd keeps each publisher's order at every subscriber but interleaves
//! different publishers arbitrarily from run to run. The harness needs the same
//! order every run, so [`Broker::route`] works in batches: it predicts which
//! subscriptions each publish reaches, hands the whole batch to rumqttd, waits
//! for exactly the predicted deliveries on every subscriber's link, and then
//! orders them by batch position. The payloads handed back are the bytes that
//! came out of rumqttd. A delivery rumqttd makes that was not predicted (or one
//! it does not make) is an error, never silently ignored.
//!
//! The broker's router runs on its own thread; the only wall-clock reading
//! here is a watchdog deadline for a broker that stops answering, which ends
//! the run with an error and never changes what a run computes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Config, Notification, RouterConfig};

use crate::topic::{decode, encode, spec_matches};

/// How long to wait for rumqttd before declaring it stuck (wall clock; a watchdog only).
const WATCHDOG: Duration = Duration::from_secs(20);

/// Index of a connected client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub usize);

/// A publish handed to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Who publishes.
    pub from: ClientId,
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
}

/// One message the broker delivered to one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Position of the publish in the batch.
    pub publish: usize,
    /// Who receives it.
    pub to: ClientId,
    /// The subscription filter that matched.
    pub filter: String,
    /// Topic as delivered.
    pub topic: String,
    /// Payload as delivered.
    pub payload: Vec<u8>,
}

/// The broker failed or disagreed with the harness.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BrokerError {
    /// rumqttd refused a link.
    #[error("broker refused connection for client {client}: {message}")]
    Connect {
        /// Client id.
        client: String,
        /// rumqttd's reason.
        message: String,
    },
    /// A client id was used twice.
    #[error("client id {0} is already connected")]
    DuplicateClient(String),
    /// The link to rumqttd failed.
    #[error("broker link for {client} failed: {message}")]
    Link {
        /// Client id.
        client: String,
        /// What failed.
        message: String,
    },
    /// rumqttd did not deliver what it should have in time.
    #[error("broker stalled: {client} got {got} of {expected} deliveries within {WATCHDOG:?}")]
    Stalled {
        /// Client id.
        client: String,
        /// Deliveries received.
        got: usize,
        /// Deliveries expected.
        expected: usize,
    },
    /// rumqttd delivered something the harness did not predict.
    #[error("broker delivered an unexpected message on {topic} to {client}")]
    Unexpected {
        /// Client id.
        client: String,
        /// Topic.
        topic: String,
    },
}

struct Client {
    id: String,
    tx: LinkTx,
    rx: LinkRx,
    filters: Vec<String>,
}

/// The embedded rumqttd broker and the harness's view of its subscriptions.
pub struct Broker {
    _broker: rumqttd::Broker,
    clients: Vec<Client>,
    by_name: BTreeMap<String, ClientId>,
    delivered: u64,
    /// Filters without wildcards, by encoded topic: (client, filter index).
    /// A fleet subscribes thousands of exact topics; looking them up instead of
    /// matching every filter against every publish keeps routing linear.
    exact: BTreeMap<String, Vec<(usize, usize)>>,
    /// Filters with `+` or `#`, encoded, with (client, filter index).
    wild: Vec<(String, usize, usize)>,
}

/// rumqttd's router limits, set in code: `RouterConfig::default()` is all zeros,
/// which refuses every connection.
fn router_config() -> RouterConfig {
    RouterConfig {
        max_connections: 100_000,
        max_outgoing_packet_count: 200,
        max_segment_size: 100 * 1024 * 1024,
        max_segment_count: 10,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    }
}

impl Broker {
    /// Starts rumqttd's router (its own thread); no listener, no sockets.
    /// Dropping the broker ends that thread (patches/README.md).
    pub fn new() -> Broker {
        Broker::with_router_id(0)
    }

    /// [`Broker::new`] with the router's id (its thread is `router-{id}`).
    fn with_router_id(id: usize) -> Broker {
        let config = Config {
            id,
            router: router_config(),
            ..Config::default()
        };
        Broker {
            _broker: rumqttd::Broker::new(config),
            clients: Vec::new(),
            by_name: BTreeMap::new(),
            delivered: 0,
            exact: BTreeMap::new(),
            wild: Vec::new(),
        }
    }

    /// Opens an in-process link for `client_id`.
    pub fn connect(&mut self, client_id: &str) -> Result<ClientId, BrokerError> {
        if self.by_name.contains_key(client_id) {
            return Err(BrokerError::DuplicateClient(client_id.to_string()));
        }
        let (tx, rx) =
            self._broker
                .link(&link_name(client_id))
                .map_err(|e| BrokerError::Connect {
                    client: client_id.to_string(),
                    message: e.to_string(),
                })?;
        let id = ClientId(self.clients.len());
        self.clients.push(Client {
            id: client_id.to_string(),
            tx,
            rx,
            filters: Vec::new(),
        });
        self.by_name.insert(client_id.to_string(), id);
        Ok(id)
    }

    /// The client id string of a client.
    pub fn client_name(&self, id: ClientId) -> &str {
        &self.clients[id.0].id
    }

    /// The index of `client`'s live subscription to `filter`, if any.
    fn subscription(&self, client: ClientId, filter: &str) -> Option<usize> {
        let encoded = encode(filter);
        let mine = |&(c, fi): &(usize, usize)| (c == client.0).then_some(fi);
        if encoded.contains(['+', '#']) {
            self.wild
                .iter()
                .filter(|(f, _, _)| *f == encoded)
                .find_map(|(_, c, fi)| mine(&(*c, *fi)))
        } else {
            self.exact.get(&encoded)?.iter().find_map(mine)
        }
    }

    /// Subscribes and waits for rumqttd's SUBACK, so that later publishes are routed to it.
    pub fn subscribe(&mut self, client: ClientId, filter: &str) -> Result<(), BrokerError> {
        if self.subscription(client, filter).is_some() {
            return Ok(());
        }
        let c = &mut self.clients[client.0];
        c.tx.subscribe(encode(filter))
            .map_err(|e| BrokerError::Link {
                client: c.id.clone(),
                message: e.to_string(),
            })?;
        acknowledged(c)?;
        let index = (client.0, c.filters.len());
        c.filters.push(filter.to_string());
        let encoded = encode(filter);
        if encoded.contains(['+', '#']) {
            self.wild.push((encoded, index.0, index.1));
        } else {
            self.exact.entry(encoded).or_default().push(index);
        }
        Ok(())
    }

    /// Removes a subscription and waits for rumqttd's UNSUBACK, so that
    /// later publishes are not routed to it (none: nothing to do).
    pub fn unsubscribe(&mut self, client: ClientId, filter: &str) -> Result<(), BrokerError> {
        let Some(fi) = self.subscription(client, filter) else {
            return Ok(());
        };
        let c = &mut self.clients[client.0];
        c.tx.unsubscribe(encode(filter))
            .map_err(|e| BrokerError::Link {
                client: c.id.clone(),
                message: e.to_string(),
            })?;
        acknowledged(c)?;
        // The filter keeps its index in `filters` (indexes stay valid);
        // only the lookups forget it.
        let encoded = encode(filter);
        self.wild.retain(|&(_, c, i)| (c, i) != (client.0, fi));
        if let Some(subscribers) = self.exact.get_mut(&encoded) {
            subscribers.retain(|&s| s != (client.0, fi));
            if subscribers.is_empty() {
                self.exact.remove(&encoded);
            }
        }
        Ok(())
    }

    /// Deliveries made so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Routes a batch of publishes through rumqttd and returns every delivery,
    /// ordered by (publish position, receiving client, subscription order).
    pub fn route(&mut self, batch: &[Outgoing]) -> Result<Vec<Delivery>, BrokerError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Predict: for each client, the (publish, filter) pairs rumqttd owes it, in batch order.
        let encoded: Vec<String> = batch.iter().map(|p| encode(&p.topic)).collect();
        let mut owed: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.clients.len()];
        let mut matches = Vec::new();
        for (i, topic) in encoded.iter().enumerate() {
            matches.clear();
            matches.extend(self.exact.get(topic).into_iter().flatten().copied());
            matches.extend(
                self.wild
                    .iter()
                    .filter(|(f, _, _)| spec_matches(f, topic))
                    .map(|&(_, c, fi)| (c, fi)),
            );
            // Client order, then subscription order: as a scan of every filter would give.
            matches.sort_unstable();
            for &(c, fi) in &matches {
                owed[c].push((i, fi));
            }
        }
        for (p, topic) in batch.iter().zip(encoded) {
            let c = &mut self.clients[p.from.0];
            c.tx.publish(topic, p.payload.clone())
                .map_err(|e| BrokerError::Link {
                    client: c.id.clone(),
                    message: e.to_string(),
                })?;
        }
        let mut out = Vec::new();
        for (c, expected) in owed.iter().enumerate() {
            if expected.is_empty() {
                continue;
            }
            let client = &mut self.clients[c];
            let mut matched: Vec<Option<(String, Vec<u8>)>> = vec![None; expected.len()];
            let deadline = Instant::now() + WATCHDOG;
            let mut got = 0;
            while got < expected.len() {
                let n = match client.rx.recv_deadline(deadline) {
                    Ok(Some(n)) => n,
                    Ok(None) => continue,
                    Err(_) => {
                        return Err(BrokerError::Stalled {
                            client: client.id.clone(),
                            got,
                            expected: expected.len(),
                        });
                    }
                };
                match n {
                    Notification::Forward(f) => {
                        let topic = decode(&String::from_utf8_lossy(&f.publish.topic));
                        let payload = f.publish.payload.to_vec();
                        // Identical (topic, payload) pairs are interchangeable, so
                        // taking the first unmatched one gives a stable order.
                        let slot = expected.iter().enumerate().position(|(k, (i, _))| {
                            matched[k].is_none()
                                && batch[*i].topic == topic
                                && batch[*i].payload == payload
                        });
                        match slot {
                            Some(k) => {
                                matched[k] = Some((topic, payload));
                                got += 1;
                            }
                            None => {
                                return Err(BrokerError::Unexpected {
                                    client: client.id.clone(),
                                    topic,
                                });
                            }
                        }
                    }
                    Notification::Unschedule => ready(client)?,
                    _ => {}
                }
            }
            for (k, (i, fi)) in expected.iter().enumerate() {
                let (topic, payload) = matched[k].take().expect("all matched");
                if !spec_matches(&client.filters[*fi], &topic) {
                    continue;
                }
                out.push(Delivery {
                    publish: *i,
                    to: ClientId(c),
                    filter: client.filters[*fi].clone(),
                    topic,
                    payload,
                });
            }
        }
        out.sort_by_key(|d| (d.publish, d.to));
        self.delivered += out.len() as u64;
        Ok(out)
    }
}

impl Default for Broker {
    fn default() -> Self {
        Broker::new()
    }
}

/// Waits for rumqttd's acknowledgement of a SUBSCRIBE or UNSUBSCRIBE.
fn acknowledged(c: &mut Client) -> Result<(), BrokerError> {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        match c.rx.recv_deadline(deadline) {
            Ok(Some(Notification::DeviceAck(_))) => return Ok(()),
            Ok(Some(Notification::Unschedule)) => ready(c)?,
            Ok(Some(Notification::Forward(f))) => {
                return Err(BrokerError::Unexpected {
                    client: c.id.clone(),
                    topic: String::from_utf8_lossy(&f.publish.topic).into_owned(),
                });
            }
            Ok(_) => {}
            Err(_) => {
                return Err(BrokerError::Stalled {
                    client: c.id.clone(),
                    got: 0,
                    expected: 1,
                });
            }
        }
    }
}

fn ready(c: &mut Client) -> Result<(), BrokerError> {
    c.rx.ready().map_err(|e| BrokerError::Link {
        client: c.id.clone(),
        message: e.to_string(),
    })
}

/// The name a client's link has inside rumqttd, which refuses client ids
/// with `+`, `$`, `#` or `/` that MQTT and AWS IoT allow (AWS assigns
/// `$GEN/...` ids itself): those characters, and `%`, are percent-encoded.
fn link_name(client_id: &str) -> String {
    let mut name = String::with_capacity(client_id.len());
    for c in client_id.chars() {
        match c {
            '+' | '$' | '#' | '/' | '%' => name.push_str(&format!("%{:02X}", c as u32)),
            c => name.push(c),
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router threads of id `id` alive in this process.
    #[cfg(target_os = "linux")]
    fn router_threads(id: usize) -> usize {
        let name = format!("router-{id}");
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim() == name)
            .count()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn dropping_the_broker_ends_its_router_thread() {
        // An id no other test uses, so parallel tests do not count.
        const ID: usize = 4242;
        let mut broker = Broker::with_router_id(ID);
        let a = broker.connect("a").unwrap();
        broker.subscribe(a, "t").unwrap();
        assert_eq!(router_threads(ID), 1);
        drop(broker);
        // The thread ends asynchronously; a generous bound, not a timing.
        let deadline = Instant::now() + Duration::from_secs(60);
        while router_threads(ID) > 0 {
            assert!(
                Instant::now() < deadline,
                "the router thread outlived its broker"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn out(from: ClientId, topic: &str, payload: &str) -> Outgoing {
        Outgoing {
            from,
            topic: topic.into(),
            payload: payload.as_bytes().to_vec(),
        }
    }

    #[test]
    fn batches_come_back_in_batch_order_every_time() {
        for _ in 0..5 {
            let mut b = Broker::new();
            let p1 = b.connect("p1").unwrap();
            let p2 = b.connect("p2").unwrap();
            let s = b.connect("s").unwrap();
            b.subscribe(s, "t/#").unwrap();
            let batch: Vec<Outgoing> = (0..300)
                .map(|i| {
                    out(
                        if i % 2 == 0 { p1 } else { p2 },
                        &format!("t/{}", i % 7),
                        &i.to_string(),
                    )
                })
                .collect();
            let d = b.route(&batch).unwrap();
            assert_eq!(d.len(), 300);
            for (i, del) in d.iter().enumerate() {
                assert_eq!(del.publish, i);
                assert_eq!(del.payload, i.to_string().as_bytes());
                assert_eq!(del.to, s);
            }
        }
    }

    #[test]
    fn only_matching_subscribers_receive_and_publisher_gets_its_own() {
        let mut b = Broker::new();
        let a = b.connect("a").unwrap();
        let c = b.connect("c").unwrap();
        b.subscribe(a, "x/+").unwrap();
        b.subscribe(c, "y/#").unwrap();
        let d = b
            .route(&[
                out(a, "x/1", "one"),
                out(c, "y/z/w", "two"),
                out(a, "q", "none"),
            ])
            .unwrap();
        let got: Vec<(usize, usize)> = d.iter().map(|d| (d.publish, d.to.0)).collect();
        assert_eq!(got, vec![(0, a.0), (1, c.0)]);
    }

    #[test]
    fn overlapping_filters_deliver_once_per_filter_like_rumqttd() {
        let mut b = Broker::new();
        let a = b.connect("a").unwrap();
        b.subscribe(a, "x/#").unwrap();
        b.subscribe(a, "x/+").unwrap();
        let d = b.route(&[out(a, "x/1", "one")]).unwrap();
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn reserved_aws_topics_route_and_wildcard_first_filters_skip_them() {
        let mut b = Broker::new();
        let a = b.connect("a").unwrap();
        let all = b.connect("all").unwrap();
        b.subscribe(a, "$aws/things/+/shadow/get").unwrap();
        b.subscribe(all, "#").unwrap();
        let d = b
            .route(&[out(all, "$aws/things/t1/shadow/get", "{}")])
            .unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].to, a);
        assert_eq!(d[0].topic, "$aws/things/t1/shadow/get");
        let d = b.route(&[out(a, "plain", "p")]).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].to, d[0].topic.as_str()), (all, "plain"));
    }

    #[test]
    fn an_unsubscribed_filter_gets_nothing_and_can_be_subscribed_again() {
        let mut b = Broker::new();
        let a = b.connect("a").unwrap();
        let p = b.connect("p").unwrap();
        b.subscribe(a, "x/#").unwrap();
        b.subscribe(a, "x/1").unwrap();
        b.unsubscribe(a, "x/#").unwrap();
        // Only the remaining filter delivers; rumqttd agrees (a delivery it
        // made for the old filter would be an Unexpected error).
        let d = b.route(&[out(p, "x/1", "one")]).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].filter, "x/1");
        b.unsubscribe(a, "x/1").unwrap();
        // Unsubscribing what is not subscribed does nothing.
        b.unsubscribe(a, "x/1").unwrap();
        assert!(b.route(&[out(p, "x/1", "two")]).unwrap().is_empty());
        b.subscribe(a, "x/#").unwrap();
        let d = b.route(&[out(p, "x/2", "three")]).unwrap();
        assert_eq!((d.len(), d[0].filter.as_str()), (1, "x/#"));
    }

    #[test]
    fn client_ids_rumqttd_refuses_are_carried_encoded() {
        let mut b = Broker::new();
        let a = b.connect("$GEN/0a1b").unwrap();
        let p = b.connect("thing/with+odd#chars%").unwrap();
        b.subscribe(a, "t").unwrap();
        let d = b.route(&[out(p, "t", "x")]).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(b.client_name(d[0].to), "$GEN/0a1b");
        assert_eq!(link_name("a/b$%"), "a%2Fb%24%25");
    }

    #[test]
    fn duplicate_client_is_refused() {
        let mut b = Broker::new();
        b.connect("a").unwrap();
        assert_eq!(
            b.connect("a"),
            Err(BrokerError::DuplicateClient("a".into()))
        );
    }
}
