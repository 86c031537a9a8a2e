//! A fake Kubernetes API server for the tests: plain HTTP/1.1 on loopback,
//! speaking enough of the real protocol that the real kube-rs client in the
//! provider runs unchanged.
//!
//! It covers API discovery (`/api`, `/apis`, `/api/v1`, `/apis/G/V`),
//! namespaced and cluster-scoped GET/LIST (with label selectors)/POST/PUT/
//! PATCH/DELETE, server-side apply (`application/apply-patch+yaml`, field
//! managers, managedFields, conflicts with another manager's fields unless
//! forced, lists merged by the schema's list-map keys, items an applier
//! drops removed), `resourceVersion` and `metadata.generation` (bumped only
//! when the spec changes), the `status` subresource (the only way to change
//! status), a Deployment's `scale` subresource, pod logs, and custom
//! resources (TrainJob, TrainingRuntime, InferenceService) when the test
//! installs their add-on.
//!
//! It refuses what a real cluster refuses: every write is checked against
//! the real schema of its kind for the cluster's versions (the official
//! strict schemas of the built-in kinds, the vendored KServe and Trainer
//! CRDs, from `mlops-kubernetes-conformance`), and answered as the API
//! server answers (500 "field not declared in schema" for server-side
//! apply, 422 for an invalid value); then the webhooks' admission rules run
//! (403 "admission webhook ... denied the request"). Like the real API
//! server it fills in defaults (`dnsPolicy`, `imagePullPolicy`,
//! `revisionHistoryLimit`, a Service's `clusterIP`, ...) and writes
//! quantities in canonical form, so the provider's normalisation is
//! exercised for real.
//!
//! Tests play the controllers: they write status through the status
//! subresource (over HTTP) to complete a Job or make a rollout ready.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use mlops_kubernetes_conformance::admission::{self, ClusterSettings};
use mlops_kubernetes_conformance::{ListType, Schemas, Versions};
use serde_json::{json, Value as Json};

/// A kind the fake serves.
#[derive(Debug, Clone)]
pub struct Kind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl Kind {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// What a test installs on the cluster besides Kubernetes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addon {
    /// KServe, with Knative Serving for its Serverless mode.
    KServe,
    /// Kubeflow Trainer v2 (TrainJob, TrainingRuntime, ClusterTrainingRuntime).
    Trainer,
}

/// How a fake cluster is set up.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub versions: Versions,
    pub addons: Vec<Addon>,
    pub settings: ClusterSettings,
}

/// Schemas load once per set of versions in a test binary: compiling them
/// is the slow part.
fn schemas_for(versions: &Versions) -> Arc<Schemas> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Schemas>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = versions.to_string();
    if let Some(found) = cache.lock().unwrap().get(&key) {
        return found.clone();
    }
    let builtin = mlops_kubernetes_conformance::builtin_directory();
    let loaded = Arc::new(Schemas::load(versions, builtin.as_deref()).expect("the Kubernetes schemas load"));
    cache.lock().unwrap().insert(key, loaded.clone());
    loaded
}

#[derive(Debug, Clone)]
struct Stored {
    object: Json,
    /// manager -> (operation, owned leaf paths)
    managers: BTreeMap<String, (String, BTreeSet<String>)>,
}

struct Store {
    kinds: Vec<Kind>,
    schemas: Arc<Schemas>,
    settings: ClusterSettings,
    /// (resource, namespace, name) -> object; see [`resource_name`]
    objects: BTreeMap<(String, String, String), Stored>,
    resource_version: u64,
    /// (namespace, pod, container) -> log text
    logs: BTreeMap<(String, String, String), String>,
    /// (verb, plural) the user may not do
    denied: BTreeSet<(String, String)>,
    /// "METHOD path" of every request, for tests that count calls
    requests: Vec<String>,
    /// (kind, webhook, message): a policy webhook (Kyverno, Gatekeeper)
    /// that refuses every write of the kind.
    policies: Vec<(String, String, String)>,
}

impl Store {
    fn resolve(&self, resource: &str) -> String {
        if resource.contains('.') {
            return resource.to_owned();
        }
        self.kinds.iter().find(|kind| kind.plural == resource).map(resource_name).unwrap_or_else(|| resource.to_owned())
    }
}

pub struct FakeKube {
    pub port: u16,
    store: Arc<Mutex<Store>>,
}

impl FakeKube {
    /// Starts a cluster of the newest versions with `addons` installed.
    pub fn start(addons: &[Addon]) -> FakeKube {
        FakeKube::start_with(Setup { addons: addons.to_vec(), ..Setup::default() })
    }

