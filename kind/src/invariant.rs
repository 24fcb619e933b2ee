//! Named invariants: the checks a kind offers for a scenario's
//! `invariants:` (`- check: { device: rvr-1, name: one_terminal_status }`),
//! each with parameters of its own. A check follows the run as it goes —
//! every message the broker receives, the device's state at every sample
//! period, and the end of the timeline — and reports the first moment the
//! property does not hold. They are written once, beside the device they
//! know about, so a user turns one on by name instead of spelling the
//! property out as message counts.

use serde_json::{Map, Value};
use twinrig_sim::Nanos;

use crate::params::{Params, ParamsError, parse_params};

/// A named check, as a kind (or the fleet) offers it.
pub trait InvariantModel: Sync {
    /// The name scenarios use (`name:`).
    fn name(&self) -> &'static str;
    /// One line for the docs and the error that lists the names.
    fn summary(&self) -> &'static str;
    /// Parses and checks the check's parameters (every key of the
    /// `check:` entry but `device` and `name`) and builds the check for
    /// device `device` (empty for checks on the fleet).
    fn build(
        &self,
        device: &str,
        params: &Map<String, Value>,
    ) -> Result<Box<dyn InvariantCheck>, ParamsError>;
}

/// A named check following one run.
pub trait InvariantCheck {
    /// What it checks, for the run's assertion list.
    fn description(&self) -> String;
    /// A message the broker received (from any client) at `at`.
    fn on_message(&mut self, _at: Nanos, _topic: &str, _payload: &[u8]) -> Result<(), String> {
        Ok(())
    }
    /// Whether [`InvariantCheck::on_sample`] is wanted (state documents
    /// cost a little to build; message-only checks say no).
    fn samples(&self) -> bool {
        false
    }
    /// The device's state document at a sample period.
    fn on_sample(&mut self, _at: Nanos, _state: &Value) -> Result<(), String> {
        Ok(())
    }
    /// The timeline ended at `at` (every step done): what must have
    /// happened by then.
    fn at_end(&mut self, _at: Nanos) -> Result<(), String> {
        Ok(())
    }
}

/// The [`InvariantModel`] of a check built from parameters `P` by `build`.
pub struct InvariantOf<P> {
    name: &'static str,
    summary: &'static str,
    build: fn(&str, P) -> Box<dyn InvariantCheck>,
}

impl<P> InvariantOf<P> {
    /// The model of the check `name` (a constant, so it can be `'static`).
    pub const fn new(
        name: &'static str,
        summary: &'static str,
        build: fn(&str, P) -> Box<dyn InvariantCheck>,
    ) -> InvariantOf<P> {
        InvariantOf {
            name,
            summary,
            build,
        }
    }
}

impl<P: Params> InvariantModel for InvariantOf<P> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn build(
        &self,
        device: &str,
        params: &Map<String, Value>,
    ) -> Result<Box<dyn InvariantCheck>, ParamsError> {
        let p = parse_params::<P>(params)?;
        Ok((self.build)(device, p))
    }
}

/// A time or span as scenarios write it, to the millisecond (`2s`,
/// `3.641s`, `109ms`), for messages.
pub fn shown(nanos: Nanos) -> String {
    const MS: Nanos = 1_000_000;
    crate::Duration::from_nanos(nanos.saturating_add(MS / 2) / MS * MS).to_string()
}

/// The model named `name` among `models`, or an error listing the names.
pub fn find<'a>(
    models: &[&'a dyn InvariantModel],
    name: &str,
    whose: &str,
) -> Result<&'a dyn InvariantModel, String> {
    models
        .iter()
        .copied()
        .find(|m| m.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = models.iter().map(|m| m.name()).collect();
            if names.is_empty() {
                format!("{whose} offers no named checks (`{name}` asked for)")
            } else {
                format!(
                    "{whose} has no check `{name}` (it has: {})",
                    names.join(", ")
                )
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct AtMost {
        at_most: u32,
    }
    impl Params for AtMost {}

    struct Counter {
        seen: u32,
        at_most: u32,
    }
    impl InvariantCheck for Counter {
        fn description(&self) -> String {
            format!("at most {} messages", self.at_most)
        }
        fn on_message(&mut self, _: Nanos, _: &str, _: &[u8]) -> Result<(), String> {
            self.seen += 1;
            if self.seen > self.at_most {
                return Err(format!("{} messages", self.seen));
            }
            Ok(())
        }
    }

    static COUNTER: InvariantOf<AtMost> = InvariantOf::new("counter", "counts messages", |_, p| {
        Box::new(Counter {
            seen: 0,
            at_most: p.at_most,
        })
    });

    #[test]
    fn builds_from_params_and_checks() {
        let params = json!({ "at_most": 1 });
        let mut c = COUNTER.build("d", params.as_object().unwrap()).unwrap();
        assert!(c.on_message(0, "t", b"").is_ok());
        assert_eq!(c.on_message(1, "t", b"").unwrap_err(), "2 messages");
    }

    #[test]
    fn bad_params_name_the_key() {
        let params = json!({ "at_most": "x" });
        let e = COUNTER
            .build("d", params.as_object().unwrap())
            .err()
            .unwrap();
        assert_eq!(e.key.as_deref(), Some("at_most"));
        let params = json!({ "at_most": 1, "extra": 2 });
        let e = COUNTER
            .build("d", params.as_object().unwrap())
            .err()
            .unwrap();
        assert!(e.message.contains("extra"), "{e}");
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let models: [&dyn InvariantModel; 1] = [&COUNTER];
        assert!(find(&models, "counter", "kind x").is_ok());
        let e = find(&models, "nope", "kind x").err().unwrap();
        assert_eq!(e, "kind x has no check `nope` (it has: counter)");
        let e = find(&[], "nope", "kind y").err().unwrap();
        assert!(e.contains("no named checks"), "{e}");
    }
}
