//! The `hand-agent` binary's bad input: a clear error and exit code 2, never a panic.

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
fn bad_arguments_and_ports_are_reported() {
    for (args, needle) in [
        (&[][..], "--port is required"),
        (&["--port"][..], "--port is required"),
        (
            &["--port", "x", "--baud", "fast"][..],
            "--baud needs a number",
        ),
        (&["--bogus"][..], "unknown argument `--bogus`"),
        (
            &["--port", "/dev/no-such-hand-port"][..],
            "cannot open /dev/no-such-hand-port",
        ),
    ] {
        let (code, text) = hand_agent(args);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.contains(needle), "{args:?}: {text}");
    }
    let (code, _) = hand_agent(&["--help"]);
    assert_eq!(code, Some(0));
}
