//! Shadow topic names: parsing the request topics devices publish to and
//! building the response topics the service publishes on.
//!
//! AWS IoT (devguide `device-shadow-mqtt`): the prefix is
//! `$aws/things/{thing}/shadow` for the classic (unnamed) shadow and
//! `$aws/things/{thing}/shadow/name/{shadowName}` for a named one; requests go
//! to `{prefix}/get`, `{prefix}/update` and `{prefix}/delete`.

/// Filters that cover every shadow request topic and no response topic, for
/// subscribing the service to the broker: `$aws/things/+/shadow/+` (classic)
/// and `$aws/things/+/shadow/name/+/+` (named). Responses have one level more
/// (`.../get/accepted`), so the service never receives its own output.
pub const REQUEST_FILTERS: [&str; 2] = ["$aws/things/+/shadow/+", "$aws/things/+/shadow/name/+/+"];

/// Longest thing name AWS accepts (model:iot-data `ThingName`).
pub const MAX_THING_NAME: usize = 128;
/// Longest shadow name AWS accepts (model:iot-data `ShadowName`).
pub const MAX_SHADOW_NAME: usize = 64;

/// A shadow operation requested over MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShadowOp {
    /// `.../get`: read the whole document.
    Get,
    /// `.../update`: merge a request state document.
    Update,
    /// `.../delete`: delete the shadow (its version is kept).
    Delete,
}

impl ShadowOp {
    /// The topic level naming the operation.
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowOp::Get => "get",
            ShadowOp::Update => "update",
            ShadowOp::Delete => "delete",
        }
    }

    fn parse(level: &str) -> Option<ShadowOp> {
        match level {
            "get" => Some(ShadowOp::Get),
            "update" => Some(ShadowOp::Update),
            "delete" => Some(ShadowOp::Delete),
            _ => None,
        }
    }
}

/// A request topic, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTopic<'a> {
    /// Thing name.
    pub thing: &'a str,
    /// Shadow name; `None` for the classic shadow.
    pub shadow_name: Option<&'a str>,
    /// Requested operation.
    pub op: ShadowOp,
}

/// Splits a shadow request topic. `None` for anything else: response topics,
/// other `$aws` topics, unknown operations, and names AWS would not accept
/// (thing `[a-zA-Z0-9:_-]{1,128}`, shadow `[$a-zA-Z0-9:_-]{1,64}`).
pub fn parse_request_topic(topic: &str) -> Option<RequestTopic<'_>> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let levels: Vec<&str> = rest.split('/').collect();
    let (thing, shadow_name, op) = match levels.as_slice() {
        [thing, "shadow", op] => (*thing, None, *op),
        [thing, "shadow", "name", name, op] => (*thing, Some(*name), *op),
        _ => return None,
    };
    let op = ShadowOp::parse(op)?;
    if !valid_thing_name(thing) || !shadow_name.is_none_or(valid_shadow_name) {
        return None;
    }
    Some(RequestTopic {
        thing,
        shadow_name,
        op,
    })
}

/// The topic prefix of a shadow (`$aws/things/{thing}/shadow[/name/{name}]`).
pub fn shadow_prefix(thing: &str, shadow_name: Option<&str>) -> String {
    match shadow_name {
        None => format!("$aws/things/{thing}/shadow"),
        Some(name) => format!("$aws/things/{thing}/shadow/name/{name}"),
    }
}

/// Thing names AWS accepts: `[a-zA-Z0-9:_-]{1,128}`.
pub fn valid_thing_name(name: &str) -> bool {
    (1..=MAX_THING_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

/// Shadow names AWS accepts: `[$a-zA-Z0-9:_-]{1,64}`.
pub fn valid_shadow_name(name: &str) -> bool {
    (1..=MAX_SHADOW_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'$' | b':' | b'_' | b'-'))
}
