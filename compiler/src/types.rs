//! Types: what the checker knows about a value before it is known.
//!
//! The language's types are `string`, `number`, `bool`, `list(T)`, `set(T)`,
//! `map(T)`, `object({...})`, `tuple([...])` and `any`, plus resource types:
//! a reference such as `dataset.transactions` has type `dataset`, whose
//! attributes come from the stdlib schema. Schemas may also say
//! `ref(dataset, feature_set)`: a reference to any of the listed kinds.

use std::collections::BTreeMap;
use std::fmt;

use crate::ast::{Expr, ExprKind, ObjectKey};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    /// Anything; also the type of values whose type could not be determined
    /// (after an error), so that one mistake is reported once.
    Any,
    Bool,
    Number,
    String,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
    /// A reference to a resource of one of these kinds.
    Resource(Vec<String>),
}

/// How a data source's kind is named in a reference type.
const DATA_TYPE_PREFIX: &str = "data.";

/// The reference type name of a data source of `kind`.
pub fn data_type_name(kind: &str) -> String {
    format!("{DATA_TYPE_PREFIX}{kind}")
}

/// The data source kind a reference type name stands for, if it is one.
pub fn data_source_kind(type_name: &str) -> Option<&str> {
    type_name.strip_prefix(DATA_TYPE_PREFIX)
}

impl Type {
    pub fn list(element: Type) -> Type {
        Type::List(Box::new(element))
    }

    pub fn map(element: Type) -> Type {
        Type::Map(Box::new(element))
    }

    pub fn resource(kind: &str) -> Type {
        Type::Resource(vec![kind.to_owned()])
    }

    /// The type of a data source of `kind`: `ref(data.KIND)`. It is accepted
    /// where a resource of the same kind is (a `data "dataset"` where a
    /// dataset is expected), but its attributes are the data source's.
    pub fn data_source(kind: &str) -> Type {
        Type::Resource(vec![data_type_name(kind)])
    }

    /// The type of a resource or a data source of `kind`.
    pub fn reference(kind: &str, is_data: bool) -> Type {
        if is_data {
            Type::data_source(kind)
        } else {
            Type::resource(kind)
        }
    }

    pub fn is_any(&self) -> bool {
        matches!(self, Type::Any)
    }

    /// Whether a value of type `actual` can be used where `self` is expected,
    /// allowing the conversions the language does implicitly (numbers and
    /// bools to strings, tuples to lists, objects to maps).
    pub fn accepts(&self, actual: &Type) -> bool {
        match (self, actual) {
            (Type::Any, _) | (_, Type::Any) => true,
            (Type::String, Type::String | Type::Number | Type::Bool) => true,
            (Type::Number, Type::Number) | (Type::Bool, Type::Bool) => true,
            (Type::List(element) | Type::Set(element), Type::List(actual) | Type::Set(actual)) => element.accepts(actual),
            (Type::List(element) | Type::Set(element), Type::Tuple(items)) => items.iter().all(|item| element.accepts(item)),
            (Type::Map(element), Type::Map(actual)) => element.accepts(actual),
            (Type::Map(element), Type::Object(fields)) => fields.values().all(|field| element.accepts(field)),
            (Type::Object(expected), Type::Object(fields)) => {
                fields.iter().all(|(name, field)| expected.get(name).is_none_or(|expected| expected.accepts(field)))
            }
            (Type::Object(expected), Type::Map(element)) => expected.values().all(|field| field.accepts(element)),
            (Type::Tuple(expected), Type::Tuple(items)) => {
                expected.len() == items.len() && expected.iter().zip(items).all(|(expected, item)| expected.accepts(item))
            }
            (Type::Tuple(expected), Type::List(element)) => expected.iter().all(|expected| expected.accepts(element)),
            (Type::Resource(kinds), Type::Resource(actual)) => actual.iter().all(|kind| {
                kinds.contains(kind) || data_source_kind(kind).is_some_and(|read| kinds.iter().any(|expected| expected == read))
            }),
            _ => false,
        }
    }

    /// The element type of a collection, if this is one.
    pub fn element(&self) -> Option<Type> {
        match self {
            Type::List(element) | Type::Set(element) | Type::Map(element) => Some((**element).clone()),
            Type::Tuple(items) => Some(unify(items.iter().cloned())),
            Type::Object(fields) => Some(unify(fields.values().cloned())),
            Type::Any => Some(Type::Any),
            _ => None,
        }
    }

    pub fn is_collection(&self) -> bool {
        matches!(self, Type::List(_) | Type::Set(_) | Type::Map(_) | Type::Tuple(_) | Type::Object(_) | Type::Any)
    }

    pub fn is_sequence(&self) -> bool {
        matches!(self, Type::List(_) | Type::Set(_) | Type::Tuple(_) | Type::Any)
    }

    pub fn is_mapping(&self) -> bool {
        matches!(self, Type::Map(_) | Type::Object(_) | Type::Any)
    }
}

/// The most specific type covering all of `types`; `any` when they disagree.
pub fn unify(types: impl IntoIterator<Item = Type>) -> Type {
    let mut result: Option<Type> = None;
    for item in types {
        result = Some(match result {
            None => item,
            Some(current) if current == item => current,
            Some(Type::Any) => item,
            Some(current) if item.is_any() => current,
            Some(Type::Resource(mut kinds)) => match item {
                Type::Resource(more) => {
                    for kind in more {
                        if !kinds.contains(&kind) {
                            kinds.push(kind);
                        }
                    }
                    Type::Resource(kinds)
                }
                _ => return Type::Any,
            },
            Some(Type::String) if matches!(item, Type::Number | Type::Bool) => Type::String,
            Some(Type::Number | Type::Bool) if item == Type::String => Type::String,
            Some(_) => return Type::Any,
        });
    }
    result.unwrap_or(Type::Any)
}

