//! `mlops schema [KIND]`: the stdlib schemas of resource kinds, data
//! sources, providers and the `policy` block, as text or JSON.

use mlops_compiler::schema::{KindSchema, Schemas};

use super::CommandResult;

pub fn schema_command(kind: Option<&str>, json: bool) -> CommandResult {
    let schemas = Schemas::standard();
    let selected: Vec<&KindSchema> = match kind {
        Some(kind) => match schemas
            .resources
            .get(kind)
            .or_else(|| schemas.data.get(kind.trim_start_matches("data.")))
            .or_else(|| schemas.providers.get(kind.trim_start_matches("provider.")))
            .or_else(|| schemas.language.get(kind))
        {
            Some(schema) => vec![schema],
            None => {
                let names: Vec<&str> = schemas.resources.keys().map(String::as_str).collect();
                let hint =
                    mlops_compiler::suggest::did_you_mean(kind, names.iter().copied()).map(|hint| format!(" {hint}")).unwrap_or_default();
                errln!("error: there is no kind `{kind}`.{hint}\nhelp: the kinds are {}; data sources as data.KIND, providers as provider.TYPE, and `policy`", names.join(", "));
                return Ok(1);
            }
        },
        None => schemas
            .resources
            .values()
            .chain(schemas.data.values())
            .chain(schemas.providers.values())
            .chain(schemas.language.values())
            .collect(),
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&selected).unwrap_or_default());
    } else {
        for schema in selected {
            out!("{}", crate::schema_text::render(schema));
        }
    }
    Ok(0)
}
