//! A small, blocking client for the parts of MLflow's REST API the provider
//! uses (`/api/2.0/mlflow/...` and the artifact proxy
//! `/api/2.0/mlflow-artifacts/...`), with MLflow's errors turned into
//! messages that name the server and say what to do.
//!
//! MLflow's quirks live here: a missing alias answers 400
//! `INVALID_PARAMETER_VALUE` (not 404), DELETE takes its parameters in a
//! JSON body, and "already exists" is an error code rather than a status.

use std::path::Path;
use std::time::Duration;

use mlops_provider_api::{ProviderError, ProviderResult};
use mlops_provider_support::remote::{self, RemoteLimits};
use serde_json::{json, Value as Json};

/// What a call can end in besides success.
#[derive(Debug)]
pub enum CallError {
    /// `RESOURCE_DOES_NOT_EXIST`, or a missing alias.
    NotFound(String),
    AlreadyExists(String),
    /// Anything else, already worded for the user.
    Provider(ProviderError),
}

impl From<CallError> for ProviderError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::NotFound(message) | CallError::AlreadyExists(message) => ProviderError::failed(message),
            CallError::Provider(error) => error,
        }
    }
}

pub type CallResult<T> = Result<T, CallError>;

/// How to authenticate: MLflow servers behind a proxy take a bearer token;
/// MLflow's own basic-auth app takes a user and password.
#[derive(Clone)]
enum Credentials {
    None,
    Bearer(String),
    Basic(String, String),
}

pub struct Client {
    base: String,
    credentials: Credentials,
    http: reqwest::blocking::Client,
    limits: RemoteLimits,
}

