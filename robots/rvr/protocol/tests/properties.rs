//! Property tests: typed round trips, parser robustness and resynchronisation.

use proptest::prelude::*;
use proptest::sample::select;
use rvr_protocol::constants::{flag_bits, framing};
use rvr_protocol::constants::{io, text};
use rvr_protocol::{
    AddressStyle, Attitude, BatteryVoltageState, ColorDetection, ColorMatch, ColorMatches,
    ColorPalette, ColorReading, Command, CommandKind, DataSize, EchoData, EncoderTicks, ErrorCode,
    Flags, GyroMaxFlags, Header, HeadingFlags, InfraredReadings, LedValues, LocatorFlags, Motor,
    MotorMode, MotorThermal, Notification, NotificationKind, Packet, PaletteEntry, ParseError,
    Parser, Processor, Quaternion, RcFlags, Response, SensorSample, SensorService, StreamStatus,
    StreamingConfig, StreamingData, Text, ThermalStatus, Vector2, Vector3, Version, VoltageReading,
    XyDirection, XyDriveFlags, decode_frame,
};

// ---------------------------------------------------------------- strategies

fn style() -> impl Strategy<Value = AddressStyle> {
    select(vec![
        AddressStyle::TargetOnly,
        AddressStyle::TargetAndSource,
        AddressStyle::Untargeted,
    ])
}

fn processor() -> impl Strategy<Value = Processor> {
    select(vec![Processor::Nordic, Processor::St])
}

/// Any f32 except NaN (NaN != NaN would make equality meaningless; NaN bit
/// patterns are covered by `f32_bit_patterns_survive`).
fn real() -> impl Strategy<Value = f32> {
    use proptest::num::f32 as f;
    f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO | f::INFINITE
}

fn motor_mode() -> impl Strategy<Value = MotorMode> {
    select(vec![MotorMode::Off, MotorMode::Forward, MotorMode::Reverse])
}

fn heading_flags() -> impl Strategy<Value = HeadingFlags> {
    (0u8..=0x3F).prop_map(|b| HeadingFlags::from_bits(b).unwrap())
}

fn rc_flags() -> impl Strategy<Value = RcFlags> {
    any::<bool>().prop_map(|slew_linear_velocity| RcFlags {
        slew_linear_velocity,
    })
}

fn xy_flags() -> impl Strategy<Value = XyDriveFlags> {
    (
        select(vec![
            XyDirection::Forward,
            XyDirection::ForceReverse,
            XyDirection::AutoReverse,
        ]),
        any::<bool>(),
    )
        .prop_map(|(direction, relative)| XyDriveFlags {
            direction,
            relative,
        })
}

fn motor() -> impl Strategy<Value = Motor> {
    select(Motor::BOTH.to_vec())
}

fn echo_data() -> impl Strategy<Value = EchoData> {
    prop::collection::vec(any::<u8>(), 0..=16).prop_map(|d| EchoData::new(&d).unwrap())
}

fn led_values() -> impl Strategy<Value = LedValues> {
    (any::<u32>(), prop::collection::vec(any::<u8>(), 32))
        .prop_map(|(mask, v)| LedValues::new(mask, &v[..mask.count_ones() as usize]).unwrap())
}

fn palette() -> impl Strategy<Value = ColorPalette> {
    prop::collection::vec(any::<[u8; 4]>(), 0..=io::MAX_PALETTE_ENTRIES).prop_map(|entries| {
        let entries: Vec<PaletteEntry> = entries
            .into_iter()
            .map(|[index, red, green, blue]| PaletteEntry {
                index,
                red,
                green,
                blue,
            })
            .collect();
        ColorPalette::new(&entries).unwrap()
    })
}

fn color_matches() -> impl Strategy<Value = ColorMatches> {
    prop::collection::vec(any::<[u8; 2]>(), 0..=io::MAX_PALETTE_ENTRIES).prop_map(|m| {
        let m: Vec<ColorMatch> = m
            .into_iter()
            .map(|[index, confidence]| ColorMatch { index, confidence })
            .collect();
        ColorMatches::new(&m).unwrap()
    })
}

/// Text as the robot sends it: any UTF-8 without NUL that fits.
fn text_value() -> impl Strategy<Value = Text> {
    // At most 4 bytes per char: 16 chars always fit.
    const _: () = assert!(16 * 4 <= text::MAX_TEXT_LEN);
    "[^\\x00]{0,16}".prop_map(|s| Text::new(&s).unwrap())
}

fn version() -> impl Strategy<Value = Version> {
    any::<[u16; 3]>().prop_map(|[major, minor, revision]| Version {
        major,
        minor,
        revision,
    })
}

fn data_size() -> impl Strategy<Value = DataSize> {
    select(DataSize::ALL.to_vec())
}

fn streaming_config() -> impl Strategy<Value = StreamingConfig> {
    (
        0u8..=15,
        prop::collection::vec((select(SensorService::ALL.to_vec()), data_size()), 0..=5),
    )
        .prop_map(|(token, entries)| {
            let mut config = StreamingConfig::new(token).unwrap();
            for (service, size) in entries {
                config.push(service, size).unwrap();
            }
            config
        })
}

