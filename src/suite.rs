//! Loading scenario files with every check this build can make, and running
//! them: what `twinrig run`, `validate`, `replay` and `record` share.

use std::path::{Path, PathBuf};

use crate::devices;
use crate::runner::{self, Outcome};
use crate::scenario::{self, Scenario, ScenarioError};
use twinrig_sim::Trace;

/// A scenario file, read and checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Where it came from.
    pub path: PathBuf,
    /// The YAML text (recorded in traces for replay).
    pub source: String,
    /// The parsed scenario.
    pub scenario: Scenario,
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    /// The file is malformed or fails a check.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Scenario(#[from] ScenarioError),
    /// A problem outside a scenario file's text (a trace that holds no
    /// scenario). Wrong `params` are [`ScenarioError`]s, with their position.
    #[error("{path}: device {index} ({id}, kind {kind}): {message}")]
    Params {
        /// File.
        path: String,
        /// Device number, 1-based.
        index: usize,
        /// Device id.
        id: String,
        /// Kind.
        kind: String,
        /// What is wrong.
        message: String,
    },
}

impl LoadError {
    /// One-line form: `path:line:col: message` where known.
    pub fn render_plain(&self) -> String {
        match self {
            LoadError::Scenario(e) => e.render_plain(),
            other => other.to_string(),
        }
    }

    /// The error as a terminal shows it: miette's report with source
    /// snippets where lines are short enough, else the plain form. Never
    /// panics: should the renderer panic anyway (it has, on columns past
    /// 65,535), the plain form is returned.
    pub fn render(&self) -> String {
        use miette::ReportHandler as _;
        struct Shown<'a>(&'a miette::MietteHandler, &'a LoadError);
        impl std::fmt::Debug for Shown<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.debug(self.1, f)
            }
        }
        let handler = miette::MietteHandlerOpts::new().build();
        // The default panic hook would print the panic before it is caught.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut out = String::new();
            std::fmt::Write::write_fmt(&mut out, format_args!("{:?}", Shown(&handler, self)))
                .map(|()| out)
        }));
        std::panic::set_hook(hook);
        match shown {
            Ok(Ok(text)) => text,
            _ => self.render_plain(),
        }
    }
}

/// The device kinds of this build, as the scenario checks see them.
struct BuildKinds;

impl scenario::DeviceKinds for BuildKinds {
    fn names(&self) -> Vec<&str> {
        devices::kind_names()
    }

    fn parse_params(
        &self,
        kind: &str,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<devices::DeviceSpec>, devices::ParamsError> {
        match devices::kind(kind) {
            Some(kind) => kind.params().parse(params).map(Some),
            None => Ok(None),
        }
    }

    fn takes_spoken_commands(&self, kind: &str) -> Option<bool> {
        devices::kind(kind).map(|k| k.command_model().is_some())
    }

    fn invariants(
        &self,
        kind: Option<&str>,
    ) -> Option<&'static [&'static dyn twinrig_kind::InvariantModel]> {
        match kind {
            Some(kind) => devices::kind(kind).map(|k| k.invariants()),
            None => Some(&crate::fleet::invariants::INVARIANTS),
        }
    }
}

/// Parses `source` as the scenario at `path` and checks everything, device
/// `params` included (each at its line and column).
pub fn parse(source: String, path: &Path) -> Result<Loaded, LoadError> {
    let scenario = scenario::parse_scenario_with(&source, path, &BuildKinds)?;
    Ok(Loaded {
        path: path.to_owned(),
        source,
        scenario,
    })
}

/// Reads and checks the scenario file at `path` (at most
/// [`scenario::MAX_FILE_BYTES`], a regular file).
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let source = scenario::read_scenario_text(path)?;
    parse(source, path)
}

/// Loads every scenario file under `paths`; each that fails goes to
/// `on_error`. Returns what loaded and how many failed (an error when no
/// scenario file is found at all).
pub fn load_all(
    paths: &[PathBuf],
    mut on_error: impl FnMut(LoadError),
) -> Result<(Vec<Loaded>, usize), String> {
    let files = scenario::find_scenario_files(paths).map_err(|e| e.render_plain())?;
    if files.is_empty() {
        return Err("no scenario files (*.yaml, *.yml) found".into());
    }
    let mut loaded = Vec::new();
    let mut failed = 0;
    for f in files {
        match load(&f) {
            Ok(l) => loaded.push(l),
            Err(e) => {
                on_error(e);
                failed += 1;
            }
        }
    }
    Ok((loaded, failed))
}

