//! The JSON Schema of scenario files, generated from the model types.
//!
//! With the build's device kinds' params merged in, it is committed as
//! `schema/scenario.schema.json` for editors (a YAML language server picks it
//! up with `# yaml-language-server: $schema=...`); a test checks the
//! committed file is up to date.

use schemars::generate::SchemaSettings;

use super::model::Scenario;

/// The schema's title.
pub const SCHEMA_TITLE: &str = "twinrig scenario";

/// The JSON Schema (draft 2020-12) of a scenario file, with each device
/// kind's params: a device of a kind must have its kind's params (an `if
/// kind = ...` / `then params: ...` pair per kind of this build).
pub fn scenario_schema() -> serde_json::Value {
    let mut generator = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    let per_kind: Vec<serde_json::Value> = crate::devices::kinds()
        .iter()
        .map(|k| (k.name(), k.params().schema(&mut generator)))
        .collect::<Vec<_>>()
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
pub fn scenario_schema_json() -> String {
    let mut text =
        serde_json::to_string_pretty(&scenario_schema()).expect("a JSON value always serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = include_str!("../../schema/scenario.schema.json");

    #[test]
    fn committed_schema_is_up_to_date() {
        assert!(
            COMMITTED == scenario_schema_json(),
            "schema/scenario.schema.json is out of date; regenerate it with \
             `cargo run -- schema > schema/scenario.schema.json`"
        );
    }

    #[test]
    fn every_kind_s_params_are_in_the_schema() {
        let schema: serde_json::Value = serde_json::from_str(&scenario_schema_json()).unwrap();
        let per_kind = schema["$defs"]["Device"]["allOf"].as_array().unwrap();
        let kinds: Vec<&str> = per_kind
            .iter()
            .map(|k| k["if"]["properties"]["kind"]["const"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, crate::devices::kind_names());
        // The RVR's params, spelled out with their docs, unknown keys refused.
        let rvr = &per_kind[1]["then"]["properties"]["params"];
        let name = rvr["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
        let def = &schema["$defs"][name];
        assert_eq!(def["additionalProperties"], false, "{def:#}");
        assert!(
            def["properties"]["stream_period_ms"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("33")),
            "{def:#}"
        );
    }

    #[test]
    fn schema_has_title_draft_and_strict_objects() {
        let schema = scenario_schema();
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
