//! A fake Kubernetes API server for the tests: plain HTTP/1.1 on loopback,
//! speaking enough of the real protocol that the real kube-rs client in the
//! provider runs unchanged.
//!
//! It covers API discovery (`/api`, `/apis`, `/api/v1`, `/apis/G/V`),
//! namespaced GET/LIST (with label selectors)/POST/PUT/PATCH/DELETE,
//! server-side apply (`application/apply-patch+yaml`, field managers,
//! managedFields, conflicts with another manager's fields unless forced),
//! `resourceVersion` and `metadata.generation` (bumped only when the spec
//! changes), the `status` subresource (the only way to change status), pod
//! logs, and custom resources (TrainJob, InferenceService) when the test
//! installs their CRDs. Like the real API server it fills in defaults
//! (`dnsPolicy`, `imagePullPolicy`, `revisionHistoryLimit`, a Service's
//! `clusterIP`, ...) and writes quantities in canonical form, so the
//! provider's normalisation is exercised for real.
//!
//! Tests play the controllers: they write status through the status
//! subresource (over HTTP) to complete a Job or make a rollout ready.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value as Json};

/// A kind the fake serves.
#[derive(Debug, Clone)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl Kind {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

pub const BUILT_IN: &[Kind] = &[
    Kind { group: "", version: "v1", kind: "Pod", plural: "pods" },
    Kind { group: "", version: "v1", kind: "Service", plural: "services" },
    Kind { group: "", version: "v1", kind: "Namespace", plural: "namespaces" },
    Kind { group: "apps", version: "v1", kind: "Deployment", plural: "deployments" },
    Kind { group: "batch", version: "v1", kind: "Job", plural: "jobs" },
    Kind { group: "batch", version: "v1", kind: "CronJob", plural: "cronjobs" },
    Kind { group: "autoscaling", version: "v2", kind: "HorizontalPodAutoscaler", plural: "horizontalpodautoscalers" },
];
pub const TRAINJOB: Kind = Kind { group: "trainer.kubeflow.org", version: "v1alpha1", kind: "TrainJob", plural: "trainjobs" };
pub const INFERENCE_SERVICE: Kind =
    Kind { group: "serving.kserve.io", version: "v1beta1", kind: "InferenceService", plural: "inferenceservices" };

#[derive(Debug, Clone)]
struct Stored {
    object: Json,
    /// manager -> (operation, owned leaf paths)
    managers: BTreeMap<String, (String, BTreeSet<String>)>,
}

#[derive(Default)]
struct Store {
    kinds: Vec<Kind>,
    /// (plural, namespace, name) -> object
    objects: BTreeMap<(String, String, String), Stored>,
    resource_version: u64,
    /// (namespace, pod, container) -> log text
    logs: BTreeMap<(String, String, String), String>,
    /// (verb, plural) the user may not do
    denied: BTreeSet<(String, String)>,
    /// "METHOD path" of every request, for tests that count calls
    requests: Vec<String>,
}

pub struct FakeKube {
    pub port: u16,
    store: Arc<Mutex<Store>>,
}

