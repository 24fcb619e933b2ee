//! Semantic checks the scenario types cannot express.
//!
//! Every error names what it is about (`step 3 (publish)`, `device 2
//! (`echo-1`)`, `world.obstacles[1]`) and carries the path of the offending
//! node in the document, which `load.rs` turns into a line and column.
//! The checks of the OTA fleet, prompts and jobs are in [`fleet`].

mod chaos;
mod fleet;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use twinrig_cloud::rules::{Rule, RuleConfig, RuleError, Transform, parse as parse_sql};

use super::duration::Duration;
use super::fleet::{FleetConfig, MEMORY_BUDGET_BYTES, MemoryEstimate, human_bytes};
use super::model::{
    CLOUD_CLIENT_ID, Latency, RESERVED_CLIENT_ID, decode_hex, preset_names, transforms,
};
use super::model::{
    CloudConfig, Comparison, Device, DurationComparison, Expect, ExpectRecords, Fault, FieldCheck,
    LatencyDistribution, LinkFaultKind, LinkModel, MAX_EPOCH_UNIX_S, Obstacle, PayloadFilter,
    RuleRef, Scenario, ShapeSpec, Step, UartFaultKind, World, format_epoch, preset_rule,
};
use twinrig_kind::InvariantModel;

/// The most physics steps per second of virtual time.
pub const MAX_PHYSICS_RATE_HZ: u32 = 100_000;

/// The strongest gravity, in m/s² either way: 100 (about 10 g; Jupiter's is
/// 24.8). Beyond it a 1 kHz physics step no longer resolves a falling body,
/// and far beyond it the value does not fit the physics engine's `f32`.
pub const MAX_GRAVITY: f64 = 100.0;

/// The farthest a body may be placed from the origin along any axis, in
/// metres: 1 km. Positions are `f32` in the physics engine, which still
/// resolves a tenth of a millimetre there.
pub const MAX_COORDINATE_M: f64 = 1_000.0;

/// The smallest and largest size of an obstacle (box edge, radius,
/// height), in metres: 1 mm to 1 km.
pub const MIN_SIZE_M: f64 = 0.001;
/// See [`MIN_SIZE_M`].
pub const MAX_SIZE_M: f64 = 1_000.0;

/// The heaviest obstacle, in kg: 10 t (the robots weigh a few kg; a much
/// larger mass ratio makes the contact solver unstable).
pub const MAX_MASS_KG: f64 = 10_000.0;

/// The largest friction coefficient: 10 (rubber on dry concrete is about 1).
pub const MAX_FRICTION: f64 = 10.0;

/// The largest `yaw_deg` either way: one full turn.
pub const MAX_YAW_DEG: f64 = 360.0;

/// The largest MQTT payload a step may publish, and the largest value a
/// check may compare a payload field with, as JSON: 128 KiB, AWS IoT Core's
/// limit for one PUBLISH.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// The most fields one `match` (or records `latest`) may check: 256.
pub const MAX_MATCH_FIELDS: usize = 256;

/// MQTT's limit on topic length, in bytes.
const MAX_TOPIC_BYTES: usize = 65_535;

/// One segment of a path into the scenario document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// A mapping key.
    Key(String),
    /// A sequence index (0-based).
    Index(usize),
}

/// A semantic error: what is wrong, and where in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemanticError {
    /// The offending node (YAML keys and 0-based indices).
    pub path: Vec<PathSeg>,
    /// What is wrong, naming the step or device.
    pub message: String,
}

impl SemanticError {
    /// The path as `steps[2].publish.qos`.
    pub fn path_string(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                PathSeg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                PathSeg::Index(i) => {
                    out.push_str(&format!("[{i}]"));
                }
            }
        }
        out
    }
}

impl fmt::Display for SemanticError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SemanticError {}

/// What the checks know of the device kinds a build can run.
pub trait DeviceKinds {
    /// The names of the kinds.
    fn names(&self) -> Vec<&str>;
    /// Parses and checks a device's `params` (`kind` is one of
    /// [`Self::names`]): the kind's spec to spawn from, or `None` when the
    /// kind is known by name only.
    fn parse_params(
        &self,
        kind: &str,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<twinrig_kind::DeviceSpec>, twinrig_kind::ParamsError>;
    /// Whether devices of `kind` take `say` steps; `None`: not known, so
    /// not checked.
    fn takes_spoken_commands(&self, kind: &str) -> Option<bool>;
    /// The named checks (`invariants: - check:`) devices of `kind` offer,
    /// or the fleet's when `kind` is `None`; `None` back: not known, so
    /// not checked.
    fn invariants(&self, _kind: Option<&str>) -> Option<&'static [&'static dyn InvariantModel]> {
        None
    }
}

/// Kinds known by name only: any `params` and every `say` pass.
#[derive(Debug, Clone, Copy)]
pub struct KindNames<'a>(pub &'a [&'a str]);

impl DeviceKinds for KindNames<'_> {
    fn names(&self) -> Vec<&str> {
        self.0.to_vec()
    }

    fn parse_params(
        &self,
        _: &str,
        _: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<twinrig_kind::DeviceSpec>, twinrig_kind::ParamsError> {
        Ok(None)
    }

    fn takes_spoken_commands(&self, _: &str) -> Option<bool> {
        None
    }
}

/// Checks what the types cannot: references between parts, ranges, topic
/// syntax. `known_kinds` are the device kinds this build can run (by name
/// only: see [`validate_with`] for their `params` and `say`).
pub fn validate(s: &Scenario, known_kinds: &[&str]) -> Result<(), Vec<SemanticError>> {
    validate_with(s, &KindNames(known_kinds))
}

/// [`validate`], with every check `kinds` can make: device `params` and
/// `say` steps to kinds that take no spoken commands.
pub fn validate_with(s: &Scenario, kinds: &dyn DeviceKinds) -> Result<(), Vec<SemanticError>> {
    let mut c = Checker {
        errors: Vec::new(),
        known_kinds: kinds.names(),
        kinds,
        device_ids: s.devices.iter().map(|d| d.id.as_str()).collect(),
        devices: &s.devices,
        obstacle_names: s.world.obstacles.iter().map(|o| o.name.as_str()).collect(),
        transforms: transforms(),
        fleet: s.fleet.as_ref(),
        fleet_devices: HashMap::new(),
        jobs: Vec::new(),
    };
    c.scenario(s);
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(c.errors)
    }
}

