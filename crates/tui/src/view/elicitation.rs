//! An MCP server's question over the screen: its words, one row per field
//! (the one being edited marked, with the cursor in it), why the last Enter
//! did not send the answer, and the keys. A field's row is never wrapped, so
//! the cursor's place is known; a long value shows its end.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};

use super::DIM;
use crate::app::{Elicitation, Input, TextKind};
use crate::clean::clean;
use crate::wrap::{text_width, truncate, wrap};

/// The widest a label column gets.
const LABEL_COLUMNS: usize = 24;

/// Draw `form` in the middle of `area`; `waiting` more requests wait behind it.
pub fn draw(frame: &mut Frame<'_>, form: &Elicitation, waiting: usize, area: Rect) {
    let width = area.width.saturating_sub(8).clamp(10, 96).min(area.width);
    let inner = usize::from(width.saturating_sub(4));
    let bold = Style::new().add_modifier(Modifier::BOLD);

    let mut lines = wrap(
        &clean(&form.message)
            .lines()
            .map(|l| Line::styled(l.to_owned(), bold))
            .collect::<Vec<_>>(),
        u16::try_from(inner).unwrap_or(u16::MAX),
    );
    lines.push(Line::default());

    let label_width = form
        .fields
        .iter()
        .map(|f| text_width(&f.label))
        .max()
        .unwrap_or(0)
        .min(LABEL_COLUMNS);
    // "› " + label + "*" + " "
    let value_column = 2 + label_width + 2;
    let room = inner.saturating_sub(value_column).max(4);
    let mut cursor = None;
    if form.fields.is_empty() {
        lines.push(Line::styled("(nothing to fill in)", DIM));
    }
    for (index, field) in form.fields.iter().enumerate() {
        let focused = index == form.focus;
        let label = truncate(&field.label, label_width);
        let pad = " ".repeat(label_width.saturating_sub(text_width(&label)));
        let mut row = vec![
            if focused {
                Span::styled(
                    "› ",
                    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
                )
            } else {
                Span::raw("  ")
            },
            Span::styled(label, if focused { bold } else { Style::new() }),
            Span::styled(
                if field.required { "*" } else { " " },
                Style::new().fg(Color::Red),
            ),
            Span::raw(format!("{pad} ")),
        ];
        match &field.input {
            Input::Text { text, kind } => {
                if text.is_empty() && !focused {
                    let hint = match kind {
                        TextKind::String => "text",
                        TextKind::Number => "a number",
                        TextKind::Integer => "a whole number",
                    };
                    row.push(Span::styled(hint, DIM));
                } else {
                    let shown = tail(text, room.saturating_sub(1));
                    if focused {
                        cursor = Some((lines.len(), value_column + text_width(&shown)));
                    }
                    row.push(Span::styled(shown, bold));
                }
            }
            Input::Toggle(on) => {
                row.push(Span::styled(if *on { "[x] yes" } else { "[ ] no" }, bold));
                if focused {
                    row.push(Span::styled("  space toggles", DIM));
                }
            }
            Input::Choice { options, selected } => {
                match selected.and_then(|i| options.get(i)) {
                    Some((_, name)) => row.push(Span::styled(format!("‹ {name} ›"), bold)),
                    None => row.push(Span::styled("‹ choose ›", DIM)),
                }
                if focused {
                    row.push(Span::styled(
                        format!("  ←/→ chooses ({} values)", options.len()),
                        DIM,
                    ));
                }
            }
        }
        lines.push(cut_line(row, inner));
        if let Some(description) = &field.description {
            let indent = " ".repeat(value_column);
            lines.push(Line::styled(
                truncate(&format!("{indent}{description}"), inner),
                DIM,
            ));
        }
    }
    lines.push(Line::default());
    if let Some(problem) = &form.problem {
        lines.extend(wrap(
            &[Line::styled(
                format!("✗ {}", clean(problem)),
                Style::new().fg(Color::Red),
            )],
            u16::try_from(inner).unwrap_or(u16::MAX),
        ));
    }
    let keys = [
        ("enter", " accept   "),
        ("tab", " next field   "),
        ("shift+tab", " back   "),
        ("ctrl+d", " decline   "),
        ("esc", " cancel"),
    ];
    let mut footer = Vec::new();
    for (key, what) in keys {
        footer.push(Span::styled(key, bold.fg(Color::Cyan)));
        footer.push(Span::raw(what));
    }
    lines.extend(wrap(
        &[Line::from(footer)],
        u16::try_from(inner).unwrap_or(u16::MAX),
    ));
    if waiting > 0 {
        lines.push(Line::styled(format!("{waiting} more waiting"), DIM));
    }

    let mut rect = super::centred(area, lines.len());
    rect.width = width;
    rect.x = area.x + (area.width - width) / 2;
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(Style::new().fg(Color::Cyan))
        .padding(ratatui::widgets::Padding::horizontal(1))
        .title(Span::styled(
            format!(" {} asks ", truncate(&clean(&form.server), inner / 2)),
            bold,
        ));
    frame.render_widget(Paragraph::new(lines).block(block), rect);
    if let Some((row, column)) = cursor {
        let y = rect.y + 1 + u16::try_from(row).unwrap_or(u16::MAX);
        let x = rect.x + 2 + u16::try_from(column).unwrap_or(u16::MAX);
        if y < rect.bottom().saturating_sub(1) && x < rect.right() {
            frame.set_cursor_position((x, y));
        }
    }
}

/// The end of `text` that fits in `width` columns, after "…" if cut.
fn tail(text: &str, width: usize) -> String {
    if text_width(text) <= width {
        return text.to_owned();
    }
    let mut kept: Vec<char> = Vec::new();
    let mut used = 1;
    for ch in text.chars().rev() {
        let w = unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0);
        if used + w > width {
            break;
        }
        used += w;
        kept.push(ch);
    }
    std::iter::once('…').chain(kept.into_iter().rev()).collect()
}

/// `spans` cut to `width` columns, on one row.
fn cut_line(spans: Vec<Span<'static>>, width: usize) -> Line<'static> {
    let mut used = 0;
    let mut out = Vec::new();
    for span in spans {
        let w = text_width(&span.content);
        if used + w <= width {
            used += w;
            out.push(span);
            continue;
        }
        let left = width.saturating_sub(used);
        if left > 0 {
            out.push(Span::styled(truncate(&span.content, left), span.style));
        }
        break;
    }
    Line::from(out)
}
