//! Parser and evaluator tests (the real rules on realistic payloads are in
//! `cloud/tests/rules_pipeline.rs`).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn field(path: &str) -> Expr {
    Expr::Operand(Operand::Field(FieldPath(
        path.split('.').map(String::from).collect(),
    )))
}

fn num(n: i64) -> Expr {
    Expr::Operand(Operand::Literal(Literal::Number(n.into())))
}

fn eq(l: Expr, r: Expr) -> Expr {
    Expr::Compare {
        op: CmpOp::Eq,
        left: Box::new(l),
        right: Box::new(r),
    }
}

fn and(a: Expr, b: Expr) -> Expr {
    Expr::And(vec![a, b])
}

fn or(a: Expr, b: Expr) -> Expr {
    Expr::Or(vec![a, b])
}

fn not(a: Expr) -> Expr {
    Expr::Not(Box::new(a))
}

fn condition(sql: &str) -> Expr {
    parse(sql).unwrap().condition.unwrap()
}

fn err(sql: &str) -> ParseError {
    match parse(sql) {
        Ok(q) => panic!("{sql:?} parsed as {q:?}"),
        Err(e) => e,
    }
}

fn run(sql: &str, topic: &str, payload: Value) -> Option<Value> {
    parse(sql).unwrap().evaluate(
        topic,
        payload.to_string().as_bytes(),
        1_770_550_850_123,
        None,
    )
}

// ---- parser: every form --------------------------------------------------

#[test]
fn select_star() {
    let q = parse("SELECT * FROM 'a/b'").unwrap();
    assert_eq!(q.select, vec![SelectItem::Star]);
    assert_eq!(q.from, "a/b");
    assert_eq!(q.condition, None);
}

#[test]
fn select_paths_with_and_without_alias() {
    let q = parse("SELECT a, a.b.c, state.reported.x AS x2 FROM 'a/+/c/#'").unwrap();
    let names: Vec<_> = q.select.iter().map(|i| i.output_name()).collect();
    assert_eq!(names, [Some("a"), Some("c"), Some("x2")]);
    assert_eq!(
        q.select[2],
        SelectItem::Item {
            operand: Operand::Field(FieldPath(vec![
                "state".into(),
                "reported".into(),
                "x".into()
            ])),
            alias: Some("x2".into()),
        }
    );
    assert_eq!(q.from, "a/+/c/#");
}

#[test]
fn functions_topic_and_timestamp() {
    let q = parse(
        "SELECT topic(), topic(3) AS device_name, timestamp() AS t, TOPIC(1), Timestamp() FROM '#'",
    )
    .unwrap();
    let ops: Vec<_> = q
        .select
        .iter()
        .map(|i| match i {
            SelectItem::Item { operand, .. } => operand.clone(),
            SelectItem::Star => panic!("no star here"),
        })
        .collect();
    assert_eq!(
        ops,
        [
            Operand::Topic(None),
            Operand::Topic(Some(3)),
            Operand::Timestamp,
            Operand::Topic(Some(1)),
            Operand::Timestamp
        ]
    );
    let names: Vec<_> = q.select.iter().map(|i| i.output_name()).collect();
    assert_eq!(
        names,
        [
            Some("topic"),
            Some("device_name"),
            Some("t"),
            Some("topic"),
            Some("timestamp")
        ]
    );
}

#[test]
fn star_combined_with_items_and_literals() {
    let q = parse("SELECT *, topic(3) AS device_name, 15 AS speed, 'x' AS s, true AS b, NULL AS n FROM 'a/b/c'")
        .unwrap();
    assert_eq!(q.select.len(), 6);
    assert_eq!(q.select[0], SelectItem::Star);
    // A field named like a function, without parentheses, is a field.
    let q = parse("SELECT topic, timestamp FROM 'a'").unwrap();
    assert_eq!(q.select[0].output_name(), Some("topic"));
    assert!(matches!(
        &q.select[1],
        SelectItem::Item {
            operand: Operand::Field(_),
            ..
        }
    ));
}

