//! Packets: header, payload, checksum, escaping and the encoder.

use core::fmt;

use crate::command::CommandKind;
use crate::constants::{address, device, flag_bits, framing};
use crate::error::{EncodeError, ErrorCode};

/// The sender-chosen FLAGS bits: request response, error-only response,
/// activity, and the unused bit 6 (carried through unchanged).
///
/// The structural bits (is-response, has-target, has-source) are not stored
/// here: they follow from [`Header::error`], [`Header::target`] and
/// [`Header::source`]. Extended flags (bit 7) are not supported.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    /// No optional bit set.
    pub const NONE: Flags = Flags(0);
    /// The sender wants a response.
    pub const REQUESTS_RESPONSE: Flags = Flags(flag_bits::REQUESTS_RESPONSE);
    /// The sender wants a response only on error.
    pub const REQUESTS_ERROR_RESPONSE_ONLY: Flags = Flags(flag_bits::REQUESTS_ERROR_RESPONSE_ONLY);
    /// The packet counts as user activity.
    pub const IS_ACTIVITY: Flags = Flags(flag_bits::IS_ACTIVITY);
    /// Unused bit 6.
    pub const UNUSED_BIT6: Flags = Flags(flag_bits::UNUSED_BIT6);

    /// Keeps the optional bits of a FLAGS byte, drops the structural ones.
    pub const fn from_bits_truncate(bits: u8) -> Flags {
        Flags(bits & flag_bits::OPTIONAL)
    }

    /// The optional bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// `true` if every bit of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of bits.
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// `self` without the bits of `other`.
    pub const fn difference(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.union(rhs)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({:#04x})", self.0)
    }
}

/// One of the RVR's two processors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Processor {
    /// Bluetooth SoC: power, system info, LEDs, colour and ambient-light sensor.
    Nordic,
    /// MCU: drive, IMU, locator, encoders, motors, IR, magnetometer, temperatures.
    St,
}

impl Processor {
    /// The node number (low nibble of a target / source id).
    pub const fn node(self) -> u8 {
        match self {
            Processor::Nordic => address::NORDIC_NODE,
            Processor::St => address::ST_NODE,
        }
    }

    /// The processor a target / source id byte names, by its low nibble
    /// (the port nibble is ignored, so both `0x02` and `0x12` are ST).
    pub const fn from_address(byte: u8) -> Option<Processor> {
        match byte & address::NODE_MASK {
            address::NORDIC_NODE => Some(Processor::Nordic),
            address::ST_NODE => Some(Processor::St),
            _ => None,
        }
    }

    /// The id byte of this processor in an addressing style: the bare node
    /// for [`AddressStyle::TargetOnly`] (`0x01` / `0x02`), port 1 for
    /// [`AddressStyle::TargetAndSource`] (`0x11` / `0x12`). `None` for
    /// [`AddressStyle::Untargeted`].
    pub const fn address(self, style: AddressStyle) -> Option<u8> {
        match style {
            AddressStyle::TargetOnly => Some(self.node()),
            AddressStyle::TargetAndSource => {
                Some((address::TARGET_AND_SOURCE_PORT << address::PORT_SHIFT) | self.node())
            }
            AddressStyle::Untargeted => None,
        }
    }

    /// The processor that serves a command when the packet has no target id:
    /// the only one that serves it (the command table), else the device's
    /// default from the fact sheet's per-device table. `None` for devices
    /// that either processor serves (`api_and_shell`) or that are unknown.
    /// The streaming commands, which go to either processor, default to ST.
    pub fn default_for(device_id: u8, command_id: u8) -> Option<Processor> {
        if let Some(only) = CommandKind::from_ids(device_id, command_id)
            .ok()
            .and_then(|kind| kind.spec().served_by.only())
        {
            return Some(only);
        }
        device::DEFAULT_NODE
            .iter()
            .find(|(did, _)| *did == device_id)
            .and_then(|(_, node)| *node)
            .and_then(Processor::from_address)
    }
}

