//! Property tests over whole scenarios: proptest strategies for the fault
//! schedule a scenario's `chaos:` section describes, and the few helpers a
//! property needs to run a scenario and say why it failed.
//!
//! A seed sweep (`twinrig sweep`) draws schedules at random and reports the
//! failing seeds; a property test draws them with proptest, so a failure is
//! *shrunk*: fewer faults, shorter, gentler, earlier, down to the smallest
//! schedule (and, for the parameters the test draws itself, the smallest
//! maneuvers, sentences or fleet) that still fails. Build with the
//! `proptest` feature (the tests of this package have it).
//!
//! ```no_run
//! use std::path::Path;
//!
//! use proptest::prelude::*;
//! use twinrig::strategy;
//!
//! let yaml = r#"
//! name: echo through noise
//! seed: 1
//! duration_limit: 10s
//! devices: [ { kind: echo, id: echo-1 } ]
//! chaos:
//!   window: 0s..2s
//!   faults:
//!     - { uart: echo-1, kind: bit_errors, count: 0..3, duration: 10ms..200ms, rate: 0.0001..0.01 }
//! steps:
//!   - delay: 3s
//!   - publish: { topic: twinrig/echo/echo-1/tx, payload: "after the noise", qos: 1 }
//!   - wait_for: { topic: twinrig/echo/echo-1/rx, text: "after the noise", timeout: 1s }
//! "#;
//! let scenario = twinrig::suite::parse(yaml.to_owned(), Path::new("noise.yaml"))
//!     .unwrap_or_else(|e| panic!("{}", e.render_plain()))
//!     .scenario;
//! proptest!(strategy::config(8), |(schedule in strategy::faults(&scenario))| {
//!     let outcome = strategy::run(&strategy::with_faults(&scenario, schedule));
//!     prop_assert!(outcome.passed(), "{}", strategy::failures(&outcome));
//! });
//! ```
//!
//! `tests/properties.rs` holds such tests for the RVR bridge, the hand
//! agent and the OTA client; `docs/SCENARIOS.md` ("Property tests") says
//! how to run them longer.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use crate::devices;
use crate::runner::{self, Outcome, RunOptions};
use crate::scenario::chaos::{Chaos, ChaosFault, Range, ScheduledFault};
use crate::scenario::{Duration, Scenario};

/// The environment variable that sets how many cases [`config`] runs.
const CASES_VAR: &str = "TWINRIG_PROPTEST_CASES";

/// Runs a shrink makes at most: as many as `twinrig sweep --shrink`'s
/// default budget, since each one is a whole scenario run.
const SHRINK_RUNS: u32 = crate::shrink::DEFAULT_BUDGET as u32;

/// Fault schedules drawn from `scenario`'s `chaos.faults` distributions
/// (each: `count` faults, each starting in the window with its duration,
/// rate, probability or latency in their ranges), with its fixed
/// `chaos.schedule`, in start order (ties in the order given, then drawn),
/// as [`Chaos::draw`] gives them. Without `chaos:`, always the empty
/// schedule. Shrinks to fewer faults, earlier, shorter and gentler ones.
pub fn faults(scenario: &Scenario) -> BoxedStrategy<Vec<ScheduledFault>> {
    let Some(chaos) = &scenario.chaos else {
        return Just(Vec::new()).boxed();
    };
    let window = chaos.window_within(scenario.duration_limit);
    let fixed = chaos.schedule.clone();
    let drawn: Vec<_> = chaos
        .faults
        .iter()
        .map(|f| distribution(f.clone(), window))
        .collect();
    drawn
        .prop_map(move |groups| {
            let mut out = fixed.clone();
            out.extend(groups.into_iter().flatten());
            // Stable, as in `Chaos::draw`.
            out.sort_by_key(|s| s.at);
            out
        })
        .boxed()
}

