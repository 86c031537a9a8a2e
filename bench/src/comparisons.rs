//! Workloads measured side by side with a peer, in the same run, so that
//! what is reported is a ratio on the same machine at the same time:
//!
//! - `upload`: a dataset of N MiB (CSV) stored in S3 by `mlops apply` (hash,
//!   multipart upload in parallel parts, and with a schema every row
//!   validated while it goes up) against `aws s3 cp` of the same file to
//!   the same loopback server.
//! - `hash`: content hashing of one large file and of many small ones by
//!   `mlops plan` against `dvc add`, `sha256sum` and `b3sum`.
//! - `features`: `mlops plan` of N feature sets against `feast plan` of N
//!   equivalent feature views.
//! - `compute` and `windows`: a feature set computed by `mlops apply` on N
//!   generated transactions (row-level features; a 7-day sum and count per
//!   customer) against polars and DuckDB computing the same into Parquet.
//! - `validation`: the transactions' schema checked by `mlops apply` of the
//!   dataset against pandera's polars backend.
//! - `large`: peak memory on a dataset larger than half the machine's
//!   memory, mlops alone.
//!
//! Runs alternate between the tools, so that drift in the machine's load
//! hits both alike.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value as Json};

use crate::peers::{measure, mlops_binary, python_peer, Measured, Peer, S3Server};

/// The figures of one tool over all runs.
pub struct Series {
    pub tool: String,
    pub runs: Vec<Measured>,
}

impl Series {
    pub fn new(tool: impl Into<String>) -> Series {
        Series { tool: tool.into(), runs: Vec::new() }
    }

    pub fn sorted_seconds(&self) -> Vec<f64> {
        let mut seconds: Vec<f64> = self.runs.iter().map(|run| run.elapsed.as_secs_f64()).collect();
        seconds.sort_by(f64::total_cmp);
        seconds
    }

    pub fn median(&self) -> f64 {
        let seconds = self.sorted_seconds();
        seconds.get(seconds.len() / 2).copied().unwrap_or(f64::NAN)
    }

    pub fn json(&self) -> Json {
        let seconds = self.sorted_seconds();
        let peak = self.runs.iter().map(|run| run.peak_megabytes).fold(0.0, f64::max);
        json!({
            "tool": self.tool,
            "median_s": self.median(),
            "min_s": seconds.first(),
            "max_s": seconds.last(),
            "peak_memory_mb": peak,
        })
    }
}

/// Prints the table of one comparison: each tool's median, spread and peak
/// memory, and each peer's time over mlops's (above 1: mlops is faster).
pub fn report(title: &str, mlops: &Series, peers: &[Series], missing: &[(String, String)]) -> Json {
    println!("{title}");
    println!("{:<48} {:>10} {:>10} {:>10} {:>10} {:>14}", "tool", "median s", "min s", "max s", "peak MB", "time / row 1");
    let mut rows = Vec::new();
    for series in std::iter::once(mlops).chain(peers) {
        let seconds = series.sorted_seconds();
        let peak = series.runs.iter().map(|run| run.peak_megabytes).fold(0.0, f64::max);
        let ratio = series.median() / mlops.median();
        let shown = if std::ptr::eq(series, mlops) { "-".to_owned() } else { format!("{ratio:.2}x") };
        println!(
            "{:<48} {:>10.3} {:>10.3} {:>10.3} {:>10.1} {:>14}",
            series.tool,
            series.median(),
            seconds.first().copied().unwrap_or(f64::NAN),
            seconds.last().copied().unwrap_or(f64::NAN),
            peak,
            shown
        );
        let mut row = series.json();
        if !std::ptr::eq(series, mlops) {
            row["peer_over_mlops"] = json!(ratio);
        }
        rows.push(row);
    }
    for (tool, why) in missing {
        println!("{tool:<48} not measured: {why}");
    }
    json!({ "title": title, "results": rows, "missing": missing.iter().map(|(tool, why)| json!({ "tool": tool, "why": why })).collect::<Vec<_>>() })
}

/// A CSV of about `mebibytes` MiB that passes the dataset's schema.
fn write_csv(path: &Path, mebibytes: u64) -> std::io::Result<()> {
    let target = mebibytes * 1024 * 1024;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writer.write_all(b"id,amount,age\n")?;
    let mut written = 14u64;
    let mut row = 0u64;
    while written < target {
        let line = format!("user-{row:012},{}.{:02},{}\n", row % 100_000, row % 100, 18 + row % 80);
        writer.write_all(line.as_bytes())?;
        written += line.len() as u64;
        row += 1;
    }
    writer.flush()
}

