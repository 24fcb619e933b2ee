//! The firmware registry: the S3 bucket of the OTA system, as a twin.
//!
//! Every version of every device type is kept (`{type}/{version}/firmware.bin`
//! with its `firmware.sha256` and metadata) and never overwritten: publishing
//! a version that exists is refused. Downloads go through presigned URLs
//! ([`crate::presign`]: S3's query-string shape, an HMAC-SHA256 over the
//! object key, the date and the expiry with a key of the registry's own), so a
//! URL that expired or was edited is refused, as S3 refuses it. Time comes in
//! as a parameter (unix seconds).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::presign::{PresignError, UrlSigner};

/// The bucket name in URLs (assumed; the real one is not public).
pub const BUCKET_HOST: &str = "firmware.twinrig.local";

/// One stored firmware version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firmware {
    /// Device type, e.g. `pet_feeder`.
    pub device_type: String,
    /// Version, e.g. `1.2.0`.
    pub version: String,
    /// The image bytes (`firmware.bin`).
    pub image: Vec<u8>,
    /// Lowercase hex SHA-256 of the image (`firmware.sha256`).
    pub sha256: String,
    /// When it was published, unix seconds.
    pub published_at: u64,
}

/// Why a registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The version exists and versions are never overwritten.
    #[error("{device_type} {version} already exists; versions are never overwritten")]
    AlreadyExists {
        /// Type.
        device_type: String,
        /// Version.
        version: String,
    },
    /// No such object.
    #[error("no firmware {device_type} {version}")]
    NotFound {
        /// Type.
        device_type: String,
        /// Version.
        version: String,
    },
    /// A name or version with characters S3 keys here may not have.
    #[error("invalid {what}: {value:?}")]
    Invalid {
        /// Which part.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// The URL is not one of this registry's.
    #[error("not a firmware URL: {0}")]
    BadUrl(String),
    /// The URL's signature does not match (it was edited or forged).
    #[error("signature does not match (SignatureDoesNotMatch)")]
    BadSignature,
    /// The URL expired.
    #[error("request has expired (AccessDenied): expired at {expired_at}, now {now}")]
    Expired {
        /// When it expired, unix seconds.
        expired_at: u64,
        /// Now, unix seconds.
        now: u64,
    },
}

