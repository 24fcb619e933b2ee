//! A device task that panics fails its scenario with the panic message and the
//! virtual time; the next scenario in the same process still runs.

use std::path::Path;

use serde_json::{Map, Value, json};
use twinrig::devices::{DeviceContext, DeviceKind, DeviceRuntime};
use twinrig::runner::run_with_kinds;
use twinrig::scenario::parse_scenario;
use twinrig_sim::MILLIS;
use twinrig_sim::uart::UartControl;

struct Faulty;
struct FaultyRuntime;

impl DeviceRuntime for FaultyRuntime {
    fn state(&self) -> Value {
        json!({})
    }
    fn uart(&self) -> Option<(&UartControl, bool)> {
        None
    }
}

impl DeviceKind for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }
    fn summary(&self) -> &'static str {
        "panics 1500 ms after boot"
    }
    fn firmware(&self) -> (&'static str, &'static str) {
        ("faulty", "0")
    }
    fn check_params(&self, _: &Map<String, Value>) -> Result<(), String> {
        Ok(())
    }
    fn spawn(
        &self,
        ctx: &DeviceContext<'_>,
        id: &str,
        _: &Map<String, Value>,
    ) -> Result<Box<dyn DeviceRuntime>, String> {
        let h = ctx.handle.clone();
        ctx.handle.spawn(id.to_string(), async move {
            h.sleep(1500 * MILLIS).await;
            panic!("watchdog: stack overflow in motor task");
        });
        Ok(Box::new(FaultyRuntime))
    }
}

static KINDS: [&'static dyn DeviceKind; 1] = [&Faulty];

const SCENARIO: &str = r##"
name: panicking device
seed: 1
duration_limit: 10s
devices:
  - { kind: faulty, id: bad-1 }
steps:
  - delay: 5s
  - expect: { message: { topic: "#", count: { equals: 0 } } }
"##;

const QUIET: &str = r##"
name: quiet
seed: 1
duration_limit: 10s
steps:
  - delay: 1s
  - expect: { message: { topic: "#", count: { equals: 0 } } }
"##;

#[test]
fn a_panicking_device_fails_its_scenario_and_the_next_one_runs() {
    let s = parse_scenario(SCENARIO, Path::new("panic.yaml"), &["faulty"]).unwrap();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = run_with_kinds(&s, SCENARIO, &KINDS, |_| {});
    let _ = std::panic::take_hook();
    assert!(!outcome.passed());
    let failure = outcome.failure.expect("a failure is reported");
    assert!(
        failure.contains("watchdog: stack overflow in motor task"),
        "{failure}"
    );
    assert!(failure.contains("1.500000000s"), "{failure}");
    assert!(failure.contains("bad-1"), "{failure}");
    assert_eq!(
        outcome.virtual_ns,
        1500 * MILLIS,
        "the run stops at the panic"
    );

    let s = parse_scenario(QUIET, Path::new("quiet.yaml"), &["faulty"]).unwrap();
    let outcome = run_with_kinds(&s, QUIET, &KINDS, |_| {});
    assert!(outcome.passed(), "{:?}", outcome.failure);
}
