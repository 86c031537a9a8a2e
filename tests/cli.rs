//! End-to-end tests of the `mlops` binary: exit codes, the JSON form, file
//! errors, `fmt`, `explain` and `schema`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mlops(arguments: &[&str], directory: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlops")).args(arguments).current_dir(directory).env("NO_COLOR", "1").output().expect("runs mlops")
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("mlops-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_accepts_the_quickstart() {
    let output = mlops(&["validate", "examples/quickstart"], &repository());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("The configuration is valid: 7 resources checked."));
}

/// The commands a CI file runs: every `mlops ...` in its shell lines, cut
/// at the shell's separators and redirections.
fn mlops_commands(lines: &[String]) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for line in lines.iter().flat_map(|text| text.lines()) {
        for part in line.split("&&").flat_map(|part| part.split("||")).flat_map(|part| part.split(';')) {
            let words: Vec<&str> = part.split_whitespace().take_while(|word| !word.starts_with('>') && *word != "|").collect();
            if words.first() == Some(&"mlops") {
                commands.push(words[1..].iter().map(|word| (*word).to_owned()).collect());
            }
        }
    }
    commands
}

#[test]
fn the_ci_examples_run_commands_mlops_has_at_the_right_moments() {
    let example = repository().join("examples/ci");
    let github: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(example.join(".github/workflows/mlops.yml")).unwrap()).unwrap();
    let gitlab: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(example.join(".gitlab-ci.yml")).unwrap()).unwrap();
    let strings = |value: &serde_yaml::Value| -> Vec<String> {
        value.as_sequence().into_iter().flatten().filter_map(|item| item.as_str().map(str::to_owned)).collect()
    };

    // GitHub: checks on every push, plans pull requests, applies main.
    let on = &github["on"];
    assert!(on.get("pull_request").is_some(), "no pull_request trigger");
    assert!(strings(&on["push"]["branches"]).contains(&"main".to_owned()), "no push to main");
    let mut github_lines = Vec::new();
    for (name, job) in github["jobs"].as_mapping().unwrap() {
        let steps = job["steps"].as_sequence().unwrap();
        let runs: Vec<String> = steps.iter().filter_map(|step| step["run"].as_str().map(str::to_owned)).collect();
        let scripts: Vec<String> = steps.iter().filter_map(|step| step["with"]["script"].as_str().map(str::to_owned)).collect();
        match name.as_str().unwrap() {
            "plan" => {
                assert!(job["if"].as_str().unwrap().contains("pull_request"));
                assert!(runs.iter().any(|run| run.contains("--format markdown")), "{runs:?}");
                assert!(
                    scripts.iter().any(|script| script.contains("updateComment") && script.contains("<!-- mlops-plan -->")),
                    "one comment, updated"
                );
            }
            "apply" => {
                assert!(job["if"].as_str().unwrap().contains("refs/heads/main"));
                assert!(runs.iter().any(|run| run.starts_with("mlops plan") && run.contains("-out mlops.plan")), "{runs:?}");
                assert!(runs.iter().any(|run| run.starts_with("mlops apply mlops.plan")), "applies the saved plan: {runs:?}");
            }
            _ => {}
        }
        github_lines.extend(runs);
    }
    let mut gitlab_lines = Vec::new();
    for job in ["check", "plan", "apply"] {
        assert!(gitlab[job]["script"].is_sequence(), "GitLab job {job} has no script");
        gitlab_lines.extend(strings(&gitlab[job]["script"]));
    }

    // Every mlops command either file runs parses, options included.
    for (file, lines) in [("mlops.yml", &github_lines), (".gitlab-ci.yml", &gitlab_lines)] {
        let commands = mlops_commands(lines);
        assert!(commands.len() >= 5, "{file}: {commands:?}");
        for arguments in commands {
            let mut with_help: Vec<&str> = arguments.iter().map(String::as_str).collect();
            with_help.push("--help");
            let output = mlops(&with_help, &example);
            assert_eq!(
                output.status.code(),
                Some(0),
                "{file}: `mlops {}` is not a command mlops has:\n{}",
                arguments.join(" "),
                text(&output.stderr)
            );
        }
    }
    // And the configuration it deploys is valid, warnings included.
    let output = mlops(&["validate", ".", "-warnings-as-errors"], &example);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

