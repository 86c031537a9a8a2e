//! The built-in functions.
//!
//! Each function checks its arguments' types first (which works on unknown
//! values too, so `validate` type-checks calls whose inputs are not known),
//! returns an unknown of its result type when an input it needs is unknown,
//! and otherwise computes the result. Names and behaviour follow Terraform's
//! where they overlap. A sensitive argument makes the result sensitive.

use std::path::Path;

use crate::types::{unify, Type};
use crate::value::{format_number, Value, ValueMap};

/// Name, signature (for help lines), minimum and maximum argument counts.
pub const FUNCTIONS: &[(&str, &str, usize, Option<usize>)] = &[
    ("abs", "abs(number) -> number", 1, Some(1)),
    ("ceil", "ceil(number) -> number", 1, Some(1)),
    ("coalesce", "coalesce(value, ...) -> value", 1, None),
    ("concat", "concat(list, ...) -> list", 1, None),
    ("contains", "contains(list, value) -> bool", 2, Some(2)),
    ("exp", "exp(number) -> number", 1, Some(1)),
    ("file", "file(path) -> string", 1, Some(1)),
    ("floor", "floor(number) -> number", 1, Some(1)),
    ("format", "format(spec, values...) -> string", 1, None),
    ("join", "join(separator, list) -> string", 2, Some(2)),
    ("jsonencode", "jsonencode(value) -> string", 1, Some(1)),
    ("keys", "keys(map) -> list(string)", 1, Some(1)),
    ("length", "length(list | map | string) -> number", 1, Some(1)),
    ("log", "log(number, base) -> number", 2, Some(2)),
    ("log1p", "log1p(number) -> number", 1, Some(1)),
    ("lookup", "lookup(map, key, default) -> value", 2, Some(3)),
    ("lower", "lower(string) -> string", 1, Some(1)),
    ("max", "max(number, ...) -> number", 1, None),
    ("merge", "merge(map, ...) -> map", 1, None),
    ("min", "min(number, ...) -> number", 1, None),
    ("one", "one(list) -> value or null", 1, Some(1)),
    ("replace", "replace(string, search, replacement) -> string", 3, Some(3)),
    ("sha256", "sha256(string) -> string", 1, Some(1)),
    ("split", "split(separator, string) -> list(string)", 2, Some(2)),
    ("timeadd", "timeadd(timestamp, duration) -> string", 2, Some(2)),
    ("tonumber", "tonumber(value) -> number", 1, Some(1)),
    ("tostring", "tostring(value) -> string", 1, Some(1)),
    ("upper", "upper(string) -> string", 1, Some(1)),
    ("values", "values(map) -> list", 1, Some(1)),
    ("yamlencode", "yamlencode(value) -> string", 1, Some(1)),
];

pub fn signature(name: &str) -> Option<&'static str> {
    FUNCTIONS.iter().find(|(function, ..)| *function == name).map(|(_, signature, ..)| *signature)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|(name, ..)| *name)
}

/// Why a result is refused: longer than a string may be.
fn too_long(size: usize) -> String {
    format!("the result would be {size} bytes, more than the {} a string may have", crate::limits::MAX_STRING_BYTES)
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    UnknownFunction,
    ArgumentCount { signature: &'static str, given: usize },
    ArgumentType { index: usize, expected: String, found: Type },
    ArgumentValue { index: usize, message: String },
}

pub struct CallContext<'a> {
    /// Where `file()` paths are resolved from: the module's directory.
    pub module_directory: &'a Path,
    /// Where `file()` reads.
    pub files: &'a dyn crate::files::FileSystem,
}

pub fn call(name: &str, args: &[Value], context: &CallContext<'_>) -> Result<Value, CallError> {
    let Some(&(_, signature, minimum, maximum)) = FUNCTIONS.iter().find(|(function, ..)| *function == name) else {
        return Err(CallError::UnknownFunction);
    };
    if args.len() < minimum || maximum.is_some_and(|maximum| args.len() > maximum) {
        return Err(CallError::ArgumentCount { signature, given: args.len() });
    }
    let sensitive = args.iter().any(Value::contains_sensitive);
    let unmarked: Vec<Value> = args.iter().map(strip_marks).collect();
    call_unmarked(name, &unmarked, context).map(|value| value.mark_if(sensitive))
}

fn strip_marks(value: &Value) -> Value {
    match value {
        Value::Sensitive(inner) => strip_marks(inner),
        Value::List(items) => Value::List(items.iter().map(strip_marks).collect()),
        Value::Map(entries) => Value::Map(entries.iter().map(|(key, value)| (key.clone(), strip_marks(value))).collect()),
        other => other.clone(),
    }
}