/// A bucket and a dataset in it; `schema` adds the dataset's schema, which
/// every row is validated against while the file goes up.
fn upload_configuration(endpoint: &str, schema: bool) -> String {
    let schema = if schema {
        "  schema {\n    column \"id\"     { type = string }\n    column \"amount\" { type = float, min = 0 }\n    \
         column \"age\"    { type = int, min = 0, max = 150 }\n  }\n"
    } else {
        ""
    };
    format!(
        r#"variable "bucket" {{
  type = string
}}

provider "s3" {{
  region   = "us-east-1"
  endpoint = "{endpoint}"
}}

bucket "data" {{
  provider      = s3
  name          = var.bucket
  force_destroy = true
}}

dataset "events" {{
  provider = s3
  bucket   = bucket.data
  source   = "../data/events.csv"
  format   = "csv"
{schema}}}
"#
    )
}

/// `mlops apply` of one dataset against `aws s3 cp` of its file.
pub fn upload(root: &Path, runs: usize, mebibytes: u64) -> Result<Json, String> {
    let server = S3Server::start(&root.join("s3-data"))?;
    let data = root.join("data");
    std::fs::create_dir_all(&data).map_err(|error| error.to_string())?;
    let file = data.join("events.csv");
    write_csv(&file, mebibytes).map_err(|error| format!("cannot write {}: {error}", file.display()))?;
    let mut configurations = Vec::new();
    for (name, schema) in [("validated", true), ("unvalidated", false)] {
        let configuration = root.join(name);
        std::fs::create_dir_all(&configuration).map_err(|error| error.to_string())?;
        std::fs::write(configuration.join("main.mlops.hcl"), upload_configuration(&server.endpoint, schema))
            .map_err(|error| error.to_string())?;
        configurations.push(configuration);
    }
    let mlops = mlops_binary()?;
    let aws = python_peer("awscli", "awscli==1.46.3", "aws");
    let credentials = [("AWS_ACCESS_KEY_ID", server.access_key.as_str()), ("AWS_SECRET_ACCESS_KEY", server.secret_key.as_str())];
    let with_credentials = |command: &mut Command| {
        for (name, value) in credentials {
            command.env(name, value);
        }
        command.env("AWS_DEFAULT_REGION", "us-east-1").env("NO_COLOR", "1");
    };
    // Names of this run's own, so that a server kept between runs (as the
    // test command's) starts each with nothing.
    let peer_bucket = &format!("peer-uploads-{}", std::process::id());
    if let Ok(aws) = &aws.program {
        let mut make_bucket = Command::new(aws);
        make_bucket.args(["--endpoint-url", &server.endpoint, "s3", "mb", &format!("s3://{peer_bucket}")]);
        with_credentials(&mut make_bucket);
        measure(&mut make_bucket).map_err(|error| format!("cannot create the peer's bucket: {error}"))?;
    }

    let mut ours = [Series::new("mlops apply (schema checked)"), Series::new("mlops apply (no schema)")];
    let mut theirs = Series::new("aws s3 cp (awscli 1.46.3)");
    // A warm-up of each, not counted: the file is then in the page cache for all.
    for run in 0..=runs {
        for (index, (configuration, series)) in configurations.iter().zip(&mut ours).enumerate() {
            let bucket = format!("mlops-upload-{}-{index}-{run}", std::process::id());
            let _ = std::fs::remove_dir_all(configuration.join(".mlops"));
            let mut apply = Command::new(&mlops);
            apply.current_dir(configuration).args(["apply", "--auto-approve", "-var", &format!("bucket={bucket}")]);
            with_credentials(&mut apply);
            let measured = measure(&mut apply)?;
            if run > 0 {
                series.runs.push(measured);
            }
            let _ = std::fs::remove_dir_all(root.join("s3-data").join(&bucket));
        }

        if let Ok(aws) = &aws.program {
            let key = format!("s3://{peer_bucket}/run-{run}/events.csv");
            let mut copy = Command::new(aws);
            copy.args(["--endpoint-url", &server.endpoint, "s3", "cp", "--only-show-errors"]).arg(&file).arg(&key);
            with_credentials(&mut copy);
            let measured = measure(&mut copy)?;
            if run > 0 {
                theirs.runs.push(measured);
            }
            let _ = std::fs::remove_dir_all(root.join("s3-data").join(peer_bucket).join(format!("run-{run}")));
        }
    }
    let title = format!("upload of a {mebibytes} MiB CSV dataset to s3s-fs on loopback ({runs} runs each)");
    let [validated, unvalidated] = ours;
    let (mut peers, missing) = match aws.program {
        Ok(_) => (vec![theirs], Vec::new()),
        Err(why) => (Vec::new(), vec![(aws.name.to_owned(), why)]),
    };
    peers.insert(0, unvalidated);
    let mut report = report(&title, &validated, &peers, &missing);
    report["workload"] = json!("upload");
    report["mebibytes"] = json!(mebibytes);
    Ok(report)
}

