//! Rendering diagnostics: the human form (miette's graphical report, with the
//! source snippet and underlined spans) and the documented JSON form
//! (`docs/json-diagnostics.md`).

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use serde::Serialize;

use super::{Diagnostic, Label, Severity};
use crate::source::{LineColumn, SourceFile, SourceMap, Span};

/// The version of the JSON diagnostics format. Bumped on incompatible change.
pub const JSON_FORMAT_VERSION: &str = "1.0";

/// Options for human rendering.
#[derive(Debug, Clone, Copy)]
pub struct HumanOptions {
    pub colour: bool,
    pub width: usize,
}

impl Default for HumanOptions {
    fn default() -> Self {
        HumanOptions { colour: false, width: 100 }
    }
}

/// Renders one diagnostic as text with its source snippet.
pub fn render_human(diagnostic: &Diagnostic, sources: &SourceMap, options: HumanOptions) -> String {
    let theme = if options.colour { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(options.width).with_context_lines(1);
    let report = MietteView::new(diagnostic, sources);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        out = format!("{}: {}\n", diagnostic.code.id, diagnostic.message);
    }
    out
}

/// Renders many diagnostics, followed by a one-line count.
pub fn render_human_all(diagnostics: &[Diagnostic], sources: &SourceMap, options: HumanOptions) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&render_human(diagnostic, sources, options));
        out.push('\n');
    }
    out
}

/// A view of one of our diagnostics through miette's trait. Labels in the
/// primary file are drawn in one snippet; labels in other files become related
/// reports, each with its own snippet.
struct MietteView<'a> {
    severity: Severity,
    code: String,
    message: String,
    help: Option<String>,
    source: Option<FileSource<'a>>,
    labels: Vec<LabeledSpan>,
    related: Vec<MietteView<'a>>,
}

/// Lines longer than this are not drawn in a snippet.
const MAX_SHOWN_LINE_BYTES: usize = 2_000;

/// A file as miette reads it. miette finds lines by scanning from the start
/// of the text it is given, for every label: a whole file would make each
/// diagnostic cost the file's size, and many diagnostics its square. Each
/// read here hands miette only the lines around the span (found with the
/// file's line index), and shifts what it finds back into the file.
struct FileSource<'a> {
    file: &'a SourceFile,
}

impl SourceCode for FileSource<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let text = &self.file.text;
        if span.offset() > text.len() {
            return Err(MietteError::OutOfBounds);
        }
        // Whole lines, with a line to spare on either side of the context.
        let first_line = self.file.line_column(span.offset()).line.saturating_sub(context_lines_before + 1).max(1);
        let last_line = self.file.line_column(span.offset() + span.len()).line + context_lines_after + 1;
        let window = self.file.line_range(first_line, last_line);
        let window = window.start..(window.end + 1).min(text.len());
        let local = SourceSpan::new((span.offset() - window.start).into(), span.len());
        let contents = text[window.clone()].read_span(&local, context_lines_before, context_lines_after)?;
        let shifted = SourceSpan::new((contents.span().offset() + window.start).into(), contents.span().len());
        Ok(Box::new(MietteSpanContents::new_named(
            self.file.display_path.clone(),
            contents.data(),
            shifted,
            contents.line() + first_line - 1,
            contents.column(),
            // miette counts every line from the start of what it read (and
            // merges nearby snippets by that count): count as if it had
            // read the whole file, so snippets render as they always did.
            contents.line_count() + first_line - 1,
        )))
    }
}

