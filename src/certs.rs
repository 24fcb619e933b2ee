//! `twinrig certs`: the credentials a live twin and its clients need, as
//! files: the local root CA, the endpoint's server certificate, and per thing
//! a key pair and a certificate attached to it (the cloud's `identity`
//! module issues them), plus an endpoint file (DescribeEndpoint's answer)
//! and the certificate registry.
//!
//! Layout of the folder (file names as AWS's console downloads, minus the
//! certificate-id prefix, so commands can name them):
//!
//! ```text
//! root-ca.pem                            the CA clients trust (--cafile, ca_filepath)
//! root-ca.key                            its key (mode 0600)
//! server.pem.crt, server.pem.key         the endpoint's certificate and key
//! endpoint.json                          endpointAddress, port, CA file
//! registry.json                          every certificate: id, ARN, status, thing
//! things/{thing}/certificate.pem.crt     the thing's certificate
//! things/{thing}/private.pem.key         its private key (mode 0600)
//! things/{thing}/public.pem.key          its public key
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;
use twinrig_cloud::identity::{
    CertificateAuthority, CertificateRecord, CertificateStatus, EndpointFile, IdentityError,
    RegistryFile,
};
use twinrig_cloud::jobs::JobsConfig;

/// The MQTT over TLS port of AWS IoT Core's ATS endpoint.
pub const MQTT_TLS_PORT: u16 = 8883;

/// `twinrig certs` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CertsArgs {
    /// Where to write (created if missing; existing files are never overwritten).
    #[arg(long, default_value = "twinrig-certs")]
    pub out: PathBuf,
    /// A thing to issue a certificate for (repeat for more things).
    #[arg(long = "thing", value_name = "NAME")]
    pub things: Vec<String>,
    /// Also one for every device of this fleet file (its groups' ids).
    #[arg(long, value_name = "FILE")]
    pub fleet: Option<PathBuf>,
    /// The endpoint's host name: in the server certificate (with localhost,
    /// 127.0.0.1 and ::1) and in endpoint.json.
    #[arg(long, default_value = "localhost")]
    pub endpoint: String,
    /// The region in ARNs (default: the cloud twin's).
    #[arg(long)]
    pub region: Option<String>,
    /// The account id in ARNs (default: the cloud twin's).
    #[arg(long)]
    pub account_id: Option<String>,
}

/// Why `twinrig certs` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// No thing was named.
    #[error("name at least one thing: --thing NAME (repeatable) or --fleet FILE")]
    NoThings,
    /// A thing was named twice.
    #[error("thing `{0}` is named twice")]
    Duplicate(String),
    /// The fleet file did not load.
    #[error("{0}")]
    Fleet(String),
    /// A name or the generator refused.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A file of the folder is already there.
    #[error(
        "{} already exists; `twinrig certs` never overwrites (choose another --out)",
        .0.display()
    )]
    Exists(PathBuf),
    /// A file or folder could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// A file to write: where (relative to the folder), what, and whether it
/// is a secret (mode 0600).
struct OutFile {
    path: PathBuf,
    text: String,
    secret: bool,
}

/// Issues everything `args` asks for and writes it; returns the files written.
pub fn run(args: &CertsArgs) -> Result<Vec<PathBuf>, CertsError> {
    let things = things(args)?;
    let defaults = JobsConfig::default();
    let region = args.region.as_deref().unwrap_or(&defaults.region);
    let account_id = args.account_id.as_deref().unwrap_or(&defaults.account_id);

    let ca = CertificateAuthority::generate()?;
    let mut hosts = vec![args.endpoint.clone()];
    for local in ["localhost", "127.0.0.1", "::1"] {
        if !hosts.iter().any(|h| h == local) {
            hosts.push(local.to_owned());
        }
    }
    let server = ca.issue_server(&hosts)?;
    let mut files = vec![
        OutFile::public("root-ca.pem", ca.certificate_pem()),
        OutFile::secret("root-ca.key", ca.private_key_pem()),
        OutFile::public("server.pem.crt", &server.certificate_pem),
        OutFile::secret("server.pem.key", &server.private_key_pem),
    ];
    let mut registry = RegistryFile::default();
    for thing in &things {
        let t = ca.issue_thing(thing, region, account_id)?;
        let dir = Path::new("things").join(thing);
        let certificate_file = dir.join("certificate.pem.crt");
        registry.certificates.push(CertificateRecord {
            certificate_id: t.certificate_id.clone(),
            certificate_arn: t.certificate_arn.clone(),
            status: CertificateStatus::Active,
            thing_name: t.thing_name.clone(),
            certificate_file: certificate_file.display().to_string(),
        });
        files.push(OutFile::public(certificate_file, &t.certificate_pem));
        files.push(OutFile::secret(
            dir.join("private.pem.key"),
            &t.private_key_pem,
        ));
        files.push(OutFile::public(
            dir.join("public.pem.key"),
            &t.public_key_pem,
        ));
    }
    let endpoint = EndpointFile {
        endpoint_address: args.endpoint.clone(),
        endpoint_type: "iot:Data-ATS".into(),
        mqtt_port: MQTT_TLS_PORT,
        ca_file: "root-ca.pem".into(),
    };
    files.push(OutFile::public("endpoint.json", &json_text(&endpoint)));
    files.push(OutFile::public("registry.json", &json_text(&registry)));
    write_all(&args.out, &files)
}

/// The things named on the command line, then the fleet's, each once.
fn things(args: &CertsArgs) -> Result<Vec<String>, CertsError> {
    let mut things = args.things.clone();
    if let Some(path) = &args.fleet {
        let file = crate::scenario::load_fleet_file(path)
            .map_err(|e| CertsError::Fleet(e.render_plain()))?;
        things.extend(file.fleet.device_ids().into_iter().map(|(id, _)| id));
    }
    if things.is_empty() {
        return Err(CertsError::NoThings);
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = things.iter().find(|t| !seen.insert(t.as_str())) {
        return Err(CertsError::Duplicate(twice.clone()));
    }
    Ok(things)
}

impl OutFile {
    fn public(path: impl Into<PathBuf>, text: &str) -> OutFile {
        OutFile {
            path: path.into(),
            text: text.to_owned(),
            secret: false,
        }
    }

    fn secret(path: impl Into<PathBuf>, text: &str) -> OutFile {
        OutFile {
            secret: true,
            ..OutFile::public(path, text)
        }
    }
}

fn json_text(value: &impl Serialize) -> String {
    // Plain structs of strings and numbers: serialising cannot fail.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Refuses before writing anything if a file is already there.
fn write_all(dir: &Path, files: &[OutFile]) -> Result<Vec<PathBuf>, CertsError> {
    if let Some(existing) = files.iter().map(|f| dir.join(&f.path)).find(|p| p.exists()) {
        return Err(CertsError::Exists(existing));
    }
    let mut written = Vec::new();
    for f in files {
        let path = dir.join(&f.path);
        let write_error = |source| CertsError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        write_file(&path, &f.text, f.secret).map_err(write_error)?;
        written.push(path);
    }
    Ok(written)
}

fn write_file(path: &Path, text: &str, secret: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    options.open(path)?.write_all(text.as_bytes())
}
