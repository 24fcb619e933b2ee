//! MQTT 5 (protocol level 5) on rumqttc's v5 codec.

use bytes::{Bytes, BytesMut};
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnAckProperties, ConnectReturnCode, Disconnect, DisconnectReasonCode, Packet,
    PingResp, PubAck, PubAckReason, Publish, SubAck, SubscribeReasonCode, UnsubAck, UnsubAckReason,
};
use rumqttc::v5::mqttbytes::{Error, QoS as WireQoS};
use twinrig_hal::QoS;

use super::{Connect, Inbound, Outbound, Reason, WireError};

/// A DISCONNECT with no reason code (normal disconnection): two bytes,
/// which rumqttc's reader refuses as a packet without a payload.
const EMPTY_DISCONNECT: [u8; 2] = [0xe0, 0x00];

/// Reads the next complete packet (None: more bytes needed).
pub fn read(buf: &mut BytesMut, max_packet: usize) -> Result<Option<Inbound>, WireError> {
    if buf.starts_with(&EMPTY_DISCONNECT) {
        let _ = buf.split_to(EMPTY_DISCONNECT.len());
        return Ok(Some(Inbound::Disconnect(None)));
    }
    let max = u32::try_from(max_packet).unwrap_or(u32::MAX);
    let packet = match Packet::read(buf, Some(max)) {
        Ok(p) => p,
        Err(Error::InsufficientBytes(_)) => return Ok(None),
        Err(Error::PayloadSizeLimitExceeded { .. }) => return Err(WireError::TooLarge(max_packet)),
        Err(e) => return Err(WireError::Malformed(e.to_string())),
    };
    Ok(Some(match packet {
        Packet::Connect(c, will, _login) => Inbound::Connect(Connect {
            client_id: c.client_id,
            keep_alive_s: c.keep_alive,
            clean_start: c.clean_start,
            // Absent means 0: the session ends with the connection.
            session_expiry_s: Some(
                c.properties
                    .as_ref()
                    .and_then(|p| p.session_expiry_interval)
                    .unwrap_or(0),
            ),
            max_packet: c.properties.as_ref().and_then(|p| p.max_packet_size),
            will: match will {
                None => None,
                Some(w) => Some(super::Will {
                    topic: String::from_utf8(w.topic.to_vec())
                        .map_err(|_| WireError::Malformed("will topic is not UTF-8".into()))?,
                    payload: w.message,
                    qos: w.qos as u8,
                    retain: w.retain,
                }),
            },
        }),
        Packet::Publish(p) => Inbound::Publish(super::Publish {
            topic: String::from_utf8(p.topic.to_vec())
                .map_err(|_| WireError::Malformed("topic is not UTF-8".into()))?,
            qos: p.qos as u8,
            pkid: p.pkid,
            payload: p.payload,
            retain: p.retain,
            topic_alias: p.properties.and_then(|p| p.topic_alias),
        }),
        Packet::PubAck(a) => Inbound::PubAck(a.pkid),
        Packet::Subscribe(s) => Inbound::Subscribe(
            s.pkid,
            s.filters
                .into_iter()
                .map(|f| (f.path, f.qos as u8))
                .collect(),
        ),
        Packet::Unsubscribe(u) => Inbound::Unsubscribe(u.pkid, u.filters),
        Packet::PingReq(_) => Inbound::PingReq,
        Packet::Disconnect(d) => {
            Inbound::Disconnect(d.properties.and_then(|p| p.session_expiry_interval))
        }
        Packet::Auth(_) => Inbound::Unsupported("AUTH"),
        Packet::PubRec(_) => Inbound::Unsupported("PUBREC"),
        Packet::PubRel(_) => Inbound::Unsupported("PUBREL"),
        Packet::PubComp(_) => Inbound::Unsupported("PUBCOMP"),
        Packet::ConnAck(_) => Inbound::Unsupported("CONNACK"),
        Packet::SubAck(_) => Inbound::Unsupported("SUBACK"),
        Packet::UnsubAck(_) => Inbound::Unsupported("UNSUBACK"),
        Packet::PingResp(_) => Inbound::Unsupported("PINGRESP"),
    }))
}

