//! Byte-exact test vectors, worked out by hand from the RVR fact sheet
//! (`shared/reference/sphero-rvr.md` §1-5), not produced by this crate.
//!
//! Working for each: the un-escaped body FLAGS..DATA, its byte sum, the low
//! byte of the sum, CHK = low byte XOR 0xFF, then escaping of 8D / D8 / AB
//! between SOP and EOP (8D -> AB 05, D8 -> AB 50, AB -> AB 23).
//!
//! Each vector is checked three ways: the typed value encodes to exactly
//! these bytes, the bytes parse to exactly that packet, and the packet
//! decodes to exactly the typed value.

use rvr_protocol::{
    AddressStyle, BatteryVoltageState, ColorDetection, Command, DataSize, DecodeError, EchoData,
    ErrorCode, Flags, Header, HeadingFlags, LedValues, Motor, MotorMode, Notification, Packet,
    Parser, Processor, Response, SensorService, StreamStatus, StreamingConfig, Version,
    XyDriveFlags, decode_frame,
};

/// Encodes, parses (byte by byte) and compares with `wire`; returns the parsed packet.
fn check_wire(packet: &Packet, wire: &[u8]) -> Packet {
    let frame = packet.to_frame().expect("encodes");
    assert_eq!(&frame[..], wire, "encoded bytes");
    assert_eq!(packet.encoded_len(), wire.len());
    let mut buf = [0u8; 64];
    let n = packet.encode(&mut buf).expect("encodes into a slice");
    assert_eq!(&buf[..n], wire);

    let mut parser = Parser::new();
    let mut parsed = None;
    for (i, &b) in wire.iter().enumerate() {
        match parser.push(b) {
            None => assert!(i + 1 < wire.len(), "frame ended early"),
            Some(Ok(p)) => {
                assert_eq!(i + 1, wire.len(), "frame ended at the EOP");
                parsed = Some(p);
            }
            Some(Err(e)) => panic!("parse error {e:?} at byte {i}"),
        }
    }
    let parsed = parsed.expect("a frame");
    assert_eq!(&parsed, packet, "parsed packet");
    assert_eq!(decode_frame(wire), Ok(parsed));
    parsed
}

fn check_command_for(command: Command, sequence: u8, to: Processor, wire: &[u8]) -> Packet {
    let packet = command
        .to_packet_for(sequence, AddressStyle::TargetOnly, to)
        .unwrap();
    let parsed = check_wire(&packet, wire);
    assert_eq!(Command::from_packet(&parsed), Ok(command));
    parsed
}

fn check_command(command: Command, sequence: u8, style: AddressStyle, wire: &[u8]) -> Packet {
    let packet = command.to_packet(sequence, style).unwrap();
    let parsed = check_wire(&packet, wire);
    assert_eq!(Command::from_packet(&parsed), Ok(command));
    parsed
}

#[test]
fn wake_target_only() {
    // wake = power (DID 13) CID 0D, Nordic, Python style, seq 02.
    // FLAGS = activity 08 | has-target 10 = 18 (no outputs, so no request bit).
    // Body: 18 01 13 0D 02
    // Sum: 0x18 + 0x01 + 0x13 + 0x0D + 0x02 = 24 + 1 + 19 + 13 + 2 = 59 = 0x3B
    // CHK = 0x3B ^ 0xFF = 0xC4. No byte needs escaping.
    let packet = check_command(
        Command::Wake,
        0x02,
        AddressStyle::TargetOnly,
        &[0x8D, 0x18, 0x01, 0x13, 0x0D, 0x02, 0xC4, 0xD8],
    );
    assert_eq!(packet.header.destination(), Some(Processor::Nordic));
}

#[test]
fn drive_with_heading_target_only() {
    // drive_with_heading = drive (DID 16) CID 07, ST, seq 01.
    // Payload: speed 128 = 80, heading 90 = 00 5A (u16 BE), flags 00.
    // Body: 18 02 16 07 01 80 00 5A 00
    // Sum: 24 + 2 + 22 + 7 + 1 + 128 + 0 + 90 + 0 = 274; 274 - 256 = 18 = 0x12
    // CHK = 0x12 ^ 0xFF = 0xED.
    check_command(
        Command::DriveWithHeading {
            speed: 128,
            heading_deg: 90,
            flags: HeadingFlags::NONE,
        },
        0x01,
        AddressStyle::TargetOnly,
        &[
            0x8D, 0x18, 0x02, 0x16, 0x07, 0x01, 0x80, 0x00, 0x5A, 0x00, 0xED, 0xD8,
        ],
    );
}

