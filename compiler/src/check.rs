//! Checking a configuration: lowering blocks to declarations, resolving
//! names, ordering declarations by dependency (reporting whole cycles),
//! evaluating every expression with unknowns allowed, checking resources
//! against their schemas, and the ML-specific rules of [`crate::semantic`].
//!
//! The same entry point serves `validate` (variables unknown) and, later,
//! `plan` (variables known): see [`CheckOptions`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::ast::{Attribute, Block, Body, Expr, ExprKind};
use crate::body::{check_type, BodyChecker};
use crate::diagnostic::{codes, Diagnostic, Diagnostics};
use crate::eval::{Context, Evaluator, Scope};
use crate::loader::{load_directory, LoadedModule};
use crate::schema::{literal_value, KindSchema, Schemas};
use crate::source::{SourceMap, Span};
use crate::suggest::{did_you_mean, one_of};
use crate::types::{parse_type_expr, Type};
use crate::units;
use crate::value::{ResourceValue, Value};

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Values for the root module's variables. `None` (validate) treats every
    /// variable as unknown of its declared type.
    pub variables: Option<HashMap<String, Value>>,
    /// Evaluate only what provider blocks need: resources, data sources and
    /// outputs are skipped (and unknown). The planner uses it to configure
    /// providers for refresh before the full evaluation.
    pub providers_only: bool,
    /// Where each value in `variables` came from: the messages name it, and
    /// a value for an undeclared variable is an error from the command line,
    /// a warning from a file and nothing from the environment.
    pub variable_origins: HashMap<String, VariableOrigin>,
    /// Variables without a value are unknown, not an error (`validate` with
    /// some `-var` values).
    pub missing_variables_unknown: bool,
}

/// Where a root variable's value came from.
#[derive(Debug, Clone, PartialEq)]
pub enum VariableOrigin {
    /// `-var NAME=VALUE`.
    CommandLine,
    /// `-var-file FILE`.
    File(String),
    /// `MLOPS_VAR_NAME`.
    Environment,
}

impl VariableOrigin {
    fn describe(&self, name: &str) -> String {
        match self {
            VariableOrigin::CommandLine => format!("`-var {name}=...`"),
            VariableOrigin::File(file) => format!("the variable file `{file}`"),
            VariableOrigin::Environment => format!("the environment variable MLOPS_VAR_{name}"),
        }
    }
}

pub use crate::address::InstanceKey;
use crate::address::{Mode, ResourceAddress};

#[derive(Debug, Clone)]
pub struct CheckedInstance {
    pub key: InstanceKey,
    pub value: Arc<ResourceValue>,
    /// Residual expressions (see [`crate::residual`]) of the attributes not
    /// wholly known, by attribute path. Filled only when planning.
    pub deferred: Vec<(Vec<String>, String)>,
}

/// What the planner sees of one resource instance while the configuration
/// is evaluated, in dependency order.
pub struct InstanceDraft<'a> {
    pub address: &'a str,
    pub kind: &'a str,
    pub is_data: bool,
    pub provider_type: &'a str,
    pub provider_alias: Option<&'a str>,
    pub module_path: &'a [String],
    pub module_directory: &'a Path,
    /// The evaluated attributes; computed ones are unknown.
    pub attributes: &'a BTreeMap<String, Value>,
    pub deferred: &'a [(Vec<String>, String)],
    pub lifecycle: &'a Lifecycle,
    pub depends_on: &'a [String],
    /// The block header, for messages about this resource.
    pub span: Span,
}

/// The planner's hook into evaluation. Given an instance's configuration, it
/// decides what happens to it and returns the computed attributes already
/// known (from state when nothing changes, or from the provider's plan), so
/// that everything downstream is evaluated with them.
pub trait PlanResolver {
    fn resolve(&mut self, instance: &InstanceDraft<'_>) -> BTreeMap<String, Value>;
}

#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    pub prevent_destroy: bool,
    pub create_before_destroy: bool,
    pub ignore_changes: Vec<String>,
    pub destroy: bool,
}

