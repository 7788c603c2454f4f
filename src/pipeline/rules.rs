//! Business rules across fields: a small expression language, compiled once per vendor.
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" expr ")" | compare
//! compare := operand ("==" | "=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") operand
//! operand := FIELD | 'text' | "text" | NUMBER | true | false
//! ```
//!
//! Comparisons use the fields' types (dates as dates, decimals as numbers); a literal compared
//! with a field is read as that field's type when the rule is compiled, so a typo such as
//! `start_date > '2026-13-01'` is a configuration error, not a silent mismatch. As in SQL, a
//! comparison with an empty field is *unknown*: a `check` passes when its expression is true or
//! unknown (emptiness is the job of `required` and `require`), and a `when` applies only when
//! true.

use crate::config::FieldType;
use crate::pipeline::validate::{FieldCheck, Typed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Operand {
    Field(usize),
    Lit(Lit),
}

#[derive(Debug, Clone)]
enum Lit {
    Str(String),
    Typed(Typed<'static>),
}

#[derive(Debug, Clone)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, Op, Operand),
    Const(bool),
}

/// A compiled expression over a record's typed values.
#[derive(Debug, Clone)]
pub struct Condition {
    expr: Expr,
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Op(Op),
    LParen,
    RParen,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1
            }
            b'\'' | b'"' => {
                let end = s[i + 1..]
                    .find(c as char)
                    .ok_or_else(|| format!("unterminated string starting at column {}", i + 1))?;
                out.push(Tok::Str(s[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = s.get(i..i + 2).unwrap_or("");
                let (op, len) = match two {
                    "==" => (Op::Eq, 2),
                    "!=" | "<>" => (Op::Ne, 2),
                    "<=" => (Op::Le, 2),
                    ">=" => (Op::Ge, 2),
                    _ => match c {
                        b'=' => (Op::Eq, 1),
                        b'<' => (Op::Lt, 1),
                        b'>' => (Op::Gt, 1),
                        _ => return Err(format!("unexpected `!` at column {}", i + 1)),
                    },
                };
                out.push(Tok::Op(op));
                i += len;
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                out.push(Tok::Num(s[start..i].to_string()));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.')
                {
                    i += 1;
                }
                out.push(Tok::Ident(s[start..i].to_string()));
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected {ch:?} at column {}", i + 1));
            }
        }
    }
    Ok(out)
}

/// Most `(` and `not` one inside another in a rule. Parsing and evaluating recurse once per
/// level, so a rule nested thousands deep would overflow the stack instead of being refused.
pub const MAX_NESTING: usize = 64;
/// Most comparisons and constants in one rule: a chain of `and`/`or` is evaluated one level
/// deeper per term, so its length is bounded as nesting is.
pub const MAX_TERMS: usize = 1000;

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    fields: &'a [FieldCheck],
    /// `(` and `not` open around the current token.
    depth: usize,
    /// Comparisons and constants read so far.
    terms: usize,
}

