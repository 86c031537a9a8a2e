//! The columnar feature engine against the language's own evaluator: the
//! same features computed both ways, over data built to hit every kernel's
//! edge (nulls, zeros, negatives, values outside a function's domain,
//! schema-less columns of mixed types), must give the same bytes, or the
//! same error at the same row.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mlops_data::features::{compute_features, DatasetFiles};
use mlops_data::Column;
use mlops_engine::row_expression::LanguageRowEvaluator;
use mlops_provider_api::{ApplyContext, ProviderError, RowEvaluator};
use serde_json::{json, Value as Json};

struct TestContext;

impl ApplyContext for TestContext {
    fn record_handle(&self, _handle: Json) -> Result<(), ProviderError> {
        Ok(())
    }
    fn progress(&self, _message: &str) {}
    fn interrupted(&self) -> bool {
        false
    }
    fn row_evaluator(&self) -> &dyn RowEvaluator {
        &LanguageRowEvaluator
    }
    fn fetch(&self, _uri: &str, _destination: &Path) -> Result<(), ProviderError> {
        Err(ProviderError::failed("no fetch in this test"))
    }
}

/// A small deterministic generator, so that a failure replays.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn column(name: &str, column_type: &str, nullable: bool) -> Column {
    Column { name: name.into(), column_type: column_type.into(), nullable, ..Column::default() }
}

/// Rows with every kind of awkward value, as CSV text.
fn generated_csv(rows: usize) -> String {
    let mut numbers = Numbers(0x9e37_79b9_7f4a_7c15);
    let mut text = String::from("id,amount,count,flag,kind,loose\n");
    for index in 0..rows {
        let amount = match numbers.below(10) {
            0 => String::new(),
            1 => "0".into(),
            2 => "-1".into(),
            3 => "-0.5".into(),
            _ => format!("{}.{}", numbers.below(1000), numbers.below(100)),
        };
        let count = match numbers.below(8) {
            0 => String::new(),
            1 => "0".into(),
            _ => numbers.below(50).to_string(),
        };
        let flag = ["true", "false", "", "yes", "0"][numbers.below(5) as usize];
        let kind = ["card", "Wire", "cash", "", "ÉCU"][numbers.below(5) as usize];
        // Schema-less: numbers, words and booleans in one column.
        let loose = match numbers.below(6) {
            0 => "word".into(),
            1 => "true".into(),
            2 => String::new(),
            _ => numbers.below(100).to_string(),
        };
        writeln!(text, "c{index:05},{amount},{count},{flag},{kind},{loose}").unwrap();
    }
    text
}

fn schema() -> Vec<Column> {
    vec![
        column("id", "string", false),
        column("amount", "float", true),
        column("count", "int", true),
        column("flag", "bool", true),
        column("kind", "string", true),
    ]
}

/// What the features were before columns: each row through the compiled
/// expression, written as one JSON object per line.
fn reference(files: &[PathBuf], format: &str, columns: &[Column], features: &[(&str, &str, &str)]) -> Result<Vec<u8>, (usize, String)> {
    let compiled: Vec<_> = features.iter().map(|(_, _, expression)| LanguageRowEvaluator.compile(expression).unwrap()).collect();
    let mut bytes = Vec::new();
    let mut failure = None;
    let read = mlops_data::for_each_row(files, format, Some(columns), |_, line, row| {
        let mut out = serde_json::Map::new();
        out.insert("id".into(), row.get("id").cloned().unwrap_or(Json::Null));
        for ((name, feature_type, _), compiled) in features.iter().zip(&compiled) {
            let value = match compiled.evaluate(&row) {
                Ok(value) => value,
                Err(error) => {
                    failure = Some((line, error));
                    return Err(ProviderError::Interrupted);
                }
            };
            let value = match (*feature_type, &value) {
                ("int", Json::Number(number)) => json!(number.as_f64().unwrap().round() as i64),
                _ => value,
            };
            out.insert((*name).to_owned(), value);
        }
        serde_json::to_writer(&mut bytes, &Json::Object(out)).unwrap();
        bytes.push(b'\n');
        Ok(())
    });
    match (read, failure) {
        (Ok(_), _) => Ok(bytes),
        (Err(_), Some(failure)) => Err(failure),
        (Err(error), None) => panic!("the rows cannot be read: {error}"),
    }
}

