//! A small, forgiving HCL tokenizer that keeps every byte.
//!
//! hcl-edit does the real parsing. This lexer exists for two jobs that need
//! to see the text as tokens without building a tree:
//!
//! - the *comma rewrite*: the mlops language allows several attributes on one
//!   line of a block, separated by commas (`resources { cpu = 2, gpus = 0 }`),
//!   which plain HCL does not. [`rewrite_block_commas`] turns those commas into
//!   newlines before hcl-edit sees the text, and records every inserted byte so
//!   spans map back to the user's text exactly;
//! - the formatter, which re-lays tokens line by line and so keeps comments.
//!
//! It never fails: bytes it does not understand become [`TokenKind::Unknown`].

use hcl_primitives::ident::{is_id_continue, is_id_start};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Ident,
    Number,
    /// A quoted string or template, `"..."`, including any interpolations.
    String,
    /// A heredoc from `<<` to the end of its closing marker.
    Heredoc,
    LineComment,
    BlockComment,
    Newline,
    Punct,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn text<'a>(&self, source: &'a str) -> &'a str {
        &source[self.start..self.end]
    }
}

const PUNCTUATION: &[&str] = &[
    "...", "=>", "==", "!=", "<=", ">=", "&&", "||", "{", "}", "[", "]", "(", ")", "=", ",", ":", "?", ".", "+", "-", "*", "/", "%", "<",
    ">", "!",
];

/// Splits `source` into tokens. Spaces and tabs are dropped; everything else,
/// comments and newlines included, becomes a token.
pub fn tokenize(source: &str) -> Vec<Token> {
    Tokens::new(source).collect()
}

/// The tokens of a text, one at a time: the checks that read a whole file
/// once ([`beyond_limits`], [`rewrite_block_commas`]) never hold them all,
/// which for a 25 MB file was a vector of 120 MB, grown by copying.
pub struct Tokens<'a> {
    source: &'a str,
    index: usize,
}

impl<'a> Tokens<'a> {
    pub fn new(source: &'a str) -> Tokens<'a> {
        Tokens { source, index: 0 }
    }
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let source = self.source;
        let bytes = source.as_bytes();
        loop {
            let mut index = self.index;
            let byte = *bytes.get(index)?;
            let start = index;
            let kind = match byte {
                b' ' | b'\t' | b'\r' => {
                    self.index += 1;
                    continue;
                }
                b'\n' => {
                    index += 1;
                    TokenKind::Newline
                }
                b'#' => {
                    index = line_end(bytes, index);
                    TokenKind::LineComment
                }
                b'/' if bytes.get(index + 1) == Some(&b'/') => {
                    index = line_end(bytes, index);
                    TokenKind::LineComment
                }
                b'/' if bytes.get(index + 1) == Some(&b'*') => {
                    index = source[index + 2..].find("*/").map_or(bytes.len(), |offset| index + 2 + offset + 2);
                    TokenKind::BlockComment
                }
                b'"' => {
                    index = scan_quoted(bytes, index);
                    TokenKind::String
                }
                b'<' if bytes.get(index + 1) == Some(&b'<') && heredoc_marker(source, index).is_some() => {
                    index = scan_heredoc(source, index);
                    TokenKind::Heredoc
                }
                b'0'..=b'9' => {
                    index = scan_number(bytes, index);
                    TokenKind::Number
                }
                // Identifiers follow hcl-edit's own rule (Unicode XID), so the
                // formatter never splits a name the parser reads as one.
                _ if source[index..].chars().next().is_some_and(is_id_start) => {
                    index += source[index..].chars().next().map_or(1, char::len_utf8);
                    while let Some(character) = source[index..].chars().next().filter(|character| is_id_continue(*character)) {
                        index += character.len_utf8();
                    }
                    TokenKind::Ident
                }
                _ => match PUNCTUATION.iter().find(|punct| source[index..].starts_with(**punct)) {
                    Some(punct) => {
                        index += punct.len();
                        TokenKind::Punct
                    }
                    None => {
                        index += source[index..].chars().next().map_or(1, char::len_utf8);
                        TokenKind::Unknown
                    }
                },
            };
            self.index = index;
            return Some(Token { kind, start, end: index });
        }
    }
}

fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().position(|&byte| byte == b'\n').map_or(bytes.len(), |offset| {
        // Keep a `\r` of a CRLF line ending out of the comment.
        let end = from + offset;
        if end > from && bytes[end - 1] == b'\r' {
            end - 1
        } else {
            end
        }
    })
}

