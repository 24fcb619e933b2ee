//! Typed layer: decode errors and the codes a twin answers with, routing,
//! reply rules, limits.

use rvr_protocol::constants::{
    api_and_shell, connection, device, drive, framing, io, power, sensor, streaming, system_info,
};
use rvr_protocol::{
    AddressStyle, COMMANDS, Command, CommandKind, DataSize, DecodeError, EncodeError, ErrorCode,
    Flags, Header, Motor, NOTIFICATIONS, Notification, Packet, Processor, Response, SensorService,
    ServedBy, StreamStatus, StreamingConfig, StreamingData, Text,
};

fn command_packet(did: u8, cid: u8, payload: &[u8]) -> Packet {
    Packet::new(Header::new(did, cid, 1), payload).unwrap()
}

fn decode_error(did: u8, cid: u8, payload: &[u8]) -> DecodeError {
    Command::from_packet(&command_packet(did, cid, payload)).unwrap_err()
}

#[test]
fn unknown_ids_map_to_bad_device_and_bad_command() {
    let e = decode_error(0x42, 0x01, &[]);
    assert_eq!(e, DecodeError::UnknownDevice { device_id: 0x42 });
    assert_eq!(e.error_code(), ErrorCode::BadDeviceId);

    let e = decode_error(device::DRIVE, 0x99, &[]);
    assert_eq!(
        e,
        DecodeError::UnknownCommand {
            device_id: device::DRIVE,
            command_id: 0x99
        }
    );
    assert_eq!(e.error_code(), ErrorCode::BadCommandId);
}

#[test]
fn wrong_lengths_map_to_bad_data_length() {
    // Too short, too long, and a payload on a command that takes none.
    for (did, cid, payload) in [
        (device::DRIVE, drive::RAW_MOTORS, &[1u8, 2, 1][..]),
        (
            device::DRIVE,
            drive::DRIVE_WITH_HEADING,
            &[0, 0, 90, 0, 0][..],
        ),
        (device::POWER, power::WAKE, &[0][..]),
        (device::SENSOR, sensor::START_STREAMING_SERVICE, &[0][..]),
        (device::SENSOR, sensor::CONFIGURE_STREAMING_SERVICE, &[][..]),
        (
            device::SENSOR,
            sensor::CONFIGURE_STREAMING_SERVICE,
            &[1, 0, 1][..],
        ),
    ] {
        let e = decode_error(did, cid, payload);
        assert!(
            matches!(e, DecodeError::BadLength { .. }),
            "{did:#x}/{cid:#x}: {e:?}"
        );
        assert_eq!(e.error_code(), ErrorCode::BadDataLength);
    }
    // A short payload with an invalid first byte is still a length error.
    let e = decode_error(device::DRIVE, drive::RAW_MOTORS, &[9]);
    assert!(matches!(e, DecodeError::BadLength { .. }));
}

#[test]
fn configure_with_six_services_is_bad_length() {
    let mut payload = vec![1u8];
    for _ in 0..6 {
        payload.extend_from_slice(&[0x00, 0x01, 0x02]);
    }
    let e = decode_error(
        device::SENSOR,
        sensor::CONFIGURE_STREAMING_SERVICE,
        &payload,
    );
    assert!(matches!(e, DecodeError::BadLength { .. }));
}

