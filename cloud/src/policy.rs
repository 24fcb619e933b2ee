//! AWS IoT policies: the JSON documents, and their evaluation for the MQTT
//! actions (reference: aws-iot-core-endpoint.md §2).
//!
//! IAM's logic: default deny; an Allow that matches allows; any matching
//! Deny beats every Allow. `Action` and `Resource` are a string or a list;
//! resources are ARNs matched as globs (`*` any run of characters, across
//! `/`; `?` one character) after the policy variables
//! `${iot:ClientId}` and `${iot:Connection.Thing.ThingName}` are put in. A
//! variable that cannot be resolved stays as written, so its statement
//! matches nothing (as AWS leaves it unsubstituted). Conditions are not
//! evaluated: a statement with a `Condition` never matches (documented
//! deviation).

use serde::Deserialize;

/// The policy `serve cloud` attaches to every certificate unless told
/// otherwise: a thing connects as itself and uses only topics that carry its
/// name as a level (`$aws/things/{thing}/...`, `the-project/.../{thing}/...`,
/// `{thing}/...`).
pub const DEFAULT_THING_POLICY: &str = include_str!("../policies/default-thing.json");

/// An MQTT action a policy allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// CONNECT, on `client/{clientId}`.
    Connect,
    /// PUBLISH, on `topic/{topic}`.
    Publish,
    /// SUBSCRIBE, on `topicfilter/{filter}`.
    Subscribe,
    /// A delivery to the client, on `topic/{topic}`.
    Receive,
    /// A PUBLISH with RETAIN (needs `Publish` too), on `topic/{topic}`.
    RetainPublish,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Connect => "iot:Connect",
            Action::Publish => "iot:Publish",
            Action::Subscribe => "iot:Subscribe",
            Action::Receive => "iot:Receive",
            Action::RetainPublish => "iot:RetainPublish",
        }
    }

    fn resource_type(self) -> &'static str {
        match self {
            Action::Connect => "client",
            Action::Publish | Action::Receive | Action::RetainPublish => "topic",
            Action::Subscribe => "topicfilter",
        }
    }
}

/// Who is asking: what the policy variables resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The MQTT client id.
    pub client_id: String,
    /// The thing attached to the certificate when the client id is its name
    /// (`iot:Connection.Thing.ThingName`); None otherwise.
    pub thing_name: Option<String>,
    /// The region in ARNs.
    pub region: String,
    /// The account in ARNs.
    pub account_id: String,
}

/// A policy document.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `2012-10-17`.
    #[serde(rename = "Version")]
    pub version: String,
    /// The statements (one object or a list).
    #[serde(rename = "Statement")]
    pub statements: Statements,
}

/// `Statement`: one object or a list of them, as IAM takes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Statements {
    /// One statement.
    One(Box<Statement>),
    /// Several.
    Many(Vec<Statement>),
}

impl Statements {
    /// Every statement.
    pub fn as_slice(&self) -> &[Statement] {
        match self {
            Statements::One(s) => std::slice::from_ref(s.as_ref()),
            Statements::Many(v) => v,
        }
    }
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Allow or Deny.
    #[serde(rename = "Effect")]
    pub effect: Effect,
    /// Actions (`iot:Publish`, `iot:*`, ...).
    #[serde(rename = "Action")]
    pub actions: OneOrMany,
    /// Resource ARNs (globs).
    #[serde(rename = "Resource")]
    pub resources: OneOrMany,
    /// IAM conditions: not evaluated; such a statement never matches.
    #[serde(rename = "Condition", default)]
    pub condition: Option<serde_json::Value>,
    /// An optional statement id.
    #[serde(rename = "Sid", default)]
    pub sid: Option<String>,
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Effect {
    /// Allows what it matches (unless a Deny matches too).
    Allow,
    /// Denies what it matches, whatever allows it.
    Deny,
}

/// A string or a list of strings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    fn iter(&self) -> impl Iterator<Item = &str> {
        let items: &[String] = match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        };
        items.iter().map(String::as_str)
    }
}

/// Why a policy document does not read.
#[derive(Debug, thiserror::Error)]
#[error("not an AWS IoT policy document: {0}")]
pub struct PolicyError(#[from] serde_json::Error);

impl Policy {
    /// Reads a policy document.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        Ok(serde_json::from_str(text)?)
    }

    /// The default thing policy ([`DEFAULT_THING_POLICY`]).
    pub fn default_thing() -> Policy {
        // The shipped document is checked by a test.
        Policy::parse(DEFAULT_THING_POLICY).unwrap_or(Policy {
            version: "2012-10-17".into(),
            statements: Statements::Many(Vec::new()),
        })
    }
}

