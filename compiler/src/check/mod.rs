//! Checking a configuration: lowering blocks to declarations, resolving
//! names, ordering declarations by dependency (reporting whole cycles),
//! evaluating every expression with unknowns allowed, checking resources
//! against their schemas, and the ML-specific rules of [`crate::rules`].
//!
//! The same entry point serves `validate` (variables unknown) and `plan`
//! (variables known, and a [`PlanResolver`] that answers what providers
//! know): see [`CheckOptions`].
//!
//! One file per phase, each an `impl Checker` block: `lower.rs` (files to
//! declarations and the dependency graph), `order.rs` (evaluation order and
//! cycle reports), `variables.rs`, `outputs.rs`, `settings.rs` (the
//! `mlops` block), `modules.rs` (module calls and the lock), `resources.rs`
//! (instances against schemas and rules), `expansion.rs` (`count` and
//! `for_each`), `lifecycle.rs`, `aliases.rs` (W0107, over the whole tree)
//! and `policies.rs` (`policy` blocks, judged
//! against the whole tree once it is checked: see [`crate::policy`]). This file holds the results and the
//! driver, [`Checker::check_module`], which runs the phases in order.

mod aliases;
mod expansion;
mod lifecycle;
mod lower;
mod modules;
mod order;
mod outputs;
mod policies;
mod resources;
mod settings;
mod variables;

pub use lower::collect_references;
use lower::{collect_block_references, reference_target};

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::ast::{Attribute, Block, Body, Expr, ExprKind};
use crate::body::{check_type, BodyChecker};
use crate::diagnostic::{codes, Diagnostic, Diagnostics};
use crate::eval::{Context, Evaluator, Scope};
use crate::files::Files;
use crate::loader::{load_directory, LoadedModule};
use crate::schema::{literal_value, KindSchema, Schemas};
use crate::source::{SourceMap, Span};
use crate::suggest::{did_you_mean, one_of};
use crate::types::{parse_type_expr, Type};
use crate::units;
use crate::value::{ResourceValue, Value, ValueMap};

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
    /// Where the configuration's files are read from: the disk by default.
    pub files: Files,
    /// Leave `policy` blocks unjudged (the planner judges them once it
    /// knows what the plan does); they are still checked.
    pub defer_policies: bool,
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
    pub attributes: &'a ValueMap,
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
    fn resolve(&mut self, instance: &InstanceDraft<'_>) -> ValueMap;
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
    pub backend: Option<(String, ValueMap)>,
    pub providers: Vec<(String, Option<String>, ValueMap)>,
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
    /// Every module's policies, for the planner to judge with known values.
    pub policies: Vec<crate::policy::PolicyProgram>,
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
    files: Files,
    sources: SourceMap,
    diagnostics: Diagnostics,
    root: Option<LoadedModule>,
    directory: PathBuf,
}

/// Reads and parses the root module in `directory`.
pub fn preload(directory: &Path, display: &str) -> Preloaded {
    preload_from(Files::default(), directory, display)
}

/// Reads and parses the root module in `directory` of `files`.
pub fn preload_from(files: Files, directory: &Path, display: &str) -> Preloaded {
    let mut sources = SourceMap::default();
    let mut diagnostics = Diagnostics::default();
    let root = load_directory(&*files, directory, display, &mut sources, &mut diagnostics);
    Preloaded { files, sources, diagnostics, root, directory: directory.to_path_buf() }
}

/// [`check_directory`] with the planner's hook: every resource instance is
/// handed to `resolver` as soon as its configuration is evaluated.
pub fn check_directory_with(
    directory: &Path,
    display: &str,
    options: &CheckOptions,
    resolver: Option<&mut dyn PlanResolver>,
) -> CheckResult {
    check_preloaded(preload_from(options.files.clone(), directory, display), options, resolver)
}

/// Checks a preloaded root module.
pub fn check_preloaded(preloaded: Preloaded, options: &CheckOptions, resolver: Option<&mut dyn PlanResolver>) -> CheckResult {
    let Preloaded { files, sources, diagnostics, root, directory } = preloaded;
    let mut checker = Checker {
        files,
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
        policies: Vec::new(),
    };
    let root = match root {
        Some(loaded) => {
            let inputs =
                options.variables.as_ref().map(|values| values.iter().map(|(name, value)| (name.clone(), (value.clone(), None))).collect());
            Some(checker.check_module(&loaded, Vec::new(), inputs))
        }
        None => None,
    };
    if let Some(root) = root.as_ref().filter(|_| !options.providers_only) {
        let warnings = aliases::unused_aliases(root, &checker.sources);
        checker.diagnostics.extend(warnings);
    }
    let policies = std::mem::take(&mut checker.policies);
    if let Some(root) = root.as_ref().filter(|_| !options.defer_policies && !options.providers_only && !policies.is_empty()) {
        let subjects = policies::subjects(root);
        let plan = Value::Unknown(crate::policy::plan_type());
        let (_, violations) = crate::policy::judge_all(&policies, &subjects, &plan, &checker.sources, false);
        checker.diagnostics.extend(violations);
    }
    CheckResult { sources: checker.sources, diagnostics: checker.diagnostics.sorted(), root, policies }
}

