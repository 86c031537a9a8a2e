//! The kubernetes provider against a real cluster, for those who have one.
//!
//! Runs only when `MLOPS_TEST_KUBECONFIG` names a kubeconfig (the README
//! says how); everywhere else, including CI, no cluster can be installed and
//! the fake API server in `tests/kubernetes.rs` stands in. Optional:
//! `MLOPS_TEST_KUBE_CONTEXT` (default: the kubeconfig's current context) and
//! `MLOPS_TEST_KUBE_NAMESPACE` (default `default`). The cluster must be able
//! to pull `busybox:1.36`; the runs write their metrics and need no storage.

mod support;

use support::Workspace;

fn cluster() -> Option<(String, String, String)> {
    let kubeconfig = std::env::var("MLOPS_TEST_KUBECONFIG").ok().filter(|path| !path.is_empty());
    let Some(kubeconfig) = kubeconfig else {
        eprintln!("NOTE: MLOPS_TEST_KUBECONFIG is not set, so the real-cluster suite checks nothing (see the README)");
        return None;
    };
    let context = std::env::var("MLOPS_TEST_KUBE_CONTEXT").unwrap_or_default();
    let namespace = std::env::var("MLOPS_TEST_KUBE_NAMESPACE").unwrap_or_else(|_| "default".to_owned());
    Some((kubeconfig, context, namespace))
}

fn workspace(kubeconfig: &str, context: &str, namespace: &str, command: &str) -> Workspace {
    let workspace = Workspace::copy_of("tests/cases/kubernetes");
    let context = if context.is_empty() { String::new() } else { format!("context = \"{context}\"") };
    workspace.write(
        "main.mlops.hcl",
        &format!(
            r#"
provider "kubernetes" {{
  kubeconfig    = "{kubeconfig}"
  {context}
  namespace     = "{namespace}"
  artifact_root = "s3://mlops-test-cluster/runs"
}}

training "smoke" {{
  provider = kubernetes
  image    = "busybox:1.36"
  command  = ["sh", "-c", {command:?}]
  resources {{
    cpu    = "100m"
    memory = "64Mi"
  }}
  timeout = "10m"
  metrics = ["auc"]
}}
"#
        ),
    );
    workspace
}

#[test]
fn a_job_runs_reports_its_metrics_and_replans_empty() {
    let Some((kubeconfig, context, namespace)) = cluster() else { return };
    let workspace =
        workspace(&kubeconfig, &context, &namespace, "echo \"training $MLOPS_RUN_ID\"; echo '{\"auc\": 0.97}' > $MLOPS_METRICS_FILE");
    workspace.apply(&[]);
    let state = workspace.run(&["state", "show", "training.smoke"]).stdout;
    assert!(state.contains(r#""auc":0.97"#), "{state}");
}

#[test]
fn a_failing_job_shows_the_end_of_its_log() {
    let Some((kubeconfig, context, namespace)) = cluster() else { return };
    let workspace = workspace(&kubeconfig, &context, &namespace, "echo 'ValueError: no data'; exit 3");
    let apply = workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(apply.stderr.contains("exit code 3"), "{}", apply.all());
    assert!(apply.stderr.contains("ValueError: no data"), "{}", apply.all());
}