fn expect(args: &[Value], index: usize, expected: &Type) -> Result<(), CallError> {
    let found = args[index].type_of();
    if expected.accepts(&found) {
        Ok(())
    } else {
        Err(CallError::ArgumentType { index, expected: expected.to_string(), found })
    }
}

fn expect_sequence(args: &[Value], index: usize) -> Result<(), CallError> {
    let found = args[index].type_of();
    if found.is_sequence() {
        Ok(())
    } else {
        Err(CallError::ArgumentType { index, expected: "list".to_owned(), found })
    }
}

fn expect_mapping(args: &[Value], index: usize) -> Result<(), CallError> {
    let found = args[index].type_of();
    if found.is_mapping() || matches!(found, Type::Resource(_)) {
        Ok(())
    } else {
        Err(CallError::ArgumentType { index, expected: "map or object".to_owned(), found })
    }
}

fn invalid(index: usize, message: impl Into<String>) -> CallError {
    CallError::ArgumentValue { index, message: message.into() }
}

fn number_arg(args: &[Value], index: usize) -> Result<Option<f64>, CallError> {
    expect(args, index, &Type::Number)?;
    Ok(args[index].as_number())
}

fn string_arg(args: &[Value], index: usize) -> Result<Option<String>, CallError> {
    expect(args, index, &Type::String)?;
    Ok(args[index].to_template_string())
}

fn unary_number(args: &[Value], operation: impl Fn(f64) -> Result<f64, String>) -> Result<Value, CallError> {
    match number_arg(args, 0)? {
        Some(number) => operation(number).map(Value::Number).map_err(|message| invalid(0, message)),
        None => Ok(Value::Unknown(Type::Number)),
    }
}

