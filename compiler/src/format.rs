//! The canonical formatter behind `mlops fmt`.
//!
//! It works on tokens (see [`crate::lexer`]), the way Terraform's hclwrite
//! does, so comments and heredocs survive untouched. The rules:
//!
//! - two spaces of indentation per nesting level (one level per line that
//!   leaves brackets open, however many it opens);
//! - single spaces around `=` and binary operators, after commas, inside
//!   one-line braces; none inside parentheses and brackets, around `.`, after
//!   unary operators or before a call's `(`;
//! - the `=` of consecutive attribute lines at one level aligned;
//! - at most one blank line in a row, none at the start or end of a block or
//!   file; a single newline at the end.
//!
//! Only files that parse are formatted, and formatting is idempotent.

use crate::diagnostic::Diagnostic;
use crate::lexer::{tokenize, Token, TokenKind};
use crate::source::FileId;

/// Formats `source`. Fails with the syntax diagnostic when it does not parse.
pub fn format_source(source: &str) -> Result<String, Box<Diagnostic>> {
    crate::syntax::parse_file(FileId(0), source)?;
    let formatted = format_tokens(source);
    // `fmt` rewrites users' files: never hand back text that no longer parses.
    if crate::syntax::parse_file(FileId(0), &formatted).is_err() {
        return Err(Box::new(
            Diagnostic::error(
                crate::diagnostic::codes::SYNTAX_ERROR,
                "the formatter could not format this file safely, so it is left unchanged",
            )
            .with_help("this is a bug in mlops fmt; please report it with the file"),
        ));
    }
    Ok(formatted)
}

struct Line {
    indent: usize,
    text: String,
    /// Width of the attribute key when the line is `key = ...`.
    key_width: Option<usize>,
    /// Whether the line leaves a bracket open for the lines after it.
    opens: bool,
    starts_with_closer: bool,
    is_comment: bool,
}

const KEYWORDS: &[&str] = &["for", "in", "if", "else", "endif", "endfor"];

fn format_tokens(source: &str) -> String {
    let tokens = tokenize(source);
    let mut raw_lines: Vec<Vec<Token>> = vec![Vec::new()];
    for token in tokens {
        if token.kind == TokenKind::Newline {
            raw_lines.push(Vec::new());
        } else if let Some(line) = raw_lines.last_mut() {
            line.push(token);
        }
    }

    // Open brackets, grouped by the line that opened them.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut lines: Vec<Option<Line>> = Vec::new();
    for (line_number, tokens) in raw_lines.iter().enumerate() {
        if tokens.is_empty() {
            lines.push(None);
            continue;
        }
        let leading_closers = tokens.iter().take_while(|token| is_closer(token.text(source))).count();
        for _ in 0..leading_closers {
            pop_group(&mut groups);
        }
        let indent = groups.len();
        for token in &tokens[leading_closers..] {
            let text = token.text(source);
            if token.kind == TokenKind::Punct && is_opener(text) {
                match groups.last_mut() {
                    Some((line, count)) if *line == line_number => *count += 1,
                    _ => groups.push((line_number, 1)),
                }
            } else if token.kind == TokenKind::Punct && is_closer(text) {
                pop_group(&mut groups);
            }
        }
        let opens = groups.last().is_some_and(|(line, _)| *line == line_number);
        let text = render_line(tokens, source);
        let key_width =
            (tokens.len() >= 3 && matches!(tokens[0].kind, TokenKind::Ident | TokenKind::String) && tokens[1].text(source) == "=")
                .then(|| tokens[0].text(source).chars().count());
        lines.push(Some(Line {
            indent,
            text,
            key_width,
            opens,
            starts_with_closer: leading_closers > 0,
            is_comment: matches!(tokens[0].kind, TokenKind::LineComment | TokenKind::BlockComment),
        }));
    }

    // Blank lines: collapse runs, drop at start/end of file and blocks.
    let mut kept: Vec<Option<Line>> = Vec::new();
    for line in lines {
        match line {
            None => {
                let after_opener = kept.last().and_then(Option::as_ref).is_some_and(|previous| previous.opens);
                if !kept.is_empty() && !matches!(kept.last(), Some(None)) && !after_opener {
                    kept.push(None);
                }
            }
            Some(line) => {
                if line.starts_with_closer && matches!(kept.last(), Some(None)) {
                    kept.pop();
                }
                kept.push(Some(line));
            }
        }
    }
    while matches!(kept.last(), Some(None)) {
        kept.pop();
    }

    // Align `=` in runs of attribute lines at the same level.
    let mut index = 0;
    while index < kept.len() {
        let Some(Some(first)) = kept.get(index) else {
            index += 1;
            continue;
        };
        if first.key_width.is_none() {
            index += 1;
            continue;
        }
        let indent = first.indent;
        let mut end = index;
        let mut width = 0;
        while let Some(Some(line)) = kept.get(end) {
            let Some(key_width) = line.key_width.filter(|_| line.indent == indent && !line.is_comment) else { break };
            width = width.max(key_width);
            end += 1;
            if line.opens {
                break;
            }
        }
        for line in kept[index..end].iter_mut().flatten() {
            if let Some(key_width) = line.key_width {
                if let Some(position) = line.text.find(" = ") {
                    let padding = " ".repeat(width.saturating_sub(key_width));
                    line.text.insert_str(position, &padding);
                }
            }
        }
        index = end.max(index + 1);
    }

    let mut out = String::with_capacity(source.len());
    for line in kept {
        if let Some(line) = line {
            out.push_str(&"  ".repeat(line.indent));
            out.push_str(&line.text);
        }
        out.push('\n');
    }
    out
}

