//! What a real Kubernetes cluster enforces, for the tests.
//!
//! The kubernetes provider's objects are checked against the schemas a
//! cluster checks them against: the official strict schemas of the built-in
//! kinds for a Kubernetes minor (from the `kubernetes-validate` package,
//! found through `MLOPS_TEST_KUBERNETES_SCHEMAS`), and the CRDs of KServe
//! and Kubeflow Trainer per release (vendored in `crds/`, run as structural
//! schemas, [`structural`]). The same schemas tell server-side apply how to
//! merge lists ([`ListType`]), and [`admission`] holds the webhooks' rules.
//! The fake API server of the end-to-end tests and the manifest snapshot
//! tests both use this crate; `mlops` itself never links it.

pub mod admission;
pub mod structural;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value as Json};

/// The oldest and the newest Kubernetes minor the provider's objects must
/// pass. Native sidecar containers (an init container with
/// `restartPolicy: Always`), which runs use, are on by default from 1.29.
pub const KUBERNETES_MINORS: &[&str] = &["1.30", "1.37"];
/// KServe releases whose InferenceService CRD the objects must pass.
pub const KSERVE_RELEASES: &[&str] = &["v0.15.0", "main"];
/// Kubeflow Trainer releases whose CRDs the objects must pass.
pub const TRAINER_RELEASES: &[&str] = &["v2.0.0", "v2.3.0", "main"];

/// The environment variable naming the `kubernetes-json-schema` folder of
/// the `kubernetes-validate` package (`scripts/test.sh` exports it).
pub const SCHEMAS_VARIABLE: &str = "MLOPS_TEST_KUBERNETES_SCHEMAS";

/// Which versions of Kubernetes and of the add-ons a cluster runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// A minor: `1.33`.
    pub kubernetes: String,
    pub kserve: String,
    pub trainer: String,
}

impl Default for Versions {
    /// The newest of each.
    fn default() -> Versions {
        Versions {
            kubernetes: KUBERNETES_MINORS[KUBERNETES_MINORS.len() - 1].to_owned(),
            kserve: KSERVE_RELEASES[KSERVE_RELEASES.len() - 1].to_owned(),
            trainer: TRAINER_RELEASES[TRAINER_RELEASES.len() - 1].to_owned(),
        }
    }
}

impl std::fmt::Display for Versions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Kubernetes {}, KServe {}, Trainer {}", self.kubernetes, self.kserve, self.trainer)
    }
}

/// Every combination worth checking an object against: each Kubernetes
/// minor, each KServe release and each Trainer release at least once.
pub fn every_version() -> Vec<Versions> {
    let mut all = Vec::new();
    for kubernetes in KUBERNETES_MINORS {
        for kserve in KSERVE_RELEASES {
            for trainer in TRAINER_RELEASES {
                all.push(Versions { kubernetes: (*kubernetes).to_owned(), kserve: (*kserve).to_owned(), trainer: (*trainer).to_owned() });
            }
        }
    }
    all
}

/// The built-in schemas' folder, which the test command installs. Without
/// it a test fails saying so, unless `MLOPS_TEST_WITHOUT_SERVERS=1` (the
/// documented switch for running the tests without what `scripts/test.sh`
/// installs) selects the built-in kinds' checks out: then `None`, with a
/// note.
pub fn builtin_directory() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(SCHEMAS_VARIABLE).map(PathBuf::from).filter(|path| path.is_dir()) {
        return Some(path);
    }
    if std::env::var_os("MLOPS_TEST_WITHOUT_SERVERS").is_some_and(|switch| switch == "1") {
        eprintln!("NOTE: {SCHEMAS_VARIABLE} is not set and MLOPS_TEST_WITHOUT_SERVERS=1: the built-in kinds are not checked");
        return None;
    }
    panic!("{SCHEMAS_VARIABLE} is not set: run the tests with ./scripts/test.sh, which installs the Kubernetes schemas, or set MLOPS_TEST_WITHOUT_SERVERS=1")
}

