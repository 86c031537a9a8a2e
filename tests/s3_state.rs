//! The s3 state backend end to end, against real S3 servers on loopback:
//! moto (the full S3 surface) and s3s-fs (signatures checked, conditional
//! writes). The state lives in the server, is locked with a conditional
//! write, and is never overwritten by a process whose view is stale.

mod support;

use std::process::Child;
use std::sync::{Arc, Once};

use mlops_engine::state::{new_id, Record, RemoteBackend, Secrets, StateError};
use mlops_provider_api::ObjectStore;
use mlops_provider_s3::S3StateStore;
use serde_json::json;
use support::{s3_endpoint, s3s_server, Run, Workspace};

/// Shared-credentials profiles for the tests' own clients: `moto`, `s3s`,
/// and `wrong` (s3s-fs's key with a wrong secret). Profiles keep each
/// server's keys apart in one process.
fn use_test_credentials() {
    static WRITTEN: Once = Once::new();
    WRITTEN.call_once(|| {
        let (s3s_key, s3s_secret) = s3s_server().map(|(_, key, secret)| (key, secret)).unwrap_or_default();
        let directory = std::env::temp_dir().join(format!("mlops-test-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let file = directory.join("credentials");
        std::fs::write(
            &file,
            format!(
                "[moto]\naws_access_key_id = testing\naws_secret_access_key = testing\n\n\
                 [s3s]\naws_access_key_id = {s3s_key}\naws_secret_access_key = {s3s_secret}\n\n\
                 [wrong]\naws_access_key_id = {s3s_key}\naws_secret_access_key = not-the-secret\n"
            ),
        )
        .unwrap();
        // Set once, before any client is made; the environment's own keys
        // would take precedence over a profile.
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &file);
        std::env::set_var("AWS_CONFIG_FILE", directory.join("config"));
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"] {
            std::env::remove_var(name);
        }
    });
}

fn settings(endpoint: &str, bucket: &str, key: &str, profile: &str) -> mlops_provider_api::Configuration {
    match json!({ "bucket": bucket, "key": key, "endpoint": endpoint, "force_path_style": true, "profile": profile }) {
        serde_json::Value::Object(settings) => mlops_provider_api::configuration_from_json(&settings),
        _ => unreachable!(),
    }
}

/// A bucket of this test run's own, so that a server kept running between
/// runs starts each with no state.
fn state_bucket(name: &str) -> String {
    format!("mlops-state-{name}-{}", std::process::id())
}

/// The test's own view of a workspace's state objects, through the same
/// store mlops uses.
fn store(endpoint: &str, name: &str) -> Arc<S3StateStore> {
    use_test_credentials();
    Arc::new(S3StateStore::new(&settings(endpoint, &state_bucket(name), &format!("fraud/{name}"), "moto")).unwrap())
}

/// The slow-training case with its state in the moto server.
fn workspace_with_s3_state(endpoint: &str, name: &str) -> Workspace {
    let mut workspace = Workspace::copy_of("tests/cases/slow-training");
    workspace.write(
        "backend.mlops.hcl",
        &format!(
            "mlops {{\n  backend \"s3\" {{\n    bucket           = \"{bucket}\"\n    key              = \"fraud/{name}\"\n    \
             endpoint         = \"{endpoint}\"\n    force_path_style = true\n  }}\n}}\n",
            bucket = state_bucket(name)
        ),
    );
    workspace.environment = vec![("AWS_ACCESS_KEY_ID".into(), "testing".into()), ("AWS_SECRET_ACCESS_KEY".into(), "testing".into())];
    workspace
}

fn record(address: &str) -> Record {
    Record { address: address.into(), kind: "bucket".into(), provider: "local".into(), ..Record::default() }
}

/// Starts a slow apply and waits until its training runs (its handle is in
/// the state, and so is the independent bucket).
fn start_slow_apply(workspace: &Workspace, backend: &RemoteBackend, seconds: &str) -> Child {
    workspace.start_slow_apply(seconds, || {
        backend.load(&Secrets::from_passphrase(None)).is_ok_and(|state| {
            state.resources.get("training.slow").is_some_and(|record| record.pending_handle.is_some())
                && state.resources.contains_key("bucket.other")
        })
    })
}

