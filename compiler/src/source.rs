//! Source files and spans.
//!
//! Every diagnostic and every syntax node points into a [`SourceFile`] through a
//! [`Span`]: a file id plus a byte range. Line and column numbers are computed
//! on demand from a per-file table of line starts, so spans stay small (12 bytes)
//! and cheap to copy.

use std::path::{Path, PathBuf};

/// Index of a file inside a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range inside one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start: start as u32, end: end.max(start) as u32 }
    }

    /// The smallest span covering both `self` and `other` (same file assumed).
    pub fn to(self, other: Span) -> Span {
        if self.file != other.file {
            return self;
        }
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// A one-based line and column, the column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LineColumn {
    pub line: usize,
    pub column: usize,
}

/// One configuration file as read from disk.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user should see it (relative to where the command ran when possible).
    pub display_path: String,
    /// The path used to read the file.
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: PathBuf, display_path: String, text: String) -> SourceFile {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(index, _)| index + 1));
        SourceFile { display_path, path, text, line_starts }
    }

    pub fn line_column(&self, byte_offset: usize) -> LineColumn {
        let offset = byte_offset.min(self.text.len());
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(index) => index,
            Err(index) => index - 1,
        };
        let line_start = self.line_starts[line_index];
        let column = self.text.get(line_start..offset).map_or(offset - line_start, |prefix| prefix.chars().count());
        LineColumn { line: line_index + 1, column: column + 1 }
    }

    /// The text of the one-based line `line`, without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.wrapping_sub(1)) else { return "" };
        let end = self.line_starts.get(line).map_or(self.text.len(), |next| next - 1);
        self.text.get(start..end).unwrap_or("").trim_end_matches('\r')
    }

    /// The byte range of whole lines `first..=last` (one-based, clamped).
    pub fn line_range(&self, first: usize, last: usize) -> std::ops::Range<usize> {
        let first = first.clamp(1, self.line_starts.len());
        let last = last.clamp(first, self.line_starts.len());
        let start = self.line_starts[first - 1];
        let end = self.line_starts.get(last).map_or(self.text.len(), |next| next - 1);
        start..end.max(start)
    }

    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    pub fn directory(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("."))
    }
}

/// All files read for one run of the compiler.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId((self.files.len() - 1) as u32)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(index, file)| (FileId(index as u32), file))
    }

    pub fn text(&self, span: Span) -> &str {
        self.get(span.file).text.get(span.range()).unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
