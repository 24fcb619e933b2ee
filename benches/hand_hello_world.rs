//! "HELLO WORLD" on the Amazing Hand end to end (scenarios/hand/hello-world.yaml):
//! MQTT action -> agent on its lockstep thread -> real rustypot -> 8 SCS0009
//! twins at 1 Mbaud -> 11 state messages -> rules -> records store; about 9 s
//! of virtual time. Target: under 100 ms wall (release), video excluded; the
//! run with the GIF video (render + upload + presign) is reported beside it.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use twinrig::suite::{self, Loaded};
use twinrig_sim::SECONDS;

fn load(video: bool) -> Loaded {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/hand/hello-world.yaml");
    let mut loaded = suite::load(&path).expect("the hello world scenario loads");
    if !video {
        loaded.scenario.devices[0]
            .params
            .insert("video".into(), Value::Bool(false));
        // Without the video there is no 11th state and no URL to fetch.
        loaded.scenario.steps.retain(|s| {
            !matches!(
                s,
                twinrig::scenario::Step::Expect(
                    twinrig::scenario::Expect::Presigned(_)
                        | twinrig::scenario::Expect::Message(_)
                        | twinrig::scenario::Expect::Records(_)
                )
            )
        });
    }
    loaded
}

fn hello_world(loaded: &Loaded) -> f64 {
    let outcome = suite::run(loaded, |_| {});
    assert!(
        outcome.passed(),
        "{:?} {:?}",
        outcome.failure,
        outcome
            .assertions
            .iter()
            .filter(|a| !a.passed)
            .collect::<Vec<_>>()
    );
    outcome.virtual_ns as f64 / SECONDS as f64
}

fn bench(c: &mut Criterion) {
    let (with_video, without_video) = (load(true), load(false));
    let virtual_s = hello_world(&without_video);
    eprintln!("hand hello world: {virtual_s:.3} s virtual");
    let mut g = c.benchmark_group("hand");
    g.sample_size(20);
    g.bench_function("hello_world_without_video", |b| {
        b.iter(|| hello_world(&without_video))
    });
    g.bench_function("hello_world_with_video", |b| {
        b.iter(|| hello_world(&with_video))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
