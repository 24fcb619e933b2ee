//! The RVR's body and tank-tread drive as a rapier rigid body.
//!
//! Model: the chassis is a dynamic box whose own contact with the floor is
//! frictionless; the two treads supply every ground force instead. Each physics
//! step, the drive works out the impulse that would bring the chassis to the
//! velocity its treads command (forward speed `(l + r) / 2`, yaw rate
//! `(r - l) / track`) and kills sideways slip, each limited by what friction
//! can carry (`mu * m * g`). So the robot accelerates like a tracked vehicle,
//! pushes light obstacles, and stalls against a wall with its treads slipping
//! (encoders keep counting; the locator does not move).
//!
//! The motor controller runs at 400 Hz (the RVR's control loop): tread speed
//! set-points ramp towards the target at `tread_accel`, each capped at
//! ±`max_tread_speed`, the pair capped at ±`max_linear` and ±`max_yaw_rate`.
//! A drive command not refreshed within `command_timeout` hands over to the stop
//! controller, which decelerates at `stop_decel`, as the RVR's does.

use bevy::prelude::{Component, IntoScheduleConfigs, Query, Res, ResMut};
use rapier3d::dynamics::{CoefficientCombineRule, RigidBodyHandle};
use rapier3d::math::Vector;

use twinrig_sim::physics::{
    BodySpec, PhysicsBody, PhysicsError, PhysicsSet, PhysicsStep, PhysicsWorld, RapierWorld, Shape,
    StepClock,
};
use twinrig_sim::{Nanos, SECONDS};

/// Body and drivetrain parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct DriveParams {
    /// Mass in kg (assumed 1.5: not published).
    pub mass_kg: f32,
    /// Chassis box [length, width, height] in m (assumed 0.22 x 0.19 x 0.11: not published).
    pub size_m: [f32; 3],
    /// Effective track for skid-steer turning, m (0.2507, ROS lidar calibration).
    pub track_m: f32,
    /// Per-tread speed limit, m/s (1.555, SDK examples).
    pub max_tread_speed: f32,
    /// Linear speed limit, m/s (2.0, control system docs).
    pub max_linear: f32,
    /// Yaw rate limit, deg/s (624, control system docs).
    pub max_yaw_rate_deg: f32,
    /// Tread set-point acceleration, m/s² (assumed 4.0: not published).
    pub tread_accel: f32,
    /// Stop controller deceleration, m/s² (2.0, control system docs).
    pub stop_decel: f32,
    /// Drive command timeout (2 s default, control system docs).
    pub command_timeout: Nanos,
    /// Motor control loop rate, Hz (400, control system docs).
    pub control_hz: u32,
    /// Tread-floor friction coefficient (assumed 0.9, rubber treads on a hard floor).
    pub traction_mu: f32,
    /// Encoder counts per metre of tread travel (4338, ROS calibration).
    pub encoder_counts_per_m: f32,
}

impl Default for DriveParams {
    fn default() -> Self {
        DriveParams {
            mass_kg: 1.5,
            size_m: [0.22, 0.19, 0.11],
            track_m: 0.2507,
            max_tread_speed: 1.555,
            max_linear: 2.0,
            max_yaw_rate_deg: 624.0,
            tread_accel: 4.0,
            stop_decel: 2.0,
            command_timeout: 2 * SECONDS,
            control_hz: 400,
            traction_mu: 0.9,
            encoder_counts_per_m: 4338.0,
        }
    }
}

/// What the drive is asked to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DriveTarget {
    /// Tread speeds in m/s (left, right); positive drives forward.
    Treads {
        /// Left tread.
        left: f32,
        /// Right tread.
        right: f32,
    },
    /// Linear speed (m/s, + forward) and yaw rate (deg/s, + left), as the RVR's
    /// "drive RC SI" command.
    Rc {
        /// Linear speed.
        linear: f32,
        /// Yaw rate.
        yaw_rate_deg: f32,
    },
    /// Drive at `speed` (m/s, + forward) while turning to `yaw_deg` (world yaw
    /// relative to the drive's zero, + left), as "drive with heading" does.
    Heading {
        /// Speed.
        speed: f32,
        /// Target yaw.
        yaw_deg: f32,
    },
    /// The stop controller: decelerate to rest at `stop_decel`.
    Stop,
}