#[test]
fn keywords_are_case_insensitive_fields_are_not() {
    let a = parse(
        "select Gesture as g from 'x/+' where Letter = 'A' and not Done = TRUE or x <> False",
    )
    .unwrap();
    let b = parse(
        "SELECT Gesture AS g FROM 'x/+' WHERE Letter = 'A' AND NOT Done = true OR x <> false",
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.select[0], {
        SelectItem::Item {
            operand: Operand::Field(FieldPath(vec!["Gesture".into()])),
            alias: Some("g".into()),
        }
    });
}

#[test]
fn all_comparison_operators() {
    for (text, op) in [
        ("=", CmpOp::Eq),
        ("<>", CmpOp::Ne),
        ("<", CmpOp::Lt),
        ("<=", CmpOp::Le),
        (">", CmpOp::Gt),
        (">=", CmpOp::Ge),
    ] {
        let c = condition(&format!("SELECT * FROM 'a' WHERE x {text} -2.5"));
        assert_eq!(
            c,
            Expr::Compare {
                op,
                left: Box::new(field("x")),
                right: Box::new(Expr::Operand(Operand::Literal(Literal::Number(
                    serde_json::Number::from_f64(-2.5).unwrap()
                )))),
            }
        );
    }
    // Literal on the left, function on the right.
    let c = condition("SELECT * FROM 'a/b' WHERE 'b' = topic(2)");
    assert!(matches!(c, Expr::Compare { op: CmpOp::Eq, .. }));
    // Strings with a doubled quote.
    let c = condition("SELECT * FROM 'a' WHERE s = 'it''s'");
    assert_eq!(
        c,
        eq(
            field("s"),
            Expr::Operand(Operand::Literal(Literal::String("it's".into())))
        )
    );
}

#[test]
fn precedence_or_and_not() {
    // AND binds tighter than OR.
    assert_eq!(
        condition("SELECT * FROM 'a' WHERE a = 1 OR b = 2 AND c = 3"),
        or(
            eq(field("a"), num(1)),
            and(eq(field("b"), num(2)), eq(field("c"), num(3)))
        )
    );
    assert_eq!(
        condition("SELECT * FROM 'a' WHERE a = 1 AND b = 2 OR c = 3"),
        or(
            and(eq(field("a"), num(1)), eq(field("b"), num(2))),
            eq(field("c"), num(3))
        )
    );
    // NOT binds tighter than AND, looser than a comparison.
    assert_eq!(
        condition("SELECT * FROM 'a' WHERE NOT a = 1 AND b = 2"),
        and(not(eq(field("a"), num(1))), eq(field("b"), num(2)))
    );
    // Parentheses override.
    assert_eq!(
        condition("SELECT * FROM 'a' WHERE (a = 1 OR b = 2) AND c = 3"),
        and(
            or(eq(field("a"), num(1)), eq(field("b"), num(2))),
            eq(field("c"), num(3))
        )
    );
    assert_eq!(
        condition("SELECT * FROM 'a' WHERE NOT (a = 1 OR b = 2)"),
        not(or(eq(field("a"), num(1)), eq(field("b"), num(2))))
    );
    assert_eq!(
        condition("SELECT * FROM 'a' WHERE NOT NOT ok"),
        not(not(field("ok")))
    );
    // A chain is one node; parentheses keep their grouping.
    assert_eq!(
        condition("SELECT * FROM 'a' WHERE a OR b OR c"),
        Expr::Or(vec![field("a"), field("b"), field("c")])
    );
    assert_eq!(
        condition("SELECT * FROM 'a' WHERE (a OR b) OR c"),
        or(or(field("a"), field("b")), field("c"))
    );
    assert_eq!(
        condition("SELECT * FROM 'a' WHERE a AND b AND c OR d"),
        or(
            Expr::And(vec![field("a"), field("b"), field("c")]),
            field("d")
        )
    );
}

