//! One way to open a session, for every front end.
//!
//! [`SessionBuilder`] does what each front end used to do for itself, the same
//! way for all of them: load the config (and collect its warnings), read the
//! provider's API key (an error names the variable to set), find a saved
//! session by id, prefix, path or `--last`, open its rollout with the session's
//! lock, take the saved model and folder unless told otherwise (a folder that is
//! gone falls back to the current one, with a warning), become the child
//! subreaper tools need, and spawn the session. Finding, locking and reading
//! a rollout (a file of any size, a lock that may be waited for) runs on the
//! blocking pool; the config file (a regular file of at most 1 MiB) is read in
//! place, so opening a new session starts no thread.

use std::path::PathBuf;
use std::sync::Arc;

use tiller_config::{Config, ConfigOverrides};
use tiller_model::ModelClient;
use tiller_protocol::{QueueSnapshot, SessionMeta};
use tiller_rollout::store::{SessionQuery, find_session};
use tiller_rollout::{LastTurn, LoadedTurn, LockWait};

use crate::error::CoreError;
use crate::events::EventStream;
use crate::session::{SessionHandle, SessionOptions, SessionSource, spawn_session_with};
use crate::tools::ToolRegistry;

/// Which saved session to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// A session id, in any case, or an unambiguous prefix of one.
    Id(String),
    /// The most recently active session.
    Last,
    /// A rollout file.
    Path(PathBuf),
}

/// Builds and spawns a session.
#[derive(Debug)]
pub struct SessionBuilder {
    home: PathBuf,
    overrides: ConfigOverrides,
    resume: Option<Resume>,
    wait: LockWait,
    ephemeral: bool,
    base_instructions: Option<String>,
    developer_instructions: Option<String>,
    tools: Option<ToolRegistry>,
    client: Option<Arc<dyn ModelClient>>,
    without_key: bool,
}

/// What a front end needs to know of a resumed session.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The file's first line.
    pub meta: SessionMeta,
    /// Every turn, with its items; a turn cut off by a crash is shown closed,
    /// as the session closed it.
    pub turns: Vec<LoadedTurn>,
    /// The first prompt.
    pub first_prompt: Option<String>,
    /// The last saved queue (app-server).
    pub queue: QueueSnapshot,
}

/// A spawned session.
#[derive(Debug)]
pub struct OpenedSession {
    /// The handle to submit ops and start turns with.
    pub handle: SessionHandle,
    /// The session's events (every turn's).
    pub events: EventStream,
    /// The checked config the session runs with.
    pub config: Config,
    /// What the person should know (config, a damaged rollout, a folder that
    /// is gone), each a sentence naming where it comes from; show them.
    pub warnings: Vec<String>,
    /// The saved session this continues.
    pub resumed: Option<Resumed>,
    /// A turn the session was killed during, now closed as interrupted.
    pub interrupted_turn_id: Option<String>,
    /// The `AGENTS.md` files whose text is sent to the model, in order.
    pub project_docs: Vec<PathBuf>,
}

impl SessionBuilder {
    /// A new saved session with the config of `home` (`$TILLER_HOME`).
    pub fn new(home: impl Into<PathBuf>) -> SessionBuilder {
        SessionBuilder {
            home: home.into(),
            overrides: ConfigOverrides::default(),
            resume: None,
            wait: LockWait::No,
            ephemeral: false,
            base_instructions: None,
            developer_instructions: None,
            tools: None,
            client: None,
            without_key: false,
        }
    }

    /// Open without the provider's API key, for work that sends nothing to
    /// the model (taking turns back): a turn started on it fails as a
    /// request with no key does.
    #[must_use]
    pub fn without_key(mut self) -> SessionBuilder {
        self.without_key = true;
        self
    }

    /// Apply these command-line overrides to the config.
    #[must_use]
    pub fn overrides(mut self, overrides: ConfigOverrides) -> SessionBuilder {
        self.overrides = overrides;
        self
    }

    /// Continue a saved session instead of starting one.
    #[must_use]
    pub fn resume(mut self, resume: Resume) -> SessionBuilder {
        self.resume = Some(resume);
        self
    }

    /// Wait for another process that has the session open (instead of failing).
    #[must_use]
    pub fn wait_for_lock(mut self, wait: bool) -> SessionBuilder {
        self.wait = if wait { LockWait::Yes } else { LockWait::No };
        self
    }

    /// Do not save the session.
    #[must_use]
    pub fn ephemeral(mut self) -> SessionBuilder {
        self.ephemeral = true;
        self
    }

    /// Replace tiller's system instructions.
    #[must_use]
    pub fn base_instructions(mut self, text: Option<String>) -> SessionBuilder {
        self.base_instructions = text;
        self
    }

    /// Add instructions after the system ones.
    #[must_use]
    pub fn developer_instructions(mut self, text: Option<String>) -> SessionBuilder {
        self.developer_instructions = text;
        self
    }

    /// Use these tools instead of the standard ones.
    #[must_use]
    pub fn tools(mut self, tools: ToolRegistry) -> SessionBuilder {
        self.tools = Some(tools);
        self
    }

