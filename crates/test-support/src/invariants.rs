//! Invariant I2: each started turn has exactly one terminal event, and nothing
//! of that turn comes after it.

use std::collections::HashMap;

use tiller_protocol::{Event, EventMsg};

/// What a front end's output says about a turn, whatever its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnMark {
    /// The turn started.
    Started(String),
    /// The turn ended (completed, aborted or failed).
    Terminal(String),
    /// Anything else that belongs to the turn.
    Other(String),
}

/// Check I2 on engine events. Panics with the whole log on a violation.
pub fn assert_one_terminal_per_turn(events: &[Event]) {
    let marks: Vec<TurnMark> = events
        .iter()
        .filter_map(|event| {
            let id = event.turn_id.as_deref()?.to_string();
            Some(match event.msg {
                EventMsg::TurnStarted { .. } => TurnMark::Started(id),
                _ if event.is_terminal() => TurnMark::Terminal(id),
                _ => TurnMark::Other(id),
            })
        })
        .collect();
    if let Err(problem) = check(&marks) {
        panic!("invariant I2 broken: {problem}\nevents: {events:#?}");
    }
}

/// Check I2 on marks taken from any front end's output (e.g. `tiller exec --json`).
pub fn assert_marks_one_terminal_per_turn(marks: &[TurnMark]) {
    if let Err(problem) = check(marks) {
        panic!("invariant I2 broken: {problem}\nmarks: {marks:#?}");
    }
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Running,
    Ended,
}

fn check(marks: &[TurnMark]) -> Result<(), String> {
    let mut turns: HashMap<&str, State> = HashMap::new();
    for (i, mark) in marks.iter().enumerate() {
        match mark {
            TurnMark::Started(id) => {
                if turns.insert(id, State::Running).is_some() {
                    return Err(format!("turn {id} started twice (mark {i})"));
                }
            }
            TurnMark::Terminal(id) => match turns.get(id.as_str()) {
                Some(State::Running) => {
                    turns.insert(id, State::Ended);
                }
                Some(State::Ended) => {
                    return Err(format!("turn {id} has a second terminal event (mark {i})"));
                }
                None => return Err(format!("turn {id} ended without starting (mark {i})")),
            },
            TurnMark::Other(id) => match turns.get(id.as_str()) {
                Some(State::Running) => {}
                Some(State::Ended) => {
                    return Err(format!(
                        "turn {id} has an event after its terminal event (mark {i})"
                    ));
                }
                None => {
                    return Err(format!(
                        "turn {id} has an event before it started (mark {i})"
                    ));
                }
            },
        }
    }
    let unfinished: Vec<&&str> = turns
        .iter()
        .filter(|(_, state)| **state == State::Running)
        .map(|(id, _)| id)
        .collect();
    if !unfinished.is_empty() {
        return Err(format!("turns without a terminal event: {unfinished:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str) -> TurnMark {
        TurnMark::Started(id.into())
    }
    fn t(id: &str) -> TurnMark {
        TurnMark::Terminal(id.into())
    }
    fn o(id: &str) -> TurnMark {
        TurnMark::Other(id.into())
    }

    #[test]
    fn one_terminal_per_turn_passes() {
        assert!(check(&[s("a"), o("a"), t("a"), s("b"), t("b")]).is_ok());
    }

    #[test]
    fn every_violation_is_caught() {
        assert!(check(&[s("a"), t("a"), t("a")]).is_err());
        assert!(check(&[s("a")]).is_err());
        assert!(check(&[s("a"), t("a"), o("a")]).is_err());
        assert!(check(&[o("a"), s("a"), t("a")]).is_err());
        assert!(check(&[t("a")]).is_err());
    }
}
