//! `chaos:`: fault *distributions* instead of a fixed timeline. Each seed
//! draws a concrete schedule from them ([`Chaos::draw`]): which faults, when,
//! for how long, how hard. The run applies it as `fault` steps would and
//! writes it into its trace and summary, so a failing seed shows exactly
//! what happened.
//!
//! ```yaml
//! chaos:
//!   window: 1s..20s                # when faults may start (virtual time)
//!   faults:
//!     - { uart: rvr-1, kind: bit_errors, count: 0..2, duration: 100ms..1s, rate: 0.001..0.01 }
//!     - { uart: rvr-1, kind: disconnect, count: 0..1, duration: 50ms..500ms }
//!     - { link: rvr-1, kind: outage, count: 0..1, duration: 200ms..2s }
//! ```
//!
//! Ranges are `A..B` with both ends included (or one value). The draws use
//! their own random stream (`chaos`), so adding a `chaos:` section leaves
//! every other draw of the run as it was.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rand::Rng;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{Duration, Fault, LinkFault, LinkFaultKind, UartDirection, UartFault, UartFaultKind};

/// The `chaos:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Chaos {
    /// When faults may start, virtual time from the run's start (`A..B`;
    /// default: from 0 to the duration limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Range<Duration>>,
    /// The fault distributions: each draws its `count` of faults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<ChaosFault>,
    /// Faults at fixed times, the same for every seed (what `sweep
    /// --shrink` writes: a failing seed's schedule, reduced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<ScheduledFault>,
}

/// One fault distribution: on a device's UART (`uart: DEVICE`) or its link
/// to the broker (`link: DEVICE`), a `kind`, how many (`count`), and the
/// ranges each fault's figures are drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChaosFault {
    /// The device whose UART line is hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uart: Option<String>,
    /// The device whose link to the broker is hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// What happens: on a UART `bit_errors`, `drop_bytes`, `line_break` or
    /// `disconnect`; on a link `outage`, `loss` or `extra_latency`.
    pub kind: ChaosKind,
    /// How many such faults a run gets (default 1).
    #[serde(default = "one")]
    pub count: Range<u32>,
    /// How long each lasts.
    pub duration: Range<Duration>,
    /// `bit_errors`: each bit flips with this probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Range<f64>>,
    /// `drop_bytes` and `loss`: each byte or message is lost with this
    /// probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<Range<f64>>,
    /// `extra_latency`: the latency added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Range<Duration>>,
    /// UART faults: which way (default both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<UartDirection>,
}

fn one() -> Range<u32> {
    Range { min: 1, max: 1 }
}

/// The kinds of fault `chaos:` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChaosKind {
    /// UART: bits flip.
    BitErrors,
    /// UART: bytes are lost.
    DropBytes,
    /// UART: no bytes get through.
    LineBreak,
    /// UART: the cable is unplugged.
    Disconnect,
    /// Link: nothing gets through (QoS 1 waits and goes after).
    Outage,
    /// Link: messages are lost.
    Loss,
    /// Link: messages are late.
    ExtraLatency,
}

impl ChaosKind {
    /// Whether it hits a UART line (else a link).
    pub fn is_uart(self) -> bool {
        matches!(
            self,
            ChaosKind::BitErrors
                | ChaosKind::DropBytes
                | ChaosKind::LineBreak
                | ChaosKind::Disconnect
        )
    }

    /// Its YAML name.
    pub fn name(self) -> &'static str {
        match self {
            ChaosKind::BitErrors => "bit_errors",
            ChaosKind::DropBytes => "drop_bytes",
            ChaosKind::LineBreak => "line_break",
            ChaosKind::Disconnect => "disconnect",
            ChaosKind::Outage => "outage",
            ChaosKind::Loss => "loss",
            ChaosKind::ExtraLatency => "extra_latency",
        }
    }

    /// The figure besides `duration` it needs (`rate`, `probability`,
    /// `latency`), if any.
    pub fn needs(self) -> Option<&'static str> {
        match self {
            ChaosKind::BitErrors => Some("rate"),
            ChaosKind::DropBytes | ChaosKind::Loss => Some("probability"),
            ChaosKind::ExtraLatency => Some("latency"),
            ChaosKind::LineBreak | ChaosKind::Disconnect | ChaosKind::Outage => None,
        }
    }
}

/// A fault of a schedule: what, and when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledFault {
    /// When it starts, virtual time from the run's start.
    pub at: Duration,
    /// The fault, as a `fault` step would give it.
    pub fault: Fault,
}

