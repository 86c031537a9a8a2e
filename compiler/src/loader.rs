//! Reading a configuration directory: every `*.mlops.hcl` file directly in it,
//! in name order. Unreadable files, non-UTF-8 files, syntax errors and empty
//! directories become diagnostics; the files that can be read are still parsed.

use std::path::{Path, PathBuf};

use crate::ast::Body;
use crate::diagnostic::{codes, Diagnostic, Diagnostics};
use crate::files::{EntryKind, FileSystem};
use crate::source::{FileId, SourceFile, SourceMap};

pub const CONFIG_SUFFIX: &str = ".mlops.hcl";

/// The parsed files of one module directory.
#[derive(Debug, Clone)]
pub struct LoadedModule {
    pub directory: PathBuf,
    /// How the directory is shown to the user.
    pub display_directory: String,
    pub files: Vec<(FileId, Body)>,
}

/// Lists the configuration files of a directory, sorted by name.
pub fn configuration_files(files: &dyn FileSystem, directory: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(files
        .entries(directory)?
        .into_iter()
        .filter(|path| path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.ends_with(CONFIG_SUFFIX)))
        .filter(|path| files.kind(path) != Some(EntryKind::Directory))
        .collect())
}

pub fn display_join(directory: &str, name: &str) -> String {
    if directory.is_empty() || directory == "." {
        name.to_owned()
    } else {
        format!("{}/{}", directory.trim_end_matches('/'), name)
    }
}

/// Loads and parses a module directory. Returns `None` when nothing could be
/// read at all (missing directory, no configuration files).
pub fn load_directory(
    files: &dyn FileSystem,
    directory: &Path,
    display_directory: &str,
    sources: &mut SourceMap,
    diagnostics: &mut Diagnostics,
) -> Option<LoadedModule> {
    let shown = if display_directory.is_empty() { "." } else { display_directory };
    let paths = match configuration_files(files, directory) {
        Ok(paths) => paths,
        Err(error) => {
            let reason = match error.kind() {
                std::io::ErrorKind::NotFound => "it does not exist".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ if files.kind(directory) == Some(EntryKind::File) => "it is a file, not a directory".to_owned(),
                _ => error.to_string(),
            };
            diagnostics.push(
                Diagnostic::error(codes::UNREADABLE_FILE, format!("cannot read the configuration directory `{shown}`: {reason}"))
                    .with_help("give the directory that holds your *.mlops.hcl files"),
            );
            return None;
        }
    };
    if paths.is_empty() {
        diagnostics.push(
            Diagnostic::error(codes::NO_CONFIGURATION, format!("`{shown}` holds no *{CONFIG_SUFFIX} files"))
                .with_help("configuration files end in .mlops.hcl; point the command at the directory that holds them"),
        );
        return None;
    }
    let mut read = Vec::new();
    for path in paths {
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
        let display_path = display_join(display_directory, &name);
        let bytes = match files.read(&path, crate::limits::MAX_CONFIGURATION_FILE_BYTES) {
            Ok(bytes) => bytes,
            Err(reason) => {
                diagnostics.push(
                    Diagnostic::error(codes::UNREADABLE_FILE, format!("cannot read `{display_path}`: {reason}"))
                        .with_help("a configuration file is a regular UTF-8 text file of at most 4 MiB"),
                );
                continue;
            }
        };
        // A byte-order mark some editors write is not part of the text.
        let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) => rest.to_vec(),
            None => bytes,
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => {
                let offset = error.utf8_error().valid_up_to();
                let prefix = &error.as_bytes()[..offset];
                let line = prefix.iter().filter(|&&byte| byte == b'\n').count() + 1;
                let column = prefix.iter().rev().take_while(|&&byte| byte != b'\n').count() + 1;
                diagnostics.push(
                    Diagnostic::error(
                        codes::INVALID_UTF8,
                        format!("`{display_path}` is not UTF-8 text: invalid byte at line {line}, column {column} (byte {offset})"),
                    )
                    .with_help("save the file as UTF-8"),
                );
                continue;
            }
        };
        read.push(sources.add(SourceFile::new(path.clone(), display_path, text)));
    }
    // The files parse on every core; what they say comes back in name order.
    let texts: Vec<(FileId, &str)> = read.iter().map(|&file| (file, sources.get(file).text.as_str())).collect();
    let mut parsed = Vec::with_capacity(read.len());
    for (file, result) in read.iter().zip(crate::syntax::parse_files(&texts)) {
        match result {
            Ok(body) => parsed.push((*file, body)),
            Err(diagnostic) => diagnostics.push(*diagnostic),
        }
    }
    Some(LoadedModule { directory: directory.to_path_buf(), display_directory: display_directory.to_owned(), files: parsed })
}