fn columnar(
    files: &[PathBuf],
    format: &str,
    columns: &[Column],
    features: &[(&str, &str, &str)],
    output: &str,
    directory: &Path,
) -> Result<(Vec<u8>, PathBuf), String> {
    let mut feature_blocks = serde_json::Map::new();
    for (name, feature_type, expression) in features {
        feature_blocks.insert((*name).to_owned(), json!({ "type": feature_type, "expr": { "$expr": expression } }));
    }
    let config = json!({ "entity": "id", "format": output, "feature": feature_blocks });
    let input = DatasetFiles { files, format, columns: Some(columns), validated: false };
    let computed =
        compute_features(&mlops_provider_api::configuration_from_json(config.as_object().unwrap()), &input, directory, &TestContext)
            .map_err(|error| error.to_string())?;
    let bytes = std::fs::read(&computed.file).unwrap();
    assert_eq!(computed.version, format!("b3:{}", blake3::hash(&bytes).to_hex()), "the version is the content hash");
    Ok((bytes, computed.file))
}

const FEATURES: &[(&str, &str, &str)] = &[
    ("amount", "float", "row.amount"),
    ("doubled", "float", "row.amount * 2 + 1"),
    ("ratio", "float", "row.amount / row.count"),
    ("remainder", "float", "row.count % 7"),
    ("log", "float", "log1p(row.amount)"),
    ("log2", "float", "log(row.amount, 2)"),
    ("mixed", "float", "min(row.amount, row.count, 10) - max(abs(row.amount), floor(row.amount), ceil(-row.amount))"),
    ("exp", "float", "exp(row.count / 10)"),
    ("rounded", "int", "row.amount * 3"),
    ("count", "int", "row.count"),
    ("big", "bool", "row.amount >= 10 && row.count < 20 || !row.flag"),
    ("same", "bool", "row.kind == \"card\" || row.kind != null && row.amount == 0"),
    ("label", "string", "row.amount > 100 ? upper(row.kind) : lower(\"${row.id}-${row.kind}\")"),
    ("maybe", "float", "row.flag ? row.amount : null"),
    ("parsed", "float", "tonumber(row.count) + 0.5"),
    ("loose", "float", "row.loose + 1"),
    ("loose_text", "string", "row.loose == \"word\" ? \"w\" : \"other\""),
    ("constant", "int", "42"),
    ("unlowered", "int", "length([row.count, row.amount])"),
];

#[test]
fn every_feature_gives_what_the_language_gives_row_by_row() {
    let directory = tempfile::tempdir().unwrap();
    let csv = directory.path().join("rows.csv");
    std::fs::write(&csv, generated_csv(3_000)).unwrap();
    // The same rows as JSON Lines, read with the same schema.
    let jsonl = directory.path().join("rows.jsonl");
    let mut lines = String::new();
    mlops_data::for_each_row(std::slice::from_ref(&csv), "csv", Some(&schema()), |_, _, row| {
        lines.push_str(&serde_json::to_string(&row).unwrap());
        lines.push('\n');
        Ok(())
    })
    .unwrap();
    std::fs::write(&jsonl, lines).unwrap();
    let mut columns = schema();
    columns.push(column("loose", "string", true));
    for (file, format) in [(&csv, "csv"), (&jsonl, "jsonl")] {
        let files = [file.clone()];
        // Schema-less `loose` only in CSV, where it is typed per value.
        let columns = if format == "csv" { schema() } else { columns.clone() };
        let mut agreed = 0;
        for feature in FEATURES {
            if format == "jsonl" && feature.0.starts_with("loose") {
                continue;
            }
            let features = [*feature];
            let expected = reference(&files, format, &columns, &features);
            let output = directory.path().join(format!("out-{format}-{}", feature.0));
            let actual = columnar(&files, format, &columns, &features, "jsonl", &output);
            match (&expected, &actual) {
                (Ok(expected), Ok((actual, _))) => {
                    assert!(
                        expected == actual,
                        "{format} {}: the columns give other bytes than the rows\nrows:    {}\ncolumns: {}",
                        feature.0,
                        String::from_utf8_lossy(&expected[..expected.len().min(400)]),
                        String::from_utf8_lossy(&actual[..actual.len().min(400)])
                    );
                    agreed += 1;
                }
                (Err((line, message)), Err(actual)) => {
                    assert!(
                        actual.contains(&format!("line {line}, feature `{}`: {message}", feature.0)),
                        "{format} {}: expected the error of line {line} ({message}), got {actual}",
                        feature.0
                    );
                    assert!(!output.join("features.jsonl").exists(), "nothing is left of a failed computation");
                }
                _ => panic!("{format} {}: the rows give {expected:?}, the columns {actual:?}", feature.0),
            }
        }
        assert!(agreed >= 8, "{format}: most features compute ({agreed} did)");
    }
}

