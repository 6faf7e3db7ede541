//! `tiller sessions`: the saved sessions, newest first.

use std::io::Write;

use serde_json::json;
use tiller_core::config::default_tiller_home;
use tiller_core::rollout::store::list_sessions;

/// How much of the first prompt a table row shows.
const PROMPT_WIDTH: usize = 60;

/// `tiller sessions`. A reader that stops early (`tiller sessions | head -1`)
/// ends the listing quietly.
pub fn print_sessions(as_json: bool) -> anyhow::Result<i32> {
    match write_sessions(as_json) {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(0)
        }
        other => other,
    }
}

fn write_sessions(as_json: bool) -> anyhow::Result<i32> {
    let mut out = std::io::stdout().lock();
    let home = default_tiller_home()?;
    let (sessions, warnings) = list_sessions(&home);
    for warning in &warnings {
        let _ = writeln!(std::io::stderr(), "warning: {warning}");
    }
    if as_json {
        let rows: Vec<_> = sessions
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "started": s.started,
                    "cwd": s.cwd,
                    "first_prompt": s.first_prompt,
                    "last_turn": s.last_turn.map(|t| t.as_str()),
                    "path": s.path.display().to_string(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(0);
    }
    if sessions.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "no sessions yet under {}",
            home.join("sessions").display()
        );
        return Ok(0);
    }
    writeln!(
        out,
        "{:<36}  {:<24}  {:<11}  {:<30}  FIRST PROMPT",
        "ID", "STARTED", "LAST TURN", "FOLDER"
    )?;
    for s in &sessions {
        let prompt = s.first_prompt.as_deref().unwrap_or("").replace('\n', " ");
        let prompt: String = if prompt.chars().count() > PROMPT_WIDTH {
            prompt.chars().take(PROMPT_WIDTH - 1).chain(['…']).collect()
        } else {
            prompt
        };
        writeln!(
            out,
            "{:<36}  {:<24}  {:<11}  {:<30}  {}",
            s.id,
            s.started,
            s.last_turn.map_or("-", |t| t.as_str()),
            s.cwd,
            prompt
        )?;
    }
    Ok(0)
}