impl Chaos {
    /// The schedule seed `seed` draws, with the fixed `schedule`: faults
    /// in start order (ties in the order given, then drawn). `limit`
    /// bounds the default window.
    pub fn draw(&self, seed: u64, limit: Duration) -> Vec<ScheduledFault> {
        let mut rng = twinrig_sim::rng::stream(seed, "chaos");
        let window = self.window_within(limit);
        let mut out = self.schedule.clone();
        for f in &self.faults {
            let count = rng.random_range(f.count.min..=f.count.max.max(f.count.min));
            for _ in 0..count {
                let at = draw_duration(&mut rng, window);
                let duration = draw_duration(&mut rng, f.duration);
                let fault = f.fault(duration, &mut rng);
                out.push(ScheduledFault { at, fault });
            }
        }
        // Stable: equal start times keep the order they were drawn in.
        out.sort_by_key(|s| s.at);
        out
    }

    /// When faults may start: `window`, else from 0 to `limit`.
    pub fn window_within(&self, limit: Duration) -> Range<Duration> {
        self.window.unwrap_or(Range {
            min: Duration::ZERO,
            max: limit,
        })
    }
}

impl ChaosFault {
    /// The device it hits.
    pub fn device(&self) -> &str {
        self.uart.as_deref().or(self.link.as_deref()).unwrap_or("")
    }

    /// The ranges its figures besides `duration` are drawn from: the rate
    /// (`bit_errors`) or probability (`drop_bytes`, `loss`), and the added
    /// latency (`extra_latency`); None for what its kind does not take.
    pub fn figure_ranges(&self) -> (Option<Range<f64>>, Option<Range<Duration>>) {
        match self.kind {
            ChaosKind::BitErrors => (self.rate, None),
            ChaosKind::DropBytes | ChaosKind::Loss => (self.probability, None),
            ChaosKind::ExtraLatency => (None, self.latency),
            ChaosKind::LineBreak | ChaosKind::Disconnect | ChaosKind::Outage => (None, None),
        }
    }

    fn fault(&self, duration: Duration, rng: &mut impl Rng) -> Fault {
        let (figure, latency) = self.figure_ranges();
        let figure = figure.map_or(0.0, |r| draw_f64(rng, r));
        let latency = latency.map_or(Duration::ZERO, |r| draw_duration(rng, r));
        self.with_figures(duration, figure, latency)
    }

    /// The fault with its figures already chosen (drawn by [`Chaos::draw`],
    /// or by a proptest strategy, `twinrig::strategy`): `figure` is the
    /// rate or probability and `latency` the added latency, each used only
    /// by the kinds that take it ([`ChaosFault::figure_ranges`]).
    pub fn with_figures(&self, duration: Duration, figure: f64, latency: Duration) -> Fault {
        let device = self.device().to_owned();
        let uart = |kind| {
            Fault::Uart(UartFault {
                device: device.clone(),
                direction: self.direction.unwrap_or_default(),
                kind,
            })
        };
        let link = |kind| {
            Fault::Link(LinkFault {
                device: device.clone(),
                kind,
            })
        };
        match self.kind {
            ChaosKind::BitErrors => uart(UartFaultKind::BitErrors {
                rate: figure,
                duration,
            }),
            ChaosKind::DropBytes => uart(UartFaultKind::DropBytes {
                probability: figure,
                duration,
            }),
            ChaosKind::LineBreak => uart(UartFaultKind::LineBreak(duration)),
            ChaosKind::Disconnect => uart(UartFaultKind::Disconnect(duration)),
            ChaosKind::Outage => link(LinkFaultKind::Outage(duration)),
            ChaosKind::Loss => link(LinkFaultKind::Loss {
                probability: figure,
                duration,
            }),
            ChaosKind::ExtraLatency => link(LinkFaultKind::ExtraLatency { latency, duration }),
        }
    }
}

fn draw_duration(rng: &mut impl Rng, r: Range<Duration>) -> Duration {
    let (lo, hi) = (r.min.nanos(), r.max.nanos().max(r.min.nanos()));
    Duration::from_nanos(rng.random_range(lo..=hi))
}

fn draw_f64(rng: &mut impl Rng, r: Range<f64>) -> f64 {
    if r.max > r.min {
        rng.random_range(r.min..=r.max)
    } else {
        r.min
    }
}

