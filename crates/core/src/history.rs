//! The conversation history and its invariant I1: every tool call has exactly one
//! output after it, and no output is without its call.

use std::collections::{HashMap, HashSet};

use tiller_protocol::{CallKind, ResponseItem};

/// What the model reads for a call that never ran to the end because the turn
/// was aborted before or while it ran.
pub const ABORTED_BEFORE_OUTPUT: &str =
    "aborted: the user interrupted the turn before this call produced an output";

/// The history of one session, in the order the model sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    items: Vec<ResponseItem>,
}

/// What [`History::repair`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repair {
    /// Calls that had no output and got an aborted one.
    pub closed_calls: Vec<String>,
    /// Outputs that had no call and were dropped.
    pub dropped_outputs: Vec<String>,
    /// Outputs that answered a call a second time and were dropped.
    pub dropped_duplicates: Vec<String>,
}

impl Repair {
    /// Whether nothing had to change.
    pub fn is_empty(&self) -> bool {
        self.closed_calls.is_empty()
            && self.dropped_outputs.is_empty()
            && self.dropped_duplicates.is_empty()
    }
}

impl History {
    /// A history holding `items` as they are.
    pub fn from_items(items: Vec<ResponseItem>) -> Self {
        History { items }
    }

    /// Append one item.
    pub fn push(&mut self, item: ResponseItem) {
        self.items.push(item);
    }

    /// All items.
    pub fn items(&self) -> &[ResponseItem] {
        &self.items
    }

    /// Calls that have no output yet, in order, with their kind.
    pub fn unanswered_calls(&self) -> Vec<(String, CallKind)> {
        let answered: HashSet<&str> = self
            .items
            .iter()
            .filter_map(ResponseItem::as_output)
            .collect();
        self.items
            .iter()
            .filter_map(ResponseItem::as_call)
            .filter(|(call_id, _)| !answered.contains(call_id))
            .map(|(call_id, kind)| (call_id.to_string(), kind))
            .collect()
    }

    /// Make the history satisfy I1: give every call without an output an aborted
    /// output right after it (after the block of calls it stands in), and drop
    /// outputs that answer no earlier call or answer one a second time.
    pub fn repair(&mut self) -> Repair {
        let mut repair = Repair::default();
        let mut calls_seen: HashSet<String> = HashSet::new();
        let mut answered: HashSet<String> = HashSet::new();
        let later_outputs: HashMap<String, usize> = self
            .items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| item.as_output().map(|call_id| (call_id.to_string(), i)))
            .collect();

        let mut repaired = Vec::with_capacity(self.items.len());
        let mut to_close: Vec<(String, CallKind)> = Vec::new();
        for (i, item) in std::mem::take(&mut self.items).into_iter().enumerate() {
            if item.as_call().is_none() {
                close_calls(&mut repaired, &mut to_close, &mut answered);
            }
            if let Some((call_id, kind)) = item.as_call() {
                calls_seen.insert(call_id.to_string());
                let has_output_later = later_outputs.get(call_id).is_some_and(|&j| j > i);
                if !has_output_later {
                    to_close.push((call_id.to_string(), kind));
                    repair.closed_calls.push(call_id.to_string());
                }
            } else if let Some(call_id) = item.as_output() {
                if !calls_seen.contains(call_id) {
                    repair.dropped_outputs.push(call_id.to_string());
                    continue;
                }
                if !answered.insert(call_id.to_string()) {
                    repair.dropped_duplicates.push(call_id.to_string());
                    continue;
                }
            }
            repaired.push(item);
        }
        close_calls(&mut repaired, &mut to_close, &mut answered);
        self.items = repaired;
        repair
    }
}

fn close_calls(
    items: &mut Vec<ResponseItem>,
    to_close: &mut Vec<(String, CallKind)>,
    answered: &mut HashSet<String>,
) {
    for (call_id, kind) in to_close.drain(..) {
        answered.insert(call_id.clone());
        items.push(ResponseItem::output_of(
            kind,
            call_id,
            ABORTED_BEFORE_OUTPUT,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str) -> ResponseItem {
        ResponseItem::FunctionCall {
            name: "shell".into(),
            arguments: "{}".into(),
            call_id: id.into(),
        }
    }

    #[test]
    fn valid_history_is_left_alone() {
        let mut history = History::from_items(vec![
            ResponseItem::user_text("hi"),
            call("a"),
            ResponseItem::call_output("a", "ok"),
            ResponseItem::assistant_text("done"),
        ]);
        let before = history.clone();
        assert!(history.repair().is_empty());
        assert_eq!(history, before);
    }

    #[test]
    fn call_without_output_gets_an_aborted_output_after_its_block() {
        let mut history = History::from_items(vec![
            ResponseItem::user_text("hi"),
            call("a"),
            call("b"),
            ResponseItem::call_output("b", "ok"),
            ResponseItem::user_text("next"),
        ]);
        let repair = history.repair();
        assert_eq!(repair.closed_calls, vec!["a".to_string()]);
        assert_eq!(
            history.items()[3],
            ResponseItem::call_output("a", ABORTED_BEFORE_OUTPUT)
        );
        assert!(history.unanswered_calls().is_empty());
        assert!(history.repair().is_empty());
    }

    #[test]
    fn output_without_call_and_duplicate_outputs_are_dropped() {
        let mut history = History::from_items(vec![
            ResponseItem::call_output("ghost", "?"),
            call("a"),
            ResponseItem::call_output("a", "one"),
            ResponseItem::call_output("a", "two"),
        ]);
        let repair = history.repair();
        assert_eq!(repair.dropped_outputs, vec!["ghost".to_string()]);
        assert_eq!(repair.dropped_duplicates, vec!["a".to_string()]);
        assert_eq!(history.items().len(), 2);
    }
}