#[test]
fn canonical_print_parses_back() {
    for sql in [
        // The hand's rule (robots/hand/twin), verbatim.
        "SELECT gesture, letter, ts, fingers, video_url, \
         topic(3) AS device_name FROM 'the-project/robotic-hand/+/state'",
        // A robot kind's rule shape (the RVR's telemetry rule, robots/rvr/twin).
        "SELECT ts, imu, locator, topic(3) AS device_name \
         FROM 'the-project/sphero-rvr/+/state' WHERE type = 'telemetry'",
        "SELECT *, topic(3) AS device_name FROM 'the-project/robotic-hand/+/state'",
        "select a from 'a' where not (x = 1 or y <> 'it''s') and (z >= 2) = true",
    ] {
        let q = parse(sql).unwrap();
        let printed = q.to_string();
        assert_eq!(parse(&printed).unwrap(), q, "{printed}");
    }
}

// ---- parser: errors with positions --------------------------------------

#[test]
fn missing_from() {
    let e = err("SELECT a 'x/y'");
    assert_eq!(e.column(), 10);
    assert_eq!(
        e.kind,
        ParseErrorKind::Expected {
            expected: "`,` or FROM",
            found: "string 'x/y'".into()
        }
    );
    let e = err("SELECT a, b");
    assert_eq!(e.column(), 12);
    assert!(
        matches!(e.kind, ParseErrorKind::Expected { ref found, .. } if found == "end of input")
    );
    assert_eq!(
        e.to_string(),
        "expected `,` or FROM, found end of input at column 12"
    );
    // FROM without a quoted filter.
    let e = err("SELECT a FROM a/b");
    assert_eq!(e.column(), 15);
}

#[test]
fn unclosed_quote() {
    let e = err("SELECT a FROM 'x/y");
    assert_eq!(
        (e.column(), e.kind),
        (15, ParseErrorKind::UnterminatedString)
    );
    let e = err("SELECT a FROM 'x' WHERE b = 'oops");
    assert_eq!(
        (e.column(), e.kind),
        (29, ParseErrorKind::UnterminatedString)
    );
}

#[test]
fn unknown_function() {
    let e = err("SELECT upper(color) AS c FROM 'a'");
    assert_eq!(e.column(), 8);
    assert_eq!(e.kind, ParseErrorKind::UnknownFunction("upper".into()));
    let e = err("SELECT * FROM 'a' WHERE newuuid() = 'x'");
    assert_eq!(e.column(), 25);
    assert_eq!(e.kind, ParseErrorKind::UnknownFunction("newuuid".into()));
    let e = err("SELECT timestamp(1) AS t FROM 'a'");
    assert_eq!(e.column(), 18);
}

#[test]
fn bad_topic_index() {
    for (sql, col) in [
        ("SELECT topic(0) AS t FROM 'a'", 14),
        ("SELECT topic(-1) AS t FROM 'a'", 14),
        ("SELECT topic(1.5) AS t FROM 'a'", 14),
        ("SELECT topic('2') AS t FROM 'a'", 14),
        ("SELECT topic(x) AS t FROM 'a'", 14),
        ("SELECT topic(99999999999) AS t FROM 'a'", 14),
        ("SELECT a FROM 'a' WHERE topic(0) = 'a'", 31),
    ] {
        let e = err(sql);
        assert!(
            matches!(e.kind, ParseErrorKind::BadTopicIndex(_)),
            "{sql}: {e}"
        );
        assert_eq!(e.column(), col, "{sql}");
    }
    let e = err("SELECT topic(2 AS t FROM 'a'");
    assert_eq!(e.column(), 16);
}

