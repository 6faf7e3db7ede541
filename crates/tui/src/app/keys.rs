//! What each key does, by what is on screen.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tiller_client::protocol::McpServerElicitationAction;

use super::{App, Approval, Choice, ChoiceKind, Overlay, Pager, Picker};
use crate::cell::Tone;
use crate::effect::Effect;
use crate::slash::{self, SlashCommand};

/// The approval policies `/approvals` offers.
pub const POLICIES: &[(&str, &str)] = &[
    (
        "untrusted",
        "ask before any command that is not read-only, and before edits",
    ),
    (
        "on-request",
        "run commands in the sandbox; the model may ask to run one outside it",
    ),
    (
        "on-failure",
        "run commands in the sandbox; ask to run one again outside it when it fails there",
    ),
    (
        "never",
        "never ask: run every command the model calls (in the sandbox)",
    ),
];

impl App {
    /// A key was pressed.
    pub fn key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.ctrl_c();
            return;
        }
        self.quit_armed = false;
        self.flash = None;
        match self.overlay.take() {
            Some(Overlay::Approval(approval)) => self.approval_key(approval, key),
            Some(Overlay::Elicitation(form)) => self.elicitation_key(form, key),
            Some(Overlay::Pager(pager)) => self.pager_key(pager, key),
            Some(Overlay::Picker(picker)) => self.picker_key(picker, key),
            Some(Overlay::Choice(choice)) => self.choice_key(choice, key),
            None => self.composer_key(key),
        }
    }

    /// Text pasted (bracketed paste): into the note being typed, the
    /// field of an MCP server's question, or the composer.
    pub fn paste(&mut self, text: &str) {
        match &mut self.overlay {
            Some(Overlay::Approval(Approval {
                note: Some(note), ..
            })) => {
                note.push_str(text);
                return;
            }
            Some(Overlay::Elicitation(form)) => {
                form.paste(text);
                return;
            }
            Some(
                Overlay::Approval(_) | Overlay::Pager(_) | Overlay::Picker(_) | Overlay::Choice(_),
            )
            | None => {}
        }
        if self.overlay.is_some() {
            return;
        }
        if !self.composer.insert(text) {
            self.flash = Some("the paste was cut: the composer holds at most 1 MiB".into());
        }
    }

    /// Ctrl+C: abort at an approval, cancel an MCP server's question and
    /// interrupt, interrupt a running turn, clear the composer, or (asked
    /// once) quit.
    fn ctrl_c(&mut self) {
        match self.overlay.take() {
            Some(Overlay::Approval(approval)) => {
                self.interrupting = Some("ctrl+c at the approval".into());
                self.effect(Effect::Answer {
                    request_id: approval.request_id,
                    decision: "cancel",
                });
                self.next_request();
                return;
            }
            Some(Overlay::Elicitation(form)) => {
                self.effect(Effect::AnswerElicitation {
                    request_id: form.request_id,
                    action: McpServerElicitationAction::Cancel,
                    content: None,
                });
                self.interrupt("ctrl+c at the MCP server's question");
                self.next_request();
                return;
            }
            Some(Overlay::Pager(_) | Overlay::Picker(_) | Overlay::Choice(_)) | None => {}
        }
        if self.is_busy() {
            self.interrupt("ctrl+c pressed");
        } else if !self.composer.text().is_empty() {
            self.composer.clear();
        } else if self.quit_armed {
            self.exit = Some(0);
        } else {
            self.quit_armed = true;
            self.flash = Some("press ctrl+c again to quit".into());
        }
    }

    fn composer_key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        let menu = slash::completions(self.composer.text());
        match key.code {
            KeyCode::Esc => {
                if self.is_busy() {
                    self.interrupt("esc pressed");
                } else if menu.is_some() {
                    self.composer.clear();
                }
            }
            KeyCode::Enter if shift || alt => {
                self.composer.insert("\n");
            }
            KeyCode::Char('j') if ctrl => {
                self.composer.insert("\n");
            }
            KeyCode::Enter => self.enter(menu.as_deref()),
            KeyCode::Tab => {
                if let Some(menu) = menu.filter(|m| !m.is_empty()) {
                    let (_, name, _) = menu[self.menu_index.min(menu.len() - 1)];
                    self.composer.set(&format!("/{name} "));
                } else if !self.composer.is_blank() {
                    let text = self.composer.take();
                    self.enqueue(text);
                }
            }
            KeyCode::Up if alt => self.edit_last_queued(),
            KeyCode::Up => match menu {
                Some(_) => self.menu_index = self.menu_index.saturating_sub(1),
                None => self.composer.up(),
            },
            KeyCode::Down => match menu {
                Some(menu) => {
                    self.menu_index = (self.menu_index + 1).min(menu.len().saturating_sub(1));
                }
                None => self.composer.down(),
            },
            KeyCode::PageUp => {
                let page = self.page();
                let width = self.view_width;
                let height = self.view_height;
                self.transcript.scroll(-page, width, height);
            }
            KeyCode::PageDown => {
                let page = self.page();
                let width = self.view_width;
                let height = self.view_height;
                self.transcript.scroll(page, width, height);
            }
            KeyCode::Home if ctrl => self.transcript.scroll_to_start(),
            KeyCode::End if ctrl => self.transcript.scroll_to_end(),
            KeyCode::Char('t') if ctrl => self.open_transcript_pager(),
            KeyCode::Char('a') if ctrl => self.composer.home(),
            KeyCode::Char('e') if ctrl => self.composer.end(),
            KeyCode::Char('u') if ctrl => self.composer.delete_to_line_start(),
            KeyCode::Char('w') if ctrl => self.composer.delete_word(),
            KeyCode::Backspace if alt => self.composer.delete_word(),
            KeyCode::Left => self.composer.left(),
            KeyCode::Right => self.composer.right(),
            KeyCode::Home => self.composer.home(),
            KeyCode::End => self.composer.end(),
            KeyCode::Backspace => self.composer.backspace(),
            KeyCode::Delete => self.composer.delete(),
            KeyCode::Char(c) if !ctrl && !alt => {
                self.composer.insert(c.encode_utf8(&mut [0; 4]));
            }
            _ => {}
        }
        if slash::completions(self.composer.text()).is_none() {
            self.menu_index = 0;
        }
    }

    fn page(&self) -> isize {
        isize::try_from(self.view_height.saturating_sub(2).max(1)).unwrap_or(1)
    }

    /// Enter: run a command, send a message, or start the queue.
    fn enter(&mut self, menu: Option<&[(SlashCommand, &'static str, &'static str)]>) {
        if let Some(menu) = menu.filter(|m| !m.is_empty())
            && slash::parse(self.composer.text()).is_none()
        {
            let (_, name, _) = menu[self.menu_index.min(menu.len() - 1)];
            self.composer.set(&format!("/{name}"));
        }
        if let Some((command, argument)) = slash::parse(self.composer.text()) {
            let argument = argument.to_owned();
            self.composer.take();
            self.run_command(command, &argument);
            return;
        }
        if self.composer.is_blank() {
            if !self.is_busy() && !self.queue.is_empty() {
                self.effect(Effect::QueueStart);
            }
            return;
        }
        if self.thread.is_none() {
            self.flash = Some("no session is open yet (see above); the text stays here".into());
            return;
        }
        let text = self.composer.take();
        self.send(text);
    }

    /// Alt+Up: the last queued message back into the composer to edit (or
    /// to drop, by clearing it).
    fn edit_last_queued(&mut self) {
        if !self.composer.is_blank() {
            self.flash = Some("empty the composer first to edit a queued message".into());
            return;
        }
        let Some(entry) = self.queue.pop() else {
            return;
        };
        let text = crate::app::server::input_text(&entry.input);
        self.effect(Effect::QueueTake { id: entry.id, text });
    }

    fn run_command(&mut self, command: SlashCommand, argument: &str) {
        let busy = self.is_busy();
        let refuse_while_busy = |app: &mut App, what: &str| {
            app.flash = Some(format!("a turn is running: press esc first to {what}"));
        };
        match command {
            SlashCommand::New if busy => refuse_while_busy(self, "start a new conversation"),
            SlashCommand::New => self.effect(Effect::StartThread),
            SlashCommand::Resume if busy => refuse_while_busy(self, "open another session"),
            SlashCommand::Resume => {
                self.overlay = Some(Overlay::Picker(Picker::default()));
                self.effect(Effect::ListThreads);
            }
            SlashCommand::Model if !argument.is_empty() => self.effect(Effect::Settings {
                model: Some(argument.to_owned()),
                approval_policy: None,
            }),
            SlashCommand::Model => {
                self.overlay = Some(Overlay::Choice(Choice {
                    kind: ChoiceKind::Model,
                    options: Vec::new(),
                    selected: 0,
                }));
                self.effect(Effect::ListModels);
            }
            SlashCommand::Approvals if !argument.is_empty() => self.effect(Effect::Settings {
                model: None,
                approval_policy: Some(argument.to_owned()),
            }),
            SlashCommand::Approvals => {
                let current = self.thread.as_ref().map(|t| t.approval_policy.clone());
                let options: Vec<(String, String)> = POLICIES
                    .iter()
                    .map(|(name, what)| ((*name).to_owned(), (*what).to_owned()))
                    .collect();
                let selected = options
                    .iter()
                    .position(|(name, _)| Some(name) == current.as_ref())
                    .unwrap_or(0);
                self.overlay = Some(Overlay::Choice(Choice {
                    kind: ChoiceKind::Approvals,
                    options,
                    selected,
                }));
            }
            SlashCommand::Compact if busy => refuse_while_busy(self, "compact"),
            SlashCommand::Compact => self.effect(Effect::Compact),
            SlashCommand::Diff => match self.last_diff.clone() {
                Some(diff) => {
                    self.overlay = Some(Overlay::Pager(Pager::new(
                        "edits of the last turn",
                        crate::pager::diff_lines(&diff),
                        false,
                    )));
                }
                None => self.notice(
                    "no edits by apply_patch in this session yet (edits made by shell commands are undone by /undo but not shown here)",
                    Tone::Info,
                ),
            },
            SlashCommand::Status => {
                let text = self.status_report();
                self.notice(text, Tone::Info);
            }
            SlashCommand::Mcp => {
                let text = self.mcp_report();
                self.notice(text, Tone::Info);
            }
            SlashCommand::Undo if busy => refuse_while_busy(self, "undo"),
            SlashCommand::Undo => match self.turn_ids.last() {
                Some(last) => {
                    let before_turn_id = last.clone();
                    self.own_reverts += 1;
                    self.effect(Effect::Revert { before_turn_id });
                }
                None => self.notice("nothing to undo", Tone::Info),
            },
            SlashCommand::Redo if busy => refuse_while_busy(self, "redo"),
            SlashCommand::Redo => {
                self.own_reverts += 1;
                self.effect(Effect::Unrevert);
            }
            SlashCommand::Quit => self.exit = Some(0),
        }
    }

    fn status_report(&self) -> String {
        let mut lines = Vec::new();
        match &self.thread {
            Some(thread) => {
                lines.push(format!("session  {}", thread.id));
                lines.push(format!("model    {}", thread.model));
                lines.push(format!("folder   {}", thread.cwd));
                lines.push(format!("approval {}", thread.approval_policy));
                lines.push(format!("sandbox  {}", thread.sandbox));
            }
            None => lines.push("no session open yet".to_owned()),
        }
        if let Some(tokens) = &self.tokens {
            lines.push(format!(
                "tokens   {} in ({} cached) · {} out · {} total this session",
                tokens.total.input_tokens,
                tokens.total.cached_input_tokens,
                tokens.total.output_tokens,
                tokens.total.total_tokens
            ));
        }
        if !self.queue.is_empty() {
            lines.push(format!("queued   {} message(s)", self.queue.len()));
        }
        lines.join("\n")
    }

    fn open_transcript_pager(&mut self) {
        self.overlay = Some(Overlay::Pager(Pager::new(
            "transcript",
            self.transcript.full_lines(),
            true,
        )));
    }

    fn approval_key(&mut self, mut approval: Approval, key: KeyEvent) {
        if let Some(note) = &mut approval.note {
            match key.code {
                KeyCode::Enter => {
                    let note = std::mem::take(note);
                    self.decline(approval, note);
                }
                KeyCode::Esc => {
                    approval.note = None;
                    self.overlay = Some(Overlay::Approval(approval));
                }
                KeyCode::Backspace => {
                    note.pop();
                    self.overlay = Some(Overlay::Approval(approval));
                }
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                    note.push(c);
                    self.overlay = Some(Overlay::Approval(approval));
                }
                _ => self.overlay = Some(Overlay::Approval(approval)),
            }
            return;
        }
        let decision = match key.code {
            KeyCode::Char('y') => "accept",
            KeyCode::Char('a') => "acceptForSession",
            KeyCode::Char('n') => {
                approval.note = Some(String::new());
                self.overlay = Some(Overlay::Approval(approval));
                return;
            }
            KeyCode::Esc => {
                self.interrupting = Some("esc at the approval".into());
                "cancel"
            }
            KeyCode::Char('t') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.overlay = Some(Overlay::Approval(approval));
                return;
            }
            _ => {
                self.overlay = Some(Overlay::Approval(approval));
                return;
            }
        };
        self.effect(Effect::Answer {
            request_id: approval.request_id,
            decision,
        });
        self.next_request();
    }

    /// `n`, then Enter: decline, and tell the model why (as a steer into
    /// the turn, which it reads with the declined call's output).
    fn decline(&mut self, approval: Approval, note: String) {
        let note = note.trim().to_owned();
        if !note.is_empty() && self.running_turn() == Some(approval.turn_id.as_str()) {
            let client_id = self.client_id();
            self.pending_steers.push(super::PendingSteer {
                text: note.clone(),
                client_id: client_id.clone(),
                sent: true,
                item: None,
            });
            self.effect(Effect::Steer {
                turn_id: approval.turn_id.clone(),
                text: note,
                client_id,
            });
        }
        self.effect(Effect::Answer {
            request_id: approval.request_id,
            decision: "decline",
        });
        self.next_request();
    }

    /// Show the next waiting request, if any.
    pub(super) fn next_request(&mut self) {
        if self.overlay.is_none()
            && let Some(next) = self.requests.pop_front()
        {
            self.overlay = Some(next.into_overlay());
        }
    }

    fn pager_key(&mut self, mut pager: Pager, key: KeyEvent) {
        let page = self.view_height.max(2) - 1;
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') => {
                self.next_request();
                return;
            }
            KeyCode::Char('t') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.next_request();
                return;
            }
            KeyCode::Up | KeyCode::Char('k') => pager.top = pager.top.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => pager.top += 1,
            KeyCode::PageUp => pager.top = pager.top.saturating_sub(page),
            KeyCode::PageDown | KeyCode::Char(' ') => pager.top += page,
            KeyCode::Home | KeyCode::Char('g') => pager.top = 0,
            KeyCode::End | KeyCode::Char('G') => pager.at_end = true,
            _ => {}
        }
        self.overlay = Some(Overlay::Pager(pager));
    }

    fn picker_key(&mut self, mut picker: Picker, key: KeyEvent) {
        let shown = picker.shown().len();
        match key.code {
            KeyCode::Esc => {
                if self.thread.is_none() {
                    self.effect(Effect::StartThread);
                }
                return;
            }
            KeyCode::Enter => {
                let chosen = picker
                    .shown()
                    .get(picker.selected)
                    .map(|row| row.id.clone());
                match chosen {
                    Some(id) => self.effect(Effect::ResumeThread(id)),
                    None => self.overlay = Some(Overlay::Picker(picker)),
                }
                return;
            }
            KeyCode::Up => picker.selected = picker.selected.saturating_sub(1),
            KeyCode::Down => picker.selected = (picker.selected + 1).min(shown.saturating_sub(1)),
            KeyCode::Backspace => {
                picker.filter.pop();
                picker.selected = 0;
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                picker.filter.push(c);
                picker.selected = 0;
            }
            _ => {}
        }
        self.overlay = Some(Overlay::Picker(picker));
    }

    fn choice_key(&mut self, mut choice: Choice, key: KeyEvent) {
        match key.code {
            KeyCode::Esc => return,
            KeyCode::Enter => {
                if let Some((value, _)) = choice.options.get(choice.selected) {
                    let value = Some(value.clone());
                    let (model, approval_policy) = match choice.kind {
                        ChoiceKind::Model => (value, None),
                        ChoiceKind::Approvals => (None, value),
                    };
                    self.effect(Effect::Settings {
                        model,
                        approval_policy,
                    });
                    return;
                }
            }
            KeyCode::Up => choice.selected = choice.selected.saturating_sub(1),
            KeyCode::Down => {
                choice.selected = (choice.selected + 1).min(choice.options.len().saturating_sub(1));
            }
            _ => {}
        }
        self.overlay = Some(Overlay::Choice(choice));
    }
}
