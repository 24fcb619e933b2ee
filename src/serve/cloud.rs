//! `twinrig serve cloud`: the cloud twin on the wall clock, for MQTT clients
//! outside the process (mosquitto, the AWS IoT Device SDKs, a board on the
//! bench).
//!
//! The world is the one `twinrig ota` builds ([`crate::world::build`]): the
//! broker (rumqttd's router) and the cloud twin's services on the simulated
//! network, unchanged. Each MQTT session from outside becomes a client of that
//! network under its own client id, so shadows, jobs and rules answer it as
//! they answer a simulated device. The serve loop, as `serve --pty` does,
//! runs the world up to `virtual start + wall time elapsed`, then moves
//! packets between the sockets and the sessions (non-blocking), then waits
//! 1 ms when nothing moved.
//!
//! MQTT 3.1.1 and 5 ([`super::mqtt`]), over TLS with client certificates
//! or plain TCP (`--insecure-tcp`): CONNECT, SUBSCRIBE and UNSUBSCRIBE,
//! PUBLISH (QoS 0 and 1, PUBACK once the message is queued to the broker),
//! PINGREQ and DISCONNECT, sessions that expire as AWS IoT's do. What differs
//! from AWS IoT Core and what is not served yet: docs/LIVE-CLOUD.md.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use serde_json::json;
use twinrig_hal::mqtt::topic_matches;
use twinrig_hal::{MqttClient as _, MqttMessage, QoS};
use twinrig_sim::net::{LinkParams, Network, SimMqttClient};
use twinrig_sim::{Nanos, Sim, SimError, format_nanos};

use super::aws_api::{Api, HttpConnection, firmware_base};
use super::mqtt::{
    ConnAckProperties, Connect, Inbound, Opening, Outbound, Reason, Version, Will, WireError,
    protocol_level,
};
use super::state::{CloudState, StateError};
use super::transport::{Received, TlsIdentity, TlsSetupError, Transport};
use crate::cloud_twin::CloudTwin;
use crate::fleet::{Fleet, FleetError};
use crate::scenario::fleet::FleetConfig;
use crate::world::{WorldError, WorldSpec};
use rustls::ServerConfig;
use std::sync::Arc;
use twinrig_cloud::policy::{Action as PolicyAction, Principal};
use twinrig_cloud::sigv4::Credentials;
use twinrig_cloud::things::{ThingRegistry, ThingsError};

/// Largest MQTT packet accepted or sent (AWS IoT Core's message limit is
/// 128 KiB of payload; this leaves room for the topic and header).
pub const MAX_PACKET: usize = 128 * 1024 + 1024;

/// QoS 1 messages held for a session while its client is away (AWS keeps
/// them for a persistent session; QoS 0 messages are not kept). Beyond
/// this, the oldest go and are counted.
pub const OFFLINE_QUEUE_CAP: usize = 1000;

/// How long a detached persistent session lives: AWS IoT's default
/// account setting (1 h; MQTT 5 clients may ask for less).
pub const SESSION_EXPIRY_MAX: Duration = Duration::from_secs(3600);

/// MQTT 5 topic aliases a client may set (AWS IoT Core's default limit).
pub const TOPIC_ALIAS_MAX: u16 = 8;

/// How long a connection may stay without a CONNECT (assumed; AWS does not
/// publish its value). Its first byte must be a CONNECT's, so only a client
/// that stalls mid-packet waits this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to serve the cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudServeOptions {
    /// Where the plain-TCP MQTT listener binds (no TLS, no client
    /// certificates: for local tools and tests only). Port 0 picks a free one.
    pub insecure_tcp: Option<SocketAddr>,
    /// Where the MQTT over TLS listener binds, and the `twinrig certs`
    /// folder with its identity and the things' certificates.
    pub tls: Option<(SocketAddr, PathBuf)>,
    /// The policy attached to every certificate (default: the default thing
    /// policy, `cloud/policies/default-thing.json`).
    pub policy: Option<PathBuf>,
    /// Where the HTTP listener for the AWS APIs (iot, iot-data) and the
    /// presigned downloads binds.
    pub http: Option<SocketAddr>,
    /// Where the HTTPS listener for the same binds (needs `tls`: the
    /// endpoint's certificate).
    pub https: Option<SocketAddr>,
    /// The access keys whose SigV4 signatures the HTTP APIs accept.
    pub credentials: Vec<Credentials>,
    /// The fleet whose things, types, groups, firmware and OTA gates the
    /// cloud starts with (a fleet file's or a scenario's `fleet:`).
    pub fleet: Option<FleetConfig>,
    /// Where the cloud's state is kept across restarts (read at start,
    /// written at stop; records go to its `records.sqlite` as they are made).
    pub state: Option<PathBuf>,
    /// The rules run on every message (a scenario's `cloud.rules`).
    pub rules: Vec<crate::scenario::RuleRef>,
    /// Stop after this much wall time (None: only when the stop flag is set).
    pub duration: Option<Duration>,
    /// The world's seed.
    pub seed: u64,
}

/// Where the cloud is served (given to `on_ready`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// The plain-TCP MQTT listener's address.
    pub mqtt_tcp: Option<SocketAddr>,
    /// The MQTT over TLS listener's address.
    pub mqtt_tls: Option<SocketAddr>,
    /// The HTTP listener's address (iot, iot-data, downloads).
    pub http: Option<SocketAddr>,
    /// The HTTPS listener's address (the same, over TLS).
    pub https: Option<SocketAddr>,
}

impl CloudEndpoints {
    /// The lines to print once the cloud is served.
    pub fn ready_line(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = self.mqtt_tls {
            parts.push(format!(
                "MQTT 3.1.1 and 5 on mqtts://{a} (TLS, client certificates required)"
            ));
        }
        if let Some(a) = self.https {
            parts.push(format!(
                "AWS IoT HTTP APIs on https://{a} (SigV4; presigned downloads)"
            ));
        }
        if let Some(a) = self.http {
            parts.push(format!(
                "AWS IoT HTTP APIs on http://{a} (SigV4; presigned downloads)"
            ));
        }
        if let Some(a) = self.mqtt_tcp {
            parts.push(format!(
                "MQTT 3.1.1 and 5 on tcp://{a} (insecure: no TLS, no client certificates)"
            ));
        }
        format!("cloud twin: {}; Ctrl-C to stop", parts.join("; "))
    }
}

