//! What the person is typing: a multi-line buffer with a cursor, and the
//! history of what was sent (Up and Down walk it when the cursor is on the
//! first or last line).

use unicode_width::UnicodeWidthChar;

/// The most history entries kept.
const HISTORY_LIMIT: usize = 500;
/// The most text the composer holds (a paste past it is cut, and says so).
pub const COMPOSER_LIMIT_BYTES: usize = 1024 * 1024;

/// The buffer, its cursor and the history.
#[derive(Debug, Default)]
pub struct Composer {
    text: String,
    /// A byte offset into `text`, on a char boundary.
    cursor: usize,
    history: Vec<String>,
    /// Where Up has walked to, and what was being typed before it.
    browsing: Option<(usize, String)>,
}

impl Composer {
    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether it holds nothing but whitespace.
    pub fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// Replace the text, cursor at its end.
    pub fn set(&mut self, text: &str) {
        self.text = text.to_owned();
        self.cursor = self.text.len();
        self.browsing = None;
    }

    /// Take the text out (it goes into the history), leaving it empty.
    pub fn take(&mut self) -> String {
        let text = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            self.history.push(text.clone());
            if self.history.len() > HISTORY_LIMIT {
                self.history.remove(0);
            }
        }
        text
    }

    /// Empty it (the text does not go into the history).
    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
        self.browsing = None;
    }

    /// Type `text` at the cursor. Returns false when it had to be cut at
    /// [`COMPOSER_LIMIT_BYTES`].
    pub fn insert(&mut self, text: &str) -> bool {
        let room = COMPOSER_LIMIT_BYTES.saturating_sub(self.text.len());
        let mut end = text.len().min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // A pasted "\r\n" or "\r" is a newline.
        let piece = text[..end].replace("\r\n", "\n").replace('\r', "\n");
        self.text.insert_str(self.cursor, &piece);
        self.cursor += piece.len();
        end == text.len()
    }

    /// Delete the character before the cursor.
    pub fn backspace(&mut self) {
        if let Some(prev) = self.prev_boundary() {
            self.text.drain(prev..self.cursor);
            self.cursor = prev;
        }
    }

    /// Delete the character under the cursor.
    pub fn delete(&mut self) {
        if let Some(next) = self.next_boundary() {
            self.text.drain(self.cursor..next);
        }
    }

    /// Delete the word before the cursor (Ctrl+W).
    pub fn delete_word(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        let start = trimmed.rfind(char::is_whitespace).map_or(0, |i| {
            i + trimmed[i..].chars().next().map_or(1, char::len_utf8)
        });
        self.text.drain(start..self.cursor);
        self.cursor = start;
    }

    /// Delete from the start of the line to the cursor (Ctrl+U).
    pub fn delete_to_line_start(&mut self) {
        let start = self.line_start();
        self.text.drain(start..self.cursor);
        self.cursor = start;
    }

    /// One character left.
    pub fn left(&mut self) {
        if let Some(prev) = self.prev_boundary() {
            self.cursor = prev;
        }
    }

    /// One character right.
    pub fn right(&mut self) {
        if let Some(next) = self.next_boundary() {
            self.cursor = next;
        }
    }

    /// To the start of the line.
    pub fn home(&mut self) {
        self.cursor = self.line_start();
    }

    /// To the end of the line.
    pub fn end(&mut self) {
        self.cursor = self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |i| self.cursor + i);
    }

    /// Up: the line above, or the previous history entry from the first line.
    pub fn up(&mut self) {
        let start = self.line_start();
        if start == 0 {
            self.history_back();
            return;
        }
        let column = self.text[start..self.cursor].chars().count();
        let prev_start = self.text[..start - 1].rfind('\n').map_or(0, |i| i + 1);
        self.cursor = column_offset(&self.text, prev_start, start - 1, column);
    }

    /// Down: the line below, or the next history entry from the last line.
    pub fn down(&mut self) {
        let Some(newline) = self.text[self.cursor..].find('\n').map(|i| self.cursor + i) else {
            self.history_forward();
            return;
        };
        let column = self.text[self.line_start()..self.cursor].chars().count();
        let next_start = newline + 1;
        let next_end = self.text[next_start..]
            .find('\n')
            .map_or(self.text.len(), |i| next_start + i);
        self.cursor = column_offset(&self.text, next_start, next_end, column);
    }

    fn history_back(&mut self) {
        let index = match &self.browsing {
            Some((0, _)) => return,
            Some((i, _)) => i - 1,
            None if self.history.is_empty() => return,
            None => {
                self.browsing = Some((self.history.len(), self.text.clone()));
                self.history.len() - 1
            }
        };
        if let Some((at, _)) = &mut self.browsing {
            *at = index;
        }
        self.text = self.history[index].clone();
        self.cursor = self.text.len();
    }

    fn history_forward(&mut self) {
        let Some((index, draft)) = self.browsing.take() else {
            return;
        };
        if index + 1 < self.history.len() {
            self.text = self.history[index + 1].clone();
            self.browsing = Some((index + 1, draft));
        } else {
            self.text = draft;
        }
        self.cursor = self.text.len();
    }

    fn line_start(&self) -> usize {
        self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1)
    }

    fn prev_boundary(&self) -> Option<usize> {
        self.text[..self.cursor]
            .char_indices()
            .next_back()
            .map(|(i, _)| i)
    }

    fn next_boundary(&self) -> Option<usize> {
        self.text[self.cursor..]
            .chars()
            .next()
            .map(|c| self.cursor + c.len_utf8())
    }

    /// The text cut into rows of at most `width` columns (hard cuts, so the
    /// cursor's place is exact), and the cursor's row and column.
    pub fn layout(&self, width: u16) -> (Vec<String>, (usize, usize)) {
        let width = usize::from(width.max(2));
        let mut rows = vec![String::new()];
        let mut used = 0;
        let mut cursor = (0, 0);
        for (offset, ch) in self.text.char_indices() {
            if offset == self.cursor {
                cursor = (rows.len() - 1, used);
            }
            if ch == '\n' {
                rows.push(String::new());
                used = 0;
                continue;
            }
            let w = ch.width().unwrap_or(0);
            if used + w > width {
                rows.push(String::new());
                used = 0;
            }
            if let Some(row) = rows.last_mut() {
                row.push(if ch.is_control() { ' ' } else { ch });
            }
            used += w;
        }
        if self.cursor == self.text.len() {
            if used >= width {
                rows.push(String::new());
                used = 0;
            }
            cursor = (rows.len() - 1, used);
        }
        (rows, cursor)
    }
}

