//! The twin's mechanics in a real world (scheduler + rapier), driven through
//! the same pins and sensor the firmware gets: treats fall into the bowl of
//! the running motor, the hopper empties, a jammed motor gives nothing.

use cat_feeder_twin::bowls::Bowls;
use cat_feeder_twin::hardware::{HopperLevel, MotorPin};
use cat_feeder_twin::{Bowl, FeederParams, FeederTwin};
use embedded_hal::digital::OutputPin;
use twinrig_hal::LevelSensor;
use twinrig_sim::physics::{PhysicsConfig, PhysicsWorld};
use twinrig_sim::{MILLIS, Nanos, SECONDS, Sim};

struct Rig {
    sim: Sim,
    physics: PhysicsWorld,
    twin: FeederTwin,
}

fn rig(params: FeederParams, seed: u64) -> Rig {
    let mut sim = Sim::new(seed);
    let h = sim.handle();
    let physics = PhysicsWorld::new(&h, PhysicsConfig::default()).unwrap();
    sim.add_process("physics", physics.clone());
    let bowls = Bowls::build(&h, &physics, "f", params.x, params.y, params.bowl_spacing_m).unwrap();
    let twin = FeederTwin::new(&h, "f", &params, bowls);
    Rig { sim, physics, twin }
}

/// Drives the pins as the firmware's feed does: `bowls` high at `at`, low `run` later.
fn feed(rig: &Rig, bowls: &[Bowl], at: Nanos, run: Nanos) {
    let h = rig.sim.handle();
    let mut pins: Vec<MotorPin> = bowls
        .iter()
        .map(|&b| MotorPin::new(rig.twin.clone(), b))
        .collect();
    rig.sim.handle().spawn("feed", async move {
        h.sleep_until(at).await;
        for p in &mut pins {
            p.set_high().unwrap();
        }
        h.sleep(run).await;
        for p in &mut pins {
            p.set_low().unwrap();
        }
    });
}

fn run_to(rig: &mut Rig, t: Nanos) {
    rig.sim.run_until(t, |_| false).unwrap();
}

fn level(twin: &FeederTwin) -> u8 {
    let mut sensor = HopperLevel::new(twin.clone());
    embassy_futures::block_on(sensor.read_percent()).unwrap()
}

#[test]
fn a_running_motor_fills_its_bowl_and_empties_the_hopper() {
    let mut r = rig(FeederParams::default(), 1);
    assert_eq!(level(&r.twin), 100);
    feed(&r, &[Bowl::Left], SECONDS, 10 * SECONDS);
    // Mid-run: releases at 2, 4, 6 s have landed, the next falls at 8 s.
    run_to(&mut r, 7 * SECONDS);
    assert_eq!(r.twin.hopper_treats(), 37);
    assert_eq!(r.twin.bowl_treats(), [3, 0]);
    run_to(&mut r, 14 * SECONDS);
    assert_eq!(r.twin.bowl_treats(), [5, 0]);
    assert_eq!(r.twin.hopper_treats(), 35);
    assert_eq!(level(&r.twin), 87);
    let s = r.twin.state();
    assert_eq!(s["motors"]["left"]["driven_ms"], 10_000);
    assert_eq!(s["motors"]["left"]["pin"], "low");
    assert_eq!(s["treats"]["elsewhere"], 0);
    // Nothing more comes once the pin is low.
    run_to(&mut r, 30 * SECONDS);
    assert_eq!(r.twin.hopper_treats(), 35);
}

#[test]
fn both_motors_share_the_hopper_until_it_runs_dry() {
    let params = FeederParams {
        hopper_treats: Some(3),
        ..FeederParams::default()
    };
    let mut r = rig(params, 2);
    assert_eq!(level(&r.twin), 7);
    feed(&r, &[Bowl::Left, Bowl::Right], 0, 10 * SECONDS);
    run_to(&mut r, 13 * SECONDS);
    assert_eq!(r.twin.bowl_treats(), [2, 1]);
    assert_eq!(r.twin.hopper_treats(), 0);
    assert_eq!(level(&r.twin), 0);
    assert_eq!(r.twin.state()["hopper"]["missed"], 7);
}

#[test]
fn a_jammed_motor_dispenses_nothing() {
    let params = FeederParams {
        jammed: vec![Bowl::Right],
        ..FeederParams::default()
    };
    let mut r = rig(params, 3);
    feed(&r, &[Bowl::Right], 0, 10 * SECONDS);
    run_to(&mut r, 5 * SECONDS);
    let s = r.twin.state();
    assert_eq!(s["motors"]["right"]["pin"], "high");
    assert_eq!(s["motors"]["right"]["turning"], false);
    run_to(&mut r, 13 * SECONDS);
    assert_eq!(r.twin.bowl_treats(), [0, 0]);
    assert_eq!(r.twin.hopper_treats(), 40);
    assert_eq!(r.twin.state()["motors"]["right"]["runs"], 1);
    // The left one is not jammed.
    feed(&r, &[Bowl::Left], 14 * SECONDS, 10 * SECONDS);
    run_to(&mut r, 27 * SECONDS);
    assert_eq!(r.twin.bowl_treats(), [5, 0]);
}

#[test]
fn the_same_seed_puts_every_treat_in_the_same_place() {
    let poses = |seed| {
        let mut r = rig(FeederParams::default(), seed);
        feed(&r, &[Bowl::Left], 0, 10 * SECONDS + 500 * MILLIS);
        run_to(&mut r, 12 * SECONDS);
        (1..=5)
            .map(|n| r.physics.pose(&format!("f/treat-{n}")).unwrap().position)
            .collect::<Vec<_>>()
    };
    let first = poses(9);
    assert_eq!(first, poses(9));
    // The jitter is drawn from the seed: another seed drops them elsewhere.
    assert_ne!(first, poses(10));
}