    pub fn start_with(setup: Setup) -> FakeKube {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let schemas = schemas_for(&setup.versions);
        let installed = |kind: &str| match kind {
            "InferenceService" => setup.addons.contains(&Addon::KServe),
            "TrainJob" | "TrainingRuntime" | "ClusterTrainingRuntime" => setup.addons.contains(&Addon::Trainer),
            _ => true,
        };
        let mut kinds: Vec<Kind> = schemas
            .kinds()
            .into_iter()
            .filter(|info| installed(&info.kind))
            .map(|info| Kind {
                group: info.group,
                version: info.version,
                kind: info.kind,
                plural: info.plural,
                namespaced: info.namespaced,
            })
            .collect();
        if setup.addons.contains(&Addon::KServe) {
            // Knative's Service, which KServe makes for a Serverless predictor
            // (its schema is not checked: only KServe's controller writes it).
            kinds.push(Kind {
                group: "serving.knative.dev".into(),
                version: "v1".into(),
                kind: "Service".into(),
                plural: "services".into(),
                namespaced: true,
            });
        }
        let store = Arc::new(Mutex::new(Store {
            kinds,
            schemas,
            settings: setup.settings,
            objects: BTreeMap::new(),
            resource_version: 0,
            logs: BTreeMap::new(),
            denied: BTreeSet::new(),
            requests: Vec::new(),
            policies: Vec::new(),
        }));
        let shared = store.clone();
        std::thread::spawn(move || {
            for connection in listener.incoming() {
                let Ok(connection) = connection else { continue };
                let store = shared.clone();
                std::thread::spawn(move || serve_connection(connection, store));
            }
        });
        FakeKube { port, store }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Writes a kubeconfig whose context `fake` points at this server.
    pub fn write_kubeconfig(&self, directory: &Path) -> PathBuf {
        let path = directory.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: default\nusers:\n- name: tester\n  user:\n    token: not-a-secret\n",
            self.url()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Makes every `verb` on `plural` answer 403 Forbidden, as RBAC would.
    pub fn deny(&self, verb: &str, plural: &str) {
        self.store.lock().unwrap().denied.insert((verb.to_owned(), plural.to_owned()));
    }

    /// Installs a policy webhook that refuses every write of `kind`.
    pub fn add_policy(&self, kind: &str, webhook: &str, message: &str) {
        self.store.lock().unwrap().policies.push((kind.to_owned(), webhook.to_owned(), message.to_owned()));
    }

    pub fn set_log(&self, namespace: &str, pod: &str, container: &str, text: &str) {
        self.store.lock().unwrap().logs.insert((namespace.into(), pod.into(), container.into()), text.into());
    }

    /// The stored object, as a GET would return it. `resource` is a plural
    /// (`jobs`, the core group's kind first) or `PLURAL.GROUP`.
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Json> {
        let store = self.store.lock().unwrap();
        let resource = store.resolve(resource);
        store.objects.get(&(resource, namespace.into(), name.into())).map(|stored| stored.object.clone())
    }

    /// Every object of a kind in a namespace.
    pub fn objects(&self, resource: &str, namespace: &str) -> Vec<Json> {
        let store = self.store.lock().unwrap();
        let resource = store.resolve(resource);
        store
            .objects
            .iter()
            .filter(|((stored_resource, stored_namespace, _), _)| *stored_resource == resource && stored_namespace == namespace)
            .map(|(_, stored)| stored.object.clone())
            .collect()
    }

    pub fn requests(&self) -> Vec<String> {
        self.store.lock().unwrap().requests.clone()
    }

    /// A request over HTTP, as a controller or kubectl would send it.
    pub fn send(&self, method: &str, path: &str, content_type: &str, body: &Json) -> (u16, Json) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let body = body.to_string();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        (status, serde_json::from_str(body).unwrap_or(Json::Null))
    }

    /// Writes `status` through the status subresource, as a controller does.
    pub fn write_status(&self, api_path: &str, status: Json) {
        let (code, body) = self.send(
            "PATCH",
            &format!("{api_path}/status?fieldManager=test-controller"),
            "application/merge-patch+json",
            &json!({ "status": status }),
        );
        assert_eq!(code, 200, "status write to {api_path} failed: {body}");
    }

    /// Creates a pod over HTTP, then gives it `status`, as the kubelet would.
    pub fn create_pod(&self, namespace: &str, pod: Json, status: Json) {
        let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
        let (code, body) =
            self.send("POST", &format!("/api/v1/namespaces/{namespace}/pods?fieldManager=kubelet"), "application/json", &pod);
        assert!(code == 201 || code == 200, "pod create failed: {body}");
        self.write_status(&format!("/api/v1/namespaces/{namespace}/pods/{name}"), status);
    }
}

fn status_body(code: u16, reason: &str, message: &str, details: Json) -> Json {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "details": details, "code": code })
}

struct Request {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: String,
    body: Vec<u8>,
    close: bool,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut content_length = 0;
    let mut content_type = String::new();
    let mut chunked = false;
    let mut close = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = value.trim().to_owned(),
                "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
                "connection" => close = value.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(content_length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key.to_owned(), percent_decode(value))
        })
        .collect();
    Some(Request { method, path: path.to_owned(), query, content_type, body, close })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                decoded.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                index += 3;
            }
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn serve_connection(stream: TcpStream, store: Arc<Mutex<Store>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let (code, content_type, body) = {
            let mut store = store.lock().unwrap();
            store.requests.push(format!("{} {}", request.method, request.path));
            handle(&mut store, &request)
        };
        let reason = match code {
            200 => "OK",
            201 => "Created",
            404 => "Not Found",
            409 => "Conflict",
            _ => "Status",
        };
        let response = format!("HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len());
        if writer.write_all(response.as_bytes()).and_then(|_| writer.write_all(body.as_bytes())).is_err() || request.close {
            return;
        }
    }
}

fn json_response(code: u16, body: Json) -> (u16, String, String) {
    (code, "application/json".to_owned(), body.to_string())
}

fn handle(store: &mut Store, request: &Request) -> (u16, String, String) {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => {
            let minor = store.schemas.versions.kubernetes.split('.').nth(1).unwrap_or("33").to_owned();
            json_response(200, json!({ "major": "1", "minor": minor, "gitVersion": format!("v1.{minor}.0-fake") }))
        }
        ["api"] => json_response(200, json!({ "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [] })),
        ["apis"] => {
            let mut groups: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            for kind in store.kinds.iter().filter(|kind| !kind.group.is_empty()) {
                groups.entry(&kind.group).or_default().insert(&kind.version);
            }
            let groups: Vec<Json> = groups
                .into_iter()
                .map(|(group, versions)| {
                    let versions: Vec<Json> = versions
                        .iter()
                        .map(|version| json!({ "groupVersion": format!("{group}/{version}"), "version": version }))
                        .collect();
                    json!({ "name": group, "versions": versions, "preferredVersion": versions[0] })
                })
                .collect();
            json_response(200, json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }))
        }
        ["api", version] => discovery(store, "", version),
        ["apis", group, version] => discovery(store, group, version),
        ["api", version, "namespaces", namespace, rest @ ..] if !rest.is_empty() => {
            resource_request(store, request, "", version, namespace, rest)
        }
        ["apis", group, version, "namespaces", namespace, rest @ ..] if !rest.is_empty() => {
            resource_request(store, request, group, version, namespace, rest)
        }
        // Cluster-scoped kinds (a ClusterTrainingRuntime).
        ["apis", group, version, rest @ ..] => resource_request(store, request, group, version, "", rest),
        _ => json_response(404, status_body(404, "NotFound", "the server could not find the requested resource", json!({}))),
    }
}

