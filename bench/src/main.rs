//! The mlops benchmark harness.
//!
//! `cargo run --release -p mlops-bench -- WORKLOAD [--runs N] [--json FILE] [--sizes 100,1000,10000] [--one-file] [--keep]`
//!
//! - `validate`: configurations of chains bucket -> dataset -> feature_set ->
//!   training -> model -> serving with references between them; the whole
//!   front end, in-process.
//! - `plan`: a no-op plan (refresh through the local provider, evaluation
//!   with the planner, diff) of chains bucket -> dataset -> feature_set ->
//!   monitor that were applied beforehand.
//! - `apply`: creating that many buckets with the local provider, every
//!   record made durable in the state journal as it completes.
//! - `apply-engine`: the same with a provider that does nothing, which
//!   measures the engine alone (scheduling, residuals, the durable journal).
//!
//! - `upload`: a dataset of `--size-mib` MiB (default 1024) stored in S3 on
//!   loopback by `mlops apply`, side by side with `aws s3 cp` (see
//!   [`comparisons`]).
//!
//! - `hash`: content hashing of one `--size-mib` MiB file and of
//!   `--small-files` small files (default 10,000) by `mlops plan`, side by
//!   side with `dvc add`, `sha256sum` and `b3sum`.
//!
//! - `features`: `mlops plan` of `--feature-sets` feature sets (default
//!   500) side by side with `feast plan` of as many feature views.
//! - `compute`, `windows`: a feature set over `--rows` generated
//!   transactions (default 2,000,000), row-level or a 7-day window, side
//!   by side with polars and DuckDB; `validation`: the dataset's schema
//!   checked, side by side with pandera (polars backend); `large`: peak
//!   memory storing a `--size-gib` dataset (default 13) and computing its
//!   features, mlops alone.
//!
//! `validate` and `plan` spread the blocks over files of 250 chains, as real
//! configurations are spread; `--one-file` writes them all into one file.
//!
//! Each prints median, min and max wall time and peak memory per size.
//! Absolute times on shared 2-core machines are noisy; the scaling between
//! sizes is the figure to watch.

mod comparisons;
mod peers;

/// The allocator the `mlops` binary uses, so in-process figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// At most this many runs of `mlops` as its own process per size.
const PROCESS_RUNS: usize = 5;

use mlops_compiler::check::{check_directory, CheckOptions};

/// The head of every generated chain: a bucket and a dataset in it.
fn bucket_and_dataset(chain: usize) -> String {
    format!(
        r#"bucket "b{chain}" {{
  name = "bucket-{chain}"
}}

dataset "d{chain}" {{
  bucket = bucket.b{chain}
  source = "./data.csv"
  schema {{
    column "id"     {{ type = string }}
    column "amount" {{ type = float, min = 0 }}
    column "age"    {{ type = int, min = 0, max = 150 }}
  }}
}}

"#
    )
}

/// Writes a configuration with `resources` resources (whole chains of six,
/// at most `resources`: the compiler's limit is 100,000 instances).
fn generate(directory: &Path, resources: usize) {
    std::fs::create_dir_all(directory).unwrap();
    std::fs::write(directory.join("data.csv"), "id,amount,age\na,1.5,30\n").unwrap();
    write_spread(directory, (resources / 6).max(1), 250, |chain| {
        bucket_and_dataset(chain)
            + &format!(
                r#"feature_set "f{chain}" {{
  dataset = dataset.d{chain}
  entity  = "id"
  feature "amount_log" {{
    type = float
    expr = log1p(row.amount)
  }}
  feature "adult" {{
    type = bool
    expr = row.age >= 21
  }}
}}

training "t{chain}" {{
  command         = ["python3", "train.py"]
  inputs          = {{ train = feature_set.f{chain} }}
  hyperparameters = {{ learning_rate = 0.1 }}
  metrics         = ["auc"]
  resources {{
    memory = "4Gi"
  }}
  timeout = "1h"
}}

model "m{chain}" {{
  source = training.t{chain}
  gate "auc" {{
    condition     = training.t{chain}.metrics.auc >= 0.8
    error_message = "auc too low"
  }}
}}

serving "s{chain}" {{
  model   = model.m{chain}
  command = ["python3", "serve.py"]
}}

"#
            )
    });
}

