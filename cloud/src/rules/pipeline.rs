//! Rules wired to transforms and the records store: one call per MQTT
//! message does what IoT rule -> Lambda -> AppSync does in the real systems.

use std::collections::BTreeMap;

use thiserror::Error;

use super::transform::{Transform, TransformError};
use super::{RuleError, RuleSet};
use crate::records::{RecordError, RecordStore};

/// A pipeline that cannot be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PipelineError {
    /// A rule names an action no transform provides.
    #[error("rule `{rule}` sends to `{action}`, which no transform provides")]
    UnknownAction {
        /// The rule.
        rule: String,
        /// Its action.
        action: String,
    },
    /// Two transforms with one name.
    #[error("two transforms are named `{0}`")]
    DuplicateTransform(String),
    /// A rule could not be added.
    #[error(transparent)]
    Rule(#[from] RuleError),
}

/// Why one action did not store a record.
#[derive(Debug, Error)]
pub enum ActionError {
    /// The transform refused the rule output (the Lambda's error path).
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] RecordError),
    /// No transform has the rule's action name (cannot happen once
    /// [`Pipeline::new`] accepted the rules; kept so nothing panics).
    #[error("no transform named `{0}`")]
    UnknownAction(String),
}

/// What happened to one fired rule.
#[derive(Debug)]
pub struct ActionOutcome {
    /// The rule that fired.
    pub rule: String,
    /// Its action (transform name).
    pub action: String,
    /// The stored record's id, or why nothing was stored.
    pub result: Result<i64, ActionError>,
}

/// Rules plus the transforms their actions name.
#[derive(Debug, Clone)]
pub struct Pipeline {
    rules: RuleSet,
    transforms: BTreeMap<String, Transform>,
}

impl Pipeline {
    /// Checks that every rule's action has a transform.
    pub fn new(
        rules: RuleSet,
        transforms: impl IntoIterator<Item = Transform>,
    ) -> Result<Self, PipelineError> {
        let mut by_name = BTreeMap::new();
        for t in transforms {
            let name = t.name().to_string();
            if by_name.insert(name.clone(), t).is_some() {
                return Err(PipelineError::DuplicateTransform(name));
            }
        }
        for r in rules.rules() {
            if !by_name.contains_key(r.action()) {
                return Err(PipelineError::UnknownAction {
                    rule: r.name().to_string(),
                    action: r.action().to_string(),
                });
            }
        }
        Ok(Pipeline {
            rules,
            transforms: by_name,
        })
    }

    /// The rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// A transform by name.
    pub fn transform(&self, name: &str) -> Option<&Transform> {
        self.transforms.get(name)
    }

    /// Runs one message through every matching rule, its transform and the
    /// store. One outcome per fired rule, in rule order; a refused message
    /// leaves an error outcome and stores nothing, like the Lambda's 500.
    /// `client_id` is the publisher's MQTT client id (`clientid()`); None for
    /// a message that did not come over MQTT.
    pub fn process(
        &self,
        client_id: Option<&str>,
        topic: &str,
        payload: &[u8],
        now_ms: u64,
        store: &mut RecordStore,
    ) -> Vec<ActionOutcome> {
        self.rules
            .rules()
            .iter()
            .filter_map(|rule| {
                let output = rule.query().evaluate(topic, payload, now_ms, client_id)?;
                let result = match self.transforms.get(rule.action()) {
                    Some(t) => t
                        .apply(&output, now_ms)
                        .map_err(ActionError::from)
                        .and_then(|record| store.insert(&record).map_err(ActionError::from)),
                    None => Err(ActionError::UnknownAction(rule.action().to_string())),
                };
                Some(ActionOutcome {
                    rule: rule.name().to_string(),
                    action: rule.action().to_string(),
                    result,
                })
            })
            .collect()
    }
}