/// What a schema says about one field of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `.spec.trainer.numNodes`, `.spec.containers[0].env[1]`
    pub path: String,
    pub message: String,
    /// The field is not declared in the schema: what server-side apply
    /// answers with 500 "field not declared in schema".
    pub unknown_field: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.path, self.message)
    }
}

/// How server-side apply merges a list (`x-kubernetes-list-type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Items are keyed by these fields and merged item by item.
    Map(Vec<String>),
    /// Scalars, merged as a set.
    Set,
    /// Replaced as a whole.
    Atomic,
}

/// A kind the cluster serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl KindInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

struct KindSchema {
    info: KindInfo,
    /// How the kind is validated: `None` for a built-in kind whose schemas
    /// were not installed.
    check: Option<Check>,
    /// The schema as published, for list types.
    raw: Json,
    /// The built-in kinds' shared definitions, which `raw` refers into.
    definitions: Option<Arc<Json>>,
}

enum Check {
    /// One of the built-in kinds, all checked by [`Schemas::builtin`].
    BuiltIn,
    /// A CRD's converted schema, compiled the first time it is needed.
    Custom(Json, Box<OnceLock<Result<jsonschema::Validator, String>>>),
}

/// The schemas of one cluster's kinds.
pub struct Schemas {
    pub versions: Versions,
    kinds: Vec<KindSchema>,
    /// One validator for every built-in kind (it picks the kind's schema
    /// by `apiVersion` and `kind`): the definitions they share, a few MB,
    /// are compiled once.
    builtin: Option<jsonschema::Validator>,
}

/// The built-in kinds the provider writes and reads, with the file the
/// schema package names them by.
const BUILT_IN: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "Pod", "pods", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "Namespace", "namespaces", false),
    ("apps", "v1", "Deployment", "deployments", true),
    ("batch", "v1", "Job", "jobs", true),
    ("batch", "v1", "CronJob", "cronjobs", true),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true),
];

/// The vendored CRDs: file stem prefix, plural, release family, whether
/// namespaced.
const CUSTOM: &[(&str, &str, &str, bool)] = &[
    ("inferenceservice-kserve", "inferenceservices", "kserve", true),
    ("trainjob-trainer", "trainjobs", "trainer", true),
    ("trainingruntime-trainer", "trainingruntimes", "trainer", true),
    ("clustertrainingruntime-trainer", "clustertrainingruntimes", "trainer", false),
];

fn crd_directory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds")
}

