//! The peers mlops is measured against, and how any command is measured.
//!
//! Python peers (awscli, DVC, Feast) are installed from PyPI into a virtual
//! environment the harness creates under `.cache/bench-peers/`; tools from
//! crates.io (b3sum) and the S3 server (s3s-fs) under `.cache/`. A peer that
//! cannot be had is reported with the reason, never dropped silently.
//!
//! Every command, mlops included, runs as a child process, and is timed
//! from spawn to exit; its peak memory is the child's own maximum resident
//! set (`wait4`), so mlops and its peers are measured the same way.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (the bench crate lives one level below it).
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the bench crate is inside the repository").to_path_buf()
}

pub fn cache() -> PathBuf {
    repository().join(".cache")
}

/// The release `mlops` binary, built if needed; `MLOPS_BENCH_BINARY` names
/// another (the test command's smoke run uses its debug build).
pub fn mlops_binary() -> Result<PathBuf, String> {
    if let Some(binary) = std::env::var_os("MLOPS_BENCH_BINARY") {
        return Ok(PathBuf::from(binary));
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--release", "--quiet", "--bin", "mlops"])
        .current_dir(repository())
        .status()
        .map_err(|error| format!("cannot run cargo: {error}"))?;
    if !status.success() {
        return Err("`cargo build --release --bin mlops` failed".to_owned());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repository().join("target"));
    Ok(target.join("release").join("mlops"))
}

/// One measured run of a command.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub elapsed: Duration,
    pub peak_megabytes: f64,
}

/// Runs `command` to completion, measuring wall time and peak memory. A
/// failure comes back with the end of what the command printed.
///
/// The command runs under a small go-between (this harness again, see
/// [`run_measured_child`]): Linux counts in a process's peak memory what its
/// parent had resident when it was spawned, and the harness itself can be
/// large, while the go-between is not.
pub fn measure(command: &mut Command) -> Result<Measured, String> {
    let log = tempfile::NamedTempFile::new().map_err(|error| error.to_string())?;
    let output = log.reopen().map_err(|error| error.to_string())?;
    let errors = output.try_clone().map_err(|error| error.to_string())?;
    let result = tempfile::NamedTempFile::new().map_err(|error| error.to_string())?;
    let mut wrapped = Command::new(std::env::current_exe().map_err(|error| error.to_string())?);
    wrapped.arg(MEASURE_CHILD).arg(result.path()).arg(command.get_program()).args(command.get_args());
    if let Some(directory) = command.get_current_dir() {
        wrapped.current_dir(directory);
    }
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    let start = Instant::now();
    let status = wrapped
        .stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(errors))
        .status()
        .map_err(|error| format!("cannot start {:?}: {error}", command.get_program()))?;
    let elapsed = start.elapsed();
    if !status.success() {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("{:?} failed:\n{}", command.get_program(), tail.join("\n")));
    }
    let kilobytes: f64 = std::fs::read_to_string(result.path()).ok().and_then(|text| text.trim().parse().ok()).unwrap_or(f64::NAN);
    Ok(Measured { elapsed, peak_megabytes: kilobytes / 1024.0 })
}

/// The first argument that makes the harness the go-between of [`measure`].
pub const MEASURE_CHILD: &str = "--measure-child";

/// The go-between: runs `PROGRAM ARGS...` (inheriting everything), writes
/// its peak resident memory in kilobytes to `RESULT`, and exits as it did.
pub fn run_measured_child(arguments: &[String]) -> i32 {
    let [result, program, rest @ ..] = arguments else { return 2 };
    let child = match Command::new(program).args(rest).spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!("cannot start {program}: {error}");
            return 127;
        }
    };
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // std's Child would lose the child's resource usage; wait4 keeps it.
    if unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) } < 0 {
        eprintln!("cannot wait for {program}: {}", std::io::Error::last_os_error());
        return 1;
    }
    // ru_maxrss is in kilobytes on Linux.
    let _ = std::fs::write(result, usage.ru_maxrss.to_string());
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        1
    }
}