/// Pseudo-random bytes (xorshift), so that no tool can shortcut the input.
fn write_random(path: &Path, bytes: u64, seed: u64) -> std::io::Result<()> {
    let mut state = seed | 1;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let take = left.min(block.len() as u64) as usize;
        writer.write_all(&block[..take])?;
        left -= take as u64;
    }
    writer.flush()
}

/// A directory of `count` files of 1 to 8 KiB, 100 to a subdirectory.
fn write_small_files(directory: &Path, count: usize) -> std::io::Result<()> {
    for index in 0..count {
        let folder = directory.join(format!("part-{:03}", index / 100));
        std::fs::create_dir_all(&folder)?;
        let size = 1024 + (index as u64 * 7919) % (7 * 1024);
        write_random(&folder.join(format!("record-{index:05}.bin")), size, index as u64 + 1)?;
    }
    Ok(())
}

/// The same tree of hard links: peers that move data into a cache (DVC)
/// get a copy of their own for each run at no cost.
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_file() {
        return std::fs::hard_link(from, to);
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        link_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}

fn every_file(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files: Vec<_> = std::fs::read_dir(path).into_iter().flatten().flatten().flat_map(|entry| every_file(&entry.path())).collect();
    files.sort();
    files
}

/// Content hashing of one large file and of many small ones: `mlops plan`
/// of a dataset over the data (its version is the BLAKE3 content hash)
/// against `dvc add` (MD5, into a fresh repository each run), `sha256sum`
/// and `b3sum` (the per-core and the all-core limits).
pub fn hashing(root: &Path, runs: usize, mebibytes: u64, small_files: usize) -> Result<Json, String> {
    let mlops = mlops_binary()?;
    let dvc = python_peer("dvc", "dvc==3.67.1", "dvc");
    let b3sum = crate::peers::cargo_peer("b3sum", "b3sum@1.8.2", "b3sum", "");
    let sha256sum = ["/usr/bin/sha256sum", "/bin/sha256sum"]
        .iter()
        .map(Path::new)
        .find(|path| path.is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| "`sha256sum` (coreutils) is not installed".to_owned());
    let large = root.join("large.bin");
    write_random(&large, mebibytes * 1024 * 1024, 42).map_err(|error| format!("cannot write {}: {error}", large.display()))?;
    let small = root.join("small");
    write_small_files(&small, small_files).map_err(|error| format!("cannot write {}: {error}", small.display()))?;

    let mut reports = Vec::new();
    for (label, data) in [(format!("one {mebibytes} MiB file"), &large), (format!("{small_files} files of 1-8 KiB"), &small)] {
        let configuration = root.join(format!("configuration-{}", reports.len()));
        std::fs::create_dir_all(&configuration).map_err(|error| error.to_string())?;
        std::fs::write(
            configuration.join("main.mlops.hcl"),
            format!(
                "bucket \"data\" {{\n  name = \"hashing\"\n}}\n\ndataset \"data\" {{\n  bucket = bucket.data\n  source = \"{}\"\n}}\n",
                data.display()
            ),
        )
        .map_err(|error| error.to_string())?;
        let files = every_file(data);
        let mut ours = Series::new("mlops plan (BLAKE3)");
        let mut peers = vec![
            (Series::new("dvc add (DVC 3.67.1, MD5)"), dvc.program.clone()),
            (Series::new("sha256sum (one core)"), sha256sum.clone()),
            (Series::new("b3sum (BLAKE3, all cores)"), b3sum.program.clone()),
        ];
        for run in 0..=runs {
            let mut plan = Command::new(&mlops);
            plan.current_dir(&configuration).args(["plan", "-refresh=false"]).env("NO_COLOR", "1");
            let measured = measure(&mut plan)?;
            if run > 0 {
                ours.runs.push(measured);
            }
            for (series, program) in &mut peers {
                let Ok(program) = &*program else { continue };
                let mut command = Command::new(program);
                if series.tool.starts_with("dvc") {
                    // A fresh repository holding links to the data: no hash is remembered.
                    let repository = root.join(format!("dvc-{}-{run}", reports.len()));
                    std::fs::create_dir_all(&repository).map_err(|error| error.to_string())?;
                    measure(Command::new(program).current_dir(&repository).args(["init", "--no-scm", "-q"]))?;
                    measure(Command::new(program).current_dir(&repository).args(["config", "cache.type", "hardlink"]))?;
                    link_tree(data, &repository.join("data")).map_err(|error| error.to_string())?;
                    command.current_dir(&repository).args(["add", "-q", "data"]);
                } else {
                    command.args(&files);
                }
                let measured = measure(&mut command)?;
                if run > 0 {
                    series.runs.push(measured);
                }
                let _ = std::fs::remove_dir_all(root.join(format!("dvc-{}-{run}", reports.len())));
            }
        }
        let missing: Vec<(String, String)> =
            peers.iter().filter_map(|(series, program)| program.as_ref().err().map(|why| (series.tool.clone(), why.clone()))).collect();
        let measured: Vec<Series> = peers.into_iter().filter(|(_, program)| program.is_ok()).map(|(series, _)| series).collect();
        let mut report = report(&format!("content hashing of {label} ({runs} runs each)"), &ours, &measured, &missing);
        report["data"] = json!(label);
        reports.push(report);
        println!();
    }
    Ok(json!({ "workload": "hash", "comparisons": reports }))
}

