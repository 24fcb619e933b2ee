//! Load and peer comparison for `twinrig serve cloud` (issue 10, item 6).
//!
//! A load generator with its own report, not a criterion timing loop and not
//! a test: nothing here asserts on time, and lost messages are counted and
//! reported, not asserted. It
//!
//! 1. makes a root CA, the server certificate and one certificate per thing
//!    with the project's own `twinrig certs`, in a temporary folder;
//! 2. starts `twinrig serve cloud --certs DIR --mqtt 127.0.0.1:0` and waits
//!    for its ready line;
//! 3. opens N MQTT 3.1.1 connections over mutual TLS on loopback (default
//!    1,000), each a distinct thing with its own certificate and its name as
//!    client id, as the default policy requires; each subscribes at QoS 1 to
//!    its own topic `{thing}/load` (one the default policy lets a thing both
//!    publish and subscribe to);
//! 4. holds them idle for a few seconds (the broker's CPU with N idle
//!    connections);
//! 5. paced: every connection publishes QoS 1 messages to its topic at a
//!    fixed pace, staggered so the offered load is even; each carries a
//!    sequence number and a send timestamp, and the subscriber (the same
//!    connection) measures publish -> delivery latency;
//! 6. burst: every connection keeps a fixed number of its messages in
//!    flight (sent, not yet delivered back) and sends the next as one
//!    arrives, so the broker runs as fast as it can: its messages/s;
//! 7. reports connections held to the end, messages sent, acknowledged
//!    (PUBACK), delivered, lost (sent and not delivered back by the end of
//!    the phase and its drain), duplicated, messages/s, latency
//!    p50/p99/max per phase, the broker process's CPU time per phase and
//!    its resident set after each phase (from /proc), and the generator's
//!    own CPU time;
//! 8. does the same against Debian's `mosquitto` (2.x) in the same run, with
//!    the same server certificate, CA and client certificates, and prints
//!    the ratios twinrig / mosquitto. Without `mosquitto` (on PATH, in
//!    /usr/sbin, or `TWINRIG_MOSQUITTO`) the peer half is skipped with a
//!    message.
//!
//! ```sh
//! apt-get install mosquitto          # Debian's broker (this runs its own, on a free port)
//! cargo bench --bench cloud_load
//! ```
//!
//! Run without `--bench` (as `cargo test --all-targets` runs bench
//! targets), it prints how to run it and does nothing else.
//!
//! Settings (environment): `TWINRIG_LOAD_CONNECTIONS` (1000),
//! `TWINRIG_LOAD_IDLE_S` (5), `TWINRIG_LOAD_MESSAGES` paced messages per
//! connection (30), `TWINRIG_LOAD_INTERVAL_MS` between one connection's
//! paced messages (1000: 1,000 messages/s offered by 1,000 connections),
//! `TWINRIG_LOAD_BURST` burst messages per connection (300),
//! `TWINRIG_LOAD_WINDOW` burst messages in flight per connection (5),
//! `TWINRIG_LOAD_PAYLOAD` bytes (64), `TWINRIG_LOAD_HANDSHAKES` connections
//! opening at once (100), `TWINRIG_LOAD_DRAIN_S` to wait for late
//! deliveries after a phase (30), `TWINRIG_LOAD_THREADS` generator threads
//! (one current-thread tokio runtime each; default: the number of CPUs),
//! `TWINRIG_LOAD_BROKERS` (`twinrig,mosquitto`).
//!
//! The generator and the broker share the machine's cores, so the burst
//! figures are those of one machine with both ends on it, bounded by the
//! broker and the generator together: the generator's CPU per phase is
//! printed beside the broker's, because it differs between brokers.

use std::io::{BufRead, BufReader, Read as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, Packet, PubAck, Publish, Subscribe, SubscribeReasonCode,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Largest MQTT packet the generator reads or writes.
const MAX_PACKET: usize = 64 * 1024;
/// A hang guard for one connection's TCP + TLS + CONNECT + SUBSCRIBE.
const CONNECT_LIMIT: Duration = Duration::from_secs(60);
/// A hang guard for a broker's start and stop.
const PROCESS_LIMIT: Duration = Duration::from_secs(60);
/// Bytes of the payload header: sequence (u32), connection (u32), send
/// time in ns since [`base`] (u64).
const HEADER: usize = 16;

/// The clock every send and receive time is read against.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn since_base_ns(t: Instant) -> u64 {
    u64::try_from(t.duration_since(base()).as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone)]