#[test]
fn other_errors_point_at_the_problem() {
    let cases: &[(&str, usize)] = &[
        ("", 1),                                   // no SELECT
        ("FROM 'a'", 1),                           // no SELECT
        ("SELECT FROM 'a'", 8),                    // empty select list
        ("SELECT a, FROM 'a'", 11),                // trailing comma
        ("SELECT a FROM 'a/#/b'", 15),             // bad filter
        ("SELECT a FROM ''", 15),                  // empty filter
        ("SELECT a FROM 'a' WHERE", 24),           // no condition
        ("SELECT a FROM 'a' WHERE x = 1 AND", 34), // dangling AND
        ("SELECT a FROM 'a' WHERE x != 1", 27),    // not an operator here
        ("SELECT a FROM 'a' WHERE x = 1 = 2", 31), // chained comparison
        ("SELECT a FROM 'a' WHERE (x = 1", 31),    // unclosed paren
        ("SELECT a FROM 'a' extra", 19),           // trailing input
        ("SELECT a AS FROM 'a'", 13),              // alias is a keyword
        ("SELECT 5 FROM 'a'", 10),                 // literal without a name
        ("SELECT a. FROM 'a'", 11),                // dangling dot
        ("SELECT a FROM 'a' WHERE x = 12abc", 29), // bad number
        ("SELECT a FROM 'a' WHERE x = 1e999", 29), // out of range
        ("SELECT a FROM 'a' WHERE x = \"s\"", 29), // double quotes
        ("SELECT a FROM 'a' WHERE x = @", 29),     // stray character
    ];
    for (sql, col) in cases {
        let e = err(sql);
        assert_eq!(e.column(), *col, "{sql:?}: {e}");
    }
    assert!(matches!(
        err("SELECT a FROM 'a/#/b'").kind,
        ParseErrorKind::BadTopicFilter(_)
    ));
    assert!(matches!(
        err("SELECT a FROM 'a' WHERE x = 1e999").kind,
        ParseErrorKind::InvalidNumber(_)
    ));
    assert!(matches!(
        err("SELECT a FROM 'a' WHERE x = @").kind,
        ParseErrorKind::UnexpectedChar('@')
    ));
}

#[test]
fn positions_count_lines_and_characters() {
    let e = err("SELECT a,\n       b\n  FROM 'a' WHERE ü = 1");
    // `ü` is not a name character: line 3, column 18 (characters, not bytes).
    assert_eq!((e.pos.line, e.pos.column), (3, 18));
    assert_eq!(e.kind, ParseErrorKind::UnexpectedChar('ü'));
    assert_eq!(
        &"SELECT a,\n       b\n  FROM 'a' WHERE ü = 1"[e.pos.offset..][..2],
        "ü"
    );
    let e = err("SELECT 'ü' AS u, x FROM 'a' WHERE");
    assert_eq!(e.column(), 34);
}

#[test]
fn nesting_is_bounded() {
    let deep = format!(
        "SELECT a FROM 'a' WHERE {}x{}",
        "(".repeat(500),
        ")".repeat(500)
    );
    assert_eq!(err(&deep).kind, ParseErrorKind::TooDeep);
    let nots = format!("SELECT a FROM 'a' WHERE {}x", "NOT ".repeat(500));
    assert_eq!(err(&nots).kind, ParseErrorKind::TooDeep);
    let ok = format!(
        "SELECT a FROM 'a' WHERE {}x{}",
        "(".repeat(60),
        ")".repeat(60)
    );
    assert!(parse(&ok).is_ok());
}

/// `SELECT a FROM 'a' WHERE x = 0 OR x = 1 OR ...` with `n` comparisons.
fn or_chain(n: usize) -> String {
    let terms: Vec<String> = (0..n).map(|i| format!("x = {i}")).collect();
    format!("SELECT a FROM 'a' WHERE {}", terms.join(" OR "))
}