/// The mlops side of the Feast comparison: one dataset and `count`
/// feature sets over it, three typed features each.
fn feature_sets_configuration(count: usize) -> String {
    let mut text = String::from(
        "bucket \"features\" {\n  name = \"feature-compare\"\n}\n\n\
         dataset \"driver_stats\" {\n  bucket = bucket.features\n  source = \"./driver_stats.csv\"\n  schema {\n    \
         column \"driver_id\" { type = int }\n    column \"event_timestamp\" { type = timestamp }\n    \
         column \"conv_rate\" { type = float }\n    column \"acc_rate\" { type = float }\n    column \"avg_daily_trips\" { type = int }\n  }\n}\n\n",
    );
    for index in 0..count {
        text.push_str(&format!(
            "feature_set \"driver_stats_{index}\" {{\n  dataset = dataset.driver_stats\n  entity  = \"driver_id\"\n  \
             feature \"conv_rate\" {{\n    type = float\n    expr = row.conv_rate\n  }}\n  \
             feature \"acc_rate\" {{\n    type = float\n    expr = row.acc_rate\n  }}\n  \
             feature \"avg_daily_trips\" {{\n    type = int\n    expr = row.avg_daily_trips\n  }}\n}}\n\n"
        ));
    }
    text
}

/// The Feast side: the same entity, source and `count` feature views with
/// the same three typed fields, declared explicitly so that nothing is
/// inferred from data.
fn feast_repository(directory: &Path, count: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(directory.join("data"))?;
    std::fs::write(
        directory.join("feature_store.yaml"),
        "project: compare\nregistry: data/registry.db\nprovider: local\nonline_store:\n  type: sqlite\n  path: data/online_store.db\n\
         entity_key_serialization_version: 3\n",
    )?;
    let mut text = String::from(
        "from datetime import timedelta\n\nfrom feast import Entity, FeatureView, Field, FileSource\nfrom feast.types import Float32, Int64\n\n\
         driver = Entity(name=\"driver\", join_keys=[\"driver_id\"])\n\n\
         driver_stats = FileSource(\n    name=\"driver_stats\",\n    path=\"data/driver_stats.parquet\",\n    timestamp_field=\"event_timestamp\",\n)\n\n",
    );
    for index in 0..count {
        text.push_str(&format!(
            "driver_stats_{index} = FeatureView(\n    name=\"driver_stats_{index}\",\n    entities=[driver],\n    ttl=timedelta(days=1),\n    \
             schema=[\n        Field(name=\"conv_rate\", dtype=Float32),\n        Field(name=\"acc_rate\", dtype=Float32),\n        \
             Field(name=\"avg_daily_trips\", dtype=Int64),\n    ],\n    source=driver_stats,\n)\n\n"
        ));
    }
    std::fs::write(directory.join("features.py"), text)
}

