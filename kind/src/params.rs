//! A device's `params`: parsed into the kind's own type once, when the
//! scenario is checked, and handed to [`crate::DeviceKind::spawn`] as a
//! [`DeviceSpec`].

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A kind's parameter type: what serde and the schema describe, plus the
/// checks they cannot express (ranges, combinations).
pub trait Params: DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// Checks the parsed values.
    fn check(&self) -> Result<(), ParamsError> {
        Ok(())
    }
}

/// A kind's `params`, whatever their type: what [`crate::DeviceKind::params`]
/// returns (a trait object, so the kind trait stays object-safe).
pub trait ParamsModel: Sync {
    /// Parses and checks a device's `params`.
    fn parse(&self, params: &Map<String, Value>) -> Result<DeviceSpec, ParamsError>;
    /// Their JSON Schema, made with `generator` so the types it refers to
    /// join the scenario schema's `$defs`.
    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;
}

/// The [`ParamsModel`] of the parameter type `P`.
pub struct ParamsOf<P>(std::marker::PhantomData<fn() -> P>);

impl<P> ParamsOf<P> {
    /// The model (a constant, so `&ParamsOf::<P>::NEW` is `'static`).
    pub const NEW: ParamsOf<P> = ParamsOf(std::marker::PhantomData);
}

impl<P: Params> ParamsModel for ParamsOf<P> {
    fn parse(&self, params: &Map<String, Value>) -> Result<DeviceSpec, ParamsError> {
        DeviceSpec::parse::<P>(params)
    }
    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<P>()
    }
}

/// The params of a kind that takes none: any key is refused.
#[derive(Debug, Clone, Copy, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl Params for NoParams {}

/// What is wrong with a device's `params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsError {
    /// The offending key (a dotted path for nested values), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ParamsError {
    /// A problem with the value of `key`.
    pub fn at(key: &str, message: impl Into<String>) -> ParamsError {
        ParamsError {
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    /// A problem with the params as a whole.
    pub fn whole(message: impl Into<String>) -> ParamsError {
        ParamsError {
            key: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParamsError {}

/// Parses `params` as `P` (unknown keys are the type's to refuse) and
/// checks it; errors name the key they concern.
pub fn parse_params<P: Params>(params: &Map<String, Value>) -> Result<P, ParamsError> {
    let value = Value::Object(params.clone());
    let parsed: P = serde_path_to_error::deserialize(value).map_err(|e| {
        // The path ends at the offending key (an unknown key included).
        let path = e.path().to_string();
        let key = (path != ".").then_some(path);
        let message = e.into_inner().to_string();
        ParamsError { key, message }
    })?;
    parsed.check()?;
    Ok(parsed)
}

/// A device's parsed and checked parameters, of its kind's [`Params`] type.
#[derive(Clone)]
pub struct DeviceSpec(Arc<dyn Any + Send + Sync>);

impl DeviceSpec {
    /// Parses `params` as `P` (unknown keys are the type's to refuse) and
    /// checks it; errors name the key they concern.
    pub fn parse<P: Params>(params: &Map<String, Value>) -> Result<DeviceSpec, ParamsError> {
        Ok(DeviceSpec(Arc::new(parse_params::<P>(params)?)))
    }

    /// The parameters, as the kind's type `P`. Fails only if a spec made by
    /// one kind is handed to another.
    pub fn params<P: Params>(&self) -> Result<&P, crate::KindError> {
        self.0
            .downcast_ref::<P>()
            .ok_or(crate::KindError::Build(format!(
                "the device's params were parsed by another kind (expected {})",
                std::any::type_name::<P>()
            )))
    }
}

impl fmt::Debug for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceSpec(..)")
    }
}

/// Where a scenario keeps a device's [`DeviceSpec`] once its params are
/// checked, so the run spawns from that parse instead of parsing again.
/// Copies of a scenario share it; it never takes part in comparisons (it
/// is derived from the params, which do).
#[derive(Clone, Default)]
pub struct SpecSlot(Arc<OnceLock<DeviceSpec>>);

impl SpecSlot {
    /// Keeps `spec` (the first one kept stays: the params do not change).
    pub fn fill(&self, spec: DeviceSpec) {
        let _ = self.0.set(spec);
    }

    /// The kept spec, if the params were checked by the build's kinds.
    pub fn get(&self) -> Option<&DeviceSpec> {
        self.0.get()
    }
}

impl PartialEq for SpecSlot {
    fn eq(&self, _: &SpecSlot) -> bool {
        true
    }
}

impl fmt::Debug for SpecSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.get().is_some() {
            "parsed"
        } else {
            "not parsed"
        };
        write!(f, "SpecSlot({state})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Example {
        #[serde(default)]
        speed: u32,
        #[serde(default)]
        inner: Inner,
    }

    #[derive(Debug, Default, Deserialize, JsonSchema, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        depth: f64,
    }

    impl Params for Example {
        fn check(&self) -> Result<(), ParamsError> {
            if self.speed > 10 {
                return Err(ParamsError::at("speed", "speed must be at most 10"));
            }
            Ok(())
        }
    }

    fn parse(v: Value) -> Result<DeviceSpec, ParamsError> {
        DeviceSpec::parse::<Example>(v.as_object().unwrap())
    }

    #[test]
    fn params_parse_once_into_the_kind_type() {
        let spec = parse(json!({"speed": 3, "inner": {"depth": 1.5}})).unwrap();
        let p = spec.params::<Example>().unwrap();
        assert_eq!((p.speed, p.inner.depth), (3, 1.5));
    }

    #[test]
    fn errors_name_the_key_they_concern() {
        let e = parse(json!({"speed": "fast"})).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("speed"), "{e:?}");
        assert!(e.message.contains("invalid type"), "{e}");
        let e = parse(json!({"inner": {"depth": "deep"}})).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("inner.depth"), "{e:?}");
        let e = parse(json!({"speed": 11})).unwrap_err();
        assert_eq!(e, ParamsError::at("speed", "speed must be at most 10"));
        let e = parse(json!({"sped": 1})).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sped"), "{e:?}");
        assert!(e.message.contains("unknown field `sped`"), "{e}");
        let e = parse(json!({"inner": {"dpth": 1}})).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("inner.dpth"), "{e:?}");
    }

    #[test]
    fn a_spec_of_another_type_is_an_error_not_a_panic() {
        let spec = parse(json!({})).unwrap();
        #[derive(Deserialize, JsonSchema)]
        struct Other {}
        impl Params for Other {}
        assert!(spec.params::<Other>().is_err());
    }
}
