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
    width: u8,
    span: u32,
}

/// Greedy wrapping, one character at a time: only the line being filled is
/// held as glyphs (at most `width` of them), so a paragraph of any length
/// costs its output, not a copy of itself per character.
fn wrap_line(line: &Line<'static>, width: usize, out: &mut Vec<Line<'static>>) {
    let total: usize = line
        .spans
        .iter()
        .flat_map(|s| s.content.chars())
        .map(glyph_width)
        .sum();
    if total <= width {
        out.push(line.clone());
        return;
    }

    let mut current: Vec<Glyph> = Vec::with_capacity(width + 1);
    let mut used = 0;
    for (span, s) in line.spans.iter().enumerate() {
        for ch in s.content.chars().filter(|c| *c != '\n') {
            let glyph = Glyph {
                ch,
                width: u8::try_from(glyph_width(ch)).unwrap_or(u8::MAX),
                span: u32::try_from(span).unwrap_or(u32::MAX),
            };
            if used + usize::from(glyph.width) > width && !current.is_empty() {
                // Break after the last space that fits, or inside the word.
                let cut = current
                    .iter()
                    .rposition(|g| g.ch == ' ')
                    .filter(|at| *at > 0)
                    .map_or(current.len(), |at| at + 1);
                out.push(assemble(line, &current[..cut]));
                current.drain(..cut);
                used = current.iter().map(|g| usize::from(g.width)).sum();
            }
            used += usize::from(glyph.width);
            current.push(glyph);
        }
    }
    if !current.is_empty() {
        out.push(assemble(line, &current));
    }
}

fn glyph_width(ch: char) -> usize {
    if ch == '\t' {
        4
    } else if ch == '\n' {
        0
    } else {
        ch.width().unwrap_or(0)
    }
}

/// The glyphs back into spans with their styles.
fn assemble(line: &Line<'static>, glyphs: &[Glyph]) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for glyph in glyphs {
        match &mut current {
            Some((span, text)) if *span == glyph.span as usize => text.push(glyph.ch),
            _ => {
                if let Some((span, text)) = current.take() {
                    spans.push(Span::styled(text, line.spans[span].style));
                }
                current = Some((glyph.span as usize, glyph.ch.to_string()));
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
