//! The parsed form of a rule's SQL statement.
//!
//! [`Query`] prints back as canonical SQL (upper-case keywords, parentheses
//! only where the tree needs them) that parses to the same tree.

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
                Operand::ClientId => Some("clientid"),
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
    /// `clientid()`: the publisher's MQTT client id (`n/a` when not MQTT).
    ClientId,
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
    /// `a AND b AND ...`: a chain of two or more terms, held side by side
    /// (not nested pair by pair) so a long chain costs no stack depth.
    And(Vec<Expr>),
    /// `a OR b OR ...`: a chain of two or more terms, as `And`.
    Or(Vec<Expr>),
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
            Operand::ClientId => f.write_str("clientid()"),
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

/// Where an expression is printed, which decides whether it needs
/// parentheses to parse back to the same tree.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The whole condition.
    Top,
    /// A term of an `OR` chain.
    InOr,
    /// A term of an `AND` chain.
    InAnd,
    /// After `NOT`.
    InNot,
    /// A side of a comparison (a primary: an operand or a parenthesis).
    Side,
}

impl Expr {
    fn write(&self, f: &mut fmt::Formatter<'_>, place: Place) -> fmt::Result {
        // Parentheses only where the grammar needs them (precedence, a chain
        // kept apart from its neighbour, a comparison side): the printed
        // statement then nests no deeper than any text that parses to this
        // tree, so it parses back within `MAX_NESTING` too.
        let parens = match self {
            Expr::Operand(_) => false,
            Expr::Compare { .. } | Expr::Not(_) => place == Place::Side,
            Expr::Or(_) => place != Place::Top,
            Expr::And(_) => !matches!(place, Place::Top | Place::InOr),
        };
        if parens {
            f.write_str("(")?;
        }
        match self {
            Expr::Operand(o) => write!(f, "{o}")?,
            Expr::Compare { op, left, right } => {
                left.write(f, Place::Side)?;
                write!(f, " {} ", op.as_str())?;
                right.write(f, Place::Side)?;
            }
            Expr::Not(e) => {
                f.write_str("NOT ")?;
                e.write(f, Place::InNot)?;
            }
            Expr::And(terms) => write_chain(f, terms, "AND", Place::InAnd)?,
            Expr::Or(terms) => write_chain(f, terms, "OR", Place::InOr)?,
        }
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

fn write_chain(f: &mut fmt::Formatter<'_>, terms: &[Expr], op: &str, place: Place) -> fmt::Result {
    for (i, term) in terms.iter().enumerate() {
        if i > 0 {
            write!(f, " {op} ")?;
        }
        term.write(f, place)?;
    }
    Ok(())
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, Place::Top)
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