/// The registry.
#[derive(Debug, Clone)]
pub struct Registry {
    signer: UrlSigner,
    items: BTreeMap<(String, String), Firmware>,
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Registry {
    /// An empty registry signing URLs with `key` (derive it from the scenario seed).
    pub fn new(key: &[u8]) -> Registry {
        Registry {
            signer: UrlSigner::new(BUCKET_HOST, key),
            items: BTreeMap::new(),
        }
    }

    /// Presigns URLs under `base` (where `serve cloud` serves the images).
    pub fn serve_at(&mut self, base: &str) {
        self.signer.serve_at(base);
    }

    /// Stores a new version; refuses to overwrite one.
    pub fn publish(
        &mut self,
        device_type: &str,
        version: &str,
        image: Vec<u8>,
        now: u64,
    ) -> Result<&Firmware, RegistryError> {
        if !valid_part(device_type) {
            return Err(RegistryError::Invalid {
                what: "device type",
                value: device_type.into(),
            });
        }
        if !valid_part(version) {
            return Err(RegistryError::Invalid {
                what: "version",
                value: version.into(),
            });
        }
        let key = (device_type.to_string(), version.to_string());
        if self.items.contains_key(&key) {
            return Err(RegistryError::AlreadyExists {
                device_type: key.0,
                version: key.1,
            });
        }
        let sha256 = sha256_hex(&image);
        let fw = Firmware {
            device_type: key.0.clone(),
            version: key.1.clone(),
            image,
            sha256,
            published_at: now,
        };
        Ok(self.items.entry(key).or_insert(fw))
    }

    /// One version.
    pub fn get(&self, device_type: &str, version: &str) -> Option<&Firmware> {
        self.items
            .get(&(device_type.to_string(), version.to_string()))
    }

    /// Device types with at least one version, sorted.
    pub fn device_types(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.items.keys().map(|(t, _)| t.as_str()).collect();
        v.dedup();
        v
    }

    /// Versions of a type, oldest to newest by semantic version (non-semver last, by text).
    pub fn versions(&self, device_type: &str) -> Vec<&Firmware> {
        let mut v: Vec<&Firmware> = self
            .items
            .values()
            .filter(|f| f.device_type == device_type)
            .collect();
        v.sort_by_key(|f| version_key(&f.version));
        v
    }

    /// The newest version of a type.
    pub fn latest(&self, device_type: &str) -> Option<&Firmware> {
        self.versions(device_type).last().copied()
    }

    /// A presigned download URL for a version, valid `expires_s` seconds from `now`.
    pub fn presign(
        &self,
        device_type: &str,
        version: &str,
        now: u64,
        expires_s: u64,
    ) -> Result<String, RegistryError> {
        if self.get(device_type, version).is_none() {
            return Err(RegistryError::NotFound {
                device_type: device_type.into(),
                version: version.into(),
            });
        }
        let key = format!("{device_type}/{version}/firmware.bin");
        Ok(self.signer.presign(&key, now, expires_s))
    }

    /// Checks a presigned URL at `now` and returns the firmware it names.
    pub fn fetch(&self, url: &str, now: u64) -> Result<&Firmware, RegistryError> {
        let bad = || RegistryError::BadUrl(url.to_string());
        let key = self.signer.verify(url, now).map_err(|e| match e {
            PresignError::Malformed(_) => bad(),
            PresignError::BadSignature => RegistryError::BadSignature,
            PresignError::Expired { expired_at, now } => RegistryError::Expired { expired_at, now },
        })?;
        let mut parts = key.split('/');
        let (Some(t), Some(v), Some("firmware.bin"), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        self.get(t, v).ok_or_else(|| RegistryError::NotFound {
            device_type: t.into(),
            version: v.into(),
        })
    }
}

/// Sort key: numeric dot-separated parts first (semver order), then text.
fn version_key(v: &str) -> (u8, Vec<u64>, String) {
    let nums: Option<Vec<u64>> = v.split('.').map(|p| p.parse().ok()).collect();
    match nums {
        Some(n) => (0, n, String::new()),
        None => (1, Vec::new(), v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> Registry {
        let mut r = Registry::new(b"seed-42");
        r.publish("pet_feeder", "1.0.0", vec![1; 100], 10).unwrap();
        r.publish("pet_feeder", "1.10.0", vec![3; 100], 12).unwrap();
        r.publish("pet_feeder", "1.2.0", vec![2; 100], 11).unwrap();
        r.publish("sphero_rvr", "3.0.0", vec![9; 10], 13).unwrap();
        r
    }

    #[test]
    fn versions_are_kept_and_never_overwritten() {
        let mut r = reg();
        let err = r
            .publish("pet_feeder", "1.0.0", vec![7; 5], 20)
            .unwrap_err();
        assert!(matches!(err, RegistryError::AlreadyExists { .. }));
        assert_eq!(r.get("pet_feeder", "1.0.0").unwrap().image, vec![1; 100]);
        let versions: Vec<&str> = r
            .versions("pet_feeder")
            .iter()
            .map(|f| f.version.as_str())
            .collect();
        assert_eq!(versions, ["1.0.0", "1.2.0", "1.10.0"]);
        assert_eq!(r.latest("pet_feeder").unwrap().version, "1.10.0");
        assert_eq!(r.device_types(), ["pet_feeder", "sphero_rvr"]);
        assert_eq!(
            r.get("sphero_rvr", "3.0.0").unwrap().sha256,
            sha256_hex(&[9; 10])
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn presigned_urls_work_until_they_expire_and_refuse_tampering() {
        let r = reg();
        let url = r.presign("pet_feeder", "1.2.0", 1000, 3600).unwrap();
        assert_eq!(r.fetch(&url, 1000).unwrap().version, "1.2.0");
        assert_eq!(r.fetch(&url, 4599).unwrap().version, "1.2.0");
        assert_eq!(
            r.fetch(&url, 4600),
            Err(RegistryError::Expired {
                expired_at: 4600,
                now: 4600
            })
        );
        let longer = url.replace("X-Amz-Expires=3600", "X-Amz-Expires=9999");
        assert_eq!(r.fetch(&longer, 1000), Err(RegistryError::BadSignature));
        let other = url.replace("1.2.0", "1.0.0");
        assert_eq!(r.fetch(&other, 1000), Err(RegistryError::BadSignature));
        let forged = Registry::new(b"another key").presign("pet_feeder", "1.2.0", 1000, 3600);
        assert!(
            forged.is_err(),
            "a registry without the version cannot presign it"
        );
        assert!(matches!(
            r.fetch("https://example.com/x", 1000),
            Err(RegistryError::BadUrl(_))
        ));
        assert!(matches!(
            r.fetch(&format!("{url}&extra=1"), 1000),
            Err(RegistryError::BadUrl(_))
        ));
        assert!(matches!(
            r.presign("pet_feeder", "9.9.9", 0, 1),
            Err(RegistryError::NotFound { .. })
        ));
    }

    #[test]
    fn bad_names_are_refused() {
        let mut r = Registry::new(b"k");
        assert!(r.publish("a/b", "1", vec![], 0).is_err());
        assert!(r.publish("ok", "", vec![], 0).is_err());
        assert!(r.publish("ok", "1.0 beta", vec![], 0).is_err());
    }

    proptest::proptest! {
        #[test]
        fn fetch_never_panics(url in "\\PC{0,120}") {
            let r = reg();
            let _ = r.fetch(&url, 5);
        }
    }
}
