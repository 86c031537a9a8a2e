//! `mlops graph`: the dependency graph as Graphviz DOT or Mermaid.

use std::path::Path;

use mlops_compiler::address::{Mode, ResourceAddress};
use mlops_compiler::check::{check_directory, CheckOptions};

use super::{display_directory, report, CommandError, CommandResult};

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

pub fn graph_command(directory: &Path, format: GraphFormat) -> CommandResult {
    let result = check_directory(directory, &display_directory(directory), &CheckOptions::default());
    if result.has_errors() {
        report(&result.diagnostics, &result.sources);
        return Err(CommandError::Reported(1));
    }
    let Some(root) = result.root else { return Err(CommandError::Reported(1)) };
    let mut nodes: Vec<(String, String)> = Vec::new();
    let mut edges: Vec<(String, String)> = Vec::new();
    for (module_path, resource) in root.all_resources() {
        let mode = if resource.is_data { Mode::Data } else { Mode::Managed };
        let address = ResourceAddress::new(module_path, mode, &resource.kind, &resource.name).to_string();
        nodes.push((address.clone(), resource.kind.clone()));
        for dependency in resource.depends_on.iter().filter_map(|dependency| dependency.parse::<ResourceAddress>().ok()) {
            edges.push((ResourceAddress { module_path: module_path.to_vec(), ..dependency }.to_string(), address.clone()));
        }
    }
    let identifier = |address: &str| address.replace(|character: char| !character.is_ascii_alphanumeric(), "_");
    match format {
        GraphFormat::Dot => {
            outln!("digraph mlops {{\n  rankdir = LR;\n  node [shape = box, style = rounded];");
            for (address, kind) in &nodes {
                outln!("  \"{address}\" [label = \"{address}\", tooltip = \"{kind}\"];");
            }
            for (from, to) in &edges {
                outln!("  \"{from}\" -> \"{to}\";");
            }
            outln!("}}");
        }
        GraphFormat::Mermaid => {
            outln!("flowchart LR");
            for (address, _) in &nodes {
                outln!("  {}[\"{address}\"]", identifier(address));
            }
            for (from, to) in &edges {
                outln!("  {} --> {}", identifier(from), identifier(to));
            }
        }
    }
    Ok(0)
}