/// `mlops plan` of `count` feature sets against `feast plan` of as many
/// feature views, both from nothing applied.
pub fn feature_plans(root: &Path, runs: usize, count: usize) -> Result<Json, String> {
    let mlops = mlops_binary()?;
    let feast = python_peer("feast", "feast==0.67.0", "feast");
    let configuration = root.join("mlops");
    std::fs::create_dir_all(&configuration).map_err(|error| error.to_string())?;
    std::fs::write(configuration.join("main.mlops.hcl"), feature_sets_configuration(count)).map_err(|error| error.to_string())?;
    std::fs::write(
        configuration.join("driver_stats.csv"),
        "driver_id,event_timestamp,conv_rate,acc_rate,avg_daily_trips\n1001,2026-11-01T00:00:00Z,0.5,0.9,12\n",
    )
    .map_err(|error| error.to_string())?;
    let repository = root.join("feast");
    feast_repository(&repository, count).map_err(|error| error.to_string())?;

    if let Ok(feast) = &feast.program {
        // The source's data, written by the pyarrow Feast installs: Feast reads it while planning.
        let python = feast.with_file_name("python");
        let script = "import pyarrow as pa, pyarrow.parquet as pq, datetime\n\
                      pq.write_table(pa.table({'driver_id': [1001], 'event_timestamp': [datetime.datetime(2026, 11, 1)], \
                      'conv_rate': [0.5], 'acc_rate': [0.9], 'avg_daily_trips': [12]}), 'data/driver_stats.parquet')\n";
        measure(Command::new(python).current_dir(&repository).args(["-c", script]))?;
    }
    let mut ours = Series::new(format!("mlops plan ({count} feature sets)"));
    let mut theirs = Series::new(format!("feast plan (Feast 0.67.0, {count} feature views)"));
    for run in 0..=runs {
        let mut plan = Command::new(&mlops);
        plan.current_dir(&configuration).args(["plan"]).env("NO_COLOR", "1");
        let measured = measure(&mut plan)?;
        if run > 0 {
            ours.runs.push(measured);
        }
        if let Ok(feast) = &feast.program {
            let mut plan = Command::new(feast);
            plan.current_dir(&repository).arg("plan").env("FEAST_USAGE", "False");
            let measured = measure(&mut plan)?;
            if run > 0 {
                theirs.runs.push(measured);
            }
        }
    }
    let (peers, missing) = match feast.program {
        Ok(_) => (vec![theirs], Vec::new()),
        Err(why) => (Vec::new(), vec![(feast.name.to_owned(), why)]),
    };
    let mut report =
        report(&format!("plan of {count} feature definitions from nothing applied ({runs} runs each)"), &ours, &peers, &missing);
    report["workload"] = json!("features");
    Ok(report)
}

/// A Python library from PyPI in the harness's virtual environment, run as
/// `python -c SCRIPT`: the interpreter, or why the library cannot be had.
pub fn python_library(name: &'static str, requirement: &str, module: &str) -> Peer {
    let python = crate::peers::cache().join("bench-peers").join("bin/python");
    let importable =
        |python: &Path| Command::new(python).args(["-c", &format!("import {module}")]).output().is_ok_and(|output| output.status.success());
    if python.exists() && importable(&python) {
        return Peer { name, program: Ok(python) };
    }
    // Installs the requirement (and the environment) the way every Python peer is.
    let pip = python_peer(name, requirement, "pip");
    match pip.program {
        Ok(pip) => {
            let installed = Command::new(&pip)
                .args(["install", "--quiet", "--disable-pip-version-check", requirement])
                .output()
                .map_err(|error| error.to_string())
                .and_then(
                    |output| if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) },
                );
            match installed {
                Ok(()) if importable(&python) => Peer { name, program: Ok(python) },
                Ok(()) => Peer::missing(name, format!("`pip install {requirement}` gave no importable `{module}`")),
                Err(why) => Peer::missing(name, format!("`pip install {requirement}` failed: {why}")),
            }
        }
        Err(why) => Peer::missing(name, why),
    }
}

