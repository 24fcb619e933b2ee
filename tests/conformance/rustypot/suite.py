#!/usr/bin/env python3
"""Conformance suite: rustypot's Python bindings (PyPI rustypot 1.13.1, the
pinned version in requirements.txt) drive the Amazing Hand's servo-bus twin,
served by `twinrig serve hand --pty`, exactly as they drive the real SCS0009
bus. Nothing in rustypot is patched or mocked.

    python suite.py --twinrig PATH_TO_twinrig_BINARY

The suite starts the server itself, opens the printed pty with
`Scs0009PyController(pty, 1000000, 0.2)`, prints one line per check
(`PASS name: detail` or `FAIL name: detail`) and a closing
`N passed, N failed`, then stops the server with SIGTERM and checks that it
exits 0 with its summary. Exit status 0 only if every check passed.

Expected register values and write behaviour come from
scs0009_registers.json (shared with rust.rs). Live mode runs the twin on the
wall clock, so timings are only checked loosely, never tightly.

Every write is followed by a short pause, as in Pollen's demo: a servo
misses a write that arrives while it still applies its previous one (the
twin's processing window, 500 us assumed; see the bus twin's module docs).
Reads need no pause.
"""

import argparse
import json
import math
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import rustypot

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from report import Report  # noqa: E402 - the suites' shared report, one folder up

HERE = Path(__file__).resolve().parent
BAUD = 1_000_000
TIMEOUT_S = 0.2
IDS = list(range(1, 9))
ABSENT_ID = 20
# After every write; the twin's window is 0.5 ms, Pollen's demo pauses 5 ms per finger.
WRITE_PAUSE_S = 0.005
# One position step in radians: 300 degrees over 1024 steps.
STEP_RAD = math.radians(300.0) / 1024.0
# The twin's top speed (ServoParams::max_speed_steps), steps/s.
TWIN_MAX_SPEED_STEPS = 2048.0


def pty_path(ready_line: str) -> str:
    """The device path in the server's first stdout line: the word after " on "."""
    _, sep, rest = ready_line.partition(" on ")
    words = rest.split()
    if not sep or not words:
        raise ValueError(f"no ' on <path>' in the ready line: {ready_line!r}")
    return words[0]


# Conversions of rustypot 1.13.1 for the SCS0009 (amazing-hand.md section 3.2),
# from a raw register value to what the typed read_<name> returns, and back.
def from_raw(conversion: str, raw: int):
    if conversion == "angle":
        return STEP_RAD * ((raw & 0x3FF) - 511)
    if conversion == "velocity":
        magnitude = STEP_RAD * (raw & 0x3FF)
        return -magnitude if raw > 0x8000 else magnitude
    if conversion == "load":
        return -(raw & 0x3FF) if raw > 1024 else raw & 0x3FF
    if conversion == "torque_limit":
        return raw * 0.1
    if conversion == "bool":
        return raw != 0
    if conversion == "int":
        return raw
    if conversion == "unconverted_word":
        return rustypot_raw(conversion, raw, 2)
    raise ValueError(f"unknown conversion {conversion}")


def rustypot_raw(conversion: str, raw: int, size: int) -> int:
    """What rustypot calls the raw value of a register (read_raw_<name>,
    write_raw_<name>): the wire bytes, big-endian on the SCS, taken as a
    little-endian number (i16 for positions). The conversions swap it back."""
    return int.from_bytes(raw.to_bytes(size, "big"), "little", signed=conversion == "angle")


def to_value(conversion: str, raw: int):
    """The argument of write_<name> that rustypot turns into `raw` (it
    truncates toward zero, so angles and speeds aim at the middle of a step)."""
    if conversion == "angle":
        return (raw - 511 + 0.5) * STEP_RAD
    if conversion == "velocity":
        return (raw + 0.5) * STEP_RAD
    if conversion == "torque_limit":
        return raw / 10.0
    if conversion == "bool":
        return raw != 0
    if conversion == "int":
        return raw
    raise ValueError(f"{conversion} registers are not written")


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    return a == b


