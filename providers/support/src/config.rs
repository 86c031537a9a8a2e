//! Reading a resource's configuration values the way the compiler checked
//! them: one reader per value language (durations, quantities) from
//! `mlops-units`, so a value `validate` accepted is never read differently,
//! or silently replaced by a default, here.

use std::time::Duration;

use mlops_provider_api::{as_reference, Attributes, ProviderError, ProviderResult};
use serde_json::Value as Json;

/// A string attribute (`None` when absent or not a string).
pub fn text<'a>(config: &'a Attributes, name: &str) -> Option<&'a str> {
    config.get(name).and_then(Json::as_str)
}

/// A list of strings (empty when absent).
pub fn strings(config: &Attributes, name: &str) -> Vec<String> {
    config
        .get(name)
        .and_then(Json::as_array)
        .map(|items| items.iter().filter_map(Json::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A duration as the language writes it (`90s`, `1h30m`, `500ms`), read by
/// the compiler's own reader. `None` for anything else, and for a negative
/// duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    match mlops_units::parse_duration_signed(text) {
        Ok(milliseconds) if milliseconds >= 0 && !text.trim().starts_with('-') => Some(Duration::from_millis(milliseconds as u64)),
        _ => None,
    }
}

/// A duration attribute. The schema gives every duration the providers
/// read a default, so an absent or unreadable one is an error naming it,
/// never a silent fallback.
pub fn duration(config: &Attributes, name: &str) -> ProviderResult<Duration> {
    match config.get(name) {
        Some(Json::String(written)) => parse_duration(written).ok_or_else(|| {
            ProviderError::with_help(
                format!("`{name} = \"{written}\"` is not a duration"),
                "write a duration such as \"90s\", \"30m\" or \"1h30m\"",
            )
        }),
        Some(other) => Err(ProviderError::with_help(format!("`{name}` is {other}, not a duration"), "write a duration such as \"30m\"")),
        None => Err(ProviderError::failed(format!("`{name}` is missing: the schema's default did not reach the provider"))),
    }
}

/// The identities of a training's `inputs`, by input name: `address@version`
/// from reference markers (planning) or resolved inputs (applying), so plan
/// and apply compute the same run fingerprint. `None` while an identity is
/// known only after apply.
pub fn input_identities(config: &Attributes) -> Option<Vec<(String, String)>> {
    let mut identities = Vec::new();
    for (name, input) in config.get("inputs").and_then(Json::as_object).into_iter().flatten() {
        let identity = if let Some((address, identity)) = as_reference(input) {
            format!("{address}@{}", identity?)
        } else {
            let attributes = input.as_object()?;
            let identity = attributes.get("$identity").filter(|identity| !identity.is_null())?;
            format!(
                "{}@{}",
                attributes.get("$address").and_then(Json::as_str).unwrap_or(""),
                identity.as_str().map_or_else(|| identity.to_string(), str::to_owned)
            )
        };
        identities.push((name.clone(), identity));
    }
    Some(identities)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_are_read_as_the_compiler_reads_them() {
        for (written, seconds) in [("90s", 90), ("1h30m", 5400), ("+1h30m", 5400), ("1.5h", 5400), ("2d", 172_800), (" 10m ", 600)] {
            assert_eq!(parse_duration(written), Some(Duration::from_secs(seconds)), "{written}");
            assert_eq!(mlops_units::check_duration(written).map(|milliseconds| milliseconds / 1000), Ok(seconds as i64), "{written}");
        }
        for refused in ["", "-1h", "1 hour", "h", "10"] {
            assert_eq!(parse_duration(refused), None, "{refused}");
        }
    }

    #[test]
    fn a_missing_or_unreadable_duration_is_an_error_not_a_default() {
        let config: Attributes = serde_json::from_value(json!({ "timeout": "1h30m", "bad": "ninety minutes" })).unwrap();
        assert_eq!(duration(&config, "timeout").unwrap(), Duration::from_secs(5400));
        assert!(duration(&config, "bad").unwrap_err().to_string().contains("`bad = \"ninety minutes\"` is not a duration"));
        assert!(duration(&config, "absent").is_err());
    }
}