/// What happened while serving the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloudServeSummary {
    /// Wall time served.
    pub wall: Duration,
    /// Virtual time the world ran (follows `wall`).
    pub virtual_ns: Nanos,
    /// Connections accepted.
    pub connections: u64,
    /// Connections refused or closed for a protocol error.
    pub refused: u64,
    /// PUBLISH packets received from clients.
    pub published: u64,
    /// PUBLISH packets delivered to clients.
    pub delivered: u64,
    /// QoS 1 messages dropped from full offline queues.
    pub dropped_offline: u64,
    /// Deliveries dropped because the policies do not allow `iot:Receive`.
    pub not_received: u64,
    /// Publishes and subscriptions the policies refused on MQTT 5
    /// connections (answered with reason code 0x87; an MQTT 3.1.1
    /// connection closes instead and counts as refused).
    pub denied: u64,
}

impl std::fmt::Display for CloudServeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "served the cloud for {:.1} s ({} virtual): {} connections ({} refused or closed for a \
             protocol error), {} messages in, {} out, {} dropped from offline queues, {} not \
             allowed to be received, {} publishes or subscriptions denied (MQTT 5)",
            self.wall.as_secs_f64(),
            format_nanos(self.virtual_ns),
            self.connections,
            self.refused,
            self.published,
            self.delivered,
            self.dropped_offline,
            self.not_received,
            self.denied,
        )
    }
}

