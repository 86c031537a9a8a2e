//! Drift scores between a reference dataset and current data, per column:
//! PSI, Kolmogorov-Smirnov, Wasserstein-1 and KL divergence.

use std::collections::BTreeMap;
use std::path::Path;

use mlops_provider_api::{Configuration, ProviderError, ProviderResult, Target, Value};
use serde_json::Value as Json;

use mlops_data as data;

/// The scores per column and whether any exceeds the threshold.
pub fn compute(target: &Target, config: &Configuration) -> ProviderResult<(Json, bool)> {
    let columns = crate::strings(config, "columns");
    let method = config.get("method").and_then(Value::as_str).unwrap_or("psi");
    let threshold = config.get("threshold").and_then(Value::as_f64).unwrap_or(0.2);
    let reference = config.get("reference").cloned().unwrap_or_default();
    let mut reference_values: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    crate::dataset_rows(target, &reference, None, |row| {
        for column in &columns {
            reference_values.entry(column.clone()).or_default().push(row.get(column).cloned().unwrap_or(Json::Null));
        }
        Ok(())
    })?;
    let current_location = config.get("current").and_then(Value::as_str).ok_or_else(|| ProviderError::failed("`current` is not set"))?;
    let current_values = column_values(&crate::path_of_uri(target, current_location), &columns)?;
    Ok(scores(&columns, method, threshold, &reference_values, &current_values))
}

/// Drift between the data files under two local directories (CSV or JSON
/// Lines, by extension): what a monitor's CronJob computes in the cluster.
pub fn compute_between(reference: &Path, current: &Path, columns: &[String], method: &str, threshold: f64) -> ProviderResult<(Json, bool)> {
    let reference_values = column_values(reference, columns)?;
    let current_values = column_values(current, columns)?;
    Ok(scores(columns, method, threshold, &reference_values, &current_values))
}

fn column_values(location: &Path, columns: &[String]) -> ProviderResult<BTreeMap<String, Vec<Json>>> {
    let files = data::data_files(location)?;
    let mut current_values: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    for file in &files {
        let format = match file.extension().and_then(|extension| extension.to_str()) {
            Some("jsonl") | Some("json") => "jsonl",
            Some("csv") => "csv",
            _ => continue,
        };
        data::for_each_row(std::slice::from_ref(file), format, None, |_, _, row| {
            for column in columns {
                current_values.entry(column.clone()).or_default().push(row.get(column).cloned().unwrap_or(Json::Null));
            }
            Ok(())
        })?;
    }
    Ok(current_values)
}

fn scores(
    columns: &[String],
    method: &str,
    threshold: f64,
    reference_values: &BTreeMap<String, Vec<Json>>,
    current_values: &BTreeMap<String, Vec<Json>>,
) -> (Json, bool) {
    let mut scores = serde_json::Map::new();
    let mut drifted = false;
    for column in columns {
        let reference = reference_values.get(column).cloned().unwrap_or_default();
        let current = current_values.get(column).cloned().unwrap_or_default();
        let score = score(method, &reference, &current);
        let rounded = (score * 1e6).round() / 1e6;
        drifted |= rounded > threshold;
        scores.insert(column.clone(), serde_json::Number::from_f64(rounded).map_or(Json::Null, Json::Number));
    }
    (Json::Object(scores), drifted)
}

fn numbers(values: &[Json]) -> Vec<f64> {
    let mut numbers: Vec<f64> = values
        .iter()
        .filter_map(|value| match value {
            Json::Number(number) => number.as_f64(),
            Json::Bool(flag) => Some(f64::from(u8::from(*flag))),
            Json::String(text) => text.trim().parse().ok(),
            _ => None,
        })
        .filter(|number: &f64| number.is_finite())
        .collect();
    numbers.sort_by(f64::total_cmp);
    numbers
}