#[test]
fn bad_values_map_to_bad_parameter_value() {
    for (did, cid, payload) in [
        // Motor mode 3.
        (device::DRIVE, drive::RAW_MOTORS, &[3u8, 0, 1, 0][..]),
        // Heading flags bit 6 (undefined).
        (
            device::DRIVE,
            drive::DRIVE_WITH_HEADING,
            &[0, 0, 0, 0x40][..],
        ),
        // XY direction 3 (reserved).
        (
            device::DRIVE,
            drive::DRIVE_TO_POSITION_SI,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3][..],
        ),
        // RC flags bit 1 (undefined).
        (device::DRIVE, drive::DRIVE_RC_NORMALIZED, &[0, 0, 2][..]),
        // Bool 2.
        (device::SENSOR, sensor::ENABLE_COLOR_DETECTION, &[2][..]),
        // Voltage reading type 3.
        (device::POWER, power::GET_BATTERY_VOLTAGE_IN_VOLTS, &[3][..]),
        // Streaming data size 3.
        (
            device::SENSOR,
            sensor::CONFIGURE_STREAMING_SERVICE,
            &[1, 0, 1, 3][..],
        ),
        // Streaming token 16.
        (
            device::SENSOR,
            sensor::CONFIGURE_STREAMING_SERVICE,
            &[16][..],
        ),
    ] {
        let e = decode_error(did, cid, payload);
        assert_eq!(e, DecodeError::BadValue, "{did:#x}/{cid:#x}");
        assert_eq!(e.error_code(), ErrorCode::BadParameterValue);
    }
    let e = decode_error(
        device::SENSOR,
        sensor::CONFIGURE_STREAMING_SERVICE,
        &[1, 0x00, 0x0C, 0x02],
    );
    assert_eq!(e, DecodeError::UnknownService { service_id: 0x000C });
    assert_eq!(e.error_code(), ErrorCode::BadParameterValue);
}

#[test]
fn responses_are_not_commands_and_vice_versa() {
    let request = Command::Wake
        .to_packet(1, AddressStyle::TargetOnly)
        .unwrap();
    assert_eq!(
        Response::from_packet(&request),
        Err(DecodeError::NotAResponse)
    );
    let ack = Response::Ack(CommandKind::Wake)
        .to_packet(&request.header)
        .unwrap();
    assert_eq!(
        Command::from_packet(&ack),
        Err(DecodeError::UnexpectedResponse)
    );
    assert_eq!(
        Notification::from_packet(&ack),
        Err(DecodeError::UnexpectedResponse)
    );
    assert_eq!(
        Response::from_packet(&ack),
        Ok(Response::Ack(CommandKind::Wake))
    );
}

#[test]
fn ack_for_a_command_with_outputs_is_refused() {
    let header = Header::new(0, 0, 0);
    assert_eq!(
        Response::Ack(CommandKind::GetBatteryPercentage).to_packet(&header),
        Err(EncodeError::InvalidValue)
    );
}

#[test]
fn response_with_wrong_length_is_bad_length() {
    let request = Command::GetEncoderCounts
        .to_packet(1, AddressStyle::TargetOnly)
        .unwrap();
    let mut response = Response::EncoderCounts { left: 1, right: 2 }
        .to_packet(&request.header)
        .unwrap();
    response.set_payload(&[0; 7]).unwrap();
    assert_eq!(
        Response::from_packet(&response),
        Err(DecodeError::BadLength { len: 7 })
    );
}

#[test]
fn routing_accepts_every_addressing_style() {
    for processor in [Processor::Nordic, Processor::St] {
        let node = processor.node();
        for tid in [node, 0x10 | node] {
            let mut h = Header::new(device::SENSOR, sensor::START_STREAMING_SERVICE, 0);
            h.target = Some(tid);
            assert_eq!(h.destination(), Some(processor), "tid {tid:#x}");
        }
    }
    // No target: by device (and the Nordic sensor commands).
    let by_device = |did, cid| Header::new(did, cid, 0).destination();
    assert_eq!(
        by_device(device::POWER, power::WAKE),
        Some(Processor::Nordic)
    );
    assert_eq!(
        by_device(device::DRIVE, drive::DRIVE_STOP),
        Some(Processor::St)
    );
    assert_eq!(
        by_device(device::SENSOR, sensor::GET_ENCODER_COUNTS),
        Some(Processor::St)
    );
    assert_eq!(
        by_device(device::SENSOR, sensor::GET_AMBIENT_LIGHT_SENSOR_VALUE),
        Some(Processor::Nordic)
    );
    assert_eq!(by_device(device::API_AND_SHELL, 0x00), None);
    assert_eq!(by_device(0x42, 0x00), None);
    // A target naming neither processor: the twin answers bad target id.
    let mut h = Header::new(device::DRIVE, drive::DRIVE_STOP, 0);
    h.target = Some(0x13);
    assert_eq!(h.destination(), None);
}