fn discovery(store: &Store, group: &str, version: &str) -> (u16, String, String) {
    let kinds: Vec<&Kind> = store.kinds.iter().filter(|kind| kind.group == group && kind.version == version).collect();
    if kinds.is_empty() {
        return json_response(404, status_body(404, "NotFound", "the server could not find the requested resource", json!({})));
    }
    let verbs = json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]);
    let mut resources = Vec::new();
    for kind in kinds {
        resources.push(json!({ "name": kind.plural, "singularName": kind.kind.to_lowercase(), "namespaced": kind.namespaced, "kind": kind.kind, "verbs": verbs }));
        resources.push(json!({ "name": format!("{}/status", kind.plural), "singularName": "", "namespaced": kind.namespaced, "kind": kind.kind, "verbs": ["get", "patch", "update"] }));
        if kind.kind == "Pod" {
            resources.push(json!({ "name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"] }));
        }
        if kind.kind == "Deployment" {
            resources.push(json!({ "name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"] }));
        }
    }
    let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    json_response(200, json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources }))
}

fn verb_of(method: &str, named: bool) -> &'static str {
    match (method, named) {
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => "unknown",
    }
}

/// How the store names a kind's objects: `jobs`, `trainjobs.trainer.kubeflow.org`.
fn resource_name(kind: &Kind) -> String {
    if kind.group.is_empty() {
        kind.plural.clone()
    } else {
        format!("{}.{}", kind.plural, kind.group)
    }
}

fn resource_request(
    store: &mut Store,
    request: &Request,
    group: &str,
    version: &str,
    namespace: &str,
    rest: &[&str],
) -> (u16, String, String) {
    let Some(plural) = rest.first() else {
        return json_response(404, status_body(404, "NotFound", "not found", json!({})));
    };
    let Some(kind) = store.kinds.iter().find(|kind| kind.group == group && kind.version == version && kind.plural == *plural).cloned()
    else {
        return json_response(404, status_body(404, "NotFound", "the server could not find the requested resource", json!({})));
    };
    if kind.namespaced == namespace.is_empty() {
        return json_response(404, status_body(404, "NotFound", "the server could not find the requested resource", json!({})));
    }
    let name = rest.get(1).copied();
    let subresource = rest.get(2).copied();
    let verb = verb_of(&request.method, name.is_some());
    if store.denied.contains(&(verb.to_owned(), kind.plural.to_owned())) {
        let group_text = if group.is_empty() { "\"\"".to_owned() } else { format!("\"{group}\"") };
        let message = format!(
            "{}{} is forbidden: User \"system:serviceaccount:ci:deployer\" cannot {verb} resource \"{}\" in API group {group_text} in the namespace \"{namespace}\"",
            kind.plural,
            if group.is_empty() { String::new() } else { format!(".{group}") },
            kind.plural
        );
        return json_response(
            403,
            status_body(403, "Forbidden", &message, json!({ "name": name.unwrap_or(""), "group": group, "kind": kind.plural })),
        );
    }
    let manager = request.query.get("fieldManager").cloned().unwrap_or_else(|| "unknown".to_owned());
    let resource = resource_name(&kind);
    let key = |name: &str| (resource.clone(), namespace.to_owned(), name.to_owned());
    match (request.method.as_str(), name, subresource) {
        ("GET", None, None) => {
            let selector: Vec<(String, String)> = request
                .query
                .get("labelSelector")
                .map(|selector| {
                    selector.split(',').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
                })
                .unwrap_or_default();
            let items: Vec<Json> = store
                .objects
                .iter()
                .filter(|((stored_resource, stored_namespace, _), _)| *stored_resource == resource && stored_namespace == namespace)
                .map(|(_, stored)| stored.object.clone())
                .filter(|object| {
                    selector.iter().all(|(label, value)| {
                        object.pointer("/metadata/labels").and_then(|labels| labels.get(label)).and_then(Json::as_str) == Some(value)
                    })
                })
                .collect();
            json_response(
                200,
                json!({ "kind": format!("{}List", kind.kind), "apiVersion": kind.api_version(), "metadata": { "resourceVersion": store.resource_version.to_string() }, "items": items }),
            )
        }
        ("GET", Some(name), None | Some("status")) => match store.objects.get(&key(name)) {
            Some(stored) => json_response(200, stored.object.clone()),
            None => not_found(&kind, name),
        },
        ("GET", Some(name), Some("scale")) if kind.kind == "Deployment" => match store.objects.get(&key(name)) {
            Some(stored) => json_response(200, scale_of(&stored.object)),
            None => not_found(&kind, name),
        },
        ("PATCH" | "PUT", Some(name), Some("scale")) if kind.kind == "Deployment" => {
            let Ok(body) = serde_json::from_slice::<Json>(&request.body) else { return bad_request("the body is not JSON") };
            let Some(replicas) = body.pointer("/spec/replicas").cloned() else { return bad_request("spec.replicas is required") };
            let Some(stored) = store.objects.get(&key(name)).cloned() else { return not_found(&kind, name) };
            let mut updated = stored.object.clone();
            updated["spec"]["replicas"] = replicas;
            let (code, content_type, body) = update(store, &kind, namespace, name, stored, updated, &manager, false);
            match serde_json::from_str::<Json>(&body) {
                Ok(object) if code == 200 => json_response(200, scale_of(&object)),
                _ => (code, content_type, body),
            }
        }
        ("GET", Some(name), Some("log")) => {
            let container = request.query.get("container").cloned().unwrap_or_default();
            if !store.objects.contains_key(&key(name)) {
                return not_found(&kind, name);
            }
            let text = store.logs.get(&(namespace.to_owned(), name.to_owned(), container)).cloned().unwrap_or_default();
            let tail: usize = request.query.get("tailLines").and_then(|lines| lines.parse().ok()).unwrap_or(usize::MAX);
            let lines: Vec<&str> = text.lines().collect();
            let kept = lines[lines.len().saturating_sub(tail)..].join("\n");
            (200, "text/plain".to_owned(), if kept.is_empty() { kept } else { kept + "\n" })
        }
        ("POST", None, None) => {
            let Ok(mut object) = serde_json::from_slice::<Json>(&request.body) else { return bad_request("the body is not JSON") };
            let Some(name) = object.pointer("/metadata/name").and_then(Json::as_str).map(str::to_owned) else {
                return bad_request("metadata.name is required");
            };
            if store.objects.contains_key(&key(&name)) {
                return json_response(
                    409,
                    status_body(
                        409,
                        "AlreadyExists",
                        &format!("{} \"{name}\" already exists", kind.plural),
                        json!({ "name": name, "kind": kind.plural }),
                    ),
                );
            }
            if !namespace.is_empty() {
                object["metadata"]["namespace"] = json!(namespace);
            }
            if let Err(refused) = admit(store, &kind, &object, WriteKind::Decode) {
                return refused;
            }
            let stored = create(store, &kind, namespace, object, &manager, "Update");
            json_response(201, stored)
        }
        ("PATCH", Some(name), None) if request.content_type.starts_with("application/apply-patch") => {
            let Ok(patch) = serde_yaml::from_slice::<Json>(&request.body) else { return bad_request("the apply patch is not YAML") };
            let force = request.query.get("force").is_some_and(|force| force == "true");
            server_side_apply(store, &kind, namespace, name, patch, &manager, force)
        }
        ("PATCH", Some(name), subresource @ (None | Some("status"))) => {
            let Ok(patch) = serde_json::from_slice::<Json>(&request.body) else { return bad_request("the patch is not JSON") };
            let Some(stored) = store.objects.get(&key(name)).cloned() else { return not_found(&kind, name) };
            let mut updated = stored.object.clone();
            merge_patch(&mut updated, &patch);
            update(store, &kind, namespace, name, stored, updated, &manager, subresource == Some("status"))
        }
        ("PUT", Some(name), subresource @ (None | Some("status"))) => {
            let Ok(object) = serde_json::from_slice::<Json>(&request.body) else { return bad_request("the body is not JSON") };
            let Some(stored) = store.objects.get(&key(name)).cloned() else { return not_found(&kind, name) };
            let sent_version = object.pointer("/metadata/resourceVersion").and_then(Json::as_str).unwrap_or("");
            let current_version = stored.object.pointer("/metadata/resourceVersion").and_then(Json::as_str).unwrap_or("");
            if !sent_version.is_empty() && sent_version != current_version {
                return json_response(
                    409,
                    status_body(409, "Conflict", &format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", kind.plural), json!({ "name": name })),
                );
            }
            update(store, &kind, namespace, name, stored, object, &manager, subresource == Some("status"))
        }
        ("DELETE", Some(name), None) => match store.objects.remove(&key(name)) {
            Some(stored) => {
                // Owned objects go too (background propagation, done at once here).
                let uid = stored.object.pointer("/metadata/uid").cloned();
                store.objects.retain(|_, other| {
                    !other
                        .object
                        .pointer("/metadata/ownerReferences")
                        .and_then(Json::as_array)
                        .is_some_and(|owners| owners.iter().any(|owner| owner.get("uid") == uid.as_ref()))
                });
                json_response(
                    200,
                    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": { "name": name, "kind": kind.plural } }),
                )
            }
            None => not_found(&kind, name),
        },
        _ => json_response(
            405,
            status_body(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", json!({})),
        ),
    }
}

/// A Deployment's `scale` subresource (autoscaling/v1 Scale).
fn scale_of(deployment: &Json) -> Json {
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": { "name": deployment["metadata"]["name"], "namespace": deployment["metadata"]["namespace"], "resourceVersion": deployment["metadata"]["resourceVersion"] },
        "spec": { "replicas": deployment["spec"]["replicas"] },
        "status": { "replicas": deployment.pointer("/status/replicas").cloned().unwrap_or(json!(0)) }
    })
}

