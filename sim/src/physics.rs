//! The physics world: rapier3d rigid bodies inside a headless Bevy app, stepped
//! by the scheduler on a fixed grid of virtual time.
//!
//! Why it looks like this (see DESIGN.md, "Time"):
//!
//! - Step `k` happens at virtual time `k * 1e9 / rate_hz` ns (integer maths), so
//!   the same scenario gives the same steps at the same times, whatever else runs.
//! - Each step runs our own [`PhysicsStep`] schedule with a
//!   `SingleThreadedExecutor` (step rapier, then copy poses into `Transform`s)
//!   instead of a full `app.update()`: ~0.2 µs of overhead per step instead of
//!   ~6 µs, on top of ~5.5 µs for rapier itself (measured, DESIGN.md).
//! - While every body sleeps, [`PhysicsWorld`] asks for no pause points at all,
//!   so the scheduler can jump time; on waking, the step counter moves to the
//!   grid point at or before "now" without calling rapier (nothing moves while
//!   everything sleeps) and stepping resumes on the grid.
//!
//! Conventions: Z up, metres, kilograms, seconds; gravity `(0, 0, -9.81)` by
//! default. Rapier state lives in the [`RapierWorld`] resource; robot twins can
//! reach it through [`PhysicsWorld::with_rapier`] or add their own systems to
//! [`PhysicsStep`] (in [`PhysicsSet::BeforeStep`]) through [`PhysicsWorld::with_app`].
//!
//! Ordering at one instant: a command given by a task at a grid time `t_k`
//! while the world is awake is seen by step `k` (tasks run before processes);
//! while the world sleeps, step `k` counts as already done at `t_k`, so the
//! command is first seen by step `k + 1` (at most one step later). Both are
//! deterministic.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bevy::app::App;
use bevy::ecs::schedule::{Schedule, ScheduleLabel, SingleThreadedExecutor, SystemSet};
use bevy::prelude::{
    Component, Entity, IntoScheduleConfigs, MinimalPlugins, Query, Res, ResMut, Resource,
    Transform, TransformPlugin,
};
use rapier3d::dynamics::{
    CCDSolver, ImpulseJointSet, IntegrationParameters, IslandManager, MultibodyJointSet,
    RigidBodyBuilder, RigidBodyHandle, RigidBodySet, SoftBodySet,
};
use rapier3d::geometry::{
    BroadPhaseBvh, ColliderBuilder, ColliderHandle, ColliderSet, NarrowPhase,
};
use rapier3d::math::Vector;
use rapier3d::pipeline::PhysicsPipeline;
use serde_json::json;

use crate::trace::channels;
use crate::{Nanos, Process, SECONDS, SimError, SimHandle, format_nanos};

/// Highest accepted step rate: 1 MHz (one step per microsecond of virtual time).
pub const MAX_RATE_HZ: u32 = 1_000_000;

/// Density used when a body gives no mass: about that of water, in kg/m³
/// (assumed; rapier's own default is 1.0).
pub const DEFAULT_DENSITY: f32 = 1000.0;

/// Half-extents of the floor box in x and y, in metres (assumed: a 2 km square
/// is "infinite" for a table-top robot). Its thickness is 1 m, top at z = 0.
pub const FLOOR_HALF_SIZE: f32 = 1000.0;

/// How the physics world is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct PhysicsConfig {
    /// Fixed step rate in Hz (default 1000). Must be in `1..=MAX_RATE_HZ`.
    pub rate_hz: u32,
    /// Gravity in m/s² (default `(0, 0, -9.81)`, Z up).
    pub gravity: [f32; 3],
    /// A floor with its top surface at z = 0 (default: one with friction 0.8).
    pub floor: Option<FloorConfig>,
    /// Minimum virtual time between two samples on the `/physics` trace channel
    /// while something moves (default 10 ms; 0 = every step).
    pub sample_period: Nanos,
}

impl Default for PhysicsConfig {
    fn default() -> Self {
        PhysicsConfig {
            rate_hz: 1000,
            gravity: [0.0, 0.0, -9.81],
            floor: Some(FloorConfig::default()),
            sample_period: 10 * crate::MILLIS,
        }
    }
}

/// The floor's surface.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloorConfig {
    /// Friction coefficient (default 0.8; combined with a body's by averaging, rapier's default rule).
    pub friction: f32,
    /// Restitution (default 0.0).
    pub restitution: f32,
}

impl Default for FloorConfig {
    fn default() -> Self {
        FloorConfig {
            friction: 0.8,
            restitution: 0.0,
        }
    }
}

/// A body's collision shape, centred on the body's origin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// A box.
    Cuboid {
        /// Half sizes along the body's x, y, z, in metres.
        half_extents: [f32; 3],
    },
    /// A sphere.
    Ball {
        /// Radius in metres.
        radius: f32,
    },
    /// An upright cylinder: its axis is the body's z axis (rapier's own
    /// cylinder axis is y; we rotate the collider so "upright" means Z up).
    Cylinder {
        /// Half of the height along z, in metres.
        half_height: f32,
        /// Radius in metres.
        radius: f32,
    },
}

/// A rigid body to add to the world.
#[derive(Debug, Clone, PartialEq)]
pub struct BodySpec {
    /// Unique name (used in traces and queries).
    pub name: String,
    /// Collision shape.
    pub shape: Shape,
    /// Initial position of the body's origin, metres.
    pub position: [f32; 3],
    /// Initial heading: rotation about +Z, degrees, counter-clockwise seen from above.
    pub yaw_deg: f32,
    /// Dynamic (moves under forces) or fixed.
    pub dynamic: bool,
    /// Mass in kg; `None` uses [`DEFAULT_DENSITY`]. Ignored for fixed bodies.
    pub mass: Option<f32>,
    /// Friction coefficient (>= 0).
    pub friction: f32,
    /// Restitution (0 = no bounce, 1 = elastic).
    pub restitution: f32,
}

