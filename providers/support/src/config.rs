//! Reading a resource's typed configuration values. Durations and
//! quantities arrive parsed by the compiler's reader (`mlops-units`), so a
//! value `validate` accepted is never read differently, or silently
//! replaced by a default, here.

use std::time::Duration;

use mlops_provider_api::{Configuration, ProviderError, ProviderResult, Value};

/// A string attribute (`None` when absent or not a string).
pub fn text<'a>(config: &'a Configuration, name: &str) -> Option<&'a str> {
    config.get(name).and_then(Value::as_str)
}

/// A list of strings (empty when absent).
pub fn strings(config: &Configuration, name: &str) -> Vec<String> {
    config
        .get(name)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A string attribute of a map, or of the resource a reference points at.
pub fn field<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    value.get(name).and_then(Value::as_str)
}

/// A value as a registry's string tag or parameter holds it: text as
/// written, anything else as JSON. A secret is never written out.
pub fn tag_text(value: &Value) -> String {
    if value.is_sensitive() {
        return "(sensitive)".to_owned();
    }
    match value.as_str() {
        Some(text) => text.to_owned(),
        None => value.to_plain_json().map(|json| json.to_string()).unwrap_or_default(),
    }
}

/// A string in a provider's recorded state.
pub fn state_text<'a>(state: &'a mlops_provider_api::Attributes, name: &str) -> Option<&'a str> {
    state.get(name).and_then(serde_json::Value::as_str)
}

/// A list of strings in a provider's recorded state (empty when absent).
pub fn state_strings(state: &mlops_provider_api::Attributes, name: &str) -> Vec<String> {
    state
        .get(name)
        .and_then(serde_json::Value::as_array)
        .map(|items| items.iter().filter_map(serde_json::Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A duration attribute, as the compiler's reader parsed it. The schema
/// gives every duration the providers read a default, so an absent one is
/// an error naming it, never a silent fallback.
pub fn duration(config: &Configuration, name: &str) -> ProviderResult<Duration> {
    match config.get(name) {
        Some(value) => value.as_duration().ok_or_else(|| {
            ProviderError::with_help(
                format!("`{name}` is {value}, not a parsed duration"),
                "write a duration such as \"90s\", \"30m\" or \"1h30m\"; the schema must give it `format = \"duration\"`",
            )
        }),
        None => Err(ProviderError::failed(format!("`{name}` is missing: the schema's default did not reach the provider"))),
    }
}

/// The identities of a training's `inputs`, by input name: `address@version`
/// from reference markers (planning) or resolved inputs (applying), so plan
/// and apply compute the same run fingerprint. `None` while an identity is
/// known only after apply.
pub fn input_identities(config: &Configuration) -> Option<Vec<(String, String)>> {
    let mut identities = Vec::new();
    for (name, input) in config.get("inputs").and_then(Value::as_object).into_iter().flatten() {
        let reference = input.as_reference()?;
        let identity = match &reference.target {
            Some(target) => target.identity.clone()?,
            None => reference.identity.clone()?,
        };
        identities.push((name.clone(), format!("{}@{identity}", reference.address)));
    }
    Some(identities)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_as_the_compiler_reads_them() {
        for (written, seconds) in [("90s", 90), ("1h30m", 5400), ("+1h30m", 5400), ("1.5h", 5400), ("2d", 172_800), (" 10m ", 600)] {
            assert_eq!(
                Value::duration_from_text(written).and_then(|value| value.as_duration()),
                Some(Duration::from_secs(seconds)),
                "{written}"
            );
            assert_eq!(mlops_units::check_duration(written).map(|milliseconds| milliseconds / 1000), Ok(seconds as i64), "{written}");
        }
        for refused in ["", "-1h", "1 hour", "h", "10"] {
            assert!(Value::duration_from_text(refused).is_none(), "{refused}");
        }
    }

    #[test]
    fn a_missing_or_unreadable_duration_is_an_error_not_a_default() {
        let config = Configuration::from([
            ("timeout".to_owned(), Value::duration_from_text("1h30m").unwrap()),
            ("bad".to_owned(), Value::from("ninety minutes")),
        ]);
        assert_eq!(duration(&config, "timeout").unwrap(), Duration::from_secs(5400));
        assert!(duration(&config, "bad").unwrap_err().to_string().contains("`bad` is \"ninety minutes\", not a parsed duration"));
        assert!(duration(&config, "absent").is_err());
    }
}
