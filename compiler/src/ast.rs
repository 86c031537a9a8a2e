//! The syntax tree the rest of the compiler works on.
//!
//! It is converted from hcl-edit's tree by [`crate::syntax`] and differs from
//! it in two ways that matter: every node carries a [`Span`] into the user's
//! own text (after undoing the comma rewrite), and it holds only what the
//! compiler needs (no whitespace or comment decoration; the formatter works on
//! tokens instead).

use crate::source::Span;

pub use hcl_edit::expr::{BinaryOperator, UnaryOperator};

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<Block>,
    pub span: Span,
}

impl Body {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|attribute| attribute.name.name == name)
    }

    pub fn blocks_named<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.blocks.iter().filter(move |block| block.kind.name == kind)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BlockLabel {
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub kind: Ident,
    pub labels: Vec<BlockLabel>,
    pub body: Body,
    pub span: Span,
}

impl Block {
    /// The span from the block keyword to its last label: where to point when
    /// the block as a whole is at fault.
    pub fn header_span(&self) -> Span {
        self.labels.last().map_or(self.kind.span, |label| self.kind.span.to(label.span))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Template(Vec<TemplatePart>),
    List(Vec<Expr>),
    Object(Vec<ObjectItem>),
    /// A bare name: the root of a reference (`var`, `dataset`, `each`, a `for` variable).
    Variable(String),
    Traversal {
        root: Box<Expr>,
        steps: Vec<TraversalStep>,
    },
    /// Boxed: the largest variant otherwise, and every expression of a
    /// large configuration paid for its size.
    Call(Box<Call>),
    Unary {
        operator: UnaryOperator,
        operand: Box<Expr>,
    },
    Binary {
        operator: BinaryOperator,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Conditional {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    For(Box<ForExpr>),
    Parenthesis(Box<Expr>),
}

/// A function call: `name(args...)`, with `...` after the last argument
/// when `expand_final`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Expr>,
    pub expand_final: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectItem {
    pub key: ObjectKey,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ObjectKey {
    /// `name = ...`: the identifier is the key itself.
    Ident(Ident),
    /// `"name" = ...` or `(expr) = ...`.
    Expr(Expr),
}

impl ObjectKey {
    pub fn span(&self) -> Span {
        match self {
            ObjectKey::Ident(ident) => ident.span,
            ObjectKey::Expr(expr) => expr.span,
        }
    }

    /// The key when it is a literal (identifier or plain string).
    pub fn literal(&self) -> Option<&str> {
        match self {
            ObjectKey::Ident(ident) => Some(&ident.name),
            ObjectKey::Expr(Expr { kind: ExprKind::String(text), .. }) => Some(text),
            ObjectKey::Expr(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraversalStep {
    pub kind: StepKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    GetAttr(String),
    Index(Expr),
    /// `.*`
    AttrSplat,
    /// `[*]`
    FullSplat,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    Literal(String),
    Interpolation(Expr),
    If { condition: Expr, then: Vec<TemplatePart>, otherwise: Vec<TemplatePart> },
    For { key_var: Option<Ident>, value_var: Ident, collection: Expr, body: Vec<TemplatePart> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForExpr {
    pub key_var: Option<Ident>,
    pub value_var: Ident,
    pub collection: Expr,
    /// Present for object-producing `{ for ... : k => v }` expressions.
    pub key_expr: Option<Expr>,
    pub value_expr: Expr,
    pub condition: Option<Expr>,
    pub grouping: bool,
}

impl Expr {
    /// Calls `visit` on this expression and every expression inside it.
    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Expr)) {
        visit(self);
        match &self.kind {
            ExprKind::Null | ExprKind::Bool(_) | ExprKind::Number(_) | ExprKind::String(_) | ExprKind::Variable(_) => {}
            ExprKind::Template(parts) => walk_template(parts, visit),
            ExprKind::List(items) => items.iter().for_each(|item| item.walk(visit)),
            ExprKind::Object(items) => {
                for item in items {
                    if let ObjectKey::Expr(key) = &item.key {
                        key.walk(visit);
                    }
                    item.value.walk(visit);
                }
            }
            ExprKind::Traversal { root, steps } => {
                root.walk(visit);
                for step in steps {
                    if let StepKind::Index(index) = &step.kind {
                        index.walk(visit);
                    }
                }
            }
            ExprKind::Call(call) => call.args.iter().for_each(|arg| arg.walk(visit)),
            ExprKind::Unary { operand, .. } => operand.walk(visit),
            ExprKind::Binary { left, right, .. } => {
                left.walk(visit);
                right.walk(visit);
            }
            ExprKind::Conditional { condition, then, otherwise } => {
                condition.walk(visit);
                then.walk(visit);
                otherwise.walk(visit);
            }
            ExprKind::For(for_expr) => {
                for_expr.collection.walk(visit);
                if let Some(key) = &for_expr.key_expr {
                    key.walk(visit);
                }
                for_expr.value_expr.walk(visit);
                if let Some(condition) = &for_expr.condition {
                    condition.walk(visit);
                }
            }
            ExprKind::Parenthesis(inner) => inner.walk(visit),
        }
    }

    /// The static reference path this expression names, if it is a plain
    /// reference: `dataset.transactions.version` gives
    /// `[("dataset", span), ("transactions", span), ("version", span)]`.
    /// Index steps with literal keys are included as their text.
    pub fn reference_path(&self) -> Option<Vec<(String, Span)>> {
        match &self.kind {
            ExprKind::Variable(name) => Some(vec![(name.clone(), self.span)]),
            ExprKind::Traversal { root, steps } => {
                let ExprKind::Variable(name) = &root.kind else { return None };
                let mut path = vec![(name.clone(), root.span)];
                for step in steps {
                    match &step.kind {
                        StepKind::GetAttr(attribute) => path.push((attribute.clone(), step.span)),
                        StepKind::Index(Expr { kind: ExprKind::String(key), .. }) => path.push((key.clone(), step.span)),
                        StepKind::Index(Expr { kind: ExprKind::Number(number), .. }) => path.push((number.to_string(), step.span)),
                        _ => break,
                    }
                }
                Some(path)
            }
            _ => None,
        }
    }
}

fn walk_template<'a>(parts: &'a [TemplatePart], visit: &mut dyn FnMut(&'a Expr)) {
    for part in parts {
        match part {
            TemplatePart::Literal(_) => {}
            TemplatePart::Interpolation(expr) => expr.walk(visit),
            TemplatePart::If { condition, then, otherwise } => {
                condition.walk(visit);
                walk_template(then, visit);
                walk_template(otherwise, visit);
            }
            TemplatePart::For { collection, body, .. } => {
                collection.walk(visit);
                walk_template(body, visit);
            }
        }
    }
}
