//! Feature expressions evaluated over whole columns: a [`RowExpression`]
//! tree run once per batch instead of once per row.
//!
//! The language's evaluator is the reference. Where a column kernel cannot
//! be sure to give its value or its error (a null operand, a division by
//! zero, a value outside a function's domain, operands of mixed types), it
//! marks the row *deferred*, and the caller evaluates that row again with
//! the compiled expression, which gives the exact value or the exact error.
//! An expression using what no kernel does is evaluated row by row whole.

use std::borrow::Cow;

use mlops_provider_api::{RowBinaryOperator, RowExpression, RowUnaryOperator};
use serde_json::Value as Json;

use crate::frame::{Batch, ColumnData};

/// The functions the kernels evaluate.
const FUNCTIONS: &[&str] = &["abs", "ceil", "floor", "exp", "log1p", "log", "min", "max", "lower", "upper", "tonumber"];

/// Whether every node of `expression` has a kernel.
pub fn supported(expression: &RowExpression) -> bool {
    match expression {
        RowExpression::Column(_) | RowExpression::Null | RowExpression::Bool(_) | RowExpression::Number(_) | RowExpression::String(_) => {
            true
        }
        RowExpression::Unary { operand, .. } => supported(operand),
        RowExpression::Binary { left, right, .. } => supported(left) && supported(right),
        RowExpression::Conditional { condition, then, otherwise } => supported(condition) && supported(then) && supported(otherwise),
        RowExpression::Call { function, arguments } => {
            FUNCTIONS.contains(&function.as_str()) && !arguments.is_empty() && arguments.iter().all(supported)
        }
        RowExpression::Concat(parts) => parts.iter().all(supported),
    }
}

/// The columns `expression` reads.
pub fn columns_read(expression: &RowExpression, into: &mut Vec<String>) {
    match expression {
        RowExpression::Column(name) => {
            if !into.contains(name) {
                into.push(name.clone());
            }
        }
        RowExpression::Null | RowExpression::Bool(_) | RowExpression::Number(_) | RowExpression::String(_) => {}
        RowExpression::Unary { operand, .. } => columns_read(operand, into),
        RowExpression::Binary { left, right, .. } => {
            columns_read(left, into);
            columns_read(right, into);
        }
        RowExpression::Conditional { condition, then, otherwise } => {
            columns_read(condition, into);
            columns_read(then, into);
            columns_read(otherwise, into);
        }
        RowExpression::Call { arguments, .. } => arguments.iter().for_each(|argument| columns_read(argument, into)),
        RowExpression::Concat(parts) => parts.iter().for_each(|part| columns_read(part, into)),
    }
}

/// A column of values. `Mixed` is what no kernel handles: every row of it
/// is deferred.
#[derive(Debug, Clone)]
pub enum Vector<'a> {
    Number(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<Cow<'a, str>>>),
    /// Every value null, whatever its type.
    Null,
    Mixed,
}

/// The result of evaluating a feature over a batch.
pub struct Evaluated<'a> {
    pub vector: Vector<'a>,
    /// Rows whose value the compiled expression must give.
    pub deferred: Vec<bool>,
}

impl Evaluated<'_> {
    pub fn all_deferred(&self) -> bool {
        matches!(self.vector, Vector::Mixed)
    }
}

/// Evaluates `expression` over the batch.
pub fn evaluate<'a>(expression: &RowExpression, batch: &'a Batch) -> Evaluated<'a> {
    let mut deferred = vec![false; batch.rows];
    let vector = Kernels { batch, rows: batch.rows, deferred: &mut deferred }.eval(expression);
    Evaluated { vector, deferred }
}

struct Kernels<'a, 'd> {
    batch: &'a Batch,
    rows: usize,
    deferred: &'d mut Vec<bool>,
}

/// One value, for the kernels that compare across types.
#[derive(PartialEq)]
enum Scalar<'s> {
    Null,
    Number(f64),
    Bool(bool),
    Text(&'s str),
}

impl<'a> Vector<'a> {
    fn scalar(&self, index: usize) -> Scalar<'_> {
        match self {
            Vector::Number(values) => values[index].map_or(Scalar::Null, Scalar::Number),
            Vector::Bool(values) => values[index].map_or(Scalar::Null, Scalar::Bool),
            Vector::Text(values) => values[index].as_deref().map_or(Scalar::Null, Scalar::Text),
            Vector::Null | Vector::Mixed => Scalar::Null,
        }
    }
}

