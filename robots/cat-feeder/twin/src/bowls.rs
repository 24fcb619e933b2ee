//! The bowls and the treats, as rapier bodies.
//!
//! Each bowl is an open box of fixed bodies (a bottom plate and four
//! walls) on the floor, under its chute. A released treat is a small
//! dynamic cube dropped from the chute's mouth with a little seeded jitter;
//! it falls, bounces and settles. A treat counts for a bowl when its centre
//! lies inside the bowl's walls and below their top, so a treat still
//! falling, or one that bounced out, is not counted. Treats are never
//! removed (the world has no removal), which is why the hopper's capacity
//! is bounded.
//!
//! Geometry (all assumed; the reference gives none): bowls 0.13 m square
//! inside, walls 0.04 m high and 5 mm thick, bottom 1 cm thick; the chute's
//! mouth 0.2 m above the floor over the bowl's centre; treats 1 cm cubes
//! of water density (1 g), friction 0.9, no bounce.

use rand::Rng;
use twinrig_sim::SimHandle;
use twinrig_sim::physics::{BodySpec, PhysicsError, PhysicsWorld, Shape};
use twinrig_sim::rng::SimRng;

use crate::params::Bowl;

/// Half the inside width of a bowl (m).
pub const BOWL_INNER_HALF: f32 = 0.065;
/// Height of a bowl's walls above the floor (m).
pub const BOWL_WALL_HEIGHT: f32 = 0.04;
const WALL_HALF_THICKNESS: f32 = 0.0025;
const BOTTOM_THICKNESS: f32 = 0.01;
/// Height of the chute's mouth above the floor (m).
pub const CHUTE_HEIGHT: f32 = 0.2;
/// Half the edge of a treat (m).
pub const TREAT_HALF: f32 = 0.005;
/// Largest horizontal offset of a treat from the chute's axis (m).
const JITTER: f32 = 0.02;

/// Where one feeder's bowls and treats are.
pub struct Bowls {
    id: String,
    physics: PhysicsWorld,
    /// Bowl centres (x, y), left then right.
    centres: [[f32; 2]; 2],
    /// Names of the treats released so far, with the bowl they went to.
    treats: Vec<(String, Bowl)>,
    rng: SimRng,
}

impl Bowls {
    /// Builds the two bowls of feeder `id` centred at `(x, y)`, `spacing`
    /// apart along x.
    pub fn build(
        handle: &SimHandle,
        physics: &PhysicsWorld,
        id: &str,
        x: f32,
        y: f32,
        spacing: f32,
    ) -> Result<Bowls, PhysicsError> {
        let centres = [[x - spacing / 2.0, y], [x + spacing / 2.0, y]];
        for bowl in Bowl::BOTH {
            let [cx, cy] = centres[bowl.index()];
            let name = |part: &str| format!("{id}/bowl-{}/{part}", bowl.as_str());
            let outer = BOWL_INNER_HALF + 2.0 * WALL_HALF_THICKNESS;
            let bottom = BodySpec::new(
                name("bottom"),
                Shape::Cuboid {
                    half_extents: [outer, outer, BOTTOM_THICKNESS / 2.0],
                },
            )
            .at([cx, cy, BOTTOM_THICKNESS / 2.0])
            .fixed();
            physics.add_body(&bottom)?;
            let wall_half_h = (BOWL_WALL_HEIGHT - BOTTOM_THICKNESS) / 2.0;
            let wall_z = BOTTOM_THICKNESS + wall_half_h;
            let off = BOWL_INNER_HALF + WALL_HALF_THICKNESS;
            let walls = [
                ("wall-west", [cx - off, cy], [WALL_HALF_THICKNESS, outer]),
                ("wall-east", [cx + off, cy], [WALL_HALF_THICKNESS, outer]),
                ("wall-south", [cx, cy - off], [outer, WALL_HALF_THICKNESS]),
                ("wall-north", [cx, cy + off], [outer, WALL_HALF_THICKNESS]),
            ];
            for (part, [wx, wy], [hx, hy]) in walls {
                let spec = BodySpec::new(
                    name(part),
                    Shape::Cuboid {
                        half_extents: [hx, hy, wall_half_h],
                    },
                )
                .at([wx, wy, wall_z])
                .fixed();
                physics.add_body(&spec)?;
            }
        }
        Ok(Bowls {
            id: id.to_string(),
            physics: physics.clone(),
            centres,
            treats: Vec::new(),
            rng: handle.rng(&format!("{id}/chute")),
        })
    }

    /// Drops one treat from `bowl`'s chute.
    pub fn release(&mut self, bowl: Bowl) -> Result<(), PhysicsError> {
        let [cx, cy] = self.centres[bowl.index()];
        let jx = self.rng.random_range(-JITTER..=JITTER);
        let jy = self.rng.random_range(-JITTER..=JITTER);
        let name = format!("{}/treat-{}", self.id, self.treats.len() + 1);
        let mut spec = BodySpec::new(
            name.clone(),
            Shape::Cuboid {
                half_extents: [TREAT_HALF; 3],
            },
        )
        .at([cx + jx, cy + jy, CHUTE_HEIGHT]);
        spec.friction = 0.9;
        self.physics.add_body(&spec)?;
        self.treats.push((name, bowl));
        Ok(())
    }

    /// Treats released towards each bowl, left then right.
    pub fn released(&self) -> [u32; 2] {
        let mut n = [0u32; 2];
        for (_, bowl) in &self.treats {
            n[bowl.index()] += 1;
        }
        n
    }

    /// Treats lying in each bowl now, left then right, and those anywhere else
    /// (still falling, or spilled).
    pub fn count(&self) -> ([u32; 2], u32) {
        let mut in_bowl = [0u32; 2];
        let mut elsewhere = 0;
        for (name, _) in &self.treats {
            let Some(pose) = self.physics.pose(name) else {
                continue;
            };
            let [px, py, pz] = pose.position;
            let bowl = Bowl::BOTH.into_iter().find(|b| {
                let [cx, cy] = self.centres[b.index()];
                (px - cx).abs() <= BOWL_INNER_HALF
                    && (py - cy).abs() <= BOWL_INNER_HALF
                    && (0.0..=BOWL_WALL_HEIGHT).contains(&pz)
            });
            match bowl {
                Some(b) => in_bowl[b.index()] += 1,
                None => elsewhere += 1,
            }
        }
        (in_bowl, elsewhere)
    }
}
