//! Certificates and policies as AWS IoT's control plane keeps them: each
//! certificate has a status, the things it is attached to
//! (AttachThingPrincipal) and the policies attached to it (AttachPolicy);
//! policies are named documents (CreatePolicy). The MQTT endpoint asks it
//! who a connection is and what it may do.

use std::collections::{BTreeMap, BTreeSet};

use crate::identity::{CertificateStatus, certificate_arn};
use crate::policy::{Action, Policy, Principal, allows};

/// Why a call was refused, as AWS names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificatesError {
    /// `ResourceNotFoundException` (404).
    #[error("ResourceNotFoundException: {0}")]
    ResourceNotFound(String),
    /// `ResourceAlreadyExistsException` (409).
    #[error("ResourceAlreadyExistsException: {0}")]
    ResourceAlreadyExists(String),
    /// `MalformedPolicyException` (400).
    #[error("MalformedPolicyException: {0}")]
    MalformedPolicy(String),
    /// `CertificateStateException` (406): a revoked certificate stays revoked.
    #[error("CertificateStateException: {0}")]
    CertificateState(String),
    /// `InvalidRequestException` (400).
    #[error("InvalidRequestException: {0}")]
    InvalidRequest(String),
}

impl CertificatesError {
    /// The exception name and the HTTP status AWS answers with.
    pub fn name_and_status(&self) -> (&'static str, u16) {
        match self {
            CertificatesError::ResourceNotFound(_) => ("ResourceNotFoundException", 404),
            CertificatesError::ResourceAlreadyExists(_) => ("ResourceAlreadyExistsException", 409),
            CertificatesError::MalformedPolicy(_) => ("MalformedPolicyException", 400),
            CertificatesError::CertificateState(_) => ("CertificateStateException", 406),
            CertificatesError::InvalidRequest(_) => ("InvalidRequestException", 400),
        }
    }

    /// The message without the exception name.
    pub fn message(&self) -> &str {
        match self {
            CertificatesError::ResourceNotFound(m)
            | CertificatesError::ResourceAlreadyExists(m)
            | CertificatesError::MalformedPolicy(m)
            | CertificatesError::CertificateState(m)
            | CertificatesError::InvalidRequest(m) => m,
        }
    }
}

/// One certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Certificate {
    /// `arn:aws:iot:{region}:{account}:cert/{id}`.
    pub arn: String,
    /// ACTIVE, INACTIVE or REVOKED.
    pub status: CertificateStatus,
    /// The certificate, PEM (empty when only its id is known).
    pub pem: String,
    /// Things it is attached to.
    pub things: BTreeSet<String>,
    /// Names of the policies attached to it.
    pub policies: Vec<String>,
}

/// What [`CertificateRegistry::snapshot`] keeps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertificatesSnapshot {
    certificates: BTreeMap<String, Certificate>,
    /// Name -> document.
    policies: BTreeMap<String, String>,
}

/// Certificates (by id) and policies (by name) of one account and region.
#[derive(Debug, Clone, Default)]
pub struct CertificateRegistry {
    region: String,
    account_id: String,
    certificates: BTreeMap<String, Certificate>,
    policies: BTreeMap<String, (String, Policy)>,
}

impl CertificateRegistry {
    /// An empty registry of an account in a region.
    pub fn new(region: &str, account_id: &str) -> CertificateRegistry {
        CertificateRegistry {
            region: region.to_owned(),
            account_id: account_id.to_owned(),
            ..CertificateRegistry::default()
        }
    }

    /// Every certificate and policy (policies as their documents).
    pub fn snapshot(&self) -> CertificatesSnapshot {
        CertificatesSnapshot {
            certificates: self.certificates.clone(),
            policies: self
                .policies
                .iter()
                .map(|(name, (text, _))| (name.clone(), text.clone()))
                .collect(),
        }
    }

    /// Adds a [`CertificateRegistry::snapshot`]'s contents (what it names
    /// replaces what is here).
    pub fn restore(&mut self, snapshot: CertificatesSnapshot) -> Result<(), CertificatesError> {
        for (name, text) in snapshot.policies {
            let policy = Policy::parse(&text)
                .map_err(|e| CertificatesError::MalformedPolicy(format!("{name}: {e}")))?;
            self.policies.insert(name, (text, policy));
        }
        self.certificates.extend(snapshot.certificates);
        Ok(())
    }