/// A path under construction.
#[derive(Clone, Default)]
struct P(Vec<PathSeg>);

impl P {
    fn k(&self, key: &str) -> P {
        let mut v = self.0.clone();
        v.push(PathSeg::Key(key.to_owned()));
        P(v)
    }

    fn i(&self, index: usize) -> P {
        let mut v = self.0.clone();
        v.push(PathSeg::Index(index));
        P(v)
    }
}

struct Checker<'a> {
    errors: Vec<SemanticError>,
    known_kinds: Vec<&'a str>,
    kinds: &'a dyn DeviceKinds,
    device_ids: Vec<&'a str>,
    devices: &'a [Device],
    obstacle_names: Vec<&'a str>,
    transforms: Vec<Transform>,
    fleet: Option<&'a FleetConfig>,
    /// Fleet device id -> its type (filled by the fleet check).
    fleet_devices: HashMap<String, String>,
    /// Job names defined so far (`create_job.id`, `prompt.as`) and the
    /// (0-based) step that defined each, in step order.
    jobs: Vec<(String, usize)>,
}

impl Checker<'_> {
    fn err(&mut self, path: &P, message: String) {
        self.errors.push(SemanticError {
            path: path.0.clone(),
            message,
        });
    }

    fn scenario(&mut self, s: &Scenario) {
        let root = P::default();
        if s.name.trim().is_empty() {
            self.err(&root.k("name"), "`name` must not be empty".to_owned());
        }
        if s.duration_limit.is_zero() {
            self.err(
                &root.k("duration_limit"),
                "`duration_limit` must be greater than 0".to_owned(),
            );
        }
        self.world(&s.world, &root.k("world"));
        self.link(&s.link, &root.k("link"), "`link`");
        self.devices(&s.devices, &root.k("devices"));
        self.cloud(&s.cloud, &root.k("cloud"));
        self.clock_range(s.cloud.epoch_unix_s, s.duration_limit, &root);
        if let Some(fleet) = &s.fleet {
            self.fleet(fleet, &s.devices, &root.k("fleet"));
        }
        if let Some(chaos) = &s.chaos {
            self.chaos(chaos, s.duration_limit, &root.k("chaos"));
        }
        for (i, inv) in s.invariants.iter().enumerate() {
            let ip = root.k("invariants").i(i);
            let what = format!("invariant {}", i + 1);
            match inv.as_expect() {
                Some(expect) => self.expect(&expect, &ip, &what),
                None => {
                    if let super::model::Invariant::Check(c) = inv {
                        self.named_check(c, &ip.k("check"), &what);
                    }
                }
            }
            // A message count grows: only a ceiling can hold all along.
            if let super::model::Invariant::Message(m) = inv {
                let ok = m.count.as_ref().is_some_and(|c| {
                    c.at_most.is_some()
                        && c.at_least.is_none()
                        && c.approx.is_none()
                        && c.equals.is_none()
                });
                if !ok {
                    self.err(
                        &ip.k("message"),
                        format!(
                            "{what}: a message invariant needs `count: {{ at_most: N }}` (and nothing else): a count that grows can only be held under a ceiling"
                        ),
                    );
                }
            }
        }
        self.memory(s, &root);
        self.nonzero(s.ready_timeout, &root.k("ready_timeout"), "`ready_timeout`");
        let steps = root.k("steps");
        if s.steps.is_empty() {
            self.err(
                &steps,
                "`steps` is empty: a scenario needs at least one step".to_owned(),
            );
        }
        for (i, step) in s.steps.iter().enumerate() {
            self.step(step, i, &steps.i(i));
        }
    }

    /// The cloud's clock (epoch + virtual time) must stay within the years
    /// an epoch can be written in, through the whole run.
    fn clock_range(&mut self, epoch_unix_s: u64, limit: Duration, root: &P) {
        let end = epoch_unix_s.saturating_add(limit.nanos().div_ceil(1_000_000_000));
        if end > MAX_EPOCH_UNIX_S {
            let latest = format_epoch(MAX_EPOCH_UNIX_S).unwrap_or_default();
            let epoch = format_epoch(epoch_unix_s).unwrap_or_else(|| epoch_unix_s.to_string());
            self.err(
                &root.k("cloud").k("epoch"),
                format!(
                    "`cloud.epoch` {epoch} plus `duration_limit` {limit} passes {latest}, the latest time the cloud's clock can show"
                ),
            );
        }
    }

    /// The run's expected peak memory against the budget.
    fn memory(&mut self, s: &Scenario, root: &P) {
        let e = MemoryEstimate::new(s.fleet.as_ref(), s.devices.len());
        if e.total <= MEMORY_BUDGET_BYTES {
            return;
        }
        use super::fleet::{BASE_RUN_BYTES, FLEET_DEVICE_OVERHEAD_BYTES, SCENARIO_DEVICE_BYTES};
        let mut parts = Vec::new();
        if e.fleet_devices > 0 {
            parts.push(format!(
                "{} fleet devices: {} of simulated flash (two app slots for their type's largest image each) and {} each besides",
                e.fleet_devices,
                human_bytes(e.fleet_flash),
                human_bytes(FLEET_DEVICE_OVERHEAD_BYTES)
            ));
        }
        if e.registry > 0 {
            parts.push(format!("{} of published firmware", human_bytes(e.registry)));
        }
        if e.scenario_devices > 0 {
            parts.push(format!(
                "{} scenario devices at {} each",
                e.scenario_devices,
                human_bytes(SCENARIO_DEVICE_BYTES)
            ));
        }
        parts.push(format!(
            "{} for the rest of the run",
            human_bytes(BASE_RUN_BYTES)
        ));
        let at = if e.fleet_devices > 0 {
            root.k("fleet").k("groups")
        } else {
            root.k("devices")
        };
        self.err(
            &at,
            format!(
                "the run would need about {} of memory, more than the budget of {}: {}; use fewer devices or smaller images",
                human_bytes(e.total),
                human_bytes(MEMORY_BUDGET_BYTES),
                parts.join(", ")
            ),
        );
    }

    fn world(&mut self, w: &World, p: &P) {
        if w.physics_rate_hz == 0 || w.physics_rate_hz > MAX_PHYSICS_RATE_HZ {
            self.err(
                &p.k("physics_rate_hz"),
                format!(
                    "`world.physics_rate_hz` must be from 1 to {MAX_PHYSICS_RATE_HZ}, got {}",
                    w.physics_rate_hz
                ),
            );
        }
        if !(-MAX_GRAVITY..=MAX_GRAVITY).contains(&w.gravity) {
            self.err(
                &p.k("gravity"),
                format!(
                    "`world.gravity` must be from -{MAX_GRAVITY} to {MAX_GRAVITY} m/s², got {}",
                    num(w.gravity)
                ),
            );
        }
        if w.sample_period.is_zero() {
            self.err(
                &p.k("sample_period"),
                "`world.sample_period` must be greater than 0".to_owned(),
            );
        }
        if let Some(floor) = &w.floor {
            let fp = p.k("floor");
            self.friction(floor.friction, &fp.k("friction"), "`world.floor`");
            self.unit_interval(
                floor.restitution,
                &fp.k("restitution"),
                "`world.floor`: `restitution`",
            );
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, o) in w.obstacles.iter().enumerate() {
            let op = p.k("obstacles").i(i);
            let what = format!("obstacle {} (`{}`)", i + 1, o.name);
            if o.name.trim().is_empty() {
                self.err(
                    &op.k("name"),
                    format!("obstacle {}: `name` must not be empty", i + 1),
                );
            } else if let Some(first) = seen.get(o.name.as_str()) {
                self.err(
                    &op.k("name"),
                    format!("{what}: the name is already used by obstacle {}", first + 1),
                );
            } else {
                seen.insert(&o.name, i);
            }
            self.obstacle(o, &op, &what);
        }
    }

    fn obstacle(&mut self, o: &Obstacle, p: &P, what: &str) {
        let sp = p.k("shape");
        match &o.shape {
            ShapeSpec::Box { size } => {
                let bp = sp.k("box").k("size");
                if size.iter().any(|v| !positive(*v)) {
                    self.err(
                        &bp,
                        format!("{what}: every box size must be greater than 0, got {size:?}"),
                    );
                } else if size.iter().any(|v| !(MIN_SIZE_M..=MAX_SIZE_M).contains(v)) {
                    self.err(
                        &bp,
                        format!(
                            "{what}: every box size must be from {MIN_SIZE_M} to {MAX_SIZE_M} m, got {size:?}"
                        ),
                    );
                }
            }
            ShapeSpec::Ball { radius } => {
                self.size(*radius, &sp.k("ball").k("radius"), what, "radius");
            }
            ShapeSpec::Cylinder { radius, height } => {
                let cp = sp.k("cylinder");
                self.size(*radius, &cp.k("radius"), what, "radius");
                self.size(*height, &cp.k("height"), what, "height");
            }
        }
        if o.position
            .iter()
            .any(|v| !(-MAX_COORDINATE_M..=MAX_COORDINATE_M).contains(v))
        {
            self.err(
                &p.k("position"),
                format!(
                    "{what}: every `position` coordinate must be from -{MAX_COORDINATE_M} to {MAX_COORDINATE_M} m, got {:?}",
                    o.position
                ),
            );
        }
        if !(-MAX_YAW_DEG..=MAX_YAW_DEG).contains(&o.yaw_deg) {
            self.err(
                &p.k("yaw_deg"),
                format!(
                    "{what}: `yaw_deg` must be from -{MAX_YAW_DEG} to {MAX_YAW_DEG}, got {}",
                    num(o.yaw_deg)
                ),
            );
        }
        if let Some(mass) = o.mass {
            let mp = p.k("mass");
            if !positive(mass) {
                self.positive(mass, &mp, what, "mass");
            } else if mass > MAX_MASS_KG {
                self.err(
                    &mp,
                    format!(
                        "{what}: `mass` must be at most {MAX_MASS_KG} kg, got {}",
                        num(mass)
                    ),
                );
            }
        }
        self.friction(o.friction, &p.k("friction"), what);
        self.unit_interval(
            o.restitution,
            &p.k("restitution"),
            &format!("{what}: `restitution`"),
        );
    }

    fn positive(&mut self, v: f64, p: &P, what: &str, name: &str) {
        if !positive(v) {
            self.err(
                p,
                format!("{what}: `{name}` must be greater than 0, got {v}"),
            );
        }
    }

    /// An obstacle size: more than 0, then within [`MIN_SIZE_M`]..=[`MAX_SIZE_M`].
    fn size(&mut self, v: f64, p: &P, what: &str, name: &str) {
        if !positive(v) {
            self.positive(v, p, what, name);
        } else if !(MIN_SIZE_M..=MAX_SIZE_M).contains(&v) {
            self.err(
                p,
                format!(
                    "{what}: `{name}` must be from {MIN_SIZE_M} to {MAX_SIZE_M} m, got {}",
                    num(v)
                ),
            );
        }
    }

    fn friction(&mut self, v: f64, p: &P, what: &str) {
        if !(0.0..=MAX_FRICTION).contains(&v) {
            self.err(
                p,
                format!(
                    "{what}: `friction` must be from 0 to {MAX_FRICTION}, got {}",
                    num(v)
                ),
            );
        }
    }

    /// A probability or similar: 0..=1, not NaN.
    fn unit_interval(&mut self, v: f64, p: &P, what: &str) {
        if !(0.0..=1.0).contains(&v) {
            self.err(p, format!("{what} must be from 0 to 1, got {v}"));
        }
    }

    fn nonzero(&mut self, d: Duration, p: &P, what: &str) {
        if d.is_zero() {
            self.err(p, format!("{what} must be greater than 0"));
        }
    }

    fn link(&mut self, l: &LinkModel, p: &P, what: &str) {
        self.unit_interval(l.loss, &p.k("loss"), &format!("{what}: `loss`"));
        self.nonzero(
            l.qos1_retry,
            &p.k("qos1_retry"),
            &format!("{what}: `qos1_retry`"),
        );
        if let Latency::Distribution(LatencyDistribution::Uniform { min, max }) = &l.latency
            && min > max
        {
            self.err(
                &p.k("latency").k("uniform"),
                format!("{what}: uniform latency has min {min} greater than max {max}"),
            );
        }
    }

    fn devices(&mut self, devices: &[Device], p: &P) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, d) in devices.iter().enumerate() {
            let dp = p.i(i);
            let what = format!("device {} (`{}`)", i + 1, d.id);
            if !self.known_kinds.contains(&d.kind.as_str()) {
                let known = if self.known_kinds.is_empty() {
                    "this build knows no device kinds".to_owned()
                } else {
                    format!("known kinds: {}", self.known_kinds.join(", "))
                };
                self.err(
                    &dp.k("kind"),
                    format!("{what}: unknown device kind `{}`; {known}", d.kind),
                );
            }
            if d.id.is_empty() {
                self.err(
                    &dp.k("id"),
                    format!("device {}: `id` must not be empty", i + 1),
                );
            } else if let Err(why) = check_device_id(&d.id) {
                self.err(&dp.k("id"), format!("{what}: {why}"));
            }
            if let Some(first) = seen.get(d.id.as_str()) {
                self.err(
                    &dp.k("id"),
                    format!("{what}: the id is already used by device {}", first + 1),
                );
            } else {
                seen.insert(&d.id, i);
            }
            if let Some(link) = &d.link {
                self.link(link, &dp.k("link"), &format!("{what}: `link`"));
            }
            if self.known_kinds.contains(&d.kind.as_str()) {
                match self.kinds.parse_params(&d.kind, &d.params) {
                    Ok(Some(spec)) => d.spec.fill(spec),
                    Ok(None) => {}
                    Err(problem) => {
                        // `a.b[2]` is item 2 of key `b` of the mapping at key `a`.
                        let mut at = dp.k("params");
                        for part in problem.key.iter().flat_map(|k| k.split('.')) {
                            let mut pieces = part.split('[');
                            at = at.k(pieces.next().unwrap_or(part));
                            for index in pieces.filter_map(|p| p.trim_end_matches(']').parse().ok())
                            {
                                at = at.i(index);
                            }
                        }
                        self.err(
                            &at,
                            format!("{what}: `params` of kind `{}`: {}", d.kind, problem.message),
                        );
                    }
                }
            }
        }
    }

    /// A named invariant: its device exists, its kind (or the fleet)
    /// offers the check, and its parameters parse.
    fn named_check(&mut self, c: &super::model::NamedCheck, p: &P, what: &str) {
        let (kind, whose) = match &c.device {
            Some(id) => match self.devices.iter().find(|d| &d.id == id) {
                Some(d) => (
                    Some(d.kind.as_str()),
                    format!("kind `{}` (device {id})", d.kind),
                ),
                None => {
                    self.err(
                        &p.k("device"),
                        format!(
                            "{what}: no device `{id}` (a named check on the fleet has no `device`)"
                        ),
                    );
                    return;
                }
            },
            None => {
                if self.fleet.is_none() {
                    self.err(
                        p,
                        format!(
                            "{what}: a check without `device` is a fleet check, and the scenario has no `fleet`"
                        ),
                    );
                    return;
                }
                (None, "the fleet".to_owned())
            }
        };
        let Some(models) = self.kinds.invariants(kind) else {
            return;
        };
        let model = match twinrig_kind::invariant::find(models, &c.name, &whose) {
            Ok(m) => m,
            Err(e) => return self.err(&p.k("name"), format!("{what}: {e}")),
        };
        if let Err(problem) = model.build(c.device.as_deref().unwrap_or(""), &c.params) {
            let at = match problem.key.as_deref() {
                Some(key) => p.k(key.split(['.', '[']).next().unwrap_or(key)),
                None => p.clone(),
            };
            self.err(
                &at,
                format!("{what}: check `{}`: {}", c.name, problem.message),
            );
        }
    }

    fn cloud(&mut self, c: &CloudConfig, p: &P) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, rule) in c.rules.iter().enumerate() {
            let rp = p.k("rules").i(i);
            let (config, name_path, what) = match rule {
                RuleRef::Preset(name) => {
                    let what = format!("cloud rule {}", i + 1);
                    let Some(config) = preset_rule(name) else {
                        let known: Vec<String> = preset_names()
                            .into_iter()
                            .map(|(short, rule)| format!("{short} (rule {rule})"))
                            .collect();
                        self.err(
                            &rp,
                            format!(
                                "{what}: unknown preset `{name}`; presets: {}",
                                known.join(", ")
                            ),
                        );
                        continue;
                    };
                    (config, rp.clone(), what)
                }
                RuleRef::Inline { name, sql, action } => {
                    let what = format!("cloud rule {} (`{name}`)", i + 1);
                    let config = RuleConfig {
                        name: name.clone(),
                        sql: sql.clone(),
                        action: action.clone(),
                    };
                    // The cloud crate checks the name before the SQL and
                    // stops at the first problem: parse the SQL on its own
                    // so both are reported.
                    match Rule::new(config.clone()) {
                        Ok(_) => {}
                        Err(RuleError::BadName(_)) => self.err(
                            &rp.k("name"),
                            format!(
                                "{what}: a rule name must not be empty and only have A-Z, a-z, 0-9 and `_`"
                            ),
                        ),
                        // Reported below (`sql`) and after this (`action`).
                        Err(RuleError::Sql { .. } | RuleError::NoAction(_)) => {}
                        Err(other) => self.err(&rp, format!("{what}: {other}")),
                    }
                    if let Err(e) = parse_sql(sql) {
                        self.err(
                            &rp.k("sql"),
                            format!(
                                "{what}: `sql` does not parse: {} (at {} of the SQL)",
                                e.kind, e.pos
                            ),
                        );
                    }
                    if !self.transforms.iter().any(|t| t.name() == action) {
                        let known = self.transform_list();
                        self.err(
                            &rp.k("action"),
                            format!("{what}: unknown action `{action}`; transforms: {known}"),
                        );
                    }
                    (config, rp.k("name"), what)
                }
            };
            if let Some(first) = seen.get(&config.name) {
                self.err(
                    &name_path,
                    format!(
                        "{what}: the rule name `{}` is already used by cloud rule {}",
                        config.name,
                        first + 1
                    ),
                );
            } else {
                seen.insert(config.name, i);
            }
        }
    }

    /// The transform names, for messages.
    fn transform_list(&self) -> String {
        let names: Vec<&str> = self.transforms.iter().map(Transform::name).collect();
        names.join(", ")
    }

    /// A `say` to a device whose kind takes no spoken commands would fail
    /// the run when it is reached.
    fn takes_spoken_commands(&mut self, id: &str, p: &P, what: &str) {
        let devices = self.devices;
        let Some(kind) = devices.iter().find(|d| d.id == id).map(|d| d.kind.as_str()) else {
            return;
        };
        if self.kinds.takes_spoken_commands(kind) != Some(false) {
            return;
        }
        let listening: Vec<&str> = self
            .known_kinds
            .iter()
            .copied()
            .filter(|k| self.kinds.takes_spoken_commands(k) == Some(true))
            .collect();
        let hint = if listening.is_empty() {
            "no kind in this build does".to_owned()
        } else {
            format!("kinds that do: {}", listening.join(", "))
        };
        self.err(
            p,
            format!("{what}: device `{id}` (kind `{kind}`) takes no spoken commands; {hint}"),
        );
    }

    fn known_device(&mut self, id: &str, p: &P, what: &str) {
        if !self.device_ids.contains(&id) {
            let known = if self.device_ids.is_empty() {
                "the scenario has no devices".to_owned()
            } else {
                format!("devices: {}", self.device_ids.join(", "))
            };
            self.err(p, format!("{what}: unknown device `{id}`; {known}"));
        }
    }

    fn step(&mut self, step: &Step, i: usize, p: &P) {
        let key = step_key(step);
        let what = format!("step {} ({key})", i + 1);
        let p = p.k(key);
        match step {
            Step::Publish(publish) => {
                if let Err(why) = check_topic_name(&publish.topic) {
                    self.err(
                        &p.k("topic"),
                        format!("{what}: invalid topic `{}`: {why}", publish.topic),
                    );
                }
                let size = match &publish.payload {
                    serde_json::Value::String(text) => text.len(),
                    json => json_len(json),
                };
                if size > MAX_PAYLOAD_BYTES {
                    self.err(
                        &p.k("payload"),
                        format!(
                            "{what}: the payload is {size} bytes; an MQTT payload is at most {MAX_PAYLOAD_BYTES} bytes (128 KiB, AWS IoT Core's limit)"
                        ),
                    );
                }
                if publish.qos > 1 {
                    self.err(
                        &p.k("qos"),
                        format!("{what}: `qos` must be 0 or 1, got {}", publish.qos),
                    );
                }
            }
            Step::WaitFor(w) => {
                match (&w.topic, &w.ready) {
                    (Some(topic), None) => {
                        self.topic_filter(topic, &p.k("topic"), &what);
                        self.payload_filter(&w.filter, &p, &what);
                    }
                    (None, Some(device)) => {
                        if !w.filter.fields.is_empty() || w.filter.text.is_some() {
                            self.err(
                                &p,
                                format!("{what}: `match` and `text` apply to `topic`, not to `ready`"),
                            );
                        }
                        let fleet_device = self.fleet_devices.contains_key(device.as_str());
                        if !fleet_device {
                            self.known_device(device, &p.k("ready"), &what);
                        }
                    }
                    (Some(_), Some(_)) => self.err(
                        &p,
                        format!("{what}: give `topic` (wait for a message) or `ready` (wait for a device), not both"),
                    ),
                    (None, None) => self.err(
                        &p,
                        format!("{what}: give `topic` (wait for a message) or `ready` (wait for a device)"),
                    ),
                }
                self.nonzero(w.timeout, &p.k("timeout"), &format!("{what}: `timeout`"));
            }
            Step::Expect(e) => self.expect(e, &p, &what),
            Step::Delay(_) => {}
            Step::Fault(f) => self.fault(f, &p, &what),
            Step::Say(say) => {
                self.known_device(&say.device, &p.k("device"), &what);
                self.takes_spoken_commands(&say.device, &p.k("device"), &what);
                if say.text.trim().is_empty() {
                    self.err(&p.k("text"), format!("{what}: `text` must not be empty"));
                }
            }
            Step::Prompt(prompt) => {
                self.needs_fleet(&p, &what);
                if prompt.text.trim().is_empty() {
                    self.err(&p.k("text"), format!("{what}: `text` must not be empty"));
                }
                if let Some(name) = &prompt.as_name {
                    self.define_job(name, i, &p.k("as"), &what, "`as`");
                }
            }
            Step::CreateJob(job) => {
                self.needs_fleet(&p, &what);
                self.define_job(&job.id, i, &p.k("id"), &what, "`id`");
                self.create_job(job, &p, &what);
            }
            Step::WaitForJob(w) => {
                self.known_job(&w.job, &p.k("job"), &what);
                if w.status.is_empty() {
                    self.err(
                        &p.k("status"),
                        format!("{what}: `status` must list at least one job status"),
                    );
                }
                self.nonzero(w.timeout, &p.k("timeout"), &format!("{what}: `timeout`"));
            }
            Step::Stop(stop) => self.known_device(&stop.device, &p.k("device"), &what),
        }
    }

    fn expect(&mut self, e: &Expect, p: &P, what: &str) {
        match e {
            Expect::Message(m) => {
                let mp = p.k("message");
                self.topic_filter(&m.topic, &mp.k("topic"), what);
                self.payload_filter(&m.filter, &mp, what);
                if let Some(count) = &m.count {
                    self.comparison(count, &mp.k("count"), &format!("{what}: `count`"));
                }
            }
            Expect::Device(d) => {
                let dp = p.k("device");
                self.known_device(&d.device, &dp.k("device"), what);
                if d.field.trim().is_empty() {
                    self.err(&dp.k("field"), format!("{what}: `field` must not be empty"));
                }
                self.comparison(&d.check, &dp, what);
            }
            Expect::Body(b) => {
                let bp = p.k("body");
                if !self.obstacle_names.contains(&b.body.as_str())
                    && !self.device_ids.contains(&b.body.as_str())
                {
                    self.err(
                        &bp.k("body"),
                        format!(
                            "{what}: unknown body `{}`; a body is an obstacle name or a device id",
                            b.body
                        ),
                    );
                }
                self.comparison(&b.check, &bp, what);
            }
            Expect::Latency(l) => {
                let lp = p.k("latency");
                for (name, m) in [("from", &l.from), ("to", &l.to)] {
                    let what = format!("{what}: `{name}`");
                    self.topic_filter(&m.topic, &lp.k(name).k("topic"), &what);
                    self.payload_filter(&m.filter, &lp.k(name), &what);
                }
                self.duration_comparison(&l.check, &lp, what);
            }
            Expect::Records(r) => self.expect_records(r, &p.k("records"), what),
            Expect::Presigned(u) => {
                let up = p.k("presigned");
                self.topic_filter(&u.topic, &up.k("topic"), what);
                if u.field.trim().is_empty() {
                    self.err(&up.k("field"), format!("{what}: `field` must not be empty"));
                }
            }
            Expect::Job(j) => {
                let jp = p.k("job");
                self.known_job(&j.job, &jp.k("job"), what);
                for (key, c) in [
                    ("succeeded", &j.succeeded),
                    ("failed", &j.failed),
                    ("max_in_progress_seen", &j.max_in_progress_seen),
                    ("timed_out", &j.timed_out.as_deref().cloned()),
                    ("rejected", &j.rejected.as_deref().cloned()),
                    ("canceled", &j.canceled.as_deref().cloned()),
                ] {
                    if let Some(c) = c {
                        self.comparison(c, &jp.k(key), &format!("{what}: `{key}`"));
                    }
                }
                if let Some(r) = &j.reason {
                    let rp = jp.k("reason");
                    if r.contains.trim().is_empty() {
                        self.err(
                            &rp.k("contains"),
                            format!("{what}: `reason.contains` must not be empty"),
                        );
                    }
                    if let Some(c) = &r.count {
                        self.comparison(c, &rp.k("count"), &format!("{what}: `reason.count`"));
                    }
                }
            }
            Expect::Fleet(f) => {
                let fp = p.k("fleet");
                self.needs_fleet(&fp, what);
                if self.fleet.is_some() && self.known_type(&f.device_type, &fp.k("type"), what) {
                    self.has_version(&f.device_type, &f.version, &fp.k("version"), what);
                }
                if let Some(count) = &f.count {
                    self.comparison(count, &fp.k("count"), &format!("{what}: `count`"));
                }
            }
            Expect::Alert(a) => {
                let ap = p.k("alert");
                if let Some(job) = &a.job {
                    self.known_job(job, &ap.k("job"), what);
                }
                if let Some(count) = &a.count {
                    self.comparison(count, &ap.k("count"), &format!("{what}: `count`"));
                }
            }
        }
    }

    fn expect_records(&mut self, r: &ExpectRecords, p: &P, what: &str) {
        let transform = self.transforms.iter().position(|t| t.name() == r.kind);
        if transform.is_none() {
            let known = self.transform_list();
            self.err(
                &p.k("kind"),
                format!(
                    "{what}: unknown records kind `{}`; kinds (transforms): {known}",
                    r.kind
                ),
            );
        }
        if let Some(device) = &r.device {
            self.known_device(device, &p.k("device"), what);
        }
        if let Some(count) = &r.count {
            self.comparison(count, &p.k("count"), &format!("{what}: `count`"));
        }
        self.field_checks(&r.latest, &p.k("latest"), what, "latest");
        if let Some(t) = transform {
            let fields: Vec<String> = self.transforms[t]
                .spec()
                .fields
                .iter()
                .map(|f| f.name.clone())
                .collect();
            for field in r.latest.keys() {
                let first = field.split('.').next().unwrap_or_default();
                if !first.is_empty() && !fields.iter().any(|f| f == first) {
                    self.err(
                        &p.k("latest").k(field),
                        format!(
                            "{what}: `{}` records have no field `{first}`; fields: {}",
                            r.kind,
                            fields.join(", ")
                        ),
                    );
                }
            }
        }
    }

    fn fault(&mut self, f: &Fault, p: &P, what: &str) {
        match f {
            Fault::Uart(u) => {
                let up = p.k("uart");
                self.known_device(&u.device, &up.k("device"), what);
                let kp = up.k(u.kind.key());
                match &u.kind {
                    UartFaultKind::Inject(bytes) => {
                        if let Some(hex) = bytes.strip_prefix("hex:") {
                            if let Err(why) = decode_hex(hex) {
                                self.err(&kp, format!("{what}: invalid `hex:` inject: {why}"));
                            }
                        } else if bytes.is_empty() {
                            self.err(&kp, format!("{what}: `inject` is empty"));
                        }
                    }
                    UartFaultKind::BitErrors { rate, duration } => {
                        self.unit_interval(
                            *rate,
                            &kp.k("rate"),
                            &format!("{what}: bit error `rate`"),
                        );
                        self.nonzero(*duration, &kp.k("duration"), &format!("{what}: `duration`"));
                    }
                    UartFaultKind::DropBytes {
                        probability,
                        duration,
                    } => {
                        self.unit_interval(
                            *probability,
                            &kp.k("probability"),
                            &format!("{what}: `probability`"),
                        );
                        self.nonzero(*duration, &kp.k("duration"), &format!("{what}: `duration`"));
                    }
                    UartFaultKind::LineBreak(d) => {
                        self.nonzero(*d, &kp, &format!("{what}: `line_break`"));
                    }
                    UartFaultKind::Disconnect(d) => {
                        self.nonzero(*d, &kp, &format!("{what}: `disconnect`"));
                    }
                }
            }
            Fault::Link(l) => {
                let lp = p.k("link");
                self.known_device(&l.device, &lp.k("device"), what);
                let kp = lp.k(l.kind.key());
                match &l.kind {
                    LinkFaultKind::Outage(d) => {
                        self.nonzero(*d, &kp, &format!("{what}: `outage`"));
                    }
                    LinkFaultKind::Loss {
                        probability,
                        duration,
                    } => {
                        self.unit_interval(
                            *probability,
                            &kp.k("probability"),
                            &format!("{what}: loss `probability`"),
                        );
                        self.nonzero(*duration, &kp.k("duration"), &format!("{what}: `duration`"));
                    }
                    LinkFaultKind::ExtraLatency { duration, .. } => {
                        self.nonzero(*duration, &kp.k("duration"), &format!("{what}: `duration`"));
                    }
                }
            }
        }
    }

    fn topic_filter(&mut self, filter: &str, p: &P, what: &str) {
        if let Err(why) = check_topic_filter(filter) {
            self.err(p, format!("{what}: invalid topic filter `{filter}`: {why}"));
        }
    }

    /// `p` is the mapping that holds `match`/`text`.
    fn payload_filter(&mut self, f: &PayloadFilter, p: &P, what: &str) {
        self.field_checks(&f.fields, &p.k("match"), what, "match");
    }

    /// Checks by dotted path; `p` is the mapping of them, named `key`.
    fn field_checks(
        &mut self,
        fields: &BTreeMap<String, FieldCheck>,
        p: &P,
        what: &str,
        key: &str,
    ) {
        if fields.len() > MAX_MATCH_FIELDS {
            self.err(
                p,
                format!(
                    "{what}: `{key}` checks {} fields; at most {MAX_MATCH_FIELDS}",
                    fields.len()
                ),
            );
        }
        for (field, check) in fields {
            let fp = p.k(field);
            if field.is_empty() || field.split('.').any(str::is_empty) {
                self.err(
                    &fp,
                    format!("{what}: `{key}` path `{field}` has an empty segment"),
                );
            }
            match check {
                FieldCheck::Compare(c) => {
                    self.comparison(c, &fp, &format!("{what}: `{key}.{field}`"));
                }
                FieldCheck::Equals(v) => {
                    self.json_size(v, &fp, &format!("{what}: `{key}.{field}`"));
                }
            }
        }
    }

    /// A value to compare payloads with can be no larger than a payload.
    fn json_size(&mut self, v: &serde_json::Value, p: &P, what: &str) {
        let n = json_len(v);
        if n > MAX_PAYLOAD_BYTES {
            self.err(
                p,
                format!(
                    "{what} is {n} bytes as JSON; no payload can equal it (MQTT payloads are at most {MAX_PAYLOAD_BYTES} bytes, 128 KiB)"
                ),
            );
        }
    }

    /// `p` is the mapping holding the comparison keys.
    fn comparison(&mut self, c: &Comparison, p: &P, what: &str) {
        if c.is_empty() {
            self.err(
                p,
                format!(
                    "{what}: no condition given; use equals, approx (with tolerance), at_least or at_most"
                ),
            );
            return;
        }
        for (name, v) in [
            ("approx", c.approx),
            ("tolerance", c.tolerance),
            ("at_least", c.at_least),
            ("at_most", c.at_most),
        ] {
            match v {
                Some(v) if v.is_nan() => self.err(
                    &p.k(name),
                    format!("{what}: `{name}` must be a number, not NaN"),
                ),
                // An infinite tolerance or bound makes a check that can
                // never fail (or never pass).
                Some(v) if v.is_infinite() => self.err(
                    &p.k(name),
                    format!("{what}: `{name}` must be a finite number, got {v}"),
                ),
                _ => {}
            }
        }
        if let Some(equals) = &c.equals {
            self.json_size(equals, &p.k("equals"), &format!("{what}: `equals`"));
        }
        match (c.approx, c.tolerance) {
            (Some(_), None) => self.err(
                &p.k("approx"),
                format!("{what}: `approx` needs a `tolerance`"),
            ),
            (None, Some(_)) => self.err(
                &p.k("tolerance"),
                format!("{what}: `tolerance` is only meaningful with `approx`"),
            ),
            _ => {}
        }
        if let Some(t) = c.tolerance
            && t < 0.0
        {
            self.err(
                &p.k("tolerance"),
                format!("{what}: `tolerance` must not be negative, got {t}"),
            );
        }
        if let (Some(lo), Some(hi)) = (c.at_least, c.at_most)
            && lo > hi
        {
            self.err(
                &p.k("at_least"),
                format!("{what}: `at_least` {lo} is greater than `at_most` {hi}; nothing can pass"),
            );
        }
    }

    fn duration_comparison(&mut self, c: &DurationComparison, p: &P, what: &str) {
        match (c.at_least, c.at_most) {
            (None, None) => self.err(
                p,
                format!("{what}: no condition given; use at_least and/or at_most"),
            ),
            (Some(lo), Some(hi)) if lo > hi => self.err(
                &p.k("at_least"),
                format!("{what}: `at_least` {lo} is longer than `at_most` {hi}; nothing can pass"),
            ),
            _ => {}
        }
    }
}

