//! The rules engine twin: the subset of AWS IoT SQL (version 2016-03-23) the
//! twinned systems use, the flattening transforms that stand in for their
//! Lambdas, and the pipeline that writes the result to the
//! [records store](crate::records).
//!
//! ```text
//! MQTT message --RuleSet (SQL)--> rule output --Transform (JSON table)--> Record --> RecordStore
//!                 IoT rule                       Lambda flatten                     AppSync/DynamoDB
//! ```
//!
//! # Supported SQL
//!
//! ```text
//! query     := SELECT item ("," item)* FROM string [WHERE condition]
//! item      := "*" | operand [AS name]           -- a literal needs AS
//! operand   := path | topic "(" [integer] ")" | timestamp "(" ")" | literal
//! path      := name ("." name)*                  -- name: [A-Za-z_][A-Za-z0-9_]*
//! literal   := number | string | TRUE | FALSE | NULL
//! condition := or
//! or        := and (OR and)*
//! and       := not (AND not)*
//! not       := NOT not | compare
//! compare   := primary [("=" | "<>" | "<" | "<=" | ">" | ">=") primary]
//! primary   := "(" condition ")" | operand
//! string    := '...'  with '' for a quote inside
//! number    := -?digits(.digits)?([eE][+-]?digits)?
//! ```
//!
//! Keywords (`SELECT FROM WHERE AS AND OR NOT TRUE FALSE NULL`) and the
//! function names are case-insensitive; field names are case-sensitive (JSON
//! keys). Precedence, loosest first: `OR`, `AND`, `NOT`, comparison. The FROM
//! string must be a valid MQTT topic filter; `topic(n)` needs a whole
//! number, at least 1. Errors are [`ParseError`]s with line, column (in
//! characters) and byte offset, and say what was expected. Parentheses and
//! `NOT` nest at most [`MAX_NESTING`] deep, and a statement has at most
//! [`MAX_TERMS`] terms (select items plus operands of the condition); chains
//! of `AND` or `OR` are one node each, so no statement the parser accepts can
//! exhaust the stack when it is evaluated, printed or dropped.
//!
//! # Evaluation (AWS semantics)
//!
//! - A message whose topic does not match the FROM filter gives no output
//!   (MQTT matching, including "wildcard-first filters skip `$` topics").
//! - A field reference is `Undefined` when the path is absent (or passes
//!   through a non-object). Undefined select items are left out of the output;
//!   `{"a": null}` keeps `a` as `null`.
//! - `*` copies every key of the payload object; items after it may add or
//!   overwrite keys (later items win on a name clash).
//! - An unaliased path is named by its last segment (`state.reported.x` ->
//!   `x`); `topic(...)`, `timestamp()` and `clientid()` without alias are
//!   named `topic`, `timestamp` and `clientid` (assumed; AWS examples always
//!   alias functions).
//! - `topic()` is the whole topic, `topic(n)` its n-th level (1-based),
//!   Undefined past the last level. `timestamp()` is the `now_ms` passed in,
//!   never the wall clock. `clientid()` is the publisher's MQTT client id
//!   (the thing name, when devices connect as their things), or `n/a` for a
//!   message that did not come over MQTT, as AWS documents.
//! - Comparisons follow the AWS operator tables: `=` is same-type equality
//!   (numbers numerically, `1 = 1.0`; objects ignoring key order; arrays in
//!   order; `NULL = NULL`), mismatched types are unequal (`<>` true);
//!   `<`, `<=`, `>`, `>=` compare numbers, converting strings that look like
//!   numbers (`'10' > 9`), and are Undefined otherwise (so `'abc' < 'abd'`
//!   is Undefined). Anything compared with Undefined is Undefined.
//! - `AND`, `OR`, `NOT` take Booleans or the strings "true"/"false" (any
//!   case); any other operand, Undefined included, makes the result Undefined
//!   (no short circuit: `false AND missing` is Undefined, as AWS documents).
//! - The rule fires only when WHERE is `true`; Undefined counts as not true,
//!   so `WHERE NOT (missing = 1)` does not fire.
//!
//! # Deviations from AWS IoT
//!
//! - Only the subset above: no arithmetic, `CASE`, `IN`, `SELECT VALUE`,
//!   nested `SELECT`, array indexing, object/array literals, backquoted names,
//!   double-quoted strings, `SET`, substitution templates, and only the
//!   functions `topic`, `timestamp` and `clientid` (others are a parse error,
//!   [`ParseErrorKind::UnknownFunction`], not Undefined at run time).
//!   `topic(n)` takes a literal only. Aliases are single names (AWS also
//!   allows `AS a.b`). Unaliased expressions other than paths and functions
//!   are refused rather than auto-named.
//! - Numbers are `f64`/integers, not 34-digit decimals: integers compare
//!   exactly, mixed integer/float comparisons go through `f64`.
//! - A payload that is not a JSON object (binary, text, array, scalar): AWS
//!   passes the raw bytes to a lone `SELECT *` and fails a rule that names
//!   JSON fields. The twin treats every field as Undefined and `*` as
//!   contributing nothing, so such a rule still fires with whatever its
//!   functions and literals give (for the hand rule: `{"device_name": ...}`).
//! - The output is a `serde_json::Value` object; its key order is not the
//!   select order (JSON objects are unordered).
//! - A rule has one action name (AWS rules have a list of actions and an
//!   error action); rules run in the order they were added.

