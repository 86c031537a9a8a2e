//! The commands that work on state: init, plan, apply, destroy, show,
//! output, state, graph, lineage and force-unlock.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mlops_compiler::address::{Mode, ResourceAddress};
use mlops_compiler::check::{check_directory, CheckOptions, VariableOrigin};
use mlops_compiler::diagnostic::render::{json_report, render_human_all, HumanOptions};
use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_compiler::source::SourceMap;
use mlops_compiler::value::Value;
use mlops_engine::apply::{apply, ApplyEvent, ApplyOptions, ChangeOutcome, Reporter};
use mlops_engine::plan::{plan, Plan, PlanOptions, Providers, SigningKey};
use mlops_engine::state::{Backend, LocalBackend, RemoteBackend, Secrets, State, StateError};
use mlops_provider_api::Action;
use serde_json::{json, Value as Json};

use crate::plan_render::{render_json, render_markdown, render_text, summary_line, Style};

/// What the planning commands share.
#[derive(Debug, Clone, Default)]
pub struct PlanArguments {
    pub directory: PathBuf,
    pub variables: Vec<String>,
    pub variable_files: Vec<PathBuf>,
    pub targets: Vec<String>,
    pub excludes: Vec<String>,
    pub refresh: bool,
    pub parallelism: usize,
}

fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

fn stderr_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

fn width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|columns| columns.parse().ok()).unwrap_or(100)
}

/// Prints diagnostics to stderr; returns how many were errors.
fn report(diagnostics: &[Diagnostic], sources: &SourceMap) -> usize {
    let rendered = render_human_all(diagnostics, sources, HumanOptions { colour: stderr_colour(), width: width() });
    let _ = std::io::stderr().write_all(rendered.as_bytes());
    diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count()
}

fn fail(diagnostic: Diagnostic) -> i32 {
    report(&[diagnostic], &SourceMap::default());
    1
}

fn display_directory(directory: &Path) -> String {
    let text = directory.display().to_string();
    let trimmed = text.trim_end_matches('/').trim_start_matches("./");
    if trimmed.is_empty() || trimmed == "." {
        String::new()
    } else {
        trimmed.to_owned()
    }
}

/// Where a configuration keeps its state and provider data.
struct Workspace {
    directory: PathBuf,
    data_directory: PathBuf,
    backend: Backend,
}

/// The configuration directory and its state backend. Problems are
/// reported here; the error is the exit code.
fn workspace(directory: &Path) -> Result<Workspace, i32> {
    let directory = directory.canonicalize().map_err(|error| {
        fail(
            Diagnostic::error(
                codes::UNREADABLE_FILE,
                format!("cannot open the configuration directory `{}`: {error}", directory.display()),
            )
            .with_help("run mlops in a configuration directory, or pass its path"),
        )
    })?;
    // The backend block, if any: parsing is enough (a backend takes literals),
    // and the configuration is checked in full by the command itself.
    let mut sources = SourceMap::default();
    let mut ignored = mlops_compiler::diagnostic::Diagnostics::default();
    let loaded = mlops_compiler::loader::load_directory(&directory, "", &mut sources, &mut ignored);
    let block = loaded
        .iter()
        .flat_map(|loaded| &loaded.files)
        .flat_map(|(_, body)| body.blocks_named("mlops"))
        .flat_map(|settings| settings.body.blocks_named("backend"))
        .next();
    let data_directory = directory.join(".mlops");
    let Some(block) = block else {
        return Ok(Workspace { backend: Backend::Local(LocalBackend::new(data_directory.join("state"))), data_directory, directory });
    };
    let reported = |diagnostic: Diagnostic| {
        report(&[diagnostic], &sources);
        1
    };
    let mut settings = mlops_provider_api::Attributes::new();
    for attribute in &block.body.attributes {
        let Some(value) = mlops_compiler::schema::literal_value(&attribute.value) else {
            return Err(reported(
                Diagnostic::error(codes::UNKNOWN_BACKEND, format!("the backend's `{}` must be a literal value", attribute.name.name))
                    .at(attribute.value.span, "not a literal")
                    .with_help("the backend is read before variables and resources are known: write the value itself"),
            ));
        };
        settings.insert(attribute.name.name.clone(), value.to_json_unredacted());
    }
    let kind = block.labels.first().map(|label| label.value.clone()).unwrap_or_default();
    let backend = match kind.as_str() {
        "local" => {
            let path = settings.get("path").and_then(Json::as_str).unwrap_or(".mlops/state");
            Backend::Local(LocalBackend::new(directory.join(path)))
        }
        "s3" => match mlops_provider_s3::S3StateStore::new(&settings) {
            Ok(store) => Backend::Remote(RemoteBackend::new(std::sync::Arc::new(store))),
            Err(error) => {
                let help = error.help().unwrap_or("see `mlops explain E0606`").to_owned();
                return Err(reported(
                    Diagnostic::error(codes::UNKNOWN_BACKEND, error.to_string()).at(block.header_span(), "this backend").with_help(help),
                ));
            }
        },
        other => {
            return Err(reported(
                Diagnostic::error(codes::UNKNOWN_BACKEND, format!("there is no state backend `{other}`"))
                    .at(block.header_span(), "unknown backend")
                    .with_help("the backends are `local` and `s3`"),
            ))
        }
    };
    Ok(Workspace { backend, data_directory, directory })
}

/// Says so when the state holds secrets this run cannot decrypt: they are
/// compared as unchanged, as if no key had ever been set.
fn note_unreadable_secrets(state: &State) {
    let count = mlops_engine::state::unreadable_secrets(state);
    if count > 0 {
        errln!(
            "note: {count} sensitive value{} in the state {} encrypted with a key this run does not have (MLOPS_STATE_KEY is unset or different); {} treated as unchanged",
            if count == 1 { "" } else { "s" },
            if count == 1 { "is" } else { "are" },
            if count == 1 { "it is" } else { "they are" }
        );
    }
}

fn state_diagnostic(error: StateError) -> Diagnostic {
    match error {
        StateError::Locked { holder } => {
            // A remote lock outlives its process; one from this machine can be checked.
            let help =
                if holder.pid != 0 && holder.host == mlops_engine::state::hostname() && !mlops_engine::state::process_alive(holder.pid) {
                    format!("process {} on this machine is no longer running; run `mlops force-unlock {}`", holder.pid, holder.id)
                } else {
                    format!("wait for it to finish; if that process is gone for good, run `mlops force-unlock {}`", holder.id)
                };
            Diagnostic::error(codes::STATE_LOCKED, format!("the state is locked by {holder}")).with_help(help)
        }
        other => {
            let help = other.help().unwrap_or_else(|| "nothing was changed".to_owned());
            Diagnostic::error(codes::STATE_ERROR, other.to_string()).with_help(help)
        }
    }
}