    /// Use this model client instead of the provider's.
    #[must_use]
    pub fn model_client(mut self, client: Arc<dyn ModelClient>) -> SessionBuilder {
        self.client = Some(client);
        self
    }

    /// Load, open and spawn. Errors say what to do (a missing key names its
    /// variable, an unknown id says how to list sessions, a session open
    /// elsewhere names the process).
    pub async fn spawn(self) -> Result<OpenedSession, CoreError> {
        let SessionBuilder {
            home,
            mut overrides,
            resume,
            wait,
            ephemeral,
            base_instructions,
            developer_instructions,
            tools,
            client,
            without_key,
        } = self;
        let mut warnings = Vec::new();
        let opened = match resume {
            None => None,
            Some(resume) => {
                let home = home.clone();
                let opened = tokio::task::spawn_blocking(move || {
                    let path = match resume {
                        Resume::Path(path) => path,
                        Resume::Id(id) => find_session(&home, &SessionQuery::Id(id))?,
                        Resume::Last => find_session(&home, &SessionQuery::Last)?,
                    };
                    Ok::<_, CoreError>(tiller_rollout::open(&path, wait)?)
                })
                .await
                .map_err(|e| CoreError::Rollout(std::io::Error::other(e)))??;
                Some(opened)
            }
        };
        let mut resumed = None;
        if let Some(opened) = &opened {
            let loaded = &opened.loaded;
            warnings.extend(loaded.warnings.iter().cloned());
            // The saved model and folder, unless the caller says otherwise.
            if overrides.model.is_none() {
                overrides.model = Some(loaded.meta.model.clone());
            }
            if overrides.cwd.is_none() {
                let cwd = PathBuf::from(&loaded.meta.cwd);
                if cwd.is_dir() {
                    overrides.cwd = Some(cwd);
                } else {
                    warnings.push(format!(
                        "the session's folder {} is gone; working in the current folder",
                        cwd.display()
                    ));
                }
            }
            resumed = Some(Resumed {
                meta: loaded.meta.clone(),
                turns: closed_turns(&loaded.turns, loaded.open_turn.as_deref()),
                first_prompt: loaded.first_prompt.clone(),
                queue: loaded.queue.clone(),
            });
        }
        let loaded = Config::load(&home, overrides)?;
        warnings.extend(loaded.warnings);
        let mut config = loaded.config;
        // Said once, here; every command then fails with the same words.
        if let Err(why) = crate::sandbox::check_support(&config.sandbox) {
            warnings.push(why);
        }
        config.base_instructions = base_instructions.or_else(|| config.instructions.clone());
        config.developer_instructions = developer_instructions;
        let docs = {
            let (home, cwd, max) = (
                home.clone(),
                config.cwd.clone(),
                config.project_doc_max_bytes,
            );
            tokio::task::spawn_blocking(move || crate::project_docs::load(&home, &cwd, max))
                .await
                .unwrap_or_default()
        };
        warnings.extend(docs.warnings);
        config.user_instructions = docs.message;
        let project_docs = docs.files;
        let api_key = if without_key {
            None
        } else {
            config.provider.api_key()?
        };
        if let Err(e) = tiller_process::become_subreaper() {
            warnings.push(format!(
                "could not become a child subreaper ({e}): orphaned tool processes may escape"
            ));
        }
        let interrupted_turn_id = opened.as_ref().and_then(|o| o.loaded.open_turn.clone());
        let source = match opened {
            Some(opened) => SessionSource::Resume(Box::new(opened)),
            None if ephemeral => SessionSource::Ephemeral {
                history: Vec::new(),
            },
            None => SessionSource::New,
        };
        let client = match client {
            Some(client) => client,
            None => tiller_model::client_for(&config.provider, api_key.clone())?,
        };
        let options = SessionOptions {
            config: config.clone(),
            api_key,
            source,
        };
        let (handle, events) = spawn_session_with(
            options,
            client,
            tools.unwrap_or_else(|| ToolRegistry::for_config(&config)),
        )?;
        Ok(OpenedSession {
            handle,
            events,
            config,
            warnings,
            resumed,
            interrupted_turn_id,
            project_docs,
        })
    }
}

/// The turns of a rollout as the resumed session has them: a turn cut off by
/// a crash is interrupted, its open items completed as the session completes
/// them.
fn closed_turns(turns: &[LoadedTurn], open_turn: Option<&str>) -> Vec<LoadedTurn> {
    turns
        .iter()
        .map(|turn| {
            if Some(turn.id.as_str()) != open_turn {
                return turn.clone();
            }
            let open: std::collections::HashSet<&str> =
                turn.open_items.iter().map(|i| i.id.as_str()).collect();
            let mut closed = turn.clone();
            closed.status = LastTurn::Interrupted;
            closed.items = turn
                .items
                .iter()
                .map(|item| {
                    if open.contains(item.id.as_str()) {
                        crate::session::cut_off(item.clone())
                    } else {
                        item.clone()
                    }
                })
                .collect();
            closed.open_items = Vec::new();
            closed
        })
        .collect()
}
