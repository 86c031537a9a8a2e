//! The local provider's kinds, one type each, and [`Here`], which every
//! resource type is wrapped in: a resource lives where mlops made it (this
//! machine, this provider root), and another place sharing the state reads
//! it as recorded and refuses to delete it or to watch its work.

use super::*;

/// A local resource type, placed: see the module's documentation.
pub(crate) struct Here<T>(pub T);

impl<T: ResourceType> ResourceType for Here<T> {
    fn validate(&self, request: &ValidateRequest) -> Vec<AttributeProblem> {
        self.0.validate(request)
    }

    /// Reads what is here. A resource recorded by mlops somewhere else (a
    /// second checkout sharing an s3 state, another machine) whose files or
    /// processes are not here is left as recorded, with a note saying where
    /// it lives: it was not deleted, and nothing is run again for it.
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        if request.private.get("placeholder").is_some() {
            return Ok(ReadResponse::as_recorded(request));
        }
        let recorded = (request.state.clone(), request.private.clone());
        let recorded_at = request.private.get(PLACE).and_then(Json::as_str).map(str::to_owned);
        let here = place(&request.target);
        let away = recorded_at.as_deref().is_some_and(|recorded| elsewhere(recorded, &request.target));
        let response = self.0.read(request)?;
        match recorded_at {
            Some(elsewhere) if away && response.state.as_ref() != Some(&recorded.0) => Ok(ReadResponse {
                state: Some(recorded.0),
                private: recorded.1,
                notes: vec![format!(
                    "recorded by mlops at {elsewhere}, where its files and processes are; this is {here}, so it is left as recorded (plan and apply it there)"
                )],
                ..ReadResponse::default()
            }),
            _ => Ok(response),
        }
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        self.0.plan(request)
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        refuse_work_elsewhere(&request)?;
        let target = request.target.clone();
        let mut response = self.0.apply(request, context)?;
        let here = place(&target);
        // Where this was made: another checkout that shares the state can
        // tell "it is not here" from "it was deleted".
        if !response.state.is_empty() {
            match &mut response.private {
                Json::Object(private) => {
                    private.insert(PLACE.to_owned(), Json::String(here));
                }
                private @ Json::Null => *private = json!({ PLACE: here }),
                _ => {}
            }
        }
        Ok(response)
    }

    /// What lives somewhere else is not deleted from here: its files and
    /// processes would outlive the record.
    fn delete(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<()> {
        if let Some(recorded) = request.prior_private.get(PLACE).and_then(Json::as_str) {
            let here = place(&request.target);
            if elsewhere(recorded, &request.target) {
                let elsewhere = recorded;
                return Err(ProviderError::Elsewhere {
                    message: format!("{} lives at {elsewhere}, where mlops made it; this is {here}", request.target.address),
                    help: "destroy it there; or, if that place is gone, `mlops state rm` it to stop managing it".to_owned(),
                });
            }
        }
        refuse_work_elsewhere(&request)?;
        self.0.delete(request, context)
    }

    fn import(&self, request: ImportRequest) -> ProviderResult<ImportResponse> {
        self.0.import(request)
    }
}

/// A handle recorded somewhere else names a process that is not here.
fn refuse_work_elsewhere(request: &ApplyRequest) -> ProviderResult<()> {
    if let Some(recorded) = request.pending_handle.as_ref().and_then(|handle| handle.get(PLACE)).and_then(Json::as_str) {
        let here = place(&request.target);
        if elsewhere(recorded, &request.target) {
            let elsewhere = recorded;
            return Err(ProviderError::Elsewhere {
                message: format!(
                    "{} has work under way that an unfinished apply started at {elsewhere}; this is {here}, so it cannot be watched or stopped from here",
                    request.target.address
                ),
                help: "run `mlops apply` there to finish it, or, if that place is gone, `mlops state rm` the resource to start afresh here"
                    .to_owned(),
            });
        }
    }
    Ok(())
}