fn call_unmarked(name: &str, args: &[Value], context: &CallContext<'_>) -> Result<Value, CallError> {
    match name {
        "abs" => unary_number(args, |number| Ok(number.abs())),
        "ceil" => unary_number(args, |number| Ok(number.ceil())),
        "floor" => unary_number(args, |number| Ok(number.floor())),
        "exp" => unary_number(args, |number| Ok(number.exp())),
        "log1p" => unary_number(args, |number| {
            if number <= -1.0 {
                Err(format!("log1p is defined for numbers greater than -1, not {}", format_number(number)))
            } else {
                Ok(number.ln_1p())
            }
        }),
        "log" => {
            let (number, base) = (number_arg(args, 0)?, number_arg(args, 1)?);
            match (number, base) {
                (Some(number), Some(base)) => {
                    if number <= 0.0 {
                        Err(invalid(0, format!("log is defined for positive numbers, not {}", format_number(number))))
                    } else if base <= 0.0 || base == 1.0 {
                        Err(invalid(1, format!("the base of a logarithm must be positive and not 1, not {}", format_number(base))))
                    } else {
                        Ok(Value::Number(number.ln() / base.ln()))
                    }
                }
                _ => Ok(Value::Unknown(Type::Number)),
            }
        }
        "min" | "max" => {
            let mut numbers = Vec::new();
            for index in 0..args.len() {
                numbers.push(number_arg(args, index)?);
            }
            if numbers.iter().any(Option::is_none) {
                return Ok(Value::Unknown(Type::Number));
            }
            let numbers = numbers.into_iter().flatten();
            Ok(Value::Number(if name == "min" { numbers.fold(f64::INFINITY, f64::min) } else { numbers.fold(f64::NEG_INFINITY, f64::max) }))
        }
        "lower" | "upper" | "sha256" => match string_arg(args, 0)? {
            Some(text) => Ok(Value::String(match name {
                "lower" => text.to_lowercase(),
                "upper" => text.to_uppercase(),
                _ => mlops_units::digest::sha256_hex(text.as_bytes()),
            })),
            None => Ok(Value::Unknown(Type::String)),
        },
        "replace" => {
            let (text, search, replacement) = (string_arg(args, 0)?, string_arg(args, 1)?, string_arg(args, 2)?);
            match (text, search, replacement) {
                (Some(text), Some(search), Some(replacement)) => {
                    if search.is_empty() {
                        return Err(invalid(1, "the text to search for is empty"));
                    }
                    // Checked before it is made: a long replacement of a frequent match grows the text many times over.
                    let matches = text.matches(search.as_str()).count();
                    let size = text.len() - matches * search.len() + matches.saturating_mul(replacement.len());
                    if size > crate::limits::MAX_STRING_BYTES {
                        return Err(invalid(2, too_long(size)));
                    }
                    Ok(Value::String(text.replace(&search, &replacement)))
                }
                _ => Ok(Value::Unknown(Type::String)),
            }
        }
        "split" => match (string_arg(args, 0)?, string_arg(args, 1)?) {
            (Some(separator), Some(text)) => {
                if separator.is_empty() {
                    return Err(invalid(0, "the separator is empty"));
                }
                Ok(Value::List(text.split(separator.as_str()).map(|part| Value::String(part.to_owned())).collect()))
            }
            _ => Ok(Value::Unknown(Type::list(Type::String))),
        },
        "join" => {
            let separator = string_arg(args, 0)?;
            expect(args, 1, &Type::list(Type::String))?;
            match (separator, args[1].as_list()) {
                (Some(separator), Some(items)) if args[1].is_wholly_known() => {
                    let parts: Vec<String> = items.iter().filter_map(Value::to_template_string).collect();
                    let size = parts.iter().map(String::len).sum::<usize>() + separator.len().saturating_mul(parts.len());
                    if size > crate::limits::MAX_STRING_BYTES {
                        return Err(invalid(1, too_long(size)));
                    }
                    Ok(Value::String(parts.join(&separator)))
                }
                _ => Ok(Value::Unknown(Type::String)),
            }
        }
        "length" => {
            let found = args[0].type_of();
            if !(found.is_collection() || matches!(found, Type::String)) {
                return Err(CallError::ArgumentType { index: 0, expected: "list, map or string".to_owned(), found });
            }
            Ok(match &args[0] {
                Value::List(items) => Value::Number(items.len() as f64),
                Value::Map(entries) => Value::Number(entries.len() as f64),
                Value::String(text) => Value::Number(text.chars().count() as f64),
                _ => Value::Unknown(Type::Number),
            })
        }
        "contains" => {
            expect_sequence(args, 0)?;
            match args[0].as_list() {
                Some(items) if args[0].is_wholly_known() && args[1].is_wholly_known() => {
                    Ok(Value::Bool(items.iter().any(|item| values_equal(item, &args[1]))))
                }
                _ => Ok(Value::Unknown(Type::Bool)),
            }
        }
        "concat" => {
            let mut element_types = Vec::new();
            for index in 0..args.len() {
                expect_sequence(args, index)?;
                element_types.push(args[index].type_of().element().unwrap_or(Type::Any));
            }
            if args.iter().all(Value::is_known) {
                Ok(Value::List(args.iter().flat_map(|arg| arg.as_list().unwrap_or(&[]).iter().cloned()).collect()))
            } else {
                Ok(Value::Unknown(Type::list(unify(element_types))))
            }
        }
        "merge" => {
            for index in 0..args.len() {
                expect_mapping(args, index)?;
            }
            if args.iter().all(Value::is_known) {
                let mut merged = ValueMap::new();
                for arg in args {
                    if let Some(entries) = arg.as_map() {
                        merged.extend(entries.iter().map(|(key, value)| (key.clone(), value.clone())));
                    }
                }
                Ok(Value::Map(merged))
            } else {
                Ok(Value::Unknown(Type::map(unify(args.iter().map(|arg| arg.type_of().element().unwrap_or(Type::Any))))))
            }
        }
        "keys" | "values" => {
            expect_mapping(args, 0)?;
            match args[0].as_map() {
                Some(entries) => Ok(Value::List(if name == "keys" {
                    entries.keys().map(|key| Value::String(key.clone())).collect()
                } else {
                    entries.values().cloned().collect()
                })),
                None => Ok(Value::Unknown(if name == "keys" {
                    Type::list(Type::String)
                } else {
                    Type::list(args[0].type_of().element().unwrap_or(Type::Any))
                })),
            }
        }
        "lookup" => {
            expect_mapping(args, 0)?;
            let key = string_arg(args, 1)?;
            match (args[0].as_map(), key) {
                (Some(entries), Some(key)) => match entries.get(&key) {
                    Some(value) => Ok(value.clone()),
                    None => match args.get(2) {
                        Some(default) => Ok(default.clone()),
                        None => Err(invalid(1, format!("the map has no key \"{key}\" and no default was given"))),
                    },
                },
                _ => Ok(Value::Unknown(args[0].type_of().element().unwrap_or(Type::Any))),
            }
        }
        // A list of zero or one elements as that element or null: what a
        // `count = COND ? 1 : 0` block reads as when it is optional.
        "one" => {
            expect_sequence(args, 0)?;
            match args[0].as_list() {
                Some([]) => Ok(Value::Null),
                Some([only]) => Ok(only.clone()),
                Some(items) => Err(invalid(0, format!("the list has {} elements; one() takes a list of at most one", items.len()))),
                None => Ok(Value::Unknown(args[0].type_of().element().unwrap_or(Type::Any))),
            }
        }
        "coalesce" => {
            for arg in args {
                if !arg.is_known() {
                    return Ok(Value::Unknown(unify(args.iter().map(Value::type_of))));
                }
                if !arg.is_null() && arg.as_str() != Some("") {
                    return Ok(arg.clone());
                }
            }
            Err(invalid(0, "every argument is null or an empty string"))
        }
        "tostring" => {
            let found = args[0].type_of();
            if found.is_collection() && !found.is_any() || matches!(found, Type::Resource(_)) {
                return Err(CallError::ArgumentType { index: 0, expected: "string, number or bool".to_owned(), found });
            }
            Ok(args[0].to_template_string().map(Value::String).unwrap_or(if args[0].is_null() {
                Value::Null
            } else {
                Value::Unknown(Type::String)
            }))
        }
        "tonumber" => match &args[0] {
            Value::Number(number) => Ok(Value::Number(*number)),
            Value::String(text) => {
                text.trim().parse::<f64>().map(Value::Number).map_err(|_| invalid(0, format!("\"{text}\" is not a number")))
            }
            Value::Null => Ok(Value::Null),
            Value::Unknown(Type::Number | Type::String | Type::Any) => Ok(Value::Unknown(Type::Number)),
            other => Err(CallError::ArgumentType { index: 0, expected: "string or number".to_owned(), found: other.type_of() }),
        },
        "jsonencode" | "yamlencode" => {
            if !args[0].is_wholly_known() {
                return Ok(Value::Unknown(Type::String));
            }
            let json = args[0].to_json_unredacted();
            if name == "jsonencode" {
                Ok(Value::String(json.to_string()))
            } else {
                serde_yaml::to_string(&json).map(Value::String).map_err(|error| invalid(0, error.to_string()))
            }
        }
        "file" => match string_arg(args, 0)? {
            Some(path) => {
                let full = context.module_directory.join(&path);
                if context.files.kind(&full).is_none() {
                    return Err(invalid(0, format!("cannot read \"{path}\": no such file")));
                }
                match context.files.read(&full, crate::limits::MAX_READ_FILE_BYTES) {
                    Ok(bytes) => {
                        String::from_utf8(bytes).map(Value::String).map_err(|_| invalid(0, format!("\"{path}\" is not a UTF-8 text file")))
                    }
                    Err(reason) => Err(invalid(0, format!("cannot read \"{path}\": {reason}"))),
                }
            }
            None => Ok(Value::Unknown(Type::String)),
        },
        "format" => {
            let spec = string_arg(args, 0)?;
            match spec {
                Some(spec) if args[1..].iter().all(Value::is_wholly_known) => format_values(&spec, &args[1..]).map(Value::String),
                Some(spec) => {
                    // Still check the verbs against the argument count.
                    let placeholders: Vec<Value> = args[1..].iter().map(|_| Value::String(String::new())).collect();
                    format_values(&spec, &placeholders).map(|_| Value::Unknown(Type::String))
                }
                None => Ok(Value::Unknown(Type::String)),
            }
        }
        "timeadd" => match (string_arg(args, 0)?, string_arg(args, 1)?) {
            (Some(timestamp), Some(duration)) => {
                let start = chrono::DateTime::parse_from_rfc3339(&timestamp)
                    .map_err(|_| invalid(0, format!("\"{timestamp}\" is not an RFC 3339 timestamp such as \"2026-01-02T15:04:05Z\"")))?;
                let milliseconds = crate::units::parse_duration_signed(&duration).map_err(|message| invalid(1, message))?;
                let result = start + chrono::Duration::milliseconds(milliseconds);
                Ok(Value::String(result.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
            }
            _ => Ok(Value::Unknown(Type::String)),
        },
        _ => Err(CallError::UnknownFunction),
    }
}

pub fn values_equal(left: &Value, right: &Value) -> bool {
    match (left.unmark().0, right.unmark().0) {
        (Value::Number(left), Value::Number(right)) => left == right,
        (Value::List(left), Value::List(right)) => {
            left.len() == right.len() && left.iter().zip(right).all(|(left, right)| values_equal(left, right))
        }
        (Value::Map(left), Value::Map(right)) => {
            left.len() == right.len()
                && left.iter().zip(right).all(|((left_key, left), (right_key, right))| left_key == right_key && values_equal(left, right))
        }
        (Value::Resource(left), Value::Resource(right)) => left.address == right.address,
        (left, right) => left == right,
    }
}

/// Terraform's `format` verbs: `%s %d %f %.Nf %q %t %v %%`.
fn format_values(spec: &str, args: &[Value]) -> Result<String, CallError> {
    let mut out = String::new();
    let mut characters = spec.chars().peekable();
    let mut next_argument = 0;
    while let Some(character) = characters.next() {
        if character != '%' {
            out.push(character);
            continue;
        }
        let mut precision: Option<usize> = None;
        if characters.peek() == Some(&'.') {
            characters.next();
            let mut digits = String::new();
            while let Some(digit) = characters.peek().filter(|digit| digit.is_ascii_digit()) {
                digits.push(*digit);
                characters.next();
            }
            precision = digits.parse().ok();
        }
        let Some(verb) = characters.next() else {
            return Err(invalid(0, "the format ends with a lone `%`"));
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(argument) = args.get(next_argument) else {
            return Err(invalid(0, format!("the format has more verbs than the {} value(s) given", args.len())));
        };
        next_argument += 1;
        let index = next_argument;
        match verb {
            's' | 'v' => match argument.to_template_string() {
                Some(text) => out.push_str(&text),
                None => out.push_str(&argument.to_json_unredacted().to_string()),
            },
            'q' => out.push_str(&serde_json::Value::String(argument.to_template_string().unwrap_or_default()).to_string()),
            't' => match argument {
                Value::Bool(flag) => out.push_str(&flag.to_string()),
                Value::String(text) if text.is_empty() => {}
                _ => return Err(invalid(index, "`%t` needs a bool")),
            },
            'd' => match argument {
                Value::Number(number) => out.push_str(&format!("{}", number.trunc() as i64)),
                Value::String(text) if text.is_empty() => {}
                _ => return Err(invalid(index, "`%d` needs a number")),
            },
            'f' => match argument {
                Value::Number(number) => out.push_str(&format!("{:.*}", precision.unwrap_or(6), number)),
                Value::String(text) if text.is_empty() => {}
                _ => return Err(invalid(index, "`%f` needs a number")),
            },
            other => return Err(invalid(0, format!("`%{other}` is not a format verb; use %s, %d, %f, %q, %t, %v or %%"))),
        }
    }
    if next_argument < args.len() {
        return Err(invalid(0, format!("the format uses {next_argument} value(s) but {} were given", args.len())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, args: Vec<Value>) -> Result<Value, CallError> {
        call(name, &args, &CallContext { module_directory: Path::new("."), files: &crate::files::DiskFiles })
    }

    #[test]
    fn functions_compute_known_values() {
        assert_eq!(run("lower", vec![Value::String("AbC".into())]), Ok(Value::String("abc".into())));
        assert_eq!(
            run("format", vec![Value::String("%s-%d-%.2f".into()), Value::String("a".into()), Value::Number(3.0), Value::Number(1.5)]),
            Ok(Value::String("a-3-1.50".into()))
        );
        assert_eq!(run("max", vec![Value::Number(1.0), Value::Number(4.0)]), Ok(Value::Number(4.0)));
        assert_eq!(
            run("timeadd", vec![Value::String("2026-01-01T00:00:00Z".into()), Value::String("1h30m".into())]),
            Ok(Value::String("2026-01-01T01:30:00Z".into()))
        );
        assert_eq!(
            run("sha256", vec![Value::String("".into())]),
            Ok(Value::String("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()))
        );
    }

    #[test]
    fn one_reads_an_optional_list_as_its_element_or_null() {
        assert_eq!(run("one", vec![Value::List(vec![])]), Ok(Value::Null));
        assert_eq!(run("one", vec![Value::List(vec![Value::Number(7.0)])]), Ok(Value::Number(7.0)));
        assert!(matches!(
            run("one", vec![Value::List(vec![Value::Number(1.0), Value::Number(2.0)])]),
            Err(CallError::ArgumentValue { .. })
        ));
        assert_eq!(run("one", vec![Value::Unknown(Type::list(Type::String))]), Ok(Value::Unknown(Type::String)));
        assert!(matches!(run("one", vec![Value::String("x".into())]), Err(CallError::ArgumentType { .. })));
    }

    #[test]
    fn unknown_inputs_give_typed_unknowns_and_secrets_stay_secret() {
        assert_eq!(run("log1p", vec![Value::Unknown(Type::Number)]), Ok(Value::Unknown(Type::Number)));
        let secret = Value::Sensitive(Box::new(Value::String("s3cr3t".into())));
        assert!(run("upper", vec![secret]).unwrap().is_sensitive());
        assert!(matches!(run("log1p", vec![Value::String("x".into())]), Err(CallError::ArgumentType { .. })));
    }
}