fn scan_number(bytes: &[u8], mut index: usize) -> usize {
    while index < bytes.len() && bytes[index].is_ascii_digit() {
        index += 1;
    }
    if index + 1 < bytes.len() && bytes[index] == b'.' && bytes[index + 1].is_ascii_digit() {
        index += 1;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            index += 1;
        }
    }
    if index < bytes.len() && (bytes[index] == b'e' || bytes[index] == b'E') {
        let mut next = index + 1;
        if next < bytes.len() && (bytes[next] == b'+' || bytes[next] == b'-') {
            next += 1;
        }
        if next < bytes.len() && bytes[next].is_ascii_digit() {
            index = next;
            while index < bytes.len() && bytes[index].is_ascii_digit() {
                index += 1;
            }
        }
    }
    index
}

/// Scans a quoted string starting at the opening quote; returns the index just
/// past the closing quote (or the end of the line when it is unterminated).
fn scan_quoted(bytes: &[u8], start: usize) -> usize {
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'"' => return index + 1,
            b'\n' => return index,
            b'$' | b'%' if bytes.get(index + 1) == Some(&b'{') => {
                if index > 0 && bytes[index - 1] == bytes[index] && index - 1 > start {
                    // `$${` and `%%{` are escapes, not interpolations.
                    index += 2;
                } else {
                    index = scan_interpolation(bytes, index + 2);
                }
            }
            _ => index += 1,
        }
    }
    bytes.len()
}

/// Scans from just inside `${` to just past the matching `}`.
fn scan_interpolation(bytes: &[u8], mut index: usize) -> usize {
    let mut depth = 1usize;
    while index < bytes.len() {
        match bytes[index] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return index + 1;
                }
            }
            b'"' => {
                index = scan_quoted(bytes, index);
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    bytes.len()
}

/// The heredoc marker after `<<` or `<<-`, if this is a heredoc opener.
fn heredoc_marker(source: &str, start: usize) -> Option<&str> {
    let rest = &source[start + 2..];
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let length = rest.bytes().take_while(|byte| byte.is_ascii_alphanumeric() || *byte == b'_').count();
    let after = rest[length..].trim_start_matches([' ', '\t', '\r']);
    (length > 0 && rest.as_bytes()[0].is_ascii_alphabetic() && after.starts_with('\n')).then(|| &rest[..length])
}

fn scan_heredoc(source: &str, start: usize) -> usize {
    let Some(marker) = heredoc_marker(source, start) else { return start + 2 };
    let mut line_start = source[start..].find('\n').map_or(source.len(), |offset| start + offset + 1);
    while line_start < source.len() {
        let line_end = source[line_start..].find('\n').map_or(source.len(), |offset| line_start + offset);
        if source[line_start..line_end].trim() == marker {
            let trimmed_end = line_start + source[line_start..line_end].trim_end().len();
            return trimmed_end;
        }
        line_start = line_end + 1;
    }
    source.len()
}

/// The text handed to hcl-edit, and how to map its byte offsets back.
#[derive(Debug, Clone)]
pub struct Rewritten {
    pub text: String,
    /// Positions, in the rewritten text, of each inserted byte, ascending.
    inserted_at: Vec<usize>,
    /// Positions, in the rewritten text, just after a newline between two
    /// top-level statements, at least [`PARSE_CHUNK_BYTES`] apart: where a
    /// large file can be cut into pieces that parse on their own.
    pub top_level_breaks: Vec<usize>,
}

/// How large a piece of a large file is parsed on its own (see
/// [`Rewritten::top_level_breaks`]).
pub const PARSE_CHUNK_BYTES: usize = 1 << 20;

impl Rewritten {
    /// Maps a byte offset in the rewritten text to the user's text.
    pub fn original_offset(&self, rewritten: usize) -> usize {
        let earlier = self.inserted_at.partition_point(|&position| position < rewritten);
        rewritten - earlier
    }

    /// [`Rewritten::original_offset`], searched outward from `hint`, the
    /// position the previous call found, which this one updates. A tree is
    /// converted front to back, so the next span is almost always a few
    /// insertions away, and a large file has one insertion per inline
    /// block's comma: a search from scratch for every span was 4% of
    /// `validate`.
    pub fn original_offset_near(&self, rewritten: usize, hint: &std::cell::Cell<usize>) -> usize {
        let earlier = partition_near(&self.inserted_at, rewritten, hint.get());
        hint.set(earlier);
        rewritten - earlier
    }

    pub fn is_identity(&self) -> bool {
        self.inserted_at.is_empty()
    }
}

