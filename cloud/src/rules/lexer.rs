//! Tokens of the rules SQL subset, each with its position in the statement.

use serde_json::Number;

use super::ast::CmpOp;
use super::parser::{ParseError, ParseErrorKind, Pos};

/// Reserved words (matched case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    Select,
    From,
    Where,
    As,
    And,
    Or,
    Not,
    True,
    False,
    Null,
}

impl Kw {
    fn lookup(word: &str) -> Option<Kw> {
        const ALL: [(&str, Kw); 10] = [
            ("SELECT", Kw::Select),
            ("FROM", Kw::From),
            ("WHERE", Kw::Where),
            ("AS", Kw::As),
            ("AND", Kw::And),
            ("OR", Kw::Or),
            ("NOT", Kw::Not),
            ("TRUE", Kw::True),
            ("FALSE", Kw::False),
            ("NULL", Kw::Null),
        ];
        ALL.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|(_, kw)| *kw)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kw::Select => "SELECT",
            Kw::From => "FROM",
            Kw::Where => "WHERE",
            Kw::As => "AS",
            Kw::And => "AND",
            Kw::Or => "OR",
            Kw::Not => "NOT",
            Kw::True => "TRUE",
            Kw::False => "FALSE",
            Kw::Null => "NULL",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Kw(Kw),
    Str(String),
    Num(Number),
    Star,
    Comma,
    Dot,
    LParen,
    RParen,
    Cmp(CmpOp),
    Eof,
}

impl Tok {
    /// How the token is named in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Kw(k) => k.as_str().to_string(),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Num(n) => format!("number {n}"),
            Tok::Star => "`*`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Dot => "`.`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Cmp(op) => format!("`{}`", op.as_str()),
            Tok::Eof => "end of input".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: Pos,
}

struct Cursor<'a> {
    src: &'a str,
    offset: usize,
    line: usize,
    column: usize,
}

impl Cursor<'_> {
    fn pos(&self) -> Pos {
        Pos {
            offset: self.offset,
            line: self.line,
            column: self.column,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.offset..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.src[self.offset..].chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.offset += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn eat_while(&mut self, f: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&f) {
            self.bump();
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits a statement into tokens; the last one is [`Tok::Eof`]. On a
/// lexical error the tokens before it are kept, ending with an `Eof` at the
/// error's position, so the parser can report an earlier grammar error first.
pub(crate) fn tokenize(src: &str) -> (Vec<Token>, Option<ParseError>) {
    let mut out = Vec::new();
    match lex(src, &mut out) {
        Ok(()) => (out, None),
        Err(e) => {
            out.push(Token {
                tok: Tok::Eof,
                pos: e.pos,
            });
            (out, Some(e))
        }
    }
}

fn lex(src: &str, out: &mut Vec<Token>) -> Result<(), ParseError> {
    let mut cur = Cursor {
        src,
        offset: 0,
        line: 1,
        column: 1,
    };
    loop {
        cur.eat_while(char::is_whitespace);
        let pos = cur.pos();
        let Some(c) = cur.peek() else {
            out.push(Token { tok: Tok::Eof, pos });
            return Ok(());
        };
        let tok = match c {
            '*' => single(&mut cur, Tok::Star),
            ',' => single(&mut cur, Tok::Comma),
            '.' => single(&mut cur, Tok::Dot),
            '(' => single(&mut cur, Tok::LParen),
            ')' => single(&mut cur, Tok::RParen),
            '=' => single(&mut cur, Tok::Cmp(CmpOp::Eq)),
            '<' => {
                cur.bump();
                match cur.peek() {
                    Some('>') => single(&mut cur, Tok::Cmp(CmpOp::Ne)),
                    Some('=') => single(&mut cur, Tok::Cmp(CmpOp::Le)),
                    _ => Tok::Cmp(CmpOp::Lt),
                }
            }
            '>' => {
                cur.bump();
                match cur.peek() {
                    Some('=') => single(&mut cur, Tok::Cmp(CmpOp::Ge)),
                    _ => Tok::Cmp(CmpOp::Gt),
                }
            }
            '\'' => string(&mut cur, pos)?,
            c if c.is_ascii_digit() => number(&mut cur, pos)?,
            '-' if cur.peek2().is_some_and(|d| d.is_ascii_digit()) => number(&mut cur, pos)?,
            c if is_ident_start(c) => {
                let start = cur.offset;
                cur.eat_while(is_ident_char);
                let word = &src[start..cur.offset];
                match Kw::lookup(word) {
                    Some(kw) => Tok::Kw(kw),
                    None => Tok::Ident(word.to_string()),
                }
            }
            other => {
                return Err(ParseError::new(pos, ParseErrorKind::UnexpectedChar(other)));
            }
        };
        out.push(Token { tok, pos });
    }
}

fn single(cur: &mut Cursor<'_>, tok: Tok) -> Tok {
    cur.bump();
    tok
}

/// `'...'`, with `''` standing for one quote.
fn string(cur: &mut Cursor<'_>, start: Pos) -> Result<Tok, ParseError> {
    cur.bump(); // opening quote
    let mut text = String::new();
    loop {
        match cur.bump() {
            None => return Err(ParseError::new(start, ParseErrorKind::UnterminatedString)),
            Some('\'') if cur.peek() == Some('\'') => {
                cur.bump();
                text.push('\'');
            }
            Some('\'') => return Ok(Tok::Str(text)),
            Some(c) => text.push(c),
        }
    }
}

/// `-?digits(.digits)?([eE][+-]?digits)?`, not followed by a name character.
fn number(cur: &mut Cursor<'_>, start: Pos) -> Result<Tok, ParseError> {
    let from = cur.offset;
    if cur.peek() == Some('-') {
        cur.bump();
    }
    cur.eat_while(|c| c.is_ascii_digit());
    let mut well_formed = true;
    if cur.peek() == Some('.') {
        cur.bump();
        well_formed &= cur.peek().is_some_and(|c| c.is_ascii_digit());
        cur.eat_while(|c| c.is_ascii_digit());
    }
    if matches!(cur.peek(), Some('e' | 'E')) {
        cur.bump();
        if matches!(cur.peek(), Some('+' | '-')) {
            cur.bump();
        }
        well_formed &= cur.peek().is_some_and(|c| c.is_ascii_digit());
        cur.eat_while(|c| c.is_ascii_digit());
    }
    // `12abc` or `1.2.3` is one bad number, not a number and a name.
    if cur.peek().is_some_and(|c| is_ident_char(c) || c == '.') {
        well_formed = false;
        cur.eat_while(|c| is_ident_char(c) || c == '.');
    }
    let text = &cur.src[from..cur.offset];
    let number = if well_formed {
        serde_json::from_str::<Number>(text).ok()
    } else {
        None
    };
    number
        .map(Tok::Num)
        .ok_or_else(|| ParseError::new(start, ParseErrorKind::InvalidNumber(text.to_string())))
}
