//! A device task that panics fails its scenario with the panic message and the
//! virtual time; the next scenario in the same process still runs.

mod common;

use std::path::Path;

use twinrig::devices::DeviceKind;
use twinrig::runner::run_with_kinds;
use twinrig::scenario::parse_scenario;
use twinrig_sim::MILLIS;

/// A device kind whose one task panics 1500 ms after boot.
static FAULTY: common::OneTaskKind = common::OneTaskKind {
    name: "faulty",
    summary: "panics 1500 ms after boot",
    task_suffix: "",
    task: |h| {
        Box::pin(async move {
            h.sleep(1500 * MILLIS).await;
            panic!("watchdog: stack overflow in motor task");
        })
    },
};

static KINDS: [&'static dyn DeviceKind; 1] = [&FAULTY];

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
