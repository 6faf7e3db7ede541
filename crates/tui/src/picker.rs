//! The session picker (`tiller resume`, `/resume`): newest first, with the
//! first prompt, the folder and how the last turn ended.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::Picker;
use crate::clean::clean;
use crate::wrap::truncate;

/// Below this width the picker shows only the age and the first prompt.
const NARROW_BELOW: usize = 80;

/// "just now", "5m ago", "3h ago", "2d ago".
pub fn age(updated_at: i64, now: i64) -> String {
    let seconds = (now - updated_at).max(0);
    match seconds {
        0..60 => "just now".to_owned(),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86_400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}

/// Draw the picker over `area`; `now` in Unix seconds.
pub fn draw(frame: &mut Frame<'_>, area: Rect, picker: &Picker, now: i64) {
    let dim = Style::new().fg(Color::DarkGray);
    let mut lines = vec![
        Line::from(vec![
            Span::styled(
                " Resume a session ",
                Style::new().add_modifier(Modifier::REVERSED),
            ),
            Span::styled(
                "  newest first · type to filter · enter opens · esc starts a new one",
                dim,
            ),
        ]),
        Line::from(Span::styled(format!(" filter: {}", picker.filter), dim)),
    ];
    let width = usize::from(area.width);
    match &picker.rows {
        None => lines.push(Line::styled("  loading sessions…", dim)),
        Some(_) if picker.shown().is_empty() => {
            lines.push(Line::styled("  no saved sessions match", dim));
        }
        Some(_) => {
            // Narrow: the first prompt matters more than the ending and folder.
            let wide = width >= NARROW_BELOW;
            let header = if wide {
                format!(
                    "  {:<10} {:<14} {:<24} {}",
                    "updated", "ended", "folder", "first prompt"
                )
            } else {
                format!("  {:<10} {}", "updated", "first prompt")
            };
            lines.push(Line::styled(header, dim.add_modifier(Modifier::BOLD)));
            let room = usize::from(area.height.saturating_sub(4));
            let shown = picker.shown();
            let first = picker.selected.saturating_sub(room.saturating_sub(1));
            for (i, row) in shown.iter().enumerate().skip(first).take(room) {
                let selected = i == picker.selected;
                let folder = std::path::Path::new(&row.cwd)
                    .file_name()
                    .map_or_else(|| row.cwd.clone(), |n| n.to_string_lossy().into_owned());
                let prompt = clean(&row.preview).replace('\n', " ");
                let prompt = if prompt.is_empty() {
                    "(no prompt)".to_owned()
                } else {
                    prompt
                };
                let mark = if selected { "›" } else { " " };
                let text = if wide {
                    format!(
                        "{mark} {:<10} {:<14} {:<24} {prompt}",
                        age(row.updated_at, now),
                        truncate(row.ended.as_deref().unwrap_or("…"), 14),
                        truncate(&folder, 24),
                    )
                } else {
                    format!("{mark} {:<10} {prompt}", age(row.updated_at, now))
                };
                let style = if selected {
                    Style::new().add_modifier(Modifier::REVERSED)
                } else {
                    Style::new()
                };
                lines.push(Line::styled(truncate(&text, width), style));
            }
        }
    }
    frame.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_in_words() {
        assert_eq!(age(100, 130), "just now");
        assert_eq!(age(0, 300), "5m ago");
        assert_eq!(age(0, 3 * 3600), "3h ago");
        assert_eq!(age(0, 2 * 86_400 + 5), "2d ago");
    }
}
