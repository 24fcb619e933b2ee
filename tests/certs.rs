//! `twinrig certs`, judged by OpenSSL (a TLS stack no one here wrote): the
//! thing and server certificates verify against the root CA, carry what AWS
//! IoT's issued certificates carry, and their keys match.

use std::path::Path;
use std::process::{Command, Output};

fn twinrig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args(args)
        .output()
        .expect("twinrig runs")
}

fn openssl(args: &[&str]) -> String {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn openssl_accepts_the_certificates_and_they_carry_what_aws_issues() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let o = twinrig(&[
        "certs",
        "--out",
        p(&out),
        "--thing",
        "feeder-001",
        "--thing",
        "XIAO-RVR-07",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let ca = out.join("root-ca.pem");

    let registry: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("registry.json")).unwrap()).unwrap();
    let certificates = registry["certificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 2);
    for (record, thing) in certificates.iter().zip(["feeder-001", "XIAO-RVR-07"]) {
        assert_eq!(record["thingName"], thing);
        assert_eq!(record["status"], "ACTIVE");
        let dir = out.join("things").join(thing);
        let cert = dir.join("certificate.pem.crt");
        assert_eq!(
            record["certificateFile"],
            format!("things/{thing}/certificate.pem.crt")
        );

        assert_eq!(
            openssl(&["verify", "-CAfile", p(&ca), p(&cert)]).trim(),
            format!("{}: OK", cert.display())
        );
        assert_eq!(
            openssl(&["x509", "-in", p(&cert), "-noout", "-subject", "-enddate"]),
            "subject=CN = AWS IoT Certificate\nnotAfter=Dec 31 23:59:59 2049 GMT\n"
        );
        // The certificate id is the SHA-256 of the DER, lowercase hex.
        let fingerprint = openssl(&["x509", "-in", p(&cert), "-noout", "-fingerprint", "-sha256"]);
        let id = fingerprint
            .trim()
            .trim_start_matches("sha256 Fingerprint=")
            .replace(':', "")
            .to_lowercase();
        assert_eq!(record["certificateId"], id.as_str());
        assert_eq!(
            record["certificateArn"],
            format!("arn:aws:iot:us-east-1:123456789012:cert/{id}")
        );
        // The private key, the public key file and the certificate agree.
        let from_cert = openssl(&["x509", "-in", p(&cert), "-noout", "-pubkey"]);
        let from_key = openssl(&["pkey", "-in", p(&dir.join("private.pem.key")), "-pubout"]);
        assert_eq!(from_cert, from_key);
        assert_eq!(
            from_cert,
            std::fs::read_to_string(dir.join("public.pem.key")).unwrap()
        );
        let purpose = openssl(&["x509", "-in", p(&cert), "-noout", "-purpose"]);
        assert!(purpose.contains("SSL client : Yes"), "{purpose}");
        assert!(purpose.contains("SSL server : No"), "{purpose}");
    }
    let ids: Vec<&str> = certificates
        .iter()
        .map(|c| c["certificateId"].as_str().unwrap())
        .collect();
    assert_ne!(ids[0], ids[1]);

    // The server certificate serves the endpoint's names, not as a client's.
    let server = out.join("server.pem.crt");
    for check in [
        ["-verify_hostname", "localhost"],
        ["-verify_ip", "127.0.0.1"],
    ] {
        assert_eq!(
            openssl(&["verify", "-CAfile", p(&ca), check[0], check[1], p(&server)]).trim(),
            format!("{}: OK", server.display())
        );
    }
    let wrong = Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            p(&ca),
            "-verify_hostname",
            "example.com",
            p(&server),
        ])
        .output()
        .unwrap();
    assert!(
        !wrong.status.success(),
        "a name not in the certificate must not verify"
    );
    let purpose = openssl(&["x509", "-in", p(&server), "-noout", "-purpose"]);
    assert!(purpose.contains("SSL server : Yes"), "{purpose}");

    let endpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("endpoint.json")).unwrap()).unwrap();
    assert_eq!(
        endpoint,
        serde_json::json!({
            "endpointAddress": "localhost",
            "endpointType": "iot:Data-ATS",
            "mqttPort": 8883,
            "caFile": "root-ca.pem"
        })
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for secret in [
            "root-ca.key",
            "server.pem.key",
            "things/feeder-001/private.pem.key",
        ] {
            let mode = std::fs::metadata(out.join(secret))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{secret}");
        }
    }
}

