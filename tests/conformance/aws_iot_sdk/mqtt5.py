"""The AWS IoT Device SDK's MQTT 5 client against `twinrig serve cloud`
(part of suite.py's run): `mqtt5_client_builder.mtls_from_path` as it
connects to AWS IoT Core, the Device Shadow service through the SDK's
`IotShadowClientV2` (its request-response client), and the reason codes
AWS IoT answers MQTT 5 clients with: PUBACK and SUBACK 0x87 on another
thing's topics (the connection stays), CONNACK 0x87 for another thing's
client id, DISCONNECT 0x8E when a second connection takes the session over,
a persistent session that keeps what arrived while the client was away.
"""

import json
import threading
from concurrent.futures import Future

from awscrt import mqtt5, mqtt_request_response
from awsiot import ServiceStreamOptions, iotshadow, mqtt5_client_builder

WAIT_S = 60  # a hang guard, not a timing check
# What serve cloud's CONNACK says (src/serve/cloud.rs): AWS IoT Core's
# limits, retained messages, no shared subscriptions.
MAX_PACKET = 128 * 1024 + 1024
TOPIC_ALIAS_MAX = 8


class Mqtt5Client:
    """An SDK MQTT 5 client and the events it saw, as futures and lists."""

    def __init__(self, certs, port, thing, client_id, **options):
        things = certs / "things" / thing
        self.connected = Future()
        self.failed = Future()
        self.disconnected = Future()
        self.received = []
        self.got_message = threading.Event()
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint="localhost",
            port=port,
            cert_filepath=str(things / "certificate.pem.crt"),
            pri_key_filepath=str(things / "private.pem.key"),
            ca_filepath=str(certs / "root-ca.pem"),
            client_id=client_id,
            keep_alive_interval_sec=60,
            on_lifecycle_connection_success=lambda d: _settle(self.connected, d),
            on_lifecycle_connection_failure=lambda d: _settle(self.failed, d),
            on_lifecycle_disconnection=lambda d: _settle(self.disconnected, d),
            on_publish_received=self._on_publish,
            **options,
        )
        self.client.start()

    def _on_publish(self, data):
        packet = data.publish_packet
        self.received.append((packet.topic, bytes(packet.payload)))
        self.got_message.set()

    def stop(self):
        self.client.stop()


def _settle(future, value):
    if not future.done():
        future.set_result(value)


def run(report, certs, port, thing, other, publish_over_http):
    """MQTT 5 checks; `publish_over_http(topic, payload)` publishes as a
    back-end would (boto3's iot-data Publish)."""
    device = Mqtt5Client(certs, port, thing, thing)
    try:
        _checks(report, certs, port, thing, other, device, publish_over_http)
    finally:
        device.stop()  # stopping a stopped client does nothing