mod ast;
mod eval;
mod lexer;
mod parser;
pub mod pipeline;
pub mod transform;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

pub use ast::{CmpOp, Expr, FieldPath, Literal, Operand, Query, SelectItem};
pub use parser::{MAX_NESTING, MAX_TERMS, ParseError, ParseErrorKind, Pos, parse};
pub use pipeline::{ActionError, ActionOutcome, Pipeline, PipelineError};
pub use transform::{Transform, TransformError, TransformSpec, TransformSpecError};

/// A rule as configured (a scenario file or a device kind's preset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Rule name (AWS: `[A-Za-z0-9_]+`).
    pub name: String,
    /// The SQL statement.
    pub sql: String,
    /// What the output goes to: a transform's name.
    pub action: String,
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    name: String,
    action: String,
    query: Query,
}

impl Rule {
    /// Parses a rule's SQL and checks its name.
    pub fn new(config: RuleConfig) -> Result<Self, RuleError> {
        let name_ok = !config.name.is_empty()
            && config
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(RuleError::BadName(config.name));
        }
        if config.action.is_empty() {
            return Err(RuleError::NoAction(config.name));
        }
        let query = parse(&config.sql).map_err(|source| RuleError::Sql {
            rule: config.name.clone(),
            source,
        })?;
        Ok(Rule {
            name: config.name,
            action: config.action,
            query,
        })
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The action the output goes to.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The parsed statement.
    pub fn query(&self) -> &Query {
        &self.query
    }
}

/// A rule that cannot be added.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RuleError {
    /// The SQL is not in the supported subset.
    #[error("rule `{rule}`: {source}")]
    Sql {
        /// The rule.
        rule: String,
        /// The parse error, with its position.
        source: ParseError,
    },
    /// Name empty or with characters AWS does not allow.
    #[error("rule name `{0}` must be non-empty and only A-Z, a-z, 0-9 and _")]
    BadName(String),
    /// Two rules with one name.
    #[error("rule `{0}` is defined twice")]
    Duplicate(String),
    /// Empty action name.
    #[error("rule `{0}` has no action")]
    NoAction(String),
}

/// The named rules of an account, evaluated in the order they were added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from configs, in order.
    pub fn from_configs(configs: impl IntoIterator<Item = RuleConfig>) -> Result<Self, RuleError> {
        let mut set = RuleSet::new();
        for c in configs {
            set.add(c)?;
        }
        Ok(set)
    }

    /// Adds a rule at the end.
    pub fn add(&mut self, config: RuleConfig) -> Result<(), RuleError> {
        if self.get(&config.name).is_some() {
            return Err(RuleError::Duplicate(config.name));
        }
        self.rules.push(Rule::new(config)?);
        Ok(())
    }

    /// A rule by name.
    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Runs every rule on one message: `(rule name, output)` for each rule
    /// whose filter matches and whose WHERE holds, in rule order.
    pub fn on_message(&self, topic: &str, payload: &[u8], now_ms: u64) -> Vec<(String, Value)> {
        self.rules
            .iter()
            .filter_map(|r| {
                r.query
                    .evaluate(topic, payload, now_ms, None)
                    .map(|out| (r.name.clone(), out))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
