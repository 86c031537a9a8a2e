//! Time-window aggregations per entity, point-in-time correct: for each row
//! (an event of an entity at time t), an aggregate over the rows of the
//! same entity whose time is in `(t - window, t]` (or `(t - window, t)`
//! when `exclusive`), so that a training row never sees what happened
//! after it.
//!
//! One pass over the dataset keeps only what the aggregates need (the
//! entity as a number, the time, the aggregated values), sorted by entity
//! and time; two pointers bound each row's window, so the work is
//! O(n log n) for the sort and O(n) after it, whatever the window's size.
//! The results are per row, in the dataset's order, for the streaming
//! pass that writes the features.

use std::collections::{HashMap, VecDeque};

use mlops_provider_api::{ProviderError, ProviderResult};
use serde_json::Value as Json;

use crate::features::{DatasetFiles, Values};
use crate::frame::{read_batches, shown_value, ColumnData, ReadPlan};

/// What an aggregate computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Rows in the window (or non-null values of `column`, when set).
    Count,
    Sum,
    Mean,
    Min,
    Max,
    /// Distinct non-null values of `column`.
    CountDistinct,
    /// The latest non-null value of `column`.
    Last,
}

impl Function {
    pub fn parse(text: &str) -> Option<Function> {
        Some(match text {
            "count" => Function::Count,
            "sum" => Function::Sum,
            "mean" => Function::Mean,
            "min" => Function::Min,
            "max" => Function::Max,
            "count_distinct" => Function::CountDistinct,
            "last" => Function::Last,
            _ => return None,
        })
    }
}

/// One `aggregate` block.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub name: String,
    pub function: Function,
    pub column: Option<String>,
    /// The window's length; all earlier history when `None`.
    pub window_micros: Option<i64>,
    pub exclusive: bool,
}

/// What one aggregate reads, per row, in the dataset's order.
enum Input {
    None,
    Numbers(Vec<Option<f64>>),
    /// Values as small numbers (equal values, equal numbers), for distinct counts.
    Identities(Vec<Option<u32>>),
    /// The values themselves, for `last`.
    Values(Kept),
}

/// The values of a column `last` reads, typed as declared.
enum Kept {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
}

impl Kept {
    fn is_present(&self, index: usize) -> bool {
        match self {
            Kept::Int(values) => values[index].is_some(),
            Kept::Float(values) => values[index].is_some(),
            Kept::Bool(values) => values[index].is_some(),
            Kept::Text(values) => values[index].is_some(),
        }
    }
}

/// The rows as the aggregates need them.
struct Events {
    /// Each row's entity, numbered from 0 in order of appearance.
    entities: Vec<u32>,
    entity_count: usize,
    times: Vec<i64>,
    inputs: Vec<Input>,
}