fn lock_id(message: &str) -> String {
    let start = message.find("lock ID ").expect("the message names the lock ID") + "lock ID ".len();
    message[start..].chars().take_while(char::is_ascii_hexdigit).collect()
}

#[test]
fn state_lives_in_s3_and_every_write_is_folded_into_one_snapshot() {
    let Some(endpoint) = s3_endpoint() else { return };
    let mut workspace = workspace_with_s3_state(&endpoint, "kept");
    const SECRET: &str = "hunter2-kept-in-s3";
    workspace.variables = vec![format!("token={SECRET}")];

    // Before `mlops init` the bucket is missing: one clear error.
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    let bucket = state_bucket("kept");
    assert!(plan.stderr.contains(&format!("the state bucket `{bucket}` does not exist")), "{}", plan.all());
    assert!(plan.stderr.contains("run `mlops init` to create it"), "{}", plan.all());

    let init = workspace.run(&["init"]);
    assert_eq!(init.code, 0, "{}", init.all());
    assert!(init.stdout.contains(&format!("Created the state bucket `{bucket}` with versioning")), "{}", init.all());
    assert!(init.stdout.contains(&format!("state in s3://{bucket}/fraud/kept")), "{}", init.all());
    // A second init has nothing to create.
    assert!(!workspace.run(&["init"]).stdout.contains("Created"));

    workspace.apply(&[]);
    assert!(!workspace.path().join(".mlops/state/state.json").exists(), "the state was written locally");
    let store = store(&endpoint, "kept");
    let keys = store.list("").unwrap();
    assert!(keys.iter().any(|key| key.starts_with("snapshots/")), "{keys:?}");
    assert!(keys.iter().any(|key| key.starts_with("history/")), "{keys:?}");
    assert!(!keys.iter().any(|key| key.starts_with("journal/")), "the journal was not folded: {keys:?}");
    assert!(!keys.iter().any(|key| key == "lock.json"), "the lock was not released: {keys:?}");
    for key in &keys {
        let object = String::from_utf8(store.get(key).unwrap().unwrap().bytes).unwrap();
        assert!(!object.contains(SECRET), "{key} holds the secret in clear");
    }

    // State surgery goes through the same journal.
    let moved = workspace.run(&["state", "mv", "bucket.other", "bucket.renamed"]);
    assert_eq!(moved.code, 0, "{}", moved.all());
    assert!(workspace.run(&["state", "list"]).stdout.contains("bucket.renamed"));
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("bucket.renamed"), "{}", plan.all());
    let back = workspace.run(&["state", "mv", "bucket.renamed", "bucket.other"]);
    assert_eq!(back.code, 0, "{}", back.all());
    workspace.assert_no_changes(&[]);
    assert_eq!(store.list("snapshots/").unwrap().len(), 1, "older snapshots are deleted once folded");

    // The audit trail lives in the bucket too: the apply and both moves,
    // and never the secret given on the command line.
    let history = workspace.run(&["history", "--json"]);
    assert_eq!(history.code, 0, "{}", history.all());
    assert!(!history.stdout.contains(SECRET), "{}", history.stdout);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&history.stdout).unwrap();
    let commands: Vec<&str> = entries.iter().filter_map(|entry| entry["command"].as_str()).collect();
    assert_eq!(commands.len(), 3, "{commands:?}");
    assert!(commands[0].contains("apply") && commands[0].contains("token=…"), "{commands:?}");
    assert!(commands[1..].iter().all(|command| command.contains("state mv")), "{commands:?}");
}

