//! Durations with units, as written in scenario files (`800ms`, `2s`, `1.5s`).
//!
//! A duration is a whole number of nanoseconds. It is read only from a string
//! with a unit, using exact decimal arithmetic (no floating point): `1.5s` is
//! exactly 1 500 000 000 ns, `0.1ms` exactly 100 000 ns. A bare YAML number is
//! rejected, because `timeout: 2` does not say whether it means seconds or
//! milliseconds.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The regular expression a duration string must match (used in the JSON Schema).
pub const DURATION_PATTERN: &str = r"^[0-9]+(\.[0-9]+)? ?(ns|us|µs|ms|s|min|h)$";

/// The longest duration a scenario file may write: 365 days (`8760h`).
///
/// Longer than any test a scenario stands for (job timeouts are at most 7
/// days), and far enough below the 584 years that u64 nanoseconds hold that
/// the run's time arithmetic (start + timeout, retries, the cloud clock)
/// cannot overflow. Checked when a file is read, so the error has its line
/// and column; [`Duration`] values built in code may be longer.
pub const MAX_DURATION: Duration = Duration(365 * 24 * NS_PER_H);

/// Shown when a duration has no unit.
pub const NEEDS_UNIT: &str = "a duration needs a unit, e.g. 800ms or 2s";

const UNITS_LIST: &str = "ns, us (or µs), ms, s, min, h";

const NS_PER_US: u64 = 1_000;
const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;
const NS_PER_MIN: u64 = 60 * NS_PER_S;
const NS_PER_H: u64 = 60 * NS_PER_MIN;

/// Units accepted when parsing; the unit must match the whole suffix.
const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", NS_PER_US),
    ("µs", NS_PER_US),
    ("ms", NS_PER_MS),
    ("s", NS_PER_S),
    ("min", NS_PER_MIN),
    ("h", NS_PER_H),
];

/// Units used when formatting, largest first (ASCII `us`, never `µs`).
const FORMAT_UNITS: &[(&str, u64)] = &[
    ("h", NS_PER_H),
    ("min", NS_PER_MIN),
    ("s", NS_PER_S),
    ("ms", NS_PER_MS),
    ("us", NS_PER_US),
    ("ns", 1),
];

/// A span of virtual time, in whole nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);

    /// From nanoseconds.
    pub const fn from_nanos(nanos: u64) -> Self {
        Duration(nanos)
    }

    /// From milliseconds (saturating at the largest duration).
    pub const fn from_millis(millis: u64) -> Self {
        Duration(millis.saturating_mul(NS_PER_MS))
    }

    /// From seconds (saturating at the largest duration).
    pub const fn from_secs(secs: u64) -> Self {
        Duration(secs.saturating_mul(NS_PER_S))
    }

    /// The duration in nanoseconds.
    pub const fn nanos(&self) -> u64 {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(&self) -> bool {
        self.0 == 0
    }

    /// As a `std::time::Duration`.
    pub const fn as_std(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.as_std()
    }
}

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDurationError {
    /// Nothing (or only blanks) was given.
    #[error("empty duration: expected a number with a unit, e.g. 800ms or 2s")]
    Empty,
    /// A number without a unit.
    #[error("{NEEDS_UNIT}")]
    MissingUnit,
    /// A leading minus sign.
    #[error("a duration cannot be negative: `{0}`")]
    Negative(String),
    /// A unit that is not one of the known ones.
    #[error("unknown duration unit `{unit}` in `{text}`; use one of {UNITS_LIST}")]
    UnknownUnit {
        /// The whole input.
        text: String,
        /// The unit as written.
        unit: String,
    },
    /// More fractional digits than a nanosecond resolves.
    #[error("`{0}` is more precise than a nanosecond")]
    TooPrecise(String),
    /// Larger than about 584 years.
    #[error("`{0}` is too long: the largest duration is about 584 years")]
    Overflow(String),
    /// Anything else.
    #[error("invalid duration `{0}`: expected a number with a unit, e.g. 800ms or 2s")]
    Invalid(String),
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text).map(Duration)
    }
}

