//! Threads as their rollouts hold them, for `thread/read`,
//! `thread/turns/list` and `thread/list` of threads this process has not
//! loaded (and for the list, of all of them).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use tiller_app_server_protocol::{
    DEFAULT_PAGE, ErrorCode, JsonRpcError, SortDirection, Thread, ThreadItemEntry,
    ThreadItemsListParams, ThreadItemsListResponse, ThreadListParams, ThreadListResponse,
    ThreadStatus, ThreadTurnsListResponse, Turn,
};
use tiller_core::rollout::LoadedRollout;
use tiller_core::rollout::archive::archived_files;
use tiller_core::rollout::store::{SessionQuery, find_session, rollout_files};

use crate::convert::{blocking, created_secs};
use crate::pages::page;
use crate::restore::saved_turns;

/// A saved thread: its facts, and its turns if asked.
pub(crate) fn thread_of(rollout: &LoadedRollout, status: ThreadStatus, turns: bool) -> Thread {
    let meta = &rollout.meta;
    Thread {
        id: meta.id.clone(),
        name: None,
        session_id: meta.id.clone(),
        preview: rollout.first_prompt.clone().unwrap_or_default(),
        cli_version: meta.tiller_version.clone(),
        created_at: created_secs(&meta.id),
        updated_at: modified_secs(&rollout.path),
        cwd: meta.cwd.clone(),
        ephemeral: false,
        model: Some(meta.model.clone()),
        model_provider: meta.provider.clone(),
        project_id: None,
        source: "appServer".to_string(),
        status,
        turns: if turns {
            saved_turns(&rollout.turns, None)
        } else {
            Vec::new()
        },
    }
}

/// Read a saved thread by id (or prefix), off the event loop.
pub(crate) async fn load(home: &Path, thread_id: &str) -> Result<LoadedRollout, JsonRpcError> {
    let home = home.to_path_buf();
    let query = thread_id.to_string();
    blocking(move || {
        let path = find_session(&home, &SessionQuery::Id(query))
            .map_err(|e| JsonRpcError::new(ErrorCode::InvalidRequest, e.to_string()))?;
        tiller_core::rollout::load(&path)
            .map_err(|e| JsonRpcError::new(ErrorCode::InvalidRequest, e.to_string()))
    })
    .await
}

/// A page of `turns` (oldest first) in the asked order.
pub(crate) fn turns_page(
    mut turns: Vec<Turn>,
    cursor: Option<&str>,
    limit: Option<u32>,
    direction: Option<SortDirection>,
) -> Result<ThreadTurnsListResponse, JsonRpcError> {
    if direction != Some(SortDirection::Asc) {
        turns.reverse();
    }
    let limit = limit.unwrap_or(DEFAULT_PAGE) as usize;
    let page = page(&turns, |t| t.id.as_str(), cursor, limit)?;
    Ok(ThreadTurnsListResponse {
        data: page.items,
        next_cursor: page.next,
        backwards_cursor: page.back,
    })
}

/// A page of the items of `turns` (oldest first), in the asked order, of one
/// turn if `turn_id` is given.
pub(crate) fn items_page(
    turns: Vec<Turn>,
    params: &ThreadItemsListParams,
) -> Result<ThreadItemsListResponse, JsonRpcError> {
    if let Some(turn) = &params.turn_id
        && !turns.iter().any(|t| &t.id == turn)
    {
        return Err(JsonRpcError::new(
            ErrorCode::InvalidRequest,
            format!("no turn {turn} in thread {}", params.thread_id),
        ));
    }
    let mut entries: Vec<ThreadItemEntry> = turns
        .into_iter()
        .filter(|t| params.turn_id.as_ref().is_none_or(|id| &t.id == id))
        .flat_map(|turn| {
            let turn_id = turn.id;
            turn.items.into_iter().map(move |item| ThreadItemEntry {
                turn_id: turn_id.clone(),
                item,
                started_at_ms: None,
                completed_at_ms: None,
            })
        })
        .collect();
    if params.sort_direction != Some(SortDirection::Asc) {
        entries.reverse();
    }
    let cursor = match &params.cursor {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(cursor)) => Some(cursor.clone()),
        Some(anchor) => match anchor["itemId"].as_str() {
            Some(item) if anchor["type"] == "item" => Some(item.to_string()),
            _ => {
                return Err(JsonRpcError::new(
                    ErrorCode::InvalidParams,
                    format!("cursor {anchor} is neither a cursor nor {{type: \"item\", itemId}}"),
                ));
            }
        },
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE) as usize;
    let page = page(&entries, |e| e.item.id(), cursor.as_deref(), limit)?;
    Ok(ThreadItemsListResponse {
        data: page.items,
        next_cursor: page.next,
        backwards_cursor: page.back,
    })
}

/// `thread/list`: the saved threads, filtered, newest first unless asked
/// otherwise; with `archived: true`, the archived ones instead. `status`
/// gives a loaded thread's status.
pub(crate) async fn list(
    home: &Path,
    params: ThreadListParams,
    status: impl Fn(&str) -> ThreadStatus,
) -> Result<ThreadListResponse, JsonRpcError> {
    let home = home.to_path_buf();
    let archived = params.archived == Some(true);
    let rollouts = blocking(move || Ok(read_all(&home, archived))).await?;
    let cwds: Option<Vec<String>> = match &params.cwd {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(cwd)) => Some(vec![cwd.clone()]),
        Some(other) => Some(serde_json::from_value(other.clone()).map_err(|e| {
            JsonRpcError::new(
                ErrorCode::InvalidParams,
                format!("cwd must be a path or a list of paths: {e}"),
            )
        })?),
    };
    let providers = params.model_providers.clone().unwrap_or_default();
    let term = params.search_term.as_deref().map(str::to_lowercase);
    let mut threads: Vec<Thread> = rollouts
        .iter()
        .filter(|r| cwds.as_ref().is_none_or(|c| c.contains(&r.meta.cwd)))
        .filter(|r| providers.is_empty() || providers.contains(&r.meta.provider))
        .filter(|r| {
            term.as_ref().is_none_or(|term| {
                r.first_prompt
                    .as_deref()
                    .is_some_and(|p| p.to_lowercase().contains(term.as_str()))
            })
        })
        .map(|r| thread_of(r, status(&r.meta.id), false))
        .collect();
    // UUIDv7 ids sort by creation.
    threads.sort_by(|a, b| a.id.cmp(&b.id));
    if params.sort_direction != Some(SortDirection::Asc) {
        threads.reverse();
    }
    let limit = params.limit.unwrap_or(DEFAULT_PAGE) as usize;
    let page = page(&threads, |t| t.id.as_str(), params.cursor.as_deref(), limit)?;
    Ok(ThreadListResponse {
        data: page.items,
        read_states: None,
        next_cursor: page.next,
        backwards_cursor: page.back,
    })
}

/// Every rollout that reads, archived or not (one that does not read is
/// left out, and logged).
fn read_all(home: &Path, archived: bool) -> Vec<LoadedRollout> {
    let files = if archived {
        archived_files(home)
    } else {
        rollout_files(home)
    };
    files
        .into_iter()
        .filter_map(|path: PathBuf| match tiller_core::rollout::load(&path) {
            Ok(rollout) => Some(rollout),
            Err(e) => {
                tracing::warn!("thread/list skips {}: {e}", path.display());
                None
            }
        })
        .collect()
}

fn modified_secs(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}
