//! The s3 provider's kinds, one type each, over the shared [`Store`].

use std::sync::Arc;

use mlops_provider_api::*;
use mlops_provider_support::{state_text, text};
use serde_json::{json, Value as Json};

use crate::{manifest, repairing, split_uri, Endpoint, Store, CHANGED_OUTSIDE};

fn endpoint(target: &Target) -> Endpoint {
    Endpoint::from_config(&target.provider_config)
}

/// Deletes the prefix a stored resource recorded.
fn delete_stored(store: &Store, request: &ApplyRequest) -> ProviderResult<()> {
    if let Some((bucket, prefix)) = request.prior_state.as_ref().and_then(|state| state_text(state, "uri")).and_then(split_uri) {
        store.delete_prefix(&endpoint(&request.target), bucket, prefix)?;
    }
    Ok(())
}

/// What mlops stored, compared object by object with what is there now;
/// data that lived in S3 before mlops is versioned by its listing when
/// planning instead.
fn read_stored(store: &Store, request: ReadRequest) -> ProviderResult<ReadResponse> {
    let endpoint = endpoint(&request.target);
    let Some((bucket, prefix)) = state_text(&request.state, "uri").and_then(split_uri) else {
        return Ok(ReadResponse::as_recorded(request));
    };
    let Some(recorded) = manifest::from_private(&request.private) else {
        let exists = store.prefix_exists(&endpoint, bucket, prefix)?;
        return Ok(ReadResponse { state: exists.then_some(request.state), private: request.private, ..ReadResponse::default() });
    };
    let found = store.listing(&endpoint, bucket, prefix)?.unwrap_or_default();
    if found.is_empty() {
        return Ok(ReadResponse { state: None, private: request.private, ..ReadResponse::default() });
    }
    let changes = manifest::differences(&recorded, &found);
    let mut private = request.private.as_object().cloned().unwrap_or_default();
    if changes.is_empty() {
        private.remove(CHANGED_OUTSIDE);
    } else {
        private.insert(CHANGED_OUTSIDE.to_owned(), json!(changes));
    }
    Ok(ReadResponse { state: Some(request.state), private: Json::Object(private), changed_outside: changes, ..ReadResponse::default() })
}

/// A dataset: local files uploaded, or data already in S3 versioned by its
/// listing.
fn plan_dataset(store: &Store, request: &PlanRequest) -> ProviderResult<PlanResponse> {
    match text(&request.config, "source") {
        Some(source) => {
            mlops_data::plan_local_source(&request.target.working_directory.join(source), request, configuration_unchanged(request))
                .map(|response| repairing(request, response))
        }
        None => match text(&request.config, "uri") {
            Some(uri) => store.plan_external_dataset(&endpoint(&request.target), request, uri),
            None => Err(ProviderError::with_help("a dataset needs `source` or `uri`", "add one")),
        },
    }
}

pub(crate) struct Bucket(pub(crate) Arc<Store>);

impl ResourceType for Bucket {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        let name = text(&request.config, "name").unwrap_or_default();
        let state = self.0.read_bucket(&endpoint(&request.target), name)?;
        Ok(ReadResponse { state, private: request.private, ..ReadResponse::default() })
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        let name = text(&request.config, "name").unwrap_or_default();
        let mut planned = request.prior_state.clone().unwrap_or_default();
        planned.insert("uri".into(), Json::String(format!("s3://{name}")));
        for setting in ["versioning", "tags", "lifecycle_rule"] {
            if let Some(value) = request.config.get(setting).and_then(Value::to_plain_json) {
                planned.insert(setting.into(), value);
            }
        }
        Ok(PlanResponse { planned_state: planned, ..PlanResponse::default() })
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        let endpoint = endpoint(&request.target);
        let name = text(&request.config, "name").unwrap_or_default().to_owned();
        let force = request.config.get("force_destroy").and_then(Value::as_bool).unwrap_or(false);
        let action = request.action.unwrap_or(Action::Create);
        let prior_name = request
            .prior_state
            .as_ref()
            .and_then(|prior| state_text(prior, "uri"))
            .and_then(|uri| uri.strip_prefix("s3://"))
            .map(str::to_owned);
        if action == Action::Replace {
            if let Some(old) = prior_name.filter(|old| *old != name) {
                context.progress(&format!("deleting the old bucket {old}"));
                self.0.delete_bucket(&endpoint, &old, force)?;
            }
        }
        let prior = if action == Action::Update { request.prior_state.as_ref() } else { None };
        if action != Action::Update {
            context.progress(&format!("creating bucket {name} in {}", endpoint.describe()));
            self.0.create_bucket(&endpoint, &name)?;
        }
        self.0.configure_bucket(&endpoint, &name, &request.config, prior)?;
        let state = self.0.read_bucket(&endpoint, &name)?.ok_or_else(|| {
            ProviderError::failed(format!("{}: bucket `{name}` vanished right after it was created", endpoint.describe()))
        })?;
        Ok(ApplyResponse { state, private: Json::Null })
    }

    fn delete(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<()> {
        let name = text(&request.config, "name").unwrap_or_default().to_owned();
        let force = request.config.get("force_destroy").and_then(Value::as_bool).unwrap_or(false);
        context.progress(&format!("deleting bucket {name}"));
        self.0.delete_bucket(&endpoint(&request.target), &name, force)
    }

    fn import(&self, request: ImportRequest) -> ProviderResult<ImportResponse> {
        let state = self.0.read_bucket(&endpoint(&request.target), &request.id)?;
        let config = Configuration::from([("name".to_owned(), Value::from(request.id.clone()))]);
        Ok(ImportResponse { state, config, private: Json::Null })
    }
}

pub(crate) struct Dataset(pub(crate) Arc<Store>);

impl ResourceType for Dataset {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        read_stored(&self.0, request)
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        plan_dataset(&self.0, &request)
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        self.0.apply_dataset(&endpoint(&request.target), &request, context)
    }

    /// Data that lived in S3 before mlops is not mlops's to delete.
    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        if request.prior_private.get("external").is_some() || text(&request.config, "source").is_none() {
            return Ok(());
        }
        delete_stored(&self.0, &request)
    }
}

/// A feature set, or a training set: computed here, stored in S3.
pub(crate) struct Computed {
    pub(crate) store: Arc<Store>,
    pub(crate) training_set: bool,
}

impl ResourceType for Computed {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        read_stored(&self.store, request)
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        Ok(repairing(&request, mlops_data::plan_feature_set(&request, configuration_unchanged(&request))))
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        let endpoint = endpoint(&request.target);
        if self.training_set {
            self.store.apply_training_set(&endpoint, &request, context)
        } else {
            self.store.apply_feature_set(&endpoint, &request, context)
        }
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        delete_stored(&self.store, &request)
    }
}

/// `data "dataset"`: data already in S3, versioned by its listing.
pub(crate) struct DatasetSource(pub(crate) Arc<Store>);

impl DataSourceType for DatasetSource {
    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        plan_dataset(&self.0, &request)
    }

    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        read_stored(&self.0, request)
    }
}