def _checks(report, certs, port, thing, other, device, publish_over_http):
    def connect():
        settings = device.connected.result(WAIT_S).negotiated_settings
        seen = {
            "client_id": settings.client_id,
            "maximum_qos": settings.maximum_qos,
            "retain_available": settings.retain_available,
            "subscription_identifiers_available": settings.subscription_identifiers_available,
            "shared_subscriptions_available": settings.shared_subscriptions_available,
            "wildcard_subscriptions_available": settings.wildcard_subscriptions_available,
            "topic_alias_maximum_to_server": settings.topic_alias_maximum_to_server,
            "maximum_packet_size_to_server": settings.maximum_packet_size_to_server,
            "rejoined_session": settings.rejoined_session,
        }
        want = {
            "client_id": thing,
            "maximum_qos": mqtt5.QoS.AT_LEAST_ONCE,
            "retain_available": True,
            "subscription_identifiers_available": False,
            "shared_subscriptions_available": False,
            "wildcard_subscriptions_available": True,
            "topic_alias_maximum_to_server": TOPIC_ALIAS_MAX,
            "maximum_packet_size_to_server": MAX_PACKET,
            "rejoined_session": False,
        }
        return seen == want, f"negotiated {seen}"

    report.run("mqtt5: mTLS connect, CONNACK as AWS IoT's", connect)
    if not device.connected.done():
        return

    shadow = iotshadow.IotShadowClientV2(
        device.client,
        mqtt_request_response.ClientOptions(
            max_request_response_subscriptions=2,
            max_streaming_subscriptions=2,
            operation_timeout_in_seconds=WAIT_S,
        ),
    )
    deltas = Future()
    stream = shadow.create_shadow_delta_updated_stream(
        iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing),
        ServiceStreamOptions(
            incoming_event_listener=lambda e: _settle(deltas, e),
            subscription_status_listener=None,
        ),
    )
    stream.open()
    updated = {}

    def update():
        # The stream's subscription is made in the background: retry the
        # desired state until its delta arrives (each update is a new
        # version; the check is on values).
        for attempt in range(WAIT_S):
            response = shadow.update_shadow(
                iotshadow.UpdateShadowRequest(
                    thing_name=thing,
                    state=iotshadow.ShadowState(desired={"mode": "mqtt5", "attempt": attempt}),
                )
            ).result(WAIT_S)
            updated["version"] = response.version
            try:
                delta = deltas.result(1)
                break
            except Exception:  # noqa: BLE001 - concurrent.futures.TimeoutError: try again
                continue
        else:
            return False, "no delta"
        ok = delta.state.get("mode") == "mqtt5" and delta.version >= 1
        return ok, f"UpdateShadow version {response.version}; delta state {delta.state}, version {delta.version}"

    report.run("mqtt5: IotShadowClientV2 update -> delta, with values", update)

    def get():
        response = shadow.get_shadow(iotshadow.GetShadowRequest(thing_name=thing)).result(WAIT_S)
        desired = response.state.desired or {}
        ok = desired.get("mode") == "mqtt5" and response.version == updated.get("version")
        return ok, f"desired {desired}, version {response.version} (last update {updated.get('version')})"

    report.run("mqtt5: IotShadowClientV2 get returns the last update", get)

    def publish_denied():
        # Another thing's shadow: PUBACK 0x87, and the connection stays.
        denied = device.client.publish(
            mqtt5.PublishPacket(
                topic=f"$aws/things/{other}/shadow/update",
                payload=json.dumps({"state": {"desired": {"mode": "theirs"}}}),
                qos=mqtt5.QoS.AT_LEAST_ONCE,
            )
        ).result(WAIT_S)
        allowed = device.client.publish(
            mqtt5.PublishPacket(
                topic=f"$aws/things/{thing}/shadow/update",
                payload=json.dumps({"state": {"reported": {"mode": "mqtt5"}}}),
                qos=mqtt5.QoS.AT_LEAST_ONCE,
            )
        ).result(WAIT_S)
        codes = (denied.puback.reason_code, allowed.puback.reason_code)
        ok = codes == (mqtt5.PubackReasonCode.NOT_AUTHORIZED, mqtt5.PubackReasonCode.SUCCESS)
        ok = ok and not device.disconnected.done()
        return ok, f"PUBACK reason codes {codes}; still connected: {not device.disconnected.done()}"

    report.run("mqtt5: a publish the policy denies gets PUBACK 0x87, connection kept", publish_denied)

    def subscribe_denied():
        suback = device.client.subscribe(
            mqtt5.SubscribePacket(
                subscriptions=[
                    mqtt5.Subscription(f"$aws/things/{other}/shadow/update/accepted", mqtt5.QoS.AT_LEAST_ONCE),
                    mqtt5.Subscription(f"$aws/things/{thing}/shadow/update/rejected", mqtt5.QoS.AT_LEAST_ONCE),
                ]
            )
        ).result(WAIT_S)
        want = [mqtt5.SubackReasonCode.NOT_AUTHORIZED, mqtt5.SubackReasonCode.GRANTED_QOS_1]
        return suback.reason_codes == want, f"SUBACK reason codes {suback.reason_codes}"

    report.run("mqtt5: a subscription the policy denies gets SUBACK 0x87", subscribe_denied)

    def unsubscribe():
        topic = f"$aws/things/{thing}/shadow/update/rejected"
        first = device.client.unsubscribe(mqtt5.UnsubscribePacket(topic_filters=[topic])).result(WAIT_S)
        again = device.client.unsubscribe(mqtt5.UnsubscribePacket(topic_filters=[topic])).result(WAIT_S)
        codes = (first.reason_codes, again.reason_codes)
        want = ([mqtt5.UnsubackReasonCode.SUCCESS], [mqtt5.UnsubackReasonCode.NO_SUBSCRIPTION_EXISTED])
        return codes == want, f"UNSUBACK reason codes {codes}"

    report.run("mqtt5: unsubscribe, then again (no subscription existed)", unsubscribe)

    def someone_elses_name():
        intruder = Mqtt5Client(certs, port, thing, other)
        try:
            failure = intruder.failed.result(WAIT_S)
        finally:
            intruder.stop()
        code = failure.connack_packet.reason_code if failure.connack_packet else None
        return code == mqtt5.ConnectReasonCode.NOT_AUTHORIZED, f"CONNACK reason code {code}"

    report.run("mqtt5: another thing's name as client id gets CONNACK 0x87", someone_elses_name)

    def taken_over():
        second = Mqtt5Client(certs, port, thing, thing)
        try:
            second.connected.result(WAIT_S)
            gone = device.disconnected.result(WAIT_S)
        finally:
            # The first client would reconnect and take the session back.
            device.stop()
            second.stop()
        code = gone.disconnect_packet.reason_code if gone.disconnect_packet else None
        return code == mqtt5.DisconnectReasonCode.SESSION_TAKEN_OVER, f"DISCONNECT reason code {code}"

    report.run("mqtt5: a second connection takes the session over (DISCONNECT 0x8E)", taken_over)

    def persistent_session():
        topic = f"$aws/things/{thing}/shadow/update/accepted"
        options = dict(
            session_behavior=mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS,
            session_expiry_interval_sec=600,
        )
        first = Mqtt5Client(certs, port, thing, thing, **options)
        try:
            first.connected.result(WAIT_S)
            first.client.subscribe(
                mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(topic, mqtt5.QoS.AT_LEAST_ONCE)])
            ).result(WAIT_S)
        finally:
            first.stop()
        first.disconnected.result(WAIT_S)
        # While the thing is away, a back-end publishes to it.
        publish_over_http(topic, b'{"while":"away"}')
        back = Mqtt5Client(certs, port, thing, thing, **options)
        try:
            rejoined = back.connected.result(WAIT_S).negotiated_settings.rejoined_session
            back.got_message.wait(WAIT_S)
        finally:
            back.stop()
        ok = rejoined is True and (topic, b'{"while":"away"}') in back.received
        return ok, f"rejoined_session={rejoined}; received {back.received}"

    report.run("mqtt5: a persistent session keeps a QoS 1 message while away", persistent_session)
