//! Child processes: training runs that survive an interrupted apply, and
//! serving processes that outlive mlops.
//!
//! Every process mlops starts can be found again from state: the wrapper
//! shell writes its pid to a file whose name is recorded *before* the
//! process starts, so an apply killed at any instant leaves a handle that
//! leads to it. A process is identified by its pid and its start time
//! ([`Started`]), so a pid reused by an unrelated process after a reboot is
//! never signalled.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mlops_provider_api::{ProviderError, ProviderResult};

/// Starts `command` in its own session (so Ctrl-C in the terminal does not
/// reach it and it outlives mlops), with output to `log`. A small shell
/// wrapper first writes its pid to `pid_file`. When `exit_file` is given,
/// the wrapper waits for the command and writes its exit code there, so a
/// later mlops can learn how a run it did not start ended; otherwise it
/// becomes the command (`exec`), keeping the pid.
pub fn spawn_detached(
    command: &[String],
    working_directory: &Path,
    environment: &[(String, String)],
    log: &Path,
    pid_file: &Path,
    exit_file: Option<&Path>,
) -> ProviderResult<Started> {
    if command.is_empty() {
        return Err(ProviderError::failed("`command` is empty"));
    }
    // The wrapper would start and then fail to find it: say so now, clearly.
    let program = &command[0];
    if !program_exists(program, working_directory) {
        return Err(ProviderError::with_help(
            format!("cannot start `{program}`: no such program"),
            "check that the program is installed and on PATH; `command` runs in the configuration's directory",
        ));
    }
    let log_file = fs::File::create(log).map_err(|error| ProviderError::failed(format!("cannot create `{}`: {error}", log.display())))?;
    let log_copy = log_file.try_clone().map_err(|error| ProviderError::failed(error.to_string()))?;
    let record_pid = "printf '%s' \"$$\" > \"$MLOPS_PID_FILE.tmp\" && mv \"$MLOPS_PID_FILE.tmp\" \"$MLOPS_PID_FILE\" || exit 126";
    let script = match exit_file {
        Some(_) => format!(
            "{record_pid}; \"$@\"; code=$?; printf '%s' \"$code\" > \"$MLOPS_EXIT_FILE.tmp\" && mv \"$MLOPS_EXIT_FILE.tmp\" \"$MLOPS_EXIT_FILE\""
        ),
        None => format!("{record_pid}; exec \"$@\""),
    };
    let mut process = Command::new("/bin/sh");
    process.arg("-c").arg(script).arg("mlops-run").args(command);
    process.env("MLOPS_PID_FILE", pid_file);
    if let Some(exit_file) = exit_file {
        process.env("MLOPS_EXIT_FILE", exit_file);
    }
    process.current_dir(working_directory).stdin(Stdio::null()).stdout(log_file).stderr(log_copy);
    // mlops's own settings and secrets stay with mlops: the state key, every
    // `MLOPS_VAR_*` (sensitive variables included), provider credentials
    // given as `MLOPS_*`. The child gets the run contract and what its
    // configuration gives it.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MLOPS_") && name != "MLOPS_EXIT_FILE" && name != "MLOPS_PID_FILE" {
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
    Ok(Started::of(pid))
}

/// Whether `program` names a file that exists: a path (relative to the
/// working directory), or a name found on PATH.
fn program_exists(program: &str, working_directory: &Path) -> bool {
    if program.contains('/') {
        return working_directory.join(program).is_file();
    }
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|directory| directory.join(program).is_file()))
}

/// A process mlops started: its pid and when it started (clock ticks since
/// boot, from `/proc/PID/stat`), so that a pid reused by another process is
/// never taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub pid: u32,
    pub ticks: Option<u64>,
}

impl Started {
    pub fn of(pid: u32) -> Started {
        Started { pid, ticks: start_ticks(pid) }
    }

    /// The process a handle or a private state names (`pid`, `started`).
    pub fn from_json(value: &serde_json::Value) -> Option<Started> {
        let pid = value.get("pid")?.as_u64().filter(|pid| *pid > 0 && *pid <= i32::MAX as u64)? as u32;
        Some(Started { pid, ticks: value.get("started").and_then(serde_json::Value::as_u64) })
    }

    /// The process whose pid the wrapper wrote to `pid_file`, if that file
    /// is older than the process now holding the pid (else the pid was reused).
    pub fn from_pid_file(pid_file: &Path) -> Option<Started> {
        let pid: u32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok().filter(|pid| *pid > 0 && *pid <= i32::MAX as u32)?;
        let written = fs::metadata(pid_file).ok()?.modified().ok()?;
        let started = start_time(pid)?;
        // The wrapper starts, then writes the file: a process that started
        // after the file was written is someone else.
        (started <= written + Duration::from_secs(1)).then(|| Started::of(pid))
    }

    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({ "pid": self.pid, "started": self.ticks })
    }

    /// Running, and the same process that was started.
    pub fn is_running(&self) -> bool {
        alive(self.pid) && (self.ticks.is_none() || start_ticks(self.pid) == self.ticks)
    }

    /// Stops it (its whole process group) if it is still the same process.
    pub fn stop(&self, grace: Duration) {
        if self.is_running() {
            stop(self.pid, grace);
        }
        reap(self.pid);
    }
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks since boot.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = stat.rsplit_once(')')?.1;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// When a process started, on the wall clock.
fn start_time(pid: u32) -> Option<std::time::SystemTime> {
    let ticks = start_ticks(pid)?;
    let boot: u64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|seconds| seconds.trim().parse().ok())?;
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = if per_second > 0 { per_second as u64 } else { 100 };
    Some(std::time::UNIX_EPOCH + Duration::from_secs(boot) + Duration::from_millis(ticks * 1000 / per_second))
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

/// A configured value as an environment variable holds it: text as
/// written, anything else as JSON, secrets revealed (the process needs them).
pub fn environment_text(value: &mlops_provider_api::Value) -> String {
    match value.as_str() {
        Some(text) => text.to_owned(),
        None => value.to_plain_json().map(|json| json.to_string()).unwrap_or_default(),
    }
}
