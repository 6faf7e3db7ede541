//! One frame: the transcript, what waits to be sent, the composer and the
//! status line, and any window over them.

mod elicitation;

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph};

use crate::app::{App, Approval, ApprovalKind, Choice, ChoiceKind, Overlay};
use crate::cell::CellKind;
use crate::clean::clean;
use crate::slash;
use crate::wrap::{truncate, wrap};

/// The most composer rows shown; more scroll.
const COMPOSER_ROWS: usize = 8;
/// The most rows of pending and queued messages shown.
const WAITING_ROWS: usize = 6;

const DIM: Style = Style::new().fg(Color::DarkGray);

/// The clock a frame is drawn at.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// For elapsed times.
    pub now: Instant,
    /// Unix seconds, for ages.
    pub unix: i64,
}

/// Draw `app` into `frame`; without colour when `no_color`.
pub fn draw(frame: &mut Frame<'_>, app: &mut App, clock: Clock, no_color: bool) {
    let area = frame.area();
    match &mut app.overlay {
        Some(Overlay::Pager(pager)) => crate::pager::draw(frame, area, pager),
        Some(Overlay::Picker(picker)) => crate::picker::draw(frame, area, picker, clock.unix),
        Some(Overlay::Approval(_) | Overlay::Elicitation(_) | Overlay::Choice(_)) | None => {
            draw_main(frame, app, clock);
        }
    }
    if no_color {
        strip_colour(frame);
    }
}

fn draw_main(frame: &mut Frame<'_>, app: &mut App, clock: Clock) {
    let area = frame.area();
    let width = area.width;
    let inner_width = width.saturating_sub(4);
    let (rows, cursor) = app.composer.layout(inner_width);
    let composer_rows = rows.len().clamp(1, COMPOSER_ROWS);
    let waiting = waiting_lines(app, width);
    let menu = menu_lines(app);
    let constraints = [
        Constraint::Min(1),
        Constraint::Length(u16::try_from(waiting.len()).unwrap_or(0)),
        Constraint::Length(u16::try_from(menu.len()).unwrap_or(0)),
        Constraint::Length(u16::try_from(composer_rows + 2).unwrap_or(3)),
        Constraint::Length(1),
    ];
    let [
        transcript_area,
        waiting_area,
        menu_area,
        composer_area,
        status_area,
    ] = Layout::vertical(constraints).areas(area);

    app.view_height = usize::from(transcript_area.height);
    app.view_width = transcript_area.width;
    let mut lines = app
        .transcript
        .visible(transcript_area.width, usize::from(transcript_area.height));
    // Before the first turn the welcome stays on top, above what came
    // already (an MCP server's start, a command's report) while both fit.
    if app.turn_ids.is_empty() && !app.is_busy() {
        let mut top = welcome(app);
        if !lines.is_empty() {
            top.push(Line::default());
        }
        if lines.is_empty() || top.len() + lines.len() <= usize::from(transcript_area.height) {
            top.append(&mut lines);
            lines = top;
        }
    }
    frame.render_widget(Paragraph::new(lines), transcript_area);
    frame.render_widget(Paragraph::new(waiting), waiting_area);
    frame.render_widget(Paragraph::new(menu), menu_area);

    // The composer, scrolled to keep the cursor in view.
    let first_row = cursor.0.saturating_sub(composer_rows - 1);
    let shown: Vec<Line<'static>> = rows
        .iter()
        .skip(first_row)
        .take(composer_rows)
        .map(|row| Line::raw(row.clone()))
        .collect();
    let placeholder = app.composer.text().is_empty();
    let title = if app.is_busy() {
        " enter steers · tab queues · esc interrupts "
    } else {
        " enter sends · shift+enter or ctrl+j new line · / commands "
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(DIM)
        .padding(ratatui::widgets::Padding::horizontal(1))
        .title(Span::styled(title, DIM));
    let body = if placeholder {
        Paragraph::new(Line::styled(
            if app.is_busy() {
                "steer the running turn, or tab to queue a message"
            } else {
                "ask tiller to do something"
            },
            DIM,
        ))
    } else {
        Paragraph::new(shown)
    };
    frame.render_widget(body.block(block), composer_area);
    if app.overlay.is_none() {
        let x = composer_area.x + 2 + u16::try_from(cursor.1).unwrap_or(0);
        let y = composer_area.y + 1 + u16::try_from(cursor.0 - first_row).unwrap_or(0);
        frame.set_cursor_position((x.min(area.right().saturating_sub(1)), y));
    }
    frame.render_widget(Paragraph::new(status_line(app, clock, width)), status_area);

    match &app.overlay {
        Some(Overlay::Approval(approval)) => draw_approval(frame, app, approval, area),
        Some(Overlay::Elicitation(form)) => {
            elicitation::draw(frame, form, app.requests.len(), area);
        }
        Some(Overlay::Choice(choice)) => draw_choice(frame, choice, area),
        Some(Overlay::Pager(_) | Overlay::Picker(_)) | None => {}
    }
}

fn welcome(app: &App) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(vec![
        Span::styled("tiller", Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(" — a coding agent you can interrupt, steer and resume", DIM),
    ])];
    match &app.thread {
        Some(thread) => lines.push(Line::styled(
            format!("{} in {}", thread.model, thread.cwd),
            DIM,
        )),
        None => lines.push(Line::styled("opening a session…", DIM)),
    }
    lines.push(Line::styled(
        "esc interrupts · ctrl+t transcript · / commands · ctrl+c twice quits",
        DIM,
    ));
    lines
}

