//! The limits that keep hostile or mistaken input from costing unbounded
//! time or memory. Each is far above what a real configuration needs; going
//! past one is a diagnostic that names the limit, never a crash, a hang or
//! an allocation the machine cannot make.

/// A configuration file larger than this is refused before it is parsed
/// (a configuration of 100,000 resources in one file is about 25 MiB, and
/// its tree takes about 25 bytes of memory per byte).
pub const MAX_CONFIGURATION_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Entries in one `{ }` (object literal or block body): the parser checks
/// each new key against all the others.
pub const MAX_ENTRIES_PER_BRACE: usize = 10_000;

/// Elements in one `[ ]`: parsing costs about 150 bytes of memory per byte
/// of a list of small literals, so a long literal list belongs in a file
/// the configuration reads (`file()`, a dataset), not in the configuration.
pub const MAX_LIST_ELEMENTS: usize = 100_000;

/// Instances of one resource block (`count`, `for_each`).
pub const MAX_INSTANCES_PER_BLOCK: usize = 10_000;

/// Resource instances in a whole configuration, modules included.
pub const MAX_INSTANCES: usize = 100_000;

/// The work one expression may do while it is evaluated, in steps: one per
/// `for` iteration, and one per element (or 64 bytes of string) of every
/// value a reference copies or a function makes. Nested loops multiply, and
/// so does copying a large value inside a loop; this bounds both.
pub const MAX_EVALUATION_WORK: usize = 2_000_000;

/// Bytes of one string made while evaluating (a template, `join`,
/// `jsonencode`, ...).
pub const MAX_STRING_BYTES: usize = 16 * 1024 * 1024;

/// Bytes `file()` reads, and a `-var-file` may hold.
pub const MAX_READ_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Digits in a number literal: more than any float can tell apart.
pub const MAX_NUMBER_DIGITS: usize = 400;

/// Reads a file the user named, refusing what is not a regular file (a
/// FIFO would block forever, a device never ends) and what is larger than
/// `limit`. The error is a sentence for a diagnostic.
pub fn read_regular_file(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let metadata = std::fs::metadata(path).map_err(|error| error.to_string())?;
    if !metadata.is_file() {
        let what = if metadata.is_dir() { "a directory" } else { "not a regular file (a pipe, socket or device)" };
        return Err(format!("it is {what}"));
    }
    if metadata.len() > limit {
        return Err(format!("it is {} bytes, more than the {limit} mlops reads", metadata.len()));
    }
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let mut bytes = Vec::new();
    // A file that grows while it is read (or lies about its size, as /proc
    // files do) still stops at the limit.
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|error| error.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!("it holds more than the {limit} bytes mlops reads"));
    }
    Ok(bytes)
}
