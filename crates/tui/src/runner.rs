//! The loop: keys, server events and call outcomes in; a frame out when
//! something changed. Nothing redraws on its own while idle: the only timer
//! is the one-second tick of a running turn's clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use tiller_client::{Client, ClientEvent, EventReceiver};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::TuiError;
use crate::app::App;
use crate::calls::Calls;
use crate::effect::{Effect, Outcome};
use crate::options::{Open, TuiOptions};
use crate::terminal::TerminalGuard;
use crate::view::{self, Clock};

/// How long the server may take to stop at exit (it interrupts running
/// turns and flushes their rollouts first).
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

/// Run the UI until the person quits; returns the exit code.
pub async fn run(options: TuiOptions) -> Result<i32, TuiError> {
    let client_options = options.client.clone().server_requests(true);
    let (client, events) = Client::spawn(client_options)
        .await
        .map_err(TuiError::Connect)?;
    let mut guard = TerminalGuard::enter().map_err(TuiError::Terminal)?;
    let code = event_loop(&mut guard, &client, events, options).await;
    drop(guard);
    // The in-process server interrupts what runs and flushes on the way out.
    let _ = tokio::time::timeout(SHUTDOWN_LIMIT, client.shutdown()).await;
    code
}

async fn event_loop(
    guard: &mut TerminalGuard,
    client: &Client,
    mut events: EventReceiver,
    options: TuiOptions,
) -> Result<i32, TuiError> {
    let (outcomes_tx, mut outcomes) = mpsc::unbounded_channel::<Outcome>();
    let calls = Calls::new(client.clone(), options.thread.clone(), outcomes_tx);
    let mut app = App::new(format!("tui-{}-{}", std::process::id(), unix_now()));
    app.first_prompt = options.prompt.clone();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());

    match &options.open {
        Open::New => app.effect(Effect::StartThread),
        Open::Thread(id) => app.effect(Effect::ResumeThread(id.clone())),
        Open::Picker => {
            app.overlay = Some(crate::app::Overlay::Picker(Default::default()));
            app.effect(Effect::ListThreads);
        }
        Open::Last => {
            let calls = calls.clone();
            tokio::spawn(async move { calls.open_last().await });
        }
        Open::Attach => {
            let calls = calls.clone();
            tokio::spawn(async move { calls.attach().await });
        }
    }

    let mut input = EventStream::new();
    let mut sigterm = signal(SignalKind::terminate()).map_err(TuiError::Terminal)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(TuiError::Terminal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(TuiError::Terminal)?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        for effect in app.take_effects() {
            let thread = app.thread.as_ref().map(|t| t.id.clone());
            calls.run(effect, thread);
        }
        if let Some(code) = app.exit {
            return Ok(code);
        }
        // Every wake-up changed something: a frame (ratatui writes only the
        // cells that differ from the last one).
        let clock = Clock {
            now: Instant::now(),
            unix: unix_now(),
        };
        guard
            .terminal
            .draw(|frame| view::draw(frame, &mut app, clock, no_color))
            .map_err(TuiError::Terminal)?;
        let busy = app.is_busy();
        tokio::select! {
            event = input.next() => match event {
                Some(Ok(event)) => terminal_event(&mut app, event),
                Some(Err(e)) => return Err(TuiError::Terminal(e)),
                // The terminal is gone.
                None => return Ok(0),
            },
            event = events.recv() => match event {
                Some(event) => {
                    let gone = matches!(event, ClientEvent::Disconnected { requested: false, .. });
                    app.client_event(event);
                    if gone {
                        // Keep the screen up so the person reads why.
                        app.flash = Some("disconnected: ctrl+c twice quits".into());
                    }
                }
                None => return Ok(1),
            },
            outcome = outcomes.recv() => {
                if let Some(outcome) = outcome {
                    app.outcome(outcome);
                }
            }
            _ = tick.tick(), if busy => {}
            _ = sigterm.recv() => return Ok(143),
            _ = sighup.recv() => return Ok(129),
            // Not from the keyboard (raw mode turns Ctrl+C into a key): from
            // `kill -INT`. Taken as a Ctrl+C.
            _ = sigint.recv() => app.key(ctrl_c()),
        }
        // Everything else already waiting goes into the same frame.
        drain(&mut app, &mut events, &mut outcomes);
        if busy && !app.is_busy() {
            release_freed_memory();
        }
    }
}

/// How long one batch of waiting events may take before a frame is drawn
/// (and keys are read) again.
const BATCH_BUDGET: Duration = Duration::from_millis(16);

/// Everything already waiting, into the state: a streaming answer's deltas
/// are taken in as fast as they come, so they never pile up in the client's
/// queue behind frames.
fn drain(
    app: &mut App,
    events: &mut EventReceiver,
    outcomes: &mut mpsc::UnboundedReceiver<Outcome>,
) {
    let started = Instant::now();
    while started.elapsed() < BATCH_BUDGET {
        let mut progressed = false;
        if let Ok(event) = events.try_recv() {
            app.client_event(event);
            progressed = true;
        }
        if let Ok(outcome) = outcomes.try_recv() {
            app.outcome(outcome);
            progressed = true;
        }
        if !progressed {
            return;
        }
    }
}

/// A turn ended: give the memory its streaming used and freed back to the
/// system. A long answer is rendered again as it grows, and the allocator
/// keeps what those renders freed (spread over its per-thread arenas) unless
/// asked; the transcript itself keeps only its text and wrapped lines.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own
    // heaps to the kernel; it takes no pointers and is safe to call from any
    // thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

fn terminal_event(app: &mut App, event: Event) {
    match event {
        Event::Key(key) => app.key(key),
        Event::Paste(text) => app.paste(&text),
        Event::Resize(_, _) | Event::FocusGained | Event::FocusLost | Event::Mouse(_) => {}
    }
}

fn ctrl_c() -> crossterm::event::KeyEvent {
    crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('c'),
        crossterm::event::KeyModifiers::CONTROL,
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}
