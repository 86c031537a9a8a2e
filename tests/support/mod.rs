//! What the end-to-end tests share: temporary copies of configurations,
//! running the built binary in them, and small HTTP helpers.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub mod fake_kube;

pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of a configuration in a temporary directory. Dropping it destroys
/// what was applied, so no server outlives the test.
pub struct Workspace {
    pub directory: tempfile::TempDir,
    /// Set on every command run here (a provider's endpoint, credentials).
    pub environment: Vec<(String, String)>,
    /// Passed to every command run here, and to the clean-up destroy.
    pub variables: Vec<String>,
}

impl Workspace {
    pub fn copy_of(relative: &str) -> Workspace {
        let directory = tempfile::Builder::new().prefix("mlops-engine-").tempdir().expect("temporary directory");
        copy_tree(&repository().join(relative), directory.path());
        Workspace { directory, environment: Vec::new(), variables: Vec::new() }
    }

    /// An empty directory to write a configuration into.
    pub fn empty() -> Workspace {
        let directory = tempfile::Builder::new().prefix("mlops-engine-").tempdir().expect("temporary directory");
        Workspace { directory, environment: Vec::new(), variables: Vec::new() }
    }

    pub fn path(&self) -> &Path {
        self.directory.path()
    }

    pub fn command(&self, arguments: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mlops"));
        // Wide enough that no message is wrapped: the tests look for whole sentences.
        command.current_dir(self.path()).env("NO_COLOR", "1").env("COLUMNS", "400").env_remove("MLOPS_STATE_KEY");
        // The workspace's variables come first, so that a test's own `-var` wins.
        let (subcommand, rest) = arguments.split_first().map_or((None, arguments), |(first, rest)| (Some(*first), rest));
        command.args(subcommand);
        let takes_variables = matches!(subcommand, Some("plan") | Some("apply") | Some("destroy") | Some("import"));
        if takes_variables && !rest.first().is_some_and(|argument| argument.ends_with(".plan")) {
            for variable in &self.variables {
                command.arg("-var").arg(variable);
            }
        }
        command.args(rest);
        for (name, value) in &self.environment {
            command.env(name, value);
        }
        command
    }

    pub fn run(&self, arguments: &[&str]) -> Run {
        Run::from(self.command(arguments).output().expect("runs mlops"))
    }

    pub fn run_fast(&self, arguments: &[&str]) -> Run {
        Run::from(self.command(arguments).env("SLOW_SECONDS", "0").output().expect("runs mlops"))
    }

    pub fn apply(&self, arguments: &[&str]) -> Run {
        let mut all = vec!["apply", "--auto-approve"];
        all.extend_from_slice(arguments);
        let run = self.run_fast(&all);
        assert_eq!(run.code, 0, "apply failed:\n{}", run.all());
        self.assert_no_changes(arguments);
        run
    }

    pub fn assert_no_changes(&self, arguments: &[&str]) {
        let mut all = vec!["plan", "--detailed-exitcode"];
        all.extend_from_slice(arguments);
        let plan = self.run(&all);
        assert_eq!(plan.code, 0, "the plan after apply is not empty:\n{}", plan.all());
        assert!(plan.stdout.contains("No changes."), "{}", plan.all());
    }

    /// Starts an apply of the slow-training case whose training takes
    /// `seconds`, and returns once `started` says it is under way.
    pub fn start_slow_apply(&self, seconds: &str, started: impl Fn() -> bool) -> std::process::Child {
        let mut child = self
            .command(&["apply", "--auto-approve"])
            .env("SLOW_SECONDS", seconds)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starts mlops");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !started() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the training never started");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Applies after an interrupted apply: the run it started is picked up,
    /// not started again, and the result converges.
    pub fn apply_reattaching(&self) -> Run {
        let run = self.run_fast(&["apply", "--auto-approve"]);
        assert_eq!(run.code, 0, "{}", run.all());
        assert!(run.stderr.contains("re-attaching to run"), "the run was started again:\n{}", run.all());
        self.assert_no_changes(&[]);
        run
    }

    pub fn write(&self, name: &str, text: &str) {
        fs::write(self.path().join(name), text).expect("writes a file");
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }

    pub fn output(&self, name: &str) -> String {
        self.run(&["output", name]).stdout.trim().to_owned()
    }