fn parse(text: &str) -> Result<u64, ParseDurationError> {
    let invalid = || ParseDurationError::Invalid(text.to_owned());
    if text.trim().is_empty() {
        return Err(ParseDurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(ParseDurationError::Negative(text.to_owned()));
    }
    // Split into the number (digits and at most one dot) and the rest.
    let num_len = text
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
        .map_or(text.len(), |(i, _)| i);
    let (number, rest) = text.split_at(num_len);
    if number.is_empty() {
        return Err(invalid());
    }
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (number, None),
    };
    if int_part.is_empty() || frac_part.is_some_and(|f| f.is_empty() || f.contains('.')) {
        return Err(invalid());
    }
    let unit = rest.strip_prefix(' ').unwrap_or(rest);
    if unit.is_empty() {
        return Err(ParseDurationError::MissingUnit);
    }
    let Some(&(_, unit_ns)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        if unit.starts_with(char::is_whitespace) || unit.chars().any(|c| c.is_ascii_digit()) {
            return Err(invalid());
        }
        return Err(ParseDurationError::UnknownUnit {
            text: text.to_owned(),
            unit: unit.to_owned(),
        });
    };

    let overflow = || ParseDurationError::Overflow(text.to_owned());
    let int_digits = int_part.trim_start_matches('0');
    // u64::MAX has 20 digits; anything longer cannot fit.
    if int_digits.len() > 20 {
        return Err(overflow());
    }
    let int_value: u128 = if int_digits.is_empty() {
        0
    } else {
        int_digits.parse().map_err(|_| invalid())?
    };
    let mut total = int_value * u128::from(unit_ns);

    if let Some(frac) = frac_part {
        let frac = frac.trim_end_matches('0');
        // The largest unit (h = 2^13 * 3^2 * 5^11 ns) resolves at most 13
        // fractional digits; more can never be a whole number of nanoseconds.
        if frac.len() > 13 {
            return Err(ParseDurationError::TooPrecise(text.to_owned()));
        }
        if !frac.is_empty() {
            let digits: u128 = frac.parse().map_err(|_| invalid())?;
            let scale = 10u128.pow(frac.len() as u32);
            let scaled = digits * u128::from(unit_ns);
            if !scaled.is_multiple_of(scale) {
                return Err(ParseDurationError::TooPrecise(text.to_owned()));
            }
            total += scaled / scale;
        }
    }
    u64::try_from(total).map_err(|_| overflow())
}

/// The shortest exact spelling: among the units in which the value is at
/// least 1 and can be written exactly, the shortest text wins (the larger unit
/// on a tie). So 800 ms is `800ms`, 1.5 s is `1.5s`, 90 s is `90s`.
fn format(nanos: u64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let mut best: Option<String> = None;
    for &(name, unit_ns) in FORMAT_UNITS {
        if nanos < unit_ns {
            continue;
        }
        let Some(text) = exact_in_unit(nanos, unit_ns, name) else {
            continue;
        };
        if best.as_ref().is_none_or(|b| text.len() < b.len()) {
            best = Some(text);
        }
    }
    best.unwrap_or_else(|| format!("{nanos}ns"))
}

