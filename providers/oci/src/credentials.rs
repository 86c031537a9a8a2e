//! Where registry credentials come from, in order: the provider block
//! (`username`/`password`), the environment (`MLOPS_OCI_USERNAME` and
//! `MLOPS_OCI_PASSWORD`), then the docker configuration
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`) as
//! `docker login` writes it: inline `auths`, or a credential helper
//! (`credHelpers`, `credsStore`) asked through `docker-credential-NAME get`.
//! Nothing here ever prints or logs a secret.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde_json::Value as Json;

/// The credentials for `host`, or anonymous access.
pub fn for_registry(host: &str, username: Option<&str>, password: Option<&str>) -> RegistryAuth {
    if let (Some(username), Some(password)) = (username, password) {
        return RegistryAuth::Basic(username.to_owned(), password.to_owned());
    }
    let environment = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    if let (Some(username), Some(password)) = (environment("MLOPS_OCI_USERNAME"), environment("MLOPS_OCI_PASSWORD")) {
        return RegistryAuth::Basic(username, password);
    }
    docker_config_credentials(host).unwrap_or(RegistryAuth::Anonymous)
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(directory) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(directory).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

/// The keys `docker login` may have used for `host`.
fn candidate_keys(host: &str) -> Vec<String> {
    let mut keys = vec![host.to_owned(), format!("https://{host}"), format!("http://{host}")];
    if matches!(host, "docker.io" | "index.docker.io" | "registry-1.docker.io") {
        keys.push("https://index.docker.io/v1/".to_owned());
    }
    keys
}

fn docker_config_credentials(host: &str) -> Option<RegistryAuth> {
    let config: Json = serde_json::from_slice(&std::fs::read(docker_config_path()?).ok()?).ok()?;
    let keys = candidate_keys(host);
    if let Some(helper) = keys.iter().find_map(|key| config.get("credHelpers")?.get(key)?.as_str()) {
        return from_helper(helper, host);
    }
    if let Some(entry) = keys.iter().find_map(|key| config.get("auths")?.get(key)) {
        if let Some(token) = entry.get("identitytoken").and_then(Json::as_str).filter(|token| !token.is_empty()) {
            return Some(RegistryAuth::Bearer(token.to_owned()));
        }
        if let Some(encoded) = entry.get("auth").and_then(Json::as_str).filter(|auth| !auth.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
            let (username, password) =
                String::from_utf8(decoded).ok()?.split_once(':').map(|(user, pass)| (user.to_owned(), pass.to_owned()))?;
            return Some(RegistryAuth::Basic(username, password));
        }
    }
    config.get("credsStore").and_then(Json::as_str).and_then(|helper| from_helper(helper, host))
}

/// Asks `docker-credential-HELPER get` (the protocol docker uses).
fn from_helper(helper: &str, host: &str) -> Option<RegistryAuth> {
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(host.as_bytes()).ok()?;
    let output = child.wait_with_output().ok()?;
    if !output.status.success() {
        return None;
    }
    let answer: Json = serde_json::from_slice(&output.stdout).ok()?;
    let username = answer.get("Username")?.as_str()?.to_owned();
    let secret = answer.get("Secret")?.as_str()?.to_owned();
    // Helpers answer identity tokens with this placeholder user.
    if username == "<token>" {
        Some(RegistryAuth::Bearer(secret))
    } else {
        Some(RegistryAuth::Basic(username, secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_auths_are_read_for_the_registry() {
        let directory = tempfile::tempdir().unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode("robot:s3cret");
        std::fs::write(
            directory.path().join("config.json"),
            format!(
                r#"{{"auths": {{"registry.example.com:5000": {{"auth": "{encoded}"}}, "https://ghcr.io": {{"identitytoken": "tok"}}}}}}"#
            ),
        )
        .unwrap();
        std::env::set_var("DOCKER_CONFIG", directory.path());
        std::env::remove_var("MLOPS_OCI_USERNAME");
        let basic = docker_config_credentials("registry.example.com:5000");
        assert!(matches!(basic, Some(RegistryAuth::Basic(user, password)) if user == "robot" && password == "s3cret"));
        assert!(matches!(docker_config_credentials("ghcr.io"), Some(RegistryAuth::Bearer(token)) if token == "tok"));
        assert!(docker_config_credentials("elsewhere.example.com").is_none());
        std::env::remove_var("DOCKER_CONFIG");
    }
}