impl BodySpec {
    /// A dynamic body at the origin with no yaw, density-based mass, friction 0.5
    /// and no bounce (assumed defaults).
    pub fn new(name: impl Into<String>, shape: Shape) -> Self {
        BodySpec {
            name: name.into(),
            shape,
            position: [0.0; 3],
            yaw_deg: 0.0,
            dynamic: true,
            mass: None,
            friction: 0.5,
            restitution: 0.0,
        }
    }

    /// Sets the initial position.
    pub fn at(mut self, position: [f32; 3]) -> Self {
        self.position = position;
        self
    }

    /// Makes the body fixed (it never moves).
    pub fn fixed(mut self) -> Self {
        self.dynamic = false;
        self
    }
}

/// Identifies a body added with [`PhysicsWorld::add_body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyId {
    index: usize,
    handle: RigidBodyHandle,
    entity: Entity,
}

impl BodyId {
    /// Position of the body in insertion order (0 for the first body added).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The rapier handle, for use inside [`PhysicsWorld::with_rapier`].
    pub fn handle(&self) -> RigidBodyHandle {
        self.handle
    }

    /// The Bevy entity carrying the body's `Transform` and [`PhysicsBody`].
    pub fn entity(&self) -> Entity {
        self.entity
    }
}

/// A body's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Position of the body's origin, metres.
    pub position: [f32; 3],
    /// Orientation quaternion (x, y, z, w).
    pub rotation: [f32; 4],
    /// Linear velocity, m/s.
    pub linvel: [f32; 3],
    /// Angular velocity, rad/s.
    pub angvel: [f32; 3],
    /// Whether rapier has put the body to sleep.
    pub sleeping: bool,
}

/// A physics world could not be built, or a body or command was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PhysicsError {
    /// The configuration is unusable.
    #[error("invalid physics config: {0}")]
    Config(String),
    /// A body spec is unusable.
    #[error("invalid body {name:?}: {reason}")]
    InvalidBody {
        /// The body's name as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Another body already has this name.
    #[error("a body named {0:?} already exists")]
    DuplicateName(String),
    /// No body has this name.
    #[error("no body named {0:?}")]
    UnknownBody(String),
    /// The body is fixed, so it cannot be given a velocity or impulse.
    #[error("body {0:?} is fixed and cannot be moved")]
    NotDynamic(String),
    /// A command carried unusable values.
    #[error("invalid command for body {name:?}: {reason}")]
    InvalidCommand {
        /// The body's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// The schedule run once per physics step (see [`PhysicsSet`] for its order).
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhysicsStep;

/// A schedule that only copies rapier poses into `Transform`s; run after
/// [`PhysicsWorld::with_rapier`], which may move bodies between steps.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhysicsSync;

/// The phases of [`PhysicsStep`], in order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhysicsSet {
    /// Robot twins' systems that act on rapier before it steps (motors, forces).
    BeforeStep,
    /// `pipeline.step` with the fixed dt.
    Step,
    /// Rapier poses copied into the body entities' `Transform`s.
    Sync,
}

/// The step being computed, for systems in [`PhysicsStep`] (motor models need
/// virtual time and dt; they must never read the wall clock).
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepClock {
    /// Grid index of the step being run.
    pub step: u64,
    /// Its virtual time.
    pub time: Nanos,
    /// Step length in ns (rounded down).
    pub dt_ns: Nanos,
}

/// Marks a Bevy entity as the mirror of a rapier body.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysicsBody {
    /// The rapier body this entity follows.
    pub handle: RigidBodyHandle,
}

/// All rapier state, as one Bevy resource. Fields are public so robot twins
/// can borrow them separately (rapier's API wants them split).
#[derive(Resource)]
pub struct RapierWorld {
    /// Gravity, m/s².
    pub gravity: Vector,
    /// `dt` is `1 / rate_hz`; the rest is rapier's defaults.
    pub integration_parameters: IntegrationParameters,
    /// The stepping pipeline.
    pub pipeline: PhysicsPipeline,
    /// Awake/sleeping islands.
    pub islands: IslandManager,
    /// Broad phase (rapier 0.36's `DefaultBroadPhase` is this BVH).
    pub broad_phase: BroadPhaseBvh,
    /// Narrow phase (contacts).
    pub narrow_phase: NarrowPhase,
    /// Rigid bodies.
    pub bodies: RigidBodySet,
    /// Colliders.
    pub colliders: ColliderSet,
    /// Impulse joints.
    pub impulse_joints: ImpulseJointSet,
    /// Multibody joints.
    pub multibody_joints: MultibodyJointSet,
    /// Soft bodies (new in rapier 0.36; `step` needs the set even when empty).
    pub soft_bodies: SoftBodySet,
    /// Continuous collision detection.
    pub ccd_solver: CCDSolver,
}

impl RapierWorld {
    fn new(gravity: [f32; 3], dt: f32) -> Self {
        let integration_parameters = IntegrationParameters {
            dt,
            ..IntegrationParameters::default()
        };
        RapierWorld {
            gravity: Vector::from_array(gravity),
            integration_parameters,
            pipeline: PhysicsPipeline::new(),
            islands: IslandManager::new(),
            broad_phase: BroadPhaseBvh::new(),
            narrow_phase: NarrowPhase::new(),
            bodies: RigidBodySet::new(),
            colliders: ColliderSet::new(),
            impulse_joints: ImpulseJointSet::new(),
            multibody_joints: MultibodyJointSet::new(),
            soft_bodies: SoftBodySet::new(),
            ccd_solver: CCDSolver::new(),
        }
    }

    /// Advances rapier by one fixed step (no hooks, no event handler).
    pub fn step(&mut self) {
        let RapierWorld {
            gravity,
            integration_parameters,
            pipeline,
            islands,
            broad_phase,
            narrow_phase,
            bodies,
            colliders,
            impulse_joints,
            multibody_joints,
            soft_bodies,
            ccd_solver,
        } = self;
        pipeline.step(
            *gravity,
            integration_parameters,
            islands,
            broad_phase,
            narrow_phase,
            bodies,
            colliders,
            impulse_joints,
            multibody_joints,
            soft_bodies,
            ccd_solver,
            &(),
            &(),
        );
    }

