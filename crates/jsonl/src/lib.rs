//! Newline-delimited framing for the stdio protocols (the app-server's
//! JSON-RPC, MCP), with a limit on a line's length.
//!
//! A protocol server reads from a peer it does not control. A line that never
//! ends would grow a buffer without bound; a byte that is not UTF-8 makes a
//! string-based line reader (`LinesCodec`) fail, and the stream with it. So
//! [`LineFramer`] works on bytes and decides nothing about them: it hands out
//! each line as bytes (the caller answers one that is not UTF-8 or not JSON
//! with a protocol error and reads on), and a line longer than its limit as
//! [`Frame::TooLong`], once, after which the rest of that line is skipped as
//! it arrives, never stored.
//!
//! Each byte is looked at once: the search for the next newline starts where
//! the last one stopped, and consumed bytes are dropped only when they are at
//! least half the buffer. No I/O here: the caller reads, [`LineFramer::push`]es
//! and takes [`Frame`]s, which keeps the framer usable from any reader and
//! cancel-safe in a `select!` (a read that is dropped loses no framed bytes).
#![deny(missing_docs)]

/// What the framer hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One line, without its `\n` (and without a `\r` before it).
    Line(Vec<u8>),
    /// A line longer than the limit; it is skipped up to its newline.
    TooLong {
        /// How many bytes of it had arrived when it was refused.
        seen: usize,
    },
}

/// Splits a byte stream into lines of at most `max` bytes.
#[derive(Debug)]
pub struct LineFramer {
    max: usize,
    buf: Vec<u8>,
    /// Where the current line starts in `buf`.
    start: usize,
    /// Bytes after `start` known to hold no newline.
    scanned: usize,
    /// The current line was refused: drop bytes up to its newline.
    skipping: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max` bytes.
    pub fn new(max: usize) -> LineFramer {
        LineFramer {
            max,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            skipping: false,
        }
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes held for the line in progress (never more than the limit).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Add bytes read from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if !self.skipping {
            self.buf.extend_from_slice(bytes);
        } else if let Some(at) = bytes.iter().position(|&b| b == b'\n') {
            // Keep only what follows the refused line's end.
            self.skipping = false;
            self.buf.extend_from_slice(&bytes[at + 1..]);
        }
    }

    /// The next whole line, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if self.skipping {
            return None;
        }
        let from = self.start + self.scanned;
        match self.buf[from..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let end = from + offset;
                let line_len = end - self.start;
                let frame = if line_len > self.max {
                    Frame::TooLong { seen: line_len }
                } else {
                    let mut line = self.buf[self.start..end].to_vec();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    Frame::Line(line)
                };
                self.start = end + 1;
                self.scanned = 0;
                Some(frame)
            }
            None => {
                self.scanned = self.buf.len() - self.start;
                if self.scanned > self.max {
                    let seen = self.scanned;
                    self.buf.truncate(self.start);
                    self.scanned = 0;
                    self.skipping = true;
                    return Some(Frame::TooLong { seen });
                }
                None
            }
        }
    }

    /// At the end of the input: the last line if it had no newline.
    pub fn finish(&mut self) -> Option<Frame> {
        if let Some(frame) = self.next_frame() {
            return Some(frame);
        }
        if self.skipping || self.start == self.buf.len() {
            return None;
        }
        let line = self.buf[self.start..].to_vec();
        self.start = self.buf.len();
        self.scanned = 0;
        Some(Frame::Line(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(framer: &mut LineFramer) -> Vec<Frame> {
        std::iter::from_fn(|| framer.next_frame()).collect()
    }

    #[test]
    fn lines_split_anywhere_come_out_whole() {
        let text = b"one\ntwo\r\n\nthree";
        for split in 0..text.len() {
            let mut framer = LineFramer::new(100);
            framer.push(&text[..split]);
            let mut got = frames(&mut framer);
            framer.push(&text[split..]);
            got.extend(frames(&mut framer));
            got.extend(framer.finish());
            assert_eq!(
                got,
                vec![
                    Frame::Line(b"one".to_vec()),
                    Frame::Line(b"two".to_vec()),
                    Frame::Line(Vec::new()),
                    Frame::Line(b"three".to_vec()),
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_long_line_is_refused_once_and_never_buffered_whole() {
        let mut framer = LineFramer::new(10);
        framer.push(b"short\n");
        assert_eq!(framer.next_frame(), Some(Frame::Line(b"short".to_vec())));
        for _ in 0..1000 {
            framer.push(&[b'x'; 1000]);
            let _ = frames(&mut framer);
            assert!(framer.buffered() <= 1000, "{}", framer.buffered());
        }
        framer.push(b"xx\nnext\n");
        assert_eq!(frames(&mut framer), vec![Frame::Line(b"next".to_vec())]);
    }

    #[test]
    fn a_long_line_ending_in_the_same_chunk_is_refused() {
        let mut framer = LineFramer::new(3);
        framer.push(b"toolong\nok\n");
        assert_eq!(
            frames(&mut framer),
            vec![Frame::TooLong { seen: 7 }, Frame::Line(b"ok".to_vec())]
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_handed_out_as_they_are() {
        let mut framer = LineFramer::new(100);
        framer.push(b"\xff\xfe{\n");
        assert_eq!(
            framer.next_frame(),
            Some(Frame::Line(b"\xff\xfe{".to_vec()))
        );
    }

    proptest! {
        /// Whatever the bytes and however they are cut, every line up to the
        /// limit comes out as it went in, every longer one as `TooLong`, in
        /// order, and the buffer never holds more than the limit plus a chunk.
        #[test]
        fn framing_any_bytes_in_any_chunks(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40), 0..20),
            cuts in proptest::collection::vec(1usize..17, 1..50),
            max in 1usize..30,
        ) {
            let mut input = Vec::new();
            for line in &lines {
                input.extend_from_slice(line);
                input.push(b'\n');
            }
            let mut framer = LineFramer::new(max);
            let mut got = Vec::new();
            let mut at = 0;
            let mut cut = cuts.iter().cycle();
            while at < input.len() {
                let n = (*cut.next().unwrap()).min(input.len() - at);
                framer.push(&input[at..at + n]);
                at += n;
                got.extend(frames(&mut framer));
                prop_assert!(framer.buffered() <= max + 17);
            }
            got.extend(framer.finish());
            let expected: Vec<Frame> = lines
                .iter()
                .map(|line| {
                    let mut text = line.clone();
                    if text.last() == Some(&b'\r') {
                        text.pop();
                    }
                    if line.len() > max {
                        Frame::TooLong { seen: 0 }
                    } else {
                        Frame::Line(text)
                    }
                })
                .collect();
            prop_assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(&expected) {
                match (g, e) {
                    (Frame::TooLong { .. }, Frame::TooLong { .. }) => {}
                    _ => prop_assert_eq!(g, e),
                }
            }
        }
    }
}