impl Parser<'_> {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_kw("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_kw("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    /// One level deeper (a `(` or a `not`), refused past [`MAX_NESTING`].
    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(format!(
                "nested more than {MAX_NESTING} deep (`(` and `not`): write the rule flatter"
            ));
        }
        Ok(())
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_kw("not") {
            self.pos += 1;
            self.deeper()?;
            let e = Expr::Not(Box::new(self.unary()?));
            self.depth -= 1;
            return Ok(e);
        }
        if self.toks.get(self.pos) == Some(&Tok::LParen) {
            self.pos += 1;
            self.deeper()?;
            let e = self.or()?;
            if self.toks.get(self.pos) != Some(&Tok::RParen) {
                return Err("missing `)`".into());
            }
            self.pos += 1;
            self.depth -= 1;
            return Ok(e);
        }
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(format!(
                "more than {MAX_TERMS} comparisons in one rule: split it into several rules"
            ));
        }
        let left = self.operand()?;
        let op = match self.toks.get(self.pos) {
            Some(Tok::Op(op)) => *op,
            _ => {
                return match left {
                    RawOperand::Bool(b) => Ok(Expr::Const(b)),
                    _ => Err("expected a comparison such as `a >= b`".into()),
                };
            }
        };
        self.pos += 1;
        let right = self.operand()?;
        self.typed_compare(left, op, right)
    }
    fn operand(&mut self) -> Result<RawOperand, String> {
        let tok = self.toks.get(self.pos).cloned();
        self.pos += 1;
        match tok {
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("true") => Ok(RawOperand::Bool(true)),
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("false") => Ok(RawOperand::Bool(false)),
            Some(Tok::Ident(w)) => match self.fields.iter().position(|f| f.name == w) {
                Some(i) => Ok(RawOperand::Field(i)),
                None => Err(format!("unknown field `{w}`")),
            },
            Some(Tok::Str(s)) | Some(Tok::Num(s)) => Ok(RawOperand::Text(s)),
            Some(t) => Err(format!("expected a field or a value, found {t:?}")),
            None => Err("expression ends too early".into()),
        }
    }
    /// Reads literals as the type of the field they are compared with.
    fn typed_compare(&self, l: RawOperand, op: Op, r: RawOperand) -> Result<Expr, String> {
        let lit = |text: String, field: usize| -> Result<Operand, String> {
            let check = &self.fields[field];
            if check.kind == FieldType::String {
                return Ok(Operand::Lit(Lit::Str(text)));
            }
            let typed = check
                .parse(&text)
                .map_err(|v| format!("`{}`: {}", check.name, v.reason))?;
            Ok(Operand::Lit(Lit::Typed(to_static(typed))))
        };
        let bool_lit = |b: bool, field: usize| -> Result<Operand, String> {
            if self.fields[field].kind != FieldType::Boolean {
                return Err(format!("`{}` is not a boolean", self.fields[field].name));
            }
            Ok(Operand::Lit(Lit::Typed(Typed::Bool(b))))
        };
        let (a, b) = match (l, r) {
            (RawOperand::Field(a), RawOperand::Field(b)) => {
                let (ka, kb) = (self.fields[a].kind, self.fields[b].kind);
                if !comparable(ka, kb) {
                    return Err(format!(
                        "`{}` ({ka}) and `{}` ({kb}) cannot be compared",
                        self.fields[a].name, self.fields[b].name
                    ));
                }
                (Operand::Field(a), Operand::Field(b))
            }
            (RawOperand::Field(a), RawOperand::Text(t)) => (Operand::Field(a), lit(t, a)?),
            (RawOperand::Text(t), RawOperand::Field(b)) => (lit(t, b)?, Operand::Field(b)),
            (RawOperand::Field(a), RawOperand::Bool(v)) => (Operand::Field(a), bool_lit(v, a)?),
            (RawOperand::Bool(v), RawOperand::Field(b)) => (bool_lit(v, b)?, Operand::Field(b)),
            _ => return Err("a comparison needs at least one field".into()),
        };
        Ok(Expr::Cmp(a, op, b))
    }
}

enum RawOperand {
    Field(usize),
    Text(String),
    Bool(bool),
}

fn comparable(a: FieldType, b: FieldType) -> bool {
    use FieldType::*;
    a == b
        || matches!((a, b), (Integer, Decimal) | (Decimal, Integer))
        || matches!((a, b), (Date, Timestamp) | (Timestamp, Date))
}