pub fn providers() -> Providers {
    let mut providers = Providers::new();
    providers.register("local", Arc::new(mlops_provider_local::LocalProvider::new()));
    providers.register("s3", Arc::new(mlops_provider_s3::S3Provider::new()));
    providers.register("kubernetes", Arc::new(mlops_provider_kubernetes::KubernetesProvider::new()));
    providers.register("mlflow", Arc::new(mlops_provider_mlflow::MlflowProvider::new()));
    providers.register("oci", Arc::new(mlops_provider_oci::OciProvider::new()));
    providers
}

/// Variable values and where each came from.
pub(crate) type VariableValues = (HashMap<String, Value>, HashMap<String, VariableOrigin>);

/// Parses `-var NAME=VALUE`, `-var-file FILE` and (with `environment`)
/// `MLOPS_VAR_NAME` values. `-var` wins, then `-var-file`, then the environment.
pub(crate) fn variable_values(assignments: &[String], files: &[PathBuf], environment: bool) -> Result<VariableValues, Diagnostic> {
    let mut values = HashMap::new();
    let mut origins = HashMap::new();
    if environment {
        for (name, value) in std::env::vars() {
            if let Some(name) = name.strip_prefix("MLOPS_VAR_") {
                values.insert(name.to_owned(), parse_value(&value));
                origins.insert(name.to_owned(), VariableOrigin::Environment);
            }
        }
    }
    for file in files {
        let bytes = mlops_compiler::limits::read_regular_file(file, mlops_compiler::limits::MAX_READ_FILE_BYTES).map_err(|reason| {
            Diagnostic::error(codes::UNREADABLE_FILE, format!("cannot read the variable file `{}`: {reason}", file.display()))
                .with_help("-var-file names a text file of `name = value` lines")
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Diagnostic::error(codes::INVALID_UTF8, format!("the variable file `{}` is not UTF-8 text", file.display()))
                .with_help("save the file as UTF-8")
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let body = mlops_compiler::syntax::parse_file(mlops_compiler::source::FileId(0), text).map_err(|diagnostic| {
            Diagnostic::error(codes::SYNTAX_ERROR, format!("`{}`: {}", file.display(), diagnostic.message))
                .with_help("a variable file holds lines like `name = \"value\"`")
        })?;
        for attribute in &body.attributes {
            let value = mlops_compiler::schema::literal_value(&attribute.value).ok_or_else(|| {
                Diagnostic::error(
                    codes::SYNTAX_ERROR,
                    format!("`{}`: the value of `{}` must be a literal", file.display(), attribute.name.name),
                )
                .with_help("variable files hold literal values: strings, numbers, bools, lists and maps")
            })?;
            values.insert(attribute.name.name.clone(), value);
            origins.insert(attribute.name.name.clone(), VariableOrigin::File(file.display().to_string()));
        }
    }
    for assignment in assignments {
        let Some((name, value)) = assignment.split_once('=') else {
            return Err(Diagnostic::error(codes::SYNTAX_ERROR, format!("`-var {assignment}` is not NAME=VALUE"))
                .with_help("write `-var name=value`"));
        };
        values.insert(name.trim().to_owned(), parse_value(value));
        origins.insert(name.trim().to_owned(), VariableOrigin::CommandLine);
    }
    Ok((values, origins))
}

/// A command-line value: a literal when it reads as one (`[1, 2]`, `true`), else a string.
fn parse_value(text: &str) -> Value {
    let trimmed = text.trim();
    if trimmed.starts_with('[') || trimmed.starts_with('{') || trimmed.starts_with('"') {
        if let Ok(body) = mlops_compiler::syntax::parse_file(mlops_compiler::source::FileId(0), &format!("v = {trimmed}\n")) {
            if let Some(value) = body.attributes.first().and_then(|attribute| mlops_compiler::schema::literal_value(&attribute.value)) {
                return value;
            }
        }
    }
    Value::String(text.to_owned())
}

struct Planned {
    plan: Plan,
    sources: SourceMap,
    diagnostics: Vec<Diagnostic>,
}

fn make_plan(
    arguments: &PlanArguments,
    workspace: &Workspace,
    state: &State,
    destroy: bool,
    delete_retained: bool,
) -> Result<Planned, i32> {
    let (variables, variable_origins) = match variable_values(&arguments.variables, &arguments.variable_files, true) {
        Ok(variables) => variables,
        Err(diagnostic) => return Err(fail(diagnostic)),
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
            Err(1)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

pub fn plan_command(arguments: &PlanArguments, out: Option<&Path>, format: PlanFormat, detailed_exitcode: bool, destroy: bool) -> i32 {
    let workspace = match workspace(&arguments.directory) {
        Ok(workspace) => workspace,
        Err(code) => return code,
    };
    let secrets = Secrets::from_environment();
    let state = match workspace.backend.load(&secrets) {
        Ok(state) => state,
        Err(error) => return fail(state_diagnostic(error)),
    };
    note_unreadable_secrets(&state);
    let planned = match make_plan(arguments, &workspace, &state, destroy, false) {
        Ok(planned) => planned,
        Err(code) => return code,
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
        let key = match SigningKey::for_state(&workspace.backend) {
            Ok(key) => key,
            Err(error) => return fail(state_diagnostic(error)),
        };
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
    if detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    }
}

/// Shows apply progress. Every event that ends a resource is one line; on a
/// terminal, the resources still running are spinners under an overall bar,
/// with their latest progress message and elapsed time. In CI (no terminal)
/// progress messages are plain lines too.
struct LineReporter {
    colour: bool,
    started: Instant,
    finished: AtomicUsize,
    total: usize,
    bars: Option<TerminalBars>,
}

struct TerminalBars {
    multi: indicatif::MultiProgress,
    overall: indicatif::ProgressBar,
    running: std::sync::Mutex<HashMap<String, indicatif::ProgressBar>>,
}

impl LineReporter {
    fn new(total: usize) -> LineReporter {
        let terminal = std::io::stderr().is_terminal();
        let bars = terminal.then(|| {
            let multi = indicatif::MultiProgress::new();
            let overall = multi.add(indicatif::ProgressBar::new(total as u64));
            overall.set_style(
                indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} resources")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            TerminalBars { multi, overall, running: std::sync::Mutex::new(HashMap::new()) }
        });
        LineReporter { colour: stderr_colour(), started: Instant::now(), finished: AtomicUsize::new(0), total, bars }
    }

    fn line(&self, text: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let line = format!("[{elapsed:>6.1}s] {text}");
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(line);
            }
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    fn done(&self, address: &str) {
        if let Some(bars) = &self.bars {
            if let Some(bar) = bars.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(address) {
                bar.finish_and_clear();
                bars.multi.remove(&bar);
            }
            bars.overall.inc(1);
            if bars.overall.position() >= self.total as u64 {
                bars.overall.finish_and_clear();
            }
        }
    }
}

impl Reporter for LineReporter {
    fn event(&self, event: ApplyEvent) {
        let paint = |code: &str, text: &str| if self.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() };
        match event {
            ApplyEvent::Started { address, action } => match &self.bars {
                Some(bars) => {
                    let bar = bars.multi.insert_before(&bars.overall, indicatif::ProgressBar::new_spinner());
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} {prefix} {msg} ({elapsed})")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(address.clone());
                    bar.set_message(format!("{}...", progressive(action)));
                    bar.enable_steady_tick(std::time::Duration::from_millis(120));
                    bars.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(address, bar);
                }
                None => self.line(&format!("{address}: {}...", progressive(action))),
            },
            ApplyEvent::Progress { address, message } => match &self.bars {
                Some(bars) => {
                    if let Some(bar) = bars.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&address) {
                        bar.set_message(message);
                    }
                }
                None => self.line(&format!("{address}: {message}")),
            },
            ApplyEvent::Finished { address, action, elapsed } => {
                let done = self.finished.fetch_add(1, Ordering::SeqCst) + 1;
                self.done(&address);
                self.line(&paint("32", &format!("{address}: {} in {:.1}s [{done}/{}]", past(action), elapsed.as_secs_f64(), self.total)));
            }
            ApplyEvent::Failed { address, action, message } => {
                self.finished.fetch_add(1, Ordering::SeqCst);
                self.done(&address);
                self.line(&paint("31", &format!("{address}: {} failed: {}", action.verb(), message.lines().next().unwrap_or_default())));
            }
            ApplyEvent::Skipped { address, because } => {
                self.done(&address);
                self.line(&paint("33", &format!("{address}: skipped, because {because}")));
            }
        }
    }
}

fn progressive(action: Action) -> &'static str {
    match action {
        Action::Create => "creating",
        Action::Update => "updating",
        Action::Replace => "replacing",
        Action::Delete => "destroying",
        Action::Forget => "forgetting",
        Action::Read => "reading",
        Action::NoOp => "checking",
    }
}

