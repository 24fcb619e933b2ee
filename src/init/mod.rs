//! `twinrig init [DIR]`: a small scenario folder that runs green at once,
//! an example per robot kind (each kind's starter scenario, a data file in
//! its robot's folder), the JSON Schema for editors and a README (beside
//! this module).

use std::path::{Path, PathBuf};

/// The files `init` writes: name and contents (the schema is generated).
fn files() -> Vec<(String, String)> {
    let starters: Vec<(String, &str, &str)> = crate::devices::kinds()
        .iter()
        .filter_map(|k| {
            k.starter_scenario()
                .map(|text| (format!("{}.yaml", k.name()), k.summary(), text))
        })
        .collect();
    let list: String = starters
        .iter()
        .map(|(file, summary, _)| format!("- `{file}`: {summary}\n"))
        .collect();
    let mut files = vec![(
        "README.md".to_owned(),
        include_str!("README.md").replace("{starters}\n", &list),
    )];
    files.extend(
        starters
            .into_iter()
            .map(|(file, _, text)| (file, text.to_owned())),
    );
    files.push((
        "scenario.schema.json".to_owned(),
        crate::scenario::scenario_schema_json(),
    ));
    files
}

/// Why `twinrig init` wrote nothing (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A file of the example is already there.
    #[error(
        "{} already exists; `twinrig init` never overwrites (choose another directory)",
        .0.display()
    )]
    Exists(PathBuf),
    /// The folder could not be made.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// Writes the example folder into `dir` (created if missing). Refuses, before
/// writing anything, if one of its files already exists there.
pub fn write(dir: &Path) -> Result<Vec<PathBuf>, InitError> {
    let files = files();
    if let Some(existing) = files
        .iter()
        .map(|(name, _)| dir.join(name))
        .find(|p| p.exists())
    {
        return Err(InitError::Exists(existing));
    }
    std::fs::create_dir_all(dir).map_err(|source| InitError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        if let Err(source) = std::fs::write(&path, text) {
            return Err(InitError::Write { path, source });
        }
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_names_a_kind_this_build_has_and_points_at_the_schema() {
        let kinds = crate::devices::kind_names();
        for (name, text) in files() {
            if !name.ends_with(".yaml") {
                continue;
            }
            assert!(
                text.starts_with("# yaml-language-server: $schema=scenario.schema.json\n"),
                "{name}"
            );
            let kind = name.trim_end_matches(".yaml");
            assert!(kinds.contains(&kind), "{name}: kind {kind}");
        }
    }

    #[test]
    fn init_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rvr.yaml"), "mine").unwrap();
        let e = write(dir.path()).unwrap_err();
        assert!(
            matches!(&e, InitError::Exists(p) if p == &dir.path().join("rvr.yaml")),
            "{e}"
        );
        assert!(e.to_string().contains("rvr.yaml already exists"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("rvr.yaml")).unwrap(),
            "mine"
        );
        assert!(!dir.path().join("echo.yaml").exists(), "nothing written");
    }
}
