#!/usr/bin/env python3
"""Conformance suite: the AWS IoT Device SDK v2 for Python (PyPI awsiotsdk
1.31.0 on awscrt 0.36.1) and boto3 1.44.18 (pinned in requirements.txt)
against the live cloud twin, `twinrig serve cloud --certs --https`: the SDK
over MQTT 3.1.1 with mutual TLS as it connects to AWS IoT Core, boto3's
`iot-data` client over HTTP with SigV4 as it calls AWS. Nothing in either is
patched or mocked.

    python suite.py --twinrig PATH_TO_twinrig_BINARY

The suite makes credentials with `twinrig certs`, starts the server itself,
connects with `mqtt_connection_builder.mtls_from_path` (port 8883-style, no
ALPN), drives the Device Shadow service through the SDK's `IotShadowClient`,
then does the same over MQTT 5 (mqtt5.py, the SDK's `IotShadowClientV2`),
prints one line per check (`PASS name: detail` or `FAIL name: detail`) and a
closing `N passed, N failed`, then stops the server with SIGTERM. Exit
status 0 only if every check passed.
"""

import argparse
import hashlib
import json
import urllib.error
import urllib.request

import boto3
from botocore.exceptions import ClientError
import signal
import sqlite3
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from awscrt import mqtt
from awsiot import iotjobs, iotshadow, mqtt_connection_builder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from report import Report  # noqa: E402 - the suites' shared report, one folder up

import mqtt5  # noqa: E402 - this suite's MQTT 5 checks, beside it

THING = "sdk-thing"
OTHER = "other-thing"
FEEDERS = ["feeder-001", "feeder-002"]
# The fleet serve cloud starts with: two pet feeders on 1.0.0, 2.0.0 published.
FLEET_YAML = """\
fleet:
  firmware:
    - { type: pet_feeder, versions: [1.0.0, 2.0.0], size: 64KiB }
  groups:
    - { type: pet_feeder, count: 2, id: "feeder-{n:03}", version: 1.0.0 }
"""
# What serve cloud serves: the fleet, and the rule that keeps job execution
# events in the records store (`--scenario`, with `--state` so the store is
# a file this suite can read).
SCENARIO_YAML = (
    "name: sdk conformance\nseed: 1\nduration_limit: 1min\n"
    + FLEET_YAML
    + "cloud:\n  rules: [job-executions]\nsteps:\n  - delay: 1s\n"
)
IMAGE_BYTES = 64 * 1024
# The CA the HTTPS clients trust (set once the certificates are made).
TRUST = {}
WAIT_S = 60  # a hang guard, not a timing check


def connect(certs, port, thing, client_id, files=None):
    things = certs / "things" / thing
    cert, key = files or (things / "certificate.pem.crt", things / "private.pem.key")
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=port,
        cert_filepath=str(cert),
        pri_key_filepath=str(key),
        ca_filepath=str(certs / "root-ca.pem"),
        client_id=client_id,
        clean_session=True,
        keep_alive_secs=30,
    )
    return connection, connection.connect()


def connects(certs, port, thing, files):
    """Whether the endpoint accepts `thing` with the certificate in `files`."""
    conn, connected = connect(certs, port, thing, thing, files)
    try:
        connected.result(WAIT_S)
    except Exception as e:  # noqa: BLE001 - a refusal is an answer here
        return False, f"{type(e).__name__}"
    conn.disconnect().result(WAIT_S)
    return True, "connected"


