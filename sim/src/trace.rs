//! The run trace: every event keyed by virtual time, written as MCAP.
//!
//! Channels carry JSON messages (schemaless, encoding `json`), so Foxglove and
//! `mcap cat` can open a trace. `log_time` and `publish_time` are virtual
//! nanoseconds; nothing from the wall clock goes in, so the same run gives the
//! same bytes. Metadata records carry what replay needs (scenario text, seed,
//! device crate versions).

use std::collections::BTreeMap;
use std::io::Cursor;

use crate::time::{Nanos, format_nanos};

/// Well-known channel names.
pub mod channels {
    /// Every MQTT message as the broker routed it.
    pub const MQTT: &str = "/mqtt";
    /// UART traffic; the device and direction are fields of the message.
    pub const UART: &str = "/uart";
    /// Physics samples (body poses).
    pub const PHYSICS: &str = "/physics";
    /// Faults as they start and end.
    pub const FAULTS: &str = "/faults";
    /// Scenario steps as they run.
    pub const STEPS: &str = "/steps";
    /// Assertion results.
    pub const ASSERTIONS: &str = "/assertions";
    /// Device task events (start, end, panic).
    pub const TASKS: &str = "/tasks";
}

/// One trace message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    /// Virtual time in nanoseconds.
    pub time: Nanos,
    /// Channel (MCAP topic).
    pub channel: String,
    /// JSON text of the message.
    pub data: String,
}

impl TraceRecord {
    /// The message parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null)
    }
}

/// A whole trace: records in the order they happened, plus named metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// Records, ordered by virtual time then by the order they were made.
    pub records: Vec<TraceRecord>,
    /// Metadata records by name.
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
}

/// A trace could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The MCAP library rejected the data.
    #[error("MCAP error: {0}")]
    Mcap(#[from] mcap::McapError),
    /// A message was not JSON.
    #[error("message {index} on {channel} is not JSON: {source}")]
    NotJson {
        /// Index of the message in the file.
        index: usize,
        /// Its channel.
        channel: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// Where two traces first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the first differing record.
    pub index: usize,
    /// Virtual time of the record (the expected one, else the actual one).
    pub time: Nanos,
    /// Channel of the record.
    pub channel: String,
    /// The expected record, if the expected trace had one there.
    pub expected: Option<TraceRecord>,
    /// The actual record, if the actual trace had one there.
    pub actual: Option<TraceRecord>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |r: &Option<TraceRecord>| match r {
            Some(r) => format!("[{}] {} {}", format_nanos(r.time), r.channel, r.data),
            None => "(end of trace)".to_string(),
        };
        write!(
            f,
            "first divergence at record {} ({} on {}):\n  expected: {}\n  actual:   {}",
            self.index,
            format_nanos(self.time),
            self.channel,
            show(&self.expected),
            show(&self.actual)
        )
    }
}

impl Trace {
    /// Appends a record at `time`.
    pub fn record(&mut self, time: Nanos, channel: &str, message: serde_json::Value) {
        self.records.push(TraceRecord {
            time,
            channel: channel.to_string(),
            data: message.to_string(),
        });
    }

    /// Sets a metadata record (replaces one of the same name).
    pub fn set_metadata(&mut self, name: &str, values: BTreeMap<String, String>) {
        self.metadata.insert(name.to_string(), values);
    }

    /// Records on one channel.
    pub fn on_channel<'a>(&'a self, channel: &'a str) -> impl Iterator<Item = &'a TraceRecord> {
        self.records.iter().filter(move |r| r.channel == channel)
    }

