//! Recursive-descent parser for the rules SQL subset (grammar in the module
//! docs of [`crate::rules`]). It never panics: every failure is a
//! [`ParseError`] with the position and what was expected.
//!
//! Its recursion, and that of everything that walks the tree it builds
//! (evaluation, printing, dropping), is bounded: only parentheses and `NOT`
//! nest ([`MAX_NESTING`]), chains of `AND`/`OR` are read in a loop into one
//! node, and a statement has at most [`MAX_TERMS`] terms.

use std::fmt;

use thiserror::Error;
use twinrig_hal::mqtt::validate_topic_filter;

use super::ast::{Expr, FieldPath, Literal, Operand, Query, SelectItem};
use super::lexer::{Kw, Tok, Token, tokenize};

/// Deepest nesting of parentheses and `NOT` the parser accepts (keeps
/// adversarial input from exhausting the stack).
pub const MAX_NESTING: usize = 64;

/// Most terms in one statement: select items plus the operands of the
/// condition (field paths, literals, function calls). Far more than a
/// hand-written rule needs; it bounds the work each message costs and the
/// size of the tree, so an adversarial `a OR a OR ...` is refused when the
/// rule is read instead of when it runs.
pub const MAX_TERMS: usize = 1_000;

/// A position in the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Byte offset from the start of the statement.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 1 {
            write!(f, "column {}", self.column)
        } else {
            write!(f, "line {}, column {}", self.line, self.column)
        }
    }
}

/// A statement that is not in the supported SQL subset.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{kind} at {pos}")]
pub struct ParseError {
    /// Where the problem starts.
    pub pos: Pos,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(pos: Pos, kind: ParseErrorKind) -> Self {
        ParseError { pos, kind }
    }

    /// 1-based column (in characters) of the problem.
    pub fn column(&self) -> usize {
        self.pos.column
    }
}

/// What is wrong with a statement.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ParseErrorKind {
    /// A token other than the grammar allows here.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What the grammar allows at this point.
        expected: &'static str,
        /// The token that was there.
        found: String,
    },
    /// A `'` string without its closing quote.
    #[error("unterminated string (no closing ')")]
    UnterminatedString,
    /// A character that starts no token.
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// Number-like text that is not a number.
    #[error("invalid number `{0}`")]
    InvalidNumber(String),
    /// A function the subset does not have (only `topic` and `timestamp`).
    #[error("unknown function `{0}` (supported: topic(), topic(n), timestamp())")]
    UnknownFunction(String),
    /// `topic(...)` with something other than a whole number >= 1.
    #[error("topic() takes a whole number >= 1, found {0}")]
    BadTopicIndex(String),
    /// The FROM clause is not a valid MQTT topic filter.
    #[error("invalid topic filter '{0}'")]
    BadTopicFilter(String),
    /// Parentheses or `NOT` nested deeper than [`MAX_NESTING`].
    #[error("nested deeper than {MAX_NESTING} levels")]
    TooDeep,
    /// More than [`MAX_TERMS`] terms in the statement.
    #[error("more than {MAX_TERMS} terms (select items and operands) in one statement")]
    TooLarge,
}