#[derive(Debug, Clone)]
pub struct CheckedResource {
    pub kind: String,
    pub name: String,
    pub is_data: bool,
    pub provider_type: String,
    pub provider_alias: Option<String>,
    /// Empty when `count`/`for_each` is not known yet.
    pub instances: Vec<CheckedInstance>,
    pub expansion_known: bool,
    /// Addresses (within the module) of the resources, data sources and
    /// module calls (`module.NAME`) this one refers to.
    pub depends_on: Vec<String>,
    pub lifecycle: Lifecycle,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct CheckedOutput {
    pub name: String,
    pub value: Value,
    /// The residual expression when the value is not wholly known (planning only).
    pub residual: Option<String>,
    pub sensitive: bool,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CheckedModule {
    /// Module call names from the root: empty for the root module.
    pub path: Vec<String>,
    pub directory: PathBuf,
    pub resources: Vec<CheckedResource>,
    pub outputs: Vec<CheckedOutput>,
    pub children: Vec<CheckedModule>,
    pub backend: Option<(String, BTreeMap<String, Value>)>,
    pub providers: Vec<(String, Option<String>, BTreeMap<String, Value>)>,
}

impl CheckedModule {
    /// Every resource in this module and its children.
    pub fn all_resources(&self) -> Vec<(&[String], &CheckedResource)> {
        let mut all: Vec<(&[String], &CheckedResource)> = self.resources.iter().map(|resource| (self.path.as_slice(), resource)).collect();
        for child in &self.children {
            all.extend(child.all_resources());
        }
        all
    }
}

pub struct CheckResult {
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
    pub root: Option<CheckedModule>,
}

impl CheckResult {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Checks the configuration in `directory`. `display` is how the directory
/// is shown in messages (usually as the user typed it).
pub fn check_directory(directory: &Path, display: &str, options: &CheckOptions) -> CheckResult {
    check_directory_with(directory, display, options, None)
}

/// A root module read and parsed once, to be checked more than once (the
/// planner checks provider blocks first, then everything).
#[derive(Debug, Clone)]
pub struct Preloaded {
    sources: SourceMap,
    diagnostics: Diagnostics,
    root: Option<LoadedModule>,
    directory: PathBuf,
}

/// Reads and parses the root module in `directory`.
pub fn preload(directory: &Path, display: &str) -> Preloaded {
    let mut sources = SourceMap::default();
    let mut diagnostics = Diagnostics::default();
    let root = load_directory(directory, display, &mut sources, &mut diagnostics);
    Preloaded { sources, diagnostics, root, directory: directory.to_path_buf() }
}

/// [`check_directory`] with the planner's hook: every resource instance is
/// handed to `resolver` as soon as its configuration is evaluated.
pub fn check_directory_with(
    directory: &Path,
    display: &str,
    options: &CheckOptions,
    resolver: Option<&mut dyn PlanResolver>,
) -> CheckResult {
    check_preloaded(preload(directory, display), options, resolver)
}

/// Checks a preloaded root module.
pub fn check_preloaded(preloaded: Preloaded, options: &CheckOptions, resolver: Option<&mut dyn PlanResolver>) -> CheckResult {
    let Preloaded { sources, diagnostics, root, directory } = preloaded;
    let mut checker = Checker {
        providers_only: options.providers_only,
        variable_origins: options.variable_origins.clone(),
        missing_variables_unknown: options.missing_variables_unknown,
        resolver,
        schemas: Schemas::standard(),
        sources,
        diagnostics,
        root_directory: directory,
        call_stack: Vec::new(),
        root_providers: Vec::new(),
        provider_settings: HashMap::new(),
        installed_modules: HashMap::new(),
        loaded_modules: HashMap::new(),
        instances: 0,
    };
    let root = match root {
        Some(loaded) => {
            let inputs =
                options.variables.as_ref().map(|values| values.iter().map(|(name, value)| (name.clone(), (value.clone(), None))).collect());
            Some(checker.check_module(&loaded, Vec::new(), inputs))
        }
        None => None,
    };
    CheckResult { sources: checker.sources, diagnostics: checker.diagnostics.sorted(), root }
}

const RESERVED_META: &[&str] = &["provider", "depends_on", "count", "for_each", "lifecycle"];
const TOP_LEVEL: &[&str] = &["mlops", "variable", "locals", "output", "provider", "module", "data"];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Node {
    Variable(String),
    Local(String),
    Provider(String, String),
    Module(String),
    Resource(String, String),
    Data(String, String),
    Output(String),
}

impl Node {
    fn describe(&self) -> String {
        match self {
            Node::Variable(name) => format!("var.{name}"),
            Node::Local(name) => format!("local.{name}"),
            Node::Provider(kind, alias) if alias.is_empty() => format!("provider.{kind}"),
            Node::Provider(kind, alias) => format!("provider.{kind}.{alias}"),
            Node::Module(name) => format!("module.{name}"),
            Node::Resource(kind, name) => format!("{kind}.{name}"),
            Node::Data(kind, name) => format!("data.{kind}.{name}"),
            Node::Output(name) => format!("output.{name}"),
        }
    }
}

#[derive(Default)]
struct Declarations {
    settings: Vec<Block>,
    variables: IndexMap<String, Block>,
    locals: IndexMap<String, Attribute>,
    outputs: IndexMap<String, Block>,
    providers: IndexMap<(String, String), Block>,
    modules: IndexMap<String, Block>,
    resources: IndexMap<(String, String), Block>,
    data: IndexMap<(String, String), Block>,
}

/// Module inputs: value and, for child modules, the span of the argument.
type Inputs = HashMap<String, (Value, Option<Span>)>;

struct Checker<'r> {
    providers_only: bool,
    variable_origins: HashMap<String, VariableOrigin>,
    missing_variables_unknown: bool,
    resolver: Option<&'r mut dyn PlanResolver>,
    schemas: &'static Schemas,
    sources: SourceMap,
    diagnostics: Diagnostics,
    root_directory: PathBuf,
    call_stack: Vec<PathBuf>,
    /// Provider configurations of the root module, visible in child modules.
    root_providers: Vec<(String, String)>,
    /// The literal settings of the provider configurations in scope, by
    /// (type, alias; "" for the default): what the rules that depend on a
    /// cluster's setup read (KServe's mode, Knative's features). A setting
    /// written as an expression is unknown here.
    provider_settings: HashMap<(String, String), BTreeMap<String, Value>>,
    /// Registry modules already checked against mlops.lock.hcl, by source:
    /// a module called many times is hashed once.
    installed_modules: HashMap<String, PathBuf>,
    /// Module directories already read and parsed, by canonical path: a
    /// module called many times (a fan-out of calls) is parsed once.
    loaded_modules: HashMap<PathBuf, std::rc::Rc<LoadedModule>>,
    /// Resource instances made so far, against [`crate::limits::MAX_INSTANCES`].
    instances: usize,
}

/// Per-module facts the ML rules need about other declarations.
#[derive(Default)]
pub struct ModuleFacts {
    /// Dataset name -> its columns (name, type), or None without a schema.
    pub dataset_columns: HashMap<String, Option<Vec<(String, String)>>>,
    /// Model name -> the provider type its registry is on.
    pub model_providers: HashMap<String, String>,
}

impl Checker<'_> {
    fn check_module(&mut self, loaded: &LoadedModule, path: Vec<String>, inputs: Option<Inputs>) -> CheckedModule {
        self.call_stack.push(loaded.directory.canonicalize().unwrap_or_else(|_| loaded.directory.clone()));
        let declarations = self.lower(loaded);
        let module_providers: Vec<(String, String)> = declarations.providers.keys().cloned().collect();
        let outer_provider_settings = self.provider_settings.clone();
        for (key, block) in &declarations.providers {
            let settings = block
                .body
                .attributes
                .iter()
                .map(|attribute| {
                    let value = crate::schema::literal_value(&attribute.value).unwrap_or_else(Value::unknown_any);
                    (attribute.name.name.clone(), value)
                })
                .collect();
            self.provider_settings.insert(key.clone(), settings);
        }
        if path.is_empty() {
            self.root_providers = module_providers.clone();
        }
        if path.is_empty() {
            if let Some(inputs) = &inputs {
                self.report_undeclared_variables(inputs, &declarations.variables);
            }
        }
        let mut scope = Scope {
            declared_variables: declarations.variables.keys().cloned().collect(),
            declared_locals: declarations.locals.keys().cloned().collect(),
            declared_modules: declarations.modules.keys().cloned().collect(),
            module_directory: loaded.directory.clone(),
            module_display: loaded.display_directory.clone(),
            root_directory: self.root_directory.clone(),
            ..Scope::default()
        };
        for (kind, name) in declarations.resources.keys() {
            scope.declared_resources.entry(kind.clone()).or_default().push(name.clone());
        }
        for (kind, name) in declarations.data.keys() {
            scope.declared_data.entry(kind.clone()).or_default().push(name.clone());
        }

        // The dependency graph, with the span of each reference on its edge.
        let mut graph: DiGraph<Node, Span> = DiGraph::new();
        let mut index_of: HashMap<Node, NodeIndex> = HashMap::new();
        let mut add = |graph: &mut DiGraph<Node, Span>, node: Node| {
            let index = graph.add_node(node.clone());
            index_of.insert(node, index);
        };
        for name in declarations.variables.keys() {
            add(&mut graph, Node::Variable(name.clone()));
        }
        for name in declarations.locals.keys() {
            add(&mut graph, Node::Local(name.clone()));
        }
        for (kind, alias) in declarations.providers.keys() {
            add(&mut graph, Node::Provider(kind.clone(), alias.clone()));
        }
        for name in declarations.modules.keys() {
            add(&mut graph, Node::Module(name.clone()));
        }
        for (kind, name) in declarations.resources.keys() {
            add(&mut graph, Node::Resource(kind.clone(), name.clone()));
        }
        for (kind, name) in declarations.data.keys() {
            add(&mut graph, Node::Data(kind.clone(), name.clone()));
        }
        for name in declarations.outputs.keys() {
            add(&mut graph, Node::Output(name.clone()));
        }
        let nodes: Vec<(Node, NodeIndex)> = index_of.iter().map(|(node, index)| (node.clone(), *index)).collect();
        for (node, index) in &nodes {
            let mut references = Vec::new();
            match node {
                // A validation condition refers to its own variable by design, and
                // defaults are literals: variables depend on nothing.
                Node::Variable(_) => {}
                Node::Local(name) => collect_references(&declarations.locals[name].value, &mut references),
                Node::Provider(kind, alias) => {
                    collect_block_references(&declarations.providers[&(kind.clone(), alias.clone())].body, &mut references)
                }
                Node::Module(name) => collect_block_references(&declarations.modules[name].body, &mut references),
                Node::Resource(kind, name) => {
                    collect_block_references(&declarations.resources[&(kind.clone(), name.clone())].body, &mut references)
                }
                Node::Data(kind, name) => collect_block_references(&declarations.data[&(kind.clone(), name.clone())].body, &mut references),
                Node::Output(name) => collect_block_references(&declarations.outputs[name].body, &mut references),
            }
            for (path, span) in references {
                if let Some(target) = self.reference_target(&path, &index_of) {
                    graph.add_edge(*index, target, span);
                }
            }
        }
        let order = self.order(&graph);

        let mut facts = ModuleFacts::default();
        let mut resources = Vec::new();
        let mut outputs = Vec::new();
        let mut children = Vec::new();
        let mut providers = Vec::new();
        for index in order {
            let node = graph[index].clone();
            let dependencies: Vec<String> = graph
                .neighbors(index)
                .filter_map(|target| match &graph[target] {
                    node @ (Node::Resource(..) | Node::Data(..) | Node::Module(..)) => Some(node.describe()),
                    _ => None,
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            match node {
                Node::Variable(name) => {
                    let value = self.check_variable(&scope, &name, &declarations.variables[&name], inputs.as_ref());
                    scope.variables.insert(name, value);
                }
                Node::Local(name) => {
                    let value = self.evaluate(
                        &scope,
                        &Context { describe: "a local value", ..Context::default() },
                        &declarations.locals[&name].value,
                    );
                    scope.locals.insert(name, value);
                }
                Node::Provider(kind, alias) => {
                    let block = &declarations.providers[&(kind.clone(), alias.clone())];
                    if let Some(schema) = self.schemas.providers.get(&kind) {
                        let mut checker = self.body_checker(&scope, None, "a provider block");
                        let values =
                            checker.check(&block.body, &schema.body, block.header_span(), &format!("provider `{kind}`"), &["alias"]);
                        providers.push((kind, (!alias.is_empty()).then_some(alias), values));
                    }
                }
                Node::Module(name) => {
                    let (value, child) = self.check_module_call(&scope, &path, &name, &declarations.modules[&name]);
                    scope.modules.insert(name, value);
                    if let Some(child) = child {
                        children.push(child);
                    }
                }
                Node::Resource(kind, name) if self.providers_only => {
                    scope.resources.insert((kind, name), Value::unknown_any());
                }
                Node::Data(kind, name) if self.providers_only => {
                    scope.data.insert((kind, name), Value::unknown_any());
                }
                Node::Output(_) if self.providers_only => {}
                Node::Resource(kind, name) => {
                    let block = &declarations.resources[&(kind.clone(), name.clone())];
                    let (value, checked) =
                        self.check_resource(&scope, &mut facts, &module_providers, &path, &kind, &name, block, false, dependencies);
                    scope.resources.insert((kind, name), value);
                    resources.push(checked);
                }
                Node::Data(kind, name) => {
                    let block = &declarations.data[&(kind.clone(), name.clone())];
                    let (value, checked) =
                        self.check_resource(&scope, &mut facts, &module_providers, &path, &kind, &name, block, true, dependencies);
                    scope.data.insert((kind, name), value);
                    resources.push(checked);
                }
                Node::Output(name) => outputs.push(self.check_output(&scope, &name, &declarations.outputs[&name])),
            }
        }
        let backend = self.check_settings(&scope, &declarations.settings, path.is_empty());
        // Outputs in declaration order.
        outputs.sort_by_key(|output: &CheckedOutput| declarations.outputs.get_index_of(&output.name));
        resources.sort_by_key(|resource: &CheckedResource| {
            if resource.is_data {
                declarations.resources.len() + declarations.data.get_index_of(&(resource.kind.clone(), resource.name.clone())).unwrap_or(0)
            } else {
                declarations.resources.get_index_of(&(resource.kind.clone(), resource.name.clone())).unwrap_or(0)
            }
        });
        self.call_stack.pop();
        self.provider_settings = outer_provider_settings;
        CheckedModule { path, directory: loaded.directory.clone(), resources, outputs, children, backend, providers }
    }

    fn body_checker<'s>(&'s mut self, scope: &'s Scope, provider: Option<&'s str>, describe: &'static str) -> BodyChecker<'s> {
        BodyChecker {
            scope,
            schemas: self.schemas,
            diagnostics: &mut self.diagnostics,
            provider,
            context: Context { describe, ..Context::default() },
            row: None,
            self_value: None,
            deferred: None,
            path: Vec::new(),
        }
    }

    fn evaluate(&mut self, scope: &Scope, context: &Context, expr: &Expr) -> Value {
        Evaluator::new(scope, context, self.schemas, &mut self.diagnostics).eval(expr)
    }

    /// Sorts the top-level blocks of a module into declarations.
    fn lower(&mut self, loaded: &LoadedModule) -> Declarations {
        let mut declarations = Declarations::default();
        let mut first_spans: HashMap<(String, String), Span> = HashMap::new();
        for (_, body) in &loaded.files {
            for attribute in &body.attributes {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("`{}` is set outside of any block", attribute.name.name))
                        .at(attribute.name.span, "top-level attribute")
                        .with_help(format!("put it inside a block, or in `locals {{ {} = ... }}`", attribute.name.name)),
                );
            }
            for block in &body.blocks {
                let kind = block.kind.name.as_str();
                let is_resource = self.schemas.resources.get(kind).is_some_and(|schema| schema.declarable);
                let labels_wanted: &[&str] = match kind {
                    "mlops" | "locals" => &[],
                    "variable" | "output" | "module" => &["name"],
                    "provider" => &["type"],
                    "data" => &["kind", "name"],
                    _ if is_resource => &["name"],
                    _ => {
                        let mut candidates: Vec<&str> = TOP_LEVEL.to_vec();
                        candidates.extend(self.schemas.declarable_kinds());
                        self.diagnostics.push(
                            Diagnostic::error(codes::UNKNOWN_BLOCK_KIND, format!("unknown block kind `{kind}`"))
                                .at(block.kind.span, "not a block kind")
                                .with_help(did_you_mean(kind, candidates.iter().copied()).unwrap_or_else(|| {
                                    format!("the resource kinds are {}", one_of(&self.schemas.declarable_kinds().collect::<Vec<_>>()))
                                })),
                        );
                        continue;
                    }
                };
                if block.labels.len() != labels_wanted.len() {
                    let example = match kind {
                        "mlops" | "locals" => format!("{kind} {{ ... }}"),
                        "data" => "data \"model\" \"baseline\" { ... }".to_owned(),
                        "provider" => "provider \"s3\" { ... }".to_owned(),
                        _ => format!("{kind} \"NAME\" {{ ... }}"),
                    };
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::WRONG_LABEL_COUNT,
                            format!(
                                "a `{kind}` block takes {} label{}, not {}",
                                labels_wanted.len(),
                                if labels_wanted.len() == 1 { "" } else { "s" },
                                block.labels.len()
                            ),
                        )
                        .at(
                            block.header_span(),
                            if labels_wanted.is_empty() {
                                "no labels wanted".to_owned()
                            } else {
                                format!("wants: {}", labels_wanted.join(", "))
                            },
                        )
                        .with_help(format!("write `{example}`")),
                    );
                    continue;
                }
                if let Some(label) = block.labels.last().filter(|label| !units::is_identifier(&label.value)) {
                    let fixed: String = label
                        .value
                        .chars()
                        .map(|character| if character.is_ascii_alphanumeric() || character == '-' { character } else { '_' })
                        .collect();
                    let fixed = if fixed.starts_with(|character: char| character.is_ascii_digit()) { format!("_{fixed}") } else { fixed };
                    self.diagnostics.push(
                        Diagnostic::error(codes::INVALID_NAME, format!("\"{}\" is not a valid name", label.value))
                            .at(label.span, "invalid name")
                            .with_help(format!("names start with a letter and hold letters, digits, `_` and `-`, such as \"{fixed}\"")),
                    );
                    continue;
                }
                // A provider is named by its type and alias together.
                let provider_alias = block
                    .body
                    .attribute("alias")
                    .and_then(|alias| literal_value(&alias.value))
                    .and_then(|alias| alias.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let key = match kind {
                    "mlops" | "locals" => None,
                    "provider" => {
                        if !self.schemas.providers.contains_key(&block.labels[0].value) {
                            self.diagnostics.push(
                                Diagnostic::error(
                                    codes::UNKNOWN_PROVIDER,
                                    format!("there is no provider type `{}`", block.labels[0].value),
                                )
                                .at(block.labels[0].span, "unknown provider type")
                                .with_help(
                                    did_you_mean(&block.labels[0].value, self.schemas.providers.keys().map(String::as_str)).unwrap_or_else(
                                        || format!("the provider types are {}", one_of(&self.schemas.providers.keys().collect::<Vec<_>>())),
                                    ),
                                ),
                            );
                            continue;
                        }
                        Some(("provider".to_owned(), format!("{}.{provider_alias}", block.labels[0].value)))
                    }
                    "data" => {
                        if !self.schemas.data.contains_key(&block.labels[0].value) {
                            self.diagnostics.push(
                                Diagnostic::error(
                                    codes::UNKNOWN_BLOCK_KIND,
                                    format!("there is no data source kind `{}`", block.labels[0].value),
                                )
                                .at(block.labels[0].span, "unknown data kind")
                                .with_help(
                                    did_you_mean(&block.labels[0].value, self.schemas.data.keys().map(String::as_str)).unwrap_or_else(
                                        || format!("the data kinds are {}", one_of(&self.schemas.data.keys().collect::<Vec<_>>())),
                                    ),
                                ),
                            );
                            continue;
                        }
                        Some((format!("data.{}", block.labels[0].value), block.labels[1].value.clone()))
                    }
                    _ => Some((kind.to_owned(), block.labels[0].value.clone())),
                };
                if let Some(key) = &key {
                    if let Some(first) = first_spans.get(key) {
                        let what = if kind == "provider" {
                            format!("provider `{}`", key.1.trim_end_matches('.'))
                        } else {
                            format!("{kind} `{}`", key.1)
                        };
                        self.diagnostics.push(
                            Diagnostic::error(codes::DUPLICATE_NAME, format!("{what} is declared twice"))
                                .at(block.header_span(), "declared again here")
                                .with_secondary(*first, "first declared here")
                                .with_help(if kind == "provider" {
                                    "give the second one an `alias = \"...\"`".to_owned()
                                } else {
                                    "rename or remove one of them".to_owned()
                                }),
                        );
                        continue;
                    }
                    first_spans.insert(key.clone(), block.header_span());
                }
                match kind {
                    "mlops" => {
                        if let Some(first) = declarations.settings.first() {
                            self.diagnostics.push(
                                Diagnostic::error(codes::DUPLICATE_NAME, "the `mlops` settings block is declared twice")
                                    .at(block.kind.span, "declared again here")
                                    .with_secondary(first.kind.span, "first declared here")
                                    .with_help("merge them into one"),
                            );
                            continue;
                        }
                        declarations.settings.push(block.clone());
                    }
                    "locals" => {
                        for attribute in &block.body.attributes {
                            let name = attribute.name.name.clone();
                            if let Some(first) = declarations.locals.get(&name) {
                                self.diagnostics.push(
                                    Diagnostic::error(codes::DUPLICATE_NAME, format!("local value `{name}` is declared twice"))
                                        .at(attribute.name.span, "declared again here")
                                        .with_secondary(first.name.span, "first declared here")
                                        .with_help("rename or remove one of them"),
                                );
                                continue;
                            }
                            declarations.locals.insert(name, attribute.clone());
                        }
                        for nested in &block.body.blocks {
                            self.diagnostics.push(
                                Diagnostic::error(codes::UNKNOWN_BLOCK_KIND, "`locals` holds attributes only")
                                    .at(nested.kind.span, "a block inside locals")
                                    .with_help("write `name = value` lines"),
                            );
                        }
                    }
                    "variable" => {
                        declarations.variables.insert(block.labels[0].value.clone(), block.clone());
                    }
                    "output" => {
                        declarations.outputs.insert(block.labels[0].value.clone(), block.clone());
                    }
                    "module" => {
                        declarations.modules.insert(block.labels[0].value.clone(), block.clone());
                    }
                    "provider" => {
                        declarations.providers.insert((block.labels[0].value.clone(), provider_alias), block.clone());
                    }
                    "data" => {
                        declarations.data.insert((block.labels[0].value.clone(), block.labels[1].value.clone()), block.clone());
                    }
                    _ => {
                        declarations.resources.insert((kind.to_owned(), block.labels[0].value.clone()), block.clone());
                    }
                }
            }
        }
        declarations
    }