/// How a write reached the server, which decides how a field the schema
/// does not declare is answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    /// Server-side apply: the patch is typed against the schema first.
    Apply,
    /// A create or update with a body (fieldValidation=Strict, as kubectl sends).
    Decode,
}

/// The schema, then the webhooks, as the API server runs them on a write.
fn admit(store: &Store, kind: &Kind, object: &Json, write: WriteKind) -> Result<(), (u16, String, String)> {
    let group_kind = if kind.group.is_empty() { kind.kind.clone() } else { format!("{}.{}", kind.kind, kind.group) };
    let name = object.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default();
    let mut checked = without_server_fields(object);
    checked["apiVersion"] = json!(kind.api_version());
    checked["kind"] = json!(kind.kind);
    if store.schemas.kind_info(&kind.api_version(), &kind.kind).is_some() {
        let problems = store.schemas.validate(&checked);
        if let Some(unknown) = problems.iter().find(|problem| problem.unknown_field) {
            return Err(match write {
                WriteKind::Apply => json_response(
                    500,
                    status_body(
                        500,
                        "InternalError",
                        &format!(
                            "failed to create typed patch object ({}, Kind={}): {}: field not declared in schema",
                            kind.api_version(),
                            kind.kind,
                            unknown.path
                        ),
                        json!({}),
                    ),
                ),
                WriteKind::Decode => json_response(
                    400,
                    status_body(
                        400,
                        "BadRequest",
                        &format!("strict decoding error: unknown field \"{}\"", unknown.path.trim_start_matches('.')),
                        json!({}),
                    ),
                ),
            });
        }
        if !problems.is_empty() {
            let causes: Vec<Json> =
                problems.iter().map(|problem| json!({ "reason": "FieldValueInvalid", "message": problem.message, "field": problem.path.trim_start_matches('.') })).collect();
            let list: Vec<String> = problems
                .iter()
                .map(|problem| format!("{}: Invalid value: {}", problem.path.trim_start_matches('.'), problem.message))
                .collect();
            return Err(json_response(
                422,
                status_body(
                    422,
                    "Invalid",
                    &format!("{group_kind} \"{name}\" is invalid: [{}]", list.join(", ")),
                    json!({ "name": name, "group": kind.group, "kind": kind.kind, "causes": causes }),
                ),
            ));
        }
    }
    if let Some((_, webhook, message)) = store.policies.iter().find(|(policy_kind, _, _)| *policy_kind == kind.kind) {
        let message = format!("admission webhook \"{webhook}\" denied the request: {message}");
        return Err(json_response(403, status_body(403, "Forbidden", &message, json!({ "name": name, "kind": kind.plural }))));
    }
    let exists = |api_version: &str, kind_name: &str, namespace: &str, object_name: &str| {
        store
            .kinds
            .iter()
            .filter(|candidate| candidate.api_version() == api_version && candidate.kind == kind_name)
            .any(|candidate| store.objects.contains_key(&(resource_name(candidate), namespace.to_owned(), object_name.to_owned())))
    };
    admission::review(&checked, &exists).map_err(|denial| {
        json_response(denial.code, status_body(denial.code, &denial.reason, &denial.message, json!({ "name": name, "kind": kind.plural })))
    })
}

