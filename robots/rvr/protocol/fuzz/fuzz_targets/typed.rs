//! Builds packets with arbitrary headers and payloads (bypassing the
//! checksum) and runs every typed decoder, including streaming data against
//! an arbitrary slot configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvr_protocol::{
    AddressStyle, Command, DataSize, ErrorCode, Header, Notification, Packet, Processor, Response,
    SensorService, StreamStatus, StreamingConfig, StreamingData,
};

fuzz_target!(|data: &[u8]| {
    let [did, cid, seq, err, cfg, rest @ ..] = data else {
        return;
    };
    let mut header = Header::new(*did, *cid, *seq);
    header.error = (err & 0x80 != 0).then(|| ErrorCode::from_byte(err & 0x7F));
    let Ok(packet) = Packet::new(header, rest) else {
        return;
    };

    if let Ok(command) = Command::from_packet(&packet) {
        let again = command
            .to_packet(*seq, AddressStyle::TargetAndSource)
            .unwrap();
        assert_eq!(again.payload(), packet.payload());
    }
    if let Ok(response) = Response::from_packet(&packet) {
        let again = response.to_packet(&Header::new(0, 0, *seq)).unwrap();
        // A text answer decodes up to its first NUL (a C-string terminator)
        // and re-encodes without it.
        let is_text = matches!(
            response,
            Response::MacAddress(_)
                | Response::ProcessorName(_)
                | Response::Sku(_)
                | Response::BluetoothAdvertisingName(_)
        );
        let original = packet.payload();
        let end = if is_text {
            original.iter().position(|&b| b == 0).unwrap_or(original.len())
        } else {
            original.len()
        };
        assert_eq!(again.payload(), &original[..end]);
    }
    if let Ok(notification) = Notification::from_packet(&packet) {
        let again = notification
            .to_packet(*seq, Processor::St, AddressStyle::TargetOnly)
            .unwrap();
        assert_eq!(again.payload(), packet.payload());
    }

    // Streaming: a slot from `cfg` (up to 5 services from its bits), data from `rest`.
    let mut config = StreamingConfig::new(cfg & 0x0F).unwrap();
    for (i, chunk) in rest.chunks(2).take(usize::from(cfg >> 4) % 6).enumerate() {
        let service = SensorService::ALL[usize::from(chunk[0]) % SensorService::ALL.len()];
        let size = DataSize::ALL[(usize::from(chunk.get(1).copied().unwrap_or(0)) + i) % 3];
        config.push(service, size).unwrap();
    }
    let _ = StreamingData::new(config.token(), StreamStatus::Ok, rest).map(|s| s.decode(&config));
    if let Some(bytes) = rest.get(..config.data_len()) {
        let stream = StreamingData::new(config.token(), StreamStatus::Ok, bytes).unwrap();
        let sample = stream.decode(&config).expect("length and token match");
        let again = StreamingData::from_sample(&config, StreamStatus::Ok, &sample).unwrap();
        assert_eq!(again.data().len(), bytes.len());
    }
});