#[test]
fn drive_with_heading_payload_needs_escaping() {
    // speed 100 = 64, heading 216 = 00 D8, flags reverse = 01, ST, seq 07.
    // Body: 18 02 16 07 07 64 00 D8 01
    // Sum: 24 + 2 + 22 + 7 + 7 + 100 + 0 + 216 + 1 = 379; 379 - 256 = 123 = 0x7B
    // CHK = 0x7B ^ 0xFF = 0x84.
    // Escaping: payload byte D8 (= EOP) -> AB 50 (0xD8 & !0x88 = 0x50).
    check_command(
        Command::DriveWithHeading {
            speed: 100,
            heading_deg: 216,
            flags: HeadingFlags::REVERSE,
        },
        0x07,
        AddressStyle::TargetOnly,
        &[
            0x8D, 0x18, 0x02, 0x16, 0x07, 0x07, 0x64, 0x00, 0xAB, 0x50, 0x01, 0x84, 0xD8,
        ],
    );
}

#[test]
fn drive_with_heading_target_and_source_checksum_is_esc() {
    // Node.js style: FLAGS = request 02 | activity 08 | target 10 | source 20 = 3A,
    // TID 12 (port 1, ST), SID 01 (host). speed 128, heading 90, flags 0, seq 10.
    // Body: 3A 12 01 16 07 10 80 00 5A 00
    // Sum: 58 + 18 + 1 + 22 + 7 + 16 + 128 + 0 + 90 + 0 = 340; 340 - 256 = 84 = 0x54
    // CHK = 0x54 ^ 0xFF = 0xAB (= ESC) -> escaped AB 23 (0xAB & !0x88 = 0x23).
    let packet = check_command(
        Command::DriveWithHeading {
            speed: 128,
            heading_deg: 90,
            flags: HeadingFlags::NONE,
        },
        0x10,
        AddressStyle::TargetAndSource,
        &[
            0x8D, 0x3A, 0x12, 0x01, 0x16, 0x07, 0x10, 0x80, 0x00, 0x5A, 0x00, 0xAB, 0x23, 0xD8,
        ],
    );
    assert_eq!(packet.header.destination(), Some(Processor::St));
    assert_eq!(packet.checksum(), 0xAB);
}

#[test]
fn raw_motors() {
    // raw_motors = drive CID 01: left mode 1 (fwd), duty 128, right mode 1, duty 128; seq 03.
    // Body: 18 02 16 01 03 01 80 01 80
    // Sum: 24 + 2 + 22 + 1 + 3 + 1 + 128 + 1 + 128 = 310; 310 - 256 = 54 = 0x36
    // CHK = 0x36 ^ 0xFF = 0xC9.
    check_command(
        Command::RawMotors {
            left_mode: MotorMode::Forward,
            left_duty: 128,
            right_mode: MotorMode::Forward,
            right_duty: 128,
        },
        0x03,
        AddressStyle::TargetOnly,
        &[
            0x8D, 0x18, 0x02, 0x16, 0x01, 0x03, 0x01, 0x80, 0x01, 0x80, 0xC9, 0xD8,
        ],
    );
}

#[test]
fn reset_yaw_sequence_needs_escaping() {
    // reset_yaw = drive CID 06, seq 8D (= SOP, must be escaped).
    // Body: 18 02 16 06 8D
    // Sum: 24 + 2 + 22 + 6 + 141 = 195 = 0xC3; CHK = 0xC3 ^ 0xFF = 0x3C.
    // Escaping: SEQ 8D -> AB 05 (0x8D & !0x88 = 0x05).
    check_command(
        Command::ResetYaw,
        0x8D,
        AddressStyle::TargetOnly,
        &[0x8D, 0x18, 0x02, 0x16, 0x06, 0xAB, 0x05, 0x3C, 0xD8],
    );
}