fn read_gzip_json(path: &Path) -> Result<Json, String> {
    let file = std::fs::File::open(path).map_err(|error| format!("cannot open {}: {error}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("{} is not JSON: {error}", path.display()))
}

impl Schemas {
    /// The schemas of a cluster running `versions`, the built-in kinds' from
    /// `builtin` (the `kubernetes-json-schema` folder) when given.
    pub fn load(versions: &Versions, builtin: Option<&Path>) -> Result<Schemas, String> {
        let mut kinds = Vec::new();
        let folder = builtin.map(|folder| folder.join(format!("v{}.0-local-strict", versions.kubernetes)));
        let definitions = match &folder {
            Some(folder) => {
                let path = folder.join("_definitions.json");
                let text = std::fs::read_to_string(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
                Some(Arc::new(serde_json::from_str::<Json>(&text).map_err(|error| format!("{}: {error}", path.display()))?))
            }
            None => None,
        };
        let mut dispatch = Vec::new();
        for (group, version, kind, plural, namespaced) in BUILT_IN {
            let info = KindInfo {
                group: (*group).to_owned(),
                version: (*version).to_owned(),
                kind: (*kind).to_owned(),
                plural: (*plural).to_owned(),
                namespaced: *namespaced,
            };
            let raw = match &folder {
                Some(folder) => {
                    let file_group = group.split('.').next().filter(|group| !group.is_empty());
                    let file = match file_group {
                        Some(group) => format!("{}-{group}-{version}.json", kind.to_lowercase()),
                        None => format!("{}-{version}.json", kind.to_lowercase()),
                    };
                    let path = folder.join(file);
                    let text = std::fs::read_to_string(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
                    let schema: Json = serde_json::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
                    // The kind's own schema refers into the shared definitions.
                    let mut branch = schema.clone();
                    if let Some(entries) = branch.as_object_mut() {
                        entries.remove("$id");
                        entries.remove("$schema");
                    }
                    dispatch.push(json!({
                        "if": { "properties": { "apiVersion": { "const": info.api_version() }, "kind": { "const": kind } } },
                        "then": branch
                    }));
                    schema
                }
                None => Json::Null,
            };
            let check = folder.as_ref().map(|_| Check::BuiltIn);
            kinds.push(KindSchema { info, check, raw, definitions: definitions.clone() });
        }
        let builtin = match &definitions {
            Some(definitions) => {
                let resource = jsonschema::Resource::from_contents((**definitions).clone())
                    .map_err(|error| format!("the definitions of Kubernetes {}: {error}", versions.kubernetes))?;
                let root = json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "$id": "https://kubernetes.io/api/mlops-built-in-kinds",
                    "allOf": dispatch
                });
                Some(
                    jsonschema::options()
                        .with_resource("https://kubernetes.io/api/_definitions.json", resource)
                        .build(&root)
                        .map_err(|error| format!("the built-in kinds of Kubernetes {}: {error}", versions.kubernetes))?,
                )
            }
            None => None,
        };
        for (stem, plural, family, namespaced) in CUSTOM {
            let release = if *family == "kserve" { &versions.kserve } else { &versions.trainer };
            let crd = read_gzip_json(&crd_directory().join(format!("{stem}-{release}.json.gz")))?;
            let group = crd["group"].as_str().unwrap_or_default().to_owned();
            let kind = crd["kind"].as_str().unwrap_or_default().to_owned();
            for (version, entry) in crd["versions"].as_object().into_iter().flatten() {
                if entry["served"] != json!(true) {
                    continue;
                }
                let raw = entry["schema"].clone();
                kinds.push(KindSchema {
                    info: KindInfo {
                        group: group.clone(),
                        version: version.clone(),
                        kind: kind.clone(),
                        plural: (*plural).to_owned(),
                        namespaced: *namespaced,
                    },
                    check: Some(Check::Custom(structural::to_json_schema(&raw), Box::default())),
                    raw,
                    definitions: None,
                });
            }
        }
        Ok(Schemas { versions: versions.clone(), kinds, builtin })
    }

    /// Every kind, built-in and custom.
    pub fn kinds(&self) -> Vec<KindInfo> {
        self.kinds.iter().map(|kind| kind.info.clone()).collect()
    }

    /// Whether the built-in kinds are checked (their schemas were found).
    pub fn checks_built_in_kinds(&self) -> bool {
        self.builtin.is_some()
    }

    fn find(&self, api_version: &str, kind: &str) -> Option<&KindSchema> {
        self.kinds.iter().find(|entry| entry.info.api_version() == api_version && entry.info.kind == kind)
    }

    pub fn kind_info(&self, api_version: &str, kind: &str) -> Option<KindInfo> {
        self.find(api_version, kind).map(|entry| entry.info.clone())
    }

    /// What the schema of the object's kind finds wrong with it; nothing for
    /// a valid object, and for a built-in kind whose schemas are missing.
    pub fn validate(&self, object: &Json) -> Vec<Problem> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let Some(entry) = self.find(api_version, kind) else {
            return vec![Problem {
                path: ".".into(),
                message: format!("no kind {kind} in {api_version} on a cluster with {}", self.versions),
                unknown_field: false,
            }];
        };
        let validator = match &entry.check {
            None => return Vec::new(),
            Some(Check::BuiltIn) => match &self.builtin {
                Some(validator) => validator,
                None => return Vec::new(),
            },
            Some(Check::Custom(schema, compiled)) => {
                let compiled = compiled.get_or_init(|| {
                    jsonschema::options()
                        .with_draft(jsonschema::Draft::Draft202012)
                        .build(schema)
                        .map_err(|error| format!("the {kind} CRD of {}: {error}", self.versions))
                });
                match compiled {
                    Ok(validator) => validator,
                    Err(message) => return vec![Problem { path: ".".into(), message: message.clone(), unknown_field: false }],
                }
            }
        };
        let mut problems: Vec<Problem> = validator
            .iter_errors(object)
            .flat_map(|error| {
                let path = dotted_path(&error.instance_path.to_string());
                match &error.kind {
                    jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
                        .iter()
                        .map(|field| Problem {
                            path: format!("{}.{field}", if path == "." { "" } else { &path }),
                            message: "field not declared in schema".into(),
                            unknown_field: true,
                        })
                        .collect::<Vec<_>>(),
                    _ => vec![Problem { path, message: error.to_string(), unknown_field: false }],
                }
            })
            .collect();
        problems.sort_by(|left, right| left.path.cmp(&right.path));
        problems.dedup();
        problems
    }

    /// How server-side apply merges the list at `field_path` (field names
    /// from the object's root; list items are stepped through) of a kind.
    pub fn list_type(&self, api_version: &str, kind: &str, field_path: &[&str]) -> ListType {
        let Some(entry) = self.find(api_version, kind) else { return ListType::Atomic };
        let resolve = |node: &Json| -> Json {
            let mut node = node.clone();
            for _ in 0..32 {
                let Some(reference) = node.get("$ref").and_then(Json::as_str) else { break };
                let Some(name) = reference.rsplit('/').next() else { break };
                match entry.definitions.as_ref().and_then(|definitions| definitions["$defs"].get(name)) {
                    Some(found) => node = found.clone(),
                    None => break,
                }
            }
            node
        };
        let mut node = resolve(&entry.raw);
        for field in field_path {
            node = resolve(&node);
            if is_array(&node) {
                node = resolve(&node["items"]);
            }
            match node.pointer(&format!("/properties/{field}")) {
                Some(next) => node = resolve(next),
                None => return ListType::Atomic,
            }
        }
        match node.get("x-kubernetes-list-type").and_then(Json::as_str) {
            Some("map") => ListType::Map(
                node["x-kubernetes-list-map-keys"].as_array().into_iter().flatten().filter_map(Json::as_str).map(str::to_owned).collect(),
            ),
            Some("set") => ListType::Set,
            Some(_) => ListType::Atomic,
            // Lists the published schema leaves untyped merge by their
            // strategic merge key, as the API server does for built-ins.
            None => match node.get("x-kubernetes-patch-merge-key").and_then(Json::as_str) {
                Some(key) => ListType::Map(vec![key.to_owned()]),
                None => ListType::Atomic,
            },
        }
    }
}

fn is_array(node: &Json) -> bool {
    match &node["type"] {
        Json::String(kind) => kind == "array",
        Json::Array(kinds) => kinds.iter().any(|kind| kind == "array"),
        _ => false,
    }
}

/// `/spec/containers/0/env` -> `.spec.containers[0].env`.
fn dotted_path(pointer: &str) -> String {
    if pointer.is_empty() {
        return ".".into();
    }
    let mut path = String::new();
    for segment in pointer.trim_start_matches('/').split('/') {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.chars().all(|character| character.is_ascii_digit()) && !segment.is_empty() {
            path.push_str(&format!("[{segment}]"));
        } else {
            path.push('.');
            path.push_str(&segment);
        }
    }
    path
}

/// Every list in `object` with its field path, for checking that a list
/// the provider merges is keyed the way the schema says.
pub fn list_paths(object: &Json) -> BTreeMap<Vec<String>, usize> {
    fn walk(value: &Json, path: &mut Vec<String>, found: &mut BTreeMap<Vec<String>, usize>) {
        match value {
            Json::Object(entries) => {
                for (key, child) in entries {
                    path.push(key.clone());
                    walk(child, path, found);
                    path.pop();
                }
            }
            Json::Array(items) => {
                *found.entry(path.clone()).or_default() += items.len();
                for item in items {
                    walk(item, path, found);
                }
            }
            _ => {}
        }
    }
    let mut found = BTreeMap::new();
    walk(object, &mut Vec::new(), &mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemas(versions: &Versions) -> Schemas {
        Schemas::load(versions, builtin_directory().as_deref()).unwrap()
    }

    #[test]
    fn every_vendored_crd_loads_for_every_release() {
        for versions in every_version() {
            let schemas = schemas(&versions);
            for kind in ["InferenceService", "TrainJob", "TrainingRuntime", "ClusterTrainingRuntime"] {
                let info = schemas.kinds().into_iter().find(|info| info.kind == kind).unwrap_or_else(|| panic!("{kind} on {versions}"));
                // Validating compiles the schema: an empty spec is a readable problem, not a broken schema.
                let problems =
                    schemas.validate(&json!({ "apiVersion": info.api_version(), "kind": kind, "metadata": { "name": "x" }, "spec": {} }));
                assert!(problems.iter().all(|problem| problem.path != "."), "{kind} on {versions}: {problems:?}");
            }
        }
    }

    #[test]
    fn an_undeclared_field_of_a_custom_resource_is_named() {
        let versions = Versions { trainer: "v2.3.0".into(), ..Versions::default() };
        let problems = schemas(&versions).validate(&json!({
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "metadata": { "name": "run" },
            "spec": { "runtimeRef": { "name": "torch-distributed" }, "datasetConfig": { "storageUri": "s3://a/b" } }
        }));
        assert_eq!(
            problems,
            [Problem { path: ".spec.datasetConfig".into(), message: "field not declared in schema".into(), unknown_field: true }]
        );
    }

    #[test]
    fn custom_resources_are_checked_as_structural_schemas() {
        let schemas = schemas(&Versions::default());
        let valid = json!({
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": { "name": "api", "annotations": { "anything": "goes" } },
            "spec": { "predictor": { "minReplicas": 1, "containers": [{ "name": "kserve-container", "image": "i",
                "resources": { "limits": { "cpu": "2", "memory": 1024 } } }] } }
        });
        assert_eq!(schemas.validate(&valid), []);
        let mut wrong_type = valid.clone();
        wrong_type["spec"]["predictor"]["minReplicas"] = json!("one");
        let problems = schemas.validate(&wrong_type);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, ".spec.predictor.minReplicas");
        assert!(!problems[0].unknown_field);
    }

    #[test]
    fn built_in_kinds_are_checked_strictly_with_their_list_keys() {
        let Some(folder) = builtin_directory() else { return };
        for minor in KUBERNETES_MINORS {
            let versions = Versions { kubernetes: (*minor).into(), ..Versions::default() };
            let schemas = Schemas::load(&versions, Some(&folder)).unwrap();
            assert!(schemas.checks_built_in_kinds());
            let problems = schemas.validate(&json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "x" },
                "spec": { "selector": { "matchLabels": { "a": "b" } }, "template": { "metadata": { "labels": { "a": "b" } },
                    "spec": { "containers": [{ "name": "c", "image": "i", "bogus": 1 }] } } }
            }));
            assert_eq!(
                problems,
                [Problem {
                    path: ".spec.template.spec.containers[0].bogus".into(),
                    message: "field not declared in schema".into(),
                    unknown_field: true
                }],
                "{minor}"
            );
            let container = ["spec", "template", "spec", "containers"];
            let list = |path: &[&str]| schemas.list_type("apps/v1", "Deployment", path);
            assert_eq!(list(&container), ListType::Map(vec!["name".into()]));
            assert_eq!(list(&[&container[..], &["ports"]].concat()), ListType::Map(vec!["containerPort".into(), "protocol".into()]));
            assert_eq!(list(&[&container[..], &["volumeMounts"]].concat()), ListType::Map(vec!["mountPath".into()]));
            assert_eq!(list(&[&container[..], &["args"]].concat()), ListType::Atomic);
        }
    }

    #[test]
    fn custom_resources_list_keys_come_from_their_crd() {
        let schemas = schemas(&Versions { trainer: "v2.3.0".into(), ..Versions::default() });
        assert_eq!(
            schemas.list_type("trainer.kubeflow.org/v1alpha1", "TrainJob", &["spec", "trainer", "env"]),
            ListType::Map(vec!["name".into()])
        );
    }
}