fn score(method: &str, reference: &[Json], current: &[Json]) -> f64 {
    let reference_numbers = numbers(reference);
    let current_numbers = numbers(current);
    let numeric = !reference_numbers.is_empty() && reference_numbers.len() * 2 >= reference.iter().filter(|value| !value.is_null()).count();
    if !numeric {
        return categorical(method, reference, current);
    }
    if current_numbers.is_empty() {
        return 0.0;
    }
    match method {
        "ks" => kolmogorov_smirnov(&reference_numbers, &current_numbers),
        "wasserstein" => wasserstein(&reference_numbers, &current_numbers),
        "kl_div" => {
            let (expected, actual) = binned(&reference_numbers, &current_numbers);
            expected.iter().zip(&actual).map(|(expected, actual)| actual * (actual / expected).ln()).sum()
        }
        _ => {
            let (expected, actual) = binned(&reference_numbers, &current_numbers);
            expected.iter().zip(&actual).map(|(expected, actual)| (actual - expected) * (actual / expected).ln()).sum()
        }
    }
}

/// Proportions in ten quantile bins of the reference, smoothed so no bin is empty.
fn binned(reference: &[f64], current: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut edges: Vec<f64> = (1..10).map(|index| reference[(index * reference.len() / 10).min(reference.len() - 1)]).collect();
    edges.dedup();
    let bin = |value: f64| edges.iter().position(|edge| value < *edge).unwrap_or(edges.len());
    let proportions = |values: &[f64]| {
        let mut counts = vec![0.0; edges.len() + 1];
        for value in values {
            counts[bin(*value)] += 1.0;
        }
        let total = values.len() as f64;
        counts.into_iter().map(|count| (count / total).max(1e-4)).collect::<Vec<f64>>()
    };
    (proportions(reference), proportions(current))
}

fn kolmogorov_smirnov(reference: &[f64], current: &[f64]) -> f64 {
    let (mut left, mut right, mut largest) = (0usize, 0usize, 0.0f64);
    while left < reference.len() && right < current.len() {
        let value = reference[left].min(current[right]);
        while left < reference.len() && reference[left] <= value {
            left += 1;
        }
        while right < current.len() && current[right] <= value {
            right += 1;
        }
        largest = largest.max((left as f64 / reference.len() as f64 - right as f64 / current.len() as f64).abs());
    }
    largest
}

fn wasserstein(reference: &[f64], current: &[f64]) -> f64 {
    // The area between the two quantile functions, on a common grid.
    let steps = 200;
    let quantile = |values: &[f64], probability: f64| values[((probability * values.len() as f64) as usize).min(values.len() - 1)];
    (0..steps)
        .map(|step| (quantile(reference, (step as f64 + 0.5) / steps as f64) - quantile(current, (step as f64 + 0.5) / steps as f64)).abs())
        .sum::<f64>()
        / steps as f64
}

fn categorical(method: &str, reference: &[Json], current: &[Json]) -> f64 {
    let key = |value: &Json| value.as_str().map_or_else(|| value.to_string(), str::to_owned);
    let mut categories: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for value in reference {
        categories.entry(key(value)).or_default().0 += 1.0;
    }
    for value in current {
        categories.entry(key(value)).or_default().1 += 1.0;
    }
    let (reference_total, current_total) = (reference.len().max(1) as f64, current.len().max(1) as f64);
    categories
        .values()
        .map(|(expected, actual)| {
            let expected = (expected / reference_total).max(1e-4);
            let actual = (actual / current_total).max(1e-4);
            if method == "kl_div" {
                actual * (actual / expected).ln()
            } else {
                (actual - expected) * (actual / expected).ln()
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_data_does_not_drift_and_shifted_data_does() {
        let reference: Vec<Json> = (0..1000).map(|index| Json::from(index as f64)).collect();
        let shifted: Vec<Json> = (0..1000).map(|index| Json::from(index as f64 + 500.0)).collect();
        for method in ["psi", "ks", "wasserstein", "kl_div"] {
            assert!(score(method, &reference, &reference).abs() < 1e-9, "{method}");
            assert!(score(method, &reference, &shifted) > 0.2, "{method}");
        }
    }
}
