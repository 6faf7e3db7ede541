//! One client connection: its `initialize`, and where each of its requests
//! goes. Thread requests go to the thread's driver, which answers on this
//! connection; `thread/start` and `thread/resume` go to the [`Hub`].

use std::sync::Arc;

use tiller_app_server_protocol::{
    ClientRequest, ErrorCode, Incoming, InitializeResponse, JsonRpcError, RequestId,
    ServerNotification, ThreadLoadedListParams, ThreadLoadedListResponse,
    ThreadUnsubscribeResponse, parse_line,
};
use tiller_jsonl::Frame;

use crate::hub::Hub;
use crate::outgoing::Outgoing;
use crate::pages::page;
use crate::server::MAX_LINE_BYTES;

/// One connection's state.
pub(crate) struct Connection {
    hub: Arc<Hub>,
    out: Outgoing,
    initialized: bool,
}

impl Connection {
    pub(crate) fn new(hub: Arc<Hub>, out: Outgoing) -> Connection {
        Connection {
            hub,
            out,
            initialized: false,
        }
    }

    pub(crate) fn out(&self) -> &Outgoing {
        &self.out
    }

    /// One framed line (stdio): answered with a protocol error if it is too
    /// long or not UTF-8 (the server reads on), else handled.
    pub(crate) async fn frame(&mut self, frame: Frame) {
        match frame {
            Frame::TooLong { .. } => self.out.error(None, too_long()),
            Frame::Line(bytes) => self.bytes(&bytes).await,
        }
    }