/// `rows` transactions as CSV: a customer (one of `rows / 20`), an event
/// time over 90 days, an amount, an age (5% missing) and a fraud label,
/// the same every time for the same `rows`.
fn write_transactions(path: &Path, rows: usize) -> std::io::Result<()> {
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writer.write_all(b"customer_id,event_time,amount,age,is_fraud\n")?;
    let customers = (rows / 20).max(1) as u64;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let start = 1_767_225_600u64; // 2026-01-01T00:00:00Z
    for _ in 0..rows {
        let seconds = start + next(90 * 86_400);
        let time = mlops_units::format_timestamp_micros(seconds as i64 * 1_000_000);
        let age = if next(20) == 0 { String::new() } else { (18 + next(70)).to_string() };
        writeln!(
            writer,
            "c{:07},{time},{}.{:02},{age},{}",
            next(customers),
            next(500),
            next(100),
            if next(50) == 0 { "true" } else { "false" }
        )?;
    }
    writer.flush()
}

/// A dataset of the transactions and one feature set: the quickstart's
/// three row-level features, or (`windowed`) a 7-day sum and count per
/// customer.
fn compute_configuration(windowed: bool) -> String {
    let features = if windowed {
        "  timestamp = \"event_time\"\n  aggregate \"spend_7d\" {\n    function = \"sum\"\n    column   = \"amount\"\n    window   = \"7d\"\n  }\n  \
         aggregate \"transactions_7d\" {\n    function = \"count\"\n    window   = \"7d\"\n  }\n"
    } else {
        "  feature \"amount_log\" {\n    type = float\n    expr = log1p(row.amount)\n  }\n  feature \"is_adult\" {\n    type = bool\n    expr = row.age >= 21\n  }\n  \
         feature \"label\" {\n    type = bool\n    expr = row.is_fraud\n  }\n"
    };
    format!(
        "bucket \"lake\" {{\n  name = \"compute-lake\"\n}}\n\n\
         dataset \"transactions\" {{\n  bucket = bucket.lake\n  source = \"./transactions.csv\"\n  schema {{\n    \
         column \"customer_id\" {{ type = string }}\n    column \"event_time\" {{ type = timestamp }}\n    \
         column \"amount\" {{ type = float, min = 0 }}\n    column \"age\" {{ type = int, nullable = true }}\n    \
         column \"is_fraud\" {{ type = bool }}\n  }}\n}}\n\n\
         feature_set \"txn\" {{\n  dataset = dataset.transactions\n  entity  = \"customer_id\"\n{features}}}\n"
    )
}

/// The same work in polars (lazy, streamed to Parquet) and DuckDB.
fn peer_scripts(windowed: bool) -> (String, String) {
    if windowed {
        (
            "import polars as pl\n\
             rows = pl.col('is_fraud').is_not_null().cast(pl.Int64)\n\
             frame = pl.read_csv('transactions.csv', try_parse_dates=True).sort('event_time')\n\
             frame.select(\n\
             \x20   'customer_id', 'event_time',\n\
             \x20   pl.col('amount').rolling_sum_by('event_time', window_size='7d').over('customer_id').alias('spend_7d'),\n\
             \x20   rows.rolling_sum_by('event_time', window_size='7d').over('customer_id').alias('transactions_7d'),\n\
             ).write_parquet('out.parquet', compression='zstd')\n"
                .to_owned(),
            "import duckdb\n\
             duckdb.sql(\"\"\"COPY (SELECT customer_id, event_time,\n\
             \x20 SUM(amount) OVER w AS spend_7d, COUNT(*) OVER w AS transactions_7d\n\
             \x20 FROM read_csv('transactions.csv')\n\
             \x20 WINDOW w AS (PARTITION BY customer_id ORDER BY event_time RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND CURRENT ROW))\n\
             \x20 TO 'out.parquet' (FORMAT parquet, COMPRESSION zstd)\"\"\")\n"
                .to_owned(),
        )
    } else {
        (
            "import polars as pl\n\
             pl.scan_csv('transactions.csv').select(\n\
             \x20   'customer_id',\n\
             \x20   pl.col('amount').log1p().alias('amount_log'),\n\
             \x20   (pl.col('age') >= 21).alias('is_adult'),\n\
             \x20   pl.col('is_fraud').alias('label'),\n\
             ).sink_parquet('out.parquet', compression='zstd')\n"
                .to_owned(),
            "import duckdb\n\
             duckdb.sql(\"\"\"COPY (SELECT customer_id, ln(1 + amount) AS amount_log, age >= 21 AS is_adult, is_fraud AS label\n\
             \x20 FROM read_csv('transactions.csv')) TO 'out.parquet' (FORMAT parquet, COMPRESSION zstd)\"\"\")\n"
                .to_owned(),
        )
    }
}

