//! The firmware image format and its streaming verifier.
//!
//! # Image layout (all integers little-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 4  | magic `b"TWFW"` |
//! | 4  | 1  | header version, [`HEADER_VERSION`] (= 1) |
//! | 5  | 3  | reserved, zero |
//! | 8  | 32 | device type, UTF-8 `[a-z0-9_-]`, 1..=32 bytes, NUL-padded |
//! | 40 | 2  | version major |
//! | 42 | 2  | version minor |
//! | 44 | 2  | version patch |
//! | 46 | 2  | reserved, zero |
//! | 48 | 4  | body length in bytes |
//! | 52 | 12 | reserved, zero |
//! | 64 | body length | body |
//!
//! The whole image (header and body) is [`HEADER_LEN`] + body length bytes. Its
//! SHA-256 over all of those bytes is what the job document's `sha256` names and
//! what the A/B partition table stores to check a slot at boot. The header has no
//! checksum of its own: the image digest covers it.
//!
//! Versions are plain `major.minor.patch` (no pre-release or build metadata).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest, Sha256};

/// The four bytes every image starts with.
pub const MAGIC: [u8; 4] = *b"TWFW";
/// The header version this crate writes and reads.
pub const HEADER_VERSION: u8 = 1;
/// Length of the fixed header in bytes.
pub const HEADER_LEN: usize = 64;
/// Longest device type name in bytes.
pub const MAX_DEVICE_TYPE_LEN: usize = 32;

/// A `major.minor.patch` firmware version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major number.
    pub major: u16,
    /// Minor number.
    pub minor: u16,
    /// Patch number.
    pub patch: u16,
}

impl Version {
    /// A version from its three numbers.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Parse `"1.2.3"` (an optional leading `v` is accepted).
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts = s.split('.');
        let mut next = || -> Option<u16> {
            let p = parts.next()?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let v = Version::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The regular expression of a version as written in files (no leading
/// zeros, no `v`, no suffixes).
pub const VERSION_PATTERN: &str = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$";

/// Why a text is not a version `MAJOR.MINOR.PATCH` (the strict form files
/// use, [`VERSION_PATTERN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionError {
    /// `-rc.1`, `+build`.
    Suffix,
    /// Not exactly three parts.
    Parts,
    /// A part that is not a whole number.
    NotANumber,
    /// `01`.
    LeadingZero,
    /// More than 65535 (the image header holds 16 bits).
    TooLarge,
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VersionError::Suffix => {
                "pre-release and build suffixes (`-rc.1`, `+build`) are not supported"
            }
            VersionError::Parts => "it needs exactly three numbers, e.g. 1.2.0",
            VersionError::NotANumber => "each part is a whole number",
            VersionError::LeadingZero => "a number has no leading zeros",
            VersionError::TooLarge => {
                "each number is at most 65535 (firmware image headers hold 16 bits)"
            }
        })
    }
}

impl core::error::Error for VersionError {}

impl core::str::FromStr for Version {
    type Err = VersionError;

    /// The strict form: `1.2.0`, no leading zeros, no `v`, no suffixes.
    fn from_str(text: &str) -> Result<Version, VersionError> {
        if text.contains(['-', '+']) {
            return Err(VersionError::Suffix);
        }
        if text.split('.').count() != 3 {
            return Err(VersionError::Parts);
        }
        let mut nums = [0u16; 3];
        for (slot, part) in nums.iter_mut().zip(text.split('.')) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::NotANumber);
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err(VersionError::LeadingZero);
            }
            *slot = part.parse().map_err(|_| VersionError::TooLarge)?;
        }
        Ok(Version::new(nums[0], nums[1], nums[2]))
    }
}

/// As its text (`"1.2.0"`), for files and reports.
#[cfg(feature = "serde")]
impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// From its text in the strict form; a YAML number (`2.1`) is refused with
/// a hint, since YAML has already turned `2.10` into 2.1.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;

        struct Text;
        const NOT_TEXT: &str = "is not a version: write MAJOR.MINOR.PATCH, e.g. 2.0.0";
        impl serde::de::Visitor<'_> for Text {
            type Value = Version;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a version MAJOR.MINOR.PATCH, e.g. 2.0.0")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Version, E> {
                v.parse().map_err(|e| {
                    E::custom(format_args!(
                        "`{v}` is not a version MAJOR.MINOR.PATCH: {e}"
                    ))
                })
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Version, E> {
                Err(E::custom(format_args!("`{v}` {NOT_TEXT}")))
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Version, E> {
                Err(E::custom(format_args!("`{v}` {NOT_TEXT}")))
            }
            fn visit_f64<E: Error>(self, _: f64) -> Result<Version, E> {
                Err(E::custom(format_args!("this number {NOT_TEXT}")))
            }
        }
        deserializer.deserialize_any(Text)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Version {
    fn schema_name() -> alloc::borrow::Cow<'static, str> {
        "Version".into()
    }

    fn schema_id() -> alloc::borrow::Cow<'static, str> {
        concat!(module_path!(), "::Version").into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": VERSION_PATTERN,
            "description": "A version MAJOR.MINOR.PATCH (semantic versioning, no pre-release or build suffix).",
            "examples": ["1.0.0", "2.1.3"]
        })
    }
}

