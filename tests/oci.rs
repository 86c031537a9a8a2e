//! End-to-end tests of the oci provider and of shared modules against real
//! registries on loopback (Debian's docker-registry, which the test command
//! starts: `MLOPS_TEST_OCI_REGISTRY`, and one that wants a password,
//! `MLOPS_TEST_OCI_AUTH_REGISTRY`). In CI a missing registry fails the tests.

mod support;

use std::net::TcpListener;

use mlops_units::digest::sha256_digest as sha256;
use serde_json::Value as Json;
use support::{http_exchange, oci_registry, Workspace};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The manifest `repository:reference` and its digest.
fn manifest(registry: &str, repository: &str, reference: &str) -> Option<(Json, String)> {
    let (status, headers, body) =
        http_exchange(registry, "GET", &format!("/v2/{repository}/manifests/{reference}"), &[("Accept", MANIFEST)], b"");
    if status != 200 {
        return None;
    }
    let digest = headers.iter().find(|(name, _)| name == "docker-content-digest").map(|(_, value)| value.clone()).unwrap_or_default();
    Some((serde_json::from_slice(&body).unwrap(), digest))
}

fn blob(registry: &str, repository: &str, digest: &str) -> Vec<u8> {
    let (status, _, body) = http_exchange(registry, "GET", &format!("/v2/{repository}/blobs/{digest}"), &[], b"");
    assert_eq!(status, 200, "blob {digest}");
    body
}

/// Pushes a tiny image (a config blob and an empty layer list) as
/// `repository:tag`, the way an image build would: POST, then PUT.
fn push_image(registry: &str, repository: &str, tag: &str, note: &str) -> String {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"note":"{note}"}}}}}}"#);
    let config_digest = sha256(config.as_bytes());
    let (status, headers, _) = http_exchange(registry, "POST", &format!("/v2/{repository}/blobs/uploads/"), &[], b"");
    assert_eq!(status, 202);
    let location = headers.iter().find(|(name, _)| name == "location").map(|(_, value)| value.clone()).unwrap();
    let location = location.trim_start_matches(&format!("http://{registry}")).to_owned();
    let separator = if location.contains('?') { '&' } else { '?' };
    let (status, _, _) = http_exchange(
        registry,
        "PUT",
        &format!("{location}{separator}digest={config_digest}"),
        &[("Content-Type", "application/octet-stream")],
        config.as_bytes(),
    );
    assert_eq!(status, 201);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let (status, _, body) =
        http_exchange(registry, "PUT", &format!("/v2/{repository}/manifests/{tag}"), &[("Content-Type", MANIFEST)], manifest.as_bytes());
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    sha256(manifest.as_bytes())
}

/// A copy of examples/oci pushing to `registry/prefix`, with its runtime
/// image in place.
fn oci_workspace(registry: &str, prefix: &str) -> Workspace {
    push_image(registry, &format!("{prefix}/runtimes/python"), "3.12", "first");
    let mut workspace = Workspace::copy_of("examples/oci");
    workspace.variables = vec![format!("registry={registry}/{prefix}"), format!("runtime_image={registry}/{prefix}/runtimes/python:3.12")];
    workspace
}

fn state_of(workspace: &Workspace, address: &str) -> String {
    workspace.run(&["state", "show", address]).stdout
}

