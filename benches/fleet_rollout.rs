//! Fleet OTA rollouts end to end (benches/scenarios/fleet-*.yaml): 100 and
//! 1,000 pet feeders updated from 1.0.0 to 2.0.0 with real 1 MiB images,
//! SHA-256 over the real bytes, RAM NOR flash, at most 10 at once.
//! Targets (release): 100 devices < 5 s wall, 1,000 devices < 60 s wall.
//!
//! Memory: the process's peak resident set (`VmHWM` in /proc/self/status),
//! read after one run of each size, smallest first, before criterion's
//! loops; the peak after the 1,000-device run is that run's (the peak only
//! grows). Both are printed on stderr.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use twinrig::suite::{self, Loaded};
use twinrig_sim::SECONDS;

fn load(name: &str) -> Loaded {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/scenarios")
        .join(name);
    suite::load(&path).unwrap_or_else(|e| panic!("{}: {}", path.display(), e.render_plain()))
}

/// One rollout; panics unless every assertion held (every device on 2.0.0,
/// at most 10 in progress). Returns the virtual seconds it took.
fn rollout(l: &Loaded) -> f64 {
    let outcome = suite::run(l, |_| {});
    assert!(
        outcome.passed(),
        "{}: {:?} {:#?}",
        outcome.name,
        outcome.failure,
        outcome
            .assertions
            .iter()
            .filter(|a| !a.passed)
            .collect::<Vec<_>>()
    );
    outcome.virtual_ns as f64 / SECONDS as f64
}

/// Peak resident set of this process, KiB (Linux; None elsewhere).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn bench(c: &mut Criterion) {
    let small = load("fleet-100.yaml");
    let large = load("fleet-1000.yaml");
    for l in [&small, &large] {
        let started = Instant::now();
        let virtual_s = rollout(l);
        let wall = started.elapsed();
        eprintln!(
            "{}: {virtual_s:.1} s virtual, {:.2} s wall (one run), peak RSS so far {} MiB",
            l.scenario.name,
            wall.as_secs_f64(),
            peak_rss_kib().map_or_else(|| "unknown".to_owned(), |k| (k / 1024).to_string())
        );
    }
    let mut g = c.benchmark_group("fleet_rollout");
    // One 1,000-device run takes tens of seconds: the fewest samples criterion allows.
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(1));
    g.measurement_time(Duration::from_secs(1));
    g.bench_function("100_devices_1MiB", |b| b.iter(|| rollout(&small)));
    g.bench_function("1000_devices_1MiB", |b| b.iter(|| rollout(&large)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