/// The length of `v` written as compact JSON, without writing it out.
fn json_len(v: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

/// A number for messages: `1e39` rather than forty digits.
fn num(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && a.is_finite() && !(1e-6..1e9).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

/// The YAML key of a step.
pub fn step_key(step: &Step) -> &'static str {
    match step {
        Step::Publish(_) => "publish",
        Step::WaitFor(_) => "wait_for",
        Step::Expect(_) => "expect",
        Step::Delay(_) => "delay",
        Step::Fault(_) => "fault",
        Step::Say(_) => "say",
        Step::Prompt(_) => "prompt",
        Step::CreateJob(_) => "create_job",
        Step::WaitForJob(_) => "wait_for_job",
        Step::Stop(_) => "stop",
    }
}

/// The rule for a device id (`devices[].id`, and every id a fleet group
/// expands to): an MQTT client id used in topics, not one of the harness's.
/// The reason, without saying which device.
pub fn check_device_id(id: &str) -> Result<(), DeviceIdError> {
    if id.is_empty() {
        return Err(DeviceIdError::Empty);
    }
    if id
        .chars()
        .any(|c| matches!(c, '/' | '+' | '#' | '$') || c.is_whitespace() || c.is_control())
    {
        return Err(DeviceIdError::NotForTopics);
    }
    if id == RESERVED_CLIENT_ID || id == CLOUD_CLIENT_ID {
        return Err(DeviceIdError::Harness(id.to_owned()));
    }
    Ok(())
}

/// Why a text cannot be a device id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    /// Empty.
    #[error("`id` must not be empty")]
    Empty,
    /// Holds a character a topic level cannot.
    #[error(
        "an id is an MQTT client id and used in topics; it must not contain `/`, `+`, `#`, `$` or blanks"
    )]
    NotForTopics,
    /// One of the harness's own client ids.
    #[error("`{0}` is the harness's own MQTT client id")]
    Harness(String),
}