/// A strategy for every command of `kind`. The match is exhaustive, so a new
/// kind cannot be added without a strategy.
fn command_of(kind: CommandKind) -> BoxedStrategy<Command> {
    use CommandKind as K;
    let flag = |f: fn(bool) -> Command| any::<bool>().prop_map(f).boxed();
    let codes = |f: fn(u8, u8) -> Command| {
        (any::<u8>(), any::<u8>())
            .prop_map(move |(a, b)| f(a, b))
            .boxed()
    };
    match kind {
        K::Echo => echo_data().prop_map(Command::Echo).boxed(),
        K::GetMainApplicationVersion => Just(Command::GetMainApplicationVersion).boxed(),
        K::GetBootloaderVersion => Just(Command::GetBootloaderVersion).boxed(),
        K::GetBoardRevision => Just(Command::GetBoardRevision).boxed(),
        K::GetMacAddress => Just(Command::GetMacAddress).boxed(),
        K::GetStatsId => Just(Command::GetStatsId).boxed(),
        K::GetProcessorName => Just(Command::GetProcessorName).boxed(),
        K::GetSku => Just(Command::GetSku).boxed(),
        K::GetCoreUpTimeInMilliseconds => Just(Command::GetCoreUpTimeInMilliseconds).boxed(),
        K::Sleep => Just(Command::Sleep).boxed(),
        K::Wake => Just(Command::Wake).boxed(),
        K::GetBatteryPercentage => Just(Command::GetBatteryPercentage).boxed(),
        K::GetBatteryVoltageState => Just(Command::GetBatteryVoltageState).boxed(),
        K::EnableBatteryVoltageStateChangeNotify => {
            flag(|enabled| Command::EnableBatteryVoltageStateChangeNotify { enabled })
        }
        K::GetBatteryVoltageInVolts => select(vec![
            VoltageReading::CalibratedFiltered,
            VoltageReading::CalibratedUnfiltered,
            VoltageReading::UncalibratedUnfiltered,
        ])
        .prop_map(|reading| Command::GetBatteryVoltageInVolts { reading })
        .boxed(),
        K::GetBatteryVoltageStateThresholds => {
            Just(Command::GetBatteryVoltageStateThresholds).boxed()
        }
        K::GetCurrentSenseAmplifierCurrent => motor()
            .prop_map(|motor| Command::GetCurrentSenseAmplifierCurrent { motor })
            .boxed(),
        K::RawMotors => (motor_mode(), any::<u8>(), motor_mode(), any::<u8>())
            .prop_map(
                |(left_mode, left_duty, right_mode, right_duty)| Command::RawMotors {
                    left_mode,
                    left_duty,
                    right_mode,
                    right_duty,
                },
            )
            .boxed(),
        K::ResetYaw => Just(Command::ResetYaw).boxed(),
        K::DriveWithHeading => (any::<u8>(), any::<u16>(), heading_flags())
            .prop_map(|(speed, heading_deg, flags)| Command::DriveWithHeading {
                speed,
                heading_deg,
                flags,
            })
            .boxed(),
        K::SetCustomControlSystemTimeout => any::<u16>()
            .prop_map(|timeout_ms| Command::SetCustomControlSystemTimeout { timeout_ms })
            .boxed(),
        K::EnableMotorStallNotify => flag(|enabled| Command::EnableMotorStallNotify { enabled }),
        K::EnableMotorFaultNotify => flag(|enabled| Command::EnableMotorFaultNotify { enabled }),
        K::GetMotorFaultState => Just(Command::GetMotorFaultState).boxed(),
        K::DriveTankSi => (real(), real())
            .prop_map(|(left_mps, right_mps)| Command::DriveTankSi {
                left_mps,
                right_mps,
            })
            .boxed(),
        K::DriveTankNormalized => (any::<i8>(), any::<i8>())
            .prop_map(|(left, right)| Command::DriveTankNormalized { left, right })
            .boxed(),
        K::DriveRcSi => (real(), real(), rc_flags())
            .prop_map(|(yaw_rate_dps, linear_mps, flags)| Command::DriveRcSi {
                yaw_rate_dps,
                linear_mps,
                flags,
            })
            .boxed(),
        K::DriveRcNormalized => (any::<i8>(), any::<i8>(), rc_flags())
            .prop_map(|(yaw_rate, linear, flags)| Command::DriveRcNormalized {
                yaw_rate,
                linear,
                flags,
            })
            .boxed(),
        K::DriveWithYawSi => (real(), real())
            .prop_map(|(yaw_deg, linear_mps)| Command::DriveWithYawSi {
                yaw_deg,
                linear_mps,
            })
            .boxed(),
        K::DriveToPositionSi => (real(), real(), real(), real(), xy_flags())
            .prop_map(
                |(yaw_deg, x_m, y_m, speed_mps, flags)| Command::DriveToPositionSi {
                    yaw_deg,
                    x_m,
                    y_m,
                    speed_mps,
                    flags,
                },
            )
            .boxed(),
        K::DriveStopCustomDecel => real()
            .prop_map(|decel_mps2| Command::DriveStopCustomDecel { decel_mps2 })
            .boxed(),
        K::GetStopControllerState => Just(Command::GetStopControllerState).boxed(),
        K::DriveStop => Just(Command::DriveStop).boxed(),
        K::RestoreDefaultControlSystemTimeout => {
            Just(Command::RestoreDefaultControlSystemTimeout).boxed()
        }
        K::EnableGyroMaxNotify => flag(|enabled| Command::EnableGyroMaxNotify { enabled }),
        K::ResetLocatorXy => Just(Command::ResetLocatorXy).boxed(),
        K::SetLocatorFlags => any::<bool>()
            .prop_map(|auto_calibrate| Command::SetLocatorFlags(LocatorFlags { auto_calibrate }))
            .boxed(),
        K::GetBotToBotInfraredReadings => Just(Command::GetBotToBotInfraredReadings).boxed(),
        K::GetRgbcSensorValues => Just(Command::GetRgbcSensorValues).boxed(),
        K::StartInfraredBroadcasting => {
            codes(|far_code, near_code| Command::StartInfraredBroadcasting {
                far_code,
                near_code,
            })
        }
        K::StartInfraredFollowing => codes(|far_code, near_code| Command::StartInfraredFollowing {
            far_code,
            near_code,
        }),
        K::StopInfraredBroadcasting => Just(Command::StopInfraredBroadcasting).boxed(),
        K::GetAmbientLightSensorValue => Just(Command::GetAmbientLightSensorValue).boxed(),
        K::StopInfraredFollowing => Just(Command::StopInfraredFollowing).boxed(),
        K::StartInfraredEvading => codes(|far_code, near_code| Command::StartInfraredEvading {
            far_code,
            near_code,
        }),
        K::StopInfraredEvading => Just(Command::StopInfraredEvading).boxed(),
        K::EnableColorDetectionNotify => (any::<bool>(), any::<u16>(), any::<u8>())
            .prop_map(|(enabled, interval_ms, min_confidence)| {
                Command::EnableColorDetectionNotify {
                    enabled,
                    interval_ms,
                    min_confidence,
                }
            })
            .boxed(),
        K::GetCurrentDetectedColorReading => Just(Command::GetCurrentDetectedColorReading).boxed(),
        K::EnableColorDetection => flag(|enabled| Command::EnableColorDetection { enabled }),
        K::ConfigureStreaming => streaming_config()
            .prop_map(Command::ConfigureStreaming)
            .boxed(),
        K::StartStreaming => any::<u16>()
            .prop_map(|period_ms| Command::StartStreaming { period_ms })
            .boxed(),
        K::StopStreaming => Just(Command::StopStreaming).boxed(),
        K::ClearStreaming => Just(Command::ClearStreaming).boxed(),
        K::EnableRobotInfraredMessageNotify => {
            flag(|enabled| Command::EnableRobotInfraredMessageNotify { enabled })
        }
        K::SendInfraredMessage => any::<[u8; 5]>()
            .prop_map(|[code, f, l, r, b]| Command::SendInfraredMessage {
                code,
                front_strength: f,
                left_strength: l,
                right_strength: r,
                rear_strength: b,
            })
            .boxed(),
        K::GetMotorTemperature => motor()
            .prop_map(|motor| Command::GetMotorTemperature { motor })
            .boxed(),
        K::GetMotorThermalProtectionStatus => {
            Just(Command::GetMotorThermalProtectionStatus).boxed()
        }
        K::EnableMotorThermalProtectionStatusNotify => {
            flag(|enabled| Command::EnableMotorThermalProtectionStatusNotify { enabled })
        }
        K::GetMagnetometerReading => Just(Command::GetMagnetometerReading).boxed(),
        K::GetEncoderCounts => Just(Command::GetEncoderCounts).boxed(),
        K::GetBluetoothAdvertisingName => Just(Command::GetBluetoothAdvertisingName).boxed(),
        K::SetAllLeds => led_values().prop_map(Command::SetAllLeds).boxed(),
        K::GetActiveColorPalette => Just(Command::GetActiveColorPalette).boxed(),
        K::SetActiveColorPalette => palette().prop_map(Command::SetActiveColorPalette).boxed(),
        K::GetColorIdentificationReport => any::<[u8; 4]>()
            .prop_map(|[red, green, blue, confidence_threshold]| {
                Command::GetColorIdentificationReport {
                    red,
                    green,
                    blue,
                    confidence_threshold,
                }
            })
            .boxed(),
        K::LoadColorPalette => any::<u8>()
            .prop_map(|index| Command::LoadColorPalette { index })
            .boxed(),
        K::SaveColorPalette => any::<u8>()
            .prop_map(|index| Command::SaveColorPalette { index })
            .boxed(),
        K::ReleaseLedRequests => Just(Command::ReleaseLedRequests).boxed(),
    }
}

