//! Typed addresses: which resource instance, in which module.
//!
//! Every address has one canonical text form, used in plans, state, lineage
//! and messages: `module.NAME.` for each enclosing module call, `data.` for
//! data sources, then `KIND.NAME`, then `[INDEX]` for `count` or `["KEY"]`
//! for `for_each` instances. Code that needs the parts of an address parses
//! it here instead of splitting strings itself.

use std::fmt;
use std::str::FromStr;

/// Which instance of a resource with `count` or `for_each`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstanceKey {
    None,
    Index(usize),
    Key(String),
}

/// A managed resource or a data source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    Managed,
    Data,
}

/// `module.a.module.b.data.dataset.x["eu"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceAddress {
    /// Module call names from the root: empty for the root module.
    pub module_path: Vec<String>,
    pub mode: Mode,
    pub kind: String,
    pub name: String,
    pub key: InstanceKey,
}

impl ResourceAddress {
    pub fn new(module_path: &[String], mode: Mode, kind: &str, name: &str) -> ResourceAddress {
        ResourceAddress { module_path: module_path.to_vec(), mode, kind: kind.to_owned(), name: name.to_owned(), key: InstanceKey::None }
    }

    pub fn with_key(mut self, key: InstanceKey) -> ResourceAddress {
        self.key = key;
        self
    }

    /// The address of the resource block, without an instance key.
    pub fn without_key(&self) -> ResourceAddress {
        ResourceAddress { key: InstanceKey::None, ..self.clone() }
    }

    /// The address as seen from inside its own module (`dataset.x[0]`).
    pub fn local(&self) -> ResourceAddress {
        ResourceAddress { module_path: Vec::new(), ..self.clone() }
    }

    /// Whether `self` is selected by `pattern` (as `-target` reads it): the
    /// same address, an instance of the same resource, or anything inside a
    /// selected module.
    pub fn is_selected_by(&self, pattern: &AddressPattern) -> bool {
        match pattern {
            AddressPattern::Module(path) => self.module_path.starts_with(path),
            AddressPattern::Resource(address) => {
                address.module_path == self.module_path
                    && address.mode == self.mode
                    && address.kind == self.kind
                    && address.name == self.name
                    && (address.key == InstanceKey::None || address.key == self.key)
            }
        }
    }
}

/// What `-target` and `-exclude` accept: a resource (or one instance), or a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressPattern {
    Module(Vec<String>),
    Resource(ResourceAddress),
}

impl FromStr for AddressPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<AddressPattern, String> {
        if let Ok(address) = text.parse::<ResourceAddress>() {
            return Ok(AddressPattern::Resource(address));
        }
        let mut parts = text.split('.');
        let mut path = Vec::new();
        while let Some(part) = parts.next() {
            match (part, parts.next()) {
                ("module", Some(name)) if !name.is_empty() => path.push(name.to_owned()),
                _ => return Err(format!("`{text}` is not a resource or module address")),
            }
        }
        if path.is_empty() {
            return Err(format!("`{text}` is not a resource or module address"));
        }
        Ok(AddressPattern::Module(path))
    }
}

fn quote(text: &str, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    out.write_str("\"")?;
    for character in text.chars() {
        match character {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            other => write!(out, "{other}")?,
        }
    }
    out.write_str("\"")
}

impl fmt::Display for InstanceKey {
    /// `[0]`, `["eu"]`, or nothing.
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceKey::None => Ok(()),
            InstanceKey::Index(index) => write!(out, "[{index}]"),
            InstanceKey::Key(key) => {
                out.write_str("[")?;
                quote(key, out)?;
                out.write_str("]")
            }
        }
    }
}

impl fmt::Display for ResourceAddress {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        for module in &self.module_path {
            write!(out, "module.{module}.")?;
        }
        if self.mode == Mode::Data {
            out.write_str("data.")?;
        }
        write!(out, "{}.{}{}", self.kind, self.name, self.key)
    }
}

impl FromStr for ResourceAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<ResourceAddress, String> {
        let invalid =
            || format!("`{text}` is not a resource address (KIND.NAME, data.KIND.NAME, module.M.KIND.NAME, with [INDEX] or [\"KEY\"])");
        let (body, key) = match text.find('[') {
            Some(open) => {
                let inner = text[open..].strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).ok_or_else(invalid)?;
                let key = if let Ok(index) = inner.parse::<usize>() {
                    InstanceKey::Index(index)
                } else {
                    let quoted = inner.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')).ok_or_else(invalid)?;
                    InstanceKey::Key(unquote(quoted))
                };
                (&text[..open], key)
            }
            None => (text, InstanceKey::None),
        };
        let parts: Vec<&str> = body.split('.').collect();
        let mut module_path = Vec::new();
        let mut index = 0;
        while parts.get(index) == Some(&"module") && parts.len() > index + 3 {
            module_path.push(parts[index + 1].to_owned());
            index += 2;
        }
        let (mode, rest) = match &parts[index..] {
            ["data", kind, name] => (Mode::Data, (*kind, *name)),
            [kind, name] if *kind != "module" && *kind != "data" => (Mode::Managed, (*kind, *name)),
            _ => return Err(invalid()),
        };
        let valid = |part: &str| !part.is_empty() && crate::is_identifier(part);
        if !valid(rest.0) || !valid(rest.1) || module_path.iter().any(|name| !valid(name)) {
            return Err(invalid());
        }
        Ok(ResourceAddress { module_path, mode, kind: rest.0.to_owned(), name: rest.1.to_owned(), key })
    }
}

fn unquote(text: &str) -> String {
    let mut out = String::new();
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character == '\\' {
            match characters.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(character);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_their_text_form() {
        for text in [
            "dataset.x",
            "data.model.baseline",
            "module.fp.module.eu.bucket.b[3]",
            "training.t[\"a \\\"b\\\"\"]",
            "module.data.data.image.i",
        ] {
            let address: ResourceAddress = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
        }
        let address: ResourceAddress = "module.fp.dataset.x[\"eu\"]".parse().unwrap();
        assert_eq!(address.module_path, vec!["fp".to_owned()]);
        assert_eq!(address.key, InstanceKey::Key("eu".into()));
        assert_eq!(address.without_key().to_string(), "module.fp.dataset.x");
        assert_eq!(address.local().to_string(), "dataset.x[\"eu\"]");
        for bad in ["dataset", "a.b.c", "dataset.x[", "dataset.x[eu]", "module.m", ""] {
            assert!(bad.parse::<ResourceAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_select_instances_and_modules() {
        let instance: ResourceAddress = "module.fp.dataset.x[2]".parse().unwrap();
        let selects = |pattern: &str| instance.is_selected_by(&pattern.parse().unwrap());
        assert!(selects("module.fp.dataset.x"));
        assert!(selects("module.fp.dataset.x[2]"));
        assert!(selects("module.fp"));
        assert!(!selects("module.fp.dataset.x[1]"));
        assert!(!selects("dataset.x"));
        assert!(!selects("module.other"));
        assert!("not an address".parse::<AddressPattern>().is_err());
    }
}