/// Steers not yet seen by the model, and the server's queue.
fn waiting_lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width);
    let mut lines = Vec::new();
    if !app.pending_steers.is_empty() {
        lines.push(Line::styled("will be sent after the current step:", DIM));
        for steer in &app.pending_steers {
            let text = clean(&steer.text).replace('\n', " ⏎ ");
            lines.push(Line::from(vec![
                Span::styled("  ↳ ", Style::new().fg(Color::Cyan)),
                Span::raw(truncate(&text, width.saturating_sub(4))),
            ]));
        }
    }
    if !app.queue.is_empty() {
        let header = if app.is_busy() {
            "queued for after this turn (alt+↑ edits the last):"
        } else {
            "queued (enter on an empty composer runs them · alt+↑ edits the last):"
        };
        lines.push(Line::styled(header, DIM));
        for entry in &app.queue {
            let text = clean(&crate::app::input_text(&entry.input)).replace('\n', " ⏎ ");
            lines.push(Line::from(vec![
                Span::styled("  ▸ ", Style::new().fg(Color::Yellow)),
                Span::raw(truncate(&text, width.saturating_sub(4))),
            ]));
        }
    }
    if lines.len() > WAITING_ROWS {
        let hidden = lines.len() - WAITING_ROWS + 1;
        lines.truncate(WAITING_ROWS - 1);
        lines.push(Line::styled(format!("  … {hidden} more"), DIM));
    }
    lines
}

fn menu_lines(app: &App) -> Vec<Line<'static>> {
    let Some(menu) = slash::completions(app.composer.text()) else {
        return Vec::new();
    };
    if menu.is_empty() {
        return vec![Line::styled("  no such command", DIM)];
    }
    let selected = app.menu_index.min(menu.len() - 1);
    menu.iter()
        .enumerate()
        .map(|(i, (_, name, what))| {
            let style = if i == selected {
                Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            Line::from(vec![
                Span::styled(format!("  /{name:<10}"), style),
                Span::styled((*what).to_owned(), DIM),
            ])
        })
        .collect()
}

