//! `serve cloud --http`: AWS's HTTP APIs on one port, as a client given
//! `--endpoint-url` calls them. Every request is SigV4-verified, then routed
//! by the signing name to the `iot` control plane ([`iot`]) or the
//! `iotdata` plane ([`iot_data`]) (one port for both, as moto does).

mod iot;
mod iot_data;
mod objects;

pub use objects::firmware_base;

use std::cell::RefCell;
use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::rc::Rc;

use bytes::BytesMut;
use twinrig_cloud::sigv4::{self, Credentials, SignedRequest};
use twinrig_cloud::things::ThingRegistry;
use twinrig_sim::Sim;
use twinrig_sim::net::SimMqttClient;

use super::http::{self, HttpError};
use crate::cloud_twin::CloudTwin;

/// What the APIs work on.
pub struct Api<'a> {
    /// The world (calls that go through the services run as its tasks).
    pub sim: &'a mut Sim,
    /// The cloud twin's services.
    pub cloud: &'a Rc<CloudTwin>,
    /// Things, types and groups.
    pub things: &'a mut ThingRegistry,
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
    stream: TcpStream,
    inbuf: BytesMut,
    outbuf: Vec<u8>,
    /// The response to a request the world is still working on.
    pending: Option<Rc<RefCell<Option<Vec<u8>>>>>,
    closing: bool,
}

impl HttpConnection {
    /// A connection just accepted (non-blocking).
    pub fn new(stream: TcpStream) -> HttpConnection {
        HttpConnection {
            stream,
            inbuf: BytesMut::new(),
            outbuf: Vec::new(),
            pending: None,
            closing: false,
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
        match self.stream.read(read_buf) {
            Ok(0) => self.closing = true,
            Ok(n) => {
                moved = true;
                self.inbuf.extend_from_slice(&read_buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
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
        if self.pending.is_none() && !self.closing {
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
                    self.closing = true;
                }
            }
        }
        while !self.outbuf.is_empty() {
            match self.stream.write(&self.outbuf) {
                Ok(0) => {
                    self.closing = true;
                    break;
                }
                Ok(n) => {
                    moved = true;
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Keep the connection until the answer is out.
                    self.closing = false;
                    break;
                }
                Err(_) => {
                    self.closing = true;
                    break;
                }
            }
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
