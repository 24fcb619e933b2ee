//! The `hand-agent` binary's bad input: a clear error and exit code 2, never a panic.

use std::net::TcpListener;
use std::process::Command;

fn hand_agent(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_hand-agent"))
        .args(args)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!text.contains("panicked"), "{text}");
    (o.status.code(), text)
}

#[test]
fn bad_arguments_ports_files_and_endpoints_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("thing.pem");
    std::fs::write(&pem, "x").unwrap();
    let pem = pem.to_str().unwrap();
    let missing = dir.path().join("missing.key");
    let missing = missing.to_str().unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("127.0.0.1:{closed}");
    let cases: [(&[&str], &str); 8] = [
        (&[], "--serial <PATH>"),
        (&["--port"], "a value is required for '--serial <PATH>'"),
        (
            &["--port", "x", "--baud", "fast"],
            "invalid value 'fast' for '--baud",
        ),
        (&["--bogus"], "unexpected argument '--bogus'"),
        (
            &["--port", "/dev/no-such-hand-port"],
            "cannot open /dev/no-such-hand-port",
        ),
        (
            &[
                "--serial",
                "x",
                "--endpoint",
                "h",
                "--thing",
                "t",
                "--key",
                pem,
                "--ca",
                pem,
            ],
            "--cert <FILE>",
        ),
        (
            &[
                "--serial",
                "x",
                "--endpoint",
                "h",
                "--thing",
                "t",
                "--cert",
                pem,
                "--key",
                missing,
                "--ca",
                pem,
            ],
            "--key",
        ),
        (
            &[
                "--serial",
                "x",
                "--endpoint",
                &closed,
                "--thing",
                "t",
                "--insecure-tcp",
            ],
            "cannot reach the endpoint",
        ),
    ];
    for (args, needle) in cases {
        let (code, text) = hand_agent(args);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(
            text.contains(needle),
            "{args:?}: wanted {needle:?} in {text}"
        );
    }
    let (code, _) = hand_agent(&["--help"]);
    assert_eq!(code, Some(0));
}
