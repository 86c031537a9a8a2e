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

/// A case's configuration as the engine hands it over: the stdlib
/// schema's defaults for what it does not set, typed by the schema
/// (durations and quantities parsed), and the values at the paths
/// `sensitive` lists marked secret.
fn typed(json: &Json, schema: Option<&mlops_compiler::schema::KindSchema>, sensitive: &Json) -> mlops_provider_api::Configuration {
    let sensitive: Vec<Vec<String>> = serde_json::from_value(sensitive.clone()).unwrap_or_default();
    let mut config = json.as_object().cloned().unwrap_or_default();
    if let Some(schema) = schema {
        mlops_engine::convert::fill_defaults(&mut config, &schema.body);
    }
    mlops_engine::convert::provider_configuration(
        &config,
        schema.map(|schema| &schema.body),
        &sensitive,
        &std::collections::BTreeMap::new(),
    )
}

fn render_case(case: &Json) -> Vec<Json> {
    let text = |name: &str| case[name].as_str().unwrap_or_default().to_owned();
    let schemas = mlops_compiler::schema::Schemas::standard();
    let config = typed(&case["config"], schemas.kind(&text("kind"), false), &case["sensitive"]);
    let settings = Settings::from_provider_config(&typed(&case["provider"], schemas.providers.get("kubernetes"), &Json::Null)).unwrap();
    match text("kind").as_str() {
        "training" => {
            let inputs = serde_json::from_value(case["inputs"].clone()).unwrap();
            let rendered = render::training(&text("address"), &text("run_id"), &config, &inputs, &settings).unwrap();
            if !rendered.distributed {
                return rendered.secret.into_iter().chain([rendered.manifest]).collect();
            }
            // A distributed run's own TrainingRuntime, derived from the
            // runtime the cluster has, comes first.
            let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
            let base: Json = serde_json::from_slice(&std::fs::read(directory.join(text("base_runtime"))).unwrap()).unwrap();
            let base = render::BaseRuntime {
                kind: base["kind"].as_str().unwrap().to_owned(),
                name: base["metadata"]["name"].as_str().unwrap().to_owned(),
                spec: base["spec"].clone(),
                labels: base["metadata"]["labels"].clone(),
            };
            let runtime = render::training_runtime(&text("address"), &rendered, &base, &settings).unwrap();
            rendered.secret.into_iter().chain([runtime, rendered.manifest]).collect()
        }
        "serving" => {
            let model: ModelVersion = serde_json::from_value(case["model"].clone()).unwrap();
            let phase = if text("phase") == "green_without_traffic" { RolloutPhase::GreenWithoutTraffic } else { RolloutPhase::Final };
            render::serving(&text("address"), &config, &model, phase, &settings).unwrap()
        }
        "monitor" => vec![render::monitor(&text("address"), &config, &text("reference_uri"), &settings).unwrap()],
        "feature_set" => {
            let shards = config.get("shards").and_then(mlops_provider_api::Value::as_u64).unwrap();
            let output = format!("s3://acme-ml/runs/features/feature-set-txn/{}/", text("run_id"));
            vec![
                render::feature_shards(&text("address"), &text("run_id"), &case["spec"], shards, &output, &config, &settings)
                    .unwrap()
                    .manifest,
            ]
        }
        "batch_prediction" => {
            let model: ModelVersion = serde_json::from_value(case["model"].clone()).unwrap();
            let input = render::PredictionInput {
                uri: case["input"]["uri"].as_str().unwrap().to_owned(),
                format: case["input"]["format"].as_str().unwrap().to_owned(),
            };
            if config.contains_key("schedule") {
                return render::scheduled_batch_prediction(&text("address"), &config, &model, &input, &settings).unwrap();
            }
            let rendered = render::batch_prediction(&text("address"), &text("run_id"), &config, &model, &input, &settings).unwrap();
            rendered.secret.into_iter().chain([rendered.manifest]).collect()
        }
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
        apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler, batch::v1::CronJob, batch::v1::Job, core::v1::Secret,
        core::v1::Service,
    };
    Some(match object["kind"].as_str()? {
        "Job" => through::<Job>(object),
        "CronJob" => through::<CronJob>(object),
        "Deployment" => through::<Deployment>(object),
        "Service" => through::<Service>(object),
        "Secret" => through::<Secret>(object),
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

/// Every rendered object passes the schemas a real cluster checks it
/// against: the strict schemas of the oldest and the newest Kubernetes
/// minor, and every KServe and Trainer release the README claims.
#[test]
fn every_object_passes_the_real_schemas_of_every_supported_version() {
    use mlops_kubernetes_conformance::{builtin_directory, every_version, Schemas};
    let builtin = builtin_directory();
    let cases = cases();
    let mut failures = Vec::new();
    for versions in every_version() {
        let schemas = Schemas::load(&versions, builtin.as_deref()).unwrap();
        for (name, case) in &cases {
            // A case rendered against one release's runtime is checked
            // against that release.
            let releases = case["trainer"].as_array();
            if releases.is_some_and(|releases| !releases.iter().any(|release| release == versions.trainer.as_str())) {
                continue;
            }
            for object in render_case(case) {
                for problem in schemas.validate(&object) {
                    failures.push(format!("{name}: {} {} on {versions}: {problem}", object["kind"], object["metadata"]["name"]));
                }
            }
        }
    }
    failures.dedup();
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
}

/// The provider merges the lists it reads back (drift, taking fields back)
/// the way the API server keys them; `stdlib/kubernetes/list-keys.json`
/// must say what the real schemas say for every list it renders.
#[test]
fn list_keys_agree_with_the_real_schemas() {
    use mlops_kubernetes_conformance::{builtin_directory, every_version, list_paths, ListType, Schemas};
    let builtin = builtin_directory();
    let mut disagreements = Vec::new();
    for versions in every_version() {
        let schemas = Schemas::load(&versions, builtin.as_deref()).unwrap();
        for (name, case) in cases() {
            for object in render_case(&case) {
                let (api_version, kind) = (object["apiVersion"].as_str().unwrap(), object["kind"].as_str().unwrap());
                let built_in = api_version.split('/').count() == 1 || ["apps/v1", "batch/v1", "autoscaling/v2"].contains(&api_version);
                if built_in && !schemas.checks_built_in_kinds() {
                    continue;
                }
                for path in list_paths(&object).keys() {
                    let fields: Vec<&str> = path.iter().map(String::as_str).collect();
                    let real = match schemas.list_type(api_version, kind, &fields) {
                        ListType::Map(keys) => Some(keys),
                        ListType::Set | ListType::Atomic => None,
                    };
                    let ours = mlops_provider_kubernetes::live::list_keys(path).map(<[String]>::to_vec);
                    if real != ours {
                        disagreements
                            .push(format!("{name}: {kind} .{}: the schema keys it by {real:?}, mlops by {ours:?}", path.join(".")));
                    }
                }
            }
        }
    }
    disagreements.sort();
    disagreements.dedup();
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Every object passes the admission webhooks a cluster runs on it
/// (KServe's, Trainer's), and a Serverless predictor passes the Knative
/// validation KServe's controller meets when it creates the Knative
/// Service, with the features the case's provider block declares.
#[test]
fn every_object_passes_the_webhooks_and_knative() {
    use mlops_kubernetes_conformance::admission::{self, ClusterSettings};
    for (name, case) in cases() {
        let objects = render_case(&case);
        let exists = |_: &str, kind: &str, _: &str, object_name: &str| {
            objects.iter().any(|object| object["kind"] == kind && object["metadata"]["name"] == object_name)
        };
        let flags: Vec<String> = case["provider"]["knative_features"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(|feature| match feature {
                "init-containers" => "kubernetes.podspec-init-containers".to_owned(),
                "node-selector" => "kubernetes.podspec-nodeselector".to_owned(),
                other => format!("kubernetes.podspec-{other}"),
            })
            .collect();
        let settings = ClusterSettings { knative_features: flags.into_iter().collect() };
        for object in &objects {
            if let Err(denial) = admission::review(object, &exists) {
                panic!("{name}: {} {} is refused: {}", object["kind"], object["metadata"]["name"], denial.message);
            }
            match object["kind"].as_str() {
                Some("InferenceService") if !admission::kserve_is_raw(object) => {
                    if let Err(message) = admission::knative_pod_spec(&object["spec"]["predictor"], &settings) {
                        panic!("{name}: Knative refuses the predictor: {message}");
                    }
                }
                Some("TrainJob") => {
                    assert!(admission::jobset_starts(object["metadata"]["name"].as_str().unwrap()), "{name}: JobSet never starts it");
                }
                _ => {}
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
                    let length = object["metadata"]["name"].as_str().unwrap().len();
                    assert!(length <= render::TRAINJOB_NAME_LIMIT, "{name}: a TrainJob name of {length} characters");
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

/// A secret in `env` or the hyperparameters reaches the pods through a
/// Secret, and is in no other object: not in the Job or Deployment the
/// cluster shows, nor in what mlops records of them.
#[test]
fn secrets_reach_pods_through_a_secret_and_nothing_else_holds_them() {
    for (name, case) in cases() {
        let sensitive: Vec<Vec<String>> = serde_json::from_value(case["sensitive"].clone()).unwrap_or_default();
        if sensitive.is_empty() {
            continue;
        }
        let objects = render_case(&case);
        let secrets: Vec<&Json> = objects.iter().filter(|object| object["kind"] == "Secret").collect();
        assert_eq!(secrets.len(), 1, "{name}: one Secret");
        for path in &sensitive {
            let value = path.iter().fold(&case["config"], |value, part| &value[part.as_str()]);
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            let held_by: Vec<String> = objects
                .iter()
                .filter(|object| serde_json::to_string(object).unwrap().contains(&text))
                .map(|object| object["kind"].as_str().unwrap_or_default().to_owned())
                .collect();
            assert_eq!(held_by, ["Secret"], "{name}: `{}` is held by {held_by:?}", path.join("."));
            let recorded = serde_json::to_string(&render::without_secret_values(&objects)).unwrap();
            assert!(!recorded.contains(&text), "{name}: what mlops records holds `{}`", path.join("."));
        }
        let secret_name = secrets[0]["metadata"]["name"].as_str().unwrap();
        let references = serde_json::to_string(&objects).unwrap().matches(&format!("\"name\":\"{secret_name}\"")).count();
        assert!(references > sensitive.len(), "{name}: the workload refers to the Secret `{secret_name}`");
    }
}

/// The report the upload of predictions writes is computed by `sh` and
/// coreutils in the pod; here the same script runs on this machine's
/// `sh` over files with a nested path and a space, and its version is the
/// one [`render::content_version`] gives.
#[test]
fn the_upload_report_is_the_content_version_of_what_was_uploaded() {
    let directory = std::env::temp_dir().join(format!("mlops-upload-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    let files: Vec<(String, Vec<u8>)> = vec![
        ("part-0.csv".into(), b"id,score\n1,0.9\n".to_vec()),
        ("nested/part 1.csv".into(), b"id,score\n2,0.1\n".to_vec()),
        ("empty.csv".into(), Vec::new()),
    ];
    for (path, bytes) in &files {
        let path = directory.join("output").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let report = directory.join("report.json");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(render::UPLOAD_REPORT)
        .env("MLOPS_REPORT_DIR", directory.join("output"))
        .env("MLOPS_REPORT", &report)
        .status()
        .unwrap();
    assert!(status.success());
    let written: Json = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(written["version"], render::content_version(&files));
    assert_eq!(written["files"], 3);
    assert_eq!(written["size_bytes"], files.iter().map(|(_, bytes)| bytes.len()).sum::<usize>());
    let _ = std::fs::remove_dir_all(&directory);
}

/// A shard of a batch prediction stages the `MLOPS_SHARD`-th of every N
/// objects of its input, folders left out, in key order: the staging
/// script runs on this machine's `sh`, with `aws` standing in as a script
/// that lists keys and records what is copied.
#[test]
fn a_shard_stages_its_share_of_the_input() {
    let schemas = mlops_compiler::schema::Schemas::standard();
    let config = typed(
        &serde_json::json!({ "image": "ghcr.io/acme/score:1", "shards": 3, "timeout": "1h" }),
        schemas.kind("batch_prediction", false),
        &Json::Null,
    );
    let settings = Settings::from_provider_config(&typed(
        &serde_json::json!({ "artifact_root": "s3://acme-ml/runs" }),
        schemas.providers.get("kubernetes"),
        &Json::Null,
    ))
    .unwrap();
    let model = ModelVersion { version: "1".into(), uri: "s3://acme-ml/runs/run-1/".into() };
    let input = render::PredictionInput { uri: "s3://lake/datasets/events/b3-1/".into(), format: "csv".into() };
    let rendered = render::batch_prediction("batch_prediction.scores", "scores-1", &config, &model, &input, &settings).unwrap();
    let staging = rendered.manifest["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|container| container["name"] == "stage-inputs")
        .unwrap()["command"][2]
        .as_str()
        .unwrap()
        .to_owned();
    let directory = std::env::temp_dir().join(format!("mlops-shard-staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(directory.join("bin")).unwrap();
    let aws = directory.join("bin/aws");
    std::fs::write(
        &aws,
        "#!/bin/sh\nif [ \"$1\" = s3api ]; then printf 'datasets/events/b3-1/a.csv\\tdatasets/events/b3-1/sub/\\tdatasets/events/b3-1/b.csv\\tdatasets/events/b3-1/c.csv\\tdatasets/events/b3-1/d.csv\\n'; else echo \"$4 -> $5\" >> \"$COPIED\"; fi\n",
    )
    .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&aws).status().unwrap();
    let copied = |shard: usize| {
        let log = directory.join(format!("copied-{shard}"));
        let script = staging.replace("/mlops/inputs", &directory.join("inputs").display().to_string());
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:{}", directory.join("bin").display(), std::env::var("PATH").unwrap_or_default()))
            .env("MLOPS_SHARD", shard.to_string())
            .env("COPIED", &log)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(&log).unwrap_or_default()
    };
    let input = directory.join("inputs/input").display().to_string();
    assert_eq!(
        copied(0),
        format!("s3://lake/datasets/events/b3-1/a.csv -> {input}/a.csv\ns3://lake/datasets/events/b3-1/d.csv -> {input}/d.csv\n")
    );
    assert_eq!(copied(1), format!("s3://lake/datasets/events/b3-1/b.csv -> {input}/b.csv\n"));
    assert_eq!(copied(2), format!("s3://lake/datasets/events/b3-1/c.csv -> {input}/c.csv\n"));
    let _ = std::fs::remove_dir_all(&directory);
}