    /// Writes the trace as MCAP bytes. Same trace, same bytes.
    pub fn to_mcap(&self) -> Result<Vec<u8>, TraceError> {
        let options = mcap::WriteOptions::new()
            .compression(None)
            .profile("twinrig")
            .library("twinrig-trace/1");
        let mut writer = options.create(Cursor::new(Vec::new()))?;
        let mut ids: BTreeMap<&str, u16> = BTreeMap::new();
        let no_metadata = BTreeMap::new();
        for (seq, record) in self.records.iter().enumerate() {
            let id = match ids.get(record.channel.as_str()) {
                Some(id) => *id,
                None => {
                    let id = writer.add_channel(0, &record.channel, "json", &no_metadata)?;
                    ids.insert(&record.channel, id);
                    id
                }
            };
            writer.write_to_known_channel(
                &mcap::records::MessageHeader {
                    channel_id: id,
                    sequence: seq as u32,
                    log_time: record.time,
                    publish_time: record.time,
                },
                record.data.as_bytes(),
            )?;
        }
        for (name, values) in &self.metadata {
            writer.write_metadata(&mcap::records::Metadata {
                name: name.clone(),
                metadata: values.clone(),
            })?;
        }
        writer.finish()?;
        Ok(writer.into_inner().into_inner())
    }

    /// Reads a trace written by [`Trace::to_mcap`] (or any MCAP file with JSON channels).
    pub fn from_mcap(bytes: &[u8]) -> Result<Trace, TraceError> {
        let mut trace = Trace::default();
        for (index, message) in mcap::MessageStream::new(bytes)?.enumerate() {
            let message = message?;
            let data = String::from_utf8_lossy(&message.data).into_owned();
            if let Err(source) = serde_json::from_str::<serde_json::Value>(&data) {
                return Err(TraceError::NotJson {
                    index,
                    channel: message.channel.topic.clone(),
                    source,
                });
            }
            trace.records.push(TraceRecord {
                time: message.log_time,
                channel: message.channel.topic.clone(),
                data,
            });
        }
        for record in mcap::read::LinearReader::new(bytes)? {
            if let mcap::records::Record::Metadata(m) = record? {
                trace.metadata.insert(m.name, m.metadata);
            }
        }
        // The writer emits messages in time order already; keep the order stable.
        Ok(trace)
    }

    /// The first record where `actual` differs from `self` (the expected trace).
    pub fn first_divergence(&self, actual: &Trace) -> Option<Divergence> {
        let n = self.records.len().max(actual.records.len());
        for index in 0..n {
            let e = self.records.get(index);
            let a = actual.records.get(index);
            if e != a {
                let at = e.or(a).expect("one side has a record");
                return Some(Divergence {
                    index,
                    time: at.time,
                    channel: at.channel.clone(),
                    expected: e.cloned(),
                    actual: a.cloned(),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Trace {
        let mut t = Trace::default();
        t.record(0, channels::STEPS, json!({"step": 0, "kind": "publish"}));
        t.record(5, channels::MQTT, json!({"topic": "a/b", "payload": "hi"}));
        t.record(
            5,
            channels::UART,
            json!({"device": "echo-1", "dir": "tx", "hex": "6869"}),
        );
        t.set_metadata("scenario", BTreeMap::from([("seed".into(), "42".into())]));
        t
    }

    #[test]
    fn mcap_round_trip_keeps_everything() {
        let t = sample();
        let bytes = t.to_mcap().unwrap();
        let back = Trace::from_mcap(&bytes).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn same_trace_same_bytes() {
        assert_eq!(sample().to_mcap().unwrap(), sample().to_mcap().unwrap());
    }

    #[test]
    fn divergence_names_time_channel_and_both_sides() {
        let a = sample();
        let mut b = sample();
        b.records[1].data = json!({"topic": "a/b", "payload": "ho"}).to_string();
        let d = a.first_divergence(&b).unwrap();
        assert_eq!(d.index, 1);
        assert_eq!(d.time, 5);
        assert_eq!(d.channel, "/mqtt");
        assert!(d.to_string().contains("\"ho\""));
        assert!(a.first_divergence(&a.clone()).is_none());
        let mut short = sample();
        short.records.pop();
        let d = a.first_divergence(&short).unwrap();
        assert_eq!(d.index, 2);
        assert!(d.actual.is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Trace::from_mcap(b"not an mcap file").is_err());
        assert!(Trace::from_mcap(&[]).is_err());
        let mut bytes = sample().to_mcap().unwrap();
        bytes.truncate(bytes.len() / 2);
        assert!(Trace::from_mcap(&bytes).is_err());
    }
}
