//! The control plane's certificates and policies: CreateKeysAndCertificate,
//! DescribeCertificate, UpdateCertificate, AttachThingPrincipal,
//! ListThingPrincipals, CreatePolicy and AttachPolicy. They change what the
//! MQTT endpoint accepts at once: a certificate made here connects when it
//! is ACTIVE, attached to its thing and given a policy.

use serde_json::{Value, json};
use twinrig_cloud::certificates::CertificatesError;
use twinrig_cloud::identity::CertificateStatus;

use super::Api;
use crate::serve::http::{self, Request};

type Answer = Result<Vec<u8>, CertificatesError>;

/// Answers a certificates or policies request; None when the request is
/// not one.
pub(super) fn answer(
    method: &str,
    labels: &[&str],
    request: &Request,
    body: &Value,
    api: &mut Api<'_>,
) -> Option<Answer> {
    let served = matches!(
        (method, labels),
        ("POST", ["keys-and-certificate"])
            | ("GET" | "PUT", ["certificates", _])
            | ("GET" | "PUT", ["things", _, "principals"])
            | ("POST", ["policies", _])
            | ("PUT", ["target-policies", _])
    );
    if !served {
        return None;
    }
    let Some(identity) = api.identity.as_deref_mut() else {
        return Some(Err(CertificatesError::InvalidRequest(
            "certificates and policies are served with the MQTT endpoint's identity: start serve cloud with --certs DIR".into(),
        )));
    };
    let ok = |v: Value| Ok(http::json_response(200, &v));
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(match (method, labels) {
        ("POST", ["keys-and-certificate"]) => {
            let Some(ca) = &identity.authority else {
                return Some(Err(CertificatesError::InvalidRequest(
                    "the certificates folder has no root-ca.key to issue certificates with".into(),
                )));
            };
            let (region, account) = identity.certificates.region_and_account();
            let issued = match ca.issue_client("", region, account) {
                Ok(c) => c,
                Err(e) => return Some(Err(CertificatesError::InvalidRequest(e.to_string()))),
            };
            let status = if request.param("setAsActive").as_deref() == Some("true") {
                CertificateStatus::Active
            } else {
                CertificateStatus::Inactive
            };
            identity
                .certificates
                .register(&issued.certificate_id, &issued.certificate_pem, status);
            ok(json!({
                "certificateArn": issued.certificate_arn,
                "certificateId": issued.certificate_id,
                "certificatePem": issued.certificate_pem,
                "keyPair": {
                    "PublicKey": issued.public_key_pem,
                    "PrivateKey": issued.private_key_pem,
                },
            }))
        }
        ("GET", ["certificates", id]) => match identity.certificates.get(id) {
            None => Err(not_found(id)),
            Some(c) => ok(json!({
                "certificateDescription": {
                    "certificateArn": c.arn,
                    "certificateId": id,
                    "status": c.status,
                    "certificatePem": c.pem,
                }
            })),
        },
        ("PUT", ["certificates", id]) => {
            let status = match request.param("newStatus") {
                Some(s) => serde_json::from_value::<CertificateStatus>(json!(s)).map_err(|_| {
                    CertificatesError::InvalidRequest(format!(
                        "newStatus {s} is not ACTIVE, INACTIVE or REVOKED"
                    ))
                }),
                None => Err(CertificatesError::InvalidRequest(
                    "newStatus is required".into(),
                )),
            };
            status
                .and_then(|s| identity.certificates.update_status(id, s))
                .and_then(|()| ok(json!({})))
        }
        ("PUT", ["things", thing, "principals"]) => {
            if !api.things.has_thing(thing) {
                return Some(Err(CertificatesError::ResourceNotFound(format!(
                    "Thing {thing} cannot be found."
                ))));
            }
            match request.header("x-amzn-principal") {
                None => Err(CertificatesError::InvalidRequest(
                    "the principal (a certificate ARN) goes in the x-amzn-principal header".into(),
                )),
                Some(principal) => identity
                    .certificates
                    .attach_thing(principal, thing)
                    .and_then(|()| ok(json!({}))),
            }
        }
        ("GET", ["things", thing, "principals"]) => {
            if !api.things.has_thing(thing) {
                return Some(Err(CertificatesError::ResourceNotFound(format!(
                    "Thing {thing} cannot be found."
                ))));
            }
            let principals: Vec<&str> = identity
                .certificates
                .iter()
                .filter(|(_, c)| c.things.contains(*thing))
                .map(|(_, c)| c.arn.as_str())
                .collect();
            ok(json!({ "principals": principals }))
        }
        ("POST", ["policies", name]) => match text("policyDocument") {
            None => Err(CertificatesError::InvalidRequest(
                "policyDocument (the policy JSON, as a string) is required".into(),
            )),
            Some(document) => identity
                .certificates
                .create_policy(name, &document)
                .and_then(|arn| {
                    ok(json!({
                        "policyName": name,
                        "policyArn": arn,
                        "policyDocument": document,
                        "policyVersionId": "1",
                    }))
                }),
        },
        ("PUT", ["target-policies", name]) => match text("target") {
            None => Err(CertificatesError::InvalidRequest(
                "target (a certificate ARN) is required".into(),
            )),
            Some(target) => identity
                .certificates
                .attach_policy(name, &target)
                .and_then(|()| ok(json!({}))),
        },
        _ => return None,
    })
}

fn not_found(id: &str) -> CertificatesError {
    CertificatesError::ResourceNotFound(format!("Certificate {id} does not exist"))
}