/// `nanos` written in `unit` if that is an exact (terminating) decimal.
fn exact_in_unit(nanos: u64, unit_ns: u64, unit: &str) -> Option<String> {
    let int = nanos / unit_ns;
    let mut rem = u128::from(nanos % unit_ns);
    let unit_ns = u128::from(unit_ns);
    let mut frac = String::new();
    // At most 13 digits are needed for any unit here (see `parse`).
    while rem != 0 {
        if frac.len() >= 13 {
            return None;
        }
        rem *= 10;
        let digit = rem / unit_ns;
        rem %= unit_ns;
        frac.push(char::from(b'0' + digit as u8));
    }
    Some(if frac.is_empty() {
        format!("{int}{unit}")
    } else {
        format!("{int}.{frac}{unit}")
    })
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// Reads a [`Duration`] from a string; rejects numbers with a clear message.
pub struct DurationVisitor;

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration with a unit, e.g. 800ms or 2s")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        let d: Duration = v.parse().map_err(E::custom)?;
        if d > MAX_DURATION {
            return Err(E::custom(format!(
                "`{v}` is too long: a scenario's durations are at most {MAX_DURATION} (365 days)"
            )));
        }
        Ok(d)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Duration, E> {
        Err(E::custom(NEEDS_UNIT))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        if v < 0 {
            Err(E::custom(format!(
                "a duration cannot be negative (and needs a unit): `{v}`"
            )))
        } else {
            Err(E::custom(NEEDS_UNIT))
        }
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Duration, E> {
        Err(E::custom(NEEDS_UNIT))
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::Duration").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: a decimal number and a unit (ns, us or µs, ms, s, min, h), \
                e.g. `800ms`, `2s`, `1.5s`, `0.1ms`. A bare number is not accepted. \
                Resolution is one nanosecond; at most 8760h (365 days).",
            "examples": ["800ms", "2s", "1.5s"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<u64, ParseDurationError> {
        s.parse::<Duration>().map(|d| d.nanos())
    }

    #[test]
    fn parses_units_exactly() {
        assert_eq!(p("800ms"), Ok(800_000_000));
        assert_eq!(p("2s"), Ok(2_000_000_000));
        assert_eq!(p("1.5s"), Ok(1_500_000_000));
        assert_eq!(p("0.1ms"), Ok(100_000));
        assert_eq!(p("7ns"), Ok(7));
        assert_eq!(p("3us"), Ok(3_000));
        assert_eq!(p("3µs"), Ok(3_000));
        assert_eq!(p("2min"), Ok(120_000_000_000));
        assert_eq!(p("1h"), Ok(3_600_000_000_000));
        assert_eq!(p("0.5h"), Ok(1_800_000_000_000));
        assert_eq!(p("20 ms"), Ok(20_000_000));
        assert_eq!(p("0s"), Ok(0));
        assert_eq!(p("1.500000000000000s"), Ok(1_500_000_000));
        assert_eq!(p("0.000000001s"), Ok(1));
        // The largest value, exactly.
        assert_eq!(p("18446744073709551615ns"), Ok(u64::MAX));
    }

    #[test]
    fn rejects_bad_strings_with_reasons() {
        assert_eq!(p(""), Err(ParseDurationError::Empty));
        assert_eq!(p("  "), Err(ParseDurationError::Empty));
        assert_eq!(p("5"), Err(ParseDurationError::MissingUnit));
        assert_eq!(p("1.5"), Err(ParseDurationError::MissingUnit));
        assert!(matches!(p("-1s"), Err(ParseDurationError::Negative(_))));
        let err = p("2sec").unwrap_err();
        assert!(matches!(err, ParseDurationError::UnknownUnit { .. }));
        assert!(err.to_string().contains("`sec`"), "{err}");
        assert!(err.to_string().contains("ms, s, min, h"), "{err}");
        assert!(matches!(
            p("0.0000000001s"),
            Err(ParseDurationError::TooPrecise(_))
        ));
        assert!(matches!(p("0.5ns"), Err(ParseDurationError::TooPrecise(_))));
        assert!(matches!(
            p("18446744073709551616ns"),
            Err(ParseDurationError::Overflow(_))
        ));
        assert!(matches!(
            p("99999999999999999999999h"),
            Err(ParseDurationError::Overflow(_))
        ));
        assert!(matches!(p("1e3ms"), Err(ParseDurationError::Invalid(_))));
        for bad in ["ms", ".5s", "5.s", "1.2.3s", "1  s", "+1s", " 1s", "1s "] {
            assert!(p(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn a_delay_near_the_top_of_u64_nanoseconds_is_refused_when_read() {
        // `999999h` used to pass and overflow the run's time arithmetic.
        let read = |text: &str| serde_saphyr::from_str::<Duration>(text);
        assert_eq!(read("8760h").unwrap(), MAX_DURATION);
        assert_eq!(MAX_DURATION.to_string(), "8760h");
        for long in ["8760.000000001h", "999999h", "18446744073709551615ns"] {
            let err = read(long).unwrap_err().to_string();
            assert!(
                err.contains("is too long") && err.contains("at most 8760h (365 days)"),
                "{long}: {err}"
            );
        }
        // Values built in code and the plain parser are not limited.
        assert_eq!(p("999999h"), Ok(999_999 * NS_PER_H));
    }

    #[test]
    fn formats_shortest_exact_form() {
        let f = |n: u64| Duration::from_nanos(n).to_string();
        assert_eq!(f(0), "0s");
        assert_eq!(f(800_000_000), "800ms");
        assert_eq!(f(2_000_000_000), "2s");
        assert_eq!(f(1_500_000_000), "1.5s");
        assert_eq!(f(90_000_000_000), "90s");
        assert_eq!(f(120_000_000_000), "2min");
        assert_eq!(f(5_400_000_000_000), "1.5h");
        assert_eq!(f(100_000), "100us");
        assert_eq!(f(1_000_001), "1000001ns");
        assert_eq!(f(1), "1ns");
    }

    #[test]
    fn pattern_accepts_what_parse_accepts() {
        // Spot-check the schema pattern against the parser by hand: the
        // pattern is documentation for editors, the parser is the authority.
        for ok in ["800ms", "2s", "1.5s", "0.1ms", "20 ms", "3µs", "2min", "1h"] {
            assert!(p(ok).is_ok(), "{ok}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(nanos in any::<u64>()) {
            let d = Duration::from_nanos(nanos);
            let text = d.to_string();
            prop_assert_eq!(text.parse::<Duration>(), Ok(d), "text {}", text);
        }

        #[test]
        fn serde_round_trips(nanos in 0..=MAX_DURATION.nanos()) {
            let d = Duration::from_nanos(nanos);
            let json = serde_json::to_string(&d).unwrap();
            let back: Duration = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, d);
            let yaml = serde_saphyr::to_string(&d).unwrap();
            let back: Duration = serde_saphyr::from_str(&yaml).unwrap();
            prop_assert_eq!(back, d);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,24}") {
            let _ = s.parse::<Duration>();
        }
    }
}