/// Writes `count` generated blocks spread over files of `per_file`, as real
/// configurations are spread.
fn write_spread(directory: &Path, count: usize, per_file: usize, block: impl Fn(usize) -> String) {
    let per_file = if ONE_FILE.load(std::sync::atomic::Ordering::Relaxed) { count.max(1) } else { per_file };
    let files = count.div_ceil(per_file).max(1);
    for file in 0..files {
        let text: String = ((file * count / files)..((file + 1) * count / files)).map(&block).collect();
        std::fs::write(directory.join(format!("part{file:03}.mlops.hcl")), text).unwrap();
    }
}

/// Chains of bucket -> dataset -> feature_set -> monitor: every kind the local
/// provider applies without running user code.
fn generate_applicable(directory: &Path, resources: usize) {
    std::fs::create_dir_all(directory).unwrap();
    std::fs::write(directory.join("data.csv"), "id,amount,age\na,1.5,30\nb,2.5,41\n").unwrap();
    write_spread(directory, (resources / 4).max(1), 250, |chain| {
        bucket_and_dataset(chain)
            + &format!(
                r#"feature_set "f{chain}" {{
  dataset = dataset.d{chain}
  entity  = "id"
  feature "amount_log" {{
    type = float
    expr = log1p(row.amount)
  }}
}}

monitor "m{chain}" {{
  reference = dataset.d{chain}
  current   = "./data.csv"
  columns   = ["amount"]
  threshold = 0.2
}}

"#
            )
    });
}

fn generate_buckets(directory: &Path, resources: usize) {
    std::fs::create_dir_all(directory).unwrap();
    write_spread(directory, resources, 1000, |index| format!("bucket \"b{index}\" {{\n  name = \"bucket-{index}\"\n}}\n\n"));
}

struct Quiet;

impl mlops_engine::apply::Reporter for Quiet {
    fn event(&self, _event: mlops_engine::apply::ApplyEvent) {}
}

/// A provider that touches nothing, to measure the engine alone: planning,
/// scheduling, and the durable state journal. Its buckets exist only in
/// state.
struct NothingProvider {
    kinds: mlops_provider_api::Kinds,
}

impl NothingProvider {
    fn new() -> NothingProvider {
        NothingProvider { kinds: mlops_provider_api::Kinds::new().resource("bucket", NothingBucket) }
    }
}

impl mlops_provider_api::Provider for NothingProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn kinds(&self) -> &mlops_provider_api::Kinds {
        &self.kinds
    }
}

struct NothingBucket;

impl mlops_provider_api::ResourceType for NothingBucket {
    fn plan(&self, request: mlops_provider_api::PlanRequest) -> mlops_provider_api::ProviderResult<mlops_provider_api::PlanResponse> {
        let mut planned = mlops_provider_api::Attributes::new();
        planned.insert("uri".into(), serde_json::Value::String(format!("nothing://{}", request.target.address)));
        Ok(mlops_provider_api::PlanResponse { planned_state: planned, ..Default::default() })
    }

    fn apply(
        &self,
        request: mlops_provider_api::ApplyRequest,
        _: &dyn mlops_provider_api::ApplyContext,
    ) -> mlops_provider_api::ProviderResult<mlops_provider_api::ApplyResponse> {
        let mut state = mlops_provider_api::Attributes::new();
        state.insert("uri".into(), serde_json::Value::String(format!("nothing://{}", request.target.address)));
        Ok(mlops_provider_api::ApplyResponse { state, private: serde_json::Value::Null })
    }