#[test]
fn style_headers() {
    let py = AddressStyle::TargetOnly.command_header(Processor::St, 0x16, 0x07, 1, false);
    assert_eq!(
        (py.wire_flags(), py.target, py.source),
        (0x18, Some(0x02), None)
    );
    let py = AddressStyle::TargetOnly.command_header(Processor::Nordic, 0x13, 0x10, 1, true);
    assert_eq!(
        (py.wire_flags(), py.target, py.source),
        (0x1A, Some(0x01), None)
    );
    let js = AddressStyle::TargetAndSource.command_header(Processor::St, 0x16, 0x07, 1, false);
    assert_eq!(
        (js.wire_flags(), js.target, js.source),
        (0x3A, Some(0x12), Some(0x01))
    );
    assert_eq!((py.wire_len(), js.wire_len()), (5, 6));
    let none = AddressStyle::Untargeted.command_header(Processor::St, 0x16, 0x07, 1, true);
    assert_eq!(
        (none.wire_flags(), none.target, none.source),
        (0x0A, None, None)
    );

    // Responses swap the ids (JS default response flags 0x31).
    let r = js.response_header(ErrorCode::Success);
    assert_eq!(
        (r.wire_flags(), r.target, r.source),
        (0x31, Some(0x01), Some(0x12))
    );
}

#[test]
fn reply_rules() {
    let mut h = Header::new(device::DRIVE, drive::DRIVE_STOP, 0);
    assert!(!h.wants_reply(true));
    assert!(!h.wants_reply(false));
    h.flags = Flags::REQUESTS_RESPONSE;
    assert!(h.wants_reply(true));
    assert!(h.wants_reply(false));
    // The Python SDK's error-only: bits 1 and 2.
    h.flags = Flags::REQUESTS_RESPONSE | Flags::REQUESTS_ERROR_RESPONSE_ONLY;
    assert!(!h.wants_reply(true));
    assert!(h.wants_reply(false));
    // Bit 2 alone (assumed the same).
    h.flags = Flags::REQUESTS_ERROR_RESPONSE_ONLY;
    assert!(!h.wants_reply(true));
    assert!(h.wants_reply(false));
    // Responses are never answered.
    let r = h.response_header(ErrorCode::Success);
    assert!(!r.wants_reply(false));
}

#[test]
fn conflicting_flags_are_not_encoded() {
    let mut h = Header::new(device::POWER, power::WAKE, 0);
    h.error = Some(ErrorCode::Success);
    h.flags = Flags::REQUESTS_RESPONSE;
    let p = Packet::new(h, &[]).unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(p.encode(&mut buf), Err(EncodeError::ConflictingFlags));
}

#[test]
fn payload_limit() {
    let h = Header::new(0, 0, 0);
    assert!(Packet::new(h, &[0; framing::MAX_PAYLOAD_LEN]).is_ok());
    assert_eq!(
        Packet::new(h, &[0; framing::MAX_PAYLOAD_LEN + 1]),
        Err(EncodeError::PayloadTooLong {
            len: framing::MAX_PAYLOAD_LEN + 1
        })
    );
}

#[test]
fn error_codes_cover_the_table() {
    for (byte, code) in ErrorCode::DOCUMENTED.iter().enumerate() {
        assert_eq!(ErrorCode::from_byte(byte as u8), *code);
        assert_eq!(code.to_byte(), byte as u8);
    }
    for byte in 0..=u8::MAX {
        assert_eq!(ErrorCode::from_byte(byte).to_byte(), byte);
    }
    assert_eq!(ErrorCode::from_byte(0x0B), ErrorCode::Other(0x0B));
}

#[test]
fn streaming_config_limits() {
    assert_eq!(StreamingConfig::new(16), Err(EncodeError::InvalidValue));
    let mut c = StreamingConfig::new(streaming::MAX_TOKEN).unwrap();
    for _ in 0..streaming::MAX_SERVICES_PER_SLOT {
        c.push(SensorService::Imu, DataSize::Bits16).unwrap();
    }
    assert_eq!(
        c.push(SensorService::Imu, DataSize::Bits16),
        Err(EncodeError::InvalidValue)
    );
    assert_eq!(c.data_len(), 5 * 3 * 2);
}