/// Appends `packet` (false: it does not fit `max_packet`).
pub fn write(packet: &Outbound, buf: &mut BytesMut, max_packet: usize) -> bool {
    let packet = match packet {
        Outbound::ConnAck {
            session_present,
            reason,
            properties,
        } => Packet::ConnAck(ConnAck {
            session_present: *session_present,
            code: connect_code(*reason),
            properties: properties.as_ref().map(|p| ConnAckProperties {
                session_expiry_interval: p.session_expiry_s,
                receive_max: None,
                // AWS IoT Core's answers: QoS 1 at most, retained messages,
                // no subscription identifiers; this twin shares no
                // subscriptions (docs/LIVE-CLOUD.md).
                max_qos: Some(1),
                retain_available: Some(1),
                max_packet_size: Some(p.max_packet),
                assigned_client_identifier: p.assigned_client_id.clone(),
                topic_alias_max: Some(p.topic_alias_max),
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: Some(1),
                subscription_identifiers_available: Some(0),
                shared_subscription_available: Some(0),
                server_keep_alive: p.server_keep_alive_s,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            }),
        }),
        Outbound::Publish {
            topic,
            qos,
            pkid,
            payload,
            retain,
        } => Packet::Publish(Publish {
            dup: false,
            qos: match qos {
                QoS::AtMostOnce => WireQoS::AtMostOnce,
                QoS::AtLeastOnce => WireQoS::AtLeastOnce,
            },
            retain: *retain,
            topic: Bytes::from(topic.clone()),
            pkid: *pkid,
            payload: payload.clone(),
            properties: None,
        }),
        Outbound::PubAck(pkid, reason) => Packet::PubAck(PubAck {
            pkid: *pkid,
            reason: match reason {
                Reason::Success => PubAckReason::Success,
                Reason::NotAuthorized => PubAckReason::NotAuthorized,
                Reason::TopicNameInvalid => PubAckReason::TopicNameInvalid,
                _ => PubAckReason::UnspecifiedError,
            },
            properties: None,
        }),
        Outbound::SubAck(pkid, codes) => Packet::SubAck(SubAck {
            pkid: *pkid,
            return_codes: codes
                .iter()
                .map(|c| match c {
                    Ok(QoS::AtMostOnce) => SubscribeReasonCode::Success(WireQoS::AtMostOnce),
                    Ok(QoS::AtLeastOnce) => SubscribeReasonCode::Success(WireQoS::AtLeastOnce),
                    Err(Reason::NotAuthorized) => SubscribeReasonCode::NotAuthorized,
                    Err(Reason::TopicFilterInvalid) => SubscribeReasonCode::TopicFilterInvalid,
                    Err(_) => SubscribeReasonCode::Unspecified,
                })
                .collect(),
            properties: None,
        }),
        Outbound::UnsubAck(pkid, reasons) => Packet::UnsubAck(UnsubAck {
            pkid: *pkid,
            reasons: reasons
                .iter()
                .map(|r| match r {
                    Reason::Success => UnsubAckReason::Success,
                    Reason::NoSubscriptionExisted => UnsubAckReason::NoSubscriptionExisted,
                    Reason::NotAuthorized => UnsubAckReason::NotAuthorized,
                    Reason::TopicFilterInvalid => UnsubAckReason::TopicFilterInvalid,
                    _ => UnsubAckReason::UnspecifiedError,
                })
                .collect(),
            properties: None,
        }),
        Outbound::PingResp => Packet::PingResp(PingResp),
        Outbound::Disconnect(reason) => Packet::Disconnect(Disconnect::new(match reason {
            Reason::MalformedPacket => DisconnectReasonCode::MalformedPacket,
            Reason::ProtocolError => DisconnectReasonCode::ProtocolError,
            Reason::NotAuthorized => DisconnectReasonCode::NotAuthorized,
            Reason::KeepAliveTimeout => DisconnectReasonCode::KeepAliveTimeout,
            Reason::SessionTakenOver => DisconnectReasonCode::SessionTakenOver,
            Reason::TopicFilterInvalid => DisconnectReasonCode::TopicFilterInvalid,
            Reason::TopicNameInvalid => DisconnectReasonCode::TopicNameInvalid,
            Reason::TopicAliasInvalid => DisconnectReasonCode::TopicAliasInvalid,
            Reason::PacketTooLarge => DisconnectReasonCode::PacketTooLarge,
            Reason::QosNotSupported => DisconnectReasonCode::QoSNotSupported,
            _ => DisconnectReasonCode::UnspecifiedError,
        })),
    };
    let max = u32::try_from(max_packet).unwrap_or(u32::MAX);
    packet.write(buf, Some(max)).is_ok()
}

fn connect_code(reason: Reason) -> ConnectReturnCode {
    match reason {
        Reason::Success => ConnectReturnCode::Success,
        Reason::MalformedPacket => ConnectReturnCode::MalformedPacket,
        Reason::ProtocolError => ConnectReturnCode::ProtocolError,
        Reason::UnsupportedProtocolVersion => ConnectReturnCode::UnsupportedProtocolVersion,
        Reason::ClientIdentifierNotValid => ConnectReturnCode::ClientIdentifierNotValid,
        Reason::NotAuthorized => ConnectReturnCode::NotAuthorized,
        Reason::ServerUnavailable => ConnectReturnCode::ServerUnavailable,
        Reason::PacketTooLarge => ConnectReturnCode::PacketTooLarge,
        Reason::QosNotSupported => ConnectReturnCode::QoSNotSupported,
        Reason::TopicNameInvalid => ConnectReturnCode::TopicNameInvalid,
        _ => ConnectReturnCode::UnspecifiedError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disconnect_without_a_reason_code_is_a_normal_disconnection() {
        let mut buf = BytesMut::from(&[0xe0, 0x00, 0xc0][..]);
        assert_eq!(read(&mut buf, 1024), Ok(Some(Inbound::Disconnect(None))));
        // What followed stays for the next read.
        assert_eq!(&buf[..], &[0xc0]);
    }

    #[test]
    fn a_not_authorized_puback_carries_reason_0x87() {
        let mut buf = BytesMut::new();
        assert!(write(
            &Outbound::PubAck(7, Reason::NotAuthorized),
            &mut buf,
            1024
        ));
        // PUBACK, remaining length 4: packet id, reason, no properties.
        assert_eq!(&buf[..], &[0x40, 4, 0, 7, 0x87, 0]);
    }

    #[test]
    fn a_packet_larger_than_the_limit_is_refused_before_it_is_read_whole() {
        // A PUBLISH announcing 1 MiB, of which only the header has arrived.
        let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x40][..]);
        assert_eq!(read(&mut buf, 1024), Err(WireError::TooLarge(1024)));
    }
}