impl fmt::Display for Type {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Any => formatter.write_str("any"),
            Type::Bool => formatter.write_str("bool"),
            Type::Number => formatter.write_str("number"),
            Type::String => formatter.write_str("string"),
            Type::List(element) => write!(formatter, "list({element})"),
            Type::Set(element) => write!(formatter, "set({element})"),
            Type::Map(element) => write!(formatter, "map({element})"),
            Type::Object(fields) => {
                formatter.write_str("object({")?;
                for (index, (name, field)) in fields.iter().enumerate() {
                    if index > 0 {
                        formatter.write_str(", ")?;
                    }
                    write!(formatter, "{name} = {field}")?;
                }
                formatter.write_str("})")
            }
            Type::Tuple(items) => {
                formatter.write_str("tuple([")?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        formatter.write_str(", ")?;
                    }
                    write!(formatter, "{item}")?;
                }
                formatter.write_str("])")
            }
            Type::Resource(kinds) => write!(formatter, "ref({})", kinds.join(", ")),
        }
    }
}

/// Why a type expression could not be read.
#[derive(Debug, Clone)]
pub struct TypeExprError {
    pub span: crate::source::Span,
    pub message: String,
    pub suggestion: Option<String>,
}

const TYPE_NAMES: &[&str] = &["string", "number", "bool", "any", "list", "set", "map", "object", "tuple"];

/// Reads a type constraint such as `list(string)` or
/// `object({ name = string })`. `allow_references` admits the stdlib-only
/// `ref(kind, ...)` form.
pub fn parse_type_expr(expr: &Expr, allow_references: bool) -> Result<Type, TypeExprError> {
    let error = |message: String, suggestion: Option<String>| TypeExprError { span: expr.span, message, suggestion };
    match &expr.kind {
        ExprKind::Variable(name) => match name.as_str() {
            "string" => Ok(Type::String),
            "number" => Ok(Type::Number),
            "bool" => Ok(Type::Bool),
            "any" => Ok(Type::Any),
            "list" | "set" | "map" | "object" | "tuple" => {
                Err(error(format!("`{name}` needs an element type"), Some(format!("write `{name}(string)` or similar"))))
            }
            other => Err(error(
                format!("`{other}` is not a type"),
                crate::suggest::did_you_mean(other, TYPE_NAMES.iter().copied()).or(match other {
                    "int" | "integer" | "float" | "double" => Some("did you mean `number`?".to_owned()),
                    "boolean" => Some("did you mean `bool`?".to_owned()),
                    "str" => Some("did you mean `string`?".to_owned()),
                    _ => None,
                }),
            )),
        },
        ExprKind::Call(call) => {
            let (name, args) = (&call.name, &call.args);
            let single = || -> Result<Type, TypeExprError> {
                match args.as_slice() {
                    [argument] => parse_type_expr(argument, allow_references),
                    _ => Err(error(format!("`{}` takes exactly one element type", name.name), None)),
                }
            };
            match name.name.as_str() {
                "list" => Ok(Type::List(Box::new(single()?))),
                "set" => Ok(Type::Set(Box::new(single()?))),
                "map" => Ok(Type::Map(Box::new(single()?))),
                "object" => match args.as_slice() {
                    [Expr { kind: ExprKind::Object(items), .. }] => {
                        let mut fields = BTreeMap::new();
                        for item in items {
                            let Some(key) = item.key.literal() else {
                                return Err(TypeExprError {
                                    span: item.key.span(),
                                    message: "object type attribute names must be literal".to_owned(),
                                    suggestion: None,
                                });
                            };
                            fields.insert(key.to_owned(), parse_type_expr(&item.value, allow_references)?);
                        }
                        Ok(Type::Object(fields))
                    }
                    _ => Err(error(
                        "`object` takes one object of attribute types".to_owned(),
                        Some("write `object({ name = string, size = number })`".to_owned()),
                    )),
                },
                "tuple" => match args.as_slice() {
                    [Expr { kind: ExprKind::List(items), .. }] => {
                        items.iter().map(|item| parse_type_expr(item, allow_references)).collect::<Result<_, _>>().map(Type::Tuple)
                    }
                    _ => {
                        Err(error("`tuple` takes one list of element types".to_owned(), Some("write `tuple([string, number])`".to_owned())))
                    }
                },
                "ref" if allow_references => {
                    let mut kinds = Vec::new();
                    for argument in args {
                        match &argument.kind {
                            ExprKind::Variable(kind) => kinds.push(kind.clone()),
                            _ => return Err(error("`ref` takes kind names".to_owned(), None)),
                        }
                    }
                    Ok(Type::Resource(kinds))
                }
                other => {
                    Err(error(format!("`{other}(...)` is not a type"), crate::suggest::did_you_mean(other, TYPE_NAMES.iter().copied())))
                }
            }
        }
        ExprKind::String(text) => {
            Err(error(format!("a type is written without quotes, not as the string \"{text}\""), Some(format!("write `type = {text}`"))))
        }
        _ => Err(error(
            "this is not a type".to_owned(),
            Some("types are `string`, `number`, `bool`, `any`, `list(T)`, `set(T)`, `map(T)`, `object({...})`, `tuple([...])`".to_owned()),
        )),
    }
}

/// Only object keys written as identifiers count as attribute names here.
pub fn object_key_name(key: &ObjectKey) -> Option<&str> {
    key.literal()
}