    fn delete(
        &self,
        _: mlops_provider_api::ApplyRequest,
        _: &dyn mlops_provider_api::ApplyContext,
    ) -> mlops_provider_api::ProviderResult<()> {
        Ok(())
    }
}

static ENGINE_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// `--one-file`: every generated block in one configuration file.
static ONE_FILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn providers() -> mlops_engine::plan::Providers {
    let mut providers = mlops_engine::plan::Providers::new();
    if ENGINE_ONLY.load(std::sync::atomic::Ordering::Relaxed) {
        providers.register("local", std::sync::Arc::new(NothingProvider::new()));
    } else {
        providers.register("local", std::sync::Arc::new(mlops_provider_local::LocalProvider::new()));
    }
    providers
}

/// Plans and applies `directory`; returns the number of changes applied and
/// how long the apply itself took (the plan before it not included).
fn apply_directory(directory: &Path) -> (usize, Duration) {
    use mlops_engine::state::{Backend, LocalBackend, Secrets};
    let backend = Backend::Local(LocalBackend::new(directory.join(".mlops/state")));
    let secrets = Secrets::from_passphrase(None);
    let state = backend.load(&secrets).unwrap();
    let outcome = mlops_engine::plan::plan(
        directory,
        "bench",
        &mlops_engine::plan::PlanOptions::default(),
        &providers(),
        &state,
        &directory.join(".mlops"),
    );
    let plan =
        outcome.plan.unwrap_or_else(|| panic!("the plan failed: {:?}", outcome.diagnostics.first().map(|diagnostic| &diagnostic.message)));
    let options = mlops_engine::apply::ApplyOptions {
        parallelism: 10,
        interrupt: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        reporter: std::sync::Arc::new(Quiet),
        command: "bench".into(),
    };
    let start = Instant::now();
    let result = mlops_engine::apply::apply(&plan, &backend, state, &providers(), &secrets, &options);
    let elapsed = start.elapsed();
    assert!(
        result.succeeded(),
        "the apply failed: {:?}",
        result.failures().next().map(|(address, diagnostic)| (address, &diagnostic.message))
    );
    (plan.changes.iter().filter(|change| change.is_change()).count(), elapsed)
}

/// A no-op plan of `directory`; returns the number of resources planned.
fn plan_directory(directory: &Path) -> usize {
    use mlops_engine::state::{LocalBackend, Secrets};
    let backend = LocalBackend::new(directory.join(".mlops/state"));
    let state = backend.load(&Secrets::from_passphrase(None)).unwrap();
    let outcome = mlops_engine::plan::plan(
        directory,
        "bench",
        &mlops_engine::plan::PlanOptions::default(),
        &providers(),
        &state,
        &directory.join(".mlops"),
    );
    let plan = outcome.plan.expect("the plan succeeds");
    assert!(!plan.has_changes(), "the plan after apply is not empty");
    plan.changes.len()
}

fn peak_memory_megabytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes / 1024.0)
}

/// The value after `--name` on the command line.
fn option<'a>(arguments: &'a [String], name: &str) -> Option<&'a str> {
    arguments.iter().position(|argument| argument == name).and_then(|index| arguments.get(index + 1)).map(String::as_str)
}

