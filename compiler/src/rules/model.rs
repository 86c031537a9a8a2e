//! Models: which registry each model lives on, for the rules of the
//! servings that run it (an OCI model needs an init container).

use super::KindCheck;

pub(super) fn check(check: &mut KindCheck<'_, '_>) {
    check.facts.model_providers.insert(check.name.to_owned(), check.target.provider_type.to_owned());
}
