//! What a plan's changes cost, from the prices in provider blocks: on the
//! kubernetes provider, a training or batch prediction per run (its pods
//! for at most its timeout: an upper bound; for as long as its last run, the
//! expected figure) and a serving per month (730 hours, at its min and max
//! replicas); on the s3 provider, a dataset's stored data per month; and the
//! monthly change the plan makes. No IO: computed
//! from the plan for its renderers, so the saved plan's format does not
//! change.

use serde::Serialize;
use serde_json::Value as Json;

use crate::plan::{Plan, ResourceChange};
use mlops_provider_api::Action;

/// Hours in a month, as cloud price sheets count them.
pub const HOURS_PER_MONTH: f64 = 730.0;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prices {
    pub currency: String,
    pub gpu_hour: Vec<(String, f64)>,
    pub spot_gpu_hour: Vec<(String, f64)>,
    pub cpu_hour: f64,
    pub memory_gib_hour: f64,
    pub storage_gib_month: f64,
}

impl Prices {
    /// The `prices` block of a provider's settings, if it has one.
    pub fn from_provider_config(config: &serde_json::Map<String, Json>) -> Option<Prices> {
        let prices = config.get("prices")?.as_object()?;
        let table = |name: &str| -> Vec<(String, f64)> {
            prices
                .get(name)
                .and_then(Json::as_object)
                .map(|table| table.iter().filter_map(|(key, price)| Some((key.clone(), price.as_f64()?))).collect())
                .unwrap_or_default()
        };
        Some(Prices {
            currency: prices.get("currency").and_then(Json::as_str).unwrap_or("USD").to_owned(),
            gpu_hour: table("gpu_hour"),
            spot_gpu_hour: table("spot_gpu_hour"),
            cpu_hour: prices.get("cpu_hour").and_then(Json::as_f64).unwrap_or(0.0),
            memory_gib_hour: prices.get("memory_gib_hour").and_then(Json::as_f64).unwrap_or(0.0),
            storage_gib_month: prices.get("storage_gib_month").and_then(Json::as_f64).unwrap_or(0.0),
        })
    }

    fn gpu(&self, gpu_type: Option<&str>, spot: bool) -> Option<f64> {
        let find = |table: &[(String, f64)]| {
            let key = gpu_type.unwrap_or("default");
            table.iter().find(|(name, _)| name == key).or_else(|| table.iter().find(|(name, _)| name == "default")).map(|(_, price)| *price)
        };
        if spot {
            find(&self.spot_gpu_hour).or_else(|| find(&self.gpu_hour))
        } else {
            find(&self.gpu_hour)
        }
    }
}

/// What one pod asks for, and what an hour of it costs.
#[derive(Debug, Clone, PartialEq)]
struct Pod {
    gpus: f64,
    gpu_type: Option<String>,
    hourly: f64,
    /// Why the figure is lower than it should be (a GPU model with no price).
    missing: Option<String>,
}

fn pod(config: &serde_json::Map<String, Json>, prices: &Prices, spot: bool) -> Pod {
    let resources = match config.get("resources") {
        Some(Json::Array(items)) => items.first().and_then(Json::as_object).cloned().unwrap_or_default(),
        Some(Json::Object(resources)) => resources.clone(),
        _ => serde_json::Map::new(),
    };
    let cpu = match resources.get("cpu") {
        Some(Json::Number(number)) => number.as_f64().unwrap_or(0.0),
        Some(Json::String(text)) => mlops_units::parse_quantity(text).unwrap_or(0.0),
        _ => 0.0,
    };
    let memory_gib = resources.get("memory").and_then(Json::as_str).and_then(mlops_units::parse_quantity).unwrap_or(0.0) / 1_073_741_824.0;
    let gpus = resources.get("gpus").and_then(Json::as_f64).unwrap_or(0.0);
    let gpu_type = resources.get("gpu_type").and_then(Json::as_str).map(str::to_owned);
    let mut hourly = cpu * prices.cpu_hour + memory_gib * prices.memory_gib_hour;
    let mut missing = None;
    if gpus > 0.0 {
        match prices.gpu(gpu_type.as_deref(), spot) {
            Some(price) => hourly += gpus * price,
            None => missing = Some(format!("no price for GPU model `{}`", gpu_type.as_deref().unwrap_or("default"))),
        }
    }
    Pod { gpus, gpu_type, hourly, missing }
}

