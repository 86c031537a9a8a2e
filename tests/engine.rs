//! End-to-end tests of plan and apply: the built binary on temporary copies
//! of the examples and of the cases in `tests/cases/`, with the local
//! provider running the real training and serving scripts.
//!
//! Every apply that succeeds is followed by a plan that must show no changes.

mod support;

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use support::{post, repository, Run, Workspace};

/// Replaces what differs from run to run (run ids, ports, the state lineage)
/// so that plans can be snapshotted.
fn stable(text: &str) -> String {
    let replacements = [
        (r"run-\d{8}T\d{6}-[0-9a-f]{8}", "run-[ID]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
        (r#""state_lineage": "[0-9a-f]{32}""#, r#""state_lineage": "[LINEAGE]""#),
        (r"b3:[0-9a-f]{64}", "b3:[HASH]"),
        (r"b3:[0-9a-f]{8}…", "b3:[HASH]…"),
        (r"/[0-9a-f]{32}", "/[HASH]"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]"),
        // How long a run took depends on the machine.
        (r#""duration_seconds": \d+"#, r#""duration_seconds": [SECONDS]"#),
        (r"duration_seconds = \d+", "duration_seconds = [SECONDS]"),
    ];
    let mut text = text.to_owned();
    for (pattern, replacement) in replacements {
        text = regex::Regex::new(pattern).unwrap().replace_all(&text, replacement).into_owned();
    }
    text
}

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({ snapshot_path => "../snapshots/plans", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!(name, stable(text));
    });
}

#[test]
fn quickstart_runs_end_to_end_and_serves_predictions() {
    let workspace = Workspace::copy_of("examples/quickstart");
    let first_plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(first_plan.code, 2, "{}", first_plan.all());
    snapshot("quickstart-create.txt", &first_plan.stdout);
    let markdown = workspace.run(&["plan", "--format", "markdown"]);
    snapshot("quickstart-create.md", &markdown.stdout);

    let apply = workspace.apply(&[]);
    for address in [
        "bucket.lake",
        "dataset.transactions",
        "feature_set.txn",
        "training.fraud",
        "model.fraud",
        "serving.fraud_api",
        "monitor.fraud_drift",
    ] {
        assert!(apply.stderr.contains(&format!("{address}: created")), "{address} not created:\n{}", apply.all());
    }
    assert!(apply.stdout.contains("Apply complete: 7 added"), "{}", apply.all());

    let url = workspace.output("url");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let response = post(&url, "/predict", r#"{"amount": 120.5, "age": 30}"#);
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"model_version\": \"1\""), "{response}");
    assert_eq!(workspace.output("model_version"), "1");

    let list = workspace.run(&["state", "list"]);
    assert_eq!(list.stdout.lines().count(), 7, "{}", list.all());
    let scores = workspace.run(&["state", "show", "monitor.fraud_drift"]);
    assert!(scores.stdout.contains("drifted = false"), "{}", scores.all());
    let history = workspace.read(".mlops/state/history.jsonl");
    assert_eq!(history.lines().count(), 1, "{history}");

    // A data source reads the registry: the version the alias points at.
    workspace.write(
        "baseline.mlops.hcl",
        "data \"model\" \"champion\" {\n  name  = \"fraud-detector\"\n  alias = \"champion\"\n}\n\noutput \"champion\" {\n  value = data.model.champion.version\n}\n",
    );
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("# data.model.champion will be read"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(workspace.output("champion"), "1");
}

#[test]
fn one_changed_row_flows_through_the_chain_and_lineage_follows() {
    let workspace = Workspace::copy_of("examples/quickstart");
    workspace.apply(&[]);
    let before = workspace.run(&["lineage", "model.fraud", "--json"]);
    let before: serde_json::Value = serde_json::from_str(&before.stdout).expect("lineage JSON");

    // Change one amount in one row.
    let data = workspace.read("data/transactions.csv");
    let mut lines: Vec<String> = data.lines().map(str::to_owned).collect();
    let mut fields: Vec<String> = lines[3].split(',').map(str::to_owned).collect();
    fields[1] = "4321.5".into();
    lines[3] = fields.join(",");
    workspace.write("data/transactions.csv", &(lines.join("\n") + "\n"));

    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    let text = &plan.stdout;
    assert!(text.contains("# dataset.transactions will be updated in place"), "{text}");
    assert!(text.contains("its data changed: version b3:"), "{text}");
    assert!(text.contains("# feature_set.txn will be replaced\n  #   input dataset.transactions changed: version b3:"), "{text}");
    assert!(text.contains("# training.fraud will be replaced\n  #   input feature_set.txn changed: version b3:"), "{text}");
    assert!(text.contains("# model.fraud will be updated in place\n  #   input training.fraud changed: run_id"), "{text}");
    assert!(text.contains("~ version = \"1\" -> (known after apply)"), "{text}");
    assert!(
        text.contains("# serving.fraud_api will be updated in place\n  #   input model.fraud changed: version 1 -> (known after apply)"),
        "{text}"
    );
    assert!(text.contains("Plan: 0 to add, 4 to change, 2 to replace, 0 to destroy."), "{text}");
    snapshot("quickstart-one-row-changed.txt", text);
    let json = workspace.run(&["plan", "--format", "json"]);
    snapshot("quickstart-one-row-changed.json", &json.stdout);
    let markdown = workspace.run(&["plan", "--format", "markdown"]);
    snapshot("quickstart-one-row-changed.md", &markdown.stdout);

    workspace.apply(&[]);
    assert_eq!(workspace.output("model_version"), "2");
    let url = workspace.output("url");
    assert!(post(&url, "/predict", r#"{"amount": 1.0}"#).contains("\"model_version\": \"2\""));

    // Lineage names the new data; the old version stays in the registry.
    let after = workspace.run(&["lineage", "serving.fraud_api", "--json"]);
    let after: serde_json::Value = serde_json::from_str(&after.stdout).expect("lineage JSON");
    let dataset_version = |tree: &serde_json::Value| -> String {
        let mut node = tree.clone();
        while node["address"] != "dataset.transactions" {
            node = node["inputs"][0].clone();
            assert!(!node.is_null(), "no dataset in {tree}");
        }
        node["identity"].as_str().unwrap().to_owned()
    };
    assert_ne!(dataset_version(&before), dataset_version(&after));
    let text = workspace.run(&["lineage", "serving.fraud_api"]).stdout;
    for expected in [
        "serving.fraud_api",
        "model.fraud  2",
        "training.fraud  run-",
        "hyperparameters: epochs=30, learning_rate=0.1",
        "fingerprint: b3:",
        "feature_set.txn  b3:",
        "dataset.transactions  b3:",
    ] {
        assert!(text.contains(expected), "lineage lacks {expected:?}:\n{text}");
    }
    let model = workspace.run(&["lineage", "model.fraud"]).stdout;
    assert!(model.contains("registered versions: 1, 2"), "{model}");
    assert!(workspace.path().join(".mlops/registry/fraud-detector/versions/1/artifacts/model.json").exists());
}

#[test]
fn pinning_an_older_version_rolls_the_alias_and_the_serving_back() {
    let workspace = Workspace::copy_of("examples/quickstart");
    let training_run = |address: &str, version: Option<&str>| -> String {
        let mut arguments = vec!["lineage", address, "--json"];
        arguments.extend(version.map(|version| ["--version", version]).into_iter().flatten());
        let run = workspace.run(&arguments);
        assert_eq!(run.code, 0, "{}", run.all());
        let tree: serde_json::Value = serde_json::from_str(&run.stdout).expect("lineage JSON");
        let mut node = tree.clone();
        while node["address"] != "training.fraud" {
            node = node["inputs"][0].clone();
            assert!(!node.is_null(), "no training in {tree}");
        }
        node["identity"].as_str().unwrap().to_owned()
    };
    workspace.apply(&[]);
    let first_run = training_run("model.fraud", None);
    let data = workspace.read("data/transactions.csv");
    workspace.write("data/transactions.csv", &data.replacen(",false\n", ",true\n", 1));
    workspace.apply(&[]);
    assert_eq!(workspace.output("model_version"), "2");
    let second_run = training_run("model.fraud", None);
    assert_ne!(first_run, second_run);

    // Roll back: pin version 1. Nothing is registered, and the alias and the
    // serving follow; the move is kept in the alias history.
    let main = workspace.read("main.mlops.hcl");
    workspace.write("main.mlops.hcl", &main.replace("  aliases = [\"champion\"]", "  aliases = [\"champion\"]\n  version = \"1\""));
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("alias `champion` moves from version 2 back to version 1"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(workspace.output("model_version"), "1");
    assert!(workspace.read(".mlops/registry/fraud-detector/aliases.json").contains("\"champion\": \"1\""));
    assert!(post(&workspace.output("url"), "/predict", "{}").contains("\"model_version\": \"1\""));
    let state = workspace.run(&["state", "show", "model.fraud"]).stdout;
    assert!(state.contains(r#"{"alias":"champion","from":"2","to":"1","#), "{state}");
    assert!(!workspace.path().join(".mlops/registry/fraud-detector/versions/3").exists());

    // Lineage follows the version served, not the newest run: "which data
    // trained what serves?" names the first run's data again.
    assert_eq!(training_run("model.fraud", None), first_run);
    assert_eq!(training_run("serving.fraud_api", None), first_run);
    assert_eq!(training_run("model.fraud", Some("2")), second_run);
    let missing = workspace.run(&["lineage", "model.fraud", "-version", "9"]);
    assert_eq!(missing.code, 1, "{}", missing.all());
    assert!(
        missing.stderr.contains("model.fraud keeps no lineage for version 9; it keeps the lineage of versions 1, 2"),
        "{}",
        missing.all()
    );

    // Unpinned again, the newest run is current once more, and the serving
    // follows it in the same apply.
    workspace.write("main.mlops.hcl", &main);
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("`version` no longer pins version 1: the model follows its newest run again"), "{}", plan.all());
    assert!(plan.stdout.contains("# serving.fraud_api will be updated in place"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(workspace.output("model_version"), "2");
    assert_eq!(training_run("serving.fraud_api", None), second_run);
}

#[test]
fn a_failing_gate_keeps_the_previous_version_and_alias_serving() {
    let workspace = Workspace::copy_of("examples/quickstart");
    workspace.apply(&[]);
    let url = workspace.output("url");

    // New data arrives, the model is retrained, and the candidate misses the bar.
    let data = workspace.read("data/transactions.csv");
    workspace.write("data/transactions.csv", &data.replacen(",false\n", ",true\n", 1));
    let run = workspace.run(&["apply", "--auto-approve", "-var", "min_auc=0.999"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("training.fraud: replaced"), "{}", run.all());
    assert!(run.stderr.contains("E0703 gate-failed"), "{}", run.all());
    assert!(run.stderr.contains("gate `auc` of model.fraud failed: candidate AUC below 0.999"), "{}", run.all());
    assert!(run.stderr.contains("the candidate reported"), "{}", run.all());
    assert!(run.stderr.contains("serving.fraud_api: skipped, because model.fraud did not complete"), "{}", run.all());

    let aliases = workspace.read(".mlops/registry/fraud-detector/aliases.json");
    assert!(aliases.contains("\"champion\": \"1\""), "{aliases}");
    assert!(!workspace.path().join(".mlops/registry/fraud-detector/versions/2").exists());
    assert!(post(&url, "/predict", "{}").contains("\"model_version\": \"1\""));
    // Still pending, so the next plan still shows it; with the usual bar the
    // new candidate is registered and served.
    assert_eq!(workspace.run(&["plan", "--detailed-exitcode", "-var", "min_auc=0.999"]).code, 2);
    workspace.apply(&[]);
    assert_eq!(workspace.output("model_version"), "2");
}

#[test]
fn failing_checks_and_schema_violations_stop_only_their_branch() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    workspace.write("numbers.csv", "x\n1\n2\n");
    let run = workspace.run_fast(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("E0704 check-failed"), "{}", run.all());
    assert!(run.stderr.contains("check `some_rows` of dataset.numbers failed: need at least 3 rows, got 2"), "{}", run.all());
    assert!(run.stderr.contains("training.slow: skipped, because dataset.numbers did not complete"), "{}", run.all());
    // The independent branch went ahead.
    assert!(run.stderr.contains("bucket.other: created"), "{}", run.all());
    let list = workspace.run(&["state", "list"]).stdout;
    assert!(list.contains("bucket.other") && !list.contains("dataset.numbers"), "{list}");

    workspace.write("numbers.csv", "x\n1\n-2\n3\n");
    let run = workspace.run_fast(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("line 3, column `x`: -2 is below the minimum 0"), "{}", run.all());

    workspace.write("numbers.csv", "x\n1\n2\n3\n");
    let run = workspace.run_fast(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.stderr.contains("bucket.other: created"), "finished work was repeated:\n{}", run.all());
    workspace.assert_no_changes(&[]);
}

/// Starts an apply of the slow case and waits until its training runs.
/// Starts the slow case's apply and returns once its run's process exists
/// (its handle names the process's start), so that killing the apply
/// leaves a run to re-attach to.
fn start_slow_apply(workspace: &Workspace, seconds: &str) -> Child {
    workspace.start_slow_apply(seconds, || workspace.read(".mlops/state/journal.jsonl").contains("\"started\""))
}

#[test]
fn a_second_apply_fails_at_once_naming_the_lock_holder() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    let mut first = start_slow_apply(&workspace, "5");
    let started = Instant::now();
    let second = workspace.run(&["apply", "--auto-approve"]);
    assert!(started.elapsed() < Duration::from_secs(2), "the second apply waited");
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(second.stderr.contains("E0705 state-locked"), "{}", second.all());
    assert!(second.stderr.contains(&format!("pid {}", first.id())), "{}", second.all());
    assert!(second.stderr.contains("running `mlops apply`"), "{}", second.all());

    // With -lock-timeout, a third waits for the lock instead, and then
    // finds nothing left to do.
    let bad = workspace.run(&["apply", "--auto-approve", "-lock-timeout=soon"]);
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(bad.stderr.contains("invalid-duration") && bad.stderr.contains("-lock-timeout"), "{}", bad.all());
    let third = workspace.run(&["apply", "--auto-approve", "-lock-timeout=2m"]);
    assert_eq!(third.code, 0, "{}", third.all());
    assert!(third.stderr.contains("waiting up to 2m for it (-lock-timeout)"), "{}", third.all());
    assert!(first.wait().unwrap().success());
    workspace.assert_no_changes(&[]);
}

#[test]
fn kill_9_during_an_apply_leaves_a_state_that_reattaches_and_converges() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    let mut first = start_slow_apply(&workspace, "2");
    first.kill().unwrap();
    first.wait().unwrap();

    // The state loads, with the finished work and the run's handle.
    let list = workspace.run(&["state", "list"]);
    assert_eq!(list.code, 0, "{}", list.all());
    assert!(list.stdout.contains("dataset.numbers"), "{}", list.all());

    // The plan says the run is resumed, not started again.
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("# training.slow will be created\n  #   an interrupted apply left work under way"), "{}", plan.all());

    // A lock left by the dead process does not block the next apply.
    let run = workspace.apply_reattaching();
    assert!(!run.stderr.contains("dataset.numbers: creating"), "finished work was repeated:\n{}", run.all());
    let runs = fs::read_dir(workspace.path().join(".mlops/runs")).unwrap().count();
    assert_eq!(runs, 1, "a second run was started");
}

#[test]
fn ctrl_c_stops_scheduling_saves_and_releases_the_lock() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    let child = start_slow_apply(&workspace, "3");
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let output = Run::from(child.wait_with_output().unwrap());
    assert_eq!(output.code, 1, "{}", output.all());
    assert!(output.stdout.contains("Apply interrupted"), "{}", output.all());
    // The lock is free and the run is picked up again.
    workspace.apply_reattaching();
}

#[test]
fn sensitive_values_never_reach_state_plans_or_output_in_clear() {
    const SECRET: &str = "hunter2-very-secret-token";
    let secret_variable = format!("token={SECRET}");
    for key in [None, Some("a passphrase for the state")] {
        let workspace = Workspace::copy_of("tests/cases/slow-training");
        let run = |arguments: &[&str]| {
            let mut command = workspace.command(arguments);
            command.env("SLOW_SECONDS", "0");
            if let Some(key) = key {
                command.env("MLOPS_STATE_KEY", key);
            }
            Run::from(command.output().unwrap())
        };
        let plan = run(&["plan", "-var", &secret_variable, "-out", "saved.plan"]);
        assert_eq!(plan.code, 0, "{}", plan.all());
        assert!(plan.stdout.contains("(sensitive)"), "{}", plan.all());
        let json = run(&["plan", "--format", "json", "-var", &secret_variable]);
        let markdown = run(&["plan", "--format", "markdown", "-var", &secret_variable]);
        let apply = run(&["apply", "--auto-approve", "-var", &secret_variable]);
        assert_eq!(apply.code, 0, "{}", apply.all());
        let show = run(&["show", "--json"]);
        let state = run(&["state", "show", "training.slow"]);
        for (name, output) in
            [("plan", &plan), ("json", &json), ("markdown", &markdown), ("apply", &apply), ("show", &show), ("state", &state)]
        {
            assert!(!output.all().contains(SECRET), "{name} shows the secret:\n{}", output.all());
        }
        let mut files = vec![workspace.path().join("saved.plan")];
        files.extend(support::all_files(&workspace.path().join(".mlops/state")));
        assert!(files.iter().any(|file| file.to_string_lossy().contains("backups/")), "{files:?}");
        for file in files {
            let text = String::from_utf8_lossy(&fs::read(&file).unwrap()).into_owned();
            assert!(!text.contains(SECRET), "{} holds the secret in clear", file.display());
        }
        let same = run(&["plan", "--detailed-exitcode", "-var", &secret_variable]);
        assert_eq!(same.code, 0, "{}", same.all());
        // With a key, a changed secret is seen; the plan still does not show it.
        if key.is_some() {
            let changed = run(&["plan", "--detailed-exitcode", "-var", "token=another-secret"]);
            assert_eq!(changed.code, 2, "{}", changed.all());
            assert!(!changed.stdout.contains("another-secret"), "{}", changed.all());
        }
    }
}

#[test]
fn a_saved_plan_applies_once_and_is_refused_when_stale() {
    let workspace = Workspace::copy_of("examples/quickstart");
    let plan = workspace.run(&["plan", "-out", "first.plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let later = workspace.run(&["plan", "-out", "second.plan"]);
    assert_eq!(later.code, 0, "{}", later.all());
    let shown = workspace.run(&["show", "first.plan"]);
    assert!(shown.stdout.contains("Plan: 7 to add"), "{}", shown.all());

    let apply = workspace.run(&["apply", "first.plan"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    workspace.assert_no_changes(&[]);

    let stale = workspace.run(&["apply", "second.plan"]);
    assert_eq!(stale.code, 1, "{}", stale.all());
    assert!(stale.stderr.contains("E0706 stale-plan"), "{}", stale.all());
    assert!(stale.stderr.contains("the state changed since it was made"), "{}", stale.all());

    workspace.run(&["plan", "-out", "third.plan", "-var", "min_auc=0.5"]);
    let config = workspace.read("main.mlops.hcl");
    workspace.write("main.mlops.hcl", &config.replace("epochs        = 30", "epochs        = 31"));
    let stale = workspace.run(&["apply", "third.plan"]);
    assert_eq!(stale.code, 1, "{}", stale.all());
    assert!(stale.stderr.contains("the configuration files changed since it was made"), "{}", stale.all());
}

#[test]
fn json_plans_follow_the_published_schema() {
    let schema: serde_json::Value = serde_json::from_str(&fs::read_to_string(repository().join("docs/plan.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let workspace = Workspace::copy_of("examples/quickstart");
    let mut plans = vec![workspace.run(&["plan", "--format", "json"]).stdout];
    workspace.apply(&[]);
    plans.push(workspace.run(&["plan", "--format", "json"]).stdout);
    plans.push(workspace.run(&["plan", "--format", "json", "--destroy"]).stdout);
    for text in plans {
        let plan: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let errors: Vec<String> = validator.iter_errors(&plan).map(|error| format!("{error} at {}", error.instance_path)).collect();
        assert!(errors.is_empty(), "{errors:#?}\n{text}");
    }
}

#[test]
fn destroy_forgets_retained_kinds_unless_asked_and_stops_serving() {
    let workspace = Workspace::copy_of("examples/quickstart");
    workspace.apply(&[]);
    let url = workspace.output("url");
    let plan = workspace.run(&["plan", "--destroy"]);
    assert!(plan.stdout.contains("dataset.transactions will be forgotten"), "{}", plan.all());
    assert!(plan.stdout.contains("serving.fraud_api will be destroyed"), "{}", plan.all());
    let run = workspace.run(&["destroy", "--auto-approve"]);
    // The bucket still holds the retained dataset, so it is not deleted.
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("bucket `fraud-dev-lake` is not empty"), "{}", run.all());
    assert!(run.stderr.contains("force_destroy"), "{}", run.all());
    assert!(workspace.path().join(".mlops/registry/fraud-detector/versions/1").exists(), "a retained model version was deleted");
    assert!(workspace.path().join(".mlops/objects/fraud-dev-lake/datasets").exists(), "a retained dataset was deleted");
    assert!(TcpStream::connect(url.trim_start_matches("http://")).is_err(), "the server still runs");
    assert_eq!(workspace.run(&["state", "list"]).stdout.trim(), "bucket.lake");

    let everything = Workspace::copy_of("examples/quickstart");
    everything.apply(&[]);
    let run = everything.run(&["destroy", "--auto-approve", "--delete-retained"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(everything.run(&["state", "list"]).stdout.trim(), "");
    assert!(!everything.path().join(".mlops/objects/fraud-dev-lake").exists());
    assert!(!everything.path().join(".mlops/registry/fraud-detector").exists());
}

#[test]
fn target_and_exclude_select_a_part_of_the_graph() {
    let workspace = Workspace::copy_of("examples/quickstart");
    let plan = workspace.run(&["plan", "-target", "training.fraud"]);
    assert!(plan.stdout.contains("Plan: 4 to add, 0 to change"), "{}", plan.all());
    assert!(!plan.stdout.contains("model.fraud will be created"), "{}", plan.all());
    let plan = workspace.run(&["plan", "-exclude", "model.fraud"]);
    assert!(plan.stdout.contains("Plan: 5 to add"), "{}", plan.all());
    assert!(!plan.stdout.contains("serving.fraud_api will be created"), "{}", plan.all());
    let apply = workspace.run(&["apply", "--auto-approve", "-target", "feature_set.txn", "--parallelism", "2"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(workspace.run(&["state", "list"]).stdout.lines().count(), 3);
    let rest = workspace.run(&["plan", "--refresh=false"]);
    assert!(rest.stdout.contains("Plan: 4 to add"), "{}", rest.all());
    let invalid = workspace.run(&["plan", "-target", "training"]);
    assert_eq!(invalid.code, 1, "{}", invalid.all());
    assert!(invalid.stderr.contains("-target `training` is not a resource or module address"), "{}", invalid.all());

    let many = Workspace::copy_of("tests/cases/many-buckets");
    let one = many.run(&["plan", "-target", "bucket.shard[3]"]);
    assert!(one.stdout.contains("Plan: 1 to add"), "{}", one.all());
    assert!(one.stdout.contains("# bucket.shard[3] will be created"), "{}", one.all());
    let all_but_one = many.run(&["plan", "-exclude", "bucket.shard[3]"]);
    assert!(all_but_one.stdout.contains("Plan: 1499 to add"), "{}", all_but_one.all());
}

#[test]
fn drift_outside_mlops_is_shown_and_corrected() {
    let workspace = Workspace::copy_of("examples/quickstart");
    workspace.apply(&[]);
    // Someone stops the server and edits the bucket's settings by hand.
    let state = workspace.read(".mlops/state/state.json");
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    let pid = state["resources"]["serving.fraud_api"]["private"]["pid"].as_i64().unwrap();
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(300));
    workspace.write(".mlops/objects/fraud-dev-lake/.bucket.json", r#"{"versioning": false, "tags": {}, "lifecycle_rule": []}"#);
    // ... and points the alias somewhere else in the registry.
    workspace.write(".mlops/registry/fraud-detector/aliases.json", r#"{"champion": "7"}"#);
    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("Changes made outside mlops since the last apply:"), "{}", plan.all());
    assert!(plan.stdout.contains("~ bucket.lake: changed outside mlops: lifecycle_rule, versioning"), "{}", plan.all());
    assert!(plan.stdout.contains("`versioning` was true and is false now (changed outside mlops): apply sets it back"), "{}", plan.all());
    assert!(plan.stdout.contains("serving process is not running"), "{}", plan.all());
    assert!(plan.stdout.contains("~ model.fraud: changed outside mlops: aliases"), "{}", plan.all());
    assert!(
        plan.stdout.contains("`aliases` was [\"champion\"] and is [] now (changed outside mlops): apply sets it back"),
        "{}",
        plan.all()
    );
    workspace.apply(&[]);
    assert!(workspace.read(".mlops/registry/fraud-detector/aliases.json").contains("\"champion\": \"1\""));
}

#[test]
fn state_surgery_graph_and_outputs() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    workspace.apply(&[]);
    let output = workspace.run(&["output", "--json"]);
    let outputs: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert!(outputs["run"]["value"].as_str().unwrap().starts_with("run-"), "{outputs}");

    let moved = workspace.run(&["state", "mv", "bucket.other", "bucket.renamed"]);
    assert_eq!(moved.code, 0, "{}", moved.all());
    let config = workspace.read("main.mlops.hcl");
    workspace.write("main.mlops.hcl", &config.replace("bucket \"other\"", "bucket \"renamed\""));
    workspace.assert_no_changes(&[]);

    let removed = workspace.run(&["state", "rm", "bucket.renamed"]);
    assert_eq!(removed.code, 0, "{}", removed.all());
    assert!(workspace.path().join(".mlops/objects/independent").exists(), "state rm touched the object");
    let missing = workspace.run(&["state", "show", "bucket.renamd"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("did you mean"), "{}", missing.all());

    // The bucket still exists: importing it brings it back under
    // management, and the plan finds it as configured.
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("# bucket.renamed will be created"), "{}", plan.all());
    let imported = workspace.run(&["import", "bucket.renamed", "independent"]);
    assert_eq!(imported.code, 0, "{}", imported.all());
    assert!(imported.stdout.contains("Imported `independent` as bucket.renamed"), "{}", imported.all());
    workspace.assert_no_changes(&[]);
    for (arguments, expected) in [
        (["import", "bucket.renamed", "independent"], "`bucket.renamed` is already in the state"),
        (["import", "bucket.nowhere", "independent"], "`bucket.nowhere` is not declared in the configuration"),
        (["import", "data.dataset.x", "independent"], "is a data source, which is read, not imported"),
    ] {
        let refused = workspace.run(&arguments);
        assert_eq!(refused.code, 1, "{}", refused.all());
        assert!(refused.stderr.contains(expected), "missing {expected:?}:\n{}", refused.all());
    }
    workspace.run(&["state", "rm", "bucket.renamed"]);
    let absent = workspace.run(&["import", "bucket.renamed", "no-such-bucket"]);
    assert_eq!(absent.code, 1, "{}", absent.all());
    assert!(absent.stderr.contains("there is no local bucket `no-such-bucket`"), "{}", absent.all());
    // An imported resource records its `depends_on` as a planned one does,
    // so that a destroy removes it before what it depends on.
    let config = workspace.read("main.mlops.hcl");
    workspace.write("main.mlops.hcl", &config.replace("bucket \"renamed\" {", "bucket \"renamed\" {\n  depends_on = [bucket.lake]"));
    workspace.run(&["import", "bucket.renamed", "independent"]);
    let shown = workspace.run(&["show", "--json"]).stdout;
    let state: serde_json::Value = serde_json::from_str(&shown).unwrap_or_default();
    assert_eq!(state["resources"]["bucket.renamed"]["depends_on"], serde_json::json!(["bucket.lake"]), "{shown}");

    let dot = workspace.run(&["graph"]);
    assert!(dot.stdout.contains("\"dataset.numbers\" -> \"training.slow\";"), "{}", dot.all());
    let mermaid = workspace.run(&["graph", "--format", "mermaid"]);
    assert!(mermaid.stdout.contains("bucket_lake --> dataset_numbers"), "{}", mermaid.all());
}

#[test]
fn the_history_says_who_changed_what_and_never_a_variable_value() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    workspace.apply(&["-var", "token=hunter2-in-history"]);
    assert_eq!(workspace.run(&["state", "mv", "bucket.other", "bucket.renamed"]).code, 0);
    let listing = workspace.run(&["history"]);
    assert_eq!(listing.code, 0, "{}", listing.all());
    listing.assert_stdout_mentions(&["serial", "outcome", " done", "state change", "mlops apply", "state mv bucket.other bucket.renamed"]);
    let json = workspace.run(&["history", "--json"]);
    for run in [&listing, &json] {
        assert!(!run.stdout.contains("hunter2"), "a variable's value is in the history:\n{}", run.stdout);
    }
    let entries: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["user"].as_str().is_some(), entries[1]["user"].as_str().is_some(), "every entry says who");
    let serial = entries[0]["serial"].as_u64().unwrap().to_string();
    let shown = workspace.run(&["history", "show", &serial]);
    assert_eq!(shown.code, 0, "{}", shown.all());
    shown.assert_stdout_mentions(&["bucket.other: create (done)", "training.slow: create (done)", "config   b3:"]);
    let missing = workspace.run(&["history", "show", "9999"]);
    assert_eq!(missing.code, 1, "{}", missing.all());
    missing.assert_stderr_mentions(&["the history has no entry for serial 9999", "the serials in the history are"]);
}

#[test]
fn a_monitor_that_drifts_with_nothing_retraining_on_it_is_a_plan_warning() {
    let workspace = Workspace::copy_of("examples/quickstart");
    workspace.apply(&[]);
    workspace.assert_no_changes(&[]);
    // The live data moves far from what the dataset recorded: amounts a
    // hundred times larger.
    let data = workspace.read("data/transactions.csv");
    let shifted: Vec<String> = data
        .lines()
        .enumerate()
        .map(|(index, line)| {
            if index == 0 {
                return line.to_owned();
            }
            let mut fields: Vec<String> = line.split(',').map(str::to_owned).collect();
            fields[1] = format!("{:.2}", fields[1].parse::<f64>().unwrap() * 100.0 + 5000.0);
            fields.join(",")
        })
        .collect();
    workspace.write("data/transactions.csv", &(shifted.join("\n") + "\n"));
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    plan.assert_stderr_mentions(&[
        "W0103 drift-without-retraining",
        "monitor.fraud_drift reports drift, and nothing retrains on it",
        "retrain_on = [monitor.fraud_drift.drifted]",
    ]);

    // A training that retrains on it is what the warning asks for.
    let main = workspace.read("main.mlops.hcl");
    let retrains = main.replacen("training \"fraud\" {\n", "training \"fraud\" {\n  retrain_on = [monitor.fraud_drift.drifted]\n", 1);
    assert_ne!(retrains, main, "the quickstart's training block moved");
    workspace.write("main.mlops.hcl", &retrains);
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(!plan.stderr.contains("W0103"), "{}", plan.all());
}

#[test]
fn plan_and_apply_errors_are_diagnostics() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    workspace.write("extra.mlops.hcl", "variable \"required\" {\n  type = string\n}\n");
    let run = workspace.run(&["plan"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("E0415 missing-variable-value"), "{}", run.all());
    fs::remove_file(workspace.path().join("extra.mlops.hcl")).unwrap();
    fs::create_dir(workspace.path().join("empty")).unwrap();
    workspace.write("empty.mlops.hcl", "dataset \"empty\" {\n  bucket = bucket.lake\n  source = \"./empty\"\n  format = \"csv\"\n}\n");
    let run = workspace.run(&["plan"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("E0701 provider-error"), "{}", run.all());
    assert!(run.stderr.contains("cannot plan dataset.empty:"), "{}", run.all());
    assert!(run.stderr.contains("holds no data files"), "{}", run.all());
    assert!(run.stderr.contains("empty.mlops.hcl:1:1"), "no location:\n{}", run.all());
    fs::remove_file(workspace.path().join("empty.mlops.hcl")).unwrap();
    // What only the provider knows is checked before it plans.
    workspace.write("remote.mlops.hcl", "dataset \"remote\" {\n  uri    = \"s3://elsewhere/data/\"\n  format = \"csv\"\n}\n");
    let run = workspace.run(&["plan"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("dataset.remote: `uri`: the local provider cannot read `s3://elsewhere/data/`"), "{}", run.all());
    assert!(run.stderr.contains("`provider = s3` for data in object storage"), "{}", run.all());
    fs::remove_file(workspace.path().join("remote.mlops.hcl")).unwrap();

    workspace.write("protect.mlops.hcl", "bucket \"kept\" {\n  name = \"kept\"\n  lifecycle {\n    prevent_destroy = true\n  }\n}\n");
    workspace.apply(&[]);
    workspace.write("protect.mlops.hcl", "bucket \"kept\" {\n  name = \"renamed\"\n  lifecycle {\n    prevent_destroy = true\n  }\n}\n");
    let run = workspace.run(&["plan"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("E0702 prevent-destroy"), "{}", run.all());
    fs::remove_file(workspace.path().join("protect.mlops.hcl")).unwrap();
    let run = workspace.run(&["plan"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("bucket.kept would be destroyed, but lifecycle.prevent_destroy is set"), "{}", run.all());

    // A state file that is not valid JSON is reported, never overwritten.
    workspace.write(".mlops/state/state.json", "{ not json");
    let run = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("E0707 state-error"), "{}", run.all());
    assert_eq!(workspace.read(".mlops/state/state.json"), "{ not json");
    // Leave a valid state so the clean-up can destroy.
    fs::remove_file(workspace.path().join(".mlops/state/state.json")).unwrap();
}

#[test]
fn markdown_plans_fit_a_pull_request_comment() {
    let workspace = Workspace::copy_of("tests/cases/many-buckets");
    let markdown = workspace.run(&["plan", "--format", "markdown"]);
    assert_eq!(markdown.code, 0, "{}", markdown.all());
    let text = &markdown.stdout;
    assert!(text.len() < 65_000, "{} characters", text.len());
    assert!(text.contains("**Plan: 1500 to add, 0 to change, 0 to replace, 0 to destroy.**"), "{text}");
    assert!(text.contains("| + create | 1500 | bucket 1500 |"), "{text}");
    assert!(text.contains("_The diff was cut here to fit a comment:"), "{text}");
    // The fence is closed even when cut.
    assert_eq!(text.matches("```").count(), 2, "{text}");
    assert!(text.trim_end().ends_with("Run `mlops plan` to see all of it._"), "{text}");
}

use mlops_data::testing::write_parquet;

#[test]
fn parquet_datasets_are_validated_and_feed_features() {
    let workspace = Workspace::copy_of("tests/cases/parquet-dataset");
    write_parquet(&workspace.path().join("data.parquet"), &[Some(30), Some(10), None], &[1.0, 2.0, 3.0]);
    let run = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("data.parquet` row 2, column `age`: 10 is below the minimum 18"), "{}", run.all());

    write_parquet(&workspace.path().join("data.parquet"), &[Some(30), Some(40), None], &[1.0, 2.0, 3.5]);
    workspace.apply(&[]);
    assert_eq!(workspace.output("rows"), "3");
    // The features are Parquet, with the feature types as Parquet types.
    let file = fs::read_dir(workspace.path().join(".mlops/objects/parquet-lake/features/feature_set.events"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("features.parquet"))
        .next()
        .unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&file).unwrap()).unwrap();
    let fields: Vec<String> = reader.schema().fields().iter().map(|field| format!("{}:{}", field.name(), field.data_type())).collect();
    assert_eq!(fields, ["age:Int64", "amount_doubled:Float64"]);
    let batch = reader.build().unwrap().next().unwrap().unwrap();
    use arrow_array::cast::AsArray;
    let doubled: Vec<Option<f64>> = batch.column(1).as_primitive::<arrow_array::types::Float64Type>().iter().collect();
    assert_eq!(doubled, [Some(2.0), Some(4.0), Some(7.0)]);
}

#[test]
fn a_failed_run_is_run_again_not_reattached() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    let script = workspace.read("slow_train.py");
    workspace.write("slow_train.py", &format!("import sys\nprint('the data is bad')\nsys.exit(3)\n{script}"));
    let run = workspace.run_fast(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("failed with exit code 3; the last lines of its output:"), "{}", run.all());
    assert!(run.stderr.contains("the data is bad"), "{}", run.all());
    // A run that does not report a declared metric fails too.
    workspace.write("slow_train.py", &script.replace(r#"{"score": 1.0}"#, r#"{"loss": 0.5}"#));
    let run = workspace.run_fast(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("did not report the declared metric `score`"), "{}", run.all());
    workspace.write("slow_train.py", &script);
    let run = workspace.run_fast(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.stderr.contains("re-attaching"), "{}", run.all());
    workspace.assert_no_changes(&[]);
}

#[test]
fn resources_in_local_modules_are_planned_applied_and_ordered() {
    let workspace = Workspace::copy_of("tests/cases/modules");
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("# module.eu.dataset.events will be created"), "{}", plan.all());
    assert!(plan.stdout.contains("+ dataset = module.eu.dataset.events"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(workspace.output("eu_rows"), "3");
    assert_eq!(workspace.output("eu_features"), "3");
    let list = workspace.run(&["state", "list"]).stdout;
    assert_eq!(
        list.lines().collect::<Vec<_>>(),
        vec!["feature_set.eu", "module.eu.bucket.lake", "module.eu.dataset.events", "module.us.bucket.lake", "module.us.dataset.events"]
    );
    let lineage = workspace.run(&["lineage", "feature_set.eu"]).stdout;
    assert!(lineage.contains("└─ module.eu.dataset.events  b3:"), "{lineage}");
    let targeted = workspace.run(&["plan", "--destroy", "-target", "module.us"]);
    assert!(targeted.stdout.contains("module.us.dataset.events will be forgotten"), "{}", targeted.all());
    assert!(!targeted.stdout.contains("module.eu."), "{}", targeted.all());
}

#[test]
fn force_unlock_clears_a_stale_lock_and_refuses_a_live_one() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    let mut running = start_slow_apply(&workspace, "3");
    let holder: serde_json::Value = serde_json::from_str(&workspace.read(".mlops/state/lock")).expect("the lock names its holder");
    let id = holder["id"].as_str().unwrap().to_owned();
    let wrong = workspace.run(&["force-unlock", "not-the-id"]);
    assert_eq!(wrong.code, 1, "{}", wrong.all());
    assert!(wrong.stderr.contains(&format!("the lock ID is {id}")), "{}", wrong.all());
    let live = workspace.run(&["force-unlock", &id]);
    assert_eq!(live.code, 1, "{}", live.all());
    assert!(live.stderr.contains("which is still running"), "{}", live.all());
    assert!(running.wait().unwrap().success());

    // A holder record left behind by a process that is gone.
    let stale = serde_json::json!({ "id": "stale-lock", "user": "ci", "host": "elsewhere", "pid": 999999, "command": "mlops apply", "time": "2026-11-22T00:00:00Z" });
    workspace.write(".mlops/state/lock", &stale.to_string());
    let cleared = workspace.run(&["force-unlock", "stale-lock"]);
    assert_eq!(cleared.code, 0, "{}", cleared.all());
    assert!(cleared.stdout.contains("Released the lock held by ci@elsewhere (pid 999999"), "{}", cleared.all());
    assert_eq!(workspace.read(".mlops/state/lock"), "");
    let none = workspace.run(&["force-unlock", "stale-lock"]);
    assert_eq!(none.code, 1, "{}", none.all());
    assert!(none.stderr.contains("the state is not locked"), "{}", none.all());
}

#[test]
fn variables_come_from_files_flags_and_the_environment() {
    let workspace = Workspace::copy_of("examples/quickstart");
    workspace.write("prod.vars", "env     = \"prod\"\nmin_auc = 0.5\n");
    let plan = workspace.run(&["plan", "-var-file", "prod.vars"]);
    assert!(plan.stdout.contains("+ name = \"fraud-prod-lake\""), "{}", plan.all());
    assert!(plan.stdout.contains("training.fraud.metrics.auc >= 0.5"), "{}", plan.all());
    // -var wins over the file, and both over the environment.
    let plan = Run::from(
        workspace.command(&["plan", "-var-file", "prod.vars", "-var", "env=staging"]).env("MLOPS_VAR_min_auc", "0.6").output().unwrap(),
    );
    assert!(plan.stdout.contains("+ name = \"fraud-staging-lake\""), "{}", plan.all());
    assert!(plan.stdout.contains("training.fraud.metrics.auc >= 0.5"), "{}", plan.all());
    let plan = Run::from(workspace.command(&["plan"]).env("MLOPS_VAR_min_auc", "0.6").output().unwrap());
    assert!(plan.stdout.contains("training.fraud.metrics.auc >= 0.6"), "{}", plan.all());
    // A value that fails the variable's validation is reported as such.
    let invalid = workspace.run(&["plan", "-var", "env=qa"]);
    assert_eq!(invalid.code, 1, "{}", invalid.all());
    assert!(invalid.stderr.contains("E0409 variable-validation-failed"), "{}", invalid.all());
    let missing = workspace.run(&["plan", "-var-file", "nowhere.vars"]);
    assert_eq!(missing.code, 1, "{}", missing.all());
    assert!(missing.stderr.contains("cannot read the variable file `nowhere.vars`"), "{}", missing.all());
}

/// A copy of the slow case whose state is in `shared/state`, as a second
/// checkout of a repository with a shared backend has it.
fn checkout_sharing_state(shared: &std::path::Path) -> Workspace {
    let checkout = Workspace::copy_of("tests/cases/slow-training");
    checkout.write(
        "backend.mlops.hcl",
        &format!("mlops {{\n  backend \"local\" {{\n    path = \"{}\"\n  }}\n}}\n", shared.join("state").display()),
    );
    checkout
}

#[test]
fn a_second_checkout_sharing_the_state_leaves_what_the_first_made_alone() {
    let shared = tempfile::tempdir().unwrap();
    let first = checkout_sharing_state(shared.path());
    first.apply(&[]);

    let second = checkout_sharing_state(shared.path());
    let plan = second.run_fast(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "the second checkout plans to make everything again:\n{}", plan.all());
    assert!(plan.stdout.contains("Notes:"), "{}", plan.all());
    assert!(plan.stdout.contains("training.slow: recorded by mlops at "), "{}", plan.all());
    assert!(plan.stdout.contains(&first.path().canonicalize().unwrap().join(".mlops").display().to_string()), "{}", plan.all());
    assert!(!plan.stdout.contains("deleted outside mlops"), "{}", plan.all());
    assert!(!second.path().join(".mlops/runs").exists(), "a run started here");

    // Destroying from here would orphan what lives there: refused.
    let destroy = second.run(&["destroy", "--auto-approve"]);
    assert_eq!(destroy.code, 1, "{}", destroy.all());
    assert!(destroy.stderr.contains("lives at ") && destroy.stderr.contains("destroy it there"), "{}", destroy.all());
    std::fs::remove_file(second.path().join("backend.mlops.hcl")).unwrap();
}

#[test]
fn a_run_under_way_in_another_checkout_is_named_as_such_not_called_stopped() {
    let shared = tempfile::tempdir().unwrap();
    let journal = shared.path().join("state/journal.jsonl");
    let first = checkout_sharing_state(shared.path());
    // The apply is killed once its run has started; the run goes on.
    let mut child = first.start_slow_apply("4", || std::fs::read_to_string(&journal).unwrap_or_default().contains("\"started\""));
    child.kill().unwrap();
    child.wait().unwrap();

    let second = checkout_sharing_state(shared.path());
    let apply = second.run_fast(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(apply.stderr.contains("training.slow has work under way that an unfinished apply started at "), "{}", apply.all());
    assert!(apply.stderr.contains("run `mlops apply` there to finish it"), "{}", apply.all());
    assert!(!apply.all().contains("stopped without reporting"), "{}", apply.all());
    assert!(!second.path().join(".mlops/runs").exists(), "a run started here");
    std::fs::remove_file(second.path().join("backend.mlops.hcl")).unwrap();

    // Where it was started, the next apply adopts the run and finishes.
    let finish = first.run_fast(&["apply", "--auto-approve"]);
    assert_eq!(finish.code, 0, "{}", finish.all());
    assert!(finish.stderr.contains("training.slow: re-attaching to run "), "{}", finish.all());
}

/// The rows of a Parquet file as JSON objects, with each column's type.
fn parquet_rows(file: &Path) -> (Vec<String>, Vec<serde_json::Map<String, serde_json::Value>>) {
    use arrow_array::Array;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(fs::File::open(file).unwrap()).unwrap();
    let fields: Vec<String> = reader.schema().fields().iter().map(|field| format!("{}:{}", field.name(), field.data_type())).collect();
    let mut rows = Vec::new();
    for batch in reader.build().unwrap() {
        let batch = batch.unwrap();
        let strings = arrow_array::cast::AsArray::as_string::<i32>;
        for index in 0..batch.num_rows() {
            let mut row = serde_json::Map::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                let value = if column.is_null(index) {
                    serde_json::Value::Null
                } else {
                    match column.data_type() {
                        arrow_schema::DataType::Utf8 => serde_json::json!(strings(column.as_ref()).value(index)),
                        arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, _) => {
                            let micros =
                                arrow_array::cast::AsArray::as_primitive::<arrow_array::types::TimestampMicrosecondType>(column.as_ref())
                                    .value(index);
                            let time = chrono::DateTime::from_timestamp_micros(micros).unwrap();
                            serde_json::json!(time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                        }
                        _ => {
                            let text = arrow_cast::display::array_value_to_string(column, index).unwrap();
                            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
                        }
                    }
                };
                row.insert(field.name().clone(), value);
            }
            rows.push(row);
        }
    }
    (fields, rows)
}

#[test]
fn time_window_aggregates_and_training_sets_are_point_in_time_and_planned_by_their_data() {
    let workspace = Workspace::copy_of("tests/cases/time-windows");
    workspace.run(&["validate"]);
    workspace.apply(&[]);
    let uri = workspace.output("uri");
    let directory = workspace.path().join(".mlops").join(uri.trim_start_matches("local://"));
    let (fields, rows) = parquet_rows(&directory.join("features.parquet"));
    assert_eq!(
        fields,
        [
            "customer_id:Utf8",
            "event_time:Timestamp(µs, \"UTC\")",
            "large:Boolean",
            "merchants_30d:Int64",
            "previous_amount:Float64",
            "spend_7d:Float64",
            "transactions_before:Int64",
        ]
    );
    let summary: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "{} {} large={} spend_7d={} before={} merchants={} previous={}",
                row["customer_id"].as_str().unwrap(),
                row["event_time"].as_str().unwrap(),
                row["large"],
                row["spend_7d"],
                row["transactions_before"],
                row["merchants_30d"],
                row["previous_amount"]
            )
        })
        .collect();
    // In the file's order; each row sees only its customer's past (the
    // 9 March row's week reaches back past 1 March).
    assert_eq!(
        summary,
        [
            "c2 2026-03-01T12:00:00Z large=false spend_7d=40.0 before=0 merchants=1 previous=null",
            "c1 2026-03-09T09:00:00Z large=true spend_7d=580.0 before=2 merchants=3 previous=80.0",
            "c1 2026-03-01T09:00:00Z large=false spend_7d=20.0 before=0 merchants=1 previous=null",
            "c1 2026-03-05T09:00:00Z large=false spend_7d=100.0 before=1 merchants=2 previous=20.0",
            "c2 2026-03-02T12:00:00Z large=false spend_7d=100.0 before=1 merchants=1 previous=40.0",
        ]
    );

    // Labels joined point-in-time: each label row takes its customer's
    // latest features at or before the time it was observed (none before
    // the customer's first event, none for an unknown customer).
    let joined =
        |output: &str, file: &str| workspace.path().join(".mlops").join(workspace.output(output).trim_start_matches("local://")).join(file);
    let (fields, rows) = parquet_rows(&joined("churn_uri", "features.parquet"));
    assert_eq!(fields[..3], ["churned:Boolean", "customer_id:Utf8", "observed_at:Timestamp(µs, \"UTC\")"]);
    let summary: Vec<String> = rows
        .iter()
        .map(|row| {
            format!("{} {} spend_7d={} previous={}", row["customer_id"], row["observed_at"], row["spend_7d"], row["previous_amount"])
        })
        .collect();
    assert_eq!(
        summary,
        [
            "\"c1\" \"2026-03-04T00:00:00Z\" spend_7d=20.0 previous=null",
            "\"c1\" \"2026-03-09T09:00:00Z\" spend_7d=580.0 previous=80.0",
            "\"c2\" \"2026-02-28T00:00:00Z\" spend_7d=null previous=null",
            "\"c3\" \"2026-03-05T00:00:00Z\" spend_7d=null previous=null",
            "\"c2\" \"2026-03-10T00:00:00Z\" spend_7d=100.0 previous=40.0",
        ]
    );
    // With max_age = "2d", features older than two days before the label are not used.
    let recent = fs::read_to_string(joined("recent_uri", "features.jsonl")).unwrap();
    let spends: Vec<serde_json::Value> =
        recent.lines().map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["spend_7d"].clone()).collect();
    assert_eq!(
        spends,
        [serde_json::Value::Null, serde_json::json!(580), serde_json::Value::Null, serde_json::Value::Null, serde_json::Value::Null]
    );
    let lineage = workspace.run(&["lineage", "training_set.churn"]).stdout;
    assert!(
        lineage.contains("feature_set.activity") && lineage.contains("dataset.labels") && lineage.contains("dataset.transactions"),
        "{lineage}"
    );
    workspace.assert_no_changes(&[]);

    // A new event changes the dataset, and so the features.
    let data = workspace.read("transactions.csv");
    workspace.write("transactions.csv", &format!("{data}c1,2026-03-10T09:00:00Z,5,food\n"));
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("feature_set.activity"), "{}", plan.all());
    assert!(plan.stdout.contains("its dataset has a new version, so the features are computed again"), "{}", plan.all());
    // ... and so the training sets joined to them.
    assert!(plan.stdout.contains("training_set.churn"), "{}", plan.all());
    assert!(plan.stdout.contains("an input has a new version, so the training set is joined again"), "{}", plan.all());

    // A time that is not a time is refused when the dataset is stored, not
    // discovered later by the features.
    workspace.write("transactions.csv", &format!("{data}c1,next tuesday,5,food\n"));
    let run = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("transactions.csv` line 7, column `event_time`: `next tuesday` is not a timestamp"), "{}", run.all());
    assert!(run.stderr.contains("dataset.transactions"), "{}", run.all());
}

#[test]
fn batch_predictions_run_the_model_over_the_data_and_run_again_when_either_changes() {
    let workspace = Workspace::copy_of("tests/cases/batch-scoring");
    workspace.apply(&[]);
    let predictions = |workspace: &Workspace| {
        let directory = workspace.path().join(".mlops").join(workspace.output("predictions").trim_start_matches("local://"));
        fs::read_to_string(directory.join("predictions.csv")).unwrap()
    };
    assert_eq!(predictions(&workspace), "id,flagged,model_version\na,0,1\nb,1,1\nc,1,1\n");
    let lineage = workspace.run(&["lineage", "batch_prediction.flags"]).stdout;
    assert!(lineage.contains("dataset.rows") && lineage.contains("model.threshold"), "{lineage}");
    workspace.assert_no_changes(&[]);

    // New rows: the plan says which input changed, and the predictions follow.
    workspace.write("rows.csv", "id,amount\na,50\nb,150\nc,250\nd,500\n");
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("# batch_prediction.flags will be replaced"), "{}", plan.all());
    assert!(plan.stdout.contains("input dataset.rows changed: version"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(predictions(&workspace), "id,flagged,model_version\na,0,2\nb,1,2\nc,1,2\nd,1,2\n");
    workspace.assert_no_changes(&[]);

    // New scoring code: run again, for that reason alone.
    let script = workspace.read("score.py");
    workspace.write("score.py", &script.replace("> threshold", ">= threshold"));
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("code fingerprint changed"), "{}", plan.all());
    assert!(!plan.stdout.contains("training.threshold will be replaced"), "{}", plan.all());

    // A run that writes nothing is an error that says where to write.
    workspace.write("score.py", "import sys\nprint('no predictions today')\n");
    let run = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("wrote no predictions"), "{}", run.all());
    assert!(run.stderr.contains("MLOPS_OUTPUT_DIR"), "{}", run.all());
}

#[test]
fn kill_9_while_computing_features_leaves_nothing_that_counts_and_the_next_apply_converges() {
    let workspace = Workspace::copy_of("tests/cases/time-windows");
    // Enough rows that computing the features takes a while.
    let mut rows = String::from("customer_id,event_time,amount,merchant\n");
    for index in 0..400_000 {
        rows.push_str(&format!(
            "c{},2026-03-{:02}T{:02}:00:00Z,{}.5,m{}\n",
            index % 5_000,
            1 + index % 28,
            index % 24,
            index % 900,
            index % 7
        ));
    }
    workspace.write("transactions.csv", &rows);
    let targeted = |target: &str| {
        let run = workspace.run(&["apply", "--auto-approve", "-target", target]);
        assert_eq!(run.code, 0, "{}", run.all());
    };
    targeted("dataset.transactions");
    let features = workspace.path().join(".mlops/objects/windows-lake/features/feature_set.activity");
    let entries = |directory: &Path| -> Vec<String> {
        fs::read_dir(directory)
            .map(|entries| entries.flatten().map(|entry| entry.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let mut child = workspace
        .command(&["apply", "--auto-approve", "-target", "feature_set.activity"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !entries(&features).iter().any(|name| name.starts_with(".staging-")) {
        assert!(Instant::now() < deadline, "the features never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed mid-way: no version was recorded or stored, only the staging left.
    assert!(entries(&features).iter().all(|name| name.starts_with(".staging-")), "{:?}", entries(&features));
    let state = workspace.run(&["state", "list"]).stdout;
    assert!(!state.contains("feature_set.activity"), "{state}");

    targeted("feature_set.activity");
    let left = entries(&features);
    assert_eq!(left.len(), 1, "one version, nothing abandoned: {left:?}");
    assert!(!left[0].starts_with('.'), "{left:?}");
    let version = fs::read_dir(features.join(&left[0])).unwrap().flatten().map(|entry| entry.file_name()).collect::<Vec<_>>();
    assert_eq!(version, ["features.parquet"], "no partial file in the version");
    let plan = workspace.run(&["plan", "-target", "feature_set.activity"]);
    assert!(!plan.stdout.contains("feature_set.activity will be"), "{}", plan.all());
}

#[test]
fn the_churn_example_runs_end_to_end_and_its_training_set_sees_no_future() {
    let workspace = Workspace::copy_of("examples/churn");
    workspace.apply(&[]);
    let predictions = workspace.path().join(".mlops").join(workspace.output("predictions").trim_start_matches("local://"));
    let flags = fs::read_to_string(predictions.join("at_risk.csv")).unwrap();
    assert_eq!(flags.lines().count(), 61, "a header and one line per customer:\n{flags}");

    // Each training row holds the customer's 30-day count as of their latest
    // transaction at or before the label's day, recomputed here by hand.
    let time = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap();
    let events: Vec<(String, chrono::DateTime<chrono::FixedOffset>)> = workspace
        .read("data/transactions.csv")
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[0].to_owned(), time(fields[1]))
        })
        .collect();
    let sets = workspace.path().join(".mlops/objects/churn-lake/training-sets/training_set.churn");
    let version = fs::read_dir(&sets).unwrap().flatten().next().unwrap().path();
    let rows = fs::read_to_string(version.join("features.jsonl")).unwrap();
    let mut checked = 0;
    for line in rows.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let (customer, observed) = (row["customer_id"].as_str().unwrap(), time(row["observed_at"].as_str().unwrap()));
        let latest = events.iter().filter(|(who, when)| who == customer && *when <= observed).map(|(_, when)| *when).max();
        let expected = latest.map(|latest| {
            events.iter().filter(|(who, when)| who == customer && *when <= latest && *when > latest - chrono::Duration::days(30)).count()
        });
        assert_eq!(row["transactions_30d"].as_u64().map(|count| count as usize), expected, "{line}");
        checked += 1;
    }
    assert_eq!(checked, 60);
}

/// A platform team's policies, shipped in a module: they judge every
/// resource of the configuration that calls it. `validate` reports what the
/// configuration alone decides; `plan` judges the rest with what the plan
/// does (`change`) and its counts (`plan`), fails on an `error` policy,
/// and lists every result in text, markdown and JSON.
#[test]
fn policies_from_a_module_judge_the_whole_configuration_at_validate_and_plan() {
    let workspace = Workspace::copy_of("examples/quickstart");
    fs::create_dir_all(workspace.path().join("platform")).unwrap();
    workspace.write(
        "platform/main.mlops.hcl",
        r#"variable "env" {
  type = string
}

policy "prod_replicas" {
  description   = "Prod keeps two replicas."
  resource      = serving
  condition     = var.env != "prod" || self.replicas.min >= 2
  error_message = "servings in prod keep at least two replicas"
}

policy "keep_models" {
  resource      = model
  condition     = change.action != "delete"
  error_message = "no plan deletes ${self.name}'s versions"
}

policy "small_plans" {
  condition     = plan.creates <= 3
  error_message = "a plan creates at most three things at once (this one: ${plan.creates})"
  enforcement   = "warning"
}

policy "budget" {
  condition     = plan.cost.monthly_delta <= 100
  error_message = "a plan adds at most 100 a month"
  enforcement   = "advisory"
}
"#,
    );
    let main = workspace.read("main.mlops.hcl");
    workspace.write("main.mlops.hcl", &format!("{main}\nmodule \"platform\" {{\n  source = \"./platform\"\n  env    = var.env\n}}\n"));

    // validate: the serving breaks prod_replicas only in prod; what the plan
    // does is not known, so nothing else is decided.
    let validate = workspace.run(&["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.all());
    assert!(!validate.stderr.contains("policy"), "{}", validate.all());
    let validate = workspace.run(&["validate", "-var", "env=prod"]);
    assert_eq!(validate.code, 1, "{}", validate.all());
    validate.assert_stderr_mentions(&[
        "E0420 policy-violated",
        "serving.fraud_api breaks policy `prod_replicas`: servings in prod keep at least two replicas",
        "`replicas.min` is 1 (not set here)",
        "policy `prod_replicas` (from module.platform)",
        "platform/main.mlops.hcl:5",
    ]);

    // plan: the warning and the advice are shown, the plan is made.
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    plan.assert_stderr_mentions(&[
        "W0105 policy-warning",
        "the plan breaks policy `small_plans`: a plan creates at most three things at once (this one: 7)",
        "W0106 policy-advisory",
        "needs the plan's cost: set `prices`",
    ]);
    snapshot("quickstart-policies.txt", &plan.stdout);
    snapshot("quickstart-policies.md", &workspace.run(&["plan", "--format", "markdown"]).stdout);
    let json = workspace.run(&["plan", "--format", "json"]).stdout;
    let rendered: serde_json::Value = serde_json::from_str(&json).unwrap();
    snapshot("quickstart-policies.json", &serde_json::to_string_pretty(&rendered["policies"]).unwrap());
    let schema: serde_json::Value = serde_json::from_str(&fs::read_to_string(repository().join("docs/plan.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&rendered).map(|error| format!("{error} at {}", error.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // An error policy stops the plan, and so the apply.
    let plan = workspace.run(&["plan", "-var", "env=prod"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    plan.assert_stderr_mentions(&["serving.fraud_api breaks policy `prod_replicas`", "nothing was planned"]);
    // A pull-request comment, or a CI tool reading JSON, says why too.
    let markdown = workspace.run(&["plan", "-var", "env=prod", "--format", "markdown"]);
    assert_eq!(markdown.code, 1);
    assert!(markdown.stdout.starts_with("### mlops plan\n\n**Nothing was planned: 1 error found.**"), "{}", markdown.all());
    assert!(markdown.stdout.contains("serving.fraud_api breaks policy `prod_replicas`"), "{}", markdown.all());
    let json = workspace.run(&["plan", "-var", "env=prod", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("a JSON report");
    assert_eq!((report["valid"].as_bool(), report["diagnostics"][0]["code"].as_str()), (Some(false), Some("E0420")), "{report}");
    let apply = workspace.run(&["apply", "--auto-approve", "-var", "env=prod"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(!workspace.path().join(".mlops/registry").exists(), "an apply went ahead past a broken policy");

    // After apply, a plan with nothing to create holds every policy but
    // the budget (no prices), and a destroy judges what it deletes: the
    // model is forgotten (kept), unless its versions are deleted too.
    workspace.apply(&[]);
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("Policies (4 checked: 3 hold, 1 with advice):"), "{}", plan.all());
    let destroy = workspace.run(&["plan", "--destroy"]);
    assert_eq!(destroy.code, 0, "{}", destroy.all());
    let destroy = workspace.run(&["destroy", "--auto-approve", "--delete-retained"]);
    assert_eq!(destroy.code, 1, "{}", destroy.all());
    destroy.assert_stderr_mentions(&[
        "model.fraud breaks policy `keep_models`: no plan deletes fraud-detector's versions",
        "false for model.fraud (delete)",
    ]);
    // prod_replicas reads no `change`: the serving being destroyed is not judged by it.
    assert!(!destroy.stderr.contains("prod_replicas"), "{}", destroy.all());
    assert!(workspace.path().join(".mlops/registry/fraud-detector/versions/1").exists());

    // The clean-up destroy deletes everything: without the module's policies.
    let main = workspace.read("main.mlops.hcl");
    workspace.write("main.mlops.hcl", &main[..main.find("\nmodule \"platform\"").unwrap()]);
}