/// The drive state of one robot, a component of its body entity.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct TreadDrive {
    /// Parameters.
    pub params: DriveParams,
    /// Current target.
    pub target: DriveTarget,
    /// Tread speed set-points after ramping, m/s (left, right).
    pub tread: [f32; 2],
    /// Virtual time of the last drive command (for the timeout).
    pub last_command: Nanos,
    /// Next control-loop tick.
    pub next_tick: Nanos,
    /// Tread travel integrated from the set-points, m (what the encoders see).
    pub travel_m: [f64; 2],
    /// Tread travel regardless of direction, m (the integral of |set-point|):
    /// with `force_impulse_ns`, what the motors draw current for.
    pub abs_travel_m: [f64; 2],
    /// Integral of each tread's ground force magnitude, N·s (what the motors
    /// push against: acceleration, a wall, friction while turning).
    pub force_impulse_ns: [f64; 2],
    /// Set when the command timeout handed over to the stop controller; cleared by a command.
    pub timed_out: bool,
    /// Set when the drive came to rest after moving (the RVR's "robot has stopped" notify).
    pub stopped_event: bool,
    /// Set when the timeout fired, until taken by [`RvrBody::take_events`].
    pub timeout_event: bool,
    /// Virtual time the treads first turned (for command-to-motion latency).
    pub first_motion: Option<Nanos>,
}

impl TreadDrive {
    fn new(params: DriveParams) -> Self {
        TreadDrive {
            params,
            target: DriveTarget::Stop,
            tread: [0.0; 2],
            last_command: 0,
            next_tick: 0,
            travel_m: [0.0; 2],
            abs_travel_m: [0.0; 2],
            force_impulse_ns: [0.0; 2],
            timed_out: false,
            stopped_event: false,
            timeout_event: false,
            first_motion: None,
        }
    }

    /// Encoder counts (left, right), as the RVR's would report them.
    pub fn encoder_counts(&self) -> [i64; 2] {
        self.travel_m
            .map(|m| (m * f64::from(self.params.encoder_counts_per_m)).round() as i64)
    }

    /// True when the set-points are zero and the target is to stop.
    pub fn at_rest(&self) -> bool {
        self.tread == [0.0, 0.0]
            && match self.target {
                DriveTarget::Stop => true,
                DriveTarget::Treads { left, right } => left == 0.0 && right == 0.0,
                DriveTarget::Rc {
                    linear,
                    yaw_rate_deg,
                } => linear == 0.0 && yaw_rate_deg == 0.0,
                DriveTarget::Heading { .. } => false,
            }
    }

    /// Caps a tread pair to the tread, linear and yaw-rate limits, keeping its curvature.
    fn limit(&self, left: f32, right: f32) -> [f32; 2] {
        let p = &self.params;
        let finite = |v: f32| if v.is_finite() { v } else { 0.0 };
        let (mut l, mut r) = (finite(left), finite(right));
        let mut scale = 1.0f32;
        let peak = l.abs().max(r.abs());
        if peak > p.max_tread_speed {
            scale = scale.min(p.max_tread_speed / peak);
        }
        let linear = ((l + r) / 2.0).abs();
        if linear > p.max_linear {
            scale = scale.min(p.max_linear / linear);
        }
        let yaw = ((r - l) / p.track_m).abs().to_degrees();
        if yaw > p.max_yaw_rate_deg {
            scale = scale.min(p.max_yaw_rate_deg / yaw);
        }
        l *= scale;
        r *= scale;
        [l, r]
    }

    /// One control-loop tick of `dt` seconds at virtual time `now`.
    /// The yaw rate limit at linear speed `v` (deg/s): the RVR's default slew
    /// curve `a v² + b v + c`, {a, b, c} = {-177.78, 533.33, 200}, capped at
    /// `max_yaw_rate_deg`.
    pub fn yaw_slew_limit(&self, v: f32) -> f32 {
        let v = v.abs().min(self.params.max_linear);
        (-177.78 * v * v + 533.33 * v + 200.0).clamp(0.0, self.params.max_yaw_rate_deg)
    }

    /// Tread speeds for a linear speed and a yaw rate (deg/s, + left).
    fn treads_for(&self, linear: f32, yaw_rate_deg: f32) -> [f32; 2] {
        let half = yaw_rate_deg.to_radians() * self.params.track_m / 2.0;
        [linear - half, linear + half]
    }

