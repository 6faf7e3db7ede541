//! `thread/archive`, `thread/unarchive` and `thread/delete`. A loaded thread
//! is unloaded first (only when no turn runs: the client interrupts first);
//! its subscribers get `thread/closed`. Archived threads are kept under
//! `$TILLER_HOME/archived_sessions/` and are not found, listed (without
//! `archived: true`) or resumed until unarchived.

use serde_json::{Value, json};
use tiller_app_server_protocol::{
    ErrorCode, JsonRpcError, ServerNotification, ThreadIdNotification, ThreadIdParams, ThreadStatus,
};
use tiller_core::rollout::archive::{archive, find_archived, unarchive};
use tiller_core::rollout::store::{SessionQuery, find_session, session_id_of};
use tokio::sync::oneshot;

use super::{Hub, canonical_id};
use crate::convert;
use crate::saved;
use crate::thread::ThreadCommand;

impl Hub {
    /// `thread/archive`: `{}`, then `thread/archived` (the answer and the
    /// notification to send after it).
    pub(crate) async fn thread_archive(
        &self,
        params: ThreadIdParams,
    ) -> Result<(Value, ServerNotification), JsonRpcError> {
        let path = self.unload(&params.thread_id).await?;
        let home = self.options.tiller_home.clone();
        let id = session_id_of(&path).unwrap_or_default().to_string();
        blocking(move || archive(&home, &path).map(|_| ())).await?;
        let archived = ServerNotification::ThreadArchived(ThreadIdNotification { thread_id: id });
        Ok((json!({}), archived))
    }

    /// `thread/unarchive`: `{thread}` (not loaded), then `thread/unarchived`.
    pub(crate) async fn thread_unarchive(
        &self,
        params: ThreadIdParams,
    ) -> Result<(Value, ServerNotification), JsonRpcError> {
        let id = canonical_id(&params.thread_id);
        let home = self.options.tiller_home.clone();
        let found = {
            let home = home.clone();
            let id = id.clone();
            blocking(move || Ok(find_archived(&home, &id))).await?
        };
        let Some(path) = found else {
            return Err(JsonRpcError::new(
                ErrorCode::InvalidRequest,
                format!("no archived thread {id}"),
            ));
        };
        blocking(move || unarchive(&home, &path).map(|_| ())).await?;
        let rollout = saved::load(&self.options.tiller_home, &id).await?;
        let mut thread = saved::thread_of(&rollout, ThreadStatus::NotLoaded, false);
        thread.name = self.names.get(&thread.id);
        let unarchived =
            ServerNotification::ThreadUnarchived(ThreadIdNotification { thread_id: id });
        Ok((json!({ "thread": thread }), unarchived))
    }

    /// `thread/delete`: the thread's file is removed (archived or not);
    /// `{}`, then `thread/deleted`.
    pub(crate) async fn thread_delete(
        &self,
        params: ThreadIdParams,
    ) -> Result<(Value, ServerNotification), JsonRpcError> {
        let id = canonical_id(&params.thread_id);
        let path = match find_archived(&self.options.tiller_home, &id) {
            Some(path) => path,
            None => self.unload(&id).await?,
        };
        let thread_id = session_id_of(&path).unwrap_or_default().to_string();
        blocking(move || std::fs::remove_file(&path)).await?;
        let deleted = ServerNotification::ThreadDeleted(ThreadIdNotification { thread_id });
        Ok((json!({}), deleted))
    }

    /// The thread's file, with the thread unloaded if it was loaded;
    /// refused while a turn runs.
    async fn unload(&self, thread_id: &str) -> Result<std::path::PathBuf, JsonRpcError> {
        let _opening = self.opening.lock().await;
        let home = self.options.tiller_home.clone();
        let query = canonical_id(thread_id);
        let path = blocking(move || {
            find_session(&home, &SessionQuery::Id(query))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()))
        })
        .await
        .map_err(|e| JsonRpcError::new(ErrorCode::InvalidRequest, e.message))?;
        let id = session_id_of(&path).unwrap_or_default().to_string();
        if let Some(thread) = self.thread(&id) {
            let (tx, rx) = oneshot::channel();
            let closed = thread.send(ThreadCommand::Close(tx)) && rx.await.unwrap_or(false);
            if !closed {
                return Err(JsonRpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("thread {id} is running a turn; interrupt it first"),
                ));
            }
            self.threads().remove(&id);
        }
        Ok(path)
    }
}

/// File work off the event loop; an I/O error is the server's (-32603).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, JsonRpcError> {
    convert::blocking(move || {
        work().map_err(|e| JsonRpcError::new(ErrorCode::InternalError, e.to_string()))
    })
    .await
}