#[test]
fn reset_locator_checksum_needs_escaping() {
    // reset_locator_x_and_y = sensor (DID 18) CID 13, ST, seq E2.
    // Body: 18 02 18 13 E2
    // Sum: 24 + 2 + 24 + 19 + 226 = 295; 295 - 256 = 39 = 0x27
    // CHK = 0x27 ^ 0xFF = 0xD8 (= EOP) -> escaped AB 50.
    check_command(
        Command::ResetLocatorXy,
        0xE2,
        AddressStyle::TargetOnly,
        &[0x8D, 0x18, 0x02, 0x18, 0x13, 0xE2, 0xAB, 0x50, 0xD8],
    );
}

#[test]
fn get_battery_percentage_both_styles() {
    // Node.js style, seq 05: FLAGS 3A, TID 11 (port 1, Nordic), SID 01, DID 13, CID 10.
    // Body: 3A 11 01 13 10 05
    // Sum: 58 + 17 + 1 + 19 + 16 + 5 = 116 = 0x74; CHK = 0x74 ^ 0xFF = 0x8B.
    let js = check_command(
        Command::GetBatteryPercentage,
        0x05,
        AddressStyle::TargetAndSource,
        &[0x8D, 0x3A, 0x11, 0x01, 0x13, 0x10, 0x05, 0x8B, 0xD8],
    );
    assert_eq!(js.header.destination(), Some(Processor::Nordic));

    // Python style, seq 09: the command has outputs, so FLAGS = request 02 |
    // activity 08 | target 10 = 1A; TID 01.
    // Body: 1A 01 13 10 09
    // Sum: 26 + 1 + 19 + 16 + 9 = 71 = 0x47; CHK = 0x47 ^ 0xFF = 0xB8.
    let py = check_command(
        Command::GetBatteryPercentage,
        0x09,
        AddressStyle::TargetOnly,
        &[0x8D, 0x1A, 0x01, 0x13, 0x10, 0x09, 0xB8, 0xD8],
    );
    assert_eq!(py.header.destination(), Some(Processor::Nordic));
}

#[test]
fn battery_percentage_response_to_target_and_source() {
    // Response to the Node.js-style request above (TID 11, SID 01, seq 05):
    // TID = request SID = 01, SID = request TID = 11; FLAGS = response 01 |
    // target 10 | source 20 = 31; ERR 00; payload 85 = 55.
    // Body: 31 01 11 13 10 05 00 55
    // Sum: 49 + 1 + 17 + 19 + 16 + 5 + 0 + 85 = 192 = 0xC0; CHK = 0xC0 ^ 0xFF = 0x3F.
    let request = Command::GetBatteryPercentage
        .to_packet(0x05, AddressStyle::TargetAndSource)
        .unwrap();
    let packet = Response::BatteryPercentage(85)
        .to_packet(&request.header)
        .unwrap();
    let parsed = check_wire(
        &packet,
        &[
            0x8D, 0x31, 0x01, 0x11, 0x13, 0x10, 0x05, 0x00, 0x55, 0x3F, 0xD8,
        ],
    );
    assert_eq!(
        Response::from_packet(&parsed),
        Ok(Response::BatteryPercentage(85))
    );
    assert_eq!(parsed.header.origin(), Some(Processor::Nordic));
}

#[test]
fn battery_percentage_response_to_target_only() {
    // Response to the Python-style request (TID 01, no SID, seq 09). Swapping
    // gives no TID and SID = 01 (assumed: the fact sheet documents the swap
    // rule and that Python matches on SID, not this exact header).
    // FLAGS = response 01 | source 20 = 21.
    // Body: 21 01 13 10 09 00 55
    // Sum: 33 + 1 + 19 + 16 + 9 + 0 + 85 = 163 = 0xA3; CHK = 0xA3 ^ 0xFF = 0x5C.
    let request = Command::GetBatteryPercentage
        .to_packet(0x09, AddressStyle::TargetOnly)
        .unwrap();
    let packet = Response::BatteryPercentage(85)
        .to_packet(&request.header)
        .unwrap();
    let parsed = check_wire(
        &packet,
        &[0x8D, 0x21, 0x01, 0x13, 0x10, 0x09, 0x00, 0x55, 0x5C, 0xD8],
    );
    assert_eq!(
        Response::from_packet(&parsed),
        Ok(Response::BatteryPercentage(85))
    );
}

