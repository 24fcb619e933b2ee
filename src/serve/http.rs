//! HTTP/1.1 for `serve cloud`'s AWS APIs: requests read from a
//! connection's buffer with httparse (a `Content-Length` body; keep-alive),
//! responses in AWS's restJson1 shape (`x-amzn-ErrorType` and
//! `{"message": ...}` on errors, as botocore and the Rust SDK read them).

use bytes::BytesMut;

/// Largest request accepted (headers and body).
pub const MAX_REQUEST: usize = 256 * 1024;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path as sent (percent-encoded).
    pub path: String,
    /// The query as sent, without `?`.
    pub query: String,
    /// Every header, as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The path's labels, percent-decoded (`/things/t%241/shadow` ->
    /// `["things", "t$1", "shadow"]`).
    pub fn labels(&self) -> Vec<String> {
        self.path
            .split('/')
            .skip(1)
            .map(twinrig_cloud::sigv4::decode)
            .collect()
    }

    /// A query parameter, percent-decoded (the first, if repeated).
    pub fn param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .find(|(k, _)| twinrig_cloud::sigv4::decode(k) == name)
            .map(|(_, v)| twinrig_cloud::sigv4::decode(v))
    }

    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// Why the bytes are not a request this server takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Not HTTP/1.x.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// Larger than [`MAX_REQUEST`].
    #[error("request larger than {MAX_REQUEST} bytes")]
    TooLarge,
    /// A body without a `Content-Length` (chunked uploads are not taken).
    #[error("a body needs a Content-Length")]
    LengthRequired,
}

/// Takes one whole request off the front of `buf`, if one has arrived.
pub fn take_request(buf: &mut BytesMut) -> Result<Option<Request>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_REQUEST => {
            return Err(HttpError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let header_list: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let find = |name: &str| {
        header_list
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if find("transfer-encoding").is_some() {
        return Err(HttpError::LengthRequired);
    }
    let body_len: usize = match find("content-length") {
        Some(v) => v
            .parse()
            .map_err(|_| HttpError::Malformed(format!("Content-Length `{v}`")))?,
        None => 0,
    };
    if head_len + body_len > MAX_REQUEST {
        return Err(HttpError::TooLarge);
    }
    if buf.len() < head_len + body_len {
        return Ok(None);
    }
    let target = parsed.path.unwrap_or("/").to_owned();
    let method = parsed.method.unwrap_or("GET").to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    let whole = buf.split_to(head_len + body_len);
    Ok(Some(Request {
        method,
        path,
        query,
        headers: header_list,
        body: whole[head_len..].to_vec(),
    }))
}

/// A response with a JSON body.
pub fn json_response(status: u16, body: &serde_json::Value) -> Vec<u8> {
    response(status, &[], body.to_string().as_bytes())
}

/// An AWS error response: the code in `x-amzn-ErrorType` and the body.
pub fn error_response(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({ "message": message, "__type": code }).to_string();
    response(status, &[("x-amzn-ErrorType", code)], body.as_bytes())
}

/// An S3 error response (S3 answers in XML, not in AWS's JSON shape).
pub fn s3_error_response(
    status: u16,
    code: &str,
    message: &str,
    headers: &[(&str, &str)],
) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    bytes_response(status, "application/xml", headers, body.as_bytes())
}

fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    bytes_response(status, "application/json", headers, body)
}

/// A response with any body.
pub fn bytes_response(
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        416 => "Range Not Satisfiable",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// What a `Range` header asks of a body of `len` bytes (RFC 9110 §14):
/// `Ok(None)` for the whole body (no header, or one this server ignores:
/// several ranges, another unit, bad syntax), `Ok(Some((first, last)))`
/// inclusive, `Err(())` when the range starts past the end (416).
#[allow(clippy::result_unit_err)]
pub fn byte_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        // `bytes=-n`: the last n bytes.
        (Err(_), Ok(n)) if first.is_empty() => {
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (Ok(a), Err(_)) if last.is_empty() => (a, len.saturating_sub(1)),
        (Ok(a), Ok(b)) if a <= b => (a, b.min(len.saturating_sub(1))),
        _ => return Ok(None),
    };
    if range.0 >= len {
        return Err(());
    }
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_taken_whole_one_at_a_time() {
        let mut buf = BytesMut::from(
            &b"POST /things/t/shadow?name=n HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GET /a HTTP/1.1\r\n\r\n"[..],
        );
        let r = take_request(&mut buf).unwrap().unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_str()),
            ("POST", "/things/t/shadow", "name=n")
        );
        assert_eq!(r.body, b"{}");
        assert_eq!(r.labels(), ["things", "t", "shadow"]);
        assert_eq!(r.param("name").as_deref(), Some("n"));
        assert_eq!(r.param("qos"), None);
        assert_eq!(r.header("content-length"), Some("2"));
        let r = take_request(&mut buf).unwrap().unwrap();
        assert_eq!(r.path, "/a");
        assert!(take_request(&mut buf).unwrap().is_none());
        // Half a body waits for the rest.
        let mut half = BytesMut::from(&b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab"[..]);
        assert!(take_request(&mut half).unwrap().is_none());
    }

    #[test]
    fn ranges_read_as_rfc_9110_says() {
        assert_eq!(byte_range(None, 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(byte_range(Some("bytes=4-"), 10), Ok(Some((4, 9))));
        assert_eq!(byte_range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(byte_range(Some("bytes=-30"), 10), Ok(Some((0, 9))));
        assert_eq!(byte_range(Some("bytes=8-100"), 10), Ok(Some((8, 9))));
        assert_eq!(byte_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(byte_range(Some("bytes=-0"), 10), Err(()));
        for ignored in [
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=5-2",
            "bytes=x-",
            "bytes",
        ] {
            assert_eq!(byte_range(Some(ignored), 10), Ok(None), "{ignored}");
        }
    }

    #[test]
    fn bad_requests_are_errors() {
        for bad in [
            &b"\x00\x01\x02 garbage\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
        ] {
            assert!(take_request(&mut BytesMut::from(bad)).is_err(), "{bad:?}");
        }
    }
}