/// An MQTT topic name (what a message is published to): no wildcards.
pub fn check_topic_name(topic: &str) -> Result<(), &'static str> {
    check_topic_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err("a topic to publish to cannot contain the wildcards `+` or `#`");
    }
    Ok(())
}

/// An MQTT topic filter (what is subscribed to): `+` is a whole level, `#`
/// is the whole last level.
pub fn check_topic_filter(filter: &str) -> Result<(), &'static str> {
    check_topic_common(filter)?;
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != levels.len() - 1) {
            return Err("`#` must be the whole last level (`a/#`)");
        }
        if level.contains('+') && *level != "+" {
            return Err("`+` must be a whole level (`a/+/b`)");
        }
    }
    Ok(())
}

fn check_topic_common(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("a topic must not be empty");
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err("a topic is at most 65535 bytes");
    }
    if topic.contains('\0') {
        return Err("a topic must not contain NUL");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters() {
        for ok in ["a", "a/b", "+", "#", "a/+/b", "a/#", "+/+", "/a", "a/"] {
            assert_eq!(check_topic_filter(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a#", "a/#/b", "#/a", "a+", "a/+b/c", "a/b+", "##"] {
            assert!(check_topic_filter(bad).is_err(), "{bad}");
        }
        assert!(check_topic_name("a/b").is_ok());
        assert!(check_topic_name("a/+").is_err());
        assert!(check_topic_name("a/#").is_err());
        assert!(check_topic_name("").is_err());
    }

    #[test]
    fn path_string() {
        let e = SemanticError {
            path: vec![
                PathSeg::Key("steps".into()),
                PathSeg::Index(2),
                PathSeg::Key("publish".into()),
                PathSeg::Key("qos".into()),
            ],
            message: String::new(),
        };
        assert_eq!(e.path_string(), "steps[2].publish.qos");
    }
}
