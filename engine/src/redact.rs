//! Keeping sensitive values out of everything mlops shows or keeps.
//!
//! Two mechanisms, because a secret travels in two ways:
//!
//! - **By path.** A value marked sensitive in the configuration keeps its
//!   path (`hyperparameters.api_key`) through the plan and the state, so what
//!   is shown or kept beside them (lineage, drift, plan reasons, the
//!   attributes one resource hands another) replaces the value at each such
//!   path with `(sensitive)`: [`redact_paths`].
//! - **By value.** Text that mlops did not write (a provider's error, the
//!   last lines of a training's log, a progress line that quotes a command)
//!   may hold a secret anywhere. [`Scrubber`] knows every sensitive string
//!   the plan holds, and the state key, and replaces each occurrence.

use mlops_compiler::diagnostic::Diagnostic;
use mlops_provider_api::{AttributePath, Attributes};
use serde_json::Value as Json;

use crate::plan::Plan;

/// How a sensitive value is shown.
pub const SHOWN: &str = "(sensitive)";

/// Secrets shorter than this are not searched for in free text: a one- or
/// two-character secret would turn every message into noise, and is no
/// secret anyway.
const SHORTEST_SCRUBBED: usize = 4;

/// `attributes` with the value at each of `paths` shown as `(sensitive)`.
pub fn redact_paths(attributes: &Attributes, paths: &[AttributePath]) -> Attributes {
    let mut redacted = attributes.clone();
    for path in paths {
        if let Some(slot) = crate::state::json_at_mut(&mut redacted, path) {
            *slot = Json::String(SHOWN.to_owned());
        }
    }
    redacted
}

/// Whether the attribute `name`, or anything inside it, is sensitive.
pub fn touches_sensitive(name: &str, paths: &[AttributePath]) -> bool {
    paths.iter().any(|path| path.first().is_some_and(|first| first == name))
}

/// Replaces every known secret in free text.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<String>,
}

impl Scrubber {
    /// Every sensitive value a plan holds (its changes, provider
    /// configurations and outputs), and `MLOPS_STATE_KEY`.
    pub fn for_plan(plan: &Plan) -> Scrubber {
        let mut scrubber = Scrubber::default();
        for change in &plan.changes {
            scrubber.add_paths(&change.config, &change.sensitive_paths);
            if let Some(after) = &change.after {
                scrubber.add_paths(after, &change.sensitive_paths);
            }
        }
        for configuration in plan.provider_configurations.values() {
            scrubber.add_paths(&configuration.config, &configuration.sensitive_paths);
        }
        for output in plan.outputs.iter().filter(|output| output.sensitive) {
            if let Some(value) = &output.after {
                scrubber.add(value);
            }
        }
        scrubber.add_state_key();
        scrubber.finish();
        scrubber
    }

    /// The state key alone: for commands that have no plan.
    pub fn for_environment() -> Scrubber {
        let mut scrubber = Scrubber::default();
        scrubber.add_state_key();
        scrubber
    }

    fn add_state_key(&mut self) {
        if let Ok(key) = std::env::var("MLOPS_STATE_KEY") {
            self.add(&Json::String(key));
        }
    }

    fn add_paths(&mut self, attributes: &Attributes, paths: &[AttributePath]) {
        for path in paths {
            if let Some(value) = crate::state::json_at(attributes, path) {
                self.add(value);
            }
        }
    }

    /// Adds every string inside `value` (sealed or withheld markers hold none).
    pub fn add(&mut self, value: &Json) {
        match value {
            Json::String(text) if text.chars().count() >= SHORTEST_SCRUBBED && text != SHOWN => self.secrets.push(text.clone()),
            Json::Array(items) => items.iter().for_each(|item| self.add(item)),
            Json::Object(entries) if !crate::state::is_sealed(value) => entries.values().for_each(|item| self.add(item)),
            _ => {}
        }
    }

    fn finish(&mut self) {
        self.secrets.sort_by(|left, right| right.len().cmp(&left.len()).then_with(|| left.cmp(right)));
        self.secrets.dedup();
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), SHOWN);
            }
        }
        text
    }

    /// The diagnostic with its message, labels and help scrubbed.
    pub fn scrub_diagnostic(&self, mut diagnostic: Diagnostic) -> Diagnostic {
        if self.secrets.is_empty() {
            return diagnostic;
        }
        diagnostic.message = self.scrub(&diagnostic.message);
        diagnostic.help = diagnostic.help.map(|help| self.scrub(&help));
        diagnostic.notes = diagnostic.notes.iter().map(|note| self.scrub(note)).collect();
        for label in diagnostic.primary.iter_mut().chain(diagnostic.secondary.iter_mut()) {
            label.message = label.message.as_ref().map(|message| self.scrub(message));
        }
        diagnostic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_by_value_and_by_path() {
        let mut scrubber = Scrubber::default();
        scrubber.add(&serde_json::json!({ "token": "hunter2-secret", "nested": ["hunter2-secret-longer"], "short": "ab" }));
        scrubber.finish();
        assert_eq!(
            scrubber.scrub("run failed: --token=hunter2-secret-longer and hunter2-secret, ab"),
            "run failed: --token=(sensitive) and (sensitive), ab"
        );
        let Json::Object(attributes) = serde_json::json!({ "hyperparameters": { "api_key": "k", "lr": 0.1 }, "command": ["a", "b"] })
        else {
            unreachable!()
        };
        let redacted = redact_paths(&attributes, &[vec!["hyperparameters".into(), "api_key".into()], vec!["command".into(), "1".into()]]);
        assert_eq!(
            Json::Object(redacted),
            serde_json::json!({ "hyperparameters": { "api_key": "(sensitive)", "lr": 0.1 }, "command": ["a", "(sensitive)"] })
        );
    }
}