    /// True while some body still needs stepping: a dynamic body that is awake,
    /// or a kinematic body with a velocity (rapier never puts those to sleep).
    pub fn needs_stepping(&self) -> bool {
        self.bodies.iter().any(|(_, rb)| {
            rb.is_enabled()
                && ((rb.is_dynamic() && !rb.is_sleeping()) || (rb.is_kinematic() && rb.is_moving()))
        })
    }
}

fn step_rapier(mut rapier: ResMut<RapierWorld>) {
    rapier.step();
}

fn sync_transforms(rapier: Res<RapierWorld>, mut bodies: Query<(&PhysicsBody, &mut Transform)>) {
    for (body, mut transform) in &mut bodies {
        let Some(rb) = rapier.bodies.get(body.handle) else {
            continue;
        };
        if rb.is_fixed() {
            continue;
        }
        let pose = rb.position();
        let translation = bevy::math::Vec3::from_array(pose.translation.to_array());
        let rotation = bevy::math::Quat::from_array(pose.rotation.to_array());
        if transform.translation != translation || transform.rotation != rotation {
            transform.translation = translation;
            transform.rotation = rotation;
        }
    }
}

struct BodyEntry {
    name: String,
    handle: RigidBodyHandle,
    entity: Entity,
    dynamic: bool,
}

struct Inner {
    handle: SimHandle,
    app: App,
    rate_hz: u32,
    sample_period: Nanos,
    /// Grid index of the world's state: steps `1..=steps` are done (or were skipped asleep).
    steps: u64,
    /// Steps rapier actually computed.
    rapier_steps: u64,
    /// Whether something needs stepping (cached; refreshed after every change).
    awake: bool,
    /// The first step time at or after which the next trace sample is taken.
    next_sample: Nanos,
    bodies: Vec<BodyEntry>,
    by_name: HashMap<String, usize>,
}

impl Inner {
    /// Virtual time of step `k`: `k * 1e9 / rate` rounded down.
    fn step_time(&self, k: u64) -> Nanos {
        let t = u128::from(k) * u128::from(SECONDS) / u128::from(self.rate_hz);
        Nanos::try_from(t).unwrap_or(Nanos::MAX)
    }

    /// The last grid index whose time is at or before `now`.
    fn grid_index_at(&self, now: Nanos) -> u64 {
        let k = u128::from(now) * u128::from(self.rate_hz) / u128::from(SECONDS);
        u64::try_from(k).unwrap_or(u64::MAX)
    }

    fn rapier(&self) -> &RapierWorld {
        self.app.world().resource::<RapierWorld>()
    }

    fn rapier_mut(&mut self) -> &mut RapierWorld {
        self.app
            .world_mut()
            .resource_mut::<RapierWorld>()
            .into_inner()
    }

    /// Re-reads whether anything needs stepping after a change made between
    /// steps (a body added, a command, `with_rapier`). On waking, skipped steps
    /// are counted up to the grid point at or before now.
    fn refresh_awake(&mut self) {
        let awake = self.rapier().needs_stepping();
        if awake && !self.awake {
            self.steps = self.steps.max(self.grid_index_at(self.handle.now()));
            self.next_sample = self
                .step_time(self.steps)
                .saturating_add(self.sample_period);
        }
        self.awake = awake;
    }

    fn entry(&self, name: &str) -> Result<&BodyEntry, PhysicsError> {
        self.by_name
            .get(name)
            .map(|&i| &self.bodies[i])
            .ok_or_else(|| PhysicsError::UnknownBody(name.to_string()))
    }

    fn dynamic_entry(&self, name: &str) -> Result<RigidBodyHandle, PhysicsError> {
        let entry = self.entry(name)?;
        if entry.dynamic {
            Ok(entry.handle)
        } else {
            Err(PhysicsError::NotDynamic(name.to_string()))
        }
    }

    /// Runs one physics step and its bookkeeping.
    fn step_once(&mut self) -> Result<(), SimError> {
        let clock = StepClock {
            step: self.steps + 1,
            time: self.step_time(self.steps + 1),
            dt_ns: SECONDS / u64::from(self.rate_hz),
        };
        self.app.world_mut().insert_resource(clock);
        self.app.world_mut().run_schedule(PhysicsStep);
        self.steps += 1;
        self.rapier_steps += 1;
        let k = self.steps;

        let quarantined = self.rapier().pipeline.quarantine().bodies().to_vec();
        if !quarantined.is_empty() {
            let names: Vec<String> = quarantined
                .iter()
                .map(|h| {
                    self.bodies
                        .iter()
                        .find(|b| b.handle == *h)
                        .map_or_else(|| format!("{h:?}"), |b| b.name.clone())
                })
                .collect();
            return Err(SimError::Process {
                process: "physics".to_string(),
                message: format!(
                    "step {k}: rapier disabled bodies whose state went non-finite: {}",
                    names.join(", ")
                ),
                at: self.handle.now(),
            });
        }

        let was_awake = self.awake;
        self.awake = self.rapier().needs_stepping();
        let fell_asleep = was_awake && !self.awake;
        let t = self.step_time(k);
        let due = t >= self.next_sample;
        if due || fell_asleep {
            let sample = self.sample(k);
            self.handle.trace(channels::PHYSICS, sample);
            self.next_sample = t.saturating_add(self.sample_period);
        }
        Ok(())
    }

