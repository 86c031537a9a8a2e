//! Parsing: source text to [`ast::Body`], through hcl-edit, on every core
//! for large inputs (a module's files, the pieces of a large file).
//!
//! The text first goes through the comma rewrite (see [`crate::lexer`]), then
//! hcl-edit, then a conversion that maps every span back to the user's text.
//! A syntax error becomes one diagnostic for that file; other files are still
//! parsed and checked.

use hcl_edit::expr::{Expression, ObjectKey as HclObjectKey, TraversalOperator};
use hcl_edit::structure::{BlockLabel as HclBlockLabel, Body as HclBody, Structure};
use hcl_edit::template::{Directive, Element, Template};
use hcl_edit::Span as _;

use crate::ast::*;
use crate::diagnostic::{codes, Diagnostic};
use crate::lexer::{rewrite_block_commas, Rewritten};
use crate::parallel::on_every_core;
use crate::source::{FileId, Span};

/// Parses one file. Returns the body when the file is syntactically valid.
pub fn parse_file(file: FileId, text: &str) -> Result<Body, Box<Diagnostic>> {
    if let Some(breach) = crate::lexer::beyond_limits(text) {
        return Err(Box::new(
            Diagnostic::error(codes::LIMIT_EXCEEDED, breach.message)
                .at(Span::new(file, breach.start, breach.end.min(text.len())), "here")
                .with_help(breach.help),
        ));
    }
    let rewritten = rewrite_block_commas(text);
    if rewritten.top_level_breaks.is_empty() {
        parse_whole(file, text, &rewritten)
    } else {
        parse_in_pieces(file, text, &rewritten)
    }
}

/// Parses several files at once, on every core when they are large enough
/// to be worth it; the results are in the order of `files`.
pub fn parse_files(files: &[(FileId, &str)]) -> Vec<Result<Body, Box<Diagnostic>>> {
    let total: usize = files.iter().map(|(_, text)| text.len()).sum();
    if files.len() < 2 || total < crate::lexer::PARSE_CHUNK_BYTES / 4 {
        return files.iter().map(|(file, text)| parse_file(*file, text)).collect();
    }
    on_every_core(files, |(file, text)| parse_file(*file, text))
}

fn parse_whole(file: FileId, text: &str, rewritten: &Rewritten) -> Result<Body, Box<Diagnostic>> {
    match hcl_edit::parser::parse_body(&rewritten.text) {
        Ok(body) => {
            let converter = Converter { file, rewritten, text_len: text.len(), base: 0, offset_hint: Default::default() };
            Ok(converter.body(&body, Span::new(file, 0, text.len())))
        }
        Err(error) => Err(Box::new(syntax_diagnostic(file, text, rewritten, &error, 0))),
    }
}

/// A large file, cut between top-level statements into pieces of about
/// [`crate::lexer::PARSE_CHUNK_BYTES`], each parsed and converted on its
/// own, on every core: hcl-edit's tree of a piece is dropped as soon as it
/// is converted (of a whole 25 MB file it took 300 MB more), and the pieces
/// parse in parallel. The result is the same body as in one piece; a
/// syntax error is the first piece's that has one.
fn parse_in_pieces(file: FileId, text: &str, rewritten: &Rewritten) -> Result<Body, Box<Diagnostic>> {
    let mut bounds = Vec::with_capacity(rewritten.top_level_breaks.len() + 2);
    bounds.push(0);
    bounds.extend(rewritten.top_level_breaks.iter().copied());
    bounds.push(rewritten.text.len());
    let pieces: Vec<(usize, usize)> = bounds.windows(2).map(|pair| (pair[0], pair[1])).collect();
    let parse_piece = |&(start, end): &(usize, usize)| -> Result<Body, Box<Diagnostic>> {
        match hcl_edit::parser::parse_body(&rewritten.text[start..end]) {
            Ok(body) => {
                let converter = Converter { file, rewritten, text_len: text.len(), base: start, offset_hint: Default::default() };
                Ok(converter.body(&body, Span::new(file, 0, text.len())))
            }
            Err(error) => Err(Box::new(syntax_diagnostic(file, text, rewritten, &error, start))),
        }
    };
    let parsed = on_every_core(&pieces, parse_piece);
    let mut whole = Body { attributes: Vec::new(), blocks: Vec::new(), span: Span::new(file, 0, text.len()) };
    for body in parsed {
        let body = body?;
        whole.attributes.extend(body.attributes);
        whole.blocks.extend(body.blocks);
    }
    whole.attributes.shrink_to_fit();
    whole.blocks.shrink_to_fit();
    Ok(whole)
}