fn command() -> impl Strategy<Value = Command> {
    select(CommandKind::ALL.to_vec()).prop_flat_map(command_of)
}

fn thermal() -> impl Strategy<Value = MotorThermal> {
    (
        real(),
        select(vec![
            ThermalStatus::Ok,
            ThermalStatus::Warning,
            ThermalStatus::Critical,
        ]),
    )
        .prop_map(|(temperature, status)| MotorThermal {
            temperature,
            status,
        })
}

/// A strategy for every response to `kind` (exhaustive over the kinds with
/// outputs, like `command_of`; the rest are acknowledgements).
fn response_of(kind: CommandKind) -> BoxedStrategy<Response> {
    use CommandKind as K;
    match kind {
        K::Echo => echo_data().prop_map(Response::Echo).boxed(),
        K::GetMainApplicationVersion => {
            version().prop_map(Response::MainApplicationVersion).boxed()
        }
        K::GetBootloaderVersion => version().prop_map(Response::BootloaderVersion).boxed(),
        K::GetBoardRevision => any::<u8>().prop_map(Response::BoardRevision).boxed(),
        K::GetMacAddress => text_value().prop_map(Response::MacAddress).boxed(),
        K::GetStatsId => any::<u16>().prop_map(Response::StatsId).boxed(),
        K::GetProcessorName => text_value().prop_map(Response::ProcessorName).boxed(),
        K::GetSku => text_value().prop_map(Response::Sku).boxed(),
        K::GetCoreUpTimeInMilliseconds => any::<u64>()
            .prop_map(|ms| Response::CoreUpTime { ms })
            .boxed(),
        K::GetBatteryPercentage => (0u8..=100).prop_map(Response::BatteryPercentage).boxed(),
        K::GetBatteryVoltageState => select(vec![
            BatteryVoltageState::Unknown,
            BatteryVoltageState::Ok,
            BatteryVoltageState::Low,
            BatteryVoltageState::Critical,
        ])
        .prop_map(Response::BatteryVoltageState)
        .boxed(),
        K::GetBatteryVoltageInVolts => real().prop_map(Response::BatteryVoltageInVolts).boxed(),
        K::GetBatteryVoltageStateThresholds => (real(), real(), real())
            .prop_map(
                |(critical_v, low_v, hysteresis_v)| Response::BatteryVoltageStateThresholds {
                    critical_v,
                    low_v,
                    hysteresis_v,
                },
            )
            .boxed(),
        K::GetCurrentSenseAmplifierCurrent => real()
            .prop_map(|amps| Response::CurrentSenseAmplifierCurrent { amps })
            .boxed(),
        K::GetMotorFaultState => any::<bool>()
            .prop_map(|is_fault| Response::MotorFaultState { is_fault })
            .boxed(),
        K::GetStopControllerState => any::<bool>()
            .prop_map(|stopped| Response::StopControllerState { stopped })
            .boxed(),
        K::GetBotToBotInfraredReadings => any::<u32>()
            .prop_map(|bits| Response::BotToBotInfraredReadings(InfraredReadings::from_bits(bits)))
            .boxed(),
        K::GetRgbcSensorValues => any::<[u16; 4]>()
            .prop_map(|[red, green, blue, clear]| Response::RgbcSensorValues {
                red,
                green,
                blue,
                clear,
            })
            .boxed(),
        K::GetAmbientLightSensorValue => real()
            .prop_map(|lux| Response::AmbientLight { lux })
            .boxed(),
        K::GetMotorTemperature => (real(), real())
            .prop_map(|(winding_c, case_c)| Response::MotorTemperature { winding_c, case_c })
            .boxed(),
        K::GetMotorThermalProtectionStatus => (thermal(), thermal())
            .prop_map(|(left, right)| Response::MotorThermalProtectionStatus { left, right })
            .boxed(),
        K::GetMagnetometerReading => (real(), real(), real())
            .prop_map(|(x, y, z)| Response::MagnetometerReading { x, y, z })
            .boxed(),
        K::GetEncoderCounts => (any::<i32>(), any::<i32>())
            .prop_map(|(left, right)| Response::EncoderCounts { left, right })
            .boxed(),
        K::GetBluetoothAdvertisingName => text_value()
            .prop_map(Response::BluetoothAdvertisingName)
            .boxed(),
        K::GetActiveColorPalette => palette().prop_map(Response::ActiveColorPalette).boxed(),
        K::GetColorIdentificationReport => color_matches()
            .prop_map(Response::ColorIdentificationReport)
            .boxed(),
        K::Sleep
        | K::Wake
        | K::EnableBatteryVoltageStateChangeNotify
        | K::RawMotors
        | K::ResetYaw
        | K::DriveWithHeading
        | K::SetCustomControlSystemTimeout
        | K::EnableMotorStallNotify
        | K::EnableMotorFaultNotify
        | K::DriveTankSi
        | K::DriveTankNormalized
        | K::DriveRcSi
        | K::DriveRcNormalized
        | K::DriveWithYawSi
        | K::DriveToPositionSi
        | K::DriveStopCustomDecel
        | K::DriveStop
        | K::RestoreDefaultControlSystemTimeout
        | K::EnableGyroMaxNotify
        | K::ResetLocatorXy
        | K::SetLocatorFlags
        | K::StartInfraredBroadcasting
        | K::StartInfraredFollowing
        | K::StopInfraredBroadcasting
        | K::StopInfraredFollowing
        | K::StartInfraredEvading
        | K::StopInfraredEvading
        | K::EnableColorDetectionNotify
        | K::GetCurrentDetectedColorReading
        | K::EnableColorDetection
        | K::ConfigureStreaming
        | K::StartStreaming
        | K::StopStreaming
        | K::ClearStreaming
        | K::EnableRobotInfraredMessageNotify
        | K::SendInfraredMessage
        | K::EnableMotorThermalProtectionStatusNotify
        | K::SetAllLeds
        | K::SetActiveColorPalette
        | K::LoadColorPalette
        | K::SaveColorPalette
        | K::ReleaseLedRequests => Just(Response::Ack(kind)).boxed(),
    }
}