#[test]
fn error_response() {
    // The same request answered with ERR 06 (command failed), no payload.
    // Body: 31 01 11 13 10 05 06
    // Sum: 49 + 1 + 17 + 19 + 16 + 5 + 6 = 113 = 0x71; CHK = 0x71 ^ 0xFF = 0x8E.
    let request = Command::GetBatteryPercentage
        .to_packet(0x05, AddressStyle::TargetAndSource)
        .unwrap();
    let packet = Packet::error_response(&request.header, ErrorCode::CommandFailed);
    let parsed = check_wire(
        &packet,
        &[0x8D, 0x31, 0x01, 0x11, 0x13, 0x10, 0x05, 0x06, 0x8E, 0xD8],
    );
    assert_eq!(
        Response::from_packet(&parsed),
        Err(DecodeError::ErrorResponse(ErrorCode::CommandFailed))
    );
}

#[test]
fn encoder_counts_response() {
    // Request: get_encoder_counts (DID 18, CID 53), Node.js style to ST
    // (TID 12, SID 01), seq 20. Response: FLAGS 31, TID 01, SID 12, ERR 00,
    // left = 1000 = 00 00 03 E8, right = -2 = FF FF FF FE (i32 BE, two's complement).
    // Body: 31 01 12 18 53 20 00 00 00 03 E8 FF FF FF FE
    // Sum: 49 + 1 + 18 + 24 + 83 + 32 + 0 = 207; + 0 + 0 + 3 + 232 = 442;
    //      + 255 + 255 + 255 + 254 = 1461; 1461 - 5 * 256 = 181 = 0xB5
    // CHK = 0xB5 ^ 0xFF = 0x4A.
    let request = Command::GetEncoderCounts
        .to_packet(0x20, AddressStyle::TargetAndSource)
        .unwrap();
    assert_eq!(request.header.target, Some(0x12));
    let response = Response::EncoderCounts {
        left: 1000,
        right: -2,
    };
    let packet = response.to_packet(&request.header).unwrap();
    let parsed = check_wire(
        &packet,
        &[
            0x8D, 0x31, 0x01, 0x12, 0x18, 0x53, 0x20, 0x00, 0x00, 0x00, 0x03, 0xE8, 0xFF, 0xFF,
            0xFF, 0xFE, 0x4A, 0xD8,
        ],
    );
    assert_eq!(Response::from_packet(&parsed), Ok(response));
}

#[test]
fn drive_tank_si() {
    // drive_tank_si_units = drive CID 32, 0.5 m/s each: f32 0.5 = 3F 00 00 00; seq 04.
    // Body: 18 02 16 32 04 3F 00 00 00 3F 00 00 00
    // Sum: 24 + 2 + 22 + 50 + 4 + 63 + 63 = 228 = 0xE4; CHK = 0xE4 ^ 0xFF = 0x1B.
    check_command(
        Command::DriveTankSi {
            left_mps: 0.5,
            right_mps: 0.5,
        },
        0x04,
        AddressStyle::TargetOnly,
        &[
            0x8D, 0x18, 0x02, 0x16, 0x32, 0x04, 0x3F, 0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x00,
            0x1B, 0xD8,
        ],
    );
}

#[test]
fn drive_to_position_si_untargeted() {
    // drive_to_position_si = drive CID 38, no TID/SID: FLAGS = activity 08.
    // yaw 0.0 = 00 00 00 00, x 0.0 = 00 00 00 00, y 1.0 = 3F 80 00 00,
    // speed 0.5 = 3F 00 00 00, flags 00 (forward, absolute); seq 0C.
    // Body: 08 16 38 0C | 00*8 | 3F 80 00 00 | 3F 00 00 00 | 00
    // Sum: 8 + 22 + 56 + 12 = 98; + 63 + 128 = 289; + 63 = 352; 352 - 256 = 96 = 0x60
    // CHK = 0x60 ^ 0xFF = 0x9F.
    let packet = check_command(
        Command::DriveToPositionSi {
            yaw_deg: 0.0,
            x_m: 0.0,
            y_m: 1.0,
            speed_mps: 0.5,
            flags: XyDriveFlags::default(),
        },
        0x0C,
        AddressStyle::Untargeted,
        &[
            0x8D, 0x08, 0x16, 0x38, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3F,
            0x80, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x00, 0x00, 0x9F, 0xD8,
        ],
    );
    // No TID: routed by device id (drive -> ST).
    assert_eq!(packet.header.destination(), Some(Processor::St));
}

