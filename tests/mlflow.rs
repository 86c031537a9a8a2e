//! End-to-end tests of the mlflow provider against a real MLflow server on
//! loopback (the one the test command starts; its URL comes in
//! `MLOPS_TEST_MLFLOW_URL`). In CI a missing server fails the tests.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::Value as Json;
use support::{http_exchange, mlflow_url, Workspace};

/// A copy of examples/mlflow registering `model_name`, pointed at the server.
fn mlflow_workspace(url: &str, model_name: &str) -> Workspace {
    let mut workspace = Workspace::copy_of("examples/mlflow");
    workspace.variables = vec![format!("mlflow_url={url}"), format!("model_name={model_name}")];
    workspace
}

/// GET on MLflow's REST API, as JSON.
fn get(url: &str, path: &str) -> Json {
    let (status, body) = http(url, "GET", &format!("/api/2.0/mlflow/{path}"), "");
    assert!(status == 200 || status == 400 || status == 404, "GET {path}: {status} {body}");
    serde_json::from_str(&body).unwrap_or(Json::Null)
}

/// Sends a JSON request to the server; returns status and body.
fn http(url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = http_exchange(url, method, path, &[("Content-Type", "application/json")], body.as_bytes());
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn tag<'a>(version: &'a Json, key: &str) -> Option<&'a str> {
    version["tags"].as_array()?.iter().find(|tag| tag["key"] == key)?["value"].as_str()
}

fn alias_version(url: &str, name: &str, alias: &str) -> Option<String> {
    get(url, &format!("registered-models/alias?name={name}&alias={alias}"))["model_version"]["version"].as_str().map(str::to_owned)
}