    /// The region and account in ARNs.
    pub fn region_and_account(&self) -> (&str, &str) {
        (&self.region, &self.account_id)
    }

    /// Registers a certificate (CreateKeysAndCertificate's bookkeeping, or a
    /// certificate `twinrig certs` issued).
    pub fn register(&mut self, id: &str, pem: &str, status: CertificateStatus) -> &Certificate {
        let arn = certificate_arn(&self.region, &self.account_id, id);
        self.certificates
            .entry(id.to_owned())
            .or_insert_with(|| Certificate {
                arn,
                status,
                pem: pem.to_owned(),
                things: BTreeSet::new(),
                policies: Vec::new(),
            })
    }

    /// The certificate with this id.
    pub fn get(&self, id: &str) -> Option<&Certificate> {
        self.certificates.get(id)
    }

    /// Every certificate, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Certificate)> {
        self.certificates.iter()
    }

    fn by_id_or_arn(&mut self, id_or_arn: &str) -> Result<&mut Certificate, CertificatesError> {
        let id = id_or_arn
            .rsplit_once(":cert/")
            .map_or(id_or_arn, |(_, id)| id);
        self.certificates.get_mut(id).ok_or_else(|| {
            CertificatesError::ResourceNotFound(format!("Certificate {id} does not exist"))
        })
    }

    /// UpdateCertificate: ACTIVE <-> INACTIVE, or REVOKED for good.
    pub fn update_status(
        &mut self,
        id: &str,
        status: CertificateStatus,
    ) -> Result<(), CertificatesError> {
        let cert = self.by_id_or_arn(id)?;
        if cert.status == CertificateStatus::Revoked && status != CertificateStatus::Revoked {
            return Err(CertificatesError::CertificateState(format!(
                "Certificate {id} is revoked and cannot change status"
            )));
        }
        cert.status = status;
        Ok(())
    }

    /// AttachThingPrincipal: the certificate (ARN) to a thing. Whether the
    /// thing exists is the caller's check (the thing registry).
    pub fn attach_thing(
        &mut self,
        certificate: &str,
        thing: &str,
    ) -> Result<(), CertificatesError> {
        self.by_id_or_arn(certificate)?
            .things
            .insert(thing.to_owned());
        Ok(())
    }

    /// CreatePolicy: a named policy document (the JSON text).
    pub fn create_policy(
        &mut self,
        name: &str,
        document: &str,
    ) -> Result<String, CertificatesError> {
        let valid_name = (1..=128).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b));
        if !valid_name {
            return Err(CertificatesError::InvalidRequest(format!(
                "policy name `{name}` must be 1-128 characters of a-z A-Z 0-9 + = , . @ - _"
            )));
        }
        if self.policies.contains_key(name) {
            return Err(CertificatesError::ResourceAlreadyExists(format!(
                "Policy {name} already exists"
            )));
        }
        let policy = Policy::parse(document)
            .map_err(|e| CertificatesError::MalformedPolicy(e.to_string()))?;
        self.policies
            .insert(name.to_owned(), (document.to_owned(), policy));
        Ok(format!(
            "arn:aws:iot:{}:{}:policy/{name}",
            self.region, self.account_id
        ))
    }

    /// A policy made outside the API (the endpoint's `--policy`, or the
    /// default thing policy), under `name`.
    pub fn insert_policy(&mut self, name: &str, document: &str, policy: Policy) {
        self.policies
            .insert(name.to_owned(), (document.to_owned(), policy));
    }

    /// AttachPolicy: a policy to a certificate (by ARN).
    pub fn attach_policy(&mut self, policy: &str, target: &str) -> Result<(), CertificatesError> {
        if !self.policies.contains_key(policy) {
            return Err(CertificatesError::ResourceNotFound(format!(
                "Policy {policy} does not exist"
            )));
        }
        if !target.contains(":cert/") {
            return Err(CertificatesError::InvalidRequest(format!(
                "target {target} is not a certificate ARN (thing groups and Cognito identities are not served)"
            )));
        }
        let cert = self.by_id_or_arn(target)?;
        if !cert.policies.iter().any(|p| p == policy) {
            cert.policies.push(policy.to_owned());
        }
        Ok(())
    }

    /// Who a connection presenting certificate `id` as `client_id` is, if
    /// the certificate is registered and ACTIVE and its policies allow
    /// `iot:Connect` on the client id. The connection's thing is an attached
    /// thing named as the client id (AWS's rule for a non-exclusive
    /// attachment).
    pub fn connect(&self, id: &str, client_id: &str) -> Option<Principal> {
        let cert = self.certificates.get(id)?;
        if cert.status != CertificateStatus::Active {
            return None;
        }
        let who = Principal {
            client_id: client_id.to_owned(),
            thing_name: cert
                .things
                .contains(client_id)
                .then(|| client_id.to_owned()),
            region: self.region.clone(),
            account_id: self.account_id.clone(),
        };
        self.allows(id, &who, Action::Connect, client_id)
            .then_some(who)
    }

    /// Whether the policies attached to certificate `id` allow `who`
    /// `action` on `object` (a certificate without policies may do nothing).
    pub fn allows(&self, id: &str, who: &Principal, action: Action, object: &str) -> bool {
        let Some(cert) = self.certificates.get(id) else {
            return false;
        };
        let policies: Vec<Policy> = cert
            .policies
            .iter()
            .filter_map(|name| self.policies.get(name).map(|(_, p)| p.clone()))
            .collect();
        allows(&policies, who, action, object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DEFAULT_THING_POLICY;

    fn registry() -> CertificateRegistry {
        let mut r = CertificateRegistry::new("us-east-1", "123456789012");
        r.insert_policy("default", DEFAULT_THING_POLICY, Policy::default_thing());
        r.register("c1", "", CertificateStatus::Active);
        r
    }

    #[test]
    fn a_certificate_connects_only_when_active_attached_and_allowed() {
        let mut r = registry();
        // No policy attached: nothing is allowed.
        assert_eq!(r.connect("c1", "t1"), None);
        r.attach_policy("default", "arn:aws:iot:us-east-1:123456789012:cert/c1")
            .unwrap();
        // The default policy wants the attached thing's name as client id.
        assert_eq!(r.connect("c1", "t1"), None);
        r.attach_thing("arn:aws:iot:us-east-1:123456789012:cert/c1", "t1")
            .unwrap();
        let who = r.connect("c1", "t1").unwrap();
        assert_eq!(who.thing_name.as_deref(), Some("t1"));
        assert!(r.allows("c1", &who, Action::Publish, "$aws/things/t1/shadow/update"));
        assert!(!r.allows("c1", &who, Action::Publish, "$aws/things/t2/shadow/update"));
        assert_eq!(r.connect("c1", "t2"), None);
        assert_eq!(r.connect("unknown", "t1"), None);
        r.update_status("c1", CertificateStatus::Inactive).unwrap();
        assert_eq!(r.connect("c1", "t1"), None);
        r.update_status("c1", CertificateStatus::Active).unwrap();
        assert!(r.connect("c1", "t1").is_some());
        r.update_status("c1", CertificateStatus::Revoked).unwrap();
        let e = r
            .update_status("c1", CertificateStatus::Active)
            .unwrap_err();
        assert_eq!(e.name_and_status(), ("CertificateStateException", 406));
    }

    #[test]
    fn policies_are_named_documents_with_aws_errors() {
        let mut r = registry();
        let arn = r
            .create_policy("p1", r#"{"Version":"2012-10-17","Statement":[]}"#)
            .unwrap();
        assert_eq!(arn, "arn:aws:iot:us-east-1:123456789012:policy/p1");
        let again = r.create_policy("p1", "{}").unwrap_err();
        assert_eq!(again.name_and_status().1, 409);
        let bad = r.create_policy("p2", "not json").unwrap_err();
        assert_eq!(bad.name_and_status().0, "MalformedPolicyException");
        let name = r.create_policy("bad name", "{}").unwrap_err();
        assert_eq!(name.name_and_status().1, 400);
        let missing = r.attach_policy("nope", "arn:aws:iot:us-east-1:1:cert/c1");
        assert_eq!(missing.unwrap_err().name_and_status().1, 404);
        let group = r.attach_policy("p1", "arn:aws:iot:us-east-1:1:thinggroup/g");
        assert_eq!(group.unwrap_err().name_and_status().1, 400);
        let unknown = r.attach_policy("p1", "arn:aws:iot:us-east-1:1:cert/zz");
        assert_eq!(unknown.unwrap_err().name_and_status().1, 404);
    }
}
