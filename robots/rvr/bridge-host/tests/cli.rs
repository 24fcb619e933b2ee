//! The `rvr-bridge` binary's bad input: a clear message naming the problem,
//! exit code 2, never a panic.

use std::net::TcpListener;
use std::process::Command;

fn rvr_bridge(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_rvr-bridge"))
        .args(args)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!text.contains("panicked"), "{args:?}: {text}");
    (o.status.code(), text)
}

#[test]
fn bad_arguments_ports_and_endpoints_are_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let tcp = |endpoint: &str, serial: &str, extra: &[&str]| -> Vec<String> {
        [
            "--serial",
            serial,
            "--endpoint",
            endpoint,
            "--thing",
            "rvr-1",
            "--insecure-tcp",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "--serial <PATH>"),
        (
            vec![
                "--serial".into(),
                "x".into(),
                "--endpoint".into(),
                "h".into(),
            ],
            "--thing <NAME>",
        ),
        (tcp(&closed, "/dev/null", &[]), "cannot reach the endpoint"),
        (
            tcp(&open, "/dev/no-such-rvr-port", &[]),
            "cannot open /dev/no-such-rvr-port",
        ),
        (
            tcp(&open, "/dev/null", &["--baud", "12345"]),
            "unsupported baud rate 12345",
        ),
        (tcp("host:0", "/dev/null", &[]), "expected HOST[:PORT]"),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, text) = rvr_bridge(&args);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(
            text.contains(needle),
            "{args:?}: wanted {needle:?} in {text}"
        );
    }
    drop(listener);
}
