//! Builds the world a run plays in: the broker, the physics and the
//! scenario's devices (a scene), the cloud twin and the fleet. `twinrig run`
//! (the runner) and `twinrig ota` both build theirs here; `twinrig serve`
//! has no broker or cloud and builds only its robot's twin.
//!
//! The order below is part of every golden trace: processes and tasks are
//! scheduled in the order they are added, and each draws its random streams
//! by name but its first events in that order. Reordering it changes the
//! goldens (rerun `twinrig record --update` and say why).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use twinrig_cloud::rules::pipeline::Pipeline;
use twinrig_sim::net::{Network, RoutedDelivery, RoutedPublish, Router};
use twinrig_sim::physics::{BodySpec, PhysicsConfig, PhysicsError, PhysicsWorld};
use twinrig_sim::{Nanos, Sim};

use crate::cloud_twin::{CloudTwin, CloudTwinError};
use crate::devices::{self, DeviceContext, DeviceKind, DeviceRuntime};
use crate::fleet::{Fleet, FleetError};
use crate::scenario::fleet::FleetConfig;
use crate::scenario::{Device, LinkModel};

/// The object store's bucket (the real system's video bucket).
pub const VIDEO_BUCKET: &str = "cc-amazing-video";

/// The object store's signing key. Fixed: presigned URLs are part of the
/// trace and must not change from run to run.
const OBJECT_STORE_KEY: &[u8] = b"twinrig-object-store";

/// Adapts the embedded rumqttd broker to the network's [`Router`].
pub struct CloudRouter(pub twinrig_cloud::Broker);

impl Router for CloudRouter {
    fn connect(&mut self, client: &str) -> Result<usize, String> {
        self.0
            .connect(client)
            .map(|c| c.0)
            .map_err(|e| e.to_string())
    }
    fn subscribe(&mut self, client: usize, filter: &str) -> Result<(), String> {
        self.0
            .subscribe(twinrig_cloud::ClientId(client), filter)
            .map_err(|e| e.to_string())
    }
    fn unsubscribe(&mut self, client: usize, filter: &str) -> Result<(), String> {
        self.0
            .unsubscribe(twinrig_cloud::ClientId(client), filter)
            .map_err(|e| e.to_string())
    }
    fn route(&mut self, batch: &[RoutedPublish]) -> Result<Vec<RoutedDelivery>, String> {
        let out: Vec<twinrig_cloud::Outgoing> = batch
            .iter()
            .map(|p| twinrig_cloud::Outgoing {
                from: twinrig_cloud::ClientId(p.from),
                topic: p.topic.clone(),
                payload: p.payload.clone(),
            })
            .collect();
        let deliveries = self.0.route(&out).map_err(|e| e.to_string())?;
        Ok(deliveries
            .into_iter()
            .map(|d| RoutedDelivery {
                publish: d.publish,
                to: d.to.0,
                filter: d.filter,
                topic: d.topic,
                payload: d.payload,
            })
            .collect())
    }
}

/// What to build.
pub struct WorldSpec<'a> {
    /// Physics and devices; `None` for a world of the cloud and fleet alone.
    pub scene: Option<SceneSpec<'a>>,
    /// The cloud's rules (None without rules).
    pub rules: Option<Pipeline>,
    /// Unix seconds that virtual time 0 stands for.
    pub epoch_unix_s: u64,
    /// The OTA fleet, if any.
    pub fleet: Option<FleetSpec<'a>>,
}

/// The physical part of a world.
pub struct SceneSpec<'a> {
    /// The physics world's settings.
    pub physics: PhysicsConfig,
    /// Fixed bodies, by name.
    pub obstacles: Vec<(String, BodySpec)>,
    /// The devices, spawned in this order.
    pub devices: &'a [Device],
    /// The kinds the devices may be of.
    pub kinds: &'a [&'static dyn DeviceKind],
    /// The link of a device that names none.
    pub default_link: &'a LinkModel,
}

/// The fleet part of a world.
pub struct FleetSpec<'a> {
    /// Types, groups, firmware and faults.
    pub config: &'a FleetConfig,
    /// The scenario's devices (group `members` are among them).
    pub members: &'a [Device],
    /// The link of a fleet that names none.
    pub default_link: &'a LinkModel,
    /// The longest the run may last (offline devices are out that long).
    pub run_limit: Nanos,
}

/// A built world, ready to run.
pub struct World {
    /// The broker's network.
    pub network: Network,
    /// The physics and devices, when a scene was asked for.
    pub scene: Option<Scene>,
    /// Cloud services beyond the broker (the object store).
    pub services: devices::CloudServices,
    /// The cloud twin, started.
    pub cloud: Rc<CloudTwin>,
    /// The fleet, started.
    pub fleet: Option<Rc<Fleet>>,
}

