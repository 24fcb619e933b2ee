//! The RVR 1 m square end to end (physics 1 kHz, UART byte-timed, streaming at
//! 50 ms, telemetry through the broker) against bare rapier stepping the same
//! number of steps. Targets: >= 100x real time; at most 1.5x bare rapier.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use twinrig::suite;
use twinrig_sim::physics::{BodySpec, PhysicsConfig, PhysicsWorld, Shape};
use twinrig_sim::{SECONDS, Sim};

fn square() -> (f64, u64) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/rvr/square-1m.yaml");
    let loaded = suite::load(&path).expect("the square scenario loads");
    let outcome = suite::run(&loaded, |_| {});
    assert!(outcome.passed(), "{:?}", outcome.failure);
    let steps = outcome.metrics["physics.rapier_steps"] as u64;
    (outcome.virtual_ns as f64 / SECONDS as f64, steps)
}

/// rapier alone: an RVR-sized box sliding on the floor, `steps` steps, no Bevy, no harness.
fn bare_rapier(steps: u64) {
    let sim = Sim::new(1);
    let world = PhysicsWorld::new(&sim.handle(), PhysicsConfig::default()).unwrap();
    let mut spec = BodySpec::new(
        "box",
        Shape::Cuboid {
            half_extents: [0.11, 0.095, 0.055],
        },
    )
    .at([0.0, 0.0, 0.055]);
    spec.mass = Some(1.5);
    world.add_body(&spec).unwrap();
    world
        .set_velocity("box", [0.3, 0.0, 0.0], [0.0, 0.0, 0.5])
        .unwrap();
    world.with_rapier(|r| {
        for _ in 0..steps {
            r.step();
            // Keep it moving so rapier never sleeps it (the robot is driven all the time).
            if let Some((_, rb)) = r.bodies.iter_mut().find(|(_, b)| b.is_dynamic()) {
                rb.set_linvel(rapier3d::math::Vector::new(0.3, 0.0, 0.0), true);
            }
        }
    });
}

fn bench(c: &mut Criterion) {
    let (virtual_s, steps) = square();
    eprintln!("rvr square: {virtual_s:.3} s virtual, {steps} rapier steps");
    let mut g = c.benchmark_group("rvr");
    g.sample_size(10);
    g.bench_function("square_1m_end_to_end", |b| b.iter(square));
    g.bench_function("bare_rapier_same_steps", |b| b.iter(|| bare_rapier(steps)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
