//! Presigned GET URLs, shared by every S3-like twin (the firmware registry, the
//! object store).
//!
//! URL shape, in the form of S3's query-string authentication:
//!
//! ```text
//! https://{host}/{key}?X-Amz-Date={unix s}&X-Amz-Expires={s}&X-Amz-Signature={hex}
//! ```
//!
//! The signature is a lowercase hex HMAC-SHA256, keyed with the signer's own
//! secret, over `"{key}\n{date}\n{expires}"`. SigV4's canonical request is not
//! reproduced (assumed unnecessary: no client parses the signature, it only
//! has to change when the key, date or expiry do). The host is not part of the
//! MAC but is checked on the way in, and every twin signs with a key of its
//! own, so a URL moved to another bucket fails there. `X-Amz-Date` is unix
//! seconds rather than S3's `YYYYMMDDTHHMMSSZ` so that virtual time needs no
//! calendar. These bytes end up in golden traces (OTA job documents): changing
//! the message or the shape changes those traces.
//!
//! A URL is valid from its date until `date + expires` (exclusive); time always
//! comes in as a parameter (virtual unix seconds), never from the wall clock.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How long a presigned URL stays valid unless said otherwise: 3600 s, the
/// default of boto3's `generate_presigned_url` that the hand agent uses.
pub const DEFAULT_EXPIRES_S: u64 = 3600;

/// Why a presigned URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    /// Not a URL of this host, or its query is not exactly the three parameters.
    #[error("malformed presigned URL: {0}")]
    Malformed(String),
    /// The signature does not match the key, date and expiry (edited or forged).
    #[error("signature does not match (SignatureDoesNotMatch)")]
    BadSignature,
    /// The URL's validity ended.
    #[error("request has expired (AccessDenied): expired at {expired_at}, now {now}")]
    Expired {
        /// When it expired, unix seconds.
        expired_at: u64,
        /// Now, unix seconds.
        now: u64,
    },
}

/// Signs and checks presigned URLs for one host with one secret key.
#[derive(Clone)]
pub struct UrlSigner {
    host: String,
    /// What comes before `/{key}`: `https://{host}` unless served elsewhere.
    base: String,
    key: Vec<u8>,
}

// Hand-written so the secret never lands in logs or test output.
impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Lowercase hex back to bytes; `None` for anything else (odd length, upper
/// case, other characters), so exactly one spelling of a signature is accepted.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.bytes().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(s).ok()
}

impl UrlSigner {
    /// A signer for URLs on `host` (e.g. `firmware.twinrig.local`), keyed with
    /// `key` (derive it from the scenario seed; any length).
    pub fn new(host: &str, key: &[u8]) -> UrlSigner {
        UrlSigner {
            host: host.to_string(),
            base: format!("https://{host}"),
            key: key.to_vec(),
        }
    }

    /// Signs URLs under `base` instead (`http://127.0.0.1:8443/firmware`:
    /// where `serve cloud` serves the objects), and accepts only those.
    pub fn serve_at(&mut self, base: &str) {
        self.base = base.trim_end_matches('/').to_owned();
    }