/// The offset of `column` chars into the line `start..end`, or its end.
fn column_offset(text: &str, start: usize, end: usize, column: usize) -> usize {
    text[start..end]
        .char_indices()
        .nth(column)
        .map_or(end, |(i, _)| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_across_lines() {
        let mut composer = Composer::default();
        composer.insert("first");
        composer.insert("\n");
        composer.insert("second");
        composer.up();
        composer.end();
        composer.insert("!");
        assert_eq!(composer.text(), "first!\nsecond");
        composer.down();
        composer.home();
        composer.delete();
        composer.backspace();
        assert_eq!(composer.text(), "first!econd");
    }

    #[test]
    fn up_on_the_first_line_walks_the_history_and_down_comes_back() {
        let mut composer = Composer::default();
        composer.insert("one");
        composer.take();
        composer.insert("two");
        composer.take();
        composer.insert("draft");
        composer.up();
        assert_eq!(composer.text(), "two");
        composer.up();
        assert_eq!(composer.text(), "one");
        composer.up();
        assert_eq!(composer.text(), "one");
        composer.down();
        assert_eq!(composer.text(), "two");
        composer.down();
        assert_eq!(composer.text(), "draft");
    }

    #[test]
    fn a_paste_keeps_its_newlines_and_is_bounded() {
        let mut composer = Composer::default();
        assert!(composer.insert("a\r\nb\rc"));
        assert_eq!(composer.text(), "a\nb\nc");
        let big = "x".repeat(COMPOSER_LIMIT_BYTES);
        assert!(!composer.insert(&big));
        assert_eq!(composer.text().len(), COMPOSER_LIMIT_BYTES);
    }

    #[test]
    fn layout_places_the_cursor() {
        let mut composer = Composer::default();
        composer.insert("abcdef\ngh");
        let (rows, cursor) = composer.layout(4);
        assert_eq!(rows, ["abcd", "ef", "gh"]);
        assert_eq!(cursor, (2, 2));
        composer.delete_word();
        assert_eq!(composer.text(), "abcdef\n");
    }
}