fn hours(config: &serde_json::Map<String, Json>) -> Option<f64> {
    let timeout = config.get("timeout").and_then(Json::as_str)?;
    mlops_units::parse_duration_signed(timeout).ok().map(|milliseconds| milliseconds as f64 / 3_600_000.0)
}

/// One change's estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLine {
    pub address: String,
    pub action: String,
    /// At most this per run (trainings, batch predictions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_run: Option<f64>,
    /// What the run is expected to cost: as long as the last run took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_run_expected: Option<f64>,
    /// Per month at min and max replicas (servings), after the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly: Option<(f64, f64)>,
    /// Per month before the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_before: Option<(f64, f64)>,
    /// What the figure is made of, in words.
    pub basis: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CostReport {
    pub currency: String,
    pub lines: Vec<CostLine>,
    /// The change in monthly cost the plan makes, at min and max replicas.
    pub monthly_delta: (f64, f64),
}

/// A serving's monthly cost at its min and max replicas.
fn serving_monthly(config: &serde_json::Map<String, Json>, prices: &Prices) -> ((f64, f64), String) {
    let replicas = match config.get("replicas") {
        Some(Json::Array(items)) => items.first().and_then(Json::as_object).cloned().unwrap_or_default(),
        Some(Json::Object(replicas)) => replicas.clone(),
        _ => serde_json::Map::new(),
    };
    let min = replicas.get("min").and_then(Json::as_f64).unwrap_or(1.0);
    let max = replicas.get("max").and_then(Json::as_f64).unwrap_or(min).max(min);
    let pod = pod(config, prices, false);
    let monthly = (min * pod.hourly * HOURS_PER_MONTH, max * pod.hourly * HOURS_PER_MONTH);
    let replicas = if min == max { format!("{min} replica(s)") } else { format!("{min}-{max} replicas") };
    let gpus = if pod.gpus > 0.0 { format!(" with {} {}", pod.gpus, pod.gpu_type.as_deref().unwrap_or("GPU(s)")) } else { String::new() };
    let missing = pod.missing.map(|missing| format!("; {missing}")).unwrap_or_default();
    (monthly, format!("{replicas}{gpus} for {HOURS_PER_MONTH} hours{missing}"))
}

