//! Diagnostics: what the compiler tells the user about their configuration.
//!
//! A [`Diagnostic`] has a stable [`Code`], a short lowercase message, a primary
//! label on the exact span, optional secondary labels (possibly in other
//! files), and a help line. Stages collect diagnostics into a [`Diagnostics`]
//! list and keep going; nothing stops at the first error.
//!
//! Rendering for humans (miette's graphical handler) and the machine-readable
//! JSON form live in [`render`].

pub mod codes;
pub mod render;

pub use codes::Code;

use crate::source::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    /// Worth knowing, never a reason to stop: an advisory policy's finding.
    Advice,
}

/// A span with an optional message attached to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label {
    pub span: Span,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// The span the diagnostic is about. Absent only for problems that have no
    /// source text to point at (an unreadable file, an empty directory).
    pub primary: Option<Label>,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message) }
    }

    pub fn at(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        let label = label.into();
        self.primary = Some(Label { span, message: (!label.is_empty()).then_some(label) });
        self
    }

    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        let label = label.into();
        self.secondary.push(Label { span, message: (!label.is_empty()).then_some(label) });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_optional_help(mut self, help: Option<String>) -> Diagnostic {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn advice(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Advice, ..Diagnostic::error(code, message) }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }
}

/// An ordered, de-duplicated collection of diagnostics.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    seen: std::collections::HashSet<(&'static str, Option<Span>, String)>,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        // A module called twice, or an expression checked once per instance,
        // would otherwise report the same problem several times.
        let key = (diagnostic.code.id, diagnostic.primary.as_ref().map(|label| label.span), diagnostic.message.clone());
        if self.seen.insert(key) {
            self.items.push(diagnostic);
        }
    }

    pub fn extend(&mut self, diagnostics: impl IntoIterator<Item = Diagnostic>) {
        for diagnostic in diagnostics {
            self.push(diagnostic);
        }
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|diagnostic| diagnostic.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.items.iter().filter(|diagnostic| diagnostic.is_warning()).count()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Sorts by file, then position, so output is stable whatever order the
    /// checker visited things in.
    pub fn sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by_key(|diagnostic| {
            let span = diagnostic.primary.as_ref().map(|label| label.span);
            (span.map(|span| (span.file, span.start, span.end)), diagnostic.code.id)
        });
        self.items
    }
}