const RESERVED_META: &[&str] = &["provider", "depends_on", "count", "for_each", "lifecycle"];
const TOP_LEVEL: &[&str] = &["mlops", "variable", "locals", "output", "provider", "module", "data", "policy"];

/// Where each node sits in a module's dependency graph.
type NodeIndices = HashMap<Node, NodeIndex, foldhash::fast::FixedState>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Node {
    Variable(String),
    Local(String),
    Provider(String, String),
    Module(String),
    Resource(String, String),
    Data(String, String),
    Output(String),
    Policy(String),
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
            Node::Policy(name) => format!("policy.{name}"),
        }
    }
}

/// A `(kind, name)` key borrowed, to look up [`Declarations`] without
/// copying both strings: it hashes as the owned tuple does.
#[derive(Hash)]
struct KindAndName<'a>(&'a str, &'a str);

impl indexmap::Equivalent<(String, String)> for KindAndName<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// A module's declarations, borrowed from its parsed files (copying the
/// blocks doubled the memory a large configuration takes).
#[derive(Default)]
struct Declarations<'a> {
    settings: Vec<&'a Block>,
    variables: IndexMap<String, &'a Block>,
    locals: IndexMap<String, &'a Attribute>,
    outputs: IndexMap<String, &'a Block>,
    providers: IndexMap<(String, String), &'a Block>,
    modules: IndexMap<String, &'a Block>,
    resources: IndexMap<(String, String), &'a Block>,
    data: IndexMap<(String, String), &'a Block>,
    policies: IndexMap<String, &'a Block>,
}

/// Module inputs: value and, for child modules, the span of the argument.
type Inputs = HashMap<String, (Value, Option<Span>)>;

struct Checker<'r> {
    files: Files,
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
    provider_settings: HashMap<(String, String), ValueMap>,
    /// Registry modules already checked against mlops.lock.hcl, by source:
    /// a module called many times is hashed once.
    installed_modules: HashMap<String, PathBuf>,
    /// Module directories already read and parsed, by canonical path: a
    /// module called many times (a fan-out of calls) is parsed once.
    loaded_modules: HashMap<PathBuf, std::rc::Rc<LoadedModule>>,
    /// Resource instances made so far, against [`crate::limits::MAX_INSTANCES`].
    instances: usize,
    /// The policies of every module checked so far.
    policies: Vec<crate::policy::PolicyProgram>,
}