/// Whether the data a stored resource recorded at `uri` is still here.
fn stored_here(request: ReadRequest, attribute: &str) -> ReadResponse {
    let exists = state_text(&request.state, attribute).is_some_and(|uri| path_of_uri(&request.target, uri).exists());
    ReadResponse { state: exists.then(|| request.state.clone()), private: request.private, ..ReadResponse::default() }
}

/// Deletes the content-addressed directory a stored resource recorded.
fn remove_stored(request: &ApplyRequest) -> ProviderResult<()> {
    let state = request.prior_state.clone().unwrap_or_default();
    if let Some(uri) = state_text(&state, "uri").filter(|uri| uri.starts_with("local://")) {
        if let Some(parent) = path_of_uri(&request.target, uri).parent() {
            remove_owned(&request.target, parent)?;
        }
    }
    Ok(())
}

pub(crate) struct Bucket;

impl ResourceType for Bucket {
    fn validate(&self, request: &ValidateRequest) -> Vec<AttributeProblem> {
        match bucket_path(&request.target, text(&request.config, "name").unwrap_or_default()) {
            Err(error) => {
                vec![AttributeProblem { path: vec!["name".into()], message: error.to_string(), help: error.help().map(str::to_owned) }]
            }
            Ok(_) => Vec::new(),
        }
    }

    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        let directory = bucket_path(&request.target, text(&request.config, "name").unwrap_or_default())?;
        if !directory.is_dir() {
            return Ok(ReadResponse { state: None, private: request.private, ..ReadResponse::default() });
        }
        let settings: Json =
            fs::read(directory.join(".bucket.json")).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or(Json::Null);
        let mut state = request.state.clone();
        for name in ["versioning", "tags", "lifecycle_rule"] {
            if let Some(value) = settings.get(name) {
                state.insert(name.to_owned(), value.clone());
            }
        }
        Ok(ReadResponse { state: Some(state), private: request.private, ..ReadResponse::default() })
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        let name = text(&request.config, "name").unwrap_or_default();
        let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
        response.planned_state.insert("uri".into(), Json::String(uri_for(&format!("objects/{name}"))));
        Ok(response)
    }

    fn apply(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        apply_bucket(&request)
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        let target = &request.target;
        let name = text(&request.config, "name").unwrap_or_default();
        let force = request.config.get("force_destroy").and_then(Value::as_bool).unwrap_or(false);
        remove_bucket(target, &bucket_path(target, name)?, force, name)
    }

    fn import(&self, request: ImportRequest) -> ProviderResult<ImportResponse> {
        let directory = bucket_path(&request.target, &request.id)?;
        if !directory.is_dir() {
            return Err(failed(format!("there is no local bucket `{}`", request.id)));
        }
        let mut state = Attributes::new();
        state.insert("uri".into(), Json::String(uri_for(&format!("objects/{}", request.id))));
        let config = Configuration::from([("name".to_owned(), Value::from(request.id.clone()))]);
        Ok(ImportResponse { state: Some(state), config, private: Json::Null })
    }
}

/// What the local provider cannot read in a dataset's `uri`.
fn remote_uri_problem(request: &ValidateRequest) -> Option<AttributeProblem> {
    let uri =
        text(&request.config, "uri").filter(|uri| uri.contains("://") && !uri.starts_with("file://") && !uri.starts_with("local://"))?;
    Some(AttributeProblem {
        path: vec!["uri".into()],
        message: format!("the local provider cannot read `{uri}`"),
        help: Some("use a local `source` or a file:// uri, or `provider = s3` for data in object storage".into()),
    })
}

pub(crate) struct Dataset;

impl ResourceType for Dataset {
    fn validate(&self, request: &ValidateRequest) -> Vec<AttributeProblem> {
        let mut problems: Vec<AttributeProblem> = remote_uri_problem(request).into_iter().collect();
        if let Some(source) = text(&request.config, "source") {
            if !request.target.working_directory.join(source).exists() {
                problems.push(AttributeProblem {
                    path: vec!["source".into()],
                    message: format!("`{source}` does not exist"),
                    help: Some("relative paths start at the configuration's directory".into()),
                });
            }
        }
        problems
    }

    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        Ok(stored_here(request, "uri"))
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        let location = dataset_location(&request.target, &request.config)?;
        data::plan_local_source(&location, &request, same_config(&request))
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        apply_dataset(&request, context)
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        remove_stored(&request)
    }
}

