//! The twin against a host on the other end of its UART, in virtual time.

use super::*;
use crate::DriveParams;
use embedded_io_async::Write;
use rvr_protocol::constants::io::UNIDENTIFIED_COLOR;
use rvr_protocol::{
    AddressStyle, ColorPalette, DataSize, EchoData, LedValues, Motor, NotificationKind,
    PaletteEntry, SensorService, StreamingData as Data, Text, Version,
};
use twinrig_sim::physics::{BodySpec, PhysicsConfig, PhysicsWorld, Shape};
use twinrig_sim::uart::{Uart, UartConfig};
use twinrig_sim::{MILLIS, SECONDS, Sim};

struct Host {
    h: SimHandle,
    rx: UartRx,
    tx: UartTx,
    parser: Parser,
    seq: u8,
    got: Vec<Packet>,
}

impl Host {
    async fn write(&mut self, p: &Packet) {
        self.tx
            .write_all(p.to_frame().unwrap().as_bytes())
            .await
            .unwrap();
    }

    /// Sends in the Node.js SDK's style: every command asks for a response.
    async fn send(&mut self, c: Command) -> u8 {
        self.seq = self.seq.wrapping_add(1);
        let p = c
            .to_packet(self.seq, AddressStyle::TargetAndSource)
            .unwrap();
        self.write(&p).await;
        self.seq
    }

    /// Sends to `processor` in the Python SDK's style (a response only for
    /// commands with outputs).
    async fn send_py(&mut self, c: Command, processor: Processor) -> u8 {
        self.seq = self.seq.wrapping_add(1);
        let p = c
            .to_packet_for(self.seq, AddressStyle::TargetOnly, processor)
            .unwrap();
        self.write(&p).await;
        self.seq
    }

    /// Sends `c` and waits for its response (up to 100 ms).
    async fn ask(&mut self, c: Command) -> Packet {
        let seq = self.send(c).await;
        self.answer(seq).await
    }

    /// Sends `c` to `processor` (Python style) and waits for its response.
    async fn ask_py(&mut self, c: Command, processor: Processor) -> Packet {
        let seq = self.send_py(c, processor).await;
        self.answer(seq).await
    }

    async fn answer(&mut self, seq: u8) -> Packet {
        for _ in 0..100 {
            if let Some(p) = self.response_to(seq) {
                return *p;
            }
            self.listen(MILLIS).await;
        }
        panic!("no response to seq {seq}; got {:?}", self.got);
    }

    /// Reads packets for `d` of virtual time.
    async fn listen(&mut self, d: Nanos) {
        let deadline = self.h.now() + d;
        let mut buf = [0u8; 128];
        loop {
            let read = self.rx.read(&mut buf);
            let timeout = self.h.sleep_until(deadline);
            match embassy_futures::select::select(read, timeout).await {
                embassy_futures::select::Either::First(Ok(n)) => {
                    for &b in &buf[..n] {
                        if let Some(Ok(p)) = self.parser.push(b) {
                            self.got.push(p);
                        }
                    }
                }
                embassy_futures::select::Either::First(Err(_)) => {}
                embassy_futures::select::Either::Second(()) => return,
            }
        }
    }

    /// Refreshes `c` every 100 ms for `d`, as the SDKs do.
    async fn hold(&mut self, c: Command, d: Nanos) {
        let end = self.h.now() + d;
        while self.h.now() < end {
            self.send(c).await;
            self.listen(100 * MILLIS).await;
        }
    }

    fn response_to(&self, seq: u8) -> Option<&Packet> {
        self.got
            .iter()
            .find(|p| p.header.is_response() && p.header.sequence == seq)
    }

    /// The notifications received, in order.
    fn notifications(&self) -> Vec<Notification> {
        self.got
            .iter()
            .filter(|p| !p.header.is_response())
            .filter_map(|p| Notification::from_packet(p).ok())
            .collect()
    }

    fn notifications_of(&self, kind: NotificationKind) -> Vec<Notification> {
        self.notifications()
            .into_iter()
            .filter(|n| n.kind() == kind)
            .collect()
    }
}

fn response(p: &Packet) -> Response {
    Response::from_packet(p).unwrap_or_else(|e| panic!("{e}: {p:?}"))
}

struct Rig {
    sim: Sim,
    twin: RvrTwin,
    host: Host,
}

