//! `serve cloud --http`: AWS's HTTP APIs on one port, as a client given
//! `--endpoint-url` calls them. Every request is SigV4-verified, then routed
//! by the signing name to the `iot` control plane ([`iot`]) or the
//! `iotdata` plane ([`iot_data`]) (one port for both, as moto does).

mod iot;
mod iot_data;
mod objects;
mod security;

pub use objects::firmware_base;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use twinrig_cloud::sigv4::{self, Credentials, SignedRequest};
use twinrig_cloud::things::ThingRegistry;
use twinrig_sim::Sim;
use twinrig_sim::net::SimMqttClient;

use super::http::{self, HttpError};
use super::transport::{Received, TlsIdentity, Transport};
use crate::cloud_twin::CloudTwin;

/// What the APIs work on.
pub struct Api<'a> {
    /// The world (calls that go through the services run as its tasks).
    pub sim: &'a mut Sim,
    /// The cloud twin's services.
    pub cloud: &'a Rc<CloudTwin>,
    /// Things, types and groups.
    pub things: &'a mut ThingRegistry,
    /// Certificates and policies, and the CA that issues them (with `--certs`).
    pub identity: Option<&'a mut TlsIdentity>,
    /// The iot-data plane's MQTT session (its Publish).
    pub publisher: &'a SimMqttClient,
    /// The access keys whose signatures are accepted.
    pub credentials: &'a [Credentials],
    /// DescribeEndpoint's answer.
    pub endpoint_address: &'a str,
    /// `http://{address}` of this server (presigned URLs point here).
    pub origin: &'a str,
}

/// An HTTP answer: ready, or made by a task in the world.
enum Answer {
    Now(Vec<u8>),
    Later(Rc<RefCell<Option<Vec<u8>>>>),
}

/// One HTTP connection.
pub struct HttpConnection {
    transport: Transport,
    inbuf: BytesMut,
    outbuf: BytesMut,
    /// The response to a request the world is still working on.
    pending: Option<Rc<RefCell<Option<Vec<u8>>>>>,
    /// A request could not be read: answer it, then close.
    broken: bool,
    closing: bool,
    /// When bytes last moved either way.
    last_activity: Instant,
}

/// How long an HTTP connection may sit idle, between requests or in a TLS
/// handshake that never finishes, before it is closed (assumed; AWS does
/// not publish its value), so idle clients cannot hold sockets for ever.
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl HttpConnection {
    /// A connection just accepted (non-blocking), plain or TLS.
    pub fn new(transport: Transport) -> HttpConnection {
        HttpConnection {
            transport,
            inbuf: BytesMut::new(),
            outbuf: BytesMut::new(),
            pending: None,
            broken: false,
            closing: false,
            last_activity: Instant::now(),
        }
    }

    /// Whether it is done with.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Moves the connection on: reads, answers a request, writes. Whether
    /// anything moved.
    pub fn serve(&mut self, read_buf: &mut [u8], api: &mut Api<'_>) -> bool {
        let mut moved = false;
        let mut peer_done = false;
        match self.transport.receive(read_buf, &mut self.inbuf) {
            Ok(Received::Data) => moved = true,
            Ok(Received::Nothing) => {}
            Ok(Received::Closed) => peer_done = true,
            // A failed TLS handshake or a reset.
            Err(_) => self.closing = true,
        }
        let ready = self
            .pending
            .as_ref()
            .and_then(|slot| slot.borrow_mut().take());
        if let Some(bytes) = ready {
            self.outbuf.extend_from_slice(&bytes);
            self.pending = None;
        }
        if self.pending.is_none() && !self.closing && !self.broken {
            match http::take_request(&mut self.inbuf) {
                Ok(Some(request)) => {
                    moved = true;
                    match route(&request, api) {
                        Answer::Now(bytes) => self.outbuf.extend_from_slice(&bytes),
                        Answer::Later(slot) => self.pending = Some(slot),
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let status = match e {
                        HttpError::TooLarge => 413,
                        HttpError::LengthRequired => 411,
                        HttpError::Malformed(_) => 400,
                    };
                    self.outbuf.extend_from_slice(&http::error_response(
                        status,
                        "InvalidRequestException",
                        &e.to_string(),
                    ));
                    self.inbuf.clear();
                    // Answer, then close: the rest of the stream cannot be read.
                    self.broken = true;
                }
            }
        }
        match self.transport.send(&mut self.outbuf) {
            Ok(sent) => moved |= sent,
            Err(_) => self.closing = true,
        }
        // A client that is done is closed once its answers are out.
        if (peer_done || self.broken)
            && self.pending.is_none()
            && self.transport.flushed(&self.outbuf)
        {
            self.closing = true;
        }
        if moved {
            self.last_activity = Instant::now();
        } else if self.pending.is_none() && self.last_activity.elapsed() >= HTTP_IDLE_TIMEOUT {
            self.closing = true;
        }
        if self.closing {
            self.transport.close();
        }
        moved
    }
}

/// Verifies the signature, then hands the request to its plane; a
/// presigned download carries its own signature.
fn route(request: &http::Request, api: &mut Api<'_>) -> Answer {
    if request.method == "GET" && request.path.starts_with(objects::FIRMWARE_PREFIX) {
        return objects::download(request, api);
    }
    let signed = SignedRequest {
        method: &request.method,
        path: &request.path,
        query: &request.query,
        headers: &request.headers,
        body: &request.body,
    };
    let auth = match sigv4::verify(&signed, api.credentials) {
        Ok(auth) => auth,
        Err(e) => return Answer::Now(http::error_response(403, e.code(), &e.message())),
    };
    match auth.service.as_str() {
        "iotdata" => iot_data::answer(request, api),
        "iot" => iot::answer(request, api),
        other => Answer::Now(http::error_response(
            400,
            "InvalidRequestException",
            &format!("this endpoint serves iot and iotdata, not {other}"),
        )),
    }
}

/// A task's answer, for the connection to pick up when the world made it.
fn later(
    sim: &mut Sim,
    name: &'static str,
    work: impl std::future::Future<Output = Vec<u8>> + 'static,
) -> Answer {
    let slot = Rc::new(RefCell::new(None));
    let s = slot.clone();
    sim.spawn(name, async move {
        let answer = work.await;
        *s.borrow_mut() = Some(answer);
    });
    Answer::Later(slot)
}
