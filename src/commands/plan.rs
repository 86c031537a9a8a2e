//! `mlops plan`: the plan against the state, as text, JSON or Markdown,
//! optionally saved (signed) for `mlops apply PLAN`.

use std::io::Write;
use std::path::Path;

use mlops_compiler::diagnostic::render::{json_report, render_human_all, HumanOptions};
use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_compiler::source::SourceMap;
use mlops_engine::plan::{plan, Plan, PlanOptions, SigningKey};
use mlops_engine::state::{Secrets, State};
use serde_json::Value as Json;

use super::{
    colour, display_directory, fail, note_unreadable_secrets, providers, report, variable_values, workspace, CommandError, CommandResult,
    PlanArguments, Workspace,
};
use crate::plan_render::{render_json, render_markdown, render_text, Style};

pub(super) struct Planned {
    pub(super) plan: Plan,
    pub(super) sources: SourceMap,
    pub(super) diagnostics: Vec<Diagnostic>,
}

pub(super) fn make_plan(
    arguments: &PlanArguments,
    workspace: &Workspace,
    state: &State,
    destroy: bool,
    delete_retained: bool,
) -> CommandResult<Planned> {
    let (variables, variable_origins) = match variable_values(&arguments.variables, &arguments.variable_files, true) {
        Ok(variables) => variables,
        Err(diagnostic) => return fail(diagnostic),
    };
    let options = PlanOptions {
        variables,
        variable_origins,
        refresh: arguments.refresh,
        targets: arguments.targets.clone(),
        excludes: arguments.excludes.clone(),
        parallelism: arguments.parallelism.max(1),
        destroy,
        delete_retained,
    };
    let display = display_directory(&arguments.directory);
    let outcome = plan(&workspace.directory, &display, &options, &providers(), state, &workspace.data_directory);
    match outcome.plan {
        Some(plan) => Ok(Planned { plan, sources: outcome.sources, diagnostics: outcome.diagnostics }),
        None => {
            let errors = report(&outcome.diagnostics, &outcome.sources);
            let _ = writeln!(std::io::stderr(), "{errors} error{} found; nothing was planned.", if errors == 1 { "" } else { "s" });
            Err(CommandError::NotPlanned(Box::new((outcome.sources, outcome.diagnostics))))
        }
    }
}

/// What `--format markdown|json` prints when no plan was made: the same
/// errors, so that a pull-request comment or a CI tool says why (a broken
/// policy, say) rather than nothing.
fn print_failure(format: PlanFormat, sources: &SourceMap, diagnostics: &[Diagnostic]) {
    match format {
        PlanFormat::Text => {}
        PlanFormat::Markdown => {
            let errors = diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count();
            let rendered = render_human_all(diagnostics, sources, HumanOptions { colour: false, width: 100 });
            outln!(
                "### mlops plan\n\n**Nothing was planned: {errors} error{} found.**\n\n```\n{}```",
                if errors == 1 { "" } else { "s" },
                rendered.replace("```", "'''")
            );
        }
        PlanFormat::Json => {
            outln!("{}", serde_json::to_string_pretty(&json_report(diagnostics, sources)).unwrap_or_default());
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

pub fn plan_command(
    arguments: &PlanArguments,
    out: Option<&Path>,
    format: PlanFormat,
    detailed_exitcode: bool,
    destroy: bool,
) -> CommandResult {
    let workspace = workspace(&arguments.directory)?;
    let secrets = Secrets::from_environment();
    let state = workspace.backend.load(&secrets)?;
    note_unreadable_secrets(&state);
    let planned = match make_plan(arguments, &workspace, &state, destroy, false) {
        Ok(planned) => planned,
        Err(CommandError::NotPlanned(failed)) => {
            print_failure(format, &failed.0, &failed.1);
            return Err(CommandError::Reported(1));
        }
        Err(other) => return Err(other),
    };
    report(&planned.diagnostics, &planned.sources);
    let plan = planned.plan;
    match format {
        PlanFormat::Text => out!("{}", render_text(&plan, Style { colour: colour() })),
        PlanFormat::Markdown => out!("{}", render_markdown(&plan)),
        PlanFormat::Json => {
            let diagnostics: Vec<Json> = json_report(&planned.diagnostics, &planned.sources)
                .diagnostics
                .iter()
                .map(|diagnostic| serde_json::to_value(diagnostic).unwrap_or(Json::Null))
                .collect();
            outln!("{}", serde_json::to_string_pretty(&render_json(&plan, &diagnostics)).unwrap_or_default());
        }
    }
    if let Some(out) = out {
        let key = SigningKey::for_state(&workspace.backend)?;
        let bytes = plan.to_saved_json(&secrets, &key);
        if let Err(error) = mlops_engine::state::write_atomically(out, &bytes) {
            return fail(
                Diagnostic::error(codes::STATE_ERROR, format!("cannot save the plan: {error}")).with_help("check the path given to -out"),
            );
        }
        if format == PlanFormat::Text {
            outln!("\nSaved the plan to {}. Apply exactly this plan with: mlops apply {}", out.display(), out.display());
        }
    }
    Ok(if detailed_exitcode && plan.has_changes() { 2 } else { 0 })
}
