//! Scenario loading tests: a complete good scenario, every bad fixture in
//! `tests/fixtures/bad-scenarios/`, YAML syntax errors, and never-panic
//! properties.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::json;

use super::*;

const KNOWN: &[&str] = &["echo", "rover"];

const EVERYTHING: &str = r##"# A scenario that uses every step, expect, fault, shape and latency kind.
name: everything
description: uses every step, expect and fault kind
seed: 42
duration_limit: 1min
world:
  physics_rate_hz: 500
  gravity: -9.8
  floor: { friction: 0.6, restitution: 0.1 }
  sample_period: 20ms
  obstacles:
    - name: crate
      shape: { box: { size: [0.5, 0.5, 0.5] } }
      position: [1.0, 0.0, 0.25]
      yaw_deg: 30
      dynamic: true
      mass: 2.5
    - name: ball
      shape: { ball: { radius: 0.1 } }
      position: [0, 1, 0.1]
    - name: post
      shape: { cylinder: { radius: 0.05, height: 1 } }
      position: [2, 2, 0.5]
      friction: 0.3
      restitution: 0.5
link:
  latency: { normal: { mean: 20ms, std_dev: 5ms } }
  loss: 0.01
  qos1_retry: 500ms
devices:
  - kind: echo
    id: echo-1
    params: { baud: 115200 }
  - kind: rover
    id: rover-1
    link:
      latency: 2ms
  - kind: echo
    id: echo-2
    link:
      latency: { uniform: { min: 1ms, max: 3ms } }
  - kind: echo
    id: echo-3
    link: { latency: { exponential: { min: 1ms, mean_extra: 0.5ms } }, loss: 0.1 }
cloud:
  epoch: 2026-02-08T12:00:00Z
  rules:
    - rvr-telemetry
    - AmazingHandStateStreamingRule
    - { name: my_rule, sql: "SELECT * FROM 'a/+'", action: rvr-telemetry }
start: immediately
ready_timeout: 5s
chaos:
  window: 1s..20s
  faults:
    - { uart: rover-1, kind: bit_errors, count: 0..2, duration: 100ms..1s, rate: 0.001..0.01, direction: to_device }
    - { link: echo-1, kind: outage, duration: 200ms }
  schedule:
    - { at: 3s, fault: { link: { device: echo-1, outage: 100ms } } }
invariants:
  - message: { topic: "twinrig/echo/+/rx", text: hello, count: { at_most: 3 } }
steps:
  - publish: { topic: twinrig/echo/echo-1/tx, payload: "hello" }
  - publish: { topic: twinrig/rover/rover-1/cmd, payload: { speed: 0.5, turn: [1, 2] }, qos: 1 }
  - wait_for: { topic: twinrig/echo/echo-1/rx, text: "hello", timeout: 2s }
  - wait_for:
      topic: twinrig/rover/+/state
      match:
        pose.x: { approx: 1.0, tolerance: 0.05 }
        status: ok
        items.0.id: 7
        flags: [a, b]
      timeout: 1.5s
  - expect: { message: { topic: twinrig/echo/+/rx, count: { at_least: 1 } } }
  - expect: { message: { topic: "twinrig/#", text: hello } }
  - expect: { device: { device: echo-1, field: uart.to_device.dropped, equals: 0 } }
  - expect: { body: { body: crate, field: z, at_least: 0.2, at_most: 0.3 } }
  - expect:
      latency:
        from: { topic: twinrig/rover/rover-1/cmd }
        to: { topic: twinrig/rover/rover-1/state, match: { moving: true } }
        at_most: 200ms
  - fault: { uart: { device: echo-1, inject: "hex:7e 00 ff" } }
  - fault: { uart: { device: echo-1, direction: to_device, bit_errors: { rate: 0.001, duration: 1s } } }
  - fault: { uart: { device: echo-1, direction: from_device, drop_bytes: { probability: 0.5, duration: 300ms } } }
  - fault: { uart: { device: echo-2, line_break: 100ms } }
  - fault: { uart: { device: echo-2, disconnect: 2s } }
  - fault: { link: { device: rover-1, outage: 3s } }
  - fault: { link: { device: rover-1, loss: { probability: 0.2, duration: 5s } } }
  - fault: { link: { device: echo-3, extra_latency: { latency: 50ms, duration: 1s } } }
  - delay: 500ms
  - say: { device: rover-1, text: "drive forward one metre then turn left ninety degrees" }
  - expect:
      records:
        kind: rvr-telemetry
        device: rover-1
        count: { at_least: 3 }
        latest: { imuYaw: { approx: 90, tolerance: 2 }, deviceName: rover-1 }
  - expect: { records: { kind: hand-state } }
  - wait_for: { ready: echo-2, timeout: 1s }
"##;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn filter(fields: &[(&str, FieldCheck)], text: Option<&str>) -> PayloadFilter {
    PayloadFilter {
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        text: text.map(str::to_owned),
    }
}

