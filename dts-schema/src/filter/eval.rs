//! The compiled condition and its evaluation on one row (three-valued: `None` is unknown).

use std::cmp::Ordering;

use dts_core::{Date, DateTime, Decimal, Value};
use sqlparser::ast::BinaryOperator;

use super::like::LikePattern;
use super::Pad;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    pub(crate) fn from_sql(op: &BinaryOperator) -> Option<Self> {
        Some(match op {
            BinaryOperator::Eq => Self::Eq,
            BinaryOperator::NotEq => Self::NotEq,
            BinaryOperator::Lt => Self::Lt,
            BinaryOperator::LtEq => Self::LtEq,
            BinaryOperator::Gt => Self::Gt,
            BinaryOperator::GtEq => Self::GtEq,
            _ => return None,
        })
    }

    /// The operator with its operands swapped (`1 < a` is `a > 1`).
    pub(crate) fn flip(self) -> Self {
        match self {
            Self::Lt => Self::Gt,
            Self::LtEq => Self::GtEq,
            Self::Gt => Self::Lt,
            Self::GtEq => Self::LtEq,
            other => other,
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            Self::Eq => o == Ordering::Equal,
            Self::NotEq => o != Ordering::Equal,
            Self::Lt => o == Ordering::Less,
            Self::LtEq => o != Ordering::Greater,
            Self::Gt => o == Ordering::Greater,
            Self::GtEq => o != Ordering::Less,
        }
    }
}

