//! `mlops history [DIR] [--json]` and `mlops history show SERIAL`: the
//! audit trail the state keeps (every apply, import, state change and
//! restore: when, who, from where, the command with its variable values
//! left out, the serial it made, and what it changed), for the local and
//! the s3 backend alike.

use std::path::Path;

use mlops_compiler::diagnostic::{codes, Diagnostic};
use serde_json::Value as Json;

use super::{fail, workspace, CommandResult};

pub fn history_command(directory: &Path, serial: Option<u64>, json_output: bool) -> CommandResult {
    let workspace = workspace(directory)?;
    let (entries, unreadable) = workspace.backend.history()?;
    if unreadable > 0 {
        errln!(
            "note: {unreadable} history entr{} could not be read and {} left out",
            if unreadable == 1 { "y" } else { "ies" },
            if unreadable == 1 { "is" } else { "are" }
        );
    }
    let Some(serial) = serial else {
        if json_output {
            outln!("{}", serde_json::to_string_pretty(&entries).unwrap_or_default());
        } else if entries.is_empty() {
            outln!("No history yet in {}: nothing has been applied.", workspace.backend.describe());
        } else {
            outln!("{:>7}  {:<24}  {:<24}  {:<24}  command", "serial", "time", "who", "outcome");
            for entry in &entries {
                outln!(
                    "{:>7}  {:<24}  {:<24}  {:<24}  {}",
                    entry.get("serial").and_then(Json::as_u64).map_or_else(|| "-".to_owned(), |serial| serial.to_string()),
                    text(entry, "time"),
                    who(entry),
                    outcome(entry),
                    text(entry, "command")
                );
            }
        }
        return Ok(0);
    };
    let Some(entry) = entries.iter().rev().find(|entry| entry.get("serial").and_then(Json::as_u64) == Some(serial)) else {
        let serials: Vec<String> =
            entries.iter().filter_map(|entry| entry.get("serial").and_then(Json::as_u64)).map(|serial| serial.to_string()).collect();
        return fail(Diagnostic::error(codes::STATE_ERROR, format!("the history has no entry for serial {serial}")).with_help(
            if serials.is_empty() {
                "nothing has been applied yet".to_owned()
            } else {
                format!("the serials in the history are {}", serials.join(", "))
            },
        ));
    };
    if json_output {
        outln!("{}", serde_json::to_string_pretty(entry).unwrap_or_default());
        return Ok(0);
    }
    outln!("serial   {serial}");
    outln!("time     {}", text(entry, "time"));
    outln!("who      {}", who(entry));
    outln!("command  {}", text(entry, "command"));
    if let Some(hash) = entry.get("plan_hash").and_then(Json::as_str) {
        outln!("config   {hash}");
    }
    outln!("outcome  {}", outcome(entry));
    for change in entry.get("changes").and_then(Json::as_array).into_iter().flatten() {
        outln!("  {}: {} ({})", text(change, "address"), text(change, "action"), text(change, "result"));
    }
    Ok(0)
}

fn text<'a>(entry: &'a Json, name: &str) -> &'a str {
    entry.get(name).and_then(Json::as_str).unwrap_or("-")
}

/// `user@host`, as far as the entry says.
fn who(entry: &Json) -> String {
    match (entry.get("user").and_then(Json::as_str), entry.get("host").and_then(Json::as_str)) {
        (Some(user), Some(host)) => format!("{user}@{host}"),
        (Some(user), None) => user.to_owned(),
        _ => "-".to_owned(),
    }
}

/// `3 done, 1 failed`, `interrupted: ...`, or `state change` for surgery.
fn outcome(entry: &Json) -> String {
    let Some(changes) = entry.get("changes").and_then(Json::as_array) else { return "state change".to_owned() };
    let mut counts: Vec<(String, usize)> = Vec::new();
    for change in changes {
        let result = text(change, "result").to_owned();
        match counts.iter_mut().find(|(name, _)| *name == result) {
            Some((_, count)) => *count += 1,
            None => counts.push((result, 1)),
        }
    }
    let summary = counts.iter().map(|(result, count)| format!("{count} {result}")).collect::<Vec<_>>().join(", ");
    if entry.get("interrupted").and_then(Json::as_bool) == Some(true) {
        format!("interrupted: {summary}")
    } else {
        summary
    }
}