/// `sorted.partition_point(|&position| position < value)`, found by
/// widening steps from `hint`, so a nearby answer costs a few comparisons.
fn partition_near(sorted: &[usize], value: usize, hint: usize) -> usize {
    let hint = hint.min(sorted.len());
    let mut step = 1;
    if hint < sorted.len() && sorted[hint] < value {
        // The answer is past `hint`.
        let mut low = hint + 1;
        loop {
            let high = (low + step).min(sorted.len());
            if high == sorted.len() || sorted[high] >= value {
                return low + sorted[low..high].partition_point(|&position| position < value);
            }
            low = high + 1;
            step *= 2;
        }
    }
    // The answer is at or before `hint`.
    let mut high = hint;
    loop {
        let low = high.saturating_sub(step);
        if low == 0 || sorted[low - 1] < value {
            return low + sorted[low..high].partition_point(|&position| position < value);
        }
        high = low - 1;
        step *= 2;
    }
}

/// A block body's `{`: where a newline goes after it, unless the token
/// after it is a newline already.
#[derive(Debug)]
struct OpenBrace {
    insert_after: Option<usize>,
}

#[derive(Debug)]
enum Context {
    /// The top level (no `open`) or a block body; `commas` are where the
    /// commas between its attributes are.
    Body { open: Option<OpenBrace>, commas: Vec<usize> },
    /// Inside `(`, `[` or an object `{` within an expression.
    Bracket,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Statement {
    Start,
    Header,
    Expression,
}

/// Input past one of the structural [`crate::limits`]: where, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitBreach {
    pub start: usize,
    pub end: usize,
    pub message: String,
    pub help: String,
}