fn past(action: Action) -> &'static str {
    match action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Replace => "replaced",
        Action::Delete => "destroyed",
        Action::Forget => "forgotten",
        Action::Read => "read",
        Action::NoOp => "checked",
    }
}

static INTERRUPT: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// Ctrl-C once: stop scheduling and save. Twice: stop now (state stays consistent).
fn interrupt_flag() -> Arc<AtomicBool> {
    INTERRUPT
        .get_or_init(|| {
            let flag = Arc::new(AtomicBool::new(false));
            // Calls to remote servers in flight watch it too, and stop at once.
            mlops_provider_support::remote::install_interrupt(flag.clone());
            let handler_flag = flag.clone();
            let _ = ctrlc::set_handler(move || {
                if handler_flag.swap(true, Ordering::SeqCst) {
                    let _ = writeln!(std::io::stderr(), "\nStopping now. Finished work is saved in the state.");
                    std::process::exit(130);
                }
                let _ = writeln!(
                    std::io::stderr(),
                    "\nInterrupted: no new work starts; waiting for what runs to finish or record its progress (Ctrl-C again to stop at once)."
                );
            });
            flag
        })
        .clone()
}

fn confirm(question: &str) -> bool {
    out!("{question}\n  Only 'yes' will be accepted: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    answer.trim() == "yes"
}

pub fn apply_command(arguments: &PlanArguments, auto_approve: bool, destroy: bool, delete_retained: bool) -> i32 {
    // A saved plan instead of a directory?
    let saved_plan = arguments.directory.is_file().then(|| arguments.directory.clone());
    let secrets = Secrets::from_environment();
    let (plan, workspace, lock, state) = if let Some(path) = saved_plan {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                return fail(
                    Diagnostic::error(codes::STATE_ERROR, format!("cannot read the saved plan `{}`: {error}", path.display()))
                        .with_help("check the path"),
                )
            }
        };
        let (plan, workspace) = match read_saved_plan(&path, &bytes, &secrets) {
            Ok(read) => read,
            Err(code) => return code,
        };
        if plan.secrets_withheld {
            return fail(
                Diagnostic::error(codes::STALE_PLAN, "this saved plan could not store its sensitive values, so it cannot be applied")
                    .with_help("set MLOPS_STATE_KEY when saving a plan that uses sensitive values, or apply the directory directly"),
            );
        }
        let (lock, _) = match workspace.backend.lock("mlops apply") {
            Ok(lock) => lock,
            Err(error) => return fail(state_diagnostic(error)),
        };
        let state = match workspace.backend.load(&secrets) {
            Ok(state) => state,
            Err(error) => return fail(state_diagnostic(error)),
        };
        let current = check_directory(&plan.root_directory, "", &CheckOptions::default());
        let files_changed = mlops_engine::plan::config_hash(&current.sources, &HashMap::new()) != plan.files_hash;
        if files_changed || state.serial != plan.state_serial || state.lineage != plan.state_lineage {
            let why = if files_changed {
                "the configuration files changed since it was made".to_owned()
            } else {
                format!("the state changed since it was made (serial {} then, {} now)", plan.state_serial, state.serial)
            };
            return fail(
                Diagnostic::error(codes::STALE_PLAN, format!("the saved plan `{}` is stale: {why}", path.display()))
                    .with_help("make a new plan with `mlops plan -out FILE`, review it, and apply that"),
            );
        }
        out!("{}", render_text(&plan, Style { colour: colour() }));
        (plan, workspace, lock, state)
    } else {
        let workspace = match workspace(&arguments.directory) {
            Ok(workspace) => workspace,
            Err(code) => return code,
        };
        let (lock, dead_holder) = match workspace.backend.lock(if destroy { "mlops destroy" } else { "mlops apply" }) {
            Ok(lock) => lock,
            Err(error) => return fail(state_diagnostic(error)),
        };
        if let Some(holder) = dead_holder {
            let _ = writeln!(
                std::io::stderr(),
                "note: the lock left by process {} ({}), which is no longer running, was cleared",
                holder.pid,
                holder.command
            );
        }
        let state = match workspace.backend.load(&secrets) {
            Ok(state) => state,
            Err(error) => return fail(state_diagnostic(error)),
        };
        note_unreadable_secrets(&state);
        let planned = match make_plan(arguments, &workspace, &state, destroy, delete_retained) {
            Ok(planned) => planned,
            Err(code) => return code,
        };
        report(&planned.diagnostics, &planned.sources);
        out!("{}", render_text(&planned.plan, Style { colour: colour() }));
        if !planned.plan.has_changes() && planned.plan.refreshed_records() == 0 {
            return 0;
        }
        // Only recording drift in the state changes nothing to approve.
        if !auto_approve && planned.plan.has_changes() {
            if !std::io::stdin().is_terminal() {
                return fail(
                    Diagnostic::error(codes::STALE_PLAN, "apply needs approval, and there is no terminal to ask")
                        .with_help("pass --auto-approve, or apply a reviewed saved plan"),
                );
            }
            if !confirm("\nDo you want to perform these actions?") {
                outln!("Apply cancelled.");
                return 1;
            }
        }
        (planned.plan, workspace, lock, state)
    };

    let total = plan.changes.iter().filter(|change| change.is_change()).count();
    let reporter = Arc::new(LineReporter::new(total));
    let options =
        ApplyOptions { parallelism: arguments.parallelism.max(1), interrupt: interrupt_flag(), reporter, command: redacted_command() };
    let result = apply(&plan, &workspace.backend, state, &providers(), &secrets, &options);
    drop(lock);
    let failures: Vec<Diagnostic> = result.failures().map(|(_, diagnostic)| diagnostic.clone()).collect();
    outln!();
    if !failures.is_empty() {
        report(&failures, &SourceMap::default());
    }
    let skipped: Vec<(&String, &String)> = result
        .outcomes
        .iter()
        .filter_map(|(address, (_, outcome))| match outcome {
            ChangeOutcome::Skipped(because) => Some((address, because)),
            _ => None,
        })
        .collect();
    for (address, because) in &skipped {
        outln!("skipped {address}: {because}");
    }
    if let Some(error) = result.state_error {
        // Said already, for the resource whose record could not be saved.
        if failures.iter().any(|failure| failure.code == codes::STATE_ERROR) {
            return 1;
        }
        return fail(state_diagnostic(error));
    }
    let verb = if destroy { "Destroy" } else { "Apply" };
    let recorded = plan.refreshed_records();
    let summary = format!(
        "{} added, {} changed, {} replaced, {} destroyed{}{}",
        result.count(Action::Create),
        result.count(Action::Update),
        result.count(Action::Replace),
        result.count(Action::Delete),
        if result.count(Action::Forget) > 0 { format!(", {} forgotten", result.count(Action::Forget)) } else { String::new() },
        if recorded > 0 { format!(", {recorded} recorded as changed outside mlops") } else { String::new() }
    );
    if result.interrupted {
        outln!("{verb} interrupted: {summary}. What finished is saved; run `mlops apply` again to continue.");
        return 1;
    }
    if result.succeeded() {
        outln!("{verb} complete: {summary}.");
        print_outputs(&result.state);
        0
    } else {
        outln!(
            "{verb} failed: {summary}; {} failed, {} skipped. Fix the errors above and run `mlops {}` again; finished work is not repeated.",
            failures.len(),
            skipped.len(),
            if destroy { "destroy" } else { "apply" }
        );
        1
    }
}