    fn reference_target(&self, path: &[(String, Span)], index_of: &HashMap<Node, NodeIndex>) -> Option<NodeIndex> {
        let name = |position: usize| path.get(position).map(|(name, _)| name.clone());
        let node = match path.first()?.0.as_str() {
            "var" => Node::Variable(name(1)?),
            "local" => Node::Local(name(1)?),
            "module" => Node::Module(name(1)?),
            "data" => Node::Data(name(1)?, name(2)?),
            kind if self.schemas.resources.contains_key(kind) => Node::Resource(kind.to_owned(), name(1)?),
            provider if self.schemas.providers.contains_key(provider) => Node::Provider(provider.to_owned(), name(1).unwrap_or_default()),
            _ => return None,
        };
        index_of.get(&node).copied()
    }

    /// Evaluation order: dependencies first. Reports every cycle, whole.
    fn order(&mut self, graph: &DiGraph<Node, Span>) -> Vec<NodeIndex> {
        let components = petgraph::algo::tarjan_scc(graph);
        let mut order = Vec::with_capacity(graph.node_count());
        for component in components {
            let cyclic = component.len() > 1 || graph.find_edge(component[0], component[0]).is_some();
            if cyclic {
                self.report_cycle(graph, &component);
            }
            order.extend(component);
        }
        order
    }

