//! The engine and the local provider as a hostile or unlucky user meets
//! them: names that climb out of `.mlops`, damaged and deleted state,
//! secrets followed through every output, child processes' environments,
//! `kill -9` at each phase, tampered saved plans, and hostile input. Each
//! case is a named test, so no later change can bring the defect back.

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use support::Workspace;

/// A bucket, a dataset in it, and a file outside the configuration that
/// nothing may touch.
const LAKE: &str = r#"
bucket "lake" {
  name          = "good-lake"
  force_destroy = true
}

dataset "numbers" {
  bucket = bucket.lake
  source = "./numbers.csv"
  schema {
    column "x" { type = int }
  }
}
"#;

fn lake() -> Workspace {
    let workspace = Workspace::empty();
    workspace.write("main.mlops.hcl", LAKE);
    workspace.write("numbers.csv", "x\n1\n2\n3\n");
    workspace
}

/// Edits the stored snapshot as an attacker (or a bad merge) would.
fn edit_snapshot(workspace: &Workspace, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = workspace.path().join(".mlops/state/state.json");
    let mut state: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut state);
    fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
}

fn assert_untouched(victim: &Path) {
    assert_eq!(fs::read_to_string(victim.join("precious.txt")).unwrap_or_default(), "keep me", "{} was touched", victim.display());
}

fn victim() -> tempfile::TempDir {
    let directory = tempfile::Builder::new().prefix("mlops-victim-").tempdir().unwrap();
    fs::write(directory.path().join("precious.txt"), "keep me").unwrap();
    fs::create_dir(directory.path().join(".git")).unwrap();
    fs::write(directory.path().join(".env"), "TOKEN=x").unwrap();
    directory
}

#[test]
fn names_that_would_leave_mlops_are_refused_before_anything_runs() {
    let outside = victim();
    let workspace = Workspace::empty();
    workspace.write(
        "main.mlops.hcl",
        &format!(
            "bucket \"absolute\" {{\n  name = \"{}\"\n}}\n\nbucket \"climbing\" {{\n  name          = \"../..\"\n  force_destroy = true\n}}\n\n\
             training \"t\" {{\n  command = [\"true\"]\n}}\n\nmodel \"m\" {{\n  name   = \"..\"\n  source = training.t\n}}\n",
            outside.path().display()
        ),
    );
    for command in [&["validate"][..], &["plan"], &["apply", "--auto-approve"], &["destroy", "--auto-approve", "--delete-retained"]] {
        let run = workspace.run(command);
        assert_eq!(run.code, 1, "{command:?}:\n{}", run.all());
        assert_eq!(run.stderr.matches("E0416 invalid-storage-name").count(), 3, "{command:?}:\n{}", run.all());
    }
    assert_untouched(outside.path());
    assert!(workspace.path().join("main.mlops.hcl").exists());
    assert!(!workspace.path().join(".mlops/objects").exists(), "something was created");
}

#[test]
fn a_tampered_state_cannot_point_a_delete_outside_mlops() {
    let outside = victim();
    let workspace = lake();
    workspace.apply(&[]);
    let escape = format!("local://../../../../../../../../..{}/v1", outside.path().display());
    edit_snapshot(&workspace, |state| {
        state["resources"]["dataset.numbers"]["state"]["uri"] = escape.clone().into();
    });
    let destroy = workspace.run(&["destroy", "--auto-approve", "--delete-retained", "--refresh=false"]);
    assert_eq!(destroy.code, 1, "{}", destroy.all());
    assert!(destroy.stderr.contains("refusing to delete"), "{}", destroy.all());
    assert!(destroy.stderr.contains("it is not inside the folders mlops owns"), "{}", destroy.all());
    assert_untouched(outside.path());

    // A bucket name edited into the state is refused the same way.
    edit_snapshot(&workspace, |state| {
        state["resources"]["dataset.numbers"]["state"]["uri"] = "local://objects/good-lake/datasets/x".into();
        state["resources"]["bucket.lake"]["config"]["name"] = format!("../../../../../../../../..{}", outside.path().display()).into();
    });
    let destroy = workspace.run(&["destroy", "--auto-approve", "--delete-retained", "--refresh=false"]);
    assert_eq!(destroy.code, 1, "{}", destroy.all());
    assert!(destroy.stderr.contains("cannot name a local bucket"), "{}", destroy.all());
    assert_untouched(outside.path());
    assert!(outside.path().join(".git").is_dir() && outside.path().join(".env").is_file());
}

