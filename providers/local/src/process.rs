//! Child processes: training runs that survive an interrupted apply, and
//! serving processes that outlive mlops.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mlops_provider_api::{ProviderError, ProviderResult};

/// Starts `command` in its own session (so Ctrl-C in the terminal does not
/// reach it and it outlives mlops), with output to `log`. When `exit_file`
/// is given, a small shell wrapper writes the exit code there, so a later
/// mlops can learn how a run it did not start ended.
pub fn spawn_detached(
    command: &[String],
    working_directory: &Path,
    environment: &[(String, String)],
    log: &Path,
    exit_file: Option<&Path>,
) -> ProviderResult<u32> {
    let (program, arguments) = command.split_first().ok_or_else(|| ProviderError::failed("`command` is empty"))?;
    let log_file = fs::File::create(log).map_err(|error| ProviderError::failed(format!("cannot create `{}`: {error}", log.display())))?;
    let log_copy = log_file.try_clone().map_err(|error| ProviderError::failed(error.to_string()))?;
    let mut process = match exit_file {
        Some(exit_file) => {
            let mut process = Command::new("/bin/sh");
            process
                .arg("-c")
                .arg(
                    "\"$@\"; code=$?; printf '%s' \"$code\" > \"$MLOPS_EXIT_FILE.tmp\" && mv \"$MLOPS_EXIT_FILE.tmp\" \"$MLOPS_EXIT_FILE\"",
                )
                .arg("mlops-run")
                .arg(program)
                .args(arguments)
                .env("MLOPS_EXIT_FILE", exit_file);
            process
        }
        None => {
            let mut process = Command::new(program);
            process.args(arguments);
            process
        }
    };
    process.current_dir(working_directory).stdin(Stdio::null()).stdout(log_file).stderr(log_copy);
    // mlops's own settings and secrets stay with mlops: the state key, every
    // `MLOPS_VAR_*` (sensitive variables included), provider credentials
    // given as `MLOPS_*`. The child gets the run contract and what its
    // configuration gives it.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MLOPS_") && name != "MLOPS_EXIT_FILE" {
            process.env_remove(&name);
        }
    }
    for (name, value) in environment {
        process.env(name, value);
    }
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        process.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = process.spawn().map_err(|error| {
        ProviderError::with_help(
            format!("cannot start `{program}`: {error}"),
            "check that the program is installed and on PATH; `command` runs in the configuration's directory",
        )
    })?;
    let pid = child.id();
    // The child is reaped by whoever waits on it next; a detached one is
    // adopted by init once mlops exits.
    std::mem::forget(child);
    Ok(pid)
}

/// Reaps `pid` if it is our exited child, so liveness checks see it gone.
pub fn reap(pid: u32) {
    let mut status = 0;
    unsafe {
        libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG);
    }
}

pub fn alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    reap(pid);
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    if result != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    }
    // A zombie is not alive.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => true,
    }
}

/// Stops a process group: TERM, then KILL after `grace`.
pub fn stop(pid: u32, grace: Duration) {
    if pid == 0 {
        return;
    }
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGTERM);
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
        reap(pid);
    }
}

/// A free port on the loopback interface.
pub fn free_port() -> ProviderResult<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|error| ProviderError::failed(format!("no free local port: {error}")))?;
    listener.local_addr().map(|address| address.port()).map_err(|error| ProviderError::failed(error.to_string()))
}

/// `GET path` on 127.0.0.1:port; the status code, if anything answered.
pub fn http_status(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let read = stream.read(&mut head).ok()?;
    let text = std::str::from_utf8(&head[..read]).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The last `count` lines of a log file.
pub fn tail(path: &Path, count: usize) -> String {
    let text = fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}