/// A feature set, or a training set: computed from data, content-addressed.
pub(crate) struct Computed {
    pub(crate) compute: fn(&ApplyRequest, &dyn ApplyContext) -> ProviderResult<ApplyResponse>,
}

impl ResourceType for Computed {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        Ok(stored_here(request, "uri"))
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        Ok(data::plan_feature_set(&request, same_config(&request)))
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        (self.compute)(&request, context)
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        remove_stored(&request)
    }
}

pub(crate) struct BatchPrediction;

impl ResourceType for BatchPrediction {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        Ok(stored_here(request, "uri"))
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
        plan_batch_prediction(&request, &mut response);
        Ok(response)
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        apply_batch_prediction(&request, context)
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        remove_stored(&request)
    }
}

pub(crate) struct Training;

impl ResourceType for Training {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        Ok(stored_here(request, "artifact_uri"))
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
        plan_training(&request, &mut response)?;
        Ok(response)
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        apply_training(&request, context)
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        let target = &request.target;
        let runs = root(target).join("runs");
        if let Some(process) = request.pending_handle.as_ref().and_then(|handle| PendingRun::from_handle(&runs, handle)?.process) {
            process.stop(Duration::from_secs(5));
        }
        let state = request.prior_state.clone().unwrap_or_default();
        if let Some(uri) = state_text(&state, "artifact_uri").filter(|uri| uri.starts_with("local://")) {
            if let Some(run) = path_of_uri(target, uri).parent() {
                remove_owned(target, run)?;
            }
        }
        Ok(())
    }
}

pub(crate) struct Model;

impl ResourceType for Model {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        let registry = root(&request.target).join("registry").join(slug(&registered_model_name(&request.target, &request.config)));
        let registered = state_text(&request.state, "version")
            .is_some_and(|version| registry.join("versions").join(version).join("version.json").is_file());
        let index: serde_json::Map<String, Json> =
            fs::read(registry.join("aliases.json")).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
        let mut private = request.private.as_object().cloned().unwrap_or_default();
        private.insert(LIVE_ALIASES.into(), Json::Object(index.clone()));
        let state = registered.then(|| {
            // Aliases read back: only those still pointing at this version.
            let mut state = request.state.clone();
            let version = request.state.get("version").cloned().unwrap_or(Json::Null);
            let held: Vec<Json> = state_strings(&request.state, "aliases")
                .into_iter()
                .filter(|alias| index.get(alias) == Some(&version))
                .map(Json::String)
                .collect();
            state.insert("aliases".into(), Json::Array(held));
            state
        });
        Ok(ReadResponse { state, private: Json::Object(private), ..ReadResponse::default() })
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        Ok(mlops_provider_support::registry::plan_model(&request))
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        apply_model(&request, context)
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        let target = &request.target;
        let name = &registered_model_name(target, &request.config);
        remove_owned(target, &root(target).join("registry").join(slug(name)))
    }
}

pub(crate) struct Serving;