fn expected_everything() -> Scenario {
    let uart = |device: &str, direction, kind| {
        Step::Fault(Fault::Uart(UartFault {
            device: device.into(),
            direction,
            kind,
        }))
    };
    let link = |device: &str, kind| {
        Step::Fault(Fault::Link(LinkFault {
            device: device.into(),
            kind,
        }))
    };
    let device = |kind: &str, id: &str, link: Option<LinkModel>| Device {
        kind: kind.into(),
        id: id.into(),
        link,
        params: serde_json::Map::new(),
        spec: Default::default(),
    };
    Scenario {
        name: "everything".into(),
        description: Some("uses every step, expect and fault kind".into()),
        seed: 42,
        duration_limit: Duration::from_secs(60),
        world: World {
            physics_rate_hz: 500,
            gravity: -9.8,
            floor: Some(Floor {
                friction: 0.6,
                restitution: 0.1,
            }),
            obstacles: vec![
                Obstacle {
                    name: "crate".into(),
                    shape: ShapeSpec::Box {
                        size: [0.5, 0.5, 0.5],
                    },
                    position: [1.0, 0.0, 0.25],
                    yaw_deg: 30.0,
                    dynamic: true,
                    mass: Some(2.5),
                    friction: 0.8,
                    restitution: 0.0,
                },
                Obstacle {
                    name: "ball".into(),
                    shape: ShapeSpec::Ball { radius: 0.1 },
                    position: [0.0, 1.0, 0.1],
                    yaw_deg: 0.0,
                    dynamic: false,
                    mass: None,
                    friction: 0.8,
                    restitution: 0.0,
                },
                Obstacle {
                    name: "post".into(),
                    shape: ShapeSpec::Cylinder {
                        radius: 0.05,
                        height: 1.0,
                    },
                    position: [2.0, 2.0, 0.5],
                    yaw_deg: 0.0,
                    dynamic: false,
                    mass: None,
                    friction: 0.3,
                    restitution: 0.5,
                },
            ],
            sample_period: ms(20),
        },
        link: LinkModel {
            latency: Latency::Distribution(LatencyDistribution::Normal {
                mean: ms(20),
                std_dev: ms(5),
            }),
            loss: 0.01,
            qos1_retry: ms(500),
        },
        devices: vec![
            Device {
                params: json!({"baud": 115200}).as_object().unwrap().clone(),
                ..device("echo", "echo-1", None)
            },
            device(
                "rover",
                "rover-1",
                Some(LinkModel {
                    latency: Latency::Fixed(ms(2)),
                    ..LinkModel::default()
                }),
            ),
            device(
                "echo",
                "echo-2",
                Some(LinkModel {
                    latency: Latency::Distribution(LatencyDistribution::Uniform {
                        min: ms(1),
                        max: ms(3),
                    }),
                    ..LinkModel::default()
                }),
            ),
            device(
                "echo",
                "echo-3",
                Some(LinkModel {
                    latency: Latency::Distribution(LatencyDistribution::Exponential {
                        min: ms(1),
                        mean_extra: Duration::from_nanos(500_000),
                    }),
                    loss: 0.1,
                    ..LinkModel::default()
                }),
            ),
        ],
        cloud: CloudConfig {
            epoch_unix_s: 1_770_552_000,
            rules: vec![
                RuleRef::Preset("rvr-telemetry".into()),
                RuleRef::Preset("AmazingHandStateStreamingRule".into()),
                RuleRef::Inline {
                    name: "my_rule".into(),
                    sql: "SELECT * FROM 'a/+'".into(),
                    action: "rvr-telemetry".into(),
                },
            ],
        },
        fleet: None,
        start: Start::Immediately,
        ready_timeout: Duration::from_secs(5),
        chaos: Some(chaos::Chaos {
            window: Some(chaos::Range {
                min: Duration::from_secs(1),
                max: Duration::from_secs(20),
            }),
            faults: vec![
                chaos::ChaosFault {
                    uart: Some("rover-1".into()),
                    link: None,
                    kind: chaos::ChaosKind::BitErrors,
                    count: chaos::Range { min: 0, max: 2 },
                    duration: chaos::Range {
                        min: Duration::from_millis(100),
                        max: Duration::from_secs(1),
                    },
                    rate: Some(chaos::Range {
                        min: 0.001,
                        max: 0.01,
                    }),
                    probability: None,
                    latency: None,
                    direction: Some(UartDirection::ToDevice),
                },
                chaos::ChaosFault {
                    uart: None,
                    link: Some("echo-1".into()),
                    kind: chaos::ChaosKind::Outage,
                    count: chaos::Range { min: 1, max: 1 },
                    duration: chaos::Range {
                        min: Duration::from_millis(200),
                        max: Duration::from_millis(200),
                    },
                    rate: None,
                    probability: None,
                    latency: None,
                    direction: None,
                },
            ],
            schedule: vec![chaos::ScheduledFault {
                at: Duration::from_secs(3),
                fault: Fault::Link(LinkFault {
                    device: "echo-1".into(),
                    kind: LinkFaultKind::Outage(Duration::from_millis(100)),
                }),
            }],
        }),
        invariants: vec![Invariant::Message(ExpectMessage {
            topic: "twinrig/echo/+/rx".into(),
            filter: PayloadFilter {
                fields: BTreeMap::new(),
                text: Some("hello".into()),
            },
            count: Some(Comparison {
                at_most: Some(3.0),
                ..Default::default()
            }),
        })],
        steps: vec![
            Step::Publish(Publish {
                topic: "twinrig/echo/echo-1/tx".into(),
                payload: json!("hello"),
                qos: 0,
            }),
            Step::Publish(Publish {
                topic: "twinrig/rover/rover-1/cmd".into(),
                payload: json!({"speed": 0.5, "turn": [1, 2]}),
                qos: 1,
            }),
            Step::WaitFor(WaitFor {
                topic: Some("twinrig/echo/echo-1/rx".into()),
                ready: None,
                filter: filter(&[], Some("hello")),
                timeout: Duration::from_secs(2),
            }),
            Step::WaitFor(WaitFor {
                topic: Some("twinrig/rover/+/state".into()),
                ready: None,
                filter: filter(
                    &[
                        (
                            "pose.x",
                            FieldCheck::Compare(Comparison {
                                approx: Some(1.0),
                                tolerance: Some(0.05),
                                ..Comparison::default()
                            }),
                        ),
                        ("status", FieldCheck::Equals(json!("ok"))),
                        ("items.0.id", FieldCheck::Equals(json!(7))),
                        ("flags", FieldCheck::Equals(json!(["a", "b"]))),
                    ],
                    None,
                ),
                timeout: ms(1500),
            }),
            Step::Expect(Expect::Message(ExpectMessage {
                topic: "twinrig/echo/+/rx".into(),
                filter: PayloadFilter::default(),
                count: Some(Comparison {
                    at_least: Some(1.0),
                    ..Comparison::default()
                }),
            })),
            Step::Expect(Expect::Message(ExpectMessage {
                topic: "twinrig/#".into(),
                filter: filter(&[], Some("hello")),
                count: None,
            })),
            Step::Expect(Expect::Device(ExpectDevice {
                device: "echo-1".into(),
                field: "uart.to_device.dropped".into(),
                check: Comparison {
                    equals: Some(json!(0)),
                    ..Comparison::default()
                },
            })),
            Step::Expect(Expect::Body(ExpectBody {
                body: "crate".into(),
                field: BodyField::Z,
                check: Comparison {
                    at_least: Some(0.2),
                    at_most: Some(0.3),
                    ..Comparison::default()
                },
            })),
            Step::Expect(Expect::Latency(ExpectLatency {
                from: MessageRef {
                    topic: "twinrig/rover/rover-1/cmd".into(),
                    filter: PayloadFilter::default(),
                },
                to: MessageRef {
                    topic: "twinrig/rover/rover-1/state".into(),
                    filter: filter(&[("moving", FieldCheck::Equals(json!(true)))], None),
                },
                check: DurationComparison {
                    at_least: None,
                    at_most: Some(ms(200)),
                },
            })),
            uart(
                "echo-1",
                UartDirection::Both,
                UartFaultKind::Inject("hex:7e 00 ff".into()),
            ),
            uart(
                "echo-1",
                UartDirection::ToDevice,
                UartFaultKind::BitErrors {
                    rate: 0.001,
                    duration: Duration::from_secs(1),
                },
            ),
            uart(
                "echo-1",
                UartDirection::FromDevice,
                UartFaultKind::DropBytes {
                    probability: 0.5,
                    duration: ms(300),
                },
            ),
            uart(
                "echo-2",
                UartDirection::Both,
                UartFaultKind::LineBreak(ms(100)),
            ),
            uart(
                "echo-2",
                UartDirection::Both,
                UartFaultKind::Disconnect(Duration::from_secs(2)),
            ),
            link("rover-1", LinkFaultKind::Outage(Duration::from_secs(3))),
            link(
                "rover-1",
                LinkFaultKind::Loss {
                    probability: 0.2,
                    duration: Duration::from_secs(5),
                },
            ),
            link(
                "echo-3",
                LinkFaultKind::ExtraLatency {
                    latency: ms(50),
                    duration: Duration::from_secs(1),
                },
            ),
            Step::Delay(ms(500)),
            Step::Say(Say {
                device: "rover-1".into(),
                text: "drive forward one metre then turn left ninety degrees".into(),
            }),
            Step::Expect(Expect::Records(ExpectRecords {
                kind: "rvr-telemetry".into(),
                device: Some("rover-1".into()),
                count: Some(Comparison {
                    at_least: Some(3.0),
                    ..Comparison::default()
                }),
                latest: [
                    (
                        "imuYaw".to_owned(),
                        FieldCheck::Compare(Comparison {
                            approx: Some(90.0),
                            tolerance: Some(2.0),
                            ..Comparison::default()
                        }),
                    ),
                    (
                        "deviceName".to_owned(),
                        FieldCheck::Equals(json!("rover-1")),
                    ),
                ]
                .into_iter()
                .collect(),
            })),
            Step::Expect(Expect::Records(ExpectRecords {
                kind: "hand-state".into(),
                device: None,
                count: None,
                latest: BTreeMap::new(),
            })),
            Step::WaitFor(WaitFor {
                topic: None,
                ready: Some("echo-2".into()),
                filter: PayloadFilter::default(),
                timeout: Duration::from_secs(1),
            }),
        ],
    }
}

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    parse_scenario(text, Path::new("test.yaml"), KNOWN)
}

#[test]
fn everything_parses_to_the_expected_values() {
    let scenario = parse(EVERYTHING).unwrap_or_else(|e| panic!("{}", e.render_plain()));
    assert_eq!(scenario, expected_everything());
}

#[test]
fn serialized_scenario_reads_back_equal() {
    let scenario = expected_everything();
    let yaml = serde_saphyr::to_string(&scenario).unwrap();
    let back = parse(&yaml).unwrap_or_else(|e| panic!("{}\n{yaml}", e.render_plain()));
    assert_eq!(back, scenario, "{yaml}");
    // JSON too: the schema describes this shape.
    let json = serde_json::to_value(&scenario).unwrap();
    assert_eq!(
        json["steps"][3]["wait_for"]["match"]["pose.x"]["approx"],
        1.0
    );
    assert_eq!(
        json["steps"][10]["fault"]["uart"]["bit_errors"]["rate"],
        0.001
    );
    assert_eq!(json["duration_limit"], "60s");
    assert_eq!(json["cloud"]["epoch"], "2026-02-08T12:00:00Z");
    assert_eq!(json["cloud"]["rules"][0], "rvr-telemetry");
    assert_eq!(json["cloud"]["rules"][2]["action"], "rvr-telemetry");
    assert_eq!(json["steps"][18]["say"]["device"], "rover-1");
    assert_eq!(
        json["steps"][19]["expect"]["records"]["latest"]["imuYaw"]["tolerance"],
        2.0
    );
}