/// Whether `policies` allow `who` to do `action` on `object` (a client id,
/// topic or topic filter).
pub fn allows(policies: &[Policy], who: &Principal, action: Action, object: &str) -> bool {
    let arn = format!(
        "arn:aws:iot:{}:{}:{}/{object}",
        who.region,
        who.account_id,
        action.resource_type()
    );
    let mut allowed = false;
    for s in policies.iter().flat_map(|p| p.statements.as_slice()) {
        if s.condition.is_some() {
            continue;
        }
        // Action names are case-insensitive in IAM.
        let acts = s
            .actions
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), &action.name().to_ascii_lowercase()));
        if !acts {
            continue;
        }
        let hits = s
            .resources
            .iter()
            .filter_map(|r| substitute(r, who))
            .any(|r| glob(&r, &arn));
        if hits {
            match s.effect {
                Effect::Deny => return false,
                Effect::Allow => allowed = true,
            }
        }
    }
    allowed
}

/// Puts the variables in; None when one cannot be resolved (the statement's
/// resource then matches nothing).
fn substitute(resource: &str, who: &Principal) -> Option<String> {
    let mut out = resource.replace("${iot:ClientId}", &who.client_id);
    if out.contains("${iot:Connection.Thing.ThingName}") {
        out = out.replace(
            "${iot:Connection.Thing.ThingName}",
            who.thing_name.as_deref()?,
        );
    }
    Some(out)
}

/// IAM-style glob: `*` any run (also across `/`), `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point (linear in practice).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thing(name: &str) -> Principal {
        Principal {
            client_id: name.into(),
            thing_name: Some(name.into()),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        }
    }

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a*", "a/b/c"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(!glob("abc", "abcd"));
        assert!(glob("*", ""));
        assert!(glob("*/x/*", "$aws/things/x/shadow"));
        assert!(!glob("*/x/*", "$aws/things/xy/shadow"));
    }

    #[test]
    fn the_default_policy_keeps_a_thing_to_its_own_name_and_topics() {
        let p = [Policy::default_thing()];
        assert!(
            !p[0].statements.as_slice().is_empty(),
            "the shipped default policy reads"
        );
        let me = thing("feeder-001");
        assert!(allows(&p, &me, Action::Connect, "feeder-001"));
        assert!(!allows(&p, &me, Action::Connect, "feeder-002"));
        for own in [
            "$aws/things/feeder-001/shadow/update",
            "$aws/things/feeder-001/jobs/notify-next",
            "the-project/sphero-rvr/feeder-001/action",
            "feeder-001/state",
        ] {
            assert!(allows(&p, &me, Action::Publish, own), "{own}");
            assert!(allows(&p, &me, Action::Receive, own), "{own}");
            assert!(allows(&p, &me, Action::RetainPublish, own), "{own}");
        }
        for other in [
            "$aws/things/feeder-002/shadow/update",
            "the-project/sphero-rvr/feeder-0011/action",
            "cat-feeder/action",
        ] {
            assert!(!allows(&p, &me, Action::Publish, other), "{other}");
            assert!(!allows(&p, &me, Action::Receive, other), "{other}");
            assert!(!allows(&p, &me, Action::RetainPublish, other), "{other}");
        }
        assert!(allows(
            &p,
            &me,
            Action::Subscribe,
            "$aws/things/feeder-001/shadow/#"
        ));
        assert!(!allows(
            &p,
            &me,
            Action::Subscribe,
            "$aws/things/+/shadow/#"
        ));
        assert!(!allows(&p, &me, Action::Subscribe, "#"));
        // Without a thing attached, the thing variable resolves to nothing.
        let anonymous = Principal {
            thing_name: None,
            ..thing("feeder-001")
        };
        assert!(!allows(&p, &anonymous, Action::Connect, "feeder-001"));
    }

    #[test]
    fn a_deny_beats_every_allow_and_actions_take_wildcards() {
        let p = [Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"iot:*","Resource":"*"},
                {"Effect":"Deny","Action":["iot:Publish"],"Resource":"arn:aws:iot:*:*:topic/secret/*"},
                {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/secret/ok","Condition":{"Bool":{"x":"true"}}}
            ]}"#,
        )
        .unwrap()];
        let me = thing("hub");
        assert!(allows(&p, &me, Action::Publish, "a/b"));
        assert!(allows(&p, &me, Action::Subscribe, "#"));
        assert!(!allows(&p, &me, Action::Publish, "secret/ok"));
        assert!(allows(&p, &me, Action::Receive, "secret/ok"));
        // One statement as an object; the client-id variable; case-insensitive actions.
        let p = [Policy::parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"IOT:publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/*"}}"#,
        )
        .unwrap()];
        assert!(allows(&p, &me, Action::Publish, "hub/x"));
        assert!(!allows(&p, &me, Action::Publish, "other/x"));
        assert!(!allows(&p, &me, Action::Receive, "hub/x"));
    }

    #[test]
    fn bad_documents_are_errors() {
        for bad in [
            "",
            "[]",
            r#"{"Version":"2012-10-17"}"#,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"iot:*","Resource":"*"}]}"#,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*","Extra":1}]}"#,
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }
}
