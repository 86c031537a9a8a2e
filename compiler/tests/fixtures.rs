//! Data-driven checker tests.
//!
//! Every directory under `fixtures/invalid/` is a configuration whose
//! expected diagnostics are written inline, on the line after the code they
//! point at:
//!
//! ```text
//!   versionning = true
//! # ^^^^^^^^^^^ E0102 unknown-attribute
//! ```
//!
//! The carets give the exact column and length of the primary span; `# <--`
//! stands for a span starting in column 1. The test fails on any diagnostic
//! that is not expected and on any expectation that is not met, and snapshots
//! the rendered output in `snapshots/diagnostics/`. Every directory under
//! `fixtures/valid/`, and every example, must produce no diagnostics at all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod common;

use mlops_compiler::check::{check_directory, CheckOptions, CheckResult};
use mlops_compiler::diagnostic::codes;
use mlops_compiler::diagnostic::render::{render_human_all, HumanOptions};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    file: String,
    line: usize,
    column: usize,
    length: Option<usize>,
    code: String,
}

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn directories(under: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> =
        std::fs::read_dir(under).unwrap().filter_map(Result::ok).map(|entry| entry.path()).filter(|path| path.is_dir()).collect();
    found.sort();
    found
}

fn expectations(directory: &Path, display: &str) -> Vec<Expected> {
    let mut expected = Vec::new();
    for path in common::config_files(directory) {
        let relative = path.strip_prefix(directory).unwrap().to_string_lossy().replace('\\', "/");
        let shown = format!("{display}/{relative}");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut target_line = 0;
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            let annotation = if let Some(rest) = trimmed.strip_prefix("# <--") {
                Some((1, None, rest))
            } else if line.starts_with('#') && line[1..].trim_start().starts_with('^') {
                let column = line.find('^').unwrap() + 1;
                let length = line[column - 1..].chars().take_while(|character| *character == '^').count();
                Some((column, Some(length), &line[column - 1 + length..]))
            } else {
                None
            };
            match annotation {
                Some((column, length, rest)) => {
                    let code = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let name = rest.split_whitespace().nth(1).unwrap_or_default();
                    let known = codes::lookup(&code).unwrap_or_else(|| panic!("{shown}:{}: unknown code {code}", index + 1));
                    assert_eq!(known.name, name, "{shown}:{}: code {code} is named {}", index + 1, known.name);
                    expected.push(Expected { file: shown.clone(), line: target_line, column, length, code });
                }
                None => target_line = index + 1,
            }
        }
    }
    expected.sort();
    expected
}

fn actual(result: &CheckResult) -> Vec<(Expected, String)> {
    let mut found: Vec<(Expected, String)> = result
        .diagnostics
        .iter()
        .map(|diagnostic| {
            let Some(label) = &diagnostic.primary else {
                return (
                    Expected { file: String::new(), line: 0, column: 0, length: None, code: diagnostic.code.id.to_owned() },
                    diagnostic.message.clone(),
                );
            };
            let file = result.sources.get(label.span.file);
            let start = file.line_column(label.span.start as usize);
            let end = file.line_column(label.span.end as usize);
            let length = if end.line == start.line {
                end.column - start.column
            } else {
                file.line_text(start.line).chars().count() + 1 - start.column
            };
            (
                Expected {
                    file: file.display_path.clone(),
                    line: start.line,
                    column: start.column,
                    length: Some(length),
                    code: diagnostic.code.id.to_owned(),
                },
                diagnostic.message.clone(),
            )
        })
        .collect();
    found.sort();
    found
}

fn matches(expected: &Expected, actual: &Expected) -> bool {
    expected.file == actual.file
        && expected.line == actual.line
        && expected.column == actual.column
        && expected.code == actual.code
        && expected.length.is_none_or(|length| Some(length) == actual.length)
}