fn line(change: &ResourceChange, prices: &Prices) -> Option<CostLine> {
    let after = change.after.as_ref().filter(|_| !matches!(change.action, Action::Delete | Action::Forget));
    let before = change.before.as_ref();
    let action = change.action.verb().to_owned();
    match change.kind.as_str() {
        "dataset" if prices.storage_gib_month > 0.0 => {
            let monthly = |attributes: &serde_json::Map<String, Json>| {
                let bytes = attributes.get("size_bytes").and_then(Json::as_f64)?;
                let month = bytes / 1_073_741_824.0 * prices.storage_gib_month;
                Some(((month, month), bytes))
            };
            let now = after.and_then(monthly);
            let was = before.filter(|_| change.action != Action::Create).and_then(monthly);
            let basis = match &now {
                Some((_, bytes)) => format!("{:.3} GiB stored", bytes / 1_073_741_824.0),
                None if after.is_some() => "its size is known after apply".to_owned(),
                None => "removed".to_owned(),
            };
            Some(CostLine {
                address: change.address.clone(),
                action,
                per_run: None,
                per_run_expected: None,
                monthly: now.map(|(monthly, _)| monthly),
                monthly_before: was.map(|(monthly, _)| monthly),
                basis,
            })
        }
        "serving" => {
            let now = after.map(|config| serving_monthly(config, prices));
            let was = before.filter(|_| change.action != Action::Create).map(|config| serving_monthly(config, prices).0);
            let basis = now.as_ref().map_or_else(|| "removed".to_owned(), |(_, basis)| basis.clone());
            Some(CostLine {
                address: change.address.clone(),
                action,
                per_run: None,
                per_run_expected: None,
                monthly: now.map(|(monthly, _)| monthly),
                monthly_before: was,
                basis,
            })
        }
        "training" | "batch_prediction" if matches!(change.action, Action::Create | Action::Replace | Action::Update) => {
            let config = after?;
            let spot = config.get("spot").and_then(Json::as_bool).unwrap_or(false);
            let pod = pod(config, prices, spot);
            let pods = match config.get("distributed") {
                Some(Json::Object(distributed)) => distributed.get("nodes").and_then(Json::as_f64).unwrap_or(1.0),
                Some(Json::Array(items)) => items.first().and_then(|item| item.get("nodes")).and_then(Json::as_f64).unwrap_or(1.0),
                _ => config.get("shards").and_then(Json::as_f64).unwrap_or(1.0),
            };
            let hours = hours(config)?;
            let last_hours =
                before.and_then(|before| before.get("duration_seconds")).and_then(Json::as_f64).map(|seconds| seconds / 3600.0);
            let gpus = if pod.gpus > 0.0 {
                format!("{} {}{}", pod.gpus, pod.gpu_type.as_deref().unwrap_or("GPU(s)"), if spot { " on spot" } else { "" })
            } else {
                "CPU".to_owned()
            };
            let missing = pod.missing.map(|missing| format!("; {missing}")).unwrap_or_default();
            Some(CostLine {
                address: change.address.clone(),
                action,
                per_run: Some(pods * pod.hourly * hours),
                per_run_expected: last_hours.map(|last| pods * pod.hourly * last.min(hours)),
                monthly: None,
                monthly_before: None,
                basis: format!("{pods} pod(s) x {gpus} for at most {hours}h{missing}"),
            })
        }
        _ => None,
    }
}

/// The estimates of `plan`, when a provider the changes run on has prices.
pub fn estimate(plan: &Plan) -> Option<CostReport> {
    let mut report: Option<CostReport> = None;
    for change in plan.changes.iter().filter(|change| change.is_change() && !change.is_data) {
        let Some(prices) = plan
            .provider_configurations
            .get(&change.provider_key)
            .and_then(|configuration| Prices::from_provider_config(&configuration.config))
        else {
            continue;
        };
        let Some(line) = line(change, &prices) else { continue };
        let report = report.get_or_insert_with(|| CostReport { currency: prices.currency.clone(), ..CostReport::default() });
        let (now, was) = (line.monthly.unwrap_or((0.0, 0.0)), line.monthly_before.unwrap_or((0.0, 0.0)));
        report.monthly_delta.0 += now.0 - was.0;
        report.monthly_delta.1 += now.1 - was.1;
        report.lines.push(line);
    }
    report
}

/// A cost as the plan shows it: two decimals.
pub fn money(amount: f64) -> String {
    format!("{amount:.2}")
}

