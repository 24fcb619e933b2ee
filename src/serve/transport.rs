//! The byte streams `serve cloud` speaks MQTT and HTTP over: plain TCP, or
//! TLS (with client certificates, as AWS IoT's ATS endpoint, for MQTT;
//! without, for the HTTPS APIs) with rustls, driven by hand on non-blocking
//! sockets so one loop serves every connection.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use twinrig_cloud::certificates::CertificateRegistry;
use twinrig_cloud::identity::{CertificateAuthority, EndpointFile, RegistryFile, certificate_id};
use twinrig_cloud::jobs::JobsConfig;
use twinrig_cloud::policy::{Action, DEFAULT_THING_POLICY, Policy, Principal};

/// What a read brought.
pub enum Received {
    /// Nothing yet.
    Nothing,
    /// Bytes, appended to the buffer.
    Data,
    /// The peer closed the stream.
    Closed,
}

/// One accepted connection's stream.
pub enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls {
        /// The socket.
        tcp: TcpStream,
        /// The TLS session.
        tls: Box<ServerConnection>,
    },
}

impl Transport {
    /// A connection waiting on `listener`, non-blocking, over TLS with
    /// `tls` or plain; None when there is none (or it could not be set up).
    pub fn accept(
        listener: &TcpListener,
        tls: Option<&Arc<ServerConfig>>,
    ) -> Option<(Transport, SocketAddr)> {
        let (tcp, peer) = listener.accept().ok()?;
        tcp.set_nonblocking(true).ok()?;
        let _ = tcp.set_nodelay(true);
        let transport = match tls {
            Some(config) => Transport::Tls {
                tls: Box::new(ServerConnection::new(config.clone()).ok()?),
                tcp,
            },
            None => Transport::Plain(tcp),
        };
        Some((transport, peer))
    }

