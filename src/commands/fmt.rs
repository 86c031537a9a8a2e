//! `mlops fmt`: rewrite configuration files in the canonical layout, or
//! with `--check` list the ones that are not.

use std::path::{Path, PathBuf};

use mlops_compiler::diagnostic::render::{render_human_all, HumanOptions};

use super::{stderr_colour, width, CommandResult};

fn collect_format_targets(path: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    out.extend(mlops_compiler::loader::configuration_files(&mlops_compiler::files::DiskFiles, path)?);
    if recursive {
        let mut directories: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|child| child.is_dir() && !child.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.')))
            .collect();
        directories.sort();
        for directory in directories {
            collect_format_targets(&directory, recursive, out)?;
        }
    }
    Ok(())
}

pub fn format_command(paths: &[PathBuf], check: bool, recursive: bool) -> CommandResult {
    let mut targets = Vec::new();
    for path in paths {
        if let Err(error) = collect_format_targets(path, recursive, &mut targets) {
            errln!("error[E0003 unreadable-file]: cannot read `{}`: {error}", path.display());
            return Ok(1);
        }
    }
    let mut failed = false;
    let mut unformatted = 0;
    for target in &targets {
        let shown = target.display().to_string();
        let read = mlops_compiler::limits::read_regular_file(target, mlops_compiler::limits::MAX_CONFIGURATION_FILE_BYTES);
        let text = match read.map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) => {
                errln!("error[E0004 invalid-utf8]: `{shown}` is not UTF-8 text\n  help: save the file as UTF-8");
                failed = true;
                continue;
            }
            Err(error) => {
                errln!("error[E0003 unreadable-file]: cannot read `{shown}`: {error}");
                failed = true;
                continue;
            }
        };
        // A byte-order mark is not part of the text; formatting drops it.
        let text = text.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(text);
        match mlops_compiler::format::format_source(&text) {
            Ok(formatted) if formatted == text => {}
            Ok(formatted) => {
                unformatted += 1;
                if check {
                    outln!("{shown}");
                } else if let Err(error) = write_atomically(target, &formatted) {
                    errln!("error[E0003 unreadable-file]: cannot write `{shown}`: {error}");
                    failed = true;
                } else {
                    outln!("{shown}");
                }
            }
            Err(diagnostic) => {
                let mut sources = mlops_compiler::source::SourceMap::default();
                sources.add(mlops_compiler::source::SourceFile::new(target.clone(), shown.clone(), text));
                let options = HumanOptions { colour: stderr_colour(), width: width() };
                err!("{}", render_human_all(&[*diagnostic], &sources, options));
                failed = true;
            }
        }
    }
    if failed {
        Ok(1)
    } else if check && unformatted > 0 {
        errln!("{unformatted} file{} would be reformatted; run `mlops fmt` to fix.", if unformatted == 1 { "" } else { "s" });
        Ok(3)
    } else {
        Ok(0)
    }
}

/// Writes through a temporary file and a rename, so an interrupted `fmt`
/// never leaves a half-written configuration file.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("fmt-{}.tmp", std::process::id()));
    std::fs::write(&temporary, text)?;
    if let Ok(metadata) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&temporary, metadata.permissions());
    }
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}