/// A parsed image header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHeader {
    /// The device type the image is built for.
    pub device_type: String,
    /// Its firmware version.
    pub version: Version,
    /// Length of the body that follows the header.
    pub body_len: u32,
}

impl ImageHeader {
    /// Header plus body, in bytes.
    pub fn image_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.body_len)
    }

    /// Encode the header. `None` if the device type is not a valid name.
    pub fn encode(&self) -> Option<[u8; HEADER_LEN]> {
        if !valid_device_type(&self.device_type) {
            return None;
        }
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = HEADER_VERSION;
        h[8..8 + self.device_type.len()].copy_from_slice(self.device_type.as_bytes());
        h[40..42].copy_from_slice(&self.version.major.to_le_bytes());
        h[42..44].copy_from_slice(&self.version.minor.to_le_bytes());
        h[44..46].copy_from_slice(&self.version.patch.to_le_bytes());
        h[48..52].copy_from_slice(&self.body_len.to_le_bytes());
        Some(h)
    }

    /// Decode a header, checking magic, header version, name and reserved bytes.
    pub fn decode(h: &[u8; HEADER_LEN]) -> Result<ImageHeader, ImageError> {
        if h[0..4] != MAGIC {
            return Err(ImageError::BadHeader("bad magic"));
        }
        if h[4] != HEADER_VERSION {
            return Err(ImageError::BadHeader("unsupported header version"));
        }
        if h[5..8]
            .iter()
            .chain(&h[46..48])
            .chain(&h[52..64])
            .any(|&b| b != 0)
        {
            return Err(ImageError::BadHeader("reserved bytes not zero"));
        }
        let name = &h[8..40];
        let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        if name[len..].iter().any(|&b| b != 0) {
            return Err(ImageError::BadHeader("device type not NUL-padded"));
        }
        let device_type = core::str::from_utf8(&name[..len])
            .ok()
            .filter(|s| valid_device_type(s))
            .ok_or(ImageError::BadHeader("bad device type"))?;
        let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
        Ok(ImageHeader {
            device_type: String::from(device_type),
            version: Version::new(u16_at(40), u16_at(42), u16_at(44)),
            body_len: u32::from_le_bytes([h[48], h[49], h[50], h[51]]),
        })
    }
}

/// Whether `s` is a valid device type name: 1..=32 bytes of `[a-z0-9_-]`.
pub fn valid_device_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_DEVICE_TYPE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Build a complete image (header + body), as the harness's firmware registry does.
/// `None` if the device type is invalid or the body is longer than `u32::MAX`.
pub fn build_image(device_type: &str, version: Version, body: &[u8]) -> Option<Vec<u8>> {
    let header = ImageHeader {
        device_type: String::from(device_type),
        version,
        body_len: u32::try_from(body.len()).ok()?,
    }
    .encode()?;
    let mut img = Vec::with_capacity(HEADER_LEN + body.len());
    img.extend_from_slice(&header);
    img.extend_from_slice(body);
    Some(img)
}

/// SHA-256 of a byte string.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lowercase hex of a digest.
pub fn to_hex(digest: &[u8; 32]) -> String {
    hex::encode(digest)
}

/// Parse 64 hex digits (either case) into a digest.
pub fn from_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Why an image was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// The header is malformed, or its length disagrees with the job document.
    BadHeader(&'static str),
    /// The image is built for another device type.
    WrongDeviceType {
        /// The type this device is.
        expected: String,
        /// The type the image names.
        found: String,
    },
    /// The image carries the version the device already runs.
    SameVersion(Version),
    /// More bytes than the job document / header announce, or than the slot holds.
    TooLarge {
        /// Bytes received (or announced) so far.
        size: u64,
        /// The most that is allowed.
        max: u64,
    },
    /// The download ended before the announced length.
    Truncated {
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The SHA-256 over the whole image is not the expected one.
    HashMismatch {
        /// The digest from the job document.
        expected: [u8; 32],
        /// The digest of the received bytes.
        actual: [u8; 32],
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::BadHeader(why) => write!(f, "bad image header: {why}"),
            ImageError::WrongDeviceType { expected, found } => {
                write!(
                    f,
                    "image is for device type {found}, this device is {expected}"
                )
            }
            ImageError::SameVersion(v) => write!(f, "image version {v} is already running"),
            ImageError::TooLarge { size, max } => {
                write!(f, "image too large: {size} bytes, at most {max}")
            }
            ImageError::Truncated { received, expected } => {
                write!(f, "download truncated: {received} of {expected} bytes")
            }
            ImageError::HashMismatch { expected, actual } => write!(
                f,
                "sha256 mismatch: expected {}, got {}",
                to_hex(expected),
                to_hex(actual)
            ),
        }
    }
}

