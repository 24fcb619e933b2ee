//! Voice-style commands: a sentence in, the MQTT commands a browser would publish out.
//!
//! [`CommandModel`] (the device-kind seam's) is where a hosted speech/intent
//! model plugs in; the RVR's default, [`OfflineParser`], is deterministic and handles the phrases people use to
//! drive the RVR: "drive forward one and a half metres, then turn left ninety
//! degrees". Clauses are split on "then", commas and semicolons; each names a
//! motion (forward/ahead, back/backward/reverse, turn/rotate left/right/around,
//! stop/cancel) with a number in digits or words and a unit (m, metres, cm,
//! centimetres, degrees). Turns are positive counter-clockwise (left). A turn
//! with no angle is 90 degrees; a distance without a unit is an error (too easy
//! to mishear). Anything it cannot read is an error naming the words, never a
//! guess.

use serde_json::{Value, json};
use twinrig_kind::{CommandModel, VoiceError};

/// The deterministic, offline default.
#[derive(Debug, Default, Clone, Copy)]
pub struct OfflineParser;

impl CommandModel for OfflineParser {
    fn interpret(&self, text: &str) -> Result<Vec<Value>, VoiceError> {
        let lowered = text.to_lowercase().replace('°', " degrees ");
        let mut commands = Vec::new();
        for clause in split_clauses(&lowered) {
            commands.push(parse_clause(&clause)?);
        }
        if commands.is_empty() {
            return Err(VoiceError {
                clause: text.to_string(),
                reason: "nothing to do".into(),
            });
        }
        Ok(commands)
    }
}

fn split_clauses(text: &str) -> Vec<String> {
    let mut clauses = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let flush = |current: &mut Vec<String>, clauses: &mut Vec<String>| {
        // "and" joining two clauses ("... and then ...") is dropped with "then".
        while current.last().is_some_and(|w| w == "and") {
            current.pop();
        }
        if !current.is_empty() {
            clauses.push(current.join(" "));
        }
        current.clear();
    };
    for raw in text.split_whitespace() {
        let ends = raw.ends_with([',', ';', '.', '!'])
            && !raw.chars().all(|c| c.is_ascii_digit() || c == '.');
        let word: String = raw
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '.' || *c == '-' || *c == '+')
            .collect();
        let word = word.trim_end_matches('.').to_string();
        if word == "then" || word == "next" || word == "afterwards" {
            flush(&mut current, &mut clauses);
        } else if !word.is_empty() {
            current.push(word);
        }
        if ends {
            flush(&mut current, &mut clauses);
        }
    }
    flush(&mut current, &mut clauses);
    clauses
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Motion {
    Forward,
    Reverse,
    Turn,
    Cancel,
}

fn parse_clause(clause: &str) -> Result<Value, VoiceError> {
    let fail = |reason: &str| VoiceError {
        clause: clause.to_string(),
        reason: reason.to_string(),
    };
    let words: Vec<&str> = clause.split(' ').collect();
    let has = |w: &[&str]| words.iter().any(|x| w.contains(x));
    let motion = if has(&["stop", "cancel", "halt", "abort", "freeze"]) {
        Motion::Cancel
    } else if has(&["turn", "rotate", "spin", "pivot"]) {
        Motion::Turn
    } else if has(&["back", "backward", "backwards", "reverse"]) {
        Motion::Reverse
    } else if has(&[
        "forward", "forwards", "ahead", "straight", "drive", "go", "move",
    ]) {
        Motion::Forward
    } else if has(&["left", "right"]) {
        Motion::Turn
    } else {
        return Err(fail("no motion named (forward, back, turn, stop)"));
    };
    if motion == Motion::Cancel {
        return Ok(json!({ "action": "cancel" }));
    }
    let quantity = find_quantity(&words).map_err(|r| fail(&r))?;
    match motion {
        Motion::Turn => {
            let sign =
                if has(&["right", "clockwise"]) && !has(&["counterclockwise", "anticlockwise"]) {
                    -1.0
                } else if has(&["left", "counterclockwise", "anticlockwise", "around"]) {
                    1.0
                } else {
                    return Err(fail("a turn needs a direction (left or right)"));
                };
            let degrees = match quantity {
                Some((v, Unit::Degrees)) => v,
                Some((_, unit)) => {
                    return Err(fail(&format!("a turn is in degrees, not {unit:?}")));
                }
                None if has(&["around"]) => 180.0,
                None => 90.0,
            };
            Ok(json!({ "action": "turn", "degrees": sign * degrees }))
        }
        Motion::Forward | Motion::Reverse => {
            let metres = match quantity {
                Some((v, Unit::Metres)) => v,
                Some((v, Unit::Centimetres)) => v / 100.0,
                Some((_, Unit::Degrees)) => {
                    return Err(fail("a distance is in metres or centimetres"));
                }
                Some((_, Unit::None)) => return Err(fail("say the unit (metres or centimetres)")),
                None => return Err(fail("how far? (e.g. one metre)")),
            };
            let action = if motion == Motion::Forward {
                "forward"
            } else {
                "reverse"
            };
            Ok(json!({ "action": action, "distance_m": round6(metres) }))
        }
        Motion::Cancel => unreachable!("handled above"),
    }
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Metres,
    Centimetres,
    Degrees,
    None,
}

