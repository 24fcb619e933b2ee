//! The run trace: every event keyed by virtual time, written as MCAP.
//!
//! Channels carry JSON messages (schemaless, encoding `json`), so Foxglove and
//! `mcap cat` can open a trace. `log_time` and `publish_time` are virtual
//! nanoseconds; nothing from the wall clock goes in, so the same run gives the
//! same bytes. Metadata records carry what replay needs (scenario text, seed,
//! device crate versions).
//!
//! Where records go is the run's [`TraceOutput`]: kept in memory (tests,
//! `record`, `replay`), streamed to an MCAP file as they are made (`twinrig
//! run --trace`; memory stays flat however long the run), or not kept at all.
//! A streamed trace is written to a temporary file beside its destination and
//! renamed into place when the run ends, so a run that is killed never leaves
//! a half-written trace under the real name; the bytes are the same as
//! [`Trace::to_mcap`] gives for the same records.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Cursor, Seek, Write};
use std::path::{Path, PathBuf};

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
    /// The trace file could not be created, written or moved into place.
    #[error("cannot write the trace {}: {message}", path.display())]
    File {
        /// The trace's destination.
        path: PathBuf,
        /// What failed.
        message: String,
    },
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

fn write_options() -> mcap::WriteOptions {
    mcap::WriteOptions::new()
        .compression(None)
        .profile("twinrig")
        .library("twinrig-trace/1")
}

/// Writes records as MCAP messages, assigning channel ids on first use in
/// record order, so a streamed file and [`Trace::to_mcap`] agree byte for byte.
struct McapSink<W: Write + Seek> {
    writer: mcap::Writer<W>,
    /// One entry per channel name (a handful per run).
    channels: BTreeMap<String, u16>,
    sequence: u64,
}

impl<W: Write + Seek> McapSink<W> {
    fn new(out: W) -> Result<Self, TraceError> {
        Ok(McapSink {
            writer: write_options().create(out)?,
            channels: BTreeMap::new(),
            sequence: 0,
        })
    }

    fn message(&mut self, time: Nanos, channel: &str, data: &[u8]) -> Result<(), TraceError> {
        let id = match self.channels.get(channel) {
            Some(id) => *id,
            None => {
                let id = self
                    .writer
                    .add_channel(0, channel, "json", &BTreeMap::new())?;
                self.channels.insert(channel.to_owned(), id);
                id
            }
        };
        self.writer.write_to_known_channel(
            &mcap::records::MessageHeader {
                channel_id: id,
                // MCAP sequences are 32-bit; a longer trace wraps, as the format allows.
                sequence: self.sequence as u32,
                log_time: time,
                publish_time: time,
            },
            data,
        )?;
        self.sequence += 1;
        Ok(())
    }

    fn finish(
        mut self,
        metadata: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<W, TraceError> {
        for (name, values) in metadata {
            self.writer.write_metadata(&mcap::records::Metadata {
                name: name.clone(),
                metadata: values.clone(),
            })?;
        }
        self.writer.finish()?;
        Ok(self.writer.into_inner())
    }
}

/// Where a run's trace records go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TraceOutput {
    /// Kept in memory, for [`crate::Sim::take_trace`] (tests, `record`, `replay`).
    #[default]
    Memory,
    /// Streamed to the MCAP file at this path as they are made; the file
    /// appears there when [`crate::Sim::finish_trace`] succeeds.
    File(PathBuf),
    /// Not kept: the run writes no trace and nothing reads one.
    Discard,
}

/// An MCAP trace being streamed to a temporary file beside its destination.
struct FileSink {
    sink: Option<McapSink<BufWriter<File>>>,
    temp: PathBuf,
    path: PathBuf,
    /// The first write error; later records are dropped and `finish` reports it.
    error: Option<String>,
}

