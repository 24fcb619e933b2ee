//! Device readiness: has each device done what it must before the timeline
//! talks to it (subscribed to what it listens on, announced itself)?
//!
//! A scenario publishing at t = 0 to a device that has not yet subscribed
//! loses the message, as a real broker drops a message nobody subscribes to.
//! So the runner starts the timeline once every device is ready, and
//! `wait_for: {ready: id}` waits for a device that rebooted mid-run.
//!
//! Readiness is judged from what the broker saw (subscriptions it took and
//! messages it received), never from device internals, so it means the same
//! for every kind. Each device lists its conditions ([`ReadyWhen`]); the
//! tracker indexes the broker's events by client as they happen, so a fleet
//! of thousands is checked in time proportional to its events.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use twinrig_sim::Nanos;
use twinrig_sim::net::Network;

use crate::devices::{ReadyEvent, ReadyWhen};

/// The broker's subscriptions and publishes, by client, with the time each
/// last happened.
#[derive(Default)]
pub struct Tracker {
    latest: HashMap<(String, ReadyEvent), Nanos>,
    /// How many of the network's messages and subscriptions are indexed.
    seen: (usize, usize),
}

impl Tracker {
    /// Indexes the broker's events since the last call; returns the clients
    /// they concern.
    pub fn absorb(&mut self, network: &Network) -> BTreeSet<String> {
        let mut touched = BTreeSet::new();
        {
            let subscribed = network.subscribed();
            for s in &subscribed[self.seen.1..] {
                self.latest.insert(
                    (s.client.clone(), ReadyEvent::Subscribed(s.filter.clone())),
                    s.time,
                );
                touched.insert(s.client.clone());
            }
            self.seen.1 = subscribed.len();
        }
        let observed = network.observed();
        for m in &observed[self.seen.0..] {
            self.latest.insert(
                (m.from.clone(), ReadyEvent::Published(m.topic.clone())),
                m.time,
            );
            touched.insert(m.from.clone());
        }
        self.seen.0 = observed.len();
        touched
    }

    /// The counts to pass to [`Network::changed_after`] to wait for news.
    pub fn seen(&self) -> (usize, usize) {
        self.seen
    }

    /// Whether the broker has seen `condition` (at or after its `since`).
    pub fn holds(&self, condition: &ReadyWhen) -> bool {
        self.latest
            .get(&(condition.client.clone(), condition.what.clone()))
            .is_some_and(|&t| t >= condition.since)
    }

    /// The conditions of `conditions` that do not hold yet.
    pub fn missing<'a>(&self, conditions: &'a [ReadyWhen]) -> Vec<&'a ReadyWhen> {
        conditions.iter().filter(|c| !self.holds(c)).collect()
    }
}

/// Devices still waited for, re-checked only when their clients do something.
pub struct Pending {
    /// Device id -> its clients.
    devices: BTreeMap<String, BTreeSet<String>>,
    /// Client -> device ids.
    by_client: HashMap<String, Vec<String>>,
}

impl Pending {
    /// Every device with conditions (`conditions` gives a device's current ones).
    pub fn new<'a>(
        ids: impl IntoIterator<Item = &'a str>,
        conditions: impl Fn(&str) -> Vec<ReadyWhen>,
    ) -> Pending {
        let mut devices = BTreeMap::new();
        let mut by_client: HashMap<String, Vec<String>> = HashMap::new();
        for id in ids {
            let clients: BTreeSet<String> = conditions(id).into_iter().map(|c| c.client).collect();
            if clients.is_empty() {
                continue;
            }
            for c in &clients {
                by_client.entry(c.clone()).or_default().push(id.to_owned());
            }
            devices.insert(id.to_owned(), clients);
        }
        Pending { devices, by_client }
    }

    /// Drops the devices now ready: all of them on the first call (`touched`
    /// = None), else those whose clients are in `touched`.
    pub fn update(
        &mut self,
        tracker: &Tracker,
        touched: Option<&BTreeSet<String>>,
        conditions: impl Fn(&str) -> Vec<ReadyWhen>,
    ) {
        let candidates: Vec<String> = match touched {
            None => self.devices.keys().cloned().collect(),
            Some(clients) => {
                let mut ids: Vec<String> = clients
                    .iter()
                    .filter_map(|c| self.by_client.get(c))
                    .flatten()
                    .filter(|id| self.devices.contains_key(*id))
                    .cloned()
                    .collect();
                ids.sort();
                ids.dedup();
                ids
            }
        };
        for id in candidates {
            if tracker.missing(&conditions(&id)).is_empty() {
                self.devices.remove(&id);
            }
        }
    }

    /// Ids still not ready, in order.
    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.devices.keys()
    }

    /// True when every device is ready.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

/// The error for devices that never became ready: each device (the first
/// `limit`) with what it has not done.
pub fn not_ready_message(
    tracker: &Tracker,
    ids: &[String],
    conditions: impl Fn(&str) -> Vec<ReadyWhen>,
    timeout: &str,
) -> String {
    const LIMIT: usize = 10;
    let mut parts: Vec<String> = ids
        .iter()
        .take(LIMIT)
        .map(|id| {
            let missing: Vec<String> = tracker
                .missing(&conditions(id))
                .iter()
                .map(|c| c.to_string())
                .collect();
            format!("{id}: {}", missing.join("; "))
        })
        .collect();
    if ids.len() > LIMIT {
        parts.push(format!("and {} more", ids.len() - LIMIT));
    }
    let n = ids.len();
    format!(
        "{n} device{} not ready within {timeout} ({}); a device is ready once it has \
         subscribed to what it listens on and announced itself (`start: immediately` \
         starts the timeline at once instead)",
        if n == 1 { "" } else { "s" },
        parts.join(", ")
    )
}