/// The physical part of a built world.
pub struct Scene {
    /// The physics world (a process of the sim).
    pub physics: PhysicsWorld,
    /// Every device's runtime, by id.
    pub devices: BTreeMap<String, Box<dyn DeviceRuntime>>,
    /// The command model of every device whose kind has one, by id.
    pub command_models: BTreeMap<String, &'static dyn twinrig_kind::CommandModel>,
}

/// Why a world could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The physics settings are invalid.
    #[error("physics: {0}")]
    Physics(#[source] PhysicsError),
    /// An obstacle could not be placed.
    #[error("obstacle {name}: {source}")]
    Obstacle {
        /// The obstacle.
        name: String,
        /// Why.
        #[source]
        source: PhysicsError,
    },
    /// The object store did not open.
    #[error("object store: {0}")]
    ObjectStore(String),
    /// A device names a kind that is not registered.
    #[error("unknown device kind {0}")]
    UnknownKind(String),
    /// A device's kind refused its params or could not build it.
    #[error("device {device} ({kind}): {message}")]
    Device {
        /// The device.
        device: String,
        /// Its kind.
        kind: String,
        /// What went wrong.
        message: String,
    },
    /// The cloud twin could not start.
    #[error(transparent)]
    Cloud(#[from] CloudTwinError),
    /// The fleet could not start.
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

/// Builds `spec` into `sim`.
pub fn build(sim: &mut Sim, spec: WorldSpec<'_>) -> Result<World, WorldError> {
    let handle = sim.handle();
    let network = Network::new(&handle, Box::new(CloudRouter(twinrig_cloud::Broker::new())));
    let physics = match &spec.scene {
        Some(scene) => {
            let physics =
                PhysicsWorld::new(&handle, scene.physics.clone()).map_err(WorldError::Physics)?;
            for (name, body) in &scene.obstacles {
                physics
                    .add_body(body)
                    .map_err(|source| WorldError::Obstacle {
                        name: name.clone(),
                        source,
                    })?;
            }
            Some(physics)
        }
        None => None,
    };
    sim.add_process("broker", network.clone());
    if let Some(physics) = &physics {
        sim.add_process("physics", physics.clone());
    }

    let services = devices::CloudServices {
        objects: Rc::new(RefCell::new(
            twinrig_cloud::objects::ObjectStore::new(VIDEO_BUCKET, OBJECT_STORE_KEY)
                .map_err(|e| WorldError::ObjectStore(e.to_string()))?,
        )),
    };
    let scene = match (spec.scene, physics) {
        (Some(scene), Some(physics)) => Some(spawn_devices(
            &handle,
            &network,
            physics,
            &services,
            &scene,
            spec.epoch_unix_s,
        )?),
        _ => None,
    };
    let cloud = CloudTwin::new(&handle, spec.rules, spec.epoch_unix_s)?;
    cloud.start(&network)?;
    let fleet = match spec.fleet {
        Some(f) => Some(Fleet::start(
            &handle,
            &network,
            &cloud,
            f.config,
            f.members,
            f.default_link,
            f.run_limit,
        )?),
        None => None,
    };
    Ok(World {
        network,
        scene,
        services,
        cloud,
        fleet,
    })
}

fn spawn_devices(
    handle: &twinrig_sim::SimHandle,
    network: &Network,
    physics: PhysicsWorld,
    services: &devices::CloudServices,
    scene: &SceneSpec<'_>,
    epoch_unix_s: u64,
) -> Result<Scene, WorldError> {
    let mut runtimes = BTreeMap::new();
    let mut command_models = BTreeMap::new();
    for d in scene.devices {
        let device_error = |message: String| WorldError::Device {
            device: d.id.clone(),
            kind: d.kind.clone(),
            message,
        };
        let kind = scene
            .kinds
            .iter()
            .find(|k| k.name() == d.kind)
            .ok_or_else(|| WorldError::UnknownKind(d.kind.clone()))?;
        let link = d.link.as_ref().unwrap_or(scene.default_link).link_params();
        let ctx = DeviceContext {
            handle,
            network,
            physics: &physics,
            link,
            epoch_unix_s,
            services,
        };
        if let Some(model) = kind.command_model() {
            command_models.insert(d.id.clone(), model);
        }
        // Checked scenarios carry the spec their params were parsed into.
        let parsed;
        let spec = match d.spec.get() {
            Some(spec) => spec,
            None => {
                parsed = kind
                    .params()
                    .parse(&d.params)
                    .map_err(|e| device_error(format!("params: {e}")))?;
                &parsed
            }
        };
        let runtime = kind
            .spawn(&ctx, &d.id, spec)
            .map_err(|e| device_error(e.to_string()))?;
        runtimes.insert(d.id.clone(), runtime);
    }
    Ok(Scene {
        physics,
        devices: runtimes,
        command_models,
    })
}
