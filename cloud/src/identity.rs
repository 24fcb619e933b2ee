//! Identity as AWS IoT Core issues it, for the live twin: a local root CA
//! (it plays Amazon Root CA 1), the endpoint's server certificate, and per
//! thing a key pair and a client certificate attached to the thing
//! (CreateKeysAndCertificate + AttachThingPrincipal).
//!
//! What carries over from AWS (docs/reference: aws-iot-core-endpoint.md §1.2):
//! the certificate id is the lowercase hex SHA-256 of the certificate's DER;
//! its ARN is `arn:aws:iot:{region}:{account}:cert/{id}`; an issued
//! certificate's subject CN is `AWS IoT Certificate` and it expires at
//! 2049-12-31T23:59:59Z; a new certificate is ACTIVE. What does not: AWS
//! issues RSA 2048 key pairs; these are ECDSA P-256 (which AWS IoT accepts
//! for client certificates, and its own CA 3 uses), because rcgen's ring
//! backend generates no RSA keys and the aws-lc backend would add a C build
//! to every build for one command.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::shadow::valid_thing_name;

/// The subject CN of every certificate AWS IoT issues.
pub const THING_CERT_COMMON_NAME: &str = "AWS IoT Certificate";

/// When AWS-issued certificates expire: 2049-12-31T23:59:59Z, in Unix seconds.
pub const THING_CERT_NOT_AFTER_UNIX_S: i64 = 2_524_607_999;

/// The subject CN of the local root CA.
pub const ROOT_CA_COMMON_NAME: &str = "twinrig local root CA (plays Amazon Root CA 1)";

/// Why credentials could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Not a thing name AWS would accept.
    #[error("`{0}` is not a thing name: AWS IoT accepts 1-128 characters of a-z A-Z 0-9 : _ -")]
    ThingName(String),
    /// An endpoint name that is neither a host name nor an IP address.
    #[error("`{0}` is not a host name or an IP address")]
    Endpoint(String),
    /// The key or certificate could not be generated.
    #[error("generating a key or certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate's status in the registry (the API's `CertificateStatus`,
/// the values a twin-issued certificate can take).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertificateStatus {
    /// Authenticates.
    Active,
    /// Refused at the handshake until activated again.
    Inactive,
    /// Refused at the handshake for good.
    Revoked,
}

/// `endpoint.json`: where the live twin's data plane is and what to trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointFile {
    /// The host name (DescribeEndpoint's `endpointAddress`).
    pub endpoint_address: String,
    /// As DescribeEndpoint's `endpointType` names it.
    pub endpoint_type: String,
    /// MQTT over TLS with client certificates.
    pub mqtt_port: u16,
    /// The CA certificate, relative to this file.
    pub ca_file: String,
}

/// One certificate in `registry.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRecord {
    /// Lowercase hex SHA-256 of its DER.
    pub certificate_id: String,
    /// Its ARN.
    pub certificate_arn: String,
    /// ACTIVE when issued.
    pub status: CertificateStatus,
    /// The thing it is attached to (AttachThingPrincipal).
    pub thing_name: String,
    /// The certificate file, relative to the registry.
    pub certificate_file: String,
}

/// `registry.json`: the certificates issued, in the order of the things.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RegistryFile {
    /// Every certificate.
    pub certificates: Vec<CertificateRecord>,
}

/// A thing's credentials: what CreateKeysAndCertificate returns, and the
/// thing the certificate is attached to.
#[derive(Debug, Clone)]
pub struct ThingCredentials {
    /// The thing the certificate is attached to.
    pub thing_name: String,
    /// Lowercase hex SHA-256 of the certificate's DER.
    pub certificate_id: String,
    /// `arn:aws:iot:{region}:{account}:cert/{certificate_id}`.
    pub certificate_arn: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The private key, PKCS#8 PEM.
    pub private_key_pem: String,
    /// The public key, SPKI PEM.
    pub public_key_pem: String,
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct CertifiedKeyPem {
    /// The certificate.
    pub certificate_pem: String,
    /// Its private key (PKCS#8).
    pub private_key_pem: String,
}

/// The local root CA.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    certificate_pem: String,
    private_key_pem: String,
}

impl CertificateAuthority {
    /// The CA's certificate parameters (all but validity), the same for
    /// every CA this module makes: what an issuer needs to sign as it.
    fn ca_params() -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(ROOT_CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
    }

    /// The CA `generate` made, from its certificate and key (PEM): it signs
    /// as that certificate's subject, with that key's identifier.
    pub fn from_pem(certificate_pem: &str, private_key_pem: &str) -> Result<Self, IdentityError> {
        let key = KeyPair::from_pem(private_key_pem)?;
        Ok(CertificateAuthority {
            certificate_pem: certificate_pem.to_owned(),
            private_key_pem: private_key_pem.to_owned(),
            issuer: Issuer::new(Self::ca_params(), key),
        })
    }