/// Feature computation on `rows` generated transactions: `mlops apply` of
/// a feature set (its dataset applied beforehand, so that only the features
/// are timed) against polars and DuckDB doing the same and writing Parquet.
pub fn compute(root: &Path, runs: usize, rows: usize, windowed: bool) -> Result<Json, String> {
    let mlops = mlops_binary()?;
    let polars = python_library("polars", "polars==2.1.0", "polars");
    let duckdb = python_library("duckdb", "duckdb==2.0.1", "duckdb");
    let directory = root.join("compute");
    std::fs::create_dir_all(&directory).map_err(|error| error.to_string())?;
    write_transactions(&directory.join("transactions.csv"), rows).map_err(|error| error.to_string())?;
    std::fs::write(directory.join("main.mlops.hcl"), compute_configuration(windowed)).map_err(|error| error.to_string())?;
    let run_mlops = |arguments: &[&str]| -> Result<Measured, String> {
        let mut command = Command::new(&mlops);
        command.current_dir(&directory).args(arguments).env("NO_COLOR", "1");
        measure(&mut command)
    };
    run_mlops(&["apply", "-auto-approve", "-target", "dataset.transactions"])?;
    let (polars_script, duckdb_script) = peer_scripts(windowed);
    let what = if windowed { "a 7-day sum and count per customer" } else { "three row-level features" };
    let mut ours = Series::new(format!("mlops apply ({what})"));
    let mut peers: Vec<(Series, &Peer, String)> = Vec::new();
    for (peer, script) in [(&polars, polars_script), (&duckdb, duckdb_script)] {
        if peer.program.is_ok() {
            peers.push((Series::new(format!("{} ({what})", peer.name)), peer, script));
        }
    }
    // One untimed round first: the file is in the page cache for everyone.
    for run in 0..=runs {
        if run > 0 {
            // Forgotten, so that the apply computes the features again.
            run_mlops(&["state", "rm", "feature_set.txn"])?;
        }
        let measured = run_mlops(&["apply", "-auto-approve"])?;
        if run > 0 {
            ours.runs.push(measured);
        }
        for (series, peer, script) in &mut peers {
            let python = peer.program.as_ref().expect("present");
            let measured = measure(Command::new(python).current_dir(&directory).args(["-c", script.as_str()]))?;
            if run > 0 {
                series.runs.push(measured);
            }
        }
    }
    let missing: Vec<(String, String)> = [&polars, &duckdb]
        .into_iter()
        .filter_map(|peer| peer.program.as_ref().err().map(|why| (peer.name.to_owned(), why.clone())))
        .collect();
    let peers: Vec<Series> = peers.into_iter().map(|(series, _, _)| series).collect();
    let mut report = report(&format!("{what} on {rows} rows, written as zstd Parquet ({runs} runs each)"), &ours, &peers, &missing);
    report["workload"] = json!(if windowed { "windows" } else { "compute" });
    report["rows"] = json!(rows);
    Ok(report)
}

/// The schema of the generated transactions, for pandera's polars backend.
const PANDERA_SCRIPT: &str = "import pandera.polars as pa, polars as pl\n\
    schema = pa.DataFrameSchema({\n\
    \x20   'customer_id': pa.Column(pl.Utf8),\n\
    \x20   'event_time': pa.Column(pl.Datetime('us', 'UTC')),\n\
    \x20   'amount': pa.Column(pl.Float64, pa.Check.ge(0)),\n\
    \x20   'age': pa.Column(pl.Int64, nullable=True),\n\
    \x20   'is_fraud': pa.Column(pl.Boolean),\n\
    })\n\
    schema.validate(pl.read_csv('transactions.csv', try_parse_dates=True))\n";

