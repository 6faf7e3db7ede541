//! The pager (Ctrl+T, `/diff`): lines to scroll through, full screen.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::Pager;
use crate::clean::clean;
use crate::wrap::wrap;

/// A unified diff as coloured lines.
pub fn diff_lines(diff: &str) -> Vec<Line<'static>> {
    clean(diff)
        .lines()
        .map(|line| Line::styled(line.to_owned(), crate::cell::diff_style(line)))
        .collect()
}

/// Draw `pager` over `area`; it keeps its place within the lines.
pub fn draw(frame: &mut Frame<'_>, area: Rect, pager: &mut Pager) {
    let body = Rect {
        y: area.y + 1,
        height: area.height.saturating_sub(2),
        ..area
    };
    if pager.wrapped.as_ref().is_none_or(|(w, _)| *w != body.width) {
        pager.wrapped = Some((body.width, wrap(&pager.lines, body.width)));
    }
    let lines = pager.wrapped.as_ref().map_or(&[][..], |(_, l)| l);
    let height = usize::from(body.height);
    let last_top = lines.len().saturating_sub(height);
    if pager.at_end {
        pager.top = last_top;
        pager.at_end = false;
    }
    pager.top = pager.top.min(last_top);
    let shown: Vec<Line<'static>> = lines.iter().skip(pager.top).take(height).cloned().collect();
    let title = Line::from(vec![
        Span::styled(
            format!(" {} ", pager.title),
            Style::new().add_modifier(Modifier::REVERSED),
        ),
        Span::styled(
            format!(
                "  lines {}–{} of {}",
                pager.top + 1,
                pager.top + shown.len(),
                lines.len()
            ),
            Style::new().fg(Color::DarkGray),
        ),
    ]);
    frame.render_widget(Paragraph::new(title), Rect { height: 1, ..area });
    frame.render_widget(Paragraph::new(shown), body);
    let footer = Line::styled(
        " ↑/↓ line · pgup/pgdn page · g/G start/end · q close",
        Style::new().fg(Color::DarkGray),
    );
    frame.render_widget(
        Paragraph::new(footer),
        Rect {
            y: area.y + area.height.saturating_sub(1),
            height: 1,
            ..area
        },
    );
}
