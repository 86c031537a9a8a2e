//! The text form of `mlops schema`.

use std::fmt::Write;

use mlops_compiler::schema::{BlockSchema, KindSchema, SchemaCategory};

pub fn render(schema: &KindSchema) -> String {
    let mut out = String::new();
    let heading = match schema.category {
        SchemaCategory::Resource => schema.name.clone(),
        SchemaCategory::Data => format!("data \"{}\"", schema.name),
        SchemaCategory::Provider => format!("provider \"{}\"", schema.name),
        SchemaCategory::Backend => format!("backend \"{}\"", schema.name),
        SchemaCategory::Language => format!("{} \"NAME\"", schema.name),
    };
    let _ = writeln!(out, "{heading}\n  {}", schema.description);
    if !schema.providers.is_empty() {
        let _ = writeln!(out, "  providers: {} (default {})", schema.providers.join(", "), schema.providers[0]);
    }
    if schema.retained {
        let _ = writeln!(out, "  retained: removing the block forgets it; `lifecycle {{ destroy = true }}` deletes it");
    }
    render_block(&mut out, &schema.body, 1);
    out.push('\n');
    out
}

fn render_block(out: &mut String, block: &BlockSchema, depth: usize) {
    let indent = "  ".repeat(depth);
    for attribute in block.attributes.values() {
        let mut flags = Vec::new();
        if attribute.required {
            flags.push("required".to_owned());
        } else if attribute.computed && !attribute.configurable {
            flags.push("computed".to_owned());
        } else if attribute.computed {
            flags.push("optional, computed".to_owned());
        } else {
            flags.push("optional".to_owned());
        }
        if let Some(default) = &attribute.default {
            flags.push(format!("default {}", default.describe()));
        }
        if !attribute.allowed.is_empty() {
            flags.push(format!("one of {}", attribute.allowed.join(" | ")));
        }
        match (attribute.min, attribute.max) {
            (Some(min), Some(max)) => flags.push(format!("{min}..{max}")),
            (Some(min), None) => flags.push(format!(">= {min}")),
            (None, Some(max)) => flags.push(format!("<= {max}")),
            _ => {}
        }
        if let Some(format) = attribute.format {
            flags.push(format!(
                "format {}",
                serde_json::to_value(format).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
            ));
        }
        if attribute.force_new {
            flags.push("forces replacement".to_owned());
        }
        if attribute.sensitive {
            flags.push("sensitive".to_owned());
        }
        if !attribute.only_on.is_empty() {
            flags.push(format!("only on {}", attribute.only_on.join(", ")));
        }
        if !attribute.required_on.is_empty() {
            flags.push(format!("required on {}", attribute.required_on.join(", ")));
        }
        let _ = writeln!(out, "{indent}{:<18} {:<32} {}", attribute.name, attribute.ty.to_string(), flags.join(", "));
        if !attribute.description.is_empty() {
            let _ = writeln!(out, "{indent}{:<18} {}", "", attribute.description);
        }
    }
    for nested in block.blocks.values() {
        let labels: String = nested.labels.iter().map(|label| format!(" \"{}\"", label.to_uppercase())).collect();
        let mut flags = Vec::new();
        if nested.min_items > 0 {
            flags.push(format!("at least {}", nested.min_items));
        }
        if let Some(max) = nested.max_items {
            flags.push(format!("at most {max}"));
        }
        if !nested.only_on.is_empty() {
            flags.push(format!("only on {}", nested.only_on.join(", ")));
        }
        let _ = writeln!(out, "{indent}block {}{labels} {{ ... }}  {}", nested.name, flags.join(", "));
        if !nested.description.is_empty() {
            let _ = writeln!(out, "{indent}  {}", nested.description);
        }
        render_block(out, &nested.body, depth + 1);
    }
}
