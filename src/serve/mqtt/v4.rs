//! MQTT 3.1.1 (protocol level 4) on rumqttc's v4 codec.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{Error, QoS as WireQoS};
use twinrig_hal::QoS;

use super::{Connect, Inbound, Outbound, Reason, WireError};

/// Reads the next complete packet (None: more bytes needed).
pub fn read(buf: &mut BytesMut, max_packet: usize) -> Result<Option<Inbound>, WireError> {
    let packet = match Packet::read(buf, max_packet) {
        Ok(p) => p,
        Err(Error::InsufficientBytes(_)) => return Ok(None),
        Err(Error::PayloadSizeLimitExceeded(_)) => return Err(WireError::TooLarge(max_packet)),
        Err(e) => return Err(WireError::Malformed(e.to_string())),
    };
    Ok(Some(match packet {
        Packet::Connect(c) => Inbound::Connect(Connect {
            client_id: c.client_id,
            keep_alive_s: c.keep_alive,
            clean_start: c.clean_session,
            session_expiry_s: None,
            max_packet: None,
            will: c.last_will.map(|w| super::Will {
                topic: w.topic,
                payload: w.message,
                qos: w.qos as u8,
                retain: w.retain,
            }),
        }),
        Packet::Publish(p) => Inbound::Publish(super::Publish {
            topic: p.topic,
            qos: p.qos as u8,
            pkid: p.pkid,
            payload: p.payload,
            retain: p.retain,
            topic_alias: None,
        }),
        Packet::PubAck(a) => Inbound::PubAck(a.pkid),
        Packet::Subscribe(s) => Inbound::Subscribe(
            s.pkid,
            s.filters
                .into_iter()
                .map(|f| (f.path, f.qos as u8))
                .collect(),
        ),
        Packet::Unsubscribe(u) => Inbound::Unsubscribe(u.pkid, u.topics),
        Packet::PingReq => Inbound::PingReq,
        Packet::Disconnect => Inbound::Disconnect(None),
        Packet::PubRec(_) => Inbound::Unsupported("PUBREC"),
        Packet::PubRel(_) => Inbound::Unsupported("PUBREL"),
        Packet::PubComp(_) => Inbound::Unsupported("PUBCOMP"),
        Packet::ConnAck(_) => Inbound::Unsupported("CONNACK"),
        Packet::SubAck(_) => Inbound::Unsupported("SUBACK"),
        Packet::UnsubAck(_) => Inbound::Unsupported("UNSUBACK"),
        Packet::PingResp => Inbound::Unsupported("PINGRESP"),
    }))
}

/// Appends `packet` (false: MQTT 3.1.1 has no such packet, or it does not
/// fit `max_packet`).
pub fn write(packet: &Outbound, buf: &mut BytesMut, max_packet: usize) -> bool {
    let packet = match packet {
        Outbound::ConnAck {
            session_present,
            reason,
            ..
        } => {
            let code = match reason {
                Reason::Success => ConnectReturnCode::Success,
                Reason::UnsupportedProtocolVersion => ConnectReturnCode::RefusedProtocolVersion,
                Reason::ClientIdentifierNotValid => ConnectReturnCode::BadClientId,
                Reason::NotAuthorized => ConnectReturnCode::NotAuthorized,
                _ => ConnectReturnCode::ServiceUnavailable,
            };
            Packet::ConnAck(ConnAck::new(code, *session_present))
        }
        Outbound::Publish {
            topic,
            qos,
            pkid,
            payload,
            retain,
        } => Packet::Publish(Publish {
            dup: false,
            qos: wire_qos(*qos),
            retain: *retain,
            topic: topic.clone(),
            pkid: *pkid,
            payload: payload.clone(),
        }),
        // An MQTT 3.1.1 PUBACK has no reason: only success is acknowledged.
        Outbound::PubAck(pkid, Reason::Success) => Packet::PubAck(PubAck::new(*pkid)),
        Outbound::PubAck(..) | Outbound::Disconnect(_) => return false,
        Outbound::SubAck(pkid, codes) => Packet::SubAck(SubAck::new(
            *pkid,
            codes
                .iter()
                .map(|c| match c {
                    Ok(qos) => SubscribeReasonCode::Success(wire_qos(*qos)),
                    Err(_) => SubscribeReasonCode::Failure,
                })
                .collect(),
        )),
        Outbound::UnsubAck(pkid, _) => Packet::UnsubAck(UnsubAck::new(*pkid)),
        Outbound::PingResp => Packet::PingResp,
    };
    packet.write(buf, max_packet).is_ok()
}

fn wire_qos(qos: QoS) -> WireQoS {
    match qos {
        QoS::AtMostOnce => WireQoS::AtMostOnce,
        QoS::AtLeastOnce => WireQoS::AtLeastOnce,
    }
}