#[test]
fn parquet_output_holds_the_same_values_with_the_declared_types() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let directory = tempfile::tempdir().unwrap();
    let csv = directory.path().join("rows.csv");
    std::fs::write(&csv, generated_csv(200_000)).unwrap();
    let files = [csv];
    let features = [
        ("doubled", "float", "row.amount == null ? 0 : row.amount * 2"),
        ("count", "int", "row.count == null ? -1 : row.count"),
        ("card", "bool", "row.kind == \"card\""),
        ("kind", "string", "row.kind == null ? \"none\" : lower(row.kind)"),
    ];
    let (jsonl, _) = columnar(&files, "csv", &schema(), &features, "jsonl", &directory.path().join("jsonl")).unwrap();
    let (_, parquet_file) = columnar(&files, "csv", &schema(), &features, "parquet", &directory.path().join("parquet")).unwrap();
    let (again, _) = columnar(&files, "csv", &schema(), &features, "parquet", &directory.path().join("again")).unwrap();
    assert_eq!(std::fs::read(&parquet_file).unwrap(), again, "the same features give the same bytes");

    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&parquet_file).unwrap()).unwrap();
    let schema = reader.schema().clone();
    let types: Vec<String> = schema.fields().iter().map(|field| format!("{}:{}", field.name(), field.data_type())).collect();
    assert_eq!(types, ["id:Utf8", "doubled:Float64", "count:Int64", "card:Boolean", "kind:Utf8"]);
    let mut rows = Vec::new();
    for batch in reader.build().unwrap() {
        let batch = batch.unwrap();
        for index in 0..batch.num_rows() {
            let mut row = BTreeMap::new();
            row.insert("id", json!(batch.column(0).as_string::<i32>().value(index)));
            row.insert("doubled", mlops_compiler::value::json_number(batch.column(1).as_primitive::<Float64Type>().value(index)));
            row.insert("count", json!(batch.column(2).as_primitive::<Int64Type>().value(index)));
            row.insert("card", json!(batch.column(3).as_boolean().value(index)));
            row.insert("kind", json!(batch.column(4).as_string::<i32>().value(index)));
            rows.push(row);
        }
    }
    let expected: Vec<BTreeMap<String, Json>> =
        String::from_utf8(jsonl).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(rows.len(), 200_000);
    for (row, expected) in rows.iter().zip(&expected) {
        for (name, value) in row {
            assert_eq!(Some(value), expected.get(*name), "{name} of {row:?}");
        }
    }
}

#[test]
fn a_bad_row_names_the_file_the_line_and_the_column_and_leaves_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let csv = directory.path().join("rows.csv");
    let mut text = generated_csv(100_000);
    // Line 70,002: a count that is not a whole number.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[70_001] = "c70000,1.5,2.5,true,card,1".into();
    text = lines.join("\n") + "\n";
    std::fs::write(&csv, text).unwrap();
    let output = directory.path().join("out");
    let error = columnar(std::slice::from_ref(&csv), "csv", &schema(), &[("x", "float", "row.amount")], "parquet", &output).unwrap_err();
    assert!(error.contains(&format!("`{}` line 70002, column `count`: `2.5` is not a whole number", csv.display())), "{error}");
    let left: Vec<_> = std::fs::read_dir(&output).map(|entries| entries.collect()).unwrap_or_default();
    assert!(left.is_empty(), "nothing half-written: {left:?}");
}