/// A twin facing world +y at the origin; a wall 0.5 m ahead if `wall`.
fn rig_with(config: RvrConfig, wall: bool) -> Rig {
    let mut sim = Sim::new(5);
    let h = sim.handle();
    let world = PhysicsWorld::new(&h, PhysicsConfig::default()).unwrap();
    sim.add_process("physics", world.clone());
    if wall {
        world
            .add_body(
                &BodySpec::new(
                    "wall",
                    Shape::Cuboid {
                        half_extents: [1.0, 0.05, 0.25],
                    },
                )
                .at([0.0, 0.5, 0.25])
                .fixed(),
            )
            .unwrap();
    }
    let body = RvrBody::spawn(&world, "rvr", 0.0, 0.0, 90.0, DriveParams::default()).unwrap();
    let (a, b, _c) = Uart::pair(&h, "rvr-uart", UartConfig::default());
    let (brx, btx) = b.split();
    let twin = RvrTwin::spawn(&h, "rvr", body, brx, btx, config);
    let (rx, tx) = a.split();
    let host = Host {
        h: h.clone(),
        rx,
        tx,
        parser: Parser::new(),
        seq: 0,
        got: Vec::new(),
    };
    Rig { sim, twin, host }
}

fn rig() -> (Sim, RvrTwin, Host) {
    let r = rig_with(RvrConfig::default(), false);
    (r.sim, r.twin, r.host)
}

fn run_host(sim: &mut Sim, host: Host, f: impl AsyncFnOnce(&mut Host) + 'static) -> Host {
    sim.run_with("host", 120 * SECONDS, host, f)
        .unwrap()
        .expect("host finished")
}

fn run(rig: Rig, f: impl AsyncFnOnce(&mut Host) + 'static) -> (RvrTwin, Host) {
    let Rig {
        mut sim,
        twin,
        host,
    } = rig;
    let host = run_host(&mut sim, host, f);
    (twin, host)
}

#[test]
fn answers_with_the_sequence_and_swapped_ids_and_errors_for_unknown_commands() {
    let (mut sim, twin, host) = rig();
    let host = run_host(&mut sim, host, async |host| {
        host.send(Command::Wake).await;
        host.send(Command::GetBatteryPercentage).await;
        // An unknown command id on the drive device.
        host.seq += 1;
        let mut bad = Command::DriveStop
            .to_packet(host.seq, AddressStyle::TargetAndSource)
            .unwrap();
        bad.header.command_id = 0x7E;
        host.write(&bad).await;
        host.listen(200 * MILLIS).await;
    });
    let battery = host.response_to(2).expect("battery answered");
    assert_eq!(
        Response::from_packet(battery),
        Ok(Response::BatteryPercentage(100))
    );
    assert_eq!(
        battery.header.origin(),
        Some(Processor::Nordic),
        "answered from the Nordic processor"
    );
    let err = host.response_to(3).expect("error answered");
    assert_eq!(err.header.error, Some(ErrorCode::BadCommandId));
    assert_eq!(twin.stats().error_responses, 1);
}

#[test]
fn identity_versions_and_up_time_come_from_the_config_and_the_clock() {
    let (twin, host) = run(rig_with(RvrConfig::default(), false), async |host| {
        let mut got = Vec::new();
        for p in [Processor::Nordic, Processor::St] {
            got.push(host.ask_py(Command::GetMainApplicationVersion, p).await);
            got.push(host.ask_py(Command::GetBootloaderVersion, p).await);
            got.push(host.ask_py(Command::GetProcessorName, p).await);
        }
        for c in [
            Command::GetMacAddress,
            Command::GetSku,
            Command::GetBluetoothAdvertisingName,
            Command::GetBoardRevision,
            Command::GetStatsId,
        ] {
            got.push(host.ask_py(c, Processor::Nordic).await);
        }
        host.listen(2 * SECONDS).await;
        let echo = EchoData::new(&[0x8D, 0xD8, 0xAB, 0x00, 0xFF]).unwrap();
        got.push(host.ask_py(Command::Echo(echo), Processor::St).await);
        got.push(
            host.ask_py(Command::GetCoreUpTimeInMilliseconds, Processor::Nordic)
                .await,
        );
        host.got = got;
    });
    let id = crate::Identity::default();
    let r: Vec<Response> = host.got.iter().map(response).collect();
    let text = |s: &str| Text::new(s).unwrap();
    assert_eq!(
        r[0],
        Response::MainApplicationVersion(Version {
            major: 8,
            minor: 3,
            revision: 432
        })
    );
    assert_eq!(r[1], Response::BootloaderVersion(id.nordic_bootloader));
    assert_eq!(r[2], Response::ProcessorName(text("Nordic")));
    assert_eq!(
        r[3],
        Response::MainApplicationVersion(Version {
            major: 8,
            minor: 6,
            revision: 448
        })
    );
    assert_eq!(r[5], Response::ProcessorName(text("ST")));
    assert_eq!(r[6], Response::MacAddress(text(&id.mac_address)));
    assert_eq!(r[7], Response::Sku(text(&id.sku)));
    assert_eq!(r[8], Response::BluetoothAdvertisingName(text("RV-5256")));
    assert_eq!(r[9], Response::BoardRevision(id.board_revision));
    assert_eq!(r[10], Response::StatsId(id.stats_id));
    assert_eq!(
        r[11],
        Response::Echo(EchoData::new(&[0x8D, 0xD8, 0xAB, 0x00, 0xFF]).unwrap())
    );
    // Answered from the processor asked (SID = that node).
    assert_eq!(host.got[3].header.source, Some(0x02));
    let Response::CoreUpTime { ms } = r[12] else {
        panic!("{:?}", r[12])
    };
    // 2 s of listening plus the line time of 13 round trips at 115200 baud.
    assert!((2000..2100).contains(&ms), "up {ms} ms");
    assert_eq!(twin.stats().error_responses, 0);
}

