//! Rendered manifests for every training, serving and monitor variant.
//!
//! Each case is a JSON file in `tests/manifests/`: a resource's resolved
//! configuration, the provider block, and what comes from upstream (inputs,
//! the model version). The rendered objects are snapshotted as YAML in
//! `snapshots/manifests/`, and every object of a built-in kind must survive
//! a round trip through k8s-openapi's typed structs unchanged: a field the
//! API does not know would be dropped by that round trip, and the test
//! names it.

use std::path::PathBuf;

use mlops_provider_kubernetes::render::{self, ModelVersion, RolloutPhase, Settings};
use serde_json::Value as Json;

fn cases() -> Vec<(String, Json)> {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
    let mut cases: Vec<(String, Json)> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .map(|path| {
            let case = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (path.file_stem().unwrap().to_string_lossy().into_owned(), case)
        })
        .collect();
    cases.sort_by(|left, right| left.0.cmp(&right.0));
    cases
}

fn render_case(case: &Json) -> Vec<Json> {
    let text = |name: &str| case[name].as_str().unwrap_or_default().to_owned();
    let config = case["config"].as_object().cloned().unwrap();
    let settings = Settings::from_provider_config(case["provider"].as_object().unwrap());
    match text("kind").as_str() {
        "training" => {
            let inputs = serde_json::from_value(case["inputs"].clone()).unwrap();
            vec![render::training(&text("address"), &text("run_id"), &config, &inputs, &settings).unwrap().manifest]
        }
        "serving" => {
            let model: ModelVersion = serde_json::from_value(case["model"].clone()).unwrap();
            let phase = if text("phase") == "green_without_traffic" { RolloutPhase::GreenWithoutTraffic } else { RolloutPhase::Final };
            render::serving(&text("address"), &config, &model, phase, &settings).unwrap()
        }
        "monitor" => vec![render::monitor(&text("address"), &config, &text("reference_uri"), &settings).unwrap()],
        other => panic!("unknown case kind {other}"),
    }
}

/// Serialises `object` through the typed struct of its kind and back.
fn typed_round_trip(object: &Json) -> Option<Json> {
    fn through<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Json) -> Json {
        let typed: T = serde_json::from_value(object.clone()).unwrap_or_else(|error| panic!("not a valid {}: {error}", object["kind"]));
        serde_json::to_value(typed).unwrap()
    }
    use k8s_openapi::api::{
        apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler, batch::v1::CronJob, batch::v1::Job, core::v1::Service,
    };
    Some(match object["kind"].as_str()? {
        "Job" => through::<Job>(object),
        "CronJob" => through::<CronJob>(object),
        "Deployment" => through::<Deployment>(object),
        "Service" => through::<Service>(object),
        "HorizontalPodAutoscaler" => through::<HorizontalPodAutoscaler>(object),
        _ => return None,
    })
}

#[test]
fn every_variant_renders_as_snapshotted() {
    for (name, case) in cases() {
        let objects = render_case(&case);
        let yaml: Vec<String> = objects.iter().map(|object| serde_yaml::to_string(object).unwrap()).collect();
        insta::with_settings!({ snapshot_path => "../../../snapshots/manifests", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(name.as_str(), yaml.join("---\n"));
        });
    }
}

#[test]
fn built_in_kinds_carry_only_fields_the_api_knows() {
    for (name, case) in cases() {
        for object in render_case(&case) {
            if let Some(round_tripped) = typed_round_trip(&object) {
                let lost = mlops_provider_kubernetes::live::differences(&object, &round_tripped);
                assert!(
                    lost.is_empty(),
                    "{name}: {} {:?} changed in a typed round trip: {lost:#?}",
                    object["kind"],
                    object["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn custom_resources_have_their_required_fields() {
    for (name, case) in cases() {
        for object in render_case(&case) {
            match object["kind"].as_str() {
                Some("TrainJob") => {
                    assert_eq!(object["apiVersion"], "trainer.kubeflow.org/v1alpha1", "{name}");
                    assert!(object.pointer("/spec/runtimeRef/name").is_some_and(Json::is_string), "{name}: runtimeRef.name");
                    assert!(object.pointer("/spec/trainer/numNodes").is_some_and(Json::is_i64), "{name}: numNodes");
                    assert!(object.pointer("/spec/trainer/resourcesPerNode/limits").is_some(), "{name}: resourcesPerNode");
                }
                Some("InferenceService") => {
                    assert_eq!(object["apiVersion"], "serving.kserve.io/v1beta1", "{name}");
                    let containers = object.pointer("/spec/predictor/containers").and_then(Json::as_array).unwrap();
                    assert_eq!(containers[0]["name"], "kserve-container", "{name}");
                    let percent = object.pointer("/spec/predictor/canaryTrafficPercent");
                    assert!(percent.is_none_or(|percent| percent.as_i64().is_some_and(|percent| (0..=100).contains(&percent))), "{name}");
                }
                _ => {}
            }
        }
    }
}

#[test]
fn names_are_valid_kubernetes_names() {
    for address in ["serving.fraud_api", "module.platform.training.baseline[\"eu-west\"]", &format!("training.{}", "x".repeat(80))] {
        let name = render::object_name(address, 63);
        assert!(name.len() <= 63, "{name}");
        assert!(name.chars().all(|character| character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-'), "{name}");
        assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
    }
    assert_ne!(
        render::object_name(&format!("training.{}a", "x".repeat(80)), 63),
        render::object_name(&format!("training.{}b", "x".repeat(80)), 63)
    );
}