#[test]
fn a_bucket_holding_only_hidden_files_is_not_empty() {
    let workspace = lake();
    workspace.write("main.mlops.hcl", "bucket \"lake\" {\n  name = \"good-lake\"\n}\n");
    workspace.apply(&[]);
    let bucket = workspace.path().join(".mlops/objects/good-lake");
    fs::create_dir(bucket.join(".git")).unwrap();
    fs::write(bucket.join(".git/HEAD"), "ref: refs/heads/main").unwrap();
    fs::write(bucket.join(".env"), "TOKEN=x").unwrap();
    let destroy = workspace.run(&["destroy", "--auto-approve"]);
    assert_eq!(destroy.code, 1, "{}", destroy.all());
    assert!(destroy.stderr.contains("bucket `good-lake` is not empty: it holds 2 files"), "{}", destroy.all());
    assert!(bucket.join(".git/HEAD").exists() && bucket.join(".env").exists());
    fs::remove_dir_all(bucket.join(".git")).unwrap();
    fs::remove_file(bucket.join(".env")).unwrap();
}

#[test]
fn a_damaged_journal_line_is_reported_and_later_lines_are_never_cut_off() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    // An apply killed after its first resources: their lines are in the
    // journal, not yet folded into a snapshot.
    let mut child = workspace.start_slow_apply("30", || workspace.read(".mlops/state/journal.jsonl").contains("pending_handle"));
    child.kill().unwrap();
    child.wait().unwrap();
    let journal = workspace.path().join(".mlops/state/journal.jsonl");
    let text = fs::read_to_string(&journal).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "{text}");
    let damaged = text.replacen(lines[0], &lines[0].replacen("\"kind\"", "\"kinx\"", 1), 1);
    fs::write(&journal, &damaged).unwrap();

    for command in [&["plan"][..], &["apply", "--auto-approve"]] {
        let run = workspace.run_fast(command);
        assert_eq!(run.code, 1, "{command:?}:\n{}", run.all());
        assert!(run.stderr.contains("E0707 state-error"), "{}", run.all());
        assert!(run.stderr.contains("line 1 of journal.jsonl is damaged (it should hold serial 1"), "{}", run.all());
        assert!(run.stderr.contains("cannot be replayed without it: serial 2 saves"), "{}", run.all());
        assert!(run.stderr.contains("mlops state restore"), "{}", run.all());
        assert!(!run.stdout.contains("will be created"), "a damaged state was planned as empty:\n{}", run.all());
    }
    assert_eq!(fs::read_to_string(&journal).unwrap(), damaged, "the journal was cut");

    let list = workspace.run(&["state", "restore", "--list"]);
    assert_eq!(list.code, 0, "{}", list.all());
    assert!(list.stdout.contains("--from current"), "{}", list.all());
    assert!(list.stdout.contains("loses journal.jsonl line 1 (probably a change of "), "{}", list.all());
    let refused = workspace.run(&["state", "restore"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(refused.stderr.contains("add --accept-loss"), "{}", refused.all());
    let restored = workspace.run(&["state", "restore", "--accept-loss"]);
    assert_eq!(restored.code, 0, "{}", restored.all());
    assert!(restored.stdout.contains("the state is now at serial"), "{}", restored.all());
    // What the damaged line held is created again; nothing else is.
    workspace.apply(&[]);
}

#[test]
fn a_deleted_snapshot_is_reported_and_restored_without_duplicates() {
    let workspace = Workspace::copy_of("examples/quickstart");
    workspace.apply(&[]);
    let before = workspace.read(".mlops/state/state.json");
    fs::remove_file(workspace.path().join(".mlops/state/state.json")).unwrap();

    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stderr.contains("history.jsonl records serial"), "{}", plan.all());
    assert!(plan.stderr.contains("but state.json is missing"), "{}", plan.all());
    assert!(!plan.stdout.contains("will be created"), "{}", plan.all());
    let apply = workspace.run_fast(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());

    let restore = workspace.run(&["state", "restore"]);
    assert_eq!(restore.code, 0, "{}", restore.all());
    assert!(restore.stdout.contains("(7 resources)"), "{}", restore.all());
    let after = workspace.read(".mlops/state/state.json");
    let resources = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["resources"].clone();
    assert_eq!(resources(&after), resources(&before));
    workspace.assert_no_changes(&[]);
    let versions = fs::read_dir(workspace.path().join(".mlops/registry/fraud-detector/versions")).unwrap().count();
    assert_eq!(versions, 1, "a model version was registered twice");
}

#[test]
fn a_truncated_snapshot_is_reported_not_read_as_empty() {
    let workspace = lake();
    workspace.apply(&[]);
    fs::write(workspace.path().join(".mlops/state/state.json"), "{\"format_version\": 1, \"lineage\": \"ab").unwrap();
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stderr.contains("state.json cannot be read"), "{}", plan.all());
    let restore = workspace.run(&["state", "restore"]);
    assert_eq!(restore.code, 0, "{}", restore.all());
    workspace.assert_no_changes(&[]);
}

