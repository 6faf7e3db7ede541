//! What a thread read back from its rollout shows: its turns, and what a
//! resumed thread starts with (its queue, the answers already given).

use std::collections::HashSet;

use tiller_app_server_protocol::{
    QueuedSubmission, Turn, TurnError, TurnStartResponse, TurnStatus,
};
use tiller_core::Resumed;
use tiller_core::rollout::{LastTurn, LoadedTurn};
use tiller_protocol::QueuedInput;

use crate::convert::{thread_item, wire_input};
use crate::thread::{Idempotent, Replies, entries_started_by};

/// Saved turns as the wire shows them: the items the engine recorded, mapped
/// as live notifications map them. `running` is the turn still running, if
/// one is (it has no end in the file yet).
pub(crate) fn saved_turns(turns: &[LoadedTurn], running: Option<&str>) -> Vec<Turn> {
    turns
        .iter()
        .map(|turn| Turn {
            id: turn.id.clone(),
            items: turn.items.iter().map(thread_item).collect(),
            status: match turn.status {
                _ if running == Some(turn.id.as_str()) => TurnStatus::InProgress,
                LastTurn::Completed => TurnStatus::Completed,
                LastTurn::Failed => TurnStatus::Failed,
                LastTurn::Interrupted | LastTurn::Replaced | LastTurn::CutOff => {
                    TurnStatus::Interrupted
                }
            },
            error: turn.error.as_ref().map(|e| TurnError {
                message: e.message.clone(),
                additional_details: None,
            }),
            started_at: None,
            completed_at: None,
            duration_ms: None,
        })
        .collect()
}

/// A saved queue entry as the wire shows it: the input as the client gave it.
pub(crate) fn queued_submission(q: &QueuedInput) -> QueuedSubmission {
    QueuedSubmission {
        id: q.id.clone(),
        client_user_message_id: q.client_message_id.clone().unwrap_or_else(|| q.id.clone()),
        responsesapi_client_metadata: q
            .metadata
            .clone()
            .and_then(|v| serde_json::from_value(v).ok()),
        input: q
            .original
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_else(|| wire_input(&q.items)),
    }
}

/// The queue a resumed thread starts with: the last one saved, without the
/// entries that a turn started after it already carries (the process died
/// between starting that turn and saving the emptied queue). A turn whose
/// input never reached the rollout carries nothing: its entries stay queued.
pub(crate) fn restored_queue(loaded: &Resumed) -> Vec<QueuedSubmission> {
    let started: HashSet<&str> = loaded
        .turns
        .iter()
        .filter(|turn| !turn.history.is_empty())
        .filter_map(|turn| turn.client_message_id.as_deref())
        .filter_map(entries_started_by)
        .flatten()
        .collect();
    loaded
        .queue
        .items
        .iter()
        .filter(|q| !started.contains(q.id.as_str()))
        .map(queued_submission)
        .collect()
}

/// Results already given before a restart, by `clientUserMessageId`, so a
/// client that resends `turn/start` after reconnecting gets the original
/// answer. (A queued entry answers a repeated `thread/queue/add` while it is
/// still queued: the queue itself is restored.)
pub(crate) fn restored_replies(loaded: &Resumed, turns: &[Turn]) -> Replies {
    let mut replies = Replies::new();
    for (recorded, turn) in loaded.turns.iter().zip(turns) {
        if let Some(id) = &recorded.client_message_id
            && entries_started_by(id).is_none()
            && let Ok(result) = serde_json::to_value(TurnStartResponse {
                turn: Turn {
                    items: Vec::new(),
                    ..turn.clone()
                },
            })
        {
            replies.insert((Idempotent::TurnStart, id.clone()), result);
        }
    }
    replies
}