#[test]
fn a_reserved_key_from_a_variable_is_refused_when_the_value_is_known() {
    let directory = scratch("reserved-key");
    std::fs::write(
        directory.join("main.mlops.hcl"),
        "variable \"tags\" {\n  type    = map(string)\n  default = { \"$ref\" = \"dataset.other\" }\n}\n\nbucket \"lake\" {\n  name = \"acme-lake\"\n  tags = var.tags\n}\n",
    )
    .unwrap();
    // Known once the variable's value is: plan refuses it before any
    // provider sees a map that would read as a reference.
    let plan = mlops(&["plan"], &directory);
    assert_eq!(plan.status.code(), Some(1), "{}", text(&plan.stderr));
    assert!(text(&plan.stderr).contains("E0417 reserved-key"), "{}", text(&plan.stderr));
    assert!(!directory.join(".mlops/objects/acme-lake").exists());
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn warnings_pass_validate_unless_ci_says_otherwise() {
    let directory = "compiler/tests/fixtures/invalid/gpu-training-without-timeout";
    let output = mlops(&["validate", directory], &repository());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("The configuration is valid: 3 resources checked, 1 warning(s)."), "{}", text(&output.stdout));
    assert!(text(&output.stderr).contains("W0102 gpu-training-without-timeout"), "{}", text(&output.stderr));

    let strict = mlops(&["validate", directory, "-warnings-as-errors"], &repository());
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict.stderr));
    assert!(text(&strict.stderr).contains("--warnings-as-errors makes them fail the check"), "{}", text(&strict.stderr));

    let json = mlops(&["validate", directory, "--json"], &repository());
    assert_eq!(json.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(report.to_string().contains("\"warning\""), "{report}");
    assert!(report.to_string().contains("W0102"), "{report}");
}

/// Advisory policies are advice: shown, counted apart, and never a failure,
/// not even with -warnings-as-errors.
#[test]
fn advisory_policies_never_fail_validate() {
    let directory = "compiler/tests/fixtures/invalid/policy-advisory";
    for arguments in [vec!["validate", directory], vec!["validate", directory, "-warnings-as-errors"]] {
        let output = mlops(&arguments, &repository());
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert!(text(&output.stdout).contains("2 resources checked, 1 advisory finding(s)."), "{}", text(&output.stdout));
        assert!(text(&output.stderr).contains("W0106 policy-advisory"), "{}", text(&output.stderr));
    }
    let json = mlops(&["validate", directory, "--json"], &repository());
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        (report["valid"].as_bool(), report["warning_count"].as_u64(), report["advice_count"].as_u64()),
        (Some(true), Some(0), Some(1))
    );
    assert_eq!(report["diagnostics"][0]["severity"], "advice");
}

/// Terraform's CI scripts pass `-lock=false` and `-lock-timeout` to plan:
/// both are accepted (a plan never takes the lock), and a bad duration is
/// refused as any duration is.
#[test]
fn plan_accepts_terraforms_lock_options() {
    let directory = scratch("plan-lock");
    std::fs::write(directory.join("main.mlops.hcl"), "bucket \"lake\" {\n  name = \"acme-lake\"\n}\n").unwrap();
    for arguments in [["plan", "-lock=false"], ["plan", "-lock-timeout=5m"]] {
        let output = mlops(&arguments, &directory);
        assert_eq!(output.status.code(), Some(0), "{arguments:?}: {}", text(&output.stderr));
        assert!(text(&output.stdout).contains("1 to add"), "{}", text(&output.stdout));
    }
    let output = mlops(&["plan", "-lock-timeout=5"], &directory);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("E0404 invalid-duration"), "{}", text(&output.stderr));
}