#[test]
fn a_processor_refuses_what_it_does_not_serve() {
    let (_twin, host) = run(rig_with(RvrConfig::default(), false), async |host| {
        let mut got = Vec::new();
        got.push(host.ask_py(Command::GetMacAddress, Processor::St).await);
        got.push(
            host.ask_py(Command::GetBatteryPercentage, Processor::St)
                .await,
        );
        got.push(
            host.ask_py(Command::GetEncoderCounts, Processor::Nordic)
                .await,
        );
        host.seq += 1;
        let mut stop = Command::DriveStop
            .to_packet_for(host.seq, AddressStyle::TargetAndSource, Processor::Nordic)
            .unwrap();
        stop.header.flags = rvr_protocol::Flags::REQUESTS_RESPONSE;
        host.write(&stop).await;
        let seq = host.seq;
        got.push(host.answer(seq).await);
        host.got = got;
    });
    let errors: Vec<_> = host.got.iter().map(|p| p.header.error).collect();
    assert_eq!(
        errors,
        [
            // ST serves other system info (versions, name).
            Some(ErrorCode::BadCommandId),
            // Only Nordic serves power.
            Some(ErrorCode::BadDeviceId),
            // Both serve sensor commands.
            Some(ErrorCode::BadCommandId),
            // Only ST serves drive.
            Some(ErrorCode::BadDeviceId),
        ]
    );
}

#[test]
fn streams_the_locator_while_driving_forward() {
    let (mut sim, _twin, host) = rig();
    let host = run_host(&mut sim, host, async |host| {
        host.send(Command::ResetYaw).await;
        host.send(Command::ResetLocatorXy).await;
        let config = StreamingConfig::new(2)
            .unwrap()
            .with(SensorService::Locator, DataSize::Bits32)
            .unwrap();
        let packet = Command::ConfigureStreaming(config)
            .to_packet_for(50, AddressStyle::TargetAndSource, Processor::St)
            .unwrap();
        host.write(&packet).await;
        host.send(Command::StartStreaming { period_ms: 50 }).await;
        host.hold(
            Command::DriveTankSi {
                left_mps: 0.5,
                right_mps: 0.5,
            },
            SECONDS,
        )
        .await;
    });
    let config = StreamingConfig::new(2)
        .unwrap()
        .with(SensorService::Locator, DataSize::Bits32)
        .unwrap();
    let samples: Vec<SensorSample> = host
        .notifications()
        .into_iter()
        .filter_map(|n| match n {
            Notification::StreamingData(d) => Data::decode(&d, &config).ok(),
            _ => None,
        })
        .collect();
    assert!(samples.len() >= 18, "got {} samples", samples.len());
    let last = samples.last().unwrap().locator.unwrap();
    // Facing world +y (yaw 90); the locator's +y is forward at the reset.
    assert!(last.y > 0.4 && last.y < 0.52, "locator y {}", last.y);
    assert!(last.x.abs() < 0.01, "locator x {}", last.x);
}

