//! Scenario files: the shipped scenarios, mutated the ways a person or a
//! generator gets a file wrong, through load + validation and both error
//! renderers (plain, and the terminal one the CLI prints).

use std::path::Path;

use proptest::prelude::*;
use twinrig::suite;

/// Every shipped scenario's text: the corpus mutations start from.
fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let files = twinrig::scenario::find_scenario_files(&[root]).expect("scenarios/ readable");
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("readable"))
        .collect()
}

/// Values that break naive code: extremes, non-finite, wrong types, units.
const HOSTILE: &[&str] = &[
    "0",
    "-1",
    "1e39",
    "-1e39",
    ".inf",
    "-.inf",
    ".nan",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "0.0000000001s",
    "999999999h",
    "18446744073709551615ns",
    "1e300s",
    "0s",
    "-1s",
    "2",
    "true",
    "null",
    "~",
    "[]",
    "{}",
    "\"\"",
    "\"\\u0000\"",
    "[[[[[[[[[[]]]]]]]]]]",
    "{a: {b: {c: {d: {}}}}}",
    "&a [*a]",
    "!!binary AAAA",
    "'$aws/things/x'",
    "\"+/#\"",
    "twinrig-scenario",
    "9999999",
];

/// One edit to a scenario's text.
#[derive(Debug, Clone)]
enum Edit {
    /// Replace the value after the n-th `: ` with a hostile one.
    Value(usize, usize),
    /// Delete line n.
    DeleteLine(usize),
    /// Repeat line n.
    RepeatLine(usize),
    /// Overwrite one byte.
    Byte(usize, u8),
    /// Cut the file at a byte.
    Truncate(usize),
    /// Indent or dedent line n by two spaces.
    Shift(usize, bool),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_owned();
    for e in edits {
        match *e {
            Edit::Value(n, v) => {
                let spots: Vec<usize> = s.match_indices(": ").map(|(i, _)| i + 2).collect();
                if let Some(&at) = spots.get(n % spots.len().max(1)) {
                    let end = s[at..].find(['\n', ',', '}']).map_or(s.len(), |k| at + k);
                    s.replace_range(at..end, HOSTILE[v % HOSTILE.len()]);
                }
            }
            Edit::DeleteLine(n) | Edit::RepeatLine(n) | Edit::Shift(n, _) => {
                let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
                if lines.is_empty() {
                    continue;
                }
                let i = n % lines.len();
                match *e {
                    Edit::DeleteLine(_) => {
                        lines.remove(i);
                    }
                    Edit::RepeatLine(_) => {
                        let l = lines[i].clone();
                        lines.insert(i, l);
                    }
                    Edit::Shift(_, deeper) => {
                        if deeper {
                            lines[i].insert_str(0, "  ");
                        } else if lines[i].starts_with("  ") {
                            lines[i].replace_range(..2, "");
                        }
                    }
                    _ => unreachable!("matched above"),
                }
                s = lines.join("\n");
            }
            Edit::Byte(at, b) => {
                let mut bytes = s.into_bytes();
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] = b;
                }
                s = String::from_utf8_lossy(&bytes).into_owned();
            }
            Edit::Truncate(at) => {
                let mut cut = at % (s.len() + 1);
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
            }
        }
    }
    s
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), any::<usize>()).prop_map(|(n, v)| Edit::Value(n, v)),
        1 => any::<usize>().prop_map(Edit::DeleteLine),
        1 => any::<usize>().prop_map(Edit::RepeatLine),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Byte(a, b)),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(n, d)| Edit::Shift(n, d)),
    ]
}

/// Mutated shipped scenarios, and now and then a random YAML-ish text.
pub fn inputs() -> impl Strategy<Value = String> {
    let corpus = corpus();
    let n = corpus.len();
    prop_oneof![
        9 => (0..n, prop::collection::vec(edit(), 1..6))
            .prop_map(move |(i, edits)| apply(&corpus[i], &edits)),
        1 => "[ -~\n]{0,200}",
    ]
}

/// Loads `text` as a scenario; on error, renders it both ways. Never panics
/// (a panic fails the case); an error must name a position or a reason.
pub fn check_text(text: &str) -> Result<(), String> {
    match suite::parse(text.to_owned(), Path::new("fuzz.yaml")) {
        Ok(_) => Ok(()),
        Err(e) => {
            let plain = e.render_plain();
            if plain.trim().is_empty() {
                return Err("an error with no message".into());
            }
            // What `twinrig` prints.
            let fancy = e.render();
            if fancy.trim().is_empty() {
                return Err("an empty rendered report".into());
            }
            Ok(())
        }
    }
}
