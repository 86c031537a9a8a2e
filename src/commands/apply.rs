//! `mlops apply` and `mlops destroy`: plan (or read a saved plan, refused
//! when stale), ask, apply with live progress, and say what happened.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_compiler::source::SourceMap;
use mlops_engine::apply::{apply, ApplyEvent, ApplyOptions, ChangeOutcome, Reporter};
use mlops_engine::state::Secrets;
use mlops_provider_api::Action;

use super::plan::make_plan;
use super::{
    colour, fail, note_unreadable_secrets, print_outputs, providers, read_saved_plan, redacted_command, report, stderr_colour, workspace,
    CommandResult, PlanArguments,
};
use crate::plan_render::{render_text, Style};

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

pub fn apply_command(
    arguments: &PlanArguments,
    auto_approve: bool,
    destroy: bool,
    delete_retained: bool,
    lock_timeout: &str,
) -> CommandResult {
    let lock_timeout = match mlops_compiler::units::check_duration(lock_timeout) {
        Ok(milliseconds) => std::time::Duration::from_millis(milliseconds as u64),
        Err(rejection) => {
            return fail(
                Diagnostic::error(codes::INVALID_DURATION, format!("-lock-timeout: {}", rejection.message)).with_help(rejection.help),
            )
        }
    };
    let waiting = |holder: &mlops_engine::state::LockHolder| {
        errln!("The state is locked by {holder}; waiting up to {} for it (-lock-timeout).", format_wait(lock_timeout));
    };
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
        let (plan, workspace) = read_saved_plan(&path, &bytes, &secrets)?;
        if plan.secrets_withheld {
            return fail(
                Diagnostic::error(codes::STALE_PLAN, "this saved plan could not store its sensitive values, so it cannot be applied")
                    .with_help("set MLOPS_STATE_KEY when saving a plan that uses sensitive values, or apply the directory directly"),
            );
        }
        let (lock, _) = workspace.backend.lock_waiting("mlops apply", lock_timeout, &waiting)?;
        let state = workspace.backend.load(&secrets)?;
        if let Some(why) = mlops_engine::plan::saved_plan_staleness(&plan, &state) {
            return fail(
                Diagnostic::error(codes::STALE_PLAN, format!("the saved plan `{}` is stale: {why}", path.display()))
                    .with_help("make a new plan with `mlops plan -out FILE`, review it, and apply that"),
            );
        }
        out!("{}", render_text(&plan, Style { colour: colour() }));
        (plan, workspace, lock, state)
    } else {
        let workspace = workspace(&arguments.directory)?;
        let (lock, dead_holder) =
            workspace.backend.lock_waiting(if destroy { "mlops destroy" } else { "mlops apply" }, lock_timeout, &waiting)?;
        if let Some(holder) = dead_holder {
            let _ = writeln!(
                std::io::stderr(),
                "note: the lock left by process {} ({}), which is no longer running, was cleared",
                holder.pid,
                holder.command
            );
        }
        let state = workspace.backend.load(&secrets)?;
        note_unreadable_secrets(&state);
        let planned = make_plan(arguments, &workspace, &state, destroy, delete_retained)?;
        report(&planned.diagnostics, &planned.sources);
        out!("{}", render_text(&planned.plan, Style { colour: colour() }));
        if !planned.plan.has_changes() && planned.plan.refreshed_records() == 0 {
            return Ok(0);
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
                return Ok(1);
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
            return Ok(1);
        }
        return Err(error.into());
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
        return Ok(1);
    }
    if result.succeeded() {
        outln!("{verb} complete: {summary}.");
        print_outputs(&result.state);
        Ok(0)
    } else {
        outln!(
            "{verb} failed: {summary}; {} failed, {} skipped. Fix the errors above and run `mlops {}` again; finished work is not repeated.",
            failures.len(),
            skipped.len(),
            if destroy { "destroy" } else { "apply" }
        );
        Ok(1)
    }
}

/// `90s`, `5m`, `1h`: a wait as the user wrote it, roughly.
fn format_wait(wait: std::time::Duration) -> String {
    let seconds = wait.as_secs();
    if seconds >= 3600 && seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else if seconds >= 60 && seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        format!("{}s", seconds.max(1))
    }
}
