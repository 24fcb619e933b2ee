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

pub use twinrig_kind::duration;
pub mod chaos;
pub mod fleet;
pub mod fleet_file;
mod load;
pub mod model;
pub mod schema;
pub mod validate;

pub use duration::{Duration, MAX_DURATION, ParseDurationError};
pub use fleet::*;
pub use fleet_file::{FleetFile, load_fleet_file, parse_fleet_file};
pub use load::{
    MAX_FILE_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, Position, Problem, SNIPPET_MAX_LINE_BYTES,
    ScenarioError, read_scenario_text,
};
pub use model::*;
pub use schema::{scenario_schema, scenario_schema_json};
pub use validate::{DeviceKinds, KindNames, PathSeg, SemanticError, validate, validate_with};

/// Reads a scenario from YAML `text`; `path` is used in messages.
/// Checks syntax, types and meaning (`known_kinds`: the device kinds this
/// build can run).
pub fn parse_scenario(
    text: &str,
    path: &Path,
    known_kinds: &[&str],
) -> Result<Scenario, ScenarioError> {
    parse_scenario_with(text, path, &KindNames(known_kinds))
}

/// [`parse_scenario`] with every check `kinds` can make (device `params`,
/// `say` to kinds that take no spoken commands).
pub fn parse_scenario_with(
    text: &str,
    path: &Path,
    kinds: &dyn DeviceKinds,
) -> Result<Scenario, ScenarioError> {
    let scenario = load::parse_yaml(text, path)?;
    validate_with(&scenario, kinds).map_err(|errors| load::invalid(text, path, errors))?;
    Ok(scenario)
}

/// Reads and checks the scenario file at `path` (see [`parse_scenario`] and,
/// for what is read, [`read_scenario_text`]).
pub fn load_scenario(path: &Path, known_kinds: &[&str]) -> Result<Scenario, ScenarioError> {
    let text = read_scenario_text(path)?;
    parse_scenario(&text, path, known_kinds)
}

/// The scenario files named by `paths`: a file is taken as is; a directory is
/// walked recursively for `*.yaml` and `*.yml` entries (sorted by path;
/// hidden entries are skipped). Symbolic links are followed. Nothing is
/// skipped silently: a path that does not exist, a symbolic link that
/// cannot be followed (broken, or a loop) and a link to a directory that
/// holds it (which would be walked for ever) are errors naming the path.
/// A file named twice is listed once.
pub fn find_scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| unfollowable(path, e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            let mut inside = vec![canonical(path)?];
            walk(path, &mut found, &mut inside)?;
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

/// `inside`: the canonical paths of the directories being walked, outermost
/// first (a link back to one of them is a loop).
fn walk(
    dir: &Path,
    found: &mut Vec<PathBuf>,
    inside: &mut Vec<PathBuf>,
) -> Result<(), ScenarioError> {
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
        let is_dir = if file_type.is_symlink() {
            std::fs::metadata(&path)
                .map_err(|e| unfollowable(&path, e))?
                .is_dir()
        } else {
            file_type.is_dir()
        };
        if is_dir {
            let real = canonical(&path)?;
            if let Some(outer) = inside.iter().find(|d| **d == real) {
                return Err(ScenarioError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(format!(
                        "a symbolic link loop: this directory is `{}`, which holds it",
                        outer.display()
                    )),
                });
            }
            inside.push(real);
            walk(&path, found, inside)?;
            inside.pop();
        } else if is_yaml(&path) {
            // Devices and pipes with a scenario's name are taken too, and
            // refused with a reason when read.
            found.push(path);
        }
    }
    Ok(())
}

fn canonical(path: &Path) -> Result<PathBuf, ScenarioError> {
    std::fs::canonicalize(path).map_err(|e| unfollowable(path, e))
}

/// The error for a path that cannot be followed: for a symbolic link, it
/// says so and where it points.
fn unfollowable(path: &Path, source: std::io::Error) -> ScenarioError {
    let source = match std::fs::read_link(path) {
        Ok(target) => std::io::Error::new(
            source.kind(),
            format!(
                "a symbolic link to `{}` that cannot be followed: {source}",
                target.display()
            ),
        ),
        Err(_) => source,
    };
    ScenarioError::Io {
        path: path.to_owned(),
        source,
    }
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

#[cfg(test)]
mod tests;
