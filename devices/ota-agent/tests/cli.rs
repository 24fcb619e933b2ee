//! The `ota-agent` binary's bad input: a clear message naming the problem
//! (and the file), a non-zero exit, never a panic, and nothing written to a
//! flash file it refused.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

fn ota_agent(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ota-agent"))
        .args(args)
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!text.contains("panicked"), "{args:?}: {text}");
    (o.status.code(), text)
}

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn bad_arguments_and_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    std::fs::write(d("pem"), "not a certificate").unwrap();
    std::fs::write(d("not-an-image.bin"), vec![0x42u8; 1000]).unwrap();
    std::fs::write(d("small.flash"), vec![0xFFu8; 4096]).unwrap();
    let endpoint = format!("127.0.0.1:{}", closed_port());
    let tcp = [
        "--endpoint",
        endpoint.as_str(),
        "--thing",
        "feeder-001",
        "--insecure-tcp",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        tcp.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let cases: Vec<(Vec<String>, i32, String)> = vec![
        (vec![], 2, "--endpoint".into()),
        (
            vec![
                "--endpoint".into(),
                "h".into(),
                "--thing".into(),
                "t".into(),
                "--flash".into(),
                d("f"),
            ],
            2,
            "--cert".into(),
        ),
        (
            vec![
                "--endpoint".into(),
                "h".into(),
                "--thing".into(),
                "t".into(),
                "--flash".into(),
                d("f"),
                "--cert".into(),
                d("pem"),
                "--key".into(),
                d("missing.key"),
                "--ca".into(),
                d("pem"),
            ],
            2,
            format!("--key {}", d("missing.key")),
        ),
        (
            vec![
                "--endpoint".into(),
                "host:0".into(),
                "--thing".into(),
                "t".into(),
                "--insecure-tcp".into(),
                "--flash".into(),
                d("f"),
            ],
            2,
            "expected HOST[:PORT]".into(),
        ),
        (with(&["--flash", &d("small.flash")]), 2, d("small.flash")),
        (
            with(&[
                "--flash",
                &d("a.flash"),
                "--factory-image",
                &d("missing.bin"),
            ]),
            2,
            format!("--factory-image {}", d("missing.bin")),
        ),
        (
            with(&[
                "--flash",
                &d("b.flash"),
                "--factory-image",
                &d("not-an-image.bin"),
            ]),
            2,
            "not a firmware image".into(),
        ),
        (
            with(&["--flash", &d("c.flash")]),
            1,
            "holds no bootable image".into(),
        ),
        (
            with(&["--flash", &d("e.flash"), "--chunk-size", "0"]),
            2,
            "--chunk-size".into(),
        ),
    ];
    for (args, code, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (got, text) = ota_agent(&args);
        assert_eq!(got, Some(code), "{args:?}: {text}");
        assert!(
            text.contains(&needle),
            "{args:?}: wanted {needle:?} in {text}"
        );
    }
    // The refused flash file is left as it was.
    assert_eq!(std::fs::read(d("small.flash")).unwrap(), vec![0xFFu8; 4096]);
    let (code, text) = ota_agent(&["--help"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("--factory-image"), "{text}");
}

#[test]
fn an_unreachable_endpoint_is_named_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let image = ota_client::build_image(
        "pet_feeder",
        ota_client::Version::new(1, 0, 0),
        &[7u8; 2048],
    )
    .unwrap();
    let factory = dir.path().join("factory.bin");
    std::fs::write(&factory, image).unwrap();
    let flash = dir.path().join("device.flash");
    let endpoint = format!("127.0.0.1:{}", closed_port());
    let args = [
        "--endpoint",
        endpoint.as_str(),
        "--thing",
        "feeder-001",
        "--insecure-tcp",
        "--flash",
        flash.to_str().unwrap(),
        "--factory-image",
        factory.to_str().unwrap(),
    ];
    let (code, text) = ota_agent(&args);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("cannot reach the endpoint {endpoint}")),
        "{text}"
    );
    // Provisioning happened first and is kept: the next start boots it.
    assert!(text.contains("provisioned pet_feeder 1.0.0"), "{text}");
    assert!(Path::new(&flash).exists());
    let (_, again) = ota_agent(&args);
    assert!(again.contains("flash selects pet_feeder 1.0.0"), "{again}");
    assert!(!again.contains("provisioned"), "{again}");
}
