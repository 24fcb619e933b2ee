//! The OTA job document and job-execution status updates.
//!
//! # Job document (the JSON the twin's jobs engine puts in an OTA job)
//!
//! ```json
//! {
//!   "operation": "ota",
//!   "deviceType": "pet_feeder",
//!   "version": "1.2.0",
//!   "url": "https://firmware.local/pet_feeder/1.2.0.bin?X-Amz-Expires=3600",
//!   "sha256": "<64 hex digits: SHA-256 over the whole image, header included>",
//!   "size": 1048640
//! }
//! ```
//!
//! - `operation` must be `"ota"`; a document with another operation is not an
//!   OTA job ([`JobDocError::NotOta`]) and is left to other handlers.
//! - `version` is `major.minor.patch`; `size` is the whole image in bytes
//!   (header + body). Unknown fields are ignored (the real `url` may come from a
//!   `${aws:iot:s3-presigned-url-v2:...}` placeholder that Jobs substitutes).
//!
//! # Status updates
//!
//! [`JobUpdate::to_json`] renders the payload for
//! `$aws/things/{thing}/jobs/{jobId}/update`: `{"status": ..., "statusDetails": {...}}`.
//! statusDetails keys used: `step` (`downloading`, `rebooting`, `done`,
//! `failed`, `rejected`), `bytesWritten`, `totalBytes`, `version`, `reason`
//! (values are strings, as AWS requires).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::Deserialize;

use crate::image::{Version, from_hex, valid_device_type};

/// A parsed OTA job document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtaJob {
    /// The device type the image is for.
    pub device_type: String,
    /// The version to install.
    pub version: Version,
    /// Where to download it.
    pub url: String,
    /// SHA-256 over the whole image.
    pub sha256: [u8; 32],
    /// Image length in bytes (header + body).
    pub size: u64,
}

/// Why a job document was not taken as an OTA job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobDocError {
    /// Valid JSON, but not `"operation": "ota"`: not ours.
    NotOta,
    /// An OTA document that is malformed (the job should be REJECTED).
    Invalid(String),
}

#[derive(Deserialize)]
struct Operation {
    operation: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawJob {
    device_type: String,
    version: String,
    url: String,
    sha256: String,
    size: u64,
}

impl OtaJob {
    /// Parse a job document.
    pub fn parse(doc: &[u8]) -> Result<OtaJob, JobDocError> {
        let op: Operation = serde_json::from_slice(doc)
            .map_err(|e| JobDocError::Invalid(alloc::format!("job document: {e}")))?;
        if op.operation.as_deref() != Some("ota") {
            return Err(JobDocError::NotOta);
        }
        let raw: RawJob = serde_json::from_slice(doc)
            .map_err(|e| JobDocError::Invalid(alloc::format!("OTA job document: {e}")))?;
        if !valid_device_type(&raw.device_type) {
            return Err(JobDocError::Invalid("bad deviceType".into()));
        }
        let version = Version::parse(&raw.version)
            .ok_or_else(|| JobDocError::Invalid(alloc::format!("bad version {:?}", raw.version)))?;
        let sha256 =
            from_hex(&raw.sha256).ok_or_else(|| JobDocError::Invalid("bad sha256".into()))?;
        if raw.url.is_empty() {
            return Err(JobDocError::Invalid("empty url".into()));
        }
        Ok(OtaJob {
            device_type: raw.device_type,
            version,
            url: raw.url,
            sha256,
            size: raw.size,
        })
    }

    /// Render as a job document (what the harness's jobs engine publishes).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "operation": "ota",
            "deviceType": self.device_type,
            "version": self.version.to_string(),
            "url": self.url,
            "sha256": crate::image::to_hex(&self.sha256),
            "size": self.size,
        })
        .to_string()
    }
}

/// Job execution statuses a device may set (AWS IoT Jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    /// Working on it (may be sent repeatedly with new statusDetails).
    InProgress,
    /// Done: the device runs the new version, confirmed.
    Succeeded,
    /// Tried and failed (retryable).
    Failed,
    /// Refused without trying (not retryable).
    Rejected,
}

impl ExecutionStatus {
    /// The AWS spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::InProgress => "IN_PROGRESS",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::Rejected => "REJECTED",
        }
    }

    /// Whether the execution is over.
    pub fn is_terminal(self) -> bool {
        self != ExecutionStatus::InProgress
    }
}

/// One UpdateJobExecution the caller should send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    /// The new status.
    pub status: ExecutionStatus,
    /// statusDetails, in insertion order.
    pub status_details: Vec<(String, String)>,
}

impl JobUpdate {
    pub(crate) fn new(status: ExecutionStatus, details: &[(&str, String)]) -> Self {
        JobUpdate {
            status,
            status_details: details
                .iter()
                .map(|(k, v)| (String::from(*k), v.clone()))
                .collect(),
        }
    }

    /// The value of a statusDetails key.
    pub fn detail(&self, key: &str) -> Option<&str> {
        self.status_details
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `update` request payload (without `clientToken`).
    pub fn to_json(&self) -> String {
        let mut details = serde_json::Map::new();
        for (k, v) in &self.status_details {
            // AWS: values 1..=1024 chars; keep reasons within that.
            let v: String = v.chars().take(1024).collect();
            details.insert(k.clone(), serde_json::Value::String(v));
        }
        serde_json::json!({ "status": self.status.as_str(), "statusDetails": details }).to_string()
    }
}
