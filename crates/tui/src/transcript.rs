//! The conversation as cells, each wrapped once per width and kept, so a
//! frame costs the lines on screen and the cells that changed, not the whole
//! history.

use std::collections::HashMap;

use ratatui::text::Line;

use crate::cell::{Cell, CellKind};
use crate::streaming::{self, Finished};
use crate::wrap::wrap;

/// A cell with its wrapped lines for the last width it was drawn at.
#[derive(Debug)]
struct Entry {
    cell: Cell,
    /// `(width, lines)`; `None` after a change.
    wrapped: Option<(u16, Vec<Line<'static>>)>,
    /// An answer still streaming: what of `wrapped` is finished blocks, and
    /// whether text came since it was wrapped.
    streaming: Option<(Finished, bool)>,
}

/// Every cell, in order.
#[derive(Debug, Default)]
pub struct Transcript {
    entries: Vec<Entry>,
    by_item: HashMap<String, usize>,
    /// The first line on screen when scrolled back; `None` follows the end.
    top: Option<usize>,
}

impl Transcript {
    /// Add a cell at the end.
    pub fn push(&mut self, cell: Cell) {
        if let Some(id) = &cell.item_id {
            self.by_item.insert(id.clone(), self.entries.len());
        }
        self.entries.push(Entry {
            cell,
            wrapped: None,
            streaming: None,
        });
    }

    /// The cell showing item `id`, to change it (it is rendered whole again).
    pub fn item_mut(&mut self, id: &str) -> Option<&mut CellKind> {
        let index = *self.by_item.get(id)?;
        let entry = &mut self.entries[index];
        entry.wrapped = None;
        entry.streaming = None;
        Some(&mut entry.cell.kind)
    }

    /// Add a streamed delta to the answer showing item `id`; false when no
    /// answer shows it. Its finished blocks stay rendered.
    pub fn append_answer(&mut self, id: &str, delta: &str) -> bool {
        let Some(entry) = self.by_item.get(id).map(|i| &mut self.entries[*i]) else {
            return false;
        };
        let CellKind::Agent { text } = &mut entry.cell.kind else {
            return false;
        };
        text.push_str(delta);
        let finished = entry.streaming.map(|(f, _)| f).unwrap_or_default();
        entry.streaming = Some((finished, true));
        true
    }

    /// Whether item `id` has a cell.
    pub fn has_item(&self, id: &str) -> bool {
        self.by_item.contains_key(id)
    }

    /// Every cell, in order.
    pub fn cells(&self) -> impl Iterator<Item = &Cell> {
        self.entries.iter().map(|e| &e.cell)
    }

    /// How many cells.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forget everything (a new or reloaded thread).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_item.clear();
        self.top = None;
    }

    /// Whether the view follows the end.
    pub fn follows_end(&self) -> bool {
        self.top.is_none()
    }

    /// Scroll by `lines` (negative: back), for a view `height` lines high at
    /// `width`; reaching the end follows it again.
    pub fn scroll(&mut self, lines: isize, width: u16, height: usize) {
        let total = self.height(width);
        let bottom_top = total.saturating_sub(height);
        let top = self.top.unwrap_or(bottom_top);
        let top = top.saturating_add_signed(lines).min(bottom_top);
        self.top = (top < bottom_top).then_some(top);
    }

    /// Back to the start.
    pub fn scroll_to_start(&mut self) {
        self.top = Some(0);
    }

    /// Follow the end again.
    pub fn scroll_to_end(&mut self) {
        self.top = None;
    }

    /// Every line at `width`, with a blank line after each cell.
    pub fn height(&mut self, width: u16) -> usize {
        (0..self.entries.len())
            .map(|i| self.wrapped(i, width).len() + 1)
            .sum()
    }