    /// One control-loop tick of `dt` seconds at virtual time `now`, with the
    /// body's current yaw (deg, + left) for heading control.
    fn tick(&mut self, now: Nanos, dt: f32, yaw_deg: f32) {
        if !matches!(self.target, DriveTarget::Stop)
            && now.saturating_sub(self.last_command) >= self.params.command_timeout
        {
            self.target = DriveTarget::Stop;
            self.timed_out = true;
            self.timeout_event = true;
        }
        let moving = self.tread != [0.0, 0.0];
        let (goal, rate) = match self.target {
            DriveTarget::Treads { left, right } => {
                (self.limit(left, right), self.params.tread_accel)
            }
            DriveTarget::Rc {
                linear,
                yaw_rate_deg,
            } => {
                let [l, r] = self.treads_for(linear, yaw_rate_deg);
                (self.limit(l, r), self.params.tread_accel)
            }
            DriveTarget::Heading {
                speed,
                yaw_deg: goal,
            } => {
                // Proportional yaw control (assumed gain 5 /s) within the slew curve.
                let error = wrap_deg(goal - yaw_deg);
                let limit = self.yaw_slew_limit(speed);
                let rate = (5.0 * error).clamp(-limit, limit);
                let [l, r] = self.treads_for(speed, rate);
                (self.limit(l, r), self.params.tread_accel)
            }
            DriveTarget::Stop => ([0.0, 0.0], self.params.stop_decel),
        };
        let step = rate * dt;
        for (v, g) in self.tread.iter_mut().zip(goal) {
            let d = (g - *v).clamp(-step, step);
            *v = if (g - (*v + d)).abs() < 1e-6 {
                g
            } else {
                *v + d
            };
        }
        if moving && self.tread == [0.0, 0.0] {
            self.stopped_event = true;
        }
    }
}

/// Handle on an RVR body in a physics world.
#[derive(Clone)]
pub struct RvrBody {
    world: PhysicsWorld,
    name: String,
    handle: RigidBodyHandle,
    entity: bevy::prelude::Entity,
}

/// The body's planar state in the world frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanarPose {
    /// World x, m.
    pub x: f32,
    /// World y, m.
    pub y: f32,
    /// Heading about +z, rad, counter-clockwise (0 = world +x).
    pub yaw: f32,
    /// Pitch, rad.
    pub pitch: f32,
    /// Roll, rad.
    pub roll: f32,
    /// World velocity, m/s.
    pub vx: f32,
    /// World velocity, m/s.
    pub vy: f32,
    /// Yaw rate, rad/s.
    pub yaw_rate: f32,
}

impl RvrBody {
    /// Adds an RVR body named `name` on the floor at (x, y) facing `yaw_deg`
    /// (counter-clockwise from world +x), and its drive.
    pub fn spawn(
        world: &PhysicsWorld,
        name: &str,
        x: f32,
        y: f32,
        yaw_deg: f32,
        params: DriveParams,
    ) -> Result<RvrBody, PhysicsError> {
        install_systems(world);
        let [l, w, h] = params.size_m;
        let spec = BodySpec {
            name: name.to_string(),
            shape: Shape::Cuboid {
                half_extents: [l / 2.0, w / 2.0, h / 2.0],
            },
            position: [x, y, h / 2.0],
            yaw_deg,
            dynamic: true,
            mass: Some(params.mass_kg),
            friction: 0.0,
            restitution: 0.0,
        };
        let id = world.add_body(&spec)?;
        let handle = id.handle();
        world.with_rapier(|r| {
            let rb = &mut r.bodies[handle];
            // The treads carry all ground forces; the chassis itself slides freely.
            for &c in rb.colliders() {
                if let Some(col) = r.colliders.get_mut(c) {
                    col.set_friction_combine_rule(CoefficientCombineRule::Min);
                }
            }
        });
        let entity = id.entity();
        world.with_app(|app| {
            app.world_mut()
                .entity_mut(entity)
                .insert(TreadDrive::new(params));
        });
        Ok(RvrBody {
            world: world.clone(),
            name: name.to_string(),
            handle,
            entity,
        })
    }