    /// The `/physics` record for step `k`: every dynamic body, in insertion order.
    fn sample(&self, k: u64) -> serde_json::Value {
        let rapier = self.rapier();
        let bodies: Vec<serde_json::Value> = self
            .bodies
            .iter()
            .filter(|b| b.dynamic)
            .filter_map(|b| {
                let rb = rapier.bodies.get(b.handle)?;
                let pose = rb.position();
                Some(json!({
                    "name": b.name,
                    "p": f32s(&pose.translation.to_array()),
                    "q": f32s(&pose.rotation.to_array()),
                    "v": f32s(&rb.linvel().to_array()),
                }))
            })
            .collect();
        json!({ "step": k, "asleep": !self.awake, "bodies": bodies })
    }
}

/// The physics world. A cheap, clonable handle: the runner keeps one clone to
/// query and command bodies, another is added to the [`crate::Sim`] as a
/// [`Process`]. Not re-entrant: don't call back into the world from inside
/// [`with_rapier`](Self::with_rapier) or [`with_app`](Self::with_app).
#[derive(Clone)]
pub struct PhysicsWorld {
    inner: Rc<RefCell<Inner>>,
}

impl PhysicsWorld {
    /// Builds the world (and its floor, if configured). The first step is due
    /// at the first grid time after now, once a body needs it.
    pub fn new(handle: &SimHandle, config: PhysicsConfig) -> Result<Self, PhysicsError> {
        if config.rate_hz == 0 || config.rate_hz > MAX_RATE_HZ {
            return Err(PhysicsError::Config(format!(
                "rate_hz must be in 1..={MAX_RATE_HZ}, got {}",
                config.rate_hz
            )));
        }
        if !config.gravity.iter().all(|g| g.is_finite()) {
            return Err(PhysicsError::Config(format!(
                "gravity must be finite, got {:?}",
                config.gravity
            )));
        }
        if let Some(floor) = &config.floor {
            check_surface(floor.friction, floor.restitution)
                .map_err(|reason| PhysicsError::Config(format!("floor: {reason}")))?;
        }

        let dt = 1.0 / config.rate_hz as f32;
        let mut rapier = RapierWorld::new(config.gravity, dt);
        if let Some(floor) = &config.floor {
            let body = rapier
                .bodies
                .insert(RigidBodyBuilder::fixed().translation(Vector::new(0.0, 0.0, -0.5)));
            let collider = ColliderBuilder::cuboid(FLOOR_HALF_SIZE, FLOOR_HALF_SIZE, 0.5)
                .friction(floor.friction)
                .restitution(floor.restitution);
            let RapierWorld {
                bodies, colliders, ..
            } = &mut rapier;
            colliders.insert_with_parent(collider, body, bodies);
        }

        let mut app = App::new();
        app.add_plugins((MinimalPlugins, TransformPlugin));

        let mut step = Schedule::new(PhysicsStep);
        step.set_executor(SingleThreadedExecutor::new());
        step.configure_sets((PhysicsSet::BeforeStep, PhysicsSet::Step, PhysicsSet::Sync).chain());
        step.add_systems((
            step_rapier.in_set(PhysicsSet::Step),
            sync_transforms.in_set(PhysicsSet::Sync),
        ));
        app.add_schedule(step);

        let mut sync = Schedule::new(PhysicsSync);
        sync.set_executor(SingleThreadedExecutor::new());
        sync.add_systems(sync_transforms);
        app.add_schedule(sync);

        app.insert_resource(rapier);
        app.insert_resource(StepClock {
            step: 0,
            time: 0,
            dt_ns: SECONDS / u64::from(config.rate_hz),
        });
        app.finish();
        app.cleanup();

        let mut inner = Inner {
            handle: handle.clone(),
            app,
            rate_hz: config.rate_hz,
            sample_period: config.sample_period,
            steps: 0,
            rapier_steps: 0,
            awake: false,
            next_sample: 0,
            bodies: Vec::new(),
            by_name: HashMap::new(),
        };
        inner.steps = inner.grid_index_at(handle.now());
        Ok(PhysicsWorld {
            inner: Rc::new(RefCell::new(inner)),
        })
    }

    /// Adds a body. Bad specs are rejected, never panic.
    pub fn add_body(&self, spec: &BodySpec) -> Result<BodyId, PhysicsError> {
        let invalid = |reason: String| PhysicsError::InvalidBody {
            name: spec.name.clone(),
            reason,
        };
        if spec.name.is_empty() {
            return Err(invalid("the name is empty".to_string()));
        }
        let mut inner = self.inner.borrow_mut();
        if inner.by_name.contains_key(&spec.name) {
            return Err(PhysicsError::DuplicateName(spec.name.clone()));
        }
        if !spec.position.iter().all(|v| v.is_finite()) {
            return Err(invalid(format!(
                "position must be finite, got {:?}",
                spec.position
            )));
        }
        if !spec.yaw_deg.is_finite() {
            return Err(invalid(format!(
                "yaw_deg must be finite, got {}",
                spec.yaw_deg
            )));
        }
        check_surface(spec.friction, spec.restitution).map_err(invalid)?;
        let collider = match spec.shape {
            Shape::Cuboid { half_extents } => {
                check_sizes("half_extents", &half_extents).map_err(invalid)?;
                let [x, y, z] = half_extents;
                ColliderBuilder::cuboid(x, y, z)
            }
            Shape::Ball { radius } => {
                check_sizes("radius", &[radius]).map_err(invalid)?;
                ColliderBuilder::ball(radius)
            }
            Shape::Cylinder {
                half_height,
                radius,
            } => {
                check_sizes("half_height and radius", &[half_height, radius]).map_err(invalid)?;
                // rapier's cylinder axis is y; turn it onto the body's z.
                ColliderBuilder::cylinder(half_height, radius)
                    .rotation(Vector::X * std::f32::consts::FRAC_PI_2)
            }
        };
        let mut collider = collider
            .friction(spec.friction)
            .restitution(spec.restitution);
        if spec.dynamic {
            collider = match spec.mass {
                Some(mass) if mass.is_finite() && mass > 0.0 => collider.mass(mass),
                Some(mass) => {
                    return Err(invalid(format!(
                        "mass must be finite and > 0 kg, got {mass}"
                    )));
                }
                None => collider.density(DEFAULT_DENSITY),
            };
        }

        let yaw = spec.yaw_deg.to_radians();
        let builder = if spec.dynamic {
            RigidBodyBuilder::dynamic()
        } else {
            RigidBodyBuilder::fixed()
        };
        let body = builder
            .translation(Vector::from_array(spec.position))
            .rotation(Vector::Z * yaw);

        let (handle, position, rotation) = {
            let RapierWorld {
                bodies, colliders, ..
            } = inner.rapier_mut();
            let handle = bodies.insert(body);
            let _: ColliderHandle = colliders.insert_with_parent(collider, handle, bodies);
            let pose = bodies[handle].position();
            (
                handle,
                pose.translation.to_array(),
                pose.rotation.to_array(),
            )
        };
        let entity = inner
            .app
            .world_mut()
            .spawn((
                PhysicsBody { handle },
                bevy::ecs::name::Name::new(spec.name.clone()),
                Transform {
                    translation: bevy::math::Vec3::from_array(position),
                    rotation: bevy::math::Quat::from_array(rotation),
                    ..Transform::default()
                },
            ))
            .id();
        let index = inner.bodies.len();
        inner.bodies.push(BodyEntry {
            name: spec.name.clone(),
            handle,
            entity,
            dynamic: spec.dynamic,
        });
        inner.by_name.insert(spec.name.clone(), index);
        inner.refresh_awake();
        Ok(BodyId {
            index,
            handle,
            entity,
        })
    }