fn run_fixture(directory: &Path) -> Result<String, String> {
    let name = directory.file_name().unwrap().to_string_lossy().into_owned();
    let display = format!("invalid/{name}");
    let result = check_directory(directory, &display, &CheckOptions::default());
    let mut expected = expectations(directory, &display);
    let mut unexpected = Vec::new();
    for (found, message) in actual(&result) {
        match expected.iter().position(|wanted| matches(wanted, &found)) {
            Some(position) => {
                expected.remove(position);
            }
            None => unexpected.push(format!(
                "  unexpected {}:{}:{} (length {:?}) {}: {message}",
                found.file, found.line, found.column, found.length, found.code
            )),
        }
    }
    let missing: Vec<String> = expected
        .iter()
        .map(|wanted| {
            format!("  missing    {}:{}:{} (length {:?}) {}", wanted.file, wanted.line, wanted.column, wanted.length, wanted.code)
        })
        .collect();
    if !unexpected.is_empty() || !missing.is_empty() {
        return Err(format!("{name}:\n{}\n{}", unexpected.join("\n"), missing.join("\n")));
    }
    Ok(render_human_all(&result.diagnostics, &result.sources, HumanOptions { colour: false, width: 100 }))
}

#[test]
fn invalid_fixtures_report_exactly_the_inline_diagnostics() {
    let mut failures = Vec::new();
    for directory in directories(&fixture_root().join("invalid")) {
        let name = directory.file_name().unwrap().to_string_lossy().into_owned();
        match run_fixture(&directory) {
            Ok(rendered) => {
                insta::with_settings!({ snapshot_path => "../../snapshots/diagnostics", prepend_module_to_snapshot => false, omit_expression => true }, {
                    insta::assert_snapshot!(name.as_str(), rendered);
                });
            }
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "fixtures that do not match their inline expectations:\n{}", failures.join("\n"));
}

#[test]
fn there_are_enough_invalid_fixtures_and_every_configuration_error_code_has_one() {
    let directories = directories(&fixture_root().join("invalid"));
    assert!(directories.len() >= 40, "only {} invalid fixtures", directories.len());
    let mut covered = BTreeSet::new();
    for directory in &directories {
        let name = directory.file_name().unwrap().to_string_lossy().into_owned();
        for expectation in expectations(directory, &format!("invalid/{name}")) {
            covered.insert(expectation.code);
        }
    }
    // These three concern reading files, not their content; the CLI tests cover them.
    let file_level = ["E0003", "E0004", "E0005"];
    // Found while planning or applying (E0415: a variable without a value;
    // E0216: a value given for an undeclared variable; E07xx: providers,
    // state, gates and checks; W0103: a monitor that drifted, known from
    // its refreshed state); tests/engine.rs and tests/adversarial.rs cover them.
    let runtime_level = |id: &str| id == "E0415" || id == "E0216" || id == "W0103" || id.starts_with("E07");
    let uncovered: Vec<&str> = codes::ALL
        .iter()
        .map(|code| code.id)
        .filter(|id| !covered.contains(*id) && !file_level.contains(id) && !runtime_level(id))
        .collect();
    assert!(uncovered.is_empty(), "codes without an invalid fixture: {uncovered:?}");
}

#[test]
fn valid_fixtures_and_examples_have_no_diagnostics() {
    let mut directories = directories(&fixture_root().join("valid"));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    directories.extend(self::directories(&examples));
    assert!(directories.len() >= 3);
    for directory in directories {
        let result = check_directory(&directory, "valid", &CheckOptions::default());
        let rendered = render_human_all(&result.diagnostics, &result.sources, HumanOptions::default());
        assert!(result.diagnostics.is_empty(), "{} should be valid:\n{rendered}", directory.display());
        assert!(result.root.is_some());
    }
}

#[test]
fn every_code_has_a_complete_explanation() {
    for code in codes::ALL {
        for section in ["## What it means", "## Why it matters", "## Example", "## How to fix it"] {
            assert!(code.explanation.contains(section), "{} lacks {section}", code.id);
        }
        assert!(code.explanation.starts_with(&format!("# {} {}", code.id, code.name)));
        assert_eq!(codes::lookup(code.name), Some(*code));
        assert_eq!(codes::lookup(&code.id.to_lowercase()), Some(*code));
    }
}
