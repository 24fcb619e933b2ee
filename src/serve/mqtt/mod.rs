//! MQTT on the wire for `twinrig serve cloud`: the packets a session reads
//! and writes, whatever the protocol version, and one file per version
//! ([`v4`] for MQTT 3.1.1, [`v5`] for MQTT 5) translating them to and from
//! rumqttc's codecs. A connection's version is the one its CONNECT names
//! ([`protocol_level`]); AWS IoT Core serves both on the same port.

use bytes::{Bytes, BytesMut};
use twinrig_hal::QoS;

pub mod v4;
pub mod v5;

/// The MQTT protocol versions served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5 (protocol level 5).
    V5,
}

impl Version {
    /// The version with this CONNECT protocol level, if served.
    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            4 => Some(Self::V311),
            5 => Some(Self::V5),
            _ => None,
        }
    }

    /// Reads the next complete packet from `buf` (None: more bytes needed).
    pub fn read(self, buf: &mut BytesMut, max_packet: usize) -> Result<Option<Inbound>, WireError> {
        match self {
            Self::V311 => v4::read(buf, max_packet),
            Self::V5 => v5::read(buf, max_packet),
        }
    }

    /// Appends `packet` to `buf`, if this version has it and it fits
    /// `max_packet` (false: nothing written). MQTT 3.1.1 has no server
    /// DISCONNECT and no reason codes beyond its return codes.
    pub fn write(self, packet: &Outbound, buf: &mut BytesMut, max_packet: usize) -> bool {
        match self {
            Self::V311 => v4::write(packet, buf, max_packet),
            Self::V5 => v5::write(packet, buf, max_packet),
        }
    }
}

/// What the first bytes of a connection say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Not enough bytes yet to tell.
    Incomplete,
    /// A CONNECT with this protocol level.
    Connect(u8),
    /// Not a CONNECT: not MQTT.
    NotConnect,
}

/// The protocol level of the CONNECT `buf` starts with, read without
/// consuming it: fixed header (type 1), remaining length, protocol name,
/// level.
pub fn protocol_level(buf: &[u8]) -> Opening {
    const CONNECT_BYTE: u8 = 0x10;
    let Some(&first) = buf.first() else {
        return Opening::Incomplete;
    };
    if first != CONNECT_BYTE {
        return Opening::NotConnect;
    }
    // The remaining length: 1 to 4 bytes, 7 bits each.
    let mut at = 1;
    loop {
        let Some(&b) = buf.get(at) else {
            return Opening::Incomplete;
        };
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return Opening::NotConnect;
        }
    }
    let (Some(&hi), Some(&lo)) = (buf.get(at), buf.get(at + 1)) else {
        return Opening::Incomplete;
    };
    let name_len = usize::from(u16::from_be_bytes([hi, lo]));
    match buf.get(at + 2 + name_len) {
        Some(&level) => Opening::Connect(level),
        None => Opening::Incomplete,
    }
}

/// Why the bytes from a client are not a packet of its version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Larger than the server accepts.
    #[error("packet larger than {0} bytes")]
    TooLarge(usize),
    /// Not well-formed.
    #[error("malformed packet: {0}")]
    Malformed(String),
}

/// A CONNECT, as the session needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The client id (may be empty).
    pub client_id: String,
    /// Keep-alive asked for, seconds.
    pub keep_alive_s: u16,
    /// MQTT 3.1.1 cleanSession, MQTT 5 Clean Start.
    pub clean_start: bool,
    /// MQTT 5's Session Expiry Interval (absent means 0); None on MQTT 3.1.1.
    pub session_expiry_s: Option<u32>,
    /// MQTT 5: the largest packet the client accepts.
    pub max_packet: Option<u32>,
    /// The Last Will, if one was given.
    pub will: Option<Will>,
}

/// A CONNECT's Last Will: published for the client when its connection
/// ends without a DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// 0, 1 or 2 as sent (AWS refuses 2).
    pub qos: u8,
    /// Published as a retained message.
    pub retain: bool,
}

/// A PUBLISH from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The topic (empty when an MQTT 5 topic alias stands for it).
    pub topic: String,
    /// 0, 1 or 2 as sent.
    pub qos: u8,
    /// Packet id (0 for QoS 0).
    pub pkid: u16,
    /// The payload.
    pub payload: Bytes,
    /// The RETAIN flag.
    pub retain: bool,
    /// MQTT 5 topic alias.
    pub topic_alias: Option<u16>,
}