#[test]
fn a_where_chain_of_200000_or_terms_is_refused_not_a_stack_overflow() {
    // Used to overflow the stack in `validate` (the tree dropped pair by
    // pair) at about 200,000 terms, and at run time at about 50,000.
    let sql = or_chain(200_000);
    let e = err(&sql);
    assert_eq!(e.kind, ParseErrorKind::TooLarge);
    // At the first term past the limit: `SELECT a` is term 1, and each
    // comparison two more, so term 1,001 is the right side of `x = 499`.
    let expected = sql.find("x = 499 ").unwrap() + "x = ".len();
    assert_eq!(e.pos.offset, expected, "{e}");
    assert!(e.to_string().contains("more than 1000 terms"), "{e}");
    // A long SELECT list counts too.
    let select = format!("SELECT {} FROM 'a'", vec!["*"; 5_000].join(", "));
    assert_eq!(err(&select).kind, ParseErrorKind::TooLarge);
}

#[test]
fn a_where_chain_at_the_term_limit_runs_on_a_small_stack() {
    // The largest statement the parser takes (and the deepest, in another
    // one) parses, evaluates, prints and drops on a thread with a quarter
    // of Rust's default 2 MiB: nothing walks the tree deeper than
    // `MAX_NESTING` levels.
    let widest = or_chain((MAX_TERMS - 1) / 2);
    let deepest = format!(
        "SELECT a FROM 'a' WHERE {}x = 7 OR x = 8{}",
        "(NOT ".repeat(MAX_NESTING / 2),
        ")".repeat(MAX_NESTING / 2)
    );
    let outcome = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let mut outputs = Vec::new();
            for sql in [widest, deepest] {
                let q = parse(&sql).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(parse(&q.to_string()).as_ref(), Ok(&q));
                outputs.push(q.evaluate("a", br#"{"x": 7, "a": 1}"#, 0, None));
            }
            outputs
        })
        .unwrap()
        .join()
        .unwrap();
    // x = 7 is one of the chain's terms; in the deep one the innermost
    // `NOT x = 7 OR x = 8` is false and 31 more NOTs make it true.
    assert_eq!(outcome, [Some(json!({"a": 1})), Some(json!({"a": 1}))]);
}

// ---- evaluation -----------------------------------------------------------

#[test]
fn topic_filter_decides_whether_a_rule_runs() {
    let sql = "SELECT * FROM 'the-project/robotic-hand/+/state'";
    assert!(
        run(
            sql,
            "the-project/robotic-hand/XIAOAmazingHandRight/state",
            json!({})
        )
        .is_some()
    );
    assert!(
        run(
            sql,
            "the-project/robotic-hand/XIAOAmazingHandRight/action",
            json!({})
        )
        .is_none()
    );
    assert!(run(sql, "the-project/robotic-hand/a/b/state", json!({})).is_none());
    assert!(
        run(
            "SELECT * FROM '#'",
            "$aws/things/x/shadow/update",
            json!({})
        )
        .is_none()
    );
    assert!(
        run(
            "SELECT * FROM '$aws/things/+/shadow/#'",
            "$aws/things/x/shadow/update",
            json!({})
        )
        .is_some()
    );
}

#[test]
fn star_and_items_merge_later_wins() {
    let out = run(
        "SELECT *, topic(3) AS device_name, 15 AS speed, color AS hue FROM 'a/b/c'",
        "a/b/c",
        json!({"color": "red", "speed": 1, "device_name": "payload"}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"color": "red", "speed": 15, "device_name": "c", "hue": "red"})
    );
}

#[test]
fn undefined_items_are_left_out_null_is_kept() {
    let out = run(
        "SELECT a, b, c.d, c.e.f, topic(9) AS far, x.y AS deep FROM 'a/b'",
        "a/b",
        json!({"a": null, "c": {"d": [1, 2], "e": 3}, "x": "not an object"}),
    )
    .unwrap();
    assert_eq!(out, json!({"a": null, "d": [1, 2]}));
}