#[test]
fn a_fleet_file_names_the_things() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    std::fs::write(
        &fleet,
        "seed: 1\nfleet:\n  firmware: [{ type: pet_feeder, versions: [1.0.0] }]\n  groups: [{ type: pet_feeder, count: 3, id: \"feeder-{n:03}\", version: 1.0.0 }]\n",
    )
    .unwrap();
    let out = dir.path().join("certs");
    let o = twinrig(&[
        "certs",
        "--out",
        p(&out),
        "--fleet",
        p(&fleet),
        "--thing",
        "hub",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    for thing in ["hub", "feeder-001", "feeder-002", "feeder-003"] {
        assert!(
            out.join("things")
                .join(thing)
                .join("certificate.pem.crt")
                .is_file(),
            "{thing}: {}",
            text(&o)
        );
    }
}

#[test]
fn bad_input_is_a_clear_error_and_nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let cases: &[(&[&str], &str)] = &[
        (&[], "name at least one thing"),
        (&["--thing", "a/b"], "`a/b` is not a thing name"),
        (
            &["--thing", "a", "--thing", "a"],
            "thing `a` is named twice",
        ),
        (
            &["--thing", "a", "--endpoint", "bad host!"],
            "`bad host!` is not a host name",
        ),
        (&["--fleet", "no-such-fleet.yaml"], "no-such-fleet.yaml"),
    ];
    for (args, want) in cases {
        let mut all = vec!["certs", "--out", p(&out)];
        all.extend_from_slice(args);
        let o = twinrig(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
        assert!(!text(&o).contains("panicked"), "{}", text(&o));
        assert!(!out.exists(), "{args:?} wrote files");
    }

    let o = twinrig(&["certs", "--out", p(&out), "--thing", "a"]);
    assert!(o.status.success(), "{}", text(&o));
    let before = std::fs::read_to_string(out.join("root-ca.pem")).unwrap();
    let o = twinrig(&["certs", "--out", p(&out), "--thing", "b"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("root-ca.pem")).unwrap(),
        before
    );
    assert!(!out.join("things/b").exists());
}

/// Waits for `child` at most `limit` (a hang guard, not a timing check);
/// kills it if it is still running.
fn wait_or_kill(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// One TLS handshake between OpenSSL's test server (trusting `ca`, asking
/// for a client certificate) and its client presenting `thing`'s
/// credentials from `client_dir`. Returns whether the handshake completed
/// with both certificates verified, and both sides' output.
fn mutual_tls(server_dir: &Path, client_dir: &Path, thing: &str) -> (bool, String) {
    use std::io::BufRead as _;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-naccept",
            "1",
            "-cert",
            p(&server_dir.join("server.pem.crt")),
            "-key",
            p(&server_dir.join("server.pem.key")),
            "-CAfile",
            p(&server_dir.join("root-ca.pem")),
            "-Verify",
            "1",
            "-verify_return_error",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut server_out = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    while server_out.read_line(&mut line).unwrap() > 0 && !line.contains("ACCEPT") {}
    assert!(line.contains("ACCEPT"), "s_server did not start: {line}");
    let things = client_dir.join("things").join(thing);
    let client = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
            "-verify_hostname",
            "localhost",
            "-CAfile",
            p(&client_dir.join("root-ca.pem")),
            "-cert",
            p(&things.join("certificate.pem.crt")),
            "-key",
            p(&things.join("private.pem.key")),
            "-verify_return_error",
            // TLS 1.2 (AWS IoT's baseline): the server's verdict on the
            // client certificate is part of the handshake, so the client
            // sees a refusal before it reports the connection established
            // (in 1.3 the alert comes after).
            "-tls1_2",
            "-brief",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = wait_or_kill(&mut server, std::time::Duration::from_secs(60));
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut server_out, &mut rest);
    let mut server_err = String::new();
    let _ = std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut server_err);
    let client_text = text(&client);
    let established =
        client_text.contains("CONNECTION ESTABLISHED") && client_text.contains("Verification: OK");
    (
        established,
        format!("client:\n{client_text}\nserver:\n{line}{rest}{server_err}"),
    )
}

#[test]
fn a_thing_certificate_passes_mutual_tls_and_one_from_another_ca_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours");
    let theirs = dir.path().join("theirs");
    for out in [&ours, &theirs] {
        let o = twinrig(&["certs", "--out", p(out), "--thing", "feeder-001"]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let (ok, log) = mutual_tls(&ours, &ours, "feeder-001");
    assert!(ok, "{log}");
    assert!(
        log.contains("CN = AWS IoT Certificate") || log.contains("CN=AWS IoT Certificate"),
        "{log}"
    );

    // The client trusts our server (our CA) but presents a certificate from
    // another CA: the server refuses it inside the handshake.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir_all(mixed.join("things")).unwrap();
    std::fs::copy(ours.join("root-ca.pem"), mixed.join("root-ca.pem")).unwrap();
    copy_dir(&theirs.join("things"), &mixed.join("things"));
    let (ok, log) = mutual_tls(&ours, &mixed, "feeder-001");
    assert!(!ok, "a certificate from another CA was accepted:\n{log}");
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