    /// The `height` lines on screen at `width`.
    pub fn visible(&mut self, width: u16, height: usize) -> Vec<Line<'static>> {
        if self.top.is_none() {
            return self.last_lines(width, height);
        }
        let total = self.height(width);
        let top = match self.top {
            Some(top) => top.min(total.saturating_sub(height)),
            None => total.saturating_sub(height),
        };
        let mut lines = Vec::with_capacity(height);
        let mut line = 0;
        for i in 0..self.entries.len() {
            let cell_height = self.wrapped(i, width).len() + 1;
            if line + cell_height <= top {
                line += cell_height;
                continue;
            }
            let skip = top.saturating_sub(line);
            let wrapped = self.wrapped(i, width);
            let with_gap = wrapped
                .iter()
                .cloned()
                .chain(std::iter::once(Line::default()));
            lines.extend(with_gap.skip(skip).take(height - lines.len()));
            line += cell_height;
            if lines.len() == height {
                break;
            }
        }
        lines
    }

    /// The last `height` lines, walking back from the end: only the cells on
    /// screen are wrapped (a resize costs a screenful, not the transcript).
    fn last_lines(&mut self, width: u16, height: usize) -> Vec<Line<'static>> {
        let mut reversed = Vec::with_capacity(height);
        for i in (0..self.entries.len()).rev() {
            if reversed.len() >= height {
                break;
            }
            reversed.push(Line::default());
            let wrapped = self.wrapped(i, width);
            reversed.extend(wrapped.iter().rev().take(height).cloned());
        }
        reversed.truncate(height);
        reversed.reverse();
        reversed
    }

    /// Every cell whole, unwrapped, for the pager.
    pub fn full_lines(&self) -> Vec<Line<'static>> {
        let mut lines = Vec::new();
        for entry in &self.entries {
            lines.extend(entry.cell.lines(true));
            lines.push(Line::default());
        }
        lines
    }

    fn wrapped(&mut self, index: usize, width: u16) -> &[Line<'static>] {
        let entry = &mut self.entries[index];
        let same_width = entry.wrapped.as_ref().is_some_and(|(w, _)| *w == width);
        let grew = entry.streaming.is_some_and(|(_, grew)| grew);
        if !same_width || grew {
            match (&entry.cell.kind, entry.streaming) {
                (CellKind::Agent { text }, Some((finished, _)))
                    if text.len() >= streaming::INCREMENTAL_FROM_BYTES =>
                {
                    let (previous, finished) = match entry.wrapped.take() {
                        Some((w, lines)) if w == width => (lines, finished),
                        Some(_) | None => (Vec::new(), Finished::default()),
                    };
                    let (lines, finished) = streaming::render(text, width, previous, finished);
                    entry.wrapped = Some((width, lines));
                    entry.streaming = Some((finished, false));
                }
                _ => {
                    entry.wrapped = Some((width, wrap(&entry.cell.lines(false), width)));
                    entry.streaming = entry.streaming.map(|(f, _)| (f, false));
                }
            }
        }
        entry.wrapped.as_ref().map_or(&[], |(_, lines)| lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::Tone;

    fn notice(text: &str) -> Cell {
        Cell::new(CellKind::Notice {
            text: text.to_owned(),
            tone: Tone::Info,
        })
    }

    fn texts(lines: &[Line<'static>]) -> Vec<String> {
        lines.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn shows_the_end_and_scrolls_back() {
        let mut transcript = Transcript::default();
        for i in 0..10 {
            transcript.push(notice(&format!("n{i}")));
        }
        assert_eq!(transcript.height(20), 20);
        assert_eq!(texts(&transcript.visible(20, 3)), ["", "• n9", ""]);
        transcript.scroll(-4, 20, 3);
        assert_eq!(texts(&transcript.visible(20, 3)), ["", "• n7", ""]);
        assert!(!transcript.follows_end());
        transcript.scroll(100, 20, 3);
        assert!(transcript.follows_end());
    }

    #[test]
    fn a_changed_item_is_wrapped_again() {
        let mut transcript = Transcript::default();
        transcript.push(Cell {
            item_id: Some("a".into()),
            kind: CellKind::Agent { text: "one".into() },
        });
        assert_eq!(transcript.height(40), 2);
        if let Some(CellKind::Agent { text }) = transcript.item_mut("a") {
            text.push_str("\n\ntwo");
        }
        assert_eq!(transcript.height(40), 4);
    }
}
