//! What the UI is started with: where the server is, which session to open,
//! and the settings of a new one.

use tiller_client::ClientOptions;
use tiller_client::protocol::ThreadStartParams;

/// Which session the UI opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Open {
    /// A new one.
    New,
    /// The picker (`tiller resume`).
    Picker,
    /// The newest (`tiller resume --last`).
    Last,
    /// This one (`tiller resume ID`).
    Thread(String),
    /// The most recently active thread of a server others drive
    /// (`--remote` without a session), or a new one.
    Attach,
}

/// How to start the UI.
#[derive(Debug, Clone)]
pub struct TuiOptions {
    /// The server: in this process, or one listening (`--remote`).
    pub client: ClientOptions,
    /// Which session to open.
    pub open: Open,
    /// A first message, sent once the session is open.
    pub prompt: Option<String>,
    /// The settings of a new thread (folder, model, approvals, `-c`).
    pub thread: ThreadStartParams,
}