impl FileSink {
    fn create(path: &Path) -> Result<FileSink, TraceError> {
        let fail = |message: String| TraceError::File {
            path: path.to_owned(),
            message,
        };
        let name = path
            .file_name()
            .ok_or_else(|| fail("the path names no file".into()))?;
        // Hidden, and unique per process: two runs writing the same trace
        // never share a temporary file, and the last rename wins whole.
        let temp = path.with_file_name(format!(
            ".{}.{}.partial",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::create(&temp).map_err(|e| fail(format!("{}: {e}", temp.display())))?;
        let sink = McapSink::new(BufWriter::new(file))?;
        Ok(FileSink {
            sink: Some(sink),
            temp,
            path: path.to_owned(),
            error: None,
        })
    }

    fn message(&mut self, time: Nanos, channel: &str, data: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Some(sink) = &mut self.sink
            && let Err(e) = sink.message(time, channel, data)
        {
            self.error = Some(e.to_string());
        }
    }

    fn finish(
        mut self,
        metadata: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<PathBuf, TraceError> {
        let result = self.complete(metadata);
        if result.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        result
    }

    fn complete(
        &mut self,
        metadata: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<PathBuf, TraceError> {
        let fail = |message: String| TraceError::File {
            path: self.path.clone(),
            message,
        };
        if let Some(e) = self.error.take() {
            return Err(fail(e));
        }
        let sink = self.sink.take().expect("finished once");
        let file = sink
            .finish(metadata)
            .map_err(|e| fail(e.to_string()))?
            .into_inner()
            .map_err(|e| fail(e.error().to_string()))?;
        file.sync_all().map_err(|e| fail(e.to_string()))?;
        drop(file);
        std::fs::rename(&self.temp, &self.path).map_err(|e| fail(e.to_string()))?;
        Ok(self.path.clone())
    }
}

impl Drop for FileSink {
    /// A run abandoned before `finish` leaves no temporary file behind.
    fn drop(&mut self) {
        if self.sink.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

enum Sink {
    Memory,
    File(Box<FileSink>),
    Discard,
}

/// A run's trace as it is made: records go to its [`TraceOutput`];
/// metadata is kept until the end.
pub(crate) struct Recorder {
    sink: Sink,
    /// Records (memory output only) and metadata.
    trace: Trace,
    /// Records made so far, whatever the output.
    count: u64,
    /// Reused for each record's JSON text when streaming.
    buffer: Vec<u8>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            sink: Sink::Memory,
            trace: Trace::default(),
            count: 0,
            buffer: Vec::new(),
        }
    }
}

impl Recorder {
    pub(crate) fn new(output: &TraceOutput) -> Result<Recorder, TraceError> {
        let sink = match output {
            TraceOutput::Memory => Sink::Memory,
            TraceOutput::File(path) => Sink::File(Box::new(FileSink::create(path)?)),
            TraceOutput::Discard => Sink::Discard,
        };
        Ok(Recorder {
            sink,
            ..Recorder::default()
        })
    }

    pub(crate) fn record(&mut self, time: Nanos, channel: &str, message: serde_json::Value) {
        self.count += 1;
        match &mut self.sink {
            Sink::Memory => self.trace.record(time, channel, message),
            Sink::File(file) => {
                self.buffer.clear();
                // Serialising a Value into memory cannot fail; the text is
                // what `Value::to_string` gives (the in-memory form).
                let _ = serde_json::to_writer(&mut self.buffer, &message);
                file.message(time, channel, &self.buffer);
            }
            Sink::Discard => {}
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn set_metadata(&mut self, name: &str, values: BTreeMap<String, String>) {
        self.trace.set_metadata(name, values);
    }

    /// The records kept in memory so far (memory output) and the metadata;
    /// later records start a new trace.
    pub(crate) fn take(&mut self) -> Trace {
        std::mem::take(&mut self.trace)
    }

    /// Ends the trace: a streamed one gets its metadata and is moved into
    /// place. Returns what is kept in memory (metadata, and the records for
    /// memory output).
    pub(crate) fn finish(&mut self) -> Result<Trace, TraceError> {
        let trace = std::mem::take(&mut self.trace);
        if let Sink::File(file) = std::mem::replace(&mut self.sink, Sink::Discard) {
            file.finish(&trace.metadata)?;
        }
        Ok(trace)
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
        let mut sink = McapSink::new(Cursor::new(Vec::new()))?;
        for record in &self.records {
            sink.message(record.time, &record.channel, record.data.as_bytes())?;
        }
        Ok(sink.finish(&self.metadata)?.into_inner())
    }

    /// Writes the trace as an MCAP file at `path`, through a temporary file
    /// beside it renamed into place, so `path` never holds half a trace.
    pub fn write_mcap_file(&self, path: &Path) -> Result<(), TraceError> {
        let mut file = FileSink::create(path)?;
        for record in &self.records {
            file.message(record.time, &record.channel, record.data.as_bytes());
        }
        file.finish(&self.metadata).map(|_| ())
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

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("twinrig-trace-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Memory for long runs: a streamed trace is the same file, byte for
    /// byte, as the in-memory trace written at the end; it appears under its
    /// name only once finished.
    #[test]
    fn streamed_trace_is_to_mcap_byte_for_byte_and_appears_when_finished() {
        let dir = temp_dir("stream");
        let path = dir.join("run.mcap");
        let mut streamed = Recorder::new(&TraceOutput::File(path.clone())).unwrap();
        let mut memory = Recorder::new(&TraceOutput::Memory).unwrap();
        for r in [&mut streamed, &mut memory] {
            // More than one MCAP chunk (1 MiB), several channels.
            for i in 0..20_000u64 {
                let channel = [channels::UART, channels::MQTT, channels::PHYSICS][i as usize % 3];
                r.record(i * 1000, channel, json!({"i": i, "pad": "x".repeat(64)}));
            }
            r.set_metadata("scenario", BTreeMap::from([("seed".into(), "42".into())]));
        }
        assert_eq!(streamed.count(), 20_000);
        assert!(!path.exists(), "not under its name before the end");
        let kept = streamed.finish().unwrap();
        assert!(kept.records.is_empty(), "a streamed trace keeps no records");
        assert_eq!(kept.metadata.len(), 1);
        let in_memory = memory.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), in_memory.to_mcap().unwrap());
        assert_eq!(files_in(&dir), ["run.mcap"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_abandoned_stream_leaves_no_file_and_a_written_one_replaces_whole() {
        let dir = temp_dir("abandon");
        let path = dir.join("run.mcap");
        {
            let mut r = Recorder::new(&TraceOutput::File(path.clone())).unwrap();
            r.record(1, channels::STEPS, json!({"step": 1}));
            assert_eq!(files_in(&dir).len(), 1, "the temporary file");
        }
        assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));
        sample().write_mcap_file(&path).unwrap();
        assert_eq!(
            Trace::from_mcap(&std::fs::read(&path).unwrap()).unwrap(),
            sample()
        );
        assert_eq!(files_in(&dir), ["run.mcap"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_trace_that_cannot_be_created_is_an_error_naming_it() {
        let err = Recorder::new(&TraceOutput::File("/nonexistent-dir/run.mcap".into()))
            .err()
            .expect("no such directory");
        assert!(
            err.to_string()
                .starts_with("cannot write the trace /nonexistent-dir/run.mcap: "),
            "{err}"
        );
    }

    #[test]
    fn a_discarded_trace_counts_records_and_keeps_none() {
        let mut r = Recorder::new(&TraceOutput::Discard).unwrap();
        for i in 0..1000 {
            r.record(i, channels::UART, json!({"i": i}));
        }
        assert_eq!(r.count(), 1000);
        assert!(r.finish().unwrap().records.is_empty());
    }
}