/// How a host addresses its commands. The robot accepts all three, so a
/// decoder must too; an encoder picks one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressStyle {
    /// Python SDK style: TID = node (`0x01` Nordic, `0x02` ST), no SID.
    /// Commands get FLAGS `0x18` (activity + target), or `0x1A` when the
    /// command has outputs (request response).
    TargetOnly,
    /// Node.js SDK style: TID = `0x11` / `0x12`, SID = `0x01` (the host).
    /// Commands get FLAGS `0x3A` (request response + activity + target + source).
    TargetAndSource,
    /// No TID and no SID: the robot routes by device id. FLAGS as for
    /// [`AddressStyle::TargetOnly`], without has-target.
    Untargeted,
}

impl AddressStyle {
    /// The header of a command to `processor` in this style, with the SDK's
    /// usual flags (see each variant). `has_outputs` says whether the command
    /// returns data.
    pub const fn command_header(
        self,
        processor: Processor,
        device_id: u8,
        command_id: u8,
        sequence: u8,
        has_outputs: bool,
    ) -> Header {
        let (flags, source) = match self {
            AddressStyle::TargetAndSource => (
                Flags(flag_bits::REQUESTS_RESPONSE | flag_bits::IS_ACTIVITY),
                Some(address::HOST_SOURCE),
            ),
            AddressStyle::TargetOnly | AddressStyle::Untargeted => {
                let request = if has_outputs {
                    flag_bits::REQUESTS_RESPONSE
                } else {
                    0
                };
                (Flags(flag_bits::IS_ACTIVITY | request), None)
            }
        };
        Header {
            flags,
            target: processor.address(self),
            source,
            device_id,
            command_id,
            sequence,
            error: None,
        }
    }

    /// The header of an unsolicited notification from `source` in this style.
    /// No optional flags: a notification requests no response.
    ///
    /// [`AddressStyle::TargetOnly`] sends SID = node (`0x01` / `0x02`) and no
    /// TID. This is what the Python SDK can receive: its handler
    /// (`asyncio/server/handler/api_sphero_handler.py`, `_handle_command`)
    /// looks up the callback registered by `on_*_notify` under
    /// `(DID, CID, message source)` with source 1 or 2, so any other source
    /// byte reaches no callback. [`AddressStyle::TargetAndSource`] sends
    /// SID = `0x11` / `0x12` and TID = `0x01` (the host, as a response would;
    /// **assumed**, the Node.js SDK's notification matching is not
    /// documented); [`AddressStyle::Untargeted`] sends neither.
    pub const fn notification_header(
        self,
        source: Processor,
        device_id: u8,
        command_id: u8,
        sequence: u8,
    ) -> Header {
        let target = match self {
            AddressStyle::TargetAndSource => Some(address::HOST_SOURCE),
            AddressStyle::TargetOnly | AddressStyle::Untargeted => None,
        };
        Header {
            flags: Flags::NONE,
            target,
            source: source.address(self),
            device_id,
            command_id,
            sequence,
            error: None,
        }
    }
}

/// A packet header. The FLAGS byte on the wire is [`Header::wire_flags`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Optional flags (request response, error only, activity, bit 6).
    pub flags: Flags,
    /// Target id (TID), present iff has-target is set.
    pub target: Option<u8>,
    /// Source id (SID), present iff has-source is set.
    pub source: Option<u8>,
    /// Device id (DID).
    pub device_id: u8,
    /// Command id (CID).
    pub command_id: u8,
    /// Sequence number (SEQ), echoed by the response.
    pub sequence: u8,
    /// `Some` iff the packet is a response; the ERR byte.
    pub error: Option<ErrorCode>,
}

impl Header {
    /// A command header with no flags, no target, no source.
    pub const fn new(device_id: u8, command_id: u8, sequence: u8) -> Header {
        Header {
            flags: Flags::NONE,
            target: None,
            source: None,
            device_id,
            command_id,
            sequence,
            error: None,
        }
    }