#[test]
fn model_versions_are_pushed_with_their_lineage_and_served_by_digest() {
    let Some(registry) = oci_registry() else { return };
    // A repository of its own: blobs pushed by an earlier run would already be there.
    let prefix = format!("pushed-{}", std::process::id());
    let repository = format!("{prefix}/sentiment");
    let mut workspace = oci_workspace(&registry, &prefix);
    let apply = workspace.apply(&[]);
    assert!(apply.stderr.contains(&format!("pushed {registry}/{repository}:1 (sha256:")), "{}", apply.all());
    assert!(apply.stderr.contains("uploading tokenizer/vocab.txt"), "{}", apply.all());

    let (version_one, digest_one) = manifest(&registry, &repository, "1").expect("version 1 is tagged");
    assert_eq!(workspace.output("uri"), format!("oci://{registry}/{repository}@{digest_one}"));
    assert_eq!(version_one["artifactType"], "application/vnd.mlops.model.v1");
    let annotations = &version_one["annotations"];
    assert!(annotations["mlops.training_run"].as_str().is_some_and(|run| state_of(&workspace, "training.sentiment").contains(run)));
    assert!(annotations["mlops.input.dataset.reviews"].as_str().is_some_and(|version| version.starts_with("b3:")), "{annotations}");
    assert!(annotations["mlops.input.feature_set.review"].as_str().is_some_and(|version| version.starts_with("b3:")), "{annotations}");
    assert!(annotations["mlops.fingerprint"].as_str().is_some_and(|version| version.starts_with("b3:")), "{annotations}");
    let titles: Vec<&str> = version_one["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer["annotations"]["org.opencontainers.image.title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["classifier.json", "tokenizer/vocab.txt"]);
    let config: Json = serde_json::from_slice(&blob(&registry, &repository, version_one["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(config["metrics"]["accuracy"], 0.9);
    assert_eq!(config["lineage"]["state_lineage"].as_str().map(str::len), Some(32));
    assert_eq!(manifest(&registry, &repository, "prod").map(|(_, digest)| digest), Some(digest_one.clone()));

    // The serving pulled the version back by digest.
    let (status, _, body) = http_exchange(&workspace.output("url"), "GET", "/classifier", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), r#"{"prior": 0.5}"#);

    // A new run becomes version 2, and the plan says `prod` moves.
    workspace.variables.push("quality=0.95".into());
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("alias `prod` moves from version 1 to the new version"), "{}", plan.all());
    let apply = workspace.apply(&[]);
    // Files already in the registry are not uploaded again.
    assert!(apply.stderr.contains("tokenizer/vocab.txt: already in"), "{}", apply.all());
    let (_, digest_two) = manifest(&registry, &repository, "2").expect("version 2 is tagged");
    assert_eq!(manifest(&registry, &repository, "prod").map(|(_, digest)| digest), Some(digest_two.clone()));

    // Rollback: pinning version 1 moves `prod` back to its manifest.
    workspace.variables.push("pin=1".into());
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("alias `prod` moves from version 2 back to version 1"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(manifest(&registry, &repository, "prod").map(|(_, digest)| digest), Some(digest_one));
    let state = state_of(&workspace, "model.sentiment");
    assert!(state.contains(r#"versions = ["1","2"]"#), "{state}");
    assert!(state.contains(r#"{"alias":"prod","from":"2","to":"1","#), "{state}");

    // Unpinned, `prod` returns to version 2, found by its run: no version 3.
    workspace.variables.retain(|variable| variable != "pin=1");
    workspace.apply(&[]);
    assert_eq!(manifest(&registry, &repository, "prod").map(|(_, digest)| digest), Some(digest_two));
    assert!(manifest(&registry, &repository, "3").is_none(), "unpinning registered a new version");
}

#[test]
fn tags_moved_or_deleted_in_the_registry_show_as_drift() {
    let Some(registry) = oci_registry() else { return };
    let mut workspace = oci_workspace(&registry, "drifting");
    workspace.apply(&[]);
    workspace.variables.push("quality=0.97".into());
    workspace.apply(&[]);

    // Someone points `prod` back at version 1 by hand.
    let (version_one, _) = manifest(&registry, "drifting/sentiment", "1").unwrap();
    let raw = serde_json::to_vec(&version_one).unwrap();
    let (status, _, _) = http_exchange(&registry, "PUT", "/v2/drifting/sentiment/manifests/prod", &[("Content-Type", MANIFEST)], &raw);
    assert_eq!(status, 201);
    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("~ model.sentiment: changed outside mlops: aliases"), "{}", plan.all());
    assert!(plan.stdout.contains("alias `prod` moves from version 1 (it was moved outside mlops) to version 2"), "{}", plan.all());
    workspace.apply(&[]);

    // Someone pushes other content over the version's tag: it is tagged back.
    let (_, digest_two) = manifest(&registry, "drifting/sentiment", "2").unwrap();
    let (status, _, _) = http_exchange(&registry, "PUT", "/v2/drifting/sentiment/manifests/2", &[("Content-Type", MANIFEST)], &raw);
    assert_eq!(status, 201);
    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("tag 2 was pushed over outside mlops"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(manifest(&registry, "drifting/sentiment", "2").map(|(_, digest)| digest), Some(digest_two.clone()));

    // Someone deletes the current version: the plan pushes the run again.
    let (status, _, _) = http_exchange(&registry, "DELETE", &format!("/v2/drifting/sentiment/manifests/{digest_two}"), &[], b"");
    assert_eq!(status, 202);
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("~ model.sentiment: deleted outside mlops"), "{}", plan.all());
    workspace.apply(&[]);
    assert!(manifest(&registry, "drifting/sentiment", "prod").is_some());
}

#[test]
fn an_image_tag_is_pinned_to_its_digest_and_the_plan_shows_when_it_moves() {
    let Some(registry) = oci_registry() else { return };
    let workspace = oci_workspace(&registry, "images");
    workspace.apply(&[]);
    let first = manifest(&registry, "images/runtimes/python", "3.12").unwrap().1;
    assert_eq!(workspace.output("runtime"), format!("{registry}/images/runtimes/python:3.12@{first}"));

    // The tag is pushed again with another image.
    let second = push_image(&registry, "images/runtimes/python", "3.12", "second");
    let plan = workspace.run(&["plan"]);
    let short = |digest: &str| format!("{}…", &digest[..15]);
    let moved = format!("`{registry}/images/runtimes/python:3.12` now points at {} (it pointed at {})", short(&second), short(&first));
    assert!(plan.stdout.contains(&moved), "{}", plan.all());
    assert!(plan.stdout.contains("# serving.api will be updated in place"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(workspace.output("runtime"), format!("{registry}/images/runtimes/python:3.12@{second}"));

    // A tag that does not exist is one clear error naming registry and reference.
    let missing = workspace.run(&["plan", "-var", &format!("runtime_image={registry}/images/runtimes/python:9.9")]);
    assert_eq!(missing.code, 1, "{}", missing.all());
    assert!(
        missing.stderr.contains(&format!("manifest not found: the OCI registry {registry} has no {registry}/images/runtimes/python:9.9")),
        "{}",
        missing.all()
    );
}

#[test]
fn a_data_model_reads_a_version_by_alias() {
    let Some(registry) = oci_registry() else { return };
    let workspace = oci_workspace(&registry, "reading");
    workspace.apply(&[]);
    workspace.write(
        "baseline.mlops.hcl",
        "data \"model\" \"baseline\" {\n  provider = oci\n  name     = \"sentiment\"\n  alias    = \"prod\"\n}\n\noutput \"baseline\" {\n  value = data.model.baseline.metrics.accuracy\n}\n\noutput \"baseline_version\" {\n  value = data.model.baseline.version\n}\n",
    );
    workspace.apply(&[]);
    assert_eq!(workspace.output("baseline"), "0.9");
    assert_eq!(workspace.output("baseline_version"), "1");
    workspace.write("baseline.mlops.hcl", &workspace.read("baseline.mlops.hcl").replace("\"prod\"", "\"staging\""));
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(
        plan.stderr.contains(&format!("model `reading/sentiment` has no alias `staging` in the OCI registry {registry}")),
        "{}",
        plan.all()
    );
}

/// A root configuration calling `source`, with the module's directory.
fn module_workspaces(source: &str) -> (Workspace, tempfile::TempDir) {
    let module = tempfile::tempdir().unwrap();
    std::fs::write(
        module.path().join("main.mlops.hcl"),
        "variable \"team\" {\n  type = string\n}\n\nbucket \"lake\" {\n  name = \"${var.team}-lake\"\n}\n\noutput \"lake\" {\n  value = bucket.lake.uri\n}\n",
    )
    .unwrap();
    std::fs::create_dir_all(module.path().join(".mlops")).unwrap();
    std::fs::write(module.path().join(".mlops/ignored"), "local state is not published").unwrap();
    let root = Workspace::empty();
    root.write(
        "main.mlops.hcl",
        &format!("module \"platform\" {{\n  source = \"{source}\"\n  team   = \"growth\"\n}}\n\noutput \"lake\" {{\n  value = module.platform.lake\n}}\n"),
    );
    (root, module)
}

#[test]
fn modules_are_published_pinned_by_init_and_refused_when_their_content_changes() {
    let Some(registry) = oci_registry() else { return };
    let source = format!("oci://{registry}/platform/storage:1.0.0");
    let (root, module) = module_workspaces(&source);
    let publish = root.run(&["module", "publish", module.path().to_str().unwrap(), &source]);
    assert_eq!(publish.code, 0, "{}", publish.all());
    let digest = publish.stdout.split_whitespace().find(|word| word.starts_with("sha256:")).unwrap().to_owned();
    let (published, _) = manifest(&registry, "platform/storage", "1.0.0").unwrap();
    assert_eq!(published["layers"].as_array().map(Vec::len), Some(1), "hidden files are not published: {published}");

    // Before `mlops init`, the module is not there.
    let plan = root.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stderr.contains("comes from a registry and is not installed"), "{}", plan.all());
    let init = root.run(&["init"]);
    assert_eq!(init.code, 0, "{}", init.all());
    assert!(
        root.read("mlops.lock.hcl").contains(&format!("module \"{source}\" {{\n  digest = \"{digest}\"")),
        "{}",
        root.read("mlops.lock.hcl")
    );
    root.apply(&[]);
    assert_eq!(root.output("lake"), "local://objects/growth-lake");

    // A cached file edited by hand is refused.
    let cached = root.path().join(".mlops/modules").join(digest.replace(':', "-")).join("main.mlops.hcl");
    std::fs::write(&cached, std::fs::read_to_string(&cached).unwrap().replace("-lake", "-pond")).unwrap();
    let plan = root.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stderr.contains("E0215"), "{}", plan.all());
    assert!(
        plan.stderr.contains(&format!("no longer matches the digest pinned in mlops.lock.hcl ({digest}): `main.mlops.hcl` differs")),
        "{}",
        plan.all()
    );
    let init = root.run(&["init"]);
    assert!(init.stdout.contains("(downloaded)") && !init.stdout.contains("the tag now points"), "{}", init.all());
    root.assert_no_changes(&[]);

    // The tag is published again with new content: the pin holds until -upgrade.
    std::fs::write(module.path().join("extra.mlops.hcl"), "output \"team\" {\n  value = var.team\n}\n").unwrap();
    let republish = root.run(&["module", "publish", module.path().to_str().unwrap(), &source]);
    assert_eq!(republish.code, 0, "{}", republish.all());
    let init = root.run(&["init"]);
    assert!(init.stdout.contains(&format!("{digest} (already downloaded)")), "{}", init.all());
    let (_, moved_to) = manifest(&registry, "platform/storage", "1.0.0").unwrap();
    assert!(
        init.stdout.contains(&format!(
            "module {source}: the tag now points at {moved_to}; keeping the pinned {digest} (`mlops init -upgrade` moves the pin)"
        )),
        "{}",
        init.all()
    );
    root.assert_no_changes(&[]);
    let upgrade = root.run(&["init", "-upgrade"]);
    assert!(upgrade.stdout.contains(&format!("{source}: {digest} -> sha256:")), "{}", upgrade.all());
    assert!(!root.read("mlops.lock.hcl").contains(&digest));
    root.assert_no_changes(&[]);

    // A source whose tag does not exist names the registry and reference.
    root.write("main.mlops.hcl", &root.read("main.mlops.hcl").replace(":1.0.0", ":9.9.9"));
    let init = root.run(&["init"]);
    assert_eq!(init.code, 1, "{}", init.all());
    assert!(
        init.stderr.contains(&format!("manifest not found: the OCI registry {registry} has no {registry}/platform/storage:9.9.9")),
        "{}",
        init.all()
    );
}

#[test]
fn a_private_registry_takes_credentials_from_the_docker_configuration_and_never_prints_them() {
    let Some(registry) = support::oci_auth_registry() else { return };
    let (user, password) = (std::env::var("MLOPS_TEST_OCI_AUTH_USER").unwrap(), std::env::var("MLOPS_TEST_OCI_AUTH_PASSWORD").unwrap());
    let source = format!("oci://{registry}/private/storage:1.0.0");
    let (mut root, module) = module_workspaces(&source);
    let docker = tempfile::tempdir().unwrap();
    root.environment.push(("DOCKER_CONFIG".into(), docker.path().to_str().unwrap().into()));

    // No credentials: refused, and the message says where they come from.
    let refused = root.run(&["module", "publish", module.path().to_str().unwrap(), &source]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains(&format!("the OCI registry {registry} refused the credentials for {registry}/private/storage:1.0.0")),
        "{}",
        refused.all()
    );
    assert!(refused.stderr.contains(&format!("docker login {registry}")), "{}", refused.all());

    // `docker login` wrote them: publish and init work, and the password appears nowhere.
    let auth = support::base64(format!("{user}:{password}").as_bytes());
    std::fs::write(docker.path().join("config.json"), format!(r#"{{"auths": {{"{registry}": {{"auth": "{auth}"}}}}}}"#)).unwrap();
    let published = root.run(&["module", "publish", module.path().to_str().unwrap(), &source]);
    assert_eq!(published.code, 0, "{}", published.all());
    let init = root.run(&["init"]);
    assert_eq!(init.code, 0, "{}", init.all());
    root.apply(&[]);
    for run in [&published, &init] {
        assert!(!run.all().contains(&password), "{}", run.all());
    }

    // A wrong password from the environment wins over the file, and is refused.
    root.environment.push(("MLOPS_OCI_USERNAME".into(), user));
    root.environment.push(("MLOPS_OCI_PASSWORD".into(), "not-the-password".into()));
    let refused = root.run(&["init", "-upgrade"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(refused.stderr.contains("refused the credentials"), "{}", refused.all());
    assert!(!refused.all().contains("not-the-password"), "{}", refused.all());
}

#[test]
fn an_unreachable_registry_is_one_clear_error() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap().to_string();
    drop(closed);
    let source = format!("oci://{address}/platform/storage:1.0.0");
    let (root, _module) = module_workspaces(&source);
    let init = root.run(&["init"]);
    assert_eq!(init.code, 1, "{}", init.all());
    assert!(
        init.stderr.contains(&format!("cannot reach the OCI registry {address} for {address}/platform/storage:1.0.0")),
        "{}",
        init.all()
    );
    assert!(init.stderr.contains("check the registry address and that it is running"), "{}", init.all());
}

/// What a new user does: start a registry from the example's own
/// `registry.yml` and apply the example as shipped, with nothing pushed
/// beforehand and nothing from the internet.
#[test]
fn the_oci_example_runs_offline_with_its_own_registry_configuration() {
    let Some(registry) = support::server_program("MLOPS_TEST_REGISTRY_SERVER", "docker-registry") else { return };
    let shipped = std::fs::read_to_string(support::repository().join("examples/oci/registry.yml")).unwrap();
    assert!(shipped.contains("addr: 127.0.0.1:5000") && shipped.contains("rootdirectory: /tmp/mlops-example-registry"), "{shipped}");
    let configuration = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config_path = configuration.path().join("registry.yml");
    let data = configuration.path().join("data");
    std::fs::write(
        &config_path,
        shipped.replace("127.0.0.1:5000", &format!("127.0.0.1:{port}")).replace("/tmp/mlops-example-registry", &data.to_string_lossy()),
    )
    .unwrap();
    let config_text = config_path.to_string_lossy().into_owned();
    let server = support::OwnServer::start_on(port, &registry, &["serve", &config_text], "/v2/", std::time::Duration::from_secs(30));

    let mut workspace = Workspace::copy_of("examples/oci");
    let validate = workspace.run(&["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.all());
    workspace.variables = vec![format!("registry={}/ml", server.address)];
    let apply = workspace.apply(&[]);
    assert!(apply.stderr.contains(&format!("pushed {}/ml/sentiment:1 (sha256:", server.address)), "{}", apply.all());
    let (status, _, body) = http_exchange(&workspace.output("url"), "GET", "/classifier", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), r#"{"prior": 0.5}"#);
    // No runtime image was asked for, so none was resolved.
    assert_eq!(workspace.output("runtime"), "null");
}

#[test]
fn a_frozen_registry_ends_in_a_clear_timeout() {
    let Some(registry) = support::server_program("MLOPS_TEST_REGISTRY_SERVER", "docker-registry") else { return };
    let configuration = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config_path = configuration.path().join("registry.yml");
    std::fs::write(
        &config_path,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            configuration.path().join("data").display()
        ),
    )
    .unwrap();
    let config_text = config_path.to_string_lossy().into_owned();
    let server = support::OwnServer::start_on(port, &registry, &["serve", &config_text], "/v2/", std::time::Duration::from_secs(30));
    server.freeze();
    let workspace = support::Workspace::empty();
    workspace.write(
        "main.mlops.hcl",
        &format!(
            "provider \"oci\" {{\n  request_timeout = \"2s\"\n}}\n\ndata \"image\" \"runtime\" {{\n  provider = oci\n  ref      = \"{}/runtime:1.0\"\n}}\n",
            server.address
        ),
    );
    let started = std::time::Instant::now();
    let plan = workspace.run(&["plan"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "the plan waited {:?}", started.elapsed());
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(
        plan.stderr.contains(&format!("the OCI registry {} did not answer within 2s (request_timeout)", server.address)),
        "{}",
        plan.all()
    );
}

#[test]
fn a_version_deleted_while_the_model_is_pinned_to_another_is_reported_and_recorded() {
    let Some(registry) = oci_registry() else { return };
    let prefix = format!("pinned-{}", std::process::id());
    let repository = format!("{prefix}/sentiment");
    let mut workspace = oci_workspace(&registry, &prefix);
    workspace.apply(&[]);
    workspace.variables.push("quality=0.95".into());
    workspace.apply(&[]);
    workspace.variables.push("pin=1".into());
    workspace.apply(&[]);

    let (_, digest_two) = manifest(&registry, &repository, "2").expect("version 2 is tagged");
    let (status, _, _) = http_exchange(&registry, "DELETE", &format!("/v2/{repository}/manifests/{digest_two}"), &[], b"");
    assert_eq!(status, 202);
    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(plan.stdout.contains("~ model.sentiment: changed outside mlops: versions"), "{}", plan.all());
    let apply = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(state_of(&workspace, "model.sentiment").contains(r#"versions = ["1"]"#));
    let plan = workspace.run(&["plan"]);
    assert!(!plan.stdout.contains("changed outside mlops"), "{}", plan.all());
}
