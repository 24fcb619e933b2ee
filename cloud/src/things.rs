//! The thing registry: things, thing types and thing groups, with the
//! semantics of AWS IoT's control plane (CreateThing, DescribeThing,
//! ListThings, CreateThingType, CreateThingGroup, AddThingToThingGroup,
//! ListThingGroups, ListThingsInThingGroup) and its error codes.
//!
//! Ids are UUID-shaped, derived from the name with SHA-256, so the same
//! registry has the same ids on every run (AWS's are random).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest page a List call returns (AWS: `maxResults` 1-250).
pub const MAX_RESULTS: usize = 250;

/// Why a registry call was refused, as AWS names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThingsError {
    /// `ResourceNotFoundException` (404).
    #[error("ResourceNotFoundException: {0}")]
    ResourceNotFound(String),
    /// `ResourceAlreadyExistsException` (409).
    #[error("ResourceAlreadyExistsException: {0}")]
    ResourceAlreadyExists(String),
    /// `InvalidRequestException` (400).
    #[error("InvalidRequestException: {0}")]
    InvalidRequest(String),
}

impl ThingsError {
    /// The exception name (`x-amzn-ErrorType`).
    pub fn name(&self) -> &'static str {
        match self {
            ThingsError::ResourceNotFound(_) => "ResourceNotFoundException",
            ThingsError::ResourceAlreadyExists(_) => "ResourceAlreadyExistsException",
            ThingsError::InvalidRequest(_) => "InvalidRequestException",
        }
    }

    /// The HTTP status AWS answers with.
    pub fn status(&self) -> u16 {
        match self {
            ThingsError::ResourceNotFound(_) => 404,
            ThingsError::ResourceAlreadyExists(_) => 409,
            ThingsError::InvalidRequest(_) => 400,
        }
    }

    /// The message without the exception name.
    pub fn message(&self) -> &str {
        match self {
            ThingsError::ResourceNotFound(m)
            | ThingsError::ResourceAlreadyExists(m)
            | ThingsError::InvalidRequest(m) => m,
        }
    }
}

/// A thing (DescribeThing's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thing {
    /// Its name.
    pub thing_name: String,
    /// UUID-shaped id.
    pub thing_id: String,
    /// `arn:aws:iot:{region}:{account}:thing/{name}`.
    pub thing_arn: String,
    /// Its type, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing_type_name: Option<String>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// Bumped by each change.
    pub version: u64,
    /// The client id AWS suggests: the thing's name.
    pub default_client_id: String,
}

/// A thing group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingGroup {
    /// Its name.
    pub thing_group_name: String,
    /// UUID-shaped id.
    pub thing_group_id: String,
    /// `arn:aws:iot:{region}:{account}:thinggroup/{name}`.
    pub thing_group_arn: String,
    /// The parent group, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_group_name: Option<String>,
    /// `thingGroupProperties.thingGroupDescription`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Member things, by name.
    #[serde(skip)]
    pub things: BTreeSet<String>,
}

/// One page of a List call: the items and the token of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in name order.
    pub items: Vec<T>,
    /// Where the next page starts (`nextToken`), if there is one.
    pub next_token: Option<String>,
}

/// What [`ThingRegistry::snapshot`] keeps: every thing, type, group and
/// membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingsSnapshot {
    things: Vec<Thing>,
    thing_types: Vec<String>,
    groups: Vec<GroupSnapshot>,
}

/// A thing group in a [`ThingsSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct GroupSnapshot {
    name: String,
    parent: Option<String>,
    description: Option<String>,
    things: Vec<String>,
}

/// Things, thing types and thing groups of one account and region.
#[derive(Debug, Clone, Default)]
pub struct ThingRegistry {
    region: String,
    account_id: String,
    things: BTreeMap<String, Thing>,
    thing_types: BTreeMap<String, String>,
    groups: BTreeMap<String, ThingGroup>,
}

/// `[a-zA-Z0-9:_-]{1,128}`: AWS's rule for thing, type and group names.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