#[test]
fn quotes_carriage_returns_and_empty_lines_read_as_the_csv_parser_reads_them() {
    let directory = tempfile::tempdir().unwrap();
    let generated = generated_csv(150_000);
    let mut lines: Vec<String> = generated.lines().map(str::to_owned).collect();
    // Plain for 100,000 rows, then a quoted field with a comma and a quote
    // in it, an empty line, and lines ending in CRLF.
    lines[100_001] = "c99999,1.5,2,true,\"wi,re \"\"fast\"\"\",1".into();
    lines.insert(100_002, String::new());
    for line in lines.iter_mut().skip(120_000) {
        line.push('\r');
    }
    let csv = directory.path().join("rows.csv");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let files = [csv.clone()];
    let features =
        [("label", "string", "row.kind == null ? \"none\" : lower(row.kind)"), ("count", "int", "row.count == null ? -1 : row.count")];
    let expected = reference(&files, "csv", &schema(), &features).unwrap();
    let (actual, _) = columnar(&files, "csv", &schema(), &features, "jsonl", &directory.path().join("out")).unwrap();
    assert!(String::from_utf8_lossy(&actual).contains("\"label\":\"wi,re \\\"fast\\\"\""));
    assert!(expected == actual, "the byte-splitting reader and the CSV parser disagree");

    // A bad row after the switch to the parser is named by its line, as the parser counts them.
    lines[130_000] = "c1,1.5,2.5,true,card,1\r".into();
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let error = columnar(&files, "csv", &schema(), &features, "jsonl", &directory.path().join("bad")).unwrap_err();
    let failure = mlops_data::for_each_row(&files, "csv", Some(&schema()), |_, _, _| Ok(())).unwrap_err();
    assert!(failure.to_string().contains("column `count`"), "{failure}");
    let position = failure.to_string().split(" line ").nth(1).unwrap().split(',').next().unwrap().to_owned();
    assert!(error.contains(&format!(" line {position}, column `count`: `2.5` is not a whole number")), "{error} / {failure}");
}

#[test]
fn columns_checked_when_the_data_was_stored_are_checked_again_only_where_they_are_read() {
    let directory = tempfile::tempdir().unwrap();
    let csv = directory.path().join("rows.csv");
    // `count` is not a whole number on line 3, and the feature does not read it.
    std::fs::write(&csv, "id,amount,count,flag,kind\na,1.5,2,true,card\nb,2.5,2.5,false,cash\n").unwrap();
    let files = [csv];
    let config = json!({ "entity": "id", "format": "jsonl", "feature": { "x": { "type": "float", "expr": { "$expr": "row.amount" } } } });
    let compute = |validated: bool, name: &str| {
        let input = DatasetFiles { files: &files, format: "csv", columns: Some(&schema()), validated };
        compute_features(
            &mlops_provider_api::configuration_from_json(config.as_object().unwrap()),
            &input,
            &directory.path().join(name),
            &TestContext,
        )
        .map(|computed| computed.row_count)
    };
    let error = compute(false, "unchecked").unwrap_err().to_string();
    assert!(error.contains("line 3, column `count`"), "{error}");
    assert_eq!(compute(true, "checked").unwrap(), 2);
}

#[test]
fn a_feature_file_that_cannot_be_written_says_why_and_leaves_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let csv = directory.path().join("rows.csv");
    std::fs::write(&csv, generated_csv(300_000)).unwrap();
    // Where the file would be written, a directory is in the way.
    let output = directory.path().join("out");
    let blocker = output.join(format!(".features.parquet.partial-{}", std::process::id()));
    std::fs::create_dir_all(&blocker).unwrap();
    let error = columnar(&[csv], "csv", &schema(), &[("x", "float", "row.amount")], "parquet", &output).unwrap_err();
    assert!(error.contains(&format!("cannot write `{}`", blocker.display())), "the writer's own reason: {error}");
    assert!(!output.join("features.parquet").exists());
}
