//! The parsed form of a rule's SQL statement.
//!
//! [`Query`] prints back as canonical SQL (upper-case keywords, every `AND`,
//! `OR` and `NOT` parenthesised) that parses to the same tree.

use std::fmt;

use serde_json::{Number, Value};

/// `SELECT <items> FROM '<filter>' [WHERE <condition>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The select list, in statement order.
    pub select: Vec<SelectItem>,
    /// The MQTT topic filter of the FROM clause (validated as a filter).
    pub from: String,
    /// The WHERE condition, if any.
    pub condition: Option<Expr>,
}

/// One entry of the select list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`: every key of the payload object.
    Star,
    /// A value under a name.
    Item {
        /// What is selected.
        operand: Operand,
        /// `AS name`, if given.
        alias: Option<String>,
    },
}

impl SelectItem {
    /// The key the item gets in the output object: the alias, else the last
    /// segment of a field path, else the function's name. `None` for `*`.
    pub fn output_name(&self) -> Option<&str> {
        match self {
            SelectItem::Star => None,
            SelectItem::Item {
                alias: Some(alias), ..
            } => Some(alias),
            SelectItem::Item {
                operand,
                alias: None,
            } => match operand {
                Operand::Field(path) => path.0.last().map(String::as_str),
                Operand::Topic(_) => Some("topic"),
                Operand::Timestamp => Some("timestamp"),
                // The parser requires an alias for a literal.
                Operand::Literal(_) => None,
            },
        }
    }
}

/// A value the statement reads: a payload field, a function or a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A field of the payload, by path (`a.b.c`).
    Field(FieldPath),
    /// `topic()` (the whole topic) or `topic(n)` (the n-th level, 1-based).
    Topic(Option<u32>),
    /// `timestamp()`: the rules engine's clock in epoch milliseconds.
    Timestamp,
    /// A literal value.
    Literal(Literal),
}

/// A dotted path into the payload object: `state.reported.x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(pub Vec<String>);

/// A literal in the statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `42`, `-1.5`, `2e3`.
    Number(Number),
    /// `'text'` (a quote inside is written twice: `'it''s'`).
    String(String),
    /// `true` / `false`.
    Bool(bool),
    /// `NULL`.
    Null,
}

impl Literal {
    /// The literal as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Literal::Number(n) => Value::Number(n.clone()),
            Literal::String(s) => Value::String(s.clone()),
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Null => Value::Null,
        }
    }
}

/// A condition (WHERE clause).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A bare operand; true when it is `true` (or the string "true").
    Operand(Operand),
    /// `left <op> right`.
    Compare {
        /// The operator.
        op: CmpOp,
        /// Left side.
        left: Box<Expr>,
        /// Right side.
        right: Box<Expr>,
    },
    /// `NOT e`.
    Not(Box<Expr>),
    /// `a AND b`.
    And(Box<Expr>, Box<Expr>),
    /// `a OR b`.
    Or(Box<Expr>, Box<Expr>),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    write!(f, "'{}'", s.replace('\'', "''"))
}

/// A comparison nested directly in a comparison needs its parentheses back.
fn write_side(f: &mut fmt::Formatter<'_>, e: &Expr) -> fmt::Result {
    match e {
        Expr::Compare { .. } => write!(f, "({e})"),
        _ => write!(f, "{e}"),
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Number(n) => write!(f, "{n}"),
            Literal::String(s) => write_quoted(f, s),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("NULL"),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Field(p) => write!(f, "{p}"),
            Operand::Topic(None) => f.write_str("topic()"),
            Operand::Topic(Some(n)) => write!(f, "topic({n})"),
            Operand::Timestamp => f.write_str("timestamp()"),
            Operand::Literal(l) => write!(f, "{l}"),
        }
    }
}

impl fmt::Display for SelectItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectItem::Star => f.write_str("*"),
            SelectItem::Item { operand, alias } => {
                write!(f, "{operand}")?;
                if let Some(alias) = alias {
                    write!(f, " AS {alias}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Operand(o) => write!(f, "{o}"),
            Expr::Compare { op, left, right } => {
                write_side(f, left)?;
                write!(f, " {} ", op.as_str())?;
                write_side(f, right)
            }
            Expr::Not(e) => write!(f, "(NOT {e})"),
            Expr::And(a, b) => write!(f, "({a} AND {b})"),
            Expr::Or(a, b) => write!(f, "({a} OR {b})"),
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        for (i, item) in self.select.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item}")?;
        }
        f.write_str(" FROM ")?;
        write_quoted(f, &self.from)?;
        if let Some(c) = &self.condition {
            write!(f, " WHERE {c}")?;
        }
        Ok(())
    }
}