/// Schema validation of `rows` generated transactions: `mlops apply` of the
/// dataset (hashing it, checking every row against the schema, storing it)
/// against pandera (polars backend) checking the same schema.
pub fn validation(root: &Path, runs: usize, rows: usize) -> Result<Json, String> {
    let mlops = mlops_binary()?;
    let pandera = python_library("pandera", "pandera[polars]==0.35.0", "pandera.polars");
    let directory = root.join("validation");
    std::fs::create_dir_all(&directory).map_err(|error| error.to_string())?;
    write_transactions(&directory.join("transactions.csv"), rows).map_err(|error| error.to_string())?;
    std::fs::write(directory.join("main.mlops.hcl"), compute_configuration(false)).map_err(|error| error.to_string())?;
    let mut ours = Series::new("mlops apply (hash, check every row, store)");
    let mut theirs = Series::new("pandera 0.35.0, polars backend (read, check)");
    for run in 0..=runs {
        let mut forget = Command::new(&mlops);
        forget.current_dir(&directory).args(["state", "rm", "dataset.transactions"]).env("NO_COLOR", "1");
        if run > 0 {
            measure(&mut forget)?;
        }
        let mut apply = Command::new(&mlops);
        apply.current_dir(&directory).args(["apply", "-auto-approve", "-target", "dataset.transactions"]).env("NO_COLOR", "1");
        let measured = measure(&mut apply)?;
        if run > 0 {
            ours.runs.push(measured);
        }
        if let Ok(python) = &pandera.program {
            let measured = measure(Command::new(python).current_dir(&directory).args(["-c", PANDERA_SCRIPT]))?;
            if run > 0 {
                theirs.runs.push(measured);
            }
        }
    }
    let (peers, missing) = match &pandera.program {
        Ok(_) => (vec![theirs], Vec::new()),
        Err(why) => (Vec::new(), vec![(pandera.name.to_owned(), why.clone())]),
    };
    let mut report = report(&format!("schema validation of {rows} rows ({runs} runs each)"), &ours, &peers, &missing);
    report["workload"] = json!("validation");
    report["rows"] = json!(rows);
    Ok(report)
}

/// Peak memory on a dataset of `gibibytes` GiB (the point: larger than half
/// the machine's memory): storing it with its schema checked, then
/// computing the three row-level features. mlops alone, once.
pub fn large(root: &Path, gibibytes: f64) -> Result<Json, String> {
    let mlops = mlops_binary()?;
    let directory = root.join("large");
    std::fs::create_dir_all(&directory).map_err(|error| error.to_string())?;
    // About 46 bytes a row.
    let rows = (gibibytes * 1024.0 * 1024.0 * 1024.0 / 46.0) as usize;
    let file = directory.join("transactions.csv");
    eprintln!("writing {rows} rows of transactions");
    write_transactions(&file, rows).map_err(|error| error.to_string())?;
    let size = std::fs::metadata(&file).map_err(|error| error.to_string())?.len();
    std::fs::write(directory.join("main.mlops.hcl"), compute_configuration(false)).map_err(|error| error.to_string())?;
    let run = |arguments: &[&str]| {
        let mut command = Command::new(&mlops);
        command.current_dir(&directory).args(arguments).env("NO_COLOR", "1");
        measure(&mut command)
    };
    let stored = run(&["apply", "-auto-approve", "-target", "dataset.transactions"])?;
    let computed = run(&["apply", "-auto-approve"])?;
    let machine_megabytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines().find(|line| line.starts_with("MemTotal:")).and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kilobytes| kilobytes / 1024.0);
    println!(
        "a dataset of {:.1} GiB ({rows} rows) on a machine with {:.1} GiB of memory",
        size as f64 / 1073741824.0,
        machine_megabytes / 1024.0
    );
    println!("{:<56} {:>10} {:>10}", "step", "seconds", "peak MB");
    println!(
        "{:<56} {:>10.1} {:>10.1}",
        "store the dataset (hash, check every row, copy)",
        stored.elapsed.as_secs_f64(),
        stored.peak_megabytes
    );
    println!("{:<56} {:>10.1} {:>10.1}", "compute three features into Parquet", computed.elapsed.as_secs_f64(), computed.peak_megabytes);
    Ok(json!({
        "workload": "large",
        "rows": rows,
        "bytes": size,
        "machine_memory_mb": machine_megabytes,
        "store": { "seconds": stored.elapsed.as_secs_f64(), "peak_memory_mb": stored.peak_megabytes },
        "features": { "seconds": computed.elapsed.as_secs_f64(), "peak_memory_mb": computed.peak_megabytes },
    }))
}