/// Reads the dataset once and computes every aggregate for every row.
pub fn compute_aggregates(
    dataset: &DatasetFiles<'_>,
    entity: &str,
    timestamp: &str,
    aggregates: &[Aggregate],
) -> ProviderResult<Vec<Values>> {
    let events = read_events(dataset, entity, timestamp, aggregates)?;
    let rows = events.times.len();
    // Rows by entity, then time, then position in the dataset: entity ids
    // are dense, so a counting sort places each entity's rows together (in
    // file order), and each entity's few rows are then sorted by time, all
    // entities at once.
    let mut starts = vec![0usize; events.entity_count + 1];
    for &entity in &events.entities {
        starts[entity as usize + 1] += 1;
    }
    for index in 1..starts.len() {
        starts[index] += starts[index - 1];
    }
    let mut keyed: Vec<(i64, u32)> = vec![(0, 0); rows];
    let mut next = starts.clone();
    for (row, &entity) in events.entities.iter().enumerate() {
        keyed[next[entity as usize]] = (events.times[row], row as u32);
        next[entity as usize] += 1;
    }
    {
        use rayon::prelude::*;
        let mut groups: Vec<&mut [(i64, u32)]> = Vec::with_capacity(events.entity_count);
        let mut rest = keyed.as_mut_slice();
        for window in starts.windows(2) {
            let (group, after) = rest.split_at_mut(window[1] - window[0]);
            groups.push(group);
            rest = after;
        }
        groups.par_iter_mut().for_each(|group| group.sort_unstable());
    }
    let order: Vec<u32> = keyed.iter().map(|(_, row)| *row).collect();
    let sorted_times: Vec<i64> = keyed.iter().map(|(time, _)| *time).collect();
    drop(keyed);
    let mut results: Vec<Values> = aggregates
        .iter()
        .zip(&events.inputs)
        .map(|(aggregate, input)| match (aggregate.function, input) {
            (Function::Count | Function::CountDistinct, _) => Values::Int(vec![Some(0); rows]),
            (Function::Last, Input::Values(Kept::Int(_))) => Values::Int(vec![None; rows]),
            (Function::Last, Input::Values(Kept::Bool(_))) => Values::Bool(vec![None; rows]),
            (Function::Last, Input::Values(Kept::Text(_))) => Values::Text(vec![None; rows]),
            _ => Values::Float(vec![None; rows]),
        })
        .collect();
    for window in starts.windows(2) {
        let (start, end) = (window[0], window[1]);
        for ((aggregate, input), result) in aggregates.iter().zip(&events.inputs).zip(&mut results) {
            aggregate_group(&order[start..end], &sorted_times[start..end], aggregate, input, result);
        }
    }
    Ok(results)
}

fn read_events(dataset: &DatasetFiles<'_>, entity: &str, timestamp: &str, aggregates: &[Aggregate]) -> ProviderResult<Events> {
    let mut wanted = vec![entity.to_owned(), timestamp.to_owned()];
    for aggregate in aggregates {
        if let Some(column) = &aggregate.column {
            if !wanted.contains(column) {
                wanted.push(column.clone());
            }
        }
    }
    let plan = ReadPlan::new(dataset.columns, Some(&wanted)).checking_unread(!dataset.validated);
    let mut entity_ids: HashMap<String, u32, foldhash::fast::RandomState> = HashMap::default();
    let mut value_ids: Vec<HashMap<String, u32>> = aggregates.iter().map(|_| HashMap::new()).collect();
    let mut events = Events {
        entities: Vec::new(),
        entity_count: 0,
        times: Vec::new(),
        inputs: aggregates
            .iter()
            .map(|aggregate| match (aggregate.function, &aggregate.column) {
                (_, None) => Input::None,
                (Function::Count | Function::Sum | Function::Mean | Function::Min | Function::Max, Some(_)) => Input::Numbers(Vec::new()),
                (Function::CountDistinct, Some(_)) => Input::Identities(Vec::new()),
                (Function::Last, Some(column)) => {
                    let declared = dataset.columns.and_then(|columns| columns.iter().find(|declared| &declared.name == column));
                    Input::Values(match declared.map(|declared| declared.column_type.as_str()) {
                        Some("int") => Kept::Int(Vec::new()),
                        Some("float") => Kept::Float(Vec::new()),
                        Some("bool") => Kept::Bool(Vec::new()),
                        _ => Kept::Text(Vec::new()),
                    })
                }
            })
            .collect(),
    };
    read_batches(dataset.files, dataset.format, &plan, |batch| {
        let column = |name: &str| -> ProviderResult<&ColumnData> {
            batch.names.iter().position(|candidate| candidate == name).and_then(|at| batch.columns[at].as_ref()).ok_or_else(|| {
                ProviderError::with_help(
                    format!("`{}` has no column `{name}`", batch.file.display()),
                    "fix the data, or the feature set's columns",
                )
            })
        };
        let entities = column(entity)?;
        // Its absence is an error; its values are read by `required_time`.
        column(timestamp)?;
        for index in 0..batch.rows {
            // Text entities (the usual) are looked up without a copy.
            let id = match entities.text(index) {
                Some(text) => entity_ids.get(text).copied(),
                None => None,
            };
            let id = id.unwrap_or_else(|| {
                let key = match entities.json(index) {
                    Json::String(text) => text,
                    other => other.to_string(),
                };
                let next = entity_ids.len() as u32;
                *entity_ids.entry(key).or_insert(next)
            });
            events.entities.push(id);
            events.times.push(batch.required_time(timestamp, index)?);
        }
        for ((aggregate, input), ids) in aggregates.iter().zip(&mut events.inputs).zip(&mut value_ids) {
            let Some(name) = &aggregate.column else { continue };
            let data = column(name)?;
            match input {
                Input::None => {}
                Input::Numbers(numbers)
                    if aggregate.function != Function::Count && matches!(data, ColumnData::Float(_) | ColumnData::Int(_)) =>
                {
                    match data {
                        ColumnData::Float(values) => numbers.extend_from_slice(values),
                        ColumnData::Int(values) => numbers.extend(values.iter().map(|value| value.map(|number| number as f64))),
                        _ => {}
                    }
                }
                Input::Numbers(numbers) => {
                    for index in 0..batch.rows {
                        numbers.push(match data.json(index) {
                            Json::Null => None,
                            value if aggregate.function == Function::Count => Some(f64::from(u8::from(!value.is_null()))),
                            Json::Number(number) => number.as_f64(),
                            other => {
                                return Err(ProviderError::with_help(
                                    format!(
                                        "`{}` {}, column `{name}`: {} is not a number",
                                        batch.file.display(),
                                        batch.position(index),
                                        shown_value(&other)
                                    ),
                                    "declare the column int or float in the dataset's schema",
                                ))
                            }
                        });
                    }
                }
                Input::Identities(identities) => {
                    for index in 0..batch.rows {
                        identities.push(match data.json(index) {
                            Json::Null => None,
                            value => {
                                let next = ids.len() as u32;
                                Some(*ids.entry(value.to_string()).or_insert(next))
                            }
                        });
                    }
                }
                Input::Values(values) => {
                    for index in 0..batch.rows {
                        let value = data.json(index);
                        match values {
                            Kept::Int(out) => out.push(value.as_i64()),
                            Kept::Float(out) => out.push(value.as_f64()),
                            Kept::Bool(out) => out.push(value.as_bool()),
                            Kept::Text(out) => out.push(match value {
                                Json::Null => None,
                                Json::String(text) => Some(text),
                                other => Some(other.to_string()),
                            }),
                        }
                    }
                }
            }
        }
        Ok(())
    })?;
    events.entity_count = entity_ids.len();
    if events.times.len() > u32::MAX as usize {
        return Err(ProviderError::failed("a feature set with aggregates reads at most 4,294,967,295 rows"));
    }
    Ok(events)
}