#[test]
fn a_second_apply_names_the_holder_and_force_unlock_frees_a_killed_apply() {
    let Some(endpoint) = s3_endpoint() else { return };
    let workspace = workspace_with_s3_state(&endpoint, "locked");
    assert_eq!(workspace.run(&["init"]).code, 0);
    let backend = RemoteBackend::new(store(&endpoint, "locked"));
    let mut first = start_slow_apply(&workspace, &backend, "4");

    let second = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(second.stderr.contains("E0705 state-locked"), "{}", second.all());
    assert!(second.stderr.contains(&format!("pid {}", first.id())), "{}", second.all());
    assert!(second.stderr.contains("running `mlops apply"), "{}", second.all());

    // Killed, the first apply leaves its lock in the bucket.
    first.kill().unwrap();
    first.wait().unwrap();
    let plan = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stderr.contains(&format!("process {} on this machine is no longer running", first.id())), "{}", plan.all());
    let id = lock_id(&plan.stderr);

    let wrong = workspace.run(&["force-unlock", "0123abcd"]);
    assert_eq!(wrong.code, 1, "{}", wrong.all());
    assert!(wrong.stderr.contains(&format!("the lock ID is {id}")), "{}", wrong.all());
    let unlocked = workspace.run(&["force-unlock", &id]);
    assert_eq!(unlocked.code, 0, "{}", unlocked.all());
    assert!(unlocked.stdout.contains("Released the lock held by"), "{}", unlocked.all());

    // The next apply re-attaches to the run the killed one started.
    workspace.apply_reattaching();
}

#[test]
fn a_process_whose_lock_was_broken_fails_instead_of_overwriting_the_winner() {
    let Some(endpoint) = s3_endpoint() else { return };
    let workspace = workspace_with_s3_state(&endpoint, "raced");
    assert_eq!(workspace.run(&["init"]).code, 0);
    let store = store(&endpoint, "raced");
    let backend = RemoteBackend::new(store.clone());
    let slow = start_slow_apply(&workspace, &backend, "4");

    // Someone breaks the lock of the running apply and changes the state.
    let holder: serde_json::Value = serde_json::from_slice(&store.get("lock.json").unwrap().unwrap().bytes).unwrap();
    let id = holder["id"].as_str().unwrap().to_owned();
    assert_eq!(workspace.run(&["force-unlock", &id]).code, 0);
    let removed = workspace.run(&["state", "rm", "bucket.other"]);
    assert_eq!(removed.code, 0, "{}", removed.all());

    // The slow apply's next write takes a serial already taken: it fails, clearly.
    let slow = Run::from(slow.wait_with_output().unwrap());
    assert_eq!(slow.code, 1, "{}", slow.all());
    assert!(slow.all().contains("training.slow was applied but its state could not be saved"), "{}", slow.all());
    assert!(slow.all().contains("was changed by another process after this one read it"), "{}", slow.all());
    assert!(slow.all().contains("another mlops ran at the same time"), "{}", slow.all());

    // Nothing of the winner's was overwritten.
    let state = backend.load(&Secrets::from_passphrase(None)).unwrap();
    assert!(!state.resources.contains_key("bucket.other"), "the removal was lost");
    assert!(state.resources["training.slow"].pending_handle.is_some(), "the loser's result was saved");

    // The next apply picks the finished run up and converges.
    workspace.apply_reattaching();
}

