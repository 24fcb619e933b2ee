//! Feeds arbitrary bytes to the streaming parser.
//!
//! Checks, beyond "does not panic": every frame returned was on the wire
//! exactly as its canonical encoding, ending at the byte that returned it;
//! the counters agree with what was returned; a clean frame after the noise
//! is always recovered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvr_protocol::constants::framing;
use rvr_protocol::{AddressStyle, Command, Notification, ParseError, Parser, Response};

fuzz_target!(|data: &[u8]| {
    let mut parser = Parser::new();
    let mut last_sop = None;
    let mut oks = 0u32;
    let mut errors = [0u32; 7];
    for (i, &byte) in data.iter().enumerate() {
        if byte == framing::SOP {
            last_sop = Some(i);
        }
        match parser.push(byte) {
            None => {}
            Some(Ok(packet)) => {
                oks += 1;
                let start = last_sop.expect("a frame starts at a SOP");
                let frame = packet.to_frame().expect("a parsed packet re-encodes");
                assert_eq!(&frame[..], &data[start..=i]);
                // Typed decoders must not panic; accepted commands re-encode
                // to the same payload.
                if let Ok(command) = Command::from_packet(&packet) {
                    let again = command.to_packet(0, AddressStyle::TargetOnly).unwrap();
                    assert_eq!(again.payload(), packet.payload());
                }
                let _ = Response::from_packet(&packet);
                let _ = Notification::from_packet(&packet);
            }
            Some(Err(e)) => {
                let index = match e {
                    ParseError::SkippedData => 0,
                    ParseError::EarlyStart => 1,
                    ParseError::Truncated => 2,
                    ParseError::BadEscape => 3,
                    ParseError::BadChecksum => 4,
                    ParseError::BadFlags => 5,
                    ParseError::TooLong => 6,
                };
                errors[index] += 1;
            }
        }
    }
    let s = parser.stats();
    assert_eq!(s.frames, oks);
    assert!(s.skipped_bytes >= errors[0]);
    assert_eq!(s.early_start, errors[1]);
    assert_eq!(s.truncated, errors[2]);
    assert_eq!(s.bad_escape, errors[3]);
    assert_eq!(s.bad_checksum, errors[4]);
    assert_eq!(s.bad_flags, errors[5]);
    assert_eq!(s.too_long, errors[6]);

    // Resynchronisation: whatever came before, a clean frame gets through.
    let wake = Command::Wake
        .to_packet(1, AddressStyle::TargetOnly)
        .unwrap();
    let mut last = None;
    for &byte in wake.to_frame().unwrap().iter() {
        if let Some(item) = parser.push(byte) {
            last = Some(item);
        }
    }
    assert_eq!(last, Some(Ok(wake)));
});