/// The object as a client wrote it: without what the server keeps itself.
fn without_server_fields(object: &Json) -> Json {
    let mut copy = object.clone();
    if let Some(entries) = copy.as_object_mut() {
        entries.remove("status");
        if let Some(metadata) = entries.get_mut("metadata").and_then(Json::as_object_mut) {
            for field in ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"] {
                metadata.remove(field);
            }
        }
    }
    copy
}

fn not_found(kind: &Kind, name: &str) -> (u16, String, String) {
    let resource = if kind.group.is_empty() { kind.plural.to_owned() } else { format!("{}.{}", kind.plural, kind.group) };
    json_response(
        404,
        status_body(
            404,
            "NotFound",
            &format!("{resource} \"{name}\" not found"),
            json!({ "name": name, "group": kind.group, "kind": kind.plural }),
        ),
    )
}

fn bad_request(message: &str) -> (u16, String, String) {
    json_response(400, status_body(400, "BadRequest", message, json!({})))
}

/// The fake's clock as an RFC 3339 timestamp (whole seconds).
fn now() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let days = seconds / 86400;
    let (year, month, day) = civil_from_days(days as i64);
    let rest = seconds % 86400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The spec-like part of an object: what bumps `metadata.generation`.
fn generation_relevant(object: &Json) -> Json {
    let mut copy = object.clone();
    if let Some(entries) = copy.as_object_mut() {
        entries.remove("metadata");
        entries.remove("status");
    }
    copy
}

/// How the lists of a kind merge, from its schema.
struct Lists<'a> {
    schemas: &'a Schemas,
    api_version: String,
    kind: String,
}

impl Lists<'_> {
    fn of<'a>(store: &'a Store, kind: &Kind) -> Lists<'a> {
        Lists { schemas: &store.schemas, api_version: kind.api_version(), kind: kind.kind.clone() }
    }

    /// The list type at a field path; a kind without a schema (Knative's
    /// Service here) keys lists of named items by name, as its schema does.
    fn at(&self, fields: &[String], items: &[Json]) -> ListType {
        if self.schemas.kind_info(&self.api_version, &self.kind).is_some() {
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            return self.schemas.list_type(&self.api_version, &self.kind, &fields);
        }
        if !items.is_empty() && items.iter().all(|item| item.get("name").and_then(Json::as_str).is_some()) {
            ListType::Map(vec!["name".into()])
        } else {
            ListType::Atomic
        }
    }
}

/// A list item's key in the API server's notation: `name="server"`,
/// `containerPort=8080,protocol="TCP"`.
fn item_key(item: &Json, keys: &[String]) -> Option<String> {
    let parts: Vec<String> = keys
        .iter()
        .map(|key| {
            // The server defaults a port's protocol before it keys the item.
            let value = item.get(key).cloned().or_else(|| (key == "protocol").then(|| json!("TCP")))?;
            Some(format!("{key}={value}"))
        })
        .collect::<Option<_>>()?;
    Some(parts.join(","))
}

fn item_matches(item: &Json, key: &str, keys: &[String]) -> bool {
    item_key(item, keys).as_deref() == Some(key)
}

fn create(store: &mut Store, kind: &Kind, namespace: &str, mut object: Json, manager: &str, operation: &str) -> Json {
    store.resource_version += 1;
    let name = object.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default().to_owned();
    let mut paths = BTreeSet::new();
    leaf_paths(&Lists::of(store, kind), &without_identity(&object), &mut Vec::new(), "", &mut paths);
    let metadata = object["metadata"].as_object_mut().unwrap();
    if !namespace.is_empty() {
        metadata.insert("namespace".into(), json!(namespace));
    }
    metadata.insert("uid".into(), json!(format!("{:08x}-fake-{}", store.resource_version, name)));
    metadata.insert("resourceVersion".into(), json!(store.resource_version.to_string()));
    metadata.insert("generation".into(), json!(1));
    metadata.insert("creationTimestamp".into(), json!(now()));
    object["apiVersion"] = json!(kind.api_version());
    object["kind"] = json!(kind.kind);
    apply_defaults(kind, &mut object);
    let mut managers = BTreeMap::new();
    managers.insert(manager.to_owned(), (operation.to_owned(), paths));
    render_managed_fields(&mut object, &managers, kind);
    store.objects.insert((resource_name(kind), namespace.to_owned(), name), Stored { object: object.clone(), managers });
    object
}

#[allow(clippy::too_many_arguments)]
fn update(
    store: &mut Store,
    kind: &Kind,
    namespace: &str,
    name: &str,
    stored: Stored,
    mut updated: Json,
    manager: &str,
    status_only: bool,
) -> (u16, String, String) {
    // Through the main resource status cannot change; through /status only status can.
    if status_only {
        let status = updated.get("status").cloned();
        updated = stored.object.clone();
        match status {
            Some(status) => updated["status"] = status,
            None => {
                updated.as_object_mut().unwrap().remove("status");
            }
        }
    } else {
        match stored.object.get("status") {
            Some(status) => updated["status"] = status.clone(),
            None => {
                updated.as_object_mut().unwrap().remove("status");
            }
        }
        // Identity and bookkeeping are the server's.
        for field in ["uid", "resourceVersion", "generation", "creationTimestamp", "namespace", "name"] {
            if let Some(value) = stored.object.pointer(&format!("/metadata/{field}")) {
                updated["metadata"][field] = value.clone();
            }
        }
        apply_defaults(kind, &mut updated);
        if let Err(refused) = admit(store, kind, &updated, WriteKind::Decode) {
            return refused;
        }
    }
    let mut managers = stored.managers.clone();
    if !status_only {
        // An Update takes over every field it changed.
        let lists = Lists::of(store, kind);
        let mut after = BTreeSet::new();
        leaf_paths(&lists, &without_identity(&updated), &mut Vec::new(), "", &mut after);
        let changed: BTreeSet<String> =
            after.iter().filter(|path| value_at(&stored.object, path) != value_at(&updated, path)).cloned().collect();
        for (owner, (_, owned)) in managers.iter_mut() {
            if owner != manager {
                owned.retain(|path| !changed.contains(path));
            }
        }
        if !changed.is_empty() {
            let entry = managers.entry(manager.to_owned()).or_insert_with(|| ("Update".to_owned(), BTreeSet::new()));
            entry.1.extend(changed);
        }
        managers.retain(|_, (_, owned)| !owned.is_empty());
    }
    finish_write(store, kind, namespace, name, &stored, updated, managers)
}

