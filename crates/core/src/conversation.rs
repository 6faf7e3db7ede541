//! What a session and its turns share: the settings, the model client, the
//! tools, the history and the rollout it is saved in.
//!
//! The session actor (`session.rs`) and a running turn (`turn.rs`) both work on
//! a [`Conversation`]; neither imports the other's internals.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tiller_config::{ApprovalPolicy, Config, SandboxPolicy};
use tiller_model::{ModelClient, ModelRequest, Reasoning};
use tiller_protocol::{ItemPhase, RecordedItem, ResponseItem, RolloutItem, TurnItem};
use tiller_rollout::RolloutRecorder;

use crate::compaction::ContextBudget;
use crate::history::History;
use crate::sandbox::PreparedCache;
use crate::tools::ToolRegistry;

/// What a turn runs with, from the config at first and then as the client
/// changes it (`Op::UpdateSettings`) for the next turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TurnSettings {
    pub(crate) model: String,
    pub(crate) cwd: PathBuf,
    pub(crate) approval_policy: ApprovalPolicy,
    /// What the model's commands may touch.
    pub(crate) sandbox: SandboxPolicy,
    /// The reasoning settings sent with each request (`None`: the provider's).
    pub(crate) reasoning: Option<Reasoning>,
}

/// The state of one session's conversation.
#[derive(Debug)]
pub(crate) struct Conversation {
    pub(crate) config: Config,
    /// The running turn's settings (swapped only when a turn starts).
    settings: Mutex<TurnSettings>,
    pub(crate) client: Arc<dyn ModelClient>,
    pub(crate) tools: ToolRegistry,
    pub(crate) item_ids: ItemIds,
    history: Mutex<History>,
    rollout: Option<RolloutRecorder>,
    approved_for_session: Mutex<HashSet<Vec<String>>>,
    /// The project's `AGENTS.md` message, and the folder it was read for.
    user_instructions: Mutex<(PathBuf, Option<String>)>,
    /// How big the context may get before it is compacted.
    pub(crate) context: ContextBudget,
    /// The sandbox rules last built for a command, reused while they fit.
    pub(crate) sandbox_rules: PreparedCache,
}

impl Conversation {
    pub(crate) fn new(
        config: Config,
        client: Arc<dyn ModelClient>,
        tools: ToolRegistry,
        history: Vec<ResponseItem>,
        rollout: Option<RolloutRecorder>,
    ) -> Conversation {
        let settings = Mutex::new(TurnSettings {
            model: config.model.clone(),
            cwd: config.cwd.clone(),
            approval_policy: config.approval_policy,
            sandbox: config.sandbox.clone(),
            reasoning: (config.reasoning_effort.is_some() || config.reasoning_summary.is_some())
                .then(|| Reasoning {
                    effort: config.reasoning_effort.clone(),
                    summary: config.reasoning_summary.clone(),
                }),
        });
        Conversation {
            settings,
            client,
            tools,
            item_ids: ItemIds::default(),
            history: Mutex::new(History::from_items(history)),
            rollout,
            approved_for_session: Mutex::new(HashSet::new()),
            user_instructions: Mutex::new((config.cwd.clone(), config.user_instructions.clone())),
            context: ContextBudget::new(config.context_window, config.auto_compact_token_limit),
            sandbox_rules: PreparedCache::default(),
            config,
        }
    }

