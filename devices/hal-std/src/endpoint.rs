//! The command-line arguments every device process takes to reach its MQTT
//! endpoint (AWS IoT Core, `twinrig serve cloud`, or any broker), and their
//! checks: one definition for the OTA agent, the hand agent and the bridges.
//!
//! The flags are those of the AWS IoT Device SDK samples (`--endpoint`,
//! `--cert`, `--key`, `--ca`), so a process is pointed at AWS with the files
//! the console or `aws iot create-keys-and-certificate` gave.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::HttpDownloaderConfig;
use crate::mqtt::{MqttConfig, MqttTransport};

/// AWS IoT Core's MQTT port over TLS.
pub const AWS_IOT_MQTT_PORT: u16 = 8883;

/// Where the device connects, as whom, with which files.
#[derive(Debug, Clone, clap::Args)]
pub struct EndpointArgs {
    /// The MQTT endpoint as HOST[:PORT] (port 8883 when left out): AWS IoT's
    /// `xxxxxxxx-ats.iot.REGION.amazonaws.com`, or `localhost:8883` for
    /// `twinrig serve cloud`.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub endpoint: String,
    /// The thing this device is (its topics are named after it).
    #[arg(long, value_name = "NAME")]
    pub thing: String,
    /// MQTT client id (default: the thing name, which AWS IoT's usual
    /// policies require).
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// PEM of the device certificate.
    #[arg(long, value_name = "FILE", required_unless_present = "insecure_tcp")]
    pub cert: Option<PathBuf>,
    /// PEM of the device's private key.
    #[arg(long, value_name = "FILE", required_unless_present = "insecure_tcp")]
    pub key: Option<PathBuf>,
    /// PEM of the CA to trust (AWS: AmazonRootCA1.pem; `twinrig certs`:
    /// root-ca.pem). Also trusted for HTTPS downloads.
    #[arg(long, value_name = "FILE", required_unless_present = "insecure_tcp")]
    pub ca: Option<PathBuf>,
    /// Plain TCP, no TLS and no certificates (a local broker only).
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    pub insecure_tcp: bool,
}

/// Why the endpoint arguments cannot be used. Messages name the argument
/// or the file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// `--endpoint` is not HOST[:PORT].
    #[error("--endpoint {0:?}: expected HOST[:PORT], e.g. localhost:8883")]
    Address(String),
    /// A certificate file cannot be read.
    #[error("{flag} {path}: {reason}")]
    File {
        /// The flag that named it.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The thing or client id is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// Nothing answers at the endpoint.
    #[error("cannot reach the endpoint {endpoint}: {why}")]
    Unreachable {
        /// `--endpoint` as given.
        endpoint: String,
        /// The last connection error.
        why: String,
    },
}

impl EndpointArgs {
    /// Host and port of `--endpoint` (a URL scheme such as `mqtts://` is
    /// accepted and ignored; the transport is `--insecure-tcp`'s choice).
    pub fn host_port(&self) -> Result<(String, u16), EndpointError> {
        parse_host_port(&self.endpoint)
    }

    /// The MQTT client id.
    pub fn client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or(&self.thing)
    }

    /// The MQTT session's configuration, after checking that every file
    /// named is a readable file (so a typo fails at start, naming the file,
    /// instead of as endless reconnects).
    pub fn mqtt_config(&self) -> Result<MqttConfig, EndpointError> {
        if self.thing.is_empty() {
            return Err(EndpointError::Empty("--thing"));
        }
        if self.client_id().is_empty() {
            return Err(EndpointError::Empty("--client-id"));
        }
        let (host, port) = self.host_port()?;
        let mut config = MqttConfig::new(self.client_id(), host, port);
        if !self.insecure_tcp {
            config.transport = MqttTransport::Tls {
                ca_file: readable("--ca", self.ca.as_deref())?,
                cert_file: readable("--cert", self.cert.as_deref())?,
                key_file: readable("--key", self.key.as_deref())?,
                alpn: (port == 443).then(|| b"x-amzn-mqtt-ca".to_vec()),
            };
        }
        Ok(config)
    }

    /// A downloader's configuration that also trusts `--ca` (presigned URLs
    /// of `twinrig serve cloud --https`; S3's chain to the OS roots).
    pub fn downloader_config(&self) -> Result<HttpDownloaderConfig, EndpointError> {
        let ca_file = match &self.ca {
            Some(ca) => Some(readable("--ca", Some(ca))?),
            None => None,
        };
        Ok(HttpDownloaderConfig {
            ca_file,
            ..HttpDownloaderConfig::default()
        })
    }
}

