//! Feature expressions for providers: compiled for the language's own
//! evaluator (row by row), and lowered to a [`RowExpression`] tree that a
//! provider evaluates over whole columns at once.
//!
//! The lowering is faithful or absent: an expression that uses anything
//! the tree cannot say (a `for`, a list, a reference other than `row.NAME`,
//! a template directive) is not lowered, and the provider evaluates it row
//! by row instead. Which functions a provider can evaluate over columns is
//! the provider's business; the tree names every call as written.

use std::collections::BTreeMap;

use mlops_compiler::ast::{BinaryOperator, Expr, ExprKind, StepKind, TemplatePart, UnaryOperator};
use mlops_compiler::residual::{parse_expression, CompiledResidual, ResidualBindings};
use mlops_compiler::value::Value;
use mlops_provider_api::{CompiledExpression, RowBinaryOperator, RowEvaluator, RowExpression, RowUnaryOperator};
use serde_json::Value as Json;

/// Feature expressions evaluated with the language's own evaluator.
pub struct LanguageRowEvaluator;

struct CompiledRowExpression(CompiledResidual);

impl RowEvaluator for LanguageRowEvaluator {
    fn compile(&self, expression: &str) -> Result<Box<dyn CompiledExpression>, String> {
        Ok(Box::new(CompiledRowExpression(CompiledResidual::parse(expression, &ResidualBindings::default())?)))
    }

    fn lower(&self, expression: &str) -> Option<RowExpression> {
        lower(&parse_expression(expression).ok()?)
    }
}

impl CompiledExpression for CompiledRowExpression {
    fn evaluate(&self, row: &BTreeMap<String, Json>) -> Result<Json, String> {
        let row = Value::Map(row.iter().map(|(name, value)| (name.clone(), Value::from_json(value))).collect());
        Ok(self.0.evaluate(None, Some(row))?.to_json_unredacted())
    }
}

/// The tree of `expr`, or `None` where it says what the tree cannot.
pub fn lower(expr: &Expr) -> Option<RowExpression> {
    Some(match &expr.kind {
        ExprKind::Null => RowExpression::Null,
        ExprKind::Bool(flag) => RowExpression::Bool(*flag),
        ExprKind::Number(number) => RowExpression::Number(*number),
        ExprKind::String(text) => RowExpression::String(text.clone()),
        ExprKind::Parenthesis(inner) => lower(inner)?,
        ExprKind::Template(parts) => {
            let mut lowered = Vec::with_capacity(parts.len());
            for part in parts {
                lowered.push(match part {
                    TemplatePart::Literal(text) => RowExpression::String(text.clone()),
                    TemplatePart::Interpolation(inner) => lower(inner)?,
                    TemplatePart::If { .. } | TemplatePart::For { .. } => return None,
                });
            }
            RowExpression::Concat(lowered)
        }
        ExprKind::Traversal { root, steps } => {
            let (ExprKind::Variable(root_name), [step]) = (&root.kind, steps.as_slice()) else { return None };
            if root_name != "row" {
                return None;
            }
            match &step.kind {
                StepKind::GetAttr(name) => RowExpression::Column(name.clone()),
                StepKind::Index(Expr { kind: ExprKind::String(name), .. }) => RowExpression::Column(name.clone()),
                _ => return None,
            }
        }
        ExprKind::Call(call) => {
            if call.expand_final {
                return None;
            }
            let arguments = call.args.iter().map(lower).collect::<Option<Vec<_>>>()?;
            RowExpression::Call { function: call.name.name.clone(), arguments }
        }
        ExprKind::Unary { operator, operand } => RowExpression::Unary {
            operator: match operator {
                UnaryOperator::Neg => RowUnaryOperator::Negate,
                UnaryOperator::Not => RowUnaryOperator::Not,
            },
            operand: Box::new(lower(operand)?),
        },
        ExprKind::Binary { operator, left, right } => RowExpression::Binary {
            operator: match operator {
                BinaryOperator::Plus => RowBinaryOperator::Add,
                BinaryOperator::Minus => RowBinaryOperator::Subtract,
                BinaryOperator::Mul => RowBinaryOperator::Multiply,
                BinaryOperator::Div => RowBinaryOperator::Divide,
                BinaryOperator::Mod => RowBinaryOperator::Modulo,
                BinaryOperator::Less => RowBinaryOperator::Less,
                BinaryOperator::LessEq => RowBinaryOperator::LessOrEqual,
                BinaryOperator::Greater => RowBinaryOperator::Greater,
                BinaryOperator::GreaterEq => RowBinaryOperator::GreaterOrEqual,
                BinaryOperator::Eq => RowBinaryOperator::Equal,
                BinaryOperator::NotEq => RowBinaryOperator::NotEqual,
                BinaryOperator::And => RowBinaryOperator::And,
                BinaryOperator::Or => RowBinaryOperator::Or,
            },
            left: Box::new(lower(left)?),
            right: Box::new(lower(right)?),
        },
        ExprKind::Conditional { condition, then, otherwise } => RowExpression::Conditional {
            condition: Box::new(lower(condition)?),
            then: Box::new(lower(then)?),
            otherwise: Box::new(lower(otherwise)?),
        },
        ExprKind::List(_) | ExprKind::Object(_) | ExprKind::Variable(_) | ExprKind::For(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowered(text: &str) -> Option<RowExpression> {
        LanguageRowEvaluator.lower(text)
    }

    #[test]
    fn columns_operators_and_calls_are_lowered() {
        let column = |name: &str| Box::new(RowExpression::Column(name.to_owned()));
        assert_eq!(
            lowered("log1p(row.amount) * 2 > row[\"limit\"] ? \"high-${row.kind}\" : null"),
            Some(RowExpression::Conditional {
                condition: Box::new(RowExpression::Binary {
                    operator: RowBinaryOperator::Greater,
                    left: Box::new(RowExpression::Binary {
                        operator: RowBinaryOperator::Multiply,
                        left: Box::new(RowExpression::Call {
                            function: "log1p".into(),
                            arguments: vec![RowExpression::Column("amount".into())]
                        }),
                        right: Box::new(RowExpression::Number(2.0)),
                    }),
                    right: column("limit"),
                }),
                then: Box::new(RowExpression::Concat(vec![RowExpression::String("high-".into()), RowExpression::Column("kind".into())])),
                otherwise: Box::new(RowExpression::Null),
            })
        );
        assert_eq!(
            lowered("!(row.a && -row.b < 0)"),
            Some(RowExpression::Unary {
                operator: RowUnaryOperator::Not,
                operand: Box::new(RowExpression::Binary {
                    operator: RowBinaryOperator::And,
                    left: column("a"),
                    right: Box::new(RowExpression::Binary {
                        operator: RowBinaryOperator::Less,
                        left: Box::new(RowExpression::Unary { operator: RowUnaryOperator::Negate, operand: column("b") }),
                        right: Box::new(RowExpression::Number(0.0)),
                    }),
                }),
            })
        );
    }

    #[test]
    fn what_the_tree_cannot_say_is_left_to_the_row_evaluator() {
        for text in [
            "[for x in row.items : x]",
            "row.nested.field",
            "each.value",
            "length([row.a])",
            "{ a = row.a }",
            "max(row.values...)",
            "\"%{if row.a}yes%{endif}\"",
        ] {
            assert_eq!(lowered(text), None, "{text}");
        }
    }
}
