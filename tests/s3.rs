//! End-to-end tests of the s3 provider against a real S3 server on loopback
//! (the moto server the test command starts; its address comes in
//! `MLOPS_TEST_S3_ENDPOINT`). In CI a missing server fails the tests.

mod support;

use support::{raw_exchange, raw_request, s3_endpoint as endpoint, s3s_server as signing_server, Run, Workspace};

/// A copy of examples/s3 with its own bucket name, pointed at the server.
fn s3_workspace(endpoint: &str, team: &str) -> Workspace {
    let mut workspace = Workspace::copy_of("examples/s3");
    workspace.environment = vec![("AWS_ACCESS_KEY_ID".into(), "testing".into()), ("AWS_SECRET_ACCESS_KEY".into(), "testing".into())];
    workspace.variables = vec![format!("s3_endpoint={endpoint}"), format!("team={team}"), "force_destroy=true".into()];
    workspace
}

/// With a storage price on the s3 provider, the plan says what a dataset's
/// data costs a month.
#[test]
fn the_plan_estimates_what_stored_data_costs() {
    let Some(endpoint) = endpoint() else { return };
    let workspace = s3_workspace(&endpoint, "priced");
    let size = std::fs::metadata(workspace.path().join("data/events.csv")).unwrap().len() as f64;
    let text = workspace
        .read("main.mlops.hcl")
        .replace("  endpoint = var.s3_endpoint\n}", "  endpoint = var.s3_endpoint\n  prices {\n    storage_gib_month = 1000000\n  }\n}");
    workspace.write("main.mlops.hcl", &text);
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let monthly = size / 1_073_741_824.0 * 1_000_000.0;
    let expected = format!("dataset.events  {monthly:.2} per month: {:.3} GiB stored", size / 1_073_741_824.0);
    assert!(plan.stdout.contains(&expected), "missing {expected:?}:\n{}", plan.all());
    assert!(plan.stdout.contains(&format!("monthly change: +{monthly:.2}")), "{}", plan.all());
}

#[test]
fn buckets_are_created_read_back_and_replanned_empty() {
    let Some(endpoint) = endpoint() else { return };
    let workspace = s3_workspace(&endpoint, "created");
    let apply = workspace.apply(&[]);
    assert!(apply.stdout.contains("Apply complete: 2 added"), "{}", apply.all());
    assert_eq!(workspace.output("uri"), "s3://created-lake");
    let state = workspace.run(&["state", "show", "bucket.lake"]).stdout;
    for expected in ["versioning = true", r#"tags = {"purpose":"training data","team":"created"}"#, r#""prefix":"scratch/""#] {
        assert!(state.contains(expected), "state lacks {expected}:\n{state}");
    }
    // A rename replaces the bucket.
    let renamed = workspace.run(&["plan", "-var", "team=renamed"]);
    assert!(renamed.stdout.contains("`name` changed, which forces replacement"), "{}", renamed.all());

    // Forgotten, the bucket still exists in the store: importing it by its
    // name reads its versioning, tags and lifecycle rules, and the plan
    // finds it as configured.
    assert_eq!(workspace.run(&["state", "rm", "bucket.lake"]).code, 0);
    let imported = workspace.run(&["import", "bucket.lake", "created-lake"]);
    assert_eq!(imported.code, 0, "{}", imported.all());
    workspace.assert_no_changes(&[]);
    let state = workspace.run(&["state", "show", "bucket.lake"]).stdout;
    assert!(state.contains("versioning = true"), "{state}");
}

