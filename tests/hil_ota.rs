//! Hardware in the loop, on loopback: `twinrig serve cloud` (MQTT over
//! mutual TLS, the HTTP control plane, presigned firmware URLs) and real
//! `ota-agent` processes, each on its own flash file.
//!
//! - Five agents and a job created through the control plane (`twinrig ota
//!   --endpoint`, aws-sdk-iot): all five download, verify, re-execute into
//!   the new image, pass their self-test and report the new version.
//! - A sixth agent is killed with SIGKILL at random points of its download
//!   and flash writes, ten times (a job created with aws-sdk-iot, retried
//!   after each failure): every restart boots a valid image, and the job
//!   ends SUCCEEDED or FAILED, never stuck IN_PROGRESS.
//!
//! Every value is read back from where it lives: the agents' flash files,
//! the job executions and shadows over the control plane. Live mode runs on
//! the wall clock: every wait is for an event, with limits that only guard
//! against a hang.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Checks, Watched, device_binary, path_str, ready_port, text, thing_args};
use ota_client::{Layout, Partitions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use twinrig_hal_std::FileFlash;

/// A hang guard, not a timing check.
const LIMIT: Duration = Duration::from_secs(300);
/// The pet feeders' app slots (their images are 96 KiB and a header).
const SLOT_KIB: u64 = 128;
/// The sixth's (1 MiB images): large, and read 1 KiB per request, so that a download lasts
/// long enough (seconds) for a kill to land inside it however slowly this
/// test reads the agent's progress lines on a busy machine.
const SLOT_KIB_B: u64 = 1088;
const CHUNK_B: &str = "1024";
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const ACCESS_KEY: &str = "twinrig";
const SECRET_KEY: &str = "twinrig-local-secret";

const FLEET: &str = "fleet:
  firmware:
    - { type: pet_feeder, versions: [1.0.0, 2.0.0], size: 96KiB }
    - { type: feeder_b, versions: [1.0.0, 2.0.0], size: 1MiB }
  groups:
    - { type: pet_feeder, count: 5, id: \"feeder-{n:03}\", version: 1.0.0 }
    - { type: feeder_b, count: 1, id: \"feeder-b-{n:03}\", version: 1.0.0 }
";

/// `serve cloud` with the certificates folder, the fleet, TLS MQTT and the
/// HTTP APIs; the ports are read from its ready line.
struct Cloud {
    _served: Watched,
    mqtt_port: u16,
    http_port: u16,
}

impl Cloud {
    fn start(certs: &Path, fleet: &Path) -> Cloud {
        let mut served = Watched::spawn(
            "serve cloud",
            Command::new(env!("CARGO_BIN_EXE_twinrig"))
                .args([
                    "serve",
                    "cloud",
                    "--duration",
                    "900",
                    "--mqtt",
                    "127.0.0.1:0",
                ])
                .args(["--http", "127.0.0.1:0", "--certs", path_str(certs)])
                .args(["--fleet", path_str(fleet)]),
        );
        let ready = served.wait_for("mqtts://");
        Cloud {
            mqtt_port: ready_port(&ready, "mqtts"),
            http_port: ready_port(&ready, "http"),
            _served: served,
        }
    }
}

/// One `ota-agent` process for `thing`, on its own flash file, provisioned
/// from `factory` at its first start.
fn start_agent(dir: &Path, cloud: &Cloud, thing: &str, factory: &Path, extra: &[&str]) -> Watched {
    let certs = dir.join("certs");
    Watched::spawn(
        thing,
        Command::new(device_binary("ota-agent"))
            .args(thing_args(&certs, thing, cloud.mqtt_port))
            .args(["--flash", path_str(&flash_file(dir, thing))])
            .args(["--factory-image", path_str(factory), "--heartbeat", "0"])
            .args(extra),
    )
}

fn flash_file(dir: &Path, thing: &str) -> PathBuf {
    dir.join(format!("{thing}.flash"))
}

/// The version of the image a flash file boots (header and SHA-256 as
/// otadata records them), read as the bootloader would.
fn flash_boots(dir: &Path, thing: &str, slot_kib: u64) -> Option<String> {
    let layout = Layout::for_image(slot_kib * 1024).unwrap();
    let size = layout.end::<FileFlash>() as usize;
    let flash = FileFlash::open(flash_file(dir, thing), size).ok()?;
    let mut parts = Partitions::new(flash, layout).ok()?;
    let slot = parts.boot_partition().ok()??;
    Some(parts.read_header(slot).ok()??.version.to_string())
}

/// An image `twinrig firmware` wrote: the bytes `serve cloud` publishes.
fn image_file(dir: &Path, device_type: &str, version: &str) -> PathBuf {
    dir.join("firmware")
        .join(format!("{device_type}-{version}.bin"))
}

/// aws-sdk-iot and aws-sdk-iotdataplane against `serve cloud --http`.
struct Aws {
    runtime: tokio::runtime::Runtime,
    iot: aws_sdk_iot::Client,
    data: aws_sdk_iotdataplane::Client,
}

impl Aws {
    fn new(http_port: u16) -> Aws {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = format!("http://127.0.0.1:{http_port}");
        let http = || {
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https()
        };
        let iot = aws_sdk_iot::Config::builder()
            .behavior_version(aws_sdk_iot::config::BehaviorVersion::latest())
            .region(aws_sdk_iot::config::Region::new(REGION))
            .credentials_provider(aws_sdk_iot::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "test",
            ))
            .endpoint_url(&url)
            .http_client(http())
            .build();
        let data = aws_sdk_iotdataplane::Config::builder()
            .behavior_version(aws_sdk_iotdataplane::config::BehaviorVersion::latest())
            .region(aws_sdk_iotdataplane::config::Region::new(REGION))
            .credentials_provider(aws_sdk_iotdataplane::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "test",
            ))
            .endpoint_url(&url)
            .http_client(http())
            .build();
        Aws {
            runtime,
            iot: aws_sdk_iot::Client::from_conf(iot),
            data: aws_sdk_iotdataplane::Client::from_conf(data),
        }
    }

    /// DescribeJobExecution's status and execution number.
    fn execution(&self, job: &str, thing: &str) -> (String, i64) {
        let out = self
            .runtime
            .block_on(
                self.iot
                    .describe_job_execution()
                    .job_id(job)
                    .thing_name(thing)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("DescribeJobExecution {job} {thing}: {e:?}"));
        let e = out.execution().expect("an execution");
        (
            e.status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            e.execution_number().unwrap_or(0),
        )
    }

    /// Polls until the execution is in a terminal status.
    fn terminal_execution(&self, job: &str, thing: &str) -> (String, i64) {
        let start = Instant::now();
        loop {
            let (status, number) = self.execution(job, thing);
            if !matches!(status.as_str(), "QUEUED" | "IN_PROGRESS") {
                return (status, number);
            }
            assert!(
                start.elapsed() < LIMIT,
                "{job} {thing} still {status} (hang guard)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `state.reported.firmware` of the thing's classic shadow (GetThingShadow).
    fn reported_firmware(&self, thing: &str) -> Option<String> {
        let out = self
            .runtime
            .block_on(self.data.get_thing_shadow().thing_name(thing).send())
            .ok()?;
        let doc: Value = serde_json::from_slice(out.payload()?.as_ref()).ok()?;
        doc.pointer("/state/reported/firmware")?
            .as_str()
            .map(str::to_owned)
    }
}

fn setup() -> (tempfile::TempDir, PathBuf, Cloud) {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.yaml");
    std::fs::write(&fleet, FLEET).unwrap();
    let certs = common::twinrig(&[
        "certs",
        "--out",
        dir.path().join("certs").to_str().unwrap(),
        "--fleet",
        fleet.to_str().unwrap(),
    ]);
    assert!(certs.status.success(), "{}", text(&certs));
    let firmware = common::twinrig(&[
        "firmware",
        "--fleet",
        fleet.to_str().unwrap(),
        "--out",
        dir.path().join("firmware").to_str().unwrap(),
    ]);
    assert!(firmware.status.success(), "{}", text(&firmware));
    let cloud = Cloud::start(&dir.path().join("certs"), &fleet);
    (dir, fleet, cloud)
}

#[test]
fn five_agents_update_through_a_job_and_a_sixth_survives_ten_kills() {
    let (dir, fleet, cloud) = setup();
    let dir = dir.path();
    let aws = Aws::new(cloud.http_port);
    let mut checks = Checks::default();

    // Five pet feeders, provisioned with 1.0.0 at their first start.
    let factory = image_file(dir, "pet_feeder", "1.0.0");
    let slot = SLOT_KIB.to_string();
    let slot_b = SLOT_KIB_B.to_string();
    let sixth_args = ["--slot-kib", slot_b.as_str(), "--chunk-size", CHUNK_B];
    let things: Vec<String> = (1..=5).map(|n| format!("feeder-{n:03}")).collect();
    let mut agents: Vec<Watched> = things
        .iter()
        .map(|t| start_agent(dir, &cloud, t, &factory, &["--slot-kib", &slot]))
        .collect();
    let mut connected = Vec::new();
    for (agent, thing) in agents.iter_mut().zip(&things) {
        agent.wait_for("provisioned pet_feeder 1.0.0");
        let line = agent.wait_for("connected to");
        connected.push(line.ends_with(&format!(" as {thing}")));
    }
    checks.check(
        "five agents provision 1.0.0 and connect over mutual TLS as their things",
        connected.iter().all(|c| *c),
        format!("{connected:?}"),
    );

    // The operator's job, over the control plane (aws-sdk-iot in `twinrig ota`).
    let ota = Command::new(env!("CARGO_BIN_EXE_twinrig"))
        .args([
            "ota",
            "update the pet_feeder device group to the latest firmware",
        ])
        .args([
            "--endpoint",
            &format!("http://127.0.0.1:{}", cloud.http_port),
        ])
        .arg("--fleet")
        .arg(&fleet)
        .arg("--json")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-files"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-files"))
        .output()
        .unwrap();
    let report: Value =
        serde_json::from_slice(&ota.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&ota)));
    let created = &report["job_created"];
    checks.check(
        "CreateJob on the pet_feeder group targets the five",
        ota.status.success()
            && created["version"] == "2.0.0"
            && created["targets"] == serde_json::json!(things),
        format!(
            "job {} -> {} on {}",
            created["job_id"], created["version"], created["targets"]
        ),
    );
    let job = created["job_id"].as_str().unwrap_or("ota-1").to_owned();

    for agent in &mut agents {
        agent.wait_for("download of");
        agent.wait_for("downloaded 100%");
        agent.wait_for("rebooting");
        agent.wait_for("flash selects pet_feeder 2.0.0");
        agent.wait_for("self-test of 2.0.0 passed");
    }
    let executions: Vec<String> = things
        .iter()
        .map(|t| aws.terminal_execution(&job, t).0)
        .collect();
    checks.check(
        "every execution SUCCEEDED (DescribeJobExecution)",
        executions.iter().all(|s| s == "SUCCEEDED"),
        format!("{executions:?}"),
    );
    let shadows: Vec<Option<String>> = things.iter().map(|t| aws.reported_firmware(t)).collect();
    checks.check(
        "every shadow reports firmware 2.0.0 (GetThingShadow)",
        shadows.iter().all(|s| s.as_deref() == Some("2.0.0")),
        format!("{shadows:?}"),
    );
    for agent in agents.drain(..) {
        agent.kill();
    }
    let flashes: Vec<Option<String>> = things
        .iter()
        .map(|t| flash_boots(dir, t, SLOT_KIB))
        .collect();
    checks.check(
        "every flash file boots a verified 2.0.0",
        flashes.iter().all(|v| v.as_deref() == Some("2.0.0")),
        format!("{flashes:?}"),
    );

    // The sixth: a job with retries, created with aws-sdk-iot directly.
    let sixth = "feeder-b-001";
    let factory_b = image_file(dir, "feeder_b", "1.0.0");
    let image = std::fs::read(image_file(dir, "feeder_b", "2.0.0")).unwrap();
    let document = serde_json::json!({
        "operation": "ota",
        "deviceType": "feeder_b",
        "version": "2.0.0",
        "url": "${aws:iot:s3-presigned-url-v2:https://s3.us-east-1.amazonaws.com/twinrig-firmware/feeder_b/2.0.0/firmware.bin}",
        "sha256": sha256_hex(&image),
        "size": image.len(),
    });
    let kill_job = "kill-test";
    {
        use aws_sdk_iot::types::{
            JobExecutionsRetryConfig, PresignedUrlConfig, RetryCriteria, RetryableFailureType,
            TimeoutConfig,
        };
        let created = aws.runtime.block_on(
            aws.iot
                .create_job()
                .job_id(kill_job)
                .targets(format!("arn:aws:iot:{REGION}:{ACCOUNT}:thing/{sixth}"))
                .document(document.to_string())
                .presigned_url_config(
                    PresignedUrlConfig::builder()
                        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/twinrig-presign"))
                        .expires_in_sec(3600)
                        .build(),
                )
                .timeout_config(
                    TimeoutConfig::builder()
                        .in_progress_timeout_in_minutes(10)
                        .build(),
                )
                .job_executions_retry_config(
                    JobExecutionsRetryConfig::builder()
                        .criteria_list(
                            RetryCriteria::builder()
                                .failure_type(RetryableFailureType::Failed)
                                .number_of_retries(10)
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .send(),
        );
        checks.check(
            "CreateJob with 10 retries on FAILED (aws-sdk-iot)",
            created.is_ok(),
            format!("{:?}", created.map(|c| c.job_id().map(str::to_owned))),
        );
    }

    // Ten kills at random points: after the download opened (tenth 0) or
    // after a random tenth arrived (the flash write of the chunk, the next
    // request), plus a few milliseconds of random delay.
    let seed = 20261208;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    println!("kill points from seed {seed}");
    let mut boots = Vec::new();
    let mut points = Vec::new();
    for kill in 1..=10 {
        let mut agent = start_agent(dir, &cloud, sixth, &factory_b, &sixth_args);
        let selects = agent.wait_for("flash selects");
        boots.push(selects.rsplit(' ').next().unwrap_or("").to_owned());
        // Up to 80%: the last fifth of the download is the margin for a
        // test that reads the progress late.
        let tenth: u64 = rng.random_range(0..=8);
        if tenth == 0 {
            agent.wait_for("download of");
        } else {
            agent.wait_for(&format!("downloaded {}% ", tenth * 10));
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
        agent.kill();
        let on_flash = flash_boots(dir, sixth, SLOT_KIB_B);
        points.push(format!("{}%", tenth * 10));
        checks.check(
            &format!(
                "kill {kill} after {}%: the flash still boots a valid image",
                tenth * 10
            ),
            on_flash.as_deref() == Some("1.0.0"),
            format!("boots {on_flash:?}"),
        );
    }
    checks.check(
        "every restart booted the valid 1.0.0",
        boots.iter().all(|b| b == "1.0.0"),
        format!("{boots:?}"),
    );

    // Left alone, it finishes: SUCCEEDED on 2.0.0, or FAILED on 1.0.0.
    let mut agent = start_agent(dir, &cloud, sixth, &factory_b, &sixth_args);
    let (status, number) = aws.terminal_execution(kill_job, sixth);
    if status == "SUCCEEDED" {
        agent.wait_for("self-test of 2.0.0 passed");
    }
    agent.kill();
    let on_flash = flash_boots(dir, sixth, SLOT_KIB_B);
    let reported = aws.reported_firmware(sixth);
    let expected = if status == "SUCCEEDED" {
        "2.0.0"
    } else {
        "1.0.0"
    };
    checks.check(
        "after the kills the execution ends, not stuck IN_PROGRESS",
        matches!(status.as_str(), "SUCCEEDED" | "FAILED"),
        format!("{status}, execution number {number} (kill points {points:?})"),
    );
    checks.check(
        "the flash and the shadow agree with the execution",
        on_flash.as_deref() == Some(expected) && reported.as_deref() == Some(expected),
        format!("flash boots {on_flash:?}, shadow reports {reported:?}, expected {expected}"),
    );
    checks.finish();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
