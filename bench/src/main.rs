//! The mlops benchmark harness.
//!
//! `cargo run --release -p mlops-bench -- validate [--runs N] [--json FILE]`
//! generates configurations of 100, 1,000 and 10,000 resources (chains of
//! bucket -> dataset -> feature_set -> training -> model -> serving with
//! references between them), runs the whole front end on each several times
//! in-process, and prints median, min and max wall time and peak memory.
//! Absolute times on shared 2-core machines are noisy; the scaling between
//! sizes is the figure to watch.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlops_compiler::check::{check_directory, CheckOptions};

/// Writes a configuration with `resources` resources (rounded to whole chains of six).
fn generate(directory: &Path, resources: usize) {
    std::fs::create_dir_all(directory).unwrap();
    std::fs::write(directory.join("data.csv"), "id,amount,age\na,1.5,30\n").unwrap();
    let chains = resources.div_ceil(6);
    // Spread over several files, as real configurations are.
    let files = chains.div_ceil(250).max(1);
    for file in 0..files {
        let mut text = String::new();
        for chain in (file * chains / files)..((file + 1) * chains / files) {
            text.push_str(&format!(
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

feature_set "f{chain}" {{
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
            ));
        }
        std::fs::write(directory.join(format!("part{file:03}.mlops.hcl")), text).unwrap();
    }
}

fn peak_memory_megabytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes / 1024.0)
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = arguments
        .iter()
        .position(|argument| argument == "--runs")
        .and_then(|index| arguments.get(index + 1))
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(7);
    let json_path =
        arguments.iter().position(|argument| argument == "--json").and_then(|index| arguments.get(index + 1)).map(PathBuf::from);
    let workload = arguments.first().map(String::as_str).unwrap_or("validate");
    if workload != "validate" {
        eprintln!("error: unknown workload `{workload}`; available: validate");
        std::process::exit(1);
    }
    let root = std::env::temp_dir().join(format!("mlops-bench-{}", std::process::id()));
    let mut rows = Vec::new();
    println!("workload: validate (parse + check), {runs} runs each");
    println!("{:>10} {:>12} {:>12} {:>12} {:>14} {:>12}", "resources", "median ms", "min ms", "max ms", "us/resource", "peak MB");
    for size in [100usize, 1_000, 10_000] {
        let directory = root.join(size.to_string());
        generate(&directory, size);
        let mut times: Vec<Duration> = Vec::new();
        let mut resources = 0;
        for _ in 0..runs {
            let start = Instant::now();
            let result = check_directory(&directory, "bench", &CheckOptions::default());
            times.push(start.elapsed());
            assert!(
                result.diagnostics.is_empty(),
                "generated configuration has diagnostics: {:?}",
                result.diagnostics.first().map(|diagnostic| &diagnostic.message)
            );
            resources = result.root.map_or(0, |root| root.all_resources().len());
        }
        times.sort();
        let median = times[times.len() / 2].as_secs_f64() * 1000.0;
        let (min, max) = (times[0].as_secs_f64() * 1000.0, times[times.len() - 1].as_secs_f64() * 1000.0);
        let peak = peak_memory_megabytes().unwrap_or(f64::NAN);
        println!("{resources:>10} {median:>12.1} {min:>12.1} {max:>12.1} {:>14.1} {peak:>12.1}", median * 1000.0 / resources as f64);
        rows.push(serde_json::json!({ "resources": resources, "median_ms": median, "min_ms": min, "max_ms": max, "peak_memory_mb": peak }));
    }
    let _ = std::fs::remove_dir_all(&root);
    if let Some(path) = json_path {
        let report = serde_json::json!({ "workload": "validate", "runs": runs, "results": rows });
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
        println!("wrote {}", path.display());
    }
}