fn finish_write(
    store: &mut Store,
    kind: &Kind,
    namespace: &str,
    name: &str,
    stored: &Stored,
    mut updated: Json,
    managers: BTreeMap<String, (String, BTreeSet<String>)>,
) -> (u16, String, String) {
    if updated == stored.object && managers == stored.managers {
        return json_response(200, updated);
    }
    store.resource_version += 1;
    let generation = stored.object.pointer("/metadata/generation").and_then(Json::as_i64).unwrap_or(1);
    let bumped = if generation_relevant(&updated) != generation_relevant(&stored.object) { generation + 1 } else { generation };
    updated["metadata"]["generation"] = json!(bumped);
    updated["metadata"]["resourceVersion"] = json!(store.resource_version.to_string());
    render_managed_fields(&mut updated, &managers, kind);
    store.objects.insert((resource_name(kind), namespace.to_owned(), name.to_owned()), Stored { object: updated.clone(), managers });
    json_response(200, updated)
}

fn server_side_apply(
    store: &mut Store,
    kind: &Kind,
    namespace: &str,
    name: &str,
    mut patch: Json,
    manager: &str,
    force: bool,
) -> (u16, String, String) {
    if patch.pointer("/metadata/name").and_then(Json::as_str) != Some(name) {
        return bad_request("metadata.name in the apply patch must match the URL");
    }
    if !namespace.is_empty() {
        patch["metadata"]["namespace"] = json!(namespace);
    }
    // The patch is typed against the schema before anything else.
    if let Err(refused) = admit(store, kind, &patch, WriteKind::Apply) {
        let code = refused.0;
        // Only an undeclared field is refused this early; the rest is
        // checked on the merged object, as the server does.
        if code == 500 {
            return refused;
        }
    }
    let key = (resource_name(kind), namespace.to_owned(), name.to_owned());
    let Some(stored) = store.objects.get(&key).cloned() else {
        if let Err(refused) = admit(store, kind, &patch, WriteKind::Apply) {
            return refused;
        }
        let object = create(store, kind, namespace, patch, manager, "Apply");
        return json_response(201, object);
    };
    let lists = Lists::of(store, kind);
    let mut applied_paths = BTreeSet::new();
    leaf_paths(&lists, &without_identity(&patch), &mut Vec::new(), "", &mut applied_paths);
    let mut conflicts = Vec::new();
    for path in &applied_paths {
        for (owner, (_, owned)) in &stored.managers {
            if owner != manager && owned.contains(path) && value_at(&stored.object, path) != value_at(&patch, path) {
                conflicts.push((owner.clone(), path.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let causes: Vec<Json> = conflicts
            .iter()
            .map(|(owner, path)| json!({ "reason": "FieldManagerConflict", "message": format!("conflict with \"{owner}\" using {}", kind.api_version()), "field": path }))
            .collect();
        let message = format!(
            "Apply failed with {} conflict{}: {}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            conflicts
                .iter()
                .map(|(owner, path)| format!("conflict with \"{owner}\" using {}: {path}", kind.api_version()))
                .collect::<Vec<_>>()
                .join("\n")
        );
        return json_response(409, status_body(409, "Conflict", &message, json!({ "causes": causes })));
    }
    let mut managers = stored.managers.clone();
    for (owner, (_, owned)) in managers.iter_mut() {
        if owner != manager {
            owned.retain(|path| !(applied_paths.contains(path) && value_at(&stored.object, path) != value_at(&patch, path)));
        }
    }
    // Fields this manager applied before and no longer does are removed,
    // unless someone else also owns them; so are list items whose every
    // field was its alone.
    let previously: BTreeSet<String> = managers.get(manager).map(|(_, owned)| owned.clone()).unwrap_or_default();
    let mut updated = stored.object.clone();
    let others: BTreeSet<String> =
        managers.iter().filter(|(owner, _)| *owner != manager).flat_map(|(_, (_, owned))| owned.iter().cloned()).collect();
    for path in previously.difference(&applied_paths) {
        if !others.contains(path) {
            remove_at(&mut updated, path);
        }
    }
    remove_emptied_items(&mut updated, &previously, &applied_paths, &others);
    merge_apply(&lists, &mut updated, &patch, &mut Vec::new());
    apply_defaults(kind, &mut updated);
    if let Err(refused) = admit(store, kind, &updated, WriteKind::Apply) {
        return refused;
    }
    managers.insert(manager.to_owned(), ("Apply".to_owned(), applied_paths));
    managers.retain(|_, (_, owned)| !owned.is_empty());
    finish_write(store, kind, namespace, name, &stored, updated, managers)
}

/// Removes the keyed list items the applier dropped: those under a key
/// prefix it owned before, owns no longer, and nobody else owns a field of.
fn remove_emptied_items(object: &mut Json, previously: &BTreeSet<String>, now: &BTreeSet<String>, others: &BTreeSet<String>) {
    let item_prefix = |path: &str| -> Vec<String> {
        let segments = path_segments(path);
        (1..=segments.len())
            .filter(|end| segments[end - 1].starts_with('['))
            .map(|end| {
                segments[..end]
                    .iter()
                    .map(|segment| if segment.starts_with('[') { segment.clone() } else { format!(".{segment}") })
                    .collect()
            })
            .collect()
    };
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    for path in previously {
        for prefix in item_prefix(path) {
            let still = now.iter().chain(others.iter()).any(|other| other.starts_with(&prefix));
            if !still {
                dropped.insert(prefix);
            }
        }
    }
    for prefix in dropped.iter().rev() {
        remove_at(object, prefix);
    }
}

/// The object without what is not a field: apiVersion, kind, and the
/// server's own metadata.
fn without_identity(object: &Json) -> Json {
    let mut copy = object.clone();
    if let Some(entries) = copy.as_object_mut() {
        entries.remove("apiVersion");
        entries.remove("kind");
        entries.remove("status");
        if let Some(metadata) = entries.get_mut("metadata").and_then(Json::as_object_mut) {
            for field in ["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"] {
                metadata.remove(field);
            }
        }
    }
    copy
}

/// Leaf paths in the API server's notation: `.spec.replicas`,
/// `.spec.template.spec.containers[name="server"].ports[containerPort=8080,protocol="TCP"].containerPort`.
/// Lists are keyed as the schema says; atomic lists are one leaf.
fn leaf_paths(lists: &Lists<'_>, value: &Json, fields: &mut Vec<String>, prefix: &str, paths: &mut BTreeSet<String>) {
    match value {
        Json::Object(entries) if !entries.is_empty() => {
            for (key, value) in entries {
                fields.push(key.clone());
                leaf_paths(lists, value, fields, &format!("{prefix}.{key}"), paths);
                fields.pop();
            }
        }
        Json::Array(items) if !items.is_empty() => match lists.at(fields, items) {
            ListType::Map(keys) => {
                for item in items {
                    match item_key(item, &keys) {
                        Some(key) => leaf_paths(lists, item, fields, &format!("{prefix}[{key}]"), paths),
                        None => {
                            paths.insert(prefix.to_owned());
                        }
                    }
                }
            }
            _ => {
                paths.insert(prefix.to_owned());
            }
        },
        _ => {
            paths.insert(prefix.to_owned());
        }
    }
}

/// `.a.b[name="x"].c` -> `a`, `b`, `[name="x"]`, `c`.
fn path_segments(path: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut in_brackets = false;
    let mut in_quotes = false;
    for character in path.chars() {
        match character {
            '"' if in_brackets => {
                in_quotes = !in_quotes;
                current.push(character);
            }
            '.' if !in_brackets => {
                if !current.is_empty() {
                    segments.push(std::mem::take(&mut current));
                }
            }
            '[' if !in_brackets => {
                if !current.is_empty() {
                    segments.push(std::mem::take(&mut current));
                }
                in_brackets = true;
                current.push('[');
            }
            ']' if in_brackets && !in_quotes => {
                current.push(']');
                segments.push(std::mem::take(&mut current));
                in_brackets = false;
            }
            other => current.push(other),
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

/// `[containerPort=8080,protocol="TCP"]` -> the item that has those values.
fn find_item(items: &[Json], segment: &str) -> Option<usize> {
    let inside = segment.strip_prefix('[')?.strip_suffix(']')?;
    let pairs = split_key(inside);
    items.iter().position(|item| {
        pairs.iter().all(|(key, value)| {
            let found = item.get(key).cloned().or_else(|| (key == "protocol").then(|| json!("TCP")));
            found.as_ref() == Some(value)
        })
    })
}

fn split_key(inside: &str) -> Vec<(String, Json)> {
    let mut pairs = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for character in inside.chars().chain(std::iter::once(',')) {
        match character {
            '"' => {
                in_quotes = !in_quotes;
                current.push(character);
            }
            ',' if !in_quotes => {
                if let Some((key, value)) = current.split_once('=') {
                    pairs.push((key.to_owned(), serde_json::from_str(value).unwrap_or(Json::String(value.to_owned()))));
                }
                current.clear();
            }
            other => current.push(other),
        }
    }
    pairs
}

fn value_at<'a>(object: &'a Json, path: &str) -> Option<&'a Json> {
    let mut current = object;
    for segment in path_segments(path) {
        if segment.starts_with('[') {
            let items = current.as_array()?;
            current = &items[find_item(items, &segment)?];
        } else {
            current = current.get(&segment)?;
        }
    }
    Some(current)
}

fn remove_at(object: &mut Json, path: &str) {
    let segments = path_segments(path);
    let Some((last, parents)) = segments.split_last() else { return };
    let mut current = object;
    for segment in parents {
        let next = if segment.starts_with('[') {
            let Some(items) = current.as_array_mut() else { return };
            let Some(index) = find_item(items, segment) else { return };
            &mut items[index]
        } else {
            let Some(next) = current.get_mut(segment) else { return };
            next
        };
        current = next;
    }
    if last.starts_with('[') {
        if let Some(items) = current.as_array_mut() {
            if let Some(index) = find_item(items, last) {
                items.remove(index);
            }
        }
    } else if let Some(entries) = current.as_object_mut() {
        entries.remove(last);
    }
}

/// Server-side apply's merge: objects merge key by key, keyed lists merge
/// item by item, other lists are replaced.
fn merge_apply(lists: &Lists<'_>, live: &mut Json, patch: &Json, fields: &mut Vec<String>) {
    match (live, patch) {
        (Json::Object(live), Json::Object(patch)) => {
            for (key, value) in patch {
                fields.push(key.clone());
                match live.get_mut(key) {
                    Some(existing) => merge_apply(lists, existing, value, fields),
                    None => {
                        live.insert(key.clone(), value.clone());
                    }
                }
                fields.pop();
            }
        }
        (Json::Array(live), Json::Array(patch)) => match lists.at(fields, patch) {
            ListType::Map(keys) if patch.iter().all(|item| item_key(item, &keys).is_some()) => {
                for item in patch {
                    let key = item_key(item, &keys).unwrap_or_default();
                    match live.iter_mut().find(|existing| item_matches(existing, &key, &keys)) {
                        Some(existing) => merge_apply(lists, existing, item, fields),
                        None => live.push(item.clone()),
                    }
                }
            }
            _ => *live = patch.clone(),
        },
        (live, patch) => *live = patch.clone(),
    }
}

/// JSON merge patch (RFC 7386).
fn merge_patch(target: &mut Json, patch: &Json) {
    match patch {
        Json::Object(entries) => {
            if !target.is_object() {
                *target = json!({});
            }
            let object = target.as_object_mut().unwrap();
            for (key, value) in entries {
                if value.is_null() {
                    object.remove(key);
                } else {
                    merge_patch(object.entry(key.clone()).or_insert(Json::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn render_managed_fields(object: &mut Json, managers: &BTreeMap<String, (String, BTreeSet<String>)>, kind: &Kind) {
    let entries: Vec<Json> = managers
        .iter()
        .map(|(manager, (operation, paths))| {
            let mut fields = json!({});
            for path in paths {
                let mut current = &mut fields;
                for segment in path_segments(path) {
                    let key = match segment.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
                        Some(inside) => {
                            let pairs: serde_json::Map<String, Json> = split_key(inside).into_iter().collect();
                            format!("k:{}", Json::Object(pairs))
                        }
                        None => format!("f:{segment}"),
                    };
                    current = current.as_object_mut().unwrap().entry(key).or_insert_with(|| json!({}));
                }
            }
            json!({ "manager": manager, "operation": operation, "apiVersion": kind.api_version(), "time": now(), "fieldsType": "FieldsV1", "fieldsV1": fields })
        })
        .collect();
    object["metadata"]["managedFields"] = Json::Array(entries);
}

/// Canonical quantity spelling, as the API server stores it: `1024Mi` -> `1Gi`, `2000m` -> `2`.
fn canonical_quantity(text: &str) -> String {
    let binary = [("Ei", 6), ("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1)];
    for (suffix, power) in binary {
        if let Some(number) = text.strip_suffix(suffix).and_then(|number| number.parse::<u64>().ok()) {
            let mut value = number * 1024u64.pow(power);
            for (candidate, candidate_power) in binary {
                let unit = 1024u64.pow(candidate_power);
                if value % unit == 0 {
                    value /= unit;
                    return format!("{value}{candidate}");
                }
            }
        }
    }
    if let Some(milli) = text.strip_suffix('m').and_then(|number| number.parse::<u64>().ok()) {
        if milli % 1000 == 0 {
            return (milli / 1000).to_string();
        }
    }
    text.to_owned()
}

fn canonical_resources(container: &mut Json) {
    for section in ["limits", "requests"] {
        if let Some(quantities) = container.pointer_mut(&format!("/resources/{section}")).and_then(Json::as_object_mut) {
            for value in quantities.values_mut() {
                if let Some(text) = value.as_str() {
                    *value = json!(canonical_quantity(text));
                }
            }
        }
    }
}

fn pod_spec_defaults(spec: &mut Json) {
    let Some(entries) = spec.as_object_mut() else { return };
    entries.entry("restartPolicy").or_insert(json!("Always"));
    entries.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    entries.entry("schedulerName").or_insert(json!("default-scheduler"));
    entries.entry("securityContext").or_insert(json!({}));
    entries.entry("terminationGracePeriodSeconds").or_insert(json!(30));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = entries.get_mut(list).and_then(Json::as_array_mut) {
            for container in containers {
                if let Some(container_entries) = container.as_object_mut() {
                    container_entries.entry("imagePullPolicy").or_insert(json!("IfNotPresent"));
                    container_entries.entry("terminationMessagePath").or_insert(json!("/dev/termination-log"));
                    container_entries.entry("terminationMessagePolicy").or_insert(json!("File"));
                    container_entries.entry("resources").or_insert(json!({}));
                }
                canonical_resources(container);
            }
        }
    }
}

/// The defaults the real API server fills in, so that a provider that
/// compared whole objects would see drift after every apply.
fn apply_defaults(kind: &Kind, object: &mut Json) {
    match kind.kind.as_str() {
        "Deployment" => {
            let spec = &mut object["spec"];
            if spec.get("replicas").is_none() {
                spec["replicas"] = json!(1);
            }
            spec.as_object_mut().map(|spec| spec.entry("revisionHistoryLimit").or_insert(json!(10)));
            spec.as_object_mut().map(|spec| spec.entry("progressDeadlineSeconds").or_insert(json!(600)));
            pod_spec_defaults(&mut object["spec"]["template"]["spec"]);
        }
        "Job" => {
            let spec = &mut object["spec"];
            spec.as_object_mut().map(|spec| spec.entry("completions").or_insert(json!(1)));
            spec.as_object_mut().map(|spec| spec.entry("parallelism").or_insert(json!(1)));
            spec.as_object_mut().map(|spec| spec.entry("completionMode").or_insert(json!("NonIndexed")));
            pod_spec_defaults(&mut object["spec"]["template"]["spec"]);
        }
        "CronJob" => {
            object["spec"].as_object_mut().map(|spec| spec.entry("suspend").or_insert(json!(false)));
            pod_spec_defaults(&mut object["spec"]["jobTemplate"]["spec"]["template"]["spec"]);
        }
        "Pod" => pod_spec_defaults(&mut object["spec"]),
        // The API server keeps a Secret's `stringData` only as base64 `data`.
        "Secret" => {
            if let Some(Json::Object(written)) = object.as_object_mut().and_then(|fields| fields.remove("stringData")) {
                let data = object.as_object_mut().unwrap().entry("data").or_insert(json!({}));
                for (key, value) in written {
                    data[key.as_str()] = json!(super::base64(value.as_str().unwrap_or_default().as_bytes()));
                }
            }
        }
        "Service" => {
            let spec = &mut object["spec"];
            spec.as_object_mut().map(|spec| spec.entry("type").or_insert(json!("ClusterIP")));
            spec.as_object_mut().map(|spec| spec.entry("sessionAffinity").or_insert(json!("None")));
            spec.as_object_mut().map(|spec| spec.entry("clusterIP").or_insert(json!("10.96.0.42")));
        }
        "InferenceService" => {
            if let Some(containers) = object.pointer_mut("/spec/predictor/containers").and_then(Json::as_array_mut) {
                for container in containers {
                    canonical_resources(container);
                }
            }
        }
        _ => {}
    }
}