/// A packet from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// CONNECT.
    Connect(Connect),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK for a QoS 1 delivery.
    PubAck(u16),
    /// SUBSCRIBE: packet id, then each filter with its QoS as sent.
    Subscribe(u16, Vec<(String, u8)>),
    /// UNSUBSCRIBE: packet id and filters.
    Unsubscribe(u16, Vec<String>),
    /// PINGREQ.
    PingReq,
    /// DISCONNECT (MQTT 5: the new session expiry, if it carries one).
    Disconnect(Option<u32>),
    /// A packet AWS IoT does not serve (QoS 2 flow, AUTH, server-only
    /// packets), by name.
    Unsupported(&'static str),
}

/// Reason codes the server answers with (MQTT 5's; MQTT 3.1.1 maps the
/// ones it has and answers a failure for the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 0x00.
    Success,
    /// 0x11: UNSUBACK for a filter the session did not have.
    NoSubscriptionExisted,
    /// 0x81.
    MalformedPacket,
    /// 0x82.
    ProtocolError,
    /// 0x84 (MQTT 3.1.1: CONNACK 1).
    UnsupportedProtocolVersion,
    /// 0x85 (MQTT 3.1.1: CONNACK 2).
    ClientIdentifierNotValid,
    /// 0x87 (MQTT 3.1.1: CONNACK 5).
    NotAuthorized,
    /// 0x88 (MQTT 3.1.1: CONNACK 3).
    ServerUnavailable,
    /// 0x8D.
    KeepAliveTimeout,
    /// 0x8E.
    SessionTakenOver,
    /// 0x8F.
    TopicFilterInvalid,
    /// 0x90.
    TopicNameInvalid,
    /// 0x94.
    TopicAliasInvalid,
    /// 0x95.
    PacketTooLarge,
    /// 0x9B.
    QosNotSupported,
}

/// What the server tells an MQTT 5 client in its CONNACK (AWS IoT Core's
/// CONNACK properties, as far as this server honours them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAckProperties {
    /// The session expiry applied, when it differs from the one asked for.
    pub session_expiry_s: Option<u32>,
    /// The keep-alive applied, when it differs from the one asked for.
    pub server_keep_alive_s: Option<u16>,
    /// The client id the server assigned (the client sent none).
    pub assigned_client_id: Option<String>,
    /// The largest packet the server accepts.
    pub max_packet: u32,
    /// Topic aliases a client may use.
    pub topic_alias_max: u16,
}

/// A packet to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// CONNACK (the properties go only to MQTT 5 clients).
    ConnAck {
        /// Whether an earlier session resumes.
        session_present: bool,
        /// Success or why the connection is refused.
        reason: Reason,
        /// MQTT 5 properties (None on a refusal).
        properties: Option<ConnAckProperties>,
    },
    /// A delivery.
    Publish {
        /// Topic.
        topic: String,
        /// QoS.
        qos: QoS,
        /// Packet id (0 for QoS 0).
        pkid: u16,
        /// Payload.
        payload: Bytes,
        /// RETAIN: set only on a retained message sent because of a subscription.
        retain: bool,
    },
    /// PUBACK.
    PubAck(u16, Reason),
    /// SUBACK: a granted QoS or a failure reason per filter.
    SubAck(u16, Vec<Result<QoS, Reason>>),
    /// UNSUBACK with a reason per filter.
    UnsubAck(u16, Vec<Reason>),
    /// PINGRESP.
    PingResp,
    /// A server DISCONNECT (MQTT 5 only; an MQTT 3.1.1 client sees the
    /// connection close).
    Disconnect(Reason),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_level_is_read_without_consuming_the_connect() {
        // MQTT 3.1.1 CONNECT, client id "a".
        let v4 = [
            0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'a',
        ];
        assert_eq!(protocol_level(&v4), Opening::Connect(4));
        for n in 0..9 {
            assert_eq!(protocol_level(&v4[..n]), Opening::Incomplete, "{n} bytes");
        }
        // MQTT 3.1's CONNECT names "MQIsdp", level 3.
        let v3 = [
            0x10, 15, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60, 0, 0,
        ];
        assert_eq!(protocol_level(&v3), Opening::Connect(3));
        // A two-byte remaining length.
        let long = [0x10, 0x80, 0x01, 0, 4, b'M', b'Q', b'T', b'T', 5];
        assert_eq!(protocol_level(&long), Opening::Connect(5));
        assert_eq!(protocol_level(b"GET / HTTP/1.1"), Opening::NotConnect);
        // A remaining length of more than 4 bytes is not MQTT.
        assert_eq!(
            protocol_level(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Opening::NotConnect
        );
        assert_eq!(Version::from_level(3), None);
        assert_eq!(Version::from_level(4), Some(Version::V311));
        assert_eq!(Version::from_level(5), Some(Version::V5));
    }
}