/// Why the cloud could not be served.
#[derive(Debug, thiserror::Error)]
pub enum CloudServeError {
    /// The certificates folder could not be used.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The world could not be built.
    #[error(transparent)]
    World(#[from] WorldError),
    /// The fleet's firmware or gates could not be put in the cloud.
    #[error("fleet: {0}")]
    Fleet(#[from] FleetError),
    /// The rules could not be loaded.
    #[error("rules: {0}")]
    Rules(String),
    /// The kept state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// `--https` was asked for without the endpoint's certificate.
    #[error("--https serves with the endpoint's certificate: give --certs DIR too")]
    HttpsWithoutCertificate,
    /// The fleet's things could not be registered.
    #[error("thing registry: {0}")]
    Registry(String),
    /// The simulated network refused the HTTP plane's session.
    #[error("network: {0}")]
    Network(String),
    /// The world stopped with an error.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// A simulated task panicked (a twin bug).
    #[error(transparent)]
    TaskFailed(#[from] super::TaskPanicked),
}

/// An MQTT session on the simulated network: it outlives the connections
/// that use it for its expiry, as a persistent session on AWS IoT does.
struct Session {
    client: SimMqttClient,
    /// Packets for the client, in order (SUBACKs, UNSUBACKs, deliveries).
    outbox: RefCell<VecDeque<Outbound>>,
    /// The connection using the session, if any.
    attached: Cell<Option<u64>>,
    next_pkid: Cell<u16>,
    dropped_offline: Cell<u64>,
    /// Connections so far (lifecycle events' `versionNumber`).
    versions: Cell<u64>,
    /// The session's subscriptions (a delivery still on its way when its
    /// filter was unsubscribed is dropped).
    filters: RefCell<BTreeSet<String>>,
    /// The protocol version of the connection that made it (AWS IoT does
    /// not resume an MQTT 3.1.1 session as MQTT 5, or the reverse).
    protocol: Cell<Version>,
    /// How long it outlives its connection (zero: it ends with it).
    expiry: Cell<Duration>,
    /// When its last connection closed.
    detached_at: Cell<Option<Instant>>,
}

impl Session {
    fn pkid(&self) -> u16 {
        // Packet ids run 1..=65535.
        let id = self.next_pkid.get().max(1);
        self.next_pkid.set(id.checked_add(1).unwrap_or(1));
        id
    }

    /// Queues a delivery on a subscribed topic; while no client is attached
    /// only QoS 1 is kept, at most [`OFFLINE_QUEUE_CAP`] of it.
    fn deliver(&self, m: MqttMessage) {
        let subscribed = self
            .filters
            .borrow()
            .iter()
            .any(|f| topic_matches(f, &m.topic));
        if !subscribed {
            return;
        }
        let mut outbox = self.outbox.borrow_mut();
        if self.attached.get().is_none() {
            if m.qos == QoS::AtMostOnce {
                return;
            }
            if outbox.len() >= OFFLINE_QUEUE_CAP {
                outbox.pop_front();
                self.dropped_offline.set(self.dropped_offline.get() + 1);
            }
        }
        let pkid = match m.qos {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => self.pkid(),
        };
        outbox.push_back(Outbound::Publish {
            topic: m.topic,
            qos: m.qos,
            pkid,
            payload: m.payload.into(),
            retain: false,
        });
    }

    /// Ends the session: its subscriptions are removed from the broker and
    /// nothing stays queued.
    fn end(self: &Rc<Self>, sim: &mut Sim) {
        let filters = std::mem::take(&mut *self.filters.borrow_mut());
        self.outbox.borrow_mut().clear();
        self.detached_at.set(None);
        if !filters.is_empty() {
            let s = self.clone();
            sim.spawn("serve: end of a session", async move {
                for filter in filters {
                    let _ = s.client.unsubscribe(&filter).await;
                }
            });
        }
    }

    /// Whether it is detached and its expiry has passed.
    fn expired(&self, now: Instant) -> bool {
        self.detached_at
            .get()
            .is_some_and(|at| now.duration_since(at) >= self.expiry.get())
    }
}

/// One TCP connection.
struct Connection {
    id: u64,
    transport: Transport,
    inbuf: BytesMut,
    outbuf: BytesMut,
    /// The MQTT version its CONNECT named (None until it arrives).
    protocol: Option<Version>,
    session: Option<(String, Rc<Session>)>,
    closing: bool,
    /// When a packet last arrived (or the connection was accepted).
    last_packet: Instant,
    /// The keep-alive the client asked for (0: none).
    keep_alive: Duration,
    /// Over TLS: who the policies judge (None on plain TCP: no checks).
    principal: Option<(String, Principal)>,
    /// Why it is closing, for its `disconnected` lifecycle event (AWS's
    /// `disconnectReason`).
    reason: &'static str,
    /// The client's address (`ipAddress` in lifecycle events).
    peer: std::net::IpAddr,
    /// Its `versionNumber` in lifecycle events, once connected.
    version_number: u64,
    /// The largest packet the client accepts.
    max_packet: usize,
    /// MQTT 5 topic aliases the client set.
    aliases: BTreeMap<u16, String>,
    /// The Last Will of its CONNECT, published when it closes without a
    /// DISCONNECT.
    will: Option<Will>,
}

impl Connection {
    /// Appends a packet for the client, in its protocol version (a packet
    /// the version has not, or one over the client's limit, is skipped).
    fn send(&mut self, packet: &Outbound) {
        let _ =
            self.protocol
                .unwrap_or(Version::V311)
                .write(packet, &mut self.outbuf, self.max_packet);
    }

    /// Closes the connection for a client error: an MQTT 5 client is told
    /// why with a DISCONNECT first.
    fn close(
        &mut self,
        reason: Reason,
        event_reason: &'static str,
        summary: &mut CloudServeSummary,
    ) {
        self.send(&Outbound::Disconnect(reason));
        self.closing = true;
        self.reason = event_reason;
        summary.refused += 1;
    }
}

/// Serves the cloud twin until `stop` is set or `options.duration` elapses.
/// `on_ready` gets the endpoints once clients can connect. Runs the world on
/// the calling thread (it is not `Send`).
pub fn serve_cloud(
    options: &CloudServeOptions,
    stop: &AtomicBool,
    on_ready: impl FnOnce(&CloudEndpoints),
) -> Result<CloudServeSummary, CloudServeError> {
    let mut identity = match &options.tls {
        Some((_, dir)) => Some(TlsIdentity::load(dir, options.policy.as_deref())?),
        None => None,
    };
    let mut endpoints = CloudEndpoints {
        mqtt_tcp: None,
        mqtt_tls: None,
        http: None,
        https: None,
    };
    if options.https.is_some() && identity.is_none() {
        return Err(CloudServeError::HttpsWithoutCertificate);
    }
    // Listeners with the TLS configuration their connections get (None: plain).
    let mqtt_tls = identity.as_ref().map(|i| i.config.clone());
    let https = identity.as_ref().map(|i| i.https_config.clone());
    let mut listeners: Vec<(TcpListener, Option<Arc<ServerConfig>>)> = Vec::new();
    let mut http_listeners: Vec<(TcpListener, Option<Arc<ServerConfig>>)> = Vec::new();
    for (addr, tls, bound, http) in [
        (
            options.tls.as_ref().map(|(a, _)| *a),
            mqtt_tls,
            &mut endpoints.mqtt_tls,
            false,
        ),
        (options.insecure_tcp, None, &mut endpoints.mqtt_tcp, false),
        (options.https, https, &mut endpoints.https, true),
        (options.http, None, &mut endpoints.http, true),
    ] {
        let Some(addr) = addr else { continue };
        let listen_error = |source| CloudServeError::Listen { addr, source };
        let listener = TcpListener::bind(addr).map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        *bound = Some(listener.local_addr().map_err(listen_error)?);
        if http {
            http_listeners.push((listener, tls));
        } else {
            listeners.push((listener, tls));
        }
    }

    let mut sim = Sim::new(options.seed);
    // Live mode: virtual time 0 is now, so the services' timestamps are real.
    let epoch_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let world = crate::world::build(
        &mut sim,
        WorldSpec {
            scene: None,
            rules: crate::runner::rules_pipeline_of(&options.rules)
                .map_err(CloudServeError::Rules)?,
            epoch_unix_s,
            fleet: None,
        },
    )?;
    // The cloud twin is the only reader of the broker's log: what it has
    // read can go, so memory stays flat however long the cloud is served.
    world
        .network
        .set_retention(|_| false, crate::runner::OBSERVED_WINDOW);
    let network = world.network.clone();
    let cloud = world.cloud.clone();
    // The iot-data plane's own session, for Publish.
    let http_client = network
        .connect(HTTP_CLIENT, LinkParams::ideal())
        .map_err(CloudServeError::Network)?;
    let mut http_connections: Vec<HttpConnection> = Vec::new();
    let mut things = thing_registry(&cloud, options.fleet.as_ref(), identity.as_ref())?;
    if let Some(fleet) = &options.fleet {
        Fleet::provision_cloud(&cloud, fleet)?;
    }
    if let Some(dir) = &options.state {
        cloud.use_store(super::state::open_records(dir)?);
    }
    if let Some(dir) = &options.state
        && let Some(kept) = CloudState::load(dir)?
    {
        let invalid = |message: String| StateError::Invalid {
            path: dir.join(super::state::STATE_FILE),
            message,
        };
        cloud
            .shadows_mut()
            .restore(kept.shadows)
            .map_err(|e| invalid(format!("shadows: {e}")))?;
        cloud
            .jobs()
            .borrow_mut()
            .restore(kept.jobs)
            .map_err(|e| invalid(format!("jobs: {e}")))?;
        things.restore(kept.things);
        if let (Some(i), Some(c)) = (identity.as_mut(), kept.certificates) {
            i.certificates
                .restore(c)
                .map_err(|e| invalid(format!("certificates: {e}")))?;
        }
    }
    // Presigned URLs point at an HTTP listener, where the images are
    // served: the HTTPS one if there is one.
    let origin = match (endpoints.https, endpoints.http) {
        (Some(a), _) => format!("https://{a}"),
        (None, Some(a)) => format!("http://{a}"),
        (None, None) => String::new(),
    };
    if !origin.is_empty() {
        cloud
            .registry()
            .borrow_mut()
            .serve_at(&firmware_base(&origin));
    }
    // The name in the server certificate (DescribeEndpoint's answer).
    let endpoint_address = identity
        .as_ref()
        .map_or_else(|| "localhost".to_owned(), |i| i.endpoint_address.clone());
    super::keep_time_moving(&mut sim);

    on_ready(&endpoints);

    let mut summary = CloudServeSummary::default();
    let mut sessions: BTreeMap<String, Rc<Session>> = BTreeMap::new();
    let retained: Rc<RefCell<Retained>> = Rc::default();
    let mut connections: Vec<Connection> = Vec::new();
    let mut next_connection = 0u64;
    let wall_start = Instant::now();
    let virtual_start = sim.now();
    let mut read_buf = vec![0u8; 16 * 1024];
    let mut last_expiry_sweep = Instant::now();
    loop {
        let mut moved = false;
        let elapsed = wall_start.elapsed();
        let done = stop.load(Ordering::SeqCst) || options.duration.is_some_and(|d| elapsed >= d);

        // New connections.
        for (listener, tls) in &listeners {
            let Some((transport, peer)) = Transport::accept(listener, tls.as_ref()) else {
                continue;
            };
            moved = true;
            summary.connections += 1;
            next_connection += 1;
            connections.push(Connection {
                id: next_connection,
                transport,
                inbuf: BytesMut::new(),
                outbuf: BytesMut::new(),
                protocol: None,
                session: None,
                closing: false,
                last_packet: Instant::now(),
                keep_alive: Duration::ZERO,
                principal: None,
                reason: CONNECTION_LOST,
                peer: peer.ip(),
                version_number: 0,
                max_packet: MAX_PACKET,
                aliases: BTreeMap::new(),
                will: None,
            });
        }

        // HTTP requests.
        for (listener, tls) in &http_listeners {
            if let Some((transport, _)) = Transport::accept(listener, tls.as_ref()) {
                moved = true;
                http_connections.push(HttpConnection::new(transport));
            }
        }
        for h in &mut http_connections {
            let mut api = Api {
                sim: &mut sim,
                cloud: &cloud,
                things: &mut things,
                identity: identity.as_mut(),
                publisher: &http_client,
                credentials: &options.credentials,
                endpoint_address: &endpoint_address,
                origin: &origin,
            };
            moved |= h.serve(&mut read_buf, &mut api);
        }
        http_connections.retain(|h| !h.closing());

        // Packets from the clients.
        for i in 0..connections.len() {
            let mut packets = Vec::new();
            {
                let c = &mut connections[i];
                match c.transport.receive(&mut read_buf, &mut c.inbuf) {
                    Ok(Received::Nothing) => {}
                    Ok(Received::Data) => moved = true,
                    Ok(Received::Closed) => c.closing = true,
                    Err(_) => {
                        // A failed TLS handshake (unknown CA, no
                        // certificate) or a broken socket.
                        c.closing = true;
                        summary.refused += u64::from(c.session.is_none());
                    }
                }
                // The version the CONNECT names decides the codec; a
                // stream that does not open with a CONNECT is not MQTT.
                if c.protocol.is_none() && !c.closing {
                    match protocol_level(&c.inbuf) {
                        Opening::Incomplete => {}
                        Opening::NotConnect => {
                            c.closing = true;
                            summary.refused += 1;
                            c.inbuf.clear();
                        }
                        Opening::Connect(level) => match Version::from_level(level) {
                            Some(v) => c.protocol = Some(v),
                            None => {
                                // MQTT 3.1 and unknown levels: 3.1.1's refusal.
                                c.send(&Outbound::ConnAck {
                                    session_present: false,
                                    reason: Reason::UnsupportedProtocolVersion,
                                    properties: None,
                                });
                                c.close(
                                    Reason::UnsupportedProtocolVersion,
                                    CLIENT_ERROR,
                                    &mut summary,
                                );
                                c.inbuf.clear();
                            }
                        },
                    }
                }
                if !c.closing && timed_out(c) {
                    let attached = c.session.is_some();
                    c.send(&Outbound::Disconnect(Reason::KeepAliveTimeout));
                    c.closing = true;
                    c.reason = "MQTT_KEEP_ALIVE_TIMEOUT";
                    summary.refused += u64::from(!attached);
                }
                while let Some(version) = c.protocol.filter(|_| !c.closing) {
                    match version.read(&mut c.inbuf, MAX_PACKET) {
                        Ok(Some(p)) => {
                            c.last_packet = Instant::now();
                            if let Inbound::Connect(connect) = &p {
                                c.keep_alive = aws_keep_alive(connect.keep_alive_s);
                            }
                            packets.push(p);
                        }
                        Ok(None) => break,
                        // AWS closes the connection (MQTT 5: with a reason).
                        Err(WireError::TooLarge(_)) => {
                            c.close(Reason::PacketTooLarge, CLIENT_ERROR, &mut summary);
                        }
                        Err(WireError::Malformed(_)) => {
                            c.close(Reason::MalformedPacket, CLIENT_ERROR, &mut summary);
                        }
                    }
                }
            }
            let mut plane = Plane {
                sim: &mut sim,
                network: &network,
                identity: identity.as_ref(),
                sessions: &mut sessions,
                summary: &mut summary,
                retained: &retained,
            };
            for packet in packets {
                handle(&mut plane, &mut connections, i, packet);
            }
        }

        // The world, up to the wall clock.
        let target =
            virtual_start.saturating_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        sim.run_until(target, |_| false)?;
        super::first_panic(&sim)?;
        drop(sim.take_trace());

        // Packets to the clients.
        for c in &mut connections {
            if let Some((_, session)) = c.session.clone() {
                let mut outbox = session.outbox.borrow_mut();
                while let Some(p) = outbox.pop_front() {
                    if let Outbound::Publish { topic, .. } = &p {
                        // A delivery the policies do not allow to Receive is
                        // dropped (AWS IoT drops it silently).
                        if let (Some((cert, who)), Some(identity)) = (&c.principal, &identity)
                            && !identity.allows(cert, who, PolicyAction::Receive, topic)
                        {
                            summary.not_received += 1;
                            continue;
                        }
                        summary.delivered += 1;
                    }
                    // Packets the twin makes fit MAX_PACKET (the broker
                    // refuses larger publishes); one over a smaller limit
                    // an MQTT 5 client set is skipped, as the spec says.
                    c.send(&p);
                }
            }
            match c.transport.send(&mut c.outbuf) {
                Ok(sent) => moved |= sent,
                Err(_) => c.closing = true,
            }
        }
        connections.retain_mut(|c| {
            if c.closing {
                c.transport.close();
                if let Some((client_id, s)) = &c.session {
                    if s.attached.get() == Some(c.id) {
                        s.attached.set(None);
                        if s.expiry.get().is_zero() {
                            s.end(&mut sim);
                        } else {
                            s.detached_at.set(Some(Instant::now()));
                        }
                    }
                    let mut event = lifecycle_event(c, client_id, "disconnected");
                    event["clientInitiatedDisconnect"] =
                        json!(c.reason == CLIENT_INITIATED_DISCONNECT);
                    event["disconnectReason"] = json!(c.reason);
                    publish_lifecycle(&mut sim, s, client_id, "disconnected", &event);
                    // Every end but the client's own DISCONNECT publishes
                    // the Last Will (a keep-alive timeout, a lost link, a
                    // takeover, an error).
                    if let Some(will) = c.will.take() {
                        publish_will(&mut sim, s, &retained, will);
                    }
                }
            }
            !c.closing
        });
        // Persistent sessions whose client stayed away too long end.
        if last_expiry_sweep.elapsed() >= Duration::from_secs(1) {
            last_expiry_sweep = Instant::now();
            for s in sessions.values().filter(|s| s.expired(last_expiry_sweep)) {
                s.end(&mut sim);
            }
        }
        if done {
            break;
        }
        if !moved {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    summary.wall = wall_start.elapsed();
    summary.virtual_ns = sim.now() - virtual_start;
    summary.dropped_offline = sessions.values().map(|s| s.dropped_offline.get()).sum();
    if let Some(dir) = &options.state {
        let state = CloudState::new(
            cloud.shadows().snapshot(),
            cloud.jobs().borrow().snapshot(),
            things.snapshot(),
            identity.as_ref().map(|i| i.certificates.snapshot()),
        );
        state.save(dir)?;
    }
    sim.shutdown();
    Ok(summary)
}

/// The thing registry the control plane starts with: the fleet's devices
/// as things, each type a thing type and a thing group of its devices (as
/// the AWS fleet tools find device types), and a thing for each certificate
/// `twinrig certs` issued (it attached them to their things).
fn thing_registry(
    cloud: &CloudTwin,
    fleet: Option<&FleetConfig>,
    identity: Option<&TlsIdentity>,
) -> Result<ThingRegistry, CloudServeError> {
    let jobs = cloud.jobs().borrow();
    let mut things = ThingRegistry::new(&jobs.config().region, &jobs.config().account_id);
    let refused = |e: ThingsError| CloudServeError::Registry(e.message().to_owned());
    for (id, group) in fleet.iter().flat_map(|f| f.device_ids()) {
        let device_type = group.device_type.as_str();
        things.create_thing_type(device_type).map_err(refused)?;
        let description = format!("{device_type} devices of the fleet");
        things
            .create_thing_group(device_type, None, Some(&description))
            .map_err(refused)?;
        things
            .create_thing(&id, Some(device_type), BTreeMap::new())
            .map_err(refused)?;
        things
            .add_thing_to_thing_group(device_type, &id)
            .map_err(refused)?;
    }
    let attached = identity
        .iter()
        .flat_map(|i| i.certificates.iter())
        .flat_map(|(_, c)| c.things.iter());
    for thing in attached {
        if !things.has_thing(thing) {
            things
                .create_thing(thing, None, BTreeMap::new())
                .map_err(refused)?;
        }
    }
    Ok(things)
}

/// `disconnectReason`s (AWS IoT lifecycle events).
const CONNECTION_LOST: &str = "CONNECTION_LOST";
const CLIENT_ERROR: &str = "CLIENT_ERROR";
const CLIENT_INITIATED_DISCONNECT: &str = "CLIENT_INITIATED_DISCONNECT";

/// The fields a `connected` and a `disconnected` event share
/// (reference: aws-iot-core-endpoint.md, lifecycle events).
fn lifecycle_event(c: &Connection, client_id: &str, event_type: &str) -> serde_json::Value {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut event = json!({
        "clientId": client_id,
        "timestamp": u64::try_from(now_ms).unwrap_or(u64::MAX),
        "eventType": event_type,
        "sessionIdentifier": format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), c.id),
        "versionNumber": c.version_number,
    });
    if let Some(id) = c.transport.client_certificate_id() {
        event["principalIdentifier"] = json!(id);
    }
    if let Some(thing) = c
        .principal
        .as_ref()
        .and_then(|(_, p)| p.thing_name.as_ref())
    {
        event["thingName"] = json!(thing);
    }
    event
}

/// Publishes a lifecycle event on `$aws/events/presence/{kind}/{clientId}`
/// through the client's own session (the broker routes it as AWS's would).
fn publish_lifecycle(
    sim: &mut Sim,
    session: &Rc<Session>,
    client_id: &str,
    kind: &str,
    event: &serde_json::Value,
) {
    let topic = format!("$aws/events/presence/{kind}/{client_id}");
    let payload = event.to_string();
    let s = session.clone();
    sim.spawn("serve: lifecycle event", async move {
        let _ = s
            .client
            .publish(&topic, payload.as_bytes(), QoS::AtLeastOnce)
            .await;
    });
}

/// The keep-alive AWS IoT applies for the one a client asks for: 30 to
/// 1200 s; 0 or more than 1200 becomes 1200, 1 to 29 becomes 30
/// (reference: aws-iot-core-endpoint.md, limits).
pub fn aws_keep_alive(asked_s: u16) -> Duration {
    Duration::from_secs(match asked_s {
        0 | 1201.. => 1200,
        1..=29 => 30,
        s => s.into(),
    })
}

/// Whether a connection has waited too long: for its CONNECT
/// ([`CONNECT_TIMEOUT`]), or, once connected, 1.5 keep-alive periods
/// without a packet (AWS IoT's rule).
fn timed_out(c: &Connection) -> bool {
    let idle = c.last_packet.elapsed();
    match &c.session {
        None => idle > CONNECT_TIMEOUT,
        Some(_) => idle > c.keep_alive.mul_f64(1.5),
    }
}

/// The access key `serve cloud --http` accepts unless told otherwise
/// (`twinrig` / `twinrig-local-secret`: a local twin's, printed in the docs,
/// as LocalStack's `test`/`test`).
pub fn default_credentials() -> Credentials {
    Credentials {
        access_key_id: "twinrig".into(),
        secret_access_key: "twinrig-local-secret".into(),
    }
}

/// The MQTT client id of the iot-data HTTP plane's session (its Publish).
const HTTP_CLIENT: &str = "twinrig-iot-data";

/// Client ids the harness itself uses on the network.
fn reserved(client_id: &str) -> bool {
    client_id == crate::scenario::RESERVED_CLIENT_ID
        || client_id == crate::scenario::CLOUD_CLIENT_ID
        || client_id == HTTP_CLIENT
}

/// What handling a client's packet may touch besides its connection.
struct Plane<'a> {
    sim: &'a mut Sim,
    network: &'a Network,
    identity: Option<&'a TlsIdentity>,
    sessions: &'a mut BTreeMap<String, Rc<Session>>,
    summary: &'a mut CloudServeSummary,
    retained: &'a Rc<RefCell<Retained>>,
}

/// Retained messages, one per topic (AWS IoT keeps them for three years
/// after their last update; here for as long as the server runs).
type Retained = BTreeMap<String, (Bytes, QoS)>;

/// Keeps or (an empty payload) deletes the retained message of `topic`.
fn retain(retained: &RefCell<Retained>, topic: &str, payload: &Bytes, qos: QoS) {
    let mut retained = retained.borrow_mut();
    if payload.is_empty() {
        retained.remove(topic);
    } else {
        retained.insert(topic.to_owned(), (payload.clone(), qos));
    }
}

fn handle(p: &mut Plane<'_>, connections: &mut [Connection], index: usize, packet: Inbound) {
    let session = connections[index].session.as_ref().map(|(_, s)| s.clone());
    let conn = &mut connections[index];
    let v5 = conn.protocol == Some(Version::V5);
    match (packet, session) {
        (Inbound::Connect(connect), None) => {
            open_session(p, connections, index, connect);
        }
        (_, None) | (Inbound::Connect(_), Some(_)) => {
            // Anything before CONNECT, or a second CONNECT: a protocol error.
            conn.close(Reason::ProtocolError, CLIENT_ERROR, p.summary);
        }
        (Inbound::Subscribe(pkid, filters), Some(session)) => {
            let who = conn.principal.clone();
            let filters: Vec<(String, Result<QoS, Reason>)> = filters
                .into_iter()
                .map(|(filter, qos)| {
                    let granted = match qos {
                        0 => Ok(QoS::AtMostOnce),
                        1 => Ok(QoS::AtLeastOnce),
                        // AWS IoT has no QoS 2: an MQTT 5 subscription is
                        // granted QoS 1 (its CONNACK said Maximum QoS 1), an
                        // MQTT 3.1.1 one fails.
                        _ if v5 => Ok(QoS::AtLeastOnce),
                        _ => Err(Reason::QosNotSupported),
                    };
                    let valid = twinrig_hal::mqtt::validate_topic_filter(&filter).is_ok();
                    // A filter the policies do not allow gets a failure code.
                    let allowed = match (&who, p.identity) {
                        (Some((cert, who)), Some(i)) => {
                            i.allows(cert, who, PolicyAction::Subscribe, &filter)
                        }
                        _ => true,
                    };
                    let code = match (valid, allowed) {
                        (false, _) => Err(Reason::TopicFilterInvalid),
                        (true, false) => Err(Reason::NotAuthorized),
                        (true, true) => granted,
                    };
                    (filter, code)
                })
                .collect();
            p.summary.denied += filters
                .iter()
                .filter(|(_, c)| *c == Err(Reason::NotAuthorized))
                .count() as u64;
            for (filter, code) in &filters {
                if code.is_ok() {
                    session.filters.borrow_mut().insert(filter.clone());
                }
            }
            let s = session.clone();
            let retained = p.retained.clone();
            p.sim.spawn("serve: subscribe", async move {
                let mut codes = Vec::new();
                let mut kept = Vec::new();
                for (filter, code) in filters {
                    codes.push(match code {
                        Ok(qos) => match s.client.subscribe(&filter, qos).await {
                            Ok(()) => {
                                // A retained message goes to an exact-topic
                                // filter only, never a wildcard one (AWS IoT).
                                if let Some((payload, stored)) = retained.borrow().get(&filter) {
                                    kept.push((
                                        filter.clone(),
                                        payload.clone(),
                                        (*stored).min(qos),
                                    ));
                                }
                                Ok(qos)
                            }
                            Err(_) => Err(Reason::ServerUnavailable),
                        },
                        Err(reason) => Err(reason),
                    });
                }
                s.outbox
                    .borrow_mut()
                    .push_back(Outbound::SubAck(pkid, codes));
                // After the SUBACK, each with RETAIN set (only this copy has it).
                for (topic, payload, qos) in kept {
                    let pkid = match qos {
                        QoS::AtMostOnce => 0,
                        QoS::AtLeastOnce => s.pkid(),
                    };
                    s.outbox.borrow_mut().push_back(Outbound::Publish {
                        topic,
                        qos,
                        pkid,
                        payload,
                        retain: true,
                    });
                }
            });
        }
        (Inbound::Unsubscribe(pkid, filters), Some(session)) => {
            let removed: Vec<(String, bool)> = filters
                .into_iter()
                .map(|f| {
                    let had = session.filters.borrow_mut().remove(&f);
                    (f, had)
                })
                .collect();
            let s = session.clone();
            p.sim.spawn("serve: unsubscribe", async move {
                let mut reasons = Vec::new();
                for (filter, had) in removed {
                    reasons.push(match had {
                        false => Reason::NoSubscriptionExisted,
                        true => match s.client.unsubscribe(&filter).await {
                            Ok(()) => Reason::Success,
                            Err(_) => Reason::ServerUnavailable,
                        },
                    });
                }
                s.outbox
                    .borrow_mut()
                    .push_back(Outbound::UnsubAck(pkid, reasons));
            });
        }
        (Inbound::Publish(mut publish), Some(session)) => {
            p.summary.published += 1;
            let qos = match publish.qos {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                // AWS IoT refuses QoS 2: it closes an MQTT 3.1.1
                // connection, an MQTT 5 one with DISCONNECT 0x9B.
                _ => {
                    conn.close(Reason::QosNotSupported, CLIENT_ERROR, p.summary);
                    return;
                }
            };
            if let Some(alias) = publish.topic_alias {
                if alias == 0 || alias > TOPIC_ALIAS_MAX {
                    conn.close(Reason::TopicAliasInvalid, CLIENT_ERROR, p.summary);
                    return;
                }
                if publish.topic.is_empty() {
                    match conn.aliases.get(&alias) {
                        Some(topic) => publish.topic = topic.clone(),
                        None => {
                            conn.close(Reason::ProtocolError, CLIENT_ERROR, p.summary);
                            return;
                        }
                    }
                } else {
                    conn.aliases.insert(alias, publish.topic.clone());
                }
            }
            // An invalid topic: MQTT 3.1.1 connections close; MQTT 5 gets
            // PUBACK 0x90 (QoS 1) or DISCONNECT 0x90 (QoS 0).
            if twinrig_hal::mqtt::validate_publish_topic(&publish.topic).is_err() {
                if v5 && qos == QoS::AtLeastOnce {
                    conn.send(&Outbound::PubAck(publish.pkid, Reason::TopicNameInvalid));
                } else {
                    conn.close(Reason::TopicNameInvalid, CLIENT_ERROR, p.summary);
                }
                return;
            }
            // A publish the policies do not allow closes an MQTT 3.1.1
            // connection; MQTT 5 gets PUBACK 0x87 and keeps the connection
            // (a denied QoS 0 publish is dropped: assumed, AWS does not
            // document it).
            // A retained publish also needs `iot:RetainPublish`.
            if let (Some((cert, who)), Some(i)) = (&conn.principal, p.identity)
                && (!i.allows(cert, who, PolicyAction::Publish, &publish.topic)
                    || (publish.retain
                        && !i.allows(cert, who, PolicyAction::RetainPublish, &publish.topic)))
            {
                if v5 {
                    p.summary.denied += 1;
                    if qos == QoS::AtLeastOnce {
                        conn.send(&Outbound::PubAck(publish.pkid, Reason::NotAuthorized));
                    }
                } else {
                    conn.close(Reason::NotAuthorized, "FORBIDDEN_ACCESS", p.summary);
                }
                return;
            }
            if qos == QoS::AtLeastOnce {
                conn.send(&Outbound::PubAck(publish.pkid, Reason::Success));
            }
            // Reserved `$` topics keep nothing (assumed: AWS refuses a
            // retained publish there, without documenting how; it is
            // forwarded, not kept). An empty retained payload deletes the
            // topic's message and is forwarded too.
            if publish.retain && !publish.topic.starts_with('$') {
                retain(p.retained, &publish.topic, &publish.payload, qos);
            }
            let s = session.clone();
            p.sim.spawn("serve: publish", async move {
                // Queued to the broker at once; errors were checked above.
                let _ = s
                    .client
                    .publish(&publish.topic, &publish.payload, qos)
                    .await;
            });
        }
        (Inbound::PingReq, Some(_)) => conn.send(&Outbound::PingResp),
        (Inbound::Disconnect(expiry), Some(session)) => {
            // MQTT 5 may shorten the session's expiry here, not raise it from 0.
            if let Some(asked) = expiry
                && !session.expiry.get().is_zero()
            {
                session.expiry.set(session_expiry(asked));
            }
            conn.closing = true;
            conn.reason = CLIENT_INITIATED_DISCONNECT;
            // A clean goodbye: the Last Will is discarded.
            conn.will = None;
        }
        // Acknowledgements of our QoS 1 deliveries: nothing is redelivered yet.
        (Inbound::PubAck(_), Some(_)) => {}
        (Inbound::Unsupported(_), Some(_)) => {
            // QoS 2 flow packets, AUTH, server-only packets: closed, as AWS
            // closes on what it does not support.
            conn.close(Reason::ProtocolError, CLIENT_ERROR, p.summary);
        }
    }
}

/// Publishes a client's Last Will through its session's link (retained
/// when it says so).
fn publish_will(sim: &mut Sim, session: &Rc<Session>, retained: &RefCell<Retained>, will: Will) {
    let qos = if will.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    if will.retain && !will.topic.starts_with('$') {
        retain(retained, &will.topic, &will.payload, qos);
    }
    let s = session.clone();
    sim.spawn("serve: last will", async move {
        let _ = s.client.publish(&will.topic, &will.payload, qos).await;
    });
}

/// The session expiry applied for the one an MQTT 5 client asks for.
fn session_expiry(asked_s: u32) -> Duration {
    Duration::from_secs(asked_s.into()).min(SESSION_EXPIRY_MAX)
}

/// A CONNECT on a fresh connection: checks the client id and, over TLS, the
/// policies; then resumes or starts the client id's session and answers
/// CONNACK (AWS IoT's refusals: an MQTT 3.1.1 connection the policies do not
/// allow closes without a CONNACK, an MQTT 5 one gets CONNACK 0x87).
fn open_session(p: &mut Plane<'_>, connections: &mut [Connection], index: usize, connect: Connect) {
    let conn = &mut connections[index];
    let conn_id = conn.id;
    let protocol = conn.protocol.unwrap_or(Version::V311);
    let v5 = protocol == Version::V5;
    let refuse = |conn: &mut Connection, reason: Reason, summary: &mut CloudServeSummary| {
        conn.send(&Outbound::ConnAck {
            session_present: false,
            reason,
            properties: None,
        });
        conn.closing = true;
        conn.reason = CLIENT_ERROR;
        summary.refused += 1;
    };
    if connect.will.as_ref().is_some_and(|w| w.qos > 1) {
        // AWS: CONNACK 0x9B on MQTT 5; on 3.1.1 the connection closes.
        if v5 {
            refuse(conn, Reason::QosNotSupported, p.summary);
        } else {
            conn.close(Reason::QosNotSupported, CLIENT_ERROR, p.summary);
        }
        return;
    }
    // An MQTT 5 client that sends no client id gets one assigned (AWS's
    // `$GEN/` form, which clients may not send themselves).
    let assigned = (v5 && connect.client_id.is_empty()).then(|| {
        format!(
            "$GEN/{:08x}-0000-4000-8000-{conn_id:012x}",
            std::process::id()
        )
    });
    let client_id = assigned.clone().unwrap_or(connect.client_id);
    if client_id.is_empty()
        || client_id.len() > MAX_CLIENT_ID
        || (assigned.is_none() && client_id.starts_with('$'))
        || reserved(&client_id)
        || twinrig_hal::mqtt::validate_publish_topic(&client_id).is_err()
    {
        refuse(conn, Reason::ClientIdentifierNotValid, p.summary);
        return;
    }
    // Over TLS: the certificate must be ACTIVE and allowed to connect with
    // this client id (the default policy: its thing's name).
    if conn.transport.is_tls() {
        let id = conn.transport.client_certificate_id();
        match p
            .identity
            .and_then(|i| i.connect(id.as_deref(), &client_id))
        {
            Some(who) => conn.principal = id.map(|id| (id, who)),
            None if v5 => {
                refuse(conn, Reason::NotAuthorized, p.summary);
                return;
            }
            None => {
                conn.close(Reason::NotAuthorized, CLIENT_ERROR, p.summary);
                return;
            }
        }
    }
    // The Last Will must name a valid topic the client may publish (and,
    // retained, retain) to: AWS IoT refuses the CONNECT otherwise.
    if let Some(will) = &connect.will {
        let allowed = match (&conn.principal, p.identity) {
            (Some((cert, who)), Some(i)) => {
                i.allows(cert, who, PolicyAction::Publish, &will.topic)
                    && (!will.retain
                        || i.allows(cert, who, PolicyAction::RetainPublish, &will.topic))
            }
            _ => true,
        };
        let refusal = if twinrig_hal::mqtt::validate_publish_topic(&will.topic).is_err() {
            Some(Reason::TopicNameInvalid)
        } else if !allowed {
            Some(Reason::NotAuthorized)
        } else {
            None
        };
        if let Some(reason) = refusal {
            if v5 {
                refuse(conn, reason, p.summary);
            } else {
                conn.close(reason, CLIENT_ERROR, p.summary);
            }
            return;
        }
    }
    let existing = p.sessions.get(&client_id).cloned();
    let session = match existing {
        Some(s) => s,
        None => match p.network.connect(&client_id, LinkParams::ideal()) {
            Ok(client) => {
                let s = Rc::new(Session {
                    client,
                    outbox: RefCell::new(VecDeque::new()),
                    attached: Cell::new(None),
                    next_pkid: Cell::new(1),
                    dropped_offline: Cell::new(0),
                    versions: Cell::new(0),
                    filters: RefCell::new(BTreeSet::new()),
                    protocol: Cell::new(protocol),
                    expiry: Cell::new(Duration::ZERO),
                    detached_at: Cell::new(None),
                });
                spawn_receiver(p.sim, &client_id, s.clone());
                p.sessions.insert(client_id.clone(), s.clone());
                s
            }
            Err(_) => {
                refuse(conn, Reason::ServerUnavailable, p.summary);
                return;
            }
        },
    };
    // A second connection with the same client id closes the first (AWS
    // IoT; MQTT 5 tells it with DISCONNECT 0x8E).
    if let Some(old) = session.attached.get() {
        for c in connections.iter_mut().filter(|c| c.id == old) {
            c.send(&Outbound::Disconnect(Reason::SessionTakenOver));
            c.closing = true;
            c.reason = "DUPLICATE_CLIENTID";
        }
    }
    let had_session = !session.filters.borrow().is_empty() || !session.outbox.borrow().is_empty();
    let resumes = had_session
        && !connect.clean_start
        && session.protocol.get() == protocol
        && !session.expired(Instant::now());
    if !resumes {
        session.end(p.sim);
    }
    let expiry = match connect.session_expiry_s {
        Some(asked) => session_expiry(asked),
        None if connect.clean_start => Duration::ZERO,
        None => SESSION_EXPIRY_MAX,
    };
    session.protocol.set(protocol);
    session.expiry.set(expiry);
    session.detached_at.set(None);
    session.attached.set(Some(conn_id));
    let conn = &mut connections[index];
    conn.will = connect.will;
    conn.max_packet = connect.max_packet.map_or(MAX_PACKET, |m| {
        MAX_PACKET.min(usize::try_from(m).unwrap_or(usize::MAX))
    });
    let applied_keep_alive = u16::try_from(conn.keep_alive.as_secs()).unwrap_or(u16::MAX);
    let applied_expiry = u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX);
    conn.send(&Outbound::ConnAck {
        session_present: resumes,
        reason: Reason::Success,
        properties: Some(ConnAckProperties {
            session_expiry_s: connect
                .session_expiry_s
                .filter(|&asked| asked != applied_expiry)
                .map(|_| applied_expiry),
            server_keep_alive_s: (applied_keep_alive != connect.keep_alive_s)
                .then_some(applied_keep_alive),
            assigned_client_id: assigned,
            max_packet: u32::try_from(MAX_PACKET).unwrap_or(u32::MAX),
            topic_alias_max: TOPIC_ALIAS_MAX,
        }),
    });
    session.versions.set(session.versions.get() + 1);
    conn.version_number = session.versions.get();
    let mut event = lifecycle_event(conn, &client_id, "connected");
    event["ipAddress"] = json!(conn.peer.to_string());
    publish_lifecycle(p.sim, &session, &client_id, "connected", &event);
    conn.session = Some((client_id, session));
}

/// The longest client id AWS IoT accepts, bytes.
const MAX_CLIENT_ID: usize = 128;

/// Moves the session's deliveries from the network into its outbox.
fn spawn_receiver(sim: &mut Sim, client_id: &str, session: Rc<Session>) {
    sim.spawn(format!("serve: deliveries to {client_id}"), async move {
        while let Ok(m) = session.client.receive().await {
            session.deliver(m);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_is_clamped_as_aws_iot_clamps_it() {
        assert_eq!(aws_keep_alive(0), Duration::from_secs(1200));
        assert_eq!(aws_keep_alive(1), Duration::from_secs(30));
        assert_eq!(aws_keep_alive(29), Duration::from_secs(30));
        assert_eq!(aws_keep_alive(30), Duration::from_secs(30));
        assert_eq!(aws_keep_alive(60), Duration::from_secs(60));
        assert_eq!(aws_keep_alive(1200), Duration::from_secs(1200));
        assert_eq!(aws_keep_alive(1201), Duration::from_secs(1200));
        assert_eq!(aws_keep_alive(u16::MAX), Duration::from_secs(1200));
    }
}