/// `base`: where in the rewritten text the parsed piece starts.
fn syntax_diagnostic(file: FileId, text: &str, rewritten: &Rewritten, error: &hcl_edit::parser::Error, base: usize) -> Diagnostic {
    let mut offset = rewritten.original_offset(base + error.location().offset()).min(text.len());
    // The parser may stop inside a multi-byte character.
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let token_end = text[offset..]
        .char_indices()
        .find(|(_, character)| !(character.is_alphanumeric() || *character == '_' || *character == '-'))
        .map_or(text.len(), |(index, _)| offset + index);
    let end =
        if token_end > offset { token_end } else { (offset + text[offset..].chars().next().map_or(0, char::len_utf8)).min(text.len()) };
    let span = Span::new(file, offset, end);
    let message = error.message();
    if message.contains("redefined attribute") {
        let name = &text[offset..token_end];
        let mut diagnostic = Diagnostic::error(codes::DUPLICATE_ATTRIBUTE, format!("attribute `{name}` is set twice"))
            .at(span, "set again here")
            .with_help(format!("remove one of the two `{name}` assignments"));
        if let Some(first) = earlier_assignment(text, offset, name) {
            diagnostic = diagnostic.with_secondary(Span::new(file, first, first + name.len()), "first set here");
        }
        return diagnostic;
    }
    let (summary, help) = describe_syntax_error(message, &text[offset..end]);
    Diagnostic::error(codes::SYNTAX_ERROR, summary).at(span, "unexpected here").with_help(help)
}

/// Finds the previous line that assigns `name`, for the "first set here" label.
fn earlier_assignment(text: &str, before: usize, name: &str) -> Option<usize> {
    let mut line_end = text[..before].rfind('\n')?;
    loop {
        let line_start = text[..line_end].rfind('\n').map_or(0, |index| index + 1);
        let line = &text[line_start..line_end];
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(name) {
            if rest.trim_start().starts_with('=') && !rest.trim_start().starts_with("==") {
                return Some(line_start + (line.len() - trimmed.len()));
            }
        }
        if line_start == 0 {
            return None;
        }
        line_end = line_start - 1;
    }
}

fn describe_syntax_error(message: &str, found: &str) -> (String, String) {
    let found_text = if found.trim().is_empty() { "end of line".to_owned() } else { format!("`{}`", found.trim()) };
    let help = if message.contains("invalid block body") {
        "a block body holds one attribute or block per line; on one line, separate attributes with commas: `resources { cpu = 2, gpus = 1 }`"
    } else if message.contains("invalid expression") {
        "an attribute needs a value after `=`: a string, number, bool, list, object or reference"
    } else if message.contains("expected `\"`") || message.contains("string") {
        "close the string with a matching `\"`"
    } else if message.contains("expected newline or eof") {
        "put each attribute and block on its own line"
    } else {
        "check the syntax near this point; `mlops fmt` can only format files that parse"
    };
    let summary = message.split(';').next().unwrap_or(message).trim().to_owned();
    let summary = if summary.is_empty() { "invalid syntax".to_owned() } else { summary };
    (format!("{summary}: found {found_text}"), help.to_owned())
}

struct Converter<'a> {
    file: FileId,
    rewritten: &'a Rewritten,
    text_len: usize,
    /// Where the parsed piece starts in the rewritten text.
    base: usize,
    /// Where the last span's offset was found among the insertions.
    offset_hint: std::cell::Cell<usize>,
}