struct Config {
    connections: usize,
    idle: Duration,
    messages: u32,
    interval: Duration,
    burst: u32,
    window: u32,
    payload: usize,
    handshakes: usize,
    drain: Duration,
    threads: usize,
    brokers: Vec<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Config {
    fn from_env() -> Config {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let config = Config {
            connections: env_or("TWINRIG_LOAD_CONNECTIONS", 1000usize),
            idle: Duration::from_secs(env_or("TWINRIG_LOAD_IDLE_S", 5u64)),
            messages: env_or("TWINRIG_LOAD_MESSAGES", 30u32),
            interval: Duration::from_millis(env_or("TWINRIG_LOAD_INTERVAL_MS", 1000u64)),
            burst: env_or("TWINRIG_LOAD_BURST", 300u32),
            window: env_or("TWINRIG_LOAD_WINDOW", 5u32).max(1),
            payload: env_or("TWINRIG_LOAD_PAYLOAD", 64usize).max(HEADER),
            handshakes: env_or("TWINRIG_LOAD_HANDSHAKES", 100usize).max(1),
            drain: Duration::from_secs(env_or("TWINRIG_LOAD_DRAIN_S", 30u64)),
            threads: env_or("TWINRIG_LOAD_THREADS", cpus).max(1),
            brokers: env_or("TWINRIG_LOAD_BROKERS", "twinrig,mosquitto".to_string())
                .split(',')
                .map(|b| b.trim().to_string())
                .filter(|b| !b.is_empty())
                .collect(),
        };
        assert!(
            config.connections > 0,
            "TWINRIG_LOAD_CONNECTIONS must be > 0"
        );
        assert!(
            u64::from(config.messages) + u64::from(config.burst) <= 65535,
            "TWINRIG_LOAD_MESSAGES + TWINRIG_LOAD_BURST must be at most 65535 (one packet id each)"
        );
        assert!(
            !config.interval.is_zero(),
            "TWINRIG_LOAD_INTERVAL_MS must be > 0"
        );
        config
    }

    fn offered_per_s(&self) -> f64 {
        self.connections as f64 / self.interval.as_secs_f64()
    }
}

/// One thing: its name, topic and TLS client configuration.
struct Thing {
    name: String,
    topic: String,
    tls: Arc<ClientConfig>,
}

fn thing_name(i: usize) -> String {
    format!("load-{i:04}")
}

/// The client configurations of every thing, from a `twinrig certs` folder.
fn load_things(certs: &Path, n: usize) -> Vec<Thing> {
    let ca = CertificateDer::from_pem_file(certs.join("root-ca.pem")).expect("root-ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).expect("the root CA");
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    (0..n)
        .map(|i| {
            let name = thing_name(i);
            let dir = certs.join("things").join(&name);
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(dir.join("certificate.pem.crt"))
                    .and_then(|certs| certs.collect())
                    .unwrap_or_else(|e| panic!("{name}'s certificate: {e}"));
            let key = PrivateKeyDer::from_pem_file(dir.join("private.pem.key"))
                .unwrap_or_else(|e| panic!("{name}'s key: {e}"));
            let tls = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots.clone())
                .with_client_auth_cert(chain, key)
                .expect("a client certificate and key");
            Thing {
                topic: format!("{name}/load"),
                name,
                tls: Arc::new(tls),
            }
        })
        .collect()
}

/// Reads the next MQTT packet.
async fn next_packet(
    stream: &mut TlsStream<TcpStream>,
    inbuf: &mut BytesMut,
) -> Result<Packet, String> {
    loop {
        match Packet::read(inbuf, MAX_PACKET) {
            Ok(p) => return Ok(p),
            Err(CodecError::InsufficientBytes(_)) => {}
            Err(e) => return Err(format!("malformed packet from the broker: {e}")),
        }
        match stream.read_buf(inbuf).await {
            Ok(0) => return Err("closed by the broker".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

async fn write_packets(
    stream: &mut TlsStream<TcpStream>,
    out: &mut BytesMut,
) -> Result<(), String> {
    if out.is_empty() {
        return Ok(());
    }
    stream
        .write_all(out)
        .await
        .map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("write: {e}"))?;
    out.clear();
    Ok(())
}

/// TCP, TLS with the thing's certificate, CONNECT as the thing, SUBSCRIBE
/// at QoS 1 to its topic.
async fn connect(
    addr: SocketAddr,
    thing: &Thing,
    inbuf: &mut BytesMut,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("TCP connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let server = ServerName::try_from("localhost").expect("a DNS name");
    let mut stream = TlsConnector::from(thing.tls.clone())
        .connect(server, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let mut out = BytesMut::new();
    let mut connect = Connect::new(thing.name.clone());
    // Far longer than a run, so no PINGREQ is needed (AWS IoT allows up to 1200 s).
    connect.keep_alive = 1200;
    connect.clean_session = true;
    Packet::Connect(connect)
        .write(&mut out, MAX_PACKET)
        .map_err(|e| e.to_string())?;
    write_packets(&mut stream, &mut out).await?;
    match next_packet(&mut stream, inbuf).await {
        Ok(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {}
        Ok(Packet::ConnAck(ack)) => return Err(format!("CONNACK {:?}", ack.code)),
        Ok(p) => return Err(format!("{p:?} before CONNACK")),
        Err(e) => return Err(format!("no CONNACK: {e}")),
    }
    let mut subscribe = Subscribe::new(thing.topic.clone(), QoS::AtLeastOnce);
    subscribe.pkid = 1;
    Packet::Subscribe(subscribe)
        .write(&mut out, MAX_PACKET)
        .map_err(|e| e.to_string())?;
    write_packets(&mut stream, &mut out).await?;
    match next_packet(&mut stream, inbuf).await {
        Ok(Packet::SubAck(ack))
            if ack.return_codes == [SubscribeReasonCode::Success(QoS::AtLeastOnce)] => {}
        Ok(Packet::SubAck(ack)) => return Err(format!("SUBACK {:?}", ack.return_codes)),
        Ok(p) => return Err(format!("{p:?} before SUBACK")),
        Err(e) => return Err(format!("no SUBACK: {e}")),
    }
    Ok(stream)
}

/// What one connection saw in one phase.
#[derive(Debug, Default)]
struct PhaseStats {
    sent: u32,
    acked: u32,
    delivered: u32,
    /// Publish -> delivery, ns.
    latencies: Vec<u64>,
    first_send_ns: Option<u64>,
    last_delivery_ns: Option<u64>,
}

/// What one connection saw.
#[derive(Debug, Default)]
struct ConnStats {
    /// Why it could not connect and subscribe (None: it did).
    failure: Option<String>,
    paced: PhaseStats,
    burst: PhaseStats,
    duplicates: u32,
    /// Deliveries that were not this connection's own messages.
    misrouted: u32,
    /// How the connection ended before the end of the run (None: held).
    closed: Option<String>,
}

impl ConnStats {
    fn phase(&mut self, burst: bool) -> &mut PhaseStats {
        if burst {
            &mut self.burst
        } else {
            &mut self.paced
        }
    }
}

/// What the generator threads share.
struct Shared {
    handshakes: Semaphore,
    /// Connections that tried to connect (done or failed).
    attempted: AtomicUsize,
    connected: AtomicUsize,
    /// Connections with nothing more to wait for in the paced phase (all
    /// sent, acknowledged and delivered back, or closed).
    paced_done: AtomicUsize,
    /// The same for the burst phase.
    burst_done: AtomicUsize,
    /// When the paced phase starts.
    go: watch::Sender<Option<Instant>>,
    /// The burst phase starts.
    burst: watch::Sender<bool>,
    stop: watch::Sender<bool>,
}

/// Appends one QoS 1 PUBLISH of message `seq` (header: sequence,
/// connection, send time) to `out`; returns its send time.
fn publish(out: &mut BytesMut, thing: &Thing, index: usize, seq: u32, payload: &mut [u8]) -> u64 {
    let sent_ns = since_base_ns(Instant::now());
    payload[0..4].copy_from_slice(&seq.to_be_bytes());
    payload[4..8].copy_from_slice(&(index as u32).to_be_bytes());
    payload[8..16].copy_from_slice(&sent_ns.to_be_bytes());
    let mut p = Publish::new(thing.topic.clone(), QoS::AtLeastOnce, payload.to_vec());
    p.pkid = u16::try_from(seq + 1).expect("at most 65535 messages");
    let _ = Packet::Publish(p).write(out, MAX_PACKET);
    sent_ns
}

/// One thing's whole run: connect, wait for the start, publish its paced
/// messages while taking deliveries, then its burst, and hold the
/// connection until told to stop.
async fn run_thing(
    index: usize,
    thing: Arc<Thing>,
    addr: SocketAddr,
    config: Arc<Config>,
    shared: Arc<Shared>,
) -> ConnStats {
    let mut stats = ConnStats::default();
    let mut go = shared.go.subscribe();
    let mut burst_rx = shared.burst.subscribe();
    let mut stop = shared.stop.subscribe();
    let mut inbuf = BytesMut::with_capacity(4096);
    let permit = shared.handshakes.acquire().await.expect("never closed");
    let attempt = tokio::time::timeout(CONNECT_LIMIT, connect(addr, &thing, &mut inbuf)).await;
    drop(permit);
    let attempt = match attempt {
        Ok(result) => result,
        Err(_) => Err(format!("no SUBACK within {CONNECT_LIMIT:?}")),
    };
    let mut stream = match attempt {
        Ok(s) => {
            shared.connected.fetch_add(1, Ordering::SeqCst);
            shared.attempted.fetch_add(1, Ordering::SeqCst);
            s
        }
        Err(e) => {
            stats.failure = Some(e);
            shared.attempted.fetch_add(1, Ordering::SeqCst);
            return stats;
        }
    };

    let (m, b) = (config.messages, config.burst);
    // Sequence numbers: 0..m paced, m..m + b burst.
    let mut seen = vec![false; (m + b) as usize];
    let mut acked = vec![false; (m + b) as usize];
    let mut out = BytesMut::with_capacity(4096);
    let mut payload = vec![0u8; config.payload];
    let mut in_burst = false;
    let (mut paced_done, mut burst_done) = (false, false);
    // Staggered over one interval, so the offered load is even.
    let offset = config
        .interval
        .mul_f64(index as f64 / config.connections as f64);
    let mut next: Option<tokio::time::Instant> = None;
    let result: Result<(), String> = loop {
        let p = &stats.paced;
        if !paced_done && p.sent == m && p.acked == m && p.delivered == m {
            paced_done = true;
            shared.paced_done.fetch_add(1, Ordering::SeqCst);
        }
        let q = &stats.burst;
        if in_burst && !burst_done && q.sent == b && q.acked == b && q.delivered == b {
            burst_done = true;
            shared.burst_done.fetch_add(1, Ordering::SeqCst);
        }
        tokio::select! {
            read = stream.read_buf(&mut inbuf) => {
                match read {
                    Ok(0) => break Err("closed by the broker".into()),
                    Ok(_) => {}
                    Err(e) => break Err(format!("read: {e}")),
                }
                let received_ns = since_base_ns(Instant::now());
                let mut bad = None;
                loop {
                    match Packet::read(&mut inbuf, MAX_PACKET) {
                        Ok(Packet::Publish(p)) => {
                            if p.qos == QoS::AtLeastOnce {
                                let _ = Packet::PubAck(PubAck::new(p.pkid)).write(&mut out, MAX_PACKET);
                            }
                            let own_burst = take_delivery(&p, index, &thing, received_ns, m, &mut seen, &mut stats);
                            // Burst: one back, the next out.
                            if own_burst && stats.burst.sent < b {
                                let seq = m + stats.burst.sent;
                                let sent_ns = publish(&mut out, &thing, index, seq, &mut payload);
                                stats.burst.sent += 1;
                                stats.burst.first_send_ns.get_or_insert(sent_ns);
                            }
                        }
                        Ok(Packet::PubAck(ack)) => {
                            let seq = u32::from(ack.pkid.wrapping_sub(1));
                            if let Some(a) = acked.get_mut(seq as usize).filter(|a| !**a) {
                                *a = true;
                                stats.phase(seq >= m).acked += 1;
                            }
                        }
                        Ok(Packet::PingResp) => {}
                        Ok(p) => {
                            bad = Some(format!("unexpected {p:?}"));
                            break;
                        }
                        Err(CodecError::InsufficientBytes(_)) => break,
                        Err(e) => {
                            bad = Some(format!("malformed packet from the broker: {e}"));
                            break;
                        }
                    }
                }
                if let Some(bad) = bad {
                    break Err(bad);
                }
            }
            start = go.wait_for(Option::is_some), if next.is_none() => {
                match start {
                    Ok(start) => {
                        let start = (*start).expect("set");
                        next = Some(tokio::time::Instant::from_std(start + offset));
                    }
                    Err(_) => break Ok(()),
                }
            }
            () = tokio::time::sleep_until(next.unwrap_or_else(tokio::time::Instant::now)),
                if next.is_some() && !in_burst && stats.paced.sent < m =>
            {
                let seq = stats.paced.sent;
                let sent_ns = publish(&mut out, &thing, index, seq, &mut payload);
                stats.paced.sent += 1;
                stats.paced.first_send_ns.get_or_insert(sent_ns);
                next = next.map(|t| t + config.interval);
            }
            changed = burst_rx.changed(), if !in_burst => {
                if changed.is_err() {
                    break Ok(());
                }
                in_burst = true;
                for _ in 0..config.window.min(b) {
                    let seq = m + stats.burst.sent;
                    let sent_ns = publish(&mut out, &thing, index, seq, &mut payload);
                    stats.burst.sent += 1;
                    stats.burst.first_send_ns.get_or_insert(sent_ns);
                }
            }
            _ = stop.changed() => break Ok(()),
        }
        if let Err(e) = write_packets(&mut stream, &mut out).await {
            break Err(e);
        }
    };
    match result {
        Ok(()) => {
            // Held to the end: say goodbye.
            let _ = Packet::Disconnect.write(&mut out, MAX_PACKET);
            let _ = write_packets(&mut stream, &mut out).await;
            let _ = stream.shutdown().await;
        }
        Err(e) => {
            stats.closed = Some(e);
            if !paced_done {
                shared.paced_done.fetch_add(1, Ordering::SeqCst);
            }
            if !burst_done {
                shared.burst_done.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    stats
}

/// Counts one delivery: latency, duplicates, messages that are not ours.
/// Whether it was a first delivery of one of our burst messages.
fn take_delivery(
    p: &Publish,
    index: usize,
    thing: &Thing,
    received_ns: u64,
    paced: u32,
    seen: &mut [bool],
    stats: &mut ConnStats,
) -> bool {
    if p.topic != thing.topic || p.payload.len() < HEADER {
        stats.misrouted += 1;
        return false;
    }
    let word = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b[8 - r.len()..].copy_from_slice(&p.payload[r]);
        u64::from_be_bytes(b)
    };
    let (seq, conn, sent_ns) = (word(0..4), word(4..8), word(8..16));
    if conn != index as u64 || seq >= seen.len() as u64 {
        stats.misrouted += 1;
        return false;
    }
    let slot = &mut seen[seq as usize];
    if *slot {
        stats.duplicates += 1;
        return false;
    }
    *slot = true;
    let burst = seq >= u64::from(paced);
    let phase = stats.phase(burst);
    phase.delivered += 1;
    phase.latencies.push(received_ns.saturating_sub(sent_ns));
    phase.last_delivery_ns = Some(
        phase
            .last_delivery_ns
            .map_or(received_ns, |t| t.max(received_ns)),
    );
    burst
}

/// The figures of one phase against one broker.
#[derive(Debug, Clone, Default)]
struct PhaseReport {
    sent: u64,
    acked: u64,
    delivered: u64,
    msgs_per_s: f64,
    /// First send to last delivery (or to the phase's end).
    wall: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// The broker process's CPU time over the phase.
    broker_cpu: Option<Duration>,
    /// The generator's CPU time over the phase.
    generator_cpu: Option<Duration>,
    /// Wall time of the phase, as the CPU figures' denominator.
    cpu_wall: Duration,
    /// The broker's resident set at the end of the phase, KiB.
    rss_after_kib: Option<u64>,
}

impl PhaseReport {
    fn of(stats: &[&PhaseStats], phase_end: Instant, sample: PhaseSample) -> PhaseReport {
        let mut latencies: Vec<u64> = stats
            .iter()
            .flat_map(|s| s.latencies.iter().copied())
            .collect();
        latencies.sort_unstable();
        let first_send = stats.iter().filter_map(|s| s.first_send_ns).min();
        let last_delivery = stats.iter().filter_map(|s| s.last_delivery_ns).max();
        let delivered: u64 = stats.iter().map(|s| u64::from(s.delivered)).sum();
        let wall = match (first_send, last_delivery) {
            (Some(a), Some(b)) if b > a => Duration::from_nanos(b - a),
            (Some(a), _) => Duration::from_nanos(since_base_ns(phase_end).saturating_sub(a)),
            _ => Duration::ZERO,
        };
        PhaseReport {
            sent: stats.iter().map(|s| u64::from(s.sent)).sum(),
            acked: stats.iter().map(|s| u64::from(s.acked)).sum(),
            delivered,
            msgs_per_s: delivered as f64 / wall.as_secs_f64().max(1e-9),
            wall,
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
            max: latencies
                .last()
                .map_or(Duration::ZERO, |&n| Duration::from_nanos(n)),
            broker_cpu: sample.broker_cpu,
            generator_cpu: sample.generator_cpu,
            cpu_wall: sample.wall,
            rss_after_kib: sample.rss_after_kib,
        }
    }

    fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.delivered)
    }

    /// The broker's CPU over the phase, as a share of one core.
    fn cpu_share(&self) -> Option<f64> {
        Some(self.broker_cpu?.as_secs_f64() / self.cpu_wall.as_secs_f64().max(1e-9))
    }

    /// The broker's CPU time per message delivered.
    fn cpu_per_message(&self) -> Option<Duration> {
        let n = u32::try_from(self.delivered).ok().filter(|&n| n > 0)?;
        Some(self.broker_cpu? / n)
    }

    /// The generator's CPU over the phase, as a share of one core.
    fn generator_share(&self) -> Option<f64> {
        Some(self.generator_cpu?.as_secs_f64() / self.cpu_wall.as_secs_f64().max(1e-9))
    }
}

/// The processes' figures over one phase.
struct PhaseSample {
    broker_cpu: Option<Duration>,
    generator_cpu: Option<Duration>,
    wall: Duration,
    rss_after_kib: Option<u64>,
}

/// CPU marks at the start of a phase.
struct Marks {
    pid: u32,
    broker: Option<Duration>,
    generator: Option<Duration>,
    at: Instant,
}

impl Marks {
    fn now(pid: u32) -> Marks {
        Marks {
            pid,
            broker: cpu_time(pid),
            generator: cpu_time(std::process::id()),
            at: Instant::now(),
        }
    }

    /// The figures since the marks.
    fn sample(&self) -> PhaseSample {
        PhaseSample {
            broker_cpu: cpu_since(self.pid, self.broker),
            generator_cpu: cpu_since(std::process::id(), self.generator),
            wall: self.at.elapsed(),
            rss_after_kib: proc_status_kib(self.pid, "VmRSS:"),
        }
    }
}

/// The figures of one run against one broker.
#[derive(Debug, Clone)]
struct Report {
    broker: String,
    connected: usize,
    refused: Vec<String>,
    connect_phase: Duration,
    connect_cpu: Option<Duration>,
    /// The broker's resident set once every connection is up, KiB.
    rss_connected_kib: Option<u64>,
    /// The broker's CPU with every connection idle, as a share of one core.
    idle_cpu: Option<f64>,
    held: usize,
    closed: Vec<String>,
    paced: PhaseReport,
    burst: PhaseReport,
    duplicates: u64,
    misrouted: u64,
    /// The broker process's peak resident set.
    broker_peak_rss_kib: Option<u64>,
    /// The generator's own CPU time over the run.
    generator_cpu: Option<Duration>,
    /// What the broker printed as it stopped (serve cloud's summary).
    broker_summary: String,
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Duration::from_nanos(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// CPU time of `pid` since `before` (None if /proc could not be read).
fn cpu_since(pid: u32, before: Option<Duration>) -> Option<Duration> {
    Some(cpu_time(pid)?.saturating_sub(before?))
}

/// Waits until `counter` reaches `target` or `deadline` passes, printing
/// progress every 10 s.
fn wait_for(broker: &str, phase: &str, counter: &AtomicUsize, target: usize, deadline: Instant) {
    let started = Instant::now();
    let mut last_report = Instant::now();
    while counter.load(Ordering::SeqCst) < target && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  {broker}: {phase}: {} of {target} connections done after {:.0} s",
                counter.load(Ordering::SeqCst),
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Runs the generator against a broker at `addr` (process `pid`).
fn run_load(
    broker: &str,
    addr: SocketAddr,
    pid: u32,
    things: &[Arc<Thing>],
    config: &Arc<Config>,
) -> Report {
    let (go, _) = watch::channel(None);
    let (burst, _) = watch::channel(false);
    let (stop, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        handshakes: Semaphore::new(config.handshakes),
        attempted: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
        paced_done: AtomicUsize::new(0),
        burst_done: AtomicUsize::new(0),
        go,
        burst,
        stop,
    });
    let me = std::process::id();
    let generator_before = cpu_time(me);
    let marks = Marks::now(pid);
    let phase_start = marks.at;
    let threads: Vec<_> = (0..config.threads)
        .map(|t| {
            let mine: Vec<(usize, Arc<Thing>)> = things
                .iter()
                .enumerate()
                .filter(|(i, _)| i % config.threads == t)
                .map(|(i, th)| (i, th.clone()))
                .collect();
            let (config, shared) = (config.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("load-{t}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a tokio runtime");
                    rt.block_on(async move {
                        let tasks: Vec<_> = mine
                            .into_iter()
                            .map(|(i, th)| {
                                tokio::spawn(run_thing(i, th, addr, config.clone(), shared.clone()))
                            })
                            .collect();
                        let mut stats = Vec::with_capacity(tasks.len());
                        for t in tasks {
                            stats.push(t.await.expect("a connection task panicked"));
                        }
                        stats
                    })
                })
                .expect("a generator thread")
        })
        .collect();

    // Every connection tries.
    let n = config.connections;
    while shared.attempted.load(Ordering::SeqCst) < n {
        std::thread::sleep(Duration::from_millis(10));
    }
    let connect_phase = phase_start.elapsed();
    let connect = marks.sample();
    let connected = shared.connected.load(Ordering::SeqCst);
    eprintln!(
        "  {broker}: {connected} of {n} connected and subscribed in {:.2} s",
        connect_phase.as_secs_f64(),
    );

    // Idle.
    let marks = Marks::now(pid);
    std::thread::sleep(config.idle);
    let idle = marks.sample();

    // Paced.
    eprintln!(
        "  {broker}: paced: {} messages per connection, every {:?}",
        config.messages, config.interval
    );
    let marks = Marks::now(pid);
    let start = Instant::now() + Duration::from_millis(200);
    shared.go.send_replace(Some(start));
    let paced_deadline = start + config.interval * config.messages + config.drain;
    wait_for(
        broker,
        "paced",
        &shared.paced_done,
        connected,
        paced_deadline,
    );
    let paced_end = Instant::now();
    let paced = marks.sample();

    // Burst.
    eprintln!(
        "  {broker}: burst: {} messages per connection, {} in flight",
        config.burst, config.window
    );
    let marks = Marks::now(pid);
    shared.burst.send_replace(true);
    // A hang guard: a broker that moves 500 messages/s still finishes.
    let burst_limit = Duration::from_secs_f64(
        (config.connections as f64 * f64::from(config.burst) / 500.0).max(10.0),
    ) + config.drain;
    wait_for(
        broker,
        "burst",
        &shared.burst_done,
        connected,
        marks.at + burst_limit,
    );
    let burst_end = Instant::now();
    let burst = marks.sample();

    // Sample the broker before the connections go (they close at once).
    let generator_cpu = cpu_since(me, generator_before);
    let broker_peak_rss_kib = proc_status_kib(pid, "VmHWM:");
    shared.stop.send_replace(true);
    let stats: Vec<ConnStats> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a generator thread panicked"))
        .collect();

    let refused: Vec<String> = stats.iter().filter_map(|s| s.failure.clone()).collect();
    let closed: Vec<String> = stats.iter().filter_map(|s| s.closed.clone()).collect();
    let paced_stats: Vec<&PhaseStats> = stats.iter().map(|s| &s.paced).collect();
    let burst_stats: Vec<&PhaseStats> = stats.iter().map(|s| &s.burst).collect();
    Report {
        broker: broker.to_string(),
        connected,
        held: connected - closed.len(),
        refused,
        closed,
        connect_phase,
        connect_cpu: connect.broker_cpu,
        rss_connected_kib: connect.rss_after_kib,
        idle_cpu: idle
            .broker_cpu
            .map(|c| c.as_secs_f64() / idle.wall.as_secs_f64().max(1e-9)),
        paced: PhaseReport::of(&paced_stats, paced_end, paced),
        burst: PhaseReport::of(&burst_stats, burst_end, burst),
        duplicates: stats.iter().map(|s| u64::from(s.duplicates)).sum(),
        misrouted: stats.iter().map(|s| u64::from(s.misrouted)).sum(),
        broker_peak_rss_kib,
        generator_cpu,
        broker_summary: String::new(),
    }
}

/// User + system CPU time of a process (/proc/PID/stat).
fn cpu_time(pid: u32) -> Option<Duration> {
    static TICKS: OnceLock<u64> = OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is 3rd;
    // utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_nanos(
        (utime + stime) * 1_000_000_000 / ticks,
    ))
}

/// A KiB figure of /proc/PID/status (`VmRSS:`, `VmHWM:`).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A broker process, killed if it is still running when dropped.
struct Broker {
    child: Child,
}

impl Broker {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` and waits for the process to end (killing it after
    /// [`PROCESS_LIMIT`]); returns how it ended.
    fn stop(mut self, signal: nix::sys::signal::Signal) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        let started = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if started.elapsed() < PROCESS_LIMIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return format!("did not stop within {PROCESS_LIMIT:?} of {signal}: killed");
                }
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `twinrig serve cloud` on a free port; returns it, its address and its stdout.
fn start_twinrig(certs: &Path, log: &Path) -> (Broker, SocketAddr, BufReader<ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(["serve", "cloud", "--mqtt", "127.0.0.1:0", "--certs"])
        .arg(certs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("a log file"))
        .spawn()
        .expect("twinrig serve cloud starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let broker = Broker { child };
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("serve cloud's ready line");
    let addr = line
        .split("mqtts://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no mqtts:// address in serve cloud's ready line {line:?}; its stderr: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
    (broker, addr, stdout)
}

/// Where `mosquitto` is: `TWINRIG_MOSQUITTO`, PATH, or Debian's /usr/sbin
/// (not on every user's PATH).
fn find_mosquitto() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TWINRIG_MOSQUITTO") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// mosquitto with the same server certificate, CA and client-certificate
/// requirement as `serve cloud --certs`, no persistence, no connection
/// limit, Nagle off as serve cloud has it.
fn start_mosquitto(bin: &Path, certs: &Path, dir: &Path) -> (Broker, SocketAddr) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    let mut text = format!(
        "# benches/cloud_load.rs: the peer broker.\n\
         per_listener_settings false\n\
         listener {port} 127.0.0.1\n\
         cafile {ca}\n\
         certfile {cert}\n\
         keyfile {key}\n\
         require_certificate true\n\
         use_identity_as_username true\n\
         allow_anonymous true\n\
         max_connections -1\n\
         persistence false\n\
         set_tcp_nodelay true\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n",
        ca = certs.join("root-ca.pem").display(),
        cert = certs.join("server.pem.crt").display(),
        key = certs.join("server.pem.key").display(),
    );
    if running_as_root() {
        // Run as root, mosquitto switches to the `mosquitto` user, which
        // cannot read the keys (mode 0600); stay root.
        text.push_str("user root\n");
    }
    std::fs::write(&conf, text).expect("mosquitto.conf");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("mosquitto.log")).expect("a log file"))
        .spawn()
        .expect("mosquitto starts");
    let mut broker = Broker { child };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = broker.child.try_wait() {
            panic!(
                "mosquitto exited with {status}: {}",
                std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < PROCESS_LIMIT,
            "mosquitto did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (broker, addr)
}

fn mosquitto_version(bin: &Path) -> String {
    // `mosquitto -h` prints its version first and exits 3.
    Command::new(bin)
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "mosquitto (version unknown)".into())
}

/// Open-file limit (soft) of this process, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Groups of equal reasons, most frequent first: "12 x closed by the broker".
fn tally(reasons: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in reasons {
        match counts.iter_mut().find(|(k, _)| k == r) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.clone(), 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
        .iter()
        .map(|(r, n)| format!("{n} x {r}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn print_reports(config: &Config, reports: &[Report]) {
    let us =
        |d: Option<Duration>| d.map_or("?".into(), |d| format!("{:.1} µs", d.as_secs_f64() * 1e6));
    let share = |s: Option<f64>| s.map_or("?".into(), |s| format!("{:.0} %", s * 100.0));
    println!();
    println!(
        "cloud_load: {} connections (MQTT 3.1.1, TLS, a client certificate each), QoS 1, {}-byte payloads",
        config.connections, config.payload
    );
    println!();
    println!(
        "Paced: {} messages per connection, one every {:?} per connection ({:.0} messages/s offered)",
        config.messages,
        config.interval,
        config.offered_per_s(),
    );
    println!();
    println!(
        "| broker | connected | held at end | sent | acked | delivered | lost | dup | messages/s | p50 | p99 | max | broker CPU | broker CPU / message | generator CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        let p = &r.paced;
        println!(
            "| {} | {} / {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            r.broker,
            r.connected,
            config.connections,
            r.held,
            p.sent,
            p.acked,
            p.delivered,
            p.lost(),
            r.duplicates,
            p.msgs_per_s,
            ms(p.p50),
            ms(p.p99),
            ms(p.max),
            share(p.cpu_share()),
            us(p.cpu_per_message()),
            share(p.generator_share()),
        );
    }
    println!();
    println!(
        "Burst: {} messages per connection, {} in flight per connection (the next sent as one comes back)",
        config.burst, config.window
    );
    println!();
    println!(
        "| broker | sent | acked | delivered | lost | messages/s | p50 | p99 | max | broker CPU | broker CPU / message | generator CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        let b = &r.burst;
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            r.broker,
            b.sent,
            b.acked,
            b.delivered,
            b.lost(),
            b.msgs_per_s,
            ms(b.p50),
            ms(b.p99),
            ms(b.max),
            share(b.cpu_share()),
            us(b.cpu_per_message()),
            share(b.generator_share()),
        );
    }
    println!();
    println!(
        "CPU: of one core, over the phase (100 % = one core busy). RSS: the broker's resident set."
    );
    println!();
    println!(
        "| broker | connect + subscribe, all | broker CPU time then | broker CPU, {} connections idle | RSS connected | RSS after paced | RSS after burst | peak RSS | generator CPU time, whole run |",
        config.connections
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mib = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    for r in reports {
        println!(
            "| {} | {:.2} s | {} | {} | {} | {} | {} | {} | {} |",
            r.broker,
            r.connect_phase.as_secs_f64(),
            r.connect_cpu
                .map_or("?".into(), |d| format!("{:.2} s", d.as_secs_f64())),
            share(r.idle_cpu),
            mib(r.rss_connected_kib),
            mib(r.paced.rss_after_kib),
            mib(r.burst.rss_after_kib),
            mib(r.broker_peak_rss_kib),
            r.generator_cpu
                .map_or("?".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        );
    }
    println!();
    for r in reports {
        println!(
            "{}: paced {:.2} s and burst {:.2} s from first send to last delivery; misrouted {}",
            r.broker,
            r.paced.wall.as_secs_f64(),
            r.burst.wall.as_secs_f64(),
            r.misrouted,
        );
        if !r.refused.is_empty() {
            println!("  refused: {}", tally(&r.refused));
        }
        if !r.closed.is_empty() {
            println!("  closed before the end: {}", tally(&r.closed));
        }
        if !r.broker_summary.is_empty() {
            println!("  broker: {}", r.broker_summary);
        }
    }
    let (Some(t), Some(m)) = (
        reports.iter().find(|r| r.broker == "twinrig"),
        reports.iter().find(|r| r.broker == "mosquitto"),
    ) else {
        return;
    };
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}x", a / b)
        } else {
            "-".into()
        }
    };
    let lat = |a: Duration, b: Duration| ratio(a.as_secs_f64(), b.as_secs_f64());
    let opt = |a: Option<f64>, b: Option<f64>| ratio(a.unwrap_or(0.0), b.unwrap_or(0.0));
    let opt_share = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b < 0.005 => {
            format!("- ({} against {})", share(Some(a)), share(Some(b)))
        }
        _ => opt(a, b),
    };
    println!();
    println!("twinrig / mosquitto:");
    println!();
    println!("| figure | ratio |");
    println!("|---|---|");
    println!("| paced p50 latency | {} |", lat(t.paced.p50, m.paced.p50));
    println!("| paced p99 latency | {} |", lat(t.paced.p99, m.paced.p99));
    println!("| paced max latency | {} |", lat(t.paced.max, m.paced.max));
    println!(
        "| paced broker CPU | {} |",
        opt(t.paced.cpu_share(), m.paced.cpu_share())
    );
    println!(
        "| burst messages/s | {} |",
        ratio(t.burst.msgs_per_s, m.burst.msgs_per_s)
    );
    println!("| burst p50 latency | {} |", lat(t.burst.p50, m.burst.p50));
    println!("| burst p99 latency | {} |", lat(t.burst.p99, m.burst.p99));
    println!(
        "| burst broker CPU | {} |",
        opt(t.burst.cpu_share(), m.burst.cpu_share())
    );
    let per = |r: &PhaseReport| r.cpu_per_message().map(|d| d.as_secs_f64());
    println!(
        "| paced broker CPU per message | {} |",
        opt(per(&t.paced), per(&m.paced))
    );
    println!(
        "| burst broker CPU per message | {} |",
        opt(per(&t.burst), per(&m.burst))
    );
    println!(
        "| connect + subscribe time | {} |",
        lat(t.connect_phase, m.connect_phase)
    );
    println!(
        "| idle broker CPU | {} |",
        opt_share(t.idle_cpu, m.idle_cpu)
    );
    println!(
        "| broker peak RSS | {} |",
        ratio(
            t.broker_peak_rss_kib.unwrap_or(0) as f64,
            m.broker_peak_rss_kib.unwrap_or(0) as f64
        )
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` (or
    // `--all-targets`) runs bench targets without it, as criterion's test
    // mode: a 1,000-connection load is no test, so say so and stop.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("cloud_load: a load generator, not a test: run `cargo bench --bench cloud_load`");
        return;
    }
    let _ = base();
    let config = Arc::new(Config::from_env());
    let n = config.connections;
    if let Some(limit) = open_files_limit()
        && limit < n as u64 + 64
    {
        eprintln!(
            "cloud_load: the open-file limit is {limit}, below {n} connections: raise it (`ulimit -n {}`) or lower TWINRIG_LOAD_CONNECTIONS",
            2 * n + 64
        );
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let certs = dir.path().join("certs");

    // Certificates, with the project's own CLI.
    let started = Instant::now();
    let mut certs_cmd = Command::new(env!("CARGO_BIN_EXE_twinrig"));
    certs_cmd.arg("certs").arg("--out").arg(&certs);
    for i in 0..n {
        certs_cmd.arg("--thing").arg(thing_name(i));
    }
    let out = certs_cmd.output().expect("twinrig certs runs");
    assert!(
        out.status.success(),
        "twinrig certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let things: Vec<Arc<Thing>> = load_things(&certs, n).into_iter().map(Arc::new).collect();
    eprintln!(
        "cloud_load: {n} things' certificates made by `twinrig certs` in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut reports = Vec::new();
    for broker in &config.brokers {
        match broker.as_str() {
            "twinrig" => {
                let log = dir.path().join("serve-cloud.log");
                let (b, addr, mut stdout) = start_twinrig(&certs, &log);
                eprintln!(
                    "cloud_load: twinrig serve cloud on {addr} (pid {})",
                    b.pid()
                );
                let mut report = run_load("twinrig", addr, b.pid(), &things, &config);
                let status = b.stop(nix::sys::signal::Signal::SIGINT);
                let mut rest = String::new();
                let _ = stdout.read_to_string(&mut rest);
                report.broker_summary = format!("{} (exit: {status})", rest.trim());
                let stderr = std::fs::read_to_string(&log).unwrap_or_default();
                if !stderr.trim().is_empty() {
                    report
                        .broker_summary
                        .push_str(&format!("; stderr: {}", stderr.trim()));
                }
                reports.push(report);
            }
            "mosquitto" => {
                let Some(bin) = find_mosquitto() else {
                    eprintln!(
                        "cloud_load: no `mosquitto` (not on PATH, not in /usr/sbin, or not at \
                         TWINRIG_MOSQUITTO): skipping the peer comparison. On Debian: \
                         `apt-get install mosquitto`"
                    );
                    continue;
                };
                let version = mosquitto_version(&bin);
                let (b, addr) = start_mosquitto(&bin, &certs, dir.path());
                eprintln!("cloud_load: {version} on {addr} (pid {})", b.pid());
                let mut report = run_load("mosquitto", addr, b.pid(), &things, &config);
                let status = b.stop(nix::sys::signal::Signal::SIGTERM);
                let log =
                    std::fs::read_to_string(dir.path().join("mosquitto.log")).unwrap_or_default();
                report.broker_summary = format!("{version} (exit: {status})");
                let errors: Vec<&str> = log
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.contains("should not be run as root"))
                    .collect();
                if !errors.is_empty() {
                    report.broker_summary.push_str(&format!(
                        "; {} log lines, the last: {}",
                        errors.len(),
                        errors.last().unwrap_or(&"")
                    ));
                }
                reports.push(report);
            }
            other => eprintln!(
                "cloud_load: unknown broker {other:?} in TWINRIG_LOAD_BROKERS (twinrig, mosquitto)"
            ),
        }
    }
    print_reports(&config, &reports);
}