#[test]
fn configure_streaming() {
    // configure_streaming_service = sensor (DID 18) CID 39, to ST, seq 0A.
    // Payload: token 01; IMU = 00 01, size 02 (32-bit); Locator = 00 06, size 02.
    // Body: 18 02 18 39 0A 01 00 01 02 00 06 02
    // Sum: 24 + 2 + 24 + 57 + 10 = 117; + 1 + 0 + 1 + 2 + 0 + 6 + 2 = 129 = 0x81
    // CHK = 0x81 ^ 0xFF = 0x7E.
    let config = StreamingConfig::new(1)
        .unwrap()
        .with(SensorService::Imu, DataSize::Bits32)
        .unwrap()
        .with(SensorService::Locator, DataSize::Bits32)
        .unwrap();
    check_command(
        Command::ConfigureStreaming(config),
        0x0A,
        AddressStyle::TargetOnly,
        &[
            0x8D, 0x18, 0x02, 0x18, 0x39, 0x0A, 0x01, 0x00, 0x01, 0x02, 0x00, 0x06, 0x02, 0x7E,
            0xD8,
        ],
    );
}

#[test]
fn start_streaming() {
    // start_streaming_service = sensor CID 3A, period 50 ms = 00 32, ST, seq 0B.
    // Body: 18 02 18 3A 0B 00 32
    // Sum: 24 + 2 + 24 + 58 + 11 + 0 + 50 = 169 = 0xA9; CHK = 0xA9 ^ 0xFF = 0x56.
    check_command(
        Command::StartStreaming { period_ms: 50 },
        0x0B,
        AddressStyle::TargetOnly,
        &[0x8D, 0x18, 0x02, 0x18, 0x3A, 0x0B, 0x00, 0x32, 0x56, 0xD8],
    );
}

#[test]
fn streaming_data_notify_decodes_to_si() {
    // Slot token 2 on ST: Speed at 16 bits, IMU at 8 bits.
    // Notify = sensor CID 3D from ST, Python-style addressing: SID 02, no TID,
    // FLAGS = has-source 20 (what the Python SDK's handler routes); seq 00.
    // Payload: token byte 02 (status 0, token 2);
    //   speed raw 33 33 = 13107 -> 0 + 13107 / 65535 * (5 - 0) = 1.0 m/s (65535 = 5 * 13107);
    //   pitch raw FF = 255 -> -180 + 255/255 * 360 = 180 deg;
    //   roll  raw 00       -> -90 deg;
    //   yaw   raw 33 = 51  -> -180 + 51/255 * 360 = -180 + 72 = -108 deg.
    // Body: 20 02 18 3D 00 02 33 33 FF 00 33
    // Sum: 32 + 2 + 24 + 61 + 0 = 119; + 2 = 121; + 51 + 51 = 223; + 255 = 478;
    //      + 0 + 51 = 529; 529 - 512 = 17 = 0x11. CHK = 0x11 ^ 0xFF = 0xEE.
    let wire = [
        0x8D, 0x20, 0x02, 0x18, 0x3D, 0x00, 0x02, 0x33, 0x33, 0xFF, 0x00, 0x33, 0xEE, 0xD8,
    ];
    let packet = decode_frame(&wire).unwrap();
    assert_eq!(packet.header.origin(), Some(Processor::St));
    assert_eq!(packet.header.flags, Flags::NONE);
    let Ok(Notification::StreamingData(data)) = Notification::from_packet(&packet) else {
        panic!("not streaming data: {packet:?}");
    };
    assert_eq!(data.token(), 2);
    assert_eq!(data.status(), StreamStatus::Ok);
    let config = StreamingConfig::new(2)
        .unwrap()
        .with(SensorService::Speed, DataSize::Bits16)
        .unwrap()
        .with(SensorService::Imu, DataSize::Bits8)
        .unwrap();
    let sample = data.decode(&config).unwrap();
    assert_eq!(sample.speed_mps, Some(1.0));
    let imu = sample.imu.unwrap();
    assert_eq!(imu.pitch_deg, 180.0);
    assert_eq!(imu.roll_deg, -90.0);
    assert_eq!(imu.yaw_deg, -108.0);
    assert_eq!(sample.locator, None);

    // And the twin side produces the same bytes from the sample.
    let encoded =
        rvr_protocol::StreamingData::from_sample(&config, StreamStatus::Ok, &sample).unwrap();
    assert_eq!(encoded, data);
    let again = Notification::StreamingData(encoded)
        .to_packet(0x00, Processor::St, AddressStyle::TargetOnly)
        .unwrap();
    check_wire(&again, &wire);
}