    /// A new root CA with a fresh key.
    pub fn generate() -> Result<CertificateAuthority, IdentityError> {
        let key = KeyPair::generate()?;
        let mut params = Self::ca_params();
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = not_after();
        let certificate = params.self_signed(&key)?;
        let private_key_pem = key.serialize_pem();
        Ok(CertificateAuthority {
            certificate_pem: certificate.pem(),
            private_key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA's certificate (what clients trust: `--cafile`, `ca_filepath`).
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA's private key.
    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }

    /// The endpoint's server certificate, for every name in `hosts` (DNS
    /// names or IP addresses): clients check the name they connect to.
    pub fn issue_server(&self, hosts: &[String]) -> Result<CertifiedKeyPem, IdentityError> {
        if let Some(bad) = hosts.iter().find(|h| !valid_host(h)) {
            return Err(IdentityError::Endpoint(bad.clone()));
        }
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name = name(hosts.first().map_or("localhost", String::as_str));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = not_after();
        let key = KeyPair::generate()?;
        let certificate = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKeyPem {
            certificate_pem: certificate.pem(),
            private_key_pem: key.serialize_pem(),
        })
    }

    /// A key pair and a client certificate for `thing`, as
    /// CreateKeysAndCertificate issues them, attached to the thing.
    pub fn issue_thing(
        &self,
        thing: &str,
        region: &str,
        account_id: &str,
    ) -> Result<ThingCredentials, IdentityError> {
        if !valid_thing_name(thing) {
            return Err(IdentityError::ThingName(thing.to_owned()));
        }
        self.issue_client(thing, region, account_id)
    }

    /// A key pair and a client certificate, as CreateKeysAndCertificate
    /// issues them; `thing` is the name it is meant for (unchecked: the
    /// attachment is the caller's).
    pub fn issue_client(
        &self,
        thing: &str,
        region: &str,
        account_id: &str,
    ) -> Result<ThingCredentials, IdentityError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(THING_CERT_COMMON_NAME);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = not_after();
        let key = KeyPair::generate()?;
        let certificate = params.signed_by(&key, &self.issuer)?;
        let certificate_id = certificate_id(certificate.der());
        Ok(ThingCredentials {
            thing_name: thing.to_owned(),
            certificate_arn: certificate_arn(region, account_id, &certificate_id),
            certificate_id,
            certificate_pem: certificate.pem(),
            private_key_pem: key.serialize_pem(),
            public_key_pem: key.public_key_pem(),
        })
    }
}

/// AWS IoT's certificate id: the lowercase hex SHA-256 of the DER.
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// A certificate's ARN.
pub fn certificate_arn(region: &str, account_id: &str, certificate_id: &str) -> String {
    format!("arn:aws:iot:{region}:{account_id}:cert/{certificate_id}")
}

/// A DNS name (labels of letters, digits and `-`, dot-separated) or an IP
/// address.
fn valid_host(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || (host.len() <= 253
            && host.split('.').all(|label| {
                (1..=63).contains(&label.len())
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn not_after() -> OffsetDateTime {
    // A constant inside time's range: cannot fail.
    OffsetDateTime::from_unix_timestamp(THING_CERT_NOT_AFTER_UNIX_S)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_ids_are_the_sha256_of_the_der_in_lowercase_hex() {
        // SHA-256 of the empty input (FIPS 180-2 test vector).
        assert_eq!(
            certificate_id(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            certificate_arn("us-east-1", "123456789012", "ab"),
            "arn:aws:iot:us-east-1:123456789012:cert/ab"
        );
    }

    #[test]
    fn a_thing_certificate_carries_its_id_and_a_matching_key() {
        let ca = CertificateAuthority::generate().unwrap();
        let t = ca
            .issue_thing("feeder-001", "us-east-1", "123456789012")
            .unwrap();
        assert_eq!(t.certificate_id.len(), 64);
        assert!(
            t.certificate_id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(t.certificate_arn.ends_with(&t.certificate_id));
        assert!(t.certificate_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(t.private_key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(t.public_key_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let other = ca
            .issue_thing("feeder-002", "us-east-1", "123456789012")
            .unwrap();
        assert_ne!(t.certificate_id, other.certificate_id);
        assert_ne!(t.private_key_pem, other.private_key_pem);
    }

    #[test]
    fn bad_thing_and_endpoint_names_are_errors_naming_them() {
        let ca = CertificateAuthority::generate().unwrap();
        for bad in ["", "a/b", "a b", "thing#1", &"x".repeat(129)] {
            let e = ca.issue_thing(bad, "us-east-1", "1").unwrap_err();
            assert!(matches!(&e, IdentityError::ThingName(n) if n == bad), "{e}");
        }
        for bad in ["bad host!", "", "a..b", "-a.b", "h\u{e9}llo"] {
            let e = ca
                .issue_server(&["localhost".into(), bad.into()])
                .unwrap_err();
            assert!(matches!(&e, IdentityError::Endpoint(n) if n == bad), "{e}");
        }
        assert!(
            ca.issue_server(&["localhost".into(), "127.0.0.1".into(), "::1".into()])
                .is_ok()
        );
    }
}