fn pop_group(groups: &mut Vec<(usize, usize)>) {
    if let Some((_, count)) = groups.last_mut() {
        *count -= 1;
        if *count == 0 {
            groups.pop();
        }
    }
}

fn is_opener(text: &str) -> bool {
    matches!(text, "{" | "[" | "(")
}

fn is_closer(text: &str) -> bool {
    matches!(text, "}" | "]" | ")")
}

fn render_line(tokens: &[Token], source: &str) -> String {
    let mut out = String::new();
    for (index, token) in tokens.iter().enumerate() {
        let text = token.text(source);
        if index > 0 && space_between(tokens, index, source) {
            out.push(' ');
        }
        if token.kind == TokenKind::LineComment {
            out.push_str(text.trim_end());
        } else {
            out.push_str(text);
        }
    }
    out
}

/// Whether the token at `index` is a unary operator.
fn is_unary(tokens: &[Token], index: usize, source: &str) -> bool {
    let text = tokens[index].text(source);
    if text == "!" {
        return true;
    }
    if text != "-" {
        return false;
    }
    match index.checked_sub(1).map(|previous| &tokens[previous]) {
        None => true,
        Some(previous) => {
            let previous_text = previous.text(source);
            previous.kind == TokenKind::Punct && !is_closer(previous_text) || KEYWORDS.contains(&previous_text)
        }
    }
}

fn space_between(tokens: &[Token], index: usize, source: &str) -> bool {
    let previous = &tokens[index - 1];
    let next = &tokens[index];
    let (p, n) = (previous.text(source), next.text(source));
    if matches!(next.kind, TokenKind::LineComment | TokenKind::BlockComment) || previous.kind == TokenKind::BlockComment {
        return true;
    }
    if is_unary(tokens, index - 1, source) {
        return false;
    }
    match (p, n) {
        (_, "." | "," | ")" | "]" | "...") => false,
        (".", _) => false,
        ("(" | "[", _) => false,
        ("{", "}") => false,
        (_, "}") | ("{", _) => true,
        (_, "*") if p == "." || p == "[" => false,
        (_, "(") => previous.kind != TokenKind::Ident || KEYWORDS.contains(&p),
        (_, "[") => {
            !(matches!(previous.kind, TokenKind::Ident | TokenKind::String | TokenKind::Number) && !KEYWORDS.contains(&p)
                || p == "]"
                || p == ")")
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_spacing_indentation_alignment_and_keeps_comments() {
        let source = "# top\n\n\nbucket \"b\"{\n\n name=\"x\" # keep me\n      versioning   =true\n  tags = {a=1,bb=[1,2]}\nlifecycle_rule {\nexpire_days=f( 1 ,-2)\n}\n\n}\n\n\n";
        let formatted = format_source(source).unwrap();
        assert_eq!(
            formatted,
            "# top\n\nbucket \"b\" {\n  name       = \"x\" # keep me\n  versioning = true\n  tags       = { a = 1, bb = [1, 2] }\n  lifecycle_rule {\n    expire_days = f(1, -2)\n  }\n}\n"
        );
        assert_eq!(format_source(&formatted).unwrap(), formatted);
    }

    #[test]
    fn unicode_identifiers_stay_whole() {
        assert_eq!(format_source("a=\u{B919}A").unwrap(), "a = \u{B919}A\n");
    }

    #[test]
    fn refuses_files_that_do_not_parse() {
        assert!(format_source("bucket \"b\" {\n name = \n}\n").is_err());
    }
}
