//! Resource schemas: the single source of truth for attribute names, types,
//! required/optional/computed, allowed values and replace-forcing attributes.
//!
//! Schemas are written in the language itself, in `stdlib/schemas/*.hcl`, and
//! embedded in the binary. They are parsed once, on first use. The checker,
//! `mlops schema` and the planner (replace-forcing and computed attributes)
//! all read them from here.

use std::collections::HashMap;
use std::sync::OnceLock;

use indexmap::IndexMap;
use serde::Serialize;

use crate::ast::{Block, Body, Expr, ExprKind};
use crate::source::{FileId, SourceFile, SourceMap};
use crate::types::{parse_type_expr, Type};
use crate::value::{Value, ValueMap};

const STDLIB_FILES: &[(&str, &str)] = &[
    ("stdlib/schemas/storage.hcl", include_str!("../../stdlib/schemas/storage.hcl")),
    ("stdlib/schemas/ml.hcl", include_str!("../../stdlib/schemas/ml.hcl")),
    ("stdlib/schemas/plumbing.hcl", include_str!("../../stdlib/schemas/plumbing.hcl")),
    ("stdlib/schemas/language.hcl", include_str!("../../stdlib/schemas/language.hcl")),
];

/// A string language an attribute's value is checked against before apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Memory,
    Cpu,
    Duration,
    Uri,
    UriOrPath,
    LocalPath,
    Percent,
    /// S3's bucket naming rules, on every provider.
    BucketName,
    /// A CronJob schedule.
    Cron,
    /// A model's registered name: path-like parts that never climb.
    RegistryName,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttributeSchema {
    pub name: String,
    #[serde(serialize_with = "serialize_type")]
    pub ty: Type,
    pub required: bool,
    pub computed: bool,
    /// With `computed`: the user may also set it.
    pub configurable: bool,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_default")]
    pub default: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub integer: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force_new: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub only_on: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required_on: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// `metrics`: the configured list of names is read back as an object of numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads_as: Option<String>,
    /// Where the resource's data is stored (a URI): an input found by it can
    /// be fetched through the provider that stored it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stores_data: bool,
    /// Kept in lineage: what `mlops lineage` shows of the resource.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lineage: bool,
    pub description: String,
}

impl AttributeSchema {
    /// Whether users may set it.
    pub fn is_settable(&self) -> bool {
        !self.computed || self.configurable
    }
}

fn serialize_type<S: serde::Serializer>(ty: &Type, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&ty.to_string())
}

fn serialize_default<S: serde::Serializer>(value: &Option<Value>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => value.to_json_redacted().serialize(serializer),
        None => serializer.serialize_none(),
    }
}

/// Schema entries by name, in stdlib order. Looked up for every attribute
/// of every block checked, so with a fast hash rather than SipHash (the
/// names are the stdlib's own, not an attacker's).
pub type SchemaMap<V> = IndexMap<String, V, foldhash::fast::FixedState>;

#[derive(Debug, Clone, Serialize, Default)]
pub struct BlockSchema {
    pub attributes: SchemaMap<AttributeSchema>,
    pub blocks: SchemaMap<NestedBlockSchema>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exactly_one_of: Vec<String>,
}