    fn report_cycle(&mut self, graph: &DiGraph<Node, Span>, component: &[NodeIndex]) {
        let members: HashSet<NodeIndex> = component.iter().copied().collect();
        // Walk from the first member (in source order) along edges inside the
        // component until the walk comes back: that is one whole cycle.
        let start =
            *component.iter().min_by_key(|index| graph.edges(**index).map(|edge| edge.weight().start).min()).unwrap_or(&component[0]);
        let mut path = vec![start];
        let mut spans = Vec::new();
        let mut visited = HashSet::new();
        let mut current = start;
        loop {
            visited.insert(current);
            let mut edges: Vec<_> = graph.edges(current).filter(|edge| members.contains(&petgraph::visit::EdgeRef::target(edge))).collect();
            edges.sort_by_key(|edge| (petgraph::visit::EdgeRef::target(edge) != start, edge.weight().start));
            let Some(edge) = edges.first() else { break };
            let target = petgraph::visit::EdgeRef::target(edge);
            spans.push((*edge.weight(), graph[target].describe()));
            if target == start || visited.contains(&target) {
                path.push(target);
                break;
            }
            path.push(target);
            current = target;
        }
        let names: Vec<String> = path.iter().map(|index| graph[*index].describe()).collect();
        let Some(((first_span, first_target), rest)) = spans.split_first() else { return };
        let mut diagnostic = Diagnostic::error(codes::DEPENDENCY_CYCLE, format!("dependency cycle: {}", names.join(" -> ")))
            .at(*first_span, format!("{} refers to {first_target}", names[0]))
            .with_help("break the cycle by removing one of these references");
        for (index, (span, target)) in rest.iter().enumerate() {
            diagnostic = diagnostic.with_secondary(*span, format!("{} refers to {target}", names[index + 1]));
        }
        self.diagnostics.push(diagnostic);
    }

    /// Values given for variables the root module does not declare: a typo
    /// on the command line is an error, one in a shared variable file a
    /// warning, and the environment may hold anything.
    fn report_undeclared_variables(&mut self, inputs: &Inputs, declared: &IndexMap<String, Block>) {
        let mut names: Vec<&String> = inputs.keys().filter(|name| !declared.contains_key(*name)).collect();
        names.sort();
        for name in names {
            let origin = self.variable_origins.get(name).cloned().unwrap_or(VariableOrigin::CommandLine);
            let help = did_you_mean(name, declared.keys().map(String::as_str)).unwrap_or_else(|| {
                if declared.is_empty() {
                    "the configuration declares no variables".to_owned()
                } else {
                    format!("the variables are {}", one_of(&declared.keys().collect::<Vec<_>>()))
                }
            });
            let message = format!("{} sets `{name}`, which the configuration does not declare", origin.describe(name));
            match origin {
                VariableOrigin::CommandLine => self.diagnostics.push(Diagnostic::error(codes::UNKNOWN_VARIABLE, message).with_help(help)),
                VariableOrigin::File(_) => self.diagnostics.push(Diagnostic::warning(codes::UNKNOWN_VARIABLE, message).with_help(help)),
                VariableOrigin::Environment => {}
            }
        }
    }