#[test]
fn validate_reports_every_error_with_location_and_exits_1() {
    let output = mlops(&["validate", "compiler/tests/fixtures/invalid/many-errors-in-one-run"], &repository());
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("5 errors found."), "{stderr}");
    assert!(stderr.contains("compiler/tests/fixtures/invalid/many-errors-in-one-run/main.mlops.hcl:"), "{stderr}");
    assert!(stderr.contains("E0203 undeclared-metric"), "{stderr}");
}

#[test]
fn validate_json_is_the_documented_shape() {
    let output = mlops(&["validate", "--json", "compiler/tests/fixtures/invalid/unknown-attribute-reference"], &repository());
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert_eq!(report["format_version"], "1.0");
    assert_eq!(report["valid"], false);
    assert_eq!(report["error_count"], 3);
    let diagnostic = &report["diagnostics"][0];
    assert_eq!(diagnostic["code"], "E0202");
    assert_eq!(diagnostic["name"], "unknown-attribute-reference");
    assert_eq!(diagnostic["range"]["start"]["line"], 16);
    assert_eq!(diagnostic["range"]["start"]["column"], 22);
    assert_eq!(diagnostic["help"], "did you mean `row_count`?");
    assert_eq!(diagnostic["snippet"], "  value = dataset.tx.rows");
}

