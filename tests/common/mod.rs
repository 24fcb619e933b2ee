//! Running the `twinrig` binary from integration tests, as a user would.

#![allow(dead_code)] // Each test file uses its own subset.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `twinrig` with `args` in the crate's root.
pub fn twinrig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("twinrig runs")
}

/// Stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Fails if the output shows a panic.
pub fn no_panic(o: &Output) {
    let t = text(o);
    assert!(!t.contains("panicked"), "twinrig panicked:\n{t}");
}

/// Writes `body` to `dir/name`.
pub fn write_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}