    /// The FLAGS byte this header puts on the wire.
    pub const fn wire_flags(&self) -> u8 {
        let mut bits = self.flags.bits() & flag_bits::OPTIONAL;
        if self.target.is_some() {
            bits |= flag_bits::HAS_TARGET;
        }
        if self.source.is_some() {
            bits |= flag_bits::HAS_SOURCE;
        }
        if self.error.is_some() {
            bits |= flag_bits::IS_RESPONSE;
        }
        bits
    }

    /// `true` if the packet is a response.
    pub const fn is_response(&self) -> bool {
        self.error.is_some()
    }

    /// `true` if the flags are contradictory: a response that requests a
    /// response. Receivers drop such packets.
    pub const fn has_conflicting_flags(&self) -> bool {
        self.is_response() && self.flags.contains(Flags::REQUESTS_RESPONSE)
    }

    /// Number of header bytes (FLAGS through ERR) before escaping, 4 to 7.
    pub const fn wire_len(&self) -> usize {
        4 + self.target.is_some() as usize
            + self.source.is_some() as usize
            + self.error.is_some() as usize
    }

    /// The processor the packet is for: the target id's node if there is a
    /// target id, else the device's default processor
    /// ([`Processor::default_for`]). `None` when the target id names no
    /// processor (answer [`ErrorCode::BadTargetId`]) or the device has no default.
    pub fn destination(&self) -> Option<Processor> {
        match self.target {
            Some(tid) => Processor::from_address(tid),
            None => Processor::default_for(self.device_id, self.command_id),
        }
    }

    /// The processor that sent the packet, from the source id's node.
    pub fn origin(&self) -> Option<Processor> {
        self.source.and_then(Processor::from_address)
    }

    /// Whether a robot should answer this command, given whether it succeeded.
    ///
    /// The rule (fact sheet §2): answer only if request-response is set; if
    /// error-only is also set, answer only on error. **Assumed**: error-only
    /// without request-response also asks for error answers (the Node.js SDK
    /// names bit 2 "request only error response"). Responses are never answered.
    pub const fn wants_reply(&self, succeeded: bool) -> bool {
        if self.is_response() {
            return false;
        }
        if self.flags.contains(Flags::REQUESTS_ERROR_RESPONSE_ONLY) {
            return !succeeded;
        }
        self.flags.contains(Flags::REQUESTS_RESPONSE)
    }

    /// The header of the response to this command: same DID, CID and SEQ,
    /// ERR = `error`, target and source swapped (response TID = command SID,
    /// response SID = command TID), no optional flags.
    pub const fn response_header(&self, error: ErrorCode) -> Header {
        Header {
            flags: Flags::NONE,
            target: self.source,
            source: self.target,
            device_id: self.device_id,
            command_id: self.command_id,
            sequence: self.sequence,
            error: Some(error),
        }
    }
}

/// The payload bytes of a packet, stored inline (no allocation).
#[derive(Clone, Copy)]
pub(crate) struct Payload {
    len: u8,
    bytes: [u8; framing::MAX_PAYLOAD_LEN],
}

const _: () = assert!(framing::MAX_PAYLOAD_LEN <= u8::MAX as usize);

impl Payload {
    pub(crate) const EMPTY: Payload = Payload {
        len: 0,
        bytes: [0; framing::MAX_PAYLOAD_LEN],
    };

    pub(crate) fn from_slice(data: &[u8]) -> Result<Payload, EncodeError> {
        let mut payload = Payload::EMPTY;
        payload.extend(data)?;
        Ok(payload)
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub(crate) fn extend(&mut self, data: &[u8]) -> Result<(), EncodeError> {
        let start = usize::from(self.len);
        let end = start + data.len();
        if end > framing::MAX_PAYLOAD_LEN {
            return Err(EncodeError::PayloadTooLong { len: end });
        }
        self.bytes[start..end].copy_from_slice(data);
        self.len = end as u8;
        Ok(())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X?}", self.as_slice())
    }
}

