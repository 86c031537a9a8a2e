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