#[test]
fn streams_as_the_python_sdk_configures_both_processors() {
    let (_twin, host) = run(rig_with(RvrConfig::default(), false), async |host| {
        host.send_py(
            Command::EnableColorDetection { enabled: true },
            Processor::Nordic,
        )
        .await;
        // The SDK's slots: Nordic 1 colour (8-bit), 2 ambient, 3 core time;
        // ST 2 locator and 3 core time; then start on both processors.
        let slot = |token, services: &[(SensorService, DataSize)]| {
            let mut c = StreamingConfig::new(token).unwrap();
            for &(s, size) in services {
                c.push(s, size).unwrap();
            }
            Command::ConfigureStreaming(c)
        };
        let s32 = DataSize::Bits32;
        for (c, p) in [
            (
                slot(1, &[(SensorService::ColorDetection, DataSize::Bits8)]),
                Processor::Nordic,
            ),
            (
                slot(2, &[(SensorService::AmbientLight, s32)]),
                Processor::Nordic,
            ),
            (
                slot(3, &[(SensorService::CoreTime, s32)]),
                Processor::Nordic,
            ),
            (slot(2, &[(SensorService::Locator, s32)]), Processor::St),
            (slot(3, &[(SensorService::CoreTime, s32)]), Processor::St),
            (
                Command::StartStreaming { period_ms: 100 },
                Processor::Nordic,
            ),
            (Command::StartStreaming { period_ms: 100 }, Processor::St),
        ] {
            host.send_py(c, p).await;
        }
        host.listen(1050 * MILLIS).await;
        for p in [Processor::Nordic, Processor::St] {
            host.send_py(Command::ClearStreaming, p).await;
        }
        host.got.clear();
        host.listen(300 * MILLIS).await;
    });
    assert!(
        host.notifications().is_empty(),
        "cleared streaming still sends"
    );
}

#[test]
fn streaming_notifications_carry_the_python_sdk_source_and_every_slot() {
    let (_twin, host) = run(rig_with(RvrConfig::default(), false), async |host| {
        host.send_py(
            Command::EnableColorDetection { enabled: true },
            Processor::Nordic,
        )
        .await;
        let color = StreamingConfig::new(1)
            .unwrap()
            .with(SensorService::ColorDetection, DataSize::Bits8)
            .unwrap();
        let time = StreamingConfig::new(3)
            .unwrap()
            .with(SensorService::CoreTime, DataSize::Bits32)
            .unwrap();
        host.send_py(Command::ConfigureStreaming(color), Processor::Nordic)
            .await;
        host.send_py(Command::ConfigureStreaming(time), Processor::Nordic)
            .await;
        host.send_py(Command::ConfigureStreaming(time), Processor::St)
            .await;
        for p in [Processor::Nordic, Processor::St] {
            host.send_py(Command::StartStreaming { period_ms: 100 }, p)
                .await;
        }
        host.listen(1000 * MILLIS).await;
    });
    let color = StreamingConfig::new(1)
        .unwrap()
        .with(SensorService::ColorDetection, DataSize::Bits8)
        .unwrap();
    let time = StreamingConfig::new(3)
        .unwrap()
        .with(SensorService::CoreTime, DataSize::Bits32)
        .unwrap();
    let mut per_source = [0usize; 2];
    let mut last_time = [0u64; 2];
    for p in host.got.iter().filter(|p| !p.header.is_response()) {
        // Python SDK addressing: SID = bare node, no TID, no response asked.
        assert_eq!(p.header.wire_flags(), 0x20, "{p:?}");
        assert_eq!(p.header.target, None);
        let source = p.header.origin().unwrap();
        let Ok(Notification::StreamingData(d)) = Notification::from_packet(p) else {
            panic!("{p:?}")
        };
        match (source, d.token()) {
            (Processor::Nordic, 1) => {
                let c = d.decode(&color).unwrap().color.unwrap();
                // The floor (230, 230, 230) classified as white (index 3).
                assert_eq!((c.r, c.g, c.b, c.index), (230.0, 230.0, 230.0, 3.0));
                assert!((c.confidence - 163.0 / 255.0).abs() < 0.003, "{c:?}");
            }
            (_, 3) => {
                let t = d.decode(&time).unwrap().core_time_ms.unwrap();
                assert!(t > last_time[index(source)], "time goes forward");
                last_time[index(source)] = t;
                per_source[index(source)] += 1;
            }
            other => panic!("unexpected slot {other:?}"),
        }
    }
    // 1 s at 100 ms from each processor.
    assert!(
        per_source.iter().all(|&n| (9..=10).contains(&n)),
        "{per_source:?}"
    );
    // The core time counts virtual milliseconds since power-on.
    assert!(last_time[1] > 900 && last_time[1] < 1100, "{last_time:?}");
}

#[test]
fn a_period_under_33_ms_is_refused() {
    let (mut sim, _twin, host) = rig();
    let host = run_host(&mut sim, host, async |host| {
        host.send(Command::StartStreaming { period_ms: 20 }).await;
        host.listen(50 * MILLIS).await;
    });
    assert_eq!(
        host.response_to(1).unwrap().header.error,
        Some(ErrorCode::BadParameterValue)
    );
}

