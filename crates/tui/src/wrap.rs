//! Lines cut to the screen's width. The transcript wraps each cell itself,
//! once per width, so it knows every cell's height without laying out the
//! whole transcript on every frame (a 10,000-line transcript draws only the
//! lines on screen).

use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// `lines`, each cut into lines at most `width` columns wide: at the last
/// space that fits, or inside a word longer than the width. Styles carry
/// over; a continuation keeps the line's own style.
pub fn wrap(lines: &[Line<'static>], width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width.max(1));
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        wrap_line(line, width, &mut out);
    }
    out
}

/// One styled character.
#[derive(Clone, Copy)]
struct Glyph {
    ch: char,
    width: usize,
    span: usize,
}

fn wrap_line(line: &Line<'static>, width: usize, out: &mut Vec<Line<'static>>) {
    let glyphs: Vec<Glyph> = line
        .spans
        .iter()
        .enumerate()
        .flat_map(|(span, s)| {
            s.content
                .chars()
                .filter(|c| *c != '\n')
                .map(move |ch| Glyph {
                    ch,
                    width: if ch == '\t' {
                        4
                    } else {
                        ch.width().unwrap_or(0)
                    },
                    span,
                })
        })
        .collect();
    let total: usize = glyphs.iter().map(|g| g.width).sum();
    if total <= width {
        out.push(line.clone());
        return;
    }

    let mut start = 0;
    while start < glyphs.len() {
        let mut used = 0;
        let mut end = start;
        let mut last_space = None;
        while end < glyphs.len() && used + glyphs[end].width <= width {
            if glyphs[end].ch == ' ' {
                last_space = Some(end);
            }
            used += glyphs[end].width;
            end += 1;
        }
        if end == start {
            // A glyph wider than the whole width: put it alone on a line.
            end = start + 1;
        } else if end < glyphs.len()
            && let Some(space) = last_space.filter(|s| *s > start)
        {
            end = space + 1;
        }
        out.push(assemble(line, &glyphs[start..end]));
        start = end;
    }
}

/// The glyphs back into spans with their styles.
fn assemble(line: &Line<'static>, glyphs: &[Glyph]) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for glyph in glyphs {
        match &mut current {
            Some((span, text)) if *span == glyph.span => text.push(glyph.ch),
            _ => {
                if let Some((span, text)) = current.take() {
                    spans.push(Span::styled(text, line.spans[span].style));
                }
                current = Some((glyph.span, glyph.ch.to_string()));
            }
        }
    }
    if let Some((span, text)) = current {
        spans.push(Span::styled(text, line.spans[span].style));
    }
    let mut wrapped = Line::from(spans);
    wrapped.style = line.style;
    wrapped
}

/// The width of `text` in columns.
pub fn text_width(text: &str) -> usize {
    text.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// `text` cut to at most `width` columns, with `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text_width(text) <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in text.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        used += w;
        out.push(ch);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line<'static>]) -> Vec<String> {
        lines.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn breaks_at_the_last_space_that_fits() {
        let wrapped = wrap(&[Line::from("the quick brown fox jumps")], 10);
        assert_eq!(texts(&wrapped), ["the quick ", "brown fox ", "jumps"]);
    }

    #[test]
    fn cuts_a_word_longer_than_the_width() {
        let wrapped = wrap(&[Line::from("abcdefghijkl")], 5);
        assert_eq!(texts(&wrapped), ["abcde", "fghij", "kl"]);
    }

    #[test]
    fn keeps_styles_across_the_cut() {
        let line = Line::from(vec![
            Span::raw("plain "),
            Span::styled("bold words", ratatui::style::Style::new().bold()),
        ]);
        let wrapped = wrap(&[line], 8);
        assert_eq!(texts(&wrapped), ["plain ", "bold ", "words"]);
        assert!(
            wrapped[2].spans[0]
                .style
                .add_modifier
                .contains(ratatui::style::Modifier::BOLD)
        );
    }

    #[test]
    fn wide_characters_count_twice() {
        let wrapped = wrap(&[Line::from("日本語テキスト")], 6);
        assert_eq!(texts(&wrapped), ["日本語", "テキス", "ト"]);
    }

    #[test]
    fn truncates_with_an_ellipsis() {
        assert_eq!(truncate("hello world", 6), "hello…");
        assert_eq!(truncate("short", 6), "short");
    }
}