class Inbox:
    """The first message of each kind, as futures."""

    def __init__(self):
        self.lock = threading.Lock()
        self.futures = {}

    def future(self, key):
        with self.lock:
            return self.futures.setdefault(key, Future())

    def put(self, key, value):
        f = self.future(key)
        if not f.done():
            f.set_result(value)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--twinrig", required=True)
    args = parser.parse_args()
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="twinrig-aws-iot-sdk-"))
    certs = work / "certs"
    fleet = work / "fleet.yaml"
    fleet.write_text(FLEET_YAML)
    scenario = work / "scenario.yaml"
    scenario.write_text(SCENARIO_YAML)
    state = work / "state"
    made = subprocess.run(
        [
            args.twinrig, "certs", "--out", str(certs), "--thing", THING, "--thing", OTHER,
            "--fleet", str(fleet),
        ],
        capture_output=True,
        text=True,
    )
    detail = f"{len(made.stdout.splitlines())} files" if made.returncode == 0 else made.stderr.strip()
    if not report.check("twinrig certs", made.returncode == 0, detail):
        print(f"{report.passed} passed, {report.failed} failed")
        return 1
    server = subprocess.Popen(
        [
            args.twinrig, "serve", "cloud", "--certs", str(certs), "--mqtt", "127.0.0.1:0",
            "--https", "127.0.0.1:0", "--scenario", str(scenario), "--state", str(state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = server.stdout.readline()
        port = int(ready.split("mqtts://127.0.0.1:")[1].split()[0])
        http = "https://127.0.0.1:" + ready.split("https://127.0.0.1:")[1].split()[0]
        # The HTTPS APIs present the endpoint's certificate, from the local CA.
        TRUST["ca"] = str(certs / "root-ca.pem")
        report.check("serve cloud ready", True, ready.strip())
        run_checks(report, certs, port, http, state / "records.sqlite")
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=WAIT_S)
        report.check(
            "serve cloud stops on SIGTERM",
            server.returncode == 0 and "served the cloud" in out,
            f"exit {server.returncode}: {out.strip()} {err.strip()}",
        )
    print(f"{report.passed} passed, {report.failed} failed")
    return 0 if report.failed == 0 else 1


def iot_data(http, secret="twinrig-local-secret", service="iot-data"):
    return boto3.client(
        service,
        endpoint_url=http,
        region_name="us-east-1",
        aws_access_key_id="twinrig",
        aws_secret_access_key=secret,
        verify=TRUST["ca"],
    )


def fetch(request):
    """urllib over HTTPS, trusting the local CA."""
    return urllib.request.urlopen(
        request, timeout=WAIT_S, context=ssl.create_default_context(cafile=TRUST["ca"])
    )


def run_checks(report, certs, port, http, records):
    connection, connected = connect(certs, port, THING, THING)
    result = connected.result(WAIT_S)
    report.check(
        "mTLS connect as the thing",
        result["session_present"] is False,
        f"CONNACK session_present={result['session_present']}",
    )
    shadow = iotshadow.IotShadowClient(connection)
    inbox = Inbox()
    subscriptions = [
        shadow.subscribe_to_update_shadow_accepted(
            iotshadow.UpdateShadowSubscriptionRequest(thing_name=THING),
            mqtt.QoS.AT_LEAST_ONCE,
            lambda r: inbox.put(("accepted", r.version), r),
        ),
        shadow.subscribe_to_shadow_delta_updated_events(
            iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=THING),
            mqtt.QoS.AT_LEAST_ONCE,
            lambda e: inbox.put(("delta", e.version), e),
        ),
        shadow.subscribe_to_get_shadow_accepted(
            iotshadow.GetShadowSubscriptionRequest(thing_name=THING),
            mqtt.QoS.AT_LEAST_ONCE,
            lambda r: inbox.put("get", r),
        ),
    ]
    # IotShadowClient's subscribe futures resolve to the granted QoS.
    granted = [f.result(WAIT_S) for f, _topic in subscriptions]
    report.check(
        "subscribe to the shadow topics",
        granted == [mqtt.QoS.AT_LEAST_ONCE] * 3,
        f"granted {granted}",
    )

    def desired():
        shadow.publish_update_shadow(
            iotshadow.UpdateShadowRequest(
                thing_name=THING,
                state=iotshadow.ShadowState(desired={"color": "green", "speed": 3}),
            ),
            mqtt.QoS.AT_LEAST_ONCE,
        ).result(WAIT_S)
        accepted = inbox.future(("accepted", 1)).result(WAIT_S)
        delta = inbox.future(("delta", 1)).result(WAIT_S)
        ok = (
            accepted.state.desired == {"color": "green", "speed": 3}
            and delta.state == {"color": "green", "speed": 3}
        )
        return ok, f"accepted v{accepted.version} desired={accepted.state.desired}; delta {delta.state}"

    report.run("update desired, get the delta", desired)

    def reported():
        shadow.publish_update_shadow(
            iotshadow.UpdateShadowRequest(
                thing_name=THING,
                state=iotshadow.ShadowState(reported={"color": "green"}),
            ),
            mqtt.QoS.AT_LEAST_ONCE,
        ).result(WAIT_S)
        accepted = inbox.future(("accepted", 2)).result(WAIT_S)
        return accepted.state.reported == {"color": "green"}, f"accepted v{accepted.version}"

    report.run("report part of it", reported)

    def get():
        shadow.publish_get_shadow(
            iotshadow.GetShadowRequest(thing_name=THING), mqtt.QoS.AT_LEAST_ONCE
        ).result(WAIT_S)
        doc = inbox.future("get").result(WAIT_S)
        ok = (
            doc.version == 2
            and doc.state.desired == {"color": "green", "speed": 3}
            and doc.state.reported == {"color": "green"}
            and doc.state.delta == {"speed": 3}
        )
        return ok, f"v{doc.version} desired={doc.state.desired} reported={doc.state.reported} delta={doc.state.delta}"

    report.run("GetThingShadow shows what is left", get)

    def boto3_update():
        # An operator's UpdateThingShadow over HTTP reaches the device over MQTT.
        body = iot_data(http).update_thing_shadow(
            thingName=THING, payload=json.dumps({"state": {"desired": {"speed": 5}}})
        )
        accepted = json.loads(body["payload"].read())
        delta = inbox.future(("delta", 3)).result(WAIT_S)
        ok = accepted["version"] == 3 and delta.state == {"speed": 5}
        return ok, f"HTTP accepted v{accepted['version']}; MQTT delta v{delta.version} {delta.state}"

    report.run("boto3 UpdateThingShadow reaches the device", boto3_update)

    def boto3_get():
        doc = json.loads(iot_data(http).get_thing_shadow(thingName=THING)["payload"].read())
        ok = doc["version"] == 3 and doc["state"]["reported"] == {"color": "green"}
        return ok, f"v{doc['version']} state {doc['state']}"

    report.run("boto3 GetThingShadow", boto3_get)

    def boto3_errors():
        codes = []
        try:
            iot_data(http).get_thing_shadow(thingName="no-such-thing")
        except ClientError as e:
            codes.append((e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]))
        try:
            iot_data(http, secret="not-the-secret").get_thing_shadow(thingName=THING)
        except ClientError as e:
            codes.append((e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]))
        want = [("ResourceNotFoundException", 404), ("InvalidSignatureException", 403)]
        return codes == want, f"{codes}"

    report.run("boto3 sees AWS's errors (unknown shadow, wrong secret)", boto3_errors)

    iot = iot_data(http, service="iot")
    jobs = iotjobs.IotJobsClient(connection)
    started = Inbox()
    update_futures = [
        jobs.subscribe_to_start_next_pending_job_execution_accepted(
            iotjobs.StartNextPendingJobExecutionSubscriptionRequest(thing_name=THING),
            mqtt.QoS.AT_LEAST_ONCE,
            lambda r: started.put("started", r),
        )[0],
        jobs.subscribe_to_update_job_execution_accepted(
            iotjobs.UpdateJobExecutionSubscriptionRequest(thing_name=THING, job_id="ota-1"),
            mqtt.QoS.AT_LEAST_ONCE,
            lambda r: started.put("updated", r),
        )[0],
    ]
    for f in update_futures:
        f.result(WAIT_S)
    document = {"operation": "ota", "version": "2.0.0"}

    def create_job():
        created = iot.create_job(
            jobId="ota-1",
            targets=[f"arn:aws:iot:us-east-1:123456789012:thing/{THING}"],
            document=json.dumps(document),
            description="firmware 2.0.0",
        )
        job = iot.describe_job(jobId="ota-1")["job"]
        ok = created["jobArn"].endswith(":job/ota-1") and job["status"] == "IN_PROGRESS"
        return ok, f"{created['jobArn']}; {job['status']}"

    report.run("boto3 CreateJob and DescribeJob", create_job)

    def start_next():
        jobs.publish_start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(thing_name=THING), mqtt.QoS.AT_LEAST_ONCE
        ).result(WAIT_S)
        execution = started.future("started").result(WAIT_S).execution
        ok = (
            execution.job_id == "ota-1"
            and execution.status == "IN_PROGRESS"
            and execution.job_document == document
        )
        return ok, f"{execution.job_id} {execution.status} {execution.job_document}"

    report.run("the device starts the next pending job", start_next)

    def succeed():
        jobs.publish_update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name=THING, job_id="ota-1", status=iotjobs.JobStatus.SUCCEEDED
            ),
            mqtt.QoS.AT_LEAST_ONCE,
        ).result(WAIT_S)
        started.future("updated").result(WAIT_S)
        execution = iot.describe_job_execution(jobId="ota-1", thingName=THING)["execution"]
        job = iot.describe_job(jobId="ota-1")["job"]
        ok = (
            execution["status"] == "SUCCEEDED"
            and job["status"] == "COMPLETED"
            and job["jobProcessDetails"]["numberOfSucceededThings"] == 1
        )
        return ok, f"execution {execution['status']}; job {job['status']} {job['jobProcessDetails']}"

    report.run("SUCCEEDED on the device is SUCCEEDED in the control plane", succeed)

    def registry():
        # The things `twinrig certs` attached certificates to are registered.
        iot.create_thing_type(thingTypeName="pet_feeder")
        made = iot.create_thing(
            thingName="feeder-099",
            thingTypeName="pet_feeder",
            attributePayload={"attributes": {"room": "kitchen"}},
        )
        again = iot.create_thing(
            thingName="feeder-099",
            thingTypeName="pet_feeder",
            attributePayload={"attributes": {"room": "kitchen"}},
        )
        described = iot.describe_thing(thingName="feeder-099")
        kitchen = iot.list_things(attributeName="room", attributeValue="kitchen")["things"]
        pages = iot.get_paginator("list_things").paginate(PaginationConfig={"PageSize": 1})
        names = [t["thingName"] for page in pages for t in page["things"]]
        ok = (
            made["thingArn"] == "arn:aws:iot:us-east-1:123456789012:thing/feeder-099"
            and again["thingId"] == made["thingId"]
            and described["thingTypeName"] == "pet_feeder"
            and described["attributes"] == {"room": "kitchen"}
            and described["version"] == 1
            and [t["thingName"] for t in kitchen] == ["feeder-099"]
            and names == FEEDERS + ["feeder-099", OTHER, THING]
        )
        return ok, f"{made['thingArn']}; attribute match {[t['thingName'] for t in kitchen]}; paged {names}"

    report.run("boto3 CreateThing, DescribeThing, ListThings (filter, pages)", registry)

    def groups():
        iot.create_thing_group(
            thingGroupName="feeders", thingGroupProperties={"thingGroupDescription": "all feeders"}
        )
        iot.create_thing_group(thingGroupName="kitchen-feeders", parentGroupName="feeders")
        iot.add_thing_to_thing_group(thingGroupName="feeders", thingName=THING)
        iot.add_thing_to_thing_group(
            thingGroupArn="arn:aws:iot:us-east-1:123456789012:thinggroup/kitchen-feeders",
            thingArn=f"arn:aws:iot:us-east-1:123456789012:thing/{OTHER}",
        )
        listed = [g["groupName"] for g in iot.list_thing_groups()["thingGroups"]]
        children = [g["groupName"] for g in iot.list_thing_groups(parentGroup="feeders")["thingGroups"]]
        flat = iot.list_things_in_thing_group(thingGroupName="feeders")["things"]
        deep = iot.list_things_in_thing_group(thingGroupName="feeders", recursive=True)["things"]
        ok = (
            listed == ["feeders", "kitchen-feeders", "pet_feeder"]
            and children == ["kitchen-feeders"]
            and flat == [THING]
            and sorted(deep) == sorted([THING, OTHER])
        )
        return ok, f"groups {listed}; children {children}; things {flat}, recursive {deep}"

    report.run("boto3 thing groups (create, nest, add, list)", groups)

    def registry_errors():
        seen = []
        for call in (
            lambda: iot.create_thing(thingName="x", thingTypeName="no_such_type"),
            lambda: iot.describe_thing(thingName="nobody"),
            lambda: iot.create_thing_group(
                thingGroupName="feeders", thingGroupProperties={"thingGroupDescription": "other"}
            ),
            lambda: iot.add_thing_to_thing_group(thingGroupName="nowhere", thingName=THING),
            lambda: iot.create_thing(thingName="bad name"),
            lambda: iot.create_job(
                jobId="no-such-image",
                targets=[f"arn:aws:iot:us-east-1:123456789012:thing/{THING}"],
                document=json.dumps({"url": "${aws:iot:s3-presigned-url-v2:https://s3.us-east-1.amazonaws.com/b/pet_feeder/9.9.9/firmware.bin}"}),
            ),
            lambda: iot.create_job(
                jobId="too-short",
                targets=[f"arn:aws:iot:us-east-1:123456789012:thing/{THING}"],
                document="{}",
                presignedUrlConfig={"expiresInSec": 7200},
            ),
        ):
            try:
                call()
                seen.append("accepted")
            except ClientError as e:
                seen.append(e.response["Error"]["Code"])
        want = [
            "ResourceNotFoundException",
            "ResourceNotFoundException",
            "ResourceAlreadyExistsException",
            "ResourceNotFoundException",
            "InvalidRequestException",
            "InvalidRequestException",
            "InvalidRequestException",
        ]
        return seen == want, ", ".join(seen)

    report.run("boto3 sees the registry's errors", registry_errors)

    def group_job():
        # A job on a thing group reaches its things and its subgroups' things.
        iot.create_job(
            jobId="ota-2",
            targets=["arn:aws:iot:us-east-1:123456789012:thinggroup/feeders"],
            document=json.dumps(document),
        )
        listed = iot.list_job_executions_for_job(jobId="ota-2")["executionSummaries"]
        running = [j["jobId"] for j in iot.list_jobs(status="IN_PROGRESS")["jobs"]]
        every = [j["jobId"] for j in iot.list_jobs()["jobs"]][:2]
        things = sorted(e["thingArn"].rsplit("/", 1)[1] for e in listed)
        ok = things == sorted([THING, OTHER]) and running == ["ota-2"] and every == ["ota-1", "ota-2"]
        return ok, f"executions for {things}; in progress {running}; all {every}"

    report.run("boto3 CreateJob on a thing group, ListJobs", group_job)

    def cancel():
        iot.cancel_job(jobId="ota-2", reasonCode="OPERATOR", comment="not today")
        job = iot.describe_job(jobId="ota-2")["job"]
        canceled = iot.list_job_executions_for_job(jobId="ota-2", status="CANCELED")["executionSummaries"]
        ok = (
            job["status"] == "CANCELED"
            and job["reasonCode"] == "OPERATOR"
            and job["comment"] == "not today"
            and len(canceled) == 2
        )
        return ok, f"job {job['status']} {job['reasonCode']!r} {job['comment']!r}; {len(canceled)} executions CANCELED"

    report.run("boto3 CancelJob", cancel)

    def endpoint():
        address = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
        return address == "localhost", address

    report.run("boto3 DescribeEndpoint names the certificate's host", endpoint)

    ota_flow(report, certs, port, iot, iot_data(http), records)
    provisioning(report, certs, port, iot)

    def other_topics():
        # The default policy: another thing's shadow is not this thing's to read.
        future, _ = connection.subscribe(
            f"$aws/things/{OTHER}/shadow/update/accepted", mqtt.QoS.AT_LEAST_ONCE, lambda **kw: None
        )
        try:
            result = future.result(WAIT_S)
        except Exception as e:  # noqa: BLE001 - awscrt reports a failure code as an error
            return True, f"{type(e).__name__}: {e}"
        # Or as a SUBACK without a granted QoS.
        return result["qos"] is None, f"SUBACK {result}"

    report.run("another thing's shadow is refused", other_topics)
    connection.disconnect().result(WAIT_S)

    # The same thing over MQTT 5 (its own connection: one client id, one
    # connection at a time).
    data = iot_data(http)
    mqtt5.run(
        report, certs, port, THING, OTHER,
        lambda topic, payload: data.publish(topic=topic, qos=1, payload=payload),
    )

    def someone_else():
        # The thing's certificate with another thing's name as client id.
        conn, connected = connect(certs, port, THING, OTHER)
        try:
            connected.result(WAIT_S)
            conn.disconnect().result(WAIT_S)
            return False, "connected"
        except Exception as e:  # noqa: BLE001 - the refusal is what is checked
            return True, f"{type(e).__name__}: {e}"

    report.run("connect under another thing's name is refused", someone_else)