fn response() -> impl Strategy<Value = Response> {
    select(CommandKind::ALL.to_vec()).prop_flat_map(response_of)
}

fn stream_status() -> impl Strategy<Value = StreamStatus> {
    (0u8..=15).prop_map(StreamStatus::from_nibble)
}

/// A strategy for every notification of `kind` (exhaustive).
fn notification_of(kind: NotificationKind) -> BoxedStrategy<Notification> {
    use NotificationKind as K;
    match kind {
        K::WillSleep => Just(Notification::WillSleep).boxed(),
        K::DidSleep => Just(Notification::DidSleep).boxed(),
        K::BatteryVoltageStateChange => select(vec![
            BatteryVoltageState::Unknown,
            BatteryVoltageState::Ok,
            BatteryVoltageState::Low,
            BatteryVoltageState::Critical,
        ])
        .prop_map(Notification::BatteryVoltageStateChange)
        .boxed(),
        K::MotorStall => (motor(), any::<bool>())
            .prop_map(|(motor, triggered)| Notification::MotorStall { motor, triggered })
            .boxed(),
        K::MotorFault => any::<bool>()
            .prop_map(|is_fault| Notification::MotorFault { is_fault })
            .boxed(),
        K::XyPositionDriveResult => any::<bool>()
            .prop_map(|success| Notification::XyPositionDriveResult { success })
            .boxed(),
        K::RobotHasStopped => Just(Notification::RobotHasStopped).boxed(),
        K::GyroMax => (0u8..=0x3F)
            .prop_map(|b| Notification::GyroMax(GyroMaxFlags::from_bits(b).unwrap()))
            .boxed(),
        K::InfraredMessageReceived => any::<u8>()
            .prop_map(|code| Notification::InfraredMessageReceived { code })
            .boxed(),
        K::ColorDetection => any::<[u8; 5]>()
            .prop_map(|[red, green, blue, confidence, classification]| {
                Notification::ColorDetection(ColorDetection {
                    red,
                    green,
                    blue,
                    confidence,
                    classification,
                })
            })
            .boxed(),
        K::StreamingData => (
            0u8..=15,
            stream_status(),
            prop::collection::vec(any::<u8>(), 0..framing::MAX_PAYLOAD_LEN),
        )
            .prop_map(|(token, status, data)| {
                Notification::StreamingData(StreamingData::new(token, status, &data).unwrap())
            })
            .boxed(),
        K::MotorThermalProtectionStatus => (thermal(), thermal())
            .prop_map(|(left, right)| Notification::MotorThermalProtectionStatus { left, right })
            .boxed(),
    }
}

