//! AWS Signature Version 4, checked on the server side: the live twin's HTTP
//! APIs accept a request only if it is signed with the secret of an access
//! key the server knows, as AWS does (a wrong secret is refused).
//!
//! The canonical request is the one botocore and the Rust SDK build for
//! restJson1 services (not S3): the path as sent, URI-encoded once more
//! except `/`; the query's keys and values decoded and encoded again,
//! sorted; the signed headers, lowercase, values trimmed with inner runs of
//! spaces collapsed; the hex SHA-256 of the body. The request's time is not
//! compared with the clock (AWS allows 5 minutes of skew; a local twin does
//! not check it: documented deviation).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The parts of an HTTP request the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The query string as sent, without `?` (empty if none).
    pub query: &'a str,
    /// Every header, as sent.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

/// An access key and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

/// Why a request is refused, with AWS's error code for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header, or not a SigV4 one.
    #[error("MissingAuthenticationTokenException: Missing Authentication Token")]
    Missing,
    /// The header does not parse.
    #[error("IncompleteSignatureException: {0}")]
    Incomplete(String),
    /// An access key the server does not know.
    #[error("UnrecognizedClientException: The security token included in the request is invalid.")]
    UnknownKey,
    /// The signature does not match.
    #[error(
        "InvalidSignatureException: The request signature we calculated does not match the \
         signature you provided. Check your AWS Secret Access Key and signing method. Consult \
         the service documentation for details."
    )]
    Mismatch,
}

impl SigV4Error {
    /// AWS's error code (the `x-amzn-ErrorType` header).
    pub fn code(&self) -> &'static str {
        match self {
            SigV4Error::Missing => "MissingAuthenticationTokenException",
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::UnknownKey => "UnrecognizedClientException",
            SigV4Error::Mismatch => "InvalidSignatureException",
        }
    }

    /// The message, without the code.
    pub fn message(&self) -> String {
        let text = self.to_string();
        text.split_once(": ")
            .map_or(text.clone(), |(_, m)| m.to_owned())
    }
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key_id: String,
    /// `yyyymmdd/region/service/aws4_request`.
    pub scope: String,
    /// The signing service in the scope (`iot`, `iotdata`, ...).
    pub service: String,
    /// Lowercase header names, `;`-separated, as signed.
    pub signed_headers: String,
    /// Hex signature.
    pub signature: String,
}

/// Reads the `Authorization` header of `request`.
pub fn authorization(request: &SignedRequest<'_>) -> Result<Authorization, SigV4Error> {
    let value = header(request.headers, "authorization").ok_or(SigV4Error::Missing)?;
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or(SigV4Error::Missing)?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| SigV4Error::Incomplete(format!("`{part}` is not key=value")))?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let credential = credential.ok_or_else(|| SigV4Error::Incomplete("no Credential".into()))?;
    let (access_key_id, scope) = credential
        .split_once('/')
        .ok_or_else(|| SigV4Error::Incomplete("Credential has no scope".into()))?;
    let scope_parts: Vec<&str> = scope.split('/').collect();
    if scope_parts.len() != 4 || scope_parts[3] != "aws4_request" {
        return Err(SigV4Error::Incomplete(format!(
            "Credential scope `{scope}` is not date/region/service/aws4_request"
        )));
    }
    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        scope: scope.to_owned(),
        service: scope_parts[2].to_owned(),
        signed_headers: signed_headers
            .ok_or_else(|| SigV4Error::Incomplete("no SignedHeaders".into()))?
            .to_owned(),
        signature: signature
            .ok_or_else(|| SigV4Error::Incomplete("no Signature".into()))?
            .to_owned(),
    })
}

/// Checks `request`'s signature against `known` credentials; returns the
/// parsed authorization (its scope names the service) when it holds.
pub fn verify(
    request: &SignedRequest<'_>,
    known: &[Credentials],
) -> Result<Authorization, SigV4Error> {
    let auth = authorization(request)?;
    let credentials = known
        .iter()
        .find(|c| c.access_key_id == auth.access_key_id)
        .ok_or(SigV4Error::UnknownKey)?;
    let amz_date = header(request.headers, "x-amz-date")
        .ok_or_else(|| SigV4Error::Incomplete("no X-Amz-Date".into()))?;
    let expected = signature(request, &auth, amz_date, &credentials.secret_access_key);
    // Compared as bytes of equal length without an early exit.
    let given = auth.signature.as_bytes();
    let same = given.len() == expected.len()
        && given
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(auth)
    } else {
        Err(SigV4Error::Mismatch)
    }
}

/// The hex signature of `request` under `secret` (what a client computes).
pub fn signature(
    request: &SignedRequest<'_>,
    auth: &Authorization,
    amz_date: &str,
    secret: &str,
) -> String {
    let canonical = canonical_request(request, &auth.signed_headers);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
        auth.scope,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in auth.scope.split('/') {
        key = hmac(&key, part.as_bytes());
    }
    hex::encode(hmac(&key, string_to_sign.as_bytes()))
}

fn canonical_request(request: &SignedRequest<'_>, signed_headers: &str) -> String {
    let canonical_headers: String = signed_headers
        .split(';')
        .map(|name| {
            let values: Vec<String> = request
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect();
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        encode(request.path, true),
        canonical_query(request.query),
        canonical_headers,
        signed_headers,
        hex::encode(Sha256::digest(request.body))
    )
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(&decode(k), false), encode(&decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes every byte but `A-Z a-z 0-9 - _ . ~` (and `/` when `path`).
fn encode(text: &str, path: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (path && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes (`+` stays `+`); invalid escapes stay as written.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example (IAM ListUsers, "Create a signed AWS API
    /// request" in the IAM user guide): secret
    /// `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, 2015-08-30T12:36:00Z; its
    /// canonical request hashes to f536975d...1a59, as the guide shows.
    #[test]
    fn the_aws_documentation_example_verifies() {
        let headers = vec![
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            ("Host".to_owned(), "iam.amazonaws.com".to_owned()),
            ("X-Amz-Date".to_owned(), "20150830T123600Z".to_owned()),
            (
                "Authorization".to_owned(),
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
                    .to_owned(),
            ),
        ];
        let request = SignedRequest {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let known = [Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        }];
        let auth = verify(&request, &known).unwrap();
        assert_eq!(auth.service, "iam");
        let wrong = [Credentials {
            secret_access_key: "not-the-secret".into(),
            ..known[0].clone()
        }];
        assert_eq!(verify(&request, &wrong), Err(SigV4Error::Mismatch));
        let other = [Credentials {
            access_key_id: "SOMEONE".into(),
            ..known[0].clone()
        }];
        assert_eq!(verify(&request, &other), Err(SigV4Error::UnknownKey));
        // A changed body no longer matches.
        let changed = SignedRequest {
            body: b"x",
            ..request
        };
        assert_eq!(verify(&changed, &known), Err(SigV4Error::Mismatch));
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        for value in [
            "",
            "Basic abc",
            "AWS4-HMAC-SHA256 ",
            "AWS4-HMAC-SHA256 Credential=x",
            "AWS4-HMAC-SHA256 Credential=x/y, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=x/a/b/c/aws4_request, SignedHeaders=host",
        ] {
            let headers = vec![("Authorization".to_owned(), value.to_owned())];
            let request = SignedRequest {
                method: "GET",
                path: "/",
                query: "",
                headers: &headers,
                body: b"",
            };
            assert!(verify(&request, &[]).is_err(), "{value}");
        }
        assert_eq!(decode("%24aws%2Fx%zz%4"), "$aws/x%zz%4");
    }
}
