//! The provider API: the only thing a provider author must read.
//!
//! The engine talks to every provider (local, s3, kubernetes, mlflow, oci)
//! through the [`Provider`] trait: a provider registers one
//! [`ResourceType`] per kind it manages and one [`DataSourceType`] per kind
//! it reads ([`Kinds`]), and the engine calls the type of the resource's
//! kind. Each call takes one request struct and returns one response
//! struct. Every struct derives `Default` and is built
//! with `..Default::default()`, so fields can be added later without
//! breaking providers, which read only what they need.
//!
//! A configuration crosses the boundary typed ([`Configuration`], a map of
//! [`Value`]s): plain data, plus a value known only after apply, a
//! reference to another resource (with the identity it had when planned,
//! and, in what `apply` is handed, the target as applied), an expression
//! the provider evaluates itself per row through the [`RowEvaluator`] the
//! engine passes in, a secret, and durations and quantities already parsed
//! by the compiler's reader. What a provider reports back (state, private
//! data) is plain JSON ([`Attributes`]).
//!
//! A provider that can host remote state also implements [`ObjectStore`].
//!
//! This crate is the protocol only. What providers share beyond it (the
//! model registry plan, time limits and Ctrl-C for remote calls, metrics
//! checks, directory walks, reading configuration values) is in
//! `mlops-provider-support`, which a third-party provider may use or not.
//!
//! Invariants providers keep:
//! - `read` and `plan` never change anything outside the provider's caches.
//! - `apply` reports long-running work through [`ApplyContext::record_handle`]
//!   *before* waiting on it, and accepts that handle back in
//!   [`ApplyRequest::pending_handle`] to re-attach after an interruption.
//! - Errors are [`ProviderError`]s with a message meant for the user; they
//!   never contain credentials.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub mod object_store;
pub mod value;
pub use object_store::{ObjectStore, ObjectStoreError, PutCondition, StoredObject};
pub use value::{configuration_from_json, configuration_to_json, Configuration, Reference, ReferencedResource, Value};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A resource's state (what a provider reports), as a JSON object.
pub type Attributes = serde_json::Map<String, Json>;

/// A path to an attribute inside [`Attributes`]: `["lifecycle_rule", "0", "prefix"]`.
pub type AttributePath = Vec<String>;

/// What the engine asks a provider to do with one resource instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord, Default)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    NoOp,
    Create,
    Update,
    /// Destroy then create (or create then destroy with create_before_destroy).
    Replace,
    Delete,
    /// Drop from state without touching the real object (retained kinds).
    Forget,
    /// A data source read.
    Read,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::Forget => "⊘",
            Action::Read => "<=",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Forget => "forget",
            Action::Read => "read",
        }
    }
}