/// Runs a loaded scenario, its trace kept in memory.
pub fn run(loaded: &Loaded, progress: impl FnMut(twinrig_sim::Nanos) + 'static) -> Outcome {
    runner::run(&loaded.scenario, &loaded.source, progress)
}

/// Runs a loaded scenario with the trace output (and log retention) given:
/// `twinrig run` streams to a file or keeps no trace at all.
pub fn run_with(
    loaded: &Loaded,
    options: &runner::RunOptions,
    progress: impl FnMut(twinrig_sim::Nanos) + 'static,
) -> Outcome {
    runner::run_with_options(
        &loaded.scenario,
        &loaded.source,
        devices::kinds(),
        options,
        progress,
    )
}

/// Re-runs the scenario recorded in `trace` (its text and seed) and returns the new run.
pub fn rerun_recorded(trace: &Trace, label: &Path) -> Result<Outcome, LoadError> {
    let source = trace
        .metadata
        .get("scenario")
        .and_then(|m| m.get("source"))
        .cloned()
        .ok_or_else(|| LoadError::Params {
            path: label.display().to_string(),
            index: 0,
            id: String::new(),
            kind: String::new(),
            message: "the trace holds no scenario (metadata record `scenario`)".into(),
        })?;
    let mut loaded = parse(source, label)?;
    // The run's seed, which `run --seed` and sweeps set over the file's.
    if let Some(seed) = trace
        .metadata
        .get("scenario")
        .and_then(|m| m.get("seed"))
        .and_then(|s| s.parse().ok())
    {
        loaded.scenario.seed = seed;
    }
    Ok(run(&loaded, |_| {}))
}

/// The golden trace file for a scenario: `scenarios/core/echo.yaml` ->
/// `tests/replays/core/echo.mcap` (relative to `scenarios_root`).
pub fn golden_path(scenarios_root: &Path, replays_root: &Path, scenario: &Path) -> PathBuf {
    let rel = scenario.strip_prefix(scenarios_root).unwrap_or(scenario);
    replays_root.join(rel).with_extension("mcap")
}

