//! A turn's items: what it shows a person (`TurnItem`), each started and
//! completed, recorded in the rollout in the order it is shown, with ids
//! stable for the life of the session.

use std::sync::Arc;

use tiller_protocol::{EventMsg, ItemPhase, TurnItem, TurnItemKind, UserMessage};

use crate::conversation::Conversation;
use crate::events::TurnEmitter;
use crate::turn_diff::TurnDiff;

/// Shows a turn's items and records them, in that order of the rollout.
#[derive(Debug, Clone)]
pub(crate) struct TurnItems {
    turn_id: String,
    conversation: Arc<Conversation>,
    emitter: TurnEmitter,
    diff: Arc<TurnDiff>,
}

impl TurnItems {
    pub(crate) fn new(
        turn_id: &str,
        conversation: Arc<Conversation>,
        emitter: TurnEmitter,
    ) -> Self {
        TurnItems {
            turn_id: turn_id.to_string(),
            conversation,
            emitter,
            diff: Arc::default(),
        }
    }

    /// The files the turn's patches changed.
    pub(crate) fn diff(&self) -> &TurnDiff {
        &self.diff
    }

    pub(crate) fn new_id(&self) -> String {
        self.conversation.item_ids.next(&self.turn_id)
    }

    pub(crate) fn started(&self, item: TurnItem) {
        self.conversation
            .record_turn_item(&self.turn_id, ItemPhase::Started, &item);
        self.emitter.emit(EventMsg::ItemStarted { item });
    }

    pub(crate) fn completed(&self, item: TurnItem) {
        self.conversation
            .record_turn_item(&self.turn_id, ItemPhase::Completed, &item);
        self.emitter.emit(EventMsg::ItemCompleted { item });
    }

    /// A user message item, started and completed at once; returns its id.
    pub(crate) fn user_message(&self, message: &UserMessage) -> String {
        let id = self.new_id();
        let item = TurnItem::new(
            id.clone(),
            TurnItemKind::UserMessage {
                content: message.items.clone(),
                client_message_id: message.client_message_id.clone(),
            },
        );
        // Complete at once: one line on disk says both.
        self.emitter
            .emit(EventMsg::ItemStarted { item: item.clone() });
        self.completed(item);
        id
    }
}