/// A peer tool: where it is, or why it is not there.
#[derive(Debug, Clone)]
pub struct Peer {
    pub name: &'static str,
    pub program: Result<PathBuf, String>,
}

impl Peer {
    pub fn missing(name: &'static str, why: impl Into<String>) -> Peer {
        Peer { name, program: Err(why.into()) }
    }
}

fn run_quietly(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|error| format!("cannot start {:?}: {error}", command.get_program()))?;
    if output.status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        Err(tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
    }
}

/// A Python peer from PyPI, installed into the harness's virtual
/// environment; `program` is the script it installs.
pub fn python_peer(name: &'static str, requirement: &str, program: &str) -> Peer {
    let environment = cache().join("bench-peers");
    let binary = environment.join("bin").join(program);
    if binary.exists() {
        return Peer { name, program: Ok(binary) };
    }
    if !environment.join("bin/pip").exists() {
        eprintln!("creating the peers' virtual environment in {}", environment.display());
        if let Err(why) = run_quietly(Command::new("python3").arg("-m").arg("venv").arg(&environment)) {
            return Peer::missing(name, format!("cannot create a Python virtual environment: {why}"));
        }
    }
    eprintln!("installing {requirement} from PyPI for the comparison");
    match run_quietly(Command::new(environment.join("bin/pip")).args(["install", "--quiet", "--disable-pip-version-check", requirement])) {
        Ok(()) if binary.exists() => Peer { name, program: Ok(binary) },
        Ok(()) => Peer::missing(name, format!("`pip install {requirement}` installed no `{program}`")),
        Err(why) => Peer::missing(name, format!("`pip install {requirement}` failed: {why}")),
    }
}

/// A tool from crates.io (with `features`), installed under `.cache/NAME/`.
pub fn cargo_peer(name: &'static str, krate: &str, program: &str, features: &str) -> Peer {
    let root = cache().join(name);
    let binary = root.join("bin").join(program);
    if binary.exists() {
        return Peer { name, program: Ok(binary) };
    }
    eprintln!("installing {krate} from crates.io for the comparison");
    let mut install = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    install.args(["install", "--quiet", "--locked", krate, "--root"]).arg(&root);
    if !features.is_empty() {
        install.args(["--features", features]);
    }
    match run_quietly(&mut install) {
        Ok(()) => Peer { name, program: Ok(binary) },
        Err(why) => Peer::missing(name, format!("`cargo install {krate}` failed: {why}")),
    }
}

/// A loopback port nobody listens on yet.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).map(|address| address.port()).unwrap_or(0)
}

/// An S3 server on loopback for the upload workload: s3s-fs (Rust, storing
/// on disk), so that what is measured is the client, not a slow server.
pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    process: Option<std::process::Child>,
}

impl S3Server {
    /// `MLOPS_BENCH_S3_ENDPOINT` (with `MLOPS_BENCH_S3_ACCESS_KEY` and
    /// `..._SECRET_KEY`) when given; otherwise an s3s-fs started here.
    pub fn start(data: &Path) -> Result<S3Server, String> {
        if let Ok(endpoint) = std::env::var("MLOPS_BENCH_S3_ENDPOINT") {
            return Ok(S3Server {
                endpoint,
                access_key: std::env::var("MLOPS_BENCH_S3_ACCESS_KEY").unwrap_or_else(|_| "testing".into()),
                secret_key: std::env::var("MLOPS_BENCH_S3_SECRET_KEY").unwrap_or_else(|_| "testing".into()),
                process: None,
            });
        }
        // The same server and directory as the test command's.
        let binary = cargo_peer("s3s", "s3s-fs@0.14.1", "s3s-fs", "binary").program?;
        std::fs::create_dir_all(data).map_err(|error| error.to_string())?;
        let port = free_port();
        let (access_key, secret_key) = ("bench-key".to_owned(), "bench-secret".to_owned());
        let process = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", &access_key, "--secret-key", &secret_key])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start s3s-fs: {error}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("s3s-fs did not start".to_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(S3Server { endpoint: format!("http://127.0.0.1:{port}"), access_key, secret_key, process: Some(process) })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(process) = &mut self.process {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}
