//! One ACP session's driver: the task that owns the engine session, starts
//! a turn for a `session/prompt`, steers (or queues) a prompt sent while
//! one runs, interrupts on `session/cancel`, sends the turn's events as
//! `session/update`s and answers every prompt of a turn when it ends:
//! `end_turn`, `cancelled` (also when the interrupt raised errors), or an
//! error with the engine's message for a failed turn.

use std::collections::VecDeque;

use agent_client_protocol::v1::schema as acp;
use agent_client_protocol::v1::{ConnectionTo, Responder};
use agent_client_protocol::{Client, Error};
use tiller_core::{EventStream, OpenedSession, SessionHandle};
use tiller_protocol::{Event, EventMsg, Op, UserInput, UserMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::permission;
use crate::translate::Translator;

/// The most prompts that wait on one session at once: the running turn's
/// (the one that started it, those steered in) and the queued ones. One more
/// is answered with an error and changes nothing.
pub const MAX_WAITING_PROMPTS: usize = 64;

/// What a `session/prompt` sent while a turn runs does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhileRunning {
    /// It joins the running turn (delivered to the model at the next
    /// step), and is answered when that turn ends.
    #[default]
    Steer,
    /// It waits, and runs as the next turn.
    Queue,
}

/// What the connection asks of a session.
pub(crate) enum Command {
    /// Run (or steer in) a prompt; answer `responder` when its turn ends.
    Prompt {
        input: Vec<UserInput>,
        responder: Responder<acp::PromptResponse>,
    },
    /// `session/cancel`: stop the running turn and the queued prompts.
    Cancel,
}

/// The running turn.
struct Running {
    id: String,
    /// Every prompt this turn answers (the one that started it, and those
    /// steered in).
    responders: Vec<Responder<acp::PromptResponse>>,
    /// Cancels the turn's pending permission requests.
    asking: CancellationToken,
    /// A `session/cancel` came: the turn ends `cancelled`, whatever else
    /// the interrupt raised.
    cancelled: bool,
}

struct Driver {
    session: SessionHandle,
    events: EventStream,
    cx: ConnectionTo<Client>,
    id: acp::SessionId,
    while_running: WhileRunning,
    running: Option<Running>,
    queued: VecDeque<(Vec<UserInput>, Responder<acp::PromptResponse>)>,
    translator: Translator,
}

/// Start `opened`'s driver; the connection sends it [`Command`]s. When the
/// sender is dropped (the connection ended) the running turn is
/// interrupted and the session shut down.
pub(crate) fn spawn(
    opened: OpenedSession,
    cx: ConnectionTo<Client>,
    while_running: WhileRunning,
) -> mpsc::UnboundedSender<Command> {
    let (tx, rx) = mpsc::unbounded_channel();
    let id = acp::SessionId::new(opened.handle.session_id().to_string());
    let driver = Driver {
        session: opened.handle,
        events: opened.events,
        cx,
        id,
        while_running,
        running: None,
        queued: VecDeque::new(),
        translator: Translator::new(opened.config.cwd),
    };
    tokio::spawn(driver.run(rx));
    tx
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Prompt { input, responder }) => self.prompt(input, responder).await,
                    Some(Command::Cancel) => self.cancel().await,
                    None => break,
                },
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(event).await,
                    None => break,
                },
            }
        }
        // The client went away: nothing may keep running for it.
        let _ = self.session.submit(Op::Shutdown).await;
    }

    async fn prompt(&mut self, input: Vec<UserInput>, responder: Responder<acp::PromptResponse>) {
        let Some(running) = &mut self.running else {
            self.start(input, responder).await;
            return;
        };
        if running.responders.len() + self.queued.len() >= MAX_WAITING_PROMPTS {
            let _ = responder.respond_with_error(Error::invalid_request().data(format!(
                "{MAX_WAITING_PROMPTS} prompts already wait on this session; \
                 wait for its turn to end, or cancel it"
            )));
            return;
        }
        if self.while_running == WhileRunning::Steer
            && self
                .session
                .steer(input.clone(), running.id.clone(), None)
                .await
                .is_ok()
        {
            running.responders.push(responder);
            // Where it joined the turn: the client sees its message there.
            for text in input.iter().map(UserInput::model_text) {
                let chunk = acp::ContentChunk::new(text.into());
                let _ = self.cx.send_notification(acp::SessionNotification::new(
                    self.id.clone(),
                    acp::SessionUpdate::UserMessageChunk(chunk),
                ));
            }
            return;
        }
        // Queued by choice, or the turn ended as the steer arrived.
        self.queued.push_back((input, responder));
    }

    async fn start(&mut self, input: Vec<UserInput>, responder: Responder<acp::PromptResponse>) {
        match self
            .session
            .start_turn(vec![UserMessage::new(input)], None)
            .await
        {
            Ok(turn) => {
                self.running = Some(Running {
                    id: turn.id().to_string(),
                    responders: vec![responder],
                    asking: CancellationToken::new(),
                    cancelled: false,
                });
            }
            Err(e) => {
                let _ = responder.respond_with_error(Error::internal_error().data(e.to_string()));
            }
        }
    }

    async fn cancel(&mut self) {
        for (_, responder) in self.queued.drain(..) {
            let _ = responder.respond(acp::PromptResponse::new(acp::StopReason::Cancelled));
        }
        if let Some(running) = &mut self.running {
            running.cancelled = true;
            // The client answers its pending permission requests
            // `cancelled`; the turn does not wait for that.
            running.asking.cancel();
            let _ = self.session.submit(Op::Interrupt).await;
        }
    }

    async fn on_event(&mut self, event: Event) {
        for update in self.translator.updates(&event.msg) {
            let _ = self
                .cx
                .send_notification(acp::SessionNotification::new(self.id.clone(), update));
        }
        let Some(running) = &self.running else {
            return;
        };
        if event.turn_id.as_deref() != Some(running.id.as_str()) {
            return;
        }
        if let Some(question) = permission::Question::of(&event.msg, &self.translator) {
            tokio::spawn(permission::ask(
                self.cx.clone(),
                self.id.clone(),
                self.session.clone(),
                question,
                running.asking.child_token(),
            ));
        }
        if event.msg.is_terminal() {
            self.turn_ended(&event.msg).await;
        }
    }

    async fn turn_ended(&mut self, end: &EventMsg) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.asking.cancel();
        let answer: Result<acp::StopReason, Error> = match end {
            _ if running.cancelled => Ok(acp::StopReason::Cancelled),
            EventMsg::TurnCompleted { .. } => Ok(acp::StopReason::EndTurn),
            EventMsg::TurnAborted { .. } => Ok(acp::StopReason::Cancelled),
            EventMsg::TurnFailed { error, .. } => {
                Err(Error::internal_error().data(error.message.clone()))
            }
            _ => Ok(acp::StopReason::EndTurn),
        };
        for responder in running.responders {
            let _ = match &answer {
                Ok(reason) => responder.respond(acp::PromptResponse::new(*reason)),
                Err(e) => responder.respond_with_error(e.clone()),
            };
        }
        if let Some((input, responder)) = self.queued.pop_front() {
            self.start(input, responder).await;
        }
    }
}
