//! Presigned downloads: the firmware registry's images at
//! `/firmware/{type}/{version}/firmware.bin?X-Amz-...`, checked as the
//! scenarios check them (signature, then expiry), with S3's XML errors and
//! `Range` requests (a device resuming a dropped download).

use twinrig_cloud::registry::RegistryError;

use super::{Answer, Api};
use crate::serve::http::{self, Request};

/// The path prefix firmware is served under.
pub(super) const FIRMWARE_PREFIX: &str = "/firmware/";

/// The URL base presigned firmware URLs get on a server at `origin`
/// (`http://127.0.0.1:8443`).
pub fn firmware_base(origin: &str) -> String {
    format!("{origin}{}", FIRMWARE_PREFIX.trim_end_matches('/'))
}

/// Answers a GET of a presigned firmware URL.
pub(super) fn download(request: &Request, api: &Api<'_>) -> Answer {
    let url = format!("{}{}?{}", api.origin, request.path, request.query);
    let registry = api.cloud.registry().borrow();
    let firmware = match registry.fetch(&url, api.cloud.now_s()) {
        Ok(f) => f,
        Err(e) => {
            let (status, code) = match &e {
                RegistryError::BadSignature => (403, "SignatureDoesNotMatch"),
                RegistryError::Expired { .. } => (403, "AccessDenied"),
                RegistryError::NotFound { .. } => (404, "NoSuchKey"),
                _ => (400, "InvalidRequest"),
            };
            return Answer::Now(http::s3_error_response(status, code, &e.to_string(), &[]));
        }
    };
    let image = &firmware.image;
    let len = image.len() as u64;
    let etag = format!("\"{}\"", firmware.sha256);
    Answer::Now(match http::byte_range(request.header("range"), len) {
        Ok(None) => http::bytes_response(
            200,
            "application/octet-stream",
            &[("ETag", &etag), ("Accept-Ranges", "bytes")],
            image,
        ),
        Ok(Some((first, last))) => {
            let content_range = format!("bytes {first}-{last}/{len}");
            // first <= last < len, both from a body already in memory.
            let part = &image[first as usize..=last as usize];
            http::bytes_response(
                206,
                "application/octet-stream",
                &[
                    ("ETag", &etag),
                    ("Accept-Ranges", "bytes"),
                    ("Content-Range", &content_range),
                ],
                part,
            )
        }
        Err(()) => http::s3_error_response(
            416,
            "InvalidRange",
            "The requested range is not satisfiable",
            &[("Content-Range", &format!("bytes */{len}"))],
        ),
    })
}

/// The placeholders AWS IoT Jobs replaces with presigned S3 URLs.
const PLACEHOLDERS: [&str; 2] = [
    "${aws:iot:s3-presigned-url-v2:",
    "${aws:iot:s3-presigned-url:",
];

/// A job document with each `${aws:iot:s3-presigned-url-v2:https://...}`
/// placeholder replaced by a URL presigned now for `expires_s` seconds.
/// The S3 URL (path style `https://s3.{region}.amazonaws.com/{bucket}/{key}`
/// or virtual-host style `https://{bucket}.s3...amazonaws.com/{key}`) must
/// name an image in the firmware registry: `{type}/{version}/firmware.bin`
/// in any bucket.
pub(super) fn presign_placeholders(
    document: &str,
    api: &Api<'_>,
    expires_s: u64,
) -> Result<String, String> {
    let mut out = String::with_capacity(document.len());
    let mut rest = document;
    while let Some((at, prefix)) = PLACEHOLDERS
        .iter()
        .filter_map(|p| rest.find(p).map(|at| (at, *p)))
        .min()
    {
        out.push_str(&rest[..at]);
        let after = &rest[at + prefix.len()..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated placeholder `{prefix}`"))?;
        let s3_url = &after[..end];
        out.push_str(&presign_s3_url(s3_url, api, expires_s)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn presign_s3_url(s3_url: &str, api: &Api<'_>, expires_s: u64) -> Result<String, String> {
    let bad = || {
        format!(
            "`{s3_url}` is not an S3 URL of a firmware image (.../{{type}}/{{version}}/firmware.bin)"
        )
    };
    let (host, path) = s3_url
        .strip_prefix("https://")
        .and_then(|r| r.split_once('/'))
        .ok_or_else(bad)?;
    // Path style puts the bucket first in the path; virtual-host style in the host.
    let key = if host.starts_with("s3.") || host.starts_with("s3-") {
        path.split_once('/').ok_or_else(bad)?.1
    } else {
        path
    };
    let mut parts = key.split('/');
    let (Some(device_type), Some(version), Some("firmware.bin"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    api.cloud
        .registry()
        .borrow()
        .presign(device_type, version, api.cloud.now_s(), expires_s)
        .map_err(|e| e.to_string())
}