#[test]
fn functions_use_the_topic_and_the_given_clock() {
    let q =
        parse("SELECT topic() AS t, topic(1) AS first, topic(2), timestamp() AS now FROM '+/+'")
            .unwrap();
    let out = q.evaluate("dev/x", b"{}", 42, None).unwrap();
    assert_eq!(
        out,
        json!({"t": "dev/x", "first": "dev", "topic": "x", "now": 42})
    );
    let out = q.evaluate("dev/x", b"{}", 43, None).unwrap();
    assert_eq!(out["now"], json!(43));
}

#[test]
fn non_json_payloads_have_no_fields() {
    let q = parse("SELECT *, gesture, topic(3) AS device_name FROM 'a/b/+'").unwrap();
    for payload in [
        &b"HELLO"[..],
        b"",
        b"\xff\xfe",
        b"[1,2]",
        b"42",
        b"\"text\"",
    ] {
        assert_eq!(
            q.evaluate("a/b/dev", payload, 0, None),
            Some(json!({"device_name": "dev"})),
            "{payload:?}"
        );
    }
    let w = parse("SELECT * FROM 'a' WHERE x = 1").unwrap();
    assert_eq!(w.evaluate("a", b"not json", 0, None), None);
}

#[test]
fn where_filters_messages() {
    let sql = "SELECT color AS my_color FROM 'a/b' WHERE temperature > 50 AND color <> 'red'";
    assert_eq!(
        run(sql, "a/b", json!({"color": "red", "temperature": 40})),
        None
    );
    assert_eq!(
        run(sql, "a/b", json!({"color": "red", "temperature": 60})),
        None
    );
    assert_eq!(
        run(sql, "a/b", json!({"color": "blue", "temperature": 60})),
        Some(json!({"my_color": "blue"}))
    );
    // Strings that look like numbers compare as numbers.
    assert!(run(sql, "a/b", json!({"color": "blue", "temperature": "60.5"})).is_some());
    // A non-numeric temperature is Undefined, so the rule does not fire.
    assert!(run(sql, "a/b", json!({"color": "blue", "temperature": "hot"})).is_none());

    let letters = "SELECT letter FROM 'h/+/state' WHERE gesture = 'fingerspell' AND (letter = 'A' OR letter = 'E')";
    assert!(
        run(
            letters,
            "h/d/state",
            json!({"gesture": "fingerspell", "letter": "E"})
        )
        .is_some()
    );
    assert!(
        run(
            letters,
            "h/d/state",
            json!({"gesture": "fingerspell", "letter": "B"})
        )
        .is_none()
    );
    assert!(
        run(
            letters,
            "h/d/state",
            json!({"gesture": "wave", "letter": "A"})
        )
        .is_none()
    );

    let by_device = "SELECT * FROM 'h/+/state' WHERE topic(2) = 'XIAOAmazingHandRight'";
    assert!(run(by_device, "h/XIAOAmazingHandRight/state", json!({})).is_some());
    assert!(run(by_device, "h/XIAOAmazingHandLeft/state", json!({})).is_none());
}

#[test]
fn where_on_undefined_is_false() {
    let p = json!({"x": 1, "flag": "TRUE", "off": false, "n": null});
    let fires =
        |cond: &str| run(&format!("SELECT * FROM 'a' WHERE {cond}"), "a", p.clone()).is_some();
    assert!(fires("x = 1"));
    assert!(!fires("missing = 1"));
    assert!(!fires("missing <> 1"));
    assert!(!fires("NOT (missing = 1)"));
    assert!(!fires("missing < 1 OR missing >= 1"));
    // No short circuit: any Undefined operand makes AND / OR Undefined.
    assert!(!fires("x = 1 OR missing = 1"));
    assert!(!fires("off AND missing = 1"));
    // Booleans from strings, bare boolean fields.
    assert!(fires("flag"));
    assert!(fires("flag AND NOT off"));
    assert!(!fires("off"));
    assert!(!fires("x")); // a number is not a Boolean
    // Null compares as a value.
    assert!(fires("n = NULL"));
    assert!(!fires("n <> NULL"));
    assert!(!fires("n = 0"));
    assert!(fires("n <> 0"));
    // Mixed types: not equal, and unordered.
    assert!(!fires("x = '1'"));
    assert!(fires("x <> '1'"));
    assert!(fires("x >= '1'"));
}

