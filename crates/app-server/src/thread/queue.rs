//! A thread's queue: messages waiting for the running turn to end, in
//! Codex's `thread/queue/*` shapes. Every change is saved to the rollout
//! before it is acknowledged (a change that cannot be saved is refused and
//! undone), announced with `thread/queue/changed`, and the queue starts as
//! the next turn when a turn completes.
//!
//! A `clientUserMessageId` names at most one live entry: adding it again
//! while that entry is queued answers with the entry; once the entry is
//! deleted or started, the id is free again (and `turn/start` or
//! `turn/steer` with it do what they say).

use std::collections::HashSet;

use serde_json::Value;
use tiller_app_server_protocol::{
    EmptyResponse, ErrorCode, JsonRpcError, QueueAddParams, QueueAddResponse,
    QueueChangedNotification, QueueDeleteResponse, QueueListParams, QueueListResponse,
    QueueReorderParams, QueueUpdateParams, QueuedSubmission, ServerNotification,
};
use tiller_protocol::{Op, QueueSnapshot, QueuedInput, Reply, UserMessage};

use super::{ThreadDriver, non_empty, op_error, queued_turn_id, turn_started};
use crate::convert::{engine_input, to_value};
use crate::pages::page;

impl ThreadDriver {
    pub(super) async fn queue_add(
        &mut self,
        params: QueueAddParams,
    ) -> Result<Value, JsonRpcError> {
        if let Some(client_id) = &params.client_user_message_id
            && let Some(live) = self
                .queue
                .iter()
                .find(|e| &e.client_user_message_id == client_id)
        {
            return to_value(&QueueAddResponse {
                queued_submission: live.clone(),
            });
        }
        non_empty(engine_input(&params.input))?;
        let id = uuid::Uuid::now_v7().to_string();
        let entry = QueuedSubmission {
            client_user_message_id: params.client_user_message_id.unwrap_or_else(|| id.clone()),
            id,
            input: params.input,
            responsesapi_client_metadata: params.responsesapi_client_metadata,
        };
        let result = to_value(&QueueAddResponse {
            queued_submission: entry.clone(),
        })?;
        let idle = self.session.running_turn().is_none() && self.queue.is_empty();
        // Saved as queued even when it starts at once: the answer is durable.
        let before = self.queue.clone();
        self.queue.push(entry);
        self.save_queue_or_undo(before).await?;
        if idle {
            // Its turn's notifications follow the answer (see `request`).
            self.start_queued().await;
        }
        Ok(result)
    }

    pub(super) fn queue_list(&self, params: &QueueListParams) -> Result<Value, JsonRpcError> {
        let limit = params.limit.map_or(self.queue.len(), |l| l as usize);
        let page = page(
            &self.queue,
            |e| e.id.as_str(),
            params.cursor.as_deref(),
            limit,
        )?;
        to_value(&QueueListResponse {
            data: page.items,
            next_cursor: page.next,
        })
    }

    pub(super) async fn queue_update(
        &mut self,
        params: QueueUpdateParams,
    ) -> Result<Value, JsonRpcError> {
        non_empty(engine_input(&params.input))?;
        let position = self.position(&params.queued_submission_id)?;
        let before = self.queue.clone();
        let entry = &mut self.queue[position];
        entry.input = params.input;
        if let Some(metadata) = params
            .responsesapi_client_metadata
            .filter(|m| !m.is_empty())
        {
            entry.responsesapi_client_metadata = Some(metadata);
        }
        let result = to_value(&QueueAddResponse {
            queued_submission: entry.clone(),
        })?;
        self.save_queue_or_undo(before).await?;
        Ok(result)
    }

    pub(super) async fn queue_delete(&mut self, id: &str) -> Result<Value, JsonRpcError> {
        let before = self.queue.clone();
        self.queue.retain(|entry| entry.id != id);
        let deleted = self.queue.len() != before.len();
        if deleted {
            self.save_queue_or_undo(before).await?;
        }
        to_value(&QueueDeleteResponse { deleted })
    }