#[test]
fn changes_made_outside_mlops_show_as_drift_and_apply_corrects_them() {
    let Some(endpoint) = endpoint() else { return };
    let workspace = s3_workspace(&endpoint, "drifted");
    workspace.apply(&[]);
    // Someone retags the bucket, drops its lifecycle rules and suspends versioning.
    let tagging = r#"<Tagging><TagSet><Tag><Key>owner</Key><Value>someone</Value></Tag></TagSet></Tagging>"#;
    assert_eq!(raw_request(&endpoint, "PUT", "/drifted-lake?tagging", tagging), 204);
    assert!(matches!(raw_request(&endpoint, "DELETE", "/drifted-lake?lifecycle", ""), 200 | 204));
    let suspended = r#"<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>"#;
    assert_eq!(raw_request(&endpoint, "PUT", "/drifted-lake?versioning", suspended), 200);

    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("~ bucket.lake: changed outside mlops: lifecycle_rule, tags, versioning"), "{}", plan.all());
    assert!(plan.stdout.contains("`versioning` was true and is false now (changed outside mlops): apply sets it back"), "{}", plan.all());
    assert!(
        plan.stdout.contains("`tags` was {\"purpose\":\"training data\",\"team\":\"drifted\"} and is {\"owner\":\"someone\"} now"),
        "{}",
        plan.all()
    );
    workspace.apply(&[]);
}

#[test]
fn a_bucket_with_objects_is_only_deleted_with_force_destroy() {
    let Some(endpoint) = endpoint() else { return };
    let mut workspace = s3_workspace(&endpoint, "full");
    workspace.variables.retain(|variable| !variable.starts_with("force_destroy"));
    workspace.apply(&[]);
    assert_eq!(raw_request(&endpoint, "PUT", "/full-lake/data/part-0.csv", "a,b\n1,2\n"), 200);
    let refused = workspace.run(&["destroy", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(refused.stderr.contains(&format!("S3 at {endpoint}: bucket `full-lake` is not empty")), "{}", refused.all());
    assert!(refused.stderr.contains("set `force_destroy = true`"), "{}", refused.all());

    workspace.variables.push("force_destroy=true".into());
    workspace.apply(&[]);
    let destroyed = workspace.run(&["destroy", "--auto-approve"]);
    assert_eq!(destroyed.code, 0, "{}", destroyed.all());
    assert_eq!(raw_request(&endpoint, "HEAD", "/full-lake", ""), 404);
    // Data deleted outside mlops: the next plan stores it again.
    workspace.apply(&[]);
    let uri = workspace.output("events");
    let key = format!("{}events.csv", uri.trim_start_matches("s3://full-lake/"));
    assert!(matches!(raw_request(&endpoint, "DELETE", &format!("/full-lake/{key}"), ""), 200 | 204));
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("~ dataset.events: deleted outside mlops"), "{}", plan.all());
    assert!(plan.stdout.contains("# dataset.events will be created"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(raw_request(&endpoint, "HEAD", &format!("/full-lake/{key}"), ""), 200);
}

#[test]
fn an_unreachable_endpoint_is_one_clear_error() {
    if endpoint().is_none() {
        return;
    }
    let workspace = s3_workspace("http://127.0.0.1:9", "unreachable");
    let run: Run = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("cannot create bucket.lake: cannot reach S3 at http://127.0.0.1:9: Connection refused"), "{}", run.all());
    assert!(!run.stderr.contains("} }))"), "a debug dump leaked:\n{}", run.all());
    assert!(run.stderr.contains("check `endpoint` in the provider"), "{}", run.all());
    assert!(!run.stderr.contains("DispatchFailure"), "a raw SDK error leaked:\n{}", run.all());
    assert!(!run.stderr.contains("testing"), "credentials were printed:\n{}", run.all());
}

#[test]
fn datasets_are_uploaded_content_addressed_and_never_twice() {
    let Some(endpoint) = endpoint() else { return };
    let workspace = s3_workspace(&endpoint, "datasets");
    let apply = workspace.apply(&[]);
    assert!(apply.stderr.contains("dataset.events: 1 file(s) uploaded, 0 already present"), "{}", apply.all());
    let uri = workspace.output("events");
    assert!(uri.starts_with("s3://datasets-lake/datasets/dataset.events/"), "{uri}");
    let key = format!("/datasets-lake/{}events.csv", uri.trim_start_matches("s3://datasets-lake/"));
    assert_eq!(raw_request(&endpoint, "HEAD", &key, ""), 200);
    let state = workspace.run(&["state", "show", "dataset.events"]).stdout;
    assert!(state.contains("row_count = 500"), "{state}");

    // Forgotten and applied again: the content is there, nothing is uploaded.
    assert_eq!(workspace.run(&["state", "rm", "dataset.events"]).code, 0);
    let again = workspace.apply(&[]);
    assert!(again.stderr.contains("dataset.events: 0 file(s) uploaded, 1 already present"), "{}", again.all());

    // A changed row is a new version, stored beside the old one.
    let data = workspace.read("data/events.csv");
    workspace.write("data/events.csv", &data.replacen(",de\n", ",fr\n", 1));
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("its data changed: version b3:"), "{}", plan.all());
    workspace.apply(&[]);
    assert_ne!(workspace.output("events"), uri);
    assert_eq!(raw_request(&endpoint, "HEAD", &key, ""), 200, "the old version was removed");

    // Data that breaks the schema is not kept (it is validated while it goes up).
    workspace.write("data/events.csv", &data.replacen(",de\n", ",xx\n", 1));
    let refused = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(refused.stderr.contains("column `country`: `xx` is not one of de, fr, us, jp"), "{}", refused.all());
    let (status, listing) = raw_exchange(&endpoint, "GET", "/datasets-lake?list-type=2&prefix=datasets/", "");
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing.matches("<Key>").count(), 2, "only the two valid versions are stored: {listing}");
}