def one(values):
    """A controller read returns a list of one value (rustypot's Vec<T>)."""
    if not isinstance(values, list) or len(values) != 1:
        raise TypeError(f"expected a list of one value, got {values!r}")
    return values[0]


def be_bytes(raw: int, size: int) -> list:
    return list(raw.to_bytes(size, "big"))


class Server:
    """`twinrig serve hand --pty` as a subprocess."""

    def __init__(self, binary: str):
        self.proc = subprocess.Popen(
            [binary, "serve", "hand", "--pty"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready_line = self._first_line(60.0)
        self.path = pty_path(self.ready_line)

    def _first_line(self, limit_s: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], limit_s)
        if not ready:
            self.proc.kill()
            raise RuntimeError(f"no ready line within {limit_s} s")
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.wait(10)
            raise RuntimeError(f"serve exited early: {self.proc.stderr.read()}")
        return line

    def stop(self, limit_s: float = 30.0):
        """SIGTERM; returns (exit code, rest of stdout, stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            return None, out, err
        return self.proc.returncode, out, err


class Hand:
    """The controller plus the write pacing every check uses."""

    def __init__(self, path: str):
        self.c = rustypot.Scs0009PyController(path, BAUD, TIMEOUT_S)

    def write(self, method: str, *args):
        try:
            return getattr(self.c, method)(*args)
        finally:
            time.sleep(WRITE_PAUSE_S)

    def write_raw(self, id_: int, addr: int, data: list):
        return self.write("write_raw_data", id_, addr, data)


def load_registers():
    with open(HERE / "scs0009_registers.json", encoding="utf-8") as f:
        return json.load(f)["registers"]


def power_on(reg, id_):
    return id_ if reg["power_on"] == "id" else reg["power_on"]


def check_table(report: Report, registers):
    """The bindings' register list and the expectations agree."""
    declared = {r.name: r for r in rustypot.Scs0009PyController.registers()}
    expected = {r["name"]: r for r in registers}
    missing = sorted(set(declared) - set(expected))
    extra = sorted(set(expected) - set(declared))
    report.check(
        "register list",
        not missing and not extra,
        f"{len(declared)} registers in rustypot {rustypot_version()}"
        + (f"; no expectation for {missing}" if missing else "")
        + (f"; not in rustypot: {extra}" if extra else ""),
    )
    wrong = [
        n
        for n, r in declared.items()
        if n in expected and (r.addr, r.size) != (expected[n]["addr"], expected[n]["size"])
    ]
    report.check("register addresses", not wrong, f"mismatched: {wrong}" if wrong else "all match")


def rustypot_version() -> str:
    from importlib.metadata import version

    return version("rustypot")


def check_reads(report: Report, hand: Hand, registers, id_: int):
    """Every typed read (and raw read) of every register returns the power-on value."""
    for reg in registers:
        name, conv = reg["name"], reg["conversion"]
        raw = power_on(reg, id_)

        def body(reg=reg, name=name, conv=conv, raw=raw):
            want = from_raw(conv, raw)
            got = one(getattr(hand.c, f"read_{name}")(id_))
            generic = hand.c.read_register(id_, name)
            wire = hand.c.read_raw_data(id_, reg["addr"], reg["size"])
            detail = f"read_{name}({id_}) = {got!r}, read_register = {generic}, bytes {list(wire)}"
            ok = same(got, want) and list(wire) == be_bytes(raw, reg["size"])
            ok = ok and generic == signed(conv, raw)
            raw_method = getattr(hand.c, f"read_raw_{name}", None)
            if raw_method is not None:
                raw_got = one(raw_method(id_))
                detail += f", read_raw_{name} = {raw_got}"
                ok = ok and raw_got == rustypot_raw(conv, raw, reg["size"])
            if not ok:
                detail += f"; expected {want!r} (raw {raw})"
            return ok, detail

        report.run(f"read {name}", body)


def signed(conversion: str, raw: int) -> int:
    """read_register's integer: sign-magnitude registers carry their sign."""
    if conversion == "velocity" and raw & 0x8000:
        return -(raw & 0x7FFF)
    if conversion == "load" and raw & 0x400:
        return -(raw & 0x3FF)
    return raw


def check_writes(report: Report, hand: Hand, registers, id_: int):
    """Every write method: stored registers read back, read-only ones ignore it."""
    for reg in registers:
        name, conv, kind = reg["name"], reg["conversion"], reg["write"]
        if kind not in ("stored", "read_only"):
            continue
        home = power_on(reg, id_)

        def body(reg=reg, name=name, conv=conv, kind=kind, home=home):
            value = reg["value"]
            method = getattr(hand.c, f"write_{name}", None)
            if kind == "stored":
                hand.write(f"write_{name}", id_, to_value(conv, value))
                got = one(getattr(hand.c, f"read_{name}")(id_))
                wire = list(hand.c.read_raw_data(id_, reg["addr"], reg["size"]))
                detail = f"write_{name}({value} raw) reads back {got!r}, bytes {wire}"
                ok = same(got, from_raw(conv, value)) and wire == be_bytes(value, reg["size"])
                raw_write = getattr(hand.c, f"write_raw_{name}", None)
                if raw_write is not None:
                    hand.write(f"write_raw_{name}", id_, rustypot_raw(conv, home, reg["size"]))
                    back = hand.c.read_register(id_, name)
                    detail += f"; write_raw_{name}({home}) reads back {back}"
                    ok = ok and back == home
                hand.write(f"write_{name}", id_, to_value(conv, home))
                restored = hand.c.read_register(id_, name)
                ok = ok and restored == home
                return ok, detail
            # Read only: rustypot has a write method only for the factory block.
            if method is not None:
                hand.write(f"write_{name}", id_, to_value(conv, value))
                how = f"write_{name}({value})"
            else:
                error = hand.write(
                    "write_raw_data_with_error", id_, reg["addr"], be_bytes(value, reg["size"])
                )
                how = f"write_raw_data({reg['addr']}, {be_bytes(value, reg['size'])}) acknowledged, error {error}"
                if error != 0:
                    return False, how
            got = hand.c.read_register(id_, name)
            return got == home, f"{how}; still reads {got} (read only, expected {home})"

        report.run(f"write {name}", body)


def check_id(report: Report, hand: Hand):
    def body():
        hand.write("write_id", 8, 20)
        moved = hand.c.ping(20) and not hand.c.ping(8) and one(hand.c.read_id(20)) == 20
        hand.write("write_id", 20, 8)
        back = hand.c.ping(8) and not hand.c.ping(20)
        return moved and back, f"8 -> 20 answers as 20 only: {moved}; back to 8: {back}"

    report.run("write id", body)


def check_status_level(report: Report, hand: Hand):
    def body():
        # Answered: the level was still 1 when the write arrived.
        hand.write("write_response_status_level", 7, 0)
        level = one(hand.c.read_response_status_level(7))
        try:
            hand.write("write_response_status_level", 7, 1)
            unanswered = False
        except Exception:  # noqa: BLE001 - rustypot raises its timeout
            unanswered = True
        back = one(hand.c.read_response_status_level(7))
        ok = level == 0 and unanswered and back == 1
        return ok, (
            f"level 0 reads {level}; a write at level 0 goes unanswered: {unanswered}"
            f" but applies (reads {back})"
        )

    report.run("write response_status_level", body)


def check_ping(report: Report, hand: Hand):
    report.run(
        "ping ids 1-8",
        lambda: (
            (answers := [hand.c.ping(i) for i in IDS]) == [True] * 8,
            f"answers {answers}",
        ),
    )
    report.run(
        f"ping absent id {ABSENT_ID}",
        lambda: ((a := hand.c.ping(ABSENT_ID)) is False, f"answer {a}"),
    )


def check_reboot(report: Report, hand: Hand):
    # rustypot's reboot sends Dynamixel's 0x08, which is no SCS instruction:
    # the servo stays silent (assumed) and rustypot reports False.
    report.run(
        "reboot (not an SCS instruction)",
        lambda: ((a := hand.c.reboot(1)) is False, f"reboot(1) = {a}: no answer"),
    )


def wait_at(hand: Hand, ids, goals, tolerance: float, limit_s: float):
    """Polls present positions until every servo is within tolerance of its
    goal; returns (reached, seconds, last positions)."""
    start = time.monotonic()
    while True:
        present = [one(hand.c.read_present_position(i)) for i in ids]
        if all(abs(p - g) <= tolerance for p, g in zip(present, goals)):
            return True, time.monotonic() - start, present
        if time.monotonic() - start > limit_s:
            return False, time.monotonic() - start, present
        time.sleep(0.01)


def check_sync_write(report: Report, hand: Hand):
    def torque_on():
        hand.write("sync_write_torque_enable", IDS, [1] * 8)
        got = [one(hand.c.read_torque_enable(i)) for i in IDS]
        return got == [1] * 8, f"torque_enable of 1-8: {got}"

    report.run("sync write torque_enable", torque_on)

    goals = [(-0.4 + 0.1 * k) for k in range(8)]

    def positions():
        # Nobody acknowledges a SYNC_WRITE, so each is read back before the
        # next: two sent a pause apart could otherwise reach the twin together
        # if the serve loop is held up, and the second would be missed.
        hand.write("sync_write_goal_speed", IDS, [5.0] * 8)
        speeds = [hand.c.read_register(i, "goal_speed") for i in IDS]
        if speeds != [977] * 8:
            return False, f"sync_write_goal_speed(5.0 rad/s): goal_speed reads {speeds}, expected 977 each"
        time.sleep(WRITE_PAUSE_S)
        hand.write("sync_write_goal_position", IDS, goals)
        stored = [one(hand.c.read_goal_position(i)) for i in IDS]
        close = all(abs(s - g) <= STEP_RAD for s, g in zip(stored, goals))
        reached, secs, present = wait_at(hand, IDS, goals, 2 * STEP_RAD, 10.0)
        return close and reached, (
            f"goals read back within a step: {close}; all 8 there after {secs:.2f} s: {reached}"
            f" (present {[round(p, 3) for p in present]})"
        )

    report.run("sync write goal_position", positions)


def check_sync_read(report: Report, hand: Hand):
    ids = [1, 2, 3]

    def generated():
        start = time.monotonic()
        try:
            got = hand.c.sync_read_present_position(ids)
        except Exception as e:  # noqa: BLE001
            secs = time.monotonic() - start
            return True, (
                f"sync_read_present_position({ids}) fails after {secs:.2f} s ({type(e).__name__}: {e}),"
                " as on a real SCS0009 (no SYNC_READ on the SCS series)"
            )
        return False, f"SYNC_READ was answered: {got}"

    report.run("sync read (SYNC_READ instruction)", generated)

    def fallback():
        got = hand.c.sync_read_register(ids, "present_position")
        one_by_one = [hand.c.read_register(i, "present_position") for i in ids]
        ok = got == one_by_one and all(0 <= v <= 1023 for v in got)
        return ok, f"sync_read_register({ids}, 'present_position') = {got}; one READ each: {one_by_one}"

    report.run("sync read fallback (one READ per id)", fallback)


def check_torque(report: Report, hand: Hand):
    servo = 2

    def limp():
        hand.write("write_torque_enable", servo, 1)
        hand.write("write_goal_speed", servo, 1.0)
        hand.write("write_goal_position", servo, 1.2)
        time.sleep(0.2)
        hand.write("write_torque_enable", servo, 0)
        torque = one(hand.c.read_torque_enable(servo))
        first = one(hand.c.read_present_position(servo))
        moving = one(hand.c.read_moving(servo))
        speed = one(hand.c.read_present_speed(servo))
        load = one(hand.c.read_present_load(servo))
        time.sleep(0.3)
        later = one(hand.c.read_present_position(servo))
        ok = torque == 0 and not moving and speed == 0 and load == 0 and later == first
        ok = ok and first < 1.2 - 10 * STEP_RAD
        return ok, (
            f"torque off mid-motion: torque_enable {torque}, moving {moving}, speed {speed},"
            f" load {load}, position {first:.4f} then {later:.4f} rad (goal 1.2 not pursued)"
        )

    report.run("torque off goes limp", limp)

    def hold():
        hand.write("write_torque_enable", servo, 1)
        here = one(hand.c.read_present_position(servo))
        goal = one(hand.c.read_goal_position(servo))
        time.sleep(0.2)
        still = one(hand.c.read_present_position(servo))
        ok = same(here, still) and abs(goal - here) <= STEP_RAD
        return ok, f"torque on again holds at {here:.4f} rad (goal {goal:.4f}, later {still:.4f})"

    report.run("torque on holds where it was left", hold)


def check_goal_reached(report: Report, hand: Hand):
    servo, speed, target = 3, 3.0, 0.5

    def body():
        hand.write("write_torque_enable", servo, 1)
        start_pos = one(hand.c.read_present_position(servo))
        hand.write("write_goal_speed", servo, speed)
        start = time.monotonic()
        hand.write("write_goal_position", servo, target)
        reached, secs, present = wait_at(hand, [servo], [target], 0.02, 10.0)
        secs += WRITE_PAUSE_S
        # The twin moves at the goal speed in whole steps/s, capped at its top speed.
        steps_s = min(int(speed / STEP_RAD), TWIN_MAX_SPEED_STEPS)
        expected = abs(target - start_pos) / (steps_s * STEP_RAD)
        # Wall-clock live mode: only a loose check, never a tight one.
        plausible = 0.5 * expected <= secs <= 5 * expected + 2.0
        return reached and plausible, (
            f"{start_pos:.3f} -> {present[0]:.3f} rad at {speed} rad/s in {secs:.2f} s"
            f" (twin's speed says {expected:.2f} s; plausible: {plausible})"
        )

    report.run("goal reached at the twin's speed", body)


def check_back_to_back_reads(report: Report, hand: Hand, count: int = 1000):
    def body():
        timeouts, errors, start = 0, [], time.monotonic()
        for _ in range(count):
            try:
                one(hand.c.read_present_position(1))
            except Exception as e:  # noqa: BLE001
                timeouts += 1
                if len(errors) < 3:
                    errors.append(f"{type(e).__name__}: {e}")
        secs = time.monotonic() - start
        return timeouts == 0, (
            f"{count} back-to-back read_present_position(1): {timeouts} failed in {secs:.2f} s"
            + (f" ({errors})" if errors else "")
        )

    report.run(f"{count} back-to-back reads", body)


def check_server_stop(report: Report, server: Server, stats_expected: str):
    code, out, err = server.stop()
    summary = next((l for l in out.splitlines() if l.startswith("served ")), None)
    ok = code == 0 and summary is not None and stats_expected in summary
    report.check(
        "serve stops on SIGTERM",
        ok,
        f"exit {code}; summary: {summary or '(none)'}"
        + (f"; expected {stats_expected!r} in it" if summary and stats_expected not in summary else "")
        + (f"; stderr: {err.strip()}" if err.strip() else ""),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--twinrig", required=True, help="path to the twinrig binary")
    args = parser.parse_args()
    if not os.access(args.twinrig, os.X_OK):
        print(f"not an executable: {args.twinrig}", file=sys.stderr)
        return 2

    report = Report()
    registers = load_registers()
    check_table(report, registers)
    server = Server(args.twinrig)
    report.check("ready line", server.path.startswith("/dev/"), f"{server.ready_line!r} -> {server.path}")
    try:
        hand = Hand(server.path)
        check_ping(report, hand)
        # Fresh servos first: power-on values, then every write, on servo 8.
        check_reads(report, hand, registers, 8)
        check_writes(report, hand, registers, 8)
        check_id(report, hand)
        check_status_level(report, hand)
        check_reboot(report, hand)
        check_back_to_back_reads(report, hand)
        check_goal_reached(report, hand)
        check_torque(report, hand)
        check_sync_write(report, hand)
        check_sync_read(report, hand)
        hand.write("sync_write_torque_enable", IDS, [0] * 8)
        hand.c.close()
    except Exception as e:  # noqa: BLE001 - a setup failure is a failed check
        report.check("suite ran to its end", False, f"{type(e).__name__}: {e}")
    # Nothing was missed: every write was paced, and the servos end limp.
    check_server_stop(report, server, "0 missed, 0 bad checksums; torque on 0/8")
    print(f"{report.passed} passed, {report.failed} failed", flush=True)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