/// The command line for the history, without variable values (which may be secret).
fn redacted_command() -> String {
    let mut redacted = Vec::new();
    let mut value_follows = false;
    for argument in std::env::args() {
        if value_follows {
            redacted.push(argument.split_once('=').map_or_else(|| "…".to_owned(), |(name, _)| format!("{name}=…")));
            value_follows = false;
            continue;
        }
        match argument.split_once('=') {
            Some((flag, rest)) if flag == "-var" || flag == "--var" => {
                redacted.push(format!("{flag}={}", rest.split_once('=').map_or("…".to_owned(), |(name, _)| format!("{name}=…"))));
            }
            _ => {
                value_follows = argument == "-var" || argument == "--var";
                redacted.push(argument);
            }
        }
    }
    redacted.join(" ")
}

fn print_outputs(state: &State) {
    if state.outputs.is_empty() {
        return;
    }
    outln!("\nOutputs:");
    for (name, output) in &state.outputs {
        let shown = if output.sensitive { "(sensitive)".to_owned() } else { output.value.to_string() };
        outln!("  {name} = {shown}");
    }
}

/// A saved plan, checked against the key of the state it was made for, and
/// the workspace of that state. Problems are reported; the error is the exit code.
fn read_saved_plan(path: &Path, bytes: &[u8], secrets: &Secrets) -> Result<(Plan, Workspace), i32> {
    let refused = |message: String| {
        fail(Diagnostic::error(codes::STALE_PLAN, format!("`{}`: {message}", path.display())).with_help(
            "nothing was applied; make a new plan with `mlops plan -out FILE` and review it (a saved plan is refused once edited)",
        ))
    };
    let Some(root) = Plan::saved_root_directory(bytes) else { return Err(refused("not a saved plan".to_owned())) };
    let workspace = workspace(&root)?;
    let key_for = |signed_with: &str| match signed_with {
        SigningKey::STATE_KEY => std::env::var("MLOPS_STATE_KEY")
            .ok()
            .filter(|key| !key.is_empty())
            .map(|key| SigningKey::from_passphrase(&key))
            .ok_or_else(|| "the saved plan was signed with MLOPS_STATE_KEY, which is not set".to_owned()),
        _ => match workspace.backend.existing_plan_key() {
            Ok(Some(key)) => Ok(SigningKey { key, source: SigningKey::STATE }),
            Ok(None) => Err(format!(
                "the saved plan was changed after it was made, or made for another state: the state at {} never signed a plan",
                workspace.backend.describe()
            )),
            Err(error) => Err(format!("the key that checks saved plans cannot be read: {error}")),
        },
    };
    match Plan::from_saved_json(bytes, secrets, &key_for) {
        Ok(plan) => Ok((plan, workspace)),
        Err(message) => Err(refused(message)),
    }
}

