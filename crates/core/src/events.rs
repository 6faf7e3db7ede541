//! Where events go: one channel per session, and a per-turn emitter that goes
//! quiet the moment its turn's terminal event is out (invariant I2).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tiller_protocol::{Event, EventMsg};
use tokio::sync::mpsc;

/// The receiving end of a session's events.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Event>,
}

impl EventStream {
    /// The next event; `None` once the session has ended and every event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is ready now.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

/// The sending end of a session's events.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    tx: mpsc::UnboundedSender<Event>,
}

impl EventSink {
    pub(crate) fn channel() -> (EventSink, EventStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSink { tx }, EventStream { rx })
    }

    pub(crate) fn emit(&self, turn_id: Option<&str>, msg: EventMsg) {
        // A client that dropped its stream has gone away; the session carries on.
        let _ = self.tx.send(Event {
            turn_id: turn_id.map(str::to_string),
            msg,
        });
    }

    pub(crate) fn for_turn(&self, turn_id: &str) -> TurnEmitter {
        TurnEmitter {
            sink: self.clone(),
            turn_id: turn_id.to_string(),
            open: Arc::new(AtomicBool::new(true)),
        }
    }
}

/// Emits events for one turn until [`TurnEmitter::close`].
#[derive(Debug, Clone)]
pub(crate) struct TurnEmitter {
    sink: EventSink,
    turn_id: String,
    open: Arc<AtomicBool>,
}

impl TurnEmitter {
    /// Emit `msg` for this turn, unless the turn has already ended.
    pub(crate) fn emit(&self, msg: EventMsg) {
        if self.open.load(Ordering::Acquire) {
            self.sink.emit(Some(&self.turn_id), msg);
        }
    }

    /// Emit the terminal event and stop every clone of this emitter from emitting more.
    pub(crate) fn finish(&self, msg: EventMsg) {
        if self.open.swap(false, Ordering::AcqRel) {
            self.sink.emit(Some(&self.turn_id), msg);
        }
    }
}
