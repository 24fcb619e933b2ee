//! The downloader against a small HTTP/1.1 server on 127.0.0.1 (std
//! threads, one per connection, keep-alive, `Range` support), plain and
//! over TLS with a CA made here.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    /// Send the head and this many body bytes, then close (once; then Normal).
    DropAfter(usize),
    /// Answer 200 with the whole object, whatever the range.
    NoRanges,
    /// S3's 403 for an expired presigned URL.
    Expired,
    /// S3's 403 for a bad signature.
    Forbidden,
    /// S3's 404.
    NotFound,
    /// Read the request, never answer.
    Silent,
}

struct Server {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<AtomicUsize>,
}

impl Server {
    fn start(object: Vec<u8>, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(Mode::Normal));
        let requests = Arc::new(AtomicUsize::new(0));
        let object = Arc::new(object);
        let (m, r) = (mode.clone(), requests.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (object, mode, requests, tls) =
                    (object.clone(), m.clone(), r.clone(), tls.clone());
                thread::spawn(move || match tls {
                    None => serve(stream, &object, &mode, &requests),
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config).unwrap();
                        serve(
                            rustls::StreamOwned::new(conn, stream),
                            &object,
                            &mode,
                            &requests,
                        )
                    }
                });
            }
        });
        Server {
            port,
            mode,
            requests,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn url(&self, scheme: &str, host: &str) -> String {
        format!(
            "{scheme}://{host}:{}/firmware/fw.bin?X-Amz-Signature=abc",
            self.port
        )
    }
}

/// The request head's `Range: bytes=a-b`, or None (EOF, no range).
fn read_head(s: &mut impl Read) -> Option<Option<(u64, u64)>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let range = head.lines().find_map(|l| {
        let (a, b) = l.strip_prefix("range: bytes=")?.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    });
    Some(range)
}

fn serve(mut s: impl Read + Write, object: &[u8], mode: &Mutex<Mode>, requests: &AtomicUsize) {
    let len = object.len() as u64;
    while let Some(range) = read_head(&mut s) {
        requests.fetch_add(1, Ordering::SeqCst);
        let now = *mode.lock().unwrap();
        let error = |status: &str, code: &str, message: &str| {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>{}<RequestId>1</RequestId></Error>",
                if code == "AccessDenied" && message.contains("expired") {
                    "<X-Amz-Expires>3600</X-Amz-Expires><Expires>2026-01-01T00:00:00Z</Expires><ServerTime>2026-01-01T01:00:00Z</ServerTime>"
                } else {
                    ""
                }
            );
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let answer = match now {
            Mode::Silent => {
                thread::sleep(Duration::from_secs(120));
                return;
            }
            Mode::Expired => error("403 Forbidden", "AccessDenied", "Request has expired"),
            Mode::Forbidden => error(
                "403 Forbidden",
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            ),
            Mode::NotFound => error(
                "404 Not Found",
                "NoSuchKey",
                "The specified key does not exist.",
            ),
            Mode::NoRanges => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(object);
                let _ = s.flush();
                continue;
            }
            Mode::Normal | Mode::DropAfter(_) => {
                let (first, last) = range.unwrap_or((0, len.saturating_sub(1)));
                if first >= len {
                    let _ = write!(
                        s,
                        "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n"
                    );
                    let _ = s.flush();
                    continue;
                }
                let last = last.min(len - 1);
                let body = &object[first as usize..=last as usize];
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nAccept-Ranges: bytes\r\nContent-Range: bytes {first}-{last}/{len}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                if let Mode::DropAfter(n) = now {
                    let _ = s.write_all(&body[..n.min(body.len())]);
                    let _ = s.flush();
                    *mode.lock().unwrap() = Mode::Normal;
                    return; // closes the connection mid-body
                }
                let _ = s.write_all(body);
                let _ = s.flush();
                continue;
            }
        };
        let _ = s.write_all(answer.as_bytes());
        let _ = s.flush();
    }
}

fn object(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn plain() -> HttpDownloader {
    HttpDownloader::new(HttpDownloaderConfig {
        os_roots: true,
        ..HttpDownloaderConfig::default()
    })
    .or_else(|_| {
        // A machine without an OS trust store: plain HTTP needs no roots,
        // but the downloader wants one; any CA will do.
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = test_pki(&["localhost"]);
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca).unwrap();
        HttpDownloader::new(HttpDownloaderConfig {
            ca_file: Some(path),
            os_roots: false,
            ..HttpDownloaderConfig::default()
        })
    })
    .unwrap()
}