/// How two values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    Exact,
    Float,
    Text(Pad),
    Bytes,
    Date,
    DateTime,
    Bool,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Side {
    Column(usize),
    /// `None`: a literal that is not a decimal (never built: the compiler parsed it).
    Number(Option<Decimal>),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Date(Date),
    DateTime(DateTime),
    Bool(bool),
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(Option<bool>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Cmp {
        op: CmpOp,
        slot: usize,
        how: How,
        right: Side,
    },
    IsNull {
        slot: usize,
        negated: bool,
    },
    Is {
        inner: Box<Node>,
        want: bool,
        negated: bool,
    },
    Truth {
        slot: usize,
    },
    Like {
        slot: usize,
        pattern: LikePattern,
        trim: bool,
        negated: bool,
    },
}

/// A value of a kind its column's comparison cannot take.
#[derive(Debug)]
pub(crate) struct Mismatch {
    pub slot: usize,
    pub kind: &'static str,
}

type Eval = Result<Option<bool>, Mismatch>;

impl Node {
    /// The condition's truth for the row whose filter columns hold `slots`.
    pub(crate) fn eval(&self, slots: &[&Value]) -> Eval {
        Ok(match self {
            Node::Const(v) => *v,
            Node::And(a, b) => match a.eval(slots)? {
                Some(false) => Some(false),
                x => match (x, b.eval(slots)?) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
            },
            Node::Or(a, b) => match a.eval(slots)? {
                Some(true) => Some(true),
                x => match (x, b.eval(slots)?) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
            },
            Node::Not(a) => a.eval(slots)?.map(|v| !v),
            Node::IsNull { slot, negated } => Some(slots[*slot].is_null() != *negated),
            Node::Is {
                inner,
                want,
                negated,
            } => Some((inner.eval(slots)? == Some(*want)) != *negated),
            Node::Truth { slot } => match slots[*slot] {
                Value::Null => None,
                Value::Bool(b) => Some(*b),
                other => return Err(mismatch(*slot, other)),
            },
            Node::Like {
                slot,
                pattern,
                trim,
                negated,
            } => {
                let v = slots[*slot];
                if v.is_null() {
                    return Ok(None);
                }
                let s = text(*slot, v)?;
                let s = if *trim { s.trim_end_matches(' ') } else { s };
                Some(pattern.matches(s) != *negated)
            }
            Node::Cmp {
                op,
                slot,
                how,
                right,
            } => {
                let left = slots[*slot];
                let right_value;
                let right = match right {
                    Side::Column(i) => {
                        right_value = slots[*i];
                        if right_value.is_null() {
                            return Ok(None);
                        }
                        Operand::Value(*i, right_value)
                    }
                    other => Operand::Side(other),
                };
                if left.is_null() {
                    return Ok(None);
                }
                Some(op.holds(compare(*how, *slot, left, &right)?))
            }
        })
    }
}

enum Operand<'a> {
    Value(usize, &'a Value),
    Side(&'a Side),
}

fn mismatch(slot: usize, v: &Value) -> Mismatch {
    Mismatch {
        slot,
        kind: v.kind(),
    }
}

fn text(slot: usize, v: &Value) -> Result<&str, Mismatch> {
    match v {
        Value::Text(s) => Ok(s),
        Value::Bytes(b) => std::str::from_utf8(b).map_err(|_| mismatch(slot, v)),
        other => Err(mismatch(slot, other)),
    }
}

fn exact(slot: usize, v: &Value) -> Result<Decimal, Mismatch> {
    let text = match v {
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Year(y) => y.to_string(),
        Value::Decimal(d) => return Ok(d.clone()),
        other => return Err(mismatch(slot, other)),
    };
    text.parse().map_err(|_| mismatch(slot, v))
}

#[allow(clippy::cast_precision_loss)]
fn float(slot: usize, v: &Value) -> Result<f64, Mismatch> {
    Ok(match v {
        Value::Float(f) => f64::from(*f),
        Value::Double(d) => *d,
        Value::Int(i) => *i as f64,
        Value::UInt(u) => *u as f64,
        Value::Year(y) => f64::from(*y),
        Value::Decimal(d) => d.as_str().parse().map_err(|_| mismatch(slot, v))?,
        other => return Err(mismatch(slot, other)),
    })
}

/// Floats as both engines order them: NaN equals NaN and is above every number; `-0 = 0`.
fn cmp_float(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Exact decimal order.
pub(crate) fn cmp_decimal(a: &Decimal, b: &Decimal) -> Ordering {
    let zero = |d: &Decimal| {
        d.integer_digits().bytes().all(|c| c == b'0')
            && d.fraction_digits().bytes().all(|c| c == b'0')
    };
    let sign = |d: &Decimal| {
        if zero(d) {
            0
        } else if d.is_negative() {
            -1
        } else {
            1
        }
    };
    let (sa, sb) = (sign(a), sign(b));
    if sa != sb {
        return sa.cmp(&sb);
    }
    let int = |d: &Decimal| d.integer_digits().trim_start_matches('0').to_string();
    let frac = |d: &Decimal| d.fraction_digits().trim_end_matches('0').to_string();
    let (ia, ib) = (int(a), int(b));
    let magnitude = ia
        .len()
        .cmp(&ib.len())
        .then_with(|| ia.cmp(&ib))
        .then_with(|| frac(a).cmp(&frac(b)));
    if sa < 0 {
        magnitude.reverse()
    } else {
        magnitude
    }
}

/// Text order under a padding rule, by code point (UTF-8 bytes order the same way).
fn cmp_text(a: &str, b: &str, pad: Pad) -> Ordering {
    match pad {
        Pad::No => a.cmp(b),
        Pad::Trim => a.trim_end_matches(' ').cmp(b.trim_end_matches(' ')),
        Pad::Space => {
            let (a, b) = (a.as_bytes(), b.as_bytes());
            let n = a.len().min(b.len());
            match a[..n].cmp(&b[..n]) {
                Ordering::Equal => {}
                o => return o,
            }
            // The shorter one continues with spaces.
            for &c in &a[n..] {
                match c.cmp(&b' ') {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            for &c in &b[n..] {
                match b' '.cmp(&c) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            Ordering::Equal
        }
    }
}

fn compare(how: How, slot: usize, left: &Value, right: &Operand<'_>) -> Result<Ordering, Mismatch> {
    Ok(match how {
        How::Exact => {
            let l = exact(slot, left)?;
            let r = match right {
                Operand::Value(i, v) => exact(*i, v)?,
                Operand::Side(Side::Number(Some(d))) => d.clone(),
                _ => return Err(mismatch(slot, left)),
            };
            cmp_decimal(&l, &r)
        }
        How::Float => {
            let l = float(slot, left)?;
            let r = match right {
                Operand::Value(i, v) => float(*i, v)?,
                Operand::Side(Side::Float(f)) => *f,
                _ => return Err(mismatch(slot, left)),
            };
            cmp_float(l, r)
        }
        How::Text(pad) => {
            let l = text(slot, left)?;
            let r = match right {
                Operand::Value(i, v) => text(*i, v)?,
                Operand::Side(Side::Text(s)) => s.as_str(),
                _ => return Err(mismatch(slot, left)),
            };
            cmp_text(l, r, pad)
        }
        How::Bytes => {
            let l: &[u8] = match left {
                Value::Bytes(b) => b,
                Value::Text(s) => s.as_bytes(),
                other => return Err(mismatch(slot, other)),
            };
            let r: &[u8] = match right {
                Operand::Value(_, Value::Bytes(b)) => b,
                Operand::Value(_, Value::Text(s)) => s.as_bytes(),
                Operand::Side(Side::Bytes(b)) => b,
                _ => return Err(mismatch(slot, left)),
            };
            l.cmp(r)
        }
        How::Date => {
            let Value::Date(l) = left else {
                return Err(mismatch(slot, left));
            };
            match right {
                Operand::Value(_, Value::Date(r)) | Operand::Side(Side::Date(r)) => l.cmp(r),
                _ => return Err(mismatch(slot, left)),
            }
        }
        How::DateTime => {
            let Value::DateTime(l) = left else {
                return Err(mismatch(slot, left));
            };
            match right {
                Operand::Value(_, Value::DateTime(r)) | Operand::Side(Side::DateTime(r)) => {
                    l.cmp(r)
                }
                _ => return Err(mismatch(slot, left)),
            }
        }
        How::Bool => {
            let Value::Bool(l) = left else {
                return Err(mismatch(slot, left));
            };
            match right {
                Operand::Value(_, Value::Bool(r)) | Operand::Side(Side::Bool(r)) => l.cmp(r),
                _ => return Err(mismatch(slot, left)),
            }
        }
    })
}