    /// The host URLs are signed for.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn mac(&self, key: &str, date: u64, expires_s: u64) -> Hmac<Sha256> {
        // HMAC accepts keys of any length: `new_from_slice` cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes any key length");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(date.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(expires_s.to_string().as_bytes());
        mac
    }

    /// The presigned URL of `key` (already URL-safe: callers validate their
    /// keys), valid `expires_s` seconds from `date`.
    pub fn presign(&self, key: &str, date: u64, expires_s: u64) -> String {
        let sig = hex::encode(self.mac(key, date, expires_s).finalize().into_bytes());
        format!(
            "{}/{key}?X-Amz-Date={date}&X-Amz-Expires={expires_s}&X-Amz-Signature={sig}",
            self.base
        )
    }

    /// Checks `url` at `now` and returns the object key it names. Order of
    /// checks: shape, then signature, then expiry (an edited expiry is a bad
    /// signature, not a longer validity).
    pub fn verify<'u>(&self, url: &'u str, now: u64) -> Result<&'u str, PresignError> {
        let bad = || PresignError::Malformed(url.to_string());
        let rest = url
            .strip_prefix(self.base.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(bad)?;
        let (key, query) = rest.split_once('?').ok_or_else(bad)?;
        let mut date = None;
        let mut expires = None;
        let mut sig = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("X-Amz-Date", v)) => date = v.parse::<u64>().ok(),
                Some(("X-Amz-Expires", v)) => expires = v.parse::<u64>().ok(),
                Some(("X-Amz-Signature", v)) => sig = Some(v),
                _ => return Err(bad()),
            }
        }
        let (date, expires, sig) = (
            date.ok_or_else(bad)?,
            expires.ok_or_else(bad)?,
            sig.ok_or_else(bad)?,
        );
        let sig = unhex(sig).ok_or(PresignError::BadSignature)?;
        // Constant-time comparison (the twin has no attacker, but it costs nothing).
        self.mac(key, date, expires)
            .verify_slice(&sig)
            .map_err(|_| PresignError::BadSignature)?;
        let expired_at = date.saturating_add(expires);
        if now >= expired_at {
            return Err(PresignError::Expired { expired_at, now });
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_documented_hmac() {
        // Computed independently (Python's hmac module) over the documented
        // message; these bytes are in golden traces, so they must not move.
        let url = UrlSigner::new("h.example", b"k").presign("a/b", 10, 20);
        assert_eq!(
            url,
            "https://h.example/a/b?X-Amz-Date=10&X-Amz-Expires=20&X-Amz-Signature=\
             aa69aae31eafe11c70b3b610392ffdb236e423e37a7beace4ece4af054b8b32a"
        );
        let url = UrlSigner::new("firmware.twinrig.local", b"seed-42").presign(
            "pet_feeder/1.2.0/firmware.bin",
            1000,
            3600,
        );
        assert!(url.ends_with(
            "X-Amz-Signature=ceef3b6ffcd7bc7384081a2cd4b969cc91e898996df4872c44d34721b3213029"
        ));
    }

    #[test]
    fn verify_accepts_until_expiry_and_refuses_edits() {
        let s = UrlSigner::new("h.example", b"k");
        let url = s.presign("a/b", 10, 20);
        assert_eq!(s.verify(&url, 10), Ok("a/b"));
        assert_eq!(s.verify(&url, 29), Ok("a/b"));
        assert_eq!(
            s.verify(&url, 30),
            Err(PresignError::Expired {
                expired_at: 30,
                now: 30
            })
        );
        let (head, sig) = url.split_once("X-Amz-Signature=").unwrap();
        let upper = format!("{head}X-Amz-Signature={}", sig.to_uppercase());
        assert_ne!(upper, url, "the signature has hex letters to upper-case");
        assert_eq!(s.verify(&upper, 10), Err(PresignError::BadSignature));
        let other_key = UrlSigner::new("h.example", b"other").presign("a/b", 10, 20);
        assert_eq!(s.verify(&other_key, 10), Err(PresignError::BadSignature));
        let other_host = UrlSigner::new("g.example", b"k").presign("a/b", 10, 20);
        assert!(matches!(
            s.verify(&other_host, 10),
            Err(PresignError::Malformed(_))
        ));
        // A host that merely starts with ours is not ours.
        let longer_host = url.replace("h.example/", "h.example.evil/");
        assert!(matches!(
            s.verify(&longer_host, 10),
            Err(PresignError::Malformed(_))
        ));
    }

    #[test]
    fn served_urls_sign_the_same_and_verify_only_under_their_base() {
        let mut s = UrlSigner::new("h.example", b"k");
        let elsewhere = s.presign("a/b", 10, 20);
        s.serve_at("http://127.0.0.1:8443/firmware/");
        let url = s.presign("a/b", 10, 20);
        assert!(url.starts_with("http://127.0.0.1:8443/firmware/a/b?X-Amz-Date=10&"));
        assert_eq!(
            url.split_once('?').unwrap().1,
            elsewhere.split_once('?').unwrap().1
        );
        assert_eq!(s.verify(&url, 10), Ok("a/b"));
        assert!(matches!(
            s.verify(&elsewhere, 10),
            Err(PresignError::Malformed(_))
        ));
    }

    #[test]
    fn unhex_accepts_only_lowercase_pairs() {
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex(""), Some(vec![]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("FF"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é0"), None);
    }

    #[test]
    fn debug_hides_the_key() {
        let dbg = format!("{:?}", UrlSigner::new("h", b"secret-key"));
        assert!(!dbg.contains("secret"), "{dbg}");
    }
}