/// "gpt-5 · ~/src/app · approvals: untrusted · sandbox: workspace-write │
/// working 12s · esc to interrupt · 1.2k tokens" (the settings without
/// their names when the line is short); while an MCP call runs, its last progress message; while MCP
/// servers start, their names.
fn status_line(app: &App, clock: Clock, width: u16) -> Line<'static> {
    // The settings, named ("approvals: never"), or bare when that does not
    // fit: the policies' names and the sandbox modes' do not overlap.
    let mut left: Vec<(&str, String)> = Vec::new();
    if let Some(thread) = &app.thread {
        left.push(("", thread.model.clone()));
        left.push(("", short_path(&thread.cwd)));
        left.push(("approvals: ", thread.approval_policy.clone()));
        left.push(("sandbox: ", thread.sandbox.clone()));
    }
    let state = match app.elapsed(clock.now) {
        Some(elapsed) if app.running_turn().is_some() => {
            let waiting = app.overlay.as_ref().and_then(Overlay::request).is_some();
            match &app.mcp_progress {
                _ if waiting => format!("waiting for you {}", seconds(elapsed)),
                Some(progress) => format!(
                    "working {} · {}: {} · esc to interrupt",
                    seconds(elapsed),
                    progress.call,
                    truncate(&progress.message, 60)
                ),
                None => format!("working {} · esc to interrupt", seconds(elapsed)),
            }
        }
        Some(_) => "starting…".to_owned(),
        None => "ready".to_owned(),
    };
    let mut right = vec![state];
    let starting = app.mcp_starting();
    if !starting.is_empty() {
        right.push(format!(
            "MCP starting: {}",
            truncate(&clean(&starting.join(", ")), 40)
        ));
    }
    if let Some(tokens) = &app.tokens {
        let used = tokens.last.input_tokens + tokens.last.output_tokens;
        match tokens.model_context_window {
            Some(window) if window > 0 => {
                let left_pct = 100u64.saturating_sub(used.saturating_mul(100) / window);
                right.push(format!(
                    "{} tokens · {left_pct}% context left",
                    compact_number(tokens.total.total_tokens)
                ));
            }
            Some(_) | None => right.push(format!(
                "{} tokens",
                compact_number(tokens.total.total_tokens)
            )),
        }
    }
    let state_style = if app.is_busy() {
        Style::new().fg(Color::Cyan)
    } else {
        DIM
    };
    let mut right_spans = vec![Span::styled(right.join(" · "), state_style)];
    if let Some(flash) = &app.flash {
        right_spans.push(Span::styled(" │ ", DIM));
        right_spans.push(Span::styled(flash.clone(), Style::new().fg(Color::Yellow)));
    }
    // The turn's state and the flash matter most: the settings get what is left.
    let right_width: usize = right_spans
        .iter()
        .map(|s| crate::wrap::text_width(&s.content))
        .sum();
    let room = usize::from(width).saturating_sub(right_width + 3);
    let mut spans = Vec::new();
    if !left.is_empty() && room > 8 {
        let join = |named: bool| {
            left.iter()
                .map(|(name, value)| {
                    if named {
                        format!("{name}{value}")
                    } else {
                        value.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" · ")
        };
        let named = join(true);
        let settings = if crate::wrap::text_width(&named) <= room {
            named
        } else {
            join(false)
        };
        spans.push(Span::styled(truncate(&settings, room), DIM));
        spans.push(Span::styled(" │ ", DIM));
    }
    spans.extend(right_spans);
    Line::from(spans)
}

fn seconds(elapsed: std::time::Duration) -> String {
    let s = elapsed.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m {:02}s", s / 60, s % 60)
    }
}

fn compact_number(n: u64) -> String {
    match n {
        0..1000 => n.to_string(),
        1000..1_000_000 => format!("{:.1}k", n as f64 / 1000.0),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0),
    }
}

/// `cwd` with the home folder as `~`.
fn short_path(cwd: &str) -> String {
    match std::env::var("HOME") {
        Ok(home) if !home.is_empty() && cwd.starts_with(&home) => {
            format!("~{}", &cwd[home.len()..])
        }
        Ok(_) | Err(_) => cwd.to_owned(),
    }
}

