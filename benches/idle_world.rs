//! An idle world: physics at 1 kHz, a box resting on the floor, nothing moving.
//! Reports how many virtual seconds run per wall second (target >= 2000x).

use criterion::{Criterion, criterion_group, criterion_main};
use twinrig_sim::physics::{BodySpec, PhysicsConfig, PhysicsWorld, Shape};
use twinrig_sim::{SECONDS, Sim};

const VIRTUAL: u64 = 60 * SECONDS;

fn settled_world() -> (Sim, PhysicsWorld) {
    let mut sim = Sim::new(1);
    let world = PhysicsWorld::new(&sim.handle(), PhysicsConfig::default()).unwrap();
    world
        .add_body(
            &BodySpec::new(
                "box",
                Shape::Cuboid {
                    half_extents: [0.1; 3],
                },
            )
            .at([0.0, 0.0, 0.1]),
        )
        .unwrap();
    sim.add_process("physics", world.clone());
    // Let it settle and fall asleep first.
    sim.run_until(5 * SECONDS, |_| false).unwrap();
    (sim, world)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("idle_world");
    g.sample_size(20);
    g.bench_function("60s_virtual_at_1kHz", |b| {
        b.iter_batched(
            settled_world,
            |(mut sim, world)| {
                let start = sim.now();
                // A device polling its sensors every 10 ms keeps time moving the way a real run does.
                let h = sim.handle();
                sim.spawn("poller", async move {
                    loop {
                        h.sleep(10_000_000).await;
                    }
                });
                sim.run_until(start + VIRTUAL, |_| false).unwrap();
                assert!(world.step_count() >= (start + VIRTUAL) / 1_000_000 - 1);
                world
            },
            criterion::BatchSize::LargeInput,
        )
    });
    // For comparison: the same rate with a body that never sleeps (a ball
    // rolling on a frictionless floor), so every 1 kHz step runs rapier.
    g.bench_function("10s_virtual_at_1kHz_awake", |b| {
        b.iter_batched(
            || {
                let mut sim = Sim::new(1);
                let config = PhysicsConfig {
                    floor: Some(twinrig_sim::physics::FloorConfig {
                        friction: 0.0,
                        restitution: 0.0,
                    }),
                    ..PhysicsConfig::default()
                };
                let world = PhysicsWorld::new(&sim.handle(), config).unwrap();
                let mut ball =
                    BodySpec::new("ball", Shape::Ball { radius: 0.05 }).at([0.0, 0.0, 0.05]);
                ball.friction = 0.0;
                world.add_body(&ball).unwrap();
                world
                    .set_velocity("ball", [1.0, 0.0, 0.0], [0.0, 0.0, 0.0])
                    .unwrap();
                sim.add_process("physics", world.clone());
                (sim, world)
            },
            |(mut sim, world)| {
                sim.run_until(10 * SECONDS, |_| false).unwrap();
                assert!(world.rapier_steps() >= 9_990, "the ball fell asleep");
                world
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
