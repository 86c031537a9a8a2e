//! Bad input never panics: the parser, checker and formatter run on arbitrary
//! text and on mutations of every fixture (bytes cut, duplicated, swapped in),
//! and must return diagnostics, never unwind. Formatting anything that
//! parses must be idempotent.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mlops_compiler::check::{check_directory, CheckOptions};
use mlops_compiler::format::format_source;
use proptest::prelude::*;

/// The text of every fixture and example, read once for all cases.
fn corpus() -> &'static [String] {
    static CORPUS: OnceLock<Vec<String>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        common::config_files(&manifest.join("tests/fixtures"))
            .into_iter()
            .chain(common::config_files(&manifest.join("../examples")))
            .map(|path| std::fs::read_to_string(path).unwrap())
            .collect()
    })
}

/// Runs the whole front end on `text` as a one-file configuration.
fn exercise(text: &str, scratch: &Path) {
    std::fs::write(scratch.join("main.mlops.hcl"), text).unwrap();
    let result = std::panic::catch_unwind(|| check_directory(scratch, "fuzz", &CheckOptions::default()));
    assert!(result.is_ok(), "the checker panicked on:\n{text:?}");
    let formatted = std::panic::catch_unwind(|| format_source(text));
    assert!(formatted.is_ok(), "the formatter panicked on:\n{text}");
    if let Ok(Ok(once)) = formatted {
        let twice = format_source(&once)
            .unwrap_or_else(|diagnostic| panic!("formatting {text:?} gave {once:?}, which does not parse: {}", diagnostic.message));
        assert_eq!(once, twice, "formatting is not idempotent for:\n{text}");
    }
}

fn scratch_directory(name: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("mlops-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "=",
    ",",
    "\"",
    "${",
    "%{",
    "#",
    "//",
    "/*",
    "*/",
    "<<EOF\n",
    "\nEOF\n",
    "\n",
    ".",
    "*",
    "...",
    "=>",
    "?",
    ":",
    "dataset",
    "training.t.metrics",
    "row.",
    "count.index",
    "each.value",
    "-",
    "!",
    "1e309",
    "0.5",
    "\u{e9}",
    "\u{0}",
    "var.",
    "for x in",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        exercise(&text, &scratch_directory("arbitrary"));
    }

    #[test]
    fn mutated_fixtures_never_panic(
        file in any::<prop::sample::Index>(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), 0usize..40, any::<prop::sample::Index>()), 1..4),
    ) {
        let corpus = corpus();
        let mut text = corpus[file.index(corpus.len())].clone();
        for (position, length, token) in cuts {
            let mut start = position.index(text.len() + 1);
            while !text.is_char_boundary(start) { start -= 1; }
            let mut end = (start + length).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(start..end, TOKENS[token.index(TOKENS.len())]);
        }
        exercise(&text, &scratch_directory("mutated"));
    }
}

#[test]
fn every_fixture_formats_idempotently() {
    for text in corpus() {
        let once = format_source(text);
        if let Ok(once) = once {
            assert_eq!(format_source(&once).unwrap(), once);
        }
    }
}
