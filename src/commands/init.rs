//! `mlops init`: install the registry modules the configuration calls
//! (pinned by digest in `mlops.lock.hcl`), check the configuration, and
//! prepare the state backend and the data directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use mlops_compiler::check::{check_directory, CheckOptions};
use mlops_compiler::diagnostic::{codes, Diagnostic};

use super::{display_directory, fail, providers, report, workspace, CommandError, CommandResult};

pub fn init_command(directory: &Path, upgrade: bool) -> CommandResult {
    install_registry_modules(directory, upgrade)?;
    let result = check_directory(directory, &display_directory(directory), &CheckOptions::default());
    if result.has_errors() {
        let errors = report(&result.diagnostics, &result.sources);
        let _ = writeln!(std::io::stderr(), "{errors} error{} found.", if errors == 1 { "" } else { "s" });
        return Err(CommandError::Reported(1));
    }
    let workspace = workspace(directory)?;
    if let Some(done) = workspace.backend.initialise()? {
        outln!("{}{}", done[..1].to_uppercase(), &done[1..]);
    }
    if let Err(error) = std::fs::create_dir_all(&workspace.data_directory) {
        return fail(
            Diagnostic::error(
                codes::STATE_ERROR,
                format!("cannot create the data directory `{}`: {error}", workspace.data_directory.display()),
            )
            .with_help("check the permissions"),
        );
    }
    let gitignore = workspace.data_directory.join(".gitignore");
    if !gitignore.exists() {
        let _ = std::fs::write(&gitignore, "# Local state, objects, runs and registry: not for version control.\n*\n");
    }
    let mut providers_used: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(root) = &result.root {
        for (_, resource) in root.all_resources() {
            *providers_used.entry(resource.provider_type.clone()).or_default() += 1;
        }
    }
    let available = providers();
    for (provider, count) in &providers_used {
        match available.get(provider) {
            Ok(_) => outln!("provider {provider}: ready ({count} resource{})", if *count == 1 { "" } else { "s" }),
            Err(message) => outln!("provider {provider}: {message}"),
        }
    }
    outln!("Initialized: state in {}.", workspace.backend.describe());
    Ok(0)
}

/// Downloads every registry module the configuration calls (and the ones
/// those call) into the module cache, pinned in mlops.lock.hcl. A pinned
/// module is fetched by its digest, so the tag moving changes nothing until
/// `upgrade`; pins no longer used are dropped.
fn install_registry_modules(directory: &Path, upgrade: bool) -> Result<(), Diagnostic> {
    use mlops_compiler::files::DiskFiles;
    use mlops_compiler::lock;
    let locked = lock::read(&DiskFiles, directory).map_err(|message| {
        Diagnostic::error(codes::STATE_ERROR, message).with_help("fix or delete mlops.lock.hcl and run `mlops init` again")
    })?;
    let mut pins = lock::Pins::new();
    let mut pending: Vec<String> = lock::registry_sources(&DiskFiles, directory);
    let registry_failure = |source: &str, error: mlops_provider_api::ProviderError| {
        let help = error.help().unwrap_or("check the source and that the registry is reachable").to_owned();
        Diagnostic::error(codes::REMOTE_MODULE_NOT_INSTALLED, format!("cannot install \"{source}\": {error}")).with_help(help)
    };
    while let Some(source) = pending.pop() {
        if pins.contains_key(&source) {
            continue;
        }
        let named_digest = source.split_once('@').map(|(_, digest)| digest.to_owned());
        let digest = match (named_digest, locked.get(&source)) {
            (Some(digest), _) => digest,
            (None, Some(digest)) if !upgrade => {
                // The pin holds; whether the tag still points at it is worth
                // knowing (a new release, or a tag overwritten by someone).
                match mlops_provider_oci::modules::resolve(&source) {
                    Ok(now) if now != *digest => outln!(
                        "module {source}: the tag now points at {now}; keeping the pinned {digest} (`mlops init -upgrade` moves the pin)"
                    ),
                    Ok(_) => {}
                    Err(error) => {
                        outln!("module {source}: could not check whether the tag moved ({error}); keeping the pinned {digest}")
                    }
                }
                digest.clone()
            }
            _ => mlops_provider_oci::modules::resolve(&source).map_err(|error| registry_failure(&source, error))?,
        };
        let cache = lock::cache_directory(directory, &digest);
        let state = match lock::verify(&DiskFiles, &cache, &digest) {
            Ok(()) => "already downloaded",
            Err(_) => {
                mlops_provider_oci::modules::pull(&source, &digest, &cache).map_err(|error| registry_failure(&source, error))?;
                lock::verify(&DiskFiles, &cache, &digest).map_err(|problem| {
                    Diagnostic::error(
                        codes::MODULE_CONTENT_MISMATCH,
                        format!("\"{source}\" was downloaded but does not match {digest}: {problem}"),
                    )
                    .with_help("the registry served content that differs from its digest; do not use it")
                })?;
                "downloaded"
            }
        };
        let moved = locked.get(&source).filter(|before| **before != digest);
        match moved {
            Some(before) => outln!("module {source}: {before} -> {digest} ({state})"),
            None => outln!("module {source}: {digest} ({state})"),
        }
        pending.extend(lock::registry_sources(&DiskFiles, &cache));
        pins.insert(source, digest);
    }
    if pins != locked || (!pins.is_empty() && !directory.join(lock::LOCK_FILE).exists()) {
        let path = directory.join(lock::LOCK_FILE);
        mlops_engine::state::write_atomically(&path, lock::render(&pins).as_bytes()).map_err(|error| {
            Diagnostic::error(codes::STATE_ERROR, format!("cannot write {}: {error}", path.display()))
                .with_help("check the permissions and the free space of the directory")
        })?;
        outln!("Wrote {} ({} module{}).", lock::LOCK_FILE, pins.len(), if pins.len() == 1 { "" } else { "s" });
    }
    Ok(())
}