/// A monthly range as the plan shows it: `120.45` or `120.45-602.25`.
pub fn range((low, high): (f64, f64)) -> String {
    if (high - low).abs() < 0.005 {
        money(low)
    } else {
        format!("{}-{}", money(low), money(high))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prices() -> Prices {
        Prices::from_provider_config(
            json!({ "prices": { "currency": "EUR", "gpu_hour": { "nvidia-h100": 4.0, "default": 2.0 }, "spot_gpu_hour": { "nvidia-h100": 1.5 }, "cpu_hour": 0.05, "memory_gib_hour": 0.01 } })
                .as_object()
                .unwrap(),
        )
        .unwrap()
    }

    fn change(kind: &str, action: Action, before: Option<Json>, after: Option<Json>) -> ResourceChange {
        ResourceChange {
            address: format!("{kind}.x"),
            kind: kind.to_owned(),
            action,
            before: before.and_then(|value| value.as_object().cloned()),
            after: after.and_then(|value| value.as_object().cloned()),
            ..ResourceChange::default()
        }
    }

    #[test]
    fn a_training_costs_its_pods_for_at_most_its_timeout() {
        let training = json!({ "resources": { "gpus": 8, "gpu_type": "nvidia-h100", "cpu": 32, "memory": "256Gi" }, "timeout": "3h", "distributed": { "nodes": 2 } });
        let line = line(&change("training", Action::Create, None, Some(training.clone())), &prices()).unwrap();
        // 2 nodes x (8 x 4.0 + 32 x 0.05 + 256 x 0.01) x 3h
        assert!((line.per_run.unwrap() - 2.0 * (32.0 + 1.6 + 2.56) * 3.0).abs() < 1e-9, "{line:?}");
        assert_eq!(line.per_run_expected, None, "no run yet, nothing to expect");
        let last = json!({ "duration_seconds": 5400 });
        let replaced = super::line(&change("training", Action::Replace, Some(last), Some(training.clone())), &prices()).unwrap();
        assert!(
            (replaced.per_run_expected.unwrap() - 2.0 * (32.0 + 1.6 + 2.56) * 1.5).abs() < 1e-9,
            "as long as the last run: {replaced:?}"
        );
        let mut spot = training;
        spot["spot"] = json!(true);
        let line = super::line(&change("training", Action::Create, None, Some(spot)), &prices()).unwrap();
        assert!((line.per_run.unwrap() - 2.0 * (12.0 + 1.6 + 2.56) * 3.0).abs() < 1e-9, "spot GPUs at the spot price: {line:?}");
    }

    #[test]
    fn a_serving_costs_its_replicas_every_month_and_the_plan_says_the_change() {
        let before = json!({ "replicas": { "min": 1, "max": 1 }, "resources": { "cpu": "500m", "memory": "1Gi" } });
        let after = json!({ "replicas": { "min": 2, "max": 4 }, "resources": { "cpu": "500m", "memory": "1Gi" } });
        let hourly = 0.5 * 0.05 + 0.01;
        let line = line(&change("serving", Action::Update, Some(before), Some(after)), &prices()).unwrap();
        let (low, high) = line.monthly.unwrap();
        assert!((low - 2.0 * hourly * HOURS_PER_MONTH).abs() < 1e-9 && (high - 4.0 * hourly * HOURS_PER_MONTH).abs() < 1e-9);
        assert!((line.monthly_before.unwrap().0 - hourly * HOURS_PER_MONTH).abs() < 1e-9);
        assert_eq!(line.basis, "2-4 replicas for 730 hours");
    }

    #[test]
    fn a_gpu_without_a_price_is_said_not_priced_at_zero_silently() {
        let training = json!({ "resources": { "gpus": 1, "gpu_type": "tpu-v5" }, "timeout": "1h" });
        let mut prices = prices();
        prices.gpu_hour.retain(|(name, _)| name != "default");
        let line = line(&change("training", Action::Create, None, Some(training)), &prices).unwrap();
        assert!(line.basis.contains("no price for GPU model `tpu-v5`"), "{}", line.basis);
    }

    #[test]
    fn stored_data_costs_its_size_every_month() {
        let prices = Prices::from_provider_config(json!({ "prices": { "storage_gib_month": 0.023 } }).as_object().unwrap()).unwrap();
        let before = json!({ "size_bytes": 10.0 * 1_073_741_824.0 });
        let after = json!({ "size_bytes": 30.0 * 1_073_741_824.0 });
        let line = line(&change("dataset", Action::Update, Some(before), Some(after)), &prices).unwrap();
        assert!((line.monthly.unwrap().0 - 30.0 * 0.023).abs() < 1e-9 && (line.monthly_before.unwrap().0 - 10.0 * 0.023).abs() < 1e-9);
        assert_eq!(line.basis, "30.000 GiB stored");
    }

    #[test]
    fn ranges_read_as_one_figure_when_min_and_max_agree() {
        assert_eq!(range((12.0, 12.0)), "12.00");
        assert_eq!(range((12.0, 48.5)), "12.00-48.50");
    }
}
