//! What each provider serves (the kinds it registers) is what the stdlib
//! says of it: every kind and data source whose schema names the provider,
//! and nothing else. A provider that forgot a kind, or a schema that names
//! a provider for a kind it never learned, fails here instead of at plan.

use std::collections::BTreeSet;

use mlops_compiler::schema::Schemas;
use mlops_provider_api::Provider;

#[test]
fn every_provider_serves_exactly_what_the_stdlib_says() {
    let providers: Vec<(&str, Box<dyn Provider>)> = vec![
        ("local", Box::new(mlops_provider_local::LocalProvider::new())),
        ("s3", Box::new(mlops_provider_s3::S3Provider::new())),
        ("kubernetes", Box::new(mlops_provider_kubernetes::KubernetesProvider::new())),
        ("mlflow", Box::new(mlops_provider_mlflow::MlflowProvider::new())),
        ("oci", Box::new(mlops_provider_oci::OciProvider::new())),
    ];
    let schemas = Schemas::standard();
    let named: BTreeSet<&str> = providers.iter().map(|(name, _)| *name).collect();
    let in_stdlib: BTreeSet<&str> = schemas.providers.keys().map(String::as_str).collect();
    assert_eq!(named, in_stdlib, "a provider block in the stdlib without a provider, or the other way round");
    for (name, provider) in &providers {
        assert_eq!(provider.name(), *name, "the provider names itself as configurations do");
        let served = provider.kinds().schema();
        let kinds_for = |tables: &mlops_compiler::schema::SchemaMap<mlops_compiler::schema::KindSchema>| -> BTreeSet<String> {
            tables
                .values()
                .filter(|kind| kind.declarable && kind.providers.iter().any(|provider| provider == name))
                .map(|kind| kind.name.clone())
                .collect()
        };
        assert_eq!(served.resource_kinds.into_iter().collect::<BTreeSet<_>>(), kinds_for(&schemas.resources), "{name}: resource kinds");
        assert_eq!(served.data_kinds.into_iter().collect::<BTreeSet<_>>(), kinds_for(&schemas.data), "{name}: data sources");
    }
}