    fn check_variable(&mut self, scope: &Scope, name: &str, block: &Block, inputs: Option<&Inputs>) -> Value {
        let body = &block.body;
        for attribute in &body.attributes {
            if !["type", "default", "description", "sensitive", "nullable"].contains(&attribute.name.name.as_str()) {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("variable `{name}` has no attribute `{}`", attribute.name.name))
                        .at(attribute.name.span, "unknown attribute")
                        .with_help(
                            did_you_mean(&attribute.name.name, ["type", "default", "description", "sensitive", "nullable"]).unwrap_or_else(
                                || "a variable takes type, default, description, sensitive, nullable and validation blocks".to_owned(),
                            ),
                        ),
                );
            }
        }
        let ty = match body.attribute("type") {
            Some(attribute) => match parse_type_expr(&attribute.value, false) {
                Ok(ty) => ty,
                Err(error) => {
                    self.diagnostics.push(
                        Diagnostic::error(codes::INVALID_TYPE_EXPRESSION, error.message).at(error.span, "not a type").with_help(
                            error.suggestion.unwrap_or_else(|| {
                                "types are string, number, bool, any, list(T), set(T), map(T), object({...}) and tuple([...])".to_owned()
                            }),
                        ),
                    );
                    Type::Any
                }
            },
            None => Type::Any,
        };
        let literal_flag = |attribute: &str| {
            body.attribute(attribute).and_then(|attribute| literal_value(&attribute.value)).and_then(|value| value.as_bool())
        };
        let sensitive = literal_flag("sensitive").unwrap_or(false);
        let context = Context { describe: "a variable declaration", ..Context::default() };
        let default = body.attribute("default").map(|attribute| {
            let value = self.evaluate(scope, &context, &attribute.value);
            check_type(&mut self.diagnostics, &attribute.value, &value, &ty, name);
            (value, attribute.value.span)
        });
        // The value the rest of the module sees.
        let given = inputs.and_then(|inputs| inputs.get(name).cloned());
        let value = match (&given, &default, inputs) {
            (Some((value, span)), _, _) => {
                let coerced = coerce_given(value.clone(), &ty);
                // A value from outside the configuration (`-var`, a file, the
                // environment) has no expression to check: check it here.
                if span.is_none() && !ty.accepts(&coerced.type_of()) {
                    let origin = self.variable_origins.get(name).cloned().unwrap_or(VariableOrigin::CommandLine);
                    let shown = if sensitive { "a sensitive value".to_owned() } else { coerced.describe() };
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            format!("variable `{name}` is a {ty}, but {} gives it {shown}", origin.describe(name)),
                        )
                        .at(block.header_span(), format!("declared as {ty}"))
                        .with_help(format!("give `{name}` a value of type {ty}")),
                    );
                    Value::Unknown(ty.clone())
                } else {
                    coerced
                }
            }
            (None, _, Some(_)) if self.missing_variables_unknown => Value::Unknown(ty.clone()),
            (None, Some((value, _)), Some(_)) => value.clone(),
            // validate: not known until values are given.
            (None, _, None) => Value::Unknown(ty.clone()),
            (None, None, Some(_)) => {
                if self.call_stack.len() == 1 {
                    self.diagnostics.push(
                        Diagnostic::error(codes::MISSING_VARIABLE_VALUE, format!("variable `{name}` has no value"))
                            .at(block.header_span(), "no default, and no value given")
                            .with_help(format!("pass `-var {name}=VALUE` or `-var-file FILE`, or give the variable a default")),
                    );
                }
                Value::Unknown(ty.clone())
            }
        };
        for validation in body.blocks_named("validation") {
            let condition = validation.body.attribute("condition");
            let message = validation.body.attribute("error_message");
            for attribute in &validation.body.attributes {
                if attribute.name.name != "condition" && attribute.name.name != "error_message" {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::UNKNOWN_ATTRIBUTE,
                            format!("a validation block has no attribute `{}`", attribute.name.name),
                        )
                        .at(attribute.name.span, "unknown attribute")
                        .with_help("a validation block takes `condition` and `error_message`"),
                    );
                }
            }
            let Some(condition) = condition else {
                self.diagnostics.push(
                    Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, "a validation block needs a `condition`")
                        .at(validation.kind.span, "no condition")
                        .with_help(format!("add `condition = ...` testing var.{name}")),
                );
                continue;
            };
            let mut references = Vec::new();
            collect_references(&condition.value, &mut references);
            if !references.iter().any(|(path, _)| path.len() >= 2 && path[0].0 == "var" && path[1].0 == name) {
                self.diagnostics.push(
                    Diagnostic::error(codes::INVALID_VALIDATION_CONDITION, format!("this condition does not test `var.{name}`"))
                        .at(condition.value.span, "validates nothing")
                        .with_help(format!("a validation condition must refer to var.{name}")),
                );
                continue;
            }
            // Check the condition against the default (during validate) or the given value.
            let candidates: Vec<(Value, Span)> = match (&given, &default) {
                (Some((value, span)), _) => vec![(value.clone(), span.unwrap_or(condition.value.span))],
                (None, Some((value, span))) => vec![(value.clone(), *span)],
                (None, None) => vec![(Value::Unknown(ty.clone()), condition.value.span)],
            };
            for (candidate, span) in candidates {
                let mut validation_scope = Scope {
                    declared_variables: vec![name.to_owned()],
                    module_directory: scope.module_directory.clone(),
                    root_directory: scope.root_directory.clone(),
                    ..Scope::default()
                };
                validation_scope.variables.insert(name.to_owned(), candidate.clone());
                let result = self.evaluate(
                    &validation_scope,
                    &Context { describe: "a validation condition", ..Context::default() },
                    &condition.value,
                );
                match result.unmark().0 {
                    Value::Bool(false) => {
                        let error_message = message
                            .and_then(|message| literal_value(&message.value))
                            .and_then(|message| message.as_str().map(str::to_owned))
                            .unwrap_or_else(|| format!("invalid value for var.{name}"));
                        let shown = if sensitive { "(sensitive)".to_owned() } else { candidate.describe() };
                        self.diagnostics.push(
                            Diagnostic::error(
                                codes::VARIABLE_VALIDATION_FAILED,
                                format!("var.{name} = {shown} fails its validation: {error_message}"),
                            )
                            .at(span, "fails the validation")
                            .with_secondary(condition.value.span, "this condition is false")
                            .with_help(error_message),
                        );
                    }
                    Value::Bool(true) | Value::Unknown(_) => {}
                    other => {
                        self.diagnostics.push(
                            Diagnostic::error(
                                codes::INVALID_VALIDATION_CONDITION,
                                format!("a validation condition must be a bool, not {}", other.type_of()),
                            )
                            .at(condition.value.span, "not a bool"),
                        );
                    }
                }
            }
        }
        for nested in &body.blocks {
            if nested.kind.name != "validation" {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_BLOCK_KIND, format!("a variable has no block `{}`", nested.kind.name))
                        .at(nested.kind.span, "unknown block")
                        .with_help("a variable takes `validation` blocks"),
                );
            }
        }
        value.mark_if(sensitive)
    }

    fn check_output(&mut self, scope: &Scope, name: &str, block: &Block) -> CheckedOutput {
        let body = &block.body;
        for attribute in &body.attributes {
            if !["value", "description", "sensitive", "depends_on"].contains(&attribute.name.name.as_str()) {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("output `{name}` has no attribute `{}`", attribute.name.name))
                        .at(attribute.name.span, "unknown attribute")
                        .with_help(
                            did_you_mean(&attribute.name.name, ["value", "description", "sensitive", "depends_on"])
                                .unwrap_or_else(|| "an output takes value, description, sensitive and depends_on".to_owned()),
                        ),
                );
            }
        }
        let context = Context { describe: "an output", ..Context::default() };
        let sensitive_attribute = body.attribute("sensitive");
        let declared_sensitive =
            sensitive_attribute.and_then(|attribute| literal_value(&attribute.value)).and_then(|value| value.as_bool()).unwrap_or(false);
        let mut residual = None;
        let value = match body.attribute("value") {
            Some(attribute) => {
                let value = self.evaluate(scope, &context, &attribute.value);
                if value.contains_sensitive() && !declared_sensitive {
                    self.diagnostics.push(
                        Diagnostic::error(codes::SENSITIVE_OUTPUT, format!("output `{name}` exposes a sensitive value"))
                            .at(attribute.value.span, "contains a sensitive value")
                            .with_help("add `sensitive = true` to the output if showing it is intended"),
                    );
                }
                if self.resolver.is_some() && !value.is_wholly_known() {
                    residual = Some(crate::residual::residual(&attribute.value, scope, &context, self.schemas));
                }
                value
            }
            None => {
                self.diagnostics.push(
                    Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, format!("output `{name}` has no `value`"))
                        .at(block.header_span(), "`value` is required")
                        .with_help("add `value = ...`"),
                );
                Value::unknown_any()
            }
        };
        if let Some(depends_on) = body.attribute("depends_on") {
            self.check_depends_on(scope, depends_on);
        }
        let description = body
            .attribute("description")
            .and_then(|attribute| literal_value(&attribute.value))
            .and_then(|value| value.as_str().map(str::to_owned));
        CheckedOutput {
            name: name.to_owned(),
            value: value.mark_if(declared_sensitive),
            residual,
            sensitive: declared_sensitive,
            description,
        }
    }

    fn check_settings(&mut self, scope: &Scope, settings: &[Block], is_root: bool) -> Option<(String, BTreeMap<String, Value>)> {
        let block = settings.first()?;
        for attribute in &block.body.attributes {
            if attribute.name.name != "required_version" {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("the mlops block has no attribute `{}`", attribute.name.name))
                        .at(attribute.name.span, "unknown attribute")
                        .with_help("the mlops block takes `required_version` and a `backend` block"),
                );
            }
        }
        if let Some(attribute) = block.body.attribute("required_version") {
            let value = self.evaluate(scope, &Context { describe: "the mlops block", ..Context::default() }, &attribute.value);
            if let Some(constraint) = value.as_str() {
                let version = env!("CARGO_PKG_VERSION");
                match units::version_satisfies(constraint, version) {
                    Ok(true) => {}
                    Ok(false) => self.diagnostics.push(
                        Diagnostic::error(
                            codes::UNSUPPORTED_VERSION,
                            format!("this configuration needs mlops {constraint}, but this is mlops {version}"),
                        )
                        .at(attribute.value.span, "not satisfied")
                        .with_help("install a version of mlops that satisfies the constraint"),
                    ),
                    Err(message) => self.diagnostics.push(
                        Diagnostic::error(codes::INVALID_VERSION_CONSTRAINT, message)
                            .at(attribute.value.span, "unreadable constraint")
                            .with_help("write comparisons such as \">= 0.1\" or \"~> 0.1, < 1.0\""),
                    ),
                }
            } else if value.is_known() {
                check_type(&mut self.diagnostics, &attribute.value, &value, &Type::String, "required_version");
            }
        }
        let mut backend = None;
        for nested in &block.body.blocks {
            if nested.kind.name != "backend" {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_BLOCK_KIND, format!("the mlops block has no block `{}`", nested.kind.name))
                        .at(nested.kind.span, "unknown block")
                        .with_optional_help(
                            did_you_mean(&nested.kind.name, ["backend"]).or(Some("the mlops block takes a `backend` block".to_owned())),
                        ),
                );
                continue;
            }
            let [label] = nested.labels.as_slice() else {
                self.diagnostics.push(
                    Diagnostic::error(codes::WRONG_LABEL_COUNT, "a `backend` block takes one label: its type")
                        .at(nested.header_span(), "wants: type")
                        .with_help("write `backend \"s3\" { ... }`"),
                );
                continue;
            };
            let Some(schema) = self.schemas.backends.get(&label.value) else {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_BACKEND, format!("there is no state backend `{}`", label.value))
                        .at(label.span, "unknown backend")
                        .with_help(
                            did_you_mean(&label.value, self.schemas.backends.keys().map(String::as_str)).unwrap_or_else(|| {
                                format!("the backends are {}", one_of(&self.schemas.backends.keys().collect::<Vec<_>>()))
                            }),
                        ),
                );
                continue;
            };
            let mut checker = self.body_checker(scope, None, "a backend block");
            let values = checker.check(&nested.body, &schema.body, nested.header_span(), &format!("backend `{}`", label.value), &[]);
            if is_root && backend.is_none() {
                backend = Some((label.value.clone(), values));
            }
        }
        backend
    }

    fn check_depends_on(&mut self, scope: &Scope, attribute: &Attribute) {
        let ExprKind::List(items) = &attribute.value.kind else {
            self.diagnostics.push(
                Diagnostic::error(codes::INVALID_REFERENCE, "`depends_on` must be a list of references")
                    .at(attribute.value.span, "not a list")
                    .with_help("write `depends_on = [dataset.NAME, ...]`"),
            );
            return;
        };
        for item in items {
            let valid_root = item.reference_path().is_some_and(|path| {
                let root = path[0].0.as_str();
                (root == "module" || root == "data" || self.schemas.resources.get(root).is_some_and(|schema| schema.declarable))
                    && path.len() >= if root == "data" { 3 } else { 2 }
            });
            if !valid_root {
                let help = match &item.kind {
                    ExprKind::String(text) => format!("write the reference without quotes: `{text}`"),
                    _ => "write a resource, data source or module reference, such as `dataset.NAME`".to_owned(),
                };
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::INVALID_REFERENCE,
                        "`depends_on` entries must be references to resources, data sources or modules",
                    )
                    .at(item.span, "not a reference")
                    .with_help(help),
                );
                continue;
            }
            // Resolve it (reports unknown names) without using the value.
            self.evaluate(scope, &Context { describe: "depends_on", ..Context::default() }, item);
        }
    }

    /// The cached directory of a registry module, checked against the
    /// digest `mlops.lock.hcl` pins for it.
    fn installed_module(&mut self, name: &str, source: &str) -> Result<PathBuf, Diagnostic> {
        if let Some(directory) = self.installed_modules.get(source) {
            return Ok(directory.clone());
        }
        let pins = crate::lock::read(&self.root_directory).map_err(|message| {
            Diagnostic::error(codes::REMOTE_MODULE_NOT_INSTALLED, message).with_help("run `mlops init` to write mlops.lock.hcl again")
        })?;
        let pinned_digest = source.split_once('@').map(|(_, digest)| digest.to_owned());
        let Some(digest) = pins.get(source).cloned() else {
            return Err(Diagnostic::error(
                codes::REMOTE_MODULE_NOT_INSTALLED,
                format!("module `{name}`: \"{source}\" comes from a registry and is not installed"),
            )
            .with_help("run `mlops init` to download it and pin it in mlops.lock.hcl"));
        };
        if pinned_digest.as_ref().is_some_and(|pinned| *pinned != digest) {
            return Err(Diagnostic::error(
                codes::MODULE_CONTENT_MISMATCH,
                format!("module `{name}`: mlops.lock.hcl pins \"{source}\" to {digest}, which is not the digest the source names"),
            )
            .with_help("run `mlops init` to pin the digest in the source"));
        }
        let directory = crate::lock::cache_directory(&self.root_directory, &digest);
        match crate::lock::verify(&directory, &digest) {
            Ok(()) => {
                self.installed_modules.insert(source.to_owned(), directory.clone());
                Ok(directory)
            }
            Err(crate::lock::CacheProblem::Missing) => Err(Diagnostic::error(
                codes::REMOTE_MODULE_NOT_INSTALLED,
                format!("module `{name}`: \"{source}\" is pinned in mlops.lock.hcl but not downloaded"),
            )
            .with_help("run `mlops init` to download it")),
            Err(crate::lock::CacheProblem::Changed(file)) => Err(Diagnostic::error(
                codes::MODULE_CONTENT_MISMATCH,
                format!(
                    "module `{name}`: the content of \"{source}\" no longer matches the digest pinned in mlops.lock.hcl ({digest}): `{file}` differs",
                ),
            )
            .with_help("run `mlops init` to download the pinned content again; if the new content is intended, review it and run `mlops init -upgrade`")),
        }
    }

    fn check_module_call(&mut self, scope: &Scope, parent_path: &[String], name: &str, block: &Block) -> (Value, Option<CheckedModule>) {
        let context = Context { describe: "a module call", ..Context::default() };
        let Some(source_attribute) = block.body.attribute("source") else {
            self.diagnostics.push(
                Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, format!("module `{name}` has no `source`"))
                    .at(block.header_span(), "`source` is required")
                    .with_help("add `source = \"./modules/NAME\"`"),
            );
            return (Value::unknown_any(), None);
        };
        let Some(Value::String(source)) = literal_value(&source_attribute.value) else {
            self.diagnostics.push(
                Diagnostic::error(codes::TYPE_MISMATCH, "a module `source` must be a literal string")
                    .at(source_attribute.value.span, "not a literal string")
                    .with_help("sources are resolved before anything is evaluated; write the path as a plain string"),
            );
            return (Value::unknown_any(), None);
        };
        let registry_directory = if source.starts_with("oci://") {
            match self.installed_module(name, &source) {
                Ok(directory) => Some(directory),
                Err(diagnostic) => {
                    self.diagnostics.push(diagnostic.at(source_attribute.value.span, "registry module"));
                    return (Value::unknown_any(), None);
                }
            }
        } else {
            None
        };
        if registry_directory.is_none() && !(source.starts_with("./") || source.starts_with("../") || source.starts_with('/')) {
            self.diagnostics.push(
                Diagnostic::error(codes::MODULE_NOT_FOUND, format!("\"{source}\" is not a module source"))
                    .at(source_attribute.value.span, "unknown source form")
                    .with_help("local modules start with ./ or ../; registry modules with oci://"),
            );
            return (Value::unknown_any(), None);
        }
        let directory = registry_directory.clone().unwrap_or_else(|| scope.module_directory.join(&source));
        let canonical = directory.canonicalize().unwrap_or_else(|_| directory.clone());
        if self.call_stack.contains(&canonical) {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::MODULE_RECURSION,
                    format!("module `{name}` calls a module that is already being called: \"{source}\""),
                )
                .at(source_attribute.value.span, "recursive module")
                .with_help("a module cannot call itself, directly or through other modules"),
            );
            return (Value::unknown_any(), None);
        }
        if !directory.is_dir() || crate::loader::configuration_files(&directory).map_or(true, |files| files.is_empty()) {
            let parent = directory.parent().map(Path::to_path_buf).unwrap_or_default();
            let siblings: Vec<String> = std::fs::read_dir(&parent)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|entry| entry.path().is_dir())
                        .map(|entry| entry.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let wanted = directory.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            let help = did_you_mean(&wanted, siblings.iter().map(String::as_str))
                .unwrap_or_else(|| "the path is relative to the directory of the calling module".to_owned());
            self.diagnostics.push(
                Diagnostic::error(
                    codes::MODULE_NOT_FOUND,
                    format!("module `{name}`: \"{source}\" is not a directory of *.mlops.hcl files"),
                )
                .at(source_attribute.value.span, "no module here")
                .with_help(help),
            );
            return (Value::unknown_any(), None);
        }
        let display = if registry_directory.is_some() {
            source.clone()
        } else {
            crate::loader::display_join(&scope.module_display, source.trim_start_matches("./"))
        };
        let loaded = match self.loaded_modules.get(&canonical) {
            Some(loaded) => loaded.clone(),
            None => {
                let Some(loaded) = load_directory(&directory, &display, &mut self.sources, &mut self.diagnostics) else {
                    return (Value::unknown_any(), None);
                };
                let loaded = std::rc::Rc::new(loaded);
                self.loaded_modules.insert(canonical.clone(), loaded.clone());
                loaded
            }
        };
        // The child's declared variables decide which arguments are inputs.
        let mut child_variables: IndexMap<String, bool> = IndexMap::new();
        for (_, body) in &loaded.files {
            for variable in body.blocks_named("variable") {
                if let Some(label) = variable.labels.first() {
                    child_variables.insert(label.value.clone(), variable.body.attribute("default").is_some());
                }
            }
        }
        let mut inputs: Inputs = HashMap::new();
        for attribute in &block.body.attributes {
            let argument = attribute.name.name.as_str();
            if ["source", "version", "count", "for_each", "depends_on", "providers"].contains(&argument) {
                if argument == "depends_on" {
                    self.check_depends_on(scope, attribute);
                }
                continue;
            }
            let value = self.evaluate(scope, &context, &attribute.value);
            if !child_variables.contains_key(argument) {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_MODULE_INPUT, format!("module `{name}` has no variable `{argument}`"))
                        .at(attribute.name.span, "not a module input")
                        .with_help(did_you_mean(argument, child_variables.keys().map(String::as_str)).unwrap_or_else(|| {
                            if child_variables.is_empty() {
                                "the module declares no variables".to_owned()
                            } else {
                                format!("its variables are {}", one_of(&child_variables.keys().collect::<Vec<_>>()))
                            }
                        })),
                );
                continue;
            }
            inputs.insert(argument.to_owned(), (value, Some(attribute.value.span)));
        }
        for (variable, has_default) in &child_variables {
            if !has_default && !inputs.contains_key(variable) {
                self.diagnostics.push(
                    Diagnostic::error(codes::MISSING_MODULE_INPUT, format!("module `{name}` needs the input `{variable}`"))
                        .at(block.header_span(), format!("`{variable}` is not set"))
                        .with_help(format!("add `{variable} = ...` to the module block")),
                );
                inputs.insert(variable.clone(), (Value::unknown_any(), None));
            }
        }
        let mut path = parent_path.to_vec();
        path.push(name.to_owned());
        let child = self.check_module(&loaded, path, Some(inputs));
        let outputs: BTreeMap<String, Value> = child.outputs.iter().map(|output| (output.name.clone(), output.value.clone())).collect();
        (Value::Map(outputs), Some(child))
    }

    #[allow(clippy::too_many_arguments)]
    fn check_resource(
        &mut self,
        scope: &Scope,
        facts: &mut ModuleFacts,
        module_providers: &[(String, String)],
        module_path: &[String],
        kind: &str,
        name: &str,
        block: &Block,
        is_data: bool,
        depends_on: Vec<String>,
    ) -> (Value, CheckedResource) {
        let schema: &'static KindSchema = if is_data { &self.schemas.data[kind] } else { &self.schemas.resources[kind] };
        let body = &block.body;
        let what = if is_data { format!("data.{kind}.{name}") } else { format!("{kind} `{name}`") };
        let base_address = ResourceAddress::new(module_path, if is_data { Mode::Data } else { Mode::Managed }, kind, name);

        // provider
        let (provider_type, provider_alias) = self.resolve_provider(body, schema, module_providers, &what);
        let provider_settings =
            self.provider_settings.get(&(provider_type.clone(), provider_alias.clone().unwrap_or_default())).cloned().unwrap_or_default();
        // count / for_each
        let count_attribute = body.attribute("count");
        let for_each_attribute = body.attribute("for_each");
        if let (Some(_), Some(for_each)) = (count_attribute, for_each_attribute) {
            self.diagnostics.push(
                Diagnostic::error(codes::COUNT_AND_FOR_EACH, format!("{what} sets both `count` and `for_each`"))
                    .at(for_each.name.span, "conflicts with `count`")
                    .with_secondary(count_attribute.map(|count| count.name.span).unwrap_or(for_each.name.span), "`count` set here")
                    .with_help("keep one: `count` for N identical instances, `for_each` for one instance per key"),
            );
        }
        let meta_context = Context { describe: "count and for_each", ..Context::default() };
        enum Expansion {
            Single,
            Count(Option<usize>),
            ForEach(Option<Vec<(String, Value)>>, Type),
        }
        let mut expansion = Expansion::Single;
        if let Some(count) = count_attribute {
            self.check_static_expansion(&count.value, "count");
            let value = self.evaluate(scope, &meta_context, &count.value);
            expansion = match value.unmark().0 {
                Value::Number(number) if number.fract() == 0.0 && *number > crate::limits::MAX_INSTANCES_PER_BLOCK as f64 => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::LIMIT_EXCEEDED,
                            format!(
                                "`count` is {}, more than the {} instances one block may have",
                                crate::value::format_number(*number),
                                crate::limits::MAX_INSTANCES_PER_BLOCK
                            ),
                        )
                        .at(count.value.span, "too many instances")
                        .with_help("ask for fewer; a larger fleet belongs in several blocks or configurations"),
                    );
                    Expansion::Count(None)
                }
                Value::Number(number) if number.fract() == 0.0 && *number >= 0.0 => Expansion::Count(Some(*number as usize)),
                Value::Number(number) => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::OUT_OF_RANGE,
                            format!("`count` must be a whole number of at least 0, not {}", crate::value::format_number(*number)),
                        )
                        .at(count.value.span, "invalid count")
                        .with_help("use 0 or a positive whole number"),
                    );
                    Expansion::Count(None)
                }
                Value::Unknown(Type::Number | Type::Any) => Expansion::Count(None),
                other => {
                    self.diagnostics.push(
                        Diagnostic::error(codes::TYPE_MISMATCH, format!("`count` must be a number, not {}", other.type_of()))
                            .at(count.value.span, format!("this is {}", other.type_of()))
                            .with_help("use for_each to make one instance per element of a collection"),
                    );
                    Expansion::Count(None)
                }
            };
        } else if let Some(for_each) = for_each_attribute {
            self.check_static_expansion(&for_each.value, "for_each");
            let value = self.evaluate(scope, &meta_context, &for_each.value);
            let instances = self.for_each_instances(&for_each.value, &value).filter(|instances| {
                let fits = instances.len() <= crate::limits::MAX_INSTANCES_PER_BLOCK;
                if !fits {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::LIMIT_EXCEEDED,
                            format!(
                                "`for_each` has {} keys, more than the {} instances one block may have",
                                instances.len(),
                                crate::limits::MAX_INSTANCES_PER_BLOCK
                            ),
                        )
                        .at(for_each.value.span, "too many instances")
                        .with_help("ask for fewer; a larger fleet belongs in several blocks or configurations"),
                    );
                }
                fits
            });
            expansion = instances.map_or_else(
                || Expansion::ForEach(None, value.type_of().element().unwrap_or(Type::Any)),
                |instances| Expansion::ForEach(Some(instances), Type::Any),
            );
        }
        if let Some(depends) = body.attribute("depends_on") {
            self.check_depends_on(scope, depends);
        }
        let lifecycle = self.check_lifecycle(body, schema, &what);
        let meta_block_names: &[&str] = &["lifecycle"];

        // One evaluation per known instance; a single symbolic one otherwise.
        let symbolic: Vec<(InstanceKey, Context)> = match &expansion {
            Expansion::Single => vec![(InstanceKey::None, Context::default())],
            Expansion::Count(Some(count)) => (0..*count)
                .map(|index| (InstanceKey::Index(index), Context { count_index: Some(Value::Number(index as f64)), ..Context::default() }))
                .collect(),
            Expansion::Count(None) => {
                vec![(InstanceKey::Index(0), Context { count_index: Some(Value::Unknown(Type::Number)), ..Context::default() })]
            }
            Expansion::ForEach(Some(instances), _) => instances
                .iter()
                .map(|(key, value)| {
                    (
                        InstanceKey::Key(key.clone()),
                        Context { each: Some((Value::String(key.clone()), value.clone())), ..Context::default() },
                    )
                })
                .collect(),
            Expansion::ForEach(None, element) => vec![(
                InstanceKey::Key(String::new()),
                Context { each: Some((Value::Unknown(Type::String), Value::Unknown(element.clone()))), ..Context::default() },
            )],
        };
        let expansion_known = !matches!(expansion, Expansion::Count(None) | Expansion::ForEach(None, _));
        // The whole configuration's instances, modules included, are bounded
        // too: a fan-out of module calls multiplies.
        let symbolic = if self.instances + symbolic.len() > crate::limits::MAX_INSTANCES {
            if self.instances <= crate::limits::MAX_INSTANCES {
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::LIMIT_EXCEEDED,
                        format!("the configuration makes more than {} resource instances", crate::limits::MAX_INSTANCES),
                    )
                    .at(block.header_span(), format!("{what} goes past the limit"))
                    .with_help("split the configuration into several, each with its own state"),
                );
            }
            self.instances = crate::limits::MAX_INSTANCES + 1;
            Vec::new()
        } else {
            self.instances += symbolic.len();
            symbolic
        };
        let mut instances = Vec::new();
        for (key, mut context) in symbolic {
            context.describe = if is_data { "a data source" } else { "a resource" };
            let address = base_address.clone().with_key(key.clone()).to_string();
            let mut checker = BodyChecker {
                scope,
                schemas: self.schemas,
                diagnostics: &mut self.diagnostics,
                provider: Some(provider_type.as_str()),
                context: context.clone(),
                row: None,
                self_value: Some(Value::Unknown(Type::reference(kind, is_data))),
                deferred: self.resolver.is_some().then(Vec::new),
                path: Vec::new(),
            };
            if kind == "feature_set" && !is_data {
                checker.row = Some(crate::semantic::feature_row(&mut checker, body, facts));
            }
            let mut reserved: Vec<&str> = RESERVED_META.to_vec();
            reserved.extend(meta_block_names);
            let mut attributes = checker.check(body, &schema.body, block.header_span(), &what, &reserved);
            if !is_data {
                let target = crate::semantic::ProviderTarget { provider_type: &provider_type, settings: &provider_settings };
                crate::semantic::check_kind(&mut checker, kind, name, body, &mut attributes, &target, facts);
            }
            let deferred = checker.deferred.take().unwrap_or_default();
            // Computed attributes are known after apply.
            for (attribute_name, attribute) in &schema.body.attributes {
                if attribute.computed && (!attribute.configurable || attributes.get(attribute_name).is_none_or(Value::is_null)) {
                    attributes.insert(attribute_name.clone(), Value::Unknown(attribute.ty.clone()));
                }
                if attribute.reads_as.as_deref() == Some("metrics") {
                    let declared = attributes.get(attribute_name).and_then(|value| value.as_list().map(<[Value]>::to_vec));
                    let metrics = match declared {
                        Some(names) if names.iter().all(Value::is_known) => Value::Map(
                            names
                                .iter()
                                .filter_map(|name| name.as_str().map(|name| (name.to_owned(), Value::Unknown(Type::Number))))
                                .collect(),
                        ),
                        _ => Value::Unknown(Type::map(Type::Number)),
                    };
                    attributes.insert(attribute_name.clone(), metrics);
                }
            }
            if let Some(resolver) = self.resolver.as_deref_mut() {
                if expansion_known && !self.diagnostics.has_errors() {
                    let known = resolver.resolve(&InstanceDraft {
                        address: &address,
                        kind,
                        is_data,
                        provider_type: &provider_type,
                        provider_alias: provider_alias.as_deref(),
                        module_path,
                        module_directory: &scope.module_directory,
                        attributes: &attributes,
                        deferred: &deferred,
                        lifecycle: &lifecycle,
                        depends_on: &depends_on,
                        span: block.header_span(),
                    });
                    attributes.extend(known);
                }
            }
            instances.push(CheckedInstance {
                key,
                value: Arc::new(ResourceValue { address, kind: kind.to_owned(), is_data, attributes }),
                deferred,
            });
        }
        let value = match &expansion {
            Expansion::Single => instances.first().map_or(Value::unknown_any(), |instance| Value::Resource(instance.value.clone())),
            Expansion::Count(Some(_)) => Value::List(instances.iter().map(|instance| Value::Resource(instance.value.clone())).collect()),
            Expansion::ForEach(Some(_), _) => Value::Map(
                instances
                    .iter()
                    .filter_map(|instance| match &instance.key {
                        InstanceKey::Key(key) => Some((key.clone(), Value::Resource(instance.value.clone()))),
                        _ => None,
                    })
                    .collect(),
            ),
            Expansion::Count(None) => Value::Unknown(Type::list(Type::reference(kind, is_data))),
            Expansion::ForEach(None, _) => Value::Unknown(Type::map(Type::reference(kind, is_data))),
        };
        let checked = CheckedResource {
            kind: kind.to_owned(),
            name: name.to_owned(),
            is_data,
            provider_type,
            provider_alias,
            instances: if expansion_known { instances } else { Vec::new() },
            expansion_known,
            depends_on,
            lifecycle,
            span: block.header_span(),
        };
        (value, checked)
    }

    fn resolve_provider(
        &mut self,
        body: &Body,
        schema: &KindSchema,
        module_providers: &[(String, String)],
        what: &str,
    ) -> (String, Option<String>) {
        let default = schema.providers.first().cloned().unwrap_or_else(|| "local".to_owned());
        let Some(attribute) = body.attribute("provider") else { return (default, None) };
        let Some(path) = attribute.value.reference_path().filter(|path| path.len() <= 2) else {
            let help = match &attribute.value.kind {
                ExprKind::String(text) => format!("write it without quotes: `provider = {text}`"),
                _ => "write `provider = TYPE` or `provider = TYPE.ALIAS`".to_owned(),
            };
            self.diagnostics.push(
                Diagnostic::error(codes::INVALID_REFERENCE, "`provider` must name a provider")
                    .at(attribute.value.span, "not a provider reference")
                    .with_help(help),
            );
            return (default, None);
        };
        let (provider_type, type_span) = path[0].clone();
        let alias = path.get(1).map(|(alias, _)| alias.clone());
        if !self.schemas.providers.contains_key(&provider_type) {
            self.diagnostics.push(
                Diagnostic::error(codes::UNKNOWN_PROVIDER, format!("there is no provider type `{provider_type}`"))
                    .at(type_span, "unknown provider type")
                    .with_help(
                        did_you_mean(&provider_type, self.schemas.providers.keys().map(String::as_str))
                            .unwrap_or_else(|| format!("{what} can use {}", one_of(&schema.providers))),
                    ),
            );
            return (default, None);
        }
        if let Some(alias) = &alias {
            let declared = module_providers
                .iter()
                .chain(self.root_providers.iter())
                .any(|(declared_type, declared_alias)| declared_type == &provider_type && declared_alias == alias);
            if !declared {
                let aliases: Vec<&str> = module_providers
                    .iter()
                    .chain(self.root_providers.iter())
                    .filter(|(declared_type, declared_alias)| declared_type == &provider_type && !declared_alias.is_empty())
                    .map(|(_, alias)| alias.as_str())
                    .collect();
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_PROVIDER, format!("no `{provider_type}` provider has the alias `{alias}`"))
                        .at(attribute.value.span, "undeclared provider configuration")
                        .with_help(match crate::suggest::closest(alias, aliases.iter().copied()) {
                            Some(closest) => format!("did you mean `{provider_type}.{closest}`?"),
                            None => format!("declare it: provider \"{provider_type}\" {{ alias = \"{alias}\" }}"),
                        }),
                );
            }
        }
        if !schema.providers.iter().any(|supported| supported == &provider_type) {
            self.diagnostics.push(
                Diagnostic::error(codes::PROVIDER_KIND_MISMATCH, format!("the {provider_type} provider cannot manage a {}", schema.name))
                    .at(attribute.value.span, format!("{provider_type} does not serve {}", schema.name))
                    .with_help(format!("a {} can live on {}", schema.name, one_of(&schema.providers))),
            );
            return (default, alias);
        }
        (provider_type, alias)
    }

    /// `count`/`for_each` must be known when planning: no resource, data
    /// source or module references.
    fn check_static_expansion(&mut self, expr: &Expr, what: &str) {
        let mut references = Vec::new();
        collect_references(expr, &mut references);
        for (path, span) in references {
            let root = path[0].0.as_str();
            if root == "module" || root == "data" || self.schemas.resources.contains_key(root) {
                let shown: Vec<&str> = path.iter().map(|(part, _)| part.as_str()).collect();
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::COUNT_DEPENDS_ON_APPLY,
                        format!("`{what}` depends on `{}`, which is only known after apply", shown.join(".")),
                    )
                    .at(span, "known after apply")
                    .with_help(format!(
                        "the number of instances must be known when planning; base `{what}` on variables, locals and literals"
                    )),
                );
            }
        }
    }

    fn for_each_instances(&mut self, expr: &Expr, value: &Value) -> Option<Vec<(String, Value)>> {
        let (unmarked, sensitive) = value.unmark();
        if sensitive {
            self.diagnostics.push(
                Diagnostic::error(codes::INVALID_FOR_EACH, "`for_each` cannot use a sensitive value: its keys appear in every address")
                    .at(expr.span, "sensitive")
                    .with_help("iterate over something that is not secret"),
            );
            return None;
        }
        match unmarked {
            Value::Map(entries) => Some(entries.iter().map(|(key, value)| (key.clone(), value.clone())).collect()),
            Value::List(items) => {
                let mut seen = HashSet::new();
                let mut instances = Vec::new();
                for item in items {
                    match item.unmark().0 {
                        Value::String(key) => {
                            if !seen.insert(key.clone()) {
                                self.diagnostics.push(
                                    Diagnostic::error(codes::INVALID_FOR_EACH, format!("`for_each` has the key \"{key}\" twice"))
                                        .at(expr.span, "duplicate key")
                                        .with_help("each key names one instance, so keys must be unique"),
                                );
                                return None;
                            }
                            instances.push((key.clone(), Value::String(key.clone())));
                        }
                        Value::Unknown(_) => return None,
                        other => {
                            self.diagnostics.push(
                                Diagnostic::error(
                                    codes::INVALID_FOR_EACH,
                                    format!("`for_each` over a list needs strings, not {}", other.type_of()),
                                )
                                .at(expr.span, "not a list of strings")
                                .with_help("give a map, or a list of unique strings"),
                            );
                            return None;
                        }
                    }
                }
                Some(instances)
            }
            Value::Unknown(ty) if ty.is_collection() => None,
            other => {
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::INVALID_FOR_EACH,
                        format!("`for_each` needs a map or a list of strings, not {}", other.type_of()),
                    )
                    .at(expr.span, "not a collection")
                    .with_help("give a map, or a list of unique strings"),
                );
                None
            }
        }
    }

    fn check_lifecycle(&mut self, body: &Body, schema: &KindSchema, what: &str) -> Lifecycle {
        let mut lifecycle = Lifecycle::default();
        let mut blocks = body.blocks_named("lifecycle");
        let Some(block) = blocks.next() else { return lifecycle };
        if let Some(extra) = blocks.next() {
            self.diagnostics.push(
                Diagnostic::error(codes::TOO_MANY_BLOCKS, format!("{what} may have one `lifecycle` block"))
                    .at(extra.kind.span, "one too many")
                    .with_secondary(block.kind.span, "first one here")
                    .with_help("merge the lifecycle blocks"),
            );
        }
        for attribute in &block.body.attributes {
            let setting = attribute.name.name.as_str();
            match setting {
                "prevent_destroy" | "create_before_destroy" | "destroy" => {
                    match literal_value(&attribute.value) {
                        Some(Value::Bool(flag)) => match setting {
                            "prevent_destroy" => lifecycle.prevent_destroy = flag,
                            "create_before_destroy" => lifecycle.create_before_destroy = flag,
                            _ => {
                                if !schema.retained {
                                    self.diagnostics.push(
                                    Diagnostic::error(codes::INVALID_LIFECYCLE, format!("`destroy` only applies to retained kinds, and a {} is not retained", schema.name))
                                        .at(attribute.name.span, "has no effect here")
                                        .with_help("datasets and models are retained when their block is removed; other kinds are always destroyed"),
                                );
                                }
                                lifecycle.destroy = flag;
                            }
                        },
                        _ => self.diagnostics.push(
                            Diagnostic::error(codes::INVALID_LIFECYCLE, format!("`{setting}` must be a literal true or false"))
                                .at(attribute.value.span, "not a literal bool")
                                .with_help("lifecycle settings are read before anything is evaluated"),
                        ),
                    }
                }
                "ignore_changes" => {
                    let ExprKind::List(items) = &attribute.value.kind else {
                        self.diagnostics.push(
                            Diagnostic::error(codes::INVALID_LIFECYCLE, "`ignore_changes` must be a list of attribute names")
                                .at(attribute.value.span, "not a list")
                                .with_help("write `ignore_changes = [tags, description]`"),
                        );
                        continue;
                    };
                    for item in items {
                        let name = match &item.kind {
                            ExprKind::Variable(name) | ExprKind::String(name) => name.clone(),
                            _ => {
                                self.diagnostics.push(
                                    Diagnostic::error(codes::INVALID_LIFECYCLE, "`ignore_changes` entries are attribute names")
                                        .at(item.span, "not an attribute name")
                                        .with_help("write the bare attribute name, such as `tags`"),
                                );
                                continue;
                            }
                        };
                        if !schema.body.attributes.get(&name).is_some_and(|attribute| attribute.is_settable())
                            && !schema.body.blocks.contains_key(&name)
                        {
                            self.diagnostics.push(
                                Diagnostic::error(
                                    codes::INVALID_LIFECYCLE,
                                    format!("a {} has no attribute `{name}` to ignore", schema.name),
                                )
                                .at(item.span, "not an attribute of this kind")
                                .with_optional_help(did_you_mean(&name, schema.body.settable_names())),
                            );
                            continue;
                        }
                        lifecycle.ignore_changes.push(name);
                    }
                }
                other => self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("a lifecycle block has no setting `{other}`"))
                        .at(attribute.name.span, "unknown setting")
                        .with_help(
                            did_you_mean(other, ["prevent_destroy", "create_before_destroy", "ignore_changes", "destroy"]).unwrap_or_else(
                                || "lifecycle takes prevent_destroy, create_before_destroy, ignore_changes and destroy".to_owned(),
                            ),
                        ),
                ),
            }
        }
        lifecycle
    }
}