#[test]
fn missing_empty_and_non_utf8_inputs_get_clear_errors() {
    let missing = mlops(&["validate", "does-not-exist"], &scratch("missing"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("E0003 unreadable-file"), "{}", text(&missing.stderr));
    assert!(text(&missing.stderr).contains("it does not exist"));

    let empty = scratch("empty");
    let output = mlops(&["validate", "."], &empty);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("E0005 no-configuration"), "{}", text(&output.stderr));

    let binary = scratch("binary");
    std::fs::write(binary.join("main.mlops.hcl"), b"bucket \"b\" {\n  name = \"\xff\xfe\"\n}\n").unwrap();
    let output = mlops(&["validate", "."], &binary);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("E0004 invalid-utf8") && stderr.contains("line 2, column 11"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn fmt_check_lists_unformatted_files_and_fmt_fixes_them_keeping_comments() {
    let directory = scratch("fmt");
    let path = directory.join("main.mlops.hcl");
    std::fs::write(&path, "# keep this comment\nbucket \"b\"{\n name=\"b\" # and this one\n      versioning=true\n}\n").unwrap();
    let check = mlops(&["fmt", "--check", "."], &directory);
    assert_eq!(check.status.code(), Some(3));
    assert!(text(&check.stdout).contains("main.mlops.hcl"));
    assert_eq!(mlops(&["fmt", "."], &directory).status.code(), Some(0));
    let formatted = std::fs::read_to_string(&path).unwrap();
    assert_eq!(formatted, "# keep this comment\nbucket \"b\" {\n  name       = \"b\" # and this one\n  versioning = true\n}\n");
    assert_eq!(mlops(&["fmt", "--check", "."], &directory).status.code(), Some(0));
}

#[test]
fn fmt_refuses_a_file_that_does_not_parse_and_leaves_it_untouched() {
    let directory = scratch("fmt-bad");
    let path = directory.join("main.mlops.hcl");
    let original = "bucket \"b\" {\n  name = \n}\n";
    std::fs::write(&path, original).unwrap();
    let output = mlops(&["fmt", "."], &directory);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("E0001 syntax-error"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
}

#[test]
fn the_examples_are_formatted() {
    let output = mlops(&["fmt", "--check", "--recursive", "examples"], &repository());
    assert_eq!(output.status.code(), Some(0), "{}{}", text(&output.stdout), text(&output.stderr));
}

#[test]
fn explain_prints_the_long_form_by_code_or_name() {
    let by_code = mlops(&["explain", "E0403"], &repository());
    assert_eq!(by_code.status.code(), Some(0));
    assert!(text(&by_code.stdout).starts_with("# E0403 invalid-quantity"));
    let by_name = mlops(&["explain", "invalid-quantity"], &repository());
    assert_eq!(by_code.stdout, by_name.stdout);
    let unknown = mlops(&["explain", "E9999"], &repository());
    assert_eq!(unknown.status.code(), Some(1));
}

#[test]
fn schema_prints_a_kind_and_suggests_on_typos() {
    let output = mlops(&["schema", "dataset"], &repository());
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("row_count") && stdout.contains("computed") && stdout.contains("csv | parquet | jsonl"), "{stdout}");
    let json = mlops(&["schema", "training", "--json"], &repository());
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed[0]["body"]["attributes"]["inputs"]["ty"], "map(ref(dataset, feature_set, training_set))");
    let typo = mlops(&["schema", "datset"], &repository());
    assert_eq!(typo.status.code(), Some(1));
    assert!(text(&typo.stderr).contains("did you mean `dataset`?"));
}

#[test]
fn drift_compares_two_locations_and_reports_bad_ones_clearly() {
    let directory = scratch("drift");
    std::fs::create_dir_all(directory.join("reference")).unwrap();
    std::fs::create_dir_all(directory.join("current")).unwrap();
    let rows = |offset: usize| -> String { (0..100).map(|row| format!("{},{}\n", offset + row % 20, 30 + row % 10)).collect() };
    std::fs::write(directory.join("reference/a.csv"), format!("amount,age\n{}", rows(0))).unwrap();
    std::fs::write(directory.join("current/b.csv"), format!("amount,age\n{}", rows(50))).unwrap();
    let output = mlops(
        &["drift", "--reference", "reference", "--current", "current", "--columns", "amount,age", "--output", "report.json"],
        &directory,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(directory.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["drifted"], true, "{report}");
    assert!(report["scores"]["amount"].as_f64().unwrap() > 0.2, "{report}");
    assert_eq!(report["scores"]["age"], 0.0, "{report}");
    assert_eq!(text(&output.stdout).trim(), report.to_string());

    let missing = mlops(&["drift", "--reference", "nowhere", "--current", "current", "--columns", "amount"], &directory);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("cannot compute drift: `nowhere` does not exist"), "{}", text(&missing.stderr));
    let unknown =
        mlops(&["drift", "--reference", "reference", "--current", "current", "--columns", "amount", "--method", "chi2"], &directory);
    assert_ne!(unknown.status.code(), Some(0));
    assert!(text(&unknown.stderr).contains("[possible values: psi, ks, wasserstein, kl_div]"), "{}", text(&unknown.stderr));
    let _ = std::fs::remove_dir_all(&directory);
}

/// What a feature set's shard is given wrong (by hand, or a pod without
/// its index) ends in one message with a code, never a panic, and writes
/// no report.
#[test]
fn a_feature_shard_given_the_wrong_things_says_what_is_wrong() {
    let directory = scratch("features-shard");
    let report = directory.join("report.json");
    let report_argument = report.display().to_string();
    for (arguments, expected) in [
        (vec!["--spec", "{}", "--count", "2", "--output", "s3://lake/features/"], "which shard this is is not known"),
        (vec!["--spec", "not json", "--index", "0", "--count", "2", "--output", "s3://lake/features/"], "the shard's --spec is not JSON"),
        (
            vec!["--spec", "{\"config\": {}}", "--index", "0", "--count", "2", "--output", "s3://lake/features/"],
            "names no input uri and format",
        ),
        (
            vec![
                "--spec",
                "{\"config\": {}, \"input\": {\"uri\": \"s3://lake/data/\", \"format\": \"csv\"}}",
                "--index",
                "3",
                "--count",
                "2",
                "--output",
                "s3://lake/features/",
            ],
            "shard 3 of 2 does not exist",
        ),
    ] {
        let mut all = vec!["features-shard"];
        all.extend(arguments);
        all.extend(["--report", report_argument.as_str()]);
        let output = mlops(&all, &directory);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{all:?}: {stderr}");
        assert!(stderr.contains("E0701") && stderr.contains(expected), "{all:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!report.exists(), "a report was written for a shard that failed");
    }
}
