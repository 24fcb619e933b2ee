//! Conformance: real clients that nobody here wrote, unmodified, against
//! `twinrig serve`.
//!
//! - `sphero_sdk/suite.py`: Sphero's official Python SDK against `serve rvr --pty`;
//! - `rustypot/suite.py`: rustypot's Python bindings against `serve hand --pty`;
//! - `aws_iot_sdk/suite.py`: the AWS IoT Device SDK v2 for Python against
//!   `serve cloud --certs` (mutual TLS, Device Shadow, the default policy);
//! - `rustypot/rust.rs` (its own test target): the rustypot crate against the
//!   same bus, in process.
//!
//! The Python suites run in a venv with the clients pinned from PyPI
//! (`setup-venv`, the suites' `requirements.txt`). `.ci/run` builds it and
//! names its interpreter in `TWINRIG_CONFORMANCE_PYTHON`; without that
//! variable the venv is built under the target directory on first use (needs
//! Python 3.10+ and access to PyPI). Each suite prints a line per check and
//! a closing `N passed, N failed`; the test fails unless every check passed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn suites_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// The venv's interpreter, built once per test run if not given.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Some(p) = std::env::var_os("TWINRIG_CONFORMANCE_PYTHON") {
            return PathBuf::from(p);
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance-venv");
        let status = Command::new(suites_dir().join("setup-venv"))
            .arg(&venv)
            .status()
            .expect("tests/conformance/setup-venv runs");
        assert!(
            status.success(),
            "tests/conformance/setup-venv {} failed ({status}); it needs Python 3.10+ and PyPI",
            venv.display()
        );
        venv.join("bin/python")
    })
}

/// Runs one Python suite against the built `twinrig`; returns its output.
fn run_suite(name: &str) -> String {
    let script = suites_dir().join(name).join("suite.py");
    let out = Command::new(python())
        .arg(&script)
        .arg("--twinrig")
        .arg(env!("CARGO_BIN_EXE_twinrig"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", script.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    let closing = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find(|l| l.ends_with(" failed"))
        .map(str::to_owned);
    let Some(closing) = closing else {
        panic!(
            "{name}: no closing `N passed, N failed` line ({})\n{text}",
            out.status
        );
    };
    let counts: Vec<u32> = closing
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        out.status.success() && counts.len() == 2 && counts[0] > 0 && counts[1] == 0,
        "{name}: {closing} ({})\n{text}",
        out.status
    );
    text
}

#[test]
fn sphero_sdk_drives_the_rvr_twin() {
    run_suite("sphero_sdk");
}

#[test]
fn rustypot_python_bindings_drive_the_hand_bus() {
    run_suite("rustypot");
}

#[test]
fn aws_iot_device_sdk_uses_the_live_cloud_twin() {
    run_suite("aws_iot_sdk");
}