/// Finds input the parser would spend unbounded time or memory on, before
/// it runs: a `{ }` with more entries than
/// [`crate::limits::MAX_ENTRIES_PER_BRACE`] (the parser compares each new
/// key with every earlier one), a `[ ]` with more elements than
/// [`crate::limits::MAX_LIST_ELEMENTS`], or a number with more digits than
/// any number can hold. (The parser limits nesting depth itself.)
pub fn beyond_limits(source: &str) -> Option<LimitBreach> {
    use crate::limits::{MAX_ENTRIES_PER_BRACE, MAX_LIST_ELEMENTS, MAX_NUMBER_DIGITS};
    struct Brace {
        start: usize,
        entries: usize,
        in_entry: bool,
    }
    // Each open `[`: where it starts, its depth in `braces`, and the
    // commas directly inside it.
    let mut brackets: Vec<(usize, usize, usize)> = Vec::new();
    let mut braces: Vec<Option<Brace>> = Vec::new();
    for token in Tokens::new(source) {
        let text = token.text(source);
        match token.kind {
            TokenKind::Number if token.end - token.start > MAX_NUMBER_DIGITS => {
                return Some(LimitBreach {
                    start: token.start,
                    end: token.start + MAX_NUMBER_DIGITS.min(40),
                    message: format!("a number written with {} digits", token.end - token.start),
                    help: format!("numbers are 64-bit floats: {MAX_NUMBER_DIGITS} digits are more than any of them needs"),
                });
            }
            TokenKind::Newline => {
                if let Some(Some(brace)) = braces.last_mut() {
                    brace.in_entry = false;
                }
            }
            TokenKind::Punct => match text {
                "{" => braces.push(Some(Brace { start: token.start, entries: 0, in_entry: false })),
                "(" => braces.push(None),
                "[" => {
                    braces.push(None);
                    brackets.push((token.start, braces.len(), 0));
                }
                "}" | "]" | ")" => {
                    if brackets.last().is_some_and(|(_, depth, _)| *depth == braces.len()) {
                        brackets.pop();
                    }
                    braces.pop();
                }
                "," => {
                    if let Some(Some(brace)) = braces.last_mut() {
                        brace.in_entry = false;
                    }
                    if let Some((start, _, commas)) = brackets.last_mut().filter(|(_, depth, _)| *depth == braces.len()) {
                        *commas += 1;
                        if *commas >= MAX_LIST_ELEMENTS {
                            let start = *start;
                            return Some(LimitBreach {
                                start,
                                end: start + 1,
                                message: format!("more than {MAX_LIST_ELEMENTS} elements in one `[ ]`"),
                                help: "keep long data in a file the configuration reads (`file()`, `csvdecode`) or in a dataset".to_owned(),
                            });
                        }
                    }
                }
                "=" | ":" => {
                    if let Some(Some(brace)) = braces.last_mut() {
                        if !brace.in_entry {
                            brace.in_entry = true;
                            brace.entries += 1;
                            if brace.entries > MAX_ENTRIES_PER_BRACE {
                                return Some(LimitBreach {
                                    start: brace.start,
                                    end: brace.start + 1,
                                    message: format!("more than {MAX_ENTRIES_PER_BRACE} entries in one `{{ }}`"),
                                    help: "split the data into several values, or keep it in a file the configuration reads".to_owned(),
                                });
                            }
                        }
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    None
}

/// Rewrites comma-separated attributes inside block bodies into the
/// newline-separated form hcl-edit accepts. Returns the text unchanged (and an
/// identity mapping) when there is nothing to rewrite.
pub fn rewrite_block_commas(source: &str) -> Rewritten {
    let mut stack = vec![Context::Body { open: None, commas: Vec::new() }];
    let mut statement = Statement::Start;
    // For each block body with commas: where to insert a newline after its
    // `{` and before its `}` (where none is already), and its commas.
    let mut rewrites: Vec<(Option<usize>, Option<usize>, Vec<usize>)> = Vec::new();
    // The raw token before this one (comments and newlines count), and
    // whether it opened the block body on top of the stack.
    let mut previous_kind: Option<TokenKind> = None;
    let mut body_just_opened = false;

    // Original offsets just after top-level newlines, one per chunk.
    let mut breaks: Vec<usize> = Vec::new();
    for token in Tokens::new(source) {
        if std::mem::take(&mut body_just_opened) && token.kind == TokenKind::Newline {
            if let Some(Context::Body { open: Some(open), .. }) = stack.last_mut() {
                open.insert_after = None;
            }
        }
        let before = previous_kind.replace(token.kind);
        let text = token.text(source);
        let in_body = matches!(stack.last(), Some(Context::Body { .. }));
        match token.kind {
            TokenKind::LineComment | TokenKind::BlockComment => continue,
            TokenKind::Newline => {
                if in_body {
                    statement = Statement::Start;
                    if stack.len() == 1 && token.end - breaks.last().copied().unwrap_or(0) >= PARSE_CHUNK_BYTES {
                        breaks.push(token.end);
                    }
                }
                continue;
            }
            _ => {}
        }
        if !in_body {
            match text {
                "(" | "[" | "{" => stack.push(Context::Bracket),
                ")" | "]" | "}" => {
                    stack.pop();
                }
                _ => {}
            }
            continue;
        }
        match (statement, text) {
            (Statement::Expression, "(" | "[" | "{") => stack.push(Context::Bracket),
            (Statement::Expression, ",") => {
                if let Some(Context::Body { open: Some(_), commas }) = stack.last_mut() {
                    commas.push(token.start);
                }
                statement = Statement::Start;
            }
            (Statement::Header, "=") => statement = Statement::Expression,
            (Statement::Header, "{") => {
                // A newline goes after the `{` unless the next token is one
                // (or there is none).
                stack.push(Context::Body { open: Some(OpenBrace { insert_after: Some(token.end) }), commas: Vec::new() });
                body_just_opened = true;
                statement = Statement::Start;
            }
            (_, "}") => {
                if stack.len() > 1 {
                    if let Some(Context::Body { open: Some(open), commas }) = stack.pop() {
                        if !commas.is_empty() {
                            let insert_before = (before != Some(TokenKind::Newline)).then_some(token.start);
                            rewrites.push((open.insert_after, insert_before, commas));
                        }
                    }
                }
                statement = Statement::Expression;
            }
            (Statement::Start, _) if matches!(token.kind, TokenKind::Ident) => statement = Statement::Header,
            (Statement::Header, _) if matches!(token.kind, TokenKind::Ident | TokenKind::String) => {}
            _ => {
                if statement != Statement::Expression {
                    statement = Statement::Expression;
                }
            }
        }
    }

    if rewrites.is_empty() {
        return Rewritten { text: source.to_owned(), inserted_at: Vec::new(), top_level_breaks: breaks };
    }
    // Original offsets at which to insert a newline, and commas to replace.
    let mut insert_before: Vec<usize> = Vec::new();
    let mut replace: Vec<usize> = Vec::new();
    for (after_open, before_close, commas) in rewrites {
        insert_before.extend(after_open);
        insert_before.extend(before_close);
        replace.extend(commas);
    }
    insert_before.sort_unstable();
    insert_before.dedup();
    replace.sort_unstable();

    let mut bytes = source.as_bytes().to_vec();
    for offset in &replace {
        bytes[*offset] = b'\n';
    }
    let mut text = Vec::with_capacity(bytes.len() + insert_before.len());
    let mut inserted_at = Vec::with_capacity(insert_before.len());
    let mut previous = 0;
    for offset in insert_before {
        text.extend_from_slice(&bytes[previous..offset]);
        inserted_at.push(text.len());
        text.push(b'\n');
        previous = offset;
    }
    text.extend_from_slice(&bytes[previous..]);
    // Only ASCII commas were replaced and ASCII newlines inserted at token
    // boundaries, so the text is still valid UTF-8.
    let text = String::from_utf8(text).unwrap_or_else(|_| source.to_owned());
    // Nothing is inserted at the top level, so a break moves by what was
    // inserted before it.
    let top_level_breaks = breaks
        .into_iter()
        .map(|offset| {
            // Insertion i was made at original offset inserted_at[i] - i,
            // which never decreases with i.
            let (mut low, mut high) = (0, inserted_at.len());
            while low < high {
                let middle = (low + high) / 2;
                if inserted_at[middle] - middle < offset {
                    low = middle + 1;
                } else {
                    high = middle;
                }
            }
            offset + low
        })
        .collect();
    Rewritten { text, inserted_at, top_level_breaks }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every hint, before, at and past the answer, gives what a search from
    /// scratch gives, for sorted positions with gaps, runs and repeats.
    #[test]
    fn a_search_from_any_hint_finds_the_partition_point() {
        let sorted = [2, 3, 3, 5, 8, 13, 13, 13, 21, 34, 55, 89, 144];
        for value in 0..=150 {
            let expected = sorted.partition_point(|&position| position < value);
            for hint in 0..=sorted.len() + 2 {
                assert_eq!(partition_near(&sorted, value, hint), expected, "value {value} from hint {hint}");
            }
        }
        assert_eq!(partition_near(&[], 7, 3), 0);
    }

    #[test]
    fn commas_in_one_line_blocks_become_newlines() {
        let source = "resources { cpu = 2, memory = \"4Gi\", gpus = 0 }\n";
        let rewritten = rewrite_block_commas(source);
        assert_eq!(rewritten.text, "resources {\n cpu = 2\n memory = \"4Gi\"\n gpus = 0 \n}\n");
        let body = hcl_edit::parser::parse_body(&rewritten.text);
        assert!(body.is_ok(), "{body:?}");
        // `gpus` keeps its original offset once mapped back.
        let gpus = rewritten.text.find("gpus").unwrap();
        assert_eq!(rewritten.original_offset(gpus), source.find("gpus").unwrap());
    }

    /// A newline goes after `{` and before `}` only where the token next to
    /// the brace is not one already; a comment after `{` still gets one, as
    /// it ends the line the first attribute would otherwise share.
    #[test]
    fn newlines_are_inserted_only_where_a_brace_has_none_next_to_it() {
        for (source, expected) in [
            ("r {\n a = 1, b = 2 }\n", "r {\n a = 1\n b = 2 \n}\n"),
            ("r { a = 1, b = 2\n}\n", "r {\n a = 1\n b = 2\n}\n"),
            ("r {\n a = 1, b = 2\n}\n", "r {\n a = 1\n b = 2\n}\n"),
            ("r { # note\n a = 1, b = 2 }\n", "r {\n # note\n a = 1\n b = 2 \n}\n"),
            ("o {\n i { a = 1, b = 2 }\n}\n", "o {\n i {\n a = 1\n b = 2 \n}\n}\n"),
        ] {
            let rewritten = rewrite_block_commas(source);
            assert_eq!(rewritten.text, expected, "{source:?}");
            assert!(hcl_edit::parser::parse_body(&rewritten.text).is_ok(), "{expected:?}");
        }
    }

    #[test]
    fn commas_inside_expressions_are_left_alone() {
        let source = "x {\n  a = [1, 2]\n  b = { c = 1, d = f(1, 2) }\n}\n";
        assert!(rewrite_block_commas(source).is_identity());
    }

    #[test]
    fn unicode_identifiers_are_one_token_as_in_the_parser() {
        let tokens = tokenize("a=\u{B919}A");
        assert_eq!(tokens.len(), 3);
        assert_eq!(tokens[2].kind, TokenKind::Ident);
    }

    #[test]
    fn tokens_cover_strings_with_interpolation_and_heredocs() {
        let source = "a = \"x${f(\"}\")}y\" # c\nb = <<EOF\nhello\nEOF\n";
        let kinds: Vec<_> = tokenize(source).iter().map(|token| token.kind).collect();
        assert_eq!(
            kinds,
            vec![
                TokenKind::Ident,
                TokenKind::Punct,
                TokenKind::String,
                TokenKind::LineComment,
                TokenKind::Newline,
                TokenKind::Ident,
                TokenKind::Punct,
                TokenKind::Heredoc,
                TokenKind::Newline
            ]
        );
    }
}