def ota_flow(report, certs, port, iot, data, records):
    """An OTA job as AWS IoT runs one: the fleet's group as target, the image
    behind an S3 presigned-URL placeholder; a device takes the job over MQTT,
    downloads the image over HTTP, reports its version and succeeds; job
    execution events, enabled with boto3, reach the records store through
    the scenario's rule."""

    def events_enabled():
        iot.update_event_configurations(eventConfigurations={"JOB_EXECUTION": {"Enabled": True}})
        described = iot.describe_event_configurations()["eventConfigurations"]
        enabled = sorted(t for t, c in described.items() if c["Enabled"])
        try:
            iot.update_event_configurations(eventConfigurations={"THING": {"Enabled": True}})
            refused = "accepted"
        except ClientError as e:
            refused = e.response["Error"]["Code"]
        ok = enabled == ["JOB_EXECUTION"] and len(described) == 11 and refused == "InvalidRequestException"
        return ok, f"enabled {enabled} of {len(described)}; enabling THING: {refused}"

    report.run("boto3 UpdateEventConfigurations enables job execution events", events_enabled)

    def fleet_registered():
        groups = [g["groupName"] for g in iot.list_thing_groups()["thingGroups"]]
        members = iot.list_things_in_thing_group(thingGroupName="pet_feeder")["things"]
        typed = [t["thingName"] for t in iot.list_things(thingTypeName="pet_feeder")["things"]]
        # feeder-099 was made of that type by the registry check above.
        ok = "pet_feeder" in groups and sorted(members) == FEEDERS and typed == FEEDERS + ["feeder-099"]
        return ok, f"group pet_feeder: {members}; type pet_feeder: {typed}"

    report.run("the fleet file's devices are things in their type's group", fleet_registered)

    s3 = "https://s3.us-east-1.amazonaws.com/fw-bucket/pet_feeder/2.0.0/firmware.bin"
    document = {
        "operation": "ota",
        "deviceType": "pet_feeder",
        "version": "2.0.0",
        "url": "${aws:iot:s3-presigned-url-v2:" + s3 + "}",
    }

    def create():
        iot.create_job(
            jobId="ota-fw",
            targets=["arn:aws:iot:us-east-1:123456789012:thinggroup/pet_feeder"],
            document=json.dumps(document),
            presignedUrlConfig={
                "roleArn": "arn:aws:iam::123456789012:role/ota", "expiresInSec": 600,
            },
        )
        listed = iot.list_job_executions_for_job(jobId="ota-fw")["executionSummaries"]
        things = sorted(e["thingArn"].rsplit("/", 1)[1] for e in listed)
        return things == FEEDERS, f"executions for {things}"

    report.run("boto3 CreateJob with a presigned-URL placeholder on the fleet's group", create)

    device = FEEDERS[0]
    connection, connected = connect(certs, port, device, device)
    connected.result(WAIT_S)
    jobs = iotjobs.IotJobsClient(connection)
    shadow = iotshadow.IotShadowClient(connection)
    inbox = Inbox()
    for f in [
        jobs.subscribe_to_start_next_pending_job_execution_accepted(
            iotjobs.StartNextPendingJobExecutionSubscriptionRequest(thing_name=device),
            mqtt.QoS.AT_LEAST_ONCE,
            lambda r: inbox.put("started", r),
        )[0],
        jobs.subscribe_to_update_job_execution_accepted(
            iotjobs.UpdateJobExecutionSubscriptionRequest(thing_name=device, job_id="ota-fw"),
            mqtt.QoS.AT_LEAST_ONCE,
            lambda r: inbox.put("updated", r),
        )[0],
        shadow.subscribe_to_update_shadow_accepted(
            iotshadow.UpdateShadowSubscriptionRequest(thing_name=device),
            mqtt.QoS.AT_LEAST_ONCE,
            lambda r: inbox.put("reported", r),
        )[0],
    ]:
        f.result(WAIT_S)
    got = {}

    def start_and_download():
        jobs.publish_start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(thing_name=device), mqtt.QoS.AT_LEAST_ONCE
        ).result(WAIT_S)
        execution = inbox.future("started").result(WAIT_S).execution
        url = execution.job_document["url"]
        with fetch(url) as r:
            image = r.read()
            etag = r.headers["ETag"].strip('"')
        got["url"], got["image"] = url, image
        digest = hashlib.sha256(image).hexdigest()
        # The ota-client image header (devices/ota-client/src/image.rs).
        magic, device_type, major, minor, patch, body = struct.unpack_from("<4s4x32sHHH2xI", image)
        header = (magic, device_type.rstrip(b"\0"), (major, minor, patch), body)
        ok = (
            execution.job_id == "ota-fw"
            and url.startswith("https://127.0.0.1:")
            and "X-Amz-Signature=" in url
            and "X-Amz-Expires=600" in url
            and header == (b"TWFW", b"pet_feeder", (2, 0, 0), IMAGE_BYTES)
            and len(image) == 64 + IMAGE_BYTES
            and digest == etag
        )
        return ok, f"{url.split('?')[0]}: {len(image)} bytes, header {header}, sha256 {digest[:16]}... = ETag"

    report.run("the device starts the job and downloads the presigned image", start_and_download)

    def resume_and_refusals():
        url = got["url"]
        ranged = urllib.request.Request(url, headers={"Range": "bytes=60000-"})
        with fetch(ranged) as r:
            tail, status, span = r.read(), r.status, r.headers["Content-Range"]
        codes = []
        forged = url[:-1] + ("0" if url[-1] != "0" else "1")
        unknown = url.replace("/2.0.0/", "/9.9.9/")
        for bad in (forged, unknown):
            try:
                fetch(bad)
                codes.append("accepted")
            except urllib.error.HTTPError as e:
                codes.append(f"{e.code} {e.read().decode().split('<Code>')[1].split('<')[0]}")
        ok = (
            status == 206
            and span == f"bytes 60000-{63 + IMAGE_BYTES}/{64 + IMAGE_BYTES}"
            and tail == got["image"][60000:]
            and codes == ["403 SignatureDoesNotMatch", "403 SignatureDoesNotMatch"]
        )
        return ok, f"Range: {status} {span}; forged, edited: {codes}"

    report.run("a download resumes with Range; edited URLs are refused", resume_and_refusals)

    def report_and_succeed():
        shadow.publish_update_shadow(
            iotshadow.UpdateShadowRequest(
                thing_name=device,
                state=iotshadow.ShadowState(reported={"firmware": "2.0.0"}),
            ),
            mqtt.QoS.AT_LEAST_ONCE,
        ).result(WAIT_S)
        inbox.future("reported").result(WAIT_S)
        jobs.publish_update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name=device,
                job_id="ota-fw",
                status=iotjobs.JobStatus.SUCCEEDED,
                status_details={"sha256": hashlib.sha256(got["image"]).hexdigest()},
            ),
            mqtt.QoS.AT_LEAST_ONCE,
        ).result(WAIT_S)
        inbox.future("updated").result(WAIT_S)
        execution = iot.describe_job_execution(jobId="ota-fw", thingName=device)["execution"]
        summaries = iot.list_job_executions_for_job(jobId="ota-fw")["executionSummaries"]
        by_thing = {
            e["thingArn"].rsplit("/", 1)[1]: e["jobExecutionSummary"]["status"] for e in summaries
        }
        reported = json.loads(data.get_thing_shadow(thingName=device)["payload"].read())
        firmware = reported["state"]["reported"]["firmware"]
        row = job_execution_record(records, execution["thingArn"])
        ok = (
            execution["status"] == "SUCCEEDED"
            and execution["statusDetails"]["detailsMap"]["sha256"] == hashlib.sha256(got["image"]).hexdigest()
            and by_thing == {FEEDERS[0]: "SUCCEEDED", FEEDERS[1]: "QUEUED"}
            and firmware == "2.0.0"
            and row is not None
            and row["jobId"] == "ota-fw"
            and row["status"] == execution["status"]
            and row["statusDetails"] == execution["statusDetails"]["detailsMap"]
        )
        return ok, f"executions {by_thing}; shadow reported.firmware {firmware}; jobExecutions record {row}"

    report.run("the execution, the other device's, the shadow and the records store agree", report_and_succeed)
    connection.disconnect().result(WAIT_S)