impl<'a> Kernels<'a, '_> {
    fn defer(&mut self, index: usize) {
        self.deferred[index] = true;
    }

    fn eval(&mut self, expression: &RowExpression) -> Vector<'a> {
        match expression {
            RowExpression::Null => Vector::Null,
            RowExpression::Bool(flag) => Vector::Bool(vec![Some(*flag); self.rows]),
            RowExpression::Number(number) => Vector::Number(vec![Some(*number); self.rows]),
            RowExpression::String(text) => Vector::Text(vec![Some(Cow::Owned(text.clone())); self.rows]),
            RowExpression::Column(name) => self.column(name),
            RowExpression::Unary { operator, operand } => {
                let operand = self.eval(operand);
                match (operator, operand) {
                    (RowUnaryOperator::Negate, Vector::Number(values)) => {
                        Vector::Number(self.map_present(values, |_, number| Some(-number)))
                    }
                    (RowUnaryOperator::Not, Vector::Bool(values)) => {
                        let mut out = Vec::with_capacity(values.len());
                        for (index, value) in values.into_iter().enumerate() {
                            if value.is_none() {
                                self.defer(index);
                            }
                            out.push(value.map(|flag| !flag));
                        }
                        Vector::Bool(out)
                    }
                    _ => Vector::Mixed,
                }
            }
            RowExpression::Binary { operator, left, right } => {
                let (left, right) = (self.eval(left), self.eval(right));
                self.binary(*operator, left, right)
            }
            RowExpression::Conditional { condition, then, otherwise } => {
                let condition = self.eval(condition);
                let (then, otherwise) = (self.eval(then), self.eval(otherwise));
                self.conditional(condition, then, otherwise)
            }
            RowExpression::Call { function, arguments } => {
                let arguments: Vec<Vector<'a>> = arguments.iter().map(|argument| self.eval(argument)).collect();
                self.call(function, arguments)
            }
            RowExpression::Concat(parts) => {
                let mut out: Vec<Option<Cow<'a, str>>> = vec![Some(Cow::Borrowed("")); self.rows];
                for part in parts {
                    let Vector::Text(values) = self.eval(part) else { return Vector::Mixed };
                    for (index, (joined, value)) in out.iter_mut().zip(values).enumerate() {
                        match value {
                            Some(text) => {
                                if let Some(joined) = joined {
                                    joined.to_mut().push_str(&text);
                                }
                            }
                            None => {
                                // Interpolating a null: the evaluator says what happens.
                                *joined = None;
                                self.deferred[index] = true;
                            }
                        }
                    }
                }
                Vector::Text(out)
            }
        }
    }

    fn column(&mut self, name: &str) -> Vector<'a> {
        let Some(position) = self.batch.names.iter().position(|candidate| candidate == name) else { return Vector::Mixed };
        let Some(data) = self.batch.columns[position].as_ref() else { return Vector::Mixed };
        match data {
            ColumnData::Int(values) => Vector::Number(values.iter().map(|value| value.map(|number| number as f64)).collect()),
            ColumnData::Float(values) => Vector::Number(values.clone()),
            ColumnData::Bool(values) => Vector::Bool(values.clone()),
            ColumnData::Text(values) => Vector::Text(values.iter().map(|value| value.map(Cow::Borrowed)).collect()),
            ColumnData::Dynamic(values) => self.dynamic(values),
        }
    }

    /// A schema-less column: typed by its first value; other rows deferred.
    fn dynamic(&mut self, values: &'a [Json]) -> Vector<'a> {
        match values.iter().find(|value| !value.is_null()) {
            None => Vector::Null,
            Some(Json::Number(_)) => Vector::Number(
                values
                    .iter()
                    .enumerate()
                    .map(|(index, value)| match value {
                        Json::Number(number) => number.as_f64(),
                        Json::Null => None,
                        _ => {
                            self.deferred[index] = true;
                            None
                        }
                    })
                    .collect(),
            ),
            Some(Json::Bool(_)) => Vector::Bool(
                values
                    .iter()
                    .enumerate()
                    .map(|(index, value)| match value {
                        Json::Bool(flag) => Some(*flag),
                        Json::Null => None,
                        _ => {
                            self.deferred[index] = true;
                            None
                        }
                    })
                    .collect(),
            ),
            Some(Json::String(_)) => Vector::Text(
                values
                    .iter()
                    .enumerate()
                    .map(|(index, value)| match value {
                        Json::String(text) => Some(Cow::Borrowed(text.as_str())),
                        Json::Null => None,
                        _ => {
                            self.deferred[index] = true;
                            None
                        }
                    })
                    .collect(),
            ),
            Some(_) => Vector::Mixed,
        }
    }

    /// Applies `operation` to each present number; null inputs and `None`
    /// results are deferred.
    fn map_present(&mut self, values: Vec<Option<f64>>, operation: impl Fn(usize, f64) -> Option<f64>) -> Vec<Option<f64>> {
        let mut out = values;
        for (index, value) in out.iter_mut().enumerate() {
            match value.and_then(|number| operation(index, number)) {
                Some(result) => *value = Some(result),
                None => {
                    *value = None;
                    self.deferred[index] = true;
                }
            }
        }
        out
    }

    fn binary(&mut self, operator: RowBinaryOperator, left: Vector<'a>, right: Vector<'a>) -> Vector<'a> {
        use RowBinaryOperator::*;
        if matches!(left, Vector::Mixed) || matches!(right, Vector::Mixed) {
            return Vector::Mixed;
        }
        match operator {
            Equal | NotEqual => {
                let mut out = Vec::with_capacity(self.rows);
                for index in 0..self.rows {
                    let (a, b) = (left.scalar(index), right.scalar(index));
                    let equal = match (&a, &b) {
                        (Scalar::Number(a), Scalar::Number(b)) => a == b,
                        _ => a == b,
                    };
                    out.push(Some(equal == (operator == Equal)));
                }
                Vector::Bool(out)
            }
            And | Or => {
                let (Vector::Bool(left), Vector::Bool(right)) = (left, right) else { return Vector::Mixed };
                let mut out = Vec::with_capacity(self.rows);
                for (index, (a, b)) in left.into_iter().zip(right).enumerate() {
                    match (a, b) {
                        (Some(a), Some(b)) => out.push(Some(if operator == And { a && b } else { a || b })),
                        _ => {
                            self.defer(index);
                            out.push(None);
                        }
                    }
                }
                Vector::Bool(out)
            }
            Add | Subtract | Multiply | Divide | Modulo | Less | LessOrEqual | Greater | GreaterOrEqual => {
                let (Vector::Number(left), Vector::Number(right)) = (left, right) else { return Vector::Mixed };
                let comparison = matches!(operator, Less | LessOrEqual | Greater | GreaterOrEqual);
                let mut numbers = Vec::with_capacity(if comparison { 0 } else { self.rows });
                let mut flags = Vec::with_capacity(if comparison { self.rows } else { 0 });
                for (index, (a, b)) in left.into_iter().zip(right).enumerate() {
                    let (Some(a), Some(b)) = (a, b) else {
                        self.defer(index);
                        numbers.push(None);
                        flags.push(None);
                        continue;
                    };
                    match operator {
                        Add => numbers.push(Some(a + b)),
                        Subtract => numbers.push(Some(a - b)),
                        Multiply => numbers.push(Some(a * b)),
                        Divide | Modulo if b == 0.0 => {
                            self.defer(index);
                            numbers.push(None);
                        }
                        Divide => numbers.push(Some(a / b)),
                        Modulo => numbers.push(Some(a % b)),
                        Less => flags.push(Some(a < b)),
                        LessOrEqual => flags.push(Some(a <= b)),
                        Greater => flags.push(Some(a > b)),
                        _ => flags.push(Some(a >= b)),
                    }
                }
                if comparison {
                    flags.truncate(self.rows);
                    Vector::Bool(flags)
                } else {
                    numbers.truncate(self.rows);
                    Vector::Number(numbers)
                }
            }
        }
    }

    fn conditional(&mut self, condition: Vector<'a>, then: Vector<'a>, otherwise: Vector<'a>) -> Vector<'a> {
        let Vector::Bool(condition) = condition else { return Vector::Mixed };
        for (index, flag) in condition.iter().enumerate() {
            if flag.is_none() {
                self.defer(index);
            }
        }
        let pick = |index: usize| condition[index].unwrap_or(false);
        match (then, otherwise) {
            (Vector::Null, Vector::Null) => Vector::Null,
            (Vector::Number(a), Vector::Number(b)) => {
                Vector::Number(a.into_iter().zip(b).enumerate().map(|(index, (a, b))| if pick(index) { a } else { b }).collect())
            }
            (Vector::Number(a), Vector::Null) => {
                Vector::Number(a.into_iter().enumerate().map(|(index, a)| if pick(index) { a } else { None }).collect())
            }
            (Vector::Null, Vector::Number(b)) => {
                Vector::Number(b.into_iter().enumerate().map(|(index, b)| if pick(index) { None } else { b }).collect())
            }
            (Vector::Bool(a), Vector::Bool(b)) => {
                Vector::Bool(a.into_iter().zip(b).enumerate().map(|(index, (a, b))| if pick(index) { a } else { b }).collect())
            }
            (Vector::Bool(a), Vector::Null) => {
                Vector::Bool(a.into_iter().enumerate().map(|(index, a)| if pick(index) { a } else { None }).collect())
            }
            (Vector::Null, Vector::Bool(b)) => {
                Vector::Bool(b.into_iter().enumerate().map(|(index, b)| if pick(index) { None } else { b }).collect())
            }
            (Vector::Text(a), Vector::Text(b)) => {
                Vector::Text(a.into_iter().zip(b).enumerate().map(|(index, (a, b))| if pick(index) { a } else { b }).collect())
            }
            (Vector::Text(a), Vector::Null) => {
                Vector::Text(a.into_iter().enumerate().map(|(index, a)| if pick(index) { a } else { None }).collect())
            }
            (Vector::Null, Vector::Text(b)) => {
                Vector::Text(b.into_iter().enumerate().map(|(index, b)| if pick(index) { None } else { b }).collect())
            }
            _ => Vector::Mixed,
        }
    }

    fn call(&mut self, function: &str, mut arguments: Vec<Vector<'a>>) -> Vector<'a> {
        if arguments.iter().any(|argument| matches!(argument, Vector::Mixed)) {
            return Vector::Mixed;
        }
        match (function, arguments.len()) {
            ("abs" | "ceil" | "floor" | "exp" | "log1p", 1) => {
                let Some(Vector::Number(values)) = arguments.pop() else { return Vector::Mixed };
                let operation: fn(f64) -> Option<f64> = match function {
                    "abs" => |number| Some(number.abs()),
                    "ceil" => |number| Some(number.ceil()),
                    "floor" => |number| Some(number.floor()),
                    "exp" => |number| Some(number.exp()),
                    _ => |number: f64| (number > -1.0).then(|| number.ln_1p()),
                };
                Vector::Number(self.map_present(values, |_, number| operation(number)))
            }
            ("log", 2) => {
                let (Some(Vector::Number(bases)), Some(Vector::Number(values))) = (arguments.pop(), arguments.pop()) else {
                    return Vector::Mixed;
                };
                Vector::Number(self.map_present(values, |index, number| {
                    let base = bases[index]?;
                    (number > 0.0 && base > 0.0 && base != 1.0).then(|| number.ln() / base.ln())
                }))
            }
            ("min" | "max", _) => {
                let mut columns = Vec::with_capacity(arguments.len());
                for argument in arguments {
                    let Vector::Number(values) = argument else { return Vector::Mixed };
                    columns.push(values);
                }
                let mut out = Vec::with_capacity(self.rows);
                for index in 0..self.rows {
                    let mut folded = if function == "min" { f64::INFINITY } else { f64::NEG_INFINITY };
                    let mut present = true;
                    for column in &columns {
                        match column[index] {
                            Some(number) => folded = if function == "min" { folded.min(number) } else { folded.max(number) },
                            None => present = false,
                        }
                    }
                    if !present {
                        self.defer(index);
                    }
                    out.push(present.then_some(folded));
                }
                Vector::Number(out)
            }
            ("lower" | "upper", 1) => {
                let Some(Vector::Text(values)) = arguments.pop() else { return Vector::Mixed };
                let mut out = Vec::with_capacity(values.len());
                for (index, value) in values.into_iter().enumerate() {
                    match value {
                        Some(text) => {
                            out.push(Some(Cow::Owned(if function == "lower" { text.to_lowercase() } else { text.to_uppercase() })))
                        }
                        None => {
                            self.defer(index);
                            out.push(None);
                        }
                    }
                }
                Vector::Text(out)
            }
            ("tonumber", 1) => match arguments.pop() {
                Some(Vector::Number(values)) => Vector::Number(values),
                Some(Vector::Null) => Vector::Null,
                Some(Vector::Text(values)) => {
                    let mut out = Vec::with_capacity(values.len());
                    for (index, value) in values.into_iter().enumerate() {
                        match value {
                            None => out.push(None),
                            Some(text) => match text.trim().parse::<f64>() {
                                Ok(number) => out.push(Some(number)),
                                Err(_) => {
                                    self.defer(index);
                                    out.push(None);
                                }
                            },
                        }
                    }
                    Vector::Number(out)
                }
                _ => Vector::Mixed,
            },
            _ => Vector::Mixed,
        }
    }
}