fn unit_of(word: &str) -> Option<Unit> {
    match word {
        "m" | "metre" | "metres" | "meter" | "meters" => Some(Unit::Metres),
        "cm" | "centimetre" | "centimetres" | "centimeter" | "centimeters" => {
            Some(Unit::Centimetres)
        }
        "deg" | "degree" | "degrees" => Some(Unit::Degrees),
        _ => None,
    }
}

/// The first number in the clause and the unit after it.
fn find_quantity(words: &[&str]) -> Result<Option<(f64, Unit)>, String> {
    let mut i = 0;
    while i < words.len() {
        // "half a metre"
        if words[i] == "half"
            && words.get(i + 1) == Some(&"a")
            && let Some(u) = words.get(i + 2).and_then(|w| unit_of(w))
        {
            return Ok(Some((0.5, u)));
        }
        if let Some((value, used)) = read_number(&words[i..]) {
            let unit = words
                .get(i + used)
                .and_then(|w| unit_of(w))
                .unwrap_or(Unit::None);
            if value.is_nan() || value <= 0.0 {
                return Err("the amount must be positive".into());
            }
            return Ok(Some((value, unit)));
        }
        // "90deg", "1.5m", "50cm"
        if let Some(split) = words[i].find(|c: char| c.is_ascii_alphabetic()) {
            let (num, unit) = words[i].split_at(split);
            if let (Ok(v), Some(u)) = (num.parse::<f64>(), unit_of(unit))
                && v > 0.0
                && v.is_finite()
            {
                return Ok(Some((v, u)));
            }
        }
        i += 1;
    }
    Ok(None)
}

fn small_number(word: &str) -> Option<f64> {
    const UNITS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if let Some(i) = UNITS.iter().position(|w| *w == word) {
        return Some(i as f64);
    }
    if let Some(i) = TENS.iter().position(|w| *w == word) {
        return Some(20.0 + 10.0 * i as f64);
    }
    if let Some((tens, unit)) = word.split_once('-') {
        return Some(small_number(tens)? + small_number(unit)?);
    }
    None
}