/// A box in the middle of `area`, `height` lines of content high.
fn centred(area: Rect, height: usize) -> Rect {
    let width = area
        .width
        .saturating_sub(4)
        .min(100)
        .max(20.min(area.width));
    let height = u16::try_from(height + 2)
        .unwrap_or(area.height)
        .min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn draw_approval(frame: &mut Frame<'_>, app: &App, approval: &Approval, area: Rect) {
    let width = area.width.saturating_sub(8).clamp(10, 96);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut body: Vec<Line<'static>> = Vec::new();
    let title = match &approval.kind {
        ApprovalKind::Command { command, cwd } => {
            body.extend(
                clean(command)
                    .lines()
                    .map(|l| Line::styled(format!("$ {l}"), bold)),
            );
            body.push(Line::styled(format!("in {cwd}"), DIM));
            " Run this command? "
        }
        ApprovalKind::Edit {
            item_id,
            grant_root,
        } => {
            let diff = app.transcript.cells().find_map(|cell| match &cell.kind {
                CellKind::FileChange { .. } if cell.item_id.as_deref() == Some(item_id) => {
                    Some(cell.lines(false))
                }
                _ => None,
            });
            body.extend(diff.unwrap_or_default().into_iter().take(16));
            if let Some(root) = grant_root {
                body.push(Line::styled(
                    format!("writes outside the workspace, in {root}"),
                    Style::new().fg(Color::Yellow),
                ));
            }
            " Apply this edit? "
        }
    };
    if let Some(reason) = &approval.reason {
        body.push(Line::styled(
            format!("asked because {}", clean(reason)),
            DIM,
        ));
    }
    body.push(Line::default());
    match &approval.note {
        Some(note) => {
            body.push(Line::from(vec![
                Span::styled(
                    "no — tell the model why (enter sends, empty for no note): ",
                    bold,
                ),
                Span::raw(note.clone()),
            ]));
        }
        None => body.push(Line::from(vec![
            Span::styled("y", bold.fg(Color::Green)),
            Span::raw(" yes   "),
            Span::styled("a", bold.fg(Color::Green)),
            Span::raw(" yes, always this session   "),
            Span::styled("n", bold.fg(Color::Red)),
            Span::raw(" no   "),
            Span::styled("esc", bold.fg(Color::Yellow)),
            Span::raw(" abort the turn"),
        ])),
    }
    if !app.requests.is_empty() {
        body.push(Line::styled(
            format!("{} more waiting", app.requests.len()),
            DIM,
        ));
    }
    let wrapped = wrap(&body, width.saturating_sub(4));
    let mut rect = centred(area, wrapped.len());
    rect.width = width.min(area.width);
    rect.x = area.x + (area.width - rect.width) / 2;
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(Style::new().fg(Color::Yellow))
        .padding(ratatui::widgets::Padding::horizontal(1))
        .title(Span::styled(title, bold));
    frame.render_widget(Paragraph::new(wrapped).block(block), rect);
    if let Some(note) = &approval.note {
        let prefix = "no — tell the model why (enter sends, empty for no note): ";
        let column = crate::wrap::text_width(prefix) + crate::wrap::text_width(note);
        let inner = usize::from(rect.width.saturating_sub(4)).max(1);
        let x = rect.x + 2 + u16::try_from(column % inner).unwrap_or(0);
        let y = rect.y + rect.height.saturating_sub(2);
        frame.set_cursor_position((x, y));
    }
}

fn draw_choice(frame: &mut Frame<'_>, choice: &Choice, area: Rect) {
    let title = match choice.kind {
        ChoiceKind::Model => " Model ",
        ChoiceKind::Approvals => " When to ask before running ",
    };
    let mut lines: Vec<Line<'static>> = Vec::new();
    if choice.options.is_empty() {
        lines.push(Line::styled("loading…", DIM));
    }
    for (i, (value, what)) in choice.options.iter().enumerate() {
        let style = if i == choice.selected {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {value} "), style),
            Span::styled(format!("  {what}"), DIM),
        ]));
    }
    lines.push(Line::styled("↑/↓ choose · enter sets · esc closes", DIM));
    let rect = centred(area, lines.len());
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .title(title);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

/// `NO_COLOR`: every colour out of the frame; bold, reverse and the like stay.
fn strip_colour(frame: &mut Frame<'_>) {
    let area = frame.area();
    let buffer = frame.buffer_mut();
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            if let Some(cell) = buffer.cell_mut((x, y)) {
                cell.set_fg(Color::Reset);
                cell.set_bg(Color::Reset);
            }
        }
    }
}