/// The same race in the engine, on both servers: two writers read serial
/// N; the first to write N + 1 wins, the second fails and loses nothing.
#[test]
fn racing_writers_on_one_serial_on_moto_and_s3s_fs() {
    let (Some(moto), Some((s3s, _, _))) = (s3_endpoint(), s3s_server()) else { return };
    use_test_credentials();
    for (endpoint, profile) in [(moto.as_str(), "moto"), (s3s.as_str(), "s3s")] {
        let bucket = format!("mlops-race-{profile}-{}", std::process::id());
        let backend = RemoteBackend::new(Arc::new(S3StateStore::new(&settings(endpoint, &bucket, "team/race", profile)).unwrap()));
        let created = backend.initialise().unwrap_or_else(|error| panic!("{profile}: {error}"));
        assert!(created.is_some_and(|done| done.contains(&bucket)), "{profile}");
        let secrets = Secrets::from_passphrase(None);

        let mut base = backend.load(&secrets).unwrap();
        base.lineage = new_id();
        backend.open_journal(&base).put(&record("bucket.base"), &secrets).unwrap();
        let winner_view = backend.load(&secrets).unwrap();
        let loser_view = backend.load(&secrets).unwrap();
        let winner = backend.open_journal(&winner_view);
        let loser = backend.open_journal(&loser_view);
        assert_eq!(winner.put(&record("bucket.winner"), &secrets).unwrap(), 2, "{profile}");
        match loser.put(&record("bucket.loser"), &secrets) {
            Err(StateError::Conflict { serial: 2, location }) => assert!(location.contains(&bucket), "{location}"),
            other => panic!("{profile}: the second writer of serial 2 must fail, got {other:?}"),
        }
        let mut state = backend.load(&secrets).unwrap();
        assert_eq!(state.resources.keys().collect::<Vec<_>>(), vec!["bucket.base", "bucket.winner"], "{profile}");

        // A fold by the loser (its journal failed) is never attempted by
        // apply; a fold by the winner keeps everything.
        state.serial = winner.serial();
        backend.compact(&state, &secrets).unwrap();
        assert_eq!(backend.load(&secrets).unwrap(), state, "{profile}");

        // The lock: taken once, named to the second taker.
        let lock = backend.lock("mlops apply").unwrap();
        match backend.lock("mlops apply") {
            Err(StateError::Locked { holder }) => assert_eq!(holder.id, lock.holder.id, "{profile}"),
            other => panic!("{profile}: expected the lock to be held, got {:?}", other.map(|lock| lock.holder.clone())),
        }
        drop(lock);
        drop(backend.lock("mlops apply").unwrap());
    }
}

#[test]
fn a_wrong_secret_or_an_unreachable_endpoint_is_one_clear_error() {
    let Some((s3s, _, _)) = s3s_server() else { return };
    use_test_credentials();
    let wrong = RemoteBackend::new(Arc::new(S3StateStore::new(&settings(&s3s, "mlops-wrong-secret", "team/race", "wrong")).unwrap()));
    match wrong.load(&Secrets::from_passphrase(None)) {
        Err(StateError::Store { message, help }) => {
            assert!(message.contains(&format!("S3 at {s3s} refused to list")), "{message}");
            assert!(message.contains("SignatureDoesNotMatch"), "{message}");
            assert!(!message.contains("not-the-secret"), "{message}");
            assert!(help.is_some_and(|help| help.contains("`profile` in the backend block")));
        }
        other => panic!("expected a store error, got {other:?}"),
    }

    // Nothing listens on port 9 of loopback.
    let unreachable = "http://127.0.0.1:9";
    let gone = RemoteBackend::new(Arc::new(S3StateStore::new(&settings(unreachable, "any", "team/race", "moto")).unwrap()));
    match gone.load(&Secrets::from_passphrase(None)) {
        Err(StateError::Store { message, help }) => {
            assert!(message.starts_with(&format!("cannot reach S3 at {unreachable}: Connection refused")), "{message}");
            assert!(help.is_some_and(|help| help.contains("check `endpoint` in the backend block")));
        }
        other => panic!("expected a store error, got {other:?}"),
    }
}

#[test]
fn missing_credentials_are_one_clear_error() {
    let Some(endpoint) = s3_endpoint() else { return };
    let workspace = workspace_with_s3_state(&endpoint, "uncredentialed");
    let home = tempfile::tempdir().unwrap();
    let mut command = workspace.command(&["plan"]);
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"] {
        command.env_remove(name);
    }
    command
        .env("HOME", home.path())
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let run = Run::from(command.output().unwrap());
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("found no AWS credentials to list"), "{}", run.all());
    assert!(run.stderr.contains(&format!("at S3 at {endpoint}")), "{}", run.all());
    assert!(run.stderr.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), "{}", run.all());
    assert!(!run.stderr.contains("Attempted") && !run.stderr.contains("} }"), "a raw SDK error leaked:\n{}", run.all());
}
