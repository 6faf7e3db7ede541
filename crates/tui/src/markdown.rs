//! The model's answer, rendered: markdown to styled lines (pulldown-cmark's
//! events, folded into ratatui lines). Re-rendered from the whole text while
//! it streams, so a half-written code block shows as code at once.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::highlight::highlight_line;

/// `text` as lines, unwrapped.
pub fn render(text: &str) -> Vec<Line<'static>> {
    let mut writer = Writer::default();
    for event in Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH) {
        writer.event(event);
    }
    writer.finish()
}

#[derive(Default)]
struct Writer {
    lines: Vec<Line<'static>>,
    current: Vec<Span<'static>>,
    styles: Vec<Style>,
    /// Per open list: the next number, or `None` for bullets.
    lists: Vec<Option<u64>>,
    /// The prefix of the item being written, until its first line is out.
    item_prefix: Option<String>,
    quote_depth: usize,
    code: Option<String>,
    link: Option<String>,
    /// A blank line is due before the next block.
    gap: bool,
}

impl Writer {
    fn style(&self) -> Style {
        self.styles.last().copied().unwrap_or_default()
    }

    fn push_style(&mut self, add: Style) {
        let style = self.style().patch(add);
        self.styles.push(style);
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => {
                if let Some(language) = &self.code {
                    let language = language.clone();
                    for line in text.lines() {
                        let mut spans = vec![Span::raw("  ")];
                        spans.extend(highlight_line(&language, line));
                        self.lines.push(Line::from(spans));
                    }
                } else {
                    let style = self.style();
                    self.current.push(Span::styled(text.into_string(), style));
                }
            }
            Event::Code(code) => {
                let style = self.style().fg(Color::Cyan);
                self.current.push(Span::styled(code.into_string(), style));
            }
            Event::SoftBreak => self.current.push(Span::raw(" ")),
            Event::HardBreak => self.flush(),
            Event::Rule => {
                self.block_start();
                self.lines
                    .push(Line::styled("───", Style::new().fg(Color::DarkGray)));
                self.gap = true;
            }
            Event::TaskListMarker(done) => {
                self.current
                    .push(Span::raw(if done { "[x] " } else { "[ ] " }));
            }
            Event::Html(html) | Event::InlineHtml(html) => {
                let style = self.style();
                self.current
                    .push(Span::styled(html.trim_end_matches('\n').to_owned(), style));
            }
            Event::FootnoteReference(name) => self.current.push(Span::raw(format!("[{name}]"))),
            Event::InlineMath(math) | Event::DisplayMath(math) => {
                self.current.push(Span::raw(math.into_string()));
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => self.block_start(),
            Tag::Heading { level, .. } => {
                self.block_start();
                let mut style = Style::new().add_modifier(Modifier::BOLD);
                if level == HeadingLevel::H1 {
                    style = style.add_modifier(Modifier::UNDERLINED);
                }
                self.push_style(style);
            }
            Tag::BlockQuote(_) => {
                self.block_start();
                self.quote_depth += 1;
                self.push_style(Style::new().fg(Color::Green));
            }
            Tag::CodeBlock(kind) => {
                self.block_start();
                self.code = Some(match kind {
                    CodeBlockKind::Fenced(info) => info.into_string(),
                    CodeBlockKind::Indented => String::new(),
                });
            }
            Tag::List(first) => {
                if self.lists.is_empty() {
                    self.block_start();
                } else {
                    self.flush();
                }
                self.lists.push(first);
            }
            Tag::Item => {
                self.flush();
                let depth = self.lists.len().saturating_sub(1);
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let marker = format!("{n}. ");
                        *n += 1;
                        marker
                    }
                    _ => "- ".to_owned(),
                };
                self.item_prefix = Some(format!("{}{marker}", "  ".repeat(depth)));
            }
            Tag::Emphasis => self.push_style(Style::new().add_modifier(Modifier::ITALIC)),
            Tag::Strong => self.push_style(Style::new().add_modifier(Modifier::BOLD)),
            Tag::Strikethrough => self.push_style(Style::new().add_modifier(Modifier::CROSSED_OUT)),
            Tag::Link { dest_url, .. } => {
                self.link = Some(dest_url.into_string());
                self.push_style(Style::new().add_modifier(Modifier::UNDERLINED));
            }
            Tag::Image { dest_url, .. } => {
                self.current
                    .push(Span::raw(format!("[image: {dest_url}] ")));
            }
            Tag::HtmlBlock
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::Table(_)
            | Tag::TableHead
            | Tag::TableRow
            | Tag::TableCell
            | Tag::Superscript
            | Tag::Subscript
            | Tag::MetadataBlock(_) => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => {
                self.flush();
                self.gap = true;
            }
            TagEnd::Heading(_) => {
                self.flush();
                self.styles.pop();
                self.gap = true;
            }
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.quote_depth = self.quote_depth.saturating_sub(1);
                self.styles.pop();
                self.gap = true;
            }
            TagEnd::CodeBlock => {
                self.code = None;
                self.gap = true;
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
                if self.lists.is_empty() {
                    self.gap = true;
                }
            }
            TagEnd::Item => self.flush(),
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => {
                self.styles.pop();
            }
            TagEnd::Link => {
                self.styles.pop();
                if let Some(url) = self.link.take() {
                    self.current.push(Span::styled(
                        format!(" ({url})"),
                        Style::new().fg(Color::DarkGray),
                    ));
                }
            }
            TagEnd::HtmlBlock
            | TagEnd::Image
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::Table
            | TagEnd::TableHead
            | TagEnd::TableRow
            | TagEnd::TableCell
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::MetadataBlock(_) => self.flush(),
        }
    }

    /// A new block: the blank line owed by the one before.
    fn block_start(&mut self) {
        self.flush();
        if self.gap && !self.lines.is_empty() && self.lists.is_empty() {
            self.lines.push(Line::default());
        }
        self.gap = false;
    }

    /// The line being written, out.
    fn flush(&mut self) {
        if self.current.is_empty() && self.item_prefix.is_none() {
            return;
        }
        let mut spans = Vec::new();
        if self.quote_depth > 0 {
            spans.push(Span::styled(
                "▌ ".repeat(self.quote_depth),
                Style::new().fg(Color::Green),
            ));
        }
        match self.item_prefix.take() {
            Some(prefix) => spans.push(Span::styled(prefix, Style::new().fg(Color::Cyan))),
            None if !self.lists.is_empty() => {
                spans.push(Span::raw("  ".repeat(self.lists.len())));
            }
            None => {}
        }
        spans.append(&mut self.current);
        self.lines.push(Line::from(spans));
    }

    fn finish(mut self) -> Vec<Line<'static>> {
        self.flush();
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        render(text).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn paragraphs_lists_and_code() {
        let lines = texts(
            "# Title\n\nSome *text* and `code`.\n\n- one\n- two\n\n```rust\nfn main() {}\n```\n",
        );
        assert_eq!(
            lines,
            [
                "Title",
                "",
                "Some text and code.",
                "",
                "- one",
                "- two",
                "",
                "  fn main() {}"
            ]
        );
    }

    #[test]
    fn numbered_and_nested_lists() {
        let lines = texts("1. first\n2. second\n   - inner\n");
        assert_eq!(lines, ["1. first", "2. second", "  - inner"]);
    }

    #[test]
    fn an_unclosed_code_block_streams_as_code() {
        let lines = render("```python\nprint('hi')\n");
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0]
                .spans
                .iter()
                .any(|s| s.style.fg == Some(Color::Green))
        );
    }

    #[test]
    fn links_show_their_address() {
        assert_eq!(
            texts("[docs](https://example.com)"),
            ["docs (https://example.com)"]
        );
    }
}