/// Reads the whole object in `chunk`-byte reads.
async fn read_all(d: &HttpDownloader, url: &str, chunk: usize) -> Vec<u8> {
    let total = d.open(url).await.unwrap().total_len;
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    while (out.len() as u64) < total {
        let n = d.read_chunk(url, out.len() as u64, &mut buf).await.unwrap();
        assert!(n > 0, "no progress at {}", out.len());
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[tokio::test]
async fn reads_ranges_with_short_reads_at_the_end() {
    let data = object(10_000);
    let server = Server::start(data.clone(), None);
    let d = plain();
    let url = server.url("http", "127.0.0.1");
    assert_eq!(d.open(&url).await, Ok(DownloadInfo { total_len: 10_000 }));

    let mut buf = vec![0u8; 4096];
    assert_eq!(d.read_chunk(&url, 0, &mut buf).await, Ok(4096));
    assert_eq!(buf, data[..4096]);
    assert_eq!(d.read_chunk(&url, 8192, &mut buf).await, Ok(1808));
    assert_eq!(buf[..1808], data[8192..]);
    assert_eq!(d.read_chunk(&url, 10_000, &mut buf).await, Ok(0));
    assert_eq!(d.read_chunk(&url, 50_000, &mut buf).await, Ok(0));

    let before = server.requests.load(Ordering::SeqCst);
    assert_eq!(read_all(&d, &url, 1000).await, data);
    // open + 10 reads, one request each.
    assert_eq!(server.requests.load(Ordering::SeqCst) - before, 11);
}

#[tokio::test]
async fn an_empty_object_has_length_zero() {
    let server = Server::start(Vec::new(), None);
    let d = plain();
    let url = server.url("http", "127.0.0.1");
    assert_eq!(d.open(&url).await, Ok(DownloadInfo { total_len: 0 }));
    let mut buf = [0u8; 16];
    assert_eq!(d.read_chunk(&url, 0, &mut buf).await, Ok(0));
}

#[tokio::test]
async fn a_dropped_connection_keeps_what_arrived_and_resumes() {
    let data = object(10_000);
    let server = Server::start(data.clone(), None);
    let d = plain();
    let url = server.url("http", "127.0.0.1");
    let mut buf = vec![0u8; 4096];

    // 1000 of 4096 bytes, then the link drops: a short read of those 1000.
    server.set(Mode::DropAfter(1000));
    assert_eq!(d.read_chunk(&url, 0, &mut buf).await, Ok(1000));
    assert_eq!(buf[..1000], data[..1000]);
    // Resuming from the first missing byte works.
    assert_eq!(d.read_chunk(&url, 1000, &mut buf).await, Ok(4096));
    assert_eq!(buf, data[1000..5096]);

    // Dropped before any body byte: Interrupted, and a retry works.
    server.set(Mode::DropAfter(0));
    let err = d.read_chunk(&url, 5096, &mut buf).await.unwrap_err();
    assert_eq!(err, DownloadError::Interrupted);
    assert!(err.is_transient());
    assert_eq!(d.read_chunk(&url, 5096, &mut buf).await, Ok(4096));
    assert_eq!(buf, data[5096..9192]);
}

#[tokio::test]
async fn a_server_ignoring_ranges_still_gives_the_right_bytes() {
    let data = object(10_000);
    let server = Server::start(data.clone(), None);
    server.set(Mode::NoRanges);
    let d = plain();
    let url = server.url("http", "127.0.0.1");
    assert_eq!(d.open(&url).await, Ok(DownloadInfo { total_len: 10_000 }));
    let mut buf = vec![0u8; 100];
    assert_eq!(d.read_chunk(&url, 5000, &mut buf).await, Ok(100));
    assert_eq!(buf, data[5000..5100]);
}

#[tokio::test]
async fn refusals_map_to_their_errors() {
    let server = Server::start(object(100), None);
    let d = plain();
    let url = server.url("http", "127.0.0.1");
    let mut buf = [0u8; 10];
    for (mode, want) in [
        (Mode::Expired, DownloadError::Expired),
        (Mode::Forbidden, DownloadError::Forbidden),
        (Mode::NotFound, DownloadError::NotFound),
    ] {
        server.set(mode);
        assert_eq!(d.open(&url).await, Err(want), "{mode:?}");
        assert_eq!(d.read_chunk(&url, 0, &mut buf).await, Err(want), "{mode:?}");
        assert!(!want.is_transient());
    }
    // The connection stays usable after an error answer.
    server.set(Mode::Normal);
    assert_eq!(d.read_chunk(&url, 90, &mut buf).await, Ok(10));
}

#[test]
fn expiry_messages_are_recognised() {
    assert!(is_expiry_message(
        "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    ));
    // twinrig's cloud (`serve cloud`).
    assert!(is_expiry_message(
        "<Error><Code>AccessDenied</Code><Message>request has expired (AccessDenied): expired at 5, now 9</Message></Error>"
    ));
    assert!(is_expiry_message(
        "<Error><Code>AccessDenied</Code><Message>x</Message><X-Amz-Expires>60</X-Amz-Expires></Error>"
    ));
    assert!(!is_expiry_message(
        "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    ));
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = Server::start(object(100), None);
    server.set(Mode::Silent);
    let d = HttpDownloader {
        config: HttpDownloaderConfig {
            connect_timeout: Duration::from_millis(200),
            read_timeout: Duration::from_millis(200),
            ..plain().config
        },
        ..plain()
    };
    let url = server.url("http", "127.0.0.1");
    assert_eq!(d.open(&url).await, Err(DownloadError::Timeout));
    let mut buf = [0u8; 10];
    assert_eq!(
        d.read_chunk(&url, 0, &mut buf).await,
        Err(DownloadError::Timeout)
    );
}

#[tokio::test]
async fn an_object_over_the_limit_is_refused() {
    let server = Server::start(object(10_000), None);
    let d = HttpDownloader {
        config: HttpDownloaderConfig {
            max_object_len: 9_999,
            ..plain().config
        },
        ..plain()
    };
    let url = server.url("http", "127.0.0.1");
    assert_eq!(d.open(&url).await, Err(DownloadError::Other));
    let mut buf = [0u8; 10];
    assert_eq!(
        d.read_chunk(&url, 0, &mut buf).await,
        Err(DownloadError::Other)
    );
}

#[tokio::test]
async fn bad_urls_and_closed_ports() {
    let d = plain();
    let mut buf = [0u8; 10];
    for url in ["ftp://127.0.0.1/x", "not a url", "/relative/path"] {
        assert_eq!(d.open(url).await, Err(DownloadError::Other), "{url}");
    }
    // Nothing listening: a link problem, worth retrying.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/x");
    assert_eq!(
        d.read_chunk(&url, 0, &mut buf).await,
        Err(DownloadError::Interrupted)
    );
}

/// A CA (PEM) and a server configuration whose certificate it signed for `names`.
fn test_pki(names: &[&str]) -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "twinrig test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (ca.pem(), Arc::new(config))
}

#[tokio::test]
async fn https_with_a_private_ca() {
    let (ca_pem, server_config) = test_pki(&["localhost", "127.0.0.1"]);
    let data = object(20_000);
    let server = Server::start(data.clone(), Some(server_config));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let d = HttpDownloader::new(HttpDownloaderConfig {
        ca_file: Some(ca_file),
        os_roots: false,
        ..HttpDownloaderConfig::default()
    })
    .unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let url = server.url("https", host);
        assert_eq!(read_all(&d, &url, 4096).await, data, "{host}");
    }
    // Resume over TLS after a drop.
    server.set(Mode::DropAfter(700));
    let url = server.url("https", "localhost");
    let mut buf = vec![0u8; 4096];
    assert_eq!(d.read_chunk(&url, 100, &mut buf).await, Ok(700));
    assert_eq!(buf[..700], data[100..800]);
    assert_eq!(d.read_chunk(&url, 800, &mut buf).await, Ok(4096));
    assert_eq!(buf, data[800..4896]);

    // A server whose certificate another CA signed is refused, for good.
    let (other_ca, _) = test_pki(&["localhost"]);
    let other_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_file, other_ca).unwrap();
    let stranger = HttpDownloader::new(HttpDownloaderConfig {
        ca_file: Some(other_file),
        os_roots: false,
        ..HttpDownloaderConfig::default()
    })
    .unwrap();
    assert_eq!(stranger.open(&url).await, Err(DownloadError::Other));
}

#[test]
fn a_missing_or_empty_ca_file_is_a_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = HttpDownloader::new(HttpDownloaderConfig {
        ca_file: Some(missing.clone()),
        os_roots: false,
        ..HttpDownloaderConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = HttpDownloader::new(HttpDownloaderConfig {
        ca_file: Some(empty),
        os_roots: false,
        ..HttpDownloaderConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("empty.pem"), "{err}");
}