#[test]
fn cloud_defaults_when_absent() {
    let s = parse("name: m\nseed: 0\nduration_limit: 1s\nsteps: [ { delay: 1ms } ]\n").unwrap();
    assert_eq!(s.cloud, CloudConfig::default());
    assert_eq!(s.cloud.epoch_unix_s, 1_767_225_600);
    assert_eq!(
        format_epoch(s.cloud.epoch_unix_s).unwrap(),
        "2026-01-01T00:00:00Z"
    );
    assert!(s.cloud.rules.is_empty());
    // An empty `cloud:` mapping is the default too; a quoted epoch reads the same.
    let s = parse("name: m\nseed: 0\nduration_limit: 1s\ncloud: {}\nsteps: [ { delay: 1ms } ]\n")
        .unwrap();
    assert_eq!(s.cloud, CloudConfig::default());
    let s = parse(
        "name: m\nseed: 0\nduration_limit: 1s\ncloud: { epoch: \"1970-01-01T00:00:00Z\" }\nsteps: [ { delay: 1ms } ]\n",
    )
    .unwrap();
    assert_eq!(s.cloud.epoch_unix_s, 0);
}

#[test]
fn epochs_are_utc_whole_seconds_with_z() {
    assert_eq!(
        parse_epoch("2026-01-01T00:00:00Z"),
        Ok(DEFAULT_EPOCH_UNIX_S)
    );
    assert_eq!(parse_epoch("2000-02-29T23:59:59Z"), Ok(951_868_799));
    assert_eq!(parse_epoch("9999-12-31T23:59:59Z"), Ok(MAX_EPOCH_UNIX_S));
    for bad in [
        "",
        "2026-01-01",
        "2026-01-01T00:00:00",
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00.5Z",
        "2026-1-01T00:00:00Z",
        "2026-01-01T00:00:0xZ",
        "2026-01-01T00:00:00Zé",
        "١٢٣٤-01-01T00:00:00Z",
    ] {
        let err = parse_epoch(bad).unwrap_err().to_string();
        assert!(err.contains("is not a UTC time like"), "{bad}: {err}");
    }
    for bad in [
        "1969-12-31T23:59:59Z",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
    ] {
        let err = parse_epoch(bad).unwrap_err().to_string();
        assert!(err.contains("is not a valid time"), "{bad}: {err}");
    }
    for secs in [0, DEFAULT_EPOCH_UNIX_S, 951_868_799, MAX_EPOCH_UNIX_S] {
        assert_eq!(parse_epoch(&format_epoch(secs).unwrap()), Ok(secs));
    }
    assert_eq!(format_epoch(MAX_EPOCH_UNIX_S + 1), None);
    assert_eq!(format_epoch(u64::MAX), None);
    // Out of range in the model: serializing fails instead of panicking.
    let cloud = CloudConfig {
        epoch_unix_s: u64::MAX,
        rules: Vec::new(),
    };
    assert!(serde_json::to_string(&cloud).is_err());
}

#[test]
fn rule_refs_resolve_to_cloud_rule_configs() {
    let by_short = RuleRef::Preset("rvr-telemetry".into()).to_config().unwrap();
    let by_rule = RuleRef::Preset("SpheroRvrTelemetryStreamingRule".into())
        .to_config()
        .unwrap();
    assert_eq!(by_short, by_rule);
    assert_eq!(by_short.name, "SpheroRvrTelemetryStreamingRule");
    assert_eq!(by_short.action, "rvr-telemetry");
    assert_eq!(
        RuleRef::Preset("hand-state".into())
            .to_config()
            .unwrap()
            .name,
        "AmazingHandStateStreamingRule"
    );
    assert_eq!(RuleRef::Preset("nope".into()).to_config(), None);
    let inline = RuleRef::Inline {
        name: "r".into(),
        sql: "SELECT * FROM 'a'".into(),
        action: "hand-state".into(),
    };
    assert_eq!(
        inline.to_config().unwrap(),
        twinrig_cloud::rules::RuleConfig {
            name: "r".into(),
            sql: "SELECT * FROM 'a'".into(),
            action: "hand-state".into(),
        }
    );
    let names: Vec<String> = transforms().iter().map(|t| t.name().to_owned()).collect();
    assert_eq!(
        names,
        [
            "rvr-telemetry",
            "hand-state",
            "cat-feeder-states",
            "job-executions"
        ]
    );
}

#[test]
fn cloud_say_and_records_errors_are_all_reported() {
    let text = r#"name: x
seed: 1
duration_limit: 1s
devices: [ { kind: rover, id: rvr-1 } ]
cloud:
  rules:
    - { name: my-rule, sql: "SELEC", action: nothing }
steps:
  - say: { device: rvr-9, text: "" }
  - expect: { records: { kind: nothing, device: rvr-9, count: {} } }
"#;
    let err = parse(text).unwrap_err();
    let plain = err.render_plain();
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(
        lines,
        [
            "test.yaml:7:15: cloud rule 1 (`my-rule`): a rule name must not be empty and only have A-Z, a-z, 0-9 and `_`",
            "test.yaml:7:29: cloud rule 1 (`my-rule`): `sql` does not parse: expected SELECT, found `SELEC` (at column 1 of the SQL)",
            "test.yaml:7:46: cloud rule 1 (`my-rule`): unknown action `nothing`; transforms: rvr-telemetry, hand-state, cat-feeder-states, job-executions",
            "test.yaml:9:20: step 1 (say): unknown device `rvr-9`; devices: rvr-1",
            "test.yaml:9:33: step 1 (say): `text` must not be empty",
            "test.yaml:10:32: step 2 (expect): unknown records kind `nothing`; kinds (transforms): rvr-telemetry, hand-state, cat-feeder-states, job-executions",
            "test.yaml:10:49: step 2 (expect): unknown device `rvr-9`; devices: rvr-1",
            "test.yaml:10:63: step 2 (expect): `count`: no condition given; use equals, approx (with tolerance), at_least or at_most",
        ],
        "{plain}"
    );
}

#[test]
fn equals_object_serializes_as_comparison() {
    let check = FieldCheck::Equals(json!({"a": 1}));
    let yaml = serde_saphyr::to_string(&check).unwrap();
    let back: FieldCheck = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(
        back,
        FieldCheck::Compare(Comparison {
            equals: Some(json!({"a": 1})),
            ..Comparison::default()
        })
    );
}

#[test]
fn minimal_scenario_gets_defaults() {
    let s = parse("name: m\nseed: 0\nduration_limit: 1s\nsteps: [ { delay: 1ms } ]\n").unwrap();
    assert_eq!(s.world, World::default());
    assert_eq!(s.world.physics_rate_hz, 1000);
    assert_eq!(s.world.floor, Some(Floor::default()));
    assert_eq!(s.link, LinkModel::default());
    assert_eq!(s.link.latency, Latency::Fixed(ms(5)));
    assert_eq!(s.link.qos1_retry, Duration::from_secs(1));
    assert!(s.devices.is_empty());
    let s = parse(
        "name: m\nseed: 0\nduration_limit: 1s\nworld: { floor: null }\nsteps: [ { delay: 1ms } ]\n",
    )
    .unwrap();
    assert_eq!(s.world.floor, None);
}

/// `# expect: LINE:COL: fragment` on the first line of a fixture.
fn expectation(text: &str, path: &Path) -> (String, String) {
    let first = text.lines().next().unwrap_or_default();
    let rest = first.strip_prefix("# expect: ").unwrap_or_else(|| {
        panic!(
            "{}: first line must be `# expect: LINE:COL: fragment`",
            path.display()
        )
    });
    let (pos, fragment) = rest.split_once(": ").unwrap_or_else(|| {
        panic!(
            "{}: first line must be `# expect: LINE:COL: fragment`",
            path.display()
        )
    });
    (pos.to_owned(), fragment.to_owned())
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-scenarios")
}