/// Parses one statement.
pub fn parse(sql: &str) -> Result<Query, ParseError> {
    let (tokens, lex_error) = tokenize(sql);
    let mut p = Parser {
        tokens,
        at: 0,
        depth: 0,
        terms: 0,
    };
    let result = p.query();
    match lex_error {
        // The tokens stop where the lexer failed: a grammar error before that
        // point is the first problem in the text; anything else is the
        // lexer's.
        Some(lex) => match result {
            Err(e) if e.pos.offset < lex.pos.offset => Err(e),
            _ => Err(lex),
        },
        None => result,
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    /// Terms read so far (see [`MAX_TERMS`]).
    terms: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // `tokenize` always ends with Eof and `bump` never moves past it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.at += 1;
        }
        t
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if &self.peek().tok == tok {
            self.bump();
            true
        } else {
            false
        }
    }

    fn error_here(&self, expected: &'static str) -> ParseError {
        let t = self.peek();
        ParseError::new(
            t.pos,
            ParseErrorKind::Expected {
                expected,
                found: t.tok.describe(),
            },
        )
    }

    fn expect(&mut self, tok: &Tok, expected: &'static str) -> Result<Token, ParseError> {
        if &self.peek().tok == tok {
            Ok(self.bump())
        } else {
            Err(self.error_here(expected))
        }
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        self.expect(&Tok::Kw(Kw::Select), "SELECT")?;
        let mut select = vec![self.select_item()?];
        while self.eat(&Tok::Comma) {
            select.push(self.select_item()?);
        }
        self.expect(&Tok::Kw(Kw::From), "`,` or FROM")?;
        let from_tok = self.bump();
        let from = match from_tok.tok {
            Tok::Str(filter) => filter,
            other => {
                return Err(ParseError::new(
                    from_tok.pos,
                    ParseErrorKind::Expected {
                        expected: "a quoted topic filter such as 'a/+/b'",
                        found: other.describe(),
                    },
                ));
            }
        };
        if validate_topic_filter(&from).is_err() {
            return Err(ParseError::new(
                from_tok.pos,
                ParseErrorKind::BadTopicFilter(from),
            ));
        }
        let condition = if self.eat(&Tok::Kw(Kw::Where)) {
            let c = self.or_expr()?;
            self.expect(&Tok::Eof, "AND, OR or end of input")?;
            Some(c)
        } else {
            self.expect(&Tok::Eof, "WHERE or end of input")?;
            None
        };
        Ok(Query {
            select,
            from,
            condition,
        })
    }

    /// Counts one more term, starting at the current token.
    fn term(&mut self) -> Result<(), ParseError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(ParseError::new(self.peek().pos, ParseErrorKind::TooLarge));
        }
        Ok(())
    }

    fn select_item(&mut self) -> Result<SelectItem, ParseError> {
        self.term()?;
        if self.eat(&Tok::Star) {
            return Ok(SelectItem::Star);
        }
        let operand = self.operand("`*`, a field name, topic(), timestamp() or a literal")?;
        let alias = if self.eat(&Tok::Kw(Kw::As)) {
            let t = self.bump();
            match t.tok {
                Tok::Ident(name) => Some(name),
                other => {
                    return Err(ParseError::new(
                        t.pos,
                        ParseErrorKind::Expected {
                            expected: "a name after AS",
                            found: other.describe(),
                        },
                    ));
                }
            }
        } else {
            None
        };
        if alias.is_none() && matches!(operand, Operand::Literal(_)) {
            return Err(self.error_here("AS <name> (a selected literal needs a name)"));
        }
        Ok(SelectItem::Item { operand, alias })
    }

    fn operand(&mut self, expected: &'static str) -> Result<Operand, ParseError> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Ident(name) => {
                self.bump();
                if self.peek().tok == Tok::LParen {
                    return self.call(&name, t.pos);
                }
                let mut path = vec![name];
                while self.eat(&Tok::Dot) {
                    let seg = self.bump();
                    match seg.tok {
                        Tok::Ident(s) => path.push(s),
                        other => {
                            return Err(ParseError::new(
                                seg.pos,
                                ParseErrorKind::Expected {
                                    expected: "a field name after `.`",
                                    found: other.describe(),
                                },
                            ));
                        }
                    }
                }
                Ok(Operand::Field(FieldPath(path)))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Operand::Literal(Literal::String(s)))
            }
            Tok::Num(n) => {
                self.bump();
                Ok(Operand::Literal(Literal::Number(n)))
            }
            Tok::Kw(Kw::True) => {
                self.bump();
                Ok(Operand::Literal(Literal::Bool(true)))
            }
            Tok::Kw(Kw::False) => {
                self.bump();
                Ok(Operand::Literal(Literal::Bool(false)))
            }
            Tok::Kw(Kw::Null) => {
                self.bump();
                Ok(Operand::Literal(Literal::Null))
            }
            _ => Err(self.error_here(expected)),
        }
    }

    /// `name(` has been seen (the `(` not yet consumed).
    fn call(&mut self, name: &str, at: Pos) -> Result<Operand, ParseError> {
        if name.eq_ignore_ascii_case("timestamp") {
            self.bump(); // (
            self.expect(&Tok::RParen, "`)` (timestamp() takes no argument)")?;
            return Ok(Operand::Timestamp);
        }
        if name.eq_ignore_ascii_case("clientid") {
            self.bump(); // (
            self.expect(&Tok::RParen, "`)` (clientid() takes no argument)")?;
            return Ok(Operand::ClientId);
        }
        if !name.eq_ignore_ascii_case("topic") {
            return Err(ParseError::new(
                at,
                ParseErrorKind::UnknownFunction(name.to_string()),
            ));
        }
        self.bump(); // (
        if self.eat(&Tok::RParen) {
            return Ok(Operand::Topic(None));
        }
        let arg = self.bump();
        let index = match &arg.tok {
            Tok::Num(n) => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .filter(|&v| v >= 1),
            _ => None,
        };
        let Some(index) = index else {
            return Err(ParseError::new(
                arg.pos,
                ParseErrorKind::BadTopicIndex(arg.tok.describe()),
            ));
        };
        self.expect(&Tok::RParen, "`)` after the topic level")?;
        Ok(Operand::Topic(Some(index)))
    }

    fn nest(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(ParseError::new(self.peek().pos, ParseErrorKind::TooDeep));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.and_expr()?];
        while self.eat(&Tok::Kw(Kw::Or)) {
            terms.push(self.and_expr()?);
        }
        Ok(chain(terms, Expr::Or))
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.not_expr()?];
        while self.eat(&Tok::Kw(Kw::And)) {
            terms.push(self.not_expr()?);
        }
        Ok(chain(terms, Expr::And))
    }

    fn not_expr(&mut self) -> Result<Expr, ParseError> {
        if self.eat(&Tok::Kw(Kw::Not)) {
            self.nest()?;
            let inner = self.not_expr()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.primary()?;
        if let Tok::Cmp(op) = self.peek().tok {
            self.bump();
            let right = self.primary()?;
            return Ok(Expr::Compare {
                op,
                left: Box::new(left),
                right: Box::new(right),
            });
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        if self.eat(&Tok::LParen) {
            self.nest()?;
            let e = self.or_expr()?;
            self.expect(&Tok::RParen, "`)`, AND or OR")?;
            self.depth -= 1;
            return Ok(e);
        }
        const CONDITION: &str = "a field name, topic(), timestamp(), a literal, NOT or `(`";
        self.term()?;
        Ok(Expr::Operand(self.operand(CONDITION)?))
    }
}

/// One term stands for itself; several make a chain.
fn chain(mut terms: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1 {
        terms.remove(0)
    } else {
        make(terms)
    }
}