#[test]
fn streaming_sample_missing_a_service_is_refused() {
    let c = StreamingConfig::new(1)
        .unwrap()
        .with(SensorService::Locator, DataSize::Bits32)
        .unwrap();
    assert_eq!(
        StreamingData::from_sample(&c, StreamStatus::Ok, &Default::default()),
        Err(EncodeError::MissingSample {
            service_id: streaming::LOCATOR
        })
    );
}

#[test]
fn streaming_status_nibble() {
    // Token byte 0x13: status 1 (invalid data), token 3.
    let p = Packet::new(
        Header::new(device::SENSOR, sensor::STREAMING_SERVICE_DATA_NOTIFY, 0),
        &[0x13],
    )
    .unwrap();
    let Ok(Notification::StreamingData(d)) = Notification::from_packet(&p) else {
        panic!()
    };
    assert_eq!((d.token(), d.status()), (3, StreamStatus::InvalidData));
}

#[test]
fn locator_at_32_bits_resolves_micrometres() {
    // 32-bit locator: one raw step = 32000 m / (2^32 - 1) ~ 7.45 µm.
    let c = StreamingConfig::new(1)
        .unwrap()
        .with(SensorService::Locator, DataSize::Bits32)
        .unwrap();
    let sample = rvr_protocol::SensorSample {
        locator: Some(rvr_protocol::Vector2 {
            x: 1.234_567,
            y: -0.5,
        }),
        ..Default::default()
    };
    let data = StreamingData::from_sample(&c, StreamStatus::Ok, &sample).unwrap();
    let back = data.decode(&c).unwrap().locator.unwrap();
    assert!((back.x - 1.234_567).abs() < 1e-5, "{}", back.x);
    assert!((back.y + 0.5).abs() < 1e-5, "{}", back.y);
}

#[test]
fn services_know_their_processor() {
    assert!(SensorService::Locator.served_by(Processor::St));
    assert!(!SensorService::Locator.served_by(Processor::Nordic));
    assert!(SensorService::AmbientLight.served_by(Processor::Nordic));
    assert!(SensorService::CoreTime.served_by(Processor::Nordic));
    assert!(SensorService::CoreTime.served_by(Processor::St));
}

#[test]
fn new_commands_check_lengths_and_values() {
    for (did, cid, payload) in [
        // 17 echo bytes.
        (device::API_AND_SHELL, api_and_shell::ECHO, &[0u8; 17][..]),
        // Mask with two bits, one value.
        (device::IO, io::SET_ALL_LEDS, &[0, 0, 0, 3, 9][..]),
        // Mask with one bit, two values.
        (device::IO, io::SET_ALL_LEDS, &[0, 0, 0, 1, 9, 9][..]),
        // Palette: not whole entries, and 13 entries.
        (device::IO, io::SET_ACTIVE_COLOR_PALETTE, &[1, 2, 3][..]),
        (device::IO, io::SET_ACTIVE_COLOR_PALETTE, &[0; 52][..]),
        (
            device::SENSOR,
            sensor::SEND_INFRARED_MESSAGE,
            &[1, 2, 3, 4][..],
        ),
    ] {
        let e = decode_error(did, cid, payload);
        assert!(
            matches!(e, DecodeError::BadLength { .. }),
            "{did:#x}/{cid:#x}: {e:?}"
        );
    }
    for (did, cid, payload) in [
        // Motor index 2.
        (
            device::POWER,
            power::GET_CURRENT_SENSE_AMPLIFIER_CURRENT,
            &[2u8][..],
        ),
        (device::SENSOR, sensor::GET_MOTOR_TEMPERATURE, &[2][..]),
        // Locator flags bit 1 (undefined).
        (device::SENSOR, sensor::SET_LOCATOR_FLAGS, &[2][..]),
        // Bool 2 in the colour notify enable.
        (
            device::SENSOR,
            sensor::ENABLE_COLOR_DETECTION_NOTIFY,
            &[2, 0, 100, 10][..],
        ),
    ] {
        assert_eq!(
            decode_error(did, cid, payload),
            DecodeError::BadValue,
            "{did:#x}/{cid:#x}"
        );
    }
    // Range checks of numbers are the robot's, not the codec's.
    assert_eq!(
        Command::from_packet(&command_packet(
            device::SENSOR,
            sensor::SEND_INFRARED_MESSAGE,
            &[9, 99, 0, 0, 0]
        )),
        Ok(Command::SendInfraredMessage {
            code: 9,
            front_strength: 99,
            left_strength: 0,
            right_strength: 0,
            rear_strength: 0
        })
    );
}