    pub(super) async fn queue_reorder(
        &mut self,
        params: QueueReorderParams,
    ) -> Result<Value, JsonRpcError> {
        let asked: HashSet<&str> = params
            .queued_submission_ids
            .iter()
            .map(String::as_str)
            .collect();
        let queued: HashSet<&str> = self.queue.iter().map(|e| e.id.as_str()).collect();
        if asked != queued || asked.len() != params.queued_submission_ids.len() {
            return Err(JsonRpcError::new(
                ErrorCode::InvalidParams,
                format!(
                    "queuedSubmissionIds must list every queued entry once; the queue holds [{}]",
                    self.queue
                        .iter()
                        .map(|e| e.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let before = self.queue.clone();
        self.queue = params
            .queued_submission_ids
            .iter()
            .filter_map(|id| before.iter().find(|e| &e.id == id).cloned())
            .collect();
        self.save_queue_or_undo(before).await?;
        to_value(&EmptyResponse {})
    }

    /// `thread/queue/start`: one entry (the first if none is named) starts a
    /// turn now. Only when no turn runs: a running turn takes a message with
    /// `turn/steer`, and the queue starts by itself when it ends.
    pub(super) async fn queue_start(&mut self, id: Option<String>) -> Result<Value, JsonRpcError> {
        if let Some(running) = self.session.running_turn() {
            return Err(JsonRpcError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "turn {} is running: the queue starts when it ends (or delete the entry and send it with turn/steer)",
                    running.id
                ),
            ));
        }
        let position = match &id {
            Some(id) => self.position(id)?,
            None if self.queue.is_empty() => {
                return Err(JsonRpcError::new(
                    ErrorCode::InvalidRequest,
                    "the queue is empty",
                ));
            }
            None => 0,
        };
        let entry = self.queue.remove(position);
        match self.start_entries(std::slice::from_ref(&entry)).await {
            Ok(turn_id) => {
                self.saved_after_start().await;
                to_value(&turn_started(turn_id))
            }
            Err(error) => {
                self.queue.insert(position, entry);
                Err(error)
            }
        }
    }

    /// The turn completed with messages queued: they start the next turn,
    /// each its own user message.
    pub(super) async fn start_queued(&mut self) {
        let entries = std::mem::take(&mut self.queue);
        match self.start_entries(&entries).await {
            Ok(_) => self.saved_after_start().await,
            Err(e) => {
                tracing::error!("could not start the queued turn: {}", e.message);
                self.queue = entries;
            }
        }
    }

    /// Start a turn with `entries`. The engine records which entries the
    /// turn took (its `client_message_id`) with the turn's start, before the
    /// queue without them is saved.
    async fn start_entries(
        &mut self,
        entries: &[QueuedSubmission],
    ) -> Result<String, JsonRpcError> {
        let input = entries
            .iter()
            .map(|e| UserMessage {
                items: engine_input(&e.input),
                client_message_id: Some(e.client_user_message_id.clone()),
            })
            .collect();
        let reply = self
            .session
            .submit(Op::StartTurn {
                input,
                client_message_id: Some(queued_turn_id(entries)),
            })
            .await
            .map_err(op_error)?;
        match reply {
            Reply::TurnStarted { turn_id } => Ok(turn_id),
            _ => Err(op_error(tiller_protocol::OpError::SessionClosed)),
        }
    }

    /// The queue after a turn took entries from it: saved (the turn's start
    /// already names them, so a failure here loses nothing) and announced.
    async fn saved_after_start(&mut self) {
        if let Err(e) = self.save_queue().await {
            tracing::error!("could not save the queue: {}", e.message);
        }
        self.notify_queue_changed();
    }

    fn position(&self, id: &str) -> Result<usize, JsonRpcError> {
        self.queue.iter().position(|e| e.id == id).ok_or_else(|| {
            JsonRpcError::new(
                ErrorCode::InvalidRequest,
                format!("no queued submission {id} in thread {}", self.info.id),
            )
        })
    }

    /// Save the queue as it now is and announce it; if it cannot be saved,
    /// put `before` back and refuse the change.
    async fn save_queue_or_undo(
        &mut self,
        before: Vec<QueuedSubmission>,
    ) -> Result<(), JsonRpcError> {
        if let Err(error) = self.save_queue().await {
            self.queue = before;
            return Err(error);
        }
        self.notify_queue_changed();
        Ok(())
    }

    /// Persist the queue before acknowledging a change to it.
    async fn save_queue(&mut self) -> Result<(), JsonRpcError> {
        let snapshot = QueueSnapshot {
            items: self.queue.iter().map(queued_input).collect(),
        };
        self.session
            .submit(Op::SaveQueue { queue: snapshot })
            .await
            .map(|_| ())
            .map_err(op_error)
    }

    fn notify_queue_changed(&mut self) {
        let notification = ServerNotification::QueueChanged(QueueChangedNotification {
            thread_id: self.info.id.clone(),
        });
        self.broadcast(&notification);
    }
}

/// A queue entry as the rollout keeps it.
fn queued_input(entry: &QueuedSubmission) -> QueuedInput {
    QueuedInput {
        id: entry.id.clone(),
        client_message_id: Some(entry.client_user_message_id.clone()),
        items: engine_input(&entry.input),
        original: serde_json::to_value(&entry.input).ok(),
        metadata: entry
            .responsesapi_client_metadata
            .as_ref()
            .and_then(|m| serde_json::to_value(m).ok()),
    }
}