#[test]
fn every_bad_fixture_fails_with_its_position_and_message() {
    let files = find_scenario_files(&[fixtures_dir()]).unwrap();
    assert!(files.len() >= 40, "found only {} fixtures", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let (pos, fragment) = expectation(&text, file);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let result = std::panic::catch_unwind(|| load_scenario(file, KNOWN));
        let plain = match result {
            Err(_) => {
                failures.push(format!("{name}: panicked"));
                continue;
            }
            Ok(Ok(_)) => {
                failures.push(format!("{name}: parsed, but should fail"));
                continue;
            }
            Ok(Err(e)) => e.render_plain(),
        };
        let located = format!("{name}:{pos}: ");
        let ok = plain
            .lines()
            .any(|line| line.contains(&located) && line.contains(&fragment));
        if !ok {
            failures.push(format!(
                "{name}: expected a line with `{located}` and `{fragment}`, got:\n    {plain}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tab_indentation_is_a_positioned_error() {
    let err = parse("name: x\nseed: 1\nduration_limit: 1s\nsteps:\n\t- delay: 1s\n").unwrap_err();
    let plain = err.render_plain();
    assert!(plain.starts_with("test.yaml:5:"), "{plain}");
    assert!(plain.contains("tab"), "{plain}");
    assert!(matches!(err, ScenarioError::Parse { .. }));
}

#[test]
fn unclosed_quote_is_a_positioned_error() {
    let err = parse("name: 'x\nseed: 1\nduration_limit: 1s\nsteps: []\n").unwrap_err();
    assert_eq!(err.render_plain(), "test.yaml:1:7: unclosed quote");
}

#[test]
fn several_semantic_errors_are_all_reported_in_order() {
    let text = "name: x\nseed: 1\nduration_limit: 0s\nsteps:\n  - publish: { topic: a/+, payload: 1, qos: 2 }\n";
    let err = parse(text).unwrap_err();
    let plain = err.render_plain();
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(
        lines,
        [
            "test.yaml:3:17: `duration_limit` must be greater than 0",
            "test.yaml:5:23: step 1 (publish): invalid topic `a/+`: a topic to publish to cannot contain the wildcards `+` or `#`",
            "test.yaml:5:45: step 1 (publish): `qos` must be 0 or 1, got 2",
        ],
        "{plain}"
    );
    assert_eq!(err.to_string(), "test.yaml: invalid scenario (3 problems)");
    assert_eq!(err.problems().len(), 3);
}

#[test]
fn validate_reports_paths() {
    let mut s = expected_everything();
    s.devices[1].kind = "tank".into();
    let errors = validate(&s, KNOWN).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path_string(), "devices[1].kind");
    assert_eq!(
        errors[0].message,
        "device 2 (`rover-1`): unknown device kind `tank`; known kinds: echo, rover"
    );
    assert_eq!(validate(&expected_everything(), KNOWN), Ok(()));
}

#[test]
fn diagnostics_render_a_snippet_with_the_path() {
    let render = |err: &ScenarioError| {
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(200)
            .render_report(&mut out, err)
            .unwrap();
        out
    };
    let err = parse(
        "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - wait_for: { topic: t, timout: 2s }\n",
    )
    .unwrap_err();
    let out = render(&err);
    assert!(out.contains("[test.yaml:5:27]"), "{out}");
    assert!(out.contains("timout: 2s"), "{out}");
    assert!(out.contains("unknown field `timout`"), "{out}");
    assert!(out.contains("twinrig::scenario::parse"), "{out}");

    let err = parse("name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - publish: { topic: a, payload: 1, qos: 3 }\n")
        .unwrap_err();
    let out = render(&err);
    assert!(out.contains("invalid scenario (1 problem)"), "{out}");
    assert!(out.contains("[test.yaml:5:43]"), "{out}");
    assert!(out.contains("`qos` must be 0 or 1, got 3"), "{out}");
}

#[test]
fn load_scenario_names_the_missing_file() {
    let err = load_scenario(Path::new("no/such/scenario.yaml"), KNOWN).unwrap_err();
    assert!(matches!(err, ScenarioError::Io { .. }));
    assert!(
        err.render_plain().starts_with("no/such/scenario.yaml: "),
        "{}",
        err.render_plain()
    );
}

#[test]
fn find_scenario_files_walks_sorted_and_rejects_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for rel in [
        "b.yaml",
        "a.yml",
        "notes.txt",
        ".hidden.yaml",
        "sub/z.yaml",
        "sub/c.YAML",
        ".git/x.yaml",
    ] {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
    }
    let single = root.join("notes.txt");
    let found = find_scenario_files(&[single.clone(), root.to_owned(), single.clone()]).unwrap();
    let rel: Vec<String> = found
        .iter()
        .map(|p| {
            p.strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    assert_eq!(
        rel,
        ["notes.txt", "a.yml", "b.yaml", "sub/c.YAML", "sub/z.yaml"]
    );

    let missing = root.join("missing");
    let err = find_scenario_files(&[root.to_owned(), missing.clone()]).unwrap_err();
    assert!(
        err.render_plain()
            .starts_with(&missing.display().to_string()),
        "{}",
        err.render_plain()
    );
}

#[test]
fn json_payloads_and_match_values() {
    let s = parse(
        "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - publish: { topic: a, payload: [1, {b: null}] }\n  - wait_for: { topic: a, match: { n: null, o: { equals: { k: 1 } } }, timeout: 1s }\n",
    )
    .unwrap();
    let Step::Publish(p) = &s.steps[0] else {
        panic!()
    };
    assert_eq!(p.payload, json!([1, {"b": null}]));
    let Step::WaitFor(w) = &s.steps[1] else {
        panic!()
    };
    let expected: BTreeMap<String, FieldCheck> = [
        ("n".to_owned(), FieldCheck::Equals(json!(null))),
        (
            "o".to_owned(),
            FieldCheck::Compare(Comparison {
                equals: Some(json!({"k": 1})),
                ..Comparison::default()
            }),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(w.filter.fields, expected);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn random_yamlish_text_never_panics(
        text in "[a-z_:\\- \\n\\t{}\\[\\],'\"#&*!|>0-9.]{0,200}"
    ) {
        let _ = parse(&text);
    }

    /// Corrupting a real scenario reaches deep into the model and checks.
    #[test]
    fn corrupted_scenarios_never_panic(
        start in 0usize..EVERYTHING.len(),
        len in 0usize..40,
        insert in "[a-z0-9_:\\- \\n{}\\[\\],#+.]{0,12}",
    ) {
        let bytes = EVERYTHING.as_bytes();
        let start = start.min(bytes.len());
        let end = (start + len).min(bytes.len());
        let mut text = Vec::from(&bytes[..start]);
        text.extend_from_slice(insert.as_bytes());
        text.extend_from_slice(&bytes[end..]);
        // Only ASCII edits: the result stays UTF-8 where the scenario is ASCII.
        if let Ok(text) = String::from_utf8(text) {
            match parse(&text) {
                Ok(_) => {}
                Err(e) => {
                    let plain = e.render_plain();
                    prop_assert!(plain.starts_with("test.yaml"), "{}", plain);
                }
            }
        }
    }
}

const FLEET: &str = r##"# Every fleet key, step and expect.
name: fleet
seed: 7
duration_limit: 2h
devices:
  - { kind: echo, id: echo-1 }
fleet:
  firmware:
    - { type: pet_feeder, versions: [1.0.0, 1.1.0, 2.0.0], size: 1MiB }
    - { type: sphero_rvr, versions: [3.0.0, 1.0.0] }
    - { type: amazing_hand, versions: [0.9.0], size: 512KiB }
  types:
    - { type: pet_feeder, ota: enabled, recommended: 2.0.0 }
    - { type: amazing_hand, ota: disabled }
  groups:
    - type: pet_feeder
      count: 100
      id: "feeder-{n:03}"
      version: 1.0.0
      faults: { bad_download: 0.08, boot_failure: 0.01, offline: 0.0 }
    - { type: sphero_rvr, count: 2, id: "rvr-{n}", version: 3.0.0 }
    - { type: amazing_hand, count: 1, id: hand, version: 0.9.0 }
  link: { latency: 20ms, loss: 0.001 }
  download: { bandwidth: 1.5Mbit/s, latency: 80ms }
steps:
  - prompt: { text: "update all pet_feeder devices to the latest firmware", as: job1 }
  - prompt: { text: "what versions are the feeders running?" }
  - create_job:
      id: rollback-rvr
      target: { type: sphero_rvr }
      version: 1.0.0
      rollout:
        maximumPerMinute: 50
        exponentialRate:
          baseRatePerMinute: 5
          incrementFactor: 1.5
          rateIncreaseCriteria: { numberOfSucceededThings: 10 }
      abort:
        criteriaList:
          - { failureType: FAILED, action: CANCEL, thresholdPercentage: 5, minNumberOfExecutedThings: 20 }
      timeout: { inProgressTimeoutInMinutes: 10 }
      retry:
        criteriaList:
          - { failureType: TIMED_OUT, numberOfRetries: 2 }
          - { failureType: FAILED, numberOfRetries: 1 }
      max_in_progress: 10
      abort_after_failures: 10
  - create_job: { id: one, target: { device: feeder-042 }, version: latest }
  - create_job: { id: all, target: fleet, version: 2.0.0 }
  - wait_for_job: { job: job1, status: [COMPLETED, CANCELED], timeout: 10min }
  - wait_for_job: { job: one, timeout: 5min }
  - expect:
      job:
        job: job1
        status: CANCELED
        aborted: true
        succeeded: { at_least: 1 }
        failed: { at_least: 11 }
        max_in_progress_seen: { at_most: 10 }
  - expect: { job: { job: all } }
  - expect: { fleet: { type: pet_feeder, version: 2.0.0, count: { equals: 100 } } }
  - expect: { fleet: { type: sphero_rvr, version: 1.0.0 } }
  - expect: { alert: { job: job1, count: { equals: 1 } } }
  - expect: { alert: {} }
"##;

fn version(text: &str) -> Version {
    text.parse().unwrap()
}

fn at_least(n: f64) -> Comparison {
    Comparison {
        at_least: Some(n),
        ..Comparison::default()
    }
}

fn equals(n: u64) -> Comparison {
    Comparison {
        equals: Some(json!(n)),
        ..Comparison::default()
    }
}

fn expected_fleet() -> FleetConfig {
    FleetConfig {
        firmware: vec![
            FirmwareSet {
                device_type: "pet_feeder".into(),
                versions: vec![version("1.0.0"), version("1.1.0"), version("2.0.0")],
                size: ByteSize(1024 * 1024),
            },
            FirmwareSet {
                device_type: "sphero_rvr".into(),
                versions: vec![version("3.0.0"), version("1.0.0")],
                size: ByteSize(1024 * 1024),
            },
            FirmwareSet {
                device_type: "amazing_hand".into(),
                versions: vec![version("0.9.0")],
                size: ByteSize(512 * 1024),
            },
        ],
        types: vec![
            DeviceTypeConfig {
                device_type: "pet_feeder".into(),
                ota: OtaGate::Enabled,
                recommended: Some(version("2.0.0")),
            },
            DeviceTypeConfig {
                device_type: "amazing_hand".into(),
                ota: OtaGate::Disabled,
                recommended: None,
            },
        ],
        groups: vec![
            Group {
                device_type: "pet_feeder".into(),
                count: Some(100),
                id: Some("feeder-{n:03}".parse().unwrap()),
                members: None,
                version: version("1.0.0"),
                faults: FaultProfile {
                    bad_download: 0.08,
                    boot_failure: 0.01,
                    offline: 0.0,
                    power_loss: 0.0,
                },
            },
            Group {
                device_type: "sphero_rvr".into(),
                count: Some(2),
                id: Some("rvr-{n}".parse().unwrap()),
                members: None,
                version: version("3.0.0"),
                faults: FaultProfile::default(),
            },
            Group {
                device_type: "amazing_hand".into(),
                count: Some(1),
                id: Some("hand".parse().unwrap()),
                members: None,
                version: version("0.9.0"),
                faults: FaultProfile::default(),
            },
        ],
        link: Some(LinkModel {
            latency: Latency::Fixed(ms(20)),
            loss: 0.001,
            ..LinkModel::default()
        }),
        download: DownloadModel {
            bandwidth: Bandwidth(1_500_000),
            latency: ms(80),
        },
    }
}

fn expected_fleet_steps() -> Vec<Step> {
    use twinrig_cloud::jobs as cj;
    vec![
        Step::Prompt(PromptStep {
            text: "update all pet_feeder devices to the latest firmware".into(),
            as_name: Some("job1".into()),
        }),
        Step::Prompt(PromptStep {
            text: "what versions are the feeders running?".into(),
            as_name: None,
        }),
        Step::CreateJob(CreateJobStep {
            id: "rollback-rvr".into(),
            target: JobTarget::DeviceType("sphero_rvr".into()),
            version: VersionRef::Exact(version("1.0.0")),
            rollout: Some(cj::RolloutConfig {
                maximum_per_minute: Some(50),
                exponential_rate: Some(cj::ExponentialRate {
                    base_rate_per_minute: 5,
                    increment_factor: 1.5,
                    rate_increase_criteria: cj::RateIncreaseCriteria {
                        number_of_notified_things: None,
                        number_of_succeeded_things: Some(10),
                    },
                }),
            }),
            abort: Some(cj::AbortConfig {
                criteria_list: vec![cj::AbortCriteria {
                    failure_type: cj::FailureType::Failed,
                    action: cj::AbortAction::Cancel,
                    threshold_percentage: 5.0,
                    min_number_of_executed_things: 20,
                }],
            }),
            timeout: Some(cj::TimeoutConfig {
                in_progress_timeout_in_minutes: Some(10),
                queued_timeout_in_minutes: None,
            }),
            retry: Some(cj::RetryConfig {
                criteria_list: vec![
                    cj::RetryCriteria {
                        failure_type: cj::FailureType::TimedOut,
                        number_of_retries: 2,
                    },
                    cj::RetryCriteria {
                        failure_type: cj::FailureType::Failed,
                        number_of_retries: 1,
                    },
                ],
            }),
            max_in_progress: Some(10),
            abort_after_failures: Some(10),
        }),
        Step::CreateJob(CreateJobStep {
            id: "one".into(),
            target: JobTarget::Device("feeder-042".into()),
            version: VersionRef::Latest,
            rollout: None,
            abort: None,
            timeout: None,
            retry: None,
            max_in_progress: None,
            abort_after_failures: None,
        }),
        Step::CreateJob(CreateJobStep {
            id: "all".into(),
            target: JobTarget::Fleet,
            version: VersionRef::Exact(version("2.0.0")),
            rollout: None,
            abort: None,
            timeout: None,
            retry: None,
            max_in_progress: None,
            abort_after_failures: None,
        }),
        Step::WaitForJob(WaitForJob {
            job: "job1".into(),
            status: vec![JobStatus::Completed, JobStatus::Canceled],
            timeout: Duration::from_secs(600),
        }),
        Step::WaitForJob(WaitForJob {
            job: "one".into(),
            status: vec![JobStatus::Completed, JobStatus::Canceled],
            timeout: Duration::from_secs(300),
        }),
        Step::Expect(Expect::Job(ExpectJob {
            job: "job1".into(),
            status: Some(JobStatus::Canceled),
            aborted: Some(true),
            succeeded: Some(at_least(1.0)),
            failed: Some(at_least(11.0)),
            max_in_progress_seen: Some(Comparison {
                at_most: Some(10.0),
                ..Comparison::default()
            }),
            timed_out: None,
            rejected: None,
            canceled: None,
            reason: None,
        })),
        Step::Expect(Expect::Job(ExpectJob {
            job: "all".into(),
            status: None,
            aborted: None,
            succeeded: None,
            failed: None,
            max_in_progress_seen: None,
            timed_out: None,
            rejected: None,
            canceled: None,
            reason: None,
        })),
        Step::Expect(Expect::Fleet(ExpectFleet {
            device_type: "pet_feeder".into(),
            version: version("2.0.0"),
            count: Some(equals(100)),
            shadows_agree: None,
        })),
        Step::Expect(Expect::Fleet(ExpectFleet {
            device_type: "sphero_rvr".into(),
            version: version("1.0.0"),
            count: None,
            shadows_agree: None,
        })),
        Step::Expect(Expect::Alert(ExpectAlert {
            job: Some("job1".into()),
            count: Some(equals(1)),
        })),
        Step::Expect(Expect::Alert(ExpectAlert {
            job: None,
            count: None,
        })),
    ]
}

#[test]
fn fleet_scenario_parses_to_the_expected_values() {
    let s = parse(FLEET).unwrap_or_else(|e| panic!("{}", e.render_plain()));
    assert_eq!(s.fleet, Some(expected_fleet()));
    assert_eq!(s.steps, expected_fleet_steps());
    let fleet = s.fleet.as_ref().unwrap();
    let ids = fleet.device_ids();
    assert_eq!(ids.len(), 103);
    assert_eq!(ids[0].0, "feeder-001");
    assert_eq!(ids[99].0, "feeder-100");
    assert_eq!(ids[100].0, "rvr-1");
    assert_eq!(ids[101].1.device_type, "sphero_rvr");
    assert_eq!(ids[102].0, "hand");
    assert_eq!(fleet.latest("sphero_rvr"), Some(version("3.0.0")));
    assert_eq!(fleet.latest("nope"), None);
    assert_eq!(fleet.type_config("sphero_rvr").ota, OtaGate::Enabled);
    assert_eq!(fleet.type_config("amazing_hand").ota, OtaGate::Disabled);
    assert_eq!(fleet.firmware[1].size.bytes(), 1024 * 1024);
    assert_eq!(fleet.download.bandwidth.bits_per_second(), 1_500_000);
}

#[test]
fn fleet_defaults_and_create_job_request() {
    let s = parse("name: m\nseed: 0\nduration_limit: 1s\nfleet: {}\nsteps: [ { delay: 1ms } ]\n")
        .unwrap();
    let fleet = s.fleet.unwrap();
    assert_eq!(fleet.download.bandwidth, Bandwidth(2_000_000));
    assert_eq!(fleet.download.latency, ms(50));
    assert!(fleet.device_ids().is_empty());
    assert_eq!(
        parse("name: m\nseed: 0\nduration_limit: 1s\nsteps: [ { delay: 1ms } ]\n")
            .unwrap()
            .fleet,
        None
    );
    let Step::CreateJob(job) = &expected_fleet_steps()[2] else {
        panic!()
    };
    let request = job.request(vec!["rvr-1".into(), "rvr-2".into()], json!({"v": 1}));
    assert_eq!(request.job_id, "rollback-rvr");
    assert_eq!(request.targets, ["rvr-1", "rvr-2"]);
    assert_eq!(request.settings.max_in_progress, Some(10));
    assert_eq!(request.settings.abort_config, job.abort);
    // The request is AWS's CreateJob body: camelCase, as the engine reads it.
    let body = serde_json::to_value(&request).unwrap();
    assert_eq!(
        body["jobExecutionsRolloutConfig"]["maximumPerMinute"],
        json!(50)
    );
    assert_eq!(body["abortAfterFailures"], json!(10));
}

#[test]
fn serialized_fleet_scenario_reads_back_equal() {
    let scenario = parse(FLEET).unwrap();
    let yaml = serde_saphyr::to_string(&scenario).unwrap();
    let back = parse(&yaml).unwrap_or_else(|e| panic!("{}\n{yaml}", e.render_plain()));
    assert_eq!(back, scenario, "{yaml}");
    let json = serde_json::to_value(&scenario).unwrap();
    assert_eq!(json["fleet"]["groups"][0]["id"], "feeder-{n:03}");
    assert_eq!(json["fleet"]["firmware"][2]["size"], "512KiB");
    assert_eq!(json["fleet"]["download"]["bandwidth"], "1500kbit/s");
    assert_eq!(json["steps"][0]["prompt"]["as"], "job1");
    assert_eq!(
        json["steps"][2]["create_job"]["target"]["type"],
        "sphero_rvr"
    );
    assert_eq!(
        json["steps"][2]["create_job"]["rollout"]["maximumPerMinute"],
        50
    );
    assert_eq!(json["steps"][4]["create_job"]["target"], "fleet");
    assert_eq!(json["steps"][3]["create_job"]["version"], "latest");
    assert_eq!(json["steps"][5]["wait_for_job"]["status"][1], "CANCELED");
}

#[test]
fn fleet_errors_are_all_reported_in_order() {
    let text = r#"name: x
seed: 1
duration_limit: 1s
devices: [ { kind: echo, id: feeder-002 } ]
fleet:
  firmware:
    - { type: pet_feeder, versions: [1.0.0, 1.0.0], size: 0B }
  types:
    - { type: pet_feder }
    - { type: pet_feeder, recommended: 3.0.0 }
  groups:
    - { type: pet_feeder, count: 3, id: "feeder-{n:03}", version: 1.1.0 }
    - { type: pet_feeder, count: 0, id: "x-{n}", version: 1.0.0 }
    - { type: pet_feeder, count: 2, id: gateway, version: 1.0.0 }
steps:
  - create_job: { id: j1, target: { type: rvr }, version: 2.0.0, max_in_progress: 0 }
  - create_job: { id: j1, target: { device: feeder-009 }, version: latest }
  - expect: { job: { job: j2 } }
"#;
    let err = parse(text).unwrap_err();
    let plain = err.render_plain();
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(
        lines,
        [
            "test.yaml:7:45: fleet firmware 1 (`pet_feeder`): version 1.0.0 is listed twice (versions are never overwritten)",
            "test.yaml:7:59: fleet firmware 1 (`pet_feeder`): `size` must be greater than 0",
            "test.yaml:9:15: fleet type 1 (`pet_feder`): no `fleet.firmware` for this type; firmware types: pet_feeder",
            "test.yaml:10:40: fleet type 2 (`pet_feeder`): recommended version 3.0.0 is not in the firmware of `pet_feeder`; versions: 1.0.0",
            "test.yaml:12:67: fleet group 1 (`feeder-{n:03}`): type `pet_feeder` has no firmware version 1.1.0 to start on; versions: 1.0.0",
            "test.yaml:12:41: fleet group 1 (`feeder-{n:03}`): device 2 gets id `feeder-002`: the id is already used by device 1",
            "test.yaml:13:34: fleet group 2 (`x-{n}`): `count` must be from 1 to 10000, got 0",
            "test.yaml:14:41: fleet group 3 (`gateway`): 2 devices need `{n}` in the id pattern to get different ids",
            "test.yaml:16:43: step 1 (create_job): unknown device type `rvr`; firmware types: pet_feeder",
            "test.yaml:16:83: step 1 (create_job): `max_in_progress` must be at least 1",
            "test.yaml:17:23: step 2 (create_job): job `j1` is already defined by step 1",
            "test.yaml:17:45: step 2 (create_job): unknown fleet device `feeder-009`; fleet device ids come from `fleet.groups` (`id` and `count`, or `members`)",
            "test.yaml:18:27: step 3 (expect): unknown job `j2`; jobs defined before this step: j1",
        ],
        "{plain}"
    );
}

// ---- hardening: limits, positions, and an error printer that never panics -

/// A scenario whose `steps` is one flow sequence on one line of about 100 KB,
/// with `last` as its final step.
fn one_long_line(last: &str) -> String {
    let steps = vec!["{ delay: 1ms }"; 7_000].join(", ");
    format!("name: x\nseed: 1\nduration_limit: 1s\nsteps: [ {steps}, {last} ]\n")
}

/// How a terminal shows the error (miette's graphical handler, as the CLI).
fn render(err: &ScenarioError) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(200)
        .render_report(&mut out, err)
        .unwrap();
    out
}

#[test]
fn error_with_a_column_past_65535_renders() {
    // A parse error (a misspelt key) and a semantic one (a wildcard topic)
    // at the end of a 100 KB line: miette's renderer used to panic
    // ("Formatting argument out of range") on such columns.
    for (last, message) in [
        ("{ dlay: 1ms }", "unknown variant `dlay`"),
        (
            "{ publish: { topic: a/+, payload: 1 } }",
            "a topic to publish to cannot contain the wildcards",
        ),
    ] {
        let text = one_long_line(last);
        assert!(text.len() > 100_000);
        let err = parse(&text).unwrap_err();
        let plain = err.render_plain();
        let column = text.lines().nth(3).unwrap().find(last).unwrap() + 1;
        assert!(column > 65_535, "{column}");
        assert!(plain.contains("test.yaml:4:"), "{plain}");
        assert!(plain.contains(message), "{plain}");
        let shown = render(&err);
        assert!(shown.contains(message), "{shown}");
        // No snippet of the long line: the message carries the position.
        assert!(!shown.contains("{ delay: 1ms }, { delay"), "{shown}");
        assert!(shown.len() < 2_000, "{shown}");
    }
}

#[test]
fn a_problem_next_to_a_long_line_renders_without_a_snippet_and_short_ones_keep_theirs() {
    let long = format!("description: \"{}\"\n", "x".repeat(2_000));
    // On the line after the long one: its context line is the long one.
    let text = format!("name: x\nseed: 1\n{long}duration_limit: 0s\nsteps:\n  - delay: 1s\n");
    let err = parse(&text).unwrap_err();
    assert_eq!(
        err.render_plain(),
        "test.yaml:4:17: `duration_limit` must be greater than 0"
    );
    let shown = render(&err);
    assert!(!shown.contains("xxxxxxxxxx"), "{shown}");
    // Two lines further down, the snippet is back.
    let text = format!("name: x\nseed: 1\n{long}steps:\n  - delay: 1s\nduration_limit: 0s\n");
    let shown = render(&parse(&text).unwrap_err());
    assert!(shown.contains("duration_limit: 0s"), "{shown}");
    assert!(!shown.contains("xxxxxxxxxx"), "{shown}");
}

#[test]
fn nesting_deeper_than_64_is_refused_with_its_position_not_a_stack_overflow() {
    // 100,000 levels of `[` in a payload: refused by the reader's budget.
    let deep = format!(
        "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - publish: {{ topic: a, payload: {}1{} }}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let plain = parse(&deep).unwrap_err().render_plain();
    assert!(plain.starts_with("test.yaml:5:"), "{plain}");
    assert!(plain.contains("nested deeper than 64"), "{plain}");
    // The same in block style, in a `match` value.
    let mut block = String::from(
        "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - wait_for:\n      topic: a\n      timeout: 1s\n      match:\n        k:\n",
    );
    for level in 0..70 {
        block.push_str(&format!("{}- \n", "  ".repeat(level + 5)));
    }
    let plain = parse(&block).unwrap_err().render_plain();
    assert!(plain.contains("nested deeper than 64"), "{plain}");
    // 60 levels of payload fit.
    let fits = format!(
        "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - publish: {{ topic: a, payload: {}1{} }}\n",
        "[".repeat(60),
        "]".repeat(60)
    );
    parse(&fits).unwrap_or_else(|e| panic!("{}", e.render_plain()));
}

#[test]
fn a_publish_payload_over_128_kib_is_refused() {
    let text = format!(
        "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - publish: {{ topic: a, payload: {{ blob: \"{}\" }} }}\n  - publish: {{ topic: a, payload: \"{}\" }}\n",
        "b".repeat(128 * 1024),
        "t".repeat(128 * 1024 + 1)
    );
    let plain = parse(&text).unwrap_err().render_plain();
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 2, "{plain}");
    assert!(
        lines[0].starts_with("test.yaml:5:35: step 1 (publish): the payload is 131083 bytes; an MQTT payload is at most 131072 bytes"),
        "{plain}"
    );
    assert!(
        lines[1].starts_with("test.yaml:6:35: step 2 (publish): the payload is 131073 bytes"),
        "{plain}"
    );
    // Exactly the limit is fine.
    let ok = format!(
        "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - publish: {{ topic: a, payload: \"{}\" }}\n",
        "t".repeat(128 * 1024)
    );
    parse(&ok).unwrap_or_else(|e| panic!("{}", e.render_plain()));
}

#[test]
fn a_match_with_more_than_256_fields_or_a_value_larger_than_any_payload_is_refused() {
    let fields: Vec<String> = (0..257).map(|i| format!("f{i}: {i}")).collect();
    let text = format!(
        "name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - wait_for: {{ topic: a, timeout: 1s, match: {{ {} }} }}\n  - expect: {{ message: {{ topic: a, match: {{ big: {{ equals: \"{}\" }} }} }} }}\n",
        fields.join(", "),
        "v".repeat(128 * 1024)
    );
    let plain = parse(&text).unwrap_err().render_plain();
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 2, "{plain}");
    assert!(
        lines[0].starts_with(
            "test.yaml:5:47: step 1 (wait_for): `match` checks 257 fields; at most 256"
        ),
        "{plain}"
    );
    assert!(
        lines[1].starts_with("test.yaml:6:60: step 2 (expect): `match.big`: `equals` is 131074 bytes as JSON; no payload can equal it"),
        "{plain}"
    );
}

#[test]
fn a_cloud_rule_with_200000_or_terms_is_refused_at_its_sql() {
    // Used to pass here at 50,000 terms and overflow the stack when the
    // rule ran, and to overflow the stack here at 200,000.
    let terms: Vec<String> = (0..200_000).map(|i| format!("x = {i}")).collect();
    let text = format!(
        "name: x\nseed: 1\nduration_limit: 1s\ncloud:\n  rules:\n    - name: wide\n      action: rvr-telemetry\n      sql: \"SELECT a FROM 'a' WHERE {}\"\nsteps:\n  - delay: 1ms\n",
        terms.join(" OR ")
    );
    let plain = parse(&text).unwrap_err().render_plain();
    assert_eq!(
        plain,
        "test.yaml:8:12: cloud rule 1 (`wide`): `sql` does not parse: more than 1000 terms (select items and operands) in one statement (at column 5408 of the SQL)"
    );
}

#[test]
fn physical_values_out_of_range_are_refused_with_their_positions() {
    // `gravity: 1e39` used to pass here and fail the run (it does not fit
    // an f32) without a position.
    let text = r#"name: x
seed: 1
duration_limit: 1s
world:
  gravity: 1e39
  floor: { friction: 11 }
  obstacles:
    - { name: far, shape: { ball: { radius: 0.0001 } }, position: [2000, 0, 0], yaw_deg: 720, mass: 1e9 }
    - { name: huge, shape: { box: { size: [1, 1, 5000] } }, position: [0, 0, 1] }
steps:
  - delay: 1ms
"#;
    let plain = parse(text).unwrap_err().render_plain();
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(
        lines,
        [
            "test.yaml:5:12: `world.gravity` must be from -100 to 100 m/s², got 1e39",
            "test.yaml:6:22: `world.floor`: `friction` must be from 0 to 10, got 11",
            "test.yaml:8:45: obstacle 1 (`far`): `radius` must be from 0.001 to 1000 m, got 0.0001",
            "test.yaml:8:67: obstacle 1 (`far`): every `position` coordinate must be from -1000 to 1000 m, got [2000.0, 0.0, 0.0]",
            "test.yaml:8:90: obstacle 1 (`far`): `yaw_deg` must be from -360 to 360, got 720",
            "test.yaml:8:101: obstacle 1 (`far`): `mass` must be at most 10000 kg, got 1e9",
            "test.yaml:9:43: obstacle 2 (`huge`): every box size must be from 0.001 to 1000 m, got [1.0, 1.0, 5000.0]",
        ],
        "{plain}"
    );
}

#[test]
fn infinite_tolerances_and_bounds_are_refused() {
    // `tolerance: .inf` made a check that can never fail.
    let text = r#"name: x
seed: 1
duration_limit: 1s
steps:
  - expect: { message: { topic: a, count: { approx: 1, tolerance: .inf } } }
  - expect: { message: { topic: a, count: { at_least: -.inf, at_most: .inf } } }
  - wait_for: { topic: a, timeout: 1s, match: { x: { approx: .inf, tolerance: 1 } } }
"#;
    let plain = parse(text).unwrap_err().render_plain();
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(
        lines,
        [
            "test.yaml:5:67: step 1 (expect): `count`: `tolerance` must be a finite number, got inf",
            "test.yaml:6:55: step 2 (expect): `count`: `at_least` must be a finite number, got -inf",
            "test.yaml:6:71: step 2 (expect): `count`: `at_most` must be a finite number, got inf",
            "test.yaml:7:62: step 3 (wait_for): `match.x`: `approx` must be a finite number, got inf",
        ],
        "{plain}"
    );
}

#[test]
fn waits_near_the_top_of_u64_nanoseconds_are_refused_with_their_positions() {
    // These used to overflow the run's time arithmetic and report a wait
    // that never happened.
    for (step, col) in [
        (
            "  - wait_for: { topic: a, timeout: 18446744073709551615ns }",
            36,
        ),
        ("  - delay: 999999h", 12),
        ("  - wait_for: { ready: d, timeout: 100000h }", 36),
    ] {
        let text = format!("name: x\nseed: 1\nduration_limit: 1s\nsteps:\n{step}\n");
        let plain = parse(&text).unwrap_err().render_plain();
        assert!(
            plain.starts_with(&format!("test.yaml:5:{col}: ")),
            "{step}: {plain}"
        );
        assert!(
            plain.contains("is too long: a scenario's durations are at most 8760h (365 days)"),
            "{plain}"
        );
    }
}

#[test]
fn an_epoch_whose_run_passes_the_year_9999_is_refused() {
    let text = "name: x\nseed: 1\nduration_limit: 2h\ncloud: { epoch: 9999-12-31T23:00:00Z }\nsteps:\n  - delay: 1ms\n";
    assert_eq!(
        parse(text).unwrap_err().render_plain(),
        "test.yaml:4:17: `cloud.epoch` 9999-12-31T23:00:00Z plus `duration_limit` 2h passes 9999-12-31T23:59:59Z, the latest time the cloud's clock can show"
    );
    parse(&text.replace("2h", "59min")).unwrap();
}

#[test]
fn a_fleet_that_would_need_terabytes_is_refused_naming_the_figure() {
    // Every group within the per-group limits, the whole far beyond memory.
    let text = r#"name: x
seed: 1
duration_limit: 1s
fleet:
  firmware:
    - { type: big, versions: [1.0.0, 2.0.0], size: 16MiB }
  groups:
    - { type: big, count: 10000, id: "a-{n}", version: 1.0.0 }
    - { type: big, count: 10000, id: "b-{n}", version: 1.0.0 }
    - { type: big, count: 10000, id: "c-{n}", version: 1.0.0 }
    - { type: big, count: 10000, id: "d-{n}", version: 1.0.0 }
steps:
  - delay: 1ms
"#;
    let plain = parse(text).unwrap_err().render_plain();
    assert_eq!(
        plain,
        "test.yaml:8:5: the run would need about 1.2 TiB of memory, more than the budget of 4 GiB: 40000 fleet devices: 1.2 TiB of simulated flash (two app slots for their type's largest image each) and 256 KiB each besides, 32 MiB of published firmware, 32 MiB for the rest of the run; use fewer devices or smaller images"
    );
}

#[test]
fn the_memory_estimate_follows_the_measured_runs() {
    // The shipped fleet-1000 benchmark: 1,000 devices with 1 MiB images,
    // measured at a peak RSS of 2,417 MiB (docs/BENCHMARKS.md).
    let text = "name: x\nseed: 1\nduration_limit: 1s\nfleet:\n  firmware: [ { type: t, versions: [1.0.0, 2.0.0] } ]\n  groups: [ { type: t, count: 1000, id: \"d-{n}\", version: 1.0.0 } ]\nsteps:\n  - delay: 1ms\n";
    let s = parse(text).unwrap();
    let e = MemoryEstimate::new(s.fleet.as_ref(), 0);
    let mib = e.total / (1024 * 1024);
    assert!((2_400..=2_700).contains(&mib), "{e:?}");
    assert!(e.total < MEMORY_BUDGET_BYTES);
}

#[test]
fn a_version_part_above_65535_is_refused_when_read() {
    // Image headers hold 16 bits per number: 70000.0.0 used to pass here
    // and fail the run when the image was built.
    let text = "name: x\nseed: 1\nduration_limit: 1s\nfleet:\n  firmware: [ { type: t, versions: [70000.0.0] } ]\nsteps:\n  - delay: 1ms\n";
    let plain = parse(text).unwrap_err().render_plain();
    assert!(plain.starts_with("test.yaml:5:37: "), "{plain}");
    assert!(plain.contains("each number is at most 65535"), "{plain}");
}

#[test]
fn validate_of_dev_zero_is_refused_before_it_is_read() {
    // `twinrig validate /dev/zero` used to read for ever.
    let err = load_scenario(Path::new("/dev/zero"), KNOWN).unwrap_err();
    assert_eq!(
        err.render_plain(),
        "/dev/zero: not a regular file (a character device); a scenario is read from a file"
    );
}

#[test]
fn a_file_over_4_mib_is_refused_after_reading_4_mib_and_one_byte() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let mut text = String::from("name: x\nseed: 1\nduration_limit: 1s\nsteps:\n  - delay: 1ms\n");
    text.push_str(&"#".repeat(MAX_FILE_BYTES + 1 - text.len()));
    std::fs::write(&big, &text).unwrap();
    let plain = load_scenario(&big, KNOWN).unwrap_err().render_plain();
    assert!(
        plain.ends_with(
            "big.yaml: the file is larger than 4 MiB, the largest scenario file twinrig reads"
        ),
        "{plain}"
    );
    // One byte less reads (and is a valid scenario full of comment).
    text.pop();
    std::fs::write(&big, &text).unwrap();
    load_scenario(&big, KNOWN).unwrap_or_else(|e| panic!("{}", e.render_plain()));
    // Text handed over directly is held to the same limit.
    text.push('#');
    let plain = parse(&text).unwrap_err().render_plain();
    assert!(
        plain.contains("a scenario file is at most 4 MiB"),
        "{plain}"
    );
}

#[cfg(unix)]
#[test]
fn dangling_and_looping_symlinks_are_reported_not_skipped() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("good.yaml"), "x").unwrap();

    let broken = root.join("broken");
    std::fs::create_dir(&broken).unwrap();
    symlink("nowhere.yaml", broken.join("gone.yaml")).unwrap();
    let plain = find_scenario_files(std::slice::from_ref(&broken))
        .unwrap_err()
        .render_plain();
    assert!(
        plain.starts_with(&format!(
            "{}: a symbolic link to `nowhere.yaml` that cannot be followed: ",
            broken.join("gone.yaml").display()
        )),
        "{plain}"
    );

    let looping = root.join("looping");
    std::fs::create_dir(&looping).unwrap();
    symlink("self.yaml", looping.join("self.yaml")).unwrap();
    let plain = find_scenario_files(std::slice::from_ref(&looping))
        .unwrap_err()
        .render_plain();
    assert!(
        plain.starts_with(&format!(
            "{}: a symbolic link to `self.yaml` that cannot be followed: ",
            looping.join("self.yaml").display()
        )),
        "{plain}"
    );

    // A link to a directory that holds it would be walked for ever.
    let cycle = root.join("cycle");
    std::fs::create_dir_all(cycle.join("sub")).unwrap();
    std::fs::write(cycle.join("sub/a.yaml"), "x").unwrap();
    symlink("..", cycle.join("sub/up")).unwrap();
    let plain = find_scenario_files(std::slice::from_ref(&cycle))
        .unwrap_err()
        .render_plain();
    assert!(
        plain.starts_with(&format!(
            "{}: a symbolic link loop: this directory is `{}`, which holds it",
            cycle.join("sub/up").display(),
            std::fs::canonicalize(&cycle).unwrap().display()
        )),
        "{plain}"
    );

    // Links that resolve are followed, to files and to directories.
    let linked = root.join("linked");
    let other = root.join("other");
    std::fs::create_dir(&linked).unwrap();
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("a.yaml"), "x").unwrap();
    symlink(root.join("good.yaml"), linked.join("alias.yaml")).unwrap();
    symlink(&other, linked.join("more")).unwrap();
    let found = find_scenario_files(std::slice::from_ref(&linked)).unwrap();
    assert_eq!(
        found,
        [linked.join("alias.yaml"), linked.join("more/a.yaml")]
    );
    // A broken link named on the command line says so too.
    let plain = find_scenario_files(&[broken.join("gone.yaml")])
        .unwrap_err()
        .render_plain();
    assert!(
        plain.contains("a symbolic link to `nowhere.yaml`"),
        "{plain}"
    );
}

#[test]
fn hex_bytes() {
    assert_eq!(decode_hex("7e00ff"), Ok(vec![0x7e, 0, 0xff]));
    assert_eq!(decode_hex(" 7e 00 FF "), Ok(vec![0x7e, 0, 0xff]));
    assert!(decode_hex("7").is_err());
    assert!(decode_hex("zz").is_err());
    assert!(decode_hex("").is_err());
    assert!(decode_hex("é0").is_err());
}
