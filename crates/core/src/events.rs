//! Where events go: one channel per session, and a per-turn emitter that goes
//! quiet the moment its turn's terminal event is out (invariant I2).
//!
//! # What a reader that falls behind costs
//!
//! The engine never waits for a reader: a turn must not stall because a
//! client stopped reading. Most events are bounded by what the model says (and
//! the conversation holds that anyway), but a command's output is not: a tool
//! that prints a gigabyte would queue a gigabyte of deltas for a client that
//! reads nothing. So an [`event_channel`] holds at most
//! [`MAX_QUEUED_OUTPUT_BYTES`] of `ExecCommandOutputDelta` chunks that the
//! reader has not taken yet; further chunks are dropped until it catches up.
//! Nothing else is ever dropped: output deltas are the one coalescible kind,
//! because the command's `ExecCommandEnd` carries its output (head and tail,
//! as the model reads it) whatever the deltas carried.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tiller_protocol::{Event, EventMsg};
use tokio::sync::mpsc;

/// How many bytes of command output deltas a channel holds for a reader that
/// has not taken them; past this, new output deltas are dropped.
pub const MAX_QUEUED_OUTPUT_BYTES: usize = 1024 * 1024;

/// A channel of events that drops command output deltas past
/// [`MAX_QUEUED_OUTPUT_BYTES`] not yet received (see the module docs). The
/// engine's own events come through one; a front end that hands events on to
/// another task can use one too.
pub fn event_channel() -> (EventSender, EventStream) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        EventSender {
            tx,
            queued: Arc::clone(&queued),
        },
        EventStream { rx, queued },
    )
}

/// The sending end of an [`event_channel`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: mpsc::UnboundedSender<Event>,
    queued: Arc<AtomicUsize>,
}

impl EventSender {
    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Queue `event`; `false` if the receiver is gone. A command output delta
    /// is dropped (and `true` returned) when the reader is too far behind.
    pub fn send(&self, event: Event) -> bool {
        if let EventMsg::ExecCommandOutputDelta { chunk, .. } = &event.msg {
            let len = chunk.len();
            let before = self.queued.fetch_add(len, Ordering::AcqRel);
            if before + len > MAX_QUEUED_OUTPUT_BYTES {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                return !self.tx.is_closed();
            }
        }
        self.tx.send(event).is_ok()
    }
}

/// The receiving end of a session's events (or of any [`event_channel`]).
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Event>,
    queued: Arc<AtomicUsize>,
}

impl EventStream {
    /// The next event; `None` once the session has ended and every event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        let event = self.rx.recv().await;
        self.taken(event)
    }

    /// The next event if one is ready now.
    pub fn try_recv(&mut self) -> Option<Event> {
        let event = self.rx.try_recv().ok();
        self.taken(event)
    }

    fn taken(&self, event: Option<Event>) -> Option<Event> {
        if let Some(Event {
            msg: EventMsg::ExecCommandOutputDelta { chunk, .. },
            ..
        }) = &event
        {
            self.queued.fetch_sub(chunk.len(), Ordering::AcqRel);
        }
        event
    }
}

/// The sending end of a session's events.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    tx: EventSender,
}

impl EventSink {
    pub(crate) fn channel() -> (EventSink, EventStream) {
        let (tx, rx) = event_channel();
        (EventSink { tx }, rx)
    }

    pub(crate) fn emit(&self, turn_id: Option<&str>, msg: EventMsg) {
        // A client that dropped its stream has gone away; the session carries on.
        let _ = self.tx.send(Event {
            turn_id: turn_id.map(Arc::from),
            msg,
        });
    }

    /// The emitter of one turn; with `turn_events`, the turn's events also go
    /// there (the caller's [`crate::TurnHandle`]).
    pub(crate) fn for_turn(&self, turn_id: &str, turn_events: Option<EventSender>) -> TurnEmitter {
        TurnEmitter {
            sink: self.clone(),
            turn_events,
            turn_id: Arc::from(turn_id),
            open: Arc::new(AtomicBool::new(true)),
        }
    }
}

/// Emits events for one turn until [`TurnEmitter::close`].
#[derive(Debug, Clone)]
pub(crate) struct TurnEmitter {
    sink: EventSink,
    /// The turn's own stream, when its starter holds one.
    turn_events: Option<EventSender>,
    turn_id: Arc<str>,
    open: Arc<AtomicBool>,
}

impl TurnEmitter {
    /// Emit `msg` for this turn, unless the turn has already ended.
    pub(crate) fn emit(&self, msg: EventMsg) {
        if self.open.load(Ordering::Acquire) {
            self.send(msg);
        }
    }

    /// Emit the terminal event and stop every clone of this emitter from emitting more.
    pub(crate) fn finish(&self, msg: EventMsg) {
        if self.open.swap(false, Ordering::AcqRel) {
            self.send(msg);
        }
    }

    /// To the session's stream and the turn's own, copying only when both
    /// are read.
    fn send(&self, msg: EventMsg) {
        let event = Event {
            turn_id: Some(Arc::clone(&self.turn_id)),
            msg,
        };
        match &self.turn_events {
            Some(turn) if !turn.is_closed() => {
                if !self.sink.tx.is_closed() {
                    let _ = self.sink.tx.send(event.clone());
                }
                turn.send(event);
            }
            Some(_) | None => {
                let _ = self.sink.tx.send(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiller_protocol::ExecOutputStream;

    fn delta(bytes: usize) -> Event {
        Event {
            turn_id: Some("t".into()),
            msg: EventMsg::ExecCommandOutputDelta {
                item_id: "t-item-1".into(),
                call_id: "c".into(),
                stream: ExecOutputStream::Stdout,
                chunk: "x".repeat(bytes),
            },
        }
    }

    #[test]
    fn a_reader_that_falls_behind_loses_only_output_deltas_past_the_limit() {
        let (tx, mut rx) = event_channel();
        for _ in 0..4096 {
            assert!(tx.send(delta(1024)));
            assert!(tx.send(Event {
                turn_id: Some("t".into()),
                msg: EventMsg::AgentMessageDelta {
                    item_id: "t-item-2".into(),
                    delta: "a".into(),
                },
            }));
        }
        let (mut output, mut others) = (0, 0);
        while let Some(event) = rx.try_recv() {
            match event.msg {
                EventMsg::ExecCommandOutputDelta { chunk, .. } => output += chunk.len(),
                _ => others += 1,
            }
        }
        assert_eq!(output, MAX_QUEUED_OUTPUT_BYTES);
        assert_eq!(
            others, 4096,
            "an event that is not an output delta was dropped"
        );
        // Caught up: output flows again.
        assert!(tx.send(delta(10)));
        assert!(matches!(
            rx.try_recv(),
            Some(Event {
                msg: EventMsg::ExecCommandOutputDelta { .. },
                ..
            })
        ));
        drop(rx);
        assert!(!tx.send(delta(1)));
    }
}