#[test]
fn asleep_it_refuses_to_drive_and_the_battery_drains_with_use() {
    let (mut sim, twin, host) = rig();
    let host = run_host(&mut sim, host, async |host| {
        host.hold(
            Command::DriveTankSi {
                left_mps: 1.5,
                right_mps: 1.5,
            },
            10 * SECONDS,
        )
        .await;
        host.send(Command::Sleep).await;
        host.send(Command::DriveTankSi {
            left_mps: 1.0,
            right_mps: 1.0,
        })
        .await;
        host.listen(100 * MILLIS).await;
    });
    let last = host.seq;
    assert_eq!(
        host.response_to(last).unwrap().header.error,
        Some(ErrorCode::CommandRestricted)
    );
    let sleep: Vec<_> = host
        .notifications()
        .into_iter()
        .filter(|n| matches!(n, Notification::WillSleep | Notification::DidSleep))
        .collect();
    assert_eq!(sleep, [Notification::WillSleep, Notification::DidSleep]);
    let stats = twin.stats();
    assert!(!stats.awake);
    // 10 s at nearly full load: about 1900 mA * 10 s = 5.3 mAh of 4000, plus
    // the push to accelerate.
    assert!(
        stats.battery_pct < 99.9 && stats.battery_pct > 99.7,
        "battery {}",
        stats.battery_pct
    );
}

#[test]
fn driving_into_a_wall_stalls_both_motors_and_draws_current() {
    let rig = rig_with(RvrConfig::default(), true);
    let (twin, host) = run(rig, async |host| {
        host.send_py(
            Command::EnableMotorStallNotify { enabled: true },
            Processor::St,
        )
        .await;
        let push = Command::DriveTankSi {
            left_mps: 0.5,
            right_mps: 0.5,
        };
        host.hold(push, 4 * SECONDS).await;
        assert!(
            host.notifications_of(NotificationKind::MotorStall)
                .is_empty(),
            "stalled too early"
        );
        let current = host
            .ask(Command::GetCurrentSenseAmplifierCurrent { motor: Motor::Left })
            .await;
        let Response::CurrentSenseAmplifierCurrent { amps } = response(&current) else {
            panic!()
        };
        // Traction-limited push 6.6 N at 0.3 A/N, plus 0.9 A * 0.5/1.555.
        assert!(amps > 2.0 && amps < 2.6, "stall current {amps} A");
        host.hold(push, 3 * SECONDS).await;
        host.send(Command::DriveStop).await;
        host.listen(3 * SECONDS).await;
    });
    let stalls = host.notifications_of(NotificationKind::MotorStall);
    assert_eq!(
        stalls,
        [
            Notification::MotorStall {
                motor: Motor::Left,
                triggered: true
            },
            Notification::MotorStall {
                motor: Motor::Right,
                triggered: true
            },
            Notification::MotorStall {
                motor: Motor::Left,
                triggered: false
            },
            Notification::MotorStall {
                motor: Motor::Right,
                triggered: false
            },
        ]
    );
    // The robot did not pass the wall.
    assert!(twin.body().planar().y < 0.35);
}

#[test]
fn a_spin_beyond_the_gyro_range_notifies_once() {
    let config = RvrConfig {
        gyro_range_dps: 100.0,
        ..RvrConfig::default()
    };
    let (_twin, host) = run(rig_with(config, false), async |host| {
        host.send_py(
            Command::EnableGyroMaxNotify { enabled: true },
            Processor::St,
        )
        .await;
        host.hold(
            Command::DriveRcSi {
                yaw_rate_dps: 180.0,
                linear_mps: 0.0,
                flags: Default::default(),
            },
            SECONDS,
        )
        .await;
        host.hold(
            Command::DriveRcSi {
                yaw_rate_dps: -180.0,
                linear_mps: 0.0,
                flags: Default::default(),
            },
            SECONDS,
        )
        .await;
    });
    assert_eq!(
        host.notifications_of(NotificationKind::GyroMax),
        [
            Notification::GyroMax(rvr_protocol::GyroMaxFlags::PLUS_Z),
            Notification::GyroMax(rvr_protocol::GyroMaxFlags::MINUS_Z),
        ]
    );
}