#[test]
fn with_no_backup_left_only_an_explicit_choice_starts_again_from_nothing() {
    let workspace = lake();
    workspace.apply(&[]);
    fs::remove_file(workspace.path().join(".mlops/state/state.json")).unwrap();
    fs::remove_dir_all(workspace.path().join(".mlops/state/backups")).unwrap();
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    let restore = workspace.run(&["state", "restore"]);
    assert_eq!(restore.code, 1, "{}", restore.all());
    assert!(restore.stderr.contains("no state files and no backups"), "{}", restore.all());
    let accepted = workspace.run(&["state", "restore", "--accept-loss"]);
    assert_eq!(accepted.code, 0, "{}", accepted.all());
    let history = workspace.read(".mlops/state/history.jsonl");
    assert!(history.contains("\"accepted_losses\":[\"everything the state recorded\"]"), "{history}");
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(plan.stdout.contains("Plan: 2 to add"), "{}", plan.all());
}

#[test]
fn a_deleted_lock_file_does_not_let_a_second_apply_in() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    let mut first = workspace.start_slow_apply("3", || workspace.read(".mlops/state/journal.jsonl").contains("pending_handle"));
    fs::remove_file(workspace.path().join(".mlops/state/lock")).unwrap();
    let started = Instant::now();
    let second = workspace.run(&["apply", "--auto-approve"]);
    assert!(started.elapsed() < Duration::from_secs(2), "the second apply waited");
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(second.stderr.contains("E0705 state-locked"), "{}", second.all());
    assert!(first.wait().unwrap().success());
    workspace.assert_no_changes(&[]);
}

const SECRET: &str = "hunter2-very-secret-token";

/// Runs mlops in `workspace` with the secret as `-var token=…` (where the
/// command takes variables) and the state key, if any.
fn run_with_secret(workspace: &Workspace, key: Option<&str>, arguments: &[&str]) -> support::Run {
    let mut command = workspace.command(arguments);
    command.env("MLOPS_VAR_token", SECRET).env("MLOPS_VAR_unused_secret", "another-secret-value");
    if let Some(key) = key {
        command.env("MLOPS_STATE_KEY", key);
    }
    support::Run::from(command.output().unwrap())
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the secret:\n{text}");
    assert!(!text.contains("a passphrase for the state"), "{what} shows the state key:\n{text}");
}

#[test]
fn a_secret_is_nowhere_in_outputs_files_lineage_or_messages() {
    for key in [Some("a passphrase for the state"), None] {
        let workspace = Workspace::copy_of("tests/cases/secrets");
        let run = |arguments: &[&str]| run_with_secret(&workspace, key, arguments);
        let plan = run(&["plan", "-out", "saved.plan"]);
        assert_eq!(plan.code, 0, "{}", plan.all());
        let mut shown =
            vec![("plan", plan), ("json", run(&["plan", "--format", "json"])), ("markdown", run(&["plan", "--format", "markdown"]))];
        let apply = run(&["apply", "--auto-approve"]);
        assert_eq!(apply.code, 0, "{}", apply.all());
        // A sensitive output converges: the next plan is empty.
        let again = run(&["plan", "--detailed-exitcode"]);
        assert_eq!(again.code, 0, "{}", again.all());
        assert!(again.stdout.contains("No changes."), "{}", again.all());
        shown.push(("apply", apply));
        for arguments in [
            &["show"][..],
            &["show", "--json"],
            &["show", "saved.plan"],
            &["state", "show", "training.t"],
            &["state", "show", "bucket.lake"],
            &["lineage", "serving.api"],
            &["lineage", "serving.api", "--json"],
            &["lineage", "model.m", "--json"],
            &["output"],
            &["output", "--json"],
        ] {
            let run = run(arguments);
            assert_eq!(run.code, 0, "{arguments:?}: {}", run.all());
            assert_no_secret(&format!("{arguments:?}"), &run.all());
        }
        for (what, run) in &shown {
            assert_no_secret(what, &run.all());
        }
        // Registry metadata, state, backups and the saved plan.
        let mut files = support::all_files(&workspace.path().join(".mlops/state"));
        files.extend(support::all_files(&workspace.path().join(".mlops/registry")));
        files.push(workspace.path().join("saved.plan"));
        assert!(files.iter().any(|file| file.ends_with("version.json")), "{files:?}");
        for file in files {
            assert_no_secret(&file.display().to_string(), &String::from_utf8_lossy(&fs::read(&file).unwrap()));
        }
        // A gate whose message holds the secret fails without printing it.
        let gate = run(&["apply", "--auto-approve", "-var", "min_auc=0.95"]);
        assert_eq!(gate.code, 1, "{}", gate.all());
        assert_no_secret("a failed gate", &gate.all());
        // A failed run's log tail quotes its command line: scrubbed.
        let failing = run(&["apply", "--auto-approve", "-var", "fail=true"]);
        assert_eq!(failing.code, 1, "{}", failing.all());
        assert_no_secret("a failed run", &failing.all());
        assert!(failing.stderr.contains("arguments: train.py --token (sensitive)"), "the log tail is not shown:\n{}", failing.all());
        drop(workspace);
    }
}