fn notification() -> impl Strategy<Value = Notification> {
    select(NotificationKind::ALL.to_vec()).prop_flat_map(notification_of)
}

/// The payload a decoded response re-encodes to: a text stops at the first
/// NUL (the robot may terminate its strings; the twin does not).
fn canonical_response_payload(response: &Response, payload: &[u8]) -> Vec<u8> {
    match response {
        Response::MacAddress(_)
        | Response::ProcessorName(_)
        | Response::Sku(_)
        | Response::BluetoothAdvertisingName(_) => {
            payload.iter().copied().take_while(|&b| b != 0).collect()
        }
        _ => payload.to_vec(),
    }
}

/// A request header as any host might send it (any addressing, any flags
/// except a response).
fn request_header() -> impl Strategy<Value = Header> {
    (
        any::<u8>(),
        prop::option::of(any::<u8>()),
        prop::option::of(any::<u8>()),
        any::<u8>(),
    )
        .prop_map(|(flags, target, source, sequence)| {
            let mut h = Header::new(0, 0, sequence);
            h.flags = Flags::from_bits_truncate(flags);
            h.target = target;
            h.source = source;
            h
        })
}

/// Any packet the encoder accepts: arbitrary header fields and payload.
fn packet() -> impl Strategy<Value = Packet> {
    (
        any::<u8>(),
        prop::option::of(any::<u8>()),
        prop::option::of(any::<u8>()),
        any::<[u8; 3]>(),
        prop::option::of(any::<u8>()),
        prop::collection::vec(any::<u8>(), 0..=framing::MAX_PAYLOAD_LEN),
    )
        .prop_map(|(flags, target, source, [did, cid, seq], error, payload)| {
            let mut flags = Flags::from_bits_truncate(flags);
            if error.is_some() {
                flags = flags.difference(Flags::REQUESTS_RESPONSE);
            }
            let header = Header {
                flags,
                target,
                source,
                device_id: did,
                command_id: cid,
                sequence: seq,
                error: error.map(ErrorCode::from_byte),
            };
            Packet::new(header, &payload).unwrap()
        })
}

/// Bytes biased towards the special ones, so random input reaches every state.
fn wire_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => any::<u8>(),
        1 => select(vec![
            framing::SOP,
            framing::EOP,
            framing::ESC,
            framing::ESCAPED_SOP,
            framing::ESCAPED_EOP,
            framing::ESCAPED_ESC,
        ]),
    ]
}

/// A stream made of valid frames, damaged frames (a byte replaced, dropped
/// or cut short) and noise.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let chunk = prop_oneof![
        prop::collection::vec(wire_byte(), 0..8),
        packet().prop_map(|p| p.to_frame().unwrap().to_vec()),
        (packet(), any::<prop::sample::Index>(), wire_byte()).prop_map(|(p, i, b)| {
            let mut f = p.to_frame().unwrap().to_vec();
            let i = i.index(f.len());
            f[i] = b;
            f
        }),
        (packet(), any::<prop::sample::Index>()).prop_map(|(p, i)| {
            let mut f = p.to_frame().unwrap().to_vec();
            f.remove(i.index(f.len()));
            f
        }),
        (packet(), any::<prop::sample::Index>()).prop_map(|(p, i)| {
            let mut f = p.to_frame().unwrap().to_vec();
            f.truncate(i.index(f.len()));
            f
        }),
    ];
    prop::collection::vec(chunk, 0..8).prop_map(|chunks| chunks.concat())
}

// ------------------------------------------------------- reference checks

/// Independent of the crate: un-escapes `frame[1..len-1]` and checks the sum.
fn reference_checksum_ok(frame: &[u8]) -> bool {
    assert_eq!(frame.first(), Some(&0x8D));
    assert_eq!(frame.last(), Some(&0xD8));
    let mut sum = 0u8;
    let mut escaped = false;
    for &b in &frame[1..frame.len() - 1] {
        if escaped {
            let raw = match b {
                0x05 => 0x8D,
                0x50 => 0xD8,
                0x23 => 0xAB,
                _ => return false,
            };
            sum = sum.wrapping_add(raw);
            escaped = false;
        } else if b == 0xAB {
            escaped = true;
        } else {
            sum = sum.wrapping_add(b);
        }
    }
    !escaped && sum == 0xFF
}

fn wire_of(packet: &Packet) -> Vec<u8> {
    packet.to_frame().unwrap().to_vec()
}

/// Feeds `bytes`, checking every yielded frame and the counters.
fn feed_and_check(parser: &mut Parser, bytes: &[u8]) -> Vec<(usize, Result<Packet, ParseError>)> {
    let before = *parser.stats();
    let mut out = Vec::new();
    let mut last_sop = None;
    for (i, &b) in bytes.iter().enumerate() {
        if b == framing::SOP {
            last_sop = Some(i);
        }
        if let Some(item) = parser.push(b) {
            if let Ok(packet) = &item {
                // The frame really was on the wire, SOP to this EOP, with a
                // good checksum (checked without the crate's code).
                let start = last_sop.expect("a frame starts with a SOP");
                let frame = &bytes[start..=i];
                assert!(reference_checksum_ok(frame), "bad checksum let through");
                assert_eq!(wire_of(packet), frame, "packet is not what was on the wire");
                assert!(!packet.header.has_conflicting_flags());
            }
            out.push((i, item));
        }
    }
    let s = parser.stats();
    let count = |e: ParseError| out.iter().filter(|(_, item)| *item == Err(e)).count() as u32;
    let oks = out.iter().filter(|(_, item)| item.is_ok()).count() as u32;
    assert_eq!(s.frames - before.frames, oks);
    assert_eq!(
        s.early_start - before.early_start,
        count(ParseError::EarlyStart)
    );
    assert_eq!(s.truncated - before.truncated, count(ParseError::Truncated));
    assert_eq!(
        s.bad_escape - before.bad_escape,
        count(ParseError::BadEscape)
    );
    assert_eq!(
        s.bad_checksum - before.bad_checksum,
        count(ParseError::BadChecksum)
    );
    assert_eq!(s.bad_flags - before.bad_flags, count(ParseError::BadFlags));
    assert_eq!(s.too_long - before.too_long, count(ParseError::TooLong));
    assert!(s.skipped_bytes - before.skipped_bytes >= count(ParseError::SkippedData));
    out
}