pub fn show_command(path: Option<&Path>, json_output: bool) -> i32 {
    let secrets = Secrets::from_environment();
    match path {
        Some(path) if path.is_file() => {
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(error) => {
                    return fail(
                        Diagnostic::error(codes::STATE_ERROR, format!("cannot read `{}`: {error}", path.display()))
                            .with_help("give a file written by `mlops plan -out`"),
                    )
                }
            };
            let plan = match read_saved_plan(path, &bytes, &secrets) {
                Ok((plan, _)) => plan,
                Err(code) => return code,
            };
            if json_output {
                outln!("{}", serde_json::to_string_pretty(&render_json(&plan, &[])).unwrap_or_default());
            } else {
                out!("{}", render_text(&plan, Style { colour: colour() }));
            }
            0
        }
        other => {
            let directory = other.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            let workspace = match workspace(&directory) {
                Ok(workspace) => workspace,
                Err(code) => return code,
            };
            let state = match workspace.backend.load(&Secrets::from_passphrase(None)) {
                Ok(state) => state,
                Err(error) => return fail(state_diagnostic(error)),
            };
            if json_output {
                let redacted = redacted_state(&state);
                outln!("{}", serde_json::to_string_pretty(&redacted).unwrap_or_default());
                return 0;
            }
            if state.resources.is_empty() {
                outln!("The state is empty: nothing is managed yet.");
                return 0;
            }
            outln!("# state serial {}, lineage {}", state.serial, state.lineage);
            for record in state.resources.values() {
                outln!();
                print_record(record);
            }
            print_outputs(&state);
            0
        }
    }
}

fn redacted_state(state: &State) -> Json {
    let mut copy = state.clone();
    for record in copy.resources.values_mut() {
        let paths = record.sensitive_paths.clone();
        for attributes in [&mut record.config, &mut record.state] {
            for path in &paths {
                if let Some(slot) = mlops_engine::state::json_at_mut(attributes, path) {
                    *slot = Json::String("(sensitive)".into());
                }
            }
        }
    }
    for output in copy.outputs.values_mut() {
        if output.sensitive {
            output.value = Json::String("(sensitive)".into());
        }
    }
    serde_json::to_value(copy).unwrap_or(Json::Null)
}

fn print_record(record: &mlops_engine::state::Record) {
    outln!("# {}", record.address);
    outln!("{} {{", record.kind);
    let merged = record.merged_attributes();
    for (name, value) in &merged {
        let sensitive = record.sensitive_paths.iter().any(|path| path.first() == Some(name));
        let shown = if sensitive {
            "(sensitive)".to_owned()
        } else if let Some((address, _)) = mlops_provider_api::as_reference(value) {
            address.to_owned()
        } else {
            value.to_string()
        };
        outln!("  {name} = {shown}");
    }
    outln!("}}");
}

