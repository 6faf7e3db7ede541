//! The cost of a frame with a 10,000-line transcript, drawn by the real
//! view code into ratatui's `TestBackend` (the terminal write is the PTY
//! bench's; this is the UI's own work): following the end while the answer
//! streams, scrolling back page by page, and the first frame after a resize,
//! which wraps every cell again.
//!
//! `cargo bench -p tiller-tui --bench render`; `TILLER_BENCH_QUICK=1` runs
//! a few samples of each.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};
use tiller_bench_support::{Figure, Report, samples};
use tiller_client::protocol::ServerNotification;
use tiller_tui::{App, Clock, Outcome, draw};

const THREAD: &str = "bench-thread";
/// Turns of 20 answer lines and a 5-line command each, plus their user line,
/// end line and gaps: about 10,000 lines in all.
const TURNS: usize = 320;

fn main() {
    let mut report = Report::start("tui_render");
    let (mut app, lines) = transcript();
    report.note(format!("transcript: {lines} lines at 100 columns"));
    let mut terminal = Terminal::new(TestBackend::new(100, 40)).unwrap();
    let runs = samples(2000, 100);

    // Following the end while the last answer streams a word per frame.
    let mut streaming = Vec::with_capacity(runs);
    for i in 0..runs {
        app.notification(note(
            "item/agentMessage/delta",
            json!({"threadId": THREAD, "turnId": format!("turn-{}", TURNS - 1),
                   "itemId": format!("answer-{}", TURNS - 1), "delta": format!(" word{i}")}),
        ));
        streaming.push(frame(&mut terminal, &mut app));
    }
    report.durations(
        Figure::new(
            "tui/frame-streaming",
            "TUI frame, 10,000-line transcript, answer streaming at the end",
        )
        .at_most(4.0, "≤ 4 ms per frame"),
        &streaming,
    );

    // Scrolling back a page at a time, then forward again.
    let mut scrolling = Vec::with_capacity(runs);
    for i in 0..runs {
        let key = if (i / 200) % 2 == 0 {
            KeyCode::PageUp
        } else {
            KeyCode::PageDown
        };
        app.key(KeyEvent::new(key, KeyModifiers::NONE));
        scrolling.push(frame(&mut terminal, &mut app));
    }
    report.durations(
        Figure::new(
            "tui/frame-scrolling",
            "TUI frame, 10,000-line transcript, page up / page down",
        )
        .at_most(4.0, "≤ 4 ms per frame"),
        &scrolling,
    );

    // The first frame at a new width: following the end, only what is on
    // screen is wrapped again; scrolled back, everything above the view is.
    for (scrolled, id, name) in [
        (
            false,
            "tui/frame-after-resize",
            "TUI first frame after a resize, following the end",
        ),
        (
            true,
            "tui/frame-after-resize-scrolled",
            "TUI first frame after a resize, scrolled back (re-wraps the transcript)",
        ),
    ] {
        app.key(KeyEvent::new(KeyCode::End, KeyModifiers::CONTROL));
        if scrolled {
            app.key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE));
        }
        let mut resized = Vec::new();
        for i in 0..samples(50, 5) {
            let width = if i % 2 == 0 { 80 } else { 100 };
            terminal.backend_mut().resize(width, 40);
            terminal
                .resize(ratatui::layout::Rect::new(0, 0, width, 40))
                .unwrap();
            resized.push(frame(&mut terminal, &mut app));
        }
        report.durations(Figure::detail(id, name), &resized);
    }
    report.finish();
}

fn frame(terminal: &mut Terminal<TestBackend>, app: &mut App) -> Duration {
    let clock = Clock {
        now: Instant::now(),
        unix: 0,
    };
    let start = Instant::now();
    terminal.draw(|f| draw(f, app, clock, false)).unwrap();
    start.elapsed()
}

fn note(method: &str, params: Value) -> ServerNotification {
    tiller_client::parse_notification(method, params)
        .unwrap()
        .unwrap()
}

/// An app showing a thread of [`TURNS`] turns, the last one running.
fn transcript() -> (App, usize) {
    let mut app = App::new("bench");
    let opened = json!({
        "thread": {
            "id": THREAD, "name": null, "sessionId": THREAD, "preview": "", "cliVersion": "0",
            "createdAt": 0, "updatedAt": 0, "cwd": "/w", "ephemeral": false, "model": "m",
            "modelProvider": "p", "projectId": null, "source": "appServer",
            "status": {"type": "idle"}, "turns": []
        },
        "model": "m", "modelProvider": "p", "cwd": "/w", "approvalPolicy": "never",
        "approvalsReviewer": "user", "sandbox": {"type": "dangerFullAccess"}
    });
    app.outcome(Outcome::ThreadOpened(Box::new(
        serde_json::from_value(opened).unwrap(),
    )));
    let answer: String = (0..20)
        .map(|i| {
            format!(
                "- point {i}: the parser keeps `state` in **one** place, so a resume is cheap\n"
            )
        })
        .collect();
    for t in 0..TURNS {
        let turn = format!("turn-{t}");
        app.notification(note(
            "turn/started",
            json!({"threadId": THREAD, "turn": {"id": turn, "items": [], "status": "inProgress",
                   "error": null, "startedAt": null, "completedAt": null, "durationMs": null}}),
        ));
        let items = [
            json!({"type": "userMessage", "id": format!("user-{t}"), "content": [{"type": "text", "text": format!("question {t}")}]}),
            json!({"type": "commandExecution", "id": format!("cmd-{t}"), "command": "cargo test", "cwd": "/w",
                   "status": "completed", "commandActions": [], "exitCode": 0, "durationMs": 1200,
                   "aggregatedOutput": "running 4 tests\ntest a ... ok\ntest b ... ok\ntest c ... ok\ntest d ... ok\n"}),
            json!({"type": "agentMessage", "id": format!("answer-{t}"), "text": answer}),
        ];
        for item in items {
            app.notification(note(
                "item/completed",
                json!({"threadId": THREAD, "turnId": turn, "completedAtMs": 0, "item": item}),
            ));
        }
        if t + 1 < TURNS {
            app.notification(note(
                "turn/completed",
                json!({"threadId": THREAD, "turn": {"id": turn, "items": [], "status": "completed",
                       "error": null, "startedAt": null, "completedAt": null, "durationMs": 1500}}),
            ));
        }
    }
    let lines = app.transcript.height(100);
    (app, lines)
}
