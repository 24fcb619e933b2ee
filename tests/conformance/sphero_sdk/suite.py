#!/usr/bin/env python3
"""Conformance suite: Sphero's official Python SDK, unmodified, against the RVR twin.

Runs `twinrig serve rvr --pty`, connects `SpheroRvrAsync(dal=SerialAsyncDal(...))`
(sphero-sdk 0.3.4.post2 from PyPI, asyncio API) to the printed pseudo-terminal
and calls every command of the SDK at least once, asserting the values against
the twin's documented state (its defaults in sim/src/robots/rvr/config.rs):

    python suite.py --twinrig target/debug/twinrig

One line per check (`PASS name: detail` / `FAIL name: detail`), then
`N passed, N failed`; exit status 0 only if every check passed.

Notes on the pinned SDK (bugs of 0.3.4.post2, worked around here without
patching it):

* `get_core_up_time_in_milliseconds` always raises AttributeError inside the
  SDK: its `Message.unpack` calls `Unpack.uint64`, which does not exist. The
  suite checks that, then sends the same command through the SDK's
  lower-level handler (`dal.handler.send_command`) and unpacks the u64 itself.
* Its streaming ranges predate Sphero's fix "Fixed ranges for sensor
  streaming data" (sphero-sdk-raspberrypi-python commit 1336a3c,
  2019-11-13), never released to PyPI: it decodes Locator and Velocity over
  the int32 range, Speed over 0..2.0068307 and CoreTime over 0..int64max. The
  twin encodes the firmware's ranges (Locator +-16000 m, Velocity +-5 m/s,
  Speed 0..5 m/s, CoreTime words as raw u32), so the suite turns the SDK's
  numbers back into raw integers and those into units (`from_sdk_*` below).
* Commands without outputs get no response in the SDK (it sets
  requests-response only when a command has outputs). To see whether the twin
  accepted one, the suite also sends it through the SDK's handler with
  requests-response set (`confirm`), which raises on an error code.
* The constructor's firmware check asks both processors for their version,
  then the Sphero CMS over HTTPS; offline that fails at once ("CMS Request
  Connection Error") and the SDK carries on. If the CMS answers with a newer
  version, the SDK prints a warning and waits for a key on stdin (`input()`),
  so run the suite offline or with stdin at hand.

The streaming and drive checks compare counts and distances over wall-clock
windows: serve paces virtual time by the wall clock, so they hold on an idle
machine and may need a retry on a badly overloaded one.
"""

import argparse
import asyncio
import os
import re
import signal
import struct
import subprocess
import sys
import time

from sphero_sdk import SerialAsyncDal, SpheroRvrAsync
from sphero_sdk.common.commands import drive as drive_commands
from sphero_sdk.common.commands import io as io_commands
from sphero_sdk.common.commands import power as power_commands
from sphero_sdk.common.commands import sensor as sensor_commands
from sphero_sdk.common.commands import system_info as system_info_commands
from sphero_sdk.common.protocol.api_sphero_message import Message

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from report import Report  # noqa: E402 - the suites' shared report, one folder up

NORDIC, ST = 1, 2
TIMEOUT = 2.0
U32_MAX = 2**32 - 1
I32_MIN = -(2**31)
I64_MAX = 2**63 - 1

# The twin's defaults (sim/src/robots/rvr/config.rs; "assumed" there unless sourced).
TWIN = {
    "nordic_version": {"major": 8, "minor": 3, "revision": 432},
    "st_version": {"major": 8, "minor": 6, "revision": 448},
    "bootloader": {"major": 4, "minor": 0, "revision": 0},
    "nordic_name": "Nordic",
    "st_name": "ST",
    "board_revision": 1,
    "mac_address": "C0:FF:EE:52:56:52",
    "stats_id": 0,
    "sku": "RV01",
    "bluetooth_name": "RV-5256",
    "ambient_lux": 300.0,
    # Battery: 100 % at power-on, 8.35 V open circuit, 0.15 ohm, 150 mA idle.
    "idle_volts": 8.35 - 0.150 * 0.15,
    "thresholds": (6.6, 7.0, 0.1),
    "floor_rgb": (230, 230, 230),
    # The floor against the default palette: white (index 3), confidence
    # 255 * (1 - 25 * sqrt(3) / 120) = 163.
    "floor_class": 3,
    "floor_confidence": 163,
    "palette_entries": 8,
    "motor_ambient_c": 25.0,
    # Drive: drive_with_heading speed s -> s / 255 * 2.0 m/s (the linear
    # limit); raw_motors duty d -> d / 255 * 1.555 m/s per tread; treads
    # ramp at 4 m/s^2; 0.9 A per motor at full tread speed (1.555 m/s).
    "max_linear": 2.0,
    "max_tread": 1.555,
    "tread_accel": 4.0,
    "full_speed_amps": 0.9,
}


