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

/// The largest scenario (or fleet) file read: 4 MiB. The shipped scenarios
/// are a few KiB; a generated one with thousands of steps fits easily. A file
/// is read at most this far (plus one byte, to tell that it is longer), so
/// `/dev/zero` or a runaway generator cannot fill the memory.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// The deepest nesting of mappings and lists in a file, counted from the top
/// level: 64. It bounds the recursion of everything that reads or walks the
/// document (the YAML reader, JSON payloads and `match` values, the
/// position lookup); a payload under `steps[0].publish.payload` has about 60
/// levels of its own.
pub const MAX_YAML_DEPTH: usize = 64;

/// The most nodes (mappings, lists and scalars, aliases expanded) in a file:
/// 250,000, about 50 times the largest shipped scenario.
pub const MAX_YAML_NODES: usize = 250_000;

/// The reader options every scenario-family file is read with: the limits
/// above, spelled out here so they do not depend on the YAML crate's
/// defaults.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_YAML_DEPTH,
            flow_nesting_limit: MAX_YAML_DEPTH,
            max_nodes: MAX_YAML_NODES,
            max_total_scalar_bytes: MAX_FILE_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_YAML_NODES,
        },
    }
}

/// Reads a scenario-family file as text: a regular file (after symbolic
/// links) of at most [`MAX_FILE_BYTES`], in UTF-8. Devices, pipes and
/// directories are refused before anything is read from them.
pub fn read_scenario_text(path: &Path) -> Result<String, ScenarioError> {
    use std::io::Read as _;
    let io = |source| ScenarioError::Io {
        path: path.to_owned(),
        source,
    };
    let refuse = |why: String| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(refuse(format!(
            "not a regular file ({}); a scenario is read from a file",
            file_kind(&meta.file_type())
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(refuse(format!(
            "the file is larger than {} MiB, the largest scenario file twinrig reads",
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        refuse(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// What a file that is not a regular file is, for messages.
fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

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
    /// Whether a source snippet can show it (see [`SNIPPET_MAX_LINE_BYTES`]).
    snippet: bool,
}

/// The longest line shown in a source snippet, in bytes. A problem on a
/// longer line (or next to one: a snippet shows the lines around) is printed
/// without a snippet, as `file:line:col: message`: a line of thousands of
/// characters helps nobody in a terminal, and past 65,535 columns miette's
/// renderer panics.
pub const SNIPPET_MAX_LINE_BYTES: usize = 500;

/// Lines of context a snippet shows on each side (miette's default).
const SNIPPET_CONTEXT_LINES: usize = 1;

impl Problem {
    /// A problem in `text` (the file's contents): the marked span is cut at
    /// the end of its first line, and the snippet is left out where lines are
    /// too long to show.
    fn new(path: &Path, position: Option<Position>, message: String, text: &str) -> Problem {
        let bytes = text.as_bytes();
        let position = position.map(|p| {
            // Only as far as a snippet could show: a point on a long line.
            let rest = &bytes[p.offset..];
            let line_len = newline_within(rest, SNIPPET_MAX_LINE_BYTES).unwrap_or(0);
            Position {
                len: p.len.min(line_len),
                ..p
            }
        });
        let snippet = position.is_some_and(|p| lines_fit(bytes, p.offset));
        Problem {
            file: path.to_owned(),
            position,
            message,
            snippet,
        }
    }
}

/// Where the first `\n` of `bytes` is, if within `limit` bytes (or the end
/// of `bytes` is).
fn newline_within(bytes: &[u8], limit: usize) -> Option<usize> {
    bytes
        .iter()
        .take(limit + 1)
        .position(|&b| b == b'\n')
        .or((bytes.len() <= limit).then_some(bytes.len()))
}

/// Whether the line holding byte `offset` of `text`, and its context lines,
/// are at most [`SNIPPET_MAX_LINE_BYTES`] long. Looks only at the bytes
/// such lines can span, so it costs the same whatever the file.
fn lines_fit(text: &[u8], offset: usize) -> bool {
    let limit = SNIPPET_MAX_LINE_BYTES;
    // Lines that fit, with their line breaks, lie within this reach.
    let reach = (SNIPPET_CONTEXT_LINES + 1) * (limit + 1);
    let lo = offset.saturating_sub(reach);
    let hi = offset.saturating_add(reach).min(text.len());
    // The window's lines as byte ranges; the first and last may be cut off
    // by the window, and a cut line cannot fit (it is longer than `reach`
    // minus the lines between it and `offset`, all of which would fit).
    let mut lines = Vec::new();
    let mut start = lo;
    for (i, &b) in text[lo..hi].iter().enumerate() {
        if b == b'\n' {
            lines.push((start, lo + i));
            start = lo + i + 1;
        }
    }
    lines.push((start, hi));
    let first_cut = lo > 0 && text[lo - 1] != b'\n';
    let last_cut = hi < text.len() && text[hi] != b'\n';
    let Some(here) = lines.iter().position(|&(s, e)| s <= offset && offset <= e) else {
        return false;
    };
    let last = lines.len() - 1;
    let shown =
        here.saturating_sub(SNIPPET_CONTEXT_LINES)..=(here + SNIPPET_CONTEXT_LINES).min(last);
    shown.into_iter().all(|j| {
        let (s, e) = lines[j];
        e - s <= limit && !(j == 0 && first_cut) && !(j == last && last_cut)
    })
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
        if !self.snippet {
            return None;
        }
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
        // Without a problem to show in a snippet, no snippet at all: the
        // messages carry `file:line:col`.
        if !self.problems().iter().any(|p| p.snippet) {
            return None;
        }
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
    if text.len() > MAX_FILE_BYTES {
        // Text that did not come from `read_scenario_text` (a trace's copy).
        return Err(ScenarioError::Parse {
            problem: Problem::new(
                path,
                None,
                format!(
                    "the text is {} bytes; a scenario file is at most {} MiB",
                    text.len(),
                    MAX_FILE_BYTES / (1024 * 1024)
                ),
                text,
            ),
            source_code: named_source("", path),
        });
    }
    serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|err| ScenarioError::Parse {
        problem: Problem::new(
            path,
            err.location().and_then(|l| position(text, l)),
            message(&err),
            text,
        ),
        source_code: named_source(text, path),
    })
}

/// Turns semantic errors into a positioned [`ScenarioError::Invalid`].
pub(crate) fn invalid(text: &str, path: &Path, errors: Vec<SemanticError>) -> ScenarioError {
    // The text parsed once already, so this cannot fail in practice; without
    // a tree the problems are reported without positions. Non-finite floats
    // (`.nan`) must pass: by default they are rejected where the target type
    // (here: any node) does not say it is a float.
    let mut options = yaml_options();
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
    let tree: Option<SpanTree> = serde_saphyr::from_str_with_options(text, options).ok();
    let problems = errors
        .into_iter()
        .map(|e| {
            let at = tree
                .as_ref()
                .map(|t| t.locate(&e.path))
                .and_then(|l| position(text, l));
            Problem::new(path, at, e.message, text)
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
        YamlError::Budget { breach, .. } => budget_message(breach),
        // The YAML scanner's own nesting limit (`flow_nesting_limit`), hit
        // while it looks ahead through a flow collection.
        YamlError::ExternalMessage { msg, .. } if msg == "recursion limit exceeded" => {
            depth_message()
        }
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

fn depth_message() -> String {
    format!(
        "nested deeper than {MAX_YAML_DEPTH} levels (mappings and lists, counted from the top of the file)"
    )
}

/// Which of the reader's limits a file breaks, in a scenario author's words.
fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach;
    match breach {
        BudgetBreach::Depth { .. } => depth_message(),
        BudgetBreach::Nodes { .. } => {
            format!("more than {MAX_YAML_NODES} nodes (mappings, lists and values) in one file")
        }
        BudgetBreach::ScalarBytes { .. } => format!(
            "more than {} MiB of values in one file",
            MAX_FILE_BYTES / (1024 * 1024)
        ),
        other => format!("the file is too large or too complex for a scenario ({other:?})"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, offset: usize, len: usize) -> Problem {
        let position = Position {
            line: 1,
            column: 1,
            offset,
            len,
        };
        Problem::new(Path::new("f.yaml"), Some(position), "m".into(), text)
    }

    #[test]
    fn a_huge_span_is_cut_at_the_end_of_its_first_line() {
        let text = format!("a: 1\nb: [\n{}]\nc: 3\n", "  x,\n".repeat(10_000));
        let p = at(&text, 5, text.len() - 5);
        assert_eq!(p.position.unwrap().len, "b: [".len());
        assert!(p.snippet);
        // A span on a line too long to show is a point, without a snippet.
        let long = format!("a: [{}]\n", "1, ".repeat(100_000));
        let p = at(&long, 10, 200_000);
        assert_eq!(p.position.unwrap().len, 0);
        assert!(!p.snippet);
    }

    #[test]
    fn snippets_need_the_line_and_its_neighbours_to_be_short() {
        let max = "x".repeat(SNIPPET_MAX_LINE_BYTES);
        let over = "x".repeat(SNIPPET_MAX_LINE_BYTES + 1);
        // Lines: 0 `a`, 1 the long or short one, 2 `b`, 3 `c`, 4 `d`.
        for (middle, fits) in [(&max, true), (&over, false)] {
            let text = format!("a\n{middle}\nb\nc\nd\n");
            let line = |n: usize| text.split('\n').take(n).map(|l| l.len() + 1).sum::<usize>();
            // On the line itself and next to it: decided by its length.
            assert_eq!(lines_fit(text.as_bytes(), line(1) + 3), fits);
            assert_eq!(lines_fit(text.as_bytes(), line(0)), fits);
            assert_eq!(lines_fit(text.as_bytes(), line(2)), fits);
            // Two lines away: not shown, so no matter.
            assert!(lines_fit(text.as_bytes(), line(3)));
            assert!(lines_fit(text.as_bytes(), line(4)));
        }
        // The very start and end of a text.
        assert!(lines_fit(b"", 0));
        assert!(lines_fit(b"a: 1", 4));
    }
}