/// Every static reference path in an expression, with the span of the
/// reference (root through the last named step).
/// A value given on the command line, converted to the declared type where
/// the text allows (`-var epochs=30` is a number for a number variable).
fn coerce_given(value: Value, ty: &Type) -> Value {
    let (value, sensitive) = value.into_unmarked();
    let value = match (ty, value) {
        (Type::Number, Value::String(text)) => text.trim().parse::<f64>().map_or(Value::String(text), Value::Number),
        (Type::Bool, Value::String(text)) if text == "true" || text == "false" => Value::Bool(text == "true"),
        (ty, value) => crate::body::convert(value, ty),
    };
    value.mark_if(sensitive)
}

pub fn collect_references(expr: &Expr, out: &mut Vec<(Vec<(String, Span)>, Span)>) {
    // A traversal's root is visited again on its own; count it once.
    let mut traversal_roots = HashSet::new();
    expr.walk(&mut |inner| {
        if let ExprKind::Traversal { root, .. } = &inner.kind {
            traversal_roots.insert(root.span);
        }
    });
    expr.walk(&mut |inner| {
        if matches!(inner.kind, ExprKind::Variable(_)) && traversal_roots.contains(&inner.span) {
            return;
        }
        if let Some(path) = inner.reference_path() {
            let span = path.iter().take(3).fold(path[0].1, |span, (_, step)| span.to(*step));
            out.push((path, span));
        }
    });
}

fn collect_block_references(body: &Body, out: &mut Vec<(Vec<(String, Span)>, Span)>) {
    for attribute in &body.attributes {
        collect_references(&attribute.value, out);
    }
    for block in &body.blocks {
        if block.kind.name == "lifecycle" {
            continue;
        }
        collect_block_references(&block.body, out);
    }
}