#[test]
fn hand_built_header_matches_typed() {
    // The wake vector built field by field, to pin down Header semantics.
    let mut header = Header::new(0x13, 0x0D, 0x02);
    header.flags = Flags::IS_ACTIVITY;
    header.target = Some(0x01);
    assert_eq!(header.wire_flags(), 0x18);
    let packet = Packet::new(header, &[]).unwrap();
    assert_eq!(
        &packet.to_frame().unwrap()[..],
        &[0x8D, 0x18, 0x01, 0x13, 0x0D, 0x02, 0xC4, 0xD8]
    );
}

fn check_notification(n: Notification, seq: u8, source: Processor, wire: &[u8]) {
    let packet = n.to_packet(seq, source, AddressStyle::TargetOnly).unwrap();
    let parsed = check_wire(&packet, wire);
    assert_eq!(Notification::from_packet(&parsed), Ok(n));
    assert_eq!(parsed.header.origin(), Some(source));
    assert!(
        !parsed.header.wants_reply(false),
        "notifications request no response"
    );
}

#[test]
fn main_application_version_both_ways() {
    // Request to ST, Python style, seq 01: outputs, so FLAGS 1A; TID 02;
    // DID 11, CID 00.
    // Body: 1A 02 11 00 01. Sum: 26 + 2 + 17 + 0 + 1 = 46 = 0x2E; CHK = 0xD1.
    let request = check_command_for(
        Command::GetMainApplicationVersion,
        0x01,
        Processor::St,
        &[0x8D, 0x1A, 0x02, 0x11, 0x00, 0x01, 0xD1, 0xD8],
    );
    // Answer 8.6.448 (448 = 0x01C0): no TID (the request had no SID),
    // SID 02; FLAGS = response 01 | source 20 = 21; ERR 00.
    // Body: 21 02 11 00 01 00 00 08 00 06 01 C0
    // Sum: 33 + 2 + 17 + 0 + 1 + 0 = 53; + 8 + 6 + 1 + 192 = 260; 260 - 256 = 4;
    // CHK = 0x04 ^ 0xFF = 0xFB.
    let version = Version {
        major: 8,
        minor: 6,
        revision: 448,
    };
    let packet = Response::MainApplicationVersion(version)
        .to_packet(&request.header)
        .unwrap();
    let parsed = check_wire(
        &packet,
        &[
            0x8D, 0x21, 0x02, 0x11, 0x00, 0x01, 0x00, 0x00, 0x08, 0x00, 0x06, 0x01, 0xC0, 0xFB,
            0xD8,
        ],
    );
    assert_eq!(
        Response::from_packet(&parsed),
        Ok(Response::MainApplicationVersion(version))
    );
}

#[test]
fn echo_of_the_framing_bytes_is_escaped() {
    // echo [8D D8 AB] to Nordic, Python style, seq 02: FLAGS 1A, TID 01,
    // DID 10, CID 00.
    // Body: 1A 01 10 00 02 8D D8 AB
    // Sum: 26 + 1 + 16 + 0 + 2 = 45; + 141 = 186; + 216 = 402; + 171 = 573;
    // 573 - 512 = 61 = 0x3D; CHK = 0xC2. The three data bytes are escaped.
    let data = EchoData::new(&[0x8D, 0xD8, 0xAB]).unwrap();
    check_command_for(
        Command::Echo(data),
        0x02,
        Processor::Nordic,
        &[
            0x8D, 0x1A, 0x01, 0x10, 0x00, 0x02, 0xAB, 0x05, 0xAB, 0x50, 0xAB, 0x23, 0xC2, 0xD8,
        ],
    );
}