#[test]
fn overheating_motors_trip_thermal_protection_and_recover() {
    let mut config = RvrConfig::default();
    // Fast and hot, so the test is short: 0.87 A at full speed warms the
    // windings 76 °C above the case within about a second.
    config.motors.winding_rise_c_per_a2 = 100.0;
    config.motors.winding_tau = 500 * MILLIS;
    config.motors.warning_c = 40.0;
    config.motors.critical_c = 50.0;
    config.motors.recovered_c = 30.0;
    let (_twin, host) = run(rig_with(config, false), async |host| {
        host.send_py(
            Command::EnableMotorThermalProtectionStatusNotify { enabled: true },
            Processor::St,
        )
        .await;
        host.hold(
            Command::DriveTankSi {
                left_mps: 1.5,
                right_mps: 1.5,
            },
            500 * MILLIS,
        )
        .await;
        let refused = host
            .ask(Command::DriveTankSi {
                left_mps: 1.0,
                right_mps: 1.0,
            })
            .await;
        assert_eq!(refused.header.error, Some(ErrorCode::CommandRestricted));
        let status = response(&host.ask(Command::GetMotorThermalProtectionStatus).await);
        let Response::MotorThermalProtectionStatus { left, .. } = status else {
            panic!()
        };
        assert_eq!(left.status, ThermalStatus::Critical);
        host.listen(5 * SECONDS).await;
        let again = host
            .ask(Command::DriveTankSi {
                left_mps: 0.1,
                right_mps: 0.1,
            })
            .await;
        assert_eq!(again.header.error, Some(ErrorCode::Success), "cooled down");
        let temp = response(
            &host
                .ask(Command::GetMotorTemperature {
                    motor: Motor::Right,
                })
                .await,
        );
        let Response::MotorTemperature { winding_c, case_c } = temp else {
            panic!()
        };
        assert!(
            winding_c <= 30.0 && winding_c >= case_c,
            "{winding_c} {case_c}"
        );
    });
    let statuses: Vec<_> = host
        .notifications_of(NotificationKind::MotorThermalProtectionStatus)
        .into_iter()
        .map(|n| match n {
            Notification::MotorThermalProtectionStatus { left, right } => {
                assert_eq!(left.status, right.status);
                left.status
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ThermalStatus::Warning,
            ThermalStatus::Critical,
            ThermalStatus::Ok
        ]
    );
}

#[test]
fn an_injected_motor_fault_stops_the_motors_and_is_reported() {
    let mut config = RvrConfig::default();
    config.motors.fault_after = Some(SECONDS);
    let (_twin, host) = run(rig_with(config, false), async |host| {
        host.send_py(
            Command::EnableMotorFaultNotify { enabled: true },
            Processor::St,
        )
        .await;
        let before = host
            .ask_py(Command::GetMotorFaultState, Processor::St)
            .await;
        assert_eq!(
            response(&before),
            Response::MotorFaultState { is_fault: false }
        );
        host.listen(SECONDS).await;
        let after = host
            .ask_py(Command::GetMotorFaultState, Processor::St)
            .await;
        assert_eq!(
            response(&after),
            Response::MotorFaultState { is_fault: true }
        );
        let refused = host.ask(Command::DriveStop).await;
        assert_eq!(refused.header.error, Some(ErrorCode::CommandRestricted));
    });
    assert_eq!(
        host.notifications_of(NotificationKind::MotorFault),
        [Notification::MotorFault { is_fault: true }]
    );
}

#[test]
fn a_low_battery_under_load_changes_state_and_notifies() {
    let config = RvrConfig {
        battery_start_pct: 15.0,
        ..RvrConfig::default()
    };
    let (_twin, host) = run(rig_with(config, false), async |host| {
        host.send_py(
            Command::EnableBatteryVoltageStateChangeNotify { enabled: true },
            Processor::Nordic,
        )
        .await;
        let idle = response(&host.ask(Command::GetBatteryVoltageState).await);
        assert_eq!(idle, Response::BatteryVoltageState(BatteryVoltageState::Ok));
        let volts = response(
            &host
                .ask(Command::GetBatteryVoltageInVolts {
                    reading: rvr_protocol::VoltageReading::CalibratedFiltered,
                })
                .await,
        );
        // 15 %: 7.05 V open circuit, less 0.15 A * 0.15 ohm.
        let Response::BatteryVoltageInVolts(v) = volts else {
            panic!()
        };
        assert!((v - 7.0275).abs() < 0.01, "{v} V");
        host.hold(
            Command::DriveTankSi {
                left_mps: 1.5,
                right_mps: 1.5,
            },
            3 * SECONDS,
        )
        .await;
        let loaded = response(&host.ask(Command::GetBatteryVoltageState).await);
        assert_eq!(
            loaded,
            Response::BatteryVoltageState(BatteryVoltageState::Low)
        );
        let thresholds = response(&host.ask(Command::GetBatteryVoltageStateThresholds).await);
        assert_eq!(
            thresholds,
            Response::BatteryVoltageStateThresholds {
                critical_v: 6.6,
                low_v: 7.0,
                hysteresis_v: 0.1
            }
        );
    });
    assert_eq!(
        host.notifications_of(NotificationKind::BatteryVoltageStateChange),
        [Notification::BatteryVoltageStateChange(
            BatteryVoltageState::Low
        )]
    );
}

#[test]
fn colour_detection_notifies_at_its_interval_above_the_confidence() {
    let (_twin, host) = run(rig_with(RvrConfig::default(), false), async |host| {
        // Dark with detection off.
        let dark = response(&host.ask(Command::GetRgbcSensorValues).await);
        assert_eq!(
            dark,
            Response::RgbcSensorValues {
                red: 0,
                green: 0,
                blue: 0,
                clear: 0
            }
        );
        host.send_py(
            Command::EnableColorDetection { enabled: true },
            Processor::Nordic,
        )
        .await;
        let lit = response(&host.ask(Command::GetRgbcSensorValues).await);
        // 230 / 255 of full scale (65535 = 255 * 257) on every channel.
        assert_eq!(
            lit,
            Response::RgbcSensorValues {
                red: 230 * 257,
                green: 230 * 257,
                blue: 230 * 257,
                clear: 230 * 257
            }
        );
        host.send_py(
            Command::EnableColorDetectionNotify {
                enabled: true,
                interval_ms: 250,
                min_confidence: 100,
            },
            Processor::Nordic,
        )
        .await;
        host.listen(1010 * MILLIS).await;
        // Above the floor's confidence (163): nothing more.
        host.send_py(
            Command::EnableColorDetectionNotify {
                enabled: true,
                interval_ms: 250,
                min_confidence: 200,
            },
            Processor::Nordic,
        )
        .await;
        host.listen(600 * MILLIS).await;
        // A one-off reading ignores the threshold and follows the answer.
        let seq = host.send(Command::GetCurrentDetectedColorReading).await;
        host.listen(50 * MILLIS).await;
        let answered = host
            .got
            .iter()
            .position(|p| p.header.is_response() && p.header.sequence == seq)
            .expect("acknowledged");
        let last = host.got.len() - 1;
        assert!(answered < last, "the reading follows the answer");
    });
    let floor = rvr_protocol::ColorDetection {
        red: 230,
        green: 230,
        blue: 230,
        confidence: 163,
        classification: 3,
    };
    assert_eq!(
        host.notifications_of(NotificationKind::ColorDetection),
        vec![Notification::ColorDetection(floor); 5]
    );
}

#[test]
fn palettes_are_stored_loaded_and_used_for_identification() {
    let (_twin, host) = run(rig_with(RvrConfig::default(), false), async |host| {
        let default = response(&host.ask(Command::GetActiveColorPalette).await);
        let Response::ActiveColorPalette(p) = default else {
            panic!()
        };
        assert_eq!(p.entries().len(), 8);
        let custom = ColorPalette::new(&[
            PaletteEntry {
                index: 9,
                red: 10,
                green: 200,
                blue: 10,
            },
            PaletteEntry {
                index: 2,
                red: 230,
                green: 230,
                blue: 220,
            },
        ])
        .unwrap();
        host.send_py(Command::SetActiveColorPalette(custom), Processor::Nordic)
            .await;
        host.send_py(Command::SaveColorPalette { index: 5 }, Processor::Nordic)
            .await;
        let report = response(
            &host
                .ask(Command::GetColorIdentificationReport {
                    red: 20,
                    green: 190,
                    blue: 20,
                    confidence_threshold: 100,
                })
                .await,
        );
        let Response::ColorIdentificationReport(m) = report else {
            panic!()
        };
        assert_eq!(m.matches().len(), 1);
        assert_eq!(m.matches()[0].index, 9);
        // The floor now matches index 2, once detection is on.
        host.send(Command::EnableColorDetection { enabled: true })
            .await;
        host.send(Command::LoadColorPalette { index: 0 }).await;
        let back = response(&host.ask(Command::GetActiveColorPalette).await);
        assert_eq!(back, Response::ActiveColorPalette(p));
        host.send(Command::LoadColorPalette { index: 5 }).await;
        let saved = response(&host.ask(Command::GetActiveColorPalette).await);
        let Response::ActiveColorPalette(saved) = saved else {
            panic!()
        };
        // Stored in index order.
        assert_eq!(
            saved.entries().iter().map(|e| e.index).collect::<Vec<_>>(),
            [2, 9]
        );
        let missing = host.ask(Command::LoadColorPalette { index: 7 }).await;
        assert_eq!(missing.header.error, Some(ErrorCode::BadParameterValue));
        host.send(Command::GetCurrentDetectedColorReading).await;
        host.listen(50 * MILLIS).await;
    });
    let Some(Notification::ColorDetection(c)) = host
        .notifications_of(NotificationKind::ColorDetection)
        .pop()
    else {
        panic!()
    };
    assert_eq!(c.classification, 2);
    assert_ne!(c.classification, UNIDENTIFIED_COLOR);
}

#[test]
fn leds_are_stored_released_and_refused_asleep() {
    let (twin, host) = run(rig_with(RvrConfig::default(), false), async |host| {
        let all = (1 << 30) - 1;
        host.send_py(
            Command::SetAllLeds(LedValues::uniform(all, 0x40)),
            Processor::Nordic,
        )
        .await;
        host.send_py(
            Command::SetAllLeds(LedValues::new(0b110, &[1, 2]).unwrap()),
            Processor::Nordic,
        )
        .await;
        host.listen(20 * MILLIS).await;
    });
    let leds = twin.leds();
    assert_eq!(&leds[..4], &[0x40, 1, 2, 0x40]);
    assert_eq!(leds[29], 0x40);
    assert_eq!(leds[30], 0, "the undercarriage LED was not in the mask");
    let _ = host;

    let (twin, host) = run(rig_with(RvrConfig::default(), false), async |host| {
        host.send(Command::SetAllLeds(LedValues::uniform(0b1, 9)))
            .await;
        host.send(Command::ReleaseLedRequests).await;
        host.send(Command::Sleep).await;
        let asleep = host
            .ask(Command::SetAllLeds(LedValues::uniform(0b1, 9)))
            .await;
        assert_eq!(asleep.header.error, Some(ErrorCode::CommandRestricted));
        let bit31 = host
            .ask(Command::SetAllLeds(LedValues::uniform(1 << 31, 9)))
            .await;
        assert_eq!(bit31.header.error, Some(ErrorCode::BadParameterValue));
    });
    assert_eq!(twin.leds(), [0; 31]);
    let _ = host;
}

#[test]
fn infrared_has_no_partner_and_checks_its_codes() {
    let (twin, host) = run(rig_with(RvrConfig::default(), false), async |host| {
        host.send_py(
            Command::EnableRobotInfraredMessageNotify { enabled: true },
            Processor::St,
        )
        .await;
        let ok = [
            Command::StartInfraredBroadcasting {
                far_code: 1,
                near_code: 2,
            },
            Command::StartInfraredFollowing {
                far_code: 3,
                near_code: 4,
            },
            Command::SendInfraredMessage {
                code: 7,
                front_strength: 64,
                left_strength: 0,
                right_strength: 32,
                rear_strength: 64,
            },
        ];
        for c in ok {
            assert_eq!(host.ask(c).await.header.error, Some(ErrorCode::Success));
        }
        let bad = host
            .ask(Command::StartInfraredEvading {
                far_code: 8,
                near_code: 0,
            })
            .await;
        assert_eq!(bad.header.error, Some(ErrorCode::BadParameterValue));
        let readings = response(&host.ask(Command::GetBotToBotInfraredReadings).await);
        assert_eq!(
            readings,
            Response::BotToBotInfraredReadings(Default::default())
        );
        host.listen(SECONDS).await;
    });
    assert!(
        host.notifications_of(NotificationKind::InfraredMessageReceived)
            .is_empty()
    );
    let planar = twin.body().planar();
    assert!(
        planar.x.abs() < 1e-3 && planar.y.abs() < 1e-3,
        "following moved it"
    );
}

/// Turns 90 degrees left, resets yaw, drives "forward" about 0.5 m.
async fn turn_reset_and_drive(host: &mut Host) {
    host.hold(
        Command::DriveWithYawSi {
            yaw_deg: 90.0,
            linear_mps: 0.0,
        },
        2 * SECONDS,
    )
    .await;
    host.send(Command::ResetYaw).await;
    host.hold(
        Command::DriveWithYawSi {
            yaw_deg: 0.0,
            linear_mps: 0.5,
        },
        SECONDS,
    )
    .await;
    host.send(Command::DriveStop).await;
    host.listen(500 * MILLIS).await;
}

#[test]
fn auto_calibrate_keeps_the_locator_axes_of_power_on() {
    let (twin, _) = run(rig_with(RvrConfig::default(), false), async |host| {
        turn_reset_and_drive(host).await;
    });
    let plain = twin.sample().locator.unwrap();
    let rig = rig_with(RvrConfig::default(), false);
    let (twin, _) = run(rig, async |host| {
        host.send(Command::SetLocatorFlags(rvr_protocol::LocatorFlags {
            auto_calibrate: true,
        }))
        .await;
        turn_reset_and_drive(host).await;
    });
    let calibrated = twin.sample().locator.unwrap();
    // Without: the axes turned with the yaw reset, so the run is along +y.
    assert!(plain.y > 0.4 && plain.x.abs() < 0.05, "{plain:?}");
    // With: the axes of power-on; the robot drove to its left, -x.
    assert!(
        calibrated.x < -0.4 && calibrated.y.abs() < 0.05,
        "{calibrated:?}"
    );
}