fn parse_one(wire: &[u8]) -> Packet {
    decode_frame(wire).expect("one valid frame")
}

// ------------------------------------------------------------------ tests

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_command_round_trips(
        command in command(),
        sequence in any::<u8>(),
        style in style(),
        processor in processor(),
    ) {
        for packet in [
            command.to_packet(sequence, style).unwrap(),
            command.to_packet_for(sequence, style, processor).unwrap(),
        ] {
            let parsed = parse_one(&wire_of(&packet));
            prop_assert_eq!(&parsed, &packet);
            prop_assert_eq!(Command::from_packet(&parsed), Ok(command));
            prop_assert_eq!(parsed.header.sequence, sequence);
            prop_assert!(!parsed.header.is_response());
        }
        let routed = command.to_packet_for(sequence, style, processor).unwrap();
        if style != AddressStyle::Untargeted {
            prop_assert_eq!(routed.header.destination(), Some(processor));
        }
    }

    #[test]
    fn every_response_round_trips(response in response(), request in request_header()) {
        let mut request = request;
        (request.device_id, request.command_id) = response.kind().ids();
        let packet = response.to_packet(&request).unwrap();
        let parsed = parse_one(&wire_of(&packet));
        prop_assert_eq!(Response::from_packet(&parsed), Ok(response));
        let h = parsed.header;
        prop_assert_eq!(h.error, Some(ErrorCode::Success));
        prop_assert_eq!(h.sequence, request.sequence);
        prop_assert_eq!(h.target, request.source);
        prop_assert_eq!(h.source, request.target);
    }

    #[test]
    fn error_responses_round_trip(request in request_header(), code in any::<u8>()) {
        let code = ErrorCode::from_byte(code);
        prop_assert_eq!(ErrorCode::from_byte(code.to_byte()), code);
        let packet = Packet::error_response(&request, code);
        let parsed = parse_one(&wire_of(&packet));
        prop_assert_eq!(parsed.header.error, Some(code));
        let decoded = Response::from_packet(&parsed);
        if code.is_success() {
            // DID 0 is not typed: a success with no known command.
            prop_assert!(decoded.is_err());
        } else {
            prop_assert_eq!(decoded, Err(rvr_protocol::DecodeError::ErrorResponse(code)));
        }
    }

    #[test]
    fn every_notification_round_trips(
        notification in notification(),
        sequence in any::<u8>(),
        source in processor(),
        style in style(),
    ) {
        let packet = notification.to_packet(sequence, source, style).unwrap();
        let parsed = parse_one(&wire_of(&packet));
        prop_assert_eq!(Notification::from_packet(&parsed), Ok(notification));
        if style != AddressStyle::Untargeted {
            prop_assert_eq!(parsed.header.origin(), Some(source));
        }
        // A notification never asks for an answer.
        prop_assert!(!parsed.header.wants_reply(true) && !parsed.header.wants_reply(false));
    }

    #[test]
    fn any_packet_round_trips(packet in packet()) {
        let wire = wire_of(&packet);
        prop_assert_eq!(wire.len(), packet.encoded_len());
        prop_assert!(wire.len() <= framing::MAX_FRAME_LEN);
        // Only the framing bytes are unescaped specials.
        prop_assert!(!wire[1..wire.len() - 1].contains(&framing::SOP));
        prop_assert!(!wire[1..wire.len() - 1].contains(&framing::EOP));
        prop_assert!(reference_checksum_ok(&wire));
        prop_assert_eq!(parse_one(&wire), packet);
        // A buffer one byte short is refused, not overrun.
        let mut short = vec![0u8; wire.len() - 1];
        let is_buffer_error = matches!(
            packet.encode(&mut short),
            Err(rvr_protocol::EncodeError::BufferTooSmall { .. })
        );
        prop_assert!(is_buffer_error);
    }

    #[test]
    fn parser_never_panics_nor_passes_bad_frames(bytes in prop::collection::vec(wire_byte(), 0..600)) {
        let mut parser = Parser::new();
        feed_and_check(&mut parser, &bytes);
    }

    #[test]
    fn parser_survives_damaged_streams(bytes in stream()) {
        let mut parser = Parser::new();
        feed_and_check(&mut parser, &bytes);
    }

    #[test]
    fn frame_in_noise_is_recovered(
        before in prop::collection::vec(wire_byte(), 0..64),
        packet in packet(),
        after in prop::collection::vec(wire_byte(), 0..64),
    ) {
        let frame = wire_of(&packet);
        let mut bytes = before.clone();
        bytes.extend_from_slice(&frame);
        bytes.extend_from_slice(&after);
        let mut parser = Parser::new();
        let out = feed_and_check(&mut parser, &bytes);
        let eop = before.len() + frame.len() - 1;
        let at_eop = out.iter().find(|(i, _)| *i == eop).map(|(_, item)| *item);
        prop_assert_eq!(at_eop, Some(Ok(packet)));
    }

    #[test]
    fn frame_after_damaged_stream_is_recovered(noise in stream(), packet in packet()) {
        let mut parser = Parser::new();
        feed_and_check(&mut parser, &noise);
        let out = feed_and_check(&mut parser, &wire_of(&packet));
        prop_assert_eq!(out.last().map(|(_, item)| *item), Some(Ok(packet)));
    }

    #[test]
    fn typed_decoders_never_panic(packet in packet()) {
        // Whatever they return, re-encoding an accepted command reproduces its payload.
        if let Ok(command) = Command::from_packet(&packet) {
            let again = command.to_packet(0, AddressStyle::TargetOnly).unwrap();
            prop_assert_eq!(again.payload(), packet.payload());
        }
        if let Ok(response) = Response::from_packet(&packet) {
            let again = response.to_packet(&Header::new(0, 0, 0)).unwrap();
            prop_assert_eq!(again.payload(), &canonical_response_payload(&response, packet.payload())[..]);
        }
        if let Ok(notification) = Notification::from_packet(&packet) {
            let again = notification.to_packet(0, Processor::St, AddressStyle::TargetOnly).unwrap();
            prop_assert_eq!(again.payload(), packet.payload());
        }
    }

    #[test]
    fn typed_decoders_on_known_ids(
        kind in select(CommandKind::ALL.to_vec()),
        payload in prop::collection::vec(any::<u8>(), 0..24),
        is_response in any::<bool>(),
    ) {
        let (did, cid) = kind.ids();
        let mut header = Header::new(did, cid, 0);
        header.error = is_response.then_some(ErrorCode::Success);
        let packet = Packet::new(header, &payload).unwrap();
        if let Ok(command) = Command::from_packet(&packet) {
            let again = command.to_packet(0, AddressStyle::TargetOnly).unwrap();
            prop_assert_eq!(again.payload(), &payload[..]);
        }
        if let Ok(response) = Response::from_packet(&packet) {
            let again = response.to_packet(&header).unwrap();
            prop_assert_eq!(again.payload(), &canonical_response_payload(&response, &payload)[..]);
        }
    }

    #[test]
    fn notification_decoders_on_known_ids(
        kind in select(NotificationKind::ALL.to_vec()),
        payload in prop::collection::vec(any::<u8>(), 0..24),
    ) {
        let (did, cid) = kind.ids();
        let packet = Packet::new(Header::new(did, cid, 0), &payload).unwrap();
        if let Ok(notification) = Notification::from_packet(&packet) {
            prop_assert_eq!(notification.kind(), kind);
            let again = notification.to_packet(0, Processor::Nordic, AddressStyle::TargetOnly).unwrap();
            prop_assert_eq!(again.payload(), &payload[..]);
        }
    }

    #[test]
    fn f32_bit_patterns_survive(bits in any::<u32>(), sequence in any::<u8>()) {
        // NaN payloads included: compared as bytes.
        let command = Command::DriveTankSi { left_mps: f32::from_bits(bits), right_mps: 0.0 };
        let packet = command.to_packet(sequence, AddressStyle::TargetOnly).unwrap();
        let Command::DriveTankSi { left_mps, .. } = Command::from_packet(&parse_one(&wire_of(&packet))).unwrap() else {
            panic!("wrong command");
        };
        prop_assert_eq!(left_mps.to_bits(), bits);
    }
}