#[test]
fn core_up_time_is_a_big_endian_u64() {
    // Request to Nordic, Python style, seq 07: FLAGS 1A, TID 01, DID 11, CID 39.
    // Sum: 26 + 1 + 17 + 57 + 7 = 108 = 0x6C; CHK = 0x93.
    let request = check_command_for(
        Command::GetCoreUpTimeInMilliseconds,
        0x07,
        Processor::Nordic,
        &[0x8D, 0x1A, 0x01, 0x11, 0x39, 0x07, 0x93, 0xD8],
    );
    // Answer 2^32 + 5 ms: 00 00 00 01 00 00 00 05. FLAGS 21, SID 01, ERR 00.
    // Sum: 33 + 1 + 17 + 57 + 7 + 0 = 115; + 1 + 5 = 121 = 0x79; CHK = 0x86.
    let response = Response::CoreUpTime { ms: (1 << 32) + 5 };
    let packet = response.to_packet(&request.header).unwrap();
    let parsed = check_wire(
        &packet,
        &[
            0x8D, 0x21, 0x01, 0x11, 0x39, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
            0x05, 0x86, 0xD8,
        ],
    );
    assert_eq!(Response::from_packet(&parsed), Ok(response));
}

#[test]
fn set_all_leds_right_headlight() {
    // Mask 00 00 00 07 (right headlight R, G, B) and values FF 00 80, to
    // Nordic, Python style, seq 03; no outputs, so FLAGS 18; DID 1A, CID 1A.
    // Body: 18 01 1A 1A 03 00 00 00 07 FF 00 80
    // Sum: 24 + 1 + 26 + 26 + 3 = 80; + 7 + 255 + 0 + 128 = 470; 470 - 256 = 214
    // = 0xD6; CHK = 0x29.
    check_command(
        Command::SetAllLeds(LedValues::new(0x07, &[0xFF, 0x00, 0x80]).unwrap()),
        0x03,
        AddressStyle::TargetOnly,
        &[
            0x8D, 0x18, 0x01, 0x1A, 0x1A, 0x03, 0x00, 0x00, 0x00, 0x07, 0xFF, 0x00, 0x80, 0x29,
            0xD8,
        ],
    );
}

#[test]
fn battery_voltage_state_change_notify() {
    // From Nordic, seq 05, state low (2): FLAGS 20, SID 01, DID 13, CID 1C.
    // Sum: 32 + 1 + 19 + 28 + 5 + 2 = 87 = 0x57; CHK = 0xA8.
    check_notification(
        Notification::BatteryVoltageStateChange(BatteryVoltageState::Low),
        0x05,
        Processor::Nordic,
        &[0x8D, 0x20, 0x01, 0x13, 0x1C, 0x05, 0x02, 0xA8, 0xD8],
    );
}

#[test]
fn motor_stall_notify() {
    // From ST, seq 10, right motor (1) triggered (1): FLAGS 20, SID 02,
    // DID 16, CID 26. Sum: 32 + 2 + 22 + 38 + 16 + 1 + 1 = 112 = 0x70; CHK = 0x8F.
    check_notification(
        Notification::MotorStall {
            motor: Motor::Right,
            triggered: true,
        },
        0x10,
        Processor::St,
        &[0x8D, 0x20, 0x02, 0x16, 0x26, 0x10, 0x01, 0x01, 0x8F, 0xD8],
    );
}

#[test]
fn color_detection_notify() {
    // From Nordic, seq 21: R G B = E6 E6 E6 (230), confidence A3 (163),
    // classification 03. FLAGS 20, SID 01, DID 18, CID 36.
    // Sum: 32 + 1 + 24 + 54 + 33 = 144; + 690 + 163 + 3 = 1000; 1000 - 768 = 232
    // = 0xE8; CHK = 0x17.
    check_notification(
        Notification::ColorDetection(ColorDetection {
            red: 230,
            green: 230,
            blue: 230,
            confidence: 163,
            classification: 3,
        }),
        0x21,
        Processor::Nordic,
        &[
            0x8D, 0x20, 0x01, 0x18, 0x36, 0x21, 0xE6, 0xE6, 0xE6, 0xA3, 0x03, 0x17, 0xD8,
        ],
    );
}