    /// One message's bytes (a line, or a WebSocket frame).
    pub(crate) async fn bytes(&mut self, bytes: &[u8]) {
        if bytes.len() > MAX_LINE_BYTES {
            return self.out.error(None, too_long());
        }
        match std::str::from_utf8(bytes) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => self.message(text).await,
            Err(e) => self.out.error(
                None,
                JsonRpcError::new(
                    ErrorCode::ParseError,
                    format!(
                        "not a JSON message: invalid UTF-8 at byte {}",
                        e.valid_up_to()
                    ),
                ),
            ),
        }
    }

    async fn message(&mut self, text: &str) {
        let (id, method, params) = match parse_line(text) {
            Err((id, error)) => return self.out.error(id, error),
            Ok(Incoming::Notification { method, .. }) => {
                if method != "initialized" {
                    tracing::debug!(method, "ignoring a client notification");
                }
                return;
            }
            Ok(Incoming::Response { id, result }) => {
                return self.hub.answer(id, result, &self.out);
            }
            Ok(Incoming::Request { id, method, params }) => (id, method, params),
        };
        if !self.initialized && method != "initialize" {
            return self.out.error(
                Some(id),
                JsonRpcError::new(
                    ErrorCode::InvalidRequest,
                    "not initialized: send `initialize` first",
                ),
            );
        }
        let request = match ClientRequest::parse(&method, params) {
            Ok(request) => request,
            Err(error) => return self.out.error(Some(id), error),
        };
        self.request(id, request).await;
    }

    async fn request(&mut self, id: RequestId, request: ClientRequest) {
        let hub = Arc::clone(&self.hub);
        if let Some(thread) = request.thread_id() {
            let thread = thread.to_string();
            return hub.route(id, &thread, request, &self.out);
        }
        match request {
            ClientRequest::Initialize(_) => self.initialize(id),
            ClientRequest::ThreadStart(params) => hub.thread_start(id, params, &self.out).await,
            ClientRequest::ThreadResume(params) => hub.thread_resume(id, params, &self.out).await,
            ClientRequest::ThreadUnsubscribe(params) => {
                let status = hub.unsubscribe(&params.thread_id, &self.out).await;
                self.out.respond_with(
                    id,
                    &ThreadUnsubscribeResponse {
                        status: status.to_string(),
                    },
                );
            }
            ClientRequest::ThreadLoadedList(params) => match loaded_page(&hub.loaded(), &params) {
                Ok(response) => self.out.respond_with(id, &response),
                Err(error) => self.out.error(Some(id), error),
            },
            ClientRequest::ThreadFork(params) => hub.thread_fork(id, params, &self.out).await,
            ClientRequest::ThreadArchive(params) => {
                let result = hub.thread_archive(params).await;
                self.answer_then(id, result);
            }
            ClientRequest::ThreadUnarchive(params) => {
                let result = hub.thread_unarchive(params).await;
                self.answer_then(id, result);
            }
            ClientRequest::ThreadDelete(params) => {
                let result = hub.thread_delete(params).await;
                self.answer_then(id, result);
            }
            ClientRequest::ThreadMetadataUpdate(params) => {
                let result = hub.metadata_update(params).await;
                self.answer(id, result);
            }
            ClientRequest::ThreadSetName(params) => match hub.set_name(params).await {
                Ok((result, notification)) => {
                    self.out.respond(id, result);
                    if let Some(notification) = notification {
                        self.out.notify(&notification);
                    }
                }
                Err(error) => self.out.error(Some(id), error),
            },
            ClientRequest::ModelList(params) => {
                let result = crate::models::list(hub.options(), params).await;
                self.answer(id, result);
            }
            ClientRequest::ThreadItemsList(params) => {
                let result = hub.items_list(params).await;
                self.answer(id, result);
            }
            ClientRequest::ThreadRead(params) => {
                let result = hub.thread_read(params).await;
                self.answer(id, result);
            }
            ClientRequest::ThreadTurnsList(params) => {
                let result = hub.turns_list(params).await;
                self.answer(id, result);
            }
            ClientRequest::ThreadList(params) => {
                let result = hub.thread_list(params).await;
                self.answer(id, result);
            }
            // Routed above.
            _ => {}
        }
    }

    fn answer(&self, id: RequestId, result: Result<serde_json::Value, JsonRpcError>) {
        match result {
            Ok(result) => self.out.respond(id, result),
            Err(error) => self.out.error(Some(id), error),
        }
    }

    /// The answer, then the notification that says what it did.
    fn answer_then(
        &self,
        id: RequestId,
        result: Result<(serde_json::Value, ServerNotification), JsonRpcError>,
    ) {
        match result {
            Ok((result, notification)) => {
                self.out.respond(id, result);
                self.out.notify(&notification);
            }
            Err(error) => self.out.error(Some(id), error),
        }
    }

    fn initialize(&mut self, id: RequestId) {
        if self.initialized {
            return self.out.error(
                Some(id),
                JsonRpcError::new(ErrorCode::InvalidRequest, "already initialized"),
            );
        }
        self.initialized = true;
        self.out.respond_with(
            id,
            &InitializeResponse {
                user_agent: format!("tiller/{}", env!("CARGO_PKG_VERSION")),
                platform_family: "unix".to_string(),
                platform_os: std::env::consts::OS.to_string(),
                codex_home: self.hub.options().tiller_home.display().to_string(),
            },
        );
    }

    /// The connection is gone: the threads it was subscribed to run on.
    pub(crate) fn close(self) {
        self.hub.connection_closed(self.out.id());
    }
}

/// A page of the loaded threads' ids (all of them without a limit).
fn loaded_page(
    ids: &[String],
    params: &ThreadLoadedListParams,
) -> Result<ThreadLoadedListResponse, JsonRpcError> {
    let limit = params.limit.map_or(ids.len(), |l| l as usize);
    let page = page(ids, String::as_str, params.cursor.as_deref(), limit)?;
    Ok(ThreadLoadedListResponse {
        data: page.items,
        next_cursor: page.next,
    })
}

fn too_long() -> JsonRpcError {
    JsonRpcError::new(
        ErrorCode::InvalidRequest,
        format!("message longer than {MAX_LINE_BYTES} bytes; skipped"),
    )
}