fn main() {
    // As the `mlops` binary does (see its `keep_freed_memory`): mimalloc's
    // `purge_delay`, option 15 of mimalloc.h, set to never.
    // SAFETY: sets one integer option before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(15, -1) }
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.first().map(String::as_str) == Some(peers::MEASURE_CHILD) {
        std::process::exit(peers::run_measured_child(&arguments[1..]));
    }
    let runs: usize = option(&arguments, "--runs").and_then(|runs| runs.parse().ok()).unwrap_or(7);
    if runs == 0 {
        eprintln!("error: --runs must be at least 1 (a median needs a run)");
        std::process::exit(2);
    }
    let json_path = option(&arguments, "--json").map(PathBuf::from);
    // Leaves the generated configurations (and state) behind, for profiling.
    let keep = arguments.iter().any(|argument| argument == "--keep");
    let workload = arguments.first().map(String::as_str).unwrap_or("validate").to_owned();
    let sizes: Vec<usize> = option(&arguments, "--sizes")
        .map(|sizes| sizes.split(',').filter_map(|size| size.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1_000, 10_000]);
    let workloads =
        ["validate", "plan", "apply", "apply-engine", "upload", "hash", "features", "compute", "windows", "validation", "large"];
    if !workloads.contains(&workload.as_str()) {
        eprintln!("error: unknown workload `{workload}`; available: {}", workloads.join(", "));
        std::process::exit(1);
    }
    let size_mib: u64 = option(&arguments, "--size-mib").and_then(|size| size.parse().ok()).unwrap_or(1024);
    let small_files: usize = option(&arguments, "--small-files").and_then(|count| count.parse().ok()).unwrap_or(10_000);
    let feature_sets: usize = option(&arguments, "--feature-sets").and_then(|count| count.parse().ok()).unwrap_or(500);
    let rows: usize = option(&arguments, "--rows").and_then(|count| count.parse().ok()).unwrap_or(2_000_000);
    let size_gib: f64 = option(&arguments, "--size-gib").and_then(|size| size.parse().ok()).unwrap_or(13.0);
    if ["upload", "hash", "features", "compute", "windows", "validation", "large"].contains(&workload.as_str()) {
        let root = std::env::temp_dir().join(format!("mlops-bench-{}", std::process::id()));
        let result = std::fs::create_dir_all(&root).map_err(|error| error.to_string()).and_then(|()| match workload.as_str() {
            "upload" => comparisons::upload(&root, runs, size_mib),
            "hash" => comparisons::hashing(&root, runs, size_mib, small_files),
            "compute" => comparisons::compute(&root, runs, rows, false),
            "windows" => comparisons::compute(&root, runs, rows, true),
            "validation" => comparisons::validation(&root, runs, rows),
            "large" => comparisons::large(&root, size_gib),
            _ => comparisons::feature_plans(&root, runs, feature_sets),
        });
        if keep {
            println!("inputs kept in {}", root.display());
        } else {
            let _ = std::fs::remove_dir_all(&root);
        }
        match result {
            Ok(report) => {
                if let Some(path) = json_path {
                    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
                    println!("wrote {}", path.display());
                }
                return;
            }
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        }
    }
    ENGINE_ONLY.store(workload == "apply-engine", std::sync::atomic::Ordering::Relaxed);
    ONE_FILE.store(arguments.iter().any(|argument| argument == "--one-file"), std::sync::atomic::Ordering::Relaxed);
    let root = std::env::temp_dir().join(format!("mlops-bench-{}", std::process::id()));
    let mut rows = Vec::new();
    let what = match workload.as_str() {
        "validate" => "validate (parse + check)",
        "plan" => "no-op plan (refresh + evaluate + diff) after an apply, local provider",
        "apply-engine" => "apply of buckets with a provider that does nothing: the engine and the durable journal alone",
        _ => "apply of buckets (after planning them), local provider, durable state per record",
    };
    let layout = if ONE_FILE.load(std::sync::atomic::Ordering::Relaxed) { "all in one file" } else { "in files of 250 chains" };
    println!("workload: {what}, {layout}, {runs} runs each");
    println!(
        "{:>10} {:>12} {:>12} {:>12} {:>14} {:>14} {:>12}",
        "resources", "median ms", "min ms", "max ms", "us/resource", "resources/s", "peak MB"
    );
    for size in sizes {
        let directory = root.join(size.to_string());
        match workload.as_str() {
            "validate" => generate(&directory, size),
            "plan" => {
                generate_applicable(&directory, size);
                apply_directory(&directory);
            }
            _ => {}
        }
        let mut times: Vec<Duration> = Vec::new();
        let mut resources = 0;
        for run in 0..runs {
            let (elapsed, count) = match workload.as_str() {
                "validate" => {
                    let start = Instant::now();
                    let result = check_directory(&directory, "bench", &CheckOptions::default());
                    let elapsed = start.elapsed();
                    assert!(
                        result.diagnostics.is_empty(),
                        "generated configuration has diagnostics: {:?}",
                        result.diagnostics.first().map(|diagnostic| &diagnostic.message)
                    );
                    (elapsed, result.root.map_or(0, |root| root.all_resources().len()))
                }
                "plan" => {
                    let start = Instant::now();
                    let count = plan_directory(&directory);
                    (start.elapsed(), count)
                }
                _ => {
                    let run_directory = directory.join(run.to_string());
                    generate_buckets(&run_directory, size);
                    let (count, elapsed) = apply_directory(&run_directory);
                    let _ = std::fs::remove_dir_all(&run_directory);
                    (elapsed, count)
                }
            };
            times.push(elapsed);
            resources = count;
        }
        times.sort();
        let median = times[times.len() / 2].as_secs_f64() * 1000.0;
        let (min, max) = (times[0].as_secs_f64() * 1000.0, times[times.len() - 1].as_secs_f64() * 1000.0);
        let peak = peak_memory_megabytes().unwrap_or(f64::NAN);
        let per_second = resources as f64 / (median / 1000.0);
        println!(
            "{resources:>10} {median:>12.1} {min:>12.1} {max:>12.1} {:>14.1} {per_second:>14.0} {peak:>12.1}",
            median * 1000.0 / resources as f64
        );
        let mut row = serde_json::json!({ "resources": resources, "median_ms": median, "min_ms": min, "max_ms": max, "resources_per_second": per_second, "peak_memory_mb": peak });
        // The in-process peak includes the generation (and, for plan, the
        // apply before it): the command on its own is what users see.
        if workload == "validate" || workload == "plan" {
            // Each process run on its own: one run alone was often the slow
            // one of a noisy machine (a fresh process faults in every page).
            let mut process = comparisons::Series::new("mlops");
            let mut failure = None;
            // Found (or built) once, not once per run.
            let mlops = peers::mlops_binary();
            for _ in 0..runs.min(PROCESS_RUNS) {
                let measured = mlops.clone().and_then(|mlops| {
                    let mut command = std::process::Command::new(mlops);
                    command.current_dir(&directory).arg(&workload).env("NO_COLOR", "1");
                    peers::measure(&mut command)
                });
                match measured {
                    Ok(measured) => process.runs.push(measured),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            match failure {
                None => {
                    let seconds = process.sorted_seconds();
                    let peak = process.runs.iter().map(|run| run.peak_megabytes).fold(0.0, f64::max);
                    let (first, last) = (seconds[0] * 1000.0, seconds[seconds.len() - 1] * 1000.0);
                    println!(
                        "{:>10} `mlops {workload}` as its own process: median {:.1} ms ({first:.1}-{last:.1} over {} runs), peak {peak:.1} MB",
                        "",
                        process.median() * 1000.0,
                        seconds.len(),
                    );
                    row["process_ms"] = serde_json::json!(process.median() * 1000.0);
                    row["process_min_ms"] = serde_json::json!(first);
                    row["process_max_ms"] = serde_json::json!(last);
                    row["process_peak_memory_mb"] = serde_json::json!(peak);
                }
                Some(error) => println!("{:>10} `mlops {workload}` as its own process failed: {error}", ""),
            }
        }
        rows.push(row);
        if keep {
            println!("{:>10} inputs kept in {}", "", directory.display());
        } else {
            let _ = std::fs::remove_dir_all(&directory);
        }
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    if let Some(path) = json_path {
        let report = serde_json::json!({ "workload": workload, "runs": runs, "results": rows });
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
        println!("wrote {}", path.display());
    }
}