pub use crate::rules::ModuleFacts;

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
            files: self.files.clone(),
            ..Scope::default()
        };
        // Sized once: growing maps of 100,000 values rehash them each time.
        scope.resources.reserve(declarations.resources.len());
        scope.data.reserve(declarations.data.len());
        for (kind, name) in declarations.resources.keys() {
            scope.declared_resources.entry(kind.clone()).or_default().push(name.clone());
        }
        for (kind, name) in declarations.data.keys() {
            scope.declared_data.entry(kind.clone()).or_default().push(name.clone());
        }

        // The dependency graph, with the span of each reference on its edge.
        let node_count = declarations.variables.len()
            + declarations.locals.len()
            + declarations.providers.len()
            + declarations.modules.len()
            + declarations.resources.len()
            + declarations.data.len()
            + declarations.outputs.len()
            + declarations.policies.len();
        let mut graph: DiGraph<Node, Span> = DiGraph::with_capacity(node_count, node_count);
        let mut index_of: NodeIndices = NodeIndices::with_capacity_and_hasher(node_count, Default::default());
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
        for name in declarations.policies.keys() {
            add(&mut graph, Node::Policy(name.clone()));
        }
        // Each node's references are found and resolved on every core: at
        // 100,000 resources this walk took a sixth of `validate`.
        let node_indices: Vec<NodeIndex> = graph.node_indices().collect();
        let schemas = self.schemas;
        let edges = crate::parallel::on_every_core(&node_indices, |&index| {
            let mut references = Vec::new();
            match &graph[index] {
                // A validation condition refers to its own variable by design, and
                // defaults are literals: variables depend on nothing.
                Node::Variable(_) => {}
                Node::Local(name) => collect_references(&declarations.locals[name].value, &mut references),
                Node::Provider(kind, alias) => {
                    collect_block_references(&declarations.providers[&KindAndName(kind, alias)].body, &mut references)
                }
                Node::Module(name) => collect_block_references(&declarations.modules[name].body, &mut references),
                Node::Resource(kind, name) => {
                    collect_block_references(&declarations.resources[&KindAndName(kind, name)].body, &mut references)
                }
                Node::Data(kind, name) => collect_block_references(&declarations.data[&KindAndName(kind, name)].body, &mut references),
                Node::Output(name) => collect_block_references(&declarations.outputs[name].body, &mut references),
                Node::Policy(name) => collect_block_references(&declarations.policies[name].body, &mut references),
            }
            references
                .into_iter()
                .filter_map(|(path, span)| reference_target(schemas, &path, &index_of).map(|target| (target, span)))
                .collect::<Vec<_>>()
        });
        for (index, targets) in node_indices.into_iter().zip(edges) {
            for (target, span) in targets {
                graph.add_edge(index, target, span);
            }
        }
        self.report_unused_variables(&graph, &declarations);
        let order = self.order(&graph);

        let mut facts = ModuleFacts::default();
        let mut resources = Vec::with_capacity(declarations.resources.len() + declarations.data.len());
        let mut outputs = Vec::new();
        let mut children = Vec::new();
        let mut providers = Vec::new();
        let mut policies = Vec::new();
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
                    let value = self.check_variable(&scope, &name, declarations.variables[&name], inputs.as_ref());
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
                    let block = &declarations.providers[&KindAndName(&kind, &alias)];
                    if let Some(schema) = self.schemas.providers.get(&kind) {
                        let mut checker = self.body_checker(&scope, None, "a provider block");
                        let values =
                            checker.check(&block.body, &schema.body, block.header_span(), &format!("provider `{kind}`"), &["alias"]);
                        providers.push((kind, (!alias.is_empty()).then_some(alias), values));
                    }
                }
                Node::Module(name) => {
                    let (value, child) = self.check_module_call(&scope, &path, &name, declarations.modules[&name]);
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
                Node::Output(_) | Node::Policy(_) if self.providers_only => {}
                Node::Resource(kind, name) => {
                    let (position, _, block) = declarations.resources.get_full(&KindAndName(&kind, &name)).expect("a declared resource");
                    let (value, checked) =
                        self.check_resource(&scope, &mut facts, &module_providers, &path, &kind, &name, block, false, dependencies);
                    scope.resources.insert((kind, name), value);
                    resources.push((position, checked));
                }
                Node::Data(kind, name) => {
                    let (position, _, block) = declarations.data.get_full(&KindAndName(&kind, &name)).expect("a declared data source");
                    let (value, checked) =
                        self.check_resource(&scope, &mut facts, &module_providers, &path, &kind, &name, block, true, dependencies);
                    scope.data.insert((kind, name), value);
                    resources.push((declarations.resources.len() + position, checked));
                }
                Node::Output(name) => outputs.push(self.check_output(&scope, &name, declarations.outputs[&name])),
                Node::Policy(name) => {
                    if let Some(draft) = self.check_policy(&scope, &name, declarations.policies[&name]) {
                        policies.push(draft);
                    }
                }
            }
        }
        let backend = self.check_settings(&scope, &declarations.settings, path.is_empty());
        if !policies.is_empty() {
            // Policies are judged once the whole tree is checked, in their
            // module's scope, which is kept for them.
            let scope = Arc::new(scope);
            self.policies.extend(policies.into_iter().map(|draft| draft.into_program(path.clone(), scope.clone())));
        }
        // Outputs in declaration order.
        outputs.sort_by_key(|output: &CheckedOutput| declarations.outputs.get_index_of(&output.name));
        // Resources in declaration order, then data sources.
        resources.sort_unstable_by_key(|(position, _)| *position);
        let resources = resources.into_iter().map(|(_, resource)| resource).collect();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A borrowed key finds what the owned key stored, including names
    /// whose concatenations agree (`ab` + `c` and `a` + `bc`), which must
    /// not find each other.
    #[test]
    fn a_borrowed_kind_and_name_finds_the_owned_key() {
        let mut declarations: IndexMap<(String, String), usize> = IndexMap::new();
        declarations.insert(("ab".to_owned(), "c".to_owned()), 1);
        declarations.insert(("a".to_owned(), "bc".to_owned()), 2);
        assert_eq!(declarations.get(&KindAndName("ab", "c")), Some(&1));
        assert_eq!(declarations.get(&KindAndName("a", "bc")), Some(&2));
        assert_eq!(declarations.get_index_of(&KindAndName("a", "b")), None);
    }
}