    /// Every file under `relative`, with its bytes: what a test searches
    /// for something that must not have been written down.
    pub fn files_under(&self, relative: &str) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(directory: &Path, files: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in fs::read_dir(directory).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, files);
                } else if let Ok(bytes) = fs::read(&path) {
                    files.push((path, bytes));
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.path().join(relative), &mut files);
        files
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = self.command(&["destroy", "--auto-approve", "--delete-retained"]).output();
    }
}

pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == ".mlops" || entry.file_name() == "__pycache__" {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `path`, however deep.
pub fn all_files(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in fs::read_dir(&directory).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|file_type| file_type.is_dir()) {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn all(&self) -> String {
        format!("exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }

    /// Asserts that the standard error names every one of `expected`.
    pub fn assert_stderr_mentions(&self, expected: &[&str]) {
        for text in expected {
            assert!(self.stderr.contains(text), "missing {text:?}:\n{}", self.all());
        }
    }

    /// Asserts that the standard output names every one of `expected`.
    pub fn assert_stdout_mentions(&self, expected: &[&str]) {
        for text in expected {
            assert!(self.stdout.contains(text), "missing {text:?}:\n{}", self.all());
        }
    }
}

/// POSTs JSON to `url/path` and returns the whole response.
pub fn post(url: &str, path: &str, body: &str) -> String {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("the server answers");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// GETs `url/path` and returns the body of the response.
pub fn get(url: &str, path: &str) -> String {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("the server answers");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").map_or(response.clone(), |(_, body)| body.to_owned())
}

/// A request to an S3 endpoint that does not check signatures (the moto
/// server), to change things behind mlops's back. Returns the status code.
pub fn raw_request(endpoint: &str, method: &str, path: &str, body: &str) -> u16 {
    raw_exchange(endpoint, method, path, body).0
}

/// [`raw_request`], returning the response body too.
pub fn raw_exchange(endpoint: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(address).expect("the server answers");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // moto reads the access key from the header and does not check the signature.
    let authorization = "AWS4-HMAC-SHA256 Credential=testing/20261122/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: {authorization}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

/// The moto server's endpoint (`MLOPS_TEST_S3_ENDPOINT`), or `None` with a
/// loud note outside CI when no server runs. In CI a missing server fails.
pub fn s3_endpoint() -> Option<String> {
    server_from("MLOPS_TEST_S3_ENDPOINT", "the S3 server (moto)")
}

/// The s3s-fs endpoint and its access key and secret, with the same rules
/// as [`s3_endpoint`].
pub fn s3s_server() -> Option<(String, String, String)> {
    let endpoint = server_from("MLOPS_TEST_S3S_ENDPOINT", "s3s-fs")?;
    let key = server_from("MLOPS_TEST_S3S_ACCESS_KEY", "s3s-fs")?;
    let secret = server_from("MLOPS_TEST_S3S_SECRET_KEY", "s3s-fs")?;
    Some((endpoint, key, secret))
}

/// The switch that lets the tests needing a server pass without one (each
/// prints a note saying it checked nothing): `MLOPS_TEST_WITHOUT_SERVERS=1`.
/// Without it, in CI or out, a missing server fails the test with the reason.
pub const WITHOUT_SERVERS: &str = "MLOPS_TEST_WITHOUT_SERVERS";

/// A server's address (or program, or credential) from `variable`. When it
/// is not set the test fails, saying how to get it, unless
/// [`WITHOUT_SERVERS`] selects such tests out explicitly.
fn server_from(variable: &str, what: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os(WITHOUT_SERVERS).is_some_and(|switch| switch == "1") => {
            eprintln!("NOTE: {variable} is not set and {WITHOUT_SERVERS}=1, so this test checks nothing");
            None
        }
        _ => panic!(
            "{variable} is not set: run the tests with ./scripts/test.sh, which starts {what}, or set {WITHOUT_SERVERS}=1 to pass such tests without checking"
        ),
    }
}

/// A server a test starts for itself, in its own process group, so that it
/// can be frozen (`SIGSTOP` on the group, as a hung server or a network
/// gone quiet looks to a client) without touching the servers other tests
/// share. Stopped, with its group, when dropped.
pub struct OwnServer {
    child: std::process::Child,
    pub port: u16,
    pub address: String,
    _directory: tempfile::TempDir,
}

impl OwnServer {
    /// Starts `program ARGUMENTS` (with `{port}` and `{dir}` in the
    /// arguments replaced by a free port and a scratch folder) and waits
    /// until `ready` (a GET path) answers 200, for up to `limit`.
    pub fn start(program: &str, arguments: &[&str], ready: &str, limit: Duration) -> OwnServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        OwnServer::start_on(port, program, arguments, ready, limit)
    }

    /// [`OwnServer::start`] on a port chosen before (for a server that reads
    /// its port from a configuration file).
    pub fn start_on(port: u16, program: &str, arguments: &[&str], ready: &str, limit: Duration) -> OwnServer {
        use std::os::unix::process::CommandExt;
        let directory = tempfile::Builder::new().prefix("mlops-own-server-").tempdir().unwrap();
        let arguments: Vec<String> = arguments
            .iter()
            .map(|argument| argument.replace("{port}", &port.to_string()).replace("{dir}", &directory.path().to_string_lossy()))
            .collect();
        let child = Command::new(program)
            .args(&arguments)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {program}: {error}"));
        let server = OwnServer { child, port, address: format!("127.0.0.1:{port}"), _directory: directory };
        let deadline = std::time::Instant::now() + limit;
        loop {
            let ready_now = TcpStream::connect(&server.address).is_ok() && {
                let (status, _, _) = http_exchange(&server.address, "GET", ready, &[], b"");
                (200..500).contains(&status)
            };
            if ready_now {
                return server;
            }
            assert!(std::time::Instant::now() < deadline, "{program} did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Freezes the server (and its workers): connections are accepted by
    /// the kernel, and nothing answers.
    pub fn freeze(&self) {
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGSTOP) };
    }

    pub fn thaw(&self) {
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGCONT) };
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let group = -(self.child.id() as libc::pid_t);
        unsafe {
            libc::kill(group, libc::SIGCONT);
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The program a test starts its own server with: the path in `variable`
/// (the test command exports it), or `None` as in [`server_from`].
pub fn server_program(variable: &str, what: &str) -> Option<String> {
    server_from(variable, what)
}

/// The MLflow tracking server's URL (`MLOPS_TEST_MLFLOW_URL`).
pub fn mlflow_url() -> Option<String> {
    server_from("MLOPS_TEST_MLFLOW_URL", "the MLflow server")
}

/// The OCI registry's `host:port` (`MLOPS_TEST_OCI_REGISTRY`).
pub fn oci_registry() -> Option<String> {
    server_from("MLOPS_TEST_OCI_REGISTRY", "the OCI registry")
}

/// One HTTP/1.1 exchange with a server on loopback (`http://HOST:PORT` or
/// `HOST:PORT`): returns the status, the response headers (lower-cased
/// names) and the body, de-chunked.
pub fn http_exchange(
    server: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let address = server.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(address).expect("the server answers");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let split = response.windows(4).position(|window| window == b"\r\n\r\n").map_or(response.len(), |at| at + 4);
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split_whitespace().nth(1)).and_then(|code| code.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = response[split.min(response.len())..].to_vec();
    if headers.iter().any(|(name, value)| name == "transfer-encoding" && value.contains("chunked")) {
        let mut plain = Vec::new();
        let mut rest = body.as_slice();
        while let Some(end) = rest.windows(2).position(|window| window == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..end]).trim(), 16).unwrap_or(0);
            if size == 0 || rest.len() < end + 2 + size {
                break;
            }
            plain.extend_from_slice(&rest[end + 2..end + 2 + size]);
            rest = &rest[(end + 4 + size).min(rest.len())..];
        }
        body = plain;
    }
    (status, headers, body)
}

/// The password-protected OCI registry's `host:port` (`MLOPS_TEST_OCI_AUTH_REGISTRY`).
pub fn oci_auth_registry() -> Option<String> {
    server_from("MLOPS_TEST_OCI_AUTH_REGISTRY", "the OCI registry with a password")
}

/// Standard base64 (a Secret's `data`, an HTTP Basic credential).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let value = (u32::from(chunk[0]) << 16) | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8) | u32::from(*chunk.get(2).unwrap_or(&0));
        for index in 0..4 {
            if index <= chunk.len() {
                text.push(ALPHABET[((value >> (18 - 6 * index)) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}
