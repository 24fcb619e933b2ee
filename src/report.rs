//! Reports of a run: the terminal table, the JSON summary and JUnit XML.

use std::path::PathBuf;
use std::time::Duration as WallDuration;

use comfy_table::{Cell, Color, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use twinrig_sim::{SECONDS, format_nanos};

use crate::runner::{AssertionResult, Outcome};

/// One scenario's result as reported.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// Seed.
    pub seed: u64,
    /// Whether everything held.
    pub passed: bool,
    /// Failure apart from assertions (timeout, panic, limit, load error).
    pub failure: Option<String>,
    /// Every assertion.
    pub assertions: Vec<AssertionResult>,
    /// Virtual seconds simulated.
    pub virtual_time_s: f64,
    /// Wall seconds taken.
    pub wall_time_s: f64,
    /// Virtual seconds per wall second.
    pub real_time_factor: f64,
    /// Where the trace was written, if it was.
    pub trace: Option<PathBuf>,
    /// Figures derived from the run (e.g. command-to-motion latency in ms).
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// The fault schedule the run's seed drew from `chaos:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<crate::scenario::chaos::ScheduledFault>,
}

impl ScenarioReport {
    /// A report from an outcome and its wall time.
    pub fn new(
        path: PathBuf,
        outcome: &Outcome,
        wall: WallDuration,
        trace: Option<PathBuf>,
    ) -> Self {
        let virtual_time_s = outcome.virtual_ns as f64 / SECONDS as f64;
        let wall_time_s = wall.as_secs_f64();
        ScenarioReport {
            name: outcome.name.clone(),
            path,
            seed: outcome.seed,
            passed: outcome.passed(),
            failure: outcome.failure.clone(),
            assertions: outcome.assertions.clone(),
            virtual_time_s,
            wall_time_s,
            real_time_factor: if wall_time_s > 0.0 {
                virtual_time_s / wall_time_s
            } else {
                f64::INFINITY
            },
            trace,
            metrics: outcome.metrics.clone(),
            faults: outcome.faults.clone(),
        }
    }

    /// A scenario that could not be loaded or run at all.
    pub fn error(path: PathBuf, name: String, message: String) -> Self {
        ScenarioReport {
            name,
            path,
            seed: 0,
            passed: false,
            failure: Some(message),
            assertions: Vec::new(),
            virtual_time_s: 0.0,
            wall_time_s: 0.0,
            real_time_factor: 0.0,
            trace: None,
            metrics: Default::default(),
            faults: Vec::new(),
        }
    }

    fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self.failure.iter().cloned().collect();
        out.extend(self.assertions.iter().filter(|a| !a.passed).map(|a| {
            format!(
                "step {} [{}] {}: {}",
                a.step,
                format_nanos(a.at_ns),
                a.description,
                a.detail
            )
        }));
        out
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenarios that passed.
    pub passed: usize,
    /// Scenarios that failed.
    pub failed: usize,
    /// Each scenario.
    pub scenarios: Vec<ScenarioReport>,
}

impl Summary {
    /// Summarises reports.
    pub fn new(scenarios: Vec<ScenarioReport>) -> Self {
        let passed = scenarios.iter().filter(|s| s.passed).count();
        Summary {
            passed,
            failed: scenarios.len() - passed,
            scenarios,
        }
    }

    /// The JSON summary (`--json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("summary serialises") + "\n"
    }

    /// JUnit XML (`--junit`): one test suite, one test case per scenario.
    pub fn to_junit(&self) -> String {
        use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
        let mut report = Report::new("twinrig");
        let mut suite = TestSuite::new("scenarios");
        for s in &self.scenarios {
            let status = if s.passed {
                TestCaseStatus::success()
            } else {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let failures = s.failures();
                st.set_message(failures.first().cloned().unwrap_or_default());
                st.set_description(failures.join("\n"));
                st
            };
            let mut case = TestCase::new(s.name.clone(), status);
            case.set_classname(s.path.display().to_string());
            case.set_time(WallDuration::from_secs_f64(s.wall_time_s));
            case.add_property(("seed", s.seed.to_string().as_str()));
            case.add_property((
                "virtual_time_s",
                format!("{:.9}", s.virtual_time_s).as_str(),
            ));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
        report.to_string().unwrap_or_default()
    }

    /// The results table printed at the end of `twinrig run`.
    pub fn table(&self) -> String {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header([
            "scenario",
            "result",
            "assertions",
            "virtual",
            "wall",
            "real-time x",
        ]);
        for s in &self.scenarios {
            let held = s.assertions.iter().filter(|a| a.passed).count();
            let (word, color) = if s.passed {
                ("pass", Color::Green)
            } else {
                ("FAIL", Color::Red)
            };
            t.add_row(vec![
                Cell::new(&s.name),
                Cell::new(word).fg(color),
                Cell::new(format!("{held}/{}", s.assertions.len())),
                Cell::new(format!("{:.3} s", s.virtual_time_s)),
                Cell::new(format!("{:.3} s", s.wall_time_s)),
                Cell::new(if s.virtual_time_s > 0.0 {
                    format!("{:.0}", s.real_time_factor)
                } else {
                    "-".to_string()
                }),
            ]);
        }
        let mut out = t.to_string();
        for s in self.scenarios.iter().filter(|s| !s.metrics.is_empty()) {
            let figures: Vec<String> = s
                .metrics
                .iter()
                .map(|(k, v)| format!("{k} = {v:.1}"))
                .collect();
            out.push_str(&format!("\n{}: {}", s.name, figures.join(", ")));
        }
        for s in self.scenarios.iter().filter(|s| !s.passed) {
            out.push_str(&format!("\n{} ({}):", s.name, s.path.display()));
            for f in s.failures() {
                out.push_str(&format!("\n  - {f}"));
            }
        }
        out.push_str(&format!(
            "\n{} passed, {} failed\n",
            self.passed, self.failed
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A scenario's report with a fixed wall time, so every figure in it is
    /// the same on every machine.
    fn report_of(path: &str, text: &str) -> ScenarioReport {
        let scenario =
            crate::scenario::parse_scenario(text, Path::new(path), &crate::devices::kind_names())
                .unwrap();
        let outcome = crate::runner::run(&scenario, text, |_| {});
        ScenarioReport::new(
            PathBuf::from(path),
            &outcome,
            WallDuration::from_millis(250),
            None,
        )
    }

    fn shipped(path: &str) -> ScenarioReport {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        report_of(path, &text)
    }

    fn summary() -> Summary {
        Summary::new(vec![
            shipped("scenarios/core/echo-round-trip.yaml"),
            shipped("scenarios/rvr/forward-1m.yaml"),
            report_of(
                "fails.yaml",
                "name: fails\nseed: 1\nduration_limit: 5s\nsteps:\n  - delay: 1s\n  - expect: { message: { topic: nothing/here } }\n",
            ),
        ])
    }

    #[test]
    fn the_run_table_shows_results_metrics_and_failures() {
        insta::assert_snapshot!(summary().table());
    }

    #[test]
    fn the_json_summary_and_junit_carry_every_assertion() {
        let s = summary();
        insta::assert_snapshot!("json_summary", s.to_json());
        insta::assert_snapshot!("junit", s.to_junit());
    }
}