    /// The settings of the running turn (or of the next, when idle).
    pub(crate) fn settings(&self) -> TurnSettings {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Use `settings` from now on: only when no turn runs, or as one starts.
    pub(crate) fn set_settings(&self, settings: TurnSettings) {
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = settings;
    }

    pub(crate) fn history(&self) -> MutexGuard<'_, History> {
        // Plain data: a panic elsewhere must not wedge the session.
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn rollout(&self) -> Option<&RolloutRecorder> {
        self.rollout.as_ref()
    }

    /// Append `item` to the history and the rollout, in the same order in both.
    /// (Repairs are not recorded: `History::repair` is positional, so a resumed
    /// history repairs to the same items.)
    pub(crate) fn record_item(&self, item: ResponseItem) {
        let mut history = self.history();
        if let Some(rollout) = &self.rollout {
            rollout.record(RolloutItem::ResponseItem(item.clone()));
        }
        history.push(item);
    }

    /// Queue a line for the rollout.
    pub(crate) fn record_line(&self, item: RolloutItem) {
        if let Some(rollout) = &self.rollout {
            rollout.record(item);
        }
    }

    /// Record a transcript item of `turn_id` as started or completed.
    pub(crate) fn record_turn_item(&self, turn_id: &str, phase: ItemPhase, item: &TurnItem) {
        self.record_line(RolloutItem::Item(RecordedItem {
            turn_id: turn_id.to_string(),
            phase,
            item: item.clone(),
        }));
    }

    /// Write `lines` after everything recorded so far (and fsync if `sync`),
    /// or write none of them and say why, in words.
    pub(crate) async fn commit(&self, lines: Vec<RolloutItem>, sync: bool) -> Result<(), String> {
        let Some(rollout) = &self.rollout else {
            return Ok(());
        };
        rollout.commit(lines, sync).await.map_err(|e| {
            tracing::error!(path = %rollout.path().display(), "could not save the session: {e}");
            format!(
                "could not save the session to {}: {e}",
                rollout.path().display()
            )
        })
    }

    pub(crate) fn is_approved(&self, command: &[String]) -> bool {
        self.approved_for_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(command)
    }

    pub(crate) fn approve_for_session(&self, command: Vec<String>) {
        self.approved_for_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(command);
    }

    /// The folder the project's instructions were read for.
    pub(crate) fn instructions_folder(&self) -> PathBuf {
        self.user_instructions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    /// The project's instructions, read again for `folder`.
    pub(crate) fn set_user_instructions(&self, folder: PathBuf, message: Option<String>) {
        *self
            .user_instructions
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = (folder, message);
    }

    /// The next request: the history checked for I1 first (a repair is
    /// returned, to be reported: aborts close the history as they happen, so a
    /// gap here is a bug in tiller), the instructions and the tools.
    pub(crate) fn prepare_request(&self) -> (ModelRequest, crate::history::Repair) {
        let mut request = self.request_without_history();
        let repair = {
            let mut history = self.history();
            let repair = history.repair();
            request.input.extend_from_slice(history.items());
            repair
        };
        (request, repair)
    }

    /// The next request with only what comes before the history in its
    /// input: the settings, the instructions, the tools and the project's
    /// instructions.
    pub(crate) fn request_without_history(&self) -> ModelRequest {
        let settings = self.settings();
        let project = self
            .user_instructions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone();
        ModelRequest {
            model: settings.model,
            instructions: instructions(&self.config, &settings.cwd),
            // The project's instructions come first, as Codex sends them; they
            // are not in the history (a resumed session reads them afresh).
            input: project.map(ResponseItem::user_text).into_iter().collect(),
            tools: self.tools.specs(),
            reasoning: settings.reasoning,
        }
    }
}

fn instructions(config: &Config, cwd: &Path) -> String {
    let base = config.base_instructions.clone().unwrap_or_else(|| {
        format!(
            "You are tiller, a coding agent working in the user's workspace at {}.\n\n\
             How to work:\n\
             - Use the `shell` tool to look at files and run commands. Pass the command as an argv array, \
             for example [\"bash\", \"-lc\", \"rg -n 'fn main' src\"]; set `workdir` for another folder.\n\
             - Read before you change: find the relevant files, read them, then act.\n\
             - Make the smallest change that does the job; follow the code's existing style.\n\
             - Edit files with the `apply_patch` tool, not with shell redirections: its `input` is a patch \
             from `*** Begin Patch` to `*** End Patch` with `*** Add File: PATH` (every line `+`), \
             `*** Delete File: PATH` or `*** Update File: PATH` (optionally `*** Move to: NEW`) followed by \
             `@@` chunks of context (` `), removed (`-`) and added (`+`) lines, paths relative to the workspace. \
             A patch that does not apply changes nothing and says which file and chunk to fix.\n\
             - Run the project's tests or build after a change when you can, and fix what you broke.\n\
             - Do not run commands that destroy work you were not asked to touch.\n\
             - The user may add messages while you work, or stop you; follow the newest.\n\n\
             When you are done, say briefly what you changed (files), how you checked it, and what is left.",
            cwd.display()
        )
    });
    match &config.developer_instructions {
        Some(extra) => format!("{base}\n\n{extra}"),
        None => base,
    }
}

/// Item ids of one session: `<turn id>-item-<n>`, stable on disk and on every wire.
#[derive(Debug, Default)]
pub(crate) struct ItemIds {
    next: AtomicU64,
}

impl ItemIds {
    pub(crate) fn next(&self, turn_id: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{turn_id}-item-{n}")
    }
}