#[test]
fn versions_carry_their_lineage_and_aliases_move_as_planned_changes() {
    let Some(url) = mlflow_url() else { return };
    let mut workspace = mlflow_workspace(&url, "lineage-model");
    let apply = workspace.apply(&[]);
    assert!(apply.stderr.contains("registered lineage-model version 1 in MLflow"), "{}", apply.all());

    let version = &get(&url, "model-versions/get?name=lineage-model&version=1")["model_version"];
    let run_id = workspace.run(&["state", "show", "training.churn"]).stdout;
    let training_run = tag(version, "mlops.training_run").expect("the training run tag");
    assert!(run_id.contains(training_run), "{run_id}");
    assert!(tag(version, "mlops.fingerprint").is_some_and(|value| value.starts_with("b3:")), "{version}");
    assert!(tag(version, "mlops.input.dataset.ratings").is_some_and(|value| value.starts_with("b3:")), "{version}");
    assert!(tag(version, "mlops.input.feature_set.engagement").is_some_and(|value| value.starts_with("b3:")), "{version}");
    assert_eq!(tag(version, "mlops.state_lineage").map(str::len), Some(32), "{version}");
    assert_eq!(tag(version, "team"), Some("growth"));
    assert_eq!(version["description"], "Predicts whether a user comes back within a week.");
    // The MLflow run records the hyperparameters and metrics, and holds the artifacts.
    let run = &get(&url, &format!("runs/get?run_id={}", version["run_id"].as_str().unwrap()))["run"];
    assert_eq!(run["info"]["status"], "FINISHED");
    assert!(run["data"]["params"].to_string().contains(r#""key":"quality","value":"0.91""#), "{run}");
    assert!(run["data"]["metrics"].to_string().contains(r#""key":"auc","value":0.91"#), "{run}");
    let source = version["source"].as_str().unwrap();
    assert!(std::path::Path::new(source).join("weights/layer0.bin").is_file(), "{source}");
    assert_eq!(alias_version(&url, "lineage-model", "challenger").as_deref(), Some("1"));

    // A better run: the plan says the alias moves, and apply moves it.
    workspace.variables.push("quality=0.95".into());
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("a new model version will be registered from the new run if its gates pass"), "{}", plan.all());
    assert!(plan.stdout.contains("alias `challenger` moves from version 1 to the new version"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(alias_version(&url, "lineage-model", "challenger").as_deref(), Some("2"));

    // Rollback: pinning version 1 moves the alias back, registering nothing.
    workspace.variables.push("pin=1".into());
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("alias `challenger` moves from version 2 back to version 1"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(alias_version(&url, "lineage-model", "challenger").as_deref(), Some("1"));
    assert_eq!(workspace.output("version"), "1");
    let state = workspace.run(&["state", "show", "model.churn"]).stdout;
    assert!(state.contains(r#"versions = ["1","2"]"#), "{state}");
    let history = state.lines().find(|line| line.trim_start().starts_with("alias_history")).unwrap_or_default();
    let moves: Vec<(&str, &str)> =
        [("\"from\":\"\"", "\"to\":\"1\""), ("\"from\":\"1\"", "\"to\":\"2\""), ("\"from\":\"2\"", "\"to\":\"1\"")].to_vec();
    let mut rest = history;
    for (from, to) in moves {
        let at = rest.find(from).unwrap_or_else(|| panic!("history lacks {from}: {history}"));
        rest = &rest[at..];
        assert!(rest.contains(to), "{history}");
    }
    let versions = get(&url, "model-versions/search?filter=name%3D%27lineage-model%27")["model_versions"].as_array().map_or(0, Vec::len);
    assert_eq!(versions, 2, "pinning registered nothing new");
    // Lineage is that of the pinned version: its run had quality 0.91.
    let lineage = workspace.run(&["lineage", "model.churn"]).stdout;
    assert!(lineage.contains("hyperparameters: quality=0.91"), "{lineage}");
    let lineage = workspace.run(&["lineage", "model.churn", "--version", "2"]).stdout;
    assert!(lineage.contains("hyperparameters: quality=0.95"), "{lineage}");

    // Unpinned, the alias returns to the newest run's version, which is
    // found by its run, not registered a second time.
    workspace.variables.retain(|variable| variable != "pin=1");
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("`version` no longer pins version 1"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(alias_version(&url, "lineage-model", "challenger").as_deref(), Some("2"));
    assert_eq!(workspace.output("version"), "2");
    let versions = get(&url, "model-versions/search?filter=name%3D%27lineage-model%27")["model_versions"].as_array().map_or(0, Vec::len);
    assert_eq!(versions, 2, "unpinning registered nothing new");
}

#[test]
fn a_failing_gate_registers_nothing_and_keeps_the_alias() {
    let Some(url) = mlflow_url() else { return };
    let mut workspace = mlflow_workspace(&url, "gated-model");
    workspace.apply(&[]);
    workspace.variables.push("quality=0.5".into());
    let failed = workspace.run_fast(&["apply", "--auto-approve"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    assert!(failed.stderr.contains("gate `auc` of model.churn failed: candidate AUC below 0.8"), "{}", failed.all());
    let versions = get(&url, "model-versions/search?filter=name%3D%27gated-model%27")["model_versions"].as_array().map_or(0, Vec::len);
    assert_eq!(versions, 1);
    assert_eq!(alias_version(&url, "gated-model", "challenger").as_deref(), Some("1"));
    // A rollback pin is not held back by the failing candidate.
    workspace.variables.push("pin=1".into());
    workspace.apply(&[]);
}

#[test]
fn an_alias_moved_or_a_version_deleted_in_mlflow_shows_as_drift() {
    let Some(url) = mlflow_url() else { return };
    let mut workspace = mlflow_workspace(&url, "drifting-model");
    workspace.apply(&[]);
    workspace.variables.push("quality=0.96".into());
    workspace.apply(&[]);

    // Someone points the alias at the old version in the MLflow UI.
    let (status, body) = http(
        &url,
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        r#"{"name": "drifting-model", "alias": "challenger", "version": "1"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("~ model.churn: changed outside mlops: aliases"), "{}", plan.all());
    assert!(plan.stdout.contains("alias `challenger` moves from version 1 (it was moved outside mlops) to version 2"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(alias_version(&url, "drifting-model", "challenger").as_deref(), Some("2"));

    // Someone deletes the current version: the plan registers the run again.
    let (status, body) = http(&url, "DELETE", "/api/2.0/mlflow/model-versions/delete", r#"{"name": "drifting-model", "version": "2"}"#);
    assert_eq!(status, 200, "{body}");
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("~ model.churn: deleted outside mlops"), "{}", plan.all());
    assert!(plan.stdout.contains("# model.churn will be created"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(alias_version(&url, "drifting-model", "challenger").as_deref(), Some("3"));

    // An older version deleted by hand: shown once, recorded by the next
    // apply, and then neither planned again nor answered for by lineage.
    let (status, body) = http(&url, "DELETE", "/api/2.0/mlflow/model-versions/delete", r#"{"name": "drifting-model", "version": "1"}"#);
    assert_eq!(status, 200, "{body}");
    let plan = workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(plan.stdout.contains("~ model.churn: changed outside mlops: versions"), "{}", plan.all());
    assert!(plan.stdout.contains("apply records this in the state"), "{}", plan.all());
    let apply = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(apply.stdout.contains("1 recorded as changed outside mlops"), "{}", apply.all());
    let plan = workspace.run(&["plan"]);
    assert!(!plan.stdout.contains("changed outside mlops"), "the drift is reported forever:\n{}", plan.all());
    let lineage = workspace.run(&["lineage", "model.churn", "--version", "1"]);
    assert_eq!(lineage.code, 1, "{}", lineage.all());
    let state = workspace.run(&["state", "show", "model.churn"]).stdout;
    assert!(state.contains(r#"versions = ["3"]"#), "{state}");
}

#[test]
fn a_data_model_reads_the_champion_by_alias_as_a_gate_baseline() {
    let Some(url) = mlflow_url() else { return };
    let workspace = mlflow_workspace(&url, "baseline-model");
    workspace.apply(&[]);
    // The current challenger is the baseline a new candidate must beat.
    workspace.write(
        "baseline.mlops.hcl",
        r#"
data "model" "baseline" {
  provider = mlflow
  name     = var.model_name
  alias    = "challenger"
}

output "baseline_version" {
  value = data.model.baseline.version
}

output "baseline_auc" {
  value = data.model.baseline.metrics.auc
}
"#,
    );
    workspace.apply(&[]);
    assert_eq!(workspace.output("baseline_version"), "1");
    assert_eq!(workspace.output("baseline_auc"), "0.91");

    // A missing alias (MLflow answers 400, not 404) is one clear error.
    workspace.write("baseline.mlops.hcl", &workspace.read("baseline.mlops.hcl").replace("\"challenger\"", "\"champion\""));
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(
        plan.stderr.contains(&format!("registered model `baseline-model` has no alias `champion` on the MLflow server at {url}")),
        "{}",
        plan.all()
    );
    assert!(plan.stderr.contains("its aliases are: challenger"), "{}", plan.all());
}

#[test]
fn artifacts_uploaded_through_the_proxy_are_served_from_the_version() {
    let Some(url) = mlflow_url() else { return };
    let workspace = mlflow_workspace(&url, "proxied-model");
    let main = workspace.read("main.mlops.hcl").replace(
        "provider \"mlflow\" {\n  url = var.mlflow_url\n}",
        "provider \"mlflow\" {\n  url               = var.mlflow_url\n  experiment        = \"proxied\"\n  artifact_location = \"mlflow-artifacts:/proxied\"\n}",
    );
    workspace.write("main.mlops.hcl", &main);
    // A local serving of the version: its artifacts come back through the proxy.
    workspace.write(
        "serving.mlops.hcl",
        "serving \"api\" {\n  model   = model.churn\n  command = [\"python3\", \"serve.py\"]\n}\n\noutput \"url\" {\n  value = serving.api.url\n}\n",
    );
    workspace.write(
        "serve.py",
        r#"import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = os.path.join(os.environ["MLOPS_MODEL_DIR"], "model.json")
        body = open(path, "rb").read() if self.path == "/model" else b"ok"
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *arguments):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#,
    );
    workspace.apply(&[]);
    let uri = workspace.output("uri");
    assert!(uri.starts_with("mlflow-artifacts:/proxied/"), "{uri}");
    let served = workspace.output("url");
    let (status, body) = http(served.trim_matches('"'), "GET", "/model", "");
    assert_eq!(status, 200);
    assert!(body.contains("\"kind\": \"threshold\""), "{body}");
}

#[test]
fn an_unreachable_server_and_refused_credentials_are_clear_errors() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let workspace = mlflow_workspace(&closed_url, "unreachable-model");
    workspace.write(
        "baseline.mlops.hcl",
        "data \"model\" \"baseline\" {\n  provider = mlflow\n  name     = \"x\"\n  alias    = \"champion\"\n}\n",
    );
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stderr.contains(&format!("cannot reach the MLflow server at {closed_url}")), "{}", plan.all());
    assert!(plan.stderr.contains("check `url` in provider \"mlflow\""), "{}", plan.all());

    // A server that refuses the token: the message names it, and never the token.
    let refusing = TcpListener::bind("127.0.0.1:0").unwrap();
    let refusing_url = format!("http://{}", refusing.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in refusing.incoming().flatten() {
            let mut stream = stream;
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let mut workspace = mlflow_workspace(&refusing_url, "refused-model");
    workspace.environment.push(("MLFLOW_TRACKING_TOKEN".into(), "secret-token-value".into()));
    workspace.write(
        "baseline.mlops.hcl",
        "data \"model\" \"baseline\" {\n  provider = mlflow\n  name     = \"x\"\n  alias    = \"champion\"\n}\n",
    );
    let plan = workspace.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stderr.contains(&format!("the MLflow server at {refusing_url} refused the credentials (HTTP 401)")), "{}", plan.all());
    assert!(!plan.all().contains("secret-token-value"), "{}", plan.all());
}

#[test]
fn a_frozen_server_ends_in_a_clear_timeout() {
    let Some(mlflow) = support::server_program("MLOPS_TEST_MLFLOW_SERVER", "the MLflow server") else { return };
    let server = support::OwnServer::start(
        &mlflow,
        &[
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            "1",
            "--backend-store-uri",
            "sqlite:///{dir}/mlflow.db",
            "--default-artifact-root",
            "{dir}/artifacts",
        ],
        "/health",
        std::time::Duration::from_secs(120),
    );
    server.freeze();
    let workspace = Workspace::empty();
    workspace.write(
        "main.mlops.hcl",
        &format!(
            "provider \"mlflow\" {{\n  url             = \"http://{}\"\n  request_timeout = \"2s\"\n}}\n\n\
             data \"model\" \"champion\" {{\n  provider = mlflow\n  name     = \"fraud\"\n  alias    = \"champion\"\n}}\n",
            server.address
        ),
    );
    let started = std::time::Instant::now();
    let plan = workspace.run(&["plan"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "the plan waited {:?}", started.elapsed());
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(
        plan.stderr.contains(&format!("the MLflow server at http://{} did not answer within 2s (request_timeout)", server.address)),
        "{}",
        plan.all()
    );
}