#[test]
fn a_gate_message_built_from_a_secret_is_not_shown() {
    let workspace = Workspace::copy_of("tests/cases/secrets");
    let key = Some("a passphrase for the state");
    let apply = run_with_secret(&workspace, key, &["apply", "--auto-approve", "-var", "min_auc=0.95"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert_no_secret("apply", &apply.all());
    assert!(
        apply.stderr.contains("gate `auc` of model.m failed: (its error_message uses a sensitive value, so it is not shown)"),
        "{}",
        apply.all()
    );
}

#[test]
fn children_get_the_run_contract_and_their_configuration_not_mlops_secrets() {
    let workspace = Workspace::copy_of("tests/cases/secrets");
    let apply = run_with_secret(&workspace, Some("a passphrase for the state"), &["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    for (file, contract) in [("training-environment.json", "MLOPS_RUN_ID"), ("serving-environment.json", "MLOPS_MODEL_DIR")] {
        let environment: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&workspace.read(file)).unwrap();
        let names: Vec<&String> = environment.keys().collect();
        assert!(environment.contains_key(contract), "{file}: {names:?}");
        assert_eq!(environment["API_TOKEN"], SECRET, "{file}: the configuration's own env is given");
        for forbidden in ["MLOPS_STATE_KEY", "MLOPS_VAR_token", "MLOPS_VAR_unused_secret"] {
            assert!(!environment.contains_key(forbidden), "{file} got {forbidden}: {names:?}");
        }
        let text = workspace.read(file);
        assert!(!text.contains("another-secret-value") && !text.contains("a passphrase for the state"), "{file}: {text}");
    }
}

#[test]
fn rotating_or_tampering_with_a_secret_never_prints_it() {
    for key in [None, Some("a passphrase for the state")] {
        let workspace = Workspace::copy_of("tests/cases/secrets");
        let run = |arguments: &[&str]| {
            let mut command = workspace.command(arguments);
            if let Some(key) = key {
                command.env("MLOPS_STATE_KEY", key);
            }
            support::Run::from(command.output().unwrap())
        };
        let apply = run(&["apply", "--auto-approve", "-var", "token=first-secret-value"]);
        assert_eq!(apply.code, 0, "{}", apply.all());
        for format in ["text", "json", "markdown"] {
            let rotated = run(&["plan", "--format", format, "-var", "token=rotated-secret-value"]);
            assert!(!rotated.all().contains("first-secret-value") && !rotated.all().contains("rotated-secret-value"), "{}", rotated.all());
            assert!(!rotated.all().contains("changed outside mlops"), "a rotation is not drift:\n{}", rotated.all());
        }
        // The tag changed in the store itself is drift, shown without its values.
        let settings = workspace.path().join(".mlops/objects/secret-lake/.bucket.json");
        let text = fs::read_to_string(&settings).unwrap().replace("first-secret-value", "tampered-secret-value");
        fs::write(&settings, text).unwrap();
        for format in ["text", "json", "markdown"] {
            let tampered = run(&["plan", "--format", format, "-var", "token=first-secret-value"]);
            let all = tampered.all();
            assert!(!all.contains("first-secret-value") && !all.contains("tampered-secret-value"), "{all}");
        }
        let tampered = run(&["plan", "-var", "token=first-secret-value"]);
        if key.is_some() {
            assert!(
                tampered.stdout.contains("`tags` was changed outside mlops (it holds a sensitive value, not shown)"),
                "{}",
                tampered.all()
            );
        }
        let destroy = run(&["destroy", "--auto-approve", "--delete-retained", "-var", "token=first-secret-value"]);
        assert_eq!(destroy.code, 0, "{}", destroy.all());
    }
}

#[test]
fn a_state_written_with_another_key_is_compared_as_unchanged_and_said_so() {
    let workspace = Workspace::copy_of("tests/cases/secrets");
    let apply = run_with_secret(&workspace, Some("a passphrase for the state"), &["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    for key in [None, Some("another key")] {
        let plan = run_with_secret(&workspace, key, &["plan", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "nothing is replaced for a key it cannot read:\n{}", plan.all());
        assert!(plan.stderr.contains("encrypted with a key this run does not have"), "{}", plan.all());
    }
    let output = run_with_secret(&workspace, None, &["output", "tok"]);
    assert_eq!(output.code, 1, "{}", output.all());
    assert!(output.stderr.contains("output `tok` is sensitive, and its value cannot be read from the state"), "{}", output.all());
}

/// The servers of `workspace` whose processes are running, by the pid
/// files the local provider's wrapper writes.
fn running_servers(workspace: &Workspace) -> Vec<u32> {
    support::all_files(&workspace.path().join(".mlops/serving"))
        .into_iter()
        .filter(|file| file.extension().is_some_and(|extension| extension == "pid"))
        .filter_map(|file| fs::read_to_string(file).ok()?.trim().parse::<u32>().ok())
        .filter(|pid| process_running(*pid))
        .collect()
}

fn process_running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"))
}

/// Starts an apply with the server taking `delay` seconds to start, and
/// kills it (`kill -9`) once the server process `count` exists.
fn kill_while_a_server_starts(workspace: &Workspace, arguments: &[&str], delay: &str, count: usize) {
    let mut all = vec!["apply", "--auto-approve"];
    all.extend_from_slice(arguments);
    let mut child = workspace
        .command(&all)
        .env("SERVE_DELAY", delay)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while running_servers(workspace).len() < count {
        assert!(Instant::now() < deadline, "the server never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_server_a_killed_apply_was_starting_is_adopted_once_healthy() {
    let workspace = Workspace::copy_of("tests/cases/slow-serving");
    kill_while_a_server_starts(&workspace, &[], "2", 1);
    let starting = running_servers(&workspace);
    let apply = workspace.apply(&[]);
    assert!(apply.stderr.contains("re-attached to the server on port"), "{}", apply.all());
    assert_eq!(running_servers(&workspace), starting, "the server was not adopted");
}

#[test]
fn a_killed_blue_green_rollout_resumes_and_stops_the_old_server() {
    let workspace = Workspace::copy_of("tests/cases/slow-serving");
    workspace.apply(&[]);
    let old = running_servers(&workspace);
    assert_eq!(old.len(), 1);
    kill_while_a_server_starts(&workspace, &["-var", "generation=2"], "2", 2);
    let apply = workspace.apply(&["-var", "generation=2"]);
    assert!(apply.stderr.contains("re-attached to the server on port"), "{}", apply.all());
    let now = running_servers(&workspace);
    assert_eq!(now.len(), 1, "old and new both run: {now:?}");
    assert_ne!(now, old, "the old server still serves");
    let shown = workspace.run(&["state", "show", "serving.api"]).stdout;
    let url = shown.lines().find_map(|line| line.trim().strip_prefix("url = ")).unwrap().trim_matches('"').to_owned();
    assert_eq!(support::get(&url, "/health"), "2", "the new version is not the one serving");
}

#[test]
fn destroy_after_a_killed_apply_stops_every_server_it_started() {
    let workspace = Workspace::copy_of("tests/cases/slow-serving");
    workspace.apply(&[]);
    kill_while_a_server_starts(&workspace, &["-var", "generation=2"], "30", 2);
    let destroy = workspace.run(&["destroy", "--auto-approve", "--delete-retained", "-var", "generation=2"]);
    assert_eq!(destroy.code, 0, "{}", destroy.all());
    assert!(running_servers(&workspace).is_empty(), "an orphan survived destroy: {:?}", running_servers(&workspace));
}

#[test]
fn a_server_started_with_another_version_is_stopped_not_adopted() {
    let workspace = Workspace::copy_of("tests/cases/slow-serving");
    workspace.apply(&[]);
    kill_while_a_server_starts(&workspace, &["-var", "generation=2"], "30", 2);
    // Back to the first generation: the half-started server serves a
    // version nobody wants any more.
    let apply = workspace.apply(&["-var", "generation=3"]);
    assert!(apply.stderr.contains("stopping the server an interrupted apply started"), "{}", apply.all());
    assert_eq!(running_servers(&workspace).len(), 1, "{:?}", running_servers(&workspace));
}

#[test]
fn a_run_a_killed_apply_started_with_other_settings_is_stopped_not_adopted() {
    let workspace = Workspace::copy_of("tests/cases/slow-training");
    // Started, and its process id written (the handle is journaled first).
    let run_pid_written = || {
        fs::read_dir(workspace.path().join(".mlops/runs"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|run| fs::read_to_string(run.path().join("pid")).is_ok_and(|pid| pid.trim().parse::<u32>().is_ok()))
    };
    let mut child =
        workspace.start_slow_apply("30", || workspace.read(".mlops/state/journal.jsonl").contains("\"started\"") && run_pid_written());
    child.kill().unwrap();
    child.wait().unwrap();
    let run = fs::read_dir(workspace.path().join(".mlops/runs")).unwrap().next().unwrap().unwrap().path();
    let pid: u32 = fs::read_to_string(run.join("pid")).unwrap().trim().parse().unwrap();
    assert!(process_running(pid));

    // Other settings: the run in flight is not what the state would claim.
    let apply = workspace.run_fast(&["apply", "--auto-approve", "-var", "token=changed-settings"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(apply.stderr.contains("an interrupted apply started it with other settings"), "{}", apply.all());
    assert!(!apply.stderr.contains("re-attaching"), "{}", apply.all());
    assert!(!process_running(pid), "the stale run still runs");
    assert!(!run.exists(), "the stale run's folder is left");
    workspace.assert_no_changes(&["-var", "token=changed-settings"]);
}

/// Rewrites the plan inside a saved plan file, leaving its signature as it was.
fn edit_saved_plan(workspace: &Workspace, from: &str, to: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut saved: serde_json::Value = serde_json::from_str(&workspace.read(from)).unwrap();
    edit(&mut saved["mlops_saved_plan"]);
    workspace.write(to, &serde_json::to_string(&saved).unwrap());
}

fn change_of<'a>(plan: &'a mut serde_json::Value, address: &str) -> &'a mut serde_json::Value {
    plan["changes"].as_array_mut().unwrap().iter_mut().find(|change| change["address"] == address).unwrap()
}

#[test]
fn an_edited_saved_plan_is_refused_and_nothing_runs() {
    let workspace = Workspace::copy_of("examples/quickstart");
    let plan = workspace.run(&["plan", "-out", "saved.plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let elsewhere = Workspace::copy_of("examples/quickstart");
    let other_root = elsewhere.path().to_string_lossy().into_owned();
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "command",
            Box::new(|plan| change_of(plan, "training.fraud")["config"]["command"] = serde_json::json!(["sh", "-c", "touch pwned"])),
        ),
        ("depends_on", Box::new(|plan| change_of(plan, "training.fraud")["depends_on"] = serde_json::json!([]))),
        ("root_directory", Box::new(move |plan| plan["root_directory"] = other_root.into())),
    ];
    for (what, edit) in edits {
        edit_saved_plan(&workspace, "saved.plan", "edited.plan", edit);
        for command in [&["apply", "edited.plan"][..], &["show", "edited.plan"]] {
            let run = workspace.run(command);
            assert_eq!(run.code, 1, "{what}: {command:?}:\n{}", run.all());
            assert!(run.stderr.contains("the saved plan was changed after it was made"), "{what}:\n{}", run.all());
        }
    }
    // A plan stripped of its signature is no better.
    let mut stripped: serde_json::Value = serde_json::from_str(&workspace.read("saved.plan")).unwrap();
    stripped.as_object_mut().unwrap().remove("integrity");
    workspace.write("stripped.plan", &stripped.to_string());
    let run = workspace.run(&["apply", "stripped.plan"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("has no integrity check"), "{}", run.all());
    assert!(!workspace.path().join("pwned").exists() && !workspace.path().join(".mlops/runs").exists(), "something ran");
    assert!(!elsewhere.path().join(".mlops/state").exists(), "the other directory was applied");

    let apply = workspace.run(&["apply", "saved.plan"]);
    assert_eq!(apply.code, 0, "the plan as saved still applies:\n{}", apply.all());
    workspace.assert_no_changes(&[]);
}

#[test]
fn data_changed_after_the_plan_is_refused_not_stored_and_trained_on() {
    let workspace = Workspace::copy_of("examples/quickstart");
    let plan = workspace.run(&["plan", "-out", "saved.plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let data = workspace.read("data/transactions.csv");
    let mut lines: Vec<String> = data.lines().map(str::to_owned).collect();
    let mut fields: Vec<String> = lines[3].split(',').map(str::to_owned).collect();
    fields[1] = "4321.5".into();
    lines[3] = fields.join(",");
    workspace.write("data/transactions.csv", &(lines.join("\n") + "\n"));
    let apply = workspace.run_fast(&["apply", "saved.plan"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(apply.stderr.contains("changed since the plan was made: the plan showed version b3:"), "{}", apply.all());
    assert!(apply.stdout.contains("skipped training.fraud"), "{}", apply.all());
    assert!(!workspace.path().join(".mlops/runs").exists(), "a run trained on data nobody reviewed");
    let list = workspace.run(&["state", "list"]).stdout;
    assert!(!list.contains("dataset.transactions"), "{list}");
    // Planned again, the new version is what is shown, and applies.
    workspace.apply(&[]);
}

/// How a command ended under a time limit: its exit code (`None` when it
/// had to be killed), its peak memory in KiB, and what it printed.
struct Bounded {
    code: Option<i32>,
    peak_kib: i64,
    elapsed: Duration,
    stderr: String,
}

/// Runs `mlops ARGUMENTS` in `directory`, killing it after `limit`.
fn run_bounded(directory: &Path, arguments: &[&str], limit: Duration) -> Bounded {
    use std::io::Read;
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mlops"))
        .args(arguments)
        .current_dir(directory)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "400")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let pid = child.id() as libc::pid_t;
    let (code, peak_kib) = loop {
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            break (code, usage.ru_maxrss);
        }
        if started.elapsed() > limit {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            break (None, usage.ru_maxrss);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::mem::forget(child);
    Bounded { code, peak_kib, elapsed: started.elapsed(), stderr: reader.join().unwrap() }
}

/// A configuration directory holding `text` as its one file.
fn configuration(text: &str) -> tempfile::TempDir {
    let directory = tempfile::Builder::new().prefix("mlops-hostile-").tempdir().unwrap();
    fs::write(directory.path().join("main.mlops.hcl"), text).unwrap();
    directory
}

/// Hostile input: refused with `code` (exit 1) within the time and memory limits.
fn assert_refused(name: &str, directory: &Path, arguments: &[&str], code: &str) {
    let run = run_bounded(directory, arguments, Duration::from_secs(60));
    assert_eq!(run.code, Some(1), "{name}: did not end with exit 1 after {:?}:\n{}", run.elapsed, run.stderr);
    assert!(run.stderr.contains(code), "{name}: no {code}:\n{}", &run.stderr[..run.stderr.len().min(4000)]);
    assert!(!run.stderr.contains("panicked"), "{name} panicked:\n{}", run.stderr);
    assert!(run.peak_kib < 1024 * 1024, "{name}: peak memory {} KiB", run.peak_kib);
}

#[test]
fn huge_counts_are_refused_not_allocated() {
    for count in ["99999999999999999999999999", "1000000000", "10001"] {
        let directory = configuration(&format!("bucket \"shard\" {{\n  count = {count}\n  name  = \"shard-${{count.index}}\"\n}}\n"));
        assert_refused(&format!("count = {count}"), directory.path(), &["validate"], "E0006 limit-exceeded");
    }
    let keys: Vec<String> = (0..10_001).map(|index| format!("\"k{index}\" = {index}")).collect();
    let directory = configuration(&format!(
        "locals {{\n  keys = {{\n    {}\n  }}\n}}\n\nbucket \"shard\" {{\n  for_each = local.keys\n  name     = \"shard-${{each.value}}\"\n}}\n",
        keys.join("\n    ")
    ));
    assert_refused("for_each over 10001 keys", directory.path(), &["validate"], "E0006 limit-exceeded");
}

#[test]
fn a_fan_out_of_modules_is_linear_and_bounded() {
    let build = |depth: usize| {
        let directory = tempfile::Builder::new().prefix("mlops-fan-out-").tempdir().unwrap();
        for level in 0..depth {
            let path = (0..level).fold(directory.path().to_path_buf(), |path, _| path.join("m"));
            fs::create_dir_all(&path).unwrap();
            let text = if level + 1 < depth {
                "module \"a\" {\n  source = \"./m\"\n}\n\nmodule \"b\" {\n  source = \"./m\"\n}\n"
            } else {
                "bucket \"leaf\" {\n  name = \"leaf-lake\"\n}\n"
            };
            fs::write(path.join("main.mlops.hcl"), text).unwrap();
        }
        directory
    };
    // 2^16 instances: checked, within the limits.
    let directory = build(17);
    let run = run_bounded(directory.path(), &["validate"], Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "{:?}: {}", run.elapsed, run.stderr);
    assert!(run.peak_kib < 1024 * 1024, "peak memory {} KiB", run.peak_kib);
    // 2^17: past the limit on instances.
    let directory = build(18);
    assert_refused("2^17 module instances", directory.path(), &["validate"], "E0006 limit-exceeded");
}

#[test]
fn oversized_and_deeply_nested_input_is_refused_quickly() {
    let keys: Vec<String> = (0..40_000).map(|index| format!("k{index} = {index}")).collect();
    let object = configuration(&format!("locals {{\n  big = {{\n    {}\n  }}\n}}\n", keys.join("\n    ")));
    assert_refused("an object of 40k keys", object.path(), &["validate"], "E0006 limit-exceeded");

    let list = configuration(&format!("locals {{\n  big = [{}]\n}}\n", vec!["1"; 3_000_000].join(",")));
    assert_refused("a 6 MB one-line list", list.path(), &["validate"], "E0006 limit-exceeded");

    let oversized = configuration(&format!("# {}\n", "x".repeat(33 * 1024 * 1024)));
    assert_refused("a 33 MB file", oversized.path(), &["validate"], "E0003 unreadable-file");

    let nested = configuration(&format!("locals {{\n  x = {}{}\n}}\n", "[".repeat(100_000), "]".repeat(100_000)));
    assert_refused("100k nested brackets", nested.path(), &["validate"], "E0001 syntax-error");

    let digits = configuration(&format!("locals {{\n  x = {}\n}}\n", "9".repeat(100_000)));
    assert_refused("a 100k-digit number", digits.path(), &["validate"], "E0006 limit-exceeded");

    let work = configuration(
        "locals {\n  a = split(\",\", \"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z\")\n  b = [for i in local.a : [for j in local.a : [for k in local.a : [for l in local.a : \"${i}${j}${k}${l}\"]]]]\n  c = [for i in local.b : local.b]\n}\n",
    );
    assert_refused("nested loops over copies", work.path(), &["validate"], "E0006 limit-exceeded");

    let replaced = configuration(&format!("locals {{\n  a = replace(\"{}\", \"x\", \"{}\")\n}}\n", "x".repeat(10_000), "y".repeat(10_000)));
    assert_refused("a replace that grows a string 10,000 times", replaced.path(), &["validate"], "E0306 invalid-function-argument");
}

#[test]
fn ten_thousand_duplicate_blocks_are_reported_in_linear_time() {
    let blocks = "bucket \"dup\" {\n  name = \"dup-lake\"\n}\n".repeat(10_000);
    let directory = configuration(&blocks);
    let run = run_bounded(directory.path(), &["validate"], Duration::from_secs(60));
    assert_eq!(run.code, Some(1), "{:?}", run.elapsed);
    assert_eq!(run.stderr.matches("E0104 duplicate-name").count(), 9_999);
}

#[test]
fn pipes_and_devices_are_refused_never_read() {
    let make_fifo = |path: &Path| {
        let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    };
    let directory = tempfile::Builder::new().prefix("mlops-fifo-").tempdir().unwrap();
    make_fifo(&directory.path().join("main.mlops.hcl"));
    assert_refused("a FIFO configuration file", directory.path(), &["validate"], "not a regular file");

    let reading = configuration("locals {\n  x = file(\"./pipe\")\n}\n\noutput \"x\" {\n  value = local.x\n}\n");
    make_fifo(&reading.path().join("pipe"));
    assert_refused("file() of a FIFO", reading.path(), &["validate"], "not a regular file");
    fs::write(reading.path().join("main.mlops.hcl"), "locals {\n  x = file(\"/dev/zero\")\n}\n").unwrap();
    assert_refused("file() of a device", reading.path(), &["validate"], "not a regular file");

    let variables = configuration("variable \"x\" {\n  type = string\n}\n");
    make_fifo(&variables.path().join("values.vars"));
    assert_refused("a FIFO as -var-file", variables.path(), &["plan", "-var-file", "values.vars"], "not a regular file");
}

#[test]
fn odd_but_honest_input_is_read_as_meant() {
    let with_mark = configuration("\u{feff}bucket \"lake\" {\n  name = \"marked-lake\"\n}\n");
    let run = run_bounded(with_mark.path(), &["validate"], Duration::from_secs(30));
    assert_eq!(run.code, Some(0), "a byte-order mark: {}", run.stderr);

    let variables =
        configuration("variable \"epochs\" {\n  type    = number\n  default = 3\n}\n\noutput \"epochs\" {\n  value = var.epochs\n}\n");
    let cases: [(&[&str], &str); 4] = [
        (&["plan", "-var", "epochs=notanumber"], "variable `epochs` is a number, but `-var epochs=...` gives it \"notanumber\""),
        (&["plan", "-var", "epohcs=3"], "`-var epohcs=...` sets `epohcs`, which the configuration does not declare"),
        (&["validate", "-var", "epochs=notanumber"], "variable `epochs` is a number"),
        (&["plan", "-var", "epochs=1", "-var", "undeclared=2"], "help: the variables are `epochs`"),
    ];
    for (arguments, expected) in cases {
        let run = run_bounded(variables.path(), arguments, Duration::from_secs(30));
        assert_eq!(run.code, Some(1), "{arguments:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{arguments:?}: {}", run.stderr);
    }
    let run = run_bounded(variables.path(), &["validate", "-var", "epochs=4"], Duration::from_secs(30));
    assert_eq!(run.code, Some(0), "validate takes -var: {}", run.stderr);
    let duration = configuration("training \"t\" {\n  command = [\"true\"]\n  timeout = \"99999999999999999999999h\"\n}\n");
    assert_refused("a timeout of 10^23 hours", duration.path(), &["validate"], "E0404 invalid-duration");
}

#[test]
fn standard_output_closed_early_is_not_a_panic() {
    for arguments in [&["schema"][..], &["explain", "E0416"], &["schema", "--json"]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mlops"))
            .args(arguments)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Like `| head -1`: read one line, then close the pipe.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 16];
        let _ = std::io::Read::read(&mut stdout, &mut first);
        drop(stdout);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{arguments:?}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{arguments:?}: {stderr}");
    }
}

#[test]
fn a_metric_reported_as_a_string_is_named_as_such() {
    let workspace = Workspace::empty();
    workspace.write(
        "main.mlops.hcl",
        "training \"t\" {\n  command = [\"python3\", \"-c\", \"import os; open(os.environ['MLOPS_METRICS_FILE'], 'w').write('{\\\"auc\\\": \\\"0.9\\\"}')\"]\n  metrics = [\"auc\"]\n}\n",
    );
    let apply = workspace.run_fast(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(apply.stderr.contains("reported the declared metric `auc` as the string \"0.9\", not a number"), "{}", apply.all());
}

#[test]
fn a_dataset_read_from_a_system_file_prints_neither_it_nor_the_state_key() {
    let workspace = Workspace::empty();
    workspace.write(
        "main.mlops.hcl",
        "bucket \"lake\" {\n  name = \"env-lake\"\n}\n\ndataset \"environment\" {\n  bucket = bucket.lake\n  source = \"/proc/self/environ\"\n  schema {\n    column \"x\" { type = int }\n  }\n}\n",
    );
    let mut command = workspace.command(&["apply", "--auto-approve"]);
    command.env("MLOPS_STATE_KEY", "a passphrase for the state").env("PADDING_FOR_THE_TEST", "x".repeat(500));
    let apply = support::Run::from(command.output().unwrap());
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert_no_secret("apply", &apply.all());
    assert!(apply.stderr.contains("more characters)"), "the header is not cut:\n{}", apply.all());
    assert!(!apply.stderr.contains(&"x".repeat(200)), "{}", apply.all());
}