/// Reads a number at the start of `words`: digits ("1.5"), or words ("one
/// hundred and twenty", "one and a half", "a", "one point five"). Returns the
/// value and how many words it used.
fn read_number(words: &[&str]) -> Option<(f64, usize)> {
    let first = *words.first()?;
    if let Ok(v) = first.parse::<f64>() {
        return Some((v, 1));
    }
    let mut value;
    let mut used;
    if first == "a" || first == "an" {
        // "a metre", "a quarter turn" is not supported; "a" counts as one only before a unit.
        if words.get(1).and_then(|w| unit_of(w)).is_some() {
            return Some((1.0, 1));
        }
        return None;
    }
    value = small_number(first)?;
    used = 1;
    // "twenty five"
    if value >= 20.0
        && value % 10.0 == 0.0
        && let Some(u) = words
            .get(used)
            .and_then(|w| small_number(w))
            .filter(|u| *u < 10.0 && *u > 0.0)
    {
        value += u;
        used += 1;
    }
    if words.get(used) == Some(&"hundred") {
        value *= 100.0;
        used += 1;
        if words.get(used) == Some(&"and")
            && let Some((rest, n)) = read_number(&words[used + 1..]).filter(|(r, _)| *r < 100.0)
        {
            value += rest;
            used += 1 + n;
        }
    }
    match (words.get(used), words.get(used + 1), words.get(used + 2)) {
        (Some(&"and"), Some(&"a"), Some(&"half")) => {
            value += 0.5;
            used += 3;
        }
        (Some(&"and"), Some(&"a"), Some(&"quarter")) => {
            value += 0.25;
            used += 3;
        }
        (Some(&"point"), Some(d), _) => {
            let digits: String = words[used + 1..]
                .iter()
                .map_while(|w| small_number(w).filter(|v| *v < 10.0))
                .map(|v| char::from(b'0' + v as u8))
                .collect();
            if !digits.is_empty() {
                let _ = d;
                value += format!("0.{digits}").parse::<f64>().unwrap_or(0.0);
                used += 1 + digits.len();
            }
        }
        _ => {}
    }
    Some((value, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(text: &str) -> Vec<Value> {
        OfflineParser
            .interpret(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_issue_sentence() {
        assert_eq!(
            say("drive forward one and a half metres, then turn left ninety degrees"),
            vec![
                json!({"action": "forward", "distance_m": 1.5}),
                json!({"action": "turn", "degrees": 90.0}),
            ]
        );
    }

    #[test]
    fn digits_words_and_units() {
        assert_eq!(
            say("go forward 2 m")[0],
            json!({"action": "forward", "distance_m": 2.0})
        );
        assert_eq!(
            say("reverse fifty centimetres")[0],
            json!({"action": "reverse", "distance_m": 0.5})
        );
        assert_eq!(
            say("back up half a metre")[0],
            json!({"action": "reverse", "distance_m": 0.5})
        );
        assert_eq!(
            say("move ahead 1.25m")[0],
            json!({"action": "forward", "distance_m": 1.25})
        );
        assert_eq!(
            say("forward twenty five cm")[0],
            json!({"action": "forward", "distance_m": 0.25})
        );
        assert_eq!(
            say("forward one point five meters")[0],
            json!({"action": "forward", "distance_m": 1.5})
        );
        assert_eq!(
            say("go forward a metre")[0],
            json!({"action": "forward", "distance_m": 1.0})
        );
        assert_eq!(
            say("turn right 45 degrees")[0],
            json!({"action": "turn", "degrees": -45.0})
        );
        assert_eq!(
            say("rotate left one hundred and twenty degrees")[0],
            json!({"action": "turn", "degrees": 120.0})
        );
        assert_eq!(
            say("turn right")[0],
            json!({"action": "turn", "degrees": -90.0})
        );
        assert_eq!(
            say("turn around")[0],
            json!({"action": "turn", "degrees": 180.0})
        );
        assert_eq!(
            say("turn left 30°")[0],
            json!({"action": "turn", "degrees": 30.0})
        );
        assert_eq!(say("stop")[0], json!({"action": "cancel"}));
    }

    #[test]
    fn sequences() {
        let c =
            say("forward one metre then turn right ninety degrees and then go back 20 cm; stop.");
        assert_eq!(c.len(), 4);
        assert_eq!(c[2], json!({"action": "reverse", "distance_m": 0.2}));
        assert_eq!(c[3], json!({"action": "cancel"}));
    }

    #[test]
    fn nonsense_is_an_error_naming_the_clause() {
        let e = OfflineParser.interpret("sing me a song").unwrap_err();
        assert!(e.clause.contains("sing"));
        assert!(
            OfflineParser
                .interpret("forward two")
                .unwrap_err()
                .reason
                .contains("unit")
        );
        assert!(
            OfflineParser
                .interpret("forward")
                .unwrap_err()
                .reason
                .contains("how far")
        );
        assert!(OfflineParser.interpret("turn forty metres left").is_err());
        assert!(OfflineParser.interpret("").is_err());
        assert!(OfflineParser.interpret("forward 0 m").is_err());
        assert!(OfflineParser.interpret("forward then turn left").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = OfflineParser.interpret(&s);
        }
    }
}