    /// Reads what has arrived into `into`.
    pub fn receive(&mut self, buf: &mut [u8], into: &mut BytesMut) -> io::Result<Received> {
        match self {
            Transport::Plain(tcp) => match tcp.read(buf) {
                Ok(0) => Ok(Received::Closed),
                Ok(n) => {
                    into.extend_from_slice(&buf[..n]);
                    Ok(Received::Data)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Received::Nothing),
                Err(e) => Err(e),
            },
            Transport::Tls { tcp, tls } => {
                let mut eof = false;
                if tls.wants_read() {
                    match tls.read_tls(tcp) {
                        Ok(0) => eof = true,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                    if let Err(e) = tls.process_new_packets() {
                        // Send the alert (unknown CA, bad certificate) before closing.
                        let _ = tls.write_tls(tcp);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                let mut got = false;
                loop {
                    match tls.reader().read(buf) {
                        Ok(0) => return Ok(Received::Closed),
                        Ok(n) => {
                            into.extend_from_slice(&buf[..n]);
                            got = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                Ok(match (got, eof) {
                    (true, _) => Received::Data,
                    (false, true) => Received::Closed,
                    (false, false) => Received::Nothing,
                })
            }
        }
    }

    /// Sends as much of `out` as the socket takes now; whether any went.
    pub fn send(&mut self, out: &mut BytesMut) -> io::Result<bool> {
        match self {
            Transport::Plain(tcp) => {
                let mut moved = false;
                while !out.is_empty() {
                    match tcp.write(out) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => {
                            moved = true;
                            let _ = out.split_to(n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                Ok(moved)
            }
            Transport::Tls { tcp, tls } => {
                // rustls takes plaintext up to its buffer limit (64 KiB);
                // the rest waits in `out` until records have gone out.
                let mut moved = false;
                loop {
                    if !out.is_empty() && !tls.is_handshaking() {
                        let n = tls.writer().write(out)?;
                        let _ = out.split_to(n);
                    }
                    if !tls.wants_write() {
                        break;
                    }
                    match tls.write_tls(tcp) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(_) => moved = true,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                Ok(moved)
            }
        }
    }

    /// Whether everything handed to [`Transport::send`] has gone to the
    /// socket (`out`: what is still waiting).
    pub fn flushed(&self, out: &BytesMut) -> bool {
        out.is_empty()
            && match self {
                Transport::Plain(_) => true,
                Transport::Tls { tls, .. } => !tls.wants_write(),
            }
    }

    /// The id of the client's certificate (TLS only, once the handshake is done).
    pub fn client_certificate_id(&self) -> Option<String> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls { tls, .. } => tls
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|der| certificate_id(der.as_ref())),
        }
    }

    /// Whether the stream is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls { .. })
    }

    /// Closes the stream (TLS: with a close_notify).
    pub fn close(&mut self) {
        let tcp = match self {
            Transport::Plain(tcp) => tcp,
            Transport::Tls { tcp, tls } => {
                tls.send_close_notify();
                let _ = tls.write_tls(tcp);
                tcp
            }
        };
        let _ = tcp.shutdown(std::net::Shutdown::Both);
    }
}

/// The TLS endpoint's identity and the certificates it knows, from a
/// `twinrig certs` folder.
pub struct TlsIdentity {
    /// The server configuration: the endpoint's certificate, client
    /// certificates required and checked against the root CA.
    pub config: Arc<ServerConfig>,
    /// The HTTPS APIs' configuration: the same certificate, no client
    /// certificates (AWS's HTTP APIs authenticate with SigV4).
    pub https_config: Arc<ServerConfig>,
    /// Certificates, their things and policies, and the policies.
    pub certificates: CertificateRegistry,
    /// The local CA, to issue certificates (CreateKeysAndCertificate); None
    /// when the folder has no `root-ca.key`.
    pub authority: Option<CertificateAuthority>,
    /// The endpoint's host name (`endpoint.json`; DescribeEndpoint's answer).
    pub endpoint_address: String,
}

/// Why a `twinrig certs` folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A file is missing or unreadable.
    #[error("{}: {message} (make the folder with `twinrig certs`)", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The policy file is not a policy document.
    #[error("{}: {message}", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

impl TlsIdentity {
    /// Reads `root-ca.pem` (and `root-ca.key`, if there), `server.pem.crt`,
    /// `server.pem.key`, `endpoint.json` and `registry.json` from `dir`;
    /// every certificate in the registry is attached to its thing and to
    /// `policy` (an AWS IoT policy document, named after its file) or the
    /// default thing policy.
    pub fn load(dir: &Path, policy: Option<&Path>) -> Result<TlsIdentity, TlsSetupError> {
        let (policy_name, policy_text) = match policy {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| TlsSetupError::File {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
                let name = path
                    .file_stem()
                    .map_or_else(|| "policy".into(), |s| s.to_string_lossy().into_owned());
                (name, text)
            }
            None => (
                DEFAULT_POLICY_NAME.to_owned(),
                DEFAULT_THING_POLICY.to_owned(),
            ),
        };
        let parsed = Policy::parse(&policy_text).map_err(|e| TlsSetupError::Policy {
            path: policy.map_or_else(|| PathBuf::from(DEFAULT_POLICY_NAME), Path::to_owned),
            message: e.to_string(),
        })?;
        let file_error = |name: &str, message: String| TlsSetupError::File {
            path: dir.join(name),
            message,
        };
        let ca_pem = std::fs::read_to_string(dir.join("root-ca.pem"))
            .map_err(|e| file_error("root-ca.pem", e.to_string()))?;
        let ca: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| file_error("root-ca.pem", e.to_string()))?;
        let mut roots = RootCertStore::empty();
        for c in ca {
            roots
                .add(c)
                .map_err(|e| file_error("root-ca.pem", e.to_string()))?;
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("server.pem.crt"))
                .and_then(Iterator::collect)
                .map_err(|e| file_error("server.pem.crt", e.to_string()))?;
        let key = PrivateKeyDer::from_pem_file(dir.join("server.pem.key"))
            .map_err(|e| file_error("server.pem.key", e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsSetupError::Config(e.to_string()))?;
        let versions = [&rustls::version::TLS12, &rustls::version::TLS13];
        let mut https_config = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| TlsSetupError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| TlsSetupError::Config(e.to_string()))?;
        https_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TlsSetupError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| TlsSetupError::Config(e.to_string()))?;
        // AWS IoT's ALPN name for MQTT with client certificates (what the
        // SDKs offer on port 443); a client offering none is served too.
        config.alpn_protocols = vec![MQTT_ALPN.to_vec()];
        let registry_text = std::fs::read_to_string(dir.join("registry.json"))
            .map_err(|e| file_error("registry.json", e.to_string()))?;
        let registry: RegistryFile = serde_json::from_str(&registry_text)
            .map_err(|e| file_error("registry.json", e.to_string()))?;
        let endpoint_text = std::fs::read_to_string(dir.join("endpoint.json"))
            .map_err(|e| file_error("endpoint.json", e.to_string()))?;
        let endpoint: EndpointFile = serde_json::from_str(&endpoint_text)
            .map_err(|e| file_error("endpoint.json", e.to_string()))?;
        let defaults = JobsConfig::default();
        let mut certificates = CertificateRegistry::new(&defaults.region, &defaults.account_id);
        certificates.insert_policy(&policy_name, &policy_text, parsed);
        for c in &registry.certificates {
            let arn = certificates
                .register(&c.certificate_id, "", c.status)
                .arn
                .clone();
            // Both exist: just registered, and inserted above.
            let _ = certificates.attach_thing(&arn, &c.thing_name);
            let _ = certificates.attach_policy(&policy_name, &arn);
        }
        let authority = match std::fs::read_to_string(dir.join("root-ca.key")) {
            Err(_) => None,
            Ok(key) => Some(
                CertificateAuthority::from_pem(&ca_pem, &key)
                    .map_err(|e| file_error("root-ca.key", e.to_string()))?,
            ),
        };
        Ok(TlsIdentity {
            certificates,
            authority,
            endpoint_address: endpoint.endpoint_address,
            config: Arc::new(config),
            https_config: Arc::new(https_config),
        })
    }

    /// The principal of a connection presenting certificate `id` as
    /// `client_id` ([`CertificateRegistry::connect`]).
    pub fn connect(&self, id: Option<&str>, client_id: &str) -> Option<Principal> {
        self.certificates.connect(id?, client_id)
    }

    /// Whether the policies of certificate `id` allow `who` `action` on
    /// `object`.
    pub fn allows(&self, id: &str, who: &Principal, action: Action, object: &str) -> bool {
        self.certificates.allows(id, who, action, object)
    }
}

/// The ALPN protocol AWS IoT serves MQTT with client certificates under.
pub const MQTT_ALPN: &[u8] = b"x-amzn-mqtt-ca";

/// The name the endpoint's own policy (default or `--policy`) is known by.
pub const DEFAULT_POLICY_NAME: &str = "twinrig-default-thing-policy";