impl core::error::Error for ImageError {}

/// What an image must be for this device and this job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// This device's type.
    pub device_type: String,
    /// The version running now (an image with the same version is refused).
    pub running_version: Option<Version>,
    /// Total image length from the job document (header + body).
    pub size: u64,
    /// SHA-256 over the whole image from the job document.
    pub sha256: [u8; 32],
    /// The largest image that fits (the slot size).
    pub max_size: u64,
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedImage {
    /// The image's header.
    pub header: ImageHeader,
    /// Its length in bytes.
    pub len: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
}

/// Checks an image as it streams in: header as soon as its 64 bytes are there,
/// length on every chunk, digest at [`ImageVerifier::finish`].
///
/// After an error the verifier stays failed and returns the same error.
#[derive(Debug, Clone)]
pub struct ImageVerifier {
    expect: Expectation,
    hasher: Sha256,
    head: Vec<u8>,
    header: Option<ImageHeader>,
    received: u64,
    failed: Option<ImageError>,
}

impl ImageVerifier {
    /// A verifier for one download. Fails at once if the announced size does not fit.
    pub fn new(expect: Expectation) -> Result<Self, ImageError> {
        if expect.size > expect.max_size {
            return Err(ImageError::TooLarge {
                size: expect.size,
                max: expect.max_size,
            });
        }
        if expect.size < HEADER_LEN as u64 {
            return Err(ImageError::BadHeader(
                "announced size shorter than a header",
            ));
        }
        Ok(ImageVerifier {
            expect,
            hasher: Sha256::new(),
            head: Vec::with_capacity(HEADER_LEN),
            header: None,
            received: 0,
            failed: None,
        })
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The header, once its bytes have arrived.
    pub fn header(&self) -> Option<&ImageHeader> {
        self.header.as_ref()
    }

    /// Feed the next chunk. On success the chunk may be written to flash.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ImageError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.feed_inner(chunk);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn feed_inner(&mut self, chunk: &[u8]) -> Result<(), ImageError> {
        let total = self.received + chunk.len() as u64;
        if total > self.expect.size {
            return Err(ImageError::TooLarge {
                size: total,
                max: self.expect.size,
            });
        }
        if self.header.is_none() {
            let need = HEADER_LEN - self.head.len();
            self.head.extend_from_slice(&chunk[..need.min(chunk.len())]);
            if self.head.len() == HEADER_LEN {
                let mut h = [0u8; HEADER_LEN];
                h.copy_from_slice(&self.head);
                let header = ImageHeader::decode(&h)?;
                self.check_header(&header)?;
                self.header = Some(header);
            }
        }
        self.hasher.update(chunk);
        self.received = total;
        Ok(())
    }

    fn check_header(&self, header: &ImageHeader) -> Result<(), ImageError> {
        if header.device_type != self.expect.device_type {
            return Err(ImageError::WrongDeviceType {
                expected: self.expect.device_type.clone(),
                found: header.device_type.clone(),
            });
        }
        if Some(header.version) == self.expect.running_version {
            return Err(ImageError::SameVersion(header.version));
        }
        if header.image_len() > self.expect.max_size {
            return Err(ImageError::TooLarge {
                size: header.image_len(),
                max: self.expect.max_size,
            });
        }
        if header.image_len() != self.expect.size {
            return Err(ImageError::BadHeader(
                "header body length disagrees with the job document size",
            ));
        }
        Ok(())
    }

    /// The download is complete: check length and digest.
    pub fn finish(self) -> Result<VerifiedImage, ImageError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.received < self.expect.size {
            return Err(ImageError::Truncated {
                received: self.received,
                expected: self.expect.size,
            });
        }
        let actual: [u8; 32] = self.hasher.finalize().into();
        if actual != self.expect.sha256 {
            return Err(ImageError::HashMismatch {
                expected: self.expect.sha256,
                actual,
            });
        }
        let header = self
            .header
            .ok_or(ImageError::BadHeader("no header received"))?;
        Ok(VerifiedImage {
            header,
            len: self.received,
            sha256: actual,
        })
    }
}
