//! `serve cloud --state DIR`: what the cloud holds, kept across restarts.
//! The records the rules make go to `DIR/records.sqlite` as they are made.
//! The rest is one JSON file, `DIR/state.json`: the shadows (with versions and
//! metadata), the jobs (executions, timers, notifications), the thing
//! registry and the certificates and policies made over the API. It is read
//! when the server starts and written when it stops (Ctrl-C, SIGTERM, the
//! `--duration` end), to a temporary file that is synced and then renamed
//! over the old one, so a crash while writing leaves the previous state, not
//! half a file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use twinrig_cloud::certificates::CertificatesSnapshot;
use twinrig_cloud::things::ThingsSnapshot;

/// The file in the state folder.
pub const STATE_FILE: &str = "state.json";

/// The records store in the state folder (SQLite: each record is on disk
/// once the rule that made it has run).
pub const RECORDS_FILE: &str = "records.sqlite";

/// The records store kept in `dir` (created, with the folder, if missing).
pub fn open_records(dir: &Path) -> Result<twinrig_cloud::records::RecordStore, StateError> {
    std::fs::create_dir_all(dir).map_err(|e| StateError::Io {
        path: dir.to_owned(),
        message: e.to_string(),
    })?;
    let path = dir.join(RECORDS_FILE);
    twinrig_cloud::records::RecordStore::open(&path).map_err(|e| StateError::Invalid {
        path,
        message: e.to_string(),
    })
}

/// The format this build writes and reads.
const FORMAT: u32 = 1;

/// Everything kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloudState {
    /// [`FORMAT`].
    pub format: u32,
    /// `ShadowService::snapshot`.
    pub shadows: Value,
    /// `JobsService::snapshot`.
    pub jobs: Value,
    /// The thing registry.
    pub things: ThingsSnapshot,
    /// Certificates and policies (with `--certs`).
    pub certificates: Option<CertificatesSnapshot>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file or folder could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The file is not a state this build reads.
    #[error(
        "{}: {message} (it is left as it is; move it away to start empty)",
        path.display()
    )]
    Invalid {
        /// Where.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl CloudState {
    /// A state to write.
    pub fn new(
        shadows: Value,
        jobs: Value,
        things: ThingsSnapshot,
        certificates: Option<CertificatesSnapshot>,
    ) -> CloudState {
        CloudState {
            format: FORMAT,
            shadows,
            jobs,
            things,
            certificates,
        }
    }

    /// The state in `dir`, or None when there is none yet.
    pub fn load(dir: &Path) -> Result<Option<CloudState>, StateError> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StateError::Io {
                    path,
                    message: e.to_string(),
                });
            }
        };
        let invalid = |message: String| StateError::Invalid {
            path: path.clone(),
            message,
        };
        let state: CloudState = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if state.format != FORMAT {
            return Err(invalid(format!(
                "format {} (this build reads format {FORMAT})",
                state.format
            )));
        }
        Ok(Some(state))
    }

    /// Writes the state into `dir` (created if missing), replacing the old
    /// one only once the new one is on disk.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let io = |path: &Path, e: std::io::Error| StateError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec(self).map_err(|e| StateError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        // The rename itself is durable once the folder is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_bad_files_are_named_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        assert!(CloudState::load(dir.path()).unwrap().is_none());
        let things = twinrig_cloud::things::ThingRegistry::new("us-east-1", "1").snapshot();
        let state = CloudState::new(serde_json::json!([]), serde_json::json!({}), things, None);
        state.save(dir.path()).unwrap();
        let back = CloudState::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.format, FORMAT);
        assert_eq!(back.things, state.things);
        let path = dir.path().join(STATE_FILE);
        for bad in [
            "",
            "{",
            r#"{"format": 99, "shadows": [], "jobs": {}, "things": {"things": [], "thing_types": [], "groups": []}}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = CloudState::load(dir.path()).unwrap_err();
            assert!(e.to_string().contains(STATE_FILE), "{e}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
        }
    }
}
