//! Downloads over HTTP and HTTPS with range requests (S3 presigned URLs).
//!
//! Every [`Downloader::read_chunk`] is one `GET` with
//! `Range: bytes={offset}-{offset + len - 1}`, so a resume after an outage
//! is just a read from the first missing byte; [`Downloader::open`] is a
//! `GET` of `bytes=0-0` (a presigned S3 URL is signed for `GET` only, so a
//! `HEAD` would be refused), whose `Content-Range` gives the length.
//! Connections are pooled (hyper-util): a 1 MB image read in 4 KiB chunks
//! reuses one TLS connection instead of making 256 handshakes.
//!
//! Runs on tokio: the futures must be awaited inside a tokio runtime with
//! I/O and time enabled (current-thread is fine).

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderMap, RANGE};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::timeout;
use twinrig_hal::{DownloadError, DownloadInfo, Downloader};

pub use crate::tls::TlsSetupError;

/// How an [`HttpDownloader`] connects and what it accepts.
#[derive(Debug, Clone)]
pub struct HttpDownloaderConfig {
    /// A PEM file of CA certificates to trust for HTTPS (a private CA, a
    /// test server's).
    pub ca_file: Option<PathBuf>,
    /// Also trust the OS trust store (on Debian: ca-certificates, Mozilla's
    /// roots; what S3's certificates chain to). Default: on.
    pub os_roots: bool,
    /// The largest object accepted: a larger one fails with
    /// [`DownloadError::Other`] at `open` (and at any read that learns its
    /// length), before a byte is stored. Default: 16 MiB.
    pub max_object_len: u64,
    /// Limit on connecting (TCP, and the TLS handshake with the request).
    pub connect_timeout: Duration,
    /// Limit on waiting for the response head, and then for each piece of
    /// the body.
    pub read_timeout: Duration,
}