impl Converter<'_> {
    fn span(&self, range: Option<std::ops::Range<usize>>) -> Span {
        match range {
            Some(range) => Span::new(
                self.file,
                self.rewritten.original_offset_near(self.base + range.start, &self.offset_hint).min(self.text_len),
                self.rewritten.original_offset_near(self.base + range.end, &self.offset_hint).min(self.text_len),
            ),
            None => Span::new(self.file, 0, 0),
        }
    }

    fn body(&self, body: &HclBody, span: Span) -> Body {
        // Sized exactly: the tree of a large configuration is kept whole
        // while it is checked, and doubling growth left a third unused.
        let attribute_count = body.iter().filter(|structure| matches!(structure, Structure::Attribute(_))).count();
        let mut attributes = Vec::with_capacity(attribute_count);
        let mut blocks = Vec::with_capacity(body.len() - attribute_count);
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attribute) => attributes.push(Attribute {
                    name: Ident { name: attribute.key.as_str().to_owned(), span: self.span(attribute.key.span()) },
                    value: self.expr(&attribute.value),
                    span: self.span(attribute.span()),
                }),
                Structure::Block(block) => {
                    let block_span = self.span(block.span());
                    blocks.push(Block {
                        kind: Ident { name: block.ident.as_str().to_owned(), span: self.span(block.ident.span()) },
                        labels: block
                            .labels
                            .iter()
                            .map(|label| BlockLabel {
                                value: label.as_str().to_owned(),
                                span: match label {
                                    HclBlockLabel::Ident(ident) => self.span(ident.span()),
                                    HclBlockLabel::String(string) => self.span(string.span()),
                                },
                            })
                            .collect(),
                        body: self.body(&block.body, block_span),
                        span: block_span,
                    });
                }
            }
        }
        Body { attributes, blocks, span }
    }

    fn expr(&self, expression: &Expression) -> Expr {
        let span = self.span(expression.span());
        let kind = match expression {
            Expression::Null(_) => ExprKind::Null,
            Expression::Bool(value) => ExprKind::Bool(*value.value()),
            Expression::Number(number) => ExprKind::Number(number.value().as_f64().unwrap_or(f64::NAN)),
            Expression::String(string) => ExprKind::String(string.value().clone()),
            Expression::Array(array) => ExprKind::List(array.iter().map(|item| self.expr(item)).collect()),
            Expression::Object(object) => ExprKind::Object(
                object
                    .iter()
                    .map(|(key, value)| ObjectItem {
                        key: match key {
                            HclObjectKey::Ident(ident) => {
                                ObjectKey::Ident(Ident { name: ident.as_str().to_owned(), span: self.span(ident.span()) })
                            }
                            HclObjectKey::Expression(expression) => ObjectKey::Expr(self.expr(expression)),
                        },
                        value: self.expr(value.expr()),
                    })
                    .collect(),
            ),
            Expression::StringTemplate(template) => self.template_expr(template),
            Expression::HeredocTemplate(heredoc) => self.template_expr(&heredoc.template),
            Expression::Parenthesis(inner) => ExprKind::Parenthesis(Box::new(self.expr(inner.inner()))),
            Expression::Variable(ident) => ExprKind::Variable(ident.as_str().to_owned()),
            Expression::Conditional(conditional) => ExprKind::Conditional {
                condition: Box::new(self.expr(&conditional.cond_expr)),
                then: Box::new(self.expr(&conditional.true_expr)),
                otherwise: Box::new(self.expr(&conditional.false_expr)),
            },
            Expression::FuncCall(call) => {
                let mut name = call.name.name.as_str().to_owned();
                let mut name_span = self.span(call.name.name.span());
                if let Some(first) = call.name.namespace.first() {
                    let namespace: Vec<&str> = call.name.namespace.iter().map(|part| part.as_str()).collect();
                    name = format!("{}::{}", namespace.join("::"), name);
                    name_span = self.span(first.span()).to(name_span);
                }
                ExprKind::Call(Box::new(crate::ast::Call {
                    name: Ident { name, span: name_span },
                    args: call.args.iter().map(|arg| self.expr(arg)).collect(),
                    expand_final: call.args.expand_final(),
                }))
            }
            Expression::Traversal(traversal) => ExprKind::Traversal {
                root: Box::new(self.expr(&traversal.expr)),
                steps: traversal
                    .operators
                    .iter()
                    .map(|operator| {
                        let step_span = self.span(operator.span());
                        let kind = match operator.value() {
                            TraversalOperator::GetAttr(ident) => StepKind::GetAttr(ident.as_str().to_owned()),
                            TraversalOperator::Index(index) => StepKind::Index(self.expr(index)),
                            TraversalOperator::LegacyIndex(index) => {
                                StepKind::Index(Expr { kind: ExprKind::Number(*index.value() as f64), span: self.span(index.span()) })
                            }
                            TraversalOperator::AttrSplat(_) => StepKind::AttrSplat,
                            TraversalOperator::FullSplat(_) => StepKind::FullSplat,
                        };
                        // Point `.name` steps at the name, not the dot.
                        let step_span = match &kind {
                            StepKind::GetAttr(name) if step_span.end as usize >= name.len() => {
                                Span { start: step_span.end - name.len() as u32, ..step_span }
                            }
                            _ => step_span,
                        };
                        TraversalStep { kind, span: step_span }
                    })
                    .collect(),
            },
            Expression::UnaryOp(operation) => {
                ExprKind::Unary { operator: *operation.operator.value(), operand: Box::new(self.expr(&operation.expr)) }
            }
            Expression::BinaryOp(operation) => ExprKind::Binary {
                operator: *operation.operator.value(),
                left: Box::new(self.expr(&operation.lhs_expr)),
                right: Box::new(self.expr(&operation.rhs_expr)),
            },
            Expression::ForExpr(for_expr) => ExprKind::For(Box::new(ForExpr {
                key_var: for_expr.intro.key_var.as_ref().map(|ident| self.ident(ident)),
                value_var: self.ident(&for_expr.intro.value_var),
                collection: self.expr(&for_expr.intro.collection_expr),
                key_expr: for_expr.key_expr.as_ref().map(|key| self.expr(key)),
                value_expr: self.expr(&for_expr.value_expr),
                condition: for_expr.cond.as_ref().map(|condition| self.expr(&condition.expr)),
                grouping: for_expr.grouping,
            })),
        };
        Expr { kind, span }
    }

    fn ident(&self, ident: &hcl_edit::Decorated<hcl_edit::Ident>) -> Ident {
        Ident { name: ident.as_str().to_owned(), span: self.span(ident.span()) }
    }

    fn template_expr(&self, template: &Template) -> ExprKind {
        let parts = self.template(template);
        match parts.as_slice() {
            [] => ExprKind::String(String::new()),
            [TemplatePart::Literal(text)] => ExprKind::String(text.clone()),
            _ => ExprKind::Template(parts),
        }
    }

    fn template(&self, template: &Template) -> Vec<TemplatePart> {
        template
            .iter()
            .map(|element| match element {
                Element::Literal(literal) => TemplatePart::Literal(literal.value().clone()),
                Element::Interpolation(interpolation) => TemplatePart::Interpolation(self.expr(&interpolation.expr)),
                Element::Directive(directive) => match directive.as_ref() {
                    Directive::If(if_directive) => TemplatePart::If {
                        condition: self.expr(&if_directive.if_expr.cond_expr),
                        then: self.template(&if_directive.if_expr.template),
                        otherwise: if_directive.else_expr.as_ref().map(|otherwise| self.template(&otherwise.template)).unwrap_or_default(),
                    },
                    Directive::For(for_directive) => TemplatePart::For {
                        key_var: for_directive.for_expr.key_var.as_ref().map(|ident| self.ident(ident)),
                        value_var: self.ident(&for_directive.for_expr.value_var),
                        collection: self.expr(&for_directive.for_expr.collection_expr),
                        body: self.template(&for_directive.for_expr.template),
                    },
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration of `blocks` blocks, some with commas on one line (so
    /// that the comma rewrite inserts bytes before the cuts), comments and
    /// a heredoc.
    fn large(blocks: usize) -> String {
        let mut text = String::from("# generated\n");
        for index in 0..blocks {
            text.push_str(&format!(
                "training \"t{index}\" {{\n  command = [\"python3\", \"train.py\"] # {{ not a brace\n  resources {{ cpu = 2, gpus = 0 }}\n  env = {{ NOTE = <<EOT\n}} {{\nEOT\n  }}\n}}\n\n"
            ));
        }
        text
    }

    #[test]
    fn a_large_file_parses_in_pieces_to_the_same_tree() {
        let text = large(16_000);
        let rewritten = rewrite_block_commas(&text);
        assert!(rewritten.top_level_breaks.len() >= 2, "{} bytes, {:?}", text.len(), rewritten.top_level_breaks);
        for &cut in &rewritten.top_level_breaks {
            assert_eq!(&rewritten.text[cut - 2..cut], "}\n", "a cut falls between two statements");
        }
        let file = FileId(3);
        let whole = parse_whole(file, &text, &rewritten).expect("parses whole");
        let pieces = parse_file(file, &text).expect("parses in pieces");
        assert_eq!(pieces.blocks.len(), 16_000);
        assert!(pieces == whole, "the pieces give another tree");
        let last = pieces.blocks.last().unwrap();
        assert_eq!(&text[last.kind.span.range()], "training");
        assert_eq!(&text[last.body.blocks[0].body.attributes[1].span.range()], "gpus = 0");
    }

    #[test]
    fn a_syntax_error_in_a_later_piece_points_at_the_users_text() {
        let mut text = large(9_000);
        let bad = text.len() + 1;
        text.push_str("\nserving \"x\" {\n  model = = 1\n}\n");
        let error = parse_file(FileId(0), &text).expect_err("a syntax error");
        let span = error.primary.as_ref().unwrap().span;
        assert!(span.start as usize > bad, "{error:?}");
        assert_eq!(&text[span.start as usize..span.start as usize + 1], "=", "{error:?}");
    }
}