    /// The body's name in the world.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the drive target at virtual time `now` (a drive command; resets the timeout).
    pub fn command(&self, target: DriveTarget, now: Nanos) {
        let entity = self.entity;
        let handle = self.handle;
        self.world.with_app(|app| {
            let world = app.world_mut();
            if let Some(mut drive) = world.get_mut::<TreadDrive>(entity) {
                drive.target = target;
                drive.last_command = now;
                drive.timed_out = false;
            }
            if let Some(mut rapier) = world.get_resource_mut::<RapierWorld>()
                && let Some(rb) = rapier.bodies.get_mut(handle)
            {
                rb.wake_up(true);
            }
        });
    }

    /// Sets the drive command timeout (the RVR's "set custom control system timeout").
    pub fn set_command_timeout(&self, timeout: Nanos) {
        let entity = self.entity;
        self.world.with_app(|app| {
            if let Some(mut drive) = app.world_mut().get_mut::<TreadDrive>(entity) {
                drive.params.command_timeout = timeout;
            }
        });
    }

    /// A copy of the drive state.
    pub fn drive(&self) -> TreadDrive {
        let entity = self.entity;
        self.world.with_app(|app| {
            app.world()
                .get::<TreadDrive>(entity)
                .cloned()
                .expect("an RVR body keeps its drive")
        })
    }

    /// Takes the "came to rest" and "timed out" flags (each reported once).
    pub fn take_events(&self) -> (bool, bool) {
        let entity = self.entity;
        self.world.with_app(|app| {
            let mut drive = app
                .world_mut()
                .get_mut::<TreadDrive>(entity)
                .expect("an RVR body keeps its drive");
            let events = (drive.stopped_event, drive.timeout_event);
            drive.stopped_event = false;
            drive.timeout_event = false;
            events
        })
    }

    /// Planar pose and velocity in the world frame.
    pub fn planar(&self) -> PlanarPose {
        let handle = self.handle;
        self.world.with_rapier(|r| {
            let rb = &r.bodies[handle];
            let q = rb.position().rotation;
            let (x, y, z, w) = (q.x as f64, q.y as f64, q.z as f64, q.w as f64);
            let yaw = (2.0 * (w * z + x * y)).atan2(1.0 - 2.0 * (y * y + z * z));
            let pitch = (2.0 * (w * y - z * x)).clamp(-1.0, 1.0).asin();
            let roll = (2.0 * (w * x + y * z)).atan2(1.0 - 2.0 * (x * x + y * y));
            let t = rb.position().translation;
            let v = rb.linvel();
            PlanarPose {
                x: t.x,
                y: t.y,
                yaw: yaw as f32,
                pitch: pitch as f32,
                roll: roll as f32,
                vx: v.x,
                vy: v.y,
                yaw_rate: rb.angvel().z,
            }
        })
    }
}

/// Adds the drive system to the world's step schedule once.
fn install_systems(world: &PhysicsWorld) {
    world.with_app(|app| {
        #[derive(bevy::prelude::Resource)]
        struct Installed;
        if app.world().contains_resource::<Installed>() {
            return;
        }
        app.world_mut().insert_resource(Installed);
        app.add_systems(PhysicsStep, drive_treads.in_set(PhysicsSet::BeforeStep));
    });
}