impl Default for HttpDownloaderConfig {
    fn default() -> Self {
        HttpDownloaderConfig {
            ca_file: None,
            os_roots: true,
            max_object_len: 16 << 20,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// A [`Downloader`] over HTTP(S) range requests.
#[derive(Debug, Clone)]
pub struct HttpDownloader {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    config: HttpDownloaderConfig,
}

/// Where a response's body starts, and the object's total length.
struct Part {
    /// Offset of the body's first byte in the object.
    first: u64,
    /// The object's length.
    total: u64,
}

impl HttpDownloader {
    /// A downloader; fails if the CA file cannot be read, or if there is no
    /// root to trust at all.
    pub fn new(config: HttpDownloaderConfig) -> Result<Self, TlsSetupError> {
        let roots = crate::tls::root_store(config.ca_file.as_deref(), config.os_roots)?;
        let tls = crate::tls::client_config(roots, None)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(HttpDownloader { client, config })
    }

    /// The configuration.
    pub fn config(&self) -> &HttpDownloaderConfig {
        &self.config
    }

    /// Sends `GET url` for bytes `first..=last` and waits for the head.
    async fn get(
        &self,
        url: &str,
        first: u64,
        last: u64,
    ) -> Result<Response<Incoming>, DownloadError> {
        let uri: Uri = url.parse().map_err(|_| DownloadError::Other)?;
        // Anything but http(s) with a host is a malformed URL, not a link
        // problem worth retrying.
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(DownloadError::Other);
        }
        let request = Request::get(uri)
            .header(RANGE, format!("bytes={first}-{last}"))
            .body(Empty::new())
            .map_err(|_| DownloadError::Other)?;
        let limit = self.config.connect_timeout + self.config.read_timeout;
        match timeout(limit, self.client.request(request)).await {
            Err(_) => Err(DownloadError::Timeout),
            Ok(Err(e)) => Err(classify(&e)),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// The error for a refusal, reading (a bounded part of) its body.
    async fn refusal(&self, response: Response<Incoming>) -> DownloadError {
        match response.status() {
            StatusCode::FORBIDDEN => {
                let body = self.read_text(response.into_body(), 16 << 10).await;
                if is_expiry_message(&body) {
                    DownloadError::Expired
                } else {
                    DownloadError::Forbidden
                }
            }
            StatusCode::NOT_FOUND => DownloadError::NotFound,
            _ => DownloadError::Other,
        }
    }

    /// Up to `limit` bytes of an error body, as text (empty if it stalls).
    async fn read_text(&self, mut body: Incoming, limit: usize) -> String {
        let mut text = Vec::new();
        while text.len() < limit {
            match timeout(self.config.read_timeout, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        text.extend_from_slice(&data);
                    }
                }
                _ => break,
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Where a successful response's body sits in the object; refuses an
    /// object over the size limit.
    fn part(&self, response: &Response<Incoming>) -> Result<Part, DownloadError> {
        let headers = response.headers();
        let part = match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let (first, _last, total) = content_range(headers).ok_or(DownloadError::Other)?;
                Part {
                    first: first.ok_or(DownloadError::Other)?,
                    total: total.ok_or(DownloadError::Other)?,
                }
            }
            // The server ignored the range: the body is the whole object.
            StatusCode::OK => Part {
                first: 0,
                total: content_length(headers).ok_or(DownloadError::Other)?,
            },
            _ => return Err(DownloadError::Other),
        };
        if part.total > self.config.max_object_len {
            return Err(DownloadError::Other);
        }
        Ok(part)
    }
}

impl Downloader for HttpDownloader {
    async fn open(&self, url: &str) -> Result<DownloadInfo, DownloadError> {
        let response = self.get(url, 0, 0).await?;
        let total = match response.status() {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
                let total = self.part(&response)?.total;
                if response.status() == StatusCode::PARTIAL_CONTENT {
                    // One byte: read it so the connection goes back to the pool.
                    let _ = self.read_text(response.into_body(), 2).await;
                }
                total
            }
            // An empty object has no byte 0: S3 answers 416 with `bytes */0`.
            StatusCode::RANGE_NOT_SATISFIABLE => content_range(response.headers())
                .and_then(|(_, _, total)| total)
                .ok_or(DownloadError::Other)?,
            _ => return Err(self.refusal(response).await),
        };
        if total > self.config.max_object_len {
            return Err(DownloadError::Other);
        }
        Ok(DownloadInfo { total_len: total })
    }

    async fn read_chunk(
        &self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, DownloadError> {
        if buf.is_empty() {
            // No range is 0 bytes long; still check the URL, as promised.
            return self.open(url).await.map(|_| 0);
        }
        let last = offset.saturating_add(buf.len() as u64 - 1);
        let response = self.get(url, offset, last).await?;
        match response.status() {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
            // At or past the end.
            StatusCode::RANGE_NOT_SATISFIABLE => return Ok(0),
            _ => return Err(self.refusal(response).await),
        }
        let part = self.part(&response)?;
        if part.first > offset {
            return Err(DownloadError::Other);
        }
        // Bytes of the body before `offset` (a server that ignored the range).
        let mut skip = offset - part.first;
        let mut body = response.into_body();
        let mut n = 0;
        loop {
            let frame = match timeout(self.config.read_timeout, body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => break,
                // A dropped connection or a stall mid-body: keep what arrived
                // (a short read), or report the link problem if nothing did.
                Ok(Some(Err(_))) if n == 0 => return Err(DownloadError::Interrupted),
                Err(_) if n == 0 => return Err(DownloadError::Timeout),
                Ok(Some(Err(_))) | Err(_) => break,
            };
            let Ok(mut data) = frame.into_data() else {
                continue; // trailers
            };
            let skipped = data.len().min(usize::try_from(skip).unwrap_or(usize::MAX));
            skip -= skipped as u64;
            data = data.slice(skipped..);
            let take = data.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&data[..take]);
            n += take;
            if take < data.len() {
                // More than asked for (the whole object): stop here; the
                // connection is dropped rather than drained.
                break;
            }
        }
        Ok(n)
    }
}

/// Whether a 403 body says the (presigned) request expired: S3's
/// `<Code>AccessDenied</Code><Message>Request has expired</Message>` with
/// `<X-Amz-Expires>`/`<Expires>` details, or twinrig's cloud's message.
fn is_expiry_message(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    body.contains("request has expired")
        || (body.contains("<code>accessdenied</code>") && body.contains("<x-amz-expires>"))
}

/// A `Content-Range: bytes {first}-{last}/{total}` header (`*` for an
/// unknown part): (first, last, total).
fn content_range(headers: &HeaderMap) -> Option<(Option<u64>, Option<u64>, Option<u64>)> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.trim().parse().ok()?)
    };
    if range == "*" {
        return Some((None, None, total));
    }
    let (first, last) = range.split_once('-')?;
    Some((
        Some(first.trim().parse().ok()?),
        Some(last.trim().parse().ok()?),
        total,
    ))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A request that got no response: a timeout, a certificate problem (not
/// transient), or else a link problem (refused, reset, closed early).
fn classify(e: &hyper_util::client::legacy::Error) -> DownloadError {
    std::error::Error::source(e)
        .and_then(find_cause)
        .unwrap_or(DownloadError::Interrupted)
}

/// Looks through an error's causes, including those inside `io::Error`s
/// (whose `source()` skips the error they wrap), for a timeout or a TLS
/// failure.
fn find_cause(err: &(dyn std::error::Error + 'static)) -> Option<DownloadError> {
    if err.is::<rustls::Error>() {
        return Some(DownloadError::Other);
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::TimedOut {
            return Some(DownloadError::Timeout);
        }
        if let Some(found) = io.get_ref().and_then(|inner| find_cause(inner)) {
            return Some(found);
        }
    }
    err.source().and_then(find_cause)
}

#[cfg(test)]
mod tests;
