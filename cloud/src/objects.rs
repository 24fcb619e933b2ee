//! The object store: the S3 bucket the hand agent uploads its videos to, as a
//! twin (one [`ObjectStore`] per bucket).
//!
//! - [`ObjectStore::put`] follows S3: a put to an existing key **replaces** the
//!   object whole (no versioning, no refusal; the previous object is returned
//!   so a caller can see it happened). This differs on purpose from the
//!   firmware registry, which never overwrites a version.
//! - [`ObjectStore::list`] lists by key prefix in key order (S3's
//!   `ListObjectsV2` returns UTF-8 binary order; our keys are ASCII, so byte
//!   order is the same).
//! - Presigned GET URLs ([`crate::presign`]) look like
//!   `https://{bucket}.s3.twinrig.local/{key}?X-Amz-Date={unix s}&X-Amz-Expires={s}&X-Amz-Signature={hex}`,
//!   valid [`DEFAULT_EXPIRES_S`] (3600 s, what the real agent uses) unless
//!   said otherwise, at most [`MAX_EXPIRES_S`] (S3's SigV4 limit, 7 days).
//!   As with the AWS SDK, presigning is offline: a URL can be made for a key
//!   that does not exist (yet), and fetching it then fails with
//!   [`ObjectError::NoSuchKey`]; a URL fetches whatever the key holds at fetch
//!   time, so after a replacing put it returns the new bytes.
//! - [`ObjectStore::fetch`] checks, in order: the URL's shape, the signature,
//!   the expiry, then the key.
//!
//! Keys are restricted to S3's "safe characters" (ASCII letters and digits,
//! `! - _ . * ' ( )`, and `/` between non-empty segments other than `.` and
//! `..`), at most 1024 bytes, so a key goes into a URL as is, with no
//! percent-encoding to get wrong. Time is virtual unix seconds, passed in.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

pub use crate::presign::DEFAULT_EXPIRES_S;
use crate::presign::{PresignError, UrlSigner};

/// Host suffix of every bucket's URLs: `{bucket}.s3.twinrig.local`.
pub const HOST_SUFFIX: &str = "s3.twinrig.local";
/// Longest key, in bytes (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest presigned validity, seconds (S3 SigV4: 7 days).
pub const MAX_EXPIRES_S: u64 = 7 * 24 * 3600;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Its key, e.g. `videos/hand_20260208_120000.gif`.
    pub key: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// `Content-Type`, as given to the put.
    pub content_type: String,
    /// Lowercase hex SHA-256 of the bytes (S3 would give an MD5 ETag; a
    /// content digest is all the twin needs it for).
    pub sha256: String,
}

/// Why an object-store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// Not a valid S3 bucket name.
    #[error(
        "invalid bucket name {0:?} (3-63 of a-z 0-9 . -, starting and ending with a letter or digit)"
    )]
    InvalidBucket(String),
    /// A key this store does not accept.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A content type that is not `type/subtype` in printable ASCII.
    #[error("invalid content type {0:?}")]
    InvalidContentType(String),
    /// A presign validity outside 1..=[`MAX_EXPIRES_S`] seconds.
    #[error("invalid expiry {0} s (1..={MAX_EXPIRES_S})")]
    InvalidExpiry(u64),
    /// Not a presigned URL of this bucket.
    #[error("malformed or foreign object URL: {0}")]
    MalformedUrl(String),
    /// The URL was edited or signed by someone else.
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
    /// The URL is genuine but nothing is stored under its key.
    #[error("no such key (NoSuchKey): {0}")]
    NoSuchKey(String),
}

/// One bucket.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    bucket: String,
    signer: UrlSigner,
    objects: BTreeMap<String, Object>,
}

fn valid_bucket(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
        && !name.contains("..")
}

/// Why `key` is refused, if it is.
fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        return Some("empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return Some("longer than 1024 bytes");
    }
    let safe = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '!' | '-' | '_' | '.' | '*' | '\'' | '(' | ')')
    };
    if !key.chars().all(|c| safe(c) || c == '/') {
        return Some("only ASCII letters, digits, ! - _ . * ' ( ) and / are allowed");
    }
    // Empty, `.` and `..` segments would be rewritten by URL normalisation.
    if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Some("empty, '.' or '..' path segment");
    }
    None
}