#[test]
fn large_files_go_up_in_parallel_parts() {
    let Some(endpoint) = endpoint() else { return };
    let mut workspace = s3_workspace(&endpoint, "multipart");
    workspace.environment.push(("MLOPS_S3_PART_SIZE_MIB".into(), "5".into()));
    // About 12 MiB of valid rows: three parts of at most 5 MiB.
    let mut data = String::from("event_id,amount,country\n");
    let mut index = 0;
    while data.len() < 12 * 1024 * 1024 {
        data.push_str(&format!("e{index:09},{}.25,us\n", index % 1000));
        index += 1;
    }
    workspace.write("data/events.csv", &data);
    let apply = workspace.apply(&[]);
    assert!(apply.stderr.contains("dataset.events: uploading events.csv: 3/3 parts"), "{}", apply.all());
    let uri = workspace.output("events");
    let key = format!("/multipart-lake/{}events.csv", uri.trim_start_matches("s3://multipart-lake/"));
    assert_eq!(raw_request(&endpoint, "HEAD", &key, ""), 200);
}

#[test]
fn data_already_in_s3_is_versioned_by_its_listing() {
    let Some(endpoint) = endpoint() else { return };
    let workspace = s3_workspace(&endpoint, "external");
    workspace.apply(&[]);
    // Data someone else writes into the bucket.
    assert_eq!(raw_request(&endpoint, "PUT", "/external-lake/raw/2026-11-01.csv", "a,b\n1,2\n"), 200);
    assert_eq!(raw_request(&endpoint, "PUT", "/external-lake/raw/2026-11-02.csv", "a,b\n3,4\n"), 200);
    workspace.write(
        "raw.mlops.hcl",
        "dataset \"raw\" {\n  provider = s3\n  uri      = \"s3://external-lake/raw/\"\n  format   = \"csv\"\n}\n\noutput \"raw_version\" {\n  value = dataset.raw.version\n}\n",
    );
    workspace.apply(&[]);
    let version = workspace.output("raw_version");
    assert!(version.starts_with("s3l:"), "{version}");

    // A new object is a new version, found without downloading anything.
    assert_eq!(raw_request(&endpoint, "PUT", "/external-lake/raw/2026-11-03.csv", "a,b\n5,6\n"), 200);
    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("# dataset.raw will be updated in place\n  #   its objects changed: version s3l:"), "{}", plan.all());
    workspace.apply(&[]);
    assert_ne!(workspace.output("raw_version"), version);

    // Removing the block forgets the data; it is not mlops's to delete.
    std::fs::remove_file(workspace.path().join("raw.mlops.hcl")).unwrap();
    workspace.apply(&[]);
    assert_eq!(raw_request(&endpoint, "HEAD", "/external-lake/raw/2026-11-01.csv", ""), 200);
}

