"""The conformance suites' report: one line per check (`PASS name: detail`
or `FAIL name: detail`) and the counts, shared by every suite
(`sys.path` gets this folder; see each suite's imports)."""


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
        return ok

    def run(self, name: str, body) -> None:
        """Runs a check whose body returns (ok, detail); an exception fails it."""
        try:
            ok, detail = body()
        except Exception as e:  # noqa: BLE001 - every error is a failed check
            ok, detail = False, f"{type(e).__name__}: {e}"
        self.check(name, ok, detail)

    def equal(self, name, got, want):
        return self.check(name, got == want, f"got {got!r}, want {want!r}")

    def near(self, name, got, want, tolerance):
        ok = got is not None and abs(got - want) <= tolerance
        return self.check(name, ok, f"got {got!r}, want {want!r} +- {tolerance}")

    def between(self, name, got, low, high):
        ok = got is not None and low <= got <= high
        return self.check(name, ok, f"got {got!r}, want {low}..{high}")

    def error(self, name, exc):
        return self.check(name, False, f"raised {type(exc).__name__}: {exc}")
