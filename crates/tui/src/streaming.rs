//! An answer still streaming, rendered block by block. Each delta would
//! otherwise parse and wrap the whole answer again, every frame: for a long
//! answer that is most of a frame's cost and most of the memory churn.
//! Blocks that are finished (text up to a blank line outside a code fence)
//! are rendered and wrapped once and kept; each frame renders only the rest.
//! When the answer completes, the cell is rendered whole again, so the final
//! lines are exactly those of a full render (streaming may differ in the
//! blank lines between the items of a loose list).

use ratatui::text::Line;

use crate::clean::clean;
use crate::markdown;
use crate::wrap::wrap;

/// Below this size an answer is simply rendered whole each time.
pub const INCREMENTAL_FROM_BYTES: usize = 16 * 1024;

/// What of a streaming answer is rendered for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finished {
    /// Bytes of the text in finished blocks.
    pub bytes: usize,
    /// Their wrapped lines, at the start of the cell's lines.
    pub lines: usize,
}

/// The lines of `text` at `width`, reusing `previous` (the lines of the last
/// call at the same width, whose first `finished.lines` are finished blocks).
pub fn render(
    text: &str,
    width: u16,
    mut previous: Vec<Line<'static>>,
    finished: Finished,
) -> (Vec<Line<'static>>, Finished) {
    let mut lines = std::mem::take(&mut previous);
    lines.truncate(finished.lines);
    let mut finished = finished;
    let boundary = last_block_end(text, finished.bytes);
    if boundary > finished.bytes {
        let block = wrap(
            &markdown::render(&clean(&text[finished.bytes..boundary])),
            width,
        );
        append(&mut lines, block);
        finished = Finished {
            bytes: boundary,
            lines: lines.len(),
        };
    }
    let rest = wrap(&markdown::render(&clean(&text[finished.bytes..])), width);
    append(&mut lines, rest);
    (lines, finished)
}

/// Blocks are separated by one blank line, as a whole render separates them.
fn append(lines: &mut Vec<Line<'static>>, more: Vec<Line<'static>>) {
    if !lines.is_empty() && !more.is_empty() {
        lines.push(Line::default());
    }
    lines.extend(more);
}

/// The end of the last finished block of `text` after `from` (a block end,
/// outside any fence): just after a blank line that is outside a code fence.
/// `from` when there is none.
fn last_block_end(text: &str, from: usize) -> usize {
    let mut in_fence = false;
    let mut end = from;
    let mut at = from;
    for line in text[from..].split_inclusive('\n') {
        let next = at + line.len();
        // Only whole lines: the last one may still be growing.
        if line.ends_with('\n') {
            let trimmed = line.trim_start_matches(' ');
            if line.len() - trimmed.len() < 4
                && (trimmed.starts_with("```") || trimmed.starts_with("~~~"))
            {
                in_fence = !in_fence;
            } else if !in_fence && line.trim().is_empty() && at > from {
                end = next;
            }
        }
        at = next;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line<'static>]) -> Vec<String> {
        lines.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn streamed_paragraphs_and_code_render_as_the_whole_does() {
        let mut answer = String::new();
        for i in 0..400 {
            answer.push_str(&format!(
                "Paragraph {i} says **something** about `code`.\n\n"
            ));
            if i % 50 == 0 {
                answer
                    .push_str("```rust\nfn main() {\n\n    let blank_line_above = 1;\n}\n```\n\n");
            }
        }
        let mut lines = Vec::new();
        let mut finished = Finished::default();
        let mut shown = 0;
        // Deltas of 7 bytes, cut anywhere (on char boundaries: ASCII here).
        while shown < answer.len() {
            shown = (shown + 7).min(answer.len());
            (lines, finished) = render(&answer[..shown], 60, lines, finished);
            if shown % 700 == 0 || shown == answer.len() {
                let whole = wrap(&markdown::render(&answer[..shown]), 60);
                assert_eq!(texts(&lines), texts(&whole), "after {shown} bytes");
            }
        }
        assert!(finished.bytes > answer.len() - 100, "{finished:?}");
    }

    #[test]
    fn a_blank_line_inside_a_fence_ends_no_block() {
        let text = "intro\n\n```\nline\n\nmore\n";
        assert_eq!(last_block_end(text, 0), "intro\n\n".len());
    }
}
