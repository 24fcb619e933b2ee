//! Files twinrig writes (reports, record stores, golden traces) appear whole
//! or not at all: each is written to a temporary file beside its target and
//! renamed into place, so a run killed half-way never leaves a half file, and
//! an existing file is replaced only by a complete one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary file `path` is written to before the rename: same
/// directory (a rename within one file system is atomic), hidden, named
/// after the process so two runs never share one.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// A file that could not be written (its old contents, if any, are kept).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    /// The file.
    pub path: PathBuf,
    /// What the OS said.
    #[source]
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` atomically (temporary file, flush, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
}

/// Has `fill` create the file at the temporary path, then renames it to
/// `path`; on any error the temporary file is removed and `path` untouched.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let tmp = temporary_path(path);
    let result = fill(&tmp).and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        WriteError {
            path: path.to_owned(),
            source,
        }
    })
}

/// File stems for outputs named after scenarios, one per name in order:
/// the slug of the name, and `slug-2`, `slug-3`, ... for later scenarios
/// whose slug is taken, so no scenario's file overwrites another's.
pub fn distinct_stems<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::new();
    for name in names {
        let base = crate::suite::slug(name);
        let stem = (1..)
            .map(|n| {
                if n == 1 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                }
            })
            .find(|candidate| !used.contains(candidate))
            .expect("an unused stem exists");
        used.insert(stem.clone());
        out.push(stem);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write_atomic(&path, b"old").unwrap();
        let e = write_with(&path, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(e.path, path);
        assert_eq!(
            e.to_string(),
            format!("cannot write {}: disk full", path.display())
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(!temporary_path(&path).exists());
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn scenarios_with_the_same_name_get_distinct_stems() {
        assert_eq!(
            distinct_stems(["echo", "Echo", "rvr", "echo", "echo-2"]),
            ["echo", "echo-2", "rvr", "echo-3", "echo-2-2"]
        );
    }
}