// ------------------------------------------------------ streaming samples

/// A value inside `[min, max]`.
fn in_range(min: f64, max: f64) -> impl Strategy<Value = f32> {
    (0.0f64..=1.0).prop_map(move |t| (min + t * (max - min)) as f32)
}

fn sample_for_all() -> impl Strategy<Value = SensorSample> {
    let unit = || in_range(-1.0, 1.0);
    (
        (unit(), unit(), unit(), unit()),
        (
            in_range(-180.0, 180.0),
            in_range(-90.0, 90.0),
            in_range(-180.0, 180.0),
        ),
        (
            in_range(-16.0, 16.0),
            in_range(-16.0, 16.0),
            in_range(-16.0, 16.0),
        ),
        (
            in_range(0.0, 255.0),
            in_range(0.0, 255.0),
            in_range(0.0, 255.0),
            in_range(0.0, 255.0),
            in_range(0.0, 1.0),
        ),
        (
            in_range(-2000.0, 2000.0),
            in_range(-2000.0, 2000.0),
            in_range(-2000.0, 2000.0),
        ),
        any::<u32>(),
        (in_range(-16000.0, 16000.0), in_range(-16000.0, 16000.0)),
        (in_range(-5.0, 5.0), in_range(-5.0, 5.0)),
        in_range(0.0, 5.0),
        any::<u64>(),
        in_range(0.0, 120000.0),
        (any::<i32>(), any::<i32>()),
    )
        .prop_map(
            |(q, imu, acc, color, gyro, ctl, loc, vel, speed, ct, light, enc)| SensorSample {
                quaternion: Some(Quaternion {
                    w: q.0,
                    x: q.1,
                    y: q.2,
                    z: q.3,
                }),
                imu: Some(Attitude {
                    pitch_deg: imu.0,
                    roll_deg: imu.1,
                    yaw_deg: imu.2,
                }),
                accelerometer: Some(Vector3 {
                    x: acc.0,
                    y: acc.1,
                    z: acc.2,
                }),
                color: Some(ColorReading {
                    r: color.0,
                    g: color.1,
                    b: color.2,
                    index: color.3,
                    confidence: color.4,
                }),
                gyroscope: Some(Vector3 {
                    x: gyro.0,
                    y: gyro.1,
                    z: gyro.2,
                }),
                core_time_lower_ms: Some(ctl),
                locator: Some(Vector2 { x: loc.0, y: loc.1 }),
                velocity: Some(Vector2 { x: vel.0, y: vel.1 }),
                speed_mps: Some(speed),
                core_time_ms: Some(ct),
                ambient_light_lux: Some(light),
                encoders: Some(EncoderTicks {
                    left: enc.0,
                    right: enc.1,
                }),
            },
        )
}