#[test]
fn signatures_are_checked_and_a_wrong_secret_is_one_clear_error() {
    let Some((endpoint, key, secret)) = signing_server() else { return };
    let mut workspace = Workspace::copy_of("tests/cases/s3-plain");
    // s3s-fs keeps a deleted object's folders, so its buckets cannot be
    // deleted afterwards: a name of its own lets the test run again.
    let bucket = format!("plain-{}", std::process::id());
    workspace.variables = vec![format!("s3_endpoint={endpoint}"), format!("bucket_name={bucket}")];
    workspace.environment = vec![("AWS_ACCESS_KEY_ID".into(), key.clone()), ("AWS_SECRET_ACCESS_KEY".into(), "not-the-secret".into())];
    let refused = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains(&format!("S3 at {endpoint} refused to create bucket `{bucket}`: SignatureDoesNotMatch")),
        "{}",
        refused.all()
    );
    assert!(refused.stderr.contains("check the credentials mlops finds in the standard AWS chain"), "{}", refused.all());
    assert!(!refused.all().contains("not-the-secret") && !refused.all().contains(&secret), "a secret was printed:\n{}", refused.all());

    workspace.environment[1].1 = secret;
    let apply = workspace.apply(&[]);
    assert!(apply.stderr.contains("dataset.numbers: 1 file(s) uploaded"), "{}", apply.all());

    // The store has no versioning: asking for it is a clear error, not a silent no-op.
    let versioned = workspace.run(&["apply", "--auto-approve", "-var", "versioning=true"]);
    assert_eq!(versioned.code, 1, "{}", versioned.all());
    assert!(
        versioned.stderr.contains(&format!("S3 at {endpoint} does not support bucket versioning, which bucket `{bucket}` asks for")),
        "{}",
        versioned.all()
    );
    workspace.assert_no_changes(&[]);
}

#[test]
fn local_features_and_training_read_data_stored_in_s3() {
    let Some(endpoint) = endpoint() else { return };
    let mut workspace = Workspace::copy_of("tests/cases/s3-to-local");
    workspace.environment = vec![("AWS_ACCESS_KEY_ID".into(), "testing".into()), ("AWS_SECRET_ACCESS_KEY".into(), "testing".into())];
    workspace.variables = vec![format!("s3_endpoint={endpoint}")];
    let apply = workspace.apply(&[]);
    assert!(
        apply.stderr.contains("feature_set.doubled: staged dataset.numbers from s3://staging-lake/datasets/dataset.numbers/"),
        "{}",
        apply.all()
    );
    let metrics: serde_json::Value = serde_json::from_str(&workspace.run(&["output", "metrics", "--json"]).stdout).unwrap();
    assert_eq!(metrics["raw_rows"], 3.0, "{metrics}");
    assert_eq!(metrics["feature_rows"], 3.0, "{metrics}");
    assert_eq!(metrics["twice_sum"], 13.0, "{metrics}");

    // A feature set on the s3 provider is computed from the dataset in S3 and stored beside it.
    let uri = workspace.output("features_in_s3");
    assert!(uri.starts_with("s3://staging-lake/features/feature_set.in_s3/"), "{uri}");
    let key = format!("/staging-lake/{}features.parquet", uri.trim_start_matches("s3://staging-lake/"));
    assert_eq!(raw_request(&endpoint, "HEAD", &key, ""), 200);
    let state = workspace.run(&["state", "show", "feature_set.in_s3"]).stdout;
    assert!(state.contains("row_count = 3"), "{state}");
}