    /// The id of a body by name.
    pub fn body_id(&self, name: &str) -> Option<BodyId> {
        let inner = self.inner.borrow();
        let &index = inner.by_name.get(name)?;
        let entry = &inner.bodies[index];
        Some(BodyId {
            index,
            handle: entry.handle,
            entity: entry.entity,
        })
    }

    /// A body's current state, read from rapier.
    pub fn pose(&self, name: &str) -> Option<Pose> {
        let inner = self.inner.borrow();
        let entry = inner.entry(name).ok()?;
        let rb = inner.rapier().bodies.get(entry.handle)?;
        let pose = rb.position();
        Some(Pose {
            position: pose.translation.to_array(),
            rotation: pose.rotation.to_array(),
            linvel: rb.linvel().to_array(),
            angvel: rb.angvel().to_array(),
            sleeping: rb.is_sleeping(),
        })
    }

    /// Names of the bodies added with [`add_body`](Self::add_body), in insertion order.
    pub fn body_names(&self) -> Vec<String> {
        self.inner
            .borrow()
            .bodies
            .iter()
            .map(|b| b.name.clone())
            .collect()
    }

    /// Sets a dynamic body's linear (m/s) and angular (rad/s) velocity and wakes it.
    pub fn set_velocity(
        &self,
        name: &str,
        linvel: [f32; 3],
        angvel: [f32; 3],
    ) -> Result<(), PhysicsError> {
        if !linvel.iter().chain(&angvel).all(|v| v.is_finite()) {
            return Err(PhysicsError::InvalidCommand {
                name: name.to_string(),
                reason: format!("velocity must be finite, got {linvel:?} {angvel:?}"),
            });
        }
        let mut inner = self.inner.borrow_mut();
        let handle = inner.dynamic_entry(name)?;
        {
            let rb = &mut inner.rapier_mut().bodies[handle];
            rb.set_linvel(Vector::from_array(linvel), true);
            rb.set_angvel(Vector::from_array(angvel), true);
        }
        inner.refresh_awake();
        Ok(())
    }

    /// Applies an impulse (N·s) at a dynamic body's centre of mass and wakes it.
    pub fn apply_impulse(&self, name: &str, impulse: [f32; 3]) -> Result<(), PhysicsError> {
        if !impulse.iter().all(|v| v.is_finite()) {
            return Err(PhysicsError::InvalidCommand {
                name: name.to_string(),
                reason: format!("impulse must be finite, got {impulse:?}"),
            });
        }
        let mut inner = self.inner.borrow_mut();
        let handle = inner.dynamic_entry(name)?;
        inner.rapier_mut().bodies[handle].apply_impulse(Vector::from_array(impulse), true);
        inner.refresh_awake();
        Ok(())
    }

    /// The grid index of the world's state: steps done, plus steps skipped
    /// while everything slept, up to now.
    pub fn step_count(&self) -> u64 {
        let inner = self.inner.borrow();
        if inner.awake {
            inner.steps
        } else {
            inner.steps.max(inner.grid_index_at(inner.handle.now()))
        }
    }

    /// Steps rapier actually computed (skipped sleeping steps not included).
    pub fn rapier_steps(&self) -> u64 {
        self.inner.borrow().rapier_steps
    }

    /// The fixed step rate.
    pub fn rate_hz(&self) -> u32 {
        self.inner.borrow().rate_hz
    }

    /// Whether some body needs stepping (otherwise the world asks for no time).
    pub fn is_awake(&self) -> bool {
        self.inner.borrow().awake
    }

    /// Escape hatch for robot twins: direct access to the rapier state.
    /// Afterwards, `Transform`s are re-synced and sleeping is re-read (waking a
    /// body here wakes the world, as a command would).
    pub fn with_rapier<R>(&self, f: impl FnOnce(&mut RapierWorld) -> R) -> R {
        let mut inner = self.inner.borrow_mut();
        let result = f(inner.rapier_mut());
        inner.app.world_mut().run_schedule(PhysicsSync);
        inner.refresh_awake();
        result
    }

    /// Escape hatch to the Bevy app, e.g. to add systems to [`PhysicsStep`] in
    /// [`PhysicsSet::BeforeStep`]. Never call `app.run()` or `app.update()` in a run.
    pub fn with_app<R>(&self, f: impl FnOnce(&mut App) -> R) -> R {
        let mut inner = self.inner.borrow_mut();
        let result = f(&mut inner.app);
        inner.refresh_awake();
        result
    }
}