/// A UUID-shaped id derived from `kind` and `name` (the same every run).
pub(crate) fn uuid_of(kind: &str, name: &str) -> String {
    let h = hex::encode(Sha256::digest(format!("{kind}/{name}")));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn check_name(what: &str, name: &str) -> Result<(), ThingsError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ThingsError::InvalidRequest(format!(
            "{what} `{name}` must be 1-128 characters of a-z, A-Z, 0-9, `:`, `_` and `-`"
        )))
    }
}

/// Takes one page from names in order, starting after `next_token`.
fn page<'a, T: Clone + 'a>(
    items: impl Iterator<Item = (&'a String, T)>,
    next_token: Option<&str>,
    max_results: Option<usize>,
) -> Result<Page<T>, ThingsError> {
    let max = max_results.unwrap_or(MAX_RESULTS);
    if !(1..=MAX_RESULTS).contains(&max) {
        return Err(ThingsError::InvalidRequest(format!(
            "maxResults must be 1-{MAX_RESULTS}, not {max}"
        )));
    }
    let mut out = Vec::new();
    let mut last = None;
    let mut more = false;
    for (name, item) in items {
        if next_token.is_some_and(|t| name.as_str() <= t) {
            continue;
        }
        if out.len() == max {
            more = true;
            break;
        }
        last = Some(name.clone());
        out.push(item);
    }
    Ok(Page {
        items: out,
        next_token: if more { last } else { None },
    })
}

impl ThingRegistry {
    /// An empty registry of an account in a region (for the ARNs).
    pub fn new(region: &str, account_id: &str) -> ThingRegistry {
        ThingRegistry {
            region: region.to_owned(),
            account_id: account_id.to_owned(),
            ..ThingRegistry::default()
        }
    }

    fn arn(&self, kind: &str, name: &str) -> String {
        format!(
            "arn:aws:iot:{}:{}:{kind}/{name}",
            self.region, self.account_id
        )
    }

    /// The name an ARN of `kind` (`thing`, `thinggroup`) names, or the name
    /// itself when it is not an ARN.
    fn name_of<'a>(&self, kind: &str, name_or_arn: &'a str) -> &'a str {
        match name_or_arn.strip_prefix("arn:") {
            Some(rest) => rest
                .split_once(&format!(":{kind}/"))
                .map_or(name_or_arn, |(_, n)| n),
            None => name_or_arn,
        }
    }

    /// Everything in the registry.
    pub fn snapshot(&self) -> ThingsSnapshot {
        ThingsSnapshot {
            things: self.things.values().cloned().collect(),
            thing_types: self.thing_types.keys().cloned().collect(),
            groups: self
                .groups
                .values()
                .map(|g| GroupSnapshot {
                    name: g.thing_group_name.clone(),
                    parent: g.parent_group_name.clone(),
                    description: g.description.clone(),
                    things: g.things.iter().cloned().collect(),
                })
                .collect(),
        }
    }

    /// Adds a [`ThingRegistry::snapshot`]'s contents (what it names
    /// replaces what is here).
    pub fn restore(&mut self, snapshot: ThingsSnapshot) {
        for t in snapshot.thing_types {
            let arn = self.arn("thingtype", &t);
            self.thing_types.insert(t, arn);
        }
        for t in snapshot.things {
            self.things.insert(t.thing_name.clone(), t);
        }
        for g in snapshot.groups {
            let group = ThingGroup {
                thing_group_id: uuid_of("thinggroup", &g.name),
                thing_group_arn: self.arn("thinggroup", &g.name),
                thing_group_name: g.name.clone(),
                parent_group_name: g.parent,
                description: g.description,
                things: g.things.into_iter().collect(),
            };
            self.groups.insert(g.name, group);
        }
    }

    /// CreateThingType: creating an existing type again succeeds.
    pub fn create_thing_type(&mut self, name: &str) -> Result<(String, String), ThingsError> {
        check_name("thingTypeName", name)?;
        let arn = self.arn("thingtype", name);
        self.thing_types.insert(name.to_owned(), arn.clone());
        Ok((arn, uuid_of("thingtype", name)))
    }

    /// ListThingTypes: (name, ARN) pairs.
    pub fn list_thing_types(
        &self,
        next_token: Option<&str>,
        max_results: Option<usize>,
    ) -> Result<Page<(String, String)>, ThingsError> {
        page(
            self.thing_types
                .iter()
                .map(|(name, arn)| (name, (name.clone(), arn.clone()))),
            next_token,
            max_results,
        )
    }

    /// CreateThing. Its type must exist; creating a thing again with the
    /// same type and attributes succeeds, with others it is refused.
    pub fn create_thing(
        &mut self,
        name: &str,
        thing_type: Option<&str>,
        attributes: BTreeMap<String, String>,
    ) -> Result<&Thing, ThingsError> {
        check_name("thingName", name)?;
        if let Some(t) = thing_type
            && !self.thing_types.contains_key(t)
        {
            return Err(ThingsError::ResourceNotFound(format!(
                "Thing type {t} does not exist"
            )));
        }
        if let Some(existing) = self.things.get(name) {
            if existing.thing_type_name.as_deref() != thing_type
                || existing.attributes != attributes
            {
                return Err(ThingsError::ResourceAlreadyExists(format!(
                    "Thing {name} already exists in account with different attributes"
                )));
            }
        } else {
            let thing = Thing {
                thing_name: name.to_owned(),
                thing_id: uuid_of("thing", name),
                thing_arn: self.arn("thing", name),
                thing_type_name: thing_type.map(str::to_owned),
                attributes,
                version: 1,
                default_client_id: name.to_owned(),
            };
            self.things.insert(name.to_owned(), thing);
        }
        Ok(&self.things[name])
    }

    /// DescribeThing.
    pub fn describe_thing(&self, name: &str) -> Result<&Thing, ThingsError> {
        self.things
            .get(name)
            .ok_or_else(|| ThingsError::ResourceNotFound(format!("Thing {name} cannot be found.")))
    }

    /// Whether a thing of that name exists.
    pub fn has_thing(&self, name: &str) -> bool {
        self.things.contains_key(name)
    }

    /// ListThings, filtered by an attribute (name and, optionally, value)
    /// and by type.
    pub fn list_things(
        &self,
        attribute: Option<(&str, Option<&str>)>,
        thing_type: Option<&str>,
        next_token: Option<&str>,
        max_results: Option<usize>,
    ) -> Result<Page<&Thing>, ThingsError> {
        let matches = |t: &Thing| {
            thing_type.is_none_or(|ty| t.thing_type_name.as_deref() == Some(ty))
                && attribute.is_none_or(|(k, v)| {
                    t.attributes
                        .get(k)
                        .is_some_and(|have| v.is_none_or(|want| have == want))
                })
        };
        page(
            self.things.iter().filter(|(_, t)| matches(t)),
            next_token,
            max_results,
        )
    }

    /// CreateThingGroup: its parent must exist; creating a group again with
    /// the same parent and description succeeds.
    pub fn create_thing_group(
        &mut self,
        name: &str,
        parent: Option<&str>,
        description: Option<&str>,
    ) -> Result<&ThingGroup, ThingsError> {
        check_name("thingGroupName", name)?;
        if let Some(p) = parent
            && !self.groups.contains_key(p)
        {
            return Err(ThingsError::ResourceNotFound(format!(
                "Thing group {p} does not exist"
            )));
        }
        if let Some(existing) = self.groups.get(name) {
            if existing.parent_group_name.as_deref() != parent
                || existing.description.as_deref() != description
            {
                return Err(ThingsError::ResourceAlreadyExists(format!(
                    "Thing group {name} already exists with different properties"
                )));
            }
        } else {
            let group = ThingGroup {
                thing_group_name: name.to_owned(),
                thing_group_id: uuid_of("thinggroup", name),
                thing_group_arn: self.arn("thinggroup", name),
                parent_group_name: parent.map(str::to_owned),
                description: description.map(str::to_owned),
                things: BTreeSet::new(),
            };
            self.groups.insert(name.to_owned(), group);
        }
        Ok(&self.groups[name])
    }

    /// AddThingToThingGroup, by name or ARN; adding a member again succeeds.
    pub fn add_thing_to_thing_group(
        &mut self,
        group: &str,
        thing: &str,
    ) -> Result<(), ThingsError> {
        let group = self.name_of("thinggroup", group).to_owned();
        let thing = self.name_of("thing", thing).to_owned();
        self.describe_thing(&thing)?;
        let g = self.groups.get_mut(&group).ok_or_else(|| {
            ThingsError::ResourceNotFound(format!("Thing group {group} cannot be found."))
        })?;
        g.things.insert(thing);
        Ok(())
    }

    /// ListThingGroups: every group, or those under a parent, or those whose
    /// name starts with a prefix.
    pub fn list_thing_groups(
        &self,
        parent: Option<&str>,
        name_prefix: Option<&str>,
        next_token: Option<&str>,
        max_results: Option<usize>,
    ) -> Result<Page<&ThingGroup>, ThingsError> {
        if let Some(p) = parent {
            self.group(p)?;
        }
        page(
            self.groups.iter().filter(|(name, g)| {
                parent.is_none_or(|p| g.parent_group_name.as_deref() == Some(p))
                    && name_prefix.is_none_or(|pre| name.starts_with(pre))
            }),
            next_token,
            max_results,
        )
    }

    fn group(&self, name: &str) -> Result<&ThingGroup, ThingsError> {
        self.groups.get(name).ok_or_else(|| {
            ThingsError::ResourceNotFound(format!("Thing group {name} cannot be found."))
        })
    }

    /// The things in a group, by name; with `recursive`, its subgroups'
    /// things too.
    pub fn things_in_group(
        &self,
        group: &str,
        recursive: bool,
    ) -> Result<BTreeSet<String>, ThingsError> {
        let mut things = self.group(group)?.things.clone();
        if recursive {
            let mut pending = vec![group.to_owned()];
            while let Some(parent) = pending.pop() {
                for child in self
                    .groups
                    .values()
                    .filter(|g| g.parent_group_name.as_deref() == Some(parent.as_str()))
                {
                    things.extend(child.things.iter().cloned());
                    pending.push(child.thing_group_name.clone());
                }
            }
        }
        Ok(things)
    }

    /// ListThingsInThingGroup: thing names.
    pub fn list_things_in_thing_group(
        &self,
        group: &str,
        recursive: bool,
        next_token: Option<&str>,
        max_results: Option<usize>,
    ) -> Result<Page<String>, ThingsError> {
        let things = self.things_in_group(group, recursive)?;
        page(
            things.iter().map(|t| (t, t.clone())),
            next_token,
            max_results,
        )
    }

    /// The things a job's target ARNs name: a thing ARN names itself (it
    /// must exist), a thing group ARN its things and its subgroups' things
    /// at this moment (a SNAPSHOT job).
    pub fn resolve_targets(&self, targets: &[String]) -> Result<Vec<String>, ThingsError> {
        let mut things = BTreeSet::new();
        for target in targets {
            if let Some((_, group)) = target.split_once(":thinggroup/") {
                things.extend(self.things_in_group(group, true)?);
            } else if let Some((_, thing)) = target.split_once(":thing/") {
                self.describe_thing(thing)?;
                things.insert(thing.to_owned());
            } else {
                return Err(ThingsError::InvalidRequest(format!(
                    "target {target} is neither a thing nor a thing group ARN"
                )));
            }
        }
        Ok(things.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ThingRegistry {
        let mut r = ThingRegistry::new("us-east-1", "123456789012");
        r.create_thing_type("pet_feeder").unwrap();
        for t in ["feeder-001", "feeder-002", "lamp-001"] {
            r.create_thing(t, None, BTreeMap::new()).unwrap();
        }
        r
    }

    #[test]
    fn create_thing_is_idempotent_only_with_the_same_configuration() {
        let mut r = registry();
        let attrs = BTreeMap::from([("room".to_owned(), "kitchen".to_owned())]);
        let t = r
            .create_thing("feeder-009", Some("pet_feeder"), attrs.clone())
            .unwrap()
            .clone();
        assert_eq!(
            t.thing_arn,
            "arn:aws:iot:us-east-1:123456789012:thing/feeder-009"
        );
        assert_eq!(t.thing_id.len(), 36);
        assert_eq!(
            r.create_thing("feeder-009", Some("pet_feeder"), attrs)
                .unwrap(),
            &t
        );
        let e = r
            .create_thing("feeder-009", Some("pet_feeder"), BTreeMap::new())
            .unwrap_err();
        assert_eq!(e.name(), "ResourceAlreadyExistsException");
        let e = r
            .create_thing("x", Some("no_such_type"), BTreeMap::new())
            .unwrap_err();
        assert_eq!((e.status(), e.name()), (404, "ResourceNotFoundException"));
        for bad in ["", "has space", "a/b", &"x".repeat(129)] {
            let e = r.create_thing(bad, None, BTreeMap::new()).unwrap_err();
            assert_eq!(e.status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn list_things_filters_and_pages() {
        let mut r = registry();
        let kitchen = BTreeMap::from([("room".to_owned(), "kitchen".to_owned())]);
        r.create_thing("cam-1", Some("pet_feeder"), kitchen)
            .unwrap();
        let names = |p: Page<&Thing>| -> Vec<String> {
            p.items.iter().map(|t| t.thing_name.clone()).collect()
        };
        let first = r.list_things(None, None, None, Some(2)).unwrap();
        assert_eq!(names(first.clone()), ["cam-1", "feeder-001"]);
        assert_eq!(first.next_token.as_deref(), Some("feeder-001"));
        let second = r
            .list_things(None, None, first.next_token.as_deref(), Some(2))
            .unwrap();
        assert_eq!(names(second.clone()), ["feeder-002", "lamp-001"]);
        assert_eq!(second.next_token, None);
        let kitchen = r
            .list_things(Some(("room", Some("kitchen"))), None, None, None)
            .unwrap();
        assert_eq!(names(kitchen), ["cam-1"]);
        let typed = r.list_things(None, Some("pet_feeder"), None, None).unwrap();
        assert_eq!(names(typed), ["cam-1"]);
        assert_eq!(
            r.list_things(None, None, None, Some(0))
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn groups_nest_and_resolve_job_targets() {
        let mut r = registry();
        r.create_thing_group("feeders", None, Some("all feeders"))
            .unwrap();
        r.create_thing_group("kitchen-feeders", Some("feeders"), None)
            .unwrap();
        r.add_thing_to_thing_group("feeders", "feeder-001").unwrap();
        r.add_thing_to_thing_group(
            "arn:aws:iot:us-east-1:123456789012:thinggroup/kitchen-feeders",
            "arn:aws:iot:us-east-1:123456789012:thing/feeder-002",
        )
        .unwrap();
        assert_eq!(
            r.add_thing_to_thing_group("feeders", "nobody")
                .unwrap_err()
                .name(),
            "ResourceNotFoundException"
        );
        assert_eq!(
            r.create_thing_group("orphans", Some("nope"), None)
                .unwrap_err()
                .status(),
            404
        );
        let flat = r
            .list_things_in_thing_group("feeders", false, None, None)
            .unwrap();
        assert_eq!(flat.items, ["feeder-001"]);
        let deep = r
            .list_things_in_thing_group("feeders", true, None, None)
            .unwrap();
        assert_eq!(deep.items, ["feeder-001", "feeder-002"]);
        let children = r
            .list_thing_groups(Some("feeders"), None, None, None)
            .unwrap();
        assert_eq!(children.items.len(), 1);
        assert_eq!(children.items[0].thing_group_name, "kitchen-feeders");
        let targets = r
            .resolve_targets(&[
                "arn:aws:iot:us-east-1:123456789012:thinggroup/feeders".into(),
                "arn:aws:iot:us-east-1:123456789012:thing/lamp-001".into(),
            ])
            .unwrap();
        assert_eq!(targets, ["feeder-001", "feeder-002", "lamp-001"]);
        for bad in [
            "arn:aws:iot:us-east-1:123456789012:thinggroup/none",
            "arn:aws:iot:us-east-1:123456789012:thing/none",
            "feeder-001",
        ] {
            assert!(r.resolve_targets(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