def job_execution_record(records, thing_arn):
    """The `jobExecutions` row for a thing in serve's records store (SQLite,
    written as records are made; the event reaches it through the broker
    and the rule, so it may come a moment after the execution's update)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if records.exists():
            with sqlite3.connect(f"file:{records}?mode=ro", uri=True) as db:
                row = db.execute(
                    "SELECT body FROM records WHERE kind = 'jobExecutions' AND key = ? ORDER BY id DESC",
                    (thing_arn,),
                ).fetchone()
            if row:
                return json.loads(row[0])
        time.sleep(0.1)
    return None


# A thing's own topics, as a fleet provisioning template would grant them.
THING_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}",
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": "arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/*",
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": "arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/*",
        },
    ],
}


def provisioning(report, certs, port, iot):
    """A new device provisioned as on AWS: boto3 makes its thing, keys and
    certificate, attaches them and a policy; the SDK connects with them only
    once all of that is done, and not after the certificate is revoked."""
    thing = "provisioned-001"
    files = (certs / "provisioned.pem.crt", certs / "provisioned.pem.key")
    made = {}

    def create():
        iot.create_thing(thingName=thing)
        keys = iot.create_keys_and_certificate(setAsActive=True)
        files[0].write_text(keys["certificatePem"])
        files[1].write_text(keys["keyPair"]["PrivateKey"])
        made.update(keys)
        described = iot.describe_certificate(certificateId=keys["certificateId"])
        status = described["certificateDescription"]["status"]
        ok = (
            keys["certificateArn"].endswith(":cert/" + keys["certificateId"])
            and len(keys["certificateId"]) == 64
            and keys["keyPair"]["PrivateKey"].startswith("-----BEGIN PRIVATE KEY-----")
            and status == "ACTIVE"
        )
        return ok, f"certificate {keys['certificateId'][:16]}... {status}"

    report.run("boto3 CreateKeysAndCertificate", create)

    def unattached():
        # ACTIVE, but attached to no thing and given no policy: refused.
        connected, detail = connects(certs, port, thing, files)
        return not connected, detail

    report.run("a certificate without thing or policy cannot connect", unattached)

    def attached():
        iot.attach_thing_principal(thingName=thing, principal=made["certificateArn"])
        iot.create_policy(policyName="provisioned-thing", policyDocument=json.dumps(THING_POLICY))
        iot.attach_policy(policyName="provisioned-thing", target=made["certificateArn"])
        principals = iot.list_thing_principals(thingName=thing)["principals"]
        connected, detail = connects(certs, port, thing, files)
        return connected and principals == [made["certificateArn"]], f"{detail}; principals {principals}"

    report.run("AttachThingPrincipal + CreatePolicy + AttachPolicy: it connects", attached)

    def revoked():
        iot.update_certificate(certificateId=made["certificateId"], newStatus="REVOKED")
        connected, detail = connects(certs, port, thing, files)
        try:
            iot.update_certificate(certificateId=made["certificateId"], newStatus="ACTIVE")
            code = "accepted"
        except ClientError as e:
            code = e.response["Error"]["Code"]
        return not connected and code == "CertificateStateException", f"{detail}; re-activate: {code}"

    report.run("UpdateCertificate REVOKED: refused, for good", revoked)


if __name__ == "__main__":
    sys.exit(main())