impl<'a> MietteView<'a> {
    fn new(diagnostic: &Diagnostic, sources: &'a SourceMap) -> MietteView<'a> {
        let mut help = diagnostic.help.clone();
        for note in &diagnostic.notes {
            let joined = match help.take() {
                Some(existing) => format!("{existing}\nnote: {note}"),
                None => format!("note: {note}"),
            };
            help = Some(joined);
        }
        let Some(primary) = &diagnostic.primary else {
            return MietteView {
                severity: diagnostic.severity,
                code: format!("{} {}", diagnostic.code.id, diagnostic.code.name),
                message: diagnostic.message.clone(),
                help,
                source: None,
                labels: Vec::new(),
                related: Vec::new(),
            };
        };
        let file = sources.get(primary.span.file);
        // A line too long to show (a generated file, a minified blob) would
        // flood the terminal: the place is named instead.
        let position = file.line_column(primary.span.range().start);
        if file.line_text(position.line).len() > MAX_SHOWN_LINE_BYTES {
            let place = format!(
                "at {}:{}:{} (the line is {} bytes long, too long to show)",
                file.display_path,
                position.line,
                position.column,
                file.line_text(position.line).len()
            );
            return MietteView {
                severity: diagnostic.severity,
                code: format!("{} {}", diagnostic.code.id, diagnostic.code.name),
                message: diagnostic.message.clone(),
                help: Some(match help {
                    Some(help) => format!("{help}\nnote: {place}"),
                    None => format!("note: {place}"),
                }),
                source: None,
                labels: Vec::new(),
                related: Vec::new(),
            };
        }
        let mut labels = vec![labeled_span(primary, true)];
        let mut related = Vec::new();
        for label in &diagnostic.secondary {
            if label.span.file == primary.span.file {
                labels.push(labeled_span(label, false));
            } else {
                let other = sources.get(label.span.file);
                related.push(MietteView {
                    severity: Severity::Warning,
                    code: String::new(),
                    message: format!("in {}", other.display_path),
                    help: None,
                    source: Some(FileSource { file: other }),
                    labels: vec![labeled_span(label, false)],
                    related: Vec::new(),
                });
            }
        }
        MietteView {
            severity: diagnostic.severity,
            code: format!("{} {}", diagnostic.code.id, diagnostic.code.name),
            message: diagnostic.message.clone(),
            help,
            source: Some(FileSource { file }),
            labels,
            related,
        }
    }
}

fn labeled_span(label: &Label, primary: bool) -> LabeledSpan {
    let range = label.span.range();
    let length = range.end.saturating_sub(range.start);
    if primary {
        LabeledSpan::new_primary_with_span(label.message.clone(), (range.start, length))
    } else {
        LabeledSpan::new_with_span(label.message.clone(), (range.start, length))
    }
}

impl fmt::Debug for MietteView<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl fmt::Display for MietteView<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for MietteView<'_> {}

impl miette::Diagnostic for MietteView<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        (!self.code.is_empty()).then(|| Box::new(&self.code) as Box<dyn fmt::Display>)
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning if self.code.is_empty() => miette::Severity::Advice,
            Severity::Warning => miette::Severity::Warning,
            Severity::Advice => miette::Severity::Advice,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|source| source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        (!self.labels.is_empty()).then(|| Box::new(self.labels.iter().cloned()) as Box<dyn Iterator<Item = LabeledSpan>>)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        (!self.related.is_empty())
            .then(|| Box::new(self.related.iter().map(|view| view as &dyn miette::Diagnostic)) as Box<dyn Iterator<Item = _>>)
    }
}

/// A position in the JSON form: one-based line and column, zero-based byte offset.
#[derive(Debug, Serialize)]
pub struct JsonPosition {
    pub line: usize,
    pub column: usize,
    pub byte: usize,
}

#[derive(Debug, Serialize)]
pub struct JsonRange {
    pub start: JsonPosition,
    pub end: JsonPosition,
}

#[derive(Debug, Serialize)]
pub struct JsonLabel {
    pub file: String,
    pub range: JsonRange,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub name: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<JsonRange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The source lines the primary range covers, verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    pub secondary: Vec<JsonLabel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct JsonReport {
    pub format_version: &'static str,
    pub valid: bool,
    pub error_count: usize,
    pub warning_count: usize,
    pub advice_count: usize,
    pub diagnostics: Vec<JsonDiagnostic>,
}

fn json_range(span: Span, sources: &SourceMap) -> JsonRange {
    let file = sources.get(span.file);
    let position = |byte: usize| {
        let LineColumn { line, column } = file.line_column(byte);
        JsonPosition { line, column, byte }
    };
    JsonRange { start: position(span.start as usize), end: position(span.end as usize) }
}

pub fn to_json(diagnostic: &Diagnostic, sources: &SourceMap) -> JsonDiagnostic {
    let primary = diagnostic.primary.as_ref();
    JsonDiagnostic {
        severity: diagnostic.severity,
        code: diagnostic.code.id,
        name: diagnostic.code.name,
        message: diagnostic.message.clone(),
        file: primary.map(|label| sources.get(label.span.file).display_path.clone()),
        range: primary.map(|label| json_range(label.span, sources)),
        label: primary.and_then(|label| label.message.clone()),
        snippet: primary.map(|label| {
            let file = sources.get(label.span.file);
            let first = file.line_column(label.span.start as usize).line;
            let last = file.line_column(label.span.end as usize).line;
            (first..=last).map(|line| file.line_text(line)).collect::<Vec<_>>().join("\n")
        }),
        secondary: diagnostic
            .secondary
            .iter()
            .map(|label| JsonLabel {
                file: sources.get(label.span.file).display_path.clone(),
                range: json_range(label.span, sources),
                message: label.message.clone(),
            })
            .collect(),
        help: diagnostic.help.clone(),
        notes: diagnostic.notes.clone(),
    }
}

pub fn json_report(diagnostics: &[Diagnostic], sources: &SourceMap) -> JsonReport {
    let error_count = diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count();
    JsonReport {
        format_version: JSON_FORMAT_VERSION,
        valid: error_count == 0,
        error_count,
        warning_count: diagnostics.iter().filter(|diagnostic| diagnostic.is_warning()).count(),
        advice_count: diagnostics.iter().filter(|diagnostic| diagnostic.severity == Severity::Advice).count(),
        diagnostics: diagnostics.iter().map(|diagnostic| to_json(diagnostic, sources)).collect(),
    }
}