/// Runs the motor controllers and applies tread traction, before rapier steps.
fn drive_treads(
    clock: Res<StepClock>,
    mut rapier: ResMut<RapierWorld>,
    mut drives: Query<(&PhysicsBody, &mut TreadDrive)>,
) {
    let dt = clock.dt_ns as f32 / SECONDS as f32;
    let gravity = rapier.gravity.z.abs();
    for (body, mut drive) in &mut drives {
        let tick_ns = SECONDS / u64::from(drive.params.control_hz.max(1));
        let yaw_deg = rapier
            .bodies
            .get(body.handle)
            .map_or(0.0, |rb| yaw_of(rb.position().rotation).to_degrees());
        if drive.next_tick + tick_ns < clock.time {
            // The world slept; the controller resumes on its own grid.
            drive.next_tick = clock.time - (clock.time % tick_ns);
        }
        while drive.next_tick <= clock.time {
            let t = drive.next_tick;
            drive.tick(t, tick_ns as f32 / SECONDS as f32, yaw_deg);
            drive.next_tick = t + tick_ns;
        }
        let [l, r] = drive.tread;
        if drive.first_motion.is_none() && (l != 0.0 || r != 0.0) {
            drive.first_motion = Some(clock.time);
        }
        drive.travel_m[0] += f64::from(l * dt);
        drive.travel_m[1] += f64::from(r * dt);
        drive.abs_travel_m[0] += f64::from(l.abs() * dt);
        drive.abs_travel_m[1] += f64::from(r.abs() * dt);
        let Some(rb) = rapier.bodies.get_mut(body.handle) else {
            continue;
        };
        let moving =
            l != 0.0 || r != 0.0 || rb.linvel().length() > 1e-4 || rb.angvel().z.abs() > 1e-4;
        if !moving {
            continue;
        }
        let p = &drive.params;
        let mass = rb.mass();
        let rot = rb.position().rotation;
        let forward = rot * Vector::X;
        let left_dir = rot * Vector::Y;
        let v = rb.linvel();
        let v_fwd = v.dot(forward);
        let v_side = v.dot(left_dir);
        // Traction: what friction can carry this step, shared by both treads.
        let max_impulse = p.traction_mu * mass * gravity * dt;
        let want_fwd = (l + r) / 2.0;
        let j_fwd = (mass * (want_fwd - v_fwd)).clamp(-max_impulse, max_impulse);
        let j_side = (mass * -v_side).clamp(-max_impulse, max_impulse);
        let impulse = forward * j_fwd + left_dir * j_side;
        rb.apply_impulse(Vector::new(impulse.x, impulse.y, 0.0), true);
        let want_yaw = (r - l) / p.track_m;
        let inertia_z = rb.mass_properties().effective_angular_inertia().m33;
        let inertia_z = if inertia_z.is_finite() && inertia_z > 0.0 {
            inertia_z
        } else {
            mass * (p.size_m[0] * p.size_m[0] + p.size_m[1] * p.size_m[1]) / 12.0
        };
        let max_torque_impulse = max_impulse * p.track_m / 2.0;
        let j_yaw =
            (inertia_z * (want_yaw - rb.angvel().z)).clamp(-max_torque_impulse, max_torque_impulse);
        rb.apply_torque_impulse(Vector::new(0.0, 0.0, j_yaw), true);
        // Split into the treads: the forward impulse is their sum, the yaw
        // impulse their difference times half the track.
        let per_tread = j_yaw / p.track_m;
        drive.force_impulse_ns[0] += f64::from((j_fwd / 2.0 - per_tread).abs());
        drive.force_impulse_ns[1] += f64::from((j_fwd / 2.0 + per_tread).abs());
    }
}

/// Yaw (rad, counter-clockwise about +z) of a rotation.
fn yaw_of(q: rapier3d::math::Rotation) -> f32 {
    let (x, y, z, w) = (q.x as f64, q.y as f64, q.z as f64, q.w as f64);
    (2.0 * (w * z + x * y)).atan2(1.0 - 2.0 * (y * y + z * z)) as f32
}