fn to_static(t: Typed<'_>) -> Typed<'static> {
    match t {
        Typed::Null => Typed::Null,
        Typed::Str(_) => Typed::Null, // strings are kept as Lit::Str by the caller
        Typed::Int(v) => Typed::Int(v),
        Typed::Dec(v) => Typed::Dec(v),
        Typed::Date(v) => Typed::Date(v),
        Typed::Ts(v) => Typed::Ts(v),
        Typed::Bool(v) => Typed::Bool(v),
    }
}

impl Condition {
    /// Compiles `text` against the vendor's fields.
    pub fn compile(text: &str, fields: &[FieldCheck]) -> Result<Condition, String> {
        let toks = tokenize(text)?;
        if toks.is_empty() {
            return Err("empty expression".into());
        }
        let mut p = Parser {
            toks,
            pos: 0,
            fields,
            depth: 0,
            terms: 0,
        };
        let expr = p.or()?;
        if p.pos != p.toks.len() {
            return Err(format!(
                "unexpected {:?} after the expression",
                p.toks[p.pos]
            ));
        }
        Ok(Condition {
            expr,
            text: text.to_string(),
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Three-valued: `None` when a compared field is empty.
    pub fn eval(&self, values: &[Typed<'_>]) -> Option<bool> {
        eval(&self.expr, values)
    }
}

fn eval(e: &Expr, v: &[Typed<'_>]) -> Option<bool> {
    match e {
        Expr::Const(b) => Some(*b),
        Expr::Not(x) => eval(x, v).map(|b| !b),
        Expr::And(a, b) => match (eval(a, v), eval(b, v)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Expr::Or(a, b) => match (eval(a, v), eval(b, v)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Expr::Cmp(a, op, b) => {
            let ord = match (resolve(a, v)?, resolve(b, v)?) {
                (Side::T(x), Side::T(y)) => x.compare(y)?,
                (Side::T(Typed::Str(x)), Side::S(y)) => super::text::cmp(x, y),
                (Side::S(x), Side::T(Typed::Str(y))) => super::text::cmp(x, y),
                _ => return None,
            };
            use std::cmp::Ordering::*;
            Some(match op {
                Op::Eq => ord == Equal,
                Op::Ne => ord != Equal,
                Op::Lt => ord == Less,
                Op::Le => ord != Greater,
                Op::Gt => ord == Greater,
                Op::Ge => ord != Less,
            })
        }
    }
}

enum Side<'v, 'a> {
    T(&'v Typed<'a>),
    S(&'v str),
}

fn resolve<'v, 'a>(o: &'v Operand, v: &'v [Typed<'a>]) -> Option<Side<'v, 'a>> {
    match o {
        Operand::Field(i) => match v.get(*i)? {
            Typed::Null => None,
            t => Some(Side::T(t)),
        },
        Operand::Lit(Lit::Str(s)) => Some(Side::S(s)),
        Operand::Lit(Lit::Typed(t)) => Some(Side::T(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FieldConfig;

    fn fields() -> Vec<FieldCheck> {
        let src = [
            "name = 'start_date'\ntype = 'date'",
            "name = 'end_date'\ntype = 'date'",
            "name = 'status'",
            "name = 'amount'\ntype = 'decimal'",
            "name = 'active'\ntype = 'boolean'",
        ];
        src.iter()
            .map(|s| FieldCheck::build(&toml::from_str::<FieldConfig>(s).unwrap()).unwrap())
            .collect()
    }

    fn values<'a>(f: &[FieldCheck], raw: [&'a str; 5]) -> Vec<Typed<'a>> {
        f.iter()
            .zip(raw)
            .map(|(c, r)| c.check(Some(r)).unwrap())
            .collect()
    }

    #[test]
    fn dates_compare_as_dates() {
        let f = fields();
        let c = Condition::compile("end_date >= start_date", &f).unwrap();
        assert_eq!(
            c.eval(&values(&f, ["2026-01-02", "2026-01-10", "", "", ""])),
            Some(true)
        );
        assert_eq!(
            c.eval(&values(&f, ["2026-01-02", "2025-12-31", "", "", ""])),
            Some(false)
        );
        assert_eq!(c.eval(&values(&f, ["2026-01-02", "", "", "", ""])), None);
    }

    #[test]
    fn logic_and_literals() {
        let f = fields();
        let c = Condition::compile(
            "status == 'closed' and (amount > 10 or not active = true)",
            &f,
        )
        .unwrap();
        assert_eq!(
            c.eval(&values(&f, ["", "", "closed", "10.5", "true"])),
            Some(true)
        );
        assert_eq!(
            c.eval(&values(&f, ["", "", "closed", "9", "yes"])),
            Some(false)
        );
        assert_eq!(
            c.eval(&values(&f, ["", "", "closed", "9", "no"])),
            Some(true)
        );
        assert_eq!(c.eval(&values(&f, ["", "", "open", "", ""])), Some(false));
    }

    #[test]
    fn compile_errors_say_what() {
        let f = fields();
        let err = |s: &str| Condition::compile(s, &f).unwrap_err();
        assert_eq!(err("end_dat >= start_date"), "unknown field `end_dat`");
        assert!(err("start_date > '2026-13-01'").contains("is not a date"));
        assert!(err("status > amount").contains("cannot be compared"));
        assert!(err("status == 'x").contains("unterminated"));
        assert!(err("(status == 'x'").contains("missing `)`"));
        assert!(err("status").contains("comparison"));
        assert!(err("status == 'a' 'b'").contains("after the expression"));
        // Deep nesting and long chains are refused, not a stack overflow.
        let deep = |n: usize, open: &str, close: &str| {
            format!("{}status == 'a'{}", open.repeat(n), close.repeat(n))
        };
        assert!(Condition::compile(&deep(MAX_NESTING, "(", ")"), &f).is_ok());
        assert!(err(&deep(MAX_NESTING + 1, "(", ")")).contains("nested more than 64 deep"));
        assert!(err(&deep(10_000, "(", ")")).contains("nested more than 64 deep"));
        assert!(err(&deep(10_000, "not ", "")).contains("nested more than 64 deep"));
        let chain = |n: usize| vec!["status == 'a'"; n].join(" or ");
        let long = Condition::compile(&chain(MAX_TERMS), &f).unwrap();
        let v = values(&f, ["", "", "b", "", ""]);
        assert_eq!(long.eval(&v), Some(false));
        assert!(err(&chain(MAX_TERMS + 1)).contains("more than 1000 comparisons"));
        assert!(err(&chain(50_000)).contains("more than 1000 comparisons"));
    }
}