/// The faults one distribution draws.
fn distribution(f: ChaosFault, window: Range<Duration>) -> BoxedStrategy<Vec<ScheduledFault>> {
    let count = f.count.min as usize..=f.count.max.max(f.count.min) as usize;
    let (figure, latency) = f.figure_ranges();
    let figure = figure.map_or(Just(0.0).boxed(), number);
    let latency = latency.map_or(Just(Duration::ZERO).boxed(), duration);
    let one = (duration(window), duration(f.duration), figure, latency).prop_map(
        move |(at, length, figure, latency)| ScheduledFault {
            at,
            fault: f.with_figures(length, figure, latency),
        },
    );
    proptest::collection::vec(one, count).boxed()
}

/// A duration in `r` (shrinks toward `r.min`).
fn duration(r: Range<Duration>) -> BoxedStrategy<Duration> {
    let (lo, hi) = (r.min.nanos(), r.max.nanos().max(r.min.nanos()));
    (lo..=hi).prop_map(Duration::from_nanos).boxed()
}

/// A number in `r` (one value when the range holds one).
fn number(r: Range<f64>) -> BoxedStrategy<f64> {
    if r.max > r.min {
        (r.min..=r.max).boxed()
    } else {
        Just(r.min).boxed()
    }
}

/// `scenario` with exactly the fault schedule `faults`: its `chaos.faults`
/// distributions are dropped (and `chaos:` altogether when `faults` is
/// empty), so every run applies this schedule and nothing else.
pub fn with_faults(scenario: &Scenario, faults: Vec<ScheduledFault>) -> Scenario {
    let mut s = scenario.clone();
    s.chaos = (!faults.is_empty()).then_some(Chaos {
        window: None,
        faults: Vec::new(),
        schedule: faults,
    });
    s
}

/// Runs `scenario` with this build's device kinds, as a sweep runs a seed:
/// no trace (a property runs many scenarios; rerun a failing one with
/// `twinrig run` for its trace) and no progress.
pub fn run(scenario: &Scenario) -> Outcome {
    // The source text only goes into the trace, which is discarded.
    runner::run_with_options(
        scenario,
        "",
        devices::kinds(),
        &RunOptions::untraced(),
        |_| {},
    )
}

/// Why `outcome` failed, for `prop_assert!`: every failed assertion, and
/// the run's failure unless it only repeats one of them (a `wait_for` that
/// timed out), one a line; empty when it passed.
pub fn failures(outcome: &Outcome) -> String {
    let failed: Vec<_> = outcome.assertions.iter().filter(|a| !a.passed).collect();
    let mut lines: Vec<String> = outcome
        .failure
        .iter()
        .filter(|f| !failed.iter().any(|a| f.ends_with(&a.detail)))
        .map(|f| format!("run failed: {f}"))
        .collect();
    lines.extend(
        failed
            .iter()
            .map(|a| format!("step {} {}: {}", a.step, a.description, a.detail)),
    );
    lines.join("\n")
}