impl Process for PhysicsWorld {
    fn next_due(&mut self) -> Option<Nanos> {
        let inner = self.inner.borrow();
        inner.awake.then(|| inner.step_time(inner.steps + 1))
    }

    fn run_due(&mut self, now: Nanos) -> Result<bool, SimError> {
        let mut inner = self.inner.borrow_mut();
        let mut did = false;
        while inner.awake && inner.step_time(inner.steps + 1) <= now {
            inner.step_once()?;
            did = true;
        }
        Ok(did)
    }
}

impl std::fmt::Debug for PhysicsWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("PhysicsWorld")
            .field("rate_hz", &inner.rate_hz)
            .field("steps", &inner.steps)
            .field("rapier_steps", &inner.rapier_steps)
            .field("awake", &inner.awake)
            .field("now", &format_nanos(inner.handle.now()))
            .field("bodies", &inner.bodies.len())
            .finish()
    }
}

/// f32s as JSON numbers printed with the shortest digits that read back as
/// the same f32 (exact, not rounded). `serde_json::Value` holds f64, so
/// `json!(x_f32)` would print the widened value with ~17 digits instead.
fn f32s(values: &[f32]) -> Vec<serde_json::Value> {
    values
        .iter()
        .map(|v| {
            v.to_string()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        })
        .collect()
}

fn check_surface(friction: f32, restitution: f32) -> Result<(), String> {
    if !(friction.is_finite() && friction >= 0.0) {
        return Err(format!("friction must be finite and >= 0, got {friction}"));
    }
    if !(restitution.is_finite() && (0.0..=1.0).contains(&restitution)) {
        return Err(format!("restitution must be in 0..=1, got {restitution}"));
    }
    Ok(())
}