impl FakeKube {
    /// Starts a server that serves the built-in kinds plus `custom` (the
    /// CRDs "installed" in this cluster).
    pub fn start(custom: &[Kind]) -> FakeKube {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let mut kinds = BUILT_IN.to_vec();
        kinds.extend_from_slice(custom);
        let store = Arc::new(Mutex::new(Store { kinds, ..Store::default() }));
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

    pub fn set_log(&self, namespace: &str, pod: &str, container: &str, text: &str) {
        self.store.lock().unwrap().logs.insert((namespace.into(), pod.into(), container.into()), text.into());
    }

    /// The stored object, as a GET would return it.
    pub fn object(&self, plural: &str, namespace: &str, name: &str) -> Option<Json> {
        self.store.lock().unwrap().objects.get(&(plural.into(), namespace.into(), name.into())).map(|stored| stored.object.clone())
    }

    /// Every object of a kind in a namespace.
    pub fn objects(&self, plural: &str, namespace: &str) -> Vec<Json> {
        self.store
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|((stored_plural, stored_namespace, _), _)| stored_plural == plural && stored_namespace == namespace)
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
        ["version"] => json_response(200, json!({ "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake" })),
        ["api"] => json_response(200, json!({ "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [] })),
        ["apis"] => {
            let mut groups: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            for kind in store.kinds.iter().filter(|kind| !kind.group.is_empty()) {
                groups.entry(kind.group).or_default().insert(kind.version);
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
        ["api", version, "namespaces", namespace, rest @ ..] => resource_request(store, request, "", version, namespace, rest),
        ["apis", group, version, "namespaces", namespace, rest @ ..] => resource_request(store, request, group, version, namespace, rest),
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
        resources.push(json!({ "name": kind.plural, "singularName": kind.kind.to_lowercase(), "namespaced": kind.kind != "Namespace", "kind": kind.kind, "verbs": verbs }));
        resources.push(json!({ "name": format!("{}/status", kind.plural), "singularName": "", "namespaced": true, "kind": kind.kind, "verbs": ["get", "patch", "update"] }));
        if kind.kind == "Pod" {
            resources.push(json!({ "name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"] }));
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
    let key = |name: &str| (kind.plural.to_owned(), namespace.to_owned(), name.to_owned());
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
                .filter(|((stored_plural, stored_namespace, _), _)| stored_plural == kind.plural && stored_namespace == namespace)
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
            let Ok(object) = serde_json::from_slice::<Json>(&request.body) else { return bad_request("the body is not JSON") };
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

fn create(store: &mut Store, kind: &Kind, namespace: &str, mut object: Json, manager: &str, operation: &str) -> Json {
    store.resource_version += 1;
    let name = object.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default().to_owned();
    let mut paths = BTreeSet::new();
    leaf_paths(&without_identity(&object), "", &mut paths);
    let metadata = object["metadata"].as_object_mut().unwrap();
    metadata.insert("namespace".into(), json!(namespace));
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
    store.objects.insert((kind.plural.to_owned(), namespace.to_owned(), name), Stored { object: object.clone(), managers });
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
    }
    let mut managers = stored.managers.clone();
    if !status_only {
        // An Update takes over every field it changed.
        let mut before = BTreeSet::new();
        let mut after = BTreeSet::new();
        leaf_paths(&without_identity(&stored.object), "", &mut before);
        leaf_paths(&without_identity(&updated), "", &mut after);
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
    store.objects.insert((kind.plural.to_owned(), namespace.to_owned(), name.to_owned()), Stored { object: updated.clone(), managers });
    json_response(200, updated)
}

fn server_side_apply(
    store: &mut Store,
    kind: &Kind,
    namespace: &str,
    name: &str,
    patch: Json,
    manager: &str,
    force: bool,
) -> (u16, String, String) {
    if patch.pointer("/metadata/name").and_then(Json::as_str) != Some(name) {
        return bad_request("metadata.name in the apply patch must match the URL");
    }
    let key = (kind.plural.to_owned(), namespace.to_owned(), name.to_owned());
    let Some(stored) = store.objects.get(&key).cloned() else {
        let object = create(store, kind, namespace, patch, manager, "Apply");
        return json_response(201, object);
    };
    let mut applied_paths = BTreeSet::new();
    leaf_paths(&without_identity(&patch), "", &mut applied_paths);
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
    // unless someone else also owns them.
    let previously: BTreeSet<String> = managers.get(manager).map(|(_, owned)| owned.clone()).unwrap_or_default();
    let mut updated = stored.object.clone();
    for path in previously.difference(&applied_paths) {
        let shared = managers.iter().any(|(owner, (_, owned))| owner != manager && owned.contains(path));
        if !shared && !path.contains('[') {
            remove_at(&mut updated, path);
        }
    }
    merge_apply(&mut updated, &patch);
    apply_defaults(kind, &mut updated);
    managers.insert(manager.to_owned(), ("Apply".to_owned(), applied_paths));
    managers.retain(|_, (_, owned)| !owned.is_empty());
    finish_write(store, kind, namespace, name, &stored, updated, managers)
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

fn is_named_list(items: &[Json]) -> bool {
    !items.is_empty() && items.iter().all(|item| item.get("name").and_then(Json::as_str).is_some())
}

/// Leaf paths in the API server's notation: `.spec.replicas`,
/// `.spec.template.spec.containers[name="server"].image`. Lists of named
/// items are keyed by name; other lists are atomic.
fn leaf_paths(value: &Json, prefix: &str, paths: &mut BTreeSet<String>) {
    match value {
        Json::Object(entries) if !entries.is_empty() => {
            for (key, value) in entries {
                leaf_paths(value, &format!("{prefix}.{key}"), paths);
            }
        }
        Json::Array(items) if is_named_list(items) => {
            for item in items {
                let name = item["name"].as_str().unwrap();
                leaf_paths(item, &format!("{prefix}[name=\"{name}\"]"), paths);
            }
        }
        _ => {
            paths.insert(prefix.to_owned());
        }
    }
}

fn path_segments(path: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut in_brackets = false;
    for character in path.chars() {
        match character {
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
            ']' if in_brackets => {
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

fn value_at<'a>(object: &'a Json, path: &str) -> Option<&'a Json> {
    let mut current = object;
    for segment in path_segments(path) {
        if let Some(name) = segment.strip_prefix("[name=\"").and_then(|rest| rest.strip_suffix("\"]")) {
            current = current.as_array()?.iter().find(|item| item.get("name").and_then(Json::as_str) == Some(name))?;
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
        let Some(next) = current.get_mut(segment) else { return };
        current = next;
    }
    if let Some(entries) = current.as_object_mut() {
        entries.remove(last);
    }
}

/// Server-side apply's merge: objects merge key by key, named lists merge
/// by name, other lists are replaced.
fn merge_apply(live: &mut Json, patch: &Json) {
    match (live, patch) {
        (Json::Object(live), Json::Object(patch)) => {
            for (key, value) in patch {
                match live.get_mut(key) {
                    Some(existing) => merge_apply(existing, value),
                    None => {
                        live.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Json::Array(live), Json::Array(patch)) if is_named_list(patch) && is_named_list(live) => {
            for item in patch {
                let name = item["name"].as_str().unwrap();
                match live.iter_mut().find(|existing| existing.get("name").and_then(Json::as_str) == Some(name)) {
                    Some(existing) => merge_apply(existing, item),
                    None => live.push(item.clone()),
                }
            }
        }
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
                    let key = match segment.strip_prefix("[name=\"").and_then(|rest| rest.strip_suffix("\"]")) {
                        Some(name) => format!("k:{{\"name\":\"{name}\"}}"),
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
    match kind.kind {
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
