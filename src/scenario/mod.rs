//! Scenario files: the model, reading and checking them, and their JSON Schema.
//!
//! ```text
//! text --serde-saphyr--> Scenario (syntax, types, unknown keys)  -> ScenarioError::Parse
//!      --validate------> ok       (references, ranges, topics)   -> ScenarioError::Invalid
//! ```
//!
//! Every error carries the file path, line and column; [`ScenarioError`] is a
//! `miette::Diagnostic` with the file text for snippets, and
//! [`ScenarioError::render_plain`] gives `path:line:col: message` lines.

use std::path::{Path, PathBuf};

pub mod duration;
pub mod fleet;
pub mod fleet_file;
mod load;
pub mod model;
pub mod schema;
pub mod validate;

pub use duration::{Duration, ParseDurationError};
pub use fleet::*;
pub use fleet_file::{FleetFile, load_fleet_file, parse_fleet_file};
pub use load::{Position, Problem, ScenarioError};
pub use model::*;
pub use schema::{scenario_schema, scenario_schema_json};
pub use validate::{PathSeg, SemanticError, validate};

/// Reads a scenario from YAML `text`; `path` is used in messages.
/// Checks syntax, types and meaning (`known_kinds`: the device kinds this
/// build can run).
pub fn parse_scenario(
    text: &str,
    path: &Path,
    known_kinds: &[&str],
) -> Result<Scenario, ScenarioError> {
    let scenario = load::parse_yaml(text, path)?;
    validate(&scenario, known_kinds).map_err(|errors| load::invalid(text, path, errors))?;
    Ok(scenario)
}

/// Reads and checks the scenario file at `path` (see [`parse_scenario`]).
pub fn load_scenario(path: &Path, known_kinds: &[&str]) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_scenario(&text, path, known_kinds)
}

/// The scenario files named by `paths`: a file is taken as is; a directory is
/// walked recursively for `*.yaml` and `*.yml` files (sorted by path; hidden
/// entries and symlinked directories are skipped). A path that does not exist
/// is an error. A file named twice is listed once.
pub fn find_scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| ScenarioError::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    Ok(out)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), ScenarioError> {
    let io = |source| ScenarioError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(|source| ScenarioError::Io {
            path: path.clone(),
            source,
        })?;
        if file_type.is_dir() {
            walk(&path, found)?;
        } else if is_yaml(&path) && (file_type.is_file() || path.is_file()) {
            found.push(path);
        }
    }
    Ok(())
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

#[cfg(test)]
mod tests;
