//! The command line: arguments parsed into a command, handed to its file
//! in `commands/`. Exit codes: 0 success, 1 error (or invalid
//! configuration), 2 for `plan -detailed-exitcode` with changes, 3 for
//! `fmt --check` when files need formatting.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
        /// Exit 1 when there are warnings too (for CI).
        #[arg(long = "warnings-as-errors")]
        warnings_as_errors: bool,
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
        /// Accepted as Terraform spells it: a plan never takes the state
        /// lock (it reads one consistent state), so `-lock=false` changes nothing.
        #[arg(long = "lock", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
        lock: bool,
        /// Accepted as Terraform spells it, and checked: a plan waits for no lock.
        #[arg(long = "lock-timeout", value_name = "DURATION")]
        lock_timeout: Option<String>,
    },
    /// Carry out a plan: of the directory (after approval), or a saved one.
    Apply {
        #[command(flatten)]
        common: CommonPlanArguments,
        /// Do not ask for approval.
        #[arg(long)]
        auto_approve: bool,
        /// Wait this long for a lock another apply holds (`30s`, `5m`) instead of failing at once.
        #[arg(long = "lock-timeout", value_name = "DURATION", default_value = "0s")]
        lock_timeout: String,
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
        /// Wait this long for a lock another apply holds instead of failing at once.
        #[arg(long = "lock-timeout", value_name = "DURATION", default_value = "0s")]
        lock_timeout: String,
    },
    /// Bring an object that already exists under management: read it by its
    /// provider's identifier (a bucket's name) into the declared ADDRESS.
    Import {
        /// The declared resource to import into, as the plan writes it.
        address: String,
        /// The provider's identifier of the existing object.
        id: String,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
        /// Set a variable: NAME=VALUE.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        variables: Vec<String>,
        /// Read variables from a file of `name = value` lines.
        #[arg(long = "var-file", value_name = "FILE")]
        variable_files: Vec<PathBuf>,
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
    /// Compute one shard of a feature set, as each pod of the Indexed Job
    /// of a feature set on Kubernetes does: the `index`-th of every
    /// `count` files of the dataset, uploaded as a part under --output, its
    /// report (part, version, rows) to stdout and --report.
    #[command(hide = true)]
    FeaturesShard {
        /// The feature set's configuration and its dataset, as JSON.
        #[arg(long)]
        spec: String,
        /// This shard (default: the pod's JOB_COMPLETION_INDEX).
        #[arg(long)]
        index: Option<usize>,
        #[arg(long)]
        count: usize,
        /// s3://BUCKET/PREFIX/ the parts go under.
        #[arg(long)]
        output: String,
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Release a stuck state lock.
    ForceUnlock {
        id: String,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
    /// The audit trail: every apply, import and state change, who made it and what it changed.
    #[command(args_conflicts_with_subcommands = true)]
    History {
        #[command(subcommand)]
        action: Option<HistoryAction>,
        #[arg(default_value = ".")]
        directory: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum HistoryAction {
    /// One entry, by the state serial it made.
    Show {
        serial: u64,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
        #[arg(long)]
        json: bool,
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
        "lock-timeout",
        "lock",
        "warnings-as-errors",
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

pub fn run() -> i32 {
    let arguments = match Arguments::try_parse_from(normalise_arguments(std::env::args())) {
        Ok(arguments) => arguments,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { 1 } else { 0 };
        }
    };
    match arguments.command {
        Command::Validate { directory, json, variables, variable_files, warnings_as_errors } => {
            crate::commands::exit_code(crate::commands::validate_command(&directory, json, &variables, &variable_files, warnings_as_errors))
        }
        Command::Fmt { paths, check, recursive } => crate::commands::exit_code(crate::commands::format_command(&paths, check, recursive)),
        Command::Schema { kind, json } => crate::commands::exit_code(crate::commands::schema_command(kind.as_deref(), json)),
        Command::Explain { code } => crate::commands::exit_code(crate::commands::explain_command(&code)),
        Command::Init { directory, upgrade } => crate::commands::exit_code(crate::commands::init_command(&directory, upgrade)),
        Command::Module { action: ModuleAction::Publish { directory, destination } } => {
            crate::commands::exit_code(crate::commands::module_publish_command(&directory, &destination))
        }
        Command::Plan { common, out, format, detailed_exitcode, destroy, lock: _, lock_timeout } => {
            if let Some(Err(rejection)) = lock_timeout.as_deref().map(mlops_compiler::units::check_duration) {
                let diagnostic = mlops_compiler::diagnostic::Diagnostic::error(
                    mlops_compiler::diagnostic::codes::INVALID_DURATION,
                    format!("-lock-timeout: {}", rejection.message),
                )
                .with_help(rejection.help);
                return crate::commands::exit_code(Err(diagnostic.into()));
            }
            crate::commands::exit_code(crate::commands::plan_command(
                &common.into_plan_arguments(),
                out.as_deref(),
                format,
                detailed_exitcode,
                destroy,
            ))
        }
        Command::Apply { common, auto_approve, lock_timeout } => crate::commands::exit_code(crate::commands::apply_command(
            &common.into_plan_arguments(),
            auto_approve,
            false,
            false,
            &lock_timeout,
        )),
        Command::Destroy { common, auto_approve, delete_retained, lock_timeout } => crate::commands::exit_code(
            crate::commands::apply_command(&common.into_plan_arguments(), auto_approve, true, delete_retained, &lock_timeout),
        ),
        Command::Show { path, json } => crate::commands::exit_code(crate::commands::show_command(path.as_deref(), json)),
        Command::Import { address, id, directory, variables, variable_files } => {
            crate::commands::exit_code(crate::commands::import_command(&directory, &address, &id, &variables, &variable_files))
        }
        Command::Output { name, directory, json } => {
            crate::commands::exit_code(crate::commands::output_command(&directory, name.as_deref(), json))
        }
        Command::State(command) => crate::commands::exit_code(crate::commands::state_command(&command)),
        Command::Graph { directory, format } => crate::commands::exit_code(crate::commands::graph_command(&directory, format)),
        Command::Lineage { address, directory, json, model_version } => {
            crate::commands::exit_code(crate::commands::lineage_command(&directory, &address, json, model_version.as_deref()))
        }
        Command::FeaturesShard { spec, index, count, output, report } => {
            // An Indexed Job tells each pod its index in JOB_COMPLETION_INDEX.
            let index = index.or_else(|| std::env::var("JOB_COMPLETION_INDEX").ok()?.parse().ok());
            crate::commands::exit_code(crate::commands::features_shard_command(&spec, index, count, &output, report.as_deref()))
        }
        Command::Drift { reference, current, columns, method, threshold, output } => crate::commands::exit_code(
            crate::commands::drift_command(&reference, &current, &columns, &method, threshold, output.as_deref()),
        ),
        Command::ForceUnlock { id, directory } => crate::commands::exit_code(crate::commands::force_unlock_command(&directory, &id)),
        Command::History { action: None, directory, json } => {
            crate::commands::exit_code(crate::commands::history_command(&directory, None, json))
        }
        Command::History { action: Some(HistoryAction::Show { serial, directory, json }), .. } => {
            crate::commands::exit_code(crate::commands::history_command(&directory, Some(serial), json))
        }
    }
}
