//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// Every `*.mlops.hcl` file under `directory`, at any depth, sorted.
pub fn config_files(directory: &Path) -> Vec<PathBuf> {
    fn walk(directory: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(directory).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.to_string_lossy().ends_with(".mlops.hcl") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(directory, &mut out);
    out.sort();
    out
}