#[test]
fn text_answers_stop_at_a_terminator_and_must_be_utf8() {
    let request = Command::GetBluetoothAdvertisingName
        .to_packet(1, AddressStyle::TargetOnly)
        .unwrap();
    let mut answer = Response::BluetoothAdvertisingName(Text::new("RV-5256").unwrap())
        .to_packet(&request.header)
        .unwrap();
    assert_eq!(answer.payload(), b"RV-5256", "no terminator sent");
    answer.set_payload(b"RV-5256\0\0").unwrap();
    assert_eq!(
        Response::from_packet(&answer),
        Ok(Response::BluetoothAdvertisingName(
            Text::new("RV-5256").unwrap()
        ))
    );
    answer.set_payload(&[0xFF, 0xFE]).unwrap();
    assert_eq!(Response::from_packet(&answer), Err(DecodeError::BadValue));
}

#[test]
fn commands_route_to_the_processor_the_python_sdk_targets() {
    let target = |kind: CommandKind| kind.spec().served_by;
    assert_eq!(target(CommandKind::GetMacAddress), ServedBy::Nordic);
    assert_eq!(target(CommandKind::GetRgbcSensorValues), ServedBy::Nordic);
    assert_eq!(
        target(CommandKind::GetCurrentSenseAmplifierCurrent),
        ServedBy::Nordic
    );
    assert_eq!(target(CommandKind::GetMotorTemperature), ServedBy::St);
    assert_eq!(target(CommandKind::SendInfraredMessage), ServedBy::St);
    assert_eq!(target(CommandKind::Echo), ServedBy::Either);
    assert_eq!(
        target(CommandKind::GetMainApplicationVersion),
        ServedBy::Either
    );
    // Untargeted packets go to the only processor serving the command.
    assert_eq!(
        Header::new(device::SENSOR, sensor::GET_RGBC_SENSOR_VALUES, 0).destination(),
        Some(Processor::Nordic)
    );
    assert_eq!(
        Header::new(device::POWER, power::GET_CURRENT_SENSE_AMPLIFIER_CURRENT, 0).destination(),
        Some(Processor::Nordic)
    );
    assert_eq!(
        Header::new(
            device::CONNECTION,
            connection::GET_BLUETOOTH_ADVERTISING_NAME,
            0
        )
        .destination(),
        Some(Processor::Nordic)
    );
    // Either-processor system info defaults to the device's (Nordic).
    assert_eq!(
        Header::new(
            device::SYSTEM_INFO,
            system_info::GET_MAIN_APPLICATION_VERSION,
            0
        )
        .destination(),
        Some(Processor::Nordic)
    );
    // The Python SDK's 65 entries: 55 commands typed (a unit test checks the
    // names) and 10 notifications.
    assert_eq!(COMMANDS.len(), 68);
    assert_eq!(NOTIFICATIONS.len(), 12);
}

#[test]
fn python_sdk_notification_addressing() {
    // SID = bare node, no TID, no flags but has-source: FLAGS 0x20.
    for (source, sid) in [(Processor::Nordic, 0x01), (Processor::St, 0x02)] {
        let p = Notification::MotorStall {
            motor: Motor::Right,
            triggered: true,
        }
        .to_packet(3, source, AddressStyle::TargetOnly)
        .unwrap();
        assert_eq!(p.header.wire_flags(), 0x20);
        assert_eq!((p.header.target, p.header.source), (None, Some(sid)));
        assert!(!p.header.wants_reply(true));
    }
}
