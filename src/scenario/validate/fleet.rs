//! The checks of a scenario's OTA fleet, its prompts and its jobs.

use std::collections::{HashMap, HashSet};

use twinrig_cloud::jobs::{PathStep, valid_job_id};
use twinrig_cloud::shadow::{MAX_THING_NAME, valid_thing_name};

use super::super::fleet::{
    CreateJobStep, FleetConfig, Group, JobTarget, MAX_BANDWIDTH_BPS, MAX_GROUP_COUNT,
    MAX_IMAGE_BYTES, Version, VersionRef, member_ota_client_id,
};
use super::super::model::Device;
use super::{Checker, P, check_device_id};

impl Checker<'_> {
    pub(super) fn fleet(&mut self, f: &FleetConfig, devices: &[Device], p: &P) {
        let mut firmware_seen: HashMap<&str, usize> = HashMap::new();
        for (i, fw) in f.firmware.iter().enumerate() {
            let fp = p.k("firmware").i(i);
            let what = format!("fleet firmware {} (`{}`)", i + 1, fw.device_type);
            self.type_name(&fw.device_type, &fp.k("type"), &what);
            if let Some(first) = firmware_seen.get(fw.device_type.as_str()) {
                self.err(
                    &fp.k("type"),
                    format!(
                        "{what}: the type is already listed by fleet firmware {}; list all its versions there",
                        first + 1
                    ),
                );
            } else {
                firmware_seen.insert(&fw.device_type, i);
            }
            if fw.versions.is_empty() {
                self.err(
                    &fp.k("versions"),
                    format!("{what}: `versions` must list at least one version"),
                );
            }
            let mut versions = HashSet::new();
            for (j, v) in fw.versions.iter().enumerate() {
                if !versions.insert(v) {
                    self.err(
                        &fp.k("versions").i(j),
                        format!(
                            "{what}: version {v} is listed twice (versions are never overwritten)"
                        ),
                    );
                }
            }
            if fw.size.bytes() == 0 {
                self.err(
                    &fp.k("size"),
                    format!("{what}: `size` must be greater than 0"),
                );
            } else if fw.size.bytes() > MAX_IMAGE_BYTES {
                self.err(
                    &fp.k("size"),
                    format!(
                        "{what}: `size` is at most 16MiB (the largest flash of an ESP32), got {}",
                        fw.size
                    ),
                );
            }
        }

        let mut types_seen: HashMap<&str, usize> = HashMap::new();
        for (i, t) in f.types.iter().enumerate() {
            let tp = p.k("types").i(i);
            let what = format!("fleet type {} (`{}`)", i + 1, t.device_type);
            if let Some(first) = types_seen.get(t.device_type.as_str()) {
                self.err(
                    &tp.k("type"),
                    format!(
                        "{what}: the type is already configured by fleet type {}",
                        first + 1
                    ),
                );
                continue;
            }
            types_seen.insert(&t.device_type, i);
            match f.firmware_for(&t.device_type) {
                None => self.err(
                    &tp.k("type"),
                    format!(
                        "{what}: no `fleet.firmware` for this type; {}",
                        firmware_types(f)
                    ),
                ),
                Some(fw) => {
                    if let Some(r) = &t.recommended
                        && !fw.versions.contains(r)
                    {
                        self.err(
                            &tp.k("recommended"),
                            format!(
                                "{what}: recommended version {r} is not in the firmware of `{}`; versions: {}",
                                t.device_type,
                                version_list(&fw.versions)
                            ),
                        );
                    }
                }
            }
        }

        // Who holds each id: devices first, then the fleet groups in order.
        let mut owners: HashMap<String, String> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), format!("device {}", i + 1)))
            .collect();
        // Member id -> the group it joined.
        let mut member_of: HashMap<&str, usize> = HashMap::new();
        for (i, g) in f.groups.iter().enumerate() {
            let gp = p.k("groups").i(i);
            let what = match (&g.id, &g.members) {
                (Some(id), None) => format!("fleet group {} (`{id}`)", i + 1),
                _ => format!("fleet group {} (`{}`)", i + 1, g.device_type),
            };
            match f.firmware_for(&g.device_type) {
                None => self.err(
                    &gp.k("type"),
                    format!(
                        "{what}: no `fleet.firmware` for type `{}`; {}",
                        g.device_type,
                        firmware_types(f)
                    ),
                ),
                Some(fw) if !fw.versions.contains(&g.version) => self.err(
                    &gp.k("version"),
                    format!(
                        "{what}: type `{}` has no firmware version {} to start on; versions: {}",
                        g.device_type,
                        g.version,
                        version_list(&fw.versions)
                    ),
                ),
                Some(_) => {}
            }
            for (key, v) in [
                ("bad_download", g.faults.bad_download),
                ("boot_failure", g.faults.boot_failure),
                ("offline", g.faults.offline),
                ("power_loss", g.faults.power_loss),
            ] {
                self.unit_interval(
                    v,
                    &gp.k("faults").k(key),
                    &format!("{what}: `faults.{key}`"),
                );
            }
            if let Some(members) = &g.members {
                self.members(
                    g,
                    members,
                    devices,
                    &gp,
                    &what,
                    &mut member_of,
                    &mut owners,
                    i,
                );
                continue;
            }
            let (count, pattern) = match (g.count, &g.id) {
                (Some(count), Some(pattern)) => (count, pattern),
                (None, None) => {
                    self.err(
                        &gp,
                        format!(
                            "{what}: a group needs `count` and `id` (devices the fleet creates) or `members` (scenario devices that join the fleet)"
                        ),
                    );
                    continue;
                }
                (Some(_), None) => {
                    self.err(
                        &gp.k("count"),
                        format!(
                            "{what}: `count` needs an `id` pattern to name the devices, e.g. `id: \"feeder-{{n:03}}\"`"
                        ),
                    );
                    continue;
                }
                (None, Some(_)) => {
                    self.err(
                        &gp.k("id"),
                        format!(
                            "{what}: an `id` pattern needs `count`, how many devices to create"
                        ),
                    );
                    continue;
                }
            };
            if !(1..=MAX_GROUP_COUNT).contains(&count) {
                self.err(
                    &gp.k("count"),
                    format!("{what}: `count` must be from 1 to {MAX_GROUP_COUNT}, got {count}"),
                );
                continue;
            }
            if count > 1 && !pattern.has_placeholder() {
                self.err(
                    &gp.k("id"),
                    format!(
                        "{what}: {count} devices need `{{n}}` in the id pattern to get different ids"
                    ),
                );
                continue;
            }
            for n in 1..=count {
                let id = pattern.expand(n);
                let problem = if let Err(why) = check_device_id(&id) {
                    Some(why.to_string())
                } else if !valid_thing_name(&id) {
                    Some(format!(
                        "a fleet device is an AWS thing: 1 to {MAX_THING_NAME} of A-Z, a-z, 0-9, `:`, `_` and `-`"
                    ))
                } else {
                    owners
                        .get(&id)
                        .map(|owner| format!("the id is already used by {owner}"))
                };
                if let Some(why) = problem {
                    self.err(
                        &gp.k("id"),
                        format!("{what}: device {n} gets id `{id}`: {why}"),
                    );
                    break;
                }
                owners.insert(id.clone(), format!("fleet group {}", i + 1));
                self.fleet_devices.insert(id, g.device_type.clone());
            }
        }

        if let Some(link) = &f.link {
            self.link(link, &p.k("link"), "`fleet.link`");
        }
        let bps = f.download.bandwidth.bits_per_second();
        if bps == 0 {
            self.err(
                &p.k("download").k("bandwidth"),
                "`fleet.download.bandwidth` must be greater than 0".to_owned(),
            );
        } else if bps > MAX_BANDWIDTH_BPS {
            self.err(
                &p.k("download").k("bandwidth"),
                format!(
                    "`fleet.download.bandwidth` must be at most 10000Mbit/s (10 Gbit/s), got {}",
                    f.download.bandwidth
                ),
            );
        }
    }

    /// A group's `members`: each a scenario device, in one group only, a
    /// valid thing name, and with an OTA client id (`{id}-ota`) no one else
    /// uses. Members enter `owners` by their OTA client id (their own id is
    /// there already, as a device's).
    #[allow(clippy::too_many_arguments)]
    fn members<'f>(
        &mut self,
        g: &'f Group,
        members: &'f [String],
        devices: &[Device],
        gp: &P,
        what: &str,
        member_of: &mut HashMap<&'f str, usize>,
        owners: &mut HashMap<String, String>,
        group: usize,
    ) {
        for key in ["count", "id"] {
            let given = match key {
                "count" => g.count.is_some(),
                _ => g.id.is_some(),
            };
            if given {
                self.err(
                    &gp.k(key),
                    format!(
                        "{what}: `{key}` creates devices, `members` names existing ones; a group has one or the other"
                    ),
                );
            }
        }
        if members.is_empty() {
            self.err(
                &gp.k("members"),
                format!("{what}: `members` lists no devices; name at least one `devices[].id`"),
            );
        }
        for (j, m) in members.iter().enumerate() {
            let mp = gp.k("members").i(j);
            let problem = if !devices.iter().any(|d| d.id == *m) {
                Some(format!(
                    "`{m}` is not a scenario device; members are ids from `devices` ({})",
                    if devices.is_empty() {
                        "there are none".to_owned()
                    } else {
                        devices
                            .iter()
                            .map(|d| format!("`{}`", d.id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ))
            } else if let Some(first) = member_of.get(m.as_str()) {
                Some(format!(
                    "`{m}` is already a member of fleet group {}; a device runs one OTA client, of one type",
                    first + 1
                ))
            } else if !valid_thing_name(m) {
                Some(format!(
                    "`{m}` cannot be an AWS thing: 1 to {MAX_THING_NAME} of A-Z, a-z, 0-9, `:`, `_` and `-`"
                ))
            } else {
                // `{id}` passed the device id check, so `{id}-ota` does too
                // (the harness's reserved ids do not end in `-ota`); only a
                // clash with another device can remain.
                let ota = member_ota_client_id(m);
                owners.get(&ota).map(|owner| {
                    format!(
                        "the OTA client of `{m}` connects as `{ota}`, an id already used by {owner}"
                    )
                })
            };
            if let Some(why) = problem {
                self.err(&mp, format!("{what}: member {}: {why}", j + 1));
                continue;
            }
            member_of.insert(m, group);
            owners.insert(
                member_ota_client_id(m),
                format!("the OTA client of fleet member `{m}`"),
            );
            self.fleet_devices.insert(m.clone(), g.device_type.clone());
        }
    }

    fn type_name(&mut self, name: &str, p: &P, what: &str) {
        if !valid_device_type(name) {
            self.err(
                p,
                format!(
                    "{what}: a device type is 1 to 64 of A-Z, a-z, 0-9, `_` and `-`, got `{name}`"
                ),
            );
        }
    }

    /// A fleet step in a scenario without `fleet:`; `p` is the step's mapping.
    pub(super) fn needs_fleet(&mut self, p: &P, what: &str) {
        if self.fleet.is_none() {
            self.err(
                p,
                format!(
                    "{what}: the scenario has no `fleet` section (firmware, types and devices)"
                ),
            );
        }
    }

    /// A device type the fleet has firmware for.
    pub(super) fn known_type(&mut self, device_type: &str, p: &P, what: &str) -> bool {
        let Some(fleet) = self.fleet else {
            return false;
        };
        if fleet.firmware_for(device_type).is_some() {
            return true;
        }
        self.err(
            p,
            format!(
                "{what}: unknown device type `{device_type}`; {}",
                firmware_types(fleet)
            ),
        );
        false
    }

    /// `device_type` (known) has firmware `version`.
    pub(super) fn has_version(&mut self, device_type: &str, version: &Version, p: &P, what: &str) {
        let Some(fw) = self.fleet.and_then(|f| f.firmware_for(device_type)) else {
            return;
        };
        if !fw.versions.contains(version) {
            self.err(
                p,
                format!(
                    "{what}: `{device_type}` has no firmware version {version}; versions: {}",
                    version_list(&fw.versions)
                ),
            );
        }
    }

    pub(super) fn define_job(&mut self, name: &str, step: usize, p: &P, what: &str, key: &str) {
        if !valid_job_id(name) {
            self.err(
                p,
                format!(
                    "{what}: {key} `{name}` is not a job id: 1 to 64 of A-Z, a-z, 0-9, `_` and `-`"
                ),
            );
        }
        if let Some((_, first)) = self.jobs.iter().find(|(n, _)| n == name) {
            let first = *first;
            self.err(
                p,
                format!(
                    "{what}: job `{name}` is already defined by step {}",
                    first + 1
                ),
            );
        } else {
            self.jobs.push((name.to_owned(), step));
        }
    }

    pub(super) fn known_job(&mut self, name: &str, p: &P, what: &str) {
        if self.jobs.iter().any(|(n, _)| n == name) {
            return;
        }
        let known = if self.jobs.is_empty() {
            "no job is defined before this step (by `create_job` `id` or `prompt` `as`)".to_owned()
        } else {
            let names: Vec<&str> = self.jobs.iter().map(|(n, _)| n.as_str()).collect();
            format!("jobs defined before this step: {}", names.join(", "))
        };
        self.err(p, format!("{what}: unknown job `{name}`; {known}"));
    }

    pub(super) fn create_job(&mut self, job: &CreateJobStep, p: &P, what: &str) {
        // The target, and the types whose firmware `version` must be in.
        let types: Vec<String> = match &job.target {
            JobTarget::DeviceType(t) => {
                if self.known_type(t, &p.k("target").k("type"), what) {
                    vec![t.clone()]
                } else {
                    Vec::new()
                }
            }
            JobTarget::Device(d) => match self.fleet_devices.get(d) {
                Some(t) => vec![t.clone()],
                None => {
                    if self.fleet.is_some() {
                        self.err(
                            &p.k("target").k("device"),
                            format!(
                                "{what}: unknown fleet device `{d}`; fleet device ids come from `fleet.groups` (`id` and `count`, or `members`)"
                            ),
                        );
                    }
                    Vec::new()
                }
            },
            JobTarget::Fleet => Vec::new(),
        };
        if let VersionRef::Exact(v) = &job.version {
            match (&job.target, types.first()) {
                (JobTarget::Fleet, _) => {
                    if let Some(fleet) = self.fleet
                        && !fleet.firmware.iter().any(|f| f.versions.contains(v))
                    {
                        self.err(
                            &p.k("version"),
                            format!("{what}: no fleet type has firmware version {v}"),
                        );
                    }
                }
                (_, Some(t)) => self.has_version(t, v, &p.k("version"), what),
                (_, None) => {}
            }
        }

        // The ranges and combinations are the jobs engine's rules.
        for e in job.settings().check(CreateJobStep::key) {
            let mut at = p.k(CreateJobStep::key(e.setting));
            for step in e.path {
                at = match step {
                    PathStep::Key(k) => at.k(k),
                    PathStep::Index(i) => at.i(i),
                };
            }
            self.err(&at, format!("{what}: {}", e.message));
        }
    }
}

/// The fleet's firmware types, for messages.
fn firmware_types(f: &FleetConfig) -> String {
    if f.firmware.is_empty() {
        return "`fleet.firmware` is empty".to_owned();
    }
    let names: Vec<&str> = f
        .firmware
        .iter()
        .map(|fw| fw.device_type.as_str())
        .collect();
    format!("firmware types: {}", names.join(", "))
}

/// A device type name: 1 to 64 of `A-Z`, `a-z`, `0-9`, `_` and `-` (a key in
/// the firmware registry and a thing type name).
fn valid_device_type(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

fn version_list(versions: &[Version]) -> String {
    let mut sorted = versions.to_vec();
    sorted.sort();
    sorted.dedup();
    let list: Vec<String> = sorted.iter().map(Version::to_string).collect();
    list.join(", ")
}