/// Wraps an angle in degrees to (-180, 180].
pub fn wrap_deg(a: f32) -> f32 {
    let mut a = a % 360.0;
    if a > 180.0 {
        a -= 360.0;
    } else if a <= -180.0 {
        a += 360.0;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinrig_sim::physics::PhysicsConfig;
    use twinrig_sim::{MILLIS, Sim};

    fn world(sim: &Sim) -> PhysicsWorld {
        PhysicsWorld::new(&sim.handle(), PhysicsConfig::default()).unwrap()
    }

    fn setup() -> (Sim, PhysicsWorld, RvrBody) {
        let mut sim = Sim::new(1);
        let w = world(&sim);
        sim.add_process("physics", w.clone());
        let rvr = RvrBody::spawn(&w, "rvr", 0.0, 0.0, 0.0, DriveParams::default()).unwrap();
        // Settle on the floor.
        sim.run_until(SECONDS, |_| false).unwrap();
        (sim, w, rvr)
    }

    /// Keeps refreshing a command every 100 ms (as the SDKs do) until `until`.
    fn hold(sim: &mut Sim, rvr: &RvrBody, target: DriveTarget, until: Nanos) {
        while sim.now() < until {
            rvr.command(target, sim.now());
            let next = (sim.now() + 100 * MILLIS).min(until);
            sim.run_until(next, |_| false).unwrap();
        }
    }

    #[test]
    fn straight_drive_reaches_speed_and_covers_the_distance() {
        let (mut sim, _w, rvr) = setup();
        let start = rvr.planar();
        let t0 = sim.now();
        hold(
            &mut sim,
            &rvr,
            DriveTarget::Treads {
                left: 0.5,
                right: 0.5,
            },
            t0 + 2 * SECONDS,
        );
        let p = rvr.planar();
        // Ramp 0 -> 0.5 m/s at 4 m/s² takes 0.125 s (0.031 m), then 1.875 s at 0.5 m/s.
        let expected = 0.5 * 1.875 + 0.5 * 0.5 * 0.125;
        assert!(
            (p.x - start.x - expected).abs() < 0.02,
            "x moved {}",
            p.x - start.x
        );
        assert!(p.y.abs() < 0.005, "drifted sideways {}", p.y);
        assert!((p.vx - 0.5).abs() < 0.01, "speed {}", p.vx);
        let counts = rvr.drive().encoder_counts();
        let counted = counts[0] as f32 / 4338.0;
        assert!((counted - expected).abs() < 0.01, "encoders {counts:?}");
        // The treads pushed only to accelerate: 1.5 kg to 0.5 m/s is 0.75 N·s,
        // half per tread.
        let pushed = rvr.drive().force_impulse_ns;
        for f in pushed {
            assert!((f - 0.375).abs() < 0.05, "tread impulse {pushed:?}");
        }
        let abs = rvr.drive().abs_travel_m;
        assert!(
            (abs[0] as f32 - expected).abs() < 0.01,
            "abs travel {abs:?}"
        );
    }

    #[test]
    fn spinning_in_place_turns_at_the_commanded_rate() {
        let (mut sim, _w, rvr) = setup();
        let t0 = sim.now();
        // 90 deg/s: treads at ±(pi/2 * track / 2).
        let v = std::f32::consts::FRAC_PI_2 * 0.2507 / 2.0;
        hold(
            &mut sim,
            &rvr,
            DriveTarget::Treads { left: -v, right: v },
            t0 + SECONDS,
        );
        let p = rvr.planar();
        assert!(
            (p.yaw_rate - std::f32::consts::FRAC_PI_2).abs() < 0.02,
            "rate {}",
            p.yaw_rate
        );
        let yaw = p.yaw.to_degrees();
        assert!(yaw > 80.0 && yaw < 92.0, "turned {yaw} deg");
        assert!(
            p.x.abs() < 0.01 && p.y.abs() < 0.01,
            "wandered to {} {}",
            p.x,
            p.y
        );
    }

    #[test]
    fn limits_cap_treads_linear_speed_and_yaw_rate() {
        let d = TreadDrive::new(DriveParams::default());
        assert_eq!(d.limit(3.0, 3.0), [1.555, 1.555]);
        let [l, r] = d.limit(-1.555, 1.555);
        let yaw = ((r - l) / 0.2507).to_degrees();
        assert!((yaw - 624.0).abs() < 0.01, "yaw {yaw}");
        assert_eq!(d.limit(f32::NAN, 1.0)[0], 0.0);
    }

    #[test]
    fn without_fresh_commands_the_stop_controller_takes_over_after_two_seconds() {
        let (mut sim, _w, rvr) = setup();
        let t0 = sim.now();
        rvr.command(
            DriveTarget::Treads {
                left: 1.0,
                right: 1.0,
            },
            t0,
        );
        sim.run_until(t0 + 1990 * MILLIS, |_| false).unwrap();
        assert!((rvr.planar().vx - 1.0).abs() < 0.02);
        assert!(!rvr.drive().timed_out);
        sim.run_until(t0 + 2010 * MILLIS, |_| false).unwrap();
        assert!(rvr.drive().timed_out);
        // 1 m/s at 2 m/s² stops in 0.5 s.
        sim.run_until(t0 + 2400 * MILLIS, |_| false).unwrap();
        assert!(rvr.planar().vx > 0.05, "stopped too soon");
        sim.run_until(t0 + 2600 * MILLIS, |_| false).unwrap();
        assert!(
            rvr.planar().vx.abs() < 0.01,
            "still moving {}",
            rvr.planar().vx
        );
        let (stopped, timed_out) = rvr.take_events();
        assert!(stopped && timed_out);
        assert_eq!(rvr.take_events(), (false, false));
    }

    #[test]
    fn a_wall_stalls_the_robot_while_the_treads_slip() {
        let mut sim = Sim::new(1);
        let w = world(&sim);
        sim.add_process("physics", w.clone());
        w.add_body(
            &BodySpec::new(
                "wall",
                Shape::Cuboid {
                    half_extents: [0.05, 1.0, 0.25],
                },
            )
            .at([0.5, 0.0, 0.25])
            .fixed(),
        )
        .unwrap();
        let rvr = RvrBody::spawn(&w, "rvr", 0.0, 0.0, 0.0, DriveParams::default()).unwrap();
        sim.run_until(SECONDS, |_| false).unwrap();
        let t0 = sim.now();
        hold(
            &mut sim,
            &rvr,
            DriveTarget::Treads {
                left: 0.5,
                right: 0.5,
            },
            t0 + 3 * SECONDS,
        );
        let p = rvr.planar();
        // Front face stops at the wall face: 0.45 - 0.11 = 0.34.
        assert!(p.x < 0.35 && p.x > 0.30, "x {}", p.x);
        let travelled = rvr.drive().travel_m[0];
        assert!(travelled > 1.3, "treads stopped turning: {travelled}");
        // Against the wall each tread pushes at its traction limit,
        // mu m g / 2 = 0.9 * 1.5 * 9.81 / 2 = 6.6 N, for about 2.4 s.
        let pushed = rvr.drive().force_impulse_ns;
        for f in pushed {
            assert!(f > 12.0 && f < 20.0, "tread impulse {pushed:?}");
        }
    }

    #[test]
    fn the_same_commands_give_the_same_pose_bit_for_bit() {
        let run = || {
            let (mut sim, _w, rvr) = setup();
            let t0 = sim.now();
            hold(
                &mut sim,
                &rvr,
                DriveTarget::Treads {
                    left: 0.3,
                    right: 0.7,
                },
                t0 + 2 * SECONDS,
            );
            let p = rvr.planar();
            [p.x, p.y, p.yaw].map(f32::to_bits)
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn an_idle_robot_lets_the_world_sleep() {
        let (mut sim, w, _rvr) = setup();
        let before = w.rapier_steps();
        sim.run_until(sim.now() + 60 * SECONDS, |_| false).unwrap();
        assert!(
            w.rapier_steps() - before < 10,
            "stepped {} times",
            w.rapier_steps() - before
        );
    }

    #[test]
    fn rc_and_heading_targets_turn_the_robot() {
        let (mut sim, _w, rvr) = setup();
        let t0 = sim.now();
        hold(
            &mut sim,
            &rvr,
            DriveTarget::Rc {
                linear: 0.0,
                yaw_rate_deg: 90.0,
            },
            t0 + SECONDS,
        );
        let yaw = rvr.planar().yaw.to_degrees();
        assert!(yaw > 80.0 && yaw < 92.0, "rc turned {yaw}");
        let t1 = sim.now();
        hold(
            &mut sim,
            &rvr,
            DriveTarget::Heading {
                speed: 0.3,
                yaw_deg: -45.0,
            },
            t1 + 3 * SECONDS,
        );
        let p = rvr.planar();
        let yaw = p.yaw.to_degrees();
        assert!((yaw + 45.0).abs() < 2.0, "heading reached {yaw}");
        let heading = p.vy.atan2(p.vx).to_degrees();
        assert!((heading + 45.0).abs() < 3.0, "moving along {heading}");
    }

    #[test]
    fn the_slew_curve_matches_the_control_system_docs() {
        let d = TreadDrive::new(DriveParams::default());
        assert!((d.yaw_slew_limit(0.0) - 200.0).abs() < 1e-3);
        assert!((d.yaw_slew_limit(1.0) - 555.55).abs() < 0.01);
        assert!((d.yaw_slew_limit(1.5) - 600.0).abs() < 0.02);
    }

    #[test]
    fn angles_wrap_to_plus_minus_180() {
        assert_eq!(wrap_deg(190.0), -170.0);
        assert_eq!(wrap_deg(-190.0), 170.0);
        assert_eq!(wrap_deg(180.0), 180.0);
        assert_eq!(wrap_deg(-180.0), 180.0);
        assert_eq!(wrap_deg(720.0), 0.0);
    }
}