#[test]
fn rule_set_runs_rules_in_order() {
    let set = RuleSet::from_configs([
        RuleConfig {
            name: "all".into(),
            sql: "SELECT * FROM '#'".into(),
            action: "log".into(),
        },
        RuleConfig {
            name: "hot".into(),
            sql: "SELECT t FROM 'sensors/+' WHERE t > 30".into(),
            action: "alerts".into(),
        },
    ])
    .unwrap();
    let fired = set.on_message("sensors/1", br#"{"t": 31, "u": 2}"#, 0);
    assert_eq!(
        fired,
        vec![
            ("all".to_string(), json!({"t": 31, "u": 2})),
            ("hot".to_string(), json!({"t": 31})),
        ]
    );
    assert_eq!(set.on_message("sensors/1", br#"{"t": 20}"#, 0).len(), 1);
    assert!(set.on_message("$aws/things/x", b"{}", 0).is_empty());
    assert_eq!(set.get("hot").map(Rule::action), Some("alerts"));
    assert_eq!(set.rules().len(), 2);
}

#[test]
fn rule_set_rejects_bad_configs() {
    let cfg = |name: &str, sql: &str, action: &str| RuleConfig {
        name: name.into(),
        sql: sql.into(),
        action: action.into(),
    };
    let mut set = RuleSet::new();
    set.add(cfg("r1", "SELECT * FROM 'a'", "x")).unwrap();
    assert_eq!(
        set.add(cfg("r1", "SELECT * FROM 'b'", "x")),
        Err(RuleError::Duplicate("r1".into()))
    );
    assert!(matches!(
        set.add(cfg("bad name", "SELECT * FROM 'a'", "x")),
        Err(RuleError::BadName(_))
    ));
    assert!(matches!(
        set.add(cfg("", "SELECT * FROM 'a'", "x")),
        Err(RuleError::BadName(_))
    ));
    assert!(matches!(
        set.add(cfg("r2", "SELECT * FROM 'a'", "")),
        Err(RuleError::NoAction(_))
    ));
    match set.add(cfg("r3", "SELECT * FORM 'a'", "x")) {
        Err(RuleError::Sql { rule, source }) => {
            assert_eq!(rule, "r3");
            assert_eq!(source.column(), 10);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(set.rules().len(), 1);
}

#[test]
fn rule_configs_deserialize() {
    let configs: Vec<RuleConfig> = serde_json::from_str(
        r#"[{"name": "AmazingHandStateStreamingRule",
             "sql": "SELECT gesture FROM 'the-project/robotic-hand/+/state'",
             "action": "hand-state"}]"#,
    )
    .unwrap();
    assert_eq!(configs[0].action, "hand-state");
    assert!(RuleSet::from_configs(configs).is_ok());
    let typo = serde_json::from_str::<RuleConfig>(r#"{"name": "a", "sql": "x", "actoin": "y"}"#);
    assert!(typo.is_err());
}

// ---- properties -------------------------------------------------------------

fn arb_name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,6}".prop_filter("not a keyword", |s| {
        ![
            "select", "from", "where", "as", "and", "or", "not", "true", "false", "null",
        ]
        .contains(&s.as_str())
    })
}