fn check_key(key: &str) -> Result<(), ObjectError> {
    match key_problem(key) {
        Some(reason) => Err(ObjectError::InvalidKey {
            key: key.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

fn valid_content_type(ct: &str) -> bool {
    ct.len() <= 255
        && ct.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && ct
            .split_once('/')
            .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty())
}

impl ObjectStore {
    /// An empty bucket named `bucket`, signing URLs with `key` (derive it from
    /// the scenario seed; use a different key per bucket).
    pub fn new(bucket: &str, key: &[u8]) -> Result<ObjectStore, ObjectError> {
        if !valid_bucket(bucket) {
            return Err(ObjectError::InvalidBucket(bucket.to_string()));
        }
        Ok(ObjectStore {
            bucket: bucket.to_string(),
            signer: UrlSigner::new(&format!("{bucket}.{HOST_SUFFIX}"), key),
            objects: BTreeMap::new(),
        })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Stores `bytes` under `key`, replacing (and returning) any object that was
    /// there (S3 semantics).
    pub fn put(
        &mut self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Option<Object>, ObjectError> {
        check_key(key)?;
        if !valid_content_type(content_type) {
            return Err(ObjectError::InvalidContentType(content_type.to_string()));
        }
        let object = Object {
            key: key.to_string(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes,
            content_type: content_type.to_string(),
        };
        Ok(self.objects.insert(key.to_string(), object))
    }

    /// The object under `key`.
    pub fn get(&self, key: &str) -> Option<&Object> {
        self.objects.get(key)
    }

    /// Objects whose key starts with `prefix` (`""` for all), in key order.
    pub fn list(&self, prefix: &str) -> Vec<&Object> {
        self.objects
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, o)| o)
            .collect()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when the bucket holds nothing.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// A presigned GET URL for `key`, valid [`DEFAULT_EXPIRES_S`] from `now`.
    pub fn presign_get(&self, key: &str, now: u64) -> Result<String, ObjectError> {
        self.presign_get_for(key, now, DEFAULT_EXPIRES_S)
    }

    /// A presigned GET URL for `key`, valid `expires_s` (1..=[`MAX_EXPIRES_S`])
    /// from `now`. The key need not exist yet (presigning is offline).
    pub fn presign_get_for(
        &self,
        key: &str,
        now: u64,
        expires_s: u64,
    ) -> Result<String, ObjectError> {
        check_key(key)?;
        if !(1..=MAX_EXPIRES_S).contains(&expires_s) {
            return Err(ObjectError::InvalidExpiry(expires_s));
        }
        Ok(self.signer.presign(key, now, expires_s))
    }

    /// Follows a presigned URL at `now`: the object (bytes and content type) or
    /// why not.
    pub fn fetch(&self, url: &str, now: u64) -> Result<&Object, ObjectError> {
        let key = self.signer.verify(url, now).map_err(|e| match e {
            PresignError::Malformed(u) => ObjectError::MalformedUrl(u),
            PresignError::BadSignature => ObjectError::BadSignature,
            PresignError::Expired { expired_at, now } => ObjectError::Expired { expired_at, now },
        })?;
        self.objects
            .get(key)
            .ok_or_else(|| ObjectError::NoSuchKey(key.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_770_550_850;

    fn store() -> ObjectStore {
        let mut s = ObjectStore::new("hand-videos", b"seed-7").unwrap();
        s.put("videos/hand_b.gif", vec![2; 20], "image/gif")
            .unwrap();
        s.put("videos/hand_a.gif", vec![1; 10], "image/gif")
            .unwrap();
        s.put("videos0", vec![0], "application/octet-stream")
            .unwrap();
        s.put("logs/run.txt", b"ok".to_vec(), "text/plain; charset=utf-8")
            .unwrap();
        s
    }

    fn keys(objects: &[&Object]) -> Vec<String> {
        objects.iter().map(|o| o.key.clone()).collect()
    }

    #[test]
    fn put_get_and_replace() {
        let mut s = store();
        let a = s.get("videos/hand_a.gif").unwrap();
        assert_eq!(a.bytes, vec![1; 10]);
        assert_eq!(a.content_type, "image/gif");
        assert_eq!(
            s.put("fresh.bin", b"abc".to_vec(), "application/octet-stream")
                .unwrap()
                .map(|o| o.key),
            None
        );
        assert_eq!(
            s.get("fresh.bin").unwrap().sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // S3 semantics: the second put replaces the first and hands it back.
        let old = s
            .put("videos/hand_a.gif", vec![9; 3], "video/mp4")
            .unwrap()
            .expect("there was an object");
        assert_eq!(old.bytes, vec![1; 10]);
        let now = s.get("videos/hand_a.gif").unwrap();
        assert_eq!(
            (now.bytes.as_slice(), now.content_type.as_str()),
            (&[9u8; 3][..], "video/mp4")
        );
        assert_eq!(s.len(), 5);
        assert!(!s.is_empty());
        assert_eq!(s.bucket(), "hand-videos");
    }

    #[test]
    fn list_by_prefix_is_sorted() {
        let s = store();
        assert_eq!(
            keys(&s.list("videos/")),
            ["videos/hand_a.gif", "videos/hand_b.gif"]
        );
        assert_eq!(
            keys(&s.list("videos")),
            ["videos/hand_a.gif", "videos/hand_b.gif", "videos0"]
        );
        assert_eq!(
            keys(&s.list("")),
            [
                "logs/run.txt",
                "videos/hand_a.gif",
                "videos/hand_b.gif",
                "videos0"
            ]
        );
        assert!(s.list("videos/hand_c").is_empty());
        assert!(s.list("zzz").is_empty());
        assert!(ObjectStore::new("abc", b"k").unwrap().list("").is_empty());
    }

    #[test]
    fn presigned_url_shape_and_validity_window() {
        let s = store();
        let url = s.presign_get("videos/hand_a.gif", T0).unwrap();
        assert!(
            url.starts_with(&format!(
                "https://hand-videos.s3.twinrig.local/videos/hand_a.gif?X-Amz-Date={T0}&X-Amz-Expires=3600&X-Amz-Signature="
            )),
            "{url}"
        );
        assert_eq!(s.fetch(&url, T0).unwrap().bytes, vec![1; 10]);
        assert_eq!(s.fetch(&url, T0 + 3599).unwrap().bytes, vec![1; 10]);
        assert_eq!(
            s.fetch(&url, T0 + 3600),
            Err(ObjectError::Expired {
                expired_at: T0 + 3600,
                now: T0 + 3600
            })
        );
        let short = s.presign_get_for("videos/hand_a.gif", T0, 60).unwrap();
        assert!(s.fetch(&short, T0 + 59).is_ok());
        assert!(matches!(
            s.fetch(&short, T0 + 60),
            Err(ObjectError::Expired { .. })
        ));
        // Same inputs, same URL: no clock, no randomness.
        assert_eq!(url, s.presign_get("videos/hand_a.gif", T0).unwrap());
    }

    #[test]
    fn a_url_fetches_what_the_key_holds_now() {
        let mut s = store();
        let url = s.presign_get("videos/hand_a.gif", T0).unwrap();
        s.put("videos/hand_a.gif", vec![7; 4], "image/gif").unwrap();
        assert_eq!(s.fetch(&url, T0 + 1).unwrap().bytes, vec![7; 4]);
    }

    #[test]
    fn unknown_key_is_no_such_key() {
        let s = store();
        let url = s.presign_get("videos/missing.gif", T0).unwrap();
        assert_eq!(
            s.fetch(&url, T0),
            Err(ObjectError::NoSuchKey("videos/missing.gif".into()))
        );
    }

    #[test]
    fn tampered_key_expiry_date_or_signature_is_refused() {
        let s = store();
        let url = s.presign_get("videos/hand_a.gif", T0).unwrap();
        // Key: point the URL at another object that exists.
        let key = url.replace("hand_a.gif", "hand_b.gif");
        assert_eq!(s.fetch(&key, T0), Err(ObjectError::BadSignature));
        // Expiry: a longer validity.
        let expiry = url.replace("X-Amz-Expires=3600", "X-Amz-Expires=86400");
        assert_ne!(expiry, url);
        assert_eq!(s.fetch(&expiry, T0 + 4000), Err(ObjectError::BadSignature));
        // Date: moved later to revive an expired URL.
        let date = url.replace(
            &format!("X-Amz-Date={T0}"),
            &format!("X-Amz-Date={}", T0 + 5000),
        );
        assert_eq!(s.fetch(&date, T0 + 4000), Err(ObjectError::BadSignature));
        // Signature: one hex digit changed, truncated, not hex, empty.
        let (head, sig) = url.split_once("X-Amz-Signature=").unwrap();
        let flipped = format!(
            "{head}X-Amz-Signature={}{}",
            if sig.starts_with('0') { '1' } else { '0' },
            &sig[1..]
        );
        for bad in [
            flipped,
            format!("{head}X-Amz-Signature={}", &sig[..62]),
            format!("{head}X-Amz-Signature=zz{}", &sig[2..]),
            format!("{head}X-Amz-Signature="),
        ] {
            assert_eq!(s.fetch(&bad, T0), Err(ObjectError::BadSignature), "{bad}");
        }
        // Signed by another store of the same name (another secret).
        let forged = ObjectStore::new("hand-videos", b"guess")
            .unwrap()
            .presign_get("videos/hand_a.gif", T0)
            .unwrap();
        assert_eq!(s.fetch(&forged, T0), Err(ObjectError::BadSignature));
    }

    #[test]
    fn malformed_urls_are_refused() {
        let s = store();
        let url = s.presign_get("videos/hand_a.gif", T0).unwrap();
        let other_bucket = ObjectStore::new("other", b"seed-7")
            .unwrap()
            .presign_get("videos/hand_a.gif", T0)
            .unwrap();
        let (base, _) = url.split_once('?').unwrap();
        for bad in [
            String::new(),
            "not a url".into(),
            other_bucket,
            url.replace("https://", "http://"),
            base.to_string(),
            format!("{url}&X-Amz-Extra=1"),
            url.replace("X-Amz-Expires=3600&", ""),
            url.replace("X-Amz-Expires=3600", "X-Amz-Expires=soon"),
            url.replace("X-Amz-Date=", "X-Amz-Date=-"),
        ] {
            assert!(
                matches!(s.fetch(&bad, T0), Err(ObjectError::MalformedUrl(_))),
                "{bad}: {:?}",
                s.fetch(&bad, T0)
            );
        }
    }

    #[test]
    fn bad_input_gets_clear_errors() {
        assert!(matches!(
            ObjectStore::new("No_Caps", b"k"),
            Err(ObjectError::InvalidBucket(_))
        ));
        for b in ["ab", "-abc", "abc-", "a..b", &"a".repeat(64)] {
            assert!(ObjectStore::new(b, b"k").is_err(), "{b}");
        }
        let mut s = store();
        for (key, reason) in [
            ("", "empty"),
            ("/videos/a.gif", "empty, '.' or '..' path segment"),
            ("videos//a.gif", "empty, '.' or '..' path segment"),
            ("videos/", "empty, '.' or '..' path segment"),
            ("videos/../a", "empty, '.' or '..' path segment"),
            (
                "a b",
                "only ASCII letters, digits, ! - _ . * ' ( ) and / are allowed",
            ),
            (
                "a?b",
                "only ASCII letters, digits, ! - _ . * ' ( ) and / are allowed",
            ),
            (
                "vidéo",
                "only ASCII letters, digits, ! - _ . * ' ( ) and / are allowed",
            ),
        ] {
            let want = Err(ObjectError::InvalidKey {
                key: key.into(),
                reason,
            });
            assert_eq!(s.put(key, vec![], "image/gif").map(|_| ()), want, "{key}");
            assert_eq!(s.presign_get(key, T0).map(|_| ()), want, "{key}");
        }
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(s.put(&long, vec![], "image/gif").is_err());
        assert!(s.put(&long[1..], vec![], "image/gif").is_ok());
        for ct in ["", "gif", "image/", "/gif", "image/gif\n"] {
            assert_eq!(
                s.put("k", vec![], ct),
                Err(ObjectError::InvalidContentType(ct.into())),
                "{ct:?}"
            );
        }
        assert_eq!(
            s.presign_get_for("k", T0, 0),
            Err(ObjectError::InvalidExpiry(0))
        );
        assert_eq!(
            s.presign_get_for("k", T0, MAX_EXPIRES_S + 1),
            Err(ObjectError::InvalidExpiry(MAX_EXPIRES_S + 1))
        );
        assert!(s.presign_get_for("k", T0, MAX_EXPIRES_S).is_ok());
        // Nothing was stored by the refused puts (4 from `store()`, plus the
        // 1024-byte key).
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn expiry_near_u64_max_does_not_overflow() {
        let s = store();
        let url = s
            .presign_get_for("videos/hand_a.gif", u64::MAX - 1, MAX_EXPIRES_S)
            .unwrap();
        assert!(s.fetch(&url, u64::MAX - 1).is_ok());
        assert!(matches!(
            s.fetch(&url, u64::MAX),
            Err(ObjectError::Expired { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn fetch_never_panics(url in "\\PC{0,160}", now in proptest::prelude::any::<u64>()) {
            let s = store();
            let _ = s.fetch(&url, now);
        }

        #[test]
        fn valid_keys_round_trip(key in "[a-z0-9_.()!*'-]{1,12}(/[a-z0-9_()!*'-]{1,12}){0,3}") {
            let mut s = ObjectStore::new("hand-videos", b"k").unwrap();
            // Segments of only dots are refused; everything else must round-trip.
            proptest::prop_assume!(key.split('/').all(|g| g != "." && g != ".."));
            s.put(&key, key.as_bytes().to_vec(), "text/plain").unwrap();
            let url = s.presign_get(&key, 5).unwrap();
            proptest::prop_assert_eq!(&s.fetch(&url, 6).unwrap().bytes, &key.as_bytes().to_vec());
        }
    }
}