/// A file-name-safe form of a scenario name, for trace files.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(yaml: &str) -> String {
        match parse(yaml.to_owned(), Path::new("test.yaml")) {
            Ok(_) => panic!("parsed:\n{yaml}"),
            Err(e) => e.render_plain(),
        }
    }

    #[test]
    fn errors_in_device_params_carry_the_position_of_the_offending_key() {
        // They used to carry no line:col at all.
        let text = "name: x\nseed: 1\nduration_limit: 1s\ndevices:\n  - { kind: echo, id: e1, params: { baud: 9600, baudrate: 9600 } }\n  - kind: rvr\n    id: r1\n    params:\n      x: 1\n      stream_period_ms: 10\n  - { kind: hand, id: h1, params: { video_fps: fast } }\nsteps:\n  - delay: 1ms\n";
        let out = plain(text);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[0].starts_with(
                "test.yaml:5:59: device 1 (`e1`): `params` of kind `echo`: unknown field `baudrate`"
            ),
            "{out}"
        );
        assert_eq!(
            lines[1],
            "test.yaml:10:25: device 2 (`r1`): `params` of kind `rvr`: stream_period_ms must be at least 33 (the RVR refuses faster streaming)"
        );
        assert!(
            lines[2].starts_with("test.yaml:11:48: device 3 (`h1`): `params` of kind `hand`: invalid type: string \"fast\""),
            "{out}"
        );
    }

    #[test]
    fn named_checks_are_checked_against_their_kind_with_positions() {
        let text = "name: x\nseed: 1\nduration_limit: 1s\ndevices:\n  - { kind: rvr, id: r1 }\n  - { kind: echo, id: e1 }\ninvariants:\n  - check: { device: r1, name: stop_after_cancel }\n  - check: { device: r1, name: stops_after_cancel, within: soon }\n  - check: { device: e1, name: anything }\n  - check: { device: r1, name: one_terminal_status, must_end: 1 }\nsteps:\n  - delay: 1ms\n";
        let out = plain(text);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(
            lines[0],
            "test.yaml:8:32: invariant 1: kind `rvr` (device r1) has no check `stop_after_cancel` (it has: one_terminal_status, stops_after_cancel)"
        );
        assert!(
            lines[1].starts_with("test.yaml:9:60: invariant 2: check `stops_after_cancel`: "),
            "{out}"
        );
        assert_eq!(
            lines[2],
            "test.yaml:10:32: invariant 3: kind `echo` (device e1) offers no named checks (`anything` asked for)"
        );
        assert!(
            lines[3].starts_with(
                "test.yaml:11:63: invariant 4: check `one_terminal_status`: invalid type"
            ),
            "{out}"
        );
    }

    #[test]
    fn say_to_a_kind_that_takes_no_spoken_commands_is_refused() {
        // It used to pass validation and fail the run when the step came.
        let text = "name: x\nseed: 1\nduration_limit: 1s\ndevices:\n  - { kind: echo, id: e1 }\n  - { kind: rvr, id: r1 }\nsteps:\n  - say: { device: r1, text: \"drive forward one metre\" }\n  - say: { device: e1, text: \"drive forward one metre\" }\n";
        assert_eq!(
            plain(text),
            "test.yaml:9:20: step 2 (say): device `e1` (kind `echo`) takes no spoken commands; kinds that do: rvr, hand"
        );
    }

    #[test]
    fn a_kind_takes_spoken_commands_exactly_when_its_devices_have_a_command_topic() {
        // Each kind's `say` runs (checked by name only, so the run itself
        // judges): it fails for exactly the kinds that say they take none.
        for kind in devices::kinds() {
            let text = format!(
                "name: say\nseed: 1\nduration_limit: 30s\ndevices: [ {{ kind: {}, id: d1 }} ]\nsteps:\n  - say: {{ device: d1, text: \"drive forward one metre\" }}\n  - delay: 10ms\n",
                kind.name()
            );
            let path = Path::new("say.yaml");
            let scenario = scenario::parse_scenario(&text, path, &devices::kind_names())
                .unwrap_or_else(|e| panic!("{}", e.render_plain()));
            let loaded = Loaded {
                path: path.to_owned(),
                source: text,
                scenario,
            };
            let outcome = run(&loaded, |_| {});
            let refused = outcome
                .failure
                .as_deref()
                .is_some_and(|f| f.contains("takes no spoken commands"));
            if kind.command_model().is_some() {
                assert_eq!(outcome.failure, None, "{}", kind.name());
            } else {
                assert!(refused, "{}: {:?}", kind.name(), outcome.failure);
            }
        }
    }

    #[test]
    fn load_errors_render_without_panicking_on_long_lines() {
        let steps = vec!["{ delay: 1ms }"; 7_000].join(", ");
        let text =
            format!("name: x\nseed: 1\nduration_limit: 1s\nsteps: [ {steps}, {{ dlay: 1ms }} ]\n");
        let err = parse(text, Path::new("long.yaml")).unwrap_err();
        let shown = err.render();
        assert!(shown.contains("long.yaml:4:"), "{shown}");
        assert!(shown.contains("unknown variant `dlay`"), "{shown}");
    }

    /// A scenario written back as YAML (what `sweep --shrink` writes) reads
    /// back as the same scenario, for every shipped one.
    #[test]
    fn every_shipped_scenario_round_trips_through_yaml() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let files = scenario::find_scenario_files(&[root]).unwrap();
        assert!(files.len() >= 30);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let s = parse(text, &f).unwrap().scenario;
            let yaml = serde_saphyr::to_string(&s).unwrap();
            let back = parse(yaml.clone(), &f)
                .unwrap_or_else(|e| panic!("{}: {}\n{yaml}", f.display(), e.render_plain()))
                .scenario;
            assert_eq!(back, s, "{}", f.display());
        }
    }
}
