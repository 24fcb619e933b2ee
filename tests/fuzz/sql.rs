//! The IoT SQL parser and evaluator: token soup shaped like rules, and the
//! rules that parse evaluated against JSON payloads.

use proptest::prelude::*;
use twinrig_cloud::rules::{RuleConfig, RuleSet};

const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AS",
    "AND",
    "OR",
    "NOT",
    "*",
    ",",
    "(",
    ")",
    ".",
    "=",
    "<>",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "/",
    "%",
    "'the-project/+/state'",
    "'a/#'",
    "'#'",
    "'+'",
    "topic()",
    "topic(3)",
    "topic(0)",
    "topic(99999999999)",
    "timestamp()",
    "clientid()",
    "imu",
    "imu.yaw",
    "fingers.index.angle_1",
    "letter",
    "ts",
    "a",
    "b",
    "0",
    "1",
    "-1",
    "1.5",
    "1e308",
    "1e999",
    "'x'",
    "''",
    "'unterminated",
    "true",
    "false",
    "null",
    "\"quoted\"",
    "CASE",
    "WHEN",
    "THEN",
    "END",
    "IS",
    "NULL",
    "IN",
    "[",
    "]",
];

fn sql_text() -> impl Strategy<Value = String> {
    prop_oneof![
        // SELECT ... FROM '...' WHERE ..., with random pieces.
        4 => (
            prop::collection::vec(prop::sample::select(TOKENS), 0..8),
            prop::sample::select(TOKENS),
            prop::collection::vec(prop::sample::select(TOKENS), 0..16),
        )
            .prop_map(|(select, from, r#where)| {
                format!(
                    "SELECT {} FROM {from} WHERE {}",
                    select.join(" "),
                    r#where.join(" ")
                )
            }),
        3 => prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|t| t.join(" ")),
        1 => "[ -~]{0,120}",
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z0-9 ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(&["imu", "yaw", "letter", "ts", "a", "b", "fingers"][..])
                    .prop_map(str::to_owned),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

pub fn inputs() -> impl Strategy<Value = (String, Vec<u8>)> {
    (
        sql_text(),
        prop_oneof![
            3 => json_value().prop_map(|v| v.to_string().into_bytes()),
            1 => super::bytes(64),
        ],
    )
}

/// Parses `sql` as a rule; if it parses, evaluates it on a message.
pub fn check(sql: &str, payload: &[u8]) -> Result<(), String> {
    let Ok(rules) = RuleSet::from_configs([RuleConfig {
        name: "fuzz".into(),
        sql: sql.to_owned(),
        action: "rvr-telemetry".into(),
    }]) else {
        return Ok(());
    };
    for topic in ["the-project/sphero-rvr/rvr-1/state", "a/b", "", "#"] {
        let _ = rules.on_message(topic, payload, 1_700_000_000_000);
    }
    Ok(())
}
