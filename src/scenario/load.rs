//! Reading scenario files: YAML text to [`Scenario`](super::model::Scenario), with positioned errors.
//!
//! Syntax and type errors come from serde-saphyr, which knows the line and
//! column of the node it was reading. Semantic errors (see `validate.rs`) name
//! a path into the document (`steps[2].publish.qos`); to give them a position
//! too, the text is read a second time into a [`SpanTree`] of
//! `serde_saphyr::Spanned` nodes and the path is looked up there (the nearest
//! existing ancestor when the key itself is absent, e.g. a defaulted field).

use std::fmt;
use std::path::{Path, PathBuf};

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::{Error as YamlError, Location, MessageFormatter, Spanned, UserMessageFormatter};

use super::validate::{PathSeg, SemanticError};

/// A place in a scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column, in characters.
    pub column: u64,
    /// Byte offset of the start in the file text.
    pub offset: usize,
    /// Length in bytes of the marked text (0: a point).
    pub len: usize,
}

/// One thing wrong with a scenario file, with its place if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Where in it.
    pub position: Option<Position>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                p.line,
                p.column,
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let p = self.position?;
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some("here".to_owned()),
            p.offset,
            p.len,
        ))))
    }
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file or directory could not be read (or does not exist).
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The YAML is malformed, or does not fit the scenario types (unknown or
    /// missing key, wrong type, duration without a unit, ...).
    #[error("{problem}")]
    Parse {
        /// What and where.
        problem: Problem,
        /// The file text, for snippets.
        source_code: Box<NamedSource<String>>,
    },
    /// The scenario reads fine but makes no sense (see `validate.rs`).
    #[error("{}: invalid scenario ({} problem{})", path.display(), problems.len(), if problems.len() == 1 { "" } else { "s" })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found, in document order of the checks.
        problems: Vec<Problem>,
        /// The file text, for snippets.
        source_code: Box<NamedSource<String>>,
    },
}

