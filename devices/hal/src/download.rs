//! Fetching a large object (a firmware image) in chunks.
//!
//! A real board implements [`Downloader`] with HTTPS range requests
//! (`Range: bytes={offset}-`) on a presigned URL; the simulator implements it
//! with a bandwidth + latency link model and the firmware registry's
//! presigned-URL check. Reads are addressed by offset, so a client resumes
//! after a link outage by reading again from the first byte it does not have:
//! nothing in the trait is stateful between calls.
//!
//! Methods take `&self`, like [`MqttClient`](crate::MqttClient), so a device
//! can download while another task publishes.

use core::fmt;

/// What [`Downloader::open`] learned about the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DownloadInfo {
    /// Its length in bytes (HTTP `Content-Length` of the whole object).
    pub total_len: u64,
}

/// Why a download request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DownloadError {
    /// The presigned URL has expired (HTTP 403 with an expiry message).
    Expired,
    /// Access denied: bad signature, wrong device (HTTP 403).
    Forbidden,
    /// No such object (HTTP 404).
    NotFound,
    /// The connection dropped mid-transfer (link outage); retry from the offset.
    Interrupted,
    /// No answer in time; retry from the offset.
    Timeout,
    /// Anything else (bad range, server error, malformed URL).
    Other,
}

impl DownloadError {
    /// Whether the same request may succeed if repeated later (a link
    /// problem), as opposed to a refusal that will not change.
    pub fn is_transient(self) -> bool {
        matches!(self, DownloadError::Interrupted | DownloadError::Timeout)
    }
}

impl fmt::Display for DownloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DownloadError::Expired => "download URL expired",
            DownloadError::Forbidden => "download forbidden",
            DownloadError::NotFound => "download URL not found",
            DownloadError::Interrupted => "download interrupted",
            DownloadError::Timeout => "download timed out",
            DownloadError::Other => "download failed",
        })
    }
}

impl core::error::Error for DownloadError {}

/// A chunked, resumable downloader.
#[allow(async_fn_in_trait)] // devices run on single-threaded executors; Send is not wanted
pub trait Downloader {
    /// Check that `url` can be fetched now (not expired, allowed, present) and
    /// learn its length. Cheap (an HTTP `HEAD` or a 0-length range request).
    async fn open(&self, url: &str) -> Result<DownloadInfo, DownloadError>;

    /// Read up to `buf.len()` bytes of `url` starting at byte `offset` into
    /// `buf`; returns how many were read, `0` at (or past) the end. A short
    /// read is not an error. The URL is checked on every call, so a presigned
    /// URL that expires mid-download fails with [`DownloadError::Expired`].
    async fn read_chunk(
        &self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, DownloadError>;
}

impl<D: Downloader + ?Sized> Downloader for &D {
    async fn open(&self, url: &str) -> Result<DownloadInfo, DownloadError> {
        (**self).open(url).await
    }

    async fn read_chunk(
        &self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, DownloadError> {
        (**self).read_chunk(url, offset, buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_link_problems_are_transient() {
        assert!(DownloadError::Interrupted.is_transient());
        assert!(DownloadError::Timeout.is_transient());
        for e in [
            DownloadError::Expired,
            DownloadError::Forbidden,
            DownloadError::NotFound,
            DownloadError::Other,
        ] {
            assert!(!e.is_transient(), "{e}");
        }
    }
}
