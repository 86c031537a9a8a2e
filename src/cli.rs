//! Subcommands. Exit codes: 0 success, 1 error (or invalid configuration),
//! 3 for `fmt --check` when files need formatting.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use mlops_compiler::check::{check_directory, CheckOptions};
use mlops_compiler::diagnostic::codes;
use mlops_compiler::diagnostic::render::{json_report, render_human_all, HumanOptions};
use mlops_compiler::schema::{KindSchema, Schemas};

#[derive(Parser)]
#[command(name = "mlops", version, about = "Declarative infrastructure-as-code for machine-learning platforms")]
struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check a configuration; report every error in one run.
    Validate {
        /// The configuration directory.
        #[arg(default_value = ".")]
        directory: PathBuf,
        /// Print the diagnostics as JSON (see docs/json-diagnostics.md).
        #[arg(long)]
        json: bool,
        /// Check with this value for a variable: NAME=VALUE (others stay unknown).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        variables: Vec<String>,
        /// Check with the values in this file of `name = value` lines.
        #[arg(long = "var-file", value_name = "FILE")]
        variable_files: Vec<PathBuf>,
    },
    /// Rewrite configuration files in the canonical format, keeping comments.
    Fmt {
        /// Directories or files to format.
        #[arg(default_value = ".")]
        paths: Vec<PathBuf>,
        /// Change nothing; list the files that need formatting and exit 3 if any do.
        #[arg(long)]
        check: bool,
        /// Also format subdirectories.
        #[arg(long)]
        recursive: bool,
    },
    /// Print the schema of a resource kind (all kinds when none is given).
    Schema {
        kind: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Explain a diagnostic code, such as E0102 or unknown-attribute.
    Explain { code: String },
    /// Prepare a configuration directory: download registry modules and pin
    /// them in mlops.lock.hcl, check the configuration, create the state backend.
    Init {
        #[arg(default_value = ".")]
        directory: PathBuf,
        /// Move every pin to the digest its tag points at now.
        #[arg(long)]
        upgrade: bool,
    },
    /// Share modules through an OCI registry.
    Module {
        #[command(subcommand)]
        action: ModuleAction,
    },
    /// Refresh, compare with the configuration, and print what apply would do.
    Plan {
        #[command(flatten)]
        common: CommonPlanArguments,
        /// Save the plan, to apply exactly it later.
        #[arg(long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: crate::commands::PlanFormat,
        /// Exit 2 when there are changes, 0 when there are none.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Plan the removal of everything managed.
        #[arg(long)]
        destroy: bool,
    },
    /// Carry out a plan: of the directory (after approval), or a saved one.
    Apply {
        #[command(flatten)]
        common: CommonPlanArguments,
        /// Do not ask for approval.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Remove everything managed. Retained kinds (datasets, models) are forgotten, not deleted, unless --delete-retained.
    Destroy {
        #[command(flatten)]
        common: CommonPlanArguments,
        #[arg(long)]
        auto_approve: bool,
        /// Delete retained kinds too.
        #[arg(long)]
        delete_retained: bool,
    },
    /// Print a saved plan, or the state of a directory.
    Show {
        /// A saved plan file, or a configuration directory (default: the current one).
        path: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print the root module's outputs.
    Output {
        name: Option<String>,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Inspect and edit the state (always locked).
    #[command(subcommand)]
    State(crate::commands::StateCommand),
    /// Print the dependency graph.
    Graph {
        #[arg(default_value = ".")]
        directory: PathBuf,
        #[arg(long, value_enum, default_value = "dot")]
        format: crate::commands::GraphFormat,
    },
    /// Which data, code and parameters produced a resource, from state.
    Lineage {
        address: String,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
        #[arg(long)]
        json: bool,
        /// For a model: the lineage of this version instead of the current
        /// one (the state keeps it for the 20 newest versions it registered)
        #[arg(long = "version", value_name = "VERSION")]
        model_version: Option<String>,
    },
    /// Compute drift between reference and current data, as a monitor's
    /// CronJob does in the cluster: the scores go to stdout and, with
    /// --output, to a file (the container's termination message).
    Drift {
        /// A local directory or file, or s3://BUCKET/PREFIX/ (endpoint from AWS_ENDPOINT_URL).
        #[arg(long)]
        reference: String,
        #[arg(long)]
        current: String,
        /// Comma-separated column names.
        #[arg(long)]
        columns: String,
        #[arg(long, default_value = "psi", value_parser = ["psi", "ks", "wasserstein", "kl_div"])]
        method: String,
        #[arg(long, default_value_t = 0.2)]
        threshold: f64,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Release a stuck state lock.
    ForceUnlock {
        id: String,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
}

#[derive(Subcommand)]
enum ModuleAction {
    /// Push the module in DIRECTORY to an OCI registry, as oci://HOST/REPOSITORY:TAG.
    Publish { directory: PathBuf, destination: String },
}

#[derive(clap::Args, Clone)]
struct CommonPlanArguments {
    /// The configuration directory (or, for apply, a saved plan file).
    #[arg(default_value = ".")]
    directory: PathBuf,
    /// Set a variable: NAME=VALUE.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    variables: Vec<String>,
    /// Read variables from a file of `name = value` lines.
    #[arg(long = "var-file", value_name = "FILE")]
    variable_files: Vec<PathBuf>,
    /// Limit the plan to these resources and what they depend on.
    #[arg(long = "target", value_name = "ADDRESS")]
    targets: Vec<String>,
    /// Leave these resources, and what depends on them, out of the plan.
    #[arg(long = "exclude", value_name = "ADDRESS")]
    excludes: Vec<String>,
    /// Read live objects before planning (default true).
    #[arg(long, default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    refresh: bool,
    /// How many resources to refresh or apply at once.
    #[arg(long, default_value = "10")]
    parallelism: usize,
}

impl CommonPlanArguments {
    fn into_plan_arguments(self) -> crate::commands::PlanArguments {
        crate::commands::PlanArguments {
            directory: self.directory,
            variables: self.variables,
            variable_files: self.variable_files,
            targets: self.targets,
            excludes: self.excludes,
            refresh: self.refresh,
            parallelism: self.parallelism,
        }
    }
}

/// Terraform-style single-dash options (`-var`, `-out`, `-target`, ...) are
/// accepted as well as the double-dash ones.
fn normalise_arguments(arguments: impl Iterator<Item = String>) -> Vec<String> {
    const SINGLE_DASH: &[&str] = &[
        "var",
        "var-file",
        "out",
        "target",
        "exclude",
        "refresh",
        "parallelism",
        "auto-approve",
        "detailed-exitcode",
        "json",
        "destroy",
        "upgrade",
        "version",
    ];
    arguments
        .map(|argument| {
            let name = argument.strip_prefix('-').filter(|rest| !rest.starts_with('-'));
            match name {
                Some(rest) if SINGLE_DASH.contains(&rest.split('=').next().unwrap_or(rest)) => format!("-{argument}"),
                _ => argument,
            }
        })
        .collect()
}

fn colour_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

pub fn run() -> i32 {
    let arguments = match Arguments::try_parse_from(normalise_arguments(std::env::args())) {
        Ok(arguments) => arguments,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { 1 } else { 0 };
        }
    };
    match arguments.command {
        Command::Validate { directory, json, variables, variable_files } => validate(&directory, json, &variables, &variable_files),
        Command::Fmt { paths, check, recursive } => crate::cli::format_command(&paths, check, recursive),
        Command::Schema { kind, json } => schema(kind.as_deref(), json),
        Command::Explain { code } => explain(&code),
        Command::Init { directory, upgrade } => crate::commands::init_command(&directory, upgrade),
        Command::Module { action: ModuleAction::Publish { directory, destination } } => {
            crate::commands::module_publish_command(&directory, &destination)
        }
        Command::Plan { common, out, format, detailed_exitcode, destroy } => {
            crate::commands::plan_command(&common.into_plan_arguments(), out.as_deref(), format, detailed_exitcode, destroy)
        }
        Command::Apply { common, auto_approve } => {
            crate::commands::apply_command(&common.into_plan_arguments(), auto_approve, false, false)
        }
        Command::Destroy { common, auto_approve, delete_retained } => {
            crate::commands::apply_command(&common.into_plan_arguments(), auto_approve, true, delete_retained)
        }
        Command::Show { path, json } => crate::commands::show_command(path.as_deref(), json),
        Command::Output { name, directory, json } => crate::commands::output_command(&directory, name.as_deref(), json),
        Command::State(command) => crate::commands::state_command(&command),
        Command::Graph { directory, format } => crate::commands::graph_command(&directory, format),
        Command::Lineage { address, directory, json, model_version } => {
            crate::commands::lineage_command(&directory, &address, json, model_version.as_deref())
        }
        Command::Drift { reference, current, columns, method, threshold, output } => {
            crate::commands::drift_command(&reference, &current, &columns, &method, threshold, output.as_deref())
        }
        Command::ForceUnlock { id, directory } => crate::commands::force_unlock_command(&directory, &id),
    }
}

fn display_directory(directory: &Path) -> String {
    let text = directory.display().to_string();
    let trimmed = text.trim_end_matches('/');
    if trimmed.is_empty() {
        ".".to_owned()
    } else {
        trimmed.trim_start_matches("./").to_owned()
    }
}

fn validate(directory: &Path, json: bool, assignments: &[String], files: &[PathBuf]) -> i32 {
    let shown = display_directory(directory);
    // With values, those variables are checked as given; the rest stay unknown.
    let options = if assignments.is_empty() && files.is_empty() {
        CheckOptions::default()
    } else {
        match crate::commands::variable_values(assignments, files, false) {
            Ok((values, origins)) => CheckOptions {
                variables: Some(values),
                variable_origins: origins,
                missing_variables_unknown: true,
                ..CheckOptions::default()
            },
            Err(diagnostic) => {
                let rendered = render_human_all(
                    &[diagnostic],
                    &Default::default(),
                    HumanOptions { colour: colour_enabled(), width: terminal_width() },
                );
                err!("{rendered}");
                return 1;
            }
        }
    };
    let result = check_directory(directory, if shown == "." { "" } else { &shown }, &options);
    let errors = result.diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count();
    let warnings = result.diagnostics.len() - errors;
    if json {
        let report = json_report(&result.diagnostics, &result.sources);
        outln!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        let rendered =
            render_human_all(&result.diagnostics, &result.sources, HumanOptions { colour: colour_enabled(), width: terminal_width() });
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(rendered.as_bytes());
        if errors == 0 {
            let resources: usize = result.root.as_ref().map_or(0, |root| root.all_resources().len());
            outln!(
                "The configuration is valid: {resources} resource{} checked{}.",
                if resources == 1 { "" } else { "s" },
                if warnings > 0 { format!(", {warnings} warning(s)") } else { String::new() }
            );
        } else {
            let _ = writeln!(
                stderr,
                "{errors} error{} found{}.",
                if errors == 1 { "" } else { "s" },
                if warnings > 0 { format!(" and {warnings} warning(s)") } else { String::new() }
            );
        }
    }
    if errors > 0 {
        1
    } else {
        0
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|columns| columns.parse().ok()).unwrap_or(100)
}

fn explain(query: &str) -> i32 {
    match codes::lookup(query) {
        Some(code) => {
            out!("{}", code.explanation);
            0
        }
        None => {
            let names: Vec<&str> = codes::ALL.iter().flat_map(|code| [code.id, code.name]).collect();
            let hint =
                mlops_compiler::suggest::did_you_mean(query, names.iter().copied()).map(|hint| format!(" {hint}")).unwrap_or_default();
            errln!("error: there is no diagnostic code `{query}`.{hint}\nhelp: codes look like E0102 or unknown-attribute; every code:");
            for code in codes::ALL {
                errln!("  {} {}", code.id, code.name);
            }
            1
        }
    }
}

fn schema(kind: Option<&str>, json: bool) -> i32 {
    let schemas = Schemas::standard();
    let selected: Vec<&KindSchema> = match kind {
        Some(kind) => match schemas
            .resources
            .get(kind)
            .or_else(|| schemas.data.get(kind.trim_start_matches("data.")))
            .or_else(|| schemas.providers.get(kind.trim_start_matches("provider.")))
        {
            Some(schema) => vec![schema],
            None => {
                let names: Vec<&str> = schemas.resources.keys().map(String::as_str).collect();
                let hint =
                    mlops_compiler::suggest::did_you_mean(kind, names.iter().copied()).map(|hint| format!(" {hint}")).unwrap_or_default();
                errln!("error: there is no kind `{kind}`.{hint}\nhelp: the kinds are {}; data sources as data.KIND, providers as provider.TYPE", names.join(", "));
                return 1;
            }
        },
        None => schemas.resources.values().chain(schemas.data.values()).chain(schemas.providers.values()).collect(),
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&selected).unwrap_or_default());
    } else {
        for schema in selected {
            out!("{}", crate::schema_text::render(schema));
        }
    }
    0
}

fn collect_format_targets(path: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    out.extend(mlops_compiler::loader::configuration_files(path)?);
    if recursive {
        let mut directories: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|child| child.is_dir() && !child.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.')))
            .collect();
        directories.sort();
        for directory in directories {
            collect_format_targets(&directory, recursive, out)?;
        }
    }
    Ok(())
}

pub fn format_command(paths: &[PathBuf], check: bool, recursive: bool) -> i32 {
    let mut targets = Vec::new();
    for path in paths {
        if let Err(error) = collect_format_targets(path, recursive, &mut targets) {
            errln!("error[E0003 unreadable-file]: cannot read `{}`: {error}", path.display());
            return 1;
        }
    }
    let mut failed = false;
    let mut unformatted = 0;
    for target in &targets {
        let shown = target.display().to_string();
        let read = mlops_compiler::limits::read_regular_file(target, mlops_compiler::limits::MAX_CONFIGURATION_FILE_BYTES);
        let text = match read.map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) => {
                errln!("error[E0004 invalid-utf8]: `{shown}` is not UTF-8 text\n  help: save the file as UTF-8");
                failed = true;
                continue;
            }
            Err(error) => {
                errln!("error[E0003 unreadable-file]: cannot read `{shown}`: {error}");
                failed = true;
                continue;
            }
        };
        // A byte-order mark is not part of the text; formatting drops it.
        let text = text.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(text);
        match mlops_compiler::format::format_source(&text) {
            Ok(formatted) if formatted == text => {}
            Ok(formatted) => {
                unformatted += 1;
                if check {
                    outln!("{shown}");
                } else if let Err(error) = write_atomically(target, &formatted) {
                    errln!("error[E0003 unreadable-file]: cannot write `{shown}`: {error}");
                    failed = true;
                } else {
                    outln!("{shown}");
                }
            }
            Err(diagnostic) => {
                let mut sources = mlops_compiler::source::SourceMap::default();
                sources.add(mlops_compiler::source::SourceFile::new(target.clone(), shown.clone(), text));
                let options = HumanOptions { colour: colour_enabled(), width: terminal_width() };
                err!("{}", render_human_all(&[*diagnostic], &sources, options));
                failed = true;
            }
        }
    }
    if failed {
        1
    } else if check && unformatted > 0 {
        errln!("{unformatted} file{} would be reformatted; run `mlops fmt` to fix.", if unformatted == 1 { "" } else { "s" });
        3
    } else {
        0
    }
}

/// Writes through a temporary file and a rename, so an interrupted `fmt`
/// never leaves a half-written configuration file.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("fmt-{}.tmp", std::process::id()));
    std::fs::write(&temporary, text)?;
    if let Ok(metadata) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&temporary, metadata.permissions());
    }
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}