#[test]
fn a_frozen_store_ends_in_a_clear_timeout_and_ctrl_c_stops_at_once() {
    let Some(moto) = support::server_program("MLOPS_TEST_MOTO_SERVER", "the moto server") else { return };
    let server = support::OwnServer::start(&moto, &["-H", "127.0.0.1", "-p", "{port}"], "/", std::time::Duration::from_secs(60));
    let mut workspace = Workspace::empty();
    workspace.environment = vec![("AWS_ACCESS_KEY_ID".into(), "testing".into()), ("AWS_SECRET_ACCESS_KEY".into(), "testing".into())];
    workspace.write(
        "main.mlops.hcl",
        &format!(
            "variable \"wait\" {{\n  type    = string\n  default = \"2s\"\n}}\n\nvariable \"owner\" {{\n  type    = string\n  default = \"a\"\n}}\n\n\
             provider \"s3\" {{\n  endpoint        = \"http://{}\"\n  connect_timeout = \"2s\"\n  request_timeout = var.wait\n  max_attempts    = 2\n}}\n\n\
             bucket \"lake\" {{\n  provider = s3\n  name     = \"frozen-lake\"\n  tags     = {{ owner = var.owner }}\n}}\n",
            server.address
        ),
    );
    workspace.apply(&[]);
    server.freeze();

    // A plan against a store that stopped answering ends, and says why.
    let started = std::time::Instant::now();
    let plan = workspace.run(&["plan"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "the plan waited {:?}", started.elapsed());
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stderr.contains(&format!("S3 at http://{} did not answer within 2s (request_timeout)", server.address)), "{}", plan.all());
    assert!(plan.stderr.contains("raise `request_timeout`"), "{}", plan.all());

    // An apply waiting on it stops at the first Ctrl-C, its state saved.
    let mut apply = workspace
        .command(&["apply", "--auto-approve", "--refresh=false", "-var", "owner=b", "-var", "wait=120s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let interrupted = std::time::Instant::now();
    unsafe { libc::kill(apply.id() as libc::pid_t, libc::SIGINT) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while apply.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the apply kept waiting after Ctrl-C");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = Run::from(apply.wait_with_output().unwrap());
    assert!(interrupted.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(output.code, 1, "{}", output.all());
    assert!(output.stdout.contains("Apply interrupted"), "{}", output.all());
    let state = workspace.run(&["state", "list"]);
    assert_eq!(state.code, 0, "the state does not load after the interrupt:\n{}", state.all());

    server.thaw();
    workspace.apply(&["-var", "owner=b"]);
}

#[test]
fn lifecycle_rules_changed_or_removed_outside_mlops_are_put_back() {
    let Some(endpoint) = endpoint() else { return };
    let workspace = s3_workspace(&endpoint, "rules");
    workspace.apply(&[]);
    let (_, rules) = raw_exchange(&endpoint, "GET", "/rules-lake?lifecycle", "");
    assert!(rules.contains("<Days>7</Days>"), "{rules}");

    // Only the lifecycle drifts: removed, then changed to 30 days.
    assert!(matches!(raw_request(&endpoint, "DELETE", "/rules-lake?lifecycle", ""), 200 | 204));
    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "lifecycle drift planned nothing:\n{}", plan.all());
    assert!(plan.stdout.contains("`lifecycle_rule` was ["), "{}", plan.all());
    assert!(plan.stdout.contains("is [] now (changed outside mlops): apply sets it back"), "{}", plan.all());
    workspace.apply(&[]);
    let (_, rules) = raw_exchange(&endpoint, "GET", "/rules-lake?lifecycle", "");
    assert!(rules.contains("<Days>7</Days>") && rules.contains("scratch/"), "the rules were not put back: {rules}");

    let thirty = "<LifecycleConfiguration><Rule><ID>x</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>30</Days></Expiration></Rule></LifecycleConfiguration>";
    assert_eq!(raw_request(&endpoint, "PUT", "/rules-lake?lifecycle", thirty), 200);
    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    workspace.apply(&[]);
    let (_, rules) = raw_exchange(&endpoint, "GET", "/rules-lake?lifecycle", "");
    assert!(rules.contains("<Days>7</Days>") && !rules.contains("<Days>30</Days>"), "{rules}");
}

#[test]
fn a_destroy_refused_for_a_full_bucket_says_to_destroy_again() {
    let Some(endpoint) = endpoint() else { return };
    let mut workspace = s3_workspace(&endpoint, "still-full");
    workspace.variables.retain(|variable| !variable.starts_with("force_destroy"));
    workspace.apply(&[]);
    assert_eq!(raw_request(&endpoint, "PUT", "/still-full-lake/extra.csv", "a\n1\n"), 200);
    let refused = workspace.run(&["destroy", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(refused.stdout.contains("run `mlops destroy` again"), "{}", refused.all());
    assert!(!refused.all().contains("run `mlops apply` again"), "{}", refused.all());
    workspace.variables.push("force_destroy=true".into());
    workspace.apply(&[]);
}

#[test]
fn a_named_profile_without_credentials_is_named() {
    let Some(endpoint) = endpoint() else { return };
    let workspace = s3_workspace(&endpoint, "profiled");
    let home = tempfile::tempdir().unwrap();
    let mut command = workspace.command(&["apply", "--auto-approve"]);
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        command.env_remove(name);
    }
    command
        .env("AWS_PROFILE", "nosuch")
        .env("HOME", home.path())
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let run = Run::from(command.output().unwrap());
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("found no AWS credentials in the profile `nosuch` (named by AWS_PROFILE)"), "{}", run.all());
}

/// The three-file dataset of tests/cases/s3-parts in its own bucket.
fn parts_workspace(endpoint: &str, bucket: &str) -> Workspace {
    let mut workspace = Workspace::copy_of("tests/cases/s3-parts");
    workspace.environment = vec![("AWS_ACCESS_KEY_ID".into(), "testing".into()), ("AWS_SECRET_ACCESS_KEY".into(), "testing".into())];
    workspace.variables = vec![format!("s3_endpoint={endpoint}"), format!("bucket={bucket}")];
    workspace
}

/// The path (`/BUCKET/KEY`) of a file of the stored dataset.
fn stored(workspace: &Workspace, bucket: &str, file: &str) -> String {
    let uri = workspace.output("parts");
    format!("/{bucket}/{}{file}", uri.trim_start_matches(&format!("s3://{bucket}/")))
}

#[test]
fn objects_replaced_deleted_or_added_in_s3_are_drift_and_put_back() {
    let Some(endpoint) = endpoint() else { return };
    let workspace = parts_workspace(&endpoint, "tampered-lake");
    workspace.apply(&[]);
    let original = raw_exchange(&endpoint, "GET", &stored(&workspace, "tampered-lake", "part-1.csv"), "").1;

    // Replaced with same-size content, another one deleted, a stranger added.
    let forged = original.replace('1', "7");
    assert_eq!(forged.len(), original.len());
    assert_eq!(raw_request(&endpoint, "PUT", &stored(&workspace, "tampered-lake", "part-1.csv"), &forged), 200);
    assert!(matches!(raw_request(&endpoint, "DELETE", &stored(&workspace, "tampered-lake", "part-2.csv"), ""), 200 | 204));
    assert_eq!(raw_request(&endpoint, "PUT", &stored(&workspace, "tampered-lake", "part-9.csv"), "x\n999\n"), 200);

    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "tampering planned nothing:\n{}", plan.all());
    assert!(
        plan.stdout.contains(
            "~ dataset.parts: changed outside mlops: `part-1.csv` was replaced, `part-2.csv` was deleted, `part-9.csv` was added"
        ),
        "{}",
        plan.all()
    );
    assert!(plan.stdout.contains("apply stores the recorded data again"), "{}", plan.all());
    assert!(!plan.stdout.contains("feature_set.scaled will"), "the features were made from the recorded data:\n{}", plan.all());

    // Downstream work never reads the tampered objects: forcing the features
    // to be computed again without a refresh (and without the copy staged
    // before) fails on the check.
    std::fs::remove_dir_all(workspace.path().join(".mlops/staged")).unwrap();
    let forced = workspace.run(&["apply", "--auto-approve", "--refresh=false", "-var", "factor=3"]);
    assert_eq!(forced.code, 1, "{}", forced.all());
    assert!(forced.stderr.contains("does not hold the version that was recorded"), "{}", forced.all());

    let apply = workspace.apply(&["-var", "factor=3"]);
    assert!(apply.stderr.contains("dataset.parts: 2 file(s) uploaded, 1 already present"), "{}", apply.all());
    assert_eq!(raw_exchange(&endpoint, "GET", &stored(&workspace, "tampered-lake", "part-1.csv"), "").1, original);
    assert_eq!(raw_request(&endpoint, "HEAD", &stored(&workspace, "tampered-lake", "part-2.csv"), ""), 200);
    assert_eq!(raw_request(&endpoint, "HEAD", &stored(&workspace, "tampered-lake", "part-9.csv"), ""), 404);
    assert_eq!(workspace.output("rows"), "6");
}

#[test]
fn a_new_version_sends_only_the_files_that_changed() {
    let Some(endpoint) = endpoint() else { return };
    let workspace = parts_workspace(&endpoint, "copied-lake");
    let first = workspace.apply(&[]);
    assert!(first.stderr.contains("dataset.parts: 3 file(s) uploaded, 0 already present"), "{}", first.all());
    let before = workspace.output("parts");

    // One row of one file changes: one upload, the other two copied in the store.
    workspace.write("parts/part-1.csv", "x\n1.5\n11.75\n");
    let second = workspace.apply(&[]);
    assert!(second.stderr.contains("dataset.parts: 1 file(s) uploaded, 2 copied inside the store, 0 already present"), "{}", second.all());
    assert_ne!(workspace.output("parts"), before);
    for file in ["part-0.csv", "part-1.csv", "part-2.csv"] {
        assert_eq!(raw_request(&endpoint, "HEAD", &stored(&workspace, "copied-lake", file), ""), 200, "{file}");
    }
    assert_eq!(workspace.output("rows"), "6");
}

#[test]
fn windowed_features_and_training_sets_are_computed_from_s3_into_s3() {
    let Some(endpoint) = endpoint() else { return };
    let mut workspace = Workspace::copy_of("tests/cases/time-windows");
    // The same configuration, every resource on the s3 provider.
    let configuration = workspace.read("main.mlops.hcl");
    let mut on_s3 =
        String::from("variable \"s3_endpoint\" {\n  type = string\n}\n\nprovider \"s3\" {\n  endpoint = var.s3_endpoint\n}\n\n");
    for line in configuration.lines() {
        on_s3.push_str(&line.replace("windows-lake", "s3-windows-lake"));
        on_s3.push('\n');
        if line.ends_with('{') && !line.starts_with(' ') && !line.starts_with("output") {
            on_s3.push_str("  provider = s3\n");
            if line.starts_with("bucket") {
                on_s3.push_str("  force_destroy = true\n");
            }
        }
    }
    workspace.write("main.mlops.hcl", &on_s3);
    workspace.environment = vec![("AWS_ACCESS_KEY_ID".into(), "testing".into()), ("AWS_SECRET_ACCESS_KEY".into(), "testing".into())];
    workspace.variables = vec![format!("s3_endpoint={endpoint}")];
    let apply = workspace.apply(&[]);
    assert!(apply.stderr.contains("training_set.churn: joining the labels to the features, point-in-time"), "{}", apply.all());
    for (output, file) in [("uri", "features.parquet"), ("churn_uri", "features.parquet"), ("recent_uri", "features.jsonl")] {
        let uri = workspace.output(output);
        assert!(uri.starts_with("s3://s3-windows-lake/"), "{uri}");
        let key = format!("/s3-windows-lake/{}{file}", uri.trim_start_matches("s3://s3-windows-lake/"));
        assert_eq!(raw_request(&endpoint, "HEAD", &key, ""), 200, "{key}");
    }
    assert!(workspace.output("churn_uri").contains("/training-sets/training_set.churn/"));
    let state = workspace.run(&["state", "show", "training_set.churn"]).stdout;
    assert!(state.contains("row_count = 5"), "{state}");
    workspace.assert_no_changes(&[]);
    let destroy = workspace.run(&["destroy", "--auto-approve"]);
    assert_eq!(destroy.code, 0, "{}", destroy.all());
}