/// The aggregate over each row of one entity's rows (`group`, sorted by
/// time), written to the rows' places in `result`.
/// `times` are the group's times, in its order.
fn aggregate_group(group: &[u32], times: &[i64], aggregate: &Aggregate, input: &Input, result: &mut Values) {
    let time = |position: usize| times[position];
    let length = group.len();
    // Prefix sums and counts of the non-null numbers, for count, sum and mean.
    let (mut sums, mut counts) = (Vec::new(), Vec::new());
    if let Input::Numbers(numbers) = input {
        if matches!(aggregate.function, Function::Count | Function::Sum | Function::Mean) {
            sums.reserve(length + 1);
            counts.reserve(length + 1);
            let (mut sum, mut count) = (0.0, 0u64);
            sums.push(sum);
            counts.push(count);
            for &row in group {
                if let Some(number) = numbers[row as usize] {
                    sum += number;
                    count += 1;
                }
                sums.push(sum);
                counts.push(count);
            }
        }
    }
    // For min and max: positions whose values may still be the extreme.
    let mut candidates: VecDeque<usize> = VecDeque::new();
    let mut distinct: HashMap<u32, u32> = HashMap::new();
    let (mut low, mut high) = (0usize, 0usize);
    // The latest position at or before each with a non-null value, for last.
    let mut latest: Vec<Option<usize>> = Vec::new();
    if let Input::Values(values) = input {
        let mut seen = None;
        for (position, &row) in group.iter().enumerate() {
            if values.is_present(row as usize) {
                seen = Some(position);
            }
            latest.push(seen);
        }
    }
    for position in 0..length {
        let now = time(position);
        // The window is positions [low, high): up to the rows at `now`
        // (those before it when exclusive), from the first after `now - window`.
        let mut new_high = high;
        while new_high < length && (time(new_high) < now || (!aggregate.exclusive && time(new_high) == now)) {
            new_high += 1;
        }
        let mut new_low = low;
        if let Some(window) = aggregate.window_micros {
            while new_low < new_high && time(new_low) <= now.saturating_sub(window) {
                new_low += 1;
            }
        }
        // Incremental state follows the window: enter on the right, leave on the left.
        match (aggregate.function, input) {
            (Function::Min | Function::Max, Input::Numbers(numbers)) => {
                let value = |position: usize| numbers[group[position] as usize];
                for entering in high..new_high {
                    let Some(number) = value(entering) else { continue };
                    while let Some(&back) = candidates.back() {
                        let kept = value(back).expect("only values are candidates");
                        let dominated = if aggregate.function == Function::Min { kept >= number } else { kept <= number };
                        if !dominated {
                            break;
                        }
                        candidates.pop_back();
                    }
                    candidates.push_back(entering);
                }
                while candidates.front().is_some_and(|&front| front < new_low) {
                    candidates.pop_front();
                }
            }
            (Function::CountDistinct, Input::Identities(identities)) => {
                for entering in high..new_high {
                    if let Some(identity) = identities[group[entering] as usize] {
                        *distinct.entry(identity).or_insert(0) += 1;
                    }
                }
                for leaving in low..new_low {
                    if let Some(identity) = identities[group[leaving] as usize] {
                        if let Some(count) = distinct.get_mut(&identity) {
                            *count -= 1;
                            if *count == 0 {
                                distinct.remove(&identity);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        (low, high) = (new_low, new_high.max(new_low));
        let row = group[position] as usize;
        match (aggregate.function, input, &mut *result) {
            (Function::Count, Input::None, Values::Int(out)) => out[row] = Some((high - low) as i64),
            (Function::Count, Input::Numbers(_), Values::Int(out)) => out[row] = Some((counts[high] - counts[low]) as i64),
            (Function::Sum, _, Values::Float(out)) => out[row] = Some(sums[high] - sums[low]),
            (Function::Mean, _, Values::Float(out)) => {
                let count = counts[high] - counts[low];
                out[row] = (count > 0).then(|| (sums[high] - sums[low]) / count as f64);
            }
            (Function::Min | Function::Max, Input::Numbers(numbers), Values::Float(out)) => {
                out[row] = candidates.front().and_then(|&front| numbers[group[front] as usize]);
            }
            (Function::CountDistinct, _, Values::Int(out)) => out[row] = Some(distinct.len() as i64),
            (Function::Last, Input::Values(values), result) => {
                let found = high.checked_sub(1).and_then(|last| latest[last]).filter(|&found| found >= low && found < high);
                let source = found.map(|found| group[found] as usize);
                match (result, values) {
                    (Values::Int(out), Kept::Int(values)) => out[row] = source.and_then(|source| values[source]),
                    (Values::Float(out), Kept::Float(values)) => out[row] = source.and_then(|source| values[source]),
                    (Values::Bool(out), Kept::Bool(values)) => out[row] = source.and_then(|source| values[source]),
                    (Values::Text(out), Kept::Text(values)) => out[row] = source.and_then(|source| values[source].clone()),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;

    fn columns() -> Vec<Column> {
        let column = |name: &str, column_type: &str| Column {
            name: name.into(),
            column_type: column_type.into(),
            nullable: true,
            ..Column::default()
        };
        vec![column("customer", "string"), column("time", "timestamp"), column("amount", "float"), column("merchant", "string")]
    }

    fn aggregate(name: &str, function: Function, column: Option<&str>, window_hours: Option<i64>, exclusive: bool) -> Aggregate {
        Aggregate {
            name: name.into(),
            function,
            column: column.map(str::to_owned),
            window_micros: window_hours.map(|hours| hours * 3_600_000_000),
            exclusive,
        }
    }

    fn run(csv: &str, aggregates: &[Aggregate]) -> ProviderResult<Vec<Values>> {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("events.csv");
        std::fs::write(&file, csv).unwrap();
        let columns = columns();
        let files = [file];
        compute_aggregates(
            &DatasetFiles { files: &files, format: "csv", columns: Some(&columns), validated: false },
            "customer",
            "time",
            aggregates,
        )
    }

    #[test]
    fn no_row_sees_the_future() {
        // Written latest first, so that the file's order cannot hide a leak:
        // each later event is ten times the one before, so any future row
        // in a sum shows at once.
        let csv = "customer,time,amount,merchant\n\
                   a,2026-01-10T00:00:00Z,1000,z\n\
                   b,2026-01-01T00:00:00Z,5,q\n\
                   a,2026-01-03T00:00:00Z,100,y\n\
                   a,2026-01-02T00:00:00Z,10,x\n\
                   a,2026-01-01T00:00:00Z,1,x\n\
                   a,2026-01-03T00:00:00Z,100000,w\n";
        let aggregates = [
            aggregate("sum_inclusive", Function::Sum, Some("amount"), None, false),
            aggregate("sum_exclusive", Function::Sum, Some("amount"), None, true),
            aggregate("sum_2d", Function::Sum, Some("amount"), Some(48), false),
            aggregate("count_2d_exclusive", Function::Count, None, Some(48), true),
            aggregate("last_exclusive", Function::Last, Some("amount"), None, true),
            aggregate("merchants", Function::CountDistinct, Some("merchant"), None, false),
            aggregate("max_2d", Function::Max, Some("amount"), Some(48), false),
            aggregate("mean_exclusive", Function::Mean, Some("amount"), Some(48), true),
        ];
        let results = run(csv, &aggregates).unwrap();
        let floats = |index: usize| match &results[index] {
            Values::Float(values) => values.clone(),
            other => panic!("{other:?}"),
        };
        let ints = |index: usize| match &results[index] {
            Values::Int(values) => values.clone(),
            other => panic!("{other:?}"),
        };
        // Rows in file order: a@10, b@1, a@3, a@2, a@1, a@3 (the two at day 3 see each other).
        assert_eq!(floats(0), [Some(101_111.0), Some(5.0), Some(100_111.0), Some(11.0), Some(1.0), Some(100_111.0)]);
        assert_eq!(floats(1), [Some(100_111.0), Some(0.0), Some(11.0), Some(1.0), Some(0.0), Some(11.0)]);
        // Two days back from day 3 reaches past day 1 (not at or before 3 - 2 = 1).
        assert_eq!(floats(2), [Some(1000.0), Some(5.0), Some(100_110.0), Some(11.0), Some(1.0), Some(100_110.0)]);
        assert_eq!(ints(3), [Some(0), Some(0), Some(1), Some(1), Some(0), Some(1)]);
        // The latest before day 10 is the later of the two rows at day 3 in the file.
        assert_eq!(floats(4), [Some(100_000.0), None, Some(10.0), Some(1.0), None, Some(10.0)]);
        // Day 10 sees x, y, w and z; day 3 sees x (twice), y and w.
        assert_eq!(ints(5), [Some(4), Some(1), Some(3), Some(1), Some(1), Some(3)]);
        assert_eq!(floats(6), [Some(1000.0), Some(5.0), Some(100_000.0), Some(10.0), Some(1.0), Some(100_000.0)]);
        assert_eq!(floats(7), [None, None, Some(10.0), Some(1.0), None, Some(10.0)]);
    }

    #[test]
    fn the_last_value_before_a_row_is_the_latest_known_one() {
        let csv = "customer,time,amount,merchant\n\
                   a,2026-01-01,1,x\n\
                   a,2026-01-02,,y\n\
                   a,2026-01-03,3,z\n";
        let results = run(
            csv,
            &[
                aggregate("last", Function::Last, Some("amount"), None, true),
                aggregate("last_merchant", Function::Last, Some("merchant"), None, false),
            ],
        )
        .unwrap();
        assert_eq!(results[0], Values::Float(vec![None, Some(1.0), Some(1.0)]));
        assert_eq!(results[1], Values::Text(vec![Some("x".into()), Some("y".into()), Some("z".into())]));
    }

    #[test]
    fn sliding_windows_agree_with_looking_at_every_row() {
        // A generated history against the plain definition, row by row.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let mut csv = String::from("customer,time,amount,merchant\n");
        let mut events = Vec::new();
        for _ in 0..3_000 {
            let customer = next(40);
            let hour = next(24 * 28) as i64;
            let amount = (next(5) > 0).then(|| next(1000) as f64 / 10.0);
            let merchant = next(12);
            csv.push_str(&format!(
                "c{customer},2026-01-{:02}T{:02}:00:00Z,{},m{merchant}\n",
                1 + hour / 24,
                hour % 24,
                amount.map(|amount| amount.to_string()).unwrap_or_default()
            ));
            events.push((customer, hour, amount, merchant));
        }
        for exclusive in [false, true] {
            let aggregates = [
                aggregate("count", Function::Count, None, Some(72), exclusive),
                aggregate("sum", Function::Sum, Some("amount"), Some(72), exclusive),
                aggregate("min", Function::Min, Some("amount"), Some(72), exclusive),
                aggregate("max", Function::Max, Some("amount"), None, exclusive),
                aggregate("distinct", Function::CountDistinct, Some("merchant"), Some(24), exclusive),
            ];
            let results = run(&csv, &aggregates).unwrap();
            for (row, &(customer, hour, _, _)) in events.iter().enumerate() {
                let in_window = |hours: Option<i64>| {
                    events
                        .iter()
                        .filter(move |(other, when, _, _)| {
                            *other == customer
                                && (if exclusive { *when < hour } else { *when <= hour })
                                && hours.is_none_or(|hours| *when > hour - hours)
                        })
                        .collect::<Vec<_>>()
                };
                let window = in_window(Some(72));
                let amounts: Vec<f64> = window.iter().filter_map(|event| event.2).collect();
                let Values::Int(count) = &results[0] else { panic!() };
                assert_eq!(count[row], Some(window.len() as i64), "count of row {row}");
                let Values::Float(sum) = &results[1] else { panic!() };
                assert!((sum[row].unwrap() - amounts.iter().sum::<f64>()).abs() < 1e-6, "sum of row {row}");
                let Values::Float(min) = &results[2] else { panic!() };
                assert_eq!(min[row], amounts.iter().copied().reduce(f64::min), "min of row {row}");
                let all: Vec<f64> = in_window(None).iter().filter_map(|event| event.2).collect();
                let Values::Float(max) = &results[3] else { panic!() };
                assert_eq!(max[row], all.iter().copied().reduce(f64::max), "max of row {row}");
                let mut merchants: Vec<u64> = in_window(Some(24)).iter().map(|event| event.3).collect();
                merchants.sort_unstable();
                merchants.dedup();
                let Values::Int(distinct) = &results[4] else { panic!() };
                assert_eq!(distinct[row], Some(merchants.len() as i64), "distinct of row {row}");
            }
        }
    }

    #[test]
    fn a_row_without_a_time_names_its_row() {
        let error =
            run("customer,time,amount,merchant\na,2026-01-01,1,x\na,,2,y\n", &[aggregate("count", Function::Count, None, None, false)])
                .unwrap_err();
        assert!(error.to_string().contains("events.csv` line 3, column `time`: the row has no time"), "{error}");
    }

    #[test]
    fn a_time_that_is_not_a_time_names_its_row() {
        let error = run(
            "customer,time,amount,merchant\na,2026-01-01,1,x\na,last tuesday,2,y\n",
            &[aggregate("count", Function::Count, None, None, false)],
        )
        .unwrap_err();
        // The schema says `time` is a timestamp, so reading the row says so.
        assert!(error.to_string().contains("events.csv` line 3, column `time`: `last tuesday` is not a timestamp"), "{error}");
    }
}