/// One RVR packet: a header and up to [`framing::MAX_PAYLOAD_LEN`] payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The header (public: adjust flags or addressing freely before encoding).
    pub header: Header,
    payload: Payload,
}

impl Packet {
    /// A packet with `header` and a copy of `payload`.
    pub fn new(header: Header, payload: &[u8]) -> Result<Packet, EncodeError> {
        Ok(Packet {
            header,
            payload: Payload::from_slice(payload)?,
        })
    }

    pub(crate) const fn from_parts(header: Header, payload: Payload) -> Packet {
        Packet { header, payload }
    }

    /// The error response to the command `request`: empty payload, ERR = `code`.
    pub const fn error_response(request: &Header, code: ErrorCode) -> Packet {
        Packet {
            header: request.response_header(code),
            payload: Payload::EMPTY,
        }
    }

    /// The payload bytes (DATA).
    pub fn payload(&self) -> &[u8] {
        self.payload.as_slice()
    }

    /// Replaces the payload.
    pub fn set_payload(&mut self, payload: &[u8]) -> Result<(), EncodeError> {
        self.payload = Payload::from_slice(payload)?;
        Ok(())
    }

    /// Calls `f` with every un-escaped byte from FLAGS through the last DATA byte.
    fn for_each_body_byte(&self, mut f: impl FnMut(u8)) {
        let h = &self.header;
        f(h.wire_flags());
        if let Some(tid) = h.target {
            f(tid);
        }
        if let Some(sid) = h.source {
            f(sid);
        }
        f(h.device_id);
        f(h.command_id);
        f(h.sequence);
        if let Some(err) = h.error {
            f(err.to_byte());
        }
        for &b in self.payload() {
            f(b);
        }
    }

    /// The checksum byte: the bitwise NOT of the low byte of the sum of every
    /// un-escaped byte from FLAGS through the last DATA byte.
    pub fn checksum(&self) -> u8 {
        let mut sum = 0u8;
        self.for_each_body_byte(|b| sum = sum.wrapping_add(b));
        !sum
    }

    /// Exact length of the escaped frame on the wire, SOP and EOP included.
    pub fn encoded_len(&self) -> usize {
        let mut len = 2 + escaped_len(self.checksum());
        self.for_each_body_byte(|b| len += escaped_len(b));
        len
    }

    /// Writes the escaped frame into `out`, returning the number of bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        if self.header.has_conflicting_flags() {
            return Err(EncodeError::ConflictingFlags);
        }
        let needed = self.encoded_len();
        if out.len() < needed {
            return Err(EncodeError::BufferTooSmall {
                needed,
                available: out.len(),
            });
        }
        let mut pos = 0;
        let mut put = |b: u8| {
            out[pos] = b;
            pos += 1;
        };
        put(framing::SOP);
        let mut escaped = |b: u8| match b {
            framing::SOP | framing::EOP | framing::ESC => {
                put(framing::ESC);
                put(b & !framing::ESCAPE_MASK);
            }
            _ => put(b),
        };
        self.for_each_body_byte(&mut escaped);
        escaped(self.checksum());
        put(framing::EOP);
        Ok(pos)
    }

    /// Encodes into an inline buffer sized for the largest frame.
    pub fn to_frame(&self) -> Result<Frame, EncodeError> {
        let mut frame = Frame {
            len: 0,
            bytes: [0; framing::MAX_FRAME_LEN],
        };
        frame.len = self.encode(&mut frame.bytes)?;
        Ok(frame)
    }
}

fn escaped_len(byte: u8) -> usize {
    match byte {
        framing::SOP | framing::EOP | framing::ESC => 2,
        _ => 1,
    }
}

/// An encoded frame in an inline buffer; derefs to the wire bytes.
#[derive(Clone, Copy)]
pub struct Frame {
    len: usize,
    bytes: [u8; framing::MAX_FRAME_LEN],
}

impl Frame {
    /// The wire bytes, SOP through EOP.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl core::ops::Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Frame) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Frame {}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({:02X?})", self.as_bytes())
    }
}