impl EndpointArgs {
    /// Fails when nothing listens at the endpoint (a name that does not
    /// resolve, a refused or silent port), with a message naming it. A
    /// device process checks this once at start, so that a wrong address
    /// is an error and an exit, not a process that looks alive; once
    /// connected, the session reconnects by itself.
    pub fn probe(&self, limit: Duration) -> Result<(), EndpointError> {
        let (host, port) = self.host_port()?;
        let cannot = |why: String| EndpointError::Unreachable {
            endpoint: self.endpoint.clone(),
            why,
        };
        let addrs: Vec<SocketAddr> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| cannot(e.to_string()))?
            .collect();
        let mut last = String::from("the name has no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, limit) {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(cannot(last))
    }
}

fn readable(flag: &'static str, path: Option<&Path>) -> Result<PathBuf, EndpointError> {
    let Some(path) = path else {
        return Err(EndpointError::File {
            flag,
            path: PathBuf::new(),
            reason: "missing (or pass --insecure-tcp for a plain TCP broker)".into(),
        });
    };
    let fail = |reason: String| EndpointError::File {
        flag,
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a file".into()));
    }
    std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    Ok(path.to_path_buf())
}

/// `HOST[:PORT]`, `[V6]:PORT`, with an optional `scheme://` in front.
fn parse_host_port(text: &str) -> Result<(String, u16), EndpointError> {
    let bad = || EndpointError::Address(text.to_owned());
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(bad()),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port = match port {
        None => AWS_IOT_MQTT_PORT,
        Some(p) => p.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        endpoint: EndpointArgs,
    }

    fn parse(args: &[&str]) -> Result<EndpointArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("device").chain(args.iter().copied()))
            .map(|c| c.endpoint)
    }

    #[test]
    fn addresses_parse_with_aws_iots_port_by_default() {
        let ok = |t: &str| parse_host_port(t).unwrap();
        assert_eq!(
            ok("abc-ats.iot.eu-west-1.amazonaws.com"),
            ("abc-ats.iot.eu-west-1.amazonaws.com".into(), 8883)
        );
        assert_eq!(ok("localhost:18883"), ("localhost".into(), 18883));
        assert_eq!(ok("mqtts://127.0.0.1:8883/"), ("127.0.0.1".into(), 8883));
        assert_eq!(ok("[::1]:443"), ("::1".into(), 443));
        for bad in [
            "",
            ":8883",
            "host:",
            "host:0",
            "host:99999",
            "a/b",
            "[::1",
            "h st",
        ] {
            assert_eq!(
                parse_host_port(bad),
                Err(EndpointError::Address(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn tls_needs_every_file_and_names_the_one_missing() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("a.pem");
        std::fs::write(&pem, "x").unwrap();
        let pem_s = pem.to_str().unwrap();
        let missing = dir.path().join("nope.pem");
        let missing_s = missing.to_str().unwrap();
        // clap: TLS without --cert is refused at parse time.
        assert!(
            parse(&[
                "--endpoint",
                "h",
                "--thing",
                "t",
                "--key",
                pem_s,
                "--ca",
                pem_s
            ])
            .is_err()
        );
        let args = parse(&[
            "--endpoint",
            "h:1",
            "--thing",
            "t",
            "--cert",
            pem_s,
            "--key",
            missing_s,
            "--ca",
            pem_s,
        ])
        .unwrap();
        let err = args.mqtt_config().unwrap_err();
        assert!(
            matches!(&err, EndpointError::File { flag: "--key", path, .. } if *path == missing),
            "{err}"
        );
        assert!(err.to_string().contains("nope.pem"), "{err}");
        let dir_as_file = dir.path().to_str().unwrap();
        let args = parse(&[
            "--endpoint",
            "h:1",
            "--thing",
            "t",
            "--cert",
            pem_s,
            "--key",
            pem_s,
            "--ca",
            dir_as_file,
        ])
        .unwrap();
        assert!(
            args.mqtt_config()
                .unwrap_err()
                .to_string()
                .contains("not a file")
        );
    }

    #[test]
    fn plain_tcp_needs_no_files_and_the_client_id_defaults_to_the_thing() {
        let args = parse(&[
            "--endpoint",
            "127.0.0.1:1883",
            "--thing",
            "feeder-001",
            "--insecure-tcp",
        ])
        .unwrap();
        let c = args.mqtt_config().unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.host.as_str(), c.port),
            ("feeder-001", "127.0.0.1", 1883)
        );
        assert_eq!(c.transport, MqttTransport::Tcp);
        assert!(
            parse(&[
                "--endpoint",
                "h",
                "--thing",
                "t",
                "--insecure-tcp",
                "--cert",
                "x"
            ])
            .is_err()
        );
        let empty = parse(&["--endpoint", "h", "--thing", "", "--insecure-tcp"]).unwrap();
        assert_eq!(
            empty.mqtt_config().unwrap_err(),
            EndpointError::Empty("--thing")
        );
    }
}