/// Everything common to the calls: which instance, on which configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Target {
    /// The canonical address, e.g. `module.fp.dataset.events["eu"]`, for
    /// messages. Its parts are below: never split it.
    pub address: String,
    pub kind: String,
    /// The block's name: `events`.
    pub name: String,
    /// The instance's key for `count` (`"0"`) or `for_each` (`"eu"`), if any.
    pub instance_key: Option<String>,
    /// True for `data` blocks.
    pub is_data: bool,
    /// The provider block's settings (secrets marked sensitive).
    pub provider_config: Configuration,
    /// The configuration's directory: relative paths and the working
    /// directory of user code are resolved against it.
    pub working_directory: PathBuf,
    /// Where the provider may keep files of its own for this configuration
    /// (the local provider's objects, registry and runs live here).
    pub data_directory: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SchemaResponse {
    /// The kinds this provider manages, and the data source kinds it reads.
    pub resource_kinds: Vec<String>,
    pub data_kinds: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ValidateRequest {
    pub target: Target,
    pub config: Configuration,
}

/// Problems the compiler cannot know about, found without touching the
/// outside world (e.g. a source file that does not exist).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ValidateResponse {
    pub problems: Vec<AttributeProblem>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AttributeProblem {
    pub path: AttributePath,
    pub message: String,
    pub help: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReadRequest {
    pub target: Target,
    /// The configuration last applied (references unresolved).
    pub config: Configuration,
    /// The attributes recorded in state after the last apply.
    pub state: Attributes,
    /// Provider-private data recorded with the state.
    pub private: Json,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReadResponse {
    /// The live attributes, or `None` when the object no longer exists.
    pub state: Option<Attributes>,
    pub private: Json,
    /// Changes made outside mlops that the attributes do not show (an
    /// object of a dataset replaced or deleted in the store), in words. The
    /// engine reports them as drift; `private` tells the provider's `plan`.
    pub changed_outside: Vec<String>,
    /// What the user should know about the object that is neither drift nor
    /// a change (it was recorded on another machine, say), in words.
    pub notes: Vec<String>,
}

/// A reference whose target's identity differs from what the prior apply saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChangedInput {
    pub path: AttributePath,
    pub address: String,
    pub before: Option<String>,
    /// `None` when the new identity is known only after apply.
    pub after: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanRequest {
    pub target: Target,
    /// The desired configuration: references carry the identity planned,
    /// not their target; what is known only after apply is
    /// [`Value::Unknown`].
    pub config: Configuration,
    /// The configuration applied last time, if the instance exists.
    pub prior_config: Option<Configuration>,
    /// The refreshed state, if the instance exists.
    pub prior_state: Option<Attributes>,
    pub prior_private: Json,
    /// References whose targets changed since the prior apply.
    pub changed_inputs: Vec<ChangedInput>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanResponse {
    /// Computed attributes known now (e.g. a dataset's content hash).
    pub planned_state: Attributes,
    /// Computed attributes known only after apply.
    pub unknown: Vec<AttributePath>,
    /// Why the change cannot be made in place; empty for an update.
    pub requires_replace: Vec<String>,
    /// Why an update is needed even though the configuration is the same
    /// (e.g. "content changed"). Empty when nothing changes.
    pub update_reasons: Vec<String>,
    pub private: Json,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplyRequest {
    pub target: Target,
    pub action: Option<Action>,
    /// The configuration with every reference resolved to its target and
    /// every value known (expressions aside: those are the provider's to
    /// evaluate with its [`RowEvaluator`]).
    pub config: Configuration,
    pub prior_state: Option<Attributes>,
    pub prior_private: Json,
    /// The `private` this provider's plan returned for this change, for
    /// apply to reuse what the plan computed when its inputs are unchanged.
    pub planned_private: Json,
    /// The handle recorded by an interrupted apply of this instance.
    pub pending_handle: Option<Json>,
    /// What produced this: upstream addresses and their versions, the code
    /// fingerprint, hyperparameters. Registries store it with a version.
    pub lineage: Json,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// The new attributes (all computed ones known). Ignored for deletes.
    pub state: Attributes,
    pub private: Json,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FetchRequest {
    /// The configuration of the provider that stored the data.
    pub target: Target,
    pub uri: String,
    pub destination: PathBuf,
    /// The version the data must have (`b3:` content hash, `s3l:` listing),
    /// when the engine knows it: what is fetched is checked against it, so
    /// downstream work never runs on data changed since it was recorded.
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FetchResponse {
    /// How many files were copied (files already there are skipped).
    pub copied: usize,
    pub files: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportRequest {
    pub target: Target,
    /// The provider's own identifier for the existing object.
    pub id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportResponse {
    pub state: Option<Attributes>,
    pub config: Configuration,
    pub private: Json,
}

/// Evaluates [`Value::Expression`]s (feature expressions) for providers. The
/// engine implements it with the language's own evaluator.
pub trait RowEvaluator: Send + Sync {
    /// Compiles an expression once, for evaluation over many rows.
    fn compile(&self, expression: &str) -> Result<Box<dyn CompiledExpression>, String>;

    /// The expression as a tree a provider can evaluate over whole columns
    /// at once, or `None` where it uses what only the language's evaluator
    /// knows (then the provider evaluates it row by row with
    /// [`RowEvaluator::compile`]). A provider that evaluates the tree must
    /// give the same values and errors as the compiled expression; where it
    /// cannot tell (a null operand, a value outside a function's domain) it
    /// asks the compiled expression for that row.
    fn lower(&self, _expression: &str) -> Option<RowExpression> {
        None
    }
}

/// A feature expression over one row's columns, for columnar evaluation.
/// Numbers are the language's numbers (64-bit floats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowExpression {
    /// `row.NAME` or `row["NAME"]`.
    Column(String),
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Unary {
        operator: RowUnaryOperator,
        operand: Box<RowExpression>,
    },
    Binary {
        operator: RowBinaryOperator,
        left: Box<RowExpression>,
        right: Box<RowExpression>,
    },
    Conditional {
        condition: Box<RowExpression>,
        then: Box<RowExpression>,
        otherwise: Box<RowExpression>,
    },
    /// One of the language's built-in functions, by name.
    Call {
        function: String,
        arguments: Vec<RowExpression>,
    },
    /// A string template: its parts, each a string, joined.
    Concat(Vec<RowExpression>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowUnaryOperator {
    Negate,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowBinaryOperator {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
    NotEqual,
    And,
    Or,
}

pub trait CompiledExpression: Send + Sync {
    /// Evaluates with `row` bound to the given columns.
    fn evaluate(&self, row: &BTreeMap<String, Json>) -> Result<Json, String>;
}

/// What the engine lends a provider during `apply`.
pub trait ApplyContext: Send + Sync {
    /// Makes `handle` durable in state before the provider waits on remote
    /// work, so an interrupted apply can re-attach.
    fn record_handle(&self, handle: Json) -> Result<(), ProviderError>;
    /// A progress line ("training fraud: epoch 3/10"); shown on a terminal
    /// or logged, depending on where mlops runs.
    fn progress(&self, message: &str);
    /// True once the user asked to stop (Ctrl-C): long waits should return
    /// with [`ProviderError::Interrupted`] after recording their handle.
    fn interrupted(&self) -> bool;
    fn row_evaluator(&self) -> &dyn RowEvaluator;
    /// Copies the data at `uri` (the `uri` of an input this resource refers
    /// to, such as `s3://bucket/datasets/...`) into the local directory
    /// `destination`, through the provider that stored it. This is how a
    /// local training reads a dataset that lives in object storage.
    fn fetch(&self, uri: &str, destination: &std::path::Path) -> ProviderResult<()>;
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProviderError {
    /// The user's input or the outside world is wrong; the message says
    /// what and what to do.
    #[error("{message}")]
    Failed { message: String, help: Option<String> },
    /// Worth retrying with backoff (timeouts, 429, 5xx).
    #[error("{message}")]
    Transient { message: String },
    /// Stopped because the user interrupted; the handle is recorded.
    #[error("interrupted")]
    Interrupted,
    /// The work belongs to another place (another machine or checkout,
    /// sharing the state): nothing was done, and its handle is kept for the
    /// place that can resume it.
    #[error("{message}")]
    Elsewhere { message: String, help: String },
}

impl ProviderError {
    pub fn failed(message: impl Into<String>) -> Self {
        ProviderError::Failed { message: message.into(), help: None }
    }

    pub fn with_help(message: impl Into<String>, help: impl Into<String>) -> Self {
        ProviderError::Failed { message: message.into(), help: Some(help.into()) }
    }

    pub fn help(&self) -> Option<&str> {
        match self {
            ProviderError::Failed { help, .. } => help.as_deref(),
            ProviderError::Elsewhere { help, .. } => Some(help),
            _ => None,
        }
    }
}

pub type ProviderResult<T> = Result<T, ProviderError>;

/// One kind of resource a provider manages. The engine calls the type
/// registered for the resource's kind, so a provider never dispatches on
/// the kind string.
pub trait ResourceType: Send + Sync {
    /// Problems only the provider can find, without touching the outside
    /// world (a source file that does not exist, say).
    fn validate(&self, _request: &ValidateRequest) -> Vec<AttributeProblem> {
        Vec::new()
    }

    /// The object as it is now (`state: None` when it is gone). The
    /// default keeps the record as it is: right for results that stay valid
    /// once made (a finished run).
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        Ok(ReadResponse::as_recorded(request))
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse>;

    /// Creates, updates or replaces the object, as `request.action` says.
    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse>;

    /// Deletes what `apply` made (`request` holds the prior configuration,
    /// state, private data and any pending handle).
    fn delete(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<()>;

    /// The existing object `request.id` names, to manage from now on.
    fn import(&self, request: ImportRequest) -> ProviderResult<ImportResponse> {
        Err(ProviderError::failed(format!("a `{}` cannot be imported on this provider", request.target.kind)))
    }
}

/// One kind of data source a provider reads (`data "KIND" "NAME"`).
pub trait DataSourceType: Send + Sync {
    fn validate(&self, _request: &ValidateRequest) -> Vec<AttributeProblem> {
        Vec::new()
    }

    /// Reads the source while planning: what it finds is the planned state.
    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse>;

    /// Refreshes a recorded read; the default keeps it as recorded (the
    /// next plan reads the source again anyway).
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        Ok(ReadResponse::as_recorded(request))
    }
}

impl ReadResponse {
    /// The record, unchanged.
    pub fn as_recorded(request: ReadRequest) -> ReadResponse {
        ReadResponse { state: Some(request.state), private: request.private, ..ReadResponse::default() }
    }
}

/// The kinds a provider manages and reads, each with its type.
#[derive(Default)]
pub struct Kinds {
    resources: Vec<(&'static str, Box<dyn ResourceType>)>,
    data_sources: Vec<(&'static str, Box<dyn DataSourceType>)>,
}

impl Kinds {
    pub fn new() -> Kinds {
        Kinds::default()
    }

    pub fn resource(mut self, kind: &'static str, resource_type: impl ResourceType + 'static) -> Kinds {
        self.resources.push((kind, Box::new(resource_type)));
        self
    }

    pub fn data_source(mut self, kind: &'static str, data_source_type: impl DataSourceType + 'static) -> Kinds {
        self.data_sources.push((kind, Box::new(data_source_type)));
        self
    }

    pub fn resource_type(&self, kind: &str) -> Option<&dyn ResourceType> {
        self.resources.iter().find(|(name, _)| *name == kind).map(|(_, resource_type)| resource_type.as_ref())
    }

    pub fn data_source_type(&self, kind: &str) -> Option<&dyn DataSourceType> {
        self.data_sources.iter().find(|(name, _)| *name == kind).map(|(_, data_source_type)| data_source_type.as_ref())
    }

    /// What the provider supports, for `mlops schema` and for checking the
    /// provider against the stdlib.
    pub fn schema(&self) -> SchemaResponse {
        SchemaResponse {
            resource_kinds: self.resources.iter().map(|(kind, _)| (*kind).to_owned()).collect(),
            data_kinds: self.data_sources.iter().map(|(kind, _)| (*kind).to_owned()).collect(),
        }
    }
}

/// A provider: its name, its kinds, and the data it can copy out.
/// Implementations are shared between threads: the engine refreshes and
/// applies independent resources concurrently.
pub trait Provider: Send + Sync {
    /// The provider's type as configurations name it (`local`, `s3`).
    fn name(&self) -> &'static str;

    fn kinds(&self) -> &Kinds;

    /// Copies the objects at `request.uri` into `request.destination`.
    /// Providers that store data implement it; the default says they do not.
    fn fetch(&self, request: FetchRequest) -> ProviderResult<FetchResponse> {
        Err(ProviderError::failed(format!("the data at `{}` cannot be read from this provider", request.uri)))
    }
}

impl dyn Provider + '_ {
    /// The type of `target`'s kind (a resource's, or a data source's: see
    /// [`Target::is_data`]), or an error naming what this provider lacks.
    pub fn resource_type(&self, target: &Target) -> ProviderResult<&dyn ResourceType> {
        self.kinds().resource_type(&target.kind).ok_or_else(|| self.unsupported(target))
    }

    pub fn data_source_type(&self, target: &Target) -> ProviderResult<&dyn DataSourceType> {
        self.kinds().data_source_type(&target.kind).ok_or_else(|| self.unsupported(target))
    }

    fn unsupported(&self, target: &Target) -> ProviderError {
        let what = if target.is_data { "read data sources of kind" } else { "manage" };
        let schema = self.kinds().schema();
        let known = if target.is_data { schema.data_kinds } else { schema.resource_kinds };
        ProviderError::with_help(
            format!("the {} provider does not {what} `{}`", self.name(), target.kind),
            if known.is_empty() { "use another provider".to_owned() } else { format!("it supports {}", known.join(", ")) },
        )
    }

    /// Problems only the provider can find, for a resource or a data source.
    pub fn validate(&self, request: &ValidateRequest) -> ProviderResult<Vec<AttributeProblem>> {
        Ok(if request.target.is_data {
            self.data_source_type(&request.target)?.validate(request)
        } else {
            self.resource_type(&request.target)?.validate(request)
        })
    }

    pub fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        if request.target.is_data {
            self.data_source_type(&request.target)?.read(request)
        } else {
            self.resource_type(&request.target)?.read(request)
        }
    }

    pub fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        if request.target.is_data {
            self.data_source_type(&request.target)?.plan(request)
        } else {
            self.resource_type(&request.target)?.plan(request)
        }
    }

    /// Applies `request.action`: a delete goes to [`ResourceType::delete`].
    pub fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        let resource_type = self.resource_type(&request.target)?;
        if request.action == Some(Action::Delete) {
            resource_type.delete(request, context)?;
            return Ok(ApplyResponse::default());
        }
        resource_type.apply(request, context)
    }

    pub fn import(&self, request: ImportRequest) -> ProviderResult<ImportResponse> {
        self.resource_type(&request.target)?.import(request)
    }
}

/// Whether a plan request's configuration is what was applied last time,
/// the identities of referenced resources aside (those changes arrive as
/// [`PlanRequest::changed_inputs`]).
pub fn configuration_unchanged(request: &PlanRequest) -> bool {
    request.prior_config.as_ref().is_some_and(|prior| value::same_configurations(prior, &request.config))
}
