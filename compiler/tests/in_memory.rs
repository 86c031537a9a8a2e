//! The whole front end on a configuration held in memory: every file the
//! checker reads (each module's configuration files, `file()`, whether a
//! dataset's local source exists, the lock) goes through the check's
//! `FileSystem`, so nothing here touches the disk.

use std::path::Path;
use std::sync::Arc;

use mlops_compiler::check::{check_directory, CheckOptions, CheckResult};
use mlops_compiler::files::{Files, MemoryFiles};

const ROOT: &str = r#"
locals {
  notes = file("notes.txt")
}

bucket "lake" {
  name = "acme-lake"
}

dataset "transactions" {
  bucket = bucket.lake
  source = "./data/transactions.csv"
  schema {
    column "id"     { type = string }
    column "amount" { type = float }
  }
}

module "features" {
  source  = "./modules/features"
  dataset = dataset.transactions
}

output "notes" {
  value = local.notes
}
"#;

const FEATURES_MODULE: &str = r#"
variable "dataset" {
  type = any
}

feature_set "amounts" {
  dataset = var.dataset
  entity  = "id"
  feature "amount" {
    type = float
    expr = row.amount
  }
}
"#;

fn check(files: MemoryFiles) -> CheckResult {
    check_directory(Path::new("/config"), "", &CheckOptions { files: Files(Arc::new(files)), ..CheckOptions::default() })
}

fn codes(result: &CheckResult) -> Vec<String> {
    result.diagnostics.iter().map(|diagnostic| format!("{} {}", diagnostic.code.id, diagnostic.message)).collect()
}

fn configuration() -> MemoryFiles {
    MemoryFiles::new()
        .with("/config/main.mlops.hcl", ROOT)
        .with("/config/notes.txt", "retrained weekly")
        .with("/config/data/transactions.csv", "id,amount\na,1.5\n")
        .with("/config/modules/features/main.mlops.hcl", FEATURES_MODULE)
}

#[test]
fn a_configuration_in_memory_checks_without_the_disk() {
    let result = check(configuration());
    assert!(!result.has_errors(), "{:?}", codes(&result));
    let root = result.root.expect("a checked root module");
    assert_eq!(root.children.len(), 1, "the module was read from memory");
    let addresses: Vec<String> = root.all_resources().iter().map(|(_, resource)| format!("{}.{}", resource.kind, resource.name)).collect();
    assert!(addresses.contains(&"feature_set.amounts".to_owned()), "{addresses:?}");
    let notes = root.outputs.iter().find(|output| output.name == "notes").expect("the notes output");
    assert_eq!(notes.value.as_str(), Some("retrained weekly"));
}

#[test]
fn what_is_missing_from_memory_is_reported_as_missing_from_disk_would_be() {
    let files = MemoryFiles::new().with("/config/main.mlops.hcl", ROOT).with("/config/modules/other/main.mlops.hcl", FEATURES_MODULE);
    let found = codes(&check(files));
    for expected in ["E0413", "E0210", "cannot read \"notes.txt\""] {
        assert!(found.iter().any(|diagnostic| diagnostic.contains(expected)), "missing {expected}: {found:?}");
    }
    let module_help = check(MemoryFiles::new().with("/config/main.mlops.hcl", ROOT).with("/config/modules/feature/main.mlops.hcl", ""))
        .diagnostics
        .into_iter()
        .find(|diagnostic| diagnostic.code.id == "E0210")
        .and_then(|diagnostic| diagnostic.help)
        .unwrap_or_default();
    assert!(module_help.contains("feature"), "the sibling directories in memory are suggested: {module_help}");
}