pub fn output_command(directory: &Path, name: Option<&str>, json_output: bool) -> i32 {
    let workspace = match workspace(directory) {
        Ok(workspace) => workspace,
        Err(code) => return code,
    };
    let state = match workspace.backend.load(&Secrets::from_environment()) {
        Ok(state) => state,
        Err(error) => return fail(state_diagnostic(error)),
    };
    match name {
        Some(name) => match state.outputs.get(name) {
            Some(output) if output.sensitive && mlops_engine::state::is_sealed(&output.value) => fail(
                Diagnostic::error(codes::STATE_ERROR, format!("output `{name}` is sensitive, and its value cannot be read from the state"))
                    .with_help(
                        "sensitive values are stored only encrypted, with MLOPS_STATE_KEY: set the key it was applied with (or apply again with one)",
                    ),
            ),
            Some(output) => {
                if json_output {
                    outln!("{}", output.value);
                } else {
                    match &output.value {
                        Json::String(text) => outln!("{text}"),
                        other => outln!("{other}"),
                    }
                }
                0
            }
            None => fail(Diagnostic::error(codes::STATE_ERROR, format!("there is no output `{name}` in the state")).with_help(
                if state.outputs.is_empty() {
                    "apply the configuration first".to_owned()
                } else {
                    format!("the outputs are: {}", state.outputs.keys().cloned().collect::<Vec<_>>().join(", "))
                },
            )),
        },
        None => {
            if json_output {
                let map: serde_json::Map<String, Json> =
                    state.outputs.iter().map(|(name, output)| (name.clone(), json!({ "value": if output.sensitive { Json::String("(sensitive)".into()) } else { output.value.clone() }, "sensitive": output.sensitive }))).collect();
                outln!("{}", serde_json::to_string_pretty(&map).unwrap_or_default());
            } else {
                for (name, output) in &state.outputs {
                    outln!("{name} = {}", if output.sensitive { "(sensitive)".to_owned() } else { output.value.to_string() });
                }
            }
            0
        }
    }
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum StateCommand {
    /// List the addresses in state.
    List {
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
    /// Show one record.
    Show {
        address: String,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
    /// Stop managing a resource, without touching it.
    Rm {
        address: String,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
    /// Rename a record (after renaming its block).
    Mv {
        from: String,
        to: String,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
    /// Rebuild a damaged or missing local state from its backups.
    Restore {
        /// List what can be restored and what each choice would lose; change nothing.
        #[arg(long)]
        list: bool,
        /// What to restore: a backup's serial, or `current` (the files as they are, damaged lines skipped). Default: the newest.
        #[arg(long)]
        from: Option<String>,
        /// Restore although changes the files show were made are lost (with no backup at all: start from an empty state).
        #[arg(long)]
        accept_loss: bool,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
}

pub fn state_command(command: &StateCommand) -> i32 {
    let directory = match command {
        StateCommand::List { directory }
        | StateCommand::Show { directory, .. }
        | StateCommand::Rm { directory, .. }
        | StateCommand::Mv { directory, .. }
        | StateCommand::Restore { directory, .. } => directory,
    };
    let workspace = match workspace(directory) {
        Ok(workspace) => workspace,
        Err(code) => return code,
    };
    let secrets = Secrets::from_environment();
    let missing = |address: &str, state: &State| {
        fail(
            Diagnostic::error(codes::STATE_ERROR, format!("there is no `{address}` in the state")).with_help(
                mlops_compiler::suggest::did_you_mean(address, state.resources.keys().map(String::as_str))
                    .unwrap_or_else(|| "`mlops state list` shows the addresses".to_owned()),
            ),
        )
    };
    match command {
        StateCommand::Restore { list, from, accept_loss, .. } => restore_state(&workspace, &secrets, *list, from.as_deref(), *accept_loss),
        StateCommand::List { .. } | StateCommand::Show { .. } => {
            let state = match workspace.backend.load(&secrets) {
                Ok(state) => state,
                Err(error) => return fail(state_diagnostic(error)),
            };
            if let StateCommand::Show { address, .. } = command {
                let Some(record) = state.resources.get(address) else { return missing(address, &state) };
                print_record(record);
            } else {
                for address in state.resources.keys() {
                    outln!("{address}");
                }
            }
            0
        }
        StateCommand::Rm { address, .. } | StateCommand::Mv { from: address, .. } => {
            let (lock, _) = match workspace.backend.lock("mlops state") {
                Ok(lock) => lock,
                Err(error) => return fail(state_diagnostic(error)),
            };
            let mut state = match workspace.backend.load(&secrets) {
                Ok(state) => state,
                Err(error) => return fail(state_diagnostic(error)),
            };
            let Some(mut record) = state.resources.get(address).cloned() else { return missing(address, &state) };
            // Every change goes through the journal, as in an apply: each
            // entry takes the next serial, so a writer that raced this one
            // fails instead of losing this change.
            let mut changed: Vec<mlops_engine::state::Record> = Vec::new();
            let message = if let StateCommand::Mv { to, .. } = command {
                if state.resources.contains_key(to) {
                    return fail(
                        Diagnostic::error(codes::STATE_ERROR, format!("`{to}` is already in the state"))
                            .with_help("remove it first with `mlops state rm`"),
                    );
                }
                record.address = to.clone();
                for other in state.resources.values() {
                    let mut renamed = other.clone();
                    for dependency in &mut renamed.depends_on {
                        if dependency == address {
                            *dependency = to.clone();
                        }
                    }
                    rename_references(&mut renamed.config, address, to);
                    if &renamed != other && other.address != *address {
                        changed.push(renamed);
                    }
                }
                changed.push(record);
                format!("Moved {address} to {to}.")
            } else {
                format!("Removed {address} from the state; the object itself is untouched.")
            };
            if state.lineage.is_empty() {
                state.lineage = mlops_engine::state::new_id();
            }
            let journal = match workspace.backend.open_journal(&state) {
                Ok(journal) => journal,
                Err(error) => return fail(state_diagnostic(error)),
            };
            let mut written = journal.remove_deferred(address);
            for record in &changed {
                written = written.and_then(|_| journal.put_deferred(record, &secrets));
            }
            if let Err(error) = written.and_then(|serial| journal.wait_durable(serial)) {
                return fail(state_diagnostic(error));
            }
            state.resources.remove(address);
            for record in changed {
                state.resources.insert(record.address.clone(), record);
            }
            state.serial = journal.serial();
            drop(journal);
            if let Err(error) = workspace.backend.compact(&state, &secrets) {
                return fail(state_diagnostic(error));
            }
            let _ = workspace
                .backend
                .append_history(&json!({ "time": mlops_engine::state::now(), "command": redacted_command(), "serial": state.serial }));
            drop(lock);
            outln!("{message}");
            0
        }
    }
}

/// `mlops state restore`: lists the backups, or makes one of them the state.
fn restore_state(workspace: &Workspace, secrets: &Secrets, list: bool, from: Option<&str>, accept_loss: bool) -> i32 {
    let lock = if list {
        None
    } else {
        match workspace.backend.lock("mlops state restore") {
            Ok((lock, _)) => Some(lock),
            Err(error) => return fail(state_diagnostic(error)),
        }
    };
    let candidates = match workspace.backend.backups(secrets) {
        Ok(candidates) => candidates,
        Err(error) => return fail(state_diagnostic(error)),
    };
    let describe = |candidate: &mlops_engine::state::Backup| {
        let source = if candidate.label == "current" {
            "the state files as they are".to_owned()
        } else {
            format!("backup {}{}", candidate.label, candidate.time.as_deref().map(|time| format!(" ({time})")).unwrap_or_default())
        };
        let plural = if candidate.resources == 1 { "" } else { "s" };
        let mut text = format!("serial {}: {source}, {} resource{plural}", candidate.serial, candidate.resources);
        if candidate.losses.is_empty() {
            text.push_str("; loses nothing");
        }
        for loss in &candidate.losses {
            text.push_str(&format!("\n    loses {loss}"));
        }
        text
    };
    if list {
        if candidates.is_empty() {
            outln!("There is nothing to restore: no state files and no backups in {}.", workspace.backend.describe());
        }
        for candidate in &candidates {
            let label = if candidate.label == "current" { "current".to_owned() } else { candidate.label.clone() };
            outln!("--from {label}\n    {}", describe(candidate));
        }
        return 0;
    }
    let chosen = match from {
        Some(label) => match candidates.iter().find(|candidate| candidate.label == label) {
            Some(candidate) => Some(candidate.clone()),
            None => {
                return fail(Diagnostic::error(codes::STATE_ERROR, format!("there is no backup `{label}` to restore")).with_help(format!(
                    "the choices are: {}",
                    candidates.iter().map(|candidate| candidate.label.clone()).collect::<Vec<_>>().join(", ")
                )))
            }
        },
        // The newest; between equals, the one that loses nothing.
        None => candidates.iter().max_by_key(|candidate| (candidate.serial, candidate.losses.is_empty())).cloned(),
    };
    let chosen = match chosen {
        Some(chosen) => chosen,
        None if accept_loss => mlops_engine::state::Backup::empty(),
        None => {
            return fail(Diagnostic::error(codes::STATE_ERROR, "there are no state files and no backups to restore from").with_help(
                "if everything this configuration managed is really gone, `mlops state restore --accept-loss` starts from an empty state",
            ))
        }
    };
    if !chosen.losses.is_empty() && !accept_loss {
        return fail(Diagnostic::error(codes::STATE_ERROR, format!("restoring {}", describe(&chosen).replace("\n   ", ";"))).with_help(
            "nothing was changed; `mlops state restore --list` shows every choice; add --accept-loss to restore this one anyway",
        ));
    }
    match workspace.backend.restore(&chosen, secrets, &redacted_command()) {
        Ok(restored) => {
            drop(lock);
            let plural = if restored.resources == 1 { "" } else { "s" };
            outln!(
                "Restored serial {} from {} ({} resource{plural}); the state is now at serial {}.",
                restored.restored_serial,
                if restored.from == "current" { "the state files".to_owned() } else { format!("backup {}", restored.from) },
                restored.resources,
                restored.new_serial
            );
            if let Some(aside) = restored.set_aside {
                outln!("The files it replaced are kept in {}.", aside.display());
            }
            outln!("Run `mlops plan` to compare it with what exists: refresh shows anything it is missing.");
            0
        }
        Err(error) => fail(state_diagnostic(error)),
    }
}

fn rename_references(attributes: &mut mlops_provider_api::Attributes, from: &str, to: &str) {
    fn walk(value: &mut Json, from: &str, to: &str) {
        match value {
            Json::Object(entries) => {
                if entries.get("$ref").and_then(Json::as_str) == Some(from) {
                    entries.insert("$ref".into(), Json::String(to.to_owned()));
                }
                for item in entries.values_mut() {
                    walk(item, from, to);
                }
            }
            Json::Array(items) => items.iter_mut().for_each(|item| walk(item, from, to)),
            _ => {}
        }
    }
    for value in attributes.values_mut() {
        walk(value, from, to);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

pub fn graph_command(directory: &Path, format: GraphFormat) -> i32 {
    let result = check_directory(directory, &display_directory(directory), &CheckOptions::default());
    if result.has_errors() {
        report(&result.diagnostics, &result.sources);
        return 1;
    }
    let Some(root) = result.root else { return 1 };
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
    0
}

pub fn lineage_command(directory: &Path, address: &str, json_output: bool, version: Option<&str>) -> i32 {
    let workspace = match workspace(directory) {
        Ok(workspace) => workspace,
        Err(code) => return code,
    };
    let state = match workspace.backend.load(&Secrets::from_passphrase(None)) {
        Ok(state) => state,
        Err(error) => return fail(state_diagnostic(error)),
    };
    let Some(record) = state.resources.get(address) else {
        return fail(
            Diagnostic::error(codes::STATE_ERROR, format!("there is no `{address}` in the state")).with_help(
                mlops_compiler::suggest::did_you_mean(address, state.resources.keys().map(String::as_str))
                    .unwrap_or_else(|| "lineage is read from state: apply first".to_owned()),
            ),
        );
    };
    let tree = match mlops_engine::lineage::lineage_of(&state, record, version) {
        Ok(tree) => tree,
        Err(message) => {
            return fail(Diagnostic::error(codes::STATE_ERROR, message).with_help(
                "a version's lineage is recorded when mlops registers it; the registry's tags on the version name its run and data",
            ))
        }
    };
    if json_output {
        outln!("{}", serde_json::to_string_pretty(&tree).unwrap_or_default());
    } else {
        out!("{}", mlops_engine::lineage::render_tree(&tree));
    }
    0
}

pub fn force_unlock_command(directory: &Path, id: &str) -> i32 {
    let workspace = match workspace(directory) {
        Ok(workspace) => workspace,
        Err(code) => return code,
    };
    match workspace.backend.force_unlock(id) {
        Ok(holder) => {
            outln!("Released the lock held by {holder}.");
            0
        }
        Err(error) => fail(
            Diagnostic::error(codes::STATE_LOCKED, format!("cannot force-unlock: {error}"))
                .with_help("`mlops apply` names the current holder and lock ID"),
        ),
    }
}

pub fn init_command(directory: &Path, upgrade: bool) -> i32 {
    if let Err(diagnostic) = install_registry_modules(directory, upgrade) {
        return fail(diagnostic);
    }
    let result = check_directory(directory, &display_directory(directory), &CheckOptions::default());
    if result.has_errors() {
        let errors = report(&result.diagnostics, &result.sources);
        let _ = writeln!(std::io::stderr(), "{errors} error{} found.", if errors == 1 { "" } else { "s" });
        return 1;
    }
    let workspace = match workspace(directory) {
        Ok(workspace) => workspace,
        Err(code) => return code,
    };
    match workspace.backend.initialise() {
        Ok(Some(done)) => outln!("{}{}", done[..1].to_uppercase(), &done[1..]),
        Ok(None) => {}
        Err(error) => return fail(state_diagnostic(error)),
    }
    if let Err(error) = std::fs::create_dir_all(&workspace.data_directory) {
        return fail(
            Diagnostic::error(
                codes::STATE_ERROR,
                format!("cannot create the data directory `{}`: {error}", workspace.data_directory.display()),
            )
            .with_help("check the permissions"),
        );
    }
    let gitignore = workspace.data_directory.join(".gitignore");
    if !gitignore.exists() {
        let _ = std::fs::write(&gitignore, "# Local state, objects, runs and registry: not for version control.\n*\n");
    }
    let mut providers_used: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(root) = &result.root {
        for (_, resource) in root.all_resources() {
            *providers_used.entry(resource.provider_type.clone()).or_default() += 1;
        }
    }
    let available = providers();
    for (provider, count) in &providers_used {
        match available.get(provider) {
            Ok(_) => outln!("provider {provider}: ready ({count} resource{})", if *count == 1 { "" } else { "s" }),
            Err(message) => outln!("provider {provider}: {message}"),
        }
    }
    outln!("Initialized: state in {}.", workspace.backend.describe());
    let _ = summary_line;
    0
}

/// Downloads every registry module the configuration calls (and the ones
/// those call) into the module cache, pinned in mlops.lock.hcl. A pinned
/// module is fetched by its digest, so the tag moving changes nothing until
/// `upgrade`; pins no longer used are dropped.
fn install_registry_modules(directory: &Path, upgrade: bool) -> Result<(), Diagnostic> {
    use mlops_compiler::lock;
    let locked = lock::read(directory).map_err(|message| {
        Diagnostic::error(codes::STATE_ERROR, message).with_help("fix or delete mlops.lock.hcl and run `mlops init` again")
    })?;
    let mut pins = lock::Pins::new();
    let mut pending: Vec<String> = lock::registry_sources(directory);
    let registry_failure = |source: &str, error: mlops_provider_api::ProviderError| {
        let help = error.help().unwrap_or("check the source and that the registry is reachable").to_owned();
        Diagnostic::error(codes::REMOTE_MODULE_NOT_INSTALLED, format!("cannot install \"{source}\": {error}")).with_help(help)
    };
    while let Some(source) = pending.pop() {
        if pins.contains_key(&source) {
            continue;
        }
        let named_digest = source.split_once('@').map(|(_, digest)| digest.to_owned());
        let digest = match (named_digest, locked.get(&source)) {
            (Some(digest), _) => digest,
            (None, Some(digest)) if !upgrade => {
                // The pin holds; whether the tag still points at it is worth
                // knowing (a new release, or a tag overwritten by someone).
                match mlops_provider_oci::modules::resolve(&source) {
                    Ok(now) if now != *digest => outln!(
                        "module {source}: the tag now points at {now}; keeping the pinned {digest} (`mlops init -upgrade` moves the pin)"
                    ),
                    Ok(_) => {}
                    Err(error) => {
                        outln!("module {source}: could not check whether the tag moved ({error}); keeping the pinned {digest}")
                    }
                }
                digest.clone()
            }
            _ => mlops_provider_oci::modules::resolve(&source).map_err(|error| registry_failure(&source, error))?,
        };
        let cache = lock::cache_directory(directory, &digest);
        let state = match lock::verify(&cache, &digest) {
            Ok(()) => "already downloaded",
            Err(_) => {
                mlops_provider_oci::modules::pull(&source, &digest, &cache).map_err(|error| registry_failure(&source, error))?;
                lock::verify(&cache, &digest).map_err(|problem| {
                    Diagnostic::error(
                        codes::MODULE_CONTENT_MISMATCH,
                        format!("\"{source}\" was downloaded but does not match {digest}: {problem}"),
                    )
                    .with_help("the registry served content that differs from its digest; do not use it")
                })?;
                "downloaded"
            }
        };
        let moved = locked.get(&source).filter(|before| **before != digest);
        match moved {
            Some(before) => outln!("module {source}: {before} -> {digest} ({state})"),
            None => outln!("module {source}: {digest} ({state})"),
        }
        pending.extend(lock::registry_sources(&cache));
        pins.insert(source, digest);
    }
    if pins != locked || (!pins.is_empty() && !directory.join(lock::LOCK_FILE).exists()) {
        let path = directory.join(lock::LOCK_FILE);
        mlops_engine::state::write_atomically(&path, lock::render(&pins).as_bytes()).map_err(|error| {
            Diagnostic::error(codes::STATE_ERROR, format!("cannot write {}: {error}", path.display()))
                .with_help("check the permissions and the free space of the directory")
        })?;
        outln!("Wrote {} ({} module{}).", lock::LOCK_FILE, pins.len(), if pins.len() == 1 { "" } else { "s" });
    }
    Ok(())
}

pub fn module_publish_command(directory: &Path, destination: &str) -> i32 {
    if !destination.starts_with("oci://") {
        return fail(
            Diagnostic::error(codes::INVALID_VALUE, format!("`{destination}` is not a registry destination"))
                .with_help("publish to oci://HOST/REPOSITORY:TAG"),
        );
    }
    let result = check_directory(directory, &display_directory(directory), &CheckOptions::default());
    if result.has_errors() {
        let errors = report(&result.diagnostics, &result.sources);
        let _ = writeln!(std::io::stderr(), "{errors} error{} found; nothing was published.", if errors == 1 { "" } else { "s" });
        return 1;
    }
    match mlops_provider_oci::modules::publish(directory, destination, &|line| errln!("{line}")) {
        Ok((digest, files)) => {
            outln!("Published {destination} ({files} file{}): {digest}", if files == 1 { "" } else { "s" });
            outln!("Use it with: source = \"{destination}\", then `mlops init`.");
            0
        }
        Err(error) => {
            let help = error.help().unwrap_or("check the destination and that the registry is reachable").to_owned();
            fail(Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot publish {destination}: {error}")).with_help(help))
        }
    }
}

/// A local copy of the data at `location`: the path itself, or objects
/// under an `s3://` prefix downloaded into `staging`.
fn drift_input(location: &str, staging: &Path) -> mlops_provider_api::ProviderResult<PathBuf> {
    if !location.starts_with("s3://") {
        return Ok(PathBuf::from(location.strip_prefix("file://").unwrap_or(location)));
    }
    let mut provider_config = mlops_provider_api::Attributes::new();
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
        provider_config.insert("endpoint".into(), serde_json::Value::String(endpoint));
        provider_config.insert("force_path_style".into(), serde_json::Value::Bool(true));
    }
    if let Ok(region) = std::env::var("AWS_REGION") {
        provider_config.insert("region".into(), serde_json::Value::String(region));
    }
    let target = mlops_provider_api::Target { kind: "dataset".into(), provider_config, ..Default::default() };
    let request = mlops_provider_api::FetchRequest { target, uri: location.to_owned(), destination: staging.to_path_buf(), version: None };
    mlops_provider_api::Provider::fetch(&mlops_provider_s3::S3Provider::new(), request)?;
    Ok(staging.to_path_buf())
}

/// `mlops drift`: what a monitor's CronJob runs in the cluster.
pub fn drift_command(reference: &str, current: &str, columns: &str, method: &str, threshold: f64, output: Option<&Path>) -> i32 {
    let columns: Vec<String> = columns.split(',').map(str::trim).filter(|column| !column.is_empty()).map(str::to_owned).collect();
    if columns.is_empty() {
        return fail(Diagnostic::error(codes::PROVIDER_ERROR, "no columns to compare").with_help("name them with --columns amount,age"));
    }
    let staging = std::env::temp_dir().join(format!("mlops-drift-{}", std::process::id()));
    let result = (|| {
        let reference = drift_input(reference, &staging.join("reference"))?;
        let current = drift_input(current, &staging.join("current"))?;
        mlops_provider_local::drift::compute_between(&reference, &current, &columns, method, threshold)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let (scores, drifted) = match result {
        Ok(result) => result,
        Err(error) => {
            let help = error.help().unwrap_or("check both locations and the columns");
            return fail(Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot compute drift: {error}")).with_help(help));
        }
    };
    let report = serde_json::json!({ "scores": scores, "drifted": drifted });
    outln!("{report}");
    if let Some(path) = output {
        if let Err(error) = std::fs::write(path, report.to_string()) {
            return fail(
                Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot write {}: {error}", path.display()))
                    .with_help("--output must name a writable file"),
            );
        }
    }
    0
}
