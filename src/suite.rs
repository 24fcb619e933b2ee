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
    /// A device's `params` are wrong for its kind.
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
}

/// Parses `source` as the scenario at `path` and checks everything, device params included.
pub fn parse(source: String, path: &Path) -> Result<Loaded, LoadError> {
    let kinds = devices::kind_names();
    let scenario = scenario::parse_scenario(&source, path, &kinds)?;
    for (i, d) in scenario.devices.iter().enumerate() {
        let kind = devices::kind(&d.kind).expect("validate checked the kind");
        kind.check_params(&d.params)
            .map_err(|message| LoadError::Params {
                path: path.display().to_string(),
                index: i + 1,
                id: d.id.clone(),
                kind: d.kind.clone(),
                message,
            })?;
    }
    Ok(Loaded {
        path: path.to_owned(),
        source,
        scenario,
    })
}

/// Reads and checks the scenario file at `path`.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(source, path)
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
    let loaded = parse(source, label)?;
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