/// `A..B` (both ends included) or one value (`A` = `A..A`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range<T> {
    /// Smallest.
    pub min: T,
    /// Largest.
    pub max: T,
}

impl<T: FromStr + Copy> FromStr for Range<T>
where
    T::Err: fmt::Display,
{
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let value = |v: &str| {
            v.trim()
                .parse::<T>()
                .map_err(|e| format!("`{}`: {e} (expected a value or a range A..B)", v.trim()))
        };
        match s.split_once("..") {
            Some((a, b)) => Ok(Range {
                min: value(a)?,
                max: value(b)?,
            }),
            None => {
                let v = value(s)?;
                Ok(Range { min: v, max: v })
            }
        }
    }
}

impl<T: fmt::Display + PartialEq> fmt::Display for Range<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

impl<T: fmt::Display + PartialEq> Serialize for Range<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de, T: FromStr + Copy> Deserialize<'de> for Range<T>
where
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RangeVisitor<T>(std::marker::PhantomData<T>);
        impl<T: FromStr + Copy> Visitor<'_> for RangeVisitor<T>
        where
            T::Err: fmt::Display,
        {
            type Value = Range<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a range `A..B`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Range<T>, E> {
                v.parse().map_err(E::custom)
            }
            // YAML numbers (a count, a rate) read as their text.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Range<T>, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Range<T>, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Range<T>, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(RangeVisitor(std::marker::PhantomData))
    }
}

impl<T> JsonSchema for Range<T> {
    fn schema_name() -> Cow<'static, str> {
        "Range".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "number"],
            "description": "A value, or a range `A..B` with both ends included, e.g. `0..2`, \
                `100ms..1s`, `0.001..0.01`. Each seed draws from it.",
            "examples": ["0..2", "100ms..1s", "0.001..0.01"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chaos(yaml: &str) -> Chaos {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn ranges_read_as_text_or_numbers() {
        let r: Range<Duration> = "100ms..1s".parse().unwrap();
        assert_eq!(
            (r.min, r.max),
            (Duration::from_millis(100), Duration::from_secs(1))
        );
        let r: Range<u32> = "3".parse().unwrap();
        assert_eq!((r.min, r.max), (3, 3));
        assert!("x..2".parse::<Range<u32>>().is_err());
        assert!("1s..".parse::<Range<Duration>>().is_err());
        let c =
            chaos("faults: [ { link: a, kind: loss, count: 2, duration: 1s, probability: 0.5 } ]");
        assert_eq!(c.faults[0].count, Range { min: 2, max: 2 });
        assert_eq!(c.faults[0].probability, Some(Range { min: 0.5, max: 0.5 }));
        assert_eq!(c.faults[0].count.to_string(), "2");
    }

    #[test]
    fn a_seed_draws_the_same_schedule_every_time_and_seeds_differ() {
        let c = chaos(
            "window: 1s..10s\nfaults:\n  - { uart: rvr-1, kind: bit_errors, count: 0..3, duration: 100ms..1s, rate: 0.001..0.01 }\n  - { link: rvr-1, kind: outage, count: 1, duration: 200ms..2s }\n",
        );
        let limit = Duration::from_secs(30);
        assert_eq!(c.draw(7, limit), c.draw(7, limit));
        let schedules: Vec<_> = (0..20).map(|s| c.draw(s, limit)).collect();
        assert!(schedules.windows(2).any(|w| w[0] != w[1]));
        for s in &schedules {
            assert!(s.windows(2).all(|w| w[0].at <= w[1].at), "in start order");
            let outages = s
                .iter()
                .filter(|f| matches!(f.fault, Fault::Link(_)))
                .count();
            assert_eq!(outages, 1);
            assert!(s.len() <= 4);
            for f in s {
                assert!(f.at >= Duration::from_secs(1) && f.at <= Duration::from_secs(10));
                match &f.fault {
                    Fault::Uart(UartFault {
                        kind: UartFaultKind::BitErrors { rate, duration },
                        ..
                    }) => {
                        assert!((0.001..=0.01).contains(rate), "{rate}");
                        assert!(
                            *duration >= Duration::from_millis(100)
                                && *duration <= Duration::from_secs(1)
                        );
                    }
                    Fault::Link(LinkFault {
                        kind: LinkFaultKind::Outage(d),
                        ..
                    }) => assert!(*d >= Duration::from_millis(200) && *d <= Duration::from_secs(2)),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        // Some seed draws no bit errors at all (count 0..3).
        assert!(schedules.iter().any(|s| s.len() == 1));
    }
}