/// Flattens a service's values out of a sample, in table order.
fn values(sample: &SensorSample, service: SensorService) -> Vec<f64> {
    let d = f64::from;
    match service {
        SensorService::Quaternion => {
            let q = sample.quaternion.unwrap();
            vec![d(q.w), d(q.x), d(q.y), d(q.z)]
        }
        SensorService::Imu => {
            let a = sample.imu.unwrap();
            vec![d(a.pitch_deg), d(a.roll_deg), d(a.yaw_deg)]
        }
        SensorService::Accelerometer => {
            let a = sample.accelerometer.unwrap();
            vec![d(a.x), d(a.y), d(a.z)]
        }
        SensorService::ColorDetection => {
            let c = sample.color.unwrap();
            vec![d(c.r), d(c.g), d(c.b), d(c.index), d(c.confidence)]
        }
        SensorService::Gyroscope => {
            let g = sample.gyroscope.unwrap();
            vec![d(g.x), d(g.y), d(g.z)]
        }
        SensorService::Locator => {
            let l = sample.locator.unwrap();
            vec![d(l.x), d(l.y)]
        }
        SensorService::Velocity => {
            let v = sample.velocity.unwrap();
            vec![d(v.x), d(v.y)]
        }
        SensorService::Speed => vec![d(sample.speed_mps.unwrap())],
        SensorService::AmbientLight => vec![d(sample.ambient_light_lux.unwrap())],
        SensorService::CoreTimeLower | SensorService::CoreTime | SensorService::Encoders => vec![],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn streaming_sample_round_trips_within_one_step(
        config in streaming_config(),
        sample in sample_for_all(),
        status in stream_status(),
    ) {
        let data = StreamingData::from_sample(&config, status, &sample).unwrap();
        prop_assert_eq!(data.data().len(), config.data_len());
        prop_assert_eq!(data.token(), config.token());
        prop_assert_eq!(data.status(), status);
        // Through the wire as a notification.
        let packet = Notification::StreamingData(data).to_packet(7, Processor::St, AddressStyle::TargetOnly).unwrap();
        let Ok(Notification::StreamingData(received)) = Notification::from_packet(&parse_one(&wire_of(&packet))) else {
            panic!("not streaming data");
        };
        let decoded = received.decode(&config).unwrap();
        let entries = config.entries();
        for (i, entry) in entries.iter().enumerate() {
            if entries[i + 1..].iter().any(|later| later.service == entry.service) {
                // A service configured twice: the sample holds the later one.
                continue;
            }
            let spec = entry.service.spec();
            let original = values(&sample, entry.service);
            let got = values(&decoded, entry.service);
            for ((attr, want), got) in spec.attributes.iter().zip(&original).zip(&got) {
                let rvr_protocol::constants::streaming::Range::Scaled { min, max } = attr.range else { unreachable!() };
                // Half a quantisation step, plus f32 rounding of the output.
                let step = (max - min) / f64::from(entry.size.max_raw());
                let tolerance = step / 2.0 + want.abs().max(1.0) * 1e-6;
                prop_assert!((want - got).abs() <= tolerance,
                    "{} {}: sent {} got {} (size {:?})", spec.name, attr.name, want, got, entry.size);
            }
            // Raw services: exact at 32 bits, truncated (two's complement for encoders) below.
            let bits = entry.size.bits();
            let mask = entry.size.max_raw();
            match entry.service {
                SensorService::CoreTimeLower => prop_assert_eq!(decoded.core_time_lower_ms, sample.core_time_lower_ms.map(|t| t & mask)),
                SensorService::CoreTime => {
                    let t = sample.core_time_ms.unwrap();
                    let want = ((t >> 32) as u32 & mask) as u64 * (1 << 32) + (t as u32 & mask) as u64;
                    prop_assert_eq!(decoded.core_time_ms, Some(want));
                }
                SensorService::Encoders => {
                    let e = sample.encoders.unwrap();
                    let narrow = |v: i32| (v << (32 - bits)) >> (32 - bits);
                    prop_assert_eq!(decoded.encoders, Some(EncoderTicks { left: narrow(e.left), right: narrow(e.right) }));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn streaming_raw_round_trips_at_8_and_16_bits(
        config in streaming_config(),
        seed in prop::collection::vec(any::<u8>(), 100),
    ) {
        // raw -> SI -> raw is exact when f32 can hold the value to better than
        // a step, which holds for 8- and 16-bit attributes.
        prop_assume!(config.entries().iter().all(|e| e.size != DataSize::Bits32));
        // A service configured twice is encoded twice from one sample value.
        let entries = config.entries();
        prop_assume!(entries.iter().enumerate().all(|(i, e)| entries[..i].iter().all(|f| f.service != e.service)));
        let data = StreamingData::new(config.token(), StreamStatus::Ok, &seed[..config.data_len()]).unwrap();
        let sample = data.decode(&config).unwrap();
        let again = StreamingData::from_sample(&config, StreamStatus::Ok, &sample).unwrap();
        prop_assert_eq!(again, data);
    }

    #[test]
    fn streaming_decode_rejects_wrong_length_and_token(
        config in streaming_config(),
        extra in 1usize..4,
    ) {
        let long = vec![0u8; config.data_len() + extra];
        let data = StreamingData::new(config.token(), StreamStatus::Ok, &long).unwrap();
        let is_bad_length = matches!(data.decode(&config), Err(rvr_protocol::DecodeError::BadLength { .. }));
        prop_assert!(is_bad_length);
        let other = (config.token() + 1) & 0x0F;
        let data = StreamingData::new(other, StreamStatus::Ok, &vec![0u8; config.data_len()]).unwrap();
        let is_mismatch = matches!(data.decode(&config), Err(rvr_protocol::DecodeError::TokenMismatch { .. }));
        prop_assert!(is_mismatch);
    }
}

#[test]
fn command_kinds_have_distinct_ids_and_decode_back() {
    for (i, a) in CommandKind::ALL.iter().enumerate() {
        assert_eq!(CommandKind::from_ids(a.device_id(), a.command_id()), Ok(*a));
        for b in &CommandKind::ALL[i + 1..] {
            assert_ne!(a.ids(), b.ids(), "{a:?} and {b:?}");
        }
    }
}

#[test]
fn extended_flags_never_encoded() {
    // Flags can't carry the structural bits; the wire byte has them only as
    // the header's fields say.
    let f = Flags::from_bits_truncate(0xFF);
    assert_eq!(f.bits() & (flag_bits::STRUCTURAL), 0);
}