/// The proptest configuration for scenario properties: `default_cases`
/// cases, or as many as `TWINRIG_PROPTEST_CASES` says (a long hunt). The
/// cases come from a fixed seed (proptest's `PROPTEST_RNG_SEED` picks
/// another), so CI runs the same cases every time, as the rest of twinrig
/// is deterministic. No failure files: a failure prints its shrunk
/// schedule and parameters, and the scenario they make is the regression
/// test to commit. A shrink makes at most 200 runs.
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var(CASES_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default_cases);
    let base = Config::default();
    let rng_seed = match base.rng_seed {
        RngSeed::Random => RngSeed::Fixed(0),
        fixed => fixed,
    };
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: SHRINK_RUNS,
        rng_seed,
        ..base
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::test_runner::{TestCaseError, TestError, TestRunner};

    use super::*;
    use crate::scenario::{Fault, LinkFault, LinkFaultKind, UartFault, UartFaultKind};

    fn scenario(yaml: &str) -> Scenario {
        crate::suite::parse(yaml.to_owned(), Path::new("strategy.yaml"))
            .unwrap_or_else(|e| panic!("{}", e.render_plain()))
            .scenario
    }

    const CHAOS: &str = "name: chaos\nseed: 1\nduration_limit: 30s\ndevices: [ { kind: echo, id: e1 } ]\nchaos:\n  window: 1s..10s\n  faults:\n    - { uart: e1, kind: bit_errors, count: 0..3, duration: 100ms..1s, rate: 0.001..0.01 }\n    - { link: e1, kind: extra_latency, count: 1..2, duration: 200ms..2s, latency: 10ms..50ms }\n  schedule:\n    - { at: 5s, fault: { uart: { device: e1, disconnect: 300ms } } }\nsteps:\n  - delay: 1s\n";

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn drawn_schedules_keep_to_the_counts_window_and_ranges() {
        let s = scenario(CHAOS);
        let mut runner = TestRunner::new(config(256));
        let sizes = std::cell::RefCell::new(std::collections::BTreeSet::new());
        runner
            .run(&faults(&s), |schedule| {
                sizes.borrow_mut().insert(schedule.len());
                prop_assert!(schedule.windows(2).all(|w| w[0].at <= w[1].at));
                let (mut bits, mut late, mut fixed) = (0, 0, 0);
                for f in &schedule {
                    match &f.fault {
                        Fault::Uart(UartFault {
                            kind: UartFaultKind::BitErrors { rate, duration },
                            ..
                        }) => {
                            bits += 1;
                            prop_assert!((0.001..=0.01).contains(rate), "{rate}");
                            prop_assert!(*duration >= ms(100) && *duration <= ms(1000));
                            prop_assert!(f.at >= ms(1000) && f.at <= ms(10_000));
                        }
                        Fault::Link(LinkFault {
                            device,
                            kind: LinkFaultKind::ExtraLatency { latency, duration },
                        }) => {
                            late += 1;
                            prop_assert_eq!(device, "e1");
                            prop_assert!(*latency >= ms(10) && *latency <= ms(50));
                            prop_assert!(*duration >= ms(200) && *duration <= ms(2000));
                            prop_assert!(f.at >= ms(1000) && f.at <= ms(10_000));
                        }
                        Fault::Uart(UartFault {
                            kind: UartFaultKind::Disconnect(d),
                            ..
                        }) => {
                            fixed += 1;
                            prop_assert_eq!((f.at, *d), (ms(5000), ms(300)));
                        }
                        other => return Err(TestCaseError::fail(format!("{other:?}"))),
                    }
                }
                prop_assert!(bits <= 3, "{bits}");
                prop_assert!((1..=2).contains(&late), "{late}");
                prop_assert_eq!(fixed, 1);
                Ok(())
            })
            .unwrap();
        // Every count from 1 + 0 + 1 to 1 + 3 + 2 is drawn.
        assert_eq!(sizes.into_inner(), (2..=6).collect());
    }

    #[test]
    fn the_default_window_is_the_duration_limit_and_no_chaos_is_no_faults() {
        let s = scenario(
            "name: w\nseed: 1\nduration_limit: 2s\ndevices: [ { kind: echo, id: e1 } ]\nchaos:\n  faults: [ { link: e1, kind: outage, count: 3, duration: 1ms..5ms } ]\nsteps: [ { delay: 1ms } ]\n",
        );
        let mut runner = TestRunner::new(config(64));
        runner
            .run(&faults(&s), |schedule| {
                prop_assert_eq!(schedule.len(), 3);
                prop_assert!(schedule.iter().all(|f| f.at <= ms(2000)));
                Ok(())
            })
            .unwrap();
        let mut none = s.clone();
        none.chaos = None;
        runner
            .run(&faults(&none), |schedule| {
                prop_assert!(schedule.is_empty());
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_failure_shrinks_to_the_one_fault_that_causes_it_at_its_least() {
        // "No bit errors longer than 500 ms" fails; the smallest schedule
        // that still fails is the fixed fault and one bit-error fault just
        // over 500 ms, at the window's start, at the lowest rate.
        let s = scenario(CHAOS);
        let mut runner = TestRunner::new(Config {
            max_shrink_iters: 100_000,
            ..config(256)
        });
        let result = runner.run(&faults(&s), |schedule| {
            for f in &schedule {
                if let Fault::Uart(UartFault {
                    kind: UartFaultKind::BitErrors { duration, .. },
                    ..
                }) = &f.fault
                {
                    prop_assert!(*duration <= ms(500));
                }
            }
            Ok(())
        });
        let Err(TestError::Fail(_, shrunk)) = result else {
            panic!("no failing schedule found: {result:?}");
        };
        let bits: Vec<_> = shrunk
            .iter()
            .filter_map(|f| match &f.fault {
                Fault::Uart(UartFault {
                    kind: UartFaultKind::BitErrors { rate, duration },
                    ..
                }) => Some((f.at, *rate, *duration)),
                _ => None,
            })
            .collect();
        assert_eq!(shrunk.len(), 3, "{shrunk:?}");
        assert_eq!(bits.len(), 1, "{shrunk:?}");
        let (at, rate, duration) = bits[0];
        assert_eq!(at, ms(1000));
        assert!(rate <= 0.0011, "{rate}");
        assert!(duration > ms(500) && duration <= ms(501), "{duration}");
    }

    #[test]
    fn with_faults_runs_exactly_the_schedule_given() {
        let s = scenario(CHAOS);
        let schedule = vec![
            ScheduledFault {
                at: ms(100),
                fault: Fault::Link(LinkFault {
                    device: "e1".into(),
                    kind: LinkFaultKind::Outage(ms(200)),
                }),
            },
            ScheduledFault {
                at: ms(600),
                fault: Fault::Uart(UartFault {
                    device: "e1".into(),
                    direction: Default::default(),
                    kind: UartFaultKind::Disconnect(ms(50)),
                }),
            },
        ];
        let fixed = with_faults(&s, schedule.clone());
        let chaos = fixed.chaos.as_ref().unwrap();
        assert!(chaos.faults.is_empty() && chaos.window.is_none());
        assert_eq!(chaos.schedule, schedule);
        assert_eq!(chaos.draw(99, fixed.duration_limit), schedule);
        let mut runner = TestRunner::new(config(16));
        runner
            .run(&faults(&fixed), |drawn| {
                prop_assert_eq!(&drawn, &schedule);
                Ok(())
            })
            .unwrap();
        // The run applies it (and only it), and passes.
        let outcome = run(&fixed);
        assert!(outcome.passed(), "{}", failures(&outcome));
        assert_eq!(outcome.faults, schedule);
        // No faults: no `chaos:` at all (an empty one does not validate).
        assert_eq!(with_faults(&s, Vec::new()).chaos, None);
    }

    #[test]
    fn failures_name_the_run_failure_and_each_failed_assertion() {
        let s = scenario(
            "name: f\nseed: 1\nduration_limit: 5s\ndevices: [ { kind: echo, id: e1 } ]\nsteps:\n  - expect: { message: { topic: twinrig/echo/e1/rx, count: { at_least: 1 } } }\n  - wait_for: { topic: twinrig/echo/e1/rx, text: never, timeout: 100ms }\n",
        );
        let outcome = run(&s);
        assert!(!outcome.passed());
        let text = failures(&outcome);
        assert!(text.contains("step 1 "), "{text}");
        assert!(text.contains("step 2 wait_for"), "{text}");
        // The run's failure is the wait's: said once.
        assert_eq!(text.lines().count(), 2, "{text}");
        let late = run(&scenario(
            "name: late\nseed: 1\nduration_limit: 1s\ndevices: [ { kind: echo, id: e1 } ]\nsteps: [ { delay: 2s } ]\n",
        ));
        let text = failures(&late);
        assert!(text.starts_with("run failed: "), "{text}");
        let ok = run(&scenario(
            "name: ok\nseed: 1\nduration_limit: 1s\ndevices: [ { kind: echo, id: e1 } ]\nsteps: [ { delay: 1ms } ]\n",
        ));
        assert_eq!(failures(&ok), "");
    }

    #[test]
    fn the_case_count_comes_from_the_environment_or_the_default() {
        // The variable is not set in the test environment.
        if std::env::var_os(CASES_VAR).is_none() {
            assert_eq!(config(7).cases, 7);
        }
        let c = config(7);
        assert!(c.failure_persistence.is_none());
        assert!(matches!(c.rng_seed, RngSeed::Fixed(_)));
    }
}
