//! Why an expected message never came: the hints a failed `wait_for` (or an
//! `expect: message` that counted none) adds to its report, from what the
//! broker saw.
//!
//! - publishes from the timeline that reached no subscriber, and when (if
//!   ever) a matching subscription appeared: the classic "published before
//!   the device subscribed";
//! - messages on the topic that did not match, the closest one with the
//!   check that failed;
//! - links that were down or lossy while waiting.

use twinrig_hal::mqtt::topic_matches;
use twinrig_sim::net::Network;
use twinrig_sim::{Nanos, format_nanos};

use crate::check::payload_matches;
use crate::scenario::PayloadFilter;

/// How many unanswered publishes a report lists.
const LIST: usize = 3;

/// Hints for a message on `topic` matching `filter` that was not seen
/// between `from` and `until`; `publisher` is the timeline's client id.
pub fn missed_message(
    network: &Network,
    publisher: &str,
    topic: &str,
    filter: &PayloadFilter,
    from: Nanos,
    until: Nanos,
) -> Vec<String> {
    let mut hints = Vec::new();
    let observed = network.observed();
    let subscribed = network.subscribed();

    // Publishes by the timeline nobody received.
    let unheard: Vec<_> = observed
        .iter()
        .filter(|m| m.from == publisher && m.to.is_empty() && m.time <= until)
        .collect();
    for m in unheard.iter().rev().take(LIST).rev() {
        let later = subscribed
            .iter()
            .find(|s| s.time >= m.time && topic_matches(&s.filter, &m.topic));
        let when = match later {
            Some(s) => format!(
                "{} subscribed to {} only at {}",
                s.client,
                s.filter,
                format_nanos(s.time)
            ),
            None => "nobody subscribed to it".to_owned(),
        };
        hints.push(format!(
            "the publish on {} at {} reached no subscriber ({when})",
            m.topic,
            format_nanos(m.time)
        ));
    }
    if unheard.len() > LIST {
        hints.push(format!(
            "{} more publishes from the timeline reached no subscriber",
            unheard.len() - LIST
        ));
    }

    // Messages on the topic that did not match: the closest one.
    let near: Vec<(usize, &twinrig_sim::net::Observed, String)> = observed
        .iter()
        .filter(|m| m.time >= from && m.time <= until && topic_matches(topic, &m.topic))
        .filter_map(|m| {
            payload_matches(&m.payload, filter)
                .err()
                .map(|why| (failing_checks(&m.payload, filter), m, why.to_string()))
        })
        .collect();
    if let Some((_, m, why)) = near
        .iter()
        .min_by_key(|(misses, m, _)| (*misses, std::cmp::Reverse(m.time)))
    {
        hints.push(format!(
            "{} message{} on {} did not match; the closest, from {} at {}: {why}",
            near.len(),
            if near.len() == 1 { "" } else { "s" },
            topic,
            m.from,
            format_nanos(m.time)
        ));
    }
    drop((observed, subscribed));

    // Links down or lossy while waiting.
    for f in network.faults() {
        if f.from <= until && f.until >= from {
            let what = match (f.kind, f.probability) {
                ("outage", _) => "was down (outage)".to_owned(),
                ("loss", Some(p)) => format!("lost messages with probability {p}"),
                ("extra_latency", _) => "had extra latency".to_owned(),
                (other, _) => format!("had a fault ({other})"),
            };
            hints.push(format!(
                "the link of {} {what} from {} to {}",
                f.client,
                format_nanos(f.from),
                format_nanos(f.until)
            ));
        }
    }
    for (client, loss) in network.lossy_links() {
        hints.push(format!(
            "the link of {client} loses {:.3}% of messages",
            loss * 100.0
        ));
    }
    hints
}

/// How many of the filter's checks a payload fails (for "closest").
fn failing_checks(payload: &[u8], filter: &PayloadFilter) -> usize {
    let text = usize::from(
        filter
            .text
            .as_ref()
            .is_some_and(|t| payload != t.as_bytes()),
    );
    let fields = filter
        .fields
        .iter()
        .filter(|(path, check)| {
            let one = PayloadFilter {
                fields: [((*path).clone(), (*check).clone())].into_iter().collect(),
                text: None,
            };
            payload_matches(payload, &one).is_err()
        })
        .count();
    text + fields
}
