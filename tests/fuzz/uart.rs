//! The twins' UART input: the RVR's Nordic/ST processors and the Amazing
//! Hand's SCS0009 servo bus, each in a world of its own, fed well-formed
//! frames with hostile payloads mixed with raw noise. A twin task that
//! panics fails the case (the executor catches it as a task failure).

use embedded_io_async::{Read, Write};
use hand_twin::protocol::Packet as ScsPacket;
use hand_twin::{BusConfig, ServoBus};
use proptest::prelude::*;
use rvr_twin::{DriveParams, RvrBody, RvrConfig, RvrTwin};
use twinrig_sim::physics::{PhysicsConfig, PhysicsWorld};
use twinrig_sim::uart::{Uart, UartConfig, UartPort};
use twinrig_sim::{MILLIS, Nanos, Sim};

/// Device ids the RVR knows, so frames reach its command handlers.
const RVR_DEVICES: &[u8] = &[0x10, 0x11, 0x13, 0x16, 0x18, 0x19, 0x1A];

fn rvr_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        prop::option::of(prop_oneof![
            Just(0x01u8),
            Just(0x02),
            Just(0x11),
            Just(0x12),
            any::<u8>()
        ]),
        prop::sample::select(RVR_DEVICES),
        any::<u8>(),
        any::<u8>(),
        super::bytes(40),
    )
        .prop_map(|(flags, target, did, cid, seq, payload)| {
            // A well-formed frame (checksum, escaping) with any header and payload.
            let mut header = rvr_protocol::Header::new(did, cid, seq);
            header.flags = rvr_protocol::Flags::from_bits_truncate(flags);
            header.target = target;
            rvr_protocol::Packet::new(header, &payload)
                .ok()
                .and_then(|p| p.to_frame().ok())
                .map(|f| f.as_bytes().to_vec())
                .unwrap_or_default()
        })
}

pub fn rvr_inputs() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![4 => rvr_frame(), 1 => super::bytes(24)], 1..12)
        .prop_map(|parts| parts.concat())
}

fn scs_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![1u8..=8, Just(0xFE), any::<u8>()],
        prop_oneof![1u8..=6, Just(0x82), Just(0x83), any::<u8>()],
        super::bytes(24),
    )
        .prop_map(|(id, code, params)| ScsPacket { id, code, params }.encode().unwrap_or_default())
}

pub fn servo_inputs() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![4 => scs_frame(), 1 => super::bytes(16)], 1..16)
        .prop_map(|parts| parts.concat())
}

/// Writes `bytes` into `host`'s end, reads what comes back, and runs the
/// world for `settle` of virtual time after; fails on any task failure.
fn drive(mut sim: Sim, host: UartPort, bytes: &[u8], settle: Nanos) -> Result<(), String> {
    let h = sim.handle();
    let (mut rx, mut tx) = host.split();
    let input = bytes.to_vec();
    h.spawn("fuzz host TX", async move {
        let _ = tx.write_all(&input).await;
    });
    h.spawn("fuzz host RX", async move {
        let mut buf = [0u8; 256];
        loop {
            let _ = rx.read(&mut buf).await;
        }
    });
    let limit = sim.now() + settle + bytes.len() as Nanos * MILLIS / 10;
    sim.run_until(limit, |_| false).map_err(|e| e.to_string())?;
    let failures: Vec<String> = sim
        .failures()
        .iter()
        .map(|f| format!("{} panicked: {}", f.task, f.message))
        .collect();
    sim.shutdown();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

pub fn check_rvr(bytes: &[u8]) -> Result<(), String> {
    let mut sim = Sim::new(1);
    let h = sim.handle();
    let world = PhysicsWorld::new(&h, PhysicsConfig::default()).map_err(|e| e.to_string())?;
    sim.add_process("physics", world.clone());
    let body = RvrBody::spawn(&world, "rvr", 0.0, 0.0, 90.0, DriveParams::default())
        .map_err(|e| e.to_string())?;
    let (host, rvr, _control) = Uart::pair(&h, "rvr-uart", UartConfig::default());
    let (rrx, rtx) = rvr.split();
    RvrTwin::spawn(&h, "rvr", body, rrx, rtx, RvrConfig::default());
    // Long enough for streaming, timeouts and notifications to fire.
    drive(sim, host, bytes, 300 * MILLIS)
}

pub fn check_servo_bus(bytes: &[u8]) -> Result<(), String> {
    let sim = Sim::new(1);
    let (_bus, host, _control) = ServoBus::hand(&sim.handle(), "hand-bus", BusConfig::default());
    drive(sim, host, bytes, 50 * MILLIS)
}
