//! Seed sweeps: a scenario run under many seeds, each run deterministic for
//! its seed, on all cores, summarised as a pass rate, the failing seeds
//! (each reproducible with `twinrig run FILE --seed S`) and the distribution
//! of every figure the runs measured.
//!
//! What a sweep computes depends only on the scenarios and the seeds: the
//! runs are ordered by (scenario, seed) whatever thread ran them, and no
//! wall-clock figure enters the results, so a sweep's JSON is the same for
//! any `--jobs` and across machines (`--shard` splits the seeds; `merge`
//! puts the shards' results back together).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::runner::{Outcome, RunOptions};
use crate::scenario::chaos::ScheduledFault;
use crate::suite::{self, Loaded};

/// The seeds to sweep: `start..end` (end excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    /// First seed.
    pub start: u64,
    /// One past the last seed.
    pub end: u64,
}

impl SeedRange {
    /// Parses `N` (seeds 0 to N-1) or `A..B` (A to B-1).
    pub fn parse(text: &str) -> Result<SeedRange, String> {
        let number = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{s}` is not a seed count or range (N, or A..B)"))
        };
        let range = match text.split_once("..") {
            Some((a, b)) => SeedRange {
                start: number(a)?,
                end: number(b)?,
            },
            None => SeedRange {
                start: 0,
                end: number(text)?,
            },
        };
        if range.end <= range.start {
            return Err(format!("`{text}` holds no seeds"));
        }
        Ok(range)
    }

    /// How many seeds.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Shard `index` (1-based) of `count`: the seeds whose position in the
/// range is `index - 1` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, 1-based.
    pub index: u64,
    /// Of how many.
    pub count: u64,
}

impl Shard {
    /// Parses `K/N` (1 <= K <= N).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("`{text}` is not a shard: K/N with 1 <= K <= N");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// The seeds of `range` in this shard.
    pub fn seeds(&self, range: SeedRange) -> impl Iterator<Item = u64> + '_ {
        (range.start..range.end).filter(move |s| (s - range.start) % self.count == self.index - 1)
    }
}

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// Whether the run passed.
    pub passed: bool,
    /// Why it failed: the run's failure or its first failed assertion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every figure the run measured, by name.
    pub metrics: BTreeMap<String, f64>,
    /// The fault schedule the seed drew (`chaos:`), in start order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<ScheduledFault>,
}

/// The figures a run measured: the runner's derived metrics, the virtual
/// time the run took, and the number each `expect` and `wait_for` compared
/// (named after its step).
pub fn measured(outcome: &Outcome) -> BTreeMap<String, f64> {
    let mut out = outcome.metrics.clone();
    out.insert("run.virtual_s".into(), outcome.virtual_ns as f64 / 1e9);
    for a in &outcome.assertions {
        if let Some(v) = a.value {
            out.insert(format!("step {}: {}", a.step, a.description), v);
        }
    }
    // JSON has no NaN or infinity: such a figure is left out.
    out.retain(|_, v| v.is_finite());
    out
}

/// Why a run failed, in one line.
pub fn reason(outcome: &Outcome) -> Option<String> {
    if let Some(f) = &outcome.failure {
        return Some(f.clone());
    }
    outcome
        .assertions
        .iter()
        .find(|a| !a.passed)
        .map(|a| format!("step {} {}: {}", a.step, a.description, a.detail))
}

/// min / p50 / p95 / p99 / max of a figure over the runs that measured it
/// (nearest-rank percentiles: every value reported is one a run measured).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Runs that measured it.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Distribution {
    /// Of `values` (None when there are none).
    pub fn of(values: &[f64]) -> Option<Distribution> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[i.clamp(1, sorted.len()) - 1]
        };
        Some(Distribution {
            n: sorted.len(),
            min: sorted[0],
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// A scenario's sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioSweep {
    /// The scenario file, as given.
    pub path: PathBuf,
    /// Its name.
    pub name: String,
    /// Runs made.
    pub runs: usize,
    /// Runs that passed.
    pub passed: usize,
    /// `passed / runs`.
    pub pass_rate: f64,
    /// The failing seeds, in order.
    pub failing_seeds: Vec<u64>,
    /// Each figure's distribution over the runs.
    pub metrics: BTreeMap<String, Distribution>,
    /// Every run, by seed.
    pub results: Vec<SeedRun>,
}

impl ScenarioSweep {
    /// The summary of `results` (sorted by seed here).
    pub fn new(path: PathBuf, name: String, mut results: Vec<SeedRun>) -> ScenarioSweep {
        results.sort_by_key(|r| r.seed);
        let passed = results.iter().filter(|r| r.passed).count();
        let mut values: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for r in &results {
            for (k, v) in &r.metrics {
                values.entry(k.as_str()).or_default().push(*v);
            }
        }
        let metrics = values
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), Distribution::of(&v)?)))
            .collect();
        ScenarioSweep {
            runs: results.len(),
            passed,
            pass_rate: if results.is_empty() {
                0.0
            } else {
                passed as f64 / results.len() as f64
            },
            failing_seeds: results
                .iter()
                .filter(|r| !r.passed)
                .map(|r| r.seed)
                .collect(),
            metrics,
            path,
            name,
            results,
        }
    }

    /// The command that reproduces `seed`'s run.
    pub fn reproduce(&self, seed: u64) -> String {
        format!("twinrig run {} --seed {seed}", self.path.display())
    }
}

/// A whole sweep: what `--json` writes and `merge` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The seeds asked for.
    pub seeds: SeedRange,
    /// The shard run, if the sweep was split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Per scenario, in the order given.
    pub scenarios: Vec<ScenarioSweep>,
}

impl Sweep {
    /// Runs that failed, over every scenario.
    pub fn failed(&self) -> usize {
        self.scenarios.iter().map(|s| s.runs - s.passed).sum()
    }

    /// JSON, pretty-printed (stable: maps are sorted, runs by seed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// JUnit XML: a test suite per scenario, a test case per seed.
    pub fn to_junit(&self) -> String {
        use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
        let mut report = Report::new("twinrig sweep");
        for s in &self.scenarios {
            let mut suite = TestSuite::new(s.name.clone());
            for r in &s.results {
                let status = if r.passed {
                    TestCaseStatus::success()
                } else {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(r.reason.clone().unwrap_or_default());
                    st.set_description(s.reproduce(r.seed));
                    st
                };
                let mut case = TestCase::new(format!("seed {}", r.seed), status);
                case.set_classname(s.path.display().to_string());
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        report.to_string().unwrap_or_default()
    }

    /// The summary a terminal shows: per scenario the pass rate, the
    /// failing seeds with the command that reproduces the first, and a
    /// table of the figures' distributions.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for s in &self.scenarios {
            out.push_str(&format!(
                "{} ({}): {}/{} passed ({:.1}%)\n",
                s.name,
                s.path.display(),
                s.passed,
                s.runs,
                100.0 * s.pass_rate
            ));
            if let Some(first) = s.failing_seeds.first() {
                let shown: Vec<String> = s
                    .failing_seeds
                    .iter()
                    .take(20)
                    .map(u64::to_string)
                    .collect();
                let more = s.failing_seeds.len().saturating_sub(shown.len());
                out.push_str(&format!(
                    "  failing seeds: {}{}\n",
                    shown.join(", "),
                    if more > 0 {
                        format!(" (and {more} more)")
                    } else {
                        String::new()
                    }
                ));
                if let Some(why) = s
                    .results
                    .iter()
                    .find(|r| r.seed == *first)
                    .and_then(|r| r.reason.as_ref())
                {
                    out.push_str(&format!("  seed {first}: {why}\n"));
                }
                out.push_str(&format!("  reproduce: {}\n", s.reproduce(*first)));
            }
            if !s.metrics.is_empty() {
                let width = s.metrics.keys().map(String::len).max().unwrap_or(0).max(6);
                out.push_str(&format!(
                    "  {:<width$} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
                    "figure", "n", "min", "p50", "p95", "p99", "max"
                ));
                let mut rows: Vec<(&String, &Distribution)> = s.metrics.iter().collect();
                rows.sort_by_key(|(name, _)| natural_key(name));
                for (name, d) in rows {
                    out.push_str(&format!(
                        "  {name:<width$} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
                        d.n,
                        short(d.min),
                        short(d.p50),
                        short(d.p95),
                        short(d.p99),
                        short(d.max)
                    ));
                }
            }
        }
        out
    }

    /// Puts shards' sweeps of the same seeds and scenarios back together.
    /// A seed that two inputs both ran must have the same result in both.
    pub fn merge(parts: Vec<Sweep>) -> Result<Sweep, String> {
        let Some(first) = parts.first() else {
            return Err("nothing to merge".into());
        };
        let seeds = first.seeds;
        let mut order: Vec<(PathBuf, String)> = Vec::new();
        let mut runs: BTreeMap<PathBuf, BTreeMap<u64, SeedRun>> = BTreeMap::new();
        for (i, part) in parts.iter().enumerate() {
            if part.seeds != seeds {
                return Err(format!(
                    "input {} swept seeds {}..{}, the first {}..{}: not shards of one sweep",
                    i + 1,
                    part.seeds.start,
                    part.seeds.end,
                    seeds.start,
                    seeds.end
                ));
            }
            for s in &part.scenarios {
                if !order.iter().any(|(p, _)| p == &s.path) {
                    order.push((s.path.clone(), s.name.clone()));
                }
                let by_seed = runs.entry(s.path.clone()).or_default();
                for r in &s.results {
                    match by_seed.get(&r.seed) {
                        Some(seen) if seen != r => {
                            return Err(format!(
                                "{} seed {}: two inputs disagree on its result",
                                s.path.display(),
                                r.seed
                            ));
                        }
                        Some(_) => {}
                        None => {
                            by_seed.insert(r.seed, r.clone());
                        }
                    }
                }
            }
        }
        let scenarios = order
            .into_iter()
            .map(|(path, name)| {
                let results = runs
                    .remove(&path)
                    .unwrap_or_default()
                    .into_values()
                    .collect();
                ScenarioSweep::new(path, name, results)
            })
            .collect();
        Ok(Sweep {
            seeds,
            shard: None,
            scenarios,
        })
    }
}

/// A name's sort key with its numbers compared as numbers ("step 5"
/// before "step 10").
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut text = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = u64::from(c as u8 - b'0');
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(u64::from(d));
                chars.next();
            }
            key.push((std::mem::take(&mut text), n));
        } else {
            text.push(c);
        }
    }
    key.push((text, 0));
    key
}

fn short(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

/// One run to make: which scenario, which seed.
struct Task {
    scenario: usize,
    seed: u64,
}

/// Runs every scenario under every seed on `jobs` threads; `done` is
/// called after each run (for a progress bar), from the thread that ran it.
pub fn sweep(
    loaded: &[Loaded],
    seeds: SeedRange,
    shard: Option<Shard>,
    jobs: usize,
    done: &(dyn Fn(&str, &SeedRun) + Sync),
) -> Sweep {
    let shard_or_all = shard.unwrap_or(Shard { index: 1, count: 1 });
    let tasks: Vec<Task> = (0..loaded.len())
        .flat_map(|scenario| {
            shard_or_all
                .seeds(seeds)
                .map(move |seed| Task { scenario, seed })
        })
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Vec<SeedRun>>> = Mutex::new(vec![Vec::new(); loaded.len()]);
    std::thread::scope(|scope| {
        for worker in 0..jobs.max(1) {
            let (next, results, tasks) = (&next, &results, &tasks);
            // A world (physics, broker link, devices) per run: the runs
            // share nothing but this list of tasks.
            let spawned = std::thread::Builder::new()
                .name(format!("sweep-{worker}"))
                .stack_size(RUN_STACK)
                .spawn_scoped(scope, move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(task) = tasks.get(i) else { break };
                        let run = run_seed(&loaded[task.scenario], task.seed);
                        done(&loaded[task.scenario].scenario.name, &run);
                        if let Ok(mut r) = results.lock() {
                            r[task.scenario].push(run);
                        }
                    }
                });
            if spawned.is_err() {
                // No more threads to be had: those started carry on.
                break;
            }
        }
    });
    // Every worker may have failed to start: run what is left here.
    while let Some(task) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) {
        let run = run_seed(&loaded[task.scenario], task.seed);
        done(&loaded[task.scenario].scenario.name, &run);
        if let Ok(mut r) = results.lock() {
            r[task.scenario].push(run);
        }
    }
    let results = results.into_inner().unwrap_or_default();
    Sweep {
        seeds,
        shard,
        scenarios: loaded
            .iter()
            .zip(results)
            .map(|(l, r)| ScenarioSweep::new(l.path.clone(), l.scenario.name.clone(), r))
            .collect(),
    }
}

/// A run's thread stack: the main thread's usual 8 MiB (the world's
/// futures and the physics engine's recursion are sized for it).
const RUN_STACK: usize = 8 * 1024 * 1024;

/// `loaded` with its seed replaced.
pub fn with_seed(loaded: &Loaded, seed: u64) -> Loaded {
    let mut l = loaded.clone();
    l.scenario.seed = seed;
    l
}

/// One run, its trace discarded.
fn run_seed(loaded: &Loaded, seed: u64) -> SeedRun {
    let l = with_seed(loaded, seed);
    let outcome = suite::run_with(&l, &RunOptions::untraced(), |_| {});
    SeedRun {
        seed,
        passed: outcome.passed(),
        reason: reason(&outcome),
        metrics: measured(&outcome),
        faults: outcome.faults,
    }
}

/// Re-runs a failing seed with its trace written to `path` (the run is
/// deterministic: it fails the same way).
pub fn write_trace(loaded: &Loaded, seed: u64, path: &Path) -> Result<(), String> {
    let l = with_seed(loaded, seed);
    let options = RunOptions {
        trace: twinrig_sim::TraceOutput::File(path.to_owned()),
        ..Default::default()
    };
    let outcome = suite::run_with(&l, &options, |_| {});
    match outcome.trace_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_shards_parse_and_split_the_range_without_overlap() {
        assert_eq!(SeedRange::parse("3"), Ok(SeedRange { start: 0, end: 3 }));
        assert_eq!(
            SeedRange::parse("10..20"),
            Ok(SeedRange { start: 10, end: 20 })
        );
        for bad in ["", "x", "0", "5..5", "6..2", "-1", "1..x"] {
            assert!(SeedRange::parse(bad).is_err(), "{bad}");
        }
        let range = SeedRange { start: 10, end: 21 };
        let shards: Vec<Vec<u64>> = (1..=3)
            .map(|k| {
                Shard::parse(&format!("{k}/3"))
                    .unwrap()
                    .seeds(range)
                    .collect()
            })
            .collect();
        let mut all: Vec<u64> = shards.concat();
        all.sort_unstable();
        assert_eq!(all, (10..21).collect::<Vec<_>>());
        assert_eq!(shards[0], [10, 13, 16, 19]);
        for bad in ["0/3", "4/3", "1/0", "1", "a/b", "1/2/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn figures_are_listed_with_their_numbers_in_numeric_order() {
        let mut names = vec!["step 10: b", "step 5: a", "run.virtual_s", "step 9: c"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(
            names,
            ["run.virtual_s", "step 5: a", "step 9: c", "step 10: b"]
        );
    }

    #[test]
    fn percentiles_are_nearest_rank_values_a_run_measured() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = Distribution::of(&values).unwrap();
        assert_eq!(
            (d.n, d.min, d.p50, d.p95, d.p99, d.max),
            (100, 1.0, 50.0, 95.0, 99.0, 100.0)
        );
        let d = Distribution::of(&[7.0]).unwrap();
        assert_eq!((d.p50, d.p99), (7.0, 7.0));
        // Order does not matter; NaN is left out.
        let d = Distribution::of(&[3.0, f64::NAN, 1.0, 2.0]).unwrap();
        assert_eq!((d.n, d.min, d.p50, d.max), (3, 1.0, 2.0, 3.0));
        assert_eq!(Distribution::of(&[]), None);
    }

    fn run(seed: u64, passed: bool, x: f64) -> SeedRun {
        SeedRun {
            seed,
            passed,
            reason: (!passed).then(|| "step 2 body: off".to_owned()),
            metrics: BTreeMap::from([("x".to_owned(), x)]),
            faults: Vec::new(),
        }
    }

    #[test]
    fn shards_merge_into_the_sweep_that_ran_whole() {
        let path = PathBuf::from("s.yaml");
        let seeds = SeedRange { start: 0, end: 4 };
        let whole = Sweep {
            seeds,
            shard: None,
            scenarios: vec![ScenarioSweep::new(
                path.clone(),
                "s".into(),
                vec![
                    run(0, true, 1.0),
                    run(1, false, 9.0),
                    run(2, true, 2.0),
                    run(3, true, 3.0),
                ],
            )],
        };
        let part = |k: u64, runs: Vec<SeedRun>| Sweep {
            seeds,
            shard: Some(Shard { index: k, count: 2 }),
            scenarios: vec![ScenarioSweep::new(path.clone(), "s".into(), runs)],
        };
        let merged = Sweep::merge(vec![
            part(2, vec![run(1, false, 9.0), run(3, true, 3.0)]),
            part(1, vec![run(0, true, 1.0), run(2, true, 2.0)]),
        ])
        .unwrap();
        assert_eq!(merged, whole);
        assert_eq!(merged.to_json(), whole.to_json());
        assert_eq!(whole.scenarios[0].failing_seeds, [1]);
        assert_eq!(whole.failed(), 1);
        let table = whole.table();
        assert!(table.contains("3/4 passed (75.0%)"), "{table}");
        assert!(
            table.contains("reproduce: twinrig run s.yaml --seed 1"),
            "{table}"
        );
        let junit = whole.to_junit();
        assert!(
            junit.contains(
                "<testsuite name=\"s\" tests=\"4\" skipped=\"0\" errors=\"0\" failures=\"1\">"
            ),
            "{junit}"
        );
        assert!(
            junit.contains(
                "<failure message=\"step 2 body: off\">twinrig run s.yaml --seed 1</failure>"
            ),
            "{junit}"
        );
        // Shards of different sweeps, or disagreeing results, are refused.
        let other = Sweep {
            seeds: SeedRange { start: 0, end: 5 },
            ..whole.clone()
        };
        assert!(Sweep::merge(vec![whole.clone(), other]).is_err());
        let disagree = part(1, vec![run(0, false, 1.0)]);
        assert!(Sweep::merge(vec![whole.clone(), disagree]).is_err());
        // A JSON result reads back as it was written.
        let back: Sweep = serde_json::from_str(&whole.to_json()).unwrap();
        assert_eq!(back, whole);
    }
}