impl ResourceType for Serving {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        let port = request.private.get("port").and_then(Json::as_u64).and_then(|port| u16::try_from(port).ok()).unwrap_or(0);
        let running = process::Started::from_json(&request.private).is_some_and(|server| server.is_running());
        let healthy = running && process::http_status(port, &readiness_path(&request.config), Duration::from_secs(2)) == Some(200);
        let mut state = request.state.clone();
        if !healthy {
            state.insert("ready_replicas".into(), json!(0));
        }
        Ok(ReadResponse { state: Some(state), private: request.private, ..ReadResponse::default() })
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
        if let Some(prior) = &request.prior_state {
            if prior.get("ready_replicas").and_then(Json::as_f64) == Some(0.0) {
                response.update_reasons.push("the serving process is not running: it will be started again".into());
            }
            if request.changed_inputs.iter().any(|input| input.path.first().map(String::as_str) == Some("model")) {
                let strategy = request
                    .config
                    .get("rollout")
                    .and_then(|rollout| rollout.get("strategy"))
                    .and_then(Value::as_str)
                    .unwrap_or("all_at_once");
                response.update_reasons.push(format!("rollout ({strategy}) to the new model version"));
            }
        }
        if !response.update_reasons.is_empty() || request.prior_state.is_none() || !same_config(&request) {
            response.unknown = vec![vec!["url".into()], vec!["live_version".into()], vec!["ready_replicas".into()]];
        }
        Ok(response)
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        apply_serving(&request, context)
    }

    /// Stops the server in service, and one an interrupted apply started.
    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        let directory = root(&request.target).join("serving").join(slug(&request.target.address));
        let pending = request.pending_handle.as_ref().and_then(|handle| pending_server(&directory, handle));
        for server in process::Started::from_json(&request.prior_private).into_iter().chain(pending) {
            server.stop(Duration::from_secs(10));
        }
        Ok(())
    }
}

pub(crate) struct Monitor;

impl ResourceType for Monitor {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        let mut state = request.state.clone();
        // The recorded configuration refers to the reference dataset by
        // address; the dataset it was applied with is kept in the private
        // data, so refresh measures against that version.
        let mut config = request.config.clone();
        if let Some(reference) = request.private.get(MONITOR_REFERENCE).filter(|reference| reference.is_object()) {
            config.insert("reference".into(), Value::from_json(reference));
        }
        if let Ok((scores, drifted)) = drift::compute(&request.target, &config) {
            state.insert("scores".into(), scores);
            state.insert("drifted".into(), Json::Bool(drifted));
        }
        Ok(ReadResponse { state: Some(state), private: request.private, ..ReadResponse::default() })
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
        match &request.prior_state {
            Some(prior) if request.changed_inputs.is_empty() && same_config(&request) => response.planned_state = prior.clone(),
            _ => response.unknown = vec![vec!["scores".into()], vec!["drifted".into()]],
        }
        Ok(response)
    }

    fn apply(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        let (scores, drifted) = drift::compute(&request.target, &request.config)?;
        let mut state = Attributes::new();
        state.insert("scores".into(), scores);
        state.insert("drifted".into(), Json::Bool(drifted));
        // The dataset as applied (its attributes, written as state is),
        // for refresh.
        let reference = request
            .config
            .get("reference")
            .and_then(Value::as_object)
            .map_or(Json::Null, |attributes| Json::Object(configuration_to_json(attributes)));
        Ok(ApplyResponse { state, private: json!({ MONITOR_REFERENCE: reference }) })
    }

    /// A monitor on this provider computes when planned and applied: there
    /// is nothing running to stop.
    fn delete(&self, _request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        Ok(())
    }
}

/// `data "dataset"`: local data, versioned by content.
pub(crate) struct DatasetSource;

impl DataSourceType for DatasetSource {
    fn validate(&self, request: &ValidateRequest) -> Vec<AttributeProblem> {
        remote_uri_problem(request).into_iter().collect()
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        let target = &request.target;
        let uri = text(&request.config, "uri").unwrap_or_default();
        let path = path_of_uri(target, uri);
        let files = data::data_files(&path)?;
        let (version, size) = data::content_hash(&path, &files)?;
        let mut planned = Attributes::new();
        planned.insert("version".into(), Json::String(version));
        planned.insert("size_bytes".into(), json!(size));
        Ok(PlanResponse { planned_state: planned, ..PlanResponse::default() })
    }
}

/// `data "model"`: a version in the local registry, by alias, version, or
/// the latest.
pub(crate) struct ModelSource;

impl DataSourceType for ModelSource {
    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        plan_data_model(&request.target, &request.config)
    }
}