fn arb_operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        prop::collection::vec(arb_name(), 1..4).prop_map(|p| Operand::Field(FieldPath(p))),
        prop::option::of(1u32..20).prop_map(Operand::Topic),
        Just(Operand::Timestamp),
        Just(Operand::ClientId),
        any::<i64>().prop_map(|n| Operand::Literal(Literal::Number(n.into()))),
        "[ -~]{0,8}".prop_map(|s| Operand::Literal(Literal::String(s))),
        any::<bool>().prop_map(|b| Operand::Literal(Literal::Bool(b))),
        Just(Operand::Literal(Literal::Null)),
    ]
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    let cmp = prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge),
    ];
    let leaf = prop_oneof![
        arb_operand().prop_map(Expr::Operand),
        (cmp, arb_operand(), arb_operand()).prop_map(|(op, l, r)| Expr::Compare {
            op,
            left: Box::new(Expr::Operand(l)),
            right: Box::new(Expr::Operand(r)),
        }),
    ];
    leaf.prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

fn arb_query() -> impl Strategy<Value = Query> {
    let item = prop_oneof![
        Just(SelectItem::Star),
        (arb_operand(), prop::option::of(arb_name())).prop_map(|(operand, alias)| {
            let alias = match operand {
                Operand::Literal(_) => alias.or(Some("lit".into())),
                _ => alias,
            };
            SelectItem::Item { operand, alias }
        }),
    ];
    (
        prop::collection::vec(item, 1..5),
        "[a-z]{1,4}(/(\\+|[a-z]{1,4})){0,3}(/#)?",
        prop::option::of(arb_expr()),
    )
        .prop_map(|(select, from, condition)| Query {
            select,
            from,
            condition,
        })
}

const VOCAB: &[&str] = &[
    "SELECT",
    "select",
    "FROM",
    "WHERE",
    "AS",
    "AND",
    "OR",
    "NOT",
    "TRUE",
    "NULL",
    "*",
    ",",
    ".",
    "(",
    ")",
    "=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "'a/+'",
    "'",
    "''",
    "topic",
    "timestamp",
    "a",
    "b.c",
    "1",
    "-2.5",
    "1e3",
    "0",
    "topic(3)",
    "topic(",
    " ",
    "\n",
    "ü",
    "!",
    "\"",
];

proptest! {
    #[test]
    fn random_strings_never_panic(s in "\\PC{0,80}") {
        let _ = parse(&s);
    }

    #[test]
    fn random_token_soups_never_panic(words in prop::collection::vec(prop::sample::select(VOCAB), 0..30)) {
        let sql = words.join(" ");
        if let Ok(q) = parse(&sql) {
            let _ = q.evaluate("a/b", br#"{"a": 1, "b": {"c": "x"}}"#, 0, None);
        }
        let glued = words.concat();
        let _ = parse(&glued);
    }

    #[test]
    fn printed_queries_parse_back(q in arb_query()) {
        let printed = q.to_string();
        prop_assert_eq!(parse(&printed), Ok(q), "{}", printed);
    }

    #[test]
    fn evaluation_never_panics(
        q in arb_query(),
        topic in "[a-z+#/$]{0,12}",
        payload in prop::collection::vec(any::<u8>(), 0..64),
        now in any::<u64>(),
    ) {
        let _ = q.evaluate(&topic, &payload, now, None);
        let _ = q.evaluate("a/b/c", br#"{"a": {"b": [1, {"c": null}]}, "x": "1e3"}"#, now, None);
    }
}

#[test]
fn clientid_is_the_publisher_or_n_a_off_mqtt() {
    let q = parse("SELECT clientid(), clientid() AS thing FROM 'a' WHERE clientid() = 'feeder-1'")
        .unwrap();
    assert_eq!(
        q.evaluate("a", b"{}", 0, Some("feeder-1")),
        Some(json!({"clientid": "feeder-1", "thing": "feeder-1"}))
    );
    assert_eq!(q.evaluate("a", b"{}", 0, Some("feeder-2")), None);
    let any = parse("SELECT clientid() AS c FROM 'a'").unwrap();
    assert_eq!(any.evaluate("a", b"{}", 0, None), Some(json!({"c": "n/a"})));
    assert!(
        err("SELECT clientid(1) FROM 'a'")
            .to_string()
            .contains("clientid() takes no argument")
    );
}