# ---------------------------------------------------------------- the twin


def device_of(ready_line):
    """The pty path in serve's first line, e.g. "RVR twin on /dev/pts/7 (...)"."""
    match = re.search(r" on (\S+)", ready_line)
    if not match:
        raise RuntimeError(f"no device in serve's ready line: {ready_line!r}")
    return match.group(1)


def final_pose_of(summary):
    """(x, y, yaw_deg) from serve's closing summary line."""
    match = re.search(r"now at x (-?[\d.]+) m, y (-?[\d.]+) m, yaw (-?[\d.]+) deg", summary)
    if not match:
        raise RuntimeError(f"no final pose in serve's summary: {summary!r}")
    return tuple(float(v) for v in match.groups())


class Serve:
    """`twinrig serve rvr --pty` as a subprocess."""

    def __init__(self, twinrig):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [twinrig, "serve", "rvr", "--pty"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready_line = self.proc.stdout.readline().strip()
        self.ready = time.monotonic()
        if not self.ready_line:
            raise RuntimeError(f"serve printed nothing: {self.proc.stderr.read()}")
        self.device = device_of(self.ready_line)

    def stop(self):
        """SIGTERM, then (exit code, stdout after the ready line, stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out.strip(), err.strip()


# ---------------------------------------------------------------- checks


async def confirm(rvr, command):
    """Sends an SDK command dict through the SDK's handler asking for a
    response; returns the response body (raises with the error code's name)."""
    message = Message()
    message.did = command["did"]
    message.cid = command["cid"]
    message.seq = command["seq"]
    message.target = command["target"]
    message.is_activity = True
    message.requests_response = True
    for param in command.get("inputs", []):
        message.pack(param.data_type, param.value)
    return await rvr._dal.handler.send_command(
        message, response_handler=lambda m: bytes(m.unpack_bytes()), timeout=TIMEOUT
    )


async def accepted(checks, name, rvr, command):
    try:
        await confirm(rvr, command)
        return checks.check(name, True, "the twin answered success")
    except Exception as exc:  # the SDK raises a bare Exception(error name)
        return checks.error(name, exc)


async def refused(checks, name, rvr, command, code):
    try:
        await confirm(rvr, command)
        return checks.check(name, False, f"accepted; want {code}")
    except Exception as exc:
        return checks.equal(name, str(exc), code)


# The pinned SDK's ranges -> raw integers -> the firmware's ranges (see the
# module docs, commit 1336a3c).


def from_sdk_int32_range(value, low, high):
    raw = value - I32_MIN
    return low + raw / U32_MAX * (high - low)


def from_sdk_speed(value):
    return value / 2.0068307 * 5.0


def from_sdk_core_time(upper, lower):
    word = lambda v: round(v / I64_MAX * U32_MAX)  # noqa: E731
    return (word(upper) << 32) | word(lower)


class Recorder:
    """Collects every notification the SDK routes to a handler."""

    def __init__(self):
        self.events = {}

    def handler(self, name):
        async def record(*args):
            self.events.setdefault(name, []).append((time.monotonic(), args[0] if args else None))

        return record

    def of(self, name):
        return self.events.get(name, [])


# ---------------------------------------------------------------- the suite


async def identity(c, rvr):
    for target, key, name in [(NORDIC, "nordic_version", "nordic_name"), (ST, "st_version", "st_name")]:
        tag = "nordic" if target == NORDIC else "st"
        c.equal(f"get_main_application_version[{tag}]",
                await rvr.get_main_application_version(target=target, timeout=TIMEOUT), TWIN[key])
        c.equal(f"get_bootloader_version[{tag}]",
                await rvr.get_bootloader_version(target=target, timeout=TIMEOUT), TWIN["bootloader"])
        c.equal(f"get_processor_name[{tag}]",
                await rvr.get_processor_name(target=target, timeout=TIMEOUT), {"name": TWIN[name]})
    c.equal("get_board_revision", await rvr.get_board_revision(timeout=TIMEOUT),
            {"revision": TWIN["board_revision"]})
    c.equal("get_mac_address", await rvr.get_mac_address(timeout=TIMEOUT),
            {"macAddress": TWIN["mac_address"]})
    c.equal("get_stats_id", await rvr.get_stats_id(timeout=TIMEOUT), {"statsId": TWIN["stats_id"]})
    c.equal("get_sku", await rvr.get_sku(timeout=TIMEOUT), {"sku": TWIN["sku"]})
    c.equal("get_bluetooth_advertising_name", await rvr.get_bluetooth_advertising_name(timeout=TIMEOUT),
            {"name": TWIN["bluetooth_name"]})
    for target in (NORDIC, ST):
        # The framing bytes (SOP 8D, EOP D8, ESC AB) must survive escaping.
        data = [0x8D, 0xD8, 0xAB, 0x00, 0x01, 0xFF, 0x42]
        got = await rvr.echo(list(data), target=target, timeout=TIMEOUT)
        c.equal(f"echo[{'nordic' if target == NORDIC else 'st'}]", got, {"data": data})
    sixteen = list(range(0x80, 0x90))
    c.equal("echo 16 bytes", await rvr.echo(list(sixteen), target=NORDIC, timeout=TIMEOUT),
            {"data": sixteen})


async def up_time(c, rvr, serve):
    try:
        await rvr.get_core_up_time_in_milliseconds(timeout=TIMEOUT)
        c.check("get_core_up_time_in_milliseconds (SDK bug)", False, "the SDK decoded a uint64")
    except AttributeError as exc:
        c.check("get_core_up_time_in_milliseconds (SDK bug)", "uint64" in str(exc),
                f"the SDK raises AttributeError ({exc}) whatever the robot sends")
    command = system_info_commands.get_core_up_time_in_milliseconds(target=NORDIC, timeout=TIMEOUT)
    before = time.monotonic()
    body = await confirm(rvr, command)
    after = time.monotonic()
    c.equal("up time is a u64", len(body), 8)
    (ms,) = struct.unpack(">Q", body)
    # Virtual time follows the wall clock from the world's start, which lies
    # between launching serve and its ready line.
    low = (before - serve.ready) * 1000 - 50
    high = (after - serve.started) * 1000 + 50
    c.between("up time in virtual ms since power-on", ms, low, high)
    return ms


async def power(c, rvr):
    c.equal("get_battery_percentage", await rvr.get_battery_percentage(timeout=TIMEOUT), {"percentage": 100})
    c.equal("get_battery_voltage_state", await rvr.get_battery_voltage_state(timeout=TIMEOUT), {"state": 1})
    for reading in (0, 1, 2):
        got = await rvr.get_battery_voltage_in_volts(reading_type=reading, timeout=TIMEOUT)
        c.near(f"get_battery_voltage_in_volts[{reading}]", got["voltage"], TWIN["idle_volts"], 0.005)
    got = await rvr.get_battery_voltage_state_thresholds(timeout=TIMEOUT)
    critical, low, hysteresis = TWIN["thresholds"]
    c.check("get_battery_voltage_state_thresholds",
            abs(got["criticalThreshold"] - critical) < 1e-5 and abs(got["lowThreshold"] - low) < 1e-5
            and abs(got["hysteresis"] - hysteresis) < 1e-5, f"got {got}")
    for amplifier in (0, 1):
        got = await rvr.get_current_sense_amplifier_current(amplifier_id=amplifier, timeout=TIMEOUT)
        c.equal(f"get_current_sense_amplifier_current[{amplifier}] at rest", got, {"amplifierCurrent": 0.0})
    await refused(c, "current sense amplifier 2 is refused", rvr,
                  power_commands.get_current_sense_amplifier_current(2, target=NORDIC, timeout=TIMEOUT),
                  "bad_data_value")


async def enable_notifications(c, rvr):
    calls = [
        ("enable_battery_voltage_state_change_notify", rvr.enable_battery_voltage_state_change_notify,
         power_commands.enable_battery_voltage_state_change_notify(True, target=NORDIC, timeout=TIMEOUT)),
        ("enable_motor_stall_notify", rvr.enable_motor_stall_notify,
         drive_commands.enable_motor_stall_notify(True, target=ST, timeout=TIMEOUT)),
        ("enable_motor_fault_notify", rvr.enable_motor_fault_notify,
         drive_commands.enable_motor_fault_notify(True, target=ST, timeout=TIMEOUT)),
        ("enable_gyro_max_notify", rvr.enable_gyro_max_notify,
         sensor_commands.enable_gyro_max_notify(True, target=ST, timeout=TIMEOUT)),
        ("enable_motor_thermal_protection_status_notify", rvr.enable_motor_thermal_protection_status_notify,
         sensor_commands.enable_motor_thermal_protection_status_notify(True, target=ST, timeout=TIMEOUT)),
        ("enable_robot_infrared_message_notify", rvr.enable_robot_infrared_message_notify,
         sensor_commands.enable_robot_infrared_message_notify(True, target=ST, timeout=TIMEOUT)),
    ]
    for name, sdk_call, command in calls:
        c.equal(name, await sdk_call(is_enabled=True), None)
        await accepted(c, f"{name} accepted", rvr, command)


async def colour(c, rvr, rec):
    got = await rvr.get_rgbc_sensor_values(timeout=TIMEOUT)
    c.equal("get_rgbc_sensor_values, detection off", got,
            {"redChannelValue": 0, "greenChannelValue": 0, "blueChannelValue": 0, "clearChannelValue": 0})
    await rvr.enable_color_detection(is_enabled=True)
    await accepted(c, "enable_color_detection accepted", rvr,
                   sensor_commands.enable_color_detection(True, target=NORDIC, timeout=TIMEOUT))
    lit = round(230 / 255 * 65535)
    got = await rvr.get_rgbc_sensor_values(timeout=TIMEOUT)
    c.equal("get_rgbc_sensor_values, floor lit", got,
            {"redChannelValue": lit, "greenChannelValue": lit, "blueChannelValue": lit, "clearChannelValue": lit})
    got = await rvr.get_ambient_light_sensor_value(timeout=TIMEOUT)
    c.equal("get_ambient_light_sensor_value", got, {"ambientLightValue": TWIN["ambient_lux"]})

    want = {"red": 230, "green": 230, "blue": 230, "confidence": TWIN["floor_confidence"],
            "colorClassificationId": TWIN["floor_class"]}
    await rvr.enable_color_detection_notify(is_enabled=True, interval=100, minimum_confidence_threshold=100)
    await asyncio.sleep(1.05)
    await rvr.enable_color_detection_notify(is_enabled=False, interval=100, minimum_confidence_threshold=100)
    got = rec.of("color_detection")
    c.between("color_detection_notify every 100 ms for 1 s", len(got), 9, 11)
    c.check("color_detection_notify values", all(v == want for _, v in got), f"{got[:1]} want {want}")
    await asyncio.sleep(0.3)
    count = len(rec.of("color_detection"))
    await rvr.enable_color_detection_notify(is_enabled=True, interval=100, minimum_confidence_threshold=200)
    await asyncio.sleep(0.5)
    c.equal("no color notify below the minimum confidence", len(rec.of("color_detection")), count)
    await rvr.enable_color_detection_notify(is_enabled=False, interval=100, minimum_confidence_threshold=200)
    await refused(c, "colour notify interval 0 refused", rvr,
                  sensor_commands.enable_color_detection_notify(True, 0, 10, target=NORDIC, timeout=TIMEOUT),
                  "bad_data_value")
    await rvr.get_current_detected_color_reading()
    await asyncio.sleep(0.2)
    got = rec.of("color_detection")
    c.check("get_current_detected_color_reading answers with a notify", len(got) == count + 1 and got[-1][1] == want,
            f"{len(got) - count} new, last {got[-1][1] if got else None}")


async def palettes(c, rvr):
    got = await rvr.get_active_color_palette(timeout=TIMEOUT)
    default = got["rgbIndexBytes"]
    c.check("get_active_color_palette (default)", len(default) == 4 * TWIN["palette_entries"]
            and default[12:16] == [3, 255, 255, 255], f"got {default}")
    got = await rvr.get_color_identification_report(red=230, green=230, blue=230, confidence_threshold=100,
                                                     timeout=TIMEOUT)
    c.equal("get_color_identification_report (floor vs default)", got,
            {"indexConfidenceByte": [TWIN["floor_class"], TWIN["floor_confidence"]]})
    custom = [9, 10, 200, 10, 2, 200, 30, 30]
    await rvr.set_active_color_palette(rgb_index_bytes=list(custom))
    got = await rvr.get_active_color_palette(timeout=TIMEOUT)
    c.equal("set_active_color_palette then get (index order)", got,
            {"rgbIndexBytes": [2, 200, 30, 30, 9, 10, 200, 10]})
    got = await rvr.get_color_identification_report(red=20, green=190, blue=20, confidence_threshold=100,
                                                     timeout=TIMEOUT)
    # (20,190,20) vs (10,200,10): distance 17.3 -> 255 * (1 - 17.3/120) = 218.
    c.equal("get_color_identification_report (custom)", got, {"indexConfidenceByte": [9, 218]})
    await rvr.save_color_palette(palette_index=5)
    await rvr.load_color_palette(palette_index=0)
    got = await rvr.get_active_color_palette(timeout=TIMEOUT)
    c.equal("load_color_palette 0 restores the default", got["rgbIndexBytes"], default)
    await rvr.load_color_palette(palette_index=5)
    got = await rvr.get_active_color_palette(timeout=TIMEOUT)
    c.equal("save_color_palette 5 then load_color_palette 5", got["rgbIndexBytes"], [2, 200, 30, 30, 9, 10, 200, 10])
    await refused(c, "load_color_palette of an unsaved index refused", rvr,
                  io_commands.load_color_palette(77, target=NORDIC, timeout=TIMEOUT), "bad_data_value")
    await rvr.load_color_palette(palette_index=0)


async def leds(c, rvr):
    await rvr.set_all_leds(led_group=0x3FFFFFFF, led_brightness_values=[0x40] * 30)
    await accepted(c, "set_all_leds (30 channels) accepted", rvr,
                   io_commands.set_all_leds(0x3FFFFFFF, [0x40] * 30, target=NORDIC, timeout=TIMEOUT))
    await rvr.led_control.set_all_leds_rgb(red=255, green=0, blue=128)
    await refused(c, "set_all_leds with a value missing refused", rvr,
                  io_commands.set_all_leds(0b111, [1, 2], target=NORDIC, timeout=TIMEOUT), "bad_data_length")
    await refused(c, "set_all_leds bit 31 (no such LED) refused", rvr,
                  io_commands.set_all_leds(1 << 31, [1], target=NORDIC, timeout=TIMEOUT), "bad_data_value")
    await rvr.release_led_requests()
    await accepted(c, "release_led_requests accepted", rvr,
                   io_commands.release_led_requests(target=NORDIC, timeout=TIMEOUT))


async def infrared(c, rvr):
    c.equal("get_bot_to_bot_infrared_readings (no other robot)",
            await rvr.get_bot_to_bot_infrared_readings(timeout=TIMEOUT), {"sensorData": 0})
    steps = [
        ("start_robot_to_robot_infrared_broadcasting", rvr.start_robot_to_robot_infrared_broadcasting,
         sensor_commands.start_robot_to_robot_infrared_broadcasting, (1, 2)),
        ("start_robot_to_robot_infrared_following", rvr.start_robot_to_robot_infrared_following,
         sensor_commands.start_robot_to_robot_infrared_following, (3, 4)),
        ("start_robot_to_robot_infrared_evading", rvr.start_robot_to_robot_infrared_evading,
         sensor_commands.start_robot_to_robot_infrared_evading, (5, 6)),
    ]
    for name, sdk_call, builder, (far, near) in steps:
        await sdk_call(far_code=far, near_code=near)
        await accepted(c, f"{name} accepted", rvr, builder(far, near, target=ST, timeout=TIMEOUT))
    await refused(c, "infrared code 8 refused", rvr,
                  sensor_commands.start_robot_to_robot_infrared_following(8, 0, target=ST, timeout=TIMEOUT),
                  "bad_data_value")
    await rvr.send_infrared_message(infrared_code=7, front_strength=64, left_strength=0, right_strength=32,
                                    rear_strength=64)
    await accepted(c, "send_infrared_message accepted", rvr,
                   sensor_commands.send_infrared_message(7, 64, 0, 32, 64, target=ST, timeout=TIMEOUT))
    await refused(c, "infrared strength 65 refused", rvr,
                  sensor_commands.send_infrared_message(1, 65, 0, 0, 0, target=ST, timeout=TIMEOUT),
                  "bad_data_value")
    for name, sdk_call, builder in [
        ("stop_robot_to_robot_infrared_broadcasting", rvr.stop_robot_to_robot_infrared_broadcasting,
         sensor_commands.stop_robot_to_robot_infrared_broadcasting),
        ("stop_robot_to_robot_infrared_following", rvr.stop_robot_to_robot_infrared_following,
         sensor_commands.stop_robot_to_robot_infrared_following),
        ("stop_robot_to_robot_infrared_evading", rvr.stop_robot_to_robot_infrared_evading,
         sensor_commands.stop_robot_to_robot_infrared_evading),
    ]:
        await sdk_call()
        await accepted(c, f"{name} accepted", rvr, builder(target=ST, timeout=TIMEOUT))


STREAMED = ["Quaternion", "IMU", "Accelerometer", "Gyroscope", "ColorDetection", "AmbientLight",
            "Locator", "Velocity", "Speed", "CoreTime"]


class Stream:
    """Every streaming sample the SDK delivers, per service."""

    def __init__(self):
        self.samples = {name: [] for name in STREAMED}

    def handler(self, name):
        async def record(data):
            self.samples[name].append((time.monotonic(), data[name]))

        return record

    def between(self, name, start, end):
        return [d for t, d in self.samples[name] if start <= t <= end]

    def last(self, name):
        return self.samples[name][-1][1] if self.samples[name] else None


def locator_m(sample):
    return (from_sdk_int32_range(sample["X"], -16000, 16000), from_sdk_int32_range(sample["Y"], -16000, 16000))


async def drive_and_stream(c, rvr, stream):
    for name in STREAMED:
        await rvr.sensor_control.add_sensor_data_handler(name, stream.handler(name))
    await rvr.reset_yaw()
    await rvr.reset_locator_x_and_y()
    await accepted(c, "reset_yaw accepted", rvr, drive_commands.reset_yaw(target=ST, timeout=TIMEOUT))
    await accepted(c, "reset_locator_x_and_y accepted", rvr,
                   sensor_commands.reset_locator_x_and_y(target=ST, timeout=TIMEOUT))
    await rvr.set_locator_flags(flags=0)
    await accepted(c, "set_locator_flags accepted", rvr, sensor_commands.set_locator_flags(0, target=ST, timeout=TIMEOUT))
    await refused(c, "set_locator_flags bit 1 refused", rvr,
                  sensor_commands.set_locator_flags(2, target=ST, timeout=TIMEOUT), "bad_data_value")
    # The SDK's own streaming flow: on_streaming_service_data_notify for both
    # processors, configure_streaming_service per slot, start_streaming_service
    # on both.
    await rvr.sensor_control.start(interval=100)
    await asyncio.sleep(0.5)

    # drive_with_heading speed 64, heading 0, refreshed every 100 ms for 1.5 s.
    # The twin: 64 / 255 * 2.0 = 0.502 m/s; treads ramp to it at 4 m/s^2 and
    # (after the stop, speed 0) back down at 4 m/s^2, so the distance lost
    # on the way up is won back on the way down: y = v * T, T the time from
    # the first command to the stop. The band covers the line latency and the
    # live loop's pacing (a few ms each way) and the heading controller.
    speed = 64 / 255 * TWIN["max_linear"]
    start = time.monotonic()
    currents = None
    while time.monotonic() - start < 1.5:
        await rvr.drive_with_heading(speed=64, heading=0, flags=0)
        if currents is None and time.monotonic() - start > 0.8:
            currents = [await rvr.get_current_sense_amplifier_current(amplifier_id=i, timeout=TIMEOUT)
                        for i in (0, 1)]
        await asyncio.sleep(0.1)
    stop = time.monotonic()
    await rvr.drive_with_heading(speed=0, heading=0, flags=0)
    drive_time = stop - start
    locators = stream.between("Locator", start, start + 1.5)
    c.between("Locator samples at 100 ms in 1.5 s", len(locators), 14, 16)
    velocity = [from_sdk_int32_range(v["Y"], -5, 5) for v in stream.between("Velocity", start + 0.6, stop)]
    c.check("Velocity Y at cruise", velocity and all(abs(v - speed) < 0.01 for v in velocity),
            f"{[round(v, 3) for v in velocity]} want {speed:.3f} +- 0.01")
    speeds = [from_sdk_speed(v["Speed"]) for v in stream.between("Speed", start + 0.6, stop)]
    c.check("Speed at cruise", speeds and all(abs(v - speed) < 0.01 for v in speeds),
            f"{[round(v, 3) for v in speeds]} want {speed:.3f} +- 0.01")
    yaws = [v["Yaw"] for v in stream.between("IMU", start, stop)]
    c.check("IMU yaw stays 0 on heading 0", yaws and all(abs(y) < 1.0 for y in yaws), f"{yaws[:3]}...")
    # 0.9 A at full tread speed, scaled: 0.502 / 1.555 * 0.9 = 0.29 A.
    want_amps = speed / TWIN["max_tread"] * TWIN["full_speed_amps"]
    for i, got in enumerate(currents or []):
        c.near(f"get_current_sense_amplifier_current[{i}] at cruise", got["amplifierCurrent"], want_amps, 0.03)

    await asyncio.sleep(1.0)
    x, y = locator_m(stream.last("Locator"))
    c.near("locator Y after drive_with_heading = v * T", y, speed * drive_time, 0.03)
    c.near("locator X stays on the line", x, 0.0, 0.01)
    c.near("Speed 0 after the stop", from_sdk_speed(stream.last("Speed")["Speed"]), 0.0, 0.001)

    # raw_motors forward 128 on both treads: 128 / 255 * 1.555 = 0.78 m/s.
    start = time.monotonic()
    while time.monotonic() - start < 0.8:
        await rvr.raw_motors(left_mode=1, left_speed=128, right_mode=1, right_speed=128)
        await asyncio.sleep(0.1)
    await rvr.raw_motors(left_mode=0, left_speed=0, right_mode=0, right_speed=0)
    raw_speed = 128 / 255 * TWIN["max_tread"]
    speeds = [from_sdk_speed(v["Speed"]) for v in stream.between("Speed", start + 0.4, start + 0.8)]
    c.check("raw_motors 128 forward: Speed", speeds and all(abs(v - raw_speed) < 0.01 for v in speeds),
            f"{[round(v, 3) for v in speeds]} want {raw_speed:.3f}")
    await asyncio.sleep(0.8)
    # Where streaming last saw the robot at rest: the locator was reset at
    # the world origin facing world +y, so it is the world position.
    return locator_m(stream.last("Locator"))


def check_streams(c, stream, up_time_ms):
    q = stream.last("Quaternion")
    c.check("Quaternion: level, yaw 0", q and abs(q["W"] - 1) < 1e-3 and abs(q["Z"]) < 0.01, f"{q}")
    a = stream.last("Accelerometer")
    c.check("Accelerometer: 1 g up", a and abs(a["Z"] - 1) < 1e-4 and abs(a["X"]) < 1e-4, f"{a}")
    g = stream.last("Gyroscope")
    c.check("Gyroscope: at rest", g and all(abs(g[k]) < 0.5 for k in "XYZ"), f"{g}")
    col = stream.last("ColorDetection")
    want = {"is_valid": True, "R": 230, "G": 230, "B": 230, "Index": TWIN["floor_class"]}
    c.check("ColorDetection (8-bit): the floor",
            col and {k: col[k] for k in want} == want
            and abs(col["Confidence"] - TWIN["floor_confidence"] / 255) < 0.003, f"{col}")
    light = stream.last("AmbientLight")
    c.check("AmbientLight", light and abs(light["Light"] - TWIN["ambient_lux"]) < 0.1, f"{light}")
    times = [from_sdk_core_time(v["TimeUpper"], v["TimeLower"]) for _, v in stream.samples["CoreTime"]]
    c.check("CoreTime streams from both processors (two per period)",
            len(times) >= 2 * len(stream.samples["Locator"]) - 4, f"{len(times)} vs {len(stream.samples['Locator'])} locator")
    c.check("CoreTime counts up from the up-time", times and min(times) >= up_time_ms and times == sorted(times),
            f"first {times[:2]}, last {times[-2:]}, up time {up_time_ms}")


async def stop_streaming(c, rvr, stream):
    await rvr.stop_streaming_service(target=NORDIC)
    await rvr.stop_streaming_service(target=ST)
    await asyncio.sleep(0.35)
    count = len(stream.samples["Locator"])
    await asyncio.sleep(0.5)
    c.equal("stop_streaming_service (both processors) stops the samples", len(stream.samples["Locator"]), count)
    await rvr.sensor_control.stop()
    await rvr.sensor_control.clear()
    await rvr.clear_streaming_service(target=NORDIC)
    await rvr.clear_streaming_service(target=ST)
    await accepted(c, "clear_streaming_service accepted", rvr,
                   sensor_commands.clear_streaming_service(target=ST, timeout=TIMEOUT))
    # Configure and start once by hand: the twin checks the processor.
    await rvr.configure_streaming_service(token=2, configuration=[0x00, 0x06, 0x02], target=ST)
    await accepted(c, "configure_streaming_service (ST, Locator) accepted", rvr,
                   sensor_commands.configure_streaming_service(2, [0x00, 0x06, 0x02], target=ST, timeout=TIMEOUT))
    await refused(c, "configure_streaming_service (Nordic, Locator) refused", rvr,
                  sensor_commands.configure_streaming_service(2, [0x00, 0x06, 0x02], target=NORDIC, timeout=TIMEOUT),
                  "bad_data_value")
    await rvr.start_streaming_service(period=100, target=ST)
    await refused(c, "start_streaming_service below 33 ms refused", rvr,
                  sensor_commands.start_streaming_service(20, target=ST, timeout=TIMEOUT), "bad_data_value")
    await rvr.clear_streaming_service(target=ST)


async def motors(c, rvr):
    c.equal("get_motor_fault_state", await rvr.get_motor_fault_state(timeout=TIMEOUT), {"isFault": False})
    status = await rvr.get_motor_thermal_protection_status(timeout=TIMEOUT)
    c.check("get_motor_thermal_protection_status: ok, warm from driving",
            status["leftMotorStatus"] == 0 and status["rightMotorStatus"] == 0
            and TWIN["motor_ambient_c"] <= status["leftMotorTemperature"] < 30, f"{status}")
    for i in (0, 1):
        got = await rvr.get_motor_temperature(motor_index=i, timeout=TIMEOUT)
        c.check(f"get_motor_temperature[{i}]",
                TWIN["motor_ambient_c"] <= got["caseTemperature"] <= got["windingCoilTemperature"] < 30, f"{got}")


async def sleep_and_wake(c, rvr, rec):
    await rvr.sleep()
    await asyncio.sleep(0.3)
    c.equal("sleep: will_sleep_notify", len(rec.of("will_sleep")), 1)
    c.equal("sleep: did_sleep_notify", len(rec.of("did_sleep")), 1)
    await refused(c, "asleep: drive_with_heading refused", rvr,
                  drive_commands.drive_with_heading(64, 0, 0, target=ST, timeout=TIMEOUT), "restricted")
    c.equal("asleep: get_battery_percentage still answers", await rvr.get_battery_percentage(timeout=TIMEOUT),
            {"percentage": 100})
    await rvr.wake()
    await accepted(c, "wake: drive_with_heading accepted again", rvr,
                   drive_commands.drive_with_heading(0, 0, 0, target=ST, timeout=TIMEOUT))


def main(args):
    c = Report()
    serve = Serve(args.twinrig)
    c.check("serve ready line", serve.device.startswith("/dev/"), serve.ready_line)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    before = time.monotonic()
    try:
        rvr = SpheroRvrAsync(dal=SerialAsyncDal(loop, device=serve.device, baud=115200))
        c.check("SpheroRvrAsync constructed (firmware check answered)", True,
                f"{time.monotonic() - before:.2f} s")
    except Exception as exc:
        c.error("SpheroRvrAsync constructed (firmware check answered)", exc)
        serve.stop()
        return c

    async def run():
        rec = Recorder()
        for name, register in [
            ("will_sleep", rvr.on_will_sleep_notify), ("did_sleep", rvr.on_did_sleep_notify),
            ("battery_voltage_state", rvr.on_battery_voltage_state_change_notify),
            ("motor_stall", rvr.on_motor_stall_notify), ("motor_fault", rvr.on_motor_fault_notify),
            ("gyro_max", rvr.on_gyro_max_notify), ("color_detection", rvr.on_color_detection_notify),
            ("infrared_message", rvr.on_robot_to_robot_infrared_message_received_notify),
            ("thermal", rvr.on_motor_thermal_protection_status_notify),
        ]:
            await register(handler=rec.handler(name))
        await rvr.wake()
        await asyncio.sleep(0.2)
        await identity(c, rvr)
        up = await up_time(c, rvr, serve)
        await power(c, rvr)
        await enable_notifications(c, rvr)
        await colour(c, rvr, rec)
        await palettes(c, rvr)
        await leds(c, rvr)
        await infrared(c, rvr)
        stream = Stream()
        last_locator = await drive_and_stream(c, rvr, stream)
        check_streams(c, stream, up)
        await stop_streaming(c, rvr, stream)
        await motors(c, rvr)
        # Nothing in the open world stalls, faults, overheats, spins beyond the
        # gyro or drains the battery below ok; no second robot sends infrared.
        for name in ["motor_stall", "motor_fault", "gyro_max", "thermal", "battery_voltage_state",
                     "infrared_message"]:
            c.equal(f"no {name} notification in the open world", rec.of(name), [])
        await sleep_and_wake(c, rvr, rec)
        await asyncio.sleep(0.5)
        await rvr.close()
        return last_locator

    try:
        last_locator = loop.run_until_complete(asyncio.wait_for(run(), timeout=120))
    except Exception as exc:
        c.error("suite ran to the end", exc)
        last_locator = None
    code, out, err = serve.stop()
    c.equal("serve exits 0 on SIGTERM", code, 0)
    try:
        x, y, yaw = final_pose_of(out)
        c.check("serve summary printed", True, out.splitlines()[-1] if out else "")
        if last_locator is not None:
            # The summary prints millimetres.
            c.near("final pose x (serve summary) = last streamed locator X", x, last_locator[0], 0.001)
            c.near("final pose y (serve summary) = last streamed locator Y", y, last_locator[1], 0.001)
        c.near("final heading: world +y (90 deg) as served", yaw, 90.0, 1.0)
    except RuntimeError as exc:
        c.error("serve summary printed", f"{exc}; stderr: {err}")
    return c


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twinrig", required=True, help="path to the twinrig binary")
    args = parser.parse_args()
    if not os.access(args.twinrig, os.X_OK):
        sys.exit(f"not an executable: {args.twinrig}")
    checks = main(args)
    print(f"{checks.passed} passed, {checks.failed} failed")
    sys.exit(0 if checks.failed == 0 else 1)
