//! Where `tiller exec` shows a turn: for a person ([`crate::human`]) or for a
//! program ([`crate::jsonl`]). The event loop (`run.rs`) knows only this trait.

use tiller_protocol::Event;

/// Where events are shown. An error from `session_started` or `event` means
/// stdout cannot be written any more (its reader went away).
pub(crate) trait Printer {
    /// The session is ready.
    fn session_started(&mut self, session_id: &str) -> std::io::Result<()>;
    /// One event of the turn.
    fn event(&mut self, event: &Event) -> std::io::Result<()>;
    /// A note for the person at the terminal (stderr in both modes).
    fn note(&mut self, text: &str);
    /// A question on stderr, answered on the terminal (no newline).
    fn ask(&mut self, question: &str);
    /// The run is over: how to continue the session.
    fn finished(&mut self, session_id: &str);
}
