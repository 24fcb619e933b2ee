//! The JSON Schema of scenario files, generated from the model types.
//!
//! With the build's device kinds' params merged in
//! (`crate::devices::scenario_schema_json`), it is committed as
//! `schema/scenario.schema.json` for editors (a YAML language server picks it
//! up with `# yaml-language-server: $schema=...`); a test checks the
//! committed file is up to date.

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;

use super::model::Scenario;

/// The schema's title.
pub const SCHEMA_TITLE: &str = "twinrig scenario";

/// The schema of one kind's `params`, made with the scenario's generator
/// (so the types it refers to land in the same `$defs`).
pub type ParamsSchemas<'a> =
    &'a dyn Fn(&mut SchemaGenerator) -> Vec<(&'static str, schemars::Schema)>;

/// The JSON Schema (draft 2020-12) of a scenario file. `params` gives each
/// device kind's params schema, by kind name: a device of that kind must
/// have those params (an `if kind = ...` / `then params: ...` pair per kind).
pub fn scenario_schema(params: ParamsSchemas<'_>) -> serde_json::Value {
    let mut generator = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    let per_kind: Vec<serde_json::Value> = params(&mut generator)
        .into_iter()
        .map(|(kind, schema)| {
            serde_json::json!({
                "if": { "properties": { "kind": { "const": kind } }, "required": ["kind"] },
                "then": { "properties": { "params": schema } },
            })
        })
        .collect();
    let mut schema = generator.into_root_schema_for::<Scenario>();
    schema.insert("title".to_owned(), SCHEMA_TITLE.into());
    let mut value = schema.to_value();
    if !per_kind.is_empty()
        && let Some(device) = value
            .pointer_mut("/$defs/Device")
            .and_then(|d| d.as_object_mut())
    {
        device.insert("allOf".to_owned(), per_kind.into());
    }
    value
}

/// [`scenario_schema`] as pretty JSON with a trailing newline.
pub fn scenario_schema_json(params: ParamsSchemas<'_>) -> String {
    let mut text = serde_json::to_string_pretty(&scenario_schema(params))
        .expect("a JSON value always serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_title_draft_and_strict_objects() {
        let schema = scenario_schema(&|_| Vec::new());
        assert_eq!(schema["title"], SCHEMA_TITLE);
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        // Every step kind is listed, and wait_for spells its keys out.
        let wait_for = &schema["$defs"]["WaitFor"];
        assert_eq!(wait_for["additionalProperties"], false, "{wait_for:#}");
        for key in ["topic", "match", "text", "timeout"] {
            assert!(
                wait_for["properties"][key].is_object(),
                "{key}: {wait_for:#}"
            );
        }
        assert_eq!(schema["$defs"]["Duration"]["type"], "string");
    }
}
