//! W0107 unused-alias: a model moves an alias that nothing in the
//! configuration reads, while the configuration does read that model by
//! alias (`data "model"` with `alias`). Only then is the alias suspicious:
//! one read by applications outside the configuration is the usual case,
//! but beside aliases that are read here it is most often a typo on one
//! side, or a stage nothing uses any more.

use std::collections::BTreeMap;

use super::CheckedModule;
use crate::diagnostic::{codes, Diagnostic};
use crate::policy::AttributeLocator;
use crate::source::SourceMap;
use crate::value::Value;

/// The warnings for the whole tree.
pub(super) fn unused_aliases(root: &CheckedModule, sources: &SourceMap) -> Vec<Diagnostic> {
    // Registered model name -> aliases read, with who reads them.
    let mut read: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (_, resource) in root.all_resources() {
        if !resource.is_data || resource.kind != "model" {
            continue;
        }
        for instance in &resource.instances {
            let attributes = &instance.value.attributes;
            if let (Some(Value::String(name)), Some(Value::String(alias))) =
                (attributes.get("name").map(|value| value.unmark().0), attributes.get("alias").map(|value| value.unmark().0))
            {
                read.entry(name.clone()).or_default().entry(alias.clone()).or_insert_with(|| instance.value.address.clone());
            }
        }
    }
    if read.is_empty() {
        return Vec::new();
    }
    let mut locator = AttributeLocator::new(sources);
    let mut warnings = Vec::new();
    for (_, resource) in root.all_resources() {
        if resource.is_data || resource.kind != "model" {
            continue;
        }
        for instance in &resource.instances {
            let attributes = &instance.value.attributes;
            let name = match attributes.get("name").map(|value| value.unmark().0) {
                Some(Value::String(name)) => name.clone(),
                _ => resource.name.clone(),
            };
            let Some(readers) = read.get(&name) else { continue };
            let Some(Value::List(aliases)) = attributes.get("aliases").map(|value| value.unmark().0) else { continue };
            let unread: Vec<&str> =
                aliases.iter().filter_map(|alias| alias.as_str()).filter(|alias| !readers.contains_key(*alias)).collect();
            if unread.is_empty() {
                continue;
            }
            let span = locator.locate(resource.span, &["aliases".to_owned()]).unwrap_or(resource.span);
            let read_here: Vec<String> = readers.iter().map(|(read_alias, reader)| format!("`{read_alias}` ({reader})")).collect();
            let guesses: Vec<String> = unread
                .iter()
                .filter_map(|alias| {
                    crate::suggest::closest(alias, readers.keys().map(String::as_str)).map(|closest| format!("`{closest}` for `{alias}`"))
                })
                .collect();
            let quoted: Vec<String> = unread.iter().map(|alias| format!("`{alias}`")).collect();
            let (noun, pronoun) = if unread.len() == 1 { ("alias", "it") } else { ("aliases", "them") };
            let reads = format!("configuration reads {name} by {}", read_here.join(", "));
            let help =
                if guesses.is_empty() { format!("this {reads}") } else { format!("did you mean {}? This {reads}", guesses.join(", ")) };
            warnings.push(
                Diagnostic::warning(
                    codes::UNUSED_ALIAS,
                    format!(
                        "{} moves the {noun} {}, which nothing in this configuration reads",
                        instance.value.address,
                        crate::suggest::one_of(&unread).replace(" or ", " and ")
                    ),
                )
                .at(span, format!("{} never read here", quoted.join(", ")))
                .with_help(format!("{help}; remove {pronoun} if nothing outside the configuration reads {pronoun} either")),
            );
        }
    }
    warnings
}
