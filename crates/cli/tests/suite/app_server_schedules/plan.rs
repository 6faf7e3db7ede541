//! What a schedule does: a seeded list of client actions.

/// One client action of a schedule.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// `turn/start`, replacing whatever runs.
    Start,
    /// `turn/start`, and as soon as it answers a `turn/steer` naming that turn.
    StartThenSteer,
    /// `turn/start`, and as soon as it answers a `turn/interrupt` of that turn.
    StartThenInterrupt,
    /// `turn/steer` naming the running turn.
    SteerCurrent,
    /// `turn/steer` naming a finished turn, or one never issued.
    SteerStale,
    /// `turn/interrupt` naming the running turn.
    InterruptCurrent,
    /// `turn/interrupt` naming a finished turn, or one never issued.
    InterruptStale,
    /// `thread/interrupt`.
    InterruptThread,
    /// `thread/queue/add`.
    QueueAdd,
    /// `thread/queue/list`.
    QueueList,
    /// `thread/queue/delete` of a known entry, or of one that never existed.
    QueueDelete,
    /// An earlier `turn/start`, `turn/steer` or `thread/queue/add` sent again,
    /// with the same `clientUserMessageId`.
    Repeat,
    /// SIGKILL the server, start another, `thread/resume`.
    Kill,
    /// Wait this many milliseconds.
    Pause(u64),
}

impl Action {
    /// The name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::StartThenSteer => "start+steer",
            Action::StartThenInterrupt => "start+interrupt",
            Action::SteerCurrent => "steer",
            Action::SteerStale => "steer stale",
            Action::InterruptCurrent => "interrupt",
            Action::InterruptStale => "interrupt stale",
            Action::InterruptThread => "thread/interrupt",
            Action::QueueAdd => "queue add",
            Action::QueueList => "queue list",
            Action::QueueDelete => "queue delete",
            Action::Repeat => "repeat",
            Action::Kill => "kill",
            Action::Pause(_) => "pause",
        }
    }
}

/// Between 6 and 27 actions.
pub fn random_plan(rng: &mut fastrand::Rng) -> Vec<Action> {
    (0..rng.usize(6..28)).map(|_| random_action(rng)).collect()
}

fn random_action(rng: &mut fastrand::Rng) -> Action {
    match rng.u32(0..100) {
        0..14 => Action::Start,
        14..17 => Action::StartThenSteer,
        17..20 => Action::StartThenInterrupt,
        20..29 => Action::SteerCurrent,
        29..32 => Action::SteerStale,
        32..39 => Action::InterruptCurrent,
        39..42 => Action::InterruptStale,
        42..47 => Action::InterruptThread,
        47..59 => Action::QueueAdd,
        59..63 => Action::QueueList,
        63..68 => Action::QueueDelete,
        68..77 => Action::Repeat,
        77..81 => Action::Kill,
        _ => Action::Pause(rng.u64(0..=30)),
    }
}