impl BlockSchema {
    pub fn settable_names(&self) -> impl Iterator<Item = &str> {
        self.attributes.values().filter(|attribute| attribute.is_settable()).map(|attribute| attribute.name.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NestedBlockSchema {
    pub name: String,
    pub labels: Vec<String>,
    pub min_items: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_items: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub only_on: Vec<String>,
    pub description: String,
    pub body: BlockSchema,
}

impl NestedBlockSchema {
    /// How the block reads in an expression: an object for a single block,
    /// a map of objects by label for labelled ones, a list otherwise.
    pub fn value_type(&self) -> Type {
        let fields = self.body.object_type();
        if !self.labels.is_empty() {
            Type::map(fields)
        } else if self.max_items == Some(1) {
            fields
        } else {
            Type::list(fields)
        }
    }

    /// The block as read when it is not written: a single block's
    /// attributes at their defaults (nested single blocks too), and an
    /// empty map or list for the others.
    pub fn absent_value(&self) -> Value {
        if !self.labels.is_empty() {
            return Value::Map(Default::default());
        }
        if self.max_items != Some(1) {
            return Value::List(Vec::new());
        }
        Value::Map(self.body.default_values())
    }
}

impl BlockSchema {
    /// The object type of a block with this schema.
    pub fn object_type(&self) -> Type {
        let mut fields: std::collections::BTreeMap<String, Type> =
            self.attributes.values().map(|attribute| (attribute.name.clone(), attribute.ty.clone())).collect();
        for nested in self.blocks.values() {
            fields.insert(nested.name.clone(), nested.value_type());
        }
        Type::Object(fields)
    }

    /// Every attribute at its default (null without one), nested blocks as absent.
    pub fn default_values(&self) -> ValueMap {
        let mut values: ValueMap = self
            .attributes
            .values()
            .filter(|attribute| attribute.is_settable())
            .map(|attribute| (attribute.name.clone(), attribute.default.clone().unwrap_or(Value::Null)))
            .collect();
        for nested in self.blocks.values() {
            values.insert(nested.name.clone(), nested.absent_value());
        }
        values
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaCategory {
    Resource,
    Data,
    Provider,
    Backend,
    /// A block of the language that is not a resource (`policy`).
    Language,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindSchema {
    pub name: String,
    pub category: SchemaCategory,
    pub description: String,
    /// Providers that can manage it; the first is the default.
    pub providers: Vec<String>,
    /// Removing the block forgets it instead of destroying it.
    pub retained: bool,
    /// Whether users may declare blocks of this kind.
    pub declarable: bool,
    /// The attribute whose change means "a new version of this thing
    /// exists" to whatever refers to it (`version` unless the kind says).
    pub identity: String,
    pub body: BlockSchema,
}

impl KindSchema {
    /// The attributes kept in lineage, in schema order.
    pub fn lineage_attributes(&self) -> impl Iterator<Item = &str> {
        self.body.attributes.values().filter(|attribute| attribute.lineage).map(|attribute| attribute.name.as_str())
    }

    /// The attributes that hold where the resource's data is stored.
    pub fn data_location_attributes(&self) -> impl Iterator<Item = &str> {
        self.body.attributes.values().filter(|attribute| attribute.stores_data).map(|attribute| attribute.name.as_str())
    }
}

#[derive(Debug)]
pub struct Schemas {
    pub resources: SchemaMap<KindSchema>,
    pub data: SchemaMap<KindSchema>,
    pub providers: SchemaMap<KindSchema>,
    pub backends: SchemaMap<KindSchema>,
    /// Blocks of the language that are not resources, such as `policy`.
    pub language: SchemaMap<KindSchema>,
}

impl Schemas {
    /// The embedded standard library, parsed once.
    pub fn standard() -> &'static Schemas {
        static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
        SCHEMAS.get_or_init(|| match load_standard() {
            Ok(schemas) => schemas,
            // The stdlib is part of the binary and tested; a broken one is a
            // build defect, reported with where it is.
            Err(message) => panic!("the embedded stdlib schemas are invalid: {message}"),
        })
    }

    pub fn resource(&self, kind: &str) -> Option<&KindSchema> {
        self.resources.get(kind)
    }

    /// The schema behind a reference type name: a resource kind, or a data
    /// source kind written `data.KIND`.
    pub fn of_reference_type(&self, type_name: &str) -> Option<&KindSchema> {
        match crate::types::data_source_kind(type_name) {
            Some(kind) => self.data.get(kind),
            None => self.resources.get(type_name),
        }
    }

    /// A resource kind's schema, or a data source's.
    pub fn kind(&self, kind: &str, is_data: bool) -> Option<&KindSchema> {
        if is_data {
            self.data.get(kind)
        } else {
            self.resources.get(kind)
        }
    }

    /// The attribute that identifies a version of a resource or data
    /// source (its kind's `identity`): `version` for an unknown kind.
    pub fn identity_attribute(&self, kind: &str, is_data: bool) -> &str {
        self.kind(kind, is_data).map_or("version", |schema| schema.identity.as_str())
    }

    /// Resource kinds users may declare, in stdlib order.
    pub fn declarable_kinds(&self) -> impl Iterator<Item = &str> {
        self.resources.values().filter(|kind| kind.declarable).map(|kind| kind.name.as_str())
    }

    /// Every provider type that serves `kind`.
    pub fn providers_for(&self, kind: &str) -> Vec<&str> {
        self.resources.get(kind).map(|schema| schema.providers.iter().map(String::as_str).collect()).unwrap_or_default()
    }
}

/// Loads the stdlib, returning the first problem as "file:line: message".
pub fn load_standard() -> Result<Schemas, String> {
    load_schemas(STDLIB_FILES)
}

/// Loads schema files given as (path, text).
fn load_schemas(schema_files: &[(&str, &str)]) -> Result<Schemas, String> {
    let mut sources = SourceMap::default();
    let mut schemas = Schemas {
        resources: SchemaMap::default(),
        data: SchemaMap::default(),
        providers: SchemaMap::default(),
        backends: SchemaMap::default(),
        language: SchemaMap::default(),
    };
    let mut files = Vec::new();
    for (path, text) in schema_files {
        let file = sources.add(SourceFile::new(path.into(), (*path).to_owned(), (*text).to_owned()));
        let body = crate::syntax::parse_file(file, text)
            .map_err(|diagnostic| locate(&sources, file, diagnostic.primary.map(|label| label.span.start), &diagnostic.message))?;
        files.push((file, body));
    }
    // `shared` blocks first, from every file: a kind may include one
    // declared in another file.
    let mut shared: HashMap<String, BlockSchema> = HashMap::new();
    for (file, body) in &files {
        for block in body.blocks_named("shared") {
            let at = |(offset, message): SchemaError| locate(&sources, *file, Some(offset), &message);
            let [label] = block.labels.as_slice() else { return Err(at((block.span.start, "schema blocks take one label".into()))) };
            let schema = block_schema(&block.body).map_err(at)?;
            if shared.insert(label.value.clone(), schema).is_some() {
                return Err(at((block.span.start, format!("shared `{}` is declared twice", label.value))));
            }
        }
    }
    for (file, body) in &files {
        let file = *file;
        for block in body.blocks.iter().filter(|block| block.kind.name != "shared") {
            let at = |message: String| locate(&sources, file, Some(block.span.start), &message);
            let [label] = block.labels.as_slice() else { return Err(at("schema blocks take one label".into())) };
            let category = match block.kind.name.as_str() {
                "kind" => SchemaCategory::Resource,
                "data" => SchemaCategory::Data,
                "provider" => SchemaCategory::Provider,
                "backend" => SchemaCategory::Backend,
                "language" => SchemaCategory::Language,
                other => return Err(at(format!("unknown schema block `{other}`"))),
            };
            let schema = kind_schema(&label.value, category, block, &shared)
                .map_err(|(offset, message)| locate(&sources, file, Some(offset), &message))?;
            let table = match category {
                SchemaCategory::Resource => &mut schemas.resources,
                SchemaCategory::Data => &mut schemas.data,
                SchemaCategory::Provider => &mut schemas.providers,
                SchemaCategory::Backend => &mut schemas.backends,
                SchemaCategory::Language => &mut schemas.language,
            };
            table.insert(label.value.clone(), schema);
        }
    }
    Ok(schemas)
}

fn locate(sources: &SourceMap, file: FileId, offset: Option<u32>, message: &str) -> String {
    let source = sources.get(file);
    let line = offset.map_or(0, |offset| source.line_column(offset as usize).line);
    format!("{}:{line}: {message}", source.display_path)
}

type SchemaError = (u32, String);

fn kind_schema(
    name: &str,
    category: SchemaCategory,
    block: &Block,
    shared: &HashMap<String, BlockSchema>,
) -> Result<KindSchema, SchemaError> {
    let mut body = block_schema(&block.body)?;
    // `include = ["NAME", ...]`: the attributes and blocks of `shared "NAME"`,
    // after the kind's own, so that what several kinds share is written once.
    for included in string_list_setting(&block.body, "include")? {
        let Some(common) = shared.get(&included) else {
            return Err((block.span.start, format!("`include` names `{included}`, and there is no `shared \"{included}\"`")));
        };
        for (attribute_name, attribute) in &common.attributes {
            if body.attributes.insert(attribute_name.clone(), attribute.clone()).is_some() {
                return Err((block.span.start, format!("`{attribute_name}` is declared here and in shared `{included}`")));
            }
        }
        for (block_name, nested) in &common.blocks {
            if body.blocks.insert(block_name.clone(), nested.clone()).is_some() {
                return Err((block.span.start, format!("block `{block_name}` is declared here and in shared `{included}`")));
            }
        }
    }
    Ok(KindSchema {
        name: name.to_owned(),
        category,
        description: string_setting(&block.body, "description")?.unwrap_or_default(),
        providers: string_list_setting(&block.body, "providers")?,
        retained: bool_setting(&block.body, "retained")?.unwrap_or(false),
        declarable: bool_setting(&block.body, "declarable")?.unwrap_or(true),
        identity: string_setting(&block.body, "identity")?.unwrap_or_else(|| "version".to_owned()),
        body,
    })
}

fn block_schema(body: &Body) -> Result<BlockSchema, SchemaError> {
    let mut schema = BlockSchema { exactly_one_of: string_list_setting(body, "exactly_one_of")?, ..BlockSchema::default() };
    for block in &body.blocks {
        let name = block.labels.first().map(|label| label.value.clone()).ok_or((block.span.start, "needs a name label".to_owned()))?;
        match block.kind.name.as_str() {
            "attribute" => {
                let attribute = attribute_schema(&name, &block.body)?;
                schema.attributes.insert(name, attribute);
            }
            "block" => {
                let nested = NestedBlockSchema {
                    name: name.clone(),
                    labels: string_list_setting(&block.body, "labels")?,
                    min_items: number_setting(&block.body, "min_items")?.map_or(0, |count| count as usize),
                    max_items: number_setting(&block.body, "max_items")?.map(|count| count as usize),
                    only_on: string_list_setting(&block.body, "only_on")?,
                    description: string_setting(&block.body, "description")?.unwrap_or_default(),
                    body: block_schema(&block.body)?,
                };
                schema.blocks.insert(name, nested);
            }
            other => return Err((block.span.start, format!("unknown schema block `{other}`"))),
        }
    }
    Ok(schema)
}

const ATTRIBUTE_SETTINGS: &[&str] = &[
    "type",
    "required",
    "computed",
    "configurable",
    "default",
    "allowed",
    "min",
    "max",
    "integer",
    "format",
    "force_new",
    "sensitive",
    "only_on",
    "required_on",
    "requires",
    "context",
    "reads_as",
    "stores_data",
    "lineage",
    "description",
];

fn attribute_schema(name: &str, body: &Body) -> Result<AttributeSchema, SchemaError> {
    if let Some(unknown) = body.attributes.iter().find(|attribute| !ATTRIBUTE_SETTINGS.contains(&attribute.name.name.as_str())) {
        return Err((unknown.span.start, format!("unknown attribute setting `{}`", unknown.name.name)));
    }
    let type_expr = body.attribute("type").ok_or((body.span.start, format!("attribute `{name}` has no type")))?;
    let ty = parse_type_expr(&type_expr.value, true).map_err(|error| (error.span.start, error.message))?;
    let format = match string_setting(body, "format")?.as_deref() {
        None => None,
        Some("memory") => Some(Format::Memory),
        Some("cpu") => Some(Format::Cpu),
        Some("duration") => Some(Format::Duration),
        Some("uri") => Some(Format::Uri),
        Some("uri_or_path") => Some(Format::UriOrPath),
        Some("local_path") => Some(Format::LocalPath),
        Some("percent") => Some(Format::Percent),
        Some("bucket_name") => Some(Format::BucketName),
        Some("cron") => Some(Format::Cron),
        Some("registry_name") => Some(Format::RegistryName),
        Some(other) => return Err((body.span.start, format!("unknown format `{other}`"))),
    };
    Ok(AttributeSchema {
        name: name.to_owned(),
        ty,
        required: bool_setting(body, "required")?.unwrap_or(false),
        computed: bool_setting(body, "computed")?.unwrap_or(false),
        configurable: bool_setting(body, "configurable")?.unwrap_or(false),
        default: match body.attribute("default") {
            Some(default) => Some(literal_value(&default.value).ok_or((default.span.start, "defaults must be literals".to_owned()))?),
            None => None,
        },
        allowed: string_list_setting(body, "allowed")?,
        min: number_setting(body, "min")?,
        max: number_setting(body, "max")?,
        integer: bool_setting(body, "integer")?.unwrap_or(false),
        format,
        force_new: bool_setting(body, "force_new")?.unwrap_or(false),
        sensitive: bool_setting(body, "sensitive")?.unwrap_or(false),
        only_on: string_list_setting(body, "only_on")?,
        required_on: string_list_setting(body, "required_on")?,
        requires: string_list_setting(body, "requires")?,
        context: string_setting(body, "context")?,
        reads_as: string_setting(body, "reads_as")?,
        stores_data: bool_setting(body, "stores_data")?.unwrap_or(false),
        lineage: bool_setting(body, "lineage")?.unwrap_or(false),
        description: string_setting(body, "description")?.unwrap_or_default(),
    })
}

/// The value of a literal expression (no references, no calls).
pub fn literal_value(expr: &Expr) -> Option<Value> {
    match &expr.kind {
        ExprKind::Null => Some(Value::Null),
        ExprKind::Bool(flag) => Some(Value::Bool(*flag)),
        ExprKind::Number(number) => Some(Value::Number(*number)),
        ExprKind::String(text) => Some(Value::String(text.clone())),
        ExprKind::List(items) => items.iter().map(literal_value).collect::<Option<Vec<_>>>().map(Value::List),
        ExprKind::Object(items) => items
            .iter()
            .map(|item| Some((item.key.literal()?.to_owned(), literal_value(&item.value)?)))
            .collect::<Option<_>>()
            .map(Value::Map),
        ExprKind::Unary { operator: crate::ast::UnaryOperator::Neg, operand } => match literal_value(operand)? {
            Value::Number(number) => Some(Value::Number(-number)),
            _ => None,
        },
        ExprKind::Parenthesis(inner) => literal_value(inner),
        _ => None,
    }
}

fn setting<'a>(body: &'a Body, name: &str) -> Option<(&'a Expr, Value)> {
    body.attribute(name).and_then(|attribute| literal_value(&attribute.value).map(|value| (&attribute.value, value)))
}

fn string_setting(body: &Body, name: &str) -> Result<Option<String>, SchemaError> {
    match setting(body, name) {
        None => Ok(None),
        Some((_, Value::String(text))) => Ok(Some(text)),
        Some((expr, _)) => Err((expr.span.start, format!("`{name}` must be a string"))),
    }
}

fn bool_setting(body: &Body, name: &str) -> Result<Option<bool>, SchemaError> {
    match setting(body, name) {
        None => Ok(None),
        Some((_, Value::Bool(flag))) => Ok(Some(flag)),
        Some((expr, _)) => Err((expr.span.start, format!("`{name}` must be a bool"))),
    }
}

fn number_setting(body: &Body, name: &str) -> Result<Option<f64>, SchemaError> {
    match setting(body, name) {
        None => Ok(None),
        Some((_, Value::Number(number))) => Ok(Some(number)),
        Some((expr, _)) => Err((expr.span.start, format!("`{name}` must be a number"))),
    }
}

fn string_list_setting(body: &Body, name: &str) -> Result<Vec<String>, SchemaError> {
    match setting(body, name) {
        None => Ok(Vec::new()),
        Some((expr, Value::List(items))) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                _ => Err((expr.span.start, format!("`{name}` must be a list of strings"))),
            })
            .collect(),
        Some((expr, _)) => Err((expr.span.start, format!("`{name}` must be a list of strings"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stdlib_loads_and_covers_every_kind_in_the_language() {
        let schemas = load_standard().unwrap_or_else(|message| panic!("{message}"));
        let kinds: Vec<&str> = schemas.declarable_kinds().collect();
        assert_eq!(
            kinds,
            ["bucket", "dataset", "feature_set", "training_set", "training", "model", "serving", "batch_prediction", "monitor"]
        );
        assert!(schemas.resource("dataset").unwrap().retained);
        assert_eq!(schemas.resource("dataset").unwrap().body.attributes["version"].ty, Type::String);
        assert_eq!(
            schemas.resource("training").unwrap().body.attributes["inputs"].ty.to_string(),
            "map(ref(dataset, feature_set, training_set))"
        );
        assert!(schemas.providers["mlflow"].body.attributes["token"].sensitive);
        for kind in schemas.resources.values().chain(schemas.data.values()) {
            for provider in &kind.providers {
                assert!(schemas.providers.contains_key(provider), "{} names unknown provider {provider}", kind.name);
            }
        }
    }

    #[test]
    fn shared_attributes_are_included_once_and_never_twice() {
        let schemas = load_standard().unwrap_or_else(|message| panic!("{message}"));
        let backend: Vec<&str> = schemas.backends["s3"].body.attributes.keys().map(String::as_str).collect();
        assert_eq!(
            backend,
            ["bucket", "key", "region", "endpoint", "force_path_style", "profile", "connect_timeout", "request_timeout", "max_attempts"]
        );
        assert_eq!(
            schemas.providers["mlflow"].body.attributes["max_attempts"].description,
            schemas.backends["s3"].body.attributes["max_attempts"].description
        );
        assert!(schemas.resource("model_version").unwrap().body.attributes["uri"].stores_data);

        let shared = "shared \"limits\" {\n  attribute \"timeout\" {\n    type = string\n  }\n}\n";
        let twice =
            format!("{shared}provider \"p\" {{\n  include = [\"limits\"]\n  attribute \"timeout\" {{\n    type = string\n  }}\n}}\n");
        let error = load_schemas(&[("twice.hcl", &twice)]).unwrap_err();
        assert!(error.contains("`timeout` is declared here and in shared `limits`"), "{error}");
        let unknown = load_schemas(&[("unknown.hcl", "provider \"p\" {\n  include = [\"nothing\"]\n}\n")]).unwrap_err();
        assert!(error.starts_with("twice.hcl:") && unknown.contains("there is no `shared \"nothing\"`"), "{unknown}");
    }

    /// The facts the engine and providers once kept in tables of their own
    /// come from the stdlib, and every one names an attribute that exists.
    #[test]
    fn identities_lineage_and_data_locations_are_schema_facts() {
        let schemas = load_standard().unwrap_or_else(|message| panic!("{message}"));
        assert_eq!(schemas.identity_attribute("training", false), "run_id");
        assert_eq!(schemas.identity_attribute("image", true), "digest");
        assert_eq!(schemas.identity_attribute("dataset", false), "version");
        assert_eq!(schemas.identity_attribute("no-such-kind", false), "version");
        let training = schemas.resource("training").unwrap();
        assert_eq!(training.data_location_attributes().collect::<Vec<_>>(), ["artifact_uri"]);
        assert!(training.lineage_attributes().any(|name| name == "hyperparameters"));
        for kind in schemas.resources.values().chain(schemas.data.values()) {
            assert!(kind.body.attributes.contains_key(&kind.identity), "{}: identity `{}` is not an attribute", kind.name, kind.identity);
        }
    }
}