impl Client {
    /// A client for the server at `url`. The token comes from the provider
    /// configuration, else from `MLFLOW_TRACKING_TOKEN`, else basic auth from
    /// `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`, as MLflow's own
    /// clients read them.
    pub fn new(url: &str, token: Option<&str>, limits: RemoteLimits) -> ProviderResult<Client> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ProviderError::with_help(
                format!("the MLflow url `{base}` is not an http(s) URL"),
                "set `url` in provider \"mlflow\" to the tracking server, such as http://127.0.0.1:5000",
            ));
        }
        let environment = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let credentials = match token.map(str::to_owned).or_else(|| environment("MLFLOW_TRACKING_TOKEN")) {
            Some(token) => Credentials::Bearer(token),
            None => match (environment("MLFLOW_TRACKING_USERNAME"), environment("MLFLOW_TRACKING_PASSWORD")) {
                (Some(user), Some(password)) => Credentials::Basic(user, password),
                _ => Credentials::None,
            },
        };
        // A server that stops answering fails the call after
        // `request_timeout`; uploads get longer, by their size.
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(limits.connect)
            .timeout(limits.request)
            .build()
            .map_err(|error| ProviderError::failed(format!("cannot start an HTTP client: {error}")))?;
        Ok(Client { base, credentials, http, limits })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn authorised(&self, request: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match &self.credentials {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::Basic(user, password) => request.basic_auth(user, Some(password)),
        }
    }

    /// `GET /api/2.0/mlflow/PATH?query`.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> CallResult<Json> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        self.send(self.http.get(&url).query(query), path)
    }

    /// `POST /api/2.0/mlflow/PATH` with a JSON body.
    pub fn post(&self, path: &str, body: Json) -> CallResult<Json> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        self.send(self.http.post(&url).json(&body), path)
    }

    /// `DELETE /api/2.0/mlflow/PATH`: MLflow reads DELETE parameters from a
    /// JSON body, not the query string.
    pub fn delete(&self, path: &str, body: Json) -> CallResult<Json> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        self.send(self.http.delete(&url).json(&body), path)
    }

    /// Uploads one file through the artifact proxy, streamed from disk.
    pub fn upload_artifact(&self, artifact_path: &str, file: &Path) -> CallResult<()> {
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{}", self.base, encode_path(artifact_path));
        let body = std::fs::File::open(file)
            .map_err(|error| CallError::Provider(ProviderError::failed(format!("cannot read {}: {error}", file.display()))))?;
        // The request timeout, plus a second per MiB at the least: a large
        // model is not cut off while it goes up.
        let size = body.metadata().map_or(0, |metadata| metadata.len());
        let timeout = self.limits.request + Duration::from_secs(size / (1024 * 1024));
        self.send(self.http.put(&url).timeout(timeout).body(reqwest::blocking::Body::new(body)), "mlflow-artifacts").map(|_| ())
    }

    /// Lists one directory of the artifact proxy: `(path, is_dir)`.
    pub fn list_artifacts(&self, artifact_path: &str) -> CallResult<Vec<(String, bool)>> {
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts", self.base);
        let listing = self.send(self.http.get(&url).query(&[("path", artifact_path)]), "mlflow-artifacts")?;
        Ok(listing
            .get("files")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|file| Some((file.get("path")?.as_str()?.to_owned(), file.get("is_dir").and_then(Json::as_bool).unwrap_or(false))))
            .collect())
    }

    /// Downloads one file through the artifact proxy into `destination`.
    pub fn download_artifact(&self, artifact_path: &str, destination: &Path) -> CallResult<()> {
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{}", self.base, encode_path(artifact_path));
        let failed =
            |error: std::io::Error| CallError::Provider(ProviderError::failed(format!("cannot write {}: {error}", destination.display())));
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        let mut file = std::fs::File::create(destination).map_err(failed)?;
        let request = self.authorised(self.http.get(&url));
        // The body is read where it arrives: a server that stalls mid-file
        // is abandoned on Ctrl-C like any other call.
        let outcome = remote::interruptible(move || -> Result<Result<(), (reqwest::StatusCode, String)>, reqwest::Error> {
            let mut response = request.send()?;
            if !response.status().is_success() {
                let status = response.status();
                return Ok(Err((status, response.text().unwrap_or_default())));
            }
            response.copy_to(&mut file)?;
            Ok(Ok(()))
        })
        .map_err(CallError::Provider)?;
        match outcome.map_err(|error| self.transport_error(&error))? {
            Ok(()) => Ok(()),
            Err((status, text)) => Err(self.status_error(status, &text, "mlflow-artifacts")),
        }
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder, what: &str) -> CallResult<Json> {
        let request = self.authorised(request);
        let exchanged = remote::interruptible(move || -> Result<(reqwest::StatusCode, String), reqwest::Error> {
            let response = request.send()?;
            let status = response.status();
            Ok((status, response.text()?))
        })
        .map_err(CallError::Provider)?;
        let (status, text) = exchanged.map_err(|error| self.transport_error(&error))?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(json!({}));
            }
            return serde_json::from_str(&text).map_err(|error| {
                CallError::Provider(ProviderError::failed(format!(
                    "the MLflow server at {} answered {what} with something that is not JSON: {error}",
                    self.base
                )))
            });
        }
        Err(self.status_error(status, &text, what))
    }

    fn status_error(&self, status: reqwest::StatusCode, text: &str, what: &str) -> CallError {
        let body: Json = serde_json::from_str(text).unwrap_or(Json::Null);
        let code = body.get("error_code").and_then(Json::as_str).unwrap_or("");
        let message = body.get("message").and_then(Json::as_str).map_or_else(|| first_line(text), str::to_owned);
        match (status.as_u16(), code) {
            (_, "RESOURCE_DOES_NOT_EXIST") => CallError::NotFound(message),
            // A missing alias is a 400 with this code and wording.
            (400, "INVALID_PARAMETER_VALUE") if message.contains("alias") && message.contains("not found") => CallError::NotFound(message),
            (_, "RESOURCE_ALREADY_EXISTS") => CallError::AlreadyExists(message),
            (401 | 403, _) => CallError::Provider(ProviderError::with_help(
                format!("the MLflow server at {} refused the credentials (HTTP {}) on {what}", self.base, status.as_u16()),
                "check `token` in provider \"mlflow\" (or MLFLOW_TRACKING_TOKEN / MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)",
            )),
            (404, _) => CallError::Provider(ProviderError::with_help(
                format!("the server at {} has no MLflow API for {what} (HTTP 404)", self.base),
                "check that `url` points at an MLflow tracking server (it answers GET /health), including any path prefix",
            )),
            (429 | 500..=599, _) => CallError::Provider(ProviderError::Transient {
                message: format!("the MLflow server at {} answered HTTP {} on {what}: {message}", self.base, status.as_u16()),
            }),
            _ => CallError::Provider(ProviderError::failed(format!(
                "the MLflow server at {} refused {what} (HTTP {}{}): {message}",
                self.base,
                status.as_u16(),
                if code.is_empty() { String::new() } else { format!(", {code}") }
            ))),
        }
    }

    fn transport_error(&self, error: &reqwest::Error) -> CallError {
        if error.is_timeout() {
            // Waiting again for a server that stopped answering only doubles the wait.
            return CallError::Provider(ProviderError::with_help(
                format!("the MLflow server at {} did not answer within {}", self.base, self.limits.describe_request()),
                "check that the server is up (`curl URL/health`); for a slow server, raise `request_timeout` in provider \"mlflow\"",
            ));
        }
        // The reqwest error names the URL but never headers, so no token.
        let cause = std::error::Error::source(error).map_or_else(|| error.to_string(), mlops_provider_support::root_cause);
        CallError::Provider(ProviderError::with_help(
            format!("cannot reach the MLflow server at {}: {cause}", self.base),
            "check `url` in provider \"mlflow\" and that the server is running (`curl URL/health` answers OK)",
        ))
    }
}

fn first_line(text: &str) -> String {
    text.lines().find(|line| !line.trim().is_empty()).unwrap_or("").chars().take(200).collect()
}

/// Percent-encodes each path segment, keeping the slashes.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|segment| percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string())
        .collect::<Vec<_>>()
        .join("/")
}