impl ScenarioError {
    /// `path:line:col: message`, one line per problem, for logs and tests.
    pub fn render_plain(&self) -> String {
        match self {
            ScenarioError::Io { .. } | ScenarioError::Parse { .. } => self.to_string(),
            ScenarioError::Invalid { problems, .. } => problems
                .iter()
                .map(Problem::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The problems (one for a parse error, none for an I/O error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ScenarioError::Io { .. } => &[],
            ScenarioError::Parse { problem, .. } => std::slice::from_ref(problem),
            ScenarioError::Invalid { problems, .. } => problems,
        }
    }
}

impl Diagnostic for ScenarioError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let code = match self {
            ScenarioError::Io { .. } => "twinrig::scenario::io",
            ScenarioError::Parse { .. } => "twinrig::scenario::parse",
            ScenarioError::Invalid { .. } => "twinrig::scenario::invalid",
        };
        Some(Box::new(code))
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        match self {
            ScenarioError::Io { .. } => None,
            ScenarioError::Parse { source_code, .. }
            | ScenarioError::Invalid { source_code, .. } => Some(&**source_code),
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        match self {
            ScenarioError::Parse { problem, .. } => problem.labels(),
            _ => None,
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        match self {
            ScenarioError::Invalid { problems, .. } => {
                Some(Box::new(problems.iter().map(|p| p as &dyn Diagnostic)))
            }
            _ => None,
        }
    }
}

fn named_source(text: &str, path: &Path) -> Box<NamedSource<String>> {
    Box::new(NamedSource::new(path.display().to_string(), text.to_owned()).with_language("yaml"))
}

/// Reads the scenario types (or another document of the same family, such
/// as a fleet file) from YAML `text` (from `path`, for messages); no
/// semantic checks.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ScenarioError> {
    serde_saphyr::from_str(text).map_err(|err| ScenarioError::Parse {
        problem: Problem {
            file: path.to_owned(),
            position: err.location().and_then(|l| position(text, l)),
            message: message(&err),
        },
        source_code: named_source(text, path),
    })
}

/// Turns semantic errors into a positioned [`ScenarioError::Invalid`].
pub(crate) fn invalid(text: &str, path: &Path, errors: Vec<SemanticError>) -> ScenarioError {
    // The text parsed once already, so this cannot fail in practice; without
    // a tree the problems are reported without positions. Non-finite floats
    // (`.nan`) must pass: by default they are rejected where the target type
    // (here: any node) does not say it is a float.
    let options = serde_saphyr::options! {
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
    };
    let tree: Option<SpanTree> = serde_saphyr::from_str_with_options(text, options).ok();
    let problems = errors
        .into_iter()
        .map(|e| Problem {
            file: path.to_owned(),
            position: tree
                .as_ref()
                .map(|t| t.locate(&e.path))
                .and_then(|l| position(text, l)),
            message: e.message,
        })
        .collect();
    ScenarioError::Invalid {
        path: path.to_owned(),
        problems,
        source_code: named_source(text, path),
    }
}

/// The error text without location, worded for scenario authors.
fn message(err: &YamlError) -> String {
    let mut inner = err;
    while let YamlError::AliasError { error, .. } | YamlError::WithSnippet { error, .. } = inner {
        inner = error;
    }
    let text = match inner {
        YamlError::InvalidScalar { ty, .. } => match *ty {
            "u8" => "expected a whole number from 0 to 255".to_owned(),
            "u16" => "expected a whole number from 0 to 65535".to_owned(),
            "u32" => "expected a whole number from 0 to 4294967295".to_owned(),
            "u64" => "expected a whole number from 0 to 18446744073709551615".to_owned(),
            "floating point" => "expected a number".to_owned(),
            other => format!("expected a value of type {other}"),
        },
        YamlError::NonFiniteFloat { value, .. } => {
            format!("`{value}` is not allowed here: expected a finite number or a string")
        }
        YamlError::ExpectedMappingEndAfterEnumVariantValue { .. } => {
            "only one key is allowed here (one action per step, one kind per choice)".to_owned()
        }
        YamlError::Unexpected {
            expected: "mapping end",
            ..
        } => "only one key is allowed here (one kind per choice)".to_owned(),
        other => UserMessageFormatter.format_message(other).into_owned(),
    };
    // Messages go to terminals and logs: no control characters.
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A saphyr location as a [`Position`] with a byte offset into `text`.
fn position(text: &str, loc: Location) -> Option<Position> {
    if loc.line() == 0 {
        return None;
    }
    let span = loc.span();
    let offset = match span.byte_offset() {
        Some(o) => usize::try_from(o).ok()?,
        None => offset_of(text, loc.line(), loc.column())?,
    };
    let offset = offset.min(text.len());
    let len = span
        .byte_len()
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(0)
        .min(text.len() - offset);
    // miette needs spans on character boundaries.
    let (offset, len) = if text.is_char_boundary(offset) && text.is_char_boundary(offset + len) {
        (offset, len)
    } else {
        (offset_of(text, loc.line(), loc.column()).unwrap_or(0), 0)
    };
    Some(Position {
        line: loc.line(),
        column: loc.column(),
        offset,
        len,
    })
}

/// Byte offset of a 1-based line and character column.
fn offset_of(text: &str, line: u64, column: u64) -> Option<usize> {
    let text_start = text.len() - text.trim_start_matches('\u{feff}').len();
    let mut line_start = text_start;
    for _ in 1..line {
        line_start += text[line_start..].find('\n')? + 1;
    }
    let line_text = &text[line_start..];
    let col = usize::try_from(column.saturating_sub(1)).ok()?;
    let within = line_text
        .char_indices()
        .nth(col)
        .map_or(line_text.len(), |(i, _)| i);
    Some(line_start + within)
}

/// The shape of a YAML document with the location of every node.
#[derive(Debug)]
pub(crate) struct SpanTree {
    location: Location,
    kind: NodeKind,
}

#[derive(Debug)]
enum NodeKind {
    Map(Vec<(String, SpanTree)>),
    Seq(Vec<SpanTree>),
    Scalar,
}

impl SpanTree {
    /// The location of the node at `path`, or of its nearest existing ancestor.
    pub(crate) fn locate(&self, path: &[PathSeg]) -> Location {
        let mut node = self;
        for seg in path {
            let next = match (&node.kind, seg) {
                (NodeKind::Map(entries), PathSeg::Key(k)) => {
                    entries.iter().find(|(key, _)| key == k).map(|(_, n)| n)
                }
                (NodeKind::Seq(items), PathSeg::Index(i)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.location
    }
}

impl<'de> Deserialize<'de> for SpanTree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeKind>::deserialize(deserializer)?;
        Ok(SpanTree {
            location: spanned.referenced,
            kind: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for NodeKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }

    fn visit_unit<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }

    fn visit_none<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        NodeKind::deserialize(d)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<SpanTree>()? {
            items.push(item);
        }
        Ok(NodeKind::Seq(items))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let mut entries = Vec::new();
        while let Some(KeyText(key)) = map.next_key()? {
            entries.push((key, map.next_value::<SpanTree>()?));
        }
        Ok(NodeKind::Map(entries))
    }
}

/// A mapping key as text (scalar keys only; others become "").
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyText;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping key")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText(String::new()))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<KeyText, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(KeyText(String::new()))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<KeyText, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(KeyText(String::new()))
            }
        }

        deserializer.deserialize_any(KeyVisitor)
    }
}
