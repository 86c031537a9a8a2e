//! `mlops module publish`: a checked module directory, published to an
//! OCI registry for other configurations to call by digest.

use std::io::Write;
use std::path::Path;

use mlops_compiler::check::{check_directory, CheckOptions};
use mlops_compiler::diagnostic::{codes, Diagnostic};

use super::{display_directory, fail, report, CommandError, CommandResult};

pub fn module_publish_command(directory: &Path, destination: &str) -> CommandResult {
    if !destination.starts_with("oci://") {
        return fail(
            Diagnostic::error(codes::INVALID_VALUE, format!("`{destination}` is not a registry destination"))
                .with_help("publish to oci://HOST/REPOSITORY:TAG"),
        );
    }
    let result = check_directory(directory, &display_directory(directory), &CheckOptions::default());
    if result.has_errors() {
        let errors = report(&result.diagnostics, &result.sources);
        let _ = writeln!(std::io::stderr(), "{errors} error{} found; nothing was published.", if errors == 1 { "" } else { "s" });
        return Err(CommandError::Reported(1));
    }
    match mlops_provider_oci::modules::publish(directory, destination, &|line| errln!("{line}")) {
        Ok((digest, files)) => {
            outln!("Published {destination} ({files} file{}): {digest}", if files == 1 { "" } else { "s" });
            outln!("Use it with: source = \"{destination}\", then `mlops init`.");
            Ok(0)
        }
        Err(error) => {
            let help = error.help().unwrap_or("check the destination and that the registry is reachable").to_owned();
            fail(Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot publish {destination}: {error}")).with_help(help))
        }
    }
}
