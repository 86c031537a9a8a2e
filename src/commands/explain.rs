//! `mlops explain CODE`: what a diagnostic code means and how to fix it.

use mlops_compiler::diagnostic::codes;

use super::CommandResult;

pub fn explain_command(query: &str) -> CommandResult {
    match codes::lookup(query) {
        Some(code) => {
            out!("{}", code.explanation);
            Ok(0)
        }
        None => {
            let names: Vec<&str> = codes::ALL.iter().flat_map(|code| [code.id, code.name]).collect();
            let hint =
                mlops_compiler::suggest::did_you_mean(query, names.iter().copied()).map(|hint| format!(" {hint}")).unwrap_or_default();
            errln!("error: there is no diagnostic code `{query}`.{hint}\nhelp: codes look like E0102 or unknown-attribute; every code:");
            for code in codes::ALL {
                errln!("  {} {}", code.id, code.name);
            }
            Ok(1)
        }
    }
}
