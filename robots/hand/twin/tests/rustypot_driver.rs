//! The hand agent's `RustypotDriver` (rustypot's real `Scs0009Controller`)
//! against the servo-bus twin, through the simulator's serial port: what each
//! driver call puts on the wire and what the servos end up holding.

use std::sync::{Arc, Mutex};

use hand_agent::HandDriver;
use hand_agent::rustypot_driver::RustypotDriver;
use hand_twin::{BusConfig, HAND_BAUD, ServoBus};
use rustypot::servo::feetech::scs0009::Scs0009Controller;
use twinrig_sim::lockstep::{self, SimSerialPort};
use twinrig_sim::{SECONDS, Sim};

#[test]
fn the_driver_writes_torque_speed_and_goals_and_reads_positions_back() {
    let mut sim = Sim::new(1);
    let h = sim.handle();
    // No processing window: back-to-back writes to one servo all land, so
    // this checks the driver's packets, not the servos' timing.
    let config = BusConfig {
        processing_window: 0,
        ..BusConfig::default()
    };
    let (bus, host_port, _control) = ServoBus::hand(&h, "hand", config);
    let present = Arc::new(Mutex::new(None));
    let seen = present.clone();
    lockstep::spawn::<(), (), _, _, _>(
        &h,
        "driver",
        Some(host_port),
        move |link| {
            let port = SimSerialPort::new(link, "hand-bus", HAND_BAUD);
            let controller = Scs0009Controller::new()
                .with_protocol_v1()
                .with_serial_port(Box::new(port));
            let mut driver = RustypotDriver::new(controller);
            let result = (|| {
                driver.enable_torque(true)?;
                driver.set_speed(&[1, 2], 5.0)?;
                driver.write_goal_positions(&[1, 2], &[0.0, 90f64.to_radians()])?;
                driver.read_present_positions()
            })();
            *seen.lock().unwrap() = Some(result);
        },
        |()| async {},
    )
    .expect("driver thread");
    sim.run_until(2 * SECONDS, |_| false).expect("world runs");

    let present = present.lock().unwrap().take().expect("the driver finished");
    let present = present.expect("every call acknowledged");
    // Read at once after the goals: the servos have not moved yet.
    assert!(present.iter().all(|p| p.abs() < 0.01), "{present:?}");
    let servos = bus.snapshot();
    assert!(servos.iter().all(|s| s.torque), "{servos:?}");
    // 0 rad -> raw 511, +90 deg -> raw 818 (the SCS0009 fact sheet).
    assert_eq!((servos[0].goal_raw, servos[1].goal_raw), (511, 818));
    assert!(servos[2..].iter().all(|s| s.goal_raw == 511), "{servos:?}");
    let goals: Vec<(u8, bool)> = bus.goal_log().iter().map(|g| (g.id, g.accepted)).collect();
    assert_eq!(goals, [(1, true), (2, true)]);
    let stats = bus.stats();
    // 8 torque writes, 2 speed, 2 goal, 8 reads: each one packet, each answered.
    assert_eq!((stats.packets, stats.replies, stats.missed), (20, 20, 0));
    sim.shutdown();
}
