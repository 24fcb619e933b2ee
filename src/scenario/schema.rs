//! The JSON Schema of scenario files, generated from the model types.
//!
//! Committed as `schema/scenario.schema.json` for editors (a YAML language
//! server picks it up with `# yaml-language-server: $schema=...`); a test
//! checks the committed file is up to date.

use schemars::generate::SchemaSettings;

use super::model::Scenario;

/// The schema's title.
pub const SCHEMA_TITLE: &str = "twinrig scenario";

/// The JSON Schema (draft 2020-12) of a scenario file.
pub fn scenario_schema() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    let mut schema = generator.into_root_schema_for::<Scenario>();
    schema.insert("title".to_owned(), SCHEMA_TITLE.into());
    schema.to_value()
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
        let generated = scenario_schema_json();
        assert!(
            COMMITTED == generated,
            "schema/scenario.schema.json is out of date; regenerate it with \
             `cargo run -- schema > schema/scenario.schema.json`"
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