fn check_sizes(what: &str, sizes: &[f32]) -> Result<(), String> {
    if sizes.iter().all(|s| s.is_finite() && *s > 0.0) {
        Ok(())
    } else {
        Err(format!("{what} must be finite and > 0 m, got {sizes:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MILLIS, RunStop, Sim, TraceRecord};

    fn cube() -> BodySpec {
        BodySpec::new(
            "cube",
            Shape::Cuboid {
                half_extents: [0.1; 3],
            },
        )
        .at([0.0, 0.0, 1.0])
    }

    fn world(sim: &Sim, rate_hz: u32) -> PhysicsWorld {
        PhysicsWorld::new(
            &sim.handle(),
            PhysicsConfig {
                rate_hz,
                ..PhysicsConfig::default()
            },
        )
        .unwrap()
    }

    struct Landing {
        pose: Pose,
        trace: Vec<TraceRecord>,
        world: PhysicsWorld,
        sim: Sim,
    }

    fn drop_cube(rate_hz: u32) -> Landing {
        let mut sim = Sim::new(7);
        let world = world(&sim, rate_hz);
        world.add_body(&cube()).unwrap();
        sim.add_process("physics", world.clone());
        // The world runs out of work once the cube sleeps: keep time going to 3 s.
        let h = sim.handle();
        sim.spawn("timeline", async move { h.sleep_until(3 * SECONDS).await });
        let stop = sim.run_until(3 * SECONDS, |_| false).unwrap();
        assert_ne!(stop, RunStop::Condition);
        assert_eq!(sim.now(), 3 * SECONDS);
        let pose = world.pose("cube").unwrap();
        let trace = sim
            .take_trace()
            .records
            .into_iter()
            .filter(|r| r.channel == channels::PHYSICS)
            .collect();
        Landing {
            pose,
            trace,
            world,
            sim,
        }
    }

    fn assert_rests_on_floor(pose: &Pose) {
        let [x, y, z] = pose.position;
        assert!((z - 0.1).abs() <= 0.005, "cube rests at z = {z}");
        // A flat 4.4 m/s impact makes rapier's contact solver kick the cube
        // sideways a little (about 1 cm at 1 kHz); it must not wander off.
        assert!(x.abs() < 0.02 && y.abs() < 0.02, "cube drifted to {x}, {y}");
        assert!(pose.sleeping, "cube is not sleeping: {pose:?}");
        let speed = pose.linvel.iter().map(|v| v * v).sum::<f32>().sqrt();
        let spin = pose.angvel.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(speed < 1e-3 && spin < 1e-3, "cube still moves: {pose:?}");
    }

    fn bits(p: &Pose) -> Vec<u32> {
        p.position
            .iter()
            .chain(&p.rotation)
            .chain(&p.linvel)
            .chain(&p.angvel)
            .map(|v| v.to_bits())
            .collect()
    }

    #[test]
    fn dropped_cube_lands_sleeps_and_replays_bit_identically() {
        let started = std::time::Instant::now();
        let first = drop_cube(1000);
        eprintln!(
            "drop test, one run: {:?} wall, {} rapier steps",
            started.elapsed(),
            first.world.rapier_steps()
        );
        assert_rests_on_floor(&first.pose);
        assert_eq!(first.world.step_count(), 3000);
        assert!(first.world.rapier_steps() < 3000, "never slept");

        // Trace: samples at least 10 ms apart, the last one when it fell asleep.
        assert!(first.trace.len() > 10, "{} samples", first.trace.len());
        let last = first.trace.last().unwrap().json();
        assert_eq!(last["asleep"], true);
        assert_eq!(last["bodies"][0]["name"], "cube");
        for pair in first.trace[..first.trace.len() - 1].windows(2) {
            assert!(pair[1].time - pair[0].time >= 10 * MILLIS, "{pair:?}");
        }
        assert_eq!(
            first.trace.last().unwrap().time,
            first.world.rapier_steps() * MILLIS,
            "asleep sample at the last real step"
        );

        let second = drop_cube(1000);
        assert_eq!(bits(&first.pose), bits(&second.pose));
        assert_eq!(first.trace, second.trace);
        assert_eq!(first.world.rapier_steps(), second.world.rapier_steps());
    }

    #[test]
    fn other_rates_land_at_the_same_height_on_their_own_grid() {
        let run = drop_cube(240);
        assert_rests_on_floor(&run.pose);
        assert_eq!(run.world.step_count(), 720);
        assert_eq!(run.world.rate_hz(), 240);
        // Every sample sits on the 240 Hz grid, at least 10 ms after the one before
        // (except the one taken when the world falls asleep).
        for r in &run.trace {
            let k = r.json()["step"].as_u64().unwrap();
            assert_eq!(r.time, k * SECONDS / 240);
        }
        for pair in run.trace[..run.trace.len() - 1].windows(2) {
            assert!(pair[1].time - pair[0].time >= 10 * MILLIS, "{pair:?}");
        }
        assert_eq!(run.trace.last().unwrap().json()["asleep"], true);
    }

    #[test]
    fn a_sleeping_world_lets_time_jump() {
        let Landing { mut sim, world, .. } = drop_cube(1000);
        let mut process = world.clone();
        assert_eq!(process.next_due(), None);
        assert!(!world.is_awake());
        let real = world.rapier_steps();

        let h = sim.handle();
        sim.spawn("timeline", async move { h.sleep_until(60 * SECONDS).await });
        let started = std::time::Instant::now();
        sim.run_until(60 * SECONDS, |_| false).unwrap();
        eprintln!("57 s of sleeping world: {:?} wall", started.elapsed());
        assert_eq!(sim.now(), 60 * SECONDS);
        assert_eq!(
            world.rapier_steps(),
            real,
            "rapier stepped a sleeping world"
        );
        assert_eq!(world.step_count(), 60_000, "step counter follows the grid");
        assert_rests_on_floor(&world.pose("cube").unwrap());
        // With nothing else scheduled, the world is idle and time stays put.
        assert_eq!(
            sim.run_until(120 * SECONDS, |_| false).unwrap(),
            RunStop::Idle
        );
    }

    #[test]
    fn set_velocity_wakes_the_world_on_the_grid() {
        let Landing { mut sim, world, .. } = drop_cube(1000);
        // Move time off the grid while asleep, then push the cube.
        let h = sim.handle();
        sim.spawn("timeline", async move {
            h.sleep_until(3 * SECONDS + 500_000).await
        });
        sim.run_until(3 * SECONDS + 500_000, |_| false).unwrap();
        assert_eq!(world.step_count(), 3000);
        let real = world.rapier_steps();

        world
            .set_velocity("cube", [1.0, 0.0, 0.0], [0.0, 0.0, 0.0])
            .unwrap();
        assert!(world.is_awake());
        let mut process = world.clone();
        assert_eq!(process.next_due(), Some(3 * SECONDS + MILLIS));

        let h = sim.handle();
        sim.spawn("timeline", async move {
            h.sleep_until(3 * SECONDS + 200 * MILLIS).await
        });
        sim.run_until(3 * SECONDS + 200 * MILLIS, |_| false)
            .unwrap();
        assert_eq!(world.step_count(), 3200);
        assert_eq!(world.rapier_steps(), real + 200);
        let pose = world.pose("cube").unwrap();
        assert!(pose.position[0] > 0.05, "cube did not slide: {pose:?}");
        assert!((pose.position[2] - 0.1).abs() < 0.005, "{pose:?}");

        // Friction stops it and it sleeps again; an impulse wakes it once more.
        let h = sim.handle();
        sim.spawn("timeline", async move { h.sleep_until(6 * SECONDS).await });
        sim.run_until(6 * SECONDS, |_| false).unwrap();
        assert!(!world.is_awake());
        let x = world.pose("cube").unwrap().position[0];
        // 8 kg cube (water density): 8 N·s is 1 m/s.
        world.apply_impulse("cube", [0.0, 8.0, 0.0]).unwrap();
        assert!(world.is_awake());
        let h = sim.handle();
        sim.spawn("timeline", async move {
            h.sleep_until(6 * SECONDS + 100 * MILLIS).await
        });
        sim.run_until(6 * SECONDS + 100 * MILLIS, |_| false)
            .unwrap();
        let pose = world.pose("cube").unwrap();
        assert!(pose.position[1] > 0.05, "{pose:?}");
        assert!((pose.position[0] - x).abs() < 0.005, "{pose:?}");
    }

    #[test]
    fn bevy_transforms_follow_rapier() {
        let run = drop_cube(1000);
        let id = run.world.body_id("cube").unwrap();
        let z = run.world.with_app(|app| {
            app.world()
                .get::<Transform>(id.entity())
                .unwrap()
                .translation
                .z
        });
        assert_eq!(z, run.pose.position[2]);
        // Teleport through the escape hatch: the Transform follows, the world wakes.
        run.world.with_rapier(|r| {
            r.bodies[id.handle()].set_translation(Vector::new(0.0, 0.0, 2.0), true);
        });
        assert!(run.world.is_awake());
        let z = run.world.with_app(|app| {
            app.world()
                .get::<Transform>(id.entity())
                .unwrap()
                .translation
                .z
        });
        assert_eq!(z, 2.0);
    }

    #[test]
    fn shapes_and_fixed_bodies() {
        let mut sim = Sim::new(1);
        let world = world(&sim, 500);
        world
            .add_body(&BodySpec::new("ball", Shape::Ball { radius: 0.05 }).at([1.0, 0.0, 0.5]))
            .unwrap();
        let mut can = BodySpec::new(
            "can",
            Shape::Cylinder {
                half_height: 0.06,
                radius: 0.03,
            },
        )
        .at([-1.0, 0.0, 0.07]);
        can.yaw_deg = 90.0;
        can.mass = Some(0.35);
        world.add_body(&can).unwrap();
        world
            .add_body(
                &BodySpec::new(
                    "wall",
                    Shape::Cuboid {
                        half_extents: [0.05, 1.0, 0.25],
                    },
                )
                .at([0.0, 2.0, 0.25])
                .fixed(),
            )
            .unwrap();
        assert_eq!(world.body_names(), ["ball", "can", "wall"]);
        sim.add_process("physics", world.clone());
        let h = sim.handle();
        sim.spawn("timeline", async move { h.sleep_until(4 * SECONDS).await });
        sim.run_until(4 * SECONDS, |_| false).unwrap();
        let ball = world.pose("ball").unwrap();
        assert!((ball.position[2] - 0.05).abs() < 0.005, "{ball:?}");
        let can = world.pose("can").unwrap();
        assert!(
            (can.position[2] - 0.06).abs() < 0.005,
            "can stands upright: {can:?}"
        );
        let can_handle = world.body_id("can").unwrap().handle();
        let (mass, half) = world.with_rapier(|r| {
            let rb = &r.bodies[can_handle];
            let aabb = r.colliders[rb.colliders()[0]].compute_aabb();
            (rb.mass(), aabb.half_extents().to_array())
        });
        assert!((mass - 0.35).abs() < 1e-5, "mass {mass}");
        assert!(
            (half[2] - 0.06).abs() < 1e-4,
            "cylinder axis is not z: {half:?}"
        );
        assert!((half[0] - 0.03).abs() < 1e-3, "{half:?}");
        let wall = world.pose("wall").unwrap();
        assert_eq!(wall.position, [0.0, 2.0, 0.25]);
        // Fixed bodies are not sampled.
        let trace = sim.take_trace();
        let last = trace.records.last().unwrap().json();
        assert_eq!(last["bodies"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_specs_and_commands_are_errors() {
        let sim = Sim::new(1);
        let h = sim.handle();
        for config in [
            PhysicsConfig {
                rate_hz: 0,
                ..PhysicsConfig::default()
            },
            PhysicsConfig {
                rate_hz: MAX_RATE_HZ + 1,
                ..PhysicsConfig::default()
            },
            PhysicsConfig {
                gravity: [0.0, f32::NAN, -9.81],
                ..PhysicsConfig::default()
            },
            PhysicsConfig {
                floor: Some(FloorConfig {
                    friction: -1.0,
                    restitution: 0.0,
                }),
                ..PhysicsConfig::default()
            },
        ] {
            assert!(
                matches!(
                    PhysicsWorld::new(&h, config.clone()),
                    Err(PhysicsError::Config(_))
                ),
                "{config:?} accepted"
            );
        }
        let err = PhysicsWorld::new(
            &h,
            PhysicsConfig {
                rate_hz: 0,
                ..PhysicsConfig::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid physics config: rate_hz must be in 1..=1000000, got 0"
        );

        let world = world(&sim, 1000);
        world.add_body(&cube()).unwrap();
        assert_eq!(
            world.add_body(&cube()),
            Err(PhysicsError::DuplicateName("cube".into()))
        );
        let bad = |f: fn(&mut BodySpec)| {
            let mut spec = cube();
            spec.name = "bad".into();
            f(&mut spec);
            spec
        };
        for spec in [
            bad(|s| s.name = String::new()),
            bad(|s| s.position[1] = f32::INFINITY),
            bad(|s| s.yaw_deg = f32::NAN),
            bad(|s| s.mass = Some(0.0)),
            bad(|s| s.mass = Some(f32::NAN)),
            bad(|s| s.friction = f32::NAN),
            bad(|s| s.restitution = 1.5),
            bad(|s| s.shape = Shape::Ball { radius: 0.0 }),
            bad(|s| s.shape = Shape::Ball { radius: -1.0 }),
            bad(|s| {
                s.shape = Shape::Cuboid {
                    half_extents: [0.1, f32::NAN, 0.1],
                }
            }),
            bad(|s| {
                s.shape = Shape::Cylinder {
                    half_height: 0.1,
                    radius: 0.0,
                }
            }),
        ] {
            assert!(
                matches!(world.add_body(&spec), Err(PhysicsError::InvalidBody { .. })),
                "{spec:?} accepted"
            );
        }
        assert_eq!(
            world.body_names(),
            ["cube"],
            "rejected bodies left nothing behind"
        );

        world
            .add_body(
                &BodySpec::new(
                    "table",
                    Shape::Cuboid {
                        half_extents: [0.5; 3],
                    },
                )
                .fixed(),
            )
            .unwrap();
        assert_eq!(
            world.set_velocity("ghost", [0.0; 3], [0.0; 3]),
            Err(PhysicsError::UnknownBody("ghost".into()))
        );
        assert_eq!(
            world.apply_impulse("table", [1.0, 0.0, 0.0]),
            Err(PhysicsError::NotDynamic("table".into()))
        );
        assert!(matches!(
            world.set_velocity("cube", [f32::NAN, 0.0, 0.0], [0.0; 3]),
            Err(PhysicsError::InvalidCommand { .. })
        ));
        assert!(matches!(
            world.apply_impulse("cube", [0.0, 0.0, f32::INFINITY]),
            Err(PhysicsError::InvalidCommand { .. })
        ));
        assert_eq!(world.pose("ghost"), None);
    }

    #[test]
    fn trace_floats_read_back_exactly() {
        let values = [
            0.130_107_9_f32,
            -4.556_023e-5,
            1.0,
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN_POSITIVE,
        ];
        let json = serde_json::Value::Array(f32s(&values)).to_string();
        assert!(json.starts_with("[0.1301079,-0.00004556023,1.0,"), "{json}");
        let back: Vec<f32> = serde_json::from_str(&json).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&values));
        assert_eq!(f32s(&[f32::NAN]), [serde_json::Value::Null]);
    }

    #[test]
    fn an_empty_world_asks_for_no_time() {
        let mut sim = Sim::new(1);
        let world = world(&sim, 1000);
        sim.add_process("physics", world.clone());
        assert_eq!(sim.run_until(SECONDS, |_| false).unwrap(), RunStop::Idle);
        assert_eq!(world.rapier_steps(), 0);
    }
}
